//! Stopping: SIGTERM stops services in reverse dependency order and leaves
//! no process of the run behind, grandchildren included; SIGKILL of the
//! supervisor leaves none either; a service ignoring its stop signal is killed.

use std::time::Duration;

use n2d_supervisor::spec::Condition;

use crate::{depends, wait_until, Target};

/// Services that spawn grandchildren in their own group and wait on them.
fn target_with_grandchildren() -> Target {
    let mut target = Target::new();
    target.service("db", "sleep 1000 & sleep 1000 & echo up > db.up; wait");
    let web = target.service("web", "sh -c 'sleep 1000 & wait' & echo up > web.up; wait");
    web.replicas = 2;
    depends(web, "db", Condition::Started);
    target
}

fn wait_for_grandchildren(target: &Target) {
    wait_until("services are up", || {
        target.read("db.up") == "up\n" && target.read("web.up") == "up\n"
    });
    // db: sh + 2 sleeps; each web: sh + sh + sleep (×2).
    wait_until("grandchildren exist", || {
        target.leftover_processes().len() >= 1 + 3 + 3 + 3
    });
}

#[test]
fn sigterm_leaves_no_process_behind() {
    let target = target_with_grandchildren();
    let mut running = target.start();
    wait_for_grandchildren(&target);
    running.signal(libc::SIGTERM);
    let status = running.wait(Duration::from_secs(20));
    assert!(status.success(), "{}", target.read("stderr.log"));
    // The keeper reaps its whole group before reporting, so nothing is left
    // at the moment the supervisor has exited.
    assert_eq!(target.leftover_processes(), Vec::<String>::new());
    assert!(
        !target.path().join("supervisor.sock").exists(),
        "socket removed"
    );
}

#[test]
fn sigkill_of_the_supervisor_leaves_no_process_behind() {
    let target = target_with_grandchildren();
    let mut running = target.start();
    wait_for_grandchildren(&target);
    running.signal(libc::SIGKILL);
    running.wait(Duration::from_secs(20));
    wait_until("every process of the run is gone", || {
        target.leftover_processes().is_empty()
    });
}

#[test]
fn stop_goes_in_reverse_dependency_order() {
    let mut target = Target::new();
    let record = |name: &str| {
        format!("trap 'echo {name} >> stops; exit 0' TERM; echo up > {name}.up; while :; do sleep 0.05; done")
    };
    target.service("db", &record("db"));
    let api = target.service("api", &record("api"));
    depends(api, "db", Condition::Started);
    let web = target.service("web", &record("web"));
    depends(web, "api", Condition::Started);
    let mut running = target.start();
    wait_until("all up", || {
        ["db", "api", "web"]
            .iter()
            .all(|n| target.read(&format!("{n}.up")) == "up\n")
    });
    running.signal(libc::SIGINT);
    assert!(running.wait(Duration::from_secs(20)).success());
    assert_eq!(target.read("stops"), "web\napi\ndb\n");
}

#[test]
fn a_service_ignoring_its_stop_signal_is_killed_after_the_timeout() {
    let mut target = Target::new();
    let stubborn = target.service(
        "stubborn",
        "trap '' TERM; echo up > up; while :; do sleep 0.05; done",
    );
    stubborn.stop_timeout_ms = 300;
    let mut running = target.start();
    wait_until("up", || target.read("up") == "up\n");
    running.signal(libc::SIGTERM);
    assert!(running.wait(Duration::from_secs(20)).success());
    assert!(
        target
            .read("stdout.log")
            .contains("stubborn did not stop within 300 ms: killing it"),
        "{}",
        target.read("stdout.log")
    );
    assert_eq!(target.leftover_processes(), Vec::<String>::new());
}
