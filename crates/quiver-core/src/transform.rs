//! Row transforms, pure: compute runs them online and the offline path can run them again.
//! `standardize` and `zscore` take the running statistics (a `stddev` partial of the input
//! column over the transform's window) as an argument; where those come from is the caller's.

use crate::aggregate::Partial;
use crate::definitions::TransformOp;
use crate::scalar::{fnv1a, Scalar};

/// `zscore` excludes nothing until its statistics cover at least this many values: a deviation
/// estimated from a handful of rows flags ordinary ones.
pub const MIN_STATISTICS_COUNT: u64 = 30;

/// The largest `n` of an `ngram_hash` transform.
pub const MAX_NGRAM_N: u32 = 16;
/// The largest `buckets` of an `ngram_hash` transform (the output is a vector this long).
pub const MAX_NGRAM_BUCKETS: u32 = 1 << 16;

/// Whether a transform's output follows from its row alone, with parameters a definition may
/// have: such a column need not travel with the row, since anyone holding the row can compute
/// it again.
pub fn is_recomputable(op: &TransformOp) -> bool {
    match op {
        TransformOp::TokenCount => true,
        TransformOp::NgramHash { n, buckets } => {
            (1..=MAX_NGRAM_N).contains(n) && (1..=MAX_NGRAM_BUCKETS).contains(buckets)
        }
        TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => false,
    }
}

/// A stateless transform's output for one row's input `text`: `None` for a stateful
/// transform. The one implementation: compute's transforms, apply and the export computing
/// left-out columns again, and serving finishing a `first`/`last` kept as its input all call it.
pub fn apply_stateless(op: &TransformOp, text: &str) -> Option<Scalar> {
    match op {
        TransformOp::TokenCount => Some(Scalar::Int64(token_count(text))),
        TransformOp::NgramHash { n, buckets } => {
            Some(Scalar::Float32List(ngram_hash(text, *n, *buckets)))
        }
        TransformOp::Standardize { .. } | TransformOp::ZScore { .. } => None,
    }
}

/// Whether a transform compares with running statistics (and so needs them read first).
pub fn is_stateful(op: &TransformOp) -> bool {
    matches!(
        op,
        TransformOp::Standardize { .. } | TransformOp::ZScore { .. }
    )
}

/// Number of whitespace-separated tokens.
pub fn token_count(text: &str) -> i64 {
    i64::try_from(text.split_whitespace().count()).unwrap_or(i64::MAX)
}

/// A hashed bag of character `n`-grams: `buckets` counts, one per hash bucket. The hash is
/// FNV-1a over the n-gram's UTF-8 bytes, so every machine agrees. A text shorter than `n`
/// characters is one gram when not empty.
pub fn ngram_hash(text: &str, n: u32, buckets: u32) -> Vec<f32> {
    let buckets = buckets.max(1) as usize;
    let n = n.max(1) as usize;
    let mut out = vec![0f32; buckets];
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain(std::iter::once(text.len()))
        .collect();
    let chars = boundaries.len() - 1;
    if chars == 0 {
        return out;
    }
    let grams = chars.saturating_sub(n) + 1;
    for start in 0..grams {
        let end = (start + n).min(chars);
        let hash = fnv1a(&text.as_bytes()[boundaries[start]..boundaries[end]]);
        out[(hash % buckets as u64) as usize] += 1.0;
    }
    out
}

/// Mean and population standard deviation of a `stddev` partial, if it has values.
pub fn mean_and_deviation(statistics: &Partial) -> Option<(u64, f64, f64)> {
    statistics.mean_and_deviation()
}

/// `(x - mean) / stddev`; 0 when every value so far was equal; null without statistics.
pub fn standardize(x: f64, statistics: &Partial) -> Option<f64> {
    let (_, mean, deviation) = mean_and_deviation(statistics)?;
    if deviation == 0.0 {
        return Some(0.0);
    }
    Some((x - mean) / deviation)
}

/// `|x - mean| / stddev`; null without statistics or when every value so far was equal.
pub fn zscore(x: f64, statistics: &Partial) -> Option<f64> {
    let (_, mean, deviation) = mean_and_deviation(statistics)?;
    (deviation > 0.0).then(|| (x - mean).abs() / deviation)
}

/// Whether a `zscore` of `score` over `statistics` excludes its row at `threshold`: only with
/// enough statistics ([`MIN_STATISTICS_COUNT`]).
pub fn is_anomalous(score: Option<f64>, statistics: &Partial, threshold: Option<f64>) -> bool {
    let (Some(score), Some(threshold)) = (score, threshold) else {
        return false;
    };
    let count = mean_and_deviation(statistics).map_or(0, |(c, _, _)| c);
    count >= MIN_STATISTICS_COUNT && score > threshold
}

/// The numeric value of a column, for `standardize`/`zscore` inputs.
pub fn numeric(value: Option<&Scalar>) -> Option<f64> {
    value.and_then(Scalar::as_f64).filter(|x| x.is_finite())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Stamp;
    use crate::definitions::Aggregation;

    fn stats(values: &[f64]) -> Partial {
        let mut p = Partial::empty(Aggregation::Stddev, true, None);
        for (i, v) in values.iter().enumerate() {
            p.update(
                Some(&Scalar::Float64(*v)),
                Stamp {
                    event_micros: 0,
                    sequence: i as u64,
                },
            );
        }
        p
    }

    #[test]
    fn tokens_and_ngrams() {
        assert_eq!(token_count("  a quick\tfox \n"), 3);
        assert_eq!(token_count(""), 0);
        let v = ngram_hash("abcd", 3, 16);
        assert_eq!(v.len(), 16);
        assert_eq!(v.iter().sum::<f32>(), 2.0, "abc, bcd");
        assert_eq!(ngram_hash("ab", 3, 4).iter().sum::<f32>(), 1.0);
        assert_eq!(ngram_hash("", 3, 4), vec![0.0; 4]);
        // Multi-byte characters are whole characters.
        assert_eq!(ngram_hash("ééé", 2, 8).iter().sum::<f32>(), 2.0);
        assert_eq!(ngram_hash("abcd", 3, 16), ngram_hash("abcd", 3, 16));
    }

    #[test]
    fn scores_follow_the_statistics() {
        let s = stats(&[1.0, 2.0, 3.0, 4.0]);
        let sd = (1.25f64).sqrt();
        assert!((standardize(4.0, &s).unwrap() - 1.5 / sd).abs() < 1e-12);
        assert!((zscore(1.0, &s).unwrap() - 1.5 / sd).abs() < 1e-12);
        assert_eq!(standardize(1.0, &stats(&[])), None);
        assert_eq!(standardize(5.0, &stats(&[2.0, 2.0])), Some(0.0));
        assert_eq!(zscore(5.0, &stats(&[2.0, 2.0])), None);
    }

    #[test]
    fn exclusion_needs_enough_statistics() {
        let few = stats(&[1.0, 2.0]);
        assert!(!is_anomalous(Some(100.0), &few, Some(4.0)));
        let many: Vec<f64> = (0..40).map(|i| f64::from(i % 4)).collect();
        let many = stats(&many);
        assert!(is_anomalous(Some(4.5), &many, Some(4.0)));
        assert!(!is_anomalous(Some(3.9), &many, Some(4.0)));
        assert!(!is_anomalous(Some(100.0), &many, None));
        assert!(!is_anomalous(None, &many, Some(4.0)));
    }
}
