//! Running `n2d` in temporary workspaces.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary workspace: `n2d.workspace.toml` plus the files a test writes.
pub struct TestWorkspace {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl TestWorkspace {
    pub fn new() -> TestWorkspace {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let root = dir.path().join("ws");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(
            root.join("n2d.workspace.toml"),
            "default_targets = [\"json\"]\n",
        )
        .unwrap();
        TestWorkspace { _dir: dir, root }
    }

    /// Writes `text` to `path` (relative to the root), creating folders.
    pub fn write(&self, path: &str, text: &str) -> &Self {
        let file = self.root.join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
        self
    }

    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.root.join(path))
            .unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    /// The cache's pack files (where it keeps blob bytes), each garbled
    /// past its header by `flip` (every byte whose index passes it is
    /// inverted in part). Fails when there is none.
    pub fn garble_packs(&self, flip: impl Fn(usize) -> bool) {
        let packs: Vec<PathBuf> = std::fs::read_dir(self.root.join(".n2d/packs"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(!packs.is_empty(), "the build stored its outputs in packs");
        for pack in packs {
            let mut bytes = std::fs::read(&pack).unwrap();
            for (i, byte) in bytes.iter_mut().enumerate().skip(32) {
                if flip(i) {
                    *byte ^= 0x5a;
                }
            }
            std::fs::write(&pack, bytes).unwrap();
        }
    }

    /// Sets the mtime of every module file and of every folder discovery
    /// walks an hour back, as if written long ago: the no-op fast path
    /// never trusts files modified within two seconds of a build, nor a
    /// folder listing taken within two seconds of its last change.
    pub fn age(&self) {
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_entry(|e| !matches!(e.file_name().to_str(), Some("n2d-out" | ".n2d")))
            .filter_map(Result::ok)
        {
            let name = entry.file_name().to_string_lossy();
            if entry.file_type().is_dir() {
                let folder = std::fs::File::open(entry.path()).unwrap();
                folder.set_modified(old).unwrap();
            } else if entry.file_type().is_file()
                && (name == "n2d.toml" || name == "n2d.workspace.toml")
            {
                let file = std::fs::File::options()
                    .append(true)
                    .open(entry.path())
                    .unwrap();
                file.set_modified(old).unwrap();
            }
        }
    }

    /// Runs `n2d ARGS` in the root.
    pub fn n2d(&self, args: &[&str]) -> Output {
        n2d_in(&self.root, args)
    }

    /// Runs `n2d build ARGS --json` and returns the summary.
    pub fn build_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["build"];
        all.extend_from_slice(args);
        all.push("--json");
        let out = self.n2d(&all);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let last = stdout.lines().last().unwrap_or_else(|| {
            panic!(
                "n2d build printed no summary; stderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        serde_json::from_str(last).unwrap_or_else(|e| panic!("summary is not JSON ({e}): {last}"))
    }
}

pub fn n2d_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(dir)
        .args(args)
        .env_remove("NO_COLOR")
        .output()
        .expect("n2d runs")
}

/// Whether `tool` is on PATH. Under CI (`CI=true`) a missing tool fails the
/// test; elsewhere the test says which tool it skipped for.
pub fn require_tool(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(tool).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the test tool `{tool}` is missing (CI=true): run .ci/install-tools");
        }
        eprintln!("skipped: the test tool `{tool}` is not installed (run .ci/install-tools)");
    }
    found
}

/// `kind` counts of a build summary: (executed, cached).
pub fn counts(summary: &serde_json::Value, kind: &str) -> (u64, u64) {
    let entry = &summary["by_kind"][kind];
    (
        entry["executed"].as_u64().unwrap_or(0),
        entry["cached"].as_u64().unwrap_or(0),
    )
}

#[path = "../shared/busybox.rs"]
mod busybox;
pub use busybox::busybox_base_layer;

#[path = "../shared/executable.rs"]
mod executable;
pub use executable::write_executable;

/// `skopeo inspect` of the image tagged `tag` in the OCI layout `layout`.
pub fn skopeo_inspect(layout: &Path, tag: &str) -> serde_json::Value {
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:{tag}", layout.display()))
        .output()
        .expect("skopeo runs");
    assert!(
        out.status.success(),
        "skopeo inspect {tag}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("skopeo prints JSON")
}

/// The executable a process runs, by file name ("" once it is gone).
pub fn executable(pid: u32) -> String {
    std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

/// The child processes of `pid`, of all its threads.
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|pid| pid.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}
