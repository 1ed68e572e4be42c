//! Resolution throughput: 10,000 services in 1,000 packages (the benchmark
//! monorepo's shape), each importing a shared module with declared options,
//! referencing a sibling, with per-deployment definitions. Goal: at least
//! 20,000 services/s on one core.
use std::collections::BTreeMap;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use n2d_modules::{eval_package, parse_module_file, Format, Label, LocalEnv, OptionSet, Universe};

const PACKAGES: usize = 1_000;
const SERVICES_PER_PACKAGE: usize = 10;

const LIB: &str = r#"
[modules.http]
options.http.port = { type = "port", default = 8080, description = "Listen port" }
options.http.workers = { type = "int", default = 2 }
ports.http = "${{ self.http.port }}"
readiness.http = { port = "http", path = "/healthz" }
env.WORKERS = "${{ self.http.workers }}"
restart = { mkDefault = "always" }
"#;

fn package_text(index: usize) -> String {
    let mut text = String::new();
    for s in 0..SERVICES_PER_PACKAGE {
        let next = (s + 1) % SERVICES_PER_PACKAGE;
        text.push_str(&format!(
            r#"
[services.svc{s}]
imports = ["//lib:http"]
description = "service {s} of package {index}"
command = ["/bin/app", "--name", "${{{{ self.name }}}}", "--peer", "${{{{ :svc{next}.address.http }}}}"]
http.port = {port}
env.RUST_LOG = "info"
env.TOKEN = {{ secret = "token-{s}" }}
volumes.data = {{ path = "/var/lib/svc{s}" }}
depends_on.":svc{next}" = "started"
"#,
            port = 8000 + s,
        ));
    }
    text.push_str("\n[deployments.prod.services]\n");
    for s in 1..SERVICES_PER_PACKAGE {
        text.push_str(&format!("\":svc{s}\" = {{}}\n"));
    }
    text.push_str(
        "\n[deployments.prod.services.\":svc0\"]\nreplicas = 3\nenv.RUST_LOG = { mkForce = \"warn\" }\n",
    );
    text
}

fn universe() -> Universe {
    let mut packages = BTreeMap::new();
    let lib = parse_module_file("lib/n2d.toml", LIB, Format::Toml).unwrap();
    packages.insert("lib".to_string(), eval_package("lib", &lib).unwrap());
    for index in 0..PACKAGES {
        let name = format!("apps/p{index}");
        let parsed = parse_module_file(
            &format!("{name}/n2d.toml"),
            &package_text(index),
            Format::Toml,
        )
        .unwrap();
        packages.insert(name.clone(), eval_package(&name, &parsed).unwrap());
    }
    Universe::new(packages, OptionSet::core(), &Default::default())
}

fn resolve_all(c: &mut Criterion) {
    let universe = universe();
    let targets: Vec<(Label, String)> = (0..PACKAGES)
        .flat_map(|p| {
            (0..SERVICES_PER_PACKAGE)
                .map(move |s| (Label::new(format!("apps/p{p}"), "prod"), format!("svc{s}")))
        })
        .collect();
    let mut group = c.benchmark_group("resolve");
    group.throughput(Throughput::Elements(targets.len() as u64));
    group.sample_size(10);
    group.bench_function("10k services", |b| {
        b.iter(|| {
            for (deployment, service) in &targets {
                let resolved = universe.resolve(deployment, service, &LocalEnv).unwrap();
                std::hint::black_box(resolved);
            }
        })
    });
    group.bench_function("10k services, value only", |b| {
        b.iter(|| {
            for (deployment, service) in &targets {
                let resolved = universe
                    .resolve_value(deployment, service, &LocalEnv)
                    .unwrap();
                std::hint::black_box(resolved);
            }
        })
    });
    group.finish();

    let mut parse = c.benchmark_group("parse+eval");
    let texts: Vec<String> = (0..100).map(package_text).collect();
    parse.throughput(Throughput::Elements(
        (texts.len() * SERVICES_PER_PACKAGE) as u64,
    ));
    parse.sample_size(10);
    parse.bench_function("100 packages", |b| {
        b.iter(|| {
            for (i, text) in texts.iter().enumerate() {
                let parsed = parse_module_file("p/n2d.toml", text, Format::Toml).unwrap();
                std::hint::black_box(eval_package(&format!("p{i}"), &parsed).unwrap());
            }
        })
    });
    parse.finish();
}

criterion_group!(benches, resolve_all);
criterion_main!(benches);
