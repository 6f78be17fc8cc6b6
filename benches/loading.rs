//! Loading benchmarks, side by side in one run (a plain `harness = false`
//! main, about 15 s):
//!
//! ```text
//! cargo bench --bench loading
//! ```
//!
//! 1. **Stampede.** 16 threads wait at a barrier, then all ask for the same
//!    missing key; the loader sleeps 50 ms. For larder `Cache::get_with`,
//!    larder `LoadingCache::get` and moka's sync `Cache::get_with`: how many
//!    times the loader ran, and the wall time from the barrier until the
//!    last thread has its value, as a multiple of the loader's 50 ms.
//!    Bar (issue 4): the loader runs once, all threads return within 1.2x.
//!    Best, median and worst of 7 rounds, a fresh key each round.
//! 2. **Hit cost.** One thread reading keys that are present (1,024 of
//!    them, cycled, in a cache of 10,000): `get` against a `get_with` whose
//!    loader never runs, measured alternately (and `LoadingCache::get`,
//!    with and without refresh configured, a `get` on a cache with a time
//!    to live, which also reads the clock as refresh does, and moka's
//!    `get` / `get_with` for reference). Bar: a `get_with` hit costs at
//!    most 1.2x a `get` hit. Median ns per read over 9 alternating rounds
//!    of 2^21 reads.

use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use larder::{Cache, LoadingCache};

/// Threads in the stampede.
const THREADS: usize = 16;
/// How long the loader takes.
const LOAD: Duration = Duration::from_millis(50);
/// Stampede rounds per contender.
const ROUNDS: usize = 7;
/// Keys present in the hit benchmark, and reads per measurement.
const HOT_KEYS: u64 = 1024;
const READS: u64 = 1 << 21; // 2,097,152
/// Measurements per variant in the hit benchmark.
const HIT_ROUNDS: usize = 9;

/// One stampede: `THREADS` threads call `get(key)` at once. Returns the
/// wall time until the last one returned.
fn stampede(get: impl Fn(u64) -> u64 + Send + Sync + Clone + 'static, key: u64) -> Duration {
    let gate = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|_| {
            let (gate, get) = (gate.clone(), get.clone());
            thread::spawn(move || {
                gate.wait();
                let v = get(key);
                (v, Instant::now())
            })
        })
        .collect();
    let start = Instant::now();
    gate.wait();
    let mut last = start;
    for h in handles {
        let (v, done) = h.join().unwrap();
        assert_eq!(v, key * 2, "every thread gets the loaded value");
        last = last.max(done);
    }
    last - start
}

/// The loader: sleeps `LOAD`, counts its calls.
fn slow_double(calls: &AtomicUsize, key: u64) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    thread::sleep(LOAD);
    key * 2
}

struct Contender {
    name: &'static str,
    run: Box<dyn Fn(u64) -> Duration>,
    calls: Arc<AtomicUsize>,
    times: Vec<Duration>,
}

fn stampedes() {
    println!(
        "1. Stampede: {THREADS} threads, one missing key, a {} ms loader",
        LOAD.as_millis()
    );
    let larder_calls = Arc::new(AtomicUsize::new(0));
    let loading_calls = Arc::new(AtomicUsize::new(0));
    let moka_calls = Arc::new(AtomicUsize::new(0));
    let larder: Cache<u64, u64> = Cache::new(10_000);
    let loading: LoadingCache<u64, u64> = {
        let calls = loading_calls.clone();
        Cache::builder()
            .max_capacity(10_000)
            .build_with_loader(move |k: &u64| slow_double(&calls, *k))
    };
    let moka: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    let mut contenders = vec![
        Contender {
            name: "larder Cache::get_with",
            run: {
                let (cache, calls) = (larder.clone(), larder_calls.clone());
                Box::new(move |key| {
                    let (cache, calls) = (cache.clone(), calls.clone());
                    stampede(move |k| cache.get_with(k, || slow_double(&calls, k)), key)
                })
            },
            calls: larder_calls,
            times: Vec::new(),
        },
        Contender {
            name: "larder LoadingCache::get",
            run: {
                let cache = loading.clone();
                Box::new(move |key| {
                    let cache = cache.clone();
                    stampede(move |k| cache.get(&k), key)
                })
            },
            calls: loading_calls,
            times: Vec::new(),
        },
        Contender {
            name: "moka sync Cache::get_with",
            run: {
                let (cache, calls) = (moka.clone(), moka_calls.clone());
                Box::new(move |key| {
                    let (cache, calls) = (cache.clone(), calls.clone());
                    stampede(move |k| cache.get_with(k, || slow_double(&calls, k)), key)
                })
            },
            calls: moka_calls,
            times: Vec::new(),
        },
    ];
    for round in 0..ROUNDS {
        for c in contenders.iter_mut() {
            let key = 1_000 + round as u64; // missing in every cache
            c.times.push((c.run)(key));
        }
    }
    println!(
        "   {:<27} {:>13} {:>9} {:>9} {:>9} {:>8}",
        "", "loader calls", "best", "median", "worst", "bar 1.2x"
    );
    for c in &mut contenders {
        c.times.sort();
        let calls = c.calls.load(Ordering::SeqCst);
        let ratio = |d: Duration| d.as_secs_f64() / LOAD.as_secs_f64();
        let worst = ratio(*c.times.last().unwrap());
        let ok = calls == ROUNDS && worst <= 1.2;
        println!(
            "   {:<27} {:>6} / {:<4} {:>8.3}x {:>8.3}x {:>8.3}x {:>8}",
            c.name,
            calls,
            ROUNDS,
            ratio(c.times[0]),
            ratio(c.times[ROUNDS / 2]),
            worst,
            if ok { "met" } else { "MISSED" }
        );
    }
    println!("   (loader calls: total over {ROUNDS} rounds, one per round is single flight)\n");
}

/// Median ns per read of each variant, measured alternately.
fn hits() {
    println!(
        "2. Hit cost: one thread, {HOT_KEYS} present keys cycled, {READS} reads per measurement"
    );
    let cache: Cache<u64, u64> = Cache::new(10_000);
    let loading: LoadingCache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .build_with_loader(|k: &u64| *k);
    let refreshing: LoadingCache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .refresh_after(Duration::from_secs(3600))
        .build_with_loader(|k: &u64| *k);
    let expiring: Cache<u64, u64> = Cache::builder()
        .max_capacity(10_000)
        .time_to_live(Duration::from_secs(3600))
        .build();
    let moka: moka::sync::Cache<u64, u64> = moka::sync::Cache::new(10_000);
    for k in 0..HOT_KEYS {
        cache.insert(k, k);
        expiring.insert(k, k);
        loading.get(&k);
        refreshing.get(&k);
        moka.insert(k, k);
    }
    type Read = Box<dyn Fn(u64) -> u64>;
    let variants: Vec<(&str, Read)> = vec![
        ("larder Cache::get", {
            let c = cache.clone();
            Box::new(move |k| c.get(&k).unwrap())
        }),
        ("larder Cache::get_with", {
            let c = cache.clone();
            Box::new(move |k| c.get_with(k, || unreachable!("present")))
        }),
        ("larder LoadingCache::get", {
            let c = loading.clone();
            Box::new(move |k| c.get(&k))
        }),
        ("  ... with refresh_after", {
            let c = refreshing.clone();
            Box::new(move |k| c.get(&k))
        }),
        ("larder get, with a TTL", {
            let c = expiring.clone();
            Box::new(move |k| c.get(&k).unwrap())
        }),
        ("moka Cache::get", {
            let c = moka.clone();
            Box::new(move |k| c.get(&k).unwrap())
        }),
        ("moka Cache::get_with", {
            let c = moka.clone();
            Box::new(move |k| c.get_with(k, || unreachable!("present")))
        }),
    ];
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
    for _ in 0..HIT_ROUNDS {
        for (i, (_, read)) in variants.iter().enumerate() {
            let start = Instant::now();
            let mut sum = 0u64;
            for n in 0..READS {
                sum = sum.wrapping_add(read(black_box(n % HOT_KEYS)));
            }
            black_box(sum);
            samples[i].push(start.elapsed().as_nanos() as f64 / READS as f64);
        }
    }
    let medians: Vec<f64> = samples
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            s[s.len() / 2]
        })
        .collect();
    for (i, (name, _)) in variants.iter().enumerate() {
        let vs_get = medians[i] / medians[0];
        println!(
            "   {name:<27} {:>7.1} ns/read {:>6.2}x larder get",
            medians[i], vs_get
        );
    }
    let ratio = medians[1] / medians[0];
    println!(
        "   get_with hit / get hit = {ratio:.2}x (bar <= 1.2x: {})",
        if ratio <= 1.2 { "met" } else { "MISSED" }
    );
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to parse.
    stampedes();
    hits();
}
