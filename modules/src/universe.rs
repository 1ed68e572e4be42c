//! Resolution over the evaluated packages: a `Universe` answers which labels
//! exist, what a deployment holds, and resolves one service of a deployment
//! (or a standalone service) for one target environment.
//!
//! Resolving a service collects its bodies in order — workspace-wide
//! imports, its own imports (recursively, each module once), its
//! definitions, the deployment's definitions — merges them (`merge`), then
//! fills every `${{ }}` (`interpolate`), following references into other
//! services of the deployment, which are merged on demand.
use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::interpolate::{parse_template, referenced_labels, Piece, Reference};
use crate::label::{parse_label, Label, Pattern};
use crate::merge::{display_path, workspace_path, Def, Merged, Merger, Origin, Pending, Seg, Site};
use crate::nix::Realization;
use crate::node::{Node, Span, Value};
use crate::options::{OptionSet, OptionTree};
use crate::package::{Body, DeploymentDef, Member, MemberSource, Package};
use crate::types::{check_scalar, is_scalar, Type};
use crate::workspace::Settings;
use crate::TargetEnv;

/// What a label names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum LabelKind {
    Service,
    Module,
    Deployment,
}

impl LabelKind {
    pub fn noun(self) -> &'static str {
        match self {
            LabelKind::Service => "service",
            LabelKind::Module => "module",
            LabelKind::Deployment => "deployment",
        }
    }
}

/// Every evaluated package of a workspace, with the options services have.
pub struct Universe {
    /// Shared, so that callers that build many universes over overlapping
    /// packages (one per task) do not copy them.
    packages: BTreeMap<String, Arc<Package>>,
    options: Arc<OptionSet>,
    imports: Result<Vec<Label>, Error>,
    /// The Nix packages a build realized (see `crate::nix`); `None` where
    /// nothing is realized (`n2d show`), and references to a package's
    /// outputs stand for themselves.
    realized: Option<Arc<BTreeMap<String, Realization>>>,
}

/// A deployment: its services in order and its settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    pub label: Label,
    pub name: String,
    pub package: String,
    pub services: Vec<DeploymentService>,
    pub targets: Vec<String>,
    pub namespace: Option<String>,
    /// Target → manager.
    pub managers: BTreeMap<String, String>,
}

/// One service of a deployment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentService {
    /// The name in the deployment (unique there).
    pub name: String,
    /// `//pkg:name`, or `//pkg:deployment/name` for a service defined in the deployment.
    pub label: Label,
    /// The module file that defines the service.
    pub defined_in: String,
}

/// A resolved service: canonical JSON (deserializes into
/// `service::Service`) and where each value came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The service's label.
    pub service: String,
    /// Its name in the deployment.
    pub name: String,
    /// The deployment's label, when resolved in one.
    pub deployment: Option<String>,
    pub value: Json,
    /// Option path (`env.PORT`, `command`) → the definitions that made it.
    pub provenance: BTreeMap<String, Vec<Origin>>,
    /// Names of the deployment's services that this one's `${{ }}` refer to.
    pub references: Vec<String>,
}

/// A deployment's members by name and by label, as positions in its
/// `members`: the keys are the members' own strings, compared in place, so
/// that building the index of a 1,000-member deployment (which every delta
/// build does) copies none of them.
#[derive(Debug)]
struct MemberIndex {
    deployment: Label,
    by_name: HashTable<u32>,
    by_label: HashTable<(u32, LabelForm)>,
}

/// Which of a member's labels an entry of `by_label` stands for.
#[derive(Clone, Copy, Debug)]
enum LabelForm {
    /// The label of a package's service (`MemberSource::Label`).
    Source,
    /// `//pkg:deployment/name`, of a local member.
    Path,
    /// `//pkg:name`, of a local member (`:name` in the deployment's own
    /// package).
    Name,
}

/// A label as a package and a name in one or two parts (`a/b` as `a` and
/// `b`), hashed and compared as the joined name.
#[derive(Clone, Copy)]
struct LabelKey<'a> {
    package: &'a str,
    name: (&'a str, Option<&'a str>),
}

impl<'a> LabelKey<'a> {
    fn of(label: &'a Label) -> Self {
        LabelKey {
            package: &label.package,
            name: (&label.name, None),
        }
    }

    /// Label `form` of member `i` of `def`, the deployment `deployment`.
    fn of_member(
        deployment: &'a Label,
        def: &'a DeploymentDef,
        (i, form): (u32, LabelForm),
    ) -> Self {
        let member = &def.members[i as usize];
        match (form, &member.source) {
            (LabelForm::Source, MemberSource::Label { label, .. }) => LabelKey::of(label),
            (LabelForm::Path, _) => LabelKey {
                package: &deployment.package,
                name: (&deployment.name, Some(&member.name)),
            },
            _ => LabelKey {
                package: &deployment.package,
                name: (&member.name, None),
            },
        }
    }

    fn name_bytes(self) -> impl Iterator<Item = u8> + 'a {
        let (first, second) = self.name;
        first.bytes().chain(
            second
                .into_iter()
                .flat_map(|s| std::iter::once(b'/').chain(s.bytes())),
        )
    }

    fn name_len(self) -> usize {
        self.name.0.len() + self.name.1.map_or(0, |s| s.len() + 1)
    }

    fn hash(self) -> u64 {
        let package = fnv(FNV_OFFSET, self.package.bytes());
        fnv(fnv(package, [0xff].into_iter()), self.name_bytes())
    }

    fn matches(self, other: LabelKey) -> bool {
        self.package == other.package
            && self.name_len() == other.name_len()
            && self.name_bytes().eq(other.name_bytes())
    }
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a over `bytes`, from `state`: the same for a string whole or in
/// parts, as `LabelKey` needs.
fn fnv(state: u64, bytes: impl Iterator<Item = u8>) -> u64 {
    bytes.fold(state, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn name_hash(name: &str) -> u64 {
    fnv(FNV_OFFSET, name.bytes())
}

impl MemberIndex {
    /// Member names are unique (`DeploymentDef::members`). Labels are
    /// entered as a map would be filled in member order: a later member
    /// replaces an earlier one under the same label, but a local member's
    /// `//pkg:name` never replaces another's label.
    fn build(deployment: &Label, def: &DeploymentDef) -> MemberIndex {
        let mut by_name = HashTable::with_capacity(def.members.len());
        let mut by_label = HashTable::with_capacity(def.members.len());
        let key = |entry: (u32, LabelForm)| LabelKey::of_member(deployment, def, entry);
        for (i, member) in def.members.iter().enumerate() {
            let i = i as u32;
            by_name.insert_unique(name_hash(&member.name), i, |&at: &u32| {
                name_hash(&def.members[at as usize].name)
            });
            let forms: &[(LabelForm, bool)] = match member.source {
                MemberSource::Label { .. } => &[(LabelForm::Source, true)],
                MemberSource::Local(_) => &[(LabelForm::Path, true), (LabelForm::Name, false)],
            };
            for &(form, replace) in forms {
                let new = key((i, form));
                let hash = new.hash();
                match by_label.find_mut(hash, |&entry| key(entry).matches(new)) {
                    Some(entry) if replace => *entry = (i, form),
                    Some(_) => {}
                    None => {
                        by_label.insert_unique(hash, (i, form), |&entry| key(entry).hash());
                    }
                }
            }
        }
        MemberIndex {
            deployment: deployment.clone(),
            by_name,
            by_label,
        }
    }

    /// The position of the member named `name`.
    fn by_name(&self, def: &DeploymentDef, name: &str) -> Option<usize> {
        self.by_name
            .find(name_hash(name), |&at| def.members[at as usize].name == name)
            .map(|&at| at as usize)
    }

    /// The position of the member `label` names.
    fn by_label(&self, def: &DeploymentDef, label: &Label) -> Option<usize> {
        let probe = LabelKey::of(label);
        self.by_label
            .find(probe.hash(), |&entry| {
                LabelKey::of_member(&self.deployment, def, entry).matches(probe)
            })
            .map(|&(at, _)| at as usize)
    }
}

/// The lazily built member index of a `DeploymentDef`. A cache, not data:
/// it is never serialized, a clone starts empty, and any two compare equal.
#[derive(Default)]
pub struct MemberIndexCell(OnceLock<MemberIndex>);

impl Clone for MemberIndexCell {
    fn clone(&self) -> Self {
        MemberIndexCell::default()
    }
}

impl PartialEq for MemberIndexCell {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for MemberIndexCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemberIndexCell")
    }
}

impl Universe {
    /// Cheap: the real work happens per resolution.
    pub fn new(
        packages: BTreeMap<String, Package>,
        options: OptionSet,
        settings: &Settings,
    ) -> Self {
        let packages = packages
            .into_iter()
            .map(|(name, p)| (name, Arc::new(p)))
            .collect();
        Universe::from_shared(packages, Arc::new(options), settings)
    }

    /// `new` over packages and options that the caller shares.
    pub fn from_shared(
        packages: BTreeMap<String, Arc<Package>>,
        options: Arc<OptionSet>,
        settings: &Settings,
    ) -> Self {
        let imports = settings
            .imports
            .iter()
            .map(|text| {
                parse_label(text, None).map_err(|err| {
                    Error::new(
                        err.kind,
                        format!("in n2d.workspace.toml `imports`: {}", err.message),
                    )
                    .help("workspace-wide imports are full labels: \"//lib:defaults\"")
                })
            })
            .collect();
        Universe {
            packages,
            options,
            imports,
            realized: None,
        }
    }

    /// This universe with the Nix packages a build realized, by installable
    /// as written: resolutions then put each output path in `package`,
    /// resolve `${{ self.package.<output> }}` and give an empty `command`
    /// the package's main program. An installable missing from `realized`
    /// is an error.
    pub fn with_realizations(mut self, realized: Arc<BTreeMap<String, Realization>>) -> Self {
        self.realized = Some(realized);
        self
    }

    pub fn packages(&self) -> &BTreeMap<String, Arc<Package>> {
        &self.packages
    }

    pub fn options(&self) -> &OptionSet {
        &self.options
    }

    /// Every label with its kind, sorted; services that only exist in a
    /// deployment are `//pkg:deployment/name`.
    pub fn labels(&self) -> Vec<(Label, LabelKind)> {
        let mut out = Vec::new();
        for package in self.packages.values() {
            let label = |name: &str| Label::new(package.name.clone(), name);
            out.extend(
                package
                    .services
                    .keys()
                    .map(|n| (label(n), LabelKind::Service)),
            );
            out.extend(
                package
                    .modules
                    .keys()
                    .map(|n| (label(n), LabelKind::Module)),
            );
            for (name, deployment) in &package.deployments {
                out.push((label(name), LabelKind::Deployment));
                for member in &deployment.members {
                    if let MemberSource::Local(_) = member.source {
                        out.push((
                            label(&format!("{name}/{}", member.name)),
                            LabelKind::Service,
                        ));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The deployments `pattern` matches, sorted: what [`Universe::matching`]
    /// gives of kind deployment, without making a label for every service
    /// of the workspace.
    pub fn deployments_matching(&self, pattern: &Pattern) -> Result<Vec<Label>, Error> {
        if let Pattern::Label(_) = pattern {
            return Ok(self
                .matching(pattern)?
                .into_iter()
                .filter(|(_, kind)| *kind == LabelKind::Deployment)
                .map(|(label, _)| label)
                .collect());
        }
        let mut out: Vec<Label> = self
            .packages
            .values()
            .flat_map(|package| {
                package
                    .deployments
                    .keys()
                    .map(|name| Label::new(package.name.clone(), name))
            })
            .filter(|label| pattern.matches(label))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The labels a pattern selects; a pattern that names one label that
    /// does not exist is an error naming the nearest one.
    pub fn matching(&self, pattern: &Pattern) -> Result<Vec<(Label, LabelKind)>, Error> {
        if let Pattern::Label(label) = pattern {
            return Ok(vec![(label.clone(), self.lookup(label)?)]);
        }
        Ok(self
            .labels()
            .into_iter()
            .filter(|(l, _)| pattern.matches(l))
            .collect())
    }

    /// What `label` names; an unknown label is an error naming the nearest one.
    pub fn lookup(&self, label: &Label) -> Result<LabelKind, Error> {
        if let Some(package) = self.packages.get(&label.package) {
            if let Some(kind) = package.kind_of(&label.name) {
                return Ok(kind);
            }
            if let Some((deployment, member)) = label.name.split_once('/') {
                let local = package.deployments.get(deployment).is_some_and(|d| {
                    d.members
                        .iter()
                        .any(|m| m.name == member && matches!(m.source, MemberSource::Local(_)))
                });
                if local {
                    return Ok(LabelKind::Service);
                }
            }
        }
        Err(self.unknown_label(label, None))
    }

    /// A deployment's services and settings.
    pub fn deployment(&self, label: &Label) -> Result<DeploymentSpec, Error> {
        let (package, def) = self.deployment_def(label)?;
        let services = def
            .members
            .iter()
            .map(|member| {
                let (label, defined_in) = match &member.source {
                    MemberSource::Label { label, .. } => (
                        label.clone(),
                        self.packages
                            .get(&label.package)
                            .map(|p| p.source.path.clone())
                            .unwrap_or_default(),
                    ),
                    MemberSource::Local(_) => (
                        Label::new(
                            package.name.clone(),
                            format!("{}/{}", def.name, member.name),
                        ),
                        package.source.path.clone(),
                    ),
                };
                DeploymentService {
                    name: member.name.clone(),
                    label,
                    defined_in: defined_in.to_string(),
                }
            })
            .collect();
        Ok(DeploymentSpec {
            label: label.clone(),
            name: def.name.clone(),
            package: package.name.clone(),
            services,
            targets: def.targets.clone(),
            namespace: def.namespace.clone(),
            managers: def.managers.clone(),
        })
    }

    /// Decodes `deployment` and builds its member index now, as its first
    /// resolve would: for a caller with a core to spare before resolving.
    pub fn prepare(&self, deployment: &Label) {
        if let Ok((_, def)) = self.deployment_def(deployment) {
            self.index(deployment, def);
        }
    }

    /// Every package whose content can change the resolution of `service`
    /// in `deployment`: the deployment's, the service's, every imported
    /// module's, and those of the services its references reach.
    pub fn package_inputs(&self, deployment: &Label, service: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        out.insert(deployment.package.clone());
        let Ok((_, def)) = self.deployment_def(deployment) else {
            return out;
        };
        let index = self.index(deployment, def);
        let mut todo = vec![service.to_string()];
        let mut seen = HashSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name.clone()) {
                continue;
            }
            let Some(at) = index.by_name(def, &name) else {
                continue;
            };
            let mut bodies = Vec::new();
            let _ = self.member_bodies(deployment, def, &def.members[at], &mut bodies);
            for (package, body) in bodies {
                out.insert(package.name.clone());
                for_each_string(&body.definitions, &mut |text| {
                    if text.contains("${{") {
                        for label in referenced_labels(text, &package.name) {
                            if let Some(i) = index.by_label(def, &label) {
                                todo.push(def.members[i].name.clone());
                            }
                            out.insert(label.package);
                        }
                    }
                });
            }
        }
        out
    }

    /// Resolves the service named `service` of `deployment` for `env`.
    pub fn resolve(
        &self,
        deployment: &Label,
        service: &str,
        env: &dyn TargetEnv,
    ) -> Result<Resolved, Error> {
        self.resolve_in(deployment, service, env, true)
    }

    /// `resolve` without recording provenance (left empty): what a build
    /// needs, at a fraction of the cost. On an error it resolves again with
    /// provenance, so the message still points at the definition.
    pub fn resolve_value(
        &self,
        deployment: &Label,
        service: &str,
        env: &dyn TargetEnv,
    ) -> Result<Resolved, Error> {
        self.resolve_in(deployment, service, env, false)
            .or_else(|_| self.resolve_in(deployment, service, env, true))
    }

    fn resolve_in(
        &self,
        deployment: &Label,
        service: &str,
        env: &dyn TargetEnv,
        with_provenance: bool,
    ) -> Result<Resolved, Error> {
        let (package, def) = self.deployment_def(deployment)?;
        let index = self.index(deployment, def);
        if index.by_name(def, service).is_none() {
            let names = def.members.iter().map(|m| m.name.as_str());
            let err = Error::new(
                ErrorKind::Label,
                format!("the deployment {deployment} has no service named `{service}`"),
            )
            .at(Some(package.source.locate(def.span)));
            return Err(match did_you_mean(service, names) {
                Some(near) => err.help(format!("did you mean `{near}`?")),
                None => err.help(format!(
                    "its services are: {}",
                    def.members
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            });
        }
        let mut resolver = Resolver {
            universe: self,
            env,
            deployment: Some((deployment, def, index)),
            merged: HashMap::new(),
            stack: Vec::new(),
            root: service.to_string(),
            references: BTreeSet::new(),
            with_provenance,
            standalone: None,
            prepared: HashMap::new(),
            complete: HashSet::new(),
            merged_tops: HashSet::new(),
        };
        resolver.finish(service)
    }

    /// Resolves a service outside any deployment: references to other
    /// services are errors that suggest a deployment.
    pub fn resolve_standalone(
        &self,
        service: &Label,
        env: &dyn TargetEnv,
    ) -> Result<Resolved, Error> {
        if let Some((deployment, member)) = service.name.split_once('/') {
            let deployment = Label::new(service.package.clone(), deployment);
            return self.resolve(&deployment, member, env);
        }
        match self.lookup(service)? {
            LabelKind::Service => {}
            kind => {
                return Err(Error::new(
                    ErrorKind::Label,
                    format!("{service} is a {}, not a service", kind.noun()),
                )
                .help(format!("`n2d query {service}` shows what it is")))
            }
        }
        let mut resolver = Resolver {
            universe: self,
            env,
            deployment: None,
            merged: HashMap::new(),
            stack: Vec::new(),
            root: service.name.clone(),
            references: BTreeSet::new(),
            with_provenance: true,
            standalone: Some(service.clone()),
            prepared: HashMap::new(),
            complete: HashSet::new(),
            merged_tops: HashSet::new(),
        };
        resolver.finish(&service.name)
    }

    /// The location of a definition, with its source line, for messages
    /// about values checked after merging.
    fn origin_location(&self, origin: &Origin) -> Option<crate::error::Location> {
        let package = self
            .packages
            .values()
            .find(|p| p.source.path == origin.file)?;
        let line_text = package
            .source
            .text
            .lines()
            .nth(origin.line.checked_sub(1)? as usize)?;
        Some(crate::error::Location {
            file: origin.file.to_string(),
            line: origin.line,
            column: origin.column,
            width: 1,
            line_text: line_text.to_string(),
        })
    }

    fn deployment_def(&self, label: &Label) -> Result<(&Package, &DeploymentDef), Error> {
        self.packages
            .get(&label.package)
            .and_then(|p| p.deployments.get(&label.name).map(|d| (&**p, &**d)))
            .ok_or_else(|| self.unknown_label(label, Some(LabelKind::Deployment)))
    }

    /// The member index of `def`, the deployment `label` names (a def only
    /// ever belongs to one label, so the first caller's label is everyone's).
    fn index<'d>(&self, label: &Label, def: &'d DeploymentDef) -> &'d MemberIndex {
        def.member_index
            .0
            .get_or_init(|| MemberIndex::build(label, def))
    }

    fn unknown_label(&self, label: &Label, wanted: Option<LabelKind>) -> Error {
        let what = wanted.map(LabelKind::noun).unwrap_or("label");
        let labels = self.labels();
        let candidates: Vec<String> = labels
            .iter()
            .filter(|(_, kind)| wanted.is_none_or(|w| w == *kind))
            .map(|(l, _)| l.to_string())
            .collect();
        let wanted_text = label.to_string();
        let err = Error::new(ErrorKind::Label, format!("unknown {what} `{label}`"));
        match did_you_mean(&wanted_text, candidates.iter().map(String::as_str)) {
            Some(near) => err.help(format!("the nearest existing one is `{near}`")),
            None if self.packages.contains_key(&label.package) => err.help(format!(
                "`n2d query //{}:all` lists what the package defines",
                label.package
            )),
            None => err.help("`n2d query //...` lists every label"),
        }
    }

    /// The bodies of a member, in merge order, each with its package.
    fn member_bodies<'u>(
        &'u self,
        deployment: &Label,
        def: &'u DeploymentDef,
        member: &'u Member,
        out: &mut Vec<(&'u Package, &'u Body)>,
    ) -> Result<(), Error> {
        let deployment_package = self
            .packages
            .get(&deployment.package)
            .ok_or_else(|| self.unknown_label(deployment, Some(LabelKind::Deployment)))?;
        let _ = def;
        let mut visited = HashSet::new();
        self.workspace_imports(&mut visited, out)?;
        match &member.source {
            MemberSource::Label { label, overrides } => {
                let (package, body) =
                    self.service_body(label, Some((deployment_package, member.span)))?;
                self.body_with_imports(package, body, &mut visited, out)?;
                if let Some(overrides) = overrides {
                    self.body_with_imports(deployment_package, overrides, &mut visited, out)?;
                }
            }
            MemberSource::Local(body) => {
                self.body_with_imports(deployment_package, body, &mut visited, out)?
            }
        }
        Ok(())
    }

    fn standalone_bodies<'u>(
        &'u self,
        label: &Label,
        out: &mut Vec<(&'u Package, &'u Body)>,
    ) -> Result<(), Error> {
        let mut visited = HashSet::new();
        self.workspace_imports(&mut visited, out)?;
        let (package, body) = self.service_body(label, None)?;
        self.body_with_imports(package, body, &mut visited, out)
    }

    fn workspace_imports<'u>(
        &'u self,
        visited: &mut HashSet<&'u Label>,
        out: &mut Vec<(&'u Package, &'u Body)>,
    ) -> Result<(), Error> {
        let imports = self.imports.as_ref().map_err(Clone::clone)?;
        for label in imports {
            let mut stack = Vec::new();
            self.expand_module(label, None, visited, &mut stack, out)?;
        }
        Ok(())
    }

    fn service_body(
        &self,
        label: &Label,
        from: Option<(&Package, Span)>,
    ) -> Result<(&Package, &Body), Error> {
        let found = self
            .packages
            .get(&label.package)
            .and_then(|p| p.services.get(&label.name).map(|b| (&**p, b)));
        found.ok_or_else(|| {
            let err = match self
                .packages
                .get(&label.package)
                .and_then(|p| p.kind_of(&label.name))
            {
                Some(kind) => Error::new(
                    ErrorKind::Label,
                    format!("{label} is a {}, not a service", kind.noun()),
                )
                .help("a deployment lists services; modules are imported by services"),
                None => self.unknown_label(label, Some(LabelKind::Service)),
            };
            err.at(from.map(|(p, span)| p.source.locate(span)))
        })
    }

    fn body_with_imports<'u>(
        &'u self,
        package: &'u Package,
        body: &'u Body,
        visited: &mut HashSet<&'u Label>,
        out: &mut Vec<(&'u Package, &'u Body)>,
    ) -> Result<(), Error> {
        for (label, span) in &body.imports {
            let mut stack = Vec::new();
            self.expand_module(label, Some((package, *span)), visited, &mut stack, out)?;
        }
        out.push((package, body));
        Ok(())
    }

    fn expand_module<'u>(
        &'u self,
        label: &'u Label,
        from: Option<(&'u Package, Span)>,
        visited: &mut HashSet<&'u Label>,
        stack: &mut Vec<&'u Label>,
        out: &mut Vec<(&'u Package, &'u Body)>,
    ) -> Result<(), Error> {
        let at = from.map(|(p, span)| p.source.locate(span));
        if let Some(start) = stack.iter().position(|l| *l == label) {
            let cycle: Vec<String> = stack[start..]
                .iter()
                .chain(std::iter::once(&label))
                .map(|l| l.to_string())
                .collect();
            return Err(Error::new(
                ErrorKind::ImportCycle,
                format!("import cycle: {}", cycle.join(" → ")),
            )
            .at(at)
            .help("remove one of these imports; a module cannot import itself, directly or not"));
        }
        if visited.contains(label) {
            return Ok(());
        }
        let package = self.packages.get(&label.package);
        let Some((package, body)) =
            package.and_then(|p| p.modules.get(&label.name).map(|b| (p, b)))
        else {
            let err = match package.and_then(|p| p.kind_of(&label.name)) {
                Some(kind) => Error::new(
                    ErrorKind::Label,
                    format!(
                        "cannot import {label}: it is a {}, not a module",
                        kind.noun()
                    ),
                )
                .help("move the shared definitions into a [modules.NAME] and import that"),
                None => self.unknown_label(label, Some(LabelKind::Module)),
            };
            return Err(err.at(at));
        };
        stack.push(label);
        for (import, span) in &body.imports {
            self.expand_module(import, Some((package, *span)), visited, stack, out)?;
        }
        stack.pop();
        visited.insert(label);
        out.push((package, body));
        Ok(())
    }
}

/// One resolution: merged services of the deployment (on demand) and the
/// references being followed (for cycle detection).
struct Resolver<'u> {
    universe: &'u Universe,
    env: &'u dyn TargetEnv,
    deployment: Option<(&'u Label, &'u DeploymentDef, &'u MemberIndex)>,
    merged: HashMap<String, Merged<'u>>,
    stack: Vec<(String, Vec<Seg<'u>>)>,
    root: String,
    references: BTreeSet<String>,
    /// Whether the resolved service records where its values came from.
    with_provenance: bool,
    /// The service's label when resolved outside any deployment.
    standalone: Option<Label>,
    prepared: HashMap<String, Prepared<'u>>,
    /// Services merged in full (the one resolved).
    complete: HashSet<String>,
    /// (service, top-level option) merged for references.
    merged_tops: HashSet<(String, String)>,
}

/// What merging a service needs, computed once per resolution.
struct Prepared<'u> {
    defs: Vec<Def<'u>>,
    layers: Vec<&'u OptionTree>,
    context: (Option<&'u crate::node::SourceFile>, Span),
}

impl<'u> Resolver<'u> {
    fn finish(&mut self, service: &str) -> Result<Resolved, Error> {
        self.ensure_merged(service, None)?;
        let keys: Vec<Vec<Seg<'u>>> = self.merged[service].pendings.keys().cloned().collect();
        for key in keys {
            self.evaluate(service, &key)?;
        }
        let label = self.label_of(service);
        let merged = self
            .merged
            .remove(service)
            .unwrap_or_else(|| unreachable!("merged above"));
        let mut value = merged.value;
        let provenance: BTreeMap<String, Vec<Origin>> = merged.provenance.into_iter().collect();
        self.check_service(&value, &provenance)?;
        if let Some(files) = value.get_mut("files").and_then(Json::as_object_mut) {
            for (name, file) in files.iter_mut() {
                if let Some(file) = file.as_object_mut() {
                    file.insert(
                        "path".into(),
                        Json::String(self.env.file_path(service, name)),
                    );
                }
            }
        }
        if let Some(realization) = self.realization_of(&value, service)? {
            if let Some(object) = value.as_object_mut() {
                let empty = object
                    .get("command")
                    .and_then(Json::as_array)
                    .is_none_or(|c| c.is_empty());
                if empty {
                    object.insert("command".into(), serde_json::json!([realization.program()]));
                }
                object.insert("package".into(), Json::String(realization.out.clone()));
            }
        }
        if let Some(object) = value.as_object_mut() {
            object.insert("name".into(), Json::String(service.to_string()));
            object.insert("label".into(), Json::String(label.to_string()));
        }
        Ok(Resolved {
            service: label.to_string(),
            name: service.to_string(),
            deployment: self.deployment.map(|(l, _, _)| l.to_string()),
            value,
            provenance,
            references: std::mem::take(&mut self.references).into_iter().collect(),
        })
    }

    /// The realization of a resolved service's `package`, when it is a Nix
    /// installable and this universe realizes packages.
    fn realization_of(
        &self,
        value: &Json,
        service: &str,
    ) -> Result<Option<&'u Realization>, Error> {
        let Some(realized) = &self.universe.realized else {
            return Ok(None);
        };
        let Some(package) = value.get("package").and_then(Json::as_str) else {
            return Ok(None);
        };
        if crate::nix::installable_kind(package).is_none() {
            return Ok(None);
        }
        match realized.get(package) {
            Some(realization) => Ok(Some(realization)),
            None => Err(Error::new(
                ErrorKind::Reference,
                format!("the Nix package `{package}` of the service `{service}` was not realized"),
            )
            .help("n2d realizes the installables written literally as `package = \"...\"` in a module file; write it there rather than through `${{ }}`")),
        }
    }

    /// `${{ <service>.package.<output> }}`: an output path of the service's
    /// Nix package.
    fn package_output(
        &mut self,
        target: &str,
        output: &str,
        reference: &Reference,
        pending: &Pending<'u>,
    ) -> Result<Json, Error> {
        self.force(target, &[Seg::Key(Cow::Borrowed("package"))])?;
        let package = self.merged[target]
            .value
            .get("package")
            .and_then(Json::as_str)
            .map(str::to_string);
        let not_nix = |why: String| {
            Error::new(
                ErrorKind::Reference,
                format!("`${{{{ {} }}}}`: {why}", reference.text),
            )
            .at(locate(pending))
            .help("set `package` to a Nix file (`hello.nix`), a flake installable (`nixpkgs#hello`) or a store path")
        };
        let Some(package) = package.filter(|p| crate::nix::installable_kind(p).is_some()) else {
            return Err(not_nix(format!(
                "the service `{target}` has no Nix package"
            )));
        };
        let Some(realized) = &self.universe.realized else {
            // Nothing is realized here (`n2d show`): the reference stands
            // for itself, as Nix's `placeholder` does.
            return Ok(Json::String(format!("${{{{ {} }}}}", reference.text)));
        };
        let Some(realization) = realized.get(&package) else {
            return Err(not_nix(format!(
                "the Nix package `{package}` of `{target}` was not realized: write `package` literally in a module file"
            )));
        };
        match realization.outputs.get(output) {
            Some(path) => Ok(Json::String(path.clone())),
            None => Err(Error::new(
                ErrorKind::Reference,
                format!(
                    "`${{{{ {} }}}}`: the package `{package}` has no output `{output}`",
                    reference.text
                ),
            )
            .at(locate(pending))
            .help(format!(
                "its outputs are: {}",
                realization
                    .outputs
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }

    /// Checks that need the whole merged service: each file has one
    /// content, probes name a declared port, file modes are octal.
    fn check_service(
        &self,
        value: &Json,
        provenance: &BTreeMap<String, Vec<Origin>>,
    ) -> Result<(), Error> {
        let at = |path: &str| {
            provenance
                .range(path.to_string()..)
                .take_while(|(p, _)| p.starts_with(path))
                .find_map(|(_, origins)| origins.iter().find(|o| !o.default))
                .and_then(|origin| self.universe.origin_location(origin))
        };
        if let Some(files) = value.get("files").and_then(Json::as_object) {
            for (name, file) in files {
                let quoted = crate::merge::quote_key(name);
                let has = |k: &str| file.get(k).is_some_and(|v| !v.is_null());
                if has("text") == has("source") {
                    return Err(Error::new(
                        ErrorKind::Type,
                        format!("the file `{name}` needs exactly one of `text` and `source`"),
                    )
                    .at(at(&format!("files.{quoted}.")))
                    .help(format!(
                        "write files.{quoted}.text = \"...\" or files.{quoted}.source = \"path/from/this/folder\""
                    )));
                }
                let mode = file.get("mode").and_then(Json::as_str).unwrap_or("0644");
                let octal = (3..=4).contains(&mode.len())
                    && mode.bytes().all(|b| (b'0'..=b'7').contains(&b));
                if !octal {
                    return Err(Error::new(
                        ErrorKind::Type,
                        format!("invalid value for option `files.{quoted}.mode`: `{mode}` is not an octal mode"),
                    )
                    .at(at(&format!("files.{quoted}.mode")))
                    .help(format!("write three or four octal digits, e.g. files.{quoted}.mode = \"0600\"")));
                }
            }
        }
        let ports = value.get("ports").and_then(Json::as_object);
        for probe in ["http", "tcp"] {
            let Some(port) = value
                .pointer(&format!("/readiness/{probe}/port"))
                .and_then(Json::as_str)
            else {
                continue;
            };
            let declared = ports.is_some_and(|p| p.contains_key(port));
            let numeric = port.parse::<u16>().is_ok_and(|n| n > 0);
            if !declared && !numeric {
                let names: Vec<&str> = ports
                    .map(|p| p.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                let err = Error::new(
                    ErrorKind::Reference,
                    format!(
                        "`readiness.{probe}.port` names the port `{port}`, which is not in `ports`"
                    ),
                )
                .at(at(&format!("readiness.{probe}.port")));
                return Err(match did_you_mean(port, names.iter().copied()) {
                    Some(near) => err.help(format!("did you mean `{near}`?")),
                    None => err.help(format!(
                        "declare it, e.g. ports.{port} = 8080, or write the number as a string"
                    )),
                });
            }
        }
        Ok(())
    }

    fn standalone_label(&self) -> Option<&Label> {
        self.standalone.as_ref()
    }

    fn label_of(&self, service: &str) -> Label {
        if let Some(label) = self.standalone_label() {
            return label.clone();
        }
        let (deployment, def, index) = self
            .deployment
            .unwrap_or_else(|| unreachable!("a deployment or a standalone label"));
        let member = &def.members[index.by_name(def, service).expect("a member")];
        match &member.source {
            MemberSource::Label { label, .. } => label.clone(),
            MemberSource::Local(_) => Label::new(
                deployment.package.clone(),
                format!("{}/{}", deployment.name, member.name),
            ),
        }
    }

    /// Merges `service`, or only its top-level option `top`: services other
    /// than the one resolved are merged just as far as references need.
    fn ensure_merged(&mut self, service: &str, top: Option<&str>) -> Result<(), Error> {
        if self.complete.contains(service)
            || top.is_some_and(|t| {
                self.merged_tops
                    .contains(&(service.to_string(), t.to_string()))
            })
        {
            return Ok(());
        }
        if !self.prepared.contains_key(service) {
            let prepared = self.prepare(service)?;
            self.prepared.insert(service.to_string(), prepared);
        }
        let prepared = &self.prepared[service];
        let deployment = self.deployment;
        let map_dependency = move |key: &str, package: &str| -> Result<String, Error> {
            dependency_name(key, package, deployment)
        };
        let is_root = self.with_provenance && service == self.root;
        let merged = Merger::new(&map_dependency, prepared.context, is_root).merge_service(
            top,
            &prepared.layers,
            prepared.defs.clone(),
        )?;
        match top {
            None => {
                self.complete.insert(service.to_string());
            }
            Some(t) => {
                self.merged_tops
                    .insert((service.to_string(), t.to_string()));
            }
        }
        match self.merged.get_mut(service) {
            Some(existing) => {
                if let (Some(into), Json::Object(from)) =
                    (existing.value.as_object_mut(), merged.value)
                {
                    into.extend(from);
                }
                existing.pendings.extend(merged.pendings);
                existing.provenance.extend(merged.provenance);
            }
            None => {
                self.merged.insert(service.to_string(), merged);
            }
        }
        Ok(())
    }

    /// The definitions and option layers of a service, in merge order.
    fn prepare(&self, service: &str) -> Result<Prepared<'u>, Error> {
        let universe = self.universe;
        let mut bodies = Vec::new();
        match (self.deployment, self.standalone_label()) {
            (Some((label, def, index)), _) => universe.member_bodies(
                label,
                def,
                &def.members[index.by_name(def, service).expect("a member")],
                &mut bodies,
            )?,
            (None, Some(label)) => universe.standalone_bodies(label, &mut bodies)?,
            (None, None) => unreachable!("a deployment or a standalone label"),
        }
        let mut layers: Vec<&'u OptionTree> = vec![&universe.options.tree];
        layers.extend(
            bodies
                .iter()
                .map(|(_, b)| &b.options)
                .filter(|o| !o.entries.is_empty()),
        );
        let defs = bodies
            .iter()
            .map(|(package, body)| {
                Def::plain(
                    &body.definitions,
                    Site::File {
                        source: &package.source,
                        package: &package.name,
                    },
                )
            })
            .collect();
        let context = bodies
            .last()
            .map(|(p, b)| (Some(&p.source), b.span))
            .unwrap_or((None, Span::default()));
        Ok(Prepared {
            defs,
            layers,
            context,
        })
    }

    /// Evaluates every pending value of `service` at, above or below `path`.
    fn force(&mut self, service: &str, path: &[Seg<'u>]) -> Result<(), Error> {
        let top = match path.first() {
            Some(Seg::Key(top)) => Some(top.to_string()),
            _ => None,
        };
        self.ensure_merged(service, top.as_deref())?;
        let pendings = &self.merged[service].pendings;
        let mut keys: Vec<Vec<Seg<'u>>> = (0..path.len())
            .map(|i| &path[..i])
            .filter(|prefix| pendings.contains_key(*prefix))
            .map(<[Seg<'u>]>::to_vec)
            .collect();
        keys.extend(
            pendings
                .range(path.to_vec()..)
                .take_while(|(k, _)| k.starts_with(path))
                .map(|(k, _)| k.clone()),
        );
        for key in keys {
            self.evaluate(service, &key)?;
        }
        Ok(())
    }

    fn evaluate(&mut self, service: &str, key: &[Seg<'u>]) -> Result<(), Error> {
        let Some(pending) = self
            .merged
            .get(service)
            .and_then(|m| m.pendings.get(key))
            .cloned()
        else {
            return Ok(());
        };
        if let Some(start) = self
            .stack
            .iter()
            .position(|(s, k)| s == service && k == key)
        {
            let cycle: Vec<String> = self.stack[start..]
                .iter()
                .chain(std::iter::once(&(service.to_string(), key.to_vec())))
                .map(|(s, k)| format!("{s}.{}", display_path(k)))
                .collect();
            return Err(Error::new(
                ErrorKind::InterpolationCycle,
                format!("interpolation cycle: {}", cycle.join(" → ")),
            )
            .at(locate(&pending))
            .help("one of these values must be written out instead of referring to the next"));
        }
        self.stack.push((service.to_string(), key.to_vec()));
        let result = self.substitute(service, key, &pending);
        self.stack.pop();
        let value = result?;
        let merged = self
            .merged
            .get_mut(service)
            .unwrap_or_else(|| unreachable!("merged before"));
        if let Some(slot) = pointer_mut(&mut merged.value, key) {
            *slot = value;
        }
        merged.pendings.remove(key);
        Ok(())
    }

    fn substitute(
        &mut self,
        service: &str,
        key: &[Seg<'_>],
        pending: &Pending<'u>,
    ) -> Result<Json, Error> {
        let package = pending.site.package();
        let option = display_path(key);
        let pieces = parse_template(&pending.template, package).map_err(|why| {
            Error::new(ErrorKind::Reference, format!("invalid interpolation in option `{option}`: {why}"))
                .at(locate(pending))
                .help("write ${{ self.<option> }} or ${{ //package:service.<option> }}; $${{ is a literal ${{")
        })?;
        let value = match pieces.as_slice() {
            [Piece::Ref(reference)] => self.follow(service, reference, pending)?,
            _ => {
                let mut text = String::new();
                for piece in &pieces {
                    match piece {
                        Piece::Text(t) => text.push_str(t),
                        Piece::Ref(reference) => {
                            let value = self.follow(service, reference, pending)?;
                            text.push_str(&as_text(&value).ok_or_else(|| {
                                Error::new(
                                    ErrorKind::Type,
                                    format!(
                                        "`${{{{ {} }}}}` is {}, which cannot be put into text (option `{option}`)",
                                        reference.text,
                                        json_kind(&value)
                                    ),
                                )
                                .at(locate(pending))
                                .help("refer to a single value (a string, a number or a bool) inside a longer string")
                            })?);
                        }
                    }
                }
                Json::String(text)
            }
        };
        check_substituted(pending.ty, value, &option, pending)
    }

    /// The value a reference names.
    fn follow(
        &mut self,
        service: &str,
        reference: &Reference,
        pending: &Pending<'u>,
    ) -> Result<Json, Error> {
        let target = match &reference.service {
            None => service.to_string(),
            Some(label) => self.member_of(label, reference, pending)?,
        };
        if target != service && service == self.root {
            self.references.insert(target.clone());
        }
        let path = &reference.path;
        let computed = match path.as_slice() {
            [h] if h == "host" => Some(Json::String(self.env.host(&target))),
            [n] if n == "name" => Some(Json::String(target.clone())),
            [a, port] if a == "address" => {
                let ports = [
                    Seg::Key(Cow::Borrowed("ports")),
                    Seg::Key(Cow::Owned(port.clone())),
                ];
                self.force(&target, &ports)?;
                let value = self.merged[&target]
                    .value
                    .get("ports")
                    .and_then(|p| p.get(port))
                    .cloned();
                let Some(port_number) = value.and_then(|v| v.as_i64()) else {
                    let known = self.merged[&target]
                        .value
                        .get("ports")
                        .and_then(Json::as_object)
                        .map(|m| m.keys().cloned().collect::<Vec<_>>())
                        .unwrap_or_default();
                    let err = Error::new(
                        ErrorKind::Reference,
                        format!(
                            "`${{{{ {} }}}}`: the service `{target}` has no port named `{port}`",
                            reference.text
                        ),
                    )
                    .at(locate(pending));
                    return Err(match did_you_mean(port, known.iter().map(String::as_str)) {
                        Some(near) => err.help(format!("did you mean `{near}`?")),
                        None => err.help(format!("declare it: ports.{port} = 8080 in `{target}`")),
                    });
                };
                Some(Json::String(format!(
                    "{}:{port_number}",
                    self.env.host(&target)
                )))
            }
            [p, output] if p == "package" => {
                Some(self.package_output(&target, output, reference, pending)?)
            }
            [f, name, p] if f == "files" && p == "path" => {
                self.force(&target, &[Seg::Key(Cow::Borrowed("files"))])?;
                let exists = self.merged[&target]
                    .value
                    .get("files")
                    .and_then(|f| f.get(name))
                    .is_some();
                if !exists {
                    return Err(Error::new(
                        ErrorKind::Reference,
                        format!(
                            "`${{{{ {} }}}}`: the service `{target}` has no file named `{name}`",
                            reference.text
                        ),
                    )
                    .at(locate(pending))
                    .help(format!("define it: files.\"{name}\".text = \"...\"")));
                }
                Some(Json::String(self.env.file_path(&target, name)))
            }
            _ => None,
        };
        if let Some(value) = computed {
            return Ok(value);
        }
        let segs: Vec<Seg<'u>> = path
            .iter()
            .map(|s| Seg::Key(Cow::Owned(s.clone())))
            .collect();
        self.force(&target, &segs)?;
        let mut current = &self.merged[&target].value;
        for (depth, segment) in path.iter().enumerate() {
            match current.get(segment) {
                Some(next) => current = next,
                None => {
                    let known: Vec<String> = current
                        .as_object()
                        .map(|m| m.keys().cloned().collect())
                        .unwrap_or_default();
                    let so_far = path[..=depth].join(".");
                    let err = Error::new(
                        ErrorKind::Reference,
                        format!(
                            "`${{{{ {} }}}}`: `{so_far}` is not a value of the service `{target}`",
                            reference.text
                        ),
                    )
                    .at(locate(pending));
                    return Err(
                        match did_you_mean(segment, known.iter().map(String::as_str)) {
                            Some(near) => err.help(format!("did you mean `{near}`?")),
                            None => err.help(
                                "refer to an option of the service, e.g. ${{ self.ports.http }}",
                            ),
                        },
                    );
                }
            }
        }
        Ok(current.clone())
    }

    fn member_of(
        &self,
        label: &Label,
        reference: &Reference,
        pending: &Pending<'u>,
    ) -> Result<String, Error> {
        let Some((deployment, def, index)) = self.deployment else {
            if self.standalone_label() == Some(label) {
                return Ok(self.root.clone());
            }
            return Err(Error::new(
                ErrorKind::Reference,
                format!(
                    "`${{{{ {} }}}}` refers to the service {label}, which only exists in a deployment",
                    reference.text
                ),
            )
            .at(locate(pending))
            .help("resolve the service in a deployment that holds both: pass --deployment //package:deployment"));
        };
        match index.by_label(def, label) {
            Some(i) => Ok(def.members[i].name.clone()),
            None => Err(Error::new(
                ErrorKind::Reference,
                format!(
                    "`${{{{ {} }}}}` refers to {label}, which is not a service of the deployment {deployment}",
                    reference.text
                ),
            )
            .at(locate(pending))
            .help(format!("add \"{label}\" to the `services` of {deployment}"))),
        }
    }
}

fn dependency_name(
    key: &str,
    package: &str,
    deployment: Option<(&Label, &DeploymentDef, &MemberIndex)>,
) -> Result<String, Error> {
    let is_label = key.starts_with("//") || key.starts_with(':');
    match deployment {
        Some((deployment, def, index)) => {
            let found = if is_label {
                let label = parse_label(key, Some(package))?;
                index.by_label(def, &label)
            } else {
                index.by_name(def, key)
            };
            match found {
                Some(i) => Ok(def.members[i].name.clone()),
                None => Err(Error::new(
                    ErrorKind::Reference,
                    format!("`depends_on` names `{key}`, which is not a service of the deployment {deployment}"),
                )
                .help(format!("add it to the `services` of {deployment}, or remove the dependency"))),
            }
        }
        None if is_label => {
            let label = parse_label(key, Some(package))?;
            Ok(label
                .name
                .rsplit('/')
                .next()
                .unwrap_or(&label.name)
                .to_string())
        }
        None => Ok(key.to_string()),
    }
}

fn locate(pending: &Pending<'_>) -> Option<crate::error::Location> {
    match pending.site {
        Site::File { source, .. } => Some(source.locate(pending.span)),
        Site::Default(_) => None,
    }
}

/// Type-checks a value that replaced an interpolation.
fn check_substituted(
    ty: &Type,
    value: Json,
    option: &str,
    pending: &Pending<'_>,
) -> Result<Json, Error> {
    let text_type = |t: &Type| matches!(t, Type::Str | Type::Lines | Type::Path | Type::Source);
    let value = match (&value, text_type(ty)) {
        (Json::Number(_) | Json::Bool(_), true) => {
            Json::String(as_text(&value).unwrap_or_default())
        }
        _ => value,
    };
    let wrong = |detail: String| {
        Error::new(
            ErrorKind::Type,
            format!(
                "option `{option}` expects {}, got {detail} (from `{}`)",
                ty.expectation(),
                pending.template
            ),
        )
        .at(locate(pending))
        .help(ty.hint(option.rsplit('.').next().unwrap_or(option)))
    };
    if *ty == Type::Attrs {
        return Ok(value);
    }
    let node = Node::from_json(&value, pending.span);
    if is_scalar(ty) {
        return match check_scalar(ty, &node) {
            Ok(checked) if *ty == Type::Source => {
                workspace_path(pending.site.package(), checked.as_str().unwrap_or_default())
                    .map(Json::String)
                    .map_err(|why| wrong(format!("a path that {why}")))
            }
            Ok(checked) => Ok(checked),
            Err(None) => Err(wrong(json_kind(&value).to_string())),
            Err(Some(why)) => Err(wrong(why)),
        };
    }
    if ty.matches(&node) && !contains_template(&node) {
        Ok(value)
    } else {
        Err(wrong(json_kind(&value).to_string()))
    }
}

fn contains_template(node: &Node) -> bool {
    let mut found = false;
    for_each_string(node, &mut |s| found |= s.contains("${{"));
    found
}

fn as_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn json_kind(value: &Json) -> &'static str {
    match value {
        Json::Null => "null",
        Json::Bool(_) => "a bool",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "a table",
    }
}

fn pointer_mut<'j>(value: &'j mut Json, path: &[Seg<'_>]) -> Option<&'j mut Json> {
    let mut current = value;
    for seg in path {
        current = match seg {
            Seg::Key(k) => current.get_mut(k.as_ref())?,
            Seg::Index(i) => current.get_mut(*i)?,
        };
    }
    Some(current)
}

fn for_each_string(node: &Node, f: &mut dyn FnMut(&str)) {
    match &node.value {
        Value::Str(s) => f(s),
        Value::List(items) => items.iter().for_each(|i| for_each_string(i, f)),
        Value::Table(entries) => entries.iter().for_each(|(_, v)| for_each_string(v, f)),
        _ => {}
    }
}
