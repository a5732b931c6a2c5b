//! One view version's exported rows, loaded from the offline store and indexed for
//! point-in-time lookups: rows sorted by (entity, event time, ingest order), each entity's rows
//! one contiguous range. Values stay in the Arrow arrays they were read into.

use std::collections::HashMap;
use std::ops::Range;

use arrow_array::cast::AsArray;
use arrow_array::types::{UInt32Type, UInt64Type};
use arrow_array::{Array, ArrayRef, RecordBatch, UInt32Array};
use quiver_core::aggregate::FxBuildHasher;
use quiver_core::Scalar;
use quiver_lake::columns::{array_of, scalar_at, value_type};
use quiver_lake::event_file::{ENTITY, EVENT_TIME, LOG_INDEX, ROW};

mod cache;
mod extend;
mod order;

pub use cache::DataCache;
use order::Ordered;

/// A view version's rows, indexed.
pub struct ViewData {
    /// Per entity key: its id, the index of its rows' range in `ranges`.
    ids: EntityIds,
    /// Per entity id: its rows' range in the sorted arrays.
    ranges: Vec<(u32, u32)>,
    /// Event times, sorted within each entity.
    event_micros: Vec<i64>,
    /// Ingest order: `log index << 32 | row in entry`, the `first`/`last` tie-break.
    sequence: Vec<u64>,
    /// The value columns, in sorted order: an entity's values sit together, next to its
    /// times (a lookup touches a few cache lines, not one per chunk indirection).
    columns: HashMap<String, ArrayRef>,
}

/// Entity keys to dense ids. Keys of up to 15 bytes (one int64 is 9, a short string key
/// fits too) are packed into a `u128` with their length: no allocation per key and no pointer
/// to chase on a lookup (a `Vec<u8>` map spent most of a snapshot's lookups on cache misses).
///
/// The short keys are kept sorted, with their ids (`sorted`, rebuilt by `seal` after ids are
/// added): a snapshot looks up a whole batch of entity rows by sorting their keys and walking
/// both lists once, instead of one random probe of a table bigger than the CPU's caches per
/// row (which was a third of a warm snapshot's CPU). The hash map that gives ids while rows
/// are indexed is dropped once sealed (it held every short key a second time) and rebuilt
/// from `sorted` when rows are added again.
#[derive(Default, Clone)]
struct EntityIds {
    /// Short keys to ids while ids are given; empty once sealed.
    short: HashMap<u128, u32, FxBuildHasher>,
    long: HashMap<Vec<u8>, u32, FxBuildHasher>,
    sorted: Vec<(u128, u32)>,
    /// How many ids were given.
    count: u32,
}

impl EntityIds {
    fn pack(key: &[u8]) -> Option<u128> {
        (key.len() < 16).then(|| {
            let mut bytes = [0u8; 16];
            bytes[..key.len()].copy_from_slice(key);
            bytes[15] = key.len() as u8;
            u128::from_le_bytes(bytes)
        })
    }

    fn len(&self) -> usize {
        self.count as usize
    }

    #[cfg(test)]
    fn get(&self, key: &[u8]) -> Option<u32> {
        match Self::pack(key) {
            Some(packed) => self.short.get(&packed).copied().or_else(|| {
                let at = self.sorted.partition_point(|(k, _)| *k < packed);
                self.sorted
                    .get(at)
                    .filter(|(k, _)| *k == packed)
                    .map(|(_, id)| *id)
            }),
            None => self.long.get(key).copied(),
        }
    }

    /// Rebuilds `sorted` (after ids were added) and drops the map that gave them. Without a
    /// map (no short key was looked up since the last seal) `sorted` is already whole.
    fn seal(&mut self) {
        if self.short.is_empty() {
            return;
        }
        self.sorted = std::mem::take(&mut self.short).into_iter().collect();
        self.sorted.sort_unstable_by_key(|(k, _)| *k);
    }

    /// The ids of `keys` (rows without a key, or with one not indexed, left out), as
    /// `id << 32 | row`, sorted: rows in the order their entities' data lies in memory.
    fn locate<'k>(&self, keys: impl Iterator<Item = (u32, &'k [u8])>) -> Vec<u64> {
        let mut found = Vec::new();
        let mut packed: Vec<(u128, u32)> = Vec::new();
        for (row, key) in keys {
            match Self::pack(key) {
                Some(p) => packed.push((p, row)),
                None => {
                    if let Some(id) = self.long.get(key) {
                        found.push(u64::from(*id) << 32 | u64::from(row));
                    }
                }
            }
        }
        packed.sort_unstable_by_key(|(k, _)| *k);
        // A few keys against many entities: a binary search each; otherwise one merge walk.
        let search = packed.len().saturating_mul(16) < self.sorted.len();
        let mut at = 0;
        for (key, row) in packed {
            at += if search {
                self.sorted[at..].partition_point(|(k, _)| *k < key)
            } else {
                self.sorted[at..]
                    .iter()
                    .take_while(|(k, _)| *k < key)
                    .count()
            };
            match self.sorted.get(at) {
                Some((k, id)) if *k == key => found.push(u64::from(*id) << 32 | u64::from(row)),
                Some(_) => {}
                None => break,
            }
        }
        found.sort_unstable();
        found
    }

    fn id_or_insert(&mut self, key: &[u8]) -> u32 {
        let next = self.count;
        let id = match Self::pack(key) {
            Some(packed) => {
                if self.short.is_empty() && !self.sorted.is_empty() {
                    // Sealed before: ids are given again (rows added to an index).
                    self.short = self.sorted.iter().copied().collect();
                }
                // One probe per row: the index build looks up every row's key.
                *self.short.entry(packed).or_insert(next)
            }
            // A long key is copied only when it is new.
            None => match self.long.get(key) {
                Some(id) => *id,
                None => *self.long.entry(key.to_vec()).or_insert(next),
            },
        };
        if id == next {
            self.count += 1;
        }
        id
    }
}

/// A value column of the view's rows (`None`: no file has it, every value null).
pub struct ColumnRef(Option<ArrayRef>);

impl ColumnRef {
    /// The column in sorted row order, if any file has it.
    pub fn array(&self) -> Option<&ArrayRef> {
        self.0.as_ref()
    }
}

impl ViewData {
    /// Indexes the rows of `chunks` (record batches of exported event files).
    pub fn index(chunks: Vec<RecordBatch>) -> Result<Self, String> {
        let (mut data, order) = Self::index_rows(&chunks)?;
        data.columns = sorted_columns(chunks, Some(&order))?;
        Ok(data)
    }

    /// The index of the rows of `chunks` (only their metadata columns are read) without any
    /// value column, and the order value columns go in ([`ViewData::sorted_column`]).
    pub fn index_rows(chunks: &[RecordBatch]) -> Result<(Self, UInt32Array), String> {
        let mut ids = EntityIds::default();
        let ordered = Ordered::of(chunks, &mut ids)?;
        ids.seal();
        let data = Self {
            ids,
            ranges: ordered.starts.windows(2).map(|w| (w[0], w[1])).collect(),
            event_micros: ordered.event_micros,
            sequence: ordered.sequence,
            columns: HashMap::new(),
        };
        Ok((data, UInt32Array::from(ordered.rows)))
    }

    /// Value column `name` from its record batches per file (`read[f]` one single-column batch
    /// per batch of file `f`'s rows, or none where the file lacks the column: nulls there),
    /// `rows[f]` the row counts of file `f`'s batches as [`ViewData::index_rows`] read them,
    /// reordered by `order`. `None` when no file has the column.
    pub fn sorted_column(
        name: &str,
        read: Vec<Vec<RecordBatch>>,
        rows: &[Vec<usize>],
        order: &UInt32Array,
    ) -> Result<Option<ArrayRef>, String> {
        let Some(data_type) = read
            .iter()
            .flatten()
            .find_map(|b| b.columns().first().map(|c| c.data_type().clone()))
        else {
            return Ok(None);
        };
        let mut parts = Vec::new();
        for (batches, rows) in read.into_iter().zip(rows) {
            if batches.is_empty() {
                parts.extend(
                    rows.iter()
                        .map(|&n| arrow_array::new_null_array(&data_type, n)),
                );
                continue;
            }
            if batches.len() != rows.len() {
                return Err(format!(
                    "column {name:?} was read in {} batches where its file has {}",
                    batches.len(),
                    rows.len()
                ));
            }
            parts.extend(batches.iter().filter_map(|b| b.columns().first().cloned()));
        }
        let column = ColumnParts {
            name: name.to_string(),
            parts,
        };
        column.sorted(Some(order)).map(Some)
    }

    /// Adds value column `name` (in sorted row order).
    pub fn add_column(&mut self, name: String, array: ArrayRef) {
        self.columns.insert(name, array);
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.event_micros.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.event_micros.is_empty()
    }

    /// The rows of `entity` (positions in sorted order); snapshots use [`ViewData::locate`].
    #[cfg(test)]
    pub fn entity(&self, entity: &[u8]) -> Option<Range<usize>> {
        let (start, end) = self.ranges.get(self.ids.get(entity)? as usize)?;
        Some(*start as usize..*end as usize)
    }

    /// The rows of each entity of `keys` (`keys[i]` is entity row `i`) that has any, as
    /// (entity row, its rows' positions), in the order the entities' rows lie in memory.
    pub fn locate<'k>(
        &self,
        keys: impl Iterator<Item = (u32, &'k [u8])>,
    ) -> impl Iterator<Item = (usize, Range<usize>)> + '_ {
        self.ids.locate(keys).into_iter().filter_map(|found| {
            let (start, end) = *self.ranges.get((found >> 32) as usize)?;
            Some((found as u32 as usize, start as usize..end as usize))
        })
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
        ColumnRef(self.columns.get(name).cloned())
    }

    /// The value of `column` at sorted row `position`.
    pub fn value(&self, column: &ColumnRef, position: usize) -> Option<Scalar> {
        scalar_at(column.0.as_ref()?.as_ref(), position)
    }
}

/// Metadata column `name` of an exported batch.
fn column<'c>(chunk: &'c RecordBatch, name: &str) -> Result<&'c ArrayRef, String> {
    chunk
        .column_by_name(name)
        .ok_or_else(|| format!("an export file has no {name} column"))
}

/// Each row's ingest order in `chunk`: `log index << 32 | row in entry`.
pub(crate) fn sequences(chunk: &RecordBatch) -> Result<Vec<u64>, String> {
    let log_index = column(chunk, LOG_INDEX)?
        .as_primitive_opt::<UInt64Type>()
        .ok_or("bad _log_index type")?;
    let row = column(chunk, ROW)?
        .as_primitive_opt::<UInt32Type>()
        .ok_or("bad _row type")?;
    Ok((0..chunk.num_rows())
        .map(|i| (log_index.value(i) << 32) | u64::from(row.value(i)))
        .collect())
}

/// Every value column of `chunks` (all but the metadata), rows reordered as `order` (row
/// numbers across the chunks; `None`: in arrival order). Files of one view version share their
/// columns' types.
///
/// The batches are taken apart: a column read is freed as soon as it is reordered, not held
/// until every column is.
fn sorted_columns(
    chunks: Vec<RecordBatch>,
    order: Option<&UInt32Array>,
) -> Result<HashMap<String, ArrayRef>, String> {
    let metadata = [ENTITY, EVENT_TIME, LOG_INDEX, ROW];
    let mut names: Vec<(String, arrow_schema::DataType)> = Vec::new();
    for chunk in &chunks {
        for field in chunk.schema().fields() {
            if !metadata.contains(&field.name().as_str())
                && !names.iter().any(|(n, _)| n == field.name())
            {
                names.push((field.name().clone(), field.data_type().clone()));
            }
        }
    }
    // Columns are independent: reordered on as many threads as the machine has cores, each
    // thread owning the parts of its columns.
    let parallel = std::thread::available_parallelism().map_or(2, usize::from);
    let mut groups: Vec<Vec<ColumnParts>> =
        (0..parallel.min(names.len())).map(|_| Vec::new()).collect();
    for (i, (name, data_type)) in names.into_iter().enumerate() {
        let parts = chunks
            .iter()
            .map(|c| {
                c.column_by_name(&name)
                    .cloned()
                    .unwrap_or_else(|| arrow_array::new_null_array(&data_type, c.num_rows()))
            })
            .collect();
        let group = i % groups.len();
        groups[group].push(ColumnParts { name, parts });
    }
    drop(chunks);
    let sorted: Vec<Result<(String, ArrayRef), String>> = std::thread::scope(|scope| {
        let threads: Vec<_> = groups
            .into_iter()
            .map(|group| {
                scope.spawn(move || {
                    group
                        .into_iter()
                        .map(|column| {
                            let name = column.name.clone();
                            Ok((name, column.sorted(order)?))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| vec![Err("reordering a column panicked".to_string())])
            })
            .collect()
    });
    sorted.into_iter().collect()
}

/// One value column, as the read batches hold it.
struct ColumnParts {
    name: String,
    /// One array per batch (all null where a batch has no such column).
    parts: Vec<ArrayRef>,
}

impl ColumnParts {
    /// The column whole, rows reordered as `indices` (if given); the parts are freed on the
    /// way.
    fn sorted(self, indices: Option<&UInt32Array>) -> Result<ArrayRef, String> {
        let refs: Vec<&dyn Array> = self.parts.iter().map(|a| a.as_ref()).collect();
        let all = match arrow_select::concat::concat(&refs) {
            Ok(all) => all,
            // A column that held only nulls in some export range was typed by a fallback
            // there: rebuild it from its values, typed by the first value.
            Err(_) => {
                let values: Vec<Option<Scalar>> = refs
                    .iter()
                    .flat_map(|a| (0..a.len()).map(|row| scalar_at(*a, row)))
                    .collect();
                let value_type = values
                    .iter()
                    .flatten()
                    .next()
                    .map_or(quiver_core::ValueType::Float64, value_type);
                array_of(&values, value_type)
            }
        };
        drop(refs);
        drop(self.parts);
        let Some(indices) = indices else {
            return Ok(all);
        };
        arrow_select::take::take(all.as_ref(), indices, None)
            .map_err(|e| format!("column {:?}: {e}", self.name))
    }
}
