//! Target folders built by the rules themselves, fake tools that record how
//! a manager ran them, and a busybox base layer for images.
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use n2d_modules::service::Service;
use n2d_rules::{Deployment, Rule, SourceFiles};

/// Source files held in memory, by workspace-relative path.
#[derive(Default)]
pub struct MemorySources(pub BTreeMap<String, Vec<u8>>);

impl SourceFiles for MemorySources {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such source file `{path}`"))
    }
}

/// A deployment of `services` in the package `tests/managers`.
pub fn deployment(name: &str, services: &[Service]) -> Deployment {
    Deployment {
        package: "tests/managers".into(),
        name: name.into(),
        namespace: None,
        services: services.iter().map(|s| s.name.clone()).collect(),
        base_layer: None,
    }
}

/// Renders and assembles `services` with `rule`, as the engine does, and
/// writes the files under `dir` with their modes, as the materializer does.
pub fn build_folder(
    rule: &dyn Rule,
    deployment: &Deployment,
    services: &[Service],
    sources: &dyn SourceFiles,
    dir: &Path,
) {
    let mut artifacts = Vec::new();
    let mut fragments = Vec::new();
    for service in services {
        let rendered = rule
            .render(deployment, service, sources)
            .unwrap_or_else(|e| panic!("render `{}`: {e}", service.name));
        artifacts.extend(rendered.artifacts);
        fragments.push((service.name.clone(), rendered.fragment));
    }
    let refs: Vec<(&str, &serde_json::Value)> =
        fragments.iter().map(|(n, f)| (n.as_str(), f)).collect();
    artifacts.extend(rule.assemble(deployment, &refs).expect("assemble"));
    for artifact in artifacts {
        let path = dir.join(&artifact.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &artifact.bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(artifact.mode)).unwrap();
    }
}

/// One run of a fake tool: its working directory and arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Call {
    pub tool: String,
    pub cwd: PathBuf,
    pub args: Vec<String>,
}

/// A folder of fake executables that append each run to a log.
pub struct FakeTools {
    pub bin: tempfile::TempDir,
    log: PathBuf,
}

impl FakeTools {
    /// Fakes named `tools`, each printing `stdout` and exiting 0.
    pub fn new(tools: &[&str]) -> Self {
        let bin = tempfile::tempdir().unwrap();
        let log = bin.path().join("calls.log");
        let fakes = FakeTools { bin, log };
        for tool in tools {
            fakes.add(tool, "", 0);
        }
        fakes
    }

    /// A fake `tool` that prints `stdout`, says something on stderr and
    /// exits with `status`.
    pub fn add(&self, tool: &str, stdout: &str, status: i32) {
        self.add_script(
            tool,
            &format!("printf '%s' '{stdout}'\necho 'fake {tool} says no' >&2\nexit {status}\n"),
        );
    }

    /// A fake `tool` that logs its run, then runs the shell `script` (with
    /// the arguments as `$@`). Arguments are logged one per line: none of
    /// the tested ones holds a newline.
    pub fn add_script(&self, tool: &str, script: &str) {
        let script = format!(
            "#!/bin/sh\n{{ printf 'tool=%s\\n' '{tool}'; printf 'cwd=%s\\n' \"$PWD\"; for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done; printf 'end\\n'; }} >> '{}'\n{script}",
            self.log.display()
        );
        crate::support::write_executable(&self.bin.path().join(tool), &script);
    }

    /// The search path holding only the fakes.
    pub fn search_path(&self) -> OsString {
        self.bin.path().as_os_str().to_os_string()
    }

    /// Every run so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut calls = Vec::new();
        let mut current: Option<Call> = None;
        for line in text.lines() {
            if let Some(tool) = line.strip_prefix("tool=") {
                current = Some(Call {
                    tool: tool.into(),
                    cwd: PathBuf::new(),
                    args: Vec::new(),
                });
            } else if let Some(cwd) = line.strip_prefix("cwd=") {
                current.as_mut().unwrap().cwd = cwd.into();
            } else if let Some(arg) = line.strip_prefix("arg=") {
                current.as_mut().unwrap().args.push(arg.into());
            } else if line == "end" {
                calls.push(current.take().unwrap());
            }
        }
        calls
    }

    /// The arguments of every run, as one line each (for compact asserts).
    pub fn command_lines(&self) -> Vec<String> {
        self.calls()
            .iter()
            .map(|c| format!("{} {}", c.tool, c.args.join(" ")))
            .collect()
    }

    pub fn clear(&self) {
        let _ = std::fs::remove_file(&self.log);
    }
}
