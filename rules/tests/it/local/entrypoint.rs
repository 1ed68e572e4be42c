//! The entrypoint script: shellcheck-clean, hands the program exactly the
//! bytes of every value, creates volumes, links files, fails clearly on a
//! missing secret.
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use n2d_modules::service::Service;
use n2d_rules::entrypoint::{entrypoint_script, EntrypointLayout, Interpreter, Root, SecretStore};
use proptest::prelude::*;
use serde_json::json;

use super::fixture;
use crate::support;

fn host_layout(interpreter: Interpreter) -> EntrypointLayout {
    EntrypointLayout {
        target: "procfile",
        interpreter,
        root: Root::ScriptRelative { levels: 1 },
        secrets: SecretStore::Dir("secrets".into()),
        files_dir: "files/svc".into(),
    }
}

/// Writes the entrypoint of `service` as `<dir>/bin/svc` and runs it with
/// bash from another folder; returns (exit status, stderr).
fn run(dir: &Path, service: &Service, envs: &[(&str, &Path)]) -> (bool, String) {
    let script = entrypoint_script(
        service,
        &host_layout(Interpreter::Bash),
        &fixture::sources(),
    )
    .expect("render entrypoint");
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    let path = dir.join("bin/svc");
    std::fs::write(&path, script).unwrap();
    let out = Command::new("bash")
        .arg(&path)
        .current_dir("/")
        .env_remove("N2D_SECRETS_DIR")
        .envs(envs.iter().map(|(k, v)| (*k, v.as_os_str())))
        .output()
        .expect("run bash");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A command that writes its arguments, then its environment, NUL-separated.
fn recorder(args: &[String]) -> Vec<String> {
    let mut command = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        ": > \"$N2D_TEST_OUT/argv\"; for a do printf '%s\\0' \"$a\" >> \"$N2D_TEST_OUT/argv\"; done; env -0 > \"$N2D_TEST_OUT/env\"".to_string(),
        "recorder".to_string(),
    ];
    command.extend(args.iter().cloned());
    command
}

fn nul_split(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = bytes.split(|b| *b == 0).map(<[u8]>::to_vec).collect();
    // Every entry ends with NUL, so the last piece is empty.
    assert_eq!(parts.pop(), Some(Vec::new()), "output ends with NUL");
    parts
}

fn check_exact_bytes(args: &[String], values: &[String]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let env: serde_json::Map<String, serde_json::Value> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("N2D_V{i}"), json!(v)))
        .collect();
    let service = support::service(json!({
        "name": "svc", "label": "//x:svc", "command": recorder(args), "env": env
    }));
    let (ok, stderr) = run(dir.path(), &service, &[("N2D_TEST_OUT", dir.path())]);
    prop_assert!(ok, "entrypoint failed: {}", stderr);
    let argv = nul_split(&std::fs::read(dir.path().join("argv")).unwrap());
    let expected: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    prop_assert_eq!(argv, expected);
    let environment = nul_split(&std::fs::read(dir.path().join("env")).unwrap());
    for (i, value) in values.iter().enumerate() {
        let mut entry = format!("N2D_V{i}=").into_bytes();
        entry.extend_from_slice(value.as_bytes());
        prop_assert!(
            environment.contains(&entry),
            "N2D_V{} not passed exactly: {:?}",
            i,
            value
        );
    }
    Ok(())
}

/// Strings made of the pieces that break naive quoting.
pub fn nasty_string() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("'".to_string()),
        Just("\"".to_string()),
        Just("$(touch /tmp/n2d-pwned)".to_string()),
        Just("`id`".to_string()),
        Just("${HOME}".to_string()),
        Just("$$".to_string()),
        Just("\n".to_string()),
        Just("%".to_string()),
        Just("%n".to_string()),
        Just("\\".to_string()),
        Just("\\n".to_string()),
        Just(";".to_string()),
        Just(" ".to_string()),
        Just("\t".to_string()),
        Just("*".to_string()),
        Just("é日本🦀".to_string()),
        // Unicode noncharacters: valid UTF-8 that systemd refuses.
        Just("\u{fdd0}".to_string()),
        Just("\u{1ffff}".to_string()),
        "[a-zA-Z0-9]{1,4}",
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(String::from),
    ];
    prop::collection::vec(piece, 0..8).prop_map(|pieces| pieces.concat())
}

pub fn case_count() -> u32 {
    if std::env::var("N2D_SLOW_TESTS").as_deref() == Ok("1") {
        512
    } else {
        32
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: case_count(), failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn program_receives_exactly_the_bytes_of_args_and_env(
        args in prop::collection::vec(nasty_string(), 0..5),
        values in prop::collection::vec(nasty_string(), 0..5),
    ) {
        check_exact_bytes(&args, &values)?;
    }
}

#[test]
fn empty_and_dash_values_stay_single_arguments() {
    let args = vec![String::new(), "-n".into(), "a b".into(), "--".into()];
    check_exact_bytes(&args, &[String::new(), "-e".into()]).unwrap();
}

#[test]
fn secrets_are_read_at_start_and_never_inlined() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/db-password"), "s3cr3t 'x'\n").unwrap();
    let service = support::service(json!({
        "name": "svc", "label": "//x:svc", "command": recorder(&[]),
        "env": {"PASSWORD": {"secret": "db-password"}}
    }));
    let script = entrypoint_script(
        &service,
        &host_layout(Interpreter::Bash),
        &fixture::sources(),
    )
    .unwrap();
    assert!(!script.contains("s3cr3t"));
    let (ok, stderr) = run(dir.path(), &service, &[("N2D_TEST_OUT", dir.path())]);
    assert!(ok, "{stderr}");
    let environment = nul_split(&std::fs::read(dir.path().join("env")).unwrap());
    // The trailing newline of the file is not part of the secret.
    assert!(environment.contains(&b"PASSWORD=s3cr3t 'x'".to_vec()));
}

#[test]
fn a_missing_secret_file_stops_with_a_message_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let service = support::service(json!({
        "name": "svc", "label": "//x:svc", "command": ["/bin/sh", "-c", "touch ran"],
        "env": {"PASSWORD": {"secret": "db-password"}}
    }));
    let (ok, stderr) = run(dir.path(), &service, &[]);
    assert!(!ok);
    assert!(
        stderr.contains("n2d: service svc: missing secret file")
            && stderr.contains("secrets/db-password (secret db-password)"),
        "{stderr}"
    );
    assert!(!dir.path().join("ran").exists());
}

#[test]
fn secrets_dir_can_be_moved_at_run_time() {
    let dir = tempfile::tempdir().unwrap();
    let store = tempfile::tempdir().unwrap();
    std::fs::write(store.path().join("token"), "abc").unwrap();
    let service = support::service(json!({
        "name": "svc", "label": "//x:svc", "command": recorder(&[]),
        "env": {"TOKEN": {"secret": "token"}}
    }));
    let (ok, stderr) = run(
        dir.path(),
        &service,
        &[
            ("N2D_TEST_OUT", dir.path()),
            ("N2D_SECRETS_DIR", store.path()),
        ],
    );
    assert!(ok, "{stderr}");
    let environment = nul_split(&std::fs::read(dir.path().join("env")).unwrap());
    assert!(environment.contains(&b"TOKEN=abc".to_vec()));
}

#[test]
fn volumes_files_workdir_and_pre_start() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for path in ["keep/old", "scratch/old", "scratch/.hidden", "work"] {
        std::fs::create_dir_all(root.join(path)).unwrap();
    }
    std::fs::create_dir_all(root.join("files/svc")).unwrap();
    std::fs::write(root.join("files/svc/app.conf"), "x=1\n").unwrap();
    let service = support::service(json!({
        "name": "svc", "label": "//x:svc",
        "command": ["/bin/sh", "-c", "pwd -P > where; cat \"$N2D_ROOT_CONF\" > conf"],
        "env": {"N2D_ROOT_CONF": format!("{}/etc/app.conf", root.display())},
        "workdir": "work",
        "volumes": {
            "keep": {"path": format!("{}/keep", root.display()), "persist": true},
            "scratch": {"path": format!("{}/scratch", root.display()), "persist": false},
            "fresh": {"path": "fresh/deep"}
        },
        "files": {"app.conf": {"text": "x=1\n", "path": "etc/app.conf"}},
        "pre_start": "test -d fresh/deep\necho 'pre start ran' > pre"
    }));
    let (ok, stderr) = run(root, &service, &[]);
    assert!(ok, "{stderr}");
    assert!(root.join("keep/old").is_dir(), "persisting volume kept");
    assert!(root.join("scratch").is_dir());
    assert_eq!(
        std::fs::read_dir(root.join("scratch")).unwrap().count(),
        0,
        "cleared"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("work/pre")).unwrap(),
        "pre start ran\n"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("work/conf")).unwrap(),
        "x=1\n"
    );
    let here = std::fs::canonicalize(root.join("work")).unwrap();
    assert_eq!(
        std::fs::read(root.join("work/where")).unwrap(),
        [here.as_os_str().as_bytes(), b"\n"].concat()
    );
}

#[test]
fn scripts_are_shellcheck_clean() {
    if !support::require_tool("shellcheck") {
        return;
    }
    for service in fixture::services(|s, f| format!("files/{s}/{f}")) {
        for interpreter in [Interpreter::Bash, Interpreter::Sh] {
            for secrets in [
                SecretStore::Dir("secrets".into()),
                SecretStore::CredentialsDirectory,
            ] {
                let layout = EntrypointLayout {
                    secrets,
                    interpreter,
                    ..host_layout(interpreter)
                };
                let script = entrypoint_script(&service, &layout, &fixture::sources()).unwrap();
                fixture::shellcheck(&service.name, script.as_bytes());
            }
        }
    }
}

#[test]
fn values_that_cannot_be_passed_are_errors() {
    let bad = [
        json!({"name": "s", "label": "//x:s", "command": []}),
        json!({"name": "s", "label": "//x:s", "command": ["a\u{0}b"]}),
        json!({"name": "s", "label": "//x:s", "command": ["a"], "env": {"A-B": "x"}}),
        json!({"name": "s", "label": "//x:s", "command": ["a"], "env": {"A": {"secret": "../x"}}}),
    ];
    for service in bad {
        let service = support::service(service);
        let error = entrypoint_script(
            &service,
            &host_layout(Interpreter::Bash),
            &fixture::sources(),
        )
        .expect_err("rejected");
        assert!(
            error.to_string().starts_with("procfile: service `s`: "),
            "{error}"
        );
    }
}
