//! Rendering a whole deployment for one target, writing it to a folder, and
//! running the real consumers of the container formats on it.
use std::path::Path;
use std::process::Command;

use n2d_modules::service::Service;
use n2d_rules::{Artifact, Deployment, Rule, SourceFiles};

use crate::support::require_tool;

/// Everything one target writes for one deployment.
pub struct DeploymentOutput {
    /// Per-service artifacts then the assembled ones, sorted by path, with
    /// duplicates (a blob two images share) kept once.
    pub artifacts: Vec<Artifact>,
    pub warnings: Vec<String>,
}

impl DeploymentOutput {
    pub fn text(&self, path: &str) -> String {
        let artifact = self
            .artifacts
            .iter()
            .find(|a| a.path == path)
            .unwrap_or_else(|| panic!("no artifact `{path}` among {:?}", self.paths()));
        String::from_utf8(artifact.bytes.clone()).expect("artifact is text")
    }

    pub fn paths(&self) -> Vec<String> {
        self.artifacts.iter().map(|a| a.path.clone()).collect()
    }

    /// Writes the artifacts under `dir`, as the materializer would.
    pub fn write_to(&self, dir: &Path) {
        for artifact in &self.artifacts {
            let path = dir.join(&artifact.path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &artifact.bytes).unwrap();
        }
    }
}

/// Renders every service then assembles, as the engine does.
pub fn render_deployment(
    rule: &dyn Rule,
    deployment: &Deployment,
    services: &[Service],
    sources: &dyn SourceFiles,
) -> DeploymentOutput {
    let mut artifacts = Vec::new();
    let mut warnings = Vec::new();
    let mut fragments = Vec::new();
    for service in services {
        let rendered = rule
            .render(deployment, service, sources)
            .unwrap_or_else(|e| panic!("render `{}`: {e}", service.name));
        artifacts.extend(rendered.artifacts);
        warnings.extend(rendered.warnings);
        fragments.push((service.name.as_str(), rendered.fragment));
    }
    let fragment_refs: Vec<(&str, &serde_json::Value)> =
        fragments.iter().map(|(n, f)| (*n, f)).collect();
    artifacts.extend(rule.assemble(deployment, &fragment_refs).expect("assemble"));
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    for pair in artifacts.windows(2) {
        if pair[0].path == pair[1].path {
            assert_eq!(pair[0], pair[1], "two different artifacts at one path");
        }
    }
    artifacts.dedup_by(|a, b| a.path == b.path);
    DeploymentOutput {
        artifacts,
        warnings,
    }
}

/// Runs `program` with `args` in `dir`, and returns its stdout; panics with
/// its output when it fails.
pub fn run_ok(dir: &Path, program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed in {}:\nstdout:\n{}\nstderr:\n{}",
        dir.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `docker-compose config` accepts the deployment's `compose.yaml`.
pub fn docker_compose_config(output: &DeploymentOutput) {
    if !require_tool("docker-compose") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    output.write_to(dir.path());
    run_ok(
        dir.path(),
        "docker-compose",
        &["-f", "compose.yaml", "config", "--quiet"],
    );
}

/// `kubernetes-validate --strict` accepts every manifest of every output
/// (one invocation: the tool is slow to start).
pub fn kubernetes_validate(outputs: &[&DeploymentOutput]) {
    if !require_tool("kubernetes-validate") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for (index, output) in outputs.iter().enumerate() {
        let sub = dir.path().join(index.to_string());
        output.write_to(&sub);
        for artifact in &output.artifacts {
            // kustomization.yaml is kustomize's, not an API object.
            if artifact.path.ends_with(".yaml") && artifact.path != "kustomization.yaml" {
                files.push(format!("{index}/{}", artifact.path));
            }
        }
    }
    let mut args = vec!["--strict", "-k", "1.30.0"];
    args.extend(files.iter().map(String::as_str));
    run_ok(dir.path(), "kubernetes-validate", &args);
}
