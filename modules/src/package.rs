//! The EvalPackage stage: one parsed module file into a `Package` — its
//! services, modules and deployments, each body split into `imports`,
//! declared `options` and option definitions. Checks what can be checked
//! without other packages: the file's keys, names, duplicates, labels.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::label::{parse_label, Label};
use crate::node::{Key, Node, SourceFile, Span, Value};
use crate::options::{is_option_name, parse_declarations, OptionTree};
use crate::parse::ModuleFile;
pub use crate::universe::MemberIndexCell;

/// An evaluated package.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Package {
    /// The package path (`apps/web`, `""` for the root).
    pub name: String,
    pub source: SourceFile,
    pub services: BTreeMap<String, Body>,
    pub modules: BTreeMap<String, Body>,
    pub deployments: BTreeMap<String, DeploymentDef>,
}

/// A service or module: imports, declarations and definitions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Body {
    pub name: String,
    /// Span of the name where it is defined.
    pub span: Span,
    /// In order; relative labels already resolved against the package.
    pub imports: Vec<(Label, Span)>,
    pub options: OptionTree,
    /// A table of option definitions (everything but `imports` and `options`).
    pub definitions: Node,
}

/// A deployment as written.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDef {
    pub name: String,
    pub span: Span,
    /// In the order written. Invariant: member names are unique.
    pub members: Vec<Member>,
    pub targets: Vec<String>,
    pub namespace: Option<String>,
    /// Target → manager name.
    pub managers: BTreeMap<String, String>,
    /// Members by name and label, built on first use and then shared by
    /// every `Universe` holding this package (a build makes one universe
    /// per Resolve task; rebuilding the index in each was quadratic).
    #[serde(skip)]
    pub member_index: MemberIndexCell,
}

/// One service of a deployment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The service's name in the deployment.
    pub name: String,
    pub span: Span,
    pub source: MemberSource,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum MemberSource {
    /// A service of a package, with this deployment's definitions for it.
    Label {
        label: Label,
        overrides: Option<Body>,
    },
    /// A service that only exists in this deployment.
    Local(Body),
}

/// Evaluates one parsed module file of package `package`.
pub fn eval_package(package: &str, file: &ModuleFile) -> Result<Package, Error> {
    let source = &file.source;
    let mut out = Package {
        name: package.to_string(),
        source: source.clone(),
        services: BTreeMap::new(),
        modules: BTreeMap::new(),
        deployments: BTreeMap::new(),
    };
    let at = |span: Span| Some(source.locate(span));
    for (key, value) in file.root.entries().unwrap_or_default() {
        match key.name.as_str() {
            "services" | "modules" => {
                let is_service = key.name == "services";
                for (name_key, body) in table_of(value, source, &key.name)? {
                    check_name(
                        name_key,
                        source,
                        if is_service { "service" } else { "module" },
                    )?;
                    if let Some(kind) = taken(&out, &name_key.name) {
                        return Err(duplicate(&name_key.name, kind, source, name_key.span));
                    }
                    let body = parse_body(package, name_key, body, source)?;
                    let map = if is_service {
                        &mut out.services
                    } else {
                        &mut out.modules
                    };
                    map.insert(name_key.name.clone(), body);
                }
            }
            "deployments" => {
                for (name_key, body) in table_of(value, source, "deployments")? {
                    check_name(name_key, source, "deployment")?;
                    if let Some(kind) = taken(&out, &name_key.name) {
                        return Err(duplicate(&name_key.name, kind, source, name_key.span));
                    }
                    let deployment = parse_deployment(package, name_key, body, source)?;
                    out.deployments.insert(name_key.name.clone(), deployment);
                }
            }
            other => {
                let err = Error::new(
                    ErrorKind::UnknownOption,
                    format!("unknown key `{other}` in a module file"),
                )
                .at(at(key.span));
                return Err(
                    match did_you_mean(other, ["services", "modules", "deployments"]) {
                        Some(near) => err.help(format!("did you mean `{near}`?")),
                        None => {
                            err.help("a module file has `services`, `modules` and `deployments`")
                        }
                    },
                );
            }
        }
    }
    Ok(out)
}

impl Package {
    /// What `name` is in this package.
    pub fn kind_of(&self, name: &str) -> Option<crate::universe::LabelKind> {
        use crate::universe::LabelKind;
        if self.services.contains_key(name) {
            Some(LabelKind::Service)
        } else if self.modules.contains_key(name) {
            Some(LabelKind::Module)
        } else if self.deployments.contains_key(name) {
            Some(LabelKind::Deployment)
        } else {
            None
        }
    }
}

fn taken(package: &Package, name: &str) -> Option<&'static str> {
    package.kind_of(name).map(|kind| kind.noun())
}

fn duplicate(name: &str, kind: &str, source: &SourceFile, span: Span) -> Error {
    Error::new(
        ErrorKind::Duplicate,
        format!("the name `{name}` is used twice in this package (already a {kind})"),
    )
    .at(Some(source.locate(span)))
    .help("services, modules and deployments of one package share one namespace: rename one")
}

fn table_of<'a>(
    node: &'a Node,
    source: &SourceFile,
    what: &str,
) -> Result<&'a [(Key, Node)], Error> {
    node.entries().ok_or_else(|| {
        Error::new(
            ErrorKind::Type,
            format!("`{what}` must be a table, got {}", node.kind_name()),
        )
        .at(Some(source.locate(node.span)))
        .help(format!("write [{what}.name] followed by its definitions"))
    })
}

fn check_name(key: &Key, source: &SourceFile, what: &str) -> Result<(), Error> {
    if is_option_name(&key.name) {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Label,
            format!("`{}` is not a valid {what} name", key.name),
        )
        .at(Some(source.locate(key.span)))
        .help("names use letters, digits, `_` and `-`"))
    }
}

fn parse_body(package: &str, name: &Key, node: &Node, source: &SourceFile) -> Result<Body, Error> {
    let entries = table_of(node, source, &name.name)?;
    let mut imports = Vec::new();
    let mut options = OptionTree::default();
    let mut definitions = Vec::new();
    for (key, value) in entries {
        match key.name.as_str() {
            "imports" => {
                let Value::List(items) = &value.value else {
                    return Err(Error::new(
                        ErrorKind::Type,
                        format!(
                            "`imports` must be a list of labels, got {}",
                            value.kind_name()
                        ),
                    )
                    .at(Some(source.locate(value.span)))
                    .help("write imports = [\":module\", \"//lib:module\"]"));
                };
                for item in items {
                    imports.push((label_at(item, package, source)?, item.span));
                }
            }
            "options" => options = parse_declarations(value, source, "")?,
            _ => definitions.push((key.clone(), value.clone())),
        }
    }
    Ok(Body {
        name: name.name.clone(),
        span: name.span,
        imports,
        options,
        definitions: Node::new(Value::Table(definitions), node.span),
    })
}

fn label_at(node: &Node, package: &str, source: &SourceFile) -> Result<Label, Error> {
    let Some(text) = node.as_str() else {
        return Err(Error::new(
            ErrorKind::Label,
            format!("a label must be a string, got {}", node.kind_name()),
        )
        .at(Some(source.locate(node.span)))
        .help("write a label such as \":name\" or \"//package:name\""));
    };
    parse_label(text, Some(package)).map_err(|err| err.at(Some(source.locate(node.span))))
}

fn parse_deployment(
    package: &str,
    name: &Key,
    node: &Node,
    source: &SourceFile,
) -> Result<DeploymentDef, Error> {
    let mut deployment = DeploymentDef {
        name: name.name.clone(),
        span: name.span,
        members: Vec::new(),
        targets: Vec::new(),
        namespace: None,
        managers: BTreeMap::new(),
        member_index: MemberIndexCell::default(),
    };
    for (key, value) in table_of(node, source, &name.name)? {
        match key.name.as_str() {
            "services" => deployment.members = parse_members(package, value, source)?,
            "targets" => deployment.targets = strings(value, source, "targets")?,
            "namespace" => match value.as_str() {
                Some(ns) => deployment.namespace = Some(ns.to_string()),
                None => {
                    return Err(Error::new(
                        ErrorKind::Type,
                        format!("`namespace` expects a string, got {}", value.kind_name()),
                    )
                    .at(Some(source.locate(value.span)))
                    .help("write namespace = \"shop\""))
                }
            },
            "managers" => {
                for (target, manager) in table_of(value, source, "managers")? {
                    let Some(manager) = manager.as_str() else {
                        return Err(Error::new(
                            ErrorKind::Type,
                            format!(
                                "the manager of `{}` must be a string, got {}",
                                target.name,
                                manager.kind_name()
                            ),
                        )
                        .at(Some(source.locate(manager.span)))
                        .help("write managers.procfile = \"honcho\""));
                    };
                    deployment
                        .managers
                        .insert(target.name.clone(), manager.to_string());
                }
            }
            other => {
                let err = Error::new(
                    ErrorKind::UnknownOption,
                    format!("unknown key `{other}` in the deployment `{}`", name.name),
                )
                .at(Some(source.locate(key.span)));
                return Err(
                    match did_you_mean(other, ["services", "targets", "namespace", "managers"]) {
                        Some(near) => err.help(format!("did you mean `{near}`?")),
                        None => err.help(
                            "a deployment has `services`, `targets`, `namespace` and `managers`",
                        ),
                    },
                );
            }
        }
    }
    Ok(deployment)
}

fn parse_members(package: &str, node: &Node, source: &SourceFile) -> Result<Vec<Member>, Error> {
    let mut members: Vec<Member> = Vec::new();
    // Name → index in `members`: a deployment may list thousands.
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut push = |member: Member| -> Result<(), Error> {
        if let Some(&index) = seen.get(&member.name) {
            let first = &members[index];
            let (line, column) = source.line_column(first.span.start);
            return Err(Error::new(
                ErrorKind::Duplicate,
                format!("two services of this deployment are named `{}`", member.name),
            )
            .at(Some(source.locate(member.span)))
            .note(format!("the first one is at {}:{line}:{column}", source.path))
            .help("a deployment's services need distinct names: define a renamed service in a package, or a local one in the deployment"));
        }
        seen.insert(member.name.clone(), members.len());
        members.push(member);
        Ok(())
    };
    match &node.value {
        Value::List(items) => {
            for item in items {
                let label = label_at(item, package, source)?;
                push(Member {
                    name: member_name(&label),
                    span: item.span,
                    source: MemberSource::Label {
                        label,
                        overrides: None,
                    },
                })?;
            }
        }
        Value::Table(entries) => {
            for (key, value) in entries {
                if key.name.starts_with("//") || key.name.starts_with(':') {
                    let label = parse_label(&key.name, Some(package))
                        .map_err(|err| err.at(Some(source.locate(key.span))))?;
                    let body = parse_body(package, key, value, source)?;
                    let overrides = (!body.imports.is_empty()
                        || !body.options.entries.is_empty()
                        || body.definitions.entries().is_some_and(|e| !e.is_empty()))
                    .then_some(body);
                    push(Member {
                        name: member_name(&label),
                        span: key.span,
                        source: MemberSource::Label { label, overrides },
                    })?;
                } else {
                    check_name(key, source, "service")?;
                    push(Member {
                        name: key.name.clone(),
                        span: key.span,
                        source: MemberSource::Local(parse_body(package, key, value, source)?),
                    })?;
                }
            }
        }
        _ => {
            return Err(Error::new(
                ErrorKind::Type,
                format!(
                    "`services` of a deployment must be a list of labels or a table, got {}",
                    node.kind_name()
                ),
            )
            .at(Some(source.locate(node.span)))
            .help("write services = [\"//web:api\", \"//db:postgres\"]"))
        }
    }
    Ok(members)
}

fn member_name(label: &Label) -> String {
    label
        .name
        .rsplit('/')
        .next()
        .unwrap_or(&label.name)
        .to_string()
}

fn strings(node: &Node, source: &SourceFile, what: &str) -> Result<Vec<String>, Error> {
    let wrong = |n: &Node| {
        Error::new(
            ErrorKind::Type,
            format!("`{what}` expects a list of strings, got {}", n.kind_name()),
        )
        .at(Some(source.locate(n.span)))
        .help(format!("write {what} = [\"procfile\", \"k8s\"]"))
    };
    let Value::List(items) = &node.value else {
        return Err(wrong(node));
    };
    items
        .iter()
        .map(|item| item.as_str().map(str::to_string).ok_or_else(|| wrong(item)))
        .collect()
}
