//! The key layout of the online store's RocksDB, shared by every Raft group on a node.
//!
//! | column family | key | value |
//! |---|---|---|
//! | `raft_log`  | group BE u32, index BE u64 | encoded openraft entry |
//! | `raft_meta` | group, tag (`v` vote, `p` last purged, `c` committed) | encoded |
//! | `sm_data`   | group, space, ... (see [`Space`]) | per space |
//! | `sm_meta`   | group, tag (`a` last applied, `m` membership, `i` install in progress) | encoded |
//!
//! Big-endian integers make byte order numeric order, and the group id comes first in every key
//! so each group owns one contiguous range per column family.

pub use quiver_proto::convert::{encode_entity, BadKeyValue};

/// The column families.
pub const CF_RAFT_LOG: &str = "raft_log";
/// Raft vote, purge point and committed id.
pub const CF_RAFT_META: &str = "raft_meta";
/// State machine data.
pub const CF_SM_DATA: &str = "sm_data";
/// State machine metadata (written in the same batch as the data).
pub const CF_SM_META: &str = "sm_meta";
/// Every column family.
pub const ALL_CFS: [&str; 4] = [CF_RAFT_LOG, CF_RAFT_META, CF_SM_DATA, CF_SM_META];

/// Tags in `raft_meta` and `sm_meta`.
pub mod tag {
    /// The saved vote.
    pub const VOTE: u8 = b'v';
    /// The last purged log id (written before logs are deleted).
    pub const LAST_PURGED: u8 = b'p';
    /// The last committed log id.
    pub const COMMITTED: u8 = b'c';
    /// The last applied log id.
    pub const LAST_APPLIED: u8 = b'a';
    /// The last applied membership.
    pub const MEMBERSHIP: u8 = b'm';
    /// Set while a snapshot install is in progress: the snapshot's file name in the snapshot dir.
    pub const INSTALLING: u8 = b'i';
    /// This store's identity (`raft_meta`, group 0): made when the database is created.
    pub const STORE_ID: u8 = b's';
}

/// The key spaces inside `sm_data`; a snapshot carries them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Space {
    /// Latest feature rows: project \0 view \0 version BE u32, entity key -> `StoredRow`.
    Rows = 1,
    /// Idempotent-writer table: producer id -> `ProducerState` (a format byte, then protobuf;
    /// older versions stored the last sequence as a BE u64).
    Producers = 2,
    /// Every node id that was ever a member: node id BE u64 -> empty. Ids are never reused.
    KnownNodes = 3,
    /// Tiles: view prefix, `f` (features) or `s` (transform statistics), tile size BE u64,
    /// epoch (ordered i64), entity key, bucket (ordered i64) -> tile record (merged by the RocksDB merge operator). Epoch before entity lets
    /// old epochs go as whole ranges; entity before bucket makes a read one short scan.
    Tiles = 4,
    /// Running records (lifetime aggregates): view prefix, entity key -> tile record.
    Running = 5,
    /// Source watermarks: project \0 source -> largest admitted event time (ordered i64).
    Watermarks = 6,
    // 7 was the quarantine log; late and excluded rows now travel in staged entries.
    /// Entries staged for the offline export: log index BE u64 -> `StagedEntry`. Released (by
    /// range) when an `ExportFinish` applies.
    Staged = 8,
    /// Export progress: a single key -> `ExportState`.
    Export = 9,
    /// Producers by recency: last log index BE u64, producer id -> empty (forget the oldest).
    ProducerActivity = 10,
    /// How many producers `Producers` holds: a single key -> BE u64.
    ProducerCount = 11,
    /// Per source, its producers' event-time progress: project \0 source -> `SourceClock`.
    SourceClocks = 12,
    /// View versions the store knows: project \0 view \0 version BE u32 -> `ViewState`.
    Views = 13,
    /// Per source, the versions it feeds and its admitted rows: project \0 source ->
    /// `SourceViews`.
    SourceViews = 14,
}

/// The entity key under which a view's column statistics (standardize/zscore) are kept: a
/// single byte no encoded entity starts with.
pub const STATISTICS_ENTITY: &[u8] = &[0];

/// An i64 as 8 bytes whose byte order is numeric order.
pub fn ordered_i64(v: i64) -> [u8; 8] {
    ((v as u64) ^ (1 << 63)).to_be_bytes()
}

/// The inverse of [`ordered_i64`].
pub fn from_ordered_i64(bytes: [u8; 8]) -> i64 {
    (u64::from_be_bytes(bytes) ^ (1 << 63)) as i64
}

/// `space`, project \0 view \0 version: the prefix of a view version's keys in a space.
pub fn view_prefix(group: u32, space: Space, project: &str, view: &str, version: u32) -> Vec<u8> {
    let mut key = space_prefix(group, space);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.extend_from_slice(view.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The prefix of a view version's feature tiles (or, with `statistics`, of the tiles of its
/// transforms' running statistics, laid out independently).
pub fn tiles_prefix(
    group: u32,
    project: &str,
    view: &str,
    version: u32,
    statistics: bool,
) -> Vec<u8> {
    let mut key = view_prefix(group, Space::Tiles, project, view, version);
    key.push(if statistics { b's' } else { b'f' });
    key
}

/// The prefix of one tile family and epoch (under a [`tiles_prefix`]).
pub fn tile_epoch_prefix(view_prefix: &[u8], tile_micros: i64, epoch: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(view_prefix.len() + 32);
    key.extend_from_slice(view_prefix);
    key.extend_from_slice(&tile_micros.to_be_bytes());
    key.extend_from_slice(&ordered_i64(epoch));
    key
}

/// The key of one tile.
pub fn tile_key(epoch_prefix: &[u8], entity: &[u8], bucket: i64) -> Vec<u8> {
    let mut key = Vec::with_capacity(epoch_prefix.len() + entity.len() + 8);
    key.extend_from_slice(epoch_prefix);
    key.extend_from_slice(entity);
    key.extend_from_slice(&ordered_i64(bucket));
    key
}

/// The key of an entity's running record (`view_prefix` of `Running`).
pub fn running_key(view_prefix: &[u8], entity: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(view_prefix.len() + entity.len());
    key.extend_from_slice(view_prefix);
    key.extend_from_slice(entity);
    key
}

/// The key of a source's watermark.
pub fn watermark_key(group: u32, project: &str, source: &str) -> Vec<u8> {
    let mut key = space_prefix(group, Space::Watermarks);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.extend_from_slice(source.as_bytes());
    key
}

/// The key of the entry at `log_index` staged for export.
pub fn staged_key(group: u32, log_index: u64) -> Vec<u8> {
    let mut key = space_prefix(group, Space::Staged);
    key.extend_from_slice(&log_index.to_be_bytes());
    key
}

/// The key of the group's export progress.
pub fn export_state_key(group: u32) -> Vec<u8> {
    space_prefix(group, Space::Export)
}

/// `group` as the 4-byte key prefix.
pub fn group_prefix(group: u32) -> [u8; 4] {
    group.to_be_bytes()
}

/// The exclusive upper bound of everything in `group`.
pub fn group_end(group: u32) -> Vec<u8> {
    match group.checked_add(1) {
        Some(next) => next.to_be_bytes().to_vec(),
        // The last group: every key of it is shorter than or below 5 x 0xff.
        None => vec![0xff; 5],
    }
}

/// The first key after every key that starts with `prefix` (for range deletes and iterator
/// bounds); `prefix` must not be all 0xff bytes.
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// A key in `raft_log`.
pub fn log_key(group: u32, index: u64) -> [u8; 12] {
    let mut key = [0u8; 12];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4..].copy_from_slice(&index.to_be_bytes());
    key
}

/// The log index of a `raft_log` key.
pub fn log_index(key: &[u8]) -> Option<u64> {
    key.get(4..12)?.try_into().ok().map(u64::from_be_bytes)
}

/// A key in `raft_meta` or `sm_meta`.
pub fn meta_key(group: u32, tag: u8) -> [u8; 5] {
    let mut key = [0u8; 5];
    key[..4].copy_from_slice(&group.to_be_bytes());
    key[4] = tag;
    key
}

/// The start of `space` in `group` (inclusive) in `sm_data`.
pub fn space_prefix(group: u32, space: Space) -> Vec<u8> {
    let mut key = group.to_be_bytes().to_vec();
    key.push(space as u8);
    key
}

/// The key of the stored row of one entity in one view version.
pub fn row_key(group: u32, project: &str, view: &str, version: u32, entity: &[u8]) -> Vec<u8> {
    let mut key = space_prefix(group, Space::Rows);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.extend_from_slice(view.as_bytes());
    key.push(0);
    key.extend_from_slice(&version.to_be_bytes());
    key.extend_from_slice(entity);
    key
}

/// The key of a producer's last applied sequence.
pub fn producer_key(group: u32, producer: &str) -> Vec<u8> {
    let mut key = space_prefix(group, Space::Producers);
    key.extend_from_slice(producer.as_bytes());
    key
}

/// The key of a producer in the recency index.
pub fn producer_activity_key(group: u32, last_index: u64, producer: &str) -> Vec<u8> {
    let mut key = space_prefix(group, Space::ProducerActivity);
    key.extend_from_slice(&last_index.to_be_bytes());
    key.extend_from_slice(producer.as_bytes());
    key
}

/// The (last index, producer id) of a recency-index key without its space prefix.
pub fn parse_producer_activity(rest: &[u8]) -> Option<(u64, String)> {
    let (index, producer) = rest.split_at_checked(8)?;
    Some((
        u64::from_be_bytes(index.try_into().ok()?),
        String::from_utf8(producer.to_vec()).ok()?,
    ))
}

/// The key of the producer count.
pub fn producer_count_key(group: u32) -> Vec<u8> {
    space_prefix(group, Space::ProducerCount)
}

/// The key of a source's producer clock.
pub fn source_clock_key(group: u32, project: &str, source: &str) -> Vec<u8> {
    let mut key = space_prefix(group, Space::SourceClocks);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.extend_from_slice(source.as_bytes());
    key
}

/// The key of a view version's state.
pub fn view_state_key(group: u32, project: &str, view: &str, version: u32) -> Vec<u8> {
    view_prefix(group, Space::Views, project, view, version)
}

/// The (project, view, version) of a view-state key without its space prefix.
pub fn parse_view_state(rest: &[u8]) -> Option<(String, String, u32)> {
    let (names, version) = rest.split_at_checked(rest.len().checked_sub(4)?)?;
    let names = std::str::from_utf8(names.strip_suffix(&[0])?).ok()?;
    let (project, view) = names.split_once('\0')?;
    Some((
        project.to_string(),
        view.to_string(),
        u32::from_be_bytes(version.try_into().ok()?),
    ))
}

/// The key of a source's view versions.
pub fn source_views_key(group: u32, project: &str, source: &str) -> Vec<u8> {
    let mut key = space_prefix(group, Space::SourceViews);
    key.extend_from_slice(project.as_bytes());
    key.push(0);
    key.extend_from_slice(source.as_bytes());
    key
}

/// The key recording that `node` was once a member.
pub fn known_node_key(group: u32, node: u64) -> Vec<u8> {
    let mut key = space_prefix(group, Space::KnownNodes);
    key.extend_from_slice(&node.to_be_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use quiver_proto::types::{value::Kind, Value};

    fn int(v: i64) -> Value {
        Value {
            kind: Some(Kind::Int64Value(v)),
        }
    }

    #[test]
    fn entity_keys_order_numerically_and_never_collide() {
        let a = encode_entity(&[int(-5)]).unwrap();
        let b = encode_entity(&[int(3)]).unwrap();
        let c = encode_entity(&[int(300)]).unwrap();
        assert!(a < b && b < c);
        let s = |t: &str| Value {
            kind: Some(Kind::StringValue(t.into())),
        };
        // ("ab", "c") and ("a", "bc") must differ.
        assert_ne!(
            encode_entity(&[s("ab"), s("c")]).unwrap(),
            encode_entity(&[s("a"), s("bc")]).unwrap()
        );
        let float = Value {
            kind: Some(Kind::Float64Value(1.0)),
        };
        assert_eq!(
            encode_entity(&[int(1), float]),
            Err(BadKeyValue {
                index: 1,
                kind: "float64"
            })
        );
    }

    #[test]
    fn groups_own_disjoint_ranges() {
        let last_of_1 = log_key(1, u64::MAX);
        assert!(last_of_1.as_slice() < group_end(1).as_slice());
        assert!(group_end(1).as_slice() <= log_key(2, 0).as_slice());
        assert!(row_key(1, "p", "v", 1, b"zzz").as_slice() < group_end(1).as_slice());
    }
}
