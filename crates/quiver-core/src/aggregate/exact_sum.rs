//! An exact sum of f64 values, so a float aggregate does not depend on the order or grouping
//! of its additions. Serving folds events per log entry, a backfill per chunk, a snapshot per
//! source-log file, RocksDB merges records oldest first: floating-point addition gives each
//! grouping different last bits, an exact sum rounded once gives them all the same bits.
//!
//! Every finite f64 is an integer of at most 53 bits times 2^e, e in -1074..=971, so a
//! two's-complement integer of 64-bit limbs scaled by 2^(64 * base) holds any sum of them
//! exactly; typical data (amounts, prices, counts of seconds) spans two or three limbs.
//! Infinities have no exact value: they are noted by sign and finish as IEEE addition would
//! (the infinity, or NaN for both signs). NaN is the caller's to leave out.

/// The sum of some f64 values, exactly.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExactSum {
    /// The power of two of the lowest limb, in limbs: the value is `limbs * 2^(64 * base)`.
    base: i32,
    /// Little-endian two's complement, canonical (no zero limb at the bottom, no redundant
    /// sign limb at the top, empty for zero), so equal sums are equal values of this type.
    limbs: Vec<u64>,
    /// Infinities added: bit 0 positive, bit 1 negative.
    infinities: u8,
}

/// The most limbs a stored sum may have: a sum of squares spans 2^-2148 to 2^2048 and
/// 2^64 terms (about 67 limbs); more is a corrupt record.
pub const MAX_LIMBS: usize = 80;

impl ExactSum {
    /// Adds `x` (NaN is ignored).
    pub fn add(&mut self, x: f64) {
        if x.is_nan() || x == 0.0 {
            return;
        }
        if x.is_infinite() {
            self.infinities |= if x > 0.0 { 1 } else { 2 };
            return;
        }
        let (mantissa, exponent) = decompose(x);
        let wide = u128::from(mantissa) << exponent.rem_euclid(64);
        let mut part = [wide as u64, (wide >> 64) as u64, 0];
        if x < 0.0 {
            negate(&mut part);
        }
        self.add_limbs(exponent.div_euclid(64), &part);
    }

    /// Adds `x * x`, exactly: the square of the 53-bit mantissa as an integer, at twice the
    /// exponent (a square of any finite f64 fits: 2^-2148 to 2^2048).
    pub fn add_square(&mut self, x: f64) {
        if x.is_nan() || x == 0.0 {
            return;
        }
        if x.is_infinite() {
            self.infinities |= 1;
            return;
        }
        let (mantissa, exponent) = decompose(x);
        let square = u128::from(mantissa) * u128::from(mantissa);
        let at = 2 * exponent;
        let shift = at.rem_euclid(64) as u32;
        // Up to 106 + 63 bits: the low 128 after the shift, and what it pushed out.
        let low = square << shift;
        let high = if shift == 0 {
            0
        } else {
            square >> (128 - shift)
        };
        let part = [low as u64, (low >> 64) as u64, high as u64, 0];
        self.add_limbs(at.div_euclid(64), &part);
    }

    /// Adds another sum.
    pub fn merge(&mut self, other: &ExactSum) {
        self.infinities |= other.infinities;
        self.add_limbs(other.base, &other.limbs);
    }

    /// Exactly `x`, an f64 sum written before sums were exact: NaN (what f64 addition makes
    /// of both infinities) as both infinities, so it stays NaN.
    pub fn of(x: f64) -> Self {
        let mut sum = Self::default();
        if x.is_nan() {
            sum.infinities = 3;
        } else {
            sum.add(x);
        }
        sum
    }

    /// The sum rounded to the nearest f64 (ties to even): the same bits whatever the order of
    /// the additions.
    pub fn value(&self) -> f64 {
        match self.infinities {
            1 => return f64::INFINITY,
            2 => return f64::NEG_INFINITY,
            3 => return f64::NAN,
            _ => {}
        }
        let Some(&top) = self.limbs.last() else {
            return 0.0;
        };
        let negative = (top as i64) < 0;
        let mut magnitude = self.limbs.clone();
        if negative {
            negate(&mut magnitude);
        }
        let magnitude = rounded(&magnitude, i64::from(self.base) * 64);
        if negative {
            -magnitude
        } else {
            magnitude
        }
    }

    /// The sum divided by `n`: the exact sum rounded to 53 bits, divided, then scaled by its
    /// power of two, so a mean of values near f64's largest is not infinite on the way.
    pub fn mean(&self, n: u64) -> f64 {
        match self.split() {
            Split::Special(x) => x / n as f64,
            Split::Zero => 0.0,
            Split::Finite {
                negative,
                mantissa,
                exponent,
            } => {
                let mean = scaled(mantissa as f64 / n as f64, exponent);
                if negative {
                    -mean
                } else {
                    mean
                }
            }
        }
    }

    /// The population standard deviation of `n` values whose sum of squares is `self` and sum
    /// is `sum`: `sqrt(n * squares - sum^2) / n`, the difference exact (so nothing cancels),
    /// rounded to 53 bits once and scaled apart from its power of two (so squares beyond f64's
    /// range, or below it, lose nothing first). NaN when an infinity was among the values.
    pub fn deviation(&self, sum: &ExactSum, n: u64) -> f64 {
        if self.infinities != 0 || sum.infinities != 0 {
            return f64::NAN;
        }
        let (mut scaled_squares, mut square) = (self.times(n), sum.squared());
        negate_sum(&mut square);
        scaled_squares.merge(&square);
        match scaled_squares.split() {
            // Never negative: the difference is exact and n·Σx² ≥ (Σx)².
            Split::Zero | Split::Finite { negative: true, .. } => 0.0,
            Split::Special(x) => x,
            Split::Finite {
                mantissa, exponent, ..
            } => {
                // An even power of two, so its square root is exact.
                let (mantissa, exponent) = if exponent % 2 == 0 {
                    (mantissa as f64, exponent)
                } else {
                    (mantissa as f64 * 2.0, exponent - 1)
                };
                scaled(mantissa.sqrt() / n as f64, exponent / 2)
            }
        }
    }

    /// The sum as a sign, 53 significant bits and a power of two (no range limit), rounded
    /// once; or what it is when that is not a number.
    fn split(&self) -> Split {
        match self.infinities {
            1 => return Split::Special(f64::INFINITY),
            2 => return Split::Special(f64::NEG_INFINITY),
            3 => return Split::Special(f64::NAN),
            _ => {}
        }
        let Some(&top) = self.limbs.last() else {
            return Split::Zero;
        };
        let negative = (top as i64) < 0;
        let mut magnitude = self.limbs.clone();
        if negative {
            negate(&mut magnitude);
        }
        match round_to_53_bits(&magnitude, i64::from(self.base) * 64, None) {
            Some((mantissa, exponent)) => Split::Finite {
                negative,
                mantissa,
                exponent,
            },
            None => Split::Zero,
        }
    }

    /// The stored form: infinities, base, limb count, limbs (little-endian).
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.infinities);
        out.extend_from_slice(&self.base.to_le_bytes());
        out.push(self.limbs.len() as u8);
        for limb in &self.limbs {
            out.extend_from_slice(&limb.to_le_bytes());
        }
    }

    /// A sum from its parts as stored (`None`: out of range); made canonical.
    pub fn from_parts(infinities: u8, base: i32, limbs: Vec<u64>) -> Option<Self> {
        if infinities > 3 || limbs.len() > MAX_LIMBS || base.unsigned_abs() > 1_000 {
            return None;
        }
        let mut sum = Self {
            base,
            limbs,
            infinities,
        };
        sum.normalize();
        Some(sum)
    }

    /// Adds the two's-complement number `limbs * 2^(64 * base)`.
    fn add_limbs(&mut self, base: i32, limbs: &[u64]) {
        if limbs.is_empty() {
            return;
        }
        if self.limbs.is_empty() {
            self.base = base;
            self.limbs.extend_from_slice(limbs);
            self.normalize();
            return;
        }
        // Cover both, with a limb above both tops for the carry.
        let top = (self.base + self.limbs.len() as i32).max(base + limbs.len() as i32) + 1;
        if base < self.base {
            let below = (self.base - base) as usize;
            self.limbs.splice(0..0, std::iter::repeat_n(0, below));
            self.base = base;
        }
        let fill = sign_fill(&self.limbs);
        self.limbs.resize((top - self.base) as usize, fill);
        let other_fill = sign_fill(limbs);
        let start = (base - self.base) as usize;
        let mut carry = false;
        for (i, limb) in self.limbs[start..].iter_mut().enumerate() {
            let addend = limbs.get(i).copied().unwrap_or(other_fill);
            let (sum, first) = limb.overflowing_add(addend);
            let (sum, second) = sum.overflowing_add(u64::from(carry));
            *limb = sum;
            carry = first || second;
        }
        self.normalize();
    }

    /// Drops zero limbs at the bottom and sign limbs at the top that the limb below repeats.
    fn normalize(&mut self) {
        let zeros = self.limbs.iter().take_while(|&&l| l == 0).count();
        if zeros == self.limbs.len() {
            self.limbs.clear();
            self.base = 0;
            return;
        }
        if zeros > 0 {
            self.limbs.drain(..zeros);
            self.base += zeros as i32;
        }
        while let [.., below, top] = self.limbs[..] {
            if top != if (below as i64) < 0 { u64::MAX } else { 0 } {
                break;
            }
            self.limbs.pop();
        }
    }

    /// `self * n`.
    pub(crate) fn times(&self, n: u64) -> ExactSum {
        let negative = self.limbs.last().is_some_and(|&top| (top as i64) < 0);
        let mut magnitude = self.limbs.clone();
        if negative {
            negate(&mut magnitude);
        }
        let mut product = Vec::with_capacity(magnitude.len() + 2);
        let mut carry = 0u128;
        for limb in &magnitude {
            let wide = u128::from(*limb) * u128::from(n) + carry;
            product.push(wide as u64);
            carry = wide >> 64;
        }
        product.extend([carry as u64, 0]);
        if negative {
            negate(&mut product);
        }
        let mut sum = ExactSum {
            base: self.base,
            limbs: product,
            infinities: 0,
        };
        sum.normalize();
        sum
    }

    /// `self * self` (never negative).
    pub(crate) fn squared(&self) -> ExactSum {
        let mut magnitude = self.limbs.clone();
        if magnitude.last().is_some_and(|&top| (top as i64) < 0) {
            negate(&mut magnitude);
        }
        let mut product = vec![0u64; magnitude.len() * 2 + 1];
        for (i, a) in magnitude.iter().enumerate() {
            let mut carry = 0u128;
            for (j, b) in magnitude.iter().enumerate() {
                let wide = u128::from(*a) * u128::from(*b) + u128::from(product[i + j]) + carry;
                product[i + j] = wide as u64;
                carry = wide >> 64;
            }
            let mut k = i + magnitude.len();
            while carry > 0 {
                let wide = u128::from(product[k]) + carry;
                product[k] = wide as u64;
                carry = wide >> 64;
                k += 1;
            }
        }
        let mut sum = ExactSum {
            base: self.base * 2,
            limbs: product,
            infinities: 0,
        };
        sum.normalize();
        sum
    }
}

/// `-sum`.
fn negate_sum(sum: &mut ExactSum) {
    sum.limbs.push(sign_fill(&sum.limbs));
    negate(&mut sum.limbs);
    sum.normalize();
}

/// The limb that extends `limbs` upwards: all ones for a negative number.
fn sign_fill(limbs: &[u64]) -> u64 {
    match limbs.last() {
        Some(&top) if (top as i64) < 0 => u64::MAX,
        _ => 0,
    }
}

/// Two's-complement negation in place (the caller leaves room for the sign).
fn negate(limbs: &mut [u64]) {
    let mut carry = true;
    for limb in limbs {
        let (sum, overflow) = (!*limb).overflowing_add(u64::from(carry));
        *limb = sum;
        carry = overflow;
    }
}

/// What a sum is, split for arithmetic beyond f64's range.
enum Split {
    /// Not a finite number: an infinity or NaN.
    Special(f64),
    /// Zero.
    Zero,
    /// `±mantissa * 2^exponent`, `mantissa` at most 2^53.
    Finite {
        negative: bool,
        mantissa: u64,
        exponent: i64,
    },
}

/// `x` as its 53-bit integer mantissa and power of two (`x` finite, not zero).
fn decompose(x: f64) -> (u64, i32) {
    let bits = x.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1 << 52) - 1);
    if biased == 0 {
        (fraction, -1074)
    } else {
        (fraction | 1 << 52, biased - 1075)
    }
}

/// The non-negative integer `magnitude` times 2^`scale`, rounded to the nearest f64 (ties to
/// even; subnormal when small, infinite when too large).
fn rounded(magnitude: &[u64], scale: i64) -> f64 {
    // Beyond the largest f64 the scaling overflows to infinity by itself.
    round_to_53_bits(magnitude, scale, Some(-1074)).map_or(0.0, |(mantissa, exponent)| {
        times_power_of_two(mantissa, exponent)
    })
}

/// The non-negative integer `magnitude` times 2^`scale` rounded to 53 significant bits (ties
/// to even), no bit kept below 2^`floor` (a subnormal's): `(m, e)` with the value `m * 2^e`,
/// `m <= 2^53`; None for zero.
fn round_to_53_bits(magnitude: &[u64], scale: i64, floor: Option<i64>) -> Option<(u64, i64)> {
    let top = magnitude.iter().rposition(|&l| l != 0)?;
    let msb = top as i64 * 64 + 63 - i64::from(magnitude[top].leading_zeros());
    let low = match floor {
        Some(floor) => (msb - 52).max(floor - scale),
        None => msb - 52,
    };
    let width = msb - low + 1;
    // (Nothing at or above the floor: only a product of sums gets this small.)
    let mut mantissa = if width > 0 {
        window(magnitude, low) & (u64::MAX >> (64 - width))
    } else {
        0
    };
    let round = window(magnitude, low - 1) & 1 == 1;
    if round && (mantissa & 1 == 1 || any_below(magnitude, low - 1)) {
        mantissa += 1;
    }
    Some((mantissa, low + scale))
}

/// The 64 bits of `magnitude` from bit `from` up (zeros outside it).
fn window(magnitude: &[u64], from: i64) -> u64 {
    let at = |i: i64| {
        usize::try_from(i)
            .ok()
            .and_then(|i| magnitude.get(i))
            .copied()
            .unwrap_or(0)
    };
    let (limb, shift) = (from.div_euclid(64), from.rem_euclid(64) as u32);
    if shift == 0 {
        at(limb)
    } else {
        (at(limb) >> shift) | (at(limb + 1) << (64 - shift))
    }
}

/// Whether any bit of `magnitude` below bit `below` is set.
fn any_below(magnitude: &[u64], below: i64) -> bool {
    if below <= 0 {
        return false;
    }
    let (limb, shift) = (below.div_euclid(64) as usize, below.rem_euclid(64) as u32);
    magnitude[..limb.min(magnitude.len())]
        .iter()
        .any(|&l| l != 0)
        || magnitude
            .get(limb)
            .is_some_and(|&l| shift > 0 && l & (u64::MAX >> (64 - shift)) != 0)
}

/// `mantissa * 2^exponent` for `mantissa <= 2^53`: exact when representable.
fn times_power_of_two(mantissa: u64, exponent: i64) -> f64 {
    scaled(mantissa as f64, exponent)
}

/// `x * 2^exponent`, stepping through the normal range (each step multiplies by a power of
/// two, exact until the last), infinite beyond the largest f64.
fn scaled(mut x: f64, mut exponent: i64) -> f64 {
    let power = |e: i64| f64::from_bits(((e + 1023) as u64) << 52);
    while exponent > 1000 {
        x *= power(1000);
        exponent -= 1000;
    }
    while exponent < -1000 {
        x *= power(-1000);
        exponent += 1000;
    }
    x * power(exponent)
}

#[cfg(test)]
#[path = "exact_sum_tests.rs"]
mod tests;
