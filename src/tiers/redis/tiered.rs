//! [`TieredCache`]: the in-process cache (L1) in front of a shared Redis
//! (L2), and [`CacheBuilder::build_tiered`].

use std::collections::HashSet;
use std::convert::Infallible;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::codec::Codec;
use super::conn::CallError;
use super::epochs::{Epochs, Snapshot};
use super::invalidation::{self, Subscriber};
use super::lease::{poll_pause, Found, Scripts};
use super::tier::{RedisTier, TierInner};
use super::TierStats;
use crate::builder::CacheBuilder;
use crate::cache::{Cache, ExpireAfter};
use crate::stats::Stats;
use crate::time::Jitter;

/// Invalidation epochs are striped by key so that an invalidation of one
/// key rarely makes a concurrent fill of another key drop its value.
const EPOCH_STRIPES: usize = 64;

/// Most keys remembered for a repair (an invalidation that could not reach
/// Redis); beyond it an arbitrary one is forgotten for each new one, and
/// counted.
const MAX_PENDING_REPAIRS: usize = 65_536;

type Loader<K, V, E> = Box<dyn Fn(&K) -> Result<V, E> + Send + Sync>;

/// An in-process [`Cache`] in front of a Redis shared by every process of a
/// fleet, with fleet-wide invalidation and a fleet-wide lease on loads.
///
/// Built by [`CacheBuilder::build_tiered`] (or
/// [`build_tiered_try`](CacheBuilder::build_tiered_try) for a fallible
/// loader). Cheap to clone; the clones share everything. The subscriber
/// thread stops within one command timeout after the last clone is
/// dropped.
///
/// * [`get`](Self::get): the L1 (no network), else, single-flight in this
///   process, Redis (`GET`; a hit fills the L1 with the entry's remaining
///   Redis TTL), else the loader under a fleet-wide lease, and the value is
///   written to Redis with `SET .. PX` (the TTL with the builder's jitter).
/// * [`insert`](Self::insert) and [`invalidate`](Self::invalidate) change
///   this L1 and Redis and publish an invalidation that drops the key from
///   every other process's L1.
/// * When Redis is down or slow, every call to it ends within its timeout,
///   the error is counted in [`tier_stats`](Self::tier_stats) and reads go
///   on from the L1 and the loader. The connection and subscription come
///   back by themselves.
///
/// See the [module documentation](super) for the protocol.
pub struct TieredCache<K, V, E = Infallible, S = ahash::RandomState> {
    l1: Cache<K, V, S>,
    handle: Arc<Handle<K, V, E, S>>,
}

struct Handle<K, V, E, S> {
    shared: Arc<Shared<K, V, S>>,
    loader: Loader<K, V, E>,
}

impl<K, V, E, S> Drop for Handle<K, V, E, S> {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
    }
}

/// What the caller-facing handles and the subscriber thread share.
struct Shared<K, V, S> {
    l1: Cache<K, V, S>,
    tier: Arc<TierInner>,
    scripts: Scripts,
    /// This cache's id on the invalidation channel.
    id: u64,
    ttl: Option<Duration>,
    jitter: Jitter,
    expire_after: Option<ExpireAfter<K, V>>,
    /// Guards fills against invalidations (see `epochs`).
    epochs: Epochs,
    stripe_hasher: ahash::RandomState,
    /// Encoded keys whose invalidation did not reach Redis.
    pending: Mutex<HashSet<Vec<u8>>>,
    has_pending: AtomicBool,
    subscribed: AtomicBool,
    stop: Arc<AtomicBool>,
    rng: AtomicU64,
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    l2_hits: AtomicU64,
    l2_misses: AtomicU64,
    l2_errors: AtomicU64,
    l2_skipped: AtomicU64,
    remote_invalidations: AtomicU64,
    leases_won: AtomicU64,
    leases_waited: AtomicU64,
    lease_timeouts: AtomicU64,
    subscriptions: AtomicU64,
    subscriptions_lost: AtomicU64,
    l1_drops: AtomicU64,
    repairs: AtomicU64,
    repairs_forgotten: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// Builds a [`TieredCache`]: this cache as the L1, `tier` as the L2 and
    /// `loader` as the source of truth.
    ///
    /// The builder's [`time_to_live`](Self::time_to_live),
    /// [`ttl_jitter`](Self::ttl_jitter) and
    /// [`expire_after`](Self::expire_after) give each value's TTL; the tier
    /// applies the jitter once, to the Redis TTL, and the L1 keeps each
    /// entry exactly as long as Redis does (the remaining `PTTL` when it
    /// comes from Redis), so both tiers expire together. Without a TTL,
    /// values never expire in Redis.
    ///
    /// [`refresh_after`](Self::refresh_after) and
    /// [`stale_while_revalidate`](Self::stale_while_revalidate) belong to
    /// [`LoadingCache`](crate::LoadingCache) and have no effect here.
    ///
    /// Starts the invalidation subscriber thread and waits up to the
    /// tier's connect plus command timeout for its first subscription (so
    /// a process that starts while Redis is down starts at once, deaf until
    /// Redis is back).
    ///
    /// **Locking behaviour:** the loader runs with no lock held, on the
    /// thread of the caller that missed. The builder's eviction listener
    /// also runs on the subscriber thread, for keys that other processes
    /// invalidate (with [`RemovalCause::Explicit`](crate::RemovalCause)).
    ///
    /// # Panics
    ///
    /// If the operating system cannot start the subscriber thread.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use larder::Cache;
    /// use larder::redis::{RedisTier, TieredCache};
    ///
    /// # fn load_user(id: u64) -> String { format!("user {id}") }
    /// let tier = RedisTier::builder("redis://127.0.0.1:6379/").namespace("users").build()?;
    /// let users: TieredCache<u64, String> = Cache::builder()
    ///     .max_capacity(10_000)
    ///     .time_to_live(Duration::from_secs(300))
    ///     .ttl_jitter(0.1)
    ///     .build_tiered(tier, |id: &u64| load_user(*id));
    /// let name: String = users.get(&7); // L1, then Redis, then the loader
    /// users.insert(7, "Ada".to_string()); // here and in Redis; every other process drops its copy
    /// users.invalidate(&7); // gone here, from Redis and from every other process
    /// # Ok::<(), larder::redis::Error>(())
    /// ```
    pub fn build_tiered(
        self,
        tier: RedisTier,
        loader: impl Fn(&K) -> V + Send + Sync + 'static,
    ) -> TieredCache<K, V, Infallible, S>
    where
        K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
        V: Clone + Codec + Send + Sync + 'static,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        self.build_tiered_try(tier, move |k: &K| Ok::<V, Infallible>(loader(k)))
    }

    /// Like [`build_tiered`](Self::build_tiered) with a fallible loader:
    /// [`TieredCache::try_get`] returns its errors (shared with every
    /// caller waiting on the same load in this process; never cached, in
    /// the L1 or in Redis).
    ///
    /// # Panics
    ///
    /// If the operating system cannot start the subscriber thread.
    pub fn build_tiered_try<E>(
        mut self,
        tier: RedisTier,
        loader: impl Fn(&K) -> Result<V, E> + Send + Sync + 'static,
    ) -> TieredCache<K, V, E, S>
    where
        K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
        V: Clone + Codec + Send + Sync + 'static,
        E: Send + Sync + 'static,
        S: BuildHasher + Clone + Send + Sync + 'static,
    {
        // The tier applies these itself (see above); the L1 gets each
        // entry's final TTL.
        let ttl = self.ttl;
        let jitter = std::mem::take(&mut self.jitter);
        let expire_after = self.expire_after.take();
        let l1 = self.build();
        let stop = Arc::new(AtomicBool::new(false));
        let seed = process_random();
        let shared = Arc::new(Shared {
            l1: l1.clone(),
            tier: tier.inner.clone(),
            scripts: Scripts::new(),
            id: seed,
            ttl,
            jitter,
            expire_after,
            epochs: Epochs::new(EPOCH_STRIPES),
            stripe_hasher: ahash::RandomState::new(),
            pending: Mutex::new(HashSet::new()),
            has_pending: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            stop: stop.clone(),
            rng: AtomicU64::new(seed ^ 0x9e37_79b9_7f4a_7c15),
            counters: Counters::default(),
        });
        let sub: Arc<dyn Subscriber> = shared.clone();
        invalidation::spawn(tier.inner.clone(), sub, stop)
            .expect("larder: cannot start the Redis subscriber thread");
        let t = tier.inner.pool.timeouts();
        let deadline = Instant::now() + t.connect + t.command;
        while !shared.subscribed.load(Ordering::Acquire) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        TieredCache {
            l1,
            handle: Arc::new(Handle {
                shared,
                loader: Box::new(loader),
            }),
        }
    }
}

/// A random 64-bit id, different in every process and every call.
fn process_random() -> u64 {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    ahash::RandomState::new().hash_one((
        std::process::id(),
        nanos,
        CALLS.fetch_add(1, Ordering::Relaxed),
    ))
}

impl<K, V, E, S> Clone for TieredCache<K, V, E, S> {
    fn clone(&self) -> Self {
        Self {
            l1: self.l1.clone(),
            handle: self.handle.clone(),
        }
    }
}

impl<K, V, E, S> fmt::Debug for TieredCache<K, V, E, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TieredCache")
            .field("l1", &self.l1)
            .field("namespace", &self.handle.shared.tier.namespace)
            .finish_non_exhaustive()
    }
}

impl<K, V, E, S> TieredCache<K, V, E, S> {
    /// The in-process tier. Changes made through it directly (`insert`,
    /// `remove`) stay in this process.
    pub fn cache(&self) -> &Cache<K, V, S> {
        &self.l1
    }

    /// The L1's statistics (hits here are L1 hits).
    pub fn stats(&self) -> Stats {
        self.l1.stats()
    }

    /// The shared tier's counters since this cache was built.
    pub fn tier_stats(&self) -> TierStats {
        let c = &self.handle.shared.counters;
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        TierStats {
            l2_hits: r(&c.l2_hits),
            l2_misses: r(&c.l2_misses),
            l2_errors: r(&c.l2_errors),
            l2_skipped: r(&c.l2_skipped),
            remote_invalidations: r(&c.remote_invalidations),
            leases_won: r(&c.leases_won),
            leases_waited: r(&c.leases_waited),
            lease_timeouts: r(&c.lease_timeouts),
            subscriptions: r(&c.subscriptions),
            subscriptions_lost: r(&c.subscriptions_lost),
            l1_drops: r(&c.l1_drops),
            repairs: r(&c.repairs),
            repairs_forgotten: r(&c.repairs_forgotten),
        }
    }

    /// True while the invalidation subscription is in place (this process
    /// hears the fleet's invalidations).
    pub fn is_subscribed(&self) -> bool {
        self.handle.shared.subscribed.load(Ordering::Acquire)
    }

    /// The shared tier.
    pub fn tier(&self) -> RedisTier {
        RedisTier {
            inner: self.handle.shared.tier.clone(),
        }
    }
}

impl<K, V, S> TieredCache<K, V, Infallible, S>
where
    K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
    V: Clone + Codec + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Returns the value for `key`: from the L1 if it is there (no network),
    /// else from Redis, else from the loader (see the type's docs).
    ///
    /// # Panics
    ///
    /// If the loader panics (as [`Cache::get_with`]).
    #[inline]
    pub fn get(&self, key: &K) -> V {
        if let Some(v) = self.l1.get(key) {
            return v;
        }
        match self.load(key) {
            Ok(v) => v,
            Err(never) => match *never {},
        }
    }
}

impl<K, V, E, S> TieredCache<K, V, E, S>
where
    K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
    V: Clone + Codec + Send + Sync + 'static,
    E: Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    /// Like [`get`](Self::get) for a fallible loader.
    ///
    /// # Errors
    ///
    /// The loader's error, shared with the callers in this process that
    /// waited for the same load. Redis errors are never returned: they are
    /// counted, and the loader is asked instead.
    #[inline]
    pub fn try_get(&self, key: &K) -> Result<V, Arc<E>> {
        if let Some(v) = self.l1.get(key) {
            return Ok(v);
        }
        self.load(key)
    }

    /// The value for `key` if the L1 has it (touches no network).
    pub fn get_if_present(&self, key: &K) -> Option<V> {
        self.l1.get(key)
    }

    #[cold]
    fn load(&self, key: &K) -> Result<V, Arc<E>> {
        let h = &*self.handle;
        self.l1
            .try_load_missing(key.clone(), || h.shared.fetch(key, &h.loader))
    }

    /// Stores `value` here and in Redis (with the TTL the builder gives it),
    /// and tells every other process to drop its copy. If Redis cannot be
    /// reached, the value is still stored here; the key is remembered and
    /// invalidated in Redis and the fleet once Redis is back.
    pub fn insert(&self, key: K, value: V) {
        self.handle.shared.insert(key, value);
    }

    /// Removes `key` from this L1 and from Redis, and tells every other
    /// process to drop it. If Redis cannot be reached, the invalidation is
    /// sent once Redis is back.
    pub fn invalidate(&self, key: &K) {
        self.handle.shared.invalidate(key);
    }
}

impl<K, V, S> Shared<K, V, S>
where
    K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
    V: Clone + Codec + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn encode_key(key: &K) -> Vec<u8> {
        let mut b = Vec::new();
        key.encode(&mut b);
        b
    }

    fn stripe(&self, encoded: &[u8]) -> usize {
        self.epochs.stripe(self.stripe_hasher.hash_one(encoded))
    }

    fn snapshot(&self, encoded: &[u8]) -> Snapshot {
        self.epochs.snapshot(self.stripe(encoded))
    }

    /// Stores a value in the L1 unless an invalidation arrived since `s`
    /// (then the value may be stale: leave the key empty).
    fn fill(&self, key: &K, value: V, ttl: Option<Duration>, s: Snapshot) {
        self.epochs.fill(
            s,
            || match ttl {
                Some(t) => self.l1.insert_with_ttl(key.clone(), value, t),
                None => self.l1.insert(key.clone(), value),
            },
            || {
                self.l1.remove(key);
            },
        );
    }

    /// The TTL a new value gets, jitter applied.
    fn entry_ttl(&self, key: &K, value: &V) -> Option<Duration> {
        let base = match &self.expire_after {
            Some(f) => f(key, value).or(self.ttl),
            None => self.ttl,
        }?;
        Some(self.jittered(base))
    }

    fn jittered(&self, ttl: Duration) -> Duration {
        let nanos = u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX);
        if nanos == u64::MAX || ttl.is_zero() || self.jitter.is_none() {
            return ttl;
        }
        let (lo, hi) = match self.jitter {
            Jitter::Fraction(f) => {
                let spread = (nanos as f64 * f.min(1.0)) as u64;
                (nanos.saturating_sub(spread), nanos.saturating_add(spread))
            }
            Jitter::Up(d) => {
                let d = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
                (nanos, nanos.saturating_add(d))
            }
            Jitter::None => (nanos, nanos),
        };
        let span = hi - lo;
        let r = self.random();
        let pick = if span == u64::MAX { r } else { r % (span + 1) };
        Duration::from_nanos(lo + pick)
    }

    /// SplitMix64 over a shared counter.
    fn random(&self) -> u64 {
        let mut z = self
            .rng
            .fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn call<T>(
        &self,
        f: impl FnOnce(&mut dyn ::redis::ConnectionLike) -> ::redis::RedisResult<T>,
    ) -> Option<T> {
        match self.tier.pool.call(f) {
            Ok(v) => Some(v),
            Err(CallError::Skipped) => {
                bump(&self.counters.l2_skipped);
                None
            }
            Err(CallError::Failed(_)) => {
                bump(&self.counters.l2_errors);
                None
            }
        }
    }

    fn is_pending(&self, encoded: &[u8]) -> bool {
        self.has_pending.load(Ordering::Acquire) && self.pending.lock().contains(encoded)
    }

    fn remember_repair(&self, encoded: Vec<u8>) {
        let mut p = self.pending.lock();
        if p.len() >= MAX_PENDING_REPAIRS && !p.contains(&encoded) {
            if let Some(old) = p.iter().next().cloned() {
                p.remove(&old);
                bump(&self.counters.repairs_forgotten);
            }
        }
        p.insert(encoded);
        self.has_pending.store(true, Ordering::Release);
    }

    /// The L1 missed (single-flight in this process): Redis, else the
    /// loader under the fleet's lease. Always leaves the L1 either filled
    /// by `fill` or with the key removed, so the flight stores nothing of
    /// its own.
    fn fetch<E>(&self, key: &K, loader: &Loader<K, V, E>) -> Result<V, E> {
        let encoded = Self::encode_key(key);
        let snap = self.snapshot(&encoded);
        if self.is_pending(&encoded) {
            // Redis may still hold a value this process invalidated.
            return self.load_alone(key, snap, loader);
        }
        let vkey = self.tier.value_key(&encoded);
        let lkey = self.tier.lock_key(&vkey);
        let token = format!("{:016x}{:016x}", self.id, self.random()).into_bytes();
        let lease = self.tier.lease;
        let wait_until = Instant::now() + self.tier.lease_wait;
        let mut polls = 0u32;
        loop {
            let found = self.call(|c| self.scripts.get_or_lease(c, &vkey, &lkey, &token, lease));
            match found {
                None => return self.load_alone(key, snap, loader),
                Some(Found::Value(bytes, ttl)) => match V::decode(&bytes) {
                    Ok(v) => {
                        // A miss that waited was counted as a miss.
                        if polls == 0 {
                            bump(&self.counters.l2_hits);
                        } else {
                            bump(&self.counters.leases_waited);
                        }
                        self.fill(key, v.clone(), ttl, snap);
                        return Ok(v);
                    }
                    Err(_) => {
                        // Written by another version? Load and overwrite.
                        bump(&self.counters.l2_errors);
                        return self.load_and_write(key, &vkey, &lkey, snap, loader);
                    }
                },
                Some(Found::Won) => {
                    if polls == 0 {
                        bump(&self.counters.l2_misses);
                    }
                    bump(&self.counters.leases_won);
                    return self.load_leased(key, &vkey, &lkey, &token, snap, loader);
                }
                Some(Found::Held) => {
                    if polls == 0 {
                        bump(&self.counters.l2_misses);
                    }
                    let now = Instant::now();
                    if now >= wait_until {
                        bump(&self.counters.lease_timeouts);
                        return self.load_alone(key, snap, loader);
                    }
                    let pause = poll_pause(polls).min(wait_until - now);
                    std::thread::sleep(pause);
                    polls += 1;
                }
            }
        }
    }

    /// Loads without Redis (unreachable, or the wait ran out): the value
    /// goes to the L1 only.
    fn load_alone<E>(&self, key: &K, snap: Snapshot, loader: &Loader<K, V, E>) -> Result<V, E> {
        match loader(key) {
            Ok(v) => {
                let ttl = self.entry_ttl(key, &v);
                self.fill(key, v.clone(), ttl, snap);
                Ok(v)
            }
            Err(e) => {
                self.l1.remove(key);
                Err(e)
            }
        }
    }

    /// Loads holding the lease, then stores the value in Redis (if the
    /// lease is still ours) and in the L1.
    #[allow(clippy::too_many_arguments)]
    fn load_leased<E>(
        &self,
        key: &K,
        vkey: &[u8],
        lkey: &[u8],
        token: &[u8],
        snap: Snapshot,
        loader: &Loader<K, V, E>,
    ) -> Result<V, E> {
        let v = match loader(key) {
            Ok(v) => v,
            Err(e) => {
                // Free the lease at once so others need not wait it out.
                let _ = self.call(|c| {
                    ::redis::cmd("EVAL")
                        .arg("if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end return 1")
                        .arg(1)
                        .arg(lkey)
                        .arg(token)
                        .query::<i64>(c)
                });
                self.l1.remove(key);
                return Err(e);
            }
        };
        let ttl = self.entry_ttl(key, &v);
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        let stored = self.call(|c| self.scripts.store(c, vkey, lkey, token, &bytes, ttl));
        match stored {
            // An invalidation cancelled the lease: this value may predate it.
            Some(false) => {
                self.l1.remove(key);
            }
            Some(true) | None => self.fill(key, v.clone(), ttl, snap),
        }
        Ok(v)
    }

    /// Loads and writes unconditionally (the Redis value was unreadable).
    fn load_and_write<E>(
        &self,
        key: &K,
        vkey: &[u8],
        lkey: &[u8],
        snap: Snapshot,
        loader: &Loader<K, V, E>,
    ) -> Result<V, E> {
        let v = self.load_alone(key, snap, loader)?;
        let ttl = self.entry_ttl(key, &v);
        let mut bytes = Vec::new();
        v.encode(&mut bytes);
        let encoded = Self::encode_key(key);
        let msg = invalidation::key_message(self.id, &encoded);
        let channel = &self.tier.channel;
        let _ = self.call(|c| {
            self.scripts
                .write(c, vkey, lkey, &bytes, ttl, channel, &msg)
        });
        Ok(v)
    }

    fn insert(&self, key: K, value: V) {
        let encoded = Self::encode_key(&key);
        let vkey = self.tier.value_key(&encoded);
        let lkey = self.tier.lock_key(&vkey);
        let ttl = self.entry_ttl(&key, &value);
        let mut bytes = Vec::new();
        value.encode(&mut bytes);
        let msg = invalidation::key_message(self.id, &encoded);
        let channel = &self.tier.channel;
        let written = self.call(|c| {
            self.scripts
                .write(c, &vkey, &lkey, &bytes, ttl, channel, &msg)
        });
        if written.is_none() {
            self.remember_repair(encoded.clone());
        }
        // Bump the epoch, then fill against the bumped value: concurrent
        // fills of this key in this process that read Redis before the
        // write see the bump and drop what they read.
        let snap = self.epochs.bump_for_write(self.stripe(&encoded));
        self.fill(&key, value, ttl, snap);
    }

    fn invalidate(&self, key: &K) {
        let encoded = Self::encode_key(key);
        let vkey = self.tier.value_key(&encoded);
        let lkey = self.tier.lock_key(&vkey);
        let msg = invalidation::key_message(self.id, &encoded);
        let channel = &self.tier.channel;
        let done = self.call(|c| self.scripts.invalidate(c, &vkey, &lkey, channel, &msg));
        if done.is_none() {
            self.remember_repair(encoded.clone());
        }
        self.drop_local(&encoded, Some(key));
    }

    /// Drops a key from the L1, making concurrent fills of it drop theirs.
    fn drop_local(&self, encoded: &[u8], key: Option<&K>) {
        self.epochs.bump(self.stripe(encoded));
        match key {
            Some(k) => {
                self.l1.remove(k);
            }
            None => match K::decode(encoded) {
                Ok(k) => {
                    self.l1.remove(&k);
                }
                Err(_) => self.drop_all(),
            },
        }
    }

    fn drop_all(&self) {
        self.epochs.bump_all();
        self.l1.invalidate_all();
        bump(&self.counters.l1_drops);
    }

    /// Sends the invalidations that could not reach Redis.
    fn repair(&self) {
        if !self.has_pending.load(Ordering::Acquire) || self.tier.pool.is_backing_off() {
            return;
        }
        let keys: Vec<Vec<u8>> = self.pending.lock().iter().cloned().collect();
        for encoded in keys {
            let vkey = self.tier.value_key(&encoded);
            let lkey = self.tier.lock_key(&vkey);
            let msg = invalidation::key_message(self.id, &encoded);
            let channel = &self.tier.channel;
            let sent = self
                .tier
                .pool
                .call(|c| self.scripts.invalidate(c, &vkey, &lkey, channel, &msg));
            if sent.is_err() {
                return; // still down; the next idle tick tries again
            }
            let mut p = self.pending.lock();
            p.remove(&encoded);
            if p.is_empty() {
                self.has_pending.store(false, Ordering::Release);
            }
            drop(p);
            bump(&self.counters.repairs);
            // Our own L1 may have refilled from the old Redis value.
            self.drop_local(&encoded, None);
        }
    }
}

impl<K, V, S> Subscriber for Shared<K, V, S>
where
    K: Hash + Eq + Clone + Codec + Send + Sync + 'static,
    V: Clone + Codec + Send + Sync + 'static,
    S: BuildHasher + Send + Sync + 'static,
{
    fn invalidated(&self, encoded_key: &[u8]) {
        bump(&self.counters.remote_invalidations);
        self.drop_local(encoded_key, None);
    }

    fn malformed(&self) {
        self.drop_all();
    }

    fn lost(&self) {
        // Deaf first (so nothing is filled as if invalidations still
        // came), then the drop; the loss is counted once the L1 is empty,
        // so a caller that sees the count sees the drop done.
        self.subscribed.store(false, Ordering::Release);
        self.drop_all();
        bump(&self.counters.subscriptions_lost);
    }

    fn subscribed(&self) {
        let first = self.counters.subscriptions.fetch_add(1, Ordering::Relaxed) == 0;
        // Anything filled while deaf is covered by no invalidation. (At
        // start-up, build_tiered waits for this before returning, so there
        // is usually nothing to drop.)
        self.epochs.bump_all();
        if !first || !self.l1.is_empty() {
            self.drop_all();
        }
        self.subscribed.store(true, Ordering::Release);
        self.tier.pool.reached();
        self.repair();
    }

    fn idle(&self) {
        self.repair();
    }

    fn sender(&self) -> u64 {
        self.id
    }
}
