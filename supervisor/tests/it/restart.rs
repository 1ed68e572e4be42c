//! Restart policy: growing backoff delays, giving up after `max_restarts`,
//! `always` restarting a clean exit, `no` never restarting.

use n2d_supervisor::spec::RestartPolicy;

use crate::{stamps, Target};

#[test]
fn failing_service_restarts_with_growing_delays_then_gives_up() {
    let mut target = Target::new();
    let crash = target.service("crash", "date +%s%N >> starts; exit 1");
    crash.restart = RestartPolicy::OnFailure;
    crash.max_restarts = Some(3);
    crash.backoff_ms = 100;
    let (status, _, stderr) = target.run();
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("crash exited with status 1 after 3 restarts, giving up"),
        "{stderr}"
    );
    let starts = stamps(&target.read("starts"));
    assert_eq!(starts.len(), 4, "one start and 3 restarts");
    let gaps: Vec<u128> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Backoff 100 ms, 200 ms, 400 ms: each gap longer than the one before.
    assert!(
        gaps.windows(2).all(|g| g[1] > g[0]),
        "gaps do not grow: {gaps:?}"
    );
}

#[test]
fn always_restarts_a_clean_exit() {
    let mut target = Target::new();
    let tick = target.service("tick", "echo run >> runs; exit 0");
    tick.restart = RestartPolicy::Always;
    tick.max_restarts = Some(2);
    tick.backoff_ms = 10;
    let (status, _, stderr) = target.run();
    assert!(
        status.success(),
        "a clean last exit is no failure: {stderr}"
    );
    assert_eq!(target.read("runs").lines().count(), 3);
}

#[test]
fn on_failure_does_not_restart_a_clean_exit_and_no_never_restarts() {
    let mut target = Target::new();
    target
        .service("clean", "echo run >> clean.runs; exit 0")
        .restart = RestartPolicy::OnFailure;
    target
        .service("once", "echo run >> once.runs; exit 0")
        .restart = RestartPolicy::No;
    target
        .service("broken", "echo run >> broken.runs; exit 4")
        .restart = RestartPolicy::No;
    let (status, _, stderr) = target.run();
    assert_eq!(status.code(), Some(4), "{stderr}");
    for file in ["clean.runs", "once.runs", "broken.runs"] {
        assert_eq!(target.read(file), "run\n", "{file}");
    }
}
