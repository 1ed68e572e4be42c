//! The one status line each watch cycle prints on stderr:
//!
//! ```text
//! watch: app/n2d.toml changed; re-rendered //app:web; restarted web (pid 812→815); 41 ms
//! ```
//!
//! what changed, what the build re-rendered, what the supervisor did, and
//! how long the build and the apply took. Every line starts with `watch: `
//! so that tools (and the tests) can pick the cycles out of the services'
//! logs.
use std::path::{Path, PathBuf};
use std::time::Duration;

use n2d_pipeline::BuildResult;
use n2d_supervisor::Change;

/// Lists longer than this end with "and N more".
const LISTED: usize = 4;

/// Why a cycle ran.
pub enum Cause<'a> {
    Start,
    Changed(&'a [PathBuf]),
    Lost(&'a str),
}

/// What a cycle's build and apply came to.
pub enum Applied<'a> {
    /// The build failed; services keep running as they were.
    BuildFailed,
    /// The supervisor started with the first good build.
    SupervisorStarted {
        services: usize,
    },
    Changes(&'a [Change]),
    /// A target other than procfile: its manager re-applied the output
    /// (`Some(manager)`), or the output did not change (`None`).
    Manager(Option<&'a str>),
}

pub fn line(
    root: &Path,
    cause: Cause<'_>,
    result: Option<&BuildResult>,
    applied: Applied<'_>,
    took: Duration,
) -> String {
    let cause = match cause {
        Cause::Start => "initial build".to_string(),
        Cause::Changed(paths) => {
            let names: Vec<String> = paths
                .iter()
                .map(|p| {
                    let shown = p.strip_prefix(root).unwrap_or(p);
                    if shown.as_os_str().is_empty() {
                        ".".to_string()
                    } else {
                        shown.display().to_string()
                    }
                })
                .collect();
            format!("{} changed", list(&names))
        }
        Cause::Lost(why) => format!("{why}, checked everything"),
    };
    let rendered = match result {
        Some(result) => rerendered(result),
        None => "nothing built".to_string(),
    };
    let applied = match applied {
        Applied::BuildFailed => "build failed, services left as they are".to_string(),
        Applied::Manager(Some(manager)) => format!("re-applied with {manager}"),
        Applied::Manager(None) => "output unchanged, nothing re-applied".to_string(),
        Applied::SupervisorStarted { services } => {
            format!(
                "started the supervisor with {services} service{}",
                if services == 1 { "" } else { "s" }
            )
        }
        Applied::Changes([]) => "nothing restarted".to_string(),
        Applied::Changes(changes) => changes
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", "),
    };
    format!(
        "watch: {cause}; {rendered}; {applied}; {} ms",
        took.as_millis()
    )
}

/// The services whose render task ran, by label.
fn rerendered(result: &BuildResult) -> String {
    let executed = result
        .summary
        .by_kind
        .get("render")
        .map_or(0, |counts| counts.executed);
    if executed == 0 {
        let materialized = result
            .summary
            .by_kind
            .get("materialize")
            .map_or(0, |counts| counts.executed);
        // Back to definitions built before: the cache had every render.
        return if materialized > 0 {
            "output restored from the cache".to_string()
        } else {
            "nothing re-rendered".to_string()
        };
    }
    // "render //app:web in //app:dev (procfile)" → "//app:web"
    let mut services: Vec<String> = result
        .explanations
        .iter()
        .filter_map(|(identity, _)| identity.strip_prefix("render "))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect();
    services.sort();
    services.dedup();
    if services.is_empty() {
        format!("re-rendered {executed} services")
    } else {
        format!("re-rendered {}", list(&services))
    }
}

fn list(items: &[String]) -> String {
    if items.len() <= LISTED {
        items.join(", ")
    } else {
        format!(
            "{} and {} more",
            items[..LISTED].join(", "),
            items.len() - LISTED
        )
    }
}
