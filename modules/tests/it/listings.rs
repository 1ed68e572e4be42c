//! Discovery's listings cache (`<cache>/discovery`): a folder whose stat is
//! the one recorded is not read again, and whatever changes a folder's
//! entries is seen, as a walk without the cache sees it.
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use n2d_modules::{Format, Workspace};
use proptest::prelude::*;

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn folders(root: &Path) -> Vec<PathBuf> {
    let mut all = vec![root.to_owned()];
    let mut at = 0;
    while at < all.len() {
        for entry in fs::read_dir(&all[at]).unwrap() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() && entry.file_name() != ".n2d" {
                all.push(entry.path());
            }
        }
        at += 1;
    }
    all
}

fn set_mtime(dir: &Path, time: SystemTime) {
    fs::File::open(dir).unwrap().set_modified(time).unwrap();
}

/// Every folder's mtime `seconds` in the past: old enough to be trusted.
fn age(root: &Path, seconds: u64) {
    let time = SystemTime::now() - Duration::from_secs(seconds);
    for dir in folders(root) {
        set_mtime(&dir, time);
    }
}

fn packages(workspace: &Workspace) -> Vec<(String, Format)> {
    workspace
        .packages
        .iter()
        .map(|p| (p.package.clone(), p.format))
        .collect()
}

/// What discovery finds, or the error it gives: a folder with two module
/// files is an error with the cache as without it.
fn outcome(root: &Path) -> Result<Vec<(String, Format)>, String> {
    Workspace::discover(root)
        .map(|workspace| packages(&workspace))
        .map_err(|error| error.to_string())
}

/// What a walk without the cache finds.
fn uncached(root: &Path) -> Vec<(String, Format)> {
    uncached_outcome(root).unwrap()
}

fn uncached_outcome(root: &Path) -> Result<Vec<(String, Format)>, String> {
    let cache = root.join(".n2d/discovery");
    let kept = fs::read(&cache).ok();
    let _ = fs::remove_file(&cache);
    let found = outcome(root);
    match kept {
        Some(bytes) => fs::write(&cache, bytes).unwrap(),
        None => {
            let _ = fs::remove_file(&cache);
        }
    }
    found
}

fn workspace() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "n2d.workspace.toml", "");
    fs::create_dir_all(root.join(".n2d")).unwrap();
    write(root, "a/n2d.toml", "");
    write(root, "b/deep/n2d.json", "{}");
    dir
}

#[test]
fn a_folder_whose_stat_is_unchanged_is_not_read_again() {
    let dir = workspace();
    let root = dir.path();
    age(root, 60);
    let first = Workspace::discover(root).unwrap();
    assert!(
        root.join(".n2d/discovery").is_file(),
        "the cache is written"
    );
    // A package appears in `a`, but `a` keeps its recorded mtime, as a
    // file system that did not move it would: the recorded listing is
    // taken, so the new package is not seen. (No real file system does
    // this; it shows that the folder was not read.)
    let old = fs::metadata(root.join("a")).unwrap().modified().unwrap();
    write(root, "a/sub/n2d.toml", "");
    set_mtime(&root.join("a"), old);
    assert_eq!(
        packages(&Workspace::discover(root).unwrap()),
        packages(&first)
    );
    // The mtime a real file system gives it: read again, seen.
    set_mtime(&root.join("a"), SystemTime::now());
    let now = packages(&Workspace::discover(root).unwrap());
    assert!(
        now.contains(&("a/sub".to_string(), Format::Toml)),
        "{now:?}"
    );
    assert_eq!(now, uncached(root));
}

#[test]
fn a_folder_changed_just_before_the_walk_is_read_every_time() {
    let dir = workspace();
    let root = dir.path();
    // Recent mtimes: a change within the same clock tick would not move
    // them, so their listings are not trusted.
    Workspace::discover(root).unwrap();
    let old = fs::metadata(root.join("a")).unwrap().modified().unwrap();
    write(root, "a/sub/n2d.toml", "");
    set_mtime(&root.join("a"), old);
    let now = packages(&Workspace::discover(root).unwrap());
    assert!(
        now.contains(&("a/sub".to_string(), Format::Toml)),
        "{now:?}"
    );
}

#[test]
fn added_removed_renamed_and_nested_packages_are_seen() {
    let dir = workspace();
    let root = dir.path();
    let check = |what: &str| {
        let found = packages(&Workspace::discover(root).unwrap());
        assert_eq!(found, uncached(root), "after {what}");
        age(root, 60);
        let again = packages(&Workspace::discover(root).unwrap());
        assert_eq!(again, found, "after {what}, from the cache");
        found
    };
    age(root, 60);
    check("the first walk");
    write(root, "c/n2d.toml", "");
    assert!(check("an added package").contains(&("c".to_string(), Format::Toml)));
    fs::remove_file(root.join("a/n2d.toml")).unwrap();
    assert!(!check("a removed module file").iter().any(|(p, _)| p == "a"));
    fs::rename(root.join("c/n2d.toml"), root.join("c/n2d.json")).unwrap();
    assert!(check("a renamed module file").contains(&("c".to_string(), Format::Json)));
    write(root, "b/n2d.workspace.toml", "");
    assert!(!check("a nested workspace")
        .iter()
        .any(|(p, _)| p.starts_with('b')));
    fs::remove_dir_all(root.join("b")).unwrap();
    check("a removed folder");
}

#[test]
fn a_damaged_cache_is_no_cache() {
    let dir = workspace();
    let root = dir.path();
    age(root, 60);
    Workspace::discover(root).unwrap();
    let cache = root.join(".n2d/discovery");
    let mut bytes = fs::read(&cache).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&cache, bytes).unwrap();
    write(root, "z/n2d.toml", "");
    age(root, 60);
    let found = packages(&Workspace::discover(root).unwrap());
    assert!(
        found.contains(&("z".to_string(), Format::Toml)),
        "{found:?}"
    );
}

#[derive(Clone, Debug)]
enum Op {
    AddPackage(usize, usize),
    RemovePackage(usize, usize),
    Rename(usize, usize),
    Nest(usize),
    Unnest(usize),
    RemoveFolder(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..4usize, 0..3usize).prop_map(|(a, b)| Op::AddPackage(a, b)),
        (0..4usize, 0..3usize).prop_map(|(a, b)| Op::RemovePackage(a, b)),
        (0..4usize, 0..3usize).prop_map(|(a, b)| Op::Rename(a, b)),
        (0..4usize).prop_map(Op::Nest),
        (0..4usize).prop_map(Op::Unnest),
        (0..4usize).prop_map(Op::RemoveFolder),
    ]
}

/// Applies `ops` one by one, with every folder's mtime old enough to be
/// trusted (a changed folder gets a new one, as a real file system gives
/// it), and checks after each that discovery with the cache finds what a
/// walk without it finds, or fails as it fails.
fn check_against_fresh_walks(ops: &[Op]) {
    let dir = workspace();
    let root = dir.path();
    let base = SystemTime::now() - Duration::from_secs(100_000);
    age(root, 100_000);
    Workspace::discover(root).unwrap();
    for (step, op) in ops.iter().enumerate() {
        let before = SystemTime::now() - Duration::from_secs(1);
        let folder = |a: usize, b: usize| format!("p{a}/q{b}");
        match op {
            Op::AddPackage(a, b) => write(root, &format!("{}/n2d.toml", folder(*a, *b)), ""),
            Op::RemovePackage(a, b) => {
                let _ = fs::remove_file(root.join(folder(*a, *b)).join("n2d.toml"));
                let _ = fs::remove_file(root.join(folder(*a, *b)).join("n2d.json"));
            }
            Op::Rename(a, b) => {
                let _ = fs::rename(
                    root.join(folder(*a, *b)).join("n2d.toml"),
                    root.join(folder(*a, *b)).join("n2d.json"),
                );
            }
            Op::Nest(a) => write(root, &format!("p{a}/n2d.workspace.toml"), ""),
            Op::Unnest(a) => {
                let _ = fs::remove_file(root.join(format!("p{a}/n2d.workspace.toml")));
            }
            Op::RemoveFolder(a) => {
                let _ = fs::remove_dir_all(root.join(format!("p{a}")));
            }
        }
        // The folders this step changed get a time of their own, old
        // enough to trust; the others keep theirs.
        let stamped = base + Duration::from_secs(10 * (step as u64 + 1));
        for dir in folders(root) {
            if fs::metadata(&dir).unwrap().modified().unwrap() > before {
                set_mtime(&dir, stamped);
            }
        }
        let cached = outcome(root);
        assert_eq!(cached, uncached_outcome(root), "after {op:?} in {ops:?}");
    }
}

/// Found by the property below: a module file added beside a renamed one
/// is an error, with the cache as without it.
#[test]
fn two_module_files_in_one_folder_fail_with_the_cache_as_without_it() {
    check_against_fresh_walks(&[Op::AddPackage(3, 0), Op::Rename(3, 0), Op::AddPackage(3, 0)]);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// After any sequence of changes, discovery with the cache finds what
    /// a walk without it finds.
    #[test]
    fn discovery_with_the_cache_equals_a_fresh_walk(ops in proptest::collection::vec(op(), 1..12)) {
        check_against_fresh_walks(&ops);
    }
}
