//! The tasks of the build graph, one struct per kind. Each is pure in the
//! engine's sense: its output is a function of its declared inputs and the
//! outputs of its dependencies (see `n2d_engine::Task`).
//!
//! Outputs: Parse → `ModuleFile` (JSON), Eval → `Package` (JSON), Plan →
//! `Plan` (JSON), Resolve → the resolved service's canonical JSON (its value
//! only: provenance would make a comment edit reach the renderers), Render →
//! `codec::encode_rendered`, Assemble → `codec::encode_artifacts`,
//! Materialize → the sorted list of files written.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use n2d_engine::{Inputs, Report, RunContext, RunError, Task, TaskId};
use n2d_modules::nix::Realization;
use n2d_modules::{Format, ModuleFile, OptionSet, Package, Settings, Universe};
use n2d_rules::{Deployment, Rule, SourceFiles};
use rayon::prelude::*;

use crate::codec;
use crate::materialize::{self, OutputFile};
use crate::plan::{make_plan, PlanRequest};

/// Bumped when the pipeline's own encoding of outputs changes.
const PIPELINE_VERSION: u32 = 4;

/// Parse(file): a module file's text into a `ModuleFile`.
pub struct ParseTask {
    pub identity: String,
    /// Workspace-relative path: the stable name of the input and the name
    /// errors show.
    pub file: String,
    pub path: PathBuf,
    pub format: Format,
}

impl Task for ParseTask {
    fn kind(&self) -> &'static str {
        "parse"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn frees_output(&self) -> bool {
        // Read by its Eval only.
        true
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.file(self.file.clone(), self.path.clone());
        inputs.value("format", format!("{:?}", self.format).as_bytes());
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let bytes = context
            .file(&self.file)
            .expect("the module file is a declared input");
        let text = std::str::from_utf8(bytes)
            .map_err(|e| format!("{}: the file is not UTF-8 text: {e}", self.file))?;
        let parsed = n2d_modules::parse_module_file(&self.file, text, self.format)?;
        Ok(serde_json::to_vec(&parsed)?)
    }
}

/// EvalPackage: a parsed module file into a `Package`.
pub struct EvalTask {
    pub identity: String,
    pub package: String,
}

impl Task for EvalTask {
    fn kind(&self) -> &'static str {
        "eval"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("package", self.package.as_bytes());
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let parsed: ModuleFile = serde_json::from_slice(context.dependency(0))?;
        let package = n2d_modules::eval_package(&self.package, &parsed)?;
        Ok(serde_json::to_vec(&package)?)
    }
}

/// Interface(package): what planning needs of a package (see `interface`).
pub struct InterfaceTask {
    pub identity: String,
}

impl Task for InterfaceTask {
    fn kind(&self) -> &'static str {
        "interface"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, _inputs: &mut Inputs) {}
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let package: Package = serde_json::from_slice(context.dependency(0))?;
        Ok(serde_json::to_vec(&crate::interface::interface_of(
            &package,
        ))?)
    }
}

/// The evaluated packages of one build, deserialized once and shared by the
/// tasks that need a `Universe` (Plan, Resolve). Each such task still
/// declares exactly the packages it reads as dependencies, so its key is
/// right; sharing only saves deserializing the same package many times.
pub struct SharedUniverse {
    /// The stage that evaluated the packages; `None` outside a graph (the
    /// delta path), where only `universe_of` is used.
    pub report: Option<Arc<Report>>,
    /// Package path → its Eval task in `report`.
    pub evals: BTreeMap<String, TaskId>,
    pub options: Arc<OptionSet>,
    pub settings: Settings,
    universe: OnceLock<Result<Universe, String>>,
    /// Packages deserialized so far in this build, by name (each name has
    /// one Eval output per build), shared by the tasks' universes.
    packages: std::sync::Mutex<BTreeMap<String, Arc<Package>>>,
}

impl SharedUniverse {
    pub fn new(
        report: Arc<Report>,
        evals: BTreeMap<String, TaskId>,
        options: Arc<OptionSet>,
        settings: Settings,
    ) -> Self {
        SharedUniverse {
            report: Some(report),
            evals,
            options,
            settings,
            universe: OnceLock::new(),
            packages: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// A universe with no stage behind it: for tasks run detached, which
    /// are given their Eval outputs.
    pub fn detached(options: Arc<OptionSet>, settings: Settings) -> Self {
        SharedUniverse {
            report: None,
            evals: BTreeMap::new(),
            options,
            settings,
            universe: OnceLock::new(),
            packages: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    /// Holds `package` as the package `name` for this build's tasks, which
    /// then take it for the Eval output they are given under that name (a
    /// delta build's own file, which is not JSON).
    pub fn hold(&self, name: String, package: Arc<Package>) {
        self.packages
            .lock()
            .expect("never poisoned")
            .insert(name, package);
    }

    /// A universe of exactly `names`, whose Eval outputs are `outputs` (the
    /// task's dependencies, in the same order): each decoded once per
    /// build, or the package held under its name (`hold`).
    pub fn universe_of<'a>(
        &self,
        names: &[String],
        outputs: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Universe, RunError> {
        let mut packages = BTreeMap::new();
        for (name, bytes) in names.iter().zip(outputs) {
            let known = self
                .packages
                .lock()
                .expect("never poisoned")
                .get(name)
                .cloned();
            let package = match known {
                Some(package) => package,
                None => {
                    let package: Arc<Package> = Arc::new(serde_json::from_slice(bytes)?);
                    self.packages
                        .lock()
                        .expect("never poisoned")
                        .insert(name.clone(), package.clone());
                    package
                }
            };
            packages.insert(name.clone(), package);
        }
        Ok(Universe::from_shared(
            packages,
            self.options.clone(),
            &self.settings,
        ))
    }

    pub fn get(&self) -> Result<&Universe, RunError> {
        let universe = self.universe.get_or_init(|| {
            let mut packages = BTreeMap::new();
            let report = self
                .report
                .as_ref()
                .ok_or("the whole universe is only known inside a graph")?;
            for (name, &id) in &self.evals {
                let bytes = report.output(id).map_err(|e| e.to_string())?;
                let package: Package = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
                packages.insert(name.clone(), package);
            }
            Ok(Universe::new(
                packages,
                (*self.options).clone(),
                &self.settings,
            ))
        });
        universe.as_ref().map_err(|e| e.clone().into())
    }
}

/// Plan: which deployments, targets and services the request builds.
pub struct PlanTask {
    /// The packages whose interfaces are the dependencies, in order.
    pub packages: Vec<String>,
    pub request: PlanRequest,
    pub options_digest: String,
    pub universe: Arc<SharedUniverse>,
    /// The plan this task made, when it ran in this process: the build
    /// takes it rather than decoding the output again (16 ms of a
    /// 10,000-service cold build, on one thread between stages).
    pub made: Arc<std::sync::Mutex<Option<crate::plan::Plan>>>,
}

impl Task for PlanTask {
    fn kind(&self) -> &'static str {
        "plan"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        "plan"
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value(
            "request",
            &serde_json::to_vec(&self.request).expect("a request serializes"),
        );
        inputs.value("options", self.options_digest.as_bytes());
        inputs.value(
            "imports",
            self.universe.settings.imports.join("\n").as_bytes(),
        );
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        // Decoded in parallel: a 1,000-package workspace's interfaces are
        // a third of the plan's time.
        let outputs: Vec<&[u8]> = context.dependencies().collect();
        let interfaces = self
            .packages
            .par_iter()
            .zip(outputs)
            .map(|(name, bytes)| Ok((name.clone(), Arc::new(serde_json::from_slice(bytes)?))))
            .collect::<Result<BTreeMap<String, Arc<Package>>, serde_json::Error>>()?;
        let universe = Universe::from_shared(
            interfaces,
            self.universe.options.clone(),
            &self.universe.settings,
        );
        match make_plan(&universe, &self.request) {
            Ok(plan) => {
                // The interfaces are let go on the other worker while the
                // plan is encoded: both are on the one thread the build
                // waits for (a thousand packages: 3 ms each).
                let (bytes, ()) = rayon::join(|| serde_json::to_vec(&plan), move || drop(universe));
                *self.made.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
                Ok(bytes?)
            }
            // Interfaces have no text or spans: plan over the full packages
            // for a message that points into the file.
            Err(error) => Err(match make_plan(self.universe.get()?, &self.request) {
                Err(precise) => precise.into(),
                Ok(_) => error.into(),
            }),
        }
    }
}

/// Resolve(deployment, service) for one target environment.
pub struct ResolveTask {
    pub identity: String,
    /// The packages whose Eval outputs are the dependencies, in order.
    pub packages: Vec<String>,
    pub deployment: n2d_modules::Label,
    pub service: String,
    pub rule: Arc<dyn Rule>,
    pub options_digest: String,
    pub universe: Arc<SharedUniverse>,
    /// How many Realize outputs follow the Eval outputs in the
    /// dependencies: the Nix packages the service may use.
    pub realized: usize,
}

impl Task for ResolveTask {
    fn kind(&self) -> &'static str {
        "resolve"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn frees_output(&self) -> bool {
        // Read by its Renders only.
        true
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("deployment", self.deployment.to_string().as_bytes());
        inputs.value("service", self.service.as_bytes());
        inputs.value("env", self.rule.env().id().as_bytes());
        inputs.value("options", self.options_digest.as_bytes());
        inputs.value(
            "imports",
            self.universe.settings.imports.join("\n").as_bytes(),
        );
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let evals = self.packages.len();
        let universe = self
            .universe
            .universe_of(&self.packages, context.dependencies().take(evals))?;
        let mut realized = BTreeMap::new();
        for bytes in context.dependencies().skip(evals).take(self.realized) {
            let realization: Realization = serde_json::from_slice(bytes)?;
            realized.insert(realization.installable.clone(), realization);
        }
        let universe = universe.with_realizations(Arc::new(realized));
        let resolved = universe.resolve_value(&self.deployment, &self.service, self.rule.env())?;
        Ok(serde_json::to_vec(&resolved.value)?)
    }
}

/// Render(deployment, service, target).
pub struct RenderTask {
    pub identity: String,
    pub rule: Arc<dyn Rule>,
    pub deployment: Arc<Deployment>,
    /// `deployment_digest(&deployment)`, computed once per deployment: a
    /// deployment of N services would otherwise cost N² to encode.
    pub deployment_digest: n2d_cache::Digest,
    /// (workspace-relative name, absolute path) of each declared source.
    pub sources: Vec<(String, PathBuf)>,
    /// The `task_key` of each Layer task that follows the Resolve task in
    /// the dependencies, in order.
    pub layers: Vec<String>,
    /// Output path → closure, of the Nix packages the service may use.
    pub closures: BTreeMap<String, Vec<String>>,
    /// Output path → a `bin/sh` of its closure, where one has a shell.
    pub shells: BTreeMap<String, String>,
}

impl Task for RenderTask {
    fn kind(&self) -> &'static str {
        "render"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION * 1000 + self.rule.version()
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("target", self.rule.target().as_bytes());
        inputs.value_digest("deployment", self.deployment_digest);
        for (name, path) in &self.sources {
            inputs.file(name.clone(), path.clone());
        }
        if !self.closures.is_empty() {
            inputs.value(
                "closures",
                &serde_json::to_vec(&(&self.closures, &self.shells)).expect("strings serialize"),
            );
        }
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let service: n2d_modules::service::Service = serde_json::from_slice(context.dependency(0))?;
        let sources = DeclaredSources {
            context,
            layers: &self.layers,
            closures: &self.closures,
            shells: &self.shells,
        };
        let rendered = self.rule.render(&self.deployment, &service, &sources)?;
        for artifact in &rendered.artifacts {
            materialize::check_relative_path(&artifact.path)?;
        }
        Ok(codec::encode_rendered(&rendered))
    }
}

/// Source files as a Render task may read them: only the declared ones, so
/// that the task's key covers everything it read.
struct DeclaredSources<'a, 'b> {
    context: &'a RunContext<'b>,
    layers: &'a [String],
    closures: &'a BTreeMap<String, Vec<String>>,
    shells: &'a BTreeMap<String, String>,
}

impl SourceFiles for DeclaredSources<'_, '_> {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        match self.context.file(path) {
            Some(bytes) => Ok(bytes.to_vec()),
            None => Err(format!(
                "`{path}` is not a source n2d knows this service reads: write the path literally in a module file (`files.<name>.source` or `env.<name>.file`), not through `${{{{ }}}}`"
            )),
        }
    }

    fn nix_closure(&self, out: &str) -> Vec<String> {
        self.closures.get(out).cloned().unwrap_or_default()
    }

    fn nix_shell(&self, out: &str) -> Option<String> {
        self.shells.get(out).cloned()
    }

    fn prebuilt_layer(&self, key: &str) -> Option<(String, u64)> {
        let index = self.layers.iter().position(|k| k == key)?;
        let (digest, tar) = crate::layers::decode(self.context.dependency(index + 1)).ok()?;
        Some((digest.to_string(), tar.len() as u64))
    }
}

/// Assemble(deployment, target): the deployment-wide files.
pub struct AssembleTask {
    pub identity: String,
    pub rule: Arc<dyn Rule>,
    pub deployment: Arc<Deployment>,
    pub deployment_digest: n2d_cache::Digest,
    /// How many Layer outputs follow the Render outputs in the
    /// dependencies: image layers built as tasks of their own, written once
    /// per layout as `blobs/sha256/<digest>` (the renders leave them out).
    pub layers: usize,
}

impl Task for AssembleTask {
    fn kind(&self) -> &'static str {
        "assemble"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION * 1000 + self.rule.version()
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("target", self.rule.target().as_bytes());
        inputs.value_digest("deployment", self.deployment_digest);
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let renders = context.dependencies().len() - self.layers;
        let rendered: Vec<n2d_rules::Rendered> = context
            .dependencies()
            .take(renders)
            .map(codec::decode_rendered)
            .collect::<Result<_, _>>()?;
        let fragments: Vec<(&str, &serde_json::Value)> = self
            .deployment
            .services
            .iter()
            .map(String::as_str)
            .zip(rendered.iter().map(|r| &r.fragment))
            .collect();
        let mut artifacts = self.rule.assemble(&self.deployment, &fragments)?;
        for service in rendered {
            artifacts.extend(service.artifacts);
        }
        for layer in context.dependencies().skip(renders) {
            let (digest, tar) = crate::layers::decode(layer)?;
            let blob = n2d_rules::oci::Blob::described(
                n2d_rules::oci::LAYER_MEDIA_TYPE,
                digest.to_string(),
                tar.len() as u64,
            );
            artifacts.push(n2d_rules::Artifact {
                path: blob.path(),
                bytes: tar.to_vec(),
                mode: 0o644,
            });
        }
        artifacts.sort_by(|a, b| a.path.cmp(&b.path));
        // The same file from two services (a content-addressed blob of a
        // layer both images stack) is one file.
        artifacts.dedup_by(|a, b| a.path == b.path && a.bytes == b.bytes && a.mode == b.mode);
        if let Some(pair) = artifacts
            .windows(2)
            .find(|pair| pair[0].path == pair[1].path)
        {
            return Err(format!(
                "two outputs of {} have the path `{}`",
                self.identity, pair[0].path
            )
            .into());
        }
        for artifact in &artifacts {
            materialize::check_relative_path(&artifact.path)?;
        }
        Ok(codec::encode_artifacts(&artifacts))
    }
}

/// Materialize(deployment, target): puts the assembled files into the
/// target folder. Only added to a graph when the folder is not already in
/// sync with the Assemble output (see `session`).
pub struct MaterializeTask {
    pub identity: String,
    pub dir: PathBuf,
    /// The Assemble output this folder will hold, recorded in the folder.
    pub assembled: String,
}

impl Task for MaterializeTask {
    fn kind(&self) -> &'static str {
        "materialize"
    }
    fn version(&self) -> u32 {
        PIPELINE_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn caching(&self) -> n2d_engine::Caching {
        // Acts on the world: it runs whenever the folder is out of sync.
        n2d_engine::Caching::AlwaysRun
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("assembled", self.assembled.as_bytes());
    }
    fn run(&self, context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let artifacts = codec::decode_artifacts(context.dependency(0))?;
        let files: Vec<OutputFile> = artifacts.into_iter().map(OutputFile::from).collect();
        materialize::materialize(&self.dir, &files, &self.assembled)?;
        let mut listing = String::new();
        for file in &files {
            listing.push_str(&file.path);
            listing.push('\n');
        }
        Ok(listing.into_bytes())
    }
}

/// The digest of a render context's canonical bytes.
pub fn deployment_digest(deployment: &Deployment) -> n2d_cache::Digest {
    let bytes = serde_json::to_vec(&serde_json::json!({
        "package": deployment.package,
        "name": deployment.name,
        "namespace": deployment.namespace,
        "services": deployment.services,
        "base_layer": deployment.base_layer,
    }))
    .expect("a JSON value always serializes");
    n2d_cache::Digest::of(&bytes)
}
