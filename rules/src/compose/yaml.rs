//! YAML text that every reader of compose and Kubernetes files reads the
//! same way.
//!
//! Those readers disagree on plain scalars: PyYAML (docker-compose) reads
//! YAML 1.1, where `no` is false and `22:22` is the number 1342, while Go and
//! Rust readers read YAML 1.2. So a string is written plain only when it is
//! unambiguous in both (it starts with a letter or `/` and holds only
//! letters, digits and `_./@+-:`, no final `:`, and is not a 1.1 boolean or null word);
//! every other string is written double-quoted with JSON escapes, which is
//! valid YAML. Keys keep the order of the map; the output is deterministic.
use serde_json::Value;

/// The YAML document of `value`, ending in a newline.
pub(crate) fn to_yaml(value: &Value) -> String {
    let mut out = String::new();
    match value {
        Value::Object(map) if !map.is_empty() => write_map(&mut out, map, 0),
        Value::Array(items) if !items.is_empty() => write_list(&mut out, items, 0),
        scalar => {
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
    out
}

fn write_map(out: &mut String, map: &serde_json::Map<String, Value>, indent: usize) {
    for (key, value) in map {
        push_indent(out, indent);
        out.push_str(&string_text(key));
        out.push(':');
        write_value_after_key(out, value, indent);
    }
}

fn write_list(out: &mut String, items: &[Value], indent: usize) {
    for item in items {
        match item {
            Value::Object(map) if !map.is_empty() => {
                // The first line of the nested block takes the `- ` in place
                // of its indentation: `- key: value`.
                let mut nested = String::new();
                write_map(&mut nested, map, indent + 2);
                out.push_str(&dash_first_line(&nested, indent));
            }
            Value::Array(inner) if !inner.is_empty() => {
                let mut nested = String::new();
                write_list(&mut nested, inner, indent + 2);
                out.push_str(&dash_first_line(&nested, indent));
            }
            scalar => {
                push_indent(out, indent);
                out.push_str("- ");
                out.push_str(&scalar_text(scalar));
                out.push('\n');
            }
        }
    }
}

fn write_value_after_key(out: &mut String, value: &Value, indent: usize) {
    match value {
        Value::Object(map) if !map.is_empty() => {
            out.push('\n');
            write_map(out, map, indent + 2);
        }
        Value::Array(items) if !items.is_empty() => {
            // Block lists sit at their key's indentation, as kubectl writes them.
            out.push('\n');
            write_list(out, items, indent);
        }
        scalar => {
            out.push(' ');
            out.push_str(&scalar_text(scalar));
            out.push('\n');
        }
    }
}

fn dash_first_line(block: &str, indent: usize) -> String {
    let mut text = String::with_capacity(block.len());
    text.push_str(&" ".repeat(indent));
    text.push_str("- ");
    text.push_str(&block[indent + 2..]);
    text
}

fn push_indent(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A scalar (or an empty collection) as YAML flow text.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => string_text(s),
        Value::Array(_) => "[]".into(),
        Value::Object(_) => "{}".into(),
    }
}

fn string_text(text: &str) -> String {
    if is_plain_safe(text) {
        text.to_string()
    } else {
        serde_json::to_string(text).expect("a string always serializes")
    }
}

fn is_plain_safe(text: &str) -> bool {
    const AMBIGUOUS_WORDS: [&str; 10] = [
        "y", "n", "yes", "no", "true", "false", "on", "off", "null", "~",
    ];
    let Some(first) = text.chars().next() else {
        return false;
    };
    (first.is_ascii_alphabetic() || first == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '/' | '@' | '+' | '-' | ':'))
        // A `:` is part of a plain scalar unless a space or the end follows.
        && !text.ends_with(':')
        && !AMBIGUOUS_WORDS
            .iter()
            .any(|word| text.eq_ignore_ascii_case(word))
}

#[cfg(test)]
mod tests {
    use super::to_yaml;
    use serde_json::json;

    #[test]
    fn ambiguous_strings_are_quoted_and_nesting_is_block_style() {
        let value = json!({
            "restart": "no",
            "ports": ["22:22", "8080"],
            "image": "localhost/n2d/x:latest",
            "env": { "A": "two words", "B": "" },
            "list": [{ "a": 1, "b": [true, null] }, [1, 2], {}],
            "empty": {},
        });
        assert_eq!(
            to_yaml(&value),
            "empty: {}\n\
             env:\n  A: \"two words\"\n  B: \"\"\n\
             image: localhost/n2d/x:latest\n\
             list:\n- a: 1\n  b:\n  - true\n  - null\n- - 1\n  - 2\n- {}\n\
             ports:\n- \"22:22\"\n- \"8080\"\n\
             restart: \"no\"\n"
        );
    }
}
