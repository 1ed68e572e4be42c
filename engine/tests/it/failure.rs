//! A failing task skips its dependants; by default no new task starts after
//! a failure, with keep-going everything independent still runs; a failure
//! is never cached.
use std::sync::mpsc;
use std::sync::{Arc, Mutex};

use n2d_engine::{Graph, OnFailure, Progress, SkipReason, Status, TaskError};

use crate::support::{set, World};

/// f fails; g depends on f; h depends on f through g. x starts only once f
/// has failed (it waits for the failure's progress event), then y depends on x.
fn failing_graph(world: &World, failed: mpsc::Receiver<()>) -> Graph {
    let failed = Mutex::new(failed);
    let mut graph = Graph::new();
    let f = graph.add(world.toy("f").behaviour(|_| Err("f is broken".into())), &[]);
    let g = graph.add(world.toy("g"), &[f]);
    graph.add(world.toy("h"), &[g]);
    let x = graph.add(
        world.toy("x").behaviour(move |_| {
            failed.lock().unwrap().recv().unwrap();
            Ok(b"x".to_vec())
        }),
        &[],
    );
    graph.add(world.toy("y"), &[x]);
    graph
}

fn run(
    world: &World,
    on_failure: OnFailure,
) -> (n2d_engine::Report, std::collections::BTreeSet<String>) {
    let (tell, failed) = mpsc::channel();
    let tell = Mutex::new(tell);
    let mut engine = world.engine(2, on_failure);
    engine.on_progress(move |event| {
        if let Progress::Finished { outcome, .. } = event {
            if matches!(outcome.status, Status::Failed(_)) {
                let _ = tell.lock().unwrap().send(());
            }
        }
    });
    let report = engine.run(failing_graph(world, failed)).unwrap();
    (report, world.take_log())
}

fn status_of<'a>(report: &'a n2d_engine::Report, name: &str) -> &'a Status {
    let id = report
        .ids()
        .find(|&id| report.identity(id) == name)
        .unwrap();
    &report.outcome(id).status
}

#[test]
fn failure_skips_dependants_and_stops_starting_new_tasks() {
    let world = World::new();
    let (report, executed) = run(&world, OnFailure::Stop);
    assert_eq!(executed, set(["f", "x"]));
    assert!(!report.ok());
    assert_eq!(report.summary().failed, 1);
    assert_eq!(report.summary().skipped, 3);
    assert!(
        matches!(status_of(&report, "h"), Status::Skipped(SkipReason::DependencyFailed(f)) if f == "f")
    );
    assert!(matches!(
        status_of(&report, "y"),
        Status::Skipped(SkipReason::BuildStopped)
    ));
    let (_, error) = report.failures().next().unwrap();
    assert!(matches!(error, TaskError::Run(_)));
    assert_eq!(error.to_string(), "f is broken");
    assert_eq!(
        SkipReason::DependencyFailed("f".into()).to_string(),
        "skipped because f failed"
    );
}

#[test]
fn keep_going_runs_everything_that_does_not_depend_on_the_failure() {
    let world = World::new();
    let (report, executed) = run(&world, OnFailure::KeepGoing);
    assert_eq!(executed, set(["f", "x", "y"]));
    assert_eq!(report.summary().executed, 2);
    assert_eq!(report.summary().skipped, 2);
}

#[test]
fn a_failed_task_is_not_cached() {
    let world = World::new();
    let broken = Arc::new(Mutex::new(true));
    let graph = || {
        let broken = broken.clone();
        let mut graph = Graph::new();
        let a = graph.add(
            world.toy("a").behaviour(move |_| {
                if *broken.lock().unwrap() {
                    Err("broken".into())
                } else {
                    Ok(b"fixed".to_vec())
                }
            }),
            &[],
        );
        graph.add(world.toy("b"), &[a]);
        graph
    };
    assert_eq!(world.run(graph()).1, set(["a"]));
    assert_eq!(world.run(graph()).1, set(["a"]));
    *broken.lock().unwrap() = false;
    let (report, executed) = world.run(graph());
    assert_eq!(executed, set(["a", "b"]));
    assert!(report.ok());
}

#[test]
fn a_panicking_task_fails_without_taking_the_build_down() {
    let world = World::new();
    let mut graph = Graph::new();
    graph.add(world.toy("boom").behaviour(|_| panic!("kaboom")), &[]);
    let (report, _) = world.run(graph);
    let (_, error) = report.failures().next().unwrap();
    assert_eq!(error.to_string(), "the task panicked: kaboom");
}
