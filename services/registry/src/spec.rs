//! The YAML definitions format, exactly as authors write it.
//!
//! Enumerations (types, ops, aggregations, window kinds) and durations stay strings here so
//! the validator can name the bad field and list what is allowed; unknown keys are rejected
//! by serde with their path. [`crate::validate`] turns these into `quiver-core` definitions,
//! and the `From` impls at the bottom turn definitions back into YAML for `describe`.

use quiver_core::duration::format_duration;
use quiver_core::{Entity, FeatureService, FeatureView, Source, TransformOp, Window};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One YAML document: a project and any of its objects.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DefinitionsDoc {
    /// The project every object of the document belongs to.
    pub project: String,
    /// Entities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entities: Vec<EntitySpec>,
    /// Sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<SourceSpec>,
    /// Feature views.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_views: Vec<FeatureViewSpec>,
    /// Feature services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub feature_services: Vec<FeatureServiceSpec>,
}

/// `entities[i]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EntitySpec {
    /// Name.
    pub name: String,
    /// Join keys.
    pub join_keys: Vec<ColumnSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A named, typed column (join keys and source schemas).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnSpec {
    /// Name.
    pub name: String,
    /// Type name, e.g. `int64`.
    #[serde(rename = "type")]
    pub value_type: String,
}

/// `sources[i]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSpec {
    /// Name.
    pub name: String,
    /// Entity name.
    pub entity: String,
    /// Event-time column.
    pub timestamp_field: String,
    /// Duration, e.g. `1h`; defaults to [`crate::validate::DEFAULT_ALLOWED_LATENESS`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_lateness: Option<String>,
    /// Columns.
    pub schema: Vec<ColumnSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The Kafka topic Quiver consumes for the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kafka: Option<KafkaSpec>,
    /// How long the source log keeps events, e.g. `90d`; forever when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_retention: Option<String>,
}

/// `sources[i].kafka`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSpec {
    /// `host:port[,host:port...]`.
    pub bootstrap_servers: String,
    /// The topic.
    pub topic: String,
    /// `json` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    /// `earliest` (the default) or `latest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The consumer group; `quiver.<project>.<source>` when empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub consumer_group: String,
    /// librdkafka properties; scalar values (numbers and booleans are written as text).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub properties: BTreeMap<String, serde_yaml::Value>,
}

/// `feature_views[i]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureViewSpec {
    /// Name.
    pub name: String,
    /// Entity name.
    pub entity: String,
    /// Source name.
    pub source: String,
    /// Duration; absent means values never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
    /// Row transforms, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transforms: Vec<TransformSpec>,
    /// Features.
    #[serde(default)]
    pub features: Vec<FeatureSpec>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `feature_views[i].transforms[j]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TransformSpec {
    /// Output column name.
    pub name: String,
    /// `token_count`, `ngram_hash`, `standardize` or `zscore`.
    pub op: String,
    /// Input column.
    pub input: String,
    /// ngram_hash: n-gram length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// ngram_hash: bucket count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buckets: Option<u32>,
    /// standardize/zscore: statistics window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// zscore: exclusion threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_above: Option<f64>,
}

/// `feature_views[i].features[j]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSpec {
    /// Name.
    pub name: String,
    /// Column aggregated (optional for `count`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column: Option<String>,
    /// Aggregation name.
    pub aggregation: String,
    /// Window duration; absent means lifetime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// `sliding` (default) or `tumbling`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// `feature_services[i]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureServiceSpec {
    /// Name.
    pub name: String,
    /// Feature refs, `view:feature` or `view@N:feature`.
    pub features: Vec<String>,
    /// Free text.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

impl From<&Entity> for EntitySpec {
    fn from(e: &Entity) -> Self {
        Self {
            name: e.name.clone(),
            join_keys: e
                .join_keys
                .iter()
                .map(|k| ColumnSpec {
                    name: k.name.clone(),
                    value_type: k.value_type.to_string(),
                })
                .collect(),
            description: e.description.clone(),
        }
    }
}

impl From<&Source> for SourceSpec {
    fn from(s: &Source) -> Self {
        Self {
            name: s.name.clone(),
            entity: s.entity.clone(),
            timestamp_field: s.timestamp_field.clone(),
            allowed_lateness: Some(format_duration(s.allowed_lateness)),
            log_retention: s.log_retention.map(format_duration),
            schema: s
                .schema
                .iter()
                .map(|c| ColumnSpec {
                    name: c.name.clone(),
                    value_type: c.value_type.to_string(),
                })
                .collect(),
            description: s.description.clone(),
            kafka: s.kafka.as_ref().map(|k| KafkaSpec {
                bootstrap_servers: k.bootstrap_servers.clone(),
                topic: k.topic.clone(),
                format: Some(k.format.name().to_string()),
                start: Some(k.start.name().to_string()),
                consumer_group: k.consumer_group.clone(),
                properties: k
                    .properties
                    .iter()
                    .map(|(k, v)| (k.clone(), serde_yaml::Value::String(v.clone())))
                    .collect(),
            }),
        }
    }
}

impl From<&FeatureView> for FeatureViewSpec {
    fn from(v: &FeatureView) -> Self {
        Self {
            name: v.name.clone(),
            entity: v.entity.clone(),
            source: v.source.clone(),
            ttl: v.ttl.map(format_duration),
            transforms: v
                .transforms
                .iter()
                .map(|t| {
                    let mut spec = TransformSpec {
                        name: t.name.clone(),
                        op: t.op.name().to_string(),
                        input: t.input.clone(),
                        n: None,
                        buckets: None,
                        window: None,
                        exclude_above: None,
                    };
                    match &t.op {
                        TransformOp::TokenCount => {}
                        TransformOp::NgramHash { n, buckets } => {
                            spec.n = Some(*n);
                            spec.buckets = Some(*buckets);
                        }
                        TransformOp::Standardize { window } => {
                            spec.window = window.map(format_duration);
                        }
                        TransformOp::ZScore {
                            window,
                            exclude_above,
                        } => {
                            spec.window = window.map(format_duration);
                            spec.exclude_above = *exclude_above;
                        }
                    }
                    spec
                })
                .collect(),
            features: v
                .features
                .iter()
                .map(|f| FeatureSpec {
                    name: f.name.clone(),
                    column: f.column.clone(),
                    aggregation: f.aggregation.name().to_string(),
                    window: f.window.length().map(format_duration),
                    kind: match f.window {
                        Window::Tumbling(_) => Some("tumbling".to_string()),
                        Window::Sliding(_) | Window::Lifetime => None,
                    },
                    description: f.description.clone(),
                })
                .collect(),
            description: v.description.clone(),
        }
    }
}

impl From<&FeatureService> for FeatureServiceSpec {
    fn from(s: &FeatureService) -> Self {
        Self {
            name: s.name.clone(),
            features: s.features.iter().map(ToString::to_string).collect(),
            description: s.description.clone(),
        }
    }
}
