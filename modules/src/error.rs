//! The one error type of the module system.
//!
//! `Error`'s `Display` is the whole user-facing message, rustc style: a first
//! line saying what is wrong, the file, line and column, the offending source
//! line with a caret under the span, notes, and a `help:` line saying how to
//! fix it. `ErrorKind` lets callers (and tests) tell errors apart without
//! matching on text.
use serde::{Deserialize, Serialize};

/// A user-facing error of the module system (boxed: errors are rare and
/// `Result`s are everywhere); its fields are those of `Diagnostic`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{}", self.render())]
pub struct Error(Box<Diagnostic>);

/// The content of an `Error`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    pub kind: ErrorKind,
    /// The first line, without the `error: ` prefix; may continue on further
    /// lines (the definition list of a conflict).
    pub message: String,
    pub location: Option<Location>,
    pub notes: Vec<String>,
    pub help: Option<String>,
}

/// What went wrong, for callers that react to the kind of an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The file is not valid TOML or JSON.
    Syntax,
    /// A key that is not a declared option (or not a known key of the file).
    UnknownOption,
    /// A value of the wrong type, or an invalid value of the right type.
    Type,
    /// Different values at the same priority.
    Conflict,
    /// A declared option without a default that nothing defines.
    Undefined,
    /// A malformed or unknown label or pattern.
    Label,
    ImportCycle,
    InterpolationCycle,
    /// A reference that cannot be followed (outside the deployment, unknown path).
    Reference,
    /// Two things with the same name.
    Duplicate,
    /// A path that escapes the workspace or the output folder.
    Path,
    /// A malformed option declaration or type expression.
    Declaration,
    /// The workspace cannot be found or read.
    Workspace,
}

/// Where in a file an error is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// The file as users see it, relative to the workspace root.
    pub file: String,
    /// 1-based.
    pub line: u32,
    /// 1-based, in characters.
    pub column: u32,
    /// Characters to underline (at least 1).
    pub width: u32,
    /// The whole source line, for the snippet; empty when unknown.
    pub line_text: String,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Diagnostic {
            kind,
            message: message.into(),
            location: None,
            notes: Vec::new(),
            help: None,
        }))
    }

    pub fn at(mut self, location: Option<Location>) -> Self {
        self.0.location = location;
        self
    }

    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.0.notes.push(note.into());
        self
    }

    /// The full message, as `Display` prints it.
    pub fn render(&self) -> String {
        let mut out = format!("error: {}\n", self.message);
        let gutter = self
            .location
            .as_ref()
            .map(|l| l.line.to_string().len())
            .unwrap_or(1);
        let pad = " ".repeat(gutter);
        if let Some(loc) = &self.location {
            out.push_str(&format!(
                "{pad}--> {}:{}:{}\n",
                loc.file, loc.line, loc.column
            ));
            if !loc.line_text.is_empty() {
                let caret_pad: String = loc
                    .line_text
                    .chars()
                    .take(loc.column.saturating_sub(1) as usize)
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                out.push_str(&format!("{pad} |\n"));
                out.push_str(&format!("{} | {}\n", loc.line, loc.line_text));
                out.push_str(&format!(
                    "{pad} | {caret_pad}{}\n",
                    "^".repeat(loc.width.max(1) as usize)
                ));
            }
        }
        for note in &self.notes {
            out.push_str(&format!("{pad} = note: {note}\n"));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("{pad} = help: {help}\n"));
        }
        out.truncate(out.trim_end().len());
        out
    }
}

impl std::ops::Deref for Error {
    type Target = Diagnostic;
    fn deref(&self) -> &Diagnostic {
        &self.0
    }
}

/// The nearest of `candidates` to `wanted`, when one is close enough to be
/// a likely typo.
pub fn did_you_mean<'a>(
    wanted: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let mut best: Option<(f64, &str)> = None;
    for candidate in candidates {
        let score = strsim::normalized_damerau_levenshtein(wanted, candidate);
        let close = score >= 0.5 || strsim::jaro_winkler(wanted, candidate) >= 0.85;
        if close && best.is_none_or(|(b, _)| score > b) {
            best = Some((score, candidate));
        }
    }
    best.map(|(_, c)| c)
}
