//! Async loading (feature `async`): one flight per key shared by tasks and
//! threads, cancellation, errors, invalidation, negative caching, refresh,
//! no blocking, `Send` futures and recursion, on tokio's runtimes.
#![cfg(all(feature = "async", not(loom)))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use larder::{AsyncLoadingCache, Cache, ManualClock};
use tokio::sync::{oneshot, Barrier, Notify};

/// Fails the test instead of hanging it.
async fn guarded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(Duration::from_secs(30), f).await {
        Ok(v) => v,
        Err(_) => panic!("hang: {what} did not finish within 30 s"),
    }
}

fn assert_send<T: Send>(t: T) -> T {
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_tasks_and_four_threads_one_load() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let loads = Arc::new(AtomicUsize::new(0));
    let release = Arc::new(Notify::new());
    let (started_tx, started_rx) = oneshot::channel();
    // The leader: a task whose loader holds the flight open until released.
    let leader = {
        let (cache, loads, release) = (cache.clone(), loads.clone(), release.clone());
        tokio::spawn(async move {
            cache
                .get_with_async(1, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    started_tx.send(()).unwrap();
                    release.notified().await;
                    42
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..10_000 {
        let (cache, loads) = (cache.clone(), loads.clone());
        tasks.push(tokio::spawn(async move {
            cache
                .get_with_async(1, async move {
                    loads.fetch_add(1, Ordering::SeqCst);
                    0
                })
                .await
        }));
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (cache, loads) = (cache.clone(), loads.clone());
            std::thread::spawn(move || {
                cache.get_with(1, || {
                    loads.fetch_add(1, Ordering::SeqCst);
                    0
                })
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    release.notify_one();
    guarded("the tasks", async {
        assert_eq!(leader.await.unwrap(), 42);
        for t in tasks {
            assert_eq!(t.await.unwrap(), 42);
        }
    })
    .await;
    for t in threads {
        assert_eq!(t.join().unwrap(), 42);
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    assert_eq!(cache.stats().loads, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborting_the_leader_never_strands_its_waiters() {
    for round in 0..1_000u32 {
        let cache: Cache<u32, u32> = Cache::new(10);
        let (started_tx, started_rx) = oneshot::channel();
        let leader = {
            let cache = cache.clone();
            tokio::spawn(async move {
                cache
                    .get_with_async(round, async move {
                        let _ = started_tx.send(());
                        std::future::pending::<()>().await;
                        unreachable!()
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        let waiters: Vec<_> = (0..4)
            .map(|i| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get_with_async(round, async move { i }).await })
            })
            .collect();
        tokio::task::yield_now().await;
        leader.abort();
        guarded("waiters after an abort", async {
            let mut got = Vec::new();
            for w in waiters {
                got.push(w.await.unwrap());
            }
            // One waiter led the next load; everyone got its value.
            assert!(got.iter().all(|&v| v == got[0]), "round {round}: {got:?}");
        })
        .await;
        cache.check_invariants();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_waits_on_a_task_that_is_cancelled() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let (started_tx, started_rx) = oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_with_async(1, async move {
                    let _ = started_tx.send(());
                    std::future::pending::<u32>().await
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let thread = {
        let cache = cache.clone();
        std::thread::spawn(move || cache.get_with(1, || 9))
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    leader.abort();
    let v = guarded("the thread", async {
        tokio::task::spawn_blocking(move || thread.join().unwrap())
            .await
            .unwrap()
    })
    .await;
    assert_eq!(v, 9);
}

#[tokio::test]
async fn a_dropped_waiter_just_leaves() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_with_async(1, async move {
                    let _ = started_tx.send(());
                    go_rx.await.unwrap();
                    5
                })
                .await
        })
    };
    started_rx.await.unwrap();
    // A waiter that gives up after a moment.
    let gave_up = tokio::time::timeout(
        Duration::from_millis(10),
        cache.get_with_async(1, async { 6 }),
    )
    .await;
    assert!(gave_up.is_err());
    go_tx.send(()).unwrap();
    assert_eq!(guarded("leader", leader).await.unwrap(), 5);
    assert_eq!(cache.get(&1), Some(5));
}

#[tokio::test]
async fn errors_are_shared_and_not_cached() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let leader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .try_get_with_async(1, async move {
                    let _ = started_tx.send(());
                    go_rx.await.unwrap();
                    Err::<u32, _>("down")
                })
                .await
        })
    };
    started_rx.await.unwrap();
    let waiter = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .try_get_with_async(1, async { Ok::<_, &str>(1) })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(10)).await;
    go_tx.send(()).unwrap();
    let e1 = leader.await.unwrap().unwrap_err();
    let e2 = waiter.await.unwrap().unwrap_err();
    assert!(Arc::ptr_eq(&e1, &e2), "one shared error");
    assert_eq!(*e1, "down");
    assert_eq!(
        cache
            .try_get_with_async(1, async { Ok::<_, &str>(3) })
            .await,
        Ok(3)
    );
}

#[tokio::test]
async fn an_invalidation_during_a_load_wins() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let (started_tx, started_rx) = oneshot::channel();
    let loader = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_with_async(1, async move {
                    let _ = started_tx.send(());
                    go_rx.await.unwrap();
                    100
                })
                .await
        })
    };
    started_rx.await.unwrap();
    cache.remove(&1);
    // Arrives after the invalidation: loads afresh, does not join.
    let fresh = guarded("fresh load", cache.get_with_async(1, async { 200 })).await;
    assert_eq!(fresh, 200);
    go_tx.send(()).unwrap();
    assert_eq!(loader.await.unwrap(), 100);
    assert_eq!(cache.get(&1), Some(200));
}

#[tokio::test]
async fn negative_ttl_applies() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32> = Cache::builder()
        .negative_ttl(Duration::from_secs(10))
        .clock(clock.clone())
        .build();
    assert_eq!(
        cache.optionally_get_with_async(1, async { None }).await,
        None
    );
    assert_eq!(
        cache.optionally_get_with_async(1, async { Some(5) }).await,
        None,
        "remembered"
    );
    assert_eq!(cache.stats().negative_hits, 1);
    clock.advance(Duration::from_secs(11));
    assert_eq!(
        cache.optionally_get_with_async(1, async { Some(5) }).await,
        Some(5)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn a_slow_load_does_not_delay_hits_on_its_shard() {
    // One shard and one runtime thread: if anything blocked the thread or
    // held the shard lock across the slow load, the hit could not run.
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(10).shards(1).build();
    cache.insert(2, 20);
    let (go_tx, go_rx) = oneshot::channel::<()>();
    let slow = {
        let cache = cache.clone();
        tokio::spawn(async move {
            cache
                .get_with_async(1, async { go_rx.await.map(|_| 10).unwrap() })
                .await
        })
    };
    tokio::task::yield_now().await; // the slow load is in flight
    assert_eq!(cache.get(&2), Some(20));
    assert_eq!(cache.get_with_async(2, async { unreachable!() }).await, 20);
    assert_eq!(cache.get_with_async(3, async { 30 }).await, 30);
    go_tx.send(()).unwrap();
    assert_eq!(slow.await.unwrap(), 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_futures_are_send() {
    let cache: Cache<u64, String> = Cache::new(10);
    let loading: AsyncLoadingCache<u64, String> =
        Cache::builder().build_with_async_loader(|k: &u64| {
            let k = *k;
            async move { k.to_string() }
        });
    // The verbs' futures themselves, and inside spawned tasks.
    drop(assert_send(
        cache.get_with_async(0, async { "0".to_string() }),
    ));
    let c = cache.clone();
    let f1 = assert_send(async move { c.get_with_async(1, async { "1".to_string() }).await });
    let c = cache.clone();
    let f2 = assert_send(async move {
        c.try_get_with_async(2, async { Ok::<_, std::io::Error>("2".into()) })
            .await
    });
    let c = cache.clone();
    let f3 = assert_send(async move { c.optionally_get_with_async(3, async { None }).await });
    let l2 = loading.clone();
    let f4 = assert_send(async move { l2.get(&4).await });
    assert_eq!(tokio::spawn(f1).await.unwrap(), "1");
    assert_eq!(tokio::spawn(f2).await.unwrap().unwrap(), "2");
    assert_eq!(tokio::spawn(f3).await.unwrap(), None);
    assert_eq!(tokio::spawn(f4).await.unwrap(), "4");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loader_future_that_awaits_its_own_key_panics() {
    let cache: Cache<u32, u32> = Cache::new(10);
    let task = {
        let cache = cache.clone();
        tokio::spawn(async move {
            let inner = cache.clone();
            cache
                .get_with_async(1, async move { inner.get_with_async(1, async { 2 }).await })
                .await
        })
    };
    let err = guarded("recursive load", task).await.unwrap_err();
    let payload = err.into_panic();
    let msg = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap();
    assert!(msg.contains("recursive load"), "{msg}");
    // Nothing is stuck.
    assert_eq!(
        guarded("after", cache.get_with_async(1, async { 3 })).await,
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_loading_cache_loads_refreshes_and_serves_stale() {
    let clock = ManualClock::new();
    let version = Arc::new(AtomicUsize::new(0));
    let v2 = version.clone();
    let cache: AsyncLoadingCache<u32, usize> = Cache::builder()
        .time_to_live(Duration::from_secs(60))
        .refresh_after(Duration::from_secs(30))
        .stale_while_revalidate(Duration::from_secs(30))
        .clock(clock.clone())
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build_with_async_loader(move |_k: &u32| {
            let v = v2.fetch_add(1, Ordering::SeqCst);
            async move { v }
        });
    assert_eq!(cache.get(&1).await, 0);
    assert_eq!(cache.get(&1).await, 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(cache.get(&1).await, 0, "old value at once, refresh starts");
    guarded("refresh", async {
        while cache.cache().get(&1) != Some(1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert_eq!(cache.stats().refreshes, 1);
    // Past the TTL, inside the stale window: stale at once, then fresh.
    clock.advance(Duration::from_secs(70));
    assert_eq!(cache.get(&1).await, 1);
    guarded("revalidation", async {
        while cache.cache().get(&1) != Some(2) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn async_loading_cache_refreshes_without_a_spawner() {
    let clock = ManualClock::new();
    let version = Arc::new(AtomicUsize::new(0));
    let v2 = version.clone();
    let cache: AsyncLoadingCache<u32, usize> = Cache::builder()
        .refresh_after(Duration::from_secs(30))
        .clock(clock.clone())
        .build_with_async_loader(move |_k: &u32| {
            let v = v2.fetch_add(1, Ordering::SeqCst);
            async move { v }
        });
    assert_eq!(cache.get(&1).await, 0);
    clock.advance(Duration::from_secs(31));
    assert_eq!(cache.get(&1).await, 0);
    guarded("refresh on the built-in threads", async {
        while cache.cache().get(&1) != Some(1) {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn async_try_loader_shares_errors() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = calls.clone();
    let cache: AsyncLoadingCache<u32, u32, String> =
        Cache::builder().build_with_async_try_loader(move |k: &u32| {
            let k = *k;
            c2.fetch_add(1, Ordering::SeqCst);
            async move {
                if k == 0 {
                    Err("no row".to_string())
                } else {
                    Ok(k * 10)
                }
            }
        });
    assert_eq!(cache.try_get(&3).await, Ok(30));
    assert_eq!(*cache.try_get(&0).await.unwrap_err(), "no row");
    assert!(cache.try_get(&0).await.is_err(), "errors are not cached");
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_many_keys_one_load_each() {
    let cache: Cache<u32, u32> = Cache::new(1_000);
    let loads = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(64));
    let tasks: Vec<_> = (0..64)
        .map(|i| {
            let (cache, loads, start) = (cache.clone(), loads.clone(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                let mut sum = 0;
                for k in 0..100u32 {
                    let key = (k + i) % 100;
                    let loads = loads.clone();
                    sum += cache
                        .get_with_async(key, async move {
                            loads.fetch_add(1, Ordering::SeqCst);
                            tokio::task::yield_now().await;
                            key
                        })
                        .await;
                }
                sum
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(guarded("task", t).await.unwrap(), (0..100).sum::<u32>());
    }
    assert_eq!(loads.load(Ordering::SeqCst), 100);
}

/// The backend defences (issue 13) on the async paths: waiter timeouts,
/// load slots, early refresh and stale-if-error.
mod defences {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    #[derive(Debug, PartialEq)]
    enum DbError {
        Timeout,
        Down,
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_task_gives_up_on_a_hung_load_after_the_timeout() {
        let cache: Cache<u32, u32> = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| DbError::Timeout)
            .build();
        let release = Arc::new(Notify::new());
        let (started_tx, started_rx) = oneshot::channel();
        let leader = {
            let (cache, release) = (cache.clone(), release.clone());
            // An infallible leader: not bounded by the timeout.
            tokio::spawn(async move {
                cache
                    .get_with_async(1, async move {
                        started_tx.send(()).unwrap();
                        release.notified().await;
                        7
                    })
                    .await
            })
        };
        started_rx.await.unwrap();
        guarded("timed-out waiters", async {
            // An infallible verb: its own load, not stored.
            let start = Instant::now();
            assert_eq!(cache.get_with_async(1, async { 8 }).await, 8);
            assert!(start.elapsed() >= Duration::from_millis(50));
            // A try_ verb with a registered timeout error: that error.
            let r = cache
                .try_get_with_async(1, async { Err::<u32, _>(DbError::Down) })
                .await;
            assert_eq!(*r.unwrap_err(), DbError::Timeout);
            // A thread on the same flight gives up too.
            let c2 = cache.clone();
            let t = std::thread::spawn(move || c2.get_with(1, || 9));
            assert_eq!(t.join().unwrap(), 9);
        })
        .await;
        assert_eq!(cache.stats().load_timeouts, 3);
        assert_eq!(cache.get(&1), None, "own loads are not stored");
        release.notify_one();
        assert_eq!(guarded("leader", leader).await.unwrap(), 7);
        assert_eq!(cache.get(&1), Some(7));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn without_a_timeout_a_task_waits_for_the_load() {
        let cache: Cache<u32, u32> = Cache::new(10);
        let release = Arc::new(Notify::new());
        let leader = {
            let (cache, release) = (cache.clone(), release.clone());
            tokio::spawn(async move {
                cache
                    .get_with_async(1, async move {
                        release.notified().await;
                        7
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let waiter = {
            let cache = cache.clone();
            tokio::spawn(async move { cache.get_with_async(1, async { 8 }).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        release.notify_one();
        assert_eq!(guarded("waiter", waiter).await.unwrap(), 7);
        assert_eq!(leader.await.unwrap(), 7);
        assert_eq!(cache.stats().load_timeouts, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_and_threads_share_the_load_limit() {
        let cache: Cache<u32, u32> = Cache::builder().max_concurrent_loads(2).build();
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let loads = Arc::new(AtomicUsize::new(0));
        let enter = {
            let (running, peak, loads) = (running.clone(), peak.clone(), loads.clone());
            move || {
                loads.fetch_add(1, Ordering::SeqCst);
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
            }
        };
        let mut tasks = Vec::new();
        for i in 0..32u32 {
            let (cache, running, enter) = (cache.clone(), running.clone(), enter.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_with_async(i % 12, async move {
                        enter();
                        tokio::time::sleep(Duration::from_millis(3)).await;
                        running.fetch_sub(1, Ordering::SeqCst);
                        i % 12
                    })
                    .await
            }));
        }
        let threads: Vec<_> = (0..2u32)
            .map(|t| {
                let (cache, running, enter) = (cache.clone(), running.clone(), enter.clone());
                std::thread::spawn(move || {
                    for k in 0..6u32 {
                        let key = 100 + t * 10 + k;
                        let v = cache.get_with(key, || {
                            enter();
                            std::thread::sleep(Duration::from_millis(2));
                            running.fetch_sub(1, Ordering::SeqCst);
                            key
                        });
                        assert_eq!(v, key);
                    }
                })
            })
            .collect();
        guarded("the tasks", async {
            for (i, t) in tasks.into_iter().enumerate() {
                assert_eq!(t.await.unwrap(), i as u32 % 12);
            }
        })
        .await;
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 2, "peak {peak:?}");
        assert_eq!(loads.load(Ordering::SeqCst), 12 + 12, "one load per key");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_loader_future_that_loads_other_keys_shares_its_slot() {
        let cache: Cache<u32, u32> = Cache::builder().max_concurrent_loads(1).build();
        let c2 = cache.clone();
        let v = guarded("nested loads under a limit of 1", async {
            cache
                .get_with_async(1, async move {
                    let a = c2.get_with_async(2, async { 20 }).await;
                    let b = c2.get_with(3, || 30); // blocking, inside the poll
                    a + b
                })
                .await
        })
        .await;
        assert_eq!(v, 50);
        // A task waiting in line, then dropped, leaves the line.
        let gate = Arc::new(Notify::new());
        let holder = {
            let (cache, gate) = (cache.clone(), gate.clone());
            tokio::spawn(async move {
                cache
                    .get_with_async(10, async move {
                        gate.notified().await;
                        1
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        let queued = tokio::time::timeout(
            Duration::from_millis(20),
            cache.get_with_async(11, async { 2 }),
        )
        .await;
        assert!(queued.is_err(), "no slot while 10 loads");
        gate.notify_one();
        assert_eq!(guarded("holder", holder).await.unwrap(), 1);
        assert_eq!(
            guarded("after", cache.get_with_async(11, async { 2 })).await,
            2
        );
    }

    #[tokio::test]
    async fn the_async_verbs_refresh_early() {
        let clock = ManualClock::new();
        let ttl = Duration::from_secs(100);
        let cache: Cache<u32, u32> = Cache::builder()
            .time_to_live(ttl)
            .early_refresh(1000.0)
            .clock(clock.clone())
            .build();
        let trials = 50;
        for k in 0..trials {
            let c = clock.clone();
            cache
                .get_with_async(k, async move {
                    c.advance(Duration::from_secs(1)); // delta = 1 s
                    0
                })
                .await;
            // 1 s left: p = exp(-1 / 1000), about 1.
            clock.advance(ttl - Duration::from_secs(1));
            let v = cache.get_with_async(k, async { 1 }).await;
            assert!(v <= 1);
        }
        let early = cache.stats().early_refreshes;
        assert!(early >= 45 && early <= trials as u64, "{early} early");
        // Far from expiry: never.
        let fresh: Cache<u32, u32> = Cache::builder()
            .time_to_live(ttl)
            .early_refresh(1.0)
            .clock(clock.clone())
            .build();
        let c = clock.clone();
        fresh
            .get_with_async(1, async move {
                c.advance(Duration::from_secs(1));
                0
            })
            .await;
        for _ in 0..1000 {
            assert_eq!(fresh.get_with_async(1, async { 1 }).await, 0);
        }
        assert_eq!(fresh.stats().early_refreshes, 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_loading_cache_refreshes_early_on_its_spawner() {
        let clock = ManualClock::new();
        let version = Arc::new(AtomicUsize::new(0));
        let (v2, c2) = (version.clone(), clock.clone());
        let cache: AsyncLoadingCache<u32, usize> = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .early_refresh(1000.0)
            .clock(clock.clone())
            .spawner(|task| {
                tokio::spawn(task);
            })
            .build_with_async_loader(move |_k: &u32| {
                c2.advance(Duration::from_millis(10));
                let v = v2.fetch_add(1, Ordering::SeqCst);
                async move { v }
            });
        assert_eq!(cache.get(&1).await, 0);
        clock.advance(Duration::from_secs(5));
        let mut reads = 0;
        while cache.stats().early_refreshes == 0 {
            assert!(cache.get(&1).await <= 1, "the old value at once");
            reads += 1;
            assert!(reads < 100);
        }
        guarded("early refresh", async {
            while cache.cache().get(&1) != Some(1) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }

    struct Backend {
        fail: AtomicBool,
        hang: Notify,
        hanging: AtomicBool,
        calls: AtomicUsize,
    }

    fn backend() -> Arc<Backend> {
        Arc::new(Backend {
            fail: AtomicBool::new(false),
            hang: Notify::new(),
            hanging: AtomicBool::new(false),
            calls: AtomicUsize::new(0),
        })
    }

    impl Backend {
        async fn load(&self, k: u32) -> Result<u32, String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) as u32;
            // Made before the flag is read: a `notify_waiters` between the
            // read and the `notified()` call would otherwise be missed, and
            // the load would hang.
            let released = self.hang.notified();
            if self.hanging.load(Ordering::SeqCst) {
                released.await;
            }
            if self.fail.load(Ordering::SeqCst) {
                return Err("backend down".into());
            }
            Ok(k * 100 + n)
        }

        /// Waits (30 s at most) until `load` has been called `n` times: a
        /// load handed to the spawner starts when its task is first polled,
        /// which a busy machine can delay past a short timeout.
        async fn wait_for_calls(&self, n: usize) {
            guarded("the spawned load's call", async {
                while self.calls.load(Ordering::SeqCst) < n {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
            .await;
        }
    }

    /// An `AsyncLoadingCache` over `b` with a 10 s TTL, a 60 s
    /// stale-if-error window and, if given, a load timeout; refreshes on
    /// tokio.
    fn stale_if_error_cache(
        clock: &ManualClock,
        b: &Arc<Backend>,
        timeout: Option<Duration>,
    ) -> AsyncLoadingCache<u32, u32, String> {
        let mut builder = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(60))
            .clock(clock.clone())
            .spawner(|task| {
                tokio::spawn(task);
            });
        if let Some(t) = timeout {
            builder = builder.load_timeout(t);
        }
        let b = b.clone();
        builder.build_with_async_try_loader(move |k: &u32| {
            let (b, k) = (b.clone(), *k);
            async move { b.load(k).await }
        })
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn async_loading_cache_serves_stale_if_error() {
        let (clock, b) = (ManualClock::new(), backend());
        let cache = stale_if_error_cache(&clock, &b, None);
        assert_eq!(cache.try_get(&1).await, Ok(100));
        // Past the TTL, healthy: the reader gets the reloaded value.
        clock.advance(Duration::from_secs(11));
        assert_eq!(cache.try_get(&1).await, Ok(101));
        // Failing: the expired value, then no new call within 1 s.
        clock.advance(Duration::from_secs(11));
        b.fail.store(true, Ordering::SeqCst);
        assert_eq!(cache.try_get(&1).await, Ok(101));
        assert_eq!(cache.try_get(&1).await, Ok(101));
        assert_eq!(b.calls.load(Ordering::SeqCst), 3);
        assert_eq!(cache.stats().stale_served, 2);
        // Past the window: the error.
        clock.advance(Duration::from_secs(61));
        assert_eq!(*cache.try_get(&1).await.unwrap_err(), "backend down");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_hung_async_stale_reload_is_waited_for_at_most_the_timeout() {
        let (clock, b) = (ManualClock::new(), backend());
        let cache = stale_if_error_cache(&clock, &b, Some(Duration::from_millis(50)));
        assert_eq!(cache.try_get(&1).await, Ok(100));
        clock.advance(Duration::from_secs(11));
        b.hanging.store(true, Ordering::SeqCst);
        let start = Instant::now();
        let got = guarded("stale read", cache.try_get(&1)).await;
        assert_eq!(got, Ok(100));
        assert!(start.elapsed() >= Duration::from_millis(50));
        let s = cache.stats();
        assert_eq!((s.load_timeouts, s.stale_served), (1, 1));
        // Still hung: stale at once, no second call (the reload's call is
        // made when the runtime gets to its task: waited for).
        assert_eq!(cache.try_get(&1).await, Ok(100));
        b.wait_for_calls(2).await;
        assert_eq!(b.calls.load(Ordering::SeqCst), 2);
        b.hanging.store(false, Ordering::SeqCst);
        b.hang.notify_waiters();
        guarded("the reload lands", async {
            while cache.cache().get(&1) != Some(101) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
    }

    #[tokio::test]
    async fn the_async_verbs_serve_stale_if_error() {
        let clock = ManualClock::new();
        let cache: Cache<u32, u32> = Cache::builder()
            .time_to_live(Duration::from_secs(10))
            .stale_if_error(Duration::from_secs(30))
            .clock(clock.clone())
            .build();
        let ok = |v| async move { Ok::<u32, &str>(v) };
        assert_eq!(cache.try_get_with_async(1, ok(1)).await, Ok(1));
        clock.advance(Duration::from_secs(15));
        let down = async { Err::<u32, &str>("down") };
        assert_eq!(cache.try_get_with_async(1, down).await, Ok(1), "stale");
        assert_eq!(cache.stats().stale_served, 1);
        clock.advance(Duration::from_secs(1)); // past the retry interval
        assert_eq!(cache.try_get_with_async(1, ok(2)).await, Ok(2));
        clock.advance(Duration::from_secs(41));
        let down = async { Err::<u32, &str>("down") };
        assert_eq!(
            *cache.try_get_with_async(1, down).await.unwrap_err(),
            "down"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_async_leader_is_bounded_by_the_timeout_too() {
        // A try_ verb's leader gives up, dropping (cancelling) its future.
        let cache: Cache<u32, u32> = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| DbError::Timeout)
            .build();
        let start = std::time::Instant::now();
        let never = std::future::pending::<Result<u32, DbError>>();
        let r = guarded("leader", cache.try_get_with_async(1, never)).await;
        assert_eq!(*r.unwrap_err(), DbError::Timeout);
        assert!(start.elapsed() >= Duration::from_millis(50));
        // The flight was abandoned: the next caller leads a fresh load.
        assert_eq!(
            cache
                .try_get_with_async(1, async { Ok::<_, DbError>(5) })
                .await,
            Ok(5)
        );
        // An AsyncLoadingCache hands the load to its spawner and waits at
        // most the timeout; the load goes on and lands.
        let b = backend();
        let b2 = b.clone();
        let loading: AsyncLoadingCache<u32, u32, String> = Cache::builder()
            .load_timeout(Duration::from_millis(50))
            .load_timeout_error(|| "timed out".to_string())
            .spawner(|task| {
                tokio::spawn(task);
            })
            .build_with_async_try_loader(move |k: &u32| {
                let (b, k) = (b2.clone(), *k);
                async move { b.load(k).await }
            });
        assert_eq!(loading.try_get(&1).await, Ok(100), "healthy");
        b.hanging.store(true, Ordering::SeqCst);
        let start = std::time::Instant::now();
        let r = guarded("bounded leader", loading.try_get(&2)).await;
        assert_eq!(*r.unwrap_err(), "timed out");
        assert!(start.elapsed() >= Duration::from_millis(50));
        // The load's call is made when the runtime gets to its task.
        b.wait_for_calls(2).await;
        assert_eq!(b.calls.load(Ordering::SeqCst), 2);
        b.hanging.store(false, Ordering::SeqCst);
        b.hang.notify_waiters();
        guarded("the load lands", async {
            while loading.cache().get(&2) != Some(201) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
        .await;
        assert_eq!(loading.stats().load_timeouts, 1);
    }
}
