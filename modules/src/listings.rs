//! The listings cache of discovery: what each folder held the last time
//! it was read, with the folder's mtime and inode, in `<cache>/discovery`.
//!
//! Creating, removing or renaming an entry of a folder sets the folder's
//! mtime (every local Linux file system does; git's untracked cache counts
//! on the same), so a folder whose stat is the one recorded still holds the
//! entries recorded, and discovery takes them instead of reading the
//! folder: one `stat` instead of an `open`, `getdents` and `close`. A
//! listing is trusted only when the folder's mtime was more than two
//! seconds older than the walk that recorded it (git's racily-clean rule:
//! a change within the same clock tick would not move the mtime), and
//! never when the folder holds a symbolic link named `n2d.workspace.toml`
//! (what it points at can change without the folder changing).
//!
//! Only what discovery looks at is kept: subfolders, module files and the
//! workspace file. The file is checksummed; anything that does not decode
//! is no cache at all.
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::Path;

const MAGIC: &[u8; 8] = b"n2dlists";
const FORMAT: u32 = 1;
/// Trusted only when older than the walk by this much.
pub(crate) const RACY_NS: i64 = 2_000_000_000;

/// One entry of a folder that discovery looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Dir,
    File,
    Symlink,
}

/// What a folder held, and its stat when it was read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Listing {
    pub mtime_ns: i64,
    pub inode: u64,
    pub trusted: bool,
    pub entries: Vec<(OsString, Kind)>,
}

/// Listings by folder, relative to the workspace root (`""` for it).
pub(crate) type Listings = HashMap<String, Listing>;

/// Reads the cache; empty when it is missing or damaged.
pub(crate) fn load(path: &Path) -> Listings {
    std::fs::read(path)
        .ok()
        .and_then(|bytes| decode(&bytes))
        .unwrap_or_default()
}

/// Writes the cache atomically (a sibling of this process, then a rename);
/// failing only costs the next discovery its shortcut.
pub(crate) fn save(path: &Path, listings: &Listings) {
    let bytes = encode(listings);
    let temporary = path.with_extension(format!("{}.tmp", std::process::id()));
    if std::fs::write(&temporary, bytes).is_ok() && std::fs::rename(&temporary, path).is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
}

fn encode(listings: &Listings) -> Vec<u8> {
    let mut out = Vec::with_capacity(64 + listings.len() * 64);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT.to_le_bytes());
    out.extend_from_slice(&(listings.len() as u64).to_le_bytes());
    let mut folders: Vec<(&String, &Listing)> = listings.iter().collect();
    folders.sort_by(|a, b| a.0.cmp(b.0));
    for (folder, listing) in folders {
        put_bytes(&mut out, folder.as_bytes());
        out.extend_from_slice(&listing.mtime_ns.to_le_bytes());
        out.extend_from_slice(&listing.inode.to_le_bytes());
        out.push(listing.trusted as u8);
        out.extend_from_slice(&(listing.entries.len() as u32).to_le_bytes());
        for (name, kind) in &listing.entries {
            out.push(match kind {
                Kind::Dir => 0,
                Kind::File => 1,
                Kind::Symlink => 2,
            });
            put_bytes(&mut out, name.as_bytes());
        }
    }
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

fn decode(bytes: &[u8]) -> Option<Listings> {
    let (body, checksum) = bytes.split_at(bytes.len().checked_sub(32)?);
    if blake3::hash(body).as_bytes() != checksum {
        return None;
    }
    let mut reader = Reader(body);
    if reader.take(8)? != MAGIC || reader.u32()? != FORMAT {
        return None;
    }
    let count = reader.u64()?;
    let mut listings = Listings::new();
    for _ in 0..count {
        let folder = String::from_utf8(reader.bytes()?.to_vec()).ok()?;
        let mtime_ns = reader.u64()? as i64;
        let inode = reader.u64()?;
        let trusted = reader.take(1)?[0] == 1;
        let entries = (0..reader.u32()?)
            .map(|_| {
                let kind = match reader.take(1)?[0] {
                    0 => Kind::Dir,
                    1 => Kind::File,
                    2 => Kind::Symlink,
                    _ => return None,
                };
                Some((OsString::from_vec(reader.bytes()?.to_vec()), kind))
            })
            .collect::<Option<Vec<_>>>()?;
        listings.insert(
            folder,
            Listing {
                mtime_ns,
                inode,
                trusted,
                entries,
            },
        );
    }
    reader.0.is_empty().then_some(listings)
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }

    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }

    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        self.take(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listings_round_trip_and_damage_is_no_cache() {
        let mut listings = Listings::new();
        listings.insert(
            "svc/a".into(),
            Listing {
                mtime_ns: -5,
                inode: 7,
                trusted: true,
                entries: vec![("n2d.toml".into(), Kind::File), ("sub".into(), Kind::Dir)],
            },
        );
        listings.insert(
            String::new(),
            Listing {
                mtime_ns: 1,
                inode: 2,
                trusted: false,
                entries: vec![("n2d.workspace.toml".into(), Kind::Symlink)],
            },
        );
        let mut bytes = encode(&listings);
        assert_eq!(decode(&bytes), Some(listings));
        bytes[20] ^= 1;
        assert_eq!(decode(&bytes), None);
        assert_eq!(decode(&bytes[..10]), None);
    }
}
