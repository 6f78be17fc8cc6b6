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
//! # Defences
//!
//! The backend defences of the blocking verbs hold here too: a joined
//! flight is awaited at most `load_timeout` (a small timer thread,
//! `crate::sync::timer`, wakes the task; no runtime assumed), a leader's
//! loader future awaits its place in `max_concurrent_loads`' line (the
//! line threads stand in) and holds the slot while it runs, and early
//! refresh and stale-if-error judge every hit and reload it with the
//! caller's future. [`AsyncLoadingCache`] (in `async_read_through`)
//! reloads on its refresher instead.
//!
//! [`LoadingCache`]: crate::LoadingCache
//! [`AsyncLoadingCache`]: crate::AsyncLoadingCache

use std::convert::Infallible;
use std::future::Future;
use std::hash::{BuildHasher, Hash};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::cache::Cache;
use crate::defend::Verdict;
use crate::shard::Flight;
use crate::sync::{timer, Arc};

use super::flight::{begin, holds_slot, Begin, Loaded, LoadingMark, SlotMark, Ticket, Want};
use super::joined;

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
                    let defences = self.defences();
                    if let (Some(deadline), true) =
                        (self.load_deadline(), defences.has_timeout_error::<E>())
                    {
                        // A `try_` verb with a timeout error: the leader
                        // gives up too, dropping its loader future (which
                        // abandons the flight, as any cancellation does).
                        return match timer::within(deadline, lead(ticket, init)).await {
                            Some(done) => done,
                            None => {
                                defences.count_timeout();
                                let e = defences.timeout_error::<E>().expect("checked");
                                Loaded::Failed(e)
                            }
                        };
                    }
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
pub(super) async fn lead<K, V, S, E>(
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

/// Resolves to `Err(())` instead of unwinding when the inner future panics.
pub(super) struct CatchUnwind<F> {
    pub(super) inner: F,
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
