//! Labels and patterns, as Bazel spells them.
use n2d_modules::{parse_label, parse_pattern, Label, Pattern};

fn label(text: &str, current: Option<&str>) -> String {
    match parse_label(text, current) {
        Ok(label) => label.to_string(),
        Err(err) => format!("error: {}", err.message),
    }
}

#[test]
fn label_spellings() {
    assert_eq!(label("//apps/web:api", None), "//apps/web:api");
    assert_eq!(label("//apps/web", None), "//apps/web:web");
    assert_eq!(label(":api", Some("apps/web")), "//apps/web:api");
    assert_eq!(label("api", Some("apps/web")), "//apps/web:api");
    assert_eq!(label("//:root", None), "//:root");
    assert_eq!(
        label("//deploy:prod/migrate", None),
        "//deploy:prod/migrate"
    );
}

#[test]
fn bad_labels() {
    assert_eq!(
        label(":api", None),
        "error: invalid label `:api`: a relative label needs a current package"
    );
    assert_eq!(
        label("//a/../b:x", None),
        "error: invalid label `//a/../b:x`: the package path has a `.` or `..` part"
    );
    assert_eq!(
        label("//a:", None),
        "error: invalid label `//a:`: the name is empty"
    );
    assert_eq!(
        label("/a:b", None),
        "error: invalid label `/a:b`: a label starts with `//` (the workspace root)"
    );
    assert_eq!(
        label("//a b:c", None),
        "error: invalid label `//a b:c`: ` ` is not allowed in a package path"
    );
    assert_eq!(
        label("//", None),
        "error: invalid label `//`: the name is empty"
    );
}

#[test]
fn patterns() {
    let web = Label::new("apps/web", "api");
    let webx = Label::new("apps/webx", "api");
    let all = parse_pattern("//...", None).unwrap();
    let apps = parse_pattern("//apps/...", None).unwrap();
    let web_only = parse_pattern("//apps/web/...", None).unwrap();
    let package = parse_pattern("//apps/web:all", None).unwrap();
    assert!(
        all.matches(&web) && apps.matches(&web) && web_only.matches(&web) && package.matches(&web)
    );
    assert!(
        !web_only.matches(&webx),
        "a subtree ends at a folder boundary"
    );
    assert!(!package.matches(&Label::new("apps", "x")));
    assert_eq!(
        parse_pattern(":api", Some("apps/web")).unwrap(),
        Pattern::Label(web)
    );
    assert_eq!(
        parse_pattern("//apps/...", None).unwrap().to_string(),
        "//apps/..."
    );
}
