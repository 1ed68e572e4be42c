//! Log multiplexing: every line arrives once, whole, with its prefix — for a
//! flood of lines, for lines written in pieces or without a final newline,
//! and for binary garbage (converted lossily, one output line per input line).

use std::collections::HashMap;

use crate::Target;

/// Output lines per prefix name, in order, with the `name | ` prefix removed.
fn lines_by_prefix(stdout: &str) -> HashMap<String, Vec<String>> {
    let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
    for line in stdout.lines() {
        let (name, text) = line
            .split_once(" | ")
            .unwrap_or_else(|| panic!("line without prefix: {line:?}"));
        by_name
            .entry(name.trim_end().to_owned())
            .or_default()
            .push(text.to_owned());
    }
    by_name
}

#[test]
fn every_line_arrives_once_whole_and_prefixed() {
    let mut target = Target::new();
    // Deterministic garbage: every byte value, invalid UTF-8, NULs and CRs.
    let garbage: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(target.path().join("garbage.bin"), &garbage).expect("write garbage");
    let count = 1_000_000;
    target.service("flood", &format!("seq 1 {count}"));
    target.service(
        "partial",
        "printf 'one '; sleep 0.1; printf 'line\\n'; printf 'tw'; sleep 0.1; printf 'o\\nno newline at the end'",
    );
    target.service("garbage", "cat garbage.bin");
    let (status, stdout, stderr) = target.run();
    assert!(status.success(), "{stderr}");
    let by_name = lines_by_prefix(&stdout);

    let flood = &by_name["flood"];
    assert_eq!(flood.len(), count);
    assert!(
        flood
            .iter()
            .enumerate()
            .all(|(i, line)| line == &(i + 1).to_string()),
        "flood lines are out of order, cut or duplicated"
    );
    assert_eq!(
        by_name["partial"],
        ["one line", "two", "no newline at the end"]
    );

    let expected: Vec<String> = garbage
        .split(|&b| b == b'\n')
        .map(|line| String::from_utf8_lossy(line).into_owned())
        .collect();
    // `str::lines` also splits at "\r\n"; compare on the raw text instead.
    let garbage_out: Vec<&str> = stdout
        .split('\n')
        .filter_map(|l| l.strip_prefix("garbage | "))
        .collect();
    assert_eq!(garbage_out.len(), expected.len());
    assert!(garbage_out
        .iter()
        .zip(&expected)
        .all(|(got, want)| got == want));

    // The per-instance log files hold the raw bytes.
    let flood_log =
        std::fs::read_to_string(target.path().join("logs/flood.log")).expect("flood.log");
    assert_eq!(flood_log.lines().count(), count);
    let mut garbage_log =
        std::fs::read(target.path().join("logs/garbage.log")).expect("garbage.log");
    if garbage.last() != Some(&b'\n') {
        assert_eq!(
            garbage_log.pop(),
            Some(b'\n'),
            "a final partial line is completed"
        );
    }
    assert_eq!(garbage_log, garbage);
}

#[test]
fn prefixes_are_aligned_to_the_longest_instance_name() {
    let mut target = Target::new();
    target.service("a", "echo hi");
    target.service("longer-name", "echo there").replicas = 2;
    let (status, stdout, _) = target.run();
    assert!(status.success());
    assert!(
        stdout.lines().any(|l| l == "a             | hi"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l == "longer-name.2 | there"),
        "{stdout}"
    );
}
