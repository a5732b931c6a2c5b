//! `FeatureRef` <-> `quiver.types.v1.FeatureRef`.

use quiver_core::FeatureRef;

use crate::types;

impl From<&FeatureRef> for types::FeatureRef {
    fn from(r: &FeatureRef) -> Self {
        Self {
            view: r.view.clone(),
            version: r.version.unwrap_or(0),
            feature: r.feature.clone(),
        }
    }
}

impl From<&types::FeatureRef> for FeatureRef {
    fn from(r: &types::FeatureRef) -> Self {
        Self {
            view: r.view.clone(),
            version: (r.version != 0).then_some(r.version),
            feature: r.feature.clone(),
        }
    }
}
