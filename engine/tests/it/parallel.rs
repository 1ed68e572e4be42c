//! Independent tasks overlap with two jobs, and progress events report
//! every task.
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use n2d_engine::{Graph, OnFailure, Progress};

use crate::support::{set, World};

/// Long enough to never fire on a working engine; it only turns a
/// serialized schedule (a deadlock here) into a failure instead of a hang.
const DEADLOCK_GUARD: Duration = Duration::from_secs(60);

#[test]
fn independent_tasks_run_at_the_same_time_with_two_jobs() {
    let world = World::new();
    let (left_arrived, left_seen) = mpsc::channel::<()>();
    let (right_arrived, right_seen) = mpsc::channel::<()>();
    let rendezvous = |arrive: mpsc::Sender<()>, other: mpsc::Receiver<()>| {
        let other = Mutex::new(other);
        move |_: &n2d_engine::RunContext<'_>| {
            arrive.send(()).unwrap();
            // Returns only if the other task is running at the same time.
            other.lock().unwrap().recv_timeout(DEADLOCK_GUARD)?;
            Ok(b"met".to_vec())
        }
    };
    let mut graph = Graph::new();
    let left = graph.add(
        world
            .toy("left")
            .behaviour(rendezvous(left_arrived, right_seen)),
        &[],
    );
    let right = graph.add(
        world
            .toy("right")
            .behaviour(rendezvous(right_arrived, left_seen)),
        &[],
    );
    graph.add(world.toy("join"), &[left, right]);
    let (report, executed) = world.run(graph);
    assert!(
        report.ok(),
        "{:?}",
        report
            .failures()
            .map(|(_, e)| e.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(executed, set(["left", "right", "join"]));
}

#[test]
fn progress_reports_started_for_executed_and_finished_for_every_task() {
    let world = World::new();
    let started = Arc::new(AtomicUsize::new(0));
    let finished = Arc::new(AtomicUsize::new(0));
    let graph = || {
        let mut graph = Graph::new();
        let a = graph.add(world.toy("a"), &[]);
        graph.add(world.toy("b"), &[a]);
        graph.add(world.toy("c"), &[a]);
        graph
    };
    for expected_started in [3, 0] {
        started.store(0, Ordering::SeqCst);
        finished.store(0, Ordering::SeqCst);
        let mut engine = world.engine(2, OnFailure::Stop);
        let (s, f) = (started.clone(), finished.clone());
        engine.on_progress(move |event| match event {
            Progress::Started { .. } => {
                s.fetch_add(1, Ordering::SeqCst);
            }
            Progress::Finished { .. } => {
                f.fetch_add(1, Ordering::SeqCst);
            }
        });
        engine.run(graph()).unwrap();
        assert_eq!(started.load(Ordering::SeqCst), expected_started);
        assert_eq!(finished.load(Ordering::SeqCst), 3);
    }
}
