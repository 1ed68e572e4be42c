//! The `${{ ref }}` syntax: splitting a string into text and references,
//! and parsing a reference into its service and option path.
//!
//! ```text
//! "postgres://${{ //db:postgres.address.pg }}/app"
//! "${{ self.files.\"nginx.conf\".path }}"
//! "$${{ literal }}"            →  "${{ literal }}"
//! ```
use crate::label::{parse_label, Label};

/// A piece of a template string.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Text(String),
    Ref(Reference),
}

/// What a `${{ }}` names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// As written, for messages.
    pub text: String,
    /// `None` for `self`.
    pub service: Option<Label>,
    pub path: Vec<String>,
}

/// Splits a template; `package` resolves `:name` labels.
pub(crate) fn parse_template(text: &str, package: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${{") {
        if rest[..at].ends_with('$') {
            literal.push_str(&rest[..at - 1]);
            literal.push_str("${{");
            rest = &rest[at + 3..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let after = &rest[at + 3..];
        let end = after
            .find("}}")
            .ok_or_else(|| "`${{` without a closing `}}`".to_string())?;
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Ref(parse_reference(after[..end].trim(), package)?));
        rest = &after[end + 2..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// Labels named by the references of a string (for dependency edges);
/// malformed references are skipped (resolution reports them).
pub(crate) fn referenced_labels(text: &str, package: &str) -> Vec<Label> {
    match parse_template(text, package) {
        Ok(pieces) => pieces
            .into_iter()
            .filter_map(|p| match p {
                Piece::Ref(r) => r.service,
                Piece::Text(_) => None,
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

fn parse_reference(text: &str, package: &str) -> Result<Reference, String> {
    if text.is_empty() {
        return Err("empty reference `${{ }}`".into());
    }
    let (service, rest) = if let Some(rest) = text.strip_prefix("self") {
        if !(rest.is_empty() || rest.starts_with('.')) {
            return Err(format!(
                "`{text}`: write `self.<option>` or `<label>.<option>`"
            ));
        }
        (None, rest)
    } else if text.starts_with("//") || text.starts_with(':') {
        // The label ends at the first `.` after its name starts.
        let name_start = text.find(':').map(|i| i + 1).unwrap_or(2);
        let end = text[name_start..]
            .find('.')
            .map(|i| i + name_start)
            .unwrap_or(text.len());
        let label = parse_label(&text[..end], Some(package)).map_err(|err| err.message.clone())?;
        (Some(label), &text[end..])
    } else {
        return Err(format!(
            "`{text}` is not a reference: write `self.<option>` or `<label>.<option>`"
        ));
    };
    let path = parse_path(rest).ok_or_else(|| format!("`{text}`: invalid option path"))?;
    if path.is_empty() {
        return Err(format!(
            "`{text}` names a service, not a value: add an option path"
        ));
    }
    Ok(Reference {
        text: text.to_string(),
        service,
        path,
    })
}

/// `.a.b."c.d"` → `["a", "b", "c.d"]`.
fn parse_path(mut rest: &str) -> Option<Vec<String>> {
    let mut path = Vec::new();
    while !rest.is_empty() {
        rest = rest.strip_prefix('.')?;
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"')?;
            path.push(quoted[..end].to_string());
            rest = &quoted[end + 1..];
        } else {
            let end = rest.find('.').unwrap_or(rest.len());
            let segment = &rest[..end];
            if segment.is_empty()
                || !segment
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                return None;
            }
            path.push(segment.to_string());
            rest = &rest[end..];
        }
    }
    Some(path)
}
