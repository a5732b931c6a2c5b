//! Reading a Parquet file of the offline store a column at a time: its footer, then each
//! column's chunks by byte range, decoded on blocking threads a few at once.
//!
//! Reading the whole file first held its bytes (about the size of everything decoded from
//! it) beside the decoded arrays until the last column was decoded: a cold snapshot of a
//! million-event view peaked at 95 MiB more than it needed (`docs/benchmarks.md`). Read a
//! column at a time, a file costs its decoded arrays plus the chunks in flight, and its columns
//! decode in parallel even when it is the only file.

use std::ops::Range;
use std::sync::Arc;

use arrow_array::{ArrayRef, RecordBatch};
use arrow_schema::{Field, Schema};
use bytes::{Buf, Bytes};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;
use parquet::errors::ParquetError;
use parquet::file::reader::{ChunkReader, Length};

use crate::event_file::{contain_panics, READ_BATCH_ROWS};
use crate::{Lake, LakeError};

/// The bytes read of the footer first: the footer and its 8-byte trailer of most files.
const FOOTER_GUESS: u64 = 64 << 10;

/// How many reads (files, or columns of one file) to run at once: the machine's cores, 2 when
/// they cannot be counted. Decoding Parquet is most of a read's time.
pub fn parallel_reads() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}

/// Reads the columns named in `columns` (every column when `None`; names the file lacks are
/// skipped) of the Parquet file at `path`, `size` bytes long, as record batches of
/// [`READ_BATCH_ROWS`] rows with the columns in file order (what
/// [`crate::event_file::read_parquet`] gives for the whole file's bytes). At most `parallel`
/// columns are fetched and decoded at once.
pub async fn read_columns(
    lake: &Lake,
    path: &Path,
    size: u64,
    columns: Option<&[String]>,
    parallel: usize,
) -> Result<Vec<RecordBatch>, LakeError> {
    ParquetFile::open(lake, path, size)
        .await?
        .read(lake, columns, parallel)
        .await
}

/// A Parquet file whose footer was read: its columns can be read one by one without reading
/// the footer again (a reader of one column at a time across many files).
#[derive(Clone)]
pub struct ParquetFile {
    path: Path,
    metadata: ArrowReaderMetadata,
    /// The end of the file as read for the footer (a file smaller than that, whole).
    tail: Ranges,
}

impl ParquetFile {
    /// Reads the footer of the Parquet file at `path`, `size` bytes long.
    pub async fn open(lake: &Lake, path: &Path, size: u64) -> Result<Self, LakeError> {
        let malformed = |reason: String| malformed(path, reason);
        if size < 12 {
            return Err(malformed(format!(
                "{size} bytes is too short for a Parquet file"
            )));
        }
        let tail_start = size.saturating_sub(FOOTER_GUESS);
        let mut tail = Ranges::new(size);
        tail.add(tail_start, lake.get_range(path, tail_start..size).await?);
        let footer_length = footer_length(&tail, size).map_err(&malformed)?;
        let footer_start = size
            .checked_sub(8 + footer_length)
            .ok_or_else(|| malformed(format!("a footer of {footer_length} bytes in {size}")))?;
        if footer_start < tail_start {
            tail = Ranges::new(size);
            tail.add(
                footer_start,
                lake.get_range(path, footer_start..size).await?,
            );
        }
        let metadata = contain_panics(|| {
            ArrowReaderMetadata::load(&tail, ArrowReaderOptions::new()).map_err(|e| e.to_string())
        })
        .map_err(&malformed)?;
        Ok(Self {
            path: path.clone(),
            metadata,
            tail,
        })
    }

    /// Reads the columns named in `columns` (see [`read_columns`]).
    pub async fn read(
        &self,
        lake: &Lake,
        columns: Option<&[String]>,
        parallel: usize,
    ) -> Result<Vec<RecordBatch>, LakeError> {
        let path = &self.path;
        let roots: Vec<usize> = self
            .metadata
            .parquet_schema()
            .root_schema()
            .get_fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| columns.is_none_or(|names| names.iter().any(|n| n == f.name())))
            .map(|(root, _)| root)
            .collect();
        let reads = roots.into_iter().map(|root| {
            let (metadata, mut file) = (self.metadata.clone(), self.tail.clone());
            async move {
                let ranges = chunk_ranges(&metadata, root, file.size)
                    .map_err(|reason| malformed(path, reason))?;
                // A small file was read whole with its footer.
                let missing: Vec<Range<u64>> =
                    ranges.into_iter().filter(|r| !file.holds(r)).collect();
                if !missing.is_empty() {
                    let fetched = lake.get_ranges(path, &missing).await?;
                    for (range, bytes) in missing.iter().zip(fetched) {
                        file.add(range.start, bytes);
                    }
                }
                tokio::task::spawn_blocking(move || decode_root(file, metadata, root))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|decoded| decoded)
                    .map_err(|reason| malformed(path, reason))
            }
        });
        let decoded: Vec<(Arc<Field>, Vec<ArrayRef>)> = futures::stream::iter(reads)
            .buffered(parallel.max(1))
            .try_collect()
            .await?;
        assemble(decoded).map_err(|reason| malformed(path, reason))
    }
}

fn malformed(path: &Path, reason: String) -> LakeError {
    LakeError::File {
        path: path.to_string(),
        reason: format!("malformed Parquet: {reason}"),
    }
}

/// The byte ranges of root column `root`'s chunks (its leaves' in every row group), checked
/// against the file's `size`: a footer is input, and a range outside the file is refused before
/// anything is fetched (the parquet crate's own accessor panics on a negative offset).
fn chunk_ranges(
    metadata: &ArrowReaderMetadata,
    root: usize,
    size: u64,
) -> Result<Vec<Range<u64>>, String> {
    let schema = metadata.parquet_schema();
    let mut ranges = Vec::new();
    for group in metadata.metadata().row_groups() {
        for (leaf, chunk) in group.columns().iter().enumerate() {
            if leaf >= schema.num_columns() || schema.get_column_root_idx(leaf) != root {
                continue;
            }
            let start = chunk
                .dictionary_page_offset()
                .unwrap_or_else(|| chunk.data_page_offset());
            let range = u64::try_from(start)
                .ok()
                .zip(u64::try_from(chunk.compressed_size()).ok())
                .and_then(|(start, length)| Some(start..start.checked_add(length)?))
                .filter(|range| range.end <= size)
                .ok_or_else(|| {
                    format!(
                        "column {:?} has a chunk at {start} of {} bytes, outside the file's {size}",
                        chunk.column_path().string(),
                        chunk.compressed_size()
                    )
                })?;
            ranges.push(range);
        }
    }
    Ok(ranges)
}

/// The length of the file's footer, from its trailer (the last 8 bytes).
fn footer_length(tail: &Ranges, size: u64) -> Result<u64, String> {
    let trailer = tail
        .get_bytes(size.saturating_sub(8), 8)
        .map_err(|e| e.to_string())?;
    if trailer.len() < 8 || &trailer[4..] != b"PAR1" {
        return Err("no Parquet trailer (PAR1) at the end".into());
    }
    Ok(u64::from(u32::from_le_bytes([
        trailer[0], trailer[1], trailer[2], trailer[3],
    ])))
}

/// One root column of the file decoded: its field and one array per batch.
fn decode_root(
    file: Ranges,
    metadata: ArrowReaderMetadata,
    root: usize,
) -> Result<(Arc<Field>, Vec<ArrayRef>), String> {
    contain_panics(|| {
        let mask = ProjectionMask::roots(metadata.parquet_schema(), [root]);
        let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata)
            .with_projection(mask)
            .with_batch_size(READ_BATCH_ROWS)
            .build()
            .map_err(|e| e.to_string())?;
        let field = arrow_array::RecordBatchReader::schema(&reader)
            .fields()
            .first()
            .cloned()
            .ok_or("a projected column has no field")?;
        let arrays = reader
            .map(|batch| {
                batch
                    .map(|b| b.column(0).clone())
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<_, _>>()?;
        Ok((field, arrays))
    })
}

/// Record batches of the decoded columns, side by side (every column was cut into batches of
/// the same rows: same row groups, same batch size).
fn assemble(decoded: Vec<(Arc<Field>, Vec<ArrayRef>)>) -> Result<Vec<RecordBatch>, String> {
    let Some(batches) = decoded.first().map(|(_, arrays)| arrays.len()) else {
        return Ok(Vec::new());
    };
    let schema = Arc::new(Schema::new(
        decoded.iter().map(|(f, _)| f.clone()).collect::<Vec<_>>(),
    ));
    let mut columns: Vec<std::vec::IntoIter<ArrayRef>> = Vec::with_capacity(decoded.len());
    for (field, arrays) in decoded {
        if arrays.len() != batches {
            return Err(format!(
                "column {:?} decoded into {} batches, the first column into {batches}",
                field.name(),
                arrays.len()
            ));
        }
        columns.push(arrays.into_iter());
    }
    (0..batches)
        .map(|_| {
            let arrays = columns.iter_mut().filter_map(Iterator::next).collect();
            RecordBatch::try_new(schema.clone(), arrays).map_err(|e| e.to_string())
        })
        .collect()
}

/// Some byte ranges of a file (the rest never read): what a decoder of one column needs.
#[derive(Clone)]
struct Ranges {
    size: u64,
    /// (start, bytes), in the order added; few (a footer and a column's chunks).
    parts: Vec<(u64, Bytes)>,
}

impl Ranges {
    fn new(size: u64) -> Self {
        Self {
            size,
            parts: Vec::new(),
        }
    }

    fn add(&mut self, start: u64, bytes: Bytes) {
        self.parts.push((start, bytes));
    }

    /// Whether `range` lies inside one part.
    fn holds(&self, range: &Range<u64>) -> bool {
        self.parts
            .iter()
            .any(|(at, bytes)| *at <= range.start && range.end <= at + bytes.len() as u64)
    }

    /// The bytes from `start` to the end of the part holding it.
    fn from(&self, start: u64) -> parquet::errors::Result<Bytes> {
        self.parts
            .iter()
            .find(|(at, bytes)| *at <= start && start < at + bytes.len() as u64)
            .map(|(at, bytes)| bytes.slice((start - at) as usize..))
            .ok_or_else(|| ParquetError::General(format!("byte {start} of the file was not read")))
    }
}

impl Length for Ranges {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Ranges {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.from(start)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        let bytes = self.from(start)?;
        if bytes.len() < length {
            return Err(ParquetError::EOF(format!(
                "{length} bytes at {start}: the range read ends after {}",
                bytes.len()
            )));
        }
        Ok(bytes.slice(..length))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::event_file::read_parquet;
    use arrow_array::{Float64Array, Int64Array, StringArray};
    use parquet::arrow::ArrowWriter;
    use parquet::file::properties::WriterProperties;

    /// A file of `rows` rows in row groups of `group_rows`: an int, a string with nulls and a
    /// float column.
    fn file(rows: usize, group_rows: usize) -> Vec<u8> {
        let batch = RecordBatch::try_from_iter([
            (
                "id",
                Arc::new(Int64Array::from_iter_values(0..rows as i64)) as ArrayRef,
            ),
            (
                "name",
                Arc::new(StringArray::from_iter(
                    (0..rows).map(|i| (i % 7 != 0).then(|| format!("n{i}"))),
                )) as ArrayRef,
            ),
            (
                "x",
                Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|i| i as f64 / 3.0),
                )) as ArrayRef,
            ),
        ])
        .unwrap();
        let properties = WriterProperties::builder()
            .set_max_row_group_row_count(Some(group_rows))
            .build();
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).unwrap();
        writer.write(&batch).unwrap();
        writer.into_inner().unwrap()
    }

    async fn lake_with(bytes: Vec<u8>) -> (tempfile::TempDir, Lake, Path, u64) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path().to_str().unwrap()).unwrap();
        let path = Path::from("f.parquet");
        let size = bytes.len() as u64;
        lake.put(&path, bytes).await.unwrap();
        (dir, lake, path, size)
    }

    #[tokio::test]
    async fn columns_read_by_range_equal_the_whole_file_read() {
        // Several row groups, batches crossing them, and a file of one small group.
        for (rows, group_rows) in [(200_000, 70_000), (10, 1_024)] {
            let bytes = file(rows, group_rows);
            let whole = read_parquet(Bytes::from(bytes.clone()), None).unwrap();
            let (_dir, lake, path, size) = lake_with(bytes.clone()).await;
            let by_range = read_columns(&lake, &path, size, None, 2).await.unwrap();
            assert_eq!(by_range, whole);
            let names = ["x".to_string(), "id".to_string(), "missing".to_string()];
            let some = read_columns(&lake, &path, size, Some(&names), 1)
                .await
                .unwrap();
            let projected =
                read_parquet(Bytes::from(bytes), Some(&["x", "id", "missing"])).unwrap();
            assert_eq!(some, projected);
            assert_eq!(some[0].schema().field(0).name(), "id");
        }
    }

    #[test]
    fn a_chunk_the_footer_places_outside_the_file_is_refused() {
        let bytes = Bytes::from(file(200_000, 70_000));
        let metadata = ArrowReaderMetadata::load(&bytes, Default::default()).unwrap();
        let size = bytes.len() as u64;
        for root in 0..3 {
            let ranges = chunk_ranges(&metadata, root, size).unwrap();
            assert_eq!(ranges.len(), 3, "a chunk per row group");
            assert!(ranges.iter().all(|r| r.start < r.end && r.end <= size));
        }
        // A footer that places a chunk past the end (a file cut short, or a footer that lies):
        // that column is refused, by name, before anything is fetched.
        let x = chunk_ranges(&metadata, 2, size).unwrap();
        let error = chunk_ranges(&metadata, 2, x[2].end - 1).unwrap_err();
        assert!(
            error.contains("column \"x\"") && error.contains("outside the file"),
            "{error}"
        );
        assert!(
            chunk_ranges(&metadata, 2, x[2].end).is_ok(),
            "a chunk may end the file"
        );
    }

    #[tokio::test]
    async fn a_file_that_is_not_parquet_is_an_error_naming_it() {
        for bytes in [b"not parquet at all".to_vec(), b"PAR1".to_vec(), Vec::new()] {
            let (_dir, lake, path, size) = lake_with(bytes).await;
            let error = read_columns(&lake, &path, size, None, 2)
                .await
                .unwrap_err()
                .to_string();
            assert!(
                error.contains("f.parquet") && error.contains("malformed"),
                "{error}"
            );
        }
        // A footer claiming more bytes than the file has.
        let mut bytes = file(10, 1_024);
        let n = bytes.len();
        bytes[n - 8..n - 4].copy_from_slice(&u32::MAX.to_le_bytes());
        let (_dir, lake, path, size) = lake_with(bytes).await;
        let error = read_columns(&lake, &path, size, None, 2)
            .await
            .unwrap_err()
            .to_string();
        assert!(error.contains("malformed"), "{error}");
    }
}
