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
const LAYER_VERSION: u32 = 2;

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
        Ok(encode(&layer.blob.digest, &layer.blob.bytes))
    }
}

/// A Layer task's output: its `sha256:<hex>` digest on the first line, then
/// the tar, so that images stacking it need not hash it again.
fn encode(digest: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(digest.len() + 1 + bytes.len());
    out.extend_from_slice(digest.as_bytes());
    out.push(b'\n');
    out.extend_from_slice(bytes);
    out
}

/// (digest, tar) of a Layer task's output.
pub fn decode(output: &[u8]) -> Result<(&str, &[u8]), RunError> {
    let newline = output
        .iter()
        .position(|&b| b == b'\n')
        .ok_or("a layer output has no digest line")?;
    let digest = std::str::from_utf8(&output[..newline])
        .ok()
        .filter(|d| d.starts_with("sha256:"))
        .ok_or("a layer output's digest line is not `sha256:<hex>`")?;
    Ok((digest, &output[newline + 1..]))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_carry_their_digest() {
        let output = encode("sha256:ab", b"tar\nbytes");
        assert_eq!(decode(&output).unwrap(), ("sha256:ab", &b"tar\nbytes"[..]));
        assert!(decode(b"no digest line").is_err());
        assert!(decode(b"md5:x\nbytes").is_err());
    }
}
