//! Staged builds: a second graph depends on outputs of a first run through
//! `Graph::import`, and the summaries of both stages add up.
use n2d_engine::{Graph, Report, Summary};

use crate::support::{set, World};

fn two_stages(world: &World, second_value: &str) -> (Report, Report, Summary) {
    let engine = world.engine(2, n2d_engine::OnFailure::Stop);
    let mut first = Graph::new();
    let a = first.add(world.toy("a").kind("parse"), &[]);
    first.add(world.toy("b").kind("parse"), &[]);
    let first = engine.run(first).unwrap();

    let mut second = Graph::new();
    let imported = second.import(&first, a).unwrap();
    second.add(
        world.toy("c").kind("render").value("v", second_value),
        &[imported],
    );
    let second = engine.run(second).unwrap();
    let mut summary = first.summary().clone();
    summary.merge(second.summary());
    (first, second, summary)
}

#[test]
fn a_second_stage_reads_first_stage_outputs() {
    let world = World::new();
    let (_, second, summary) = two_stages(&world, "1");
    assert_eq!(world.take_log(), set(["a", "b", "c"]));
    let c = second.ids().find(|&id| second.identity(id) == "c").unwrap();
    assert_eq!(&*second.output(c).unwrap(), b"c[v=1;](a[](),)");
    assert_eq!(summary.executed, 3);
    assert_eq!(summary.by_kind["parse"].executed, 2);
    assert_eq!(summary.by_kind["render"].executed, 1);
}

#[test]
fn a_second_stage_loads_a_cached_first_stage_output_lazily() {
    let world = World::new();
    two_stages(&world, "1");
    world.take_log();
    let (_, second, summary) = two_stages(&world, "2");
    assert_eq!(world.take_log(), set(["c"]));
    let c = second.ids().find(|&id| second.identity(id) == "c").unwrap();
    assert_eq!(&*second.output(c).unwrap(), b"c[v=2;](a[](),)");
    assert_eq!((summary.executed, summary.cached), (1, 2));
}
