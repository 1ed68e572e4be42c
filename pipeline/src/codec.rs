//! The byte encoding of Render and Assemble outputs as the cache stores
//! them: artifacts (which may be large binary blobs, such as image layers)
//! length-prefixed, then the JSON fragment and the warnings.
//!
//! Invariant: `decode(encode(x)) == x`, and the encoding is canonical (the
//! same value always gives the same bytes), so output digests give early
//! cutoff.
use n2d_cache::Digest;
use n2d_rules::{Artifact, Rendered};

/// Encodes a rendered service.
pub fn encode_rendered(rendered: &Rendered) -> Vec<u8> {
    let mut out = Vec::with_capacity(artifacts_len(&rendered.artifacts) + 256);
    encode_artifacts_into(&rendered.artifacts, &mut out);
    let fragment = serde_json::to_vec(&rendered.fragment).expect("a JSON value always serializes");
    put_bytes(&mut out, &fragment);
    put_u32(&mut out, rendered.warnings.len() as u32);
    for warning in &rendered.warnings {
        put_bytes(&mut out, warning.as_bytes());
    }
    out
}

/// Decodes what [`encode_rendered`] wrote.
pub fn decode_rendered(bytes: &[u8]) -> Result<Rendered, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let artifacts = reader.artifacts()?;
    let fragment = serde_json::from_slice(reader.bytes()?).map_err(|_| DecodeError)?;
    let count = reader.u32()?;
    let mut warnings = Vec::new();
    for _ in 0..count {
        warnings.push(String::from_utf8(reader.bytes()?.to_vec()).map_err(|_| DecodeError)?);
    }
    reader.end()?;
    Ok(Rendered {
        artifacts,
        fragment,
        warnings,
    })
}

/// Encodes a list of artifacts.
pub fn encode_artifacts(artifacts: &[Artifact]) -> Vec<u8> {
    let mut out = Vec::with_capacity(artifacts_len(artifacts));
    encode_artifacts_into(artifacts, &mut out);
    debug_assert_eq!(out.len(), artifacts_len(artifacts));
    out
}

/// Decodes what [`encode_artifacts`] wrote.
pub fn decode_artifacts(bytes: &[u8]) -> Result<Vec<Artifact>, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let artifacts = reader.artifacts()?;
    reader.end()?;
    Ok(artifacts)
}

/// One file of an assembled output, by the digest of its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeEntry {
    pub path: String,
    pub mode: u32,
    pub digest: Digest,
}

/// What a target folder holds, as one digest: of each file's path, mode
/// and content digest, in path order. It names the folder in its manifest,
/// the no-op stamp and launch records, and both build paths compute it:
/// the full path from an Assemble output, the delta path from the files
/// it changed and the digests of those it did not read.
pub fn tree_digest<'a>(entries: impl ExactSizeIterator<Item = &'a TreeEntry>) -> Digest {
    tree_digest_of(entries.map(|e| (e.path.as_str(), e.mode, &e.digest)))
}

/// [`tree_digest`] of borrowed (path, mode, digest) entries.
pub fn tree_digest_of<'a>(
    entries: impl ExactSizeIterator<Item = (&'a str, u32, &'a Digest)>,
) -> Digest {
    // Laid out whole and hashed at once: a thousand entries fed to the
    // hasher in four small pieces each cost a delta build 0.1 ms.
    let mut bytes = Vec::with_capacity(16 + entries.len() * 96);
    bytes.extend_from_slice(b"n2dtree1");
    bytes.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for (path, mode, digest) in entries {
        bytes.extend_from_slice(&(path.len() as u64).to_le_bytes());
        bytes.extend_from_slice(path.as_bytes());
        bytes.extend_from_slice(&mode.to_le_bytes());
        bytes.extend_from_slice(&digest.0);
    }
    Digest::of(&bytes)
}

/// The files of an Assemble output (what [`encode_artifacts`] wrote), by
/// digest, in its order.
pub fn assembled_tree(bytes: &[u8]) -> Result<Vec<TreeEntry>, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let entries = reader
        .artifact_slices()?
        .into_iter()
        .map(|(path, mode, bytes)| TreeEntry {
            path: path.to_string(),
            mode,
            digest: Digest::of(bytes),
        })
        .collect();
    reader.end()?;
    Ok(entries)
}

/// One file borrowed from an encoding: (path, mode, content).
pub type FileSlice<'a> = (&'a str, u32, &'a [u8]);

/// A Render output's files, fragment and warnings, borrowed from its
/// encoding.
pub struct RenderedParts<'a> {
    /// In the render's order.
    pub files: Vec<FileSlice<'a>>,
    /// The fragment, as JSON.
    pub fragment: &'a [u8],
    pub warnings: Vec<&'a str>,
}

/// Splits what [`encode_rendered`] wrote, without copying: what a full
/// build reads of every render (its warnings) costs no decoding of the
/// files or the fragment.
pub fn rendered_parts(bytes: &[u8]) -> Result<RenderedParts<'_>, DecodeError> {
    let mut reader = Reader { bytes, at: 0 };
    let files = reader.artifact_slices()?;
    let fragment = reader.bytes()?;
    let count = reader.u32()?;
    let mut warnings = Vec::new();
    for _ in 0..count {
        warnings.push(std::str::from_utf8(reader.bytes()?).map_err(|_| DecodeError)?);
    }
    reader.end()?;
    Ok(RenderedParts {
        files,
        fragment,
        warnings,
    })
}

/// The bytes are not an encoding of this module: a bug, since the cache
/// verifies every blob it serves.
#[derive(Debug, thiserror::Error)]
#[error("a cached output is not in the expected encoding (please report this bug)")]
pub struct DecodeError;

/// The length of `artifacts` encoded: an output is laid out in one
/// allocation, not grown by doubling (an Assemble's 1.5 MB was 3 MB of
/// fresh memory and as many copies).
fn artifacts_len(artifacts: &[Artifact]) -> usize {
    4 + artifacts
        .iter()
        .map(|a| 8 + a.path.len() + 4 + 8 + a.bytes.len())
        .sum::<usize>()
}

fn encode_artifacts_into(artifacts: &[Artifact], out: &mut Vec<u8>) {
    put_u32(out, artifacts.len() as u32);
    for artifact in artifacts {
        put_bytes(out, artifact.path.as_bytes());
        put_u32(out, artifact.mode);
        put_bytes(out, &artifact.bytes);
    }
}

fn put_u32(out: &mut Vec<u8>, value: u32) {
    out.extend_from_slice(&value.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.at.checked_add(len).ok_or(DecodeError)?;
        let slice = self.bytes.get(self.at..end).ok_or(DecodeError)?;
        self.at = end;
        Ok(slice)
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("four bytes"),
        ))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let len = u64::from_le_bytes(self.take(8)?.try_into().expect("eight bytes"));
        self.take(usize::try_from(len).map_err(|_| DecodeError)?)
    }

    fn artifacts(&mut self) -> Result<Vec<Artifact>, DecodeError> {
        let count = self.u32()?;
        let mut artifacts = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let path = String::from_utf8(self.bytes()?.to_vec()).map_err(|_| DecodeError)?;
            let mode = self.u32()?;
            let bytes = self.bytes()?.to_vec();
            artifacts.push(Artifact { path, bytes, mode });
        }
        Ok(artifacts)
    }

    fn artifact_slices(&mut self) -> Result<Vec<FileSlice<'a>>, DecodeError> {
        let count = self.u32()?;
        let mut artifacts = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let path = std::str::from_utf8(self.bytes()?).map_err(|_| DecodeError)?;
            let mode = self.u32()?;
            artifacts.push((path, mode, self.bytes()?));
        }
        Ok(artifacts)
    }

    fn end(&self) -> Result<(), DecodeError> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(DecodeError)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn rendered_round_trips(
            files in proptest::collection::vec(("[a-z/]{1,12}", any::<u32>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..5),
            warnings in proptest::collection::vec(".{0,20}", 0..3),
            fragment in "[a-z]{0,8}",
        ) {
            let rendered = Rendered {
                artifacts: files.into_iter().map(|(path, mode, bytes)| Artifact { path, bytes, mode }).collect(),
                fragment: serde_json::json!({ "x": fragment }),
                warnings,
            };
            // Laid out in one allocation of the length computed first.
            let assembled = encode_artifacts(&rendered.artifacts);
            prop_assert_eq!(assembled.len(), artifacts_len(&rendered.artifacts));
            prop_assert_eq!(assembled.capacity(), assembled.len());
            prop_assert_eq!(decode_artifacts(&assembled).unwrap(), rendered.artifacts.clone());
            let bytes = encode_rendered(&rendered);
            let parts = rendered_parts(&bytes).unwrap();
            prop_assert_eq!(parts.files.len(), rendered.artifacts.len());
            for ((path, mode, content), artifact) in parts.files.iter().zip(&rendered.artifacts) {
                prop_assert_eq!(*path, artifact.path.as_str());
                prop_assert_eq!(*mode, artifact.mode);
                prop_assert_eq!(*content, &artifact.bytes[..]);
            }
            prop_assert_eq!(serde_json::from_slice::<serde_json::Value>(parts.fragment).unwrap(), rendered.fragment.clone());
            prop_assert!(rendered_parts(&bytes[..bytes.len() - 1]).is_err());
            prop_assert_eq!(&parts.warnings, &rendered.warnings);
            prop_assert_eq!(decode_rendered(&bytes).unwrap(), rendered);
            prop_assert!(decode_rendered(&bytes[..bytes.len() - 1]).is_err());
        }
    }
}
