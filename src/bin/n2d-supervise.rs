//! `n2d-supervise [--timestamps] [--stay] [--] DIR`: the process that
//! supervises for `n2d up` and `n2d watch`, installed next to `n2d` (see
//! ARCHITECTURE.md, "Supervisor executable").
//!
//! Its point is a small image: the supervisor's peak memory is mostly the
//! code pages it maps, so this executable holds only the supervisor and is
//! linked statically where the C toolchain allows it (`build.rs`). For the
//! same reason it has its own C `main` instead of Rust's runtime start-up,
//! whose stack-guard probe alone maps tens of kilobytes of libc (sscanf of
//! /proc/self/maps) that the supervisor never needs; what of that start-up
//! matters here, [`n2d_supervisor::command_line::main`] does. (Under
//! `cargo test --all-targets` the test harness's `main` stays.)
#![cfg_attr(not(test), no_main)]

#[cfg(not(test))]
use std::ffi::{c_char, c_int};

#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    // std reads the arguments itself on glibc, before `main`.
    c_int::from(n2d_supervisor::command_line::main(
        std::env::args_os().skip(1),
    ))
}
