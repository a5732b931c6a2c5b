//! Validated definitions: what the registry stores and every service reads.
//!
//! These are the typed, checked forms of the YAML a feature author writes; the registry's
//! validator is the only way to build them from user input.

use std::fmt;
use std::time::Duration;

use crate::{FeatureRef, ValueType};

/// A thing features describe, identified by its join keys.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Unique name within the project.
    pub name: String,
    /// Join keys, in order.
    pub join_keys: Vec<JoinKey>,
    /// Free text.
    pub description: String,
}

/// One join key of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinKey {
    /// Column name.
    pub name: String,
    /// Its type (a key type).
    pub value_type: ValueType,
}

/// A stream of events with a schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    /// Unique name within the project.
    pub name: String,
    /// The entity each event belongs to.
    pub entity: String,
    /// The timestamp column holding event time.
    pub timestamp_field: String,
    /// How far behind the watermark an event may be and still be admitted.
    pub allowed_lateness: Duration,
    /// The event columns.
    pub schema: Vec<Column>,
    /// Free text.
    pub description: String,
    /// The Kafka topic Quiver consumes for this source, if any.
    pub kafka: Option<crate::KafkaSource>,
    /// How long the source log keeps events (by event date); `None`: forever.
    pub log_retention: Option<Duration>,
}

impl Source {
    /// The column named `name`, if the schema has it.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.schema.iter().find(|c| c.name == name)
    }
}

/// One column of a source schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Column type.
    pub value_type: ValueType,
}

/// Features of one entity computed from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureView {
    /// Unique name within the project.
    pub name: String,
    /// The entity described.
    pub entity: String,
    /// The source read.
    pub source: String,
    /// Values older than this at read time are served as outside TTL; `None` never expires.
    pub ttl: Option<Duration>,
    /// Row transforms, in order.
    pub transforms: Vec<Transform>,
    /// The features.
    pub features: Vec<Feature>,
    /// Free text.
    pub description: String,
}

impl FeatureView {
    /// The feature named `name`, if the view has it.
    pub fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.iter().find(|f| f.name == name)
    }

    /// The transform producing column `name`, if any.
    pub fn transform(&self, name: &str) -> Option<&Transform> {
        self.transforms.iter().find(|t| t.name == name)
    }

    /// Whether the rows this view aggregates follow from its source's log alone: its
    /// transforms are stateless, or running statistics over the whole log. A statistic over a
    /// `window` is read online as of the moment a batch was computed, which the log does not
    /// record, so such a view's rows must be kept as it aggregated them.
    pub fn rows_follow_from_source_log(&self) -> bool {
        self.transforms.iter().all(|t| match t.op {
            TransformOp::TokenCount | TransformOp::NgramHash { .. } => true,
            TransformOp::Standardize { window } | TransformOp::ZScore { window, .. } => {
                window.is_none()
            }
        })
    }
}

/// A row transform producing column `name` from column `input`.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// The output column.
    pub name: String,
    /// The input column (source column or an earlier transform's output).
    pub input: String,
    /// The operation and its parameters.
    pub op: TransformOp,
}

/// A transform operation with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub enum TransformOp {
    /// Number of whitespace-separated tokens of a string.
    TokenCount,
    /// Hashed bag of character `n`-grams, `buckets` long.
    NgramHash {
        /// The n-gram length.
        n: u32,
        /// The number of hash buckets (the output length).
        buckets: u32,
    },
    /// `(x - mean) / stddev` with running statistics over `window` (`None`: lifetime).
    Standardize {
        /// The statistics window.
        window: Option<Duration>,
    },
    /// `|x - mean| / stddev` over `window`; rows above `exclude_above` are excluded.
    ZScore {
        /// The statistics window.
        window: Option<Duration>,
        /// The exclusion threshold, if any.
        exclude_above: Option<f64>,
    },
}

impl TransformOp {
    /// The name used in YAML.
    pub fn name(&self) -> &'static str {
        match self {
            Self::TokenCount => "token_count",
            Self::NgramHash { .. } => "ngram_hash",
            Self::Standardize { .. } => "standardize",
            Self::ZScore { .. } => "zscore",
        }
    }

    /// The type of the column it produces.
    pub fn output_type(&self) -> ValueType {
        match self {
            Self::TokenCount => ValueType::Int64,
            Self::NgramHash { .. } => ValueType::Float32List,
            Self::Standardize { .. } | Self::ZScore { .. } => ValueType::Float64,
        }
    }
}

/// One feature: an aggregation of a column over a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Feature {
    /// Unique name within the view.
    pub name: String,
    /// The column aggregated; `None` only for `count` of rows.
    pub column: Option<String>,
    /// The aggregation.
    pub aggregation: Aggregation,
    /// The window.
    pub window: Window,
    /// The type of the served value.
    pub value_type: ValueType,
    /// Free text.
    pub description: String,
}

/// The aggregations a feature can apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Aggregation {
    /// Number of rows, or of non-null values of the column.
    Count,
    /// Sum.
    Sum,
    /// Arithmetic mean.
    Mean,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Population standard deviation.
    Stddev,
    /// Value of the latest event by event time.
    Last,
    /// Value of the earliest event by event time.
    First,
    /// Approximate distinct count.
    DistinctCount,
}

impl Aggregation {
    /// Every aggregation.
    pub const ALL: [Aggregation; 9] = [
        Self::Count,
        Self::Sum,
        Self::Mean,
        Self::Min,
        Self::Max,
        Self::Stddev,
        Self::Last,
        Self::First,
        Self::DistinctCount,
    ];

    /// The name used in YAML.
    pub fn name(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Sum => "sum",
            Self::Mean => "mean",
            Self::Min => "min",
            Self::Max => "max",
            Self::Stddev => "stddev",
            Self::Last => "last",
            Self::First => "first",
            Self::DistinctCount => "distinct_count",
        }
    }

    /// Parses a YAML name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }

    /// Whether it needs a numeric column.
    pub fn needs_numeric(self) -> bool {
        matches!(
            self,
            Self::Sum | Self::Mean | Self::Min | Self::Max | Self::Stddev
        )
    }

    /// The served type for a column of type `input` (`None`: counting rows).
    pub fn output_type(self, input: Option<ValueType>) -> ValueType {
        match self {
            Self::Count | Self::DistinctCount => ValueType::Int64,
            Self::Mean | Self::Stddev => ValueType::Float64,
            Self::Sum => match input {
                Some(ValueType::Int64) => ValueType::Int64,
                _ => ValueType::Float64,
            },
            Self::Min | Self::Max | Self::Last | Self::First => input.unwrap_or(ValueType::Int64),
        }
    }
}

impl fmt::Display for Aggregation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A feature's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Everything since the first event.
    Lifetime,
    /// Continuous sliding window ending at read time: `(t - length, t]`.
    Sliding(Duration),
    /// Aligned non-overlapping windows; reads see the last complete one.
    Tumbling(Duration),
}

impl Window {
    /// The window length, if it has one.
    pub fn length(self) -> Option<Duration> {
        match self {
            Self::Lifetime => None,
            Self::Sliding(d) | Self::Tumbling(d) => Some(d),
        }
    }
}

/// A named list of features read together.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureService {
    /// Unique name within the project.
    pub name: String,
    /// The features, in serving order.
    pub features: Vec<FeatureRef>,
    /// Free text.
    pub description: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aggregation_names_round_trip() {
        for a in Aggregation::ALL {
            assert_eq!(Aggregation::from_name(a.name()), Some(a));
        }
        assert_eq!(Aggregation::from_name("median"), None);
    }

    #[test]
    fn output_types_follow_the_column() {
        assert_eq!(
            Aggregation::Sum.output_type(Some(ValueType::Int64)),
            ValueType::Int64
        );
        assert_eq!(
            Aggregation::Sum.output_type(Some(ValueType::Float32)),
            ValueType::Float64
        );
        assert_eq!(
            Aggregation::Last.output_type(Some(ValueType::String)),
            ValueType::String
        );
        assert_eq!(Aggregation::Count.output_type(None), ValueType::Int64);
    }
}
