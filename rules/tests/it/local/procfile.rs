//! The procfile target: honcho runs the generated folder; the launch spec
//! follows its contract; snapshots of the fixture deployment.
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use n2d_rules::procfile::launch::LaunchSpec;
use n2d_rules::procfile::Procfile;
use serde_json::json;

use super::fixture;
use crate::support;

fn artifact<'a>(artifacts: &'a [n2d_rules::Artifact], path: &str) -> &'a n2d_rules::Artifact {
    artifacts
        .iter()
        .find(|a| a.path == path)
        .unwrap_or_else(|| panic!("no artifact {path}"))
}

#[test]
fn snapshot_of_the_fixture_deployment() {
    let services = fixture::services(|s, f| format!("files/{s}/{f}"));
    let (artifacts, warnings) = fixture::build(
        &Procfile,
        &fixture::deployment(),
        &services,
        &fixture::sources(),
    );
    fixture::snapshot("local_procfile", &fixture::listing(&artifacts, &warnings));
}

#[test]
fn entrypoints_are_shellcheck_clean() {
    if !support::require_tool("shellcheck") {
        return;
    }
    let services = fixture::services(|s, f| format!("files/{s}/{f}"));
    let (artifacts, _) = fixture::build(
        &Procfile,
        &fixture::deployment(),
        &services,
        &fixture::sources(),
    );
    for a in artifacts.iter().filter(|a| a.path.starts_with("bin/")) {
        assert_eq!(a.mode, 0o755);
        fixture::shellcheck(&a.path, &a.bytes);
    }
}

#[test]
fn launch_spec_lists_dependencies_first_with_resolved_ports() {
    let services = fixture::services(|s, f| format!("files/{s}/{f}"));
    // Reversed input order: the spec's order must come from depends_on.
    let reversed: Vec<_> = services.iter().rev().cloned().collect();
    let (artifacts, _) = fixture::build(
        &Procfile,
        &fixture::deployment(),
        &reversed,
        &fixture::sources(),
    );
    let spec: LaunchSpec = serde_json::from_slice(&artifact(&artifacts, "launch.json").bytes)
        .expect("launch.json parses with unknown fields rejected");
    assert_eq!(spec.version, 1);
    let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["db", "web"]);
    let web = &spec.services[1];
    let readiness = web.readiness.as_ref().expect("web has a probe");
    assert_eq!(readiness.http.as_ref().map(|h| h.port), Some(8080));
    assert_eq!(web.command, ["bin/web"]);
    for s in &spec.services {
        assert_eq!(s.spec_digest.len(), 64);
        assert!(s.spec_digest.bytes().all(|b| b.is_ascii_hexdigit()));
    }
    let raw: serde_json::Value =
        serde_json::from_slice(&artifact(&artifacts, "launch.json").bytes).unwrap();
    assert_eq!(raw["services"][0]["readiness"]["http"], json!(null));
    assert_eq!(raw["services"][1]["depends_on"], json!({"db": "healthy"}));
    assert_eq!(raw["services"][0]["restart"], json!("always"));
    assert_eq!(raw["services"][0]["stop_signal"], json!("INT"));
    assert_eq!(raw["services"][0]["stop_timeout_ms"], json!(30000));
}

#[test]
fn spec_digest_changes_only_for_the_changed_service() {
    let deployment = fixture::deployment();
    let services = fixture::services(|s, f| format!("files/{s}/{f}"));
    let digests = |services: &[n2d_modules::service::Service]| {
        let (artifacts, _) = fixture::build(&Procfile, &deployment, services, &fixture::sources());
        let spec: LaunchSpec =
            serde_json::from_slice(&artifact(&artifacts, "launch.json").bytes).unwrap();
        spec.services
            .into_iter()
            .map(|s| (s.name, s.spec_digest))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let before = digests(&services);
    let mut changed = services.clone();
    changed[1].env.insert(
        "NEW".into(),
        n2d_modules::service::EnvValue::Text("1".into()),
    );
    let after = digests(&changed);
    assert_eq!(before["db"], after["db"]);
    assert_ne!(before["web"], after["web"]);
    let mut file_changed = services.clone();
    file_changed[0].files.get_mut("pg.conf").unwrap().text = Some("port = 1\n".into());
    let after = digests(&file_changed);
    assert_ne!(before["db"], after["db"]);
    assert_eq!(before["web"], after["web"]);
}

#[test]
fn options_without_meaning_are_warned_once() {
    let service = support::service(json!({
        "name": "w", "label": "//x:w", "command": ["true"],
        "image": "busybox", "resources": {"cpu": "1", "memory": "1Gi"},
        "procfile": {"extra": {"x": 1}}
    }));
    let rendered = n2d_rules::Rule::render(
        &Procfile,
        &fixture::deployment(),
        &service,
        &fixture::sources(),
    )
    .unwrap();
    assert_eq!(rendered.warnings.len(), 3, "{:?}", rendered.warnings);
    assert!(rendered.warnings.iter().any(|w| w.contains("`image`")));
    assert!(rendered.warnings.iter().any(|w| w.contains("`resources`")));
    assert!(rendered
        .warnings
        .iter()
        .any(|w| w.contains("procfile.extra")));
}

#[test]
fn dependency_cycles_and_unknown_dependencies_are_errors() {
    let a = support::service(
        json!({"name": "a", "label": "//x:a", "command": ["true"], "depends_on": {"b": "started"}}),
    );
    let b = support::service(
        json!({"name": "b", "label": "//x:b", "command": ["true"], "depends_on": {"a": "started"}}),
    );
    let c = support::service(
        json!({"name": "c", "label": "//x:c", "command": ["true"], "depends_on": {"zz": "started"}}),
    );
    let deployment = fixture::deployment();
    let assemble = |services: &[&n2d_modules::service::Service]| {
        let rendered: Vec<_> = services
            .iter()
            .map(|s| {
                let r = n2d_rules::Rule::render(&Procfile, &deployment, s, &fixture::sources());
                (s.name.clone(), r.unwrap().fragment)
            })
            .collect();
        let fragments: Vec<_> = rendered.iter().map(|(n, f)| (n.as_str(), f)).collect();
        n2d_rules::Rule::assemble(&Procfile, &deployment, &fragments)
    };
    let cycle = assemble(&[&a, &b]).expect_err("cycle");
    assert!(
        cycle.to_string().contains("dependency cycle among a, b"),
        "{cycle}"
    );
    let unknown = assemble(&[&c]).expect_err("unknown");
    assert!(unknown.to_string().contains("`zz`"), "{unknown}");
}

/// Both services of a two-service deployment start under honcho with their
/// environment and arguments, and their output appears.
#[test]
fn honcho_runs_the_generated_procfile() {
    if !support::require_tool("honcho") {
        return;
    }
    let services = vec![
        support::service(json!({
            "name": "greeter", "label": "//x:greeter",
            "command": ["/bin/sh", "-c", "echo \"greeter: $GREETING|$1|$2\"; exec sleep 60", "sh", "it's $HOME", "a  b"],
            "env": {"GREETING": "hello `world` $(x) 100%"}
        })),
        support::service(json!({
            "name": "reader", "label": "//x:reader",
            "command": ["/bin/sh", "-c", "echo \"reader: $TOKEN|$(cat \"$CONF\")|$N2D_DEPLOYMENT\"; exec sleep 60"],
            "env": {"TOKEN": {"secret": "token"}, "CONF": "files/reader/app.conf"},
            "files": {"app.conf": {"text": "conf-line", "path": "files/reader/app.conf"}},
            "depends_on": {"greeter": "started"}
        })),
    ];
    let deployment = fixture::deployment();
    let (artifacts, _) = fixture::build(&Procfile, &deployment, &services, &fixture::sources());
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("procfile");
    fixture::write(&target, &artifacts);
    std::fs::create_dir_all(root.path().join("secrets")).unwrap();
    std::fs::write(root.path().join("secrets/token"), "t0k3n\n").unwrap();

    let log = target.join("honcho.log");
    let mut honcho = Command::new("honcho")
        .args(["start", "--no-colour", "--no-prefix"])
        .current_dir(&target)
        .env_remove("N2D_SECRETS_DIR")
        .env("PYTHONUNBUFFERED", "1")
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start honcho");
    let wanted = [
        "greeter: hello `world` $(x) 100%|it's $HOME|a  b",
        "reader: t0k3n|conf-line|//deploy:dev",
    ];
    // A bound on waiting, not a performance assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut output = String::new();
    while Instant::now() < deadline {
        output = std::fs::read_to_string(&log).unwrap_or_default();
        if wanted
            .iter()
            .all(|w| output.lines().any(|l| l.trim_end() == *w))
        {
            break;
        }
        if honcho.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    // SIGTERM: honcho stops its processes, then exits.
    unsafe_free_kill(honcho.id());
    let _ = honcho.wait();
    for w in wanted {
        assert!(
            output.lines().any(|l| l.trim_end() == w),
            "missing {w:?} in:\n{output}"
        );
    }
}

fn unsafe_free_kill(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}
