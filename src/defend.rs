//! Settings and shared state of the backend defences (issue 13): the
//! load-time histogram, the key filter, the load timeout, the limit on
//! concurrent loader calls and the metrics name. They live beside the
//! shards in the cache's `Inner`; the loading engine (`crate::load`) reads
//! them, so there is one engine and these are its knobs.

use std::collections::HashMap;
use std::time::Duration;

use crate::bloom::BloomFilter;
use crate::histogram::AtomicHistogram;
use crate::hot::{HotKeys, Sampler};
use crate::sync::slots::Slots;
use crate::sync::{AtomicU64, Mutex, Ordering};

/// How long a key's readers are served stale after its stale-if-error
/// reload failed, before the next reload, unless the builder says.
pub(crate) const DEFAULT_SIE_RETRY: Duration = Duration::from_secs(1);

/// Most keys remembered at once as "reload failed, wait" (see
/// [`Defences::note_failed_reload`]).
const MAX_QUIET_KEYS: usize = 4096;

/// Name a cache's metrics carry when [`CacheBuilder::name`](crate::CacheBuilder::name) is not called.
pub(crate) const DEFAULT_NAME: &str = "larder";

/// What the builder collected.
pub(crate) struct DefenceSettings<K> {
    pub(crate) name: Option<String>,
    pub(crate) key_filter: Option<BloomFilter<K>>,
    pub(crate) load_timeout: Option<Duration>,
    pub(crate) max_loads: Option<usize>,
    pub(crate) early_refresh: Option<f64>,
    pub(crate) hot: Option<HotFeed<K>>,
    pub(crate) timeout_error: Option<TimeoutError>,
}

/// What `load_timeout_error` registered: a `MakeError<E>` behind `Any`, so
/// that the `try_` verbs whose error type is that `E` can find it.
pub(crate) type TimeoutError = Box<dyn std::any::Any + Send + Sync>;

/// The error constructor of [`CacheBuilder::load_timeout_error`](crate::CacheBuilder::load_timeout_error).
struct MakeError<E>(Box<dyn Fn() -> E + Send + Sync>);

/// The hot-key tracker behind a trait object, so that `Cache` needs no
/// `K: Clone` bound: only turning it on does.
pub(crate) trait Feed<K>: Send + Sync {
    fn record_sampled(&self, hash: u64, key: &K);
    fn top(&self, n: usize) -> Vec<(K, u64)>;
}

impl<K: Clone + Eq + Send> Feed<K> for HotKeys<K> {
    fn record_sampled(&self, hash: u64, key: &K) {
        HotKeys::record_sampled(self, hash, key);
    }
    fn top(&self, n: usize) -> Vec<(K, u64)> {
        HotKeys::top(self, n)
    }
}

/// Hot-key tracking, when on: the sampling decision inline, the tracker
/// behind a pointer (reached on sampled reads only).
pub(crate) struct HotFeed<K> {
    pub(crate) sampler: Sampler,
    pub(crate) keys: Box<dyn Feed<K>>,
}

impl<K> Default for DefenceSettings<K> {
    fn default() -> Self {
        Self {
            hot: None,
            early_refresh: None,
            name: None,
            key_filter: None,
            load_timeout: None,
            max_loads: None,
            timeout_error: None,
        }
    }
}

/// The defences of one cache, shared by all its shards.
pub(crate) struct Defences<K> {
    pub(crate) name: String,
    pub(crate) key_filter: Option<BloomFilter<K>>,
    pub(crate) load_timeout: Option<Duration>,
    timeout_error: Option<TimeoutError>,
    /// Loader-call slots, when `max_concurrent_loads` is set.
    pub(crate) slots: Option<Slots>,
    /// Every completed loader call's duration.
    pub(crate) load_times: AtomicHistogram,
    /// Hot-key tracking, when turned on.
    pub(crate) hot: Option<HotFeed<K>>,
    /// Lookups the key filter answered "absent".
    pub(crate) filtered: AtomicU64,
    /// Waiters that gave up on someone else's load after the timeout.
    pub(crate) load_timeouts: AtomicU64,
    /// Loader calls made outside any flight (by callers that timed out),
    /// their total time and their failures: added to the shards' counts.
    pub(crate) detached_loads: AtomicU64,
    pub(crate) detached_load_nanos: AtomicU64,
    pub(crate) detached_failures: AtomicU64,
    /// XFetch's beta, when early refresh is on (finite, > 0).
    pub(crate) early_refresh: Option<f64>,
    /// Stale-while-revalidate and stale-if-error windows (ns), and the
    /// shard's stale window (the longer of the two, 0 without either).
    swr: Option<u64>,
    sie: Option<u64>,
    window: u64,
    /// After a failed stale-if-error reload: how long (ns) the key's readers
    /// get the stale value without reloading, and until when (cache clock)
    /// each such key waits, by key hash.
    sie_retry: u64,
    quiet: Mutex<HashMap<u64, u64>>,
    /// Recent loader-call duration (ns), an exponential moving average
    /// over completed loads: early refresh's delta.
    recent_load_nanos: AtomicU64,
    /// Early refreshes started, and reads answered with an expired value
    /// because its reload failed.
    pub(crate) early_refreshes: AtomicU64,
    pub(crate) stale_served: AtomicU64,
    #[cfg(feature = "metrics")]
    pub(crate) reporter: crate::sync::Mutex<crate::metrics_export::MetricsReporter>,
}

impl<K> Defences<K> {
    pub(crate) fn new(
        settings: DefenceSettings<K>,
        refresh: &crate::builder::RefreshSettings,
    ) -> Self {
        let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
        let name = settings.name.unwrap_or_else(|| DEFAULT_NAME.to_string());
        Self {
            #[cfg(feature = "metrics")]
            reporter: crate::sync::Mutex::new(crate::metrics_export::MetricsReporter::new(
                name.clone(),
            )),
            name,
            key_filter: settings.key_filter,
            load_timeout: settings.load_timeout,
            timeout_error: settings.timeout_error,
            slots: settings.max_loads.map(Slots::new),
            load_times: AtomicHistogram::new(),
            filtered: AtomicU64::new(0),
            load_timeouts: AtomicU64::new(0),
            detached_loads: AtomicU64::new(0),
            detached_load_nanos: AtomicU64::new(0),
            detached_failures: AtomicU64::new(0),
            early_refresh: settings.early_refresh,
            hot: settings.hot,
            swr: refresh.stale.map(nanos),
            sie: refresh.stale_if_error.map(nanos),
            window: refresh.window().map_or(0, nanos),
            sie_retry: nanos(refresh.stale_if_error_retry.unwrap_or(DEFAULT_SIE_RETRY)),
            quiet: Mutex::new(HashMap::new()),
            recent_load_nanos: AtomicU64::new(u64::MAX),
            early_refreshes: AtomicU64::new(0),
            stale_served: AtomicU64::new(0),
        }
    }

    pub(crate) fn count_filtered(&self) {
        self.filtered.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn count_timeout(&self) {
        self.load_timeouts.fetch_add(1, Ordering::Relaxed);
    }

    /// The error a timed-out `try_` verb with error type `E` returns, if
    /// `load_timeout_error` registered one of that type.
    pub(crate) fn timeout_error<E: 'static>(&self) -> Option<std::sync::Arc<E>> {
        let make = self
            .timeout_error
            .as_ref()?
            .downcast_ref::<MakeError<E>>()?;
        Some(std::sync::Arc::new((make.0)()))
    }

    /// True if `load_timeout_error` registered an error of type `E`.
    pub(crate) fn has_timeout_error<E: 'static>(&self) -> bool {
        self.timeout_error
            .as_ref()
            .is_some_and(|t| t.is::<MakeError<E>>())
    }

    /// True if the key of `hash` had its stale-if-error reload fail less
    /// than the retry interval before `now` (cache clock): serve the stale
    /// value without calling the loader again.
    pub(crate) fn waits_to_retry(&self, hash: u64, now: u64) -> bool {
        let mut quiet = self.quiet.lock();
        match quiet.get(&hash) {
            Some(&until) if now < until => true,
            Some(_) => {
                quiet.remove(&hash);
                false
            }
            None => false,
        }
    }

    /// Notes that the stale-if-error reload of the key of `hash` failed at
    /// `now`. Bounded: with [`MAX_QUIET_KEYS`] remembered, the ones whose
    /// wait is over go, and if none has, all do (their keys just reload
    /// sooner). Keys are told apart by their 64-bit hash; two keys that
    /// share one only share a retry time.
    pub(crate) fn note_failed_reload(&self, hash: u64, now: u64) {
        if self.sie_retry == 0 {
            return;
        }
        let mut quiet = self.quiet.lock();
        if quiet.len() >= MAX_QUIET_KEYS {
            quiet.retain(|_, &mut until| until > now);
            if quiet.len() >= MAX_QUIET_KEYS {
                quiet.clear();
            }
        }
        quiet.insert(hash, now.saturating_add(self.sie_retry));
    }

    /// Counts a read answered with an expired value (stale-if-error).
    pub(crate) fn count_stale(&self) {
        self.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    /// True if a hit must look at the entry's deadline (early refresh or
    /// stale-if-error is on).
    #[inline]
    pub(crate) fn inspects_hits(&self) -> bool {
        self.early_refresh.is_some() || self.sie.is_some()
    }

    /// Notes a completed load's duration for early refresh: an
    /// exponential moving average with weight 1/8 (the first load sets it).
    pub(crate) fn note_load_time(&self, nanos: u64) {
        if self.early_refresh.is_none() {
            return;
        }
        let _ = self
            .recent_load_nanos
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == u64::MAX {
                    nanos.min(u64::MAX - 1)
                } else {
                    let (old, new) = (old as i128, nanos as i128);
                    (old + (new - old) / 8) as u64
                })
            });
    }

    /// What a read that found a live entry (time-to-live deadline
    /// `deadline`, the stale window included) at `now` should do.
    pub(crate) fn judge(&self, now: u64, deadline: u64) -> Verdict {
        self.judge_with(now, deadline, uniform())
    }

    /// [`judge`](Self::judge) with the random draw `u` in (0, 1].
    pub(crate) fn judge_with(&self, now: u64, deadline: u64, u: f64) -> Verdict {
        if deadline == crate::time::NEVER {
            return Verdict::Fresh; // no time to live: never early, never stale
        }
        let ttl_end = deadline.saturating_sub(self.window);
        if now >= ttl_end {
            let age = now - ttl_end;
            if self.swr.is_some_and(|w| age < w) {
                return Verdict::Fresh; // stale-while-revalidate's part
            }
            return match self.sie {
                Some(_) => Verdict::Stale,
                None => Verdict::Fresh,
            };
        }
        let Some(beta) = self.early_refresh else {
            return Verdict::Fresh;
        };
        let delta = self.recent_load_nanos.load(Ordering::Relaxed);
        if delta == u64::MAX {
            return Verdict::Fresh; // nothing measured yet
        }
        // XFetch: refresh when now - delta * beta * ln(u) >= expiry, i.e.
        // with probability exp(-(expiry - now) / (delta * beta)).
        let gap = (ttl_end - now) as f64;
        if delta as f64 * beta * -u.ln() >= gap {
            Verdict::Early
        } else {
            Verdict::Fresh
        }
    }
}

/// What to do with a live entry a read found (see [`Defences::judge`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Serve it.
    Fresh,
    /// Serve it (or the reload's value) and reload it now, before expiry.
    Early,
    /// Its time to live has run out; it is kept only for stale-if-error:
    /// reload in the foreground, serve it only if the reload fails.
    Stale,
}

/// A uniform draw in (0, 1] from a per-thread xorshift generator.
fn uniform() -> f64 {
    use std::cell::Cell;
    thread_local! {
        static STATE: Cell<u64> = Cell::new({
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64) | 1
        });
    }
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        s.set(x);
        ((x >> 11) + 1) as f64 / (1u64 << 53) as f64
    })
}

impl<K, V, S> crate::builder::CacheBuilder<K, V, S> {
    /// Probabilistic early expiration (XFetch; Vattani, Chierichetti and
    /// Lowenstein, "Optimal Probabilistic Cache Stampede Prevention", VLDB
    /// 2015): a read of an entry with a time to live reloads it before it
    /// expires with probability `exp(-(expiry - now) / (delta * beta))`,
    /// where delta is the recent loader-call duration. So a hot key is
    /// reloaded by one reader shortly before it expires instead of by a
    /// crowd after. Larger `beta` reloads earlier; `1.0` is the paper's
    /// optimum. `beta` that is not finite and positive turns it off.
    ///
    /// Applies to the reads of a [`LoadingCache`](crate::LoadingCache)
    /// (the reload runs in the background, as a refresh) and to
    /// `get_with`, `try_get_with` and `optionally_get_with` (the reading
    /// caller runs its closure then and gets the new value; a failed or
    /// panicking early reload keeps and returns the old value). Counted
    /// in [`Stats::refreshes`](crate::Stats::refreshes) and
    /// [`Stats::early_refreshes`](crate::Stats::early_refreshes). Never
    /// for an entry without a time to live. Works beside
    /// [`refresh_after`](Self::refresh_after).
    ///
    /// The async verbs do the same with their loader future (the reading
    /// task awaits it), and an `AsyncLoadingCache`
    /// reloads early on its refresher.
    ///
    /// Delta is one figure per cache, an exponential moving average (weight
    /// 1/8) of completed loads (blocking and async), each measured as the
    /// longer of the wall-clock time and the cache clock's time; not per
    /// entry (that would cost 8 bytes per entry).
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.defend.early_refresh = (beta.is_finite() && beta > 0.0).then_some(beta);
        self
    }

    /// Stale-if-error: an entry is kept `window` past its time to live;
    /// a read in that window reloads the key and gets the new value, but
    /// if the reload fails (an error, or a panic, which is caught) it gets
    /// the expired value instead, counted in
    /// [`Stats::stale_served`](crate::Stats::stale_served). Past the window
    /// the entry is gone and a failed load is the caller's error. While
    /// another caller is reloading the key, readers get the expired value
    /// at once; after a reload of the key failed, its readers get the
    /// expired value without calling the loader for the
    /// [retry interval](Self::stale_if_error_retry) (1 s by default), so a
    /// failing backend sees about one call per key per interval, not one
    /// per read.
    ///
    /// Who runs the reload: a [`LoadingCache`](crate::LoadingCache) with a
    /// [`load_timeout`](Self::load_timeout) hands it to its refresh threads
    /// (or executor) and waits for it at most the timeout, then serves the
    /// expired value (counted in `load_timeouts` too), so a hung backend
    /// holds its readers for the timeout, not for the hang. Without a
    /// timeout the reading caller runs the reload itself, as do the
    /// `get_with` verbs (their closure borrows from the caller and cannot
    /// move to another thread). An `AsyncLoadingCache`
    /// always reloads on its refresher and awaits it (feature `async`; the
    /// async verbs poll their own future).
    ///
    /// Applies to the reads of a [`LoadingCache`](crate::LoadingCache)
    /// (`get`, `try_get`; `get_if_present` returns the expired value without
    /// loading) and to `get_with`, `try_get_with` and `optionally_get_with`.
    /// Plain [`Cache::get`](crate::Cache::get) and `peek` see the entry until
    /// the window ends, as with
    /// [`stale_while_revalidate`](Self::stale_while_revalidate) (with both,
    /// the stale-while-revalidate part comes first). Needs a time to live.
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.refresh.stale_if_error = Some(window);
        self
    }

    /// How long, after a key's [stale-if-error](Self::stale_if_error)
    /// reload failed, its readers get the expired value without a new
    /// reload (1 s when not called; zero retries on every read).
    pub fn stale_if_error_retry(mut self, interval: Duration) -> Self {
        self.refresh.stale_if_error_retry = Some(interval);
        self
    }

    /// The label this cache's metrics carry (`cache="<name>"`, see
    /// `Cache::report_metrics` (feature `metrics`)); `"larder"`
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
    /// most `timeout`, then gives up on it. What it gets then, per verb:
    ///
    /// * a `try_` verb (`try_get_with`, `try_get_with_async`, a
    ///   `LoadingCache`'s or `AsyncLoadingCache`'s `try_get`) whose error
    ///   type has a [`load_timeout_error`](Self::load_timeout_error): that
    ///   error, at once;
    /// * every other verb (`get_with`, `optionally_get_with`, `get_all_with`
    ///   per key, `get`, and the `try_` verbs without one): the result of
    ///   **its own** loader call, run outside the flight: returned, not
    ///   stored (the hung flight still stores its value if it ever ends);
    ///   a `try_` verb whose own load fails gets its own error;
    /// * a read of a [stale-if-error](Self::stale_if_error) entry of a
    ///   `LoadingCache` or `AsyncLoadingCache`: the expired value (its
    ///   reload runs on the refresher and is waited for at most `timeout`).
    ///
    /// So a hung loader holds its waiters for at most `timeout` (plus
    /// their own load, where they run one). The next caller joins the hung
    /// flight again, up to its own timeout. Counted in
    /// [`Stats::load_timeouts`](crate::Stats::load_timeouts). Threads and
    /// tasks alike: async waiters are timed by a small built-in timer
    /// thread (`larder-timer`, started on the first timed wait), so no
    /// runtime is needed.
    ///
    /// The leader of a load (the caller that found the key missing) is
    /// bounded only where it can be, for a `try_` verb whose error type has
    /// a [`load_timeout_error`](Self::load_timeout_error):
    ///
    /// * a `LoadingCache`'s or `AsyncLoadingCache`'s `try_get` hands the
    ///   load to its refresh threads (or executor/spawner) and waits at most
    ///   `timeout`, then returns that error; the load goes on, stores its
    ///   value when it ends, and later callers join it. The built-in pool
    ///   then starts up to `max_concurrent_loads` threads (8 without a
    ///   limit), only as loads need them. A load started by a loader
    ///   (nested) runs inline instead;
    /// * `try_get_with_async` drops its loader future at the timeout
    ///   (cancelling it, which abandons the flight as any cancellation
    ///   does) and returns that error.
    ///
    /// Everywhere else the leader waits for its own loader, however long it
    /// takes: a blocking loader call cannot be stopped from outside, and
    /// `get_with`'s closure borrows from its caller, so it cannot move to
    /// another thread (bound the loader itself, e.g. with the database
    /// client's timeout).
    pub fn load_timeout(mut self, timeout: Duration) -> Self {
        self.defend.load_timeout = Some(timeout);
        self
    }

    /// The error a `try_` verb returns when it gives up on someone else's
    /// load after the [`load_timeout`](Self::load_timeout), instead of
    /// running its own loader: for the `try_` verbs whose error type is
    /// `E` (`try_get_with`, `try_get_with_async`, the `try_get` of a
    /// [`LoadingCache`](crate::LoadingCache) or
    /// `AsyncLoadingCache` built with a loader
    /// of error `E`). Verbs of another error type, and the infallible
    /// ones, still run their own loader. So with a hung backend a timed-out
    /// caller answers at once with this error rather than making a call of
    /// its own that would hang too. It also bounds the leader where that is
    /// possible (see [`load_timeout`](Self::load_timeout)). Counted in
    /// `load_timeouts`, not as a load failure. One constructor per cache; a
    /// later call replaces it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[derive(Debug, PartialEq)]
    /// enum DbError { Timeout, Down }
    ///
    /// let cache: larder::Cache<u32, u32> = larder::Cache::builder()
    ///     .load_timeout(Duration::from_millis(250))
    ///     .load_timeout_error(|| DbError::Timeout)
    ///     .build();
    /// assert_eq!(*cache.try_get_with(1, || Err::<u32, _>(DbError::Down)).unwrap_err(), DbError::Down);
    /// ```
    pub fn load_timeout_error<E: Send + Sync + 'static>(
        mut self,
        make: impl Fn() -> E + Send + Sync + 'static,
    ) -> Self {
        self.defend.timeout_error = Some(Box::new(MakeError::<E>(Box::new(make))));
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
    /// Threads and tasks share the one line: an async leader awaits its
    /// slot without blocking its thread, and holds it while its loader
    /// future runs. Loads started while that future is being polled
    /// (awaited inline) share its slot, as nested blocking loads do; a load
    /// in a task the loader spawns and waits for takes a slot of its own,
    /// so with a limit of 1 that pattern waits forever: don't.
    pub fn max_concurrent_loads(mut self, n: usize) -> Self {
        self.defend.max_loads = Some(n);
        self
    }
}

impl<K, V, S> crate::builder::CacheBuilder<K, V, S>
where
    K: Clone + Eq + Send + 'static,
{
    /// Tracks the most-read keys, for [`Cache::hot_keys`](crate::Cache::hot_keys):
    /// one read in 64 (on average) that hits is fed to a heavy-hitters
    /// summary (Space-Saving with randomised admission over 128 counters,
    /// in striped locks taken with `try_lock`, counts halved every 2^16
    /// samples so that a key that goes cold drops out). Misses are not fed.
    ///
    /// Off by default: the feed costs about 13 instructions per hit on a
    /// 159-instruction `get` (+8%, counted with callgrind on
    /// `examples/profile_get`, one thread, all hits on 2^16 keys), more than
    /// the 5% a default may cost. Off, the read path is untouched apart from
    /// one branch; on, a read that is not sampled runs the same read after
    /// a thread-local countdown.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: larder::Cache<u32, u32> = larder::Cache::builder().track_hot_keys().build();
    /// cache.insert(7, 7);
    /// cache.insert(8, 8);
    /// for _ in 0..100_000 {
    ///     cache.get(&7);
    /// }
    /// cache.get(&8);
    /// assert_eq!(cache.hot_keys(1)[0].0, 7);
    /// ```
    pub fn track_hot_keys(mut self) -> Self {
        let keys: HotKeys<K> = HotKeys::new(128, 64);
        self.defend.hot = Some(HotFeed {
            sampler: keys.sampler(),
            keys: Box::new(keys),
        });
        self
    }
}
