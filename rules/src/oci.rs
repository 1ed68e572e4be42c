//! The `oci` target (being written).
