//! Trace-driven hit-ratio simulator: every larder policy, Bélády's OPT and
//! the peer crates (moka, quick_cache, lru) on real access traces.
//!
//! ```text
//! cargo run --release --example simulate -- [options] TRACE_OR_DIR...
//! cargo run --release --example simulate -- ../shared/traces
//! ```
//!
//! Each trace (gzip or plain text, one `u64` or string key per line; a
//! directory means every trace file in it) is replayed as get-or-insert
//! (`if cache.get(&k).is_none() { cache.insert(k, ()) }`) through the real
//! [`larder::Cache`] for each policy and each cache size. A size is a
//! fraction of the trace's distinct keys (`5%` or `0.05`, capacity
//! `max(16, floor(f x distinct))`) or an absolute entry count (`1000`). Hit
//! ratio = hits / all accesses, cold misses included; efficiency = hit
//! ratio / OPT's on the same cell, averaged over cells.
//!
//! Output: a markdown table on stdout (also `results.md`), `results.csv`,
//! `results.json` and one SVG plot per trace in `--out` (default
//! `target/simulate`); progress on stderr.
//!
//! Peers, replayed the same way:
//!
//! * `moka-sync`: `moka::sync::Cache::new(cap)` with `run_pending_tasks()`
//!   after every insert, so moka's policy is applied at once and the cache
//!   never holds more than its capacity, as every other cache here. This
//!   is the column the worst-cell comparison uses first: it holds every
//!   contender to the same capacity. It is slower to replay (1.3 to 3
//!   times moka's time on small caches, 0.1 M accesses/s on arc-P3 at
//!   25%).
//! * `moka`: the same cache used as applications use it. moka applies its
//!   policy in batches (when 64 reads or writes are pending): until then a
//!   new entry is served before it is judged for admission, and the cache
//!   holds up to 64 entries more than its capacity (measured: 80 entries at
//!   capacity 16 on lirs-cpp, 218 at 154 on lirs-ps). That batching is part
//!   of the hit ratio moka's users get, so the column stays, but on small
//!   caches it is a bigger cache: it can beat OPT at the same capacity
//!   (lirs-cpp at 1%). The report compares W-TinyLFU with both.
//! * `quick_cache`: `quick_cache::sync::Cache::new(cap)`. Its shards round
//!   their shares, so it may hold a few entries more than its capacity
//!   (measured on four small traces: at most 7, 360 at 353 on lirs-sprite).
//! * `lru-crate`: `lru::LruCache::new(cap)`, the strict LRU reference.
//!
//! larder's caches use a fixed hasher and seed (`--seed`), so a run is
//! reproducible; `--single-shard` builds them with `.shards(1)`.

#[path = "sim/opt.rs"]
mod opt;
#[path = "sim/plot.rs"]
mod plot;
#[path = "sim/replay.rs"]
mod replay;
#[path = "sim/trace.rs"]
mod trace;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use larder::Policy;
use replay::{Runner, Setup};
use trace::Trace;

/// Sizes used when `--sizes` is not given.
const DEFAULT_SIZES: &str = "1%,5%,10%,25%";

/// Smallest capacity a fractional size gives.
const MIN_CAPACITY: u64 = 16;

/// The two ways moka is replayed, in the order the peer comparisons are
/// reported: held to its capacity, then as used (see the module docs).
const PEER_MOKAS: [Runner; 2] = [Runner::MokaSync, Runner::Moka];

/// Worst W-TinyLFU cells listed against the better peer.
const WORST_CELLS: usize = 10;

/// Seconds between two progress lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// The `--help` text.
const USAGE: &str = "\
usage: simulate [options] TRACE_OR_DIR...
  --sizes LIST      cache sizes: percentages (5%), fractions (0.05) or entry
                    counts (1000), comma separated [default: 1%,5%,10%,25%]
  --runners LIST    caches to replay [default: all]: opt, lru,
                    lfu, fifo, random, slru, wtinylfu, s3fifo, sieve, moka,
                    moka-sync, quick_cache, lru-crate
  --no-peers        skip moka, quick_cache and the lru crate
  --single-shard    build larder caches with .shards(1)
                    [default: the builder's own shard count]
  --threads N       worker threads [default: 2]
  --out DIR         results directory [default: target/simulate]
  --plots LIST      traces to plot, by name [default: all]
  --strings         hash every line as a string key (FNV-1a 64)
  --seed N          seed of larder's hasher and policies [default: 1]";

/// One cache size as asked for.
#[derive(Clone, Debug)]
enum Size {
    /// A fraction of the distinct keys.
    Fraction(f64, String),
    /// An absolute capacity.
    Absolute(u64),
}

impl Size {
    /// Parses `5%`, `0.05` or `1000`.
    fn parse(s: &str) -> Result<Size, String> {
        let s = s.trim();
        if let Some(p) = s.strip_suffix('%') {
            let f: f64 = p.parse().map_err(|_| format!("bad size {s:?}"))?;
            return Ok(Size::Fraction(f / 100.0, s.to_string()));
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(Size::Absolute(n));
        }
        let f: f64 = s.parse().map_err(|_| format!("bad size {s:?}"))?;
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("fraction {s:?} is not in 0..=1"));
        }
        Ok(Size::Fraction(f, format!("{}%", f * 100.0)))
    }

    /// The size as shown in tables (`5%`, `1000`).
    fn label(&self) -> String {
        match self {
            Size::Fraction(_, label) => label.clone(),
            Size::Absolute(n) => n.to_string(),
        }
    }

    /// The capacity on a trace with `distinct` keys.
    fn capacity(&self, distinct: usize) -> u64 {
        match *self {
            Size::Fraction(f, _) => ((f * distinct as f64).floor() as u64).max(MIN_CAPACITY),
            Size::Absolute(n) => n,
        }
    }
}

/// Command-line options.
struct Options {
    /// Trace files and directories, as given.
    paths: Vec<PathBuf>,
    /// Cache sizes to replay at.
    sizes: Vec<Size>,
    /// Caches to replay, in table order.
    runners: Vec<Runner>,
    /// How larder's caches are built.
    setup: Setup,
    /// Worker threads.
    threads: usize,
    /// Results directory.
    out: PathBuf,
    /// Traces to plot (`None`: all).
    plots: Option<Vec<String>>,
    /// Hash every line as a string key.
    strings: bool,
}

/// Reads the command line; `Err("")` asks for the usage text.
fn parse_args() -> Result<Options, String> {
    let mut args = std::env::args().skip(1);
    let mut opts = Options {
        paths: Vec::new(),
        sizes: Vec::new(),
        runners: Runner::all(),
        setup: Setup {
            single_shard: false,
            seed: 1,
        },
        threads: 2,
        out: PathBuf::from("target/simulate"),
        plots: None,
        strings: false,
    };
    let mut sizes = DEFAULT_SIZES.to_string();
    let mut no_peers = false;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Err(String::new()),
            "--sizes" => sizes = value("--sizes")?,
            "--runners" => {
                opts.runners = value("--runners")?
                    .split(',')
                    .map(Runner::parse)
                    .collect::<Result<_, _>>()?;
            }
            "--no-peers" => no_peers = true,
            "--single-shard" => opts.setup.single_shard = true,
            "--threads" => {
                opts.threads = value("--threads")?
                    .parse()
                    .map_err(|_| "bad --threads".to_string())?;
            }
            "--out" => opts.out = PathBuf::from(value("--out")?),
            "--plots" => {
                opts.plots = Some(value("--plots")?.split(',').map(str::to_string).collect());
            }
            "--strings" => opts.strings = true,
            "--seed" => {
                opts.setup.seed = value("--seed")?
                    .parse()
                    .map_err(|_| "bad --seed".to_string())?;
            }
            s if s.starts_with("--") => return Err(format!("unknown option {s}")),
            _ => opts.paths.push(PathBuf::from(arg)),
        }
    }
    opts.sizes = sizes
        .split(',')
        .map(Size::parse)
        .collect::<Result<_, _>>()?;
    if no_peers {
        opts.runners.retain(|r| {
            !matches!(
                r,
                Runner::Moka | Runner::MokaSync | Runner::QuickCache | Runner::LruCrate
            )
        });
    }
    if opts.paths.is_empty() {
        return Err("no trace given".to_string());
    }
    opts.threads = opts.threads.max(1);
    Ok(opts)
}

/// One cell of work: a runner on a trace at a size.
#[derive(Clone, Copy)]
struct Job {
    /// Index into the loaded traces.
    trace: usize,
    /// Index into `Options::sizes`.
    size: usize,
    /// What replays it.
    runner: Runner,
}

/// The result of a job.
#[derive(Clone, Copy)]
struct Cell {
    /// The job that produced it.
    job: Job,
    /// The capacity replayed at.
    capacity: u64,
    /// Hits over the whole trace.
    hits: u64,
    /// Replay time.
    seconds: f64,
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let files = match trace::expand(&opts.paths) {
        Ok(f) if !f.is_empty() => f,
        Ok(_) => fail("no trace files found"),
        Err(e) => fail(&format!("reading the trace list: {e}")),
    };

    // Load the traces, `threads` at a time.
    let started = Instant::now();
    let traces = load_all(&files, opts.strings, opts.threads);
    let total_accesses: usize = traces.iter().map(|t| t.keys.len()).sum();
    eprintln!(
        "loaded {} traces, {} accesses, in {:.1} s",
        traces.len(),
        total_accesses,
        started.elapsed().as_secs_f64()
    );

    // Every cell, longest first so that the workers finish together.
    let mut jobs = Vec::new();
    for t in 0..traces.len() {
        for s in 0..opts.sizes.len() {
            for &runner in &opts.runners {
                jobs.push(Job {
                    trace: t,
                    size: s,
                    runner,
                });
            }
        }
    }
    jobs.sort_by_key(|j| std::cmp::Reverse(traces[j.trace].keys.len() as u64 * j.runner.cost()));
    let work: u64 = jobs.iter().map(|j| traces[j.trace].keys.len() as u64).sum();

    let cells = run_jobs(&opts, &traces, &jobs, work);
    report(&opts, &traces, &cells, started.elapsed());
}

/// Prints `msg` and exits with status 1.
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1)
}

/// Loads every file, `threads` at a time, keeping their order.
fn load_all(files: &[PathBuf], strings: bool, threads: usize) -> Vec<Trace> {
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<Trace>>> = files.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(path) = files.get(i) else {
                    break;
                };
                match trace::load(path, strings) {
                    Ok(t) => *slots[i].lock().unwrap() = Some(t),
                    Err(e) => fail(&format!("{}: {e}", path.display())),
                }
            });
        }
    });
    slots
        .into_iter()
        .map(|m| m.into_inner().unwrap().expect("loaded"))
        .collect()
}

/// Runs every job on `opts.threads` workers; returns the cells in job
/// order.
fn run_jobs(opts: &Options, traces: &[Trace], jobs: &[Job], work: u64) -> Vec<Cell> {
    let next_uses: Vec<OnceLock<Vec<u32>>> = traces.iter().map(|_| OnceLock::new()).collect();
    let next = AtomicUsize::new(0);
    let finished = AtomicUsize::new(0);
    let progress = AtomicU64::new(0);
    let done = AtomicBool::new(false);
    let results: Mutex<Vec<Option<Cell>>> = Mutex::new(vec![None; jobs.len()]);
    let started = Instant::now();
    std::thread::scope(|s| {
        // Progress ticker.
        s.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= PROGRESS_EVERY {
                    last = Instant::now();
                    let p = progress.load(Ordering::Relaxed);
                    eprintln!(
                        "... {:.1}M of {:.1}M accesses replayed ({:.0}%), {:.0} s",
                        p as f64 / 1e6,
                        work as f64 / 1e6,
                        100.0 * p as f64 / work.max(1) as f64,
                        started.elapsed().as_secs_f64()
                    );
                }
            }
        });
        let workers: Vec<_> = (0..opts.threads)
            .map(|_| {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&job) = jobs.get(i) else {
                        break;
                    };
                    let trace = &traces[job.trace];
                    let size = &opts.sizes[job.size];
                    let capacity = size.capacity(trace.distinct);
                    let t0 = Instant::now();
                    let next_use = (job.runner == Runner::Opt).then(|| {
                        next_uses[job.trace]
                            .get_or_init(|| opt::next_uses(&trace.ids, trace.distinct))
                            .as_slice()
                    });
                    let hits = replay::replay(
                        job.runner, trace, next_use, capacity, opts.setup, &progress,
                    );
                    let seconds = t0.elapsed().as_secs_f64();
                    let n = finished.fetch_add(1, Ordering::Relaxed) + 1;
                    eprintln!(
                        "[{n}/{}] {} {} (cap {capacity}) {}: {:.4} in {:.2} s ({:.1} M accesses/s)",
                        jobs.len(),
                        trace.name,
                        size.label(),
                        job.runner.name(),
                        hits as f64 / trace.keys.len().max(1) as f64,
                        seconds,
                        trace.keys.len() as f64 / seconds.max(1e-9) / 1e6
                    );
                    results.lock().unwrap()[i] = Some(Cell {
                        job,
                        capacity,
                        hits,
                        seconds,
                    });
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker panicked");
        }
        done.store(true, Ordering::Relaxed);
    });
    results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(|c| c.expect("every job ran"))
        .collect()
}

/// Hit ratio of a cell.
fn ratio(cell: &Cell, traces: &[Trace]) -> f64 {
    cell.hits as f64 / traces[cell.job.trace].keys.len().max(1) as f64
}

/// Writes the tables, CSV, JSON and plots.
fn report(opts: &Options, traces: &[Trace], cells: &[Cell], elapsed: Duration) {
    let runners = &opts.runners;
    // table[trace][size][runner] -> cell
    let find = |t: usize, s: usize, r: Runner| {
        cells
            .iter()
            .find(|c| c.job.trace == t && c.job.size == s && c.job.runner == r)
    };
    let has = |r: Runner| runners.contains(&r);
    let mut md = String::new();
    let sharding = if opts.setup.single_shard {
        "one shard (`.shards(1)`)"
    } else {
        "the builder's default shard count"
    };
    let _ = writeln!(md, "## Hit ratio\n");
    let _ = writeln!(
        md,
        "Get-or-insert replay; capacity = max({MIN_CAPACITY}, floor(size x distinct keys)) for a \
         fractional size; hit ratio = hits / all accesses. larder caches use {sharding}.\n"
    );
    let mut header = "| trace | size | capacity |".to_string();
    let mut rule = "|---|---:|---:|".to_string();
    for r in runners {
        let _ = write!(header, " {} |", r.name());
        rule.push_str("---:|");
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for (t, trace) in traces.iter().enumerate() {
        for (s, size) in opts.sizes.iter().enumerate() {
            let cap = size.capacity(trace.distinct);
            let best = runners
                .iter()
                .filter(|&&r| r != Runner::Opt)
                .filter_map(|&r| find(t, s, r).map(|c| c.hits))
                .max();
            let _ = write!(md, "| {} | {} | {} |", trace.name, size.label(), cap);
            for &r in runners {
                match find(t, s, r) {
                    Some(c) if r != Runner::Opt && Some(c.hits) == best => {
                        let _ = write!(md, " **{:.3}** |", ratio(c, traces));
                    }
                    Some(c) => {
                        let _ = write!(md, " {:.3} |", ratio(c, traces));
                    }
                    None => md.push_str(" |"),
                }
            }
            md.push('\n');
        }
    }

    // Efficiency: hit ratio / OPT's, averaged over cells.
    let efficiency = |r: Runner| -> Option<f64> {
        let mut sum = 0.0;
        let mut n = 0;
        for t in 0..traces.len() {
            for s in 0..opts.sizes.len() {
                let opt = find(t, s, Runner::Opt)?;
                let c = find(t, s, r)?;
                sum += if opt.hits == 0 {
                    1.0
                } else {
                    c.hits as f64 / opt.hits as f64
                };
                n += 1;
            }
        }
        (n > 0).then(|| sum / n as f64)
    };
    let n_cells = traces.len() * opts.sizes.len();
    let mut summary: Vec<(String, f64)> = Vec::new();
    if has(Runner::Opt) {
        let _ = writeln!(
            md,
            "\n## Efficiency (hit ratio / OPT's, mean over {n_cells} cells)\n"
        );
        let _ = writeln!(md, "| cache | efficiency |\n|---|---:|");
        for &r in runners.iter().filter(|&&r| r != Runner::Opt) {
            if let Some(e) = efficiency(r) {
                let _ = writeln!(md, "| {} | {:.3} |", r.name(), e);
                summary.push((r.name().to_string(), e));
            }
        }
        for moka in PEER_MOKAS.into_iter().filter(|&m| has(m)) {
            if !has(Runner::QuickCache) {
                break;
            }
            let mut sum = 0.0;
            for t in 0..traces.len() {
                for s in 0..opts.sizes.len() {
                    let opt = find(t, s, Runner::Opt).expect("opt ran").hits.max(1) as f64;
                    let m = find(t, s, moka).expect("moka ran").hits;
                    let q = find(t, s, Runner::QuickCache)
                        .expect("quick_cache ran")
                        .hits;
                    sum += m.max(q) as f64 / opt;
                }
            }
            let e = sum / n_cells.max(1) as f64;
            let name = moka.name();
            let _ = writeln!(md, "| best of {name} and quick_cache, per cell | {e:.3} |");
            summary.push((format!("best-of-{name}-quick_cache"), e));
        }
    }

    // Worst cells of W-TinyLFU against the better peer: first against moka
    // held to its capacity (if it ran), then against moka as used.
    let wt = Runner::Larder(Policy::WTinyLfu);
    for moka in PEER_MOKAS.into_iter().filter(|&m| has(m)) {
        if !has(wt) || !has(Runner::QuickCache) {
            break;
        }
        let mut gaps: Vec<(f64, usize, usize)> = Vec::new();
        for t in 0..traces.len() {
            for s in 0..opts.sizes.len() {
                let w = ratio(find(t, s, wt).expect("ran"), traces);
                let m = ratio(find(t, s, moka).expect("ran"), traces);
                let q = ratio(find(t, s, Runner::QuickCache).expect("ran"), traces);
                gaps.push((w - m.max(q), t, s));
            }
        }
        gaps.sort_by(|a, b| a.0.total_cmp(&b.0));
        let below = |points: f64| gaps.iter().filter(|g| g.0 < -points / 100.0).count();
        let name = moka.name();
        let _ = writeln!(
            md,
            "\n## Worst cells of WTinyLfu against max({name}, quick_cache)\n\n\
             {} of {n_cells} cells more than 3 points under, {} more than 5 points under.\n",
            below(3.0),
            below(5.0)
        );
        let _ = writeln!(
            md,
            "| trace | size | capacity | OPT | WTinyLfu | {name} | quick_cache | difference (points) |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        for &(d, t, s) in gaps.iter().take(WORST_CELLS) {
            let r = |runner: Runner| find(t, s, runner).map_or(f64::NAN, |c| ratio(c, traces));
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.3} | {:.3} | {:.3} | {:.3} | {:+.1} |",
                traces[t].name,
                opts.sizes[s].label(),
                opts.sizes[s].capacity(traces[t].distinct),
                r(Runner::Opt),
                r(wt),
                r(moka),
                r(Runner::QuickCache),
                d * 100.0
            );
        }
    }

    // Per trace: the best cache by mean hit ratio over the sizes, and
    // where W-TinyLFU stands.
    if has(Runner::Opt) {
        let _ = writeln!(
            md,
            "\n## Best cache per trace (mean efficiency over the sizes)\n\n\
             | trace | best | its efficiency | WTinyLfu | WTinyLfu - best (points) |\n|---|---|---:|---:|---:|"
        );
        let mean_eff = |t: usize, r: Runner| -> Option<f64> {
            let mut sum = 0.0;
            for s in 0..opts.sizes.len() {
                let o = find(t, s, Runner::Opt)?.hits;
                let c = find(t, s, r)?.hits;
                sum += if o == 0 { 1.0 } else { c as f64 / o as f64 };
            }
            Some(sum / opts.sizes.len().max(1) as f64)
        };
        for (t, trace) in traces.iter().enumerate() {
            let best = runners
                .iter()
                .filter(|&&r| r != Runner::Opt)
                .filter_map(|&r| mean_eff(t, r).map(|e| (r, e)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let Some((r, e)) = best else { continue };
            let (w, d) = match mean_eff(t, wt) {
                Some(w) => (format!("{w:.3}"), format!("{:+.1}", (w - e) * 100.0)),
                None => (String::new(), String::new()),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {:.3} | {} | {} |",
                trace.name,
                r.name(),
                e,
                w,
                d
            );
        }
    }

    // Lru with one shard against the lru crate.
    let lru = Runner::Larder(Policy::Lru);
    if opts.setup.single_shard && has(lru) && has(Runner::LruCrate) {
        let differ = (0..traces.len())
            .flat_map(|t| (0..opts.sizes.len()).map(move |s| (t, s)))
            .filter(|&(t, s)| {
                find(t, s, lru).map(|c| c.hits) != find(t, s, Runner::LruCrate).map(|c| c.hits)
            })
            .count();
        let _ = writeln!(
            md,
            "\nlarder Lru (one shard) and the lru crate differ on {differ} of {n_cells} cells."
        );
    }

    // Replay speed per runner (per worker thread).
    let _ = writeln!(
        md,
        "\n## Replay speed ({} worker threads, per thread)\n\n| cache | accesses | seconds | M accesses/s |\n|---|---:|---:|---:|",
        opts.threads
    );
    for &r in runners {
        let (acc, secs) = cells
            .iter()
            .filter(|c| c.job.runner == r)
            .fold((0u64, 0.0), |(a, s), c| {
                (a + traces[c.job.trace].keys.len() as u64, s + c.seconds)
            });
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.2} |",
            r.name(),
            acc,
            secs,
            acc as f64 / secs.max(1e-9) / 1e6
        );
    }
    let _ = writeln!(md, "\nTotal wall time {:.0} s.", elapsed.as_secs_f64());
    print!("{md}");

    if let Err(e) = write_files(opts, traces, cells, &md, &summary) {
        fail(&format!("writing results to {}: {e}", opts.out.display()));
    }
    eprintln!("results written to {}", opts.out.display());
}

/// Writes results.md, results.csv, results.json and the SVGs.
fn write_files(
    opts: &Options,
    traces: &[Trace],
    cells: &[Cell],
    md: &str,
    summary: &[(String, f64)],
) -> std::io::Result<()> {
    std::fs::create_dir_all(&opts.out)?;
    std::fs::write(opts.out.join("results.md"), md)?;
    let opt_hits = |c: &Cell| {
        cells
            .iter()
            .find(|o| {
                o.job.runner == Runner::Opt
                    && o.job.trace == c.job.trace
                    && o.job.size == c.job.size
            })
            .map(|o| o.hits)
    };
    let mut csv = String::from(
        "trace,accesses,distinct,size,capacity,cache,sharding,hits,hit_ratio,opt_hit_ratio,efficiency,seconds\n",
    );
    let mut json = String::from("{\n  \"config\": {");
    let _ = write!(
        json,
        "\"sharding\": \"{}\", \"seed\": {}, \"threads\": {}}},\n  \"summary\": {{",
        if opts.setup.single_shard {
            "single"
        } else {
            "default"
        },
        opts.setup.seed,
        opts.threads
    );
    for (i, (name, e)) in summary.iter().enumerate() {
        let _ = write!(
            json,
            "{}\"{}\": {:.5}",
            if i > 0 { ", " } else { "" },
            name,
            e
        );
    }
    json.push_str("},\n  \"cells\": [\n");
    let mut sorted: Vec<&Cell> = cells.iter().collect();
    sorted.sort_by_key(|c| (c.job.trace, c.job.size));
    for (i, c) in sorted.iter().enumerate() {
        let t = &traces[c.job.trace];
        let r = ratio(c, traces);
        let n = t.keys.len().max(1) as f64;
        let (opt_r, eff) = match opt_hits(c) {
            Some(o) => (
                format!("{:.6}", o as f64 / n),
                format!(
                    "{:.6}",
                    if o == 0 {
                        1.0
                    } else {
                        c.hits as f64 / o as f64
                    }
                ),
            ),
            None => (String::new(), String::new()),
        };
        let sharding = match c.job.runner {
            Runner::Larder(_) if opts.setup.single_shard => "single",
            Runner::Larder(_) => "default",
            _ => "",
        };
        let _ = writeln!(
            csv,
            "{},{},{},{},{},{},{},{},{:.6},{},{},{:.4}",
            t.name,
            t.keys.len(),
            t.distinct,
            opts.sizes[c.job.size].label(),
            c.capacity,
            c.job.runner.name(),
            sharding,
            c.hits,
            r,
            opt_r,
            eff,
            c.seconds
        );
        let _ = writeln!(
            json,
            "    {{\"trace\": \"{}\", \"accesses\": {}, \"distinct\": {}, \"size\": \"{}\", \"capacity\": {}, \"cache\": \"{}\", \"hits\": {}, \"hit_ratio\": {:.6}, \"opt_hit_ratio\": {}, \"efficiency\": {}, \"seconds\": {:.4}}}{}",
            t.name,
            t.keys.len(),
            t.distinct,
            opts.sizes[c.job.size].label(),
            c.capacity,
            c.job.runner.name(),
            c.hits,
            r,
            if opt_r.is_empty() { "null".to_string() } else { opt_r },
            if eff.is_empty() { "null".to_string() } else { eff },
            c.seconds,
            if i + 1 < sorted.len() { "," } else { "" }
        );
    }
    json.push_str("  ]\n}\n");
    std::fs::write(opts.out.join("results.csv"), csv)?;
    std::fs::write(opts.out.join("results.json"), json)?;

    for (t, trace) in traces.iter().enumerate() {
        if let Some(names) = &opts.plots {
            if !names.iter().any(|n| n == &trace.name) {
                continue;
            }
        }
        let mut order: Vec<usize> = (0..opts.sizes.len()).collect();
        order.sort_by_key(|&s| opts.sizes[s].capacity(trace.distinct));
        let ticks: Vec<(f64, String)> = order
            .iter()
            .map(|&s| {
                let cap = opts.sizes[s].capacity(trace.distinct);
                (cap as f64, format!("{} ({cap})", opts.sizes[s].label()))
            })
            .collect();
        let series: Vec<plot::Series> = opts
            .runners
            .iter()
            .map(|&r| plot::Series {
                name: r.name().to_string(),
                points: order
                    .iter()
                    .filter_map(|&s| {
                        cells
                            .iter()
                            .find(|c| c.job.trace == t && c.job.size == s && c.job.runner == r)
                            .map(|c| (c.capacity as f64, ratio(c, traces)))
                    })
                    .collect(),
            })
            .collect();
        let subtitle = format!(
            "{} accesses, {} distinct keys; get-or-insert; larder with {}",
            trace.keys.len(),
            trace.distinct,
            if opts.setup.single_shard {
                "one shard"
            } else {
                "default sharding"
            }
        );
        let svg = plot::svg(
            &format!("{}: hit ratio", trace.name),
            &subtitle,
            &ticks,
            &series,
        );
        std::fs::write(opts.out.join(format!("{}.svg", trace.name)), svg)?;
    }
    Ok(())
}
