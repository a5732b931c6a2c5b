//! One view version's exported rows, loaded from the offline store and indexed for
//! point-in-time lookups: rows sorted by (entity, event time, ingest order), each entity's rows
//! one contiguous range. Values stay in the Arrow arrays they were read into.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use arrow_array::cast::AsArray;
use arrow_array::types::{TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch};
use quiver_core::aggregate::FxBuildHasher;
use quiver_core::Scalar;
use quiver_lake::columns::scalar_at;
use quiver_lake::event_file::{read_parquet, ENTITY, EVENT_TIME, LOG_INDEX, ROW};
use quiver_lake::layout::{current_files, ListedFile};
use quiver_lake::{Lake, LakeError, Partition};

/// A view version's rows, indexed.
pub struct ViewData {
    /// Per entity key: its rows' range in the sorted arrays.
    entities: HashMap<Vec<u8>, (u32, u32), FxBuildHasher>,
    /// Event times, sorted within each entity.
    event_micros: Vec<i64>,
    /// Ingest order: `log index << 32 | row in entry`, the `first`/`last` tie-break.
    sequence: Vec<u64>,
    /// Where each sorted row's values are: `chunk << 32 | row in chunk`.
    address: Vec<u64>,
    chunks: Vec<RecordBatch>,
}

/// A column of the view's rows, resolved per chunk (`None` where a chunk lacks it).
pub struct ColumnRef(Vec<Option<ArrayRef>>);

impl ViewData {
    /// Indexes the rows of `chunks` (record batches of exported event files).
    pub fn index(chunks: Vec<RecordBatch>) -> Result<Self, String> {
        let total: usize = chunks.iter().map(RecordBatch::num_rows).sum();
        let mut ids: HashMap<Vec<u8>, u32, FxBuildHasher> = HashMap::default();
        let mut keys: Vec<Vec<u8>> = Vec::new();
        // (entity id, event time, sequence, address), sorted below.
        let mut rows: Vec<(u32, i64, u64, u64)> = Vec::with_capacity(total);
        for (c, chunk) in chunks.iter().enumerate() {
            let column = |name: &str| {
                chunk
                    .column_by_name(name)
                    .ok_or_else(|| format!("an export file has no {name} column"))
            };
            let entity = column(ENTITY)?
                .as_binary_opt::<i32>()
                .ok_or("bad _entity type")?;
            let event = column(EVENT_TIME)?
                .as_primitive_opt::<TimestampMicrosecondType>()
                .ok_or("bad _event_time type")?;
            let log_index = column(LOG_INDEX)?
                .as_primitive_opt::<UInt64Type>()
                .ok_or("bad _log_index type")?;
            let row = column(ROW)?
                .as_primitive_opt::<UInt32Type>()
                .ok_or("bad _row type")?;
            for i in 0..chunk.num_rows() {
                let key = entity.value(i);
                let id = match ids.get(key) {
                    Some(id) => *id,
                    None => {
                        let id = keys.len() as u32;
                        ids.insert(key.to_vec(), id);
                        keys.push(key.to_vec());
                        id
                    }
                };
                rows.push((
                    id,
                    event.value(i),
                    (log_index.value(i) << 32) | u64::from(row.value(i)),
                    ((c as u64) << 32) | i as u64,
                ));
            }
        }
        rows.sort_unstable();
        let mut entities: HashMap<Vec<u8>, (u32, u32), FxBuildHasher> =
            HashMap::with_capacity_and_hasher(keys.len(), FxBuildHasher::default());
        let mut start = 0;
        while start < rows.len() {
            let id = rows[start].0;
            let end = start + rows[start..].partition_point(|r| r.0 == id);
            entities.insert(
                std::mem::take(&mut keys[id as usize]),
                (start as u32, end as u32),
            );
            start = end;
        }
        Ok(Self {
            entities,
            event_micros: rows.iter().map(|r| r.1).collect(),
            sequence: rows.iter().map(|r| r.2).collect(),
            address: rows.iter().map(|r| r.3).collect(),
            chunks,
        })
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.event_micros.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.event_micros.is_empty()
    }

    /// The rows of `entity` (positions in sorted order).
    pub fn entity(&self, entity: &[u8]) -> Option<Range<usize>> {
        self.entities
            .get(entity)
            .map(|(s, e)| *s as usize..*e as usize)
    }

    /// The event time of sorted row `position`.
    pub fn event_micros(&self, position: usize) -> i64 {
        self.event_micros[position]
    }

    /// The event times of sorted rows `range`.
    pub fn event_times(&self, range: Range<usize>) -> &[i64] {
        &self.event_micros[range]
    }

    /// The ingest order of sorted row `position`.
    pub fn sequence(&self, position: usize) -> u64 {
        self.sequence[position]
    }

    /// Resolves column `name` (a column no file has reads as all null).
    pub fn column(&self, name: &str) -> ColumnRef {
        ColumnRef(
            self.chunks
                .iter()
                .map(|c| c.column_by_name(name).cloned())
                .collect(),
        )
    }

    /// The value of `column` at sorted row `position`.
    pub fn value(&self, column: &ColumnRef, position: usize) -> Option<Scalar> {
        let address = self.address[position];
        let array = column.0.get((address >> 32) as usize)?.as_ref()?;
        scalar_at(array.as_ref(), (address & 0xffff_ffff) as usize)
    }

    /// Whether `column` is null at sorted row `position` (cheaper than reading the value).
    pub fn is_null(&self, column: &ColumnRef, position: usize) -> bool {
        let address = self.address[position];
        column
            .0
            .get((address >> 32) as usize)
            .and_then(Option::as_ref)
            .is_none_or(|a| a.is_null((address & 0xffff_ffff) as usize))
    }
}

/// A partition's data and the files it was loaded from.
type Loaded = (Vec<ListedFile>, Arc<ViewData>);

/// Loaded view data, reloaded when the partition's files change (an export or compaction).
pub struct DataCache {
    lake: Lake,
    loaded: Mutex<HashMap<Partition, Loaded>>,
}

impl DataCache {
    /// An empty cache over `lake`.
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            loaded: Mutex::default(),
        }
    }

    /// The current rows of `partition`.
    pub async fn get(&self, partition: &Partition) -> Result<Arc<ViewData>, LakeError> {
        // A file listed may be compacted away before it is read: list again.
        let mut attempts = 0;
        loop {
            match self.load(partition).await {
                Err(e) if e.is_not_found() && attempts < 5 => attempts += 1,
                other => return other,
            }
        }
    }

    async fn load(&self, partition: &Partition) -> Result<Arc<ViewData>, LakeError> {
        let files = current_files(self.lake.list(&partition.dir()).await?);
        if let Ok(loaded) = self.loaded.lock() {
            if let Some((listed, data)) = loaded.get(partition) {
                if *listed == files {
                    return Ok(data.clone());
                }
            }
        }
        let mut chunks = Vec::new();
        for file in &files {
            let bytes = self.lake.get(&file.path).await?;
            let path = file.path.to_string();
            let batches = tokio::task::spawn_blocking(move || read_parquet(bytes, None))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map_err(|reason| LakeError::File { path, reason })?;
            chunks.extend(batches);
        }
        let data = tokio::task::spawn_blocking(move || ViewData::index(chunks))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
            .map_err(|reason| LakeError::File {
                path: partition.dir().to_string(),
                reason,
            })?;
        let data = Arc::new(data);
        if let Ok(mut loaded) = self.loaded.lock() {
            loaded.insert(partition.clone(), (files, data.clone()));
        }
        Ok(data)
    }
}
