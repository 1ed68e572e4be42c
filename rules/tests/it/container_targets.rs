//! Tests of the oci, compose and k8s targets.
