//! Adaptive sampling of entity rows, deterministic for a seed. Each kept row carries
//! `sample_weight = 1 / keep probability`, so weighted estimates (a loss, a rate) stay unbiased.
//!
//! - `balanced(label, f)`: the most frequent class keeps a fraction `f` of its rows, and no
//!   class keeps more than that many (`f * n_max`) in expectation; a class that has fewer is
//!   kept whole. Rare classes (fraud, churn) survive intact while the majority shrinks.
//! - `inverse_frequency(column)`: class `c` is kept with probability `n_min / n_c`, so each
//!   class keeps about as many rows as the rarest has.
//!
//! A row is kept when a hash of (seed, row number) falls under its class's probability: the
//! same table and seed always give the same sample, whatever the batch boundaries.

use std::collections::HashMap;

use quiver_core::Scalar;

/// A sampling plan for one table.
#[derive(Debug, Clone)]
pub struct Sampler {
    seed: u64,
    probability: HashMap<String, f64>,
}

/// The class of a value (nulls are a class of their own).
pub fn class_of(value: Option<&Scalar>) -> String {
    match value {
        None => "null".into(),
        Some(v) => format!("{v:?}"),
    }
}

impl Sampler {
    /// Balanced sampling over the classes in `classes` (one per row).
    pub fn balanced(seed: u64, target_fraction: f64, classes: &[String]) -> Self {
        let counts = count(classes);
        let most = counts.values().copied().max().unwrap_or(0) as f64;
        let probability = counts
            .into_iter()
            .map(|(class, n)| (class, (target_fraction * most / n as f64).min(1.0)))
            .collect();
        Self { seed, probability }
    }

    /// Inverse-frequency sampling over the classes in `classes`.
    pub fn inverse_frequency(seed: u64, classes: &[String]) -> Self {
        let counts = count(classes);
        let least = counts.values().copied().min().unwrap_or(0) as f64;
        let probability = counts
            .into_iter()
            .map(|(class, n)| (class, (least / n as f64).min(1.0)))
            .collect();
        Self { seed, probability }
    }

    /// Row `row` (its position in the table) of class `class`: its weight if kept.
    pub fn keep(&self, row: u64, class: &str) -> Option<f64> {
        let p = self.probability.get(class).copied().unwrap_or(1.0);
        (p > 0.0 && unit(self.seed, row) < p).then(|| 1.0 / p)
    }
}

fn count(classes: &[String]) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for class in classes {
        *counts.entry(class.clone()).or_insert(0) += 1;
    }
    counts
}

/// A uniform number in [0, 1) from (seed, row): splitmix64.
fn unit(seed: u64, row: u64) -> f64 {
    let mut z = seed ^ row.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(fraud: usize, legit: usize) -> Vec<String> {
        let mut classes = vec!["1".to_string(); fraud];
        classes.extend(vec!["0".to_string(); legit]);
        classes
    }

    #[test]
    fn balanced_keeps_the_rare_class_and_weights_make_counts_unbiased() {
        let classes = table(1_000, 99_000);
        let sampler = Sampler::balanced(7, 0.05, &classes);
        let (mut kept, mut weighted_legit, mut fraud_kept) = (0, 0.0, 0);
        for (row, class) in classes.iter().enumerate() {
            if let Some(weight) = sampler.keep(row as u64, class) {
                kept += 1;
                if class == "0" {
                    weighted_legit += weight;
                } else {
                    fraud_kept += 1;
                    assert_eq!(weight, 1.0);
                }
            }
        }
        assert_eq!(fraud_kept, 1_000, "every rare row is kept");
        assert!((4_500..5_500).contains(&(kept - 1_000)), "{kept}");
        assert!(
            (weighted_legit - 99_000.0_f64).abs() < 99_000.0 * 0.05,
            "{weighted_legit}"
        );
        // Deterministic for a seed, different for another.
        let again = Sampler::balanced(7, 0.05, &classes);
        let other = Sampler::balanced(8, 0.05, &classes);
        let picks =
            |s: &Sampler| -> Vec<bool> { (0..2_000).map(|r| s.keep(r, "0").is_some()).collect() };
        assert_eq!(picks(&sampler), picks(&again));
        assert_ne!(picks(&sampler), picks(&other));
    }

    #[test]
    fn inverse_frequency_evens_classes_out() {
        let classes = table(2_000, 18_000);
        let sampler = Sampler::inverse_frequency(1, &classes);
        let kept_legit = classes
            .iter()
            .enumerate()
            .filter(|(r, c)| *c == "0" && sampler.keep(*r as u64, c).is_some())
            .count();
        assert!((1_800..2_200).contains(&kept_legit), "{kept_legit}");
        assert_eq!(sampler.keep(0, "1"), Some(1.0));
    }
}
