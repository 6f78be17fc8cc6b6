//! W-TinyLFU through the public API, against invariants rather than a
//! reference model (which entries W-TinyLFU keeps depends on its frequency
//! sketch and hill climber, so no simple model predicts its victims).
//!
//! Random programs of insert / get / remove / retain, with one shard and
//! with the builder's default sharding, weighted (the value is the weight,
//! including 0 and values heavier than a shard) and unweighted. After every
//! step:
//!
//! * `weighted_size() <= capacity()` and `check_invariants()` passes;
//! * right after an insert, the key is either absent (not admitted, or
//!   rejected) or `get` returns the value just inserted;
//! * `len()` equals the number of keys ever inserted that `contains_key`;
//! * the statistics add up, as `src/shard.rs` counts them:
//!   - `hits + misses` = number of `get` calls, `hits` = those that found a
//!     value;
//!   - `len = inserts - (evictions - rejections) - removals` (a rejected
//!     value is counted as an eviction but was never stored; `removals`
//!     counts explicit removal and a stored value dropped because its
//!     replacement was rejected);
//!   - the listener saw `evictions` entries with `Evicted` whose weights add
//!     up to `evicted_weight`, and `removals + updates` entries with
//!     `Explicit` or `Replaced`.

use std::cell::Cell;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use larder::{Cache, Policy, RemovalCause};
use proptest::prelude::*;

/// One step of a program.
#[derive(Clone, Debug)]
enum Op {
    /// `get`, then `insert(k, v)` if it missed (get-or-insert).
    GetOrInsert(u32, u32),
    /// `insert(k, v)`.
    Insert(u32, u32),
    /// `get(k)`.
    Get(u32),
    /// `remove(k)`.
    Remove(u32),
    /// `retain(|k, _| k % m != 0)`.
    Retain(u32),
}

/// A program over keys `0..keys` with values (weights) from `value`.
fn program(keys: u32, value: BoxedStrategy<u32>) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0..keys, value.clone()).prop_map(|(k, v)| Op::GetOrInsert(k, v)),
        2 => (0..keys, value).prop_map(|(k, v)| Op::Insert(k, v)),
        2 => (0..keys).prop_map(Op::Get),
        1 => (0..keys).prop_map(Op::Remove),
        1 => (3..9u32).prop_map(Op::Retain),
    ];
    proptest::collection::vec(op, 1..400)
}

/// Counts what the eviction listener saw.
#[derive(Default)]
struct Seen {
    evicted: AtomicU64,
    evicted_weight: AtomicU64,
    explicit_or_replaced: AtomicU64,
}

/// Runs `ops` on a W-TinyLFU cache and checks every invariant after each
/// step. `weighted` makes the value the entry's weight.
fn run(capacity: u64, one_shard: bool, weighted: bool, seed: u64, ops: Vec<Op>) {
    let seen = Arc::new(Seen::default());
    let listener_seen = Arc::clone(&seen);
    let mut builder = Cache::builder()
        .max_capacity(capacity)
        .policy(Policy::WTinyLfu)
        .seed(seed)
        .eviction_listener(move |_k: &u32, v: &u32, cause| {
            let w = if weighted { u64::from((*v).max(1)) } else { 1 };
            match cause {
                RemovalCause::Evicted => {
                    listener_seen.evicted.fetch_add(1, Ordering::Relaxed);
                    listener_seen.evicted_weight.fetch_add(w, Ordering::Relaxed);
                }
                RemovalCause::Explicit | RemovalCause::Replaced => {
                    listener_seen
                        .explicit_or_replaced
                        .fetch_add(1, Ordering::Relaxed);
                }
                RemovalCause::Expired => panic!("nothing expires here"),
            }
        });
    if one_shard {
        builder = builder.shards(1);
    }
    if weighted {
        builder = builder.weigher(|_k, v: &u32| *v);
    }
    let cache: Cache<u32, u32> = builder.build();

    let mut ever: BTreeSet<u32> = BTreeSet::new();
    let (gets, found) = (Cell::new(0u64), Cell::new(0u64));
    let get = |cache: &Cache<u32, u32>, k: u32| {
        gets.set(gets.get() + 1);
        let v = cache.get(&k);
        found.set(found.get() + u64::from(v.is_some()));
        v
    };
    for op in ops {
        match op {
            Op::GetOrInsert(k, v) => {
                if get(&cache, k).is_none() {
                    cache.insert(k, v);
                    ever.insert(k);
                    if cache.contains_key(&k) {
                        assert_eq!(get(&cache, k), Some(v), "admitted key {k} not found");
                    }
                }
            }
            Op::Insert(k, v) => {
                cache.insert(k, v);
                ever.insert(k);
                if cache.contains_key(&k) {
                    assert_eq!(get(&cache, k), Some(v), "admitted key {k} not found");
                }
            }
            Op::Get(k) => {
                get(&cache, k);
            }
            Op::Remove(k) => {
                let had = cache.contains_key(&k);
                assert_eq!(cache.remove(&k).is_some(), had);
                assert!(!cache.contains_key(&k));
            }
            Op::Retain(m) => {
                cache.retain(|k, _| k % m != 0);
                assert!(ever.iter().all(|k| k % m != 0 || !cache.contains_key(k)));
            }
        }
        cache.check_invariants();
        assert!(cache.weighted_size() <= cache.capacity());
        let reachable = ever.iter().filter(|k| cache.contains_key(k)).count();
        assert_eq!(cache.len(), reachable, "len counts unreachable entries");

        let s = cache.stats();
        assert_eq!(
            s.hits + s.misses,
            gets.get(),
            "every get is a hit or a miss"
        );
        assert_eq!(s.hits, found.get(), "hits are the gets that found a value");
        assert_eq!(
            cache.len() as u64,
            s.inserts - (s.evictions - s.rejections) - s.removals,
            "stored = inserted - evicted - removed: {s:?}"
        );
        assert_eq!(s.evictions, seen.evicted.load(Ordering::Relaxed));
        assert_eq!(
            s.evicted_weight,
            seen.evicted_weight.load(Ordering::Relaxed)
        );
        assert_eq!(
            s.removals + s.updates,
            seen.explicit_or_replaced.load(Ordering::Relaxed)
        );
        if !weighted {
            assert_eq!(cache.weighted_size(), cache.len() as u64);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn one_shard_unweighted(cap in 0..48u64, seed: u64, ops in program(96, Just(1).boxed())) {
        run(cap, true, false, seed, ops);
    }

    #[test]
    fn one_shard_weighted(
        cap in 0..64u64,
        seed: u64,
        ops in program(96, prop_oneof![4 => 0..6u32, 1 => Just(0), 1 => 20..80u32].boxed()),
    ) {
        run(cap, true, true, seed, ops);
    }

    #[test]
    fn default_sharding_unweighted(cap in 100..700u64, seed: u64, ops in program(1500, Just(1).boxed())) {
        run(cap, false, false, seed, ops);
    }

    #[test]
    fn default_sharding_weighted(
        cap in 100..700u64,
        seed: u64,
        ops in program(600, prop_oneof![6 => 0..4u32, 1 => 30..200u32].boxed()),
    ) {
        run(cap, false, true, seed, ops);
    }
}

/// A long get-or-insert run on a skewed key stream: enough evictions for
/// the sketch to age and the hill climber to move the window several times.
fn long_skewed_run(capacity: u64) {
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(capacity)
        .policy(Policy::WTinyLfu)
        .shards(1)
        .seed(3)
        .build();
    let space = capacity * 5;
    let mut x = 0x1234_5678_u64;
    for i in 0..1000 * capacity {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // Roughly Zipf-like: small keys much more often.
        let k = (x % space) * (x % space) / space + (i / (250 * capacity)) * space;
        if cache.get(&k).is_none() {
            cache.insert(k, i);
        }
        if i % 997 == 0 {
            cache.check_invariants();
            assert!(cache.weighted_size() <= capacity);
        }
    }
    let s = cache.stats();
    assert!(s.hit_ratio() > 0.3, "hit ratio {}", s.hit_ratio());
    assert_eq!(cache.len() as u64, s.inserts - s.evictions);
}

#[test]
fn long_skewed_run_keeps_invariants() {
    long_skewed_run(200);
}

/// The same with a cache big enough to note hits in place (over 511
/// units) instead of replaying them.
#[test]
fn long_skewed_run_on_a_big_shard_keeps_invariants() {
    long_skewed_run(2_000);
}
