//! `FeatureView` (with its transforms and features) <-> `quiver.registry.v1.FeatureView`.

use quiver_core::tiling::AggregateSpec;
use quiver_core::{Aggregation, Feature, FeatureView, Transform, TransformOp, Window};

use super::value_type::value_type_from_pb;
use super::{duration_from_pb, duration_to_pb, ConversionError};
use crate::{registry, types};

impl From<&FeatureView> for registry::FeatureView {
    fn from(v: &FeatureView) -> Self {
        Self {
            name: v.name.clone(),
            entity: v.entity.clone(),
            source: v.source.clone(),
            ttl: v.ttl.map(duration_to_pb),
            transforms: v.transforms.iter().map(transform_to_pb).collect(),
            features: v.features.iter().map(feature_to_pb).collect(),
            description: v.description.clone(),
        }
    }
}

impl TryFrom<&registry::FeatureView> for FeatureView {
    type Error = ConversionError;

    fn try_from(v: &registry::FeatureView) -> Result<Self, Self::Error> {
        let transforms = v
            .transforms
            .iter()
            .enumerate()
            .map(|(i, t)| transform_from_pb(t).map_err(|e| e.within(&format!("transforms[{i}]"))))
            .collect::<Result<_, _>>()?;
        let features = v
            .features
            .iter()
            .enumerate()
            .map(|(i, f)| feature_from_pb(f).map_err(|e| e.within(&format!("features[{i}]"))))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: v.name.clone(),
            entity: v.entity.clone(),
            source: v.source.clone(),
            ttl: v
                .ttl
                .as_ref()
                .map(|d| duration_from_pb(d, "ttl"))
                .transpose()?,
            transforms,
            features,
            description: v.description.clone(),
        })
    }
}

/// A transform as the registry carries it.
pub fn transform_to_pb(t: &Transform) -> registry::Transform {
    let mut out = registry::Transform {
        name: t.name.clone(),
        input: t.input.clone(),
        ..Default::default()
    };
    let op = match &t.op {
        TransformOp::TokenCount => registry::TransformOp::TokenCount,
        TransformOp::NgramHash { n, buckets } => {
            out.n = *n;
            out.buckets = *buckets;
            registry::TransformOp::NgramHash
        }
        TransformOp::Standardize { window } => {
            out.window = window.map(duration_to_pb);
            registry::TransformOp::Standardize
        }
        TransformOp::ZScore {
            window,
            exclude_above,
        } => {
            out.window = window.map(duration_to_pb);
            out.exclude_above = *exclude_above;
            registry::TransformOp::Zscore
        }
    };
    out.op = op as i32;
    out
}

/// A transform from the registry's form.
pub fn transform_from_pb(t: &registry::Transform) -> Result<Transform, ConversionError> {
    let window = t
        .window
        .as_ref()
        .map(|d| duration_from_pb(d, "window"))
        .transpose()?;
    let op = match registry::TransformOp::try_from(t.op) {
        Ok(registry::TransformOp::TokenCount) => TransformOp::TokenCount,
        Ok(registry::TransformOp::NgramHash) => TransformOp::NgramHash {
            n: t.n,
            buckets: t.buckets,
        },
        Ok(registry::TransformOp::Standardize) => TransformOp::Standardize { window },
        Ok(registry::TransformOp::Zscore) => TransformOp::ZScore {
            window,
            exclude_above: t.exclude_above,
        },
        Ok(registry::TransformOp::Unspecified) | Err(_) => {
            return Err(ConversionError::new(
                "op",
                format!("invalid transform op {}", t.op),
            ))
        }
    };
    Ok(Transform {
        name: t.name.clone(),
        input: t.input.clone(),
        op,
    })
}

fn aggregation_to_pb(a: Aggregation) -> registry::Aggregation {
    match a {
        Aggregation::Count => registry::Aggregation::Count,
        Aggregation::Sum => registry::Aggregation::Sum,
        Aggregation::Mean => registry::Aggregation::Mean,
        Aggregation::Min => registry::Aggregation::Min,
        Aggregation::Max => registry::Aggregation::Max,
        Aggregation::Stddev => registry::Aggregation::Stddev,
        Aggregation::Last => registry::Aggregation::Last,
        Aggregation::First => registry::Aggregation::First,
        Aggregation::DistinctCount => registry::Aggregation::DistinctCount,
    }
}

fn aggregation_from_pb(raw: i32) -> Result<Aggregation, ConversionError> {
    Ok(match registry::Aggregation::try_from(raw) {
        Ok(registry::Aggregation::Count) => Aggregation::Count,
        Ok(registry::Aggregation::Sum) => Aggregation::Sum,
        Ok(registry::Aggregation::Mean) => Aggregation::Mean,
        Ok(registry::Aggregation::Min) => Aggregation::Min,
        Ok(registry::Aggregation::Max) => Aggregation::Max,
        Ok(registry::Aggregation::Stddev) => Aggregation::Stddev,
        Ok(registry::Aggregation::Last) => Aggregation::Last,
        Ok(registry::Aggregation::First) => Aggregation::First,
        Ok(registry::Aggregation::DistinctCount) => Aggregation::DistinctCount,
        Ok(registry::Aggregation::Unspecified) | Err(_) => {
            return Err(ConversionError::new(
                "aggregation",
                format!("invalid aggregation {raw}"),
            ))
        }
    })
}

fn feature_to_pb(f: &Feature) -> registry::Feature {
    let (kind, window) = match f.window {
        Window::Lifetime => (registry::WindowKind::Lifetime, None),
        Window::Sliding(d) => (registry::WindowKind::Sliding, Some(duration_to_pb(d))),
        Window::Tumbling(d) => (registry::WindowKind::Tumbling, Some(duration_to_pb(d))),
    };
    registry::Feature {
        name: f.name.clone(),
        column: f.column.clone().unwrap_or_default(),
        aggregation: aggregation_to_pb(f.aggregation) as i32,
        window,
        kind: kind as i32,
        value_type: types::ValueType::from(f.value_type) as i32,
        description: f.description.clone(),
    }
}

fn feature_from_pb(f: &registry::Feature) -> Result<Feature, ConversionError> {
    let length = || {
        f.window
            .as_ref()
            .ok_or_else(|| ConversionError::new("window", "a windowed feature needs a window"))
            .and_then(|d| duration_from_pb(d, "window"))
    };
    let window = match registry::WindowKind::try_from(f.kind) {
        Ok(registry::WindowKind::Lifetime) => Window::Lifetime,
        Ok(registry::WindowKind::Sliding) => Window::Sliding(length()?),
        Ok(registry::WindowKind::Tumbling) => Window::Tumbling(length()?),
        Ok(registry::WindowKind::Unspecified) | Err(_) => {
            return Err(ConversionError::new(
                "kind",
                format!("invalid window kind {}", f.kind),
            ))
        }
    };
    Ok(Feature {
        name: f.name.clone(),
        column: (!f.column.is_empty()).then(|| f.column.clone()),
        aggregation: aggregation_from_pb(f.aggregation)?,
        window,
        value_type: value_type_from_pb(f.value_type, "value_type")?,
        description: f.description.clone(),
    })
}

/// The wire form of an aggregate the store keeps (a feature, or transform statistics named
/// `name`), as carried in `quiver.online.v1.ViewEvents`.
pub fn aggregate_spec_to_pb(spec: &AggregateSpec, name: &str) -> registry::Feature {
    feature_to_pb(&Feature {
        name: name.to_string(),
        column: spec.column.clone(),
        aggregation: spec.aggregation,
        window: spec.window,
        value_type: spec.value_type,
        description: String::new(),
    })
}

/// An aggregate spec from its wire form.
pub fn aggregate_spec_from_pb(f: &registry::Feature) -> Result<AggregateSpec, ConversionError> {
    feature_from_pb(f).map(|f| AggregateSpec::of_feature(&f))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quiver_core::ValueType;

    use super::*;

    #[test]
    fn a_full_view_round_trips() {
        let view = FeatureView {
            name: "user_txn".into(),
            entity: "user".into(),
            source: "transactions".into(),
            ttl: Some(Duration::from_secs(86_400)),
            transforms: vec![
                Transform {
                    name: "t".into(),
                    input: "note".into(),
                    op: TransformOp::TokenCount,
                },
                Transform {
                    name: "h".into(),
                    input: "note".into(),
                    op: TransformOp::NgramHash { n: 3, buckets: 64 },
                },
                Transform {
                    name: "z".into(),
                    input: "amount".into(),
                    op: TransformOp::ZScore {
                        window: Some(Duration::from_secs(60)),
                        exclude_above: Some(4.0),
                    },
                },
                Transform {
                    name: "s".into(),
                    input: "amount".into(),
                    op: TransformOp::Standardize { window: None },
                },
            ],
            features: Aggregation::ALL
                .into_iter()
                .zip(
                    [
                        Window::Lifetime,
                        Window::Sliding(Duration::from_secs(60)),
                        Window::Tumbling(Duration::from_secs(3_600)),
                    ]
                    .into_iter()
                    .cycle(),
                )
                .map(|(aggregation, window)| Feature {
                    name: aggregation.name().into(),
                    column: Some("amount".into()),
                    aggregation,
                    window,
                    value_type: ValueType::Float64,
                    description: String::new(),
                })
                .collect(),
            description: "d".into(),
        };
        let wire = registry::FeatureView::from(&view);
        assert_eq!(FeatureView::try_from(&wire), Ok(view));
    }
}
