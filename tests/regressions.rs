//! Bugs found while building the fuzz targets, the sanitizer runs and the
//! write-behind read contract (issue 16), each pinned by a deterministic
//! test.
//!
//! The interleavings are forced without sleeps: the key type's `Eq` is
//! only called under a shard lock, when a lookup meets a flight for the
//! key, so counting its calls tells the test that another thread has
//! reached the flight table (and, once the test takes the same shard lock,
//! that it has finished with it).

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;

use larder::Cache;

/// A key whose equality tests are counted.
#[derive(Clone, Debug)]
struct Key(u32, Arc<AtomicUsize>);

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.1.fetch_add(1, Ordering::SeqCst);
        self.0 == other.0
    }
}
impl Eq for Key {}
impl Hash for Key {
    fn hash<H: Hasher>(&self, h: &mut H) {
        self.0.hash(h);
    }
}

/// The result `f` sends, or `None` if it has not answered within 20 s (a
/// caller stuck on a stale load waits for it, which the test releases only
/// afterwards: without a deadline that would hang the test).
fn answer_within<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(20)).ok()
}

/// A caller that asks for a key *after* an invalidation met the key's load
/// used to join that stale load and get its value, which predates the
/// invalidation: cache-aside read-your-writes broke (update the store,
/// `remove`, `get_with` returns the old row). Found by reading the
/// single-flight code for the write-behind read contract; fixed in
/// `src/load/mod.rs` (a stale flight is replaced, not joined).
#[test]
fn a_caller_after_an_invalidation_does_not_join_the_stale_load() {
    let eqs = Arc::new(AtomicUsize::new(0));
    let key = Key(1, eqs.clone());
    let cache: Cache<Key, u32> = Cache::builder().max_capacity(100).shards(1).build();
    let (a, b) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let loader = {
        let (cache, key, a, b) = (cache.clone(), key.clone(), a.clone(), b.clone());
        thread::spawn(move || {
            cache.get_with(key, || {
                a.wait();
                b.wait();
                1 // read from the store before the update
            })
        })
    };
    a.wait(); // the load is running
    cache.remove(&key); // the store was updated: invalidate
                        // The late caller must not wait for the stale load (still held open).
    let late = answer_within({
        let (cache, key) = (cache.clone(), key.clone());
        move || cache.get_with(key, || 2) // reads the update
    });
    b.wait();
    assert_eq!(loader.join().unwrap(), 1);
    assert_eq!(
        late,
        Some(2),
        "a caller that came after the invalidation joined the stale load"
    );
    assert_eq!(cache.get(&key), Some(2));
    cache.check_invariants();
}

/// The same through `get_all_with`.
#[test]
// The counter is not part of the key's hash or equality.
#[allow(clippy::mutable_key_type)]
fn a_batch_after_an_invalidation_does_not_join_the_stale_load() {
    let eqs = Arc::new(AtomicUsize::new(0));
    let key = Key(1, eqs.clone());
    let cache: Cache<Key, u32> = Cache::builder().max_capacity(100).shards(1).build();
    let (a, b) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let loader = {
        let (cache, key, a, b) = (cache.clone(), key.clone(), a.clone(), b.clone());
        thread::spawn(move || {
            cache.get_with(key, || {
                a.wait();
                b.wait();
                1
            })
        })
    };
    a.wait();
    cache.remove(&key);
    let late = answer_within({
        let (cache, key) = (cache.clone(), key.clone());
        move || {
            cache.get_all_with([key], |missing| {
                missing.iter().map(|k| (k.clone(), 2)).collect()
            })
        }
    });
    b.wait();
    assert_eq!(loader.join().unwrap(), 1);
    let got = late.expect("the batch joined the stale load");
    assert_eq!(got.get(&key), Some(&2));
    assert_eq!(cache.get(&key), Some(2));
    cache.check_invariants();
}

/// `retain` handed expired entries (not yet reclaimed) to its predicate,
/// though expired entries are never returned, and reported those it
/// dropped as `Explicit` removals rather than expirations. Found by the
/// `cache_ops` fuzz target; fixed in `Core::retain` (src/shard.rs):
/// expired entries leave as `Expired` without meeting the predicate.
#[test]
fn retain_does_not_show_expired_entries_to_its_predicate() {
    use larder::{ManualClock, RemovalCause};
    use std::sync::Mutex;
    use std::time::Duration;

    let clock = ManualClock::new();
    let causes = Arc::new(Mutex::new(Vec::new()));
    let sink = causes.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .eviction_listener(move |k, _, cause| sink.lock().unwrap().push((*k, cause)))
        .build();
    cache.insert(1, 1);
    clock.advance(Duration::from_secs(5));
    cache.insert(2, 2);
    clock.advance(Duration::from_secs(6)); // 1 expired, 2 live
    let mut seen = Vec::new();
    cache.retain(|k, _| {
        seen.push(*k);
        true
    });
    assert_eq!(seen, [2], "the predicate saw an expired entry");
    assert_eq!(*causes.lock().unwrap(), [(1, RemovalCause::Expired)]);
    assert_eq!(cache.stats().expirations, 1);
    assert_eq!(cache.stats().removals, 0);
    cache.check_invariants();
}

/// A weigher that panics on a loaded value used to run after the loader's
/// flight guard was disarmed: the flight stayed registered and unfinished,
/// so every later load of the key (and every waiter) blocked forever.
/// Found while writing the soak test.
#[test]
fn a_panicking_weigher_on_a_loaded_value_does_not_wedge_the_key() {
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::mpsc;
    use std::time::Duration;

    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(100)
        .weigher(|_, v| {
            if *v == 999 {
                panic!("weigher told to panic")
            } else {
                1
            }
        })
        .build();
    let r = catch_unwind(AssertUnwindSafe(|| cache.get_with(1, || 999)));
    assert!(
        r.is_err(),
        "the weigher's panic reaches the loader's caller"
    );
    let (tx, rx) = mpsc::channel();
    let c = cache.clone();
    thread::spawn(move || {
        let _ = tx.send(c.get_with(1, || 5));
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(5),
        "a later load of the key hangs on the dead flight"
    );
    cache.check_invariants();
}
