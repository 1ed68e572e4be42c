//! Layer(spec): an image layer that depends only on files named by path —
//! the deployment's base layer tarball, one Nix store path, a local program
//! — built once as a task of its own and shared by every Render(oci) that
//! stacks it. An unchanged layer is served from the cache, and since its
//! bytes (so its digest and blob path) do not change, materialization does
//! not rewrite it either.
use std::path::PathBuf;

use n2d_engine::{Inputs, RunContext, RunError, Task};
use n2d_rules::oci::{build_layer, LayerSpec};
use n2d_rules::SourceFiles;

use crate::nix::StoreTree;

/// Bumped when the layers' encoding changes.
const LAYER_VERSION: u32 = 1;

pub struct LayerTask {
    pub identity: String,
    pub spec: LayerSpec,
    /// `spec.task_key()`.
    pub key: String,
    /// (workspace-relative name, absolute path) of the files it reads.
    pub sources: Vec<(String, PathBuf)>,
}

impl LayerTask {
    /// The task of `spec`, or `None` when the spec has inline content.
    pub fn new(spec: LayerSpec, root: &std::path::Path) -> Option<Self> {
        let key = spec.task_key()?;
        let sources = spec
            .source_paths()
            .into_iter()
            .map(|path| {
                let absolute = root.join(&path);
                (path, absolute)
            })
            .collect();
        Some(LayerTask {
            identity: format!("layer {key}"),
            spec,
            key,
            sources,
        })
    }
}

impl Task for LayerTask {
    fn kind(&self) -> &'static str {
        "layer"
    }
    fn version(&self) -> u32 {
        LAYER_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        // A store path's content is fixed by its path: the key is enough.
        inputs.value("layer", self.key.as_bytes());
        for (name, path) in &self.sources {
            inputs.file(name.clone(), path.clone());
        }
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let layer = build_layer(
            &self.spec,
            &self.spec.name,
            &LayerSources { context },
            &StoreTree,
        )?;
        Ok(layer.blob.bytes)
    }
}

struct LayerSources<'a, 'b> {
    context: &'a RunContext<'b>,
}

impl SourceFiles for LayerSources<'_, '_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.context
            .file(path)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("`{path}` is not a declared input of this layer"))
    }
}
