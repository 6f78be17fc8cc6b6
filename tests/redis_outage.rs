//! A private redis-server killed and restarted under a running tier:
//! reads never fail, the subscription comes back by itself, and nothing
//! invalidated during the outage is served after it. Needs REDIS_URL set
//! (the signal that Redis tests run) and redis-server on PATH.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::redis::{RedisTier, TieredCache};
use larder::Cache;
use redis_support as support;

type Db = Arc<Mutex<HashMap<u64, String>>>;

fn cache(url: &str, ns: &str, db: &Db) -> TieredCache<u64, String> {
    let db = db.clone();
    Cache::builder()
        .time_to_live(Duration::from_secs(600))
        .build_tiered(
            RedisTier::builder(url)
                .namespace(ns)
                .backoff(Duration::from_millis(20), Duration::from_millis(200))
                .ping_interval(Duration::from_millis(200))
                .build()
                .unwrap(),
            move |k: &u64| db.lock().unwrap().get(k).cloned().unwrap_or_default(),
        )
}

#[test]
fn outage_reads_keep_working_and_nothing_stale_survives_it() {
    let Some(mut server) = support::Server::start("outage") else {
        return;
    };
    let url = server.url();
    let db: Db = Arc::new(Mutex::new(
        (0..50).map(|k| (k, format!("old{k}"))).collect(),
    ));
    let a = cache(&url, "fleet", &db);
    let b = cache(&url, "fleet", &db);
    for k in 0..50 {
        assert_eq!(a.get(&k), format!("old{k}"));
        assert_eq!(b.get(&k), format!("old{k}"));
    }

    // Readers run all along; every read must give a value from the db.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        for c in [&a, &b] {
            let stop = &stop;
            let db = &db;
            s.spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let k = n % 50;
                    let v = c.get(&k);
                    assert!(v.starts_with("old") || v.starts_with("new"), "{v}");
                    let _ = db;
                    n += 1;
                }
            });
        }

        server.kill();
        assert!(support::eventually(Duration::from_secs(5), || !a
            .is_subscribed()
            && !b.is_subscribed()));
        // During the outage, `b` writes the database and invalidates.
        for k in 0..10 {
            db.lock().unwrap().insert(k, format!("new{k}"));
            b.invalidate(&k);
        }
        std::thread::sleep(Duration::from_millis(300));
        server.restart();
        assert!(support::eventually(Duration::from_secs(10), || a
            .is_subscribed()
            && b.is_subscribed()));
        stop.store(true, Ordering::Relaxed);
    });

    // Nothing invalidated during the outage is served after it.
    for k in 0..10 {
        assert_eq!(a.get(&k), format!("new{k}"));
        assert_eq!(b.get(&k), format!("new{k}"));
    }
    for k in 10..50 {
        assert_eq!(a.get(&k), format!("old{k}"));
    }
    let (sa, sb) = (a.tier_stats(), b.tier_stats());
    for s in [sa, sb] {
        assert!(s.subscriptions >= 2, "{s:?}");
        assert!(s.subscriptions_lost >= 1, "{s:?}");
        assert!(s.l1_drops >= 2, "{s:?}");
        assert!(s.l2_errors + s.l2_skipped >= 1, "{s:?}");
    }
    // The invalidations `b` could not send are sent once Redis is back.
    assert!(
        support::eventually(Duration::from_secs(5), || b.tier_stats().repairs == 10),
        "{:?}",
        b.tier_stats()
    );

    // Invalidation works again after the outage.
    db.lock().unwrap().insert(20, "newer".into());
    a.invalidate(&20);
    assert!(support::eventually(Duration::from_secs(2), || b
        .get_if_present(&20)
        .is_none()));
    assert_eq!(b.get(&20), "newer");
}

#[test]
fn an_unsent_invalidation_makes_the_writer_skip_the_tier_for_that_key() {
    // Redis survives but `b` cannot reach it: Redis still holds the old
    // value when `b` invalidates, so `b` must not read it back from there
    // (the invalidation is replayed once `b` reaches Redis again).
    let Some(server) = support::Server::start("partition") else {
        return;
    };
    let db: Db = Arc::new(Mutex::new(HashMap::from([(1, "old".to_string())])));
    let a = cache(&server.url(), "part", &db);
    assert_eq!(a.get(&1), "old");
    // `b` points at a dead port: its invalidation cannot be sent.
    let dead = format!("redis://127.0.0.1:{}/", support::free_port());
    let b = cache(&dead, "part", &db);
    db.lock().unwrap().insert(1, "new".into());
    b.invalidate(&1);
    assert_eq!(b.get(&1), "new", "b's own reads skip the tier for that key");
    assert_eq!(b.tier_stats().repairs, 0);
    assert_eq!(a.get(&1), "old", "a never heard: the fleet is split");
}

#[test]
fn an_l1_hit_sends_nothing_to_redis() {
    let Some(server) = support::Server::start("no_network") else {
        return;
    };
    let db: Db = Arc::new(Mutex::new((0..10).map(|k| (k, format!("v{k}"))).collect()));
    let d = db.clone();
    let c: TieredCache<u64, String> = Cache::builder().build_tiered(
        RedisTier::builder(server.url())
            .namespace("quiet")
            .ping_interval(Duration::from_secs(3600))
            .build()
            .unwrap(),
        move |k: &u64| d.lock().unwrap().get(k).cloned().unwrap_or_default(),
    );
    for k in 0..10 {
        c.get(&k);
    }
    let mut raw = support::raw(&server.url());
    let mut processed = || -> u64 {
        let info: String = redis::cmd("INFO").arg("stats").query(&mut raw).unwrap();
        info.lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    let before = processed();
    for _ in 0..1000 {
        for k in 0..10 {
            assert_eq!(c.get(&k), format!("v{k}"));
        }
    }
    // Only our own two INFO calls in between.
    assert_eq!(processed() - before, 1);
    c.cache().remove(&3);
    let before = processed();
    assert_eq!(c.get(&3), "v3");
    assert!(processed() - before >= 2, "an L1 miss asks Redis");
}

/// A Redis that stops answering (CLIENT PAUSE: connections stay open, no
/// reply comes) is a slow or partitioned Redis: reads fall back to the
/// loader within the command timeout, the quiet subscription's PING goes
/// unanswered so the L1 is dropped, and everything comes back after.
#[test]
fn an_unresponsive_redis_is_timed_out_and_the_deaf_l1_dropped() {
    let Some(server) = support::Server::start("paused") else {
        return;
    };
    let db: Db = Arc::new(Mutex::new((0..10).map(|k| (k, format!("v{k}"))).collect()));
    let d = db.clone();
    let c: TieredCache<u64, String> = Cache::builder().build_tiered(
        RedisTier::builder(server.url())
            .namespace("paused")
            .ping_interval(Duration::from_millis(100))
            .backoff(Duration::from_millis(20), Duration::from_millis(100))
            .build()
            .unwrap(),
        move |k: &u64| d.lock().unwrap().get(k).cloned().unwrap_or_default(),
    );
    for k in 0..5 {
        c.get(&k);
    }
    let mut raw = support::raw(&server.url());
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query(&mut raw)
        .unwrap();
    // A cold key: Redis does not answer, the loader does. (A reply after
    // the 3 s pause would have been a success; the error is the 100 ms
    // command timeout.)
    assert_eq!(c.get(&7), "v7");
    assert!(c.tier_stats().l2_errors >= 1);
    // The subscription's PING goes unanswered: deaf, so the L1 is dropped.
    // (The loss is counted once the drop is done; the flag turns first.)
    assert!(support::eventually(Duration::from_millis(2500), || {
        c.tier_stats().subscriptions_lost >= 1
    }));
    assert!(!c.is_subscribed());
    assert!(c.get_if_present(&1).is_none(), "the deaf L1 was dropped");
    // After the pause: subscribed again, and Redis is used again.
    assert!(support::eventually(Duration::from_secs(10), || c.is_subscribed()));
    let hits = c.tier_stats().l2_hits;
    c.cache().invalidate_all();
    assert_eq!(c.get(&0), "v0");
    assert!(support::eventually(Duration::from_secs(5), || {
        c.cache().remove(&0);
        c.get(&0);
        c.tier_stats().l2_hits > hits
    }));
}
