//! The `vm` target (being written).
