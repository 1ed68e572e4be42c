//! The foreground managers: Procfile runners (honcho, overmind, hivemind) on
//! the procfile target's `Procfile`, and process-compose on
//! `process-compose.yaml`. Each runs in the target folder, which is where
//! the entrypoints `bin/<service>` and `.env` are, and returns when the tool
//! exits. Only the built-in supervisor honours `launch.json` (dependencies,
//! readiness, restarts); these runners start every line at once.
use super::invocation::Invocation;
use super::{required_file, LaunchContext, Manager, ManagerError};

/// `honcho -f Procfile start` (honcho also reads `.env`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Honcho;

/// `overmind start -f Procfile` (overmind runs each process in tmux).
#[derive(Clone, Copy, Debug, Default)]
pub struct Overmind;

/// `hivemind Procfile`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Hivemind;

/// `process-compose up --tui=false --use-uds -f process-compose.yaml`: plain
/// logs instead of the TUI (the output of `n2d up` may be a pipe), and the
/// control API on a Unix socket instead of TCP port 8080, which a service of
/// the deployment may well want.
#[derive(Clone, Copy, Debug, Default)]
pub struct ProcessComposeTool;

impl Manager for Honcho {
    fn name(&self) -> &'static str {
        "honcho"
    }
    fn target(&self) -> &'static str {
        "procfile"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["honcho"]
    }
    fn detached(&self) -> bool {
        false
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "Procfile")?;
        Invocation::new(self.name(), "honcho", ctx)?
            .args(["-f", "Procfile", "start"])
            .run_foreground()
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Err(ManagerError::NotDetached {
            manager: self.name(),
        })
    }
}

impl Manager for Overmind {
    fn name(&self) -> &'static str {
        "overmind"
    }
    fn target(&self) -> &'static str {
        "procfile"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["overmind", "tmux"]
    }
    fn detached(&self) -> bool {
        false
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "Procfile")?;
        // Checked here although only overmind runs it: overmind's own
        // message for a missing tmux is less clear than ours.
        Invocation::new(self.name(), "tmux", ctx)?;
        Invocation::new(self.name(), "overmind", ctx)?
            .args(["start", "-f", "Procfile"])
            .run_foreground()
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Err(ManagerError::NotDetached {
            manager: self.name(),
        })
    }
}

impl Manager for Hivemind {
    fn name(&self) -> &'static str {
        "hivemind"
    }
    fn target(&self) -> &'static str {
        "procfile"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["hivemind"]
    }
    fn detached(&self) -> bool {
        false
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "Procfile")?;
        Invocation::new(self.name(), "hivemind", ctx)?
            .arg("Procfile")
            .run_foreground()
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Err(ManagerError::NotDetached {
            manager: self.name(),
        })
    }
}

impl Manager for ProcessComposeTool {
    fn name(&self) -> &'static str {
        "process-compose"
    }
    fn target(&self) -> &'static str {
        "process-compose"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["process-compose"]
    }
    fn detached(&self) -> bool {
        false
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "process-compose.yaml")?;
        Invocation::new(self.name(), "process-compose", ctx)?
            .args([
                "up",
                "--tui=false",
                "--use-uds",
                "-f",
                "process-compose.yaml",
            ])
            .run_foreground()
    }
    fn down(&self, _ctx: &LaunchContext) -> Result<(), ManagerError> {
        Err(ManagerError::NotDetached {
            manager: self.name(),
        })
    }
}
