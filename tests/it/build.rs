//! `n2d build`: what re-runs after which edit (salsa style: the counts of
//! executed tasks per kind are the assertion), and that an incremental build
//! always equals a clean one.
use std::collections::BTreeMap;
use std::path::Path;

use crate::support::{counts, n2d_in, TestWorkspace};

/// Three services in one package, two deployments sharing one of them.
fn three_services() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write(
        "app/n2d.toml",
        r#"
[services.a]
command = ["/bin/sh", "-c", "echo a"]
env.GREETING = "hello"
ports.http = 8001

[services.b]
command = ["/bin/sh", "-c", "echo b"]
env.UPSTREAM = "${{ :a.address.http }}"

[services.c]
command = ["/bin/sh", "-c", "echo c"]

[deployments.dev]
services = [":a", ":b", ":c"]

[deployments.solo]
services = [":c"]
"#,
    );
    ws
}

#[test]
fn a_second_build_runs_nothing() {
    let ws = three_services();
    let first = ws.build_json(&["//..."]);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(counts(&first, "render"), (4, 0));
    let second = ws.build_json(&["//..."]);
    assert_eq!(second["executed"], 0, "{second}");
    assert_eq!(counts(&second, "render"), (0, 4));
    assert_eq!(counts(&second, "materialize"), (0, 2));
}

#[test]
fn a_comment_edit_parses_again_but_renders_nothing() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let text = ws.read("app/n2d.toml");
    ws.write(
        "app/n2d.toml",
        &format!("# a comment that changes nothing\n{text}"),
    );
    let after = ws.build_json(&["//..."]);
    assert_eq!(counts(&after, "parse").0, 1, "{after}");
    assert_eq!(counts(&after, "render").0, 0, "{after}");
    assert_eq!(counts(&after, "materialize").0, 0, "{after}");
}

#[test]
fn changing_one_service_renders_only_it_and_assembles_its_deployments() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let text = ws
        .read("app/n2d.toml")
        .replace("env.GREETING = \"hello\"", "env.GREETING = \"bonjour\"");
    ws.write("app/n2d.toml", &text);
    let after = ws.build_json(&["//..."]);
    assert_eq!(counts(&after, "render").0, 1, "only a re-renders: {after}");
    assert_eq!(
        counts(&after, "assemble").0,
        1,
        "only dev includes a: {after}"
    );
    assert_eq!(counts(&after, "materialize").0, 1, "{after}");
    let out = ws.read("n2d-out/app/dev/json/services/a.json");
    assert!(out.contains("bonjour"), "{out}");
}

#[test]
fn changing_one_service_renders_only_its_files_in_every_local_target() {
    let ws = three_services();
    let targets = [
        "--target",
        "procfile",
        "--target",
        "process-compose",
        "--target",
        "systemd",
        "--target",
        "nixos",
    ];
    let mut args = vec!["//app:dev"];
    args.extend(targets);
    let first = ws.build_json(&args);
    assert_eq!(first["ok"], true, "{first}");
    let before = snapshot(&ws.root.join("n2d-out"));
    let text = ws.read("app/n2d.toml").replace(
        "command = [\"/bin/sh\", \"-c\", \"echo c\"]",
        "command = [\"/bin/sh\", \"-c\", \"echo C\"]",
    );
    ws.write("app/n2d.toml", &text);
    let after = ws.build_json(&args);
    assert_eq!(
        counts(&after, "render").0,
        4,
        "one render of c per target: {after}"
    );
    let changed: Vec<String> = snapshot(&ws.root.join("n2d-out"))
        .into_iter()
        .filter(|(path, bytes)| before.get(path) != Some(bytes))
        .map(|(path, _)| path)
        .collect();
    for path in &changed {
        let owned_by_c = path.contains("/c")
            || path.contains("c.service")
            || path.ends_with("module.nix")
            || path.ends_with("process-compose.yaml")
            || path.ends_with("launch.json")
            || path.ends_with(".n2d-manifest");
        assert!(
            owned_by_c,
            "{path} changed although only c changed; all changes: {changed:?}"
        );
    }
    assert!(
        changed.iter().any(|p| p.ends_with("procfile/bin/c")),
        "{changed:?}"
    );
}

#[test]
fn explain_names_the_changed_file() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let text = ws.read("app/n2d.toml").replace("echo c", "echo cc");
    ws.write("app/n2d.toml", &text);
    let out = ws.n2d(&["build", "//app:solo", "--explain"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("render //app:c in //app:solo (json)"))
        .unwrap_or_else(|| panic!("no explanation for the render of c:\n{stdout}"));
    assert!(line.ends_with(": app/n2d.toml changed"), "{line}");
}

#[test]
fn moving_the_workspace_or_changing_the_environment_keeps_the_cache() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let moved = tempfile::tempdir().unwrap();
    let target = moved.path().join("elsewhere");
    copy_tree(&ws.root, &target);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(&target)
        .args(["build", "//...", "--json"])
        .env("RANDOM_VARIABLE", "x")
        .env("HOME", moved.path())
        .env("LANG", "C")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(counts(&summary, "render"), (0, 4), "{summary}");
    assert_eq!(counts(&summary, "resolve").0, 0, "{summary}");
}

#[test]
fn stale_outputs_are_removed_and_foreign_files_kept() {
    let ws = three_services();
    ws.build_json(&["//app:dev"]);
    std::fs::write(ws.root.join("n2d-out/app/dev/json/notes.txt"), "mine").unwrap();
    let text = ws.read("app/n2d.toml").replace(
        "services = [\":a\", \":b\", \":c\"]",
        "services = [\":a\", \":b\"]",
    );
    ws.write("app/n2d.toml", &text);
    let after = ws.build_json(&["//app:dev"]);
    assert_eq!(after["ok"], true, "{after}");
    assert!(!ws
        .root
        .join("n2d-out/app/dev/json/services/c.json")
        .exists());
    assert_eq!(ws.read("n2d-out/app/dev/json/notes.txt"), "mine");
}

#[test]
fn an_edited_output_is_restored() {
    let ws = three_services();
    ws.build_json(&["//app:solo"]);
    let path = "n2d-out/app/solo/json/services/c.json";
    let original = ws.read(path);
    ws.write(path, "tampered");
    let after = ws.build_json(&["//app:solo"]);
    assert_eq!(counts(&after, "materialize").0, 1, "{after}");
    assert_eq!(ws.read(path), original);
}

#[test]
fn bad_input_fails_with_status_1_and_names_the_file() {
    let ws = TestWorkspace::new();
    ws.write(
        "web/n2d.toml",
        "[services.api]\nreplicas = \"three\"\n[deployments.dev]\nservices = [\":api\"]\n",
    );
    let out = ws.n2d(&["build", "//web:dev"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("web/n2d.toml:2"), "{stderr}");
    assert!(stderr.contains("replicas"), "{stderr}");

    let usage = ws.n2d(&["build", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn an_unknown_label_names_the_nearest_one() {
    let ws = three_services();
    let out = ws.n2d(&["build", "//app:dve"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("//app:dev"), "{stderr}");
}

#[test]
fn gc_never_breaks_the_next_build() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let clean = snapshot(&ws.root.join("n2d-out"));
    // The stamps themselves, not the delta snapshot beside them.
    let stamps = || {
        std::fs::read_dir(ws.root.join(".n2d/stamps")).map_or(0, |d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .filter(|e| !e.file_name().to_string_lossy().contains('.'))
                .count()
        })
    };
    assert_eq!(stamps(), 1, "the build's no-op stamp");
    let gc = ws.n2d(&["cache", "gc", "--max-size", "0"]);
    assert!(
        gc.status.success(),
        "{}",
        String::from_utf8_lossy(&gc.stderr)
    );
    assert_eq!(stamps(), 0, "gc drops the no-op stamps, which pile up");
    std::fs::remove_dir_all(ws.root.join("n2d-out")).unwrap();
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean);
}

#[test]
fn a_damaged_cache_still_gives_correct_output() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let expected = snapshot(&ws.root.join("n2d-out"));
    // Garble every file of the sled database.
    for entry in walkdir::WalkDir::new(ws.root.join(".n2d/db"))
        .into_iter()
        .filter_map(Result::ok)
    {
        if entry.file_type().is_file() {
            let mut bytes = std::fs::read(entry.path()).unwrap();
            for (i, byte) in bytes.iter_mut().enumerate() {
                if i % 7 == 3 {
                    *byte ^= 0x5a;
                }
            }
            std::fs::write(entry.path(), bytes).unwrap();
        }
    }
    std::fs::remove_dir_all(ws.root.join("n2d-out")).unwrap();
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), expected);
}

#[test]
fn garbled_or_deleted_packs_still_give_correct_output() {
    let ws = three_services();
    ws.build_json(&["//..."]);
    let expected = snapshot(&ws.root.join("n2d-out"));
    ws.garble_packs(|i| i % 5 == 2);
    // Without outputs, the build must read every assembled folder back.
    std::fs::remove_dir_all(ws.root.join("n2d-out")).unwrap();
    let out = ws.n2d(&["build", "//...", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("damaged"),
        "the damage is reported: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(snapshot(&ws.root.join("n2d-out")), expected);

    for pack in std::fs::read_dir(ws.root.join(".n2d/packs")).unwrap() {
        std::fs::remove_file(pack.unwrap().path()).unwrap();
    }
    std::fs::remove_dir_all(ws.root.join("n2d-out")).unwrap();
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), expected);
}

#[test]
fn two_builds_at_once_both_succeed() {
    let ws = three_services();
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_n2d"))
            .current_dir(&ws.root)
            .args(["build", "//...", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let fresh = three_services();
    fresh.build_json(&["//..."]);
    assert_eq!(
        snapshot(&ws.root.join("n2d-out")),
        snapshot(&fresh.root.join("n2d-out"))
    );
}

#[test]
fn a_build_killed_at_any_point_then_rerun_equals_a_clean_build() {
    let ws = three_services();
    let fresh = three_services();
    fresh.build_json(&["//..."]);
    let expected = snapshot(&fresh.root.join("n2d-out"));
    // Kill after growing delays so that some kills land mid-build.
    for delay_ms in [0u64, 2, 5, 10, 20, 40] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_n2d"))
            .current_dir(&ws.root)
            .args(["build", "//...", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        let _ = child.kill();
        let _ = child.wait();
        let text = ws
            .read("app/n2d.toml")
            .replace("echo a", &format!("echo a{delay_ms}"));
        ws.write("app/n2d.toml", &text);
        let text = ws
            .read("app/n2d.toml")
            .replace(&format!("echo a{delay_ms}"), "echo a");
        ws.write("app/n2d.toml", &text);
    }
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), expected);
}

/// Every file under `dir` (relative path → bytes), manifests excepted:
/// they record inodes and mtimes, which differ between two builds.
pub fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file() && e.file_name() != ".n2d-manifest")
        .map(|e| {
            let relative = e
                .path()
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (relative, std::fs::read(e.path()).unwrap())
        })
        .collect()
}

fn copy_tree(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from)
        .into_iter()
        .filter_map(Result::ok)
    {
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else if entry.file_type().is_file() {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn n2d_runs_from_a_package_folder_with_relative_labels() {
    let ws = three_services();
    let out = n2d_in(&ws.root.join("app"), &["build", ":solo"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(ws
        .root
        .join("n2d-out/app/solo/json/services/c.json")
        .is_file());
}

/// Packages appear and vanish by folder changes alone (no file the last
/// build read changed): a build that starts from its stamp's record of
/// the folders, before discovery, must see each of them.
#[test]
fn packages_added_or_cut_off_where_no_input_changed_are_seen() {
    let ws = three_services();
    ws.write("extra/notes.txt", "no module file here yet");
    ws.age();
    ws.build_json(&["//..."]);
    assert_eq!(ws.build_json(&["//..."])["strategy"], "no-op");
    let deployment = |package: &str| {
        format!("[services.{package}]\ncommand = [\"/bin/true\"]\n\n[deployments.run-{package}]\nservices = [\":{package}\"]\n")
    };

    // A module file in a folder that held none: only that folder changed.
    ws.write("extra/n2d.toml", &deployment("x"));
    let added = ws.build_json(&["//..."]);
    assert_eq!(added["ok"], true, "{added}");
    assert!(
        ws.root
            .join("n2d-out/extra/run-x/json/services/x.json")
            .is_file(),
        "{added}"
    );

    // A package in a new folder two levels down, once the rest is old.
    ws.age();
    ws.build_json(&["//..."]);
    assert_eq!(ws.build_json(&["//..."])["strategy"], "no-op");
    ws.write("extra/deeper/n2d.toml", &deployment("y"));
    let deeper = ws.build_json(&["//..."]);
    assert_eq!(deeper["ok"], true, "{deeper}");
    assert!(ws
        .root
        .join("n2d-out/extra/deeper/run-y/json/services/y.json")
        .is_file());

    // A nested workspace takes its folder out of this one.
    ws.age();
    ws.build_json(&["//..."]);
    assert_eq!(ws.build_json(&["//..."])["strategy"], "no-op");
    std::fs::write(ws.root.join("extra/deeper/n2d.workspace.toml"), "").unwrap();
    let cut = ws.build_json(&["//..."]);
    assert_eq!(cut["ok"], true, "{cut}");
    let outputs = cut["outputs"].to_string();
    assert!(outputs.contains("extra/run-x/json"), "{cut}");
    assert!(!outputs.contains("deeper"), "{cut}");
}

#[test]
fn a_no_op_build_does_not_open_the_database_and_sees_every_edit() {
    let ws = three_services();
    ws.age();
    ws.build_json(&["//..."]);
    // Damage the database: a build that opens it says so in a notice.
    std::fs::remove_dir_all(ws.root.join(".n2d/db")).unwrap();
    std::fs::write(ws.root.join(".n2d/db"), "not a database").unwrap();
    let out = ws.n2d(&["build", "//...", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("could not be opened"),
        "the no-op build opened the database: {stderr}"
    );
    let summary: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().last().unwrap()).unwrap();
    assert_eq!(summary["executed"], 0, "{summary}");
    assert_eq!(counts(&summary, "render"), (0, 4), "{summary}");

    // An edit is seen, and an edited output is restored.
    let text = ws.read("app/n2d.toml").replace("echo c", "echo edited");
    ws.write("app/n2d.toml", &text);
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert!(ws
        .read("n2d-out/app/solo/json/services/c.json")
        .contains("edited"));
    ws.age();
    ws.build_json(&["//..."]);
    ws.write("n2d-out/app/solo/json/services/c.json", "tampered");
    let restored = ws.build_json(&["//..."]);
    assert_eq!(counts(&restored, "materialize").0, 1, "{restored}");
    assert!(ws
        .read("n2d-out/app/solo/json/services/c.json")
        .contains("edited"));
}

#[test]
fn a_full_build_prints_each_render_warning_with_its_task() {
    let ws = three_services();
    let text = ws
        .read("app/n2d.toml")
        .replace("ports.http = 8001", "ports.http = 8001\nrestart = \"no\"");
    ws.write("app/n2d.toml", &text);
    let out = ws.n2d(&["build", "//app:dev", "--target", "k8s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(
        warnings,
        [
            "warning: render //app:a in //app:dev (k8s): k8s: service `a`: restart = \"no\": Deployments and StatefulSets always restart their containers"
        ],
        "{stderr}"
    );
}

#[test]
fn a_full_build_over_a_cached_plan_gives_the_same_output() {
    let ws = three_services();
    let first = ws.build_json(&["//..."]);
    assert_eq!(counts(&first, "plan"), (1, 0), "{first}");
    let expected = snapshot(&ws.root.join("n2d-out"));
    std::fs::remove_dir_all(ws.root.join("n2d-out")).unwrap();
    let after = ws.build_json(&["//..."]);
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(
        counts(&after, "plan"),
        (0, 1),
        "the plan comes from the cache: {after}"
    );
    assert_eq!(snapshot(&ws.root.join("n2d-out")), expected);
}

#[test]
fn a_delta_build_prints_the_warning_of_the_render_it_runs() {
    let ws = three_services();
    let first = ws.n2d(&["build", "//app:dev", "--target", "k8s"]);
    assert!(first.status.success());
    let text = ws
        .read("app/n2d.toml")
        .replace("ports.http = 8001", "ports.http = 8001\nrestart = \"no\"");
    ws.write("app/n2d.toml", &text);
    let out = ws.n2d(&["build", "//app:dev", "--target", "k8s", "--json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert!(
        stderr.lines().any(|l| l
            == "warning: render //app:a in //app:dev (k8s): k8s: service `a`: restart = \"no\": Deployments and StatefulSets always restart their containers"),
        "{stderr}"
    );
}
