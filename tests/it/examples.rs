//! The examples of the repository, built for every target by the real
//! `n2d build`, each output handed to the program that reads it (TESTING.md):
//! shellcheck, systemd-analyze, nix-instantiate, docker-compose,
//! kubernetes-validate, skopeo. Golden snapshots pin what n2d writes; the
//! consumers say whether it is right.
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{n2d_in, require_tool};

const TARGETS: [&str; 9] = [
    "json",
    "procfile",
    "process-compose",
    "systemd",
    "nixos",
    "vm",
    "oci",
    "compose",
    "k8s",
];

/// The examples copied into a temporary workspace (so the test never writes
/// into the repository), built for every target.
fn built_examples() -> (tempfile::TempDir, PathBuf) {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    for entry in walkdir::WalkDir::new(repo.join("examples"))
        .into_iter()
        .filter_map(Result::ok)
    {
        let target = root.join(entry.path().strip_prefix(repo).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    std::fs::copy(
        repo.join("n2d.workspace.toml"),
        root.join("n2d.workspace.toml"),
    )
    .unwrap();
    let mut args = vec!["build", "//examples/..."];
    for target in TARGETS {
        args.extend(["--target", target]);
    }
    let out = n2d_in(&root, &args);
    assert!(
        out.status.success(),
        "building the examples failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (dir, root.join("n2d-out"))
}

/// Files under `out` whose path ends with one of `suffixes`, sorted.
fn files(out: &Path, filter: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && filter(e.path()))
        .map(|e| e.into_path())
        .collect();
    found.sort();
    found
}

fn in_target(path: &Path, target: &str) -> bool {
    path.components().any(|c| c.as_os_str() == target)
}

fn run(mut command: Command, what: &str) {
    let out = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} rejected the output:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_example_passes_the_real_consumers() {
    let (_dir, out) = built_examples();

    if require_tool("shellcheck") {
        let scripts = files(&out, |p| {
            (in_target(p, "procfile") && p.parent().is_some_and(|d| d.ends_with("bin")))
                || p.ends_with("run-vm")
        });
        assert!(scripts.len() >= 6, "{scripts:?}");
        let mut command = Command::new("shellcheck");
        command.args(&scripts);
        run(command, "shellcheck");
    }

    if require_tool("systemd-analyze") {
        let units = files(&out, |p| {
            in_target(p, "systemd")
                && p.extension()
                    .is_some_and(|e| e == "service" || e == "target")
        });
        assert!(units.len() >= 6, "{units:?}");
        for unit in units {
            let result = Command::new("systemd-analyze")
                .args(["verify", "--man=no"])
                .arg(&unit)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&result.stderr);
            // The examples' programs (nginx, postgres) need not be installed
            // here; any other complaint fails the test.
            let other: Vec<&str> = stderr
                .lines()
                .filter(|l| !l.contains("is not executable: No such file"))
                .collect();
            assert!(
                result.status.success() || other.is_empty(),
                "{}: {stderr}",
                unit.display()
            );
            assert!(other.is_empty(), "{}: {stderr}", unit.display());
        }
    }

    if require_tool("nix-instantiate") {
        let nix = files(&out, |p| p.extension().is_some_and(|e| e == "nix"));
        assert!(nix.len() >= 4, "{nix:?}");
        for file in nix {
            let mut command = Command::new("nix-instantiate");
            command.arg("--parse").arg(&file);
            run(command, "nix-instantiate --parse");
        }
    }

    if require_tool("docker-compose") {
        let compose = files(&out, |p| {
            p.ends_with("compose.yaml") && in_target(p, "compose")
        });
        assert!(compose.len() >= 3, "{compose:?}");
        for file in compose {
            let mut command = Command::new("docker-compose");
            command.arg("-f").arg(&file).arg("config").arg("-q");
            run(command, "docker-compose config");
        }
    }

    if require_tool("kubernetes-validate") {
        let manifests = files(&out, |p| {
            in_target(p, "k8s") && p.extension().is_some_and(|e| e == "yaml")
        });
        assert!(manifests.len() >= 6, "{manifests:?}");
        let mut command = Command::new("kubernetes-validate");
        command.args(["--strict", "-k", "1.30.0"]).args(
            manifests
                .iter()
                .filter(|p| !p.ends_with("kustomization.yaml")),
        );
        run(command, "kubernetes-validate");
    }

    if require_tool("skopeo") {
        for index in files(&out, |p| in_target(p, "oci") && p.ends_with("index.json")) {
            let layout = index.parent().unwrap();
            let value: serde_json::Value =
                serde_json::from_slice(&std::fs::read(&index).unwrap()).unwrap();
            for manifest in value["manifests"].as_array().unwrap() {
                let tag = manifest["annotations"]["org.opencontainers.image.ref.name"]
                    .as_str()
                    .unwrap();
                let mut command = Command::new("skopeo");
                command
                    .arg("inspect")
                    .arg(format!("oci:{}:{tag}", layout.display()));
                run(command, "skopeo inspect");
            }
        }
    }
}

#[test]
fn every_example_renders_as_recorded() {
    let (_dir, out) = built_examples();
    // Image blobs are pinned by their digests in index.json and manifests.
    for file in files(&out, |p| {
        !in_target(p, "blobs") && !p.ends_with(".n2d-manifest")
    }) {
        let name = file
            .strip_prefix(&out)
            .unwrap()
            .to_string_lossy()
            .replace('/', "__");
        let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap()).into_owned();
        insta::assert_snapshot!(format!("example__{name}"), text);
    }
}

#[test]
fn init_writes_a_workspace_that_builds() {
    let dir = tempfile::tempdir().unwrap();
    let out = n2d_in(dir.path(), &["init"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let build = n2d_in(
        dir.path(),
        &["build", "//...", "--target", "procfile", "--target", "json"],
    );
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let again = n2d_in(dir.path(), &["init"]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "init refuses to overwrite a workspace"
    );
}
