//! Cache statistics: a plain snapshot of counters.
//!
//! Hits and misses are counted per shard in [`Lookups`], striped per thread so that
//! readers on different cores never write the same cache line (a shared
//! per-shard counter cost reads about a third of their throughput at two
//! threads); everything else is counted under the shard lock that does the
//! work. [`Cache::stats`](crate::Cache::stats) adds them up; the snapshot is
//! not atomic across shards, so under concurrent traffic the fields may be
//! a few operations apart.

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Ordering};

/// A snapshot of a cache's counters since it was built.
///
/// # Examples
///
/// ```
/// use larder::Cache;
///
/// let cache: Cache<u32, u32> = Cache::new(10);
/// cache.insert(1, 10);
/// assert_eq!(cache.get(&1), Some(10));
/// assert_eq!(cache.get(&2), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses, stats.inserts), (1, 1, 1));
/// assert_eq!(stats.hit_ratio(), 0.5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Lookups (`get`, and the loading methods) that found a live value.
    pub hits: u64,
    /// Lookups that found nothing (or only an expired entry).
    pub misses: u64,
    /// Entries stored under a key that was absent.
    pub inserts: u64,
    /// Values replaced under a key that was present.
    pub updates: u64,
    /// Entries removed by the eviction policy, plus values rejected because
    /// they weigh more than the capacity.
    pub evictions: u64,
    /// Total weight of the evicted entries.
    pub evicted_weight: u64,
    /// Entries removed by `remove`, `invalidate_all`, `retain`, or replaced
    /// by a rejected value.
    pub removals: u64,
    /// Values rejected because they weigh more than their shard's capacity
    /// (also counted in `evictions`).
    pub rejections: u64,
    /// Entries removed because their time to live or time to idle ran out
    /// (not counted in `evictions`).
    pub expirations: u64,
    /// Loader calls that completed (`get_with` and friends), successful or
    /// not. A batch load counts once per key.
    pub loads: u64,
    /// Loader calls that returned an error.
    pub load_failures: u64,
    /// Time spent in loader calls, summed over loads.
    pub total_load_time: std::time::Duration,
    /// Lookups answered by a remembered "does not exist" (see
    /// [`CacheBuilder::negative_ttl`](crate::CacheBuilder::negative_ttl)).
    pub negative_hits: u64,
    /// Background refreshes that ran (see
    /// [`CacheBuilder::refresh_after`](crate::CacheBuilder::refresh_after)),
    /// successful or not. One whose loader returned (a value or an error)
    /// also counts in `loads` (and an error in `load_failures`), as a
    /// foreground load would; a skipped refresh counts nowhere.
    pub refreshes: u64,
    /// Refreshes whose loader returned an error or panicked: the old value
    /// was kept.
    pub refresh_failures: u64,
}

impl Stats {
    /// `hits / (hits + misses)`, or 1.0 when there were no lookups.
    pub fn hit_ratio(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            1.0
        } else {
            self.hits as f64 / total as f64
        }
    }

    /// `hits + misses`.
    pub fn requests(&self) -> u64 {
        self.hits + self.misses
    }
}

/// A shard's hit and miss counts, bumped by many readers at once: one
/// padded pair of atomics per stripe, a thread always adds to the same
/// stripe, and a read sums them all. Relaxed throughout: a sum taken while
/// others add may miss their latest additions, never counts anything twice.
pub(crate) struct Lookups {
    stripes: [CachePadded<[AtomicU64; 2]>; STRIPES],
}

/// Number of stripes of [`Lookups`] (a power of two). Threads are given
/// stripes round-robin, so up to this many threads never share one; more
/// share without losing counts. With the default shard count a stripe
/// already sees little contention, so a few stripes are enough (four cost
/// 512 bytes per shard).
const STRIPES: usize = 4;

/// This thread's stripe.
#[inline]
fn stripe() -> usize {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static STRIPE: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    STRIPE.with(|s| {
        let mut i = s.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % STRIPES;
            s.set(i);
        }
        i
    })
}

impl Lookups {
    pub(crate) fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| {
                CachePadded::new([AtomicU64::new(0), AtomicU64::new(0)])
            }),
        }
    }

    /// Counts a hit.
    #[inline]
    pub(crate) fn hit(&self) {
        self.stripes[stripe()][0].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a miss.
    #[inline]
    pub(crate) fn miss(&self) {
        self.stripes[stripe()][1].fetch_add(1, Ordering::Relaxed);
    }

    fn sum(&self, i: usize) -> u64 {
        self.stripes
            .iter()
            .map(|s| s[i].load(Ordering::Relaxed))
            .fold(0, u64::wrapping_add)
    }

    /// Hits so far.
    pub(crate) fn hits(&self) -> u64 {
        self.sum(0)
    }

    /// Misses so far.
    pub(crate) fn misses(&self) -> u64 {
        self.sum(1)
    }
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lookups")
            .field("hits", &self.hits())
            .field("misses", &self.misses())
            .finish()
    }
}
