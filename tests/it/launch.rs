//! `n2d up` / `n2d down` with a detached manager: the launch runs only when
//! the output changed since the last launch (or with `--force`), and `down`
//! stops what `up` started. A fake `kubectl` first on PATH records its calls,
//! so no cluster is needed.
use std::path::Path;
use std::process::{Command, Output};

use crate::support::TestWorkspace;

fn fake_kubectl(bin: &Path, log: &Path) {
    std::fs::create_dir_all(bin).unwrap();
    let script = format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display());
    crate::support::write_executable(&bin.join("kubectl"), &script);
}

fn n2d_with_path(ws: &TestWorkspace, bin: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(&ws.root)
        .args(args)
        .env("PATH", path)
        .output()
        .unwrap()
}

fn calls(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_detached_launch_runs_only_when_the_output_changed() {
    let ws = TestWorkspace::new();
    ws.write(
        "app/n2d.toml",
        "[services.web]\nimage = \"docker.io/library/nginx:1\"\nports.http = 80\nenv.MODE = \"one\"\n\n[deployments.prod]\nservices = [\":web\"]\n",
    );
    let tools = tempfile::tempdir().unwrap();
    let log = tools.path().join("calls");
    fake_kubectl(&tools.path().join("bin"), &log);
    let bin = tools.path().join("bin");

    let up = |extra: &[&str]| {
        let mut args = vec!["up", "//app:prod", "--target", "k8s"];
        args.extend_from_slice(extra);
        let out = n2d_with_path(&ws, &bin, &args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    // The launch is the build's last task: `by_kind.launch` counts it as
    // executed when the manager ran, cached when the output was launched.
    let launch_counts = |out: &Output| {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let summary: serde_json::Value =
            serde_json::from_str(stdout.lines().last().expect("a JSON summary")).unwrap();
        crate::support::counts(&summary, "launch")
    };
    let first = up(&["--json"]);
    assert_eq!(launch_counts(&first), (1, 0));
    assert_eq!(calls(&log).len(), 1, "{:?}", calls(&log));
    assert!(
        calls(&log)[0].starts_with("apply --server-side"),
        "{:?}",
        calls(&log)
    );

    let again = up(&["--json"]);
    assert_eq!(launch_counts(&again), (0, 1));
    assert_eq!(
        calls(&log).len(),
        1,
        "an unchanged output is not launched again"
    );
    assert!(String::from_utf8_lossy(&again.stderr).contains("already launched"));

    let forced = up(&["--force", "--json"]);
    assert_eq!(launch_counts(&forced), (1, 0));
    assert_eq!(calls(&log).len(), 2, "--force launches again");

    let text = ws.read("app/n2d.toml").replace("\"one\"", "\"two\"");
    ws.write("app/n2d.toml", &text);
    up(&[]);
    assert_eq!(calls(&log).len(), 3, "a changed output is launched");

    let down = n2d_with_path(&ws, &bin, &["down", "//app:prod", "--target", "k8s"]);
    assert!(
        down.status.success(),
        "{}",
        String::from_utf8_lossy(&down.stderr)
    );
    assert!(calls(&log)[3].starts_with("delete"), "{:?}", calls(&log));
    up(&[]);
    assert_eq!(calls(&log).len(), 5, "after down, up launches again");
}

#[test]
fn an_unknown_or_missing_manager_is_a_clear_error() {
    let ws = TestWorkspace::new();
    ws.write(
        "app/n2d.toml",
        "[services.web]\ncommand = [\"/bin/true\"]\n[deployments.dev]\nservices = [\":web\"]\n",
    );
    let out = ws.n2d(&["up", "//app:dev", "--target", "k8s", "--manager", "helm"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not a manager of the `k8s` target") && stderr.contains("kubectl"),
        "{stderr}"
    );

    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(&ws.root)
        .args(["up", "//app:dev", "--target", "process-compose"])
        .env("PATH", empty.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs process-compose, which is not installed"),
        "{stderr}"
    );
}

#[test]
fn targets_lists_every_target_with_its_managers() {
    let ws = TestWorkspace::new();
    let out = ws.n2d(&["targets"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for target in [
        "json",
        "procfile",
        "process-compose",
        "systemd",
        "nixos",
        "vm",
        "oci",
        "compose",
        "k8s",
    ] {
        assert!(
            stdout.lines().any(|l| l.starts_with(target)),
            "{target} missing:\n{stdout}"
        );
    }
    assert!(stdout.contains("supervisor (built in)"), "{stdout}");
    assert!(stdout.contains("podman-kube"), "{stdout}");
}

#[test]
fn a_failed_launch_fails_up_and_is_tried_again() {
    let ws = TestWorkspace::new();
    ws.write(
        "app/n2d.toml",
        "[services.web]\nimage = \"docker.io/library/nginx:1\"\n\n[deployments.prod]\nservices = [\":web\"]\n",
    );
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("bin");
    let log = tools.path().join("calls");
    std::fs::create_dir_all(&bin).unwrap();
    let kubectl = bin.join("kubectl");
    crate::support::write_executable(
        &kubectl,
        "#!/bin/sh\necho 'the cluster is unreachable' >&2\nexit 1\n",
    );
    let args = ["up", "//app:prod", "--target", "k8s"];
    let failed = n2d_with_path(&ws, &bin, &args);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("launch //app:prod (k8s) with kubectl"),
        "{stderr}"
    );
    assert!(stderr.contains("the cluster is unreachable"), "{stderr}");

    // Nothing was recorded as launched: once the tool works, up launches.
    fake_kubectl(&bin, &log);
    let out = n2d_with_path(&ws, &bin, &args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(calls(&log).len(), 1, "{:?}", calls(&log));
}
