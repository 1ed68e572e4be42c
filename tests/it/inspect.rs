//! The commands that read a workspace without building it: `show` (values
//! with provenance), `options` (the reference), `query` and `graph`.
use crate::support::TestWorkspace;

fn workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write(
        "lib/n2d.toml",
        "[modules.http]\noptions.http.port = { type = \"port\", default = 8080, description = \"Listen port\" }\nports.http = \"${{ self.http.port }}\"\n",
    );
    ws.write(
        "web/n2d.toml",
        "[services.api]\nimports = [\"//lib:http\"]\ncommand = [\"/bin/api\"]\nenv.DB = \"${{ :db.address.pg }}\"\n\n[services.db]\ncommand = [\"/bin/db\"]\nports.pg = 5432\n\n[deployments.dev]\nservices = [\":api\", \":db\"]\n\n[deployments.prod.services.\":api\"]\nreplicas = { mkForce = 3 }\n[deployments.prod.services.\":db\"]\n",
    );
    ws
}

fn stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn show_prints_each_value_with_where_it_came_from() {
    let ws = workspace();
    let text = stdout(&ws.n2d(&["show", "//web:api", "--deployment", "//web:prod"]));
    let replicas = text
        .lines()
        .position(|l| l.starts_with("replicas = 3"))
        .unwrap_or_else(|| panic!("{text}"));
    let origin = text.lines().nth(replicas + 1).unwrap();
    assert!(
        origin.contains("web/n2d.toml:") && origin.contains("priority 50"),
        "{origin}"
    );
    let port = text
        .lines()
        .position(|l| l.starts_with("ports.http = 8080"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        text.lines().nth(port + 1).unwrap().contains("lib/n2d.toml"),
        "{text}"
    );
    assert!(text.contains("env.DB = \"localhost:5432\""), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&stdout(&ws.n2d(&["show", "//web:db", "--json"]))).unwrap();
    assert_eq!(json["value"]["ports"]["pg"], 5432);

    let out = ws.n2d(&["show", "//web:api"]);
    assert_eq!(out.status.code(), Some(1), "a reference needs a deployment");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--deployment"));
}

#[test]
fn options_lists_core_target_and_types() {
    let ws = workspace();
    let markdown = stdout(&ws.n2d(&["options"]));
    for option in [
        "command",
        "depends_on",
        "readiness",
        "k8s.extra",
        "compose.extra",
    ] {
        assert!(
            markdown.contains(option),
            "{option} missing from the reference"
        );
    }
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&ws.n2d(&["options", "--format", "json"]))).unwrap();
    assert!(json.to_string().contains("\"replicas\""), "{json}");
}

#[test]
fn query_lists_labels_and_dependencies() {
    let ws = workspace();
    let all = stdout(&ws.n2d(&["query", "//..."]));
    for line in [
        "//lib:http (module)",
        "//web:api (service)",
        "//web:dev (deployment)",
    ] {
        assert!(all.lines().any(|l| l == line), "{line} missing:\n{all}");
    }
    let deps = stdout(&ws.n2d(&["query", "deps", "//web:api"]));
    assert!(deps.contains("//web:db (in //web:dev)"), "{deps}");
    let rdeps = stdout(&ws.n2d(&["query", "rdeps", "//lib:http"]));
    assert!(
        rdeps.contains("//web:api (in //web:dev)") && !rdeps.contains("//web:db"),
        "{rdeps}"
    );
    let unknown = ws.n2d(&["query", "deps", "//web:apj"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("//web:api"));
}

#[test]
fn graph_shows_the_pipeline_of_a_deployment() {
    let ws = workspace();
    let dot = stdout(&ws.n2d(&["graph", "//web:dev", "--target", "k8s"]));
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(
        dot.contains("\"render //web:api in //web:dev (k8s)\" -> \"assemble //web:dev (k8s)\""),
        "{dot}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&ws.n2d(&[
        "graph",
        "//web:dev",
        "--format",
        "json",
    ])))
    .unwrap();
    assert!(
        json["edges"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["from"] == "eval //lib"),
        "{json}"
    );
}
