//! The oci managers: load every image of an OCI layout that n2d built into a
//! local image store, under the name compose and k8s files use
//! ([`crate::oci::image_reference`]: `localhost/n2d/…:latest`).
//!
//! The images to load are found from the layout itself: for each service of
//! the deployment, the layout tag `<deployment>-<service>`
//! ([`crate::oci::layout_tags`]) in `index.json`. A service that runs a
//! given `image` has no entry there and nothing to load.
//!
//! - [`PodmanLoad`]: `podman pull oci:<folder name>:<tag>` run in the
//!   layout's parent, then `podman tag` to the compose/k8s name. Pulling
//!   from a layout also names the image after the path given
//!   (`localhost/oci:latest`), and fails when that path is not a valid image
//!   name (an upper-case letter anywhere in an absolute path): hence the
//!   relative path, and the side name is then removed so that the store
//!   holds only the names n2d promises.
//! - [`SkopeoCopy`]: `skopeo copy oci:<dir>:<tag> containers-storage:<name>`
//!   ([`crate::oci::load_command`]), into podman's default store.
//!
//! Loading has no `down`: an image is not a running service, and removing it
//! could break another deployment that shares a layer; `podman image prune`
//! is the user's call.
use std::path::Path;

use super::invocation::Invocation;
use super::{required_file, LaunchContext, Manager, ManagerError, PodmanOptions};
use crate::oci::{built_image_name, reference_component, BUILT_IMAGE_TAG};

/// Loads the layout with podman (the default manager of the oci target).
#[derive(Clone, Debug, Default)]
pub struct PodmanLoad {
    pub podman: PodmanOptions,
}

/// Loads the layout with skopeo into podman's default store.
#[derive(Clone, Copy, Debug, Default)]
pub struct SkopeoCopy;

impl Manager for PodmanLoad {
    fn name(&self) -> &'static str {
        "podman-load"
    }
    fn target(&self) -> &'static str {
        "oci"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["podman"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        load_with_podman(self.name(), ctx, ctx.dir, &self.podman)
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Ok(())
    }
}

impl Manager for SkopeoCopy {
    fn name(&self) -> &'static str {
        "skopeo-copy"
    }
    fn target(&self) -> &'static str {
        "oci"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["skopeo"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        load_with_skopeo(self.name(), ctx, ctx.dir, "containers-storage")
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Ok(())
    }
}

/// One image of a layout: its layout tag and the name to load it under.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct LayoutImage {
    pub(super) tag: String,
    pub(super) name: String,
}

/// The images of the layout at `layout`, in the order of the deployment's
/// services.
pub(super) fn layout_images(
    manager: &'static str,
    ctx: &LaunchContext,
    layout: &Path,
) -> Result<Vec<LayoutImage>, ManagerError> {
    let index_path = required_file(manager, layout, "index.json")?;
    let bad = |message: String| ManagerError::BadOutput {
        manager,
        path: layout.to_path_buf(),
        message,
    };
    let text = std::fs::read(&index_path).map_err(|source| ManagerError::Io {
        manager,
        action: "reading the image index",
        path: index_path.clone(),
        source,
    })?;
    let index: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad(format!("`index.json` is not JSON: {e}")))?;
    let manifests = index["manifests"]
        .as_array()
        .ok_or_else(|| bad("`index.json` has no `manifests` list".into()))?;
    let tags: Vec<&str> = manifests
        .iter()
        .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
        .collect();
    let deployment = ctx.deployment;
    Ok(deployment
        .services
        .iter()
        .filter_map(|service| {
            // The same stable tag as `oci::layout_tags` writes.
            let tag = reference_component(&format!("{}-{service}", deployment.name));
            tags.contains(&tag.as_str()).then(|| LayoutImage {
                tag,
                name: format!(
                    "{}:{BUILT_IMAGE_TAG}",
                    built_image_name(deployment, service)
                ),
            })
        })
        .collect())
}

/// Loads every image of the layout at `layout` with podman.
pub(super) fn load_with_podman(
    manager: &'static str,
    ctx: &LaunchContext,
    layout: &Path,
    podman: &PodmanOptions,
) -> Result<(), ManagerError> {
    let images = layout_images(manager, ctx, layout)?;
    let bad = |message: String| ManagerError::BadOutput {
        manager,
        path: layout.to_path_buf(),
        message,
    };
    let (Some(parent), Some(folder)) = (layout.parent(), layout.file_name()) else {
        return Err(bad("an image layout must be a folder with a parent".into()));
    };
    let folder = folder.to_string_lossy();
    let nameable = folder.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && folder
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c));
    if !nameable {
        return Err(bad(format!(
            "podman names an image pulled from a layout after its folder, and `{folder}` is not a valid image name (lower-case letters, digits, `.`, `_`, `-`)"
        )));
    }
    let side_name = format!("localhost/{folder}:latest");
    for image in images {
        let podman_command = || {
            Invocation::new(manager, "podman", ctx)
                .map(|i| i.args(&podman.global_args).in_dir(parent))
        };
        let pulled = podman_command()?
            .args(["pull", "--quiet"])
            .arg(format!("oci:{folder}:{}", image.tag))
            .run_captured()?;
        let id = pulled
            .lines()
            .map(str::trim)
            .rfind(|l| !l.is_empty())
            .ok_or_else(|| {
                bad(format!(
                    "`podman pull` of `{}` printed no image id",
                    image.tag
                ))
            })?
            .to_string();
        podman_command()?
            .args(["tag", &id, &image.name])
            .run_captured()?;
        let names = podman_command()?
            .args(["image", "inspect", "--format", "{{json .RepoTags}}", &id])
            .run_captured()?;
        let names: Vec<String> = serde_json::from_str(names.trim()).unwrap_or_default();
        if names.contains(&side_name) && side_name != image.name {
            // Ignored when it fails: a concurrent load of another layout
            // may have moved the side name to its own image in between, and
            // the side name is cosmetic.
            let _ = podman_command()?
                .args(["untag", &id, &side_name])
                .run_captured();
        }
    }
    Ok(())
}

/// Loads every image of the layout at `layout` with `skopeo copy` to
/// `transport` (`containers-storage`, `docker-daemon`).
pub(super) fn load_with_skopeo(
    manager: &'static str,
    ctx: &LaunchContext,
    layout: &Path,
    transport: &str,
) -> Result<(), ManagerError> {
    let images = layout_images(manager, ctx, layout)?;
    let layout = layout_string(manager, layout)?;
    for image in images {
        Invocation::new(manager, "skopeo", ctx)?
            .arg("copy")
            .arg(format!("oci:{layout}:{}", image.tag))
            .arg(format!("{transport}:{}", image.name))
            .run_captured()?;
    }
    Ok(())
}

/// The `oci` folder next to a compose or k8s folder, when it was built.
pub(super) fn sibling_layout(ctx: &LaunchContext) -> Option<std::path::PathBuf> {
    let layout = ctx.dir.parent()?.join("oci");
    layout.join("index.json").is_file().then_some(layout)
}

/// A layout path as text: image references are text, and a `:` in the
/// path would end the path part of `oci:<path>:<tag>`.
fn layout_string(manager: &'static str, layout: &Path) -> Result<String, ManagerError> {
    match layout.to_str() {
        Some(text) if !text.contains(':') => Ok(text.to_string()),
        _ => Err(ManagerError::BadOutput {
            manager,
            path: layout.to_path_buf(),
            message: "an image layout path must be UTF-8 without `:`".into(),
        }),
    }
}
