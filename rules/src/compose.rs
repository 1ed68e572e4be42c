//! The `compose` target (being written).
