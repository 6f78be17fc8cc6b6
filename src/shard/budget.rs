//! The cache-wide weight budget every shard draws on.
//!
//! # Why one budget
//!
//! A cache of capacity `n` must hold `n` entries of weight 1 whatever the
//! spread of their keys over the shards. Splitting the capacity into hard
//! per-shard bounds does not: the keys of a data set of exactly `n` entries
//! land unevenly (a shard's count is binomial, about `n / shards` plus or
//! minus its square root), so the fullest shards evict while the others
//! have room (64 shards of 1,024: 64,695 of 65,536 keys kept).
//!
//! # How
//!
//! [`Budget`] is one atomic counter of the weight the cache has committed,
//! never above the capacity. A shard's write takes the weight it grows by
//! from it ([`Budget::reserve_up_to`], a compare-and-swap that never passes
//! the capacity) and gives back what it shrinks by ([`Budget::release`]),
//! so at every moment
//!
//! ```text
//! sum of the shards' weights + credits held by inserts in progress
//!     == committed <= capacity
//! ```
//!
//! and the capacity is a hard bound after every operation (a shard may
//! hold one entry more while its write lock is held, as before: an insert
//! stores its entry before its eviction picks a victim, which may be the
//! new entry itself).
//!
//! When the budget is spent, a shard makes room by evicting from itself,
//! with its own policy, so the write stays shard-local: a full cache's
//! insert of a weight-1 entry reads the counter (a line no one writes
//! while the cache stays full) and writes nothing shared. A shard holding
//! less than half its share of the capacity (or less than the room it
//! needs) does not evict itself empty: the insert releases its lock and
//! takes the room from other shards ([`Cache`](crate::Cache)'s
//! `make_room`), one lock at a time, then retries with that room as
//! credit. No code holds two shard locks.
//!
//! The shards' counts settle where the keys put them when the cache first
//! filled; from then on each shard replaces its own entries. With keys
//! spread by a good hash that is the spread a global policy would see.

use crate::sync::{AtomicU64, Ordering};

/// The committed weight of a cache and its capacity (see the module docs).
#[derive(Debug)]
pub(crate) struct Budget {
    committed: AtomicU64,
    capacity: u64,
}

impl Budget {
    /// A budget of `capacity` weight units, none committed.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            committed: AtomicU64::new(0),
            capacity,
        }
    }

    /// The cache's capacity.
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Weight committed now (stored, or reserved by an insert in progress).
    #[inline]
    pub(crate) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// Commits up to `want` more weight, as much as fits under the
    /// capacity; returns how much. Reads the counter first, so a full
    /// cache's caller writes nothing.
    #[inline]
    pub(crate) fn reserve_up_to(&self, want: u64) -> u64 {
        if want == 0 {
            return 0;
        }
        let mut seen = self.committed.load(Ordering::Relaxed);
        loop {
            let got = want.min(self.capacity.saturating_sub(seen));
            if got == 0 {
                return 0;
            }
            match self.committed.compare_exchange_weak(
                seen,
                seen + got,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return got,
                Err(now) => seen = now,
            }
        }
    }

    /// Gives back `weight` committed earlier.
    #[inline]
    pub(crate) fn release(&self, weight: u64) {
        if weight != 0 {
            let before = self.committed.fetch_sub(weight, Ordering::Relaxed);
            debug_assert!(before >= weight, "released more than committed");
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::Budget;

    #[test]
    fn reserves_up_to_the_capacity_and_takes_back_releases() {
        let b = Budget::new(10);
        assert_eq!(b.reserve_up_to(4), 4);
        assert_eq!(b.reserve_up_to(0), 0);
        assert_eq!(b.reserve_up_to(7), 6, "only what fits");
        assert_eq!(b.reserve_up_to(1), 0, "full");
        b.release(3);
        assert_eq!(b.committed(), 7);
        assert_eq!(b.reserve_up_to(u64::MAX), 3);
        assert_eq!(b.committed(), b.capacity());
    }

    #[test]
    fn concurrent_reservations_never_pass_the_capacity() {
        let b = Budget::new(1_000);
        let got: u64 = std::thread::scope(|s| {
            let hs: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..1_000).map(|_| b.reserve_up_to(3)).sum::<u64>()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum()
        });
        assert_eq!(got, 1_000);
        assert_eq!(b.committed(), 1_000);
    }
}
