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
use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use n2d_engine::{KindCounts, Summary};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::materialize;

#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    /// When the build that wrote the stamp started: a file modified after
    /// that (even while the build ran) has a later mtime and is never served.
    started_at_ns: i128,
    /// Module files found by discovery, workspace-relative.
    packages: Vec<String>,
    inputs: Vec<(PathBuf, FileStat)>,
    /// Target folder → the assembled digest it holds.
    outputs: Vec<(PathBuf, String)>,
    /// Tasks per kind in the build that wrote the stamp: reported as cached.
    tasks: BTreeMap<String, u64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FileStat {
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
    cache_dir.join("stamps").join(format!("{key}.json"))
}

/// The identity of the running executable: part of every stamp key.
pub fn executable_identity() -> String {
    std::env::current_exe()
        .and_then(std::fs::metadata)
        .map(|m| format!("{}:{}:{}:{}", m.len(), m.mtime(), m.mtime_nsec(), m.ino()))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The outputs and counts of the last build, when nothing changed since.
pub fn check(path: &Path, packages: &[String]) -> Option<(Vec<PathBuf>, Vec<PathBuf>, Summary)> {
    let stamp: Stamp = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    if stamp.packages != packages {
        return None;
    }
    let racy_limit = stamp.started_at_ns - 2_000_000_000;
    let inputs_same = stamp.inputs.par_iter().all(|(file, recorded)| {
        stat(file).is_some_and(|now| now == *recorded && now.mtime_ns < racy_limit)
    });
    if !inputs_same {
        return None;
    }
    let outputs_same = stamp
        .outputs
        .par_iter()
        .all(|(dir, assembled)| materialize::is_in_sync(dir, assembled));
    if !outputs_same {
        return None;
    }
    let mut summary = Summary::default();
    for (kind, count) in &stamp.tasks {
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
    let inputs = stamp.inputs.into_iter().map(|(file, _)| file).collect();
    let outputs = stamp.outputs.into_iter().map(|(dir, _)| dir).collect();
    Some((outputs, inputs, summary))
}

/// The current time, as stamps count it.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// Records a successful build that started at `started_at_ns`. Failing to
/// write a stamp only costs the next build its fast path, so errors are
/// ignored.
pub fn record(
    path: &Path,
    started_at_ns: i128,
    packages: &[String],
    inputs: &[PathBuf],
    outputs: &[(PathBuf, String)],
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
    let tasks = summary
        .by_kind
        .iter()
        .map(|(kind, counts)| (kind.to_string(), counts.executed + counts.cached))
        .collect();
    let stamp = Stamp {
        started_at_ns,
        packages: packages.to_vec(),
        inputs,
        outputs: outputs.to_vec(),
        tasks,
    };
    let Some(dir) = path.parent() else { return };
    if std::fs::create_dir_all(dir).is_err() {
        return;
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec(&stamp).expect("a stamp serializes");
    if std::fs::write(&tmp, bytes).is_ok() && std::fs::rename(&tmp, path).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
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
