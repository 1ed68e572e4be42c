//! Loading `launch.json`: the contract's checks, one error per broken rule.

use n2d_supervisor::{Error, LaunchSpec};

use crate::{digest, Target};

/// Writes `json` as launch.json and returns the load error's text.
fn load_error(json: &str) -> String {
    let target = Target::new();
    std::fs::write(target.path().join("launch.json"), json).expect("write launch.json");
    let error = LaunchSpec::load(target.path()).expect_err("spec must be rejected");
    match &error {
        Error::ParseSpec { source, .. } => format!("parse: {source}"),
        Error::InvalidSpec { problem, .. } => format!("invalid: {problem}"),
        other => panic!("unexpected error {other:?}"),
    }
}

fn service(name: &str, extra: &str) -> String {
    format!(
        r#"{{"name":"{name}","command":["bin/{name}"],"replicas":1,"depends_on":{{}},"readiness":null,
        "restart":"no","max_restarts":null,"backoff_ms":100,"stop_signal":"TERM","stop_timeout_ms":1000,
        "spec_digest":"{}"{extra}}}"#,
        digest(name)
    )
}

#[test]
fn a_valid_spec_loads_with_its_values() {
    let mut target = Target::new();
    target.service("db", "exit 0").replicas = 3;
    target.write_spec();
    let spec = LaunchSpec::load(target.path()).expect("load");
    assert_eq!(spec.services[0].instance_names(), ["db.1", "db.2", "db.3"]);
}

#[test]
fn broken_specs_are_rejected_with_the_reason() {
    let cases = [
        (
            r#"{"version":2,"services":[]}"#.to_owned(),
            "invalid: version 2 is not supported",
        ),
        (
            format!(
                r#"{{"version":1,"services":[{}]}}"#,
                service("a", r#","colour":1"#)
            ),
            "parse: unknown field `colour`",
        ),
        (
            format!(
                r#"{{"version":1,"services":[{},{}]}}"#,
                service("a", ""),
                service("a", "")
            ),
            "invalid: service a is listed twice",
        ),
        (
            format!(
                r#"{{"version":1,"services":[{}]}}"#,
                service("b", "").replace(r#""depends_on":{}"#, r#""depends_on":{"a":"healthy"}"#)
            ),
            "invalid: service b depends on a, which is not listed before it",
        ),
        (
            format!(
                r#"{{"version":1,"services":[{}]}}"#,
                service("a", "").replace(r#""TERM""#, r#""SIGTERM""#)
            ),
            "parse: unknown variant `SIGTERM`",
        ),
        (
            format!(
                r#"{{"version":1,"services":[{}]}}"#,
                service("a", "").replace(r#""replicas":1"#, r#""replicas":0"#)
            ),
            "invalid: service a needs at least 1 replica",
        ),
    ];
    for (json, expected) in cases {
        let error = load_error(&json);
        assert!(
            error.starts_with(expected),
            "expected {expected:?}, got {error:?}"
        );
    }
}
