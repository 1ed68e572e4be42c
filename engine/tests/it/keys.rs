//! Keys depend on content and stable names only: moving the files' folder
//! or changing environment variables changes nothing.
use n2d_engine::{Graph, Report};

use crate::support::{set, World};

fn graph(world: &World, root: &std::path::Path) -> Graph {
    let mut graph = Graph::new();
    let parse = graph.add(
        world
            .toy("parse")
            .file("pkg/n2d.toml", &root.join("pkg/n2d.toml")),
        &[],
    );
    graph.add(world.toy("render").value("target", "json"), &[parse]);
    graph
}

fn keys(report: &Report) -> Vec<(String, n2d_cache::Digest)> {
    report
        .ids()
        .map(|id| {
            (
                report.identity(id).to_owned(),
                report.outcome(id).key.unwrap(),
            )
        })
        .collect()
}

#[test]
fn moving_the_folder_keeps_every_key() {
    let world = World::new();
    world.write("one/pkg/n2d.toml", "x = 1");
    world.write("two/deeper/pkg/n2d.toml", "x = 1");
    let (first, executed) = world.run(graph(&world, &world.dir.path().join("one")));
    assert_eq!(executed, set(["parse", "render"]));
    let first_keys = keys(&first);
    drop(first);
    let (moved, executed) = world.run(graph(&world, &world.dir.path().join("two/deeper")));
    assert_eq!(executed, set([]));
    assert_eq!(keys(&moved), first_keys);
}

#[test]
fn keys_are_the_same_in_another_cache_and_with_other_environment_variables() {
    let here = World::new();
    let there = World::new();
    here.write("pkg/n2d.toml", "x = 1");
    there.write("pkg/n2d.toml", "x = 1");
    let (first, _) = here.run(graph(&here, here.dir.path()));
    let first_keys = keys(&first);
    drop(first);
    // Environment changes only for this process and a variable no one
    // else reads; the engine must not look at any.
    std::env::set_var("N2D_ENGINE_TEST_NOISE", "changed");
    let (second, executed) = there.run(graph(&there, there.dir.path()));
    assert_eq!(executed, set(["parse", "render"]));
    assert_eq!(keys(&second), first_keys);
}
