//! What a task is to the engine: the [`Task`] trait, the [`Inputs`] a task
//! declares (its key is made of them), and the [`RunContext`] it runs with.
//!
//! A task is pure in the engine's eyes: its output is a function of its kind,
//! version, declared inputs and the outputs of its dependencies. Anything
//! else it reads (the clock, the environment, undeclared files) makes the
//! cache wrong; a task with side effects that must run every time says so
//! with [`Caching::AlwaysRun`].
use std::path::PathBuf;
use std::sync::Arc;

use n2d_cache::Digest;

/// The error a task's `run` returns: any error type, so that callers keep
/// their own typed errors (and can downcast them from a report).
pub type RunError = Box<dyn std::error::Error + Send + Sync>;

/// Whether the engine may serve a task from the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Caching {
    /// The output is a function of the key: served from the cache when the
    /// key is known.
    Cached,
    /// The task acts on the world (launching, checking what runs): it runs in
    /// every build. Its output digest still gives early cutoff to dependants.
    AlwaysRun,
}

/// One node of the graph. Implementations are plain structs holding what the
/// task works on; dependencies are declared when adding it to a
/// [`Graph`](crate::Graph).
pub trait Task: Send + Sync + 'static {
    /// Lower-case kind name (`parse`, `render`…), for reports and keys.
    fn kind(&self) -> &'static str;

    /// Bump when the output for the same inputs changes (new code): every
    /// key of this task changes with it.
    fn version(&self) -> u32;

    /// A name for this task that is stable across builds and unique in its
    /// graph (e.g. `render //web:api (k8s)`): used by `--explain`, progress
    /// and the record of the task's last key. Never part of the key.
    fn identity(&self) -> &str;

    /// Declares the named values and files the output depends on.
    fn inputs(&self, inputs: &mut Inputs);

    fn caching(&self) -> Caching {
        Caching::Cached
    }

    /// Whether the run may free this task's output from memory once every
    /// dependant in its graph has finished: for outputs that only their
    /// dependants read, so that a large build's memory is used again
    /// rather than grown. A report asked for a freed output reads it from
    /// the cache, or runs the task again if the cache does not hold it. By
    /// default an output stays in memory with the report.
    fn frees_output(&self) -> bool {
        false
    }

    /// Computes the output. Reads its dependencies' outputs and its declared
    /// files from `context`, nothing else.
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError>;
}

/// The inputs a task declares: named values (canonical bytes, hashed at
/// once) and files (a stable name for the key, a path to read).
///
/// Names are unique within a task: each kind of input is sorted by name for
/// the key, so the order of declaration does not matter.
#[derive(Default)]
pub struct Inputs {
    pub(crate) values: Vec<(String, Digest)>,
    pub(crate) files: Vec<FileInput>,
}

pub(crate) struct FileInput {
    /// Stable across machines and folder locations (workspace-relative):
    /// this is what goes into the key.
    pub(crate) name: String,
    /// Where to read the file; may be absolute, never part of the key.
    pub(crate) path: PathBuf,
}

impl Inputs {
    /// A named value, given as canonical bytes: the same value must always
    /// give the same bytes (no map iteration order, no absolute paths unless
    /// they are meant to be part of the key).
    pub fn value(&mut self, name: impl Into<String>, bytes: &[u8]) {
        self.values.push((name.into(), Digest::of(bytes)));
    }

    /// A named value whose digest the caller already has (the output digest
    /// of a task of an earlier stage, a hash kept elsewhere).
    pub fn value_digest(&mut self, name: impl Into<String>, digest: Digest) {
        self.values.push((name.into(), digest));
    }

    /// A file, read by the engine: its content hash goes into the key under
    /// `stable_name`, and its bytes reach `run` through
    /// [`RunContext::file`].
    pub fn file(&mut self, stable_name: impl Into<String>, path: impl Into<PathBuf>) {
        self.files.push(FileInput {
            name: stable_name.into(),
            path: path.into(),
        });
    }
}

/// What a running task may read.
pub struct RunContext<'a> {
    pub(crate) dependencies: &'a [Arc<[u8]>],
    // Invariant: sorted by name, names unique.
    pub(crate) files: &'a [(String, Arc<[u8]>)],
}

impl<'a> RunContext<'a> {
    /// The output of the `index`-th dependency, in declaration order.
    /// Panics when `index` is out of range (the task is then failed).
    pub fn dependency(&self, index: usize) -> &'a [u8] {
        &self.dependencies[index]
    }

    /// Outputs of all dependencies, in declaration order.
    pub fn dependencies(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + 'a {
        self.dependencies.iter().map(|bytes| &bytes[..])
    }

    /// The bytes of a declared file, by its stable name. The engine read
    /// them while hashing: the task must not read the file again.
    pub fn file(&self, stable_name: &str) -> Option<&'a [u8]> {
        let files = self.files;
        files
            .binary_search_by(|(name, _)| name.as_str().cmp(stable_name))
            .ok()
            .map(|index| &files[index].1[..])
    }

    /// All declared files with their stable names, sorted by name.
    pub fn files(&self) -> impl ExactSizeIterator<Item = (&'a str, &'a [u8])> + 'a {
        self.files
            .iter()
            .map(|(name, bytes)| (name.as_str(), &bytes[..]))
    }
}
