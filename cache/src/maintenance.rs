//! `n2d cache stats|gc|verify`: whole-cache scans, kept apart from the
//! per-build reads and writes of `store`.
//!
//! Invariant kept here: an identity record's output blob exists (the engine
//! serves a task from its identity record without checking), except after a
//! crash or outside damage, which the engine repairs by rebuilding.
//!
//! GC evicts CAS entries least recently used first. Records that point at an
//! evicted blob are deleted in a batch that is applied and flushed before the
//! blobs go, so that no state reachable by a crash has a record served
//! without its blob (and such a record would only be a miss anyway). Then
//! it compacts the packs: a pack with no live blob is deleted, one that is
//! mostly dead has its live blobs copied into a new pack, which is synced
//! before the index points at it and the old pack is deleted.
use std::collections::{HashMap, HashSet};

use crate::packs::{Location, HEADER_LEN};
use crate::record;
use crate::store::{db, Cache};
use crate::{CacheError, Digest};

/// Entry count and bytes (keys plus values) of one tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeStats {
    pub name: &'static str,
    pub entries: u64,
    pub bytes: u64,
}

/// What `n2d cache stats` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stats {
    /// One entry per tree: cas, actions, identities, file_states, launches,
    /// access.
    pub trees: Vec<TreeStats>,
    /// Size of the database files, as sled counts it, plus the packs.
    pub disk_bytes: u64,
}

impl Stats {
    pub fn tree(&self, name: &str) -> Option<&TreeStats> {
        self.trees.iter().find(|tree| tree.name == name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GcReport {
    pub removed_blobs: u64,
    pub removed_bytes: u64,
    /// Action and identity records deleted with the blobs they pointed at.
    pub removed_records: u64,
    /// Bytes of CAS entries left.
    pub kept_bytes: u64,
    /// Pack bytes given back to the file system by compaction.
    pub compacted_bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VerifyReport {
    pub checked_blobs: u64,
    /// Blobs whose content did not match their digest; they were dropped.
    pub damaged_blobs: Vec<Digest>,
    /// Records that could not be decoded; they were dropped.
    pub damaged_records: u64,
}

impl Cache {
    pub fn stats(&self) -> Result<Stats, CacheError> {
        self.write_pending_access()?;
        let mut trees = Vec::new();
        for (name, tree) in self.named_trees() {
            let mut stats = TreeStats {
                name,
                entries: 0,
                bytes: 0,
            };
            for entry in tree.iter() {
                let (key, value) = entry.map_err(db("scan the database"))?;
                stats.entries += 1;
                // The CAS counts its blobs' bytes, wherever they are.
                let value_len = match name {
                    "cas" => record::decode_location(&value).map_or(0, |(l, _)| l.len),
                    _ => value.len() as u64,
                };
                stats.bytes += key.len() as u64 + value_len;
            }
            trees.push(stats);
        }
        let disk_bytes =
            self.db.size_on_disk().map_err(db("measure the database"))? + self.packs.disk_bytes();
        Ok(Stats { trees, disk_bytes })
    }

    /// Evicts CAS entries, least recently used first, until they take at
    /// most `max_bytes`, deleting first every record that points at them.
    pub fn gc(&self, max_bytes: u64) -> Result<GcReport, CacheError> {
        self.invalidate_heads()?;
        self.write_pending_access()?;
        let mut blobs = Vec::new();
        let mut total = 0u64;
        for entry in self.cas.iter() {
            let (key, value) = entry.map_err(db("scan the cas"))?;
            let (Some(digest), Some((location, stored))) =
                (record::decode_digest(&key), record::decode_location(&value))
            else {
                continue;
            };
            let accessed = self
                .access
                .get(&key)
                .map_err(db("read access times"))?
                .and_then(|bytes| bytes.as_ref().try_into().ok().map(u64::from_le_bytes))
                .unwrap_or(0)
                .max(stored);
            total += location.len;
            blobs.push((accessed, digest, location.len));
        }
        let mut report = GcReport {
            kept_bytes: total,
            ..GcReport::default()
        };
        if total <= max_bytes {
            report.compacted_bytes = self.compact()?;
            return Ok(report);
        }
        blobs.sort();
        let mut evicted = HashSet::new();
        for (_, digest, len) in blobs {
            if report.kept_bytes <= max_bytes {
                break;
            }
            evicted.insert(digest);
            report.kept_bytes -= len;
            report.removed_bytes += len;
            report.removed_blobs += 1;
        }

        let mut actions = sled::Batch::default();
        for entry in self.actions.iter() {
            let (key, value) = entry.map_err(db("scan the action cache"))?;
            if record::decode_action(&value).is_none_or(|r| evicted.contains(&r.output)) {
                actions.remove(key);
                report.removed_records += 1;
            }
        }
        let mut identities = sled::Batch::default();
        for entry in self.identities.iter() {
            let (key, value) = entry.map_err(db("scan the identity table"))?;
            if record::decode_identity_head(&value).is_none_or(|r| evicted.contains(&r.output)) {
                identities.remove(key);
                report.removed_records += 1;
            }
        }
        self.actions
            .apply_batch(actions)
            .map_err(db("write the action cache"))?;
        self.identities
            .apply_batch(identities)
            .map_err(db("write the identity table"))?;
        self.db.flush().map_err(db("flush the database"))?;

        let mut cas = sled::Batch::default();
        let mut access = sled::Batch::default();
        for digest in &evicted {
            cas.remove(&digest.0);
            access.remove(&digest.0);
        }
        self.cas.apply_batch(cas).map_err(db("write the cas"))?;
        self.access
            .apply_batch(access)
            .map_err(db("write access times"))?;
        self.db.flush().map_err(db("flush the database"))?;
        report.compacted_bytes = self.compact()?;
        Ok(report)
    }

    /// Gives back the space of dead blobs: packs that hold no live blob are
    /// deleted; packs at least half dead have their live blobs copied into
    /// a new pack (synced before the index points there), then deleted.
    /// A crash at any point leaves every index record pointing at bytes
    /// that are there; at worst a pack nobody points at, which the next gc
    /// deletes. Returns the bytes given back.
    fn compact(&self) -> Result<u64, CacheError> {
        self.packs.seal()?;
        let mut live: HashMap<u32, Vec<(Digest, Location, u64)>> = HashMap::new();
        for entry in self.cas.iter() {
            let (key, value) = entry.map_err(db("scan the cas"))?;
            if let (Some(digest), Some((location, stored))) =
                (record::decode_digest(&key), record::decode_location(&value))
            {
                live.entry(location.pack)
                    .or_default()
                    .push((digest, location, stored));
            }
        }
        let before = self.packs.disk_bytes();
        let mut rewritten = Vec::new();
        let mut moved = sled::Batch::default();
        for (pack, size) in self.packs.list() {
            let blobs = live.remove(&pack).unwrap_or_default();
            let live_bytes: u64 = blobs.iter().map(|(_, location, _)| location.len).sum();
            if !blobs.is_empty() && live_bytes * 2 > size.saturating_sub(HEADER_LEN) {
                continue;
            }
            for (digest, location, stored) in blobs {
                // A blob that cannot be read or is damaged is not copied:
                // its record goes, as a read would drop it.
                match self.packs.read(&location) {
                    Some(bytes) if Digest::of(&bytes) == digest => {
                        let new = self.packs.append(&bytes)?;
                        moved.insert(&digest.0, &record::encode_location(&new, stored)[..]);
                    }
                    _ => moved.remove(&digest.0),
                }
            }
            rewritten.push(pack);
        }
        if rewritten.is_empty() {
            return Ok(0);
        }
        self.packs.seal()?;
        self.cas.apply_batch(moved).map_err(db("write the cas"))?;
        self.db.flush().map_err(db("flush the database"))?;
        for pack in rewritten {
            self.packs.remove(pack)?;
        }
        Ok(before.saturating_sub(self.packs.disk_bytes()))
    }

    /// Re-hashes every CAS entry and decodes every record; drops what is
    /// damaged (reporting each damaged blob once as a notice).
    pub fn verify(&self) -> Result<VerifyReport, CacheError> {
        self.invalidate_heads()?;
        let mut report = VerifyReport::default();
        let mut damaged = Vec::new();
        for entry in self.cas.iter() {
            let (key, value) = entry.map_err(db("scan the cas"))?;
            report.checked_blobs += 1;
            let location = record::decode_location(&value).map(|(location, _)| location);
            match (record::decode_digest(&key), location) {
                (Some(digest), Some(location)) => match self.packs.read(&location) {
                    Some(bytes) if Digest::of(&bytes) == digest => {}
                    _ => damaged.push(digest),
                },
                _ => {
                    self.cas.remove(key).map_err(db("write the cas"))?;
                }
            }
        }
        for digest in &damaged {
            self.drop_damaged_blob(digest)?;
        }
        // Records of dropped blobs go too: the engine trusts an identity
        // record without looking for its blob.
        let dropped: HashSet<Digest> = damaged.iter().copied().collect();
        report.damaged_blobs = damaged;

        let mut actions = sled::Batch::default();
        for entry in self.actions.iter() {
            let (key, value) = entry.map_err(db("scan the action cache"))?;
            match record::decode_action(&value) {
                None => {
                    actions.remove(key);
                    report.damaged_records += 1;
                }
                Some(action) if dropped.contains(&action.output) => actions.remove(key),
                Some(_) => {}
            }
        }
        let mut identities = sled::Batch::default();
        for entry in self.identities.iter() {
            let (key, value) = entry.map_err(db("scan the identity table"))?;
            match record::decode_identity(&value) {
                None => {
                    identities.remove(key);
                    report.damaged_records += 1;
                }
                Some(identity) if dropped.contains(&identity.output) => identities.remove(key),
                Some(_) => {}
            }
        }
        self.actions
            .apply_batch(actions)
            .map_err(db("write the action cache"))?;
        self.identities
            .apply_batch(identities)
            .map_err(db("write the identity table"))?;
        self.db.flush().map_err(db("flush the database"))?;
        Ok(report)
    }

    fn named_trees(&self) -> [(&'static str, &sled::Tree); 6] {
        [
            ("cas", &self.cas),
            ("actions", &self.actions),
            ("identities", &self.identities),
            ("file_states", &self.file_states),
            ("launches", &self.launches),
            ("access", &self.access),
        ]
    }
}
