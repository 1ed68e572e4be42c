//! Build progress on the terminal: an indicatif spinner with counts when
//! stderr is a terminal, one plain line per task that runs otherwise.
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use indicatif::{ProgressBar, ProgressStyle};
use n2d_engine::{Progress, Status};
use n2d_pipeline::ProgressFn;

/// Owns the progress display of one build.
pub struct BuildProgress {
    bar: Option<ProgressBar>,
}

impl BuildProgress {
    /// `quiet` shows nothing (for `--json`, whose stdout is data).
    pub fn new(quiet: bool) -> (BuildProgress, Option<ProgressFn>) {
        if quiet {
            return (BuildProgress { bar: None }, None);
        }
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{elapsed}] {pos} tasks run  {wide_msg}")
                    .expect("the template is valid"),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(100));
            let handle = bar.clone();
            let callback: ProgressFn = Arc::new(move |event| match event {
                Progress::Started { identity, .. } => handle.set_message(identity.to_string()),
                Progress::Finished { outcome, .. } => {
                    if matches!(outcome.status, Status::Executed(_)) {
                        handle.inc(1);
                    }
                }
            });
            (BuildProgress { bar: Some(bar) }, Some(callback))
        } else {
            let count = Arc::new(AtomicU64::new(0));
            let callback: ProgressFn = Arc::new(move |event| {
                if let Progress::Finished {
                    identity, outcome, ..
                } = event
                {
                    if matches!(outcome.status, Status::Executed(_)) {
                        let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                        eprintln!("[{n}] {identity}");
                    }
                }
            });
            (BuildProgress { bar: None }, Some(callback))
        }
    }

    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
