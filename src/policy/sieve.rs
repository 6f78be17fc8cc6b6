//! SIEVE: one FIFO queue, a visited bit per entry and a moving hand.
//!
//! After Zhang, Yang, Yue, Vigfusson and Rashmi, "SIEVE is Simpler than
//! LRU: an Efficient Turn-Key Eviction Algorithm for Web Caches" (NSDI
//! 2024). Written anew over larder's index-linked lists.
//!
//! * New entries join the newest end of the queue with the bit clear.
//! * A read hit (or an update) sets the entry's visited bit and moves
//!   nothing: under the shard's *read* lock the reader stores one byte, and
//!   only if the bit was clear, so a hot entry's cache line stays shared.
//!   The shard never replays SIEVE's hits.
//! * Eviction walks the **hand** from where it stopped last towards the
//!   newest end (wrapping to the oldest end), clearing visited bits, and
//!   evicts the first entry whose bit is clear; the hand stays at the
//!   entry after it. Unlike CLOCK, a survivor is not moved to the newest
//!   end: it keeps its place, so new entries that are not reused sit
//!   between the hand and the newest end and are the next to leave, while
//!   entries that proved themselves settle behind the hand.
//!
//! Each eviction clears at most one bit per entry before it finds a clear
//! one (after one lap every bit is clear), so it is O(1) amortised.
//! Weights: an entry of any weight is evicted in its turn; the shard asks
//! again until the weight fits.

use super::list::{List, Nodes, NIL};
use super::meta::MetaBytes;
use super::{EvictionPolicy, HashOf, Idx};
use crate::sync::Ordering;

/// The visited bit of an entry's meta byte.
const VISITED: u8 = 1;

/// SIEVE for one shard.
#[derive(Debug, Default)]
pub(crate) struct Sieve {
    /// Links (and weights) of the queue.
    nodes: Nodes,
    /// The queue: head is the oldest entry, tail the newest.
    queue: List,
    /// One byte per entry: the visited bit.
    meta: MetaBytes,
    /// Where the next eviction starts looking ([`NIL`]: at the head).
    hand: Idx,
}

impl Sieve {
    pub(crate) fn new() -> Self {
        Self {
            hand: NIL,
            ..Self::default()
        }
    }

    /// Notes a read hit on `idx` under the shard's *read* lock: sets its
    /// visited bit, writing only if it was clear.
    #[inline]
    pub(crate) fn note_hit(&self, idx: Idx) {
        if let Some(m) = self.meta.slot(idx) {
            if m.load(Ordering::Relaxed) & VISITED == 0 {
                m.store(VISITED, Ordering::Relaxed);
            }
        }
    }

    #[inline]
    fn visited(&self, idx: Idx) -> bool {
        self.meta.get(idx) & VISITED != 0
    }

    #[inline]
    fn set_visited(&mut self, idx: Idx, on: bool) {
        self.meta.set(idx, u8::from(on));
    }

    /// The entry after `idx` towards the newest end, wrapping to the head.
    #[inline]
    fn after(&self, idx: Idx) -> Idx {
        match self.nodes.get(idx).next {
            NIL => self.queue.front().unwrap_or(NIL),
            next => next,
        }
    }
}

impl EvictionPolicy for Sieve {
    fn on_insert(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.nodes.init(idx, weight);
        self.meta.make_room(idx);
        self.set_visited(idx, false);
        self.queue.push_back(&mut self.nodes, idx);
    }

    fn on_access(&mut self, idx: Idx, _hash: u64) {
        self.note_hit(idx);
    }

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.queue.set_weight(&mut self.nodes, idx, weight);
        self.note_hit(idx);
    }

    fn on_remove(&mut self, idx: Idx) {
        if self.hand == idx {
            let next = self.nodes.get(idx).next;
            self.hand = next;
        }
        self.queue.unlink(&mut self.nodes, idx);
    }

    fn evict(&mut self, _hash_of: HashOf<'_>) -> Option<Idx> {
        let mut hand = match self.hand {
            NIL => self.queue.front()?,
            h => h,
        };
        while self.visited(hand) {
            self.set_visited(hand, false);
            hand = self.after(hand);
        }
        self.hand = self.nodes.get(hand).next;
        self.queue.unlink(&mut self.nodes, hand);
        Some(hand)
    }

    fn clear(&mut self) {
        self.queue.clear();
        self.nodes.clear();
        self.meta.clear();
        self.hand = NIL;
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn weight(&self) -> u64 {
        self.queue.weight()
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes() + self.meta.heap_bytes()
    }

    fn reserve_slots(&mut self, slots: usize) {
        self.nodes.reserve_slots(slots);
        self.meta.reserve_slots(slots);
    }

    fn validate(&self) {
        self.queue.validate(&self.nodes);
        if self.hand != NIL {
            assert!(
                self.queue.iter(&self.nodes).any(|i| i == self.hand),
                "the hand points off the queue"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::no_hashes;

    #[test]
    fn survivors_keep_their_place_and_newcomers_leave_first() {
        let mut s = Sieve::new();
        for i in 0..4 {
            s.on_insert(i, 0, 1, &no_hashes);
        }
        s.note_hit(0);
        s.note_hit(1);
        // The hand clears 0 and 1 and evicts 2; it then rests on 3.
        assert_eq!(s.evict(&no_hashes), Some(2));
        s.on_insert(4, 0, 1, &no_hashes);
        assert_eq!(s.evict(&no_hashes), Some(3));
        // The hand rests on 4, the newest, which is unvisited.
        assert_eq!(s.evict(&no_hashes), Some(4));
        // Now from the head: 0 and 1 had their bits cleared.
        assert_eq!(s.evict(&no_hashes), Some(0));
        s.validate();
        assert_eq!(s.evict(&no_hashes), Some(1));
        assert_eq!(s.evict(&no_hashes), None);
    }

    #[test]
    fn removing_the_hand_moves_it_on() {
        let mut s = Sieve::new();
        for i in 0..3 {
            s.on_insert(i, 0, 1, &no_hashes);
        }
        s.note_hit(0);
        assert_eq!(s.evict(&no_hashes), Some(1)); // hand now at 2
        s.on_remove(2);
        s.validate();
        assert_eq!(s.evict(&no_hashes), Some(0));
        s.validate();
    }
}
