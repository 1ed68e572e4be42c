//! The `k8s` target (being written).
