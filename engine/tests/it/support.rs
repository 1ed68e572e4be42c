//! Toy tasks and a `World` (a temporary folder with a cache) that runs
//! graphs of them and records which ones executed.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use n2d_cache::Cache;
use n2d_engine::{
    Caching, Engine, EngineConfig, Graph, Inputs, OnFailure, Report, RunContext, RunError, Task,
    TaskId,
};

pub type Log = Arc<Mutex<Vec<String>>>;
pub type Behaviour = Arc<dyn Fn(&RunContext<'_>) -> Result<Vec<u8>, RunError> + Send + Sync>;

/// A task whose output is its name followed by its values, files and
/// dependency outputs, unless a behaviour says otherwise.
#[derive(Clone)]
pub struct Toy {
    pub name: String,
    pub kind: &'static str,
    pub version: u32,
    pub values: Vec<(String, Vec<u8>)>,
    pub files: Vec<(String, PathBuf)>,
    pub caching: Caching,
    pub frees_output: bool,
    pub behaviour: Option<Behaviour>,
    pub log: Log,
}

impl Toy {
    pub fn new(log: &Log, name: &str) -> Toy {
        Toy {
            name: name.to_owned(),
            kind: "toy",
            version: 1,
            values: Vec::new(),
            files: Vec::new(),
            caching: Caching::Cached,
            frees_output: false,
            behaviour: None,
            log: log.clone(),
        }
    }

    pub fn caching(mut self, caching: Caching) -> Toy {
        self.caching = caching;
        self
    }

    /// Lets the run free its output once its dependants are done.
    pub fn frees_output(mut self) -> Toy {
        self.frees_output = true;
        self
    }

    pub fn kind(mut self, kind: &'static str) -> Toy {
        self.kind = kind;
        self
    }

    pub fn value(mut self, name: &str, value: &str) -> Toy {
        self.values
            .push((name.to_owned(), value.as_bytes().to_vec()));
        self
    }

    pub fn file(mut self, name: &str, path: &Path) -> Toy {
        self.files.push((name.to_owned(), path.to_owned()));
        self
    }

    pub fn behaviour(
        mut self,
        behaviour: impl Fn(&RunContext<'_>) -> Result<Vec<u8>, RunError> + Send + Sync + 'static,
    ) -> Toy {
        self.behaviour = Some(Arc::new(behaviour));
        self
    }
}

impl Task for Toy {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn identity(&self) -> &str {
        &self.name
    }

    fn inputs(&self, inputs: &mut Inputs) {
        // The output names the task, so the name is an input: keys hold no
        // identity, and two tasks with equal inputs share one output.
        inputs.value("name", self.name.as_bytes());
        for (name, bytes) in &self.values {
            inputs.value(name.clone(), bytes);
        }
        for (name, path) in &self.files {
            inputs.file(name.clone(), path.clone());
        }
    }

    fn caching(&self) -> Caching {
        self.caching
    }

    fn frees_output(&self) -> bool {
        self.frees_output
    }

    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        self.log.lock().unwrap().push(self.name.clone());
        if let Some(behaviour) = &self.behaviour {
            return behaviour(context);
        }
        let mut output = format!("{}[", self.name);
        for (name, bytes) in &self.values {
            output.push_str(&format!("{name}={};", String::from_utf8_lossy(bytes)));
        }
        for (name, bytes) in context.files() {
            output.push_str(&format!("{name}:{};", String::from_utf8_lossy(bytes)));
        }
        output.push_str("](");
        for bytes in context.dependencies() {
            output.push_str(&String::from_utf8_lossy(bytes));
            output.push(',');
        }
        output.push(')');
        Ok(output.into_bytes())
    }
}

/// A temporary folder holding a cache, and the log of executions.
pub struct World {
    pub dir: tempfile::TempDir,
    pub log: Log,
}

impl World {
    pub fn new() -> World {
        World {
            dir: tempfile::tempdir().unwrap(),
            log: Log::default(),
        }
    }

    pub fn cache_dir(&self) -> PathBuf {
        self.dir.path().join("cache")
    }

    pub fn toy(&self, name: &str) -> Toy {
        Toy::new(&self.log, name)
    }

    pub fn engine(&self, jobs: usize, on_failure: OnFailure) -> Engine {
        let cache = Cache::open(&self.cache_dir(), |path| {
            panic!("a test still holds the cache lock {}", path.display())
        })
        .unwrap();
        Engine::new(Arc::new(cache), EngineConfig { jobs, on_failure }).unwrap()
    }

    /// Runs `graph` with a fresh engine (2 jobs, stop on failure) and
    /// returns the report and the set of tasks that executed.
    pub fn run(&self, graph: Graph) -> (Report, BTreeSet<String>) {
        self.run_with(graph, OnFailure::Stop)
    }

    pub fn run_with(&self, graph: Graph, on_failure: OnFailure) -> (Report, BTreeSet<String>) {
        let engine = self.engine(2, on_failure);
        let report = engine.run(graph).unwrap();
        (report, self.take_log())
    }

    pub fn take_log(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.log.lock().unwrap())
            .into_iter()
            .collect()
    }

    pub fn write(&self, relative: &str, content: &str) -> PathBuf {
        let path = self.dir.path().join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, content).unwrap();
        path
    }
}

/// A graph described as (name, dependencies, value) triples, in an order
/// where dependencies come first.
pub fn graph_of(
    world: &World,
    spec: &[(&str, &[&str], &str)],
) -> (Graph, BTreeMap<String, TaskId>) {
    let mut graph = Graph::new();
    let mut ids = BTreeMap::new();
    for (name, dependencies, value) in spec {
        let dependencies: Vec<TaskId> = dependencies.iter().map(|d| ids[*d]).collect();
        let id = graph.add(world.toy(name).value("v", value), &dependencies);
        ids.insert(name.to_string(), id);
    }
    (graph, ids)
}

/// Every task's output, by identity.
pub fn outputs(report: &Report) -> BTreeMap<String, Vec<u8>> {
    report
        .ids()
        .filter(|&id| report.outcome(id).output.is_some())
        .map(|id| {
            (
                report.identity(id).to_owned(),
                report.output(id).unwrap().to_vec(),
            )
        })
        .collect()
}

pub fn set<const N: usize>(names: [&str; N]) -> BTreeSet<String> {
    names.iter().map(|name| name.to_string()).collect()
}

/// Sets a file's mtime an hour back, out of the racy window, so that its
/// state is recorded.
pub fn age(path: &Path) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
}
