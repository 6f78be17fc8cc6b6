//! Refresh-ahead and stale-while-revalidate for [`LoadingCache`].
//!
//! A [`LoadingCache`] read of an entry that is due for a refresh returns the
//! current value at once and starts **one** background reload of the key.
//! Nobody waits for a value that is merely getting old; only a key that is
//! missing (never loaded, evicted, expired, invalidated) is loaded in the
//! foreground.
//!
//! # When an entry is due
//!
//! When refresh is configured ([`CacheBuilder::refresh_after`] or
//! [`CacheBuilder::stale_while_revalidate`]), every write of an entry (an
//! insert, an update, a completed load or refresh) records the entry's
//! **refresh point** in an `AtomicU64` beside it: in the shard's timer
//! state, indexed by the entry's slab index, written under the shard's write
//! lock. It is `write time + refresh_after`, or the end of the entry's time
//! to live if that comes first and a stale window is configured. Without
//! refresh settings the vector stays empty: no per-entry cost at all.
//!
//! # Claiming a refresh
//!
//! A read looks the entry up under the shard's **read** lock, as a plain
//! `get` does, and compares the refresh point with the time. When it has
//! passed, the reader tries to move it forward by one retry interval with a
//! compare-and-swap. Exactly one reader wins for a given refresh point; the
//! others just return the value. Only the winner takes the shard's write
//! lock, where it
//!
//! * does nothing if a flight for the key is already registered (a
//!   foreground load or another refresh: single flight),
//! * does nothing if the entry has gone meanwhile (a `remove` that came
//!   first wins: a removed key is never brought back by a refresh),
//! * otherwise registers a [`Flight`] for the key, exactly as a foreground
//!   load does, and hands a task to the executor.
//!
//! From then on the refresh *is* the key's load: a foreground caller that
//! finds the key missing (it was evicted or expired meanwhile) joins the
//! flight instead of loading again, and any invalidation of the key
//! (`insert`, `remove`, `invalidate_all`, `retain`) marks the flight stale.
//!
//! # Completion
//!
//! The task runs the loader with no lock held and completes the flight with
//! the same code as a foreground load (`Cache::complete`): under the write
//! lock, unless the flight is stale, the new value replaces the old one
//! (counted as an update, with a fresh time to live and refresh point; the
//! eviction listener sees the old value as
//! [`Replaced`](crate::RemovalCause::Replaced)); the waiters, if any, get
//! the value either way.
//!
//! # Failures
//!
//! A refresh whose loader returns an error, or panics, keeps the old value
//! (which stays until it expires) and counts in
//! [`Stats::refresh_failures`](crate::Stats::refresh_failures); the panic is
//! caught on the task's thread. The next attempt comes **no sooner than one
//! retry interval** after the failed one was claimed: `refresh_after` (or,
//! with only a stale window, a quarter of that window), because the claim
//! itself moved the refresh point forward by that much. A refresh the
//! executor cannot take (the built-in pool's queue is full) is skipped and
//! retried the same way; it is never waited for.
//!
//! # Stale-while-revalidate
//!
//! With [`CacheBuilder::stale_while_revalidate(w)`](CacheBuilder::stale_while_revalidate),
//! an entry with a time to live is kept until `TTL + w`, and the end of its
//! TTL becomes a refresh point: a [`LoadingCache`] read in the window
//! returns the stale value and reloads it in the background, so a hot key
//! whose TTL runs out never makes a reader wait. Past `TTL + w` the entry is
//! gone and the next read loads in the foreground. The window is simply part
//! of the entry's lifetime, so plain [`Cache`] reads on the inner cache
//! ([`LoadingCache::cache`]) also see entries until `TTL + w`. Time to idle
//! is not extended.
//!
//! # Where tasks run
//!
//! On the executor given to [`CacheBuilder::executor`], or else on a small
//! built-in pool (see [`pool`](super::pool)): at most two threads, started
//! on the first refresh, with a bounded queue, stopped and joined when the
//! last handle to the [`LoadingCache`] is dropped. A task holds the inner
//! [`Cache`] and the loader, never the pool, so no reference cycle keeps
//! the pool alive. A task that is dropped without running (pool shut down,
//! queue full, an executor that discards it) gives the flight up exactly as
//! a panicking loader does: its waiters wake and load for themselves.

use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crate::builder::CacheBuilder;
use crate::cache::Cache;
use crate::load::pool::{Pool, Task, MAX_WORKERS, QUEUE_CAPACITY};
use crate::load::read_through::Loader;
use crate::policy::Idx;
use crate::sync::{Arc, AtomicU64, Ordering};
use crate::time::clock::duration_to_nanos;
use crate::time::NEVER;

use super::flight::Flight;
use super::{Abandon, LoadKind};

#[cfg(doc)]
use crate::LoadingCache;

/// A user-supplied executor for background refreshes.
pub(crate) type Executor = std::sync::Arc<dyn Fn(Task) + Send + Sync>;

/// Refresh settings collected by the builder.
#[derive(Default)]
pub(crate) struct RefreshSettings {
    pub(crate) after: Option<Duration>,
    pub(crate) stale: Option<Duration>,
    pub(crate) executor: Option<Executor>,
}

impl RefreshSettings {
    /// True if entries need refresh points.
    pub(crate) fn is_on(&self) -> bool {
        self.after.is_some() || self.stale.is_some()
    }

    /// The times a shard works with.
    pub(crate) fn times(&self) -> RefreshTimes {
        let after = self.after.map(duration_to_nanos);
        let stale = self.stale.map(duration_to_nanos);
        RefreshTimes {
            on: self.is_on(),
            after: after.unwrap_or(NEVER),
            stale,
            retry: after.or(stale.map(|w| w / 4)).unwrap_or(NEVER),
        }
    }
}

/// The refresh settings a shard applies under its lock, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RefreshTimes {
    /// Keep refresh points at all.
    on: bool,
    /// `refresh_after` ([`NEVER`] if unset).
    after: u64,
    /// The stale-while-revalidate window.
    stale: Option<u64>,
    /// How far a claim moves the refresh point (see "Failures").
    retry: u64,
}

impl RefreshTimes {
    /// True if entries get refresh points (then a write's deadline may be
    /// moved by the stale window).
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// An entry at `idx` was written at `now` and its time to live ends at
    /// `ttl_deadline`: records its refresh point in `points` and returns
    /// the deadline at which it expires (later than `ttl_deadline` by the
    /// stale window, if one is set). Called under the shard's write lock.
    #[inline]
    pub(crate) fn schedule(
        &self,
        idx: Idx,
        now: u64,
        ttl_deadline: u64,
        points: &mut Vec<AtomicU64>,
    ) -> u64 {
        if !self.on {
            return ttl_deadline;
        }
        let mut due = now.saturating_add(self.after);
        let mut expires = ttl_deadline;
        if let Some(window) = self.stale {
            if ttl_deadline != NEVER {
                due = due.min(ttl_deadline);
                expires = ttl_deadline.saturating_add(window);
            }
        }
        let i = idx as usize;
        if points.len() <= i {
            points.resize_with(i + 1, || AtomicU64::new(NEVER));
        }
        points[i].store(due, Ordering::Relaxed);
        expires
    }

    /// True if the entry at `idx` is due for a refresh at `now` and this
    /// caller won the right to start it (its refresh point moved one retry
    /// interval on). Callable under the shard's read lock.
    #[inline]
    pub(crate) fn claim(&self, points: &[AtomicU64], idx: Idx, now: u64) -> bool {
        let Some(point) = points.get(idx as usize) else {
            return false;
        };
        let due = point.load(Ordering::Relaxed);
        now >= due
            && point
                .compare_exchange(
                    due,
                    now.saturating_add(self.retry),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Refresh-ahead: a [`LoadingCache`] read of an entry written more than
    /// `after` ago returns the current value at once and reloads the key in
    /// the background (once, however many readers see it). The new value
    /// replaces the old one when it arrives, unless the key was invalidated
    /// meanwhile. A failed refresh keeps the old value, counts in
    /// [`Stats::refresh_failures`](crate::Stats::refresh_failures) and is
    /// retried no sooner than `after` later.
    ///
    /// Only reads through a [`LoadingCache`] (built with
    /// [`build_with_loader`](Self::build_with_loader) or
    /// [`build_with_try_loader`](Self::build_with_try_loader)) refresh. Choose
    /// `after` shorter than the time to live, or entries expire first. Costs
    /// 8 bytes per entry, only when set.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use larder::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let version = AtomicU32::new(0);
    /// let cache = Cache::builder()
    ///     .refresh_after(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .executor(|task| task()) // run refreshes inline, for the example
    ///     .build_with_loader(move |_key: &u32| version.fetch_add(1, Ordering::SeqCst));
    /// assert_eq!(cache.get(&1), 0);
    /// clock.advance(Duration::from_secs(61));
    /// assert_eq!(cache.get(&1), 0); // the old value, at once; a refresh starts
    /// assert_eq!(cache.get(&1), 1); // the refreshed value
    /// assert_eq!(cache.stats().refreshes, 1);
    /// ```
    pub fn refresh_after(mut self, after: Duration) -> Self {
        self.refresh.after = Some(after);
        self
    }

    /// Stale-while-revalidate: an entry whose time to live has run out is
    /// kept for `window` more, and a [`LoadingCache`] read in that window
    /// returns the stale value at once while the key is reloaded in the
    /// background (as with [`refresh_after`](Self::refresh_after), whose
    /// rules apply; a failed reload is retried no sooner than
    /// `refresh_after`, or `window / 4` without it, later). Past
    /// `TTL + window` the entry is gone.
    ///
    /// Needs a time to live ([`time_to_live`](Self::time_to_live), a
    /// per-entry one, or [`expire_after`](Self::expire_after)); time to
    /// idle is not extended. Plain [`Cache`] reads of the inner cache see
    /// entries until `TTL + window` too, without reloading them.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::time::Duration;
    /// use larder::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let version = AtomicU32::new(0);
    /// let cache = Cache::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .stale_while_revalidate(Duration::from_secs(30))
    ///     .clock(clock.clone())
    ///     .executor(|task| task())
    ///     .build_with_loader(move |_key: &u32| version.fetch_add(1, Ordering::SeqCst));
    /// assert_eq!(cache.get(&1), 0);
    /// clock.advance(Duration::from_secs(70)); // past the TTL, in the window
    /// assert_eq!(cache.get(&1), 0); // stale, served at once
    /// assert_eq!(cache.get(&1), 1); // revalidated
    /// ```
    pub fn stale_while_revalidate(mut self, window: Duration) -> Self {
        self.refresh.stale = Some(window);
        self
    }

    /// Runs background refreshes with `spawn` instead of the built-in pool
    /// of two threads. `spawn` receives each refresh as a boxed closure and
    /// must run it (on any thread) or drop it; a dropped task gives up that
    /// refresh (the old value stays and the refresh is retried later).
    ///
    /// **Locking behaviour:** `spawn` is called on the reading thread with
    /// no lock held. It may run the task inline (handy in tests; the reader
    /// then waits for the reload), and the task may use the cache. If
    /// `spawn` panics, the panic reaches that reader and the refresh is
    /// given up.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use larder::Cache;
    ///
    /// let cache = Cache::builder()
    ///     .refresh_after(Duration::from_secs(30))
    ///     .executor(|task| {
    ///         std::thread::spawn(task);
    ///     })
    ///     .build_with_loader(|key: &u64| key * 2);
    /// assert_eq!(cache.get(&21), 42);
    /// ```
    pub fn executor(
        mut self,
        spawn: impl Fn(Box<dyn FnOnce() + Send>) + Send + Sync + 'static,
    ) -> Self {
        self.refresh.executor = Some(std::sync::Arc::new(spawn));
        self
    }
}

/// Where a [`LoadingCache`]'s refreshes run.
pub(crate) enum Refresher {
    /// The built-in pool (threads start on the first refresh).
    Pool(Pool),
    /// The user's executor.
    User(Executor),
}

impl Refresher {
    pub(crate) fn new(executor: Option<Executor>) -> Self {
        match executor {
            Some(e) => Refresher::User(e),
            None => Refresher::Pool(Pool::new("larder-refresh", MAX_WORKERS, QUEUE_CAPACITY)),
        }
    }

    /// Hands `task` over; if the pool's queue is full the task is dropped
    /// (which gives its refresh up).
    fn submit(&self, task: Task) {
        match self {
            Refresher::Pool(pool) => drop(pool.submit(task)),
            Refresher::User(spawn) => spawn(task),
        }
    }
}

/// Starts a background refresh of `key` (the reader claimed it): registers
/// a flight unless one exists or the entry has gone, then submits the task.
pub(crate) fn start<K, V, E, S>(
    cache: &Cache<K, V, S>,
    loader: &Loader<K, V, E>,
    refresher: &Refresher,
    key: &K,
    hash: u64,
) where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let shard = cache.shard(hash);
    let now = cache.write_now(shard);
    let flight = {
        let mut core = shard.write();
        if core.flights.find(hash, key).is_some() {
            return; // single flight: a load or refresh of this key is running
        }
        let present = core
            .find(hash, key)
            .is_some_and(|i| !core.is_expired(i, now));
        if !present {
            return; // removed (or expired) since the read: nothing to refresh
        }
        let flight = Flight::new(key.clone(), hash);
        core.flights.register(flight.clone());
        flight
    };
    let task = RefreshTask {
        cache: cache.clone(),
        loader: loader.clone(),
        key: key.clone(),
        flight: Some(flight),
    };
    refresher.submit(Box::new(move || task.run()));
}

/// One background reload: owns what it needs, never the pool.
struct RefreshTask<K, V, E, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    cache: Cache<K, V, S>,
    loader: Loader<K, V, E>,
    key: K,
    /// The registered flight, until the task runs.
    flight: Option<Arc<Flight<K, V>>>,
}

impl<K, V, E, S> RefreshTask<K, V, E, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    E: Send + Sync + 'static,
    S: BuildHasher,
{
    fn run(mut self) {
        let Some(flight) = self.flight.take() else {
            return;
        };
        let hash = flight.hash;
        let guard = Abandon::new(&self.cache, flight);
        let (loader, key) = (&self.loader, &self.key);
        let reload = || {
            self.cache.run_load(
                guard,
                key.clone(),
                || loader(key).map(Some),
                LoadKind::Refresh,
            )
        };
        if catch_unwind(AssertUnwindSafe(reload)).is_err() {
            // The guard gave the flight up while unwinding; count the
            // failure (the old value stays).
            let mut core = self.cache.shard(hash).write();
            core.counters.refreshes += 1;
            core.counters.refresh_failures += 1;
        }
    }
}

impl<K, V, E, S> Drop for RefreshTask<K, V, E, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// A task dropped unrun gives its flight up, so that foreground callers
    /// waiting on it load for themselves.
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            drop(Abandon::new(&self.cache, flight));
        }
    }
}
