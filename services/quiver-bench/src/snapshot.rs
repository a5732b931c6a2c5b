//! `quiver-bench snapshot`: point-in-time snapshot throughput. Applies a bench project, writes
//! `--feature-rows` generated events straight into the offline store as the source's log (as
//! the online store's exporter would, without pushing them through ingest), then sends an
//! entity table of `--entity-rows` rows through the snapshot service over Arrow Flight: as-of
//! features (`last`/`first`), first with the offline store's rows not yet loaded (cold), then
//! loaded (warm), and windowed features. Reports entity rows/s for each. With
//! `--last-features N` the source has N more columns and a view `wide` of N `last` features
//! over them; `--entities-out` keeps the entity table as Parquet and `--write-only` stops there,
//! so scripts/bench-snapshot-peers.sh can time `quiver snapshot` end to end against DuckDB and
//! polars on the same files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use parquet::arrow::ArrowWriter;

use arrow_array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow_flight::error::FlightError;
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use futures::StreamExt;
use quiver::addresses::Addresses;
use quiver::snapshot_exchange::{exchange, flight_error};
use quiver_core::{Scalar, ValueType};
use quiver_lake::event_file::{write_parquet, Column, EventRows};
use quiver_lake::layout::date_of;
use quiver_lake::{FileRange, Lake, Partition};
use quiver_proto::convert::{encode_entity, scalar_to_value};
use quiver_proto::offline::snapshot_command::Features;
use quiver_proto::offline::{FeatureRefs, SnapshotCommand};

use crate::definitions::apply;

const PROJECT: &str = "snapbench";
/// The bench project; `{wide}` becomes the extra columns and view of `--last-features`.
const DEFINITIONS: &str = r#"
project: snapbench
entities:
  - name: user
    join_keys: [{name: user_id, type: int64}]
sources:
  - name: events
    entity: user
    timestamp_field: ts
    schema:
      - {name: user_id, type: int64}
      - {name: ts, type: timestamp}
      - {name: amount, type: float64}
{wide_columns}feature_views:
  - name: stats
    entity: user
    source: events
    features:
      - {name: last_amount, column: amount, aggregation: last}
      - {name: first_amount, column: amount, aggregation: first}
      - {name: count_1h, aggregation: count, window: 1h}
      - {name: sum_24h, column: amount, aggregation: sum, window: 24h}
{wide_view}"#;
/// Rows per generated export file.
const FILE_ROWS: usize = 1_000_000;
/// Entity rows per batch sent.
const SEND_ROWS: usize = 65_536;
/// The generated history: 30 days.
const SPAN_MICROS: i64 = 30 * 86_400_000_000;

/// The bench's shape (its flags).
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    /// The offline store the snapshot service reads (`quiver dev`: <data-dir>/offline).
    #[arg(long, default_value = "quiver-data/offline")]
    pub store: String,
    /// Feature rows to generate.
    #[arg(long, default_value_t = 10_000_000)]
    pub feature_rows: usize,
    /// Distinct users.
    #[arg(long, default_value_t = 100_000)]
    pub users: u64,
    /// Entity rows of each as-of snapshot.
    #[arg(long, default_value_t = 1_000_000)]
    pub entity_rows: usize,
    /// Entity rows of the windowed snapshot.
    #[arg(long, default_value_t = 200_000)]
    pub windowed_rows: usize,
    /// Give the source this many more float64 columns (`c0`..) and add a view `wide` of as many
    /// `last` features (`f0`..) over them, measured cold and warm first. 0: neither.
    #[arg(long, default_value_t = 0)]
    pub last_features: usize,
    /// Also write the as-of entity table (`--entity-rows` rows: `user_id`, `event_timestamp`)
    /// here as Parquet: what `quiver snapshot --entities` and the DuckDB and polars peers of
    /// scripts/bench-snapshot-peers.sh read.
    #[arg(long)]
    pub entities_out: Option<PathBuf>,
    /// Write the source log (and `--entities-out`) and stop, measuring nothing.
    #[arg(long)]
    pub write_only: bool,
}

/// The bench's definitions for `last_features` wide features.
fn definitions(last_features: usize) -> String {
    let columns: String = (0..last_features)
        .map(|f| format!("      - {{name: c{f}, type: float64}}\n"))
        .collect();
    let mut view = String::new();
    if last_features > 0 {
        view.push_str("  - name: wide\n    entity: user\n    source: events\n    features:\n");
        for f in 0..last_features {
            view.push_str(&format!(
                "      - {{name: f{f}, column: c{f}, aggregation: last}}\n"
            ));
        }
    }
    DEFINITIONS
        .replace("{wide_columns}", &columns)
        .replace("{wide_view}", &view)
}

/// Runs the bench.
pub async fn run(addresses: &Addresses, shape: Shape) -> anyhow::Result<()> {
    apply(
        addresses,
        "snapbench.yaml",
        &definitions(shape.last_features),
    )
    .await?;
    let end = quiver_common::clock::now_micros();
    let start = end - SPAN_MICROS;
    let generated = Instant::now();
    write_feature_rows(&shape, start).await?;
    println!(
        "wrote {} feature rows over {} users to {} in {:.1}s",
        shape.feature_rows,
        shape.users,
        shape.store,
        generated.elapsed().as_secs_f64()
    );
    if let Some(path) = &shape.entities_out {
        write_entity_table(path, &shape, start)?;
        println!(
            "wrote the entity table ({} rows) to {}",
            shape.entity_rows,
            path.display()
        );
    }
    if shape.write_only {
        return Ok(());
    }
    let wide: Vec<String> = (0..shape.last_features)
        .map(|f| format!("wide:f{f}"))
        .collect();
    let wide: Vec<&str> = wide.iter().map(String::as_str).collect();
    if !wide.is_empty() {
        for label in ["wide as-of, cold", "wide as-of, warm"] {
            measure(addresses, label, &wide, &shape, shape.entity_rows, start).await?;
        }
    }
    let as_of = ["stats:last_amount", "stats:first_amount"];
    for label in ["as-of, cold (loads and indexes the rows)", "as-of, warm"] {
        measure(addresses, label, &as_of, &shape, shape.entity_rows, start).await?;
    }
    let windowed = ["stats:count_1h", "stats:sum_24h"];
    measure(
        addresses,
        "windowed (1h count, 24h sum)",
        &windowed,
        &shape,
        shape.windowed_rows,
        start,
    )
    .await?;
    Ok(())
}

/// splitmix64.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Writes the feature rows as the source's log, where snapshots read them (one log index per
/// 1,000 rows, in time order).
async fn write_feature_rows(shape: &Shape, start: i64) -> anyhow::Result<()> {
    let lake = Lake::open(&shape.store)?;
    let partition = Partition::Source {
        project: PROJECT.into(),
        source: "events".into(),
    };
    let step = SPAN_MICROS / shape.feature_rows.max(1) as i64;
    let mut row = 0usize;
    while row < shape.feature_rows {
        let n = FILE_ROWS.min(shape.feature_rows - row);
        let mut rows = EventRows::default();
        let mut amounts = Vec::with_capacity(n);
        let mut users = Vec::with_capacity(n);
        let mut times = Vec::with_capacity(n);
        let mut wide: Vec<Vec<Option<Scalar>>> = (0..shape.last_features)
            .map(|_| Vec::with_capacity(n))
            .collect();
        for i in row..row + n {
            let user = (mix(i as u64) % shape.users) as i64;
            let at = start + i as i64 * step;
            rows.log_index.push(1 + (i / 1_000) as u64);
            rows.row.push((i % 1_000) as u32);
            rows.event_micros.push(at);
            rows.ingested_micros.push(at);
            rows.entity
                .push(encode_entity(&[scalar_to_value(Some(Scalar::Int64(
                    user,
                )))])?);
            users.push(Some(Scalar::Int64(user)));
            times.push(Some(Scalar::Timestamp(at)));
            amounts.push(Some(Scalar::Float64(
                (mix(!(i as u64)) % 40_000) as f64 * 0.25,
            )));
            for (f, column) in wide.iter_mut().enumerate() {
                let z = mix(i as u64 ^ ((f as u64 + 1) << 40));
                column.push(Some(Scalar::Float64((z % 40_000) as f64 * 0.25)));
            }
        }
        rows.columns = vec![
            Column {
                name: "user_id".into(),
                value_type: ValueType::Int64,
                values: users,
            },
            Column {
                name: "ts".into(),
                value_type: ValueType::Timestamp,
                values: times,
            },
            Column {
                name: "amount".into(),
                value_type: ValueType::Float64,
                values: amounts,
            },
        ];
        rows.columns
            .extend(wide.into_iter().enumerate().map(|(f, values)| Column {
                name: format!("c{f}"),
                value_type: ValueType::Float64,
                values,
            }));
        let range = FileRange {
            first: rows.log_index[0],
            last: rows.log_index[n - 1],
        };
        // One date partition per file is enough for a bench (the reader lists them all).
        let path = partition.file(&date_of(rows.event_micros[0]), range);
        let bytes = write_parquet(&rows.to_batch().map_err(anyhow::Error::msg)?)
            .map_err(anyhow::Error::msg)?;
        lake.put(&path, bytes).await?;
        row += n;
    }
    Ok(())
}

/// The entity table: random users at random times within the history.
fn entity_batches(rows: usize, users: u64, start: i64) -> anyhow::Result<Vec<RecordBatch>> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("user_id", DataType::Int64, false),
        Field::new(
            "event_timestamp",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
    ]));
    (0..rows)
        .step_by(SEND_ROWS)
        .map(|from| {
            let to = (from + SEND_ROWS).min(rows);
            let ids = (from..to).map(|i| (mix(i as u64 ^ 0x5eed) % users) as i64);
            let times =
                (from..to).map(|i| start + (mix(i as u64 ^ 0x7157) % SPAN_MICROS as u64) as i64);
            RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from_iter_values(ids)),
                    Arc::new(
                        TimestampMicrosecondArray::from_iter_values(times).with_timezone("UTC"),
                    ),
                ],
            )
            .map_err(anyhow::Error::from)
        })
        .collect()
}

/// The as-of entity table as one Parquet file.
fn write_entity_table(path: &Path, shape: &Shape, start: i64) -> anyhow::Result<()> {
    let batches = entity_batches(shape.entity_rows, shape.users, start)?;
    let file =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let schema = batches
        .first()
        .map(|b| b.schema())
        .context("--entity-rows 0: no entity table to write")?;
    let mut writer = ArrowWriter::try_new(file, schema, None)?;
    for batch in &batches {
        writer.write(batch)?;
    }
    writer.close()?;
    Ok(())
}

async fn measure(
    addresses: &Addresses,
    label: &str,
    features: &[&str],
    shape: &Shape,
    rows: usize,
    start: i64,
) -> anyhow::Result<()> {
    let table = entity_batches(rows, shape.users, start)?;
    let command = SnapshotCommand {
        project: PROJECT.into(),
        features: Some(Features::FeatureRefs(FeatureRefs {
            refs: features.iter().map(|f| f.to_string()).collect(),
        })),
        ..Default::default()
    };
    let began = Instant::now();
    let mut answer = exchange(
        &addresses.offline,
        command,
        futures::stream::iter(table.into_iter().map(Ok::<_, FlightError>)),
    )
    .await?;
    let mut received = 0usize;
    while let Some(batch) = answer.next().await {
        received += batch.map_err(flight_error)?.num_rows();
    }
    let secs = began.elapsed().as_secs_f64();
    anyhow::ensure!(
        received == rows,
        "{label}: {received} rows came back of {rows}"
    );
    println!(
        "{label}: {rows} entity rows x {} features in {secs:.2}s = {:.0} entity rows/s",
        features.len(),
        rows as f64 / secs
    );
    Ok(())
}
