//! Integration tests of the cache: one file per behaviour.
mod cas;
mod heads;
mod lock;
mod maintenance;
mod packs;
mod records;
mod recovery;

use std::path::Path;

use n2d_cache::Cache;

/// Opens the cache in `dir`, failing the test if its lock is held.
fn open(dir: &Path) -> Cache {
    Cache::open(dir, |path| panic!("lock {} is held", path.display())).unwrap()
}
