//! `n2d up` with the built-in supervisor: after its build the `n2d up`
//! process execs the small `n2d-supervise` executable next to it (same pid,
//! so signals and the terminal still reach it), which runs one thread, stops
//! every service on SIGTERM, and exits with the run's status and summary.
//! An `n2d-supervise` of another build hands over to `n2d __supervise`.
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{executable, TestWorkspace};

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

fn cmdline(pid: u32) -> Vec<String> {
    proc_file(pid, "cmdline")
        .split_terminator('\0')
        .map(str::to_string)
        .collect()
}

/// Three services that each write their pid to a file in `marks`.
fn three_services(marks: &Path) -> TestWorkspace {
    let mut text = String::new();
    for name in SERVICES {
        text.push_str(&format!(
            "[services.{name}]\ncommand = [\"/bin/sh\", \"-c\", \"echo $$ > {}/{name}; exec sleep 1000\"]\n\n",
            marks.display()
        ));
    }
    text.push_str("[deployments.dev]\nservices = [\":a\", \":b\", \":c\"]\n");
    workspace(&text)
}

const SERVICES: [&str; 3] = ["a", "b", "c"];

fn read_pid(marks: &Path, name: &str) -> Option<u32> {
    let text = std::fs::read_to_string(marks.join(name)).ok()?;
    text.strip_suffix('\n')?.parse().ok()
}

/// Starts `command` (which supervises the three services), waits until they
/// all run, and returns it.
fn start_supervising(mut command: Command, marks: &Path) -> Child {
    let child = command
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until("every service to start", || {
        SERVICES.iter().all(|n| read_pid(marks, n).is_some())
    });
    child
}

/// SIGTERMs the supervisor, which must exit well and leave no service behind.
fn stop_supervising(mut child: Child, marks: &Path) {
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
    for name in SERVICES {
        let service = read_pid(marks, name).unwrap();
        let stat = proc_file(service, "stat");
        assert!(
            stat.is_empty() || stat.contains(") Z"),
            "{name} outlived the supervisor: {stat}"
        );
    }
}

fn up_command(n2d: &Path, ws: &TestWorkspace) -> Command {
    let mut command = Command::new(n2d);
    command.current_dir(&ws.root).args(["up", "//app:dev"]);
    command
}

#[test]
fn up_becomes_the_supervisor_and_stops_every_service_on_sigterm() {
    let marks = tempfile::tempdir().unwrap();
    let ws = three_services(marks.path());
    let up = start_supervising(
        up_command(Path::new(env!("CARGO_BIN_EXE_n2d")), &ws),
        marks.path(),
    );
    let pid = up.id();
    // The small executable, not the `n2d __supervise` fallback.
    assert_eq!(executable(pid), "n2d-supervise");
    let cmdline = cmdline(pid);
    assert!(
        cmdline.last().is_some_and(|dir| dir.ends_with("procfile")),
        "{cmdline:?}"
    );
    assert!(
        proc_file(pid, "status").lines().any(|l| l == "Threads:\t1"),
        "the supervisor runs one thread:\n{}",
        proc_file(pid, "status")
    );
    stop_supervising(up, marks.path());
}

#[test]
fn without_the_supervise_executable_up_supervises_in_its_own_hidden_mode() {
    let marks = tempfile::tempdir().unwrap();
    let ws = three_services(marks.path());
    // `n2d` alone in a folder: linked (or copied) there, so that the
    // executable's folder has no `n2d-supervise`.
    let alone = tempfile::tempdir().unwrap();
    let n2d = alone.path().join("n2d");
    std::fs::hard_link(env!("CARGO_BIN_EXE_n2d"), &n2d)
        .or_else(|_| std::fs::copy(env!("CARGO_BIN_EXE_n2d"), &n2d).map(drop))
        .unwrap();
    let up = start_supervising(up_command(&n2d, &ws), marks.path());
    let pid = up.id();
    assert_eq!(executable(pid), "n2d");
    assert_eq!(cmdline(pid)[1], "__supervise");
    stop_supervising(up, marks.path());
}

#[test]
fn a_supervise_executable_of_another_build_hands_over_to_n2d() {
    let marks = tempfile::tempdir().unwrap();
    let ws = three_services(marks.path());
    assert!(ws.n2d(&["build", "//app:dev"]).status.success());
    let mut command = Command::new(env!("CARGO_BIN_EXE_n2d-supervise"));
    command
        .args([
            "--build",
            "another",
            "--fallback",
            env!("CARGO_BIN_EXE_n2d"),
        ])
        .arg("--")
        .arg(ws.root.join("n2d-out/app/dev/procfile"));
    let supervisor = start_supervising(command, marks.path());
    let pid = supervisor.id();
    assert_eq!(executable(pid), "n2d");
    assert_eq!(cmdline(pid)[1], "__supervise");
    stop_supervising(supervisor, marks.path());
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
