#![cfg(loom)]
//! loom models of the Redis tier's fill guard (`src/tiers/redis/epochs.rs`,
//! included here as is) with a real one-shard cache: a fill of the L1 that
//! races with an invalidation never leaves the stale value behind. Redis is
//! modelled by an atomic (0: no value). Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom_tier
//! ```
//!
//! As in the tier, the fill runs inside the cache's own single flight
//! (`get_with`), and stores with `insert` (or takes the key out with
//! `remove`) from within it, so the flight itself stores nothing.

#[path = "../src/tiers/redis/epochs.rs"]
#[allow(dead_code)]
mod epochs;

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use epochs::Epochs;
use larder::{Cache, Policy};
use loom::sync::atomic::{AtomicU32, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

type Fixed = BuildHasherDefault<DefaultHasher>;

fn model(f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.max_branches = 50_000;
    builder.check(f);
}

fn cache() -> Cache<u32, u32, Fixed> {
    Cache::builder()
        .max_capacity(16)
        .shards(1)
        .seed(7)
        .policy(Policy::Lru)
        .hasher(Fixed::default())
        .build()
}

/// The tier's read path for key 1: snapshot, read Redis (or, when it has
/// no value, the database), guarded fill.
fn read_through(
    cache: &Cache<u32, u32, Fixed>,
    epochs: &Epochs,
    redis: &AtomicU32,
    db: &AtomicU32,
) -> u32 {
    cache.get_with(1, || {
        let s = epochs.snapshot(0);
        let v = match redis.load(SeqCst) {
            0 => db.load(SeqCst),
            v => v,
        };
        epochs.fill(
            s,
            || cache.insert(1, v),
            || {
                cache.remove(&1);
            },
        );
        v
    })
}

/// Another process updates the database, deletes the value in Redis, and
/// its invalidation arrives while this process fills from Redis:
/// afterwards the L1 holds the new value or nothing, never the old one.
#[test]
fn a_remote_invalidation_beats_a_racing_fill() {
    model(|| {
        let cache = cache();
        let epochs = Arc::new(Epochs::new(1));
        let redis = Arc::new(AtomicU32::new(10));
        let db = Arc::new(AtomicU32::new(10));
        let remote = {
            let (cache, epochs, redis, db) =
                (cache.clone(), epochs.clone(), redis.clone(), db.clone());
            thread::spawn(move || {
                db.store(20, SeqCst);
                redis.store(0, SeqCst); // DEL (published after it)
                epochs.bump(0); // the subscriber: bump, then remove
                cache.remove(&1);
            })
        };
        read_through(&cache, &epochs, &redis, &db);
        remote.join().unwrap();
        let left = cache.peek(&1);
        assert!(
            left.is_none() || left == Some(20),
            "a stale fill survived: {left:?}"
        );
    });
}

/// This process writes a new value while another of its threads fills
/// from Redis: the L1 ends with the new value or nothing, never the old.
#[test]
fn an_own_write_beats_a_racing_fill() {
    model(|| {
        let cache = cache();
        let epochs = Arc::new(Epochs::new(1));
        let redis = Arc::new(AtomicU32::new(10));
        let db = Arc::new(AtomicU32::new(10));
        let writer = {
            let (cache, epochs, redis, db) =
                (cache.clone(), epochs.clone(), redis.clone(), db.clone());
            thread::spawn(move || {
                db.store(20, SeqCst);
                redis.store(20, SeqCst); // the write script
                let s = epochs.bump_for_write(0);
                epochs.fill(
                    s,
                    || cache.insert(1, 20),
                    || {
                        cache.remove(&1);
                    },
                );
            })
        };
        read_through(&cache, &epochs, &redis, &db);
        writer.join().unwrap();
        let left = cache.peek(&1);
        assert!(left.is_none() || left == Some(20), "left {left:?}");
    });
}

/// The subscription is renewed (the L1 is dropped) while a fill runs that
/// read Redis before: the fill does not survive the drop.
#[test]
fn a_dropped_l1_stays_dropped() {
    model(|| {
        let cache = cache();
        let epochs = Arc::new(Epochs::new(1));
        let redis = Arc::new(AtomicU32::new(10));
        let read_before = Arc::new(AtomicU32::new(0));
        let filler = {
            let (cache, epochs, redis, read_before) = (
                cache.clone(),
                epochs.clone(),
                redis.clone(),
                read_before.clone(),
            );
            thread::spawn(move || {
                cache.get_with(1, || {
                    let s = epochs.snapshot(0);
                    let v = redis.load(SeqCst);
                    read_before.store(1, SeqCst);
                    epochs.fill(
                        s,
                        || cache.insert(1, v),
                        || {
                            cache.remove(&1);
                        },
                    );
                    v
                })
            })
        };
        // The subscriber: if the fill has read Redis by now, its value was
        // read while deaf and must go.
        let deaf_read = read_before.load(SeqCst) == 1;
        epochs.bump_all();
        cache.invalidate_all();
        filler.join().unwrap();
        if deaf_read {
            assert_eq!(cache.peek(&1), None, "a fill from before the drop survived");
        }
    });
}
