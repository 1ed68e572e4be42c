//! The `entrypoint` target (being written).
