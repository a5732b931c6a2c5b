//! A real Kafka wire protocol for tests: librdkafka's mock cluster (brokers on 127.0.0.1
//! ports, inside the test process) and a producer writing to it; and reading what Quiver has
//! committed of each partition.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a failed step should fail loudly

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quiver_proto::online::online_store_service_client::OnlineStoreServiceClient;
use quiver_proto::online::{ProducerProgress, ProducersRequest, ProducersResponse};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, DefaultProducerContext, Producer};
use rdkafka::ClientConfig;

use crate::cluster::channel;

/// A mock Kafka cluster and a producer to it.
pub struct Broker {
    cluster: MockCluster<'static, DefaultProducerContext>,
    producer: BaseProducer,
    /// Messages produced per (topic, partition): the log end offsets.
    produced: BTreeMap<(String, i32), u64>,
}

impl Broker {
    /// A cluster of `brokers` brokers.
    pub fn start(brokers: i32) -> Self {
        let cluster = MockCluster::new(brokers).unwrap();
        let producer = producer(&cluster.bootstrap_servers());
        Self {
            cluster,
            producer,
            produced: BTreeMap::new(),
        }
    }

    /// The bootstrap servers, host:port,...
    pub fn bootstrap(&self) -> String {
        self.cluster.bootstrap_servers()
    }

    /// Creates `topic` with `partitions` partitions.
    pub fn create_topic(&mut self, topic: &str, partitions: i32) {
        self.cluster.create_topic(topic, partitions, 1).unwrap();
        for p in 0..partitions {
            self.produced.insert((topic.to_string(), p), 0);
        }
    }

    /// Writes `messages` (partition, value) to `topic`, in order, and waits until the brokers
    /// have them all.
    pub fn send(&mut self, topic: &str, messages: &[(i32, Vec<u8>)]) {
        for (partition, value) in messages {
            let mut record = BaseRecord::<(), [u8]>::to(topic)
                .partition(*partition)
                .payload(value.as_slice());
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((_, back)) => {
                        // The local queue is full: let deliveries drain.
                        self.producer.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
            *self
                .produced
                .entry((topic.to_string(), *partition))
                .or_default() += 1;
        }
        self.producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Messages written to each partition of `topic` (its log end offsets).
    pub fn log_ends(&self, topic: &str) -> BTreeMap<i32, u64> {
        self.produced
            .iter()
            .filter(|((t, _), _)| t == topic)
            .map(|((_, p), n)| (*p, *n))
            .collect()
    }
}

/// A producer writing to `bootstrap`.
fn producer(bootstrap: &str) -> BaseProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("linger.ms", "1")
        // Back within a second of a broker coming up (tests take brokers down).
        .set("reconnect.backoff.max.ms", "1000")
        .create()
        .unwrap()
}

/// What the online store at `online` has stored of `source`'s partitions of `topic`.
pub async fn committed(
    online: &str,
    project: &str,
    source: &str,
    topic: &str,
) -> ProducersResponse {
    let mut client = OnlineStoreServiceClient::new(channel(online).await.unwrap());
    client
        .producers(ProducersRequest {
            project: project.into(),
            source: source.into(),
            prefix: format!("kafka:{topic}:"),
        })
        .await
        .unwrap()
        .into_inner()
}

/// The stored partitions by number.
pub fn by_partition(response: &ProducersResponse, topic: &str) -> BTreeMap<i32, ProducerProgress> {
    response
        .producers
        .iter()
        .filter_map(|p| {
            let partition = p.producer_id.strip_prefix(&format!("kafka:{topic}:"))?;
            Some((partition.parse().ok()?, p.clone()))
        })
        .collect()
}

/// Waits up to `timeout` until Quiver has committed every message `broker` wrote to `topic`
/// (each partition's stored offset at its log end); panics with what is stored otherwise.
pub async fn wait_committed(
    broker: &Broker,
    online: &str,
    project: &str,
    source: &str,
    topic: &str,
    timeout: Duration,
) -> ProducersResponse {
    let want = broker.log_ends(topic);
    let deadline = Instant::now() + timeout;
    loop {
        let response = committed(online, project, source, topic).await;
        let stored = by_partition(&response, topic);
        let done = want
            .iter()
            .all(|(p, end)| *end == 0 || stored.get(p).is_some_and(|s| s.sequence == *end));
        if done {
            return response;
        }
        if Instant::now() >= deadline {
            panic!("not committed in {timeout:?}: want {want:?}, stored {stored:#?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

impl Broker {
    /// Makes broker `id` (1-based; -1: all) drop its connections and refuse new ones.
    pub fn broker_down(&self, id: i32) {
        self.cluster.broker_down(id).unwrap();
    }

    /// Lets broker `id` (-1: all) accept connections again, and replaces the producer: the
    /// old one's flushes sometimes timed out after an outage under load, and what it does is
    /// the harness's concern, not the consumer's under test.
    pub fn broker_up(&mut self, id: i32) {
        self.cluster.broker_up(id).unwrap();
        self.producer = producer(&self.cluster.bootstrap_servers());
    }

    /// Makes the brokers' metadata answer `error` for `topic` (`NoError` clears it): how the mock
    /// cluster shows a deleted topic, as it cannot delete one.
    pub fn topic_error(&self, topic: &str, error: rdkafka::types::RDKafkaRespErr) {
        self.cluster.topic_error(topic, error).unwrap();
    }
}
