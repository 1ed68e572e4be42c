//! The example workspaces resolve, and `n2d show` prints every value with
//! its provenance.
use std::collections::BTreeMap;
use std::path::Path;

use n2d_modules::{
    eval_package, parse_label, parse_module_file, LocalEnv, OptionSet, Universe, Workspace,
};

/// Parses and evaluates every package of a workspace.
pub fn load(workspace: &Workspace) -> Universe {
    let mut packages = BTreeMap::new();
    for file in &workspace.packages {
        let text = std::fs::read_to_string(workspace.root.join(&file.path)).unwrap();
        let parsed = parse_module_file(&file.display_path(), &text, file.format).unwrap();
        packages.insert(
            file.package.clone(),
            eval_package(&file.package, &parsed).unwrap(),
        );
    }
    Universe::new(packages, OptionSet::core(), &workspace.settings)
}

/// An example package as part of the repository's workspace
/// (`//examples/NAME`), loaded on its own.
fn example(name: &str) -> Universe {
    let package = format!("examples/{name}");
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(&package)
        .join("n2d.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let parsed = parse_module_file(
        &format!("{package}/n2d.toml"),
        &text,
        n2d_modules::Format::Toml,
    )
    .unwrap();
    let packages = BTreeMap::from([(package.clone(), eval_package(&package, &parsed).unwrap())]);
    Universe::new(packages, OptionSet::core(), &Default::default())
}

#[test]
fn every_example_service_resolves_and_shows() {
    for name in ["hello", "nginx-postgres"] {
        let universe = example(name);
        for (label, kind) in universe.labels() {
            if kind != n2d_modules::LabelKind::Deployment {
                continue;
            }
            let spec = universe.deployment(&label).unwrap();
            for service in &spec.services {
                let resolved = universe
                    .resolve(&label, &service.name, &LocalEnv)
                    .unwrap_or_else(|err| panic!("{label} {}:\n{err}", service.name));
                let _: n2d_modules::service::Service =
                    serde_json::from_value(resolved.value.clone()).unwrap();
                let shown = n2d_modules::format_show(&resolved);
                assert!(shown.contains("command = "), "{shown}");
            }
        }
    }
}

#[test]
fn hello_runs_one_program_twice() {
    let universe = example("hello");
    let dev = parse_label("//examples/hello:dev", None).unwrap();
    let a = universe.resolve(&dev, "hello", &LocalEnv).unwrap();
    let b = universe.resolve(&dev, "goodbye", &LocalEnv).unwrap();
    let program = |v: &serde_json::Value| v["command"].as_array().unwrap()[..3].to_vec();
    assert_eq!(program(&a.value), program(&b.value));
    assert_ne!(a.value["command"], b.value["command"]);
    assert_ne!(a.value["env"], b.value["env"]);
    insta::assert_snapshot!(n2d_modules::format_show(&a));
}

#[test]
fn nginx_postgres_prod() {
    let universe = example("nginx-postgres");
    let prod = parse_label("//examples/nginx-postgres:prod", None).unwrap();
    let proxy = universe.resolve(&prod, "proxy", &LocalEnv).unwrap();
    assert_eq!(proxy.value["replicas"], 2);
    assert_eq!(proxy.value["env"]["NGINX_ENTRYPOINT_QUIET_LOGS"], "1");
    assert_eq!(proxy.references, ["postgres"]);
    insta::assert_snapshot!(n2d_modules::format_show(&proxy));
    let db = universe.resolve(&prod, "postgres", &LocalEnv).unwrap();
    insta::assert_json_snapshot!(db.value);
}

#[test]
fn show_json_carries_value_provenance_and_references() {
    let universe = example("nginx-postgres");
    let dev = parse_label("//examples/nginx-postgres:dev", None).unwrap();
    let proxy = universe.resolve(&dev, "proxy", &LocalEnv).unwrap();
    let json = n2d_modules::show_json(&proxy);
    assert_eq!(json["value"]["proxy"]["upstream"], "localhost:5432");
    assert_eq!(json["references"], serde_json::json!(["postgres"]));
    let origin = &json["provenance"]["proxy.upstream"][0];
    assert_eq!(origin["file"], "examples/nginx-postgres/n2d.toml");
    assert_eq!(origin["priority"], 100);
    assert_eq!(json["provenance"]["proxy.listen"][0]["default"], true);
}

#[test]
fn hello_services_print_their_greeting_when_run() {
    use std::io::{BufRead, BufReader};
    let universe = example("hello");
    let dev = parse_label("//examples/hello:dev", None).unwrap();
    for (service, expected) in [("hello", "Hello, world"), ("goodbye", "Goodbye, moon")] {
        let resolved = universe.resolve(&dev, service, &LocalEnv).unwrap();
        let service: n2d_modules::service::Service =
            serde_json::from_value(resolved.value).unwrap();
        let mut command = std::process::Command::new(&service.command[0]);
        command
            .args(&service.command[1..])
            .env_clear()
            .stdout(std::process::Stdio::piped());
        for (name, value) in &service.env {
            if let n2d_modules::service::EnvValue::Text(text) = value {
                command.env(name, text);
            }
        }
        let mut child = command.spawn().unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(line.trim_end(), expected);
    }
}
