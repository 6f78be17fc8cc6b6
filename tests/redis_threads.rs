//! The subscriber thread of every `TieredCache` stops after its last
//! clone is dropped (alone in its test binary, so no other test's threads
//! are counted). Needs REDIS_URL.
#![cfg(feature = "redis")]

mod redis_support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::redis::{RedisTier, TieredCache};
use larder::Cache;
use redis_support as support;

fn cache(url: &str) -> TieredCache<u64, String> {
    let db: Arc<Mutex<HashMap<u64, String>>> = Arc::default();
    Cache::builder().build_tiered(
        RedisTier::builder(url)
            .namespace("threads")
            .build()
            .unwrap(),
        move |k: &u64| db.lock().unwrap().get(k).cloned().unwrap_or_default(),
    )
}

#[test]
fn threads_and_connections_end_when_the_cache_is_dropped() {
    let Some(server) = support::Server::start("threads") else {
        return;
    };
    let url = server.url();
    let mut raw = support::raw(&url);
    let mut clients = || {
        let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut raw).unwrap();
        list.lines().count()
    };
    assert_eq!(clients(), 1, "just this test's connection");
    let tasks = || {
        std::fs::read_dir("/proc/self/task")
            .map(|d| d.count())
            .unwrap_or(0)
    };
    let named = || {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter(|t| {
                let comm = t.as_ref().unwrap().path().join("comm");
                std::fs::read_to_string(comm).is_ok_and(|c| c.starts_with("larder-redis"))
            })
            .count()
    };
    if tasks() == 0 {
        eprintln!("SKIPPED thread count: no /proc");
        return;
    }
    let caches: Vec<_> = (0..5).map(|_| cache(&url)).collect();
    for (i, c) in caches.iter().enumerate() {
        for k in 0..20 {
            c.get(&k);
        }
        c.insert(i as u64, "x".into());
    }
    assert!(named() >= 5);
    // A build waits for its subscription only for the connect and command
    // timeouts (350 ms by default), which a loaded machine can outlast: the
    // subscriptions are polled for.
    assert!(
        support::eventually(Duration::from_secs(5), || clients() >= 11),
        "{} connections: 5 subscriptions, 5 pooled, this one",
        clients()
    );
    let clones: Vec<_> = caches.to_vec();
    drop(caches);
    std::thread::sleep(Duration::from_millis(300));
    assert!(named() >= 5, "clones keep the subscriber alive");
    drop(clones);
    assert!(
        support::eventually(Duration::from_secs(5), || named() == 0),
        "{} subscriber threads left",
        named()
    );
    assert!(
        support::eventually(Duration::from_secs(5), || clients() == 1),
        "{} connections left",
        clients()
    );
}
