//! A package's interface: what planning a build needs to know of it, and
//! nothing else. The Plan depends on interfaces, not on full packages, so an
//! edit that changes a value (an env var, a port) or a comment changes the
//! package but not its interface, and the plan is served from the cache:
//! no build re-plans 10,000 services because one of them changed.
//!
//! An interface keeps the names of services, modules and deployments, the
//! imports, the deployments' members, and the strings planning reads: every
//! `${{ }}` template (references decide which packages a resolution needs)
//! and every string under a `source`, `file`, `watch` or `package` key
//! (declared source files). Spans, texts and option declarations are dropped, so that moving
//! lines changes nothing; a plan that fails is planned again over the full
//! packages for a message that points into the file.
use n2d_modules::node::{Key, Node, SourceFile, Span, Value};
use n2d_modules::options::OptionTree;
use n2d_modules::package::{Body, DeploymentDef, Member, MemberSource};
use n2d_modules::Package;

/// Keys under which every string matters to planning.
const PLANNED_KEYS: [&str; 4] = ["source", "file", "watch", "package"];

/// The interface of `package`.
pub fn interface_of(package: &Package) -> Package {
    Package {
        name: package.name.clone(),
        source: SourceFile::new(package.source.path.to_string(), ""),
        services: package
            .services
            .iter()
            .map(|(n, b)| (n.clone(), strip_body(b)))
            .collect(),
        modules: package
            .modules
            .iter()
            .map(|(n, b)| (n.clone(), strip_body(b)))
            .collect(),
        deployments: package
            .deployments
            .iter()
            .map(|(n, d)| (n.clone(), strip_deployment(d).into()))
            .collect(),
    }
}

fn strip_body(body: &Body) -> Body {
    Body {
        name: body.name.clone(),
        span: Span::default(),
        imports: body
            .imports
            .iter()
            .map(|(label, _)| (label.clone(), Span::default()))
            .collect(),
        options: OptionTree::default(),
        definitions: strip_node(&body.definitions, false)
            .unwrap_or_else(|| Node::new(Value::Table(Vec::new()), Span::default())),
    }
}

fn strip_deployment(deployment: &DeploymentDef) -> DeploymentDef {
    DeploymentDef {
        name: deployment.name.clone(),
        span: Span::default(),
        members: deployment
            .members
            .iter()
            .map(|member| Member {
                name: member.name.clone(),
                span: Span::default(),
                source: match &member.source {
                    MemberSource::Label { label, overrides } => MemberSource::Label {
                        label: label.clone(),
                        overrides: overrides.as_deref().map(|body| Box::new(strip_body(body))),
                    },
                    MemberSource::Local(body) => MemberSource::Local(Box::new(strip_body(body))),
                },
            })
            .collect(),
        targets: deployment.targets.clone(),
        namespace: deployment.namespace.clone(),
        managers: deployment.managers.clone(),
        member_index: Default::default(),
    }
}

/// The part of `node` planning reads; `None` when nothing is left.
fn strip_node(node: &Node, keep_strings: bool) -> Option<Node> {
    let value = match &node.value {
        Value::Str(text) if keep_strings || text.contains("${{") => Value::Str(text.clone()),
        Value::Table(entries) => {
            let kept: Vec<(Key, Node)> = entries
                .iter()
                .filter_map(|(key, child)| {
                    let keep = keep_strings || PLANNED_KEYS.contains(&key.name.as_str());
                    strip_node(child, keep).map(|child| {
                        (
                            Key {
                                name: key.name.clone(),
                                span: Span::default(),
                            },
                            child,
                        )
                    })
                })
                .collect();
            if kept.is_empty() {
                return None;
            }
            Value::Table(kept)
        }
        Value::List(items) => {
            let kept: Vec<Node> = items
                .iter()
                .filter_map(|item| strip_node(item, keep_strings))
                .collect();
            if kept.is_empty() {
                return None;
            }
            Value::List(kept)
        }
        _ => return None,
    };
    Some(Node::new(value, Span::default()))
}
