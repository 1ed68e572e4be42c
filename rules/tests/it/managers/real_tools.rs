//! The managers whose tool is installed in CI launch folders built by the
//! rules, for real: honcho on a procfile folder, podman-compose on a compose
//! folder and `podman kube play` on a k8s folder, both over an image n2d
//! built (loaded by the managers from the sibling oci folder).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use n2d_rules::compose::ComposeRule;
use n2d_rules::k8s::K8sRule;
use n2d_rules::manager::{
    Honcho, LaunchContext, Manager, ManagerError, PodmanCompose, PodmanKube, PodmanOptions,
};
use n2d_rules::oci::OciRule;
use n2d_rules::procfile::Procfile;
use n2d_rules::Deployment;
use serde_json::json;

use super::fixture::{self, MemorySources};
use crate::support::{require_tool, service};

#[test]
fn honcho_runs_the_procfile_folder() {
    if !require_tool("honcho") {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("out.log");
    let ready = root.path().join("two-started");
    // `one` waits (bounded) until `two` has started, then ends, and honcho
    // stops `two`: the run ends by itself with both lines written.
    let one = service(json!({
        "name": "one",
        "label": "//tests/managers:one",
        "command": ["sh", "-c", "echo \"one says $GREETING\" >> \"$1\"; i=0; while [ ! -e \"$2\" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done", "sh", out, ready],
        "env": { "GREETING": "hello 'quoted' $HOME" },
    }));
    let two = service(json!({
        "name": "two",
        "label": "//tests/managers:two",
        "command": ["sh", "-c", "echo \"two runs in $(basename \"$PWD\")\" >> \"$1\"; touch \"$2\"; exec sleep 30", "sh", out, ready],
        "restart": "no",
    }));
    let services = vec![one, two];
    let deployment = fixture::deployment("honcho", &services);
    let dir = root.path().join("procfile");
    fixture::build_folder(
        &Procfile,
        &deployment,
        &services,
        &MemorySources::default(),
        &dir,
    );
    let ctx = LaunchContext::new(&dir, &deployment);
    // honcho's exit status after it stopped `two` depends on its version;
    // it must have run, and the services' output shows it ran the folder.
    match Honcho.up(&ctx) {
        Ok(()) | Err(ManagerError::Failed { .. }) => {}
        Err(other) => panic!("honcho did not run: {other}"),
    }
    let log = std::fs::read_to_string(&out).expect("the services wrote their lines");
    let mut lines: Vec<&str> = log.lines().collect();
    lines.sort();
    assert_eq!(lines[0], "one says hello 'quoted' $HOME", "{log}");
    assert!(lines[1].starts_with("two runs in "), "{log}");
}

/// The podman flags of this sandbox (TESTING.md), as a user would set them
/// in `N2D_PODMAN_ARGS` and `N2D_PODMAN_NETWORK`.
fn sandbox_podman() -> PodmanOptions {
    PodmanOptions {
        global_args: ["--runtime", "runc", "--cgroup-manager", "cgroupfs"]
            .map(String::from)
            .to_vec(),
        kube_network: Some("none".into()),
    }
}

const GREETING: &str = "built by n2d, launched by a manager";

/// A deployment `name` of one service `service` built by n2d on busybox,
/// printing [`GREETING`] and a file, with its oci folder and the folder of
/// `target` side by side under the returned root.
fn image_deployment(
    name: &str,
    service_name: &str,
    rule: &dyn n2d_rules::Rule,
    target: &str,
) -> (tempfile::TempDir, Deployment) {
    let hello = service(json!({
        "name": service_name,
        "label": format!("//tests/managers:{service_name}"),
        "command": ["sh", "-c", "echo \"$0 $(cat /etc/n2d/$1/motd)\"", GREETING, service_name],
        "files": { "motd": { "text": "(motd)" } },
        "restart": "no",
    }));
    let services = vec![hello];
    let mut deployment = fixture::deployment(name, &services);
    deployment.base_layer = Some("base/busybox.tar".into());
    let sources = MemorySources(BTreeMap::from([(
        "base/busybox.tar".to_string(),
        crate::support::busybox_base_layer(),
    )]));
    let root = tempfile::tempdir().unwrap();
    fixture::build_folder(
        &OciRule,
        &deployment,
        &services,
        &sources,
        &root.path().join("oci"),
    );
    fixture::build_folder(
        rule,
        &deployment,
        &services,
        &sources,
        &root.path().join(target),
    );
    (root, deployment)
}

/// Calls `down` when dropped, so that a failed assertion leaves no
/// container or pod behind.
struct DownOnDrop<'a> {
    manager: &'a dyn Manager,
    ctx: &'a LaunchContext<'a>,
    done: bool,
}

impl DownOnDrop<'_> {
    fn down(mut self) {
        self.done = true;
        self.manager.down(self.ctx).expect("down");
    }
}

impl Drop for DownOnDrop<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.manager.down(self.ctx);
        }
    }
}

fn podman(args: &[&str]) -> String {
    let out = Command::new("podman")
        .args(sandbox_podman().global_args)
        .args(args)
        .output()
        .expect("run podman");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The logs of every container whose name passes `select`, polled until
/// they hold `expected` (bounded by attempts, not by a time threshold).
fn wait_for_logs(select: impl Fn(&str) -> bool, expected: &str) -> String {
    let mut logs = String::new();
    for _ in 0..100 {
        logs.clear();
        for name in podman(&["ps", "-a", "--format", "{{.Names}}"])
            .lines()
            .filter(|n| select(n))
        {
            logs.push_str(&podman(&["logs", name]));
        }
        if logs.contains(expected) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    logs
}

fn folder(root: &Path, target: &str) -> PathBuf {
    root.join(target)
}

#[test]
fn podman_compose_launches_the_compose_folder_on_an_n2d_image() {
    if !require_tool("podman") || !require_tool("podman-compose") {
        return;
    }
    let (root, deployment) = image_deployment("mgrcompose", "greeter", &ComposeRule, "compose");
    let dir = folder(root.path(), "compose");
    let ctx = LaunchContext::new(&dir, &deployment);
    assert_eq!(ctx.project, "tests-managers-mgrcompose");
    let manager = PodmanCompose {
        podman: sandbox_podman(),
    };
    let guard = DownOnDrop {
        manager: &manager,
        ctx: &ctx,
        done: false,
    };
    manager.up(&ctx).expect("podman-compose up");
    let expected = format!("{GREETING} (motd)");
    let logs = wait_for_logs(
        |n| n.starts_with("tests-managers-mgrcompose_greeter"),
        &expected,
    );
    assert!(logs.contains(&expected), "container logs: {logs}");
    guard.down();
    let left = podman(&["ps", "-a", "--format", "{{.Names}}"]);
    assert!(
        !left.contains("tests-managers-mgrcompose_"),
        "left after down: {left}"
    );
}

#[test]
fn podman_kube_plays_the_k8s_folder_on_an_n2d_image() {
    if !require_tool("podman") {
        return;
    }
    let (root, deployment) = image_deployment("mgrkube", "kubegreeter", &K8sRule, "k8s");
    let dir = folder(root.path(), "k8s");
    let ctx = LaunchContext::new(&dir, &deployment);
    let manager = PodmanKube {
        podman: sandbox_podman(),
    };
    let guard = DownOnDrop {
        manager: &manager,
        ctx: &ctx,
        done: false,
    };
    manager.up(&ctx).expect("podman kube play");
    // The pod's name differs between podman versions (`<name>-pod`,
    // `<name>-pod-0`): every container of a `kubegreeter-pod*` pod counts.
    let expected = format!("{GREETING} (motd)");
    let logs = wait_for_logs(
        |n| n.starts_with("kubegreeter-pod") && n.ends_with("-kubegreeter"),
        &expected,
    );
    assert!(logs.contains(&expected), "pod logs: {logs}");
    guard.down();
    let left = podman(&["pod", "ps", "--format", "{{.Name}}"]);
    assert!(!left.contains("kubegreeter-pod"), "left after down: {left}");
}
