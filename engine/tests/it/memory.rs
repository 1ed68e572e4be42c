//! Outputs freed after use (`Task::frees_output`): every dependant still
//! reads them, and a report asked for one afterwards gets it back.
//!
//! The freed tasks here run in every build (`Caching::AlwaysRun`), so the
//! cache does not hold their outputs: an output read after it was freed is
//! made again, which the log shows.
use n2d_engine::{Caching, Graph};

use crate::support::{Toy, World};

fn runs(world: &World, name: &str) -> usize {
    world
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|n| *n == name)
        .count()
}

#[test]
fn every_dependant_reads_an_output_freed_after_the_last_one() {
    let world = World::new();
    let engine = world.engine(2, n2d_engine::OnFailure::Stop);
    let mut graph = Graph::new();
    let source = graph.add(
        world
            .toy("source")
            .caching(Caching::AlwaysRun)
            .frees_output(),
        &[],
    );
    let readers: Vec<_> = (0..50)
        .map(|i| graph.add(world.toy(&format!("reader {i}")), &[source, source]))
        .collect();
    let report = engine.run(graph).unwrap();
    // Made once: no dependant found it freed.
    assert_eq!(runs(&world, "source"), 1);
    for (i, &reader) in readers.iter().enumerate() {
        assert_eq!(
            &*report.output(reader).unwrap(),
            format!("reader {i}[](source[](),source[](),)").as_bytes()
        );
    }
    // Freed after the last reader: asked for, it is made again.
    assert_eq!(&*report.output(source).unwrap(), b"source[]()");
    assert_eq!(runs(&world, "source"), 2);
}

/// Runs `source` and a task reading it, asks the report for the source's
/// output afterwards, and says how many times the source ran.
fn runs_when_read_after(world: &World, source: Toy) -> usize {
    let engine = world.engine(2, n2d_engine::OnFailure::Stop);
    let mut graph = Graph::new();
    let source = graph.add(source, &[]);
    graph.add(world.toy("reader"), &[source]);
    let report = engine.run(graph).unwrap();
    assert_eq!(&*report.output(source).unwrap(), b"source[]()");
    runs(world, "source")
}

#[test]
fn an_output_not_freed_stays_with_the_report() {
    let world = World::new();
    let source = world.toy("source").caching(Caching::AlwaysRun);
    assert_eq!(runs_when_read_after(&world, source), 1);
}

#[test]
fn a_freed_output_kept_by_the_cache_is_read_from_it() {
    let world = World::new();
    let source = world.toy("source").frees_output();
    assert_eq!(runs_when_read_after(&world, source), 1);
}
