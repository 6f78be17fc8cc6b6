//! The Redis tier against a real Redis, in one process: several
//! `TieredCache` handles on one namespace stand for several processes
//! (tests/redis_fleet.rs runs real child processes). Needs REDIS_URL (see
//! tests/redis_support); skipped without it.
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use larder::redis::{RedisTier, TieredCache};
use larder::Cache;
use redis::Commands;
use redis_support as support;

fn tier(url: &str, ns: &str) -> RedisTier {
    RedisTier::builder(url)
        .namespace(ns)
        .command_timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

type Counted = (TieredCache<u64, String>, Arc<AtomicUsize>);

fn counted(url: &str, ns: &str, ttl: Duration) -> Counted {
    let loads = Arc::new(AtomicUsize::new(0));
    let l = loads.clone();
    let c = Cache::builder()
        .max_capacity(1000)
        .time_to_live(ttl)
        .build_tiered(tier(url, ns), move |k: &u64| {
            l.fetch_add(1, Ordering::SeqCst);
            format!("v{k}")
        });
    (c, loads)
}

#[test]
fn read_path_fills_redis_then_other_processes_read_it() {
    let Some(url) = support::url("read_path") else {
        return;
    };
    let ns = support::namespace("read");
    let (a, a_loads) = counted(&url, &ns, Duration::from_secs(60));
    let (b, b_loads) = counted(&url, &ns, Duration::from_secs(60));
    assert!(a.is_subscribed() && b.is_subscribed());

    assert_eq!(a.get(&7), "v7");
    assert_eq!(a_loads.load(Ordering::SeqCst), 1);
    let s = a.tier_stats();
    assert_eq!((s.l2_misses, s.leases_won, s.l2_hits), (1, 1, 0));

    // Written with SET .. PX: present, with a TTL of at most 60 s.
    let mut raw = support::raw(&url);
    let key = format!("{ns}:{{7}}");
    let stored: String = raw.get(&key).unwrap();
    assert_eq!(stored, "v7");
    let pttl: i64 = raw.pttl(&key).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "pttl {pttl}");
    let lock: bool = raw.exists(format!("{key}:lock")).unwrap();
    assert!(!lock, "the lease is released after the store");

    // Another process finds it in Redis: no load.
    assert_eq!(b.get(&7), "v7");
    assert_eq!(b_loads.load(Ordering::SeqCst), 0);
    assert_eq!(b.tier_stats().l2_hits, 1);

    // L1 hits: no more Redis traffic, no more loads.
    for _ in 0..100 {
        assert_eq!(a.get(&7), "v7");
        assert_eq!(b.get(&7), "v7");
    }
    assert_eq!(a.tier_stats().l2_hits + a.tier_stats().l2_misses, 1);
    assert_eq!(b.tier_stats().l2_hits + b.tier_stats().l2_misses, 1);
    assert_eq!(a.stats().hits, 100);
}

#[test]
fn l1_ttl_follows_the_remaining_redis_ttl() {
    let Some(url) = support::url("l1_ttl") else {
        return;
    };
    let ns = support::namespace("ttl");
    let mut raw = support::raw(&url);
    // Someone wrote the value with 300 ms left.
    let _: () = raw
        .set_options(
            format!("{ns}:{{1}}"),
            "short",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(300)),
        )
        .unwrap();
    let (c, loads) = counted(&url, &ns, Duration::from_secs(3600));
    assert_eq!(c.get(&1), "short");
    assert_eq!(loads.load(Ordering::SeqCst), 0);
    // The L1 copy expires with Redis's, not after the hour.
    assert!(support::eventually(Duration::from_secs(5), || c
        .get_if_present(&1)
        .is_none()));
    // Redis's copy goes within a few ms of it (clock resolutions differ).
    assert!(support::eventually(Duration::from_secs(5), || !raw
        .exists::<_, bool>(format!("{ns}:{{1}}"))
        .unwrap()));
    assert_eq!(c.get(&1), "v1");
    assert_eq!(loads.load(Ordering::SeqCst), 1);
}

#[test]
fn jitter_spreads_the_redis_ttl() {
    let Some(url) = support::url("jitter") else {
        return;
    };
    let ns = support::namespace("jitter");
    let c: TieredCache<u64, String> = Cache::builder()
        .time_to_live(Duration::from_secs(100))
        .ttl_jitter(0.5)
        .build_tiered(tier(&url, &ns), |k: &u64| k.to_string());
    let mut raw = support::raw(&url);
    let mut ttls = Vec::new();
    for k in 0..40u64 {
        c.get(&k);
        let pttl: i64 = raw.pttl(format!("{ns}:{{{k}}}")).unwrap();
        assert!((49_000..=150_000).contains(&pttl), "pttl {pttl}");
        ttls.push(pttl);
    }
    ttls.sort_unstable();
    // 40 draws from [50 s, 150 s]: certainly not all within one second.
    assert!(ttls[39] - ttls[0] > 1000, "{ttls:?}");
}

#[test]
fn insert_and_invalidate_reach_the_other_l1s_but_not_the_writer() {
    let Some(url) = support::url("invalidation") else {
        return;
    };
    let ns = support::namespace("inv");
    let (a, _) = counted(&url, &ns, Duration::from_secs(60));
    let (b, _) = counted(&url, &ns, Duration::from_secs(60));
    let (c, _) = counted(&url, &ns, Duration::from_secs(60));
    for t in [&a, &b, &c] {
        assert_eq!(t.get(&1), "v1");
    }
    a.insert(1, "new".to_string());
    assert_eq!(a.get_if_present(&1).as_deref(), Some("new"));
    for t in [&b, &c] {
        assert!(support::eventually(Duration::from_secs(2), || t
            .get_if_present(&1)
            .is_none()));
        assert_eq!(t.get(&1), "new", "read back from Redis");
    }
    // The writer's own broadcast came back and was ignored.
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(a.get_if_present(&1).as_deref(), Some("new"));
    assert_eq!(a.tier_stats().remote_invalidations, 0);
    assert!(b.tier_stats().remote_invalidations >= 1);

    b.invalidate(&1);
    assert_eq!(b.get_if_present(&1), None);
    let mut raw = support::raw(&url);
    let exists: bool = raw.exists(format!("{ns}:{{1}}")).unwrap();
    assert!(!exists, "gone from Redis");
    for t in [&a, &c] {
        assert!(support::eventually(Duration::from_secs(2), || t
            .get_if_present(&1)
            .is_none()));
    }
}

#[test]
fn one_load_for_many_threads_in_many_handles() {
    let Some(url) = support::url("lease") else {
        return;
    };
    let ns = support::namespace("lease");
    let loads = Arc::new(AtomicUsize::new(0));
    // The load holds its lease until every handle has asked Redis (each
    // counts an `l2_misses` when it first finds the key missing: the
    // winner, and the others as they start waiting). With a fixed 200 ms
    // load instead, a handle held up past it found the value written and
    // counted an L2 hit, not a wait (likely on a loaded machine).
    let gate = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let caches: Vec<TieredCache<u64, String>> = (0..4)
        .map(|_| {
            let l = loads.clone();
            let gate = gate.clone();
            Cache::builder().build_tiered(tier(&url, &ns), move |k: &u64| {
                l.fetch_add(1, Ordering::SeqCst);
                let deadline = Instant::now() + Duration::from_secs(10);
                while !gate.load(Ordering::SeqCst) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(1));
                }
                format!("v{k}")
            })
        })
        .collect();
    let barrier = Arc::new(Barrier::new(32));
    std::thread::scope(|s| {
        for i in 0..32 {
            let c = &caches[i % 4];
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                assert_eq!(c.get(&42), "v42");
            });
        }
        let asked = || -> u64 { caches.iter().map(|c| c.tier_stats().l2_misses).sum() };
        let opened = support::eventually(Duration::from_secs(10), || asked() >= 4);
        gate.store(true, Ordering::SeqCst);
        assert!(opened, "{} of 4 handles asked Redis", asked());
    });
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let won: u64 = caches.iter().map(|c| c.tier_stats().leases_won).sum();
    let waited: u64 = caches.iter().map(|c| c.tier_stats().leases_waited).sum();
    assert_eq!((won, waited), (1, 3));
}

#[test]
fn a_crashed_lease_holder_blocks_nobody_past_the_lease() {
    let Some(url) = support::url("crashed_holder") else {
        return;
    };
    let ns = support::namespace("crash");
    let mut raw = support::raw(&url);
    // A process took the lease and died.
    let _: () = raw
        .set_options(
            format!("{ns}:{{5}}:lock"),
            "dead-process",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(300)),
        )
        .unwrap();
    let (c, loads) = counted(&url, &ns, Duration::from_secs(60));
    let start = Instant::now();
    assert_eq!(c.get(&5), "v5");
    let waited = start.elapsed();
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    // It waited for the lease to expire (300 ms), then won it.
    assert!(waited >= Duration::from_millis(250), "{waited:?}");
    let s = c.tier_stats();
    assert_eq!((s.leases_won, s.l2_misses), (1, 1));
    let stored: String = raw.get(format!("{ns}:{{5}}")).unwrap();
    assert_eq!(stored, "v5");
}

#[test]
fn a_waiter_gives_up_after_lease_wait_and_loads_itself() {
    let Some(url) = support::url("lease_wait") else {
        return;
    };
    let ns = support::namespace("wait");
    let mut raw = support::raw(&url);
    let _: () = raw
        .set_options(
            format!("{ns}:{{5}}:lock"),
            "slow-process",
            redis::SetOptions::default().with_expiration(redis::SetExpiry::PX(30_000)),
        )
        .unwrap();
    let c: TieredCache<u64, String> = Cache::builder().build_tiered(
        RedisTier::builder(&url)
            .namespace(&ns)
            .lease_wait(Duration::from_millis(100))
            .build()
            .unwrap(),
        |k: &u64| format!("v{k}"),
    );
    assert_eq!(c.get(&5), "v5");
    assert_eq!(c.tier_stats().lease_timeouts, 1);
    assert_eq!(c.get_if_present(&5).as_deref(), Some("v5"));
    // It did not store over the other process's lease.
    let stored: Option<String> = raw.get(format!("{ns}:{{5}}")).unwrap();
    assert_eq!(stored, None);
}

#[test]
fn an_invalidation_during_a_load_wins_over_the_load() {
    let Some(url) = support::url("load_race") else {
        return;
    };
    let ns = support::namespace("race");
    let (go_tx, go_rx) = mpsc::channel::<()>();
    let go_rx = Mutex::new(go_rx);
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let started_tx = Mutex::new(started_tx);
    let a: TieredCache<u64, String> =
        Cache::builder().build_tiered(tier(&url, &ns), move |_k: &u64| {
            started_tx.lock().unwrap().send(()).unwrap();
            go_rx.lock().unwrap().recv().unwrap();
            "old".to_string()
        });
    let (b, _) = counted(&url, &ns, Duration::from_secs(60));
    std::thread::scope(|s| {
        let h = s.spawn(|| a.get(&9));
        started_rx.recv().unwrap();
        // The database changed while `a` was loading; `b` invalidates.
        b.invalidate(&9);
        go_tx.send(()).unwrap();
        assert_eq!(h.join().unwrap(), "old", "the callers still get the load");
    });
    let mut raw = support::raw(&url);
    let stored: Option<String> = raw.get(format!("{ns}:{{9}}")).unwrap();
    assert_eq!(stored, None, "the stale load was not stored in Redis");
    assert!(support::eventually(Duration::from_secs(2), || a
        .get_if_present(&9)
        .is_none()));
}

#[test]
fn unreadable_values_are_reloaded_and_overwritten() {
    let Some(url) = support::url("decode") else {
        return;
    };
    let ns = support::namespace("decode");
    let mut raw = support::raw(&url);
    let _: () = raw.set(format!("{ns}:{{3}}"), "not a number").unwrap();
    let c: TieredCache<u64, u64> =
        Cache::builder().build_tiered(tier(&url, &ns), |k: &u64| k * 100);
    assert_eq!(c.get(&3), 300);
    assert_eq!(c.tier_stats().l2_errors, 1);
    let stored: String = raw.get(format!("{ns}:{{3}}")).unwrap();
    assert_eq!(stored, "300");
}

#[test]
fn loader_errors_are_not_stored_and_free_the_lease() {
    let Some(url) = support::url("try_loader") else {
        return;
    };
    let ns = support::namespace("try");
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = fail.clone();
    let c: TieredCache<u64, String, &'static str> =
        Cache::builder().build_tiered_try(tier(&url, &ns), move |k: &u64| {
            if f.load(Ordering::SeqCst) {
                Err("database down")
            } else {
                Ok(format!("v{k}"))
            }
        });
    assert_eq!(*c.try_get(&1).unwrap_err(), "database down");
    let mut raw = support::raw(&url);
    let lock: bool = raw.exists(format!("{ns}:{{1}}:lock")).unwrap();
    let value: bool = raw.exists(format!("{ns}:{{1}}")).unwrap();
    assert!(!lock && !value);
    fail.store(false, Ordering::SeqCst);
    assert_eq!(c.try_get(&1).unwrap(), "v1");
    let st = c.tier_stats();
    // The second load won the lease at once: nothing to wait out.
    assert_eq!(
        (st.leases_won, st.leases_waited, st.lease_timeouts),
        (2, 0, 0)
    );
}

#[test]
fn string_and_byte_keys_with_braces_and_empty_keys() {
    let Some(url) = support::url("odd_keys") else {
        return;
    };
    let ns = support::namespace("odd");
    let a: TieredCache<String, Vec<u8>> =
        Cache::builder().build_tiered(tier(&url, &ns), |k: &String| k.as_bytes().to_vec());
    let b: TieredCache<String, Vec<u8>> =
        Cache::builder().build_tiered(tier(&url, &ns), |_k: &String| b"b".to_vec());
    for key in ["", "{", "}", "a}b{c", "{}", "ключ", "x y\n"] {
        let k = key.to_string();
        assert_eq!(a.get(&k), key.as_bytes(), "{key:?}");
        assert_eq!(b.get(&k), key.as_bytes(), "{key:?} from Redis");
        a.invalidate(&k);
        assert!(support::eventually(Duration::from_secs(2), || b
            .get_if_present(&k)
            .is_none()));
        assert_eq!(b.get(&k), b"b", "{key:?} reloaded by b");
    }
}

#[test]
fn redis_down_reads_still_work_and_errors_are_counted() {
    // A port nothing listens on.
    if support::url("redis_down").is_none() {
        return;
    }
    let port = support::free_port();
    let url = format!("redis://127.0.0.1:{port}/");
    let (c, loads) = counted(&url, "down", Duration::from_secs(60));
    assert!(!c.is_subscribed());
    for k in 0..100 {
        assert_eq!(c.get(&k), format!("v{k}"));
    }
    c.insert(1000, "x".into());
    c.invalidate(&1000);
    assert_eq!(loads.load(Ordering::SeqCst), 100);
    assert_eq!(c.get(&5), "v5", "from the L1");
    let s = c.tier_stats();
    assert!(s.l2_errors >= 1, "{s:?}");
    assert_eq!(s.l2_errors + s.l2_skipped, 102, "{s:?}");
    assert!(s.l2_skipped >= 1, "the back-off skips calls: {s:?}");
}
