//! Random DAGs and random edits: after every edit, an incremental build
//! gives exactly the outputs of a clean build, and a repeated build
//! executes nothing.
use std::collections::BTreeMap;

use n2d_engine::{Graph, TaskId};
use proptest::prelude::*;

use crate::support::{set, World};

#[derive(Clone, Debug)]
struct Node {
    dependencies: Vec<usize>,
    value: u8,
    /// Output depends only on the parity of the value: edits that keep it
    /// exercise early cutoff.
    parity_only: bool,
}

fn dag() -> impl Strategy<Value = Vec<Node>> {
    (2usize..10).prop_flat_map(|count| {
        (0..count)
            .map(|index| {
                (
                    proptest::collection::vec(0..index.max(1), 0..=index.min(3)),
                    any::<u8>(),
                    any::<bool>(),
                )
                    .prop_map(move |(dependencies, value, parity_only)| {
                        let mut dependencies: Vec<usize> =
                            if index == 0 { Vec::new() } else { dependencies };
                        dependencies.dedup();
                        Node {
                            dependencies,
                            value,
                            parity_only,
                        }
                    })
            })
            .collect::<Vec<_>>()
    })
}

fn graph(world: &World, nodes: &[Node]) -> Graph {
    let mut graph = Graph::new();
    let mut ids: Vec<TaskId> = Vec::new();
    for (index, node) in nodes.iter().enumerate() {
        let name = format!("n{index}");
        let mut toy = world.toy(&name).value("v", &node.value.to_string());
        if node.parity_only {
            let label = format!("{name}:{}", node.value % 2);
            toy = toy.behaviour(move |context| {
                let mut output = label.clone().into_bytes();
                for dependency in context.dependencies() {
                    output.extend_from_slice(dependency);
                }
                Ok(output)
            });
        }
        let dependencies: Vec<TaskId> = node.dependencies.iter().map(|&d| ids[d]).collect();
        ids.push(graph.add(toy, &dependencies));
    }
    graph
}

fn outputs(world: &World, nodes: &[Node]) -> BTreeMap<String, Vec<u8>> {
    let (report, _) = world.run(graph(world, nodes));
    assert!(report.ok());
    crate::support::outputs(&report)
}

/// A modest number of cases by default; CI's slow run (`N2D_SLOW_TESTS=1`)
/// explores more.
fn cases() -> u32 {
    if std::env::var_os("N2D_SLOW_TESTS").is_some_and(|v| v == "1") {
        256
    } else {
        24
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn incremental_outputs_equal_clean_outputs(
        mut nodes in dag(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        let incremental = World::new();
        outputs(&incremental, &nodes);
        for (index, value) in edits {
            let index = index.index(nodes.len());
            nodes[index].value = value;
            let clean = World::new();
            prop_assert_eq!(outputs(&incremental, &nodes), outputs(&clean, &nodes));
        }
        incremental.take_log();
        let (_, executed) = incremental.run(graph(&incremental, &nodes));
        prop_assert_eq!(executed, set([]));
    }
}
