//! Hooks for the fuzz targets in `fuzz/` (built only under `cfg(fuzzing)`,
//! which cargo-fuzz sets, and in unit tests): the timer wheel alone, with
//! the shard's side of it (the deadlines' high halves, and time-to-idle
//! deadlines kept apart) played by a small map. Not a public API.

use std::collections::BTreeMap;

use crate::policy::Idx;
use crate::time::wheel::{self, Deadlines, TimerWheel};

/// "Does not expire".
pub const NEVER: u64 = crate::time::NEVER;

/// The latest time the wheel takes (later times are read as it).
pub const END_OF_TIME: u64 = crate::time::clock::END_OF_TIME;

/// The level-0 bucket span as a shift (2^30 ns): an entry fires at most
/// one such span after its deadline when every advance completes.
pub const LEVEL0_SHIFT: u32 = 30;

/// The largest index the wheel takes.
pub const MAX_IDX: u32 = wheel::MAX_IDX;

/// A [`TimerWheel`] with the whole-deadline interface the shard gives it.
#[derive(Debug)]
pub struct Wheel {
    wheel: TimerWheel,
    halves: Halves,
}

#[derive(Debug, Default)]
struct Halves {
    hi: Vec<u32>,
    /// Idle deadlines moved later without touching the wheel (as readers
    /// of a time-to-idle cache do): handed back when the entry comes due.
    later: BTreeMap<Idx, u64>,
    fired: Vec<Idx>,
}

impl Halves {
    fn set_hi(&mut self, idx: Idx, deadline: u64) {
        let i = idx as usize;
        if i >= self.hi.len() {
            self.hi.resize(i + 1, u32::MAX);
        }
        self.hi[i] = wheel::split(deadline).0;
    }
}

impl Deadlines for Halves {
    fn hi(&self, idx: Idx) -> u32 {
        self.hi.get(idx as usize).copied().unwrap_or(u32::MAX)
    }
    fn due(&mut self, idx: Idx, now: u64) -> Option<u64> {
        if let Some(later) = self.later.remove(&idx) {
            if later > now {
                self.set_hi(idx, later);
                return Some(later);
            }
        }
        self.fired.push(idx);
        None
    }
}

impl Wheel {
    /// An empty wheel at time `now`.
    pub fn new(now: u64) -> Self {
        Self {
            wheel: TimerWheel::new(now),
            halves: Halves::default(),
        }
    }

    /// The wheel's time (the latest advance's, or the start).
    pub fn time(&self) -> u64 {
        self.wheel.time()
    }

    /// Entries in the buckets.
    pub fn len(&self) -> usize {
        self.wheel.len()
    }

    /// True if no entry is in a bucket.
    pub fn is_empty(&self) -> bool {
        self.wheel.is_empty()
    }

    /// True if the last advance ran out of budget.
    pub fn is_pending(&self) -> bool {
        self.wheel.is_pending()
    }

    /// The deadline the wheel holds for `idx` ([`NEVER`] if none).
    pub fn deadline(&self, idx: u32) -> u64 {
        self.wheel.deadline(idx, self.halves.hi(idx))
    }

    /// True if `idx` is in a bucket.
    pub fn is_scheduled(&self, idx: u32) -> bool {
        self.wheel.is_scheduled(idx)
    }

    /// Gives `idx` a new deadline ([`NEVER`] takes it out of the buckets).
    pub fn reschedule(&mut self, idx: u32, deadline: u64) {
        self.wheel.reschedule(idx, deadline);
        self.halves.later.remove(&idx);
        self.halves.set_hi(idx, deadline);
    }

    /// Moves the deadline of `idx` to `deadline`, leaving the node where it
    /// is when that is later (the shard's update path).
    pub fn postpone(&mut self, idx: u32, deadline: u64) {
        let old = self.deadline(idx);
        self.wheel.postpone(idx, old, deadline);
        self.halves.later.remove(&idx);
        self.halves.set_hi(idx, deadline);
    }

    /// Moves a scheduled entry's deadline later without telling the wheel,
    /// as a time-to-idle read does: the wheel learns it when the old
    /// deadline comes. Ignored unless `idx` is scheduled and `deadline` is
    /// later than both its wheel deadline and any earlier extension.
    pub fn extend(&mut self, idx: u32, deadline: u64) {
        let current = self
            .halves
            .later
            .get(&idx)
            .copied()
            .unwrap_or(self.deadline(idx));
        if self.is_scheduled(idx) && deadline != NEVER && deadline > current {
            self.halves.later.insert(idx, deadline);
        }
    }

    /// The deadline `idx` will fire at, extensions included ([`NEVER`] if
    /// not scheduled).
    pub fn effective_deadline(&self, idx: u32) -> u64 {
        if !self.is_scheduled(idx) {
            return NEVER;
        }
        self.halves
            .later
            .get(&idx)
            .copied()
            .unwrap_or(self.deadline(idx))
    }

    /// Takes `idx` out of the wheel.
    pub fn deschedule(&mut self, idx: u32) {
        self.wheel.deschedule(idx);
        self.halves.later.remove(&idx);
        if (idx as usize) < self.halves.hi.len() {
            self.halves.set_hi(idx, NEVER);
        }
    }

    /// Empties the wheel (its time is kept).
    pub fn clear(&mut self) {
        self.wheel.clear();
        self.halves = Halves::default();
    }

    /// Advances to `now` touching at most `budget` entries; returns the
    /// entries that fired (they have left the wheel) and whether work is
    /// left.
    pub fn advance(&mut self, now: u64, budget: usize) -> (Vec<u32>, bool) {
        let a = self.wheel.advance(now, budget, &mut self.halves);
        assert!(a.touched <= budget, "advance touched more than its budget");
        (std::mem::take(&mut self.halves.fired), a.pending)
    }

    /// Fires what is due in the current level-0 tick (explicit
    /// maintenance); as [`advance`](Self::advance).
    pub fn fire_current_tick(&mut self, budget: usize) -> (Vec<u32>, bool) {
        let a = self.wheel.fire_current_tick(budget, &mut self.halves);
        assert!(
            a.touched <= budget,
            "fire_current_tick touched more than its budget"
        );
        (std::mem::take(&mut self.halves.fired), a.pending)
    }

    /// Recounts every list and checks every link; panics on a mismatch.
    pub fn validate(&self) {
        self.wheel.validate();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_fires_an_entry_once_and_honours_an_extension() {
        let mut w = Wheel::new(0);
        w.reschedule(3, 5 << LEVEL0_SHIFT);
        w.reschedule(4, 5 << LEVEL0_SHIFT);
        w.extend(4, 9 << LEVEL0_SHIFT);
        assert_eq!(w.advance(4 << LEVEL0_SHIFT, usize::MAX), (vec![], false));
        assert_eq!(w.advance(7 << LEVEL0_SHIFT, usize::MAX), (vec![3], false));
        w.deschedule(3);
        assert!(w.is_scheduled(4));
        assert_eq!(w.effective_deadline(4), 9 << LEVEL0_SHIFT);
        assert_eq!(w.advance(11 << LEVEL0_SHIFT, usize::MAX), (vec![4], false));
        w.validate();
    }

    /// Found by the `wheel` fuzz target: in the last level-0 tick before
    /// the end of time, an entry due at the end of time is left by
    /// `advance` (the current tick's bucket is visited when time leaves
    /// it, which it never does), as documented: at most one level-0 span
    /// late. `fire_current_tick` (what `run_pending_tasks` adds) takes it.
    #[test]
    fn the_last_tick_is_emptied_by_fire_current_tick() {
        let mut w = Wheel::new(END_OF_TIME - 0x3d00);
        w.reschedule(0, END_OF_TIME);
        assert_eq!(w.advance(u64::MAX, usize::MAX), (vec![], false));
        assert_eq!(w.fire_current_tick(usize::MAX), (vec![0], false));
        assert!(w.is_empty());
        w.validate();
    }
}
