//! Writing values into unit files so that systemd reads back exactly them
//! (systemd.syntax(7), systemd.service(5) "Command lines",
//! systemd.exec(5) `Environment=`), and the `systemd.extra` merge.
use std::fmt::Write as _;

/// One command-line word: double-quoted with C escapes, `%` as `%%`
/// (specifiers) and `$` as `$$` (environment variable substitution), so that
/// systemd hands the program exactly `value`.
pub fn exec_word(value: &str) -> String {
    let mut out = String::from("\"");
    push_escaped(&mut out, value, true);
    out.push('"');
    out
}

/// An `Environment=` line setting `name` to exactly `value`. Environment=
/// expands specifiers but not `$`.
pub fn environment_line(name: &str, value: &str) -> String {
    let mut out = String::from("Environment=\"");
    push_escaped(&mut out, name, false);
    out.push('=');
    push_escaped(&mut out, value, false);
    out.push_str("\"\n");
    out
}

/// Free text (`Description=`, `User=`): specifiers escaped, control
/// characters (which would end the line or continue it) turned into spaces.
pub fn unit_text_value(value: &str) -> String {
    let mut out = String::new();
    for c in value.chars() {
        match c {
            '%' => out.push_str("%%"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    // A final backslash would join the next line to this one.
    while out.ends_with('\\') || out.ends_with(' ') {
        out.pop();
    }
    out
}

/// A path setting (`WorkingDirectory=`, one `StateDirectory=` entry): these
/// are not unquoted by systemd, so a path that needs quoting is an error.
pub fn path_value(value: &str) -> Result<String, String> {
    if value.is_empty()
        || value
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\'))
    {
        return Err(format!(
            "the path `{}` cannot be written in a unit (empty, or with spaces, quotes or backslashes)",
            value.escape_debug()
        ));
    }
    Ok(value.replace('%', "%%"))
}

/// `256Mi` → bytes (MemoryMax= takes a plain number of bytes).
pub fn memory_bytes(quantity: &str) -> Option<u64> {
    let units: [(&str, u64); 10] = [
        ("Ki", 1 << 10),
        ("Mi", 1 << 20),
        ("Gi", 1 << 30),
        ("Ti", 1 << 40),
        ("k", 1_000),
        ("K", 1_000),
        ("M", 1_000_000),
        ("G", 1_000_000_000),
        ("T", 1_000_000_000_000),
        ("", 1),
    ];
    let (number, factor) = units
        .iter()
        .find_map(|(suffix, factor)| Some((quantity.strip_suffix(suffix)?, *factor)))?;
    let number: u64 = number.parse().ok()?;
    number.checked_mul(factor)
}

/// `500m` → 50, `2` → 200, `1.5` → 150 (CPUQuota= percent of one CPU).
pub fn cpu_percent(quantity: &str) -> Option<u64> {
    if let Some(milli) = quantity.strip_suffix('m') {
        let milli: u64 = milli.parse().ok()?;
        return Some(milli.div_ceil(10).max(1));
    }
    let (whole, fraction) = quantity.split_once('.').unwrap_or((quantity, ""));
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    if fraction.len() > 2 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hundredths: u64 = format!("{fraction:0<2}").parse().ok()?;
    let percent = whole.checked_mul(100)?.checked_add(hundredths)?;
    (percent > 0).then_some(percent)
}

/// `unit` with the raw settings of `systemd.extra` (`{ Section = { Key =
/// value or [values] } }`) appended to their sections; unknown sections are
/// added at the end.
pub fn merge_extra(unit: &str, extra: &serde_json::Value) -> Result<String, String> {
    let sections = extra
        .as_object()
        .ok_or("`systemd.extra` must be a table of sections")?;
    // Split the unit into sections, keeping their order.
    let mut blocks: Vec<(String, String)> = Vec::new();
    for line in unit.lines() {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            blocks.push((name.to_string(), String::new()));
        } else if let Some((_, body)) = blocks.last_mut() {
            if !line.is_empty() {
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    for (section, settings) in sections {
        let settings = settings
            .as_object()
            .ok_or_else(|| format!("`systemd.extra.{section}` must be a table of settings"))?;
        let index = match blocks.iter().position(|(name, _)| name == section) {
            Some(index) => index,
            None => {
                blocks.push((section.clone(), String::new()));
                blocks.len() - 1
            }
        };
        for (key, value) in settings {
            let values = match value {
                serde_json::Value::Array(items) => items.clone(),
                other => vec![other.clone()],
            };
            for value in values {
                let text = match value {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Bool(true) => "yes".into(),
                    serde_json::Value::Bool(false) => "no".into(),
                    serde_json::Value::Number(n) => n.to_string(),
                    _ => {
                        return Err(format!(
                            "`systemd.extra.{section}.{key}` must be a string, number, boolean or a list of them"
                        ))
                    }
                };
                if text.contains(['\n', '\r']) || key.contains(['\n', '=', '[']) {
                    return Err(format!(
                        "`systemd.extra.{section}.{key}` must fit on one line"
                    ));
                }
                writeln!(blocks[index].1, "{key}={text}").unwrap();
            }
        }
    }
    let mut out = String::new();
    for (i, (name, body)) in blocks.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        writeln!(out, "[{name}]").unwrap();
        out.push_str(body);
    }
    Ok(out)
}

fn push_escaped(out: &mut String, value: &str, double_dollar: bool) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '%' => out.push_str("%%"),
            '$' if double_dollar => out.push_str("$$"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                write!(out, "\\x{:02x}", c as u32).unwrap();
            }
            c => out.push(c),
        }
    }
}
