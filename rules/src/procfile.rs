//! The `procfile` target (being written).
