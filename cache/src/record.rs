//! The records the cache stores besides blobs, and their on-disk encodings.
//!
//! Every encoding starts with a format byte and uses fixed-width little-endian
//! integers and length-prefixed strings. Decoding never panics: anything that
//! does not decode (a record of an older format, garbage from a damaged
//! file) is `None`, which callers treat as a miss.
use crate::packs::Location;
use crate::Digest;

/// What the action cache keeps for one task key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ActionRecord {
    /// The CAS address of the task's output.
    pub output: Digest,
    /// Length of the output in bytes (for statistics and progress).
    pub output_len: u64,
}

/// The digest of one named input of a task (a value, a file, or the output of
/// a dependency), as remembered for `--explain`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InputDigest {
    pub name: String,
    pub digest: Digest,
}

/// What the identity table keeps for one task identity: the last key the
/// task had, its output, and the digests its key was made of, so that the
/// next build can say which of them changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentityRecord {
    pub key: Digest,
    pub output: Digest,
    /// Seconds since the Unix epoch when the record was last used; refreshed
    /// coarsely so that a no-op build writes nothing.
    pub touched_secs: u64,
    pub version: u32,
    /// Named values, sorted by name.
    pub values: Vec<InputDigest>,
    /// Input files by their stable name, sorted by name.
    pub files: Vec<InputDigest>,
    /// Dependencies by identity, in declaration order.
    pub dependencies: Vec<InputDigest>,
}

/// The fixed-size start of an [`IdentityRecord`]: all that the cached path of
/// a build needs, decoded without allocating.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdentityHead {
    pub key: Digest,
    pub output: Digest,
    pub touched_secs: u64,
}

/// What the file-state table keeps for one path: when the metadata is the
/// same, the content hash is trusted without reading the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileState {
    /// Modification time in nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    pub size: u64,
    pub inode: u64,
    pub hash: Digest,
}

impl FileState {
    /// Whether `other` describes the same file version by its metadata.
    pub fn same_metadata(&self, other: &FileState) -> bool {
        self.mtime_ns == other.mtime_ns && self.size == other.size && self.inode == other.inode
    }
}

const ACTION_FORMAT: u8 = 1;
const LOCATION_FORMAT: u8 = 1;
const IDENTITY_FORMAT: u8 = 1;
const FILE_STATE_FORMAT: u8 = 1;
const IDENTITY_HEAD_LEN: usize = 1 + 32 + 32 + 8;

pub(crate) fn encode_action(record: &ActionRecord) -> [u8; 41] {
    let mut out = [0u8; 41];
    out[0] = ACTION_FORMAT;
    out[1..33].copy_from_slice(&record.output.0);
    out[33..41].copy_from_slice(&record.output_len.to_le_bytes());
    out
}

pub(crate) fn decode_action(bytes: &[u8]) -> Option<ActionRecord> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != ACTION_FORMAT {
        return None;
    }
    let record = ActionRecord {
        output: reader.digest()?,
        output_len: reader.u64()?,
    };
    reader.finished().then_some(record)
}

pub(crate) fn encode_identity(record: &IdentityRecord) -> Vec<u8> {
    let names: usize = [&record.values, &record.files, &record.dependencies]
        .iter()
        .flat_map(|list| list.iter())
        .map(|input| 4 + input.name.len() + 32)
        .sum();
    let mut out = Vec::with_capacity(IDENTITY_HEAD_LEN + 4 + 12 + names);
    out.push(IDENTITY_FORMAT);
    out.extend_from_slice(&record.key.0);
    out.extend_from_slice(&record.output.0);
    out.extend_from_slice(&record.touched_secs.to_le_bytes());
    out.extend_from_slice(&record.version.to_le_bytes());
    for list in [&record.values, &record.files, &record.dependencies] {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for input in list {
            out.extend_from_slice(&(input.name.len() as u32).to_le_bytes());
            out.extend_from_slice(input.name.as_bytes());
            out.extend_from_slice(&input.digest.0);
        }
    }
    out
}

pub(crate) fn decode_identity_head(bytes: &[u8]) -> Option<IdentityHead> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != IDENTITY_FORMAT {
        return None;
    }
    Some(IdentityHead {
        key: reader.digest()?,
        output: reader.digest()?,
        touched_secs: reader.u64()?,
    })
}

pub(crate) fn decode_identity(bytes: &[u8]) -> Option<IdentityRecord> {
    let head = decode_identity_head(bytes)?;
    let mut reader = Reader::new(&bytes[IDENTITY_HEAD_LEN..]);
    let version = reader.u32()?;
    let mut lists: [Vec<InputDigest>; 3] = Default::default();
    for list in &mut lists {
        let count = reader.u32()? as usize;
        // Bounded by what the remaining bytes can hold, so that garbage
        // cannot make us allocate gigabytes.
        if count > reader.remaining() / 36 {
            return None;
        }
        list.reserve(count);
        for _ in 0..count {
            let len = reader.u32()? as usize;
            let name = std::str::from_utf8(reader.bytes(len)?).ok()?.to_owned();
            let digest = reader.digest()?;
            list.push(InputDigest { name, digest });
        }
    }
    if !reader.finished() {
        return None;
    }
    let [values, files, dependencies] = lists;
    Some(IdentityRecord {
        key: head.key,
        output: head.output,
        touched_secs: head.touched_secs,
        version,
        values,
        files,
        dependencies,
    })
}

/// Rewrites the access time of an encoded identity record in place.
pub(crate) fn set_identity_touched(bytes: &mut [u8], touched_secs: u64) -> bool {
    if bytes.len() < IDENTITY_HEAD_LEN || bytes[0] != IDENTITY_FORMAT {
        return false;
    }
    bytes[65..73].copy_from_slice(&touched_secs.to_le_bytes());
    true
}

/// A CAS index record: where the blob's bytes are and when it was stored.
pub(crate) fn encode_location(location: &Location, stored_secs: u64) -> [u8; 29] {
    let mut out = [0u8; 29];
    out[0] = LOCATION_FORMAT;
    out[1..5].copy_from_slice(&location.pack.to_le_bytes());
    out[5..13].copy_from_slice(&location.offset.to_le_bytes());
    out[13..21].copy_from_slice(&location.len.to_le_bytes());
    out[21..29].copy_from_slice(&stored_secs.to_le_bytes());
    out
}

pub(crate) fn decode_location(bytes: &[u8]) -> Option<(Location, u64)> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != LOCATION_FORMAT {
        return None;
    }
    let location = Location {
        pack: reader.u32()?,
        offset: reader.u64()?,
        len: reader.u64()?,
    };
    let stored = reader.u64()?;
    reader.finished().then_some((location, stored))
}

pub(crate) fn encode_file_state(state: &FileState) -> [u8; 57] {
    let mut out = [0u8; 57];
    out[0] = FILE_STATE_FORMAT;
    out[1..9].copy_from_slice(&state.mtime_ns.to_le_bytes());
    out[9..17].copy_from_slice(&state.size.to_le_bytes());
    out[17..25].copy_from_slice(&state.inode.to_le_bytes());
    out[25..57].copy_from_slice(&state.hash.0);
    out
}

pub(crate) fn decode_file_state(bytes: &[u8]) -> Option<FileState> {
    let mut reader = Reader::new(bytes);
    if reader.u8()? != FILE_STATE_FORMAT {
        return None;
    }
    let state = FileState {
        mtime_ns: reader.u64()? as i64,
        size: reader.u64()?,
        inode: reader.u64()?,
        hash: reader.digest()?,
    };
    reader.finished().then_some(state)
}

pub(crate) fn decode_digest(bytes: &[u8]) -> Option<Digest> {
    let mut reader = Reader::new(bytes);
    let digest = reader.digest()?;
    reader.finished().then_some(digest)
}

/// A cursor over untrusted bytes: every read is bounds-checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { bytes }
    }

    fn bytes(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < len {
            return None;
        }
        let (head, rest) = self.bytes.split_at(len);
        self.bytes = rest;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.bytes(1)?[0])
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.bytes(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.bytes(8)?.try_into().ok()?))
    }

    fn digest(&mut self) -> Option<Digest> {
        Some(Digest(self.bytes(32)?.try_into().ok()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len()
    }

    fn finished(&self) -> bool {
        self.bytes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_round_trips_and_garbage_is_none() {
        let record = IdentityRecord {
            key: Digest::of(b"k"),
            output: Digest::of(b"o"),
            touched_secs: 7,
            version: 3,
            values: vec![InputDigest {
                name: "label".into(),
                digest: Digest::of(b"v"),
            }],
            files: vec![],
            dependencies: vec![InputDigest {
                name: "parse //a".into(),
                digest: Digest::of(b"d"),
            }],
        };
        let mut bytes = encode_identity(&record);
        assert_eq!(decode_identity(&bytes), Some(record.clone()));
        assert!(set_identity_touched(&mut bytes, 99));
        assert_eq!(
            decode_identity_head(&bytes).map(|h| h.touched_secs),
            Some(99)
        );
        bytes.pop();
        assert_eq!(decode_identity(&bytes), None);
        assert_eq!(decode_identity(&[IDENTITY_FORMAT, 1, 2]), None);
    }
}
