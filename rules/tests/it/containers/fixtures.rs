//! Fixture deployments for the container targets, and a [`SourceFiles`] over
//! an in-memory map.
use std::collections::BTreeMap;

use n2d_modules::service::Service;
use n2d_rules::{Deployment, SourceFiles};
use serde_json::json;

use crate::support::service;

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

pub fn deployment(name: &str, services: &[&Service]) -> Deployment {
    Deployment {
        package: "examples/shop".into(),
        name: name.into(),
        namespace: None,
        services: services.iter().map(|s| s.name.clone()).collect(),
        base_layer: None,
    }
}

/// A web shop: a database with a given image, secret and persisting volume;
/// an API built by n2d with files, probes and limits; a one-shot migration.
pub fn shop() -> (Deployment, Vec<Service>, MemorySources) {
    let db = service(json!({
        "name": "db",
        "label": "//examples/shop:db",
        "description": "PostgreSQL",
        "image": "docker.io/library/postgres:16",
        "command": ["postgres", "-D", "/var/lib/postgresql/data"],
        "env": { "POSTGRES_PASSWORD": { "secret": "db-password" }, "PGPORT": "5432" },
        "ports": { "pg": 5432 },
        "volumes": { "data": { "path": "/var/lib/postgresql/data", "persist": true, "size": "2Gi" } },
        "readiness": { "exec": ["pg_isready", "-p", "5432"], "period": "5s", "timeout": "2s", "retries": 10 },
        "restart": "always",
        "stop": { "signal": "INT", "timeout": "30s" },
    }));
    let api = service(json!({
        "name": "api",
        "label": "//examples/shop:api",
        "command": ["/usr/local/bin/api", "--listen", "0.0.0.0:8080", "--price=$5"],
        "package": "bin/api",
        "workdir": "/srv",
        "user": "1000",
        "env": {
            "DATABASE_URL": "postgres://db:5432/shop",
            "API_TOKEN": { "secret": "api-token" },
            "MOTD": { "file": "config/motd.txt" },
        },
        "ports": { "http": 8080, "metrics": 9090 },
        "volumes": { "cache": { "path": "/var/cache/api", "persist": false, "size": "64Mi" } },
        "files": {
            "api.toml": { "text": "listen = 8080\n", "mode": "0644" },
            "cert.pem": { "source": "config/cert.pem", "mode": "0600" },
        },
        "depends_on": { "db": "healthy", "migrate": "completed" },
        "readiness": { "http": { "port": "http", "path": "/healthz" } },
        "replicas": 2,
        "resources": { "cpu": "500m", "memory": "256Mi" },
        "compose": { "extra": { "labels": { "team": "shop" } } },
        "k8s": { "extra": { "metadata": { "annotations": { "team": "shop" } } } },
    }));
    let migrate = service(json!({
        "name": "migrate",
        "label": "//examples/shop:migrate",
        "command": ["/usr/local/bin/api", "migrate"],
        "package": "bin/api",
        "env": { "DATABASE_URL": "postgres://db:5432/shop" },
        "depends_on": { "db": "started" },
        "restart": "no",
    }));
    let sources = MemorySources(BTreeMap::from([
        ("config/motd.txt".to_string(), b"hello shoppers\n".to_vec()),
        (
            "config/cert.pem".to_string(),
            b"-----BEGIN CERTIFICATE-----\n".to_vec(),
        ),
        ("bin/api".to_string(), b"#!/bin/sh\necho api\n".to_vec()),
    ]));
    let services = vec![db, api, migrate];
    let refs: Vec<&Service> = services.iter().collect();
    (deployment("prod", &refs), services, sources)
}
