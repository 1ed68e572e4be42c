//! Evaluation without the engine, for the commands that read the workspace
//! but build nothing (`n2d show`, `n2d query`): parse and evaluate every
//! package in parallel, straight from disk.
use std::collections::BTreeMap;

use n2d_modules::{Format, OptionSet, Universe, Workspace};
use rayon::prelude::*;

/// The workspace's universe, or every package's error message.
pub fn evaluate_workspace(
    workspace: &Workspace,
    options: OptionSet,
) -> Result<Universe, Vec<String>> {
    let results: Vec<Result<(String, n2d_modules::Package), String>> = workspace
        .packages
        .par_iter()
        .map(|package| {
            let file = package.display_path();
            let path = workspace.root.join(&package.path);
            let parsed = if package.format == Format::Nix {
                let cache_dir = workspace.root.join(&workspace.settings.cache_dir);
                let json = crate::nix::install_lib(&cache_dir)
                    .and_then(|lib| crate::nix::evaluate_module(&path, &lib))
                    .map_err(|e| format!("error: {file}: {e}"))?;
                let display = format!("{file} (as evaluated by Nix)");
                n2d_modules::parse_module_file(&display, &json, Format::Nix)
            } else {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("error: cannot read `{file}`: {e}"))?;
                n2d_modules::parse_module_file(&file, &text, package.format)
            }
            .map_err(|e| e.to_string())?;
            let evaluated =
                n2d_modules::eval_package(&package.package, &parsed).map_err(|e| e.to_string())?;
            Ok((package.package.clone(), evaluated))
        })
        .collect();
    let mut packages = BTreeMap::new();
    let mut errors = Vec::new();
    for result in results {
        match result {
            Ok((name, package)) => {
                packages.insert(name, package);
            }
            Err(message) => errors.push(message),
        }
    }
    if errors.is_empty() {
        Ok(Universe::new(packages, options, &workspace.settings))
    } else {
        Err(errors)
    }
}
