//! Regression tests for the loading defects of issue 17, each of which
//! failed (or hung) on the code before the fix. Hangs are caught with a
//! deadline: the operation runs on its own thread and the test fails if it
//! has not answered in time.

use std::hash::{BuildHasher, Hasher};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use larder::{Cache, Clock, ManualClock};

/// Generous: a hang is forever, a slow machine is a few seconds.
const DEADLINE: Duration = Duration::from_secs(20);

/// Runs `f` on a thread and returns its result, or panics with `what` if it
/// has not returned within [`DEADLINE`].
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(DEADLINE) {
        Ok(v) => v,
        Err(_) => panic!("hang: {what} did not return within {DEADLINE:?}"),
    }
}

/// Defect 1: a caller that starts after an invalidation must not join the
/// load that was in flight before it (that load read the old row).
fn read_after_invalidation_loads_afresh(invalidate: impl Fn(&Cache<u32, u32>)) {
    let cache: Cache<u32, u32> = Cache::new(100);
    let (loading, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let old_loader = {
        let (cache, loading, release) = (cache.clone(), loading.clone(), release.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                loading.wait();
                release.wait();
                100 // the old row, read before the writer's invalidation
            })
        })
    };
    loading.wait();
    invalidate(&cache);
    // Starts after the invalidation: must load what the store holds now.
    let fresh = within_deadline("get_with after invalidation", {
        let cache = cache.clone();
        move || cache.get_with(1, || 200)
    });
    assert_eq!(
        fresh, 200,
        "a read after the invalidation got the old value"
    );
    release.wait();
    assert_eq!(
        old_loader.join().unwrap(),
        100,
        "its own caller keeps its value"
    );
    // The old flight finishing did not unregister or overwrite the new one.
    assert_eq!(cache.get(&1), Some(200));
    assert_eq!(cache.get_with(1, || 300), 200);
    cache.check_invariants();
}

#[test]
fn remove_during_a_load_hides_it_from_later_callers() {
    read_after_invalidation_loads_afresh(|c| {
        c.remove(&1);
    });
}

#[test]
fn invalidate_all_during_a_load_hides_it_from_later_callers() {
    read_after_invalidation_loads_afresh(|c| c.invalidate_all());
}

#[test]
fn retain_during_a_load_hides_it_from_later_callers() {
    read_after_invalidation_loads_afresh(|c| c.retain(|_, _| true));
}

#[test]
fn a_later_flight_is_not_unregistered_by_the_stale_one() {
    // Old flight A (stale), new flight B in progress when A completes: a
    // third caller must still join B, not start C.
    let cache: Cache<u32, u32> = Cache::new(100);
    let (a_in, a_go) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let (b_in_tx, b_in) = mpsc::channel();
    let (b_go_tx, b_go) = mpsc::channel::<()>();
    let loads = Arc::new(AtomicUsize::new(0));
    let a = {
        let (cache, a_in, a_go) = (cache.clone(), a_in.clone(), a_go.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                a_in.wait();
                a_go.wait();
                100
            })
        })
    };
    a_in.wait();
    cache.remove(&1);
    let b = {
        let (cache, loads) = (cache.clone(), loads.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                b_in_tx.send(()).unwrap();
                b_go.recv().unwrap();
                200
            })
        })
    };
    let started = b_in.recv_timeout(DEADLINE);
    a_go.wait();
    assert_eq!(a.join().unwrap(), 100);
    assert!(
        started.is_ok(),
        "B joined the stale flight instead of loading"
    );
    // B is still loading; a caller now joins it (its loader must not run).
    let c = {
        let (cache, loads) = (cache.clone(), loads.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                loads.fetch_add(1, Ordering::SeqCst);
                300
            })
        })
    };
    // Give C every chance to (wrongly) start its own load, then release B.
    thread::sleep(Duration::from_millis(20));
    b_go_tx.send(()).unwrap();
    assert_eq!(b.join().unwrap(), 200);
    // C either joined B or, if it ran after B stored, hit B's value.
    assert_eq!(c.join().unwrap(), 200);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "C started its own load");
    assert_eq!(cache.get(&1), Some(200));
}

fn message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

/// Defect 2: user code that runs while a load completes (weigher,
/// `expire_after`) panics: the key must not stay stuck.
fn completion_panic_does_not_strand_the_key(cache: Cache<u32, u32>) {
    let first = catch_unwind(AssertUnwindSafe(|| cache.get_with(1, || 13)));
    assert!(message(first.unwrap_err()).contains("boom"));
    let again = within_deadline("get_with after a completion panic", {
        let cache = cache.clone();
        move || cache.get_with(1, || 14)
    });
    assert_eq!(again, 14);
    cache.check_invariants();
}

#[test]
fn a_panicking_weigher_during_completion_does_not_strand_the_key() {
    let cache: Cache<u32, u32> = Cache::builder()
        .weigher(|_, v| if *v == 13 { panic!("boom") } else { 1 })
        .build();
    completion_panic_does_not_strand_the_key(cache);
}

#[test]
fn a_panicking_expire_after_during_completion_does_not_strand_the_key() {
    let cache: Cache<u32, u32> = Cache::builder()
        .expire_after(|_, v| if *v == 13 { panic!("boom") } else { None })
        .build();
    completion_panic_does_not_strand_the_key(cache);
}

/// A value whose `Clone` panics once it is armed.
#[derive(Debug)]
struct Fragile {
    v: u32,
    armed: Arc<std::sync::atomic::AtomicBool>,
}

impl Clone for Fragile {
    fn clone(&self) -> Self {
        if self.armed.swap(false, Ordering::SeqCst) {
            panic!("boom");
        }
        Self {
            v: self.v,
            armed: self.armed.clone(),
        }
    }
}

#[test]
fn a_panicking_value_clone_during_completion_does_not_strand_its_waiters() {
    // The old code unregistered the flight, then cloned the value to store
    // it: a panic there left the flight's waiters parked forever.
    let cache: Cache<u32, Fragile> = Cache::new(100);
    let armed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let leader = {
        let (cache, entered, release, armed) = (
            cache.clone(),
            entered.clone(),
            release.clone(),
            armed.clone(),
        );
        thread::spawn(move || {
            let r = catch_unwind(AssertUnwindSafe(|| {
                cache.get_with(1, || {
                    entered.wait();
                    release.wait();
                    Fragile { v: 13, armed }
                })
            }));
            r.map(|f| f.v).map_err(message)
        })
    };
    entered.wait();
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || {
            cache
                .get_with(1, || Fragile {
                    v: 14,
                    armed: Arc::new(Default::default()),
                })
                .v
        })
    };
    thread::sleep(Duration::from_millis(20)); // let the waiter join
    release.wait();
    assert!(leader.join().unwrap().unwrap_err().contains("boom"));
    let got = within_deadline("the waiter", move || waiter.join().unwrap());
    // The waiter loaded for itself, or found a value stored before the
    // panic: never a hang.
    assert!(got == 13 || got == 14, "{got}");
    let again = within_deadline("a later caller", {
        let cache = cache.clone();
        move || {
            cache
                .get_with(1, || Fragile {
                    v: 15,
                    armed: Arc::new(Default::default()),
                })
                .v
        }
    });
    assert!(again == 13 || again == 14 || again == 15, "{again}");
    cache.check_invariants();
}

#[test]
fn waiters_of_a_completion_panic_wake_up() {
    let cache: Cache<u32, u32> = Cache::builder()
        .weigher(|_, v| if *v == 13 { panic!("boom") } else { 1 })
        .build();
    let (entered, release) = (Arc::new(Barrier::new(2)), Arc::new(Barrier::new(2)));
    let leader = {
        let (cache, entered, release) = (cache.clone(), entered.clone(), release.clone());
        thread::spawn(move || {
            catch_unwind(AssertUnwindSafe(|| {
                cache.get_with(1, || {
                    entered.wait();
                    release.wait();
                    13
                })
            }))
            .is_err()
        })
    };
    entered.wait();
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || cache.get_with(1, || 14))
    };
    thread::sleep(Duration::from_millis(20)); // let the waiter join
    release.wait();
    assert!(leader.join().unwrap(), "the leader's panic propagates");
    let got = within_deadline("the waiter", move || waiter.join().unwrap());
    assert_eq!(got, 14);
}

/// Defect 3: `get_all_with` from inside a loader, for the key being loaded.
#[test]
fn get_all_with_of_the_key_being_loaded_panics_instead_of_hanging() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let result = within_deadline("nested get_all_with", {
        let cache = cache.clone();
        move || {
            let c2 = cache.clone();
            catch_unwind(AssertUnwindSafe(|| {
                cache.get_with(1, || {
                    c2.get_all_with([1], |_| std::collections::HashMap::new())
                        .len() as u32
                })
            }))
            .map_err(message)
        }
    });
    let msg = result.unwrap_err();
    assert!(msg.contains("recursive load"), "{msg}");
    assert_eq!(cache.get_with(1, || 5), 5, "the key is usable afterwards");
}

/// Defect 4: `retain` clears negative marks, as documented.
#[test]
fn retain_clears_negative_marks() {
    let cache: Cache<u32, u32> = Cache::builder()
        .negative_ttl(Duration::from_secs(60))
        .build();
    assert_eq!(cache.optionally_get_with(1, || None), None);
    assert_eq!(cache.optionally_get_with(1, || Some(5)), None, "remembered");
    cache.retain(|_, _| true);
    assert_eq!(cache.optionally_get_with(1, || Some(5)), Some(5));
}

/// Defect 5: expired marks must not crowd out live ones. One shard of
/// capacity 64 (so at most 64 marks), ten requests per second, TTL 10 s:
/// mostly 20 recurring missing ids, one in twenty a one-off id never asked
/// again. Then, once every mark has expired, a burst of 64 new missing ids
/// asked twice: the second round must be answered by the marks. (Before the
/// fix, the table filled with expired one-off marks that no eviction could
/// reach, and each new mark pushed out the previous live one: all 64 were
/// loaded again.)
#[test]
fn negative_cache_keeps_remembering_under_churn() {
    let clock = ManualClock::new();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(64)
        .shards(1)
        .negative_ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    let loads = AtomicUsize::new(0);
    let absent = || {
        loads.fetch_add(1, Ordering::SeqCst);
        None
    };
    let mut x: u64 = 12345;
    let mut one_off = 1_000_000u64;
    for step in 0..30_000u64 {
        if step % 10 == 0 {
            clock.advance(Duration::from_secs(1));
        }
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let r = x >> 33;
        let key = if r % 20 == 0 {
            one_off += 1;
            one_off
        } else {
            r % 20
        };
        cache.optionally_get_with(key, absent);
    }
    clock.advance(Duration::from_secs(11));
    let burst = 5_000_000..5_000_064u64;
    for k in burst.clone() {
        cache.optionally_get_with(k, absent);
    }
    let before = loads.load(Ordering::SeqCst);
    for k in burst {
        cache.optionally_get_with(k, absent);
    }
    let again = loads.load(Ordering::SeqCst) - before;
    assert_eq!(again, 0, "{again} of 64 fresh marks were forgotten");
    assert!(cache.negative_mark_count() <= 64);
}

/// Defect 6: a weak hasher (identity for integers) must not put every key
/// in one shard.
#[derive(Clone, Default)]
struct Identity;

struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl BuildHasher for Identity {
    type Hasher = IdentityHasher;
    fn build_hasher(&self) -> IdentityHasher {
        IdentityHasher(0)
    }
}

/// Keeps only the low 16 bits of the key (a hasher that sets only low bits).
#[derive(Clone, Default)]
struct LowBits;

impl BuildHasher for LowBits {
    type Hasher = LowBitsHasher;
    fn build_hasher(&self) -> LowBitsHasher {
        LowBitsHasher(0)
    }
}

struct LowBitsHasher(u64);

impl Hasher for LowBitsHasher {
    fn finish(&self) -> u64 {
        self.0 & 0xFFFF
    }
    fn write(&mut self, _: &[u8]) {
        unreachable!("u64 keys only")
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

fn fills_every_shard<S: BuildHasher + Clone>(hasher: S, keys: u64) {
    let cache: Cache<u64, u64, S> = Cache::builder()
        .max_capacity(keys)
        .shards(64)
        .hasher(hasher)
        .build();
    for k in 0..keys {
        cache.insert(k, k);
    }
    // With 64 shards of keys/64 each, a fair spread keeps nearly all keys;
    // everything in one shard would keep 1/64 of them.
    assert!(
        cache.len() as u64 > keys * 9 / 10,
        "only {} of {keys} kept",
        cache.len()
    );
    cache.check_invariants();
}

#[test]
fn an_identity_hasher_spreads_keys_over_shards() {
    fills_every_shard(Identity, 100_000);
}

#[test]
fn a_hasher_of_low_bits_only_spreads_keys_over_shards() {
    // 2^16 distinct hashes for 2^16 keys.
    fills_every_shard(LowBits, 1 << 16);
}

/// Limitation: a clock that reads `u64::MAX` once (with expiry on) is
/// clamped: nothing panics, entries are judged expired at that time, and
/// the cache stays usable.
#[derive(Clone)]
struct JumpingClock {
    inner: ManualClock,
    jump: Arc<std::sync::atomic::AtomicBool>,
}

impl Clock for JumpingClock {
    fn now_nanos(&self) -> u64 {
        if self.jump.load(Ordering::SeqCst) {
            u64::MAX
        } else {
            self.inner.now_nanos()
        }
    }
}

#[test]
fn a_clock_that_reads_u64_max_is_clamped() {
    let jump = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clock = JumpingClock {
        inner: ManualClock::new(),
        jump: jump.clone(),
    };
    let cache: Cache<u32, u32> = Cache::builder()
        .time_to_live(Duration::from_secs(60))
        .time_to_idle(Duration::from_secs(30))
        .clock(clock)
        .build();
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), Some(1));
    jump.store(true, Ordering::SeqCst);
    // At the end of time every deadline has passed.
    assert_eq!(cache.get(&1), None);
    cache.insert(2, 2);
    cache.insert_with_ttl(3, 3, Duration::from_secs(1));
    let _ = cache.get(&2);
    cache.run_pending_tasks();
    jump.store(false, Ordering::SeqCst);
    // Time never goes backwards: what expired stays expired.
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get_with(4, || 4), 4);
    cache.check_invariants();
}

/// Limitation: negative marks are bounded by a count, not by a weight
/// budget (a byte budget would otherwise allow millions of marks).
#[test]
fn negative_marks_are_bounded_by_a_count_with_a_weigher() {
    let cache: Cache<u64, Vec<u8>> = Cache::builder()
        .max_capacity(1 << 30) // a 1 GiB byte budget
        .weigher(|_, v: &Vec<u8>| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .shards(1)
        .negative_ttl(Duration::from_secs(60))
        .build();
    let loads = AtomicUsize::new(0);
    let absent = || {
        loads.fetch_add(1, Ordering::SeqCst);
        None
    };
    for k in 0..100_000u64 {
        cache.optionally_get_with(k, absent);
    }
    // The newest marks are remembered; the oldest were dropped.
    let before = loads.load(Ordering::SeqCst);
    cache.optionally_get_with(99_999, absent);
    assert_eq!(loads.load(Ordering::SeqCst), before, "newest mark kept");
    cache.optionally_get_with(0, absent);
    assert_eq!(loads.load(Ordering::SeqCst), before + 1, "oldest dropped");
}

/// Limitation: a weigher's 0 counts as 1, so a flood of empty values
/// cannot grow the cache without bound.
#[test]
fn zero_weights_count_as_one() {
    let cache: Cache<u64, Vec<u8>> = Cache::builder()
        .max_capacity(1_000)
        .weigher(|_, v: &Vec<u8>| u32::try_from(v.len()).unwrap_or(u32::MAX))
        .build();
    for k in 0..100_000u64 {
        cache.insert(k, Vec::new());
    }
    assert!(cache.len() <= 1_000, "{} empty values kept", cache.len());
    assert_eq!(cache.weighted_size(), cache.len() as u64);
    cache.check_invariants();
}

/// Limitation: a `WriteBehind` and a loader of one's own on the same cache.
/// The rule (documented on `WriteBehind`, "The adapter owns its keys"):
/// read through `wb.get`, which stays right while a write is pending even
/// when a foreign loader has put the store's older value in the cache; a
/// foreign loader's older value outlives the write's landing for plain
/// `cache.get` readers, and `wb.get` alone (no foreign loader) is right
/// before and after the landing.
mod write_behind_rule {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::time::Duration;

    use larder::{Cache, Store, WriteBehind};

    #[derive(Default)]
    struct Db(Mutex<HashMap<u32, u64>>);

    impl Store<u32, u64> for Db {
        type Error = String;
        fn write(&self, batch: &[(u32, u64)]) -> Result<(), String> {
            self.0.lock().unwrap().extend(batch.iter().copied());
            Ok(())
        }
        fn delete(&self, keys: &[u32]) -> Result<(), String> {
            let mut rows = self.0.lock().unwrap();
            for k in keys {
                rows.remove(k);
            }
            Ok(())
        }
        fn read(&self, key: &u32) -> Result<Option<u64>, String> {
            Ok(self.0.lock().unwrap().get(key).copied())
        }
    }

    type Setup = (
        Cache<u32, u64>,
        WriteBehind<u32, u64, std::sync::Arc<Db>>,
        std::sync::Arc<Db>,
    );

    fn setup() -> Setup {
        let db = std::sync::Arc::new(Db::default());
        db.0.lock().unwrap().insert(1, 100); // the old row
        let cache: Cache<u32, u64> = Cache::new(100);
        // Batches wait up to an hour unless flushed: the write stays pending.
        let wb = WriteBehind::builder(cache.clone(), db.clone())
            .max_delay(Duration::from_secs(3600))
            .batch_size(1_000)
            .build();
        (cache, wb, db)
    }

    #[test]
    fn wb_get_is_right_before_and_after_landing() {
        let (cache, wb, db) = setup();
        wb.write(1, 200);
        cache.invalidate_all(); // the cache drops the pending write's value
        assert_eq!(wb.get(&1), Some(200), "pending: from the adapter");
        wb.flush().unwrap();
        assert_eq!(db.0.lock().unwrap()[&1], 200);
        cache.invalidate_all();
        assert_eq!(wb.get(&1), Some(200), "landed: read through the store");
    }

    #[test]
    fn a_foreign_loader_caches_the_pre_flush_row() {
        let (cache, wb, db) = setup();
        wb.write(1, 200);
        cache.remove(&1); // evicted, say
                          // A loader of one's own reads the store, which still has the old row.
        let seen = cache.get_with(1, || db.0.lock().unwrap()[&1]);
        assert_eq!(seen, 100);
        assert_eq!(wb.get(&1), Some(200), "the adapter still answers right");
        wb.flush().unwrap();
        // The documented hazard: after the landing the foreign value stays.
        assert_eq!(cache.get(&1), Some(100));
        assert_eq!(wb.get(&1), Some(100));
    }
}
