//! Settings and shared state of the backend defences (issue 13): the
//! load-time histogram, the key filter, the load timeout, the limit on
//! concurrent loader calls and the metrics name. They live beside the
//! shards in the cache's `Inner`; the loading engine (`crate::load`) reads
//! them, so there is one engine and these are its knobs.

use std::time::Duration;

use crate::bloom::BloomFilter;
use crate::histogram::AtomicHistogram;
use crate::sync::slots::Slots;
use crate::sync::{AtomicU64, Ordering};

/// Name a cache's metrics carry when [`CacheBuilder::name`](crate::CacheBuilder::name) is not called.
pub(crate) const DEFAULT_NAME: &str = "larder";

/// What the builder collected.
pub(crate) struct DefenceSettings<K> {
    pub(crate) name: Option<String>,
    pub(crate) key_filter: Option<BloomFilter<K>>,
    pub(crate) load_timeout: Option<Duration>,
    pub(crate) max_loads: Option<usize>,
}

impl<K> Default for DefenceSettings<K> {
    fn default() -> Self {
        Self {
            name: None,
            key_filter: None,
            load_timeout: None,
            max_loads: None,
        }
    }
}

/// The defences of one cache, shared by all its shards.
pub(crate) struct Defences<K> {
    pub(crate) name: String,
    pub(crate) key_filter: Option<BloomFilter<K>>,
    pub(crate) load_timeout: Option<Duration>,
    /// Loader-call slots, when `max_concurrent_loads` is set.
    pub(crate) slots: Option<Slots>,
    /// Every completed loader call's duration.
    pub(crate) load_times: AtomicHistogram,
    /// Lookups the key filter answered "absent".
    pub(crate) filtered: AtomicU64,
    /// Waiters that gave up on someone else's load after the timeout.
    pub(crate) load_timeouts: AtomicU64,
    /// Loader calls made outside any flight (by callers that timed out),
    /// their total time and their failures: added to the shards' counts.
    pub(crate) detached_loads: AtomicU64,
    pub(crate) detached_load_nanos: AtomicU64,
    pub(crate) detached_failures: AtomicU64,
    #[cfg(feature = "metrics")]
    pub(crate) reporter: crate::sync::Mutex<crate::metrics_export::MetricsReporter>,
}

impl<K> Defences<K> {
    pub(crate) fn new(settings: DefenceSettings<K>) -> Self {
        let name = settings.name.unwrap_or_else(|| DEFAULT_NAME.to_string());
        Self {
            #[cfg(feature = "metrics")]
            reporter: crate::sync::Mutex::new(crate::metrics_export::MetricsReporter::new(
                name.clone(),
            )),
            name,
            key_filter: settings.key_filter,
            load_timeout: settings.load_timeout,
            slots: settings.max_loads.map(Slots::new),
            load_times: AtomicHistogram::new(),
            filtered: AtomicU64::new(0),
            load_timeouts: AtomicU64::new(0),
            detached_loads: AtomicU64::new(0),
            detached_load_nanos: AtomicU64::new(0),
            detached_failures: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_timeout(&self) {
        self.load_timeouts.fetch_add(1, Ordering::Relaxed);
    }
}

impl<K, V, S> crate::builder::CacheBuilder<K, V, S> {
    /// The label this cache's metrics carry (`cache="<name>"`, see
    /// [`Cache::report_metrics`](crate::Cache::report_metrics)); `"larder"`
    /// by default.
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.defend.name = Some(name.into());
        self
    }

    /// Keys `filter` rules out do not exist anywhere: the verbs that can
    /// answer "absent" ([`Cache::optionally_get_with`](crate::Cache::optionally_get_with),
    /// its async twin and [`Cache::get_all_with`](crate::Cache::get_all_with))
    /// answer so without calling the loader, counted in
    /// [`Stats::filtered`](crate::Stats::filtered). A stored value wins over
    /// the filter (the check comes after the lookup missed), so a key
    /// inserted without being added to the filter is still served. Verbs
    /// that must return a value (`get_with`, `try_get_with`, a
    /// `LoadingCache`'s `get`/`try_get`) ignore the filter.
    ///
    /// The filter is shared (`BloomFilter` clones share their bits): keep a
    /// clone and [`insert`](BloomFilter::insert) new keys while the cache
    /// serves. Its false positives cost a loader call, never a wrong answer.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::{BloomFilter, Cache};
    ///
    /// let known = BloomFilter::new(1_000, 0.01);
    /// known.insert(&7u32);
    /// let cache: Cache<u32, String> = Cache::builder().key_filter(known.clone()).build();
    /// assert_eq!(cache.optionally_get_with(7, || Some("seven".into())).as_deref(), Some("seven"));
    /// assert_eq!(cache.optionally_get_with(8, || unreachable!("filtered")), None);
    /// assert_eq!(cache.stats().filtered, 1);
    /// ```
    pub fn key_filter(mut self, filter: BloomFilter<K>) -> Self {
        self.defend.key_filter = Some(filter);
        self
    }

    /// A caller that joins someone else's load of a key waits for it at
    /// most `timeout`, then gives up on it and calls **its own** loader
    /// (every blocking verb: `get_with`, `try_get_with`,
    /// `optionally_get_with`, `get_all_with` per key, a `LoadingCache`'s
    /// `get`/`try_get`). So a hung loader holds its waiters for at most
    /// `timeout` plus their own load; a `try_` verb whose own load fails
    /// gets its own error. The own load runs outside the flight: its value
    /// is returned, not stored (the hung flight still stores its value if it
    /// ever ends), and the next caller joins the hung flight again, up to
    /// its own timeout. Counted in [`Stats::load_timeouts`](crate::Stats::load_timeouts).
    ///
    /// The leader of a load is never interrupted (a loader call cannot be
    /// stopped from outside). Async waiters (`get_with_async` and
    /// `AsyncLoadingCache`) are not timed: larder has no timer without a
    /// runtime; wrap the future in your runtime's timeout instead (dropping
    /// it is safe).
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.defend.load_timeout = Some(timeout);
        self
    }

    /// At most `n` loader calls run at once across the whole cache
    /// (foreground loads, refreshes, batch loads, timed-out callers' own
    /// loads); the others wait in line, served in arrival order. Single
    /// flight still holds: callers of a key being loaded join that load and
    /// take no slot. A loader that loads other keys through the cache runs
    /// them under its own slot, so nesting cannot deadlock on the limit (or
    /// the recursion check). `0` is treated as 1.
    ///
    /// Waiting in line for a slot is part of the load: a caller that joined
    /// that key's flight counts it toward its [`load_timeout`](Self::load_timeout).
    /// The leader itself waits for its slot without a deadline.
    ///
    /// Applies to blocking loader calls; an async loader future
    /// (`get_with_async`, `AsyncLoadingCache`) is not counted (a blocking
    /// wait for a slot would stall the executor).
    pub fn max_concurrent_loads(mut self, n: usize) -> Self {
        self.defend.max_loads = Some(n);
        self
    }
}
