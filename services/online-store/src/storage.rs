//! Opening the node's one RocksDB, shared by every Raft group on the node.

use std::path::Path;
use std::sync::Arc;

use quiver_core::aggregate::merge_stored;
use rocksdb::{ColumnFamilyDescriptor, MergeOperands, Options, SliceTransform, DB};

use crate::keys;

/// Opens (or creates) the database at `path` with the online store's column families and a
/// block cache of `block_cache_bytes` for the serving data.
pub fn open_db(path: &Path, block_cache_bytes: usize) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Point lookups dominate serving: bloom filters, and a block cache big enough for the hot
    // set (uncompressed blocks, so a hit costs no decompression). Index and filter blocks of L0
    // stay pinned so a lookup never re-reads them.
    //
    // Filters and indexes are partitioned (about 4 KiB per partition, the top level pinned): a
    // full filter of a 64 MiB file of tile records is 5-7 MiB, larger than a block-cache shard
    // (256 MiB / 64 shards), so the cache never kept it and every lookup touching the file
    // read and checksummed all of it again (perf: 60% of a node's CPU under 1 x 8 reads once a
    // windowed view held 3M events, and 20x fewer reads/s; docs/benchmarks.md).
    let mut data = Options::default();
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_block_cache(&rocksdb::Cache::new_lru_cache(block_cache_bytes)?);
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    table.set_index_type(rocksdb::BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);
    data.set_block_based_table_factory(&table);
    data.set_optimize_filters_for_hits(false);
    data.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Tiles and running records are merged inside RocksDB: apply writes each batch's partials
    // as merge operands and never reads. Only full merges, oldest operand first: partial
    // merges would regroup float additions differently on each replica.
    // Tile reads seek to one entity's buckets in one tile size and epoch: a prefix bloom over
    // (everything but the bucket) lets those seeks skip files and memtables without the entity.
    // Only tile keys are in the extractor's domain; every other iterator on `sm_data` reads in
    // total order (`ReadOptions::set_total_order_seek`).
    data.set_prefix_extractor(SliceTransform::create(
        "quiver-tile-entity-v1",
        tile_entity_prefix,
        Some(is_tile_key),
    ));
    data.set_memtable_prefix_bloom_ratio(0.05);
    data.set_merge_operator(
        "quiver-tile-records-v1",
        merge_tile_records,
        |_: &[u8], _: Option<&[u8]>, _: &MergeOperands| None,
    );
    // The log is written once and deleted soon: small memtables, and no compression (perf
    // showed snappy compressing log entries that are purged shortly after).
    let mut log = Options::default();
    log.set_write_buffer_size(16 << 20);
    log.set_compression_type(rocksdb::DBCompressionType::None);
    let descriptors = keys::ALL_CFS.iter().map(|name| {
        let cf_options = match *name {
            keys::CF_SM_DATA => data.clone(),
            keys::CF_RAFT_LOG => log.clone(),
            _ => Options::default(),
        };
        ColumnFamilyDescriptor::new(*name, cf_options)
    });
    Ok(Arc::new(DB::open_cf_descriptors(
        &options,
        path,
        descriptors,
    )?))
}

/// Turns RocksDB's performance counters off for the calling thread (call it on every thread
/// that reads or writes the store). They are on by default, per thread, and each count costs
/// thread-local lookups through the shared library (`__tls_get_addr` and the counters' TLS init
/// function): every key comparison of a memtable insert counts one, which was 5.2% of
/// `quiver dev`'s CPU under `user_txn` ingest, 1.8% after (perf, `docs/benchmarks.md`).
/// Nothing reads them.
pub fn without_perf_counters() {
    rocksdb::perf::set_perf_stats(rocksdb::perf::PerfStatsLevel::Disable);
}

/// RocksDB's full merge for `sm_data`: only tile and running records are ever merged.
fn merge_tile_records(
    _key: &[u8],
    existing: Option<&[u8]>,
    operands: &MergeOperands,
) -> Option<Vec<u8>> {
    Some(merge_stored(existing, operands))
}

/// A tile key without its bucket: the tile space, view version, tile size, epoch and entity.
fn tile_entity_prefix(key: &[u8]) -> &[u8] {
    &key[..key.len().saturating_sub(8)]
}

/// Whether `key` is a tile key (group, then the `Tiles` space byte, then more than a bucket).
fn is_tile_key(key: &[u8]) -> bool {
    key.len() > 13 && key[4] == keys::Space::Tiles as u8
}
