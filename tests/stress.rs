//! Many threads mixing every operation on one small cache (bounded by count,
//! not time): nothing panics or deadlocks, capacity holds throughout, and
//! afterwards every internal count and link checks out and the listener saw
//! exactly the removals the statistics report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use larder::{Cache, ManualClock, Policy, RemovalCause};

const THREADS: u64 = 8;
const OPS_PER_THREAD: u64 = 20_000;
const KEYS: u64 = 512;
const CAPACITY: u64 = 128;

/// Per-cause listener counts.
#[derive(Default)]
struct Seen {
    evicted: AtomicU64,
    expired: AtomicU64,
    explicit: AtomicU64,
    replaced: AtomicU64,
}

fn stress(policy: Policy, shards: usize, capacity: u64, keys: u64) {
    let clock = ManualClock::new();
    let seen = Arc::new(Seen::default());
    let s2 = seen.clone();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(capacity)
        .policy(policy)
        .shards(shards)
        .weigher(|k, _| (k % 3) as u32) // weights 0, 1 and 2
        .clock(clock.clone())
        .eviction_listener(move |_k, _v, cause| {
            let c = match cause {
                RemovalCause::Evicted => &s2.evicted,
                RemovalCause::Expired => &s2.expired,
                RemovalCause::Explicit => &s2.explicit,
                RemovalCause::Replaced => &s2.replaced,
            };
            c.fetch_add(1, Ordering::Relaxed);
        })
        .seed(3)
        .build();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, clock, start) = (cache.clone(), clock.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                for i in 0..OPS_PER_THREAD {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = x % keys;
                    match x >> 58 {
                        0..=29 => {
                            cache.get(&key);
                        }
                        30..=44 => cache.insert(key, i),
                        45..=49 => {
                            cache.remove(&key);
                        }
                        50..=54 => {
                            cache.get_with(key, || i);
                        }
                        55..=57 => cache.insert_with_ttl(key, i, Duration::from_millis(key % 50)),
                        58 => {
                            cache.peek(&key);
                            cache.contains_key(&key);
                        }
                        59 => clock.advance(Duration::from_millis(5)),
                        60 => cache.retain(|k, _| k % 7 != 0),
                        61 => cache.run_pending_tasks(),
                        62 if i % 64 == 0 => cache.invalidate_all(),
                        _ => {
                            let _ = cache.optionally_get_with(key, || (key % 2 == 0).then_some(i));
                        }
                    }
                    if i % 1024 == 0 {
                        assert!(cache.weighted_size() <= capacity, "over capacity");
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("a stress thread panicked");
    }
    cache.check_invariants();
    assert!(cache.weighted_size() <= capacity);
    let s = cache.stats();
    let r = |c: &AtomicU64| c.load(Ordering::Relaxed);
    assert_eq!(r(&seen.evicted), s.evictions, "{policy}: evictions");
    assert_eq!(r(&seen.expired), s.expirations, "{policy}: expirations");
    // Explicit removals and replacements together are the `removals` stat,
    // plus replacements by updates (counted as updates, not removals).
    assert_eq!(
        r(&seen.explicit) + r(&seen.replaced),
        s.removals + s.updates,
        "{policy}: removals + updates"
    );
    // Every stored entry was inserted and has not left by eviction (rejected
    // values were never stored), removal or expiry.
    assert_eq!(
        s.inserts - (s.evictions - s.rejections) - s.removals - s.expirations,
        cache.len() as u64,
        "{policy}: entries do not add up"
    );
}

#[test]
fn every_policy_under_mixed_concurrent_load() {
    for policy in Policy::ALL {
        stress(policy, 1, CAPACITY, KEYS);
        stress(policy, 4, CAPACITY, KEYS);
    }
}

/// W-TinyLFU notes hits in place only in caches of more than 511 units
/// (smaller ones replay them in order, as above): the same load on one big
/// shard.
#[test]
fn w_tinylfu_big_shard_under_mixed_concurrent_load() {
    stress(Policy::WTinyLfu, 1, 4 * 1024, 16 * 1024);
}
