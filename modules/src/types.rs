//! Option types and their expression grammar.
//!
//! A declaration's `type` is a small expression (`"attrsOf (listOf str)"`):
//!
//! ```text
//! type   := atom | "listOf" type | "attrsOf" type | "nullOr" type
//!         | "oneOf" "[" type* "]" | "enum" "[" word* "]"
//!         | "{" field ("," field)* "}" | "(" type ")"
//! field  := name "?"? ":" type          (a closed record; `?` = optional)
//! atom   := str | lines | int | bool | port | path | source | duration
//!         | quantity | attrs | submodule
//! ```
//!
//! `submodule` takes its options from the declaration's `options` table.
//! How values of each type merge lives in `merge`; this module parses types
//! and checks single values.
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::node::{Node, Value};
use crate::options::OptionTree;

/// The type of an option.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Type {
    Str,
    /// Text; several definitions join with newlines.
    Lines,
    Int,
    Bool,
    /// 1–65535.
    Port,
    /// A path on the machine (or in the container) the service runs on.
    Path,
    /// A file of the workspace, written relative to the module file's folder
    /// and resolved relative to the workspace root.
    Source,
    /// `"10s"`, `"1m30s"`, `"250ms"`.
    Duration,
    /// `"256Mi"`, `"500m"`, `"2"` (an int is taken as its text).
    Quantity,
    /// Free-form attribute set (any JSON), merged recursively.
    Attrs,
    Enum(Vec<String>),
    ListOf(Box<Type>),
    AttrsOf(Box<Type>),
    NullOr(Box<Type>),
    OneOf(Vec<Type>),
    Submodule(OptionTree),
    Record(Vec<Field>),
}

/// A field of a record type.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub name: String,
    pub optional: bool,
    pub ty: Type,
}

/// Parses a type expression. `Submodule` comes back with empty options; the
/// declaration attaches its `options`.
pub fn parse_type(text: &str) -> Result<Type, String> {
    let tokens = tokenize(text)?;
    let mut parser = TypeParser { tokens, pos: 0 };
    let ty = parser.ty(0)?;
    if let Some(token) = parser.tokens.get(parser.pos) {
        return Err(format!("unexpected `{token}` after the type"));
    }
    Ok(ty)
}

impl Type {
    /// How messages name a value of this type: "an int", "a port number".
    pub fn expectation(&self) -> String {
        match self {
            Type::Str => "a string".into(),
            Type::Lines => "a string (lines)".into(),
            Type::Int => "an int".into(),
            Type::Bool => "a bool".into(),
            Type::Port => "a port number (1-65535)".into(),
            Type::Path => "a path".into(),
            Type::Source => "a path to a file of the workspace".into(),
            Type::Duration => "a duration".into(),
            Type::Quantity => "a quantity".into(),
            Type::Attrs => "a table".into(),
            Type::Enum(values) => format!("one of {}", quoted_list(values)),
            Type::ListOf(inner) => format!("a list of {}", plural(inner)),
            Type::AttrsOf(inner) => format!("a table of {}", plural(inner)),
            Type::NullOr(inner) => format!("null or {}", inner.expectation()),
            Type::OneOf(types) => format!(
                "one of: {}",
                types
                    .iter()
                    .map(Type::expectation)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            Type::Submodule(_) => "a table of options".into(),
            Type::Record(fields) => format!(
                "a table with {}",
                fields
                    .iter()
                    .map(|f| format!("`{}`", f.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }

    /// A one-line fix for a wrong value, given the option's last name.
    pub fn hint(&self, name: &str) -> String {
        match self {
            Type::Str | Type::Lines => format!("write text in quotes, e.g. {name} = \"...\""),
            Type::Int => format!("write a whole number, e.g. {name} = 3"),
            Type::Bool => format!("write true or false, e.g. {name} = true"),
            Type::Port => format!("write a port number between 1 and 65535, e.g. {name} = 8080"),
            Type::Path | Type::Source => {
                format!("write a path in quotes, e.g. {name} = \"conf/app.conf\"")
            }
            Type::Duration => format!(
                "write a duration such as \"10s\", \"1m30s\" or \"250ms\", e.g. {name} = \"10s\""
            ),
            Type::Quantity => format!(
                "write a quantity such as \"256Mi\", \"500m\" or \"2\", e.g. {name} = \"256Mi\""
            ),
            Type::Enum(values) => format!("write one of {}", quoted_list(values)),
            Type::ListOf(_) => format!("write a list, e.g. {name} = [...]"),
            Type::AttrsOf(_) | Type::Attrs | Type::Submodule(_) | Type::Record(_) => {
                format!("write a table, e.g. {name} = {{ ... }}")
            }
            Type::NullOr(inner) => inner.hint(name),
            Type::OneOf(types) => types.first().map(|t| t.hint(name)).unwrap_or_default(),
        }
    }

    /// Whether a whole definition is a single value of this type (used to
    /// pick the member of a `oneOf`). Interpolated strings match any type
    /// they may turn into.
    pub fn matches(&self, node: &Node) -> bool {
        if let Value::Str(s) = &node.value {
            if s.contains("${{") && !matches!(self, Type::Record(_)) {
                return true;
            }
        }
        match self {
            Type::ListOf(inner) => match &node.value {
                Value::List(items) => items.iter().all(|i| inner.matches(i)),
                _ => false,
            },
            Type::AttrsOf(inner) => match &node.value {
                Value::Table(entries) => entries.iter().all(|(_, v)| inner.matches(v)),
                _ => false,
            },
            Type::NullOr(inner) => node.value == Value::Null || inner.matches(node),
            Type::OneOf(types) => types.iter().any(|t| t.matches(node)),
            Type::Submodule(_) | Type::Attrs => matches!(node.value, Value::Table(_)),
            Type::Record(fields) => match &node.value {
                Value::Table(entries) => {
                    entries
                        .iter()
                        .all(|(k, v)| fields.iter().any(|f| f.name == k.name && f.ty.matches(v)))
                        && fields
                            .iter()
                            .all(|f| f.optional || entries.iter().any(|(k, _)| k.name == f.name))
                }
                _ => false,
            },
            scalar => check_scalar(scalar, node).is_ok(),
        }
    }
}

/// Checks a value of a scalar type and gives its canonical JSON. `Err` holds
/// what is wrong when the value is of the right kind but invalid (`None`
/// for a plain kind mismatch).
pub fn check_scalar(ty: &Type, node: &Node) -> Result<serde_json::Value, Option<String>> {
    match (ty, &node.value) {
        (Type::Str | Type::Lines, Value::Str(s)) => Ok(s.clone().into()),
        (Type::Path | Type::Source, Value::Str(s)) => {
            if s.is_empty() {
                Err(Some("the path is empty".into()))
            } else {
                Ok(s.clone().into())
            }
        }
        (Type::Int, Value::Int(i)) => Ok((*i).into()),
        (Type::Bool, Value::Bool(b)) => Ok((*b).into()),
        (Type::Port, Value::Int(i)) => {
            if (1..=65535).contains(i) {
                Ok((*i).into())
            } else {
                Err(Some(format!("{i} is not a valid port (1-65535)")))
            }
        }
        (Type::Duration, Value::Str(s)) => match crate::service::parse_duration(s) {
            Some(_) => Ok(s.clone().into()),
            None => Err(Some(format!("`{s}` is not a duration"))),
        },
        (Type::Quantity, Value::Int(i)) if *i >= 0 => Ok(i.to_string().into()),
        (Type::Quantity, Value::Str(s)) => {
            if is_quantity(s) {
                Ok(s.clone().into())
            } else {
                Err(Some(format!("`{s}` is not a quantity")))
            }
        }
        (Type::Enum(values), Value::Str(s)) => {
            if values.iter().any(|v| v == s) {
                Ok(s.clone().into())
            } else {
                Err(Some(format!("`{s}` is not one of {}", quoted_list(values))))
            }
        }
        _ => Err(None),
    }
}

/// Whether a type holds a single value (no list, table or submodule).
pub fn is_scalar(ty: &Type) -> bool {
    matches!(
        ty,
        Type::Str
            | Type::Lines
            | Type::Int
            | Type::Bool
            | Type::Port
            | Type::Path
            | Type::Source
            | Type::Duration
            | Type::Quantity
            | Type::Enum(_)
    )
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn arg(f: &mut fmt::Formatter<'_>, ty: &Type) -> fmt::Result {
            match ty {
                Type::ListOf(_)
                | Type::AttrsOf(_)
                | Type::NullOr(_)
                | Type::OneOf(_)
                | Type::Enum(_) => {
                    write!(f, "({ty})")
                }
                _ => write!(f, "{ty}"),
            }
        }
        match self {
            Type::Str => f.write_str("str"),
            Type::Lines => f.write_str("lines"),
            Type::Int => f.write_str("int"),
            Type::Bool => f.write_str("bool"),
            Type::Port => f.write_str("port"),
            Type::Path => f.write_str("path"),
            Type::Source => f.write_str("source"),
            Type::Duration => f.write_str("duration"),
            Type::Quantity => f.write_str("quantity"),
            Type::Attrs => f.write_str("attrs"),
            Type::Submodule(_) => f.write_str("submodule"),
            Type::Enum(values) => write!(f, "enum [{}]", values.join(" ")),
            Type::ListOf(inner) => {
                f.write_str("listOf ")?;
                arg(f, inner)
            }
            Type::AttrsOf(inner) => {
                f.write_str("attrsOf ")?;
                arg(f, inner)
            }
            Type::NullOr(inner) => {
                f.write_str("nullOr ")?;
                arg(f, inner)
            }
            Type::OneOf(types) => {
                f.write_str("oneOf [")?;
                for (i, ty) in types.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    arg(f, ty)?;
                }
                f.write_str("]")
            }
            Type::Record(fields) => {
                f.write_str("{ ")?;
                for (i, field) in fields.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    let q = if field.optional { "?" } else { "" };
                    write!(f, "{}{q}: {}", field.name, field.ty)?;
                }
                f.write_str(" }")
            }
        }
    }
}

fn is_quantity(s: &str) -> bool {
    let number_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(number_end);
    let valid_number = !number.is_empty()
        && number.matches('.').count() <= 1
        && !number.starts_with('.')
        && !number.ends_with('.');
    valid_number
        && matches!(
            suffix,
            "" | "m" | "k" | "M" | "G" | "T" | "P" | "E" | "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei"
        )
}

fn plural(ty: &Type) -> String {
    let text = ty.expectation();
    text.strip_prefix("an ")
        .or_else(|| text.strip_prefix("a "))
        .map(|t| format!("{t}s"))
        .unwrap_or(text)
}

fn quoted_list(values: &[String]) -> String {
    values
        .iter()
        .map(|v| format!("`{v}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

const MAX_TYPE_DEPTH: usize = 32;

fn tokenize(text: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | ')' | '[' | ']' | '{' | '}' | ':' | ',' | '?' => tokens.push(c.to_string()),
            '"' => {
                let mut word = String::from("\"");
                loop {
                    match chars.next() {
                        Some((_, '"')) => break,
                        Some((_, c)) => word.push(c),
                        None => return Err("unterminated quoted word".into()),
                    }
                }
                tokens.push(word);
            }
            c if c.is_alphanumeric() || matches!(c, '_' | '-' | '.') => {
                let mut end = i + c.len_utf8();
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_alphanumeric() || matches!(d, '_' | '-' | '.') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                tokens.push(text[i..end].to_string());
            }
            other => return Err(format!("unexpected `{other}` in the type")),
        }
    }
    Ok(tokens)
}

struct TypeParser {
    tokens: Vec<String>,
    pos: usize,
}

impl TypeParser {
    fn next(&mut self) -> Option<String> {
        let token = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        token
    }

    fn peek(&self) -> Option<&str> {
        self.tokens.get(self.pos).map(String::as_str)
    }

    fn expect(&mut self, wanted: &str) -> Result<(), String> {
        match self.next() {
            Some(t) if t == wanted => Ok(()),
            Some(t) => Err(format!("expected `{wanted}`, found `{t}`")),
            None => Err(format!("expected `{wanted}` at the end of the type")),
        }
    }

    fn ty(&mut self, depth: usize) -> Result<Type, String> {
        if depth > MAX_TYPE_DEPTH {
            return Err("the type is nested too deeply".into());
        }
        let token = self.next().ok_or("expected a type")?;
        Ok(match token.as_str() {
            "str" => Type::Str,
            "lines" => Type::Lines,
            "int" => Type::Int,
            "bool" => Type::Bool,
            "port" => Type::Port,
            "path" => Type::Path,
            "source" => Type::Source,
            "duration" => Type::Duration,
            "quantity" => Type::Quantity,
            "attrs" => Type::Attrs,
            "submodule" => Type::Submodule(OptionTree::default()),
            "listOf" => Type::ListOf(Box::new(self.ty(depth + 1)?)),
            "attrsOf" => Type::AttrsOf(Box::new(self.ty(depth + 1)?)),
            "nullOr" => Type::NullOr(Box::new(self.ty(depth + 1)?)),
            "oneOf" => {
                self.expect("[")?;
                let mut types = Vec::new();
                while self.peek() != Some("]") {
                    if self.peek().is_none() {
                        return Err("expected `]` to close `oneOf [`".into());
                    }
                    types.push(self.ty(depth + 1)?);
                }
                self.pos += 1;
                if types.is_empty() {
                    return Err("`oneOf` needs at least one type".into());
                }
                Type::OneOf(types)
            }
            "enum" => {
                self.expect("[")?;
                let mut values = Vec::new();
                loop {
                    match self.next() {
                        Some(t) if t == "]" => break,
                        Some(t) if t.starts_with('"') => values.push(t[1..].to_string()),
                        Some(t) if t.chars().all(|c| c.is_alphanumeric() || "_-.".contains(c)) => {
                            values.push(t)
                        }
                        Some(t) => return Err(format!("unexpected `{t}` in an enum")),
                        None => return Err("expected `]` to close `enum [`".into()),
                    }
                }
                if values.is_empty() {
                    return Err("`enum` needs at least one value".into());
                }
                Type::Enum(values)
            }
            "{" => {
                let mut fields: Vec<Field> = Vec::new();
                loop {
                    let name = self.next().ok_or("expected a field name")?;
                    if !name
                        .chars()
                        .all(|c| c.is_alphanumeric() || "_-".contains(c))
                    {
                        return Err(format!("`{name}` is not a field name"));
                    }
                    let optional = self.peek() == Some("?");
                    if optional {
                        self.pos += 1;
                    }
                    self.expect(":")?;
                    let ty = self.ty(depth + 1)?;
                    if fields.iter().any(|f| f.name == name) {
                        return Err(format!("the field `{name}` appears twice"));
                    }
                    fields.push(Field { name, optional, ty });
                    match self.next().as_deref() {
                        Some(",") => {}
                        Some("}") => break,
                        Some(t) => return Err(format!("expected `,` or `}}`, found `{t}`")),
                        None => return Err("expected `}` to close the record".into()),
                    }
                }
                Type::Record(fields)
            }
            "(" => {
                let ty = self.ty(depth + 1)?;
                self.expect(")")?;
                ty
            }
            other => {
                let known = [
                    "str",
                    "lines",
                    "int",
                    "bool",
                    "port",
                    "path",
                    "source",
                    "duration",
                    "quantity",
                    "attrs",
                    "submodule",
                    "listOf",
                    "attrsOf",
                    "nullOr",
                    "oneOf",
                    "enum",
                ];
                return Err(match crate::error::did_you_mean(other, known) {
                    Some(near) => format!("unknown type `{other}` (did you mean `{near}`?)"),
                    None => format!("unknown type `{other}`"),
                });
            }
        })
    }
}
