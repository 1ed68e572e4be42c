//! The macro benchmark of `n2d watch` (DESIGN.md §10, issue 7): in a
//! generated workspace of 1,000 services (100 packages of 10, one
//! deployment holding them all), with `n2d watch` supervising every one,
//! edits one service's env again and again and measures the time from the
//! file's save to that service's new process having started. The service
//! records its own start (a `date +%s%N` as its first act), so the figure
//! is save → debounce → build → apply → fork → the service's first line.
//! It also checks that each edit restarted exactly that one service.
//!
//! Two splits of that figure, from the same run: the build's end is the
//! modification time of the `launch.json` it wrote (save → built is the
//! debounce and the build; built → started is the supervisor's apply and
//! the service's start), and "the service's own start time" is measured by
//! running its entrypoint directly, as the supervisor would, from spawn to
//! its mark.
//!
//! `cargo bench --bench watch` (set `N2D_BENCH_PACKAGES=10` for a quick
//! run, `N2D_BENCH_BIN=path/to/n2d` to measure another build of n2d as a
//! baseline); `cargo test --benches` runs a tiny smoke version.
use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const SERVICES_PER_PACKAGE: usize = 10;
/// Starting 1,000 services on a debug build of a busy machine is slow; only
/// a broken run waits this long.
const PATIENCE: Duration = Duration::from_secs(600);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let (packages, edits) = if smoke {
        (2, 2)
    } else {
        let packages = std::env::var("N2D_BENCH_PACKAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        (packages, 11)
    };
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("ws");
    let marks = tmp.path().join("marks");
    std::fs::create_dir_all(&marks).unwrap();
    generate(&root, &marks, packages, 0);
    println!(
        "workspace: {} services in {packages} packages, {edits} edits (median)",
        packages * SERVICES_PER_PACKAGE
    );

    let started = Instant::now();
    let watch = WatchRun::start(&root);
    let first = watch.wait_for_status(1);
    assert!(
        first.contains("started the supervisor"),
        "the first build failed:\n{}",
        watch.stderr()
    );
    // Edits made while a thousand services are still being forked would
    // measure the start-up, not the watch loop.
    let dir = root.join("n2d-out/deploy/all/procfile");
    let services = packages * SERVICES_PER_PACKAGE;
    wait_until("every service to run", || {
        n2d_supervisor::client::status(&dir).is_ok_and(|instances| {
            instances.len() == services && instances.iter().all(|i| i.pid.is_some())
        })
    });
    wait_until("the edited service's first start", || {
        read_mark(&marks).is_some_and(|(generation, _)| generation == 0)
    });
    println!(
        "initial build and start: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let own_start = own_start_time(&dir, &marks, if smoke { 1 } else { 5 });

    let mut samples = Vec::new();
    let mut reported = Vec::new();
    let mut to_built = Vec::new();
    let mut built_to_started = Vec::new();
    for generation in 1..=edits {
        // Let the previous restart settle, so edits do not coalesce.
        std::thread::sleep(Duration::from_millis(200));
        let saved = now_ns();
        generate_package(&root, &marks, 0, generation);
        wait_until("the edited service to start again", || {
            read_mark(&marks).is_some_and(|(g, _)| g == generation)
        });
        let (_, started_ns) = read_mark(&marks).unwrap();
        let built_ns = modified_ns(&dir.join("launch.json"));
        let line = watch.wait_for_status(generation + 1);
        assert_eq!(
            line.matches("restarted ").count(),
            1,
            "an edit of one service must restart exactly it: {line}"
        );
        assert!(line.contains("restarted p000s0 ("), "{line}");
        samples.push(Duration::from_nanos(started_ns.saturating_sub(saved)));
        to_built.push(Duration::from_nanos(built_ns.saturating_sub(saved)));
        built_to_started.push(Duration::from_nanos(started_ns.saturating_sub(built_ns)));
        reported.push(cycle_ms(&line));
    }
    watch.terminate();

    samples.sort();
    reported.sort_unstable();
    to_built.sort();
    built_to_started.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "save → changed service started: median {:.1} ms (min {:.1}, max {:.1})",
        ms(samples[samples.len() / 2]),
        ms(samples[0]),
        ms(samples[samples.len() - 1])
    );
    println!(
        "  of which build + apply (n2d's status line): median {} ms",
        reported[reported.len() / 2]
    );
    println!(
        "  save → launch.json written (debounce + build): median {:.1} ms",
        ms(to_built[to_built.len() / 2])
    );
    println!(
        "  launch.json written → service started (apply + the service's start): median {:.1} ms",
        ms(built_to_started[built_to_started.len() / 2])
    );
    println!(
        "  the service's own start time (its entrypoint run directly): median {:.1} ms",
        ms(own_start)
    );
    println!("goal: < 100 ms plus the service's own start time");
}

/// The workspace: packages `p000`… of services `p000s0`…, all `sleep`
/// except `p000s0`, which first writes "GENERATION START_NS" to a mark file.
fn generate(root: &Path, marks: &Path, packages: usize, generation: usize) {
    std::fs::create_dir_all(root).unwrap();
    std::fs::write(
        root.join("n2d.workspace.toml"),
        "default_targets = [\"procfile\"]\n",
    )
    .unwrap();
    let mut labels = String::new();
    for p in 0..packages {
        generate_package(root, marks, p, generation);
        for s in 0..SERVICES_PER_PACKAGE {
            writeln!(labels, "  \"//p{p:03}:p{p:03}s{s}\",").unwrap();
        }
    }
    write_file(
        &root.join("deploy/n2d.toml"),
        &format!("[deployments.all]\nservices = [\n{labels}]\n"),
    );
}

fn generate_package(root: &Path, marks: &Path, p: usize, generation: usize) {
    let mut text = String::new();
    for s in 0..SERVICES_PER_PACKAGE {
        let name = format!("p{p:03}s{s}");
        if p == 0 && s == 0 {
            // Written to a temporary name and renamed: the bench never reads
            // half a line.
            write!(
                text,
                "[services.{name}]\ncommand = [\"/bin/sh\", \"-c\", \"echo \\\"$GENERATION $(date +%s%N)\\\" > \\\"$MARKS/tmp\\\" && mv \\\"$MARKS/tmp\\\" \\\"$MARKS/mark\\\"; exec sleep 100000\"]\nenv.MARKS = \"{}\"\nenv.GENERATION = \"{generation}\"\n\n",
                marks.display()
            )
            .unwrap();
        } else {
            write!(
                text,
                "[services.{name}]\ncommand = [\"sleep\", \"100000\"]\nenv.INDEX = \"{s}\"\n\n"
            )
            .unwrap();
        }
    }
    write_file(&root.join(format!("p{p:03}/n2d.toml")), &text);
}

fn write_file(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn read_mark(marks: &Path) -> Option<(usize, u64)> {
    let text = std::fs::read_to_string(marks.join("mark")).ok()?;
    let (generation, ns) = text.trim().split_once(' ')?;
    Some((generation.parse().ok()?, ns.parse().ok()?))
}

fn modified_ns(path: &Path) -> u64 {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64)
        .unwrap_or(0)
}

/// The median time from spawning the edited service's entrypoint (as the
/// supervisor runs it: in the target folder) to its mark, over `runs` runs.
/// Leaves the mark as it found it, generation 0.
fn own_start_time(dir: &Path, marks: &Path, runs: usize) -> Duration {
    let mut times = Vec::new();
    for _ in 0..runs {
        let before = read_mark(marks);
        let spawned = now_ns();
        let mut child = Command::new(dir.join("bin/p000s0"))
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the entrypoint runs");
        wait_until("the entrypoint's mark", || read_mark(marks) != before);
        let (_, started_ns) = read_mark(marks).unwrap();
        times.push(Duration::from_nanos(started_ns.saturating_sub(spawned)));
        let _ = child.kill();
        let _ = child.wait();
    }
    times.sort();
    times[times.len() / 2]
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// The "N ms" that ends a status line.
fn cycle_ms(line: &str) -> u64 {
    line.rsplit("; ")
        .next()
        .and_then(|last| last.strip_suffix(" ms"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no duration in the status line: {line}"))
}

fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < PATIENCE, "timed out waiting for {what}");
        // Polling only decides when to look; the times come from the marks.
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `n2d watch //deploy:all` as a child; its stderr is collected by a reader
/// thread that ends when the child exits.
struct WatchRun {
    child: Child,
    stderr: Arc<Mutex<String>>,
    reader: Option<JoinHandle<()>>,
}

impl WatchRun {
    fn start(root: &PathBuf) -> WatchRun {
        // N2D_BENCH_BIN runs another build of n2d, for a baseline in the same session.
        let n2d = std::env::var_os("N2D_BENCH_BIN")
            .map_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_n2d")), PathBuf::from);
        let mut child = Command::new(n2d)
            .current_dir(root)
            .args(["watch", "//deploy:all"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("n2d watch starts");
        let pipe = child.stderr.take().unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
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

    fn wait_for_status(&self, n: usize) -> String {
        let lines = || -> Vec<String> {
            self.stderr()
                .lines()
                .filter(|l| l.starts_with("watch: "))
                .map(str::to_string)
                .collect()
        };
        let start = Instant::now();
        while lines().len() < n {
            if start.elapsed() > PATIENCE {
                panic!("timed out waiting for status line {n}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        lines().swap_remove(n - 1)
    }

    /// Stops the watch (and so every service) as Ctrl-C would.
    fn terminate(mut self) {
        self.end();
    }

    fn end(&mut self) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            if start.elapsed() > PATIENCE {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
    }
}

impl Drop for WatchRun {
    fn drop(&mut self) {
        if self.reader.is_some() {
            self.end();
        }
    }
}
