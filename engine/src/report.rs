//! What a run produced: a [`Report`] with one [`Outcome`] per task, the
//! counts of a [`Summary`], notices, and access to outputs.
//!
//! Outputs are loaded lazily: a cached task's bytes stay in the CAS until
//! someone asks for them (a dependant that runs, or [`Report::output`]). A
//! blob found damaged or missing then is rebuilt by running its task again
//! (`RunState::load_output`), so a damaged cache costs time, never a wrong
//! or failed build.
use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use n2d_cache::{Cache, Digest, Notice};

use crate::graph::{Node, TaskId};
use crate::TaskError;

/// What happened to one task.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub kind: &'static str,
    pub status: Status,
    /// The digest of the output; `None` for failed and skipped tasks.
    pub output: Option<Digest>,
    /// The task's key; `None` when it was not computed (skipped, imported,
    /// failed before its inputs were hashed).
    pub key: Option<Digest>,
    /// Wall time spent on the task, cache lookup included.
    pub duration: Duration,
    /// The content digest (blake3) of each declared file, by stable name,
    /// as the output was computed from; empty when a file changed while it
    /// was read (the output is then of no one version of it), and for tasks
    /// that did not run or come from the cache.
    pub files: Vec<(String, Digest)>,
}

#[derive(Clone, Debug)]
pub enum Status {
    /// The task ran, for this reason.
    Executed(Reason),
    /// The output was found in the cache.
    Cached,
    Failed(Arc<TaskError>),
    Skipped(SkipReason),
    /// An output imported from an earlier run ([`Graph::import`](crate::Graph::import)):
    /// neither run nor counted.
    Imported,
}

/// Why a task ran.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// No earlier build of this task identity is recorded.
    NoPreviousRecord,
    /// The task is [`Caching::AlwaysRun`](crate::Caching::AlwaysRun).
    AlwaysRuns,
    /// The key was known but its output was gone from the cache.
    OutputLost,
    /// An input file changed while it was read: the task ran but is not
    /// cached, so that the next build looks again.
    UnstableInput { file: String },
    /// The key differs from the last build's; what differs (empty when the
    /// difference is not in anything recorded, e.g. a new key encoding).
    Changed(Vec<Change>),
}

/// One difference between a task's inputs now and in its last build.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    Version {
        before: u32,
        after: u32,
    },
    /// A named value changed, appeared or disappeared.
    Value(String),
    /// An input file (by stable name) changed, appeared or disappeared.
    File(String),
    /// The output of this dependency (by identity) changed, or the
    /// dependency is new.
    Dependency(String),
    /// A dependency of the last build is no longer one.
    DependencyRemoved(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SkipReason {
    /// A task it depends on (transitively) failed: the identity of that task.
    DependencyFailed(String),
    /// The build stopped starting tasks after a failure (no keep-going).
    BuildStopped,
}

/// Counts of one task kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KindCounts {
    pub executed: u64,
    pub cached: u64,
    pub failed: u64,
    pub skipped: u64,
}

/// Counts of a run, in total and by kind; [`Summary::merge`] adds the
/// summary of another stage.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub executed: u64,
    pub cached: u64,
    pub failed: u64,
    pub skipped: u64,
    pub by_kind: BTreeMap<&'static str, KindCounts>,
}

/// The result of [`Engine::run`](crate::Engine::run).
pub struct Report {
    pub(crate) state: Arc<RunState>,
    pub(crate) summary: Summary,
    pub(crate) notices: Vec<Notice>,
}

impl Report {
    /// True when no task failed.
    pub fn ok(&self) -> bool {
        self.summary.ok()
    }

    pub fn summary(&self) -> &Summary {
        &self.summary
    }

    /// Repairs the cache made and problems it met, each to show once.
    pub fn notices(&self) -> &[Notice] {
        &self.notices
    }

    pub fn len(&self) -> usize {
        self.state.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.state.nodes.is_empty()
    }

    pub fn ids(&self) -> impl ExactSizeIterator<Item = TaskId> {
        (0..self.state.nodes.len() as u32).map(TaskId)
    }

    pub fn outcome(&self, id: TaskId) -> &Outcome {
        self.state.outcome(id)
    }

    pub fn identity(&self, id: TaskId) -> &str {
        self.state.nodes[id.index()].work.identity()
    }

    pub fn kind(&self, id: TaskId) -> &'static str {
        self.state.nodes[id.index()].work.kind()
    }

    /// Tasks that ran, in graph order.
    pub fn executed(&self) -> impl Iterator<Item = TaskId> + '_ {
        self.ids()
            .filter(|&id| matches!(self.outcome(id).status, Status::Executed(_)))
    }

    /// Tasks that failed, with their errors, in graph order.
    pub fn failures(&self) -> impl Iterator<Item = (TaskId, &TaskError)> + '_ {
        self.ids().filter_map(|id| match &self.outcome(id).status {
            Status::Failed(error) => Some((id, &**error)),
            _ => None,
        })
    }

    /// The output bytes of a task, loaded from the cache if it was cached
    /// (and rebuilt if the cache lost them).
    pub fn output(&self, id: TaskId) -> Result<Arc<[u8]>, TaskError> {
        self.state.load_output(id)
    }

    /// One plain sentence saying why an executed task ran, following changed
    /// dependencies back to the files and values that changed
    /// (`//web/n2d.toml changed`). `None` for tasks that did not run.
    pub fn explain(&self, id: TaskId) -> Option<String> {
        let Status::Executed(reason) = &self.outcome(id).status else {
            return None;
        };
        Some(match reason {
            Reason::Changed(changes) if !changes.is_empty() => {
                let mut causes = Vec::new();
                let mut visited = std::collections::HashSet::new();
                self.root_causes(id, changes, &mut causes, &mut visited);
                causes.join(", ")
            }
            other => other.to_string(),
        })
    }

    fn root_causes(
        &self,
        id: TaskId,
        changes: &[Change],
        causes: &mut Vec<String>,
        visited: &mut std::collections::HashSet<TaskId>,
    ) {
        if !visited.insert(id) {
            return;
        }
        for change in changes {
            let dependency = match change {
                Change::Dependency(identity) => self.state.nodes[id.index()]
                    .dependencies
                    .iter()
                    .copied()
                    .find(|&dep| self.identity(dep) == identity),
                _ => None,
            };
            let deeper = dependency.and_then(|dep| match &self.outcome(dep).status {
                Status::Executed(Reason::Changed(inner)) if !inner.is_empty() => Some((dep, inner)),
                _ => None,
            });
            match deeper {
                Some((dep, inner)) => self.root_causes(dep, inner, causes, visited),
                None => {
                    let text = change.to_string();
                    if !causes.contains(&text) {
                        causes.push(text);
                    }
                }
            }
        }
    }
}

impl Summary {
    pub fn ok(&self) -> bool {
        self.failed == 0
    }

    /// Adds the counts of `other` (another stage of the same build).
    pub fn merge(&mut self, other: &Summary) {
        self.executed += other.executed;
        self.cached += other.cached;
        self.failed += other.failed;
        self.skipped += other.skipped;
        for (kind, counts) in &other.by_kind {
            let mine = self.by_kind.entry(kind).or_default();
            mine.executed += counts.executed;
            mine.cached += counts.cached;
            mine.failed += counts.failed;
            mine.skipped += counts.skipped;
        }
    }

    pub(crate) fn count(&mut self, outcome: &Outcome) {
        let kind = self.by_kind.entry(outcome.kind).or_default();
        match outcome.status {
            Status::Executed(_) => {
                self.executed += 1;
                kind.executed += 1;
            }
            Status::Cached => {
                self.cached += 1;
                kind.cached += 1;
            }
            Status::Failed(_) => {
                self.failed += 1;
                kind.failed += 1;
            }
            Status::Skipped(_) => {
                self.skipped += 1;
                kind.skipped += 1;
            }
            Status::Imported => {}
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::NoPreviousRecord => f.write_str("no earlier build of it is recorded"),
            Reason::AlwaysRuns => f.write_str("it runs in every build"),
            Reason::OutputLost => f.write_str("its cached output was lost"),
            Reason::UnstableInput { file } => write!(f, "{file} changed while it was read"),
            Reason::Changed(changes) if changes.is_empty() => f.write_str("its key changed"),
            Reason::Changed(changes) => {
                for (index, change) in changes.iter().enumerate() {
                    if index > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{change}")?;
                }
                Ok(())
            }
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Version { before, after } => {
                write!(f, "task version changed ({before} → {after})")
            }
            Change::Value(name) => write!(f, "input `{name}` changed"),
            Change::File(name) => write!(f, "{name} changed"),
            Change::Dependency(identity) => write!(f, "output of {identity} changed"),
            Change::DependencyRemoved(identity) => write!(f, "no longer depends on {identity}"),
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::DependencyFailed(identity) => {
                write!(f, "skipped because {identity} failed")
            }
            SkipReason::BuildStopped => {
                f.write_str("skipped because the build stopped after a failure")
            }
        }
    }
}

/// The graph of a run with its outcomes and loaded outputs; shared by the
/// [`Report`] and by graphs of later stages that import from it.
pub(crate) struct RunState {
    pub(crate) nodes: Vec<Node>,
    // Invariant: after the run, every cell is set.
    pub(crate) outcomes: Vec<OnceLock<Outcome>>,
    /// Output bytes, filled when a task runs or when they are first loaded.
    pub(crate) outputs: Vec<Mutex<Option<Arc<[u8]>>>>,
    pub(crate) cache: Arc<Cache>,
}

impl RunState {
    pub(crate) fn outcome(&self, id: TaskId) -> &Outcome {
        self.outcomes[id.index()]
            .get()
            .expect("every task has an outcome once the run is over")
    }
}
