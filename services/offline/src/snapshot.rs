//! A snapshot request: resolving what it asks for, checking the entity table against it, and
//! computing each batch of entity rows into the output batch (the entity table's columns, then
//! one column per feature, then `sample_weight` when sampling).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Date32Type, Date64Type};
use arrow_array::{Array, ArrayRef, Float64Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use arrow_select::filter::filter_record_batch;
use quiver_common::feature_selection::{resolve_features, FeatureSelection};
use quiver_common::registry_cache::RegistryCache;
use quiver_core::tiling::{self, AggregateSpec};
use quiver_core::timestamp::parse_rfc3339_micros;
use quiver_core::{FeatureView, JoinKey, Scalar, Transform, ValueType};
use quiver_lake::columns::{data_type, scalar_at, timestamp_micros};
use quiver_lake::Partition;
use quiver_proto::convert::KeyPart;
use quiver_proto::offline::snapshot_command::Features;
use quiver_proto::offline::{sampling, SnapshotCommand};

use crate::dataset::ViewData;
use crate::error::SnapshotError;
use crate::point_in_time::ViewKernel;
use crate::sampling::{class_of, Sampler};

/// The entity table's timestamp column unless the request names another.
pub const DEFAULT_TIMESTAMP_COLUMN: &str = "event_timestamp";
/// The weight column sampling adds.
pub const SAMPLE_WEIGHT: &str = "sample_weight";
/// Batches smaller than this are computed on one thread.
const PARALLEL_MIN_ROWS: usize = 8_192;

/// A resolved snapshot request.
pub struct SnapshotPlan {
    /// The project, resolved.
    pub project: String,
    /// The entity table's timestamp column.
    pub timestamp_column: String,
    /// The view versions read.
    pub views: Vec<PlannedView>,
    /// The feature columns, in requested order.
    pub outputs: Vec<Output>,
    /// Sampling, if asked for.
    pub sampling: Option<SamplingPlan>,
}

/// One view version a snapshot reads.
pub struct PlannedView {
    /// Where its rows are: its source's log, or the rows it aggregated online.
    pub partition: Partition,
    /// With the source log: the version's transforms, computed on read.
    pub transforms: Option<Vec<Transform>>,
    /// Its entity's join keys (columns of the entity table).
    pub join_keys: Vec<JoinKey>,
    kernel: ViewKernel,
}

impl PlannedView {
    /// The value columns its features read.
    pub fn columns(&self) -> Vec<String> {
        self.kernel.input_columns()
    }
}

/// One feature column of the output.
pub struct Output {
    /// `view:feature` (or `view@N:feature` when the request pins a version).
    pub name: String,
    value_type: ValueType,
    view: usize,
    slot: usize,
}

/// Sampling as requested.
pub enum SamplingPlan {
    /// Balanced by `column`, the most frequent class down to `fraction`.
    Balanced {
        /// The label column.
        column: String,
        /// The most frequent class's keep fraction.
        fraction: f64,
        /// The seed.
        seed: u64,
    },
    /// Inverse frequency of `column`.
    InverseFrequency {
        /// The column.
        column: String,
        /// The seed.
        seed: u64,
    },
}

impl SamplingPlan {
    /// The column whose classes drive the sample.
    pub fn column(&self) -> &str {
        match self {
            Self::Balanced { column, .. } | Self::InverseFrequency { column, .. } => column,
        }
    }

    /// The sampler for a table whose sampling column holds `classes`.
    pub fn sampler(&self, classes: &[String]) -> Sampler {
        match self {
            Self::Balanced { fraction, seed, .. } => Sampler::balanced(*seed, *fraction, classes),
            Self::InverseFrequency { seed, .. } => Sampler::inverse_frequency(*seed, classes),
        }
    }
}

/// Resolves `command` against the registry.
pub async fn plan(
    registry: &RegistryCache,
    command: &SnapshotCommand,
) -> Result<SnapshotPlan, SnapshotError> {
    let invalid = SnapshotError::InvalidArgument;
    let catalog = registry.catalog();
    let project = catalog
        .project(&command.project)
        .map_err(|e| invalid(format!("project: {e}")))?;
    let selection = match &command.features {
        Some(Features::FeatureService(name)) => FeatureSelection::Service(name),
        Some(Features::FeatureRefs(refs)) => FeatureSelection::Refs(&refs.refs),
        None => {
            return Err(invalid(
                "features: name a feature_service or feature_refs".into(),
            ))
        }
    };
    let resolved = resolve_features(registry, &catalog, &project, selection, "feature_refs")
        .await
        .map_err(invalid)?;
    // Per view version read: its definition, version, join keys and requested features.
    type Read = (Arc<FeatureView>, u32, Vec<JoinKey>, Vec<usize>);
    let mut reads: Vec<Read> = Vec::new();
    let mut outputs = Vec::with_capacity(resolved.len());
    for feature in resolved {
        let view = match reads
            .iter()
            .position(|(v, version, ..)| v.name == feature.view.name && *version == feature.version)
        {
            Some(index) => index,
            None => {
                let entity = catalog
                    .entity(&project, &feature.view.entity)
                    .ok_or_else(|| {
                        SnapshotError::Unavailable(format!(
                            "entity {:?} of view {:?} is not in the registry cache yet",
                            feature.view.entity, feature.view.name
                        ))
                    })?;
                let keys = entity.join_keys.clone();
                reads.push((feature.view.clone(), feature.version, keys, Vec::new()));
                reads.len() - 1
            }
        };
        let requested = &mut reads[view].3;
        let slot = requested
            .iter()
            .position(|f| *f == feature.feature)
            .unwrap_or_else(|| {
                requested.push(feature.feature);
                requested.len() - 1
            });
        outputs.push(Output {
            name: feature.reference.to_string(),
            value_type: feature.view.features[feature.feature].value_type,
            view,
            slot,
        });
    }
    let views = reads
        .into_iter()
        .map(|(definition, version, join_keys, requested)| PlannedView {
            // From the source log whenever the log alone decides the version's rows: then a
            // version defined after its events has them at once.
            partition: if definition.rows_follow_from_source_log() {
                Partition::Source {
                    project: project.clone(),
                    source: definition.source.clone(),
                }
            } else {
                Partition::Events {
                    project: project.clone(),
                    source: definition.source.clone(),
                    view: definition.name.clone(),
                    version,
                }
            },
            transforms: definition
                .rows_follow_from_source_log()
                .then(|| definition.transforms.clone()),
            join_keys,
            kernel: ViewKernel::new(
                definition
                    .features
                    .iter()
                    .map(AggregateSpec::of_feature)
                    .collect(),
                requested,
                definition.ttl.map(tiling::micros),
            ),
        })
        .collect();
    let sampling = match command
        .sampling
        .as_ref()
        .and_then(|s| s.strategy.as_ref().map(|st| (s.seed, st)))
    {
        None => None,
        Some((seed, sampling::Strategy::Balanced(b))) => {
            if !(b.target_fraction > 0.0 && b.target_fraction <= 1.0) {
                return Err(invalid(format!(
                    "sampling.balanced.target_fraction: {} is not in (0, 1]",
                    b.target_fraction
                )));
            }
            Some(SamplingPlan::Balanced {
                column: b.label_column.clone(),
                fraction: b.target_fraction,
                seed,
            })
        }
        Some((seed, sampling::Strategy::InverseFrequency(i))) => {
            Some(SamplingPlan::InverseFrequency {
                column: i.column.clone(),
                seed,
            })
        }
    };
    if command.filter_by_commit_time {
        return Err(invalid(
            "filter_by_commit_time: not supported yet; snapshots use event time (see docs/training.md)"
                .into(),
        ));
    }
    Ok(SnapshotPlan {
        project: project.clone(),
        timestamp_column: if command.timestamp_column.is_empty() {
            DEFAULT_TIMESTAMP_COLUMN.into()
        } else {
            command.timestamp_column.clone()
        },
        views,
        outputs,
        sampling,
    })
}

/// Whether an entity table's time column may have this type: a timestamp, a date, or RFC 3339
/// text.
fn is_entity_time(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Timestamp(..)
            | DataType::Date32
            | DataType::Date64
            | DataType::Utf8
            | DataType::LargeUtf8
    )
}

/// Row `row`'s time in an entity table's time column, in microseconds (None: null). A date is
/// its midnight, UTC: the start of the day, so its features are those known before the day
/// began (a label dated that day sees nothing of it). Text is RFC 3339, read by the parser every
/// time a user writes goes through; unparsable text is an error saying why.
fn entity_time(column: &dyn Array, row: usize) -> Result<Option<i64>, String> {
    if column.is_null(row) {
        return Ok(None);
    }
    Ok(match column.data_type() {
        DataType::Timestamp(unit, _) => timestamp_micros(column, *unit, row),
        DataType::Date32 => Some(
            i64::from(column.as_primitive::<Date32Type>().value(row))
                .saturating_mul(86_400_000_000),
        ),
        DataType::Date64 => Some(
            column
                .as_primitive::<Date64Type>()
                .value(row)
                .saturating_mul(1_000),
        ),
        DataType::Utf8 => Some(parse_rfc3339_micros(column.as_string::<i32>().value(row))?),
        DataType::LargeUtf8 => Some(parse_rfc3339_micros(column.as_string::<i64>().value(row))?),
        _ => None,
    })
}

impl SnapshotPlan {
    /// Checks the entity table's schema; returns the output schema.
    pub fn output_schema(&self, input: &Schema) -> Result<SchemaRef, SnapshotError> {
        let invalid = SnapshotError::InvalidArgument;
        let column = &self.timestamp_column;
        let field = input.field_with_name(column).map_err(|_| {
            invalid(format!(
                "entity table: no timestamp column {column:?} (name another with timestamp_column); its columns: {}",
                names(input)
            ))
        })?;
        if !is_entity_time(field.data_type()) {
            return Err(invalid(format!(
                "entity table: column {column:?} has type {}; expected a timestamp, a date or RFC 3339 text",
                field.data_type()
            )));
        }
        for view in &self.views {
            for key in &view.join_keys {
                let field = input.field_with_name(&key.name).map_err(|_| {
                    invalid(format!(
                        "entity table: no join-key column {:?}; its columns: {}",
                        key.name,
                        names(input)
                    ))
                })?;
                if !key_type_matches(key.value_type, field.data_type()) {
                    return Err(invalid(format!(
                        "entity table: join-key column {:?} has type {}; expected {}",
                        key.name,
                        field.data_type(),
                        key.value_type.name()
                    )));
                }
            }
        }
        if let Some(sampling) = &self.sampling {
            if input.field_with_name(sampling.column()).is_err() {
                return Err(invalid(format!(
                    "sampling: no column {:?} in the entity table; its columns: {}",
                    sampling.column(),
                    names(input)
                )));
            }
        }
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for output in &self.outputs {
            fields.push(Field::new(&output.name, data_type(output.value_type), true));
        }
        if self.sampling.is_some() {
            fields.push(Field::new(SAMPLE_WEIGHT, DataType::Float64, false));
        }
        let inputs = input.fields().len();
        for (i, field) in fields.iter().enumerate() {
            if let Some(first) = fields[..i].iter().position(|f| f.name() == field.name()) {
                return Err(invalid(if first >= inputs {
                    format!(
                        "features: {:?} is asked for twice (outputs {} and {})",
                        field.name(),
                        first - inputs,
                        i - inputs
                    )
                } else if i < inputs {
                    format!("entity table: column {:?} appears twice", field.name())
                } else {
                    format!(
                        "entity table: column {:?} clashes with an output column of that name",
                        field.name()
                    )
                }));
            }
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The output for one batch of entity rows. `weights` (sampling) holds one entry per row:
    /// the row's weight if kept. `first_row` numbers the batch's rows within the table.
    pub fn compute(
        &self,
        schema: &SchemaRef,
        data: &[Arc<ViewData>],
        batch: &RecordBatch,
        first_row: u64,
        weights: Option<&[Option<f64>]>,
    ) -> Result<RecordBatch, SnapshotError> {
        let invalid = SnapshotError::InvalidArgument;
        let rows = batch.num_rows();
        let times_column = batch
            .column_by_name(&self.timestamp_column)
            .ok_or_else(|| {
                invalid(format!(
                    "entity table: no column {:?}",
                    self.timestamp_column
                ))
            })?;
        if !is_entity_time(times_column.data_type()) {
            return Err(invalid(format!(
                "entity table: column {:?} is not a timestamp, a date or RFC 3339 text",
                self.timestamp_column
            )));
        }
        let mut times = Vec::with_capacity(rows);
        for row in 0..rows {
            let at = first_row + row as u64;
            let t = entity_time(times_column.as_ref(), row)
                .map_err(|why| {
                    invalid(format!(
                        "entity table: row {at}: {}: {why}",
                        self.timestamp_column
                    ))
                })?
                .ok_or_else(|| {
                    invalid(format!(
                        "entity table: row {at}: {} is null",
                        self.timestamp_column
                    ))
                })?;
            times.push(t);
        }
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        // Rows are independent: big batches are split across the cores.
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = rows.div_ceil(threads).max(PARALLEL_MIN_ROWS);
        let compute_rows = |range: std::ops::Range<usize>| -> Vec<Vec<ArrayRef>> {
            self.views
                .iter()
                .zip(data)
                .map(|(view, data)| {
                    let keys = EntityKeys::of(batch, &view.join_keys, range.clone());
                    view.kernel.compute(data, &keys, &times[range.clone()])
                })
                .collect()
        };
        // Per part (a run of rows), per view, per requested feature: its column.
        let parts: Vec<Vec<Vec<ArrayRef>>> = if rows <= chunk {
            vec![compute_rows(0..rows)]
        } else {
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..rows)
                    .step_by(chunk)
                    .map(|from| {
                        let range = from..(from + chunk).min(rows);
                        let compute_rows = &compute_rows;
                        scope.spawn(move || compute_rows(range))
                    })
                    .collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_default())
                    .collect()
            })
        };
        for output in &self.outputs {
            let pieces: Vec<&dyn Array> = parts
                .iter()
                .filter_map(|part| part.get(output.view)?.get(output.slot))
                .map(|a| a.as_ref())
                .collect();
            let column = match pieces.as_slice() {
                [_] => Arc::clone(&parts[0][output.view][output.slot]),
                _ => arrow_select::concat::concat(&pieces)
                    .map_err(|e| SnapshotError::Internal(e.to_string()))?,
            };
            if column.len() != rows {
                return Err(SnapshotError::Internal("a computing thread failed".into()));
            }
            columns.push(column);
        }
        let Some(weights) = weights else {
            return RecordBatch::try_new(schema.clone(), columns)
                .map_err(|e| SnapshotError::Internal(e.to_string()));
        };
        columns.push(Arc::new(Float64Array::from_iter_values(
            weights.iter().map(|w| w.unwrap_or(0.0)),
        )));
        let all = RecordBatch::try_new(schema.clone(), columns)
            .map_err(|e| SnapshotError::Internal(e.to_string()))?;
        let keep = arrow_array::BooleanArray::from_iter(weights.iter().map(|w| Some(w.is_some())));
        filter_record_batch(&all, &keep).map_err(|e| SnapshotError::Internal(e.to_string()))
    }

    /// The sampling classes of a batch's rows.
    pub fn classes(&self, batch: &RecordBatch) -> Vec<String> {
        let Some(column) = self
            .sampling
            .as_ref()
            .and_then(|s| batch.column_by_name(s.column()))
        else {
            return vec![class_of(None); batch.num_rows()];
        };
        (0..batch.num_rows())
            .map(|row| class_of(scalar_at(column.as_ref(), row).as_ref()))
            .collect()
    }
}

/// Every row's encoded entity key, in one buffer.
pub struct EntityKeys {
    bytes: Vec<u8>,
    /// Per row: its key's range in `bytes`, `None` when a join key is null.
    ranges: Vec<Option<(u32, u32)>>,
}

impl EntityKeys {
    /// The keys of `rows` of `batch` for `join_keys` (columns checked by `output_schema`).
    fn of(batch: &RecordBatch, join_keys: &[JoinKey], rows: std::ops::Range<usize>) -> Self {
        let columns: Vec<Option<&ArrayRef>> = join_keys
            .iter()
            .map(|k| batch.column_by_name(&k.name))
            .collect();
        let mut keys = Self {
            bytes: Vec::with_capacity(rows.len() * 9 * join_keys.len()),
            ranges: Vec::with_capacity(rows.len()),
        };
        'rows: for row in rows {
            let start = keys.bytes.len();
            for column in &columns {
                let Some(part) = column.and_then(|c| key_part(c.as_ref(), row)) else {
                    keys.bytes.truncate(start);
                    keys.ranges.push(None);
                    continue 'rows;
                };
                part.encode_into(&mut keys.bytes);
            }
            keys.ranges
                .push(Some((start as u32, keys.bytes.len() as u32)));
        }
        keys
    }

    /// Row `row`'s key.
    pub fn get(&self, row: usize) -> Option<&[u8]> {
        let (start, end) = self.ranges.get(row).copied().flatten()?;
        self.bytes.get(start as usize..end as usize)
    }

    /// Every row that has a key, with it.
    pub fn keyed(&self) -> impl Iterator<Item = (u32, &[u8])> + '_ {
        self.ranges.iter().enumerate().filter_map(|(row, range)| {
            let (start, end) = (*range)?;
            Some((row as u32, self.bytes.get(start as usize..end as usize)?))
        })
    }
}

/// A join-key cell as a key part, read straight from its column (`None`: null).
fn key_part(array: &dyn arrow_array::Array, row: usize) -> Option<KeyPart<'_>> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Int64 => Some(KeyPart::Int(array.as_primitive::<Int64Type>().value(row))),
        DataType::Utf8 => Some(KeyPart::String(
            array.as_string::<i32>().value(row).as_bytes(),
        )),
        DataType::LargeUtf8 => Some(KeyPart::String(
            array.as_string::<i64>().value(row).as_bytes(),
        )),
        DataType::Utf8View => Some(KeyPart::String(
            array.as_string_view().value(row).as_bytes(),
        )),
        DataType::Binary => Some(KeyPart::Bytes(array.as_binary::<i32>().value(row))),
        DataType::LargeBinary => Some(KeyPart::Bytes(array.as_binary::<i64>().value(row))),
        // Narrower integers widen to int64.
        _ => match scalar_at(array, row)? {
            Scalar::Int64(v) => Some(KeyPart::Int(v)),
            _ => None,
        },
    }
}

fn key_type_matches(expected: ValueType, actual: &DataType) -> bool {
    match expected {
        ValueType::Int64 => matches!(
            actual,
            DataType::Int64
                | DataType::Int32
                | DataType::Int16
                | DataType::Int8
                | DataType::UInt32
                | DataType::UInt16
                | DataType::UInt8
        ),
        ValueType::String => matches!(
            actual,
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
        ),
        ValueType::Bytes => matches!(actual, DataType::Binary | DataType::LargeBinary),
        _ => false,
    }
}

fn names(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
