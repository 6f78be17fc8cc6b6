//! Heap bytes per entry of larder and its peers, counted by a global
//! allocator.
//!
//! Each contender is built with capacity 1,000,000 and filled with the keys
//! `0..1_000_000` (`u64 -> u64`). The live heap bytes it holds are divided
//! by the entries it actually kept (a sharded cache may evict a few keys
//! when its shards fill unevenly), and the 16-byte payload (key + value) is
//! subtracted for the overhead column.
//!
//! ```text
//! cargo run --release --example memory
//! ```

use std::num::NonZeroUsize;
use std::sync::atomic::Ordering;

use larder::Policy;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::LIVE;

/// Entries inserted, and the capacity of every cache.
const ENTRIES: u64 = 1_000_000;
/// Bytes of one entry's payload: a `u64` key and a `u64` value.
const PAYLOAD: f64 = 16.0;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Builds a structure with `build`, fills it with `fill`, and returns the
/// live heap bytes it holds and how many entries it reports keeping.
fn measure<T>(build: impl FnOnce() -> T, fill: impl FnOnce(&mut T) -> usize) -> (isize, usize) {
    let before = live();
    let mut value = build();
    let kept = fill(&mut value);
    let bytes = live() - before;
    drop(value);
    (bytes, kept)
}

fn main() {
    let mut rows: Vec<(String, isize, usize)> = Vec::new();

    for policy in Policy::ALL {
        let mut shards = 0;
        let (bytes, kept) = measure(
            || {
                larder::Cache::<u64, u64>::builder()
                    .max_capacity(ENTRIES)
                    .policy(policy)
                    .build()
            },
            |cache| {
                for k in 0..ENTRIES {
                    cache.insert(k, k);
                }
                shards = cache.shard_count();
                cache.len()
            },
        );
        rows.push((format!("larder {policy} ({shards} shards)"), bytes, kept));
    }

    let (bytes, kept) = measure(
        || quick_cache::sync::Cache::<u64, u64>::new(ENTRIES as usize),
        |cache| {
            for k in 0..ENTRIES {
                cache.insert(k, k);
            }
            cache.len()
        },
    );
    rows.push(("quick_cache::sync::Cache".into(), bytes, kept));

    let (bytes, kept) = measure(
        || moka::sync::Cache::<u64, u64>::new(ENTRIES),
        |cache| {
            for k in 0..ENTRIES {
                cache.insert(k, k);
            }
            cache.run_pending_tasks();
            cache.entry_count() as usize
        },
    );
    rows.push(("moka::sync::Cache".into(), bytes, kept));

    // `LruCache::put` needs `&mut`; the Mutex the bench puts around it
    // adds nothing on the heap, so it is measured bare.
    let (bytes, kept) = measure(
        || lru::LruCache::<u64, u64>::new(NonZeroUsize::new(ENTRIES as usize).expect("non-zero")),
        |cache| {
            for k in 0..ENTRIES {
                cache.put(k, k);
            }
            cache.len()
        },
    );
    rows.push(("lru::LruCache".into(), bytes, kept));

    // Reference: the plain map with no eviction, grown by inserting (no
    // `with_capacity`), as the sharded baseline in the bench is.
    let (bytes, kept) = measure(
        hashbrown::HashMap::<u64, u64, ahash::RandomState>::default,
        |map| {
            for k in 0..ENTRIES {
                map.insert(k, k);
            }
            map.len()
        },
    );
    rows.push(("hashbrown::HashMap (no eviction)".into(), bytes, kept));

    println!("Heap bytes per entry, u64 -> u64, capacity {ENTRIES}, keys 0..{ENTRIES}");
    println!();
    println!("| structure | entries kept | heap bytes | bytes/entry | beyond 16-byte payload |");
    println!("|---|---:|---:|---:|---:|");
    for (name, bytes, kept) in rows {
        let per = bytes as f64 / kept.max(1) as f64;
        println!(
            "| {name} | {kept} | {bytes} | {per:.1} | {:.1} |",
            per - PAYLOAD
        );
    }
}
