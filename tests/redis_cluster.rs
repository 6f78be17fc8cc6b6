//! The Redis tier on a three-master Redis Cluster: keys and their leases
//! in one slot, reads, the lease, and invalidations across nodes. Needs
//! REDIS_CLUSTER_URLS (comma-separated node URLs).
#![cfg(feature = "redis")]

mod redis_support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use larder::redis::{RedisTier, TieredCache};
use larder::Cache;
use redis::Commands;
use redis_support as support;

fn cache(urls: &[String], ns: &str, loads: &Arc<AtomicUsize>) -> TieredCache<String, String> {
    let l = loads.clone();
    Cache::builder()
        .time_to_live(Duration::from_secs(60))
        .build_tiered(
            RedisTier::cluster_builder(urls.to_vec())
                .namespace(ns)
                .command_timeout(Duration::from_millis(500))
                .build()
                .unwrap(),
            move |k: &String| {
                l.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(50));
                format!("v-{k}")
            },
        )
}

#[test]
fn cluster_read_path_lease_and_invalidation() {
    let Some(urls) = support::cluster_urls("cluster") else {
        return;
    };
    let ns = support::namespace("cluster");
    let loads = Arc::new(AtomicUsize::new(0));
    let a = cache(&urls, &ns, &loads);
    let b = cache(&urls, &ns, &loads);
    let c = cache(&urls, &ns, &loads);
    assert!(a.tier().is_cluster());
    assert!(a.is_subscribed() && b.is_subscribed() && c.is_subscribed());

    // Many keys, so every master holds some; the empty key too.
    let keys: Vec<String> = std::iter::once(String::new())
        .chain((0..60).map(|i| format!("key{i}")))
        .chain(["{", "}", "a}b"].map(String::from))
        .collect();
    for k in &keys {
        assert_eq!(a.get(k), format!("v-{k}"));
    }
    assert_eq!(loads.load(Ordering::SeqCst), keys.len());
    for k in &keys {
        let before = loads.load(Ordering::SeqCst);
        assert_eq!(b.get(k), format!("v-{k}"), "from Redis");
        assert_eq!(
            loads.load(Ordering::SeqCst),
            before,
            "{k:?}: {:?} {:?}",
            a.tier_stats(),
            b.tier_stats()
        );
    }
    assert_eq!(loads.load(Ordering::SeqCst), keys.len());
    assert_eq!(b.tier_stats().l2_hits, keys.len() as u64);
    assert_eq!(b.tier_stats().l2_errors, 0);

    // The values are spread over the masters.
    let mut holding = 0;
    for u in &urls {
        let mut raw = support::raw(u);
        let n: usize = redis::cmd("DBSIZE").query(&mut raw).unwrap();
        holding += usize::from(n > 0);
    }
    assert_eq!(holding, urls.len(), "every master holds keys");

    // Invalidations reach the others, whichever node each listens on.
    for k in &keys[..20] {
        c.insert(k.clone(), format!("new-{k}"));
    }
    for k in &keys[..20] {
        for t in [&a, &b] {
            assert!(support::eventually(Duration::from_secs(2), || t
                .get_if_present(k)
                .map_or(true, |v| v == format!("new-{k}"))));
            assert_eq!(t.get(k), format!("new-{k}"));
        }
    }
    a.invalidate(&keys[1]);
    assert!(support::eventually(Duration::from_secs(2), || b
        .get_if_present(&keys[1])
        .is_none()));

    // One load in the fleet for a cold key.
    let before = loads.load(Ordering::SeqCst);
    let barrier = Arc::new(Barrier::new(12));
    std::thread::scope(|s| {
        for i in 0..12 {
            let t = [&a, &b, &c][i % 3];
            let barrier = barrier.clone();
            s.spawn(move || {
                barrier.wait();
                assert_eq!(t.get(&"cold".to_string()), "v-cold");
            });
        }
    });
    assert_eq!(loads.load(Ordering::SeqCst), before + 1);

    // The stored value carries its TTL.
    let client = redis::cluster::ClusterClient::new(urls.clone()).unwrap();
    let mut con = client.get_connection().unwrap();
    let pttl: i64 = con.pttl(format!("{ns}:{{cold}}")).unwrap();
    assert!(pttl > 0 && pttl <= 60_000, "{pttl}");
}
