//! Throughput of each eviction policy, with its hit ratio printed beside it.
//!
//! Dimensions:
//! * policies: every [`Policy`] (`Policy::ALL`), default sharding, one
//!   thread;
//! * workloads, both over a key space of [`KEYS`] (100,000) keys with the
//!   cache at 10% of it ([`CAPACITY`], 10,000 entries):
//!   - `zipf-0.9`: keys drawn from Zipf(0.9) over the key space;
//!   - `scan-polluted`: bursts of [`HOT_BURST`] (20,000) Zipf(0.9)
//!     accesses to a hot set of [`HOT_KEYS`] (8,000) keys, each followed by
//!     a one-pass scan of [`SCAN_LEN`] (20,000) keys from the rest of the
//!     key space (each scan key is used once per 92,000 scan accesses);
//! * operation: get-or-insert (`if get(k).is_none() { insert(k, ()) }`)
//!   over a pre-generated trace of [`TRACE_LEN`] (1 million) accesses, on
//!   a cache warmed by one pass of the same trace; one criterion element
//!   is one access, an iteration replays [`CHUNK`] (100,000) of them.
//!
//! The hit ratio of each policy on each workload (measured on the second
//! pass of the trace) is printed once, before the timings: criterion
//! measures time, the ratio shows what that time buys. Hit ratios on real
//! traces are the simulator's job (`examples/simulate.rs`).
//!
//! `cargo bench --bench policies` runs in about a minute (short warm-up and
//! measurement times; 16 benchmarks).

use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use larder::{Cache, Policy};

/// Size of the key space.
const KEYS: u64 = 100_000;
/// Cache capacity: 10% of the key space.
const CAPACITY: u64 = KEYS / 10; // 10,000
/// Accesses in a generated trace.
const TRACE_LEN: usize = 1_000_000;
/// Accesses replayed per benchmark iteration.
const CHUNK: usize = 100_000;
/// Zipf exponent of both workloads.
const ZIPF_S: f64 = 0.9;
/// Keys in the scan-polluted workload's hot set.
const HOT_KEYS: u64 = 8_000;
/// Hot accesses between two scans.
const HOT_BURST: usize = 20_000;
/// Keys in one scan.
const SCAN_LEN: usize = 20_000;

/// A xorshift64* generator: small, fast and good enough for workloads.
struct Rng(u64);

impl Rng {
    /// A generator seeded with `seed` (made odd, never zero).
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    /// The next 64 random bits.
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Zipf(s) over ranks `0..n` (rank 0 the most popular), by inverting a
/// precomputed cumulative distribution with a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s`.
    fn new(n: u64, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut sum = 0.0;
        for rank in 1..=n {
            sum += 1.0 / (rank as f64).powf(s);
            cdf.push(sum);
        }
        for c in &mut cdf {
            *c /= sum;
        }
        Self { cdf }
    }

    /// One rank.
    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.next_f64();
        self.cdf.partition_point(|&c| c < u).min(self.cdf.len() - 1) as u64
    }
}

/// Scatters ranks over the `u64` space so that popular keys are not
/// neighbours (a bijection: multiplication by an odd constant).
fn key(rank: u64) -> u64 {
    rank.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Zipf(0.9) over the whole key space.
fn zipf_trace() -> Vec<u64> {
    let zipf = Zipf::new(KEYS, ZIPF_S);
    let mut rng = Rng::new(1);
    (0..TRACE_LEN).map(|_| key(zipf.sample(&mut rng))).collect()
}

/// Hot Zipf bursts interleaved with one-pass scans of the cold keys.
fn scan_trace() -> Vec<u64> {
    let zipf = Zipf::new(HOT_KEYS, ZIPF_S);
    let mut rng = Rng::new(2);
    let mut next_scan = 0u64;
    let mut trace = Vec::with_capacity(TRACE_LEN);
    while trace.len() < TRACE_LEN {
        for _ in 0..HOT_BURST {
            trace.push(key(zipf.sample(&mut rng)));
        }
        for _ in 0..SCAN_LEN {
            trace.push(key(HOT_KEYS + next_scan));
            next_scan = (next_scan + 1) % (KEYS - HOT_KEYS);
        }
    }
    trace.truncate(TRACE_LEN);
    trace
}

/// A cache of [`CAPACITY`] entries with `policy` and default sharding.
fn cache(policy: Policy) -> Cache<u64, ()> {
    Cache::builder()
        .max_capacity(CAPACITY)
        .policy(policy)
        .seed(7)
        .build()
}

/// Get-or-insert over `keys`; returns the hits.
fn replay(cache: &Cache<u64, ()>, keys: &[u64]) -> u64 {
    let mut hits = 0;
    for &k in keys {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, ());
        }
    }
    hits
}

/// Prints the hit ratios, then times every policy on both workloads.
fn policies(c: &mut Criterion) {
    let workloads = [("zipf-0.9", zipf_trace()), ("scan-polluted", scan_trace())];

    println!("hit ratio, second pass of {TRACE_LEN} accesses, capacity {CAPACITY} of {KEYS} keys:");
    println!(
        "| workload | {} |",
        Policy::ALL.map(|p| p.name()).join(" | ")
    );
    println!("|---|{}", "---:|".repeat(Policy::ALL.len()));
    for (name, trace) in &workloads {
        let ratios: Vec<String> = Policy::ALL
            .iter()
            .map(|&p| {
                let cache = cache(p);
                replay(&cache, trace);
                let hits = replay(&cache, trace);
                format!("{:.3}", hits as f64 / trace.len() as f64)
            })
            .collect();
        println!("| {name} | {} |", ratios.join(" | "));
    }

    for (name, trace) in &workloads {
        let mut group = c.benchmark_group(format!("policies/{name}"));
        group
            .throughput(Throughput::Elements(CHUNK as u64))
            .sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for policy in Policy::ALL {
            let cache = cache(policy);
            replay(&cache, trace);
            let mut chunks = trace.chunks(CHUNK).cycle();
            group.bench_function(BenchmarkId::from_parameter(policy.name()), |b| {
                b.iter(|| {
                    let chunk = chunks.next().expect("cycle never ends");
                    black_box(replay(&cache, chunk))
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, policies);
criterion_main!(benches);
