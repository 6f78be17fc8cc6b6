//! Soak: many threads mixing every operation, with faults injected
//! (panicking loaders, weighers, listeners and failure callbacks, failing
//! and panicking stores, failing store reads, loaders that return errors,
//! clock jumps forwards and backwards), for a bounded time; then the
//! invariants and the accounting are checked and a summary printed:
//! operations done, faults injected, violations found (must be zero).
//!
//! Runs for `LARDER_SOAK_SECS` seconds (default 2, so a plain `cargo test`
//! stays quick; CI runs it for 60 in release mode):
//!
//! ```text
//! LARDER_SOAK_SECS=60 cargo test --release --test soak -- --nocapture
//! ```
//!
//! Checked while running: every value returned belongs to the key asked
//! for; a write-behind `get` right after a `write` or `delete` returns it
//! (unless the failure callback has received an operation of that key);
//! every panic that reaches a caller is an injected one. At the end:
//! `check_invariants` on every cache; the listener's calls per cause match
//! the stats (`Evicted` = evictions, `Expired` = expirations, `Explicit` +
//! `Replaced` = removals + updates); entries stored = inserts - policy
//! evictions - expirations - removals; the write-behind counters add up
//! (every acknowledged operation coalesced, persisted or failed) and the
//! store holds each key's last operation unless one of its operations
//! failed.

use std::collections::{HashMap, HashSet};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use larder::{Cache, FlushError, ManualClock, Policy, RemovalCause, Store, WriteBehind};

/// Marks every panic the soak provokes.
const INJECTED: &str = "injected fault";

fn quiet_injected_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.to_string().contains(INJECTED) {
                default(info);
            }
        }));
    });
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// Skewed towards 0 (the cube of a uniform draw).
    fn skewed(&mut self, n: u32) -> u32 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((u * u * u) * f64::from(n)) as u32
    }
}

/// What the run counts; violations keep their first messages.
#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    faults: AtomicU64,
    violations: AtomicU64,
    messages: Mutex<Vec<String>>,
}

impl Tally {
    fn violation(&self, msg: String) {
        self.violations.fetch_add(1, Ordering::Relaxed);
        let mut m = self.messages.lock().unwrap();
        if m.len() < 20 {
            m.push(msg);
        }
    }
    fn fault(&self) {
        self.faults.fetch_add(1, Ordering::Relaxed);
    }
    /// Runs `op`; an injected panic is a fault, any other a violation.
    fn guard<T>(&self, what: &str, op: impl FnOnce() -> T) -> Option<T> {
        self.ops.fetch_add(1, Ordering::Relaxed);
        match catch_unwind(AssertUnwindSafe(op)) {
            Ok(v) => Some(v),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                if msg.contains(INJECTED) {
                    self.fault();
                } else {
                    self.violation(format!("{what}: unexpected panic: {msg}"));
                }
                None
            }
        }
    }
}

/// Values carry their key in the high half, and a fault selector in the
/// low bits (per mille).
fn value(key: u32, rng: &mut Rng) -> u64 {
    (u64::from(key) << 32) | (rng.next() & 0xFFFF_FFFF)
}
fn key_of(v: u64) -> u32 {
    (v >> 32) as u32
}
fn selector(v: u64) -> u64 {
    (v & 0xFFFF_FFFF) % 1_000
}

fn check_value(tally: &Tally, what: &str, key: u32, v: Option<u64>) {
    if let Some(v) = v {
        if key_of(v) != key {
            tally.violation(format!(
                "{what}({key}) returned a value of key {}",
                key_of(v)
            ));
        }
    }
}

#[derive(Default)]
struct Causes {
    evicted: AtomicU64,
    expired: AtomicU64,
    explicit: AtomicU64,
    replaced: AtomicU64,
}

/// A store that fails or panics on some calls and reads.
#[derive(Default)]
struct FlakyStore {
    map: Mutex<HashMap<u32, u64>>,
    calls: AtomicU64,
    faults: AtomicU64,
}

#[derive(Debug)]
struct Down;

impl FlakyStore {
    /// 3% of calls fail, 1% panic.
    fn fault(&self) -> Result<(), Down> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        match Rng(n ^ 0xF1A6).next() % 100 {
            0..=2 => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                Err(Down)
            }
            3 => {
                self.faults.fetch_add(1, Ordering::Relaxed);
                panic!("{INJECTED}: store");
            }
            _ => Ok(()),
        }
    }
}

impl Store<u32, u64> for FlakyStore {
    type Error = Down;
    fn write(&self, batch: &[(u32, u64)]) -> Result<(), Down> {
        self.fault()?;
        self.map.lock().unwrap().extend(batch.iter().copied());
        Ok(())
    }
    fn delete(&self, keys: &[u32]) -> Result<(), Down> {
        self.fault()?;
        let mut map = self.map.lock().unwrap();
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn read(&self, key: &u32) -> Result<Option<u64>, Down> {
        let n = self.calls.fetch_add(1, Ordering::Relaxed);
        if Rng(n ^ 0x2EAD).next() % 100 == 0 {
            self.faults.fetch_add(1, Ordering::Relaxed);
            return Err(Down);
        }
        Ok(self.map.lock().unwrap().get(key).copied())
    }
}

fn soak_secs() -> f64 {
    std::env::var("LARDER_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2.0)
}

/// One cache worker: every `Cache` operation, with injected faults.
fn cache_worker(cache: &Cache<u32, u64>, tally: &Tally, seed: u64, stop: &AtomicBool) {
    let mut rng = Rng(seed);
    while !stop.load(Ordering::Relaxed) {
        let k = rng.skewed(4_096);
        let v = value(k, &mut rng);
        match rng.below(100) {
            0..=34 => {
                let got = tally.guard("get", || cache.get(&k));
                check_value(tally, "get", k, got.flatten());
            }
            35..=56 => {
                tally.guard("insert", || cache.insert(k, v));
            }
            57..=59 => {
                let ttl = Duration::from_millis(rng.below(3_000));
                tally.guard("insert_with_ttl", || cache.insert_with_ttl(k, v, ttl));
            }
            60..=66 => {
                let got = tally.guard("remove", || cache.remove(&k));
                check_value(tally, "remove", k, got.flatten());
            }
            67..=76 => {
                let panics = rng.below(100) == 0;
                let got = tally.guard("get_with", || {
                    cache.get_with(k, || {
                        if panics {
                            panic!("{INJECTED}: loader");
                        }
                        v
                    })
                });
                check_value(tally, "get_with", k, got);
            }
            77..=82 => {
                let fails = rng.below(10) == 0;
                match tally.guard("try_get_with", || {
                    cache.try_get_with(k, || if fails { Err("down") } else { Ok(v) })
                }) {
                    Some(Ok(got)) => check_value(tally, "try_get_with", k, Some(got)),
                    Some(Err(_)) => tally.fault(),
                    None => {}
                }
            }
            83..=85 => {
                let absent = rng.below(4) == 0;
                let got = tally.guard("optionally_get_with", || {
                    cache.optionally_get_with(k, || (!absent).then_some(v))
                });
                check_value(tally, "optionally_get_with", k, got.flatten());
            }
            86..=89 => {
                let keys: Vec<u32> = (0..4).map(|_| rng.skewed(4_096)).collect();
                let fresh = rng.next();
                let got = tally.guard("get_all_with", || {
                    cache.get_all_with(keys.iter().copied(), |missing| {
                        missing
                            .iter()
                            .filter(|k| *k % 5 != 0)
                            .map(|&k| (k, (u64::from(k) << 32) | (fresh & 0xFFFF_FFFF)))
                            .collect()
                    })
                });
                for (k, v) in got.into_iter().flatten() {
                    check_value(tally, "get_all_with", k, Some(v));
                }
            }
            90 | 91 => {
                let m = rng.below(7) + 2;
                tally.guard("retain", || {
                    cache.retain(|k, v| {
                        if key_of(*v) != *k {
                            panic!("retain saw a value of another key");
                        }
                        v % m != 0
                    })
                });
            }
            92 => {
                if rng.below(50) == 0 {
                    tally.guard("invalidate_all", || cache.invalidate_all());
                } else {
                    tally.guard("run_pending_tasks", || cache.run_pending_tasks());
                }
            }
            93..=95 => {
                let got = tally.guard("peek", || cache.peek(&k));
                check_value(tally, "peek", k, got.flatten());
                tally.guard("contains_key", || cache.contains_key(&k));
            }
            96 => {
                if rng.below(20) == 0 {
                    if let Some(all) = tally.guard("iter", || cache.iter().collect::<Vec<_>>()) {
                        for (k, v) in all {
                            check_value(tally, "iter", k, Some(v));
                        }
                    }
                }
            }
            97 => {
                tally.guard("stats", || cache.stats());
            }
            _ => {
                if rng.below(64) == 0 {
                    // Other workers are running: the at-rest budget check
                    // waits for the end of the run.
                    tally.guard("check_invariants", || cache.check_invariants_while_busy());
                }
            }
        }
    }
}

type Wb = WriteBehind<u32, u64, Arc<FlakyStore>>;

/// One write-behind worker on its own keys: read-your-writes after every
/// operation, unless an operation of the key failed.
fn write_behind_worker(
    wb: &Wb,
    failed: &Mutex<HashSet<u32>>,
    tally: &Tally,
    owner: u32,
    stop: &AtomicBool,
) -> HashMap<u32, Option<u64>> {
    let mut rng = Rng(0xB0B + u64::from(owner));
    let mut last = HashMap::new();
    while !stop.load(Ordering::Relaxed) {
        let k = owner * 100_000 + rng.skewed(300);
        match rng.below(100) {
            0..=59 => {
                let v = value(k, &mut rng);
                if tally.guard("wb.write", || wb.write(k, v)).is_some() {
                    last.insert(k, Some(v));
                }
            }
            60..=69 => {
                if tally.guard("wb.delete", || wb.delete(&k)).is_some() {
                    last.insert(k, None);
                }
            }
            70..=98 => {}
            _ => {
                match tally.guard("wb.flush", || wb.flush()) {
                    Some(Ok(())) | None => {}
                    Some(Err(FlushError::Failed { .. })) => tally.fault(),
                    Some(Err(e)) => tally.violation(format!("wb.flush: {e}")),
                }
                continue;
            }
        }
        let Some(&expected) = last.get(&k) else {
            continue;
        };
        match tally.guard("wb.try_get", || wb.try_get(&k)) {
            Some(Ok(got)) if got != expected && !failed.lock().unwrap().contains(&k) => {
                tally.violation(format!(
                    "write-behind get({k}) = {got:?}, last acknowledged {expected:?}"
                ));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) => tally.fault(), // an injected read failure
            None => {}
        }
    }
    last
}

#[test]
fn soak() {
    quiet_injected_panics();
    let secs = soak_secs();
    let tally = Arc::new(Tally::default());
    let clock = ManualClock::new();

    // The cache: W-TinyLFU, weights 0..4 with some too heavy to store,
    // a TTL on the manual clock, panicking weighers and listeners.
    let causes = Arc::new(Causes::default());
    let sink = causes.clone();
    let cache: Cache<u32, u64> = Cache::builder()
        .max_capacity(2_000)
        .shards(4)
        .policy(Policy::WTinyLfu)
        .time_to_live(Duration::from_secs(2))
        .clock(clock.clone())
        .weigher(|_, v| match selector(*v) {
            7 => panic!("{INJECTED}: weigher"),
            13 => u32::MAX, // rejected
            s => (s % 5) as u32,
        })
        .eviction_listener(move |_, v, cause| {
            let counter = match cause {
                RemovalCause::Evicted => &sink.evicted,
                RemovalCause::Expired => &sink.expired,
                RemovalCause::Explicit => &sink.explicit,
                RemovalCause::Replaced => &sink.replaced,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            if selector(*v) == 11 {
                panic!("{INJECTED}: listener");
            }
        })
        .build();

    // A second policy, unweighted, sharing the clock, with time to idle.
    let lru: Cache<u32, u64> = Cache::builder()
        .max_capacity(300)
        .policy(Policy::Lru)
        .time_to_idle(Duration::from_secs(1))
        .clock(clock.clone())
        .build();

    // A read-through cache with refresh-ahead over a failing loader.
    let loads = Arc::new(AtomicU64::new(0));
    let counter = loads.clone();
    let loading = Cache::builder()
        .max_capacity(200)
        .refresh_after(Duration::from_millis(500))
        .clock(clock.clone())
        .build_with_try_loader(move |k: &u32| {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            match Rng(n).next() % 50 {
                0 => Err("down"),
                _ => Ok((u64::from(*k) << 32) | n),
            }
        });

    // Write-behind over a flaky store, with a panicking failure callback.
    let store = Arc::new(FlakyStore::default());
    let failed: Arc<Mutex<HashSet<u32>>> = Arc::default();
    let failed_sink = failed.clone();
    let wb_cache: Cache<u32, u64> = Cache::new(64);
    let wb = WriteBehind::builder(wb_cache.clone(), store.clone())
        .batch_size(16)
        .max_delay(Duration::from_micros(200))
        .queue_capacity(256)
        .max_retries(1)
        .backoff(Duration::ZERO)
        .on_failure(move |ops, _| {
            failed_sink
                .lock()
                .unwrap()
                .extend(ops.iter().map(|op| *op.key()));
            if ops.len() % 3 == 0 {
                panic!("{INJECTED}: failure callback");
            }
        })
        .build();

    // A hang (a deadlock, a flight nobody finishes) is a violation too:
    // the watchdog ends the process if the run overstays by two minutes.
    let finished = Arc::new(AtomicBool::new(false));
    {
        let finished = finished.clone();
        let limit = Duration::from_secs_f64(secs) + Duration::from_secs(120);
        thread::spawn(move || {
            let start = Instant::now();
            while start.elapsed() < limit {
                if finished.load(Ordering::Relaxed) {
                    return;
                }
                thread::sleep(Duration::from_millis(100));
            }
            eprintln!("soak: still running {limit:?} after the start: a hang");
            std::process::exit(101);
        });
    }

    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let jumps = AtomicU64::new(0);
    let lasts: Vec<HashMap<u32, Option<u64>>> = thread::scope(|s| {
        for t in 0..3 {
            let (cache, tally, stop) = (&cache, &*tally, &stop);
            s.spawn(move || cache_worker(cache, tally, 0x5EED + t, stop));
        }
        {
            let (lru, tally, stop) = (&lru, &*tally, &stop);
            s.spawn(move || cache_worker(lru, tally, 0x1A2B, stop));
        }
        {
            let (loading, tally, stop) = (&loading, &*tally, &stop);
            s.spawn(move || {
                let mut rng = Rng(77);
                while !stop.load(Ordering::Relaxed) {
                    let k = rng.skewed(500);
                    match tally.guard("loading.try_get", || loading.try_get(&k)) {
                        Some(Ok(v)) => check_value(tally, "loading.try_get", k, Some(v)),
                        Some(Err(_)) => tally.fault(),
                        None => {}
                    }
                    if rng.below(200) == 0 {
                        tally.guard("loading.remove", || loading.remove(&k));
                    }
                }
            });
        }
        // The clock: small steps, sometimes a jump back, sometimes hours on.
        {
            let (clock, tally, stop, jumps) = (&clock, &*tally, &stop, &jumps);
            s.spawn(move || {
                let mut rng = Rng(99);
                while !stop.load(Ordering::Relaxed) {
                    match rng.below(100) {
                        0 => {
                            let now = clock.now();
                            clock.set(now.saturating_sub(Duration::from_millis(rng.below(2_000))));
                            jumps.fetch_add(1, Ordering::Relaxed);
                            tally.fault();
                        }
                        1 => {
                            clock.advance(Duration::from_secs(3_600));
                            jumps.fetch_add(1, Ordering::Relaxed);
                            tally.fault();
                        }
                        _ => clock.advance(Duration::from_millis(rng.below(50))),
                    }
                    thread::sleep(Duration::from_micros(200));
                }
            });
        }
        let writers: Vec<_> = (0..2)
            .map(|owner| {
                let (wb, failed, tally, stop) = (&wb, &*failed, &*tally, &stop);
                s.spawn(move || write_behind_worker(wb, failed, tally, owner, stop))
            })
            .collect();
        while started.elapsed().as_secs_f64() < secs {
            thread::sleep(Duration::from_millis(20));
        }
        stop.store(true, Ordering::Relaxed);
        writers.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let elapsed = started.elapsed();
    // The read-through cache's refreshes run on its pool: they may still be
    // storing values (into keys evicted meanwhile: inserts) after the
    // workers stop, which would move its counters and length between the
    // reads below. Dropping the last handle joins the pool first.
    let loaded = loading.cache().clone();
    drop(loading);

    // The caches: structure and accounting.
    for (name, c) in [("cache", &cache), ("lru", &lru), ("loading", &loaded)] {
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| c.check_invariants())) {
            tally.violation(format!(
                "{name}: invariants: {:?}",
                p.downcast_ref::<String>()
            ));
        }
        let s = c.stats();
        let left = s.inserts as i128
            - (s.evictions - s.rejections) as i128
            - s.expirations as i128
            - s.removals as i128;
        if left != c.len() as i128 {
            tally.violation(format!(
                "{name}: {} entries, the stats account for {left}: {s:?}",
                c.len()
            ));
        }
        if s.load_failures > s.loads {
            tally.violation(format!("{name}: more load failures than loads: {s:?}"));
        }
    }
    let s = cache.stats();
    let seen = |c: &AtomicU64| c.load(Ordering::Relaxed);
    for (cause, listened, counted) in [
        ("evicted", seen(&causes.evicted), s.evictions),
        ("expired", seen(&causes.expired), s.expirations),
        (
            "explicit + replaced",
            seen(&causes.explicit) + seen(&causes.replaced),
            s.removals + s.updates,
        ),
    ] {
        if listened != counted {
            tally.violation(format!(
                "listener saw {listened} {cause}, stats count {counted}"
            ));
        }
    }

    // The write-behind adapter: counters, then the store.
    let _ = wb.flush();
    let ws = wb.stats();
    if ws.pending != 0 || ws.writes + ws.deletes != ws.coalesced + ws.persisted + ws.failures {
        tally.violation(format!("write-behind counters do not add up: {ws:?}"));
    }
    match wb.close() {
        Ok(()) | Err(FlushError::Failed { .. }) => {}
        Err(e) => tally.violation(format!("close: {e}")),
    }
    let map = store.map.lock().unwrap().clone();
    let failed = failed.lock().unwrap();
    for last in &lasts {
        for (k, op) in last {
            if !failed.contains(k) && map.get(k).copied() != *op {
                tally.violation(format!(
                    "store has {:?} for {k}, last acknowledged {op:?}",
                    map.get(k)
                ));
            }
        }
    }

    finished.store(true, Ordering::Relaxed);
    let violations = tally.violations.load(Ordering::Relaxed);
    println!(
        "soak: {:.1} s, {} operations, {} faults injected ({} store faults, {} clock jumps, {} loads), {} violations",
        elapsed.as_secs_f64(),
        tally.ops.load(Ordering::Relaxed),
        tally.faults.load(Ordering::Relaxed) + store.faults.load(Ordering::Relaxed),
        store.faults.load(Ordering::Relaxed),
        jumps.load(Ordering::Relaxed),
        loads.load(Ordering::Relaxed),
        violations,
    );
    let messages = tally.messages.lock().unwrap();
    assert_eq!(violations, 0, "violations: {messages:#?}");
    assert!(
        tally.faults.load(Ordering::Relaxed) > 0,
        "no fault was injected"
    );
}
