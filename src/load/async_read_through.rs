//! [`AsyncLoadingCache`]: the async twin of
//! [`LoadingCache`](crate::LoadingCache), read-through with an async
//! loader, refresh-ahead, stale-while-revalidate, early refresh and
//! stale-if-error, on the engine of [`future`](super::future).
//!
//! Reads judge a hit as the blocking read-through cache does
//! ([`refresh::judged_lookup`](super::refresh)): a due or early refresh is
//! led here and handed to the refresher (the user's
//! [`spawner`](CacheBuilder::spawner), or two built-in threads that poll it
//! to completion); a read in a stale-if-error window leads the reload on
//! the refresher and awaits it, at most the load timeout.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use crate::builder::{CacheBuilder, Spawner};
use crate::cache::Cache;
use crate::defend::Verdict;
use crate::load::pool::{Pool, QUEUE_CAPACITY};
use crate::shard::Outcome;
use crate::stats::Stats;
use crate::sync::timer;

use super::flight::{begin, Begin, Loaded, Ticket, Want};
use super::future::{lead, CatchUnwind};

/// A boxed, sendable future: what the async loader returns and what a
/// spawner receives.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The loader an [`AsyncLoadingCache`] was built with.
type AsyncLoader<K, V, E> = StdArc<dyn Fn(&K) -> BoxFuture<Result<V, E>> + Send + Sync>;

/// A cache that loads missing values itself with an async loader:
/// read-through, with optional refresh-ahead and stale-while-revalidate,
/// the async twin of [`LoadingCache`](crate::LoadingCache).
///
/// Build one with [`CacheBuilder::build_with_async_loader`] or
/// [`CacheBuilder::build_with_async_try_loader`]. Every guarantee of
/// [`Cache::get_with_async`] holds. Background refreshes run on the
/// [`spawner`](CacheBuilder::spawner) (for example `tokio::spawn`), or
/// without one on two built-in threads that poll the refresh future to
/// completion: fine for a loader that needs no runtime of its own, but a
/// loader that uses tokio's I/O or timers needs a spawner (polled outside
/// its runtime it panics, which counts as a failed refresh and keeps the
/// old value).
///
/// # Examples
///
/// ```
/// # fn block_on<F: std::future::Future>(f: F) -> F::Output {
/// #     struct Nop;
/// #     impl std::task::Wake for Nop { fn wake(self: std::sync::Arc<Self>) {} }
/// #     let waker = std::task::Waker::from(std::sync::Arc::new(Nop));
/// #     let mut cx = std::task::Context::from_waker(&waker);
/// #     let mut f = std::pin::pin!(f);
/// #     loop { if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) { return v; } }
/// # }
/// use larder::{AsyncLoadingCache, Cache};
///
/// let users: AsyncLoadingCache<u64, String> = Cache::builder()
///     .max_capacity(10_000)
///     .build_with_async_loader(|id: &u64| {
///         let id = *id;
///         async move { format!("user {id}") } // e.g. a query awaited on a pool
///     });
/// assert_eq!(block_on(users.get(&7)), "user 7");
/// assert_eq!(users.stats().loads, 1);
/// ```
pub struct AsyncLoadingCache<K, V, E = Infallible, S = ahash::RandomState> {
    cache: Cache<K, V, S>,
    shared: StdArc<Shared<K, V, E>>,
}

struct Shared<K, V, E> {
    loader: AsyncLoader<K, V, E>,
    /// Where refreshes run; `None` when refresh is not configured.
    refresher: Option<Refresher>,
}

/// Where an async loading cache's refreshes run.
enum Refresher {
    Spawner(Spawner),
    /// The built-in pool, each refresh polled to completion on a worker.
    Pool(Pool),
}

impl Refresher {
    fn submit(&self, task: BoxFuture<()>) {
        match self {
            Refresher::Spawner(spawn) => spawn(task),
            // A full queue drops the task, which gives the refresh up.
            Refresher::Pool(pool) => drop(pool.submit(Box::new(move || block_on(task)))),
        }
    }
}

impl<K, V, E, S> Clone for AsyncLoadingCache<K, V, E, S> {
    fn clone(&self) -> Self {
        Self {
            cache: self.cache.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<K, V, E, S> fmt::Debug for AsyncLoadingCache<K, V, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncLoadingCache")
            .field("cache", &self.cache)
            .field("refresh", &self.shared.refresher.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Runs an [`AsyncLoadingCache`]'s background refreshes with `spawn`
    /// (for example `|task| { tokio::spawn(task); }`), instead of on two
    /// built-in threads. `spawn` must poll the task to completion or drop
    /// it; a dropped task gives that refresh up (the old value stays and
    /// the refresh is retried later).
    ///
    /// **Locking behaviour:** `spawn` is called by the reading task with no
    /// lock held.
    pub fn spawner(mut self, spawn: impl Fn(BoxFuture<()>) + Send + Sync + 'static) -> Self {
        self.spawner = Some(std::sync::Arc::new(spawn));
        self
    }

    /// Builds an [`AsyncLoadingCache`] whose missing values come from the
    /// future `loader(&key)` returns.
    ///
    /// **Locking behaviour:** `loader` is called, and its future polled,
    /// with no lock held, so it may use the cache, including loading other
    /// keys.
    pub fn build_with_async_loader<F>(
        self,
        loader: impl Fn(&K) -> F + Send + Sync + 'static,
    ) -> AsyncLoadingCache<K, V, Infallible, S>
    where
        K: Hash + Eq,
        S: BuildHasher + Clone,
        F: Future<Output = V> + Send + 'static,
    {
        self.build_with_async_try_loader(move |key| {
            let load = loader(key);
            async move { Ok(load.await) }
        })
    }

    /// Builds an [`AsyncLoadingCache`] whose missing values come from a
    /// fallible async `loader`. An error goes, as one shared `Arc<E>`, to
    /// every caller waiting for that load, and is not cached.
    pub fn build_with_async_try_loader<F, E>(
        mut self,
        loader: impl Fn(&K) -> F + Send + Sync + 'static,
    ) -> AsyncLoadingCache<K, V, E, S>
    where
        K: Hash + Eq,
        S: BuildHasher + Clone,
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let refreshes = self.refresh.is_on() || self.defend.early_refresh.is_some();
        let waits = super::refresh::readers_wait_on_pool(&self.refresh, &self.defend);
        let refresher = (refreshes || waits).then(|| match self.spawner.take() {
            Some(spawn) => Refresher::Spawner(spawn),
            None => {
                let workers = super::refresh::pool_workers(&self.refresh, &self.defend);
                Refresher::Pool(Pool::new("larder-refresh", workers, QUEUE_CAPACITY))
            }
        });
        let loader: AsyncLoader<K, V, E> = StdArc::new(move |key: &K| {
            let fut: BoxFuture<Result<V, E>> = Box::pin(loader(key));
            fut
        });
        AsyncLoadingCache {
            cache: self.build(),
            shared: StdArc::new(Shared { loader, refresher }),
        }
    }
}

impl<K, V, E, S> AsyncLoadingCache<K, V, E, S> {
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

impl<K, V, E, S> AsyncLoadingCache<K, V, E, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Returns the value for `key`, loading it if it is missing.
    ///
    /// With refresh configured, a value due for refresh is returned at once
    /// and reloaded in the background.
    ///
    /// # Errors
    ///
    /// The loader's error, shared with every caller that waited for the
    /// same load; not cached.
    pub async fn try_get(&self, key: &K) -> Result<V, StdArc<E>> {
        match self.lookup(key) {
            Some((old, Verdict::Stale)) => return Ok(self.reload_stale(key, old).await),
            Some((v, _)) => return Ok(v),
            None => {}
        }
        if let Some(done) = self.load_within(key).await {
            return done;
        }
        let init = async { (self.shared.loader)(key).await.map(Some) };
        match self
            .cache
            .load_missing_async(key.clone(), false, init)
            .await
        {
            Loaded::Value(v) => Ok(v),
            Loaded::Failed(e) => Err(e),
            Loaded::Absent => unreachable!("loader cannot return absent"),
        }
    }

    /// Returns the value for `key` if it is cached, without loading it.
    /// Like every read of an `AsyncLoadingCache`, it starts a background
    /// refresh when the value is due for one (or for an early refresh). An
    /// entry past its time to live but inside a stale-if-error window is
    /// returned as it is, with no reload.
    pub fn get_if_present(&self, key: &K) -> Option<V> {
        self.lookup(key).map(|(v, _)| v)
    }

    /// A read, judged by early refresh and stale-if-error; starts a due or
    /// early background refresh.
    fn lookup(&self, key: &K) -> Option<(V, Verdict)> {
        let Some(refresher) = &self.shared.refresher else {
            return self.cache.get(key).map(|v| (v, Verdict::Fresh));
        };
        super::refresh::judged_lookup(&self.cache, key, |hash| {
            self.start_refresh(refresher, key, hash)
        })
    }

    /// The twin of the blocking `refresh::load_within`: with a load
    /// timeout and a `load_timeout_error` of type `E`, a missing key's load
    /// is led here, handed to the refresher and awaited at most the
    /// timeout (then that error; the load goes on and stores its value).
    /// `None` when that does not apply, or the task was lost (then the
    /// caller loads as usual).
    async fn load_within(&self, key: &K) -> Option<Result<V, StdArc<E>>> {
        let refresher = self.shared.refresher.as_ref()?;
        let defences = self.cache.defences();
        let deadline = self.cache.load_deadline()?;
        if !defences.has_timeout_error::<E>() {
            return None;
        }
        let hash = self.cache.hash(key);
        let waiter = match begin(&self.cache, key, hash, Want::Load { absent_ok: false }) {
            Begin::Hit(v) => return Some(Ok(v)),
            Begin::Absent | Begin::Skip => return None,
            Begin::Join(waiter) => waiter,
            Begin::Lead(ticket) => {
                let waiter = ticket.waiter();
                let load = (self.shared.loader)(key);
                refresher.submit(Box::pin(load_task(ticket, load)));
                waiter
            }
        };
        match timer::within(deadline, waiter.into_future()).await {
            Some(outcome) => match super::joined::<V, E>(outcome, false) {
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

    /// Stale-if-error: reloads `key` on the refresher and awaits it, at
    /// most the load timeout if there is one; the expired value `old` if
    /// the reload fails or outlives the timeout (the reload goes on).
    async fn reload_stale(&self, key: &K, old: V) -> V {
        let Some(refresher) = &self.shared.refresher else {
            return old; // not reached: a stale window makes a refresher
        };
        let hash = self.cache.hash(key);
        let Some(ticket) = self.cache.begin_reload(key, hash, Verdict::Stale) else {
            return old;
        };
        let waiter = ticket.waiter().into_future();
        refresher.submit(Box::pin(refresh(ticket, (self.shared.loader)(key))));
        let outcome = match self.cache.load_deadline() {
            None => Some(waiter.await),
            Some(deadline) => timer::within(deadline, waiter).await,
        };
        let fresh = match outcome {
            Some(Outcome::Value(v)) => Some(v),
            Some(_) => None,
            None => {
                self.cache.defences().count_timeout();
                self.cache.defences().count_stale();
                return old;
            }
        };
        self.cache.end_reload(hash, Verdict::Stale, fresh, old)
    }

    /// Leads a background reload of `key` unless it is gone or already
    /// being loaded, and hands it to the refresher; says whether it did.
    fn start_refresh(&self, refresher: &Refresher, key: &K, hash: u64) -> bool {
        let Begin::Lead(ticket) = begin(&self.cache, key, hash, Want::Refresh) else {
            return false;
        };
        let load = (self.shared.loader)(key);
        refresher.submit(Box::pin(refresh(ticket, load)));
        true
    }

    /// Stores `value` under `key` (see [`Cache::insert`]). A load or refresh
    /// of `key` in flight will not overwrite it.
    pub fn insert(&self, key: K, value: V) {
        self.cache.insert(key, value);
    }

    /// Removes `key` and returns its value, if any (see [`Cache::remove`]).
    pub fn remove(&self, key: &K) -> Option<V> {
        self.cache.remove(key)
    }

    /// Removes every entry; loads and refreshes in flight will not store
    /// their values.
    pub fn invalidate_all(&self) {
        self.cache.invalidate_all();
    }
}

impl<K, V, S> AsyncLoadingCache<K, V, Infallible, S>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Returns the value for `key`, loading it if it is missing (once,
    /// however many tasks and threads ask at the same time).
    pub async fn get(&self, key: &K) -> V {
        match self.try_get(key).await {
            Ok(v) => v,
            Err(never) => match *never {},
        }
    }
}

/// A foreground load handed to the refresher ([`AsyncLoadingCache::load_within`]):
/// led as any async load is (a load slot, the flight marked while polled);
/// a panic abandons the flight (the waiting caller then loads itself).
async fn load_task<K, V, S, E>(ticket: Ticket<K, V, S>, load: BoxFuture<Result<V, E>>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    let led = lead(ticket, async { load.await.map(Some) });
    let _ = (CatchUnwind {
        inner: Box::pin(led),
    })
    .await;
}

/// One background reload, led as any async load is; a panic is caught and
/// counted as a failed refresh (the old value stays; the flight is
/// abandoned, so its waiters load for themselves).
async fn refresh<K, V, S, E>(ticket: Ticket<K, V, S>, load: BoxFuture<Result<V, E>>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    let (cache, hash) = (ticket.cache().clone(), ticket.flight().hash);
    let led = lead(ticket, async { load.await.map(Some) });
    if (CatchUnwind {
        inner: Box::pin(led),
    })
    .await
    .is_err()
    {
        cache.count_failed_refresh(hash);
    }
}

/// Polls `fut` to completion on this thread, parking between wake-ups: how
/// the built-in refresh threads run an async refresh.
fn block_on<F: Future>(fut: F) -> F::Output {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: StdArc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(StdArc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::park();
    }
}
