//! The Redis tier's costs, side by side in one run (a plain
//! `harness = false` main, about 10 s):
//!
//! ```text
//! REDIS_URL=redis://127.0.0.1:6379/ cargo bench --features redis --bench tiered
//! ```
//!
//! 1. **L1 hit.** One thread, then two, reading 1,024 present `u64` keys
//!    (cycled, in a cache of 10,000): `TieredCache::get` against a plain
//!    `Cache::get` on the same table (the tier's own L1, from `cache()`),
//!    measured in rotation, 2^21 reads per thread per measurement, median
//!    of 9 rounds. Bar (issue 12): a `TieredCache` L1 hit costs at most
//!    1.1x a plain `Cache::get`. A separate plain `Cache` built alike (same
//!    hasher and seed, same keys) is timed too: its gap to the first shows
//!    how much heap placement alone moves a ratio on this machine.
//! 2. **L2 hit.** One thread: the key is dropped from the L1, then read
//!    (one script call to Redis, which has the value, and an L1 fill).
//!    Needs REDIS_URL; skipped without it.
//!
//! Without REDIS_URL the tier points at a closed port: the L1 hit path is
//! the same (it never touches the network), only the L2 row is missing.

use std::hint::black_box;
use std::time::Instant;

use larder::redis::{RedisTier, TieredCache};
use larder::Cache;

const HOT_KEYS: u64 = 1024;
const READS: u64 = 1 << 21;
const ROUNDS: usize = 9;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ns per read of `read` over `threads` threads.
fn measure(threads: usize, read: &(impl Fn(u64) -> u64 + Sync)) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            s.spawn(move || {
                let mut sum = 0u64;
                for n in 0..READS {
                    sum = sum.wrapping_add(read(black_box((n + t as u64 * 512) % HOT_KEYS)));
                }
                black_box(sum);
            });
        }
    });
    start.elapsed().as_nanos() as f64 / READS as f64
}

fn main() {
    let url = std::env::var("REDIS_URL").ok();
    let live = url.is_some();
    let url = url.unwrap_or_else(|| {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        format!("redis://127.0.0.1:{port}/")
    });
    println!(
        "Redis: {url} ({})",
        if live {
            "live"
        } else {
            "nothing listens: L1 rows only"
        }
    );
    let ns = format!("bench-{}", std::process::id());
    // One hasher for all three, so their tables are laid out alike.
    let hasher = ahash::RandomState::with_seeds(1, 2, 3, 4);
    let plain: Cache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .hasher(hasher.clone())
        .seed(7)
        .build();
    let tiered: TieredCache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .hasher(hasher)
        .seed(7)
        .build_tiered(
            RedisTier::builder(url.as_str())
                .namespace(ns)
                .build()
                .unwrap(),
            |k: &u64| *k,
        );
    for k in 0..HOT_KEYS {
        plain.insert(k, k);
        tiered.get(&k);
    }
    // The same table read both ways: `Cache::get` on the tier's own L1,
    // and `TieredCache::get`.
    let l1 = tiered.cache().clone();
    let before = tiered.tier_stats();

    println!("\n1. L1 hit: {HOT_KEYS} present keys cycled, {READS} reads per thread per measurement, median of {ROUNDS}");
    println!(
        "| threads | Cache::get on the L1 (ns/read) | TieredCache::get (ns/read) | ratio | bar <= 1.1x | a separate Cache::get, ratio |"
    );
    println!("|---:|---:|---:|---:|---|---:|");
    for threads in [1, 2] {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Rotate which goes first.
            for i in 0..3 {
                match (round + i) % 3 {
                    0 => a.push(measure(threads, &|k| l1.get(&k).unwrap())),
                    1 => b.push(measure(threads, &|k| tiered.get(&k))),
                    _ => c.push(measure(threads, &|k| plain.get(&k).unwrap())),
                }
            }
        }
        let (a, b, c) = (median(a), median(b), median(c));
        let r = b / a;
        println!(
            "| {threads} | {a:.1} | {b:.1} | {r:.3}x | {} | {:.3}x |",
            if r <= 1.1 { "met" } else { "MISSED" },
            c / a
        );
    }
    let after = tiered.tier_stats();
    assert_eq!(
        (
            after.l2_hits,
            after.l2_misses,
            after.l2_errors,
            after.l2_skipped
        ),
        (
            before.l2_hits,
            before.l2_misses,
            before.l2_errors,
            before.l2_skipped
        ),
        "an L1 hit touched Redis"
    );

    if !live {
        println!("\n2. L2 hit: skipped (set REDIS_URL)");
        return;
    }
    let n = 20_000u64;
    let mut times = Vec::with_capacity(n as usize);
    for i in 0..n {
        let k = i % HOT_KEYS;
        tiered.cache().remove(&k);
        let start = Instant::now();
        black_box(tiered.get(&k));
        times.push(start.elapsed());
    }
    times.sort_unstable();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let s = tiered.tier_stats();
    println!("\n2. L2 hit (L1 miss answered by Redis, one thread, {n} reads): p50 {:?}, p99 {:?}; {} L2 hits, {} errors", at(0.5), at(0.99), s.l2_hits - after.l2_hits, s.l2_errors);
}
