//! Tests of the oci, compose and k8s targets: snapshots of what they write,
//! and the real consumers (docker-compose, kubernetes-validate, skopeo,
//! umoci, podman) on it. One submodule per target under `containers/`.
#[path = "containers/fixtures.rs"]
mod fixtures;
#[path = "containers/output.rs"]
mod output;

#[path = "containers/compose.rs"]
mod compose;
#[path = "containers/k8s.rs"]
mod k8s;
#[path = "containers/oci.rs"]
mod oci;
#[path = "containers/random.rs"]
mod random;
