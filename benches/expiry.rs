//! What expiration costs: larder with and without a time to live, and moka
//! with the same time to live, side by side.
//!
//! Dimensions:
//!
//! | dimension  | values                                                         |
//! |------------|----------------------------------------------------------------|
//! | key space  | 2^16 and 2^20 `u64` keys, Zipf(1.0), capacity = key space,     |
//! |            | pre-filled with every key (coldest first)                      |
//! | workload   | `read100`: 100% `get`; `mixed90_10`: 90% `get`, 10% `insert`   |
//! |            | (an update: resets the entry's TTL)                            |
//! | threads    | 1, 2 (`std::thread::scope`, a fixed op count per thread)       |
//! | contender  | `larder` (no expiry); `larder-ttl`: `.time_to_live(1 h)` on    |
//! |            | the default monotonic clock, so time advances naturally;       |
//! |            | `larder-ttl-ticking`: the same on a `TickingClock` (a thread   |
//! |            | stores the time every 1 ms; a read is one atomic load);        |
//! |            | `larder-ttl-manual`: the same on a `ManualClock` that a        |
//! |            | background thread moves 10 ms every 1 ms (10x real time, so    |
//! |            | the wheel crosses a 1.07 s tick about every 0.1 s of the run); |
//! |            | `moka-ttl`: `moka::sync::Cache` with `.time_to_live(1 h)`;     |
//! |            | in the ratio table only, `larder-ttl-precise`: the same on     |
//! |            | `PreciseClock` (an `Instant` read per operation)               |
//!
//! Every entry carries the TTL; none expires during the run (at 10x, the
//! manual clock moves about 30 min in a full run), so all contenders do the
//! same hits and the difference is the cost of keeping deadlines: reading
//! the clock, comparing a deadline on every read, rescheduling on every
//! update, and advancing the wheel during maintenance.
//!
//! Keys come from each thread's precomputed stream (generation is not
//! timed); throughput is in elements = operations over all threads
//! (`Throughput::Elements`), one iteration being [`OPS_PER_ITER`] operations
//! per thread. The time of a batch is the slowest thread's.
//!
//! After criterion (`cargo bench --bench expiry`), a fixed-op loop times the
//! contenders again, interleaved round by round in this one process, and
//! prints the ratios the acceptance bar names (larder-ttl / larder >= 0.8x,
//! larder-ttl / moka-ttl >= 2x): on a shared machine only ratios measured
//! side by side mean anything. Set `LARDER_BENCH_NO_TABLE` to skip it.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use larder::ManualClock;

/// Key spaces, as log2.
const KEY_BITS: [u32; 2] = [16, 20];
/// Keys in each thread's precomputed stream (a power of two).
const STREAM_LEN: usize = 1 << 20;
/// Operations per thread in one criterion iteration.
const OPS_PER_ITER: usize = 1024;
/// Most threads a workload runs with.
const MAX_THREADS: usize = 2;
/// The time to live every contender with expiry uses: 1 h.
const TTL: Duration = Duration::from_secs(3600);
/// How far the background thread moves a `ManualClock` per step, and how
/// long it sleeps between steps (10x real time).
const MANUAL_STEP: Duration = Duration::from_millis(10);
const MANUAL_SLEEP: Duration = Duration::from_millis(1);

#[path = "support/workload.rs"]
mod workload;
use workload::{key_of, Contender, SplitMix64, Zipf};

/// Per key space, one stream of `STREAM_LEN` keys per thread.
fn streams(bits: u32) -> &'static [Vec<u64>] {
    static STREAMS: OnceLock<Vec<Vec<Vec<u64>>>> = OnceLock::new();
    let all = STREAMS.get_or_init(|| {
        KEY_BITS
            .iter()
            .map(|&bits| {
                let zipf = Zipf::new(1 << bits, 1.0);
                (0..MAX_THREADS)
                    .map(|t| {
                        let mut rng = SplitMix64(0xE8B1_2E00 + t as u64);
                        (0..STREAM_LEN)
                            .map(|_| key_of(zipf.sample(&mut rng), bits))
                            .collect()
                    })
                    .collect()
            })
            .collect()
    });
    &all[KEY_BITS
        .iter()
        .position(|&b| b == bits)
        .expect("a known key space")]
}

// ---------------------------------------------------------------------------
// Contenders (the trait and the plain caches' impls are in support/).

/// A larder cache on a `ManualClock` that a background thread advances
/// while this value lives.
struct Advancing {
    cache: larder::Cache<u64, u64>,
    stop: Arc<AtomicBool>,
    ticker: Option<thread::JoinHandle<()>>,
}

impl Advancing {
    fn new(capacity: u64) -> Self {
        let clock = ManualClock::new();
        let cache = larder::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(TTL)
            .clock(clock.clone())
            .build();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let ticker = thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                clock.advance(MANUAL_STEP);
                thread::sleep(MANUAL_SLEEP);
            }
        });
        Self {
            cache,
            stop,
            ticker: Some(ticker),
        }
    }
}

impl Drop for Advancing {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.ticker.take() {
            t.join().expect("ticker thread panicked");
        }
    }
}

impl Contender for Advancing {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.cache.get(&key)
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.cache.insert(key, value)
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Larder,
    LarderTtl,
    LarderTtlTicking,
    LarderTtlManual,
    MokaTtl,
    LarderTtlPrecise,
}

const KINDS: [Kind; 5] = [
    Kind::Larder,
    Kind::LarderTtl,
    Kind::LarderTtlTicking,
    Kind::LarderTtlManual,
    Kind::MokaTtl,
];

/// The ratio table also shows `PreciseClock` (nanosecond expiry, an
/// `Instant` read per operation), to show what the default coarse clock
/// saves; criterion skips it to keep the run short.
const TABLE_KINDS: [Kind; 6] = [
    Kind::Larder,
    Kind::LarderTtl,
    Kind::LarderTtlTicking,
    Kind::LarderTtlManual,
    Kind::MokaTtl,
    Kind::LarderTtlPrecise,
];

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Larder => "larder",
            Kind::LarderTtl => "larder-ttl",
            Kind::LarderTtlTicking => "larder-ttl-ticking",
            Kind::LarderTtlManual => "larder-ttl-manual",
            Kind::MokaTtl => "moka-ttl",
            Kind::LarderTtlPrecise => "larder-ttl-precise",
        }
    }
}

/// A built contender of any kind.
enum Built {
    Larder(larder::Cache<u64, u64>),
    Advancing(Advancing),
    Moka(moka::sync::Cache<u64, u64>),
}

impl Built {
    fn new(kind: Kind, capacity: u64) -> Self {
        match kind {
            Kind::Larder => Built::Larder(larder::Cache::new(capacity)),
            Kind::LarderTtl => Built::larder_ttl(capacity, None::<larder::PreciseClock>),
            Kind::LarderTtlTicking => {
                Built::larder_ttl(capacity, Some(larder::TickingClock::new()))
            }
            Kind::LarderTtlManual => Built::Advancing(Advancing::new(capacity)),
            Kind::LarderTtlPrecise => {
                Built::larder_ttl(capacity, Some(larder::PreciseClock::new()))
            }
            Kind::MokaTtl => Built::Moka(
                moka::sync::Cache::builder()
                    .max_capacity(capacity)
                    .time_to_live(TTL)
                    .build(),
            ),
        }
    }

    /// A larder cache giving every entry the one-hour TTL, on `clock`
    /// (`None`: the default clock). Generic, not boxed, so the cache sees
    /// the clock's own type, as a user's cache would.
    fn larder_ttl<C: larder::Clock>(capacity: u64, clock: Option<C>) -> Self {
        let builder = larder::Cache::builder()
            .max_capacity(capacity)
            .time_to_live(TTL);
        Built::Larder(match clock {
            Some(clock) => builder.clock(clock).build(),
            None => builder.build(),
        })
    }

    /// Runs `f` on the concrete contender (monomorphised per type).
    fn with<R>(&self, f: impl Job<R>) -> R {
        match self {
            Built::Larder(c) => f.run(c),
            Built::Advancing(c) => f.run(c),
            Built::Moka(c) => f.run(c),
        }
    }
}

/// Generic work over a contender.
trait Job<R> {
    fn run<C: Contender>(self, cache: &C) -> R;
}

// ---------------------------------------------------------------------------
// Workloads.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    Read100,
    Mixed90,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Read100 => "read100",
            Workload::Mixed90 => "mixed90_10",
        }
    }
}

/// Fills a cache with every key of the key space, coldest first (a shard
/// that overflows drops cold keys, never the hottest).
struct Prepare(u32);

impl Job<()> for Prepare {
    fn run<C: Contender>(self, cache: &C) {
        for rank in (0..1usize << self.0).rev() {
            let key = key_of(rank, self.0);
            cache.insert(key, key);
        }
    }
}

#[inline(never)]
fn run_ops<C: Contender>(
    cache: &C,
    workload: Workload,
    keys: &[u64],
    offset: usize,
    ops: usize,
) -> u64 {
    let mask = keys.len() - 1;
    let mut misses = 0;
    match workload {
        Workload::Read100 => {
            for i in 0..ops {
                let key = keys[(offset + i) & mask];
                misses += u64::from(black_box(cache.get(key)).is_none());
            }
        }
        Workload::Mixed90 => {
            for i in 0..ops {
                let key = keys[(offset + i) & mask];
                if i % 10 == 9 {
                    cache.insert(key, key);
                } else {
                    misses += u64::from(black_box(cache.get(key)).is_none());
                }
            }
        }
    }
    misses
}

/// `ops` operations on each of `threads` threads from `offset` of their
/// streams; returns the slowest thread's time and the total misses.
struct Run {
    workload: Workload,
    bits: u32,
    threads: usize,
    ops: usize,
    offset: usize,
}

impl Job<(Duration, u64)> for Run {
    fn run<C: Contender>(self, cache: &C) -> (Duration, u64) {
        let barrier = Barrier::new(self.threads);
        let streams = streams(self.bits);
        thread::scope(|s| {
            let handles: Vec<_> = (0..self.threads)
                .map(|t| {
                    let barrier = &barrier;
                    let keys = &streams[t];
                    s.spawn(move || {
                        barrier.wait();
                        let start = Instant::now();
                        let m = run_ops(cache, self.workload, keys, self.offset, self.ops);
                        (start.elapsed(), m)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("bench thread panicked"))
                .fold((Duration::ZERO, 0), |(t, m), (dt, dm)| (t.max(dt), m + dm))
        })
    }
}

fn criterion_benches(c: &mut Criterion) {
    for bits in KEY_BITS {
        streams(bits);
        for kind in KINDS {
            // One cache per contender and key space, shared by both
            // workloads (mixed only updates keys that are present).
            let built = Built::new(kind, 1 << bits);
            built.with(Prepare(bits));
            for workload in [Workload::Read100, Workload::Mixed90] {
                let mut group = c.benchmark_group(format!("expiry/{}/2^{bits}", workload.name()));
                group
                    .sample_size(10)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(2));
                let cursor = AtomicUsize::new(0);
                for threads in 1..=MAX_THREADS {
                    group.throughput(Throughput::Elements((OPS_PER_ITER * threads) as u64));
                    group.bench_with_input(
                        BenchmarkId::new(kind.name(), format!("{threads}t")),
                        &threads,
                        |b, &threads| {
                            b.iter_custom(|iters| {
                                let ops = iters as usize * OPS_PER_ITER;
                                let offset = cursor.fetch_add(ops, Ordering::Relaxed);
                                built
                                    .with(Run {
                                        workload,
                                        bits,
                                        threads,
                                        ops,
                                        offset,
                                    })
                                    .0
                            })
                        },
                    );
                }
                group.finish();
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The same-process ratio table.

/// Interleaved rounds; each cell reports its best round (5: with 3, one
/// lucky round of a baseline on this shared machine moved single ratios by
/// 0.1 between runs).
const RATIO_ROUNDS: usize = 5;
/// Operations per thread in one timed run (524,288; the whole bench then
/// stays under 6 minutes on 2 cores).
const RATIO_OPS: usize = 1 << 19;

fn ratio_table() {
    let workloads = [Workload::Read100, Workload::Mixed90];
    // best[bits][workload][threads-1][kind] = (Mops/s, miss ratio)
    let mut best = vec![[[[(0.0f64, 0.0f64); TABLE_KINDS.len()]; MAX_THREADS]; 2]; KEY_BITS.len()];
    for (b, &bits) in KEY_BITS.iter().enumerate() {
        let built: Vec<Built> = TABLE_KINDS
            .iter()
            .map(|&k| {
                let c = Built::new(k, 1 << bits);
                c.with(Prepare(bits));
                c
            })
            .collect();
        for round in 0..RATIO_ROUNDS {
            eprintln!(
                "ratio table: 2^{bits} keys, round {}/{RATIO_ROUNDS}",
                round + 1
            );
            for (w, &workload) in workloads.iter().enumerate() {
                for threads in 1..=MAX_THREADS {
                    for (k, cache) in built.iter().enumerate() {
                        let (elapsed, misses) = cache.with(Run {
                            workload,
                            bits,
                            threads,
                            ops: RATIO_OPS,
                            offset: round * RATIO_OPS,
                        });
                        let total = (threads * RATIO_OPS) as f64;
                        let mops = total / elapsed.as_secs_f64() / 1e6;
                        let cell = &mut best[b][w][threads - 1][k];
                        if mops > cell.0 {
                            *cell = (mops, misses as f64 / total);
                        }
                    }
                }
            }
        }
    }

    println!();
    println!(
        "## Same-process fixed-op loop ({RATIO_OPS} ops per thread, best of \
         {RATIO_ROUNDS} interleaved rounds), Mops/s (miss ratio)"
    );
    println!();
    print!("| keys | workload | threads |");
    for k in TABLE_KINDS {
        print!(" {} |", k.name());
    }
    println!(
        " ttl / no-ttl (>= 0.8x) | ticking / no-ttl (>= 0.8x) | manual / no-ttl \
         | precise / no-ttl | ttl / moka-ttl (>= 2x) | ticking / moka-ttl (>= 2x) |"
    );
    print!("|---|---|---:|");
    for _ in 0..TABLE_KINDS.len() + 6 {
        print!("---:|");
    }
    println!();
    let col = |kind: Kind| {
        TABLE_KINDS
            .iter()
            .position(|&k| k == kind)
            .expect("in the table")
    };
    // Worst ratio per clock: (ttl / no-ttl, ttl / moka-ttl).
    let mut worst_default = (f64::INFINITY, f64::INFINITY);
    let mut worst_ticking = (f64::INFINITY, f64::INFINITY);
    for (b, bits) in KEY_BITS.iter().enumerate() {
        for (w, workload) in workloads.iter().enumerate() {
            for threads in 1..=MAX_THREADS {
                let row = &best[b][w][threads - 1];
                print!("| 2^{bits} | {} | {threads} |", workload.name());
                for (mops, miss) in row {
                    print!(" {mops:.2} ({miss:.3}) |");
                }
                let mops = |kind: Kind| row[col(kind)].0;
                let base = mops(Kind::Larder);
                let moka = mops(Kind::MokaTtl);
                let ttl = mops(Kind::LarderTtl);
                let ticking = mops(Kind::LarderTtlTicking);
                worst_default = (
                    worst_default.0.min(ttl / base),
                    worst_default.1.min(ttl / moka),
                );
                worst_ticking = (
                    worst_ticking.0.min(ticking / base),
                    worst_ticking.1.min(ticking / moka),
                );
                println!(
                    " {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
                    ttl / base,
                    ticking / base,
                    mops(Kind::LarderTtlManual) / base,
                    mops(Kind::LarderTtlPrecise) / base,
                    ttl / moka,
                    ticking / moka,
                );
            }
        }
    }
    println!();
    let verdict = |ratio: f64, bar: f64| if ratio >= bar { "met" } else { "MISSED" };
    for (clock, worst) in [
        ("default clock", worst_default),
        ("TickingClock", worst_ticking),
    ] {
        println!(
            "Worst cells, {clock}: ttl / no-ttl = {:.2}x (bar >= 0.8x: {}), \
             ttl / moka-ttl = {:.2}x (bar >= 2x: {})",
            worst.0,
            verdict(worst.0, 0.8),
            worst.1,
            verdict(worst.1, 2.0),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then criterion runs each benchmark once and the table is skipped.
    let benching = std::env::args().any(|a| a == "--bench");
    let mut criterion = Criterion::default().configure_from_args();
    criterion_benches(&mut criterion);
    criterion.final_summary();
    if benching && std::env::var_os("LARDER_BENCH_NO_TABLE").is_none() {
        ratio_table();
    }
}
