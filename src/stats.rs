//! Cache statistics: a plain snapshot of counters, differences between
//! two snapshots ([`Stats::since`]), and load-time percentiles from the
//! histogram in [`crate::histogram`].
//!
//! Hits and misses are counted per shard in [`Lookups`], one relaxed
//! atomic each, by readers under the shard's read lock (the hit count sits
//! in the line of the lock's word, which every reader writes anyway; see
//! [`Lookups`] for why it is no longer striped per thread); everything else
//! is counted under the shard lock that does the work. [`Cache::stats`](crate::Cache::stats) adds them up; the snapshot is
//! not atomic across shards, so under concurrent traffic the fields may be
//! a few operations apart.

use std::time::Duration;

use crate::histogram::Histogram;

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
    /// Values rejected because they weigh more than the cache's capacity
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
    pub total_load_time: Duration,
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
    /// Median loader call duration since the cache was built, to within
    /// [`Histogram::RELATIVE_ERROR`]; zero before the first load. Over an
    /// interval, use the difference of two load-time [`Histogram`]s.
    pub load_time_p50: Duration,
    /// 90th percentile of loader call durations (as `load_time_p50`).
    pub load_time_p90: Duration,
    /// 99th percentile of loader call durations (as `load_time_p50`).
    pub load_time_p99: Duration,
    /// Longest loader call (exact); zero before the first load.
    pub load_time_max: Duration,
    /// Lookups answered "absent" by the key filter without a load (see
    /// [`CacheBuilder::key_filter`](crate::CacheBuilder::key_filter)).
    pub filtered: u64,
    /// Callers (threads or tasks) that stopped waiting for a load after
    /// [`CacheBuilder::load_timeout`](crate::CacheBuilder::load_timeout):
    /// waiters on another caller's load, and bounded leaders (see there).
    /// What each got instead (its own loader call, counted in `loads`; the
    /// timeout error; the stale value) depends on the verb.
    pub load_timeouts: u64,
    /// Reloads started before expiry by
    /// [`CacheBuilder::early_refresh`](crate::CacheBuilder::early_refresh)
    /// (also counted in `refreshes`).
    pub early_refreshes: u64,
    /// Reads answered with an expired value because its reload failed, was
    /// still running, outlived the load timeout or was not tried (the key's
    /// last reload failed within the retry interval), within
    /// [`CacheBuilder::stale_if_error`](crate::CacheBuilder::stale_if_error)'s window.
    pub stale_served: u64,
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

    /// The counts between `earlier` and `self` (two snapshots of one cache,
    /// `earlier` taken first): every counter and `total_load_time`
    /// subtracted, saturating at zero (swapped arguments give zeros, not a
    /// panic). The load-time percentiles are `self`'s, since the cache was
    /// built: a percentile of an interval needs the two histograms
    /// ([`Histogram::since`]).
    ///
    /// # Examples
    ///
    /// Rates over an interval:
    ///
    /// ```
    /// use std::time::Instant;
    /// use larder::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::new(100);
    /// let (before, start) = (cache.stats(), Instant::now());
    /// cache.insert(1, 1);
    /// cache.get(&1);
    /// cache.get(&2);
    /// let interval = cache.stats().since(&before);
    /// let seconds = start.elapsed().as_secs_f64();
    /// assert_eq!((interval.hits, interval.misses), (1, 1));
    /// println!("{:.0} lookups/s, hit ratio {:.2}",
    ///     interval.requests() as f64 / seconds, interval.hit_ratio());
    /// ```
    pub fn since(&self, earlier: &Stats) -> Stats {
        Stats {
            hits: self.hits.saturating_sub(earlier.hits),
            misses: self.misses.saturating_sub(earlier.misses),
            inserts: self.inserts.saturating_sub(earlier.inserts),
            updates: self.updates.saturating_sub(earlier.updates),
            evictions: self.evictions.saturating_sub(earlier.evictions),
            evicted_weight: self.evicted_weight.saturating_sub(earlier.evicted_weight),
            removals: self.removals.saturating_sub(earlier.removals),
            rejections: self.rejections.saturating_sub(earlier.rejections),
            expirations: self.expirations.saturating_sub(earlier.expirations),
            loads: self.loads.saturating_sub(earlier.loads),
            load_failures: self.load_failures.saturating_sub(earlier.load_failures),
            total_load_time: self.total_load_time.saturating_sub(earlier.total_load_time),
            negative_hits: self.negative_hits.saturating_sub(earlier.negative_hits),
            refreshes: self.refreshes.saturating_sub(earlier.refreshes),
            refresh_failures: self
                .refresh_failures
                .saturating_sub(earlier.refresh_failures),
            load_time_p50: self.load_time_p50,
            load_time_p90: self.load_time_p90,
            load_time_p99: self.load_time_p99,
            load_time_max: self.load_time_max,
            filtered: self.filtered.saturating_sub(earlier.filtered),
            load_timeouts: self.load_timeouts.saturating_sub(earlier.load_timeouts),
            early_refreshes: self.early_refreshes.saturating_sub(earlier.early_refreshes),
            stale_served: self.stale_served.saturating_sub(earlier.stale_served),
        }
    }

    /// Fills the load-time percentiles from the cache's histogram.
    pub(crate) fn set_load_times(&mut self, load_times: &Histogram) {
        self.load_time_p50 = load_times.p50().unwrap_or_default();
        self.load_time_p90 = load_times.p90().unwrap_or_default();
        self.load_time_p99 = load_times.p99().unwrap_or_default();
        self.load_time_max = load_times.max().unwrap_or_default();
    }
}

/// A count bumped by many readers at once, under a shard's read lock (its
/// hits, or its misses). Relaxed throughout: a read taken while others add
/// may miss their latest additions, never counts anything twice.
///
/// The shard keeps its hit count in the cache line of its lock's word,
/// which every reader writes anyway (taking the read lock is an atomic
/// add on that word), so the count adds no cache line to a read and no
/// line that two readers of the shard would not bounce between them
/// already. (It was a per-thread stripe of four padded lines per shard:
/// one line more per read, four more per insert summing them, and 512
/// bytes per shard.)
#[derive(Default)]
pub(crate) struct Lookups {
    count: AtomicU64,
}

impl Lookups {
    pub(crate) fn new() -> Self {
        Self {
            count: AtomicU64::new(0),
        }
    }

    /// Counts one.
    #[inline]
    pub(crate) fn add(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// The count so far.
    #[inline]
    pub(crate) fn get(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for Lookups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Lookups").field(&self.get()).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::histogram::AtomicHistogram;

    #[test]
    fn since_subtracts_every_counter() {
        let later = Stats {
            hits: 10,
            misses: 4,
            inserts: 3,
            updates: 2,
            evictions: 9,
            evicted_weight: 90,
            removals: 1,
            rejections: 1,
            expirations: 5,
            loads: 7,
            load_failures: 2,
            total_load_time: Duration::from_millis(70),
            negative_hits: 3,
            refreshes: 6,
            refresh_failures: 1,
            load_time_p50: Duration::from_millis(8),
            load_time_p90: Duration::from_millis(9),
            load_time_p99: Duration::from_millis(10),
            load_time_max: Duration::from_millis(11),
            filtered: 12,
            load_timeouts: 13,
            early_refreshes: 14,
            stale_served: 15,
        };
        assert_eq!(later.since(&Stats::default()), later);
        let d = later.since(&later);
        assert_eq!(
            d,
            Stats {
                load_time_p50: later.load_time_p50,
                load_time_p90: later.load_time_p90,
                load_time_p99: later.load_time_p99,
                load_time_max: later.load_time_max,
                ..Stats::default()
            }
        );
        // Swapped: zeros, no panic.
        assert_eq!(Stats::default().since(&later).hits, 0);
        let earlier = Stats {
            hits: 4,
            loads: 3,
            total_load_time: Duration::from_millis(30),
            ..Stats::default()
        };
        let d = later.since(&earlier);
        assert_eq!((d.hits, d.misses, d.loads), (6, 4, 4));
        assert_eq!(d.total_load_time, Duration::from_millis(40));
    }

    #[test]
    fn load_times_come_from_the_histogram() {
        let h = AtomicHistogram::new();
        let mut s = Stats::default();
        s.set_load_times(&h.snapshot());
        assert_eq!(s.load_time_max, Duration::ZERO);
        for ms in 1..=100 {
            h.record(Duration::from_millis(ms));
        }
        s.set_load_times(&h.snapshot());
        let near = |d: Duration, ms: u64| {
            let want = ms as f64 / 1e3;
            (d.as_secs_f64() - want).abs() <= want * Histogram::RELATIVE_ERROR
        };
        assert!(near(s.load_time_p50, 50), "{:?}", s.load_time_p50);
        assert!(near(s.load_time_p90, 90), "{:?}", s.load_time_p90);
        assert!(near(s.load_time_p99, 99), "{:?}", s.load_time_p99);
        assert_eq!(s.load_time_max, Duration::from_millis(100));
    }
}
