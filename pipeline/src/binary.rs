//! The small binary encoding of n2d's own state files (the no-op stamp,
//! the delta snapshot, the target folders' manifests): little-endian
//! integers, length-prefixed bytes, and
//! a blake3 checksum over the whole body, so that a damaged or truncated
//! file decodes to nothing rather than to something wrong.
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::materialize::RecordedStat;

/// Appends the checksum that [`checked_body`] verifies.
pub(crate) fn seal(mut bytes: Vec<u8>) -> Vec<u8> {
    let checksum = blake3::hash(&bytes);
    bytes.extend_from_slice(checksum.as_bytes());
    bytes
}

/// The body of a sealed file, when its checksum holds.
pub(crate) fn checked_body(bytes: &[u8]) -> Option<&[u8]> {
    let (body, checksum) = bytes.split_at(bytes.len().checked_sub(32)?);
    (blake3::hash(body).as_bytes() == checksum).then_some(body)
}

/// The reader of a body that starts with `magic` and `format` (both
/// read), or `None` for a file of another kind or version.
pub(crate) fn headed<'a>(body: &'a [u8], magic: &[u8; 8], format: u32) -> Option<Reader<'a>> {
    let mut input = Reader(body);
    (input.take(8)? == magic && input.u32()? == format).then_some(input)
}

pub(crate) struct Writer(pub(crate) Vec<u8>);

impl Writer {
    pub(crate) fn u32(&mut self, value: u32) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn u64(&mut self, value: u64) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn i128(&mut self, value: i128) {
        self.0.extend_from_slice(&value.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, bytes: &[u8]) {
        self.u64(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }
    /// A counted list of `u32`.
    pub(crate) fn u32s(&mut self, values: &[u32]) {
        self.u64(values.len() as u64);
        for &value in values {
            self.u32(value);
        }
    }
    /// A counted list of strings.
    pub(crate) fn strings(&mut self, values: &[String]) {
        self.u64(values.len() as u64);
        for value in values {
            self.bytes(value.as_bytes());
        }
    }
    pub(crate) fn path(&mut self, path: &std::path::Path) {
        self.bytes(path.as_os_str().as_bytes());
    }
    pub(crate) fn optional(&mut self, text: Option<&str>) {
        match text {
            Some(text) => {
                self.0.push(1);
                self.bytes(text.as_bytes());
            }
            None => self.0.push(0),
        }
    }
    pub(crate) fn digest(&mut self, digest: &n2d_cache::Digest) {
        self.0.extend_from_slice(digest.as_bytes());
    }
    pub(crate) fn recorded(&mut self, stat: &RecordedStat) {
        self.u64(stat.size);
        self.i128(stat.mtime_ns);
        self.u64(stat.inode);
        self.u32(stat.mode);
    }
}

pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    pub(crate) fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        if self.0.len() < len {
            return None;
        }
        let (head, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(head)
    }
    pub(crate) fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    pub(crate) fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    pub(crate) fn i128(&mut self) -> Option<i128> {
        Some(i128::from_le_bytes(self.take(16)?.try_into().ok()?))
    }
    /// A count of items that follow; bounded by the bytes left, so that a
    /// damaged count cannot make the decoder allocate without end.
    pub(crate) fn count(&mut self) -> Option<usize> {
        let count = usize::try_from(self.u64()?).ok()?;
        (count <= self.0.len()).then_some(count)
    }
    pub(crate) fn bytes(&mut self) -> Option<&'a [u8]> {
        let len = usize::try_from(self.u64()?).ok()?;
        self.take(len)
    }
    pub(crate) fn string(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }
    pub(crate) fn path(&mut self) -> Option<PathBuf> {
        Some(PathBuf::from(std::ffi::OsStr::from_bytes(self.bytes()?)))
    }
    pub(crate) fn u32s(&mut self) -> Option<Vec<u32>> {
        (0..self.count()?).map(|_| self.u32()).collect()
    }
    pub(crate) fn strings(&mut self) -> Option<Vec<String>> {
        (0..self.count()?).map(|_| self.string()).collect()
    }
    pub(crate) fn optional(&mut self) -> Option<Option<String>> {
        match self.take(1)?[0] {
            0 => Some(None),
            1 => Some(Some(self.string()?)),
            _ => None,
        }
    }
    pub(crate) fn digest(&mut self) -> Option<n2d_cache::Digest> {
        let bytes: [u8; 32] = self.take(32)?.try_into().ok()?;
        Some(n2d_cache::Digest(bytes))
    }
    pub(crate) fn recorded(&mut self) -> Option<RecordedStat> {
        Some(RecordedStat {
            size: self.u64()?,
            mtime_ns: self.i128()?,
            inode: self.u64()?,
            mode: self.u32()?,
        })
    }
}
