//! A base layer with the static busybox of Debian's `busybox-static`, for
//! the tests that run images n2d builds. Shared by the test crates through
//! `#[path]` (`rules/tests/it/support.rs`, `tests/it/support.rs`).

/// A base layer with the static busybox as `/bin/busybox`, and `/bin/sh`
/// and the tools the entrypoint uses as links to it.
pub fn busybox_base_layer() -> Vec<u8> {
    let busybox = std::fs::read("/bin/busybox").expect("read /bin/busybox");
    let mut builder = tar::Builder::new(Vec::new());
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    builder
        .append_data(&mut dir, "bin/", std::io::empty())
        .unwrap();
    let mut file = tar::Header::new_ustar();
    file.set_mode(0o755);
    file.set_size(busybox.len() as u64);
    builder
        .append_data(&mut file, "bin/busybox", busybox.as_slice())
        .unwrap();
    for tool in ["sh", "cat", "mkdir", "rm", "echo", "nc", "sleep", "dirname"] {
        let mut link = tar::Header::new_ustar();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, format!("bin/{tool}"), "busybox")
            .unwrap();
    }
    builder.into_inner().unwrap()
}
