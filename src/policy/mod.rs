//! Eviction policies: which entry leaves when a shard is over capacity.
//!
//! **This is where eviction is decided.** A policy sees only slab indices
//! ([`Idx`]), the key's hash and the entry's weight, never the key or the
//! value: storage (the shard) owns `K` and `V`, the policy owns ordering
//! metadata. Each policy is plain single-threaded code behind the
//! [`EvictionPolicy`] trait; the shard calls it under its write lock.
//!
//! Users choose one by value with [`Policy`]; inside, [`AnyPolicy`]
//! dispatches with a `match`, so there is no `dyn` call on the hot path.

pub(crate) mod fifo;
pub(crate) mod ghost;
pub(crate) mod lfu;
pub(crate) mod list;
pub(crate) mod lru;
pub(crate) mod meta;
pub(crate) mod minisim;
pub(crate) mod random;
pub(crate) mod s3fifo;
pub(crate) mod sieve;
pub(crate) mod sketch;
pub(crate) mod slru;
pub(crate) mod wtinylfu;

/// Index of an entry in its shard's slab.
pub(crate) type Idx = u32;

/// Gives the key hash of any tracked entry (read from the shard's slab), for
/// the policies that estimate frequencies by hash.
pub(crate) type HashOf<'a> = &'a dyn Fn(Idx) -> u64;

/// A [`HashOf`] for tests of policies that never ask for hashes.
#[cfg(test)]
pub(crate) fn no_hashes(_: Idx) -> u64 {
    0
}

/// The eviction policy a cache uses; pick one with
/// [`CacheBuilder::policy`](crate::CacheBuilder::policy).
///
/// Every policy decides per shard, in O(1) per operation (Random samples in
/// O(1) too). See each variant for what it is good at.
///
/// # Examples
///
/// ```
/// use larder::{Cache, Policy};
///
/// for policy in Policy::ALL {
///     let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).policy(policy).build();
///     cache.insert(1, 1);
///     assert_eq!(cache.get(&1), Some(1));
/// }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// Least recently used: evicts the entry untouched for longest. Strong on
    /// recency-friendly workloads, weak against scans and loops.
    Lru,
    /// Least frequently used, with O(1) frequency buckets and periodic
    /// halving of every count (aging) so that old popularity fades.
    Lfu,
    /// First in, first out: evicts the oldest insertion; hits change nothing.
    Fifo,
    /// Evicts a uniformly random entry.
    Random,
    /// Segmented LRU: new entries go to a probation segment, a hit promotes
    /// to a protected segment (80% of capacity); scans only churn probation.
    Slru,
    /// Window TinyLFU (the default): a small LRU window in front of an SLRU
    /// main space, with a frequency sketch deciding admission to main.
    /// The best hit ratio of the eight on most real workloads.
    #[default]
    WTinyLfu,
    /// S3-FIFO (SOSP 2023): a small FIFO (10%) that turns away keys not
    /// reused while in it, a main FIFO with 2-bit reinsertion, and a ghost
    /// queue that sends keys coming back soon straight to main. Scan
    /// resistant; a read hit is one byte store at most.
    S3Fifo,
    /// SIEVE (NSDI 2024): one FIFO queue with a visited bit per entry and a
    /// hand that evicts the first unvisited entry it meets, leaving
    /// survivors in place. Simple and good on web-like workloads; a read
    /// hit is one byte store at most.
    Sieve,
}

impl Policy {
    /// All eight policies, for benchmarks and tests that compare them.
    pub const ALL: [Policy; 8] = [
        Policy::Lru,
        Policy::Lfu,
        Policy::Fifo,
        Policy::Random,
        Policy::Slru,
        Policy::WTinyLfu,
        Policy::S3Fifo,
        Policy::Sieve,
    ];

    /// The policy's name as written in this enum (`"WTinyLfu"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Policy::Lru => "Lru",
            Policy::Lfu => "Lfu",
            Policy::Fifo => "Fifo",
            Policy::Random => "Random",
            Policy::Slru => "Slru",
            Policy::WTinyLfu => "WTinyLfu",
            Policy::S3Fifo => "S3Fifo",
            Policy::Sieve => "Sieve",
        }
    }
}

impl std::fmt::Display for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Policy {
    type Err = String;

    /// Parses a policy name, ignoring case and `-`/`_` (`"w-tinylfu"` works).
    fn from_str(s: &str) -> Result<Self, String> {
        let norm: String = s
            .chars()
            .filter(|c| *c != '-' && *c != '_')
            .collect::<String>()
            .to_ascii_lowercase();
        Policy::ALL
            .into_iter()
            .find(|p| p.name().to_ascii_lowercase() == norm)
            .ok_or_else(|| format!("unknown policy {s:?}"))
    }
}

/// Why an entry left the cache, as told to the
/// [eviction listener](crate::CacheBuilder::eviction_listener).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RemovalCause {
    /// The policy chose it to make room, or it was heavier than the capacity
    /// and so never stored.
    Evicted,
    /// Its time to live or time to idle ran out.
    Expired,
    /// `remove`, `invalidate_all` or `retain` took it out.
    Explicit,
    /// An insert for the same key replaced its value.
    Replaced,
}

impl RemovalCause {
    /// True for the causes the cache decided on its own (evicted, expired).
    pub fn was_evicted(self) -> bool {
        matches!(self, RemovalCause::Evicted | RemovalCause::Expired)
    }
}

/// The contract between a shard and its eviction policy.
///
/// The shard calls these under its write lock, in the order things happened
/// (for the policies that take hits through the read buffer, buffered hits
/// are replayed, in order, before any insert or eviction; see
/// [`AnyPolicy::record_hit`]). `idx` is always an entry the policy was told about with
/// `on_insert` and not yet removed, except `on_insert` itself.
pub(crate) trait EvictionPolicy {
    /// A new entry now lives at `idx`.
    fn on_insert(&mut self, idx: Idx, hash: u64, weight: u32, hash_of: HashOf<'_>);
    /// A read hit on `idx`.
    fn on_access(&mut self, idx: Idx, hash: u64);
    /// The value at `idx` was replaced (counts as an access); its weight may
    /// have changed.
    fn on_update(&mut self, idx: Idx, hash: u64, weight: u32, hash_of: HashOf<'_>);
    /// The entry left for a reason other than this policy choosing it
    /// (explicit removal, expiry, replacement by a rejected value).
    fn on_remove(&mut self, idx: Idx);
    /// Chooses the next entry to evict and forgets it. `hash_of` gives the
    /// key hash of any tracked entry (for admission by frequency). Returns
    /// `None` only when the policy tracks nothing.
    fn evict(&mut self, hash_of: HashOf<'_>) -> Option<Idx>;
    /// [`evict`](Self::evict), and the victim's key hash if the policy
    /// asked `hash_of` for it on the way (so that the shard need not hash
    /// the key again to take it out of its table).
    #[inline]
    fn evict_hashed(&mut self, hash_of: HashOf<'_>) -> Option<(Idx, Option<u64>)> {
        self.evict(hash_of).map(|idx| (idx, None))
    }
    /// True if the policy wants [`observe_hits`](Self::observe_hits) called
    /// before the next `on_insert` (W-TinyLFU's climber samples the hit
    /// rate; hits themselves are counted outside the lock).
    fn wants_hits(&self) -> bool {
        false
    }
    /// The shard's running total of read hits.
    fn observe_hits(&mut self, _total: u64) {}
    /// Forgets every entry.
    fn clear(&mut self);
    /// Number of entries tracked.
    fn len(&self) -> usize;
    /// Total weight tracked.
    fn weight(&self) -> u64;
    /// Heap bytes held by the policy's own structures.
    fn heap_bytes(&self) -> usize;
    /// The shard's slab now has room for `slots` indices: per-index arrays
    /// take room for as many at once, instead of doubling as indices
    /// arrive (which left up to half of them unused: 1.6 bytes per entry
    /// of W-TinyLFU's links and meta bytes at 1,000,000 entries).
    fn reserve_slots(&mut self, _slots: usize) {}
    /// Checks internal invariants; panics on the first inconsistency.
    fn validate(&self);
}

/// The eight policies behind one concrete type: static dispatch by `match`.
///
/// `repr(u8)`: the kind comes first, so a read's `match` loads it from the
/// policy's first bytes, beside what the policy reads on a hit (see
/// `crate::shard::Core`), instead of from wherever a niche put it.
///
/// W-TinyLFU is much the largest variant (about 400 bytes): there is one
/// per shard, not per entry, and boxing it would put a pointer chase in
/// front of every read hit, so it stays inline.
#[derive(Debug)]
#[repr(u8)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum AnyPolicy {
    Lru(lru::Lru),
    Lfu(lfu::Lfu),
    Fifo(fifo::Fifo),
    Random(random::Random),
    Slru(slru::Slru),
    WTinyLfu(wtinylfu::WTinyLfu),
    S3Fifo(s3fifo::S3Fifo),
    Sieve(sieve::Sieve),
}

impl AnyPolicy {
    /// A policy for one shard holding at most `capacity` weight. `seed`
    /// makes the randomised policies reproducible; `exact_hits` makes
    /// W-TinyLFU take hits in order through the read buffer (small caches).
    /// `sims` are the cache's miniature simulations, for W-TinyLFU's window.
    pub(crate) fn new(
        policy: Policy,
        capacity: u64,
        seed: u64,
        exact_hits: bool,
        sims: Option<crate::sync::Arc<minisim::MiniSims>>,
    ) -> Self {
        match policy {
            Policy::Lru => AnyPolicy::Lru(lru::Lru::new()),
            Policy::Lfu => AnyPolicy::Lfu(lfu::Lfu::new(capacity)),
            Policy::Fifo => AnyPolicy::Fifo(fifo::Fifo::new()),
            Policy::Random => AnyPolicy::Random(random::Random::new(seed)),
            Policy::Slru => AnyPolicy::Slru(slru::Slru::new(capacity)),
            Policy::WTinyLfu => {
                AnyPolicy::WTinyLfu(wtinylfu::WTinyLfu::new(capacity, seed, exact_hits, sims))
            }
            Policy::S3Fifo => AnyPolicy::S3Fifo(s3fifo::S3Fifo::new(capacity)),
            Policy::Sieve => AnyPolicy::Sieve(sieve::Sieve::new()),
        }
    }
}

macro_rules! dispatch {
    ($self:ident, $p:ident => $e:expr) => {
        match $self {
            AnyPolicy::Lru($p) => $e,
            AnyPolicy::Lfu($p) => $e,
            AnyPolicy::Fifo($p) => $e,
            AnyPolicy::Random($p) => $e,
            AnyPolicy::Slru($p) => $e,
            AnyPolicy::WTinyLfu($p) => $e,
            AnyPolicy::S3Fifo($p) => $e,
            AnyPolicy::Sieve($p) => $e,
        }
    };
}

impl AnyPolicy {
    /// True if [`record_hit`](Self::record_hit) ever returns true for this
    /// policy (its hits go through the shard's read buffer); the shard
    /// skips draining the buffer otherwise.
    #[inline]
    pub(crate) fn replays_hits(&self) -> bool {
        match self {
            AnyPolicy::WTinyLfu(p) => p.takes_replayed_hits(),
            AnyPolicy::Lru(_) | AnyPolicy::Lfu(_) | AnyPolicy::Slru(_) => true,
            AnyPolicy::Fifo(_)
            | AnyPolicy::Random(_)
            | AnyPolicy::S3Fifo(_)
            | AnyPolicy::Sieve(_) => false,
        }
    }

    /// Notes a read hit on `idx` under the shard's *read* lock. Returns true
    /// if the hit must also go through the shard's read buffer to be
    /// replayed with [`on_access`](EvictionPolicy::on_access) (the policies
    /// that keep exact recency order). FIFO and Random ignore hits;
    /// W-TinyLFU (in big caches), S3-FIFO and SIEVE note them in the
    /// entry's meta byte.
    #[inline]
    pub(crate) fn record_hit(&self, idx: Idx, hash: u64) -> bool {
        match self {
            AnyPolicy::Fifo(_) | AnyPolicy::Random(_) => false,
            AnyPolicy::WTinyLfu(p) => {
                if p.takes_replayed_hits() {
                    return true;
                }
                p.note_read(idx, hash);
                false
            }
            AnyPolicy::S3Fifo(p) => {
                p.note_hit(idx);
                false
            }
            AnyPolicy::Sieve(p) => {
                p.note_hit(idx);
                false
            }
            AnyPolicy::Lru(_) | AnyPolicy::Lfu(_) | AnyPolicy::Slru(_) => true,
        }
    }
}

impl EvictionPolicy for AnyPolicy {
    #[inline]
    fn on_insert(&mut self, idx: Idx, hash: u64, weight: u32, hash_of: HashOf<'_>) {
        dispatch!(self, p => p.on_insert(idx, hash, weight, hash_of))
    }
    #[inline]
    fn on_access(&mut self, idx: Idx, hash: u64) {
        dispatch!(self, p => p.on_access(idx, hash))
    }
    #[inline]
    fn on_update(&mut self, idx: Idx, hash: u64, weight: u32, hash_of: HashOf<'_>) {
        dispatch!(self, p => p.on_update(idx, hash, weight, hash_of))
    }
    #[inline]
    fn on_remove(&mut self, idx: Idx) {
        dispatch!(self, p => p.on_remove(idx))
    }
    #[inline]
    fn wants_hits(&self) -> bool {
        dispatch!(self, p => p.wants_hits())
    }
    fn observe_hits(&mut self, total: u64) {
        dispatch!(self, p => p.observe_hits(total))
    }
    #[inline]
    fn evict(&mut self, hash_of: HashOf<'_>) -> Option<Idx> {
        dispatch!(self, p => p.evict(hash_of))
    }
    #[inline]
    fn evict_hashed(&mut self, hash_of: HashOf<'_>) -> Option<(Idx, Option<u64>)> {
        dispatch!(self, p => p.evict_hashed(hash_of))
    }
    fn clear(&mut self) {
        dispatch!(self, p => p.clear())
    }
    fn len(&self) -> usize {
        dispatch!(self, p => p.len())
    }
    fn weight(&self) -> u64 {
        dispatch!(self, p => p.weight())
    }
    fn heap_bytes(&self) -> usize {
        dispatch!(self, p => p.heap_bytes())
    }
    fn reserve_slots(&mut self, slots: usize) {
        dispatch!(self, p => p.reserve_slots(slots))
    }
    fn validate(&self) {
        dispatch!(self, p => p.validate())
    }
}
