//! The task key: blake3 over a canonical encoding of what determines a
//! task's output.
//!
//! The encoding is (kind, version, named values, input files, dependency
//! outputs), every variable-length field prefixed by its length, every list
//! by its count, values and files sorted by name. It holds digests and stable
//! names only: no absolute path, no environment, no map iteration order, so
//! a key is the same across runs, machines and folder locations. Dependencies
//! enter by their OUTPUT digest, which gives early cutoff: a dependency that
//! ran again but produced the same bytes leaves this key unchanged.
use n2d_cache::Digest;

/// Bumped when this encoding changes, so that old records become misses.
const DOMAIN: &[u8] = b"n2d task key v1\0";

pub(crate) struct KeyParts<'a> {
    pub(crate) kind: &'a str,
    pub(crate) version: u32,
    // Invariant: sorted by name, names unique (for values and for files).
    pub(crate) values: &'a [(String, Digest)],
    pub(crate) files: &'a [(String, Digest)],
    /// In declaration order.
    pub(crate) dependencies: &'a [Digest],
}

pub(crate) fn task_key(parts: &KeyParts<'_>) -> Digest {
    let mut hasher = blake3::Hasher::new();
    hasher.update(DOMAIN);
    field(&mut hasher, parts.kind.as_bytes());
    hasher.update(&parts.version.to_le_bytes());
    for list in [parts.values, parts.files] {
        hasher.update(&(list.len() as u64).to_le_bytes());
        for (name, digest) in list {
            field(&mut hasher, name.as_bytes());
            hasher.update(&digest.0);
        }
    }
    hasher.update(&(parts.dependencies.len() as u64).to_le_bytes());
    for digest in parts.dependencies {
        hasher.update(&digest.0);
    }
    Digest::from(hasher.finalize())
}

fn field(hasher: &mut blake3::Hasher, bytes: &[u8]) {
    hasher.update(&(bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(kind: &str, values: &[(&str, &[u8])]) -> Digest {
        let values: Vec<(String, Digest)> = values
            .iter()
            .map(|(name, bytes)| (name.to_string(), Digest::of(bytes)))
            .collect();
        task_key(&KeyParts {
            kind,
            version: 1,
            values: &values,
            files: &[],
            dependencies: &[],
        })
    }

    #[test]
    fn length_prefixes_keep_field_boundaries_apart() {
        assert_ne!(key("ab", &[("c", b"x")]), key("a", &[("bc", b"x")]));
        assert_ne!(
            key("a", &[("b", b"x")]),
            key("a", &[("b", b"x"), ("c", b"")])
        );
        assert_eq!(key("a", &[("b", b"x")]), key("a", &[("b", b"x")]));
    }

    /// Pins the encoding: a change here silently invalidates every cache,
    /// so it must be deliberate (and bump DOMAIN).
    #[test]
    fn key_of_a_fixed_task_is_pinned() {
        let digest = key("render", &[("service", b"{}")]);
        assert_eq!(
            digest.to_hex(),
            "2f14282db55dffaa15ddeee60b944edbd0246aaff86b760aae6f8658c8dd4514"
        );
    }
}
