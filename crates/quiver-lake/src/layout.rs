//! Where exported files go and how they are named.
//!
//! ```text
//! events/project=P/source=S/view=V/version=N/date=YYYY-MM-DD/<first>-<last>.parquet
//! quarantine/project=P/source=S/date=YYYY-MM-DD/<first>-<last>.parquet
//! events/project=P/source=S/view=V/version=N/_complete   (the version's rows are complete)
//! ```
//!
//! `<first>-<last>` is the range of Raft log indexes the file holds (20 digits each, so names
//! sort numerically). An export that is retried, or redone by the next leader after a crash,
//! covers the same range and so writes the same name: it replaces the file, never duplicates
//! it. Compaction writes one file spanning several consecutive ranges before deleting them;
//! until it has, a reader skips every file whose range lies inside another's in the same
//! directory, so each row is read exactly once at every moment.

use std::collections::BTreeMap;

use object_store::path::Path;

/// The name of a view version's completeness marker ([`Partition::complete_marker`]).
pub const COMPLETE_MARKER: &str = "_complete";

/// The events of one view version, or the quarantine log of one source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Partition {
    /// Rows a view version aggregated (admitted, not excluded).
    Events {
        /// The project.
        project: String,
        /// The view's source.
        source: String,
        /// The view.
        view: String,
        /// The view version.
        version: u32,
    },
    /// The source log: every admitted event of a source (whatever its views did with it), with
    /// its columns as pushed, event time and log position — the system of record that any view
    /// version, including one defined later, is computed from.
    Source {
        /// The project.
        project: String,
        /// The source.
        source: String,
    },
    /// Rows kept out: rejected as late, or excluded from a view as anomalous.
    Quarantine {
        /// The project.
        project: String,
        /// The source.
        source: String,
    },
}

impl Partition {
    /// The directory of the partition (every date under it).
    pub fn dir(&self) -> Path {
        match self {
            Self::Events {
                project,
                source,
                view,
                version,
            } => Path::from(format!(
                "events/project={project}/source={source}/view={view}/version={version}"
            )),
            Self::Source { project, source } => {
                Path::from(format!("sources/project={project}/source={source}"))
            }
            Self::Quarantine { project, source } => {
                Path::from(format!("quarantine/project={project}/source={source}"))
            }
        }
    }

    /// The marker the online store writes once a view version's exported rows are complete
    /// (its backfill, if it had one, has ended and been exported); snapshots of a version whose
    /// rows are read from `events/` refuse to run without it. Only [`Self::Events`] has one.
    pub fn complete_marker(&self) -> Option<Path> {
        matches!(self, Self::Events { .. })
            .then(|| Path::from(format!("{}/{COMPLETE_MARKER}", self.dir())))
    }

    /// The file holding log range `range` of this partition for `date`.
    pub fn file(&self, date: &str, range: FileRange) -> Path {
        Path::from(format!(
            "{}/date={date}/{:020}-{:020}.parquet",
            self.dir(),
            range.first,
            range.last
        ))
    }
}

/// A range of Raft log indexes, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FileRange {
    /// The first log index.
    pub first: u64,
    /// The last log index.
    pub last: u64,
}

impl FileRange {
    /// The range a file's name says it holds (`None`: not an export file).
    pub fn of_path(path: &Path) -> Option<Self> {
        let name = path.filename()?.strip_suffix(".parquet")?;
        let (first, last) = name.split_once('-')?;
        let range = Self {
            first: first.parse().ok()?,
            last: last.parse().ok()?,
        };
        (range.first <= range.last).then_some(range)
    }

    fn contains(&self, other: &FileRange) -> bool {
        self.first <= other.first && other.last <= self.last
    }
}

/// The UTC date (`YYYY-MM-DD`) of a time in microseconds: the date partition of an event.
pub fn date_of(micros: i64) -> String {
    let days = micros.div_euclid(86_400_000_000);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// An export file as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedFile {
    /// Its path.
    pub path: Path,
    /// The log range it holds.
    pub range: FileRange,
    /// Its size in bytes.
    pub size: u64,
}

/// Of the files listed, those a reader uses: per directory, every file not inside another
/// file's range (in range order). Files whose names are not ranges are ignored.
pub fn current_files(listed: impl IntoIterator<Item = (Path, u64)>) -> Vec<ListedFile> {
    let mut by_dir: BTreeMap<String, Vec<ListedFile>> = BTreeMap::new();
    for (path, size) in listed {
        let Some(range) = FileRange::of_path(&path) else {
            continue;
        };
        let dir = path
            .as_ref()
            .rsplit_once('/')
            .map_or("", |(d, _)| d)
            .to_string();
        by_dir
            .entry(dir)
            .or_default()
            .push(ListedFile { path, range, size });
    }
    let mut current = Vec::new();
    for (_, mut files) in by_dir {
        // Widest first among equal starts, so a compacted file wins over what it replaced.
        files.sort_by(|a, b| {
            (a.range.first, std::cmp::Reverse(a.range.last))
                .cmp(&(b.range.first, std::cmp::Reverse(b.range.last)))
        });
        let mut kept: Vec<ListedFile> = Vec::new();
        for file in files {
            if kept.iter().any(|k| k.range.contains(&file.range)) {
                continue;
            }
            kept.push(file);
        }
        current.extend(kept);
    }
    current
}

/// Of the files listed, those a reader skips (inside another file's range): what compaction
/// left behind if it stopped before deleting them.
pub fn superseded_files(listed: Vec<(Path, u64)>) -> Vec<Path> {
    let current: Vec<Path> = current_files(listed.clone())
        .into_iter()
        .map(|f| f.path)
        .collect();
    listed
        .into_iter()
        .map(|(p, _)| p)
        .filter(|p| FileRange::of_path(p).is_some() && !current.contains(p))
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn file(dir: &str, first: u64, last: u64) -> (Path, u64) {
        let partition = Partition::Quarantine {
            project: "p".into(),
            source: dir.into(),
        };
        (partition.file("2026-11-29", FileRange { first, last }), 1)
    }

    #[test]
    fn dates_are_utc_calendar_days() {
        assert_eq!(date_of(0), "1970-01-01");
        assert_eq!(date_of(-1), "1969-12-31");
        // 2026-11-29T01:00:00Z
        assert_eq!(date_of(1_795_914_000_000_000), "2026-11-29");
        assert_eq!(date_of(951_782_400_000_000), "2000-02-29");
    }

    #[test]
    fn names_round_trip_and_sort_by_range() {
        let (path, _) = file("s", 7, 1_234);
        assert_eq!(
            path.as_ref(),
            "quarantine/project=p/source=s/date=2026-11-29/00000000000000000007-00000000000000001234.parquet"
        );
        assert_eq!(
            FileRange::of_path(&path),
            Some(FileRange {
                first: 7,
                last: 1_234
            })
        );
        assert_eq!(FileRange::of_path(&Path::from("x/notes.txt")), None);
    }

    #[test]
    fn a_compacted_file_hides_what_it_replaced_until_they_are_deleted() {
        let listed = vec![
            file("s", 1, 10),
            file("s", 11, 20),
            file("s", 1, 20), // compacted, inputs not yet deleted
            file("s", 21, 30),
            file("t", 1, 10), // another directory
        ];
        let current: Vec<(u64, u64)> = current_files(listed.clone())
            .into_iter()
            .map(|f| (f.range.first, f.range.last))
            .collect();
        assert_eq!(current, vec![(1, 20), (21, 30), (1, 10)]);
        let superseded = superseded_files(listed);
        assert_eq!(superseded.len(), 2);
        assert!(superseded.iter().all(|p| p.as_ref().contains("source=s/")));
    }
}
