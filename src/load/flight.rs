//! The single-flight protocol: one load per missing key, however many
//! threads and tasks ask for it.
//!
//! Every loading verb, blocking or async, foreground or refresh, goes
//! through [`begin`], which decides under the key's shard lock what the
//! caller is:
//!
//! * [`Begin::Hit`]: the key has a live value (or, [`Begin::Absent`], a
//!   live negative mark).
//! * [`Begin::Join`]: someone is loading it; the caller gets a [`Waiter`]
//!   on that load's [`Flight`] and, after the lock is released, waits for
//!   its outcome by parking its thread ([`Waiter::wait`]) or as a future
//!   ([`Waiter::into_future`], feature `async`). Threads and tasks can
//!   wait on one flight together.
//! * [`Begin::Lead`]: nobody is; a new flight is registered and the caller
//!   holds its [`Ticket`]. The ticket owns what it needs (a handle to the
//!   cache and the flight), so it can move into a task or live across an
//!   `.await`. It ends in exactly one of two ways:
//!   - [`Ticket::complete`]: under the shard lock the flight is
//!     unregistered and, unless an invalidation made it stale meanwhile,
//!     the value is stored (or the negative mark set); then the outcome is
//!     published to the waiters.
//!   - dropped without completing (the loader panicked, the future running
//!     it was dropped, a refresh task was discarded): the flight is
//!     unregistered and [`Outcome::Abandoned`] published; every waiter
//!     wakes and calls [`begin`] again, and the first to get there leads
//!     the next load.
//!
//!   Completion runs user code (the weigher, `expire_after`, the key's
//!   `Eq`, the value's `Clone`); the ticket stays armed until the outcome
//!   is published, so a panic there abandons the flight instead of
//!   stranding its waiters.
//!
//! Invalidations (`insert`, `remove`, `invalidate_all`, `retain`) meet a
//! registered flight under the same shard lock (see `crate::shard`'s
//! `flights` module): the flight is marked stale, so it will not store, and
//! leaves the table, so that a caller arriving after the invalidation leads
//! a fresh load instead of joining one that read the data from before it.
//! The stale flight's own waiters still receive its value.
//!
//! # Recursion
//!
//! A loader that asks for the key it is loading would wait for itself.
//! While a thread runs a loader closure, or polls a loader future, the
//! flight is on that thread's list ([`LoadingMark`]); joining a flight on
//! the list panics with [`RECURSIVE_LOAD`] instead. For futures this sees
//! every request made while the loader future is being polled (including
//! anything it `.await`s directly); it cannot see a request made by
//! *another* task that the loader waits for (for example through a spawned
//! task's join handle): that one waits for the loader, which waits for it.

use std::cell::RefCell;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc as StdArc;
use std::time::Instant;

use crate::cache::Cache;
use crate::shard::{AnyError, Flight, Outcome, Removed, WriteTime};
use crate::sync::Arc;
use crate::time::expiry::idle_deadline;

/// Message of the panic raised when a loader asks for its own key.
pub(crate) const RECURSIVE_LOAD: &str =
    "larder: recursive load: a loader asked (on its own thread) for the key it is loading";

/// Why a loader runs: for a caller that missed, or to refresh a present
/// value in the background (counted separately in the stats).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LoadKind {
    Foreground,
    Refresh,
}

/// What the caller of [`begin`] is after.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Want {
    /// A value; `absent_ok`: a live negative mark answers [`Begin::Absent`]
    /// (otherwise it is counted and the key is loaded anyway).
    Load { absent_ok: bool },
    /// A background refresh of a present value: lead only if the entry is
    /// still there and nobody is loading the key, else [`Begin::Skip`].
    Refresh,
}

/// What [`begin`] found.
pub(crate) enum Begin<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// A live value.
    Hit(V),
    /// A live negative mark ([`Want::Load`] with `absent_ok`).
    Absent,
    /// A load of the key is in flight: wait for it.
    Join(Waiter<K, V>),
    /// This caller loads the key.
    Lead(Ticket<K, V, S>),
    /// Nothing to do ([`Want::Refresh`] only).
    Skip,
}

/// The one probe every loading verb starts with: under the shard's write
/// lock, a live value? a negative mark? a flight to join? else register a
/// flight and lead it.
pub(crate) fn begin<K, V, S>(
    cache: &Cache<K, V, S>,
    key: &K,
    hash: u64,
    want: Want,
) -> Begin<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    let shard = cache.shard(hash);
    let now = cache.write_now(shard);
    let mut core = shard.write();
    let live = core
        .find_live(hash, key)
        .filter(|&(i, _)| !core.is_expired(i, now));
    if want == Want::Refresh {
        if live.is_none() || core.flights.find(hash, key).is_some() {
            // Gone since the read (a removal wins: never brought back by a
            // refresh), or already being loaded (single flight).
            return Begin::Skip;
        }
    } else {
        if let Some((_, entry)) = live {
            return Begin::Hit(entry.value.clone());
        }
        if want == (Want::Load { absent_ok: true }) {
            // The key filter: a key it rules out does not exist anywhere,
            // so a verb that can say "absent" says so without a load. After
            // the hit check: a stored value wins over the filter.
            if let Some(filter) = &cache.defences().key_filter {
                if !filter.contains(key) {
                    cache.defences().count_filtered();
                    return Begin::Absent;
                }
            }
        }
        if core.negatives.contains(hash, key, now) {
            core.counters.negative_hits += 1;
            if want == (Want::Load { absent_ok: true }) {
                return Begin::Absent;
            }
        }
        if let Some(flight) = core.flights.find(hash, key) {
            return Begin::Join(Waiter {
                flight: flight.clone(),
            });
        }
    }
    let flight = Flight::new(key.clone(), hash);
    core.flights.register(flight.clone());
    drop(core);
    let kind = match want {
        Want::Refresh => LoadKind::Refresh,
        Want::Load { .. } => LoadKind::Foreground,
    };
    Begin::Lead(Ticket {
        cache: cache.clone(),
        flight: Some(flight),
        kind,
    })
}

/// The right and the duty to load one key (see the module docs).
pub(crate) struct Ticket<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    cache: Cache<K, V, S>,
    /// `None` once completed.
    flight: Option<Arc<Flight<K, V>>>,
    kind: LoadKind,
}

impl<K, V, S> Ticket<K, V, S>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
{
    /// The flight this ticket leads.
    pub(crate) fn flight(&self) -> &Arc<Flight<K, V>> {
        self.flight.as_ref().expect("an armed ticket")
    }

    /// A waiter on this ticket's own flight (for a caller that hands the
    /// ticket to another thread and waits for it).
    pub(crate) fn waiter(&self) -> Waiter<K, V> {
        Waiter {
            flight: self.flight().clone(),
        }
    }

    /// The cache this ticket loads into.
    pub(crate) fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// Runs a blocking loader as this flight's leader, with the flight on
    /// the thread's recursion list, and completes the flight.
    pub(crate) fn run<E: Send + Sync + 'static>(
        self,
        init: impl FnOnce() -> Result<Option<V>, E>,
    ) -> Loaded<V, E> {
        let mark = LoadingMark::new(self.flight());
        let slot = load_slot(self.cache.defences());
        let timed = self.cache.defences().early_refresh.is_some();
        let clock_start = if timed { self.cache.clock_now() } else { 0 };
        let start = Instant::now();
        let result = init();
        let nanos = start.elapsed().as_nanos() as u64;
        drop(slot);
        if timed {
            // Early refresh's delta: the longer of wall-clock and cache
            // time (a test's manual clock moved by the loader counts).
            let clock = self.cache.clock_now().saturating_sub(clock_start);
            self.cache.defences().note_load_time(nanos.max(clock));
        }
        drop(mark);
        self.finish(result, nanos)
    }

    /// Completes the flight with a loader's `result` (which took `nanos`).
    pub(crate) fn finish<E: Send + Sync + 'static>(
        self,
        result: Result<Option<V>, E>,
        nanos: u64,
    ) -> Loaded<V, E> {
        let (outcome, error) = match result {
            Ok(Some(v)) => (Outcome::Value(v), None),
            Ok(None) => (Outcome::Absent, None),
            Err(e) => {
                let e = StdArc::new(e);
                // The same allocation, type-erased: waiters downcast it back.
                let any: AnyError = e.clone();
                (Outcome::Failed(any), Some(e))
            }
        };
        match self.complete(outcome, nanos) {
            Outcome::Value(v) => Loaded::Value(v),
            Outcome::Absent => Loaded::Absent,
            Outcome::Failed(_) => Loaded::Failed(error.expect("error kept")),
            Outcome::Abandoned => unreachable!("completed loads are not abandoned"),
        }
    }

    /// Completes the flight: unregisters it, stores the value unless an
    /// invalidation made the flight stale (a refresh's value then replaces
    /// the old one), publishes the outcome to the waiters, and returns it.
    /// A failure stores nothing, so a failed refresh leaves the old value.
    pub(crate) fn complete(mut self, outcome: Outcome<V>, nanos: u64) -> Outcome<V> {
        // The ticket stays armed until the outcome is published: user code
        // runs on the way, and if it panics, `Drop` abandons the flight.
        let flight = self.flight().clone();
        let cache = &self.cache;
        let (hash, key) = (flight.hash, &flight.key);
        let shard = cache.shard(hash);
        let (weight, ttl) = match &outcome {
            Outcome::Value(v) => (cache.weigh(key, v), cache.entry_ttl(key, v)),
            _ => (0, None),
        };
        let stored = match &outcome {
            Outcome::Value(v) if !flight.is_stale() => Some((key.clone(), v.clone())),
            _ => None,
        };
        let absent_key = match &outcome {
            Outcome::Absent if cache.negative_ttl().is_some() => Some(key.clone()),
            _ => None,
        };
        let now = cache.write_now(shard);
        let mut removed = Removed::new();
        {
            let mut core = shard.write();
            core.flights.unregister(&flight);
            core.counters.loads += 1;
            core.counters.load_nanos += nanos;
            cache.defences().load_times.record_nanos(nanos);
            let failed = matches!(outcome, Outcome::Failed(_));
            core.counters.load_failures += u64::from(failed);
            if self.kind == LoadKind::Refresh {
                core.counters.refreshes += 1;
                core.counters.refresh_failures += u64::from(failed);
            }
            // Stale is set under this lock, so it is decided here.
            if !flight.is_stale() {
                if let Some((key, v)) = stored {
                    core.negatives.remove(hash, &key);
                    let write = WriteTime { now, ttl };
                    core.insert(hash, key, v, weight, write, &mut removed);
                } else if let (Some(key), Some(neg)) = (absent_key, cache.negative_ttl()) {
                    let limit = cache.negative_limit(core.capacity());
                    core.negatives
                        .insert(hash, key, idle_deadline(now, neg), limit);
                }
            }
        }
        flight.outcome.publish(outcome.clone());
        self.flight = None; // published: nothing left to abandon
        self.cache.notify(removed);
        outcome
    }
}

impl<K, V, S> Drop for Ticket<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    /// Abandons a flight that was not completed: its waiters wake and try
    /// again.
    fn drop(&mut self) {
        if let Some(flight) = self.flight.take() {
            self.cache
                .shard(flight.hash)
                .write()
                .flights
                .unregister(&flight);
            flight.outcome.publish(Outcome::Abandoned);
        }
    }
}

/// A caller waiting for someone else's load of a key.
pub(crate) struct Waiter<K, V> {
    flight: Arc<Flight<K, V>>,
}

impl<K, V: Clone> Waiter<K, V> {
    /// Parks this thread until the load ends.
    ///
    /// # Panics
    ///
    /// With [`RECURSIVE_LOAD`] if this thread is the flight's loader.
    #[cfg(test)]
    pub(crate) fn wait(self) -> Outcome<V> {
        if loading_on_this_thread(&self.flight) {
            panic!("{RECURSIVE_LOAD}");
        }
        self.flight.outcome.wait()
    }

    /// [`wait`](Self::wait), giving up at `deadline` (`None`: never):
    /// `None` if the load had not ended by then.
    ///
    /// # Panics
    ///
    /// As [`wait`](Self::wait).
    pub(crate) fn wait_until(self, deadline: Option<Instant>) -> Option<Outcome<V>> {
        if loading_on_this_thread(&self.flight) {
            panic!("{RECURSIVE_LOAD}");
        }
        self.flight.outcome.wait_until(deadline)
    }

    /// Waits for the load's end as a future (see [`WaitFuture`]).
    #[cfg(feature = "async")]
    pub(crate) fn into_future(self) -> WaitFuture<K, V> {
        WaitFuture {
            flight: self.flight,
            slot: crate::sync::rendezvous::WakerSlot::default(),
            checked: false,
        }
    }
}

/// A task waiting for a load: resolves to the outcome. Dropping it before
/// then takes its waker back; nothing else changes.
#[cfg(feature = "async")]
pub(crate) struct WaitFuture<K, V> {
    flight: Arc<Flight<K, V>>,
    slot: crate::sync::rendezvous::WakerSlot,
    /// The recursion check ran (on the first poll).
    checked: bool,
}

#[cfg(feature = "async")]
impl<K, V: Clone> std::future::Future for WaitFuture<K, V> {
    type Output = Outcome<V>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Outcome<V>> {
        // Every field is Unpin.
        let this = self.get_mut();
        if !this.checked {
            this.checked = true;
            if loading_on_this_thread(&this.flight) {
                panic!("{RECURSIVE_LOAD}");
            }
        }
        this.flight.outcome.poll_wait(cx, &mut this.slot)
    }
}

#[cfg(feature = "async")]
impl<K, V> Drop for WaitFuture<K, V> {
    fn drop(&mut self) {
        self.flight.outcome.forget(&mut self.slot);
    }
}

/// What a load gave one caller.
pub(crate) enum Loaded<V, E> {
    Value(V),
    Absent,
    Failed(StdArc<E>),
}

#[cfg(not(loom))]
std::thread_local! {
    /// The flights this thread is loading (by address), innermost last.
    static LOADING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    /// The flights this loom thread is loading (by address), innermost last.
    static LOADING: RefCell<Vec<usize>> = RefCell::new(Vec::new());
}

#[cfg(not(loom))]
std::thread_local! {
    /// Load slots this thread holds (0 or 1: nested loads share the
    /// outermost one).
    static SLOTS_HELD: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

#[cfg(loom)]
loom::thread_local! {
    /// Load slots this loom thread holds.
    static SLOTS_HELD: std::cell::Cell<usize> = std::cell::Cell::new(0);
}

/// A loader-call slot held by this thread (see
/// `CacheBuilder::max_concurrent_loads`), or nothing when there is no limit.
pub(crate) struct HeldSlot<'a> {
    guard: Option<crate::sync::slots::SlotGuard<'a>>,
}

impl Drop for HeldSlot<'_> {
    fn drop(&mut self) {
        if self.guard.take().is_some() {
            let _ = SLOTS_HELD.try_with(|n| n.set(n.get() - 1));
        }
    }
}

/// Takes a loader-call slot, waiting in line for one, unless the cache has
/// no limit or this thread already holds one: a loader that loads other
/// keys runs them under its own slot, so recursion cannot deadlock on the
/// limit (the slot then stands for the whole nested load).
pub(crate) fn load_slot<K>(defences: &crate::defend::Defences<K>) -> HeldSlot<'_> {
    let Some(slots) = &defences.slots else {
        return HeldSlot { guard: None };
    };
    if holds_slot() {
        return HeldSlot { guard: None };
    }
    let guard = slots.acquire(None).expect("no deadline");
    SLOTS_HELD.with(|n| n.set(n.get() + 1));
    HeldSlot { guard: Some(guard) }
}

/// True if this thread holds a load slot now (a blocking loader running in
/// one, or a loader future being polled in one): a load it starts shares it.
pub(crate) fn holds_slot() -> bool {
    SLOTS_HELD.with(|n| n.get()) > 0
}

#[cfg(feature = "async")]
/// Counts a slot as held by this thread until dropped: an async leader
/// holding a slot marks each poll of its loader future with it, so loads
/// started during the poll share the slot as a blocking loader's do.
pub(crate) struct SlotMark(());

#[cfg(feature = "async")]
impl SlotMark {
    pub(crate) fn new() -> Self {
        SLOTS_HELD.with(|n| n.set(n.get() + 1));
        SlotMark(())
    }
}

#[cfg(feature = "async")]
impl Drop for SlotMark {
    fn drop(&mut self) {
        let _ = SLOTS_HELD.try_with(|n| n.set(n.get() - 1));
    }
}

/// True if this thread is running a loader (of any key) now.
pub(crate) fn loading_any() -> bool {
    LOADING.with(|l| !l.borrow().is_empty())
}

/// True if this thread is the loader of `flight`.
fn loading_on_this_thread<K, V>(flight: &Arc<Flight<K, V>>) -> bool {
    let addr = Arc::as_ptr(flight) as *const () as usize;
    LOADING.with(|l| l.borrow().contains(&addr))
}

/// Marks this thread as the loader of `flight` until the guard drops.
pub(crate) struct LoadingMark {
    addr: usize,
}

impl LoadingMark {
    pub(crate) fn new<K, V>(flight: &Arc<Flight<K, V>>) -> Self {
        let addr = Arc::as_ptr(flight) as *const () as usize;
        LOADING.with(|l| l.borrow_mut().push(addr));
        Self { addr }
    }
}

impl Drop for LoadingMark {
    fn drop(&mut self) {
        let addr = self.addr;
        // Ignore a thread-local already torn down (thread exit).
        let _ = LOADING.try_with(|l| {
            let mut l = l.borrow_mut();
            if let Some(pos) = l.iter().rposition(|&a| a == addr) {
                l.remove(pos);
            }
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn loading_marks_nest() {
        let a: Arc<Flight<u32, u32>> = Flight::new(1, 1);
        let b: Arc<Flight<u32, u32>> = Flight::new(2, 2);
        let ma = LoadingMark::new(&a);
        {
            let _mb = LoadingMark::new(&b);
            assert!(loading_on_this_thread(&a) && loading_on_this_thread(&b));
        }
        assert!(!loading_on_this_thread(&b));
        drop(ma);
        assert!(!loading_on_this_thread(&a));
    }

    #[test]
    fn begin_leads_joins_and_hits() {
        let cache: Cache<u32, u32> = Cache::new(10);
        let hash = cache.hash(&1);
        let want = Want::Load { absent_ok: false };
        let Begin::Lead(ticket) = begin(&cache, &1, hash, want) else {
            panic!("nobody loads 1: lead");
        };
        let Begin::Join(waiter) = begin(&cache, &1, hash, want) else {
            panic!("1 is in flight: join");
        };
        assert!(matches!(
            begin(&cache, &1, hash, Want::Refresh),
            Begin::Skip
        ));
        assert!(matches!(
            ticket.complete(Outcome::Value(5), 0),
            Outcome::Value(5)
        ));
        assert!(matches!(waiter.wait(), Outcome::Value(5)));
        assert!(matches!(begin(&cache, &1, hash, want), Begin::Hit(5)));
    }

    #[test]
    fn a_dropped_ticket_abandons_its_flight() {
        let cache: Cache<u32, u32> = Cache::new(10);
        let hash = cache.hash(&1);
        let want = Want::Load { absent_ok: false };
        let Begin::Lead(ticket) = begin(&cache, &1, hash, want) else {
            panic!("lead");
        };
        let Begin::Join(waiter) = begin(&cache, &1, hash, want) else {
            panic!("join");
        };
        drop(ticket);
        assert!(matches!(waiter.wait(), Outcome::Abandoned));
        assert!(matches!(begin(&cache, &1, hash, want), Begin::Lead(_)));
    }
}
