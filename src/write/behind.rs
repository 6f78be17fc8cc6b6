//! Write-behind: acknowledge writes at once, store them later in batches.
//!
//! The state is one mutex-guarded [`State`]: a map of pending operations
//! by key, and a FIFO of the keys that are waiting to be sent, sorted by
//! the sequence number of the operation that made them wait. One flusher
//! thread takes batches from the FIFO's front and calls the store outside
//! the lock. The module docs of `write` give the design; the invariants
//! the code keeps are:
//!
//! 1. A key is in `pending` exactly when it is queued, in flight, or both.
//!    `Pending::queued` says whether it is in the FIFO (at most once).
//! 2. The FIFO is sorted by `since`, because keys are pushed with the
//!    sequence number just taken, under the lock.
//! 3. At most one batch is in flight, and it was the FIFO's front: every
//!    `since` still in the FIFO is above `in_flight_since`. So
//!    [`State::done_through`] (every operation up to it is stored or has
//!    failed) is a min of two numbers, and batches fail in `since` order.
//! 4. A flight lands by comparing sequence numbers: the entry is removed
//!    only if its operation is still the one that was sent.
//!
//! Lock order: the adapter's state lock, then a cache shard lock (the
//! cache is updated under the state lock, so the cache and the pending map
//! change together and concurrent writers of a key cannot leave the cache
//! holding the older value). The store and the failure callback are called
//! with no lock held.

use std::borrow::Borrow;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::panic::{self, AssertUnwindSafe};
use std::time::Duration;

use hashbrown::HashMap;

use crate::cache::Cache;
use crate::sync::thread::{self, JoinHandle, ThreadId};
use crate::sync::{Arc, Condvar, Mutex, MutexGuard};
use crate::write::Store;

/// Operations per batch when [`WriteBehindBuilder::batch_size`] is not
/// called.
const DEFAULT_BATCH_SIZE: usize = 500;

/// Longest an operation waits for a batch to fill when
/// [`WriteBehindBuilder::max_delay`] is not called: 50 ms.
const DEFAULT_MAX_DELAY: Duration = Duration::from_millis(50);

/// Pending keys before writers block when
/// [`WriteBehindBuilder::queue_capacity`] is not called.
const DEFAULT_QUEUE_CAPACITY: usize = 100_000;

/// Retries of a failed store call when [`WriteBehindBuilder::max_retries`]
/// is not called (four attempts in all).
const DEFAULT_MAX_RETRIES: u32 = 3;

/// Wait before the first retry when [`WriteBehindBuilder::backoff`] is not
/// called: 10 ms, then 20 ms and 40 ms (70 ms in all with the default
/// three retries).
const DEFAULT_BACKOFF: Duration = Duration::from_millis(10);

/// Longest wait between two retries, however many there are: 1 s.
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One operation for the store, as handed to the failure callback.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op<K, V> {
    /// Write (upsert) `value` for `key`.
    Write(K, V),
    /// Delete `key`.
    Delete(K),
}

impl<K, V> Op<K, V> {
    /// The key the operation is for.
    pub fn key(&self) -> &K {
        match self {
            Op::Write(key, _) | Op::Delete(key) => key,
        }
    }

    /// The value written, or `None` for a delete.
    pub fn value(&self) -> Option<&V> {
        match self {
            Op::Write(_, value) => Some(value),
            Op::Delete(_) => None,
        }
    }
}

/// Why a store call failed, as handed to the failure callback.
#[derive(Debug)]
pub enum StoreError<E> {
    /// The store returned this error.
    Store(E),
    /// The store panicked with this message (the panic was caught; the
    /// flusher carries on).
    Panicked(String),
}

impl<E: fmt::Display> fmt::Display for StoreError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Store(e) => write!(f, "store error: {e}"),
            StoreError::Panicked(msg) => write!(f, "store panicked: {msg}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for StoreError<E> {}

/// What [`WriteBehind::flush`] and [`WriteBehind::close`] report when some
/// acknowledged operations did not reach the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlushError {
    /// This many operations acknowledged before the call failed every
    /// retry and were handed to the failure callback instead of being
    /// stored (not counting any an earlier flush already reported).
    Failed {
        /// How many operations (one per key) failed.
        ops: u64,
    },
    /// The flusher thread has stopped, so pending operations will not be
    /// stored. It only stops if a key's or value's `Clone`, `Hash` or `Eq`
    /// panics on it (store and callback panics are caught).
    Stopped,
}

impl fmt::Display for FlushError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlushError::Failed { ops } => {
                write!(
                    f,
                    "{ops} write-behind operation(s) failed to reach the store"
                )
            }
            FlushError::Stopped => f.write_str("the write-behind flusher thread has stopped"),
        }
    }
}

impl std::error::Error for FlushError {}

/// [`WriteBehind::try_write`] found the queue full; the key and value are
/// handed back.
#[derive(Clone, PartialEq, Eq)]
pub struct Full<K, V> {
    key: K,
    value: V,
}

impl<K, V> Full<K, V> {
    /// The key and value that were not queued.
    pub fn into_inner(self) -> (K, V) {
        (self.key, self.value)
    }
}

impl<K, V> fmt::Debug for Full<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Full(..)")
    }
}

impl<K, V> fmt::Display for Full<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the write-behind queue is full")
    }
}

impl<K, V> std::error::Error for Full<K, V> {}

/// A snapshot of a [`WriteBehind`]'s counters since it was built.
///
/// Operations are counted when they are acknowledged; store calls,
/// retries, `persisted` and `failures` when the batch they belong to has
/// finished (so during a long retry they lag behind).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WriteBehindStats {
    /// Writes acknowledged (`write` and successful `try_write` calls).
    pub writes: u64,
    /// Deletes acknowledged.
    pub deletes: u64,
    /// Operations that replaced a pending operation on the same key
    /// before it was sent, so that the replaced one never reached the
    /// store.
    pub coalesced: u64,
    /// Batches taken from the queue.
    pub batches: u64,
    /// Calls to [`Store::write`] and [`Store::delete`], retries included.
    pub store_calls: u64,
    /// Store calls that were retries of a failed call.
    pub retries: u64,
    /// Operations the store accepted.
    pub persisted: u64,
    /// Operations that failed every retry and went to the failure
    /// callback.
    pub failures: u64,
    /// Keys pending now (queued or in flight).
    pub pending: u64,
}

type FailureFn<K, V, E> = Box<dyn Fn(&[Op<K, V>], &StoreError<E>) + Send + Sync>;

/// Settings shared by the adapter and its flusher.
#[derive(Clone, Copy, Debug)]
struct Config {
    batch_size: usize,
    max_delay: Duration,
    capacity: usize,
    max_retries: u32,
    backoff: Duration,
}

/// Builds a [`WriteBehind`]; start with [`WriteBehind::builder`].
///
/// # Examples
///
/// ```
/// # use larder::{Cache, Store};
/// # struct Db;
/// # impl Store<u32, u64> for Db {
/// #     type Error = String;
/// #     fn write(&self, _: &[(u32, u64)]) -> Result<(), String> { Ok(()) }
/// #     fn delete(&self, _: &[u32]) -> Result<(), String> { Ok(()) }
/// # }
/// use std::time::Duration;
/// use larder::WriteBehind;
///
/// let cache: Cache<u32, u64> = Cache::new(10_000);
/// let wb = WriteBehind::builder(cache.clone(), Db)
///     .batch_size(500)
///     .max_delay(Duration::from_millis(50))
///     .queue_capacity(100_000)
///     .max_retries(5)
///     .backoff(Duration::from_millis(20))
///     .on_failure(|ops, err| eprintln!("lost {} ops: {err}", ops.len()))
///     .build();
/// wb.write(1, 1);
/// wb.flush().unwrap();
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct WriteBehindBuilder<K, V, T: Store<K, V>, S = ahash::RandomState> {
    cache: Cache<K, V, S>,
    store: T,
    config: Config,
    on_failure: Option<FailureFn<K, V, T::Error>>,
}

impl<K, V, T: Store<K, V>, S> fmt::Debug for WriteBehindBuilder<K, V, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehindBuilder")
            .field("config", &self.config)
            .field("on_failure", &self.on_failure.is_some())
            .finish_non_exhaustive()
    }
}

impl<K, V, T: Store<K, V>, S> WriteBehindBuilder<K, V, T, S> {
    /// Most operations per batch (default 500). A
    /// batch is sent as soon as this many keys are waiting. A batch mixing
    /// writes and deletes costs two store calls.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn batch_size(mut self, n: usize) -> Self {
        assert!(n > 0, "batch_size must be at least 1");
        self.config.batch_size = n;
        self
    }

    /// Longest an acknowledged operation waits for its batch to fill
    /// before it is sent anyway (default 50 ms). Zero sends
    /// every operation as soon as the flusher is free (batches still form
    /// while it is busy).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.config.max_delay = delay;
        self
    }

    /// Most keys pending at once, in flight included (default 100,000).
    /// When it is reached, writes of new keys
    /// block ([`WriteBehind::write`]) or fail ([`WriteBehind::try_write`])
    /// until the flusher makes room; writes to a key already pending
    /// coalesce and never block.
    ///
    /// # Panics
    ///
    /// If `n` is zero.
    pub fn queue_capacity(mut self, n: usize) -> Self {
        assert!(n > 0, "queue_capacity must be at least 1");
        self.config.capacity = n;
        self
    }

    /// Retries of a failed store call before its operations go to the
    /// failure callback (default 3; zero gives one
    /// attempt and no retry).
    pub fn max_retries(mut self, n: u32) -> Self {
        self.config.max_retries = n;
        self
    }

    /// Wait before the first retry (default 10 ms); it
    /// doubles with every retry, up to 1 s (or `initial`, if larger).
    pub fn backoff(mut self, initial: Duration) -> Self {
        self.config.backoff = initial;
        self
    }

    /// Called once for every store call that failed all its retries, with
    /// the operations it carried and the last error. Each failed operation
    /// is handed over exactly once and counted in
    /// [`WriteBehindStats::failures`]; its key is removed from the cache
    /// (unless a newer write to it is pending), since the store does not
    /// hold the cached value. Without a callback, failed operations are
    /// only counted and reported by [`WriteBehind::flush`].
    ///
    /// **Locking behaviour:** the callback runs on the flusher thread with
    /// no lock held, before the operations count as done, so a `flush`
    /// waiting for them returns only after the callback has. It may call
    /// [`WriteBehind::get`] and [`WriteBehind::try_write`], but not
    /// [`WriteBehind::flush`] (that panics: the flusher would wait for
    /// itself) nor a `write` or `delete` that has to wait for room (that
    /// panics too). A panic in the callback is caught and ignored.
    pub fn on_failure(
        mut self,
        callback: impl Fn(&[Op<K, V>], &StoreError<T::Error>) + Send + Sync + 'static,
    ) -> Self {
        self.on_failure = Some(Box::new(callback));
        self
    }
}

impl<K, V, T, S> WriteBehindBuilder<K, V, T, S>
where
    K: Clone + Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    T: Store<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Starts the flusher thread and returns the adapter.
    ///
    /// # Panics
    ///
    /// If the thread cannot be spawned.
    pub fn build(self) -> WriteBehind<K, V, T, S> {
        let shared = Arc::new(Shared {
            cache: self.cache,
            store: self.store,
            config: self.config,
            on_failure: self.on_failure,
            state: Mutex::new(State {
                pending: HashMap::with_hasher(ahash::RandomState::new()),
                queue: VecDeque::new(),
                last_seq: 0,
                in_flight_since: None,
                flush_target: 0,
                blocked_writers: 0,
                closed: false,
                stopped: false,
                flush_waiters: 0,
                fail_log: Vec::new(),
                unreported: 0,
                reported_through: 0,
                stats: WriteBehindStats::default(),
            }),
            work: Condvar::new(),
            progress: Condvar::new(),
        });
        let flusher = {
            let shared = shared.clone();
            thread::spawn(move || shared.run())
        };
        let flusher_id = flusher.thread().id();
        WriteBehind {
            shared,
            flusher: Some(flusher),
            flusher_id,
        }
    }
}

/// A write-behind adapter: writes are acknowledged as soon as they are
/// queued, visible to [`get`](Self::get) at once, and written to the store
/// in batches by a background thread.
///
/// # Guarantees
///
/// - **Read-your-writes.** [`get`](Self::get) answers from the pending
///   operations first (a pending delete reads as `None`), then from the
///   cache, then from the store ([`Store::read`], one read per missing key
///   however many threads ask). Pending operations live in the adapter's
///   own map, not in the cache, so eviction cannot lose them, and a write
///   that has landed and been evicted is read back from the store. Writes
///   and deletes also update the cache at once, for readers that use the
///   cache directly.
/// - **Coalescing.** Several operations on one key while it waits reach
///   the store as one: the last write, or a delete if a delete came last.
/// - **Per-key order.** A key's operations reach the store in the order
///   they were acknowledged: while one is in flight, the next waits for it
///   to land. A batch never holds a key twice.
/// - **Back-pressure.** At most [`queue_capacity`](WriteBehindBuilder::queue_capacity)
///   keys are pending; beyond that [`write`](Self::write) blocks and
///   [`try_write`](Self::try_write) fails. Nothing acknowledged is dropped.
/// - **Failures.** A failed (or panicking) store call is retried with
///   exponential backoff; after the last retry its operations go to the
///   failure callback, exactly once each, and are counted. The flusher
///   survives store and callback panics.
/// - **Flush and shutdown.** [`flush`](Self::flush) waits for every
///   operation acknowledged before it was called; [`close`](Self::close)
///   and `Drop` send everything still pending and join the flusher.
///
/// The adapter is `Send + Sync`: share it between threads by reference or
/// in an `Arc`.
///
/// # The adapter owns its keys
///
/// Read a write-behind cache through [`get`](Self::get) (which checks the
/// pending operations, then the cache, then [`Store::read`]), and write it
/// only through the adapter. A loader of your own on the same cache
/// (`cache.get_with(k, || db.read(k))`, a `LoadingCache` over it) reads the
/// store directly, and while a write is pending the store still holds the
/// older value: that loader then puts the older value in the cache, where
/// it stays after the write lands, and plain `cache.get` readers see it
/// until it is evicted or expires. `get` on the adapter still answers
/// right while the write is pending, but not after it has landed. (The
/// adapter cannot tell a foreign value in the cache from its own.) If you
/// need read-through, [`get`](Self::get) is it.
///
/// # Examples
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::{Arc, Mutex};
/// use larder::{Cache, Store, WriteBehind};
///
/// #[derive(Default)]
/// struct Db {
///     rows: Mutex<HashMap<u32, u64>>,
///     calls: Mutex<usize>,
/// }
/// impl Store<u32, u64> for Db {
///     type Error = String;
///     fn write(&self, batch: &[(u32, u64)]) -> Result<(), String> {
///         *self.calls.lock().unwrap() += 1;
///         self.rows.lock().unwrap().extend(batch.iter().copied());
///         Ok(())
///     }
///     fn delete(&self, keys: &[u32]) -> Result<(), String> {
///         *self.calls.lock().unwrap() += 1;
///         let mut rows = self.rows.lock().unwrap();
///         for k in keys {
///             rows.remove(k);
///         }
///         Ok(())
///     }
/// }
///
/// let db = Arc::new(Db::default());
/// let cache: Cache<u32, u64> = Cache::new(1_000);
/// let wb = WriteBehind::new(cache, db.clone());
/// for views in 1..=1_000 {
///     wb.write(7, views); // a hot counter
/// }
/// assert_eq!(wb.get(&7), Some(1_000)); // read-your-writes, flushed or not
/// wb.flush().unwrap();
/// assert_eq!(db.rows.lock().unwrap()[&7], 1_000);
/// assert!(*db.calls.lock().unwrap() < 1_000); // coalesced and batched
/// ```
pub struct WriteBehind<K, V, T: Store<K, V>, S = ahash::RandomState> {
    shared: Arc<Shared<K, V, T, S>>,
    flusher: Option<JoinHandle<()>>,
    flusher_id: ThreadId,
}

impl<K, V, T: Store<K, V>, S> fmt::Debug for WriteBehind<K, V, T, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WriteBehind")
            .field("config", &self.shared.config)
            .field("cache", &self.shared.cache)
            .finish_non_exhaustive()
    }
}

impl<K, V, T: Store<K, V>, S> WriteBehind<K, V, T, S> {
    /// A builder for an adapter over `cache` and `store`, with every
    /// setting at its default.
    pub fn builder(cache: Cache<K, V, S>, store: T) -> WriteBehindBuilder<K, V, T, S> {
        WriteBehindBuilder {
            cache,
            store,
            config: Config {
                batch_size: DEFAULT_BATCH_SIZE,
                max_delay: DEFAULT_MAX_DELAY,
                capacity: DEFAULT_QUEUE_CAPACITY,
                max_retries: DEFAULT_MAX_RETRIES,
                backoff: DEFAULT_BACKOFF,
            },
            on_failure: None,
        }
    }

    /// Stops the flusher (after it has sent everything) and joins it.
    fn shutdown(&mut self) -> Result<(), FlushError> {
        let Some(flusher) = self.flusher.take() else {
            return Ok(());
        };
        {
            let mut state = self.shared.state.lock();
            state.closed = true;
            self.shared.work.notify_one();
        }
        if thread::current().id() == self.flusher_id {
            // Dropped by the store or the callback, on the flusher thread:
            // it exits once the queue is empty; it cannot join itself.
            return Ok(());
        }
        flusher.join().map_err(|_| FlushError::Stopped)
    }
}

impl<K, V, T, S> WriteBehind<K, V, T, S>
where
    K: Clone + Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    T: Store<K, V> + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// An adapter with every setting at its default (see
    /// [`builder`](Self::builder)).
    pub fn new(cache: Cache<K, V, S>, store: T) -> Self {
        Self::builder(cache, store).build()
    }

    /// Queues a write of `value` for `key`, and puts it in the cache.
    /// Returns once the write is acknowledged: from then on
    /// [`get`](Self::get) returns it, and the store will receive it (or a
    /// later operation on `key`), or the failure callback will.
    ///
    /// Blocks while the queue is full and `key` is not already pending.
    ///
    /// # Panics
    ///
    /// If the flusher thread has stopped (see [`FlushError::Stopped`]), and
    /// if it has to wait for room while called from the flusher thread
    /// itself (from the store or the failure callback), which would never
    /// return. A panic in the cache's eviction listener propagates, after
    /// the write has been acknowledged.
    ///
    /// **Locking behaviour:** the cache is updated under the adapter's
    /// lock, so the cache's eviction listener must not call back into this
    /// adapter.
    pub fn write(&self, key: K, value: V) {
        if self.enqueue(key, Some(value), true).is_err() {
            unreachable!("a blocking enqueue waits for room");
        }
    }

    /// Like [`write`](Self::write), but fails instead of blocking when the
    /// queue is full and `key` is not already pending.
    ///
    /// # Errors
    ///
    /// [`Full`], which hands back the key and value.
    ///
    /// # Panics
    ///
    /// If the flusher thread has stopped (see [`FlushError::Stopped`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use larder::{Cache, Store, WriteBehind};
    /// # use std::time::Duration;
    /// # struct Db;
    /// # impl Store<u32, u64> for Db {
    /// #     type Error = String;
    /// #     fn write(&self, _: &[(u32, u64)]) -> Result<(), String> { Ok(()) }
    /// #     fn delete(&self, _: &[u32]) -> Result<(), String> { Ok(()) }
    /// # }
    /// let wb = WriteBehind::builder(Cache::new(100), Db)
    ///     .queue_capacity(1)
    ///     .max_delay(Duration::from_secs(60))
    ///     .build();
    /// wb.try_write(1, 10).unwrap();
    /// wb.try_write(1, 11).unwrap(); // coalesces: no new room needed
    /// // Key 2 needs room; unless the flusher already took key 1, it fails.
    /// if let Err(full) = wb.try_write(2, 20) {
    ///     assert_eq!(full.into_inner(), (2, 20));
    /// }
    /// ```
    pub fn try_write(&self, key: K, value: V) -> Result<(), Full<K, V>> {
        self.enqueue(key, Some(value), false)
            .map_err(|(key, value)| Full {
                key,
                value: value.expect("a write carries a value"),
            })
    }

    /// Queues a delete of `key` and removes it from the cache. Like
    /// [`write`](Self::write) it is acknowledged once queued, and blocks
    /// while the queue is full and `key` is not already pending.
    ///
    /// # Panics
    ///
    /// As for [`write`](Self::write).
    pub fn delete(&self, key: &K) {
        if self.enqueue(key.clone(), None, true).is_err() {
            unreachable!("a blocking enqueue waits for room");
        }
    }

    /// The value for `key` as this adapter knows it: a pending write's
    /// value, `None` for a pending delete, otherwise the cache's value, and
    /// on a miss the store's ([`Store::read`]).
    ///
    /// **Read-your-writes:** once [`write`](Self::write) or
    /// [`delete`](Self::delete) has returned, `get` on any thread returns
    /// that operation's result or a later one's, whether the operation is
    /// still pending, has landed in the store and been evicted from the
    /// cache, or was never admitted to it, provided the store implements
    /// [`Store::read`]. A miss is loaded through the cache's single flight
    /// ([`Cache::try_get_with`]): concurrent `get`s of one missing key make
    /// one store read, and the value read fills the cache, unless a write
    /// or delete of the key is acknowledged while the read runs (that
    /// operation wins, as an invalidation wins over a load).
    ///
    /// Over a store without `read` (the provided one returns `Ok(None)`),
    /// a key that is neither pending nor cached reads as `None`, which
    /// says nothing about the store. An operation that failed every retry
    /// (see [`on_failure`](WriteBehindBuilder::on_failure)) is no longer
    /// pending: `get` then reads what the store holds.
    ///
    /// A store error reads as `None` here; [`try_get`](Self::try_get)
    /// returns it. A panic in `read` propagates to this caller.
    ///
    /// # Examples
    ///
    /// ```
    /// # use larder::{Cache, Store, WriteBehind};
    /// # struct Db;
    /// # impl Store<u32, u64> for Db {
    /// #     type Error = String;
    /// #     fn write(&self, _: &[(u32, u64)]) -> Result<(), String> { Ok(()) }
    /// #     fn delete(&self, _: &[u32]) -> Result<(), String> { Ok(()) }
    /// # }
    /// let cache = Cache::new(100);
    /// let wb = WriteBehind::new(cache.clone(), Db);
    /// wb.write(1, 10);
    /// cache.invalidate_all(); // even if the cache drops it...
    /// assert_eq!(wb.get(&1), Some(10)); // ...a pending write is still read
    /// wb.delete(&1);
    /// assert_eq!(wb.get(&1), None);
    /// ```
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
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
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
        T::Error: Send + Sync + 'static,
    {
        let shared = &*self.shared;
        if let Some(p) = shared.state.lock().pending.get(key) {
            return Ok(p.value.clone());
        }
        super::read_through(&shared.cache, key.to_owned(), |key| {
            // Inside the flight: from here on, a write or delete of `key`
            // updates the cache under the state lock and so makes this load
            // stale. One acknowledged before, and still pending, is the
            // answer; one that has landed is in the store.
            if let Some(p) = shared.state.lock().pending.get(key) {
                return Ok(p.value.clone());
            }
            shared.store.read(key)
        })
    }

    /// Blocks until every operation acknowledged before the call is in the
    /// store or has been handed to the failure callback. Operations
    /// acknowledged during the call are not waited for (they may or may
    /// not be stored when it returns).
    ///
    /// # Errors
    ///
    /// [`FlushError::Failed`] if operations acknowledged before the call
    /// failed their retries (each went to the failure callback), whether
    /// they failed while this call waited or earlier, in the background,
    /// unless a flush that has already returned reported them; so
    /// `write`s followed by a `flush` that returns `Ok` are all in the
    /// store. Concurrent flushes covering one failure all report it.
    /// [`FlushError::Stopped`] if the flusher thread has stopped.
    ///
    /// # Panics
    ///
    /// If called from the flusher thread (from the store or the failure
    /// callback): it would wait for itself.
    ///
    /// # Examples
    ///
    /// ```
    /// # use larder::{Cache, Store, WriteBehind, FlushError};
    /// # use std::time::Duration;
    /// struct Down;
    /// impl Store<u32, u64> for Down {
    ///     type Error = String;
    ///     fn write(&self, _: &[(u32, u64)]) -> Result<(), String> { Err("down".into()) }
    ///     fn delete(&self, _: &[u32]) -> Result<(), String> { Err("down".into()) }
    /// }
    /// let wb = WriteBehind::builder(Cache::new(100), Down)
    ///     .max_retries(1)
    ///     .backoff(Duration::from_millis(1))
    ///     .build();
    /// wb.write(1, 10);
    /// wb.write(2, 20);
    /// assert_eq!(wb.flush(), Err(FlushError::Failed { ops: 2 }));
    /// assert_eq!(wb.stats().failures, 2);
    /// assert_eq!(wb.flush(), Ok(())); // nothing new since
    /// ```
    pub fn flush(&self) -> Result<(), FlushError> {
        assert!(
            thread::current().id() != self.flusher_id,
            "WriteBehind::flush called from its own flusher thread (the store or the failure callback)"
        );
        self.shared.flush()
    }

    /// Flushes everything pending, stops the flusher and waits for it to
    /// exit. Dropping the adapter does the same, without the report.
    ///
    /// # Errors
    ///
    /// As for [`flush`](Self::flush).
    pub fn close(mut self) -> Result<(), FlushError> {
        let flushed = self.flush();
        let joined = self.shutdown();
        flushed.and(joined)
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> WriteBehindStats {
        let state = self.shared.state.lock();
        let mut stats = state.stats;
        stats.pending = state.pending.len() as u64;
        stats
    }

    /// The cache this adapter writes to.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.shared.cache
    }

    /// The store this adapter writes to.
    pub fn store(&self) -> &T {
        &self.shared.store
    }

    /// Acknowledges one operation (`value: None` is a delete). Fails only
    /// when `block` is false and there is no room.
    fn enqueue(&self, key: K, value: Option<V>, block: bool) -> Result<(), (K, Option<V>)> {
        let shared = &*self.shared;
        let mut state = shared.state.lock();
        if state.stopped {
            drop(state);
            panic!("the write-behind flusher thread has stopped");
        }
        if state.pending.len() >= shared.config.capacity && !state.pending.contains_key(&key) {
            if !block {
                return Err((key, value));
            }
            assert!(
                thread::current().id() != self.flusher_id,
                "WriteBehind queue full while called from its own flusher thread"
            );
            state.blocked_writers += 1;
            shared.work.notify_one();
            while state.pending.len() >= shared.config.capacity
                && !state.pending.contains_key(&key)
                && !state.stopped
            {
                shared.progress.wait(&mut state);
            }
            state.blocked_writers -= 1;
            if state.stopped {
                drop(state);
                panic!("the write-behind flusher thread has stopped");
            }
        }

        state.last_seq += 1;
        let seq = state.last_seq;
        let state = &mut *state;
        match value {
            Some(_) => state.stats.writes += 1,
            None => state.stats.deletes += 1,
        }
        let push = match state.pending.get_mut(&key) {
            Some(p) => {
                p.value.clone_from(&value);
                p.seq = seq;
                if p.queued {
                    state.stats.coalesced += 1;
                    false
                } else {
                    // In flight: queue it again, to go once the flight lands.
                    p.queued = true;
                    true
                }
            }
            None => {
                let p = Pending {
                    value: value.clone(),
                    seq,
                    queued: true,
                };
                state.pending.insert(key.clone(), p);
                true
            }
        };
        if push {
            state.queue.push_back(Queued {
                key: key.clone(),
                since: seq,
                at: now(),
            });
            let len = state.queue.len();
            if len == 1 || len == shared.config.batch_size {
                shared.work.notify_one();
            }
        }
        // Still under the state lock: two writers of one key update the
        // cache in the order they took sequence numbers, so the cache never
        // keeps the older value (loom's `racing_writers_of_one_key` model).
        match value {
            Some(value) => shared.cache.insert(key, value),
            None => {
                shared.cache.remove(&key);
            }
        }
        Ok(())
    }
}

impl<K, V, T: Store<K, V>, S> Drop for WriteBehind<K, V, T, S> {
    /// Sends everything still pending and joins the flusher thread.
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// What the adapter and its flusher share.
struct Shared<K, V, T: Store<K, V>, S> {
    cache: Cache<K, V, S>,
    store: T,
    config: Config,
    on_failure: Option<FailureFn<K, V, T::Error>>,
    state: Mutex<State<K, V>>,
    /// The flusher waits here for work.
    work: Condvar,
    /// `flush` and blocked writers wait here for batches to land.
    progress: Condvar,
}

/// Everything behind the adapter's lock.
struct State<K, V> {
    /// The last operation acknowledged per key, until it is stored or
    /// failed (invariant 1).
    pending: HashMap<K, Pending<V>, ahash::RandomState>,
    /// Keys waiting to be sent, sorted by `since` (invariant 2).
    queue: VecDeque<Queued<K>>,
    /// The sequence number of the last acknowledged operation.
    last_seq: u64,
    /// The first `since` of the batch in flight, if one is.
    in_flight_since: Option<u64>,
    /// The highest sequence number a `flush` is waiting for.
    flush_target: u64,
    /// Writers waiting for room.
    blocked_writers: usize,
    /// Set by close and drop: send everything, then exit.
    closed: bool,
    /// Set if the flusher thread unwound.
    stopped: bool,
    /// `flush` calls waiting.
    flush_waiters: usize,
    /// The `since` of every operation that failed while a `flush` was
    /// waiting, in order (invariant 3), so that each waiting flush counts
    /// only operations acknowledged before it was called. Emptied into
    /// `unreported` when the last waiter leaves.
    fail_log: Vec<u64>,
    /// Failed operations acknowledged after `reported_through` that no
    /// `flush` has reported yet, apart from those in `fail_log`.
    unreported: u64,
    /// The highest target of a `flush` that has returned: failures of
    /// operations up to it have been reported.
    reported_through: u64,
    stats: WriteBehindStats,
}

struct Pending<V> {
    /// The value to write; `None` for a delete.
    value: Option<V>,
    /// The sequence number of the operation.
    seq: u64,
    /// Whether the key is in the queue.
    queued: bool,
}

struct Queued<K> {
    key: K,
    /// The sequence number of the operation that queued the key.
    since: u64,
    /// When it was queued, for `max_delay`.
    #[cfg_attr(loom, allow(dead_code))]
    at: Stamp,
}

/// Time stamps for `max_delay`. loom has no clock, so under loom a batch
/// leaves only when it is full, flushed or closed.
#[cfg(not(loom))]
type Stamp = std::time::Instant;
#[cfg(loom)]
type Stamp = ();

#[cfg(not(loom))]
fn now() -> Stamp {
    std::time::Instant::now()
}
#[cfg(loom)]
fn now() -> Stamp {}

impl<K, V> State<K, V> {
    /// Every operation with a sequence number up to this one is in the
    /// store or has gone to the failure callback (invariant 3).
    fn done_through(&self) -> u64 {
        let queued = self.queue.front().map(|q| q.since);
        match (queued, self.in_flight_since) {
            (Some(a), Some(b)) => a.min(b) - 1,
            (Some(s), None) | (None, Some(s)) => s - 1,
            (None, None) => self.last_seq,
        }
    }
}

/// A batch taken from the queue: writes and deletes go in separate store
/// calls.
struct Batch<K, V> {
    writes: Vec<(K, V)>,
    write_meta: Vec<Meta>,
    deletes: Vec<K>,
    delete_meta: Vec<Meta>,
}

#[derive(Clone, Copy)]
struct Meta {
    /// The operation's sequence number.
    seq: u64,
    /// The sequence number that queued the key.
    since: u64,
}

/// One store call's operations after it finished.
struct Landed<K, V> {
    ops: Vec<Op<K, V>>,
    meta: Vec<Meta>,
    ok: bool,
}

/// Marks the adapter stopped if the flusher unwinds, so nobody waits for
/// it forever.
struct StopGuard<'a, K, V>(&'a Mutex<State<K, V>>, &'a Condvar);

impl<K, V> Drop for StopGuard<'_, K, V> {
    fn drop(&mut self) {
        if thread::panicking() {
            self.0.lock().stopped = true;
            self.1.notify_all();
        }
    }
}

impl<K, V, T, S> Shared<K, V, T, S>
where
    K: Clone + Hash + Eq,
    V: Clone,
    T: Store<K, V>,
    S: BuildHasher,
{
    /// Waits for every operation up to the latest sequence number, then
    /// reports the failures among those operations that no earlier flush
    /// has reported: those that failed while it waited (from `fail_log`)
    /// and those that failed before it was called (`unreported`).
    fn flush(&self) -> Result<(), FlushError> {
        let mut state = self.state.lock();
        let target = state.last_seq;
        // Failures before the call: all of these operations were
        // acknowledged after `reported_through` and before now.
        let (reported, before) = (state.reported_through, state.unreported);
        state.flush_waiters += 1;
        if state.flush_target < target && state.done_through() < target {
            state.flush_target = target;
            self.work.notify_one();
        }
        while state.done_through() < target && !state.stopped {
            self.progress.wait(&mut state);
        }
        let result = if state.done_through() < target {
            Err(FlushError::Stopped)
        } else {
            let log = &state.fail_log;
            let during = log.partition_point(|&since| since <= target)
                - log.partition_point(|&since| since <= reported);
            if target > state.reported_through {
                state.reported_through = target;
                // Every `unreported` operation was acknowledged before
                // some flush that has now returned: this one, or one
                // called before it.
                state.unreported = 0;
            }
            match before + during as u64 {
                0 => Ok(()),
                ops => Err(FlushError::Failed { ops }),
            }
        };
        state.flush_waiters -= 1;
        if state.flush_waiters == 0 {
            // Failures of operations acknowledged after every returned
            // flush's target are left for the next flush to report.
            let covered = state
                .fail_log
                .partition_point(|&s| s <= state.reported_through);
            let left = (state.fail_log.len() - covered) as u64;
            state.unreported += left;
            state.fail_log.clear();
        }
        result
    }

    /// The flusher thread: take a batch, send it, land it, until closed
    /// and empty.
    fn run(&self) {
        let _guard = StopGuard(&self.state, &self.progress);
        let mut state = self.state.lock();
        while self.wait_for_batch(&mut state) {
            let batch = self.take_batch(&mut state);
            drop(state);
            let (landed, calls, retries) = self.send(batch);
            state = self.state.lock();
            state.stats.store_calls += calls;
            state.stats.retries += retries;
            self.land(&mut state, landed);
            self.progress.notify_all();
        }
    }

    /// Waits until a batch should leave; false once closed and empty.
    fn wait_for_batch(&self, state: &mut MutexGuard<'_, State<K, V>>) -> bool {
        loop {
            let Some(front) = state.queue.front() else {
                if state.closed {
                    return false;
                }
                self.work.wait(state);
                continue;
            };
            if state.closed
                || state.blocked_writers > 0
                || state.queue.len() >= self.config.batch_size
                || state.flush_target > state.done_through()
            {
                return true;
            }
            #[cfg(not(loom))]
            match front.at.checked_add(self.config.max_delay) {
                Some(due) => {
                    let t = now();
                    if t >= due {
                        return true;
                    }
                    self.work.wait_for(state, due - t);
                }
                None => self.work.wait(state),
            }
            #[cfg(loom)]
            {
                let _ = front;
                self.work.wait(state);
            }
        }
    }

    /// Takes up to `batch_size` keys from the queue's front.
    fn take_batch(&self, state: &mut State<K, V>) -> Batch<K, V> {
        let n = state.queue.len().min(self.config.batch_size);
        let mut batch = Batch {
            writes: Vec::new(),
            write_meta: Vec::new(),
            deletes: Vec::new(),
            delete_meta: Vec::new(),
        };
        state.in_flight_since = state.queue.front().map(|q| q.since);
        for queued in state.queue.drain(..n) {
            let p = state
                .pending
                .get_mut(&queued.key)
                .expect("a queued key is pending");
            p.queued = false;
            let meta = Meta {
                seq: p.seq,
                since: queued.since,
            };
            match &p.value {
                Some(value) => {
                    batch.writes.push((queued.key, value.clone()));
                    batch.write_meta.push(meta);
                }
                None => {
                    batch.deletes.push(queued.key);
                    batch.delete_meta.push(meta);
                }
            }
        }
        state.stats.batches += 1;
        batch
    }

    /// Sends a batch (outside the lock) with retries, hands what failed to
    /// the callback, and returns it with the number of store calls and
    /// retries made.
    fn send(&self, batch: Batch<K, V>) -> (Vec<Landed<K, V>>, u64, u64) {
        let (mut calls, mut retries) = (0, 0);
        let mut landed = Vec::with_capacity(2);
        if !batch.writes.is_empty() {
            let outcome = self.call(|| self.store.write(&batch.writes), &mut calls, &mut retries);
            let ops = batch
                .writes
                .into_iter()
                .map(|(k, v)| Op::Write(k, v))
                .collect();
            landed.push(self.report(ops, batch.write_meta, outcome));
        }
        if !batch.deletes.is_empty() {
            let outcome = self.call(
                || self.store.delete(&batch.deletes),
                &mut calls,
                &mut retries,
            );
            let ops = batch.deletes.into_iter().map(Op::Delete).collect();
            landed.push(self.report(ops, batch.delete_meta, outcome));
        }
        (landed, calls, retries)
    }

    /// One store call with its retries; a panic counts as a failure.
    fn call(
        &self,
        f: impl Fn() -> Result<(), T::Error>,
        calls: &mut u64,
        retries: &mut u64,
    ) -> Result<(), StoreError<T::Error>> {
        let mut delay = self.config.backoff;
        let cap = MAX_BACKOFF.max(self.config.backoff);
        let mut attempt = 0;
        loop {
            *calls += 1;
            let error = match panic::catch_unwind(AssertUnwindSafe(&f)) {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => StoreError::Store(e),
                Err(payload) => StoreError::Panicked(panic_message(payload.as_ref())),
            };
            if attempt == self.config.max_retries {
                return Err(error);
            }
            drop(error);
            attempt += 1;
            *retries += 1;
            pause(delay);
            delay = (delay * 2).min(cap);
        }
    }

    /// Hands failed operations to the callback (a panic in it is caught).
    fn report(
        &self,
        ops: Vec<Op<K, V>>,
        meta: Vec<Meta>,
        outcome: Result<(), StoreError<T::Error>>,
    ) -> Landed<K, V> {
        let ok = match outcome {
            Ok(()) => true,
            Err(error) => {
                if let Some(callback) = &self.on_failure {
                    let _ = panic::catch_unwind(AssertUnwindSafe(|| callback(&ops, &error)));
                }
                false
            }
        };
        Landed { ops, meta, ok }
    }

    /// Lands a finished batch: retires every key whose operation is still
    /// the one sent (invariant 4), and records the outcome.
    fn land(&self, state: &mut State<K, V>, landed: Vec<Landed<K, V>>) {
        let mut failed_since = Vec::new();
        for part in landed {
            let n = part.ops.len() as u64;
            if part.ok {
                state.stats.persisted += n;
            } else {
                state.stats.failures += n;
            }
            for (op, meta) in part.ops.iter().zip(&part.meta) {
                let key = op.key();
                let p = state.pending.get(key).expect("an in-flight key is pending");
                if p.seq == meta.seq {
                    state.pending.remove(key);
                    if !part.ok && op.value().is_some() {
                        // The cache holds a value the store does not. (A
                        // panicking eviction listener must not stop the
                        // flusher; the entry is removed before it runs.)
                        let remove = AssertUnwindSafe(|| self.cache.remove(key));
                        let _ = panic::catch_unwind(remove);
                    }
                }
                if !part.ok {
                    failed_since.push(meta.since);
                }
            }
        }
        if state.flush_waiters == 0 {
            state.unreported += failed_since.len() as u64;
        } else {
            // Writes and deletes went in separate calls: merge them back
            // into `since` order.
            failed_since.sort_unstable();
            state.fail_log.extend(failed_since);
        }
        state.in_flight_since = None;
    }
}

/// Waits between retries. loom has no clock: there, just yield.
#[cfg(not(loom))]
fn pause(delay: Duration) {
    std::thread::sleep(delay);
}
#[cfg(loom)]
fn pause(_delay: Duration) {
    thread::yield_now();
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-string payload".to_string()
    }
}

/// The queue's bookkeeping, driven step by step without a flusher thread:
/// what the integration tests only reach when a race happens to line up.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A store that records calls and fails while told to.
    #[derive(Default)]
    struct Rec {
        calls: StdMutex<Vec<String>>,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Store<u32, u64> for Rec {
        type Error = &'static str;
        fn write(&self, batch: &[(u32, u64)]) -> Result<(), Self::Error> {
            self.calls.lock().unwrap().push(format!("write {batch:?}"));
            match self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err("down"),
                false => Ok(()),
            }
        }
        fn delete(&self, keys: &[u32]) -> Result<(), Self::Error> {
            self.calls.lock().unwrap().push(format!("delete {keys:?}"));
            match self.fail.load(std::sync::atomic::Ordering::SeqCst) {
                true => Err("down"),
                false => Ok(()),
            }
        }
    }

    /// An adapter with no flusher: the test plays the flusher.
    fn adapter(batch_size: usize) -> WriteBehind<u32, u64, Rec> {
        let mut wb = WriteBehind::builder(Cache::new(100), Rec::default())
            .batch_size(batch_size)
            .max_retries(0)
            .build();
        // Stop the real flusher before it takes anything: close it on an
        // empty queue, then reopen the state for the test.
        wb.shutdown().unwrap();
        wb.shared.state.lock().closed = false;
        wb
    }

    /// One flusher round: take a batch, send it, land it.
    fn round(wb: &WriteBehind<u32, u64, Rec>) {
        let shared = &*wb.shared;
        let batch = shared.take_batch(&mut shared.state.lock());
        let (landed, _, _) = shared.send(batch);
        shared.land(&mut shared.state.lock(), landed);
    }

    #[test]
    fn done_through_is_below_both_the_queue_front_and_the_flight() {
        let wb = adapter(1);
        assert_eq!(wb.shared.state.lock().done_through(), 0);
        wb.write(1, 10); // seq 1
        wb.write(2, 20); // seq 2
        assert_eq!(wb.shared.state.lock().done_through(), 0);
        let shared = &*wb.shared;
        let batch = shared.take_batch(&mut shared.state.lock()); // key 1 in flight
        {
            let state = shared.state.lock();
            assert_eq!(state.in_flight_since, Some(1));
            assert_eq!(state.done_through(), 0);
        }
        let (landed, _, _) = shared.send(batch);
        shared.land(&mut shared.state.lock(), landed);
        assert_eq!(shared.state.lock().done_through(), 1, "key 2 still queued");
        round(&wb);
        assert_eq!(shared.state.lock().done_through(), 2);
        assert!(shared.state.lock().pending.is_empty());
    }

    #[test]
    fn writes_to_a_queued_key_coalesce_into_one_queue_slot() {
        let wb = adapter(10);
        wb.write(1, 10);
        wb.write(1, 11);
        wb.delete(&1);
        wb.write(1, 12);
        {
            let state = wb.shared.state.lock();
            assert_eq!(state.queue.len(), 1);
            assert_eq!(state.queue[0].since, 1, "keeps its place in the queue");
            assert_eq!(state.pending[&1].seq, 4);
            assert_eq!(state.stats.coalesced, 3);
        }
        round(&wb);
        assert_eq!(*wb.store().calls.lock().unwrap(), ["write [(1, 12)]"]);
    }

    #[test]
    fn a_write_during_its_keys_flight_is_queued_again_and_survives_the_landing() {
        let wb = adapter(10);
        wb.write(1, 10);
        let shared = &*wb.shared;
        let batch = shared.take_batch(&mut shared.state.lock());
        wb.write(1, 11); // while 10 is in flight
        {
            let state = shared.state.lock();
            assert!(state.pending[&1].queued);
            assert_eq!(state.queue.len(), 1, "queued again, not coalesced");
            assert_eq!(state.stats.coalesced, 0);
        }
        let (landed, _, _) = shared.send(batch);
        shared.land(&mut shared.state.lock(), landed);
        assert_eq!(wb.get(&1), Some(11), "the newer write outlives the landing");
        assert_eq!(shared.state.lock().pending[&1].seq, 2);
        round(&wb);
        assert!(shared.state.lock().pending.is_empty());
        assert_eq!(
            *wb.store().calls.lock().unwrap(),
            ["write [(1, 10)]", "write [(1, 11)]"],
            "per-key order across the flight"
        );
    }

    #[test]
    fn a_batch_takes_at_most_batch_size_keys_and_splits_writes_from_deletes() {
        let wb = adapter(3);
        wb.write(1, 10);
        wb.delete(&2);
        wb.write(3, 30);
        wb.write(4, 40);
        let shared = &*wb.shared;
        let batch = shared.take_batch(&mut shared.state.lock());
        assert_eq!(batch.writes, [(1, 10), (3, 30)]);
        assert_eq!(batch.deletes, [2]);
        assert_eq!(shared.state.lock().queue.len(), 1);
        let (landed, calls, _) = shared.send(batch);
        assert_eq!(calls, 2, "one call for the writes, one for the deletes");
        shared.land(&mut shared.state.lock(), landed);
        assert_eq!(shared.state.lock().stats.persisted, 3);
    }

    #[test]
    fn a_failed_write_leaves_the_cache_unless_a_newer_one_is_pending() {
        let wb = adapter(10);
        wb.write(1, 10);
        wb.write(2, 20);
        let shared = &*wb.shared;
        let batch = shared.take_batch(&mut shared.state.lock());
        wb.write(2, 21); // newer than the flight
        wb.store()
            .fail
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let (landed, _, _) = shared.send(batch);
        shared.land(&mut shared.state.lock(), landed);
        {
            let state = shared.state.lock();
            assert_eq!(state.stats.failures, 2);
            assert_eq!(
                state.unreported, 2,
                "no flush was waiting: left for the next"
            );
            assert!(!state.pending.contains_key(&1));
            assert_eq!(state.pending[&2].value, Some(21));
        }
        assert_eq!(wb.cache().get(&1), None, "the store does not hold 10");
        assert_eq!(
            wb.cache().get(&2),
            Some(21),
            "the pending write is still cached"
        );
    }
}
