//! Every aggregation against a brute-force computation, and merging in any chunking equal to
//! updating one partial with every event.

use super::*;

/// A small deterministic generator (no external crates in quiver-core).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Events: (stamp, value) with nulls and repeated event times.
fn events(seed: u64, n: usize, ints: bool) -> Vec<(Stamp, Option<Scalar>)> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let stamp = Stamp {
                event_micros: (rng.next() % 50) as i64,
                sequence: i as u64,
            };
            let value = match rng.next() % 10 {
                0 => None,
                _ if ints => Some(Scalar::Int64((rng.next() % 2_000) as i64 - 1_000)),
                _ => Some(Scalar::Float64(
                    (rng.next() % 1_000_000) as f64 / 997.0 - 300.0,
                )),
            };
            (stamp, value)
        })
        .collect()
}

fn run(partial: &Partial, events: &[(Stamp, Option<Scalar>)]) -> Partial {
    let mut p = partial.clone();
    for (stamp, value) in events {
        p.update(value.as_ref(), *stamp);
    }
    p
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn float(v: Option<Scalar>) -> f64 {
    match v {
        Some(Scalar::Float64(x)) => x,
        other => panic!("expected float64, got {other:?}"),
    }
}

#[test]
fn each_aggregation_matches_brute_force() {
    let evs = events(42, 2_000, true);
    let values: Vec<i64> = evs
        .iter()
        .filter_map(|(_, v)| match v {
            Some(Scalar::Int64(x)) => Some(*x),
            _ => None,
        })
        .collect();
    let n = values.len() as f64;
    let mean = values.iter().sum::<i64>() as f64 / n;
    let variance = values
        .iter()
        .map(|x| (*x as f64 - mean).powi(2))
        .sum::<f64>()
        / n;

    let int = Some(ValueType::Int64);
    assert_eq!(
        run(&Partial::empty(Aggregation::Count, false, None), &evs).finish(),
        Some(Scalar::Int64(2_000))
    );
    assert_eq!(
        run(&Partial::empty(Aggregation::Count, true, int), &evs).finish(),
        Some(Scalar::Int64(values.len() as i64))
    );
    assert_eq!(
        run(&Partial::empty(Aggregation::Sum, true, int), &evs).finish(),
        Some(Scalar::Int64(values.iter().sum()))
    );
    assert!(close(
        float(run(&Partial::empty(Aggregation::Mean, true, None), &evs).finish()),
        mean
    ));
    assert_eq!(
        run(&Partial::empty(Aggregation::Min, true, int), &evs).finish(),
        values.iter().min().map(|v| Scalar::Int64(*v))
    );
    assert_eq!(
        run(&Partial::empty(Aggregation::Max, true, int), &evs).finish(),
        values.iter().max().map(|v| Scalar::Int64(*v))
    );
    assert!(close(
        float(run(&Partial::empty(Aggregation::Stddev, true, None), &evs).finish()),
        variance.sqrt()
    ));

    // last/first: by event time, ties by sequence; the value may be null.
    let latest = evs
        .iter()
        .max_by_key(|(s, _)| *s)
        .map(|(_, v)| v.clone())
        .unwrap();
    let earliest = evs
        .iter()
        .min_by_key(|(s, _)| *s)
        .map(|(_, v)| v.clone())
        .unwrap();
    assert_eq!(
        run(&Partial::empty(Aggregation::Last, true, int), &evs).finish(),
        latest
    );
    assert_eq!(
        run(&Partial::empty(Aggregation::First, true, int), &evs).finish(),
        earliest
    );

    let distinct = {
        let mut v = values.clone();
        v.sort_unstable();
        v.dedup();
        v.len() as f64
    };
    let estimate = match run(&Partial::empty(Aggregation::DistinctCount, true, int), &evs).finish()
    {
        Some(Scalar::Int64(x)) => x as f64,
        other => panic!("{other:?}"),
    };
    assert!(
        (estimate - distinct).abs() / distinct < 0.05,
        "{estimate} vs {distinct}"
    );
}

#[test]
fn merging_chunks_equals_one_pass() {
    for ints in [true, false] {
        let evs = events(7 + u64::from(ints), 3_000, ints);
        let output = if ints {
            Some(ValueType::Int64)
        } else {
            Some(ValueType::Float64)
        };
        for aggregation in Aggregation::ALL {
            let empty = Partial::empty(aggregation, true, output);
            let whole = run(&empty, &evs);
            // Random chunk boundaries, merged in order and in reverse order.
            let mut rng = Rng(99);
            let mut chunks = Vec::new();
            let mut start = 0;
            while start < evs.len() {
                let end = (start + 1 + (rng.next() % 400) as usize).min(evs.len());
                chunks.push(run(&empty, &evs[start..end]));
                start = end;
            }
            for order in [false, true] {
                let mut merged = empty.clone();
                let iter: Box<dyn Iterator<Item = &Partial>> = if order {
                    Box::new(chunks.iter().rev())
                } else {
                    Box::new(chunks.iter())
                };
                for chunk in iter {
                    merged.merge(chunk);
                }
                // Exact float sums: the same bits in any grouping and order.
                assert_eq!(
                    whole.finish().map(|v| format!("{v:?}")),
                    merged.finish().map(|v| format!("{v:?}")),
                    "{aggregation} (ints: {ints}, reversed: {order})"
                );
                // Sequential f64 sums (records of older rules): close, not equal.
                let sequential = empty.clone().with_float_sums(FloatSums::Sequential);
                let whole = run(&sequential, &evs);
                let mut merged = sequential.clone();
                let mut rng = Rng(99);
                let mut start = 0;
                while start < evs.len() {
                    let end = (start + 1 + (rng.next() % 400) as usize).min(evs.len());
                    merged.merge(&run(&sequential, &evs[start..end]));
                    start = end;
                }
                match (whole.finish(), merged.finish()) {
                    (Some(Scalar::Float64(a)), Some(Scalar::Float64(b))) => {
                        assert!(close(a, b), "{aggregation}: {a} vs {b}")
                    }
                    (a, b) => assert_eq!(a, b, "{aggregation} (ints: {ints})"),
                }
            }
        }
    }
}

#[test]
fn sequential_records_merged_with_exact_ones_become_exact_and_keep_their_values() {
    // A record folded before exact sums meets one folded after (the online store's records
    // across an upgrade): the merge is exact, in either order, and what the older record held
    // counts as the value it finished as.
    let evs = events(21, 2_000, false);
    let (older, newer) = evs.split_at(800);
    for aggregation in [Aggregation::Sum, Aggregation::Mean, Aggregation::Stddev] {
        let exact = Partial::empty(aggregation, true, Some(ValueType::Float64));
        let sequential = exact.clone().with_float_sums(FloatSums::Sequential);
        let old = run(&sequential, older);
        let new = run(&exact, newer);
        let mut old_then_new = old.clone();
        old_then_new.merge(&new);
        let mut new_then_old = new.clone();
        new_then_old.merge(&old);
        assert!(!matches!(
            old_then_new,
            Partial::SumFloat(_) | Partial::Mean { .. } | Partial::Moments { .. }
        ));
        assert_eq!(
            old_then_new.finish().map(|v| format!("{v:?}")),
            new_then_old.finish().map(|v| format!("{v:?}")),
            "{aggregation}"
        );
        let all = run(&exact, &evs);
        match (all.finish(), old_then_new.finish()) {
            (Some(Scalar::Float64(a)), Some(Scalar::Float64(b))) => {
                assert!(close(a, b), "{aggregation}: {a} vs {b}")
            }
            (a, b) => panic!("{aggregation}: {a:?} vs {b:?}"),
        }
        // Converted alone, an older record finishes as it did.
        let converted = old.clone().with_float_sums(FloatSums::Exact);
        match (old.finish(), converted.finish()) {
            (Some(Scalar::Float64(a)), Some(Scalar::Float64(b))) => {
                assert!(close(a, b), "{aggregation}: {a} vs {b}")
            }
            (a, b) => panic!("{aggregation}: {a:?} vs {b:?}"),
        }
    }
}

#[test]
fn empty_partials_finish_as_sql_does() {
    for aggregation in Aggregation::ALL {
        let finished = Partial::empty(aggregation, true, Some(ValueType::Float64)).finish();
        match aggregation {
            Aggregation::Count | Aggregation::DistinctCount => {
                assert_eq!(finished, Some(Scalar::Int64(0)))
            }
            Aggregation::Sum => assert_eq!(finished, Some(Scalar::Float64(0.0))),
            _ => assert_eq!(finished, None, "{aggregation}"),
        }
    }
}

#[test]
fn ties_break_by_ingest_order_and_nan_is_ignored() {
    let at = |sequence| Stamp {
        event_micros: 10,
        sequence,
    };
    let mut last = Partial::empty(Aggregation::Last, true, None);
    let mut first = Partial::empty(Aggregation::First, true, None);
    for (seq, v) in [(2, 2.0), (1, 1.0), (3, 3.0)] {
        last.update(Some(&Scalar::Float64(v)), at(seq));
        first.update(Some(&Scalar::Float64(v)), at(seq));
    }
    assert_eq!(last.finish(), Some(Scalar::Float64(3.0)));
    assert_eq!(first.finish(), Some(Scalar::Float64(1.0)));

    let mut max = Partial::empty(Aggregation::Max, true, None);
    max.update(Some(&Scalar::Float64(f64::NAN)), at(1));
    max.update(Some(&Scalar::Float64(1.5)), at(2));
    max.update(Some(&Scalar::Float64(f64::NAN)), at(3));
    assert_eq!(max.finish(), Some(Scalar::Float64(1.5)));
    let mut mean = Partial::empty(Aggregation::Mean, true, None);
    mean.update(Some(&Scalar::Float64(f64::NAN)), at(1));
    assert_eq!(mean.finish(), None);
}

#[test]
fn int_sums_saturate_instead_of_wrapping() {
    let mut sum = Partial::empty(Aggregation::Sum, true, Some(ValueType::Int64));
    sum.update(
        Some(&Scalar::Int64(i64::MAX)),
        Stamp {
            event_micros: 0,
            sequence: 0,
        },
    );
    sum.update(
        Some(&Scalar::Int64(i64::MAX)),
        Stamp {
            event_micros: 0,
            sequence: 1,
        },
    );
    assert_eq!(sum.finish(), Some(Scalar::Int64(i64::MAX)));
}

#[test]
fn infinities_make_sums_infinite_or_nan_and_deviations_nan() {
    let stamp = Stamp {
        event_micros: 0,
        sequence: 0,
    };
    let finish = |aggregation, values: &[f64]| {
        let mut p = Partial::empty(aggregation, true, Some(ValueType::Float64));
        for v in values {
            p.update(Some(&Scalar::Float64(*v)), stamp);
        }
        float(p.finish())
    };
    assert_eq!(
        finish(Aggregation::Sum, &[1.0, f64::INFINITY]),
        f64::INFINITY
    );
    assert!(finish(Aggregation::Sum, &[f64::INFINITY, f64::NEG_INFINITY]).is_nan());
    assert_eq!(
        finish(Aggregation::Mean, &[1.0, f64::NEG_INFINITY]),
        f64::NEG_INFINITY
    );
    assert!(finish(Aggregation::Stddev, &[1.0, f64::INFINITY]).is_nan());
    assert_eq!(finish(Aggregation::Stddev, &[2.0, 2.0]), 0.0);
    assert_eq!(finish(Aggregation::Sum, &[1.0, f64::NAN, 2.0]), 3.0);
}

#[test]
fn an_older_records_nan_stays_nan_when_it_becomes_exact() {
    let stamp = Stamp {
        event_micros: 0,
        sequence: 0,
    };
    for aggregation in [Aggregation::Sum, Aggregation::Mean, Aggregation::Stddev] {
        let exact = Partial::empty(aggregation, true, Some(ValueType::Float64));
        let mut older = exact.clone().with_float_sums(FloatSums::Sequential);
        // f64 folding of both infinities: NaN in the older form.
        for v in [f64::INFINITY, f64::NEG_INFINITY, 1.0] {
            older.update(Some(&Scalar::Float64(v)), stamp);
        }
        if aggregation != Aggregation::Stddev {
            // (The older stddev finished such moments as 0 through `f64::max`.)
            assert!(float(older.finish()).is_nan(), "{aggregation}");
        }
        let mut merged = exact.clone();
        merged.update(Some(&Scalar::Float64(2.0)), stamp);
        merged.merge(&older);
        assert!(float(merged.finish()).is_nan(), "{aggregation}");
    }
}
