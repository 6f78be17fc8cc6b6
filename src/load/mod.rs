//! Loading: compute a missing value once, however many callers want it.
//!
//! The methods here ([`Cache::get_with`], [`Cache::try_get_with`],
//! [`Cache::optionally_get_with`], [`Cache::get_all_with`]) share one
//! single-flight protocol, described in [`flight`]. Adapters built on them
//! live beside it: [`LoadingCache`](crate::LoadingCache) (read-through, in
//! [`read_through`]) with refresh-ahead and stale-while-revalidate (in
//! [`refresh`], running on the small thread [`pool`] or the user's
//! executor).

#[cfg(feature = "async")]
pub(crate) mod async_read_through;
pub(crate) mod flight;
#[cfg(feature = "async")]
pub(crate) mod future;
pub(crate) mod pool;
pub(crate) mod read_through;
pub(crate) mod refresh;

#[cfg(feature = "async")]
pub use async_read_through::AsyncLoadingCache;
pub use read_through::LoadingCache;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::cache::Cache;
use crate::defend::Verdict;
use crate::shard::Outcome;

use flight::{begin, Begin, Loaded, LoadingMark, Want};

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Returns the value for `key`, computing it with `init` if it is
    /// missing. However many threads ask for the same missing key at once,
    /// `init` runs once (on the first caller's thread); the others block
    /// until it is done and get the same value.
    ///
    /// If `remove`, `insert`, `invalidate_all` or `retain` touches the key
    /// while `init` runs, the loaded value is still returned to the callers
    /// waiting for it but is **not** stored: the invalidation wins.
    ///
    /// **Locking behaviour:** `init` runs with no lock held, so it may use the
    /// cache, including loading other keys.
    ///
    /// # Panics
    ///
    /// If `init` panics, the panic propagates to this caller; threads waiting
    /// for the same key wake up and one of them runs its own `init`. If
    /// `init` asks for the very key it is loading (on the same thread), this
    /// panics with a message saying so instead of deadlocking.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: larder::Cache<u32, String> = larder::Cache::new(100);
    /// let v = cache.get_with(7, || "seven".to_string());
    /// assert_eq!(v, "seven");
    /// // Already there: the closure does not run.
    /// assert_eq!(cache.get_with(7, || unreachable!()), "seven");
    /// ```
    pub fn get_with(&self, key: K, init: impl FnOnce() -> V) -> V {
        match self.load::<Infallible>(key, false, || Ok(Some(init()))) {
            Loaded::Value(v) => v,
            Loaded::Absent | Loaded::Failed(_) => unreachable!("infallible loader"),
        }
    }

    /// Like [`get_with`](Self::get_with) with a fallible loader. An error is
    /// returned, as the same `Arc`, to every caller waiting on that load, and
    /// is not cached: the next call loads again.
    ///
    /// # Errors
    ///
    /// The loader's error, shared.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: larder::Cache<u32, u32> = larder::Cache::new(100);
    /// let r = cache.try_get_with(1, || Err::<u32, _>("backend down"));
    /// assert_eq!(*r.unwrap_err(), "backend down");
    /// assert_eq!(cache.try_get_with(1, || Ok::<_, &str>(5)), Ok(5));
    /// ```
    pub fn try_get_with<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, StdArc<E>>
    where
        E: Send + Sync + 'static,
    {
        match self.load::<E>(key, false, || init().map(Some)) {
            Loaded::Value(v) => Ok(v),
            Loaded::Failed(e) => Err(e),
            Loaded::Absent => unreachable!("loader cannot return absent"),
        }
    }

    /// Like [`get_with`](Self::get_with) for a loader that may find nothing:
    /// `None` means "does not exist". `None` is not stored as a value; with
    /// [`negative_ttl`](crate::CacheBuilder::negative_ttl) it is remembered
    /// for that long, so repeated requests for a missing key reach the
    /// loader once per TTL (counted in [`Stats::negative_hits`](crate::Stats::negative_hits)).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: larder::Cache<u32, u32> = larder::Cache::new(100);
    /// assert_eq!(cache.optionally_get_with(1, || None), None);
    /// assert_eq!(cache.optionally_get_with(2, || Some(20)), Some(20));
    /// ```
    pub fn optionally_get_with(&self, key: K, init: impl FnOnce() -> Option<V>) -> Option<V> {
        match self.load::<Infallible>(key, true, || Ok(init())) {
            Loaded::Value(v) => Some(v),
            Loaded::Absent => None,
            Loaded::Failed(_) => unreachable!("infallible loader"),
        }
    }

    /// Returns the values of every key in `keys` that has one, loading all
    /// the missing keys with **one** call of `load(&missing)` (a batch query
    /// instead of N). Keys absent from the map `load` returns are treated as
    /// not existing (and negatively cached if configured).
    ///
    /// Single-flight holds per key: a key another thread is already loading
    /// is waited for, not loaded twice, and an invalidation during the load
    /// wins as in [`get_with`](Self::get_with). If that other load fails or
    /// panics, this call loads the key itself with `load(&[key])`.
    ///
    /// **Locking behaviour:** `load` runs with no lock held.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::collections::HashMap;
    ///
    /// let cache: larder::Cache<u32, u32> = larder::Cache::new(100);
    /// cache.insert(1, 10);
    /// let got = cache.get_all_with([1, 2, 3], |missing| {
    ///     assert_eq!(missing, &[2, 3]);
    ///     HashMap::from([(2, 20)]) // 3 does not exist
    /// });
    /// assert_eq!(got, HashMap::from([(1, 10), (2, 20)]));
    /// ```
    pub fn get_all_with(
        &self,
        keys: impl IntoIterator<Item = K>,
        mut load: impl FnMut(&[K]) -> HashMap<K, V>,
    ) -> HashMap<K, V> {
        let mut found = HashMap::new();
        let mut mine = Vec::new();
        let mut theirs = Vec::new();
        for key in keys {
            if found.contains_key(&key) {
                continue;
            }
            if let Some(v) = self.get(&key) {
                found.insert(key, v);
                continue;
            }
            let hash = self.hash(&key);
            match begin(self, &key, hash, Want::Load { absent_ok: true }) {
                Begin::Hit(v) => {
                    found.insert(key, v);
                }
                Begin::Absent | Begin::Skip => {}
                Begin::Join(waiter) => theirs.push((key, waiter)),
                Begin::Lead(ticket) => mine.push((key, ticket)),
            }
        }
        if !mine.is_empty() {
            let keys: Vec<K> = mine.iter().map(|(k, _)| k.clone()).collect();
            let marks: Vec<LoadingMark> = mine
                .iter()
                .map(|(_, t)| LoadingMark::new(t.flight()))
                .collect();
            let slot = flight::load_slot(self.defences());
            let start = Instant::now();
            let mut loaded = load(&keys);
            drop(slot);
            let nanos = start.elapsed().as_nanos() as u64 / keys.len() as u64;
            drop(marks);
            for (key, ticket) in mine {
                let outcome = match loaded.remove(&key) {
                    Some(v) => Outcome::Value(v),
                    None => Outcome::Absent,
                };
                if let Outcome::Value(v) = ticket.complete(outcome, nanos) {
                    found.insert(key, v);
                }
            }
        }
        for (key, waiter) in theirs {
            match waiter.wait_until(self.load_deadline()) {
                Some(Outcome::Value(v)) => {
                    found.insert(key, v);
                }
                Some(Outcome::Absent) => {}
                None => {
                    // Outlived `load_timeout`: this key alone, loaded
                    // outside the flight (see `load_missing`).
                    self.defences().count_timeout();
                    let k2 = key.clone();
                    let own = self
                        .own_load::<Infallible>(|| Ok(load(std::slice::from_ref(&k2)).remove(&k2)));
                    if let Loaded::Value(v) = own {
                        found.insert(key, v);
                    }
                }
                Some(Outcome::Failed(_) | Outcome::Abandoned) => {
                    let k2 = key.clone();
                    if let Some(v) = self
                        .optionally_get_with(key, || load(std::slice::from_ref(&k2)).remove(&k2))
                    {
                        found.insert(k2, v);
                    }
                }
            }
        }
        found
    }

    /// Inserts every pair, to fill the cache before traffic arrives (each
    /// counts as an insert; capacity and the policy apply as usual).
    pub fn warm(&self, entries: impl IntoIterator<Item = (K, V)>) {
        for (k, v) in entries {
            self.insert(k, v);
        }
    }

    /// The single-flight core shared by every loading method.
    fn load<E: Send + Sync + 'static>(
        &self,
        key: K,
        accept_absent: bool,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        if self.defences().inspects_hits() {
            let hash = self.hash(&key);
            return match self.judged_get(hash, &key) {
                Some((v, Verdict::Fresh)) => Loaded::Value(v),
                Some((v, verdict)) => self.reload_now(key, hash, v, verdict, init),
                None => self.load_missing(key, accept_absent, init),
            };
        }
        if let Some(v) = self.get(&key) {
            return Loaded::Value(v);
        }
        self.load_missing(key, accept_absent, init)
    }

    /// A hit, with what early refresh and stale-if-error make of it.
    pub(crate) fn judged_get(&self, hash: u64, key: &K) -> Option<(V, Verdict)> {
        let (v, deadline, now) = self.get_by(hash, key, |core, idx, entry, now| {
            (entry.value.clone(), core.ttl_deadline(idx), now)
        })?;
        Some((v, self.defences().judge(now, deadline)))
    }

    /// An early refresh or a stale-if-error reload of a present entry
    /// whose value is `old`, run by this caller with `init`: the new value,
    /// or `old` if the reload fails (an error or a panic, caught), another
    /// caller is already loading the key, or a failed reload of the key
    /// was too recent.
    pub(crate) fn reload_now<E: Send + Sync + 'static>(
        &self,
        key: K,
        hash: u64,
        old: V,
        verdict: Verdict,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        let Some(ticket) = self.begin_reload(&key, hash, verdict) else {
            return Loaded::Value(old);
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ticket.run(init)));
        let fresh = match run {
            Ok(Loaded::Value(v)) => Some(v),
            Ok(_) => None,
            Err(_) => {
                // The ticket gave the flight up while unwinding.
                self.count_failed_refresh(hash);
                None
            }
        };
        Loaded::Value(self.end_reload(hash, verdict, fresh, old))
    }

    /// The first half of an early or stale-if-error reload: the ticket to
    /// run it with, or `None` to serve the present value now (someone is
    /// loading the key already, it has just gone, or its last stale reload
    /// failed within the retry interval; counted as served stale).
    pub(crate) fn begin_reload(
        &self,
        key: &K,
        hash: u64,
        verdict: Verdict,
    ) -> Option<flight::Ticket<K, V, S>> {
        let defences = self.defences();
        let stale = verdict == Verdict::Stale;
        if stale && defences.waits_to_retry(hash, self.clock_now()) {
            defences.count_stale();
            return None;
        }
        let Begin::Lead(ticket) = begin(self, key, hash, Want::Refresh) else {
            if stale {
                defences.count_stale();
            }
            return None;
        };
        if verdict == Verdict::Early {
            defences
                .early_refreshes
                .fetch_add(1, crate::sync::Ordering::Relaxed);
        }
        Some(ticket)
    }

    /// The second half: what the reader gets, the reloaded value if there
    /// is one, else `old` (a failed stale reload is noted for the retry
    /// interval and counted as served stale).
    pub(crate) fn end_reload(&self, hash: u64, verdict: Verdict, fresh: Option<V>, old: V) -> V {
        if let Some(v) = fresh {
            return v;
        }
        if verdict == Verdict::Stale {
            let defences = self.defences();
            defences.note_failed_reload(hash, self.clock_now());
            defences.count_stale();
        }
        old
    }

    /// Counts a refresh whose loader panicked (its ticket gave the flight
    /// up while unwinding, before any count): the old value stays.
    pub(crate) fn count_failed_refresh(&self, hash: u64) {
        let mut core = self.shard(hash).write();
        core.counters.refreshes += 1;
        core.counters.refresh_failures += 1;
    }

    /// [`try_get_with`](Self::try_get_with) for a caller that has already
    /// looked `key` up and missed (the lookup counted the miss).
    pub(crate) fn try_load_missing<E>(
        &self,
        key: K,
        init: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, StdArc<E>>
    where
        E: Send + Sync + 'static,
    {
        match self.load_missing::<E>(key, false, || init().map(Some)) {
            Loaded::Value(v) => Ok(v),
            Loaded::Failed(e) => Err(e),
            Loaded::Absent => unreachable!("loader cannot return absent"),
        }
    }

    /// The single-flight protocol for a key the caller found missing: join
    /// the key's flight or lead one and load.
    fn load_missing<E: Send + Sync + 'static>(
        &self,
        key: K,
        accept_absent: bool,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        let hash = self.hash(&key);
        let want = Want::Load {
            absent_ok: accept_absent,
        };
        let mut init = Some(init);
        loop {
            let waiter = match begin(self, &key, hash, want) {
                Begin::Hit(v) => return Loaded::Value(v),
                Begin::Absent => return Loaded::Absent,
                Begin::Skip => unreachable!("a load is never skipped"),
                Begin::Lead(ticket) => {
                    return ticket.run(init.take().expect("loader runs once"));
                }
                Begin::Join(waiter) => waiter,
            };
            let deadline = self.load_deadline();
            match waiter.wait_until(deadline) {
                Some(outcome) => {
                    if let Some(done) = joined::<V, E>(outcome, accept_absent) {
                        return done;
                    }
                }
                None => {
                    // The load we joined outlived `load_timeout`: load for
                    // ourselves, outside the flight (not stored; the
                    // flight still stores its value if it ever ends).
                    self.defences().count_timeout();
                    if let Some(e) = self.defences().timeout_error::<E>() {
                        return Loaded::Failed(e);
                    }
                    let init = init.take().expect("loader runs once");
                    return self.own_load(init);
                }
            }
        }
    }

    /// When a caller joining a flight now gives up on it.
    pub(crate) fn load_deadline(&self) -> Option<Instant> {
        self.defences()
            .load_timeout
            .map(|d| Instant::now().checked_add(d).unwrap_or_else(far_future))
    }

    /// A timed-out caller's own loader call: in a load slot like any other,
    /// recorded in the load statistics, its value returned but not stored.
    fn own_load<E: Send + Sync + 'static>(
        &self,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        let slot = flight::load_slot(self.defences());
        let start = Instant::now();
        let result = init();
        let nanos = start.elapsed().as_nanos() as u64;
        drop(slot);
        self.detached_result(result, nanos)
    }

    /// Counts a loader call made outside any flight (it took `nanos`) and
    /// turns its result into the caller's answer.
    pub(crate) fn detached_result<E: Send + Sync + 'static>(
        &self,
        result: Result<Option<V>, E>,
        nanos: u64,
    ) -> Loaded<V, E> {
        let failed = result.is_err();
        let defences = self.defences();
        defences.load_times.record_nanos(nanos);
        defences
            .detached_loads
            .fetch_add(1, crate::sync::Ordering::Relaxed);
        defences
            .detached_load_nanos
            .fetch_add(nanos, crate::sync::Ordering::Relaxed);
        defences
            .detached_failures
            .fetch_add(u64::from(failed), crate::sync::Ordering::Relaxed);
        match result {
            Ok(Some(v)) => Loaded::Value(v),
            Ok(None) => Loaded::Absent,
            Err(e) => Loaded::Failed(StdArc::new(e)),
        }
    }
}

/// A deadline beyond any wait (for a timeout too large to add to now).
fn far_future() -> Instant {
    Instant::now() + std::time::Duration::from_secs(86_400 * 365 * 30)
}

/// What a caller that joined a flight makes of its outcome: its answer, or
/// `None` to try again (the load was abandoned, said "absent" to a caller
/// that needs a value, or failed with another caller's error type).
pub(crate) fn joined<V, E: Send + Sync + 'static>(
    outcome: Outcome<V>,
    accept_absent: bool,
) -> Option<Loaded<V, E>> {
    match outcome {
        Outcome::Value(v) => Some(Loaded::Value(v)),
        Outcome::Absent if accept_absent => Some(Loaded::Absent),
        Outcome::Failed(e) => e.downcast::<E>().ok().map(Loaded::Failed),
        Outcome::Absent | Outcome::Abandoned => None,
    }
}
