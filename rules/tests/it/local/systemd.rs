//! The systemd target: every unit passes `systemd-analyze verify`, and
//! systemd's own parser gives back exactly the values written.
use std::path::Path;
use std::process::Command;

use n2d_rules::systemd::Systemd;
use n2d_rules::Rule;
use proptest::prelude::*;
use serde_json::json;

use super::entrypoint::{case_count, nasty_string};
use super::fixture;
use crate::support;

fn machine_services() -> Vec<n2d_modules::service::Service> {
    fixture::services(|s, f| format!("/etc/n2d/{s}/{f}"))
}

#[test]
fn snapshot_of_the_fixture_deployment() {
    let (artifacts, warnings) = fixture::build(
        &Systemd,
        &fixture::deployment(),
        &machine_services(),
        &fixture::sources(),
    );
    fixture::snapshot("local_systemd", &fixture::listing(&artifacts, &warnings));
}

/// `systemd-analyze verify` of the units in `dir` must succeed without a
/// word about them; returns systemd's dump of the parsed units.
fn verify(dir: &Path, units: &[&str]) -> String {
    let run = |log_level: &str| {
        Command::new("systemd-analyze")
            .arg("verify")
            .arg("--man=no")
            .args(units.iter().map(|u| dir.join(u)))
            .env("SYSTEMD_LOG_LEVEL", log_level)
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze")
    };
    let out = run("info");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let ours: Vec<&str> = stderr
        .lines()
        .filter(|l| {
            l.contains(&dir.display().to_string())
                || units.iter().any(|u| l.starts_with(&format!("{u}:")))
        })
        .collect();
    assert!(
        out.status.success() && ours.is_empty(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // With debug logging, the manager dumps every loaded unit on stdout.
    String::from_utf8_lossy(&run("debug").stdout).into_owned()
}

#[test]
fn every_unit_passes_systemd_analyze_verify() {
    if !support::require_tool("systemd-analyze") {
        return;
    }
    // Bare program names must exist for verify: run them through /bin/sh.
    // (`./bin/api` of `web` runs under the unit's own /bin/sh wrapper.)
    let mut services = machine_services();
    for s in services.iter_mut().filter(|s| !s.command[0].contains('/')) {
        s.command.insert(0, "/bin/sh".into());
        s.command.insert(1, "-c".into());
        s.command.insert(2, "exec \"$0\" \"$@\"".into());
    }
    services[1].resources.cpu = Some("500m".into());
    services[1].resources.memory = Some("256Mi".into());
    services[1].user = Some("daemon".into());
    services[1].other.insert(
        "systemd".into(),
        json!({"extra": {"Service": {"LimitNOFILE": 1024, "Nice": 5}, "Unit": {"Documentation": ["man:n2d(1)"]}}}),
    );
    let (artifacts, _) = fixture::build(
        &Systemd,
        &fixture::deployment(),
        &services,
        &fixture::sources(),
    );
    let dir = tempfile::tempdir().unwrap();
    fixture::write(dir.path(), &artifacts);
    let units: Vec<&str> = artifacts
        .iter()
        .map(|a| a.path.as_str())
        .filter(|p| p.ends_with(".service") || p.ends_with(".target"))
        .collect();
    assert_eq!(units, ["db.service", "dev.target", "web.service"]);
    let dump = verify(dir.path(), &units);
    assert!(
        dump.contains("LimitNOFILE: 1024"),
        "extra settings reach systemd"
    );
}

/// Splits systemd's dump of a command line (`quote_command_line`: words,
/// double-quoted with backslash escapes when needed) back into words, then
/// applies what systemd does at exec time to `$$`.
fn parse_dumped_command_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut bytes = line.bytes().peekable();
    let mut word: Vec<u8> = Vec::new();
    let mut in_word = false;
    let mut quoted = false;
    while let Some(b) = bytes.next() {
        match b {
            b' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            b'"' => {
                quoted = !quoted;
                in_word = true;
            }
            b'\\' => {
                in_word = true;
                let e = bytes.next().expect("escape");
                match e {
                    b'n' => word.push(b'\n'),
                    b't' => word.push(b'\t'),
                    b'r' => word.push(b'\r'),
                    b'a' => word.push(7),
                    b'b' => word.push(8),
                    b'f' => word.push(12),
                    b'v' => word.push(11),
                    b'x' => {
                        let hex: Vec<u8> = (0..2).map(|_| bytes.next().unwrap()).collect();
                        word.push(
                            u8::from_str_radix(std::str::from_utf8(&hex).unwrap(), 16).unwrap(),
                        );
                    }
                    b'0'..=b'7' => {
                        // Octal, as systemd's cescape writes DEL and others.
                        let rest: Vec<u8> = (0..2).map(|_| bytes.next().unwrap()).collect();
                        let digits = [&[e][..], &rest].concat();
                        word.push(
                            u8::from_str_radix(std::str::from_utf8(&digits).unwrap(), 8).unwrap(),
                        );
                    }
                    other => word.push(other),
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
        .into_iter()
        .map(|w| String::from_utf8(w).unwrap().replace("$$", "$"))
        .collect()
}

fn check_systemd_round_trip(args: &[String], values: &[String]) -> Result<(), TestCaseError> {
    let env: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("N2D_V{i}"), json!(v)))
        .collect();
    let mut command = vec!["/bin/sh".to_string()];
    command.extend(args.iter().cloned());
    let service = support::service(json!({
        "name": "prop", "label": "//x:prop", "command": command, "env": env,
        "description": args.first().cloned().unwrap_or_default()
    }));
    let rendered = Systemd.render(&fixture::deployment(), &service, &fixture::sources());
    // systemd refuses Unicode noncharacters in a unit (valid UTF-8 or not):
    // such a service is a clear error, not a unit systemd ignores lines of.
    let noncharacter = n2d_rules::systemd::is_noncharacter;
    if args
        .iter()
        .chain(values)
        .any(|v| v.chars().any(noncharacter))
    {
        let error = rendered
            .expect_err("a noncharacter cannot be in a unit")
            .to_string();
        prop_assert!(error.contains("noncharacter"), "{}", error);
        return Ok(());
    }
    let rendered = rendered.unwrap();
    let dir = tempfile::tempdir().unwrap();
    fixture::write(dir.path(), &rendered.artifacts);
    std::fs::write(dir.path().join("dev.target"), "[Unit]\nDescription=t\n").unwrap();
    let dump = verify(dir.path(), &["prop.service"]);
    let line = dump
        .lines()
        .find_map(|l| l.trim_start().strip_prefix("Command Line: "))
        .expect("the dump shows the command line");
    prop_assert_eq!(parse_dumped_command_line(line), command);
    for (i, value) in values.iter().enumerate() {
        // The dump prints each variable raw, one `Environment:` entry each.
        let entry = format!("\tEnvironment: N2D_V{i}={value}\n");
        prop_assert!(
            dump.contains(&entry),
            "N2D_V{} = {:?} not read back",
            i,
            value
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: case_count(), failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn systemd_reads_back_exactly_the_args_and_env(
        args in prop::collection::vec(nasty_string(), 0..4),
        values in prop::collection::vec(nasty_string(), 0..4),
    ) {
        if support::require_tool("systemd-analyze") {
            check_systemd_round_trip(&args, &values)?;
        }
    }
}

#[test]
fn a_noncharacter_is_a_clear_error_and_systemd_would_refuse_it() {
    // The case the property test found: systemd-analyze rejects
    // `Environment="N2D_V0=\u{fdd0}"` as "not UTF-8 clean".
    let err = check_systemd_round_trip(&[], &["\u{fdd0}".to_string()]);
    assert!(err.is_ok(), "{err:?}");
    let service = support::service(json!({
        "name": "prop", "label": "//x:prop", "command": ["/bin/true"],
        "env": { "X": "a\u{1fffe}b" }
    }));
    let error = Systemd
        .render(&fixture::deployment(), &service, &fixture::sources())
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("env.X") && error.contains("U+1FFFE"),
        "{error}"
    );
}
