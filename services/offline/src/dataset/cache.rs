//! Loaded view data, kept per (partition, columns, transforms) and brought up to date when the
//! partition's files change: files exported since (log ranges after everything loaded) are read
//! and merged into the index (`extend.rs`); a compaction (a file replacing files already loaded)
//! changes nothing; anything else (files deleted by retention) loads the partition again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow_array::{ArrayRef, RecordBatch};
use futures::{StreamExt, TryStreamExt};
use quiver_common::view_feed::Statistics;
use quiver_core::Transform;
use quiver_lake::column_read::{parallel_reads, ParquetFile};
use quiver_lake::event_file::{ENTITY, EVENT_TIME, LOG_INDEX, ROW};
use quiver_lake::layout::{current_files, FileRange, ListedFile};
use quiver_lake::{Lake, LakeError, Partition};

use super::ViewData;
use crate::source_rows::{source_columns, view_rows};

/// What was loaded: a partition, the value columns read, and the transforms computed on read
/// (a source log read for several views is loaded once per view).
type LoadKey = (Partition, Vec<String>, String);

/// A loaded partition.
#[derive(Clone)]
struct Loaded {
    /// The files read.
    files: Vec<ListedFile>,
    data: Arc<ViewData>,
    /// The transforms' running statistics after the rows loaded (the source-log path), where
    /// the rows of later files continue from.
    statistics: Statistics,
}

/// Loaded view data, brought up to date when the partition's files change.
pub struct DataCache {
    lake: Lake,
    loaded: Mutex<HashMap<LoadKey, Loaded>>,
    /// Partitions whose completeness marker was seen (a marker is never taken back).
    complete: Mutex<std::collections::HashSet<Partition>>,
}

/// One load: what to read and how to make a version's rows of it.
struct Request<'a> {
    partition: &'a Partition,
    columns: &'a [String],
    transforms: Option<&'a [Transform]>,
}

impl DataCache {
    /// An empty cache over `lake`.
    pub fn new(lake: Lake) -> Self {
        Self {
            lake,
            loaded: Mutex::default(),
            complete: Mutex::default(),
        }
    }

    /// Whether `partition`'s rows are complete: a view version's `events/` rows are once the
    /// online store has written its marker (`Partition::complete_marker`: its backfill ended
    /// and was exported); every other partition always is.
    pub async fn is_complete(&self, partition: &Partition) -> Result<bool, LakeError> {
        let Some(marker) = partition.complete_marker() else {
            return Ok(true);
        };
        if self
            .complete
            .lock()
            .is_ok_and(|complete| complete.contains(partition))
        {
            return Ok(true);
        }
        match self.lake.get(&marker).await {
            Ok(_) => {
                if let Ok(mut complete) = self.complete.lock() {
                    complete.insert(partition.clone());
                }
                Ok(true)
            }
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The current rows of `partition`, with the value columns `columns` (a view version
    /// always asks for the same ones: its features' inputs). With `transforms`, `partition` is
    /// a source log and the rows are computed from it (`source_rows.rs`).
    pub async fn get(
        &self,
        partition: &Partition,
        columns: &[String],
        transforms: Option<&[Transform]>,
    ) -> Result<Arc<ViewData>, LakeError> {
        let request = Request {
            partition,
            columns,
            transforms,
        };
        // A file listed may be compacted away before it is read: list again.
        let mut attempts = 0;
        loop {
            match self.load(&request).await {
                Err(e) if e.is_not_found() && attempts < 5 => attempts += 1,
                other => return other,
            }
        }
    }

    async fn load(&self, request: &Request<'_>) -> Result<Arc<ViewData>, LakeError> {
        let key: LoadKey = (
            request.partition.clone(),
            request.columns.to_vec(),
            request
                .transforms
                .map_or_else(String::new, |t| format!("{t:?}")),
        );
        let files = current_files(self.lake.list(&request.partition.dir()).await?);
        let cached = self
            .loaded
            .lock()
            .ok()
            .and_then(|loaded| loaded.get(&key).cloned());
        let updated = match cached {
            Some(cached) if cached.files == files => {
                crate::metrics::count_load("cached");
                return Ok(cached.data);
            }
            Some(cached) => match appended(&cached.files, &files) {
                Some(new) => self.extend(request, cached, new, &files).await?,
                None => None,
            },
            None => None,
        };
        let loaded = match updated {
            Some(loaded) => {
                crate::metrics::count_load("extended");
                loaded
            }
            None => {
                crate::metrics::count_load("full");
                let all: Vec<&ListedFile> = files.iter().collect();
                let mut statistics = Statistics::new();
                let data = match request.transforms {
                    // Transforms make a version's rows from all their inputs at once.
                    Some(transforms) if !transforms.is_empty() => {
                        let chunks = self.read(request, &all).await?;
                        let chunks = version_rows(request, chunks, &mut statistics)?;
                        blocking(request, move || ViewData::index(chunks)).await?
                    }
                    _ => self.index_by_column(request, &all).await?,
                };
                Loaded {
                    files: files.clone(),
                    data: Arc::new(data),
                    statistics,
                }
            }
        };
        let data = loaded.data.clone();
        if let Ok(mut cache) = self.loaded.lock() {
            cache.insert(key, loaded);
        }
        Ok(data)
    }

    /// `cached` with the rows of `new` merged in; `None` when they cannot be merged.
    async fn extend(
        &self,
        request: &Request<'_>,
        mut cached: Loaded,
        new: Vec<&ListedFile>,
        files: &[ListedFile],
    ) -> Result<Option<Loaded>, LakeError> {
        let chunks = self.read(request, &new).await?;
        let chunks = version_rows(request, chunks, &mut cached.statistics)?;
        let previous = cached.data.clone();
        let extended = blocking(request, move || previous.extend(&chunks)).await?;
        Ok(extended.map(|data| {
            cached.data = Arc::new(data);
            cached.files = files.to_vec();
            cached
        }))
    }

    /// Indexes the rows of `files` a column at a time: the metadata columns first (they give
    /// the order), then each value column read, reordered and kept, as many at a time as the
    /// machine has cores. A cold load of every column at once held the whole view twice (read
    /// and reordered) at its peak.
    async fn index_by_column(
        &self,
        request: &Request<'_>,
        files: &[&ListedFile],
    ) -> Result<ViewData, LakeError> {
        // Every future here owns what it uses (one borrowing `files` or `self` is not `Send`
        // for every lifetime the service's stream needs). Footers are read once.
        let files = open_files(&self.lake, files).await?;
        let metadata = read_files(
            self.lake.clone(),
            files.clone(),
            &METADATA.map(String::from),
        )
        .await?;
        // Each file's batches' rows: a file without a value column reads as nulls there.
        let rows: Arc<Vec<Vec<usize>>> = Arc::new(
            metadata
                .iter()
                .map(|batches| batches.iter().map(RecordBatch::num_rows).collect())
                .collect(),
        );
        let chunks: Vec<RecordBatch> = metadata.into_iter().flatten().collect();
        let (mut data, order) = blocking(request, move || ViewData::index_rows(&chunks)).await?;
        let order = Arc::new(order);
        let (lake, dir) = (self.lake.clone(), request.partition.dir().to_string());
        // Owned names: a stream over an iterator borrowing the request is not `Send` either.
        let names: Vec<String> = request.columns.to_vec();
        let columns = names.into_iter().map(move |name| {
            let (lake, files, rows, order) =
                (lake.clone(), files.clone(), rows.clone(), order.clone());
            let dir = dir.clone();
            async move {
                let read = read_files(lake, files, std::slice::from_ref(&name)).await?;
                tokio::task::spawn_blocking(move || {
                    ViewData::sorted_column(&name, read, &rows, &order)
                        .map(|column| column.map(|c| (name, c)))
                })
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
                .map_err(|reason| LakeError::File { path: dir, reason })
            }
        });
        let parallel = parallel_reads();
        let sorted: Vec<Option<(String, ArrayRef)>> = futures::stream::iter(columns)
            .buffered(parallel)
            .try_collect()
            .await?;
        for (name, column) in sorted.into_iter().flatten() {
            data.add_column(name, column);
        }
        Ok(data)
    }

    /// The record batches of `files`, projected to what the request reads.
    async fn read(
        &self,
        request: &Request<'_>,
        files: &[&ListedFile],
    ) -> Result<Vec<RecordBatch>, LakeError> {
        let mut wanted: Vec<String> = METADATA.map(String::from).to_vec();
        match request.transforms {
            Some(transforms) => wanted.extend(source_columns(transforms, request.columns)),
            None => wanted.extend(request.columns.iter().cloned()),
        }
        let files = open_files(&self.lake, files).await?;
        Ok(read_files(self.lake.clone(), files, &wanted)
            .await?
            .into_iter()
            .flatten()
            .collect())
    }
}

/// Reads the footers of `files`, as many at once as the machine has cores.
async fn open_files(
    lake: &Lake,
    files: &[&ListedFile],
) -> Result<Arc<Vec<ParquetFile>>, LakeError> {
    let parallel = parallel_reads();
    let opens: Vec<_> = files
        .iter()
        .map(|f| (lake.clone(), f.path.clone(), f.size))
        .collect();
    let opens = opens
        .into_iter()
        .map(|(lake, path, size)| async move { ParquetFile::open(&lake, &path, size).await });
    let opened = futures::stream::iter(opens)
        .buffered(parallel)
        .try_collect()
        .await?;
    Ok(Arc::new(opened))
}

/// The columns `wanted` of each of `files`, in file order. Files are read a column at a time
/// (never a whole file in memory beside what it decodes to), each with as many columns at once
/// as the machine has cores, and as many files at once.
async fn read_files(
    lake: Lake,
    files: Arc<Vec<ParquetFile>>,
    wanted: &[String],
) -> Result<Vec<Vec<RecordBatch>>, LakeError> {
    let parallel = parallel_reads();
    let wanted = Arc::new(wanted.to_vec());
    let reads = (0..files.len()).map(|i| {
        let (lake, files, wanted) = (lake.clone(), files.clone(), wanted.clone());
        async move { files[i].read(&lake, Some(&wanted), parallel).await }
    });
    futures::stream::iter(reads)
        .buffered(parallel)
        .try_collect()
        .await
}

/// The metadata columns every exported row has.
const METADATA: [&str; 4] = [ENTITY, EVENT_TIME, LOG_INDEX, ROW];

/// The version's rows of `chunks` read for `request`: the source log's rows through the
/// version's transforms, continuing from `statistics`, or the rows as they are.
fn version_rows(
    request: &Request<'_>,
    chunks: Vec<RecordBatch>,
    statistics: &mut Statistics,
) -> Result<Vec<RecordBatch>, LakeError> {
    Ok(match request.transforms {
        // Without transforms the source log's rows are the version's rows as they are.
        Some(transforms) if !transforms.is_empty() && !chunks.is_empty() => {
            vec![view_rows(&chunks, transforms, request.columns, statistics)
                .map_err(|reason| failed(request, reason))?]
        }
        _ => chunks,
    })
}

/// Runs `work` (indexing sorts every row) on a blocking thread.
async fn blocking<T: Send + 'static>(
    request: &Request<'_>,
    work: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, LakeError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r)
        .map_err(|reason| failed(request, reason))
}

fn failed(request: &Request<'_>, reason: String) -> LakeError {
    LakeError::File {
        path: request.partition.dir().to_string(),
        reason,
    }
}

/// The files of `files` not in `loaded`, when the change since is an append: every new file
/// lies after everything loaded, or inside what was loaded in its directory (a compaction), and
/// every loaded file that is gone is covered by the files now there (compacted, not deleted).
/// `None` otherwise.
fn appended<'a>(loaded: &[ListedFile], files: &'a [ListedFile]) -> Option<Vec<&'a ListedFile>> {
    let last = loaded.iter().map(|f| f.range.last).max().unwrap_or(0);
    let mut new = Vec::new();
    for file in files {
        if loaded.contains(file) {
            continue;
        }
        if file.range.first > last {
            new.push(file);
        } else if !covered(file, loaded) {
            return None;
        }
    }
    loaded
        .iter()
        .filter(|f| !files.contains(f))
        .all(|gone| covered(gone, files))
        .then_some(new)
}

/// Whether `file`'s range lies within the union of the ranges of `others` in its directory.
fn covered(file: &ListedFile, others: &[ListedFile]) -> bool {
    let dir = |f: &ListedFile| {
        f.path
            .as_ref()
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| d.to_string())
    };
    let here = dir(file);
    let mut ranges: Vec<FileRange> = others
        .iter()
        .filter(|o| dir(o) == here)
        .map(|o| o.range)
        .collect();
    ranges.sort();
    let mut next = file.range.first;
    for range in ranges {
        if range.first > next {
            break;
        }
        next = next.max(range.last.saturating_add(1));
        if next > file.range.last {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn file(dir: &str, first: u64, last: u64) -> ListedFile {
        let range = FileRange { first, last };
        ListedFile {
            path: quiver_lake::Path::from(format!("{dir}/{first:020}-{last:020}.parquet")),
            range,
            size: 1,
        }
    }

    /// A view version's `events/` rows are complete once its marker is there; a source log
    /// always is.
    #[tokio::test]
    async fn events_are_complete_once_marked() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(&dir.path().display().to_string()).unwrap();
        let cache = DataCache::new(lake.clone());
        let events = Partition::Events {
            project: "p".into(),
            source: "s".into(),
            view: "v".into(),
            version: 2,
        };
        let source = Partition::Source {
            project: "p".into(),
            source: "s".into(),
        };
        assert!(cache.is_complete(&source).await.unwrap());
        assert!(!cache.is_complete(&events).await.unwrap());
        let marker = events.complete_marker().unwrap();
        assert_eq!(
            marker.as_ref(),
            "events/project=p/source=s/view=v/version=2/_complete"
        );
        lake.put(&marker, Vec::new()).await.unwrap();
        assert!(cache.is_complete(&events).await.unwrap());
    }

    #[test]
    fn appends_and_compactions_extend_and_deletions_reload() {
        let loaded = vec![file("d=1", 1, 5), file("d=1", 6, 9), file("d=2", 6, 9)];
        // New ranges after everything loaded: only they are read.
        let mut now = loaded.clone();
        now.push(file("d=2", 10, 12));
        now.push(file("d=3", 10, 12));
        assert_eq!(appended(&loaded, &now).unwrap().len(), 2);
        // A compaction of d=1 plus a new range: the compacted file is not read again.
        let now = vec![file("d=1", 1, 9), file("d=2", 6, 9), file("d=2", 10, 12)];
        let new = appended(&loaded, &now).unwrap();
        assert_eq!(new.iter().map(|f| f.range.first).collect::<Vec<_>>(), [10]);
        // d=1 deleted by retention: everything is loaded again.
        let now = vec![file("d=2", 6, 9), file("d=2", 10, 12)];
        assert!(appended(&loaded, &now).is_none());
        // A file inside the loaded ranges of another directory is not an append.
        let now = [loaded.clone(), vec![file("d=3", 6, 9)]].concat();
        assert!(appended(&loaded, &now).is_none());
    }
}
