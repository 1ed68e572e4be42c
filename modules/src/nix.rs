//! What the module system knows of Nix packages: which `package` values are
//! Nix installables, and what realizing one gave (`Realization`).
//!
//! Realizing runs Nix, so it is not done here: the build realizes the
//! installables it finds written in module files (a cached task of its own)
//! and hands the results to the `Universe` (`Universe::with_realizations`).
//! Resolution then makes `${{ self.package.out }}` the output path, puts the
//! output path in `package`, and gives a service with an empty `command` the
//! program `nix run` would choose: `bin/<meta.mainProgram or pname or name>`.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Nix store folder whose paths `package` may name directly.
pub const STORE_DIR: &str = "/nix/store/";

/// How a `package` value is realized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstallableKind {
    /// `/nix/store/<hash>-<name>`: already an output path.
    StorePath,
    /// A Nix file (`*.nix`): workspace-relative, or absolute. Built with
    /// `nix-build`; a file holding a function is called with no arguments.
    File,
    /// A flake installable (`nixpkgs#hello`, `.#api`, `github:o/r#x`).
    /// Built with `nix build`.
    Flake,
}

/// Whether `package` is a Nix installable, and of which kind. Anything else
/// that is not empty is a local program (a workspace-relative file) or an
/// absolute path outside the store.
pub fn installable_kind(package: &str) -> Option<InstallableKind> {
    if package.contains("${{") {
        return None;
    }
    if package.contains('#') {
        return Some(InstallableKind::Flake);
    }
    if package.ends_with(".nix") {
        return Some(InstallableKind::File);
    }
    if package.starts_with(STORE_DIR) {
        return Some(InstallableKind::StorePath);
    }
    if !package.starts_with('/') && package.contains(':') {
        // A flake reference without an attribute: its default package.
        return Some(InstallableKind::Flake);
    }
    None
}

/// What realizing one installable gave.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Realization {
    /// The installable as written.
    pub installable: String,
    /// Output name → store path; always holds the first output, which
    /// `out` names.
    pub outputs: BTreeMap<String, String>,
    /// The first output's store path (what `nix build` links as `result`).
    pub out: String,
    /// The program `nix run` would start: `meta.mainProgram`, else `pname`,
    /// else the name without its version.
    pub main_program: String,
    /// `nix-store -qR` of every output: dependencies first.
    pub closure: Vec<String>,
}

impl Realization {
    /// The program of a service whose `command` is empty.
    pub fn program(&self) -> String {
        format!("{}/bin/{}", self.out, self.main_program)
    }
}

/// The name `nix run` uses for a package known only by its store path:
/// `/nix/store/<hash>-hello-2.12` → `hello` (`builtins.parseDrvName`: the
/// name ends before the first `-` followed by a digit).
pub fn program_name_of_store_path(path: &str) -> String {
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(path);
    let name = match base.split_once('-') {
        Some((hash, rest)) if hash.len() == 32 => rest,
        _ => base,
    };
    drv_name(name).to_string()
}

/// `builtins.parseDrvName(name).name`.
pub fn drv_name(name: &str) -> &str {
    let bytes = name.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'-' && bytes.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()) {
            return &name[..i];
        }
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds() {
        assert_eq!(
            installable_kind("nixpkgs#hello"),
            Some(InstallableKind::Flake)
        );
        assert_eq!(installable_kind(".#api"), Some(InstallableKind::Flake));
        assert_eq!(installable_kind("github:o/r"), Some(InstallableKind::Flake));
        assert_eq!(
            installable_kind("pkgs/hello.nix"),
            Some(InstallableKind::File)
        );
        assert_eq!(
            installable_kind("/src/hello.nix"),
            Some(InstallableKind::File)
        );
        assert_eq!(
            installable_kind("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12"),
            Some(InstallableKind::StorePath)
        );
        assert_eq!(installable_kind("tools/api"), None);
        assert_eq!(installable_kind("/opt/api"), None);
        assert_eq!(installable_kind("${{ self.x }}.nix"), None);
    }

    #[test]
    fn names_as_nix_run_picks_them() {
        assert_eq!(
            program_name_of_store_path("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-hello-2.12.1"),
            "hello"
        );
        assert_eq!(
            program_name_of_store_path("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nix-hello"),
            "nix-hello"
        );
        assert_eq!(drv_name("foo-bar-1.0"), "foo-bar");
        assert_eq!(drv_name("plain"), "plain");
    }
}
