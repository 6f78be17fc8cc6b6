//! The loads in progress in one shard, and what an invalidation does to
//! them.
//!
//! A load in flight is a [`Flight`]: the key, a *stale* flag and the
//! [`Rendezvous`] through which its outcome reaches the callers waiting for
//! it (threads or tasks). The shard keeps its flights in a
//! [`FlightTable`], under the shard's lock, so that every write or removal
//! of a key meets the key's flight in the same critical section: it marks
//! the flight stale (its value must not be stored) and takes it out of the
//! table (a caller that arrives later must not join it). The protocol that
//! registers, joins, completes and abandons flights is
//! `crate::load::flight`; this module is only the shard's side of it.

use std::any::Any;
use std::borrow::Borrow;
use std::fmt;

use hashbrown::HashTable;

use crate::sync::rendezvous::Rendezvous;
use crate::sync::{Arc, AtomicBool, Ordering};

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
    /// The loader panicked or was cancelled; waiters must try again.
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
    /// Where the outcome is published to the waiters.
    pub(crate) outcome: Rendezvous<Outcome<V>>,
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
            outcome: Rendezvous::new(),
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn waiters_see_the_outcome() {
        let flight: Arc<Flight<u32, u32>> = Flight::new(1, 1);
        let f2 = flight.clone();
        let t = std::thread::spawn(move || match f2.outcome.wait() {
            Outcome::Value(v) => v,
            _ => 0,
        });
        flight.outcome.publish(Outcome::Value(7));
        assert_eq!(t.join().unwrap(), 7);
        assert!(matches!(flight.outcome.wait(), Outcome::Value(7)));
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
}
