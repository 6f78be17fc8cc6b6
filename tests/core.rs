//! Core behaviour of `Cache`: the map operations, capacity, listener and
//! the defined behaviour on bad input.

use std::hash::{BuildHasher, Hash, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use larder::{Cache, Policy, RemovalCause};

type Log<K, V> = Arc<Mutex<Vec<(K, V, RemovalCause)>>>;

fn logging_cache(cap: u64, policy: Policy) -> (Cache<u32, u32>, Log<u32, u32>) {
    let log: Log<u32, u32> = Arc::default();
    let sink = log.clone();
    let cache = Cache::builder()
        .max_capacity(cap)
        .policy(policy)
        .shards(1)
        .eviction_listener(move |k: &u32, v: &u32, cause| {
            sink.lock().unwrap().push((*k, *v, cause))
        })
        .build();
    (cache, log)
}

#[test]
fn map_operations() {
    for policy in Policy::ALL {
        let cache: Cache<String, u32> = Cache::builder().max_capacity(100).policy(policy).build();
        assert!(cache.is_empty());
        cache.insert("a".into(), 1);
        cache.insert("b".into(), 2);
        assert_eq!(cache.get("a"), Some(1));
        assert_eq!(cache.peek("b"), Some(2));
        assert!(cache.contains_key("a"));
        assert!(!cache.contains_key("c"));
        cache.insert("a".into(), 10);
        assert_eq!(cache.get("a"), Some(10));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.remove("a"), Some(10));
        assert_eq!(cache.remove("a"), None);
        assert_eq!(cache.len(), 1);
        cache.invalidate_all();
        assert!(cache.is_empty());
        cache.check_invariants();
        let s = cache.stats();
        assert_eq!(
            (s.hits, s.inserts, s.updates, s.removals),
            (2, 2, 1, 2),
            "{policy}"
        );
    }
}

#[test]
fn capacity_is_a_hard_bound_for_every_policy() {
    for policy in Policy::ALL {
        for shards in [1, 4] {
            let cache: Cache<u64, u64> = Cache::builder()
                .max_capacity(200)
                .policy(policy)
                .shards(shards)
                .build();
            for i in 0..5_000u64 {
                let k = (i * 7919) % 1_000;
                if cache.get(&k).is_none() {
                    cache.insert(k, i);
                }
                assert!(cache.len() <= 200, "{policy}: {} entries", cache.len());
            }
            cache.check_invariants();
            let s = cache.stats();
            assert_eq!(
                s.inserts - s.evictions - s.removals,
                cache.len() as u64,
                "{policy}"
            );
            assert_eq!(s.hits + s.misses, 5_000);
        }
    }
}

#[test]
fn listener_sees_every_cause() {
    let (cache, log) = logging_cache(2, Policy::Lru);
    cache.insert(1, 10);
    cache.insert(1, 11); // Replaced 10
    cache.insert(2, 20);
    cache.insert(3, 30); // Evicted 1 (LRU)
    cache.remove(&2); // Explicit
    cache.invalidate_all(); // Explicit 3
    let got = log.lock().unwrap().clone();
    assert_eq!(
        got,
        vec![
            (1, 10, RemovalCause::Replaced),
            (1, 11, RemovalCause::Evicted),
            (2, 20, RemovalCause::Explicit),
            (3, 30, RemovalCause::Explicit),
        ]
    );
}

#[test]
fn retain_removes_and_notifies() {
    let (cache, log) = logging_cache(100, Policy::WTinyLfu);
    for i in 0..50 {
        cache.insert(i, i);
    }
    cache.retain(|k, _| k % 2 == 0);
    assert_eq!(cache.len(), 25);
    assert!(cache.iter().all(|(k, _)| k % 2 == 0));
    assert_eq!(log.lock().unwrap().len(), 25);
    assert!(log
        .lock()
        .unwrap()
        .iter()
        .all(|e| e.2 == RemovalCause::Explicit));
    cache.check_invariants();
}

#[test]
fn zero_capacity_stores_nothing() {
    let (cache, log) = logging_cache(0, Policy::WTinyLfu);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None);
    assert!(cache.is_empty());
    assert_eq!(
        log.lock().unwrap().as_slice(),
        &[(1, 1, RemovalCause::Evicted)]
    );
    assert_eq!(cache.stats().rejections, 1);
    cache.check_invariants();
}

#[test]
fn zero_weights_count_as_one() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .weigher(|_, v| *v)
        .shards(1)
        .policy(Policy::Lru)
        .build();
    for i in 0..1_000 {
        cache.insert(i, 0);
    }
    // A weight of 0 counts as 1: the cache stays bounded.
    assert_eq!(cache.len(), 10);
    assert_eq!(cache.weighted_size(), 10);
    // A heavy one evicts in LRU order until it fits.
    cache.insert(5_000, 10);
    assert_eq!(cache.weighted_size(), 10);
    assert_eq!(cache.get(&5_000), Some(10));
    cache.check_invariants();
}

#[test]
fn overweight_values_are_rejected_not_stored() {
    let (log_cache, _) = logging_cache(1, Policy::Lru);
    drop(log_cache);
    let log: Log<u32, u32> = Arc::default();
    let sink = log.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .weigher(|_, v| *v)
        .shards(1)
        .eviction_listener(move |k: &u32, v: &u32, c| sink.lock().unwrap().push((*k, *v, c)))
        .build();
    cache.insert(1, 50);
    cache.insert(2, u32::MAX);
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&1), Some(50));
    // Replacing a stored value with a rejected one removes the old value.
    cache.insert(1, 101);
    assert_eq!(cache.get(&1), None);
    assert_eq!(
        log.lock().unwrap().as_slice(),
        &[
            (2, u32::MAX, RemovalCause::Evicted),
            (1, 50, RemovalCause::Replaced),
            (1, 101, RemovalCause::Evicted)
        ]
    );
    assert!(cache.weighted_size() <= 100);
    cache.check_invariants();
}

#[test]
fn huge_weights_sum_without_overflow() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(u64::MAX)
        .weigher(|_, _| u32::MAX)
        .build();
    for i in 0..100 {
        cache.insert(i, i);
    }
    assert_eq!(cache.weighted_size(), 100 * u64::from(u32::MAX));
    cache.check_invariants();
}

#[test]
fn listener_may_call_back_into_the_cache() {
    let slot: Arc<Mutex<Option<Cache<u32, u32>>>> = Arc::default();
    let seen = Arc::new(AtomicUsize::new(0));
    let (slot2, seen2) = (slot.clone(), seen.clone());
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(4)
        .shards(1)
        .eviction_listener(move |k: &u32, _v: &u32, cause| {
            let handle = slot2.lock().unwrap().clone();
            if let Some(c) = handle {
                // Reads, writes and removals from inside the listener.
                let _ = c.get(k);
                c.remove(&(k + 1000));
                if cause == RemovalCause::Evicted && *k < 1000 {
                    c.insert(k + 1000, 0);
                }
                seen2.fetch_add(1, Ordering::Relaxed);
            }
        })
        .build();
    *slot.lock().unwrap() = Some(cache.clone());
    for i in 0..100 {
        cache.insert(i, i);
    }
    cache.invalidate_all();
    assert!(seen.load(Ordering::Relaxed) > 0);
    cache.check_invariants();
    slot.lock().unwrap().take();
}

#[test]
fn panicking_listener_runs_the_rest_and_propagates() {
    let count = Arc::new(AtomicUsize::new(0));
    let c2 = count.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .eviction_listener(move |k: &u32, _: &u32, _| {
            c2.fetch_add(1, Ordering::Relaxed);
            if *k == 3 {
                panic!("listener failed");
            }
        })
        .build();
    for i in 0..10 {
        cache.insert(i, i);
    }
    let r = catch_unwind(AssertUnwindSafe(|| cache.invalidate_all()));
    assert!(r.is_err());
    assert_eq!(count.load(Ordering::Relaxed), 10);
    assert!(cache.is_empty());
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
}

/// A key whose hash is always the same value.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Colliding(u32);

impl Hash for Colliding {
    fn hash<H: Hasher>(&self, state: &mut H) {
        0u8.hash(state);
    }
}

#[test]
fn constant_hash_is_correct_just_slower() {
    for policy in Policy::ALL {
        let cache: Cache<Colliding, u32> = Cache::builder().max_capacity(64).policy(policy).build();
        for i in 0..500 {
            cache.insert(Colliding(i), i);
            assert_eq!(cache.peek(&Colliding(i)), cache.get(&Colliding(i)));
        }
        assert_eq!(cache.len(), 64.min(cache.len()));
        for (k, v) in cache.iter() {
            assert_eq!(k.0, v);
        }
        cache.remove(&Colliding(499));
        cache.check_invariants();
    }
}

/// A hasher whose output is constant, so every key lands in one shard and one
/// probe sequence.
#[derive(Clone, Default)]
struct ConstantState;
struct ConstantHasher;
impl Hasher for ConstantHasher {
    fn finish(&self) -> u64 {
        42
    }
    fn write(&mut self, _: &[u8]) {}
}
impl BuildHasher for ConstantState {
    type Hasher = ConstantHasher;
    fn build_hasher(&self) -> ConstantHasher {
        ConstantHasher
    }
}

#[test]
fn constant_hasher_is_correct() {
    let cache: Cache<u32, u32, ConstantState> = Cache::builder()
        .max_capacity(256)
        .shards(8)
        .hasher(ConstantState)
        .build();
    for i in 0..1_000 {
        cache.insert(i, i * 2);
    }
    assert!(cache.len() <= 256);
    for (k, v) in cache.iter() {
        assert_eq!(cache.get(&k), Some(v));
    }
    cache.check_invariants();
}

/// A key whose `Hash`, `Eq` or `Clone` panics on demand.
#[derive(Debug)]
struct Touchy {
    id: u32,
    panic_on_eq: bool,
    panic_on_clone: bool,
}

impl Hash for Touchy {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.id % 4).hash(state); // many collisions, so Eq is called
    }
}
impl PartialEq for Touchy {
    fn eq(&self, other: &Self) -> bool {
        if self.panic_on_eq || other.panic_on_eq {
            panic!("Eq panicked");
        }
        self.id == other.id
    }
}
impl Eq for Touchy {}

#[derive(Debug)]
struct TouchyValue(bool);
impl Clone for TouchyValue {
    fn clone(&self) -> Self {
        if self.0 {
            panic!("Clone panicked");
        }
        TouchyValue(false)
    }
}

fn touchy(id: u32) -> Touchy {
    Touchy {
        id,
        panic_on_eq: false,
        panic_on_clone: false,
    }
}

#[test]
fn panicking_eq_and_clone_leave_the_cache_usable() {
    let cache: Cache<Touchy, TouchyValue> = Cache::builder().max_capacity(8).shards(1).build();
    for i in 0..8 {
        cache.insert(touchy(i), TouchyValue(i == 3));
    }
    let bad_key = Touchy {
        id: 100,
        panic_on_eq: true,
        panic_on_clone: false,
    };
    assert!(catch_unwind(AssertUnwindSafe(
        || cache.insert(bad_key, TouchyValue(false))
    ))
    .is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| cache.get(&touchy(3)))).is_err());
    let _ = touchy(0).panic_on_clone;
    cache.check_invariants();
    assert!(cache.len() <= 8);
    // Still usable: the lock is not poisoned.
    cache.insert(touchy(50), TouchyValue(false));
    assert!(cache.get(&touchy(50)).is_some());
    cache.check_invariants();
}

/// Salt mixed into [`Shifty`]'s hash; only the test below changes it.
static SALT: AtomicUsize = AtomicUsize::new(0);
/// While set, a [`Shifty`] with an id below 8 panics when hashed.
static PANIC_LOW: AtomicUsize = AtomicUsize::new(0);

/// A key whose `Hash` is not a function of the key alone: it reads
/// [`SALT`], and panics for low ids while [`PANIC_LOW`] is set (the shard
/// hashes stored keys again under its lock, where it needs their hash).
#[derive(Debug, PartialEq, Eq)]
struct Shifty(u32);

impl Hash for Shifty {
    fn hash<H: Hasher>(&self, state: &mut H) {
        if self.0 < 8 && PANIC_LOW.load(Ordering::Relaxed) == 1 {
            panic!("Hash panicked");
        }
        (self.0, SALT.load(Ordering::Relaxed)).hash(state);
    }
}

#[test]
fn keys_whose_hash_changes_or_panics_while_stored_still_leave_and_drop_once() {
    for policy in Policy::ALL {
        SALT.store(0, Ordering::Relaxed);
        let value = Arc::new(());
        let cache: Cache<Shifty, Arc<()>> = Cache::builder()
            .max_capacity(64)
            .shards(1)
            .policy(policy)
            .build();
        for i in 0..64 {
            cache.insert(Shifty(i), value.clone());
        }
        // Every stored key now hashes differently: the table, the policy and
        // removals see other hashes than the ones the keys were stored under.
        SALT.store(1, Ordering::Relaxed);
        for i in 64..400 {
            cache.insert(Shifty(i), value.clone()); // evicts old keys
            assert!(cache.len() <= 64, "{policy}");
        }
        for i in 0..400 {
            cache.remove(&Shifty(i));
        }
        // Stored keys whose `Hash` panics under the lock (evictions, a table
        // rehash): caught there, the operations complete.
        SALT.store(2, Ordering::Relaxed);
        for i in 0..64 {
            cache.insert(Shifty(i), value.clone());
        }
        PANIC_LOW.store(1, Ordering::Relaxed);
        for i in 1_000..1_200 {
            cache.insert(Shifty(i), value.clone());
            assert!(cache.len() <= 64, "{policy}");
        }
        PANIC_LOW.store(0, Ordering::Relaxed);
        cache.insert(Shifty(5_000), value.clone());
        assert!(
            cache.get(&Shifty(5_000)).is_some(),
            "{policy}: still usable"
        );
        cache.invalidate_all();
        assert_eq!(cache.len(), 0, "{policy}");
        cache.check_invariants();
        assert_eq!(
            Arc::strong_count(&value),
            1,
            "{policy}: a value not dropped"
        );
        drop(cache);
    }
}

#[test]
fn panicking_weigher_changes_nothing() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .weigher(|_, v| if *v == 0 { panic!("weigher") } else { 1 })
        .build();
    cache.insert(1, 1);
    assert!(catch_unwind(AssertUnwindSafe(|| cache.insert(2, 0))).is_err());
    assert_eq!(cache.len(), 1);
    cache.check_invariants();
}

#[test]
fn small_cache_is_one_shard() {
    let cache: Cache<u32, u32> = Cache::new(100);
    assert_eq!(cache.shard_count(), 1);
    // 100 distinct keys fit exactly, whatever their hashes.
    for i in 0..100 {
        cache.insert(i, i);
    }
    assert_eq!(cache.len(), 100);
}

#[test]
fn cache_is_send_sync_and_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Cache<String, Arc<Vec<u8>>>>();
}
