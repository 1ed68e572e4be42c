//! Priorities and properties: mkDefault, mkForce, mkOverride, mkBefore,
//! mkAfter, mkOrder, mkIf, mkMerge, and the nixpkgs `_type` JSON forms.
use crate::support::{check, check_api};

fn with_module(module: &str, service: &str, path: &str) -> String {
    check_api(
        &format!("[modules.m]\n{module}\n[services.api]\nimports = [\":m\"]\n{service}\n"),
        path,
    )
}

#[test]
fn a_plain_definition_beats_mk_default() {
    assert_eq!(
        with_module("replicas = { mkDefault = 5 }", "replicas = 2", "replicas"),
        "2"
    );
}

#[test]
fn mk_force_beats_a_plain_definition() {
    assert_eq!(
        with_module("replicas = { mkForce = 5 }", "replicas = 2", "replicas"),
        "5"
    );
}

#[test]
fn mk_override_sets_any_priority() {
    let module = "replicas = { mkOverride = { priority = 10, value = 7 } }";
    assert_eq!(
        with_module(module, "replicas = { mkForce = 2 }", "replicas"),
        "7"
    );
    let weak = "replicas = { mkOverride = { priority = 1200, value = 7 } }";
    assert_eq!(
        with_module(weak, "replicas = { mkDefault = 2 }", "replicas"),
        "2"
    );
}

#[test]
fn a_definition_beats_the_option_default() {
    assert_eq!(
        with_module("", "restart = { mkDefault = \"always\" }", "restart"),
        "\"always\""
    );
}

#[test]
fn mk_before_and_mk_after_order_lists() {
    let got = with_module(
        "command = { mkAfter = [\"last\"] }",
        "command = { mkMerge = [[\"middle\"], { mkBefore = [\"first\"] }] }",
        "command",
    );
    assert_eq!(got, r#"["first","middle","last"]"#);
}

#[test]
fn mk_order_takes_a_number() {
    let got = with_module(
        "command = { mkOrder = { priority = 1200, value = [\"b\"] } }",
        "command = [\"a\"]",
        "command",
    );
    assert_eq!(got, r#"["a","b"]"#);
}

#[test]
fn mk_if_false_drops_the_definition() {
    let got = with_module(
        "replicas = { mkIf = { condition = false, content = 9 } }",
        "env.A = { mkIf = { condition = true, content = \"on\" } }",
        "",
    );
    let value: serde_json::Value = serde_json::from_str(&got).unwrap();
    assert_eq!(value["replicas"], 1);
    assert_eq!(value["env"]["A"], "on");
}

#[test]
fn mk_force_on_a_submodule_pushes_down() {
    let got = with_module(
        "stop = { mkForce = { signal = \"INT\" } }",
        "stop.signal = \"QUIT\"",
        "stop.signal",
    );
    assert_eq!(got, "\"INT\"");
}

#[test]
fn mk_force_inside_an_attribute_set_wins_for_that_key_only() {
    let got = with_module(
        "env.A = \"a\"\nenv.B = \"b\"",
        "env.A = { mkForce = \"forced\" }",
        "env",
    );
    assert_eq!(got, r#"{"A":"forced","B":"b"}"#);
}

#[test]
fn nixpkgs_json_properties_mean_the_same() {
    let json = r#"{
  "modules": { "m": {
    "replicas": { "_type": "override", "priority": 50, "content": 4 },
    "command": { "_type": "order", "priority": 1500, "content": ["z"] },
    "env": { "_type": "merge", "contents": [ { "A": "1" }, { "_type": "if", "condition": true, "content": { "B": "2" } } ] }
  } },
  "services": { "api": { "imports": [":m"], "replicas": 2, "command": ["a"] } }
}"#;
    let files = [("web/n2d.json", json)];
    assert_eq!(check(&files, "//web:api", "replicas"), "4");
    assert_eq!(check(&files, "//web:api", "command"), r#"["a","z"]"#);
    assert_eq!(check(&files, "//web:api", "env"), r#"{"A":"1","B":"2"}"#);
}

#[test]
fn provenance_lists_the_winning_definitions_with_priority() {
    let universe = crate::support::universe(&[(
        "web/n2d.toml",
        "[modules.m]\nreplicas = { mkDefault = 3 }\n[services.api]\nimports = [\":m\"]\nreplicas = { mkForce = 2 }\n",
    )])
    .unwrap();
    let resolved = crate::support::resolve(&universe, "//web:api").unwrap();
    let origins = &resolved.provenance["replicas"];
    assert_eq!(origins.len(), 1);
    assert_eq!(
        (&*origins[0].file, origins[0].line, origins[0].priority),
        ("web/n2d.toml", 5, 50)
    );
    let restart = &resolved.provenance["restart"];
    assert!(restart[0].default);
    assert_eq!(restart[0].priority, 1500);
}
