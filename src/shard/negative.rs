//! Negative caching: "this key does not exist", remembered for a while.
//!
//! When [`CacheBuilder::negative_ttl`](crate::CacheBuilder::negative_ttl) is
//! set, a loader of `optionally_get_with` that returns `None` leaves a mark
//! here, so a flood of requests for a missing id reaches the backend once per
//! TTL. Marks live beside the shard's table, do not count toward capacity and
//! are bounded by the shard's capacity (in entries): when full, expired marks
//! go first, then the oldest-inserted one. Any write or removal of the key
//! (and `invalidate_all`, `retain`) clears its mark.

use std::borrow::Borrow;
use std::collections::VecDeque;

use hashbrown::HashTable;

/// The negative marks of one shard.
///
/// Every mark of a cache has the same time to live and a shard's time never
/// goes backwards, so insertion order is also expiry order: dropping the
/// oldest mark drops an expired one first, if there is any.
///
/// `repr(C)`: the table first, the part every write of the shard looks at
/// (is it empty?), in one line of `Core` (see its layout).
#[repr(C)]
pub(crate) struct NegativeTable<K> {
    /// `(hash, key, deadline, seq)`: `seq` numbers the marks in insertion
    /// order and names a mark exactly.
    table: HashTable<(u64, K, u64, u64)>,
    /// `(hash, seq)` of the marks in insertion order; records of marks that
    /// have gone since (met expired, removed, replaced) are skipped, and
    /// swept out once they outnumber the marks.
    order: VecDeque<(u64, u64)>,
    next_seq: u64,
}

impl<K> Default for NegativeTable<K> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            order: VecDeque::new(),
            next_seq: 0,
        }
    }
}

impl<K> NegativeTable<K> {
    /// True if `key` has a mark that has not expired at `now` (an expired
    /// mark is dropped).
    pub(crate) fn contains<Q>(&mut self, hash: u64, key: &Q, now: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.table.is_empty() {
            return false;
        }
        match self
            .table
            .find_entry(hash, |(_, k, _, _)| k.borrow() == key)
        {
            Ok(entry) if entry.get().2 > now => true,
            Ok(entry) => {
                entry.remove();
                false
            }
            Err(_) => false,
        }
    }

    /// Marks `key` as absent until `deadline`, keeping at most `limit`
    /// marks (the oldest go first).
    pub(crate) fn insert(&mut self, hash: u64, key: K, deadline: u64, limit: usize)
    where
        K: Eq,
    {
        if limit == 0 {
            return;
        }
        self.remove(hash, &key);
        while self.table.len() >= limit {
            let Some((h, seq)) = self.order.pop_front() else {
                debug_assert!(false, "every mark has an order record");
                break;
            };
            if let Ok(e) = self.table.find_entry(h, |m| m.3 == seq) {
                e.remove();
            }
        }
        if self.order.len() >= 2 * limit.max(16) {
            // Sweep the records of marks that have gone.
            let table = &self.table;
            self.order
                .retain(|&(h, seq)| table.find(h, |m| m.3 == seq).is_some());
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.table
            .insert_unique(hash, (hash, key, deadline, seq), |m| m.0);
        self.order.push_back((hash, seq));
    }

    /// Clears the mark of `key`, if any.
    #[inline]
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.table.is_empty() {
            return;
        }
        if let Ok(e) = self
            .table
            .find_entry(hash, |(_, k, _, _)| k.borrow() == key)
        {
            e.remove();
        }
    }

    /// Clears every mark.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.order.clear();
    }

    /// Number of marks (expired ones included until they are met).
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn marks_expire_and_are_bounded() {
        let mut t: NegativeTable<u32> = NegativeTable::default();
        t.insert(1, 1, 100, 2);
        assert!(t.contains(1, &1, 99));
        assert!(!t.contains(1, &1, 100));
        assert_eq!(t.len(), 0);
        for k in 0..10 {
            t.insert(u64::from(k), k, 1_000, 3);
            assert!(t.len() <= 3);
        }
        // The newest three survive.
        assert!(t.contains(9, &9, 0) && t.contains(8, &8, 0) && t.contains(7, &7, 0));
        t.remove(9, &9);
        assert!(!t.contains(9, &9, 0));
        t.clear();
        assert_eq!(t.len(), 0);
    }

    #[test]
    fn expired_marks_do_not_crowd_out_live_ones() {
        // Marks met expired leave the table; their order records must not
        // make later evictions skip the oldest live mark or drop new ones.
        let mut t: NegativeTable<u64> = NegativeTable::default();
        let limit = 32;
        let mut now = 0;
        for round in 0..1_000u64 {
            for k in 0..20 {
                let key = round * 100 + k;
                t.insert(key, key, now + 10, limit);
            }
            // Half of them are asked for after they expired.
            now += 11;
            for k in 0..10 {
                let key = round * 100 + k;
                assert!(!t.contains(key, &key, now));
            }
            // A live mark just inserted is always remembered.
            let key = round * 100 + 99;
            t.insert(key, key, now + 10, limit);
            assert!(t.contains(key, &key, now), "round {round}");
            assert!(t.len() <= limit);
            assert!(t.order.len() <= 2 * limit.max(16) + 1);
        }
    }
}
