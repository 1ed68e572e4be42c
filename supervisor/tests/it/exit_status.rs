//! The run's exit status and its one-line summary of what failed and why.

use n2d_supervisor::spec::{Condition, RestartPolicy};

use crate::{depends, Target};

/// Runs `target` and returns (exit code, summary line from stderr).
fn check(target: &Target) -> (i32, String) {
    let (status, _, stderr) = target.run();
    // The summary is the supervisor's last word.
    let summary = stderr
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no summary in {stderr:?}"))
        .to_owned();
    (status.code().expect("exited, not killed"), summary)
}

#[test]
fn all_services_ending_well_is_status_zero() {
    let mut target = Target::new();
    target.service("a", "exit 0");
    target.service("b", "exit 0").replicas = 2;
    assert_eq!(check(&target), (0, "all services ended well".into()));
}

#[test]
fn a_failing_service_gives_its_status_and_blocks_its_dependants() {
    let mut target = Target::new();
    let db = target.service("db", "exit 7");
    db.restart = RestartPolicy::OnFailure;
    db.max_restarts = Some(1);
    db.backoff_ms = 10;
    // Without a probe, `healthy` means running, and web could start while
    // db briefly runs; a probe that never passes makes db's failure decisive.
    db.readiness = crate::exec_probe(&["false"]);
    let web = target.service("web", "echo ran > web.ran");
    depends(web, "db", Condition::Healthy);
    let (code, summary) = check(&target);
    assert_eq!(code, 7);
    assert_eq!(
        summary,
        "db exited with status 7 after 1 restart, giving up; \
         web not started: dependency db exited with status 7 after 1 restart, giving up"
    );
    assert!(
        !target.path().join("web.ran").exists(),
        "web must not start"
    );
}

#[test]
fn a_missing_program_is_reported_as_not_startable() {
    let mut target = Target::new();
    target.service("ghost", "exit 0").command = vec!["bin/does-not-exist".into()];
    let (code, summary) = check(&target);
    assert_eq!(code, 127);
    assert_eq!(
        summary,
        "ghost cannot start: bin/does-not-exist is not an executable file"
    );
}

#[test]
fn a_service_killed_by_a_signal_gives_128_plus_the_signal() {
    let mut target = Target::new();
    target.service("victim", "kill -9 $$");
    let (code, summary) = check(&target);
    assert_eq!(code, 128 + 9);
    assert_eq!(summary, "victim was killed by signal 9");
}
