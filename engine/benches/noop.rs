//! A no-op run of a 20,000-task graph: every task is cached, so this
//! measures the engine's per-task overhead on the cached path (input
//! declaration, key hashing, one identity lookup, one blob-existence check,
//! scheduling), which bounds how close a no-op build gets to stat-ing files.
//!
//! Shape: 1,000 "parse" roots, each fanning out to 9 "resolve" tasks, each
//! followed by one "render" task; 1,000 tasks at the bottom gather 10
//! renders each; plus the roots: ~20,000 tasks in all.
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use n2d_cache::Cache;
use n2d_engine::{
    Engine, EngineConfig, Graph, Inputs, OnFailure, RunContext, RunError, Task, TaskId,
};

struct Bench {
    kind: &'static str,
    identity: String,
    value: String,
}

impl Task for Bench {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn version(&self) -> u32 {
        1
    }

    fn identity(&self) -> &str {
        &self.identity
    }

    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("value", self.value.as_bytes());
    }

    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let mut output = self.value.clone().into_bytes();
        for dependency in context.dependencies() {
            output.extend_from_slice(&blake3::hash(dependency).as_bytes()[..8]);
        }
        Ok(output)
    }
}

fn task(kind: &'static str, identity: String) -> Bench {
    Bench {
        kind,
        value: format!("{{\"service\":\"{identity}\",\"replicas\":1}}"),
        identity,
    }
}

fn graph() -> Graph {
    let mut graph = Graph::new();
    for package in 0..1000 {
        let parse = graph.add(task("parse", format!("parse //p{package}")), &[]);
        let mut renders: Vec<TaskId> = Vec::new();
        for service in 0..9 {
            let resolve = graph.add(
                task("resolve", format!("resolve //p{package}:s{service}")),
                &[parse],
            );
            renders.push(graph.add(
                task("render", format!("render //p{package}:s{service} (json)")),
                &[resolve],
            ));
        }
        renders.push(parse);
        graph.add(
            task("assemble", format!("assemble //p{package} (json)")),
            &renders,
        );
    }
    graph
}

fn open(dir: &std::path::Path) -> Engine {
    let cache = Arc::new(Cache::open(dir, |_| panic!("cache lock held")).unwrap());
    let config = EngineConfig {
        jobs: 2,
        on_failure: OnFailure::Stop,
    };
    Engine::new(cache, config).unwrap()
}

fn noop(criterion: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let engine = open(dir.path());
    let cold = engine.run(graph()).unwrap();
    assert_eq!(cold.summary().executed as usize, cold.len());
    let tasks = cold.len();
    drop(cold);

    drop(engine);
    let engine = open(dir.path());
    let mut group = criterion.benchmark_group("engine");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(5));
    group.bench_function(format!("noop run of {tasks} tasks"), |bencher| {
        bencher.iter_batched(
            graph,
            |graph| {
                let report = engine.run(graph).unwrap();
                assert_eq!(report.summary().executed, 0);
                report
            },
            criterion::BatchSize::PerIteration,
        )
    });
    drop(engine);
    // What a new `n2d build` process pays: open the cache (sled and the
    // head index), then the no-op run.
    group.bench_function(
        format!("open the cache and noop run of {tasks} tasks"),
        |bencher| {
            bencher.iter_batched(
                graph,
                |graph| {
                    let engine = open(dir.path());
                    let report = engine.run(graph).unwrap();
                    assert_eq!(report.summary().executed, 0);
                },
                criterion::BatchSize::PerIteration,
            )
        },
    );
    group.bench_function(format!("building the graph of {tasks} tasks"), |bencher| {
        bencher.iter(graph)
    });
    group.finish();
}

criterion_group!(benches, noop);
criterion_main!(benches);
