//! Partial aggregates (intermediate representations): what a tile stores per feature, how one
//! event updates it, how two merge, and the value a merge finishes into. The online store and
//! the offline snapshot path both use exactly this code, so training and serving agree.

use super::exact_sum::ExactSum;
use super::hll::Hll;
use crate::definitions::{Aggregation, Feature};
use crate::scalar::Scalar;
use crate::ValueType;

/// An event's position, for `first`/`last`: event time, then log order, so ties resolve the
/// same way on every replica and offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Stamp {
    /// Event time, microseconds since the epoch.
    pub event_micros: i64,
    /// Position in ingest order (e.g. the Raft log index and row number).
    pub sequence: u64,
}

/// How a partial adds floats (`sum`, `mean`, `stddev`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatSums {
    /// Exactly, rounded once when finished ([`ExactSum`]): the same bits whatever the order
    /// and grouping of the events, so a backfill's chunks, serving's log entries and a
    /// snapshot's files agree to the bit.
    Exact,
    /// In f64, in the order folded: what records held before exact sums. The online store
    /// folds so for entries applied under older admission rules, so every replica of a
    /// rolling upgrade writes the same bits.
    Sequential,
}

/// A partial aggregate of one feature over some events.
#[derive(Debug, Clone, PartialEq)]
pub enum Partial {
    /// `count` without a column: every row.
    CountRows(u64),
    /// `count` of a column: its non-null values.
    CountValues(u64),
    /// `sum` of an int64 column (wide, so merges never overflow; saturates when finished).
    SumInt(i128),
    /// `sum` of a float column, in f64 ([`FloatSums::Sequential`]).
    SumFloat(f64),
    /// `sum` of a float column, exactly.
    SumExact(ExactSum),
    /// `mean`: (sum, count), in f64 ([`FloatSums::Sequential`]).
    Mean {
        /// Sum of the values.
        sum: f64,
        /// Number of values.
        count: u64,
    },
    /// `mean`: (sum, count), the sum exact.
    MeanExact {
        /// Sum of the values.
        sum: ExactSum,
        /// Number of values.
        count: u64,
    },
    /// `min`.
    Min(Option<Scalar>),
    /// `max`.
    Max(Option<Scalar>),
    /// `stddev`: count, mean and sum of squared deviations (Welford updates, Chan merges; in
    /// f64, [`FloatSums::Sequential`]).
    Moments {
        /// Number of values.
        count: u64,
        /// Their mean.
        mean: f64,
        /// Sum of squared deviations from the mean.
        m2: f64,
    },
    /// `stddev`: count, and the exact sums of the values and of their squares.
    MomentsExact {
        /// Number of values.
        count: u64,
        /// Sum of the values.
        sum: ExactSum,
        /// Sum of their squares (each exact).
        squares: ExactSum,
    },
    /// `last`: the latest event's value (which may be null).
    Last(Option<(Stamp, Option<Scalar>)>),
    /// `first`: the earliest event's value (which may be null).
    First(Option<(Stamp, Option<Scalar>)>),
    /// `distinct_count`: a HyperLogLog sketch (approximate).
    Distinct(Hll),
}

impl Partial {
    /// The empty partial for `feature`.
    pub fn for_feature(feature: &Feature) -> Self {
        let input = if feature.column.is_some() {
            Some(feature.value_type)
        } else {
            None
        };
        Self::empty(feature.aggregation, feature.column.is_some(), input)
    }

    /// The empty partial of `aggregation`; `has_column` says whether `count` counts values or
    /// rows; `output` is the feature's served type (int64 sums stay integers).
    pub fn empty(aggregation: Aggregation, has_column: bool, output: Option<ValueType>) -> Self {
        match aggregation {
            Aggregation::Count if has_column => Self::CountValues(0),
            Aggregation::Count => Self::CountRows(0),
            Aggregation::Sum if output == Some(ValueType::Int64) => Self::SumInt(0),
            Aggregation::Sum => Self::SumExact(ExactSum::default()),
            Aggregation::Mean => Self::MeanExact {
                sum: ExactSum::default(),
                count: 0,
            },
            Aggregation::Min => Self::Min(None),
            Aggregation::Max => Self::Max(None),
            Aggregation::Stddev => Self::MomentsExact {
                count: 0,
                sum: ExactSum::default(),
                squares: ExactSum::default(),
            },
            Aggregation::Last => Self::Last(None),
            Aggregation::First => Self::First(None),
            Aggregation::DistinctCount => Self::Distinct(Hll::default()),
        }
    }

    /// This partial with its floats added as `sums` say (an exact one rounded to f64 for
    /// [`FloatSums::Sequential`]; meant for empty partials, where nothing is rounded).
    pub fn with_float_sums(self, sums: FloatSums) -> Self {
        match (sums, self) {
            (FloatSums::Sequential, Self::SumExact(sum)) => Self::SumFloat(sum.value()),
            (FloatSums::Sequential, Self::MeanExact { sum, count }) => Self::Mean {
                sum: sum.value(),
                count,
            },
            (FloatSums::Sequential, exact @ Self::MomentsExact { .. }) => {
                let (count, mean, deviation) = exact.mean_and_deviation().unwrap_or_default();
                Self::Moments {
                    count,
                    mean,
                    m2: deviation * deviation * count as f64,
                }
            }
            (FloatSums::Exact, Self::SumFloat(sum)) => Self::SumExact(ExactSum::of(sum)),
            (FloatSums::Exact, Self::Mean { sum, count }) => Self::MeanExact {
                sum: ExactSum::of(sum),
                count,
            },
            (FloatSums::Exact, Self::Moments { count, mean, m2 }) => exact_moments(count, mean, m2),
            (_, partial) => partial,
        }
    }

    /// Adds one event whose column value is `value` (`None`: null) at `stamp`. Nulls are counted
    /// only by `count` of rows and kept only by `first`/`last`; NaN is ignored by numeric ones.
    pub fn update(&mut self, value: Option<&Scalar>, stamp: Stamp) {
        let number = value.and_then(Scalar::as_f64).filter(|x| !x.is_nan());
        match self {
            Self::CountRows(n) => *n = n.saturating_add(1),
            Self::CountValues(n) => *n = n.saturating_add(u64::from(value.is_some())),
            Self::SumInt(sum) => {
                if let Some(Scalar::Int64(v)) = value {
                    *sum = sum.saturating_add(i128::from(*v));
                }
            }
            Self::SumFloat(sum) => *sum += number.unwrap_or(0.0),
            Self::SumExact(sum) => sum.add(number.unwrap_or(0.0)),
            Self::Mean { sum, count } => {
                if let Some(x) = number {
                    *sum += x;
                    *count = count.saturating_add(1);
                }
            }
            Self::MeanExact { sum, count } => {
                if let Some(x) = number {
                    sum.add(x);
                    *count = count.saturating_add(1);
                }
            }
            Self::MomentsExact {
                count,
                sum,
                squares,
            } => {
                if let Some(x) = number {
                    *count = count.saturating_add(1);
                    sum.add(x);
                    squares.add_square(x);
                }
            }
            Self::Min(current) => keep_extreme(current, value, std::cmp::Ordering::Less),
            Self::Max(current) => keep_extreme(current, value, std::cmp::Ordering::Greater),
            Self::Moments { count, mean, m2 } => {
                if let Some(x) = number {
                    *count = count.saturating_add(1);
                    let delta = x - *mean;
                    *mean += delta / *count as f64;
                    *m2 += delta * (x - *mean);
                }
            }
            Self::Last(current) => {
                if current.as_ref().is_none_or(|(s, _)| stamp > *s) {
                    *current = Some((stamp, value.cloned()));
                }
            }
            Self::First(current) => {
                if current.as_ref().is_none_or(|(s, _)| stamp < *s) {
                    *current = Some((stamp, value.cloned()));
                }
            }
            Self::Distinct(sketch) => {
                if let Some(v) = value {
                    sketch.insert(v);
                }
            }
        }
    }

    /// Folds `other` (a partial of the same feature) into this one. Partials of different
    /// aggregations never meet (both come from one feature definition); such a merge does nothing.
    pub fn merge(&mut self, other: &Partial) {
        // A record folded with sequential floats meets an exact one (records written before
        // and after exact sums): both become exact.
        if let (
            Self::SumFloat(_) | Self::Mean { .. } | Self::Moments { .. },
            Self::SumExact(_) | Self::MeanExact { .. } | Self::MomentsExact { .. },
        ) = (&*self, other)
        {
            *self = std::mem::replace(self, Self::CountRows(0)).with_float_sums(FloatSums::Exact);
        }
        // Counts and integer sums saturate: a stored record is input (from disk, from another
        // node's snapshot), and a corrupt one must not overflow (a panic in a debug build,
        // a wrapped count in a release one).
        match (self, other) {
            (Self::SumExact(a), Self::SumExact(b)) => a.merge(b),
            (Self::SumExact(a), Self::SumFloat(b)) => a.merge(&ExactSum::of(*b)),
            (Self::MeanExact { sum, count }, Self::MeanExact { sum: s, count: c }) => {
                sum.merge(s);
                *count = count.saturating_add(*c);
            }
            (Self::MeanExact { sum, count }, Self::Mean { sum: s, count: c }) => {
                sum.merge(&ExactSum::of(*s));
                *count = count.saturating_add(*c);
            }
            (
                Self::MomentsExact {
                    count,
                    sum,
                    squares,
                },
                other @ (Self::MomentsExact { .. } | Self::Moments { .. }),
            ) => {
                let converted;
                let other = match other {
                    Self::Moments { count, mean, m2 } => {
                        converted = exact_moments(*count, *mean, *m2);
                        &converted
                    }
                    exact => exact,
                };
                if let Self::MomentsExact {
                    count: c,
                    sum: s,
                    squares: q,
                } = other
                {
                    *count = count.saturating_add(*c);
                    sum.merge(s);
                    squares.merge(q);
                }
            }
            (Self::CountRows(a), Self::CountRows(b))
            | (Self::CountValues(a), Self::CountValues(b)) => *a = a.saturating_add(*b),
            (Self::SumInt(a), Self::SumInt(b)) => *a = a.saturating_add(*b),
            (Self::SumFloat(a), Self::SumFloat(b)) => *a += b,
            (Self::Mean { sum, count }, Self::Mean { sum: s, count: c }) => {
                *sum += s;
                *count = count.saturating_add(*c);
            }
            (Self::Min(a), Self::Min(b)) => keep_extreme(a, b.as_ref(), std::cmp::Ordering::Less),
            (Self::Max(a), Self::Max(b)) => {
                keep_extreme(a, b.as_ref(), std::cmp::Ordering::Greater)
            }
            (
                Self::Moments { count, mean, m2 },
                Self::Moments {
                    count: nb,
                    mean: mb,
                    m2: m2b,
                },
            ) => {
                if *nb == 0 {
                    return;
                }
                let na = *count as f64;
                let n = na + *nb as f64;
                let delta = mb - *mean;
                *mean += delta * (*nb as f64) / n;
                *m2 += m2b + delta * delta * na * (*nb as f64) / n;
                *count = count.saturating_add(*nb);
            }
            (Self::Last(a), Self::Last(b)) => {
                if let Some((stamp, _)) = b {
                    if a.as_ref().is_none_or(|(s, _)| stamp > s) {
                        a.clone_from(b);
                    }
                }
            }
            (Self::First(a), Self::First(b)) => {
                if let Some((stamp, _)) = b {
                    if a.as_ref().is_none_or(|(s, _)| stamp < s) {
                        a.clone_from(b);
                    }
                }
            }
            (Self::Distinct(a), Self::Distinct(b)) => a.merge(b),
            _ => {}
        }
    }

    /// The feature value: counts are 0 over no events; every other aggregation of no values is
    /// null (`None`), as in SQL.
    pub fn finish(&self) -> Option<Scalar> {
        match self {
            Self::CountRows(n) | Self::CountValues(n) => {
                Some(Scalar::Int64(i64::try_from(*n).unwrap_or(i64::MAX)))
            }
            Self::SumInt(sum) => Some(Scalar::Int64(i64::try_from(*sum).unwrap_or(if *sum < 0 {
                i64::MIN
            } else {
                i64::MAX
            }))),
            Self::SumFloat(sum) => Some(Scalar::Float64(*sum)),
            Self::SumExact(sum) => Some(Scalar::Float64(sum.value())),
            Self::Mean { sum, count } => (*count > 0).then(|| Scalar::Float64(sum / *count as f64)),
            Self::MeanExact { sum, count } => {
                (*count > 0).then(|| Scalar::Float64(sum.mean(*count)))
            }
            Self::Min(v) | Self::Max(v) => v.clone(),
            Self::Moments { .. } | Self::MomentsExact { .. } => self
                .mean_and_deviation()
                .map(|(_, _, deviation)| Scalar::Float64(deviation)),
            Self::Last(v) | Self::First(v) => v.as_ref().and_then(|(_, value)| value.clone()),
            Self::Distinct(sketch) => Some(Scalar::Int64(
                i64::try_from(sketch.estimate()).unwrap_or(i64::MAX),
            )),
        }
    }
}

impl Partial {
    /// A `stddev` partial's count, mean and population standard deviation, if it has values
    /// (None for any other partial).
    pub fn mean_and_deviation(&self) -> Option<(u64, f64, f64)> {
        match self {
            Self::Moments { count, mean, m2 } if *count > 0 => {
                Some((*count, *mean, (m2 / *count as f64).max(0.0).sqrt()))
            }
            Self::MomentsExact {
                count,
                sum,
                squares,
            } if *count > 0 => Some((*count, sum.mean(*count), squares.deviation(sum, *count))),
            _ => None,
        }
    }
}

/// Welford moments (count, mean, m2) as exact sums with the same count, mean and deviation
/// up to the rounding of those f64s: sum = mean * count, squares = m2 + mean^2 * count, so
/// that count * squares - sum^2 = count * m2 exactly.
fn exact_moments(count: u64, mean: f64, m2: f64) -> Partial {
    if !(mean.is_finite() && m2.is_finite()) {
        // Moments an infinity made NaN stay without a deviation.
        return Partial::MomentsExact {
            count,
            sum: ExactSum::of(f64::NAN),
            squares: ExactSum::default(),
        };
    }
    let mean = ExactSum::of(mean);
    let mut squares = mean.squared().times(count);
    squares.add(m2);
    Partial::MomentsExact {
        count,
        sum: mean.times(count),
        squares,
    }
}

/// Keeps in `current` whichever of it and `candidate` compares as `wanted` (Less for min).
/// int64 compares exactly; other numerics as f64; NaN and non-numeric values are ignored.
fn keep_extreme(
    current: &mut Option<Scalar>,
    candidate: Option<&Scalar>,
    wanted: std::cmp::Ordering,
) {
    let Some(candidate) = candidate else { return };
    let order = match (current.as_ref(), candidate) {
        (None, c) => {
            if c.as_f64().is_some_and(|x| !x.is_nan()) {
                *current = Some(c.clone());
            }
            return;
        }
        (Some(Scalar::Int64(a)), Scalar::Int64(b)) => b.cmp(a),
        (Some(a), b) => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => match y.partial_cmp(&x) {
                Some(order) => order,
                None => return,
            },
            _ => return,
        },
    };
    if order == wanted {
        *current = Some(candidate.clone());
    }
}

#[cfg(test)]
#[path = "partial_tests.rs"]
mod tests;
