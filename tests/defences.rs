//! Backend defences (issue 13): key filter, load timeout, concurrent-load
//! limit, load-time percentiles.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use larder::{BloomFilter, Cache};

/// A gate a loader blocks on until it is opened.
#[derive(Clone, Default)]
struct Gate(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl Gate {
    fn wait(&self) {
        let (m, c) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = c.wait(open).unwrap();
        }
    }
    fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap() = true;
        c.notify_all();
    }
}

#[test]
fn key_filter_answers_absent_without_a_load() {
    let known: BloomFilter<u64> = BloomFilter::new(10_000, 0.01);
    for k in 0..10_000u64 {
        known.insert(&k);
    }
    let cache: Cache<u64, u64> = Cache::builder().key_filter(known.clone()).build();
    let loads = AtomicUsize::new(0);
    // Known keys load as usual.
    for k in 0..100u64 {
        assert_eq!(
            cache.optionally_get_with(k, || {
                loads.fetch_add(1, Ordering::Relaxed);
                Some(k * 2)
            }),
            Some(k * 2)
        );
    }
    assert_eq!(loads.load(Ordering::Relaxed), 100);
    // Unknown keys: almost all are answered without a loader call.
    let before = loads.load(Ordering::Relaxed);
    let n = 100_000u64;
    for k in 1_000_000..1_000_000 + n {
        assert_eq!(
            cache.optionally_get_with(k, || {
                loads.fetch_add(1, Ordering::Relaxed);
                None
            }),
            None
        );
    }
    let passed = (loads.load(Ordering::Relaxed) - before) as u64;
    let filtered = cache.stats().filtered;
    assert_eq!(passed + filtered, n);
    let rate = passed as f64 / n as f64;
    assert!(rate < 0.015, "false-positive rate {rate}, asked for 0.01");
    // A stored value wins over the filter.
    cache.insert(5_000_000, 1);
    assert_eq!(
        cache.optionally_get_with(5_000_000, || unreachable!()),
        Some(1)
    );
    // Verbs that must return a value ignore the filter.
    assert_eq!(cache.get_with(6_000_000, || 3), 3);
    // get_all_with filters per key.
    let got = cache.get_all_with([1u64, 7_000_000], |missing| {
        assert!(!missing.contains(&7_000_000) || known.contains(&7_000_000));
        missing.iter().map(|&k| (k, k)).collect::<HashMap<_, _>>()
    });
    assert_eq!(got.get(&1), Some(&2));
    // Filling the filter while it serves: the key then loads.
    known.insert(&8_000_000);
    assert_eq!(cache.optionally_get_with(8_000_000, || Some(9)), Some(9));
}

#[test]
fn a_waiter_gives_up_on_a_hung_load_and_loads_itself() {
    let timeout = Duration::from_millis(100);
    let cache: Cache<u32, u32> = Cache::builder().load_timeout(timeout).build();
    let gate = Gate::default();
    let (started_tx, started) = mpsc::channel();
    let leader = {
        let (cache, gate) = (cache.clone(), gate.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                started_tx.send(()).unwrap();
                gate.wait(); // hangs until opened
                10
            })
        })
    };
    started.recv().unwrap();
    // Infallible verb: its own load.
    let t0 = Instant::now();
    assert_eq!(cache.get_with(1, || 20), 20);
    let waited = t0.elapsed();
    assert!(waited >= timeout, "gave up after {waited:?}");
    assert!(waited < Duration::from_secs(5), "held for {waited:?}");
    // try_ verb: its own load, its own error.
    let r = cache.try_get_with(1, || Err::<u32, _>("own error"));
    assert_eq!(*r.unwrap_err(), "own error");
    // Several waiters at once all get out.
    let waiters: Vec<_> = (0..4)
        .map(|i| {
            let cache = cache.clone();
            thread::spawn(move || cache.get_with(1, move || 100 + i))
        })
        .collect();
    for (i, w) in waiters.into_iter().enumerate() {
        assert_eq!(w.join().unwrap(), 100 + i as u32);
    }
    let s = cache.stats();
    assert_eq!(s.load_timeouts, 6);
    assert_eq!(s.loads, 6, "the six own loads (the hung one has not ended)");
    assert_eq!(s.load_failures, 1);
    // The own loads were not stored; the hung load stores when it ends.
    assert_eq!(cache.peek(&1), None);
    gate.open();
    assert_eq!(leader.join().unwrap(), 10);
    assert_eq!(cache.get(&1), Some(10));
}

#[test]
fn without_a_timeout_waiters_wait() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let gate = Gate::default();
    let (started_tx, started) = mpsc::channel();
    let leader = {
        let (cache, gate) = (cache.clone(), gate.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                started_tx.send(()).unwrap();
                gate.wait();
                10
            })
        })
    };
    started.recv().unwrap();
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || cache.get_with(1, || 20))
    };
    thread::sleep(Duration::from_millis(100));
    gate.open();
    assert_eq!(waiter.join().unwrap(), 10, "joined the load");
    assert_eq!(leader.join().unwrap(), 10);
    assert_eq!(cache.stats().load_timeouts, 0);
}

#[test]
fn the_load_limit_is_never_exceeded() {
    let limit = 3;
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10_000)
        .max_concurrent_loads(limit)
        .build();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let threads = 12;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, running, peak, calls, start) = (
                cache.clone(),
                running.clone(),
                peak.clone(),
                calls.clone(),
                start.clone(),
            );
            thread::spawn(move || {
                start.wait();
                for i in 0..40u32 {
                    // Keys shared between threads: single flight and the
                    // limit together.
                    let key = (i * 7 + t as u32) % 60;
                    let v = cache.get_with(key, || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        thread::sleep(Duration::from_millis(2));
                        running.fetch_sub(1, Ordering::SeqCst);
                        key + 1
                    });
                    assert_eq!(v, key + 1);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let peak = peak.load(Ordering::SeqCst);
    assert!(peak <= limit, "peak {peak} > limit {limit}");
    assert!(peak >= 2, "the limit allows parallel loads (peak {peak})");
    assert_eq!(calls.load(Ordering::SeqCst), 60, "one load per key");
}

#[test]
fn a_loader_that_loads_other_keys_does_not_deadlock_on_the_limit() {
    let cache: Cache<u32, u32> = Cache::builder().max_concurrent_loads(1).build();
    let c2 = cache.clone();
    // Nested loads run under the outer load's slot.
    let v = cache.get_with(1, || c2.get_with(2, || c2.get_with(3, || 3) + 2) + 1);
    assert_eq!(v, 6);
    // Recursion detection still fires for the same key.
    let c3 = cache.clone();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_with(9, || c3.get_with(9, || 0))
    }));
    assert!(r.is_err());
    // And the slot was given back by the panicking load.
    assert_eq!(cache.get_with(10, || 10), 10);
}

#[test]
fn waiting_for_a_slot_counts_toward_the_timeout() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_concurrent_loads(1)
        .load_timeout(Duration::from_millis(100))
        .build();
    let gate = Gate::default();
    let (started_tx, started) = mpsc::channel();
    // Key 1's load holds the only slot.
    let holder = {
        let (cache, gate) = (cache.clone(), gate.clone());
        thread::spawn(move || {
            cache.get_with(1, || {
                started_tx.send(()).unwrap();
                gate.wait();
                1
            })
        })
    };
    started.recv().unwrap();
    // Key 2's leader waits in line for the slot ...
    let (lead_tx, lead_started) = mpsc::channel();
    let leader2 = {
        let cache = cache.clone();
        thread::spawn(move || {
            lead_tx.send(()).unwrap();
            cache.get_with(2, || 2)
        })
    };
    lead_started.recv().unwrap();
    // Its miss of key 2 (the holder's of key 1 is the first) comes just
    // before it registers key 2's flight under the shard lock; then a
    // margin for those few instructions before it queues for the slot.
    // (A fixed sleep alone depended on the thread running within it.)
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.stats().misses < 2 {
        assert!(Instant::now() < deadline, "key 2's leader never missed");
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(200));
    // ... so a caller joining key 2 times out, although key 2's loader
    // has not even started; its own load waits for a slot too.
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || {
            let t0 = Instant::now();
            let v = cache.get_with(2, || 22);
            (v, t0.elapsed())
        })
    };
    // The gate opens only once the waiter has given up (with a fixed 300 ms
    // sleep instead, a waiter thread kept from running that long would
    // join key 2's load after the gate opened and get 2).
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.stats().load_timeouts < 1 {
        assert!(Instant::now() < deadline, "the waiter never timed out");
        thread::sleep(Duration::from_millis(1));
    }
    gate.open();
    assert_eq!(holder.join().unwrap(), 1);
    assert_eq!(leader2.join().unwrap(), 2);
    let (v, waited) = waiter.join().unwrap();
    assert_eq!(v, 22, "gave up on key 2's queued load and loaded itself");
    assert!(waited >= Duration::from_millis(100));
    assert_eq!(cache.stats().load_timeouts, 1);
    // Key 2's flight was the leader's (not the waiter's): its value stored.
    assert_eq!(cache.get(&2), Some(2));
}

#[test]
fn stats_report_load_time_percentiles() {
    let cache: Cache<u32, u32> = Cache::new(100);
    assert_eq!(cache.stats().load_time_max, Duration::ZERO);
    for k in 0..10 {
        cache.get_with(k, || {
            thread::sleep(Duration::from_millis(if k == 9 { 30 } else { 1 }));
            k
        });
    }
    let s = cache.stats();
    assert!(s.load_time_p50 >= Duration::from_millis(1));
    assert!(s.load_time_p50 < Duration::from_millis(30));
    assert!(s.load_time_max >= Duration::from_millis(30));
    assert!(s.load_time_p99 >= Duration::from_millis(29));
    let h = cache.load_times();
    assert_eq!(h.count(), 10);
    assert_eq!(cache.name(), "larder");
    let named: Cache<u32, u32> = Cache::builder().name("products").build();
    assert_eq!(named.name(), "products");
}

mod early_and_stale {
    use super::*;
    use larder::ManualClock;
    use std::sync::atomic::AtomicBool;

    /// One trial per key: load it (the loader moves the clock 1 s, so the
    /// measured load time is 1 s), move to `left` before expiry, read once.
    fn early_fraction(beta: f64, left: Duration, trials: u32) -> f64 {
        let clock = ManualClock::new();
        let ttl = Duration::from_secs(100);
        let cache: Cache<u32, u32> = Cache::builder()
            .max_capacity(100_000)
            .time_to_live(ttl)
            .early_refresh(beta)
            .clock(clock.clone())
            .build();
        let reloads = AtomicUsize::new(0);
        for k in 0..trials {
            cache.get_with(k, || {
                clock.advance(Duration::from_secs(1));
                0
            });
            clock.advance(ttl - left);
            let v = cache.get_with(k, || {
                reloads.fetch_add(1, Ordering::Relaxed);
                clock.advance(Duration::from_secs(1));
                1
            });
            // An early reload's caller gets the new value.
            assert_eq!(v, u32::from(v == 1));
        }
        let s = cache.stats();
        assert_eq!(s.early_refreshes as usize, reloads.load(Ordering::Relaxed));
        assert_eq!(s.refreshes, s.early_refreshes);
        reloads.load(Ordering::Relaxed) as f64 / f64::from(trials)
    }

    #[test]
    fn early_refresh_frequency_follows_xfetch() {
        let trials = 4_000;
        // P(early) = exp(-left / (delta * beta)), delta = 1 s.
        for (beta, left_s) in [(1.0, 1.0), (1.0, 3.0), (2.0, 1.0), (0.5, 0.25)] {
            let left = Duration::from_secs_f64(left_s);
            let p = (-left_s / beta).exp();
            let got = early_fraction(beta, left, trials);
            let sigma = (p * (1.0 - p) / f64::from(trials)).sqrt();
            assert!(
                (got - p).abs() < 5.0 * sigma,
                "beta {beta}, {left_s} s left: {got} early, expected {p}"
            );
        }
        // Far from expiry: practically never (exp(-50)).
        assert_eq!(early_fraction(1.0, Duration::from_secs(50), 500), 0.0);
    }

    #[test]
    fn never_early_without_a_ttl() {
        let clock = ManualClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .early_refresh(10.0)
            .clock(clock.clone())
            .build();
        cache.get_with(1, || {
            clock.advance(Duration::from_secs(3600));
            0
        });
        for _ in 0..10_000 {
            clock.advance(Duration::from_secs(1));
            assert_eq!(cache.get_with(1, || unreachable!("no TTL")), 0);
        }
        // A per-entry TTL in the same cache does refresh early.
        cache.insert_with_ttl(2, 5, Duration::from_secs(10));
        clock.advance(Duration::from_secs(9));
        assert_eq!(cache.get_with(2, || 6), 6, "exp(-1/36000) is about 1");
        assert_eq!(cache.stats().early_refreshes, 1);
    }

    #[test]
    fn loading_cache_refreshes_early_in_the_background() {
        let clock = ManualClock::new();
        let c2 = clock.clone();
        let version = Arc::new(AtomicUsize::new(0));
        let v2 = version.clone();
        let cache = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .early_refresh(1000.0)
            .clock(clock.clone())
            .executor(|task| task())
            .build_with_loader(move |_k: &u32| {
                c2.advance(Duration::from_millis(10));
                v2.fetch_add(1, Ordering::SeqCst)
            });
        assert_eq!(cache.get(&1), 0);
        // delta * beta = 10 s: at 5 s left, p = 0.6 per read.
        clock.advance(Duration::from_secs(5));
        let mut reads = 0;
        while cache.stats().early_refreshes == 0 {
            assert_eq!(cache.get(&1), 0, "the old value, at once");
            reads += 1;
            assert!(reads < 100);
        }
        assert_eq!(
            cache.get_if_present(&1),
            Some(1),
            "refreshed (inline executor)"
        );
    }

    struct Backend {
        fail: AtomicBool,
        panic: AtomicBool,
        calls: AtomicUsize,
    }

    impl Backend {
        fn load(&self, k: u32) -> Result<u32, String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as u32;
            if self.panic.load(Ordering::SeqCst) {
                panic!("backend panicked");
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err("backend down".into());
            }
            Ok(k * 100 + n)
        }
    }

    #[test]
    fn stale_if_error_serves_the_expired_value_inside_the_window_only() {
        let clock = ManualClock::new();
        let backend = Arc::new(Backend {
            fail: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let b = backend.clone();
        let cache = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60))
            .stale_if_error_retry(Duration::ZERO) // every read retries
            .clock(clock.clone())
            .build_with_try_loader(move |k: &u32| b.load(*k));
        assert_eq!(cache.try_get(&1), Ok(100));
        // Past the TTL, backend healthy: reloaded in the foreground.
        clock.advance(Duration::from_secs(11));
        assert_eq!(cache.try_get(&1), Ok(101));
        assert_eq!(cache.try_get(&1), Ok(101), "fresh again");
        // Past the TTL, backend failing: the expired value.
        clock.advance(Duration::from_secs(11));
        backend.fail.store(true, Ordering::SeqCst);
        assert_eq!(cache.try_get(&1), Ok(101));
        assert_eq!(cache.stats().stale_served, 1);
        // A panicking reload also serves stale (the panic is caught).
        backend.panic.store(true, Ordering::SeqCst);
        assert_eq!(cache.try_get(&1), Ok(101));
        backend.panic.store(false, Ordering::SeqCst);
        assert_eq!(cache.stats().stale_served, 2);
        // Still inside the window: written at 11 s, so kept until
        // 11 + 10 + 60 = 81 s; now 69 s.
        clock.advance(Duration::from_secs(47));
        assert_eq!(cache.try_get(&1), Ok(101));
        // After the window (82 s): the error.
        clock.advance(Duration::from_secs(13));
        assert_eq!(*cache.try_get(&1).unwrap_err(), "backend down");
        let s = cache.stats();
        assert_eq!(s.stale_served, 3);
        assert!(s.refresh_failures >= 3);
    }

    #[test]
    fn stale_if_error_for_the_cache_verbs() {
        let clock = ManualClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(30))
            .stale_if_error_retry(Duration::ZERO)
            .clock(clock.clone())
            .build();
        assert_eq!(cache.try_get_with(1, || Ok::<_, &str>(1)), Ok(1));
        clock.advance(Duration::from_secs(15));
        assert_eq!(cache.try_get_with(1, || Err("down")), Ok(1), "stale");
        assert_eq!(
            cache.try_get_with(1, || Ok::<_, &str>(2)),
            Ok(2),
            "reloaded"
        );
        clock.advance(Duration::from_secs(41));
        assert_eq!(
            *cache.try_get_with(1, || Err::<u32, _>("down")).unwrap_err(),
            "down"
        );
        assert_eq!(cache.stats().stale_served, 1);
    }

    #[test]
    fn a_failed_reload_waits_for_the_retry_interval() {
        let clock = ManualClock::new();
        let backend = Arc::new(Backend {
            fail: AtomicBool::new(false),
            panic: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        });
        let b = backend.clone();
        let cache = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60))
            .stale_if_error_retry(Duration::from_secs(2))
            .clock(clock.clone())
            .build_with_try_loader(move |k: &u32| b.load(*k));
        assert_eq!(cache.try_get(&1), Ok(100));
        assert_eq!(cache.try_get(&2), Ok(201));
        clock.advance(Duration::from_secs(11));
        backend.fail.store(true, Ordering::SeqCst);
        assert_eq!(cache.try_get(&1), Ok(100), "stale");
        assert_eq!(backend.calls.load(Ordering::SeqCst), 3, "one reload");
        // Within the retry interval: stale, with no backend call.
        for _ in 0..100 {
            assert_eq!(cache.try_get(&1), Ok(100));
        }
        clock.advance(Duration::from_millis(1_999));
        assert_eq!(cache.try_get(&1), Ok(100));
        assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
        // Another key has its own interval.
        assert_eq!(cache.try_get(&2), Ok(201));
        assert_eq!(backend.calls.load(Ordering::SeqCst), 4);
        // After it: one more try, which succeeds once the backend is back.
        clock.advance(Duration::from_millis(1));
        assert_eq!(cache.try_get(&1), Ok(100));
        assert_eq!(backend.calls.load(Ordering::SeqCst), 5);
        backend.fail.store(false, Ordering::SeqCst);
        clock.advance(Duration::from_secs(2));
        assert_eq!(cache.try_get(&1), Ok(105));
        assert_eq!(cache.stats().stale_served, 104);
        // The Cache verbs keep the same interval.
        let verbs: Cache<u32, u32> = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60))
            .clock(clock.clone())
            .build();
        verbs.insert(1, 1);
        clock.advance(Duration::from_secs(11));
        assert_eq!(verbs.try_get_with(1, || Err("down")), Ok(1));
        let calls = AtomicUsize::new(0);
        let counted = || {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok::<_, &str>(2)
        };
        assert_eq!(
            verbs.try_get_with(1, counted),
            Ok(1),
            "within 1 s (default)"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 0);
        clock.advance(Duration::from_secs(1));
        assert_eq!(verbs.try_get_with(1, || Ok::<_, &str>(2)), Ok(2));
    }

    #[test]
    fn a_hung_stale_reload_is_waited_for_at_most_the_timeout() {
        let gate = Gate::default();
        let g2 = gate.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let clock = ManualClock::new();
        let cache = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60))
            .load_timeout(Duration::from_millis(100))
            .clock(clock.clone())
            .build_with_try_loader(move |_k: &u32| {
                let n = c2.fetch_add(1, Ordering::SeqCst);
                if n > 0 {
                    g2.wait(); // reloads hang until the gate opens
                }
                Ok::<_, String>(n as u32)
            });
        assert_eq!(cache.try_get(&1), Ok(0));
        clock.advance(Duration::from_secs(11));
        let start = Instant::now();
        assert_eq!(cache.try_get(&1), Ok(0), "stale after the timeout");
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(100), "{waited:?}");
        let s = cache.stats();
        assert_eq!((s.load_timeouts, s.stale_served), (1, 1));
        // The reload is still running: later readers get stale at once
        // (they skip the key's flight), with no second backend call.
        let start = Instant::now();
        for _ in 0..10 {
            assert_eq!(cache.try_get(&1), Ok(0));
        }
        assert!(start.elapsed() < Duration::from_millis(100) * 10);
        // The reload runs on the refresh pool, whose thread may not have
        // started it yet on a busy machine: wait for its call, then check
        // that it is the only one (again once it has landed).
        wait_for_calls(&calls, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // The hang ends: the reload stores its value.
        gate.open();
        let deadline = Instant::now() + Duration::from_secs(20);
        while cache.get_if_present(&1) != Some(1) {
            assert!(Instant::now() < deadline, "the reload never landed");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(cache.stats().stale_served, 11);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    /// Waits (20 s at most) until the loader has been called `n` times: a
    /// load handed to the refresh pool starts when its thread runs.
    fn wait_for_calls(calls: &AtomicUsize, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while calls.load(Ordering::SeqCst) < n {
            assert!(
                Instant::now() < deadline,
                "the pool never called the loader"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn a_timed_out_try_verb_gets_the_timeout_error() {
        #[derive(Debug, PartialEq)]
        enum DbError {
            Timeout,
        }
        let cache: Cache<u32, u32> = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| DbError::Timeout)
            .build();
        let gate = Gate::default();
        let (started_tx, started_rx) = mpsc::channel();
        let leader = {
            let (cache, gate) = (cache.clone(), gate.clone());
            thread::spawn(move || {
                cache.try_get_with(1, || {
                    started_tx.send(()).unwrap();
                    gate.wait();
                    Ok::<_, DbError>(7)
                })
            })
        };
        started_rx.recv().unwrap();
        let start = Instant::now();
        let r = cache.try_get_with(1, || -> Result<u32, DbError> {
            unreachable!("no own load")
        });
        assert_eq!(*r.unwrap_err(), DbError::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // Another error type, or an infallible verb: its own load.
        assert_eq!(cache.try_get_with(1, || Ok::<_, String>(8)), Ok(8));
        assert_eq!(cache.get_with(1, || 9), 9);
        assert_eq!(cache.stats().load_timeouts, 3);
        gate.open();
        assert_eq!(leader.join().unwrap(), Ok(7));
        assert_eq!(cache.get(&1), Some(7), "the hung load stored its value");
    }

    #[test]
    fn a_loading_cache_leader_is_bounded_by_the_timeout_too() {
        #[derive(Debug, PartialEq)]
        enum DbError {
            Timeout,
        }
        let gate = Gate::default();
        let g2 = gate.clone();
        let calls = Arc::new(AtomicUsize::new(0));
        let c2 = calls.clone();
        let cache = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| DbError::Timeout)
            .build_with_try_loader(move |k: &u32| {
                c2.fetch_add(1, Ordering::SeqCst);
                if *k == 1 {
                    g2.wait(); // key 1 hangs until the gate opens
                }
                Ok::<_, DbError>(*k * 10)
            });
        assert_eq!(cache.try_get(&2), Ok(20), "a healthy load");
        let start = Instant::now();
        assert_eq!(*cache.try_get(&1).unwrap_err(), DbError::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // The next caller joins the hung load (no second backend call) and
        // times out too.
        assert_eq!(*cache.try_get(&1).unwrap_err(), DbError::Timeout);
        // Key 1's load is on the pool, started when its thread runs.
        wait_for_calls(&calls, 2);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        assert_eq!(cache.stats().load_timeouts, 2);
        gate.open();
        let deadline = Instant::now() + Duration::from_secs(20);
        while cache.get_if_present(&1) != Some(10) {
            assert!(Instant::now() < deadline, "the hung load never landed");
            thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_bounded_leader_whose_loader_panics_loads_itself() {
        #[derive(Debug)]
        struct Timeout;
        let panics = Arc::new(AtomicUsize::new(0));
        let p2 = panics.clone();
        let cache = Cache::builder()
            .load_timeout(Duration::from_secs(10))
            .load_timeout_error(|| Timeout)
            .build_with_try_loader(move |k: &u32| {
                if p2.fetch_add(1, Ordering::SeqCst) == 0 {
                    panic!("first call panics (on the refresh pool)");
                }
                Ok::<_, Timeout>(*k)
            });
        // The pool's panic abandons the flight; this caller loads itself.
        assert_eq!(cache.try_get(&3).unwrap(), 3);
        assert_eq!(panics.load(Ordering::SeqCst), 2);
        // A loader that loads another key of its cache runs it inline.
        let inner: Arc<std::sync::OnceLock<larder::LoadingCache<u32, u32, Timeout>>> =
            Arc::default();
        let i2 = inner.clone();
        let nested = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| Timeout)
            .max_concurrent_loads(1)
            .build_with_try_loader(move |k: &u32| match *k {
                0 => Ok(1),
                k => Ok(i2.get().unwrap().try_get(&(k - 1)).unwrap() + 1),
            });
        inner.set(nested.clone()).ok().unwrap();
        assert_eq!(nested.try_get(&5).unwrap(), 6);
    }
}

#[test]
fn hot_keys_on_a_skewed_stream() {
    // Zipf(1.2) over 10,000 keys, 1,000,000 reads, every key present.
    let n = 10_000usize;
    let mut cdf = Vec::with_capacity(n);
    let mut sum = 0.0;
    for r in 1..=n {
        sum += 1.0 / (r as f64).powf(1.2);
        cdf.push(sum);
    }
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(20_000)
        .track_hot_keys()
        .build();
    for k in 0..n as u64 {
        cache.insert(k * 7919, k);
    }
    let mut counts = vec![0u64; n];
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..1_000_000 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let u = (x >> 11) as f64 / (1u64 << 53) as f64 * sum;
        let r = cdf.partition_point(|&c| c <= u).min(n - 1);
        counts[r] += 1;
        assert!(cache.get(&(r as u64 * 7919)).is_some());
    }
    let top = cache.hot_keys(10);
    assert_eq!(top.len(), 10);
    let ranks: Vec<u64> = top.iter().map(|&(k, _)| k / 7919).collect();
    // The hottest three in order, and the true top five among the ten.
    assert_eq!(&ranks[..3], &[0, 1, 2], "{top:?}");
    for r in 0..5 {
        assert!(ranks.contains(&r), "rank {r} missing: {ranks:?}");
    }
    // The hottest key's estimate is within 20% of its true reads.
    let (est, truth) = (top[0].1 as f64, counts[0] as f64);
    assert!((est - truth).abs() < 0.2 * truth, "{est} vs {truth}");
    // Off by default.
    let plain: Cache<u64, u64> = Cache::new(10);
    plain.insert(1, 1);
    plain.get(&1);
    assert!(plain.hot_keys(5).is_empty());
}
