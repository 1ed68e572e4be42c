//! Workspace discovery on disk: the root, packages, skipped folders.
use std::fs;
use std::path::Path;

use n2d_modules::{Format, Workspace};

fn write(root: &Path, path: &str, text: &str) {
    let path = root.join(path);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn discovery_finds_packages_and_skips_what_it_must() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "n2d.workspace.toml", "output_dir = \"out\"\n");
    write(root, "n2d.toml", "");
    write(root, "apps/web/n2d.toml", "");
    write(root, "db/n2d.json", "{}");
    write(root, ".hidden/n2d.toml", "");
    write(root, "target-x/n2d.toml", "");
    write(root, "node_modules/n2d.toml", "");
    write(root, "out/n2d.toml", "");
    write(root, ".n2d/n2d.toml", "");
    write(root, "nested/n2d.workspace.toml", "");
    write(root, "nested/n2d.toml", "");
    fs::create_dir_all(root.join("apps/web/src")).unwrap();
    let workspace = Workspace::discover(&root.join("apps/web/src")).unwrap();
    assert_eq!(workspace.root, fs::canonicalize(root).unwrap());
    assert_eq!(workspace.settings.output_dir, "out");
    assert_eq!(workspace.settings.cache_dir, ".n2d");
    let packages: Vec<(&str, Format)> = workspace
        .packages
        .iter()
        .map(|p| (p.package.as_str(), p.format))
        .collect();
    assert_eq!(
        packages,
        [
            ("", Format::Toml),
            ("apps/web", Format::Toml),
            ("db", Format::Json)
        ]
    );
    assert_eq!(workspace.packages[1].display_path(), "apps/web/n2d.toml");
    assert_eq!(
        workspace.package_of(&root.join("apps/web/src")).as_deref(),
        Some("apps/web")
    );
    assert_eq!(
        workspace.package_of(&root.join("apps")).as_deref(),
        Some("")
    );
}

#[test]
fn no_workspace_is_an_error_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let err = Workspace::discover(dir.path()).unwrap_err();
    assert!(err.message.starts_with("no n2d.workspace.toml in"), "{err}");
    assert_eq!(
        err.help.as_deref(),
        Some("run `n2d init` to create a workspace here")
    );
}

#[test]
fn two_module_files_in_one_folder_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "n2d.workspace.toml", "");
    write(dir.path(), "web/n2d.toml", "");
    write(dir.path(), "web/n2d.json", "{}");
    let err = Workspace::discover(dir.path()).unwrap_err();
    assert_eq!(
        err.message,
        "the package //web has two module files: web/n2d.json and web/n2d.toml"
    );
}

#[test]
fn unknown_settings_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "n2d.workspace.toml", "output = \"x\"\n");
    let err = Workspace::discover(dir.path()).unwrap_err();
    assert!(err.to_string().contains("n2d.workspace.toml:1:1"), "{err}");
}

#[test]
fn init_template_is_a_working_workspace() {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in n2d_modules::init_template() {
        write(dir.path(), path.to_str().unwrap(), &text);
    }
    let workspace = Workspace::discover(dir.path()).unwrap();
    let universe = crate::examples::load(&workspace);
    let dev = n2d_modules::parse_label("//hello:dev", None).unwrap();
    for service in ["greeter", "welcomer"] {
        universe
            .resolve(&dev, service, &n2d_modules::LocalEnv)
            .unwrap();
    }
}
