//! Single-flight: one load per missing key, however many callers wait.
//!
//! A load is a [`Flight`]: a placeholder that lives in its shard's
//! [`FlightTable`] (under the shard's write lock) from the moment a caller
//! decides to load a key until the load completes. The protocol:
//!
//! 1. Under the shard's write lock a caller that misses looks for a flight
//!    for the key. If there is one it takes a handle and, after releasing
//!    the lock, **waits** on the flight's condition variable (parks; no
//!    spinning). Otherwise it registers a new flight and becomes the
//!    **loader**.
//! 2. The loader runs the user's loader closure with no lock held, so loads
//!    of different keys, even in one shard, run in parallel.
//! 3. Completion: under the shard's write lock the loader removes its flight
//!    from the table and, if the flight is not **stale**, stores the value.
//!    Then it publishes the outcome in the flight and wakes every waiter.
//! 4. Any invalidation (`insert`, `remove`, `invalidate_all`, `retain`) that
//!    meets a registered flight marks it stale and takes it out of the
//!    table, under the same lock. A stale load still hands its value to the
//!    callers that waited for it, but it never overwrites what the
//!    invalidation left, and a caller that arrives after the invalidation
//!    does not join it (it starts a fresh load): this closes the
//!    cache-aside race (read old value, writer updates the store and
//!    invalidates, reader stores or hands out the old value).
//! 5. A loader that panics drops a guard that removes the flight and
//!    publishes [`Outcome::Abandoned`]: waiters wake up and try again (one of
//!    them becomes the next loader); the panic continues on the loader's own
//!    thread. Nothing is poisoned.
//! 6. A loader that asks, on its own thread, for the key it is loading would
//!    wait for itself forever. Each thread keeps the list of flights it is
//!    loading; finding one of them as the flight to wait on is reported as a
//!    panic with a clear message instead.

use std::any::Any;
use std::borrow::Borrow;
use std::cell::RefCell;
use std::fmt;

use hashbrown::HashTable;

use crate::sync::{Arc, AtomicBool, Condvar, Mutex, Ordering};

/// A shared load error, type-erased so that callers with different error
/// types can share one flight (each downcasts to its own type). A std `Arc`
/// even under loom: the error is immutable, and loom's `Arc` can neither
/// hold an unsized value nor downcast.
pub(crate) type AnyError = std::sync::Arc<dyn Any + Send + Sync>;

/// How a load ended.
pub(crate) enum Outcome<V> {
    /// The loader produced a value.
    Value(V),
    /// The loader said the key does not exist.
    Absent,
    /// The loader failed with this error.
    Failed(AnyError),
    /// The loader panicked (or was cancelled); waiters must try again.
    Abandoned,
}

impl<V: Clone> Clone for Outcome<V> {
    fn clone(&self) -> Self {
        match self {
            Outcome::Value(v) => Outcome::Value(v.clone()),
            Outcome::Absent => Outcome::Absent,
            Outcome::Failed(e) => Outcome::Failed(e.clone()),
            Outcome::Abandoned => Outcome::Abandoned,
        }
    }
}

/// One load in progress.
pub(crate) struct Flight<K, V> {
    pub(crate) key: K,
    pub(crate) hash: u64,
    /// Set (under the shard lock) when an invalidation met this flight.
    stale: AtomicBool,
    outcome: Mutex<Option<Outcome<V>>>,
    done: Condvar,
}

impl<K, V> fmt::Debug for Flight<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Flight")
            .field("hash", &self.hash)
            .field("stale", &self.is_stale())
            .finish_non_exhaustive()
    }
}

impl<K, V> Flight<K, V> {
    pub(crate) fn new(key: K, hash: u64) -> Arc<Self> {
        Arc::new(Self {
            key,
            hash,
            stale: AtomicBool::new(false),
            outcome: Mutex::new(None),
            done: Condvar::new(),
        })
    }

    /// True once an invalidation met this flight: its value must not be
    /// stored.
    pub(crate) fn is_stale(&self) -> bool {
        self.stale.load(Ordering::Acquire)
    }

    fn mark_stale(&self) {
        self.stale.store(true, Ordering::Release);
    }

    /// Publishes the outcome and wakes every waiter.
    pub(crate) fn finish(&self, outcome: Outcome<V>) {
        let mut slot = self.outcome.lock();
        *slot = Some(outcome);
        drop(slot);
        self.done.notify_all();
    }

    /// Blocks until the flight has finished, then returns its outcome.
    pub(crate) fn wait(&self) -> Outcome<V>
    where
        V: Clone,
    {
        let mut slot = self.outcome.lock();
        loop {
            if let Some(outcome) = slot.as_ref() {
                return outcome.clone();
            }
            self.done.wait(&mut slot);
        }
    }
}

/// The flights registered in one shard, found by key.
pub(crate) struct FlightTable<K, V> {
    table: HashTable<Arc<Flight<K, V>>>,
}

impl<K, V> Default for FlightTable<K, V> {
    fn default() -> Self {
        Self {
            table: HashTable::new(),
        }
    }
}

impl<K, V> FlightTable<K, V> {
    /// The flight for `key`, if one is registered.
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<&Arc<Flight<K, V>>>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.table.is_empty() {
            return None;
        }
        self.table.find(hash, |f| f.key.borrow() == key)
    }

    /// Registers `flight` (there must be none for its key).
    pub(crate) fn register(&mut self, flight: Arc<Flight<K, V>>) {
        self.table.insert_unique(flight.hash, flight, |f| f.hash);
    }

    /// Removes `flight` if it is still the registered one.
    pub(crate) fn unregister(&mut self, flight: &Arc<Flight<K, V>>) {
        if let Ok(entry) = self
            .table
            .find_entry(flight.hash, |f| Arc::ptr_eq(f, flight))
        {
            entry.remove();
        }
    }

    /// An invalidation of `key`: its flight, if any, must not store, and
    /// it leaves the table, so that a caller arriving after the
    /// invalidation starts a fresh load instead of joining one that may have
    /// read the data from before it. The flight's own waiters still get its
    /// value.
    #[inline]
    pub(crate) fn invalidate<Q>(&mut self, hash: u64, key: &Q)
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.table.is_empty() {
            return;
        }
        if let Ok(entry) = self.table.find_entry(hash, |f| f.key.borrow() == key) {
            entry.get().mark_stale();
            entry.remove();
        }
    }

    /// An invalidation of every key (`invalidate_all`, `retain`).
    pub(crate) fn invalidate_all(&mut self) {
        for flight in self.table.drain() {
            flight.mark_stale();
        }
    }
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

/// True if this thread is the loader of `flight`.
pub(crate) fn loading_on_this_thread<K, V>(flight: &Arc<Flight<K, V>>) -> bool {
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
    fn waiters_see_the_outcome() {
        let flight: Arc<Flight<u32, u32>> = Flight::new(1, 1);
        let f2 = flight.clone();
        let t = std::thread::spawn(move || match f2.wait() {
            Outcome::Value(v) => v,
            _ => 0,
        });
        flight.finish(Outcome::Value(7));
        assert_eq!(t.join().unwrap(), 7);
        assert!(matches!(flight.wait(), Outcome::Value(7)));
    }

    #[test]
    fn table_registers_invalidates_and_unregisters() {
        let mut table: FlightTable<u32, u32> = FlightTable::default();
        let a = Flight::new(1, 10);
        let b = Flight::new(2, 10); // same hash, different key
        table.register(a.clone());
        table.register(b.clone());
        assert!(Arc::ptr_eq(table.find(10, &2).unwrap(), &b));
        table.invalidate(10, &1);
        assert!(a.is_stale() && !b.is_stale());
        assert!(
            table.find(10, &1).is_none(),
            "a stale flight leaves the table"
        );
        // A new flight for the key is not unregistered by the stale one.
        let a2 = Flight::new(1, 10);
        table.register(a2.clone());
        table.unregister(&a);
        assert!(Arc::ptr_eq(table.find(10, &1).unwrap(), &a2));
        table.invalidate_all();
        assert!(b.is_stale() && a2.is_stale());
        assert!(table.find(10, &2).is_none() && table.find(10, &1).is_none());
    }

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
}
