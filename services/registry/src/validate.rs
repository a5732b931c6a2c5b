//! Turns YAML documents into validated definitions, or into every error found, each naming the
//! document, the path of the bad field and why.
//!
//! Validation is all-or-nothing and pure: it reads nothing but its input. Checks that need
//! stored versions (pinned `view@N:feature` refs) happen in [`crate::plan`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::time::Duration;

use quiver_core::duration::parse_duration;
use quiver_core::names::is_valid_name;
use quiver_core::{
    Aggregation, Column, Entity, Feature, FeatureRef, FeatureService, FeatureView, JoinKey, Source,
    Transform, TransformOp, ValueType, Window,
};

use crate::definition::Definition;
use crate::spec::{
    ColumnSpec, DefinitionsDoc, EntitySpec, FeatureServiceSpec, FeatureSpec, FeatureViewSpec,
    SourceSpec, TransformSpec,
};

/// How late an event may be when a source does not say.
pub const DEFAULT_ALLOWED_LATENESS: Duration = Duration::from_secs(300);

pub use quiver_core::transform::{MAX_NGRAM_BUCKETS, MAX_NGRAM_N};

/// One named YAML input.
#[derive(Debug, Clone)]
pub struct Document {
    /// Where it came from, e.g. a file path.
    pub name: String,
    /// The YAML text; may hold several `---`-separated documents.
    pub yaml: String,
}

/// One problem in the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// The document, e.g. `examples/fraud.yaml`.
    pub document: String,
    /// The field path, e.g. `feature_views[0].features[2].column`.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.document, self.path, self.message)
    }
}

/// A definition and where it was declared.
#[derive(Debug, Clone)]
pub struct Located {
    /// The definition.
    pub definition: Definition,
    /// The document it came from.
    pub document: String,
    /// Its path in the document, e.g. `feature_services[0]`.
    pub path: String,
}

/// A project's complete desired state, valid in itself.
#[derive(Debug, Clone)]
pub struct Validated {
    /// The project.
    pub project: String,
    /// Every object, entities first, then sources, views and services, each in input order.
    pub definitions: Vec<Located>,
}

impl Validated {
    /// The view named `name`, if declared.
    pub fn view(&self, name: &str) -> Option<&FeatureView> {
        self.definitions.iter().find_map(|l| match &l.definition {
            Definition::FeatureView(v) if v.name == name => Some(v),
            _ => None,
        })
    }
}

/// Parses and validates `documents` as one project's complete state.
pub fn validate(documents: &[Document]) -> Result<Validated, Vec<FieldError>> {
    let docs = parse(documents)?;
    let mut v = Validator::default();
    let project = v.project(&docs);
    let entities = v.entities(&docs);
    let sources = v.sources(&docs, &entities);
    let views = v.views(&docs, &entities, &sources);
    let services = v.services(&docs, &views);
    if !v.errors.is_empty() {
        return Err(v.errors);
    }
    let definitions = entities
        .into_values()
        .map(|d| d.map(Definition::Entity))
        .chain(sources.into_values().map(|d| d.map(Definition::Source)))
        .chain(views.into_values().map(|d| d.map(Definition::FeatureView)))
        .chain(
            services
                .into_iter()
                .map(|d| d.map(Definition::FeatureService)),
        )
        .filter_map(|d| {
            Some(Located {
                definition: d.value?,
                document: d.document,
                path: d.path,
            })
        })
        .collect();
    Ok(Validated {
        project,
        definitions,
    })
}

/// A parsed document.
struct Parsed {
    name: String,
    doc: DefinitionsDoc,
}

/// The deepest `[`/`{` nesting a document may have. YAML's parser takes time quadratic in a
/// deep nesting before it refuses it (100,000 brackets held a core for 15 s), so such text is
/// refused before it is parsed.
const MAX_BRACKET_DEPTH: usize = 64;

/// Where (line, column, from 1) brackets first nest deeper than [`MAX_BRACKET_DEPTH`], counting
/// every bracket, quoted or not: a refusal needs 64 unclosed ones, which no definition holds.
fn nested_too_deep(yaml: &str) -> Option<(usize, usize)> {
    let mut depth = 0usize;
    for (l, line) in yaml.lines().enumerate() {
        for (c, ch) in line.chars().enumerate() {
            match ch {
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_BRACKET_DEPTH {
                        return Some((l + 1, c + 1));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
    }
    None
}

fn parse(documents: &[Document]) -> Result<Vec<Parsed>, Vec<FieldError>> {
    let mut parsed = Vec::new();
    let mut errors = Vec::new();
    if documents.is_empty() {
        errors.push(FieldError {
            document: "(input)".into(),
            path: "documents".into(),
            message: "no definitions were given".into(),
        });
    }
    for document in documents {
        if let Some((line, column)) = nested_too_deep(&document.yaml) {
            errors.push(FieldError {
                document: document.name.clone(),
                path: "(yaml)".into(),
                message: format!(
                    "brackets nest more than {MAX_BRACKET_DEPTH} deep at line {line} column \
                     {column}; definitions never need that"
                ),
            });
            continue;
        }
        let values: Vec<serde_yaml::Value> =
            match serde_yaml::Deserializer::from_str(&document.yaml)
                .map(serde::Deserialize::deserialize)
                .collect::<Result<_, _>>()
            {
                Ok(values) => values,
                Err(e) => {
                    errors.push(FieldError {
                        document: document.name.clone(),
                        path: "(yaml)".into(),
                        message: e.to_string(),
                    });
                    continue;
                }
            };
        let values: Vec<_> = values.into_iter().filter(|v| !v.is_null()).collect();
        if values.is_empty() {
            errors.push(FieldError {
                document: document.name.clone(),
                path: "(document)".into(),
                message: "the document is empty".into(),
            });
        }
        let several = values.len() > 1;
        for (i, value) in values.into_iter().enumerate() {
            let name = if several {
                format!("{}#{}", document.name, i + 1)
            } else {
                document.name.clone()
            };
            match serde_path_to_error::deserialize::<_, DefinitionsDoc>(value) {
                Ok(doc) => parsed.push(Parsed { name, doc }),
                Err(e) => {
                    let path = e.path().to_string();
                    errors.push(FieldError {
                        document: name,
                        path: if path == "." {
                            "(document)".into()
                        } else {
                            path
                        },
                        message: e.into_inner().to_string(),
                    });
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(parsed)
    } else {
        Err(errors)
    }
}

/// A declared object: where it is, and its validated form when it had no errors.
struct Decl<T> {
    document: String,
    path: String,
    value: Option<T>,
}

impl<T> Decl<T> {
    fn map<U>(self, f: impl FnOnce(T) -> U) -> Decl<U> {
        Decl {
            document: self.document,
            path: self.path,
            value: self.value.map(f),
        }
    }
}

#[derive(Default)]
struct Validator {
    errors: Vec<FieldError>,
}

impl Validator {
    fn error(&mut self, document: &str, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            document: document.to_string(),
            path: path.into(),
            message: message.into(),
        });
    }

    /// Checks a name; returns whether it is valid.
    fn name(&mut self, document: &str, path: &str, name: &str) -> bool {
        if is_valid_name(name) {
            return true;
        }
        self.error(
            document,
            path,
            format!("{name:?} is not a valid name (a letter or _, then letters, digits or _; at most 128)"),
        );
        false
    }

    fn duration(&mut self, document: &str, path: &str, text: &str) -> Option<Duration> {
        match parse_duration(text) {
            Ok(d) if d.is_zero() => {
                self.error(document, path, "must be longer than zero");
                None
            }
            Ok(d) => Some(d),
            Err(e) => {
                self.error(document, path, e.to_string());
                None
            }
        }
    }

    fn value_type(&mut self, document: &str, path: &str, text: &str) -> Option<ValueType> {
        match text.parse() {
            Ok(t) => Some(t),
            Err(e) => {
                self.error(document, path, format!("{e}"));
                None
            }
        }
    }

    /// Registers `name` of `kind` declared at (document, path); reports a duplicate.
    fn unique<T>(
        &mut self,
        seen: &BTreeMap<String, Decl<T>>,
        kind: &str,
        document: &str,
        path: &str,
        name: &str,
    ) -> bool {
        if let Some(first) = seen.get(name) {
            self.error(
                document,
                format!("{path}.name"),
                format!(
                    "duplicate {kind} {name:?} (first declared at {}: {})",
                    first.document, first.path
                ),
            );
            return false;
        }
        true
    }

    fn project(&mut self, docs: &[Parsed]) -> String {
        let mut project: Option<(&str, &str)> = None;
        for parsed in docs {
            let name = parsed.doc.project.as_str();
            if !self.name(&parsed.name, "project", name) {
                continue;
            }
            match project {
                None => project = Some((name, &parsed.name)),
                Some((first, first_doc)) if first != name => self.error(
                    &parsed.name,
                    "project",
                    format!("{name:?} differs from project {first:?} of {first_doc}; apply one project at a time"),
                ),
                Some(_) => {}
            }
        }
        project.map(|(p, _)| p.to_string()).unwrap_or_default()
    }

    fn columns(&mut self, document: &str, path: &str, specs: &[ColumnSpec]) -> Option<Vec<Column>> {
        let mut seen = HashSet::new();
        let mut columns = Vec::new();
        let mut ok = true;
        for (i, spec) in specs.iter().enumerate() {
            let at = format!("{path}[{i}]");
            ok &= self.name(document, &format!("{at}.name"), &spec.name);
            if !seen.insert(spec.name.as_str()) {
                self.error(
                    document,
                    format!("{at}.name"),
                    format!("duplicate column {:?}", spec.name),
                );
                ok = false;
            }
            match self.value_type(document, &format!("{at}.type"), &spec.value_type) {
                Some(value_type) => columns.push(Column {
                    name: spec.name.clone(),
                    value_type,
                }),
                None => ok = false,
            }
        }
        ok.then_some(columns)
    }

    fn entities(&mut self, docs: &[Parsed]) -> BTreeMap<String, Decl<Entity>> {
        let mut out = BTreeMap::new();
        for parsed in docs {
            for (i, spec) in parsed.doc.entities.iter().enumerate() {
                let path = format!("entities[{i}]");
                if !self.unique(&out, "entity", &parsed.name, &path, &spec.name) {
                    continue;
                }
                let value = self.entity(&parsed.name, &path, spec);
                out.insert(
                    spec.name.clone(),
                    Decl {
                        document: parsed.name.clone(),
                        path,
                        value,
                    },
                );
            }
        }
        out
    }

    fn entity(&mut self, doc: &str, path: &str, spec: &EntitySpec) -> Option<Entity> {
        let name_ok = self.name(doc, &format!("{path}.name"), &spec.name);
        if spec.join_keys.is_empty() {
            self.error(
                doc,
                format!("{path}.join_keys"),
                "an entity needs at least one join key",
            );
            return None;
        }
        let keys = self.columns(doc, &format!("{path}.join_keys"), &spec.join_keys)?;
        let mut ok = name_ok;
        for (i, key) in keys.iter().enumerate() {
            if !key.value_type.is_key_type() {
                self.error(
                    doc,
                    format!("{path}.join_keys[{i}].type"),
                    format!(
                        "{} cannot be a join key type; use int64, string or bytes",
                        key.value_type
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| Entity {
            name: spec.name.clone(),
            join_keys: keys
                .into_iter()
                .map(|c| JoinKey {
                    name: c.name,
                    value_type: c.value_type,
                })
                .collect(),
            description: spec.description.clone(),
        })
    }

    fn sources(
        &mut self,
        docs: &[Parsed],
        entities: &BTreeMap<String, Decl<Entity>>,
    ) -> BTreeMap<String, Decl<Source>> {
        let mut out = BTreeMap::new();
        for parsed in docs {
            for (i, spec) in parsed.doc.sources.iter().enumerate() {
                let path = format!("sources[{i}]");
                if !self.unique(&out, "source", &parsed.name, &path, &spec.name) {
                    continue;
                }
                let value = self.source(&parsed.name, &path, spec, entities);
                out.insert(
                    spec.name.clone(),
                    Decl {
                        document: parsed.name.clone(),
                        path,
                        value,
                    },
                );
            }
        }
        out
    }

    fn source(
        &mut self,
        doc: &str,
        path: &str,
        spec: &SourceSpec,
        entities: &BTreeMap<String, Decl<Entity>>,
    ) -> Option<Source> {
        let mut ok = self.name(doc, &format!("{path}.name"), &spec.name);
        let entity = match entities.get(&spec.entity) {
            None => {
                self.error(
                    doc,
                    format!("{path}.entity"),
                    format!("unknown entity {:?}", spec.entity),
                );
                ok = false;
                None
            }
            Some(decl) => decl.value.as_ref(),
        };
        if spec.schema.is_empty() {
            self.error(
                doc,
                format!("{path}.schema"),
                "a source needs at least one column",
            );
        }
        // An empty schema counts as invalid: the checks that need columns are skipped.
        let schema = self
            .columns(doc, &format!("{path}.schema"), &spec.schema)
            .filter(|s| !s.is_empty());
        ok &= schema.is_some();
        let columns = schema.as_deref().unwrap_or_default();
        match columns.iter().find(|c| c.name == spec.timestamp_field) {
            None if schema.is_none() => {}
            None => {
                self.error(
                    doc,
                    format!("{path}.timestamp_field"),
                    format!("{:?} is not a column of the schema", spec.timestamp_field),
                );
                ok = false;
            }
            Some(c) if c.value_type != ValueType::Timestamp => {
                self.error(
                    doc,
                    format!("{path}.timestamp_field"),
                    format!("column {:?} is {}, not timestamp", c.name, c.value_type),
                );
                ok = false;
            }
            Some(_) => {}
        }
        if let (Some(entity), Some(schema)) = (entity, &schema) {
            for key in &entity.join_keys {
                match schema.iter().find(|c| c.name == key.name) {
                    None => {
                        self.error(
                            doc,
                            format!("{path}.schema"),
                            format!(
                                "join key {:?} of entity {:?} is missing from the schema",
                                key.name, entity.name
                            ),
                        );
                        ok = false;
                    }
                    Some(c) if c.value_type != key.value_type => {
                        self.error(
                            doc,
                            format!("{path}.schema"),
                            format!(
                                "join key {:?} is {} in the schema but {} in entity {:?}",
                                key.name, c.value_type, key.value_type, entity.name
                            ),
                        );
                        ok = false;
                    }
                    Some(_) => {}
                }
            }
        }
        let allowed_lateness = match &spec.allowed_lateness {
            None => DEFAULT_ALLOWED_LATENESS,
            Some(text) => match parse_duration(text) {
                Ok(d) => d,
                Err(e) => {
                    self.error(doc, format!("{path}.allowed_lateness"), e.to_string());
                    ok = false;
                    Duration::ZERO
                }
            },
        };
        let log_retention = match &spec.log_retention {
            None => None,
            Some(text) => match parse_duration(text) {
                // The source log is partitioned by date: less than a day cannot be kept apart.
                Ok(d) if d >= Duration::from_secs(86_400) => Some(d),
                Ok(_) => {
                    self.error(
                        doc,
                        format!("{path}.log_retention"),
                        format!("{text:?} is shorter than a day (the source log is kept by date)"),
                    );
                    ok = false;
                    None
                }
                Err(e) => {
                    self.error(doc, format!("{path}.log_retention"), e.to_string());
                    ok = false;
                    None
                }
            },
        };
        let kafka = match &spec.kafka {
            None => None,
            Some(k) => {
                let kafka = self.kafka(doc, &format!("{path}.kafka"), k);
                ok &= kafka.is_some();
                kafka
            }
        };
        let schema = schema.filter(|_| ok && entity.is_some())?;
        Some(Source {
            kafka,
            log_retention,
            name: spec.name.clone(),
            entity: spec.entity.clone(),
            timestamp_field: spec.timestamp_field.clone(),
            allowed_lateness,
            schema,
            description: spec.description.clone(),
        })
    }

    fn views(
        &mut self,
        docs: &[Parsed],
        entities: &BTreeMap<String, Decl<Entity>>,
        sources: &BTreeMap<String, Decl<Source>>,
    ) -> BTreeMap<String, Decl<FeatureView>> {
        let mut out = BTreeMap::new();
        for parsed in docs {
            for (i, spec) in parsed.doc.feature_views.iter().enumerate() {
                let path = format!("feature_views[{i}]");
                if !self.unique(&out, "feature view", &parsed.name, &path, &spec.name) {
                    continue;
                }
                let value = self.view(&parsed.name, &path, spec, entities, sources);
                out.insert(
                    spec.name.clone(),
                    Decl {
                        document: parsed.name.clone(),
                        path,
                        value,
                    },
                );
            }
        }
        out
    }

    fn view(
        &mut self,
        doc: &str,
        path: &str,
        spec: &FeatureViewSpec,
        entities: &BTreeMap<String, Decl<Entity>>,
        sources: &BTreeMap<String, Decl<Source>>,
    ) -> Option<FeatureView> {
        let mut ok = self.name(doc, &format!("{path}.name"), &spec.name);
        if !entities.contains_key(&spec.entity) {
            self.error(
                doc,
                format!("{path}.entity"),
                format!("unknown entity {:?}", spec.entity),
            );
            ok = false;
        }
        // Without a valid source, columns cannot be checked (the source's own errors are
        // reported already), but everything else still is.
        let source = match sources.get(&spec.source) {
            None => {
                self.error(
                    doc,
                    format!("{path}.source"),
                    format!("unknown source {:?}", spec.source),
                );
                None
            }
            Some(decl) => decl.value.as_ref(),
        };
        ok &= source.is_some();
        if let Some(source) = source.filter(|s| s.entity != spec.entity) {
            if entities.contains_key(&spec.entity) {
                self.error(
                    doc,
                    format!("{path}.source"),
                    format!(
                        "source {:?} belongs to entity {:?}, not {:?}",
                        source.name, source.entity, spec.entity
                    ),
                );
                ok = false;
            }
        }
        let ttl = match &spec.ttl {
            None => None,
            Some(text) => {
                let ttl = self.duration(doc, &format!("{path}.ttl"), text);
                ok &= ttl.is_some();
                ttl
            }
        };

        // Columns a transform or feature may read: the source's, then each transform's output.
        // A column's type is `None` when it is the output of a transform that has errors: it
        // exists (so no "unknown column" noise) but cannot be type-checked.
        let mut columns: Option<HashMap<&str, Option<ValueType>>> = source.map(|s| {
            s.schema
                .iter()
                .map(|c| (c.name.as_str(), Some(c.value_type)))
                .collect()
        });
        let mut transforms = Vec::new();
        for (i, t) in spec.transforms.iter().enumerate() {
            let at = format!("{path}.transforms[{i}]");
            match self.transform(doc, &at, t, &spec.source, columns.as_ref()) {
                Some(transform) => {
                    if let Some(columns) = columns.as_mut() {
                        columns.insert(t.name.as_str(), Some(transform.op.output_type()));
                    }
                    transforms.push(transform);
                }
                None => {
                    if let Some(columns) = columns.as_mut() {
                        columns.entry(t.name.as_str()).or_insert(None);
                    }
                    ok = false;
                }
            }
        }

        if spec.features.is_empty() {
            self.error(
                doc,
                format!("{path}.features"),
                "a feature view needs at least one feature",
            );
            ok = false;
        }
        let mut names = HashSet::new();
        let mut features = Vec::new();
        for (i, f) in spec.features.iter().enumerate() {
            let at = format!("{path}.features[{i}]");
            if !names.insert(f.name.as_str()) {
                self.error(
                    doc,
                    format!("{at}.name"),
                    format!("duplicate feature {:?}", f.name),
                );
                ok = false;
                continue;
            }
            let has_transforms = !transforms.is_empty();
            match self.feature(doc, &at, f, &spec.source, has_transforms, columns.as_ref()) {
                Some(feature) => features.push(feature),
                None => ok = false,
            }
        }
        ok.then(|| FeatureView {
            name: spec.name.clone(),
            entity: spec.entity.clone(),
            source: spec.source.clone(),
            ttl,
            transforms,
            features,
            description: spec.description.clone(),
        })
    }

    fn transform(
        &mut self,
        doc: &str,
        at: &str,
        spec: &TransformSpec,
        source: &str,
        columns: Option<&HashMap<&str, Option<ValueType>>>,
    ) -> Option<Transform> {
        let mut ok = self.name(doc, &format!("{at}.name"), &spec.name);
        if columns.is_some_and(|c| c.contains_key(spec.name.as_str())) {
            self.error(
                doc,
                format!("{at}.name"),
                format!(
                    "{:?} is already a column of source {source:?} or an earlier transform",
                    spec.name
                ),
            );
            ok = false;
        }
        let input_type = match columns.map(|c| c.get(spec.input.as_str())) {
            None => None,
            Some(Some(t)) => *t,
            Some(None) => {
                self.error(
                    doc,
                    format!("{at}.input"),
                    format!(
                        "{:?} is not a column of source {source:?} or an earlier transform",
                        spec.input
                    ),
                );
                ok = false;
                None
            }
        };
        let mut unexpected = |v: &mut Self, field: &str, present: bool, op: &str| {
            if present {
                v.error(
                    doc,
                    format!("{at}.{field}"),
                    format!("{op} does not take {field}"),
                );
                ok = false;
            }
        };
        let window = |v: &mut Self| {
            spec.window
                .as_ref()
                .map(|w| v.duration(doc, &format!("{at}.window"), w).ok_or(()))
                .transpose()
        };
        let op = match spec.op.as_str() {
            "token_count" => {
                unexpected(self, "n", spec.n.is_some(), "token_count");
                unexpected(self, "buckets", spec.buckets.is_some(), "token_count");
                unexpected(self, "window", spec.window.is_some(), "token_count");
                unexpected(
                    self,
                    "exclude_above",
                    spec.exclude_above.is_some(),
                    "token_count",
                );
                Some(TransformOp::TokenCount)
            }
            "ngram_hash" => {
                unexpected(self, "window", spec.window.is_some(), "ngram_hash");
                unexpected(
                    self,
                    "exclude_above",
                    spec.exclude_above.is_some(),
                    "ngram_hash",
                );
                let n = match spec.n {
                    Some(n) if (1..=MAX_NGRAM_N).contains(&n) => Some(n),
                    Some(n) => {
                        self.error(
                            doc,
                            format!("{at}.n"),
                            format!("{n} is out of range 1..={MAX_NGRAM_N}"),
                        );
                        None
                    }
                    None => {
                        self.error(
                            doc,
                            format!("{at}.n"),
                            "ngram_hash needs n (the n-gram length)",
                        );
                        None
                    }
                };
                let buckets = match spec.buckets {
                    Some(b) if (1..=MAX_NGRAM_BUCKETS).contains(&b) => Some(b),
                    Some(b) => {
                        self.error(
                            doc,
                            format!("{at}.buckets"),
                            format!("{b} is out of range 1..={MAX_NGRAM_BUCKETS}"),
                        );
                        None
                    }
                    None => {
                        self.error(
                            doc,
                            format!("{at}.buckets"),
                            "ngram_hash needs buckets (the output length)",
                        );
                        None
                    }
                };
                n.zip(buckets)
                    .map(|(n, buckets)| TransformOp::NgramHash { n, buckets })
            }
            "standardize" => {
                unexpected(self, "n", spec.n.is_some(), "standardize");
                unexpected(self, "buckets", spec.buckets.is_some(), "standardize");
                unexpected(
                    self,
                    "exclude_above",
                    spec.exclude_above.is_some(),
                    "standardize",
                );
                window(self)
                    .ok()
                    .map(|window| TransformOp::Standardize { window })
            }
            "zscore" => {
                unexpected(self, "n", spec.n.is_some(), "zscore");
                unexpected(self, "buckets", spec.buckets.is_some(), "zscore");
                let threshold = match spec.exclude_above {
                    Some(x) if !(x.is_finite() && x > 0.0) => {
                        self.error(
                            doc,
                            format!("{at}.exclude_above"),
                            format!("{x} must be a positive number"),
                        );
                        Err(())
                    }
                    other => Ok(other),
                };
                match (window(self), threshold) {
                    (Ok(window), Ok(exclude_above)) => Some(TransformOp::ZScore {
                        window,
                        exclude_above,
                    }),
                    _ => None,
                }
            }
            other => {
                self.error(
                    doc,
                    format!("{at}.op"),
                    format!("unknown transform op {other:?}; expected one of token_count, ngram_hash, standardize, zscore"),
                );
                None
            }
        };
        let op = op?;
        if let Some(input_type) = input_type {
            let fits = match op {
                TransformOp::TokenCount | TransformOp::NgramHash { .. } => {
                    input_type == ValueType::String
                }
                TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => {
                    input_type.is_numeric()
                }
            };
            if !fits {
                let wants = if matches!(op, TransformOp::TokenCount | TransformOp::NgramHash { .. })
                {
                    "a string"
                } else {
                    "a numeric"
                };
                self.error(
                    doc,
                    format!("{at}.input"),
                    format!(
                        "{} needs {wants} column; {:?} is {input_type}",
                        op.name(),
                        spec.input
                    ),
                );
                ok = false;
            }
        }
        ok.then(|| Transform {
            name: spec.name.clone(),
            input: spec.input.clone(),
            op,
        })
    }

    fn feature(
        &mut self,
        doc: &str,
        at: &str,
        spec: &FeatureSpec,
        source: &str,
        has_transforms: bool,
        columns: Option<&HashMap<&str, Option<ValueType>>>,
    ) -> Option<Feature> {
        let mut ok = self.name(doc, &format!("{at}.name"), &spec.name);
        let aggregation = Aggregation::from_name(&spec.aggregation);
        if aggregation.is_none() {
            let expected: Vec<_> = Aggregation::ALL.iter().map(|a| a.name()).collect();
            self.error(
                doc,
                format!("{at}.aggregation"),
                format!(
                    "unknown aggregation {:?}; expected one of {}",
                    spec.aggregation,
                    expected.join(", ")
                ),
            );
            ok = false;
        }
        let column_type = match &spec.column {
            None => {
                if aggregation.is_some_and(|a| a != Aggregation::Count) {
                    self.error(
                        doc,
                        format!("{at}.column"),
                        format!("{} needs a column", spec.aggregation),
                    );
                    ok = false;
                }
                None
            }
            Some(column) => match columns.map(|c| c.get(column.as_str())) {
                None => None,
                Some(None) => {
                    let also = if has_transforms {
                        " or a transform output"
                    } else {
                        ""
                    };
                    self.error(
                        doc,
                        format!("{at}.column"),
                        format!("{column:?} is not a column of source {source:?}{also}"),
                    );
                    ok = false;
                    None
                }
                Some(Some(t)) => {
                    ok &= t.is_some();
                    *t
                }
            },
        };
        if let (Some(aggregation), Some(column_type), Some(column)) =
            (aggregation, column_type, &spec.column)
        {
            if aggregation.needs_numeric() && !column_type.is_numeric() {
                self.error(
                    doc,
                    format!("{at}.column"),
                    format!("{aggregation} needs a numeric column; {column:?} is {column_type}"),
                );
                ok = false;
            }
            if aggregation == Aggregation::DistinctCount && column_type == ValueType::Float32List {
                self.error(
                    doc,
                    format!("{at}.column"),
                    format!("distinct_count cannot count {column_type} values"),
                );
                ok = false;
            }
        }
        let length = match &spec.window {
            None => None,
            Some(text) => match self.duration(doc, &format!("{at}.window"), text) {
                Some(d) => Some(d),
                None => {
                    ok = false;
                    None
                }
            },
        };
        let window = match (spec.kind.as_deref(), length) {
            (None | Some("sliding"), Some(d)) => Some(Window::Sliding(d)),
            (Some("tumbling"), Some(d)) => Some(Window::Tumbling(d)),
            (None, None) => Some(Window::Lifetime),
            (Some(kind @ ("sliding" | "tumbling")), None) => {
                if spec.window.is_none() {
                    self.error(
                        doc,
                        format!("{at}.kind"),
                        format!("a {kind} window needs a window length"),
                    );
                }
                None
            }
            (Some(other), _) => {
                self.error(
                    doc,
                    format!("{at}.kind"),
                    format!("unknown window kind {other:?}; expected sliding or tumbling (omit window for lifetime)"),
                );
                None
            }
        };
        let (aggregation, window) = (aggregation?, window?);
        ok.then(|| Feature {
            name: spec.name.clone(),
            column: spec.column.clone(),
            aggregation,
            window,
            value_type: aggregation.output_type(column_type),
            description: spec.description.clone(),
        })
    }

    fn services(
        &mut self,
        docs: &[Parsed],
        views: &BTreeMap<String, Decl<FeatureView>>,
    ) -> Vec<Decl<FeatureService>> {
        let mut seen: BTreeMap<String, Decl<()>> = BTreeMap::new();
        let mut out = Vec::new();
        for parsed in docs {
            for (i, spec) in parsed.doc.feature_services.iter().enumerate() {
                let path = format!("feature_services[{i}]");
                if !self.unique(&seen, "feature service", &parsed.name, &path, &spec.name) {
                    continue;
                }
                seen.insert(
                    spec.name.clone(),
                    Decl {
                        document: parsed.name.clone(),
                        path: path.clone(),
                        value: None,
                    },
                );
                let value = self.service(&parsed.name, &path, spec, views);
                out.push(Decl {
                    document: parsed.name.clone(),
                    path,
                    value,
                });
            }
        }
        out
    }

    fn service(
        &mut self,
        doc: &str,
        path: &str,
        spec: &FeatureServiceSpec,
        views: &BTreeMap<String, Decl<FeatureView>>,
    ) -> Option<FeatureService> {
        let mut ok = self.name(doc, &format!("{path}.name"), &spec.name);
        if spec.features.is_empty() {
            self.error(
                doc,
                format!("{path}.features"),
                "a feature service needs at least one feature",
            );
            ok = false;
        }
        let mut seen = HashSet::new();
        let mut features = Vec::new();
        for (i, text) in spec.features.iter().enumerate() {
            let at = format!("{path}.features[{i}]");
            let reference: FeatureRef = match text.parse() {
                Ok(r) => r,
                Err(e) => {
                    self.error(doc, at, e.to_string());
                    ok = false;
                    continue;
                }
            };
            if !seen.insert(reference.clone()) {
                self.error(doc, &at, format!("{text:?} is listed twice"));
                ok = false;
            }
            match views.get(&reference.view) {
                None => {
                    self.error(
                        doc,
                        &at,
                        format!("unknown feature view {:?}", reference.view),
                    );
                    ok = false;
                }
                // Pinned versions are checked against stored versions when planning.
                Some(decl) if reference.version.is_none() => {
                    if let Some(view) = &decl.value {
                        if view.feature(&reference.feature).is_none() {
                            self.error(
                                doc,
                                &at,
                                format!(
                                    "feature view {:?} has no feature {:?}",
                                    view.name, reference.feature
                                ),
                            );
                            ok = false;
                        }
                    }
                }
                Some(_) => {}
            }
            features.push(reference);
        }
        ok.then(|| FeatureService {
            name: spec.name.clone(),
            features,
            description: spec.description.clone(),
        })
    }
}

#[cfg(test)]
#[path = "validate_tests.rs"]
mod tests;

#[path = "validate_kafka.rs"]
mod kafka;
