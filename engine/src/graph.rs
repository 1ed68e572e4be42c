//! [`Graph`]: the tasks of one run and their dependencies, in petgraph.
//!
//! A node is either a task to run or an output imported from an earlier
//! run's [`Report`] (staged builds: the second stage depends on outputs of the
//! first without running those tasks again). Edges go from a dependency to
//! its dependant; each node also keeps its dependencies in declaration order,
//! which is the order in which [`RunContext`](crate::RunContext) hands their
//! outputs over and in which their digests enter the key.
use std::sync::Arc;

use petgraph::graph::{DiGraph, NodeIndex};

use crate::report::{Report, RunState};
use crate::task::Task;
use crate::EngineError;
use n2d_cache::Digest;

/// A node of a [`Graph`], valid for that graph and the [`Report`] of its run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskId(pub(crate) u32);

impl TaskId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A DAG of tasks, consumed by [`Engine::run`](crate::Engine::run).
#[derive(Default)]
pub struct Graph {
    pub(crate) dag: DiGraph<(), ()>,
    // Invariant: nodes[i] is the node of TaskId(i) and of NodeIndex i.
    pub(crate) nodes: Vec<Node>,
    /// Some edge goes from a task to one added before it (only
    /// `add_dependency` can add one): the graph may have a cycle.
    pub(crate) unordered: bool,
}

pub(crate) struct Node {
    pub(crate) work: Work,
    /// In declaration order; may repeat a dependency.
    pub(crate) dependencies: Vec<TaskId>,
    pub(crate) dependants: Vec<TaskId>,
}

pub(crate) enum Work {
    Run(Arc<dyn Task>),
    /// The output of a task of an earlier run; loaded from that run's state.
    Imported {
        kind: &'static str,
        identity: String,
        output: Digest,
        source: Arc<RunState>,
        source_id: TaskId,
    },
}

impl Graph {
    pub fn new() -> Graph {
        Graph::default()
    }

    /// A graph with room for `tasks` tasks and `edges` dependency edges,
    /// for a caller that knows about how many it adds (no regrowing of a
    /// large stage's tables while the workers wait).
    pub fn with_capacity(tasks: usize, edges: usize) -> Graph {
        Graph {
            dag: DiGraph::with_capacity(tasks, edges),
            nodes: Vec::with_capacity(tasks),
            unordered: false,
        }
    }

    /// Adds a task that depends on `dependencies` (already in the graph), in
    /// this order.
    pub fn add(&mut self, task: impl Task, dependencies: &[TaskId]) -> TaskId {
        self.add_shared(Arc::new(task), dependencies)
    }

    /// Like [`Graph::add`], for a task behind an `Arc`.
    pub fn add_shared(&mut self, task: Arc<dyn Task>, dependencies: &[TaskId]) -> TaskId {
        let id = self.push(Work::Run(task));
        for &dependency in dependencies {
            self.add_dependency(id, dependency);
        }
        id
    }

    /// Makes `dependant` depend on `dependency` too (after the dependencies
    /// it has). May create a cycle, which [`Engine::run`](crate::Engine::run)
    /// rejects naming the tasks in it.
    pub fn add_dependency(&mut self, dependant: TaskId, dependency: TaskId) {
        self.unordered |= dependency >= dependant;
        self.nodes[dependant.index()].dependencies.push(dependency);
        self.nodes[dependency.index()].dependants.push(dependant);
        self.dag.add_edge(
            NodeIndex::new(dependency.index()),
            NodeIndex::new(dependant.index()),
            (),
        );
    }

    /// Imports the output of task `id` of an earlier run, so that tasks of
    /// this graph can depend on it. It does not run again; its bytes are
    /// loaded from `report` (or the cache) only if a dependant runs. `None`
    /// when that task has no output (it failed or was skipped).
    pub fn import(&mut self, report: &Report, id: TaskId) -> Option<TaskId> {
        let outcome = report.outcome(id);
        let output = outcome.output?;
        Some(self.push(Work::Imported {
            kind: outcome.kind,
            identity: report.identity(id).to_owned(),
            output,
            source: report.state.clone(),
            source_id: id,
        }))
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn ids(&self) -> impl ExactSizeIterator<Item = TaskId> {
        (0..self.nodes.len() as u32).map(TaskId)
    }

    pub fn kind(&self, id: TaskId) -> &'static str {
        self.nodes[id.index()].work.kind()
    }

    pub fn identity(&self, id: TaskId) -> &str {
        self.nodes[id.index()].work.identity()
    }

    /// Dependencies of `id` in declaration order.
    pub fn dependencies(&self, id: TaskId) -> &[TaskId] {
        &self.nodes[id.index()].dependencies
    }

    /// Tasks that depend on `id`.
    pub fn dependants(&self, id: TaskId) -> &[TaskId] {
        &self.nodes[id.index()].dependants
    }

    fn push(&mut self, work: Work) -> TaskId {
        let index = self.dag.add_node(());
        debug_assert_eq!(index.index(), self.nodes.len());
        self.nodes.push(Node {
            work,
            dependencies: Vec::new(),
            dependants: Vec::new(),
        });
        TaskId(index.index() as u32)
    }

    /// Rejects cycles (naming the tasks of one) and identities used twice
    /// (their records would overwrite each other).
    pub(crate) fn validate(&self) -> Result<(), EngineError> {
        // Edges that all go from earlier tasks to later ones make no cycle:
        // the sort is only needed otherwise (a stage of a large build has
        // 20,000 tasks, and this runs before any of them).
        if self.unordered && petgraph::algo::toposort(&self.dag, None).is_err() {
            let cycle = petgraph::algo::tarjan_scc(&self.dag)
                .into_iter()
                .find(|component| {
                    component.len() > 1
                        || self.nodes[component[0].index()]
                            .dependencies
                            .contains(&TaskId(component[0].index() as u32))
                })
                .unwrap_or_default();
            let mut tasks: Vec<String> = cycle
                .iter()
                .map(|index| self.nodes[index.index()].work.identity().to_owned())
                .collect();
            tasks.sort();
            return Err(EngineError::Cycle { tasks });
        }
        let mut seen = std::collections::HashSet::with_capacity(self.nodes.len());
        for node in &self.nodes {
            if let Work::Run(task) = &node.work {
                if !seen.insert(task.identity()) {
                    return Err(EngineError::DuplicateIdentity {
                        identity: task.identity().to_owned(),
                    });
                }
            }
        }
        Ok(())
    }
}

impl Work {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Work::Run(task) => task.kind(),
            Work::Imported { kind, .. } => kind,
        }
    }

    pub(crate) fn identity(&self) -> &str {
        match self {
            Work::Run(task) => task.identity(),
            Work::Imported { identity, .. } => identity,
        }
    }
}
