//! Labels (`//apps/web:api`) name a service, module or deployment inside a
//! package; patterns (`//apps/...`) select many. Both follow Bazel: `//pkg`
//! means `//pkg:<last component>`, `:name` is relative to the current
//! package, `//...` is everything.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};

/// A service, module or deployment of a package.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Label {
    /// The package path from the workspace root (`apps/web`; `""` for the root).
    pub package: String,
    /// The name inside the package; `deployment/service` for a service that
    /// only exists in a deployment.
    pub name: String,
}

/// A set of labels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Pattern {
    /// One label.
    Label(Label),
    /// Everything in one package: `//pkg:all` or `//pkg:*`.
    Package(String),
    /// A package and every package below it: `//pkg/...`; `//...` when empty.
    Subtree(String),
}

impl Label {
    pub fn new(package: impl Into<String>, name: impl Into<String>) -> Self {
        Label {
            package: package.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for Label {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "//{}:{}", self.package, self.name)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Label(label) => label.fmt(f),
            Pattern::Package(package) => write!(f, "//{package}:all"),
            Pattern::Subtree(package) if package.is_empty() => f.write_str("//..."),
            Pattern::Subtree(package) => write!(f, "//{package}/..."),
        }
    }
}

impl Pattern {
    pub fn matches(&self, label: &Label) -> bool {
        match self {
            Pattern::Label(l) => l == label,
            Pattern::Package(p) => &label.package == p,
            Pattern::Subtree(p) => {
                p.is_empty()
                    || label.package == *p
                    || (label.package.starts_with(p.as_str())
                        && label.package.as_bytes().get(p.len()) == Some(&b'/'))
            }
        }
    }
}

/// Parses a label. `current_package` resolves `:name` and bare `name`
/// (the package of the module file or of the current folder).
pub fn parse_label(text: &str, current_package: Option<&str>) -> Result<Label, Error> {
    let bad = |why: &str, help: &str| {
        Error::new(ErrorKind::Label, format!("invalid label `{text}`: {why}"))
            .help(help.to_string())
    };
    let (package, name) = if let Some(rest) = text.strip_prefix("//") {
        match rest.split_once(':') {
            Some((package, name)) => (package.to_string(), name.to_string()),
            None => {
                let last = rest.rsplit('/').next().unwrap_or("");
                (rest.to_string(), last.to_string())
            }
        }
    } else if text.starts_with('/') {
        return Err(bad(
            "a label starts with `//` (the workspace root)",
            "write `//path/from/root:name`",
        ));
    } else {
        let name = text.strip_prefix(':').unwrap_or(text);
        if text.contains(':') && !text.starts_with(':') {
            return Err(bad(
                "a label is `//package:name` or `:name`",
                "start the label with `//` for a package path from the workspace root",
            ));
        }
        match current_package {
            Some(package) => (package.to_string(), name.to_string()),
            None => {
                return Err(bad(
                    "a relative label needs a current package",
                    "write the full label, `//package:name`",
                ))
            }
        }
    };
    check_package(&package)
        .map_err(|why| bad(&why, "package paths are folder names separated by `/`"))?;
    if name.is_empty() {
        return Err(bad("the name is empty", "write `//package:name`"));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c) && *c != '/') {
        return Err(bad(
            &format!("`{c}` is not allowed in a name"),
            "names use letters, digits, `_`, `-` and `.`",
        ));
    }
    if name
        .split('/')
        .any(|part| part.is_empty() || part == "." || part == "..")
    {
        return Err(bad(
            "the name has an empty or relative part",
            "write `//package:name`",
        ));
    }
    Ok(Label { package, name })
}

/// Parses a pattern: a label, `//pkg:all`, `//pkg/...` or `//...`.
pub fn parse_pattern(text: &str, current_package: Option<&str>) -> Result<Pattern, Error> {
    if text == "//..." || text == "..." {
        return Ok(Pattern::Subtree(String::new()));
    }
    if let Some(prefix) = text.strip_suffix("/...") {
        let package = match prefix.strip_prefix("//") {
            Some(package) => package.to_string(),
            None => join_package(current_package.unwrap_or(""), prefix),
        };
        check_package(&package).map_err(|why| {
            Error::new(ErrorKind::Label, format!("invalid pattern `{text}`: {why}"))
                .help("write `//path/...` for a package and everything below it")
        })?;
        return Ok(Pattern::Subtree(package));
    }
    for all in [":all", ":*"] {
        if let Some(prefix) = text.strip_suffix(all) {
            let package = match prefix.strip_prefix("//") {
                Some(package) => package.to_string(),
                None if prefix.is_empty() => current_package.unwrap_or("").to_string(),
                None => join_package(current_package.unwrap_or(""), prefix),
            };
            check_package(&package).map_err(|why| {
                Error::new(ErrorKind::Label, format!("invalid pattern `{text}`: {why}"))
                    .help("write `//path:all` for everything in one package")
            })?;
            return Ok(Pattern::Package(package));
        }
    }
    parse_label(text, current_package).map(Pattern::Label)
}

fn join_package(current: &str, relative: &str) -> String {
    if current.is_empty() {
        relative.to_string()
    } else {
        format!("{current}/{relative}")
    }
}

pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+')
}

fn check_package(package: &str) -> Result<(), String> {
    if package.is_empty() {
        return Ok(());
    }
    for part in package.split('/') {
        if part.is_empty() {
            return Err("the package path has an empty part".into());
        }
        if part == "." || part == ".." {
            return Err("the package path has a `.` or `..` part".into());
        }
        if let Some(c) = part.chars().find(|c| !is_name_char(*c)) {
            return Err(format!("`{c}` is not allowed in a package path"));
        }
    }
    Ok(())
}
