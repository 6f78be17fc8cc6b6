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
