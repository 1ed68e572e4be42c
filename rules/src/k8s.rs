//! The `k8s` target: Kubernetes manifests, one file per service, and a
//! `kustomization.yaml` listing them (`kubectl apply -k`, `podman kube play`).
//!
//! [`K8sRule::render`] builds a service's objects: its workload (a
//! Deployment, or a StatefulSet with `volumeClaimTemplates` and a headless
//! Service `<service>-headless` when it has persisting volumes), a Service
//! named like the service for its ports (so `host(svc) = svc` resolves), and
//! a ConfigMap `<service>-files` for its files. [`K8sRule::assemble`] adds
//! what needs the other services (the init containers that wait for
//! dependencies), then writes `<service>.yaml` per service and
//! `kustomization.yaml`.
//!
//! Conventions (documented for users):
//! - labels on every object: `app.kubernetes.io/name` = service,
//!   `app.kubernetes.io/part-of` = deployment, `app.kubernetes.io/managed-by`
//!   = `n2d`, and [`DEPLOYMENT_LABEL`] = `<package>-<deployment>` for
//!   `kubectl apply --prune -l`.
//! - secrets: `env.X = { secret = "s" }` reads key `s` of the Secret
//!   [`secret_name`] (`<deployment>-secrets`), which the user creates; n2d
//!   never writes a secret value.
//!   An n2d-built image also gets them as files under `/run/secrets/`
//!   (its entrypoint reads them there, as under compose).
//! - files: the ConfigMap is mounted at `/etc/n2d/<service>/`.
//! - `depends_on`: one init container per dependency with ports, running
//!   `nc` in the `k8s.wait_image` image (busybox by default) until the
//!   dependency's Service accepts connections: a Service only routes to
//!   ready Pods, so this waits for `healthy` as well as `started`.
//!   `completed` cannot be observed from a Pod and is reported.
//! - a built image is pulled `IfNotPresent`: it is loaded into the node's
//!   store, never pushed (see [`crate::oci`]).
//! - `k8s.extra` is deep-merged into the workload object.
use n2d_modules::service::{Condition, EnvValue, RestartPolicy, Service};
use n2d_modules::TargetEnv;
use serde_json::{json, Map, Value};

use crate::compose::yaml::to_yaml;
use crate::oci::{self, ContainerEnv};
use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};

/// The `k8s` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct K8sRule;

/// The options the `k8s` target adds to every service.
pub const K8S_OPTIONS: &str = r#"[options.k8s.extra]
type = "attrs"
default = {}
description = "Raw fields deep-merged into this service's workload object (Deployment or StatefulSet; null removes a field)"

[options.k8s.wait_image]
type = "str"
default = "docker.io/library/busybox:1.36"
description = "Image of the init containers that wait for dependencies (needs sh, nc and sleep)"
"#;

/// The label that marks every object of one deployment, for pruning.
pub const DEPLOYMENT_LABEL: &str = "n2d/deployment";

/// The default image of the init containers that wait for dependencies.
pub const DEFAULT_WAIT_IMAGE: &str = "docker.io/library/busybox:1.36";

/// The Secret that holds the deployment's secrets, one key per secret name.
pub fn secret_name(deployment: &Deployment) -> String {
    dns_label(&format!("{}-secrets", deployment.name))
}

impl Rule for K8sRule {
    fn target(&self) -> &'static str {
        TARGET
    }

    fn version(&self) -> u32 {
        1
    }

    fn env(&self) -> &dyn TargetEnv {
        &ContainerEnv
    }

    fn options(&self) -> &'static str {
        K8S_OPTIONS
    }

    fn render(
        &self,
        deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        render_service(deployment, service, sources)
    }

    fn assemble(
        &self,
        deployment: &Deployment,
        fragments: &[(&str, &Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let ports_of = |name: &str| -> Vec<u64> {
            fragments
                .iter()
                .find(|(n, _)| *n == name)
                .and_then(|(_, f)| f.get("ports"))
                .and_then(Value::as_array)
                .map(|ports| ports.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        let mut artifacts = Vec::new();
        let mut resources = Vec::new();
        for (name, fragment) in fragments {
            let mut objects: Vec<Value> = fragment
                .get("objects")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let wait_image = fragment
                .get("wait_image")
                .and_then(Value::as_str)
                .unwrap_or(DEFAULT_WAIT_IMAGE);
            let mut waits = Vec::new();
            if let Some(Value::Object(depends_on)) = fragment.get("depends_on") {
                for dependency in depends_on.keys() {
                    if let Some(port) = ports_of(dependency).first() {
                        waits.push(wait_container(wait_image, dependency, *port));
                    }
                }
            }
            if !waits.is_empty() {
                if let Some(pod) = objects
                    .first_mut()
                    .and_then(|workload| workload.pointer_mut("/spec/template/spec"))
                    .and_then(Value::as_object_mut)
                {
                    let init = pod
                        .entry("initContainers")
                        .or_insert_with(|| Value::Array(Vec::new()));
                    if let Value::Array(list) = init {
                        list.splice(0..0, waits);
                    }
                }
            }
            let text = objects
                .iter()
                .map(to_yaml)
                .collect::<Vec<_>>()
                .join("---\n");
            let path = format!("{name}.yaml");
            resources.push(json!(path));
            artifacts.push(Artifact {
                path,
                bytes: text.into_bytes(),
                mode: 0o644,
            });
        }
        resources.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
        let mut kustomization = Map::new();
        kustomization.insert(
            "apiVersion".into(),
            json!("kustomize.config.k8s.io/v1beta1"),
        );
        kustomization.insert("kind".into(), json!("Kustomization"));
        if let Some(namespace) = &deployment.namespace {
            kustomization.insert("namespace".into(), json!(namespace));
        }
        kustomization.insert("resources".into(), Value::Array(resources));
        artifacts.push(Artifact {
            path: "kustomization.yaml".into(),
            bytes: to_yaml(&Value::Object(kustomization)).into_bytes(),
            mode: 0o644,
        });
        Ok(artifacts)
    }
}

const TARGET: &str = "k8s";

/// The volume under which the service's ConfigMap is mounted.
const FILES_VOLUME: &str = "n2d-files";

/// The volume under which a built image's secrets are mounted.
const SECRETS_VOLUME: &str = "n2d-secrets";

fn render_service(
    deployment: &Deployment,
    service: &Service,
    sources: &dyn SourceFiles,
) -> Result<Rendered, RuleError> {
    let mut warnings = Vec::new();
    if !is_dns_label(&service.name) {
        return Err(unsupported(
            service,
            format!(
                "the service name must be a DNS label (lowercase letters, digits, `-`, at most 63) to be a Service that other services reach by name; `{}` is not",
                service.name
            ),
        ));
    }
    let built = service.image.is_none();
    let labels = common_labels(deployment, service);
    let selector = json!({
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/part-of": label_value(&deployment.name),
    });
    let metadata = |name: String| {
        let mut meta = json!({ "name": name, "labels": labels });
        if let Some(namespace) = &deployment.namespace {
            meta["namespace"] = json!(namespace);
        }
        meta
    };

    let mut container = Map::new();
    container.insert("name".into(), json!(service.name));
    container.insert(
        "image".into(),
        json!(oci::image_reference(deployment, service)),
    );
    if built {
        container.insert("imagePullPolicy".into(), json!("IfNotPresent"));
    } else {
        // `args`, not `command`: a given image keeps its own entrypoint, as
        // compose's `command` does.
        if !service.command.is_empty() {
            container.insert("args".into(), json!(service.command));
        }
        if !service.pre_start.trim().is_empty() {
            warnings.push(format!(
                "k8s: service `{}`: `pre_start` only runs in images n2d builds",
                service.name
            ));
        }
    }
    if let Some(workdir) = &service.workdir {
        container.insert("workingDir".into(), json!(workdir));
    }

    let mut env = Vec::new();
    let mut secret_items: Vec<Value> = Vec::new();
    for (key, value) in &service.env {
        match value {
            EnvValue::Text(text) => env.push(json!({ "name": key, "value": text })),
            EnvValue::File { file } => {
                let text = oci::read_env_file(TARGET, service, sources, file)?;
                env.push(json!({ "name": key, "value": text }));
            }
            EnvValue::Secret { secret } => {
                if !is_config_key(secret) {
                    return Err(unsupported(
                        service,
                        format!("secret name `{secret}` is not a valid Secret key (letters, digits, `-`, `_`, `.`)"),
                    ));
                }
                env.push(json!({
                    "name": key,
                    "valueFrom": { "secretKeyRef": { "name": secret_name(deployment), "key": secret } },
                }));
                let item = json!({ "key": secret, "path": secret });
                if !secret_items.contains(&item) {
                    secret_items.push(item);
                }
            }
        }
    }
    if !env.is_empty() {
        container.insert("env".into(), Value::Array(env));
    }

    let mut port_numbers: Vec<u16> = Vec::new();
    let mut container_ports = Vec::new();
    let mut service_ports = Vec::new();
    for (name, port) in &service.ports {
        let mut entry = json!({ "containerPort": port, "protocol": "TCP" });
        if is_port_name(name) {
            entry["name"] = json!(name);
        }
        container_ports.push(entry);
        if !port_numbers.contains(port) {
            port_numbers.push(*port);
            let port_name = if is_port_name(name) {
                name.clone()
            } else {
                format!("port-{port}")
            };
            service_ports.push(json!({
                "name": port_name,
                "port": port,
                "targetPort": port,
                "protocol": "TCP",
            }));
        }
    }
    if !container_ports.is_empty() {
        container.insert("ports".into(), Value::Array(container_ports));
    }

    let mut mounts = Vec::new();
    let mut pod_volumes = Vec::new();
    let mut claim_templates = Vec::new();
    for (name, volume) in &service.volumes {
        let volume_name = dns_label(name);
        mounts.push(json!({ "name": volume_name, "mountPath": volume.path }));
        if volume.persist {
            claim_templates.push(json!({
                "metadata": { "name": volume_name },
                "spec": {
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": volume.size.as_deref().unwrap_or("1Gi") } },
                },
            }));
        } else {
            let mut empty_dir = json!({});
            if let Some(size) = &volume.size {
                empty_dir["sizeLimit"] = json!(size);
            }
            pod_volumes.push(json!({ "name": volume_name, "emptyDir": empty_dir }));
        }
    }

    let mut config_map = None;
    if !service.files.is_empty() {
        let mut data = Map::new();
        let mut binary_data = Map::new();
        let mut items = Vec::new();
        for name in service.files.keys() {
            oci::check_file_name(TARGET, service, name)?;
            let key = config_key(name);
            if data.contains_key(&key) || binary_data.contains_key(&key) {
                return Err(unsupported(
                    service,
                    format!(
                        "files `{name}` and another file map to the same ConfigMap key `{key}`"
                    ),
                ));
            }
            let bytes = oci::file_bytes(TARGET, service, sources, name)?;
            match String::from_utf8(bytes) {
                Ok(text) => data.insert(key.clone(), json!(text)),
                Err(error) => binary_data.insert(key.clone(), json!(base64(error.as_bytes()))),
            };
            let mode = oci::parse_mode(TARGET, service, name, &service.files[name].mode)?;
            items.push(json!({ "key": key, "path": name, "mode": mode }));
        }
        let config_name = format!("{}-files", service.name);
        let mut object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": metadata(config_name.clone()),
        });
        if !data.is_empty() {
            object["data"] = Value::Object(data);
        }
        if !binary_data.is_empty() {
            object["binaryData"] = Value::Object(binary_data);
        }
        config_map = Some(object);
        pod_volumes.push(json!({
            "name": FILES_VOLUME,
            "configMap": { "name": config_name, "items": items },
        }));
        mounts.push(json!({
            "name": FILES_VOLUME,
            "mountPath": format!("{}/{}", oci::CONTAINER_FILES_DIR, service.name),
            "readOnly": true,
        }));
    }
    if built && !secret_items.is_empty() {
        // The entrypoint of an n2d-built image reads its secrets from
        // files, as under compose; the env above serves given images.
        pod_volumes.push(json!({
            "name": SECRETS_VOLUME,
            "secret": { "secretName": secret_name(deployment), "items": secret_items },
        }));
        mounts.push(json!({
            "name": SECRETS_VOLUME,
            "mountPath": oci::CONTAINER_SECRETS_DIR,
            "readOnly": true,
        }));
    }
    if !mounts.is_empty() {
        container.insert("volumeMounts".into(), Value::Array(mounts));
    }

    if let Some(probe) = probe(service)? {
        let period = seconds(service, "readiness.period", &service.readiness.period)?;
        let timeout = seconds(service, "readiness.timeout", &service.readiness.timeout)?;
        let mut probe = probe;
        probe.insert("periodSeconds".into(), json!(period));
        probe.insert("timeoutSeconds".into(), json!(timeout));
        probe.insert(
            "failureThreshold".into(),
            json!(service.readiness.retries.max(1)),
        );
        container.insert("readinessProbe".into(), Value::Object(probe.clone()));
        container.insert("livenessProbe".into(), Value::Object(probe));
    }

    let mut limits = Map::new();
    if let Some(cpu) = &service.resources.cpu {
        limits.insert("cpu".into(), json!(cpu));
    }
    if let Some(memory) = &service.resources.memory {
        limits.insert("memory".into(), json!(memory));
    }
    if !limits.is_empty() {
        container.insert("resources".into(), json!({ "limits": limits }));
    }

    if let Some(user) = &service.user {
        match numeric_user(user) {
            Some((uid, gid)) => {
                let mut context = json!({ "runAsUser": uid });
                if let Some(gid) = gid {
                    context["runAsGroup"] = json!(gid);
                }
                container.insert("securityContext".into(), context);
            }
            // A built image names its user in its config; a given image
            // would run as its own default user.
            None if !built => warnings.push(format!(
                "k8s: service `{}`: `user = \"{user}\"` is not numeric: Kubernetes only takes user ids",
                service.name
            )),
            None => {}
        }
    }

    if service.stop.signal != "TERM" {
        warnings.push(format!(
            "k8s: service `{}`: Kubernetes always stops with SIGTERM, not SIG{}",
            service.name, service.stop.signal
        ));
    }
    if service.restart == RestartPolicy::No {
        warnings.push(format!(
            "k8s: service `{}`: restart = \"no\": Deployments and StatefulSets always restart their containers",
            service.name
        ));
    }
    if service.max_restarts.is_some() || service.backoff != "1s" {
        warnings.push(format!(
            "k8s: service `{}`: `max_restarts` and `backoff` cannot be set, the kubelet uses its own",
            service.name
        ));
    }
    for (dependency, condition) in &service.depends_on {
        if *condition == Condition::Completed {
            warnings.push(format!(
                "k8s: service `{}`: cannot wait for `{dependency}` to complete; it waits for its Service, if it has ports",
                service.name
            ));
        }
    }

    let grace = oci::parse_duration_option(TARGET, service, "stop.timeout", &service.stop.timeout)?;
    let mut pod_spec = Map::new();
    pod_spec.insert("containers".into(), json!([Value::Object(container)]));
    // The definition's `env` is the whole environment: no `<SVC>_PORT`
    // variables injected by Kubernetes that could shadow it.
    pod_spec.insert("enableServiceLinks".into(), json!(false));
    pod_spec.insert(
        "terminationGracePeriodSeconds".into(),
        json!(oci::whole_seconds_at_least_one(grace)),
    );
    if !pod_volumes.is_empty() {
        pod_spec.insert("volumes".into(), Value::Array(pod_volumes));
    }
    let template = json!({
        "metadata": { "labels": labels },
        "spec": pod_spec,
    });

    let stateful = !claim_templates.is_empty();
    let headless_name = format!("{}-headless", service.name);
    let mut workload = if stateful {
        json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": metadata(service.name.clone()),
            "spec": {
                "serviceName": headless_name,
                "replicas": service.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
                "volumeClaimTemplates": claim_templates,
            },
        })
    } else {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(service.name.clone()),
            "spec": {
                "replicas": service.replicas,
                "selector": { "matchLabels": selector },
                "template": template,
            },
        })
    };
    if let Some(description) = &service.description {
        workload["metadata"]["annotations"] = json!({ "n2d/description": description });
    }
    if let Some(extra) = oci::target_extra(TARGET, service)? {
        oci::merge_extra(&mut workload, extra);
    }

    let mut objects = vec![workload];
    if !service_ports.is_empty() {
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(service.name.clone()),
            "spec": { "selector": selector, "ports": service_ports },
        }));
    }
    if stateful {
        let mut spec = json!({ "clusterIP": "None", "selector": selector });
        if !service_ports.is_empty() {
            spec["ports"] = json!(service_ports);
        }
        objects.push(json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(headless_name),
            "spec": spec,
        }));
    }
    objects.extend(config_map);

    let wait_image = service
        .other
        .get(TARGET)
        .and_then(|group| group.get("wait_image"))
        .and_then(Value::as_str)
        .unwrap_or(DEFAULT_WAIT_IMAGE);
    let fragment = json!({
        "objects": objects,
        "ports": port_numbers,
        "depends_on": service.depends_on,
        "wait_image": wait_image,
    });
    Ok(Rendered {
        artifacts: Vec::new(),
        fragment,
        warnings,
    })
}

/// The probe of the service's readiness (handler only), if it has one.
fn probe(service: &Service) -> Result<Option<Map<String, Value>>, RuleError> {
    let readiness = &service.readiness;
    let handler = if let Some(exec) = &readiness.exec {
        ("exec", json!({ "command": exec }))
    } else if let Some(http) = &readiness.http {
        let port = oci::resolve_port(TARGET, service, &http.port)?;
        let path = if http.path.starts_with('/') {
            http.path.clone()
        } else {
            format!("/{}", http.path)
        };
        ("httpGet", json!({ "path": path, "port": port }))
    } else if let Some(tcp) = &readiness.tcp {
        let port = oci::resolve_port(TARGET, service, &tcp.port)?;
        ("tcpSocket", json!({ "port": port }))
    } else {
        return Ok(None);
    };
    let mut probe = Map::new();
    probe.insert(handler.0.into(), handler.1);
    Ok(Some(probe))
}

/// An init container that waits until `host:port` accepts connections.
fn wait_container(image: &str, host: &str, port: u64) -> Value {
    json!({
        "name": dns_label(&format!("wait-{host}")),
        "image": image,
        "command": [
            "sh",
            "-c",
            "until nc -w 2 \"$0\" \"$1\" </dev/null >/dev/null 2>&1; do echo \"waiting for $0:$1\"; sleep 2; done",
            host,
            port.to_string(),
        ],
    })
}

fn common_labels(deployment: &Deployment, service: &Service) -> Value {
    json!({
        "app.kubernetes.io/name": service.name,
        "app.kubernetes.io/part-of": label_value(&deployment.name),
        "app.kubernetes.io/managed-by": "n2d",
        DEPLOYMENT_LABEL: label_value(&format!("{}-{}", deployment.package, deployment.name)),
    })
}

fn seconds(service: &Service, option: &str, text: &str) -> Result<u64, RuleError> {
    let duration = oci::parse_duration_option(TARGET, service, option, text)?;
    Ok(oci::whole_seconds_at_least_one(duration))
}

/// `"1000"` or `"1000:1000"` as numeric ids.
fn numeric_user(user: &str) -> Option<(u32, Option<u32>)> {
    match user.split_once(':') {
        Some((uid, gid)) => Some((uid.parse().ok()?, Some(gid.parse().ok()?))),
        None => Some((user.parse().ok()?, None)),
    }
}

/// A label value: at most 63 of `[A-Za-z0-9_.-]`, alphanumeric at both ends.
/// Longer text keeps its start and gets a hash of the whole, to stay unique.
fn label_value(text: &str) -> String {
    let mut value: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    if value.len() > 63 {
        let hash = blake3::hash(text.as_bytes()).to_hex();
        value = format!("{}-{}", &value[..54], &hash[..8]);
    }
    value
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .to_string()
}

/// A DNS-1123 label made of `text`: lowercase, `-` for anything else.
fn dns_label(text: &str) -> String {
    let mut label: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    if label.len() > 63 {
        let hash = blake3::hash(text.as_bytes()).to_hex();
        label = format!("{}-{}", &label[..54], &hash[..8]);
    }
    let label = label.trim_matches('-').to_string();
    if label.is_empty() {
        "x".into()
    } else {
        label
    }
}

fn is_dns_label(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !text.starts_with('-')
        && !text.ends_with('-')
}

/// An IANA service name, as container port names must be.
fn is_port_name(text: &str) -> bool {
    is_dns_label(text)
        && text.len() <= 15
        && !text.contains("--")
        && text.chars().any(|c| c.is_ascii_lowercase())
}

fn is_config_key(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 253
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A ConfigMap key for file `name` (`tls/cert.pem` → `tls-cert.pem`).
fn config_key(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Standard base64 with padding, for ConfigMap `binaryData`.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn unsupported(service: &Service, message: String) -> RuleError {
    RuleError::Unsupported {
        target: TARGET,
        service: service.name.clone(),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet_and_padding() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x01]), "//4AAQ==");
    }

    #[test]
    fn long_names_become_valid_labels_that_stay_unique() {
        let long = "a".repeat(70);
        let value = label_value(&format!("{long}/x"));
        assert!(value.len() <= 63, "{value}");
        assert_ne!(value, label_value(&format!("{long}/y")));
        assert_eq!(dns_label("My_Volume"), "my-volume");
    }
}
