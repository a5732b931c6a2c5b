//! Seeded mutation of valid inputs, for the fuzz tests of every decoder of bytes from the
//! network or disk (Raft messages, snapshot files, tile records, log commands, definitions,
//! event files, Kafka messages, snapshot commands).
//!
//! Property-based on stable Rust, no coverage guidance: each test starts from valid inputs and
//! mutates them (bit flips, overwritten, inserted and cut bytes, lengths blown up), so every
//! `cargo test` runs it with no extra toolchain. `make test` runs a bounded number of cases;
//! `make fuzz` runs many more from a fresh seed (`QUIVER_FUZZ_CASES`, `QUIVER_FUZZ_SEED`), and
//! prints the seed, so a failure is reproduced by running it again with that seed.

/// xorshift64*: small, seeded, the same sequence on every machine.
pub struct Rng(u64);

impl Rng {
    /// A generator seeded by `QUIVER_FUZZ_SEED`, or by `default`. The seed is printed (seen
    /// with `--nocapture`, as `make fuzz` runs) so a failure can be replayed.
    pub fn from_env(default: u64) -> Self {
        let seed = env("QUIVER_FUZZ_SEED").unwrap_or(default).max(1);
        eprintln!("fuzz: QUIVER_FUZZ_SEED={seed}");
        Self(seed)
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// How many cases to run: `QUIVER_FUZZ_CASES`, or `default` (what `make test` runs).
pub fn cases(default: usize) -> usize {
    env("QUIVER_FUZZ_CASES").map_or(default, |n| n as usize)
}

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// `bytes` with one to four mutations.
pub fn mutate(rng: &mut Rng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(bytes.len().max(1));
        match rng.below(6) {
            0 if !bytes.is_empty() => bytes[at] ^= 1 << rng.below(8),
            1 if !bytes.is_empty() => bytes[at] = rng.next_u64() as u8,
            2 => bytes.insert(at.min(bytes.len()), rng.next_u64() as u8),
            3 => bytes.truncate(at),
            // A length or count (varint, or the top byte of a fixed-width one) blown up.
            4 if !bytes.is_empty() => bytes[at] = 0xFF,
            // A stretch repeated: nesting and lists grow.
            5 if !bytes.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(bytes.len());
                let stretch = bytes[at..end].to_vec();
                bytes.splice(at..at, stretch);
            }
            _ => bytes.push(rng.next_u64() as u8),
        }
    }
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutations() {
        let run = || {
            let mut rng = Rng(7);
            (0..50)
                .map(|_| mutate(&mut rng, b"{\"a\": [1, 2, 3]}".to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
        assert!(run().iter().any(|m| m.as_slice() != b"{\"a\": [1, 2, 3]}"));
    }
}
