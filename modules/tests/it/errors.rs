//! Every kind of bad input gets a message naming the file, line and option,
//! what was expected, and a hint (snapshots).
use crate::support::error;

fn api(text: &str) -> String {
    error(&[("web/n2d.toml", text)], "//web:api")
}

#[test]
fn toml_syntax_error() {
    insta::assert_snapshot!(api("[services.api]\nreplicas = = 3\n"));
}

#[test]
fn json_syntax_error() {
    insta::assert_snapshot!(error(
        &[(
            "web/n2d.json",
            "{\n  \"services\": {\n    \"api\": { \"replicas\": 3, }\n  }\n}\n"
        )],
        "//web:api"
    ));
}

#[test]
fn unknown_option_with_did_you_mean() {
    insta::assert_snapshot!(api("[services.api]\nreplica = 3\n"));
}

#[test]
fn unknown_nested_option() {
    insta::assert_snapshot!(api("[services.api]\nreadiness.htp = { port = \"http\" }\n"));
}

#[test]
fn unknown_top_level_key() {
    insta::assert_snapshot!(api("[servics.api]\n"));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(api(
        "[services.api]\ncommand = [\"x\"]\nreplicas = \"three\"\n"
    ));
}

#[test]
fn wrong_type_in_json() {
    insta::assert_snapshot!(error(
        &[(
            "web/n2d.json",
            "{\"services\": {\"api\": {\n  \"command\": \"./api --port 80\"\n}}}"
        )],
        "//web:api"
    ));
}

#[test]
fn conflicting_definitions() {
    insta::assert_snapshot!(error(
        &[
            ("lib/n2d.toml", "[modules.scale]\nreplicas = 2\n"),
            (
                "web/n2d.toml",
                "[services.api]\nimports = [\"//lib:scale\"]\nreplicas = 3\n"
            ),
        ],
        "//web:api"
    ));
}

#[test]
fn unknown_label_names_the_nearest() {
    insta::assert_snapshot!(error(
        &[("web/n2d.toml", "[services.api]\n[services.worker]\n")],
        "//web:apj"
    ));
}

#[test]
fn unknown_import() {
    insta::assert_snapshot!(api(
        "[modules.http]\n[services.api]\nimports = [\":htp\"]\n"
    ));
}

#[test]
fn import_cycle() {
    insta::assert_snapshot!(api("[modules.a]\nimports = [\":b\"]\n[modules.b]\nimports = [\":a\"]\n[services.api]\nimports = [\":a\"]\n"));
}

#[test]
fn interpolation_cycle() {
    insta::assert_snapshot!(error(
        &[(
            "web/n2d.toml",
            "[services.api]\nenv.A = \"${{ :db.env.B }}\"\n[services.db]\nenv.B = \"${{ :api.env.A }}\"\n[deployments.dev]\nservices = [\":api\", \":db\"]\n"
        )],
        "//web:dev api"
    ));
}

#[test]
fn reference_outside_the_deployment() {
    insta::assert_snapshot!(error(
        &[(
            "web/n2d.toml",
            "[services.api]\nenv.DB = \"${{ :db.address.pg }}\"\n[services.db]\nports.pg = 5432\n[deployments.dev]\nservices = [\":api\"]\n"
        )],
        "//web:dev api"
    ));
}

#[test]
fn invalid_port() {
    insta::assert_snapshot!(api("[services.api]\nports.http = 70000\n"));
}

#[test]
fn duplicate_service_names_in_a_deployment() {
    insta::assert_snapshot!(error(
        &[
            ("a/n2d.toml", "[services.web]\n"),
            ("b/n2d.toml", "[services.web]\n"),
            (
                "deploy/n2d.toml",
                "[deployments.dev]\nservices = [\"//a:web\", \"//b:web\"]\n"
            ),
        ],
        "//deploy:dev web"
    ));
}

#[test]
fn duplicate_names_in_a_package() {
    insta::assert_snapshot!(api("[services.api]\n[modules.api]\n"));
}

#[test]
fn file_name_escaping_the_output_folder() {
    insta::assert_snapshot!(api(
        "[services.api]\nfiles.\"../../etc/passwd\".text = \"x\"\n"
    ));
}

#[test]
fn source_escaping_the_workspace() {
    insta::assert_snapshot!(api(
        "[services.api]\nfiles.\"a.conf\".source = \"../../outside.conf\"\n"
    ));
}

#[test]
fn undefined_option_without_default() {
    insta::assert_snapshot!(api("[services.api]\nvolumes.data.persist = false\n"));
}

#[test]
fn interpolated_value_of_the_wrong_type() {
    insta::assert_snapshot!(api(
        "[services.api]\nenv.NAME = \"x\"\nports.http = \"${{ self.env.NAME }}\"\n"
    ));
}

#[test]
fn depends_on_a_service_outside_the_deployment() {
    insta::assert_snapshot!(error(
        &[("web/n2d.toml", "[services.api]\ndepends_on.\":db\" = \"healthy\"\n[services.db]\n[deployments.dev]\nservices = [\":api\"]\n")],
        "//web:dev api"
    ));
}

#[test]
fn bad_declaration() {
    insta::assert_snapshot!(api(
        "[services.api]\noptions.port = { type = \"prot\", default = 80 }\n"
    ));
}

#[test]
fn defined_both_null_and_not() {
    let json = r#"{"modules": {"m": {"image": null}}, "services": {"api": {"imports": [":m"], "image": "x"}}}"#;
    insta::assert_snapshot!(error(&[("web/n2d.json", json)], "//web:api"));
}

#[test]
fn a_file_needs_text_or_source() {
    insta::assert_snapshot!(api("[services.api]\nfiles.\"a.conf\".mode = \"0600\"\n"));
}

#[test]
fn a_file_mode_is_octal() {
    insta::assert_snapshot!(api(
        "[services.api]\nfiles.\"a.conf\" = { text = \"x\", mode = \"rw\" }\n"
    ));
}

#[test]
fn a_probe_names_a_declared_port() {
    insta::assert_snapshot!(api(
        "[services.api]\nports.http = 8080\nreadiness.http = { port = \"htp\" }\n"
    ));
}
