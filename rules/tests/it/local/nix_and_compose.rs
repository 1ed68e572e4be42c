//! The process-compose, nixos and vm targets: snapshots, process-compose's
//! fields, and Nix's own parser and evaluator on every `.nix` file.
use std::path::Path;
use std::process::Command;

use n2d_rules::nixos::Nixos;
use n2d_rules::process_compose::ProcessCompose;
use n2d_rules::systemd::Systemd;
use n2d_rules::vm::Vm;
use n2d_rules::Rule;
use proptest::prelude::*;
use serde_json::json;

use super::entrypoint::{case_count, nasty_string};
use super::fixture;
use crate::support;

fn machine_services() -> Vec<n2d_modules::service::Service> {
    let mut services = fixture::services(|s, f| format!("/etc/n2d/{s}/{f}"));
    services[0].package = Some("pkgs.postgresql_16".into());
    services[1].package = Some("/nix/store/0000000000000000000000000000000a-api".into());
    services[1].resources.memory = Some("256Mi".into());
    services[1].other.insert(
        "nixos".into(),
        json!({"extra": {"serviceConfig": {"Nice": 5}}}),
    );
    services
}

#[test]
fn process_compose_snapshot_and_fields() {
    let services = fixture::services(|s, f| format!("files/{s}/{f}"));
    let (artifacts, warnings) = fixture::build(
        &ProcessCompose,
        &fixture::deployment(),
        &services,
        &fixture::sources(),
    );
    fixture::snapshot(
        "local_process_compose",
        &fixture::listing(&artifacts, &warnings),
    );
    let yaml = &artifacts
        .iter()
        .find(|a| a.path == "process-compose.yaml")
        .unwrap()
        .bytes;
    let doc: serde_json::Value = serde_yaml_ng::from_slice(yaml).unwrap();
    let web = &doc["processes"]["web"];
    assert_eq!(web["depends_on"]["db"]["condition"], "process_healthy");
    assert_eq!(web["readiness_probe"]["http_get"]["port"], 8080);
    assert_eq!(
        web["availability"],
        json!({"restart": "on_failure", "backoff_seconds": 2, "max_restarts": 5})
    );
    assert_eq!(
        doc["processes"]["db"]["shutdown"],
        json!({"signal": 2, "timeout_seconds": 30})
    );
    assert_eq!(
        doc["processes"]["db"]["readiness_probe"]["exec"]["command"],
        "pg_isready -p 5432"
    );
    if support::require_tool("shellcheck") {
        for a in artifacts.iter().filter(|a| a.path.starts_with("bin/")) {
            fixture::shellcheck(&a.path, &a.bytes);
        }
    }
}

#[test]
fn process_compose_extra_merges_into_the_process_and_replicas_pass() {
    let service = support::service(json!({
        "name": "w", "label": "//x:w", "command": ["true"], "replicas": 3,
        "readiness": {"tcp": {"port": "p"}}, "ports": {"p": 9000},
        "process-compose": {"extra": {"availability": {"exit_on_end": true}, "namespace": "n"}}
    }));
    let rendered = ProcessCompose
        .render(&fixture::deployment(), &service, &fixture::sources())
        .unwrap();
    let f = &rendered.fragment;
    assert_eq!(f["replicas"], 3);
    assert_eq!(f["namespace"], "n");
    assert_eq!(f["availability"]["exit_on_end"], true);
    assert_eq!(f["availability"]["restart"], "on_failure");
    assert_eq!(
        f["readiness_probe"]["exec"]["command"],
        "bash -c ': > /dev/tcp/127.0.0.1/9000'"
    );
}

#[test]
fn nixos_and_vm_snapshots() {
    let services = machine_services();
    let (artifacts, warnings) = fixture::build(
        &Nixos,
        &fixture::deployment(),
        &services,
        &fixture::sources(),
    );
    fixture::snapshot("local_nixos", &fixture::listing(&artifacts, &warnings));
    let (artifacts, warnings) =
        fixture::build(&Vm, &fixture::deployment(), &services, &fixture::sources());
    fixture::snapshot("local_vm", &fixture::listing(&artifacts, &warnings));
}

fn nix_instantiate(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("nix-instantiate")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run nix-instantiate");
    assert!(
        out.status.success(),
        "nix-instantiate {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn every_nix_file_parses_and_run_vm_is_shellcheck_clean() {
    if !support::require_tool("nix-instantiate") {
        return;
    }
    let (artifacts, _) = fixture::build(
        &Vm,
        &fixture::deployment(),
        &machine_services(),
        &fixture::sources(),
    );
    let dir = tempfile::tempdir().unwrap();
    fixture::write(dir.path(), &artifacts);
    for a in artifacts.iter().filter(|a| a.path.ends_with(".nix")) {
        nix_instantiate(dir.path(), &["--parse", &a.path]);
    }
    if support::require_tool("shellcheck") {
        let run_vm = artifacts.iter().find(|a| a.path == "run-vm").unwrap();
        assert_eq!(run_vm.mode, 0o755);
        fixture::shellcheck("run-vm", &run_vm.bytes);
    }
}

/// Evaluates module.nix with stand-ins for its arguments: the unit settings
/// Nix gives back are exactly the systemd target's lines.
fn check_nix_round_trip(args: &[String], values: &[String]) -> Result<(), TestCaseError> {
    let env: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("N2D_V{i}"), json!(v)))
        .collect();
    let mut command = vec!["/bin/sh".to_string()];
    command.extend(args.iter().cloned());
    let service = support::service(json!({
        "name": "prop", "label": "//x:prop", "command": command, "env": env,
        "package": "pkgs.hello",
        "files": {"a.conf": {"text": values.first().cloned().unwrap_or_default()}}
    }));
    let deployment = fixture::deployment();
    if args
        .iter()
        .chain(values)
        .any(|v| v.chars().any(n2d_rules::systemd::is_noncharacter))
    {
        // systemd refuses them: the nixos target says so (see the systemd
        // property test).
        let error = Nixos
            .render(&deployment, &service, &fixture::sources())
            .expect_err("a noncharacter cannot be in a unit")
            .to_string();
        prop_assert!(error.contains("noncharacter"), "{}", error);
        return Ok(());
    }
    let (artifacts, _) = fixture::build(
        &Nixos,
        &deployment,
        std::slice::from_ref(&service),
        &fixture::sources(),
    );
    let dir = tempfile::tempdir().unwrap();
    fixture::write(dir.path(), &artifacts);
    let expression = "(builtins.elemAt (import ./module.nix { config = {}; lib = {}; pkgs = { hello = \"HELLO\"; }; }).imports 0)";
    let json_text = nix_instantiate(
        dir.path(),
        &["--eval", "--strict", "--json", "--expr", expression],
    );
    let evaluated: serde_json::Value = serde_json::from_str(&json_text).unwrap();
    let unit = Systemd
        .render(&deployment, &service, &fixture::sources())
        .unwrap();
    let unit_text = String::from_utf8(unit.artifacts[0].bytes.clone()).unwrap();
    let exec_start = unit_text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap();
    let svc = &evaluated["systemd"]["services"]["prop"];
    prop_assert_eq!(svc["serviceConfig"]["ExecStart"].as_str(), Some(exec_start));
    let environment: Vec<&str> = unit_text
        .lines()
        .filter_map(|l| l.strip_prefix("Environment="))
        .collect();
    let from_nix: Vec<String> = match &svc["serviceConfig"]["Environment"] {
        serde_json::Value::String(one) => vec![one.clone()],
        serde_json::Value::Array(many) => many
            .iter()
            .map(|v| v.as_str().unwrap().to_string())
            .collect(),
        _ => Vec::new(),
    };
    prop_assert_eq!(from_nix, environment);
    prop_assert_eq!(&svc["path"], &json!(["HELLO"]));
    let text = &evaluated["environment"]["etc"]["n2d/prop/a.conf"]["text"];
    prop_assert_eq!(
        text.as_str(),
        Some(values.first().map(String::as_str).unwrap_or(""))
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: case_count() / 4, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn nix_gives_back_exactly_the_unit_settings(
        args in prop::collection::vec(nasty_string(), 0..4),
        values in prop::collection::vec(nasty_string(), 0..4),
    ) {
        if support::require_tool("nix-instantiate") {
            check_nix_round_trip(&args, &values)?;
        }
    }
}
