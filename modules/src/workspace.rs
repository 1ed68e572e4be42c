//! The workspace: its root (the nearest folder holding
//! `n2d.workspace.toml`), its settings, and its packages (folders holding a
//! module file), found by walking the folders.
//!
//! Discovery skips hidden folders, `target*`, `node_modules`, the output and
//! cache folders, and nested workspaces (a folder with its own
//! `n2d.workspace.toml`), as Bazel skips nested repositories. A folder
//! whose stat is the one its last listing was recorded with is not read
//! again (`listings`).
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::listings::{self, Kind, Listing, Listings};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind};
use crate::parse::Format;

/// The file that marks a workspace root.
pub const WORKSPACE_FILE: &str = "n2d.workspace.toml";

/// A discovered workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Workspace {
    /// Absolute, canonical.
    pub root: PathBuf,
    pub settings: Settings,
    /// Sorted by package path.
    pub packages: Vec<PackageFile>,
    /// Every folder the walk looked into, with the stat its listing was
    /// taken at, sorted by path: while each still stats the same, a walk
    /// would find the same packages. `None` when a listing was too recent
    /// to vouch for (see `listings`) or the packages were not walked for.
    #[serde(default)]
    pub folders: Option<Vec<WalkedFolder>>,
}

/// A folder discovery walked and the stat of the listing it used.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WalkedFolder {
    /// Relative to the root, `/`-separated; `""` for the root.
    pub path: String,
    pub mtime_ns: i64,
    pub inode: u64,
}

impl WalkedFolder {
    /// Whether the folder under `root` still stats as when it was listed:
    /// then a walk would list the same entries (see `listings`).
    pub fn unchanged(&self, root: &Path) -> bool {
        folder_stat(&root.join(&self.path))
            .is_ok_and(|(mtime_ns, inode)| mtime_ns == self.mtime_ns && inode == self.inode)
    }
}

/// A folder's mtime (ns) and inode, as discovery records its listing
/// with: through symbolic links, as it reads the folder.
fn folder_stat(dir: &Path) -> std::io::Result<(i64, u64)> {
    let meta = std::fs::metadata(dir)?;
    Ok((meta.mtime() * 1_000_000_000 + meta.mtime_nsec(), meta.ino()))
}

/// A workspace's root and settings, before its packages are known.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkspaceRoot {
    /// Absolute, canonical.
    pub root: PathBuf,
    pub settings: Settings,
}

impl WorkspaceRoot {
    /// Finds the packages by walking the folders.
    pub fn discover(self) -> Result<Workspace, Error> {
        let (packages, folders) = find_packages(&self.root, &self.settings)?;
        Ok(Workspace {
            root: self.root,
            settings: self.settings,
            packages,
            folders,
        })
    }

    /// The workspace whose module files are `files` (workspace-relative,
    /// as [`PackageFile::display_path`] writes them, sorted by package)
    /// and whose walk saw `folders`: what the caller has proved a walk
    /// would find now, each folder still stat-ing as recorded. `None` when
    /// a file is not a module file's path.
    pub fn assume(self, files: &[String], folders: Vec<WalkedFolder>) -> Option<Workspace> {
        let packages = files
            .iter()
            .map(|file| PackageFile::from_display_path(file))
            .collect::<Option<Vec<_>>>()?;
        Some(Workspace {
            root: self.root,
            settings: self.settings,
            packages,
            folders: Some(folders),
        })
    }
}

/// `n2d.workspace.toml`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where outputs go, relative to the root.
    pub output_dir: String,
    /// Where the cache lives, relative to the root.
    pub cache_dir: String,
    /// Targets built when a command names none.
    pub default_targets: Vec<String>,
    /// Labels of modules imported by every service of the workspace.
    pub imports: Vec<String>,
    /// Base layer for images n2d builds (an OCI layout path or image reference).
    pub base_layer: Option<String>,
    /// Address of a remote cache.
    pub remote_cache: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            output_dir: "n2d-out".into(),
            cache_dir: ".n2d".into(),
            default_targets: vec!["procfile".into()],
            imports: Vec::new(),
            base_layer: None,
            remote_cache: None,
        }
    }
}

impl Settings {
    /// Parses `n2d.workspace.toml`; `display_path` names it in messages.
    pub fn parse(display_path: &str, text: &str) -> Result<Settings, Error> {
        toml::from_str(text).map_err(|err| {
            let source = crate::node::SourceFile::new(display_path, text);
            let span = err.span().unwrap_or(0..0);
            Error::new(
                ErrorKind::Workspace,
                format!("invalid workspace settings: {}", err.message().trim().trim_end_matches('.')),
            )
            .at(Some(source.locate(crate::node::Span::new(span.start, span.end))))
            .help("known keys: output_dir, cache_dir, default_targets, imports, base_layer, remote_cache")
        })
    }
}

/// One module file of the workspace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PackageFile {
    /// The package path (`apps/web`; `""` for the root).
    pub package: String,
    /// The module file, relative to the root.
    pub path: PathBuf,
    pub format: Format,
}

impl PackageFile {
    /// How messages name the file: `apps/web/n2d.toml`.
    pub fn display_path(&self) -> String {
        self.path.to_string_lossy().replace('\\', "/")
    }

    /// The module file at `path` (as [`PackageFile::display_path`] writes
    /// it); `None` when its name is not a module file's.
    pub fn from_display_path(path: &str) -> Option<PackageFile> {
        let (package, name) = match path.rsplit_once('/') {
            Some((package, name)) => (package, name),
            None => ("", path),
        };
        let format = Format::of_file_name(name)?;
        Some(PackageFile {
            package: package.to_string(),
            path: PathBuf::from(path),
            format,
        })
    }
}

impl Workspace {
    /// Finds the workspace around `start` (a folder) and its packages.
    pub fn discover(start: &Path) -> Result<Workspace, Error> {
        Workspace::locate(start)?.discover()
    }

    /// Finds the root of the workspace `start` is in and reads its
    /// settings; the packages are not looked for yet.
    pub fn locate(start: &Path) -> Result<WorkspaceRoot, Error> {
        let start = std::fs::canonicalize(start).map_err(|err| {
            io_error(
                format!("cannot resolve the folder {}", start.display()),
                err,
            )
        })?;
        let root = start
            .ancestors()
            .find(|dir| dir.join(WORKSPACE_FILE).is_file())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Workspace,
                    format!(
                        "no {WORKSPACE_FILE} in {} or any folder above it",
                        start.display()
                    ),
                )
                .help("run `n2d init` to create a workspace here")
            })?
            .to_path_buf();
        Workspace::settings_of(root)
    }

    /// Reads the workspace whose root is `root`.
    pub fn load(root: &Path) -> Result<Workspace, Error> {
        Workspace::settings_of(root.to_path_buf())?.discover()
    }

    fn settings_of(root: PathBuf) -> Result<WorkspaceRoot, Error> {
        let settings_path = root.join(WORKSPACE_FILE);
        let text = std::fs::read_to_string(&settings_path)
            .map_err(|err| io_error(format!("cannot read {}", settings_path.display()), err))?;
        let settings = Settings::parse(WORKSPACE_FILE, &text)?;
        Ok(WorkspaceRoot { root, settings })
    }

    /// The package of a folder (the nearest enclosing package), for `:name`
    /// labels typed in that folder.
    pub fn package_of(&self, dir: &Path) -> Option<String> {
        let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        let relative = dir.strip_prefix(&self.root).ok()?;
        let mut candidate = package_path(relative);
        loop {
            if self.packages.iter().any(|p| p.package == candidate) {
                return Some(candidate);
            }
            if candidate.is_empty() {
                return None;
            }
            candidate = match candidate.rsplit_once('/') {
                Some((parent, _)) => parent.to_string(),
                None => String::new(),
            };
        }
    }
}

/// The packages under `root`, and the folders walked (see
/// [`Workspace::folders`]).
fn find_packages(
    root: &Path,
    settings: &Settings,
) -> Result<(Vec<PackageFile>, Option<Vec<WalkedFolder>>), Error> {
    let skip_dirs = [
        settings.output_dir.trim_matches('/').to_string(),
        settings.cache_dir.trim_matches('/').to_string(),
    ];
    // The cache lives in the cache folder, once a build has made it.
    let cache_dir = root.join(&settings.cache_dir);
    let cache_file = cache_dir.is_dir().then(|| cache_dir.join("discovery"));
    let discovery = Discovery {
        root,
        skip_dirs: &skip_dirs,
        cached: cache_file
            .as_deref()
            .map(listings::load)
            .unwrap_or_default(),
        started_ns: now_ns(),
        recorded: Mutex::new(Listings::new()),
        read_any: AtomicBool::new(false),
    };
    let mut packages = discovery.walk(root, true)?;
    packages.sort_by(|a, b| a.package.cmp(&b.package));
    let recorded = discovery
        .recorded
        .into_inner()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(file) = cache_file {
        // Rewritten when a folder was read (changed, new or not trusted
        // yet) or one is gone.
        if discovery.read_any.load(Ordering::Relaxed) || recorded.len() != discovery.cached.len() {
            listings::save(&file, &recorded);
        }
    }
    let mut folders = recorded
        .into_iter()
        .map(|(path, listing)| {
            listing.trusted.then_some(WalkedFolder {
                path,
                mtime_ns: listing.mtime_ns,
                inode: listing.inode,
            })
        })
        .collect::<Option<Vec<_>>>();
    if let Some(folders) = &mut folders {
        folders.sort_by(|a, b| a.path.cmp(&b.path));
    }
    Ok((packages, folders))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The walk behind [`find_packages`]. Hand-written rather than walkdir:
/// it lists each folder once and decides from that listing whether the
/// folder is a nested workspace, so discovery costs one `readdir` per
/// folder and no `stat`; and it walks sibling folders in parallel (rayon),
/// since every build, even a no-op, starts with it.
struct Discovery<'a> {
    root: &'a Path,
    skip_dirs: &'a [String],
    /// The listings of the last discovery.
    cached: Listings,
    /// When this walk started: a folder changed less than
    /// `listings::RACY_NS` before is not trusted next time.
    started_ns: i64,
    /// The listings of this walk, for the next.
    recorded: Mutex<Listings>,
    /// Whether a folder was read rather than taken from `cached`.
    read_any: AtomicBool,
}

impl Discovery<'_> {
    /// The packages in `dir` and below. Two module files of one package are
    /// in one folder, so that check needs only the folder's own listing.
    fn walk(&self, dir: &Path, is_root: bool) -> Result<Vec<PackageFile>, Error> {
        use rayon::prelude::*;
        let unreadable = |err: std::io::Error| {
            Error::new(
                ErrorKind::Workspace,
                format!("cannot read the folder {}: {err}", dir.display()),
            )
            .help("check the folder's permissions")
        };
        let mut entries = self.list(dir).map_err(unreadable)?;
        if !is_root
            && entries.iter().any(|(name, kind)| {
                name == WORKSPACE_FILE && (*kind != Kind::Symlink || dir.join(name).exists())
            })
        {
            // A nested workspace is not part of this one.
            return Ok(Vec::new());
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut packages: Vec<PackageFile> = Vec::new();
        let mut subdirs = Vec::new();
        for (name, kind) in entries {
            let path = dir.join(&name);
            if kind == Kind::Dir {
                let text = name.to_string_lossy();
                let relative = path
                    .strip_prefix(self.root)
                    .map(package_path)
                    .unwrap_or_default();
                let skipped = text.starts_with('.')
                    || text.starts_with("target")
                    || text == "node_modules"
                    || self.skip_dirs.contains(&relative);
                if !skipped {
                    subdirs.push(path);
                }
                continue;
            }
            if kind != Kind::File {
                continue;
            }
            let Some(format) = name.to_str().and_then(Format::of_file_name) else {
                continue;
            };
            let relative = path.strip_prefix(self.root).unwrap_or(&path).to_path_buf();
            let package = relative.parent().map(package_path).unwrap_or_default();
            if let Some(other) = packages.first() {
                return Err(Error::new(
                    ErrorKind::Duplicate,
                    format!(
                        "the package //{package} has two module files: {} and {}",
                        other.display_path(),
                        relative.display()
                    ),
                )
                .help("keep one module file per folder"));
            }
            packages.push(PackageFile {
                package,
                path: relative,
                format,
            });
        }
        // In listing order, so that the error reported is the first one.
        let below: Vec<Result<Vec<PackageFile>, Error>> = subdirs
            .par_iter()
            .map(|subdir| self.walk(subdir, false))
            .collect();
        for found in below {
            packages.extend(found?);
        }
        Ok(packages)
    }
}

impl Discovery<'_> {
    /// What discovery looks at in `dir`: its recorded listing when the
    /// folder's stat is the one recorded and the listing is trusted, else
    /// what `readdir` gives (recorded for the next walk).
    fn list(&self, dir: &Path) -> std::io::Result<Vec<(OsString, Kind)>> {
        let key = dir
            .strip_prefix(self.root)
            .map(package_path)
            .unwrap_or_default();
        // Before the listing: a change while it is read gives the folder a
        // newer mtime than the one recorded.
        let (mtime_ns, inode) = folder_stat(dir)?;
        if let Some(cached) = self.cached.get(&key) {
            if cached.trusted && cached.mtime_ns == mtime_ns && cached.inode == inode {
                let entries = cached.entries.clone();
                self.record(key, cached.clone());
                return Ok(entries);
            }
        }
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let name = entry.file_name();
            let kind = if file_type.is_dir() {
                Kind::Dir
            } else if file_type.is_symlink() {
                Kind::Symlink
            } else if file_type.is_file() {
                Kind::File
            } else {
                continue;
            };
            // Only the names discovery looks at.
            let relevant = kind == Kind::Dir
                || matches!(
                    name.to_str(),
                    Some(WORKSPACE_FILE | "n2d.toml" | "n2d.json" | "n2d.nix")
                );
            if relevant {
                entries.push((name, kind));
            }
        }
        let trusted = mtime_ns < self.started_ns - listings::RACY_NS
            && !entries
                .iter()
                .any(|(name, kind)| *kind == Kind::Symlink && name == WORKSPACE_FILE);
        self.read_any.store(true, Ordering::Relaxed);
        self.record(
            key,
            Listing {
                mtime_ns,
                inode,
                trusted,
                entries: entries.clone(),
            },
        );
        Ok(entries)
    }

    fn record(&self, key: String, listing: Listing) {
        self.recorded
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, listing);
    }
}

fn package_path(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

fn io_error(context: String, err: std::io::Error) -> Error {
    Error::new(ErrorKind::Workspace, format!("{context}: {err}"))
        .help("check that the path exists and is readable")
}
