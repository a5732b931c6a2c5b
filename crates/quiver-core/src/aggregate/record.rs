//! A tile record: the partials of one (view, entity, tile) or of an entity's running record,
//! with the latest event time they include, and its stored binary form.
//!
//! The format is self-describing (every partial carries its tag), so records merge without the
//! view definition — which is what lets the online store merge them inside RocksDB. Format:
//! `u8 version (1)`, `i64 max event micros`, `u32 count`, then per partial a tag and its payload,
//! all little-endian. It never changes meaning; a new layout gets a new version byte.

use super::exact_sum::{ExactSum, MAX_LIMBS};
use super::hll::{Hll, REGISTERS};
use super::partial::{FloatSums, Partial, Stamp};
use crate::scalar::Scalar;
use crate::tiling::AggregateSpec;

const VERSION: u8 = 1;

/// The partials of one tile (or running record) of one entity.
#[derive(Debug, Clone, PartialEq)]
pub struct TileRecord {
    /// The latest event time merged in, microseconds (`i64::MIN` when empty).
    pub max_event_micros: i64,
    /// One partial per member aggregate, in layout order.
    pub partials: Vec<Partial>,
}

/// A stored record that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tile record is corrupt: {0}")]
pub struct CorruptRecord(pub &'static str);

impl TileRecord {
    /// An empty record with a partial for each of `members` (indexes into `specs`), its
    /// floats added exactly.
    pub fn empty(specs: &[AggregateSpec], members: &[usize]) -> Self {
        Self::empty_with(specs, members, FloatSums::Exact)
    }

    /// An empty record whose partials add floats as `sums` say.
    pub fn empty_with(specs: &[AggregateSpec], members: &[usize], sums: FloatSums) -> Self {
        Self {
            max_event_micros: i64::MIN,
            partials: members
                .iter()
                .map(|m| {
                    let spec = &specs[*m];
                    Partial::empty(
                        spec.aggregation,
                        spec.column.is_some(),
                        Some(spec.value_type),
                    )
                    .with_float_sums(sums)
                })
                .collect(),
        }
    }

    /// Adds one event at `stamp`: `inputs[m]` is the input of member `m` (`None`: null or no
    /// column). The online store's apply and the offline snapshot both fold rows with this.
    pub fn add(&mut self, members: &[usize], stamp: Stamp, inputs: &[Option<&Scalar>]) {
        self.max_event_micros = self.max_event_micros.max(stamp.event_micros);
        for (partial, member) in self.partials.iter_mut().zip(members) {
            partial.update(inputs.get(*member).copied().flatten(), stamp);
        }
    }

    /// Folds `other` (a record of the same layout) into this one, partial by partial.
    pub fn merge(&mut self, other: &TileRecord) {
        self.max_event_micros = self.max_event_micros.max(other.max_event_micros);
        if self.partials.len() < other.partials.len() {
            self.partials
                .extend_from_slice(&other.partials[self.partials.len()..]);
        }
        for (mine, theirs) in self.partials.iter_mut().zip(&other.partials) {
            mine.merge(theirs);
        }
    }

    /// The stored form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.partials.len() * 20);
        self.encode_into(&mut out);
        out
    }

    /// Appends the stored form to `out` (many records into one buffer: no allocation each).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        out.extend_from_slice(&self.max_event_micros.to_le_bytes());
        out.extend_from_slice(&(self.partials.len() as u32).to_le_bytes());
        for partial in &self.partials {
            encode_partial(partial, out);
        }
    }

    /// Reads a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Self, CorruptRecord> {
        let mut r = Reader(bytes);
        if r.u8()? != VERSION {
            return Err(CorruptRecord("unknown version"));
        }
        let max_event_micros = r.i64()?;
        let count = r.u32()? as usize;
        let mut partials = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            partials.push(decode_partial(&mut r)?);
        }
        if !r.0.is_empty() {
            return Err(CorruptRecord("trailing bytes"));
        }
        Ok(Self {
            max_event_micros,
            partials,
        })
    }
}

/// Merges stored records oldest first: `existing` (if any) then each operand, skipping any that
/// does not decode (the same way on every replica). The result is always a valid record.
pub fn merge_stored<'a>(
    existing: Option<&[u8]>,
    operands: impl IntoIterator<Item = &'a [u8]>,
) -> Vec<u8> {
    let mut merged: Option<TileRecord> = existing.and_then(|b| TileRecord::decode(b).ok());
    for operand in operands {
        if let Ok(record) = TileRecord::decode(operand) {
            match merged.as_mut() {
                Some(m) => m.merge(&record),
                None => merged = Some(record),
            }
        }
    }
    merged
        .unwrap_or(TileRecord {
            max_event_micros: i64::MIN,
            partials: Vec::new(),
        })
        .encode()
}

mod tag {
    pub const COUNT_ROWS: u8 = 1;
    pub const COUNT_VALUES: u8 = 2;
    pub const SUM_INT: u8 = 3;
    pub const SUM_FLOAT: u8 = 4;
    pub const MEAN: u8 = 5;
    pub const MIN: u8 = 6;
    pub const MAX: u8 = 7;
    pub const MOMENTS: u8 = 8;
    pub const LAST: u8 = 9;
    pub const FIRST: u8 = 10;
    pub const DISTINCT_SPARSE: u8 = 11;
    pub const DISTINCT_DENSE: u8 = 12;
    pub const SUM_EXACT: u8 = 13;
    pub const MEAN_EXACT: u8 = 14;
    pub const MOMENTS_EXACT: u8 = 15;
}

/// An [`ExactSum`] as `ExactSum::encode_into` wrote it.
fn decode_exact(r: &mut Reader<'_>) -> Result<ExactSum, CorruptRecord> {
    let infinities = r.u8()?;
    let base = i32::from_le_bytes(r.array()?);
    let count = usize::from(r.u8()?);
    if count > MAX_LIMBS {
        return Err(CorruptRecord("exact sum too long"));
    }
    let mut limbs = Vec::with_capacity(count);
    for _ in 0..count {
        limbs.push(r.u64()?);
    }
    ExactSum::from_parts(infinities, base, limbs).ok_or(CorruptRecord("exact sum"))
}

fn encode_partial(partial: &Partial, out: &mut Vec<u8>) {
    match partial {
        Partial::CountRows(n) => {
            out.push(tag::COUNT_ROWS);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Partial::CountValues(n) => {
            out.push(tag::COUNT_VALUES);
            out.extend_from_slice(&n.to_le_bytes());
        }
        Partial::SumInt(sum) => {
            out.push(tag::SUM_INT);
            out.extend_from_slice(&sum.to_le_bytes());
        }
        Partial::SumFloat(sum) => {
            out.push(tag::SUM_FLOAT);
            out.extend_from_slice(&sum.to_le_bytes());
        }
        Partial::SumExact(sum) => {
            out.push(tag::SUM_EXACT);
            sum.encode_into(out);
        }
        Partial::MeanExact { sum, count } => {
            out.push(tag::MEAN_EXACT);
            sum.encode_into(out);
            out.extend_from_slice(&count.to_le_bytes());
        }
        Partial::MomentsExact {
            count,
            sum,
            squares,
        } => {
            out.push(tag::MOMENTS_EXACT);
            out.extend_from_slice(&count.to_le_bytes());
            sum.encode_into(out);
            squares.encode_into(out);
        }
        Partial::Mean { sum, count } => {
            out.push(tag::MEAN);
            out.extend_from_slice(&sum.to_le_bytes());
            out.extend_from_slice(&count.to_le_bytes());
        }
        Partial::Min(v) => {
            out.push(tag::MIN);
            encode_scalar(v.as_ref(), out);
        }
        Partial::Max(v) => {
            out.push(tag::MAX);
            encode_scalar(v.as_ref(), out);
        }
        Partial::Moments { count, mean, m2 } => {
            out.push(tag::MOMENTS);
            out.extend_from_slice(&count.to_le_bytes());
            out.extend_from_slice(&mean.to_le_bytes());
            out.extend_from_slice(&m2.to_le_bytes());
        }
        Partial::Last(v) | Partial::First(v) => {
            out.push(if matches!(partial, Partial::Last(_)) {
                tag::LAST
            } else {
                tag::FIRST
            });
            match v {
                None => out.push(0),
                Some((stamp, value)) => {
                    out.push(1);
                    out.extend_from_slice(&stamp.event_micros.to_le_bytes());
                    out.extend_from_slice(&stamp.sequence.to_le_bytes());
                    encode_scalar(value.as_ref(), out);
                }
            }
        }
        Partial::Distinct(sketch) => {
            let set = sketch.set_count();
            // Sparse (index u16, rank u8) pairs while they are smaller than the dense form.
            if set * 3 < REGISTERS {
                out.push(tag::DISTINCT_SPARSE);
                out.extend_from_slice(&(set as u16).to_le_bytes());
                for (index, rank) in sketch.set_registers() {
                    out.extend_from_slice(&index.to_le_bytes());
                    out.push(rank);
                }
            } else {
                out.push(tag::DISTINCT_DENSE);
                out.extend_from_slice(&sketch.registers());
            }
        }
    }
}

fn decode_partial(r: &mut Reader<'_>) -> Result<Partial, CorruptRecord> {
    Ok(match r.u8()? {
        tag::COUNT_ROWS => Partial::CountRows(r.u64()?),
        tag::COUNT_VALUES => Partial::CountValues(r.u64()?),
        tag::SUM_INT => Partial::SumInt(i128::from_le_bytes(r.array()?)),
        tag::SUM_FLOAT => Partial::SumFloat(r.f64()?),
        tag::MEAN => Partial::Mean {
            sum: r.f64()?,
            count: r.u64()?,
        },
        tag::MIN => Partial::Min(decode_scalar(r)?),
        tag::MAX => Partial::Max(decode_scalar(r)?),
        tag::MOMENTS => Partial::Moments {
            count: r.u64()?,
            mean: r.f64()?,
            m2: r.f64()?,
        },
        tag::SUM_EXACT => Partial::SumExact(decode_exact(r)?),
        tag::MEAN_EXACT => Partial::MeanExact {
            sum: decode_exact(r)?,
            count: r.u64()?,
        },
        tag::MOMENTS_EXACT => Partial::MomentsExact {
            count: r.u64()?,
            sum: decode_exact(r)?,
            squares: decode_exact(r)?,
        },
        t @ (tag::LAST | tag::FIRST) => {
            let v = match r.u8()? {
                0 => None,
                _ => {
                    let stamp = Stamp {
                        event_micros: r.i64()?,
                        sequence: r.u64()?,
                    };
                    Some((stamp, decode_scalar(r)?))
                }
            };
            if t == tag::LAST {
                Partial::Last(v)
            } else {
                Partial::First(v)
            }
        }
        tag::DISTINCT_SPARSE => {
            let set = usize::from(u16::from_le_bytes(r.array()?));
            let mut pairs = Vec::with_capacity(set);
            for _ in 0..set {
                pairs.push((u16::from_le_bytes(r.array()?), r.u8()?));
            }
            Partial::Distinct(
                Hll::from_set_registers(pairs).ok_or(CorruptRecord("register index"))?,
            )
        }
        tag::DISTINCT_DENSE => Partial::Distinct(
            Hll::from_registers(r.take(REGISTERS)?).ok_or(CorruptRecord("sketch"))?,
        ),
        _ => return Err(CorruptRecord("unknown partial tag")),
    })
}

mod scalar_tag {
    pub const NULL: u8 = 0;
    pub const INT64: u8 = 1;
    pub const FLOAT64: u8 = 2;
    pub const FLOAT32: u8 = 3;
    pub const BOOL: u8 = 4;
    pub const STRING: u8 = 5;
    pub const BYTES: u8 = 6;
    pub const TIMESTAMP: u8 = 7;
    pub const FLOAT32_LIST: u8 = 8;
}

fn encode_scalar(value: Option<&Scalar>, out: &mut Vec<u8>) {
    let with_len = |out: &mut Vec<u8>, tag: u8, bytes: &[u8]| {
        out.push(tag);
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
    };
    match value {
        None => out.push(scalar_tag::NULL),
        Some(Scalar::Int64(v)) => {
            out.push(scalar_tag::INT64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Some(Scalar::Float64(v)) => {
            out.push(scalar_tag::FLOAT64);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Some(Scalar::Float32(v)) => {
            out.push(scalar_tag::FLOAT32);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Some(Scalar::Bool(v)) => {
            out.push(scalar_tag::BOOL);
            out.push(u8::from(*v));
        }
        Some(Scalar::String(s)) => with_len(out, scalar_tag::STRING, s.as_bytes()),
        Some(Scalar::Bytes(b)) => with_len(out, scalar_tag::BYTES, b),
        Some(Scalar::Timestamp(v)) => {
            out.push(scalar_tag::TIMESTAMP);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Some(Scalar::Float32List(list)) => {
            out.push(scalar_tag::FLOAT32_LIST);
            out.extend_from_slice(&(list.len() as u32).to_le_bytes());
            for x in list {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
    }
}

fn decode_scalar(r: &mut Reader<'_>) -> Result<Option<Scalar>, CorruptRecord> {
    Ok(Some(match r.u8()? {
        scalar_tag::NULL => return Ok(None),
        scalar_tag::INT64 => Scalar::Int64(r.i64()?),
        scalar_tag::FLOAT64 => Scalar::Float64(r.f64()?),
        scalar_tag::FLOAT32 => Scalar::Float32(f32::from_le_bytes(r.array()?)),
        scalar_tag::BOOL => Scalar::Bool(r.u8()? != 0),
        scalar_tag::STRING => {
            let len = r.u32()? as usize;
            Scalar::String(
                String::from_utf8(r.take(len)?.to_vec()).map_err(|_| CorruptRecord("utf-8"))?,
            )
        }
        scalar_tag::BYTES => {
            let len = r.u32()? as usize;
            Scalar::Bytes(r.take(len)?.to_vec())
        }
        scalar_tag::TIMESTAMP => Scalar::Timestamp(r.i64()?),
        scalar_tag::FLOAT32_LIST => {
            let len = r.u32()? as usize;
            let bytes = r.take(len.checked_mul(4).ok_or(CorruptRecord("list length"))?)?;
            Scalar::Float32List(
                bytes
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        _ => return Err(CorruptRecord("unknown value tag")),
    }))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CorruptRecord> {
        if self.0.len() < n {
            return Err(CorruptRecord("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], CorruptRecord> {
        self.take(N)?
            .try_into()
            .map_err(|_| CorruptRecord("truncated"))
    }

    fn u8(&mut self) -> Result<u8, CorruptRecord> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, CorruptRecord> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, CorruptRecord> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    fn i64(&mut self) -> Result<i64, CorruptRecord> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64, CorruptRecord> {
        Ok(f64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::Aggregation;
    use crate::ValueType;

    fn every_partial() -> Vec<Partial> {
        let stamp = |e, s| Stamp {
            event_micros: e,
            sequence: s,
        };
        let mut sketch = Hll::default();
        for i in 0..50 {
            sketch.insert(&Scalar::Int64(i));
        }
        let mut dense = Hll::default();
        for i in 0..100_000 {
            dense.insert(&Scalar::Int64(i));
        }
        vec![
            Partial::CountRows(7),
            Partial::CountValues(3),
            Partial::SumInt(-(1i128 << 70)),
            Partial::SumFloat(2.5),
            Partial::Mean {
                sum: 10.0,
                count: 4,
            },
            Partial::Min(Some(Scalar::Int64(-9))),
            Partial::Max(None),
            Partial::Moments {
                count: 3,
                mean: 1.5,
                m2: 0.25,
            },
            Partial::Last(Some((stamp(5, 9), Some(Scalar::String("é".into()))))),
            Partial::First(Some((stamp(-5, 1), None))),
            Partial::Last(None),
            Partial::Last(Some((
                stamp(1, 2),
                Some(Scalar::Float32List(vec![0.5, -1.0])),
            ))),
            Partial::Max(Some(Scalar::Bytes(vec![0, 1]))),
            Partial::Min(Some(Scalar::Timestamp(77))),
            Partial::Min(Some(Scalar::Bool(true))),
            Partial::Max(Some(Scalar::Float32(0.25))),
            Partial::Distinct(sketch),
            Partial::Distinct(dense),
        ]
    }

    #[test]
    fn records_round_trip() {
        let record = TileRecord {
            max_event_micros: 123,
            partials: every_partial(),
        };
        let bytes = record.encode();
        assert_eq!(TileRecord::decode(&bytes), Ok(record));
        assert!(TileRecord::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(TileRecord::decode(&[2]).is_err());
    }

    #[test]
    fn sparse_sketches_are_small() {
        let mut sketch = Hll::default();
        sketch.insert(&Scalar::String("m1".into()));
        let record = TileRecord {
            max_event_micros: 0,
            partials: vec![Partial::Distinct(sketch)],
        };
        assert!(record.encode().len() < 32);
    }

    #[test]
    fn stored_merge_equals_in_memory_merge() {
        let specs = [Aggregation::Count, Aggregation::Sum, Aggregation::Last];
        let record = |values: &[i64], max| {
            let mut partials: Vec<Partial> = specs
                .iter()
                .map(|a| Partial::empty(*a, true, Some(ValueType::Int64)))
                .collect();
            for (i, v) in values.iter().enumerate() {
                for p in &mut partials {
                    p.update(
                        Some(&Scalar::Int64(*v)),
                        Stamp {
                            event_micros: *v,
                            sequence: i as u64,
                        },
                    );
                }
            }
            TileRecord {
                max_event_micros: max,
                partials,
            }
        };
        let a = record(&[1, 2], 2);
        let b = record(&[5], 5);
        let c = record(&[3, 4], 4);
        let stored = merge_stored(
            Some(&a.encode()),
            [b.encode().as_slice(), b"junk", c.encode().as_slice()],
        );
        let mut expected = a.clone();
        expected.merge(&b);
        expected.merge(&c);
        assert_eq!(TileRecord::decode(&stored), Ok(expected));
        // Nothing decodable gives an empty, valid record.
        let empty = merge_stored(None, [b"x".as_slice()]);
        assert_eq!(TileRecord::decode(&empty).map(|r| r.partials.len()), Ok(0));
    }

    /// Stored records are read from disk and from snapshots another node sent: mutated records
    /// of every partial kind must decode or be refused, and whatever decodes must merge with
    /// anything (`merge_stored` does exactly that on every replica) without a panic.
    #[test]
    fn mutated_records_never_panic_when_decoded_or_merged() {
        let valid: Vec<Vec<u8>> = every_partial()
            .into_iter()
            .map(|p| {
                TileRecord {
                    max_event_micros: 9,
                    partials: vec![p.clone(), p],
                }
                .encode()
            })
            .collect();
        // `make fuzz` runs more, from a fresh seed.
        let mut rng = crate::mutation::Rng::from_env(0x2545_F491_4F6C_DD1D);
        for _ in 0..crate::mutation::cases(20_000) {
            let seed = rng.pick(&valid).clone();
            let bytes = crate::mutation::mutate(&mut rng, seed);
            let other = rng.pick(&valid);
            let merged = merge_stored(Some(&bytes), [other.as_slice(), bytes.as_slice()]);
            assert!(TileRecord::decode(&merged).is_ok());
            let _ = merge_stored(Some(other), [bytes.as_slice()]);
        }
    }
}
