//! Loading: compute a missing value once, however many callers want it.
//!
//! The methods here ([`Cache::get_with`], [`Cache::try_get_with`],
//! [`Cache::optionally_get_with`], [`Cache::get_all_with`]) share one
//! single-flight protocol, described in [`flight`]. Adapters built on them
//! live beside it: [`LoadingCache`](crate::LoadingCache) (read-through, in
//! [`read_through`]) with refresh-ahead and stale-while-revalidate (in
//! [`refresh`], running on the small thread [`pool`] or the user's
//! executor).

pub(crate) mod flight;
pub(crate) mod negative;
pub(crate) mod pool;
pub(crate) mod read_through;
pub(crate) mod refresh;

pub use read_through::LoadingCache;

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::cache::Cache;
use crate::shard::{Removed, Shard, WriteTime};
use crate::time::expiry::idle_deadline;

use flight::{loading_on_this_thread, Flight, LoadingMark, Outcome};

/// What a load gave one caller.
enum Loaded<V, E> {
    Value(V),
    Absent,
    Failed(StdArc<E>),
}

/// Why a loader runs: for a caller that missed, or to refresh a present
/// value in the background (counted separately in the stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LoadKind {
    Foreground,
    Refresh,
}

/// Message of the panic raised when a loader asks for its own key.
pub(crate) const RECURSIVE_LOAD: &str =
    "larder: recursive load: a loader asked (on its own thread) for the key it is loading";

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
        let mut my_keys: Vec<K> = Vec::new();
        let mut my_flights = Vec::new();
        let mut theirs = Vec::new();
        for key in keys {
            if found.contains_key(&key) {
                continue;
            }
            let hash = self.hash(&key);
            if let Some(v) = self.get(&key) {
                found.insert(key, v);
                continue;
            }
            let shard = self.shard(hash);
            let now = self.write_now(shard);
            let mut core = shard.write();
            if let Some(idx) = core.find(hash, &key).filter(|&i| !core.is_expired(i, now)) {
                found.insert(key, core.get_entry(idx).value.clone());
                continue;
            }
            if core.negatives.contains(hash, &key, now) {
                core.counters.negative_hits += 1;
                continue;
            }
            match core.flights.find(hash, &key).cloned() {
                Some(f) if !f.is_stale() => theirs.push((key, f)),
                stale => {
                    // A stale flight predates an invalidation this caller
                    // came after: load afresh (the stale one stores nothing).
                    if let Some(f) = stale {
                        core.flights.unregister(&f);
                    }
                    let f = Flight::new(key.clone(), hash);
                    core.flights.register(f.clone());
                    drop(core);
                    my_flights.push(Abandon::new(self, f));
                    my_keys.push(key);
                }
            }
        }
        if !my_flights.is_empty() {
            let keys = my_keys;
            let marks: Vec<LoadingMark> = my_flights
                .iter()
                .map(|a| LoadingMark::new(a.flight()))
                .collect();
            let start = Instant::now();
            let mut loaded = load(&keys);
            let nanos = start.elapsed().as_nanos() as u64 / keys.len() as u64;
            drop(marks);
            for (guard, key) in my_flights.into_iter().zip(keys) {
                let outcome = match loaded.remove(&key) {
                    Some(v) => Outcome::Value(v),
                    None => Outcome::Absent,
                };
                let done = self.complete(guard, key.clone(), outcome, nanos, LoadKind::Foreground);
                if let Outcome::Value(v) = done {
                    found.insert(key, v);
                }
            }
        }
        for (key, flight) in theirs {
            match flight.wait() {
                Outcome::Value(v) => {
                    found.insert(key, v);
                }
                Outcome::Absent => {}
                Outcome::Failed(_) | Outcome::Abandoned => {
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
        if let Some(v) = self.get(&key) {
            return Loaded::Value(v);
        }
        self.load_missing(key, accept_absent, init)
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
    /// the key's flight or register one and load.
    fn load_missing<E: Send + Sync + 'static>(
        &self,
        key: K,
        accept_absent: bool,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        let hash = self.hash(&key);
        let shard = self.shard(hash);
        let mut init = Some(init);
        loop {
            let now = self.write_now(shard);
            let joined = {
                let mut core = shard.write();
                if let Some(idx) = core.find(hash, &key).filter(|&i| !core.is_expired(i, now)) {
                    return Loaded::Value(core.get_entry(idx).value.clone());
                }
                if core.negatives.contains(hash, &key, now) {
                    core.counters.negative_hits += 1;
                    if accept_absent {
                        return Loaded::Absent;
                    }
                }
                match core.flights.find(hash, &key).cloned() {
                    Some(f) if !f.is_stale() => Some(f),
                    stale => {
                        // A stale flight's value predates an invalidation
                        // this caller came after: do not join it, load
                        // afresh (the stale load still completes for its
                        // own waiters and stores nothing).
                        if let Some(f) = stale {
                            core.flights.unregister(&f);
                        }
                        let f = Flight::new(key.clone(), hash);
                        core.flights.register(f.clone());
                        drop(core);
                        let guard = Abandon::new(self, f);
                        let init = init.take().expect("loader runs once");
                        return self.run_load(guard, key, init, LoadKind::Foreground);
                    }
                }
            };
            let Some(flight) = joined else { continue };
            if loading_on_this_thread(&flight) {
                panic!("{RECURSIVE_LOAD}");
            }
            match flight.wait() {
                Outcome::Value(v) => return Loaded::Value(v),
                Outcome::Absent if accept_absent => return Loaded::Absent,
                Outcome::Failed(e) => {
                    if let Ok(e) = e.downcast::<E>() {
                        return Loaded::Failed(e);
                    }
                    // An error of another caller's type: load for ourselves.
                }
                Outcome::Absent | Outcome::Abandoned => {}
            }
        }
    }

    /// Runs `init` as the loader of `guard`'s flight and completes it.
    fn run_load<E: Send + Sync + 'static>(
        &self,
        guard: Abandon<'_, K, V, S>,
        key: K,
        init: impl FnOnce() -> Result<Option<V>, E>,
        kind: LoadKind,
    ) -> Loaded<V, E> {
        let mark = LoadingMark::new(guard.flight());
        let start = Instant::now();
        let result = init();
        let nanos = start.elapsed().as_nanos() as u64;
        drop(mark);
        let (outcome, error) = match result {
            Ok(Some(v)) => (Outcome::Value(v), None),
            Ok(None) => (Outcome::Absent, None),
            Err(e) => {
                let e = StdArc::new(e);
                let any: flight::AnyError = StdArc::new(e.clone());
                (Outcome::Failed(any), Some(e))
            }
        };
        match self.complete(guard, key, outcome, nanos, kind) {
            Outcome::Value(v) => Loaded::Value(v),
            Outcome::Absent => Loaded::Absent,
            Outcome::Failed(_) => Loaded::Failed(error.expect("error kept")),
            Outcome::Abandoned => unreachable!("completed loads are not abandoned"),
        }
    }

    /// Completes a load or a refresh: unregisters the flight, stores the
    /// value unless an invalidation made the flight stale (a refresh's value
    /// then replaces the old one), wakes the waiters. Returns the outcome
    /// (the caller's copy). A failure stores nothing, so a failed refresh
    /// leaves the old value in place.
    fn complete(
        &self,
        guard: Abandon<'_, K, V, S>,
        key: K,
        outcome: Outcome<V>,
        nanos: u64,
        kind: LoadKind,
    ) -> Outcome<V> {
        // The weigher and `expire_after` are user code: while they run the
        // guard stays armed, so a panic in them abandons the flight (its
        // waiters retry) instead of leaving it registered forever.
        let (weight, ttl) = match &outcome {
            Outcome::Value(v) => (self.weigh(&key, v), self.entry_ttl(&key, v)),
            _ => (0, None),
        };
        let flight = guard.disarm();
        let hash = flight.hash;
        let shard = self.shard(hash);
        let now = self.write_now(shard);
        let mut removed = Removed::new();
        {
            let mut core = shard.write();
            core.flights.unregister(&flight);
            core.counters.loads += 1;
            core.counters.load_nanos += nanos;
            let failed = matches!(outcome, Outcome::Failed(_));
            core.counters.load_failures += u64::from(failed);
            if kind == LoadKind::Refresh {
                core.counters.refreshes += 1;
                core.counters.refresh_failures += u64::from(failed);
            }
            if !flight.is_stale() {
                match &outcome {
                    Outcome::Value(v) => {
                        core.negatives.remove(hash, &key);
                        let write = WriteTime { now, ttl };
                        core.insert(hash, key, v.clone(), weight, write, &mut removed);
                    }
                    Outcome::Absent => {
                        if let Some(neg) = self.negative_ttl() {
                            let limit = usize::try_from(core.capacity()).unwrap_or(usize::MAX);
                            let deadline = idle_deadline(now, neg);
                            core.negatives.insert(hash, key, deadline, now, limit);
                        }
                    }
                    Outcome::Failed(_) | Outcome::Abandoned => {}
                }
            }
        }
        flight.finish(outcome.clone());
        self.notify(removed);
        outcome
    }
}

/// Held by a loader: if it is dropped without [`Abandon::disarm`] (the
/// loader panicked), the flight is unregistered and its waiters are told to
/// try again.
struct Abandon<'a, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    cache: &'a Cache<K, V, S>,
    flight: Option<crate::sync::Arc<Flight<K, V>>>,
}

impl<'a, K, V, S> Abandon<'a, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn new(cache: &'a Cache<K, V, S>, flight: crate::sync::Arc<Flight<K, V>>) -> Self {
        Self {
            cache,
            flight: Some(flight),
        }
    }

    fn flight(&self) -> &crate::sync::Arc<Flight<K, V>> {
        self.flight.as_ref().expect("armed guard")
    }

    fn disarm(mut self) -> crate::sync::Arc<Flight<K, V>> {
        self.flight.take().expect("armed guard")
    }
}

impl<K, V, S> Drop for Abandon<'_, K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            let shard: &Shard<K, V> = self.cache.shard(flight.hash);
            shard.write().flights.unregister(&flight);
            flight.finish(Outcome::Abandoned);
        }
    }
}
