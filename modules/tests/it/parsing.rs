//! Parsing: TOML and JSON give the same tree, with source lines.
use n2d_modules::{parse_module_file, Format};

#[test]
fn toml_and_json_spellings_resolve_identically() {
    let toml = r#"
[services.api]
command = ["a", "b"]
env.A = "x"
ports.http = 8080
[deployments.dev]
services = [":api"]
"#;
    let json = r#"{"services": {"api": {"command": ["a", "b"], "env": {"A": "x"}, "ports": {"http": 8080}}},
 "deployments": {"dev": {"services": [":api"]}}}"#;
    let a = crate::support::check(&[("web/n2d.toml", toml)], "//web:dev api", "");
    let b = crate::support::check(&[("web/n2d.json", json)], "//web:dev api", "");
    assert_eq!(a, b);
}

#[test]
fn json_strings_unescape() {
    let json = r#"{"services": {"api": {"description": "tab\t \"q\" \u00e9 \ud83d\ude00 \/"}}}"#;
    assert_eq!(
        crate::support::check(&[("web/n2d.json", json)], "//web:api", "description"),
        "\"tab\\t \\\"q\\\" é 😀 /\""
    );
}

#[test]
fn provenance_lines_point_at_the_definition() {
    let json = "{\n  \"services\": {\n    \"api\": {\n      \"replicas\": 4\n    }\n  }\n}\n";
    let universe = crate::support::universe(&[("web/n2d.json", json)]).unwrap();
    let resolved = crate::support::resolve(&universe, "//web:api").unwrap();
    let origin = &resolved.provenance["replicas"][0];
    assert_eq!((origin.line, origin.column), (4, 19));
}

#[test]
fn a_module_file_must_be_a_table() {
    let err = parse_module_file("web/n2d.json", "[1, 2]", Format::Json).unwrap_err();
    assert_eq!(err.message, "a module file must be a table, got a list");
}

#[test]
fn json_rejects_what_rfc_8259_rejects() {
    for bad in [
        "{\"a\": 01}",
        "{\"a\": 1,}",
        "{\"a\" 1}",
        "{'a': 1}",
        "{\"a\": \"\u{1}\"}",
        "{\"a\": 1} x",
        "{\"a\": 1, \"a\": 2}",
        "{\"a\": 1e999}",
    ] {
        let err = parse_module_file("x/n2d.json", bad, Format::Json);
        assert!(err.is_err(), "accepted {bad}");
    }
}
