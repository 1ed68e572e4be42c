//! Tests of the procfile, process-compose, systemd, nixos and vm targets.
