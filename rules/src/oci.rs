//! The `oci` target, and the conventions the three container targets share.
//!
//! The `oci` target writes one OCI image layout per deployment (no daemon,
//! no registry): `oci-layout`, `index.json` and `blobs/sha256/…`, with one
//! image per service that has no `image`. An image is a stack of layers, each
//! the output of a pure function of declared inputs, so that the engine can
//! cache each layer as a task of its own:
//! - [`layer_specs`] lists a service's layers ([`LayerSpec`]: a stable name
//!   and its inputs), bottom first: the deployment's base layer tarball (used
//!   as-is), one layer per Nix store path of the closure the caller supplies,
//!   the program when `package` is a local file (at
//!   `/usr/local/bin/<file name>`), and last the service layer (entrypoint
//!   script at [`ENTRYPOINT_PATH`], files under `/etc/n2d/<service>/`),
//!   which changes most often;
//! - [`build_layer`] turns one spec into a [`Layer`]: an uncompressed tar
//!   with sorted entries, mtime 0, owner 0:0, so that the same inputs give
//!   the same digest on any machine and in any folder;
//! - [`image_from_layers`] writes the config and the manifest.
//!
//! `index.json` lists each image twice, under the layout tags
//! `<deployment>-<service>` and `<deployment>-<service>-<12 hex digits of the
//! manifest digest>` ([`layout_tags`]). Compose and k8s run it under the
//! local name of [`image_reference`]; [`load_command`] is the command that
//! copies an image there (`skopeo copy oci:DIR:TAG containers-storage:NAME`).
//!
//! Conventions (used by `oci`, `compose` and `k8s` alike, so that an image
//! n2d builds fits the manifests n2d writes):
//! - [`ContainerEnv`]: services reach each other by service name; a service's
//!   file `name` lands at `/etc/n2d/<service>/<name>` in its container.
//! - [`image_reference`]: the image a container runs: the service's `image`,
//!   or the stable local name of the image n2d builds for it,
//!   `localhost/n2d/[<package>/]<deployment>-<service>:latest`.
//! - [`merge_extra`]: how `<target>.extra` is deep-merged into an object.
mod image;

pub use image::{
    build_layer, image_from_layers, layer_specs, layout_tags, load_command, local_package,
    path_layer_specs, sha256_digest, Blob, FileContent, Image, Layer, LayerFile, LayerInput,
    LayerSpec, NoStore, StoreReader, TreeEntry, TreeEntryKind, CONFIG_MEDIA_TYPE, ENTRYPOINT_PATH,
    IMAGE_PATH, INDEX_MEDIA_TYPE, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, PROGRAM_DIR,
};

use n2d_modules::service::Service;
use n2d_modules::TargetEnv;
use serde_json::{json, Value};

use crate::{Artifact, Deployment, Rendered, Rule, RuleError, SourceFiles};

/// The `oci` rule.
#[derive(Clone, Copy, Debug, Default)]
pub struct OciRule;

/// The options the `oci` target adds to every service.
pub const OCI_OPTIONS: &str = r#"[options.oci.extra]
type = "attrs"
default = {}
description = "Raw fields deep-merged into the image config (the JSON of the OCI image config; null removes a field)"

[options.oci.architecture]
type = "str"
default = "amd64"
description = "The architecture of the image (GOARCH names: amd64, arm64, ...)"
"#;

impl Rule for OciRule {
    fn target(&self) -> &'static str {
        image::TARGET
    }

    fn version(&self) -> u32 {
        2
    }

    fn env(&self) -> &dyn TargetEnv {
        &ContainerEnv
    }

    fn options(&self) -> &'static str {
        OCI_OPTIONS
    }

    fn deployment_inputs(&self, deployment: &Deployment) -> Vec<String> {
        deployment.base_layer.iter().cloned().collect()
    }

    fn source_inputs(&self, service: &Service) -> Vec<String> {
        // The base layer is the deployment's: see `deployment_inputs`.
        let mut inputs = crate::default_source_inputs(service);
        if service.image.is_none() {
            inputs.extend(image::local_package(service).map(str::to_string));
            inputs.sort();
            inputs.dedup();
        }
        inputs
    }

    fn render(
        &self,
        deployment: &Deployment,
        service: &Service,
        sources: &dyn SourceFiles,
    ) -> Result<Rendered, RuleError> {
        let (closure, shell) = match &service.package {
            Some(package) if package.starts_with(n2d_modules::nix::STORE_DIR) => {
                (sources.nix_closure(package), sources.nix_shell(package))
            }
            _ => (Vec::new(), None),
        };
        render_image(
            deployment,
            service,
            &closure,
            shell.as_deref(),
            sources,
            &NoStore,
        )
    }

    fn assemble(
        &self,
        _deployment: &Deployment,
        fragments: &[(&str, &Value)],
    ) -> Result<Vec<Artifact>, RuleError> {
        let mut manifests = Vec::new();
        for (_, fragment) in fragments {
            let (Some(descriptor), Some(tags)) = (
                fragment.get("manifest"),
                fragment.get("tags").and_then(Value::as_array),
            ) else {
                continue; // a service with a given image
            };
            for tag in tags {
                let mut entry = descriptor.clone();
                entry["annotations"] = json!({ "org.opencontainers.image.ref.name": tag });
                manifests.push(entry);
            }
        }
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX_MEDIA_TYPE,
            "manifests": manifests,
        });
        Ok(vec![
            Artifact {
                path: "oci-layout".into(),
                bytes: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec(),
                mode: 0o644,
            },
            Artifact {
                path: "index.json".into(),
                bytes: serde_json::to_vec(&index).expect("a JSON value always serializes"),
                mode: 0o644,
            },
        ])
    }
}

/// Renders the image of `service` with the Nix `closure` of its package (one
/// layer per store path, read through `store`): its blobs as artifacts, and
/// as fragment its manifest descriptor and layout tags. A service with an
/// `image` has nothing to build: no artifact, a null fragment. Without a
/// base layer, `shell` (a `bin/sh` of the closure) runs the entrypoint.
pub fn render_image(
    deployment: &Deployment,
    service: &Service,
    closure: &[String],
    shell: Option<&str>,
    sources: &dyn SourceFiles,
    store: &dyn StoreReader,
) -> Result<Rendered, RuleError> {
    if service.image.is_some() {
        return Ok(Rendered::default());
    }
    let mut warnings = Vec::new();
    if let Some(package) = &service.package {
        if image::local_package(service).is_none() && closure.is_empty() {
            warnings.push(format!(
                "oci: service `{}`: `package = \"{package}\"` is a Nix package and no closure was given: it is not in the image",
                service.name
            ));
        }
    }
    // The entrypoint is a shell script: the base layer's /bin/sh runs it,
    // else a shell of the closure (as nix2container images carry theirs).
    let shell = if deployment.base_layer.is_some() {
        None
    } else {
        shell
    };
    if deployment.base_layer.is_none() && shell.is_none() {
        warnings.push(format!(
            "oci: service `{}`: no base layer and no shell in a Nix closure: the image has no /bin/sh for its entrypoint",
            service.name
        ));
    }
    let specs = layer_specs(deployment, service, closure, sources)?;
    // (layer, whether it was built as a task of its own). A prebuilt layer's
    // blob is the caller's to write, once per layout: it is not repeated in
    // every image's render output.
    let layers = specs
        .iter()
        .map(
            |spec| match spec.task_key().and_then(|key| sources.prebuilt_layer(&key)) {
                Some((digest, size)) => Ok((
                    Layer {
                        name: spec.name.clone(),
                        blob: Blob::described(LAYER_MEDIA_TYPE, digest, size),
                    },
                    true,
                )),
                None => build_layer(spec, &service.name, sources, store).map(|l| (l, false)),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    let (layers, prebuilt): (Vec<Layer>, Vec<bool>) = layers.into_iter().unzip();
    let built = image_from_layers(deployment, service, &layers, shell);
    let mut artifacts: Vec<Artifact> = layers
        .iter()
        .zip(&prebuilt)
        .filter(|(_, prebuilt)| !**prebuilt)
        .map(|(layer, _)| &layer.blob)
        .chain([&built.config, &built.manifest])
        .map(|blob| Artifact {
            path: blob.path(),
            bytes: blob.bytes.clone(),
            mode: 0o644,
        })
        .collect();
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    artifacts.dedup_by(|a, b| a.path == b.path);
    let tags = layout_tags(deployment, &service.name, &built.manifest.digest);
    Ok(Rendered {
        artifacts,
        fragment: json!({ "manifest": built.manifest.descriptor(), "tags": tags }),
        warnings,
    })
}

/// Where n2d puts a service's files inside its container.
pub const CONTAINER_FILES_DIR: &str = "/etc/n2d";

/// Where secrets are files inside a container (compose mounts them there;
/// the k8s target mounts its Secret there for built images), and where the
/// entrypoint of an n2d-built image reads them.
pub const CONTAINER_SECRETS_DIR: &str = "/run/secrets";

/// The tag of every image n2d builds, in the local image store (see
/// [`image_reference`]).
pub const BUILT_IMAGE_TAG: &str = "latest";

/// The environment of the container targets: services are addressed by their
/// service name (the compose service, the Kubernetes Service), and files land
/// at a fixed absolute path inside the container.
#[derive(Clone, Copy, Debug, Default)]
pub struct ContainerEnv;

impl TargetEnv for ContainerEnv {
    fn id(&self) -> String {
        "service-name".into()
    }
    fn host(&self, service: &str) -> String {
        service.into()
    }
    fn file_path(&self, service: &str, file: &str) -> String {
        container_file_path(service, file)
    }
}

/// Where file `file` of `service` lands inside the container.
pub fn container_file_path(service: &str, file: &str) -> String {
    format!("{CONTAINER_FILES_DIR}/{service}/{file}")
}

/// The image a container of `service` runs: its `image` when set, else the
/// local name under which the image n2d builds for it is loaded
/// (`skopeo copy oci:<oci output>:<layout tag> containers-storage:<this>`).
pub fn image_reference(deployment: &Deployment, service: &Service) -> String {
    match &service.image {
        Some(image) => image.clone(),
        None => format!(
            "{}:{BUILT_IMAGE_TAG}",
            built_image_name(deployment, &service.name)
        ),
    }
}

/// The repository name of the image n2d builds for `service`:
/// `localhost/n2d/[<package>/]<deployment>-<service>`, each path component
/// lowered and reduced to the characters an image reference allows. The
/// package is part of the name so that two packages' `dev` deployments do not
/// overwrite each other's images in the local store.
pub fn built_image_name(deployment: &Deployment, service: &str) -> String {
    let mut name = String::from("localhost/n2d/");
    for component in deployment.package.split('/').filter(|c| !c.is_empty()) {
        name.push_str(&reference_component(component));
        name.push('/');
    }
    name.push_str(&reference_component(&format!(
        "{}-{service}",
        deployment.name
    )));
    name
}

/// Deep-merges `extra` (the raw `<target>.extra` value) into `object`: JSON
/// objects merge key by key, recursively; any other value (a list, a string)
/// replaces what was there; `null` removes the key, so that `extra` can also
/// take away a field n2d writes.
pub fn merge_extra(object: &mut serde_json::Value, extra: &serde_json::Value) {
    match (object, extra) {
        (serde_json::Value::Object(base), serde_json::Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    base.remove(key);
                } else if let Some(existing) = base.get_mut(key) {
                    merge_extra(existing, value);
                } else {
                    base.insert(key.clone(), value.clone());
                }
            }
        }
        (base, patch) => *base = patch.clone(),
    }
}

/// The service's `<target>.extra`, checked to be a table.
pub(crate) fn target_extra<'a>(
    target: &'static str,
    service: &'a Service,
) -> Result<Option<&'a serde_json::Value>, RuleError> {
    match service.target_extra(target) {
        None => Ok(None),
        Some(extra) if extra.is_object() => Ok(Some(extra)),
        Some(_) => Err(RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!("`{target}.extra` must be a table"),
        }),
    }
}

/// One path component of an image reference: lowercase ASCII letters and
/// digits, runs of anything else turned into one `-`, never empty.
pub(crate) fn reference_component(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        out.push('x');
    }
    out
}

/// Parses a duration option (`stop.timeout`, `readiness.period`…), or says
/// which option holds an invalid one.
pub(crate) fn parse_duration_option(
    target: &'static str,
    service: &Service,
    option: &str,
    text: &str,
) -> Result<std::time::Duration, RuleError> {
    n2d_modules::service::parse_duration(text).ok_or_else(|| RuleError::Unsupported {
        target,
        service: service.name.clone(),
        message: format!("`{option}` is not a duration: `{text}`"),
    })
}

/// Whole seconds, rounded up, at least 1: what Kubernetes probe and grace
/// fields take.
pub(crate) fn whole_seconds_at_least_one(duration: std::time::Duration) -> u64 {
    let seconds = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    seconds.max(1)
}

/// A probe's port: a name of `ports`, or a number.
pub(crate) fn resolve_port(
    target: &'static str,
    service: &Service,
    port: &str,
) -> Result<u16, RuleError> {
    if let Some(number) = service.ports.get(port) {
        return Ok(*number);
    }
    port.parse().map_err(|_| RuleError::Unsupported {
        target,
        service: service.name.clone(),
        message: format!("probe port `{port}` is neither a port name nor a number"),
    })
}

/// A file mode written in octal text (`"0644"`).
pub(crate) fn parse_mode(
    target: &'static str,
    service: &Service,
    file: &str,
    mode: &str,
) -> Result<u32, RuleError> {
    u32::from_str_radix(mode, 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!("file `{file}`: mode `{mode}` is not octal"),
        })
}

/// File names are one plain file name (no `/`), as the entrypoint script
/// requires in every target: the same definition renders everywhere.
pub(crate) fn check_file_name(
    target: &'static str,
    service: &Service,
    name: &str,
) -> Result<(), RuleError> {
    if !crate::entrypoint::is_plain_file_name(name) {
        return Err(RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!("file name `{name}` must be a plain file name, without `/`"),
        });
    }
    Ok(())
}

/// The content of a service's file: its `text`, or its `source` file.
pub(crate) fn file_bytes(
    target: &'static str,
    service: &Service,
    sources: &dyn SourceFiles,
    name: &str,
) -> Result<Vec<u8>, RuleError> {
    let file = &service.files[name];
    match (&file.text, &file.source) {
        (Some(text), _) => Ok(text.clone().into_bytes()),
        (None, Some(source)) => read_source(target, service, sources, source),
        (None, None) => Err(RuleError::Unsupported {
            target,
            service: service.name.clone(),
            message: format!("file `{name}` has neither `text` nor `source`"),
        }),
    }
}

pub(crate) fn read_source(
    target: &'static str,
    service: &Service,
    sources: &dyn SourceFiles,
    path: &str,
) -> Result<Vec<u8>, RuleError> {
    sources.read(path).map_err(|message| RuleError::Source {
        target,
        service: service.name.clone(),
        path: path.to_string(),
        message,
    })
}

/// A source file as text (for `env.X = { file = … }`), exactly as the
/// entrypoint script exports it.
pub(crate) fn read_env_file(
    target: &'static str,
    service: &Service,
    sources: &dyn SourceFiles,
    path: &str,
) -> Result<String, RuleError> {
    crate::entrypoint::env_file_value(target, service, path, sources)
}
