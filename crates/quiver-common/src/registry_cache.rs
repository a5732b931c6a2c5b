//! A live, read-mostly cache of the registry's definitions, fed by its `Watch` stream.
//!
//! Readers take an immutable [`Catalog`] snapshot (an `Arc`), so a request never waits on a
//! refresh; each registry change builds a new catalog and swaps it in. If the stream breaks,
//! the cache reconnects and resumes from the last revision it saw.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use quiver_core::{Entity, FeatureService, FeatureView, Source};
use quiver_proto::registry::registry_object::Spec;
use quiver_proto::registry::registry_service_client::RegistryServiceClient;
use quiver_proto::registry::{
    DescribeRequest, ObjectKind, RegistryObject, WatchEvent, WatchRequest,
};
use tokio::sync::watch;

use crate::client_channel::{authorized, endpoint};
use crate::readiness::Readiness;
use crate::Shutdown;

/// A feature view version.
#[derive(Debug, Clone)]
pub struct ViewVersion {
    /// The version number.
    pub version: u32,
    /// The definition.
    pub view: Arc<FeatureView>,
}

/// An immutable picture of the registry at one revision.
#[derive(Debug, Default, Clone)]
pub struct Catalog {
    /// The registry revision.
    pub revision: u64,
    projects: BTreeSet<String>,
    entities: HashMap<(String, String), Arc<Entity>>,
    sources: HashMap<(String, String), Arc<Source>>,
    views: HashMap<(String, String), ViewVersion>,
    view_versions: HashMap<(String, String, u32), Arc<FeatureView>>,
    /// Views this cache saw deleted (a deletion record arrived while it watched).
    deleted_views: BTreeSet<(String, String)>,
    services: HashMap<(String, String), Arc<FeatureService>>,
}

impl Catalog {
    /// The project a request means: the one named, or the only one there is.
    pub fn project(&self, requested: &str) -> Result<String, String> {
        if !requested.is_empty() {
            return if self.projects.contains(requested) {
                Ok(requested.to_string())
            } else {
                Err(format!("unknown project {requested:?}"))
            };
        }
        let mut projects = self.projects.iter();
        match (projects.next(), projects.next()) {
            (Some(only), None) => Ok(only.clone()),
            (None, _) => Err("the registry has no definitions yet".into()),
            // Not named: a token of one project must not learn the others' names
            // (`ListProjects` lists what a token covers).
            (Some(_), Some(_)) => Err(format!(
                "project is required: the registry holds {} projects; name the one you mean",
                self.projects.len()
            )),
        }
    }

    /// An entity.
    pub fn entity(&self, project: &str, name: &str) -> Option<&Arc<Entity>> {
        self.entities.get(&(project.to_string(), name.to_string()))
    }

    /// A source.
    pub fn source(&self, project: &str, name: &str) -> Option<&Arc<Source>> {
        self.sources.get(&(project.to_string(), name.to_string()))
    }

    /// Every live source, as (project, name).
    pub fn sources(&self) -> impl Iterator<Item = (&str, &str)> {
        self.sources.keys().map(|(p, n)| (p.as_str(), n.as_str()))
    }

    /// The latest live versions of the views fed by a source, by name.
    pub fn views_of_source(&self, project: &str, source: &str) -> Vec<(&str, &ViewVersion)> {
        let mut views: Vec<(&str, &ViewVersion)> = self
            .views
            .iter()
            .filter(|((p, _), v)| p == project && v.view.source == source)
            .map(|((_, name), v)| (name.as_str(), v))
            .collect();
        views.sort_by_key(|(name, _)| *name);
        views
    }

    /// Every live view's latest version, as (project, view, version).
    pub fn latest_views(&self) -> impl Iterator<Item = (&str, &str, &ViewVersion)> {
        self.views
            .iter()
            .map(|((p, n), v)| (p.as_str(), n.as_str(), v))
    }

    /// Whether the registry deleted the view while this cache watched (a view merely missing,
    /// e.g. from a registry that lost its data, is not deleted).
    pub fn view_deleted(&self, project: &str, name: &str) -> bool {
        self.deleted_views
            .contains(&(project.to_string(), name.to_string()))
    }

    /// The latest live version of a view.
    pub fn view(&self, project: &str, name: &str) -> Option<&ViewVersion> {
        self.views.get(&(project.to_string(), name.to_string()))
    }

    /// A specific version of a view, if this cache has seen it.
    pub fn view_version(
        &self,
        project: &str,
        name: &str,
        version: u32,
    ) -> Option<&Arc<FeatureView>> {
        self.view_versions
            .get(&(project.to_string(), name.to_string(), version))
    }

    /// A live feature service.
    pub fn service(&self, project: &str, name: &str) -> Option<&Arc<FeatureService>> {
        self.services.get(&(project.to_string(), name.to_string()))
    }

    fn apply(&mut self, event: &WatchEvent) {
        if event.snapshot {
            *self = Catalog::default();
        }
        self.revision = event.revision;
        for object in &event.objects {
            self.apply_object(object);
        }
    }

    fn apply_object(&mut self, object: &RegistryObject) {
        let (Some(meta), Some(spec)) = (&object.meta, &object.spec) else {
            return;
        };
        let key = (meta.project.clone(), meta.name.clone());
        self.projects.insert(meta.project.clone());
        match spec {
            Spec::Entity(e) => match (meta.deleted, Entity::try_from(e)) {
                (false, Ok(entity)) => {
                    self.entities.insert(key, Arc::new(entity));
                }
                _ => {
                    self.entities.remove(&key);
                }
            },
            Spec::Source(source) => match (meta.deleted, Source::try_from(source)) {
                (false, Ok(source)) => {
                    self.sources.insert(key, Arc::new(source));
                }
                _ => {
                    self.sources.remove(&key);
                }
            },
            Spec::FeatureView(v) => {
                let Ok(view) = FeatureView::try_from(v) else {
                    return;
                };
                let view = Arc::new(view);
                self.view_versions.insert(
                    (meta.project.clone(), meta.name.clone(), meta.version),
                    view.clone(),
                );
                if meta.deleted {
                    self.views.remove(&key);
                    self.deleted_views.insert(key);
                } else {
                    self.deleted_views.remove(&key);
                    self.views.insert(
                        key,
                        ViewVersion {
                            version: meta.version,
                            view,
                        },
                    );
                }
            }
            Spec::FeatureService(s) => {
                if meta.deleted {
                    self.services.remove(&key);
                } else {
                    self.services.insert(key, Arc::new(FeatureService::from(s)));
                }
            }
        }
    }
}

/// The cache: a current catalog and the task that keeps it current.
#[derive(Clone)]
pub struct RegistryCache {
    catalog: Arc<RwLock<Arc<Catalog>>>,
    /// The revision loaded; `None` until the first watch event (the registry's state) arrives.
    revision: watch::Receiver<Option<u64>>,
    registry: String,
}

impl RegistryCache {
    /// Starts following the registry at `registry` (host:port) until `shutdown`.
    pub fn start(registry: &str, shutdown: Shutdown) -> Self {
        let catalog = Arc::new(RwLock::new(Arc::new(Catalog::default())));
        let (revision_tx, revision) = watch::channel(None);
        let cache = Self {
            catalog: catalog.clone(),
            revision,
            registry: registry.to_string(),
        };
        let uri = registry.to_string();
        tokio::spawn(async move {
            let mut from_revision = 0;
            loop {
                let result = follow(&uri, from_revision, &catalog, &revision_tx, &shutdown).await;
                if shutdown.is_triggered() {
                    return;
                }
                if let Err(error) = result {
                    tracing::warn!(registry = %uri, %error, "registry watch interrupted; retrying");
                }
                from_revision = revision_tx.borrow().unwrap_or(0);
                tokio::select! {
                    _ = shutdown.wait() => return,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
        cache
    }

    /// The registry's address.
    pub fn registry_address(&self) -> &str {
        &self.registry
    }

    /// The current catalog.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog.read().map(|c| c.clone()).unwrap_or_default()
    }

    /// Waits until the cache has loaded the registry's state or `timeout` passes.
    pub async fn wait_ready(&self, timeout: Duration) -> bool {
        let mut revision = self.revision.clone();
        tokio::time::timeout(timeout, revision.wait_for(Option::is_some))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Whether the cache has loaded the registry's state.
    pub fn is_loaded(&self) -> bool {
        self.revision.borrow().is_some()
    }

    /// Readiness for a role that can answer once this cache has loaded the registry.
    pub fn readiness(&self, role: &'static str) -> Readiness {
        let readiness = Readiness::new(
            role,
            &format!("loading definitions from the registry at {}", self.registry),
        );
        let (cache, ready) = (self.clone(), readiness.clone());
        tokio::spawn(async move {
            let mut revision = cache.revision.clone();
            if revision.wait_for(Option::is_some).await.is_ok() {
                ready.set_ready();
            }
        });
        readiness
    }

    /// A view version the watch did not deliver (versions before the cache started): fetched
    /// once from the registry and kept (versions are immutable).
    pub async fn fetch_view_version(
        &self,
        project: &str,
        name: &str,
        version: u32,
    ) -> Option<Arc<FeatureView>> {
        if let Some(view) = self.catalog().view_version(project, name, version) {
            return Some(view.clone());
        }
        let channel = endpoint(&self.registry).ok()?.connect().await.ok()?;
        let response = RegistryServiceClient::new(authorized(channel))
            .describe(DescribeRequest {
                project: project.to_string(),
                kind: ObjectKind::FeatureView as i32,
                name: name.to_string(),
                version,
            })
            .await
            .ok()?
            .into_inner();
        let Some(Spec::FeatureView(view)) = response.object?.spec else {
            return None;
        };
        let view = Arc::new(FeatureView::try_from(&view).ok()?);
        if let Ok(mut guard) = self.catalog.write() {
            // A past version only: the latest version of the view does not change.
            let mut next = (**guard).clone();
            next.view_versions.insert(
                (project.to_string(), name.to_string(), version),
                view.clone(),
            );
            *guard = Arc::new(next);
        }
        Some(view)
    }
}

async fn follow(
    uri: &str,
    from_revision: u64,
    catalog: &RwLock<Arc<Catalog>>,
    revision: &watch::Sender<Option<u64>>,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let channel = endpoint(uri)?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await?;
    let mut stream = RegistryServiceClient::new(authorized(channel))
        .watch(WatchRequest {
            from_revision,
            project: String::new(),
        })
        .await?
        .into_inner();
    loop {
        let event = tokio::select! {
            _ = shutdown.wait() => return Ok(()),
            event = stream.message() => event?,
        };
        let Some(event) = event else {
            anyhow::bail!("the registry closed the watch")
        };
        let mut next = catalog.read().map(|c| (**c).clone()).unwrap_or_default();
        next.apply(&event);
        if let Ok(mut guard) = catalog.write() {
            *guard = Arc::new(next);
        }
        revision.send_replace(Some(event.revision));
    }
}
