//! Write-through and write-behind against a recording test store: the
//! guarantees of issue 6 (coalescing, per-key order, read-your-writes under
//! eviction, back-pressure, retries, the failure callback, shutdown), a
//! proptest of concurrent interleavings against a reference model, and
//! failure injection (errors, panics, stalls).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use larder::{Cache, FlushError, Op, Store, StoreError, WriteBehind, WriteThrough};
use proptest::prelude::*;

// ---------------------------------------------------------------------------
// The test store

/// One successful store call.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Call {
    Write(Vec<(u32, u64)>),
    Delete(Vec<u32>),
}

#[derive(Default)]
struct Inner {
    map: BTreeMap<u32, u64>,
    /// Every call that succeeded, in order.
    log: Vec<Call>,
    /// Every call, failed or not.
    attempts: u64,
    /// Fail this many calls, then succeed.
    fail_next: u32,
    fail_always: bool,
    /// Panic in this many calls.
    panic_next: u32,
    /// Calls wait while this is set.
    stalled: bool,
    /// Calls waiting on the stall now.
    waiting: u32,
    /// Calls running now (must never exceed 1).
    running: u32,
}

/// A store that records every batch and can be told to fail, panic or
/// stall.
#[derive(Default)]
struct TestStore {
    inner: Mutex<Inner>,
    cv: Condvar,
}

#[derive(Debug, PartialEq, Eq)]
struct Refused;

impl TestStore {
    fn new() -> Arc<Self> {
        Arc::default()
    }
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn map(&self) -> BTreeMap<u32, u64> {
        self.lock().map.clone()
    }
    fn log(&self) -> Vec<Call> {
        self.lock().log.clone()
    }
    fn stall(&self) {
        self.lock().stalled = true;
    }
    fn release(&self) {
        self.lock().stalled = false;
        self.cv.notify_all();
    }
    fn fail_next(&self, n: u32) {
        self.lock().fail_next = n;
    }
    fn fail_always(&self, on: bool) {
        self.lock().fail_always = on;
    }
    fn panic_next(&self, n: u32) {
        self.lock().panic_next = n;
    }
    /// Waits until a call is parked on the stall.
    fn wait_for_stalled_call(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut inner = self.lock();
        while inner.waiting == 0 {
            assert!(Instant::now() < deadline, "no store call arrived");
            inner = self
                .cv
                .wait_timeout(inner, Duration::from_millis(5))
                .unwrap()
                .0;
        }
    }
    /// The values written to `key` (None for a delete), in store order.
    fn history(&self, key: u32) -> Vec<Option<u64>> {
        let mut out = Vec::new();
        for call in &self.lock().log {
            match call {
                Call::Write(batch) => out.extend(
                    batch
                        .iter()
                        .filter(|(k, _)| *k == key)
                        .map(|(_, v)| Some(*v)),
                ),
                Call::Delete(keys) => out.extend(keys.iter().filter(|k| **k == key).map(|_| None)),
            }
        }
        out
    }

    fn call(&self, keys: Vec<u32>, apply: impl FnOnce(&mut Inner) -> Call) -> Result<(), Refused> {
        let mut inner = self.lock();
        inner.attempts += 1;
        let distinct: HashSet<_> = keys.iter().collect();
        assert_eq!(distinct.len(), keys.len(), "a key twice in one batch");
        assert!(!keys.is_empty(), "an empty batch");
        inner.running += 1;
        assert_eq!(inner.running, 1, "concurrent store calls");
        inner.waiting += 1;
        self.cv.notify_all();
        while inner.stalled {
            inner = self.cv.wait(inner).unwrap();
        }
        inner.waiting -= 1;
        inner.running -= 1;
        if inner.panic_next > 0 {
            inner.panic_next -= 1;
            drop(inner);
            panic!("test store told to panic");
        }
        if inner.fail_always {
            return Err(Refused);
        }
        if inner.fail_next > 0 {
            inner.fail_next -= 1;
            return Err(Refused);
        }
        let call = apply(&mut inner);
        inner.log.push(call);
        Ok(())
    }
}

impl Store<u32, u64> for TestStore {
    type Error = Refused;
    fn write(&self, batch: &[(u32, u64)]) -> Result<(), Refused> {
        self.call(batch.iter().map(|(k, _)| *k).collect(), |inner| {
            inner.map.extend(batch.iter().copied());
            Call::Write(batch.to_vec())
        })
    }
    fn delete(&self, keys: &[u32]) -> Result<(), Refused> {
        self.call(keys.to_vec(), |inner| {
            for k in keys {
                inner.map.remove(k);
            }
            Call::Delete(keys.to_vec())
        })
    }
    /// Reads are not calls: they run beside the flusher's calls and are
    /// never told to fail.
    fn read(&self, key: &u32) -> Result<Option<u64>, Refused> {
        Ok(self.lock().map.get(key).copied())
    }
}

type Wb = WriteBehind<u32, u64, Arc<TestStore>>;
type FailLog = Arc<Mutex<Vec<(Op<u32, u64>, String)>>>;

/// An adapter that only sends on flush, a full batch or close.
fn lazy(cache: &Cache<u32, u64>, store: &Arc<TestStore>) -> Wb {
    WriteBehind::builder(cache.clone(), store.clone())
        .max_delay(Duration::from_secs(3600))
        .build()
}

fn recording_failures(
    builder: larder::WriteBehindBuilder<u32, u64, Arc<TestStore>>,
) -> (Wb, FailLog) {
    let log: FailLog = Arc::default();
    let sink = log.clone();
    let wb = builder
        .on_failure(move |ops, err| {
            let mut sink = sink.lock().unwrap();
            sink.extend(ops.iter().map(|op| (op.clone(), err.to_string())));
        })
        .build();
    (wb, log)
}

/// Quiets the default panic hook's output for panics the tests provoke.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let msg = info.to_string();
            if !msg.contains("told to panic") && !msg.contains("callback told to panic") {
                default(info);
            }
        }));
    });
}

// ---------------------------------------------------------------------------
// Write-behind: the guarantees one at a time

#[test]
fn coalesces_writes_and_a_delete_after_a_write() {
    let store = TestStore::new();
    let cache = Cache::new(100);
    let wb = lazy(&cache, &store);
    for v in 1..=100 {
        wb.write(1, v);
    }
    wb.write(2, 7);
    wb.delete(&2);
    wb.flush().unwrap();
    assert_eq!(
        store.log(),
        vec![Call::Write(vec![(1, 100)]), Call::Delete(vec![2])],
        "one write with the last value, and only the delete for key 2"
    );
    let stats = wb.stats();
    assert_eq!(
        (stats.writes, stats.deletes, stats.coalesced),
        (101, 1, 100)
    );
    assert_eq!(
        (stats.batches, stats.store_calls, stats.persisted),
        (1, 2, 2)
    );
    assert_eq!((stats.retries, stats.failures, stats.pending), (0, 0, 0));
}

#[test]
fn batches_group_keys_up_to_batch_size() {
    let store = TestStore::new();
    let wb = WriteBehind::builder(Cache::new(1000), store.clone())
        .batch_size(10)
        .max_delay(Duration::from_secs(3600))
        .build();
    for k in 0..95 {
        wb.write(k, u64::from(k));
    }
    wb.flush().unwrap();
    let log = store.log();
    assert_eq!(log.len(), 10, "nine full batches and one of five");
    for call in &log {
        let Call::Write(batch) = call else {
            panic!("no deletes were queued")
        };
        assert!(batch.len() <= 10);
    }
    assert_eq!(store.map().len(), 95);
    // Keys leave in the order they were queued.
    let order: Vec<u32> = log
        .iter()
        .flat_map(|c| match c {
            Call::Write(b) => b.iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            Call::Delete(_) => unreachable!(),
        })
        .collect();
    assert_eq!(order, (0..95).collect::<Vec<_>>());
}

#[test]
fn read_your_writes_under_eviction_pressure() {
    let store = TestStore::new();
    store.stall();
    let cache: Cache<u32, u64> = Cache::builder().max_capacity(8).shards(1).build();
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .batch_size(1000)
        .max_delay(Duration::ZERO)
        .build();
    for k in 0..2_000 {
        wb.write(k, u64::from(k) * 10);
    }
    for k in (0..2_000).step_by(3) {
        wb.delete(&k);
    }
    assert!(cache.len() <= 8, "the cache stays within its capacity");
    for k in 0..2_000 {
        let expected = (k % 3 != 0).then_some(u64::from(k) * 10);
        assert_eq!(wb.get(&k), expected, "key {k} while the store is stalled");
    }
    store.release();
    wb.flush().unwrap();
    let map = store.map();
    for k in 0..2_000 {
        assert_eq!(
            map.get(&k).copied(),
            (k % 3 != 0).then_some(u64::from(k) * 10)
        );
    }
}

// ---------------------------------------------------------------------------
// Read-your-writes through `Store::read` (issue 16)

/// A plain map store with `read`, counting reads; a read can be held at a
/// gate, or told to fail.
#[derive(Default)]
struct MapStore {
    map: Mutex<HashMap<u32, u64>>,
    reads: AtomicU64,
    fail_reads: AtomicBool,
    /// While set, `read` meets this barrier twice (arrived, released).
    gate: Mutex<Option<Arc<Barrier>>>,
}

impl Store<u32, u64> for MapStore {
    type Error = Refused;
    fn write(&self, batch: &[(u32, u64)]) -> Result<(), Refused> {
        self.map.lock().unwrap().extend(batch.iter().copied());
        Ok(())
    }
    fn delete(&self, keys: &[u32]) -> Result<(), Refused> {
        let mut map = self.map.lock().unwrap();
        keys.iter().for_each(|k| {
            map.remove(k);
        });
        Ok(())
    }
    fn read(&self, key: &u32) -> Result<Option<u64>, Refused> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let value = self.map.lock().unwrap().get(key).copied();
        let gate = self.gate.lock().unwrap().clone();
        if let Some(gate) = gate {
            gate.wait();
            gate.wait();
        }
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(Refused);
        }
        Ok(value)
    }
}

/// A store with the provided `read` (reads nothing).
struct NoReadStore(Mutex<HashMap<u32, u64>>);

impl Store<u32, u64> for NoReadStore {
    type Error = Refused;
    fn write(&self, batch: &[(u32, u64)]) -> Result<(), Refused> {
        self.0.lock().unwrap().extend(batch.iter().copied());
        Ok(())
    }
    fn delete(&self, keys: &[u32]) -> Result<(), Refused> {
        let mut map = self.0.lock().unwrap();
        keys.iter().for_each(|k| {
            map.remove(k);
        });
        Ok(())
    }
}

/// SplitMix64, for skewed keys without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// A key in `0..n`, skewed towards 0 (the cube of a uniform draw: the
    /// first 10% of the keys take about 46% of the draws).
    fn skewed(&mut self, n: u32) -> u32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * f64::from(n)) as u32
    }
}

/// `writes` skewed writes over `keys` keys of `owner`'s (key * threads +
/// owner), each followed by a `get` that must return it, and by a `get` of
/// another of the owner's keys that must return its last write (most of
/// those have landed and left the small cache, so they come from the
/// store). One write in 16 is a delete, read back as `None`.
fn write_then_read<T: Store<u32, u64, Error = Refused> + Send + Sync + 'static>(
    wb: &WriteBehind<u32, u64, T>,
    seed: u64,
    writes: u64,
    keys: u32,
    owner: u32,
    threads: u32,
) {
    let mut rng = Rng(seed);
    let mut last: HashMap<u32, Option<u64>> = HashMap::new();
    for i in 0..writes {
        let key = rng.skewed(keys) * threads + owner;
        let op = if rng.next() % 16 == 0 {
            wb.delete(&key);
            None
        } else {
            let value = (u64::from(owner) << 32) | i;
            wb.write(key, value);
            Some(value)
        };
        last.insert(key, op);
        assert_eq!(
            wb.get(&key),
            op,
            "write {i}: key {key} read after its write"
        );
        let other = (rng.next() % u64::from(keys)) as u32 * threads + owner;
        let expected = last.get(&other).copied().flatten();
        assert_eq!(
            wb.get(&other),
            expected,
            "write {i}: key {other} read later"
        );
    }
}

/// The run of the issue: 100,000 skewed writes over 1,000 keys into a
/// cache of 50, `get` after every write. Batches land all the time (small
/// batches, no delay), so most keys are read after their write has landed
/// and the cache has dropped it: those reads come from the store.
#[test]
fn get_after_every_write_returns_it_with_a_small_cache() {
    for (batch, delay) in [(8, Duration::ZERO), (500, Duration::from_millis(50))] {
        let store = Arc::new(MapStore::default());
        let cache: Cache<u32, u64> = Cache::new(50);
        let wb = WriteBehind::builder(cache.clone(), store.clone())
            .batch_size(batch)
            .max_delay(delay)
            .build();
        write_then_read(&wb, 7, 100_000, 1_000, 0, 1);
        wb.flush().unwrap();
        assert!(cache.len() <= 50);
        cache.check_invariants();
        if batch == 8 {
            assert!(
                store.reads.load(Ordering::SeqCst) > 0,
                "no read reached the store: the test did not test the fallback"
            );
        }
    }
}

/// The same with four writer threads, each on its own keys (250 each).
#[test]
fn get_after_every_write_returns_it_with_several_writers() {
    let store = Arc::new(MapStore::default());
    let cache: Cache<u32, u64> = Cache::new(50);
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .batch_size(8)
        .max_delay(Duration::ZERO)
        .build();
    const THREADS: u32 = 4;
    thread::scope(|s| {
        for t in 0..THREADS {
            let wb = &wb;
            s.spawn(move || {
                write_then_read(wb, 100 + u64::from(t), 25_000, 1_000 / THREADS, t, THREADS)
            });
        }
    });
    wb.flush().unwrap();
    cache.check_invariants();
    assert!(store.reads.load(Ordering::SeqCst) > 0);
}

/// A landed write the cache has dropped: read from the store with `read`,
/// `None` over a store without it (the documented fallback).
#[test]
fn a_landed_and_evicted_write_is_read_from_the_store() {
    let store = Arc::new(MapStore::default());
    let cache: Cache<u32, u64> = Cache::new(100);
    let wb = WriteBehind::new(cache.clone(), store.clone());
    wb.write(1, 10);
    wb.flush().unwrap();
    cache.invalidate_all();
    assert_eq!(wb.get(&1), Some(10));
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get(&1), Some(10), "the read filled the cache");
    assert_eq!(wb.get(&1), Some(10));
    assert_eq!(store.reads.load(Ordering::SeqCst), 1, "a hit reads nothing");
    assert_eq!(wb.get(&2), None, "absent in the store");
    assert_eq!(cache.get(&2), None, "absence is not cached");

    let bare = Arc::new(NoReadStore(Mutex::default()));
    let cache: Cache<u32, u64> = Cache::new(100);
    let wb = WriteBehind::new(cache.clone(), bare.clone());
    wb.write(1, 10);
    wb.flush().unwrap();
    cache.invalidate_all();
    assert_eq!(bare.0.lock().unwrap()[&1], 10);
    assert_eq!(
        wb.get(&1),
        None,
        "without `read` a miss says nothing about the store"
    );
}

/// Concurrent `get`s of one missing key make one store read.
#[test]
fn concurrent_misses_make_one_store_read() {
    let store = Arc::new(MapStore::default());
    store.map.lock().unwrap().insert(1, 10);
    let gate = Arc::new(Barrier::new(2));
    *store.gate.lock().unwrap() = Some(gate.clone());
    let cache: Cache<u32, u64> = Cache::builder().max_capacity(100).shards(1).build();
    let wb = WriteBehind::new(cache.clone(), store.clone());
    thread::scope(|s| {
        let first = s.spawn(|| wb.get(&1));
        gate.wait(); // the first read is in the store
        *store.gate.lock().unwrap() = None;
        let others: Vec<_> = (0..4).map(|_| s.spawn(|| wb.get(&1))).collect();
        // Let the others reach the flight before the read returns: they
        // have counted their misses once they are about to join it.
        while cache.stats().misses < 5 {
            thread::yield_now();
        }
        gate.wait();
        assert_eq!(first.join().unwrap(), Some(10));
        for h in others {
            assert_eq!(h.join().unwrap(), Some(10));
        }
    });
    // A joiner that was late to the flight hits the filled cache instead:
    // either way, one read.
    assert_eq!(store.reads.load(Ordering::SeqCst), 1);
}

/// A write acknowledged while a miss reads the store wins: the cache keeps
/// the write, not the older value read.
#[test]
fn a_write_during_a_store_read_wins() {
    let store = Arc::new(MapStore::default());
    store.map.lock().unwrap().insert(1, 10);
    let gate = Arc::new(Barrier::new(2));
    *store.gate.lock().unwrap() = Some(gate.clone());
    let cache: Cache<u32, u64> = Cache::new(100);
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .max_delay(Duration::from_secs(3600))
        .build();
    thread::scope(|s| {
        let reader = s.spawn(|| wb.get(&1));
        gate.wait(); // the read has taken the old value
        *store.gate.lock().unwrap() = None;
        wb.write(1, 11);
        gate.wait();
        // Concurrent with the write: either answer is allowed.
        let got = reader.join().unwrap();
        assert!(got == Some(10) || got == Some(11), "{got:?}");
    });
    assert_eq!(
        cache.get(&1),
        Some(11),
        "the old value read did not overwrite the write"
    );
    assert_eq!(wb.get(&1), Some(11));
    wb.flush().unwrap();
    cache.invalidate_all();
    assert_eq!(wb.get(&1), Some(11));
}

/// A delete acknowledged while a miss reads the store wins too.
#[test]
fn a_delete_during_a_store_read_wins() {
    let store = Arc::new(MapStore::default());
    store.map.lock().unwrap().insert(1, 10);
    let gate = Arc::new(Barrier::new(2));
    *store.gate.lock().unwrap() = Some(gate.clone());
    let cache: Cache<u32, u64> = Cache::new(100);
    let wb = WriteBehind::new(cache.clone(), store.clone());
    thread::scope(|s| {
        let reader = s.spawn(|| wb.get(&1));
        gate.wait();
        *store.gate.lock().unwrap() = None;
        wb.delete(&1);
        gate.wait();
        let _ = reader.join().unwrap();
    });
    assert_eq!(
        cache.get(&1),
        None,
        "the value read did not resurrect the key"
    );
    assert_eq!(wb.get(&1), None);
    wb.flush().unwrap();
    assert_eq!(wb.get(&1), None);
}

/// A failed read is returned by `try_get`, reads as `None` from `get`,
/// and caches nothing.
#[test]
fn a_failed_store_read_is_reported_and_not_cached() {
    let store = Arc::new(MapStore::default());
    store.map.lock().unwrap().insert(1, 10);
    store.fail_reads.store(true, Ordering::SeqCst);
    let cache: Cache<u32, u64> = Cache::new(100);
    let wb = WriteBehind::new(cache.clone(), store.clone());
    assert_eq!(wb.try_get(&1).map_err(|e| *e == Refused), Err(true));
    assert_eq!(wb.get(&1), None);
    assert_eq!(cache.get(&1), None);
    store.fail_reads.store(false, Ordering::SeqCst);
    assert_eq!(wb.try_get(&1), Ok(Some(10)));

    let wt = WriteThrough::new(Cache::new(100), store.clone());
    store.fail_reads.store(true, Ordering::SeqCst);
    assert_eq!(wt.try_get(&1).map_err(|e| *e == Refused), Err(true));
    assert_eq!(wt.get(&1), None);
}

/// Write-through: a write evicted from the cache is read from the store;
/// a write during a read wins.
#[test]
fn write_through_reads_a_miss_from_the_store() {
    let store = Arc::new(MapStore::default());
    let cache: Cache<u32, u64> = Cache::new(50);
    let wt = WriteThrough::new(cache.clone(), store.clone());
    let mut rng = Rng(3);
    let mut last = HashMap::new();
    for i in 0..20_000u64 {
        let key = rng.skewed(1_000);
        wt.write(key, i).unwrap();
        last.insert(key, i);
        assert_eq!(wt.get(&key), Some(i), "write {i}: key {key}");
        let other = (rng.next() % 1_000) as u32;
        assert_eq!(wt.get(&other), last.get(&other).copied(), "key {other}");
    }
    assert!(store.reads.load(Ordering::SeqCst) > 0);

    let gate = Arc::new(Barrier::new(2));
    store.map.lock().unwrap().insert(5_000, 1);
    *store.gate.lock().unwrap() = Some(gate.clone());
    thread::scope(|s| {
        let reader = s.spawn(|| wt.get(&5_000));
        gate.wait();
        *store.gate.lock().unwrap() = None;
        wt.write(5_000, 2).unwrap();
        gate.wait();
        let got = reader.join().unwrap();
        assert!(got == Some(1) || got == Some(2), "{got:?}");
    });
    assert_eq!(cache.get(&5_000), Some(2));
}

#[test]
fn per_key_order_holds_across_a_flight() {
    let store = TestStore::new();
    store.stall();
    let cache = Cache::new(100);
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .max_delay(Duration::ZERO)
        .build();
    wb.write(1, 1);
    store.wait_for_stalled_call(); // (1, 1) is in flight
    wb.write(1, 2);
    wb.write(1, 3); // coalesces with 2, not with the in-flight 1
    wb.delete(&9);
    assert_eq!(wb.get(&1), Some(3));
    assert_eq!(cache.get(&1), Some(3));
    store.release();
    wb.flush().unwrap();
    assert_eq!(store.history(1), vec![Some(1), Some(3)]);
    assert_eq!(
        wb.get(&1),
        Some(3),
        "landing the old flight did not undo the new value"
    );
    assert_eq!(wb.stats().coalesced, 1);
}

#[test]
fn back_pressure_blocks_writers_and_try_write_fails() {
    let store = TestStore::new();
    store.stall();
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .queue_capacity(4)
        .max_delay(Duration::ZERO)
        .build();
    wb.write(0, 0);
    store.wait_for_stalled_call();
    for k in 1..4 {
        wb.try_write(k, u64::from(k)).unwrap();
    }
    let full = wb.try_write(4, 40).unwrap_err();
    assert_eq!(full.into_inner(), (4, 40));
    wb.try_write(0, 100)
        .expect("a pending key (even in flight) coalesces without room");
    wb.try_write(2, 200)
        .expect("a pending key coalesces without room");

    let done = AtomicBool::new(false);
    thread::scope(|s| {
        s.spawn(|| {
            wb.write(5, 50); // blocks until the flusher makes room
            done.store(true, Ordering::SeqCst);
        });
        thread::sleep(Duration::from_millis(100));
        assert!(
            !done.load(Ordering::SeqCst),
            "write returned while the queue was full"
        );
        assert_eq!(wb.stats().pending, 4);
        store.release();
    });
    assert!(done.load(Ordering::SeqCst));
    wb.flush().unwrap();
    let expected: BTreeMap<u32, u64> = [(0, 100), (1, 1), (2, 200), (3, 3), (5, 50)].into();
    assert_eq!(store.map(), expected);
}

#[test]
fn max_delay_sends_without_a_flush() {
    let store = TestStore::new();
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .max_delay(Duration::from_millis(20))
        .build();
    let start = Instant::now();
    wb.write(1, 1);
    while store.map().get(&1) != Some(&1) {
        assert!(start.elapsed() < Duration::from_secs(10), "never sent");
        thread::sleep(Duration::from_millis(2));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(15),
        "sent before max_delay"
    );
}

#[test]
fn flush_does_not_wait_for_later_writes() {
    let store = TestStore::new();
    store.stall();
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .max_delay(Duration::ZERO)
        .build();
    wb.write(1, 1);
    store.wait_for_stalled_call();
    wb.write(2, 2); // queued behind the stalled flight
    thread::scope(|s| {
        let flusher = s.spawn(|| wb.flush());
        thread::sleep(Duration::from_millis(30));
        assert!(
            !flusher.is_finished(),
            "flush returned before its writes landed"
        );
        store.release();
        flusher.join().unwrap().unwrap();
    });
    assert_eq!(store.map().get(&2), Some(&2));
}

#[test]
fn drop_sends_everything_and_joins() {
    let store = TestStore::new();
    let wb = lazy(&Cache::new(10), &store);
    for k in 0..1_000 {
        wb.write(k, u64::from(k));
    }
    wb.delete(&5);
    drop(wb);
    let map = store.map();
    assert_eq!(map.len(), 999);
    assert!(!map.contains_key(&5));
    assert_eq!(Arc::strong_count(&store), 1, "the flusher is gone");
}

#[test]
fn close_reports_failures() {
    let store = TestStore::new();
    store.fail_always(true);
    let wb = WriteBehind::builder(Cache::new(10), store.clone())
        .max_delay(Duration::from_secs(3600))
        .max_retries(0)
        .build();
    wb.write(1, 1);
    wb.write(2, 2);
    assert_eq!(wb.close(), Err(FlushError::Failed { ops: 2 }));
    assert_eq!(Arc::strong_count(&store), 1);
}

// ---------------------------------------------------------------------------
// Failure injection

#[test]
fn store_failing_n_times_then_recovering_loses_nothing() {
    let store = TestStore::new();
    let (wb, failures) = recording_failures(
        WriteBehind::builder(Cache::new(100), store.clone())
            .batch_size(8)
            .max_delay(Duration::from_secs(3600))
            .max_retries(5)
            .backoff(Duration::from_millis(1)),
    );
    store.fail_next(4);
    let mut reference = BTreeMap::new();
    for k in 0..50u32 {
        wb.write(k, u64::from(k) + 1);
        reference.insert(k, u64::from(k) + 1);
    }
    for k in (0..50).step_by(7) {
        wb.delete(&k);
        reference.remove(&k);
    }
    wb.flush().unwrap();
    assert_eq!(store.map(), reference);
    assert!(failures.lock().unwrap().is_empty());
    let stats = wb.stats();
    assert_eq!((stats.retries, stats.failures), (4, 0));
    assert_eq!(stats.store_calls, store.lock().attempts);
    // A delete either replaced its key's queued write or followed it.
    assert_eq!(stats.persisted + stats.coalesced, 58);
}

#[test]
fn store_failing_forever_hands_every_op_to_the_callback_once() {
    let store = TestStore::new();
    store.fail_always(true);
    let cache = Cache::new(1_000);
    cache.insert(99, 1); // an old cached value for a key we will delete
    let (wb, failures) = recording_failures(
        WriteBehind::builder(cache.clone(), store.clone())
            .batch_size(7)
            .max_delay(Duration::from_secs(3600))
            .max_retries(2)
            .backoff(Duration::from_millis(1)),
    );
    // Batches of 7 leave while the rounds are still being written, so a
    // key may fail once per round; every operation here is distinct (a
    // key is deleted in at most one round).
    let mut acked: HashSet<Op<u32, u64>> = HashSet::new();
    let mut last: BTreeMap<u32, Op<u32, u64>> = BTreeMap::new();
    for round in 0..3u64 {
        for k in 0..40u32 {
            let op = if (k + round as u32) % 5 == 0 {
                wb.delete(&k);
                Op::Delete(k)
            } else {
                wb.write(k, round * 100 + u64::from(k));
                Op::Write(k, round * 100 + u64::from(k))
            };
            acked.insert(op.clone());
            last.insert(k, op);
        }
    }
    wb.delete(&99);
    acked.insert(Op::Delete(99));
    last.insert(99, Op::Delete(99));
    let result = wb.flush();

    let failures = failures.lock().unwrap().clone();
    let mut seen = HashSet::new();
    let mut last_seen = BTreeMap::new();
    for (op, err) in &failures {
        assert_eq!(err, "store error: refused");
        assert!(acked.contains(op), "{op:?} was never acknowledged");
        assert!(seen.insert(op.clone()), "{op:?} reported twice");
        last_seen.insert(*op.key(), op.clone());
    }
    assert_eq!(last_seen, last, "every key's last operation was reported");
    let stats = wb.stats();
    assert_eq!(
        result,
        Err(FlushError::Failed {
            ops: stats.failures
        })
    );
    assert_eq!(stats.failures, failures.len() as u64);
    assert_eq!(
        stats.failures + stats.coalesced,
        stats.writes + stats.deletes
    );
    assert_eq!(stats.persisted, 0);
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.store_calls, store.lock().attempts);
    assert_eq!(
        stats.retries * 3,
        stats.store_calls * 2,
        "two retries per call"
    );
    for k in 0..40 {
        assert_eq!(
            cache.get(&k),
            None,
            "a failed write is not left in the cache"
        );
    }
    assert!(store.log().is_empty());

    // The flusher lives on: fix the store and write again.
    store.fail_always(false);
    wb.write(1, 1);
    assert_eq!(wb.flush(), Ok(()));
    assert_eq!(store.map(), [(1, 1)].into());
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("refused")
    }
}

#[test]
fn a_panicking_store_is_retried_and_then_reported() {
    quiet_panics();
    let store = TestStore::new();
    let (wb, failures) = recording_failures(
        WriteBehind::builder(Cache::new(100), store.clone())
            .max_delay(Duration::from_secs(3600))
            .max_retries(1)
            .backoff(Duration::from_millis(1)),
    );
    store.panic_next(1);
    wb.write(1, 1);
    wb.flush().unwrap();
    assert_eq!(store.map(), [(1, 1)].into());
    assert_eq!(wb.stats().retries, 1);

    store.panic_next(2);
    wb.write(2, 2);
    assert_eq!(wb.flush(), Err(FlushError::Failed { ops: 1 }));
    let failures = failures.lock().unwrap().clone();
    assert_eq!(
        failures,
        vec![(
            Op::Write(2, 2),
            "store panicked: test store told to panic".to_string()
        )]
    );
    wb.write(3, 3);
    wb.flush().unwrap();
    assert_eq!(store.map(), [(1, 1), (3, 3)].into());
}

#[test]
fn a_panicking_failure_callback_does_not_stop_the_flusher() {
    quiet_panics();
    let store = TestStore::new();
    store.fail_always(true);
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .max_delay(Duration::from_secs(3600))
        .max_retries(0)
        .on_failure(|_, _| panic!("callback told to panic"))
        .build();
    wb.write(1, 1);
    assert_eq!(wb.flush(), Err(FlushError::Failed { ops: 1 }));
    store.fail_always(false);
    wb.write(2, 2);
    wb.flush().unwrap();
    assert_eq!(store.map(), [(2, 2)].into());
}

#[test]
fn flush_from_the_failure_callback_panics_instead_of_deadlocking() {
    quiet_panics();
    let store = TestStore::new();
    store.fail_always(true);
    let slot: Arc<Mutex<Option<Arc<Wb>>>> = Arc::default();
    let hook = slot.clone();
    let outcome: Arc<Mutex<Option<bool>>> = Arc::default();
    let out = outcome.clone();
    let wb = Arc::new(
        WriteBehind::builder(Cache::new(100), store.clone())
            .max_delay(Duration::from_secs(3600))
            .max_retries(0)
            .on_failure(move |_, _| {
                if let Some(wb) = hook.lock().unwrap().take() {
                    let panicked = catch_unwind(AssertUnwindSafe(|| wb.flush())).is_err();
                    *out.lock().unwrap() = Some(panicked);
                }
            })
            .build(),
    );
    *slot.lock().unwrap() = Some(wb.clone());
    wb.write(1, 1);
    assert!(wb.flush().is_err());
    assert_eq!(*outcome.lock().unwrap(), Some(true));
}

#[test]
fn flush_reports_failures_that_happened_before_it_was_called() {
    let store = TestStore::new();
    store.fail_always(true);
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .max_delay(Duration::from_millis(1))
        .max_retries(0)
        .build();
    wb.write(1, 1);
    wb.write(2, 2);
    let start = Instant::now();
    while wb.stats().failures < 2 {
        assert!(start.elapsed() < Duration::from_secs(10), "never sent");
        thread::sleep(Duration::from_millis(1));
    }
    // Both failed in the background, with nobody waiting: the next flush
    // still reports them, and only that one.
    assert_eq!(wb.flush(), Err(FlushError::Failed { ops: 2 }));
    assert_eq!(wb.flush(), Ok(()));
    store.fail_always(false);
    wb.write(3, 3);
    assert_eq!(wb.flush(), Ok(()));
}

#[test]
fn concurrent_flushes_each_report_a_failure_they_cover() {
    let store = TestStore::new();
    store.stall();
    store.fail_always(true);
    let wb = WriteBehind::builder(Cache::new(100), store.clone())
        .max_delay(Duration::ZERO)
        .max_retries(0)
        .build();
    wb.write(1, 1);
    store.wait_for_stalled_call();
    thread::scope(|s| {
        let a = s.spawn(|| wb.flush());
        let b = s.spawn(|| wb.flush());
        thread::sleep(Duration::from_millis(30)); // both are waiting
        assert!(!a.is_finished() && !b.is_finished());
        store.release();
        assert_eq!(a.join().unwrap(), Err(FlushError::Failed { ops: 1 }));
        assert_eq!(b.join().unwrap(), Err(FlushError::Failed { ops: 1 }));
    });
    assert_eq!(wb.flush(), Ok(()));
}

// ---------------------------------------------------------------------------
// Write-through

#[test]
fn write_through_writes_the_store_then_the_cache() {
    let store = TestStore::new();
    let cache = Cache::new(100);
    let wt = WriteThrough::new(cache.clone(), store.clone());
    wt.write(1, 10).unwrap();
    assert_eq!(store.map(), [(1, 10)].into());
    assert_eq!(cache.get(&1), Some(10));
    wt.delete(&1).unwrap();
    assert!(store.map().is_empty());
    assert_eq!(wt.get(&1), None);
    assert_eq!(store.log().len(), 2);
}

#[test]
fn write_through_error_invalidates_the_old_value() {
    quiet_panics();
    let store = TestStore::new();
    let cache = Cache::new(100);
    let wt = WriteThrough::new(cache.clone(), store.clone());
    wt.write(1, 10).unwrap();
    store.fail_next(1);
    assert_eq!(wt.write(1, 11), Err(Refused));
    assert_eq!(
        cache.get(&1),
        None,
        "neither the new nor the possibly stale old value"
    );
    assert_eq!(store.map(), [(1, 10)].into());

    wt.write(2, 20).unwrap();
    store.fail_next(1);
    assert_eq!(wt.delete(&2), Err(Refused));
    assert_eq!(cache.get(&2), None);

    wt.write(3, 30).unwrap();
    store.panic_next(1);
    assert!(catch_unwind(AssertUnwindSafe(|| wt.write(3, 31))).is_err());
    assert_eq!(cache.get(&3), None, "a panicking store also invalidates");
}

#[test]
fn write_through_concurrent_writers_leave_cache_and_store_agreeing() {
    /// A store whose calls take a varying time, to reorder racing writers.
    struct Jittery(Mutex<HashMap<u32, u64>>);
    impl Store<u32, u64> for Jittery {
        type Error = Refused;
        fn write(&self, batch: &[(u32, u64)]) -> Result<(), Refused> {
            thread::sleep(Duration::from_micros(batch[0].1 % 7 * 20));
            self.0.lock().unwrap().extend(batch.iter().copied());
            Ok(())
        }
        fn delete(&self, keys: &[u32]) -> Result<(), Refused> {
            keys.iter().for_each(|k| {
                self.0.lock().unwrap().remove(k);
            });
            Ok(())
        }
    }
    let store = Arc::new(Jittery(Mutex::default()));
    let cache = Cache::new(100);
    let wt = WriteThrough::new(cache.clone(), store.clone());
    thread::scope(|s| {
        for t in 0..4u64 {
            let wt = &wt;
            s.spawn(move || {
                for i in 0..100u64 {
                    wt.write((i % 3) as u32, t * 1_000 + i).unwrap();
                }
            });
        }
    });
    let db = store.0.lock().unwrap();
    for k in 0..3 {
        assert_eq!(cache.get(&k), db.get(&k).copied(), "key {k}");
    }
}

// ---------------------------------------------------------------------------
// proptest: concurrent interleavings against a reference model

#[derive(Clone, Debug)]
enum Step {
    Write(u32),
    Delete(u32),
    Flush,
    Get(u32),
}

/// Keys 0..4 belong to one thread each (key + 100 * thread); keys
/// 1000..1003 are shared by every thread.
fn key_of(thread: u32, k: u32) -> u32 {
    if k < 4 {
        thread * 100 + k
    } else {
        1_000 + (k - 4)
    }
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => (0u32..7).prop_map(Step::Write),
        2 => (0u32..7).prop_map(Step::Delete),
        1 => Just(Step::Flush),
        2 => (0u32..7).prop_map(Step::Get),
    ]
}

#[derive(Clone, Debug)]
struct Setup {
    batch_size: usize,
    capacity: usize,
    max_delay_ms: u64,
    cache_capacity: u64,
    fail_first: u32,
    threads: Vec<Vec<Step>>,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        1usize..6,
        1usize..12,
        prop_oneof![Just(0u64), Just(1), Just(3_600_000)],
        2u64..40,
        0u32..3,
        prop::collection::vec(prop::collection::vec(step(), 0..40), 1..4),
    )
        .prop_map(
            |(batch_size, capacity, max_delay_ms, cache_capacity, fail_first, threads)| Setup {
                batch_size,
                capacity,
                max_delay_ms,
                cache_capacity,
                fail_first,
                threads,
            },
        )
}

/// Read-your-writes on a key only this thread writes: pending, cached, or
/// landed and evicted (then read from the store), `get` returns the last
/// write.
fn check_owned_read(wb: &Wb, _store: &TestStore, key: u32, last: Option<u64>) {
    assert_eq!(wb.get(&key), last, "key {key}: not the last write");
}

/// Runs one thread's steps; returns its last operation per key.
fn run_thread(wb: &Wb, store: &TestStore, t: u32, steps: &[Step]) -> HashMap<u32, Option<u64>> {
    let mut last: HashMap<u32, Option<u64>> = HashMap::new();
    for (i, step) in steps.iter().enumerate() {
        // The value says who wrote it and when: thread in the high bits.
        let value = (u64::from(t) << 32) | i as u64;
        match *step {
            Step::Write(k) => {
                let key = key_of(t, k);
                wb.write(key, value);
                last.insert(key, Some(value));
                if k < 4 {
                    check_owned_read(wb, store, key, Some(value));
                }
            }
            Step::Delete(k) => {
                let key = key_of(t, k);
                wb.delete(&key);
                last.insert(key, None);
                if k < 4 {
                    assert_eq!(wb.get(&key), None, "read-your-deletes");
                }
            }
            Step::Get(k) if k < 4 => {
                let key = key_of(t, k);
                if let Some(op) = last.get(&key) {
                    check_owned_read(wb, store, key, *op);
                }
            }
            Step::Get(k) => {
                let _ = wb.get(&key_of(t, k));
            }
            Step::Flush => {
                wb.flush().expect("retries cover the injected failures");
                // Every write of this thread to its own keys before the
                // flush is in the store now.
                let map = store.map();
                for (key, op) in &last {
                    if *key < 1_000 {
                        assert_eq!(map.get(key).copied(), *op, "key {key} after a flush");
                    }
                }
            }
        }
    }
    last
}

fn check_interleaving(s: Setup) {
    let store = TestStore::new();
    store.fail_next(s.fail_first);
    let cache: Cache<u32, u64> = Cache::builder()
        .max_capacity(s.cache_capacity)
        .shards(1)
        .build();
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .batch_size(s.batch_size)
        .queue_capacity(s.capacity)
        .max_delay(Duration::from_millis(s.max_delay_ms))
        .max_retries(3)
        .backoff(Duration::from_micros(100))
        .build();
    let lasts: Vec<HashMap<u32, Option<u64>>> = thread::scope(|scope| {
        let handles: Vec<_> = s
            .threads
            .iter()
            .enumerate()
            .map(|(t, steps)| {
                let (wb, store) = (&wb, &*store);
                scope.spawn(move || run_thread(wb, store, t as u32, steps))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    wb.flush().unwrap();
    let map = store.map();

    let mut keys: HashSet<u32> = lasts.iter().flat_map(|l| l.keys().copied()).collect();
    keys.extend(map.keys().copied());
    for key in keys {
        let stored = map.get(&key).copied();
        // The store holds some thread's last operation on the key (exactly
        // the owner's for an owned key).
        let candidates: Vec<Option<u64>> =
            lasts.iter().filter_map(|l| l.get(&key).copied()).collect();
        assert!(
            candidates.contains(&stored),
            "key {key}: store has {stored:?}, last ops were {candidates:?}"
        );
        // The adapter agrees with the store (read from it if the cache
        // dropped the key).
        assert_eq!(wb.get(&key), stored, "key {key}: get vs store");
        // Per-key order: each thread's values reach the store in program
        // order, none twice.
        let mut seen: HashMap<u64, u64> = HashMap::new();
        for v in store.history(key).into_iter().flatten() {
            let (t, i) = (v >> 32, v & 0xFFFF_FFFF);
            if let Some(prev) = seen.insert(t, i) {
                assert!(prev < i, "key {key}: thread {t} wrote {i} after {prev}");
            }
        }
    }
    let stats = wb.stats();
    let ops: usize = s
        .threads
        .iter()
        .flatten()
        .filter(|st| matches!(st, Step::Write(_) | Step::Delete(_)))
        .count();
    assert_eq!(stats.writes + stats.deletes, ops as u64);
    assert_eq!(stats.pending, 0);
    assert_eq!(stats.failures, 0);
    assert_eq!(
        stats.writes + stats.deletes,
        stats.coalesced + stats.persisted,
        "every acknowledged operation was either replaced while queued or stored"
    );
    assert_eq!(stats.store_calls, store.lock().attempts);
    drop(wb);
    assert_eq!(Arc::strong_count(&store), 1);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_interleavings_match_the_reference(s in setup()) {
        check_interleaving(s);
    }
}

#[test]
fn store_error_displays_its_cause() {
    let e: StoreError<Refused> = StoreError::Store(Refused);
    assert_eq!(e.to_string(), "store error: refused");
    assert_eq!(
        FlushError::Failed { ops: 3 }.to_string(),
        "3 write-behind operation(s) failed to reach the store"
    );
}
