//! Side-by-side throughput of larder and its peers.
//!
//! Dimensions:
//!
//! | dimension  | values                                                        |
//! |------------|---------------------------------------------------------------|
//! | workload   | `read100`: 100% `get` on a cache pre-filled with every key    |
//! |            | `mixed90_10`: 90% `get`, 10% `insert` (same pre-filled cache) |
//! |            | `evict_heavy`: capacity 10% of the key space, `get` and       |
//! |            | `insert` on a miss                                            |
//! | threads    | 1, 2 (`std::thread::scope`, every thread a fixed op count)    |
//! | contender  | larder with each `Policy` (all six in `evict_heavy`, W-TinyLFU |
//! |            | and LRU elsewhere), `quick_cache::sync::Cache`,               |
//! |            | `moka::sync::Cache`, `lru::LruCache` behind a                 |
//! |            | `parking_lot::Mutex`, and a 16-shard                          |
//! |            | `RwLock<hashbrown::HashMap>` with no eviction (reference only, |
//! |            | not in `evict_heavy`, where it would just grow)               |
//!
//! Keys are `u64`s from a key space of 2^20, drawn from Zipf(1.0) (rank 1 is
//! the hottest) and scattered over the key space by a fixed bijection. Each
//! thread replays its own precomputed stream of 2^20 keys, so generating
//! keys is not timed; successive timing runs continue where the last one
//! stopped rather than replaying the same prefix. Values are `u64`. Every
//! contender uses its default hasher (what a user gets).
//!
//! Throughput is reported in elements = operations summed over all threads
//! (`Throughput::Elements`); one criterion iteration is [`OPS_PER_ITER`]
//! operations per thread. The time of a batch is the slowest thread's, from
//! a barrier to its last operation.
//!
//! After criterion, when run as `cargo bench`, the bench times the contenders
//! that the acceptance bar names once more in plain fixed-op loops,
//! interleaved round by round in this one process, and prints Mops/s and
//! ratios: on this shared 2-core machine only ratios measured side by side
//! mean anything. A second table runs each of larder W-TinyLFU,
//! quick_cache and moka on one thread, quiet and beside a busy neighbour (a
//! thread streaming through a 64 MiB buffer, as the application around a
//! cache uses the CPU caches too), side by side.
//! `LARDER_BENCH_ONLY=ratio` or `=neighbour` skips criterion and runs just
//! that table: `LARDER_BENCH_ONLY=neighbour cargo bench --bench throughput`.
//! `LARDER_BENCH_ROUNDS=n` sets the number of interleaved rounds (default
//! 5 and 3). Each ratio is printed twice: from each contender's best round
//! (what the tables always gave) and as the median and range of the ratios
//! of the two contenders' runs within each round, which ran back to back:
//! on a machine whose speed drifts from minute to minute the best rounds
//! of two contenders may come from different minutes, the paired ratios
//! do not.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use larder::Policy;
use parking_lot::Mutex;

/// log2 of the key space.
const KEY_BITS: u32 = 20;
/// Number of distinct keys (1,048,576).
const KEY_SPACE: usize = 1 << KEY_BITS;
/// Keys in each thread's precomputed stream (a power of two; 8 MiB each).
const STREAM_LEN: usize = 1 << 20;
/// Operations per thread in one criterion iteration.
const OPS_PER_ITER: usize = 1024;
/// Most threads a workload runs with.
const MAX_THREADS: usize = 2;
/// Capacity of the `evict_heavy` caches: 10% of the key space (104,857).
const EVICT_CAPACITY: u64 = KEY_SPACE as u64 / 10;
/// Shards of the reference `RwLock<HashMap>`.
const BASELINE_SHARDS: usize = 16;

#[path = "support/workload.rs"]
mod workload;
use workload::{key_of, Contender, ShardedMap, SplitMix64, Zipf};

/// One precomputed key stream per thread, built on first use.
fn streams() -> &'static [Vec<u64>] {
    static STREAMS: OnceLock<Vec<Vec<u64>>> = OnceLock::new();
    STREAMS.get_or_init(|| {
        let zipf = Zipf::new(KEY_SPACE, 1.0);
        (0..MAX_THREADS)
            .map(|t| {
                let mut rng = SplitMix64(0x1A2D_E200 + t as u64);
                (0..STREAM_LEN)
                    .map(|_| key_of(zipf.sample(&mut rng), KEY_BITS))
                    .collect()
            })
            .collect()
    })
}

/// `lru::LruCache` made shareable the usual way: one mutex around it.
struct MutexLru(Mutex<lru::LruCache<u64, u64>>);

impl Contender for MutexLru {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        self.0.lock().get(&key).copied()
    }
    #[inline]
    fn insert(&self, key: u64, value: u64) {
        self.0.lock().put(key, value);
    }
}

/// Which contender to build.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Larder(Policy),
    QuickCache,
    Moka,
    Lru,
    Baseline,
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Larder(p) => format!("larder-{p}"),
            Kind::QuickCache => "quick_cache".into(),
            Kind::Moka => "moka".into(),
            Kind::Lru => "lru_mutex".into(),
            Kind::Baseline => "rwlock_hashmap_x16".into(),
        }
    }
}

/// Something to do with a freshly built contender; lets one `match` build
/// each concrete type and hand it to generic (monomorphised) code.
trait WithContender {
    type Out;
    fn call<C: Contender>(self, cache: &C) -> Self::Out;
}

/// Builds `kind` with room for `capacity` entries and runs `with` on it.
fn with_contender<W: WithContender>(kind: Kind, capacity: u64, with: W) -> W::Out {
    match kind {
        Kind::Larder(policy) => {
            let cache = larder::Cache::<u64, u64>::builder()
                .max_capacity(capacity)
                .policy(policy)
                .build();
            with.call(&cache)
        }
        Kind::QuickCache => with.call(&quick_cache::sync::Cache::<u64, u64>::new(
            capacity as usize,
        )),
        Kind::Moka => with.call(&moka::sync::Cache::<u64, u64>::new(capacity)),
        Kind::Lru => {
            let cap = NonZeroUsize::new(capacity as usize).expect("capacity > 0");
            with.call(&MutexLru(Mutex::new(lru::LruCache::new(cap))))
        }
        Kind::Baseline => with.call(&ShardedMap::new(BASELINE_SHARDS)),
    }
}

// ---------------------------------------------------------------------------
// Workloads.

/// What each operation does.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Workload {
    /// 100% `get` on a cache holding every key.
    Read100,
    /// Every tenth operation an `insert` (an update: every key is present),
    /// the rest `get`.
    Mixed90,
    /// `get`, and `insert` on a miss, with capacity 10% of the key space.
    EvictHeavy,
}

impl Workload {
    fn group(self) -> &'static str {
        match self {
            Workload::Read100 => "read100",
            Workload::Mixed90 => "mixed90_10",
            Workload::EvictHeavy => "evict_heavy",
        }
    }

    fn capacity(self) -> u64 {
        match self {
            Workload::Read100 | Workload::Mixed90 => KEY_SPACE as u64,
            Workload::EvictHeavy => EVICT_CAPACITY,
        }
    }

    fn contenders(self) -> Vec<Kind> {
        let policies: Vec<Policy> = match self {
            Workload::EvictHeavy => Policy::ALL.to_vec(),
            _ => vec![Policy::WTinyLfu, Policy::Lru],
        };
        let mut kinds: Vec<Kind> = policies.into_iter().map(Kind::Larder).collect();
        kinds.extend([Kind::QuickCache, Kind::Moka, Kind::Lru]);
        if self != Workload::EvictHeavy {
            kinds.push(Kind::Baseline);
        }
        kinds
    }

    /// Brings a new cache to the state the workload measures: every key
    /// inserted for the read workloads, a warm cache for `evict_heavy`.
    fn prepare<C: Contender>(self, cache: &C) {
        match self {
            Workload::Read100 | Workload::Mixed90 => {
                // Coldest first: a sharded cache whose fullest shards
                // overflow a little then drops cold keys, never the hottest
                // (with hottest-first order an LRU would evict rank 0 and
                // miss on ~7% of all reads).
                for rank in (0..KEY_SPACE).rev() {
                    let key = key_of(rank, KEY_BITS);
                    cache.insert(key, key);
                }
            }
            Workload::EvictHeavy => {
                run_ops(cache, self, &streams()[0], 0, STREAM_LEN);
            }
        }
    }
}

/// Runs `ops` operations of `workload` over `keys` starting at `offset`;
/// returns the number of misses.
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
        Workload::EvictHeavy => {
            for i in 0..ops {
                let key = keys[(offset + i) & mask];
                if black_box(cache.get(key)).is_none() {
                    cache.insert(key, key);
                    misses += 1;
                }
            }
        }
    }
    misses
}

/// Runs `ops_per_thread` operations on each of `threads` threads, each
/// replaying its own key stream from `offset`. Returns the slowest thread's
/// time (barrier to last operation) and the total misses.
fn run_threads<C: Contender>(
    cache: &C,
    workload: Workload,
    threads: usize,
    ops_per_thread: usize,
    offset: usize,
) -> (Duration, u64) {
    let barrier = Barrier::new(threads);
    let streams = streams();
    thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let barrier = &barrier;
                let keys = &streams[t];
                s.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let misses = run_ops(cache, workload, keys, offset, ops_per_thread);
                    (start.elapsed(), misses)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread panicked"))
            .fold((Duration::ZERO, 0), |(t, m), (dt, dm)| (t.max(dt), m + dm))
    })
}

/// Benchmarks one contender on one workload at 1 and 2 threads.
struct CriterionRun<'a, 'b> {
    group: &'a mut criterion::BenchmarkGroup<'b, criterion::measurement::WallTime>,
    name: String,
    workload: Workload,
}

impl WithContender for CriterionRun<'_, '_> {
    type Out = ();

    fn call<C: Contender>(self, cache: &C) {
        // Prepared on first use, so that a benchmark filter
        // (`cargo bench -- read100/quick_cache`) skips filling the others.
        let prepared = std::sync::Once::new();
        // Continue the key streams across timing runs instead of replaying
        // the same prefix on every call.
        let cursor = AtomicUsize::new(0);
        for threads in 1..=MAX_THREADS {
            self.group
                .throughput(Throughput::Elements((OPS_PER_ITER * threads) as u64));
            self.group.bench_with_input(
                BenchmarkId::new(&self.name, format!("{threads}t")),
                &threads,
                |b, &threads| {
                    prepared.call_once(|| self.workload.prepare(cache));
                    b.iter_custom(|iters| {
                        let ops = iters as usize * OPS_PER_ITER;
                        let offset = cursor.fetch_add(ops, Ordering::Relaxed);
                        run_threads(cache, self.workload, threads, ops, offset).0
                    })
                },
            );
        }
    }
}

fn throughput(c: &mut Criterion) {
    streams(); // build the key streams before any timing
    for workload in [Workload::Read100, Workload::Mixed90, Workload::EvictHeavy] {
        let mut group = c.benchmark_group(workload.group());
        group
            .sample_size(10)
            .warm_up_time(Duration::from_secs(1))
            .measurement_time(Duration::from_secs(2));
        for kind in workload.contenders() {
            let run = CriterionRun {
                group: &mut group,
                name: kind.name(),
                workload,
            };
            with_contender(kind, workload.capacity(), run);
        }
        group.finish();
    }
}

// ---------------------------------------------------------------------------
// The same-process ratio table.

/// Rounds of the fixed-op loop (`LARDER_BENCH_ROUNDS` overrides); each
/// contender's best round is reported, and the ratios round by round.
const RATIO_ROUNDS: usize = 5;
/// Operations per thread in one fixed-op round (2,097,152).
const RATIO_OPS: usize = 1 << 21;

/// Times one fixed-op run of a workload on a freshly built and prepared
/// contender, optionally beside a [`Neighbour`]; returns Mops/s and the
/// miss ratio.
struct FixedRun {
    workload: Workload,
    threads: usize,
    neighbour: bool,
}

impl WithContender for FixedRun {
    type Out = (f64, f64);

    fn call<C: Contender>(self, cache: &C) -> (f64, f64) {
        self.workload.prepare(cache);
        let threads = self.threads;
        let neighbour = self.neighbour.then(Neighbour::start);
        // Start past the stretch `prepare` replayed.
        let (elapsed, misses) = run_threads(cache, self.workload, threads, RATIO_OPS, 12_345);
        if let Some(n) = neighbour {
            n.stop();
        }
        let total = (threads * RATIO_OPS) as f64;
        (total / elapsed.as_secs_f64() / 1e6, misses as f64 / total)
    }
}

/// Bytes the busy neighbour streams through: 64 MiB, more than the
/// processor's caches, so it keeps evicting what the contender has cached.
const NEIGHBOUR_BYTES: usize = 64 << 20;

/// A busy neighbour: a thread that streams through a 64 MiB buffer (one
/// read and one write per cache line, pass after pass) until stopped, as
/// an application working beside its cache would use the CPU caches too.
struct Neighbour {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    handle: thread::JoinHandle<u64>,
}

impl Neighbour {
    /// Starts the neighbour and waits until its buffer is allocated and
    /// touched once, so the contender is timed against a streaming thread.
    fn start() -> Self {
        use std::sync::atomic::AtomicBool;
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let ready = std::sync::Arc::new(Barrier::new(2));
        let (s, r) = (stop.clone(), ready.clone());
        let handle = thread::spawn(move || {
            let mut buf = vec![1u64; NEIGHBOUR_BYTES / 8];
            r.wait();
            let mut lines = 0u64;
            while !s.load(Ordering::Relaxed) {
                for chunk in buf.chunks_mut(1 << 16) {
                    for line in chunk.iter_mut().step_by(8) {
                        *line = line.wrapping_add(1);
                    }
                    lines += (chunk.len() / 8) as u64;
                    if s.load(Ordering::Relaxed) {
                        break;
                    }
                }
            }
            black_box(&buf);
            lines
        });
        ready.wait();
        Self { stop, handle }
    }

    /// Stops the neighbour; returns the cache lines it streamed.
    fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().expect("neighbour panicked")
    }
}

/// Contenders of the busy-neighbour table.
const NEIGHBOUR_KINDS: [Kind; 3] = [Kind::Larder(Policy::WTinyLfu), Kind::QuickCache, Kind::Moka];

/// Rounds of a side-by-side table: `LARDER_BENCH_ROUNDS` if set (at least
/// 1), else `default`.
fn rounds(default: usize) -> usize {
    std::env::var("LARDER_BENCH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(default, |n: usize| n.max(1))
}

/// Every round's `(Mops/s, miss ratio)` of one contender in one setting.
#[derive(Default)]
struct Rounds(Vec<(f64, f64)>);

impl Rounds {
    /// The best round: its Mops/s and its miss ratio.
    fn best(&self) -> (f64, f64) {
        self.0
            .iter()
            .copied()
            .fold((0.0, 0.0), |b, r| if r.0 > b.0 { r } else { b })
    }

    /// `self / other` round by round (each pair ran back to back in the
    /// same round), sorted.
    fn paired(&self, other: &Rounds) -> Vec<f64> {
        let mut r: Vec<f64> = self
            .0
            .iter()
            .zip(&other.0)
            .map(|(a, b)| a.0 / b.0)
            .collect();
        r.sort_by(f64::total_cmp);
        r
    }

    /// The ratio of the best rounds, then the median and the range of the
    /// ratios paired within each round: `1.02x (paired 0.98x, 0.91-1.10)`.
    /// On a machine whose speed drifts between rounds, the paired median
    /// is the steadier figure; the range says how far to trust either.
    fn ratio(&self, other: &Rounds) -> String {
        let p = self.paired(other);
        let median = if p.is_empty() {
            f64::NAN
        } else if p.len() % 2 == 1 {
            p[p.len() / 2]
        } else {
            (p[p.len() / 2 - 1] + p[p.len() / 2]) / 2.0
        };
        format!(
            "{:.2}x (paired {median:.2}x, {:.2}-{:.2})",
            self.best().0 / other.best().0,
            p.first().copied().unwrap_or(f64::NAN),
            p.last().copied().unwrap_or(f64::NAN)
        )
    }
}

/// One thread per contender, quiet and beside a [`Neighbour`] (one more
/// thread: on this 2-core machine, the other core), interleaved round by
/// round; prints the best round of each side by side, and the ratios.
fn neighbour_table() {
    let workloads = [Workload::Read100, Workload::EvictHeavy];
    let n = rounds(NEIGHBOUR_ROUNDS);
    // runs[w][k][busy]: every round of workload w, contender k.
    let mut runs: [[[Rounds; 2]; 3]; 2] = Default::default();
    for round in 0..n {
        eprintln!("neighbour table: round {}/{n}", round + 1);
        for (w, &workload) in workloads.iter().enumerate() {
            for (k, &kind) in NEIGHBOUR_KINDS.iter().enumerate() {
                for busy in [false, true] {
                    let run = FixedRun {
                        workload,
                        threads: 1,
                        neighbour: busy,
                    };
                    let result = with_contender(kind, workload.capacity(), run);
                    runs[w][k][busy as usize].0.push(result);
                }
            }
        }
    }
    println!();
    println!(
        "## Beside a busy neighbour: 1 thread, quiet and with a thread streaming \
         {} MiB ({RATIO_OPS} ops, best of {n} interleaved rounds)",
        NEIGHBOUR_BYTES >> 20
    );
    println!();
    println!("| workload | contender | quiet Mops/s | with neighbour Mops/s | with / quiet |");
    println!("|---|---|---:|---:|---:|");
    for (w, workload) in workloads.iter().enumerate() {
        for (k, kind) in NEIGHBOUR_KINDS.iter().enumerate() {
            let [quiet, busy] = &runs[w][k];
            let (quiet, busy) = (quiet.best().0, busy.best().0);
            println!(
                "| {} | {} | {quiet:.2} | {busy:.2} | {:.2} |",
                workload.group(),
                kind.name(),
                busy / quiet
            );
        }
    }
    println!();
    println!("| ratio (1 thread; best rounds, then paired median and range) | quiet | with neighbour | bar |");
    println!("|---|---:|---:|---|");
    for (w, workload) in workloads.iter().enumerate() {
        for (k, bar) in [(1, ">= 1.0x"), (2, ">= 3x")] {
            let r = |busy: usize| runs[w][0][busy].ratio(&runs[w][k][busy]);
            println!(
                "| {}: larder-WTinyLfu / {} | {} | {} | {bar} |",
                workload.group(),
                NEIGHBOUR_KINDS[k].name(),
                r(0),
                r(1)
            );
        }
    }
}

/// Rounds of the busy-neighbour table (`LARDER_BENCH_ROUNDS` overrides).
const NEIGHBOUR_ROUNDS: usize = 3;

fn ratio_table() {
    let workloads = [Workload::Read100, Workload::EvictHeavy];
    let kinds = [
        Kind::Larder(Policy::WTinyLfu),
        Kind::Larder(Policy::Lru),
        Kind::QuickCache,
        Kind::Moka,
        Kind::Baseline,
    ];
    let n = rounds(RATIO_ROUNDS);
    // runs[w][k]: every round of workload w, contender k.
    let mut runs: [[Rounds; 5]; 2] = Default::default();
    for round in 0..n {
        eprintln!("ratio table: round {}/{n}", round + 1);
        for (w, &workload) in workloads.iter().enumerate() {
            for (k, &kind) in kinds.iter().enumerate() {
                if workload == Workload::EvictHeavy && kind == Kind::Baseline {
                    continue;
                }
                let run = FixedRun {
                    workload,
                    threads: MAX_THREADS,
                    neighbour: false,
                };
                let result = with_contender(kind, workload.capacity(), run);
                runs[w][k].0.push(result);
            }
        }
    }

    println!();
    println!(
        "## Same-process fixed-op loop, 2 threads ({RATIO_OPS} ops per thread, \
         best of {n} interleaved rounds)"
    );
    println!();
    println!("| workload | contender | Mops/s | miss ratio |");
    println!("|---|---|---:|---:|");
    for (w, workload) in workloads.iter().enumerate() {
        for (k, kind) in kinds.iter().enumerate() {
            let (mops, miss) = runs[w][k].best();
            if mops > 0.0 {
                println!(
                    "| {} | {} | {mops:.2} | {miss:.4} |",
                    workload.group(),
                    kind.name()
                );
            }
        }
    }
    println!();
    println!("| ratio (fixed-op loop, 2 threads; best rounds, then paired median and range) | value | bar |");
    println!("|---|---:|---|");
    let ratio = |w: usize, k: usize| runs[w][0].ratio(&runs[w][k]);
    // The bars are issue 15's: 1.2x quick_cache at 2 threads, 3x moka.
    println!(
        "| read100: larder-WTinyLfu / quick_cache | {} | >= 1.2x |",
        ratio(0, 2)
    );
    println!(
        "| read100: larder-WTinyLfu / moka | {} | >= 3x |",
        ratio(0, 3)
    );
    println!(
        "| read100: larder-WTinyLfu / rwlock_hashmap_x16 | {} | (reference) |",
        ratio(0, 4)
    );
    println!(
        "| evict_heavy: larder-WTinyLfu / quick_cache | {} | >= 1.2x |",
        ratio(1, 2)
    );
    println!(
        "| evict_heavy: larder-WTinyLfu / moka | {} | >= 3x |",
        ratio(1, 3)
    );
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` does not, and
    // then criterion runs each benchmark once and the ratio table is skipped.
    // `LARDER_BENCH_ONLY=neighbour` (or `ratio`) runs just that table.
    let benching = std::env::args().any(|a| a == "--bench");
    let only = std::env::var("LARDER_BENCH_ONLY").ok();
    if only.is_none() {
        let mut criterion = Criterion::default().configure_from_args();
        throughput(&mut criterion);
        criterion.final_summary();
    }
    let tables = benching && std::env::var_os("LARDER_BENCH_NO_TABLE").is_none();
    if tables && !matches!(only.as_deref(), Some(o) if o != "ratio") {
        ratio_table();
    }
    if tables && !matches!(only.as_deref(), Some(o) if o != "neighbour") {
        neighbour_table();
    }
}
