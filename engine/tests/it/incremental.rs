//! What re-runs: nothing on a second run, exactly the changed task and its
//! dependants after an edit, and nothing below a task whose output did not
//! change (early cutoff).
use n2d_engine::{Caching, Change, Graph, Reason, Status};

use crate::support::{graph_of, outputs, set, World};

const DIAMOND: &[(&str, &[&str], &str)] = &[
    ("a", &[], "1"),
    ("b", &[], "1"),
    ("c", &["a", "b"], "1"),
    ("d", &["c"], "1"),
    ("e", &[], "1"),
];

fn with_value(name: &str, value: &str) -> Vec<(&'static str, &'static [&'static str], String)> {
    DIAMOND
        .iter()
        .map(|(n, deps, v)| {
            (
                *n,
                *deps,
                if *n == name {
                    value.to_owned()
                } else {
                    v.to_string()
                },
            )
        })
        .collect()
}

fn run_spec(
    world: &World,
    spec: &[(&'static str, &'static [&'static str], String)],
) -> (n2d_engine::Report, std::collections::BTreeSet<String>) {
    let spec: Vec<(&str, &[&str], &str)> =
        spec.iter().map(|(n, d, v)| (*n, *d, v.as_str())).collect();
    world.run(graph_of(world, &spec).0)
}

#[test]
fn second_run_executes_nothing() {
    let world = World::new();
    let (first, executed) = world.run(graph_of(&world, DIAMOND).0);
    assert_eq!(executed, set(["a", "b", "c", "d", "e"]));
    assert_eq!(first.summary().executed, 5);
    let first_outputs = outputs(&first);
    drop(first);

    let (second, executed) = world.run(graph_of(&world, DIAMOND).0);
    assert_eq!(executed, set([]));
    assert_eq!(second.summary().cached, 5);
    assert_eq!(second.summary().by_kind["toy"].cached, 5);
    assert_eq!(outputs(&second), first_outputs);
}

#[test]
fn changing_one_input_reexecutes_that_task_and_its_dependants() {
    let world = World::new();
    world.run(graph_of(&world, DIAMOND).0);
    let (report, executed) = run_spec(&world, &with_value("a", "2"));
    assert_eq!(executed, set(["a", "c", "d"]));
    let d = report.ids().find(|&id| report.identity(id) == "d").unwrap();
    assert_eq!(
        &*report.output(d).unwrap(),
        b"d[v=1;](c[v=1;](a[v=2;](),b[v=1;](),),)"
    );
    assert_eq!(report.explain(d).as_deref(), Some("input `v` changed"));
    let c = report.ids().find(|&id| report.identity(id) == "c").unwrap();
    assert!(matches!(
        &report.outcome(c).status,
        Status::Executed(Reason::Changed(changes)) if changes == &[Change::Dependency("a".into())]
    ));
}

#[test]
fn a_task_whose_output_did_not_change_stops_propagation() {
    let world = World::new();
    let graph = |value: &str| {
        let mut graph = Graph::new();
        let p = graph.add(
            world
                .toy("p")
                .value("v", value)
                .behaviour(|_| Ok(b"same".to_vec())),
            &[],
        );
        let q = graph.add(world.toy("q"), &[p]);
        graph.add(world.toy("r"), &[q]);
        graph
    };
    assert_eq!(world.run(graph("1")).1, set(["p", "q", "r"]));
    assert_eq!(world.run(graph("2")).1, set(["p"]));
}

#[test]
fn a_new_task_version_reexecutes_it_and_says_so() {
    let world = World::new();
    world.run(graph_of(&world, &[("a", &[], "1")]).0);
    let mut graph = Graph::new();
    let mut toy = world.toy("a").value("v", "1");
    toy.version = 2;
    let a = graph.add(toy, &[]);
    let (report, executed) = world.run(graph);
    assert_eq!(executed, set(["a"]));
    assert_eq!(
        report.outcome(a).status.clone().reason(),
        Some(Reason::Changed(vec![Change::Version {
            before: 1,
            after: 2
        }]))
    );
}

#[test]
fn explain_follows_changed_dependencies_to_the_file_that_changed() {
    let world = World::new();
    let file = world.write("web/n2d.toml", "port = 1");
    let build = || {
        let mut graph = Graph::new();
        let parse = graph.add(
            world
                .toy("parse //web")
                .kind("parse")
                .file("//web/n2d.toml", &file),
            &[],
        );
        let eval = graph.add(world.toy("eval //web").kind("eval"), &[parse]);
        let render = graph.add(world.toy("render //web:api (k8s)").kind("render"), &[eval]);
        (graph, render)
    };
    let (graph, render) = build();
    let (report, _) = world.run(graph);
    assert_eq!(
        report.explain(render).as_deref(),
        Some("no earlier build of it is recorded")
    );
    drop(report);

    world.write("web/n2d.toml", "port = 2");
    let (graph, render) = build();
    let (report, executed) = world.run(graph);
    assert_eq!(
        executed,
        set(["parse //web", "eval //web", "render //web:api (k8s)"])
    );
    assert_eq!(
        report.explain(render).as_deref(),
        Some("//web/n2d.toml changed")
    );
    assert_eq!(report.summary().by_kind["render"].executed, 1);
}

#[test]
fn always_run_tasks_run_every_time_and_still_cut_off() {
    let world = World::new();
    let graph = || {
        let mut graph = Graph::new();
        let mut check = world
            .toy("check")
            .behaviour(|_| Ok(b"world is fine".to_vec()));
        check.caching = Caching::AlwaysRun;
        let check = graph.add(check, &[]);
        graph.add(world.toy("after"), &[check]);
        graph
    };
    assert_eq!(world.run(graph()).1, set(["check", "after"]));
    let (report, executed) = world.run(graph());
    assert_eq!(executed, set(["check"]));
    assert_eq!(report.summary().executed, 1);
    assert_eq!(report.summary().cached, 1);
}

trait StatusReason {
    fn reason(self) -> Option<Reason>;
}

impl StatusReason for Status {
    fn reason(self) -> Option<Reason> {
        match self {
            Status::Executed(reason) => Some(reason),
            _ => None,
        }
    }
}
