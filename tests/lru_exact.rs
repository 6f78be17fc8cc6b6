//! larder's `Policy::Lru` with one shard is exactly the classic LRU: the
//! same hits, access for access, as the `lru` crate.
//!
//! On a real trace (`../shared/traces/lirs-cpp.keys.gz`, next to the
//! checkout as in CI) at two sizes, replayed as get-or-insert like the
//! simulator does, and on a random program that also replaces and removes
//! keys.

use std::io::Read;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use larder::{Cache, Policy};

/// The shared trace this test replays.
fn trace_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/traces/lirs-cpp.keys.gz")
}

/// The keys of a gzip trace, one decimal `u64` per line.
fn load(path: &PathBuf) -> Vec<u64> {
    let raw = std::fs::read(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (the shared traces must sit beside the checkout)",
            path.display()
        )
    });
    let mut text = String::new();
    flate2::read::GzDecoder::new(&raw[..])
        .read_to_string(&mut text)
        .expect("gzip text");
    text.lines()
        .map(|l| l.trim().parse().expect("a u64 per line"))
        .collect()
}

/// A one-shard larder LRU cache.
fn larder_lru(capacity: u64) -> Cache<u64, u64> {
    Cache::builder()
        .max_capacity(capacity)
        .policy(Policy::Lru)
        .shards(1)
        .build()
}

/// Hits of get-or-insert over `keys`, for larder and for the `lru` crate.
fn both_hits(keys: &[u64], capacity: usize) -> (u64, u64) {
    let cache = larder_lru(capacity as u64);
    let mut reference = lru::LruCache::new(NonZeroUsize::new(capacity).expect("capacity > 0"));
    let (mut ours, mut theirs) = (0, 0);
    for &k in keys {
        if cache.get(&k).is_some() {
            ours += 1;
        } else {
            cache.insert(k, k);
        }
        if reference.get(&k).is_some() {
            theirs += 1;
        } else {
            reference.put(k, k);
        }
    }
    cache.check_invariants();
    (ours, theirs)
}

#[test]
fn same_hits_as_the_lru_crate_on_lirs_cpp() {
    let keys = load(&trace_path());
    assert_eq!(keys.len(), 9_047);
    // 1% and 10% of the 1,223 distinct keys, as in the traces README.
    for capacity in [12, 122] {
        let (ours, theirs) = both_hits(&keys, capacity);
        assert_eq!(ours, theirs, "capacity {capacity}");
    }
    // The README's check number for LRU at 10%: 0.757.
    let (hits, _) = both_hits(&keys, 122);
    assert_eq!(format!("{:.3}", hits as f64 / keys.len() as f64), "0.757");
}

#[test]
fn same_hits_as_the_lru_crate_on_a_random_program() {
    /// Capacity of both caches.
    const CAPACITY: usize = 64;
    let cache = larder_lru(CAPACITY as u64);
    let mut reference = lru::LruCache::new(NonZeroUsize::new(CAPACITY).expect("non-zero"));
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let (mut ours, mut theirs) = (0u64, 0u64);
    for i in 0..200_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Skewed keys over 0..400 so that both hits and evictions happen.
        let r = x % 400;
        let k = r * r / 400;
        match (x >> 32) % 10 {
            // get-or-insert
            0..=6 => {
                if cache.get(&k).is_some() {
                    ours += 1;
                } else {
                    cache.insert(k, i);
                }
                if reference.get(&k).is_some() {
                    theirs += 1;
                } else {
                    reference.put(k, i);
                }
            }
            // insert or replace
            7 | 8 => {
                cache.insert(k, i);
                reference.put(k, i);
            }
            // remove
            _ => {
                assert_eq!(cache.remove(&k), reference.pop(&k));
            }
        }
        assert_eq!(cache.len(), reference.len());
    }
    cache.check_invariants();
    assert_eq!(ours, theirs);
    // Same contents, same values.
    for (k, v) in reference.iter() {
        assert_eq!(cache.peek(k), Some(*v));
    }
}
