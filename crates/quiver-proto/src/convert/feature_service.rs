//! `FeatureService` <-> `quiver.registry.v1.FeatureService`.

use quiver_core::FeatureService;

use crate::{registry, types};

impl From<&FeatureService> for registry::FeatureService {
    fn from(s: &FeatureService) -> Self {
        Self {
            name: s.name.clone(),
            features: s.features.iter().map(types::FeatureRef::from).collect(),
            description: s.description.clone(),
        }
    }
}

impl From<&registry::FeatureService> for FeatureService {
    fn from(s: &registry::FeatureService) -> Self {
        Self {
            name: s.name.clone(),
            features: s.features.iter().map(Into::into).collect(),
            description: s.description.clone(),
        }
    }
}
