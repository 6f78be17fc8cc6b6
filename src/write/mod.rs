//! Write paths: keeping a [`Cache`](crate::Cache) and a backing store in step.
//!
//! A cache in front of a database answers reads; something still has to
//! decide what happens on a write. This module gives the three patterns
//! people use, over one trait, [`Store`], that the user implements for
//! their database table or remote service.
//!
//! | pattern | write latency | store calls | who sees a write, when |
//! |---|---|---|---|
//! | [write-through](WriteThrough) | one store round trip | one per write | everyone, once `write` returns |
//! | [write-behind](WriteBehind) | a queue push | one per batch | the adapter's readers at once; the store within `max_delay` or on [`flush`](WriteBehind::flush) |
//! | write-around (no adapter) | one store round trip | one per write | the store at once; the cache reloads on the next miss |
//!
//! # Write-through
//!
//! [`WriteThrough::write`] writes to the store first and only then to the
//! cache, so the cache never holds a value the store refused. If the store
//! fails (or panics), the key is *removed* from the cache as well: the
//! store may or may not have applied the write (a time-out after commit
//! looks the same as a refusal), so the old cached value can no longer be
//! trusted, and a miss that goes to the store is always correct. Writes to
//! one key are serialised (see [`WriteThrough`]) so that two concurrent
//! writers cannot leave the cache and the store disagreeing.
//!
//! # Write-behind
//!
//! [`WriteBehind::write`] acknowledges a write as soon as it is queued; a
//! background flusher thread writes queued operations to the store in
//! batches, when `batch_size` of them are waiting, when the oldest has
//! waited `max_delay`, on [`flush`](WriteBehind::flush), and on close or
//! drop. Several writes to one key before it is flushed reach the store as
//! one (the last value wins; a delete after a write is a delete), which is
//! what turns a hot counter's thousands of increments into a handful of
//! store calls. The guarantees, and what they cost, are listed on
//! [`WriteBehind`].
//!
//! ## Design
//!
//! The write-behind state is one mutex-protected structure (the shape the
//! design notes suggest, after Caffeine's and Ehcache's write-behind
//! queues):
//!
//! - a map from key to its *pending* operation (the last write or delete
//!   not yet in the store). It lives in the adapter, not in the cache, so
//!   eviction cannot lose an acknowledged write and reads of pending keys
//!   never miss;
//! - a FIFO of keys in the order they became pending, each tagged with the
//!   sequence number of the operation that made it pending. Every
//!   acknowledged operation takes the next sequence number, so the FIFO is
//!   sorted by it;
//! - one flusher thread that takes batches from the front of the FIFO, one
//!   batch at a time, and writes them outside the lock.
//!
//! Because batches leave from the front of a sorted FIFO and only one is in
//! flight, "every operation up to sequence number *n* is done" is a single
//! comparison: *n* is below both the in-flight batch's first sequence
//! number and the FIFO's front. [`flush`](WriteBehind::flush) reads the
//! latest sequence number when it is called and waits until that
//! watermark passes it: it waits for exactly the operations acknowledged
//! before the call, not for writes that keep arriving after it.
//!
//! A key that is written again while its previous value is in flight stays
//! in the map (marked in flight) and is queued again; when the flight
//! lands, the entry is removed only if nothing newer arrived. This keeps
//! per-key order (the newer value is never sent before the older one has
//! landed) without ever blocking the writer.
//!
//! # Write-around
//!
//! Write-around needs no adapter: write to the store, then *remove* the key
//! from the cache, and let the next read load the new value.
//!
//! ```
//! use larder::Cache;
//! # use std::collections::HashMap;
//! # use std::sync::Mutex;
//! # let db: Mutex<HashMap<u32, String>> = Mutex::default();
//! let cache: Cache<u32, String> = Cache::new(1_000);
//!
//! // The write: the store first, then invalidate.
//! db.lock().unwrap().insert(7, "new".to_string());
//! cache.remove(&7);
//!
//! // The next read misses and loads the stored value.
//! let value = cache.get(&7).unwrap_or_else(|| {
//!     let v = db.lock().unwrap()[&7].clone();
//!     cache.insert(7, v.clone());
//!     v
//! });
//! assert_eq!(value, "new");
//! ```
//!
//! Why delete rather than update the cache with the value just written? Two
//! writers A and B updating the same key can reach the store in one order
//! (A then B, so the store holds B's value) and the cache in the other (B
//! then A): the cache now holds A's value and keeps serving it until it is
//! evicted, with nothing to correct it. Two deletes cannot be misordered
//! (both leave the key absent), so whichever order they land in, the next
//! read loads what the store holds. The remaining window (a reader that
//! loaded the old value *before* the write and inserts it *after* the
//! delete) is closed by a loader that checks for invalidation before
//! inserting, as single-flight loading does.

mod behind;
mod through;

pub use behind::{
    FlushError, Full, Op, StoreError, WriteBehind, WriteBehindBuilder, WriteBehindStats,
};
pub use through::WriteThrough;

use std::hash::{BuildHasher, Hash};
use std::sync::Arc as StdArc;

use crate::cache::Cache;

/// A backing store: the system of record behind a cache.
///
/// Implement it for a database table, a remote service, a file. `write`
/// and `delete` take a batch; a store that cannot do better may loop over
/// it. `read` is optional (provided), and what the adapters answer on a
/// miss without it is said there.
/// `write` is an upsert: every key in `batch` ends up with its value,
/// whether it existed or not. `delete` removes every key in `keys`, and
/// deleting an absent key is not an error.
///
/// The adapters call these methods outside every lock, so a slow store
/// never blocks the cache's readers. [`WriteBehind`] calls them from its
/// flusher thread, one call at a time, and never puts a key twice in one
/// batch.
///
/// # Errors
///
/// An error means the batch may or may not have been applied. The
/// adapters react accordingly: [`WriteThrough`] removes the key from the
/// cache and returns the error; [`WriteBehind`] retries the whole batch
/// (so `write` and `delete` should be idempotent, as upserts and deletes
/// are) and, after its last retry, hands the batch to its failure
/// callback.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use larder::Store;
///
/// #[derive(Default)]
/// struct MemStore(Mutex<HashMap<u32, String>>);
///
/// impl Store<u32, String> for MemStore {
///     type Error = std::convert::Infallible;
///     fn write(&self, batch: &[(u32, String)]) -> Result<(), Self::Error> {
///         let mut map = self.0.lock().unwrap();
///         for (k, v) in batch {
///             map.insert(*k, v.clone());
///         }
///         Ok(())
///     }
///     fn delete(&self, keys: &[u32]) -> Result<(), Self::Error> {
///         let mut map = self.0.lock().unwrap();
///         for k in keys {
///             map.remove(k);
///         }
///         Ok(())
///     }
/// }
///
/// let store = MemStore::default();
/// store.write(&[(1, "one".to_string())]).unwrap();
/// store.delete(&[1, 2]).unwrap();
/// assert!(store.0.lock().unwrap().is_empty());
/// ```
pub trait Store<K, V> {
    /// What a failed call reports.
    type Error;

    /// Writes (inserts or replaces) every pair in `batch`.
    ///
    /// # Errors
    ///
    /// Whatever the store reports; the batch may have been partly applied.
    fn write(&self, batch: &[(K, V)]) -> Result<(), Self::Error>;

    /// Deletes every key in `keys`; an absent key is not an error.
    ///
    /// # Errors
    ///
    /// Whatever the store reports; the batch may have been partly applied.
    fn delete(&self, keys: &[K]) -> Result<(), Self::Error>;

    /// Reads the stored value for `key`: `Ok(None)` if the store has none.
    ///
    /// The adapters call it when [`WriteBehind::get`] or
    /// [`WriteThrough::get`] finds the key neither pending nor cached, as a
    /// single-flight load that fills the cache (see [`WriteBehind::get`]).
    /// It must see every `write` and `delete` that has returned `Ok`
    /// (read-after-write consistency), and must not call back into the
    /// adapter for the same key (that load would wait for itself: it
    /// panics instead).
    ///
    /// The provided implementation reads nothing and returns `Ok(None)`:
    /// an adapter over a store that does not implement `read` answers a
    /// key that is neither pending nor cached with `None`, which then says
    /// nothing about the store (a write that has landed and been evicted
    /// reads as `None`). Implement it to get read-your-writes in every
    /// case.
    ///
    /// # Errors
    ///
    /// Whatever the store reports; the adapters hand it to the caller of
    /// `try_get` (shared, as an `Arc`, with every caller waiting for the
    /// same read) and cache nothing.
    fn read(&self, key: &K) -> Result<Option<V>, Self::Error> {
        let _ = key;
        Ok(None)
    }
}

/// Why a read-through of a missing key produced no value: the loader's
/// error type inside the cache's single flight.
enum Miss<E> {
    /// Pending delete, or the store has no value.
    Absent,
    /// The store failed.
    Store(StdArc<E>),
}

/// Loads `key` through `cache`'s single flight with `read`, caching what
/// it finds. An `insert` or `remove` of the key while `read` runs wins
/// over the value it returns (the cache's invalidation rule), so a write
/// acknowledged during the read is never overwritten by it.
fn read_through<K, V, S, E>(
    cache: &Cache<K, V, S>,
    key: K,
    read: impl FnOnce(&K) -> Result<Option<V>, E>,
) -> Result<Option<V>, StdArc<E>>
where
    K: Hash + Eq + Clone,
    V: Clone,
    S: BuildHasher,
    E: Send + Sync + 'static,
{
    let k = key.clone();
    match cache.try_get_with(key, move || match read(&k) {
        Ok(Some(v)) => Ok(v),
        Ok(None) => Err(Miss::Absent),
        Err(e) => Err(Miss::Store(StdArc::new(e))),
    }) {
        Ok(v) => Ok(Some(v)),
        Err(miss) => match &*miss {
            Miss::Absent => Ok(None),
            Miss::Store(e) => Err(e.clone()),
        },
    }
}

/// A shared store is a store: keep one handle to inspect it while an
/// adapter owns the other.
impl<K, V, T: Store<K, V> + ?Sized> Store<K, V> for std::sync::Arc<T> {
    type Error = T::Error;
    fn write(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        (**self).write(batch)
    }
    fn delete(&self, keys: &[K]) -> Result<(), Self::Error> {
        (**self).delete(keys)
    }
    fn read(&self, key: &K) -> Result<Option<V>, Self::Error> {
        (**self).read(key)
    }
}

/// A boxed store is a store (for `Box<dyn Store<K, V, Error = E> + Send + Sync>`).
impl<K, V, T: Store<K, V> + ?Sized> Store<K, V> for Box<T> {
    type Error = T::Error;
    fn write(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        (**self).write(batch)
    }
    fn delete(&self, keys: &[K]) -> Result<(), Self::Error> {
        (**self).delete(keys)
    }
    fn read(&self, key: &K) -> Result<Option<V>, Self::Error> {
        (**self).read(key)
    }
}

/// A borrowed store is a store (for [`WriteThrough`] over a store that
/// outlives it).
impl<K, V, T: Store<K, V> + ?Sized> Store<K, V> for &T {
    type Error = T::Error;
    fn write(&self, batch: &[(K, V)]) -> Result<(), Self::Error> {
        (**self).write(batch)
    }
    fn delete(&self, keys: &[K]) -> Result<(), Self::Error> {
        (**self).delete(keys)
    }
    fn read(&self, key: &K) -> Result<Option<V>, Self::Error> {
        (**self).read(key)
    }
}
