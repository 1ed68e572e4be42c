//! Why a task runs: the difference between its inputs now and the identity
//! record of its last build.
use n2d_cache::{Digest, IdentityRecord, InputDigest};

use crate::report::{Change, Reason};

/// The inputs of a task as they are now, for comparison and for its next
/// identity record.
pub(crate) struct CurrentInputs<'a> {
    pub(crate) key: Digest,
    pub(crate) version: u32,
    // Invariant: sorted by name (values and files).
    pub(crate) values: &'a [(String, Digest)],
    pub(crate) files: &'a [(String, Digest)],
    /// (identity, output digest), in declaration order.
    pub(crate) dependencies: &'a [(String, Digest)],
}

pub(crate) fn reason(previous: Option<&IdentityRecord>, current: &CurrentInputs<'_>) -> Reason {
    let Some(previous) = previous else {
        return Reason::NoPreviousRecord;
    };
    if previous.key == current.key {
        return Reason::OutputLost;
    }
    let mut changes = Vec::new();
    if previous.version != current.version {
        changes.push(Change::Version {
            before: previous.version,
            after: current.version,
        });
    }
    for name in differing(&previous.values, current.values) {
        changes.push(Change::Value(name));
    }
    for name in differing(&previous.files, current.files) {
        changes.push(Change::File(name));
    }
    for (identity, digest) in current.dependencies {
        let before = previous
            .dependencies
            .iter()
            .find(|dep| dep.name == *identity);
        if before.is_none_or(|before| before.digest != *digest)
            && !changes.contains(&Change::Dependency(identity.clone()))
        {
            changes.push(Change::Dependency(identity.clone()));
        }
    }
    for before in &previous.dependencies {
        if !current
            .dependencies
            .iter()
            .any(|(identity, _)| *identity == before.name)
        {
            changes.push(Change::DependencyRemoved(before.name.clone()));
        }
    }
    Reason::Changed(changes)
}

/// The identity record to store after the task ran (or was found under its
/// key in the action cache).
pub(crate) fn record(current: &CurrentInputs<'_>, output: Digest) -> IdentityRecord {
    let list = |items: &[(String, Digest)]| -> Vec<InputDigest> {
        items
            .iter()
            .map(|(name, digest)| InputDigest {
                name: name.clone(),
                digest: *digest,
            })
            .collect()
    };
    IdentityRecord {
        key: current.key,
        output,
        touched_secs: 0,
        version: current.version,
        values: list(current.values),
        files: list(current.files),
        dependencies: list(current.dependencies),
    }
}

/// Names present on one side only, or with different digests.
fn differing(before: &[InputDigest], now: &[(String, Digest)]) -> Vec<String> {
    let mut names = Vec::new();
    for (name, digest) in now {
        if !before
            .iter()
            .any(|input| input.name == *name && input.digest == *digest)
        {
            names.push(name.clone());
        }
    }
    for input in before {
        if !now.iter().any(|(name, _)| *name == input.name) {
            names.push(input.name.clone());
        }
    }
    names
}
