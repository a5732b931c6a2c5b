//! The `quiver.registry.v1.RegistryService` gRPC handlers.

use std::pin::Pin;
use std::sync::Arc;
use std::time::SystemTime;

use futures::Stream;
use quiver_common::auth::{check_named_project, check_project, Caller, Projects};
use quiver_common::Shutdown;
use quiver_proto::registry::registry_service_server::RegistryService;
use quiver_proto::registry::{
    ApplyRequest, ApplyResponse, DescribeRequest, DescribeResponse, GetLineageRequest,
    GetLineageResponse, ListProjectsRequest, ListProjectsResponse, ListRequest, ListResponse,
    RecordConsumerRequest, RecordConsumerResponse, WatchEvent, WatchRequest,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::definition::Kind;
use crate::error::RegistryError;
use crate::lineage::{parse_node, Graph};
use crate::plan::plan;
use crate::store::Store;
use crate::validate::{validate, Document};
use crate::watch_hub::WatchHub;

/// The registry service.
#[derive(Clone)]
pub struct Registry {
    store: Store,
    hub: Arc<WatchHub>,
    shutdown: Shutdown,
}

impl Registry {
    /// A registry over `store`; Watch streams end when `shutdown` triggers.
    pub fn new(store: Store, shutdown: Shutdown) -> Self {
        Self {
            store,
            hub: Arc::new(WatchHub::default()),
            shutdown,
        }
    }

    /// Validates, plans and (unless a dry run) commits an apply, once `caller` (with auth on)
    /// is known to cover the documents' project.
    pub async fn apply(
        &self,
        request: ApplyRequest,
        caller: Option<&Caller>,
    ) -> Result<ApplyResponse, Status> {
        let documents: Vec<Document> = request
            .documents
            .into_iter()
            .map(|d| Document {
                name: d.name,
                yaml: d.yaml,
            })
            .collect();
        let desired = validate(&documents).map_err(RegistryError::Invalid)?;
        check_project(caller, &desired.project)?;
        let plan = plan(&self.store, &desired)?;
        if let Some(expected) = request.expected_revision {
            if expected != plan.base_revision {
                return Err(RegistryError::Conflict {
                    expected,
                    current: plan.base_revision,
                }
                .into());
            }
        }
        let mut response = ApplyResponse {
            project: plan.project.clone(),
            plan: plan.items.clone(),
            base_revision: plan.base_revision,
            revision: plan.base_revision,
            applied: false,
        };
        if request.dry_run || plan.is_noop() {
            return Ok(response);
        }
        {
            let _gate = self.hub.commit_gate().await;
            self.store.commit(plan.base_revision, &plan.change).await?;
            self.hub.publish(plan.change.clone());
        }
        tracing::info!(project = %plan.project, revision = plan.change.revision, objects = plan.change.objects.len(), "applied definitions");
        response.revision = plan.change.revision;
        response.applied = true;
        Ok(response)
    }

    /// The project a request means: the one named, or the only one there is.
    fn resolve_project(&self, requested: &str) -> Result<String, RegistryError> {
        let projects = self.store.projects()?;
        if requested.is_empty() {
            return match projects.as_slice() {
                [only] => Ok(only.clone()),
                [] => Err(RegistryError::NotFound(
                    "the registry is empty; apply definitions first".into(),
                )),
                // Not named: a token of one project must not learn the others' names.
                many => Err(RegistryError::BadRequest {
                    field: "project",
                    reason: format!(
                        "required: the registry holds {} projects; name the one you mean",
                        many.len()
                    ),
                }),
            };
        }
        if projects.iter().any(|p| p == requested) {
            Ok(requested.to_string())
        } else {
            Err(RegistryError::NotFound(format!(
                "unknown project {requested:?}"
            )))
        }
    }

    fn kind(raw: i32) -> Result<Kind, RegistryError> {
        Kind::from_pb(raw).ok_or_else(|| RegistryError::BadRequest {
            field: "kind",
            reason: format!("{raw} is not an object kind"),
        })
    }

    fn list(&self, request: ListRequest) -> Result<ListResponse, RegistryError> {
        let project = self.resolve_project(&request.project)?;
        let kind = Self::kind(request.kind)?;
        let objects = self
            .store
            .heads(&project)?
            .into_iter()
            .filter(|o| {
                o.meta.as_ref().is_some_and(|m| {
                    m.kind == kind.to_pb() as i32 && (request.include_deleted || !m.deleted)
                })
            })
            .collect();
        Ok(ListResponse {
            project,
            objects,
            revision: self.store.revision()?,
        })
    }

    fn describe(&self, request: DescribeRequest) -> Result<DescribeResponse, RegistryError> {
        let project = self.resolve_project(&request.project)?;
        let kind = Self::kind(request.kind)?;
        let missing = || {
            RegistryError::NotFound(format!(
                "no {kind} {:?} in project {project:?}",
                request.name
            ))
        };
        let head = self
            .store
            .head(&project, kind, &request.name)?
            .ok_or_else(missing)?;
        let versions = self.store.versions(&project, kind, &request.name)?;
        let object = if request.version == 0 {
            head
        } else {
            self.store
                .version(&project, kind, &request.name, request.version)?
                .ok_or_else(|| {
                    RegistryError::NotFound(format!(
                        "{kind} {:?} has no version {} (versions: {})",
                        request.name,
                        request.version,
                        versions
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?
        };
        Ok(DescribeResponse {
            object: Some(object),
            versions,
        })
    }

    fn lineage(&self, request: GetLineageRequest) -> Result<GetLineageResponse, RegistryError> {
        let project = self.resolve_project(&request.project)?;
        let id = parse_node(&request.node).ok_or_else(|| RegistryError::BadRequest {
            field: "node",
            reason: format!(
                "{:?} is not a node; use view:feature or <kind>/<name> with kind entity, source, transform, view, feature, service or consumer",
                request.node
            ),
        })?;
        let graph = Graph::build(
            &self.store.heads(&project)?,
            &self.store.consumers(&project)?,
        );
        graph.query(&id).ok_or_else(|| {
            RegistryError::NotFound(format!("no lineage node {id:?} in project {project:?}"))
        })
    }

    fn record_consumer(&self, request: RecordConsumerRequest) -> Result<(), RegistryError> {
        let project = self.resolve_project(&request.project)?;
        let consumer = request.consumer.trim();
        if consumer.is_empty() || consumer.len() > 128 || consumer.chars().any(char::is_control) {
            return Err(RegistryError::BadRequest {
                field: "consumer",
                reason: format!(
                    "{:?} must be 1 to 128 printable characters",
                    request.consumer
                ),
            });
        }
        let mut targets = Vec::new();
        if !request.feature_service.is_empty() {
            if self
                .store
                .head(&project, Kind::FeatureService, &request.feature_service)?
                .is_none()
            {
                return Err(RegistryError::NotFound(format!(
                    "unknown feature service {:?}",
                    request.feature_service
                )));
            }
            targets.push(format!("service:{}", request.feature_service));
        }
        for text in &request.features {
            let reference: quiver_core::FeatureRef =
                text.parse()
                    .map_err(|e: quiver_core::feature_ref::InvalidFeatureRef| {
                        RegistryError::BadRequest {
                            field: "features",
                            reason: e.to_string(),
                        }
                    })?;
            targets.push(format!("feature:{}:{}", reference.view, reference.feature));
        }
        if targets.is_empty() {
            return Err(RegistryError::BadRequest {
                field: "features",
                reason: "name a feature_service or at least one feature".into(),
            });
        }
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        for target in targets {
            self.store
                .record_consumer(&project, consumer, &target, now)?;
        }
        Ok(())
    }

    /// The events a watcher starts with, read while the caller holds the hub's read gate.
    fn starting_events(&self, request: &WatchRequest) -> Result<Vec<WatchEvent>, RegistryError> {
        let revision = self.store.revision()?;
        if request.from_revision > revision {
            return Err(RegistryError::BadRequest {
                field: "from_revision",
                reason: format!(
                    "{} is ahead of the registry (revision {revision})",
                    request.from_revision
                ),
            });
        }
        if request.from_revision > 0 {
            return self.store.changes_after(request.from_revision);
        }
        let objects = self
            .store
            .all_heads()?
            .into_iter()
            .filter(|o| o.meta.as_ref().is_some_and(|m| !m.deleted))
            .collect();
        Ok(vec![WatchEvent {
            revision,
            snapshot: true,
            objects,
        }])
    }

    /// Runs one watcher: sends its starting events, then live ones, until the client goes
    /// away or the server shuts down. A watcher that falls behind re-reads from storage.
    async fn run_watch(
        self,
        request: WatchRequest,
        starting: Vec<WatchEvent>,
        mut live: broadcast::Receiver<Arc<WatchEvent>>,
        out: mpsc::Sender<Result<WatchEvent, Status>>,
    ) {
        let mut last = request.from_revision;
        let project = request.project.clone();
        let send = |event: WatchEvent| {
            let event = filter_project(event, &project);
            let out = out.clone();
            async move {
                match event {
                    Some(e) => out.send(Ok(e)).await.is_ok(),
                    None => true,
                }
            }
        };
        for event in starting {
            last = last.max(event.revision);
            if !send(event).await {
                return;
            }
        }
        loop {
            let event = tokio::select! {
                _ = self.shutdown.wait() => return,
                _ = out.closed() => return,
                event = live.recv() => event,
            };
            let events = match event {
                Ok(event) => vec![(*event).clone()],
                Err(broadcast::error::RecvError::Lagged(_)) => match self.store.changes_after(last)
                {
                    Ok(events) => events,
                    Err(e) => {
                        let _ = out.send(Err(e.into())).await;
                        return;
                    }
                },
                Err(broadcast::error::RecvError::Closed) => return,
            };
            for event in events {
                if event.revision <= last {
                    continue;
                }
                last = event.revision;
                if !send(event).await {
                    return;
                }
            }
        }
    }
}

/// Keeps only `project`'s objects (all when empty); drops a non-snapshot event left empty.
fn filter_project(mut event: WatchEvent, project: &str) -> Option<WatchEvent> {
    if project.is_empty() {
        return Some(event);
    }
    event
        .objects
        .retain(|o| o.meta.as_ref().is_some_and(|m| m.project == project));
    (event.snapshot || !event.objects.is_empty()).then_some(event)
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchEvent, Status>> + Send>>;

#[tonic::async_trait]
impl RegistryService for Registry {
    async fn apply(
        &self,
        request: Request<ApplyRequest>,
    ) -> Result<Response<ApplyResponse>, Status> {
        let caller = Caller::of(&request);
        Ok(Response::new(
            Registry::apply(self, request.into_inner(), caller.as_ref()).await?,
        ))
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        check_named_project(caller.as_ref(), &request.project)?;
        check_project(caller.as_ref(), &self.resolve_project(&request.project)?)?;
        Ok(Response::new(Registry::list(self, request)?))
    }

    async fn describe(
        &self,
        request: Request<DescribeRequest>,
    ) -> Result<Response<DescribeResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        check_named_project(caller.as_ref(), &request.project)?;
        check_project(caller.as_ref(), &self.resolve_project(&request.project)?)?;
        Ok(Response::new(Registry::describe(self, request)?))
    }

    /// With a token for some projects, only those are listed.
    async fn list_projects(
        &self,
        request: Request<ListProjectsRequest>,
    ) -> Result<Response<ListProjectsResponse>, Status> {
        let caller = Caller::of(&request);
        let mut projects = self.store.projects()?;
        if let Some(caller) = caller {
            projects.retain(|p| caller.projects.contains(p));
        }
        let revision = self.store.revision()?;
        Ok(Response::new(ListProjectsResponse { projects, revision }))
    }

    async fn get_lineage(
        &self,
        request: Request<GetLineageRequest>,
    ) -> Result<Response<GetLineageResponse>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        check_named_project(caller.as_ref(), &request.project)?;
        check_project(caller.as_ref(), &self.resolve_project(&request.project)?)?;
        Ok(Response::new(self.lineage(request)?))
    }

    async fn record_consumer(
        &self,
        request: Request<RecordConsumerRequest>,
    ) -> Result<Response<RecordConsumerResponse>, Status> {
        Registry::record_consumer(self, request.into_inner())?;
        Ok(Response::new(RecordConsumerResponse {}))
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = Caller::of(&request);
        let request = request.into_inner();
        if let Some(caller) = &caller {
            // Watching every project needs a token for every project.
            if request.project.is_empty() && caller.projects != Projects::All {
                return Err(Status::permission_denied(format!(
                    "token {:?} covers only some projects; Watch of every project needs a token \
                     for all projects: name one project",
                    caller.id
                )));
            }
            check_project(Some(caller), &request.project)?;
        }
        let (starting, live) = {
            let (_gate, live) = self.hub.subscribe().await;
            (self.starting_events(&request)?, live)
        };
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(self.clone().run_watch(request, starting, live, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
