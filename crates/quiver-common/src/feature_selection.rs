//! Resolving what a reader asked for (a feature service, or `view:feature` refs) to view
//! versions and feature positions, with errors naming the field and position. Serving and
//! snapshots resolve the same way, so a ref means the same thing on both paths.

use std::sync::Arc;

use quiver_core::{FeatureRef, FeatureView};

use crate::registry_cache::{Catalog, RegistryCache};

/// What a request names.
#[derive(Debug, Clone, Copy)]
pub enum FeatureSelection<'a> {
    /// A feature service by name.
    Service(&'a str),
    /// Explicit refs (`view:feature` or `view@N:feature`).
    Refs(&'a [String]),
}

/// One requested feature, resolved.
#[derive(Debug, Clone)]
pub struct ResolvedFeature {
    /// The ref as requested (a service's refs as declared).
    pub reference: FeatureRef,
    /// The view version read (the latest unless the ref pins one).
    pub version: u32,
    /// Its definition.
    pub view: Arc<FeatureView>,
    /// The feature's position among the view's features.
    pub feature: usize,
}

/// Resolves `selection` in `project`; errors start with the field named (`feature_service`,
/// or `<refs_field>[i]`).
pub async fn resolve_features(
    registry: &RegistryCache,
    catalog: &Catalog,
    project: &str,
    selection: FeatureSelection<'_>,
    refs_field: &str,
) -> Result<Vec<ResolvedFeature>, String> {
    let (refs, field): (Vec<FeatureRef>, &str) = match selection {
        FeatureSelection::Service(name) => {
            let service = catalog
                .service(project, name)
                .ok_or_else(|| format!("feature_service: unknown feature service {name:?}"))?;
            (service.features.clone(), "feature_service")
        }
        FeatureSelection::Refs(texts) => {
            let refs = texts
                .iter()
                .enumerate()
                .map(|(i, text)| text.parse().map_err(|e| format!("{refs_field}[{i}]: {e}")))
                .collect::<Result<Vec<FeatureRef>, _>>()?;
            (refs, refs_field)
        }
    };
    if refs.is_empty() {
        return Err(format!("{field}: no features requested"));
    }
    let mut resolved = Vec::with_capacity(refs.len());
    for (i, reference) in refs.into_iter().enumerate() {
        let (version, view) = match reference.version {
            None => {
                let latest = catalog.view(project, &reference.view).ok_or_else(|| {
                    format!("{field}[{i}]: unknown feature view {:?}", reference.view)
                })?;
                (latest.version, latest.view.clone())
            }
            Some(v) => {
                let view = registry
                    .fetch_view_version(project, &reference.view, v)
                    .await
                    .ok_or_else(|| {
                        format!(
                            "{field}[{i}]: feature view {:?} has no version {v}",
                            reference.view
                        )
                    })?;
                (v, view)
            }
        };
        let feature = view
            .features
            .iter()
            .position(|f| f.name == reference.feature)
            .ok_or_else(|| {
                format!(
                    "{field}[{i}]: feature view {:?} has no feature {:?}",
                    reference.view, reference.feature
                )
            })?;
        resolved.push(ResolvedFeature {
            reference,
            version,
            view,
            feature,
        });
    }
    Ok(resolved)
}
