//! `n2d show`: a resolved service, each value with where it came from.
use serde_json::Value as Json;

use crate::merge::quote_key;
use crate::universe::Resolved;

/// Text for a terminal: one line per value, then its definitions.
///
/// ```text
/// replicas = 3
///     deploy/n2d.toml:12:1 (priority 100)
/// restart = "on-failure"
///     default, modules/options/core.toml:16 (priority 1500)
/// ```
pub fn format_show(resolved: &Resolved) -> String {
    let mut out = format!("# {}", resolved.service);
    if let Some(deployment) = &resolved.deployment {
        out.push_str(&format!(" in {deployment} (as `{}`)", resolved.name));
    }
    out.push('\n');
    if !resolved.references.is_empty() {
        out.push_str(&format!(
            "# refers to: {}\n",
            resolved.references.join(", ")
        ));
    }
    let mut lines = Vec::new();
    walk(resolved, &resolved.value, String::new(), &mut lines);
    for (path, value) in lines {
        out.push_str(&format!("{path} = {value}\n"));
        match resolved.provenance.get(&path) {
            Some(origins) => {
                for origin in origins {
                    if origin.default {
                        out.push_str(&format!(
                            "    default, {}:{} (priority {})\n",
                            origin.file, origin.line, origin.priority
                        ));
                    } else {
                        out.push_str(&format!(
                            "    {}:{}:{} (priority {})\n",
                            origin.file, origin.line, origin.column, origin.priority
                        ));
                    }
                }
            }
            None => out.push_str("    computed\n"),
        }
    }
    out
}

/// The same as data: `{ "service", "deployment", "value", "provenance", "references" }`.
pub fn show_json(resolved: &Resolved) -> Json {
    serde_json::json!({
        "service": resolved.service,
        "name": resolved.name,
        "deployment": resolved.deployment,
        "value": resolved.value,
        "provenance": resolved.provenance,
        "references": resolved.references,
    })
}

/// Collects `(path, value)` for every value that has its own provenance
/// (or none below it).
fn walk(resolved: &Resolved, value: &Json, path: String, out: &mut Vec<(String, String)>) {
    if !path.is_empty() && resolved.provenance.contains_key(&path) {
        out.push((path, value.to_string()));
        return;
    }
    match value {
        Json::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                let child_path = if path.is_empty() {
                    quote_key(key)
                } else {
                    format!("{path}.{}", quote_key(key))
                };
                walk(resolved, child, child_path, out);
            }
        }
        _ => out.push((path, value.to_string())),
    }
}
