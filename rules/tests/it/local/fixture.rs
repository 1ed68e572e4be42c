//! The fixture deployment of the local targets, and helpers that render it
//! and put the output on disk.
use std::collections::BTreeMap;
use std::path::Path;

use n2d_modules::service::Service;
use n2d_rules::{Artifact, Deployment, Rule, SourceFiles};
use serde_json::json;

use crate::support;

/// Source files by workspace-relative path.
#[derive(Default)]
pub struct MemorySources(pub BTreeMap<String, Vec<u8>>);

impl SourceFiles for MemorySources {
    fn read(&self, path: &str) -> Result<Vec<u8>, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| format!("no such file `{path}`"))
    }
}

pub fn sources() -> MemorySources {
    let mut files = BTreeMap::new();
    files.insert(
        "db/init.sql".to_string(),
        b"create table t (x int);\n".to_vec(),
    );
    MemorySources(files)
}

/// Two services: `db` with a port, a readiness probe, a persisting volume, a
/// file and a secret env; `web` depends on `db` being healthy.
pub fn services(file_path: impl Fn(&str, &str) -> String) -> Vec<Service> {
    vec![
        support::service(json!({
            "name": "db",
            "label": "//db:db",
            "description": "The database",
            "command": ["postgres", "-D", "/var/lib/db/data", "-p", "5432"],
            "env": {
                "POSTGRES_PASSWORD": {"secret": "db-password"},
                "PGDATA": "/var/lib/db/data",
                "INIT": {"file": "db/init.sql"}
            },
            "ports": {"pg": 5432},
            "volumes": {"data": {"path": "/var/lib/db/data", "persist": true}},
            "files": {"pg.conf": {"text": "listen_addresses = 'localhost'\n", "path": file_path("db", "pg.conf")}},
            "readiness": {"exec": ["pg_isready", "-p", "5432"], "period": "1s", "retries": 10},
            "restart": "always",
            "stop": {"signal": "INT", "timeout": "30s"}
        })),
        support::service(json!({
            "name": "web",
            "label": "//web:web",
            "command": ["./bin/api", "--greeting", "it's $HOME `id` 100%"],
            "env": {"DATABASE_URL": "postgres://localhost:5432/app"},
            "ports": {"http": 8080},
            "volumes": {"cache": {"path": "cache", "persist": false}},
            "depends_on": {"db": "healthy"},
            "readiness": {"http": {"port": "http", "path": "/healthz"}},
            "max_restarts": 5,
            "backoff": "2s",
            "pre_start": "echo starting web"
        })),
    ]
}

pub fn deployment() -> Deployment {
    Deployment {
        package: "deploy".into(),
        name: "dev".into(),
        namespace: None,
        services: vec!["db".into(), "web".into()],
        base_layer: None,
    }
}

/// Renders and assembles `services` with `rule`: every artifact (sorted by
/// path) and every warning.
pub fn build(
    rule: &dyn Rule,
    deployment: &Deployment,
    services: &[Service],
    sources: &dyn SourceFiles,
) -> (Vec<Artifact>, Vec<String>) {
    let mut artifacts = Vec::new();
    let mut warnings = Vec::new();
    let mut fragments = Vec::new();
    for service in services {
        let rendered = rule
            .render(deployment, service, sources)
            .unwrap_or_else(|e| panic!("render {}: {e}", service.name));
        artifacts.extend(rendered.artifacts);
        warnings.extend(rendered.warnings);
        fragments.push((service.name.as_str(), rendered.fragment));
    }
    let borrowed: Vec<(&str, &serde_json::Value)> =
        fragments.iter().map(|(n, f)| (*n, f)).collect();
    artifacts.extend(rule.assemble(deployment, &borrowed).expect("assemble"));
    artifacts.sort_by(|a, b| a.path.cmp(&b.path));
    (artifacts, warnings)
}

/// Writes `artifacts` under `dir` with their modes.
pub fn write(dir: &Path, artifacts: &[Artifact]) {
    use std::os::unix::fs::PermissionsExt;
    for artifact in artifacts {
        let path = dir.join(&artifact.path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &artifact.bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(artifact.mode)).unwrap();
    }
}

/// All artifacts as one text, for snapshots.
pub fn listing(artifacts: &[Artifact], warnings: &[String]) -> String {
    let mut out = String::new();
    for artifact in artifacts {
        out.push_str(&format!("===== {} ({:o})\n", artifact.path, artifact.mode));
        out.push_str(&String::from_utf8_lossy(&artifact.bytes));
        if !artifact.bytes.ends_with(b"\n") {
            out.push_str("\n<no final newline>\n");
        }
    }
    for warning in warnings {
        out.push_str(&format!("===== warning: {warning}\n"));
    }
    out
}

/// Runs shellcheck on `script` (the tool must exist).
pub fn shellcheck(name: &str, script: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name.replace('/', "_"));
    std::fs::write(&path, script).unwrap();
    let out = std::process::Command::new("shellcheck")
        .arg(&path)
        .output()
        .expect("run shellcheck");
    assert!(
        out.status.success(),
        "shellcheck {name}:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(script)
    );
}

/// Compares `text` with the golden file `snapshots/<name>.snap` of the test binary.
pub fn snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}
