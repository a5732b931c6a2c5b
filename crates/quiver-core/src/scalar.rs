//! Typed values as the domain sees them (the wire's `quiver.types.v1.Value` without protobuf).

/// A non-null feature or column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar {
    /// int64.
    Int64(i64),
    /// float64.
    Float64(f64),
    /// float32.
    Float32(f32),
    /// bool.
    Bool(bool),
    /// string.
    String(String),
    /// bytes.
    Bytes(Vec<u8>),
    /// timestamp, microseconds since the Unix epoch.
    Timestamp(i64),
    /// float32 list (embedding).
    Float32List(Vec<f32>),
}

/// `x` for a float32 column: rounded to float32's precision, as the column stores it, but
/// refused when a finite `x` is beyond float32's range, where it would silently become an
/// infinity (a wrong value, not a rounded one).
pub fn to_f32(x: f64) -> Result<f32, String> {
    let narrowed = x as f32;
    if x.is_finite() && narrowed.is_infinite() {
        return Err(format!("{x:e} is out of float32's range (about ±3.4e38)"));
    }
    Ok(narrowed)
}

impl Scalar {
    /// The value as f64, for numeric aggregations (`None` for non-numeric types).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int64(v) => Some(*v as f64),
            Self::Float64(v) => Some(*v),
            Self::Float32(v) => Some(f64::from(*v)),
            _ => None,
        }
    }

    /// A hash that is the same on every machine, process and Rust version (replicas and the
    /// offline path must agree on approximate distinct counts): FNV-1a over a type tag and the
    /// value's bytes, then a 64-bit finalizer to spread the bits.
    pub fn stable_hash(&self) -> u64 {
        let mut h = Fnv::new();
        match self {
            Self::Int64(v) => h.tagged(b'i', &v.to_le_bytes()),
            Self::Float64(v) => h.tagged(b'd', &v.to_bits().to_le_bytes()),
            Self::Float32(v) => h.tagged(b'f', &v.to_bits().to_le_bytes()),
            Self::Bool(v) => h.tagged(b'b', &[u8::from(*v)]),
            Self::String(v) => h.tagged(b's', v.as_bytes()),
            Self::Bytes(v) => h.tagged(b'y', v),
            Self::Timestamp(v) => h.tagged(b't', &v.to_le_bytes()),
            Self::Float32List(v) => {
                h.tagged(b'l', &(v.len() as u64).to_le_bytes());
                for x in v {
                    h.bytes(&x.to_bits().to_le_bytes());
                }
            }
        }
        mix64(h.0)
    }
}

/// FNV-1a of `bytes` (64-bit): a hash every machine and Rust version agrees on.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = Fnv::new();
    h.bytes(bytes);
    h.0
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }

    fn tagged(&mut self, tag: u8, bytes: &[u8]) {
        self.bytes(&[tag]);
        self.bytes(bytes);
    }
}

/// The splitmix64 / murmur3 finalizer: every input bit affects every output bit.
fn mix64(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

#[cfg(test)]
mod tests {
    #[test]
    fn float32_narrowing_refuses_overflow_not_rounding() {
        use super::to_f32;
        assert_eq!(to_f32(1.5), Ok(1.5));
        assert_eq!(to_f32(0.1), Ok(0.1f32));
        assert_eq!(to_f32(1e-50), Ok(0.0));
        assert_eq!(to_f32(f64::from(f32::MAX)), Ok(f32::MAX));
        assert_eq!(to_f32(f64::INFINITY), Ok(f32::INFINITY));
        assert!(to_f32(f64::NAN).unwrap().is_nan());
        assert_eq!(
            to_f32(1e300),
            Err("1e300 is out of float32's range (about ±3.4e38)".into())
        );
        assert!(to_f32(-1e39).is_err());
    }
    use super::*;

    /// Computed once from this implementation; it must never change.
    const PINNED_QUIVER_HASH: u64 = 12_658_413_455_941_478_981;

    #[test]
    fn hashes_are_stable_and_type_aware() {
        // Pinned: a change here changes every stored distinct-count sketch.
        assert_eq!(
            Scalar::Int64(1).stable_hash(),
            Scalar::Int64(1).stable_hash()
        );
        assert_ne!(
            Scalar::Int64(1).stable_hash(),
            Scalar::Timestamp(1).stable_hash()
        );
        assert_ne!(
            Scalar::String("1".into()).stable_hash(),
            Scalar::Bytes(b"1".to_vec()).stable_hash()
        );
        assert_eq!(
            Scalar::String("quiver".into()).stable_hash(),
            PINNED_QUIVER_HASH
        );
    }

    #[test]
    fn numeric_views() {
        assert_eq!(Scalar::Int64(3).as_f64(), Some(3.0));
        assert_eq!(Scalar::Float32(0.5).as_f64(), Some(0.5));
        assert_eq!(Scalar::String("3".into()).as_f64(), None);
    }
}
