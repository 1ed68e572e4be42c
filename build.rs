//! Links the `n2d-supervise` executable statically (static PIE), when the C
//! toolchain has glibc's static archives; otherwise it stays dynamically
//! linked, which works the same with a larger footprint.
//!
//! Why: the supervisor's peak memory is mostly code pages, and a dynamically
//! linked program maps the whole of libc it touches plus the kernel's 64 KiB
//! fault-around windows of it (about 1.2 MB), where a static link carries only
//! the part of libc it calls. See ARCHITECTURE.md, "Supervisor executable".
//!
//! How, for one binary of the package on stable Cargo: `-C
//! target-feature=+crt-static` applies to every crate and binary, so this
//! script passes link arguments to `n2d-supervise` alone: `-static-pie`, and a
//! search folder where the libraries rustc names for a dynamic link (`-lc`,
//! `-lgcc_s`, …) are links to their static archives (`libgcc_s` being
//! `libgcc_eh`, the unwinder a static Rust program uses), found first.
//! With glibc 2.36 or later, relative relocations are packed (`DT_RELR`):
//! a static PIE applies them at start, and packed they are a few kilobytes
//! instead of 80. Segments are aligned to 64 KiB, so the kernel loads the
//! PIE at a 64 KiB boundary and the code that shares a fault-around window
//! is the same on every run (placed at random 4 KiB boundaries, the peak
//! varied by ±80 kB from one run to the next).

use std::path::{Path, PathBuf};
use std::process::Command;

/// The libraries rustc links a Rust program on linux-gnu with, and the
/// static archive that stands for each.
const ARCHIVES: [(&str, &str); 7] = [
    ("libc.a", "libc.a"),
    ("libm.a", "libm.a"),
    ("libpthread.a", "libpthread.a"),
    ("librt.a", "librt.a"),
    ("libutil.a", "libutil.a"),
    ("libdl.a", "libdl.a"),
    ("libgcc_s.a", "libgcc_eh.a"),
];

const BIN: &str = "n2d-supervise";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=CC");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let env = |name: &str| std::env::var(name).unwrap_or_default();
    if env("CARGO_CFG_TARGET_OS") != "linux"
        || env("CARGO_CFG_TARGET_ENV") != "gnu"
        || env("TARGET") != env("HOST")
    {
        return;
    }
    let cc = std::env::var("RUSTC_LINKER")
        .or_else(|_| std::env::var("CC"))
        .unwrap_or_else(|_| "cc".into());
    let Some(folder) = static_archives(&cc) else {
        println!("cargo:warning=no static glibc (libc.a): {BIN} is linked dynamically and maps more memory");
        return;
    };
    let arg = |value: &str| println!("cargo:rustc-link-arg-bin={BIN}={value}");
    arg("-static-pie");
    arg(&format!("-L{}", folder.display()));
    arg("-Wl,-z,max-page-size=65536");
    if glibc_version(&cc).is_some_and(|version| version >= (2, 36)) {
        arg("-Wl,-z,pack-relative-relocs");
    }
}

/// A folder of links to the static archives, or `None` when one is missing.
fn static_archives(cc: &str) -> Option<PathBuf> {
    file_of(cc, "rcrt1.o")?;
    let folder = PathBuf::from(std::env::var_os("OUT_DIR")?).join("static-archives");
    std::fs::create_dir_all(&folder).ok()?;
    for (name, archive) in ARCHIVES {
        let target = file_of(cc, archive)?;
        let link = folder.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link).ok()?;
    }
    Some(folder)
}

/// Where the C compiler finds `name`, if it does.
fn file_of(cc: &str, name: &str) -> Option<PathBuf> {
    let out = Command::new(cc)
        .arg(format!("-print-file-name={name}"))
        .output()
        .ok()?;
    let path = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    // Not found, it prints the bare name back.
    (out.status.success() && path.is_absolute() && Path::new(&path).exists()).then_some(path)
}

/// The glibc version the C compiler's headers declare.
fn glibc_version(cc: &str) -> Option<(u32, u32)> {
    let mut child = Command::new(cc)
        .args(["-E", "-dM", "-x", "c", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take()?;
        stdin.write_all(b"#include <features.h>\n").ok()?;
    }
    let out = child.wait_with_output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let define = |name: &str| -> Option<u32> {
        text.lines()
            .find_map(|line| line.strip_prefix(&format!("#define {name} ")))?
            .trim()
            .parse()
            .ok()
    };
    Some((define("__GLIBC__")?, define("__GLIBC_MINOR__")?))
}
