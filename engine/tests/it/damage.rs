//! A damaged cache costs time, never a wrong or failed build: damaged CAS
//! entries are detected, dropped, reported once and rebuilt; an action
//! record without its blob is a miss; deleted or garbled database files give
//! an empty cache.
use std::collections::BTreeMap;

use n2d_cache::Cache;
use n2d_engine::{Reason, Status};

use crate::support::{graph_of, outputs, set, World};

const CHAIN: &[(&str, &[&str], &str)] = &[("a", &[], "1"), ("b", &["a"], "1"), ("c", &[], "1")];
/// `CHAIN` with b changed: b runs again, so it needs a's bytes.
const CHANGED_B: &[(&str, &[&str], &str)] = &[("a", &[], "1"), ("b", &["a"], "2"), ("c", &[], "1")];

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
    let (report, executed) = world.run(graph_of(&world, CHANGED_B).0);
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
    let a_first = output_digest_of(&world, "a");
    // a's identity record now points at another key; only the action record
    // of the first key is left to find a's first output.
    let edited: Vec<(&str, &[&str], &str)> =
        vec![("a", &[], "2"), ("b", &["a"], "1"), ("c", &[], "1")];
    world.run(graph_of(&world, &edited).0);
    open_cache(&world).remove_blob_for_tests(&a_first).unwrap();
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
        Status::Executed(Reason::Changed(_))
    ));
}

#[test]
fn a_lost_blob_behind_an_identity_record_is_rebuilt_when_needed() {
    let world = World::new();
    let expected = clean_outputs(&world);
    let c = output_digest_of(&world, "c");
    open_cache(&world).remove_blob_for_tests(&c).unwrap();
    world.take_log();
    let (report, executed) = world.run(graph_of(&world, CHAIN).0);
    assert_eq!(executed, set([]));
    assert_eq!(outputs(&report), expected);
    assert_eq!(
        world.take_log(),
        set(["c"]),
        "reading c's output rebuilt it"
    );
    drop(report);
    let (report, _) = world.run(graph_of(&world, CHAIN).0);
    assert_eq!(outputs(&report), expected);
    assert_eq!(world.take_log(), set([]), "the rebuilt blob was stored");
}

#[test]
fn a_lost_output_that_cannot_be_rebuilt_fails_once_then_runs_again() {
    let world = World::new();
    let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let graph = |b_value: &str| {
        let runs = runs.clone();
        let mut graph = n2d_engine::Graph::new();
        // Not deterministic: each run gives other bytes.
        let a = graph.add(
            world.toy("a").behaviour(move |_| {
                let run = runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                Ok(format!("run {run}").into_bytes())
            }),
            &[],
        );
        let b = graph.add(world.toy("b").value("v", b_value), &[a]);
        (graph, a, b)
    };
    let (first, a, _) = graph("1");
    let (report, _) = world.run(first);
    let lost = report.outcome(a).output.unwrap();
    drop(report);
    open_cache(&world).remove_blob_for_tests(&lost).unwrap();

    let (second, _, b) = graph("2");
    let (report, _) = world.run(second);
    let (failed, error) = report.failures().next().unwrap();
    assert_eq!(failed, b);
    assert_eq!(
        error.to_string(),
        "cannot get the output of a",
        "{:?}",
        std::error::Error::source(error).map(|e| e.to_string())
    );
    drop(report);
    world.take_log();

    let (third, _, _) = graph("2");
    let (report, executed) = world.run(third);
    assert!(report.ok());
    assert_eq!(
        executed,
        set(["a", "b"]),
        "a's records were forgotten, so it runs"
    );
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

/// Builds, damages every pack with `damage`, and builds again with b
/// changed, so that b needs a's bytes from the packs: the second run's
/// report, and what a clean build of it gives.
fn rebuild_after_damaging_packs(
    world: &World,
    damage: impl Fn(&std::path::Path),
) -> (n2d_engine::Report, BTreeMap<String, Vec<u8>>) {
    clean_outputs(world);
    let expected = {
        let other = World::new();
        let (report, _) = other.run(graph_of(&other, CHANGED_B).0);
        outputs(&report)
    };
    let packs = walk(&world.cache_dir().join("packs"));
    assert!(!packs.is_empty(), "the build stored blobs in packs");
    for pack in packs {
        damage(&pack);
    }
    world.take_log();
    let (report, executed) = world.run(graph_of(world, CHANGED_B).0);
    assert!(report.ok());
    assert_eq!(executed, set(["a", "b"]), "a is rebuilt for b");
    assert_eq!(outputs(&report), expected);
    (report, expected)
}

#[test]
fn garbled_packs_are_never_served_and_the_build_is_correct() {
    let world = World::new();
    let (report, _) = rebuild_after_damaging_packs(&world, |path| {
        let mut bytes = std::fs::read(path).unwrap();
        for byte in bytes.iter_mut().skip(32) {
            *byte ^= 0x5a;
        }
        std::fs::write(path, bytes).unwrap();
    });
    assert!(
        report
            .notices()
            .iter()
            .any(|n| n.message.contains("damaged")),
        "{:?}",
        report.notices()
    );
}

#[test]
fn deleted_packs_still_give_a_correct_build() {
    let world = World::new();
    let (report, expected) =
        rebuild_after_damaging_packs(&world, |path| std::fs::remove_file(path).unwrap());
    drop(report);
    // Reading c's output above rebuilt it (its blob was gone too).
    world.take_log();
    let (report, executed) = world.run(graph_of(&world, CHANGED_B).0);
    assert_eq!(executed, set([]), "the repaired cache works again");
    assert_eq!(outputs(&report), expected);
}
