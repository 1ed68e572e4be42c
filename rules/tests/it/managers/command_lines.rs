//! The exact command lines (arguments and working directory) each manager
//! runs, against fake tools first on the search path: for the tools this
//! machine lacks (kubectl, docker, systemctl, process-compose, overmind,
//! hivemind), and for the podman ones where a real run cannot show the
//! arguments. No test here touches a real systemd, cluster or image store.
use std::path::{Path, PathBuf};

use n2d_rules::manager::{
    self, DockerCompose, Hivemind, Honcho, Kubectl, LaunchContext, Manager, ManagerError, Overmind,
    PodmanCompose, PodmanKube, PodmanLoad, PodmanOptions, ProcessComposeTool, SkopeoCopy,
    Systemctl, SystemdScope, LAUNCH_RECORD,
};
use n2d_rules::Deployment;
use serde_json::json;

use super::fixture::{self, FakeTools};
use crate::support::service;

/// A folder with one service rendered by `rule`, in a parent folder (so
/// that a sibling `oci` folder can be added).
struct Folder {
    root: tempfile::TempDir,
    deployment: Deployment,
}

impl Folder {
    fn new(rule: &dyn n2d_rules::Rule, target: &str) -> Folder {
        let services = vec![
            service(json!({
                "name": "web",
                "label": "//tests/managers:web",
                "command": ["busybox", "httpd", "-f"],
                "ports": { "http": 8080 },
                "files": { "site.conf": { "text": "port 8080\n" } },
            })),
            service(json!({
                "name": "worker",
                "label": "//tests/managers:worker",
                "command": ["busybox", "sleep", "3600"],
                "depends_on": { "web": "started" },
            })),
        ];
        let root = tempfile::tempdir().unwrap();
        let deployment = fixture::deployment("dev", &services);
        fixture::build_folder(
            rule,
            &deployment,
            &services,
            &fixture::MemorySources::default(),
            &root.path().join(target),
        );
        Folder { root, deployment }
    }

    fn empty(target: &str) -> Folder {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join(target)).unwrap();
        Folder {
            root,
            deployment: fixture::deployment("dev", &[]),
        }
    }

    fn dir(&self, target: &str) -> PathBuf {
        self.root.path().join(target)
    }
}

fn context<'a>(dir: &'a Path, deployment: &'a Deployment, fakes: &FakeTools) -> LaunchContext<'a> {
    let mut ctx = LaunchContext::new(dir, deployment);
    ctx.search_path = fakes.search_path();
    ctx
}

/// Runs `up` of a foreground `manager` on a procfile-like folder and checks
/// its one command line and that it ran in the folder.
fn check_foreground(manager: &dyn Manager, rule: &dyn n2d_rules::Rule, expected: &[&str]) {
    let folder = Folder::new(rule, manager.target());
    let dir = folder.dir(manager.target());
    let fakes = FakeTools::new(manager.tools());
    manager
        .up(&context(&dir, &folder.deployment, &fakes))
        .unwrap();
    let calls = fakes.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].tool, manager.tools()[0]);
    assert_eq!(calls[0].args, expected);
    assert_eq!(calls[0].cwd, dir);
    assert!(!manager.detached());
    let down = manager.down(&context(&dir, &folder.deployment, &fakes));
    assert!(
        matches!(down, Err(ManagerError::NotDetached { .. })),
        "{down:?}"
    );
}

#[test]
fn honcho_starts_the_procfile_in_the_folder() {
    check_foreground(
        &Honcho,
        &n2d_rules::procfile::Procfile,
        &["-f", "Procfile", "start"],
    );
}

#[test]
fn overmind_starts_the_procfile_in_the_folder() {
    check_foreground(
        &Overmind,
        &n2d_rules::procfile::Procfile,
        &["start", "-f", "Procfile"],
    );
}

#[test]
fn hivemind_runs_the_procfile_in_the_folder() {
    check_foreground(&Hivemind, &n2d_rules::procfile::Procfile, &["Procfile"]);
}

#[test]
fn process_compose_runs_without_its_tui_and_tcp_server() {
    check_foreground(
        &ProcessComposeTool,
        &n2d_rules::process_compose::ProcessCompose,
        &[
            "up",
            "--tui=false",
            "--use-uds",
            "-f",
            "process-compose.yaml",
        ],
    );
}

#[test]
fn a_missing_tool_is_named_with_a_hint_and_nothing_runs() {
    let folder = Folder::new(&n2d_rules::k8s::K8sRule, "k8s");
    let dir = folder.dir("k8s");
    let fakes = FakeTools::new(&[]);
    let error = Kubectl
        .up(&context(&dir, &folder.deployment, &fakes))
        .unwrap_err();
    assert!(
        matches!(
            error,
            ManagerError::ToolMissing {
                manager: "kubectl",
                tool: "kubectl",
                ..
            }
        ),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message
            .starts_with("the manager `kubectl` needs `kubectl`, which is not installed (hint: "),
        "{message}"
    );
    // overmind needs tmux too: its absence is reported before overmind runs.
    let procfile = Folder::new(&n2d_rules::procfile::Procfile, "procfile");
    let fakes = FakeTools::new(&["overmind"]);
    let error = Overmind
        .up(&context(
            &procfile.dir("procfile"),
            &procfile.deployment,
            &fakes,
        ))
        .unwrap_err();
    assert!(
        matches!(error, ManagerError::ToolMissing { tool: "tmux", .. }),
        "{error:?}"
    );
    assert!(fakes.calls().is_empty());
    assert_eq!(
        manager::missing_tools_in(&Overmind, &fakes.search_path()),
        ["tmux"]
    );
}

#[test]
fn a_failing_tool_is_reported_with_its_command_and_stderr() {
    let folder = Folder::new(&n2d_rules::compose::ComposeRule, "compose");
    let dir = folder.dir("compose");
    let fakes = FakeTools::new(&[]);
    fakes.add("docker", "", 3);
    let error = DockerCompose
        .up(&context(&dir, &folder.deployment, &fakes))
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.starts_with("the manager `docker-compose` ran `docker compose -p tests-managers-dev -f compose.yaml up -d`, which failed (exit status: 3):\n"),
        "{message}"
    );
    assert!(message.ends_with("fake docker says no"), "{message}");
}

#[test]
fn a_folder_of_another_target_is_refused() {
    let folder = Folder::empty("compose");
    let dir = folder.dir("compose");
    let fakes = FakeTools::new(&["podman-compose", "podman"]);
    let error = PodmanCompose::default()
        .up(&context(&dir, &folder.deployment, &fakes))
        .unwrap_err();
    assert!(matches!(error, ManagerError::BadOutput { .. }), "{error:?}");
    assert!(error.to_string().contains("it has no `compose.yaml`"));
    assert!(fakes.calls().is_empty());
}

#[test]
fn docker_compose_runs_up_detached_and_down_under_the_project() {
    let folder = Folder::new(&n2d_rules::compose::ComposeRule, "compose");
    let dir = folder.dir("compose");
    let fakes = FakeTools::new(&["docker"]);
    let ctx = context(&dir, &folder.deployment, &fakes);
    assert_eq!(ctx.project, "tests-managers-dev");
    DockerCompose.up(&ctx).unwrap();
    DockerCompose.down(&ctx).unwrap();
    assert_eq!(
        fakes.command_lines(),
        [
            "docker compose -p tests-managers-dev -f compose.yaml up -d",
            "docker compose -p tests-managers-dev -f compose.yaml down",
        ]
    );
    assert!(fakes.calls().iter().all(|c| c.cwd == dir));
}

#[test]
fn docker_compose_loads_the_sibling_oci_layout_into_the_daemon() {
    let folder = Folder::new(&n2d_rules::compose::ComposeRule, "compose");
    write_index(&folder.dir("oci"), &["dev-web", "dev-worker"]);
    let dir = folder.dir("compose");
    let fakes = FakeTools::new(&["docker", "skopeo"]);
    DockerCompose
        .up(&context(&dir, &folder.deployment, &fakes))
        .unwrap();
    let oci = folder.dir("oci");
    assert_eq!(
        fakes.command_lines(),
        [
            format!(
                "skopeo copy oci:{}:dev-web docker-daemon:localhost/n2d/tests/managers/dev-web:latest",
                oci.display()
            ),
            format!(
                "skopeo copy oci:{}:dev-worker docker-daemon:localhost/n2d/tests/managers/dev-worker:latest",
                oci.display()
            ),
            "docker compose -p tests-managers-dev -f compose.yaml up -d".to_string(),
        ]
    );
}

#[test]
fn podman_compose_passes_the_global_podman_flags() {
    let folder = Folder::new(&n2d_rules::compose::ComposeRule, "compose");
    let dir = folder.dir("compose");
    let fakes = FakeTools::new(&["podman-compose", "podman"]);
    let manager = PodmanCompose {
        podman: PodmanOptions {
            global_args: vec!["--runtime".into(), "runc".into()],
            kube_network: Some("none".into()),
        },
    };
    let ctx = context(&dir, &folder.deployment, &fakes);
    manager.up(&ctx).unwrap();
    manager.down(&ctx).unwrap();
    assert_eq!(
        fakes.command_lines(),
        [
            "podman-compose --podman-args=--runtime runc -p tests-managers-dev -f compose.yaml up -d",
            "podman-compose --podman-args=--runtime runc -p tests-managers-dev -f compose.yaml down",
        ]
    );
}

#[test]
fn kubectl_applies_server_side_and_prunes_by_the_deployment_label() {
    let folder = Folder::new(&n2d_rules::k8s::K8sRule, "k8s");
    let dir = folder.dir("k8s");
    let fakes = FakeTools::new(&["kubectl"]);
    let ctx = context(&dir, &folder.deployment, &fakes);
    Kubectl.up(&ctx).unwrap();
    Kubectl.down(&ctx).unwrap();
    // The label value is the one the k8s rule wrote on every object.
    let manifest = std::fs::read_to_string(dir.join("web.yaml")).unwrap();
    assert!(
        manifest.contains("n2d/deployment: tests-managers-dev"),
        "{manifest}"
    );
    assert_eq!(
        fakes.command_lines(),
        [
            format!(
                "kubectl apply --server-side --field-manager=n2d --prune -l n2d/deployment=tests-managers-dev -k {}",
                dir.display()
            ),
            format!("kubectl delete --ignore-not-found -k {}", dir.display()),
        ]
    );
}

#[test]
fn podman_kube_plays_each_manifest_with_the_configured_flags() {
    let folder = Folder::new(&n2d_rules::k8s::K8sRule, "k8s");
    let dir = folder.dir("k8s");
    let fakes = FakeTools::new(&["podman"]);
    let manager = PodmanKube {
        podman: PodmanOptions {
            global_args: vec!["--cgroup-manager".into(), "cgroupfs".into()],
            kube_network: Some("none".into()),
        },
    };
    let ctx = context(&dir, &folder.deployment, &fakes);
    manager.up(&ctx).unwrap();
    manager.down(&ctx).unwrap();
    let web = dir.join("web.yaml");
    let worker = dir.join("worker.yaml");
    assert_eq!(
        fakes.command_lines(),
        [
            format!(
                "podman --cgroup-manager cgroupfs kube play --replace --network none {}",
                web.display()
            ),
            format!(
                "podman --cgroup-manager cgroupfs kube play --replace --network none {}",
                worker.display()
            ),
            format!(
                "podman --cgroup-manager cgroupfs kube down {}",
                web.display()
            ),
            format!(
                "podman --cgroup-manager cgroupfs kube down {}",
                worker.display()
            ),
        ]
    );
    // Without options, podman runs with its defaults.
    fakes.clear();
    PodmanKube::default().up(&ctx).unwrap();
    assert_eq!(
        fakes.command_lines()[0],
        format!("podman kube play --replace {}", web.display())
    );
}

/// An `index.json` listing `tags`, as the oci rule writes it.
fn write_index(layout: &Path, tags: &[&str]) {
    let manifests: Vec<serde_json::Value> = tags
        .iter()
        .map(|tag| {
            json!({
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": format!("sha256:{}", "0".repeat(64)),
                "size": 1,
                "annotations": { "org.opencontainers.image.ref.name": tag },
            })
        })
        .collect();
    std::fs::create_dir_all(layout).unwrap();
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&json!({ "schemaVersion": 2, "manifests": manifests })).unwrap(),
    )
    .unwrap();
}

#[test]
fn skopeo_copy_runs_the_load_command_of_every_built_image() {
    // `db` runs a given image: it has no entry in the layout.
    let db =
        service(json!({ "name": "db", "label": "//tests/managers:db", "image": "postgres:16" }));
    let api = service(json!({ "name": "api", "label": "//tests/managers:api" }));
    let deployment = fixture::deployment("prod", &[db, api.clone()]);
    let layout = tempfile::tempdir().unwrap();
    write_index(layout.path(), &["prod-api", "prod-api-0123456789ab"]);
    let fakes = FakeTools::new(&["skopeo"]);
    SkopeoCopy
        .up(&context(layout.path(), &deployment, &fakes))
        .unwrap();
    let expected = n2d_rules::oci::load_command(&deployment, &api, layout.path().to_str().unwrap());
    let calls = fakes.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].tool, expected[0]);
    assert_eq!(calls[0].args, expected[1..]);
}

#[test]
fn a_layout_podman_cannot_name_is_refused() {
    let api = service(json!({ "name": "api", "label": "//tests/managers:api" }));
    let deployment = fixture::deployment("prod", &[api]);
    let root = tempfile::tempdir().unwrap();
    let layout = root.path().join("Images");
    write_index(&layout, &["prod-api"]);
    let fakes = FakeTools::new(&["podman"]);
    let error = PodmanLoad::default()
        .up(&context(&layout, &deployment, &fakes))
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("`Images` is not a valid image name"),
        "{error}"
    );
    assert!(fakes.calls().is_empty());
}

#[test]
fn podman_load_pulls_tags_and_drops_the_side_name() {
    let api = service(json!({ "name": "api", "label": "//tests/managers:api" }));
    let deployment = fixture::deployment("prod", &[api]);
    let root = tempfile::tempdir().unwrap();
    let layout = root.path().join("oci");
    write_index(&layout, &["prod-api"]);
    let fakes = FakeTools::new(&[]);
    // `pull --quiet` prints the id; `image inspect` lists the side name.
    let side = "localhost/oci:latest";
    fakes.add_script(
        "podman",
        &format!(
            "case \"$1\" in\n  pull) echo 1234abcd;;\n  image) printf '[\"%s\",\"localhost/n2d/tests/managers/prod-api:latest\"]\\n' '{side}';;\nesac\n"
        ),
    );
    PodmanLoad::default()
        .up(&context(&layout, &deployment, &fakes))
        .unwrap();
    // Run in the parent: see `a_layout_podman_cannot_name_is_refused`.
    assert!(fakes.calls().iter().all(|c| c.cwd == root.path()));
    assert_eq!(
        fakes
            .calls()
            .iter()
            .map(|c| c.args.join(" "))
            .collect::<Vec<_>>(),
        [
            "pull --quiet oci:oci:prod-api".to_string(),
            "tag 1234abcd localhost/n2d/tests/managers/prod-api:latest".to_string(),
            "image inspect --format {{json .RepoTags}} 1234abcd".to_string(),
            format!("untag 1234abcd {side}"),
        ]
    );
}

/// A systemd folder with `web` (which has a file under `etc/n2d/`) and
/// `worker`, a fake systemctl, and an empty root for `/etc`.
struct SystemdSetup {
    folder: Folder,
    fakes: FakeTools,
    etc_root: tempfile::TempDir,
}

impl SystemdSetup {
    fn new() -> Self {
        SystemdSetup {
            folder: Folder::new(&n2d_rules::systemd::Systemd, "systemd"),
            fakes: FakeTools::new(&["systemctl"]),
            etc_root: tempfile::tempdir().unwrap(),
        }
    }
    fn dir(&self) -> PathBuf {
        self.folder.dir("systemd")
    }
    fn manager(&self, scope: SystemdScope) -> Systemctl {
        Systemctl {
            scope,
            root: self.etc_root.path().to_path_buf(),
        }
    }
    fn up(&self, manager: &Systemctl) -> Result<(), ManagerError> {
        let dir = self.dir();
        manager.up(&context(&dir, &self.folder.deployment, &self.fakes))
    }
    fn install_files_by_hand(&self) {
        let installed = self.etc_root.path().join("etc/n2d/web");
        std::fs::create_dir_all(&installed).unwrap();
        std::fs::copy(
            self.dir().join("etc/n2d/web/site.conf"),
            installed.join("site.conf"),
        )
        .unwrap();
    }
}

#[test]
fn systemctl_user_links_reloads_and_starts_the_target() {
    let setup = SystemdSetup::new();
    setup.install_files_by_hand();
    let manager = setup.manager(SystemdScope::User);
    setup.up(&manager).unwrap();
    let dir = setup.dir();
    assert_eq!(
        setup.fakes.command_lines(),
        [
            format!(
                "systemctl --user link {} {} {}",
                dir.join("dev.target").display(),
                dir.join("web.service").display(),
                dir.join("worker.service").display()
            ),
            "systemctl --user daemon-reload".to_string(),
            "systemctl --user start dev.target".to_string(),
        ]
    );
    let record = std::fs::read_to_string(dir.join(LAUNCH_RECORD)).unwrap();
    let units: Vec<&str> = record
        .lines()
        .map(|l| l.split_once(' ').unwrap().0)
        .collect();
    assert_eq!(units, ["dev.target", "web.service", "worker.service"]);

    // Nothing changed: nothing restarts.
    setup.fakes.clear();
    setup.up(&manager).unwrap();
    assert!(!setup
        .fakes
        .command_lines()
        .iter()
        .any(|l| l.contains("restart")));

    // A changed unit restarts alone.
    setup.fakes.clear();
    let unit = dir.join("worker.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    std::fs::write(&unit, text.replace("3600", "7200")).unwrap();
    setup.up(&manager).unwrap();
    let lines = setup.fakes.command_lines();
    assert_eq!(lines[2], "systemctl --user try-restart worker.service");
    assert_eq!(lines[3], "systemctl --user start dev.target");
}

#[test]
fn systemctl_restarts_a_service_whose_etc_file_changed() {
    let setup = SystemdSetup::new();
    let manager = setup.manager(SystemdScope::System);
    setup.up(&manager).unwrap();
    std::fs::write(setup.dir().join("etc/n2d/web/site.conf"), "port 9090\n").unwrap();
    setup.fakes.clear();
    setup.up(&manager).unwrap();
    let lines = setup.fakes.command_lines();
    assert_eq!(lines[2], "systemctl --system try-restart web.service");
    // The system scope installed the new content.
    let installed = setup.etc_root.path().join("etc/n2d/web/site.conf");
    assert_eq!(std::fs::read_to_string(installed).unwrap(), "port 9090\n");
}

#[test]
fn systemctl_stops_and_disables_units_gone_from_the_folder() {
    let setup = SystemdSetup::new();
    let manager = setup.manager(SystemdScope::System);
    setup.up(&manager).unwrap();
    std::fs::remove_file(setup.dir().join("worker.service")).unwrap();
    setup.fakes.clear();
    setup.up(&manager).unwrap();
    let lines = setup.fakes.command_lines();
    assert_eq!(lines[0], "systemctl --system stop worker.service");
    assert_eq!(lines[1], "systemctl --system disable worker.service");
    assert!(lines[2].starts_with("systemctl --system link "));
    assert!(!lines[2].contains("worker.service"), "{}", lines[2]);
}

#[test]
fn systemctl_user_scope_never_writes_etc_and_says_what_to_copy() {
    let setup = SystemdSetup::new();
    let error = setup.up(&setup.manager(SystemdScope::User)).unwrap_err();
    assert!(
        matches!(error, ManagerError::NeedsSetup { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("etc/n2d/web/site.conf"), "{message}");
    assert!(message.contains("--system"), "{message}");
    assert!(setup.fakes.calls().is_empty());
    assert!(!setup.etc_root.path().join("etc").exists());
    assert!(!setup.dir().join(LAUNCH_RECORD).exists());
}

#[test]
fn systemctl_system_scope_installs_etc_files_with_their_mode() {
    let setup = SystemdSetup::new();
    std::fs::set_permissions(
        setup.dir().join("etc/n2d/web/site.conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    setup.up(&setup.manager(SystemdScope::System)).unwrap();
    let installed = setup.etc_root.path().join("etc/n2d/web/site.conf");
    assert_eq!(std::fs::read_to_string(&installed).unwrap(), "port 8080\n");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&installed).unwrap().permissions().mode() & 0o777,
        0o600
    );
}

#[test]
fn systemctl_down_stops_the_target_first_and_unlinks_every_unit() {
    let setup = SystemdSetup::new();
    let manager = setup.manager(SystemdScope::System);
    setup.up(&manager).unwrap();
    setup.fakes.clear();
    let dir = setup.dir();
    manager
        .down(&context(&dir, &setup.folder.deployment, &setup.fakes))
        .unwrap();
    assert_eq!(
        setup.fakes.command_lines(),
        [
            "systemctl --system stop dev.target web.service worker.service",
            "systemctl --system disable dev.target web.service worker.service",
            "systemctl --system daemon-reload",
        ]
    );
    assert!(!dir.join(LAUNCH_RECORD).exists());
}
