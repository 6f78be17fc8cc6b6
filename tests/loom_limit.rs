#![cfg(loom)]
//! loom model of the concurrent-load limit (`max_concurrent_loads`): the
//! fair semaphore (src/sync/slots.rs) meeting the single-flight protocol,
//! through the public API on a one-shard cache. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom_limit
//! ```
//!
//! Checked in every interleaving: never more loader calls at once than the
//! limit (a high-water mark kept inside the loaders), one loader call per
//! key (callers of a key being loaded join it and take no slot), every
//! caller gets its value, and nothing hangs (loom fails on a deadlock, so
//! a lost wake-up of a thread queued for a slot would show).

use std::collections::hash_map::DefaultHasher;
use std::hash::BuildHasherDefault;

use larder::{Cache, Policy};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

type Fixed = BuildHasherDefault<DefaultHasher>;

fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.max_branches = 50_000;
    builder.check(f);
}

fn cache(limit: usize) -> Cache<u32, u32, Fixed> {
    Cache::builder()
        .max_capacity(16)
        .shards(1)
        .policy(Policy::Lru)
        .hasher(Fixed::default())
        .max_concurrent_loads(limit)
        .build()
}

/// Counts loader calls running at once.
#[derive(Default)]
struct Meter {
    running: AtomicUsize,
    peak: AtomicUsize,
    calls: AtomicUsize,
}

impl Meter {
    fn load(&self, key: u32) -> u32 {
        self.calls.fetch_add(1, SeqCst);
        let now = self.running.fetch_add(1, SeqCst) + 1;
        self.peak.fetch_max(now, SeqCst);
        thread::yield_now();
        self.running.fetch_sub(1, SeqCst);
        key * 10
    }
}

/// Two keys, three callers, one slot: the two loads never overlap, the
/// key asked for twice loads once, everyone is answered.
#[test]
fn one_slot_two_keys_three_callers() {
    model(3, || {
        let cache = cache(1);
        let meter = Arc::new(Meter::default());
        let threads: Vec<_> = [1u32, 2, 1]
            .into_iter()
            .map(|key| {
                let (cache, meter) = (cache.clone(), meter.clone());
                thread::spawn(move || cache.get_with(key, || meter.load(key)))
            })
            .collect();
        for (t, key) in threads.into_iter().zip([1u32, 2, 1]) {
            assert_eq!(t.join().unwrap(), key * 10);
        }
        assert_eq!(meter.peak.load(SeqCst), 1, "two loads overlapped");
        // Key 1 loads once, unless its second caller came after the first
        // load had completed and found the value (then still once).
        assert_eq!(meter.calls.load(SeqCst), 2);
    });
}

/// A loader that loads another key through the cache runs it under its
/// own slot: no deadlock with a limit of one, and a second thread queued
/// for the slot still gets it.
#[test]
fn nested_load_under_one_slot() {
    model(3, || {
        let cache = cache(1);
        let meter = Arc::new(Meter::default());
        let outer = {
            let (cache, meter) = (cache.clone(), meter.clone());
            thread::spawn(move || {
                let inner = cache.clone();
                cache.get_with(1, move || inner.get_with(2, || meter.load(2)) + 1)
            })
        };
        let other = {
            let (cache, meter) = (cache.clone(), meter.clone());
            thread::spawn(move || cache.get_with(3, || meter.load(3)))
        };
        assert_eq!(outer.join().unwrap(), 21);
        assert_eq!(other.join().unwrap(), 30);
        assert_eq!(meter.peak.load(SeqCst), 1);
    });
}

/// A task and a thread in the one line for a single slot (feature
/// `async`): the task awaits its slot without blocking its thread, its
/// waker is woken when the thread's load frees the slot (or the other way
/// round), the loads never overlap, and nothing is left waiting.
#[cfg(feature = "async")]
#[test]
fn a_task_and_a_thread_share_one_slot() {
    model(3, || {
        let cache = cache(1);
        let meter = Arc::new(Meter::default());
        let task = {
            let (cache, meter) = (cache.clone(), meter.clone());
            thread::spawn(move || {
                loom::future::block_on(cache.get_with_async(1, async move { meter.load(1) }))
            })
        };
        let thread = {
            let (cache, meter) = (cache.clone(), meter.clone());
            thread::spawn(move || cache.get_with(2, || meter.load(2)))
        };
        assert_eq!(task.join().unwrap(), 10);
        assert_eq!(thread.join().unwrap(), 20);
        assert_eq!(meter.peak.load(SeqCst), 1, "two loads overlapped");
        assert_eq!(meter.calls.load(SeqCst), 2);
    });
}
