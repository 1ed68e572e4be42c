//! n2d's built-in supervisor: runs the services of a procfile target's
//! `launch.json` ([`LaunchSpec`]), as `n2d up` and `n2d watch` need.
//!
//! # How it fits together
//!
//! - [`spec`]: the launch spec types, the contract with the procfile renderer.
//! - `supervisor`: the loop thread that owns all state and the [`Supervisor`]
//!   handle on it ([`run`] for `n2d up`, [`Supervisor::apply`] for the watch loop).
//! - `keeper`: how one instance is started, so that nothing survives the run.
//! - `probe`: readiness probes (exec, http, tcp).
//! - `logs`: whole-line log multiplexing to stdout and `logs/<instance>.log`.
//! - `control`: the `supervisor.sock` control socket and its [`client`].
//! - `signals`: SIGINT/SIGTERM/SIGHUP as loop events.
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
//! Per running instance: a waiter (keeper report → events), a log reader and,
//! while probing, a probe thread; plus one log writer, the control socket
//! server and the loop. Every thread is owned and joined.

mod control;
mod error;
mod keeper;
mod logs;
mod probe;
mod signals;
pub mod spec;
mod supervisor;

pub use control::{client, Reply, SOCKET_FILE};
pub use error::Error;
pub use spec::{LaunchSpec, ServiceSpec, LAUNCH_SPEC_FILE, LAUNCH_SPEC_VERSION};
pub use supervisor::{
    run, Change, Dependants, InstanceState, InstanceStatus, Options, Outcome, Supervisor,
};
