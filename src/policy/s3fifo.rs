//! S3-FIFO: a small FIFO that filters one-hit wonders, a main FIFO with
//! reinsertion, and a ghost queue of keys recently turned away.
//!
//! After Yang, Zhang, Qiu, Yue and Rashmi, "FIFO queues are all you need
//! for cache eviction" (SOSP 2023). Written anew over larder's
//! index-linked lists.
//!
//! * **small** (10% of the capacity, rounded up): where a new key starts,
//!   unless the ghost queue remembers it.
//! * **main** (the rest): keys that were reused while in small, or that
//!   come back soon after small turned them away.
//! * **ghost**: fingerprints of the keys small evicted without a reuse, as
//!   many as the cache holds entries (90% of them, at least 16); a key
//!   found there on insert goes straight to main.
//!
//! Every entry has a 2-bit frequency (0 to 3) in its meta byte. A read hit
//! (or an update) adds one under the shard's *read* lock, writing nothing
//! once it is 3; the shard never replays S3-FIFO's hits.
//!
//! Eviction: while small holds more than its share (or main is empty),
//! small's oldest entry leaves if its frequency is 0 (its fingerprint
//! joins the ghost queue) and otherwise moves to main with its frequency
//! cleared; else main's oldest entry leaves if its frequency is 0, and
//! otherwise goes back to main's newest end with its frequency less one
//! (a 2-bit CLOCK). Each step either evicts, moves an entry out of small,
//! or lowers a frequency, so one eviction is O(1) amortised.
//!
//! The paper checks small's size before a new key is inserted; the shard
//! asks after, so "more than its share" here is "at least its share" there.
//!
//! The ghost queue is a [`Ghosts`] table whose time counts the keys that
//! entered it: a fingerprint is in the queue while fewer than its length
//! have entered since.

use super::ghost::{fingerprint, Ghosts, MAX_LIMIT};
use super::list::{List, Nodes};
use super::meta::MetaBytes;
use super::{EvictionPolicy, HashOf, Idx};
use crate::sync::Ordering;

/// Mask of the frequency bits of an entry's meta byte (0 to 3).
const FREQ: u8 = 0b0011;
/// The meta bit of an entry in main.
const MAIN: u8 = 0b0100;

/// Share of the capacity for the small queue, in percent (rounded up).
const SMALL_PERCENT: u64 = 10;

/// Share of the tracked entries the ghost queue remembers, in percent.
const GHOST_PERCENT: usize = 90;

/// The ghost queue's length is never below this.
const GHOST_MIN: usize = 16;

/// S3-FIFO for one shard.
#[derive(Debug)]
pub(crate) struct S3Fifo {
    /// Links (and weights) of both queues.
    nodes: Nodes,
    /// New entries, oldest first.
    small: List,
    /// Entries that proved themselves, oldest first.
    main: List,
    /// One byte per entry: its frequency and the [`MAIN`] bit.
    meta: MetaBytes,
    /// The ghost queue (see the module docs).
    ghosts: Ghosts,
    /// Keys that entered the ghost queue so far (wrapping).
    ghost_time: u32,
    /// The small queue's share, in weight units.
    small_max: u64,
}

impl S3Fifo {
    /// An empty policy for a shard holding at most `capacity` weight.
    pub(crate) fn new(capacity: u64) -> Self {
        let small_max = (capacity / 100 * SMALL_PERCENT
            + (capacity % 100 * SMALL_PERCENT).div_ceil(100))
        .min(capacity);
        Self {
            nodes: Nodes::default(),
            small: List::default(),
            main: List::default(),
            meta: MetaBytes::default(),
            ghosts: Ghosts::default(),
            ghost_time: 0,
            small_max,
        }
    }

    /// Notes a read hit on `idx` under the shard's *read* lock: one more in
    /// its frequency, writing nothing once it is 3.
    #[inline]
    pub(crate) fn note_hit(&self, idx: Idx) {
        if let Some(m) = self.meta.slot(idx) {
            let v = m.load(Ordering::Relaxed);
            if v & FREQ != FREQ {
                m.store(v + 1, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    fn meta(&self, idx: Idx) -> u8 {
        self.meta.get(idx)
    }

    #[inline]
    fn set_meta(&mut self, idx: Idx, meta: u8) {
        self.meta.set(idx, meta);
    }

    /// How many keys the ghost queue remembers.
    fn ghost_len(&self) -> usize {
        let len = self.len();
        (len / 100 * GHOST_PERCENT + len % 100 * GHOST_PERCENT / 100)
            .clamp(GHOST_MIN, MAX_LIMIT as usize)
    }

    /// True if `hash`'s key is in the ghost queue; forgets it there.
    fn take_ghost(&mut self, hash: u64) -> bool {
        let limit = self.ghost_len() as u32;
        self.ghosts
            .take(fingerprint(hash), self.ghost_time, limit)
            .is_some()
    }

    /// Remembers `hash`'s key in the ghost queue.
    fn add_ghost(&mut self, hash: u64) {
        let now = self.ghost_time;
        self.ghost_time = now.wrapping_add(1);
        let limit = self.ghost_len() as u32;
        self.ghosts.insert(fingerprint(hash), now, limit, |_, t| {
            now.wrapping_sub(t) >= limit
        });
    }

    /// The list holding `idx`.
    fn list_of(&mut self, idx: Idx) -> &mut List {
        if self.meta(idx) & MAIN != 0 {
            &mut self.main
        } else {
            &mut self.small
        }
    }
}

impl EvictionPolicy for S3Fifo {
    fn on_insert(&mut self, idx: Idx, hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.nodes.init(idx, weight);
        self.meta.make_room(idx);
        if self.take_ghost(hash) {
            self.set_meta(idx, MAIN);
            self.main.push_back(&mut self.nodes, idx);
        } else {
            self.set_meta(idx, 0);
            self.small.push_back(&mut self.nodes, idx);
        }
    }

    fn on_access(&mut self, idx: Idx, _hash: u64) {
        self.note_hit(idx);
    }

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        let mut nodes = std::mem::take(&mut self.nodes);
        self.list_of(idx).set_weight(&mut nodes, idx, weight);
        self.nodes = nodes;
        self.note_hit(idx);
    }

    fn on_remove(&mut self, idx: Idx) {
        let mut nodes = std::mem::take(&mut self.nodes);
        self.list_of(idx).unlink(&mut nodes, idx);
        self.nodes = nodes;
    }

    fn evict(&mut self, hash_of: HashOf<'_>) -> Option<Idx> {
        loop {
            if self.small.weight() > self.small_max || self.main.is_empty() {
                let idx = self.small.pop_front(&mut self.nodes)?;
                if self.meta(idx) & FREQ == 0 {
                    self.add_ghost(hash_of(idx));
                    return Some(idx);
                }
                self.set_meta(idx, MAIN);
                self.main.push_back(&mut self.nodes, idx);
            } else {
                let idx = self.main.front()?;
                let meta = self.meta(idx);
                if meta & FREQ == 0 {
                    self.main.unlink(&mut self.nodes, idx);
                    return Some(idx);
                }
                self.set_meta(idx, meta - 1);
                self.main.move_to_back(&mut self.nodes, idx);
            }
        }
    }

    fn clear(&mut self) {
        self.small.clear();
        self.main.clear();
        self.nodes.clear();
        self.meta.clear();
        self.ghosts.clear();
    }

    fn len(&self) -> usize {
        self.small.len() + self.main.len()
    }

    fn weight(&self) -> u64 {
        self.small.weight() + self.main.weight()
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes() + self.meta.heap_bytes() + self.ghosts.heap_bytes()
    }

    fn reserve_slots(&mut self, slots: usize) {
        self.nodes.reserve_slots(slots);
        self.meta.reserve_slots(slots);
    }

    fn validate(&self) {
        for (list, main) in [(&self.small, false), (&self.main, true)] {
            list.validate(&self.nodes);
            for idx in list.iter(&self.nodes) {
                assert_eq!(
                    self.meta(idx) & MAIN != 0,
                    main,
                    "entry {idx} is in the wrong queue"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::no_hashes;

    fn hash(idx: Idx) -> u64 {
        (u64::from(idx) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[test]
    fn one_hit_wonders_leave_through_small_and_come_back_to_main() {
        let mut p = S3Fifo::new(10); // small share 1
        for i in 0..10 {
            p.on_insert(i, hash(i), 1, &hash);
        }
        p.note_hit(0);
        p.on_insert(10, hash(10), 1, &hash);
        // 0 was reused: it moves to main; 1 was not: it leaves.
        assert_eq!(p.evict(&hash), Some(1));
        assert_ne!(p.meta(0) & MAIN, 0);
        p.validate();
        // 1 comes back while the ghost remembers it: straight to main.
        p.on_insert(1, hash(1), 1, &hash);
        assert_ne!(p.meta(1) & MAIN, 0);
        p.validate();
    }

    #[test]
    fn main_reinserts_until_the_frequency_runs_out() {
        let mut p = S3Fifo::new(2);
        // Fill main through the ghost: evict 0 from small, bring it back.
        p.on_insert(0, hash(0), 1, &hash);
        p.on_insert(1, hash(1), 1, &hash);
        p.on_insert(2, hash(2), 1, &hash);
        assert_eq!(p.evict(&hash), Some(0));
        p.on_insert(0, hash(0), 1, &hash);
        assert_ne!(p.meta(0) & MAIN, 0);
        for _ in 0..5 {
            p.note_hit(0); // saturates at 3
        }
        assert_eq!(p.meta(0) & FREQ, 3);
        // small (1, 2) over its share of 1: 1 leaves.
        assert_eq!(p.evict(&hash), Some(1));
        // small at its share: main's 0 is passed over three times, then
        // leaves as the only one there.
        assert_eq!(p.evict(&hash), Some(0));
        assert_eq!(p.evict(&hash), Some(2));
        assert_eq!(p.evict(&no_hashes), None);
        p.validate();
    }

    #[test]
    fn ghost_table_stays_bounded() {
        let mut p = S3Fifo::new(100);
        for i in 0..100_000u32 {
            p.on_insert(i, hash(i), 1, &hash);
            while p.weight() > 100 {
                p.evict(&hash);
            }
            assert!(p.ghosts.len() <= 2 * p.ghost_len() + 1);
        }
        p.validate();
    }
}
