//! [`Cache`]: hash once, pick the shard, lock, delegate. The public surface.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use crossbeam_utils::CachePadded;

use crate::builder::CacheBuilder;
use crate::defend::Defences;
use crate::histogram::Histogram;
use crate::policy::Idx;
use crate::policy::{Policy, RemovalCause};
use crate::shard::{
    cache_hash, spread, Budget, Core, Entry, Insert, Lookup, Removed, Shard, TimeSettings,
    WriteTime,
};
use crate::stats::Stats;
use crate::sync::{Arc, AtomicBool, Ordering};
use crate::time::clock::CacheClock;
use crate::time::wheel::DEFAULT_BUDGET;

/// Times an insert into a shard short of room takes room from the other
/// shards and retries before it makes room in its own shard whatever it
/// holds (only concurrent writers taking the room first make it retry).
const MAKE_ROOM_ROUNDS: u32 = 4;

/// Most negative marks per shard when a weigher is set.
const NEGATIVE_MARKS_WEIGHED: u64 = 1024;

pub(crate) type Weigher<K, V> = Box<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type Listener<K, V> = Box<dyn Fn(&K, &V, RemovalCause) + Send + Sync>;
pub(crate) type ExpireAfter<K, V> = Box<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;

/// A bounded, thread-safe, in-process cache.
///
/// `Cache` is a cheap handle: `clone` it to share one cache between threads.
/// Values are returned by clone, so wrap large values in an `Arc`.
///
/// # Examples
///
/// ```
/// use larder::Cache;
///
/// let cache: Cache<&str, u32> = Cache::new(1_000);
/// cache.insert("a", 1);
/// assert_eq!(cache.get("a"), Some(1));
/// assert_eq!(cache.remove("a"), Some(1));
/// assert!(cache.get("a").is_none());
/// ```
pub struct Cache<K, V, S = ahash::RandomState> {
    pub(crate) inner: Arc<Inner<K, V, S>>,
}

pub(crate) struct Inner<K, V, S> {
    shards: Box<[CachePadded<Shard<K, V, S>>]>,
    /// Number of shards (any count: see `shard_index`).
    shard_count: u64,
    hasher: S,
    weigher: Option<Weigher<K, V>>,
    listener: Option<Listener<K, V>>,
    capacity: u64,
    /// The weight committed in all shards together (see `shard::budget`).
    budget: Arc<Budget>,
    policy: Policy,
    clock: CacheClock,
    ttl: Option<Duration>,
    expire_after: Option<ExpireAfter<K, V>>,
    negative_ttl: Option<Duration>,
    /// Some entry may have a deadline, so reads must read the clock. Set at
    /// build time when expiry is configured, or by the first
    /// `insert_with_ttl`.
    uses_time: AtomicBool,
    /// The backend defences' settings and shared state (issue 13).
    defend: Defences<K>,
}

impl<K, V, S> Clone for Cache<K, V, S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<K, V, S> fmt::Debug for Cache<K, V, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("capacity", &self.inner.capacity)
            .field("policy", &self.inner.policy)
            .field("shards", &self.inner.shards.len())
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, V> Cache<K, V> {
    /// A cache of at most `capacity` entries with every other setting at its
    /// default (W-TinyLFU, ahash).
    pub fn new(capacity: u64) -> Self {
        Self::builder().max_capacity(capacity).build()
    }

    /// A [`CacheBuilder`] with every default.
    pub fn builder() -> CacheBuilder<K, V> {
        CacheBuilder::new()
    }
}

impl<K, V, S> Cache<K, V, S>
where
    K: Hash + Eq,
    S: BuildHasher,
{
    pub(crate) fn from_builder(builder: CacheBuilder<K, V, S>) -> Self
    where
        S: Clone,
    {
        let n = builder.shard_count();
        let seed = builder.seed.unwrap_or_else(random_seed);
        let capacity = builder.capacity;
        // One budget for the whole capacity; each shard's policy is sized
        // for the shard's expected share.
        let budget = Arc::new(Budget::new(capacity));
        let (base, extra) = (capacity / n as u64, capacity % n as u64);
        // A small cache's W-TinyLFU takes hits in order (see
        // `crate::policy::wtinylfu`, "Hits").
        let exact_hits = capacity <= crate::policy::wtinylfu::EXACT_MAX;
        // W-TinyLFU's window is steered by simulations the shards share.
        let sims = match builder.policy {
            crate::Policy::WTinyLfu => crate::policy::minisim::MiniSims::for_cache(capacity, seed),
            _ => None,
        };
        let shards = (0..n)
            .map(|i| {
                let cap = base + u64::from((i as u64) < extra);
                // What the shard's policy is sized for: its share, plus the
                // usual spread of keys over shards (see `shard::spread`).
                let sized_for = cap.saturating_add(spread(cap, n)).min(capacity);
                let shard_seed = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                let time = TimeSettings {
                    tti: builder.tti,
                    jitter: builder.jitter,
                    eager: builder.ttl.is_some()
                        || builder.tti.is_some()
                        || builder.expire_after.is_some()
                        || builder.refresh.is_on(),
                    refresh: builder.refresh.times(),
                };
                CachePadded::new(Shard::new(
                    builder.policy,
                    (cap, sized_for),
                    budget.clone(),
                    shard_seed,
                    (exact_hits, sims.clone()),
                    time,
                    builder.hasher.clone(),
                ))
            })
            .collect();
        let eager = builder.ttl.is_some()
            || builder.tti.is_some()
            || builder.expire_after.is_some()
            || builder.negative_ttl.is_some()
            || builder.refresh.is_on();
        Self {
            inner: Arc::new(Inner {
                shards,
                shard_count: n as u64,
                hasher: builder.hasher,
                weigher: builder.weigher,
                listener: builder.listener,
                capacity,
                budget,
                policy: builder.policy,
                clock: builder.clock.unwrap_or_default(),
                ttl: builder.ttl,
                expire_after: builder.expire_after,
                negative_ttl: builder.negative_ttl,
                uses_time: AtomicBool::new(eager),
                defend: Defences::new(builder.defend, &builder.refresh),
            }),
        }
    }

    /// The shard's time for a read. Readers call it only when the shard
    /// keeps deadlines (see `Shard::lookup_with`), under its read lock.
    #[inline]
    fn read_now(&self, shard: &Shard<K, V, S>) -> u64 {
        shard.floor.clamp(self.inner.clock.now())
    }

    /// [`read_now`](Self::read_now) if `core` keeps deadlines, else 0.
    #[inline]
    fn read_now_for(&self, shard: &Shard<K, V, S>, core: &Core<K, V, S>) -> u64 {
        if core.has_timers() {
            self.read_now(shard)
        } else {
            0
        }
    }

    /// The clock, read before taking a shard's write lock (so the read is
    /// not part of the time the lock is held), if the cache keeps time; to
    /// be turned into the shard's time under the lock by
    /// [`write_now_from`](Self::write_now_from).
    #[inline]
    fn clock_before_lock(&self) -> Option<u64> {
        if self.inner.uses_time.load(Ordering::Relaxed) {
            Some(self.inner.clock.now())
        } else {
            None
        }
    }

    /// Under the shard's write lock: the shard's time from a reading taken
    /// just before the lock (`max` with the latest time any writer of the
    /// shard acted on, so it never goes backwards), or a fresh
    /// [`write_now`](Self::write_now) if there was none (the cache may have
    /// started keeping time since).
    #[inline]
    fn write_now_from(&self, shard: &Shard<K, V, S>, early: Option<u64>) -> u64 {
        match early {
            Some(now) => shard.floor.observe(now),
            None => self.write_now(shard),
        }
    }

    /// The shard's time for a write or maintenance (recorded in the floor).
    #[inline]
    pub(crate) fn write_now(&self, shard: &Shard<K, V, S>) -> u64 {
        if self.inner.uses_time.load(Ordering::Relaxed) {
            self.observe_now(shard)
        } else {
            0
        }
    }

    /// The clock read of [`write_now`](Self::write_now), out of line so the
    /// check before it inlines into every write.
    #[inline(never)]
    fn observe_now(&self, shard: &Shard<K, V, S>) -> u64 {
        shard.floor.observe(self.inner.clock.now())
    }

    /// Opportunistic maintenance after a read: replays buffered hits and
    /// removes expired entries, if the shard's lock is free.
    #[cold]
    #[inline(never)]
    fn maintain(&self, shard: &Shard<K, V, S>) {
        let now = self.write_now(shard);
        let mut removed = Removed::new();
        if let Some(mut core) = shard.try_write() {
            core.expire(now, DEFAULT_BUDGET, &mut removed);
        }
        self.notify(removed);
    }

    /// Runs the maintenance that operations otherwise do a little at a time:
    /// replays buffered reads into the policy (for the policies that buffer
    /// them) and removes every expired entry
    /// (in bounded steps, releasing each shard's lock between steps).
    ///
    /// Never required for correctness: expired entries are never returned,
    /// whether or not they have been removed yet.
    pub fn run_pending_tasks(&self) {
        for shard in self.inner.shards.iter() {
            // Once the wheel has caught up, also take what is due in its
            // current 1.07 s tick (routine maintenance leaves that until
            // the tick ends); once only, as it walks the whole tick.
            let mut tick_done = false;
            loop {
                let now = self.write_now(shard);
                let mut removed = Removed::new();
                let more = {
                    let mut core = shard.write();
                    let more = core.expire(now, DEFAULT_BUDGET, &mut removed);
                    if more || tick_done {
                        more
                    } else {
                        tick_done = true;
                        core.expire_current_tick(DEFAULT_BUDGET, &mut removed)
                    }
                };
                self.notify(removed);
                if !more {
                    break;
                }
            }
        }
    }

    /// The key's hash as the cache uses it (see `shard::cache_hash`; each
    /// shard computes the same from a stored key with its clone of the
    /// hasher).
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        cache_hash(&self.inner.hasher, key)
    }

    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> &Shard<K, V, S> {
        &self.inner.shards[self.shard_index(hash)]
    }

    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        // The high 32 bits of the hash scaled to the shard count (a
        // multiply-shift: any count, not just powers of two; see
        // `shard::fit_tables`). Inside the shard the table uses only the
        // low 32 bits (see `shard::short_hash`), so the two never overlap.
        (((hash >> 32) * self.inner.shard_count) >> 32) as usize
    }

    /// Returns a clone of the value for `key`, recording the hit with the
    /// eviction policy.
    ///
    /// # Examples
    ///
    /// ```
    /// let cache: larder::Cache<String, u32> = larder::Cache::new(10);
    /// cache.insert("k".to_string(), 7);
    /// assert_eq!(cache.get("k"), Some(7)); // &str looks up a String key
    /// ```
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        self.get_by(hash, key, |_, _, entry, _| entry.value.clone())
    }

    /// [`get`](Self::get) with a custom read: `f(core, idx, entry, now)`
    /// runs under the shard's read lock on a live hit (which is recorded as
    /// one).
    #[inline]
    pub(crate) fn get_by<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        f: impl FnOnce(&Core<K, V, S>, Idx, &Entry<K, V>, u64) -> R,
    ) -> Option<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let shard = self.shard(hash);
        let found = match &self.inner.defend.hot {
            None => shard.lookup_with(hash, key, || self.read_now(shard), f),
            // Hot-key tracking (off by default): the sampling decision comes
            // first, so the 63 reads in 64 that are not sampled run the
            // usual read; a sampled read that hits is fed under the read
            // lock, which is safe: the tracker only `try_lock`s its stripe.
            Some(hot) if hot.sampler.due() => shard.lookup_with(
                hash,
                key,
                || self.read_now(shard),
                |core: &Core<K, V, S>, idx: Idx, entry: &Entry<K, V>, now: u64| {
                    hot.keys.record_sampled(hash, &entry.key);
                    f(core, idx, entry, now)
                },
            ),
            Some(_) => shard.lookup_with(hash, key, || self.read_now(shard), f),
        };
        match found {
            Lookup::Hit(value, drain) => {
                if drain {
                    self.maintain(shard);
                }
                Some(value)
            }
            Lookup::Miss { expired_at } => {
                if let Some(now) = expired_at {
                    // Remember the time this entry was judged expired at, so
                    // a clock set back later cannot bring it back.
                    shard.floor.observe(now);
                    self.maintain(shard);
                }
                None
            }
        }
    }

    /// Returns a clone of the value for `key` without touching the policy or
    /// the statistics.
    pub fn peek<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
        V: Clone,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let core = shard.read();
        let (idx, entry) = core.find_live(hash, key)?;
        let now = self.read_now_for(shard, &core);
        if core.is_expired(idx, now) {
            shard.floor.observe(now); // as in `get`: stays expired
            return None;
        }
        Some(entry.value.clone())
    }

    /// True if `key` has a value (does not touch the policy or statistics).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let core = shard.read();
        let Some(idx) = core.find(hash, key) else {
            return false;
        };
        let now = self.read_now_for(shard, &core);
        if core.is_expired(idx, now) {
            shard.floor.observe(now); // as in `get`: stays expired
            return false;
        }
        true
    }

    /// Stores `value` under `key`, replacing any previous value, then evicts
    /// as needed to stay within capacity. A value heavier than the whole
    /// capacity is not stored (see [`CacheBuilder::max_capacity`]).
    pub fn insert(&self, key: K, value: V) {
        let ttl = self.entry_ttl(&key, &value);
        self.insert_inner(key, value, ttl);
    }

    /// The time to live of a new value: `expire_after`'s, else the cache's.
    pub(crate) fn entry_ttl(&self, key: &K, value: &V) -> Option<Duration> {
        match &self.inner.expire_after {
            Some(f) => f(key, value).or(self.inner.ttl),
            None => self.inner.ttl,
        }
    }

    /// How long a "does not exist" answer is remembered, if at all.
    pub(crate) fn negative_ttl(&self) -> Option<Duration> {
        self.inner.negative_ttl
    }

    /// Most negative marks a shard of `capacity` keeps: a count of entries,
    /// or at most [`NEGATIVE_MARKS_WEIGHED`] once a weigher makes capacity
    /// a weight (see `CacheBuilder::negative_ttl`).
    pub(crate) fn negative_limit(&self, capacity: u64) -> usize {
        let limit = match self.inner.weigher {
            Some(_) => capacity.min(NEGATIVE_MARKS_WEIGHED),
            None => capacity,
        };
        usize::try_from(limit).unwrap_or(usize::MAX)
    }

    /// Like [`insert`](Self::insert), with this entry's own time to live
    /// (overriding the cache-wide one and `expire_after`; jitter still
    /// applies). Works on any cache, with or without expiry configured.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use larder::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<&str, u32> = Cache::builder().clock(clock.clone()).build();
    /// cache.insert_with_ttl("session", 1, Duration::from_secs(5));
    /// clock.advance(Duration::from_secs(6));
    /// cache.run_pending_tasks();
    /// assert_eq!(cache.get("session"), None);
    /// assert_eq!(cache.stats().expirations, 1);
    /// ```
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        self.inner.uses_time.store(true, Ordering::Relaxed);
        self.insert_inner(key, value, Some(ttl));
    }

    fn insert_inner(&self, key: K, value: V, ttl: Option<Duration>) {
        let weight = self.weigh(&key, &value);
        let hash = self.hash(&key);
        let shard = self.shard(hash);
        let mut removed = Removed::new();
        // Room taken from other shards, committed until the insert uses it
        // (given back if user code panics on the way).
        let mut credit = Credit {
            budget: &self.inner.budget,
            weight: 0,
        };
        let (mut key, mut value) = (key, value);
        let mut round = 0;
        loop {
            let may_defer = round < MAKE_ROOM_ROUNDS && self.inner.shards.len() > 1;
            let early = self.clock_before_lock();
            let done = {
                let mut core = shard.write();
                // Observed under the lock, so the time is at least what any
                // earlier writer of this shard acted on.
                let write = WriteTime {
                    now: self.write_now_from(shard, early),
                    ttl,
                };
                core.invalidate(hash, &key);
                core.insert_with(
                    hash,
                    key,
                    value,
                    weight,
                    write,
                    &mut credit.weight,
                    may_defer,
                    &mut removed,
                )
            };
            match done {
                Insert::Short {
                    key: k,
                    value: v,
                    need,
                } => {
                    (key, value) = (k, v);
                    credit.weight += self.make_room(self.shard_index(hash), need, &mut removed);
                    round += 1;
                }
                Insert::Stored | Insert::Rejected => break,
            }
        }
        self.notify(removed);
    }

    /// Takes `need` weight of room for an insert into shard `own` from the
    /// budget or, once it is spent, by evicting from the other shards: first
    /// from those holding more than their share, down to it, then from any.
    /// One shard lock at a time, never `own`'s. Returns the weight taken (it
    /// stays committed, as the insert's credit); less than `need` only if
    /// concurrent writers took the room first.
    fn make_room(&self, own: usize, need: u64, removed: &mut Removed<K, V>) -> u64 {
        let mut got = self.inner.budget.reserve_up_to(need);
        let n = self.inner.shards.len();
        for pass in 0..2 {
            for step in 1..n {
                if got >= need {
                    return got;
                }
                let shard = &self.inner.shards[(own + step) % n];
                let mut core = shard.write();
                let floor = if pass == 0 { core.capacity() } else { 0 };
                got += core.give_room(need - got, floor, removed);
            }
        }
        got
    }

    /// Removes `key` and returns its value, if it had one.
    pub fn remove<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hash(key);
        let shard = self.shard(hash);
        let mut removed = Removed::new();
        let early = self.clock_before_lock();
        let found = {
            let mut core = shard.write();
            let now = self.write_now_from(shard, early); // as in `insert_inner`
            core.remove(hash, key, now, &mut removed)
        };
        self.notify(removed);
        let (k, v) = found?;
        if let Some(listener) = &self.inner.listener {
            listener(&k, &v, RemovalCause::Explicit);
        }
        Some(v)
    }

    /// Removes every entry (the listener sees each with
    /// [`RemovalCause::Explicit`], or [`RemovalCause::Expired`] for one that
    /// had expired but was not reclaimed yet, as in [`retain`](Self::retain)).
    pub fn invalidate_all(&self) {
        for shard in self.inner.shards.iter() {
            let mut removed = Removed::new();
            let now = self.write_now(shard);
            shard.write().clear(now, &mut removed);
            self.notify(removed);
        }
    }

    /// Keeps only the entries for which `keep(&key, &value)` is true.
    /// Expired entries not yet reclaimed are not shown to `keep`: they
    /// leave as [`RemovalCause::Expired`].
    ///
    /// **Locking behaviour:** `keep` runs while its shard's write lock is
    /// held; it must not call back into this cache (that would deadlock).
    /// The listener runs after each shard's lock is released.
    pub fn retain(&self, mut keep: impl FnMut(&K, &V) -> bool) {
        for shard in self.inner.shards.iter() {
            let mut removed = Removed::new();
            let now = self.write_now(shard);
            shard.write().retain(now, &mut keep, &mut removed);
            self.notify(removed);
        }
    }

    /// A snapshot of the entries, taken one shard at a time.
    pub fn iter(&self) -> std::vec::IntoIter<(K, V)>
    where
        K: Clone,
        V: Clone,
    {
        let mut out = Vec::new();
        for shard in self.inner.shards.iter() {
            let core = shard.read();
            let now = self.read_now_for(shard, &core);
            let before = out.len();
            out.extend(
                core.live_entries(now)
                    .map(|e| (e.key.clone(), e.value.clone())),
            );
            if out.len() - before < core.len() {
                shard.floor.observe(now); // as in `get`: stays expired
            }
        }
        out.into_iter()
    }

    /// The entry's weight: the weigher's, raised to at least 1 (see
    /// [`CacheBuilder::weigher`]).
    pub(crate) fn weigh(&self, key: &K, value: &V) -> u32 {
        match &self.inner.weigher {
            Some(weigher) => weigher(key, value).max(1),
            None => 1,
        }
    }

    /// Tells the listener about removed entries and drops them, outside
    /// every lock. A panicking listener does not stop the others; the first
    /// panic is resumed once all have run.
    #[inline]
    pub(crate) fn notify(&self, removed: Removed<K, V>) {
        match &self.inner.listener {
            Some(listener) if !removed.is_empty() => Self::announce(listener, removed),
            _ => drop(removed),
        }
    }

    /// The calls of [`notify`](Self::notify), out of line (most caches have
    /// no listener).
    #[inline(never)]
    fn announce(listener: &Listener<K, V>, removed: Removed<K, V>) {
        let mut panic = None;
        for (key, value, cause) in removed.into_iter() {
            let call = std::panic::AssertUnwindSafe(|| listener(&key, &value, cause));
            if let Err(payload) = std::panic::catch_unwind(call) {
                panic.get_or_insert(payload);
            }
        }
        if let Some(payload) = panic {
            std::panic::resume_unwind(payload);
        }
    }
}

impl<K, V, S> Cache<K, V, S> {
    /// Number of entries stored.
    pub fn len(&self) -> usize {
        self.inner.shards.iter().map(|s| s.read().len()).sum()
    }

    /// True if no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.shards.iter().all(|s| s.read().len() == 0)
    }

    /// Total weight stored (the entry count when no weigher is set), never
    /// above the capacity. While another thread is inserting it may include
    /// room that insert has taken but not yet filled.
    pub fn weighted_size(&self) -> u64 {
        self.inner.budget.committed()
    }

    /// The capacity the cache was built with.
    pub fn capacity(&self) -> u64 {
        self.inner.capacity
    }

    /// The eviction policy in use.
    pub fn policy(&self) -> Policy {
        self.inner.policy
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// A snapshot of the statistics.
    pub fn stats(&self) -> Stats {
        let mut stats = Stats::default();
        for shard in self.inner.shards.iter() {
            let core = shard.read();
            stats.hits += core.hits.get();
            stats.misses += core.misses.get();
            let c = core.counters;
            drop(core);
            stats.inserts += c.inserts;
            stats.updates += c.updates;
            stats.evictions += c.evictions;
            stats.evicted_weight += c.evicted_weight;
            stats.removals += c.removals;
            stats.rejections += c.rejections;
            stats.expirations += c.expirations;
            stats.loads += c.loads;
            stats.load_failures += c.load_failures;
            stats.total_load_time += Duration::from_nanos(c.load_nanos);
            stats.negative_hits += c.negative_hits;
            stats.refreshes += c.refreshes;
            stats.refresh_failures += c.refresh_failures;
        }
        let d = &self.inner.defend;
        stats.loads += d.detached_loads.load(Ordering::Relaxed);
        stats.load_failures += d.detached_failures.load(Ordering::Relaxed);
        stats.total_load_time +=
            Duration::from_nanos(d.detached_load_nanos.load(Ordering::Relaxed));
        stats.filtered = d.filtered.load(Ordering::Relaxed);
        stats.load_timeouts = d.load_timeouts.load(Ordering::Relaxed);
        stats.early_refreshes = d.early_refreshes.load(Ordering::Relaxed);
        stats.stale_served = d.stale_served.load(Ordering::Relaxed);
        stats.set_load_times(&d.load_times.snapshot());
        stats
    }

    /// The clock's reading (ns), for measuring a load in cache time.
    pub(crate) fn clock_now(&self) -> u64 {
        self.inner.clock.now()
    }

    /// The `n` most-read keys lately, hottest first, with estimated read
    /// counts (sampled, so estimates; see
    /// [`CacheBuilder::track_hot_keys`]). Empty unless tracking is on.
    pub fn hot_keys(&self, n: usize) -> Vec<(K, u64)> {
        match &self.inner.defend.hot {
            Some(h) => h.keys.top(n),
            None => Vec::new(),
        }
    }

    /// The defences' settings and state.
    pub(crate) fn defences(&self) -> &Defences<K> {
        &self.inner.defend
    }

    /// The durations of every loader call so far, as a histogram: take two
    /// and subtract ([`Histogram::since`]) for the percentiles of an
    /// interval. [`stats`](Self::stats) reports the percentiles since the
    /// cache was built.
    pub fn load_times(&self) -> Histogram {
        self.inner.defend.load_times.snapshot()
    }

    /// The label this cache's metrics carry (see
    /// [`CacheBuilder::name`]; `"larder"` by default).
    pub fn name(&self) -> &str {
        &self.inner.defend.name
    }

    /// Sends a snapshot of the statistics and the load times gathered since
    /// the previous call to the installed `metrics` recorder (see
    /// [`MetricsReporter`](crate::MetricsReporter) for the metric names),
    /// labelled with [`name`](Self::name). Call it on a timer; nothing is
    /// reported otherwise, and the cache starts no thread for it.
    #[cfg(feature = "metrics")]
    pub fn report_metrics(&self) {
        let stats = self.stats();
        let times = self.load_times();
        self.inner.defend.reporter.lock().report(&stats, &times);
    }

    /// Heap bytes held by the cache's tables, slabs and policies (not by
    /// what keys and values own themselves).
    #[doc(hidden)]
    pub fn heap_bytes(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().heap_bytes())
            .sum()
    }

    /// Negative marks stored (expired ones included until they are met).
    /// For tests.
    #[doc(hidden)]
    pub fn negative_mark_count(&self) -> usize {
        self.inner
            .shards
            .iter()
            .map(|s| s.read().negatives.len())
            .sum()
    }

    /// Slots in each shard's read buffer (for the loom models). For tests.
    #[doc(hidden)]
    pub const READ_BUFFER_SLOTS: usize = crate::shard::READ_BUFFER_SLOTS;

    /// What [`check_invariants`](Self::check_invariants) checks that holds
    /// even while other threads use the cache: each shard's structure, and
    /// the budget within capacity (the budget against the shards' weights
    /// is exact only at rest: an insert reserves room before it stores). For
    /// tests.
    #[doc(hidden)]
    pub fn check_invariants_while_busy(&self)
    where
        K: Hash,
        S: BuildHasher,
    {
        for shard in self.inner.shards.iter() {
            shard.read().validate();
        }
        assert!(
            self.inner.budget.committed() <= self.inner.capacity,
            "the budget is over capacity"
        );
    }

    /// Recomputes every internal count, weight and link and panics on a
    /// mismatch: each shard's, and the cache's budget against the shards'
    /// weights (so call it while no other thread uses the cache; see
    /// [`check_invariants_while_busy`](Self::check_invariants_while_busy)).
    /// For tests.
    #[doc(hidden)]
    pub fn check_invariants(&self)
    where
        K: Hash,
        S: BuildHasher,
    {
        let (mut shares, mut weight) = (0, 0);
        for shard in self.inner.shards.iter() {
            let core = shard.read();
            core.validate();
            shares += core.capacity();
            weight += core.weight();
        }
        assert_eq!(shares, self.inner.capacity, "shard shares do not add up");
        assert_eq!(
            weight,
            self.inner.budget.committed(),
            "the budget disagrees with the stored weight"
        );
        assert!(weight <= self.inner.capacity, "over capacity");
    }
}

/// Room an insert has taken from other shards: committed in the budget
/// until the insert uses it, and given back if it never does.
struct Credit<'a> {
    budget: &'a Budget,
    weight: u64,
}

impl Drop for Credit<'_> {
    fn drop(&mut self) {
        self.budget.release(self.weight);
    }
}

/// Folded multiply: the 128-bit product of the hash and an odd constant,
/// its halves xored. Every input bit reaches the high bits (the shard) and
/// the low half (what a shard keeps), for about a nanosecond.
#[inline]
fn random_seed() -> u64 {
    use std::hash::BuildHasher as _;
    std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64)
}
