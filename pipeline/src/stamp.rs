//! The no-op fast path. After a successful build, a stamp records what the
//! build read (every input file's mtime, size and inode), which package files
//! existed, and which assembled output each target folder holds. The next
//! build of the same request first checks the stamp: if every input still
//! stats the same and every folder is still in sync, nothing can have
//! changed, and the build is done without opening the database — the cost
//! of a no-op build is then the cost of stat-ing what it depends on.
//!
//! Anything the stamp does not cover is in its key: the request, the option
//! declarations, the workspace settings, and the n2d executable itself (a
//! new n2d may render differently). A stamp never serves a file whose mtime
//! is within two seconds of the stamp, since an edit in the same clock tick
//! could keep the same mtime (git's "racily clean" rule).
//!
//! The stamp holds, for each output folder, the stat of its manifest
//! (`materialize::FolderState`): while the manifest stats the same, it is
//! the one that was written, and it lists every file n2d put there with
//! the stat the file was written with. So the check reads each folder's
//! manifest, read in place, and `stat`s its files; the stamp does not
//! repeat them, and a delta build that patches one folder rewrites a
//! stamp of its inputs and folders, not of 10,000 files. It is a small
//! binary file with a checksum (`encode`/`decode`). A stamp that does not
//! decode is no stamp.
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use n2d_engine::{KindCounts, Summary};
use rayon::prelude::*;

use n2d_modules::WalkedFolder;

use crate::binary::Writer;
use crate::materialize::{self, FolderState};

pub(crate) struct Stamp {
    /// When the build that wrote the stamp started: a file modified after
    /// that (even while the build ran) has a later mtime and is never served.
    pub(crate) started_at_ns: i128,
    /// Module files found by discovery, workspace-relative.
    pub(crate) packages: Vec<String>,
    /// The folders discovery walked to find them, with their stats: while
    /// all stat the same, discovery would find the same files, and the
    /// check runs without it (`None`: a listing was too recent to vouch).
    pub(crate) folders: Option<Vec<WalkedFolder>>,
    pub(crate) inputs: Vec<(PathBuf, FileStat)>,
    /// Target folder → what it holds.
    pub(crate) outputs: Vec<(PathBuf, FolderState)>,
    /// Tasks per kind in the build that wrote the stamp: reported as cached.
    pub(crate) tasks: BTreeMap<String, u64>,
    /// The encoding it was decoded from, and where each output's record
    /// lies in it: a delta build copies the folders it did not change.
    raw: Option<(Vec<u8>, Vec<std::ops::Range<usize>>)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FileStat {
    mtime_ns: i128,
    size: u64,
    inode: u64,
}

/// Kind names as the engine reports them (`&'static str`).
/// A stamp naming another kind is not served (a newer n2d wrote it).
const KINDS: [&str; 8] = [
    "parse",
    "eval",
    "interface",
    "plan",
    "resolve",
    "render",
    "assemble",
    "materialize",
];

/// Where the stamp of a request key lives.
pub fn stamp_path(cache_dir: &Path, key: &str) -> PathBuf {
    cache_dir.join("stamps").join(key)
}

/// Removes every no-op stamp and delta snapshot (`n2d cache gc`): each
/// executable and request writes its own, so old ones pile up; losing one
/// costs one full build. Returns how many files were removed.
pub fn forget_all(cache_dir: &Path) -> usize {
    fn remove(dir: &Path) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.filter_map(Result::ok) {
            let path = entry.path();
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                removed += remove(&path);
                let _ = std::fs::remove_dir(&path);
            } else if std::fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        removed
    }
    remove(&cache_dir.join("stamps"))
}

/// The identity of the running executable: part of every stamp key.
pub fn executable_identity() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| format!("{}:{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// What the stamp of a request says about the workspace now.
pub enum Check {
    /// Nothing the last build read changed, and every output folder holds
    /// what it wrote: its outputs, inputs and counts.
    Unchanged(Vec<PathBuf>, Vec<PathBuf>, Summary),
    /// Some inputs changed (or are too recent to trust), none vanished and
    /// the module files are the same set: what the delta path starts from.
    /// Whether every output folder still holds what the last build wrote
    /// is [`Changed::outputs_hold`], which the delta path runs beside its
    /// first work.
    Changed(Changed),
    /// No stamp, a damaged one, another set of module files, a vanished
    /// input or an output folder that changed: only a full build knows.
    Unknown,
}

/// The last build's stamp and what changed since.
pub struct Changed {
    pub(crate) stamp: Stamp,
    /// Indices into `stamp.inputs`.
    pub(crate) changed: Vec<usize>,
    /// The stat of every input, taken by the check (before anything read
    /// them): what the next stamp records, so that a file changed since
    /// shows as changed again.
    pub(crate) now: Vec<FileStat>,
}

/// Whether every folder discovery walked still stats as recorded.
fn folders_hold(root: &Path, folders: &[WalkedFolder]) -> bool {
    folders.par_iter().all(|folder| folder.unchanged(root))
}

/// Whether every output folder of `stamp` still holds what it records:
/// one `stat` per file (see ARCHITECTURE.md, "What a no-op build proves").
fn outputs_hold(stamp: &Stamp) -> bool {
    stamp
        .outputs
        .par_iter()
        .all(|(dir, state)| state.still_holds(dir))
}

impl Changed {
    /// Whether every output folder still holds what the last build wrote:
    /// the delta path writes nothing unless it does.
    pub fn outputs_hold(&self) -> bool {
        outputs_hold(&self.stamp)
    }

    /// The files that changed, as the stamp records them (absolute).
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        self.changed
            .iter()
            .map(|&i| self.stamp.inputs[i].0.as_path())
    }
}

/// What the workspace is known to hold when the stamp is checked.
pub enum Discovered<'a> {
    /// Discovery found these module files (workspace-relative).
    Packages(&'a [String]),
    /// Discovery has not run: the stamp's own record of the folders it
    /// walked stands for it, when every folder under `root` still stats
    /// as recorded.
    NotYet { root: &'a Path },
}

/// Compares the stamp at `path` with the workspace.
pub fn check(path: &Path, discovered: Discovered<'_>) -> Check {
    let Some(stamp) = std::fs::read(path).ok().and_then(decode) else {
        return Check::Unknown;
    };
    // Each input's stat now (`None` when one is gone), and before
    // discovery whether every folder it walked is as it was.
    let (folders_hold, now) = rayon::join(
        || match discovered {
            Discovered::Packages(_) => true,
            Discovered::NotYet { root } => stamp
                .folders
                .as_deref()
                .is_some_and(|folders| folders_hold(root, folders)),
        },
        || -> Option<Vec<FileStat>> {
            stamp
                .inputs
                .par_iter()
                .map(|(file, _)| stat(file))
                .collect()
        },
    );
    let (true, Some(now)) = (folders_hold, now) else {
        return Check::Unknown;
    };
    if let Discovered::Packages(packages) = discovered {
        if stamp.packages != packages {
            return Check::Unknown;
        }
    }
    let racy_limit = stamp.started_at_ns - 2_000_000_000;
    let inputs: Vec<bool> = stamp
        .inputs
        .iter()
        .zip(&now)
        .map(|((_, recorded), now)| now != recorded || now.mtime_ns >= racy_limit)
        .collect();
    let changed: Vec<usize> = (0..inputs.len()).filter(|&i| inputs[i]).collect();
    if !changed.is_empty() {
        // The outputs are checked by the caller (`Changed::outputs_hold`),
        // beside the work of the delta path.
        return Check::Changed(Changed {
            stamp,
            changed,
            now,
        });
    }
    if !outputs_hold(&stamp) {
        return Check::Unknown;
    }
    let Some(summary) = stamp.summary() else {
        return Check::Unknown;
    };
    let inputs = stamp.inputs.into_iter().map(|(file, _)| file).collect();
    let outputs = stamp.outputs.into_iter().map(|(dir, _)| dir).collect();
    Check::Unchanged(outputs, inputs, summary)
}

impl Stamp {
    /// The counts of the build that wrote the stamp, all as cached; `None`
    /// when it names a kind this n2d does not know.
    pub(crate) fn summary(&self) -> Option<Summary> {
        let mut summary = Summary::default();
        for (kind, count) in &self.tasks {
            let kind = KINDS.iter().find(|k| *k == kind)?;
            summary.cached += count;
            summary.by_kind.insert(
                kind,
                KindCounts {
                    cached: *count,
                    ..KindCounts::default()
                },
            );
        }
        Some(summary)
    }
}

/// The current time, as stamps count it.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Records a successful build that started at `started_at_ns`, whose
/// output folders are `outputs` (folder, assembled digest, and its state
/// when the build found it in sync). Failing to write a stamp only costs
/// the next build its fast path, so errors are ignored.
pub fn record(
    path: &Path,
    started_at_ns: i128,
    packages: &[String],
    folders: Option<&[WalkedFolder]>,
    inputs: &[PathBuf],
    outputs: &[(PathBuf, String, Option<FolderState>)],
    summary: &Summary,
) {
    let Some(inputs) = inputs
        .par_iter()
        .map(|file| stat(file).map(|s| (file.clone(), s)))
        .collect::<Option<Vec<_>>>()
    else {
        // An input vanished during the build: no stamp, the next build checks.
        let _ = std::fs::remove_file(path);
        return;
    };
    record_stats(
        path,
        started_at_ns,
        packages,
        folders,
        inputs,
        outputs,
        summary,
    );
}

/// `record` with the inputs' stats already taken (before the build read
/// them: a later change then shows as one).
pub fn record_stats(
    path: &Path,
    started_at_ns: i128,
    packages: &[String],
    folders: Option<&[WalkedFolder]>,
    inputs: Vec<(PathBuf, FileStat)>,
    outputs: &[(PathBuf, String, Option<FolderState>)],
    summary: &Summary,
) {
    let Some(outputs) = outputs
        .par_iter()
        .map(|(dir, assembled, known)| {
            // A folder materialized by this build is read back from its
            // manifest; one found in sync was read already.
            known
                .or_else(|| materialize::folder_state(dir, assembled))
                .map(|state| (dir.clone(), state))
        })
        .collect::<Option<Vec<_>>>()
    else {
        // A folder changed since it was materialized: the next build checks.
        let _ = std::fs::remove_file(path);
        return;
    };
    let tasks = tasks_of(summary);
    let stamp = Stamp {
        started_at_ns,
        packages: packages.to_vec(),
        folders: folders.map(<[WalkedFolder]>::to_vec),
        inputs,
        outputs,
        tasks,
        raw: None,
    };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let bytes = encode(&stamp);
    if std::fs::write(&tmp, bytes).is_ok() && crate::replace::replace(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// Records a delta build of the stamp `changed` started from: the inputs
/// with the stats the check took, `patched` output folders (by index) in
/// their new state, the others as the old stamp holds them, copied from
/// its encoding.
pub(crate) fn record_patched(
    path: &Path,
    started_at_ns: i128,
    folders: Option<&[WalkedFolder]>,
    changed: &Changed,
    patched: &BTreeMap<usize, FolderState>,
    summary: &Summary,
) -> Option<PendingStamp> {
    let stamp = &changed.stamp;
    let (raw, ranges) = stamp.raw.as_ref()?;
    let mut head = Writer(Vec::with_capacity(128 * stamp.inputs.len() + 256));
    encode_head(
        &mut head,
        started_at_ns,
        &stamp.packages,
        folders,
        stamp.inputs.iter().map(|(file, _)| file).zip(&changed.now),
    );
    head.u64(stamp.outputs.len() as u64);
    let mut parts: Vec<std::borrow::Cow<'_, [u8]>> = vec![head.0.into()];
    for (i, (dir, _)) in stamp.outputs.iter().enumerate() {
        match patched.get(&i) {
            Some(state) => {
                let mut out = Writer(Vec::with_capacity(256));
                encode_output(&mut out, dir, state);
                parts.push(out.0.into());
            }
            None => parts.push(raw[ranges[i].clone()].into()),
        }
    }
    let mut tail = Writer(Vec::new());
    encode_tasks(&mut tail, &tasks_of(summary));
    parts.push(tail.0.into());
    let mut hasher = blake3::Hasher::new();
    for part in &parts {
        hasher.update(part);
    }
    let checksum = hasher.finalize();
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let written = (|| -> std::io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp)?;
        for part in &parts {
            file.write_all(part)?;
        }
        file.write_all(checksum.as_bytes())
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
        return None;
    }
    Some(PendingStamp {
        tmp,
        path: path.to_owned(),
    })
}

/// A stamp written beside its place, put there by [`PendingStamp::commit`]
/// once what it vouches for is (the delta path's snapshot index): the
/// encoding and the write run beside that, the rename after it. Dropped
/// without a commit, it is removed.
pub(crate) struct PendingStamp {
    tmp: PathBuf,
    path: PathBuf,
}

impl PendingStamp {
    pub(crate) fn commit(mut self) {
        let tmp = std::mem::take(&mut self.tmp);
        if crate::replace::replace(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

impl Drop for PendingStamp {
    fn drop(&mut self) {
        if !self.tmp.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

fn tasks_of(summary: &Summary) -> BTreeMap<String, u64> {
    summary
        .by_kind
        .iter()
        .map(|(kind, counts)| (kind.to_string(), counts.executed + counts.cached))
        .collect()
}

/// Forgets the stamp (before a build that may change outputs).
pub fn forget(path: &Path) {
    let _ = std::fs::remove_file(path);
}

fn stat(file: &Path) -> Option<FileStat> {
    let meta = std::fs::metadata(file).ok()?;
    Some(FileStat {
        mtime_ns: meta.mtime() as i128 * 1_000_000_000 + meta.mtime_nsec() as i128,
        size: meta.len(),
        inode: meta.ino(),
    })
}

const MAGIC: &[u8; 8] = b"n2dstamp";
const FORMAT: u32 = 4;

fn encode(stamp: &Stamp) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(
        128 * (stamp.inputs.len() + stamp.outputs.len()) + 64 * 1024,
    ));
    encode_head(
        &mut out,
        stamp.started_at_ns,
        &stamp.packages,
        stamp.folders.as_deref(),
        stamp.inputs.iter().map(|(file, stat)| (file, stat)),
    );
    out.u64(stamp.outputs.len() as u64);
    for (dir, state) in &stamp.outputs {
        encode_output(&mut out, dir, state);
    }
    encode_tasks(&mut out, &stamp.tasks);
    crate::binary::seal(out.0)
}

fn encode_head<'a>(
    out: &mut Writer,
    started_at_ns: i128,
    packages: &[String],
    folders: Option<&[WalkedFolder]>,
    inputs: impl ExactSizeIterator<Item = (&'a PathBuf, &'a FileStat)>,
) {
    out.0.extend_from_slice(MAGIC);
    out.u32(FORMAT);
    out.i128(started_at_ns);
    out.u64(packages.len() as u64);
    for package in packages {
        out.bytes(package.as_bytes());
    }
    // A count of all ones: no folders to vouch for the walk.
    match folders {
        None => out.u64(u64::MAX),
        Some(folders) => {
            out.u64(folders.len() as u64);
            for folder in folders {
                out.bytes(folder.path.as_bytes());
                out.i128(folder.mtime_ns.into());
                out.u64(folder.inode);
            }
        }
    }
    out.u64(inputs.len() as u64);
    for (file, stat) in inputs {
        out.bytes(file.as_os_str().as_bytes());
        out.i128(stat.mtime_ns);
        out.u64(stat.size);
        out.u64(stat.inode);
    }
}

fn encode_output(out: &mut Writer, dir: &Path, state: &FolderState) {
    out.bytes(dir.as_os_str().as_bytes());
    out.recorded(&state.manifest);
}

fn encode_tasks(out: &mut Writer, tasks: &BTreeMap<String, u64>) {
    out.u64(tasks.len() as u64);
    for (kind, count) in tasks {
        out.bytes(kind.as_bytes());
        out.u64(*count);
    }
}

/// Decodes a stamp; `None` for one damaged or of another format.
fn decode(bytes: Vec<u8>) -> Option<Stamp> {
    let mut input = crate::binary::headed(crate::binary::checked_body(&bytes)?, MAGIC, FORMAT)?;
    let started_at_ns = input.i128()?;
    let packages = (0..input.count()?)
        .map(|_| input.string())
        .collect::<Option<_>>()?;
    let folders = match input.u64()? {
        u64::MAX => None,
        count => Some(
            (0..count)
                .map(|_| {
                    Some(WalkedFolder {
                        path: input.string()?,
                        mtime_ns: input.i128()?.try_into().ok()?,
                        inode: input.u64()?,
                    })
                })
                .collect::<Option<Vec<_>>>()?,
        ),
    };
    let inputs = (0..input.count()?)
        .map(|_| {
            let file = input.path()?;
            let stat = FileStat {
                mtime_ns: input.i128()?,
                size: input.u64()?,
                inode: input.u64()?,
            };
            Some((file, stat))
        })
        .collect::<Option<Vec<_>>>()?;
    let end = bytes.len() - 32;
    let mut ranges = Vec::new();
    let outputs = (0..input.count()?)
        .map(|_| {
            let start = end - input.0.len();
            let dir = input.path()?;
            let manifest = input.recorded()?;
            ranges.push(start..end - input.0.len());
            Some((dir, FolderState { manifest }))
        })
        .collect::<Option<_>>()?;
    let tasks = (0..input.count()?)
        .map(|_| Some((input.string()?, input.u64()?)))
        .collect::<Option<_>>()?;
    if !input.0.is_empty() {
        return None;
    }
    Some(Stamp {
        started_at_ns,
        packages,
        folders,
        inputs,
        outputs,
        tasks,
        raw: Some((bytes, ranges)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::materialize::RecordedStat;

    fn stamp() -> Stamp {
        let stat = RecordedStat {
            size: 3,
            mtime_ns: -5,
            inode: 7,
            mode: 0o644,
        };
        Stamp {
            started_at_ns: 1_795_590_241_879_162_411,
            packages: vec!["web/n2d.toml".into(), "n2d.toml".into()],
            folders: Some(vec![WalkedFolder {
                path: "web".into(),
                mtime_ns: -3,
                inode: 12,
            }]),
            inputs: vec![(
                PathBuf::from("/ws/web/n2d.toml"),
                FileStat {
                    mtime_ns: 42,
                    size: 10,
                    inode: 11,
                },
            )],
            outputs: vec![(
                PathBuf::from("/ws/n2d-out/dev/json"),
                FolderState {
                    manifest: RecordedStat {
                        mode: u32::MAX,
                        ..stat
                    },
                },
            )],
            tasks: [("render".to_string(), 4)].into_iter().collect(),
            raw: None,
        }
    }

    #[test]
    fn a_stamp_decodes_to_itself_and_a_damaged_one_to_nothing() {
        let original = stamp();
        let bytes = encode(&original);
        let decoded = decode(bytes.clone()).unwrap();
        assert_eq!(decoded.started_at_ns, original.started_at_ns);
        assert_eq!(decoded.packages, original.packages);
        assert_eq!(decoded.folders, original.folders);
        assert_eq!(decoded.inputs, original.inputs);
        assert_eq!(decoded.outputs, original.outputs);
        assert_eq!(decoded.tasks, original.tasks);
        for at in [0, 9, bytes.len() / 2, bytes.len() - 1] {
            let mut damaged = bytes.clone();
            damaged[at] ^= 1;
            assert!(decode(damaged).is_none(), "byte {at} flipped");
        }
        assert!(decode(bytes[..bytes.len() - 1].to_vec()).is_none());
        assert!(decode(Vec::new()).is_none());
    }

    #[test]
    fn a_patched_stamp_has_the_new_stats_and_keeps_the_other_folders() {
        let mut original = stamp();
        let kept = original.outputs[0].1.clone();
        original
            .outputs
            .push((PathBuf::from("/ws/n2d-out/prod/json"), kept.clone()));
        let decoded = decode(encode(&original)).unwrap();
        let patched = FolderState {
            manifest: RecordedStat {
                size: 9,
                mtime_ns: 8,
                inode: 7,
                mode: u32::MAX,
            },
        };
        let now = FileStat {
            mtime_ns: 43,
            size: 12,
            inode: 11,
        };
        let changed = Changed {
            stamp: decoded,
            changed: vec![0],
            now: vec![now],
        };
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("stamp");
        let mut summary = Summary::default();
        summary.by_kind.insert("render", KindCounts::default());
        let folders = vec![WalkedFolder {
            path: String::new(),
            mtime_ns: 5,
            inode: 6,
        }];
        record_patched(
            &path,
            99,
            Some(&folders),
            &changed,
            &BTreeMap::from([(1, patched.clone())]),
            &summary,
        )
        .expect("written beside its place")
        .commit();
        let written = decode(std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(written.started_at_ns, 99);
        assert_eq!(written.packages, original.packages);
        assert_eq!(
            written.folders,
            Some(folders),
            "the walk of the delta build's session"
        );
        assert_eq!(
            written.inputs,
            vec![(PathBuf::from("/ws/web/n2d.toml"), now)]
        );
        assert_eq!(written.outputs[0], original.outputs[0]);
        assert_eq!(
            written.outputs[1],
            (PathBuf::from("/ws/n2d-out/prod/json"), patched)
        );
        assert_eq!(
            written.tasks,
            [("render".to_string(), 0)].into_iter().collect()
        );
    }

    /// A workspace with one package whose folders are an hour old, and the
    /// stamp of a build that walked them.
    fn walked_workspace(dir: &Path) -> (PathBuf, Vec<WalkedFolder>) {
        let root = dir.join("ws");
        std::fs::create_dir_all(root.join("web/static")).unwrap();
        let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        let file = std::fs::File::create(root.join("web/n2d.toml")).unwrap();
        file.set_modified(old).unwrap();
        let folders = ["", "web", "web/static"]
            .into_iter()
            .map(|path| {
                let folder = std::fs::File::open(root.join(path)).unwrap();
                folder.set_modified(old).unwrap();
                let meta = folder.metadata().unwrap();
                WalkedFolder {
                    path: path.to_string(),
                    mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
                    inode: meta.ino(),
                }
            })
            .collect();
        (root, folders)
    }

    #[test]
    fn before_discovery_the_check_holds_only_while_every_walked_folder_does() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, folders) = walked_workspace(tmp.path());
        let path = tmp.path().join("stamp");
        let file = root.join("web/n2d.toml");
        let record = |folders: Option<&[WalkedFolder]>| {
            record(
                &path,
                now_ns(),
                &["web/n2d.toml".to_string()],
                folders,
                std::slice::from_ref(&file),
                &[],
                &Summary::default(),
            )
        };
        let before_discovery = || check(&path, Discovered::NotYet { root: &root });
        record(Some(&folders));
        assert!(matches!(before_discovery(), Check::Unchanged(..)));

        // A new entry anywhere moves that folder's mtime: discovery must run.
        std::fs::create_dir(root.join("web/static/new")).unwrap();
        assert!(matches!(before_discovery(), Check::Unknown));
        // Discovery itself compares the module files it found.
        assert!(matches!(
            check(&path, Discovered::Packages(&["web/n2d.toml".to_string()])),
            Check::Unchanged(..)
        ));
        assert!(matches!(
            check(&path, Discovered::Packages(&[])),
            Check::Unknown
        ));

        // A stamp whose walk had a listing too recent to vouch for.
        std::fs::remove_dir(root.join("web/static/new")).unwrap();
        let (_, folders) = walked_workspace(tmp.path());
        record(Some(&folders));
        assert!(matches!(before_discovery(), Check::Unchanged(..)));
        record(None);
        assert!(matches!(before_discovery(), Check::Unknown));

        // A changed module file in unchanged folders: the delta path's
        // start, before discovery too.
        record(Some(&folders));
        std::fs::write(&file, "# edited").unwrap();
        assert!(matches!(before_discovery(), Check::Changed(_)));
    }
}
