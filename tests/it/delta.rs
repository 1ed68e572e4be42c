//! The delta path (`pipeline/src/delta.rs`): after an edit of module files
//! only, a build runs just the tasks the edit reaches, outside the cache
//! database, and leaves the same files a clean build leaves; anything it
//! cannot prove goes down the full path.
use crate::build::snapshot;
use crate::support::{counts, TestWorkspace};

/// Every target that renders without external inputs.
const TARGETS: [&str; 5] = ["json", "procfile", "compose", "k8s", "systemd"];

fn args() -> Vec<&'static str> {
    let mut args = vec!["//..."];
    for target in TARGETS {
        args.extend(["--target", target]);
    }
    args
}

fn package(name: &str, value: &str, extra: &str) -> String {
    format!(
        "[services.{name}-a]\nimports = [\"//lib:web\"]\ncommand = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\nenv.VALUE = \"{value}\"\n{extra}\n\n[services.{name}-b]\ncommand = [\"/bin/echo\", \"${{{{ :{name}-a.address.http }}}}\"]\nenv.UPSTREAM = \"${{{{ :{name}-a.address.http }}}}\"\ndepends_on.\":{name}-a\" = \"started\"\n"
    )
}

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write(
        "lib/n2d.toml",
        "[modules.web]\noptions.web.port = { type = \"port\", default = 8080, description = \"port\" }\nports.http = \"${{ self.web.port }}\"\n",
    );
    ws.write("one/n2d.toml", &package("one", "1", ""));
    ws.write("two/n2d.toml", &package("two", "2", ""));
    ws.write(
        "deploy/n2d.toml",
        "[deployments.all]\nservices = [\"//one:one-a\", \"//one:one-b\", \"//two:two-a\", \"//two:two-b\"]\n\n[deployments.few]\nservices = [\"//two:two-a\", \"//two:two-b\"]\n",
    );
    ws
}

/// The output folder of a clean build of the same files.
fn clean_build_of(ws: &TestWorkspace) -> std::collections::BTreeMap<String, Vec<u8>> {
    let clean = TestWorkspace::new();
    for file in [
        "lib/n2d.toml",
        "one/n2d.toml",
        "two/n2d.toml",
        "deploy/n2d.toml",
        "one/app.conf",
    ] {
        if ws.root.join(file).exists() {
            clean.write(file, &ws.read(file));
        }
    }
    let summary = clean.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "full", "{summary}");
    snapshot(&clean.root.join("n2d-out"))
}

#[test]
fn an_edit_of_one_service_runs_only_its_tasks_and_matches_a_clean_build() {
    let ws = workspace();
    let first = ws.build_json(&args());
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(first["strategy"], "full", "{first}");

    ws.write("one/n2d.toml", &package("one", "changed", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "delta", "{summary}");
    // one-a is only in `all`: one Render per target, one Assemble and one
    // Materialize per target of `all`; `few` is not touched.
    assert_eq!(
        counts(&summary, "render").0,
        TARGETS.len() as u64,
        "{summary}"
    );
    assert_eq!(
        counts(&summary, "assemble").0,
        TARGETS.len() as u64,
        "{summary}"
    );
    assert_eq!(
        counts(&summary, "materialize").0,
        TARGETS.len() as u64,
        "{summary}"
    );
    assert_eq!(counts(&summary, "plan"), (0, 1), "{summary}");
    // The totals are those of the full build: nothing is missing or extra.
    assert_eq!(
        summary["executed"].as_u64().unwrap() + summary["cached"].as_u64().unwrap(),
        first["executed"].as_u64().unwrap() + first["cached"].as_u64().unwrap(),
        "{first}\n{summary}"
    );
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // Nothing changed since. The files were written less than two seconds
    // before the build, so they are read again ("racily clean") and
    // compared by content: no task runs.
    let again = ws.build_json(&args());
    assert!(
        again["strategy"] == "no-op" || again["strategy"] == "delta",
        "{again}"
    );
    assert_eq!(counts(&again, "parse").0, 0, "{again}");
    assert_eq!(counts(&again, "resolve").0, 0, "{again}");
    assert_eq!(counts(&again, "materialize").0, 0, "{again}");

    // Two edits in a row, the second undoing part of the first.
    ws.write("two/n2d.toml", &package("two", "other", ""));
    assert_eq!(ws.build_json(&args())["strategy"], "delta");
    ws.write("two/n2d.toml", &package("two", "2", ""));
    let back = ws.build_json(&args());
    assert_eq!(back["strategy"], "delta", "{back}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

/// In a workspace whose folders are old, the last build's stamp vouches
/// for discovery: an edit in place starts the delta path before it, one
/// saved by a rename (a new file in the folder, as many editors save)
/// after it. Both leave what a clean build leaves.
#[test]
fn edits_in_place_or_by_rename_take_the_delta_path_before_or_after_discovery() {
    let ws = workspace();
    ws.age();
    assert_eq!(ws.build_json(&args())["strategy"], "full");
    assert_eq!(ws.build_json(&args())["strategy"], "no-op");

    ws.write("one/n2d.toml", &package("one", "in place", ""));
    let in_place = ws.build_json(&args());
    assert_eq!(in_place["strategy"], "delta", "{in_place}");
    assert_eq!(
        counts(&in_place, "render").0,
        TARGETS.len() as u64,
        "{in_place}"
    );
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    ws.write("two/n2d.toml.swp", &package("two", "renamed", ""));
    std::fs::rename(
        ws.root.join("two/n2d.toml.swp"),
        ws.root.join("two/n2d.toml"),
    )
    .unwrap();
    let renamed = ws.build_json(&args());
    assert_eq!(renamed["strategy"], "delta", "{renamed}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // Once old again, nothing to do, proved before discovery.
    ws.age();
    ws.build_json(&args());
    let again = ws.build_json(&args());
    assert_eq!(again["strategy"], "no-op", "{again}");
    assert_eq!(again["executed"], 0, "{again}");
}

#[test]
fn a_comment_edit_renders_nothing_and_an_edit_of_a_shared_module_reaches_its_importers() {
    let ws = workspace();
    ws.build_json(&args());
    // A comment: the Eval output holds the text (for messages), so it
    // changes, and the Resolves that read it run; their output is the
    // same, and nothing is rendered or written.
    ws.write(
        "two/n2d.toml",
        &format!("# a comment\n{}", package("two", "2", "")),
    );
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert_eq!(counts(&summary, "plan"), (0, 1), "{summary}");
    assert_eq!(counts(&summary, "render").0, 0, "{summary}");
    assert_eq!(counts(&summary, "assemble").0, 0, "{summary}");
    assert_eq!(counts(&summary, "materialize").0, 0, "{summary}");

    // The module's default port: every service importing it and every
    // service referring to their address changes, in both deployments.
    ws.write(
        "lib/n2d.toml",
        "[modules.web]\noptions.web.port = { type = \"port\", default = 9090, description = \"port\" }\nports.http = \"${{ self.web.port }}\"\n",
    );
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert!(
        counts(&summary, "render").0 >= 2 * TARGETS.len() as u64,
        "{summary}"
    );
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    let out = String::from_utf8(
        ws.read("n2d-out/deploy/all/json/services/one-b.json")
            .into(),
    )
    .unwrap();
    assert!(out.contains("9090"), "{out}");
}

#[test]
fn what_the_delta_path_cannot_prove_goes_down_the_full_path() {
    let ws = workspace();
    ws.build_json(&args());

    // A new service changes what the plan holds.
    ws.write(
        "one/n2d.toml",
        &format!(
            "{}\n[services.one-c]\ncommand = [\"/bin/true\"]\n",
            package("one", "1", "")
        ),
    );
    let deploy = ws
        .read("deploy/n2d.toml")
        .replace("\"//one:one-b\",", "\"//one:one-b\", \"//one:one-c\",");
    ws.write("deploy/n2d.toml", &deploy);
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // A file that does not parse: the full path reports it, and nothing is
    // written; the fix is built by the full path (no stamp since).
    ws.write("two/n2d.toml", "[services.two-a\n");
    let out = ws.n2d(&["build", "//...", "--target", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("two/n2d.toml"), "{stderr}");
    ws.write("two/n2d.toml", &package("two", "fixed", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // A damaged snapshot is no snapshot.
    let stamps = ws.root.join(".n2d/stamps");
    for entry in std::fs::read_dir(&stamps).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.ends_with(".delta") || name.ends_with(".pack") {
            let mut bytes = std::fs::read(&path).unwrap();
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    ws.write("two/n2d.toml", &package("two", "after damage", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // A damaged pack alone: that build takes the full path, which writes
    // the snapshot anew, so that the next edit takes the delta path again.
    ws.write("two/n2d.toml", &package("two", "before pack damage", ""));
    assert_eq!(ws.build_json(&args())["strategy"], "delta");
    for entry in std::fs::read_dir(&stamps).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().ends_with(".pack") {
            let mut bytes = std::fs::read(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0x01;
            std::fs::write(&path, bytes).unwrap();
        }
    }
    // An edit of `one` reads only the packs of `all`; the full build it
    // falls back to must also replace the damaged packs of `few`, which
    // the next edit, of `two`, reads.
    ws.write(
        "one/n2d.toml",
        &format!(
            "{}\n[services.one-c]\ncommand = [\"/bin/true\"]\n",
            package("one", "after pack damage", "")
        ),
    );
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    ws.write("two/n2d.toml", &package("two", "healed", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));

    // An output edited by hand: the full path restores it.
    ws.write("n2d-out/deploy/few/json/services/two-a.json", "{}");
    ws.write("two/n2d.toml", &package("two", "after edit", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

#[test]
fn explain_names_the_edited_file_on_the_delta_path() {
    let ws = workspace();
    ws.build_json(&["//...", "--target", "json"]);
    ws.write("one/n2d.toml", &package("one", "explained", ""));
    let out = ws.n2d(&["build", "//...", "--target", "json", "--explain", "--json"]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"strategy\":\"delta\""), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("render //one:one-a in //deploy:all (json)"))
        .unwrap_or_else(|| panic!("no explanation for the render of one-a:\n{stdout}"));
    assert!(line.ends_with(": one/n2d.toml changed"), "{line}");
}

#[test]
fn cache_gc_removes_snapshots() {
    let ws = workspace();
    ws.build_json(&args());
    // A delta build keeps the Eval output it made beside the snapshot.
    ws.write("one/n2d.toml", &package("one", "before gc", ""));
    assert_eq!(ws.build_json(&args())["strategy"], "delta");
    let stamps = ws.root.join(".n2d/stamps");
    assert!(stamps.join("evals").read_dir().unwrap().next().is_some());
    let out = ws.n2d(&["cache", "gc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left: Vec<_> = walkdir::WalkDir::new(&stamps)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().to_owned())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    ws.write("one/n2d.toml", &package("one", "after gc", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

#[test]
fn kept_eval_outputs_do_not_pile_up_with_edits() {
    let ws = workspace();
    ws.build_json(&args());
    let evals = ws.root.join(".n2d/stamps/evals");
    let count = || std::fs::read_dir(&evals).unwrap().count();
    assert_eq!(count(), 0, "a full build names the cache's Eval outputs");
    for i in 0..5 {
        ws.write("one/n2d.toml", &package("one", &format!("v{i}"), ""));
        let summary = ws.build_json(&args());
        assert_eq!(summary["strategy"], "delta", "{summary}");
    }
    assert_eq!(count(), 1, "one kept Eval output: the edited package's");
    // The full path names the cache's again and drops what it kept.
    ws.write(
        "one/n2d.toml",
        &format!(
            "{}\n[services.one-c]\ncommand = [\"/bin/true\"]\n",
            package("one", "1", "")
        ),
    );
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(count(), 0, "nothing kept");
}

#[test]
fn the_delta_path_reads_unchanged_packages_from_the_cache_packs() {
    let ws = workspace();
    ws.build_json(&args());
    // one-a imports //lib:web: its Resolve reads lib's Eval output, which
    // the snapshot names in the cache's packs. Garbled, it is not used.
    ws.garble_packs(|_| true);
    ws.write("one/n2d.toml", &package("one", "after damage", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    // The full build stored them anew: the next edit is a delta again.
    ws.write("one/n2d.toml", &package("one", "healed", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

#[test]
fn delta_builds_killed_at_any_point_then_rerun_equal_a_clean_build() {
    let ws = workspace();
    let first = ws.build_json(&args());
    assert_eq!(first["ok"], true, "{first}");
    let mut all = vec!["build"];
    all.extend(args());
    // Each round edits a service, then kills the build after a growing
    // delay, so that kills land before, during and after the delta path's
    // writes (materialization, snapshot, stamp); some rounds finish.
    let mut strategies = std::collections::BTreeSet::new();
    for (round, delay_ms) in [0u64, 1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 3000, 3000]
        .into_iter()
        .enumerate()
    {
        ws.write("one/n2d.toml", &package("one", &format!("r{round}"), ""));
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_n2d"))
            .current_dir(&ws.root)
            .args(&all)
            .arg("--json")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Kill at the delay, unless the build finished before it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_millis(delay_ms);
        while std::time::Instant::now() < deadline && child.try_wait().unwrap().is_none() {
            std::thread::sleep(std::time::Duration::from_micros(500));
        }
        let _ = child.kill();
        let out = child.wait_with_output().unwrap();
        if let Some(last) = String::from_utf8_lossy(&out.stdout).lines().last() {
            let summary: serde_json::Value = serde_json::from_str(last).unwrap();
            strategies.insert(summary["strategy"].as_str().unwrap().to_string());
        }
    }
    assert!(
        strategies.contains("delta"),
        "no round finished by the delta path: {strategies:?}"
    );
    let after = ws.build_json(&args());
    assert_eq!(after["ok"], true, "{after}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    // And the path the next edit takes builds the right files too.
    ws.write("one/n2d.toml", &package("one", "last", ""));
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

#[test]
fn an_edit_of_a_source_file_renders_the_services_that_read_it() {
    let ws = workspace();
    ws.write("one/app.conf", "level = 1\n");
    let with_source = "files.\"app.conf\".source = \"app.conf\"";
    ws.write("one/n2d.toml", &package("one", "1", with_source));
    let first = ws.build_json(&args());
    assert_eq!(first["ok"], true, "{first}");

    ws.write("one/app.conf", "level = 2\n");
    let summary = ws.build_json(&args());
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "delta", "{summary}");
    // The plan gives a path written in a package to every service of that
    // package (an over-approximation): one-a and one-b, in `all`, render
    // again for each target; nothing of `few`; no module changed.
    assert_eq!(
        counts(&summary, "render").0,
        2 * TARGETS.len() as u64,
        "{summary}"
    );
    assert!(
        counts(&summary, "assemble").0 <= TARGETS.len() as u64,
        "{summary}"
    );
    assert_eq!(counts(&summary, "parse").0, 0, "{summary}");
    assert_eq!(counts(&summary, "plan"), (0, 1), "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    let out = String::from_utf8(
        std::fs::read(
            ws.root
                .join("n2d-out/deploy/all/compose/files/one-a/app.conf"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(out, "level = 2\n");

    // Together with a module edit, and explained.
    ws.write("one/app.conf", "level = 3\n");
    ws.write("two/n2d.toml", &package("two", "with conf", ""));
    let mut all = vec!["build"];
    all.extend(args());
    all.extend(["--explain", "--json"]);
    let out = ws.n2d(&all);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("\"strategy\":\"delta\""), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("render //one:one-a in //deploy:all (compose)"))
        .unwrap_or_else(|| panic!("no explanation for the render of one-a:\n{stdout}"));
    assert!(line.contains("one/app.conf changed"), "{line}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}

#[test]
fn delta_builds_add_and_remove_files_and_follow_edits_of_the_deployments_package() {
    let ws = workspace();
    let deploy = |extra: &str| {
        format!(
            "[deployments.all.services.\"//one:one-a\"]\nenv.EXTRA = \"{extra}\"\n\n[deployments.all.services.\"//one:one-b\"]\n\n[deployments.all.services.\"//two:two-a\"]\n\n[deployments.all.services.\"//two:two-b\"]\n\n[deployments.few]\nservices = [\"//two:two-a\", \"//two:two-b\"]\n"
        )
    };
    ws.write("deploy/n2d.toml", &deploy("x"));
    assert_eq!(ws.build_json(&args())["strategy"], "full");
    let build = |what: &str| {
        let summary = ws.build_json(&args());
        assert_eq!(summary["ok"], true, "{what}: {summary}");
        assert_eq!(summary["strategy"], "delta", "{what}: {summary}");
        assert_eq!(
            snapshot(&ws.root.join("n2d-out")),
            clean_build_of(&ws),
            "{what}"
        );
    };

    // A service's new file is written, and its removal removes it.
    ws.write(
        "one/n2d.toml",
        &package("one", "1", "files.\"app.ini\".text = \"a = 1\\n\""),
    );
    build("a file added");
    let written: Vec<String> = snapshot(&ws.root.join("n2d-out"))
        .into_keys()
        .filter(|path| path.contains("app.ini"))
        .collect();
    assert!(!written.is_empty(), "no target wrote app.ini");
    ws.write("one/n2d.toml", &package("one", "1", ""));
    build("a file removed");
    for path in &written {
        assert!(
            !ws.root.join("n2d-out").join(path).exists(),
            "{path} stayed"
        );
    }

    // An override in the deployments' package; then an edit of a service,
    // which reads the deployment from the unit's pack: without the kept
    // Eval output of the deployments' package.
    ws.write("deploy/n2d.toml", &deploy("y"));
    build("an override changed");
    let evals = ws.root.join(".n2d/stamps/evals");
    let mut removed = 0;
    for entry in std::fs::read_dir(&evals).unwrap() {
        let path = entry.unwrap().path();
        if std::fs::read(&path)
            .unwrap()
            .starts_with(b"{\"name\":\"deploy\"")
        {
            std::fs::remove_file(path).unwrap();
            removed += 1;
        }
    }
    assert_eq!(
        removed, 1,
        "the deployments' package has one kept Eval output"
    );
    ws.write("one/n2d.toml", &package("one", "2", ""));
    build("a service edited after the override");
    ws.write("two/n2d.toml", &package("two", "3", ""));
    build("a service of both deployments edited");
}

/// A full build whose materialization fails leaves no snapshot the next
/// build could take the delta path from; once the cause is gone, the
/// builds leave what a clean build leaves, and the delta path serves the
/// edit after.
#[test]
fn a_failed_materialization_leaves_no_snapshot_to_use() {
    let ws = workspace();
    let with_jobs = |ws: &TestWorkspace| {
        let mut all = args();
        all.extend(["--jobs", "2"]);
        ws.build_json(&all)
    };
    assert_eq!(with_jobs(&ws)["ok"], true);

    // A symbolic link where an output was: materialization refuses it.
    let output = walkdir::WalkDir::new(ws.root.join("n2d-out/deploy/all/json"))
        .into_iter()
        .filter_map(Result::ok)
        .find(|e| e.file_type().is_file() && !e.file_name().to_string_lossy().starts_with('.'))
        .expect("an output file")
        .into_path();
    std::fs::remove_file(&output).unwrap();
    std::os::unix::fs::symlink("/dev/null", &output).unwrap();
    ws.write("one/n2d.toml", &package("one", "first", ""));
    let failed = with_jobs(&ws);
    assert_eq!(failed["ok"], false, "{failed}");
    assert_eq!(failed["strategy"], "full", "{failed}");

    std::fs::remove_file(&output).unwrap();
    ws.write("one/n2d.toml", &package("one", "second", ""));
    let summary = with_jobs(&ws);
    assert_eq!(summary["ok"], true, "{summary}");
    assert_eq!(summary["strategy"], "full", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
    // And the snapshot this build wrote serves the next edit.
    ws.write("one/n2d.toml", &package("one", "third", ""));
    let summary = with_jobs(&ws);
    assert_eq!(summary["strategy"], "delta", "{summary}");
    assert_eq!(snapshot(&ws.root.join("n2d-out")), clean_build_of(&ws));
}
