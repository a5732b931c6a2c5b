//! Compaction of the offline store: in a partition directory holding many small export files,
//! a run of consecutive files becomes one file named by the union of their log ranges; the
//! inputs are deleted after it is written. Readers skip files inside another file's range, so
//! a compaction stopped at any point never shows a row twice (see `quiver_lake::layout`).

use std::collections::BTreeMap;

use arrow_select::concat::concat_batches;
use quiver_lake::event_file::{read_parquet, write_parquet};
use quiver_lake::layout::{current_files, superseded_files, FileRange, ListedFile};
use quiver_lake::{Lake, LakeError, Path};

use crate::blocking::blocking;

/// Files at least this big are left alone.
const BIG_FILE_BYTES: u64 = 64 << 20;

/// Compacts every directory with at least `min_files` small files; returns the files written.
pub async fn compact(lake: &Lake, min_files: usize) -> Result<usize, LakeError> {
    let mut listed = lake.list(&Path::from("events")).await?;
    listed.extend(lake.list(&Path::from("sources")).await?);
    listed.extend(lake.list(&Path::from("quarantine")).await?);
    // What an interrupted compaction left behind.
    for path in superseded_files(listed.clone()) {
        lake.delete(&path).await?;
    }
    let mut by_dir: BTreeMap<String, Vec<ListedFile>> = BTreeMap::new();
    for file in current_files(listed) {
        let dir = file
            .path
            .as_ref()
            .rsplit_once('/')
            .map_or(String::new(), |(d, _)| d.to_string());
        by_dir.entry(dir).or_default().push(file);
    }
    let mut written = 0;
    for (dir, files) in by_dir {
        let small: Vec<&ListedFile> = files.iter().filter(|f| f.size < BIG_FILE_BYTES).collect();
        if small.len() < min_files.max(2) {
            continue;
        }
        // A run of consecutive small files (no big file between them).
        let run: Vec<&ListedFile> = files
            .iter()
            .skip_while(|f| f.size >= BIG_FILE_BYTES)
            .take_while(|f| f.size < BIG_FILE_BYTES)
            .collect();
        if run.len() < 2 {
            continue;
        }
        let range = FileRange {
            first: run[0].range.first,
            last: run[run.len() - 1].range.last,
        };
        // Decoding and encoding run where they do not hold up the runtime (`blocking`): a
        // directory's files take tens of milliseconds of CPU, which every RPC on the worker
        // would wait out.
        let mut batches = Vec::new();
        for file in &run {
            let bytes = lake.get(&file.path).await?;
            batches.extend(blocking(|| read_parquet(bytes, None)).map_err(|reason| {
                LakeError::File {
                    path: file.path.to_string(),
                    reason,
                }
            })?);
        }
        let Some(schema) = batches.first().map(|b| b.schema()) else {
            continue;
        };
        let target = Path::from(format!(
            "{dir}/{:020}-{:020}.parquet",
            range.first, range.last
        ));
        // Files of one directory share a schema unless a column's type was inferred
        // differently (an all-null column); such a directory is left as it is.
        let merged = match blocking(|| concat_batches(&schema, &batches)) {
            Ok(merged) => merged,
            Err(e) => {
                tracing::warn!(%dir, error = %e, "export files differ in schema; not compacted");
                continue;
            }
        };
        let bytes = blocking(|| write_parquet(&merged)).map_err(|reason| LakeError::File {
            path: target.to_string(),
            reason,
        })?;
        lake.put(&target, bytes).await?;
        for file in run {
            lake.delete(&file.path).await?;
        }
        written += 1;
    }
    Ok(written)
}
