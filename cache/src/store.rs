//! [`Cache`]: opening (and repairing) the database, and the reads and writes
//! of each tree. Maintenance (stats, gc, verify) lives in `maintenance`.
use std::collections::HashSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::heads::{self, Heads};
use crate::lock::WorkspaceLock;
use crate::packs::{self, Location, Packs};
use crate::record::{self, ActionRecord, FileState, IdentityHead, IdentityRecord};
use crate::{CacheError, Digest, Notice};

/// Access times are refreshed when older than this, so that a build that
/// only hits the cache writes nothing, while LRU order stays right to the hour.
const TOUCH_GRANULARITY_SECS: u64 = 3600;

/// An open cache, exclusively held by this process until dropped.
pub struct Cache {
    pub(crate) dir: PathBuf,
    pub(crate) db: sled::Db,
    /// The CAS index: digest → where its bytes are in `packs`, and when the
    /// blob was stored (`record::encode_location`).
    pub(crate) cas: sled::Tree,
    /// The bytes of CAS entries (see `packs`).
    pub(crate) packs: Packs,
    pub(crate) actions: sled::Tree,
    pub(crate) identities: sled::Tree,
    pub(crate) file_states: sled::Tree,
    pub(crate) launches: sled::Tree,
    /// CAS digest → seconds since the epoch of its last use (u64 LE).
    pub(crate) access: sled::Tree,
    notices: Mutex<Vec<Notice>>,
    /// Digests already reported as damaged, so that each is reported once.
    reported_damage: Mutex<HashSet<Digest>>,
    /// Packs already reported as unreadable, so that a lost pack is one
    /// notice, not one per blob.
    reported_packs: Mutex<HashSet<u32>>,
    /// Identities whose record was used but whose access time is stale;
    /// written in one batch by [`Cache::flush`].
    pending_touches: Mutex<Vec<([u8; 16], Digest)>>,
    /// Blobs used again since the last flush (stored anew, or served by
    /// the action cache), whose access time [`Cache::flush`] sets in one
    /// batch; a new blob's index record carries its time, so a cold build
    /// queues none. Losing them in a crash only makes those blobs look
    /// least recently used.
    pending_access: Mutex<Vec<(Digest, u64)>>,
    /// Heads of identity records by identity hash: a subset of the identity
    /// tree (plus heads that a crash kept from reaching it), see `heads`.
    heads: RwLock<Heads>,
    /// Set when `heads` differs from the index file.
    heads_dirty: AtomicBool,
    /// Random id of this database, written into the index file.
    db_id: [u8; 16],
    // Dropped last: the database must be closed before another process may
    // take the lock and open it.
    _lock: WorkspaceLock,
}

/// What [`Cache::identity_lookup`] found: the head, and the record as
/// read from the database when the head index did not hold it.
pub struct IdentityLookup {
    pub head: Option<IdentityHead>,
    read: Option<Option<sled::IVec>>,
}

impl Cache {
    /// Opens the cache in `dir` (created if missing), first taking the
    /// workspace lock `<dir>/lock`; when another process holds it, calls
    /// `on_wait` with the lock's path and blocks until it is released.
    ///
    /// A database that cannot be opened (damaged or deleted files) is moved
    /// to `<dir>/db.damaged` and replaced by an empty one, with a notice.
    /// Fails only when even a new database cannot be created.
    pub fn open(dir: &Path, on_wait: impl FnOnce(&Path)) -> Result<Cache, CacheError> {
        std::fs::create_dir_all(dir).map_err(|source| CacheError::Io {
            action: "create the cache folder",
            path: dir.to_owned(),
            source,
        })?;
        let lock = WorkspaceLock::acquire(&dir.join("lock"), on_wait)?;
        Cache::open_locked(dir, lock)
    }

    /// Opens the cache in `dir` with its workspace lock already taken
    /// (`WorkspaceLock::acquire(&dir.join("lock"), …)`), for callers that
    /// decide under the lock whether they need the database at all.
    pub fn open_locked(dir: &Path, lock: WorkspaceLock) -> Result<Cache, CacheError> {
        let db_path = dir.join("db");
        let mut notices = Vec::new();
        let trees = match open_trees(&db_path) {
            Ok(trees) => trees,
            Err(problem) => {
                let aside = dir.join("db.damaged");
                set_aside(&db_path, &aside)?;
                packs::remove_all(&dir.join("packs"))?;
                notices.push(Notice {
                    message: format!(
                        "the cache database `{}` could not be opened ({problem}); it was moved to `{}` and an empty cache created",
                        db_path.display(),
                        aside.display()
                    ),
                });
                open_trees(&db_path).map_err(|problem| match problem {
                    OpenProblem::Sled(source) => CacheError::Open {
                        path: db_path.clone(),
                        source,
                    },
                    OpenProblem::Panicked(message) => CacheError::Open {
                        path: db_path.clone(),
                        source: sled::Error::ReportableBug(message),
                    },
                })?
            }
        };
        let (db_id, created) = database_id(&trees.meta, dir)?;
        if created || trees.outdated {
            // Packs of a database that is gone (deleted, set aside) or
            // outdated hold nothing this one can reach.
            packs::remove_all(&dir.join("packs"))?;
        }
        if trees.outdated {
            heads::remove(&dir.join("heads"))?;
        }
        let loaded = heads::load(&dir.join("heads"), &db_id).unwrap_or_default();
        Ok(Cache {
            dir: dir.to_owned(),
            heads: RwLock::new(loaded),
            heads_dirty: AtomicBool::new(false),
            db_id,
            db: trees.db,
            cas: trees.cas,
            packs: Packs::new(dir.join("packs"), db_id),
            actions: trees.actions,
            identities: trees.identities,
            file_states: trees.file_states,
            launches: trees.launches,
            access: trees.access,
            notices: Mutex::new(notices),
            reported_damage: Mutex::new(HashSet::new()),
            reported_packs: Mutex::new(HashSet::new()),
            pending_touches: Mutex::new(Vec::new()),
            pending_access: Mutex::new(Vec::new()),
            _lock: lock,
        })
    }

    /// The cache folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stores `bytes` in the CAS and returns their address.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<Digest, CacheError> {
        let digest = Digest::of(bytes);
        self.put_blob_with_digest(&digest, bytes)?;
        Ok(digest)
    }

    /// Stores `bytes` whose digest the caller already computed.
    ///
    /// Invariant kept by the caller: `digest == Digest::of(bytes)`; a wrong
    /// digest is caught as damage by the next read.
    pub fn put_blob_with_digest(&self, digest: &Digest, bytes: &[u8]) -> Result<(), CacheError> {
        // Content-addressed: an entry whose pack is there already holds
        // these bytes (a read verifies them).
        if let Some(location) = self.location(digest)? {
            if self.packs.holds(&location) {
                self.note_access(digest);
                return Ok(());
            }
        }
        let location = self.packs.append(bytes)?;
        self.cas
            .insert(
                digest.0,
                &record::encode_location(&location, now_secs())[..],
            )
            .map_err(db("write the cas"))?;
        Ok(())
    }

    /// Reads a CAS entry and verifies its digest. A damaged entry is removed,
    /// reported once as a notice, and read as missing; so is one whose pack
    /// cannot be read (reported once per pack).
    pub fn get_blob(&self, digest: &Digest) -> Result<Option<Vec<u8>>, CacheError> {
        let Some(location) = self.location(digest)? else {
            return Ok(None);
        };
        let Some(bytes) = self.packs.read(&location) else {
            self.drop_unreadable_blob(digest, location.pack)?;
            return Ok(None);
        };
        if Digest::of(&bytes) != *digest {
            self.drop_damaged_blob(digest)?;
            return Ok(None);
        }
        Ok(Some(bytes))
    }

    /// Whether the CAS holds an entry for `digest` whose pack is there (not
    /// verified: reads are).
    pub fn has_blob(&self, digest: &Digest) -> Result<bool, CacheError> {
        Ok(self
            .location(digest)?
            .is_some_and(|location| self.packs.holds(&location)))
    }

    /// Where the bytes of `digest` are, for [`crate::read_located`]: `None`
    /// when the CAS does not hold it. The bytes may still be in memory:
    /// they are on disk once [`Cache::flush`] returned.
    pub fn blob_ref(&self, digest: &Digest) -> Result<Option<crate::BlobRef>, CacheError> {
        Ok(self
            .location(digest)?
            .filter(|location| self.packs.holds(location))
            .map(|location| crate::BlobRef {
                pack: location.pack,
                offset: location.offset,
                len: location.len,
            }))
    }

    /// Notes that a stored blob was used again (for gc's LRU order).
    pub fn note_blob_use(&self, digest: &Digest) {
        self.note_access(digest);
    }

    /// The index record of `digest`; an undecodable one is a miss.
    fn location(&self, digest: &Digest) -> Result<Option<Location>, CacheError> {
        Ok(self
            .cas
            .get(digest.0)
            .map_err(db("read the cas"))?
            .and_then(|bytes| record::decode_location(&bytes))
            .map(|(location, _)| location))
    }

    /// The action record of a task key. A record whose output blob is gone
    /// is a miss.
    pub fn action(&self, key: &Digest) -> Result<Option<ActionRecord>, CacheError> {
        let Some(bytes) = self
            .actions
            .get(key.0)
            .map_err(db("read the action cache"))?
        else {
            return Ok(None);
        };
        match record::decode_action(&bytes) {
            Some(record) if self.has_blob(&record.output)? => Ok(Some(record)),
            _ => Ok(None),
        }
    }

    pub fn put_action(&self, key: &Digest, record: &ActionRecord) -> Result<(), CacheError> {
        self.actions
            .insert(key.0, &record::encode_action(record)[..])
            .map_err(db("write the action cache"))?;
        Ok(())
    }

    /// The start of the identity record of a task: its last key and output.
    /// Does not check that the output blob exists.
    pub fn identity_head(&self, identity: &str) -> Result<Option<IdentityHead>, CacheError> {
        Ok(self.identity_lookup(identity)?.head)
    }

    /// The head of a task's identity record, as [`Cache::identity_head`]
    /// gives it, keeping the whole record when it had to be read from the
    /// database: a task that then runs explains why from it
    /// ([`Cache::identity_record_after`]) without reading it again.
    pub fn identity_lookup(&self, identity: &str) -> Result<IdentityLookup, CacheError> {
        let key = identity_key(identity);
        if let Some(head) = self
            .heads
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
        {
            return Ok(IdentityLookup {
                head: Some(*head),
                read: None,
            });
        }
        let bytes = self
            .identities
            .get(key)
            .map_err(db("read the identity table"))?;
        let head = bytes
            .as_ref()
            .and_then(|bytes| record::decode_identity_head(bytes));
        if let Some(head) = head {
            self.set_head(key, head);
        }
        Ok(IdentityLookup {
            head,
            read: Some(bytes),
        })
    }

    /// The whole identity record of a task, for explaining why it ran.
    pub fn identity_record(&self, identity: &str) -> Result<Option<IdentityRecord>, CacheError> {
        let bytes = self
            .identities
            .get(identity_key(identity))
            .map_err(db("read the identity table"))?;
        Ok(bytes.and_then(|bytes| record::decode_identity(&bytes)))
    }

    /// [`Cache::identity_record`], from what `lookup` read if it read it
    /// (nothing has written the record since, in a build: a task's
    /// identity is unique in its graph).
    pub fn identity_record_after(
        &self,
        identity: &str,
        lookup: Option<&IdentityLookup>,
    ) -> Result<Option<IdentityRecord>, CacheError> {
        match lookup.and_then(|lookup| lookup.read.as_ref()) {
            Some(bytes) => Ok(bytes
                .as_ref()
                .and_then(|bytes| record::decode_identity(bytes))),
            None => self.identity_record(identity),
        }
    }

    /// Stores the identity record of a task; its `touched_secs` is set to now.
    pub fn put_identity(&self, identity: &str, record: &IdentityRecord) -> Result<(), CacheError> {
        let now = now_secs();
        let record = IdentityRecord {
            touched_secs: now,
            ..record.clone()
        };
        let key = identity_key(identity);
        self.identities
            .insert(key, record::encode_identity(&record))
            .map_err(db("write the identity table"))?;
        self.set_head(
            key,
            IdentityHead {
                key: record.key,
                output: record.output,
                touched_secs: now,
            },
        );
        Ok(())
    }

    /// Queues an access-time update of `digest` for [`Cache::flush`].
    fn note_access(&self, digest: &Digest) {
        self.pending_access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((*digest, now_secs()));
    }

    /// Writes the queued access times (at flush, and before gc reads them).
    pub(crate) fn write_pending_access(&self) -> Result<(), CacheError> {
        let accessed = std::mem::take(
            &mut *self
                .pending_access
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if accessed.is_empty() {
            return Ok(());
        }
        let mut access = sled::Batch::default();
        for (digest, secs) in accessed {
            access.insert(&digest.0, &secs.to_le_bytes());
        }
        self.access
            .apply_batch(access)
            .map_err(db("write access times"))
    }

    /// Forgets what is known of a task: its identity record and the action
    /// record of `key`, so that it runs again. For an output that was lost
    /// and could not be rebuilt: the next build must not count on it.
    pub fn forget_task(&self, identity: &str, key: &Digest) -> Result<(), CacheError> {
        let hashed = identity_key(identity);
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&hashed);
        self.heads_dirty.store(true, Ordering::Release);
        self.identities
            .remove(hashed)
            .map_err(db("write the identity table"))?;
        self.actions
            .remove(key.0)
            .map_err(db("write the action cache"))?;
        Ok(())
    }

    /// Notes that the output of `identity` was served from the cache, for
    /// LRU. Writes nothing now: a stale access time is queued for
    /// [`Cache::flush`], a recent one is left as is.
    pub fn note_use(&self, identity: &str, head: &IdentityHead) {
        if now_secs().saturating_sub(head.touched_secs) >= TOUCH_GRANULARITY_SECS {
            let mut pending = self
                .pending_touches
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            pending.push((identity_key(identity), head.output));
        }
    }

    /// The recorded state of a file, by the path it is read from.
    pub fn file_state(&self, path: &Path) -> Result<Option<FileState>, CacheError> {
        let bytes = self
            .file_states
            .get(path.as_os_str().as_bytes())
            .map_err(db("read the file-state table"))?;
        Ok(bytes.and_then(|bytes| record::decode_file_state(&bytes)))
    }

    pub fn put_file_state(&self, path: &Path, state: &FileState) -> Result<(), CacheError> {
        self.file_states
            .insert(
                path.as_os_str().as_bytes(),
                &record::encode_file_state(state)[..],
            )
            .map_err(db("write the file-state table"))?;
        Ok(())
    }

    /// Forgets a file's state, so that it is hashed again next time.
    pub fn forget_file_state(&self, path: &Path) -> Result<(), CacheError> {
        self.file_states
            .remove(path.as_os_str().as_bytes())
            .map_err(db("write the file-state table"))?;
        Ok(())
    }

    /// The output digest last launched under `launch_id` (a manager's own
    /// name for what it runs, e.g. `systemctl //deploy:prod`).
    pub fn launch_record(&self, launch_id: &str) -> Result<Option<Digest>, CacheError> {
        let bytes = self
            .launches
            .get(launch_id)
            .map_err(db("read launch records"))?;
        Ok(bytes.and_then(|bytes| record::decode_digest(&bytes)))
    }

    pub fn put_launch_record(&self, launch_id: &str, output: &Digest) -> Result<(), CacheError> {
        self.launches
            .insert(launch_id, &output.0)
            .map_err(db("write launch records"))?;
        Ok(())
    }

    pub fn forget_launch_record(&self, launch_id: &str) -> Result<(), CacheError> {
        self.launches
            .remove(launch_id)
            .map_err(db("write launch records"))?;
        Ok(())
    }

    /// Adds a notice for the user (the engine reports its own repairs here
    /// so that all of them come out of one place).
    pub fn notice(&self, message: String) {
        self.notices
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Notice { message });
    }

    /// Returns the notices gathered since the last call, oldest first.
    pub fn take_notices(&self) -> Vec<Notice> {
        std::mem::take(&mut *self.notices.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Writes queued access times and makes every write durable. Called once
    /// at the end of a build; a crash before it loses recent entries only.
    pub fn flush(&self) -> Result<(), CacheError> {
        self.write_pending_access()?;
        let pending = std::mem::take(
            &mut *self
                .pending_touches
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        if !pending.is_empty() {
            let now = now_secs();
            let mut access = sled::Batch::default();
            let mut identities = sled::Batch::default();
            for (identity, output) in pending {
                access.insert(&output.0, &now.to_le_bytes());
                if let Some(bytes) = self
                    .identities
                    .get(identity)
                    .map_err(db("read the identity table"))?
                {
                    let mut bytes = bytes.to_vec();
                    if record::set_identity_touched(&mut bytes, now) {
                        identities.insert(&identity, bytes);
                    }
                }
                let mut heads = self.heads.write().unwrap_or_else(|e| e.into_inner());
                if let Some(head) = heads.get_mut(&identity) {
                    head.touched_secs = now;
                    self.heads_dirty.store(true, Ordering::Release);
                }
            }
            self.access
                .apply_batch(access)
                .map_err(db("write access times"))?;
            self.identities
                .apply_batch(identities)
                .map_err(db("write the identity table"))?;
        }
        // Pack bytes first: the index in sled is not written to disk ahead
        // of the bytes it points at (a read verifies them all the same).
        self.packs.write_out()?;
        self.db.flush().map_err(db("flush the database"))?;
        // After the database: the index never gets ahead of what is durable.
        if self.heads_dirty.swap(false, Ordering::AcqRel) {
            let heads = self.heads.read().unwrap_or_else(|e| e.into_inner());
            if let Err(error) = heads::save(&self.dir.join("heads"), &self.db_id, &heads) {
                self.heads_dirty.store(true, Ordering::Release);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Drops the head index, file first: called before gc or verify delete
    /// records, so that no index names a deleted blob. Lookups fall back to
    /// the identity tree and the index is rebuilt by the next build.
    pub(crate) fn invalidate_heads(&self) -> Result<(), CacheError> {
        heads::remove(&self.dir.join("heads"))?;
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.heads_dirty.store(false, Ordering::Release);
        Ok(())
    }

    fn set_head(&self, key: [u8; 16], head: IdentityHead) {
        self.heads
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, head);
        self.heads_dirty.store(true, Ordering::Release);
    }

    /// Test hook: stores `bytes` under `digest` without any check, to make a
    /// damaged entry. Never use it outside tests.
    #[doc(hidden)]
    pub fn overwrite_blob_for_tests(
        &self,
        digest: &Digest,
        bytes: &[u8],
    ) -> Result<(), CacheError> {
        let location = self.packs.append(bytes)?;
        self.cas
            .insert(
                digest.0,
                &record::encode_location(&location, now_secs())[..],
            )
            .map_err(db("write the cas"))?;
        Ok(())
    }

    /// Test hook: removes a blob and nothing else, leaving the records that
    /// point at it. Never use it outside tests.
    #[doc(hidden)]
    pub fn remove_blob_for_tests(&self, digest: &Digest) -> Result<(), CacheError> {
        self.cas.remove(digest.0).map_err(db("write the cas"))?;
        Ok(())
    }

    /// Removes a blob whose pack cannot be read, reporting the pack once.
    fn drop_unreadable_blob(&self, digest: &Digest, pack: u32) -> Result<(), CacheError> {
        self.forget_blob(digest)?;
        let first = self
            .reported_packs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pack);
        if first {
            self.notice(format!(
                "cache pack `{}` is missing or damaged; what it held will be rebuilt",
                self.packs.dir().join(format!("pack-{pack:08}")).display()
            ));
        }
        Ok(())
    }

    /// Removes a blob found damaged, with its access time, and reports it
    /// once.
    pub(crate) fn drop_damaged_blob(&self, digest: &Digest) -> Result<(), CacheError> {
        self.forget_blob(digest)?;
        let first = self
            .reported_damage
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(*digest);
        if first {
            self.notice(format!(
                "cache entry {} was damaged; it was dropped and will be rebuilt",
                digest.short()
            ));
        }
        Ok(())
    }

    /// Removes a blob's index record and access time, and every head that
    /// names it.
    fn forget_blob(&self, digest: &Digest) -> Result<(), CacheError> {
        // Heads of this output would serve a task as cached without its
        // bytes; without them the task takes the checked action-cache path.
        {
            let mut heads = self.heads.write().unwrap_or_else(|e| e.into_inner());
            heads.retain(|_, head| head.output != *digest);
        }
        self.heads_dirty.store(true, Ordering::Release);
        self.pending_access
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|(pending, _)| pending != digest);
        self.cas.remove(digest.0).map_err(db("write the cas"))?;
        self.access
            .remove(digest.0)
            .map_err(db("write access times"))?;
        Ok(())
    }
}

/// The identity table is keyed by a hash of the identity: fixed-size keys
/// without the long common prefixes of identities (`render //…`) make the
/// lookup on the cached path cheaper. Collisions are harmless: the record's
/// key must still equal the task's key to be used.
fn identity_key(identity: &str) -> [u8; 16] {
    let hash = blake3::hash(identity.as_bytes());
    let mut key = [0u8; 16];
    key.copy_from_slice(&hash.as_bytes()[..16]);
    key
}

pub(crate) fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

pub(crate) fn db(action: &'static str) -> impl Fn(sled::Error) -> CacheError {
    move |source| CacheError::Database { action, source }
}

struct Trees {
    /// The database was of an older format: its blob records were dropped.
    outdated: bool,
    db: sled::Db,
    cas: sled::Tree,
    actions: sled::Tree,
    identities: sled::Tree,
    file_states: sled::Tree,
    launches: sled::Tree,
    access: sled::Tree,
    meta: sled::Tree,
}

/// The random id of the database, created with it, and whether it was
/// created now.
fn database_id(meta: &sled::Tree, dir: &Path) -> Result<([u8; 16], bool), CacheError> {
    if let Some(id) = meta.get("id").map_err(db("read the database id"))? {
        if let Ok(id) = <[u8; 16]>::try_from(id.as_ref()) {
            return Ok((id, false));
        }
    }
    // Unique enough: time, process and folder; it only has to differ from
    // the id of any earlier database in this folder.
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let mut hasher = blake3::Hasher::new();
    hasher.update(&nanos.to_le_bytes());
    hasher.update(&std::process::id().to_le_bytes());
    hasher.update(dir.as_os_str().as_bytes());
    let mut id = [0u8; 16];
    id.copy_from_slice(&hasher.finalize().as_bytes()[..16]);
    meta.insert("id", &id[..])
        .map_err(db("write the database id"))?;
    Ok((id, true))
}

#[derive(Debug)]
enum OpenProblem {
    Sled(sled::Error),
    Panicked(String),
}

impl std::fmt::Display for OpenProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenProblem::Sled(error) => write!(f, "{error}"),
            OpenProblem::Panicked(message) => write!(f, "sled panicked: {message}"),
        }
    }
}

/// Opens the database, waiting (a few seconds at most) while sled's own
/// file lock is still held. The caller holds the workspace lock, so the
/// holder can only be a database of this process that was just dropped and
/// whose background thread has not let go yet (the watch loop opens a cache
/// per cycle); treating that as damage would throw the cache away.
fn open_trees(path: &Path) -> Result<Trees, OpenProblem> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match open_trees_once(path) {
            // sled wraps the lock's WouldBlock in an error of its own kind,
            // recognizable only by its text.
            Err(OpenProblem::Sled(sled::Error::Io(error)))
                if (error.kind() == std::io::ErrorKind::WouldBlock
                    || error.to_string().contains("could not acquire lock"))
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            other => return other,
        }
    }
}

fn open_trees_once(path: &Path) -> Result<Trees, OpenProblem> {
    // sled may panic instead of returning an error on some garbled files; a
    // damaged cache must not take the build down with it.
    let opened = std::panic::catch_unwind(|| -> sled::Result<Trees> {
        // No periodic flush: the build flushes once at its end.
        let db = sled::Config::new().path(path).flush_every_ms(None).open()?;
        // A database of an earlier format keeps its blob index in a tree
        // of another name: `cas` (blob bytes in sled, before packs) or
        // `cas_index` (before compressed pack entries). Its records that
        // lead to blobs start over, as in a new database (the caller
        // removes the packs and the head index too).
        const EARLIER_INDEXES: [&[u8]; 2] = [b"cas", b"cas_index"];
        let names = db.tree_names();
        let earlier: Vec<&[u8]> = EARLIER_INDEXES
            .into_iter()
            .filter(|index| names.iter().any(|name| name.as_ref() == *index))
            .collect();
        let outdated = !earlier.is_empty();
        if outdated {
            for index in earlier {
                db.drop_tree(index)?;
            }
            for name in ["actions", "identities", "access"] {
                db.drop_tree(name)?;
            }
        }
        Ok(Trees {
            outdated,
            cas: db.open_tree("cas_entries")?,
            actions: db.open_tree("actions")?,
            identities: db.open_tree("identities")?,
            file_states: db.open_tree("file_states")?,
            launches: db.open_tree("launches")?,
            access: db.open_tree("access")?,
            meta: db.open_tree("meta")?,
            db,
        })
    });
    match opened {
        Ok(result) => result.map_err(OpenProblem::Sled),
        Err(panic) => Err(OpenProblem::Panicked(
            panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into()),
        )),
    }
}

/// Moves a damaged database out of the way, replacing an older damaged one.
fn set_aside(db_path: &Path, aside: &Path) -> Result<(), CacheError> {
    if aside.exists() {
        std::fs::remove_dir_all(aside).map_err(|source| CacheError::Io {
            action: "remove the previous damaged database",
            path: aside.to_owned(),
            source,
        })?;
    }
    if db_path.exists() {
        std::fs::rename(db_path, aside).map_err(|source| CacheError::Io {
            action: "move the damaged database aside",
            path: db_path.to_owned(),
            source,
        })?;
    }
    Ok(())
}
