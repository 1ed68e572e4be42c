//! `${{ }}` interpolation: self references, references to other services of
//! the deployment, computed values, escapes, and typed exact references.
use crate::support::{check, check_api, error};

#[test]
fn an_exact_reference_keeps_the_type() {
    let text = "[services.api]\noptions.base = { type = \"port\", default = 8000 }\nports.http = \"${{ self.base }}\"\n";
    assert_eq!(check_api(text, "ports.http"), "8000");
}

#[test]
fn a_reference_inside_text_becomes_text() {
    let text = "[services.api]\nports.http = 8080\nenv.URL = \"http://${{ self.ports.http }}/x\"\n";
    assert_eq!(check_api(text, "env.URL"), "\"http://8080/x\"");
}

#[test]
fn an_exact_reference_in_a_string_option_becomes_text() {
    let text = "[services.api]\nports.pg = 5432\nreadiness.exec = [\"pg_isready\", \"-p\", \"${{ self.ports.pg }}\"]\n";
    assert_eq!(
        check_api(text, "readiness.exec"),
        r#"["pg_isready","-p","5432"]"#
    );
}

#[test]
fn double_dollar_is_a_literal_and_shell_variables_stay() {
    let text = "[services.api]\nenv.A = \"$${{ not.a.ref }} ${HOME} $$HOME\"\n";
    assert_eq!(
        check_api(text, "env.A"),
        r#""${{ not.a.ref }} ${HOME} $$HOME""#
    );
}

#[test]
fn references_chain_through_other_references() {
    let text = r#"
[services.api]
options.a = { type = "str", default = "${{ self.b }}-a" }
options.b = { type = "str", default = "${{ self.c }}-b" }
options.c = { type = "str", default = "c" }
description = "${{ self.a }}"
"#;
    assert_eq!(check_api(text, "description"), "\"c-b-a\"");
}

#[test]
fn file_paths_come_from_the_target_environment() {
    let text = "[services.api]\nfiles.\"nginx.conf\".text = \"x\"\ncommand = [\"nginx\", \"-c\", \"${{ self.files.\\\"nginx.conf\\\".path }}\"]\n";
    assert_eq!(
        check_api(text, "command"),
        r#"["nginx","-c","files/api/nginx.conf"]"#
    );
}

const DEPLOY: &str = r#"
[services.api]
env.DB = "postgres://${{ :db.address.pg }}/app"
env.DB_HOST = "${{ //web:db.host }}"
env.DB_PORT = "${{ :db.ports.pg }}"
depends_on.":db" = "healthy"
[services.db]
ports.pg = 5432
[deployments.dev]
services = [":api", ":db"]
"#;

#[test]
fn references_to_services_of_the_deployment() {
    let files = [("web/n2d.toml", DEPLOY)];
    assert_eq!(
        check(&files, "//web:dev api", "env"),
        r#"{"DB":"postgres://localhost:5432/app","DB_HOST":"localhost","DB_PORT":"5432"}"#
    );
    assert_eq!(
        check(&files, "//web:dev api", "depends_on"),
        r#"{"db":"healthy"}"#
    );
    let universe = crate::support::universe(&files).unwrap();
    let resolved = crate::support::resolve(&universe, "//web:dev api").unwrap();
    assert_eq!(resolved.references, ["db"]);
}

#[test]
fn addresses_follow_the_target_environment() {
    struct ServiceNames;
    impl n2d_modules::TargetEnv for ServiceNames {
        fn id(&self) -> String {
            "service-name".into()
        }
        fn host(&self, service: &str) -> String {
            service.into()
        }
        fn file_path(&self, service: &str, file: &str) -> String {
            format!("/etc/{service}/{file}")
        }
    }
    let universe = crate::support::universe(&[("web/n2d.toml", DEPLOY)]).unwrap();
    let deployment = n2d_modules::parse_label("//web:dev", None).unwrap();
    let resolved = universe.resolve(&deployment, "api", &ServiceNames).unwrap();
    assert_eq!(resolved.value["env"]["DB"], "postgres://db:5432/app");
}

#[test]
fn a_reference_to_another_service_needs_a_deployment() {
    let message = error(&[("web/n2d.toml", DEPLOY)], "//web:api");
    assert!(message.contains("only exists in a deployment"), "{message}");
    assert!(message.contains("--deployment"), "{message}");
}

#[test]
fn package_inputs_follow_imports_and_references() {
    let files = [
        ("lib/n2d.toml", "[modules.base]\nrestart = \"always\"\n"),
        (
            "db/n2d.toml",
            "[services.pg]\nimports = [\"//lib:base\"]\nports.pg = 5432\n",
        ),
        (
            "web/n2d.toml",
            "[services.api]\nenv.DB = \"${{ //db:pg.address.pg }}\"\n",
        ),
        (
            "deploy/n2d.toml",
            "[deployments.dev]\nservices = [\"//web:api\", \"//db:pg\"]\n",
        ),
        ("other/n2d.toml", "[services.unrelated]\n"),
    ];
    let universe = crate::support::universe(&files).unwrap();
    let dev = n2d_modules::parse_label("//deploy:dev", None).unwrap();
    let inputs: Vec<String> = universe.package_inputs(&dev, "api").into_iter().collect();
    assert_eq!(inputs, ["db", "deploy", "lib", "web"]);
}
