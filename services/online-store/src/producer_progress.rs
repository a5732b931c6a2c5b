//! `OnlineStoreService/Producers`: the stored progress of a source's producers, from this
//! replica's applied state. Kafka consumers resume from it and `quiver describe source` shows
//! it; a replica behind the leader answers older sequences, which only makes a consumer resend
//! what apply then drops as applied (never skip).

use quiver_proto::online::SourceClock;
use quiver_proto::online::{ProducerProgress, ProducersRequest, ProducersResponse};

use crate::error::OnlineStoreError;
use crate::node::Node;
use crate::raft::source_clock::IDLE_AFTER_BATCHES;

/// The producers of `request` with their sequences, watermarks and activity.
pub fn read(
    node: &Node,
    request: &ProducersRequest,
) -> Result<ProducersResponse, OnlineStoreError> {
    if request.prefix.is_empty() {
        return Err(OnlineStoreError::InvalidArgument(
            "prefix: a producer id prefix is required, e.g. \"kafka:orders:\"".into(),
        ));
    }
    let project = node
        .registry
        .catalog()
        .project(&request.project)
        .map_err(|e| OnlineStoreError::InvalidArgument(format!("project: {e}")))?;
    let internal = |e: std::io::Error| OnlineStoreError::Internal(e.to_string());
    let stored = node
        .state
        .producers_with_prefix(&request.prefix)
        .map_err(internal)?;
    let (source_watermark, clock) = node
        .state
        .source_progress(&project, &request.source)
        .map_err(internal)?;
    let producers = stored
        .into_iter()
        .map(|(producer_id, state)| progress(producer_id, &state, &clock))
        .collect();
    Ok(ProducersResponse {
        producers,
        source_watermark,
        source_batches: clock.batches,
        project,
    })
}

fn progress(
    producer_id: String,
    state: &quiver_proto::online::ProducerState,
    clock: &SourceClock,
) -> ProducerProgress {
    let active = clock.active.iter().find(|p| p.producer_id == producer_id);
    ProducerProgress {
        epoch: state.epoch,
        sequence: state.sequence,
        input_end: state.input_end,
        watermark: active.and_then(|p| p.watermark),
        active: active.is_some_and(|p| clock.batches - p.last_batch < IDLE_AFTER_BATCHES),
        batches_since: active.map_or(0, |p| clock.batches - p.last_batch),
        producer_id,
    }
}
