//! The oci target: reproducible layouts that skopeo, umoci and podman accept
//! and run, and `podman kube play` on the k8s output over an n2d image.
use std::collections::BTreeMap;
use std::path::Path;

use n2d_modules::service::Service;
use n2d_rules::k8s::K8sRule;
use n2d_rules::oci::{image_reference, load_command, OciRule};
use serde_json::json;

use super::fixtures::{self, MemorySources};
use super::output::{render_deployment, run_ok, DeploymentOutput};
use crate::support::{busybox_base_layer, require_tool, service};

/// A deployment of one service, `hello`, that prints its env and args.
fn hello() -> (n2d_rules::Deployment, Vec<Service>, MemorySources) {
    let hello = service(json!({
        "name": "hello",
        "label": "//examples/hello:hello",
        "command": ["sh", "-c", "echo \"greeting=$GREETING motd=$(cat /etc/n2d/hello/motd) args=$*\"", "sh", "one", "two words"],
        "env": { "GREETING": "hi $USER 'quoted'" },
        "files": { "motd": { "text": "welcome" } },
        "volumes": { "scratch": { "path": "/tmp/scratch", "persist": false } },
        "pre_start": "mkdir -p /tmp/pre",
    }));
    let mut deployment = fixtures::deployment("dev", &[&hello]);
    deployment.package = "examples/hello".into();
    deployment.base_layer = Some("base/busybox.tar".into());
    let sources = MemorySources(BTreeMap::from([(
        "base/busybox.tar".to_string(),
        busybox_base_layer(),
    )]));
    (deployment, vec![hello], sources)
}

const HELLO_OUTPUT: &str = "greeting=hi $USER 'quoted' motd=welcome args=one two words";

#[test]
fn same_inputs_give_the_same_image_in_any_folder() {
    let (deployment, services, sources) = hello();
    let first = render_deployment(&OciRule, &deployment, &services, &sources);
    let second = render_deployment(&OciRule, &deployment, &services, &sources);
    assert_eq!(first.artifacts, second.artifacts);
    let index: serde_json::Value = serde_json::from_str(&first.text("index.json")).unwrap();
    let tags: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(tags[0], "dev-hello");
    assert!(tags[1].starts_with("dev-hello-") && tags[1].len() == "dev-hello-".len() + 12);
    if !require_tool("skopeo") {
        return;
    }
    let digests: Vec<String> = [&first, &second]
        .iter()
        .map(|output| {
            let dir = tempfile::tempdir().unwrap();
            output.write_to(dir.path());
            let inspect = run_ok(
                dir.path(),
                "skopeo",
                &[
                    "inspect",
                    &format!("oci:{}:dev-hello", dir.path().display()),
                ],
            );
            let inspect: serde_json::Value = serde_json::from_str(&inspect).unwrap();
            inspect["Digest"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(digests[0], digests[1]);
    assert_eq!(
        digests[0],
        index["manifests"][0]["digest"].as_str().unwrap()
    );
}

#[test]
fn every_image_of_the_shop_passes_skopeo_and_umoci() {
    let (mut deployment, services, mut sources) = fixtures::shop();
    deployment.base_layer = Some("base/busybox.tar".into());
    sources
        .0
        .insert("base/busybox.tar".into(), busybox_base_layer());
    let output = render_deployment(&OciRule, &deployment, &services, &sources);
    insta::assert_debug_snapshot!("containers_oci_shop_warnings", output.warnings);
    insta::assert_snapshot!("containers_oci_shop_index", output.text("index.json"));
    if !require_tool("skopeo") || !require_tool("umoci") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    output.write_to(dir.path());
    let layout = dir.path().join("layout");
    output.write_to(&layout);
    for tag in ["prod-api", "prod-migrate"] {
        let target = format!("oci:{}:{tag}", layout.display());
        let inspect = run_ok(dir.path(), "skopeo", &["inspect", "--config", &target]);
        let config: serde_json::Value = serde_json::from_str(&inspect).unwrap();
        assert_eq!(config["config"]["Entrypoint"], json!(["/n2d/entrypoint"]));
        let bundle = dir.path().join(format!("bundle-{tag}"));
        run_ok(
            dir.path(),
            "umoci",
            &[
                "unpack",
                "--rootless",
                "--image",
                &format!("{}:{tag}", layout.display()),
                bundle.to_str().unwrap(),
            ],
        );
        assert!(bundle.join("rootfs/n2d/entrypoint").is_file());
        assert!(bundle.join("rootfs/usr/local/bin/api").is_file());
    }
    let api_toml = dir
        .path()
        .join("bundle-prod-api/rootfs/etc/n2d/api/api.toml");
    assert_eq!(
        std::fs::read_to_string(api_toml).unwrap(),
        "listen = 8080\n"
    );
}

const PODMAN: [&str; 4] = ["--runtime", "runc", "--cgroup-manager", "cgroupfs"];

/// Loads the image of `service` from `layout` into the local store.
fn load(dir: &Path, deployment: &n2d_rules::Deployment, service: &Service) {
    let command = load_command(deployment, service, dir.join("oci").to_str().unwrap());
    let args: Vec<&str> = command[1..].iter().map(String::as_str).collect();
    run_ok(dir, &command[0], &args);
}

fn write(dir: &Path, output: &DeploymentOutput) {
    output.write_to(dir);
}

#[test]
fn podman_runs_the_image_and_the_k8s_manifests() {
    if !require_tool("podman") || !require_tool("skopeo") {
        return;
    }
    let (deployment, services, sources) = hello();
    let dir = tempfile::tempdir().unwrap();
    let oci = render_deployment(&OciRule, &deployment, &services, &sources);
    write(&dir.path().join("oci"), &oci);
    load(dir.path(), &deployment, &services[0]);
    let image = image_reference(&deployment, &services[0]);

    let mut args = PODMAN.to_vec();
    args.extend(["run", "--rm", "--network", "none", image.as_str()]);
    let out = run_ok(dir.path(), "podman", &args);
    assert_eq!(out.trim_end(), HELLO_OUTPUT);

    let k8s = render_deployment(&K8sRule, &deployment, &services, &sources);
    let k8s_dir = dir.path().join("k8s");
    write(&k8s_dir, &k8s);
    let manifest = k8s_dir.join("hello.yaml");
    let manifest = manifest.to_str().unwrap();
    let mut play = PODMAN.to_vec();
    play.extend(["kube", "play", "--replace", "--network", "none", manifest]);
    run_ok(dir.path(), "podman", &play);
    // The container exits after printing and is restarted: wait until its
    // log holds the line (bounded by attempts, not by a time threshold).
    // The pod's name differs between podman versions (`hello-pod`,
    // `hello-pod-0`): read the log of every container of a `hello-pod*` pod.
    let mut logs = String::new();
    for _ in 0..50 {
        let names = run_ok(
            dir.path(),
            "podman",
            &["ps", "-a", "--format", "{{.Names}}"],
        );
        logs.clear();
        for name in names
            .lines()
            .filter(|n| n.starts_with("hello-pod") && n.ends_with("-hello"))
        {
            let out = std::process::Command::new("podman")
                .args(PODMAN)
                .args(["logs", name])
                .output()
                .unwrap();
            logs.push_str(&String::from_utf8_lossy(&out.stdout));
        }
        if logs.contains(HELLO_OUTPUT) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let mut down = PODMAN.to_vec();
    down.extend(["kube", "down", manifest]);
    run_ok(dir.path(), "podman", &down);
    assert!(logs.contains(HELLO_OUTPUT), "pod log: {logs}");
}
