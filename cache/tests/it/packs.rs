//! The bytes of CAS entries live in pack files: what is buffered reads back
//! before it is written, sessions append to one pack, compressible blobs
//! take less room, a missing, truncated or garbled pack is a miss (reported
//! once) and never served, and gc gives back the space of what it evicted.
use std::path::{Path, PathBuf};

use n2d_cache::{Cache, Digest};

fn packs(dir: &Path) -> Vec<PathBuf> {
    let mut packs: Vec<PathBuf> = std::fs::read_dir(dir.join("packs"))
        .map(|entries| entries.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    packs.sort();
    packs
}

fn packs_size(dir: &Path) -> u64 {
    packs(dir)
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum()
}

/// Distinct contents of `len` bytes that do not compress.
pub(crate) fn content(seed: u32, len: usize) -> Vec<u8> {
    let mut bytes = vec![0; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut bytes);
    bytes
}

/// Distinct contents of `len` bytes that compress well (text, as build
/// outputs are).
fn compressible(seed: u32, len: usize) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(len + 64);
    let mut line = 0;
    while bytes.len() < len {
        bytes.extend_from_slice(
            format!("{{\"service\": \"s{seed}\", \"line\": {line}}}\n").as_bytes(),
        );
        line += 1;
    }
    bytes.truncate(len);
    bytes
}

/// Stores each of `blobs`, and reads every one back before a flush.
fn put_all(cache: &Cache, blobs: impl IntoIterator<Item = Vec<u8>>) -> Vec<(Digest, Vec<u8>)> {
    let put: Vec<(Digest, Vec<u8>)> = blobs
        .into_iter()
        .map(|bytes| (cache.put_blob(&bytes).unwrap(), bytes))
        .collect();
    for (digest, bytes) in &put {
        assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
    }
    put
}

#[test]
fn compressible_blobs_take_less_room_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    // Around a chunk's worth, and one blob too large for a thread's buffer.
    let put = put_all(
        &cache,
        (0..500u32)
            .map(|i| compressible(i, 10_000 + i as usize))
            .chain([compressible(1_000, 5 << 20)]),
    );
    cache.flush().unwrap();
    let total: usize = put.iter().map(|(_, bytes)| bytes.len()).sum();
    let on_disk = packs_size(dir.path()) as usize;
    assert!(on_disk * 4 < total, "{on_disk} bytes on disk for {total}");
    drop(cache);
    let cache = super::open(dir.path());
    for (digest, bytes) in &put {
        assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
        // As the delta path reads them, without the database.
        let at = cache.blob_ref(digest).unwrap().expect("stored");
        assert_eq!(
            n2d_cache::read_located(dir.path(), &at, digest).as_ref(),
            Some(bytes)
        );
    }
    assert!(cache.take_notices().is_empty());
}

#[test]
fn buffered_and_large_blobs_read_back_before_and_after_a_flush() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    // More than one chunk of small blobs, and blobs larger than a chunk.
    let put = put_all(
        &cache,
        (0..3000u32)
            .map(|i| content(i, 1000 + (i as usize % 3000)))
            .chain((0..2u32).map(|i| content(10_000 + i, 9 << 20))),
    );
    cache.flush().unwrap();
    drop(cache);
    let cache = super::open(dir.path());
    for (digest, bytes) in &put {
        assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
    }
    assert!(cache.take_notices().is_empty());
}

#[test]
fn threads_putting_and_reading_at_once_read_what_they_put() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    std::thread::scope(|scope| {
        for thread in 0..4u32 {
            let cache = &cache;
            scope.spawn(move || {
                let mut mine = Vec::new();
                for i in 0..1500u32 {
                    let bytes = content(thread * 100_000 + i, 500 + (i as usize * 37) % 8000);
                    mine.push((cache.put_blob(&bytes).unwrap(), bytes));
                    // Read back an earlier one: buffered, being written, or
                    // on disk.
                    let (digest, bytes) = &mine[(i as usize * 7) % mine.len()];
                    assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
                }
            });
        }
    });
    assert!(cache.take_notices().is_empty());
}

#[test]
fn sessions_append_to_one_pack() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..3u32 {
        let cache = super::open(dir.path());
        cache.put_blob(&content(round, 100)).unwrap();
        cache.flush().unwrap();
    }
    assert_eq!(packs(dir.path()).len(), 1, "{:?}", packs(dir.path()));
    let cache = super::open(dir.path());
    for round in 0..3u32 {
        let bytes = content(round, 100);
        assert_eq!(cache.get_blob(&Digest::of(&bytes)).unwrap(), Some(bytes));
    }
}

#[test]
fn a_cache_dropped_without_a_flush_keeps_what_it_buffered() {
    let dir = tempfile::tempdir().unwrap();
    let digest = super::open(dir.path()).put_blob(b"unflushed").unwrap();
    // sled writes its index when the database is dropped; the pack's
    // buffer is written then too.
    let cache = super::open(dir.path());
    assert_eq!(
        cache.get_blob(&digest).unwrap().as_deref(),
        Some(&b"unflushed"[..])
    );
    assert!(cache.take_notices().is_empty());
}

/// A stored set of blobs, flushed, and the cache closed.
fn stored(dir: &Path) -> Vec<(Digest, Vec<u8>)> {
    stored_with(dir, content)
}

fn stored_with(dir: &Path, content: fn(u32, usize) -> Vec<u8>) -> Vec<(Digest, Vec<u8>)> {
    let cache = super::open(dir);
    let put = put_all(&cache, (0..20u32).map(|i| content(i, 2000)));
    cache.flush().unwrap();
    put
}

#[test]
fn a_deleted_pack_is_a_miss_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let put = stored(dir.path());
    for pack in packs(dir.path()) {
        std::fs::remove_file(pack).unwrap();
    }
    let cache = super::open(dir.path());
    for (digest, _) in &put {
        assert!(!cache.has_blob(digest).unwrap());
        assert_eq!(cache.get_blob(digest).unwrap(), None);
    }
    let notices = cache.take_notices();
    assert!(notices.len() <= 1, "{notices:?}");
    // What a build puts again reads back.
    let (digest, bytes) = &put[0];
    cache.put_blob(bytes).unwrap();
    assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
}

#[test]
fn a_truncated_pack_serves_what_is_left_and_drops_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let put = stored(dir.path());
    let pack = &packs(dir.path())[0];
    let len = std::fs::metadata(pack).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(pack)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let cache = super::open(dir.path());
    let mut served = 0;
    for (digest, bytes) in &put {
        if let Some(read) = cache.get_blob(digest).unwrap() {
            assert_eq!(&read, bytes);
            served += 1;
        }
    }
    assert!(served > 0 && served < put.len(), "{served} served");
    assert_eq!(cache.take_notices().len(), 1, "one notice for the pack");
}

#[test]
fn a_garbled_pack_is_never_served() {
    for (content, stride) in [
        (content as fn(u32, usize) -> Vec<u8>, 1000),
        (compressible, 7),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let put = stored_with(dir.path(), content);
        let pack = &packs(dir.path())[0];
        let mut bytes = std::fs::read(pack).unwrap();
        // Past the header: one byte in every blob, stored or compressed.
        for at in (40..bytes.len()).step_by(stride) {
            bytes[at] ^= 0x5a;
        }
        std::fs::write(pack, bytes).unwrap();
        let cache = super::open(dir.path());
        for (digest, _) in &put {
            assert_eq!(cache.get_blob(digest).unwrap(), None);
            assert!(!cache.has_blob(digest).unwrap(), "dropped");
        }
        assert_eq!(cache.take_notices().len(), put.len(), "one per blob");
    }
}

#[test]
fn a_pack_of_another_database_is_never_read_nor_appended_to() {
    let dir = tempfile::tempdir().unwrap();
    let put = stored(dir.path());
    let kept = std::fs::read(&packs(dir.path())[0]).unwrap();
    // A new database in the same folder, then the old pack put back as the
    // newest one.
    std::fs::remove_dir_all(dir.path().join("db")).unwrap();
    {
        let cache = super::open(dir.path());
        assert!(packs(dir.path()).is_empty(), "the old packs are removed");
        cache.put_blob(b"new").unwrap();
        cache.flush().unwrap();
    }
    let foreign = dir.path().join("packs/pack-00000002");
    std::fs::write(&foreign, &kept).unwrap();
    let cache = super::open(dir.path());
    for (digest, _) in &put {
        assert_eq!(cache.get_blob(digest).unwrap(), None);
    }
    let later = cache.put_blob(b"later").unwrap();
    cache.flush().unwrap();
    drop(cache);
    assert_eq!(std::fs::read(&foreign).unwrap(), kept, "not appended to");
    let cache = super::open(dir.path());
    for (digest, bytes) in [(Digest::of(b"new"), &b"new"[..]), (later, b"later")] {
        assert_eq!(cache.get_blob(&digest).unwrap().as_deref(), Some(bytes));
    }
}

#[test]
fn gc_gives_back_the_space_of_evicted_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let put = put_all(&cache, (0..40u32).map(|i| content(i, 100_000)));
    cache.flush().unwrap();
    let before = packs_size(dir.path());
    assert!(before >= 4_000_000, "{before}");

    // Ten blobs as stored: a codec byte and the bytes (they do not
    // compress).
    let report = cache.gc(1_000_010).unwrap();
    assert_eq!(report.kept_bytes, 1_000_010);
    assert!(report.compacted_bytes >= 2_900_000, "{report:?}");
    let after = packs_size(dir.path());
    assert!(after < 1_100_000, "{after} bytes of packs left");
    let kept: Vec<&(Digest, Vec<u8>)> = put
        .iter()
        .filter(|(digest, _)| cache.has_blob(digest).unwrap())
        .collect();
    assert_eq!(kept.len(), 10);
    drop(cache);
    let cache = super::open(dir.path());
    for (digest, bytes) in kept {
        assert_eq!(cache.get_blob(digest).unwrap().as_ref(), Some(bytes));
    }
    // What is stored after gc goes into a pack of its own and reads back.
    let bytes = content(99, 5000);
    let digest = cache.put_blob(&bytes).unwrap();
    cache.flush().unwrap();
    assert_eq!(cache.get_blob(&digest).unwrap(), Some(bytes));
    assert!(cache.take_notices().is_empty());

    let report = cache.gc(0).unwrap();
    assert_eq!(report.kept_bytes, 0);
    assert!(packs(dir.path()).is_empty(), "{:?}", packs(dir.path()));
}

#[test]
fn a_database_of_the_layout_before_packs_opens_as_an_empty_cache() {
    let dir = tempfile::tempdir().unwrap();
    {
        // What n2d wrote before packs: blob bytes in a `cas` tree.
        let db = sled::open(dir.path().join("db")).unwrap();
        let cas = db.open_tree("cas").unwrap();
        cas.insert(Digest::of(b"old").0, &b"old"[..]).unwrap();
        db.flush().unwrap();
    }
    let cache = super::open(dir.path());
    assert_eq!(cache.get_blob(&Digest::of(b"old")).unwrap(), None);
    let stats = cache.stats().unwrap();
    assert_eq!(stats.tree("cas").unwrap().entries, 0);
    let digest = cache.put_blob(b"new").unwrap();
    assert_eq!(
        cache.get_blob(&digest).unwrap().as_deref(),
        Some(&b"new"[..])
    );
}
