//! stats, gc (least recently used first, records before blobs) and verify.
use n2d_cache::{ActionRecord, Digest, IdentityRecord};

fn identity(key: &[u8], output: Digest) -> IdentityRecord {
    IdentityRecord {
        key: Digest::of(key),
        output,
        touched_secs: 0,
        version: 1,
        values: vec![],
        files: vec![],
        dependencies: vec![],
    }
}

#[test]
fn stats_count_entries_and_bytes_per_tree() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let output = cache.put_blob(&super::packs::content(7, 100)).unwrap();
    cache
        .put_action(
            &Digest::of(b"k"),
            &ActionRecord {
                output,
                output_len: 100,
            },
        )
        .unwrap();
    let stats = cache.stats().unwrap();
    assert_eq!(stats.tree("cas").unwrap().entries, 1);
    // The key, and the blob as stored: a codec byte, then the bytes (they
    // do not compress).
    assert_eq!(stats.tree("cas").unwrap().bytes, 32 + 1 + 100);
    assert_eq!(stats.tree("actions").unwrap().entries, 1);
    assert_eq!(stats.tree("identities").unwrap().entries, 0);
}

#[test]
fn gc_evicts_least_recently_used_first_with_their_records() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let old = cache.put_blob(&super::packs::content(1, 100)).unwrap();
    let new = cache.put_blob(&super::packs::content(2, 100)).unwrap();
    cache
        .put_action(
            &Digest::of(b"old"),
            &ActionRecord {
                output: old,
                output_len: 100,
            },
        )
        .unwrap();
    cache
        .put_action(
            &Digest::of(b"new"),
            &ActionRecord {
                output: new,
                output_len: 100,
            },
        )
        .unwrap();
    cache
        .put_identity("old task", &identity(b"old", old))
        .unwrap();
    cache
        .put_identity("new task", &identity(b"new", new))
        .unwrap();
    // Access times have one-second resolution: let the clock move, then use
    // `new` again, so that `old` is the least recently used.
    let start = std::time::SystemTime::now();
    while std::time::SystemTime::now()
        .duration_since(start)
        .unwrap()
        .as_secs()
        < 1
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    cache.put_blob(&super::packs::content(2, 100)).unwrap();

    // Sizes as stored: 101 bytes each.
    let report = cache.gc(150).unwrap();
    assert_eq!(report.removed_blobs, 1);
    assert_eq!(report.kept_bytes, 101);
    assert_eq!(report.removed_records, 2);
    assert!(!cache.has_blob(&old).unwrap());
    assert!(cache.has_blob(&new).unwrap());
    assert_eq!(cache.action(&Digest::of(b"old")).unwrap(), None);
    assert_eq!(cache.identity_head("old task").unwrap(), None);
    assert!(cache.action(&Digest::of(b"new")).unwrap().is_some());

    let report = cache.gc(0).unwrap();
    assert_eq!((report.removed_blobs, report.kept_bytes), (1, 0));
    assert_eq!(cache.identity_head("new task").unwrap(), None);
}

#[test]
fn verify_drops_damaged_blobs_and_keeps_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let good = cache.put_blob(b"good").unwrap();
    let bad = cache.put_blob(b"bad").unwrap();
    cache
        .put_identity("bad task", &identity(b"bad", bad))
        .unwrap();
    cache
        .put_identity("good task", &identity(b"good", good))
        .unwrap();
    cache.overwrite_blob_for_tests(&bad, b"bAd").unwrap();
    let report = cache.verify().unwrap();
    assert_eq!(report.checked_blobs, 2);
    assert_eq!(report.damaged_blobs, vec![bad]);
    assert!(cache.has_blob(&good).unwrap());
    assert!(!cache.has_blob(&bad).unwrap());
    assert_eq!(
        cache.identity_head("bad task").unwrap(),
        None,
        "no record outlives its blob"
    );
    assert!(cache.identity_head("good task").unwrap().is_some());
    assert_eq!(cache.take_notices().len(), 1);
    assert_eq!(cache.verify().unwrap().damaged_blobs, vec![]);
}
