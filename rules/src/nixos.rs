//! The `nixos` target (being written).
