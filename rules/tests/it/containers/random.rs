//! Random service definitions: the compose and k8s outputs of each pass
//! `docker-compose config` and `kubernetes-validate --strict`. 8 cases (docker-compose is slow to
//! start), 64
//! with `N2D_SLOW_TESTS=1`.
use std::collections::BTreeMap;

use n2d_modules::service::Service;
use n2d_rules::compose::ComposeRule;
use n2d_rules::k8s::K8sRule;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

use super::fixtures::{self, MemorySources};
use super::output::{docker_compose_config, kubernetes_validate, render_deployment};
use crate::support::service;

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9 ]{0,12}",
        Just("no".to_string()),
        Just("22:22".to_string()),
        Just("$HOME 'q' \"d\"\n#x".to_string()),
    ]
}

fn readiness() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(json!({})),
        Just(json!({ "exec": ["true"], "period": "500ms", "timeout": "2s", "retries": 3 })),
        Just(json!({ "http": { "port": "p0", "path": "health" } })),
        Just(json!({ "tcp": { "port": "p0" } })),
    ]
}

/// One service named `name`, that may depend on `earlier` services.
fn service_json(name: String, earlier: Vec<String>) -> impl Strategy<Value = Value> {
    (
        (
            proptest::option::of(Just("docker.io/library/busybox:1.36".to_string())),
            proptest::collection::vec(text(), 1..4),
            proptest::collection::btree_map("[A-Z][A-Z0-9_]{0,6}", text(), 0..3),
            proptest::option::of("[a-z]{1,6}"),
            proptest::collection::vec(1024u16..65535, 1..3),
            proptest::collection::btree_map("[a-z]{1,5}", (any::<bool>(), proptest::option::of(Just("1Gi"))), 0..3),
        ),
        (
            readiness(),
            prop_oneof![Just("no"), Just("on-failure"), Just("always")],
            1u32..4,
            proptest::option::of(Just(json!({ "cpu": "250m", "memory": "128Mi" }))),
            proptest::sample::subsequence(earlier.clone(), 0..=earlier.len()),
            prop_oneof![Just("started"), Just("healthy"), Just("completed")],
            proptest::option::of(text()),
        ),
    )
        .prop_map(
            move |((image, command, env, secret, ports, volumes), (ready, restart, replicas, resources, deps, condition, file))| {
                let mut env: BTreeMap<String, Value> =
                    env.into_iter().map(|(k, v)| (k, json!(v))).collect();
                if let Some(secret) = secret {
                    env.insert("SECRET".into(), json!({ "secret": secret }));
                }
                let ports: BTreeMap<String, u16> = ports
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("p{i}"), *p))
                    .collect();
                let volumes: BTreeMap<String, Value> = volumes
                    .into_iter()
                    .map(|(v, (persist, size))| {
                        (v.clone(), json!({ "path": format!("/data/{v}"), "persist": persist, "size": size }))
                    })
                    .collect();
                let mut files = BTreeMap::new();
                if let Some(text) = file {
                    files.insert("conf.txt".to_string(), json!({ "text": text, "mode": "0640" }));
                }
                let depends: BTreeMap<String, &str> =
                    deps.into_iter().map(|d| (d, condition)).collect();
                json!({
                    "name": name,
                    "label": format!("//random:{name}"),
                    "image": image,
                    "command": command,
                    "env": env,
                    "ports": ports,
                    "volumes": volumes,
                    "files": files,
                    "readiness": ready,
                    "restart": restart,
                    "replicas": replicas,
                    "resources": resources.unwrap_or(json!({})),
                    "depends_on": depends,
                    "compose": { "extra": { "labels": { "extra": "yes" } } },
                    "k8s": { "extra": { "spec": { "revisionHistoryLimit": 3 } } },
                })
            },
        )
}

fn deployment_services() -> impl Strategy<Value = Vec<Value>> {
    (
        service_json("alpha".into(), vec![]),
        service_json("beta".into(), vec!["alpha".into()]),
        service_json("gamma-1".into(), vec!["alpha".into(), "beta".into()]),
    )
        .prop_map(|(a, b, c)| vec![a, b, c])
}

#[test]
fn random_services_pass_docker_compose_and_kubernetes_validate() {
    let cases = if std::env::var("N2D_SLOW_TESTS").as_deref() == Ok("1") {
        64
    } else {
        8
    };
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let k8s_outputs = std::cell::RefCell::new(Vec::new());
    let compose_outputs = std::cell::RefCell::new(Vec::new());
    let sources = MemorySources::default();
    runner
        .run(&deployment_services(), |values| {
            let services: Vec<Service> = values.into_iter().map(service).collect();
            let refs: Vec<&Service> = services.iter().collect();
            let deployment = fixtures::deployment("random", &refs);
            let compose = render_deployment(&ComposeRule, &deployment, &services, &sources);
            compose_outputs.borrow_mut().push(compose);
            k8s_outputs.borrow_mut().push(render_deployment(
                &K8sRule,
                &deployment,
                &services,
                &sources,
            ));
            Ok(())
        })
        .unwrap();
    // docker-compose takes seconds to start: check the files side by side.
    let compose_outputs = compose_outputs.into_inner();
    std::thread::scope(|scope| {
        for output in &compose_outputs {
            scope.spawn(|| docker_compose_config(output));
        }
    });
    let k8s_outputs = k8s_outputs.into_inner();
    let refs: Vec<_> = k8s_outputs.iter().collect();
    kubernetes_validate(&refs);
}
