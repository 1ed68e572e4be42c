//! The persistent cache. The only crate that touches sled.
