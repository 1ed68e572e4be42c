//! Names this build of the supervisor for `n2d` (`command_line::BUILD`): a
//! digest (FNV-1a, 64 bits) of the crate's version and source files, so that
//! `n2d` can tell an `n2d-supervise` built from other sources.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    let mut files = vec![PathBuf::from("Cargo.toml")];
    collect(Path::new("src"), &mut files);
    files.sort();
    let mut digest = Fnv::default();
    digest.write(env!("CARGO_PKG_VERSION").as_bytes());
    for file in &files {
        let text = std::fs::read(file).unwrap_or_else(|e| panic!("read {}: {e}", file.display()));
        digest.write(file.to_string_lossy().as_bytes());
        digest.write(&(text.len() as u64).to_le_bytes());
        digest.write(&text);
    }
    println!("cargo:rustc-env=N2D_SUPERVISOR_BUILD={:016x}", digest.0);
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("read a folder entry").path();
        if path.is_dir() {
            collect(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
