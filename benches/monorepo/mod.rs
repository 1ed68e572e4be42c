//! The synthetic monorepo the macro benchmarks build: `packages` packages of
//! `services_per_package` services each, a shared module imported by every
//! service, cross-service references inside each deployment, and one
//! deployment per `packages_per_deployment` packages.
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

pub struct Shape {
    pub packages: usize,
    pub services_per_package: usize,
    pub packages_per_deployment: usize,
}

impl Shape {
    /// DESIGN.md §10's workspace: 10,000 services in 1,000 packages, scaled
    /// by `N2D_BENCH_PACKAGES` when set.
    pub fn from_env() -> Shape {
        let packages = std::env::var("N2D_BENCH_PACKAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        Shape {
            packages,
            services_per_package: 10,
            packages_per_deployment: 100.min(packages),
        }
    }

    pub fn services(&self) -> usize {
        self.packages * self.services_per_package
    }
}

/// Writes the workspace into `root` (which must be empty or absent).
pub fn generate(root: &Path, shape: &Shape) {
    fs::create_dir_all(root).unwrap();
    fs::write(
        root.join("n2d.workspace.toml"),
        "default_targets = [\"json\"]\n",
    )
    .unwrap();
    write(
        root,
        "lib/http",
        r#"[modules.http]
options.http.port = { type = "port", default = 8080, description = "Listen port" }
ports.http = "${{ self.http.port }}"
readiness.http = { port = "http", path = "/healthz" }
env.LISTEN = "0.0.0.0:${{ self.http.port }}"
"#,
    );
    for p in 0..shape.packages {
        write(
            root,
            &package_path(p),
            &package_text(p, shape.services_per_package, 0),
        );
    }
    let mut deploy = String::new();
    let deployments = shape.packages.div_ceil(shape.packages_per_deployment);
    for d in 0..deployments {
        writeln!(deploy, "[deployments.d{d}]\nservices = [").unwrap();
        let first = d * shape.packages_per_deployment;
        let last = (first + shape.packages_per_deployment).min(shape.packages);
        for p in first..last {
            for s in 0..shape.services_per_package {
                writeln!(
                    deploy,
                    "  \"//{}:{}\",",
                    package_path(p),
                    service_name(p, s)
                )
                .unwrap();
            }
        }
        deploy.push_str("]\n\n");
    }
    write(root, "deploy", &deploy);
}

/// Rewrites package `p` with a changed env value in its first service.
pub fn change_one_service(root: &Path, shape: &Shape, p: usize, generation: usize) {
    write(
        root,
        &package_path(p),
        &package_text(p, shape.services_per_package, generation),
    );
}

pub fn package_path(p: usize) -> String {
    format!("svc/g{:02}/p{p:04}", p / 100)
}

fn package_text(p: usize, services: usize, generation: usize) -> String {
    let mut text = String::new();
    for s in 0..services {
        let port = 10000 + (p * services + s) % 50000;
        writeln!(
            text,
            "[services.{}]\nimports = [\"//lib/http:http\"]\ncommand = [\"/bin/sh\", \"-c\", \"exec server --port $0\", \"${{{{ self.http.port }}}}\"]\nhttp.port = {port}\nenv.SERVICE = \"p{p}-s{s}\"\nenv.GENERATION = \"{}\"",
            service_name(p, s),
            if s == 0 { generation } else { 0 }
        )
        .unwrap();
        if s > 0 {
            let upstream = service_name(p, s - 1);
            writeln!(
                text,
                "env.UPSTREAM = \"http://${{{{ :{upstream}.address.http }}}}\""
            )
            .unwrap();
            writeln!(text, "depends_on.\":{upstream}\" = \"started\"").unwrap();
        }
        text.push('\n');
    }
    text
}

/// Service names are unique across the workspace: a deployment holds
/// services of many packages, and names must be distinct there.
pub fn service_name(p: usize, s: usize) -> String {
    format!("p{p:04}s{s}")
}

fn write(root: &Path, package: &str, text: &str) {
    let dir: PathBuf = root.join(package);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("n2d.toml"), text).unwrap();
}
