//! Damaged or deleted database files never stop the cache from opening: it
//! is moved aside, recreated empty, and the user is told once.
use std::path::{Path, PathBuf};

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files
}

fn populated(dir: &Path) -> n2d_cache::Digest {
    let cache = super::open(dir);
    let digest = cache.put_blob(b"content").unwrap();
    cache.flush().unwrap();
    digest
}

#[test]
fn garbage_database_files_are_set_aside_and_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let digest = populated(dir.path());
    for file in files_under(&dir.path().join("db")) {
        std::fs::write(&file, vec![0xA5; 4096]).unwrap();
    }
    let cache = super::open(dir.path());
    // Either sled rejected the files (moved aside, with a notice) or it
    // recovered a valid prefix; in both cases reads are verified.
    match cache.get_blob(&digest).unwrap() {
        Some(bytes) => assert_eq!(bytes, b"content"),
        None => {
            let notices = cache.take_notices();
            assert!(dir.path().join("db.damaged").exists(), "{notices:?}");
            assert_eq!(notices.len(), 1, "{notices:?}");
        }
    }
    let again = cache.put_blob(b"content").unwrap();
    assert_eq!(
        cache.get_blob(&again).unwrap().as_deref(),
        Some(&b"content"[..])
    );
}

#[test]
fn a_database_path_taken_by_a_file_is_set_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("db"), b"not a database").unwrap();
    let cache = super::open(dir.path());
    let notices = cache.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(
        notices[0].message.contains("could not be opened"),
        "{notices:?}"
    );
    assert!(dir.path().join("db.damaged").is_file());
    let digest = cache.put_blob(b"x").unwrap();
    assert!(cache.has_blob(&digest).unwrap());
}

#[test]
fn a_deleted_database_gives_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    let digest = populated(dir.path());
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    let cache = super::open(dir.path());
    assert_eq!(cache.get_blob(&digest).unwrap(), None);
}

/// Regression: a cache reopened right after it was dropped in the same
/// process (the watch loop does this every cycle) found sled's own file lock
/// still held by the old database's background thread, took that for
/// damage, and threw the whole cache away.
#[test]
fn reopening_at_once_in_the_same_process_keeps_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let digest = populated(dir.path());
    for round in 0..50u32 {
        let cache = n2d_cache::Cache::open(dir.path(), |_| panic!("no other holder")).unwrap();
        assert!(
            cache.take_notices().is_empty(),
            "round {round}: the reopened cache was set aside"
        );
        assert!(
            cache.get_blob(&digest).unwrap().is_some(),
            "round {round}: the cache lost its content"
        );
        // Writes keep sled's background threads busy past the drop.
        for i in 0..200u32 {
            cache
                .put_blob(format!("{round}-{i}").repeat(64).as_bytes())
                .unwrap();
        }
        cache.flush().unwrap();
    }
}

#[test]
fn a_database_of_an_earlier_format_starts_over() {
    // `cas`: blob bytes in sled, before packs; `cas_index`: the blob index
    // before compressed pack entries.
    for earlier_index in ["cas", "cas_index"] {
        starts_over_from(earlier_index);
    }
}

fn starts_over_from(earlier_index: &str) {
    let dir = tempfile::tempdir().unwrap();
    let record = n2d_cache::IdentityRecord {
        key: n2d_cache::Digest::of(b"key"),
        output: n2d_cache::Digest::of(b"output"),
        touched_secs: 0,
        version: 1,
        values: vec![],
        files: vec![],
        dependencies: vec![],
    };
    {
        let cache = super::open(dir.path());
        let output = cache.put_blob(b"output").unwrap();
        cache
            .put_action(
                &record.key,
                &n2d_cache::ActionRecord {
                    output,
                    output_len: 6,
                },
            )
            .unwrap();
        cache.put_identity("task", &record).unwrap();
        cache.flush().unwrap();
    }
    assert!(dir.path().join("heads").exists());
    // What the earlier format had: its blob index under another name.
    {
        let db = sled::open(dir.path().join("db")).unwrap();
        db.open_tree(earlier_index)
            .unwrap()
            .insert(record.output.0, &[1u8; 8][..])
            .unwrap();
        db.flush().unwrap();
    }
    let cache = super::open(dir.path());
    assert_eq!(
        cache.identity_head("task").unwrap(),
        None,
        "{earlier_index}"
    );
    assert_eq!(cache.identity_record("task").unwrap(), None);
    assert_eq!(cache.action(&record.key).unwrap(), None);
    assert_eq!(cache.get_blob(&record.output).unwrap(), None);
    assert!(!dir.path().join("heads").exists());
    assert!(files_under(&dir.path().join("packs")).is_empty());
    // And it works as a new one.
    let output = cache.put_blob(b"again").unwrap();
    cache.flush().unwrap();
    drop(cache);
    let cache = super::open(dir.path());
    assert_eq!(
        cache.get_blob(&output).unwrap().as_deref(),
        Some(&b"again"[..])
    );
}
