//! The cache builder: collects settings, validates them and derives the
//! shard layout.

use std::hash::BuildHasher;
use std::marker::PhantomData;
use std::time::Duration;

use crate::cache::{Cache, ExpireAfter, Listener, Weigher};
use crate::policy::{Policy, RemovalCause};
use crate::time::clock::CacheClock;
use crate::time::refresh::RefreshTimes;
use crate::time::{Clock, Jitter};

/// Most shards a cache will use (a power of two).
pub(crate) const MAX_SHARDS: usize = 1 << 16; // 65,536

/// Shards per core when the shard count is left to the builder (see
/// [`CacheBuilder::shards`] for why so many).
const SHARDS_PER_CORE: usize = 32;

/// Most shards the builder picks by itself (a power of two), so that a big
/// machine does not pay thousands of shards' fixed cost.
const MAX_DEFAULT_SHARDS: usize = 4096;

/// Fewest entries (weight units) per shard the default layout aims for, so
/// that a small cache is one cache and not many tiny ones.
const MIN_SHARD_CAPACITY: u64 = 512;

/// Builds a [`Cache`].
///
/// Every setting has a default: capacity 10,000 entries, [`Policy::WTinyLfu`],
/// a shard count derived from the capacity and core count (see
/// [`shards`](Self::shards)), every entry weighing 1, no listener, and
/// ahash's randomly seeded hasher.
///
/// # Examples
///
/// ```
/// use larder::{Cache, Policy};
///
/// let cache: Cache<String, Vec<u8>> = Cache::builder()
///     .max_capacity(1 << 20) // bytes, since a weigher is set
///     .policy(Policy::Slru)
///     // Saturate rather than truncate: a value over 4 GiB weighs u32::MAX.
///     .weigher(|_key, value: &Vec<u8>| u32::try_from(value.len()).unwrap_or(u32::MAX))
///     .build();
/// cache.insert("a".to_string(), vec![0; 1000]);
/// assert_eq!(cache.weighted_size(), 1000);
/// ```
#[must_use = "a builder does nothing until .build() is called"]
pub struct CacheBuilder<K, V, S = ahash::RandomState> {
    pub(crate) capacity: u64,
    pub(crate) policy: Policy,
    pub(crate) shards: Option<usize>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    pub(crate) listener: Option<Listener<K, V>>,
    pub(crate) hasher: S,
    pub(crate) seed: Option<u64>,
    pub(crate) ttl: Option<Duration>,
    pub(crate) tti: Option<Duration>,
    pub(crate) jitter: Jitter,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) clock: Option<CacheClock>,
    pub(crate) negative_ttl: Option<Duration>,
    /// Refresh-ahead settings (methods in `crate::load::refresh`).
    pub(crate) refresh: RefreshSettings,
    /// Where an async loading cache's background refreshes run (method in
    /// `crate::load::future`).
    #[cfg(feature = "async")]
    pub(crate) spawner: Option<Spawner>,
    /// Backend defences (methods in `crate::defend`).
    pub(crate) defend: crate::defend::DefenceSettings<K>,
    _types: PhantomData<fn(K, V)>,
}

/// A user-supplied executor for background refreshes.
pub(crate) type Executor = std::sync::Arc<dyn Fn(Box<dyn FnOnce() + Send>) + Send + Sync>;

/// A user-supplied spawner for the background refreshes of an async
/// loading cache.
#[cfg(feature = "async")]
pub(crate) type Spawner = std::sync::Arc<
    dyn Fn(std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>) + Send + Sync,
>;

/// Refresh settings collected by the builder.
#[derive(Default)]
pub(crate) struct RefreshSettings {
    pub(crate) after: Option<Duration>,
    pub(crate) stale: Option<Duration>,
    /// `stale_if_error`: entries are kept this long past their time to
    /// live too (the shard's stale window is the longer of the two).
    pub(crate) stale_if_error: Option<Duration>,
    /// After a failed stale-if-error reload of a key, how long its readers
    /// get the stale value without another reload (`None`: the default).
    pub(crate) stale_if_error_retry: Option<Duration>,
    pub(crate) executor: Option<Executor>,
}

impl RefreshSettings {
    /// True if entries need refresh points.
    pub(crate) fn is_on(&self) -> bool {
        self.after.is_some() || self.stale.is_some() || self.stale_if_error.is_some()
    }

    /// How long past its time to live a shard keeps an entry.
    pub(crate) fn window(&self) -> Option<Duration> {
        match (self.stale, self.stale_if_error) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// The times a shard works with.
    pub(crate) fn times(&self) -> RefreshTimes {
        RefreshTimes::new(self.after, self.window())
    }
}

/// Capacity when [`CacheBuilder::max_capacity`] is not called.
pub const DEFAULT_CAPACITY: u64 = 10_000;

impl<K, V> Default for CacheBuilder<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K, V> CacheBuilder<K, V> {
    /// A builder with every default.
    pub fn new() -> Self {
        Self {
            capacity: DEFAULT_CAPACITY,
            policy: Policy::default(),
            shards: None,
            weigher: None,
            listener: None,
            hasher: ahash::RandomState::new(),
            seed: None,
            ttl: None,
            tti: None,
            jitter: Jitter::None,
            expire_after: None,
            clock: None,
            negative_ttl: None,
            refresh: RefreshSettings::default(),
            #[cfg(feature = "async")]
            spawner: None,
            defend: Default::default(),
            _types: PhantomData,
        }
    }
}

impl<K, V, S> CacheBuilder<K, V, S> {
    /// The most entries the cache holds, or the most total weight once a
    /// [`weigher`](Self::weigher) is set: a hard bound after every
    /// operation, and one the cache fills whatever the spread of the keys
    /// over its shards (a cache of capacity `n` holds any `n` keys of
    /// weight 1; see [`shards`](Self::shards)). Zero makes a cache that stores
    /// nothing: every insert is rejected (counted as an eviction, and the
    /// listener is told [`RemovalCause::Evicted`]).
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// The eviction policy (default [`Policy::WTinyLfu`]).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// The number of shards, rounded up to a power of two and capped at
    /// 65,536 and at the capacity (every shard holds at least one unit).
    ///
    /// By default larder uses `32 x cores` shards (rounded up to a power of
    /// two, at most 4,096), but never so many that a shard would hold fewer
    /// than 512 units: a cache of up to 1,023 entries has one shard and
    /// behaves as one cache (not 16 caches of 6), and on 2 cores a cache of
    /// 32,768 entries or more has 64 shards, or up to 80 when more make
    /// each shard's hash table fuller (a table has a power of two of
    /// buckets: 1,000,000 entries take 72 shards, whose tables are 85% full
    /// instead of 48%, 5.9 bytes per entry instead of 10.5). Many shards are cheap (a shard
    /// costs about 1 KiB before it holds anything) and keep threads from
    /// meeting on one lock. Measured with `examples/profile_get` at 2
    /// threads: on the eviction-heavy mix, 8 shards ran at 8.5 Mops/s, 64 at
    /// 11.2-11.7 and 128 at 11.6-12.6; on read-100 over a million entries,
    /// 8 shards ran at 20.4, 64 at 21.2-22.2 and 128 at 18.7-21.2 (each
    /// shard's lock, counters and headers are a few more cache lines that
    /// every thread keeps warm).
    ///
    /// The shards share one budget of `capacity` units: a shard may hold
    /// more or less than its share (`capacity / shards`, what its policy is
    /// sized for), so `n` keys fit in a capacity of `n` however unevenly
    /// they spread. Once the budget is spent, an insert evicts from its own
    /// shard, chosen by that shard's policy; a shard holding less than half
    /// its share, or less than the newcomer weighs, takes the room from the
    /// other shards instead (one lock at a time). An entry is rejected only
    /// if it weighs more than the whole capacity.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Weighs each entry; capacity then bounds the total weight. Called once
    /// per insert, before any lock is taken. A weight of 0 counts as 1: every
    /// entry costs something, so a flood of empty values cannot grow the
    /// cache without bound (larder has no pinned, weightless entries). A
    /// weight above the cache's capacity means the value is rejected.
    ///
    /// A weigher that panics fails the `insert` (or the load) that called
    /// it, before anything is stored; the cache is unchanged.
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(Box::new(weigher));
        self
    }

    /// Called for every entry that leaves the cache, with the reason.
    ///
    /// **Locking behaviour:** the listener runs on the thread whose operation
    /// removed the entry, after the shard lock is released and before that
    /// operation returns, so it may call back into the cache. If it panics,
    /// the remaining notifications of that operation still run and the first
    /// panic is then resumed on the caller.
    pub fn eviction_listener(
        mut self,
        listener: impl Fn(&K, &V, RemovalCause) + Send + Sync + 'static,
    ) -> Self {
        self.listener = Some(Box::new(listener));
        self
    }

    /// Seeds the policies' and expiry jitter's random number generators, for
    /// reproducible runs (default: a random seed).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Every entry expires this long after it was inserted or last updated
    /// (spread by [`ttl_jitter`](Self::ttl_jitter)). `Duration::ZERO`
    /// expires entries at once; `Duration::MAX` means never. A per-entry
    /// TTL ([`Cache::insert_with_ttl`]) or [`expire_after`](Self::expire_after)
    /// overrides it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use larder::{Cache, ManualClock};
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32> = Cache::builder()
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build();
    /// cache.insert(1, 1);
    /// clock.advance(Duration::from_secs(59));
    /// assert_eq!(cache.get(&1), Some(1));
    /// clock.advance(Duration::from_secs(1));
    /// assert_eq!(cache.get(&1), None);
    /// ```
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// Every entry expires when it has not been read (`get`, or a loading
    /// method's hit) or written for this long. `peek` and `contains_key` do
    /// not count as access. Combined with a time to live, an entry expires at
    /// the earlier of the two deadlines.
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Spreads every time to live (cache-wide, per entry and from
    /// [`expire_after`](Self::expire_after)) so that entries written together
    /// do not expire together. `0.1` (a [`Jitter::Fraction`]) draws each TTL
    /// uniformly from `[0.9, 1.1] x TTL`; [`Jitter::Up`] adds a uniform
    /// `[0, d]`. Time to idle is never jittered. The draws come from a
    /// per-shard generator seeded by [`seed`](Self::seed).
    pub fn ttl_jitter(mut self, jitter: impl Into<Jitter>) -> Self {
        self.jitter = jitter.into();
        self
    }

    /// Computes each entry's time to live from its key and value when it is
    /// inserted or updated: `Some(d)` overrides the cache-wide TTL, `None`
    /// keeps it (or no expiry when there is none).
    ///
    /// **Locking behaviour:** runs on the inserting thread before any lock is
    /// taken; it may call back into the cache.
    pub fn expire_after(
        mut self,
        f: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expire_after = Some(Box::new(f));
        self
    }

    /// Remembers for `ttl` that a key does not exist when the loader of
    /// [`Cache::optionally_get_with`] returns `None` (negative caching).
    /// While remembered, `optionally_get_with` returns `None` without
    /// calling its loader, and `get` reports a miss. Any `insert` or
    /// `remove` of the key, `invalidate_all` and `retain` forget it.
    ///
    /// Marks do not count toward capacity; their number is bounded per
    /// shard: by the shard's share of the capacity when entries are counted, and by
    /// `min(share, 1024)` once a [`weigher`](Self::weigher) makes
    /// capacity a weight (a byte budget is no count of keys). When a shard's
    /// marks are at the bound, expired marks go first, then the oldest.
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// The clock expiry reads (default: the kernel's coarse monotonic
    /// clock, read on every operation that needs the time). Pass a
    /// [`ManualClock`](crate::ManualClock) to control time in tests, or a
    /// [`TickingClock`](crate::TickingClock) to make each reading a single
    /// load in a cache with expiry that is read very often.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(CacheClock::from_user(clock));
        self
    }

    /// Uses `hasher` instead of ahash's randomly seeded one. Each shard
    /// keeps a clone of it (it hashes stored keys again where it needs
    /// their hash, instead of storing it), so it must be `Clone` to build
    /// the cache, and a key must hash the same on every call.
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> CacheBuilder<K, V, S2> {
        CacheBuilder {
            capacity: self.capacity,
            policy: self.policy,
            shards: self.shards,
            weigher: self.weigher,
            listener: self.listener,
            hasher,
            seed: self.seed,
            ttl: self.ttl,
            tti: self.tti,
            jitter: self.jitter,
            expire_after: self.expire_after,
            clock: self.clock,
            negative_ttl: self.negative_ttl,
            refresh: self.refresh,
            #[cfg(feature = "async")]
            spawner: self.spawner,
            defend: self.defend,
            _types: PhantomData,
        }
    }

    /// The number of shards this builder would use.
    pub(crate) fn shard_count(&self) -> usize {
        let cap_limit = usize::try_from(self.capacity.max(1)).unwrap_or(usize::MAX);
        let n = match self.shards {
            Some(n) => n.max(1).checked_next_power_of_two().unwrap_or(MAX_SHARDS),
            None => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let by_cores = (cores * SHARDS_PER_CORE)
                    .next_power_of_two()
                    .min(MAX_DEFAULT_SHARDS);
                let by_capacity = (self.capacity / MIN_SHARD_CAPACITY).max(1);
                let by_capacity = usize::try_from(by_capacity).unwrap_or(usize::MAX);
                let n = by_cores.min(prev_power_of_two(by_capacity));
                crate::shard::fit_tables(n, self.capacity, by_capacity)
            }
        };
        n.min(MAX_SHARDS).min(prev_power_of_two(cap_limit)).max(1)
    }

    /// Builds the cache.
    pub fn build(self) -> Cache<K, V, S>
    where
        K: std::hash::Hash + Eq,
        S: BuildHasher + Clone,
    {
        Cache::from_builder(self)
    }
}

fn prev_power_of_two(n: usize) -> usize {
    if n == 0 {
        1
    } else {
        1 << (usize::BITS - 1 - n.leading_zeros())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_count_follows_capacity() {
        let b = |cap: u64| CacheBuilder::<u8, u8>::new().max_capacity(cap);
        assert_eq!(b(0).shard_count(), 1);
        assert_eq!(b(100).shard_count(), 1);
        assert_eq!(b(1023).shard_count(), 1);
        assert_eq!(b(1024).shard_count(), 2);
        assert!(b(1 << 30).shard_count() <= MAX_SHARDS);
        assert_eq!(b(100).shards(16).shard_count(), 16);
        assert_eq!(b(100).shards(5).shard_count(), 8);
        assert_eq!(b(3).shards(16).shard_count(), 2);
        assert_eq!(b(100).shards(0).shard_count(), 1);
        assert_eq!(b(u64::MAX).shards(usize::MAX).shard_count(), MAX_SHARDS);
    }
}
