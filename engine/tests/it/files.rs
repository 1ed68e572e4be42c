//! Input files: an unchanged file is not hashed again, a changed one is, a
//! file that changes while the build reads it is not recorded as up to date,
//! and a missing one fails its task.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use n2d_engine::{Graph, OnFailure, Reason, Status, TaskError};

use crate::support::{age, outputs, set, World};

fn graph(world: &World, path: &std::path::Path) -> (Graph, n2d_engine::TaskId) {
    let mut graph = Graph::new();
    let parse = graph.add(world.toy("parse").file("pkg/n2d.toml", path), &[]);
    graph.add(world.toy("render"), &[parse]);
    (graph, parse)
}

#[test]
fn a_file_with_unchanged_metadata_is_not_read_again() {
    let world = World::new();
    let path = world.write("pkg/n2d.toml", "x = 1");
    age(&path);
    assert_eq!(
        world.run(graph(&world, &path).0).1,
        set(["parse", "render"])
    );

    // Same size, same inode, same mtime: only a re-hash could see this edit,
    // so not seeing it proves the file-state table was trusted.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, "x = 2").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    assert_eq!(world.run(graph(&world, &path).0).1, set([]));
}

#[test]
fn a_file_with_a_new_mtime_is_hashed_again() {
    let world = World::new();
    let path = world.write("pkg/n2d.toml", "x = 1");
    age(&path);
    world.run(graph(&world, &path).0);
    std::fs::write(&path, "x = 2").unwrap();
    let (report, executed) = world.run(graph(&world, &path).0);
    assert_eq!(executed, set(["parse", "render"]));
    assert!(outputs(&report)["parse"].ends_with(b"pkg/n2d.toml:x = 2;]()"));
}

#[test]
fn a_file_that_changes_while_it_is_read_is_not_recorded_as_up_to_date() {
    let world = World::new();
    let path = world.write("pkg/n2d.toml", "x = 1");
    age(&path);
    let mut engine = world.engine(2, OnFailure::Stop);
    let edited = Arc::new(AtomicBool::new(false));
    let hook_path = path.clone();
    let hook_edited = edited.clone();
    engine.set_after_read_hook_for_tests(move |read| {
        if read == hook_path && !hook_edited.swap(true, Ordering::SeqCst) {
            // An editor saves while the build reads: new content, new size,
            // an mtime outside the racy window.
            std::fs::write(read, "x = 22").unwrap();
            let file = std::fs::File::options().write(true).open(read).unwrap();
            file.set_modified(SystemTime::now() - Duration::from_secs(7200))
                .unwrap();
        }
    });
    let (first_graph, parse) = graph(&world, &path);
    let report = engine.run(first_graph).unwrap();
    assert!(edited.load(Ordering::SeqCst));
    assert!(matches!(
        &report.outcome(parse).status,
        Status::Executed(Reason::UnstableInput { file }) if file == "pkg/n2d.toml"
    ));
    assert!(
        outputs(&report)["parse"].ends_with(b"x = 1;]()"),
        "the task ran on what was read"
    );
    assert_eq!(report.notices().len(), 1, "{:?}", report.notices());
    drop(report);
    drop(engine);
    world.take_log();

    let (report, executed) = world.run(graph(&world, &path).0);
    assert_eq!(
        executed,
        set(["parse", "render"]),
        "the next build sees the change"
    );
    assert!(outputs(&report)["parse"].ends_with(b"x = 22;]()"));
    drop(report);
    assert_eq!(world.run(graph(&world, &path).0).1, set([]));
}

#[test]
fn a_missing_input_file_fails_its_task() {
    let world = World::new();
    let path = world.dir.path().join("missing.toml");
    let (report, executed) = world.run(graph(&world, &path).0);
    assert_eq!(executed, set([]));
    let (_, error) = report.failures().next().unwrap();
    assert!(matches!(error, TaskError::InputFile { name, .. } if name == "pkg/n2d.toml"));
    assert_eq!(report.summary().skipped, 1);
}
