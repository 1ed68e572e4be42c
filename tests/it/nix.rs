//! Nix through the whole pipeline, with the real Nix (Debian's nix-bin in
//! CI): `n2d.nix` module files mean what their TOML twins mean, Nix errors
//! reach the user, and a derivation as a service is built once, run by the
//! procfile, and put with its closure into an OCI image that podman runs.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{busybox_base_layer, counts, require_tool, skopeo_inspect, TestWorkspace};

fn nix_installed() -> bool {
    ["nix-instantiate", "nix-build", "nix-store"]
        .iter()
        .all(|tool| require_tool(tool))
}

/// A folder of wrappers that log each Nix invocation to `log`, then run the
/// real program: how the tests see whether a build ran Nix at all.
fn logging_nix(dir: &Path) -> (PathBuf, PathBuf) {
    let bin = dir.join("logging-bin");
    std::fs::create_dir_all(&bin).unwrap();
    let log = dir.join("nix.log");
    for tool in ["nix-instantiate", "nix-build", "nix-store", "nix"] {
        let Some(real) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(tool))
                .find(|p| p.is_file())
        }) else {
            continue;
        };
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        );
        crate::support::write_executable(&bin.join(tool), &script);
    }
    (bin, log)
}

/// Copies the image tagged `tag` of the layout into the local store as
/// `name` and runs it with podman; its standard output.
fn podman_run(layout: &Path, tag: &str, name: &str) -> String {
    let copy = Command::new("skopeo")
        .arg("copy")
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("containers-storage:{name}"))
        .output()
        .unwrap();
    assert!(
        copy.status.success(),
        "{}",
        String::from_utf8_lossy(&copy.stderr)
    );
    let run = Command::new("podman")
        .args(["--runtime", "runc", "--cgroup-manager", "cgroupfs"])
        .args(["run", "--rm", "--network", "none", name])
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    String::from_utf8_lossy(&run.stdout).trim_end().to_string()
}

fn n2d_with_path(root: &Path, bin: &Path, args: &[&str]) -> Output {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut paths = vec![bin.to_path_buf()];
    paths.extend(std::env::split_paths(&path));
    Command::new(env!("CARGO_BIN_EXE_n2d"))
        .current_dir(root)
        .args(args)
        .env("PATH", std::env::join_paths(paths).unwrap())
        .output()
        .expect("n2d runs")
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last = stdout.lines().last().unwrap_or_else(|| {
        panic!(
            "no summary; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    serde_json::from_str(last).unwrap()
}

const TOML_TWIN: &str = r#"
[modules.base]
options.app.word = { type = "str", default = "hi", description = "A word" }
env.WORD = "${{ self.app.word }}"
env.LEVEL = { mkDefault = "info" }
ports.http = 8080

[services.api]
imports = [":base"]
command = ["/bin/sh", "-c", "echo $WORD"]
env.LEVEL = "debug"
app.word = "hello"
restart = { mkForce = "always" }

[services.worker]
imports = [":base"]
command = ["/bin/true"]
depends_on.":api" = "started"
env.API = "http://${{ :api.address.http }}/v1"

[deployments.dev.services.":api"]

[deployments.dev.services.":worker"]
env.LEVEL = { mkForce = "warn" }
command = { mkBefore = ["/usr/bin/env"] }
restart = { mkOverride = { priority = 10, value = "no" } }
"#;

const NIX_TWIN: &str = r#"
{ n2d, ... }:
{
  modules.base = {
    options.app.word = { type = "str"; default = "hi"; description = "A word"; };
    env.WORD = n2d.ref "self.app.word";
    env.LEVEL = n2d.mkDefault "info";
    ports.http = 8080;
  };
  services.api = {
    imports = [ ":base" ];
    command = [ "/bin/sh" "-c" "echo $WORD" ];
    env.LEVEL = "debug";
    app.word = "hello";
    restart = n2d.mkForce "always";
  };
  services.worker = {
    imports = [ ":base" ];
    command = [ "/bin/true" ];
    depends_on.":api" = "started";
    env.API = "http://${n2d.ref ":api.address.http"}/v1";
  };
  deployments.dev.services = {
    ":api" = { };
    ":worker" = {
      env.LEVEL = n2d.mkForce "warn";
      command = n2d.mkBefore [ "/usr/bin/env" ];
      restart = n2d.mkOverride 10 "no";
    };
  };
}
"#;

fn tree(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = walkdir::WalkDir::new(dir)
        .into_iter()
        .map(|e| e.unwrap())
        .filter(|e| e.file_type().is_file() && e.file_name() != ".n2d-manifest")
        .map(|e| {
            (
                e.path().strip_prefix(dir).unwrap().display().to_string(),
                std::fs::read_to_string(e.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

#[test]
fn a_nix_module_and_its_toml_twin_resolve_to_identical_services() {
    if !nix_installed() {
        return;
    }
    let toml = TestWorkspace::new();
    toml.write("app/n2d.toml", TOML_TWIN);
    let nix = TestWorkspace::new();
    nix.write("app/n2d.nix", NIX_TWIN);
    for ws in [&toml, &nix] {
        let out = ws.n2d(&[
            "build",
            "//app:dev",
            "--target",
            "json",
            "--target",
            "procfile",
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let toml_out = tree(&toml.root.join("n2d-out/app/dev"));
    let nix_out = tree(&nix.root.join("n2d-out/app/dev"));
    assert!(toml_out.len() >= 4, "{toml_out:?}");
    assert_eq!(toml_out, nix_out);
    // The priorities did what they say: mkForce over plain, plain over
    // mkDefault, mkOverride 10 over mkForce's 50 would-be; mkBefore first.
    let worker = toml.read("n2d-out/app/dev/json/services/worker.json");
    let worker: serde_json::Value = serde_json::from_str(&worker).unwrap();
    assert_eq!(worker["env"]["LEVEL"], "warn");
    assert_eq!(worker["restart"], "no");
    assert_eq!(
        worker["command"],
        serde_json::json!(["/usr/bin/env", "/bin/true"])
    );
    assert_eq!(worker["env"]["API"], "http://localhost:8080/v1");
    let api: serde_json::Value =
        serde_json::from_str(&toml.read("n2d-out/app/dev/json/services/api.json")).unwrap();
    assert_eq!(api["env"]["LEVEL"], "debug");
    assert_eq!(api["env"]["WORD"], "hello");

    // `n2d show` evaluates the Nix file too.
    let shown = nix.n2d(&["show", "//app:worker", "--deployment", "//app:dev"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains("warn"));
}

#[test]
fn nix_errors_fail_the_build_with_nix_s_message_and_the_file() {
    if !nix_installed() {
        return;
    }
    let ws = TestWorkspace::new();
    ws.write("app/n2d.nix", "{ services.api = { command = [ \"x\" ]; ; }");
    let out = ws.n2d(&["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("app/n2d.nix"), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");

    ws.write(
        "app/n2d.nix",
        "{ services.api.command = throw \"the greeting is not configured\"; }",
    );
    let out = ws.n2d(&["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("app/n2d.nix"), "{stderr}");
    assert!(
        stderr.contains("the greeting is not configured"),
        "{stderr}"
    );

    // A value of the wrong type is the module system's error, as in TOML.
    ws.write(
        "app/n2d.nix",
        "{ services.api = { command = [ \"/bin/true\" ]; replicas = \"two\"; }; deployments.dev.services = [ \":api\" ]; }",
    );
    let out = ws.n2d(&["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("replicas"), "{stderr}");
}

/// The nix-hello example in a workspace of its own, with a busybox base
/// layer so that its image has a /bin/sh for the entrypoint.
fn nix_hello_workspace() -> TestWorkspace {
    let ws = TestWorkspace::new();
    ws.write(
        "n2d.workspace.toml",
        "default_targets = [\"procfile\"]\nbase_layer = \"base/busybox.tar\"\n",
    );
    std::fs::create_dir_all(ws.root.join("base")).unwrap();
    std::fs::write(ws.root.join("base/busybox.tar"), busybox_base_layer()).unwrap();
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nix-hello");
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        ws.write(
            &format!("hello/{name}"),
            &std::fs::read_to_string(entry.path()).unwrap(),
        );
    }
    ws
}

#[test]
fn a_derivation_is_built_once_and_runs_from_the_procfile_and_the_image() {
    if !nix_installed() || !require_tool("skopeo") || !require_tool("podman") {
        return;
    }
    let ws = nix_hello_workspace();
    let (bin, log) = logging_nix(ws.root.parent().unwrap());
    let build = |args: &[&str]| {
        let mut all = vec!["build", "//hello:dev", "--json"];
        all.extend_from_slice(args);
        let out = n2d_with_path(&ws.root, &bin, &all);
        let value = summary(&out);
        assert_eq!(
            value["ok"],
            true,
            "{value}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        value
    };
    let first = build(&[]);
    assert_eq!(counts(&first, "realize"), (1, 0), "{first}");
    let ran = std::fs::read_to_string(&log).unwrap();
    assert!(ran.contains("nix-build"), "{ran}");
    assert!(ran.contains("nix-store -qR"), "{ran}");

    // Built once: a second build runs no Nix, and neither does a build
    // that has other work (a new package) to do.
    std::fs::remove_file(&log).unwrap();
    let second = build(&[]);
    assert_eq!(second["executed"], 0, "{second}");
    ws.write(
        "other/n2d.toml",
        "[services.x]\ncommand = [\"/bin/true\"]\n",
    );
    let third = build(&[]);
    assert_eq!(counts(&third, "realize"), (0, 1), "{third}");
    assert_eq!(counts(&third, "parse").0, 1, "only the new file: {third}");
    assert!(!log.exists(), "{}", std::fs::read_to_string(&log).unwrap());

    // The procfile runs the derivation's program, chosen as `nix run` does
    // for `hello`, named through `${{ self.package.out }}` for `greeter`.
    let procfile = ws.root.join("n2d-out/hello/dev/procfile");
    let text = std::fs::read_to_string(procfile.join("Procfile")).unwrap();
    assert!(text.contains("hello: "), "{text}");
    for (service, expected) in [
        ("hello", "Hello from a Nix derivation, world ()"),
        (
            "greeter",
            "Hello from a Nix derivation, Nix users (from greeter)",
        ),
    ] {
        let out = Command::new(procfile.join("bin").join(service))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim_end(), expected);
    }
    let unit =
        std::fs::read_to_string(ws.root.join("n2d-out/hello/dev/systemd/hello.service")).unwrap();
    assert!(unit.contains("-nix-hello-1.0/bin/nix-hello"), "{unit}");
    let module =
        std::fs::read_to_string(ws.root.join("n2d-out/hello/dev/nixos/module.nix")).unwrap();
    assert!(module.contains("path = [ \"/nix/store/"), "{module}");

    // The image holds the closure, a layer per store path, and runs.
    let layout = ws.root.join("n2d-out/hello/dev/oci");
    let value = skopeo_inspect(&layout, "dev-hello");
    assert_eq!(
        value["Layers"].as_array().unwrap().len(),
        4,
        "base, greeting, nix-hello, service: {value}"
    );
    assert_eq!(
        podman_run(&layout, "dev-hello", "localhost/n2d-test/nix-hello:latest"),
        "Hello from a Nix derivation, world ()"
    );
}

#[test]
fn a_flake_read_through_n2d_nix_is_evaluated_again_when_flake_nix_changes() {
    if !nix_installed() {
        return;
    }
    let ws = TestWorkspace::new();
    let flake = |word: &str| {
        format!(
            "{{\n  outputs = _: let module = {{\n    services.api = {{ command = [ \"/bin/echo\" \"{word}\" ]; }};\n    deployments.dev.services = [ \":api\" ];\n  }}; in {{ n2d.x86_64-linux = module; n2d.aarch64-linux = module; }};\n}}\n"
        )
    };
    ws.write("app/flake.nix", &flake("first"));
    ws.write("app/n2d.nix", "{ n2d, ... }: n2d.fromFlake ./.\n");
    let first = ws.build_json(&["//app:dev"]);
    assert_eq!(first["ok"], true, "{first}");
    assert!(ws
        .read("n2d-out/app/dev/json/services/api.json")
        .contains("first"));

    ws.write("app/flake.nix", &flake("second"));
    let second = ws.build_json(&["//app:dev"]);
    assert_eq!(second["ok"], true, "{second}");
    assert_eq!(counts(&second, "parse").0, 1, "{second}");
    assert!(ws
        .read("n2d-out/app/dev/json/services/api.json")
        .contains("second"));
}

#[test]
fn a_flake_installable_is_built_with_nix_build_and_its_main_program_runs() {
    if !nix_installed() || !require_tool("nix") {
        return;
    }
    let ws = TestWorkspace::new();
    ws.write("n2d.workspace.toml", "default_targets = [\"procfile\"]\n");
    let flake = |words: &str| {
        format!(
            "{{\n  outputs = _: {{\n    packages.x86_64-linux.hello = (builtins.derivation {{\n      name = \"flake-hello-2.0\";\n      system = \"x86_64-linux\";\n      builder = \"/bin/sh\";\n      args = [ \"-c\" \"export PATH=/usr/bin:/bin; mkdir -p $out/bin; printf '#!/bin/sh\\\\necho {words}\\\\n' > $out/bin/greet; chmod +x $out/bin/greet\" ];\n    }}) // {{ meta.mainProgram = \"greet\"; }};\n  }};\n}}\n"
        )
    };
    ws.write("pkgs/flake.nix", &flake("flake hello"));
    ws.write(
        "app/n2d.toml",
        "[services.hi]\npackage = \"./pkgs#hello\"\n\n[deployments.dev]\nservices = [\":hi\"]\n",
    );
    let run = || {
        let out = Command::new(ws.root.join("n2d-out/app/dev/procfile/bin/hi"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    };
    let first = ws.build_json(&["//app:dev"]);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(counts(&first, "realize"), (1, 0), "{first}");
    // meta.mainProgram, not the name, picks the program (as `nix run`).
    assert_eq!(run(), "flake hello");

    // The flake's files are inputs of the realization.
    ws.write("pkgs/flake.nix", &flake("flake hello again"));
    let second = ws.build_json(&["//app:dev"]);
    assert_eq!(counts(&second, "realize"), (1, 0), "{second}");
    assert_eq!(run(), "flake hello again");

    // Nix's garbage collector removes the output: the next build does not
    // trust its stamp or its cached realization, and builds it again.
    let script = ws.read("n2d-out/app/dev/procfile/bin/hi");
    let program = script
        .split_whitespace()
        .find(|w| w.starts_with("/nix/store/") && w.ends_with("/bin/greet"))
        .unwrap_or_else(|| panic!("{script}"))
        .trim_end_matches("/bin/greet")
        .to_string();
    let deleted = Command::new("nix-store")
        .args(["--delete", &program])
        .output()
        .unwrap();
    assert!(
        deleted.status.success(),
        "{}",
        String::from_utf8_lossy(&deleted.stderr)
    );
    assert!(!Path::new(&program).exists());
    let third = ws.build_json(&["//app:dev"]);
    assert_eq!(third["ok"], true, "{third}");
    assert_eq!(counts(&third, "realize").0, 1, "{third}");
    assert!(Path::new(&program).exists());
    assert_eq!(run(), "flake hello again");
}

#[test]
fn an_image_without_a_base_layer_runs_its_entrypoint_with_a_shell_of_the_closure() {
    if !nix_installed()
        || !require_tool("skopeo")
        || !require_tool("podman")
        || !require_tool("busybox")
    {
        return;
    }
    let ws = TestWorkspace::new();
    ws.write("n2d.workspace.toml", "default_targets = [\"oci\"]\n");
    // A shell package (Debian's static busybox, copied in: an impure but
    // offline build) and a program whose script names it by store path, as
    // Nix-built scripts do.
    ws.write(
        "pkgs/shell.nix",
        "builtins.derivation {\n  name = \"busybox-shell\";\n  system = builtins.currentSystem;\n  builder = \"/bin/sh\";\n  args = [ \"-c\" \"export PATH=/usr/bin:/bin; mkdir -p $out/bin; cp /bin/busybox $out/bin/busybox; ln -s busybox $out/bin/sh\" ];\n}\n",
    );
    ws.write(
        "pkgs/greet.nix",
        "let shell = import ./shell.nix; in\nbuiltins.derivation {\n  name = \"greet-1.0\";\n  system = builtins.currentSystem;\n  builder = \"/bin/sh\";\n  args = [ \"-c\" ''\n    export PATH=/usr/bin:/bin\n    mkdir -p $out/bin\n    printf '#!%s/bin/sh\\necho \"greetings, $WHO\"\\n' ${shell} > $out/bin/greet\n    chmod +x $out/bin/greet\n  '' ];\n}\n",
    );
    ws.write(
        "app/n2d.toml",
        "[services.greet]\npackage = \"pkgs/greet.nix\"\nenv.WHO = \"container\"\n\n[deployments.dev]\nservices = [\":greet\"]\n",
    );
    let built = ws.build_json(&["//app:dev"]);
    assert_eq!(built["ok"], true, "{built}");
    let layout = ws.root.join("n2d-out/app/dev/oci");
    let image = skopeo_inspect(&layout, "dev-greet");
    assert_eq!(
        image["Layers"].as_array().unwrap().len(),
        3,
        "shell, greet, service: {image}"
    );
    let config = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!("oci:{}:dev-greet", layout.display()))
        .output()
        .unwrap();
    let config: serde_json::Value = serde_json::from_slice(&config.stdout).unwrap();
    let entrypoint = config["config"]["Entrypoint"].as_array().unwrap().clone();
    assert_eq!(entrypoint.len(), 2, "{config}");
    assert!(
        entrypoint[0]
            .as_str()
            .unwrap()
            .ends_with("-busybox-shell/bin/sh"),
        "{config}"
    );

    assert_eq!(
        podman_run(
            &layout,
            "dev-greet",
            "localhost/n2d-test/nix-shell-image:latest"
        ),
        "greetings, container"
    );
}

#[test]
fn a_store_path_package_runs_the_program_its_name_gives() {
    if !nix_installed() {
        return;
    }
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/nix-hello/hello.nix");
    let built = Command::new("nix-build")
        .arg("--no-out-link")
        .arg(&example)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let out = String::from_utf8(built.stdout).unwrap().trim().to_string();
    assert!(
        out.starts_with("/nix/store/") && out.ends_with("-nix-hello-1.0"),
        "{out}"
    );

    let ws = TestWorkspace::new();
    ws.write("n2d.workspace.toml", "default_targets = [\"procfile\"]\n");
    ws.write(
        "app/n2d.toml",
        &format!("[services.hi]\npackage = \"{out}\"\nenv.WHO = \"store\"\n\n[deployments.dev]\nservices = [\":hi\"]\n"),
    );
    let first = ws.build_json(&["//app:dev"]);
    assert_eq!(first["ok"], true, "{first}");
    assert_eq!(counts(&first, "realize"), (1, 0), "{first}");
    // No command: `bin/<name without version>` of the path, as `nix run`.
    let run = Command::new(ws.root.join("n2d-out/app/dev/procfile/bin/hi"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&run.stdout).trim_end(),
        "Hello from a Nix derivation, store ()"
    );
}
