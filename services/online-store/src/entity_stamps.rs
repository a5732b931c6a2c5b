//! A write counter per entity, so a reader can tell whether anything was folded into an
//! entity's tiles since it last read them (the recent tiles `sealed_tiles.rs` keeps).
//!
//! Entities hash into a fixed table of counters: two entities sharing a slot only make each
//! other's cached reads miss, and the table never grows however many entities are written.
//! The state machine moves an entity's counter *after* the batch that folded into it commits,
//! and a reader takes the counter *before* it reads, so a read that may have missed a write
//! is always kept under a counter the write has moved past.

use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// Slots in the table: 2 MiB of counters.
const SLOTS: usize = 1 << 18;

/// The table of one node's state machine.
pub struct EntityStamps {
    slots: Box<[AtomicU64]>,
}

impl Default for EntityStamps {
    fn default() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

/// Where an entity's counter is: the same on every call in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot(usize);

impl Slot {
    /// The slot of the (encoded) `entity`.
    pub fn of(entity: &[u8]) -> Self {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(entity);
        Self(hash as usize % SLOTS)
    }
}

impl EntityStamps {
    /// The counter of `slot` now: take it before reading what it guards.
    pub fn get(&self, slot: Slot) -> u64 {
        self.slots
            .get(slot.0)
            .map_or(0, |s| s.load(Ordering::Acquire))
    }

    /// Moves the counters of `slots`: call once what was folded into them is readable.
    pub fn written(&self, slots: &[Slot]) {
        for slot in slots {
            if let Some(s) = self.slots.get(slot.0) {
                s.fetch_add(1, Ordering::AcqRel);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_moves_its_entitys_counter_only() {
        let stamps = EntityStamps::default();
        let (a, b) = (Slot::of(b"user-1"), Slot::of(b"user-2"));
        assert_ne!(a, b, "these two share no slot");
        assert_eq!(a, Slot::of(b"user-1"), "a slot is stable");
        let before = (stamps.get(a), stamps.get(b));
        stamps.written(&[a]);
        assert_ne!(stamps.get(a), before.0);
        assert_eq!(stamps.get(b), before.1);
    }
}
