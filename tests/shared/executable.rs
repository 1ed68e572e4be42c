//! Writing the scripts tests run, shared by the test crates through
//! `#[path]` (`tests/it/support.rs`, `rules/tests/it/support.rs`,
//! `supervisor/tests/it/main.rs`).
use std::path::Path;

/// Writes an executable script through a child process (`cat`). A file
/// this process opened for writing can still be open in a child that
/// another test thread is forking at that moment (until the child execs),
/// and running the script then fails with ETXTBSY ("Text file busy").
pub fn write_executable(path: &Path, contents: &str) {
    use std::io::Write;
    let mut child = std::process::Command::new("/bin/sh")
        .args(["-c", "cat > \"$1\" && chmod 755 \"$1\"", "sh"])
        .arg(path)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("sh runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(contents.as_bytes())
        .expect("write the script");
    assert!(
        child.wait().expect("sh ends").success(),
        "writing {}",
        path.display()
    );
}
