//! One function per subcommand: find the workspace, call the libraries,
//! print. Errors from libraries already carry their full message.
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context, Result};
use n2d_modules::{parse_label, parse_pattern, LabelKind, LocalEnv, Universe, Workspace};
use n2d_pipeline::{BuildRequest, BuildResult, Session};

use crate::cli::{
    BuildArgs, CacheCommand, CleanArgs, Cli, Command, DownArgs, GraphArgs, InitArgs, OptionsArgs,
    OptionsFormat, QueryArgs, ShowArgs, UpArgs,
};
use crate::progress::BuildProgress;

pub fn run(cli: Cli) -> Result<ExitCode> {
    let cwd = match &cli.directory {
        Some(dir) => dir.clone(),
        None => std::env::current_dir().context("finding the current folder")?,
    };
    let jobs = match &cli.command {
        Command::Build(args) => args.options.jobs,
        Command::Up(args) => args.jobs,
        Command::Watch(args) => args.jobs,
        _ => None,
    };
    if let Some(jobs) = jobs {
        n2d_pipeline::limit_threads(jobs);
    }
    match cli.command {
        Command::Build(args) => build(&cwd, args),
        Command::Up(args) => up(&cwd, args),
        Command::Down(args) => down(&cwd, args),
        Command::Watch(args) => crate::watch::run(&cwd, args),
        Command::Show(args) => show(&cwd, args),
        Command::Options(args) => options(args),
        Command::Query(args) => query(&cwd, args),
        Command::Graph(args) => graph(&cwd, args),
        Command::Targets => targets(),
        Command::Init(args) => init(&cwd, args),
        Command::Clean(args) => clean(&cwd, args),
        Command::Cache { command } => cache(&cwd, command),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "n2d", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn workspace(cwd: &Path) -> Result<Workspace> {
    Workspace::discover(cwd).map_err(|e| anyhow!("{e}"))
}

pub fn open_session(workspace: Workspace) -> Result<Session> {
    Session::open(workspace, wait_message).map_err(|e| anyhow!("{e}"))
}

fn wait_message(lock: &Path) {
    eprintln!(
        "waiting for another n2d process to release {}…",
        lock.display()
    );
}

fn universe(workspace: &Workspace) -> Result<Universe> {
    let options = n2d_pipeline::option_set();
    n2d_pipeline::evaluate_workspace(workspace, options)
        .map_err(|errors| anyhow!("{}", errors.join("\n\n")))
}

fn build(cwd: &Path, args: BuildArgs) -> Result<ExitCode> {
    if std::env::var_os("N2D_TRACE").is_some() {
        n2d_pipeline::enable_trace();
    }
    let root = Workspace::locate(cwd).map_err(|e| anyhow!("{e}"))?;
    let request = BuildRequest {
        patterns: args.labels,
        targets: args.options.targets,
        current_package: None,
        jobs: args.options.jobs,
        keep_going: args.options.keep_going,
    };
    let (progress, callback) = BuildProgress::new(args.options.json);
    let (result, session) =
        n2d_pipeline::build_workspace(root, cwd, &request, wait_message, callback)
            .map_err(|e| anyhow!("{e}"))?;
    progress.finish();
    report_build(&result, args.options.explain, args.options.json);
    if let Some(session) = session {
        session.exit_without_teardown();
    }
    Ok(if result.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Prints what a build did: errors, warnings and notices on stderr; the
/// explanation and the summary (text or `--json`) on stdout.
pub fn report_build(result: &BuildResult, explain: bool, json: bool) {
    for notice in &result.notices {
        eprintln!("note: {notice}");
    }
    for warning in &result.warnings {
        eprintln!("warning: {warning}");
    }
    for error in &result.errors {
        eprintln!("{error}\n");
    }
    if explain {
        for (identity, why) in &result.explanations {
            println!("{identity}: {why}");
        }
    }
    let summary = &result.summary;
    if json {
        let by_kind: serde_json::Map<String, serde_json::Value> = summary
            .by_kind
            .iter()
            .map(|(kind, counts)| {
                (
                    kind.to_string(),
                    serde_json::json!({ "executed": counts.executed, "cached": counts.cached, "failed": counts.failed }),
                )
            })
            .collect();
        let outputs: Vec<String> = result
            .outputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        println!(
            "{}",
            serde_json::json!({
                "ok": result.ok,
                "executed": summary.executed,
                "cached": summary.cached,
                "failed": summary.failed,
                "by_kind": by_kind,
                "outputs": outputs,
                "strategy": result.strategy.name(),
            })
        );
    } else {
        let verdict = if result.ok { "built" } else { "failed" };
        eprintln!(
            "{verdict}: {} tasks run, {} cached, {} failed",
            summary.executed, summary.cached, summary.failed
        );
        for output in &result.outputs {
            eprintln!("  {}", output.display());
        }
    }
}

/// The built-in supervisor's name as a manager of the procfile target.
const SUPERVISOR: &str = "supervisor";

/// The manager `up`/`down` use: the one named, or the target's default.
pub fn choose_manager(target: &str, manager: Option<&str>) -> Result<String> {
    if let Some(name) = manager {
        if target == "procfile" && name == SUPERVISOR {
            return Ok(name.to_string());
        }
        if n2d_rules::manager::find(target, name).is_none() {
            let known: Vec<&str> = n2d_rules::manager::all()
                .iter()
                .filter(|m| m.target() == target)
                .map(|m| m.name())
                .chain((target == "procfile").then_some(SUPERVISOR))
                .collect();
            bail!("error: `{name}` is not a manager of the `{target}` target\n = help: its managers are: {}", known.join(", "));
        }
        return Ok(name.to_string());
    }
    if target == "procfile" {
        return Ok(SUPERVISOR.to_string());
    }
    n2d_rules::manager::default_manager(target)
        .map(str::to_string)
        .ok_or_else(|| anyhow!("error: the `{target}` target has no manager\n = help: `n2d targets` lists the managers of each target"))
}

/// The targets to build to launch `target`: compose and Kubernetes run the
/// images n2d builds, so their managers need the `oci` target too.
pub fn targets_for_launch(target: &str) -> Vec<String> {
    let mut targets = vec![target.to_string()];
    if matches!(target, "compose" | "k8s") {
        targets.push("oci".to_string());
    }
    targets
}

/// The render context of a deployment, as the managers see it.
pub fn rules_deployment(
    workspace: &Workspace,
    label: &n2d_modules::Label,
) -> Result<n2d_rules::Deployment> {
    let spec = universe(workspace)?
        .deployment(label)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(n2d_rules::Deployment {
        package: spec.package,
        name: spec.name,
        namespace: spec.namespace,
        services: spec.services.into_iter().map(|s| s.name).collect(),
        base_layer: workspace.settings.base_layer.clone(),
    })
}

fn up(cwd: &Path, args: UpArgs) -> Result<ExitCode> {
    let target = args.target.unwrap_or_else(|| "procfile".to_string());
    let manager_name = choose_manager(&target, args.manager.as_deref())?;
    let external = n2d_rules::manager::find(&target, &manager_name);
    if let Some(manager) = &external {
        let missing = n2d_rules::manager::missing_tools(manager.as_ref());
        if !missing.is_empty() {
            bail!(
                "error: the manager `{manager_name}` needs {}, which is not installed\n = help: install it, or pick another manager with --manager (`n2d targets` lists them)",
                missing.join(", ")
            );
        }
    }
    let workspace = workspace(cwd)?;
    let current_package = workspace.package_of(cwd);
    let label = parse_label(&args.label, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let deployment = rules_deployment(&workspace, &label)?;
    let targets = targets_for_launch(&target);
    let session = open_session(workspace)?;
    let request = BuildRequest {
        patterns: vec![label.to_string()],
        targets,
        current_package,
        jobs: args.jobs,
        keep_going: false,
    };
    let (progress, callback) = BuildProgress::new(args.json);
    let (detached, external) = match external {
        Some(manager) if manager.detached() => (Some(manager), None),
        other => (None, other),
    };
    if let Some(manager) = detached {
        // A detached manager is the last node of the build: it launches
        // only an output other than the one it launched last.
        let launch = n2d_pipeline::LaunchRequest {
            manager: Arc::from(manager),
            deployment,
            target: target.clone(),
            force: args.force,
        };
        let result = session
            .up(&request, &launch, callback)
            .map_err(|e| anyhow!("{e}"))?;
        progress.finish();
        report_build(&result, false, args.json);
        if !result.ok {
            return Ok(ExitCode::from(1));
        }
        let launched = result
            .summary
            .by_kind
            .get("launch")
            .is_some_and(|counts| counts.executed > 0);
        if launched {
            eprintln!("launched {label} ({target}) with {manager_name}");
        } else {
            eprintln!("{label} ({target}) is already launched with {manager_name} and unchanged; --force launches it again");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let result = session
        .build(&request, callback)
        .map_err(|e| anyhow!("{e}"))?;
    progress.finish();
    if !result.ok {
        report_build(&result, false, false);
        return Ok(ExitCode::from(1));
    }
    let dir = session.target_dir(&label.package, &label.name, &target);
    let Some(manager) = external else {
        // The supervisor runs in the foreground; release the workspace lock
        // so that builds (and `n2d watch`) can run while services do. Then
        // this process becomes the supervisor: same pid, terminal and
        // signals, but a fresh image without the build's memory.
        drop(session);
        let mut supervisor =
            crate::supervisor_command(&dir, args.timestamps, crate::WhenIdle::Exit);
        let error = std::os::unix::process::CommandExt::exec(&mut supervisor);
        bail!("error: cannot start the supervisor: {error}");
    };
    // A foreground manager (honcho, overmind…) runs until the services stop.
    let context = n2d_rules::manager::LaunchContext::new(&dir, &deployment);
    drop(session);
    manager.up(&context).map_err(|e| anyhow!("{e}"))?;
    Ok(ExitCode::SUCCESS)
}

fn down(cwd: &Path, args: DownArgs) -> Result<ExitCode> {
    let manager_name = choose_manager(&args.target, args.manager.as_deref())?;
    let Some(manager) = n2d_rules::manager::find(&args.target, &manager_name) else {
        bail!("error: the built-in supervisor runs in the foreground: stop it with Ctrl-C (or SIGTERM)");
    };
    let workspace = workspace(cwd)?;
    let current_package = workspace.package_of(cwd);
    let label = parse_label(&args.label, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let deployment = rules_deployment(&workspace, &label)?;
    let session = open_session(workspace)?;
    let dir = session.target_dir(&label.package, &label.name, &args.target);
    let context = n2d_rules::manager::LaunchContext::new(&dir, &deployment);
    manager.down(&context).map_err(|e| anyhow!("{e}"))?;
    let record = format!("{label} {} {manager_name}", args.target);
    session
        .cache()
        .map_err(|e| anyhow!("{e}"))?
        .forget_launch_record(&record)
        .map_err(|e| anyhow!("{e}"))?;
    session
        .cache()
        .map_err(|e| anyhow!("{e}"))?
        .flush()
        .map_err(|e| anyhow!("{e}"))?;
    eprintln!("stopped {label} ({}) with {manager_name}", args.target);
    Ok(ExitCode::SUCCESS)
}

fn show(cwd: &Path, args: ShowArgs) -> Result<ExitCode> {
    let workspace = workspace(cwd)?;
    let current_package = workspace.package_of(cwd);
    let universe = universe(&workspace)?;
    let service =
        parse_label(&args.label, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let resolved = match &args.deployment {
        Some(deployment) => {
            let deployment = parse_label(deployment, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
            let spec = universe.deployment(&deployment).map_err(|e| anyhow!("{e}"))?;
            let name = spec
                .services
                .iter()
                .find(|s| s.label == service || s.name == service.name)
                .map(|s| s.name.clone())
                .ok_or_else(|| {
                    anyhow!(
                        "error: {service} is not a service of {deployment}\n = help: its services are: {}",
                        spec.services.iter().map(|s| s.label.to_string()).collect::<Vec<_>>().join(", ")
                    )
                })?;
            universe.resolve(&deployment, &name, &LocalEnv)
        }
        None => universe.resolve_standalone(&service, &LocalEnv),
    }
    .map_err(|e| anyhow!("{e}"))?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&n2d_modules::show_json(&resolved))?
        );
    } else {
        print!("{}", n2d_modules::format_show(&resolved));
    }
    Ok(ExitCode::SUCCESS)
}

fn options(args: OptionsArgs) -> Result<ExitCode> {
    let options = n2d_pipeline::option_set();
    match args.format {
        OptionsFormat::Markdown => print!("{}", options.reference_markdown()),
        OptionsFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&options.reference_json())?
        ),
    }
    Ok(ExitCode::SUCCESS)
}

fn query(cwd: &Path, args: QueryArgs) -> Result<ExitCode> {
    let workspace = workspace(cwd)?;
    let current_package = workspace.package_of(cwd);
    let universe = universe(&workspace)?;
    let (mode, text) = match args.query.as_slice() {
        [pattern] => (None, pattern.as_str()),
        [mode, label] if mode == "deps" || mode == "rdeps" => (Some(mode.as_str()), label.as_str()),
        [mode, _] => {
            bail!("unknown query `{mode}`: use `deps LABEL`, `rdeps LABEL`, or a label pattern")
        }
        _ => unreachable!("clap allows one or two values"),
    };
    let lines: Vec<String> = match mode {
        None => {
            let pattern =
                parse_pattern(text, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
            universe
                .matching(&pattern)
                .map_err(|e| anyhow!("{e}"))?
                .into_iter()
                .map(|(label, kind)| format!("{label} ({})", kind.noun()))
                .collect()
        }
        Some(mode) => {
            let label =
                parse_label(text, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
            label_dependencies(&universe, &label, mode == "rdeps")?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&lines)?);
    } else {
        for line in lines {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `deps`: what a deployment holds, or what a service of it refers to in
/// each deployment; `rdeps`: the deployments that hold a service.
fn label_dependencies(
    universe: &Universe,
    label: &n2d_modules::Label,
    reverse: bool,
) -> Result<Vec<String>> {
    let kind = universe.lookup(label).map_err(|e| anyhow!("{e}"))?;
    let deployments: Vec<n2d_modules::Label> = universe
        .labels()
        .into_iter()
        .filter(|(_, kind)| *kind == LabelKind::Deployment)
        .map(|(label, _)| label)
        .collect();
    let mut out = Vec::new();
    match (kind, reverse) {
        (LabelKind::Deployment, false) => {
            let spec = universe.deployment(label).map_err(|e| anyhow!("{e}"))?;
            out.extend(spec.services.iter().map(|s| s.label.to_string()));
        }
        (LabelKind::Service, false) => {
            for deployment in &deployments {
                let spec = universe
                    .deployment(deployment)
                    .map_err(|e| anyhow!("{e}"))?;
                if let Some(member) = spec.services.iter().find(|s| &s.label == label) {
                    let resolved = universe
                        .resolve(deployment, &member.name, &LocalEnv)
                        .map_err(|e| anyhow!("{e}"))?;
                    for name in resolved.references {
                        if let Some(dep) = spec.services.iter().find(|s| s.name == name) {
                            out.push(format!("{} (in {deployment})", dep.label));
                        }
                    }
                }
            }
        }
        (LabelKind::Service | LabelKind::Module, true) => {
            for deployment in &deployments {
                let spec = universe
                    .deployment(deployment)
                    .map_err(|e| anyhow!("{e}"))?;
                for member in &spec.services {
                    let packages = universe.package_inputs(deployment, &member.name);
                    let holds = &member.label == label;
                    if holds || (kind == LabelKind::Module && packages.contains(&label.package)) {
                        out.push(format!("{} (in {deployment})", member.label));
                    }
                }
            }
        }
        (LabelKind::Module, false) => {
            bail!("`{label}` is a module: `n2d query rdeps {label}` lists what may use it")
        }
        (LabelKind::Deployment, true) => bail!("nothing depends on a deployment"),
    }
    out.sort();
    out.dedup();
    Ok(out)
}

fn graph(cwd: &Path, args: GraphArgs) -> Result<ExitCode> {
    let workspace = workspace(cwd)?;
    let current_package = workspace.package_of(cwd);
    let universe = universe(&workspace)?;
    let label = parse_label(&args.label, current_package.as_deref()).map_err(|e| anyhow!("{e}"))?;
    let spec = universe.deployment(&label).map_err(|e| anyhow!("{e}"))?;
    let targets = if !args.targets.is_empty() {
        args.targets
    } else if !spec.targets.is_empty() {
        spec.targets.clone()
    } else {
        workspace.settings.default_targets.clone()
    };
    // The graph of the pipeline for this deployment, as the build would make it.
    let mut nodes: Vec<(String, &'static str)> = Vec::new();
    let mut edges: Vec<(String, String)> = Vec::new();
    for target in &targets {
        let assemble = format!("assemble {label} ({target})");
        let materialize = format!("materialize {label} ({target})");
        for service in &spec.services {
            let resolve = format!("resolve {} in {label}", service.label);
            let render = format!("render {} in {label} ({target})", service.label);
            for package in universe.package_inputs(&label, &service.name) {
                edges.push((format!("eval //{package}"), resolve.clone()));
            }
            nodes.push((resolve.clone(), "resolve"));
            nodes.push((render.clone(), "render"));
            edges.push((resolve, render.clone()));
            edges.push((render, assemble.clone()));
        }
        nodes.push((assemble.clone(), "assemble"));
        nodes.push((materialize.clone(), "materialize"));
        edges.push((assemble, materialize));
    }
    for package in &workspace.packages {
        let parse = format!("parse {}", package.display_path());
        let eval = format!("eval //{}", package.package);
        if edges.iter().any(|(from, _)| *from == eval) {
            nodes.push((parse.clone(), "parse"));
            nodes.push((eval.clone(), "eval"));
            edges.push((parse, eval));
        }
    }
    nodes.sort();
    nodes.dedup();
    edges.sort();
    edges.dedup();
    match args.format {
        crate::cli::GraphFormat::Json => {
            let value = serde_json::json!({
                "nodes": nodes.iter().map(|(id, kind)| serde_json::json!({"id": id, "kind": kind})).collect::<Vec<_>>(),
                "edges": edges.iter().map(|(from, to)| serde_json::json!({"from": from, "to": to})).collect::<Vec<_>>(),
            });
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        crate::cli::GraphFormat::Dot => {
            println!("digraph n2d {{");
            println!("  rankdir=LR;");
            for (id, kind) in &nodes {
                println!("  {:?} [shape=box, label={:?}, class={kind:?}];", id, id);
            }
            for (from, to) in &edges {
                println!("  {from:?} -> {to:?};");
            }
            println!("}}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn targets() -> Result<ExitCode> {
    let managers = n2d_rules::manager::all();
    for rule in n2d_rules::all() {
        let target = rule.target();
        let default = if target == "procfile" {
            Some(SUPERVISOR)
        } else {
            n2d_rules::manager::default_manager(target)
        };
        let mut names: Vec<String> = Vec::new();
        if target == "procfile" {
            names.push(format!("{SUPERVISOR} (built in)"));
        }
        for manager in managers.iter().filter(|m| m.target() == target) {
            let missing = n2d_rules::manager::missing_tools(manager.as_ref());
            let mut name = manager.name().to_string();
            if !missing.is_empty() {
                name.push_str(&format!(" (not installed: {})", missing.join(", ")));
            }
            names.push(name);
        }
        let listed = if names.is_empty() {
            "—".to_string()
        } else {
            names.join(", ")
        };
        let default = default
            .map(|d| format!("  [default: {d}]"))
            .unwrap_or_default();
        println!("{target:<16} {listed}{default}");
    }
    Ok(ExitCode::SUCCESS)
}

fn init(cwd: &Path, args: InitArgs) -> Result<ExitCode> {
    let dir = args
        .dir
        .map(|d| cwd.join(d))
        .unwrap_or_else(|| cwd.to_path_buf());
    let files = n2d_modules::init_template();
    for (path, _) in &files {
        let target = dir.join(path);
        if target.exists() {
            bail!("error: `{}` already exists\n = help: n2d init writes a new workspace; run it in an empty folder", target.display());
        }
    }
    for (path, text) in files {
        let target: PathBuf = dir.join(&path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&target, text).with_context(|| format!("writing {}", target.display()))?;
        println!("wrote {}", path.display());
    }
    println!("next: n2d build //... (from {})", dir.display());
    Ok(ExitCode::SUCCESS)
}

fn clean(cwd: &Path, args: CleanArgs) -> Result<ExitCode> {
    let workspace = workspace(cwd)?;
    let output = workspace.root.join(&workspace.settings.output_dir);
    remove_dir(&output)?;
    if args.cache {
        let cache = workspace.root.join(&workspace.settings.cache_dir);
        // Take the lock first: never pull the cache from under a build.
        let session = open_session(workspace)?;
        drop(session);
        remove_dir(&cache)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {
            eprintln!("removed {}", dir.display());
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e).with_context(|| format!("removing {}", dir.display())),
    }
}

fn cache(cwd: &Path, command: CacheCommand) -> Result<ExitCode> {
    let session = open_session(workspace(cwd)?)?;
    let cache = session.cache().map_err(|e| anyhow!("{e}"))?;
    match command {
        CacheCommand::Stats { json } => {
            let stats = cache.stats().map_err(|e| anyhow!("{e}"))?;
            if json {
                let trees: serde_json::Map<String, serde_json::Value> = stats
                    .trees
                    .iter()
                    .map(|t| {
                        (
                            t.name.to_string(),
                            serde_json::json!({"entries": t.entries, "bytes": t.bytes}),
                        )
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::json!({"trees": trees, "disk_bytes": stats.disk_bytes})
                );
            } else {
                for tree in &stats.trees {
                    println!(
                        "{:<12} {:>10} entries {:>14} bytes",
                        tree.name, tree.entries, tree.bytes
                    );
                }
                println!("{:<12} {:>36} bytes on disk", "total", stats.disk_bytes);
            }
        }
        CacheCommand::Gc { max_size } => {
            let max = match max_size {
                Some(text) => parse_size(&text)?,
                None => 1 << 30,
            };
            let report = cache.gc(max).map_err(|e| anyhow!("{e}"))?;
            let stamps = session.forget_stamps();
            println!(
                "removed {} blobs ({} bytes), {} records and {stamps} no-op stamps; {} bytes kept, {} bytes of packs given back",
                report.removed_blobs,
                report.removed_bytes,
                report.removed_records,
                report.kept_bytes,
                report.compacted_bytes
            );
        }
        CacheCommand::Verify => {
            let report = cache.verify().map_err(|e| anyhow!("{e}"))?;
            println!(
                "checked {} blobs: {} damaged, {} damaged records dropped",
                report.checked_blobs,
                report.damaged_blobs.len(),
                report.damaged_records
            );
        }
    }
    for notice in cache.take_notices() {
        eprintln!("note: {}", notice.message);
    }
    Ok(ExitCode::SUCCESS)
}

/// `500M`, `2G`, `1024`, `64K` → bytes.
fn parse_size(text: &str) -> Result<u64> {
    let text = text.trim();
    let (digits, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let number: u64 = digits
        .parse()
        .map_err(|_| anyhow!("`{text}` is not a size such as 500M or 2G"))?;
    let factor: u64 = match unit.trim_end_matches(['b', 'B', 'i']) {
        "" => 1,
        "K" | "k" => 1 << 10,
        "M" | "m" => 1 << 20,
        "G" | "g" => 1 << 30,
        "T" | "t" => 1 << 40,
        _ => bail!("`{text}` is not a size such as 500M or 2G"),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| anyhow!("`{text}` is too large"))
}
