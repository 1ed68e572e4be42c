//! Launch(deployment, target, manager): a detached manager as the last node
//! of a build. Like Materialize it acts on the world, so it is not served
//! from the action cache; instead it is only added to a graph when the
//! assembled output in the target folder differs from the one it last
//! launched (the cache's launch record), or when forced. A launch left out
//! counts as cached.
//!
//! Foreground managers (the built-in supervisor, honcho…) are not graph
//! nodes: they run until the services stop, after the build has released
//! the workspace.
use std::path::PathBuf;
use std::sync::Arc;

use n2d_cache::{Cache, Digest};
use n2d_engine::{Caching, Inputs, RunContext, RunError, Task};
use n2d_rules::manager::{LaunchContext, Manager};
use n2d_rules::Deployment;

/// What `n2d up` asks of a build with a detached manager.
#[derive(Clone)]
pub struct LaunchRequest {
    pub manager: Arc<dyn Manager>,
    pub deployment: Deployment,
    pub target: String,
    /// Launch even when the output is the one launched last.
    pub force: bool,
}

impl LaunchRequest {
    /// The launch record's key: deployment, target and manager.
    pub fn record(&self) -> String {
        format!(
            "//{}:{} {} {}",
            self.deployment.package,
            self.deployment.name,
            self.target,
            self.manager.name()
        )
    }
}

pub struct LaunchTask {
    pub identity: String,
    pub request: LaunchRequest,
    pub dir: PathBuf,
    /// The assembled output the folder holds (its manifest's digest).
    pub assembled: Digest,
    pub cache: Arc<Cache>,
}

impl Task for LaunchTask {
    fn kind(&self) -> &'static str {
        "launch"
    }
    fn version(&self) -> u32 {
        1
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn caching(&self) -> Caching {
        Caching::AlwaysRun
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value_digest("assembled", self.assembled);
        inputs.value("manager", self.request.manager.name().as_bytes());
    }
    fn run(&self, _context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let context = LaunchContext::new(&self.dir, &self.request.deployment);
        self.request
            .manager
            .up(&context)
            .map_err(|e| e.to_string())?;
        let record = self.request.record();
        self.cache
            .put_launch_record(&record, &self.assembled)
            .and_then(|_| self.cache.flush())
            .map_err(|e| format!("launched, but the launch record was not saved: {e}"))?;
        Ok(format!("{record} {}", self.assembled.to_hex()).into_bytes())
    }
}
