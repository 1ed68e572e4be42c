//! n2d's built-in supervisor: runs the services of a procfile target's
//! `launch.json` ([`LaunchSpec`]), as `n2d up` and `n2d watch` need.
//!
//! # How it fits together
//!
//! - [`spec`]: the launch spec types, the contract with the procfile renderer.
//! - `supervisor`: the loop that owns all state and every descriptor
//!   ([`run`], for `n2d up` and for the supervisor `n2d watch` starts).
//! - `reactor`: the epoll set the loop waits on, one token per descriptor.
//! - `keeper`: how one instance is started, so that nothing survives the run.
//! - `probe`: readiness probe attempts and their schedule.
//! - `logs`: whole-line log multiplexing to stdout and `logs/<instance>.log`.
//! - [`command_line`]: the supervisor as a process (`n2d-supervise DIR`).
//! - `control`: the `supervisor.sock` control socket and its [`client`]; the
//!   watch loop applies a new build with [`client::reload`].
//! - `signals`: SIGINT/SIGTERM/SIGHUP as bytes on a pipe the loop reads.
//!
//! # No process outlives the run
//!
//! `PR_SET_PDEATHSIG` alone only reaches a direct child (and fires when the
//! forking *thread* ends, not the process), so each instance runs under a
//! small keeper process forked from the supervisor. The keeper forks the
//! service as the leader of a new process group and then only watches a pipe
//! from the supervisor: a byte is a signal to send to the whole group; end of
//! file — the supervisor was killed, even by SIGKILL, since the kernel then
//! closes its end — makes the keeper SIGKILL the group. The keeper is a child
//! subreaper, so grandchildren whose parent died are re-parented to it; when
//! the service's main process exits, it kills and reaps the rest of the group
//! before reporting the exit, so "exited" means nothing of the instance runs.
//! Processes that leave the group on purpose (`setsid`) are out of reach.
//!
//! # Threads
//!
//! One: the loop, on the caller's thread. Readiness probe attempts (which
//! block for up to their timeout) run on at most four helper threads,
//! started when the first probe is due and joined at the end of the run.

pub mod command_line;
mod control;
mod error;
mod keeper;
mod logs;
mod probe;
mod reactor;
mod signals;
pub mod spec;
mod supervisor;

pub use control::{client, Reply, SOCKET_FILE};
pub use error::Error;
pub use spec::{LaunchSpec, ServiceSpec, LAUNCH_SPEC_FILE, LAUNCH_SPEC_VERSION};
pub use supervisor::{run, Change, Dependants, InstanceState, InstanceStatus, Options, Outcome};
