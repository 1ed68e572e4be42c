//! After any sequence of edits (services added, removed and changed,
//! imports toggled, deployment overrides changed), an incremental build
//! gives output byte-identical to a clean build of the same files.
use proptest::prelude::*;

use crate::build::snapshot;
use crate::support::TestWorkspace;

/// A small workspace model whose text the edits change.
#[derive(Clone, Debug)]
struct Model {
    /// (package index, service name, env value, imports the shared module)
    services: Vec<(usize, String, String, bool)>,
    module_port: u16,
    replicas: u32,
}

#[derive(Clone, Debug)]
enum Edit {
    ChangeEnv(usize, String),
    Add(usize, String),
    Remove(usize),
    ToggleImport(usize),
    ModulePort(u16),
    Replicas(u32),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0usize..8, "[a-z]{0,6}").prop_map(|(i, v)| Edit::ChangeEnv(i, v)),
        (0usize..2, "[a-z]{3}").prop_map(|(p, n)| Edit::Add(p, n)),
        (0usize..8).prop_map(Edit::Remove),
        (0usize..8).prop_map(Edit::ToggleImport),
        (1024u16..2048).prop_map(Edit::ModulePort),
        (1u32..4).prop_map(Edit::Replicas),
    ]
}

impl Model {
    fn apply(&mut self, edit: &Edit) {
        let n = self.services.len();
        match edit {
            Edit::ChangeEnv(i, v) if n > 0 => self.services[i % n].2 = v.clone(),
            Edit::Add(p, name) => {
                let name = format!("s{name}");
                if !self.services.iter().any(|s| s.1 == name) {
                    self.services.push((*p, name, "x".into(), false));
                }
            }
            Edit::Remove(i) if n > 1 => {
                self.services.remove(i % n);
            }
            Edit::ToggleImport(i) if n > 0 => self.services[i % n].3 = !self.services[i % n].3,
            Edit::ModulePort(port) => self.module_port = *port,
            Edit::Replicas(r) => self.replicas = *r,
            _ => {}
        }
    }

    fn write(&self, ws: &TestWorkspace) {
        ws.write(
            "lib/n2d.toml",
            &format!(
                "[modules.web]\nports.http = {}\nenv.FROM_MODULE = \"yes\"\n",
                self.module_port
            ),
        );
        for package in 0..2 {
            let mut text = String::new();
            for (p, name, env, import) in &self.services {
                if *p != package {
                    continue;
                }
                text.push_str(&format!(
                    "[services.{name}]\ncommand = [\"/bin/echo\", \"{name}\"]\nenv.VALUE = \"{env}\"\n"
                ));
                if *import {
                    text.push_str("imports = [\"//lib:web\"]\n");
                }
                text.push('\n');
            }
            ws.write(&format!("p{package}/n2d.toml"), &text);
        }
        let mut deploy = String::from("[deployments.all.services]\n");
        for (i, (p, name, _, _)) in self.services.iter().enumerate() {
            if i == 0 {
                deploy.push_str(&format!(
                    "\"//p{p}:{name}\" = {{ replicas = {} }}\n",
                    self.replicas
                ));
            } else {
                deploy.push_str(&format!("\"//p{p}:{name}\" = {{}}\n"));
            }
        }
        ws.write("deploy/n2d.toml", &deploy);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: if std::env::var("N2D_SLOW_TESTS").is_ok() { 12 } else { 4 },
        ..ProptestConfig::default()
    })]

    #[test]
    fn incremental_equals_clean(edits in proptest::collection::vec(edit(), 1..6)) {
        let mut model = Model {
            services: vec![(0, "alpha".into(), "a".into(), true), (1, "beta".into(), "b".into(), false)],
            module_port: 1500,
            replicas: 1,
        };
        let ws = TestWorkspace::new();
        model.write(&ws);
        let first = ws.build_json(&["//...", "--target", "json", "--target", "procfile"]);
        prop_assert_eq!(&first["ok"], true, "{}", first);
        for edit in &edits {
            model.apply(edit);
            model.write(&ws);
            let incremental = ws.build_json(&["//...", "--target", "json", "--target", "procfile"]);
            prop_assert_eq!(&incremental["ok"], true, "{}", incremental);
        }
        let clean = TestWorkspace::new();
        model.write(&clean);
        let summary = clean.build_json(&["//...", "--target", "json", "--target", "procfile"]);
        prop_assert_eq!(&summary["ok"], true, "{}", summary);
        prop_assert_eq!(snapshot(&ws.root.join("n2d-out")), snapshot(&clean.root.join("n2d-out")));
    }
}
