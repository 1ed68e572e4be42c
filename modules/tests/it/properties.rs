//! Property tests: no input makes the parser or the merge panic; JSON and
//! TOML spellings of the same modules resolve identically; priority
//! resolution does not depend on the order of imports.
use std::collections::BTreeMap;

use n2d_modules::{eval_package, parse_module_file, Error, Format, LocalEnv, OptionSet, Universe};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Parses, evaluates and resolves every service of every deployment and
/// every standalone service; returns each outcome (value or error kind).
fn resolve_everything(files: &[(&str, String, Format)]) -> Vec<Result<Value, String>> {
    let mut packages = BTreeMap::new();
    let mut out = Vec::new();
    for (package, text, format) in files {
        let path = format!("{package}/{}", format.file_name());
        match parse_module_file(&path, text, *format).and_then(|m| eval_package(package, &m)) {
            Ok(evaluated) => {
                packages.insert(package.to_string(), evaluated);
            }
            Err(err) => out.push(Err(kind(&err))),
        }
    }
    let universe = Universe::new(packages, OptionSet::core(), &Default::default());
    for (label, kind_of) in universe.labels() {
        match kind_of {
            n2d_modules::LabelKind::Service => {
                out.push(
                    universe
                        .resolve_standalone(&label, &LocalEnv)
                        .map(|r| r.value)
                        .map_err(|e| kind(&e)),
                );
            }
            n2d_modules::LabelKind::Deployment => {
                let spec = universe
                    .deployment(&label)
                    .expect("listed deployments exist");
                for service in spec.services {
                    let _ = universe.package_inputs(&label, &service.name);
                    out.push(
                        universe
                            .resolve(&label, &service.name, &LocalEnv)
                            .map(|r| r.value)
                            .map_err(|e| kind(&e)),
                    );
                }
            }
            n2d_modules::LabelKind::Module => {}
        }
    }
    out
}

fn kind(err: &Error) -> String {
    // Rendering must not panic either.
    let _ = err.to_string();
    format!("{:?}", err.kind)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..70000).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        prop::sample::select(vec![
            "a",
            "10s",
            "256Mi",
            "always",
            "no",
            "healthy",
            "x y",
            "${{ self.replicas }}",
            "${{ self.env.A }}",
            "${{ :b.ports.http }}",
            "${{ :a.host }}",
            "$${{ lit }}",
            "${{ broken",
            "${{ self.files.\"f\".path }}",
            "../x",
            "//web:a",
        ])
        .prop_map(Value::from),
    ]
}

fn wrapped(inner: BoxedStrategy<Value>) -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => inner.clone(),
        1 => inner.clone().prop_map(|v| json!({ "mkDefault": v })),
        1 => inner.clone().prop_map(|v| json!({ "mkForce": v })),
        1 => (0i64..2000, inner.clone()).prop_map(|(p, v)| json!({ "mkOverride": { "priority": p, "value": v } })),
        1 => inner.clone().prop_map(|v| json!({ "mkAfter": v })),
        1 => (any::<bool>(), inner.clone()).prop_map(|(c, v)| json!({ "mkIf": { "condition": c, "content": v } })),
        1 => prop::collection::vec(inner, 0..3).prop_map(|vs| json!({ "mkMerge": vs })),
    ]
}

fn option_value() -> BoxedStrategy<Value> {
    let leaf = scalar().boxed();
    let tree = leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..3).prop_map(Value::from),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "A", "B", "http", "data", "path", "secret", "file", "text", "f", "signal"
                ]),
                inner,
                0..3
            )
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    });
    wrapped(tree.boxed()).boxed()
}

fn body() -> impl Strategy<Value = Value> {
    let names = vec![
        "replicas",
        "restart",
        "env",
        "ports",
        "command",
        "volumes",
        "files",
        "readiness",
        "stop",
        "depends_on",
        "description",
        "backoff",
        "resources",
        "pre_start",
        "unknown",
        "imports",
    ];
    prop::collection::btree_map(prop::sample::select(names), option_value(), 0..5)
        .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn module_file() -> impl Strategy<Value = Value> {
    (
        body(),
        body(),
        body(),
        prop::collection::vec(
            prop::sample::select(vec![":a", ":b", ":m", "//lib:m", ":nope"]),
            0..3,
        ),
    )
        .prop_map(|(a, b, m, imports)| {
            let mut a = a;
            if let Value::Object(map) = &mut a {
                map.insert("imports".into(), json!(imports));
            }
            json!({
                "modules": { "m": m },
                "services": { "a": a, "b": b },
                "deployments": { "dev": { "services": [":a", ":b"] } }
            })
        })
}

/// A definition of one option with a valid value (from a small set, so
/// that equal and conflicting values both happen) under a random priority.
fn typed_definition() -> impl Strategy<Value = (String, Value)> {
    prop_oneof![
        wrapped((1i64..4).prop_map(Value::from).boxed()).prop_map(|v| ("replicas".to_string(), v)),
        wrapped(
            prop::sample::select(vec!["no", "always"])
                .prop_map(Value::from)
                .boxed()
        )
        .prop_map(|v| ("restart".to_string(), v)),
        wrapped(
            prop::sample::select(vec!["x", "y"])
                .prop_map(Value::from)
                .boxed()
        )
        .prop_map(|v| ("env".to_string(), v)),
        wrapped(
            prop::sample::select(vec!["INT", "TERM"])
                .prop_map(Value::from)
                .boxed()
        )
        .prop_map(|v| ("stop".to_string(), v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,200}", json_like in "[{}\\[\\]\":,a-z0-9 \\\\.-]{0,80}") {
        resolve_everything(&[
            ("web", text.clone(), Format::Toml),
            ("api", text, Format::Json),
            ("db", json_like, Format::Json),
        ]);
    }

    #[test]
    fn arbitrary_modules_never_panic(file in module_file(), lib in body()) {
        let lib = json!({ "modules": { "m": lib } }).to_string();
        resolve_everything(&[("web", file.to_string(), Format::Json), ("lib", lib, Format::Json)]);
    }

    #[test]
    fn json_and_toml_spellings_resolve_identically(file in module_file()) {
        let json_text = serde_json::to_string_pretty(&file).unwrap();
        let toml_text = toml::to_string(&file).unwrap();
        let from_json = resolve_everything(&[("web", json_text, Format::Json)]);
        let from_toml = resolve_everything(&[("web", toml_text.clone(), Format::Toml)]);
        prop_assert_eq!(from_json, from_toml, "TOML:\n{}", toml_text);
    }

    #[test]
    fn priority_resolution_does_not_depend_on_import_order(
        definitions in prop::collection::vec(typed_definition(), 1..6),
        rotation in 0usize..6,
    ) {
        let mut modules = serde_json::Map::new();
        for (i, (option, value)) in definitions.iter().enumerate() {
            let value = match option.as_str() {
                "env" => json!({ "A": value }),
                "stop" => json!({ "signal": value }),
                _ => value.clone(),
            };
            modules.insert(format!("m{i}"), json!({ option.as_str(): value }));
        }
        let names: Vec<String> = modules.keys().map(|k| format!(":{k}")).collect();
        let mut rotated = names.clone();
        rotated.rotate_left(rotation % names.len());
        let mut reversed = names.clone();
        reversed.reverse();
        let outcome = |imports: &[String]| {
            let file = json!({ "modules": modules, "services": { "api": { "imports": imports } } });
            resolve_everything(&[("web", file.to_string(), Format::Json)])
        };
        let first = outcome(&names);
        prop_assert_eq!(&first, &outcome(&rotated));
        prop_assert_eq!(&first, &outcome(&reversed));
    }
}

#[test]
fn the_generators_reach_successful_resolutions() {
    // Guards the properties above against generators that only ever make
    // errors (which would make "identical" trivially true).
    let file = json!({
        "modules": { "m": { "replicas": { "mkDefault": 2 } } },
        "services": { "a": { "imports": [":m"], "env": { "A": "${{ :b.host }}" } }, "b": { "ports": { "http": 80 } } },
        "deployments": { "dev": { "services": [":a", ":b"] } }
    });
    let outcomes = resolve_everything(&[("web", toml::to_string(&file).unwrap(), Format::Toml)]);
    assert!(
        outcomes.iter().filter(|o| o.is_ok()).count() >= 3,
        "{outcomes:?}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    /// The engine caches parsed files and packages as JSON: a round trip
    /// must give back an equal value that resolves the same.
    #[test]
    fn parsed_and_evaluated_packages_survive_the_cache_round_trip(file in module_file()) {
        let text = toml::to_string(&file).unwrap();
        let Ok(parsed) = parse_module_file("web/n2d.toml", &text, Format::Toml) else { return Ok(()) };
        let bytes = serde_json::to_vec(&parsed).unwrap();
        let back: n2d_modules::ModuleFile = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(&back, &parsed);
        if let Ok(package) = eval_package("web", &parsed) {
            let back: n2d_modules::Package = serde_json::from_slice(&serde_json::to_vec(&package).unwrap()).unwrap();
            prop_assert_eq!(back, package);
        }
    }
}

#[test]
fn special_floats_and_huge_integers_survive_the_cache_round_trip() {
    let text =
        "[services.api]\ncompose.extra = { a = nan, b = inf, c = 0x7fffffffffffffffff, d = 1.5 }\n";
    let parsed = parse_module_file("web/n2d.toml", text, Format::Toml);
    let parsed = parsed.unwrap();
    let back: n2d_modules::ModuleFile =
        serde_json::from_slice(&serde_json::to_vec(&parsed).unwrap()).unwrap();
    assert_eq!(back, parsed);
}
