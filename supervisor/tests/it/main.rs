//! Integration tests of the built-in supervisor, one file per behaviour. The
//! supervisor runs as its own process (`n2d-supervise-test`: the entry of
//! `n2d-supervise`) on a temporary procfile target folder holding a
//! `launch.json` and tiny `bin/<svc>` scripts.

mod control_socket;
mod exit_status;
mod logs;
mod ordering;
mod restart;
mod shutdown;
mod spec;
mod threads;

#[path = "../../../tests/shared/executable.rs"]
mod executable;
pub use executable::write_executable;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use n2d_supervisor::spec::{Condition, Readiness, RestartPolicy, StopSignal};
use n2d_supervisor::{LaunchSpec, ServiceSpec};

/// A procfile target folder under construction.
pub struct Target {
    pub dir: tempfile::TempDir,
    pub services: Vec<ServiceSpec>,
    /// Carried in every process of the run, to find leftovers in /proc.
    pub marker: String,
}

impl Default for Target {
    fn default() -> Target {
        Target::new()
    }
}

impl Target {
    pub fn new() -> Target {
        let dir = tempfile::tempdir().expect("create temp dir");
        std::fs::create_dir(dir.path().join("bin")).expect("create bin folder");
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after epoch")
            .as_nanos();
        Target {
            dir,
            services: Vec::new(),
            marker: format!("n2d-test-{}-{nanos}", std::process::id()),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a service running `script` (a POSIX shell body) with defaults:
    /// one replica, no probe, no restart, TERM with a 5 s timeout.
    pub fn service(&mut self, name: &str, script: &str) -> &mut ServiceSpec {
        let program = self.path().join("bin").join(name);
        write_executable(&program, &format!("#!/bin/sh\n{script}\n"));
        self.services.push(ServiceSpec {
            name: name.into(),
            command: vec![format!("bin/{name}")],
            replicas: 1,
            depends_on: Default::default(),
            readiness: None,
            restart: RestartPolicy::No,
            max_restarts: None,
            backoff_ms: 100,
            stop_signal: StopSignal::Term,
            stop_timeout_ms: 5000,
            spec_digest: digest(name),
        });
        self.services.last_mut().expect("just pushed")
    }

    pub fn write_spec(&self) {
        let spec = LaunchSpec {
            version: 1,
            services: self.services.clone(),
        };
        std::fs::write(
            self.path().join("launch.json"),
            serde_json::to_vec_pretty(&spec).expect("encode spec"),
        )
        .expect("write launch.json");
    }

    /// Writes the spec and starts `n2d-supervise-test` with stdout into `stdout.log`.
    pub fn start(&self) -> Running {
        self.write_spec();
        let stdout = File::create(self.path().join("stdout.log")).expect("create stdout.log");
        let stderr = File::create(self.path().join("stderr.log")).expect("create stderr.log");
        let child = Command::new(env!("CARGO_BIN_EXE_n2d-supervise-test"))
            .arg(self.path())
            .env("N2D_TEST_MARKER", &self.marker)
            .env_remove("NO_COLOR")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .expect("start n2d-supervise-test");
        Running {
            child,
            dir: self.path().to_path_buf(),
        }
    }

    /// Runs to the end and returns the exit status, stdout and stderr.
    pub fn run(&self) -> (ExitStatus, String, String) {
        let mut running = self.start();
        let status = running.wait(Duration::from_secs(60));
        (status, self.read("stdout.log"), self.read("stderr.log"))
    }

    pub fn read(&self, file: &str) -> String {
        std::fs::read_to_string(self.path().join(file)).unwrap_or_default()
    }

    /// Processes (other than zombies) whose environment carries this run's marker.
    pub fn leftover_processes(&self) -> Vec<String> {
        let needle = format!("N2D_TEST_MARKER={}", self.marker);
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else {
                continue;
            };
            if !environ
                .split(|&b| b == 0)
                .any(|var| var == needle.as_bytes())
            {
                continue;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if stat
                .rsplit(')')
                .next()
                .is_some_and(|rest| rest.trim_start().starts_with('Z'))
            {
                continue;
            }
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            found.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&cmdline).replace('\0', " ")
            ));
        }
        found
    }
}

pub struct Running {
    pub child: Child,
    pub dir: PathBuf,
}

impl Running {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: signalling our own child.
        assert_eq!(
            unsafe { libc::kill(self.pid(), signal) },
            0,
            "signal the supervisor"
        );
    }

    /// Waits for the supervisor to exit, failing the test after `limit`.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for supervisor") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("the supervisor did not exit within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed test must not leave a supervisor behind; its keepers then
        // clean up the services.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `condition` until it holds, failing the test after 20 s.
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn digest(seed: &str) -> String {
    let mut hex = String::new();
    for byte in seed.bytes().cycle().take(32) {
        hex.push_str(&format!("{byte:02x}"));
    }
    hex
}

pub fn depends(service: &mut ServiceSpec, on: &str, condition: Condition) {
    service.depends_on.insert(on.into(), condition);
}

/// An exec probe; `period_ms` small so that tests stay fast.
pub fn exec_probe(argv: &[&str]) -> Option<Readiness> {
    Some(Readiness {
        exec: Some(argv.iter().map(|a| a.to_string()).collect()),
        http: None,
        tcp: None,
        period_ms: 100,
        timeout_ms: 1000,
        retries: 50,
    })
}

/// Nanoseconds since the epoch as a service wrote them with `date +%s%N`.
pub fn stamps(text: &str) -> Vec<u128> {
    text.lines()
        .map(|l| l.trim().parse().expect("a date +%s%N line"))
        .collect()
}
