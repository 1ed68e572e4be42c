//! Deployments: member lists and tables, per-deployment definitions,
//! services that exist only in a deployment.
use crate::support::{check, error, universe};

const FILES: &[(&str, &str)] = &[
    (
        "web/n2d.toml",
        "[services.api]\nreplicas = { mkDefault = 1 }\nenv.LOG = \"debug\"\n",
    ),
    ("db/n2d.toml", "[services.postgres]\nports.pg = 5432\n"),
    (
        "deploy/n2d.toml",
        r#"
[deployments.dev]
services = ["//web:api", "//db:postgres"]

[deployments.prod]
targets = ["k8s", "compose"]
namespace = "shop"
managers.compose = "podman-compose"
services."//db:postgres" = {}

[deployments.prod.services."//web:api"]
replicas = 3
env.LOG = { mkForce = "warn" }

[deployments.prod.services.migrate]
command = ["./bin/migrate", "${{ //db:postgres.address.pg }}"]
depends_on.postgres = "healthy"
"#,
    ),
];

#[test]
fn deployment_definitions_merge_over_the_service() {
    assert_eq!(check(FILES, "//deploy:prod api", "replicas"), "3");
    assert_eq!(check(FILES, "//deploy:prod api", "env.LOG"), "\"warn\"");
    assert_eq!(check(FILES, "//deploy:dev api", "replicas"), "1");
}

#[test]
fn a_service_defined_in_a_deployment() {
    assert_eq!(
        check(FILES, "//deploy:prod migrate", "command"),
        r#"["./bin/migrate","localhost:5432"]"#
    );
    assert_eq!(
        check(FILES, "//deploy:prod migrate", "label"),
        "\"//deploy:prod/migrate\""
    );
    assert_eq!(
        check(FILES, "//deploy:prod migrate", "depends_on"),
        r#"{"postgres":"healthy"}"#
    );
    assert_eq!(check(FILES, "//deploy:prod/migrate", "name"), "\"migrate\"");
}

#[test]
fn the_spec_lists_services_in_order_with_settings() {
    let universe = universe(FILES).unwrap();
    let spec = universe
        .deployment(&n2d_modules::parse_label("//deploy:prod", None).unwrap())
        .unwrap();
    let names: Vec<&str> = spec.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["postgres", "api", "migrate"]);
    assert_eq!(spec.services[1].defined_in, "web/n2d.toml");
    assert_eq!(spec.services[2].label.to_string(), "//deploy:prod/migrate");
    assert_eq!(spec.targets, ["k8s", "compose"]);
    assert_eq!(spec.namespace.as_deref(), Some("shop"));
    assert_eq!(spec.managers["compose"], "podman-compose");
}

#[test]
fn labels_list_every_kind() {
    let universe = universe(FILES).unwrap();
    let labels: Vec<String> = universe
        .labels()
        .into_iter()
        .map(|(l, k)| format!("{l} {}", k.noun()))
        .collect();
    assert_eq!(
        labels,
        [
            "//db:postgres service",
            "//deploy:dev deployment",
            "//deploy:prod deployment",
            "//deploy:prod/migrate service",
            "//web:api service",
        ]
    );
    let pattern = n2d_modules::parse_pattern("//deploy/...", None).unwrap();
    assert_eq!(universe.matching(&pattern).unwrap().len(), 3);
    // The deployments of a pattern, as `matching` gives them.
    let deployments_of = |text: &str| -> Vec<String> {
        let pattern = n2d_modules::parse_pattern(text, None).unwrap();
        let deployments: Vec<String> = universe
            .deployments_matching(&pattern)
            .unwrap()
            .iter()
            .map(|label| label.to_string())
            .collect();
        let expected: Vec<String> = universe
            .matching(&pattern)
            .unwrap()
            .into_iter()
            .filter(|(_, kind)| *kind == n2d_modules::LabelKind::Deployment)
            .map(|(label, _)| label.to_string())
            .collect();
        assert_eq!(deployments, expected, "{text}");
        deployments
    };
    for text in [
        "//deploy/...",
        "//deploy:prod",
        "//web/...",
        "//deploy:prod/migrate",
    ] {
        deployments_of(text);
    }
    assert_eq!(deployments_of("//..."), ["//deploy:dev", "//deploy:prod"]);
}

#[test]
fn resolve_value_is_resolve_without_provenance() {
    let universe = universe(FILES).unwrap();
    let prod = n2d_modules::parse_label("//deploy:prod", None).unwrap();
    for service in ["api", "postgres", "migrate"] {
        let full = universe
            .resolve(&prod, service, &n2d_modules::LocalEnv)
            .unwrap();
        let value = universe
            .resolve_value(&prod, service, &n2d_modules::LocalEnv)
            .unwrap();
        assert_eq!(value.value, full.value);
        assert_eq!(value.references, full.references);
        assert!(value.provenance.is_empty());
        assert!(!full.provenance.is_empty());
    }
}

#[test]
fn resolve_value_errors_still_point_at_the_definition() {
    let files = [("web/n2d.toml", "[services.api]\nports.http = 8080\nreadiness.tcp = { port = \"htp\" }\n[deployments.dev]\nservices = [\":api\"]\n")];
    let universe = universe(&files).unwrap();
    let dev = n2d_modules::parse_label("//web:dev", None).unwrap();
    let err = universe
        .resolve_value(&dev, "api", &n2d_modules::LocalEnv)
        .unwrap_err();
    assert_eq!(err.location.as_ref().map(|l| l.line), Some(3));
}

/// Every label a deployment's member answers to, in references and
/// `depends_on`: a package's service by its own label, a local service by
/// `//pkg:deployment/name` and, in the deployment's package, by `:name`.
#[test]
fn members_are_found_by_every_label_they_answer_to() {
    let files: &[(&str, &str)] = &[
        ("db/n2d.toml", "[services.postgres]\nports.pg = 5432\n"),
        (
            "deploy/n2d.toml",
            r#"
[deployments.prod]
services."//db:postgres" = {}

[deployments.prod.services.cache]
ports.redis = 6379

[deployments.prod.services.queue]
ports.amqp = 5672

[deployments.prod.services.app]
env.DB = "${{ //db:postgres.address.pg }}"
env.CACHE = "${{ :cache.address.redis }}"
env.QUEUE = "${{ //deploy:prod/queue.address.amqp }}"
depends_on."//deploy:prod/cache" = "started"
depends_on.queue = "started"
depends_on."//db:postgres" = "healthy"
"#,
        ),
    ];
    assert_eq!(
        check(files, "//deploy:prod app", "env"),
        r#"{"CACHE":"localhost:6379","DB":"localhost:5432","QUEUE":"localhost:5672"}"#
    );
    assert_eq!(
        check(files, "//deploy:prod app", "depends_on"),
        r#"{"cache":"started","postgres":"healthy","queue":"started"}"#
    );
    // Labels that name no member: another deployment's path, a package's
    // service that is not in the deployment, a local name from elsewhere.
    for wrong in [
        "//deploy:dev/cache",
        "//db:mysql",
        "//db:cache",
        "//deploy:prod/postgres",
    ] {
        let text = files[1].1.replace("//deploy:prod/queue", wrong);
        let message = error(&[files[0], ("deploy/n2d.toml", &text)], "//deploy:prod app");
        assert!(
            message.contains("not a service of the deployment"),
            "{wrong}: {message}"
        );
    }
}
