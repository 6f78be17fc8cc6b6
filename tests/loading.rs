//! Single-flight loading: one load per key, shared errors, panics that do not
//! poison, recursion detection, and invalidation winning over a load.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use larder::{Cache, ManualClock};

#[test]
fn many_threads_one_load() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(16));
    let handles: Vec<_> = (0..16)
        .map(|_| {
            let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                cache.get_with(1, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(50));
                    42
                })
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let s = cache.stats();
    assert_eq!(s.loads, 1);
    assert!(s.total_load_time >= Duration::from_millis(50));
}

#[test]
fn different_keys_load_in_parallel() {
    // Each loader waits until the other has started: this only finishes if
    // both loaders run at the same time (one shard, so same-shard loads too).
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(10).shards(1).build();
    let both = Arc::new(Barrier::new(2));
    let handles: Vec<_> = (0..2)
        .map(|k| {
            let (cache, both) = (cache.clone(), both.clone());
            thread::spawn(move || {
                cache.get_with(k, || {
                    both.wait();
                    k * 10
                })
            })
        })
        .collect();
    let got: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(got, vec![0, 10]);
}

#[test]
fn errors_are_shared_and_not_cached() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let calls = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Barrier::new(9));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, calls, gate) = (cache.clone(), calls.clone(), gate.clone());
            thread::spawn(move || {
                gate.wait();
                cache.try_get_with(7, || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    thread::sleep(Duration::from_millis(50));
                    Err::<u32, String>("db down".to_string())
                })
            })
        })
        .collect();
    gate.wait();
    let errors: Vec<Arc<String>> = handles
        .into_iter()
        .map(|h| h.join().unwrap().unwrap_err())
        .collect();
    // Threads that arrived while the first load ran shared its error.
    let first = &errors[0];
    assert!(errors.iter().all(|e| **e == "db down"));
    let shared = errors.iter().filter(|e| Arc::ptr_eq(e, first)).count();
    assert!(shared >= 1);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        errors
            .iter()
            .map(Arc::as_ptr)
            .collect::<std::collections::HashSet<_>>()
            .len()
    );
    // Not cached: the next call loads again.
    assert_eq!(cache.try_get_with(7, || Ok::<_, String>(3)), Ok(3));
    assert!(cache.stats().load_failures >= 1);
}

#[test]
fn a_panicking_loader_does_not_hang_or_poison_waiters() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let entered = Arc::new(Barrier::new(2));
    let loader = {
        let (cache, entered) = (cache.clone(), entered.clone());
        thread::spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                cache.get_with(1, || {
                    entered.wait();
                    thread::sleep(Duration::from_millis(50));
                    panic!("loader failed")
                })
            }))
        })
    };
    entered.wait();
    // This caller waits on the doomed flight, then loads by itself.
    let v = cache.get_with(1, || 5);
    assert_eq!(v, 5);
    assert!(loader.join().unwrap().is_err());
    assert_eq!(cache.get(&1), Some(5));
    assert_eq!(cache.get_with(2, || 6), 6);
}

#[test]
fn recursive_load_of_the_same_key_panics_clearly() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let c2 = cache.clone();
    let r = catch_unwind(AssertUnwindSafe(|| {
        cache.get_with(1, || c2.get_with(1, || 2))
    }));
    let msg = r.unwrap_err();
    let msg = msg
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| msg.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(msg.contains("recursive load"), "{msg}");
    // The cache is still usable, and nested loads of other keys work.
    assert_eq!(cache.get_with(1, || c2.get_with(2, || 20) + 1), 21);
    assert_eq!(cache.get(&2), Some(20));
}

/// The cache-aside race: a load is in flight when `invalidate` happens; the
/// loaded (old) value reaches the caller but must not be stored.
fn invalidation_wins(invalidate: impl Fn(&Cache<u32, u32>) + Send + 'static) {
    let cache: Cache<u32, u32> = Cache::new(100);
    let loading = Arc::new(Barrier::new(2));
    let invalidated = Arc::new(Barrier::new(2));
    let loader = {
        let (cache, loading, invalidated) = (cache.clone(), loading.clone(), invalidated.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                loading.wait();
                invalidated.wait();
                100 // the old value, read before the invalidation
            })
        })
    };
    loading.wait();
    invalidate(&cache);
    invalidated.wait();
    assert_eq!(
        loader.join().unwrap(),
        100,
        "the caller still gets its value"
    );
    assert_ne!(
        cache.get(&1),
        Some(100),
        "the stale load must not be stored"
    );
    cache.check_invariants();
}

#[test]
fn remove_during_load_wins() {
    invalidation_wins(|c| {
        c.remove(&1);
    });
}

#[test]
fn insert_during_load_wins() {
    invalidation_wins(|c| c.insert(1, 200));
}

#[test]
fn insert_during_load_keeps_the_newer_value() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let (a, b) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let loader = {
        let (cache, a, b) = (cache.clone(), a.clone(), b.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                a.wait();
                b.wait();
                100
            })
        })
    };
    a.wait();
    cache.insert(1, 200);
    b.wait();
    assert_eq!(loader.join().unwrap(), 100);
    assert_eq!(cache.get(&1), Some(200));
}

#[test]
fn invalidate_all_during_load_wins() {
    invalidation_wins(|c| c.invalidate_all());
}

#[test]
fn retain_during_load_wins() {
    invalidation_wins(|c| c.retain(|_, _| true));
}

/// A key whose equality tests are counted: `Eq` runs under the shard lock
/// when a lookup meets a flight for the key, so the count tells a test that
/// another thread has reached the flight.
#[derive(Clone, Debug)]
struct CountedKey(u32, Arc<AtomicUsize>);

impl PartialEq for CountedKey {
    fn eq(&self, other: &Self) -> bool {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0 == other.0
    }
}
impl Eq for CountedKey {}
impl std::hash::Hash for CountedKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

#[test]
fn waiters_of_a_stale_load_get_its_value() {
    let eqs = Arc::new(AtomicUsize::new(0));
    let key = CountedKey(1, eqs.clone());
    let cache: Cache<CountedKey, u32> = Cache::builder().max_capacity(100).shards(1).build();
    let (a, b) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let loads = Arc::new(AtomicUsize::new(0));
    let loader = {
        let (cache, key, a, b, loads) = (
            cache.clone(),
            key.clone(),
            a.clone(),
            b.clone(),
            loads.clone(),
        );
        thread::spawn(move || {
            cache.get_with(key, || {
                loads.fetch_add(1, Ordering::SeqCst);
                a.wait();
                b.wait();
                7
            })
        })
    };
    a.wait(); // the load is running and stays so until `b`
    let before = eqs.load(Ordering::SeqCst);
    let waiter = {
        let (cache, key, loads) = (cache.clone(), key.clone(), loads.clone());
        thread::spawn(move || {
            cache.get_with(key, || {
                loads.fetch_add(1, Ordering::SeqCst);
                8
            })
        })
    };
    // The waiter has met the flight (under the shard lock); the remove
    // takes that lock after it, so the waiter joined before the
    // invalidation.
    while eqs.load(Ordering::SeqCst) == before {
        thread::yield_now();
    }
    cache.remove(&key);
    b.wait();
    assert_eq!(loader.join().unwrap(), 7);
    assert_eq!(
        waiter.join().unwrap(),
        7,
        "a waiter gets the load it joined"
    );
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&key), None, "the stale value was not stored");
}

#[test]
fn optionally_get_with_and_negative_caching() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .negative_ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let calls = AtomicUsize::new(0);
    let lookup = || {
        calls.fetch_add(1, Ordering::SeqCst);
        None
    };
    for _ in 0..100 {
        assert_eq!(cache.optionally_get_with(404, lookup), None);
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the backend sees one request per TTL"
    );
    assert_eq!(cache.get(&404), None, "get reports a miss");
    assert!(!cache.contains_key(&404));
    assert_eq!(cache.stats().negative_hits, 99);
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.optionally_get_with(404, lookup), None);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "remembered for exactly the TTL"
    );
    // An insert forgets the mark.
    cache.insert(404, 1);
    assert_eq!(cache.optionally_get_with(404, lookup), Some(1));
    cache.remove(&404);
    assert_eq!(cache.optionally_get_with(404, || Some(2)), Some(2));
    // get_with does not accept "absent" from a negative mark: it loads.
    cache.invalidate_all();
    assert_eq!(cache.optionally_get_with(500, || None), None);
    assert_eq!(cache.get_with(500, || 9), 9);
}

#[test]
fn without_negative_ttl_absent_is_not_remembered() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let calls = AtomicUsize::new(0);
    for _ in 0..3 {
        cache.optionally_get_with(1, || {
            calls.fetch_add(1, Ordering::SeqCst);
            None
        });
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn bulk_load_one_call_single_flight_per_key() {
    let cache: Cache<u32, u32> = Cache::new(1_000);
    cache.insert(0, 0);
    let batches = Arc::new(Mutex::new(Vec::new()));
    let b2 = batches.clone();
    let got = cache.get_all_with(0..10, move |missing| {
        b2.lock().unwrap().push(missing.to_vec());
        missing
            .iter()
            .filter(|k| **k != 5)
            .map(|&k| (k, k * 10))
            .collect()
    });
    assert_eq!(got.len(), 9);
    assert_eq!(got[&3], 30);
    assert!(!got.contains_key(&5));
    assert_eq!(
        batches.lock().unwrap().as_slice(),
        &[(1..10).collect::<Vec<_>>()]
    );
    assert_eq!(cache.get(&9), Some(90));

    // Concurrent bulk loads of overlapping keys: each key is loaded once.
    let loaded = Arc::new(Mutex::new(HashMap::<u32, usize>::new()));
    let gate = Arc::new(Barrier::new(4));
    let handles: Vec<_> = (0..4)
        .map(|t| {
            let (cache, loaded, gate) = (cache.clone(), loaded.clone(), gate.clone());
            thread::spawn(move || {
                gate.wait();
                let keys: Vec<u32> = (100 + t * 5..100 + t * 5 + 20).collect();
                cache
                    .get_all_with(keys.clone(), |missing| {
                        thread::sleep(Duration::from_millis(20));
                        let mut l = loaded.lock().unwrap();
                        for k in missing {
                            *l.entry(*k).or_default() += 1;
                        }
                        missing.iter().map(|&k| (k, k)).collect()
                    })
                    .len()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), 20);
    }
    let l = loaded.lock().unwrap();
    assert!(l.values().all(|&n| n == 1), "a key was loaded twice: {l:?}");
    assert_eq!(l.len(), 35);
}

#[test]
fn warm_prefills() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.warm((0..50).map(|i| (i, i)));
    assert_eq!(cache.len(), 50);
    assert_eq!(cache.get_with(10, || unreachable!()), 10);
}

#[test]
fn get_with_hit_counts_as_hit() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.get_with(1, || 1);
    cache.get_with(1, || 2);
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.loads), (1, 1, 1));
}
