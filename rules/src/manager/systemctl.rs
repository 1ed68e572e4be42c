//! The systemctl manager: installs the systemd target's units where they are
//! (`systemctl link`, no copy) and starts the deployment's `.target`.
//!
//! `up`, in order:
//! 1. the files the units read under `/etc/n2d/` (the folder holds them
//!    under `etc/n2d/`): with [`SystemdScope::System`] they are copied there
//!    (only under `etc/n2d/`, written to a temporary sibling then renamed);
//!    with [`SystemdScope::User`] n2d does not write to `/etc`, so every file
//!    must already be there with the same content, else the launch stops
//!    with [`ManagerError::NeedsSetup`] saying what to copy;
//! 2. units of the last launch that are gone from the folder are stopped
//!    and disabled;
//! 3. `systemctl link` of every unit of the folder, then `daemon-reload`;
//! 4. `try-restart` of the running units whose unit file or `/etc/n2d/`
//!    files changed since the last launch (the others keep their process);
//! 5. `start` of the `.target`, which starts every unit not running.
//!
//! The last launch is recorded in the folder, in [`LAUNCH_RECORD`] (one line
//! `<unit> <blake3 of its unit file and files>` per unit): the launch record
//! of `n2d up` says whether the folder changed as a whole, this one which
//! unit did. The materializer leaves it alone (it is not in the folder's
//! manifest).
//!
//! `down` stops the `.target` and the units, disables (unlinks) them,
//! reloads, and removes the record. Copied `/etc/n2d/` files stay: they are
//! configuration, not running state.
//!
//! Secrets (`LoadCredential=` from `/etc/credstore/`) are the user's step in
//! both scopes: n2d never writes a secret value.
use std::collections::BTreeMap;
use std::fs;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::invocation::Invocation;
use super::{LaunchContext, Manager, ManagerError};
use crate::systemd::target_unit_name;

/// The file in the systemd folder recording what the last `up` launched.
pub const LAUNCH_RECORD: &str = ".n2d-launched";

/// Which systemd instance the units go to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SystemdScope {
    /// `systemctl --user`: the user's own manager, no root needed.
    User,
    /// `systemctl --system`: the machine's manager (as root).
    System,
}

/// `systemctl` in one scope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Systemctl {
    pub scope: SystemdScope,
    /// The root under which `etc/n2d/` is installed or checked: `/` on a
    /// real machine.
    pub root: PathBuf,
}

impl Systemctl {
    /// The user's manager (the default of `n2d up`).
    pub fn user() -> Self {
        Systemctl {
            scope: SystemdScope::User,
            root: PathBuf::from("/"),
        }
    }

    /// The machine's manager; `up` copies `etc/n2d/` to `/etc/n2d/`.
    pub fn system() -> Self {
        Systemctl {
            scope: SystemdScope::System,
            root: PathBuf::from("/"),
        }
    }

    fn systemctl(&self, ctx: &LaunchContext) -> Result<Invocation, ManagerError> {
        Ok(
            Invocation::new(self.name(), "systemctl", ctx)?.arg(match self.scope {
                SystemdScope::User => "--user",
                SystemdScope::System => "--system",
            }),
        )
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> ManagerError {
        let manager = self.name();
        let path = path.to_path_buf();
        move |source| ManagerError::Io {
            manager,
            action,
            path,
            source,
        }
    }

    /// Step 1 of `up`: the `etc/n2d/` files, copied or checked.
    fn install_files(&self, files: &[ConfigFile]) -> Result<(), ManagerError> {
        let mut missing = Vec::new();
        for file in files {
            let installed = self.root.join(&file.relative);
            match self.scope {
                SystemdScope::System => {
                    let parent = installed.parent().expect("under etc/n2d");
                    fs::create_dir_all(parent)
                        .map_err(self.io("creating the folder for unit files", parent))?;
                    let temporary = parent.join(format!(
                        ".{}.n2d-tmp",
                        installed.file_name().unwrap().to_string_lossy()
                    ));
                    let mut out = fs::OpenOptions::new()
                        .write(true)
                        .create(true)
                        .truncate(true)
                        .open(&temporary)
                        .map_err(self.io("creating", &temporary))?;
                    // The mode before the content: a 0600 file never exists
                    // with a wider mode while it holds data.
                    out.set_permissions(fs::Permissions::from_mode(file.mode))
                        .map_err(self.io("setting the mode of", &temporary))?;
                    out.write_all(&file.bytes)
                        .map_err(self.io("writing", &temporary))?;
                    drop(out);
                    fs::rename(&temporary, &installed)
                        .map_err(self.io("installing", &installed))?;
                }
                SystemdScope::User => {
                    if fs::read(&installed).ok().as_deref() != Some(file.bytes.as_slice()) {
                        missing.push(installed);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(());
        }
        let list: Vec<String> = missing
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect();
        Err(ManagerError::NeedsSetup {
            manager: self.name(),
            message: format!(
                "the units read files under /etc/n2d/ that are missing or differ:\n{}\nas root, copy them with `cp -r --preserve=mode <folder>/etc/n2d/. /etc/n2d/`, or launch with the system scope (`--system`, as root), which installs them",
                list.join("\n")
            ),
        })
    }
}

impl Manager for Systemctl {
    fn name(&self) -> &'static str {
        "systemctl"
    }
    fn target(&self) -> &'static str {
        "systemd"
    }
    fn tools(&self) -> &'static [&'static str] {
        &["systemctl"]
    }
    fn detached(&self) -> bool {
        true
    }

    fn up(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        let folder = read_folder(self.name(), ctx)?;
        // Look the tool up before touching /etc: a missing systemctl must
        // leave the machine as it was.
        self.systemctl(ctx)?;
        self.install_files(&folder.files)?;
        let record = read_record(ctx.dir);
        let current = folder.digests();

        let gone: Vec<&String> = record
            .keys()
            .filter(|unit| !current.contains_key(*unit))
            .collect();
        if !gone.is_empty() {
            // A unit that is gone may already be stopped or unknown to
            // systemd (its link dangles): stopping and disabling it are then
            // no-ops that fail, and must not stop the launch.
            let _ = self.systemctl(ctx)?.arg("stop").args(&gone).run_captured();
            let _ = self
                .systemctl(ctx)?
                .arg("disable")
                .args(&gone)
                .run_captured();
        }

        let paths: Vec<PathBuf> = folder.units.iter().map(|u| ctx.dir.join(u)).collect();
        self.systemctl(ctx)?
            .arg("link")
            .args(&paths)
            .run_captured()?;
        self.systemctl(ctx)?.arg("daemon-reload").run_captured()?;
        let changed: Vec<&String> = current
            .iter()
            .filter(|(unit, digest)| {
                unit.ends_with(".service") && record.get(*unit).is_some_and(|old| old != *digest)
            })
            .map(|(unit, _)| unit)
            .collect();
        if !changed.is_empty() {
            self.systemctl(ctx)?
                .arg("try-restart")
                .args(&changed)
                .run_captured()?;
        }
        self.systemctl(ctx)?
            .args(["start", &folder.target])
            .run_captured()?;
        write_record(self, ctx.dir, &current)
    }

    fn down(&self, ctx: &LaunchContext) -> Result<(), ManagerError> {
        let folder = read_folder(self.name(), ctx)?;
        let record = read_record(ctx.dir);
        let mut units: Vec<String> = folder.units.clone();
        units.extend(record.into_keys());
        units.sort();
        units.dedup();
        // The target first, so that its services are not started again by
        // it while they stop.
        let mut stop = vec![folder.target.clone()];
        stop.extend(units.iter().filter(|u| **u != folder.target).cloned());
        self.systemctl(ctx)?
            .arg("stop")
            .args(&stop)
            .run_captured()?;
        self.systemctl(ctx)?
            .arg("disable")
            .args(&units)
            .run_captured()?;
        self.systemctl(ctx)?.arg("daemon-reload").run_captured()?;
        let record_path = ctx.dir.join(LAUNCH_RECORD);
        match fs::remove_file(&record_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(self.io("removing the launch record", &record_path)(e))
            }
            _ => Ok(()),
        }
    }
}

/// What the systemd target wrote in the folder.
struct SystemdFolder {
    /// Unit file names, sorted; the `.target` among them.
    units: Vec<String>,
    /// The content of each unit file, by name.
    unit_bytes: BTreeMap<String, Vec<u8>>,
    target: String,
    /// The files under `etc/n2d/`, sorted by path.
    files: Vec<ConfigFile>,
}

/// A file under `etc/n2d/` of the folder.
struct ConfigFile {
    /// `etc/n2d/<service>/<name>`, relative to the folder and to the root.
    relative: PathBuf,
    bytes: Vec<u8>,
    mode: u32,
}

impl SystemdFolder {
    /// unit → digest of the unit file and, for a service, of its files.
    fn digests(&self) -> BTreeMap<String, String> {
        self.units
            .iter()
            .map(|unit| {
                let mut hasher = blake3::Hasher::new();
                hasher.update(unit.as_bytes());
                hasher.update(&[0]);
                hasher.update(&self.unit_bytes[unit]);
                if let Some(service) = unit.strip_suffix(".service") {
                    let own = Path::new("etc/n2d").join(service);
                    for file in self.files.iter().filter(|f| f.relative.starts_with(&own)) {
                        hasher.update(file.relative.to_string_lossy().as_bytes());
                        hasher.update(&[0]);
                        hasher.update(&file.mode.to_le_bytes());
                        hasher.update(&(file.bytes.len() as u64).to_le_bytes());
                        hasher.update(&file.bytes);
                    }
                }
                (unit.clone(), hasher.finalize().to_hex().to_string())
            })
            .collect()
    }
}

fn read_folder(manager: &'static str, ctx: &LaunchContext) -> Result<SystemdFolder, ManagerError> {
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ManagerError::Io {
            manager,
            action,
            path,
            source,
        }
    };
    let target = target_unit_name(ctx.deployment);
    let mut units = Vec::new();
    let mut unit_bytes = BTreeMap::new();
    let entries = fs::read_dir(ctx.dir).map_err(io("listing the unit folder", ctx.dir))?;
    for entry in entries {
        let entry = entry.map_err(io("listing the unit folder", ctx.dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if (name.ends_with(".service") || name == target) && entry.path().is_file() {
            let bytes = fs::read(entry.path()).map_err(io("reading the unit", &entry.path()))?;
            unit_bytes.insert(name.clone(), bytes);
            units.push(name);
        }
    }
    if !units.contains(&target) {
        return Err(ManagerError::BadOutput {
            manager,
            path: ctx.dir.to_path_buf(),
            message: format!("it has no `{target}`: is it an output folder of the systemd target?"),
        });
    }
    units.sort();
    let mut config = Vec::new();
    collect_config_files(manager, ctx.dir, Path::new("etc/n2d"), &mut config)?;
    config.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(SystemdFolder {
        units,
        unit_bytes,
        target,
        files: config,
    })
}

/// Every regular file under `dir/relative`, recursively (symbolic links are
/// not followed: the folder is n2d's output and has none).
fn collect_config_files(
    manager: &'static str,
    dir: &Path,
    relative: &Path,
    out: &mut Vec<ConfigFile>,
) -> Result<(), ManagerError> {
    let path = dir.join(relative);
    let io = |action: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| ManagerError::Io {
            manager,
            action,
            path,
            source,
        }
    };
    let entries = match fs::read_dir(&path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("listing the unit files", &path)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io("listing the unit files", &path))?;
        let kind = entry.file_type().map_err(io("inspecting", &entry.path()))?;
        let child = relative.join(entry.file_name());
        if kind.is_dir() {
            collect_config_files(manager, dir, &child, out)?;
        } else if kind.is_file() {
            let meta = entry.metadata().map_err(io("inspecting", &entry.path()))?;
            let bytes = fs::read(entry.path()).map_err(io("reading", &entry.path()))?;
            out.push(ConfigFile {
                relative: child,
                bytes,
                mode: meta.permissions().mode() & 0o7777,
            });
        }
    }
    Ok(())
}

/// The record of the last launch; empty when there is none or it cannot be
/// read (every unit then counts as new: started, not restarted).
fn read_record(dir: &Path) -> BTreeMap<String, String> {
    fs::read_to_string(dir.join(LAUNCH_RECORD))
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (unit, digest) = line.split_once(' ')?;
            Some((unit.to_string(), digest.to_string()))
        })
        .collect()
}

fn write_record(
    manager: &Systemctl,
    dir: &Path,
    digests: &BTreeMap<String, String>,
) -> Result<(), ManagerError> {
    let text: String = digests
        .iter()
        .map(|(unit, digest)| format!("{unit} {digest}\n"))
        .collect();
    let temporary = dir.join(format!("{LAUNCH_RECORD}.tmp"));
    let path = dir.join(LAUNCH_RECORD);
    fs::write(&temporary, text).map_err(manager.io("writing the launch record", &temporary))?;
    fs::rename(&temporary, &path).map_err(manager.io("writing the launch record", &path))
}
