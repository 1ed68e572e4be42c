//! The supervisor's loop: one thread owns every instance's state and every
//! descriptor, waits on them all in one epoll set ([`crate::reactor`]), and
//! reacts to events — a keeper reported its service's pid or exit, a log
//! pipe has lines, a probe attempt's verdict, a signal, a control request,
//! a deadline (restart backoff, stop timeout, next probe attempt) — then
//! advances: starts what may start, stops what must stop, restarts what is
//! due. [`run`] is both `n2d up` and the supervisor `n2d watch` starts.
//!
//! One thread instead of threads per instance: with a thousand services the
//! old design had two thousand threads, and forking a keeper from such a
//! process — and applying a new build while they all run — was what made a
//! watch cycle slow; it also kept the footprint well above one loop's.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::control::{ControlServer, Incoming, Reply, Request};
use crate::keeper::{Inherited, Keeper, KeeperPipes, LaunchPlan};
use crate::logs::{Drained, LogOutput, LogPipe, LogSource, LogStyle};
use crate::probe::{AfterFailure, ProbePool, Schedule};
use crate::reactor::{self, Interest, Reactor, ReadOutcome, Token};
use crate::signals::SignalPipe;
use crate::spec::{Condition, LaunchSpec, RestartPolicy, ServiceSpec};
use crate::Error;

/// How a run looks and behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Prefix each log line with the local time.
    pub timestamps: bool,
    /// Color the prefixes; [`Options::from_env`] enables it on a terminal without `NO_COLOR`.
    pub color: bool,
    /// Keep supervising (and answering on the socket) when every service has
    /// ended, until told to stop; the watch loop wants this, `n2d up` does not.
    pub stay_when_idle: bool,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// 0 when every service ended well or the run was stopped; else the first
    /// failing service's exit code (128 + signal when it was killed).
    pub code: i32,
    /// One line: what failed and why, or that all went well.
    pub summary: String,
}

/// Whether services that depend on a changed service restart with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependants {
    Keep,
    Restart,
}

/// One instance as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    pub instance: String,
    pub service: String,
    pub pid: Option<u32>,
    pub state: InstanceState,
    /// Restarts by the restart policy since the service was (re)created.
    pub restarts: u32,
    /// When the instance entered its current state, in ms since the Unix epoch.
    pub since_unix_ms: u64,
    /// Why it failed or was not started.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InstanceState {
    /// Waiting for its dependencies.
    Waiting,
    /// Process forked, pid not reported yet.
    Starting,
    /// Running; probing when it has a readiness probe.
    Running,
    /// Running and its readiness probe passed.
    Ready,
    /// Running but its probe never passed.
    Unhealthy,
    /// Exited; restarts when its backoff delay is over.
    Backoff,
    /// Stop signal sent.
    Stopping,
    /// Exited 0 and is not restarted.
    Completed,
    /// Exited badly (or could not start) and is not restarted.
    Failed,
    /// Stopped on request.
    Stopped,
    /// Never started because a dependency failed or never became healthy.
    Blocked,
}

/// What a reload or restart did, for the watch loop's status line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Started {
        instance: String,
        pid: u32,
    },
    Restarted {
        instance: String,
        old_pid: Option<u32>,
        new_pid: u32,
    },
    Stopped {
        instance: String,
        pid: Option<u32>,
    },
    Failed {
        instance: String,
        reason: String,
    },
}

/// Supervises the procfile target in `dir` on the calling thread until
/// every service ended, or until SIGINT, SIGTERM or SIGHUP (a second one
/// kills at once), or a `stop` on the control socket. The control socket
/// `supervisor.sock` in `dir` answers `status`, `restart` and `reload`
/// meanwhile (see [`crate::client`]).
pub fn run(dir: &Path, options: Options) -> Result<Outcome, Error> {
    let dir = std::path::absolute(dir)
        .map_err(|source| Error::io("resolve target folder", dir, source))?;
    let spec = LaunchSpec::load(&dir)?;
    let logs_dir = dir.join("logs");
    std::fs::create_dir_all(&logs_dir)
        .map_err(|source| Error::io("create log folder", &logs_dir, source))?;
    let control = ControlServer::bind(&dir)?;
    let width = spec
        .services
        .iter()
        .flat_map(|s| s.instance_names())
        .map(|n| n.len())
        .max()
        .unwrap_or(0);
    let output = LogOutput::new(LogStyle {
        color: options.color,
        timestamps: options.timestamps,
        width,
    })?;
    let signals = SignalPipe::install()?;
    let probes = ProbePool::new()?;
    let reactor = Reactor::new()?;
    reactor.add(signals.fd(), Token::Signals, Interest::Read)?;
    reactor.add(probes.fd(), Token::Probes, Interest::Read)?;
    reactor.add(control.listener_fd(), Token::Listener, Interest::Read)?;
    let mut state = RunState::new(dir, spec, options, output, control, reactor, probes);
    let outcome = state.run(&signals);
    drop(state);
    drop(signals);
    outcome
}

impl Options {
    /// No timestamps; color when stdout is a terminal and `NO_COLOR` is unset.
    pub fn from_env() -> Options {
        // SAFETY: isatty only inspects the descriptor.
        let terminal = unsafe { libc::isatty(1) } == 1;
        Options {
            timestamps: false,
            color: terminal && std::env::var_os("NO_COLOR").is_none(),
            stay_when_idle: false,
        }
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Change::Started { instance, pid } => write!(f, "started {instance} (pid {pid})"),
            Change::Restarted {
                instance,
                old_pid: Some(old),
                new_pid,
            } => write!(f, "restarted {instance} (pid {old}→{new_pid})"),
            Change::Restarted {
                instance,
                old_pid: None,
                new_pid,
            } => write!(f, "restarted {instance} (pid {new_pid})"),
            Change::Stopped {
                instance,
                pid: Some(pid),
            } => write!(f, "stopped {instance} (pid {pid})"),
            Change::Stopped {
                instance,
                pid: None,
            } => write!(f, "stopped {instance}"),
            Change::Failed { instance, reason } => write!(f, "{instance} failed: {reason}"),
        }
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        f.write_str(&text)
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Code(i32),
    Signal(i32),
}

impl Exit {
    fn from_wait_status(status: i32) -> Exit {
        if libc::WIFSIGNALED(status) {
            Exit::Signal(libc::WTERMSIG(status))
        } else {
            Exit::Code(libc::WEXITSTATUS(status))
        }
    }

    fn success(self) -> bool {
        self == Exit::Code(0)
    }

    fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal(signal) => 128 + signal,
        }
    }
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exited with status {code}"),
            Exit::Signal(signal) => write!(f, "was killed by signal {signal}"),
        }
    }
}

/// A run that lasted this long counts as healthy: the backoff delay and the
/// count towards `max_restarts` start over.
const RESET_AFTER: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Exit code of an instance that could not be started at all.
const CANNOT_START: i32 = 127;
/// The variables each instance gets its own value of.
const INSTANCE_VARIABLES: [&str; 2] = ["N2D_SERVICE", "N2D_INSTANCE"];

struct RunState {
    dir: PathBuf,
    options: Options,
    /// In dependency order; services being removed stay at the end until stopped.
    services: Vec<Service>,
    output: LogOutput,
    control: ControlServer,
    reactor: Reactor,
    probes: ProbePool,
    environment: Inherited,
    /// Log pipes by spawn number. A pipe outlives its instance's exit until
    /// end of file, which a process that escaped the group may delay.
    readers: HashMap<u64, LogPipe>,
    /// The read buffer every log pipe shares.
    scratch: Vec<u8>,
    next_spawn: u64,
    next_color: usize,
    shutting_down: bool,
    /// Set by a stop request or a signal: the run then ends with status 0.
    stopped_on_request: bool,
    pending: Vec<PendingReply>,
}

struct Service {
    spec: ServiceSpec,
    instances: Vec<Instance>,
    color: usize,
    retire: Retire,
}

enum Retire {
    No,
    /// Stop every instance, then start again from this spec.
    Replace(Box<ServiceSpec>),
    Remove,
}

struct Instance {
    name: String,
    state: InstanceState,
    since: SystemTime,
    reason: Option<String>,
    source: Rc<LogSource>,
    /// The spawn number of the current (or last) process, 0 before the first.
    spawn: u64,
    /// Invariant: `Some` exactly while a process of the instance may exist.
    keeper: Option<Keeper>,
    /// The keeper's report pipe and the bytes read from it so far.
    report: Option<(OwnedFd, Vec<u8>)>,
    /// The readiness probe's schedule while the instance is being probed.
    probe: Option<Schedule>,
    pid: Option<u32>,
    started_at: Instant,
    /// Whether this instance has been running since its service was (re)created.
    ever_started: bool,
    healthy: bool,
    restarts: u32,
    /// Restarts since the last run that lasted [`RESET_AFTER`]; drives backoff and giving up.
    consecutive: u32,
    restart_at: Option<Instant>,
    stop_sent: bool,
    kill_at: Option<Instant>,
    last_exit: Option<Exit>,
}

/// A reload or restart whose requester waits for the new processes.
struct PendingReply {
    /// Spawns numbered above this belong to the new build.
    spawn_mark: u64,
    /// Instance name → pid of the process it replaces.
    starts: HashMap<String, Option<u32>>,
    /// Instance name → pid, for instances that go away.
    stops: HashMap<String, Option<u32>>,
    changes: Vec<Change>,
    /// The control connection waiting for the answer.
    connection: u64,
}

impl RunState {
    fn new(
        dir: PathBuf,
        spec: LaunchSpec,
        options: Options,
        output: LogOutput,
        control: ControlServer,
        reactor: Reactor,
        probes: ProbePool,
    ) -> RunState {
        let mut state = RunState {
            dir,
            options,
            services: Vec::new(),
            output,
            control,
            reactor,
            probes,
            environment: Inherited::capture(&INSTANCE_VARIABLES),
            readers: HashMap::new(),
            scratch: Vec::new(),
            next_spawn: 0,
            next_color: 0,
            shutting_down: false,
            stopped_on_request: false,
            pending: Vec::new(),
        };
        for service in spec.services {
            let service = state.new_service(service);
            state.services.push(service);
        }
        state
    }

    fn new_service(&mut self, spec: ServiceSpec) -> Service {
        let color = self.next_color;
        self.next_color += 1;
        let instances = spec
            .instance_names()
            .into_iter()
            .map(|name| self.new_instance(name, color))
            .collect();
        Service {
            spec,
            instances,
            color,
            retire: Retire::No,
        }
    }

    fn new_instance(&self, name: String, color: usize) -> Instance {
        Instance {
            source: Rc::new(LogSource {
                name: name.clone(),
                color,
                file: self.dir.join("logs").join(format!("{name}.log")),
            }),
            name,
            state: InstanceState::Waiting,
            since: SystemTime::now(),
            reason: None,
            spawn: 0,
            keeper: None,
            report: None,
            probe: None,
            pid: None,
            started_at: Instant::now(),
            ever_started: false,
            healthy: false,
            restarts: 0,
            consecutive: 0,
            restart_at: None,
            stop_sent: false,
            kill_at: None,
            last_exit: None,
        }
    }

    fn run(&mut self, signals: &SignalPipe) -> Result<Outcome, Error> {
        let mut dirty = true;
        loop {
            if dirty {
                self.advance();
                dirty = false;
            }
            if self.finished() {
                break;
            }
            let mut ready = Vec::new();
            if self.output.pending() {
                ready = self.reactor.wait(Some(Duration::ZERO))?;
            }
            if ready.is_empty() {
                // About to wait: make every line so far visible first.
                self.output.flush();
                let timeout = self
                    .next_deadline()
                    .map(|deadline| deadline.saturating_duration_since(Instant::now()));
                ready = self.reactor.wait(timeout)?;
            }
            for event in ready {
                dirty |= self.on_ready(event, signals);
            }
            dirty |= self
                .next_deadline()
                .is_some_and(|deadline| deadline <= Instant::now());
        }
        // Whatever escaped processes left in the pipes, then the verdict.
        for (_, mut pipe) in self.readers.drain() {
            if pipe.read(usize::MAX, &mut self.scratch, &mut self.output) == Drained::Open {
                pipe.finish(&mut self.output);
            }
        }
        let outcome = self.outcome();
        self.output.system(&outcome.summary);
        self.output.flush();
        // Clients still waiting for a reload see the connection close.
        self.pending.clear();
        Ok(outcome)
    }

    /// Handles one ready descriptor; returns whether the state changed (a
    /// log line alone does not: it needs no `advance`).
    fn on_ready(&mut self, token: Token, signals: &SignalPipe) -> bool {
        match token {
            Token::Signals => {
                for signal in signals.take() {
                    self.on_signal(signal);
                }
                true
            }
            Token::Probes => {
                for verdict in self.probes.take() {
                    self.on_probe(verdict.spawn, verdict.result);
                }
                true
            }
            Token::Listener => {
                for (id, fd) in self.control.accept() {
                    if self
                        .reactor
                        .add(fd, Token::Connection(id), Interest::Read)
                        .is_err()
                    {
                        self.control.reply(id, &Reply::Error("too busy".into()));
                    }
                }
                false
            }
            Token::Connection(id) => {
                if self.control.is_writing(id) {
                    self.control.write(id);
                    return false;
                }
                match self.control.read(id, &self.dir) {
                    Incoming::Nothing | Incoming::Gone => false,
                    Incoming::Refused(reply, fd) => {
                        self.reactor.remove(fd);
                        self.send_reply(id, reply);
                        false
                    }
                    Incoming::Request(request, fd) => {
                        self.reactor.remove(fd);
                        self.on_request(id, request);
                        true
                    }
                }
            }
            Token::Report(spawn) => {
                self.on_report(spawn);
                true
            }
            Token::Log(spawn) => {
                if let Some(pipe) = self.readers.get_mut(&spawn) {
                    // A few chunks per wake-up: fair to the other instances.
                    if pipe.read(4, &mut self.scratch, &mut self.output) == Drained::Ended {
                        self.readers.remove(&spawn);
                    }
                }
                false
            }
        }
    }

    fn send_reply(&mut self, connection: u64, reply: Reply) {
        if let Some(fd) = self.control.reply(connection, &reply) {
            // The rest goes out when the client reads; a failure to
            // register only loses this client's answer.
            let _ = self
                .reactor
                .add(fd, Token::Connection(connection), Interest::Write);
        }
    }

    fn on_signal(&mut self, signal: i32) {
        if self.shutting_down {
            self.output
                .system(&format!("signal {signal} again: killing every service"));
            for instance in self.services.iter_mut().flat_map(|s| &mut s.instances) {
                if let Some(keeper) = &instance.keeper {
                    keeper.signal_group(libc::SIGKILL);
                }
            }
        } else {
            self.output.system(&format!("signal {signal}: stopping"));
            self.shutting_down = true;
            self.stopped_on_request = true;
        }
    }

    fn on_request(&mut self, connection: u64, request: Request) {
        match request {
            Request::Status => {
                let status = self.status();
                self.send_reply(connection, Reply::Status(status));
            }
            Request::Stop => {
                if !self.shutting_down {
                    self.output.system("stop requested: stopping");
                }
                self.shutting_down = true;
                self.stopped_on_request = true;
                self.send_reply(connection, Reply::Stopping);
            }
            Request::Restart(name) => {
                let Some(service) = self
                    .services
                    .iter()
                    .find(|s| s.spec.name == name && matches!(s.retire, Retire::No))
                else {
                    self.send_reply(connection, Reply::Error(format!("no service named {name}")));
                    return;
                };
                let spec = LaunchSpec {
                    version: crate::LAUNCH_SPEC_VERSION,
                    services: self.current_specs(),
                };
                let forced = HashSet::from([service.spec.name.clone()]);
                self.apply(spec, forced, Dependants::Keep, connection);
            }
            Request::Apply(spec, dependants) => {
                self.apply(spec, HashSet::new(), dependants, connection);
            }
        }
    }

    fn current_specs(&self) -> Vec<ServiceSpec> {
        self.services
            .iter()
            .filter_map(|s| match &s.retire {
                Retire::No => Some(s.spec.clone()),
                Retire::Replace(next) => Some((**next).clone()),
                Retire::Remove => None,
            })
            .collect()
    }

    fn apply(
        &mut self,
        spec: LaunchSpec,
        mut changed: HashSet<String>,
        dependants: Dependants,
        connection: u64,
    ) {
        if self.shutting_down {
            self.send_reply(
                connection,
                Reply::Error("the supervisor is stopping".into()),
            );
            return;
        }
        let current: HashMap<String, ServiceSpec> = self
            .current_specs()
            .into_iter()
            .map(|s| (s.name.clone(), s))
            .collect();
        for service in &spec.services {
            if current
                .get(&service.name)
                .is_some_and(|old| old.spec_digest != service.spec_digest)
            {
                changed.insert(service.name.clone());
            }
        }
        if dependants == Dependants::Restart {
            // Services come in dependency order, so one pass closes the set.
            for service in &spec.services {
                if service.depends_on.keys().any(|d| changed.contains(d)) {
                    changed.insert(service.name.clone());
                }
            }
        }
        let mut pending = PendingReply {
            spawn_mark: self.next_spawn,
            starts: HashMap::new(),
            stops: HashMap::new(),
            changes: Vec::new(),
            connection,
        };
        let mut reordered = Vec::with_capacity(self.services.len());
        let mut old: HashMap<String, Service> = self
            .services
            .drain(..)
            .map(|s| (s.spec.name.clone(), s))
            .collect();
        for new_spec in spec.services {
            match old.remove(&new_spec.name) {
                Some(mut service)
                    if changed.contains(&new_spec.name)
                        || matches!(service.retire, Retire::Replace(_)) =>
                {
                    let old_pids: HashMap<&str, Option<u32>> = service
                        .instances
                        .iter()
                        .map(|i| (i.name.as_str(), i.pid))
                        .collect();
                    let new_names = new_spec.instance_names();
                    for name in &new_names {
                        pending
                            .starts
                            .insert(name.clone(), old_pids.get(name.as_str()).copied().flatten());
                    }
                    for instance in &service.instances {
                        if !new_names.contains(&instance.name) {
                            pending.stops.insert(instance.name.clone(), instance.pid);
                        }
                    }
                    self.output
                        .system(&format!("{} changed: restarting", new_spec.name));
                    service.retire = Retire::Replace(Box::new(new_spec));
                    reordered.push(service);
                }
                Some(mut service) => {
                    // Unchanged: keep the processes, adopt the (equal) spec.
                    service.spec = new_spec;
                    reordered.push(service);
                }
                None => {
                    for name in new_spec.instance_names() {
                        pending.starts.insert(name, None);
                    }
                    self.output.system(&format!("{} added", new_spec.name));
                    let service = self.new_service(new_spec);
                    reordered.push(service);
                }
            }
        }
        // Whatever is left is gone from the build.
        let mut removed: Vec<Service> = old.into_values().collect();
        removed.sort_by(|a, b| a.spec.name.cmp(&b.spec.name));
        for mut service in removed {
            for instance in &service.instances {
                pending.stops.insert(instance.name.clone(), instance.pid);
            }
            self.output
                .system(&format!("{} removed: stopping", service.spec.name));
            service.retire = Retire::Remove;
            reordered.push(service);
        }
        self.services = reordered;
        // A changed build may unblock what waited on a failed dependency.
        for instance in self.services.iter_mut().flat_map(|s| &mut s.instances) {
            if instance.state == InstanceState::Blocked {
                instance.set_state(InstanceState::Waiting, None);
            }
        }
        self.pending.push(pending);
    }

    /// Starts, stops and restarts whatever the current state allows.
    fn advance(&mut self) {
        let now = Instant::now();
        self.advance_stops(now);
        self.finish_retirements();
        if !self.shutting_down {
            self.advance_starts(now);
            self.advance_probes(now);
        }
        self.answer_pending();
    }

    fn advance_stops(&mut self, now: Instant) {
        let stopping: Vec<bool> = self
            .services
            .iter()
            .map(|s| self.shutting_down || !matches!(s.retire, Retire::No))
            .collect();
        for index in 0..self.services.len() {
            if !stopping[index] {
                continue;
            }
            let name = self.services[index].spec.name.clone();
            // Reverse dependency order: wait while a dependant that is also
            // stopping still has processes.
            let dependant_alive = self.services.iter().enumerate().any(|(other, s)| {
                stopping[other]
                    && s.spec.depends_on.contains_key(&name)
                    && s.instances.iter().any(Instance::alive)
            });
            let service = &mut self.services[index];
            let signal = service.spec.stop_signal.number();
            let timeout = Duration::from_millis(service.spec.stop_timeout_ms);
            for instance in &mut service.instances {
                match instance.state {
                    InstanceState::Waiting | InstanceState::Backoff => {
                        instance.restart_at = None;
                        instance.set_state(InstanceState::Stopped, None);
                        continue;
                    }
                    _ => {}
                }
                if instance.keeper.is_none() {
                    continue;
                }
                if !instance.stop_sent && !dependant_alive {
                    instance.stop_sent = true;
                    instance.kill_at = Some(now + timeout);
                    instance.probe = None;
                    instance.signal_group(signal);
                    instance.set_state(InstanceState::Stopping, None);
                    self.output
                        .system(&format!("stopping {} (signal {signal})", instance.name));
                } else if instance.kill_at.is_some_and(|at| at <= now) {
                    instance.kill_at = None;
                    instance.signal_group(libc::SIGKILL);
                    self.output.system(&format!(
                        "{} did not stop within {} ms: killing it",
                        instance.name,
                        timeout.as_millis()
                    ));
                }
            }
        }
    }

    fn finish_retirements(&mut self) {
        let mut index = 0;
        while index < self.services.len() {
            let service = &self.services[index];
            if matches!(service.retire, Retire::No) || service.instances.iter().any(Instance::alive)
            {
                index += 1;
                continue;
            }
            let service = &mut self.services[index];
            for instance in &service.instances {
                let name = instance.name.clone();
                let pid = instance.last_pid();
                for pending in &mut self.pending {
                    if pending.stops.remove(&name).is_some() {
                        pending.changes.push(Change::Stopped {
                            instance: name.clone(),
                            pid,
                        });
                    }
                }
            }
            match std::mem::replace(&mut service.retire, Retire::No) {
                Retire::Replace(spec) if !self.shutting_down => {
                    let color = service.color;
                    let instances = spec
                        .instance_names()
                        .into_iter()
                        .map(|name| self.new_instance(name, color))
                        .collect();
                    let service = &mut self.services[index];
                    service.spec = *spec;
                    service.instances = instances;
                    index += 1;
                }
                Retire::Replace(_) => index += 1,
                Retire::Remove | Retire::No => {
                    self.services.remove(index);
                }
            }
        }
    }

    fn advance_starts(&mut self, now: Instant) {
        for index in 0..self.services.len() {
            if !matches!(self.services[index].retire, Retire::No) {
                continue;
            }
            let blocked_by = match self.dependencies_met(index) {
                Readiness::Met => None,
                Readiness::NotYet => continue,
                Readiness::Never(reason) => Some(reason),
            };
            for instance_index in 0..self.services[index].instances.len() {
                let instance = &mut self.services[index].instances[instance_index];
                match (instance.state, &blocked_by) {
                    (InstanceState::Waiting, Some(reason)) => {
                        let reason = format!("{} not started: {reason}", instance.name);
                        self.output.system(&reason.clone());
                        instance.set_state(InstanceState::Blocked, Some(reason.clone()));
                        let name = instance.name.clone();
                        self.note_failure(&name, reason);
                    }
                    (InstanceState::Waiting, None) => self.spawn(index, instance_index),
                    (InstanceState::Backoff, _)
                        if instance.restart_at.is_some_and(|at| at <= now) =>
                    {
                        instance.restart_at = None;
                        self.spawn(index, instance_index);
                    }
                    _ => {}
                }
            }
        }
    }

    fn dependencies_met(&self, index: usize) -> Readiness {
        let spec = &self.services[index].spec;
        let mut verdict = Readiness::Met;
        for (name, condition) in &spec.depends_on {
            let Some(dependency) = self.services.iter().find(|s| &s.spec.name == name) else {
                return Readiness::Never(format!("{name} does not exist"));
            };
            if !matches!(dependency.retire, Retire::No) {
                verdict = Readiness::NotYet;
                continue;
            }
            for instance in &dependency.instances {
                use InstanceState as S;
                let failed = matches!(instance.state, S::Failed | S::Blocked | S::Stopped)
                    || (*condition == Condition::Healthy && instance.state == S::Unhealthy)
                    || (*condition == Condition::Completed
                        && instance.state == S::Completed
                        && instance.last_exit.is_some_and(|e| !e.success()));
                if failed {
                    let why = instance
                        .reason
                        .clone()
                        .unwrap_or_else(|| format!("{} {}", instance.name, instance.state));
                    return Readiness::Never(format!("dependency {why}"));
                }
                let met = match condition {
                    Condition::Started => instance.ever_started,
                    Condition::Healthy => instance.healthy,
                    Condition::Completed => instance.state == S::Completed,
                };
                if !met {
                    verdict = Readiness::NotYet;
                }
            }
        }
        verdict
    }

    fn spawn(&mut self, index: usize, instance_index: usize) {
        self.next_spawn += 1;
        let spawn = self.next_spawn;
        let service = &mut self.services[index];
        let instance = &mut service.instances[instance_index];
        let restarted = instance.ever_started;
        let plan = LaunchPlan::new(
            &self.dir,
            &service.spec.command,
            &[
                (INSTANCE_VARIABLES[0], &service.spec.name),
                (INSTANCE_VARIABLES[1], &instance.name),
            ],
        );
        let spawned = plan
            .and_then(|plan| {
                Keeper::spawn(&plan, &self.environment).map_err(|error| error.to_string())
            })
            .and_then(|(keeper, KeeperPipes { report, log })| {
                let registered = self
                    .reactor
                    .add(report.as_raw_fd(), Token::Report(spawn), Interest::Read)
                    .and_then(|()| {
                        self.reactor
                            .add(log.as_raw_fd(), Token::Log(spawn), Interest::Read)
                    });
                match registered {
                    Ok(()) => Ok((keeper, report, log)),
                    Err(error) => {
                        // Closing the command pipe makes the keeper kill the group.
                        let pid = keeper.pid;
                        drop(keeper);
                        reap(pid);
                        Err(error.to_string())
                    }
                }
            });
        let (keeper, report, log) = match spawned {
            Ok(spawned) => spawned,
            Err(problem) => {
                let reason = format!("{} cannot start: {problem}", instance.name);
                self.output.system(&reason);
                instance.last_exit = Some(Exit::Code(CANNOT_START));
                instance.set_state(InstanceState::Failed, Some(reason.clone()));
                let name = instance.name.clone();
                self.note_failure(&name, reason);
                return;
            }
        };
        instance.spawn = spawn;
        instance.started_at = Instant::now();
        instance.stop_sent = false;
        instance.kill_at = None;
        instance.healthy = false;
        instance.set_state(InstanceState::Starting, None);
        instance.keeper = Some(keeper);
        instance.report = Some((report, Vec::with_capacity(8)));
        self.readers
            .insert(spawn, LogPipe::new(log, instance.source.clone()));
        if restarted {
            self.output.system(&format!(
                "restarting {} (restart {})",
                instance.name, instance.restarts
            ));
        }
    }

    fn find(&mut self, spawn: u64) -> Option<(usize, usize)> {
        self.services.iter().enumerate().find_map(|(s, service)| {
            service
                .instances
                .iter()
                .position(|i| i.spawn == spawn && i.keeper.is_some())
                .map(|i| (s, i))
        })
    }

    /// Reads a keeper's report: the service's pid (it runs), then, at end
    /// of file, its wait status (it and its whole group are gone).
    fn on_report(&mut self, spawn: u64) {
        let Some((s, i)) = self.find(spawn) else {
            return;
        };
        let instance = &mut self.services[s].instances[i];
        let Some((fd, bytes)) = &mut instance.report else {
            return;
        };
        let before = bytes.len();
        let ended = loop {
            match reactor::read_into(fd.as_raw_fd(), bytes, 8) {
                ReadOutcome::Data => {}
                ReadOutcome::WouldBlock => break false,
                ReadOutcome::End => break true,
            }
        };
        let word = |bytes: &[u8], at: usize| {
            i32::from_ne_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
        };
        let pid = (before < 4 && bytes.len() >= 4).then(|| word(bytes, 0));
        let service_status = (ended && bytes.len() >= 8).then(|| word(bytes, 4));
        let keeper = instance.keeper.as_ref().map(|k| k.pid);
        if let Some(pid) = pid {
            self.on_running(spawn, pid);
        }
        if !ended {
            return;
        }
        let instance = &mut self.services[s].instances[i];
        instance.report = None;
        // End of file: the keeper has closed everything and is exiting.
        let keeper_status = keeper.map_or(0, reap);
        // Lines the service wrote before it ended come before the news.
        if let Some(pipe) = self.readers.get_mut(&spawn) {
            if pipe.read(usize::MAX, &mut self.scratch, &mut self.output) == Drained::Ended {
                self.readers.remove(&spawn);
            }
        }
        let exit = Exit::from_wait_status(service_status.unwrap_or(keeper_status));
        self.on_exited(spawn, exit);
    }

    fn on_running(&mut self, spawn: u64, pid: i32) {
        let Some((s, i)) = self.find(spawn) else {
            return;
        };
        let service = &mut self.services[s];
        let instance = &mut service.instances[i];
        instance.pid = Some(pid as u32);
        instance.ever_started = true;
        if instance.state == InstanceState::Starting {
            instance.set_state(InstanceState::Running, None);
        }
        self.output
            .system(&format!("{} started (pid {pid})", instance.name));
        match &service.spec.readiness {
            Some(readiness) if !instance.stop_sent => {
                instance.probe = Some(Schedule::new(readiness.clone(), Instant::now()));
            }
            _ => instance.healthy = true,
        }
        let name = instance.name.clone();
        for pending in &mut self.pending {
            if spawn > pending.spawn_mark {
                if let Some(old_pid) = pending.starts.remove(&name) {
                    pending.changes.push(match old_pid {
                        Some(_) => Change::Restarted {
                            instance: name.clone(),
                            old_pid,
                            new_pid: pid as u32,
                        },
                        None => Change::Started {
                            instance: name.clone(),
                            pid: pid as u32,
                        },
                    });
                }
            }
        }
    }

    /// Hands every due probe attempt to the helpers.
    fn advance_probes(&mut self, now: Instant) {
        for instance in self.services.iter_mut().flat_map(|s| &mut s.instances) {
            let Some(schedule) = &mut instance.probe else {
                continue;
            };
            if schedule.next.is_some_and(|at| at <= now) {
                schedule.attempt_started();
                self.probes
                    .submit(instance.spawn, schedule.readiness.clone(), self.dir.clone());
            }
        }
    }

    fn on_probe(&mut self, spawn: u64, result: Result<(), String>) {
        let Some((s, i)) = self.find(spawn) else {
            return;
        };
        let instance = &mut self.services[s].instances[i];
        if instance.stop_sent {
            return;
        }
        let Some(schedule) = &mut instance.probe else {
            return;
        };
        match result {
            Ok(()) => {
                instance.probe = None;
                instance.healthy = true;
                instance.set_state(InstanceState::Ready, None);
                self.output.system(&format!("{} is ready", instance.name));
            }
            Err(problem) => match schedule.failed(problem, Instant::now()) {
                AfterFailure::Retry => {}
                AfterFailure::Unhealthy(why) => {
                    instance.probe = None;
                    let reason = format!("{} {why}", instance.name);
                    self.output.system(&reason);
                    instance.set_state(InstanceState::Unhealthy, Some(reason));
                }
            },
        }
    }

    fn on_exited(&mut self, spawn: u64, exit: Exit) {
        let Some((s, i)) = self.find(spawn) else {
            return;
        };
        let shutting_down = self.shutting_down;
        let service = &mut self.services[s];
        let retiring = !matches!(service.retire, Retire::No);
        let policy = service.spec.restart;
        let max_restarts = service.spec.max_restarts;
        let backoff = Duration::from_millis(service.spec.backoff_ms);
        let instance = &mut service.instances[i];
        instance.keeper = None;
        instance.probe = None;
        instance.kill_at = None;
        instance.last_exit = Some(exit);
        let name = instance.name.clone();
        if instance.stop_sent || shutting_down || retiring {
            self.output.system(&format!("{name} stopped ({exit})"));
            instance.set_state(InstanceState::Stopped, None);
            return;
        }
        if instance.started_at.elapsed() >= RESET_AFTER {
            instance.consecutive = 0;
        }
        let restart = match policy {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !exit.success(),
            RestartPolicy::No => false,
        };
        let after = match instance.consecutive {
            0 => String::new(),
            1 => " after 1 restart".to_owned(),
            n => format!(" after {n} restarts"),
        };
        if restart && max_restarts.is_none_or(|max| instance.consecutive < max) {
            let delay = backoff
                .saturating_mul(1u32.checked_shl(instance.consecutive).unwrap_or(u32::MAX))
                .min(MAX_BACKOFF);
            instance.consecutive += 1;
            instance.restarts += 1;
            instance.restart_at = Some(Instant::now() + delay);
            instance.healthy = false;
            instance.set_state(InstanceState::Backoff, None);
            self.output.system(&format!(
                "{name} {exit}; restarting in {} ms",
                delay.as_millis()
            ));
            return;
        }
        let gave_up = if restart { ", giving up" } else { "" };
        let reason = format!("{name} {exit}{after}{gave_up}");
        self.output.system(&reason.clone());
        if exit.success() {
            instance.set_state(InstanceState::Completed, None);
        } else {
            instance.set_state(InstanceState::Failed, Some(reason.clone()));
            self.note_failure(&name, reason);
        }
    }

    /// Tells waiting reload requesters that an instance they wait for will not start.
    fn note_failure(&mut self, name: &str, reason: String) {
        for pending in &mut self.pending {
            if pending.starts.remove(name).is_some() {
                pending.changes.push(Change::Failed {
                    instance: name.to_owned(),
                    reason: reason.clone(),
                });
            }
        }
    }

    fn answer_pending(&mut self) {
        let mut index = 0;
        while index < self.pending.len() {
            let pending = &self.pending[index];
            if pending.starts.is_empty() && pending.stops.is_empty() {
                let pending = self.pending.remove(index);
                self.send_reply(pending.connection, Reply::Changes(pending.changes));
            } else {
                index += 1;
            }
        }
    }

    fn finished(&self) -> bool {
        let busy = self.services.iter().any(|service| {
            !matches!(service.retire, Retire::No)
                || service.instances.iter().any(|i| {
                    i.alive() || matches!(i.state, InstanceState::Waiting | InstanceState::Backoff)
                })
        });
        !busy && (self.shutting_down || !self.options.stay_when_idle)
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.services
            .iter()
            .flat_map(|s| &s.instances)
            .flat_map(|i| {
                [
                    i.restart_at,
                    i.kill_at,
                    i.probe.as_ref().and_then(|p| p.next),
                ]
            })
            .flatten()
            .min()
    }

    fn status(&self) -> Vec<InstanceStatus> {
        self.services
            .iter()
            .flat_map(|service| {
                service.instances.iter().map(|i| InstanceStatus {
                    instance: i.name.clone(),
                    service: service.spec.name.clone(),
                    pid: if i.keeper.is_some() { i.pid } else { None },
                    state: i.state,
                    restarts: i.restarts,
                    since_unix_ms: i
                        .since
                        .duration_since(UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64),
                    reason: i.reason.clone(),
                })
            })
            .collect()
    }

    fn outcome(&self) -> Outcome {
        if self.stopped_on_request {
            return Outcome {
                code: 0,
                summary: "stopped".into(),
            };
        }
        let mut failures: Vec<&Instance> = self
            .services
            .iter()
            .flat_map(|s| &s.instances)
            .filter(|i| matches!(i.state, InstanceState::Failed | InstanceState::Blocked))
            .collect();
        failures.sort_by_key(|i| i.since);
        match failures.first() {
            None => Outcome {
                code: 0,
                summary: "all services ended well".into(),
            },
            Some(first) => Outcome {
                code: match (first.state, first.last_exit) {
                    (InstanceState::Failed, Some(exit)) if exit.code() != 0 => exit.code(),
                    _ => 1,
                },
                summary: failures
                    .iter()
                    .filter_map(|i| i.reason.as_deref())
                    .collect::<Vec<_>>()
                    .join("; "),
            },
        }
    }
}

enum Readiness {
    Met,
    NotYet,
    Never(String),
}

impl Instance {
    /// Whether a process of this instance may still exist.
    fn alive(&self) -> bool {
        self.keeper.is_some()
    }

    fn last_pid(&self) -> Option<u32> {
        self.pid
    }

    fn set_state(&mut self, state: InstanceState, reason: Option<String>) {
        self.state = state;
        self.reason = reason;
        self.since = SystemTime::now();
    }

    fn signal_group(&self, signal: i32) {
        if let Some(keeper) = &self.keeper {
            keeper.signal_group(signal);
        }
    }
}

/// Waits for a keeper that has closed its report pipe, i.e. is exiting;
/// returns its wait status.
fn reap(keeper: libc::pid_t) -> i32 {
    let mut status = 0;
    // SAFETY: waiting for our own child; only the loop waits for keepers.
    while unsafe { libc::waitpid(keeper, &mut status, 0) } < 0
        && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
    {}
    status
}
