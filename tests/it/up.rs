//! `n2d up` with the built-in supervisor: after its build the `n2d up`
//! process execs itself into the supervisor's own image (same pid, so
//! signals and the terminal still reach it), which runs one thread, stops
//! every service on SIGTERM, and exits with the run's status and summary.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::TestWorkspace;

const PATIENCE: Duration = Duration::from_secs(60);

fn workspace(services: &str) -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write("n2d.workspace.toml", "default_targets = [\"procfile\"]\n");
    ws.write("app/n2d.toml", services);
    ws
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn proc_file(pid: u32, file: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default()
}

#[test]
fn up_becomes_the_supervisor_and_stops_every_service_on_sigterm() {
    let marks = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for name in ["a", "b", "c"] {
        text.push_str(&format!(
            "[services.{name}]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {}/{name}; exec sleep 1000\"]\n\n",
            marks.path().display()
        ));
    }
    text.push_str("[deployments.dev]\nservices = [\":a\", \":b\", \":c\"]\n");
    let ws = workspace(&text);
    let mut up = Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(&ws.root)
        .args(["up", "//app:dev"])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = up.id();
    let read_pid = |name: &str| -> Option<u32> {
        let text = std::fs::read_to_string(marks.path().join(name)).ok()?;
        text.strip_suffix('\n')?.parse().ok()
    };
    wait_until("every service to start", || {
        ["a", "b", "c"].iter().all(|n| read_pid(n).is_some())
    });
    let cmdline: Vec<String> = proc_file(pid, "cmdline")
        .split_terminator('\0')
        .map(str::to_string)
        .collect();
    assert_eq!(cmdline[1], "__supervise", "{cmdline:?}");
    assert!(
        cmdline.last().is_some_and(|dir| dir.ends_with("procfile")),
        "{cmdline:?}"
    );
    assert!(
        proc_file(pid, "status").lines().any(|l| l == "Threads:\t1"),
        "the supervisor runs one thread:\n{}",
        proc_file(pid, "status")
    );
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let status = up.wait().unwrap();
    assert!(status.success(), "{status}");
    for name in ["a", "b", "c"] {
        let service = read_pid(name).unwrap();
        let stat = proc_file(service, "stat");
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "{name} outlived n2d up: {stat}"
        );
    }
}

#[test]
fn up_exits_with_the_failing_service_status_and_its_summary() {
    let ws = workspace(
        "[services.fine]\ncommand = [\"/bin/sh\", \"-c\", \"echo all good\"]\n\n[services.broken]\ncommand = [\"/bin/sh\", \"-c\", \"echo about to fail; exit 3\"]\nrestart = \"no\"\n\n[deployments.dev]\nservices = [\":fine\", \":broken\"]\n",
    );
    let out = ws.n2d(&["up", "//app:dev"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("fine   | all good"), "{stdout}");
    assert!(stdout.contains("broken | about to fail"), "{stdout}");
    assert_eq!(
        stderr.lines().last(),
        Some("broken exited with status 3"),
        "{stderr}"
    );
}
