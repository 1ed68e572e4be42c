//! Merging definitions by type: lists concatenate, tables merge by key,
//! submodules recursively, single values must agree; imports apply in order.
use crate::support::{check, check_api};

#[test]
fn a_service_carries_every_core_option_with_its_default() {
    assert_eq!(check_api("[services.api]\n", "replicas"), "1");
    assert_eq!(check_api("[services.api]\n", "restart"), "\"on-failure\"");
    assert_eq!(
        check_api("[services.api]\n", "stop"),
        r#"{"signal":"TERM","timeout":"10s"}"#
    );
    assert_eq!(check_api("[services.api]\n", "readiness.http"), "null");
    assert_eq!(check_api("[services.api]\n", "name"), "\"api\"");
    assert_eq!(check_api("[services.api]\n", "label"), "\"//web:api\"");
}

#[test]
fn resolved_value_deserializes_into_the_typed_service() {
    let files = [(
        "web/n2d.toml",
        r#"
[services.api]
command = ["./api", "--port", "${{ self.ports.http }}"]
ports.http = 8080
env.A = "x"
env.B = { secret = "b" }
env.C = { file = "conf/c.txt" }
volumes.data = { path = "/data", size = "1Gi" }
files."app.conf" = { text = "port=${{ self.ports.http }}" }
readiness.http = { port = "http", path = "/healthz" }
resources = { cpu = 2, memory = "256Mi" }
"#,
    )];
    let universe = crate::support::universe(&files).unwrap();
    let resolved = crate::support::resolve(&universe, "//web:api").unwrap();
    let service: n2d_modules::service::Service = serde_json::from_value(resolved.value).unwrap();
    assert_eq!(service.command, ["./api", "--port", "8080"]);
    assert_eq!(
        service.env["C"],
        n2d_modules::service::EnvValue::File {
            file: "web/conf/c.txt".into()
        }
    );
    assert_eq!(service.files["app.conf"].text.as_deref(), Some("port=8080"));
    assert_eq!(
        service.files["app.conf"].path.as_deref(),
        Some("files/api/app.conf")
    );
    assert_eq!(service.resources.cpu.as_deref(), Some("2"));
    assert!(service.volumes["data"].persist);
}

#[test]
fn lists_concatenate_in_import_order() {
    let text = r#"
[modules.a]
command = ["a"]
[modules.b]
command = ["b"]
[services.api]
imports = [":a", ":b"]
command = ["own"]
"#;
    assert_eq!(check_api(text, "command"), r#"["a","b","own"]"#);
}

#[test]
fn tables_merge_by_key_across_modules() {
    let text = r#"
[modules.base]
env.A = "1"
[services.api]
imports = [":base"]
env.B = "2"
"#;
    assert_eq!(check_api(text, "env"), r#"{"A":"1","B":"2"}"#);
}

#[test]
fn submodules_merge_recursively() {
    let text = r#"
[modules.base]
volumes.data.path = "/data"
[services.api]
imports = [":base"]
volumes.data.persist = false
"#;
    assert_eq!(
        check_api(text, "volumes.data"),
        r#"{"path":"/data","persist":false,"size":null}"#
    );
}

#[test]
fn equal_values_at_the_same_priority_are_no_conflict() {
    let text = "[modules.a]\nreplicas = 2\n[services.api]\nimports = [\":a\"]\nreplicas = 2\n";
    assert_eq!(check_api(text, "replicas"), "2");
}

#[test]
fn lines_join_with_newlines() {
    let text = "[modules.a]\npre_start = \"mkdir -p /a\"\n[services.api]\nimports = [\":a\"]\npre_start = \"echo ok\"\n";
    assert_eq!(check_api(text, "pre_start"), r#""mkdir -p /a\necho ok""#);
}

#[test]
fn a_module_imported_twice_applies_once() {
    let text = r#"
[modules.base]
command = ["base"]
[modules.left]
imports = [":base"]
[modules.right]
imports = [":base"]
[services.api]
imports = [":left", ":right"]
"#;
    assert_eq!(check_api(text, "command"), r#"["base"]"#);
}

#[test]
fn imports_cross_packages() {
    let files = [
        ("lib/n2d.toml", "[modules.http]\nports.http = 8080\n"),
        (
            "web/n2d.toml",
            "[services.api]\nimports = [\"//lib:http\"]\n",
        ),
    ];
    assert_eq!(check(&files, "//web:api", "ports"), r#"{"http":8080}"#);
}

#[test]
fn workspace_wide_imports_apply_to_every_service() {
    let settings = n2d_modules::Settings {
        imports: vec!["//lib:defaults".into()],
        ..Default::default()
    };
    let universe = crate::support::universe_with(
        &[
            (
                "lib/n2d.toml",
                "[modules.defaults]\nrestart = { mkDefault = \"always\" }\n",
            ),
            (
                "web/n2d.toml",
                "[services.api]\n[services.worker]\nrestart = \"no\"\n",
            ),
        ],
        settings,
        n2d_modules::OptionSet::core(),
    )
    .unwrap();
    let api = crate::support::resolve(&universe, "//web:api").unwrap();
    let worker = crate::support::resolve(&universe, "//web:worker").unwrap();
    assert_eq!(api.value["restart"], "always");
    assert_eq!(worker.value["restart"], "no");
}

#[test]
fn user_declared_options_take_their_default_and_definitions() {
    let text = r#"
[modules.http]
options.http.port = { type = "port", default = 8080 }
options.http.hosts = { type = "listOf str" }
ports.http = "${{ self.http.port }}"
[services.api]
imports = [":http"]
http.hosts = ["a.example"]
"#;
    assert_eq!(
        check_api(text, "http"),
        r#"{"hosts":["a.example"],"port":8080}"#
    );
    assert_eq!(check_api(text, "ports.http"), "8080");
}

#[test]
fn source_paths_become_relative_to_the_workspace_root() {
    let text = "[services.api]\nfiles.\"a.conf\".source = \"../shared/./a.conf\"\n";
    let resolved = crate::support::universe(&[("apps/web/n2d.toml", text)])
        .and_then(|u| crate::support::resolve(&u, "//apps/web:api"))
        .unwrap();
    assert_eq!(
        resolved.value["files"]["a.conf"]["source"],
        "apps/shared/a.conf"
    );
}

#[test]
fn attrs_merge_recursively() {
    let mut options = n2d_modules::OptionSet::core();
    options
        .extend(
            "rules/compose",
            "compose.extra = { type = \"attrs\", default = {} }\n",
        )
        .unwrap();
    let universe = crate::support::universe_with(
        &[(
            "web/n2d.toml",
            "[modules.a]\ncompose.extra.deploy.labels.a = \"1\"\n[services.api]\nimports = [\":a\"]\ncompose.extra.deploy.labels.b = \"${{ self.name }}\"\n",
        )],
        Default::default(),
        options,
    )
    .unwrap();
    let resolved = crate::support::resolve(&universe, "//web:api").unwrap();
    assert_eq!(
        resolved.value["compose"]["extra"],
        serde_json::json!({"deploy": {"labels": {"a": "1", "b": "api"}}})
    );
}
