//! Running one tool for a manager: look it up on the search path (a missing
//! tool is [`ManagerError::ToolMissing`] before anything runs), run it by its
//! absolute path in the target folder, and turn a failure into
//! [`ManagerError::Failed`] with the tail of its standard error.
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{LaunchContext, ManagerError};

/// How many lines of a failed tool's standard error an error keeps.
const STDERR_TAIL_LINES: usize = 20;

/// One command line of a manager, ready to run.
pub(super) struct Invocation {
    manager: &'static str,
    tool: &'static str,
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
    search_path: OsString,
}

impl Invocation {
    /// `tool` in the folder of `ctx`; `ToolMissing` when it is not on the
    /// search path.
    pub(super) fn new(
        manager: &'static str,
        tool: &'static str,
        ctx: &LaunchContext,
    ) -> Result<Self, ManagerError> {
        let program =
            find_tool(tool, &ctx.search_path).ok_or_else(|| ManagerError::ToolMissing {
                manager,
                tool,
                hint: install_hint(tool),
            })?;
        Ok(Invocation {
            manager,
            tool,
            program,
            args: Vec::new(),
            cwd: ctx.dir.to_path_buf(),
            search_path: ctx.search_path.clone(),
        })
    }

    pub(super) fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_os_string());
        self
    }

    pub(super) fn args<I, A>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = A>,
        A: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }

    /// Runs in `dir` instead of the target folder.
    pub(super) fn in_dir(mut self, dir: &Path) -> Self {
        self.cwd = dir.to_path_buf();
        self
    }

    /// The command line as a user would type it, for messages.
    pub(super) fn command_line(&self) -> String {
        let mut line = self.tool.to_string();
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            line.push(' ');
            let plain = !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@,+%".contains(c));
            if plain {
                line.push_str(&arg);
            } else {
                line.push('\'');
                line.push_str(&arg.replace('\'', r"'\''"));
                line.push('\'');
            }
        }
        line
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .current_dir(&self.cwd)
            .env("PATH", &self.search_path);
        command
    }

    /// Runs with no input and captured output (a detached manager's step);
    /// returns its standard output.
    pub(super) fn run_captured(&self) -> Result<String, ManagerError> {
        let output = self
            .command()
            .stdin(Stdio::null())
            .output()
            .map_err(|source| self.spawn_error(source))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(ManagerError::Failed {
                manager: self.manager,
                command: self.command_line(),
                status: output.status,
                stderr_tail: tail(&String::from_utf8_lossy(&output.stderr)),
            })
        }
    }

    /// Runs with the caller's stdio until it exits (a foreground manager).
    pub(super) fn run_foreground(&self) -> Result<(), ManagerError> {
        let status = self
            .command()
            .status()
            .map_err(|source| self.spawn_error(source))?;
        if status.success() {
            Ok(())
        } else {
            Err(ManagerError::Failed {
                manager: self.manager,
                command: self.command_line(),
                status,
                stderr_tail: String::new(),
            })
        }
    }

    fn spawn_error(&self, source: std::io::Error) -> ManagerError {
        ManagerError::Io {
            manager: self.manager,
            action: "running",
            path: self.program.clone(),
            source,
        }
    }
}

/// The executable `tool` in the first directory of `search_path` that has
/// one. Empty entries (the current directory, by an old convention) are
/// skipped: a target folder must not be able to shadow a tool.
pub fn find_tool(tool: &str, search_path: &OsStr) -> Option<PathBuf> {
    std::env::split_paths(search_path)
        .filter(|dir| dir.is_absolute())
        .map(|dir| dir.join(tool))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(STDERR_TAIL_LINES)..].join("\n")
}

/// How to get `tool`, in one phrase.
fn install_hint(tool: &str) -> &'static str {
    match tool {
        "honcho" => {
            "install it with `pipx install honcho`, or run `n2d up` with the built-in supervisor"
        }
        "overmind" => "install overmind from its releases; it runs the services in tmux",
        "tmux" => {
            "overmind runs the services in tmux: install tmux with the system's package manager"
        }
        "hivemind" => {
            "install hivemind from its releases, or run `n2d up` with the built-in supervisor"
        }
        "process-compose" => {
            "install process-compose from its releases, or launch the procfile target"
        }
        "systemctl" => {
            "systemctl comes with systemd; on a machine without systemd launch the procfile target"
        }
        "podman" => "install podman (and runc or crun) with the system's package manager",
        "skopeo" => "install skopeo with the system's package manager",
        "podman-compose" => {
            "install it with `pipx install podman-compose`, or use `--manager docker-compose`"
        }
        "docker" => {
            "install Docker Engine with its compose plugin, or use `--manager podman-compose`"
        }
        "kubectl" => "install kubectl and select a cluster context, or use `--manager podman-kube`",
        _ => "install it and put it on PATH",
    }
}
