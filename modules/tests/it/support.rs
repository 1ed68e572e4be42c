//! Shared test support: in-memory workspaces and the one `check` helper
//! that every behaviour test goes through (tiny module files in, one value
//! or one error message out — as nixpkgs `lib/tests/modules.sh`).
#![allow(dead_code)]

use std::collections::BTreeMap;

use n2d_modules::{
    eval_package, parse_label, parse_module_file, Error, Format, LocalEnv, OptionSet, Resolved,
    Settings, Universe,
};

/// Builds a universe from `(path, text)` module files (`web/n2d.toml`,
/// `n2d.json` for the root package).
pub fn universe(files: &[(&str, &str)]) -> Result<Universe, Error> {
    universe_with(files, Settings::default(), OptionSet::core())
}

pub fn universe_with(
    files: &[(&str, &str)],
    settings: Settings,
    options: OptionSet,
) -> Result<Universe, Error> {
    let mut packages = BTreeMap::new();
    for (path, text) in files {
        let (package, file_name) = match path.rsplit_once('/') {
            Some((package, name)) => (package.to_string(), name),
            None => (String::new(), *path),
        };
        let format = match file_name {
            "n2d.json" => Format::Json,
            _ => Format::Toml,
        };
        let parsed = parse_module_file(path, text, format)?;
        packages.insert(package.clone(), eval_package(&package, &parsed)?);
    }
    Ok(Universe::new(packages, options, &settings))
}

/// Resolves `what`: `"//pkg:service"` (standalone) or
/// `"//pkg:deployment service"`.
pub fn resolve(universe: &Universe, what: &str) -> Result<Resolved, Error> {
    match what.split_once(' ') {
        Some((deployment, service)) => {
            universe.resolve(&parse_label(deployment, None)?, service, &LocalEnv)
        }
        None => universe.resolve_standalone(&parse_label(what, None)?, &LocalEnv),
    }
}

/// The value at `path` (dotted, `""` for all) of `what` resolved from
/// `files`, as compact JSON — or the full error message.
pub fn check(files: &[(&str, &str)], what: &str, path: &str) -> String {
    let resolved = universe(files).and_then(|u| resolve(&u, what));
    match resolved {
        Ok(resolved) => value_at(&resolved.value, path).to_string(),
        Err(err) => err.to_string(),
    }
}

/// One module file `web/n2d.toml` holding `text`, resolved as `//web:api`.
pub fn check_api(text: &str, path: &str) -> String {
    check(&[("web/n2d.toml", text)], "//web:api", path)
}

/// The error message of resolving `what`, or a panic naming the value.
pub fn error(files: &[(&str, &str)], what: &str) -> String {
    match universe(files).and_then(|u| resolve(&u, what)) {
        Ok(resolved) => panic!("expected an error, got {}", resolved.value),
        Err(err) => err.to_string(),
    }
}

pub fn value_at<'a>(value: &'a serde_json::Value, path: &str) -> &'a serde_json::Value {
    if path.is_empty() {
        return value;
    }
    path.split('.').fold(value, |v, key| match v {
        serde_json::Value::Array(items) => &items[key.parse::<usize>().expect("index")],
        _ => &v[key],
    })
}
