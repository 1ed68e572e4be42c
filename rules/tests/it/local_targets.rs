//! Tests of the procfile, process-compose, systemd, nixos and vm targets,
//! checked by the real consumers of each format (TESTING.md).
#[path = "local/entrypoint.rs"]
mod entrypoint;
#[path = "local/fixture.rs"]
mod fixture;
#[path = "local/nix_and_compose.rs"]
mod nix_and_compose;
#[path = "local/procfile.rs"]
mod procfile;
#[path = "local/systemd.rs"]
mod systemd;
