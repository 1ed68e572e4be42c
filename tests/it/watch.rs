//! `n2d watch` on a running deployment: after each saved change exactly the
//! services whose definition changed restart, added ones start, removed
//! ones stop, broken definitions leave everything running, bursts of saves
//! are coalesced, and a killed watch takes its services along. Services are
//! `/bin/sh` one-liners that append "PID VALUE" to `<name>.starts` in a
//! folder of their own, so each test reads which processes started and
//! with what.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::support::{children, executable, TestWorkspace};

/// Long enough for a debug build on a busy machine; only a failing test
/// waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

#[test]
fn editing_one_service_restarts_only_that_service() {
    let t = Deployment::new(&[("a", "1"), ("b", "1"), ("c", "1")]);
    let watch = t.watch();
    let before = t.wait_all_started(&watch);

    t.set(&[("a", "1"), ("b", "2"), ("c", "1")]);
    let line = watch.wait_for_status(2);
    assert!(line.contains("re-rendered //app:b;"), "{line}");
    assert!(
        line.contains(&format!("restarted b (pid {}→", before["b"])),
        "{line}"
    );
    assert!(
        !line.contains("restarted a") && !line.contains("restarted c"),
        "{line}"
    );
    watch.wait_until("b to start again with VALUE=2", || t.starts("b").len() == 2);
    assert_eq!(t.starts("b")[1].1, "2");
    assert_ne!(t.starts("b")[1].0, before["b"]);
    for unchanged in ["a", "c"] {
        assert_eq!(
            t.starts(unchanged),
            vec![(before[unchanged], "1".to_string())],
            "{unchanged} must keep its process"
        );
        assert!(is_running(before[unchanged]), "{unchanged} is gone");
    }
    assert!(!is_running(before["b"]), "b's old process still runs");
    t.finish(watch);
}

#[test]
fn an_added_service_starts_and_a_removed_one_stops() {
    let t = Deployment::new(&[("a", "1"), ("b", "1")]);
    let watch = t.watch();
    let before = t.wait_all_started(&watch);

    t.set(&[("a", "1"), ("b", "1"), ("d", "1")]);
    let line = watch.wait_for_status(2);
    assert!(line.contains("started d (pid"), "{line}");
    watch.wait_until("d to start", || t.starts("d").len() == 1);
    let d = t.starts("d")[0].0;
    assert!(is_running(d));

    t.set(&[("a", "1"), ("b", "1")]);
    let line = watch.wait_for_status(3);
    assert!(line.contains(&format!("stopped d (pid {d})")), "{line}");
    watch.wait_until("d's process to end", || !is_running(d));
    for kept in ["a", "b"] {
        assert_eq!(t.starts(kept).len(), 1, "{kept} restarted");
        assert!(is_running(before[kept]), "{kept} is gone");
    }
    assert_eq!(t.starts("d").len(), 1, "d started again");
    t.finish(watch);
}

#[test]
fn invalid_toml_leaves_services_running_and_fixing_it_resumes() {
    let t = Deployment::new(&[("a", "1"), ("b", "1")]);
    let watch = t.watch();
    let before = t.wait_all_started(&watch);

    t.ws.write(
        "app/n2d.toml",
        &format!(
            "{}\nthis is = = not toml\n",
            t.text(&[("a", "2"), ("b", "1")])
        ),
    );
    let line = watch.wait_for_status(2);
    assert!(
        line.contains("build failed, services left as they are"),
        "{line}"
    );
    assert!(
        watch.stderr().contains("invalid TOML"),
        "the error is not shown:\n{}",
        watch.stderr()
    );
    for name in ["a", "b"] {
        assert_eq!(t.starts(name).len(), 1, "{name} restarted on a broken file");
        assert!(is_running(before[name]), "{name} is gone");
    }

    // The fix carries a change: the loop must pick it up and apply it.
    t.set(&[("a", "2"), ("b", "1")]);
    let line = watch.wait_for_status(3);
    assert!(line.contains("restarted a ("), "{line}");
    assert!(!line.contains("restarted b"), "{line}");
    watch.wait_until("a to start with VALUE=2", || t.starts("a").len() == 2);
    assert_eq!(t.starts("a")[1].1, "2");
    assert_eq!(t.starts("b").len(), 1);
    t.finish(watch);
}

#[test]
fn a_comment_only_edit_restarts_nothing() {
    let t = Deployment::new(&[("a", "1"), ("b", "1"), ("c", "1")]);
    let watch = t.watch();
    let before = t.wait_all_started(&watch);

    let services = [("a", "1"), ("b", "1"), ("c", "1")];
    t.ws.write(
        "app/n2d.toml",
        &format!("# a comment\n{}\n# another one\n", t.text(&services)),
    );
    let line = watch.wait_for_status(2);
    assert!(line.contains("app/n2d.toml changed"), "{line}");
    assert!(
        line.contains("nothing re-rendered; nothing restarted"),
        "{line}"
    );

    // A real change afterwards: by the time it is applied, any restart the
    // comment caused would have shown in the start logs.
    t.set(&[("a", "1"), ("b", "1"), ("c", "2")]);
    watch.wait_for_status(3);
    watch.wait_until("c to restart", || t.starts("c").len() == 2);
    for name in ["a", "b"] {
        assert_eq!(t.starts(name), vec![(before[name], "1".to_string())]);
    }
    t.finish(watch);
}

#[test]
fn a_burst_of_saves_rebuilds_at_most_twice() {
    let t = Deployment::new(&[("a", "0"), ("b", "1")]);
    let watch = t.watch();
    t.wait_all_started(&watch);

    // 50 saves in about 100 ms, as an editor with autosave might do.
    for i in 1..=50 {
        t.set(&[("a", &i.to_string()), ("b", "1")]);
        std::thread::sleep(Duration::from_millis(2));
    }
    watch.wait_until("a to run with the last saved VALUE=50", || {
        t.starts("a").last().is_some_and(|(_, v)| v == "50")
    });
    // A sentinel change to b: once its cycle is reported, every cycle the
    // burst caused has been reported before it.
    t.set(&[("a", "50"), ("b", "2")]);
    watch.wait_until("the cycle that restarts b", || {
        watch
            .status_lines()
            .iter()
            .any(|l| l.contains("restarted b ("))
    });
    let lines = watch.status_lines();
    let sentinel = lines
        .iter()
        .position(|l| l.contains("restarted b ("))
        .unwrap();
    let burst_cycles = sentinel - 1;
    assert!(
        (1..=2).contains(&burst_cycles),
        "50 saves caused {burst_cycles} rebuilds:\n{}",
        lines.join("\n")
    );
    t.finish(watch);
}

#[test]
fn a_new_package_is_picked_up_and_starts() {
    let t = Deployment::new(&[("a", "1")]);
    // The deployment names a service of a package that does not exist yet:
    // the first build fails and the loop waits.
    t.ws.write(
        "app/n2d.toml",
        &t.text(&[("a", "1")])
            .replace("services = [\":a\"]", "services = [\":a\", \"//extra:e\"]"),
    );
    let watch = t.watch();
    let line = watch.wait_for_status(1);
    assert!(line.contains("build failed"), "{line}");
    assert!(t.starts("a").is_empty(), "a started from a failed build");

    // A new folder with a module file: written right after the folder
    // appears, before a watch on it can exist.
    t.ws.write("extra/n2d.toml", &service_text("e", "1", &t.pids));
    watch.wait_until("the supervisor to start a and e", || {
        t.starts("a").len() == 1 && t.starts("e").len() == 1
    });
    let line = watch
        .status_lines()
        .into_iter()
        .find(|l| l.contains("started the supervisor"))
        .unwrap();
    assert!(line.contains("extra"), "{line}");
    t.finish(watch);
}

#[test]
fn killing_the_watch_leaves_no_service_behind() {
    let t = Deployment::new(&[("a", "1"), ("b", "1")]);
    let mut watch = t.watch();
    let before = t.wait_all_started(&watch);
    // The supervisor child is the small executable installed next to `n2d`.
    let supervisors: Vec<String> = children(watch.child.id())
        .into_iter()
        .map(executable)
        .collect();
    assert_eq!(supervisors, ["n2d-supervise"]);
    // SIGKILL: no handler runs; the supervisor child dies with the watch
    // (parent-death signal) and its keepers then kill the services.
    watch.child.kill().unwrap();
    watch.child.wait().unwrap();
    for (name, pid) in &before {
        watch.wait_until(&format!("{name} (pid {pid}) to end"), || !is_running(*pid));
    }
}

/// A workspace with one package `app` whose deployment `dev` holds the
/// given services, and the folder their start logs go to.
struct Deployment {
    ws: TestWorkspace,
    pids: PathBuf,
    _pids_dir: tempfile::TempDir,
}

impl Deployment {
    fn new(services: &[(&str, &str)]) -> Deployment {
        let ws = TestWorkspace::new();
        let pids_dir = tempfile::tempdir().unwrap();
        let t = Deployment {
            ws,
            pids: pids_dir.path().to_path_buf(),
            _pids_dir: pids_dir,
        };
        t.set(services);
        t
    }

    /// The module file for these (name, VALUE) services.
    fn text(&self, services: &[(&str, &str)]) -> String {
        let mut text = String::new();
        for (name, value) in services {
            text.push_str(&service_text(name, value, &self.pids));
        }
        let labels: Vec<String> = services.iter().map(|(n, _)| format!("\":{n}\"")).collect();
        text.push_str(&format!(
            "[deployments.dev]\nservices = [{}]\n",
            labels.join(", ")
        ));
        text
    }

    fn set(&self, services: &[(&str, &str)]) {
        self.ws.write("app/n2d.toml", &self.text(services));
    }

    fn watch(&self) -> WatchRun {
        WatchRun::start(&self.ws.root, "//app:dev")
    }

    /// (pid, VALUE) of each start of `name`, oldest first.
    fn starts(&self, name: &str) -> Vec<(u32, String)> {
        let text =
            std::fs::read_to_string(self.pids.join(format!("{name}.starts"))).unwrap_or_default();
        // Only whole lines: a start may be writing its line right now.
        text.split_inclusive('\n')
            .filter(|line| line.ends_with('\n'))
            .map(|line| {
                let (pid, value) = line.trim_end().split_once(' ').unwrap();
                (pid.parse().unwrap(), value.to_string())
            })
            .collect()
    }

    /// Waits for the first cycle and for every service's first start;
    /// returns their PIDs.
    fn wait_all_started(&self, watch: &WatchRun) -> std::collections::HashMap<String, u32> {
        let line = watch.wait_for_status(1);
        assert!(line.contains("started the supervisor"), "{line}");
        let text = self.ws.read("app/n2d.toml");
        let names: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("[services."))
            .map(|l| l.trim_end_matches(']').to_string())
            .collect();
        watch.wait_until("every service to start", || {
            names.iter().all(|n| self.starts(n).len() == 1)
        });
        names
            .iter()
            .map(|n| (n.clone(), self.starts(n)[0].0))
            .collect()
    }

    /// Stops the watch as Ctrl-C would: it must exit 0 and take every
    /// service's process with it.
    fn finish(&self, watch: WatchRun) {
        let status = watch.terminate();
        let names: Vec<String> = std::fs::read_dir(&self.pids)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                e.file_name()
                    .to_str()?
                    .strip_suffix(".starts")
                    .map(str::to_string)
            })
            .collect();
        for name in names {
            for (pid, _) in self.starts(&name) {
                assert!(!is_running(pid), "{name} (pid {pid}) outlived n2d watch");
            }
        }
        assert!(status.success(), "n2d watch ended with {status}");
    }
}

fn service_text(name: &str, value: &str, pids: &Path) -> String {
    format!(
        "[services.{name}]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$$ $VALUE\\\" >> \\\"$PIDS/{name}.starts\\\"; exec sleep 1000\"]\nenv.PIDS = \"{}\"\nenv.VALUE = \"{value}\"\n\n",
        pids.display()
    )
}

/// Whether `pid` names a live process (not a zombie).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the parenthesized command name.
        Ok(stat) => stat
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z')),
        Err(_) => false,
    }
}

#[test]
fn another_target_is_re_applied_with_its_manager_only_when_its_output_changed() {
    let ws = crate::support::TestWorkspace::new();
    ws.write(
        "app/n2d.toml",
        "[services.web]\nimage = \"docker.io/library/nginx:1\"\nports.http = 80\nenv.MODE = \"one\"\n\n[deployments.prod]\nservices = [\":web\"]\n",
    );
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = tools.path().join("calls");
    let kubectl = bin.join("kubectl");
    crate::support::write_executable(
        &kubectl,
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", log.display()),
    );
    let calls = || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .count()
    };

    let run = WatchRun::start_with(
        &ws.root,
        &["watch", "//app:prod", "--target", "k8s"],
        Some(&bin),
    );
    let first = run.wait_for_status(1);
    assert!(first.contains("re-applied with kubectl"), "{first}");
    assert_eq!(calls(), 1);

    let text = ws.read("app/n2d.toml");
    ws.write("app/n2d.toml", &format!("# a comment\n{text}"));
    let second = run.wait_for_status(2);
    assert!(second.contains("nothing re-applied"), "{second}");
    assert_eq!(calls(), 1, "an unchanged output is not re-applied");

    ws.write("app/n2d.toml", &text.replace("\"one\"", "\"two\""));
    let third = run.wait_for_status(3);
    assert!(third.contains("re-applied with kubectl"), "{third}");
    assert_eq!(calls(), 2);
    assert!(run.terminate().success());
}

/// `n2d watch` running as a child, its stderr collected by a reader thread
/// that ends when the child's stderr closes.
struct WatchRun {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl WatchRun {
    fn start(root: &Path, label: &str) -> WatchRun {
        WatchRun::start_with(root, &["watch", label], None)
    }

    /// `n2d ARGS`, with `bin` first on PATH when given.
    fn start_with(root: &Path, args: &[&str], bin: Option<&Path>) -> WatchRun {
        let mut command = Command::new(env!("CARGO_BIN_EXE_n2d"));
        if let Some(bin) = bin {
            let path = format!(
                "{}:{}",
                bin.display(),
                std::env::var("PATH").unwrap_or_default()
            );
            command.env("PATH", path);
        }
        let mut child = command
            .current_dir(root)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("n2d watch starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut text = sink.lock().unwrap();
                text.push_str(&line);
                text.push('\n');
            }
        });
        WatchRun {
            child,
            stderr,
            reader: Some(reader),
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    fn status_lines(&self) -> Vec<String> {
        self.stderr()
            .lines()
            .filter(|l| l.starts_with("watch: "))
            .map(str::to_string)
            .collect()
    }

    /// The `n`th status line (1-based), once it is printed.
    fn wait_for_status(&self, n: usize) -> String {
        self.wait_until(&format!("status line {n}"), || {
            self.status_lines().len() >= n
        });
        self.status_lines().swap_remove(n - 1)
    }

    fn wait_until(&self, what: &str, done: impl Fn() -> bool) {
        let start = Instant::now();
        while !done() {
            if start.elapsed() > PATIENCE {
                panic!(
                    "timed out waiting for {what}; n2d watch's stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM, then the exit status (SIGKILL after PATIENCE).
    fn terminate(mut self) -> ExitStatus {
        self.end()
    }

    fn end(&mut self) -> ExitStatus {
        // A child already reaped (a test killed it) must not be signalled:
        // its pid may belong to another process by now.
        if self.child.try_wait().unwrap().is_none() {
            // SAFETY: kill on our own child's pid.
            unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                break self.child.wait().unwrap();
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        status
    }
}

impl Drop for WatchRun {
    fn drop(&mut self) {
        // A failed assertion still stops the watch and its services.
        if self.reader.is_some() {
            self.end();
        }
    }
}
