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

/// A base layer with the static busybox as `/bin/busybox`, and `/bin/sh`
/// and the tools the entrypoint uses as links to it.
pub fn busybox_base_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder
        .append_data(&mut dir, "bin/", std::io::empty())
        .unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o755);
    file.set_size(busybox.len() as u64);
    builder
        .append_data(&mut file, "bin/busybox", busybox.as_slice())
        .unwrap();
    for tool in ["sh", "cat", "mkdir", "rm", "echo", "nc", "sleep", "dirname"] {
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, format!("bin/{tool}"), "busybox")
            .unwrap();
    }
    builder.into_inner().unwrap()
}
