//! The option reference and option declarations (core and target groups).
use n2d_modules::OptionSet;

#[test]
fn the_reference_documents_every_core_option() {
    let markdown = OptionSet::core().reference_markdown();
    for option in [
        "description",
        "command",
        "package",
        "image",
        "workdir",
        "user",
        "env",
        "ports",
        "volumes",
        "volumes.<name>.persist",
        "files.<name>.source",
        "pre_start",
        "depends_on",
        "readiness.http.path",
        "restart",
        "max_restarts",
        "backoff",
        "stop.signal",
        "replicas",
        "resources.memory",
        "watch",
    ] {
        assert!(
            markdown.contains(&format!("### `{option}`")),
            "missing {option}"
        );
    }
    assert!(markdown.contains("attrsOf (oneOf [str { secret: str } { file: source }])"));
}

#[test]
fn the_json_reference_has_types_and_defaults() {
    let json = OptionSet::core().reference_json();
    assert_eq!(json["options"]["replicas"]["type"], "int");
    assert_eq!(json["options"]["replicas"]["default"], 1);
    assert_eq!(json["options"]["volumes.<name>.path"]["has_default"], false);
}

#[test]
fn targets_extend_the_option_set() {
    let mut options = OptionSet::core();
    options
        .extend(
            "rules/k8s",
            "[k8s]\nextra = { type = \"attrs\", default = {}, description = \"Raw fields\" }\n",
        )
        .unwrap();
    assert!(options.reference_markdown().contains("### `k8s.extra`"));
    let err = options
        .extend("rules/other", "replicas = { type = \"int\" }\n")
        .unwrap_err();
    assert_eq!(
        err.message,
        "the option `replicas` is declared twice: in modules/options/core.toml:19 and in rules/other:1"
    );
}

#[test]
fn type_expressions_round_trip() {
    for text in [
        "str",
        "attrsOf (listOf str)",
        "nullOr (attrsOf int)",
        "oneOf [str int (listOf bool)]",
        "enum [a b-c d.e]",
        "{ a: str, b?: port }",
        "listOf (nullOr duration)",
    ] {
        let ty = n2d_modules::types::parse_type(text).unwrap();
        assert_eq!(ty.to_string(), text);
    }
}

#[test]
fn bad_type_expressions() {
    let parse = |t: &str| n2d_modules::types::parse_type(t).unwrap_err();
    assert_eq!(parse("strr"), "unknown type `strr` (did you mean `str`?)");
    assert_eq!(parse("listOf"), "expected a type");
    assert_eq!(parse("oneOf [str"), "expected `]` to close `oneOf [`");
    assert_eq!(parse("str int"), "unexpected `int` after the type");
    assert_eq!(parse("enum []"), "`enum` needs at least one value");
}
