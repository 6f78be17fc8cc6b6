//! Capacity means what it says: a cache of capacity `n` holds `n` entries
//! of weight 1 (or entries weighing `n` in all) whatever the spread of
//! their keys over the shards, and never more, after every operation.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use larder::{Cache, Policy, RemovalCause};

/// A SplitMix64 step (a reproducible shuffle without a dependency).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The keys `0..n` hottest first (ascending), coldest first (descending)
/// or shuffled.
fn keys(n: u64, order: &str) -> Vec<u64> {
    let mut keys: Vec<u64> = (0..n).collect();
    match order {
        "hottest" => {}
        "coldest" => keys.reverse(),
        "random" => {
            let mut s = n;
            for i in (1..keys.len()).rev() {
                let j = (next(&mut s) % (i as u64 + 1)) as usize;
                keys.swap(i, j);
            }
        }
        _ => unreachable!(),
    }
    keys
}

/// A cache counting what its listener is told about evictions.
fn counted(
    capacity: u64,
    shards: Option<usize>,
    policy: Policy,
) -> (Cache<u64, u64>, Arc<AtomicU64>) {
    let evicted = Arc::new(AtomicU64::new(0));
    let e = evicted.clone();
    let mut b = Cache::builder()
        .max_capacity(capacity)
        .policy(policy)
        .seed(7)
        .eviction_listener(move |_, _, cause| {
            if cause == RemovalCause::Evicted {
                e.fetch_add(1, Ordering::Relaxed);
            }
        });
    if let Some(s) = shards {
        b = b.shards(s);
    }
    (b.build(), evicted)
}

/// Inserts `0..n` in `order` into a cache of capacity `n`: all of it fits.
fn fills_exactly(n: u64, shards: Option<usize>, order: &str, policy: Policy) {
    let (cache, evicted) = counted(n, shards, policy);
    for k in keys(n, order) {
        cache.insert(k, k);
    }
    let what = format!(
        "n {n}, shards {shards:?} ({}), {order}, {policy}",
        cache.shard_count()
    );
    assert_eq!(cache.len() as u64, n, "{what}: len");
    assert_eq!(cache.weighted_size(), n, "{what}: weight");
    assert_eq!(evicted.load(Ordering::Relaxed), 0, "{what}: evicted");
    assert_eq!(cache.stats().evictions, 0, "{what}: eviction count");
    assert!(
        (0..n).all(|k| cache.contains_key(&k)),
        "{what}: a key is missing"
    );
    cache.check_invariants();
    // One more key: the cache stays at n, by evicting one entry.
    cache.insert(n, n);
    assert_eq!(cache.len() as u64, n, "{what}: len after one more");
    assert_eq!(evicted.load(Ordering::Relaxed), 1, "{what}: one evicted");
    cache.check_invariants();
}

#[test]
fn n_keys_fit_in_capacity_n_whatever_the_order_and_shards() {
    for n in [1_000, 65_536] {
        for shards in [Some(1), Some(4), Some(64), None] {
            for order in ["hottest", "coldest", "random"] {
                fills_exactly(n, shards, order, Policy::WTinyLfu);
            }
        }
    }
}

#[test]
fn n_keys_fit_with_every_policy() {
    for policy in Policy::ALL {
        for shards in [Some(1), Some(16), Some(64)] {
            fills_exactly(1_000, shards, "random", policy);
        }
    }
}

/// 2^20 keys, 64 shards: slow in a debug build.
#[test]
#[cfg_attr(debug_assertions, ignore = "slow in a debug build; run with --release")]
fn a_million_keys_fit_in_a_million() {
    for order in ["hottest", "random"] {
        fills_exactly(1 << 20, None, order, Policy::WTinyLfu);
        fills_exactly(1 << 20, Some(64), order, Policy::Lru);
    }
}

#[test]
fn loaded_keys_fit_too() {
    let (cache, evicted) = counted(10_000, Some(64), Policy::WTinyLfu);
    for k in keys(10_000, "random") {
        assert_eq!(cache.get_with(k, || k + 1), k + 1);
    }
    assert_eq!(cache.len(), 10_000);
    assert_eq!(evicted.load(Ordering::Relaxed), 0);
    cache.check_invariants();
}

#[test]
fn weights_adding_up_to_the_capacity_fit() {
    for shards in [1, 4, 64] {
        for policy in Policy::ALL {
            let evicted = Arc::new(AtomicU64::new(0));
            let e = evicted.clone();
            let capacity = 50_000;
            let cache: Cache<u64, u64> = Cache::builder()
                .max_capacity(capacity)
                .shards(shards)
                .policy(policy)
                .weigher(|_, v| *v as u32)
                .eviction_listener(move |_, _, cause| {
                    if cause == RemovalCause::Evicted {
                        e.fetch_add(1, Ordering::Relaxed);
                    }
                })
                .build();
            // Weights 1 to 16, in a shuffled order, the last one making the
            // total exactly the capacity.
            let (mut total, mut k, mut s) = (0, 0, shards as u64);
            while total < capacity {
                let w = (next(&mut s) % 16 + 1).min(capacity - total);
                cache.insert(k, w);
                total += w;
                k += 1;
            }
            let what = format!("shards {shards}, {policy}");
            assert_eq!(cache.weighted_size(), capacity, "{what}");
            assert_eq!(cache.len() as u64, k, "{what}");
            assert_eq!(evicted.load(Ordering::Relaxed), 0, "{what}");
            cache.check_invariants();
            // A heavy newcomer: the bound holds (whether the policy admits
            // it is the policy's business).
            cache.insert(u64::MAX, 5_000);
            assert!(cache.weighted_size() <= capacity, "{what}");
            cache.check_invariants();
        }
    }
}

#[test]
fn an_entry_heavier_than_a_shards_share_is_stored() {
    // 64 shards of 16 units: an entry of 600 takes room from the others.
    let cache: Cache<u64, u32> = Cache::builder()
        .max_capacity(1_024)
        .shards(64)
        .weigher(|_, v| *v)
        .build();
    for k in 0..1_024 {
        cache.insert(k, 1);
    }
    assert_eq!(cache.weighted_size(), 1_024);
    cache.insert(5_000, 600);
    assert_eq!(cache.get(&5_000), Some(600));
    assert_eq!(cache.weighted_size(), 1_024);
    assert_eq!(cache.len(), 1_024 - 600 + 1);
    cache.check_invariants();
    // One heavier than the whole cache is still rejected.
    cache.insert(5_001, 1_025);
    assert_eq!(cache.get(&5_001), None);
    assert_eq!(cache.stats().rejections, 1);
    cache.check_invariants();
}

#[test]
fn a_shard_emptied_by_removals_fills_again_from_the_others() {
    let cache: Cache<u64, u64> = Cache::builder().max_capacity(4_096).shards(8).build();
    for k in 0..8_192 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 4_096);
    // Removing keys gives their room back to the whole cache.
    let gone: Vec<u64> = cache.iter().map(|(k, _)| k).take(1_000).collect();
    for k in &gone {
        cache.remove(k);
    }
    assert_eq!(cache.len(), 3_096);
    assert_eq!(cache.weighted_size(), 3_096);
    for k in 100_000..101_000 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 4_096);
    assert_eq!(
        cache.stats().evictions,
        4_096,
        "only the first overflow evicted"
    );
    cache.invalidate_all();
    assert_eq!(cache.weighted_size(), 0);
    cache.retain(|_, _| true);
    cache.check_invariants();
}

#[test]
fn the_bound_holds_under_concurrent_writers() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 20;
    const OPS: u64 = 2_000;
    for shards in [4, 64] {
        let capacity = 3_000;
        let cache: Cache<u64, u64> = Cache::builder()
            .max_capacity(capacity)
            .shards(shards)
            .weigher(|k, v| {
                if *v == u64::MAX {
                    400
                } else {
                    (k % 7 + 1) as u32
                }
            })
            .build();
        let barrier = Arc::new(Barrier::new(THREADS as usize));
        thread::scope(|s| {
            for t in 0..THREADS {
                let (cache, barrier) = (cache.clone(), barrier.clone());
                s.spawn(move || {
                    let mut x = t + 1;
                    for round in 0..ROUNDS {
                        for _ in 0..OPS {
                            let r = next(&mut x);
                            let key = r % 5_000;
                            match r >> 60 {
                                0 => {
                                    cache.remove(&key);
                                }
                                1 if r % 512 == 0 => cache.retain(|k, _| k % 3 != 0),
                                2 | 3 => {
                                    cache.get_with(key, || key);
                                }
                                4 => {
                                    cache.get(&key);
                                }
                                // Heavy now and then: room from other shards.
                                5 if r % 64 == 0 => cache.insert(key, u64::MAX),
                                _ => cache.insert(key, key),
                            }
                            assert!(cache.weighted_size() <= capacity);
                        }
                        // Quiescent: the budget must match the shards exactly.
                        // (A failed check must not leave the others waiting.)
                        let check = barrier.wait().is_leader().then(|| {
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                cache.check_invariants();
                                assert!(cache.len() as u64 <= capacity, "round {round}");
                            }))
                        });
                        barrier.wait();
                        if let Some(Err(panic)) = check {
                            std::panic::resume_unwind(panic);
                        }
                    }
                });
            }
        });
        cache.check_invariants();
    }
}
