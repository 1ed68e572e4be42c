//! The built-in supervisor as the watch loop's child process:
//! `n2d-supervise --stay` on the procfile folder (or `n2d __supervise
//! --stay`, see [`crate::supervisor_command`]), driven over its control
//! socket (`reload dependants` applies a build, `stop` ends it).
//!
//! A child rather than a thread of the watch process: forking a keeper for
//! each restarted service from a process that holds a build's memory and
//! threads is slow, and every keeper would keep a copy-on-write share of
//! that memory. The child gets `PR_SET_PDEATHSIG = SIGKILL`, so a killed
//! watch takes it along, and its keepers then kill the services.
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use n2d_supervisor::{client, Change, Dependants};

use crate::WhenIdle;

/// A running supervisor child and the folder it supervises.
pub struct SupervisorProcess {
    dir: PathBuf,
    child: Child,
}

/// How often to look whether a starting supervisor answers yet.
const POLL: Duration = Duration::from_millis(2);

impl SupervisorProcess {
    /// Starts a supervisor on `dir` and returns once it answers on its
    /// socket. The outer error ends the watch; the inner one is a
    /// supervisor that could not start (it said why on stderr).
    pub fn start(dir: &Path, timestamps: bool) -> Result<Result<SupervisorProcess>> {
        if client::status(dir).is_ok() {
            return Ok(Err(anyhow!(
                "a supervisor is already running on {}; stop it first",
                dir.display()
            )));
        }
        let mut command = crate::supervisor_command(dir, timestamps, WhenIdle::Stay);
        command.stdin(Stdio::null());
        // SAFETY: prctl and getppid are async-signal-safe.
        unsafe {
            let watch = libc::getpid();
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
                // The watch may have died before the line above.
                if libc::getppid() != watch {
                    libc::_exit(1);
                }
                Ok(())
            });
        }
        let mut child = command.spawn().context("starting the supervisor")?;
        loop {
            if client::status(dir).is_ok() {
                return Ok(Ok(SupervisorProcess {
                    dir: dir.to_path_buf(),
                    child,
                }));
            }
            if let Some(status) = child.try_wait().context("waiting for the supervisor")? {
                return Ok(Err(anyhow!("the supervisor exited with {status}")));
            }
            std::thread::sleep(POLL);
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Applies the build in the folder: restarts the services whose spec
    /// changed and their dependants, starts added ones, stops removed ones;
    /// returns once the new processes run. The outer error ends the watch;
    /// the inner one is a launch spec the supervisor refused.
    pub fn apply(&mut self) -> Result<Result<Vec<Change>>> {
        match client::reload(&self.dir, Dependants::Restart) {
            Ok(changes) => Ok(Ok(changes)),
            Err(n2d_supervisor::Error::Refused { message }) => Ok(Err(anyhow!("{message}"))),
            Err(error) => match self.child.try_wait() {
                Ok(Some(status)) => bail!("the supervisor ended unexpectedly ({status})"),
                _ => Err(anyhow!("{error}")).context("applying the build"),
            },
        }
    }

    /// Stops every service in reverse dependency order and waits for the
    /// supervisor to exit (it prints its summary itself).
    pub fn stop(mut self) -> Result<()> {
        // Already stopping (a Ctrl-C reaches the whole process group) or
        // gone: waiting is all that is left.
        let _ = client::stop(&self.dir);
        self.child.wait().context("waiting for the supervisor")?;
        Ok(())
    }
}
