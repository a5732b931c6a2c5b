//! The online store's configuration section (`[online_store]`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use quiver_common::config::duration_text;
use serde::{Deserialize, Serialize};

/// `[online_store]` settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct OnlineStoreConfig {
    /// Where the node's RocksDB and snapshots live.
    pub data_dir: PathBuf,
    /// This node's Raft id: unique forever, never reused (1 or more).
    pub node_id: u64,
    /// This node's client gRPC address as clients reach it (host:port): leader hints point
    /// here.
    pub advertise: String,
    /// Where the peer port listens: Raft and node-to-node calls, never client RPCs.
    pub peer_listen: SocketAddr,
    /// This node's peer address as the other nodes reach it (host:port): recorded in the
    /// membership, used by Raft.
    pub peer_advertise: String,
    /// Leader heartbeat period; keep it well under half of `election_timeout_min`.
    #[serde(with = "duration_text")]
    pub heartbeat_interval: Duration,
    /// The shortest election timeout.
    #[serde(with = "duration_text")]
    pub election_timeout_min: Duration,
    /// The longest election timeout (also the leader lease).
    #[serde(with = "duration_text")]
    pub election_timeout_max: Duration,
    /// Build a snapshot (and purge the log) after this many applied entries.
    pub snapshot_after_entries: u64,
    /// The largest number of entities one GetFeatures may ask for.
    pub max_entities_per_request: usize,
    /// The largest number of rows one Write may carry.
    pub max_rows_per_write: usize,
    /// The most command bytes one Raft AppendEntries carries to a follower (at least one entry
    /// goes, whatever its size). openraft batches by entry count; a follower catching up on
    /// history loads (entries of up to 20,000 events) would otherwise get messages of hundreds
    /// of MiB, past the transport's limit.
    pub max_append_bytes: usize,
    /// RocksDB block cache for served data, in MiB (uncompressed blocks; size it to the hot set).
    pub block_cache_mib: usize,
    /// Windowed reads keep their windows' sealed tiles merged in memory, per (view version,
    /// entity, tile size): at most this many entries (0 turns it off).
    pub sealed_tile_cache_entries: usize,
    /// A follower or learner refuses EVENTUAL reads (UNAVAILABLE, with the leader's address)
    /// while it has applied fewer than the leader's committed index minus this many entries,
    /// as last polled (every `read_lag_poll_interval`), and before its first successful poll.
    pub max_read_lag_entries: u64,
    /// How often a non-leader asks the leader how far it has committed.
    #[serde(with = "duration_text")]
    pub read_lag_poll_interval: Duration,
    /// A non-leader that has not reached the leader for longer than this (a partition, a
    /// leader gone) refuses EVENTUAL reads (UNAVAILABLE) rather than serve values of unknown
    /// age. Several poll intervals, and longer than an election.
    #[serde(with = "duration_text")]
    pub max_read_staleness: Duration,
    /// Export admitted events to the offline store (the leader does it).
    pub export: bool,
    /// The offline store: a directory, `file:///dir` or `s3://bucket/prefix` (endpoint and
    /// credentials from the `AWS_*` environment). Empty: `<data_dir>/offline`.
    pub offline_store: String,
    /// How often the leader exports what is staged.
    #[serde(with = "duration_text")]
    pub export_interval: Duration,
    /// The most log entries one export range spans (bounds the exporter's memory).
    pub export_max_entries: u64,
    /// The most staged bytes one export range holds (bounds the exporter's memory; a range
    /// holds at least one entry).
    pub export_max_bytes: u64,
    /// Staged bytes not yet exported past which the leader refuses event writes
    /// (`RESOURCE_EXHAUSTED` with `retry-after-ms`, so producers back off and nothing
    /// acknowledged is lost) until the export catches up: an unreachable offline store must
    /// not fill every replica's disk.
    pub max_staged_bytes: u64,
    /// Free space on the data directory's disk below which this node takes no writes (as
    /// leader it refuses them and hands leadership over; as follower it refuses new entries),
    /// so RocksDB never meets a full disk. 0 turns the guard off.
    pub min_free_disk_bytes: u64,
    /// A file of this size kept in the data directory and deleted when free space falls under
    /// `min_free_disk_bytes`, so the node's few remaining writes (votes, the commit index) have
    /// room even if something else filled the disk.
    pub disk_ballast_bytes: u64,
    /// Compact a partition directory once it holds this many small files.
    pub compact_min_files: usize,
    /// The most events per backfill chunk (one Raft entry, cut anywhere, even inside an entry).
    pub backfill_chunk_rows: usize,
    /// What one backfill chunk may take (read, transforms, commit, apply): chunks are sized to
    /// it as the backfill goes. A live write waits behind at most one chunk's apply, so this
    /// bounds what a backfill costs freshness; longer backfills faster (`quiver-bench
    /// backfill` measures both).
    #[serde(with = "duration_text")]
    pub backfill_chunk_time: Duration,
}

impl OnlineStoreConfig {
    /// The offline store's URL, defaulted under the data dir.
    pub fn offline_store_url(&self) -> String {
        if self.offline_store.is_empty() {
            self.data_dir.join("offline").display().to_string()
        } else {
            self.offline_store.clone()
        }
    }
}

impl Default for OnlineStoreConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./quiver-data/online-store"),
            node_id: 1,
            advertise: "127.0.0.1:7073".into(),
            peer_listen: SocketAddr::from(([0, 0, 0, 0], 7076)),
            peer_advertise: "127.0.0.1:7076".into(),
            // fsync on a shared 2-core machine can take tens of milliseconds: generous timers.
            heartbeat_interval: Duration::from_millis(150),
            election_timeout_min: Duration::from_millis(1_000),
            election_timeout_max: Duration::from_millis(2_000),
            snapshot_after_entries: 5_000,
            max_entities_per_request: 1_000,
            max_rows_per_write: 10_000,
            max_append_bytes: 8 << 20,
            block_cache_mib: 256,
            sealed_tile_cache_entries: 200_000,
            max_read_lag_entries: 1_000,
            read_lag_poll_interval: Duration::from_millis(500),
            max_read_staleness: Duration::from_secs(5),
            export: true,
            offline_store: String::new(),
            export_interval: Duration::from_secs(1),
            export_max_entries: 10_000,
            export_max_bytes: 64 << 20,
            max_staged_bytes: 1 << 30,
            min_free_disk_bytes: 256 << 20,
            disk_ballast_bytes: 64 << 20,
            compact_min_files: 8,
            backfill_chunk_rows: 20_000,
            backfill_chunk_time: Duration::from_millis(5),
        }
    }
}
