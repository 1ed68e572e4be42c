//! The command line, as clap sees it. Only the binary knows clap.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// n2d: one declarative service definition, rendered for every service
/// manager and launched.
#[derive(Debug, Parser)]
#[command(name = "n2d", version, about, long_about = None)]
pub struct Cli {
    /// Run as if started in this folder.
    #[arg(short = 'C', long = "directory", global = true, value_name = "DIR")]
    pub directory: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render deployments into n2d-out/<package>/<deployment>/<target>/.
    Build(BuildArgs),
    /// Build a deployment, then launch it with its manager.
    Up(UpArgs),
    /// Stop what `n2d up` launched with a detached manager.
    Down(DownArgs),
    /// Build, launch with the built-in supervisor, and apply every saved
    /// change: only services whose launch spec changed restart.
    Watch(WatchArgs),
    /// Print a resolved service, each value with where it came from.
    Show(ShowArgs),
    /// Print the option reference generated from the declarations.
    Options(OptionsArgs),
    /// List labels matching a pattern, or a task's dependencies.
    Query(QueryArgs),
    /// Print the build graph of a deployment.
    Graph(GraphArgs),
    /// List the targets and their managers.
    Targets,
    /// Write a new workspace with an example into the current folder.
    Init(InitArgs),
    /// Remove the output folder (and with --cache, the cache).
    Clean(CleanArgs),
    /// Inspect and maintain the cache.
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct BuildOptions {
    /// Render only these targets (repeatable); default: each deployment's own.
    #[arg(long = "target", short = 't', value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Say why each task ran.
    #[arg(long)]
    pub explain: bool,
    /// Keep building what does not depend on a failure.
    #[arg(long, short = 'k')]
    pub keep_going: bool,
    /// Threads to work on: parallel tasks, file checks and writes
    /// (default: the number of cores).
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// End with one JSON object on stdout describing the build.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// Deployment labels or patterns (`//deploy:prod`, `//...`); default `//...`.
    #[arg(value_name = "LABEL")]
    pub labels: Vec<String>,
    #[command(flatten)]
    pub options: BuildOptions,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The deployment to launch.
    #[arg(value_name = "LABEL")]
    pub label: String,
    /// The target to render for (default: procfile).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Option<String>,
    /// The manager to launch with (default: the target's default).
    #[arg(long, short = 'm', value_name = "MANAGER")]
    pub manager: Option<String>,
    /// Launch even when the output did not change since the last launch.
    #[arg(long)]
    pub force: bool,
    /// Prefix log lines with a timestamp.
    #[arg(long)]
    pub timestamps: bool,
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
    /// With a detached manager: end with the build summary as one JSON
    /// object on stdout (its `by_kind.launch` says whether it launched).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// The deployment to stop.
    #[arg(value_name = "LABEL")]
    pub label: String,
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: String,
    /// The manager it was launched with (default: the target's default).
    #[arg(long, short = 'm', value_name = "MANAGER")]
    pub manager: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The deployment to run.
    #[arg(value_name = "LABEL")]
    pub label: String,
    /// The target (default: procfile, run by the built-in supervisor; other
    /// targets are re-applied with their manager when their output changes).
    #[arg(long, short = 't', value_name = "TARGET")]
    pub target: Option<String>,
    /// The manager for a target other than procfile.
    #[arg(long, short = 'm', value_name = "MANAGER")]
    pub manager: Option<String>,
    /// Prefix log lines with a timestamp.
    #[arg(long)]
    pub timestamps: bool,
    #[arg(long, short = 'j', value_name = "N")]
    pub jobs: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The service to show (`//pkg:name`, `:name`).
    #[arg(value_name = "LABEL")]
    pub label: String,
    /// Resolve it as part of this deployment (its overrides, its references).
    #[arg(long, short = 'd', value_name = "LABEL")]
    pub deployment: Option<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OptionsFormat {
    Markdown,
    Json,
}

#[derive(Debug, Args)]
pub struct OptionsArgs {
    #[arg(long, value_enum, default_value = "markdown")]
    pub format: OptionsFormat,
}

#[derive(Debug, Args)]
pub struct QueryArgs {
    /// `deps LABEL`, `rdeps LABEL`, or a label pattern such as `//...`.
    #[arg(value_name = "QUERY", num_args = 1..=2, required = true)]
    pub query: Vec<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum GraphFormat {
    Dot,
    Json,
}

#[derive(Debug, Args)]
pub struct GraphArgs {
    #[arg(value_name = "LABEL")]
    pub label: String,
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
    #[arg(long = "target", short = 't', value_name = "TARGET")]
    pub targets: Vec<String>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// The folder to initialize (default: the current folder).
    #[arg(value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Also remove the cache.
    #[arg(long)]
    pub cache: bool,
}

#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Entry counts and sizes.
    Stats {
        #[arg(long)]
        json: bool,
    },
    /// Remove least recently used entries until the cache fits.
    Gc {
        /// The size to shrink to, such as 500M or 2G (default 1G).
        #[arg(long, value_name = "SIZE")]
        max_size: Option<String>,
    },
    /// Re-hash every stored blob, dropping damaged ones.
    Verify,
}
