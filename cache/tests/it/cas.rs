//! The CAS verifies every read: a damaged entry is dropped, reported once,
//! and read as missing.
use n2d_cache::Digest;

#[test]
fn a_blob_reads_back_by_its_digest() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let digest = cache.put_blob(b"hello").unwrap();
    assert_eq!(digest, Digest::of(b"hello"));
    assert_eq!(
        cache.get_blob(&digest).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    assert_eq!(cache.get_blob(&Digest::of(b"other")).unwrap(), None);
}

#[test]
fn a_damaged_blob_is_dropped_and_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let digest = cache.put_blob(b"hello").unwrap();
    cache.overwrite_blob_for_tests(&digest, b"hellO").unwrap();
    assert_eq!(cache.get_blob(&digest).unwrap(), None);
    assert!(!cache.has_blob(&digest).unwrap(), "dropped");
    assert_eq!(cache.get_blob(&digest).unwrap(), None);
    let notices = cache.take_notices();
    assert_eq!(notices.len(), 1, "{notices:?}");
    assert!(notices[0].message.contains(&digest.short()));

    // Rebuilt by whoever needs it.
    cache.put_blob(b"hello").unwrap();
    assert_eq!(
        cache.get_blob(&digest).unwrap().as_deref(),
        Some(&b"hello"[..])
    );
}

#[test]
fn blobs_survive_reopening_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let digest = {
        let cache = super::open(dir.path());
        let digest = cache.put_blob(b"kept").unwrap();
        cache.flush().unwrap();
        digest
    };
    let cache = super::open(dir.path());
    assert_eq!(
        cache.get_blob(&digest).unwrap().as_deref(),
        Some(&b"kept"[..])
    );
}
