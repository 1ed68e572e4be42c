//! The `systemd` target (being written).
