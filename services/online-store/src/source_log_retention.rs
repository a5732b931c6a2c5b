//! Retention of the source log: a source with `log_retention` keeps the date partitions of its
//! source log (`sources/project=P/source=S/date=D/`) from the date `log_retention` before today
//! (UTC) on; older partitions are deleted whole by the leader, after compaction. Sources without
//! it keep everything. Online tiles are not affected (they follow the watermark); a backfill
//! started later folds what the source log still holds.

use quiver_common::registry_cache::Catalog;
use quiver_lake::layout::date_of;
use quiver_lake::{Lake, LakeError, Partition, Path};

/// Deletes every source's expired partitions as of `now_micros`; the files deleted.
pub async fn enforce(lake: &Lake, catalog: &Catalog, now_micros: i64) -> Result<usize, LakeError> {
    let mut deleted = 0;
    for (project, name) in catalog.sources() {
        let Some(keep) = catalog.source(project, name).and_then(|s| s.log_retention) else {
            continue;
        };
        let keep = i64::try_from(keep.as_micros()).unwrap_or(i64::MAX);
        let first_kept = date_of(now_micros.saturating_sub(keep));
        let dir = Partition::Source {
            project: project.to_string(),
            source: name.to_string(),
        }
        .dir();
        let listed = lake.list(&dir).await?;
        for path in expired(listed.iter().map(|(path, _)| path), &first_kept) {
            lake.delete(path).await?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// The files in date partitions before `first_kept` (`YYYY-MM-DD`, which orders as text).
fn expired<'a>(paths: impl Iterator<Item = &'a Path>, first_kept: &str) -> Vec<&'a Path> {
    paths
        .filter(|path| {
            path.as_ref()
                .split('/')
                .find_map(|part| part.strip_prefix("date="))
                .is_some_and(|date| date < first_kept)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_before_the_first_kept_date_expire() {
        let paths: Vec<Path> = [
            "sources/project=p/source=s/date=2026-11-30/00000000000000000001-00000000000000000009.parquet",
            "sources/project=p/source=s/date=2026-12-03/00000000000000000001-00000000000000000009.parquet",
            "sources/project=p/source=s/date=2026-12-04/00000000000000000010-00000000000000000019.parquet",
            "sources/project=p/source=s/date=2026-12-06/00000000000000000010-00000000000000000019.parquet",
        ]
        .into_iter()
        .map(Path::from)
        .collect();
        let gone: Vec<String> = expired(paths.iter(), "2026-12-04")
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(gone, [paths[0].to_string(), paths[1].to_string()]);
    }
}
