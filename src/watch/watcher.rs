//! The file watcher: a `notify` watcher on a set of folders, and the
//! debounced batches of relevant changes the loop builds from.
//!
//! Every folder is watched on its own (non-recursively) rather than the
//! root recursively, so that the output folder, the cache and ignored trees
//! (`target/`, `node_modules/`) cost no inotify watches and send no events.
//! The set is the workspace tree (walked at start, after lost events, and
//! below every folder that appears) plus the folder of every input outside
//! it; editors save by writing a new file and renaming it over the old one,
//! so it is folders that are watched, never single files.
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use notify::{RecursiveMode, Watcher as _};

use super::filter::PathFilter;
use super::signals::StopSignals;

/// A batch is built once no relevant event came for this long: editors
/// write a file several times per save.
const QUIET: Duration = Duration::from_millis(50);
/// A batch that began after a quiet spell, whose last event ended a save
/// (the file closed after writing, or renamed into place), is built once
/// nothing came for this long instead: a lone save does not wait `QUIET`.
/// A burst of saves still ends up in at most two batches: this one, and
/// the rest, which wait `QUIET` as before.
const SETTLE: Duration = Duration::from_millis(10);
/// ...but never later than this after its first event, so that a steady
/// stream of writes still gets built.
const MAX_DELAY: Duration = Duration::from_millis(500);
/// How often a wait for events checks for a stop signal.
const SIGNAL_POLL: Duration = Duration::from_millis(100);

/// What happened since the last build.
#[derive(Debug, Default)]
pub struct Batch {
    /// Relevant paths that changed, in order of first appearance.
    pub paths: Vec<PathBuf>,
    /// The watcher lost events (queue overflow, an error): what changed is
    /// unknown, so the build must look at everything and the watches are
    /// renewed.
    pub lost: Option<String>,
}

pub struct FolderWatcher {
    watcher: notify::RecommendedWatcher,
    events: Receiver<notify::Result<notify::Event>>,
    filter: PathFilter,
    /// Folders of the workspace tree.
    tree: BTreeSet<PathBuf>,
    /// Folders holding inputs outside the tree (or inside skipped folders).
    outside: BTreeSet<PathBuf>,
    /// Invariant: exactly `tree ∪ outside`, each watched once.
    watched: BTreeSet<PathBuf>,
    /// When the last relevant event came, to tell a save after a quiet
    /// spell from one in a burst.
    last_event: Option<Instant>,
}

/// What one event means to a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    /// Nothing relevant.
    Nothing,
    /// A relevant change, perhaps one write of several.
    Change,
    /// A relevant file closed after writing or renamed into place: a save
    /// is complete.
    SaveDone,
}

impl FolderWatcher {
    /// Watches the workspace tree; call before the first build so that no
    /// edit made during it is missed.
    pub fn new(filter: PathFilter) -> Result<FolderWatcher> {
        let (sender, events) = mpsc::channel();
        let watcher = notify::recommended_watcher(sender).context("starting the file watcher")?;
        let mut watcher = FolderWatcher {
            watcher,
            events,
            filter,
            tree: BTreeSet::new(),
            outside: BTreeSet::new(),
            watched: BTreeSet::new(),
            last_event: None,
        };
        watcher.rewalk_tree()?;
        Ok(watcher)
    }

    pub fn root(&self) -> &Path {
        self.filter.root()
    }

    /// Walks the workspace tree again: after lost events nothing is known
    /// about which folders appeared or went.
    pub fn rewalk_tree(&mut self) -> Result<()> {
        let mut tree = BTreeSet::new();
        walk(&self.filter, self.filter.root(), &mut tree);
        self.tree = tree;
        self.sync_watches()
    }

    /// After a build: watches the folders of its inputs that the tree does
    /// not cover (a `watch` path that is a folder is watched throughout).
    pub fn set_inputs(&mut self, inputs: &BTreeSet<PathBuf>) -> Result<()> {
        let mut outside = BTreeSet::new();
        for input in inputs {
            if self.filter.is_internal(input) {
                continue;
            }
            if input.is_dir() {
                walk_all(&self.filter, input, &mut outside);
            }
            // The nearest existing folder: an input that does not exist yet
            // (a `watch` path to be created) is seen when it appears.
            if let Some(folder) = input.ancestors().skip(1).find(|a| a.is_dir()) {
                outside.insert(folder.to_path_buf());
            }
        }
        outside.retain(|folder| !self.tree.contains(folder));
        self.outside = outside;
        self.sync_watches()
    }

    /// Waits for the next batch of relevant changes, or `None` when a stop
    /// signal arrived.
    pub fn next_batch(
        &mut self,
        inputs: &BTreeSet<PathBuf>,
        stop: &StopSignals,
    ) -> Result<Option<Batch>> {
        let mut batch = Batch::default();
        let mut first: Option<Instant> = None;
        let mut last = Instant::now();
        // Whether this batch began after a quiet spell, and whether its
        // last relevant event ended a save.
        let mut leading = false;
        let mut save_done = false;
        loop {
            if stop.requested() {
                return Ok(None);
            }
            let timeout = match first {
                None => SIGNAL_POLL,
                Some(first) => {
                    let quiet = if leading && save_done { SETTLE } else { QUIET };
                    let quiet_left = quiet.saturating_sub(last.elapsed());
                    let max_left = MAX_DELAY.saturating_sub(first.elapsed());
                    let left = quiet_left.min(max_left);
                    if left.is_zero() {
                        self.last_event = Some(last);
                        return Ok(Some(batch));
                    }
                    left.min(SIGNAL_POLL)
                }
            };
            match self.events.recv_timeout(timeout) {
                Ok(event) => {
                    let seen = self.absorb(event, inputs, &mut batch)?;
                    if seen == Seen::Nothing {
                        continue;
                    }
                    if seen == Seen::SaveDone && first.is_none() {
                        // A close with nothing written before it in this
                        // batch (a build reading with write access, a save
                        // of the same bytes already built).
                        continue;
                    }
                    let now = Instant::now();
                    if first.is_none() {
                        first = Some(now);
                        leading = self
                            .last_event
                            .is_none_or(|previous| now.duration_since(previous) >= QUIET);
                    }
                    save_done = seen == Seen::SaveDone;
                    last = now;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    bail!("the file watcher stopped unexpectedly")
                }
            }
        }
    }

    /// Adds one event to the batch and says what it meant.
    fn absorb(
        &mut self,
        event: notify::Result<notify::Event>,
        inputs: &BTreeSet<PathBuf>,
        batch: &mut Batch,
    ) -> Result<Seen> {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                batch.lost = Some(format!("the file watcher failed: {error}"));
                return Ok(Seen::Change);
            }
        };
        if event.need_rescan() {
            batch.lost = Some("the file watcher lost events".to_string());
            return Ok(Seen::Change);
        }
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        let ends_save = matches!(
            event.kind,
            notify::EventKind::Access(AccessKind::Close(AccessMode::Write))
                | notify::EventKind::Modify(ModifyKind::Name(RenameMode::To | RenameMode::Both))
        );
        if ends_save
            && matches!(event.kind, notify::EventKind::Access(_))
            && event
                .paths
                .iter()
                .any(|path| !self.filter.is_internal(path) && self.filter.is_relevant(path, inputs))
        {
            return Ok(Seen::SaveDone);
        }
        // Reading a file (the build itself reads every input) is no change.
        if matches!(
            event.kind,
            notify::EventKind::Access(_) | notify::EventKind::Other
        ) {
            return Ok(Seen::Nothing);
        }
        let mut relevant = false;
        for path in &event.paths {
            if self.filter.is_internal(path) {
                continue;
            }
            // A folder that appeared (created, or moved in) gets watched
            // with everything below it; a module file already inside it was
            // written before the watch existed and makes the batch relevant.
            let new_folder = path.starts_with(self.filter.root())
                && !self.watched.contains(path)
                && path.is_dir()
                && !self.filter.skips_dir(path);
            if new_folder {
                let mut found = BTreeSet::new();
                walk(&self.filter, path, &mut found);
                let holds_module_file = found.iter().any(|folder| {
                    std::fs::read_dir(folder).is_ok_and(|entries| {
                        entries
                            .flatten()
                            .any(|entry| self.filter.is_relevant(&entry.path(), inputs))
                    })
                });
                self.tree.extend(found);
                self.sync_watches()?;
                if holds_module_file {
                    push_unique(&mut batch.paths, path);
                    relevant = true;
                }
            }
            if self.filter.is_relevant(path, inputs) {
                push_unique(&mut batch.paths, path);
                relevant = true;
            }
            // A watched folder that went away: inotify dropped its watch.
            if self.watched.contains(path) && !path.exists() {
                self.tree.retain(|folder| !folder.starts_with(path));
                self.outside.retain(|folder| !folder.starts_with(path));
                self.sync_watches()?;
            }
        }
        Ok(match (relevant, ends_save) {
            (false, _) => Seen::Nothing,
            (true, false) => Seen::Change,
            (true, true) => Seen::SaveDone,
        })
    }

    /// Brings the notify watches in line with `tree ∪ outside`.
    fn sync_watches(&mut self) -> Result<()> {
        let wanted: BTreeSet<PathBuf> = self.tree.union(&self.outside).cloned().collect();
        for gone in self.watched.difference(&wanted) {
            // The folder may be gone already, taking its watch with it.
            let _ = self.watcher.unwatch(gone);
        }
        let mut watched = BTreeSet::new();
        for folder in wanted {
            if self.watched.contains(&folder) {
                watched.insert(folder);
                continue;
            }
            match self.watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(folder);
                }
                // Removed between the walk and now: nothing to watch.
                Err(notify::Error {
                    kind: notify::ErrorKind::PathNotFound,
                    ..
                }) => {}
                Err(error) if matches!(&error.kind, notify::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::NotFound) => {}
                Err(error) => {
                    return Err(anyhow!("{error}")).with_context(|| {
                        format!(
                            "watching {} (on Linux, raise fs.inotify.max_user_watches if the limit is reached)",
                            folder.display()
                        )
                    })
                }
            }
        }
        self.watched = watched;
        Ok(())
    }
}

fn push_unique(paths: &mut Vec<PathBuf>, path: &Path) {
    if !paths.iter().any(|p| p == path) {
        paths.push(path.to_path_buf());
    }
}

/// `dir` and every folder below it that the filter does not skip.
fn walk(filter: &PathFilter, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    if dir != filter.root() && filter.skips_dir(dir) {
        return;
    }
    visit(dir, out, &|sub| !filter.skips_dir(sub));
}

/// `dir` and every folder below it except n2d's own: for `watch` paths,
/// which the user named explicitly.
fn walk_all(filter: &PathFilter, dir: &Path, out: &mut BTreeSet<PathBuf>) {
    visit(dir, out, &|sub| !filter.is_internal(sub));
}

fn visit(dir: &Path, out: &mut BTreeSet<PathBuf>, descend: &dyn Fn(&Path) -> bool) {
    if !out.insert(dir.to_path_buf()) {
        return;
    }
    // A folder that cannot be read is not watched; it holds no package that
    // discovery could read either.
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        // file_type does not follow symlinks: a linked folder is not walked,
        // as discovery does not walk it.
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            let path = entry.path();
            if descend(&path) {
                visit(&path, out, descend);
            }
        }
    }
}
