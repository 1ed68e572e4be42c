//! The Parse stage: a module file's text into a `ModuleFile`, a tree of
//! spanned values. TOML goes through the `toml` crate's spanned document
//! API, JSON through `json`; both give the same `Node` tree.
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::error::{Error, ErrorKind};
use crate::json;
use crate::node::{Key, Node, SourceFile, Span, Value};

/// The spelling of a module file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Format {
    /// `n2d.toml`
    Toml,
    /// `n2d.json`
    Json,
    /// `n2d.nix`: evaluated to JSON by `nix-instantiate --eval --strict --json`
    /// (by the caller), then parsed as `Json`.
    Nix,
}

impl Format {
    /// The module file name of this format.
    pub fn file_name(self) -> &'static str {
        match self {
            Format::Toml => "n2d.toml",
            Format::Json => "n2d.json",
            Format::Nix => "n2d.nix",
        }
    }

    /// The format of a module file named `name`; `None` for any other name.
    pub fn of_file_name(name: &str) -> Option<Format> {
        [Format::Toml, Format::Json, Format::Nix]
            .into_iter()
            .find(|format| format.file_name() == name)
    }
}

/// A parsed module file: its source (for locations) and its value tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleFile {
    pub source: SourceFile,
    pub root: Node,
}

/// Parses a module file. `display_path` is how messages name the file
/// (`web/n2d.toml`). A `Format::Nix` text must be the JSON that
/// `nix-instantiate --eval --strict --json` printed for the file.
pub fn parse_module_file(
    display_path: &str,
    text: &str,
    format: Format,
) -> Result<ModuleFile, Error> {
    let source = SourceFile::new(display_path, text);
    let root = match format {
        Format::Toml => parse_toml(&source)?,
        Format::Json | Format::Nix => parse_json(&source)?,
    };
    if root.entries().is_none() {
        return Err(Error::new(
            ErrorKind::Syntax,
            format!("a module file must be a table, got {}", root.kind_name()),
        )
        .at(Some(source.locate(root.span)))
        .help("write an object with `services`, `modules` or `deployments`"));
    }
    Ok(ModuleFile { source, root })
}

fn parse_toml(source: &SourceFile) -> Result<Node, Error> {
    match DeTable::parse(&source.text) {
        Ok(table) => {
            let span = table.span();
            Ok(Node::new(
                Value::Table(convert_table(table.get_ref())),
                Span::new(span.start, span.end),
            ))
        }
        Err(err) => {
            let span = err.span().unwrap_or(0..0);
            let message = err.message().trim().trim_end_matches('.').to_string();
            let first = message.lines().next().unwrap_or("invalid TOML").to_string();
            Err(
                Error::new(ErrorKind::Syntax, format!("invalid TOML: {first}"))
                    .at(Some(source.locate(Span::new(span.start, span.end))))
                    .help("see https://toml.io for the syntax"),
            )
        }
    }
}

fn convert_table(table: &DeTable<'_>) -> Vec<(Key, Node)> {
    let mut entries: Vec<(Key, Node)> = table
        .iter()
        .map(|(k, v)| {
            let ks = k.span();
            (
                Key {
                    name: k.get_ref().to_string(),
                    span: Span::new(ks.start, ks.end),
                },
                convert_value(v),
            )
        })
        .collect();
    // The parser's map is sorted by key; source order is what users wrote
    // (and what a deployment's service order means).
    entries.sort_by_key(|(k, _)| k.span.start);
    entries
}

fn convert_value(value: &Spanned<DeValue<'_>>) -> Node {
    let span = value.span();
    let span = Span::new(span.start, span.end);
    let converted = match value.get_ref() {
        DeValue::String(s) => Value::Str(s.to_string()),
        DeValue::Integer(i) => match i64::from_str_radix(i.as_str(), i.radix()) {
            Ok(n) => Value::Int(n),
            // Beyond i64: kept as text rather than a lossy number.
            Err(_) => Value::Str(i.to_string()),
        },
        // `nan` and `inf` have no JSON form (parsed files are cached as
        // JSON), so they stay text; no option type takes a float anyway.
        DeValue::Float(f) => match f.as_str().replace('_', "").parse::<f64>() {
            Ok(x) if x.is_finite() => Value::Float(x),
            _ => Value::Str(f.as_str().to_string()),
        },
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Datetime(d) => Value::Str(d.to_string()),
        DeValue::Array(items) => Value::List(items.iter().map(convert_value).collect()),
        DeValue::Table(table) => Value::Table(convert_table(table)),
    };
    Node::new(converted, span)
}

fn parse_json(source: &SourceFile) -> Result<Node, Error> {
    json::parse(&source.text).map_err(|err| {
        Error::new(ErrorKind::Syntax, format!("invalid JSON: {}", err.message))
            .at(Some(source.locate(Span::new(err.offset, err.offset + 1))))
            .help("a module file in JSON has the same structure as n2d.toml: an object with `services`, `modules` or `deployments`")
    })
}
