use super::ExactSum;

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn sum_of(values: &[f64]) -> ExactSum {
    let mut sum = ExactSum::default();
    for v in values {
        sum.add(*v);
    }
    sum
}

/// Random finite f64s of every magnitude (random bit patterns), both signs, some zeros.
fn wide_values(rng: &mut Rng, n: usize) -> Vec<f64> {
    (0..n)
        .map(|_| loop {
            let x = f64::from_bits(rng.next());
            if x.is_finite() {
                break if rng.below(10) == 0 { 0.0 } else { x };
            }
        })
        .collect()
}

#[test]
fn sums_of_fixed_point_values_equal_an_integer_oracle() {
    // Multiples of 2^-20 up to 2^40 in size: their sum is exact in an i128 of 2^-20 units,
    // and Rust rounds an i128 to the nearest f64 (ties to even), as the sum must.
    let mut rng = Rng(7);
    let unit = 2f64.powi(-20);
    for round in 0..2_000 {
        let n = 1 + rng.below(if round % 10 == 0 { 2_000 } else { 20 }) as usize;
        // At most 53 significant bits each: exact as f64, and so is each times 2^-20.
        let units: Vec<i64> = (0..n)
            .map(|_| {
                let bits = rng.below(54);
                let magnitude = if bits == 0 {
                    0
                } else {
                    (rng.next() >> (64 - bits)) as i64
                };
                if rng.below(2) == 0 {
                    -magnitude
                } else {
                    magnitude
                }
            })
            .collect();
        let exact: Vec<(i64, f64)> = units.iter().map(|u| (*u, *u as f64 * unit)).collect();
        let oracle: i128 = units.iter().map(|u| i128::from(*u)).sum();
        let sum = sum_of(&exact.iter().map(|(_, v)| *v).collect::<Vec<_>>());
        assert_eq!(
            sum.value().to_bits(),
            ((oracle as f64) * unit).to_bits(),
            "round {round}: {exact:?}"
        );
    }
}

#[test]
fn any_order_and_grouping_gives_the_same_bits() {
    let mut rng = Rng(11);
    for _ in 0..300 {
        let n = 1 + rng.below(200) as usize;
        let mut values = wide_values(&mut rng, n);
        // Values within a few orders of magnitude of each other too: where float addition's
        // rounding actually bites.
        values.extend((0..n).map(|_| (rng.below(1_000_000) as f64 - 500_000.0) / 7.0));
        let one_pass = sum_of(&values);
        for _ in 0..5 {
            // Shuffle, cut into random groups, sum each, merge the groups' sums.
            for i in (1..values.len()).rev() {
                values.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let mut merged = ExactSum::default();
            let mut rest = &values[..];
            while !rest.is_empty() {
                let take = 1 + rng.below(rest.len() as u64) as usize;
                merged.merge(&sum_of(&rest[..take]));
                rest = &rest[take..];
            }
            assert_eq!(merged, one_pass);
            assert_eq!(merged.value().to_bits(), one_pass.value().to_bits());
        }
    }
}

#[test]
fn sums_round_once_where_float_addition_rounds_at_every_step() {
    assert_eq!(sum_of(&[0.1; 10]).value(), 1.0);
    assert_ne!([0.1f64; 10].iter().sum::<f64>(), 1.0);
    assert_eq!(sum_of(&[1e100, 1.0, -1e100]).value(), 1.0);
    assert_eq!(sum_of(&[1e308, 1e308, -1e308]).value(), 1e308);
    // Ties go to even: 2^53 + 1 is halfway between two f64s.
    let big = 2f64.powi(53);
    assert_eq!(sum_of(&[big, 1.0]).value(), big);
    assert_eq!(sum_of(&[big, 1.0, 2.0]).value(), big + 4.0);
    assert_eq!(sum_of(&[big, 1.0, 2f64.powi(-60)]).value(), big + 2.0);
    // Subnormals, and a result that only exists as one.
    let tiny = f64::from_bits(1);
    assert_eq!(sum_of(&[tiny, tiny, tiny]).value(), f64::from_bits(3));
    assert_eq!(
        sum_of(&[f64::MIN_POSITIVE, -f64::MIN_POSITIVE / 2.0]).value(),
        f64::MIN_POSITIVE / 2.0
    );
    assert_eq!(sum_of(&[-3.5, 1.25]).value(), -2.25);
    assert_eq!(sum_of(&[]).value().to_bits(), 0f64.to_bits());
    assert_eq!(sum_of(&[2.5, -2.5]).value().to_bits(), 0f64.to_bits());
    assert_eq!(sum_of(&[-0.0]).value().to_bits(), 0f64.to_bits());
}

#[test]
fn overflow_and_infinities_finish_as_ieee_addition() {
    assert_eq!(sum_of(&[f64::MAX, f64::MAX]).value(), f64::INFINITY);
    assert_eq!(sum_of(&[-f64::MAX, -f64::MAX]).value(), f64::NEG_INFINITY);
    // Exactly: the overflow in between comes back.
    assert_eq!(sum_of(&[f64::MAX, f64::MAX, -f64::MAX]).value(), f64::MAX);
    assert_eq!(sum_of(&[f64::INFINITY, 1.0]).value(), f64::INFINITY);
    assert_eq!(sum_of(&[f64::NEG_INFINITY, 1.0]).value(), f64::NEG_INFINITY);
    assert!(sum_of(&[f64::INFINITY, f64::NEG_INFINITY]).value().is_nan());
    assert_eq!(sum_of(&[f64::NAN, 2.0]).value(), 2.0);
}

fn deviation_of(values: &[f64]) -> f64 {
    let (mut sum, mut squares) = (ExactSum::default(), ExactSum::default());
    for x in values {
        sum.add(*x);
        squares.add_square(*x);
    }
    squares.deviation(&sum, values.len() as u64)
}

#[test]
fn deviations_come_out_exact_where_float_moments_cancel() {
    // Values near 1e8 whose deviations are small: variance 1.25 exactly.
    assert_eq!(
        deviation_of(&[1e8 + 1.0, 1e8 + 2.0, 1e8 + 3.0, 1e8 + 4.0]),
        1.25f64.sqrt()
    );
    // Any order gives the same bits, and the value is within an ulp or two of two-pass f64.
    let mut rng = Rng(5);
    let values: Vec<f64> = (0..500)
        .map(|_| (rng.below(2_000_000) as f64 - 1e6) * 1e-3 + 3e4)
        .collect();
    let mut reversed = values.clone();
    reversed.reverse();
    assert_eq!(
        deviation_of(&values).to_bits(),
        deviation_of(&reversed).to_bits()
    );
    let mean = values.iter().sum::<f64>() / 500.0;
    let two_pass = (values.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / 500.0).sqrt();
    let ours = deviation_of(&values);
    assert!(
        (ours - two_pass).abs() <= 1e-12 * two_pass,
        "{ours} vs {two_pass}"
    );
}

#[test]
fn deviations_and_means_of_values_at_the_ends_of_f64s_range_are_right() {
    // Squares beyond f64's range (|x| >= 2^512) and below it (subnormal squares) are exact
    // as integers; a mean whose sum overflows f64 is still finite. (Found by a differential
    // test against exact rational arithmetic: these were inf, NaN or 0.)
    assert_eq!(deviation_of(&[1.3e154, -1.3e154]), 1.3e154);
    assert_eq!(deviation_of(&[1e200, 1e200]), 0.0);
    let d = deviation_of(&[1.5e154, 2e154]);
    assert!((d - 2.5e153).abs() <= 2e153 * f64::EPSILON, "{d:e}");
    let d = deviation_of(&[1e-170, 3e-170]);
    assert!((d - 1e-170).abs() <= 1e-170 * 4.0 * f64::EPSILON, "{d:e}");
    let d = deviation_of(&[1e-160, 2e-160, 3e-160]);
    let want = 8.164965809277261e-161;
    assert!((d - want).abs() <= want * 4.0 * f64::EPSILON, "{d:e}");
    let d = deviation_of(&[f64::MAX, -f64::MAX]);
    assert_eq!(d, f64::MAX);
    let mut sum = ExactSum::default();
    sum.add(f64::MAX);
    sum.add(f64::MAX);
    assert_eq!(sum.value(), f64::INFINITY);
    assert_eq!(sum.mean(2), f64::MAX);
    let mut tiny = ExactSum::default();
    tiny.add(f64::from_bits(1));
    assert_eq!(tiny.mean(2), 0.0); // half the smallest subnormal: ties to even
    tiny.add(f64::from_bits(2));
    assert_eq!(tiny.mean(3), f64::from_bits(1));
    assert!(deviation_of(&[1.0, f64::INFINITY]).is_nan());
}

#[test]
fn the_stored_form_round_trips_and_refuses_what_is_out_of_range() {
    let mut rng = Rng(3);
    for _ in 0..200 {
        let sum = sum_of(&wide_values(&mut rng, 50));
        let mut bytes = Vec::new();
        sum.encode_into(&mut bytes);
        let infinities = bytes[0];
        let base = i32::from_le_bytes(bytes[1..5].try_into().unwrap());
        let count = bytes[5] as usize;
        let limbs = (0..count)
            .map(|i| u64::from_le_bytes(bytes[6 + 8 * i..14 + 8 * i].try_into().unwrap()))
            .collect();
        assert_eq!(ExactSum::from_parts(infinities, base, limbs), Some(sum));
    }
    assert_eq!(ExactSum::from_parts(4, 0, vec![]), None);
    assert_eq!(ExactSum::from_parts(0, 5_000, vec![1]), None);
    assert_eq!(ExactSum::from_parts(0, 0, vec![1; 81]), None);
    // A non-canonical stored form is made canonical: equal sums compare equal.
    let mut one = ExactSum::default();
    one.add(1.0);
    assert_eq!(ExactSum::from_parts(0, 0, vec![0, 1, 0]), {
        let mut two_64 = ExactSum::default();
        two_64.add(2f64.powi(64));
        Some(two_64)
    });
    assert_eq!(ExactSum::from_parts(0, 0, vec![1, 0, 0]), Some(one));
}
