//! The micro-batcher: one task that takes every batch waiting in the queue (up to
//! `max_batch_rows`), feeds them through their views' transforms and writes them to the online
//! store as one entry, then answers each producer. Feeding is sequential; up to
//! `max_inflight_writes` micro-batches commit concurrently. That is safe for deduplication: a
//! producer has one batch in flight, so two concurrent micro-batches never hold two different
//! batches of one producer (a retry of the same batch is recognised whichever commits first).
//! The statistics a `zscore` reads are those of every micro-batch committed before its
//! micro-batch was fed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_common::client_channel::{authorized, endpoint, AuthChannel};
use quiver_common::leader_hint::with_leader;
use quiver_common::registry_cache::{Catalog, RegistryCache};
use quiver_common::trace_context::traced;
use quiver_common::Shutdown;
use quiver_core::aggregate::TileRecord;
use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{
    EventBatch, EventBatchResult, ProducersRequest, ProducersResponse, ReadAggregatesRequest,
    WriteEventsRequest, WriteEventsResponse,
};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tonic::Status;
use tracing::Instrument;

use crate::config::ComputeConfig;
use crate::hot_keys::HotKeys;
use quiver_common::view_feed::{feed, PlannedView, Statistics};

/// How many times a write follows leader hints / retries an election before giving up (the
/// producer then retries the whole batch, which is idempotent).
const WRITE_ATTEMPTS: usize = 30;

/// Largest message to the online store.
const MAX_MESSAGE: usize = 256 << 20;

/// One producer batch waiting for its micro-batch.
pub struct Job {
    /// The batch as validated by ingest.
    pub batch: EventBatch,
    /// Where its outcome goes.
    pub reply: oneshot::Sender<Result<EventBatchResult, Status>>,
    /// The request's span: the micro-batch carrying the job continues its trace.
    pub span: tracing::Span,
    /// Its rows' share of the queue bound, released when the job is answered.
    pub _permit: OwnedSemaphorePermit,
}

/// The views of each source, planned once per registry revision (and again when the online
/// store asks for more versions).
#[derive(Default)]
struct Plans {
    revision: Option<u64>,
    by_source: HashMap<(String, String), Arc<Vec<PlannedView>>>,
}

/// (project, source) -> [(view, version)].
type VersionsBySource = HashMap<(String, String), Vec<(String, u32)>>;

/// Versions the online store requires of each source's batches besides the registry's latest
/// (an older version still serving while a newer one backfills), as it reported them.
#[derive(Default, Clone)]
struct Required {
    versions: Arc<std::sync::Mutex<VersionsBySource>>,
    /// Set when `versions` grew: the plans are made again.
    changed: Arc<std::sync::atomic::AtomicBool>,
}

impl Required {
    /// Records `missing` (`view@version`) as required of `source`'s batches.
    fn add(&self, source: (String, String), missing: &[String]) {
        let Ok(mut versions) = self.versions.lock() else {
            return;
        };
        let list = versions.entry(source).or_default();
        for text in missing {
            let Some((view, version)) = text.rsplit_once('@') else {
                continue;
            };
            let Ok(version) = version.parse() else {
                continue;
            };
            if !list.iter().any(|(v, n)| v == view && *n == version) {
                list.push((view.to_string(), version));
            }
        }
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The batcher task's state.
pub struct Batcher {
    config: ComputeConfig,
    registry: RegistryCache,
    store: Arc<Store>,
    writes: Arc<Semaphore>,
    plans: Plans,
    required: Required,
    hot_keys: HotKeys,
}

impl Batcher {
    /// Runs the batcher over `jobs` until `shutdown` or the queue closes.
    pub fn spawn(
        config: ComputeConfig,
        registry: RegistryCache,
        store: Arc<Store>,
        mut jobs: mpsc::UnboundedReceiver<Job>,
        shutdown: Shutdown,
    ) {
        let mut batcher = Batcher {
            hot_keys: HotKeys::new(config.hot_keys),
            writes: Arc::new(Semaphore::new(config.max_inflight_writes.max(1))),
            config,
            registry,
            store,
            plans: Plans::default(),
            required: Required::default(),
        };
        tokio::spawn(async move {
            loop {
                let first = tokio::select! {
                    _ = shutdown.wait() => return,
                    job = jobs.recv() => match job { Some(job) => job, None => return },
                };
                let mut rows = first.batch.rows.len();
                let mut micro = vec![first];
                while rows < batcher.config.max_batch_rows {
                    match jobs.try_recv() {
                        Ok(job) => {
                            rows += job.batch.rows.len();
                            micro.push(job);
                        }
                        Err(_) => break,
                    }
                }
                batcher.process(micro).await;
            }
        });
    }

    /// Feeds, writes and answers one micro-batch.
    async fn process(&mut self, jobs: Vec<Job>) {
        let started = Instant::now();
        // The micro-batch continues the first job's trace and links the others'.
        let span = match jobs.first() {
            Some(first) => {
                tracing::info_span!(parent: &first.span, "compute.micro_batch", batches = jobs.len())
            }
            None => return,
        };
        for job in jobs.iter().skip(1) {
            span.follows_from(&job.span);
        }
        let catalog = self.registry.catalog();
        self.refresh_plans(&catalog).await;
        let mut statistics: HashMap<(String, String, u32), Statistics> = HashMap::new();
        let mut batches = Vec::with_capacity(jobs.len());
        let mut replies = Vec::with_capacity(jobs.len());
        for job in jobs {
            let Job {
                mut batch,
                reply,
                _permit,
                ..
            } = job;
            let key = (batch.project.clone(), batch.source.clone());
            if catalog.source(&batch.project, &batch.source).is_none() {
                let _ = reply.send(Err(Status::unavailable(format!(
                    "compute has not loaded source {:?} of project {:?} yet; retry",
                    batch.source, batch.project
                ))));
                continue;
            }
            let plans = self.plans.by_source.get(&key).cloned().unwrap_or_default();
            let mut failure = None;
            for plan in plans.iter() {
                let view_key = (batch.project.clone(), plan.view.name.clone(), plan.version);
                let stats = statistics.entry(view_key).or_default();
                let read = self
                    .read_statistics(&batch, plan, stats)
                    .instrument(span.clone())
                    .await;
                if let Err(status) = read {
                    tracing::warn!(%status, view = %plan.view.name, "could not read running statistics");
                    failure = Some(status);
                    break;
                }
                feed(&mut batch, plan, stats);
            }
            if let Some(status) = failure {
                let _ = reply.send(Err(status));
                continue;
            }
            self.hot_keys.count(&batch);
            batches.push(batch);
            replies.push((reply, _permit));
        }
        if batches.is_empty() {
            return;
        }
        self.hot_keys.maybe_export();
        let rows: usize = batches.iter().map(|b| b.rows.len()).sum();
        let Ok(slot) = self.writes.clone().acquire_owned().await else {
            return;
        };
        let store = self.store.clone();
        let required = self.required.clone();
        let sources: Vec<(String, String)> = batches
            .iter()
            .map(|b| (b.project.clone(), b.source.clone()))
            .collect();
        tokio::spawn(
            async move {
                let result = store.write_events(WriteEventsRequest { batches }).await;
                drop(slot);
                crate::metrics::record_micro_batch(rows, replies.len(), started.elapsed());
                match result {
                    Ok(response) => {
                        for (((reply, _permit), outcome), source) in
                            replies.into_iter().zip(response.results).zip(sources)
                        {
                            if outcome.missing_views.is_empty() {
                                let _ = reply.send(Ok(outcome));
                                continue;
                            }
                            // Nothing of the batch was applied: the producer retries it, and
                            // by then it is fed to the versions the store asked for.
                            required.add(source, &outcome.missing_views);
                            let _ = reply.send(Err(Status::unavailable(format!(
                                "the online store also folds {} of this source; retry (compute adds them)",
                                outcome.missing_views.join(", ")
                            ))));
                        }
                    }
                    Err(status) => {
                        tracing::warn!(%status, "micro-batch write failed; producers will retry");
                        for (reply, _permit) in replies {
                            let _ = reply.send(Err(status.clone()));
                        }
                    }
                }
            }
            .instrument(span),
        );
    }

    async fn refresh_plans(&mut self, catalog: &Catalog) {
        let changed = self
            .required
            .changed
            .swap(false, std::sync::atomic::Ordering::Relaxed);
        if self.plans.revision == Some(catalog.revision) && !changed {
            return;
        }
        self.plans = Plans {
            revision: Some(catalog.revision),
            by_source: HashMap::new(),
        };
        let required = self
            .required
            .versions
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        for (project, source) in catalog.sources() {
            let mut views: Vec<PlannedView> = catalog
                .views_of_source(project, source)
                .into_iter()
                .map(|(_, v)| PlannedView::new(v.view.clone(), v.version))
                .collect();
            let key = (project.to_string(), source.to_string());
            for (name, version) in required.get(&key).into_iter().flatten() {
                if views
                    .iter()
                    .any(|v| v.view.name == *name && v.version == *version)
                {
                    continue;
                }
                match self
                    .registry
                    .fetch_view_version(project, name, *version)
                    .await
                {
                    Some(view) => views.push(PlannedView::new(view, *version)),
                    None => {
                        tracing::warn!(view = %name, version, "a required view version is not in the registry")
                    }
                }
            }
            self.plans.by_source.insert(key, Arc::new(views));
        }
    }

    /// Adds to `statistics` the stored statistics of `plan`'s stateful transforms that
    /// `batch`'s rows read and it does not hold yet (a row reads the window ending at its own
    /// event time), from the online store.
    async fn read_statistics(
        &self,
        batch: &EventBatch,
        plan: &PlannedView,
        statistics: &mut Statistics,
    ) -> Result<(), Status> {
        for read in plan.statistics_reads(&batch.project, batch, statistics) {
            let mut records = self.store.read_aggregates(read.clone()).await?;
            // A store older than `more_as_of_micros` (a rolling upgrade) answers the first
            // time only: the others are read one at a time.
            if records.len() == 1 {
                for as_of_micros in &read.more_as_of_micros {
                    let one = ReadAggregatesRequest {
                        as_of_micros: *as_of_micros,
                        more_as_of_micros: Vec::new(),
                        ..read.clone()
                    };
                    records.extend(self.store.read_aggregates(one).await?);
                }
            }
            let answered = records.into_iter().map(|r| r.partials).collect();
            plan.add_statistics(statistics, &read, answered)
                .map_err(Status::internal)?;
        }
        Ok(())
    }
}

/// The online store, reached through whichever node leads.
pub(crate) struct Store {
    address: String,
    channels: Mutex<HashMap<String, AuthChannel>>,
}

impl Store {
    pub(crate) fn new(address: String) -> Self {
        Self {
            address,
            channels: Mutex::default(),
        }
    }

    fn client(&self, target: &str) -> Result<OnlineStoreServiceClient<AuthChannel>, Status> {
        let mut channels = self
            .channels
            .lock()
            .map_err(|_| Status::internal("channel cache poisoned"))?;
        let channel = match channels.get(target) {
            Some(channel) => channel.clone(),
            None => {
                let channel = authorized(
                    endpoint(target)
                        .map_err(|e| {
                            Status::invalid_argument(format!(
                                "online store address {target:?}: {e}"
                            ))
                        })?
                        .connect_timeout(Duration::from_secs(2))
                        .timeout(Duration::from_secs(30))
                        .tcp_nodelay(true)
                        .connect_lazy(),
                );
                channels.insert(target.to_string(), channel.clone());
                channel
            }
        };
        Ok(OnlineStoreServiceClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE))
    }

    async fn write_events(
        &self,
        request: WriteEventsRequest,
    ) -> Result<WriteEventsResponse, Status> {
        with_leader(&self.address, WRITE_ATTEMPTS, |target| {
            let request = traced(request.clone());
            let client = self.client(&target);
            async move {
                let response = client?
                    .write_events(request)
                    .await
                    .map_err(unreachable_is_unavailable)?;
                Ok(response.into_inner())
            }
        })
        .await
    }

    /// The stored progress of producers, read on the leader (it has applied the most).
    pub(crate) async fn producers(
        &self,
        request: ProducersRequest,
    ) -> Result<ProducersResponse, Status> {
        with_leader(&self.address, WRITE_ATTEMPTS, |target| {
            let request = traced(request.clone());
            let client = self.client(&target);
            async move {
                Ok(client?
                    .producers(request)
                    .await
                    .map_err(unreachable_is_unavailable)?
                    .into_inner())
            }
        })
        .await
    }

    /// The records a statistics read answered, one per time asked.
    async fn read_aggregates(
        &self,
        request: ReadAggregatesRequest,
    ) -> Result<Vec<TileRecord>, Status> {
        let response = with_leader(&self.address, WRITE_ATTEMPTS, |target| {
            let request = traced(request.clone());
            let client = self.client(&target);
            async move {
                Ok(client?
                    .read_aggregates(request)
                    .await
                    .map_err(unreachable_is_unavailable)?
                    .into_inner())
            }
        })
        .await?;
        std::iter::once(&response.record)
            .chain(&response.more_records)
            .map(|bytes| {
                TileRecord::decode(bytes).map_err(|e| {
                    Status::internal(format!(
                        "online store sent statistics that do not decode: {e}"
                    ))
                })
            })
            .collect()
    }
}

/// A connection failure (a node restarting) is worth a retry, like an election.
fn unreachable_is_unavailable(status: Status) -> Status {
    if status.code() == tonic::Code::Unknown && status.message().contains("transport") {
        Status::unavailable(status.message().to_string())
    } else {
        status
    }
}
