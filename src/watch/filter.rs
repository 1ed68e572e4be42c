//! Which paths the watch loop looks at.
//!
//! Two questions, asked of every path a file event names:
//!
//! - [`PathFilter::skips_dir`]: is a folder left unwatched? The output and
//!   cache folders and `.git` always are, and so are the folders workspace
//!   discovery skips (hidden ones, `target*`, `node_modules`, nested
//!   workspaces) and those the root `.gitignore` ignores.
//! - [`PathFilter::is_relevant`]: does a change there call for a build? A
//!   file the last build read (an *input*) always does, wherever it is,
//!   because discovery does not read `.gitignore` either and a missed edit
//!   would leave the services running stale definitions. Beyond the inputs,
//!   only a module file or workspace file appearing somewhere watched does
//!   (a new package).
//!
//! `.gitignore` support is deliberately small: the root file's plain
//! patterns, with `*` and `?` inside one path component, a leading `/`
//! anchoring to the root and a trailing `/` meaning a folder. Negations
//! (`!pattern`), `**`, character classes and nested `.gitignore` files are
//! not read; since ignoring only ever hides *new* module files (never an
//! input), the cost of a pattern read too broadly is that a new package in
//! that folder is picked up at the next build instead of at once.
use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use n2d_modules::Workspace;

/// File names whose appearance changes what the workspace holds.
const MODULE_FILES: [&str; 4] = ["n2d.toml", "n2d.json", "n2d.nix", "n2d.workspace.toml"];

pub struct PathFilter {
    root: PathBuf,
    /// Never watched and never relevant: n2d's own writes land here.
    internal: Vec<PathBuf>,
    gitignore: Vec<IgnorePattern>,
}

impl PathFilter {
    pub fn new(workspace: &Workspace) -> PathFilter {
        let root = workspace.root.clone();
        let internal = [
            workspace.settings.output_dir.as_str(),
            workspace.settings.cache_dir.as_str(),
            ".git",
        ]
        .iter()
        .map(|dir| root.join(dir.trim_matches('/')))
        .collect();
        // A missing or unreadable .gitignore ignores nothing.
        let gitignore = std::fs::read_to_string(root.join(".gitignore"))
            .map(|text| parse_gitignore(&text))
            .unwrap_or_default();
        PathFilter {
            root,
            internal,
            gitignore,
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Under the output folder, the cache folder or `.git`.
    pub fn is_internal(&self, path: &Path) -> bool {
        self.internal.iter().any(|dir| path.starts_with(dir))
    }

    /// Whether the folder `dir` (inside the root) is left out of the
    /// recursive watch of the workspace tree.
    pub fn skips_dir(&self, dir: &Path) -> bool {
        if self.is_internal(dir) {
            return true;
        }
        let Ok(relative) = dir.strip_prefix(&self.root) else {
            return true;
        };
        if relative.as_os_str().is_empty() {
            return false;
        }
        let skipped_by_discovery = relative.components().any(|c| match c {
            Component::Normal(name) => {
                let name = name.to_string_lossy();
                name.starts_with('.') || name.starts_with("target") || name == "node_modules"
            }
            _ => false,
        }) || dir.join(n2d_modules::workspace::WORKSPACE_FILE).is_file();
        skipped_by_discovery || self.is_gitignored(relative)
    }

    /// Whether a change to `path` calls for a build, given the inputs of
    /// the last build (see the module docs).
    pub fn is_relevant(&self, path: &Path, inputs: &BTreeSet<PathBuf>) -> bool {
        if self.is_internal(path) {
            return false;
        }
        if touches_input(path, inputs) {
            return true;
        }
        let Ok(relative) = path.strip_prefix(&self.root) else {
            return false;
        };
        let is_module_file = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|name| MODULE_FILES.contains(&name));
        if !is_module_file || self.is_gitignored(relative) {
            return false;
        }
        // The nearest folder must be one the tree watch covers, or the file
        // belongs to a nested workspace or a skipped folder.
        match path.parent() {
            Some(parent) => parent == self.root || !self.skips_dir(parent),
            None => false,
        }
    }

    fn is_gitignored(&self, relative: &Path) -> bool {
        let components: Vec<String> = relative
            .components()
            .filter_map(|c| match c {
                Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        self.gitignore.iter().any(|p| p.matches(&components))
    }
}

/// `path` is an input, a folder holding one (a folder moved or removed
/// takes its inputs with it), or inside one (a `watch` path that is a
/// folder).
fn touches_input(path: &Path, inputs: &BTreeSet<PathBuf>) -> bool {
    if inputs.contains(path) {
        return true;
    }
    // Inputs under `path` sort right after it.
    if inputs
        .range(path.to_path_buf()..)
        .next()
        .is_some_and(|next| next.starts_with(path))
    {
        return true;
    }
    path.ancestors().skip(1).any(|a| inputs.contains(a))
}

/// One line of `.gitignore`, as far as this reading understands it.
#[derive(Debug, PartialEq, Eq)]
struct IgnorePattern {
    /// Matches from the root only (the pattern held a `/` before its end).
    anchored: bool,
    /// Invariant: never empty; no component is `**`.
    components: Vec<String>,
}

fn parse_gitignore(text: &str) -> Vec<IgnorePattern> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_end();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                return None;
            }
            if line.contains("**") || line.contains('[') || line.contains('\\') {
                return None;
            }
            // A trailing `/` only restricts the pattern to folders; matching
            // a file of that name too is harmless here.
            let body = line.trim_end_matches('/');
            let anchored = body.contains('/');
            let components: Vec<String> = body
                .split('/')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            (!components.is_empty()).then_some(IgnorePattern {
                anchored,
                components,
            })
        })
        .collect()
}

impl IgnorePattern {
    /// Whether the path (relative to the root, split into components) or
    /// one of its ancestors matches.
    fn matches(&self, path: &[String]) -> bool {
        if self.anchored {
            self.components.len() <= path.len()
                && self
                    .components
                    .iter()
                    .zip(path)
                    .all(|(pattern, name)| glob_matches(pattern, name))
        } else {
            // No slash: matches a component at any depth.
            let pattern = &self.components[0];
            path.iter().any(|name| glob_matches(pattern, name))
        }
    }
}

/// `*` (any run of characters) and `?` (one character) within a component.
fn glob_matches(pattern: &str, name: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let name: Vec<char> = name.chars().collect();
    // Classic two-pointer wildcard matching with one backtrack point.
    let (mut p, mut n) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == '?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == '*' {
            star = Some((p, n));
            p += 1;
        } else if let Some((star_p, star_n)) = star {
            p = star_p + 1;
            n = star_n + 1;
            star = Some((star_p, star_n + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ignored(gitignore: &str, path: &str) -> bool {
        let components: Vec<String> = path.split('/').map(str::to_string).collect();
        parse_gitignore(gitignore)
            .iter()
            .any(|p| p.matches(&components))
    }

    #[test]
    fn gitignore_patterns() {
        let cases = [
            ("build/", "build/n2d.toml", true),
            ("build/", "apps/build/n2d.toml", true),
            ("/build", "apps/build/n2d.toml", false),
            ("/build", "build/x/n2d.toml", true),
            ("apps/tmp", "apps/tmp/n2d.toml", true),
            ("apps/tmp", "x/apps/tmp/n2d.toml", false),
            ("*.bak", "apps/n2d.toml.bak", true),
            ("*.bak", "apps/n2d.toml", false),
            ("gen-?", "gen-1/n2d.toml", true),
            ("gen-?", "gen-12/n2d.toml", false),
            ("a*b*c", "aXXbYc", true),
            ("a*b*c", "aXXbY", false),
            ("# build", "build/n2d.toml", false),
            ("!keep", "keep/n2d.toml", false),
            ("**/deep", "deep/n2d.toml", false),
        ];
        for (pattern, path, expected) in cases {
            assert_eq!(
                ignored(pattern, path),
                expected,
                "pattern {pattern:?} on {path:?}"
            );
        }
    }

    #[test]
    fn inputs_match_themselves_their_folders_and_their_contents() {
        let inputs: BTreeSet<PathBuf> = ["/w/app/n2d.toml", "/w/app/templates"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let cases = [
            ("/w/app/n2d.toml", true),
            ("/w/app", true),
            ("/w", true),
            ("/w/app/templates/index.html", true),
            ("/w/app/n2d.toml.swp", false),
            ("/w/app/other.txt", false),
            ("/w/ap", false),
        ];
        for (path, expected) in cases {
            assert_eq!(touches_input(Path::new(path), &inputs), expected, "{path}");
        }
    }
}
