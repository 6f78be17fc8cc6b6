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
pub(crate) struct NegativeTable<K> {
    table: HashTable<(u64, K, u64)>,
    /// Insertion order of the marks (hash, deadline), for bounded eviction.
    order: VecDeque<(u64, u64)>,
}

impl<K> Default for NegativeTable<K> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
            order: VecDeque::new(),
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
        match self.table.find_entry(hash, |(_, k, _)| k.borrow() == key) {
            Ok(entry) if entry.get().2 > now => true,
            Ok(entry) => {
                entry.remove();
                false
            }
            Err(_) => false,
        }
    }

    /// Marks `key` as absent until `deadline`, keeping at most `limit` marks.
    pub(crate) fn insert(&mut self, hash: u64, key: K, deadline: u64, now: u64, limit: usize)
    where
        K: Eq,
    {
        if limit == 0 {
            return;
        }
        self.remove(hash, &key);
        while self.table.len() >= limit {
            // Drop the oldest mark still present (entries in `order` may be
            // gone already; they are skipped).
            let Some((h, d)) = self.order.pop_front() else {
                break;
            };
            if let Ok(e) = self.table.find_entry(h, |(hh, _, dd)| *hh == h && *dd == d) {
                e.remove();
            }
        }
        // Keep the order queue from growing without bound with dead records.
        if self.order.len() > 2 * limit.max(16) {
            let table = &self.table;
            self.order.retain(|&(h, d)| {
                table.find(h, |(hh, _, dd)| *hh == h && *dd == d).is_some() && d > now
            });
        }
        self.table
            .insert_unique(hash, (hash, key, deadline), |(h, _, _)| *h);
        self.order.push_back((hash, deadline));
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
        if let Ok(e) = self.table.find_entry(hash, |(_, k, _)| k.borrow() == key) {
            e.remove();
        }
    }

    /// Clears every mark.
    pub(crate) fn clear(&mut self) {
        self.table.clear();
        self.order.clear();
    }

    /// Number of marks (expired ones included until they are met).
    #[cfg(test)]
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
        t.insert(1, 1, 100, 0, 2);
        assert!(t.contains(1, &1, 99));
        assert!(!t.contains(1, &1, 100));
        assert_eq!(t.len(), 0);
        for k in 0..10 {
            t.insert(u64::from(k), k, 1_000, 0, 3);
            assert!(t.len() <= 3);
        }
        // The newest three survive.
        assert!(t.contains(9, &9, 0) && t.contains(8, &8, 0) && t.contains(7, &7, 0));
        t.remove(9, &9);
        assert!(!t.contains(9, &9, 0));
        t.clear();
        assert_eq!(t.len(), 0);
    }
}
