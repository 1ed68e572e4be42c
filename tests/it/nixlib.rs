//! The Nix files of the repository, evaluated offline by the real Nix:
//! `nix/lib.nix` (module properties with nixpkgs' encodings, reading a
//! flake's `n2d` output), `nix/flake-module.nix` (the flake-parts module)
//! and `flake.nix`. Each library case is one Nix expression and the JSON
//! that nixpkgs' `lib` gives for it.
//!
//! No nixpkgs and no flake-parts can be fetched here, so the flake-parts
//! module and `flake.nix` are evaluated against stand-ins (below) for the
//! few functions of nixpkgs and flake-parts they call: these tests check
//! our files' structure and data flow, not nixpkgs' behaviour.
//!
//! These tests fail, rather than skip, when Nix is missing: the Nix library
//! is shipped to users and nothing else tests it.
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use crate::support::{require_tool, TestWorkspace};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn nix_command(tool: &str) -> Command {
    assert!(
        require_tool(tool),
        "the Nix library tests need `{tool}` (Debian nix-bin; .ci/install-tools installs it)"
    );
    Command::new(tool)
}

/// Evaluates `expr` strictly to JSON, with `n2d` bound to `nix/lib.nix`,
/// and flakes enabled whatever nix.conf says.
fn eval(expr: &str) -> Result<Value, String> {
    eval_with(&["--extra-experimental-features", "flakes"], expr)
}

fn eval_with(options: &[&str], expr: &str) -> Result<Value, String> {
    let lib = repo("nix/lib.nix");
    let full = format!("let n2d = import {}; in {expr}", lib.display());
    let out = nix_command("nix-instantiate")
        .args(options)
        .args(["--eval", "--strict", "--json", "-E", &full])
        .output()
        .expect("nix-instantiate runs");
    if out.status.success() {
        let stdout = String::from_utf8_lossy(&out.stdout);
        Ok(serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("nix-instantiate printed no JSON ({e}): {stdout}")))
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

#[track_caller]
fn check(expr: &str, expected: Value) {
    match eval(expr) {
        Ok(value) => assert_eq!(value, expected, "for {expr}"),
        Err(stderr) => panic!("{expr} failed to evaluate:\n{stderr}"),
    }
}

#[track_caller]
fn check_error(expr: &str, message: &str) {
    check_error_with(&["--extra-experimental-features", "flakes"], expr, message)
}

#[track_caller]
fn check_error_with(options: &[&str], expr: &str, message: &str) {
    match eval_with(options, expr) {
        Ok(value) => panic!("{expr} evaluated to {value}, expected an error"),
        Err(stderr) => assert!(
            stderr.contains(message),
            "{expr}: expected `{message}` in:\n{stderr}"
        ),
    }
}

/// Every Nix file the repository ships.
const NIX_FILES: &[&str] = &["flake.nix", "nix/lib.nix", "nix/flake-module.nix"];

#[test]
fn nix_files_parse() {
    for file in NIX_FILES {
        let out = nix_command("nix-instantiate")
            .arg("--parse")
            .arg(repo(file))
            .output()
            .expect("nix-instantiate runs");
        assert!(
            out.status.success(),
            "nix-instantiate --parse {file}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every name the library exports, so that a new function cannot be added
/// without a case here.
#[test]
fn library_exports_exactly_the_tested_functions() {
    check(
        "builtins.attrNames n2d",
        json!([
            "defaultOrderPriority",
            "defaultOverridePriority",
            "fromFlake",
            "fromFlakeFor",
            "joinDefinitions",
            "mkAfter",
            "mkAssert",
            "mkBefore",
            "mkDefault",
            "mkForce",
            "mkIf",
            "mkImageMediaOverride",
            "mkMerge",
            "mkOptionDefault",
            "mkOrder",
            "mkOverride",
            "mkVMOverride",
            "ref",
        ]),
    );
}

/// The JSON of each property is what `builtins.toJSON` gives for nixpkgs'
/// `lib` function of the same name (lib/modules.nix).
#[test]
fn properties_encode_as_nixpkgs_lib_does() {
    let override_ = |priority: i64, content: Value| json!({ "_type": "override", "priority": priority, "content": content });
    let order = |priority: i64, content: Value| json!({ "_type": "order", "priority": priority, "content": content });
    check("n2d.mkOverride 10 \"x\"", override_(10, json!("x")));
    check("n2d.mkOptionDefault 1", override_(1500, json!(1)));
    check(
        "n2d.mkDefault { a = 1; }",
        override_(1000, json!({ "a": 1 })),
    );
    check("n2d.mkImageMediaOverride true", override_(60, json!(true)));
    check("n2d.mkForce \"warn\"", override_(50, json!("warn")));
    check("n2d.mkVMOverride null", override_(10, json!(null)));
    check("n2d.defaultOverridePriority", json!(100));
    check("n2d.mkOrder 700 [ 1 ]", order(700, json!([1])));
    check("n2d.mkBefore [ \"a\" ]", order(500, json!(["a"])));
    check("n2d.defaultOrderPriority", json!(1000));
    check("n2d.mkAfter [ \"z\" ]", order(1500, json!(["z"])));
    check(
        "n2d.mkIf true { a = 1; }",
        json!({ "_type": "if", "condition": true, "content": { "a": 1 } }),
    );
    // A false condition is still data: n2d's merge drops the content.
    check(
        "n2d.mkIf false 1",
        json!({ "_type": "if", "condition": false, "content": 1 }),
    );
    check(
        "n2d.mkMerge [ 1 (n2d.mkForce 2) ]",
        json!({ "_type": "merge", "contents": [1, override_(50, json!(2))] }),
    );
    check(
        "n2d.mkAssert true \"never shown\" \"x\"",
        json!({ "_type": "if", "condition": true, "content": "x" }),
    );
    // Properties nest as in nixpkgs.
    check(
        "n2d.mkIf true (n2d.mkDefault [ 1 ])",
        json!({ "_type": "if", "condition": true, "content": override_(1000, json!([1])) }),
    );
}

/// `"${{"` opens a Nix interpolation, so references are spelled with `ref`.
#[test]
fn ref_spells_an_n2d_reference() {
    check(
        "n2d.ref \"self.ports.http\"",
        json!("${{ self.ports.http }}"),
    );
    check(
        "\"postgres://${n2d.ref \"//db:postgres.address.pg\"}/app\"",
        json!("postgres://${{ //db:postgres.address.pg }}/app"),
    );
    // The same string written without the library needs Nix's escape.
    check("n2d.ref \"self.x\" == \"\\${{ self.x }}\"", json!(true));
}

/// nixpkgs throws this (with ‘’ quotes) when it discharges the property;
/// the library throws at once, since n2d only ever sees the JSON.
#[test]
fn mk_if_rejects_a_non_boolean_condition() {
    check_error(
        "n2d.mkIf \"yes\" 1",
        "mkIf called with a non-Boolean condition",
    );
    check_error(
        "n2d.mkIf null 1",
        "mkIf called with a non-Boolean condition",
    );
    check_error(
        "n2d.mkAssert false \"port must be free\" 1",
        "Failed assertion: port must be free",
    );
}

#[test]
fn join_definitions_leaves_every_decision_to_n2d() {
    let merge = |contents: Value| json!({ "_type": "merge", "contents": contents });
    // One definition is kept as written.
    check(
        "n2d.joinDefinitions [ { env.X = n2d.mkForce \"1\"; } ]",
        json!({ "env": { "X": { "_type": "override", "priority": 50, "content": "1" } } }),
    );
    // Tables join by key, at every depth.
    check(
        "n2d.joinDefinitions [ { env.A = \"1\"; } { env.B = \"2\"; ports.http = 80; } ]",
        json!({ "env": { "A": "1", "B": "2" }, "ports": { "http": 80 } }),
    );
    // Plain lists concatenate in definition order, as in n2d.
    check(
        "n2d.joinDefinitions [ { imports = [ \":a\" ]; } { imports = [ \":b\" ]; } ]",
        json!({ "imports": [":a", ":b"] }),
    );
    // Equal values are one value.
    check(
        "n2d.joinDefinitions [ { restart = \"always\"; } { restart = \"always\"; } ]",
        json!({ "restart": "always" }),
    );
    // Differing scalars reach n2d, which reports the conflict.
    check(
        "n2d.joinDefinitions [ { replicas = 1; } { replicas = 3; } ]",
        json!({ "replicas": merge(json!([1, 3])) }),
    );
    // A property is n2d's to resolve, even beside a plain table or list.
    check(
        "n2d.joinDefinitions [ { env.L = \"info\"; } { env.L = n2d.mkForce \"warn\"; } ]",
        json!({ "env": { "L": merge(json!(["info", { "_type": "override", "priority": 50, "content": "warn" }])) } }),
    );
    check(
        "n2d.joinDefinitions [ { command = [ \"b\" ]; } { command = n2d.mkBefore [ \"a\" ]; } ]",
        json!({ "command": merge(json!([["b"], { "_type": "order", "priority": 500, "content": ["a"] }])) }),
    );
    // A derivation is a value, not a table to join into.
    check(
        "let d = derivation { name = \"d\"; system = \"x\"; builder = \"/bin/sh\"; }; \
         in (n2d.joinDefinitions [ { package = d; } { package = d; } ]).package == d",
        json!(true),
    );
    check_error(
        "n2d.joinDefinitions [ ]",
        "joinDefinitions needs at least one definition",
    );
}

/// A flake without inputs in a temporary folder, read by `fromFlake`: this
/// is the path n2d takes for an `n2d.nix` holding `n2d.fromFlake ./.`.
/// `builtins.getFlake` works offline for such a flake (Nix 2.8).
#[test]
fn from_flake_reads_the_n2d_output_of_the_current_system() {
    let dir = tempfile::tempdir().unwrap();
    let flake = dir.path().join("app");
    std::fs::create_dir_all(&flake).unwrap();
    std::fs::write(
        flake.join("flake.nix"),
        r#"{
  outputs = { self }: {
    n2d = {
      x86_64-linux.services.api.command = [ "api" "--x86" ];
      aarch64-linux.services.api.command = [ "api" "--arm" ];
      riscv64-linux.deployments.dev.services = [ ":api" ];
    };
  };
}
"#,
    )
    .unwrap();
    let system = eval("builtins.currentSystem").unwrap();
    let system = system.as_str().unwrap();
    let path = flake.display();
    let expected = match system {
        "aarch64-linux" => json!({ "services": { "api": { "command": ["api", "--arm"] } } }),
        _ => json!({ "services": { "api": { "command": ["api", "--x86"] } } }),
    };
    if system == "x86_64-linux" || system == "aarch64-linux" {
        check(&format!("n2d.fromFlake {path}"), expected.clone());
        check(&format!("n2d.fromFlake \"{path}\""), expected.clone());
        check(&format!("n2d.fromFlake \"path:{path}\""), expected.clone());
        check(
            &format!("n2d.fromFlake (builtins.getFlake \"{path}\")"),
            expected,
        );
    }
    check(
        &format!("n2d.fromFlakeFor \"riscv64-linux\" {path}"),
        json!({ "deployments": { "dev": { "services": [":api"] } } }),
    );
    check_error(
        &format!("n2d.fromFlakeFor \"mips-linux\" {path}"),
        "has no `n2d.mips-linux` output (it has: aarch64-linux, riscv64-linux, x86_64-linux)",
    );
    check_error_with(
        &["--option", "experimental-features", ""],
        &format!("n2d.fromFlake {path}"),
        "fromFlake needs Nix's flakes feature",
    );
    std::fs::write(flake.join("flake.nix"), "{ outputs = { self }: { }; }\n").unwrap();
    check_error(
        &format!("n2d.fromFlake {path}"),
        "has no `n2d` output: declare perSystem.n2d with n2d's flakeModules.default",
    );
}

/// The parts of nixpkgs' `lib` and of flake-parts that `flake-module.nix`
/// calls, as plain data and merge functions: options are their arguments,
/// `attrsOf` and `submodule` merge their entries' definitions with the
/// declared types, and `evalFlake` does flake-parts' transposition
/// (`perSystem.<system>.n2d` → `n2d.<system>`). It does not discharge
/// properties around whole entries (the real module system does).
const FLAKE_PARTS_STAND_IN: &str = r#"
rec {
  definition = value: { file = "<stand-in>"; inherit value; };
  lib = {
    mkOption = args: args;
    mkOptionType = args: args;
    types.attrsOf = elemType: {
      name = "attrsOf";
      merge = loc: defs: builtins.zipAttrsWith
        (name: values:
          if builtins.all elemType.check values
          then elemType.merge (loc ++ [ name ]) (map definition values)
          else throw "stand-in: a definition of ${name} fails the check of ${elemType.name}")
        (map (def: def.value) defs);
    };
    types.submodule = module: {
      name = "submodule";
      merge = loc: defs: builtins.mapAttrs
        (name: option:
          let values = builtins.concatMap (def: if def.value ? ${name} then [ def.value.${name} ] else [ ]) defs;
          in if values == [ ] then option.default
          else option.type.merge (loc ++ [ name ]) (map definition values))
        module.options;
    };
  };
  flake-parts-lib.mkTransposedPerSystemModule = args: { transposed = args; };
  evalFlake = module: perSystem:
    let
      declared = (module { inherit lib flake-parts-lib; }).transposed;
      inherit (declared) name;
    in {
      ${name} = builtins.mapAttrs
        (system: configs: declared.option.type.merge [ "perSystem" system name ]
          (map (config: definition config.${name}) (builtins.filter (config: config ? ${name}) configs)))
        perSystem;
    };
}
"#;

/// A flake without inputs that declares `perSystem.n2d` in two modules, as
/// a user of `flakeModules.default` would, evaluated with the stand-in.
fn flake_using_the_module(dir: &Path) -> PathBuf {
    let flake = dir.join("app");
    std::fs::create_dir_all(flake.join("nix")).unwrap();
    for file in ["lib.nix", "flake-module.nix"] {
        std::fs::copy(repo(&format!("nix/{file}")), flake.join("nix").join(file)).unwrap();
    }
    std::fs::write(flake.join("stand-in.nix"), FLAKE_PARTS_STAND_IN).unwrap();
    std::fs::write(
        flake.join("flake.nix"),
        r#"{
  outputs = { self }:
    let
      parts = import ./stand-in.nix;
      n2d = import ./nix/lib.nix;
      perSystem = [
        {
          n2d.services.api = {
            imports = [ ":tls" ];
            command = [ "api" "--port" (n2d.ref "self.ports.http") ];
            env.RUST_LOG = n2d.mkDefault "info";
          };
          n2d.modules.tls.env.TLS = "1";
          n2d.deployments.dev.services = [ ":api" ];
        }
        {
          n2d.services.api = {
            imports = [ ":metrics" ];
            env.RUST_LOG = n2d.mkForce "warn";
            ports.http = 8080;
          };
          n2d.services.db.command = [ "db" ];
          n2d.modules.metrics.env.METRICS = "1";
          n2d.deployments.dev.services = [ ":db" ];
        }
        { packages.default = "not n2d's"; }
      ];
    in
    parts.evalFlake (import ./nix/flake-module.nix) {
      x86_64-linux = perSystem;
      aarch64-linux = [ ];
    };
}
"#,
    )
    .unwrap();
    flake
}

/// The flake's `n2d.<system>` output, read back by `fromFlake`, is an n2d
/// module file whose properties are still data.
#[test]
fn flake_module_exposes_per_system_n2d_as_a_module_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = flake_using_the_module(dir.path());
    let path = path.display();
    check(
        &format!("n2d.fromFlakeFor \"x86_64-linux\" {path}"),
        json!({
            "services": {
                "api": {
                    "imports": [":tls", ":metrics"],
                    "command": ["api", "--port", "${{ self.ports.http }}"],
                    "env": { "RUST_LOG": { "_type": "merge", "contents": [
                        { "_type": "override", "priority": 1000, "content": "info" },
                        { "_type": "override", "priority": 50, "content": "warn" },
                    ] } },
                    "ports": { "http": 8080 },
                },
                "db": { "command": ["db"] },
            },
            "modules": {
                "tls": { "env": { "TLS": "1" } },
                "metrics": { "env": { "METRICS": "1" } },
            },
            "deployments": { "dev": { "services": [":api", ":db"] } },
        }),
    );
    // A system that declares nothing still has the structure, empty.
    check(
        &format!("n2d.fromFlakeFor \"aarch64-linux\" {path}"),
        json!({ "services": {}, "modules": {}, "deployments": {} }),
    );
}

/// The same output handed to n2d itself (as the `n2d.json` of a package):
/// n2d's merge decides what the flake module left to it.
#[test]
fn flake_module_output_resolves_in_n2d() {
    let dir = tempfile::tempdir().unwrap();
    let path = flake_using_the_module(dir.path());
    let module = eval(&format!(
        "n2d.fromFlakeFor \"x86_64-linux\" {}",
        path.display()
    ))
    .unwrap_or_else(|stderr| panic!("the flake's n2d output:\n{stderr}"));
    let ws = TestWorkspace::new();
    ws.write("app/n2d.json", &module.to_string());
    let out = ws.n2d(&["show", "//app:api", "--deployment", "//app:dev", "--json"]);
    assert!(
        out.status.success(),
        "n2d show:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown: Value = serde_json::from_slice(&out.stdout).expect("n2d show --json prints JSON");
    let api = &shown["value"];
    assert_eq!(api["command"], json!(["api", "--port", "8080"]));
    // mkForce from one flake module beats mkDefault from another.
    assert_eq!(api["env"]["RUST_LOG"], "warn");
    // Both modules' imports took part.
    assert_eq!(api["env"]["TLS"], "1");
    assert_eq!(api["env"]["METRICS"], "1");
    assert_eq!(shown["provenance"]["env.RUST_LOG"][0]["priority"], 50);
}

/// A stand-in for the nixpkgs flake: the `lib` functions and packages that
/// `flake.nix` uses. `buildRustPackage` and `mkShell` return their
/// arguments, so the test sees what the flake asks nixpkgs to build.
const NIXPKGS_STAND_IN: &str = r#"{
  outputs = { self }:
    let
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (name: { inherit name; value = f name; }) names);
        cleanSource = src: src;
        cleanSourceWith = { src, filter }: src;
        importTOML = path: builtins.fromTOML (builtins.readFile path);
        getExe = drv: "${drv}/bin/${drv.meta.mainProgram}";
        licenses = { mit = "MIT"; asl20 = "Apache-2.0"; };
        platforms.linux = [ "x86_64-linux" "aarch64-linux" ];
      };
      # The attribute names were checked against nixpkgs' package set.
      tools = [ "cargo" "rustc" "clippy" "rustfmt" "shellcheck" "honcho" "process-compose"
        "systemd" "nix" "skopeo" "umoci" "podman" "podman-compose" "docker-compose" "kubectl"
        "kubernetes-validate" "jq" ];
      pkgsFor = system: lib.genAttrs tools (name: "pkgs.${name}") // {
        stdenv.hostPlatform.system = system;
        rustPlatform.buildRustPackage = args: args // {
          outPath = "/stand-in/${args.pname}-${args.version}";
          lockFileStart = builtins.head (builtins.split "\n" (builtins.readFile args.cargoLock.lockFile));
        };
        mkShell = args: args // { outPath = "/stand-in/shell"; };
      };
    in {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor;
    };
}
"#;

/// `flake.nix` evaluated by `nix eval` as a flake, with its nixpkgs input
/// replaced by the stand-in (no network, no lock file written).
struct FlakeUnderTest {
    dir: tempfile::TempDir,
}

impl FlakeUnderTest {
    fn new() -> FlakeUnderTest {
        let dir = tempfile::tempdir().unwrap();
        let flake = dir.path().join("n2d");
        std::fs::create_dir_all(flake.join("nix")).unwrap();
        std::fs::create_dir_all(dir.path().join("nixpkgs")).unwrap();
        for file in [
            "flake.nix",
            "Cargo.toml",
            "Cargo.lock",
            "nix/lib.nix",
            "nix/flake-module.nix",
        ] {
            std::fs::copy(repo(file), flake.join(file)).unwrap();
        }
        std::fs::write(dir.path().join("nixpkgs/flake.nix"), NIXPKGS_STAND_IN).unwrap();
        FlakeUnderTest { dir }
    }

    /// `nix eval --json` of the output `attr`, through the function `apply`.
    fn eval(&self, attr: &str, apply: &str) -> Value {
        let out = nix_command("nix")
            .current_dir(self.dir.path())
            .args(["--extra-experimental-features", "nix-command flakes"])
            .args(["eval", "--json", "--no-write-lock-file", "--override-input"])
            .arg("nixpkgs")
            .arg(format!(
                "path:{}",
                self.dir.path().join("nixpkgs").display()
            ))
            .arg(format!(
                "path:{}#{attr}",
                self.dir.path().join("n2d").display()
            ))
            .args(["--apply", apply])
            .output()
            .expect("nix runs");
        assert!(
            out.status.success(),
            "nix eval of flake.nix#{attr} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("nix eval prints JSON")
    }
}

#[test]
fn flake_outputs_package_n2d_and_expose_the_library() {
    let flake = FlakeUnderTest::new();
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(
        flake.eval(
            "packages",
            "packages: let p = packages.x86_64-linux.n2d; in {
               systems = builtins.attrNames packages;
               sameDefault = packages.aarch64-linux.default == packages.aarch64-linux.n2d;
               inherit (p) pname version cargoTestFlags lockFileStart;
               inherit (p.meta) mainProgram;
             }"
        ),
        json!({
            "systems": ["aarch64-linux", "x86_64-linux"],
            "sameDefault": true,
            "pname": "n2d",
            "version": version,
            "cargoTestFlags": ["--package", "n2d-modules", "--package", "n2d-engine", "--package", "n2d-cache"],
            "lockFileStart": "# This file is automatically @generated by Cargo.",
            "mainProgram": "n2d",
        })
    );
    assert_eq!(
        flake.eval("apps", "apps: apps.x86_64-linux"),
        json!({ "default": {
            "type": "app",
            "program": format!("/stand-in/n2d-{version}/bin/n2d"),
            "meta": { "description": "Run n2d" },
        } })
    );
    assert_eq!(
        flake.eval("devShells", "shells: shells.aarch64-linux.default.packages"),
        json!([
            "pkgs.cargo",
            "pkgs.rustc",
            "pkgs.clippy",
            "pkgs.rustfmt",
            "pkgs.shellcheck",
            "pkgs.honcho",
            "pkgs.process-compose",
            "pkgs.systemd",
            "pkgs.nix",
            "pkgs.skopeo",
            "pkgs.umoci",
            "pkgs.podman",
            "pkgs.podman-compose",
            "pkgs.docker-compose",
            "pkgs.kubectl",
            "pkgs.kubernetes-validate",
            "pkgs.jq",
        ])
    );
    assert_eq!(
        flake.eval("lib", "lib: lib.mkForce 1"),
        json!({ "_type": "override", "priority": 50, "content": 1 })
    );
    assert_eq!(
        flake.eval("flakeModules", "modules: builtins.attrNames modules"),
        json!(["default"])
    );
    assert_eq!(
        flake.eval("flakeModule", "module: baseNameOf module"),
        json!("flake-module.nix")
    );
}
