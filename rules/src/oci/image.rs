//! Layers, image config and manifest: the pure functions behind the `oci`
//! rule (see the parent module for how they fit together).
use std::collections::BTreeSet;

use n2d_modules::service::{EnvValue, Service};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::entrypoint::{self, EntrypointLayout, Interpreter, Root, SecretStore};
use crate::{Deployment, RuleError, SourceFiles};

use super::{container_file_path, CONTAINER_FILES_DIR, CONTAINER_SECRETS_DIR};

/// Where the entrypoint script is in every image n2d builds.
pub const ENTRYPOINT_PATH: &str = "/n2d/entrypoint";

/// Where a local `package` file is put (and which is on `PATH`).
pub const PROGRAM_DIR: &str = "/usr/local/bin";

/// `PATH` in every image n2d builds.
pub const IMAGE_PATH: &str = "/usr/local/bin:/usr/local/sbin:/usr/bin:/usr/sbin:/bin:/sbin";

pub const LAYER_MEDIA_TYPE: &str = "application/vnd.oci.image.layer.v1.tar";
pub const CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.image.config.v1+json";
pub const MANIFEST_MEDIA_TYPE: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX_MEDIA_TYPE: &str = "application/vnd.oci.image.index.v1+json";

/// One layer to build: a stable name (its identity within the image, also
/// written into the image history) and its inputs. A spec holds everything
/// its layer depends on apart from source files and store trees, which are
/// named by path: a cache key is the spec plus the content of those.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerSpec {
    pub name: String,
    pub input: LayerInput,
}

impl LayerSpec {
    /// For a layer that depends only on files named by path (a tarball, a
    /// store path, a local program), a stable text naming exactly its
    /// inputs: a build makes such a layer a task of its own under this key,
    /// so that it is built once for every service and deployment using it,
    /// and not again while those files are unchanged. `None` for a layer
    /// with inline content (the service layer), built with its service.
    pub fn task_key(&self) -> Option<String> {
        match &self.input {
            LayerInput::Tarball { path } => Some(format!("tarball {path}")),
            LayerInput::StorePath { path } => Some(format!("store {path}")),
            LayerInput::Files { files } => {
                let mut key = String::from("files");
                for file in files {
                    let FileContent::Source(source) = &file.content else {
                        return None;
                    };
                    key.push_str(&format!(" {source}={}:{:o}", file.path, file.mode));
                }
                Some(key)
            }
        }
    }

    /// The workspace source files the layer reads (none for a store path).
    pub fn source_paths(&self) -> Vec<String> {
        match &self.input {
            LayerInput::Tarball { path } => vec![path.clone()],
            LayerInput::StorePath { .. } => Vec::new(),
            LayerInput::Files { files } => files
                .iter()
                .filter_map(|f| match &f.content {
                    FileContent::Source(source) => Some(source.clone()),
                    FileContent::Inline(_) => None,
                })
                .collect(),
        }
    }
}

/// What a layer is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayerInput {
    /// An uncompressed tar file (workspace-relative, read through
    /// [`SourceFiles`]), used byte for byte.
    Tarball { path: String },
    /// A Nix store path, as listed by the store reader.
    StorePath { path: String },
    /// Files: content given inline, or read through [`SourceFiles`].
    Files { files: Vec<LayerFile> },
}

/// A file of a [`LayerInput::Files`] layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerFile {
    /// Absolute path inside the image.
    pub path: String,
    pub content: FileContent,
    pub mode: u32,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileContent {
    Inline(Vec<u8>),
    /// A workspace-relative source file.
    Source(String),
}

/// Lists the files of a Nix store path (the caller walks the store; rules
/// never touch the file system).
pub trait StoreReader {
    /// Every entry under `store_path`, the store path itself included, with
    /// absolute paths.
    fn entries(&self, store_path: &str) -> Result<Vec<TreeEntry>, String>;
}

/// A store reader for builds without Nix: it has no store path.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStore;

impl StoreReader for NoStore {
    fn entries(&self, store_path: &str) -> Result<Vec<TreeEntry>, String> {
        Err(format!("no Nix store to read `{store_path}` from"))
    }
}

/// One entry of a store path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    /// Absolute path inside the image.
    pub path: String,
    pub kind: TreeEntryKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TreeEntryKind {
    Directory,
    File { bytes: Vec<u8>, executable: bool },
    Symlink { target: String },
}

/// A content-addressed blob of the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Blob {
    pub media_type: &'static str,
    /// `sha256:<hex>`.
    pub digest: String,
    pub size: u64,
    /// Empty for a blob only described (`Blob::described`).
    pub bytes: Vec<u8>,
}

impl Blob {
    pub fn new(media_type: &'static str, bytes: Vec<u8>) -> Blob {
        Blob {
            media_type,
            digest: sha256_digest(&bytes),
            size: bytes.len() as u64,
            bytes,
        }
    }

    /// A blob known by its digest and size, whose bytes someone else writes
    /// (a layer built as a task of its own): enough for descriptors.
    pub fn described(media_type: &'static str, digest: String, size: u64) -> Blob {
        Blob {
            media_type,
            digest,
            size,
            bytes: Vec::new(),
        }
    }

    /// Its path in the layout: `blobs/sha256/<hex>`.
    pub fn path(&self) -> String {
        format!("blobs/{}", self.digest.replacen(':', "/", 1))
    }

    /// Its OCI descriptor.
    pub fn descriptor(&self) -> Value {
        json!({ "mediaType": self.media_type, "digest": self.digest, "size": self.size })
    }
}

/// A built layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layer {
    pub name: String,
    /// Uncompressed, so its digest is also its diff id.
    pub blob: Blob,
}

/// An image: its config and manifest blobs (its layers are built apart).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub config: Blob,
    pub manifest: Blob,
}

/// The layers of `service`'s image, bottom first. `closure` is the Nix
/// closure of its `package` (`nix-store -qR`), one layer per store path, in
/// the order given; empty without Nix.
pub fn layer_specs(
    deployment: &Deployment,
    service: &Service,
    closure: &[String],
    sources: &dyn SourceFiles,
) -> Result<Vec<LayerSpec>, RuleError> {
    let mut specs = path_layer_specs(
        deployment.base_layer.as_deref(),
        closure,
        local_package(service),
    );

    let layout = EntrypointLayout {
        target: TARGET,
        interpreter: Interpreter::Sh,
        root: Root::Absolute("/".into()),
        secrets: SecretStore::Dir(CONTAINER_SECRETS_DIR.into()),
        files_dir: format!("{CONTAINER_FILES_DIR}/{}", service.name),
    };
    let script = entrypoint::entrypoint_script(service, &layout, sources)?;
    let mut files = vec![LayerFile {
        path: ENTRYPOINT_PATH.into(),
        content: FileContent::Inline(script.into_bytes()),
        mode: 0o755,
    }];
    for (name, file) in &service.files {
        super::check_file_name(TARGET, service, name)?;
        files.push(LayerFile {
            path: container_file_path(&service.name, name),
            content: match (&file.text, &file.source) {
                (Some(text), _) => FileContent::Inline(text.clone().into_bytes()),
                (None, Some(source)) => FileContent::Source(source.clone()),
                (None, None) => {
                    return Err(RuleError::Unsupported {
                        target: TARGET,
                        service: service.name.clone(),
                        message: format!("file `{name}` has neither `text` nor `source`"),
                    })
                }
            },
            mode: super::parse_mode(TARGET, service, name, &file.mode)?,
        });
    }
    specs.push(LayerSpec {
        name: "service".into(),
        input: LayerInput::Files { files },
    });
    Ok(specs)
}

/// The layers below the service layer, which depend only on files named by
/// path: the deployment's base layer (`base_layer`), one per store path of `closure`, and
/// the local program `package` (at `/usr/local/bin/<file name>`).
pub fn path_layer_specs(
    base_layer: Option<&str>,
    closure: &[String],
    local_package: Option<&str>,
) -> Vec<LayerSpec> {
    let mut specs = Vec::new();
    if let Some(base) = base_layer {
        specs.push(LayerSpec {
            name: "base".into(),
            input: LayerInput::Tarball {
                path: base.to_string(),
            },
        });
    }
    for store_path in closure {
        specs.push(LayerSpec {
            name: format!("store {store_path}"),
            input: LayerInput::StorePath {
                path: store_path.clone(),
            },
        });
    }
    if let Some(path) = local_package {
        let file_name = path.rsplit('/').next().unwrap_or(path);
        specs.push(LayerSpec {
            name: "program".into(),
            input: LayerInput::Files {
                files: vec![LayerFile {
                    path: format!("{PROGRAM_DIR}/{file_name}"),
                    content: FileContent::Source(path.to_string()),
                    mode: 0o755,
                }],
            },
        });
    }
    specs
}

/// Builds one layer: a reproducible tar of its inputs (or the given tarball).
pub fn build_layer(
    spec: &LayerSpec,
    service: &str,
    sources: &dyn SourceFiles,
    store: &dyn StoreReader,
) -> Result<Layer, RuleError> {
    let source_error = |path: &str, message: String| RuleError::Source {
        target: TARGET,
        service: service.to_string(),
        path: path.to_string(),
        message,
    };
    let bytes = match &spec.input {
        LayerInput::Tarball { path } => {
            let bytes = sources.read(path).map_err(|m| source_error(path, m))?;
            if bytes.starts_with(&[0x1f, 0x8b]) {
                return Err(source_error(
                    path,
                    "the base layer is gzip-compressed; give an uncompressed tar".into(),
                ));
            }
            bytes
        }
        LayerInput::StorePath { path } => {
            let entries = store.entries(path).map_err(|m| source_error(path, m))?;
            reproducible_tar(entries).map_err(|m| source_error(path, m))?
        }
        LayerInput::Files { files } => {
            let mut entries = Vec::new();
            for file in files {
                let bytes = match &file.content {
                    FileContent::Inline(bytes) => bytes.clone(),
                    FileContent::Source(path) => {
                        sources.read(path).map_err(|m| source_error(path, m))?
                    }
                };
                entries.push(TreeEntry {
                    path: file.path.clone(),
                    kind: TreeEntryKind::File {
                        bytes,
                        executable: file.mode & 0o111 != 0,
                    },
                });
            }
            let modes: Vec<(String, u32)> =
                files.iter().map(|f| (f.path.clone(), f.mode)).collect();
            reproducible_tar_with_modes(entries, &modes).map_err(|m| source_error(&spec.name, m))?
        }
    };
    Ok(Layer {
        name: spec.name.clone(),
        blob: Blob::new(LAYER_MEDIA_TYPE, bytes),
    })
}

/// The config and manifest of `service`'s image over `layers` (bottom
/// first). The entrypoint script runs by its `#!/bin/sh`, or by `shell`
/// when given (an image without `/bin/sh`).
pub fn image_from_layers(
    deployment: &Deployment,
    service: &Service,
    layers: &[Layer],
    shell: Option<&str>,
) -> Image {
    let mut config = Map::new();
    let entrypoint = match shell {
        Some(shell) => json!([shell, ENTRYPOINT_PATH]),
        None => json!([ENTRYPOINT_PATH]),
    };
    config.insert("Entrypoint".into(), entrypoint);
    let mut env = vec![format!("PATH={IMAGE_PATH}")];
    for (name, value) in &service.env {
        // The entrypoint exports every variable; plain values are also in
        // the config so that `podman inspect` shows them.
        if let EnvValue::Text(text) = value {
            if name != "PATH" {
                env.push(format!("{name}={text}"));
            }
        }
    }
    config.insert("Env".into(), json!(env));
    if !service.ports.is_empty() {
        let ports: Map<String, Value> = service
            .ports
            .values()
            .map(|port| (format!("{port}/tcp"), json!({})))
            .collect();
        config.insert("ExposedPorts".into(), Value::Object(ports));
    }
    if let Some(user) = &service.user {
        config.insert("User".into(), json!(user));
    }
    if let Some(workdir) = &service.workdir {
        config.insert("WorkingDir".into(), json!(workdir));
    }
    let volumes: Map<String, Value> = service
        .volumes
        .values()
        .filter(|v| v.persist)
        .map(|v| (v.path.clone(), json!({})))
        .collect();
    if !volumes.is_empty() {
        config.insert("Volumes".into(), Value::Object(volumes));
    }
    let mut labels = Map::new();
    labels.insert("org.opencontainers.image.title".into(), json!(service.name));
    if let Some(description) = &service.description {
        labels.insert(
            "org.opencontainers.image.description".into(),
            json!(description),
        );
    }
    labels.insert("n2d.label".into(), json!(service.label));
    labels.insert(
        "n2d.deployment".into(),
        json!(format!("//{}:{}", deployment.package, deployment.name)),
    );
    config.insert("Labels".into(), Value::Object(labels));
    config.insert(
        "StopSignal".into(),
        json!(format!("SIG{}", service.stop.signal)),
    );

    let mut config = json!({
        "architecture": architecture(service),
        "os": "linux",
        "config": config,
        "rootfs": {
            "type": "layers",
            "diff_ids": layers.iter().map(|l| l.blob.digest.clone()).collect::<Vec<_>>(),
        },
        // No `created`: a timestamp would make every build a new image.
        "history": layers
            .iter()
            .map(|l| json!({ "created_by": format!("n2d: {}", l.name) }))
            .collect::<Vec<_>>(),
    });
    if let Some(extra) = service.target_extra(TARGET).filter(|e| e.is_object()) {
        super::merge_extra(&mut config, extra);
    }
    let config = Blob::new(CONFIG_MEDIA_TYPE, json_bytes(&config));
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": config.descriptor(),
        "layers": layers.iter().map(|l| l.blob.descriptor()).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.title": service.name },
    });
    Image {
        manifest: Blob::new(MANIFEST_MEDIA_TYPE, json_bytes(&manifest)),
        config,
    }
}

/// The `org.opencontainers.image.ref.name` tags of an image in the layout:
/// `<deployment>-<service>`, then the same with 12 hex digits of the
/// manifest digest appended (a tag that never moves).
pub fn layout_tags(deployment: &Deployment, service: &str, manifest_digest: &str) -> [String; 2] {
    let stable = super::reference_component(&format!("{}-{service}", deployment.name));
    let hex = manifest_digest.trim_start_matches("sha256:");
    let pinned = format!("{stable}-{}", &hex[..hex.len().min(12)]);
    [stable, pinned]
}

/// The command that loads the image of `service` from the layout at
/// `layout_dir` into the local container store, under the name that compose
/// and k8s use ([`super::image_reference`]).
pub fn load_command(deployment: &Deployment, service: &Service, layout_dir: &str) -> Vec<String> {
    let stable = super::reference_component(&format!("{}-{}", deployment.name, service.name));
    vec![
        "skopeo".into(),
        "copy".into(),
        format!("oci:{layout_dir}:{stable}"),
        format!(
            "containers-storage:{}",
            super::image_reference(deployment, service)
        ),
    ]
}

/// `sha256:<hex>` of `bytes`.
pub fn sha256_digest(bytes: &[u8]) -> String {
    let hash = Sha256::digest(bytes);
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256:");
    for byte in hash {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

pub(super) const TARGET: &str = "oci";

/// The `package` when it names a local file: not a Nix installable (a store
/// path, a `.nix` file, a flake installable) and not an absolute path.
pub fn local_package(service: &Service) -> Option<&str> {
    let package = service.package.as_deref()?;
    let installable = n2d_modules::nix::installable_kind(package).is_some();
    (!package.starts_with('/') && !installable && !package.is_empty()).then_some(package)
}

/// The image architecture: `oci.architecture`, else amd64. Rules read no
/// ambient state, so the host's architecture is not guessed.
fn architecture(service: &Service) -> String {
    service
        .other
        .get(TARGET)
        .and_then(|group| group.get("architecture"))
        .and_then(Value::as_str)
        .unwrap_or("amd64")
        .to_string()
}

fn json_bytes(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("a JSON value always serializes")
}

fn reproducible_tar(entries: Vec<TreeEntry>) -> Result<Vec<u8>, String> {
    reproducible_tar_with_modes(entries, &[])
}

/// A tar of `entries` and of every parent folder they need, sorted by path,
/// with mtime 0 and owner 0:0. Files take their mode from `modes` when listed
/// there, else 0755 (executable) or 0644; folders are 0755.
fn reproducible_tar_with_modes(
    entries: Vec<TreeEntry>,
    modes: &[(String, u32)],
) -> Result<Vec<u8>, String> {
    let mut by_path = std::collections::BTreeMap::new();
    let mut folders = BTreeSet::new();
    for entry in entries {
        let relative = entry.path.trim_start_matches('/').to_string();
        if relative.is_empty() || relative.split('/').any(|c| c.is_empty() || c == "..") {
            return Err(format!("`{}` is not a clean absolute path", entry.path));
        }
        let mut parent = relative.as_str();
        while let Some((up, _)) = parent.rsplit_once('/') {
            folders.insert(up.to_string());
            parent = up;
        }
        by_path.insert(relative, entry);
    }
    for folder in folders {
        by_path.entry(folder.clone()).or_insert(TreeEntry {
            path: format!("/{folder}"),
            kind: TreeEntryKind::Directory,
        });
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (relative, entry) in by_path {
        let mut header = tar::Header::new_ustar();
        header.set_mtime(0);
        header.set_uid(0);
        header.set_gid(0);
        let result = match entry.kind {
            TreeEntryKind::Directory => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, format!("{relative}/"), std::io::empty())
            }
            TreeEntryKind::File { bytes, executable } => {
                let mode = modes
                    .iter()
                    .find(|(path, _)| path.trim_start_matches('/') == relative)
                    .map(|(_, mode)| *mode)
                    .unwrap_or(if executable { 0o755 } else { 0o644 });
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(mode);
                header.set_size(bytes.len() as u64);
                builder.append_data(&mut header, &relative, bytes.as_slice())
            }
            TreeEntryKind::Symlink { target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                builder.append_link(&mut header, &relative, &target)
            }
        };
        result.map_err(|e| format!("cannot add `{relative}` to a layer: {e}"))?;
    }
    builder
        .into_inner()
        .map_err(|e| format!("cannot finish a layer: {e}"))
}
