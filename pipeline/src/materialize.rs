//! Materialization: puts one target's files into its output folder
//! (`n2d-out/<package>/<deployment>/<target>/`).
//!
//! Guarantees, each relied on by users or by the engine:
//! - a file is written to a temporary sibling and exchanged with the old
//!   one (`replace`), so a reader never sees half a file, nor none;
//! - a file whose content and mode are unchanged is not rewritten and keeps
//!   its mtime (tools that watch the folder see no change);
//! - files that n2d wrote before and no longer produces are removed, and
//!   nothing else is: the folder's manifest (`.n2d-manifest`) lists what n2d
//!   owns, so logs or sockets that a manager keeps in the folder survive;
//! - nothing outside the folder is touched: paths are relative without `..`,
//!   and a symbolic link on the way is an error, never followed.
//!
//! Crash safety: before writing, the manifest is rewritten to the union of
//! the old and the new paths, so a build killed half-way leaves no file that
//! a later build does not know it owns.
use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use n2d_cache::Digest;
use rayon::prelude::*;

use crate::binary::{checked_body, headed, seal, Writer};

/// The name of the manifest inside a target folder.
pub const MANIFEST: &str = ".n2d-manifest";

/// In the name of every temporary file materialization writes: a build
/// killed before its rename leaves one, which the next materialization of
/// the folder removes.
const TMP_MARK: &str = ".n2d-tmp-";

/// One file to put in place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputFile {
    /// Relative to the target folder, `/`-separated.
    pub path: String,
    pub bytes: Vec<u8>,
    pub mode: u32,
}

impl From<n2d_rules::Artifact> for OutputFile {
    fn from(artifact: n2d_rules::Artifact) -> OutputFile {
        OutputFile {
            path: artifact.path,
            bytes: artifact.bytes,
            mode: artifact.mode,
        }
    }
}

/// What materialization changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub written: Vec<String>,
    pub removed: Vec<String>,
    pub unchanged: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum MaterializeError {
    #[error("refusing to write `{path}`: {reason}")]
    BadPath { path: String, reason: &'static str },
    #[error("refusing to write through the symbolic link `{0}`")]
    Symlink(PathBuf),
    #[error("`{0}` does not hold the output its manifest last recorded")]
    NotAsRecorded(PathBuf),
    #[error("{action} `{path}`: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
}

fn io(action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> MaterializeError {
    let path = path.to_path_buf();
    move |source| MaterializeError::Io {
        action,
        path,
        source,
    }
}

/// One file as the manifest remembers it: enough to tell, with one `stat`,
/// that the file on disk is still exactly what n2d wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct ManifestEntry {
    digest: Digest,
    mode: u32,
    size: u64,
    mtime_ns: i128,
    inode: u64,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Manifest {
    /// What the folder holds: the digest of the assembled output it was
    /// materialized from (empty while a materialization is under way).
    source: String,
    files: BTreeMap<String, Option<ManifestEntry>>,
}

/// Puts `files` into `dir`, creating it if needed, and records `source` (a
/// digest of what the files were made from) for [`is_in_sync`]; see the
/// module docs.
pub fn materialize(
    dir: &Path,
    files: &[OutputFile],
    source: &str,
) -> Result<Outcome, MaterializeError> {
    for file in files {
        check_relative_path(&file.path)?;
    }
    fs::create_dir_all(dir).map_err(io("creating the output folder", dir))?;
    remove_leftover_temporaries(dir)?;
    let old = read_manifest(dir);
    let new_paths: BTreeSet<&str> = files.iter().map(|f| f.path.as_str()).collect();

    // Claim every path before touching any: see "Crash safety".
    let mut pending = Manifest {
        source: String::new(),
        files: old.files.clone(),
    };
    for path in &new_paths {
        pending.files.entry(path.to_string()).or_insert(None);
    }
    write_manifest(dir, &pending)?;

    ensure_parent_dirs(dir, files)?;
    let results: Vec<(String, ManifestEntry, bool)> = files
        .par_iter()
        .map(|file| {
            let previous = old.files.get(&file.path).cloned().flatten();
            put_file(dir, file, previous.as_ref())
                .map(|(entry, wrote)| (file.path.clone(), entry, wrote))
        })
        .collect::<Result<_, _>>()?;

    let mut outcome = Outcome::default();
    let mut manifest = Manifest {
        source: source.to_string(),
        files: BTreeMap::new(),
    };
    for (path, entry, wrote) in results {
        if wrote {
            outcome.written.push(path.clone());
        } else {
            outcome.unchanged += 1;
        }
        manifest.files.insert(path, Some(entry));
    }
    for stale in old.files.keys().filter(|p| !new_paths.contains(p.as_str())) {
        let path = dir.join(stale);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => {
                fs::remove_file(&path).map_err(io("removing the stale output", &path))?;
                outcome.removed.push(stale.clone());
                remove_empty_parents(dir, &path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspecting the stale output", &path)(e)),
        }
    }
    write_manifest(dir, &manifest)?;
    outcome.written.sort();
    outcome.removed.sort();
    Ok(outcome)
}

/// Applies a change to a folder whose manifest says it holds what was
/// materialized from `from` (the caller checked its files, as the no-op
/// stamp does): puts `files` (new or changed), removes `removed` (paths it
/// no longer holds), and records `source`. Returns the folder's new state.
/// New paths are claimed in the manifest first, as [`materialize`] does.
/// Paths it already lists need no claim: a build killed half-way leaves
/// files whose stat differs from the manifest's (a rename gives a new
/// inode) or that are gone, so no build finds the folder in sync.
pub fn patch(
    dir: &Path,
    from: &str,
    files: &[OutputFile],
    removed: &[String],
    source: &str,
) -> Result<FolderState, MaterializeError> {
    for file in files {
        check_relative_path(&file.path)?;
    }
    for path in removed {
        check_relative_path(path)?;
    }
    // Read in place: a patch changes a few of its thousand entries.
    let bytes = fs::read(dir.join(MANIFEST)).unwrap_or_default();
    let Some(mut manifest) = ManifestRef::decode(&bytes) else {
        return Err(MaterializeError::NotAsRecorded(dir.to_path_buf()));
    };
    if from.is_empty() || manifest.source != from.as_bytes() {
        return Err(MaterializeError::NotAsRecorded(dir.to_path_buf()));
    }
    let new: Vec<&OutputFile> = files
        .iter()
        .filter(|f| manifest.find(f.path.as_bytes()).is_err())
        .collect();
    if !new.is_empty() {
        for file in new {
            manifest.claim(file.path.as_bytes());
        }
        write_encoded_manifest(dir, manifest.encode(b""))?;
    }

    ensure_parent_dirs(dir, files)?;
    let results: Vec<ManifestEntry> = files
        .par_iter()
        .map(|file| {
            let previous = manifest.entry(file.path.as_bytes());
            put_file(dir, file, previous.as_ref()).map(|(entry, _)| entry)
        })
        .collect::<Result<_, _>>()?;
    for (file, entry) in files.iter().zip(results) {
        manifest.set(file.path.as_bytes(), entry);
    }
    for stale in removed {
        let path = dir.join(stale);
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                fs::remove_file(&path).map_err(io("removing the stale output", &path))?;
                remove_empty_parents(dir, &path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("inspecting the stale output", &path)(e)),
        }
        manifest.forget(stale.as_bytes());
    }
    write_encoded_manifest(dir, manifest.encode(source.as_bytes()))?;
    let path = dir.join(MANIFEST);
    let stat = fs::symlink_metadata(&path).map_err(io("inspecting", &path))?;
    manifest
        .files
        .iter()
        .all(|(_, entry)| entry.is_some())
        .then_some(FolderState {
            manifest: recorded_stat(&stat, u32::MAX),
        })
        .ok_or_else(|| MaterializeError::NotAsRecorded(dir.to_path_buf()))
}

/// A manifest decoded in place, its paths borrowed from its encoding
/// unless added: what a patch reads and writes back.
struct ManifestRef<'a> {
    source: &'a [u8],
    /// Sorted by path, as encoded.
    files: Vec<(std::borrow::Cow<'a, [u8]>, Option<ManifestEntry>)>,
}

impl<'a> ManifestRef<'a> {
    /// `None` for a damaged manifest or one not sorted as n2d writes them.
    fn decode(bytes: &'a [u8]) -> Option<ManifestRef<'a>> {
        let (source, files) = decode_in_place(bytes)?;
        let files = files
            .into_iter()
            .map(|(path, entry)| (std::borrow::Cow::Borrowed(path), entry))
            .collect();
        Some(ManifestRef { source, files })
    }

    fn find(&self, path: &[u8]) -> Result<usize, usize> {
        self.files.binary_search_by(|(p, _)| p.as_ref().cmp(path))
    }

    fn entry(&self, path: &[u8]) -> Option<ManifestEntry> {
        self.find(path).ok().and_then(|at| self.files[at].1)
    }

    /// Lists `path` as n2d's before anything is written there.
    fn claim(&mut self, path: &[u8]) {
        if let Err(at) = self.find(path) {
            self.files
                .insert(at, (std::borrow::Cow::Owned(path.to_vec()), None));
        }
    }

    fn set(&mut self, path: &[u8], entry: ManifestEntry) {
        match self.find(path) {
            Ok(at) => self.files[at].1 = Some(entry),
            Err(at) => self
                .files
                .insert(at, (std::borrow::Cow::Owned(path.to_vec()), Some(entry))),
        }
    }

    fn forget(&mut self, path: &[u8]) {
        if let Ok(at) = self.find(path) {
            self.files.remove(at);
        }
    }

    /// The encoding of [`encode_manifest`], with `source`.
    fn encode(&self, source: &[u8]) -> Vec<u8> {
        let mut out = Writer(Vec::with_capacity(128 * self.files.len() + 128));
        out.0.extend_from_slice(MANIFEST_MAGIC);
        out.u32(MANIFEST_FORMAT);
        out.bytes(source);
        out.u64(self.files.len() as u64);
        for (path, entry) in &self.files {
            encode_entry(&mut out, path, entry.as_ref());
        }
        seal(out.0)
    }
}

/// Whether `dir` holds exactly what was materialized from `source`, every
/// file still on disk as written (one `stat` each): the no-op build's check
/// that nobody edited or deleted an output.
pub fn is_in_sync(dir: &Path, source: &str) -> bool {
    in_sync(dir, source).is_some()
}

/// An output folder as a finished materialization left it, as the no-op
/// stamp remembers it: the stat of its manifest. While the manifest stats
/// the same, it is the one that was written, and its entries say what
/// each file must still `stat` as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FolderState {
    pub manifest: RecordedStat,
}

/// What one `stat` must still show of a file n2d wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedStat {
    pub size: u64,
    pub mtime_ns: i128,
    pub inode: u64,
    /// Permission bits; `u32::MAX` for the manifest, whose mode is not
    /// n2d's to keep.
    pub mode: u32,
}

/// The state of `dir` if it holds exactly what was materialized from
/// `source`, every file as its manifest records (one `stat` each).
pub fn in_sync(dir: &Path, source: &str) -> Option<FolderState> {
    let folder = DirHandle::open(dir).ok()?;
    let (manifest, bytes) = folder.read_manifest()?;
    let files = finished_files(&bytes, Some(source))?;
    files_hold(&folder, &files).then_some(FolderState { manifest })
}

/// The state of `dir` if a materialization of `source` finished there;
/// its files are not checked (the caller has just written them).
pub fn folder_state(dir: &Path, source: &str) -> Option<FolderState> {
    let folder = DirHandle::open(dir).ok()?;
    let (manifest, bytes) = folder.read_manifest()?;
    finished_files(&bytes, Some(source))?;
    Some(FolderState { manifest })
}

impl FolderState {
    /// Whether the folder is still exactly in this state: its manifest
    /// unchanged and every file as the manifest records.
    pub fn still_holds(&self, dir: &Path) -> bool {
        let Ok(folder) = DirHandle::open(dir) else {
            return false;
        };
        let Some((manifest, bytes)) = folder.read_manifest() else {
            return false;
        };
        manifest == self.manifest
            && finished_files(&bytes, None).is_some_and(|files| files_hold(&folder, &files))
    }
}

/// The files of a manifest's encoding and the stat each was written with,
/// read in place (no copy of each path), when it is a finished one (every
/// path it claims has an entry) of `source` (when given).
fn finished_files<'a>(
    bytes: &'a [u8],
    source: Option<&str>,
) -> Option<Vec<(&'a [u8], RecordedStat)>> {
    let (recorded_source, files) = decode_in_place(bytes)?;
    if recorded_source.is_empty() || source.is_some_and(|s| s.as_bytes() != recorded_source) {
        return None;
    }
    files
        .into_iter()
        .map(|(path, entry)| {
            let entry = entry?;
            Some((
                path,
                RecordedStat {
                    size: entry.size,
                    mtime_ns: entry.mtime_ns,
                    inode: entry.inode,
                    mode: entry.mode,
                },
            ))
        })
        .collect()
}

/// Whether every file still `stat`s as recorded, relative to its folder.
/// Files of one subfolder are `stat`ed by name relative to it, opened
/// once, rather than by their path relative to the folder: the kernel's
/// lookup of each path component, not the `stat`, is most of the cost.
/// A manifest lists paths in order, so a subfolder's files are one run.
fn files_hold(folder: &DirHandle, files: &[(&[u8], RecordedStat)]) -> bool {
    let mut runs: Vec<&[(&[u8], RecordedStat)]> = Vec::new();
    let mut start = 0;
    for at in 1..=files.len() {
        if at == files.len() || split_parent(files[at].0).0 != split_parent(files[start].0).0 {
            runs.push(&files[start..at]);
            start = at;
        }
    }
    runs.par_iter().all(|run| {
        let (subfolder, _) = split_parent(run[0].0);
        let opened;
        let (within, names_only) = if subfolder.is_empty() || run.len() < 2 {
            (folder, false)
        } else {
            match folder.subfolder(subfolder) {
                Some(handle) => {
                    opened = handle;
                    (&opened, true)
                }
                None => return false,
            }
        };
        run.par_iter().all(|(path, recorded)| {
            let name = if names_only {
                split_parent(path).1
            } else {
                path
            };
            within
                .stat(name)
                .is_some_and(|stat| same_stat(&stat, recorded))
        })
    })
}

/// A relative path's folder part (empty for none) and its name.
fn split_parent(path: &[u8]) -> (&[u8], &[u8]) {
    match path.iter().rposition(|&b| b == b'/') {
        Some(at) => (&path[..at], &path[at + 1..]),
        None => (&b""[..], path),
    }
}

fn recorded_stat(meta: &fs::Metadata, mode: u32) -> RecordedStat {
    RecordedStat {
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        inode: meta.ino(),
        mode,
    }
}

/// A `stat` as [`DirHandle::stat`] gives it.
struct StatAt {
    is_file: bool,
    size: u64,
    mtime_ns: i128,
    inode: u64,
    mode: u32,
}

fn same_stat(stat: &StatAt, recorded: &RecordedStat) -> bool {
    stat.is_file
        && stat.size == recorded.size
        && stat.inode == recorded.inode
        && stat.mtime_ns == recorded.mtime_ns
        && (recorded.mode == u32::MAX || stat.mode & 0o7777 == recorded.mode)
}

/// An open output folder, to `stat` its files relative to it: the kernel
/// then resolves one or two path components per file instead of the whole
/// absolute path (most of a no-op build's time at 10,000 outputs).
struct DirHandle(fs::File);

impl DirHandle {
    fn open(dir: &Path) -> std::io::Result<DirHandle> {
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(dir)
            .map(DirHandle)
    }

    /// The subfolder at `relative`, opened only to look names up in it;
    /// `None` when it is missing or is a symbolic link.
    fn subfolder(&self, relative: &[u8]) -> Option<DirHandle> {
        use std::os::unix::io::{AsRawFd, FromRawFd};
        let name = std::ffi::CString::new(relative).ok()?;
        // SAFETY: a NUL-terminated name relative to an open folder; the
        // descriptor returned is owned by the `File` made of it.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        // SAFETY: `fd` was just opened and is owned by nothing else.
        (fd >= 0).then(|| DirHandle(unsafe { fs::File::from_raw_fd(fd) }))
    }

    /// `lstat` of `relative` (which must not be absolute), or `None`.
    fn stat(&self, relative: &[u8]) -> Option<StatAt> {
        use std::os::unix::io::AsRawFd;
        // NUL-terminated on the stack: 10,000 of these make a no-op build.
        let mut name = [0u8; 256];
        let owned;
        let name_ptr = if relative.len() < name.len() {
            if relative.contains(&0) {
                return None;
            }
            name[..relative.len()].copy_from_slice(relative);
            name.as_ptr().cast()
        } else {
            owned = std::ffi::CString::new(relative).ok()?;
            owned.as_ptr()
        };
        let mut stat = std::mem::MaybeUninit::<libc::stat>::uninit();
        // SAFETY: `name_ptr` is a NUL-terminated string and `stat` a buffer
        // of the right type, both alive for the call; the folder's
        // descriptor is open as long as `self`.
        let result = unsafe {
            libc::fstatat(
                self.0.as_raw_fd(),
                name_ptr,
                stat.as_mut_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if result != 0 {
            return None;
        }
        // SAFETY: fstatat succeeded, so it filled the buffer.
        let stat = unsafe { stat.assume_init() };
        Some(StatAt {
            is_file: stat.st_mode & libc::S_IFMT == libc::S_IFREG,
            size: stat.st_size as u64,
            mtime_ns: stat.st_mtime as i128 * 1_000_000_000 + stat.st_mtime_nsec as i128,
            inode: stat.st_ino,
            mode: stat.st_mode,
        })
    }

    /// The folder's manifest (not through a symbolic link) and the stat of
    /// the very file read: a manifest renamed over meanwhile is either
    /// read whole with its own stat, or not at all.
    fn read_manifest(&self) -> Option<(RecordedStat, Vec<u8>)> {
        use std::io::Read;
        use std::os::unix::io::{AsRawFd, FromRawFd};
        let name = std::ffi::CString::new(MANIFEST).ok()?;
        // SAFETY: a NUL-terminated name relative to an open folder; the
        // descriptor returned is owned by the `File` made of it.
        let fd = unsafe {
            libc::openat(
                self.0.as_raw_fd(),
                name.as_ptr(),
                libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            )
        };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just opened and is owned by nothing else.
        let mut file = unsafe { fs::File::from_raw_fd(fd) };
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.read_to_end(&mut bytes).ok()?;
        Some((recorded_stat(&meta, u32::MAX), bytes))
    }
}

/// What the folder was last materialized from (the digest recorded by
/// [`materialize`]), if a materialization finished there.
pub fn recorded_source(dir: &Path) -> Option<String> {
    let manifest = read_manifest(dir);
    (!manifest.source.is_empty()).then_some(manifest.source)
}

/// Checks that `path` stays inside the folder it is relative to.
pub fn check_relative_path(path: &str) -> Result<(), MaterializeError> {
    let bad = |reason| {
        Err(MaterializeError::BadPath {
            path: path.to_string(),
            reason,
        })
    };
    if path.is_empty() {
        return bad("the path is empty");
    }
    if path.starts_with('/') {
        return bad("the path is absolute");
    }
    if path == MANIFEST {
        return bad("the name is reserved for n2d's manifest");
    }
    for component in path.split('/') {
        match component {
            "" => return bad("the path has an empty component"),
            "." | ".." => return bad("the path leaves its folder"),
            _ if component.contains('\0') => return bad("the path holds a NUL byte"),
            _ => {}
        }
    }
    Ok(())
}

fn stat_matches(meta: &fs::Metadata, entry: &ManifestEntry) -> bool {
    meta.is_file()
        && meta.len() == entry.size
        && meta.ino() == entry.inode
        && mtime_ns(meta) == entry.mtime_ns
        && meta.permissions().mode() & 0o7777 == entry.mode
}

fn mtime_ns(meta: &fs::Metadata) -> i128 {
    meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128
}

/// Writes one file unless it is already in place; returns its manifest
/// entry and whether it was written.
fn put_file(
    dir: &Path,
    file: &OutputFile,
    previous: Option<&ManifestEntry>,
) -> Result<(ManifestEntry, bool), MaterializeError> {
    let path = dir.join(&file.path);
    let digest = Digest::of(&file.bytes);
    let mode = file.mode & 0o7777;
    let existing = fs::symlink_metadata(&path);
    if let Ok(meta) = &existing {
        if meta.file_type().is_symlink() {
            return Err(MaterializeError::Symlink(path));
        }
        let same_stat = previous.is_some_and(|p| p.digest == digest && stat_matches(meta, p));
        // A file that n2d did not record (or whose stat moved) is compared by
        // content: rewriting identical bytes would only bump its mtime.
        let same = same_stat
            || (meta.is_file()
                && meta.len() == file.bytes.len() as u64
                && meta.permissions().mode() & 0o7777 == mode
                && fs::read(&path).map(|b| b == file.bytes).unwrap_or(false));
        if same {
            return Ok((entry_for(meta, digest, mode), false));
        }
    }
    let parent = path.parent().expect("a joined path has a parent");
    if existing.is_err() {
        if let Some(meta) = create_whole(parent, &path, &file.bytes, mode) {
            return Ok((entry_for(&meta, digest, mode), true));
        }
    }
    let name = path
        .file_name()
        .expect("a checked path has a file name")
        .to_string_lossy();
    let tmp = parent.join(format!(".{name}{TMP_MARK}{}", std::process::id()));
    let result = (|| {
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io("creating the temporary file", &tmp))?;
        out.write_all(&file.bytes).map_err(io("writing", &tmp))?;
        // `mode` on open is filtered by the umask; secrets must be exact.
        out.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("setting the mode of", &tmp))?;
        // The stat of what we wrote, not of whatever is at the path later:
        // a rename keeps the inode and its mtime.
        let meta = out.metadata().map_err(io("inspecting", &tmp))?;
        drop(out);
        crate::replace::replace(&tmp, &path).map_err(io("renaming into place", &path))?;
        Ok(meta)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    let meta = result?;
    Ok((entry_for(&meta, digest, mode), true))
}

/// Creates a file that does not exist yet, atomically and without a
/// temporary name: an unnamed file (`O_TMPFILE`) in `parent`, written,
/// then linked at `path`, so a reader sees no file or the whole file. That
/// is one directory update instead of three (create, rename, remove), and
/// directory updates are most of a cold build's materialization. `None`
/// when the file system or the system cannot (no `O_TMPFILE`, no `/proc`)
/// or the name was taken meanwhile: the caller then writes a temporary
/// sibling and renames it.
fn create_whole(parent: &Path, path: &Path, bytes: &[u8], mode: u32) -> Option<fs::Metadata> {
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;
    let mut out = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(mode)
        .open(parent)
        .ok()?;
    out.write_all(bytes).ok()?;
    out.set_permissions(fs::Permissions::from_mode(mode)).ok()?;
    let meta = out.metadata().ok()?;
    let from = std::ffi::CString::new(format!("/proc/self/fd/{}", out.as_raw_fd())).ok()?;
    let to = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    // SAFETY: both are NUL-terminated strings alive for the call.
    let linked = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    // An unnamed file that is not linked disappears when closed.
    (linked == 0).then_some(meta)
}

fn entry_for(meta: &fs::Metadata, digest: Digest, mode: u32) -> ManifestEntry {
    ManifestEntry {
        digest,
        mode,
        size: meta.len(),
        mtime_ns: mtime_ns(meta),
        inode: meta.ino(),
    }
}

/// Creates the folders that files go in, refusing to pass through a
/// symbolic link (which could lead outside the output folder).
fn ensure_parent_dirs(dir: &Path, files: &[OutputFile]) -> Result<(), MaterializeError> {
    let mut checked: BTreeSet<PathBuf> = BTreeSet::new();
    for file in files {
        let mut current = dir.to_path_buf();
        let components: Vec<&str> = file.path.split('/').collect();
        for component in &components[..components.len() - 1] {
            current.push(component);
            if !checked.insert(current.clone()) {
                continue;
            }
            match fs::symlink_metadata(&current) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(MaterializeError::Symlink(current));
                }
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => {
                    // A file stands where a folder must go: an older output.
                    fs::remove_file(&current).map_err(io("replacing the file", &current))?;
                    fs::create_dir(&current).map_err(io("creating the folder", &current))?;
                }
                Err(_) => fs::create_dir(&current).map_err(io("creating the folder", &current))?,
            }
        }
    }
    Ok(())
}

/// Removes the temporary files of materializations that were killed.
fn remove_leftover_temporaries(dir: &Path) -> Result<(), MaterializeError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("listing", dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("listing", dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io("inspecting", &path))?;
        if kind.is_dir() {
            remove_leftover_temporaries(&path)?;
        } else if entry.file_name().to_string_lossy().contains(TMP_MARK) {
            fs::remove_file(&path).map_err(io("removing the leftover", &path))?;
        }
    }
    Ok(())
}

fn remove_empty_parents(dir: &Path, file: &Path) {
    let mut current = file.parent();
    while let Some(folder) = current {
        if folder == dir || !folder.starts_with(dir) || fs::remove_dir(folder).is_err() {
            break;
        }
        current = folder.parent();
    }
}

fn read_manifest(dir: &Path) -> Manifest {
    // A missing or damaged manifest only costs content comparisons.
    fs::read(dir.join(MANIFEST))
        .ok()
        .and_then(|bytes| decode_manifest(&bytes))
        .unwrap_or_default()
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> Result<(), MaterializeError> {
    write_encoded_manifest(dir, encode_manifest(manifest))
}

fn write_encoded_manifest(dir: &Path, bytes: Vec<u8>) -> Result<(), MaterializeError> {
    let path = dir.join(MANIFEST);
    let tmp = dir.join(format!("{MANIFEST}{TMP_MARK}{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io("writing the manifest", &tmp))?;
    // Exchanged, not renamed over (`replace`): the folder always has a
    // manifest, and ext4 does not start writing it back at once.
    crate::replace::replace(&tmp, &path).map_err(io("renaming the manifest into place", &path))
}

/// The manifest's encoding: binary with a checksum (`binary`), as it is
/// read and written whole by every build that changes the folder.
const MANIFEST_MAGIC: &[u8; 8] = b"n2dmanif";
const MANIFEST_FORMAT: u32 = 1;

fn encode_manifest(manifest: &Manifest) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(128 * manifest.files.len() + 128));
    out.0.extend_from_slice(MANIFEST_MAGIC);
    out.u32(MANIFEST_FORMAT);
    out.bytes(manifest.source.as_bytes());
    out.u64(manifest.files.len() as u64);
    for (path, entry) in &manifest.files {
        encode_entry(&mut out, path.as_bytes(), entry.as_ref());
    }
    seal(out.0)
}

/// A manifest entry after its path (see [`encode_entry`]): `None` for a
/// path claimed but not written yet.
fn decode_entry(input: &mut crate::binary::Reader) -> Option<Option<ManifestEntry>> {
    match input.u32()? {
        0 => Some(None),
        1 => Some(Some(ManifestEntry {
            digest: input.digest()?,
            mode: input.u32()?,
            size: input.u64()?,
            mtime_ns: input.i128()?,
            inode: input.u64()?,
        })),
        _ => None,
    }
}

fn encode_entry(out: &mut Writer, path: &[u8], entry: Option<&ManifestEntry>) {
    out.bytes(path);
    match entry {
        None => out.u32(0),
        Some(entry) => {
            out.u32(1);
            out.digest(&entry.digest);
            out.u32(entry.mode);
            out.u64(entry.size);
            out.i128(entry.mtime_ns);
            out.u64(entry.inode);
        }
    }
}

fn decode_manifest(bytes: &[u8]) -> Option<Manifest> {
    let (source, files) = decode_in_place(bytes)?;
    Some(Manifest {
        source: String::from_utf8(source.to_vec()).ok()?,
        files: files
            .into_iter()
            .map(|(path, entry)| Some((String::from_utf8(path.to_vec()).ok()?, entry)))
            .collect::<Option<_>>()?,
    })
}

/// A manifest's source and entries, their paths borrowed from its
/// encoding; `None` for a damaged one, or one not in the order n2d writes
/// (by path), which a patch's lookups rely on.
type ManifestSlices<'a> = (&'a [u8], Vec<(&'a [u8], Option<ManifestEntry>)>);

fn decode_in_place(bytes: &[u8]) -> Option<ManifestSlices<'_>> {
    let mut input = headed(checked_body(bytes)?, MANIFEST_MAGIC, MANIFEST_FORMAT)?;
    let source = input.bytes()?;
    let files = (0..input.count()?)
        .map(|_| Some((input.bytes()?, decode_entry(&mut input)?)))
        .collect::<Option<Vec<_>>>()?;
    let sorted = files.windows(2).all(|pair| pair[0].0 < pair[1].0);
    (input.0.is_empty() && sorted).then_some((source, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_decodes_to_itself_and_a_damaged_one_to_nothing() {
        let manifest = Manifest {
            source: "abc".into(),
            files: BTreeMap::from([
                ("a".to_string(), None),
                (
                    "b/c".to_string(),
                    Some(ManifestEntry {
                        digest: Digest::of(b"x"),
                        mode: 0o600,
                        size: 1,
                        mtime_ns: -3,
                        inode: 9,
                    }),
                ),
            ]),
        };
        let bytes = encode_manifest(&manifest);
        assert_eq!(decode_manifest(&bytes), Some(manifest));
        for at in [0, 12, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            assert_eq!(decode_manifest(&damaged), None, "byte {at} flipped");
        }
        assert_eq!(decode_manifest(&bytes[..bytes.len() - 1]), None);
    }

    #[test]
    fn a_manifest_read_in_place_edits_and_encodes_as_the_decoded_one() {
        let entry = |inode| ManifestEntry {
            digest: Digest::of(b"x"),
            mode: 0o644,
            size: 1,
            mtime_ns: 5,
            inode,
        };
        let mut manifest = Manifest {
            source: "s".into(),
            files: BTreeMap::from([
                ("b".to_string(), Some(entry(1))),
                ("d/e".to_string(), Some(entry(2))),
            ]),
        };
        let bytes = encode_manifest(&manifest);
        let mut view = ManifestRef::decode(&bytes).unwrap();
        assert_eq!(view.source, b"s");
        assert_eq!(view.entry(b"d/e"), Some(entry(2)));
        view.claim(b"a");
        view.claim(b"c");
        view.set(b"c", entry(3));
        view.set(b"b", entry(4));
        view.forget(b"d/e");
        manifest.source = "t".into();
        manifest.files = BTreeMap::from([
            ("a".to_string(), None),
            ("b".to_string(), Some(entry(4))),
            ("c".to_string(), Some(entry(3))),
        ]);
        assert_eq!(view.encode(b"t"), encode_manifest(&manifest));

        // Not in n2d's order: not a manifest a patch can trust.
        let mut out = Writer(Vec::new());
        out.0.extend_from_slice(MANIFEST_MAGIC);
        out.u32(MANIFEST_FORMAT);
        out.bytes(b"s");
        out.u64(2);
        encode_entry(&mut out, b"b", None);
        encode_entry(&mut out, b"a", None);
        assert!(ManifestRef::decode(&seal(out.0)).is_none());
    }

    fn file(path: &str, text: &str, mode: u32) -> OutputFile {
        OutputFile {
            path: path.into(),
            bytes: text.as_bytes().to_vec(),
            mode,
        }
    }

    #[test]
    fn writes_keeps_unchanged_and_removes_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let first = materialize(
            &dir,
            &[file("a", "1", 0o644), file("sub/b", "2", 0o755)],
            "one",
        )
        .unwrap();
        assert_eq!(first.written, vec!["a", "sub/b"]);
        let mtime_a = fs::metadata(dir.join("a")).unwrap().modified().unwrap();
        fs::write(dir.join("user-log"), "kept").unwrap();

        let second =
            materialize(&dir, &[file("a", "1", 0o644), file("c", "3", 0o600)], "two").unwrap();
        assert_eq!(second.written, vec!["c"]);
        assert_eq!(second.removed, vec!["sub/b"]);
        assert_eq!(second.unchanged, 1);
        assert_eq!(
            fs::metadata(dir.join("a")).unwrap().modified().unwrap(),
            mtime_a
        );
        assert!(!dir.join("sub").exists(), "an emptied folder is removed");
        assert_eq!(fs::read_to_string(dir.join("user-log")).unwrap(), "kept");
        assert_eq!(
            fs::metadata(dir.join("c")).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert!(is_in_sync(&dir, "two"));
        assert!(!is_in_sync(&dir, "one"));
        fs::write(dir.join("a"), "edited").unwrap();
        assert!(!is_in_sync(&dir, "two"));
    }

    #[test]
    fn a_folder_state_sees_deleted_edited_and_remade_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        let files = [file("a", "1", 0o644), file("sub/b", "2", 0o755)];
        materialize(&dir, &files, "one").unwrap();
        assert!(folder_state(&dir, "two").is_none(), "another source");
        let state = folder_state(&dir, "one").unwrap();
        assert!(state.still_holds(&dir));

        // Same size, other content: only the mtime tells.
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
        fs::write(dir.join("sub/b"), "3").unwrap();
        fs::File::options()
            .append(true)
            .open(dir.join("sub/b"))
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(!state.still_holds(&dir), "an edited file");
        materialize(&dir, &files, "one").unwrap();
        let state = folder_state(&dir, "one").unwrap();
        assert!(state.still_holds(&dir));

        fs::remove_file(dir.join("a")).unwrap();
        assert!(!state.still_holds(&dir), "a deleted file");
        materialize(&dir, &files, "one").unwrap();
        let state = folder_state(&dir, "one").unwrap();
        fs::set_permissions(dir.join("a"), fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!state.still_holds(&dir), "a changed mode");
        materialize(&dir, &files, "one").unwrap();
        let state = folder_state(&dir, "one").unwrap();
        let manifest = fs::read(dir.join(MANIFEST)).unwrap();
        fs::remove_file(dir.join(MANIFEST)).unwrap();
        fs::write(dir.join(MANIFEST), manifest).unwrap();
        assert!(!state.still_holds(&dir), "a rewritten manifest");
    }

    #[test]
    fn temporaries_of_a_killed_materialization_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("out");
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join(".n2d-manifest.n2d-tmp-123"), "").unwrap();
        fs::write(dir.join("sub/.a.n2d-tmp-456"), "half").unwrap();
        fs::write(dir.join("sub/mine"), "kept").unwrap();
        materialize(&dir, &[file("a", "1", 0o644)], "s").unwrap();
        assert!(!dir.join(".n2d-manifest.n2d-tmp-123").exists());
        assert!(!dir.join("sub/.a.n2d-tmp-456").exists());
        assert!(dir.join("sub/mine").exists());
    }

    #[test]
    fn refuses_paths_that_leave_the_folder() {
        let tmp = tempfile::tempdir().unwrap();
        for bad in ["../x", "/etc/passwd", "a//b", "a/./b", "", MANIFEST] {
            assert!(
                materialize(tmp.path(), &[file(bad, "x", 0o644)], "s").is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn refuses_to_write_through_a_symlink() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        fs::create_dir(&outside).unwrap();
        let dir = tmp.path().join("out");
        fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(&outside, dir.join("sub")).unwrap();
        let err = materialize(&dir, &[file("sub/x", "x", 0o644)], "s").unwrap_err();
        assert!(matches!(err, MaterializeError::Symlink(_)), "{err}");
        assert!(!outside.join("x").exists());
    }
}
