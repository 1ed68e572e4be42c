//! Nix in the build: evaluating `n2d.nix` module files and realizing the
//! Nix packages services name, both as cached tasks, so that a build whose
//! Nix inputs did not change runs no Nix at all.
//!
//! - `NixParseTask` (kind `parse`) evaluates a module file with
//!   `nix-instantiate --eval --strict --json`, the shipped library passed as
//!   the argument `n2d` (a file that is a function `{ n2d, ... }: …` gets
//!   it), and parses the JSON as a `n2d.json` would be. Its inputs: the file,
//!   every file it names by a relative path literal (transitively: what it
//!   imports), the library, the `nix-instantiate` program, `NIX_PATH`, and
//!   the file's absolute location — Nix paths are absolute, so unlike every
//!   other task a Nix module is evaluated again when the workspace moves.
//! - `RealizeTask` (kind `realize`) builds one installable: a store path is
//!   checked (or substituted) with `nix-store --realise`, a `.nix` file is
//!   built with `nix-build`, a flake installable with `nix build`. Its output
//!   is a `Realization`: output paths, the main program, and the closure
//!   (`nix-store -qR`) that the `oci` target puts into layers.
//! - `StoreTree` reads a store path for a layer.
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use n2d_engine::{Inputs, RunContext, RunError, Task};
use n2d_modules::nix::{
    installable_kind, program_name_of_store_path, InstallableKind, Realization,
};
use n2d_modules::Format;
use n2d_rules::oci::{StoreReader, TreeEntry, TreeEntryKind};

/// The library `n2d.nix` files receive as `n2d` (`nix/lib.nix`).
pub const LIB_NIX: &str = include_str!("../../nix/lib.nix");

/// Bumped when these tasks' outputs change meaning.
const NIX_TASKS_VERSION: u32 = 1;

const HELP_INSTALL: &str = "install Nix (its `nix-instantiate`, `nix-build` and `nix-store` must be on PATH), or write the package as n2d.toml";

/// The program `name` on PATH.
pub fn tool(name: &str) -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    n2d_rules::manager::find_tool(name, &path).ok_or_else(|| {
        format!("Nix is needed here and `{name}` is not on PATH\n = help: {HELP_INSTALL}")
    })
}

/// What identifies the installed `name` without running it: its path, size
/// and modification time (an upgrade of Nix changes it).
fn tool_identity(name: &str) -> String {
    match tool(name) {
        Ok(path) => {
            let meta = std::fs::metadata(&path).ok();
            let size = meta.as_ref().map(|m| m.len()).unwrap_or(0);
            let modified = meta
                .and_then(|m| m.modified().ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos())
                .unwrap_or(0);
            format!("{} {size} {modified}", path.display())
        }
        Err(_) => format!("{name} missing"),
    }
}

/// Writes the library under the cache folder (when it differs) and returns
/// its path, which `n2d.nix` evaluations import.
pub fn install_lib(cache_dir: &Path) -> Result<PathBuf, String> {
    let dir = cache_dir.join("nix");
    let path = dir.join("lib.nix");
    if std::fs::read(&path).ok().as_deref() == Some(LIB_NIX.as_bytes()) {
        return Ok(path);
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = dir.join(format!(".lib.nix.{}", std::process::id()));
    std::fs::write(&temporary, LIB_NIX)
        .and_then(|_| std::fs::rename(&temporary, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(path)
}

/// The files a Nix file reads through relative path literals (`./x.nix`,
/// `../lib`, `./data.json`), transitively through the `.nix` ones; a folder
/// stands for its `default.nix`. An over-approximation (a path in a comment
/// counts too) that keeps the cache right: an edit to any of them evaluates
/// the module again.
pub fn imported_files(file: &Path) -> Vec<PathBuf> {
    let mut seen: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue = vec![file.to_path_buf()];
    while let Some(current) = queue.pop() {
        let Ok(text) = std::fs::read_to_string(&current) else {
            continue;
        };
        let dir = current.parent().unwrap_or(Path::new("/"));
        for literal in relative_path_literals(&text) {
            let mut path = normalize(&dir.join(literal));
            if path.is_dir() {
                // A folder is its default.nix; a flake folder (`fromFlake
                // ./.`) is its flake.nix and lock too.
                for extra in ["flake.nix", "flake.lock"] {
                    let extra = path.join(extra);
                    if extra != file && extra.is_file() && seen.insert(extra.clone()) {
                        queue.push(extra);
                    }
                }
                path = path.join("default.nix");
            }
            if path.is_file()
                && path != file
                && seen.insert(path.clone())
                && path.extension().is_some_and(|e| e == "nix")
            {
                queue.push(path);
            }
        }
    }
    seen.into_iter().collect()
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// The relative path literals of a Nix text: `./…` and `../…` made of the
/// characters Nix allows in paths.
fn relative_path_literals(text: &str) -> Vec<&str> {
    let is_path_char = |b: u8| b.is_ascii_alphanumeric() || b"._-+/".contains(&b);
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let starts = bytes[i] == b'.'
            && (i == 0 || !is_path_char(bytes[i - 1]))
            && (bytes[i..].starts_with(b"./") || bytes[i..].starts_with(b"../"));
        if !starts {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_path_char(bytes[i]) {
            i += 1;
        }
        out.push(&text[start..i]);
    }
    out
}

/// How the workspace names a file in task keys: relative to the root when
/// inside it, else absolute.
fn stable_name(root: &Path, path: &Path) -> String {
    match path.strip_prefix(root) {
        Ok(relative) => relative.to_string_lossy().replace('\\', "/"),
        Err(_) => path.to_string_lossy().into_owned(),
    }
}

fn run(command: &mut Command, what: &str) -> Result<String, String> {
    let output = crate::pages::allowed_in_child(command)
        .output()
        .map_err(|e| format!("cannot run {what}: {e}\n = help: {HELP_INSTALL}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{what} failed:\n{}", stderr.trim_end()));
    }
    String::from_utf8(output.stdout)
        .map_err(|e| format!("{what} printed text that is not UTF-8: {e}"))
}

fn nix_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' | '\\' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Evaluates a `n2d.nix` file to the JSON of its module (pretty-printed, so
/// that messages about it point at a line of one key).
pub fn evaluate_module(file: &Path, lib: &Path) -> Result<String, String> {
    let instantiate = tool("nix-instantiate")?;
    let json = run(
        Command::new(instantiate)
            .args(["--eval", "--strict", "--json"])
            // `n2d.fromFlake` reads flakes.
            .args(["--extra-experimental-features", "flakes"])
            .args(["--arg", "n2d"])
            .arg(format!("import {}", nix_string(&lib.to_string_lossy())))
            .arg(file),
        &format!("nix-instantiate on {}", file.display()),
    )?;
    let value: serde_json::Value = serde_json::from_str(&json)
        .map_err(|e| format!("nix-instantiate printed JSON n2d cannot read: {e}"))?;
    Ok(serde_json::to_string_pretty(&value).expect("a JSON value always serializes"))
}

/// Parse(`n2d.nix`): the module file evaluated by Nix.
pub struct NixParseTask {
    pub identity: String,
    /// Workspace-relative path of the module file.
    pub file: String,
    pub path: PathBuf,
    /// The library's path (see `install_lib`).
    pub lib: PathBuf,
    /// (stable name, path) of every file the module imports.
    pub imports: Vec<(String, PathBuf)>,
}

impl NixParseTask {
    pub fn new(root: &Path, file: String, lib: PathBuf) -> Self {
        let path = root.join(&file);
        let imports = imported_files(&path)
            .into_iter()
            .map(|p| (stable_name(root, &p), p))
            .collect();
        NixParseTask {
            identity: format!("parse {file}"),
            file,
            path,
            lib,
            imports,
        }
    }

    /// Every file the evaluation reads (for watch and the no-op stamp).
    pub fn input_paths(&self) -> impl Iterator<Item = &PathBuf> {
        self.imports.iter().map(|(_, p)| p)
    }
}

impl Task for NixParseTask {
    fn kind(&self) -> &'static str {
        "parse"
    }
    fn version(&self) -> u32 {
        NIX_TASKS_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.file(self.file.clone(), self.path.clone());
        for (name, path) in &self.imports {
            inputs.file(name.clone(), path.clone());
        }
        inputs.value("format", b"Nix");
        inputs.value("lib", LIB_NIX.as_bytes());
        inputs.value(
            "nix-instantiate",
            tool_identity("nix-instantiate").as_bytes(),
        );
        inputs.value("location", self.path.to_string_lossy().as_bytes());
        inputs.value(
            "NIX_PATH",
            std::env::var("NIX_PATH").unwrap_or_default().as_bytes(),
        );
    }
    fn run(&self, _context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let json =
            evaluate_module(&self.path, &self.lib).map_err(|e| format!("{}: {e}", self.file))?;
        let display = format!("{} (as evaluated by Nix)", self.file);
        let parsed = n2d_modules::parse_module_file(&display, &json, Format::Nix)?;
        Ok(serde_json::to_vec(&parsed)?)
    }
}

/// Realize(installable).
pub struct RealizeTask {
    pub identity: String,
    pub installable: String,
    pub kind: InstallableKind,
    pub root: PathBuf,
    /// (stable name, path) of the Nix files the installable is built from.
    pub files: Vec<(String, PathBuf)>,
    /// Set on a second attempt, when the output a cached realization names
    /// is gone from the store (collected): a different key, so it runs.
    pub retry: bool,
}

impl RealizeTask {
    pub fn new(root: &Path, installable: &str) -> Option<Self> {
        let kind = installable_kind(installable)?;
        let mut files = Vec::new();
        match kind {
            InstallableKind::File => {
                let path = root.join(installable);
                files.extend(imported_files(&path));
                files.push(path);
            }
            InstallableKind::Flake => {
                // A flake in the workspace (`.#api`, `./tools#api`,
                // `path:./tools#api`): its flake.nix, lock and imports.
                let reference = installable.split('#').next().unwrap_or("");
                let local = reference.strip_prefix("path:").unwrap_or(reference);
                if local.is_empty() || local.starts_with('.') || local.starts_with('/') {
                    let dir = root.join(if local.is_empty() { "." } else { local });
                    let flake = normalize(&dir.join("flake.nix"));
                    if flake.is_file() {
                        files.extend(imported_files(&flake));
                        files.push(flake);
                        let lock = normalize(&dir.join("flake.lock"));
                        if lock.is_file() {
                            files.push(lock);
                        }
                    }
                }
            }
            InstallableKind::StorePath => {}
        }
        files.sort();
        files.dedup();
        Some(RealizeTask {
            identity: format!("realize {installable}"),
            installable: installable.to_string(),
            kind,
            root: root.to_path_buf(),
            files: files
                .into_iter()
                .map(|p| (stable_name(root, &p), p))
                .collect(),
            retry: false,
        })
    }

    fn realize(&self) -> Result<Realization, String> {
        let (outputs, main_program) = match self.kind {
            InstallableKind::StorePath => {
                let path = self.installable.trim_end_matches('/').to_string();
                if !Path::new(&path).exists() {
                    run(
                        Command::new(tool("nix-store")?).arg("--realise").arg(&path),
                        &format!("nix-store --realise {path}"),
                    )?;
                }
                let name = program_name_of_store_path(&path);
                (BTreeMap::from([("out".to_string(), path)]), name)
            }
            InstallableKind::File => {
                let file = self.root.join(&self.installable);
                let described = run(
                    Command::new(tool("nix-instantiate")?)
                        .args(["--eval", "--strict", "--json", "--expr"])
                        .arg(describe_file())
                        .args(["--arg", "file"])
                        .arg(nix_string(&file.to_string_lossy())),
                    &format!("nix-instantiate on {}", self.installable),
                )?;
                let described: Described = serde_json::from_str(&described).map_err(|e| {
                    format!("cannot read what Nix said of {}: {e}", self.installable)
                })?;
                run(
                    Command::new(tool("nix-build")?)
                        .arg("--no-out-link")
                        .arg(&file),
                    &format!("nix-build {}", self.installable),
                )?;
                (described.outputs, described.main_program)
            }
            InstallableKind::Flake => {
                let nix = tool("nix")?;
                let flake_args = ["--extra-experimental-features", "nix-command flakes"];
                let described = run(
                    Command::new(&nix)
                        .current_dir(&self.root)
                        .arg("eval")
                        .args(flake_args)
                        .args(["--json", "--apply", DESCRIBE_DERIVATION])
                        .arg(&self.installable),
                    &format!("nix eval {}", self.installable),
                )?;
                let described: Described = serde_json::from_str(&described).map_err(|e| {
                    format!("cannot read what Nix said of {}: {e}", self.installable)
                })?;
                run(
                    Command::new(&nix)
                        .current_dir(&self.root)
                        .arg("build")
                        .args(flake_args)
                        .arg("--no-link")
                        .arg(&self.installable),
                    &format!("nix build {}", self.installable),
                )?;
                (described.outputs, described.main_program)
            }
        };
        for path in outputs.values() {
            if !Path::new(path).exists() {
                return Err(format!(
                    "Nix built {} but its output {path} is not in the store",
                    self.installable
                ));
            }
        }
        let out = outputs
            .get("out")
            .or_else(|| outputs.values().next())
            .cloned()
            .ok_or_else(|| format!("{} has no outputs", self.installable))?;
        let closure = run(
            Command::new(tool("nix-store")?)
                .arg("-qR")
                .args(outputs.values()),
            &format!("nix-store -qR {out}"),
        )?
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
        Ok(Realization {
            installable: self.installable.clone(),
            outputs,
            out,
            main_program,
            closure,
        })
    }
}

/// What `nix run` needs of a derivation `d`: its outputs and main program.
const DESCRIBE_DERIVATION: &str = r#"d: {
  outputs = builtins.listToAttrs (map (o: { name = o; value = d.${o}.outPath; }) (d.outputs or [ "out" ]));
  main_program = d.meta.mainProgram or d.pname or (builtins.parseDrvName d.name).name;
}"#;

/// `DESCRIBE_DERIVATION` of a file's value, called with no arguments when it
/// is a function (as `nix-build` does); the file comes as the argument `file`.
fn describe_file() -> String {
    format!(
        "{{ file }}: let value = import file; in ({DESCRIBE_DERIVATION}) (if builtins.isFunction value then value {{ }} else value)"
    )
}

#[derive(serde::Deserialize)]
struct Described {
    outputs: BTreeMap<String, String>,
    main_program: String,
}

impl Task for RealizeTask {
    fn kind(&self) -> &'static str {
        "realize"
    }
    fn version(&self) -> u32 {
        NIX_TASKS_VERSION
    }
    fn identity(&self) -> &str {
        &self.identity
    }
    fn inputs(&self, inputs: &mut Inputs) {
        inputs.value("installable", self.installable.as_bytes());
        for (name, path) in &self.files {
            inputs.file(name.clone(), path.clone());
        }
        let tool = match self.kind {
            InstallableKind::StorePath => "nix-store",
            InstallableKind::File => "nix-build",
            InstallableKind::Flake => "nix",
        };
        inputs.value("tool", tool_identity(tool).as_bytes());
        if self.kind != InstallableKind::StorePath {
            inputs.value("location", self.root.to_string_lossy().as_bytes());
            inputs.value(
                "NIX_PATH",
                std::env::var("NIX_PATH").unwrap_or_default().as_bytes(),
            );
        }
        if self.retry {
            inputs.value("retry", b"the cached output was gone from the store");
        }
    }
    fn run(&self, _context: &RunContext<'_>) -> Result<Vec<u8>, RunError> {
        let realization = self
            .realize()
            .map_err(|e| format!("cannot realize the Nix package `{}`: {e}", self.installable))?;
        Ok(serde_json::to_vec(&realization)?)
    }
}

/// The first `bin/sh` of a closure (dependencies first): what runs an
/// image's entrypoint when the image has no base layer. Store paths do not
/// change, so this reads no input a key must cover.
pub fn shell_of(closure: &[String]) -> Option<String> {
    closure
        .iter()
        .map(|path| format!("{path}/bin/sh"))
        .find(|shell| Path::new(shell).exists())
}

/// Whether every output path of a realization is still in the store.
pub fn is_present(realization: &Realization) -> bool {
    realization.outputs.values().all(|p| Path::new(p).exists())
}

/// Reads store paths from the file system, for the `oci` target's layers.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreTree;

impl StoreReader for StoreTree {
    fn entries(&self, store_path: &str) -> Result<Vec<TreeEntry>, String> {
        use std::os::unix::fs::PermissionsExt;
        let mut entries = Vec::new();
        for entry in walkdir::WalkDir::new(store_path)
            .follow_links(false)
            .sort_by_file_name()
        {
            let entry = entry.map_err(|e| format!("cannot read {store_path}: {e}"))?;
            let path = entry.path().to_string_lossy().into_owned();
            let kind = if entry.file_type().is_symlink() {
                let target = std::fs::read_link(entry.path())
                    .map_err(|e| format!("cannot read the link {path}: {e}"))?;
                TreeEntryKind::Symlink {
                    target: target.to_string_lossy().into_owned(),
                }
            } else if entry.file_type().is_dir() {
                TreeEntryKind::Directory
            } else {
                let meta = entry
                    .metadata()
                    .map_err(|e| format!("cannot read {path}: {e}"))?;
                let bytes =
                    std::fs::read(entry.path()).map_err(|e| format!("cannot read {path}: {e}"))?;
                TreeEntryKind::File {
                    bytes,
                    executable: meta.permissions().mode() & 0o111 != 0,
                }
            };
            entries.push(TreeEntry { path, kind });
        }
        Ok(entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_literals() {
        let text = "{ a = import ./lib.nix; b = ../x/y.json; c = \"./not\"; d = a./b; e = ./.; }";
        assert_eq!(
            relative_path_literals(text),
            vec!["./lib.nix", "../x/y.json", "./not", "./."]
        );
    }

    #[test]
    fn imports_are_followed_transitively() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("n2d.nix"), "import ./a.nix").unwrap();
        std::fs::write(root.join("a.nix"), "import ./sub").unwrap();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(
            root.join("sub/default.nix"),
            "builtins.readFile ../data.txt",
        )
        .unwrap();
        std::fs::write(root.join("data.txt"), "x").unwrap();
        let found: Vec<String> = imported_files(&root.join("n2d.nix"))
            .iter()
            .map(|p| stable_name(root, p))
            .collect();
        assert_eq!(found, vec!["a.nix", "data.txt", "sub/default.nix"]);
    }
}
