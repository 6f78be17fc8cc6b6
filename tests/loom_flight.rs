#![cfg(loom)]
//! loom models of the single-flight protocol and of the refresh hand-off,
//! through the public API on a one-shard cache. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom_flight
//! ```
//!
//! loom runs each model under every interleaving of its threads (up to 4
//! preemptions per execution; the whole file takes about 10 s in release,
//! the refresh hand-off being the largest model at about 38,000
//! executions) and fails on a deadlock, so "nothing hangs" (a lost
//! wake-up of a waiter, a flight never unregistered) is checked in every
//! model on top of its assertions.
//!
//! How the invalidation properties are phrased: a loader (or the refresh
//! executor) sets a flag once it has started, which is after its flight was
//! registered under the shard lock. The invalidating thread reads the flag
//! *before* invalidating. If it saw the flag, the registration happened
//! before the invalidation, and the loaded value must never be in the cache
//! afterwards; if it did not, either order is allowed.

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use larder::{Cache, LoadingCache, ManualClock, Policy};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use loom::sync::{Arc, Mutex};
use loom::thread;

/// A fixed hasher keeps every execution of a model identical.
type Fixed = BuildHasherDefault<DefaultHasher>;

/// Explores `f` with at most `bound` preemptions per execution.
fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    // Every write lock replays the shard's 64-slot read buffer: 64 atomic
    // loads that each count as a branch.
    builder.max_branches = 50_000;
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    RUNS.store(0, std::sync::atomic::Ordering::SeqCst);
    builder.check(move || {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        f()
    });
    // Visible with --nocapture: how much of the model was explored.
    eprintln!(
        "loom: {} executions",
        RUNS.load(std::sync::atomic::Ordering::SeqCst)
    );
}

/// A one-shard cache with deterministic hashing and policy.
fn cache() -> Cache<u32, u32, Fixed> {
    Cache::builder()
        .max_capacity(16)
        .shards(1)
        .seed(7)
        .policy(Policy::Lru)
        .hasher(Fixed::default())
        .build()
}

/// Two threads ask for the same missing key: the loader runs exactly once
/// and both get its value, which is then stored.
#[test]
fn two_callers_one_load() {
    model(4, || {
        let cache = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let other = {
            let (cache, loads) = (cache.clone(), loads.clone());
            thread::spawn(move || {
                cache.get_with(1, || {
                    loads.fetch_add(1, SeqCst);
                    10
                })
            })
        };
        let mine = cache.get_with(1, || {
            loads.fetch_add(1, SeqCst);
            10
        });
        assert_eq!(mine, 10);
        assert_eq!(other.join().unwrap(), 10);
        assert_eq!(loads.load(SeqCst), 1, "the loader ran once");
        assert_eq!(cache.get(&1), Some(10));
    });
}

/// Waiter registration against completion, with a failing loader: a caller
/// that joined the flight before it completed gets the loader's error (the
/// very same `Arc`); one that came after loads for itself. Either way
/// nobody waits forever (no lost wake-up) and no error is cached.
#[test]
fn waiter_registration_races_completion() {
    model(4, || {
        let cache = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let other = {
            let (cache, loads) = (cache.clone(), loads.clone());
            thread::spawn(move || {
                cache.try_get_with(1, || {
                    loads.fetch_add(1, SeqCst);
                    Err::<u32, &str>("down")
                })
            })
        };
        let mine = cache.try_get_with(1, || {
            loads.fetch_add(1, SeqCst);
            Err::<u32, &str>("down")
        });
        let theirs = other.join().unwrap();
        let (a, b) = (mine.unwrap_err(), theirs.unwrap_err());
        let shared = std::sync::Arc::ptr_eq(&a, &b);
        // One load shared by both, or two loads one after the other.
        assert_eq!(loads.load(SeqCst), if shared { 1 } else { 2 });
        assert_eq!(cache.get(&1), None, "errors are not cached");
        assert_eq!(cache.get_with(1, || 3), 3, "no flight left behind");
    });
}

/// Runs a load of key 1 (value 100) against `invalidate` on another
/// thread; returns (the loader's caller's value, the invalidator saw the
/// loader started, the final cached value).
fn load_vs_invalidation(
    invalidate: impl Fn(&Cache<u32, u32, Fixed>) + Send + Sync + 'static,
    check: impl Fn(u32, bool, Option<u32>) + Send + Sync + 'static,
) {
    let invalidate = std::sync::Arc::new(invalidate);
    model(4, move || {
        let invalidate = invalidate.clone();
        let cache = cache();
        let started = Arc::new(AtomicBool::new(false));
        let writer = {
            let (cache, started) = (cache.clone(), started.clone());
            thread::spawn(move || {
                let seen = started.load(SeqCst);
                invalidate(&cache);
                seen
            })
        };
        let got = cache.get_with(1, || {
            started.store(true, SeqCst);
            100
        });
        let seen = writer.join().unwrap();
        check(got, seen, cache.get(&1));
    });
}

/// Cancellation by `remove`: if the remove happened after the load's
/// flight was registered, the cache never holds the loaded value
/// afterwards. The caller gets the loaded value in every case.
#[test]
fn remove_during_load_wins() {
    load_vs_invalidation(
        |c| {
            c.remove(&1);
        },
        |got, seen, end| {
            assert_eq!(got, 100);
            if seen {
                assert_eq!(end, None, "a stale load was stored over a remove");
            }
        },
    );
}

/// Cancellation by `insert`: if the insert happened after registration,
/// the inserted value survives the load. (If it came first, the caller may
/// get the inserted value instead of loading.)
#[test]
fn insert_during_load_wins() {
    load_vs_invalidation(
        |c| c.insert(1, 200),
        |got, seen, end| {
            assert!(got == 100 || got == 200);
            if seen {
                assert_eq!(got, 100);
                assert_eq!(end, Some(200), "a stale load overwrote an insert");
            }
            if got == 200 {
                assert_eq!(end, Some(200));
            }
        },
    );
}

/// Cancellation by `invalidate_all`, as for `remove`.
#[test]
fn invalidate_all_during_load_wins() {
    load_vs_invalidation(
        |c| c.invalidate_all(),
        |got, seen, end| {
            assert_eq!(got, 100);
            if seen {
                assert_eq!(end, None);
            }
        },
    );
}

/// Hides the expected panic messages of the models below.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if info.payload().downcast_ref::<&str>() != Some(&"loader panicked") {
                default(info);
            }
        }));
    });
}

/// A loader that panics: the panic reaches its own caller only, the other
/// thread gets a value (it waited and then loaded, or loaded first), and
/// nothing hangs or stays registered.
#[test]
fn loader_panic_does_not_hang_waiters() {
    quiet_panics();
    model(4, || {
        let cache = cache();
        let other = {
            let cache = cache.clone();
            thread::spawn(move || cache.get_with(1, || 5))
        };
        let mine = catch_unwind(AssertUnwindSafe(|| {
            cache.get_with(1, || panic!("loader panicked"))
        }));
        assert_eq!(other.join().unwrap(), 5);
        // Either this thread panicked, or it found the other's value.
        if let Ok(v) = mine {
            assert_eq!(v, 5);
        }
        assert_eq!(cache.get(&1), Some(5));
    });
}

/// The refresh hand-off: a reader finds key 1 due for refresh and hands the
/// reload to an executor running it on another thread, while a third
/// thread removes the key. If the reader got the old value (its read came
/// before the remove), nothing is cached afterwards, whether the remove hit
/// the refresh before it was registered or while it ran; if the remove
/// came first, the reader loaded the key in the foreground and that value
/// stays. Nothing hangs.
#[test]
fn refresh_hand_off_vs_remove() {
    model(4, || {
        let clock = ManualClock::new();
        let spawned: Arc<Mutex<Vec<thread::JoinHandle<()>>>> = Arc::new(Mutex::new(Vec::new()));
        let started = Arc::new(AtomicBool::new(false));
        let calls = Arc::new(AtomicUsize::new(0));
        let cache: LoadingCache<u32, u32, std::convert::Infallible, Fixed> = {
            let (spawned, started, calls) = (spawned.clone(), started.clone(), calls.clone());
            Cache::builder()
                .max_capacity(16)
                .shards(1)
                .seed(7)
                .policy(Policy::Lru)
                .clock(clock.clone())
                .refresh_after(Duration::from_secs(60))
                .hasher(Fixed::default())
                .executor(move |task| {
                    let started = started.clone();
                    let h = thread::spawn(move || {
                        started.store(true, SeqCst);
                        task();
                    });
                    spawned.lock().unwrap().push(h);
                })
                .build_with_loader(move |k: &u32| k * 1000 + calls.fetch_add(1, SeqCst) as u32)
        };
        assert_eq!(cache.get(&1), 1000);
        clock.advance(Duration::from_secs(61));
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1))
        };
        let remover = {
            let (cache, started) = (cache.clone(), started.clone());
            thread::spawn(move || {
                let seen = started.load(SeqCst);
                cache.remove(&1);
                seen
            })
        };
        let got = reader.join().unwrap();
        let seen = remover.join().unwrap();
        let tasks = std::mem::take(&mut *spawned.lock().unwrap());
        for h in tasks {
            h.join().unwrap();
        }
        assert!(got == 1000 || got == 1001, "reader got {got}");
        let end = cache.cache().get(&1);
        if seen {
            assert_eq!(end, None, "a refresh stored over a later remove");
        }
        // Stronger: a reader that got the old value read before the remove,
        // so whatever refresh it started must not outlive the remove; a
        // reader that got 1001 came after the remove and loaded it.
        let expected = (got == 1001).then_some(1001);
        assert_eq!(end, expected, "reader got {got}, the cache holds {end:?}");
        // No flight left behind: a load of the key completes.
        if end.is_none() {
            assert_eq!(cache.cache().get_with(1, || 7), 7);
        }
    });
}

/// The built-in pool: a read hands a refresh to the pool, which starts a
/// worker thread; then the last handle is dropped. The drop joins the
/// worker: the refresh either ran (and stored its value) or was given up
/// (the old value stays); the inner cache stays usable and nothing hangs.
#[test]
fn pool_hand_off_and_shutdown() {
    model(4, || {
        let clock = ManualClock::new();
        let calls = Arc::new(AtomicUsize::new(0));
        let cache: LoadingCache<u32, u32, std::convert::Infallible, Fixed> = {
            let calls = calls.clone();
            Cache::builder()
                .max_capacity(16)
                .shards(1)
                .seed(7)
                .policy(Policy::Lru)
                .clock(clock.clone())
                .refresh_after(Duration::from_secs(60))
                .hasher(Fixed::default())
                .build_with_loader(move |k: &u32| k * 1000 + calls.fetch_add(1, SeqCst) as u32)
        };
        assert_eq!(cache.get(&1), 1000);
        clock.advance(Duration::from_secs(61));
        let reader = {
            let cache = cache.clone();
            thread::spawn(move || cache.get(&1))
        };
        assert_eq!(reader.join().unwrap(), 1000);
        let inner = cache.cache().clone();
        drop(cache); // the last LoadingCache: stops and joins the pool
        let end = inner.get(&1);
        let ran = calls.load(SeqCst) == 2;
        assert_eq!(end, Some(if ran { 1001 } else { 1000 }));
        inner.remove(&1);
        assert_eq!(inner.get_with(1, || 7), 7, "no flight left behind");
    });
}
