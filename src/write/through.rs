//! Write-through: the store first, then the cache, one key at a time.
//!
//! Writes to one key are serialised by a striped lock (a fixed array of
//! mutexes picked by the key's hash) held across the store call and the
//! cache update. Without it, two writers of one key can reach the store in
//! one order and the cache in the other, leaving the cache serving a value
//! the store has already replaced (the race the module docs describe for
//! write-around). Reads never take these locks.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};

use crate::cache::Cache;
use crate::sync::Mutex;
use crate::write::Store;

/// Lock stripes serialising writers of one key: 64 mutexes, so two
/// unrelated keys share a stripe with probability 1/64.
const STRIPES: usize = 64;

/// A write-through adapter: [`write`](Self::write) updates the store and
/// then the cache, so a value in the cache is always one the store
/// accepted.
///
/// Writes to one key are serialised (a striped lock held across the store
/// call), so the cache and the store see them in the same order. Writes to
/// different keys proceed in parallel, except for the 1 in 64 chance that
/// two keys share a stripe.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use larder::{Cache, Store, WriteThrough};
///
/// #[derive(Default)]
/// struct Db(Mutex<HashMap<u32, u64>>);
/// impl Store<u32, u64> for Db {
///     type Error = String;
///     fn write(&self, batch: &[(u32, u64)]) -> Result<(), String> {
///         self.0.lock().unwrap().extend(batch.iter().copied());
///         Ok(())
///     }
///     fn delete(&self, keys: &[u32]) -> Result<(), String> {
///         let mut db = self.0.lock().unwrap();
///         for k in keys {
///             db.remove(k);
///         }
///         Ok(())
///     }
/// }
///
/// let db = Arc::new(Db::default());
/// let cache: Cache<u32, u64> = Cache::new(1_000);
/// let wt = WriteThrough::new(cache.clone(), db.clone());
/// wt.write(1, 100).unwrap();
/// assert_eq!(db.0.lock().unwrap()[&1], 100); // in the store...
/// assert_eq!(cache.get(&1), Some(100)); //      ...and in the cache
/// wt.delete(&1).unwrap();
/// assert!(wt.get(&1).is_none() && db.0.lock().unwrap().is_empty());
/// ```
pub struct WriteThrough<K, V, T, S = ahash::RandomState> {
    cache: Cache<K, V, S>,
    store: T,
    stripes: Box<[Mutex<()>]>,
}

impl<K, V, T, S> fmt::Debug for WriteThrough<K, V, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteThrough")
            .field("cache", &self.cache)
            .finish_non_exhaustive()
    }
}

impl<K, V, T, S> WriteThrough<K, V, T, S>
where
    K: Hash + Eq,
    S: BuildHasher,
    T: Store<K, V>,
{
    /// An adapter writing to `store` and then to `cache` (pass a clone of
    /// your cache handle to keep reading it directly).
    pub fn new(cache: Cache<K, V, S>, store: T) -> Self {
        Self {
            cache,
            store,
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe<Q: Hash + ?Sized>(&self, key: &Q) -> &Mutex<()> {
        // The cache's hash, so the key is hashed with the cache's hasher;
        // the top bits, because the low ones pick hashbrown's buckets.
        let hash = self.cache.hash(key);
        &self.stripes[(hash >> 32) as usize % STRIPES]
    }

    /// Writes `value` for `key` to the store and, once the store accepted
    /// it, to the cache.
    ///
    /// # Errors
    ///
    /// Returns the store's error. The cache then holds *no* value for
    /// `key`, neither the new one nor the old one: the store may or may not
    /// have applied the write, so the old value can no longer be trusted,
    /// and a later miss reads the store's actual state.
    ///
    /// # Panics
    ///
    /// If the store panics, the key is removed from the cache (as for an
    /// error) and the panic is resumed.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::{Cache, Store, WriteThrough};
    ///
    /// struct Down;
    /// impl Store<u32, u32> for Down {
    ///     type Error = &'static str;
    ///     fn write(&self, _: &[(u32, u32)]) -> Result<(), Self::Error> { Err("down") }
    ///     fn delete(&self, _: &[u32]) -> Result<(), Self::Error> { Err("down") }
    /// }
    ///
    /// let cache: Cache<u32, u32> = Cache::new(10);
    /// cache.insert(1, 10); // loaded earlier
    /// let wt = WriteThrough::new(cache.clone(), Down);
    /// assert_eq!(wt.write(1, 11), Err("down"));
    /// assert_eq!(cache.get(&1), None); // neither 11 nor the stale 10
    /// ```
    pub fn write(&self, key: K, value: V) -> Result<(), T::Error> {
        let _serialise = self.stripe(&key).lock();
        let batch = [(key, value)];
        match panic::catch_unwind(AssertUnwindSafe(|| self.store.write(&batch))) {
            Ok(Ok(())) => {
                let [(key, value)] = batch;
                self.cache.insert(key, value);
                Ok(())
            }
            Ok(Err(e)) => {
                self.cache.remove(&batch[0].0);
                Err(e)
            }
            Err(payload) => {
                self.cache.remove(&batch[0].0);
                panic::resume_unwind(payload)
            }
        }
    }

    /// Deletes `key` from the store, then from the cache.
    ///
    /// # Errors
    ///
    /// Returns the store's error. The key is removed from the cache either
    /// way: after a failed delete the store's state is unknown, and a miss
    /// reads it.
    ///
    /// # Panics
    ///
    /// If the store panics, the key is removed from the cache and the
    /// panic is resumed.
    pub fn delete(&self, key: &K) -> Result<(), T::Error> {
        let _serialise = self.stripe(key).lock();
        let result = panic::catch_unwind(AssertUnwindSafe(|| {
            self.store.delete(std::slice::from_ref(key))
        }));
        self.cache.remove(key);
        result.unwrap_or_else(|payload| panic::resume_unwind(payload))
    }

    /// The value for `key`: the cache's ([`Cache::get`]), and on a miss the
    /// store's ([`Store::read`]), loaded through the cache's single flight
    /// ([`Cache::try_get_with`]) so that concurrent `get`s of one missing
    /// key make one store read, and filling the cache. A write or delete of
    /// the key that reaches the cache while the read runs wins over the
    /// value read, so the cache never goes back to a value the store has
    /// replaced.
    ///
    /// Once [`write`](Self::write) has returned `Ok`, `get` returns its
    /// value or a later one, even after the cache evicted it, provided the
    /// store implements [`Store::read`]. Over a store without `read` (the
    /// provided one returns `Ok(None)`) a miss reads as `None`, which says
    /// nothing about the store.
    ///
    /// A store error reads as `None` here; [`try_get`](Self::try_get)
    /// returns it. A panic in `read` propagates to this caller.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
        T::Error: Send + Sync + 'static,
    {
        self.try_get(key).ok().flatten()
    }

    /// Like [`get`](Self::get), but a failed [`Store::read`] is returned
    /// instead of reading as `None`.
    ///
    /// # Errors
    ///
    /// The store's error, shared with every caller that waited for the
    /// same read. Nothing is cached; the next call reads again.
    ///
    /// # Panics
    ///
    /// If `read` panics (the panic propagates), or asks this adapter for
    /// the key it is reading (a recursive load).
    pub fn try_get<Q>(&self, key: &Q) -> Result<Option<V>, std::sync::Arc<T::Error>>
    where
        K: Borrow<Q> + Clone,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        V: Clone,
        T::Error: Send + Sync + 'static,
    {
        // A write holds its stripe across the store call and the cache
        // update, and the update comes after the store accepted it: a read
        // that starts after the update hits; one that started before it is
        // made stale by it.
        super::read_through(&self.cache, key.to_owned(), |key| self.store.read(key))
    }

    /// The cache this adapter writes to.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.cache
    }

    /// The store this adapter writes to.
    pub fn store(&self) -> &T {
        &self.store
    }
}
