//! Read-through and refresh-ahead: `LoadingCache`, `refresh_after`,
//! `stale_while_revalidate`, executors and the built-in pool.
//!
//! Time is a `ManualClock` and refreshes run on an executor the test
//! controls (inline, or a queue the test drains when it chooses), so every
//! test here is deterministic. Only `the_pool_*` tests use the built-in
//! refresh threads (they count them by name).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::Duration;

use larder::{Cache, CacheBuilder, LoadingCache, ManualClock};

type Task = Box<dyn FnOnce() + Send>;

/// An executor that queues refresh tasks until the test runs them.
#[derive(Clone, Default)]
struct Queue(Arc<Mutex<Vec<Task>>>);

impl Queue {
    fn executor(&self) -> impl Fn(Task) + Send + Sync + 'static {
        let q = self.clone();
        move |task| q.0.lock().unwrap().push(task)
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Runs every queued task; returns how many ran.
    fn run_all(&self) -> usize {
        let tasks = std::mem::take(&mut *self.0.lock().unwrap());
        let n = tasks.len();
        for task in tasks {
            task();
        }
        n
    }
}

/// A loader returning `key * 1000 + version`, counting its calls.
fn versioned(calls: &Arc<AtomicU32>) -> impl Fn(&u32) -> u32 + Send + Sync + 'static {
    let calls = calls.clone();
    move |key| key * 1000 + calls.fetch_add(1, Ordering::SeqCst)
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A builder with a manual clock and a 60 s refresh point.
fn builder(clock: &ManualClock) -> CacheBuilder<u32, u32> {
    Cache::builder()
        .max_capacity(100)
        .shards(1)
        .clock(clock.clone())
        .refresh_after(secs(60))
}

#[test]
fn read_through_loads_once_per_key() {
    let calls = Arc::new(AtomicU32::new(0));
    let cache: LoadingCache<u32, u32> = Cache::builder().build_with_loader(versioned(&calls));
    let start = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (cache, start) = (cache.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                cache.get(&7)
            })
        })
        .collect();
    let got: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(got.iter().all(|&v| v == got[0]));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(cache.get_if_present(&8), None, "get_if_present never loads");
    assert_eq!(cache.cache().get(&7), Some(got[0]));
    let s = cache.stats();
    assert_eq!((s.loads, s.refreshes), (1, 0));
}

#[test]
fn read_through_errors_are_shared_not_cached() {
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let cache: LoadingCache<u32, u32, String> =
        Cache::builder().build_with_try_loader(move |k: &u32| {
            if c2.fetch_add(1, Ordering::SeqCst) == 0 {
                Err(format!("no row {k}"))
            } else {
                Ok(*k)
            }
        });
    assert_eq!(*cache.try_get(&3).unwrap_err(), "no row 3");
    assert_eq!(cache.try_get(&3), Ok(3), "the error was not cached");
    let s = cache.stats();
    assert_eq!((s.loads, s.load_failures), (2, 1));
}

#[test]
fn passthroughs_invalidate_and_insert() {
    let calls = Arc::new(AtomicU32::new(0));
    let cache = Cache::builder().build_with_loader(versioned(&calls));
    assert_eq!(cache.get(&1), 1000);
    cache.insert(1, 5);
    assert_eq!(cache.get(&1), 5);
    assert_eq!(cache.remove(&1), Some(5));
    assert_eq!(cache.get(&1), 1001);
    cache.invalidate_all();
    assert!(cache.cache().is_empty());
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn refresh_replaces_the_value() {
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    assert_eq!(cache.get(&1), 1000);
    clock.advance(secs(59));
    assert_eq!(cache.get(&1), 1000);
    assert_eq!(queue.len(), 0, "not due before refresh_after");
    clock.advance(secs(1));
    assert_eq!(cache.get(&1), 1000, "the old value, at once");
    assert_eq!(queue.run_all(), 1);
    assert_eq!(cache.get(&1), 1001, "replaced by the refreshed value");
    let s = cache.stats();
    assert_eq!(
        (s.loads, s.refreshes, s.refresh_failures, s.updates),
        (2, 1, 0, 1)
    );
    // The refreshed entry has a new refresh point, 60 s after the refresh.
    clock.advance(secs(59));
    cache.get(&1);
    assert_eq!(queue.len(), 0);
    clock.advance(secs(1));
    cache.get(&1);
    assert_eq!(queue.run_all(), 1);
    assert_eq!(cache.get(&1), 1002);
}

#[test]
fn one_refresh_while_one_is_in_flight() {
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    clock.advance(secs(61));
    for _ in 0..100 {
        assert_eq!(cache.get(&1), 1000);
    }
    assert_eq!(queue.len(), 1, "one reader claimed the refresh");
    // A retry interval later the entry is due again, but its refresh is
    // still in flight: reads keep returning the current value.
    clock.advance(secs(61));
    assert_eq!(cache.get(&1), 1000);
    assert_eq!(cache.get_if_present(&1), Some(1000));
    assert_eq!(queue.len(), 1, "single flight: no second refresh");
    queue.run_all();
    assert_eq!(cache.get(&1), 1001);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn a_read_during_refresh_returns_the_old_value() {
    // The refresh really runs on another thread, blocked in its loader.
    let clock = ManualClock::new();
    let (entered_tx, entered_rx) = mpsc::channel::<()>();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let entered_tx = Mutex::new(entered_tx);
    let release_rx = Mutex::new(release_rx);
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let workers = Arc::new(Mutex::new(Vec::new()));
    let w2 = workers.clone();
    let cache = builder(&clock)
        .executor(move |task| w2.lock().unwrap().push(thread::spawn(task)))
        .build_with_loader(move |k: &u32| {
            let n = c2.fetch_add(1, Ordering::SeqCst);
            if n > 0 {
                entered_tx.lock().unwrap().send(()).unwrap();
                release_rx.lock().unwrap().recv().unwrap();
            }
            k * 1000 + n
        });
    assert_eq!(cache.get(&1), 1000);
    clock.advance(secs(61));
    assert_eq!(cache.get(&1), 1000);
    entered_rx.recv().unwrap(); // the refresh's loader is running
    for _ in 0..10 {
        assert_eq!(cache.get(&1), 1000, "readers do not wait for a refresh");
    }
    release_tx.send(()).unwrap();
    for h in workers.lock().unwrap().drain(..) {
        h.join().unwrap();
    }
    assert_eq!(cache.get(&1), 1001);
}

#[test]
fn refresh_racing_with_remove_does_not_store() {
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    clock.advance(secs(61));
    cache.get(&1); // refresh claimed, flight registered, task queued
    assert_eq!(cache.remove(&1), Some(1000));
    queue.run_all(); // the loader runs, but the remove came in between
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert_eq!(cache.cache().get(&1), None, "remove wins over the refresh");
    assert_eq!(cache.stats().refreshes, 1);
    // The key loads normally afterwards.
    assert_eq!(cache.get(&1), 1002);
}

#[test]
fn refresh_racing_with_insert_keeps_the_insert() {
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    cache.get(&2);
    clock.advance(secs(61));
    cache.get(&1);
    cache.get(&2);
    assert_eq!(queue.len(), 2);
    cache.insert(1, 7);
    cache.cache().retain(|_, _| true); // touches every key: 2 as well
    queue.run_all();
    assert_eq!(cache.get(&1), 7, "the newer insert stays");
    assert_eq!(
        cache.get(&2),
        2001,
        "retain met the flight: not stored (2001 is the first load)"
    );
    assert!(calls.load(Ordering::SeqCst) >= 4);
    cache.cache().check_invariants();
}

#[test]
fn failed_refresh_keeps_the_old_value_and_is_counted() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let cache: LoadingCache<u32, u32, &str> = builder(&clock)
        .executor(|task| task())
        .build_with_try_loader(move |k: &u32| match c2.fetch_add(1, Ordering::SeqCst) {
            0 => Ok(k * 1000),
            1 => Err("backend down"),
            n => Ok(k * 1000 + n),
        });
    assert_eq!(cache.try_get(&1), Ok(1000));
    clock.advance(secs(61));
    assert_eq!(cache.try_get(&1), Ok(1000), "the refresh failed inline");
    assert_eq!(cache.try_get(&1), Ok(1000), "the old value stays");
    let s = cache.stats();
    assert_eq!(
        (s.refreshes, s.refresh_failures, s.load_failures),
        (1, 1, 1)
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // Retried no sooner than refresh_after after the failed attempt.
    clock.advance(secs(59));
    assert_eq!(cache.try_get(&1), Ok(1000));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "too early to retry");
    clock.advance(secs(1));
    assert_eq!(cache.try_get(&1), Ok(1000)); // the retry runs inline
    assert_eq!(cache.try_get(&1), Ok(1002));
    let s = cache.stats();
    assert_eq!((s.refreshes, s.refresh_failures), (2, 1));
}

#[test]
fn panicking_refresh_keeps_the_old_value() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let cache = builder(&clock)
        .executor(|task| task())
        .build_with_loader(move |k: &u32| {
            if c2.fetch_add(1, Ordering::SeqCst) == 1 {
                panic!("refresh loader panicked");
            }
            *k
        });
    assert_eq!(cache.get(&1), 1);
    clock.advance(secs(61));
    // The panic is caught on the task's thread (here: inline).
    let r = catch_unwind(AssertUnwindSafe(|| cache.get(&1)));
    assert_eq!(r.ok(), Some(1), "the reader gets the old value");
    assert_eq!(cache.get(&1), 1);
    let s = cache.stats();
    assert_eq!((s.refreshes, s.refresh_failures), (1, 1));
    // The flight was given up: a foreground load of the key does not hang.
    cache.remove(&1);
    assert_eq!(cache.get(&1), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[test]
fn foreground_callers_join_a_refresh_in_flight() {
    // The entry expires while its refresh waits in the queue: a caller that
    // now misses waits for that refresh instead of loading again.
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .time_to_live(secs(90))
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    clock.advance(secs(61));
    cache.get(&1);
    assert_eq!(queue.len(), 1);
    clock.advance(secs(30)); // expired
    let waiter = {
        let cache = cache.clone();
        thread::spawn(move || cache.get(&1))
    };
    // Give the waiter time to join the flight, then run the refresh.
    while cache.stats().misses < 2 {
        thread::yield_now();
    }
    thread::sleep(Duration::from_millis(50));
    queue.run_all();
    assert_eq!(waiter.join().unwrap(), 1001);
    assert_eq!(calls.load(Ordering::SeqCst), 2, "one refresh served both");
    assert_eq!(
        cache.get(&1),
        1001,
        "an expiry is not an invalidation: stored"
    );
}

#[test]
fn a_dropped_refresh_task_is_retried_later() {
    let clock = ManualClock::new();
    let offered = Arc::new(AtomicUsize::new(0));
    let o2 = offered.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = builder(&clock)
        .executor(move |task| {
            o2.fetch_add(1, Ordering::SeqCst);
            drop(task); // e.g. an executor that is shutting down
        })
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    clock.advance(secs(61));
    assert_eq!(cache.get(&1), 1000);
    assert_eq!(offered.load(Ordering::SeqCst), 1);
    // The dropped task gave its flight up: a foreground load does not hang.
    cache.remove(&1);
    assert_eq!(cache.get(&1), 1001);
    clock.advance(secs(61));
    cache.get(&1);
    assert_eq!(
        offered.load(Ordering::SeqCst),
        2,
        "the next refresh is offered"
    );
    assert_eq!(cache.stats().refreshes, 0);
}

#[test]
fn stale_while_revalidate_serves_stale_then_fresh() {
    let clock = ManualClock::new();
    let queue = Queue::default();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = Cache::builder()
        .max_capacity(100)
        .clock(clock.clone())
        .time_to_live(secs(60))
        .stale_while_revalidate(secs(30))
        .executor(queue.executor())
        .build_with_loader(versioned(&calls));
    assert_eq!(cache.get(&1), 1000);
    clock.advance(secs(59));
    assert_eq!(cache.get(&1), 1000);
    assert_eq!(queue.len(), 0, "fresh: no refresh");
    clock.advance(secs(11)); // 70 s: past the TTL, inside the window
    assert_eq!(cache.get(&1), 1000, "stale, served at once");
    assert_eq!(
        cache.cache().get(&1),
        Some(1000),
        "the inner cache sees it too"
    );
    assert_eq!(queue.run_all(), 1);
    assert_eq!(cache.get(&1), 1001, "revalidated");
    // Unread past TTL + window: gone, the next read loads in the foreground.
    clock.advance(secs(91));
    assert_eq!(cache.cache().get(&1), None);
    assert_eq!(cache.get(&1), 1002);
    assert_eq!(queue.len(), 0);
    let s = cache.stats();
    assert_eq!((s.loads, s.refreshes), (3, 1));
}

#[test]
fn stale_window_retries_a_failed_revalidation() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let c2 = calls.clone();
    let cache: LoadingCache<u32, u32, ()> = Cache::builder()
        .clock(clock.clone())
        .time_to_live(secs(60))
        .stale_while_revalidate(secs(40))
        .executor(|task| task())
        .build_with_try_loader(move |_: &u32| match c2.fetch_add(1, Ordering::SeqCst) {
            1 => Err(()),
            n => Ok(n),
        });
    assert_eq!(cache.try_get(&1), Ok(0));
    clock.advance(secs(61));
    assert_eq!(cache.try_get(&1), Ok(0), "revalidation failed, stale kept");
    clock.advance(secs(9));
    assert_eq!(cache.try_get(&1), Ok(0));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "retry waits window / 4");
    clock.advance(secs(1));
    assert_eq!(cache.try_get(&1), Ok(0));
    assert_eq!(cache.try_get(&1), Ok(2));
}

#[test]
fn without_refresh_settings_nothing_refreshes() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = Cache::builder()
        .clock(clock.clone())
        .build_with_loader(versioned(&calls));
    cache.get(&1);
    clock.advance(secs(1_000_000));
    assert_eq!(cache.get(&1), 1000);
    assert_eq!(cache.stats().refreshes, 0);
}

/// Threads of this process whose name starts with `prefix` (Linux).
#[cfg(target_os = "linux")]
fn threads_named(prefix: &str) -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with(prefix))
        .count()
}

#[cfg(target_os = "linux")]
#[test]
fn the_pool_starts_lazily_and_stops_when_the_cache_is_dropped() {
    let clock = ManualClock::new();
    let calls = Arc::new(AtomicU32::new(0));
    let cache = Cache::builder()
        .clock(clock.clone())
        .refresh_after(secs(60))
        .build_with_loader(versioned(&calls));
    for k in 0..50 {
        cache.get(&k);
    }
    assert_eq!(
        threads_named("larder-refresh"),
        0,
        "no refresh yet, no thread"
    );
    clock.advance(secs(61));
    for k in 0..50 {
        cache.get(&k);
    }
    while cache.stats().refreshes < 50 {
        thread::sleep(Duration::from_millis(1));
    }
    let running = threads_named("larder-refresh");
    assert!((1..=2).contains(&running), "{running} refresh threads");
    assert!(cache.get(&3) % 1000 >= 50, "refreshed by the second round");
    let inner = cache.cache().clone();
    let twin = cache.clone();
    drop(cache);
    assert_eq!(threads_named("larder-refresh"), running, "a clone is alive");
    drop(twin);
    // The workers were joined inside that drop, but a joined thread can
    // still be listed in /proc/self/task for a moment: `join` returns once
    // the thread has released its memory, a little before the kernel
    // unlists it (seen once in CI). So the listing is polled, with a
    // deadline far beyond that window.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while threads_named("larder-refresh") > 0 && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        threads_named("larder-refresh"),
        0,
        "stopped after the last drop"
    );
    // The inner cache outlives the pool and keeps its values.
    assert!(inner.get(&3).is_some());
}
