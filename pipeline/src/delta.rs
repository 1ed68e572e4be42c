//! The delta path: a build after an edit that visits only what the edit
//! reaches, without opening the cache database.
//!
//! After each full build, a snapshot of its stage-3 graph is kept beside
//! the no-op stamp: per package its Eval and Interface output digests; per
//! deployment target (a unit) the digest of the files its folder holds
//! (`codec::tree_digest`), and in a pack of its own, per service the
//! packages its Resolve reads, its sources, the Resolve and Render output
//! digests, its fragment and its files by digest; and in an own file, the
//! Eval output of the deployment's package reduced to that deployment
//! (`reduced_eval`: a deployment package of ten 1,000-service deployments
//! is most of what a one-service edit would otherwise read). The Eval
//! outputs themselves are named where the cache's packs hold them (a
//! delta build, which does not open the cache, keeps those it makes in
//! `evals/`).
//!
//! When the stamp check finds that only module files and files Renders
//! read (`files.*.source`) changed (`stamp::Check::Changed`), the build
//! re-runs, with the same task structs as the graph
//! (`n2d_engine::run_detached`): Parse and Eval of each changed module
//! file whose content differs (an Eval digest equal to the snapshot's
//! stops there), its Interface (a different digest means the plan may
//! differ: full build), then the Resolve of each service that reads a
//! changed package, the Render of each whose Resolve output or source
//! changed, and the Assemble of each unit with a changed Render: over the
//! other Renders' files by digest, the rule's `assemble` run again only
//! when a fragment changed. Folders whose tree digest changed are patched
//! (`materialize::patch`): the changed files written, the files no longer
//! produced removed. While the edited files are evaluated, the packs and
//! own files of the units they may reach are read and decoded.
//!
//! Anything else takes the full path, which is always right: another kind
//! of input changed (a `watch` path, a file a Nix module reads), a Nix
//! package is involved, an image target (its
//! layers are tasks the snapshot does not hold), a task failed (the full
//! path reports it properly), a snapshot that is missing, damaged or not
//! the stamp's, an Eval that does not reproduce the snapshot's digest.
//!
//! Invariant: a stamp exists only after the snapshot of the same build was
//! completely written (both paths forget the stamp before writing
//! anything, and write it last), and the index names the build by its
//! start time, as the stamp does; each pack and own file is checked
//! against the digest the index holds for it. A unit's files in its pack
//! and the rule's files make up, by digest, exactly what its Assemble
//! output holds: a full build checks this before it writes a pack.
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use n2d_cache::{BlobRef, Digest};
use n2d_engine::{run_detached, KindCounts, Task};
use n2d_modules::node::{SourceFile, Span};
use n2d_modules::package::{DeploymentDef, LazyDeployment, Member, MemberSource};
use n2d_modules::{Format, Label, Package};
use n2d_rules::Deployment;
use rayon::prelude::*;

use crate::binary::{checked_body, headed, seal, Reader, Writer};
use crate::codec::{rendered_parts, FileSlice, TreeEntry};
use crate::materialize::{self, FolderState, OutputFile};
use crate::session::{BuildResult, Session};
use crate::stamp::Changed;
use crate::tasks::{
    deployment_digest, EvalTask, InterfaceTask, ParseTask, RenderTask, ResolveTask, SharedUniverse,
};

const INDEX_MAGIC: &[u8; 8] = b"n2ddelta";
const PACK_MAGIC: &[u8; 8] = b"n2dpack1";
const OWN_MAGIC: &[u8; 8] = b"n2downf1";
const FORMAT: u32 = 9;

/// No file's content has this digest (it is no blake3 output anyone found).
const UNKNOWN: Digest = Digest([0; 32]);

/// The snapshot's index: small, read whole by every delta build.
pub(crate) struct Index {
    /// The start of the build it describes: equal to its stamp's.
    started_at_ns: i128,
    /// In the workspace's order: the module files of the build it
    /// describes, which its stamp lists (the same start time ties the two),
    /// so they are not named again here.
    packages: Vec<PackageEntry>,
    units: Vec<UnitEntry>,
}

struct PackageEntry {
    /// The digest of the text its Eval output was computed from, or
    /// `UNKNOWN`.
    content: Digest,
    eval: Digest,
    /// Where the cache's packs hold the Eval output (a full build names
    /// it there rather than copying 1,000 outputs into files of its own),
    /// or `None` for one kept in `evals/` (a delta build's, which does not
    /// open the cache).
    eval_at: Option<BlobRef>,
    interface: Digest,
}

struct UnitEntry {
    label: Label,
    target: String,
    dir: PathBuf,
    assembled: Digest,
    /// Indices of the packages any of its services reads, sorted.
    packages: Vec<u32>,
    /// The sources any of its Renders reads (workspace-relative), sorted.
    sources: Vec<String>,
    /// What its pack holds, by digests (`pack_key`): a full build whose
    /// key is the same keeps the pack as it is.
    key: Digest,
    /// Its pack's checksum (the seal: blake3 of the pack's body), which
    /// stands for the pack as a digest of the whole file would.
    pack: Digest,
    /// The Eval output of the deployment's package its own file was
    /// reduced from (`reduced_eval`), and that file's digest.
    own_eval: Digest,
    own: Digest,
}

#[derive(Clone)]
struct ServiceEntry {
    name: String,
    /// The service's own label, as identities show it.
    label: String,
    /// Indices of the packages its Resolve reads, in dependency order.
    packages: Vec<u32>,
    /// Its Render's declared sources, workspace-relative.
    sources: Vec<String>,
    resolve: Digest,
    render: Digest,
    /// Its Render's fragment, as JSON: what the rule's `assemble` reads.
    fragment: Vec<u8>,
    /// Its Render's files.
    files: Vec<TreeEntry>,
}

/// The stage that evaluated every package: its report, and each package's
/// Eval and Interface task in it.
pub(crate) struct PackagesStage<'a> {
    pub report: &'a n2d_engine::Report,
    /// Each package's Parse task and the stable name of its file.
    pub parses: &'a BTreeMap<String, (n2d_engine::TaskId, String)>,
    pub evals: &'a BTreeMap<String, n2d_engine::TaskId>,
    pub interfaces: &'a BTreeMap<String, n2d_engine::TaskId>,
}

/// What a full build knows of one unit, for the snapshot.
pub(crate) struct UnitRecord {
    pub label: Label,
    pub target: String,
    pub deployment: Arc<Deployment>,
    /// Per service: (label, packages, sources, Resolve task, Render task).
    pub services: Vec<ServiceRecord>,
    /// The digest of the files its Assemble output holds
    /// (`codec::tree_digest`), once stage 4 computed it.
    pub tree: Option<Digest>,
    /// False when the unit has layers or Nix packages: no snapshot then.
    pub eligible: bool,
}

pub(crate) struct ServiceRecord {
    pub label: String,
    pub packages: Vec<String>,
    pub sources: Vec<String>,
    pub resolve: n2d_engine::TaskId,
    pub render: n2d_engine::TaskId,
}

/// Eval outputs by digest, shared by every request's snapshot: what a
/// Resolve reads of the packages that did not change.
fn eval_path(stamp: &Path, digest: &Digest) -> PathBuf {
    stamp.with_file_name("evals").join(digest.to_hex())
}

/// The Eval output of `package`, when kept (in the cache's packs or in
/// `evals/`) and whole.
fn read_eval(stamp: &Path, cache_dir: &Path, package: &PackageEntry) -> Option<Arc<[u8]>> {
    let bytes = match &package.eval_at {
        Some(at) => n2d_cache::read_located(cache_dir, at, &package.eval)?,
        None => std::fs::read(eval_path(stamp, &package.eval)).ok()?,
    };
    (Digest::of(&bytes) == package.eval).then(|| Arc::from(bytes))
}

fn index_path(stamp: &Path) -> PathBuf {
    stamp.with_extension("delta")
}

fn pack_path(stamp: &Path, label: &Label, target: &str) -> PathBuf {
    let name = blake3::hash(format!("{label} {target}").as_bytes()).to_hex();
    stamp.with_extension(format!("{}.pack", &name[..16]))
}

/// Removes the snapshot of a stamp (no delta path for the next build).
pub(crate) fn forget(stamp: &Path) {
    let _ = std::fs::remove_file(index_path(stamp));
}

/// Writes the snapshot of a full build that started at `started_at_ns`.
/// Render outputs come from the previous snapshot's packs when their
/// digest is known there, else from the stage's report (the cache).
/// Failing to write it only costs the next build its delta path.
pub(crate) fn record(
    session: &Session,
    stamp: &Path,
    started_at_ns: i128,
    packages_stage: PackagesStage<'_>,
    third: &n2d_engine::Report,
    units: &[UnitRecord],
) {
    let PackagesStage {
        report: first,
        parses,
        evals,
        interfaces,
    } = packages_stage;
    // The previous snapshot of this request: the Eval outputs it kept, and
    // its packs by deployment target.
    let old_index = read_index(&index_path(stamp));
    let old_evals: Vec<Digest> = old_index
        .iter()
        .flat_map(|old| old.packages.iter().map(|p| p.eval))
        .collect();
    let old_units: HashMap<(String, &str), &UnitEntry> = old_index
        .iter()
        .flat_map(|old| &old.units)
        .map(|u| ((u.label.to_string(), u.target.as_str()), u))
        .collect();
    forget(stamp);
    if units.iter().any(|u| !u.eligible) {
        return;
    }
    if std::fs::create_dir_all(stamp.with_file_name("evals")).is_err() {
        return;
    }
    let Ok(cache) = session.cache() else {
        return;
    };
    // Packages and units are independent: written in parallel (a cold
    // build writes every Eval output and every pack).
    let packages: Option<Vec<PackageEntry>> = session
        .workspace
        .packages
        .par_iter()
        .map(|package| {
            let eval_task = *evals.get(&package.package)?;
            let interface = *interfaces.get(&package.package)?;
            let eval = first.outcome(eval_task).output?;
            let interface = first.outcome(interface).output?;
            // Named where the cache keeps it; copied only if it does not.
            let eval_at = cache.blob_ref(&eval).ok().flatten();
            let path = eval_path(stamp, &eval);
            if eval_at.is_none()
                && std::fs::metadata(&path).is_err()
                && !write_atomically(&path, &first.output(eval_task).ok()?)
            {
                return None;
            }
            // The content the Parse read, when the engine knows it was one
            // version of the file (else any change of its stat parses again).
            let content = parses
                .get(&package.package)
                .and_then(|(parse, name)| {
                    first
                        .outcome(*parse)
                        .files
                        .iter()
                        .find(|(file, _)| file == name)
                        .map(|(_, digest)| *digest)
                })
                .unwrap_or(UNKNOWN);
            Some(PackageEntry {
                content,
                eval,
                eval_at,
                interface,
            })
        })
        .collect();
    let Some(packages) = packages else {
        return;
    };
    let position: HashMap<&str, u32> = session
        .workspace
        .packages
        .iter()
        .enumerate()
        .map(|(i, p)| (p.package.as_str(), i as u32))
        .collect();
    // The deployments' packages, decoded once for all their units.
    let owners: HashMap<&str, OnceLock<Option<Arc<Package>>>> = units
        .iter()
        .map(|unit| (unit.label.package.as_str(), OnceLock::new()))
        .collect();
    let units: Option<Vec<UnitEntry>> = units
        .par_iter()
        .map(|unit| {
            let assembled = unit.tree?;
            let path = pack_path(stamp, &unit.label, &unit.target);
            // What the pack will hold, by digests.
            let mut meta = Vec::with_capacity(unit.services.len());
            for (name, record) in unit.deployment.services.iter().zip(&unit.services) {
                let resolve = third.outcome(record.resolve).output?;
                let render = third.outcome(record.render).output?;
                let indices = record
                    .packages
                    .iter()
                    .map(|p| position.get(p.as_str()).copied())
                    .collect::<Option<Vec<u32>>>()?;
                meta.push((name, record, indices, resolve, render));
            }
            let own = *position.get(unit.label.package.as_str())? as usize;
            let own_eval = packages[own].eval;
            let key = pack_key(
                unit.deployment.namespace.as_deref(),
                unit.deployment.base_layer.as_deref(),
                &own_eval,
                meta.iter().map(|(name, record, indices, resolve, render)| {
                    (
                        name.as_str(),
                        record.label.as_str(),
                        &indices[..],
                        &record.sources[..],
                        resolve,
                        render,
                    )
                }),
            );
            let used: BTreeSet<u32> = meta.iter().flat_map(|m| m.2.iter().copied()).collect();
            let read: BTreeSet<String> = unit
                .services
                .iter()
                .flat_map(|s| s.sources.iter().cloned())
                .collect();
            let entry = |pack, own| UnitEntry {
                label: unit.label.clone(),
                target: unit.target.clone(),
                dir: session.target_dir(&unit.label.package, &unit.label.name, &unit.target),
                assembled,
                packages: used.iter().copied().collect(),
                sources: read.iter().cloned().collect(),
                key,
                pack,
                own_eval,
                own,
            };
            // The same content as the last pack: kept as it is (a damaged
            // one fails the delta path's check, which then drops the index).
            if let Some(old) = old_units.get(&(unit.label.to_string(), unit.target.as_str())) {
                if old.key == key && path.exists() && own_path(&path).exists() {
                    return Some(entry(old.pack, old.own));
                }
            }
            // The previous pack's Render outputs, by digest.
            let mut known: HashMap<Digest, (Vec<u8>, Vec<TreeEntry>)> = Pack::read(&path, None)
                .and_then(Pack::into_services)
                .map(|services| {
                    services
                        .into_iter()
                        .map(|s| (s.render, (s.fragment, s.files)))
                        .collect()
                })
                .unwrap_or_default();
            let mut services = Vec::with_capacity(meta.len());
            for (name, record, indices, resolve, render) in meta {
                let (fragment, files) = match known.remove(&render) {
                    Some(parts) => parts,
                    None => {
                        let bytes = third.output(record.render).ok()?;
                        let parts = rendered_parts(&bytes).ok()?;
                        (parts.fragment.to_vec(), entries_of(&parts.files))
                    }
                };
                services.push(ServiceEntry {
                    name: name.clone(),
                    label: record.label.clone(),
                    packages: indices,
                    sources: record.sources.clone(),
                    resolve,
                    render,
                    fragment,
                    files,
                });
            }
            // The deployment-wide files: the rule's `assemble` again, as
            // the delta path will run it. Its files and the services' must
            // make up the Assemble output, or the unit has no snapshot.
            let rule = session.declared().rules.get(unit.target.as_str())?;
            let (shared, _) = assemble_shared(
                rule.as_ref(),
                &unit.deployment,
                services.iter().map(|s| (s.name.as_str(), &s.fragment[..])),
            )?;
            let whole = tree_of(
                &shared,
                services
                    .iter()
                    .flat_map(|s| &s.files)
                    .map(|e| (e.path.as_str(), e.mode, e.digest)),
            )?;
            if tree_digest_of(&whole) != assembled {
                return None;
            }
            let owner = owners.get(unit.label.package.as_str())?.get_or_init(|| {
                let eval = first.output(*evals.get(&unit.label.package)?).ok()?;
                serde_json::from_slice(&eval).ok().map(Arc::new)
            });
            let own = write_own(&path, &reduced_eval(owner.as_ref()?, &unit.label.name)?)?;
            let pack = Pack {
                namespace: unit.deployment.namespace.clone(),
                base_layer: unit.deployment.base_layer.clone(),
                shared,
                bytes: Vec::new(),
                services: services.into_iter().map(Slot::Edited).collect(),
            };
            let digest = write_pack(&path, &pack.pieces())?;
            Some(entry(digest, own))
        })
        .collect();
    let Some(units) = units else {
        return;
    };
    let index = Index {
        started_at_ns,
        packages,
        units,
    };
    if write_atomically(&index_path(stamp), &encode_index(&index)) {
        forget_evals(stamp, old_evals, &index);
    }
}

/// A service of a pack, without its Render output (which its digest names).
type ServiceKey<'a> = (
    &'a str,
    &'a str,
    &'a [u32],
    &'a [String],
    &'a Digest,
    &'a Digest,
);

/// The digest of what a pack holds, its Render outputs by their digests.
fn pack_key<'a>(
    namespace: Option<&str>,
    base_layer: Option<&str>,
    own: &Digest,
    services: impl Iterator<Item = ServiceKey<'a>>,
) -> Digest {
    let mut out = Writer(Vec::new());
    out.optional(namespace);
    out.optional(base_layer);
    out.digest(own);
    for (name, label, packages, sources, resolve, render) in services {
        out.bytes(name.as_bytes());
        out.bytes(label.as_bytes());
        out.u32s(packages);
        out.strings(sources);
        out.digest(resolve);
        out.digest(render);
    }
    Digest::of(&out.0)
}

/// What the Resolves of one deployment read of its package's Eval output:
/// its services and modules, and that deployment. The source text and the
/// other deployments (most of a large deployment package) go: a Resolve's
/// output does not depend on them, and a failing Resolve sends the build
/// down the full path, which reads the whole output for its message.
///
/// The rest of the package is JSON, as Eval outputs are; the deployment is
/// in the snapshot's binary encoding (`decode_own`), its members' bodies
/// (rare) in JSON: decoding a 1,000-member deployment from JSON was half
/// of what reading the own file cost a delta build.
fn reduced_eval(package: &Package, deployment: &str) -> Option<Vec<u8>> {
    let def: &DeploymentDef = package.deployments.get(deployment)?;
    let rest = Package {
        name: package.name.clone(),
        source: SourceFile::new(package.source.path.to_string(), String::new()),
        services: package.services.clone(),
        modules: package.modules.clone(),
        deployments: BTreeMap::new(),
    };
    let mut out = Writer(Vec::with_capacity(64 * def.members.len() + 1024));
    out.0.extend_from_slice(OWN_MAGIC);
    out.u32(FORMAT);
    out.bytes(&serde_json::to_vec(&rest).ok()?);
    out.bytes(deployment.as_bytes());
    out.bytes(def.name.as_bytes());
    out.u32(def.span.start);
    out.u32(def.span.end);
    out.u64(def.members.len() as u64);
    for member in &def.members {
        out.bytes(member.name.as_bytes());
        out.u32(member.span.start);
        out.u32(member.span.end);
        match &member.source {
            MemberSource::Label { label, overrides } => {
                out.0.push(0);
                out.bytes(label.package.as_bytes());
                out.bytes(label.name.as_bytes());
                match overrides {
                    None => out.0.push(0),
                    Some(body) => {
                        out.0.push(1);
                        out.bytes(&serde_json::to_vec(body).ok()?);
                    }
                }
            }
            MemberSource::Local(body) => {
                out.0.push(1);
                out.bytes(&serde_json::to_vec(body).ok()?);
            }
        }
    }
    out.strings(&def.targets);
    out.optional(def.namespace.as_deref());
    out.u64(def.managers.len() as u64);
    for (target, manager) in &def.managers {
        out.bytes(target.as_bytes());
        out.bytes(manager.as_bytes());
    }
    Some(out.0)
}

/// The package an own file holds (`reduced_eval`), its deployment decoded.
fn decode_own(bytes: &[u8]) -> Option<Package> {
    let mut input = headed(bytes, OWN_MAGIC, FORMAT)?;
    let mut package: Package = serde_json::from_slice(input.bytes()?).ok()?;
    let key = input.string()?;
    let name = input.string()?;
    let span = Span {
        start: input.u32()?,
        end: input.u32()?,
    };
    let count = input.count()?;
    let mut members = Vec::with_capacity(count);
    for _ in 0..count {
        let name = input.string()?;
        let span = Span {
            start: input.u32()?,
            end: input.u32()?,
        };
        let source = match input.take(1)?[0] {
            0 => {
                let label = Label {
                    package: input.string()?,
                    name: input.string()?,
                };
                let overrides = match input.take(1)?[0] {
                    0 => None,
                    1 => Some(Box::new(serde_json::from_slice(input.bytes()?).ok()?)),
                    _ => return None,
                };
                MemberSource::Label { label, overrides }
            }
            1 => MemberSource::Local(Box::new(serde_json::from_slice(input.bytes()?).ok()?)),
            _ => return None,
        };
        members.push(Member { name, span, source });
    }
    let targets = input.strings()?;
    let namespace = input.optional()?;
    let mut managers = BTreeMap::new();
    for _ in 0..input.count()? {
        managers.insert(input.string()?, input.string()?);
    }
    if !input.0.is_empty() || !package.deployments.is_empty() {
        return None;
    }
    package.deployments.insert(
        key,
        LazyDeployment::new(DeploymentDef {
            name,
            span,
            members,
            targets,
            namespace,
            managers,
            member_index: Default::default(),
        }),
    );
    Some(package)
}

/// Files by digest, from (path, mode, content).
fn entries_of(files: &[FileSlice<'_>]) -> Vec<TreeEntry> {
    files
        .iter()
        .map(|(path, mode, bytes)| TreeEntry {
            path: path.to_string(),
            mode: *mode,
            digest: Digest::of(bytes),
        })
        .collect()
}

/// The rule's deployment-wide files from the services' fragments, as the
/// Assemble runs it: by digest, and whole.
fn assemble_shared<'a>(
    rule: &dyn n2d_rules::Rule,
    deployment: &Deployment,
    services: impl Iterator<Item = (&'a str, &'a [u8])>,
) -> Option<(Vec<TreeEntry>, Vec<OutputFile>)> {
    let (names, fragments): (Vec<&str>, Vec<&[u8]>) = services.unzip();
    let fragments: Vec<serde_json::Value> = fragments
        .iter()
        .map(|fragment| serde_json::from_slice(fragment).ok())
        .collect::<Option<_>>()?;
    let named: Vec<(&str, &serde_json::Value)> = names.into_iter().zip(&fragments).collect();
    let artifacts = rule.assemble(deployment, &named).ok()?;
    let entries = artifacts
        .iter()
        .map(|a| TreeEntry {
            path: a.path.clone(),
            mode: a.mode,
            digest: Digest::of(&a.bytes),
        })
        .collect();
    Some((
        entries,
        artifacts.into_iter().map(OutputFile::from).collect(),
    ))
}

/// One file of a unit's tree, borrowed: path, mode, content digest.
type TreeItem<'a> = (&'a str, u32, Digest);

/// The files a unit's Assemble output holds, in its order (by path): the
/// deployment-wide ones and every service's, the same file from two
/// services once. `None` where two differ at one path (the Assemble fails
/// there: the full path reports it).
fn tree_of<'a>(
    shared: &'a [TreeEntry],
    services: impl Iterator<Item = TreeItem<'a>>,
) -> Option<Vec<TreeItem<'a>>> {
    let mut all: Vec<TreeItem<'a>> = shared
        .iter()
        .map(|e| (e.path.as_str(), e.mode, e.digest))
        .chain(services)
        .collect();
    all.sort_unstable_by(|a, b| (a.0, a.1, a.2 .0).cmp(&(b.0, b.1, b.2 .0)));
    all.dedup();
    all.windows(2)
        .all(|pair| pair[0].0 != pair[1].0)
        .then_some(all)
}

fn tree_digest_of(items: &[TreeItem<'_>]) -> Digest {
    crate::codec::tree_digest_of(
        items
            .iter()
            .map(|&(path, mode, ref digest)| (path, mode, digest)),
    )
}

/// Removes the kept Eval outputs of `old` that `index` no longer names,
/// so that every edit does not leave one behind. Another request's
/// snapshot may still name one: its next build then takes the full path.
fn forget_evals(stamp: &Path, old: impl IntoIterator<Item = Digest>, index: &Index) {
    let kept: HashSet<Digest> = index
        .packages
        .iter()
        .filter(|p| p.eval_at.is_none())
        .map(|p| p.eval)
        .collect();
    for digest in old {
        if !kept.contains(&digest) {
            let _ = std::fs::remove_file(eval_path(stamp, &digest));
        }
    }
}

/// What to read of a unit the edit may reach, before knowing it does.
struct PackRead {
    unit: usize,
    path: PathBuf,
    digest: Digest,
    /// The deployment's label, and the digest of the unit's own file when
    /// it is of the current Eval output of the deployment's package and
    /// that package is not among the edited.
    deployment: Label,
    own: Option<Digest>,
}

/// What was read of a unit: its pack, the universe its Resolves share, and
/// its own file (the deployment's package, reduced), already in that
/// universe.
struct UnitRead {
    pack: Option<Pack>,
    universe: Arc<SharedUniverse>,
    own: Option<Arc<[u8]>>,
}

/// What the delta path decided before writing anything.
pub(crate) struct Prepared {
    index: Index,
    dirty_units: Vec<Dirty>,
    dirty_packages: BTreeSet<u32>,
    changed_sources: BTreeSet<String>,
    /// Tasks run, with the package whose file made them run (else every
    /// changed one).
    explanations: Vec<(String, Option<usize>)>,
    counts: BTreeMap<&'static str, u64>,
    warnings: Vec<String>,
    new_evals: Vec<(Digest, Arc<[u8]>)>,
    old_evals: Vec<Digest>,
}

/// A unit the delta run re-assembles: its index, its updated pack, and its
/// Assemble output when that changed.
struct Dirty {
    unit: usize,
    pack: Pack,
    /// A new own file: the Eval output it is reduced from, and its bytes.
    own: Option<(Digest, Vec<u8>)>,
    assembled: Option<Patch>,
}

/// How a unit's folder changes: its new tree digest, the files to put and
/// the paths it no longer holds.
struct Patch {
    tree: Digest,
    files: Vec<OutputFile>,
    removed: Vec<String>,
}

impl Session {
    /// Builds by the delta path when it applies (see the module docs);
    /// `None` sends the build down the full path. `stamp` is the request's
    /// stamp file, `started_at_ns` this build's start.
    pub(crate) fn delta(
        &self,
        stamp: &Path,
        changed: Changed,
        started_at_ns: i128,
    ) -> Option<BuildResult> {
        // Whether the outputs still hold what the last build wrote (10,000
        // `stat`s) is only needed before anything is written: it runs
        // beside the work that decides what to write.
        let (hold, prepared) = rayon::join(
            || changed.outputs_hold(),
            || self.delta_prepare(stamp, &changed),
        );
        self.delta_finish(stamp, changed, started_at_ns, hold, prepared)
    }

    /// The delta path's writes, once `hold` says whether the outputs still
    /// hold what the last build wrote (`Changed::outputs_hold`) and
    /// `prepared` is what `delta_prepare` decided: `None` sends the build
    /// down the full path.
    pub(crate) fn delta_finish(
        &self,
        stamp: &Path,
        changed: Changed,
        started_at_ns: i128,
        hold: bool,
        prepared: Option<Prepared>,
    ) -> Option<BuildResult> {
        if !hold {
            return None;
        }
        crate::trace::phase("delta: outputs checked and tasks run");
        self.delta_write(stamp, changed, started_at_ns, prepared?)
    }

    /// The delta path up to its first write: which tasks run, and their
    /// outputs. `None` when it does not apply.
    pub(crate) fn delta_prepare(&self, stamp: &Path, changed: &Changed) -> Option<Prepared> {
        let mut index = read_index(&index_path(stamp))?;
        if index.started_at_ns != changed.stamp.started_at_ns
            || index.packages.len() != self.workspace.packages.len()
        {
            return None;
        }
        let root = &self.workspace.root;
        let package_at = |name: &str| {
            self.workspace
                .packages
                .binary_search_by(|p| p.package.as_str().cmp(name))
                .ok()
        };
        let workspace_file = root.join(n2d_modules::workspace::WORKSPACE_FILE);
        let mut changed_packages = Vec::new();
        let mut changed_sources: BTreeSet<&str> = BTreeSet::new();
        for file in changed.files() {
            // Everything the workspace file says is in the stamp's key: a
            // change the key did not see (a comment) changes nothing.
            if file == workspace_file {
                continue;
            }
            let relative = file.strip_prefix(root).ok();
            // Module files are sorted by package, and a package's file is
            // in its folder: found by the folder, among a few changed files.
            let package = relative.and_then(|relative| {
                let at = package_at(relative.parent()?.to_str()?)?;
                (self.workspace.packages[at].path == relative).then_some(at)
            });
            if let Some(i) = package {
                if self.workspace.packages[i].format == Format::Nix {
                    return None;
                }
                changed_packages.push(i);
            } else {
                // A file a Render reads (`files.*.source`): its Renders run
                // again. Anything else (a `watch` path, a Nix file): full.
                let relative = relative?.to_str()?;
                let source = index
                    .units
                    .iter()
                    .flat_map(|unit| &unit.sources)
                    .find(|source| source.as_str() == relative)?;
                changed_sources.insert(source);
            }
        }

        // Tasks that ran, for `--explain`: Parse, Eval and Interface ran
        // because their file changed, the others because of every file
        // whose Eval output changed.
        let mut explanations: Vec<(String, Option<usize>)> = Vec::new();
        let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
        // `cause`: the package whose file made the task run, for Parse,
        // Eval and Interface; the others ran because of every change.
        let mut run = |task: &dyn Task,
                       dependencies: &[Arc<[u8]>],
                       cause: Option<usize>|
         -> Option<Arc<[u8]>> {
            *counts.entry(task.kind()).or_default() += 1;
            explanations.push((task.identity().to_string(), cause));
            run_detached(task, dependencies).ok().map(Arc::<[u8]>::from)
        };
        // Eval outputs by package index: of the changed packages, and of
        // the others as services need them.
        let mut evals: HashMap<usize, Arc<[u8]>> = HashMap::new();
        let mut dirty_packages = BTreeSet::new();
        let mut new_evals = Vec::new();
        let mut old_evals = Vec::new();
        // While the edited files are evaluated, the units they may reach
        // are read: their packs, and the deployment each pack holds.
        crate::trace::phase("delta: snapshot index read");
        // A file touched but not changed (or merely too recent to trust its
        // stat: a build within 2 s of an edit) is compared by content, as
        // the engine's key would, before anything is read for it.
        let mut edited = Vec::with_capacity(changed_packages.len());
        for &i in &changed_packages {
            let path = root.join(&self.workspace.packages[i].path);
            let content = Digest::of(&std::fs::read(&path).ok()?);
            if content != index.packages[i].content {
                edited.push((i, path, content));
            }
        }
        let changed_set: HashSet<u32> = edited.iter().map(|&(i, ..)| i as u32).collect();
        let reads: Vec<PackRead> = index
            .units
            .iter()
            .enumerate()
            .filter(|(_, unit)| {
                unit.packages.iter().any(|p| changed_set.contains(p))
                    || unit
                        .sources
                        .iter()
                        .any(|s| changed_sources.contains(s.as_str()))
            })
            .filter_map(|(u, unit)| {
                let own = package_at(&unit.label.package)?;
                let current = !changed_set.contains(&(own as u32))
                    && unit.own_eval == index.packages[own].eval;
                Some(PackRead {
                    unit: u,
                    path: pack_path(stamp, &unit.label, &unit.target),
                    digest: unit.pack,
                    deployment: unit.label.clone(),
                    own: current.then_some(unit.own),
                })
            })
            .collect();
        let (evaluated, mut prefetched) = rayon::join(
            || -> Option<()> {
                for (i, path, content) in edited {
                    let eval = self.evaluate(i, &mut run)?;
                    // The file must still hold what was hashed: else its Eval output
                    // belongs to no content the snapshot could name.
                    if Digest::of(&std::fs::read(&path).ok()?) != content {
                        return None;
                    }
                    index.packages[i].content = content;
                    let digest = Digest::of(&eval);
                    if digest != index.packages[i].eval {
                        let interface = run(
                            &InterfaceTask {
                                identity: format!(
                                    "interface //{}",
                                    self.workspace.packages[i].package
                                ),
                            },
                            std::slice::from_ref(&eval),
                            Some(i),
                        )?;
                        if Digest::of(&interface) != index.packages[i].interface {
                            return None; // the plan may differ
                        }
                        old_evals.push(index.packages[i].eval);
                        index.packages[i].eval = digest;
                        index.packages[i].eval_at = None;
                        new_evals.push((digest, eval.clone()));
                        dirty_packages.insert(i as u32);
                    }
                    evals.insert(i, eval);
                }
                Some(())
            },
            || {
                reads
                    .into_par_iter()
                    .map(|read| (read.unit, self.read_unit(read)))
                    .collect::<HashMap<_, _>>()
            },
        );
        evaluated?;
        crate::trace::phase("delta: edited files evaluated, packs read");
        // Resolve and render the services that read a changed package.
        let mut resolved: HashMap<(String, String, String), Arc<[u8]>> = HashMap::new();
        let mut dirty_units = Vec::new();
        // The Assembles run, by identity (the rule's `assemble` itself runs
        // only for a changed fragment).
        let mut assembles = Vec::new();
        let mut warnings = Vec::new();
        for (u, unit) in index.units.iter().enumerate() {
            if !unit.packages.iter().any(|p| dirty_packages.contains(p))
                && !unit
                    .sources
                    .iter()
                    .any(|s| changed_sources.contains(s.as_str()))
            {
                continue;
            }
            let UnitRead {
                pack,
                universe,
                own: reduced,
            } = prefetched.remove(&u).unwrap_or_else(|| {
                self.read_unit(PackRead {
                    unit: u,
                    path: pack_path(stamp, &unit.label, &unit.target),
                    digest: unit.pack,
                    deployment: unit.label.clone(),
                    own: None,
                })
            });
            let Some(mut pack) = pack else {
                // A pack that is missing or not the one the index names:
                // drop the index, so that the full path writes all anew.
                forget(stamp);
                return None;
            };
            // The deployment's own package, read by every Resolve of the
            // unit: the pack's reduced copy when it is of the current Eval
            // output (the whole may be large), else the whole. A universe
            // of the unit's own, as the copy holds only its deployment.
            let own = package_at(&unit.label.package)?;
            let current = unit.own_eval == index.packages[own].eval;
            let own_eval: Arc<[u8]> = match (evals.get(&own), reduced) {
                (Some(eval), _) => eval.clone(),
                (None, Some(reduced)) => reduced,
                (None, None) if current => {
                    let own = read_own(&pack_path(stamp, &unit.label, &unit.target), &unit.own)?;
                    hold_own(&universe, &unit.label, &own)?;
                    own
                }
                (None, None) => {
                    let eval = read_eval(stamp, self.cache_dir(), &index.packages[own])?;
                    evals.insert(own, eval.clone());
                    eval
                }
            };
            let rule = self.declared().rules.get(unit.target.as_str())?.clone();
            let env = rule.env().id();
            let deployment = Arc::new(Deployment {
                package: unit.label.package.clone(),
                name: unit.label.name.clone(),
                namespace: pack.namespace.clone(),
                services: (0..pack.len())
                    .map(|i| Some(pack.name(i)?.to_string()))
                    .collect::<Option<_>>()?,
                base_layer: pack.base_layer.clone(),
            });
            let deployment_digest = deployment_digest(&deployment);
            let mut renders_changed = false;
            let mut fragments_changed = false;
            // The files of the Renders that changed, to put in the folder.
            let mut files: Vec<OutputFile> = Vec::new();
            // The paths of the files replaced: only those can be gone.
            let mut old_paths: Vec<String> = Vec::new();
            for i in 0..pack.len() {
                let (source_changed, reached) =
                    pack.reached(i, &dirty_packages, &changed_sources)?;
                if !source_changed && !reached {
                    continue;
                }
                let service = pack.edit(i)?;
                let key = (unit.label.to_string(), service.name.clone(), env.clone());
                let resolve = match resolved.get(&key) {
                    Some(bytes) => bytes.clone(),
                    None => {
                        let mut inputs = Vec::with_capacity(service.packages.len());
                        for &p in &service.packages {
                            let p = p as usize;
                            let eval = match evals.get(&p) {
                                _ if p == own => own_eval.clone(),
                                Some(eval) => eval.clone(),
                                None => {
                                    let eval =
                                        read_eval(stamp, self.cache_dir(), &index.packages[p])?;
                                    evals.insert(p, eval.clone());
                                    eval
                                }
                            };
                            inputs.push(eval);
                        }
                        let task = ResolveTask {
                            identity: format!(
                                "resolve {} in {} ({env})",
                                service.label, unit.label
                            ),
                            packages: service
                                .packages
                                .iter()
                                .map(|&p| self.workspace.packages[p as usize].package.clone())
                                .collect(),
                            deployment: unit.label.clone(),
                            service: service.name.clone(),
                            rule: rule.clone(),
                            options_digest: self.declared().digest.clone(),
                            universe: universe.clone(),
                            realized: 0,
                        };
                        let bytes = run(&task, &inputs, None)?;
                        resolved.insert(key, bytes.clone());
                        bytes
                    }
                };
                let digest = Digest::of(&resolve);
                // Its Render runs when its input changed: the Resolve output
                // (run again for the bytes when only a source changed), or a
                // source.
                if digest == service.resolve && !source_changed {
                    continue;
                }
                service.resolve = digest;
                let render = RenderTask {
                    identity: format!(
                        "render {} in {} ({})",
                        service.label, unit.label, unit.target
                    ),
                    rule: rule.clone(),
                    deployment: deployment.clone(),
                    deployment_digest,
                    sources: service
                        .sources
                        .iter()
                        .map(|s| (s.clone(), root.join(s)))
                        .collect(),
                    layers: Vec::new(),
                    closures: BTreeMap::new(),
                    shells: BTreeMap::new(),
                };
                let rendered = run(&render, &[resolve], None)?;
                let parts = rendered_parts(&rendered).ok()?;
                warnings.extend(
                    parts
                        .warnings
                        .iter()
                        .map(|warning| format!("{}: {warning}", render.identity)),
                );
                let digest = Digest::of(&rendered);
                if digest != service.render {
                    service.render = digest;
                    old_paths.extend(service.files.iter().map(|e| e.path.clone()));
                    service.files = entries_of(&parts.files);
                    files.extend(parts.files.iter().map(|(path, mode, bytes)| OutputFile {
                        path: path.to_string(),
                        bytes: bytes.to_vec(),
                        mode: *mode,
                    }));
                    if parts.fragment != service.fragment {
                        service.fragment = parts.fragment.to_vec();
                        fragments_changed = true;
                    }
                    renders_changed = true;
                }
            }
            // A deployment's package that changed: its unit's own file
            // anew, from the whole Eval output.
            let own_file = if current {
                None
            } else {
                let package: Package = serde_json::from_slice(&own_eval).ok()?;
                Some((
                    index.packages[own].eval,
                    reduced_eval(&package, &unit.label.name)?,
                ))
            };
            // The Assemble, over the files of the Renders by digest: only
            // a changed fragment runs the rule's `assemble` again.
            let mut new_shared = None;
            let assembled = if renders_changed {
                assembles.push(format!("assemble {} ({})", unit.label, unit.target));
                if fragments_changed {
                    let services: Vec<ServiceRef> = (0..pack.len())
                        .map(|i| pack.service(i))
                        .collect::<Option<_>>()?;
                    let (shared, shared_files) = assemble_shared(
                        rule.as_ref(),
                        &deployment,
                        services.iter().map(|s| (s.name, s.fragment)),
                    )?;
                    old_paths.extend(pack.shared.iter().map(|e| e.path.clone()));
                    new_shared = Some(shared);
                    files.extend(shared_files);
                }
                for file in &files {
                    materialize::check_relative_path(&file.path).ok()?;
                }
                let mut items = Vec::with_capacity(pack.len() + 8);
                pack.files_into(&mut items)?;
                let whole = tree_of(
                    new_shared.as_deref().unwrap_or(&pack.shared),
                    items.into_iter(),
                )?;
                let tree = tree_digest_of(&whole);
                let mut removed: Vec<String> = old_paths
                    .into_iter()
                    .filter(|path| whole.binary_search_by(|e| e.0.cmp(path)).is_err())
                    .collect();
                removed.sort();
                removed.dedup();
                (tree != unit.assembled).then_some(Patch {
                    tree,
                    files,
                    removed,
                })
            } else {
                None
            };

            if let Some(shared) = new_shared {
                pack.shared = shared;
            }
            dirty_units.push(Dirty {
                unit: u,
                pack,
                own: own_file,
                assembled,
            });
        }

        *counts.entry("assemble").or_default() += assembles.len() as u64;
        explanations.extend(assembles.into_iter().map(|identity| (identity, None)));
        let changed_sources = changed_sources.into_iter().map(str::to_owned).collect();
        Some(Prepared {
            index,
            dirty_units,
            dirty_packages,
            changed_sources,
            explanations,
            counts,
            warnings,
            new_evals,
            old_evals,
        })
    }

    /// The delta path's writes: the folders patched, the snapshot and the
    /// stamp.
    fn delta_write(
        &self,
        stamp: &Path,
        changed: Changed,
        started_at_ns: i128,
        prepared: Prepared,
    ) -> Option<BuildResult> {
        let Prepared {
            mut index,
            dirty_units,
            dirty_packages,
            changed_sources,
            explanations,
            mut counts,
            warnings,
            new_evals,
            old_evals,
        } = prepared;
        // Nothing failed: from here on the workspace is written.
        crate::stamp::forget(stamp);
        forget(stamp);
        let file_of = |i: usize| format!("{} changed", self.workspace.packages[i].display_path());
        let why = dirty_packages
            .iter()
            .map(|&p| file_of(p as usize))
            .chain(changed_sources.iter().map(|s| format!("{s} changed")))
            .collect::<Vec<_>>()
            .join(", ");
        let explanations = explanations
            .into_iter()
            .map(|(identity, cause)| (identity, cause.map_or_else(|| why.clone(), file_of)))
            .collect();
        let mut result = BuildResult {
            explanations,
            warnings,
            ..BuildResult::default()
        };
        // The folders patched (with their new state), while the snapshot's
        // Eval outputs and packs are written.
        let (materialized, packs) = rayon::join(
            || -> Option<BTreeMap<usize, FolderState>> {
                dirty_units
                    .par_iter()
                    .filter_map(|dirty| Some((dirty, dirty.assembled.as_ref()?)))
                    .map(|(dirty, patch)| {
                        let unit = &index.units[dirty.unit];
                        // A folder that cannot be written: the full path
                        // reports it.
                        let state = materialize::patch(
                            &unit.dir,
                            &unit.assembled.to_hex(),
                            &patch.files,
                            &patch.removed,
                            &patch.tree.to_hex(),
                        )
                        .ok()?;
                        Some((dirty.unit, state))
                    })
                    .collect()
            },
            || -> Option<Vec<(Digest, Option<Digest>)>> {
                if !new_evals
                    .par_iter()
                    .all(|(digest, bytes)| write_atomically(&eval_path(stamp, digest), bytes))
                {
                    return None;
                }
                dirty_units
                    .par_iter()
                    .map(|entry| {
                        let unit = &index.units[entry.unit];
                        let path = pack_path(stamp, &unit.label, &unit.target);
                        let own = match &entry.own {
                            Some((_, bytes)) => Some(write_own(&path, bytes)?),
                            None => None,
                        };
                        Some((write_pack(&path, &entry.pack.pieces())?, own))
                    })
                    .collect()
            },
        );
        crate::trace::phase("delta: folders patched, packs written");
        let materialized = materialized?;
        *counts.entry("materialize").or_default() += materialized.len() as u64;
        let written = packs.is_some();
        for (i, entry) in dirty_units.iter().enumerate() {
            let unit = &mut index.units[entry.unit];
            if let Some(patch) = &entry.assembled {
                unit.assembled = patch.tree;
            }
            if let (Some((own_eval, _)), Some((_, Some(own)))) =
                (&entry.own, packs.as_ref().map(|p| p[i]))
            {
                unit.own_eval = *own_eval;
                unit.own = own;
            }
            // Its key serves only the next full build, which keeps a pack
            // of the same content: an unknown key makes it write this one
            // anew, rather than every delta build hashing a thousand
            // entries for it.
            unit.key = UNKNOWN;
            if let Some(digests) = &packs {
                unit.pack = digests[i].0;
            }
        }
        index.started_at_ns = started_at_ns;

        // Counts: every task of the last build, as cached, but those run.
        let mut summary = changed.stamp.summary()?;
        for (kind, count) in counts {
            let entry = summary
                .by_kind
                .entry(kind)
                .or_insert_with(KindCounts::default);
            let moved = count.min(entry.cached);
            entry.cached -= moved;
            entry.executed += count;
            summary.cached -= moved;
            summary.executed += count;
        }
        for &u in materialized.keys() {
            let unit = &index.units[u];
            result.explanations.push((
                format!("materialize {} ({})", unit.label, unit.target),
                why.clone(),
            ));
        }
        // The stamp: the folders patched in their new state (by their
        // index in the stamp), the others as they were.
        let by_dir: HashMap<&Path, usize> = changed
            .stamp
            .outputs
            .iter()
            .enumerate()
            .map(|(i, (dir, _))| (dir.as_path(), i))
            .collect();
        let mut patched = BTreeMap::new();
        for (u, state) in materialized {
            patched.insert(*by_dir.get(index.units[u].dir.as_path())?, state);
        }
        // The index and the stamp are written side by side; the stamp is
        // put in place last, once the index is.
        let (_, stamped) = rayon::join(
            || {
                if written && write_atomically(&index_path(stamp), &encode_index(&index)) {
                    forget_evals(stamp, old_evals, &index);
                }
            },
            || {
                crate::stamp::record_patched(
                    stamp,
                    started_at_ns,
                    self.workspace.folders.as_deref(),
                    &changed,
                    &patched,
                    &summary,
                )
            },
        );
        crate::trace::phase("delta: index and stamp written");
        if let Some(stamped) = stamped {
            stamped.commit();
        }
        result.ok = true;
        result.summary = summary;
        result.outputs = changed
            .stamp
            .outputs
            .iter()
            .map(|(dir, _)| dir.clone())
            .collect();
        result.inputs = changed
            .stamp
            .inputs
            .iter()
            .map(|(file, _)| file.clone())
            .collect();
        result.strategy = crate::session::Strategy::Delta;
        Some(result)
    }

    /// A unit's pack, and a universe for its Resolves; with `read.own`,
    /// also its own file (the deployment's package reduced to the
    /// deployment), decoded into that universe with the deployment's
    /// member index built, as the first Resolve would.
    fn read_unit(&self, read: PackRead) -> UnitRead {
        let universe = Arc::new(SharedUniverse::detached(
            self.declared().options.clone(),
            self.workspace.settings.clone(),
        ));
        // The longer job first: the other is left to a free thread.
        let (own, pack) = rayon::join(
            || {
                let own = read_own(&read.path, &read.own?)?;
                hold_own(&universe, &read.deployment, &own)?;
                let name = std::slice::from_ref(&read.deployment.package);
                let held = universe.universe_of(name, std::iter::once(&own[..])).ok()?;
                held.prepare(&read.deployment);
                Some(own)
            },
            || Pack::read(&read.path, Some(read.digest)),
        );
        UnitRead {
            pack,
            universe,
            own,
        }
    }

    /// Parse and Eval of the package at `index`, run detached (never a Nix
    /// package: those take the full path).
    fn evaluate(
        &self,
        index: usize,
        run: &mut impl FnMut(&dyn Task, &[Arc<[u8]>], Option<usize>) -> Option<Arc<[u8]>>,
    ) -> Option<Arc<[u8]>> {
        let package = &self.workspace.packages[index];
        let file = package.path.to_string_lossy().replace('\\', "/");
        let parse = run(
            &ParseTask {
                identity: format!("parse {file}"),
                path: self.workspace.root.join(&package.path),
                file,
                format: package.format,
            },
            &[],
            Some(index),
        )?;
        run(
            &EvalTask {
                identity: format!("eval //{}", package.package),
                package: package.package.clone(),
            },
            &[parse],
            Some(index),
        )
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> bool {
    write_pieces_atomically(path, &[Cow::Borrowed(bytes)])
}

/// Writes the concatenation of `pieces` to `path`, whole or not at all.
fn write_pieces_atomically(path: &Path, pieces: &[Cow<'_, [u8]>]) -> bool {
    use std::io::Write;
    // The whole name and a suffix: `x.delta` and the stamp `x` are
    // written at once, and must not share a temporary file.
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".tmp-{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    let written = std::fs::File::create(&tmp)
        .and_then(|mut file| pieces.iter().try_for_each(|piece| file.write_all(piece)));
    if written.is_ok() && crate::replace::replace(&tmp, path).is_ok() {
        return true;
    }
    let _ = std::fs::remove_file(&tmp);
    false
}

/// Writes a pack from its pieces (`Pack::pieces`); returns its checksum,
/// the last piece, as the pack's digest (hashing the whole file again
/// would only repeat it).
fn write_pack(path: &Path, pieces: &[Cow<'_, [u8]>]) -> Option<Digest> {
    let digest = Digest(pieces.last()?.as_ref().try_into().ok()?);
    write_pieces_atomically(path, pieces).then_some(digest)
}

/// The pack at `path`; with `expected`, only when its digest is that
/// (which then stands for its checksum).
/// The own file beside the pack at `pack`.
fn own_path(pack: &Path) -> PathBuf {
    pack.with_extension("own")
}

/// Writes the own file of the unit whose pack is at `pack`; returns its
/// digest.
fn write_own(pack: &Path, bytes: &[u8]) -> Option<Digest> {
    write_atomically(&own_path(pack), bytes).then(|| Digest::of(bytes))
}

/// Decodes the own file `bytes` of the unit of `deployment` into
/// `universe`, where the Resolves given those bytes as the package's Eval
/// output find it (they could not read it as JSON).
fn hold_own(universe: &SharedUniverse, deployment: &Label, bytes: &[u8]) -> Option<()> {
    let package = decode_own(bytes)?;
    universe.hold(deployment.package.clone(), Arc::new(package));
    Some(())
}

/// The own file of the unit whose pack is at `pack`, when its digest is
/// `expected`.
fn read_own(pack: &Path, expected: &Digest) -> Option<Arc<[u8]>> {
    let bytes = std::fs::read(own_path(pack)).ok()?;
    (Digest::of(&bytes) == *expected).then(|| Arc::from(bytes))
}

fn read_index(path: &Path) -> Option<Index> {
    decode_index(&std::fs::read(path).ok()?)
}

fn encode_index(index: &Index) -> Vec<u8> {
    let mut out = Writer(Vec::with_capacity(64 * 1024));
    out.0.extend_from_slice(INDEX_MAGIC);
    out.u32(FORMAT);
    out.i128(index.started_at_ns);
    out.u64(index.packages.len() as u64);
    for package in &index.packages {
        out.digest(&package.content);
        out.digest(&package.eval);
        match &package.eval_at {
            Some(at) => {
                out.u32(1);
                out.u32(at.pack);
                out.u64(at.offset);
                out.u64(at.len);
            }
            None => out.u32(0),
        }
        out.digest(&package.interface);
    }
    out.u64(index.units.len() as u64);
    for unit in &index.units {
        out.bytes(unit.label.package.as_bytes());
        out.bytes(unit.label.name.as_bytes());
        out.bytes(unit.target.as_bytes());
        out.path(&unit.dir);
        out.digest(&unit.assembled);
        out.u32s(&unit.packages);
        out.strings(&unit.sources);
        out.digest(&unit.key);
        out.digest(&unit.pack);
        out.digest(&unit.own_eval);
        out.digest(&unit.own);
    }
    seal(out.0)
}

fn decode_index(bytes: &[u8]) -> Option<Index> {
    let mut input = headed(checked_body(bytes)?, INDEX_MAGIC, FORMAT)?;
    let started_at_ns = input.i128()?;
    let packages = (0..input.count()?)
        .map(|_| {
            Some(PackageEntry {
                content: input.digest()?,
                eval: input.digest()?,
                eval_at: match input.u32()? {
                    0 => None,
                    1 => Some(BlobRef {
                        pack: input.u32()?,
                        offset: input.u64()?,
                        len: input.u64()?,
                    }),
                    _ => return None,
                },
                interface: input.digest()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let units = (0..input.count()?)
        .map(|_| {
            let label = Label {
                package: input.string()?,
                name: input.string()?,
            };
            let target = input.string()?;
            let dir = input.path()?;
            let assembled = input.digest()?;
            let used = input.u32s()?;
            if used.iter().any(|&p| p as usize >= packages.len()) {
                return None;
            }
            let sources = input.strings()?;
            Some(UnitEntry {
                label,
                target,
                dir,
                assembled,
                packages: used,
                sources,
                key: input.digest()?,
                pack: input.digest()?,
                own_eval: input.digest()?,
                own: input.digest()?,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    input.0.is_empty().then_some(Index {
        started_at_ns,
        packages,
        units,
    })
}

/// One unit's services, in the deployment's order, and its files by
/// digest: a delta build reads no file it does not change. As read, each
/// service stays encoded, where the file has it, until the edit reaches
/// it, and is copied as it is when the pack is written back: a thousand
/// services decoded and encoded again for one edited service were most of
/// reading and writing a pack. A full build makes one of decoded entries.
struct Pack {
    namespace: Option<String>,
    base_layer: Option<String>,
    /// The deployment-wide files (the rule's `assemble`).
    shared: Vec<TreeEntry>,
    /// The pack's bytes, which `Slot::Encoded` ranges point into (none for
    /// a pack made whole).
    bytes: Vec<u8>,
    services: Vec<Slot>,
}

enum Slot {
    Encoded(std::ops::Range<usize>),
    Edited(ServiceEntry),
}

/// A service read in place from a pack's encoding.
struct ServiceRef<'a> {
    name: &'a str,
    /// Little-endian `u32`s.
    packages: std::borrow::Cow<'a, [u8]>,
    sources: Vec<&'a str>,
    fragment: &'a [u8],
}

impl Pack {
    /// The pack at `path` when its checksum holds, and with `expected`,
    /// only when that checksum (its digest, `write_pack`) is `expected`.
    fn read(path: &Path, expected: Option<Digest>) -> Option<Pack> {
        let bytes = std::fs::read(path).ok()?;
        let body_len = checked_body(&bytes)?.len();
        if expected.is_some_and(|digest| bytes[body_len..] != digest.0) {
            return None;
        }
        let mut input = headed(&bytes[..body_len], PACK_MAGIC, FORMAT)?;
        let namespace = input.optional()?;
        let base_layer = input.optional()?;
        let shared = decode_tree(&mut input)?;
        let count = input.count()?;
        let mut services = Vec::with_capacity(count);
        for _ in 0..count {
            let start = body_len - input.0.len();
            skip_service(&mut input)?;
            services.push(Slot::Encoded(start..body_len - input.0.len()));
        }
        if !input.0.is_empty() {
            return None;
        }
        Some(Pack {
            namespace,
            base_layer,
            shared,
            bytes,
            services,
        })
    }

    fn len(&self) -> usize {
        self.services.len()
    }

    /// The `i`th service's name.
    fn name(&self, i: usize) -> Option<&str> {
        match &self.services[i] {
            Slot::Encoded(range) => {
                std::str::from_utf8(Reader(&self.bytes[range.clone()]).bytes()?).ok()
            }
            Slot::Edited(entry) => Some(&entry.name),
        }
    }

    /// Whether the `i`th service's Render reads a changed source, and
    /// whether its Resolve reads a package whose Eval output changed.
    fn reached(
        &self,
        i: usize,
        dirty: &BTreeSet<u32>,
        changed_sources: &BTreeSet<&str>,
    ) -> Option<(bool, bool)> {
        let service = self.service(i)?;
        let source_changed = service.sources.iter().any(|s| changed_sources.contains(s));
        let reached = service.packages().any(|p| dirty.contains(&p));
        Some((source_changed, reached))
    }

    /// Every service's files, appended to `items` in service order.
    fn files_into<'a>(&'a self, items: &mut Vec<TreeItem<'a>>) -> Option<()> {
        for slot in &self.services {
            match slot {
                Slot::Encoded(range) => {
                    let mut input = Reader(&self.bytes[range.clone()]);
                    skip_to_files(&mut input)?;
                    for _ in 0..input.count()? {
                        let path = std::str::from_utf8(input.bytes()?).ok()?;
                        items.push((path, input.u32()?, input.digest()?));
                    }
                }
                Slot::Edited(entry) => items.extend(
                    entry
                        .files
                        .iter()
                        .map(|e| (e.path.as_str(), e.mode, e.digest)),
                ),
            }
        }
        Some(())
    }

    /// The `i`th service's name, and what its Resolve and Render read.
    fn service(&self, i: usize) -> Option<ServiceRef<'_>> {
        match &self.services[i] {
            Slot::Encoded(range) => scan_service(&mut Reader(&self.bytes[range.clone()])),
            Slot::Edited(entry) => Some(ServiceRef {
                name: &entry.name,
                packages: entry
                    .packages
                    .iter()
                    .flat_map(|p| p.to_le_bytes())
                    .collect(),
                sources: entry.sources.iter().map(String::as_str).collect(),
                fragment: &entry.fragment,
            }),
        }
    }

    /// The `i`th service, decoded to be changed.
    fn edit(&mut self, i: usize) -> Option<&mut ServiceEntry> {
        if let Slot::Encoded(range) = &self.services[i] {
            let entry = decode_service(&mut Reader(&self.bytes[range.clone()]))?;
            self.services[i] = Slot::Edited(entry);
        }
        match &mut self.services[i] {
            Slot::Edited(entry) => Some(entry),
            Slot::Encoded(_) => None,
        }
    }

    /// Every service, decoded.
    fn into_services(self) -> Option<Vec<ServiceEntry>> {
        let bytes = self.bytes;
        self.services
            .into_iter()
            .map(|slot| match slot {
                Slot::Encoded(range) => decode_service(&mut Reader(&bytes[range])),
                Slot::Edited(entry) => Some(entry),
            })
            .collect()
    }

    /// The pack's encoding in order, as pieces: the services the edit did
    /// not reach are slices of the bytes it was read from (a thousand of
    /// them copied into a new buffer was most of writing a pack back), the
    /// rest encoded anew. The checksum that seals it is the last piece.
    fn pieces(&self) -> Vec<Cow<'_, [u8]>> {
        let mut out = Writer(Vec::with_capacity(1024));
        out.0.extend_from_slice(PACK_MAGIC);
        out.u32(FORMAT);
        out.optional(self.namespace.as_deref());
        out.optional(self.base_layer.as_deref());
        encode_tree(&mut out, &self.shared);
        out.u64(self.services.len() as u64);
        // Either a run of services as read, or services encoded in `out`.
        let mut pieces = Vec::new();
        let mut run: Option<std::ops::Range<usize>> = None;
        for slot in &self.services {
            match slot {
                Slot::Encoded(range) => match &mut run {
                    Some(run) if run.end == range.start => run.end = range.end,
                    Some(done) => {
                        pieces.push(Cow::Borrowed(&self.bytes[done.clone()]));
                        *done = range.clone();
                    }
                    None => {
                        pieces.push(Cow::Owned(std::mem::take(&mut out.0)));
                        run = Some(range.clone());
                    }
                },
                Slot::Edited(entry) => {
                    if let Some(done) = run.take() {
                        pieces.push(Cow::Borrowed(&self.bytes[done]));
                    }
                    encode_service(&mut out, entry);
                }
            }
        }
        match run {
            Some(done) => pieces.push(Cow::Borrowed(&self.bytes[done])),
            None => pieces.push(Cow::Owned(out.0)),
        }
        let mut checksum = blake3::Hasher::new();
        for piece in &pieces {
            checksum.update(piece);
        }
        pieces.push(Cow::Owned(checksum.finalize().as_bytes().to_vec()));
        pieces
    }

    #[cfg(test)]
    fn encode(&self) -> Vec<u8> {
        self.pieces().concat()
    }
}

impl ServiceRef<'_> {
    fn packages(&self) -> impl Iterator<Item = u32> + '_ {
        self.packages
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// Reads one service's encoding in place (see [`encode_service`]).
fn scan_service<'a>(input: &mut Reader<'a>) -> Option<ServiceRef<'a>> {
    let name = std::str::from_utf8(input.bytes()?).ok()?;
    input.bytes()?; // its label
    let count = input.count()?;
    let packages = input.take(count.checked_mul(4)?)?;
    let sources = (0..input.count()?)
        .map(|_| std::str::from_utf8(input.bytes()?).ok())
        .collect::<Option<Vec<_>>>()?;
    input.digest()?; // Resolve
    input.digest()?; // Render
    let fragment = input.bytes()?;
    Some(ServiceRef {
        name,
        packages: packages.into(),
        sources,
        fragment,
    })
}

/// Moves past one service's encoding up to its files' count.
fn skip_to_files(input: &mut Reader) -> Option<()> {
    input.bytes()?; // name
    input.bytes()?; // label
    let count = input.count()?;
    input.take(count.checked_mul(4)?)?;
    for _ in 0..input.count()? {
        input.bytes()?;
    }
    input.take(64)?; // Resolve and Render digests
    input.bytes()?; // fragment
    Some(())
}

/// Moves past one service's encoding.
fn skip_service(input: &mut Reader) -> Option<()> {
    skip_to_files(input)?;
    for _ in 0..input.count()? {
        input.bytes()?;
        input.take(4 + 32)?;
    }
    Some(())
}

fn encode_service(out: &mut Writer, service: &ServiceEntry) {
    out.bytes(service.name.as_bytes());
    out.bytes(service.label.as_bytes());
    out.u32s(&service.packages);
    out.strings(&service.sources);
    out.digest(&service.resolve);
    out.digest(&service.render);
    out.bytes(&service.fragment);
    encode_tree(out, &service.files);
}

fn encode_tree(out: &mut Writer, entries: &[TreeEntry]) {
    out.u64(entries.len() as u64);
    for entry in entries {
        out.bytes(entry.path.as_bytes());
        out.u32(entry.mode);
        out.digest(&entry.digest);
    }
}

fn decode_tree(input: &mut Reader) -> Option<Vec<TreeEntry>> {
    (0..input.count()?)
        .map(|_| {
            Some(TreeEntry {
                path: input.string()?,
                mode: input.u32()?,
                digest: input.digest()?,
            })
        })
        .collect()
}

fn decode_service(input: &mut Reader) -> Option<ServiceEntry> {
    Some(ServiceEntry {
        name: input.string()?,
        label: input.string()?,
        packages: input.u32s()?,
        sources: input.strings()?,
        resolve: input.digest()?,
        render: input.digest()?,
        fragment: input.bytes()?.to_vec(),
        files: decode_tree(input)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deployment package with every kind of member, and what else a
    /// Resolve reads of it (a service, a module, a namespace, managers).
    fn package() -> Package {
        let text = r#"
[modules.base]
env.BASE = "1"

[services.api]
command = ["/bin/api"]

[deployments.other]
services = [":api"]

[deployments.prod]
namespace = "shop"
targets = ["json", "compose"]
managers.compose = "podman-compose"

[deployments.prod.services]
":api" = {}
"//web:front" = { replicas = 3, imports = [":base"] }

[deployments.prod.services.worker]
command = ["/bin/worker"]
env.QUEUE = "jobs"
"#;
        let file = n2d_modules::parse_module_file("deploy/n2d.toml", text, Format::Toml).unwrap();
        n2d_modules::eval_package("deploy", &file).unwrap()
    }

    #[test]
    fn an_own_file_holds_what_the_reduced_eval_output_holds() {
        let whole = package();
        let bytes = reduced_eval(&whole, "prod").unwrap();
        let decoded = decode_own(&bytes).unwrap();
        // What the JSON of the reduced package was before the own file had
        // an encoding of its own.
        let expected = Package {
            name: whole.name.clone(),
            source: SourceFile::new(whole.source.path.to_string(), String::new()),
            services: whole.services.clone(),
            modules: whole.modules.clone(),
            deployments: [("prod".to_string(), whole.deployments["prod"].clone())]
                .into_iter()
                .collect(),
        };
        assert_eq!(decoded, expected);
        let members = &decoded.deployments["prod"].members;
        assert_eq!(members.len(), 3);
        assert!(members.iter().any(|m| matches!(
            &m.source,
            MemberSource::Label {
                overrides: Some(_),
                ..
            }
        )));
        assert!(members
            .iter()
            .any(|m| matches!(&m.source, MemberSource::Local(_))));
    }

    fn service(name: &str, generation: u8) -> ServiceEntry {
        ServiceEntry {
            name: name.to_string(),
            label: format!("//svc:{name}"),
            packages: vec![1, generation as u32],
            sources: vec![format!("svc/{name}.conf")],
            resolve: Digest([generation; 32]),
            render: Digest([generation + 1; 32]),
            fragment: format!("{{\"name\":\"{name}\"}}").into_bytes(),
            files: vec![TreeEntry {
                path: format!("services/{name}.json"),
                mode: 0o644,
                digest: Digest([generation + 2; 32]),
            }],
        }
    }

    fn decoded(pack: Pack) -> Vec<(String, Vec<u32>, Digest, Digest, Vec<u8>)> {
        pack.into_services()
            .unwrap()
            .into_iter()
            .map(|s| (s.name, s.packages, s.resolve, s.render, s.fragment))
            .collect()
    }

    #[test]
    fn a_pack_written_back_in_pieces_reads_as_edited() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("unit.pack");
        let names = ["a", "b", "c", "d", "e"];
        let whole = Pack {
            namespace: Some("shop".to_string()),
            base_layer: None,
            shared: Vec::new(),
            bytes: Vec::new(),
            services: names.iter().map(|n| Slot::Edited(service(n, 1))).collect(),
        };
        let digest = write_pack(&path, &whole.pieces()).unwrap();
        let written = std::fs::read(&path).unwrap();
        let body = checked_body(&written).expect("sealed");
        assert_eq!(written[body.len()..], digest.0, "the digest is the seal");
        assert_eq!(whole.encode(), std::fs::read(&path).unwrap());

        // Read in place; the second and the last edited: the others are
        // copied from the bytes as they were read, in runs.
        let mut read = Pack::read(&path, Some(digest)).unwrap();
        *read.edit(1).unwrap() = service("b", 2);
        *read.edit(4).unwrap() = service("e", 3);
        assert!(
            read.pieces().len() > 3,
            "unchanged services are copied in runs"
        );
        let first = digest;
        let digest = write_pack(&path, &read.pieces()).unwrap();
        let again = Pack::read(&path, Some(digest)).expect("the checksum and digest hold");
        assert!(
            Pack::read(&path, Some(first)).is_none(),
            "a pack that is not the one named is not read"
        );
        let mut expected = whole;
        expected.services[1] = Slot::Edited(service("b", 2));
        expected.services[4] = Slot::Edited(service("e", 3));
        assert_eq!(again.namespace.as_deref(), Some("shop"));
        assert_eq!(decoded(again), decoded(expected));
        // Sealed: a checksum check alone accepts it too.
        assert!(Pack::read(&path, None).is_some());
    }

    #[test]
    fn a_damaged_own_file_does_not_decode() {
        let bytes = reduced_eval(&package(), "prod").unwrap();
        for len in [0, 8, 12, bytes.len() / 2, bytes.len() - 1] {
            assert!(decode_own(&bytes[..len]).is_none(), "cut at {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_own(&longer).is_none());
        assert!(reduced_eval(&package(), "missing").is_none());
    }
}
