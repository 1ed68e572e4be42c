//! The external managers (issue 6): the registry, the exact command lines
//! each one runs (fake tools), and real launches with the tools CI installs.
#[path = "managers/command_lines.rs"]
mod command_lines;
#[path = "managers/fixture.rs"]
mod fixture;
#[path = "managers/real_tools.rs"]
mod real_tools;

use n2d_rules::manager::{self, Manager};

#[test]
fn every_manager_is_found_by_target_and_name() {
    let names: Vec<(&str, &str)> = manager::all()
        .iter()
        .map(|m| (m.target(), m.name()))
        .collect();
    assert_eq!(
        names,
        [
            ("procfile", "honcho"),
            ("procfile", "overmind"),
            ("procfile", "hivemind"),
            ("process-compose", "process-compose"),
            ("systemd", "systemctl"),
            ("oci", "podman-load"),
            ("oci", "skopeo-copy"),
            ("compose", "docker-compose"),
            ("compose", "podman-compose"),
            ("k8s", "kubectl"),
            ("k8s", "podman-kube"),
        ]
    );
    for (target, name) in names {
        let found = manager::find(target, name).expect("found");
        assert_eq!((found.target(), found.name()), (target, name));
        assert!(!found.tools().is_empty());
    }
    assert!(manager::find("compose", "kubectl").is_none());
    let detached: Vec<&str> = manager::all()
        .iter()
        .filter(|m| m.detached())
        .map(|m| m.name())
        .collect();
    assert_eq!(
        detached,
        [
            "systemctl",
            "podman-load",
            "skopeo-copy",
            "docker-compose",
            "podman-compose",
            "kubectl",
            "podman-kube",
        ]
    );
}

#[test]
fn every_default_manager_exists_for_its_target() {
    for target in ["process-compose", "systemd", "oci", "compose", "k8s"] {
        let name = manager::default_manager(target).expect("a default");
        assert!(manager::find(target, name).is_some(), "{target}: {name}");
    }
    assert_eq!(manager::default_manager("compose"), Some("podman-compose"));
    // procfile's default is the built-in supervisor, which is not here.
    assert_eq!(manager::default_manager("procfile"), None);
    assert_eq!(manager::default_manager("json"), None);
}

#[test]
fn missing_tools_are_looked_up_on_the_search_path() {
    let empty = tempfile::tempdir().unwrap();
    let kubectl = manager::find("k8s", "kubectl").unwrap();
    assert_eq!(
        manager::missing_tools_in(kubectl.as_ref(), empty.path().as_os_str()),
        ["kubectl"]
    );
    // A file that is not executable is not a tool.
    std::fs::write(empty.path().join("kubectl"), "").unwrap();
    assert_eq!(
        manager::missing_tools_in(kubectl.as_ref(), empty.path().as_os_str()),
        ["kubectl"]
    );
    let sh = manager::missing_tools_in(&ShOnly, std::ffi::OsStr::new("/usr/bin:/bin"));
    assert!(sh.is_empty());
}

/// A manager needing only `sh`, which every machine has.
struct ShOnly;

impl Manager for ShOnly {
    fn name(&self) -> &'static str {
        "sh-only"
    }
    fn target(&self) -> &'static str {
        "procfile"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["sh"]
    }
    fn detached(&self) -> bool {
        false
    }
    fn up(&self, _ctx: &manager::LaunchContext) -> Result<(), manager::ManagerError> {
        Ok(())
    }
    fn down(&self, _ctx: &manager::LaunchContext) -> Result<(), manager::ManagerError> {
        Ok(())
    }
}

#[test]
fn project_names_are_stable_and_sanitized() {
    let deployment = |package: &str, name: &str| n2d_rules::Deployment {
        package: package.into(),
        name: name.into(),
        namespace: None,
        services: vec![],
        base_layer: None,
    };
    assert_eq!(
        manager::project_name(&deployment("examples/shop", "dev")),
        "examples-shop-dev"
    );
    assert_eq!(
        manager::project_name(&deployment("Web_App//x", "Prod.EU")),
        "web-app-x-prod-eu"
    );
    assert_eq!(manager::project_name(&deployment("", "_")), "n2d");
}
