//! The compose managers: `up -d` and `down` of `compose.yaml` under the
//! project name of the deployment ([`super::project_name`]), so that two
//! deployments never share containers, networks or volumes.
//!
//! The images n2d builds must be in the engine's store first: when the
//! deployment's `oci` folder sits next to the compose folder, it is loaded
//! (podman: [`super::images::load_with_podman`]; Docker: `skopeo copy …
//! docker-daemon:`, the daemon having no way to read a layout).
//! `down` keeps named volumes: they hold the persisting volumes' data.
use super::images::{load_with_podman, load_with_skopeo, sibling_layout};
use super::invocation::Invocation;
use super::{required_file, LaunchContext, Manager, ManagerError, PodmanOptions};

/// `docker compose -p <project> -f compose.yaml up -d` / `down`.
#[derive(Clone, Copy, Debug, Default)]
pub struct DockerCompose;

/// `podman-compose -p <project> -f compose.yaml up -d` / `down`, with the
/// global podman flags of [`PodmanOptions`] as `--podman-args`.
#[derive(Clone, Debug, Default)]
pub struct PodmanCompose {
    pub podman: PodmanOptions,
}

impl Manager for DockerCompose {
    fn name(&self) -> &'static str {
        "docker-compose"
    }
    fn target(&self) -> &'static str {
        "compose"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["docker"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "compose.yaml")?;
        let docker = Invocation::new(self.name(), "docker", ctx)?;
        if let Some(layout) = sibling_layout(ctx) {
            load_with_skopeo(self.name(), ctx, &layout, "docker-daemon")?;
        }
        docker
            .args([
                "compose",
                "-p",
                &ctx.project,
                "-f",
                "compose.yaml",
                "up",
                "-d",
            ])
            .run_captured()
            .map(drop)
    }
    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "compose.yaml")?;
        Invocation::new(self.name(), "docker", ctx)?
            .args(["compose", "-p", &ctx.project, "-f", "compose.yaml", "down"])
            .run_captured()
            .map(drop)
    }
}

impl PodmanCompose {
    fn invocation(&self, ctx: &LaunchContext) -> Result<Invocation, ManagerError> {
        let mut invocation = Invocation::new(self.name(), "podman-compose", ctx)?;
        if !self.podman.global_args.is_empty() {
            // One argument with `=`: the value starts with `-`, which a
            // separate argument would make look like an option.
            invocation = invocation.arg(format!(
                "--podman-args={}",
                self.podman.global_args.join(" ")
            ));
        }
        Ok(invocation.args(["-p", &ctx.project, "-f", "compose.yaml"]))
    }
}

impl Manager for PodmanCompose {
    fn name(&self) -> &'static str {
        "podman-compose"
    }
    fn target(&self) -> &'static str {
        "compose"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["podman-compose", "podman"]
    }
    fn detached(&self) -> bool {
        true
    }
    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "compose.yaml")?;
        let up = self.invocation(ctx)?.args(["up", "-d"]);
        if let Some(layout) = sibling_layout(ctx) {
            load_with_podman(self.name(), ctx, &layout, &self.podman)?;
        }
        up.run_captured().map(drop)
    }
    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        required_file(self.name(), ctx.dir, "compose.yaml")?;
        self.invocation(ctx)?.arg("down").run_captured().map(drop)
    }
}
