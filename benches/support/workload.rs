//! Workload pieces shared by the benches (`#[path]`-included, not a bench
//! itself): a small PRNG, a Zipf sampler, the rank -> key mapping, and the
//! `Contender` trait over the caches being compared.
#![allow(dead_code)] // each bench uses its own subset

// ---------------------------------------------------------------------------
// Key generation: a small PRNG and a Zipf sampler.

/// SplitMix64: a tiny, fast, well-mixed generator (Steele, Lea and Flood,
/// 2014). Plenty for drawing benchmark keys.
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` from the top 53 bits.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

/// Zipf with exponent `s` over ranks `0..n`, sampled by inverting a
/// precomputed cumulative distribution (binary search). Building it is
/// O(n), sampling O(log n); neither is timed.
pub struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    pub fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// A rank in `0..n`; rank 0 is the most frequent.
    pub fn sample(&self, rng: &mut SplitMix64) -> usize {
        let u = rng.next_f64();
        self.cdf
            .partition_point(|&c| c <= u)
            .min(self.cdf.len() - 1)
    }
}

/// Maps a Zipf rank to a key of a `2^bits` key space: multiplication by an
/// odd constant modulo 2^bits is a bijection, so hot keys are scattered
/// rather than being the smallest integers.
pub fn key_of(rank: usize, bits: u32) -> u64 {
    (rank as u64).wrapping_mul(0x9E37_79B1) & ((1u64 << bits) - 1)
}

// ---------------------------------------------------------------------------
// Contenders.

/// The operations a workload needs, over `u64 -> u64`.
pub trait Contender: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
}

impl Contender for larder::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        larder::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        larder::Cache::insert(self, key, value)
    }
}

impl Contender for quick_cache::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value)
    }
}

impl Contender for moka::sync::Cache<u64, u64> {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value)
    }
}

// ---------------------------------------------------------------------------
// Reference layouts: not caches (no eviction, nothing recorded on a hit),
// `parking_lot::RwLock` shards of a power-of-two count.

type Locked<T> = crossbeam_utils::CachePadded<parking_lot::RwLock<T>>;

/// `n` locked shards of `T::default()`.
fn locked_shards<T: Default>(n: usize) -> Box<[Locked<T>]> {
    assert!(n.is_power_of_two(), "a power of two of shards");
    (0..n)
        .map(|_| crossbeam_utils::CachePadded::new(parking_lot::RwLock::new(T::default())))
        .collect()
}

/// Sharded `RwLock<HashMap>`: the entries in the buckets of a hashbrown map
/// (hashing with ahash). Shards are picked by a multiplicative hash of the
/// key (top bits).
pub struct ShardedMap {
    shards: Box<[Locked<hashbrown::HashMap<u64, u64, ahash::RandomState>>]>,
}

impl ShardedMap {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: locked_shards(shards),
        }
    }

    #[inline]
    fn shard(&self, key: u64) -> &Locked<hashbrown::HashMap<u64, u64, ahash::RandomState>> {
        let bits = self.shards.len().trailing_zeros();
        &self.shards[(key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize]
    }
}

impl Contender for ShardedMap {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.shard(key).read().get(&key).copied()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.shard(key).write().insert(key, value);
    }
}

/// One shard of [`IndexedMap`]: the table of indices and the entries.
type IndexedShard = (hashbrown::HashTable<u32>, Vec<(u64, u64)>);

/// A table of `u32` indices into a `Vec` of entries, sharded: two
/// dependent reads per lookup, as in a slab-backed cache shard (larder's,
/// quick_cache's).
pub struct IndexedMap {
    shards: Box<[Locked<IndexedShard>]>,
    hasher: ahash::RandomState,
}

impl IndexedMap {
    pub fn new(shards: usize) -> Self {
        Self {
            shards: locked_shards(shards),
            hasher: ahash::RandomState::new(),
        }
    }

    /// The hash of `key` and its shard: bits from 32 up, which hashbrown
    /// uses neither for its tags (the top 7) nor, below 2^32 buckets, for
    /// the position (shards from the top bits left every tag in a shard
    /// equal).
    #[inline]
    fn locate(&self, key: u64) -> (u64, &Locked<IndexedShard>) {
        let hash = self.hasher.hash_one(key);
        (
            hash,
            &self.shards[(hash >> 32) as usize & (self.shards.len() - 1)],
        )
    }
}

impl Contender for IndexedMap {
    fn get(&self, key: u64) -> Option<u64> {
        let (hash, shard) = self.locate(key);
        let shard = shard.read();
        let (table, entries) = &*shard;
        let &idx = table.find(hash, |&i| entries[i as usize].0 == key)?;
        Some(entries[idx as usize].1)
    }
    fn insert(&self, key: u64, value: u64) {
        let (hash, shard) = self.locate(key);
        let mut shard = shard.write();
        let (table, entries) = &mut *shard;
        if let Some(&idx) = table.find(hash, |&i| entries[i as usize].0 == key) {
            entries[idx as usize].1 = value;
            return;
        }
        let idx = u32::try_from(entries.len()).expect("fewer than 2^32 entries a shard");
        entries.push((key, value));
        let hasher = &self.hasher;
        table.insert_unique(hash, idx, |&i| hasher.hash_one(entries[i as usize].0));
    }
}
