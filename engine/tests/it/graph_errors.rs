//! Graphs that cannot run: cycles (named), identities used twice; and a
//! task that declares one input twice fails.
use n2d_engine::{EngineError, Graph, OnFailure, TaskError};

use crate::support::World;

#[test]
fn a_cycle_is_rejected_naming_its_tasks() {
    let world = World::new();
    let mut graph = Graph::new();
    let outside = graph.add(world.toy("outside"), &[]);
    let a = graph.add(world.toy("a"), &[outside]);
    let b = graph.add(world.toy("b"), &[a]);
    graph.add_dependency(a, b);
    let error = world.engine(1, OnFailure::Stop).run(graph).err().unwrap();
    assert!(matches!(&error, EngineError::Cycle { tasks } if tasks == &["a", "b"]));
    assert_eq!(error.to_string(), "dependency cycle between a, b");
}

#[test]
fn two_tasks_with_one_identity_are_rejected() {
    let world = World::new();
    let mut graph = Graph::new();
    graph.add(world.toy("twin"), &[]);
    graph.add(world.toy("twin").value("v", "other"), &[]);
    let error = world.engine(1, OnFailure::Stop).run(graph).err().unwrap();
    assert_eq!(error.to_string(), "two tasks have the identity `twin`");
}

#[test]
fn an_input_declared_twice_fails_the_task() {
    let world = World::new();
    let mut graph = Graph::new();
    graph.add(world.toy("a").value("v", "1").value("v", "2"), &[]);
    let (report, _) = world.run(graph);
    let (_, error) = report.failures().next().unwrap();
    assert!(matches!(error, TaskError::DuplicateInput { name } if name == "v"));
}
