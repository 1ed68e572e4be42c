//! The control socket: status lists instances; reload restarts exactly the
//! services whose spec_digest changed, starts added and stops removed ones,
//! leaving the others' processes alone; restart and stop; stale sockets;
//! a client that never finishes its request holds up nobody.

use std::time::Duration;

use n2d_supervisor::{client, Change, Dependants, InstanceState, InstanceStatus};

use crate::{digest, wait_until, Target};

fn pids(status: &[InstanceStatus]) -> Vec<(String, Option<u32>)> {
    status.iter().map(|i| (i.instance.clone(), i.pid)).collect()
}

fn pid_of(status: &[InstanceStatus], instance: &str) -> u32 {
    status
        .iter()
        .find(|i| i.instance == instance)
        .and_then(|i| i.pid)
        .unwrap_or_else(|| panic!("{instance} has no pid in {status:?}"))
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid as i32, 0) == 0 }
}

fn all_running(dir: &std::path::Path, count: usize) -> Vec<InstanceStatus> {
    let mut last = Vec::new();
    wait_until("every instance runs", || {
        last = client::status(dir).unwrap_or_default();
        last.len() == count
            && last
                .iter()
                .all(|i| i.state == InstanceState::Running && i.pid.is_some())
    });
    last
}

#[test]
fn reload_applies_exactly_the_difference() {
    let mut target = Target::new();
    target.service("a", "exec sleep 1000");
    target.service("b", "exec sleep 1000").replicas = 2;
    target.service("c", "exec sleep 1000");
    let mut running = target.start();
    let before = all_running(target.path(), 4);
    assert_eq!(
        before
            .iter()
            .map(|i| i.instance.as_str())
            .collect::<Vec<_>>(),
        ["a", "b.1", "b.2", "c"]
    );

    // b changes, c goes away, d comes in; a stays as it is.
    target.services[1].spec_digest = digest("b, second build");
    target.services.remove(2);
    target.service("d", "exec sleep 1000");
    target.write_spec();
    let mut changes = client::reload(target.path(), Dependants::Keep).expect("reload");
    changes.sort_by_key(|c| format!("{c:?}"));
    let after = all_running(target.path(), 4);
    let mut expected = vec![
        Change::Restarted {
            instance: "b.1".into(),
            old_pid: Some(pid_of(&before, "b.1")),
            new_pid: pid_of(&after, "b.1"),
        },
        Change::Restarted {
            instance: "b.2".into(),
            old_pid: Some(pid_of(&before, "b.2")),
            new_pid: pid_of(&after, "b.2"),
        },
        Change::Started {
            instance: "d".into(),
            pid: pid_of(&after, "d"),
        },
        Change::Stopped {
            instance: "c".into(),
            pid: Some(pid_of(&before, "c")),
        },
    ];
    expected.sort_by_key(|c| format!("{c:?}"));
    assert_eq!(changes, expected);
    assert_eq!(
        pid_of(&after, "a"),
        pid_of(&before, "a"),
        "unchanged a keeps its process"
    );
    assert_ne!(pid_of(&after, "b.1"), pid_of(&before, "b.1"));
    assert!(!alive(pid_of(&before, "c")), "removed c is stopped");
    assert!(!alive(pid_of(&before, "b.2")), "the old b.2 is stopped");
    assert_eq!(
        changes
            .iter()
            .map(ToString::to_string)
            .find(|t| t.starts_with("restarted b.1")),
        Some(format!(
            "restarted b.1 (pid {}→{})",
            pid_of(&before, "b.1"),
            pid_of(&after, "b.1")
        ))
    );

    // A reload without any change touches nothing.
    assert_eq!(
        client::reload(target.path(), Dependants::Keep).expect("reload"),
        vec![]
    );
    assert_eq!(
        pids(&client::status(target.path()).expect("status")),
        pids(&after)
    );

    client::stop(target.path()).expect("stop");
    assert!(running.wait(Duration::from_secs(20)).success());
    assert!(!target.path().join("supervisor.sock").exists());
}

#[test]
fn restart_with_dependants_and_single_service_restart() {
    let mut target = Target::new();
    target.service("db", "exec sleep 1000");
    let api = target.service("api", "exec sleep 1000");
    api.depends_on
        .insert("db".into(), n2d_supervisor::spec::Condition::Started);
    target.service("other", "exec sleep 1000");
    let _running = target.start();
    let before = all_running(target.path(), 3);

    target.services[0].spec_digest = digest("db, second build");
    target.write_spec();
    let changes = client::reload(target.path(), Dependants::Restart).expect("reload");
    let restarted: Vec<String> = changes
        .iter()
        .map(|c| match c {
            Change::Restarted { instance, .. } => instance.clone(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(restarted.len(), 2);
    assert!(restarted.contains(&"db".to_owned()) && restarted.contains(&"api".to_owned()));
    let after = all_running(target.path(), 3);
    assert_eq!(pid_of(&after, "other"), pid_of(&before, "other"));

    let changes = client::restart(target.path(), "other").expect("restart");
    assert_eq!(changes.len(), 1);
    let now = all_running(target.path(), 3);
    assert_ne!(pid_of(&now, "other"), pid_of(&after, "other"));
    assert_eq!(pid_of(&now, "db"), pid_of(&after, "db"));

    let error = client::restart(target.path(), "nope").expect_err("unknown service");
    assert_eq!(
        error.to_string(),
        "supervisor refused the request: no service named nope"
    );
}

#[test]
fn a_stale_socket_is_replaced_and_a_live_one_is_refused() {
    let mut target = Target::new();
    target.service("a", "exec sleep 1000");
    let mut first = target.start();
    all_running(target.path(), 1);

    // A second supervisor on the same folder must refuse to start.
    let mut second = target.start();
    assert_eq!(second.wait(Duration::from_secs(20)).code(), Some(1));
    assert!(target
        .read("stderr.log")
        .contains("a supervisor is already running"));

    first.signal(libc::SIGKILL);
    first.wait(Duration::from_secs(20));
    assert!(
        target.path().join("supervisor.sock").exists(),
        "a killed run leaves its socket"
    );
    assert!(
        client::status(target.path()).is_err(),
        "nobody answers on a stale socket"
    );

    let mut third = target.start();
    all_running(target.path(), 1);
    client::stop(target.path()).expect("stop");
    assert!(third.wait(Duration::from_secs(20)).success());
}

#[test]
fn a_silent_client_holds_up_nobody() {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    let mut target = Target::new();
    target.service("a", "exec sleep 1000");
    let _running = target.start();
    all_running(target.path(), 1);
    let socket = target.path().join("supervisor.sock");
    let _silent = UnixStream::connect(&socket).expect("connect");
    let mut partial = UnixStream::connect(&socket).expect("connect");
    partial.write_all(b"sta").expect("write half a request");
    assert_eq!(client::status(target.path()).expect("status").len(), 1);
    let changes = client::restart(target.path(), "a").expect("restart");
    assert_eq!(changes.len(), 1, "{changes:?}");
    let error = client::stop(target.path());
    assert!(error.is_ok(), "{error:?}");
}
