//! Option declarations: the core set (`options/core.toml`), what targets add
//! with `OptionSet::extend`, and what users declare under `options` in a
//! module. All three use one syntax, parsed here:
//!
//! ```toml
//! http.port = { type = "port", default = 8080, description = "Listen port", example = 80 }
//! ```
//!
//! A table with a string `type` is a declaration; any other table is a group
//! of options. The option reference (`n2d options`) is generated from the
//! same declarations.
use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::node::{Node, SourceFile, Value};
use crate::parse::{parse_module_file, Format};
use crate::types::{parse_type, Type};

/// The display path of the core declarations.
pub const CORE_OPTIONS_PATH: &str = "modules/options/core.toml";
/// The core option declarations, as [`OptionSet::core`] reads them.
pub const CORE_OPTIONS: &str = include_str!("../options/core.toml");

/// A tree of option declarations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptionTree {
    pub entries: BTreeMap<String, OptionNode>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum OptionNode {
    /// Options grouped under a name (`readiness.http` is not a declaration
    /// of its own when only `readiness.http.port` is).
    Group(OptionTree),
    Leaf(Box<Decl>),
}

/// One declared option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Decl {
    pub ty: Type,
    /// Spans point into `declared_in`.
    pub default: Option<Node>,
    pub description: Option<String>,
    pub example: Option<serde_json::Value>,
    /// The file that declares the option, as users see it.
    pub declared_in: std::sync::Arc<str>,
    /// Line of the declaration.
    pub line: u32,
    /// Line of the default value (the provenance of defaulted values).
    pub default_line: u32,
    /// The default merged on its own (derived from the fields above).
    pub merged_default: Option<crate::merge::MergedDefault>,
}

/// Every option a service may define: the core set plus target groups.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OptionSet {
    pub tree: OptionTree,
}

impl OptionSet {
    /// The core options of DESIGN.md §5.
    pub fn core() -> OptionSet {
        static CORE: OnceLock<OptionSet> = OnceLock::new();
        CORE.get_or_init(|| {
            let mut set = OptionSet {
                tree: OptionTree::default(),
            };
            set.extend(CORE_OPTIONS_PATH, CORE_OPTIONS)
                .unwrap_or_else(|err| {
                    panic!("the core option declarations are invalid (a bug):\n{err}")
                });
            set
        })
        .clone()
    }

    /// Adds declarations written in TOML (as `options/core.toml`); `origin`
    /// names them in messages and in the reference (e.g. `rules/compose`).
    pub fn extend(&mut self, origin: &str, declarations_toml: &str) -> Result<(), Error> {
        let file = parse_module_file(origin, declarations_toml, Format::Toml)?;
        let tree = parse_declarations(&file.root, &file.source, "")?;
        merge_trees(&mut self.tree, tree, "")
    }

    /// The option reference in Markdown.
    pub fn reference_markdown(&self) -> String {
        let mut out = String::from(REFERENCE_HEADER);
        for (path, decl) in flatten(&self.tree) {
            out.push_str(&format!("\n### `{path}`\n\n"));
            if let Some(description) = &decl.description {
                out.push_str(description.trim());
                out.push_str("\n\n");
            }
            out.push_str(&format!("- type: `{}`\n", decl.ty));
            match &decl.default {
                Some(default) => out.push_str(&format!("- default: `{}`\n", default.to_json())),
                None => out.push_str("- default: none (must be defined)\n"),
            }
            if let Some(example) = &decl.example {
                out.push_str(&format!("- example: `{example}`\n"));
            }
            out.push_str(&format!(
                "- declared in: `{}:{}`\n",
                decl.declared_in, decl.line
            ));
        }
        out
    }

    /// The option reference as JSON: option path → type, default, description,
    /// example, declared_in.
    pub fn reference_json(&self) -> serde_json::Value {
        let options: serde_json::Map<String, serde_json::Value> = flatten(&self.tree)
            .into_iter()
            .map(|(path, decl)| {
                (
                    path,
                    serde_json::json!({
                        "type": decl.ty.to_string(),
                        "default": decl.default.as_ref().map(Node::to_json),
                        "has_default": decl.default.is_some(),
                        "description": decl.description,
                        "example": decl.example,
                        "declared_in": format!("{}:{}", decl.declared_in, decl.line),
                    }),
                )
            })
            .collect();
        serde_json::json!({ "options": options })
    }
}

/// Parses a table of declarations (a module's `options`, or a declaration
/// file). `prefix` is the option path above it, for messages.
pub fn parse_declarations(
    node: &Node,
    source: &SourceFile,
    prefix: &str,
) -> Result<OptionTree, Error> {
    let Some(entries) = node.entries() else {
        return Err(Error::new(
            ErrorKind::Declaration,
            format!(
                "`options` must be a table of declarations, got {}",
                node.kind_name()
            ),
        )
        .at(Some(source.locate(node.span)))
        .help("write e.g. options.port = { type = \"port\", default = 8080 }"));
    };
    let mut tree = OptionTree::default();
    for (key, value) in entries {
        let path = join(prefix, &key.name);
        if !is_option_name(&key.name) {
            return Err(Error::new(
                ErrorKind::Declaration,
                format!("`{}` is not a valid option name", key.name),
            )
            .at(Some(source.locate(key.span)))
            .help("option names use letters, digits, `_` and `-`"));
        }
        let option = if value.get("type").and_then(Node::as_str).is_some() {
            OptionNode::Leaf(Box::new(parse_declaration(value, source, &path)?))
        } else if value.entries().is_some() {
            OptionNode::Group(parse_declarations(value, source, &path)?)
        } else {
            return Err(Error::new(
                ErrorKind::Declaration,
                format!("the declaration of `{path}` must be a table with a `type`"),
            )
            .at(Some(source.locate(value.span)))
            .help(format!(
                "write e.g. {} = {{ type = \"str\", default = \"\" }}",
                key.name
            )));
        };
        tree.entries.insert(key.name.clone(), option);
    }
    Ok(tree)
}

fn parse_declaration(node: &Node, source: &SourceFile, path: &str) -> Result<Decl, Error> {
    let mut ty_text = None;
    let mut decl = Decl {
        ty: Type::Str,
        default: None,
        description: None,
        example: None,
        declared_in: source.path.clone(),
        line: source.line_column(node.span.start).0,
        default_line: 0,
        merged_default: None,
    };
    let mut sub_options = None;
    for (key, value) in node.entries().unwrap_or_default() {
        match key.name.as_str() {
            "type" => ty_text = Some((value.as_str().unwrap_or_default().to_string(), value.span)),
            "default" => {
                decl.default_line = source.line_column(value.span.start).0;
                decl.default = Some(value.clone());
            }
            "description" => match value.as_str() {
                Some(text) => decl.description = Some(text.to_string()),
                None => {
                    return Err(Error::new(
                        ErrorKind::Declaration,
                        format!("the description of `{path}` must be a string"),
                    )
                    .at(Some(source.locate(value.span)))
                    .help("write description = \"...\""))
                }
            },
            "example" => decl.example = Some(value.to_json()),
            "options" => {
                sub_options = Some(parse_declarations(
                    value,
                    source,
                    &format!("{path}.<name>"),
                )?)
            }
            other => {
                let known = ["type", "default", "description", "example", "options"];
                let mut err = Error::new(
                    ErrorKind::Declaration,
                    format!("unknown key `{other}` in the declaration of `{path}`"),
                )
                .at(Some(source.locate(key.span)));
                err = match did_you_mean(other, known) {
                    Some(near) => err.help(format!("did you mean `{near}`?")),
                    None => err.help("a declaration has `type`, `default`, `description`, `example` and `options`"),
                };
                return Err(err);
            }
        }
    }
    let (text, span) = ty_text.unwrap_or_default();
    let mut ty = parse_type(&text).map_err(|why| {
        Error::new(
            ErrorKind::Declaration,
            format!("invalid type of `{path}`: {why}"),
        )
        .at(Some(source.locate(span)))
        .help("see `n2d options` for the type grammar, e.g. type = \"attrsOf (listOf str)\"")
    })?;
    let attached = attach_options(&mut ty, sub_options.as_ref());
    match (attached, sub_options.is_some()) {
        (true, false) => {
            return Err(Error::new(
                ErrorKind::Declaration,
                format!("`{path}` is a submodule but declares no `options`"),
            )
            .at(Some(source.locate(span)))
            .help("add options = { name = { type = \"str\" } }, or use the type `attrs` for free-form tables"))
        }
        (false, true) => {
            return Err(Error::new(
                ErrorKind::Declaration,
                format!("`{path}` declares `options` but its type has no `submodule`"),
            )
            .at(Some(source.locate(span)))
            .help("use a type such as \"submodule\" or \"attrsOf submodule\""))
        }
        _ => {}
    }
    decl.ty = ty;
    if decl.default.is_none() {
        // TOML has no null: types with an obvious empty value default to it,
        // so that such options need no `default` to be optional.
        decl.default = implicit_default(&decl.ty).map(|value| Node::new(value, node.span));
        decl.default_line = decl.line;
    }
    if let Some(default) = &decl.default {
        if !decl.ty.matches(default) {
            return Err(Error::new(
                ErrorKind::Declaration,
                format!(
                    "the default of `{path}` is {}, but the type expects {}",
                    default.kind_name(),
                    decl.ty.expectation()
                ),
            )
            .at(Some(source.locate(default.span)))
            .help(decl.ty.hint("default")));
        }
    }
    decl.merged_default = crate::merge::merge_default(&decl);
    Ok(decl)
}

fn implicit_default(ty: &Type) -> Option<Value> {
    match ty {
        Type::NullOr(_) => Some(Value::Null),
        Type::ListOf(_) => Some(Value::List(Vec::new())),
        Type::AttrsOf(_) | Type::Attrs => Some(Value::Table(Vec::new())),
        _ => None,
    }
}

/// Puts the declaration's `options` into every `submodule` of its type;
/// says whether there was one.
fn attach_options(ty: &mut Type, options: Option<&OptionTree>) -> bool {
    match ty {
        Type::Submodule(tree) => {
            if let Some(options) = options {
                *tree = options.clone();
            }
            true
        }
        Type::ListOf(inner) | Type::AttrsOf(inner) | Type::NullOr(inner) => {
            attach_options(inner, options)
        }
        // Every submodule gets the options, so no short-circuiting `any`.
        Type::OneOf(types) => {
            types
                .iter_mut()
                .map(|t| attach_options(t, options))
                .filter(|found| *found)
                .count()
                > 0
        }
        Type::Record(fields) => {
            fields
                .iter_mut()
                .map(|f| attach_options(&mut f.ty, options))
                .filter(|found| *found)
                .count()
                > 0
        }
        _ => false,
    }
}

/// Adds `extra` to `tree`; an option declared twice is an error.
pub(crate) fn merge_trees(
    tree: &mut OptionTree,
    extra: OptionTree,
    prefix: &str,
) -> Result<(), Error> {
    for (name, node) in extra.entries {
        let path = join(prefix, &name);
        match (tree.entries.get_mut(&name), node) {
            (None, node) => {
                tree.entries.insert(name, node);
            }
            (Some(OptionNode::Group(existing)), OptionNode::Group(more)) => {
                merge_trees(existing, more, &path)?
            }
            (Some(existing), new) => {
                let place = |n: &OptionNode| match n {
                    OptionNode::Leaf(d) => format!("{}:{}", d.declared_in, d.line),
                    OptionNode::Group(_) => "a group of options".to_string(),
                };
                return Err(Error::new(
                    ErrorKind::Duplicate,
                    format!(
                        "the option `{path}` is declared twice: in {} and in {}",
                        place(existing),
                        place(&new)
                    ),
                )
                .help("rename one of the options, or declare it in one module and import that"));
            }
        }
    }
    Ok(())
}

/// Every declaration with its display path (`volumes.<name>.path`).
pub fn flatten(tree: &OptionTree) -> Vec<(String, &Decl)> {
    let mut out = Vec::new();
    flatten_into(tree, "", &mut out);
    out
}

fn flatten_into<'a>(tree: &'a OptionTree, prefix: &str, out: &mut Vec<(String, &'a Decl)>) {
    for (name, node) in &tree.entries {
        let path = join(prefix, name);
        match node {
            OptionNode::Group(group) => flatten_into(group, &path, out),
            OptionNode::Leaf(decl) => {
                out.push((path.clone(), decl));
                flatten_type(&decl.ty, &path, out);
            }
        }
    }
}

fn flatten_type<'a>(ty: &'a Type, path: &str, out: &mut Vec<(String, &'a Decl)>) {
    match ty {
        Type::Submodule(tree) => flatten_into(tree, path, out),
        Type::AttrsOf(inner) => flatten_type(inner, &format!("{path}.<name>"), out),
        Type::ListOf(inner) => flatten_type(inner, &format!("{path}.*"), out),
        Type::NullOr(inner) => flatten_type(inner, path, out),
        _ => {}
    }
}

pub(crate) fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

pub(crate) fn is_option_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

const REFERENCE_HEADER: &str = r#"# n2d options

Every option a service (or a module) may define. Definitions merge as in the
NixOS module system: lists concatenate, tables merge by key, and two
different values for one single-valued option at the same priority are an
error.

## Priorities

| spelling | priority |
|---|---|
| option default | 1500 |
| `{ mkDefault = v }` | 1000 |
| `v` (plain) | 100 |
| `{ mkForce = v }` | 50 |
| `{ mkOverride = { priority = N, value = v } }` | N |

The lowest number wins. Lists also take `{ mkBefore = [..] }` (order 500),
`{ mkAfter = [..] }` (order 1500) and `{ mkOrder = { priority = N, value = [..] } }`;
plain lists have order 1000. `{ mkIf = { condition = b, content = v } }` and
`{ mkMerge = [v1, v2] }` work too, and so do the JSON forms that nixpkgs
produces (`{"_type": "override", "priority": N, "content": v}`, `"order"`,
`"merge"` with `"contents"`, `"if"` with `"condition"`).

## Types

```text
type   := atom | "listOf" type | "attrsOf" type | "nullOr" type
        | "oneOf" "[" type* "]" | "enum" "[" word* "]"
        | "{" field ("," field)* "}" | "(" type ")"
field  := name "?"? ":" type          (a closed record; `?` marks optional fields)
atom   := str | lines | int | bool | port | path | source | duration
        | quantity | attrs | submodule
```

- `lines`: text; several definitions are joined with newlines.
- `port`: 1 to 65535. `duration`: `"10s"`, `"1m30s"`, `"250ms"`.
  `quantity`: `"256Mi"`, `"500m"`, `"2"`.
- `source`: a file of the workspace, written relative to the module file's
  folder; resolved relative to the workspace root.
- `attrs`: any table, merged recursively.
- `submodule`: a table of options, declared in the declaration's `options`.

An option without a default that nothing defines is an error, except for
`nullOr` (default null), `listOf` (default empty), `attrsOf` and `attrs`
(default empty) and `submodule` (its options' own defaults).

Any string may hold `${{ ref }}`: `self.<option path>`, or
`<label>.<option path>` of a service of the same deployment, and the computed
`<label>.host`, `<label>.address.<port name>` and `self.files."<name>".path`.
`$${{` is a literal `${{`.

## Options
"#;
