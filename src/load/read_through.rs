//! Read-through: a [`Cache`] that knows how to load its own values.
//!
//! [`LoadingCache`] is the cache plus one loader function. It adds no
//! machinery of its own: a missing key goes through the single-flight
//! protocol of [`Cache::try_get_with`] (see [`flight`](super::flight)), and
//! refresh-ahead (see [`refresh`](super::refresh)) reuses the same flights.
//! What it owns is the loader (in an `Arc`, shared by clones and by
//! background refresh tasks) and, when refresh is configured, where the
//! refreshes run.

use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc as StdArc;

use crate::builder::CacheBuilder;
use crate::cache::Cache;
use crate::defend::Verdict;
use crate::load::flight::Loaded;
use crate::stats::Stats;

use super::refresh::{self, Refresher};

/// The loader a [`LoadingCache`] was built with.
pub(crate) type Loader<K, V, E> = StdArc<dyn Fn(&K) -> Result<V, E> + Send + Sync>;

/// A cache that loads missing values itself: read-through, with optional
/// refresh-ahead and stale-while-revalidate.
///
/// Build one with [`CacheBuilder::build_with_loader`] (a loader that always
/// succeeds) or [`CacheBuilder::build_with_try_loader`] (one that may fail
/// with `E`). Every guarantee of [`Cache::get_with`] holds: one load per
/// missing key however many threads ask, loaders of different keys run in
/// parallel, and an invalidation during a load wins over it.
///
/// `LoadingCache` is a cheap handle: clones share the cache, the loader and
/// the refresh threads. The built-in refresh threads stop (and are joined,
/// after the refreshes they are running) when the last clone is dropped. A
/// loader that keeps a clone of its own `LoadingCache` would keep it alive
/// forever (a reference cycle); let it use the inner [`Cache`] instead.
///
/// # Examples
///
/// ```
/// use larder::{Cache, LoadingCache};
///
/// let squares: LoadingCache<u64, u64> = Cache::builder()
///     .max_capacity(10_000)
///     .build_with_loader(|n: &u64| n * n); // e.g. a database query
/// assert_eq!(squares.get(&12), 144); // loaded
/// assert_eq!(squares.get(&12), 144); // cached
/// assert_eq!(squares.stats().loads, 1);
/// ```
pub struct LoadingCache<K, V, E = Infallible, S = ahash::RandomState> {
    cache: Cache<K, V, S>,
    shared: StdArc<Shared<K, V, E>>,
}

struct Shared<K, V, E> {
    loader: Loader<K, V, E>,
    /// Where refreshes run; `None` when refresh is not configured.
    refresher: Option<Refresher>,
}

impl<K, V, E, S> Clone for LoadingCache<K, V, E, S> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<K, V, E, S> fmt::Debug for LoadingCache<K, V, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoadingCache")
            .field("cache", &self.cache)
            .field("refresh", &self.shared.refresher.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Builds a [`LoadingCache`] whose missing values come from `loader`.
    ///
    /// **Locking behaviour:** `loader` runs with no lock held, on the
    /// reading thread (or, for refreshes, on the refresh executor), so it
    /// may use the cache, including loading other keys.
    ///
    /// # Examples
    ///
    /// ```
    /// let names = larder::Cache::builder()
    ///     .max_capacity(100)
    ///     .build_with_loader(|id: &u32| format!("user-{id}"));
    /// assert_eq!(names.get(&7), "user-7");
    /// ```
    pub fn build_with_loader(
        self,
        loader: impl Fn(&K) -> V + Send + Sync + 'static,
    ) -> LoadingCache<K, V, Infallible, S>
    where
        K: Hash + Eq,
        S: BuildHasher + Clone,
    {
        self.build_with_try_loader(move |key| Ok(loader(key)))
    }

    /// Builds a [`LoadingCache`] whose missing values come from a fallible
    /// `loader`. An error goes, as one shared `Arc<E>`, to every caller
    /// waiting for that load, and is not cached.
    ///
    /// **Locking behaviour:** as for
    /// [`build_with_loader`](Self::build_with_loader).
    ///
    /// # Examples
    ///
    /// ```
    /// let parsed = larder::Cache::builder()
    ///     .build_with_try_loader(|s: &String| s.parse::<i64>());
    /// assert_eq!(parsed.try_get(&"42".to_string()), Ok(42));
    /// assert!(parsed.try_get(&"forty-two".to_string()).is_err());
    /// ```
    pub fn build_with_try_loader<E>(
        mut self,
        loader: impl Fn(&K) -> Result<V, E> + Send + Sync + 'static,
    ) -> LoadingCache<K, V, E, S>
    where
        K: Hash + Eq,
        S: BuildHasher + Clone,
    {
        let workers = refresh::pool_workers(&self.refresh, &self.defend);
        let refreshes = self.refresh.is_on() || self.defend.early_refresh.is_some();
        let refresher = (refreshes || refresh::readers_wait_on_pool(&self.refresh, &self.defend))
            .then(|| Refresher::new(self.refresh.executor.take(), workers));
        LoadingCache {
            cache: self.build(),
            shared: StdArc::new(Shared {
                loader: StdArc::new(loader),
                refresher,
            }),
        }
    }
}

impl<K, V, E, S> LoadingCache<K, V, E, S> {
    /// The inner cache, for everything else ([`Cache::get`] does not load,
    /// [`Cache::iter`], [`Cache::retain`], ...). Its reads never trigger a
    /// refresh.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// A snapshot of the statistics (loads, refreshes, hit ratio, ...).
    pub fn stats(&self) -> Stats {
        self.cache.stats()
    }
}

impl<K, V, E, S> LoadingCache<K, V, E, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Returns the value for `key`, loading it if it is missing.
    ///
    /// With refresh configured, a value due for refresh is returned at once
    /// and reloaded in the background (see
    /// [`CacheBuilder::refresh_after`]).
    ///
    /// # Errors
    ///
    /// The loader's error, shared with every caller that waited for the
    /// same load. Errors are not cached: the next call loads again.
    ///
    /// # Panics
    ///
    /// If the loader panics (the panic propagates; see
    /// [`Cache::get_with`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let cache = larder::Cache::builder().build_with_try_loader(|k: &u32| {
    ///     if *k == 0 { Err("no such row") } else { Ok(k * 10) }
    /// });
    /// assert_eq!(cache.try_get(&3), Ok(30));
    /// assert_eq!(*cache.try_get(&0).unwrap_err(), "no such row");
    /// ```
    pub fn try_get(&self, key: &K) -> Result<V, StdArc<E>> {
        let loader = &self.shared.loader;
        match self.lookup(key) {
            Some((v, Verdict::Stale)) => {
                // Stale-if-error: reload now, the stale value if that fails.
                let hash = self.cache.hash(key);
                let refresher = self.shared.refresher.as_ref();
                if let (Some(refresher), Some(_)) = (refresher, self.cache.defences().load_timeout)
                {
                    // On the refresher, waited for at most the timeout.
                    return Ok(refresh::reload_within(
                        &self.cache,
                        loader,
                        refresher,
                        key,
                        hash,
                        v,
                    ));
                }
                let reload = || loader(key).map(Some);
                match self
                    .cache
                    .reload_now(key.clone(), hash, v, Verdict::Stale, reload)
                {
                    Loaded::Value(v) => Ok(v),
                    Loaded::Absent | Loaded::Failed(_) => unreachable!("reload_now gives a value"),
                }
            }
            Some((v, _)) => Ok(v),
            None => {
                if let Some(refresher) = &self.shared.refresher {
                    if let Some(done) = refresh::load_within(&self.cache, loader, refresher, key) {
                        return done;
                    }
                }
                self.cache.try_load_missing(key.clone(), || loader(key))
            }
        }
    }

    /// Returns the value for `key` if it is cached, without loading it. Like
    /// every read of a `LoadingCache`, it starts a background refresh when
    /// the value is due for one.
    pub fn get_if_present(&self, key: &K) -> Option<V> {
        self.lookup(key).map(|(v, _)| v)
    }

    /// A read: the value if present, with what early refresh and
    /// stale-if-error make of it; starts a due background refresh (or an
    /// early one).
    fn lookup(&self, key: &K) -> Option<(V, Verdict)> {
        let Some(refresher) = &self.shared.refresher else {
            if self.cache.defences().inspects_hits() {
                return self.cache.judged_get(self.cache.hash(key), key);
            }
            return self.cache.get(key).map(|v| (v, Verdict::Fresh));
        };
        refresh::judged_lookup(&self.cache, key, |hash| {
            refresh::start(&self.cache, &self.shared.loader, refresher, key, hash)
        })
    }

    /// Stores `value` under `key` (see [`Cache::insert`]). A load or refresh
    /// of `key` in flight will not overwrite it.
    pub fn insert(&self, key: K, value: V) {
        self.cache.insert(key, value);
    }

    /// Removes `key` and returns its value, if any (see [`Cache::remove`]).
    /// A load or refresh of `key` in flight will not store its value.
    pub fn remove(&self, key: &K) -> Option<V> {
        self.cache.remove(key)
    }

    /// Removes every entry; loads and refreshes in flight will not store
    /// their values.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

impl<K, V, S> LoadingCache<K, V, Infallible, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Returns the value for `key`, loading it if it is missing (once,
    /// however many threads ask at the same time).
    ///
    /// With refresh configured, a value due for refresh is returned at once
    /// and reloaded in the background (see
    /// [`CacheBuilder::refresh_after`]).
    ///
    /// # Panics
    ///
    /// If the loader panics: the panic propagates to this caller; threads
    /// waiting for the same key load it themselves (see
    /// [`Cache::get_with`]).
    ///
    /// # Examples
    ///
    /// ```
    /// let lengths = larder::Cache::builder().build_with_loader(|s: &String| s.len());
    /// assert_eq!(lengths.get(&"larder".to_string()), 6);
    /// ```
    pub fn get(&self, key: &K) -> V {
        match self.try_get(key) {
            Ok(v) => v,
            Err(never) => match *never {},
        }
    }
}
