//! Opening the node's one RocksDB, shared by every Raft group on the node.

use std::path::Path;
use std::sync::Arc;

use rocksdb::{ColumnFamilyDescriptor, Options, DB};

use crate::keys;

/// Opens (or creates) the database at `path` with the online store's column families.
pub fn open_db(path: &Path) -> Result<Arc<DB>, rocksdb::Error> {
    let mut options = Options::default();
    options.create_if_missing(true);
    options.create_missing_column_families(true);
    options.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // Point lookups dominate serving: keep a bloom filter on the data.
    let mut data = Options::default();
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_bloom_filter(10.0, false);
    table.set_cache_index_and_filter_blocks(true);
    data.set_block_based_table_factory(&table);
    data.set_compression_type(rocksdb::DBCompressionType::Lz4);
    // The log is written once and deleted soon: small memtables.
    let mut log = Options::default();
    log.set_write_buffer_size(16 << 20);
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
