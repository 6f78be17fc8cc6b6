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
//! * otherwise leads a flight for the key (`flight::begin`), exactly as a foreground
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
//! the same code as a foreground load (`Ticket::complete` in
//! [`flight`](super::flight)): under the write
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

use crate::builder::{CacheBuilder, Executor};
use crate::cache::Cache;
use crate::defend::Verdict;
use crate::load::pool::{Pool, Task, MAX_WORKERS, QUEUE_CAPACITY};
use crate::load::read_through::Loader;
use crate::shard::Outcome;

use super::flight::{begin, loading_any, Begin, Loaded, Ticket, Want};
use super::joined;

#[cfg(doc)]
use crate::LoadingCache;

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

/// Most threads of a refresh pool that readers wait on (stale-if-error with
/// a load timeout and no `max_concurrent_loads`); started only as needed.
const STALE_WORKERS: usize = 8;

/// True if readers of a read-through cache wait on its refresher with a
/// deadline: stale-if-error reloads, or (with a `load_timeout_error`)
/// foreground loads, when there is a load timeout.
pub(crate) fn readers_wait_on_pool<K>(
    refresh: &crate::builder::RefreshSettings,
    defend: &crate::defend::DefenceSettings<K>,
) -> bool {
    defend.load_timeout.is_some()
        && (refresh.stale_if_error.is_some() || defend.timeout_error.is_some())
}

/// How many threads a read-through cache's built-in refresh pool may
/// start: two, unless readers wait on it
/// ([`readers_wait_on_pool`]); then as many as loads may run at once, so
/// that they do not queue behind two.
pub(crate) fn pool_workers<K>(
    refresh: &crate::builder::RefreshSettings,
    defend: &crate::defend::DefenceSettings<K>,
) -> usize {
    if readers_wait_on_pool(refresh, defend) {
        defend.max_loads.unwrap_or(STALE_WORKERS).max(1)
    } else {
        MAX_WORKERS
    }
}

/// A read-through cache's foreground load of a missing `key` handed to the
/// refresher and waited for at most the load timeout, for a `try_get` whose
/// error type has a `load_timeout_error`: so a hung backend holds even the
/// first caller of a key for the timeout only. On the timeout the caller
/// gets that error (counted in `load_timeouts`); the load goes on and
/// stores its value when it ends, and later callers join it. If the task
/// is lost (the pool's queue is full, the loader panicked on it), the
/// caller loads on its own thread as usual. `None` when this does not
/// apply: no timeout error of type `E`, or this thread is itself running a
/// loader (a nested load runs inline, so loads waiting for loads cannot
/// fill the pool).
pub(crate) fn load_within<K, V, E, S>(
    cache: &Cache<K, V, S>,
    loader: &Loader<K, V, E>,
    refresher: &Refresher,
    key: &K,
) -> Option<Result<V, std::sync::Arc<E>>>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let defences = cache.defences();
    if defences.load_timeout.is_none() || !defences.has_timeout_error::<E>() || loading_any() {
        return None;
    }
    let hash = cache.hash(key);
    let deadline = cache.load_deadline();
    let waiter = match begin(cache, key, hash, Want::Load { absent_ok: false }) {
        Begin::Hit(v) => return Some(Ok(v)),
        Begin::Absent | Begin::Skip => return None,
        Begin::Join(waiter) => waiter,
        Begin::Lead(ticket) => {
            let waiter = ticket.waiter();
            let loader = loader.clone();
            refresher.submit(Box::new(move || {
                let key = ticket.flight().key.clone();
                // A panic abandons the flight; the waiting caller then
                // loads on its own thread, where the panic is its own.
                let _ = catch_unwind(AssertUnwindSafe(|| ticket.run(|| loader(&key).map(Some))));
            }));
            waiter
        }
    };
    match waiter.wait_until(deadline) {
        Some(outcome) => match joined::<V, E>(outcome, false) {
            Some(Loaded::Value(v)) => Some(Ok(v)),
            Some(Loaded::Failed(e)) => Some(Err(e)),
            Some(Loaded::Absent) | None => None,
        },
        None => {
            defences.count_timeout();
            defences.timeout_error::<E>().map(Err)
        }
    }
}

impl Refresher {
    /// The user's executor, or a pool of at most `workers` threads.
    pub(crate) fn new(executor: Option<Executor>, workers: usize) -> Self {
        match executor {
            Some(e) => Refresher::User(e),
            None => Refresher::Pool(Pool::new("larder-refresh", workers, QUEUE_CAPACITY)),
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

/// A read-through cache's read of `key`: the value, if live, whether this
/// reader claimed its due refresh (see "Claiming a refresh"), and what early
/// refresh and stale-if-error make of it. A stale entry is never claimed:
/// its reload is the reader's (see [`reload_within`]).
pub(crate) fn read_judged<K, V, S>(
    cache: &Cache<K, V, S>,
    key: &K,
    hash: u64,
) -> Option<(V, bool, Verdict)>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    let defences = cache.defences();
    cache.get_by(hash, key, |core, idx, entry, now| {
        let verdict = if defences.inspects_hits() {
            defences.judge(now, core.ttl_deadline(idx))
        } else {
            Verdict::Fresh
        };
        let claimed = verdict != Verdict::Stale && core.claim_refresh(idx, now);
        (entry.value.clone(), claimed, verdict)
    })
}

/// A read-through cache's whole read of `key` (blocking or async): the
/// value if live, with its verdict; a due refresh or an early one is handed
/// to `start` (which leads it on the cache's refresher and says whether it
/// did). An early refresh's verdict is `Fresh` to the reader: it runs in
/// the background.
pub(crate) fn judged_lookup<K, V, S>(
    cache: &Cache<K, V, S>,
    key: &K,
    start: impl FnOnce(u64) -> bool,
) -> Option<(V, Verdict)>
where
    K: Hash + Eq,
    V: Clone,
    S: BuildHasher,
{
    let hash = cache.hash(key);
    let (value, claimed, verdict) = read_judged(cache, key, hash)?;
    if claimed || verdict == Verdict::Early {
        let started = start(hash);
        if started && verdict == Verdict::Early && !claimed {
            cache
                .defences()
                .early_refreshes
                .fetch_add(1, crate::sync::Ordering::Relaxed);
        }
    }
    let verdict = match verdict {
        Verdict::Early => Verdict::Fresh,
        v => v,
    };
    Some((value, verdict))
}

/// A stale-if-error reload of `key` (present value `old`) run on the
/// refresher, waited for until `deadline` (`None`: until it ends): the new
/// value, or `old` if the reload fails, outlives the deadline (counted as a
/// load timeout; the reload goes on and stores its value if it succeeds),
/// is not needed (someone else is loading the key) or must wait for the
/// retry interval.
pub(crate) fn reload_within<K, V, E, S>(
    cache: &Cache<K, V, S>,
    loader: &Loader<K, V, E>,
    refresher: &Refresher,
    key: &K,
    hash: u64,
    old: V,
) -> V
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let Some(ticket) = cache.begin_reload(key, hash, Verdict::Stale) else {
        return old;
    };
    let waiter = ticket.waiter();
    let loader = loader.clone();
    refresher.submit(Box::new(move || run(ticket, &loader)));
    let fresh = match waiter.wait_until(cache.load_deadline()) {
        Some(Outcome::Value(v)) => Some(v),
        Some(_) => None,
        None => {
            cache.defences().count_timeout();
            cache.defences().count_stale();
            return old;
        }
    };
    cache.end_reload(hash, Verdict::Stale, fresh, old)
}

/// Starts a background refresh of `key` (the reader claimed it): leads a
/// flight unless one exists or the entry has gone, then submits the task.
pub(crate) fn start<K, V, E, S>(
    cache: &Cache<K, V, S>,
    loader: &Loader<K, V, E>,
    refresher: &Refresher,
    key: &K,
    hash: u64,
) -> bool
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    let Begin::Lead(ticket) = begin(cache, key, hash, Want::Refresh) else {
        return false; // gone since the read, or already being loaded
    };
    let loader = loader.clone();
    // A task dropped unrun drops the ticket, which gives the flight up.
    refresher.submit(Box::new(move || run(ticket, &loader)));
    true
}

/// One background reload, on the executor.
fn run<K, V, E, S>(ticket: Ticket<K, V, S>, loader: &Loader<K, V, E>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    E: Send + Sync + 'static,
    S: BuildHasher,
{
    let cache = ticket.cache().clone();
    let hash = ticket.flight().hash;
    let key = ticket.flight().key.clone();
    let reload = || ticket.run(|| loader(&key).map(Some));
    if catch_unwind(AssertUnwindSafe(reload)).is_err() {
        cache.count_failed_refresh(hash);
    }
}
