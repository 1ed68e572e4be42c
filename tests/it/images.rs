//! `n2d build --target oci` through the whole pipeline: the workspace's base
//! layer and a service's local program are declared inputs of the render,
//! so the image is built from them, changes when they change, and runs.

use crate::support::{busybox_base_layer, counts, require_tool, skopeo_inspect, TestWorkspace};

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
        let value = skopeo_inspect(&layout, "dev-greeter");
        assert!(
            value["Layers"].as_array().unwrap().len() >= 3,
            "base, program, service: {value}"
        );
        value["Digest"].as_str().unwrap().to_string()
    };
    let before = digest();
    let (executed, cached) = counts(&first, "layer");
    assert_eq!(
        (executed, cached),
        (2, 0),
        "base and program layers: {first}"
    );

    // A change to the service only: its layers below are tasks of their
    // own, served from the cache, and their blobs are not rewritten.
    let blobs = layout.join("blobs/sha256");
    let mtimes = || -> std::collections::BTreeMap<String, std::time::SystemTime> {
        std::fs::read_dir(&blobs)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                (name, e.metadata().unwrap().modified().unwrap())
            })
            .collect()
    };
    let blobs_before = mtimes();
    ws.write(
        "app/n2d.toml",
        "[services.greeter]\npackage = \"tools/greet\"\ncommand = [\"/usr/local/bin/greet\"]\nenv.GREETING = \"hi\"\n\n[deployments.dev]\nservices = [\":greeter\"]\n",
    );
    let env_change = ws.build_json(&["//app:dev"]);
    assert_eq!(counts(&env_change, "layer"), (0, 2), "{env_change}");
    assert_eq!(counts(&env_change, "render").0, 1, "{env_change}");
    let blobs_after = mtimes();
    let kept = blobs_before
        .iter()
        .filter(|(name, mtime)| blobs_after.get(*name) == Some(mtime))
        .count();
    assert!(
        kept >= 2,
        "the base and program layer blobs keep their mtime: {blobs_before:?} → {blobs_after:?}"
    );
    assert_ne!(digest(), before);
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

#[test]
fn a_shared_layer_is_stored_once_per_layout_not_once_per_image() {
    let ws = TestWorkspace::new();
    ws.write(
        "n2d.workspace.toml",
        "default_targets = [\"oci\"]\nbase_layer = \"base/busybox.tar\"\n",
    );
    let base = busybox_base_layer();
    std::fs::create_dir_all(ws.root.join("base")).unwrap();
    std::fs::write(ws.root.join("base/busybox.tar"), &base).unwrap();
    let mut module = String::new();
    for i in 0..5 {
        module.push_str(&format!(
            "[services.s{i}]\ncommand = [\"/bin/echo\", \"{i}\"]\n\n"
        ));
    }
    module
        .push_str("[deployments.dev]\nservices = [\":s0\", \":s1\", \":s2\", \":s3\", \":s4\"]\n");
    ws.write("app/n2d.toml", &module);
    let built = ws.build_json(&["//app:dev"]);
    assert_eq!(built["ok"], true, "{built}");
    assert_eq!(
        counts(&built, "layer"),
        (1, 0),
        "one base layer task: {built}"
    );

    // The five images stack the same base: its bytes are cached by the
    // Layer task and in the layout's Assemble output, not in every Render.
    let out = ws.n2d(&["cache", "stats", "--json"]);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let cas = stats["trees"]["cas"]["bytes"].as_u64().unwrap();
    assert!(
        cas < 3 * base.len() as u64,
        "cache holds {cas} bytes for a {}-byte base layer",
        base.len()
    );
    for i in 0..5 {
        let image =
            skopeo_inspect_if_installed(&ws.root.join("n2d-out/app/dev/oci"), &format!("dev-s{i}"));
        if let Some(image) = image {
            assert_eq!(image["Layers"].as_array().unwrap().len(), 2, "{image}");
        }
    }
}

fn skopeo_inspect_if_installed(layout: &std::path::Path, tag: &str) -> Option<serde_json::Value> {
    require_tool("skopeo").then(|| skopeo_inspect(layout, tag))
}
