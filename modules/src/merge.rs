//! Merging the definitions of one service into one value, with the NixOS
//! module system's semantics: properties (`mkDefault`, `mkForce`,
//! `mkOverride`, `mkBefore`/`mkAfter`/`mkOrder`, `mkIf`, `mkMerge`, and
//! their nixpkgs `_type` JSON forms) are unwrapped, only the definitions of
//! the best (lowest) priority are kept, then the option's type merges them:
//! lists concatenate (sorted by order), tables merge by key, submodules
//! recursively, single values must agree.
//!
//! Strings holding `${{ }}` cannot be checked yet: they become `Pending`
//! entries, filled in by `universe` once references can be followed. Every
//! merged value records where its definitions came from (`Origin`).
use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::error::{did_you_mean, Error, ErrorKind};
use crate::node::{Node, SourceFile, Span, Value};
use crate::options::{Decl, OptionNode, OptionTree};
use crate::types::{check_scalar, is_scalar, Type};

/// Priority of option defaults.
pub const DEFAULT_PRIORITY: i64 = 1500;
/// Priority of `mkDefault`.
pub const MK_DEFAULT_PRIORITY: i64 = 1000;
/// Priority of a plain definition.
pub const PLAIN_PRIORITY: i64 = 100;
/// Priority of `mkForce`.
pub const MK_FORCE_PRIORITY: i64 = 50;
const PLAIN_ORDER: i64 = 1000;
const MAX_PROPERTY_DEPTH: usize = 64;

/// Where one definition of a resolved value comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The module file, relative to the workspace root (for a default: the
    /// file that declares the option).
    pub file: std::sync::Arc<str>,
    pub line: u32,
    pub column: u32,
    pub priority: i64,
    /// The option's declared default, not a definition.
    pub default: bool,
}

/// An option's default, merged once at declaration: most options of most
/// services are left at their default, so resolution copies this instead
/// of merging the default again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MergedDefault {
    pub value: Json,
    /// Option path below the option (`""` for the option itself) → origins.
    pub provenance: Vec<(String, Vec<Origin>)>,
}

/// Merges a declaration's default on its own; `None` when it cannot be
/// cached (it interpolates, or needs definitions to be valid).
pub(crate) fn merge_default(decl: &Decl) -> Option<MergedDefault> {
    let identity = |key: &str, _: &str| -> Result<String, Error> { Ok(key.to_string()) };
    let mut merger = Merger::new(&identity, (None, Span::default()), true);
    let mut path = Vec::new();
    let value = merger.merge_decl(&mut path, decl, Vec::new()).ok()?;
    if !merger.pendings.is_empty() {
        return None;
    }
    Some(MergedDefault {
        value,
        provenance: merger.provenance.into_iter().collect(),
    })
}

/// Where a definition was written.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Site<'a> {
    File {
        source: &'a SourceFile,
        package: &'a str,
    },
    Default(&'a Decl),
}

impl<'a> Site<'a> {
    pub(crate) fn package(&self) -> &'a str {
        match self {
            Site::File { package, .. } => package,
            Site::Default(_) => "",
        }
    }

    fn locate(&self, span: Span) -> Option<crate::error::Location> {
        match self {
            Site::File { source, .. } => Some(source.locate(span)),
            Site::Default(_) => None,
        }
    }

    fn describe(&self, span: Span) -> String {
        match self {
            Site::File { source, .. } => {
                let (line, column) = source.line_column(span.start);
                format!("{}:{line}:{column}", source.path)
            }
            Site::Default(decl) => {
                format!("the default in {}:{}", decl.declared_in, decl.default_line)
            }
        }
    }

    fn origin(&self, span: Span, priority: i64) -> Origin {
        match self {
            Site::File { source, .. } => {
                let (line, column) = source.line_column(span.start);
                Origin {
                    file: source.path.clone(),
                    line,
                    column,
                    priority,
                    default: false,
                }
            }
            Site::Default(decl) => Origin {
                file: decl.declared_in.clone(),
                line: decl.default_line,
                column: 0,
                priority,
                default: true,
            },
        }
    }
}

/// One definition of an option.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Def<'a> {
    pub node: &'a Node,
    pub priority: i64,
    pub order: i64,
    pub site: Site<'a>,
}

impl<'a> Def<'a> {
    pub(crate) fn plain(node: &'a Node, site: Site<'a>) -> Self {
        Def {
            node,
            priority: PLAIN_PRIORITY,
            order: PLAIN_ORDER,
            site,
        }
    }
}

/// A step of a path into a resolved value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Seg<'a> {
    Key(Cow<'a, str>),
    Index(usize),
}

/// A string with `${{ }}` waiting for its references.
#[derive(Clone, Debug)]
pub(crate) struct Pending<'a> {
    pub template: String,
    pub ty: &'a Type,
    pub site: Site<'a>,
    pub span: Span,
}

/// One merged service before interpolation.
#[derive(Debug)]
pub(crate) struct Merged<'a> {
    pub value: Json,
    pub pendings: BTreeMap<Vec<Seg<'a>>, Pending<'a>>,
    /// In merge order; sorted into a map once the resolution is done.
    pub provenance: Vec<(String, Vec<Origin>)>,
}

/// Turns a `depends_on` key (a label, relative to the defining package)
/// into the dependency's service name.
pub(crate) type KeyMapper<'m> = dyn Fn(&str, &str) -> Result<String, Error> + 'm;

pub(crate) struct Merger<'a, 'm> {
    pendings: BTreeMap<Vec<Seg<'a>>, Pending<'a>>,
    provenance: Vec<(String, Vec<Origin>)>,
    map_dependency: &'m KeyMapper<'m>,
    /// Where "used but not defined" errors point: the service's name.
    context: (Option<&'a SourceFile>, Span),
    /// Off for services merged only to follow a reference into them: their
    /// provenance is never shown, and recording it is most of a merge's cost.
    record_provenance: bool,
}

static LINES: Type = Type::Lines;

impl<'a, 'm> Merger<'a, 'm> {
    pub(crate) fn new(
        map_dependency: &'m KeyMapper<'m>,
        context: (Option<&'a SourceFile>, Span),
        record_provenance: bool,
    ) -> Self {
        Merger {
            pendings: BTreeMap::new(),
            provenance: Vec::with_capacity(if record_provenance { 64 } else { 0 }),
            map_dependency,
            context,
            record_provenance,
        }
    }

    /// Merges a service (`only`: just that one top-level option): `defs`
    /// are its definition tables, in order.
    pub(crate) fn merge_service(
        mut self,
        only: Option<&str>,
        layers: &[&'a OptionTree],
        defs: Vec<Def<'a>>,
    ) -> Result<Merged<'a>, Error> {
        let mut path = Vec::new();
        let value = match only {
            None => self.merge_group(&mut path, layers, defs)?,
            Some(option) => self.merge_top_option(&mut path, option, layers, defs)?,
        };
        Ok(Merged {
            value: Json::Object(value),
            pendings: self.pendings,
            provenance: self.provenance,
        })
    }

    /// One top-level option of a service, for following a reference into a
    /// service without merging all of it.
    fn merge_top_option(
        &mut self,
        path: &mut Vec<Seg<'a>>,
        option: &str,
        layers: &[&'a OptionTree],
        defs: Vec<Def<'a>>,
    ) -> Result<serde_json::Map<String, Json>, Error> {
        let mut narrowed = Vec::with_capacity(defs.len());
        for def in self.unwrap_all(defs, path)? {
            for (key, value) in def.node.entries().unwrap_or_default() {
                if key.name == option {
                    narrowed.push(Def {
                        node: value,
                        order: PLAIN_ORDER,
                        ..def
                    });
                }
            }
        }
        let mut leaves = Vec::new();
        let mut groups = Vec::new();
        for layer in layers {
            match layer.entries.get(option) {
                Some(OptionNode::Leaf(decl)) => leaves.push(&**decl),
                Some(OptionNode::Group(tree)) => groups.push(tree),
                None => {}
            }
        }
        let mut out = serde_json::Map::new();
        path.push(Seg::Key(Cow::Owned(option.to_string())));
        let value = match (leaves.as_slice(), groups.is_empty()) {
            ([decl], true) => Some(self.merge_decl(path, decl, narrowed)?),
            ([], false) => Some(Json::Object(self.merge_group(path, &groups, narrowed)?)),
            // Undeclared or declared twice: the service's own resolution
            // reports it; here the value is simply absent.
            _ => None,
        };
        path.pop();
        if let Some(value) = value {
            out.insert(option.to_string(), value);
        }
        Ok(out)
    }

    fn merge_group(
        &mut self,
        path: &mut Vec<Seg<'a>>,
        layers: &[&'a OptionTree],
        defs: Vec<Def<'a>>,
    ) -> Result<serde_json::Map<String, Json>, Error> {
        // A service defines few of its options: a short list beats a map.
        let mut by_key: DefsByKey<'a> = DefsByKey::default();
        for def in self.unwrap_all(defs, path)? {
            let Some(entries) = def.node.entries() else {
                return Err(self.type_error(
                    path,
                    &def,
                    "a table of options",
                    "write a table, e.g. name = { ... }",
                ));
            };
            for (key, value) in entries {
                if !layers.iter().any(|l| l.entries.contains_key(&key.name)) {
                    return Err(unknown_option(path, &key.name, key.span, def.site, layers));
                }
                by_key.entry(&key.name).push(Def {
                    node: value,
                    priority: def.priority,
                    order: PLAIN_ORDER,
                    site: def.site,
                });
            }
        }
        let mut out = serde_json::Map::new();
        if let [single] = layers {
            for (name, option) in &single.entries {
                let defs = by_key.remove(name.as_str()).unwrap_or_default();
                path.push(Seg::Key(Cow::Borrowed(name.as_str())));
                let value = match option {
                    OptionNode::Leaf(decl) => self.merge_decl(path, decl, defs)?,
                    OptionNode::Group(tree) => {
                        Json::Object(self.merge_group(path, &[tree], defs)?)
                    }
                };
                path.pop();
                out.insert(name.clone(), value);
            }
            return Ok(out);
        }
        let mut names: Vec<&'a String> = layers.iter().flat_map(|l| l.entries.keys()).collect();
        names.sort();
        names.dedup();
        for name in names {
            let mut leaves: Vec<&'a Decl> = Vec::new();
            let mut groups: Vec<&'a OptionTree> = Vec::new();
            for layer in layers {
                match layer.entries.get(name) {
                    Some(OptionNode::Leaf(decl)) => leaves.push(decl),
                    Some(OptionNode::Group(tree)) => groups.push(tree),
                    None => {}
                }
            }
            path.push(Seg::Key(Cow::Borrowed(name.as_str())));
            if leaves.len() > 1 || (!leaves.is_empty() && !groups.is_empty()) {
                let places: Vec<String> = leaves
                    .iter()
                    .map(|d| format!("{}:{}", d.declared_in, d.line))
                    .collect();
                return Err(Error::new(
                    ErrorKind::Duplicate,
                    format!(
                        "the option `{}` is declared more than once: {}",
                        display_path(path),
                        places.join(", ")
                    ),
                )
                .help("declare each option in one module only, and import that module where it is needed"));
            }
            let defs = by_key.remove(name.as_str()).unwrap_or_default();
            let value = match leaves.first() {
                Some(decl) => self.merge_decl(path, decl, defs)?,
                None => Json::Object(self.merge_group(path, &groups, defs)?),
            };
            path.pop();
            out.insert(name.clone(), value);
        }
        Ok(out)
    }

    fn merge_decl(
        &mut self,
        path: &mut Vec<Seg<'a>>,
        decl: &'a Decl,
        mut defs: Vec<Def<'a>>,
    ) -> Result<Json, Error> {
        if defs.is_empty() {
            if let Some(cached) = &decl.merged_default {
                if self.record_provenance && !path.iter().any(|s| matches!(s, Seg::Index(_))) {
                    let base = display_path(path);
                    for (suffix, origins) in &cached.provenance {
                        let key = if suffix.is_empty() {
                            base.clone()
                        } else {
                            format!("{base}.{suffix}")
                        };
                        self.provenance.push((key, origins.clone()));
                    }
                }
                return Ok(cached.value.clone());
            }
        }
        if let Some(default) = &decl.default {
            defs.push(Def {
                node: default,
                priority: DEFAULT_PRIORITY,
                order: PLAIN_ORDER,
                site: Site::Default(decl),
            });
        }
        self.merge_typed(path, &decl.ty, defs)
    }

    fn merge_typed(
        &mut self,
        path: &mut Vec<Seg<'a>>,
        ty: &'a Type,
        defs: Vec<Def<'a>>,
    ) -> Result<Json, Error> {
        let mut defs = self.unwrap_all(defs, path)?;
        if defs.is_empty() {
            return self.undefined(path, ty);
        }
        let best = defs
            .iter()
            .map(|d| d.priority)
            .min()
            .unwrap_or(PLAIN_PRIORITY);
        defs.retain(|d| d.priority == best);
        let in_list = !self.record_provenance || path.iter().any(|s| matches!(s, Seg::Index(_)));
        let record = |me: &mut Self, path: &[Seg<'_>], defs: &[Def<'a>]| {
            if !in_list {
                let origins = defs
                    .iter()
                    .map(|d| d.site.origin(d.node.span, d.priority))
                    .collect();
                me.provenance.push((display_path(path), origins));
            }
        };
        if is_scalar(ty) {
            record(self, path, &defs);
            return self.merge_scalar(path, ty, defs);
        }
        // A whole list or table given by one interpolation.
        let composite = matches!(
            ty,
            Type::ListOf(_) | Type::AttrsOf(_) | Type::Submodule(_) | Type::Record(_)
        );
        if let (true, [only]) = (composite, defs.as_slice()) {
            if let Value::Str(s) = &only.node.value {
                if s.contains("${{") {
                    record(self, path, &defs);
                    self.pendings.insert(
                        path.clone(),
                        Pending {
                            template: s.clone(),
                            ty,
                            site: only.site,
                            span: only.node.span,
                        },
                    );
                    return Ok(Json::Null);
                }
            }
        }
        match ty {
            Type::Attrs => {
                record(self, path, &defs);
                self.merge_free(path, defs)
            }
            Type::ListOf(inner) => {
                record(self, path, &defs);
                defs.sort_by_key(|d| d.order);
                let mut items = Vec::new();
                for def in &defs {
                    let Value::List(list) = &def.node.value else {
                        return Err(self.type_error(
                            path,
                            def,
                            &ty.expectation(),
                            &ty.hint(last_name(path)),
                        ));
                    };
                    for item in list {
                        path.push(Seg::Index(items.len()));
                        let value =
                            self.merge_typed(path, inner, vec![Def::plain(item, def.site)])?;
                        path.pop();
                        items.push(value);
                    }
                }
                Ok(Json::Array(items))
            }
            Type::AttrsOf(inner) => {
                let mut by_key: BTreeMap<String, Vec<Def<'a>>> = BTreeMap::new();
                for def in &defs {
                    let Some(entries) = def.node.entries() else {
                        return Err(self.type_error(
                            path,
                            def,
                            &ty.expectation(),
                            &ty.hint(last_name(path)),
                        ));
                    };
                    for (key, value) in entries {
                        let name = self.map_key(path, &key.name, key.span, def.site)?;
                        by_key
                            .entry(name)
                            .or_default()
                            .push(Def::plain(value, def.site));
                    }
                }
                if by_key.is_empty() {
                    record(self, path, &defs);
                }
                let mut out = serde_json::Map::new();
                for (key, defs) in by_key {
                    path.push(Seg::Key(Cow::Owned(key.clone())));
                    let value = self.merge_typed(path, inner, defs)?;
                    path.pop();
                    out.insert(key, value);
                }
                Ok(Json::Object(out))
            }
            Type::NullOr(inner) => {
                let nulls = defs.iter().filter(|d| d.node.value == Value::Null).count();
                if nulls == defs.len() {
                    record(self, path, &defs);
                    Ok(Json::Null)
                } else if nulls == 0 {
                    self.merge_typed(path, inner, defs)
                } else {
                    Err(conflict(
                        path,
                        &defs,
                        "the option `{}` is defined both null and not null:",
                    ))
                }
            }
            Type::OneOf(types) => {
                if let Some(ty) = types
                    .iter()
                    .find(|t| defs.iter().all(|d| t.matches(d.node)))
                {
                    return self.merge_typed(path, ty, defs);
                }
                match defs
                    .iter()
                    .find(|d| !types.iter().any(|t| t.matches(d.node)))
                {
                    Some(bad) => Err(self.type_error(
                        path,
                        bad,
                        &ty.expectation(),
                        &ty.hint(last_name(path)),
                    )),
                    None => Err(conflict(
                        path,
                        &defs,
                        "the option `{}` has definitions of different types:",
                    )),
                }
            }
            Type::Submodule(tree) => {
                for def in &defs {
                    if def.node.entries().is_none() {
                        return Err(self.type_error(
                            path,
                            def,
                            &ty.expectation(),
                            &ty.hint(last_name(path)),
                        ));
                    }
                }
                let defs = defs
                    .into_iter()
                    .map(|d| Def::plain(d.node, d.site))
                    .collect();
                let value = self.merge_group(path, &[tree], defs)?;
                Ok(Json::Object(value))
            }
            Type::Record(fields) => {
                let mut by_key: BTreeMap<&'a str, Vec<Def<'a>>> = BTreeMap::new();
                for def in &defs {
                    let Some(entries) = def.node.entries() else {
                        return Err(self.type_error(
                            path,
                            def,
                            &ty.expectation(),
                            &ty.hint(last_name(path)),
                        ));
                    };
                    for (key, value) in entries {
                        if !fields.iter().any(|f| f.name == key.name) {
                            let names = fields.iter().map(|f| f.name.as_str());
                            let mut err = Error::new(
                                ErrorKind::UnknownOption,
                                format!(
                                    "unknown field `{}` in the option `{}`",
                                    key.name,
                                    display_path(path)
                                ),
                            )
                            .at(def.site.locate(key.span));
                            err = match did_you_mean(&key.name, names) {
                                Some(near) => err.help(format!("did you mean `{near}`?")),
                                None => {
                                    err.help(format!("the option expects {}", ty.expectation()))
                                }
                            };
                            return Err(err);
                        }
                        by_key
                            .entry(&key.name)
                            .or_default()
                            .push(Def::plain(value, def.site));
                    }
                }
                let mut out = serde_json::Map::new();
                for field in fields {
                    let defs = by_key.remove(field.name.as_str()).unwrap_or_default();
                    if defs.is_empty() && field.optional {
                        continue;
                    }
                    path.push(Seg::Key(Cow::Borrowed(field.name.as_str())));
                    let value = self.merge_typed(path, &field.ty, defs)?;
                    path.pop();
                    out.insert(field.name.clone(), value);
                }
                Ok(Json::Object(out))
            }
            _ => self.merge_scalar(path, ty, defs),
        }
    }

    fn merge_scalar(
        &mut self,
        path: &[Seg<'a>],
        ty: &'a Type,
        mut defs: Vec<Def<'a>>,
    ) -> Result<Json, Error> {
        if *ty == Type::Lines {
            defs.sort_by_key(|d| d.order);
            let mut texts = Vec::new();
            for def in &defs {
                match &def.node.value {
                    Value::Str(s) => texts.push(s.as_str()),
                    _ => {
                        return Err(self.type_error(
                            path,
                            def,
                            &ty.expectation(),
                            &ty.hint(last_name(path)),
                        ))
                    }
                }
            }
            let text = texts.join("\n");
            if text.contains("${{") {
                self.pendings.insert(
                    path.to_vec(),
                    Pending {
                        template: text,
                        ty: &LINES,
                        site: defs[0].site,
                        span: defs[0].node.span,
                    },
                );
                return Ok(Json::Null);
            }
            return Ok(Json::String(text));
        }
        let mut chosen: Option<(Json, bool)> = None;
        for def in &defs {
            let candidate = match &def.node.value {
                Value::Str(s) if s.contains("${{") => (
                    Json::String(format!("{}\u{0}{}", def.site.package(), s)),
                    true,
                ),
                _ => (self.check(path, ty, def)?, false),
            };
            match &chosen {
                None => chosen = Some(candidate),
                Some(first) if *first == candidate => {}
                Some(_) => {
                    return Err(conflict(
                        path,
                        &defs,
                        "the option `{}` has conflicting definition values:",
                    ));
                }
            }
        }
        let (value, pending) = chosen.unwrap_or((Json::Null, false));
        if pending {
            let def = defs[0];
            self.pendings.insert(
                path.to_vec(),
                Pending {
                    template: def.node.as_str().unwrap_or_default().to_string(),
                    ty,
                    site: def.site,
                    span: def.node.span,
                },
            );
            return Ok(Json::Null);
        }
        Ok(value)
    }

    fn check(&self, path: &[Seg<'_>], ty: &Type, def: &Def<'a>) -> Result<Json, Error> {
        match check_scalar(ty, def.node) {
            Ok(value) if *ty == Type::Source => {
                let text = value.as_str().unwrap_or_default();
                workspace_path(def.site.package(), text).map(Json::String).map_err(|why| {
                    Error::new(
                        ErrorKind::Path,
                        format!("invalid path for option `{}`: {why}", display_path(path)),
                    )
                    .at(def.site.locate(def.node.span))
                    .help("write a path relative to the module file's folder that stays inside the workspace")
                })
            }
            Ok(value) => Ok(value),
            Err(None) => {
                Err(self.type_error(path, def, &ty.expectation(), &ty.hint(last_name(path))))
            }
            Err(Some(why)) => Err(Error::new(
                ErrorKind::Type,
                format!("invalid value for option `{}`: {why}", display_path(path)),
            )
            .at(def.site.locate(def.node.span))
            .help(ty.hint(last_name(path)))),
        }
    }

    /// Free-form tables: merged by key at any depth; other values must agree.
    fn merge_free(&mut self, path: &mut Vec<Seg<'a>>, defs: Vec<Def<'a>>) -> Result<Json, Error> {
        let mut defs = self.unwrap_all(defs, path)?;
        let Some(best) = defs.iter().map(|d| d.priority).min() else {
            return Ok(Json::Object(Default::default()));
        };
        defs.retain(|d| d.priority == best);
        if defs.iter().all(|d| d.node.entries().is_some()) {
            let mut by_key: BTreeMap<&'a str, Vec<Def<'a>>> = BTreeMap::new();
            for def in &defs {
                for (key, value) in def.node.entries().unwrap_or_default() {
                    by_key
                        .entry(&key.name)
                        .or_default()
                        .push(Def::plain(value, def.site));
                }
            }
            let mut out = serde_json::Map::new();
            for (key, defs) in by_key {
                path.push(Seg::Key(Cow::Borrowed(key)));
                let value = self.merge_free(path, defs)?;
                path.pop();
                out.insert(key.to_string(), value);
            }
            return Ok(Json::Object(out));
        }
        let first = defs[0].node.to_json();
        if defs.iter().any(|d| d.node.to_json() != first) {
            return Err(conflict(
                path,
                &defs,
                "the option `{}` has conflicting definition values:",
            ));
        }
        self.collect_free_pendings(path, defs[0].node, defs[0].site);
        Ok(first)
    }

    fn collect_free_pendings(&mut self, path: &mut Vec<Seg<'a>>, node: &'a Node, site: Site<'a>) {
        static ANY: Type = Type::Attrs;
        match &node.value {
            Value::Str(s) if s.contains("${{") => {
                self.pendings.insert(
                    path.clone(),
                    Pending {
                        template: s.clone(),
                        ty: &ANY,
                        site,
                        span: node.span,
                    },
                );
            }
            Value::List(items) => {
                for (i, item) in items.iter().enumerate() {
                    path.push(Seg::Index(i));
                    self.collect_free_pendings(path, item, site);
                    path.pop();
                }
            }
            Value::Table(entries) => {
                for (key, value) in entries {
                    path.push(Seg::Key(Cow::Borrowed(key.name.as_str())));
                    self.collect_free_pendings(path, value, site);
                    path.pop();
                }
            }
            _ => {}
        }
    }

    fn undefined(&mut self, path: &mut Vec<Seg<'a>>, ty: &'a Type) -> Result<Json, Error> {
        match ty {
            Type::NullOr(_) => Ok(Json::Null),
            Type::ListOf(_) => Ok(Json::Array(Vec::new())),
            Type::AttrsOf(_) | Type::Attrs => Ok(Json::Object(Default::default())),
            Type::Submodule(tree) => {
                Ok(Json::Object(self.merge_group(path, &[tree], Vec::new())?))
            }
            _ => Err(Error::new(
                ErrorKind::Undefined,
                format!(
                    "the option `{}` is used but not defined",
                    display_path(path)
                ),
            )
            .at(self.context.0.map(|s| s.locate(self.context.1)))
            .help(format!(
                "define it (it has no default), e.g. {} = ...",
                display_path(path)
            ))),
        }
    }

    fn map_key(
        &self,
        path: &[Seg<'_>],
        key: &str,
        span: Span,
        site: Site<'a>,
    ) -> Result<String, Error> {
        match path {
            [Seg::Key(option)] if option == "depends_on" => {
                (self.map_dependency)(key, site.package()).map_err(|err| err.at(site.locate(span)))
            }
            [Seg::Key(option)] if option == "files" => {
                let bad = key.is_empty()
                    || key.starts_with('/')
                    || key.contains('\\')
                    || key
                        .split('/')
                        .any(|part| part.is_empty() || part == "." || part == "..");
                if bad {
                    Err(Error::new(
                        ErrorKind::Path,
                        format!("the file name `{key}` would escape the output folder"),
                    )
                    .at(site.locate(span))
                    .help("name files with a relative path without `..`, `.` or empty parts, e.g. files.\"conf/app.conf\""))
                } else {
                    Ok(key.to_string())
                }
            }
            _ => Ok(key.to_string()),
        }
    }

    fn type_error(&self, path: &[Seg<'_>], def: &Def<'a>, expected: &str, hint: &str) -> Error {
        let name = if path.is_empty() {
            "service".to_string()
        } else {
            format!("option `{}`", display_path(path))
        };
        Error::new(
            ErrorKind::Type,
            format!("{name} expects {expected}, got {}", def.node.kind_name()),
        )
        .at(def.site.locate(def.node.span))
        .help(hint.to_string())
    }

    fn unwrap_all(&self, defs: Vec<Def<'a>>, path: &[Seg<'_>]) -> Result<Vec<Def<'a>>, Error> {
        if !defs.iter().any(|d| is_property(d.node)) {
            return Ok(defs);
        }
        let mut out = Vec::with_capacity(defs.len());
        for def in defs {
            unwrap_property(def, path, 0, &mut out)?;
        }
        Ok(out)
    }
}

/// Whether a node is a property wrapper (`{ mkForce = v }`, `{ _type = … }`).
fn is_property(node: &Node) -> bool {
    match node.entries() {
        Some([(key, _)]) => matches!(
            key.name.as_str(),
            "mkDefault"
                | "mkForce"
                | "mkOverride"
                | "mkBefore"
                | "mkAfter"
                | "mkOrder"
                | "mkIf"
                | "mkMerge"
        ),
        Some(entries) => entries
            .iter()
            .any(|(k, v)| k.name == "_type" && v.as_str().is_some()),
        None => false,
    }
}

fn unwrap_property<'a>(
    def: Def<'a>,
    path: &[Seg<'_>],
    depth: usize,
    out: &mut Vec<Def<'a>>,
) -> Result<(), Error> {
    if !is_property(def.node) {
        out.push(def);
        return Ok(());
    }
    let bad = |what: &str, help: &str| {
        Error::new(
            ErrorKind::Type,
            format!(
                "invalid {what} in the definition of `{}`",
                display_path(path)
            ),
        )
        .at(def.site.locate(def.node.span))
        .help(help.to_string())
    };
    if depth > MAX_PROPERTY_DEPTH {
        return Err(bad(
            "nesting of properties",
            "nest fewer mkForce/mkIf/mkMerge",
        ));
    }
    let entries = def.node.entries().unwrap_or_default();
    let field = |name: &str| entries.iter().find(|(k, _)| k.name == name).map(|(_, v)| v);
    let with = |node: &'a Node, priority: i64, order: i64| Def {
        node,
        priority,
        order,
        site: def.site,
    };
    let next = |d: Def<'a>, out: &mut Vec<Def<'a>>| unwrap_property(d, path, depth + 1, out);
    // `(kind, inner)`: the TOML spelling `{ mkX = inner }`, or the nixpkgs
    // JSON spelling `{ _type = kind, ... }` with the node itself as inner.
    let (kind, inner) = match field("_type").and_then(Node::as_str) {
        Some(kind) => (kind, def.node),
        None => (entries[0].0.name.as_str(), &entries[0].1),
    };
    let json_form = field("_type").is_some();
    let priority_and_content = |content_key: &str| -> Option<(i64, &'a Node)> {
        let priority = match inner.get("priority")?.value {
            Value::Int(p) => p,
            _ => return None,
        };
        Some((priority, inner.get(content_key)?))
    };
    match kind {
        "mkDefault" => next(with(inner, MK_DEFAULT_PRIORITY, def.order), out),
        "mkForce" => next(with(inner, MK_FORCE_PRIORITY, def.order), out),
        "mkBefore" => next(with(inner, def.priority, 500), out),
        "mkAfter" => next(with(inner, def.priority, 1500), out),
        "mkOverride" | "override" => {
            let key = if json_form { "content" } else { "value" };
            let (priority, content) = priority_and_content(key).ok_or_else(|| {
                bad(kind, "write { mkOverride = { priority = 10, value = ... } } (JSON: {\"_type\": \"override\", \"priority\": 10, \"content\": ...})")
            })?;
            next(with(content, priority, def.order), out)
        }
        "mkOrder" | "order" => {
            let key = if json_form { "content" } else { "value" };
            let (order, content) = priority_and_content(key).ok_or_else(|| {
                bad(kind, "write { mkOrder = { priority = 500, value = [...] } } (JSON: {\"_type\": \"order\", \"priority\": 500, \"content\": [...]})")
            })?;
            next(with(content, def.priority, order), out)
        }
        "mkIf" | "if" => {
            let condition = match inner.get("condition").map(|c| &c.value) {
                Some(Value::Bool(b)) => *b,
                _ => {
                    return Err(bad(
                        kind,
                        "write { mkIf = { condition = true, content = ... } }",
                    ))
                }
            };
            let content = inner
                .get("content")
                .ok_or_else(|| bad(kind, "write { mkIf = { condition = true, content = ... } }"))?;
            if condition {
                next(with(content, def.priority, def.order), out)?;
            }
            Ok(())
        }
        "mkMerge" | "merge" => {
            let list = if json_form {
                inner.get("contents")
            } else {
                Some(inner)
            };
            let Some(Node {
                value: Value::List(items),
                ..
            }) = list
            else {
                return Err(bad(kind, "write { mkMerge = [ ..., ... ] }"));
            };
            for item in items {
                next(with(item, def.priority, def.order), out)?;
            }
            Ok(())
        }
        other => Err(bad(
            &format!("property `_type = \"{other}\"`"),
            "n2d understands the nixpkgs properties override, order, merge and if",
        )),
    }
}

fn unknown_option(
    path: &[Seg<'_>],
    name: &str,
    span: Span,
    site: Site<'_>,
    layers: &[&OptionTree],
) -> Error {
    let full = if path.is_empty() {
        name.to_string()
    } else {
        format!("{}.{}", display_path(path), quote_key(name))
    };
    let known = layers
        .iter()
        .flat_map(|l| l.entries.keys().map(String::as_str));
    let err = Error::new(ErrorKind::UnknownOption, format!("unknown option `{full}`"))
        .at(site.locate(span));
    match did_you_mean(name, known) {
        Some(near) => err.help(format!("did you mean `{near}`?")),
        None => err.help(
            "see `n2d options` for the options a service has, or declare your own under `options`",
        ),
    }
}

fn conflict(path: &[Seg<'_>], defs: &[Def<'_>], headline: &str) -> Error {
    let mut message = headline.replace("{}", &display_path(path));
    for def in defs {
        message.push_str(&format!(
            "\n  - in `{}`: {}",
            def.site.describe(def.node.span),
            def.node.to_json()
        ));
    }
    Error::new(ErrorKind::Conflict, message).help(
        "use { mkForce = value } or { mkDefault = value } to change the priority of one of these definitions",
    )
}

/// Definitions grouped by option name, in first-seen order.
#[derive(Default)]
struct DefsByKey<'a> {
    groups: Vec<(&'a str, Vec<Def<'a>>)>,
}

impl<'a> DefsByKey<'a> {
    fn entry(&mut self, key: &'a str) -> &mut Vec<Def<'a>> {
        let at = match self.groups.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.groups.push((key, Vec::with_capacity(2)));
                self.groups.len() - 1
            }
        };
        &mut self.groups[at].1
    }

    fn remove(&mut self, key: &str) -> Option<Vec<Def<'a>>> {
        let at = self.groups.iter().position(|(k, _)| *k == key)?;
        Some(self.groups.swap_remove(at).1)
    }
}

/// `readiness.http.port`, `files."nginx.conf".text`, `command[0]`.
pub(crate) fn display_path(path: &[Seg<'_>]) -> String {
    let mut out = String::with_capacity(32);
    for seg in path {
        match seg {
            Seg::Key(key) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if crate::options::is_option_name(key) {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

pub(crate) fn quote_key(key: &str) -> String {
    if crate::options::is_option_name(key) {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn last_name<'p>(path: &'p [Seg<'_>]) -> &'p str {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.as_ref()),
            Seg::Index(_) => None,
        })
        .unwrap_or("value")
}

/// Joins a path written in package `package` to the package's folder and
/// normalizes it; errors when it is absolute or escapes the workspace.
pub fn workspace_path(package: &str, text: &str) -> Result<String, String> {
    if text.starts_with('/') {
        return Err(format!(
            "`{text}` is absolute; it must be relative to the module file"
        ));
    }
    let mut parts: Vec<&str> = package.split('/').filter(|p| !p.is_empty()).collect();
    for part in text.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!("`{text}` escapes the workspace"));
                }
            }
            part => parts.push(part),
        }
    }
    if parts.is_empty() {
        return Err(format!("`{text}` names the workspace root, not a file"));
    }
    Ok(parts.join("/"))
}
