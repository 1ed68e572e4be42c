//! Shared test support: external tools and service fixtures.
#![allow(dead_code)]

use std::process::Command;

/// Whether `tool` is on PATH. Under CI (`CI=true`) a missing tool fails the
/// test; elsewhere the test says which tool it skipped for.
pub fn require_tool(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("the test tool `{tool}` is missing (CI=true): run .ci/install-tools");
        }
        eprintln!("skipped: the test tool `{tool}` is not installed (run .ci/install-tools)");
    }
    found
}

/// A service from its resolved JSON (fields not given take their defaults).
pub fn service(json: serde_json::Value) -> n2d_modules::service::Service {
    serde_json::from_value(json).expect("fixture is a valid resolved service")
}

#[path = "../../../tests/shared/busybox.rs"]
mod busybox;
pub use busybox::busybox_base_layer;

#[path = "../../../tests/shared/executable.rs"]
mod executable;
pub use executable::write_executable;
