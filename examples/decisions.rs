//! A digest of a cache's decisions, to show that a change to data layout or
//! hot-path mechanics left every eviction and admission as it was.
//!
//! Each policy gets a cache with a fixed seed and a fixed hasher and runs a
//! Zipf(1.0) get-or-insert stream over 2^20 keys at capacity 10% of them
//! (the `evict_heavy` workload of `benches/throughput.rs`) on one thread,
//! and prints the misses, an FNV-1a digest of the hit/miss sequence, and
//! one of which of the keys `0..2^16` are left (by `peek`). Run it before
//! and after a change: equal lines mean equal decisions.
//!
//! ```text
//! cargo run --release --example decisions
//! ```

use std::hash::BuildHasher;

use larder::Policy;

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{key_of, SplitMix64, Zipf};

/// log2 of the key space.
const KEY_BITS: u32 = 20;
/// Operations per policy.
const OPS: usize = 2_000_000;

/// FNV-1a over 64-bit words.
struct Fnv(u64);

impl Fnv {
    fn add(&mut self, x: u64) {
        for b in x.to_le_bytes() {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x100_0000_01B3);
        }
    }
}

/// A hasher with fixed keys (the default one is seeded per process).
#[derive(Clone)]
struct Fixed;

impl BuildHasher for Fixed {
    type Hasher = ahash::AHasher;
    fn build_hasher(&self) -> ahash::AHasher {
        ahash::RandomState::with_seeds(1, 2, 3, 4).build_hasher()
    }
}

fn main() {
    let zipf = Zipf::new(1 << KEY_BITS, 1.0);
    let mut rng = SplitMix64(0x1A2D_E200);
    let keys: Vec<u64> = (0..OPS)
        .map(|_| key_of(zipf.sample(&mut rng), KEY_BITS))
        .collect();
    for policy in Policy::ALL {
        let cache = larder::Cache::<u64, u64>::builder()
            .max_capacity((1 << KEY_BITS) / 10)
            .policy(policy)
            .seed(7)
            .hasher(Fixed)
            .build();
        let mut digest = Fnv(0xCBF2_9CE4_8422_2325);
        let mut misses = 0u64;
        for &k in &keys {
            let hit = cache.get(&k).is_some();
            if !hit {
                misses += 1;
                cache.insert(k, k);
            }
            digest.add(u64::from(hit));
        }
        let mut left = Fnv(0xCBF2_9CE4_8422_2325);
        for k in 0..1u64 << 16 {
            left.add(u64::from(cache.peek(&k).is_some()));
        }
        println!(
            "{policy:?}: misses {misses} of {OPS}, sequence {:016x}, kept {:016x}, len {}",
            digest.0,
            left.0,
            cache.len()
        );
    }
}
