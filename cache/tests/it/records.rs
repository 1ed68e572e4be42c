//! Action records, identity records, file states and launch records.
use std::path::Path;

use n2d_cache::{ActionRecord, Digest, FileState, IdentityRecord, InputDigest};

#[test]
fn an_action_record_whose_blob_is_gone_is_a_miss() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let output = cache.put_blob(b"out").unwrap();
    let key = Digest::of(b"key");
    let record = ActionRecord {
        output,
        output_len: 3,
    };
    cache.put_action(&key, &record).unwrap();
    assert_eq!(cache.action(&key).unwrap(), Some(record));
    cache.remove_blob_for_tests(&output).unwrap();
    assert_eq!(cache.action(&key).unwrap(), None);
}

#[test]
fn identity_records_keep_what_explain_needs() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let record = IdentityRecord {
        key: Digest::of(b"key"),
        output: Digest::of(b"out"),
        touched_secs: 0,
        version: 2,
        values: vec![InputDigest {
            name: "service".into(),
            digest: Digest::of(b"s"),
        }],
        files: vec![InputDigest {
            name: "//web/n2d.toml".into(),
            digest: Digest::of(b"f"),
        }],
        dependencies: vec![InputDigest {
            name: "parse //web".into(),
            digest: Digest::of(b"p"),
        }],
    };
    cache
        .put_identity("render //web:api (k8s)", &record)
        .unwrap();
    let read = cache
        .identity_record("render //web:api (k8s)")
        .unwrap()
        .unwrap();
    assert!(read.touched_secs > 0, "put_identity stamps the access time");
    assert_eq!(
        IdentityRecord {
            touched_secs: 0,
            ..read
        },
        record
    );
    let head = cache
        .identity_head("render //web:api (k8s)")
        .unwrap()
        .unwrap();
    assert_eq!((head.key, head.output), (record.key, record.output));
    assert_eq!(cache.identity_head("render //other").unwrap(), None);
}

#[test]
fn an_identity_lookup_keeps_the_record_it_read() {
    let dir = tempfile::tempdir().unwrap();
    let record = IdentityRecord {
        key: Digest::of(b"key"),
        output: Digest::of(b"out"),
        touched_secs: 0,
        version: 1,
        values: vec![InputDigest {
            name: "service".into(),
            digest: Digest::of(b"s"),
        }],
        files: vec![],
        dependencies: vec![],
    };
    {
        let cache = super::open(dir.path());
        cache.put_identity("task", &record).unwrap();
        cache.flush().unwrap();
    }
    // Without the head index, the lookup reads the database, once.
    std::fs::remove_file(dir.path().join("heads")).unwrap();
    let cache = super::open(dir.path());
    let lookup = cache.identity_lookup("task").unwrap();
    assert_eq!(lookup.head.map(|h| h.key), Some(record.key));
    let read = cache
        .identity_record_after("task", Some(&lookup))
        .unwrap()
        .unwrap();
    assert_eq!(read.values, record.values);
    assert_eq!(Some(read), cache.identity_record("task").unwrap());
    // The head is indexed now: a second lookup leaves the record to a read.
    let lookup = cache.identity_lookup("task").unwrap();
    assert_eq!(
        cache.identity_record_after("task", Some(&lookup)).unwrap(),
        cache.identity_record("task").unwrap()
    );
    let missing = cache.identity_lookup("other").unwrap();
    assert_eq!(missing.head, None);
    assert_eq!(
        cache
            .identity_record_after("other", Some(&missing))
            .unwrap(),
        None
    );
}

#[test]
fn file_states_and_launch_records_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cache = super::open(dir.path());
    let state = FileState {
        mtime_ns: -5,
        size: 10,
        inode: 77,
        hash: Digest::of(b"x"),
    };
    let path = Path::new("/workspace/web/n2d.toml");
    cache.put_file_state(path, &state).unwrap();
    assert_eq!(cache.file_state(path).unwrap(), Some(state));
    cache.forget_file_state(path).unwrap();
    assert_eq!(cache.file_state(path).unwrap(), None);

    let launched = Digest::of(b"assembled");
    cache
        .put_launch_record("systemctl //deploy:prod", &launched)
        .unwrap();
    assert_eq!(
        cache.launch_record("systemctl //deploy:prod").unwrap(),
        Some(launched)
    );
    cache
        .forget_launch_record("systemctl //deploy:prod")
        .unwrap();
    assert_eq!(
        cache.launch_record("systemctl //deploy:prod").unwrap(),
        None
    );
}
