//! Where an entry leaves a shard.
//!
//! However an entry goes (evicted by the policy, expired by the timer
//! wheel, removed by `remove`, `retain` or `invalidate_all`, replaced by a
//! write that is rejected), it leaves through [`Core::take_out`]: out of
//! the policy, the table, the slab, the timer wheel and the weights, counted
//! under its cause, and handed to the caller, who puts it in a [`Removed`]
//! list (announced to the listener and dropped after the lock is released)
//! or returns it. The per-index side arrays (idle and hard deadlines,
//! refresh points) need no clearing: every write of a slot sets them again.
//!
//! Weight that leaves by `remove`, `retain`, `clear` or expiry goes back
//! to the cache's budget before the lock is released; weight the policy
//! evicts to make room stays committed, as room for the write that evicted
//! it (see `super::budget`).
//!
//! Invalidation is about keys, not entries: a write or removal of a key
//! also voids the key's load in flight and its negative mark
//! ([`Core::invalidate`]), present entry or not.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};

use crate::policy::{EvictionPolicy, Idx, RemovalCause};

use super::{hashes, stored_hash, Budget, Core, Entry};
use crate::sync::Arc;

/// Removed entries waiting to be announced and dropped outside the lock.
pub(crate) struct Removed<K, V> {
    first: Option<(K, V, RemovalCause)>,
    rest: Vec<(K, V, RemovalCause)>,
}

impl<K, V> Removed<K, V> {
    pub(crate) fn new() -> Self {
        Self {
            first: None,
            rest: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, key: K, value: V, cause: RemovalCause) {
        if self.first.is_none() {
            self.first = Some((key, value, cause));
        } else {
            self.rest.push((key, value, cause));
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.first.is_none()
    }

    /// Every removed entry, in the order removed.
    pub(crate) fn into_iter(self) -> impl Iterator<Item = (K, V, RemovalCause)> {
        self.first.into_iter().chain(self.rest)
    }
}

/// Weight that left and goes back to the budget when this is dropped.
struct Unreleased<'a> {
    budget: &'a Budget,
    weight: u64,
}

impl Drop for Unreleased<'_> {
    fn drop(&mut self) {
        self.budget.release(self.weight);
    }
}

/// Who has already taken the entry out of the policy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Policy {
    /// The policy still tracks it (every removal but eviction).
    Tracks,
    /// The policy chose it as its victim and dropped it itself.
    Evicted,
}

impl<K: Hash, V, S: BuildHasher> Core<K, V, S> {
    /// The one path by which a live entry leaves the shard: out of the
    /// policy (unless it is the policy's own victim), the table, the slab,
    /// the timer wheel and the weights, counted under `cause` (`Replaced`
    /// and `Explicit` count as removals). Returns the entry.
    pub(super) fn take_out(
        &mut self,
        idx: Idx,
        cause: RemovalCause,
        policy: Policy,
    ) -> Entry<K, V> {
        self.take_out_hashed(idx, cause, policy, None)
    }

    /// [`take_out`](Self::take_out), given the key's hash if it was just
    /// computed from the stored key (by the policy choosing its victim: a
    /// value of the policy's `hash_of`, 0 if the key's `Hash` panicked), so
    /// the key is not hashed a second time.
    pub(super) fn take_out_hashed(
        &mut self,
        idx: Idx,
        cause: RemovalCause,
        policy: Policy,
        known: Option<u64>,
    ) -> Entry<K, V> {
        if policy == Policy::Tracks {
            self.policy.on_remove(idx);
        }
        // Out of the table before the slot is emptied (the rule in `Core`'s
        // docs). A known hash of 0 (a panicking `Hash`; a real `table_hash`
        // is odd) is looked up like any other: the match is on the index,
        // so at worst it finds nothing and takes the slow way below.
        let hash = match known {
            Some(h) => Some(h),
            None => stored_hash(&self.hasher, &self.entry(idx).key),
        };
        match hash.map(|h| self.table.find_entry(h, |&i| i == idx)) {
            Some(Ok(found)) => {
                found.remove();
            }
            // The key's hash is not what it was when stored, or its `Hash`
            // panicked (see the module docs): find the index the slow way.
            _ => self.table.retain(|&mut i| i != idx),
        }
        let entry = self.slots.take(idx as usize).expect("live slot");
        if let Some(t) = self.timers.as_mut() {
            t.wheel.deschedule(idx);
            if let Some(hi) = t.hi.get_mut(idx as usize) {
                *hi = u32::MAX;
            }
        }
        self.free.push(idx);
        let weight = self.weights.get(idx);
        self.weight -= u64::from(weight);
        if self.table.is_empty() {
            // Give memory back once the shard is empty. (Slots the table
            // no longer reached, if a `Hash` panicked under the lock, go
            // here too.)
            self.slots.clear();
            self.used = 0;
            self.free.clear();
            self.weights.clear();
        }
        match cause {
            RemovalCause::Expired => self.counters.expirations += 1,
            RemovalCause::Evicted => {
                self.counters.evictions += 1;
                self.counters.evicted_weight += u64::from(weight);
            }
            RemovalCause::Explicit | RemovalCause::Replaced => self.counters.removals += 1,
        }
        entry
    }

    /// [`take_out`](Self::take_out) into the `removed` list.
    pub(super) fn detach(&mut self, idx: Idx, cause: RemovalCause, removed: &mut Removed<K, V>) {
        let entry = self.take_out(idx, cause, Policy::Tracks);
        removed.push(entry.key, entry.value, cause);
    }

    /// Evicts the policy's victims until the shard weighs at most `limit`
    /// (the weight committed for it; see `super::budget`). The weight that
    /// leaves stays committed: the caller reuses it or gives it back.
    pub(super) fn evict_to(&mut self, limit: u64, removed: &mut Removed<K, V>) {
        while self.weight > limit {
            let Some((victim, hash)) = self.policy.evict_hashed(&hashes(&self.slots, &self.hasher))
            else {
                debug_assert!(false, "policy empty while over its limit");
                break;
            };
            let entry = self.take_out_hashed(victim, RemovalCause::Evicted, Policy::Evicted, hash);
            removed.push(entry.key, entry.value, RemovalCause::Evicted);
        }
    }

    /// Room for an insert into another shard: evicts the policy's victims
    /// until `want` weight has left or the shard weighs at most `floor`, and
    /// returns the weight that left. It stays committed, as the other
    /// insert's credit (see `super::budget`).
    pub(crate) fn give_room(&mut self, want: u64, floor: u64, removed: &mut Removed<K, V>) -> u64 {
        let before = self.weight;
        while before - self.weight < want && self.weight > floor {
            let Some((victim, hash)) = self.policy.evict_hashed(&hashes(&self.slots, &self.hasher))
            else {
                break;
            };
            let entry = self.take_out_hashed(victim, RemovalCause::Evicted, Policy::Evicted, hash);
            removed.push(entry.key, entry.value, RemovalCause::Evicted);
        }
        before - self.weight
    }

    /// A write or removal of `key` from outside a load: a load in flight
    /// for it must not store its value (and later callers must not join
    /// it), and a negative mark is void.
    #[inline]
    pub(crate) fn invalidate<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.flights.invalidate(hash, key);
        self.negatives.remove(hash, key);
    }

    /// An invalidation of every key: loads in flight and negative marks.
    fn invalidate_every_key(&mut self) {
        self.flights.invalidate_all();
        self.negatives.clear();
    }

    /// Removes `key` if present. An entry that had expired at `now` is
    /// removed too, but reported in `removed` (as expired) instead of
    /// returned.
    pub(crate) fn remove<Q>(
        &mut self,
        hash: u64,
        key: &Q,
        now: u64,
        removed: &mut Removed<K, V>,
    ) -> Option<(K, V)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.invalidate(hash, key);
        let idx = self.find(hash, key)?;
        let before = self.weight;
        let found = if self.is_expired(idx, now) {
            self.detach(idx, RemovalCause::Expired, removed);
            None
        } else {
            let entry = self.take_out(idx, RemovalCause::Explicit, Policy::Tracks);
            Some((entry.key, entry.value))
        };
        self.budget.release(before - self.weight);
        found
    }

    /// Keeps only the entries for which `keep` returns true (an
    /// invalidation of every key, as for [`clear`](Self::clear)). Entries
    /// expired at `now` are never shown to `keep`: they leave as expired.
    pub(crate) fn retain(
        &mut self,
        now: u64,
        keep: &mut dyn FnMut(&K, &V) -> bool,
        removed: &mut Removed<K, V>,
    ) {
        self.invalidate_every_key();
        // Released even if `keep` panics half way.
        let budget = Arc::clone(&self.budget);
        let mut left = Unreleased {
            budget: &budget,
            weight: 0,
        };
        let mut idx = 0;
        // `take_out` empties the slab when the last entry goes.
        while idx < self.used {
            let i = idx as Idx;
            let cause = match self.slots.get(idx) {
                Some(_) if self.is_expired(i, now) => Some(RemovalCause::Expired),
                Some(e) if !keep(&e.key, &e.value) => Some(RemovalCause::Explicit),
                _ => None,
            };
            if let Some(cause) = cause {
                let before = self.weight;
                self.detach(i, cause, removed);
                left.weight += before - self.weight;
            }
            idx += 1;
        }
    }

    /// Removes every entry (those expired at `now` as expired).
    pub(crate) fn clear(&mut self, now: u64, removed: &mut Removed<K, V>) {
        self.retain(now, &mut |_, _| false, removed);
        debug_assert!(self.table.is_empty() && self.policy.len() == 0);
        self.policy.clear();
        if let Some(t) = self.timers.as_mut() {
            t.wheel.clear();
            t.hi.clear();
            t.hard.clear();
            t.idle.clear();
            t.refresh_at.clear();
        }
        self.slots.shrink_to_fit();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::super::{Budget, Core, TimeSettings, WriteTime};
    use super::*;
    use crate::policy::Policy as EvictionOrder;
    use crate::sync::Arc;

    /// A one-shard core of `capacity` with its own budget, LRU order.
    fn core(capacity: u64) -> Core<u32, u32, ahash::RandomState> {
        let budget = Arc::new(Budget::new(capacity));
        Core::new(
            EvictionOrder::Lru,
            (capacity, capacity),
            budget,
            7,
            (true, None),
            TimeSettings::default(),
            hasher(),
        )
    }

    fn hasher() -> ahash::RandomState {
        ahash::RandomState::with_seeds(1, 2, 3, 4)
    }

    /// The cache's hash of `k` (what the core recomputes from the key).
    fn h(k: u32) -> u64 {
        super::super::cache_hash(&hasher(), &k)
    }

    fn write(now: u64, ttl: Option<Duration>) -> WriteTime {
        WriteTime { now, ttl }
    }

    /// What `removed` holds, as (key, cause).
    fn causes(removed: Removed<u32, u32>) -> Vec<(u32, RemovalCause)> {
        removed.into_iter().map(|(k, _, c)| (k, c)).collect()
    }

    /// The shard's own view after every operation: structure, and the
    /// budget equal to what is stored (a one-shard cache at rest).
    fn check(core: &Core<u32, u32, ahash::RandomState>) {
        core.validate();
        assert_eq!(core.budget.committed(), core.weight());
    }

    #[test]
    fn every_way_out_counts_its_cause_once_and_gives_the_room_back() {
        let mut c = core(2);
        let mut removed = Removed::new();
        for k in 1..=3 {
            c.insert(h(k), k, k * 10, 1, write(0, None), &mut removed);
            check(&c);
        }
        // The third insert evicted the least recently used key.
        assert_eq!(causes(removed), vec![(1, RemovalCause::Evicted)]);
        let mut removed = Removed::new();
        c.insert(h(2), 2, 21, 1, write(0, None), &mut removed); // an update
        assert_eq!(causes(removed), vec![(2, RemovalCause::Replaced)]);
        let mut removed = Removed::new();
        assert_eq!(c.remove(h(3), &3, 0, &mut removed), Some((3, 30)));
        assert!(removed.is_empty(), "an explicit remove returns the entry");
        check(&c);
        let mut removed = Removed::new();
        c.retain(0, &mut |_, _| false, &mut removed);
        assert_eq!(causes(removed), vec![(2, RemovalCause::Explicit)]);
        check(&c);
        let n = c.counters;
        assert_eq!((n.inserts, n.updates, n.evictions), (3, 1, 1));
        // The update's old value counts as an update (the listener sees it
        // as replaced); remove and retain as removals.
        assert_eq!(n.removals, 2);
        assert_eq!(c.len(), 0);
        assert_eq!(c.budget.committed(), 0, "every unit of room came back");
    }

    #[test]
    fn an_expired_entry_leaves_as_expired_whichever_way_it_goes() {
        let ttl = Some(Duration::from_secs(1));
        let later = 2_000_000_000; // 2 s: past the deadline
                                   // remove: reported as expired, not returned.
        let mut c = core(8);
        let mut removed = Removed::new();
        c.insert(h(1), 1, 10, 1, write(0, ttl), &mut removed);
        assert_eq!(c.remove(h(1), &1, later, &mut removed), None);
        assert_eq!(causes(removed), vec![(1, RemovalCause::Expired)]);
        check(&c);
        // retain: never shown to the predicate.
        let mut removed = Removed::new();
        c.insert(h(2), 2, 20, 1, write(0, ttl), &mut removed);
        c.insert(h(3), 3, 30, 1, write(0, None), &mut removed);
        let mut seen = Vec::new();
        c.retain(
            later,
            &mut |k, _| {
                seen.push(*k);
                true
            },
            &mut removed,
        );
        assert_eq!(seen, vec![3]);
        assert_eq!(causes(removed), vec![(2, RemovalCause::Expired)]);
        // clear: the expired one as expired, the rest as explicit.
        let mut removed = Removed::new();
        c.insert(h(4), 4, 40, 1, write(later, ttl), &mut removed);
        c.insert(
            h(5),
            5,
            50,
            1,
            write(later, Some(Duration::from_millis(1))),
            &mut removed,
        );
        c.clear(later + 1_000_000_000, &mut removed);
        let mut got = causes(removed);
        got.sort_unstable_by_key(|&(k, _)| k);
        assert_eq!(
            got,
            vec![
                (3, RemovalCause::Explicit),
                (4, RemovalCause::Expired),
                (5, RemovalCause::Expired),
            ]
        );
        assert_eq!(c.counters.expirations, 4);
        check(&c);
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn an_invalidation_voids_the_keys_flight_and_negative_mark() {
        let mut c = core(8);
        let flight = super::super::Flight::new(9, 9);
        c.flights.register(flight.clone());
        c.negatives.insert(8, 8, u64::MAX - 1, 8);
        c.invalidate(9, &9);
        assert!(flight.is_stale());
        assert!(c.flights.find(9, &9).is_none(), "a stale flight leaves");
        assert!(
            c.negatives.contains(8, &8, 0),
            "other keys keep their marks"
        );
        c.invalidate(8, &8);
        assert!(!c.negatives.contains(8, &8, 0));
    }
}
