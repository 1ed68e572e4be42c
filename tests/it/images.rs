//! `n2d build --target oci` through the whole pipeline: the workspace's base
//! layer and a service's local program are declared inputs of the render,
//! so the image is built from them, changes when they change, and runs.
use std::process::Command;

use crate::support::{counts, require_tool, TestWorkspace};

/// A tarball holding the static busybox as /bin/busybox and /bin/sh.
fn busybox_base_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (Debian busybox-static)");
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
    for tool in ["sh", "cat", "mkdir", "rm", "echo", "sleep", "dirname"] {
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, format!("bin/{tool}"), "busybox")
            .unwrap();
    }
    builder.into_inner().unwrap()
}

#[test]
fn an_image_is_built_from_the_base_layer_and_a_local_program() {
    if !require_tool("skopeo") || !require_tool("busybox") {
        return;
    }
    let ws = TestWorkspace::new();
    ws.write(
        "n2d.workspace.toml",
        "default_targets = [\"oci\"]\nbase_layer = \"base/busybox.tar\"\n",
    );
    std::fs::create_dir_all(ws.root.join("base")).unwrap();
    std::fs::write(ws.root.join("base/busybox.tar"), busybox_base_layer()).unwrap();
    ws.write("tools/greet", "#!/bin/sh\necho \"$GREETING from $0\"\n");
    ws.write(
        "app/n2d.toml",
        "[services.greeter]\npackage = \"tools/greet\"\ncommand = [\"/usr/local/bin/greet\"]\nenv.GREETING = \"hello\"\n\n[deployments.dev]\nservices = [\":greeter\"]\n",
    );
    let first = ws.build_json(&["//app:dev"]);
    assert_eq!(first["ok"], true, "{first}");
    let layout = ws.root.join("n2d-out/app/dev/oci");
    let digest = || -> String {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:dev-greeter", layout.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(
            value["Layers"].as_array().unwrap().len() >= 3,
            "base, program, service: {value}"
        );
        value["Digest"].as_str().unwrap().to_string()
    };
    let before = digest();

    // The program is an input: changing it rebuilds the image.
    ws.write("tools/greet", "#!/bin/sh\necho \"$GREETING again\"\n");
    let after = ws.build_json(&["//app:dev"]);
    assert_eq!(counts(&after, "render").0, 1, "{after}");
    assert_ne!(digest(), before);

    // The base layer too.
    let mut base = busybox_base_layer();
    base.extend_from_slice(&[0u8; 1024]);
    std::fs::write(ws.root.join("base/busybox.tar"), base).unwrap();
    let again = ws.build_json(&["//app:dev"]);
    assert_eq!(counts(&again, "render").0, 1, "{again}");
}
