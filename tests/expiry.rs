//! Expiration through the public API, under a [`ManualClock`]: exact
//! deadlines for time to live, time to idle, per-entry TTLs and
//! `expire_after`; zero and `Duration::MAX`; clock jumps forwards (bounded
//! work per operation) and backwards (nothing un-expires); expired entries
//! as preferred victims; the listener and the statistics; and the jitter
//! spread that stops a cache avalanche.
//!
//! Deadlines are exact: an entry written at `t` with TTL `T` is returned at
//! `t + T - 1ns` and not at `t + T`, whether or not maintenance has run.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::{Cache, CacheBuilder, ManualClock, Policy, RemovalCause};

type Log = Arc<Mutex<Vec<(u64, u64, RemovalCause)>>>;

const NS: Duration = Duration::from_nanos(1);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A builder with a large capacity, the given clock and a logging listener.
fn logged(clock: &ManualClock) -> (CacheBuilder<u64, u64>, Log) {
    let log: Log = Arc::default();
    let sink = log.clone();
    let builder = Cache::builder()
        .max_capacity(1 << 20)
        .clock(clock.clone())
        .seed(1)
        .eviction_listener(move |k: &u64, v: &u64, cause| {
            sink.lock().unwrap().push((*k, *v, cause))
        });
    (builder, log)
}

/// Entries of `log` with `cause`, as (key, value), sorted.
fn with_cause(log: &Log, cause: RemovalCause) -> Vec<(u64, u64)> {
    let mut v: Vec<_> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.2 == cause)
        .map(|e| (e.0, e.1))
        .collect();
    v.sort_unstable();
    v
}

/// Asserts `key` is visible with `value` through every read path.
#[track_caller]
fn assert_live(cache: &Cache<u64, u64>, key: u64, value: u64) {
    assert_eq!(cache.peek(&key), Some(value), "peek {key}");
    assert!(cache.contains_key(&key), "contains_key {key}");
    assert!(cache.iter().any(|e| e == (key, value)), "iter {key}");
    assert_eq!(cache.get(&key), Some(value), "get {key}");
}

/// Asserts `key` is invisible through every read path. Uses `get` last, so
/// a time-to-idle entry is not extended by the check.
#[track_caller]
fn assert_gone(cache: &Cache<u64, u64>, key: u64) {
    assert_eq!(cache.peek(&key), None, "peek {key}");
    assert!(!cache.contains_key(&key), "contains_key {key}");
    assert!(cache.iter().all(|(k, _)| k != key), "iter {key}");
    assert_eq!(cache.get(&key), None, "get {key}");
}

/// Like `assert_live`, without `get` (which would extend time to idle).
#[track_caller]
fn assert_visible_no_touch(cache: &Cache<u64, u64>, key: u64, value: u64) {
    assert_eq!(cache.peek(&key), Some(value), "peek {key}");
    assert!(cache.contains_key(&key), "contains_key {key}");
    assert!(cache.iter().any(|e| e == (key, value)), "iter {key}");
}

#[test]
fn ttl_is_exact() {
    let clock = ManualClock::new();
    clock.set(secs(1000)); // not at the origin
    let (b, log) = logged(&clock);
    let cache = b.time_to_live(secs(10)).build();
    cache.insert(1, 10);
    clock.advance(secs(3));
    cache.insert(2, 20);

    clock.set(secs(1010) - NS);
    assert_live(&cache, 1, 10);
    assert_live(&cache, 2, 20);
    clock.set(secs(1010));
    assert_gone(&cache, 1);
    assert_live(&cache, 2, 20);
    clock.set(secs(1013) - NS);
    assert_live(&cache, 2, 20);
    clock.set(secs(1013));
    assert_gone(&cache, 2);

    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(
        with_cause(&log, RemovalCause::Expired),
        vec![(1, 10), (2, 20)]
    );
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.evictions), (2, 0));
    cache.check_invariants();
}

#[test]
fn expired_entries_are_hidden_before_maintenance() {
    // No maintenance at all between the deadline and the reads: reads only.
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b.time_to_live(secs(5)).shards(1).build();
    for k in 0..100 {
        cache.insert(k, k);
    }
    clock.advance(secs(5));
    for k in 0..100 {
        assert_eq!(cache.peek(&k), None);
        assert!(!cache.contains_key(&k));
    }
    assert_eq!(cache.iter().count(), 0);
    assert_eq!(cache.len(), 100, "peek/contains_key/iter remove nothing");
    for k in 0..100 {
        assert_eq!(cache.get(&k), None);
    }
    assert_eq!(cache.stats().misses, 100);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(with_cause(&log, RemovalCause::Expired).len(), 100);
    assert_eq!(cache.stats().expirations, 100);
}

#[test]
fn tti_get_extends_peek_and_contains_key_do_not() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b.time_to_idle(secs(10)).build();
    cache.insert(1, 1); // read with get
    cache.insert(2, 2); // read with peek / contains_key only

    clock.set(secs(9));
    assert_eq!(cache.get(&1), Some(1)); // idle deadline of 1 -> 19 s
    assert_visible_no_touch(&cache, 2, 2);
    clock.set(secs(10) - NS);
    assert_visible_no_touch(&cache, 2, 2);
    clock.set(secs(10));
    assert_gone(&cache, 2);
    assert_visible_no_touch(&cache, 1, 1);

    clock.set(secs(19) - NS);
    assert_visible_no_touch(&cache, 1, 1);
    clock.set(secs(19));
    assert_gone(&cache, 1);

    // A chain of gets keeps an entry alive indefinitely.
    cache.insert(3, 3);
    for _ in 0..50 {
        clock.advance(secs(10) - NS);
        assert_eq!(cache.get(&3), Some(3));
        cache.run_pending_tasks();
    }
    assert_eq!(cache.len(), 1);
    clock.advance(secs(10));
    cache.run_pending_tasks();
    assert_gone(&cache, 3);
    assert_eq!(
        with_cause(&log, RemovalCause::Expired),
        vec![(1, 1), (2, 2), (3, 3)]
    );
    cache.check_invariants();
}

#[test]
fn tti_extension_survives_maintenance_across_levels() {
    // The wheel holds a touched entry in its old bucket; visiting that
    // bucket must re-place it, not fire it. Use an idle time that puts the
    // entry on level 1 (minutes) and touches that cross many level-0 ticks.
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b.time_to_idle(secs(300)).shards(1).build();
    cache.insert(1, 1);
    for step in 1..=20 {
        clock.advance(secs(299));
        assert_eq!(cache.get(&1), Some(1), "step {step}");
        cache.run_pending_tasks();
        cache.check_invariants();
    }
    clock.advance(secs(300));
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn ttl_and_tti_the_earlier_deadline_wins() {
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b.time_to_live(secs(10)).time_to_idle(secs(4)).build();
    cache.insert(1, 1); // kept busy: TTL decides
    cache.insert(2, 2); // left idle: TTI decides
    clock.set(secs(3));
    assert_eq!(cache.get(&1), Some(1)); // idle 7 s
                                        // 2 was never read: gone at 4 s.
    clock.set(secs(4) - NS);
    assert_visible_no_touch(&cache, 2, 2);
    clock.set(secs(4));
    assert_gone(&cache, 2);
    clock.set(secs(6));
    assert_eq!(cache.get(&1), Some(1)); // idle 10 s
    clock.set(secs(9));
    assert_eq!(cache.get(&1), Some(1)); // idle says 13 s; TTL says 10 s
    clock.set(secs(10) - NS);
    assert_visible_no_touch(&cache, 1, 1);
    cache.run_pending_tasks();
    assert_eq!(cache.get(&1), Some(1));
    clock.set(secs(10));
    assert_gone(&cache, 1);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 2);

    // An update resets both.
    cache.insert(3, 3);
    clock.set(secs(13));
    assert_eq!(cache.get(&3), Some(3));
    cache.insert(3, 33); // at 13 s: TTL 23 s, idle 17 s
    clock.set(secs(16));
    assert_eq!(cache.get(&3), Some(33)); // idle 20 s
    clock.set(secs(19));
    assert_eq!(cache.get(&3), Some(33)); // idle 23 s = TTL
    clock.set(secs(22));
    assert_eq!(cache.get(&3), Some(33)); // idle 26 s, capped at 23 s
    clock.set(secs(23) - NS);
    assert_visible_no_touch(&cache, 3, 33);
    clock.set(secs(23));
    assert_gone(&cache, 3);
    cache.check_invariants();
}

#[test]
fn per_entry_ttl_overrides_the_cache_ttl() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b.time_to_live(secs(100)).build();
    cache.insert_with_ttl(1, 1, secs(5));
    cache.insert_with_ttl(2, 2, secs(500));
    cache.insert(3, 3);
    clock.set(secs(5) - NS);
    assert_live(&cache, 1, 1);
    clock.set(secs(5));
    assert_gone(&cache, 1);
    clock.set(secs(100) - NS);
    assert_live(&cache, 3, 3);
    clock.set(secs(100));
    assert_gone(&cache, 3);
    assert_live(&cache, 2, 2);
    clock.set(secs(500));
    assert_gone(&cache, 2);
    cache.run_pending_tasks();
    assert_eq!(with_cause(&log, RemovalCause::Expired).len(), 3);
    cache.check_invariants();
}

#[test]
fn per_entry_ttl_on_a_cache_without_expiry() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b.build();
    cache.insert(0, 0); // before any timed entry: never expires
    clock.set(secs(50));
    cache.insert_with_ttl(1, 1, secs(5));
    cache.insert(2, 2); // after: still never expires
    clock.set(secs(55) - NS);
    assert_live(&cache, 1, 1);
    clock.set(secs(55));
    assert_gone(&cache, 1);
    clock.advance(Duration::from_secs(10 * 365 * 86_400));
    cache.run_pending_tasks();
    assert_live(&cache, 0, 0);
    assert_live(&cache, 2, 2);
    assert_eq!(with_cause(&log, RemovalCause::Expired), vec![(1, 1)]);
    assert_eq!(cache.stats().expirations, 1);
    // A plain insert over a timed entry takes the cache's (absent) TTL.
    cache.insert_with_ttl(3, 3, secs(1));
    cache.insert(3, 4);
    clock.advance(secs(10));
    cache.run_pending_tasks();
    assert_live(&cache, 3, 4);
    cache.check_invariants();
}

#[test]
fn expire_after_some_overrides_none_falls_back() {
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    // Odd values carry their own TTL (value seconds); even ones use 60 s.
    let cache = b
        .time_to_live(secs(60))
        .expire_after(|_k: &u64, v: &u64| (v % 2 == 1).then(|| secs(*v)))
        .build();
    cache.insert(1, 7);
    cache.insert(2, 8);
    cache.insert(3, 61);
    cache.insert_with_ttl(4, 7, secs(30)); // insert_with_ttl wins over expire_after
    clock.set(secs(7) - NS);
    assert_live(&cache, 1, 7);
    clock.set(secs(7));
    assert_gone(&cache, 1);
    assert_live(&cache, 4, 7);
    clock.set(secs(30));
    assert_gone(&cache, 4);
    clock.set(secs(60) - NS);
    assert_live(&cache, 2, 8);
    clock.set(secs(60));
    assert_gone(&cache, 2);
    assert_live(&cache, 3, 61);
    clock.set(secs(61));
    assert_gone(&cache, 3);

    // Without a cache TTL, None means never.
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b
        .expire_after(|_k: &u64, v: &u64| (v % 2 == 1).then(|| secs(*v)))
        .build();
    cache.insert(1, 3);
    cache.insert(2, 4);
    clock.set(secs(3));
    assert_gone(&cache, 1);
    clock.set(secs(1 << 30)); // 34 years
    cache.run_pending_tasks();
    assert_live(&cache, 2, 4);
    // An update re-evaluates expire_after.
    cache.insert(2, 5);
    clock.advance(secs(5));
    assert_gone(&cache, 2);
    cache.check_invariants();
}

#[test]
fn update_resets_ttl() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b.time_to_live(secs(10)).build();
    cache.insert(1, 1);
    clock.set(secs(6));
    cache.insert(1, 2);
    clock.set(secs(10));
    assert_live(&cache, 1, 2);
    cache.run_pending_tasks();
    clock.set(secs(16) - NS);
    assert_live(&cache, 1, 2);
    clock.set(secs(16));
    assert_gone(&cache, 1);
    cache.run_pending_tasks();
    assert_eq!(with_cause(&log, RemovalCause::Replaced), vec![(1, 1)]);
    assert_eq!(with_cause(&log, RemovalCause::Expired), vec![(1, 2)]);
    // Updating an expired-but-unremoved entry: the old value expired, the
    // new one starts afresh.
    cache.insert(2, 1);
    clock.set(secs(30));
    cache.insert(2, 2);
    assert_live(&cache, 2, 2);
    let expired = with_cause(&log, RemovalCause::Expired);
    assert_eq!(expired, vec![(1, 2), (2, 1)]);
    assert_eq!(with_cause(&log, RemovalCause::Replaced), vec![(1, 1)]);
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.updates, stats.inserts), (2, 1, 3));
    cache.check_invariants();
}

#[test]
fn zero_ttl_is_never_returned() {
    let clock = ManualClock::new();
    clock.set(Duration::from_millis(1234)); // mid-tick
    let (b, log) = logged(&clock);
    let cache = b.time_to_live(Duration::ZERO).build();
    for k in 0..10 {
        cache.insert(k, k);
        assert_gone(&cache, k);
    }
    cache.insert(10, 10);
    cache.insert(10, 11); // update of an already-expired entry
    assert_gone(&cache, 10);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 12);
    assert_eq!(with_cause(&log, RemovalCause::Expired).len(), 12);

    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b.build();
    cache.insert_with_ttl(1, 1, Duration::ZERO);
    assert_gone(&cache, 1);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);

    // Zero time to idle: also gone at once, even after a get.
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b.time_to_idle(Duration::ZERO).build();
    cache.insert(1, 1);
    assert_gone(&cache, 1);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    cache.check_invariants();
}

#[test]
fn duration_max_never_expires() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b
        .time_to_live(Duration::MAX)
        .time_to_idle(Duration::MAX)
        .ttl_jitter(0.5)
        .build();
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, Duration::MAX);
    // Far but finite TTLs still expire exactly, through every wheel level
    // and the overflow bucket.
    let year = 365 * 86_400;
    for (k, s) in [
        (3, 90),
        (4, 5_000),
        (5, 200_000),
        (6, 2 * year),
        (7, 100 * year),
    ] {
        cache.insert_with_ttl(k, k, Duration::from_secs(s));
    }
    let mut now = 0;
    for (k, s) in [
        (3, 90),
        (4, 5_000),
        (5, 200_000),
        (6, 2 * year),
        (7, 100 * year),
    ] {
        // Jitter 0.5 spreads [0.5, 1.5] x TTL: check the ends.
        clock.set(Duration::from_secs(s / 2) - NS);
        assert!(cache.contains_key(&k), "{k} early");
        clock.set(Duration::from_secs(s + s / 2) + NS);
        assert!(!cache.contains_key(&k), "{k} late");
        cache.run_pending_tasks();
        now = s + s / 2;
    }
    assert!(now > 0);
    assert_eq!(cache.stats().expirations, 5);
    clock.advance(Duration::MAX); // saturates at the end of time
    cache.run_pending_tasks();
    assert_live(&cache, 1, 1);
    assert_live(&cache, 2, 2);
    assert_eq!(with_cause(&log, RemovalCause::Expired).len(), 5);
    cache.insert(8, 8);
    assert_live(&cache, 8, 8);
    cache.check_invariants();
}

#[test]
fn clock_jump_of_hours_over_100k_entries() {
    const N: u64 = 100_000;
    let clock = ManualClock::new();
    let counts: Arc<Mutex<HashMap<u64, (RemovalCause, usize)>>> = Arc::default();
    let sink = counts.clone();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(4 * N)
        .shards(4)
        .clock(clock.clone())
        .time_to_live(Duration::from_secs(3600))
        .ttl_jitter(0.1)
        .seed(3)
        .eviction_listener(move |k: &u64, _v: &u64, cause| {
            sink.lock().unwrap().entry(*k).or_insert((cause, 0)).1 += 1;
        })
        .build();
    // Half the keys live an hour (+-10%), half a week.
    for k in 0..N {
        if k % 2 == 0 {
            cache.insert(k, k);
        } else {
            cache.insert_with_ttl(k, k, Duration::from_secs(7 * 86_400));
        }
    }
    assert_eq!(cache.len(), N as usize);

    clock.advance(Duration::from_secs(5 * 3600));
    // Expired entries are hidden at once, removed or not.
    for k in (0..N).step_by(97) {
        assert_eq!(cache.peek(&k).is_some(), k % 2 == 1, "{k}");
    }
    // One insert does a bounded slice of the work, not all of it.
    cache.insert(N, N);
    let after_one = cache.stats().expirations;
    assert!(after_one > 0, "the insert did some expiry work");
    assert!(
        after_one <= 2048,
        "one insert expired {after_one} entries: work is not bounded"
    );
    let stored = cache.len() as u64;
    assert!(
        stored > N / 2 + 1 + 40_000,
        "{stored} stored: expired entries should be left for later"
    );
    // A few more operations each also do bounded work.
    let mut last = after_one;
    for k in 0..10 {
        cache.insert(N + 1 + k, k);
        let now = cache.stats().expirations;
        assert!(now - last <= 2048, "{}", now - last);
        last = now;
    }
    cache.run_pending_tasks();
    cache.check_invariants();
    let stats = cache.stats();
    assert_eq!(stats.expirations, N / 2, "everything due expires once");
    assert_eq!(stats.evictions, 0);
    assert_eq!(cache.len() as u64, N / 2 + 11);
    {
        let counts = counts.lock().unwrap();
        assert_eq!(counts.len() as u64, N / 2);
        for (k, &(cause, n)) in counts.iter() {
            assert!(k % 2 == 0, "{k} was not due");
            assert_eq!((cause, n), (RemovalCause::Expired, 1), "key {k}");
        }
    }
    for k in 0..N {
        assert_eq!(cache.get(&k).is_some(), k % 2 == 1, "{k}");
    }
    // A second jump, of years: the rest goes, each once.
    clock.advance(Duration::from_secs(3 * 365 * 86_400));
    cache.run_pending_tasks();
    assert_eq!(cache.stats().expirations, N + 11);
    assert_eq!(cache.len(), 0);
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len() as u64, N + 11);
    assert!(counts
        .values()
        .all(|&(c, n)| c == RemovalCause::Expired && n == 1));
    cache.check_invariants();
}

#[test]
fn clock_set_backwards_nothing_unexpires() {
    let clock = ManualClock::new();
    let (b, _log) = logged(&clock);
    let cache = b.time_to_live(secs(10)).shards(1).build();
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.insert(3, 3);
    clock.set(secs(20));
    // Seen expired through every read path, without any write.
    assert_eq!(cache.peek(&1), None);
    assert!(!cache.contains_key(&2));
    assert_eq!(cache.iter().count(), 0);
    clock.set(secs(5));
    assert_gone(&cache, 1);
    assert_gone(&cache, 2);
    assert_gone(&cache, 3);
    // Time stands still for the cache until the clock catches up: a write
    // now is a write at 20 s.
    cache.insert(4, 4);
    clock.set(secs(29));
    assert_live(&cache, 4, 4);
    clock.set(secs(30));
    assert_gone(&cache, 4);
    clock.set(Duration::ZERO);
    assert_gone(&cache, 4);
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 4);
    cache.check_invariants();
}

#[test]
fn expired_entries_are_preferred_victims() {
    for policy in [
        Policy::Lru,
        Policy::Fifo,
        Policy::Lfu,
        Policy::Slru,
        Policy::WTinyLfu,
    ] {
        let clock = ManualClock::new();
        let (b, log) = logged(&clock);
        let cache = b
            .max_capacity(1000)
            .shards(1)
            .policy(policy)
            .time_to_live(secs(3600))
            .build();
        // Interleave short-lived and long-lived keys; read the short-lived
        // ones often, so every policy would rather keep them.
        for k in 0..1000 {
            if k % 2 == 0 {
                cache.insert_with_ttl(k, k, secs(10));
            } else {
                cache.insert(k, k);
            }
        }
        for _ in 0..5 {
            for k in (0..1000).step_by(2) {
                assert_eq!(cache.get(&k), Some(k));
            }
        }
        // Expired for one level-0 wheel tick (2^30 ns = 1.07 s): routine
        // maintenance has them, whatever the policy thinks of them.
        clock.advance(secs(10) + Duration::from_nanos(1 << 30));
        for k in 1000..1500 {
            cache.insert(k, k);
        }
        for k in (1..1000).step_by(2) {
            assert_eq!(cache.peek(&k), Some(k), "{policy:?}: live {k} evicted");
        }
        for k in 1000..1500 {
            assert_eq!(cache.peek(&k), Some(k), "{policy:?}: new {k} evicted");
        }
        let stats = cache.stats();
        assert_eq!((stats.expirations, stats.evictions), (500, 0), "{policy:?}");
        assert_eq!(with_cause(&log, RemovalCause::Evicted), vec![]);
        cache.check_invariants();
    }
}

#[test]
fn expired_entries_are_preferred_victims_sub_second() {
    // Deadlines that passed less than one wheel tick (1.07 s) ago: routine
    // maintenance (inside insert) may not have reached them yet, which is
    // the wheel's documented resolution; run_pending_tasks takes them, and
    // then inserts never need a live victim.
    let clock = ManualClock::new();
    clock.set(Duration::from_millis(100));
    let (b, _log) = logged(&clock);
    let cache = b
        .max_capacity(100)
        .shards(1)
        .policy(Policy::Lru)
        .time_to_live(secs(3600))
        .build();
    for k in 0..100 {
        if k < 50 {
            cache.insert_with_ttl(k, k, Duration::from_millis(200));
        } else {
            cache.insert(k, k);
        }
    }
    for k in 0..50 {
        assert_eq!(cache.get(&k), Some(k)); // LRU would now evict 50.. first
    }
    clock.advance(Duration::from_millis(300));
    cache.run_pending_tasks();
    for k in 100..150 {
        cache.insert(k, k);
    }
    let lost: Vec<u64> = (50..100).filter(|k| !cache.contains_key(k)).collect();
    assert_eq!(
        lost,
        vec![],
        "live entries evicted while expired ones stayed"
    );
    let stats = cache.stats();
    assert_eq!((stats.expirations, stats.evictions), (50, 0));
}

#[test]
fn run_pending_tasks_removes_everything_due_at_once() {
    // Sub-tick deadlines: run_pending_tasks must not wait for the wheel's
    // level-0 tick to end before removing what is due.
    let clock = ManualClock::new();
    clock.set(Duration::from_millis(2500));
    let (b, log) = logged(&clock);
    let cache = b.shards(1).build();
    cache.insert_with_ttl(1, 1, Duration::from_millis(100));
    cache.insert_with_ttl(2, 2, Duration::from_millis(300));
    clock.advance(Duration::from_millis(100));
    cache.run_pending_tasks();
    assert_eq!(with_cause(&log, RemovalCause::Expired), vec![(1, 1)]);
    assert_eq!(cache.len(), 1);
    clock.advance(Duration::from_millis(200));
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 2);
    cache.check_invariants();
}

#[test]
fn listener_and_stats_keep_expirations_apart() {
    let clock = ManualClock::new();
    let (b, log) = logged(&clock);
    let cache = b
        .max_capacity(10)
        .shards(1)
        .policy(Policy::Fifo)
        .time_to_live(secs(10))
        .build();
    for k in 0..15 {
        cache.insert(k, k); // 0..5 evicted
    }
    cache.insert(14, 140); // replaced
    assert_eq!(cache.remove(&13), Some(13)); // explicit
    clock.advance(secs(10));
    assert_eq!(cache.remove(&12), None); // expired, not explicit
    cache.run_pending_tasks();
    assert_eq!(
        with_cause(&log, RemovalCause::Evicted),
        (0..5).map(|k| (k, k)).collect::<Vec<_>>()
    );
    assert_eq!(with_cause(&log, RemovalCause::Replaced), vec![(14, 14)]);
    assert_eq!(with_cause(&log, RemovalCause::Explicit), vec![(13, 13)]);
    let mut expired: Vec<_> = (5..13).map(|k| (k, k)).collect();
    expired.push((14, 140));
    assert_eq!(with_cause(&log, RemovalCause::Expired), expired);
    let s = cache.stats();
    assert_eq!((s.evictions, s.expirations), (5, 9));
    assert_eq!((s.removals, s.updates), (1, 1)); // explicit remove; replacement
    assert_eq!(log.lock().unwrap().len(), 5 + 1 + 1 + 9);
    assert!(RemovalCause::Expired.was_evicted());
}

/// A hasher without a random key: with several shards, which shard (and so
/// which seeded jitter generator) a key uses depends on its hash, so a
/// reproducible run needs `.seed()` and a fixed hasher.
fn fixed_hasher() -> BuildHasherDefault<DefaultHasher> {
    BuildHasherDefault::default()
}

#[test]
fn jitter_spreads_expiries_over_the_range() {
    const N: usize = 10_000;
    const STEPS: u64 = 20;
    let t = secs(300);
    let clock = ManualClock::new();
    let expired = Arc::new(AtomicUsize::new(0));
    let sink = expired.clone();
    let cache = Cache::builder()
        .max_capacity(2 * N as u64)
        .hasher(fixed_hasher())
        .clock(clock.clone())
        .time_to_live(t)
        .ttl_jitter(0.1)
        .seed(7)
        .eviction_listener(move |_k: &u64, _v: &u64, cause| {
            assert_eq!(cause, RemovalCause::Expired);
            sink.fetch_add(1, Ordering::Relaxed);
        })
        .build();
    for k in 0..N as u64 {
        cache.insert(k, k);
    }
    let lo = t.mul_f64(0.9);
    let hi = t.mul_f64(1.1);
    clock.set(lo - NS);
    cache.run_pending_tasks();
    assert_eq!(expired.load(Ordering::Relaxed), 0, "expired before 0.9 T");
    assert_eq!(cache.iter().count(), N);
    let step = (hi - lo) / STEPS as u32;
    let mut per_step = Vec::new();
    let mut before = 0;
    for i in 1..=STEPS {
        let now = if i == STEPS { hi } else { lo + step * i as u32 };
        clock.set(now);
        cache.run_pending_tasks();
        let total = expired.load(Ordering::Relaxed);
        per_step.push(total - before);
        // What is left is exactly what get still returns.
        assert_eq!(cache.len(), N - total);
        assert_eq!(cache.iter().count(), N - total);
        before = total;
    }
    assert_eq!(before, N, "all expired by 1.1 T: {per_step:?}");
    let share = N / STEPS as usize;
    assert!(
        per_step.iter().all(|&c| c <= 2 * share),
        "a step over twice its share ({share}): {per_step:?}"
    );
    // Uniform, so no step is nearly empty either.
    assert!(
        per_step.iter().all(|&c| c >= share / 2),
        "a step under half its share ({share}): {per_step:?}"
    );
    assert_eq!(cache.stats().expirations, N as u64);
    // Seeded: the same build draws the same deadlines.
    let draw = |seed: u64| {
        let clock = ManualClock::new();
        let c = Cache::builder()
            .hasher(fixed_hasher())
            .clock(clock.clone())
            .time_to_live(t)
            .ttl_jitter(0.1)
            .seed(seed)
            .build();
        for k in 0..1000 {
            c.insert(k, k);
        }
        clock.set(t);
        let mut left: Vec<u64> = c.iter().map(|(k, _)| k).collect();
        left.sort_unstable();
        left
    };
    assert_eq!(draw(7), draw(7));
    assert_ne!(draw(7), draw(8));
}

#[test]
fn jitter_is_seeded_on_a_cache_without_ttl() {
    // insert_with_ttl on a cache with jitter but no cache-wide expiry:
    // deadlines still come from the seeded generator.
    let draw = |seed: u64| {
        let clock = ManualClock::new();
        // One shard, so the random default hasher does not decide which
        // generator each key draws from.
        let c: Cache<u64, u64> = Cache::builder()
            .shards(1)
            .clock(clock.clone())
            .ttl_jitter(0.1)
            .seed(seed)
            .build();
        for k in 0..1000 {
            c.insert_with_ttl(k, k, secs(100));
        }
        clock.set(secs(100));
        let mut left: Vec<u64> = c.iter().map(|(k, _)| k).collect();
        left.sort_unstable();
        assert!(left.len() > 300 && left.len() < 700, "{}", left.len());
        left
    };
    assert_eq!(draw(7), draw(7));
}

#[test]
fn a_crowded_tick_does_not_stall_maintenance() {
    // Thousands of entries share one deadline in the middle of a level-0
    // tick (1.07 s). When the wheel enters that tick before the deadline,
    // none is due yet: a budgeted visit must still finish, not revisit the
    // entries it has just placed back (which would loop forever).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let clock = ManualClock::new();
        let (b, _log) = logged(&clock);
        let cache = b
            .shards(1)
            .time_to_live(Duration::from_millis(10_500))
            .build();
        for k in 0..5000 {
            cache.insert(k, k);
        }
        clock.set(secs(10)); // tick 9 (9.31), deadline 10.5 s (tick 9.78)
        cache.run_pending_tasks();
        for k in 5000..5100 {
            cache.insert(k, k);
        }
        let stored = cache.len();
        clock.set(Duration::from_millis(10_500));
        cache.run_pending_tasks();
        tx.send((stored, cache.len(), cache.stats().expirations))
            .unwrap();
        cache.check_invariants();
    });
    let got = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("maintenance did not finish in 30 s");
    assert_eq!(got, (5100, 100, 5000));
}

/// `TickingClock` on real time: an entry is served until its TTL has
/// passed and is gone soon after, maintenance included. `start` is taken
/// before the clock starts its thread (which stores a fresh reading), so the
/// write's time on the clock is no earlier than `start`; a reading is an
/// `Instant` from the past, so when a read finds the entry expired, the TTL
/// has passed since `start` in real time. Exact, however the machine
/// schedules the threads; the only generous limit is how late it may go.
#[test]
fn ticking_clock_expires_on_real_time_never_early() {
    use std::time::Instant;
    let ttl = Duration::from_millis(40);
    let start = Instant::now();
    let cache: Cache<u64, u64> = Cache::builder()
        .max_capacity(100)
        .time_to_live(ttl)
        .clock(larder::TickingClock::new())
        .build();
    cache.insert(1, 10);
    loop {
        let found = cache.get(&1);
        // Taken after the read: at least this much had passed when it
        // judged the entry.
        let seen = start.elapsed();
        match found {
            Some(v) => assert_eq!(v, 10),
            None => {
                assert!(seen >= ttl, "gone after {seen:?}");
                break;
            }
        }
        assert!(
            seen < Duration::from_secs(10),
            "still served after {seen:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    cache.run_pending_tasks();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 1);
}
