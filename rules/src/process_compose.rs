//! The `process_compose` target (being written).
