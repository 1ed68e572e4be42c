//! `n2d init`: the files of a new workspace with one working example.
use std::path::PathBuf;

/// The files `n2d init` writes (relative to the new workspace's root).
pub fn init_template() -> Vec<(PathBuf, String)> {
    vec![
        (
            PathBuf::from(crate::workspace::WORKSPACE_FILE),
            WORKSPACE.to_string(),
        ),
        (PathBuf::from("hello/n2d.toml"), HELLO.to_string()),
    ]
}

const WORKSPACE: &str = r#"# The root of an n2d workspace. Packages are the folders below holding an
# n2d.toml (or n2d.json); labels are //folder:name.

output_dir = "n2d-out"
cache_dir = ".n2d"
default_targets = ["procfile"]
# Modules imported by every service, e.g. ["//lib:defaults"].
imports = []
"#;

const HELLO: &str = r#"# Two services of one program, with different arguments and environment.
# Try: n2d show //hello:greeter --deployment //hello:dev
#      n2d up //hello:dev

[modules.greeting]
options.greeting.word = { type = "str", default = "Hello", description = "How to greet" }
command = ["/bin/sh", "-c", 'echo "$GREETING, $1"; exec sleep infinity', "greeting"]
env.GREETING = "${{ self.greeting.word }}"
restart = "always"

[services.greeter]
imports = [":greeting"]
description = "Greets the world"
command = { mkAfter = ["world"] }

[services.welcomer]
imports = [":greeting"]
description = "Welcomes n2d"
greeting.word = "Welcome"
command = { mkAfter = ["n2d"] }

[deployments.dev]
services = [":greeter", ":welcomer"]
"#;
