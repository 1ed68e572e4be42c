//! The EvalPackage stage: one parsed module file into a `Package` — its
//! services, modules and deployments, each body split into `imports`,
//! declared `options` and option definitions. Checks what can be checked
//! without other packages: the file's keys, names, duplicates, labels.
use std::collections::BTreeMap;
use std::sync::OnceLock;

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
    pub deployments: BTreeMap<String, LazyDeployment>,
}

/// A deployment of a package, decoded from the package's JSON only when
/// first used. A Resolve task reads one deployment of its deployment's
/// package; a package of ten 1,000-service deployments decoded whole was
/// most of the time of a one-service rebuild. It serializes to the same
/// bytes either way (the JSON it was read from, or its definition).
pub struct LazyDeployment {
    raw: Option<Box<serde_json::value::RawValue>>,
    def: OnceLock<DeploymentDef>,
}

impl LazyDeployment {
    pub fn new(def: DeploymentDef) -> LazyDeployment {
        LazyDeployment {
            raw: None,
            def: OnceLock::from(def),
        }
    }
}

impl From<DeploymentDef> for LazyDeployment {
    fn from(def: DeploymentDef) -> LazyDeployment {
        LazyDeployment::new(def)
    }
}

impl std::ops::Deref for LazyDeployment {
    type Target = DeploymentDef;
    fn deref(&self) -> &DeploymentDef {
        self.def.get_or_init(|| {
            let raw = self
                .raw
                .as_ref()
                .expect("a deployment is either decoded or holds its JSON");
            // The JSON was checked as JSON when the package was read, and
            // came from this type's own serialization (a digest-checked
            // blob); failing here is a bug, reported by the task's panic.
            serde_json::from_str(raw.get()).unwrap_or_else(|e| {
                panic!("a deployment of an evaluated package does not decode (please report this bug): {e}")
            })
        })
    }
}

impl Clone for LazyDeployment {
    fn clone(&self) -> Self {
        LazyDeployment {
            raw: self.raw.clone(),
            def: self.def.clone(),
        }
    }
}

impl PartialEq for LazyDeployment {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for LazyDeployment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        (**self).fmt(f)
    }
}

impl Serialize for LazyDeployment {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match (self.def.get(), &self.raw) {
            (Some(def), _) => def.serialize(serializer),
            (None, Some(raw)) => raw.serialize(serializer),
            (None, None) => unreachable!("a deployment is either decoded or holds its JSON"),
        }
    }
}

impl<'de> Deserialize<'de> for LazyDeployment {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(LazyDeployment {
            raw: Some(Deserialize::deserialize(deserializer)?),
            def: OnceLock::new(),
        })
    }
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
    /// (The bodies are boxed: most members have none, and a deployment
    /// of 1,000 members is decoded on every delta build.)
    Label {
        label: Label,
        overrides: Option<Box<Body>>,
    },
    /// A service that only exists in this deployment.
    Local(Box<Body>),
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
                    out.deployments
                        .insert(name_key.name.clone(), deployment.into());
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
                    .then(|| Box::new(body));
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
                        source: MemberSource::Local(Box::new(parse_body(
                            package, key, value, source,
                        )?)),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::{parse_module_file, Format};

    #[test]
    fn a_lazy_deployment_reads_back_to_the_same_package_and_bytes() {
        let text = "[services.a]\ncommand = [\"/bin/true\"]\n\n[deployments.dev]\nservices = [\":a\"]\nnamespace = \"n\"\n\n[deployments.other]\nservices = { a = {} }\n";
        let file = parse_module_file("x/n2d.toml", text, Format::Toml).unwrap();
        let package = eval_package("x", &file).unwrap();
        let bytes = serde_json::to_vec(&package).unwrap();
        let read: Package = serde_json::from_slice(&bytes).unwrap();
        // Not decoded yet: written back as read.
        assert_eq!(serde_json::to_vec(&read).unwrap(), bytes);
        // Decoded on use, equal to the original, and still the same bytes.
        assert_eq!(read.deployments["dev"].namespace.as_deref(), Some("n"));
        assert_eq!(read.deployments["dev"].members.len(), 1);
        assert_eq!(read, package);
        assert_eq!(serde_json::to_vec(&read).unwrap(), bytes);
        assert_eq!(read.clone(), package);
    }
}
