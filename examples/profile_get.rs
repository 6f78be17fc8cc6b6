//! A small, steady load for a profiler: the `read100` or `evict_heavy`
//! workload of `benches/throughput.rs`, or the `mixed90_10` one of
//! `benches/expiry.rs`, on one contender, for a fixed time.
//!
//! ```text
//! cargo build --profile bench --example profile_get
//! perf record -g --call-graph dwarf target/release/examples/profile_get read 2 5 larder-WTinyLfu
//! perf report --no-children
//! ```
//!
//! Arguments (all optional, in order): workload `read` | `evict` | `mixed`
//! | `update` (default `read`; `mixed` updates every tenth key instead of
//! reading it, `update` every key), threads (default 2), seconds (default 5), contender
//! `larder-<Policy>` | `quick_cache` | `map` | `map-indexed` (default
//! `larder-WTinyLfu`). The last two are reference layouts, not caches (no
//! eviction, nothing recorded on a hit), 64 shards of a `parking_lot`
//! `RwLock` each: `map` a hashbrown map holding the entries in its
//! buckets, `map-indexed` a table of `u32` indices into a `Vec` of entries,
//! the two-level layout larder's shards (and quick_cache's) use.
//! It prints the throughput it reached and the miss ratio. Environment:
//! `KEY_BITS=n` sets the key space to 2^n keys (default 20);
//! `HOT=1` turns hot-key tracking on (`track_hot_keys`).
//! `HASH_SEED=n` fixes larder's hasher seed (default: random per run),
//! so that the same keys are sampled by W-TinyLFU's window simulations
//! from run to run (their cost per operation depends on which hot keys
//! are sampled).
//! `OPS=n` stops each thread after n operations instead of after the
//! given seconds (Mops/s is then meaningless; for instruction counts:
//! `valgrind --tool=cachegrind` at two values of n, and the difference of
//! the totals over the difference of the op counts is the cost of one
//! operation, setup excluded).
//! `SEED=n` fixes larder's hasher and policy seeds (repeatable counts;
//! `HASH_SEED` wins over it for the hasher).
//! `SHARDS=n` sets larder's shard count; `FILL=hottest` fills the `read`
//! workload's cache hottest key first (default: coldest first); `TTL=1` gives larder caches a
//! one-hour time to live on the default clock, `TTL=ticking` the same on a
//! `TickingClock`.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use larder::Policy;

/// Keys in each thread's precomputed stream (a power of two).
const STREAM_LEN: usize = 1 << 20;
/// Operations between two looks at the stop flag.
const CHUNK: usize = 4096;

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{key_of, Contender, IndexedMap, ShardedMap, SplitMix64, Zipf};

/// log2 of the key space: `KEY_BITS` from the environment, else 20
/// (1,048,576 keys).
fn key_bits() -> u32 {
    std::env::var("KEY_BITS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Operations per thread: `OPS` from the environment, else unlimited (the
/// run is timed).
fn ops_limit() -> u64 {
    std::env::var("OPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(u64::MAX)
}

/// A Zipf(1.0) stream over the key space, drawn and scattered as the
/// throughput bench draws its keys.
fn zipf_stream(zipf: &Zipf, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    (0..STREAM_LEN)
        .map(|_| key_of(zipf.sample(&mut rng), key_bits()))
        .collect()
}

/// Fills or warms `cache`, then runs the workload on `threads` threads for
/// `secs` seconds; prints Mops/s and the miss ratio.
/// Shards of the reference layouts.
const MAP_SHARDS: usize = 64;

fn run<C: Contender>(cache: &C, work: Work, threads: usize, secs: u64, streams: &[Vec<u64>]) {
    let evict = work == Work::Evict;
    let mixed = work == Work::Mixed;
    let update = work == Work::Update;
    if evict {
        for &k in &streams[0] {
            if cache.get(k).is_none() {
                cache.insert(k, k);
            }
        }
    } else if std::env::var("FILL").as_deref() == Ok("hottest") {
        // Hottest rank first: what a cache whose capacity does not mean
        // what it says drops is then the hot keys.
        for rank in 0..1usize << key_bits() {
            let k = key_of(rank, key_bits());
            cache.insert(k, k);
        }
    } else {
        // Coldest rank first, as the bench does, so that a shard that
        // overflows drops cold keys.
        for rank in (0..1usize << key_bits()).rev() {
            let k = key_of(rank, key_bits());
            cache.insert(k, k);
        }
    }
    let stop = AtomicBool::new(false);
    let barrier = Barrier::new(threads + 1);
    // `OPS=n`: each thread stops after n operations (rounded up to whole
    // chunks) instead of after `secs`, for instruction counts per operation
    // that do not depend on the machine's speed.
    let limit = ops_limit();
    let (ops, misses) = thread::scope(|s| {
        let handles: Vec<_> = streams
            .iter()
            .map(|keys| {
                let (stop, barrier) = (&stop, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    let (mut ops, mut misses, mut pos) = (0u64, 0u64, 0usize);
                    while !stop.load(Ordering::Relaxed) && ops < limit {
                        for _ in 0..CHUNK {
                            let k = keys[pos & (STREAM_LEN - 1)];
                            pos += 1;
                            if update || (mixed && pos % 10 == 9) {
                                cache.insert(k, k);
                            } else if black_box(cache.get(k)).is_none() {
                                misses += 1;
                                if evict {
                                    cache.insert(k, k);
                                }
                            }
                        }
                        ops += CHUNK as u64;
                    }
                    (ops, misses)
                })
            })
            .collect();
        barrier.wait();
        if limit == u64::MAX {
            thread::sleep(Duration::from_secs(secs));
            stop.store(true, Ordering::Relaxed);
        }
        handles
            .into_iter()
            .map(|h| h.join().expect("worker panicked"))
            .fold((0, 0), |(a, b), (c, d)| (a + c, b + d))
    });
    println!(
        "{:.2} Mops/s, miss ratio {:.4} ({ops} ops)",
        ops as f64 / secs as f64 / 1e6,
        misses as f64 / ops as f64
    );
}

/// The workload to run.
#[derive(Clone, Copy, PartialEq)]
enum Work {
    Read,
    Evict,
    Mixed,
    Update,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, default: &str| args.get(i).cloned().unwrap_or_else(|| default.into());
    let work = match arg(0, "read").as_str() {
        "read" => Work::Read,
        "evict" => Work::Evict,
        "mixed" => Work::Mixed,
        "update" => Work::Update,
        other => panic!("workload must be read, evict, mixed or update, not {other:?}"),
    };
    let threads: usize = arg(1, "2").parse().expect("threads");
    let secs: u64 = arg(2, "5").parse().expect("seconds");
    let contender = arg(3, "larder-WTinyLfu");
    let capacity = if work == Work::Evict {
        (1u64 << key_bits()) / 10
    } else {
        1u64 << key_bits()
    };
    let zipf = Zipf::new(1 << key_bits(), 1.0);
    let streams: Vec<Vec<u64>> = (0..threads)
        .map(|t| zipf_stream(&zipf, 0x1A2D_E200 + t as u64))
        .collect();
    let started = Instant::now();
    if contender == "map" {
        run(&ShardedMap::new(MAP_SHARDS), work, threads, secs, &streams);
    } else if contender == "map-indexed" {
        run(&IndexedMap::new(MAP_SHARDS), work, threads, secs, &streams);
    } else if contender == "quick_cache" {
        let cache = quick_cache::sync::Cache::<u64, u64>::new(capacity as usize);
        run(&cache, work, threads, secs, &streams);
    } else {
        let name = contender.strip_prefix("larder-").unwrap_or(&contender);
        let policy: Policy = name.parse().expect("policy");
        let mut builder = larder::Cache::<u64, u64>::builder()
            .max_capacity(capacity)
            .policy(policy);
        if let Some(n) = std::env::var("SHARDS").ok().and_then(|s| s.parse().ok()) {
            builder = builder.shards(n);
        }
        // Fixed seeds: instruction counts that repeat from run to run (the
        // random hasher moves them by up to 40: it decides which hot keys
        // the window simulations sample). `SEED` fixes the hasher and the
        // policy's seed, `HASH_SEED` the hasher only.
        let env_seed = |name| std::env::var(name).ok().and_then(|s| s.parse::<u64>().ok());
        if let Some(seed) = env_seed("SEED") {
            builder = builder.seed(seed);
        }
        if let Some(seed) = env_seed("HASH_SEED").or(env_seed("SEED")) {
            builder = builder.hasher(ahash::RandomState::with_seeds(seed, 1, 2, 3));
        }
        if std::env::var_os("HOT").is_some() {
            builder = builder.track_hot_keys();
        }
        match std::env::var("TTL").as_deref() {
            Ok("ticking") => {
                builder = builder
                    .time_to_live(Duration::from_secs(3600))
                    .clock(larder::TickingClock::new());
            }
            Ok(_) => builder = builder.time_to_live(Duration::from_secs(3600)),
            Err(_) => {}
        }
        let cache = builder.build();
        run(&cache, work, threads, secs, &streams);
    }
    eprintln!("total {:.1} s", started.elapsed().as_secs_f64());
}
