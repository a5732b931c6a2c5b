//! What `quiver push` and `quiver load` send: a file's events (or, for a load, every Parquet
//! object under an object-store prefix), read twice and never held whole. The first pass checks
//! every row as ingest will (bad rows, all of them named, stop everything before anything is
//! sent) and works out the rows' identity and each producer's share; the second hands each producer its batches through a
//! bounded channel, so memory stays at a few batches per producer however large the file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context};
use quiver::send::Share;
use quiver_core::{Entity, Source};
use quiver_ingest::config::IngestConfig;
use quiver_ingest::validate::RowChecker;
use quiver_lake::{Lake, Path as LakePath};
use quiver_proto::ingest::Row;
use tokio::sync::mpsc;

use super::event_files::{
    open_csv, open_jsonl, open_parquet, open_parquet_from, Chunk, EventReader,
};
use crate::cli::PushFormat;

/// Batches read ahead per producer, beyond the one it is sending.
const READ_AHEAD: usize = 2;

/// Bad rows the first pass names in its error (it counts them all).
const BAD_ROWS_SHOWN: usize = 20;

/// What a reading pass does with each chunk: the reader (its columns, where its rows are) and
/// the chunk; `false` stops the reading.
type Visit<'a> = &'a mut dyn FnMut(&dyn EventReader, Chunk) -> anyhow::Result<bool>;

/// Where the events are.
pub enum Input {
    /// A local file in one format.
    File { path: PathBuf, format: PushFormat },
    /// Every `*.parquet` object under a prefix or a local directory, in key order, as one
    /// table; other objects (a `_SUCCESS` marker, a README, a `.crc` file) are skipped.
    Prefix {
        url: String,
        lake: Lake,
        objects: Vec<LakePath>,
    },
}

impl Input {
    /// A local file, its format from `format` or its extension.
    pub fn file(path: &Path, format: Option<PushFormat>) -> anyhow::Result<Self> {
        let format = match format {
            Some(format) => format,
            None => match path.extension().and_then(|e| e.to_str()) {
                Some("csv") => PushFormat::Csv,
                Some("jsonl" | "ndjson" | "json") => PushFormat::Jsonl,
                Some("parquet") => PushFormat::Parquet,
                _ => bail!(
                    "cannot tell the format of {} from its extension; pass --format jsonl|csv|parquet",
                    path.display()
                ),
            },
        };
        Ok(Input::File {
            path: path.to_path_buf(),
            format,
        })
    }

    /// The Parquet objects under an object-store prefix (`s3://bucket/orders/`) or a local
    /// directory.
    pub async fn prefix(url: &str) -> anyhow::Result<Self> {
        let base = url.trim_end_matches('/');
        let lake = Lake::open(base)?;
        let mut objects: Vec<LakePath> = lake
            .list(&LakePath::from(""))
            .await
            .with_context(|| format!("listing {url}"))?
            .into_iter()
            .map(|(path, _)| path)
            .filter(|path| path.as_ref().ends_with(".parquet"))
            .collect();
        objects.sort();
        anyhow::ensure!(
            !objects.is_empty(),
            "--file {url}: no Parquet objects (*.parquet) under this prefix"
        );
        Ok(Input::Prefix {
            url: base.to_string(),
            lake,
            objects,
        })
    }

    /// What the input is, for messages: the file's path or the prefix's URL.
    fn describe(&self) -> String {
        match self {
            Input::File { path, .. } => path.display().to_string(),
            Input::Prefix { url, .. } => url.clone(),
        }
    }

    /// Reads every row in order, handing `visit` the reader and a chunk of rows at a time
    /// until it answers `false`. Blocking: call it off the async runtime (a prefix's objects are
    /// fetched one at a time through `runtime`).
    fn read(
        &self,
        source: &Source,
        runtime: &tokio::runtime::Handle,
        visit: Visit<'_>,
    ) -> anyhow::Result<()> {
        match self {
            Input::File { path, format } => {
                let reader = match format {
                    PushFormat::Jsonl => open_jsonl(path, source)?,
                    PushFormat::Csv => open_csv(path, source)?,
                    PushFormat::Parquet => open_parquet(path, source)?,
                };
                drain(reader, visit).map(|_| ())
            }
            Input::Prefix { url, lake, objects } => {
                let mut first: Option<Vec<String>> = None;
                for path in objects {
                    let name = format!("{url}/{path}");
                    let bytes = runtime
                        .block_on(lake.get(path))
                        .with_context(|| format!("reading {name}"))?;
                    let reader = open_parquet_from(bytes, &name, source)?;
                    let columns = reader.columns().to_vec();
                    match &first {
                        Some(first) if *first != columns => bail!(
                            "{name}: columns {columns:?} differ from {first:?} of the prefix's first object"
                        ),
                        Some(_) => {}
                        None => first = Some(columns),
                    }
                    if !drain(Box::new(reader), visit)? {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Hands every chunk of `reader` to `visit`, the first one empty (so even a file without rows
/// says what its columns are); whether it read to the end.
fn drain(mut reader: Box<dyn EventReader>, visit: Visit<'_>) -> anyhow::Result<bool> {
    if !visit(&*reader, Chunk::default())? {
        return Ok(false);
    }
    while let Some(chunk) = reader.next_chunk()? {
        if !visit(&*reader, chunk)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// How the rows are split over producers: by a hash of the entity's join keys, keeping file
/// order within each, so every producer's stream spans the file's whole time range in order
/// (its rows are late exactly when they are late in the file) and one entity's events keep
/// their order.
#[derive(Clone)]
pub struct Split {
    /// The entity's join key columns.
    pub key_names: Vec<String>,
    /// Producers.
    pub parts: usize,
}

impl Split {
    /// The producer of `row`, whose join keys are at `key_columns`.
    fn part_of(&self, key_columns: &[usize], row: &Row) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &c in key_columns {
            let encoded = row.values.get(c).map(prost::Message::encode_to_vec);
            for byte in encoded.unwrap_or_default() {
                hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
            }
        }
        (hash % self.parts.max(1) as u64) as usize
    }

    /// Where the join keys are among `columns`.
    fn key_columns(&self, columns: &[String]) -> Vec<usize> {
        self.key_names
            .iter()
            .filter_map(|k| columns.iter().position(|c| c == k))
            .collect()
    }
}

/// The identity of a push or a load: a 128-bit FNV-1a hash of the project (as given), source,
/// columns and encoded rows as read (the same file, wherever it is, is the same push or load;
/// the Python client's `load()` computes the same for the same rows).
pub struct Identity(u128);

impl Identity {
    const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013B;

    /// The hash of the project, source and columns, before any row.
    pub fn new(project: &str, source: &str, columns: &[String]) -> Self {
        let mut identity = Identity(0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        identity.feed(project.as_bytes());
        identity.feed(source.as_bytes());
        for column in columns {
            identity.feed(column.as_bytes());
        }
        identity
    }

    /// Adds the next row.
    pub fn add(&mut self, row: &Row) {
        self.feed(&prost::Message::encode_to_vec(row));
    }

    /// The hash so far.
    pub fn value(&self) -> u128 {
        self.0
    }

    fn feed(&mut self, bytes: &[u8]) {
        // The length first, so fields cannot run into each other.
        for byte in (bytes.len() as u64).to_le_bytes().iter().chain(bytes) {
            self.0 = (self.0 ^ u128::from(*byte)).wrapping_mul(Self::PRIME);
        }
    }
}

/// One reading of the input: the rows seen so far, their identity, and where the join keys are
/// among the input's columns (known once the first reader opens).
struct Pass {
    columns: Vec<String>,
    rows: u64,
    identity: Identity,
    keys: Vec<usize>,
}

impl Pass {
    /// Counts and hashes `row`; its producer.
    fn take(&mut self, split: &Split, row: &Row) -> usize {
        self.rows += 1;
        self.identity.add(row);
        split.part_of(&self.keys, row)
    }
}

/// The rows the first pass could not send: how many, and the first few as "where: why".
#[derive(Default)]
struct BadRows {
    count: u64,
    shown: Vec<String>,
}

impl BadRows {
    fn add(&mut self, why: String) {
        self.count += 1;
        if self.shown.len() < BAD_ROWS_SHOWN {
            self.shown.push(why);
        }
    }

    /// An error naming the bad rows of `input`, if there are any.
    fn refuse(self, input: &str) -> anyhow::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        let mut message = match self.count {
            1 => format!("{input}: a bad row; nothing was sent. Fix it and run again:"),
            n => format!("{input}: {n} bad rows; nothing was sent. Fix them and run again:"),
        };
        for why in &self.shown {
            message.push_str("\n  ");
            message.push_str(why);
        }
        let more = self.count - self.shown.len() as u64;
        if more > 0 {
            message.push_str(&format!("\n  ... and {more} more"));
        }
        bail!(message)
    }
}

/// What the first pass found.
pub struct Survey {
    /// The input's columns.
    pub columns: Vec<String>,
    /// Its rows.
    pub rows: u64,
    /// Their identity.
    pub identity: u128,
    /// Rows per producer.
    pub per_part: Vec<u64>,
}

/// The input changed between the pass that checked it and the pass that sends it. Rows are
/// sent only while they are the ones checked (valid, and no more per producer than counted),
/// so what was sent before the change was seen was checked.
#[derive(Debug)]
pub struct InputChanged(String);

impl std::fmt::Display for InputChanged {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the input changed while it was sent ({}): what was sent before the change was \
             seen is kept under the first reading's identity, and the changed input is another \
             push or load, which sends those rows again; leave an input unchanged while it is \
             pushed or loaded",
            self.0
        )
    }
}

impl std::error::Error for InputChanged {}

/// The events to send: where they are, whose they are and how they are split.
#[derive(Clone)]
pub struct Events {
    /// Where they are.
    pub input: Arc<Input>,
    /// The source, whose schema types them.
    pub source: Arc<Source>,
    /// Its entity, whose join keys every row needs.
    pub entity: Arc<Entity>,
    /// The project, as given (part of the identity).
    pub project: String,
    /// The split over producers.
    pub split: Split,
    /// Ingest's bound on event times (none: ingest alone checks them).
    pub future: Option<FutureBound>,
}

/// How far ahead of ingest's clock an event time may be, as ingest said, and when it said so.
#[derive(Debug, Clone, Copy)]
pub struct FutureBound {
    /// Ingest's clock when asked, microseconds.
    ingest_now: i64,
    /// Its allowed skew, microseconds.
    skew: i64,
    /// When it was asked, on this process's clock.
    asked: Instant,
}

impl FutureBound {
    pub fn new(ingest_now: i64, skew_micros: i64) -> Self {
        Self {
            ingest_now,
            skew: skew_micros.max(0),
            asked: Instant::now(),
        }
    }

    /// The latest event time ingest accepts now, by its clock (moved on by the time since it
    /// was asked): rows are sent after they are checked, when ingest's bound is later still.
    fn latest(&self) -> i64 {
        let since = i64::try_from(self.asked.elapsed().as_micros()).unwrap_or(i64::MAX);
        self.ingest_now
            .saturating_add(since)
            .saturating_add(self.skew)
    }

    /// Ingest's limits with this skew (its message names it).
    fn limits(&self) -> IngestConfig {
        IngestConfig {
            max_future_skew: std::time::Duration::from_micros(self.skew as u64),
            ..IngestConfig::default()
        }
    }
}

impl Events {
    /// A reading of an input with `columns`.
    fn pass(&self, columns: &[String]) -> Pass {
        Pass {
            columns: columns.to_vec(),
            rows: 0,
            identity: Identity::new(&self.project, &self.source.name, columns),
            keys: self.split.key_columns(columns),
        }
    }

    /// The first pass: every row read and checked as ingest checks it (its values' types, the
    /// join keys and event time present), counted per producer and hashed. Bad rows do not stop
    /// it: they are all counted and the first [`BAD_ROWS_SHOWN`] named in its error, so one
    /// run shows what to fix. With `progress`, a line on stderr counts the rows read.
    pub async fn survey(&self, progress: bool) -> anyhow::Result<Survey> {
        let this = self.clone();
        let read = Arc::new(AtomicU64::new(0));
        let counter = read.clone();
        let runtime = tokio::runtime::Handle::current();
        let pass = tokio::task::spawn_blocking(move || {
            let mut pass: Option<Pass> = None;
            let mut checker: Option<RowChecker<'_>> = None;
            let mut bad = BadRows::default();
            let mut per_part = vec![0; this.split.parts.max(1)];
            // Event times ahead of ingest's clock by more than its skew, as ingest said both.
            let (latest, limits) = match &this.future {
                Some(bound) => (bound.latest(), bound.limits()),
                None => (i64::MAX, IngestConfig::default()),
            };
            this.input
                .read(&this.source, &runtime, &mut |reader, chunk| {
                    let pass = pass.get_or_insert_with(|| this.pass(reader.columns()));
                    let checker = match &mut checker {
                        Some(checker) => checker,
                        None => checker.insert(
                            RowChecker::new(
                                &this.source,
                                &this.entity,
                                reader.columns(),
                                latest,
                                &limits,
                            )
                            .map_err(|e| anyhow::anyhow!("{}: {e}", this.input.describe()))?,
                        ),
                    };
                    let mut refused = chunk.bad;
                    for (row, place) in chunk.rows.iter().zip(chunk.places) {
                        match checker.validate(row) {
                            Ok(_) => per_part[pass.take(&this.split, row)] += 1,
                            Err(e) => {
                                refused.push((place, format!("{}: {e}", reader.place(place))))
                            }
                        }
                    }
                    // Named in the input's order, whichever check refused them.
                    refused.sort_unstable_by_key(|(place, _)| *place);
                    for (_, why) in refused {
                        bad.add(why);
                    }
                    counter.store(pass.rows + bad.count, Ordering::Relaxed);
                    Ok(true)
                })?;
            let pass = pass.context("the input has no file or object to read")?;
            bad.refuse(&this.input.describe())?;
            Ok::<_, anyhow::Error>(Survey {
                rows: pass.rows,
                identity: pass.identity.value(),
                columns: pass.columns,
                per_part,
            })
        });
        let started = Instant::now();
        let ticker = progress.then(|| {
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                    eprint!("\rchecking: {} rows read", read.load(Ordering::Relaxed));
                }
            })
        });
        let survey = pass.await.context("reading the events panicked")?;
        if let Some(ticker) = ticker {
            ticker.abort();
            if started.elapsed().as_millis() >= 250 {
                eprintln!();
            }
        }
        survey
    }

    /// The second pass: the shares of the producers `ids` names (one per part; a part without
    /// an id is not sent), fed their batches of `batch_size` rows as the producers take them,
    /// and the reading task, which fails if the input no longer holds what `survey` found.
    pub fn shares(
        &self,
        survey: &Survey,
        ids: Vec<Option<String>>,
        batch_size: usize,
    ) -> (Vec<Share>, tokio::task::JoinHandle<anyhow::Result<()>>) {
        let batch_size = batch_size.max(1);
        let mut senders = Vec::with_capacity(ids.len());
        let mut shares = Vec::new();
        for id in ids {
            match id {
                Some(producer_id) => {
                    let (sender, batches) = mpsc::channel(READ_AHEAD);
                    senders.push(Some(sender));
                    shares.push(Share {
                        producer_id,
                        batches,
                    });
                }
                None => senders.push(None),
            }
        }
        let this = self.clone();
        let (expected_rows, expected_identity) = (survey.rows, survey.identity);
        let checked = survey.per_part.clone();
        let runtime = tokio::runtime::Handle::current();
        let reading = tokio::task::spawn_blocking(move || {
            let mut buffers: Vec<Vec<Row>> = vec![Vec::new(); this.split.parts.max(1)];
            // Rows taken per producer: never more than the first pass checked for it.
            let mut taken = vec![0u64; buffers.len()];
            let mut pass: Option<Pass> = None;
            // A producer that stopped (it failed, and says why) takes no more batches.
            let send = |part: usize, batch: Vec<Row>| -> bool {
                match senders.get(part) {
                    Some(Some(sender)) => sender.blocking_send(batch).is_ok(),
                    _ => true,
                }
            };
            let mut stopped = false;
            this.input
                .read(&this.source, &runtime, &mut |reader, chunk| {
                    let pass = pass.get_or_insert_with(|| this.pass(reader.columns()));
                    if let Some((_, bad)) = chunk.bad.first() {
                        return Err(InputChanged(format!("a row is no longer valid: {bad}")).into());
                    }
                    for row in chunk.rows {
                        let part = pass.take(&this.split, &row);
                        taken[part] += 1;
                        if taken[part] > checked.get(part).copied().unwrap_or(0) {
                            return Err(InputChanged(format!(
                                "it holds more rows than the {expected_rows} checked"
                            ))
                            .into());
                        }
                        let buffer = &mut buffers[part];
                        buffer.push(row);
                        if buffer.len() == batch_size && !send(part, std::mem::take(buffer)) {
                            stopped = true;
                            return Ok(false);
                        }
                    }
                    Ok(true)
                })?;
            if stopped {
                return Ok(());
            }
            for (part, buffer) in buffers.into_iter().enumerate() {
                if !buffer.is_empty() && !send(part, buffer) {
                    return Ok(());
                }
            }
            let (rows_read, identity) =
                pass.map_or((0, expected_identity), |p| (p.rows, p.identity.value()));
            if rows_read != expected_rows || identity != expected_identity {
                return Err(InputChanged(format!(
                    "{expected_rows} rows when checked, {rows_read} now, not the same rows"
                ))
                .into());
            }
            Ok(())
        });
        (shares, reading)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use quiver_core::{Column, JoinKey, ValueType};
    use quiver_proto::types::value::Kind;
    use quiver_proto::types::Value;

    use super::*;

    /// A CSV file of `rows` events of users 0..97 and the events to send from it, split over
    /// four producers.
    fn csv_events(dir: &Path, rows: usize) -> Events {
        let path = dir.join("events.csv");
        let mut text = String::from("user_id,ts,amount\n");
        for i in 0..rows {
            text.push_str(&format!("{},2026-12-07T10:00:00Z,{}.5\n", i % 97, i));
        }
        std::fs::write(&path, text).unwrap();
        let column = |name: &str, value_type| Column {
            name: name.into(),
            value_type,
        };
        Events {
            input: Arc::new(Input::file(&path, None).unwrap()),
            source: Arc::new(Source {
                name: "transactions".into(),
                entity: "user".into(),
                timestamp_field: "ts".into(),
                allowed_lateness: Duration::from_secs(60),
                schema: vec![
                    column("user_id", ValueType::Int64),
                    column("ts", ValueType::Timestamp),
                    column("amount", ValueType::Float64),
                ],
                description: String::new(),
                kafka: None,
                log_retention: None,
            }),
            entity: Arc::new(Entity {
                name: "user".into(),
                join_keys: vec![JoinKey {
                    name: "user_id".into(),
                    value_type: ValueType::Int64,
                }],
                description: String::new(),
            }),
            project: "fraud".into(),
            split: Split {
                key_names: vec!["user_id".into()],
                parts: 4,
            },
            future: None,
        }
    }

    fn ids(parts: usize) -> Vec<Option<String>> {
        (0..parts).map(|p| Some(format!("p{p}"))).collect()
    }

    /// The second pass hands each producer the rows the first pass counted for it, in file
    /// order and in full batches but the last, and the reader ends cleanly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_row_reaches_its_producer_once_in_file_order() {
        let dir = tempfile::tempdir().unwrap();
        let events = csv_events(dir.path(), 10_000);
        let survey = events.survey(false).await.unwrap();
        assert_eq!(survey.rows, 10_000);
        assert_eq!(survey.per_part.iter().sum::<u64>(), 10_000);
        let (shares, reading) = events.shares(&survey, ids(4), 300);
        // Taken at once, as producers do (one producer waiting alone would hold the reader up
        // on another's full channel).
        let takers: Vec<_> = shares
            .into_iter()
            .map(|mut share| {
                tokio::spawn(async move {
                    let mut batches = Vec::new();
                    while let Some(batch) = share.batches.recv().await {
                        batches.push(batch);
                    }
                    batches
                })
            })
            .collect();
        let mut seen = Vec::new();
        for (part, taker) in takers.into_iter().enumerate() {
            let batches = taker.await.unwrap();
            let rows: usize = batches.iter().map(Vec::len).sum();
            assert_eq!(rows as u64, survey.per_part[part], "part {part}");
            let (last, full) = batches.split_last().unwrap();
            assert!(full.iter().all(|b| b.len() == 300) && last.len() <= 300);
            // In file order within the part.
            let amounts: Vec<i64> = batches
                .into_iter()
                .flatten()
                .map(|r| match r.values[2].kind {
                    Some(Kind::Float64Value(x)) => x as i64,
                    _ => panic!("not an amount"),
                })
                .collect();
            assert!(amounts.windows(2).all(|w| w[0] < w[1]), "part {part}");
            seen.extend(amounts);
        }
        reading.await.unwrap().unwrap();
        seen.sort_unstable();
        assert_eq!(seen, (0..10_000).collect::<Vec<i64>>());
    }

    /// The reader runs at most a few batches ahead of the producers: with nobody taking
    /// batches it stops reading, and when the producers go away it ends without an error.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reader_waits_for_the_producers() {
        let dir = tempfile::tempdir().unwrap();
        let events = csv_events(dir.path(), 50_000);
        let survey = events.survey(false).await.unwrap();
        let (shares, reading) = events.shares(&survey, ids(4), 100);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !reading.is_finished(),
            "the reader ran to the end with no one sending"
        );
        let held: usize = shares.iter().map(|s| s.batches.len()).sum();
        assert!(held <= 4 * READ_AHEAD, "{held} batches read ahead");
        drop(shares);
        reading.await.unwrap().unwrap();
    }

    /// Bad rows anywhere stop the first pass, before anything is sent; its error names each
    /// (line, column, why), as ingest would have refused them, and counts those beyond the
    /// first few.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_rows_late_in_the_file_stop_everything_first_and_are_all_named() {
        let dir = tempfile::tempdir().unwrap();
        let events = csv_events(dir.path(), 10_000);
        let path = dir.path().join("events.csv");
        let text = std::fs::read_to_string(&path).unwrap();
        let bad_rows = [
            (
                "5,2026-12-07T10:00:00Z,lots",
                "events.csv:10002: column \"amount\": \"lots\" is not a number",
            ),
            (
                ",2026-12-07T10:00:00Z,1.0",
                "events.csv:10003: column \"user_id\": the join key is null",
            ),
            (
                "6,,1.0",
                "events.csv:10004: column \"ts\": the event time is null",
            ),
            (
                "7,yesterday,1.0",
                "events.csv:10005: column \"ts\": unparsable timestamp \"yesterday\"",
            ),
            (
                "8,2026-12-07T10:00:00Z",
                "events.csv:10006: 2 fields where the header has 3",
            ),
        ];
        let mut with_bad = text.clone();
        for (row, _) in bad_rows {
            with_bad.push_str(row);
            with_bad.push('\n');
        }
        with_bad.push_str("9,2026-12-07T10:00:00Z,2.5\n");
        std::fs::write(&path, &with_bad).unwrap();
        let error = format!("{:#}", events.survey(false).await.err().unwrap());
        assert!(error.contains("5 bad rows; nothing was sent"), "{error}");
        // Each named, in the file's order.
        let at: Vec<usize> = bad_rows
            .iter()
            .map(|(_, named)| {
                error
                    .find(named)
                    .unwrap_or_else(|| panic!("{named} in {error}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "{error}");
        // Many bad rows: the first few named, the rest counted.
        let mut many = text;
        for _ in 0..100 {
            many.push_str(",2026-12-07T10:00:00Z,1.0\n");
        }
        std::fs::write(&path, many).unwrap();
        let error = format!("{:#}", events.survey(false).await.err().unwrap());
        assert!(error.contains("100 bad rows"), "{error}");
        assert_eq!(
            error.matches("the join key is null").count(),
            BAD_ROWS_SHOWN
        );
        assert!(error.ends_with("... and 80 more"), "{error}");
    }

    /// With ingest's bound on event times, a row ingest would refuse as too far ahead of its
    /// clock is a bad row of the first pass, in ingest's words: nothing is sent.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_ahead_of_ingests_clock_stop_everything_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut events = csv_events(dir.path(), 10);
        let path = dir.path().join("events.csv");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("5,2101-01-01T00:00:00Z,1.0\n");
        std::fs::write(&path, text).unwrap();
        // Without the bound, ingest alone judges it.
        assert_eq!(events.survey(false).await.unwrap().rows, 11);
        // Ingest's clock at 2026-12-07T10:30:00Z, one hour of skew: every other row is earlier.
        events.future = Some(FutureBound::new(1_796_639_400_000_000, 3_600_000_000));
        let error = format!("{:#}", events.survey(false).await.err().unwrap());
        assert!(
            error.contains("a bad row; nothing was sent")
                && error.contains(
                    "events.csv:12: column \"ts\": event time 2101-01-01T00:00:00Z is more than \
                     1h ahead of ingest's clock"
                ),
            "{error}"
        );
    }

    /// A file missing a column every row needs is refused as a whole, naming it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_input_without_the_event_time_column_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let events = csv_events(dir.path(), 10);
        std::fs::write(dir.path().join("events.csv"), "user_id,amount\n1,2.5\n").unwrap();
        let error = format!("{:#}", events.survey(false).await.err().unwrap());
        assert!(
            error.contains("events.csv: columns: the event time column \"ts\" is missing"),
            "{error}"
        );
    }

    /// A file that changes between the passes is reported, not sent as if it were the same.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_input_that_changed_between_the_passes_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let events = csv_events(dir.path(), 1_000);
        let survey = events.survey(false).await.unwrap();
        csv_events(dir.path(), 1_001);
        let (shares, reading) = events.shares(&survey, ids(4), 1);
        // Taken at once, as producers do.
        let takers: Vec<_> = shares
            .into_iter()
            .map(|mut share| {
                tokio::spawn(async move {
                    let mut rows = 0;
                    while let Some(batch) = share.batches.recv().await {
                        rows += batch.len();
                    }
                    rows
                })
            })
            .collect();
        let mut received = 0;
        for taker in takers {
            received += taker.await.unwrap();
        }
        let error = reading.await.unwrap().unwrap_err();
        assert!(error.downcast_ref::<InputChanged>().is_some(), "{error}");
        assert!(
            error.to_string().contains(
                "the input changed while it was sent (it holds more rows than the 1000 checked)"
            ),
            "{error}"
        );
        // The row the first pass never saw was not handed to any producer.
        assert!(received <= 1_000, "{received} rows sent");
    }

    fn row(user: i64, amount: f64) -> Row {
        Row {
            values: vec![
                Value {
                    kind: Some(Kind::Int64Value(user)),
                },
                Value {
                    kind: Some(Kind::Float64Value(amount)),
                },
            ],
        }
    }

    /// The identity is a pure function of what was read, fed row by row: the Python client
    /// computes the same, so its value for fixed rows is pinned.
    #[test]
    fn the_identity_of_rows_is_fixed() {
        let columns = vec!["user_id".to_string(), "amount".to_string()];
        let mut identity = Identity::new("fraud", "transactions", &columns);
        for (user, amount) in [(1, 2.5), (2, -1.0)] {
            identity.add(&row(user, amount));
        }
        // As computed before reading became streaming (and by `clients/python`'s tests of
        // `load_id`, which run the CLI on the same rows).
        assert_eq!(
            format!("{:032x}", identity.value()),
            "88365dbecb8bf2a59ff2095b9059a1d9"
        );
        let other = Identity::new("fraud", "transactions", &columns).value();
        assert_ne!(identity.value(), other);
        // The same fields split differently hash differently (lengths come first).
        assert_ne!(
            Identity::new("ab", "c", &[]).value(),
            Identity::new("a", "bc", &[]).value()
        );
    }

    #[test]
    fn a_split_keeps_each_entity_with_one_producer() {
        let split = Split {
            key_names: vec!["user_id".into()],
            parts: 4,
        };
        let keys = split.key_columns(&["amount".to_string(), "user_id".to_string()]);
        assert_eq!(keys, [1]);
        let keyed = |user: i64| Row {
            values: vec![
                Value {
                    kind: Some(Kind::Float64Value(user as f64)),
                },
                Value {
                    kind: Some(Kind::Int64Value(user)),
                },
            ],
        };
        let mut used = [false; 4];
        for user in 0..100 {
            let part = split.part_of(&keys, &keyed(user));
            assert_eq!(part, split.part_of(&keys, &keyed(user)));
            used[part] = true;
        }
        assert!(
            used.iter().all(|u| *u),
            "100 users over 4 producers use them all"
        );
    }
}
