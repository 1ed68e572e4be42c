//! The Plan task's work: which deployments a build request names, for which
//! targets, and for each service the packages and source files its
//! resolution and rendering depend on — the edges of the second stage.
//!
//! The plan is computed from the evaluated packages and cached like any
//! task output, so a no-op build reads one blob here instead of evaluating
//! the workspace.
use std::collections::{BTreeMap, BTreeSet};

use n2d_modules::node::{Node, Value};
use n2d_modules::package::{Body, MemberSource};
use n2d_modules::{parse_pattern, Error, ErrorKind, Label, Pattern, Universe};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// What one build does, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub deployments: Vec<PlannedDeployment>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedDeployment {
    pub label: Label,
    pub namespace: Option<String>,
    pub targets: Vec<String>,
    pub managers: BTreeMap<String, String>,
    /// In the deployment's order.
    pub services: Vec<PlannedService>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedService {
    pub name: String,
    pub label: Label,
    /// Packages whose content can change this service's resolution.
    pub packages: BTreeSet<String>,
    /// Workspace-relative source files (`files.*.source`, `env.*.file`) the
    /// service's packages mention: declared inputs of its Render tasks.
    pub sources: BTreeSet<String>,
    /// Workspace-relative paths of the service's packages' `watch` options:
    /// what `n2d watch` watches besides module files and sources.
    pub watch: BTreeSet<String>,
    /// Nix installables written as `package` in the service's packages, as
    /// written: what the build realizes before resolving the service.
    #[serde(default)]
    pub nix: BTreeSet<String>,
    /// Local programs written as `package` (workspace-relative files; also
    /// in `sources`): the `oci` target's program layers.
    #[serde(default)]
    pub programs: BTreeSet<String>,
}

/// What the user asked for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanRequest {
    pub patterns: Vec<String>,
    /// Targets named on the command line; empty = each deployment's own.
    pub targets: Vec<String>,
    pub current_package: Option<String>,
    pub default_targets: Vec<String>,
    /// Every target a rule exists for.
    pub known_targets: Vec<String>,
}

/// Computes the plan of `request` over `universe`.
pub fn make_plan(universe: &Universe, request: &PlanRequest) -> Result<Plan, Error> {
    for target in request.targets.iter().chain(&request.default_targets) {
        check_target(target, &request.known_targets, None)?;
    }
    let mut selected: Vec<Label> = Vec::new();
    for text in &request.patterns {
        let pattern = parse_pattern(text, request.current_package.as_deref())?;
        let deployments = universe.deployments_matching(&pattern)?;
        if deployments.is_empty() {
            // What a label names instead, for the message.
            let matches = match &pattern {
                Pattern::Label(_) => universe.matching(&pattern)?,
                _ => Vec::new(),
            };
            return Err(match (&pattern, matches.first()) {
                (Pattern::Label(label), Some((_, kind))) => Error::new(
                    ErrorKind::Label,
                    format!("`{label}` is a {}, not a deployment", kind.noun()),
                )
                .help("build a deployment that includes it (`n2d query //...` lists them), or print it with `n2d show`"),
                _ => Error::new(ErrorKind::Label, format!("no deployment matches `{pattern}`"))
                    .help("`n2d query //...` lists every label of the workspace"),
            });
        }
        for label in deployments {
            if !selected.contains(&label) {
                selected.push(label);
            }
        }
    }
    // Each deployment decoded, its targets chosen, in parallel; the first
    // error in request order is the one reported.
    let specs = selected
        .par_iter()
        .map(|label| {
            let spec = universe.deployment(label)?;
            let targets = if !request.targets.is_empty() {
                request.targets.clone()
            } else if !spec.targets.is_empty() {
                for target in &spec.targets {
                    check_target(target, &request.known_targets, Some(label))?;
                }
                spec.targets.clone()
            } else {
                request.default_targets.clone()
            };
            Ok((spec, targets))
        })
        .collect::<Vec<Result<_, Error>>>()
        .into_iter()
        .collect::<Result<Vec<_>, Error>>()?;
    // The packages each service reads, for every service of every
    // deployment at once: following the references of 10,000 services is
    // most of a plan's time.
    let services: Vec<(&Label, &n2d_modules::DeploymentService)> = selected
        .iter()
        .zip(&specs)
        .flat_map(|(label, (spec, _))| spec.services.iter().map(move |service| (label, service)))
        .collect();
    let inputs: Vec<BTreeSet<String>> = services
        .par_iter()
        .map(|(label, service)| universe.package_inputs(label, &service.name))
        .collect();
    // Sources and watch paths per package, scanned once: a deployment
    // package is an input of every service it holds.
    let read: BTreeSet<&String> = inputs.iter().flatten().collect();
    let per_package: BTreeMap<&String, Found> = read
        .into_par_iter()
        .map(|name| {
            let mut found = Found::default();
            if let Some(package) = universe.packages().get(name) {
                collect_package_sources(package, &mut found);
            }
            (name, found)
        })
        .collect();
    let mut planned = services
        .par_iter()
        .zip(&inputs)
        .map(|((_, service), packages)| {
            let mut sources = BTreeSet::new();
            let mut watch = BTreeSet::new();
            let mut nix = BTreeSet::new();
            let mut programs = BTreeSet::new();
            for package in packages {
                let found = &per_package[package];
                sources.extend(found.sources.iter().cloned());
                watch.extend(found.watch.iter().cloned());
                nix.extend(found.nix.iter().cloned());
                programs.extend(found.programs.iter().cloned());
            }
            PlannedService {
                name: service.name.clone(),
                label: service.label.clone(),
                packages: packages.clone(),
                sources,
                watch,
                nix,
                programs,
            }
        })
        .collect::<Vec<PlannedService>>()
        .into_iter();
    let deployments = selected
        .into_iter()
        .zip(specs)
        .map(|(label, (spec, targets))| PlannedDeployment {
            label,
            namespace: spec.namespace,
            targets,
            managers: spec.managers,
            services: planned.by_ref().take(spec.services.len()).collect(),
        })
        .collect();
    Ok(Plan { deployments })
}

fn check_target(target: &str, known: &[String], deployment: Option<&Label>) -> Result<(), Error> {
    if known.iter().any(|k| k == target) {
        return Ok(());
    }
    let whose = deployment
        .map(|d| format!(" (in the targets of {d})"))
        .unwrap_or_default();
    let err = Error::new(
        ErrorKind::UnknownOption,
        format!("unknown target `{target}`{whose}"),
    );
    Err(
        match n2d_modules::error::did_you_mean(target, known.iter().map(String::as_str)) {
            Some(near) => err.help(format!("did you mean `{near}`? `n2d targets` lists them")),
            None => err.help(format!("the targets are: {}", known.join(", "))),
        },
    )
}

/// What a package's bodies mention (see `PlannedService`).
#[derive(Default)]
struct Found {
    sources: BTreeSet<String>,
    watch: BTreeSet<String>,
    nix: BTreeSet<String>,
    programs: BTreeSet<String>,
}

/// Adds every source file a package's bodies mention, as a
/// workspace-relative path. An over-approximation (every body of the
/// package, every priority wrapper) keeps the cache correct: a Render that
/// reads a source it did not declare fails instead of caching a stale result.
fn collect_package_sources(package: &n2d_modules::Package, found: &mut Found) {
    let Found {
        sources: out,
        watch,
        nix,
        programs,
    } = found;
    let mut bodies: Vec<&Body> = package
        .services
        .values()
        .chain(package.modules.values())
        .collect();
    for deployment in package.deployments.values() {
        for member in &deployment.members {
            match &member.source {
                MemberSource::Label {
                    overrides: Some(body),
                    ..
                }
                | MemberSource::Local(body) => bodies.push(body),
                MemberSource::Label {
                    overrides: None, ..
                } => {}
            }
        }
    }
    for body in bodies {
        // A Nix installable, realized before resolution; or a local program
        // (`package = "tools/api"`, workspace-relative, as the oci target
        // reads it). Absolute paths are not workspace files.
        if let Some(package) = body.definitions.get("package") {
            strings_of(package, &mut |text| {
                if n2d_modules::nix::installable_kind(text).is_some() {
                    nix.insert(text.to_string());
                } else if !text.is_empty() && !text.starts_with('/') {
                    if let Some(path) = workspace_relative("", text) {
                        out.insert(path);
                        programs.insert(text.to_string());
                    }
                }
            });
        }
        if let Some(paths) = body.definitions.get("watch") {
            strings_of(paths, &mut |text| {
                if let Some(path) = workspace_relative(&package.name, text) {
                    watch.insert(path);
                }
            });
        }
        for (group, field) in [("files", "source"), ("env", "file")] {
            if let Some(table) = body.definitions.get(group) {
                for (_, entry) in table.entries().unwrap_or_default() {
                    collect_strings_under(entry, field, &package.name, out);
                }
            }
        }
    }
}

/// Collects the strings stored under `field` anywhere below `node` (so
/// `{ mkForce = { source = "x" } }` counts too).
fn collect_strings_under(node: &Node, field: &str, package: &str, out: &mut BTreeSet<String>) {
    match &node.value {
        Value::Table(entries) => {
            for (key, child) in entries {
                if key.name == field {
                    strings_of(child, &mut |text| {
                        if let Some(path) = workspace_relative(package, text) {
                            out.insert(path);
                        }
                    });
                } else {
                    collect_strings_under(child, field, package, out);
                }
            }
        }
        Value::List(items) => items
            .iter()
            .for_each(|item| collect_strings_under(item, field, package, out)),
        _ => {}
    }
}

fn strings_of(node: &Node, f: &mut dyn FnMut(&str)) {
    match &node.value {
        Value::Str(text) => f(text),
        Value::Table(entries) => entries.iter().for_each(|(_, child)| strings_of(child, f)),
        Value::List(items) => items.iter().for_each(|item| strings_of(item, f)),
        _ => {}
    }
}

/// `text` relative to `package`'s folder, as a workspace-relative path, by
/// the module system's own rule; `None` for what the resolver rejects
/// anyway (absolute, escaping).
fn workspace_relative(package: &str, text: &str) -> Option<String> {
    n2d_modules::merge::workspace_path(package, text).ok()
}

#[cfg(test)]
mod tests {
    use super::workspace_relative;

    #[test]
    fn source_paths_are_relative_to_the_package() {
        assert_eq!(
            workspace_relative("web", "conf/nginx.conf").as_deref(),
            Some("web/conf/nginx.conf")
        );
        assert_eq!(
            workspace_relative("web/a", "../x").as_deref(),
            Some("web/x")
        );
        assert_eq!(workspace_relative("", "x").as_deref(), Some("x"));
        assert_eq!(workspace_relative("web", "../../x"), None);
        assert_eq!(workspace_relative("web", "/etc/x"), None);
    }
}
