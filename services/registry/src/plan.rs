//! Plans an apply: compares the validated desired state of a project with its stored heads and
//! decides, per object, create / change (a new version) / unchanged / delete.

use std::collections::HashMap;
use std::time::SystemTime;

use quiver_proto::registry::{
    Dependency, ObjectMeta, PlanAction, PlanItem, RegistryObject, WatchEvent,
};

use crate::definition::{Definition, Kind};
use crate::diff::diff;
use crate::error::RegistryError;
use crate::store::Store;
use crate::validate::{FieldError, Validated};

/// The outcome of planning: what to show, and what to write.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The project.
    pub project: String,
    /// The revision the plan was made against.
    pub base_revision: u64,
    /// One item per object, kind then name order.
    pub items: Vec<PlanItem>,
    /// The records to commit as revision `base_revision + 1`; empty when nothing changes.
    pub change: WatchEvent,
}

impl Plan {
    /// Whether applying changes anything.
    pub fn is_noop(&self) -> bool {
        self.change.objects.is_empty()
    }
}

/// Plans applying `desired` on top of what `store` holds at its current revision.
pub fn plan(store: &Store, desired: &Validated) -> Result<Plan, RegistryError> {
    let base_revision = store.revision()?;
    let revision = base_revision + 1;
    let now = prost_types::Timestamp::from(SystemTime::now());
    let project = desired.project.clone();
    let mut heads: HashMap<(Kind, String), RegistryObject> = HashMap::new();
    for head in store.heads(&project)? {
        let kind = head.meta.as_ref().and_then(|m| Kind::from_pb(m.kind));
        if let (Some(kind), Some(meta)) = (kind, &head.meta) {
            heads.insert((kind, meta.name.clone()), head.clone());
        }
    }

    let mut items = Vec::new();
    let mut writes = Vec::new();
    // The version each desired object has after the apply; dependencies look theirs up here.
    let mut versions: HashMap<(Kind, String), u32> = HashMap::new();
    for located in &desired.definitions {
        let definition = &located.definition;
        let kind = definition.kind();
        let name = definition.name().to_string();
        let dependencies: Vec<Dependency> = definition
            .dependencies()
            .into_iter()
            .map(|(k, n)| Dependency {
                kind: k.to_pb() as i32,
                name: n.to_string(),
                version: versions.get(&(k, n.to_string())).copied().unwrap_or(0),
            })
            .collect();
        let head = heads.get(&(kind, name.clone()));
        let head_meta = head.and_then(|h| h.meta.as_ref());
        let from_version = head_meta.map(|m| m.version).unwrap_or(0);
        let live = head_meta.is_some_and(|m| !m.deleted);

        let (action, changes) = match head {
            Some(head) if live => {
                let stored = stored_definition(head)?;
                let mut changes = diff(&stored.to_yaml_value(), &definition.to_yaml_value());
                let old_deps = head_meta
                    .map(|m| m.dependencies.as_slice())
                    .unwrap_or_default();
                for dep in &dependencies {
                    let before = old_deps
                        .iter()
                        .find(|d| d.kind == dep.kind && d.name == dep.name);
                    if before.map(|d| d.version) != Some(dep.version) {
                        let kind = Kind::from_pb(dep.kind).map(Kind::name).unwrap_or("object");
                        changes.push(format!("{kind} {} is now v{}", dep.name, dep.version));
                    }
                }
                if changes.is_empty() && stored == *definition {
                    (PlanAction::Unchanged, changes)
                } else {
                    (PlanAction::Change, changes)
                }
            }
            _ => (PlanAction::Create, vec![]),
        };
        let to_version = if action == PlanAction::Unchanged {
            from_version
        } else {
            from_version + 1
        };
        versions.insert((kind, name.clone()), to_version);
        if action != PlanAction::Unchanged {
            writes.push(RegistryObject {
                meta: Some(ObjectMeta {
                    project: project.clone(),
                    kind: kind.to_pb() as i32,
                    name: name.clone(),
                    version: to_version,
                    revision,
                    created_at: Some(now),
                    deleted: false,
                    dependencies,
                }),
                spec: Some(definition.to_pb()),
            });
        }
        items.push(PlanItem {
            kind: kind.to_pb() as i32,
            name,
            action: action as i32,
            from_version,
            to_version,
            changes,
        });
    }

    for ((kind, name), head) in &heads {
        let live = head.meta.as_ref().is_some_and(|m| !m.deleted);
        if !live || versions.contains_key(&(*kind, name.clone())) {
            continue;
        }
        let mut record = head.clone();
        let version = record.meta.as_ref().map(|m| m.version).unwrap_or(0);
        if let Some(meta) = record.meta.as_mut() {
            meta.deleted = true;
            meta.revision = revision;
            meta.created_at = Some(now);
        }
        writes.push(record);
        items.push(PlanItem {
            kind: kind.to_pb() as i32,
            name: name.clone(),
            action: PlanAction::Delete as i32,
            from_version: version,
            to_version: version,
            changes: vec![],
        });
    }

    check_pinned_refs(store, desired, &versions)?;
    items.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    Ok(Plan {
        project,
        base_revision,
        items,
        change: WatchEvent {
            revision,
            snapshot: false,
            objects: writes,
        },
    })
}

fn stored_definition(head: &RegistryObject) -> Result<Definition, RegistryError> {
    let name = head
        .meta
        .as_ref()
        .map(|m| m.name.clone())
        .unwrap_or_default();
    let spec = head.spec.as_ref().ok_or_else(|| RegistryError::Corrupt {
        key: name.clone(),
        reason: "stored object has no spec".into(),
    })?;
    Definition::from_pb(spec).map_err(|e| RegistryError::Corrupt {
        key: name,
        reason: e.to_string(),
    })
}

/// Pinned refs (`view@N:feature`) must name a version that exists (or is being created now)
/// and that version must have the feature.
fn check_pinned_refs(
    store: &Store,
    desired: &Validated,
    versions: &HashMap<(Kind, String), u32>,
) -> Result<(), RegistryError> {
    let mut errors = Vec::new();
    for located in &desired.definitions {
        let Definition::FeatureService(service) = &located.definition else {
            continue;
        };
        for (i, reference) in service.features.iter().enumerate() {
            let Some(pinned) = reference.version else {
                continue;
            };
            let error = |message: String| FieldError {
                document: located.document.clone(),
                path: format!("{}.features[{i}]", located.path),
                message,
            };
            let latest = versions
                .get(&(Kind::FeatureView, reference.view.clone()))
                .copied()
                .unwrap_or(0);
            let view = if pinned == latest {
                desired.view(&reference.view).cloned()
            } else {
                match store.version(&desired.project, Kind::FeatureView, &reference.view, pinned)? {
                    Some(object) => match stored_definition(&object)? {
                        Definition::FeatureView(v) => Some(v),
                        _ => None,
                    },
                    None => None,
                }
            };
            match view {
                None => errors.push(error(format!(
                    "feature view {:?} has no version {pinned} (latest is {latest})",
                    reference.view
                ))),
                Some(v) if v.feature(&reference.feature).is_none() => errors.push(error(format!(
                    "version {pinned} of feature view {:?} has no feature {:?}",
                    reference.view, reference.feature
                ))),
                Some(_) => {}
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(RegistryError::Invalid(errors))
    }
}
