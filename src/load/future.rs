//! Async loading (feature `async`): the same single-flight engine, awaited.
//!
//! [`Cache::get_with_async`], [`Cache::try_get_with_async`] and
//! [`Cache::optionally_get_with_async`] are the blocking verbs with a
//! future for a loader, and [`AsyncLoadingCache`] is [`LoadingCache`]'s
//! async twin. They go through the protocol in [`flight`](super::flight)
//! exactly as the blocking verbs do, so threads and tasks share flights in
//! any mix: a task that misses leads a flight or awaits the one in
//! progress; a thread that misses the same key parks on the same flight.
//!
//! Nothing here blocks: a waiting task registers its waker and returns
//! `Pending`; no shard lock is held across an `.await`; the loader future
//! runs with no lock held, so a slow load of one key never delays hits on
//! other keys of its shard. No runtime is assumed either: the futures work
//! on tokio, async-std, smol or a hand-rolled executor.
//!
//! # Cancellation
//!
//! Dropping a future that leads a load (an aborted task, a timeout, the
//! losing arm of a `select!`) drops its flight's ticket, which abandons
//! the flight: every waiter, thread or task, wakes, and the first of them
//! to run again leads a new load with its own loader. Dropping a future
//! that waits just takes its waker back. Nothing is poisoned either way.
//!
//! # Recursion
//!
//! A loader future that asks for its own key while it is being polled
//! (directly, or through anything it awaits inline) gets the same
//! `recursive load` panic as a blocking loader: while the leader polls the
//! loader future, the flight is on the polling thread's list. A loader that
//! waits for *another* task which asks for the key cannot be seen that way
//! and waits for itself: don't do that.
//!
//! [`LoadingCache`]: crate::LoadingCache

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

use crate::builder::{CacheBuilder, Spawner};
use crate::cache::Cache;
use crate::defend::Verdict;
use crate::load::pool::{Pool, MAX_WORKERS, QUEUE_CAPACITY};
use crate::shard::{Flight, Outcome};
use crate::stats::Stats;
use crate::sync::{timer, Arc};

use super::flight::{begin, holds_slot, Begin, Loaded, LoadingMark, SlotMark, Ticket, Want};
use super::joined;

/// A boxed, sendable future: what the async loader returns and what a
/// spawner receives.
type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// The loader an [`AsyncLoadingCache`] was built with.
type AsyncLoader<K, V, E> = StdArc<dyn Fn(&K) -> BoxFuture<Result<V, E>> + Send + Sync>;

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// Async [`get_with`](Self::get_with): the value for `key`, loading it
    /// with the future `init` if it is missing. However many tasks (and
    /// threads) ask for the same missing key at once, one loader runs; the
    /// others wait without blocking a thread and get the same value.
    /// `init` is only polled if this caller leads the load.
    ///
    /// If this future is dropped while it leads the load, the load is
    /// abandoned and one of its waiters loads instead (see the module docs
    /// of `load::future`, "Cancellation").
    ///
    /// # Panics
    ///
    /// If `init` panics (the panic propagates from this future; waiters
    /// load for themselves), or if `init` asks for `key` itself while it
    /// is polled (`recursive load`).
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
    /// let cache: larder::Cache<u32, String> = larder::Cache::new(100);
    /// let v = block_on(cache.get_with_async(7, async { "seven".to_string() }));
    /// assert_eq!(v, "seven");
    /// ```
    pub async fn get_with_async(&self, key: K, init: impl Future<Output = V>) -> V {
        // A hit is answered before any inner future is built.
        if let Some(v) = self.plain_hit(&key) {
            return v;
        }
        let init = async { Ok::<_, Infallible>(Some(init.await)) };
        match self.load_async(key, false, init).await {
            Loaded::Value(v) => v,
            Loaded::Absent | Loaded::Failed(_) => unreachable!("infallible loader"),
        }
    }

    /// Async [`try_get_with`](Self::try_get_with): an error is returned, as
    /// the same `Arc`, to every caller waiting on that load, and is not
    /// cached.
    ///
    /// # Errors
    ///
    /// The loader's error, shared.
    pub async fn try_get_with_async<E>(
        &self,
        key: K,
        init: impl Future<Output = Result<V, E>>,
    ) -> Result<V, StdArc<E>>
    where
        E: Send + Sync + 'static,
    {
        if let Some(v) = self.plain_hit(&key) {
            return Ok(v);
        }
        let init = async { init.await.map(Some) };
        match self.load_async(key, false, init).await {
            Loaded::Value(v) => Ok(v),
            Loaded::Failed(e) => Err(e),
            Loaded::Absent => unreachable!("loader cannot return absent"),
        }
    }

    /// Async [`optionally_get_with`](Self::optionally_get_with): `None`
    /// means "does not exist", remembered for
    /// [`negative_ttl`](crate::CacheBuilder::negative_ttl) if one is set.
    pub async fn optionally_get_with_async(
        &self,
        key: K,
        init: impl Future<Output = Option<V>>,
    ) -> Option<V> {
        if let Some(v) = self.plain_hit(&key) {
            return Some(v);
        }
        let init = async { Ok::<_, Infallible>(init.await) };
        match self.load_async(key, true, init).await {
            Loaded::Value(v) => Some(v),
            Loaded::Absent => None,
            Loaded::Failed(_) => unreachable!("infallible loader"),
        }
    }

    /// A hit that needs no second look: `None` on a miss, and always when
    /// early refresh or stale-if-error must judge the hit first.
    fn plain_hit(&self, key: &K) -> Option<V> {
        if self.defences().inspects_hits() {
            return None;
        }
        self.get(key)
    }

    /// The async loading core: a hit (early refresh and stale-if-error
    /// reload it with `init`, as the blocking verbs do), else lead or join
    /// the key's flight.
    async fn load_async<E: Send + Sync + 'static>(
        &self,
        key: K,
        accept_absent: bool,
        init: impl Future<Output = Result<Option<V>, E>>,
    ) -> Loaded<V, E> {
        if self.defences().inspects_hits() {
            let hash = self.hash(&key);
            match self.judged_get(hash, &key) {
                Some((v, Verdict::Fresh)) => return Loaded::Value(v),
                Some((old, verdict)) => {
                    let Some(ticket) = self.begin_reload(&key, hash, verdict) else {
                        return Loaded::Value(old);
                    };
                    let run = CatchUnwind {
                        inner: Box::pin(lead(ticket, init)),
                    };
                    let fresh = match run.await {
                        Ok(Loaded::Value(v)) => Some(v),
                        Ok(_) => None,
                        Err(()) => {
                            self.count_failed_refresh(hash);
                            None
                        }
                    };
                    return Loaded::Value(self.end_reload(hash, verdict, fresh, old));
                }
                None => {}
            }
        }
        self.load_missing_async(key, accept_absent, init).await
    }

    /// The async single-flight core, for a caller that already missed:
    /// lead or join the key's flight. A joined flight is waited for at most
    /// the load timeout; after it this caller runs `init` itself, outside
    /// the flight, as the blocking verbs do.
    pub(crate) async fn load_missing_async<E: Send + Sync + 'static>(
        &self,
        key: K,
        accept_absent: bool,
        init: impl Future<Output = Result<Option<V>, E>>,
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
                    let init = init.take().expect("loader runs once");
                    return lead(ticket, init).await;
                }
                Begin::Join(waiter) => waiter,
            };
            let outcome = match self.load_deadline() {
                None => Some(waiter.into_future().await),
                Some(deadline) => timer::within(deadline, waiter.into_future()).await,
            };
            let Some(outcome) = outcome else {
                self.defences().count_timeout();
                if let Some(e) = self.defences().timeout_error::<E>() {
                    return Loaded::Failed(e);
                }
                let init = init.take().expect("loader runs once");
                return self.own_load_async(init).await;
            };
            if let Some(done) = joined::<V, E>(outcome, accept_absent) {
                return done;
            }
        }
    }

    /// A timed-out caller's own loader future, outside any flight (see
    /// `own_load` for the blocking twin): in a load slot, counted, not
    /// stored.
    async fn own_load_async<E: Send + Sync + 'static>(
        &self,
        init: impl Future<Output = Result<Option<V>, E>>,
    ) -> Loaded<V, E> {
        let slot = load_slot_async(self.defences()).await;
        let start = Instant::now();
        let result = SlotMarked {
            held: slot.is_some(),
            inner: std::pin::pin!(init),
        }
        .await;
        let nanos = start.elapsed().as_nanos() as u64;
        drop(slot);
        self.detached_result(result, nanos)
    }
}

/// A load slot for an async loader (see `CacheBuilder::max_concurrent_loads`),
/// awaited in line with the threads; `None` without a limit, or when this
/// thread already holds one (a load started while a leader's loader future
/// is polled shares its slot).
async fn load_slot_async<K>(
    defences: &crate::defend::Defences<K>,
) -> Option<crate::sync::slots::SlotGuard<'_>> {
    let slots = defences.slots.as_ref()?;
    if holds_slot() {
        return None;
    }
    Some(slots.acquire_async().await)
}

/// Polls a loader future with this thread counted as holding a load slot
/// when `held` (see [`SlotMark`]).
struct SlotMarked<'a, F> {
    held: bool,
    inner: Pin<&'a mut F>,
}

impl<F: Future> Future for SlotMarked<'_, F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _mark = self.held.then(SlotMark::new);
        self.inner.as_mut().poll(cx)
    }
}

/// Runs `init` as the leader of `ticket`'s flight and completes it. If
/// this future is dropped first, the ticket abandons the flight.
async fn lead<K, V, S, E>(
    ticket: Ticket<K, V, S>,
    init: impl Future<Output = Result<Option<V>, E>>,
) -> Loaded<V, E>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    let slot = load_slot_async(ticket.cache().defences()).await;
    let timed = ticket.cache().defences().early_refresh.is_some();
    let clock_start = if timed { ticket.cache().clock_now() } else { 0 };
    let start = Instant::now();
    let result = SlotMarked {
        held: slot.is_some(),
        inner: std::pin::pin!(Marked {
            flight: ticket.flight().clone(),
            inner: Box::pin(init),
        }),
    }
    .await;
    let nanos = start.elapsed().as_nanos() as u64;
    drop(slot);
    if timed {
        let clock = ticket.cache().clock_now().saturating_sub(clock_start);
        ticket.cache().defences().note_load_time(nanos.max(clock));
    }
    ticket.finish(result, nanos)
}

/// Polls a loader future with its flight on the polling thread's recursion
/// list (see the module docs, "Recursion").
struct Marked<K, V, F> {
    flight: Arc<Flight<K, V>>,
    /// The loader future, boxed (so `Marked` is `Unpin`).
    inner: F,
}

impl<K, V, F: Future + Unpin> Future for Marked<K, V, F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        let _mark = LoadingMark::new(&this.flight);
        Pin::new(&mut this.inner).poll(cx)
    }
}

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
        S: BuildHasher,
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
        S: BuildHasher,
        F: Future<Output = Result<V, E>> + Send + 'static,
    {
        let refreshes = self.refresh.is_on() || self.defend.early_refresh.is_some();
        let refresher = refreshes.then(|| match self.spawner.take() {
            Some(spawn) => Refresher::Spawner(spawn),
            None => Refresher::Pool(Pool::new("larder-refresh", MAX_WORKERS, QUEUE_CAPACITY)),
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

/// One background reload: polls the loader with the flight marked, catches
/// a panic (counted as a failed refresh; the old value stays), completes.
async fn refresh<K, V, S, E>(ticket: Ticket<K, V, S>, load: BoxFuture<Result<V, E>>)
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    let start = Instant::now();
    let marked = Marked {
        flight: ticket.flight().clone(),
        inner: load,
    };
    match (CatchUnwind { inner: marked }).await {
        Ok(result) => {
            let nanos = start.elapsed().as_nanos() as u64;
            ticket.finish(result.map(Some), nanos);
        }
        Err(()) => {
            let (cache, hash) = (ticket.cache().clone(), ticket.flight().hash);
            drop(ticket); // abandons the flight: waiters load for themselves
            cache.count_failed_refresh(hash);
        }
    }
}

/// Resolves to `Err(())` instead of unwinding when the inner future panics.
struct CatchUnwind<F> {
    inner: F,
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
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
