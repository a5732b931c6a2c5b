//! A linearizability checker for histories of a last-writer-wins register per key, the model of
//! a `last` feature written directly: a write `(event_time, value)` replaces the stored value
//! only if its event time is later; a read returns the stored value (or none).
//!
//! Linearizability is compositional, so each key is checked alone: a depth-first search for an
//! order of the key's calls that respects real time (a call may be placed only while no placed-
//! later call had already returned before it was invoked) and the model, memoising the states
//! it has seen (the Wing & Gong search with Lowe's cache). A write whose outcome is unknown (its
//! call failed: it may have happened, later, or never) has no return time and need not be
//! placed; failed reads changed nothing and are left out of the history.

use std::collections::{BTreeMap, HashSet};

/// What a call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Wrote `value` with event time `event_time` (unique per write).
    Write {
        /// The row's event time.
        event_time: i64,
        /// The value written.
        value: i64,
    },
    /// Read `value` (`None`: no row).
    Read {
        /// What the read returned.
        value: Option<i64>,
    },
}

/// One call of the history; times in any monotonic unit (e.g. ns since the test started).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Call {
    /// The register.
    pub key: i64,
    /// What it did.
    pub op: Op,
    /// When it was invoked.
    pub invoked: u64,
    /// When it returned; `None` for a write whose outcome is unknown.
    pub returned: Option<u64>,
}

/// The most calls of one key the search takes (its sets of placed calls are 128-bit masks).
pub const MAX_CALLS_PER_KEY: usize = 128;

/// Checks `history`; the error names the first key with no linearization and its calls.
pub fn check(history: &[Call]) -> Result<(), String> {
    let mut keys: BTreeMap<i64, Vec<Call>> = BTreeMap::new();
    for call in history {
        keys.entry(call.key).or_default().push(*call);
    }
    for (key, mut calls) in keys {
        if calls.len() > MAX_CALLS_PER_KEY {
            return Err(format!(
                "key {key} has {} calls; the checker takes at most {MAX_CALLS_PER_KEY}",
                calls.len()
            ));
        }
        calls.sort_by_key(|c| c.invoked);
        if !linearizable(&calls) {
            let listing: Vec<String> = calls.iter().map(|c| format!("{c:?}")).collect();
            return Err(format!(
                "key {key}: no linearization of its {} calls:\n  {}",
                calls.len(),
                listing.join("\n  ")
            ));
        }
    }
    Ok(())
}

/// The register's state: the event time and value of the newest write placed.
type State = Option<(i64, i64)>;

fn linearizable(calls: &[Call]) -> bool {
    let must: u128 = calls
        .iter()
        .enumerate()
        .filter(|(_, c)| c.returned.is_some())
        .fold(0, |mask, (i, _)| mask | 1 << i);
    let mut seen = HashSet::new();
    search(calls, 0, None, must, &mut seen)
}

fn search(
    calls: &[Call],
    placed: u128,
    state: State,
    must: u128,
    seen: &mut HashSet<(u128, State)>,
) -> bool {
    if placed & must == must {
        return true;
    }
    if !seen.insert((placed, state)) {
        return false;
    }
    // A call may go next only if it was invoked before every unplaced call returned.
    let deadline = calls
        .iter()
        .enumerate()
        .filter(|(i, _)| placed & 1 << i == 0)
        .filter_map(|(_, c)| c.returned)
        .min()
        .unwrap_or(u64::MAX);
    for (i, call) in calls.iter().enumerate() {
        if placed & 1 << i != 0 || call.invoked > deadline {
            continue;
        }
        let next = match call.op {
            Op::Write { event_time, value } => match state {
                Some((stored, _)) if stored >= event_time => state,
                _ => Some((event_time, value)),
            },
            Op::Read { value } => {
                if value != state.map(|(_, v)| v) {
                    continue;
                }
                state
            }
        };
        if search(calls, placed | 1 << i, next, must, seen) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(key: i64, event_time: i64, invoked: u64, returned: Option<u64>) -> Call {
        Call {
            key,
            op: Op::Write {
                event_time,
                value: event_time * 10,
            },
            invoked,
            returned,
        }
    }

    fn read(key: i64, value: Option<i64>, invoked: u64, returned: u64) -> Call {
        Call {
            key,
            op: Op::Read { value },
            invoked,
            returned: Some(returned),
        }
    }

    #[test]
    fn sequential_histories_follow_the_model() {
        let ok = [
            read(1, None, 0, 1),
            write(1, 5, 2, Some(3)),
            read(1, Some(50), 4, 5),
            // An older event time does not replace a newer one.
            write(1, 4, 6, Some(7)),
            read(1, Some(50), 8, 9),
        ];
        assert_eq!(check(&ok), Ok(()));
        let stale = [write(1, 5, 0, Some(1)), read(1, None, 2, 3)];
        assert!(check(&stale).is_err());
        let older_wins = [
            write(1, 5, 0, Some(1)),
            write(1, 4, 2, Some(3)),
            read(1, Some(40), 4, 5),
        ];
        assert!(check(&older_wins).is_err());
    }

    #[test]
    fn concurrent_calls_may_take_effect_in_either_order() {
        // The read overlaps the write: before or after it are both fine.
        assert_eq!(
            check(&[write(1, 5, 0, Some(10)), read(1, None, 1, 2)]),
            Ok(())
        );
        assert_eq!(
            check(&[write(1, 5, 0, Some(10)), read(1, Some(50), 1, 2)]),
            Ok(())
        );
        // But once a read saw the write, a later read cannot miss it.
        let flicker = [
            write(1, 5, 0, Some(10)),
            read(1, Some(50), 1, 2),
            read(1, None, 3, 4),
        ];
        assert!(check(&flicker).is_err());
    }

    #[test]
    fn a_write_of_unknown_outcome_may_apply_late_or_never() {
        let never = [write(1, 5, 0, None), read(1, None, 100, 101)];
        assert_eq!(check(&never), Ok(()));
        let late = [
            write(1, 5, 0, None),
            read(1, None, 100, 101),
            read(1, Some(50), 200, 201),
        ];
        assert_eq!(check(&late), Ok(()));
        // Applied, then gone: not linearizable.
        let undone = [
            write(1, 5, 0, None),
            read(1, Some(50), 100, 101),
            read(1, None, 200, 201),
        ];
        assert!(check(&undone).is_err());
    }

    #[test]
    fn keys_are_checked_independently() {
        let history = [
            write(1, 5, 0, Some(1)),
            read(2, None, 2, 3),
            read(1, Some(50), 2, 3),
            write(2, 6, 4, Some(5)),
            read(2, Some(40), 6, 7),
        ];
        let error = check(&history).unwrap_err();
        assert!(error.starts_with("key 2:"), "{error}");
    }

    /// Brute force over every order of a few calls agrees with the search.
    #[test]
    fn agrees_with_trying_every_order() {
        let mut rng = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..2_000 {
            let mut calls = Vec::new();
            for _ in 0..1 + next(6) {
                let invoked = next(20);
                let returned = invoked + 1 + next(10);
                calls.push(if next(2) == 0 {
                    let lost = next(5) == 0;
                    write(1, 1 + next(4) as i64, invoked, (!lost).then_some(returned))
                } else {
                    let value = [None, Some(10), Some(20), Some(30), Some(40)][next(5) as usize];
                    read(1, value, invoked, returned)
                });
            }
            assert_eq!(check(&calls).is_ok(), brute_force(&calls), "{calls:#?}");
        }
    }

    /// Any subset of the unknown writes, in any order that respects real time.
    fn brute_force(calls: &[Call]) -> bool {
        let n = calls.len();
        let unknown: Vec<usize> = (0..n).filter(|i| calls[*i].returned.is_none()).collect();
        for subset in 0..1u32 << unknown.len() {
            let chosen: Vec<usize> = (0..n)
                .filter(|i| match unknown.iter().position(|u| u == i) {
                    Some(bit) => subset & 1 << bit != 0,
                    None => true,
                })
                .collect();
            if permutations(&chosen)
                .iter()
                .any(|order| valid(calls, order))
            {
                return true;
            }
        }
        false
    }

    fn permutations(items: &[usize]) -> Vec<Vec<usize>> {
        if items.len() <= 1 {
            return vec![items.to_vec()];
        }
        let mut out = Vec::new();
        for (i, first) in items.iter().enumerate() {
            let mut rest = items.to_vec();
            rest.remove(i);
            for mut tail in permutations(&rest) {
                tail.insert(0, *first);
                out.push(tail);
            }
        }
        out
    }

    fn valid(calls: &[Call], order: &[usize]) -> bool {
        // Real time: no call placed after one that was invoked after it returned.
        for (a, &i) in order.iter().enumerate() {
            for &j in &order[a + 1..] {
                if let Some(returned) = calls[j].returned {
                    if returned < calls[i].invoked {
                        return false;
                    }
                }
            }
        }
        let mut state: State = None;
        for &i in order {
            match calls[i].op {
                Op::Write { event_time, value } => {
                    if state.is_none_or(|(t, _)| event_time > t) {
                        state = Some((event_time, value));
                    }
                }
                Op::Read { value } => {
                    if value != state.map(|(_, v)| v) {
                        return false;
                    }
                }
            }
        }
        true
    }
}
