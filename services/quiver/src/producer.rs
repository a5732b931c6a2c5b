//! A producer pushing batches to ingest: what `quiver push`, `quiver load`, the `quiver dev` demo
//! and the push benchmarks (`quiver-bench push|backfill|kafka`) share.

use std::time::{Duration, Instant};

use quiver_common::client_channel::AuthChannel;
use quiver_proto::ingest::ingest_service_client::IngestServiceClient;
use quiver_proto::ingest::{PushRequest, PushResponse};
use tonic::Code;

use crate::addresses::connect;

/// How long a producer keeps retrying one batch before giving up.
const RETRY_FOR: Duration = Duration::from_secs(120);

/// A producer: one id, one batch in flight, retries that keep the batch's sequence number (so
/// a retry of a batch that did commit is recognised as a duplicate).
pub struct Producer {
    client: IngestServiceClient<AuthChannel>,
    id: String,
    sequence: u64,
}

impl Producer {
    /// A producer named `id` pushing to ingest at `address`.
    pub async fn connect(address: &str, id: String) -> anyhow::Result<Self> {
        let client = IngestServiceClient::new(connect(address, "ingest").await?)
            .max_encoding_message_size(64 << 20);
        Ok(Self {
            client,
            id,
            sequence: 0,
        })
    }

    /// Pushes one batch (its producer id and sequence are set here), retrying while ingest or
    /// the store is busy or unreachable. Errors that retrying cannot fix are returned.
    pub async fn push(&mut self, mut request: PushRequest) -> Result<PushResponse, tonic::Status> {
        self.sequence += 1;
        request.producer_id.clone_from(&self.id);
        request.sequence = self.sequence;
        let started = Instant::now();
        let mut backoff = Duration::from_millis(20);
        loop {
            match self.client.push(request.clone()).await {
                Ok(response) => return Ok(response.into_inner()),
                Err(status)
                    if matches!(
                        status.code(),
                        Code::Unavailable
                            | Code::ResourceExhausted
                            | Code::DeadlineExceeded
                            | Code::Unknown
                    ) && started.elapsed() < RETRY_FOR =>
                {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(status) => return Err(status),
            }
        }
    }
}
