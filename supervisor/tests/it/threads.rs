//! The supervisor runs its loop on one thread: no thread per instance, so
//! that a thousand services do not mean thousands of threads in the process
//! every keeper is forked from. Probe helpers exist only while probing.

use std::time::Duration;

use n2d_supervisor::{client, InstanceState};

use crate::{wait_until, Target};

fn threads_of(pid: i32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("a Threads: line")
}

#[test]
fn forty_running_services_are_supervised_by_one_thread() {
    let mut target = Target::new();
    for i in 0..20 {
        target.service(&format!("svc{i}"), "echo up; exec sleep 1000");
    }
    target.service("many", "echo up; exec sleep 1000").replicas = 20;
    let mut running = target.start();
    wait_until("every instance runs", || {
        client::status(target.path()).is_ok_and(|instances| {
            instances.len() == 40
                && instances
                    .iter()
                    .all(|i| i.state == InstanceState::Running && i.pid.is_some())
        })
    });
    // Running means started, not that `echo up` has run yet: wait for
    // every instance's line before stopping them.
    let ups = |target: &Target| {
        target
            .read("stdout.log")
            .lines()
            .filter(|l| l.ends_with("| up"))
            .count()
    };
    wait_until("every instance printed its line", || ups(&target) == 40);
    assert_eq!(threads_of(running.pid()), 1);
    running.signal(libc::SIGTERM);
    assert!(running.wait(Duration::from_secs(20)).success());
    assert_eq!(ups(&target), 40);
}
