//! Pack files: where the CAS keeps the bytes of its blobs.
//!
//! The CAS index in sled maps a digest to a [`Location`] (pack, offset,
//! length); the bytes are appended to `<dir>/packs/pack-NNNNNNNN`, one file
//! after another, each starting with a header that names the database it
//! belongs to. Why not the bytes in sled itself: sled 0.34 copies a leaf
//! node on every insert and rewrites it whole every tenth, so a value of a
//! few kilobytes costs 20–150 µs to insert, and inserts from two threads
//! barely overlap; with a build's 20,000 outputs that was most of the
//! database's cost and what kept a cold build from scaling (BENCHMARKS.md).
//! An append is a copy into a buffer.
//!
//! Each blob is stored as an entry: a codec byte, then for LZ4 the
//! uncompressed length (`u32`, little-endian) and the LZ4 block, else the
//! bytes as they are ([`encode_entry`]). Compressed, a cold build's 90 MB
//! of outputs (JSON, mostly) take a third of that: what a build writes into
//! the page cache is the part of its time that varies most on a machine
//! whose fresh memory is dear (BENCHMARKS.md, session 10), and the cache
//! takes a third of the disk. Compressing happens before the writer lock
//! is taken, so threads compress in parallel.
//!
//! Invariants:
//! - the index is the truth: a pack holds bytes, nothing in a pack is read
//!   but through a location, and every read is verified against its digest
//!   by the caller ([`crate::Cache::get_blob`]), so a torn, truncated,
//!   deleted or foreign pack is a miss, never served;
//! - appends go to the newest pack of this database while it is below
//!   [`PACK_LIMIT`]; bytes are buffered in chunks and written (not synced)
//!   when a chunk fills and at flush, and until written they are read from
//!   memory;
//! - packs are rewritten only by gc ([`Packs::seal`], then a copy of the
//!   live blobs into a fresh pack, synced before the index points at it).
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, RwLock};

use crate::CacheError;

/// `n2dpack2`: entries with a codec byte (`n2dpack1` held bare bytes; such
/// packs are foreign now, their blobs misses).
const MAGIC: &[u8; 8] = b"n2dpack2";
/// Entry codecs.
const STORED: u8 = 0;
const LZ4: u8 = 1;
/// Blobs shorter than this are stored as they are: too small to gain.
const MIN_COMPRESSED: usize = 64;
/// Blobs up to this size are compressed in a buffer kept by the thread.
const SCRATCH_LIMIT: usize = 4 << 20;
/// Magic, database id, and room for later use.
pub(crate) const HEADER_LEN: u64 = 32;
/// A pack at least this large is not appended to by a new session.
const PACK_LIMIT: u64 = 256 << 20;
/// Buffered bytes are written once a chunk holds this much.
const CHUNK: usize = 4 << 20;
/// A chunk buffer's capacity: a chunk and the blob that fills it, so that
/// a buffer is not moved while it fills (blobs are smaller than a chunk
/// but for rare ones).
const BUFFER: usize = 2 * CHUNK;
/// Written chunks' buffers kept for the next chunks: a buffer is used
/// again rather than freed and allocated anew, whose fresh pages cost a
/// fault each (a cold build appends 90 MB).
const SPARE_BUFFERS: usize = 2;
const FILE_PREFIX: &str = "pack-";

/// Where a blob's bytes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
}

/// Where a CAS entry's bytes are, for a reader that does not open the
/// database ([`read_located`]): the pipeline's delta path, which names the
/// Eval outputs of its snapshot this way instead of copying them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub pack: u32,
    pub offset: u64,
    pub len: u64,
}

/// Reads the blob `digest` at `at` in the packs of the cache in
/// `cache_dir`, without the database; `None` unless the bytes are there and
/// are `digest`'s. Only valid while the caller holds the workspace lock
/// (only gc moves blobs, and it removes the references to them first).
pub fn read_located(cache_dir: &Path, at: &BlobRef, digest: &crate::Digest) -> Option<Vec<u8>> {
    let file = File::open(
        cache_dir
            .join("packs")
            .join(format!("{FILE_PREFIX}{:08}", at.pack)),
    )
    .ok()?;
    let mut entry = vec![0; usize::try_from(at.len).ok()?];
    file.read_exact_at(&mut entry, at.offset).ok()?;
    let bytes = decode_entry(entry);
    (crate::Digest::of(&bytes) == *digest).then_some(bytes)
}

/// Encodes `bytes` as a pack entry and hands it to `write`.
fn encode_entry<R>(bytes: &[u8], write: impl FnOnce(&[u8]) -> R) -> R {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    if bytes.len() > SCRATCH_LIMIT {
        return write(entry_in(&mut Vec::new(), bytes));
    }
    SCRATCH.with(|scratch| write(entry_in(&mut scratch.borrow_mut(), bytes)))
}

/// Lays out the entry of `bytes` at the start of `buffer` (grown as needed,
/// never shrunk: a buffer used again is not zeroed again): compressed with
/// LZ4 when that makes it smaller.
fn entry_in<'a>(buffer: &'a mut Vec<u8>, bytes: &[u8]) -> &'a [u8] {
    let room = 5 + lz4_flex::block::get_maximum_output_size(bytes.len());
    if buffer.len() < room {
        buffer.resize(room, 0);
    }
    if let (true, Ok(len)) = (bytes.len() >= MIN_COMPRESSED, u32::try_from(bytes.len())) {
        if let Ok(written) = lz4_flex::block::compress_into(bytes, &mut buffer[5..room]) {
            if 5 + written < 1 + bytes.len() {
                buffer[0] = LZ4;
                buffer[1..5].copy_from_slice(&len.to_le_bytes());
                return &buffer[..5 + written];
            }
        }
    }
    buffer[0] = STORED;
    buffer[1..1 + bytes.len()].copy_from_slice(bytes);
    &buffer[..1 + bytes.len()]
}

/// The blob of a pack entry. An entry that does not decode is returned as
/// it is, so that the caller's digest check finds it damaged.
fn decode_entry(mut entry: Vec<u8>) -> Vec<u8> {
    match entry.first() {
        Some(&STORED) => {
            entry.remove(0);
            entry
        }
        Some(&LZ4) if entry.len() >= 5 => {
            let len = u32::from_le_bytes(entry[1..5].try_into().expect("four bytes")) as usize;
            // LZ4 expands a byte to at most 255: a larger length is damage,
            // and is not allocated.
            if len > (entry.len() - 5).saturating_mul(255) {
                return entry;
            }
            match lz4_flex::block::decompress(&entry[5..], len) {
                Ok(bytes) if bytes.len() == len => bytes,
                _ => entry,
            }
        }
        _ => entry,
    }
}

/// The pack files of one database.
pub(crate) struct Packs {
    dir: PathBuf,
    db_id: [u8; 16],
    writer: Mutex<Writer>,
    /// Signalled when a chunk written outside the lock is on disk.
    written: Condvar,
    /// Opened packs by number; `None` for one that is missing or foreign.
    readers: RwLock<HashMap<u32, Option<Arc<File>>>>,
}

#[derive(Default)]
struct Writer {
    /// The pack appended to, opened by the first append.
    current: Option<Current>,
    /// Chunks handed to a thread for writing and not yet written: read from
    /// here until they are.
    in_flight: Vec<Chunk>,
    /// The highest pack this session stopped appending to (full, or sealed
    /// by gc): never appended to again, even while its size on disk lags.
    retired: u32,
    /// Empty buffers of written chunks, for the next ones.
    spare: Vec<Vec<u8>>,
}

struct Current {
    id: u32,
    file: Arc<File>,
    /// The end of the pack, buffered bytes included.
    end: u64,
    /// Bytes not yet handed over for writing, starting at `end - len`.
    buffer: Vec<u8>,
}

#[derive(Clone)]
struct Chunk {
    pack: u32,
    start: u64,
    bytes: Arc<Vec<u8>>,
}

impl Packs {
    pub(crate) fn new(dir: PathBuf, db_id: [u8; 16]) -> Packs {
        Packs {
            dir,
            db_id,
            writer: Mutex::new(Writer::default()),
            written: Condvar::new(),
            readers: RwLock::new(HashMap::new()),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends `bytes` as an entry, returning where it will be.
    pub(crate) fn append(&self, bytes: &[u8]) -> Result<Location, CacheError> {
        encode_entry(bytes, |entry| self.append_entry(entry))
    }

    fn append_entry(&self, bytes: &[u8]) -> Result<Location, CacheError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if writer.current.is_none() {
            writer.current = Some(self.open_for_append(writer.retired)?);
        }
        let Writer { current, spare, .. } = &mut *writer;
        let current = current.as_mut().expect("opened above");
        if current.buffer.capacity() == 0 {
            current.buffer = spare.pop().unwrap_or_else(|| Vec::with_capacity(BUFFER));
        }
        let location = Location {
            pack: current.id,
            offset: current.end,
            len: bytes.len() as u64,
        };
        current.buffer.extend_from_slice(bytes);
        current.end += bytes.len() as u64;
        if current.buffer.len() < CHUNK {
            return Ok(location);
        }
        let chunk = take_chunk(current);
        let file = current.file.clone();
        if current.end >= PACK_LIMIT {
            writer.retired = current.id;
            writer.current = None;
        }
        writer.in_flight.push(chunk.clone());
        drop(writer);
        let result = write_chunk(&file, &chunk, &self.dir);
        self.finish_chunk(chunk);
        result.map(|()| location)
    }

    /// Reads the blob of the entry at `location`; `None` when it cannot be
    /// read (a missing, foreign or short pack). Not verified: the caller
    /// hashes.
    pub(crate) fn read(&self, location: &Location) -> Option<Vec<u8>> {
        let len = usize::try_from(location.len).ok()?;
        let buffered = self
            .writer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .buffered(location);
        let entry = match buffered {
            Some(entry) => entry,
            None => {
                let file = self.reader(location.pack)?;
                let mut entry = vec![0; len];
                file.read_exact_at(&mut entry, location.offset).ok()?;
                entry
            }
        };
        Some(decode_entry(entry))
    }

    /// Whether the pack of `location` can be read at all (not whether the
    /// bytes are right: reads verify that).
    pub(crate) fn holds(&self, location: &Location) -> bool {
        {
            let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(current) = writer.current.as_ref().filter(|c| c.id == location.pack) {
                return location.offset.saturating_add(location.len) <= current.end;
            }
        }
        self.reader(location.pack).is_some_and(|file| {
            file.metadata()
                .is_ok_and(|m| m.len() >= location.offset.saturating_add(location.len))
        })
    }

    /// Writes every buffered byte to its pack (without syncing) and waits
    /// for chunks other threads are writing.
    pub(crate) fn write_out(&self) -> Result<(), CacheError> {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let mut result = Ok(());
        if let Some(current) = writer.current.as_mut() {
            if !current.buffer.is_empty() {
                let chunk = take_chunk(current);
                let file = current.file.clone();
                writer.in_flight.push(chunk.clone());
                drop(writer);
                result = write_chunk(&file, &chunk, &self.dir);
                self.finish_chunk(chunk);
                writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            }
        }
        while !writer.in_flight.is_empty() {
            writer = self.written.wait(writer).unwrap_or_else(|e| e.into_inner());
        }
        result
    }

    /// Writes out and syncs the pack being appended to, then stops
    /// appending to it: the next append starts a new pack. What gc does
    /// before copying live blobs, so that the copies land in a pack of
    /// their own, durable before the index points at them.
    pub(crate) fn seal(&self) -> Result<(), CacheError> {
        self.write_out()?;
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(current) = writer.current.take() {
            writer.retired = current.id;
            current.file.sync_all().map_err(|source| CacheError::Io {
                action: "sync a pack file",
                path: self.path_of(current.id),
                source,
            })?;
        }
        Ok(())
    }

    /// Every pack file in the folder, by number, with its size.
    pub(crate) fn list(&self) -> Vec<(u32, u64)> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut packs: Vec<(u32, u64)> = entries
            .filter_map(Result::ok)
            .filter_map(|entry| {
                let id = pack_number(entry.file_name().to_str()?)?;
                Some((id, entry.metadata().ok()?.len()))
            })
            .collect();
        packs.sort_unstable();
        packs
    }

    /// Deletes a pack file (gc: no live blob is in it any more).
    pub(crate) fn remove(&self, id: u32) -> Result<(), CacheError> {
        self.readers
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        let path = self.path_of(id);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(CacheError::Io {
                action: "remove a pack file",
                path,
                source,
            }),
        }
    }

    /// Size of every pack file, for `cache stats`.
    pub(crate) fn disk_bytes(&self) -> u64 {
        self.list().iter().map(|(_, size)| size).sum()
    }

    fn path_of(&self, id: u32) -> PathBuf {
        self.dir.join(format!("{FILE_PREFIX}{id:08}"))
    }

    /// Marks `chunk` written, and keeps its buffer for a later chunk.
    fn finish_chunk(&self, chunk: Chunk) {
        let mut writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        writer
            .in_flight
            .retain(|c| !(c.pack == chunk.pack && c.start == chunk.start));
        // The in-flight copy is gone and readers copy out under the lock:
        // this is the last reference.
        if let Ok(mut buffer) = Arc::try_unwrap(chunk.bytes) {
            if writer.spare.len() < SPARE_BUFFERS && buffer.capacity() <= BUFFER {
                buffer.clear();
                writer.spare.push(buffer);
            }
        }
        self.written.notify_all();
    }

    /// The newest pack of this database if it has room and was not
    /// `retired`, else a new one.
    fn open_for_append(&self, retired: u32) -> Result<Current, CacheError> {
        std::fs::create_dir_all(&self.dir).map_err(|source| CacheError::Io {
            action: "create the pack folder",
            path: self.dir.clone(),
            source,
        })?;
        let packs = self.list();
        if let Some(&(id, size)) = packs.last() {
            if size < PACK_LIMIT && id > retired {
                if let Some(file) = self.open_own(id, true) {
                    return Ok(Current {
                        id,
                        file: Arc::new(file),
                        end: size,
                        buffer: Vec::new(),
                    });
                }
            }
        }
        let id = packs.last().map_or(0, |&(id, _)| id).max(retired) + 1;
        let path = self.path_of(id);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|source| CacheError::Io {
                action: "create a pack file",
                path: path.clone(),
                source,
            })?;
        let mut header = [0u8; HEADER_LEN as usize];
        header[..8].copy_from_slice(MAGIC);
        header[8..24].copy_from_slice(&self.db_id);
        file.write_all(&header).map_err(|source| CacheError::Io {
            action: "write a pack file",
            path,
            source,
        })?;
        Ok(Current {
            id,
            file: Arc::new(file),
            end: HEADER_LEN,
            buffer: Vec::new(),
        })
    }

    /// Opens pack `id` if its header names this database.
    fn open_own(&self, id: u32, write: bool) -> Option<File> {
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .open(self.path_of(id))
            .ok()?;
        let mut header = [0u8; HEADER_LEN as usize];
        file.read_exact_at(&mut header, 0).ok()?;
        (&header[..8] == MAGIC && header[8..24] == self.db_id).then_some(file)
    }

    fn reader(&self, id: u32) -> Option<Arc<File>> {
        if let Some(known) = self
            .readers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
        {
            return known.clone();
        }
        let opened = self.open_own(id, false).map(Arc::new);
        // A pack not there yet may be created by a later append of this
        // session: only remember packs that exist.
        if opened.is_some() || !self.path_of(id).exists() {
            self.readers
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .insert(id, opened.clone());
        }
        opened
    }
}

impl Drop for Packs {
    /// A cache dropped without a flush still writes what it buffered.
    fn drop(&mut self) {
        let _ = self.write_out();
    }
}

impl Writer {
    fn buffered(&self, location: &Location) -> Option<Vec<u8>> {
        let start = location.offset;
        let end = start.checked_add(location.len)?;
        if let Some(current) = &self.current {
            let buffer_start = current.end - current.buffer.len() as u64;
            if current.id == location.pack && start >= buffer_start && end <= current.end {
                let at = (start - buffer_start) as usize;
                return Some(current.buffer[at..at + location.len as usize].to_vec());
            }
        }
        self.in_flight.iter().find_map(|chunk| {
            let chunk_end = chunk.start + chunk.bytes.len() as u64;
            (chunk.pack == location.pack && start >= chunk.start && end <= chunk_end).then(|| {
                let at = (start - chunk.start) as usize;
                chunk.bytes[at..at + location.len as usize].to_vec()
            })
        })
    }
}

fn take_chunk(current: &mut Current) -> Chunk {
    let bytes = std::mem::take(&mut current.buffer);
    Chunk {
        pack: current.id,
        start: current.end - bytes.len() as u64,
        bytes: Arc::new(bytes),
    }
}

fn write_chunk(file: &File, chunk: &Chunk, dir: &Path) -> Result<(), CacheError> {
    file.write_all_at(&chunk.bytes, chunk.start)
        .map_err(|source| CacheError::Io {
            action: "write a pack file",
            path: dir.join(format!("{FILE_PREFIX}{:08}", chunk.pack)),
            source,
        })
}

fn pack_number(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(FILE_PREFIX)?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Removes every pack file in `dir` (the database they belong to is gone).
pub(crate) fn remove_all(dir: &Path) -> Result<(), CacheError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        if entry.file_name().to_str().and_then(pack_number).is_some() {
            std::fs::remove_file(entry.path()).map_err(|source| CacheError::Io {
                action: "remove a pack file of a replaced database",
                path: entry.path(),
                source,
            })?;
        }
    }
    Ok(())
}
