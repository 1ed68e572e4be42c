//! The head index file: read back at open, ignored when damaged or written
//! for another database, dropped by gc.
use n2d_cache::{Digest, IdentityRecord};

fn record(output: Digest) -> IdentityRecord {
    IdentityRecord {
        key: Digest::of(b"key"),
        output,
        touched_secs: 0,
        version: 1,
        values: vec![],
        files: vec![],
        dependencies: vec![],
    }
}

fn populated(dir: &std::path::Path) -> Digest {
    let cache = super::open(dir);
    let output = cache.put_blob(b"out").unwrap();
    cache.put_identity("task", &record(output)).unwrap();
    cache.flush().unwrap();
    output
}

#[test]
fn heads_are_read_back_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let output = populated(dir.path());
    assert!(dir.path().join("heads").is_file());
    let cache = super::open(dir.path());
    assert_eq!(
        cache.identity_head("task").unwrap().map(|h| h.output),
        Some(output)
    );
}

#[test]
fn a_damaged_index_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let output = populated(dir.path());
    let path = dir.path().join("heads");
    let mut bytes = std::fs::read(&path).unwrap();
    // Inside the output digest of the only entry (before touched time and
    // checksum): unchecked, the head would name another output.
    let inside_output = bytes.len() - 32 - 8 - 12;
    bytes[inside_output] ^= 0xFF;
    std::fs::write(&path, bytes).unwrap();
    let cache = super::open(dir.path());
    assert_eq!(
        cache.identity_head("task").unwrap().map(|h| h.output),
        Some(output)
    );
}

#[test]
fn an_index_of_a_recreated_database_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    let cache = super::open(dir.path());
    assert_eq!(cache.identity_head("task").unwrap(), None);
}

#[test]
fn gc_drops_the_index_with_the_records() {
    let dir = tempfile::tempdir().unwrap();
    populated(dir.path());
    let cache = super::open(dir.path());
    cache.gc(0).unwrap();
    assert!(!dir.path().join("heads").exists());
    assert_eq!(cache.identity_head("task").unwrap(), None);
    cache.flush().unwrap();
    drop(cache);
    let cache = super::open(dir.path());
    assert_eq!(cache.identity_head("task").unwrap(), None);
}
