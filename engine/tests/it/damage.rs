//! A damaged cache costs time, never a wrong or failed build: damaged CAS
//! entries are detected, dropped, reported once and rebuilt; an action
//! record without its blob is a miss; deleted or garbled database files give
//! an empty cache.
use std::collections::BTreeMap;

use n2d_cache::Cache;
use n2d_engine::{Reason, Status};

use crate::support::{graph_of, outputs, set, World};

const CHAIN: &[(&str, &[&str], &str)] = &[("a", &[], "1"), ("b", &["a"], "1"), ("c", &[], "1")];

fn clean_outputs(world: &World) -> BTreeMap<String, Vec<u8>> {
    let (report, _) = world.run(graph_of(world, CHAIN).0);
    outputs(&report)
}

fn output_digest_of(world: &World, name: &str) -> n2d_cache::Digest {
    let (graph, ids) = graph_of(world, CHAIN);
    let (report, _) = world.run(graph);
    report.outcome(ids[name]).output.unwrap()
}

fn open_cache(world: &World) -> Cache {
    Cache::open(&world.cache_dir(), |_| panic!("cache lock held")).unwrap()
}

#[test]
fn a_damaged_entry_is_dropped_reported_once_and_rebuilt() {
    let world = World::new();
    let expected = clean_outputs(&world);
    world.take_log();
    let a = output_digest_of(&world, "a");
    open_cache(&world)
        .overwrite_blob_for_tests(&a, b"not what a produced")
        .unwrap();

    // b must run, so it loads a's output: the damage is found there.
    let changed: Vec<(&str, &[&str], &str)> =
        vec![("a", &[], "1"), ("b", &["a"], "2"), ("c", &[], "1")];
    let (report, executed) = world.run(graph_of(&world, &changed).0);
    assert!(report.ok());
    assert_eq!(
        executed,
        set(["a", "b"]),
        "a is rebuilt by running it again"
    );
    let damaged: Vec<_> = report
        .notices()
        .iter()
        .filter(|n| n.message.contains("damaged"))
        .collect();
    assert_eq!(damaged.len(), 1, "{:?}", report.notices());
    assert!(outputs(&report)["b"].starts_with(b"b[v=2;](a[v=1;]"));
    drop(report);

    // Back to the first inputs: every key is known, and a's blob is whole.
    let (report, executed) = world.run(graph_of(&world, CHAIN).0);
    assert_eq!(executed, set([]));
    assert!(report.notices().is_empty(), "{:?}", report.notices());
    assert_eq!(outputs(&report), expected);
}

#[test]
fn a_damaged_entry_is_never_served_to_the_caller() {
    let world = World::new();
    let expected = clean_outputs(&world);
    let c = output_digest_of(&world, "c");
    open_cache(&world)
        .overwrite_blob_for_tests(&c, b"garbage")
        .unwrap();
    world.take_log();
    let (report, executed) = world.run(graph_of(&world, CHAIN).0);
    assert_eq!(executed, set([]));
    assert_eq!(outputs(&report), expected);
    assert_eq!(
        world.take_log(),
        set(["c"]),
        "reading c's output rebuilt it"
    );
}

#[test]
fn an_action_record_whose_blob_is_gone_is_a_miss() {
    let world = World::new();
    clean_outputs(&world);
    let a = output_digest_of(&world, "a");
    open_cache(&world).remove_blob_for_tests(&a).unwrap();
    world.take_log();
    let (graph, ids) = graph_of(&world, CHAIN);
    let (report, executed) = world.run(graph);
    assert!(report.ok());
    assert_eq!(
        executed,
        set(["a"]),
        "b keeps its key: a's output is the same"
    );
    assert!(matches!(
        report.outcome(ids["a"]).status,
        Status::Executed(Reason::OutputLost)
    ));
}

fn damage_database_files(world: &World, damage: impl Fn(&std::path::Path)) {
    for entry in walk(&world.cache_dir().join("db")) {
        damage(&entry);
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}

#[test]
fn deleted_database_files_give_an_empty_cache_and_a_correct_build() {
    let world = World::new();
    let expected = clean_outputs(&world);
    world.take_log();
    std::fs::remove_dir_all(world.cache_dir().join("db")).unwrap();
    let (report, executed) = world.run(graph_of(&world, CHAIN).0);
    assert!(report.ok());
    assert_eq!(executed, set(["a", "b", "c"]));
    assert_eq!(outputs(&report), expected);
}

#[test]
fn garbled_database_files_still_give_a_correct_build() {
    let world = World::new();
    let expected = clean_outputs(&world);
    damage_database_files(&world, |path| {
        let len = std::fs::metadata(path).unwrap().len() as usize;
        let garbage: Vec<u8> = (0..len.max(64)).map(|i| (i * 7 + 3) as u8).collect();
        std::fs::write(path, garbage).unwrap();
    });
    let (report, _) = world.run(graph_of(&world, CHAIN).0);
    assert!(report.ok());
    assert_eq!(outputs(&report), expected);
    drop(report);
    let (report, executed) = world.run(graph_of(&world, CHAIN).0);
    assert_eq!(executed, set([]), "the repaired cache works again");
    assert_eq!(outputs(&report), expected);
}

#[test]
fn truncated_database_files_still_give_a_correct_build() {
    let world = World::new();
    let expected = clean_outputs(&world);
    damage_database_files(&world, |path| {
        let len = std::fs::metadata(path).unwrap().len();
        std::fs::File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_len(len / 2)
            .unwrap();
    });
    let (report, _) = world.run(graph_of(&world, CHAIN).0);
    assert!(report.ok());
    assert_eq!(outputs(&report), expected);
}
