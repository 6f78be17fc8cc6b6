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
//!
//! With the `async` feature (`cargo bench --bench loading --features
//! async`, about 25 s more; `-- async` runs only these), two more tables,
//! beside moka's `future::Cache`:
//!
//! 3. **Async hit cost.** The same hot keys, one thread: a hit through
//!    `Cache::get_with_async(key, fut).await` (and `AsyncLoadingCache::get`,
//!    and moka's `future::Cache::get_with` / `get`) against a plain
//!    `Cache::get`, all measured alternately. Each async read is polled two
//!    ways, so that the figure is the cache's and not an executor's:
//!    (a) a minimal `block_on` per call, on the calling thread, with a
//!    no-op waker (a hit is ready at the first poll; the table reports how
//!    many polls returned `Pending`), and (b) awaited in a loop inside one
//!    `block_on` of a tokio `current_thread` runtime per measurement. A
//!    diagnostic row, "user-side fast path", reads with `get` and calls
//!    `get_with_async` only on a miss. Bars (issue 11): a `get_with_async` hit costs at most 1.2x a plain
//!    `get`, and its hit throughput is at least 3x that of moka's
//!    `future::Cache::get_with`. Median ns per read over 9 alternating
//!    rounds of 2^21 reads.
//! 4. **Async stampede.** 10,000 tokio tasks (multi-thread runtime, 2
//!    workers) wait at a barrier, then all ask for the same missing key;
//!    the loader awaits `tokio::time::sleep(50 ms)`. For larder
//!    `get_with_async`, `AsyncLoadingCache::get` and moka's
//!    `future::Cache::get_with`: loader calls, and the wall time from the
//!    barrier until the last task has its value, as a multiple of 50 ms.
//!    Bar (issue 11): the loader runs once, the last task is done within
//!    1.2x. Times run from the first task leaving the barrier; the table
//!    also gives the medians of first task out -> loader start and loader
//!    return -> last task's value. A fresh `tokio::sync::OnceCell` per
//!    round (no cache at all) is the runtime's floor. Best, median and
//!    worst of 11 rounds, a fresh key each round, the contenders' order
//!    rotated.

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
    // `cargo bench` passes `--bench`; an argument `async` runs only the
    // async tables.
    if !std::env::args().skip(1).any(|a| a == "async") {
        stampedes();
        hits();
    }
    #[cfg(feature = "async")]
    {
        println!();
        async_rows::hits();
        async_rows::stampedes();
    }
    #[cfg(not(feature = "async"))]
    println!("\n(async rows skipped: run with `--features async`)");
}

/// Tables 3 and 4: the async verbs beside moka's `future::Cache`.
#[cfg(feature = "async")]
mod async_rows {
    use std::future::Future;
    use std::hint::black_box;
    use std::pin::pin;
    use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex, OnceLock};
    use std::task::{Context, Poll, Wake, Waker};
    use std::time::{Duration, Instant};

    use larder::{AsyncLoadingCache, Cache};

    use super::{HIT_ROUNDS, HOT_KEYS, LOAD, READS};

    /// Tasks in the async stampede.
    const TASKS: usize = 10_000;
    /// Async stampede rounds per contender.
    const ASYNC_ROUNDS: usize = 11;

    /// Polls that returned `Pending` in [`block_on`] (0 if every hit is
    /// ready at once).
    static PENDING: AtomicU64 = AtomicU64::new(0);

    /// A waker that does nothing, made once (`Waker::noop` needs Rust 1.85,
    /// above this crate's 1.80).
    fn noop_waker() -> &'static Waker {
        struct Noop;
        impl Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        static WAKER: OnceLock<Waker> = OnceLock::new();
        WAKER.get_or_init(|| Waker::from(Arc::new(Noop)))
    }

    /// The smallest executor: polls `fut` on this thread with a no-op
    /// waker until it is ready. A hit is ready at the first poll, so this
    /// costs one poll per read; a `Pending` is counted (and spun on).
    #[inline]
    fn block_on<F: Future>(waker: &Waker, fut: F) -> F::Output {
        let mut cx = Context::from_waker(waker);
        let mut fut = pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            PENDING.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `READS` reads of the hot keys, cycled; returns a checksum.
    #[inline]
    fn reads(mut read: impl FnMut(u64) -> u64) -> u64 {
        let mut sum = 0u64;
        for n in 0..READS {
            sum = sum.wrapping_add(read(black_box(n % HOT_KEYS)));
        }
        sum
    }

    /// The same, awaiting each read (inside a runtime's `block_on`).
    async fn reads_async<F: Future<Output = u64>>(read: impl Fn(u64) -> F) -> u64 {
        let mut sum = 0u64;
        for n in 0..READS {
            sum = sum.wrapping_add(read(black_box(n % HOT_KEYS)).await);
        }
        sum
    }

    /// One measurement: `READS` reads, returns the checksum.
    type Run = Box<dyn Fn() -> u64>;

    pub(super) fn hits() {
        println!(
            "3. Async hit cost: one thread, {HOT_KEYS} present keys cycled, {READS} reads per measurement"
        );
        println!("   (a) = a minimal block_on per read (no-op waker, this thread);");
        println!(
            "   (b) = awaited in a loop inside one tokio current_thread block_on per measurement"
        );
        let rt = Arc::new(
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        );
        let cache: Cache<u64, u64> = Cache::new(10_000);
        let loading: AsyncLoadingCache<u64, u64> = Cache::builder()
            .max_capacity(10_000)
            .build_with_async_loader(|k: &u64| {
                let k = *k;
                async move { k }
            });
        let moka: moka::future::Cache<u64, u64> = moka::future::Cache::new(10_000);
        rt.block_on(async {
            for k in 0..HOT_KEYS {
                cache.insert(k, k);
                loading.get(&k).await;
                moka.insert(k, k).await;
            }
        });
        let variants: Vec<(&str, Run)> = vec![
            ("larder Cache::get", {
                let c = cache.clone();
                Box::new(move || reads(|k| c.get(&k).unwrap()))
            }),
            ("larder get_with_async (a)", {
                let c = cache.clone();
                Box::new(move || {
                    let w = noop_waker();
                    reads(|k| block_on(w, c.get_with_async(k, async { unreachable!("present") })))
                })
            }),
            ("larder AsyncLoadingCache (a)", {
                let c = loading.clone();
                Box::new(move || {
                    let w = noop_waker();
                    reads(|k| block_on(w, c.get(&k)))
                })
            }),
            ("moka future get_with (a)", {
                let c = moka.clone();
                Box::new(move || {
                    let w = noop_waker();
                    reads(|k| block_on(w, c.get_with(k, async { unreachable!("present") })))
                })
            }),
            ("moka future get (a)", {
                let c = moka.clone();
                Box::new(move || {
                    let w = noop_waker();
                    reads(|k| block_on(w, c.get(&k)).unwrap())
                })
            }),
            ("  user-side fast path (a)", {
                // A diagnostic: `get` first, and `get_with_async` only on
                // a miss, as a caller could write it (what a hit costs
                // without the verb's nested futures).
                let c = cache.clone();
                Box::new(move || {
                    let w = noop_waker();
                    reads(|k| match c.get(&k) {
                        Some(v) => v,
                        None => block_on(w, c.get_with_async(k, async { unreachable!() })),
                    })
                })
            }),
            ("larder Cache::get (b)", {
                let (c, rt) = (cache.clone(), rt.clone());
                Box::new(move || {
                    rt.block_on(reads_async(|k| {
                        let v = c.get(&k).unwrap();
                        async move { v }
                    }))
                })
            }),
            ("larder get_with_async (b)", {
                let (c, rt) = (cache.clone(), rt.clone());
                Box::new(move || {
                    rt.block_on(reads_async(|k| {
                        c.get_with_async(k, async { unreachable!("present") })
                    }))
                })
            }),
            ("larder AsyncLoadingCache (b)", {
                let (c, rt) = (loading.clone(), rt.clone());
                Box::new(move || {
                    rt.block_on(reads_async(|k| {
                        let c = &c;
                        async move { c.get(&k).await }
                    }))
                })
            }),
            ("moka future get_with (b)", {
                let (c, rt) = (moka.clone(), rt.clone());
                Box::new(move || {
                    rt.block_on(reads_async(|k| {
                        c.get_with(k, async { unreachable!("present") })
                    }))
                })
            }),
        ];
        let expected = reads(|k| k);
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); variants.len()];
        for _ in 0..HIT_ROUNDS {
            for (i, (name, run)) in variants.iter().enumerate() {
                let start = Instant::now();
                let sum = black_box(run());
                samples[i].push(start.elapsed().as_nanos() as f64 / READS as f64);
                assert_eq!(sum, expected, "{name} read the stored values");
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
            println!(
                "   {name:<29} {:>7.1} ns/read {:>6.2}x larder get",
                medians[i],
                medians[i] / medians[0]
            );
        }
        let pending = PENDING.load(Ordering::Relaxed);
        println!("   polls that returned Pending in (a): {pending}");
        println!(
            "   size of the future a read creates: larder get_with_async {} bytes, \
             AsyncLoadingCache::get {}, moka future get_with {}",
            std::mem::size_of_val(&cache.get_with_async(0, async { 0 })),
            std::mem::size_of_val(&loading.get(&0)),
            std::mem::size_of_val(&moka.get_with(0, async { 0 })),
        );
        let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
        for (way, get, with, moka) in [("(a)", 0, 1, 3), ("(b)", 6, 7, 9)] {
            let cost = medians[with] / medians[get];
            let speedup = medians[moka] / medians[with];
            println!(
                "   {way} get_with_async hit / get hit = {cost:.3}x (bar <= 1.2x: {}); \
                 hits/s vs moka future get_with = {speedup:.1}x (bar >= 3x: {})",
                verdict(cost <= 1.2),
                verdict(speedup >= 3.0)
            );
        }
        println!();
    }

    /// When the current round's loader started and returned (the last
    /// call's, if it ran more than once).
    static LOADER: Mutex<(Option<Instant>, Option<Instant>)> = Mutex::new((None, None));

    /// What one stampede measured.
    struct Round {
        /// From the first task leaving the barrier to the last one having
        /// its value.
        total: Duration,
        /// From the first task leaving the barrier to the loader's start.
        before: Duration,
        /// From the loader's return to the last task having its value.
        after: Duration,
    }

    /// One stampede of `TASKS` tasks calling `get(key)`.
    fn stampede(rt: &tokio::runtime::Runtime, get: &Read, key: u64) -> Round {
        *LOADER.lock().unwrap() = (None, None);
        rt.block_on(async {
            let gate = Arc::new(tokio::sync::Barrier::new(TASKS + 1));
            let tasks: Vec<_> = (0..TASKS)
                .map(|_| {
                    let (gate, read) = (gate.clone(), get(key));
                    tokio::spawn(async move {
                        gate.wait().await;
                        let released = Instant::now();
                        let v = read.await;
                        (v, released, Instant::now())
                    })
                })
                .collect();
            gate.wait().await;
            let (mut first, mut last) = (None::<Instant>, None::<Instant>);
            for t in tasks {
                let (v, released, done) = t.await.unwrap();
                assert_eq!(v, key * 2, "every task gets the loaded value");
                first = Some(first.map_or(released, |f| f.min(released)));
                last = Some(last.map_or(done, |l| l.max(done)));
            }
            let (first, last) = (first.unwrap(), last.unwrap());
            let (began, ended) = *LOADER.lock().unwrap();
            let (began, ended) = (began.expect("the loader ran"), ended.expect("it returned"));
            Round {
                total: last - first,
                before: began.saturating_duration_since(first),
                after: last.saturating_duration_since(ended),
            }
        })
    }

    /// Loader calls per contender (statics, so that a task's unpolled
    /// loader future holds no reference count to drop).
    static CALLS: [AtomicUsize; 4] = [const { AtomicUsize::new(0) }; 4];

    /// The loader of contender `who`: sleeps `LOAD` on the runtime's
    /// timer, counts its calls.
    async fn slow_double(who: usize, key: u64) -> u64 {
        CALLS[who].fetch_add(1, Ordering::SeqCst);
        LOADER.lock().unwrap().0 = Some(Instant::now());
        tokio::time::sleep(LOAD).await;
        LOADER.lock().unwrap().1 = Some(Instant::now());
        key * 2
    }

    type Read = Box<dyn Fn(u64) -> std::pin::Pin<Box<dyn Future<Output = u64> + Send>>>;

    pub(super) fn stampedes() {
        println!(
            "4. Async stampede: {TASKS} tokio tasks (multi-thread runtime, 2 workers), one missing key, a {} ms loader (tokio::time::sleep)",
            LOAD.as_millis()
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let larder: Cache<u64, u64> = Cache::new(100_000);
        let loading: AsyncLoadingCache<u64, u64> = {
            Cache::builder()
                .max_capacity(100_000)
                .build_with_async_loader(|k: &u64| slow_double(1, *k))
        };
        let moka: moka::future::Cache<u64, u64> = moka::future::Cache::new(100_000);
        // A fresh `tokio::sync::OnceCell` per round: no cache at all, the
        // runtime's own floor for 10,000 tasks waiting on one value.
        let cells: Arc<Vec<tokio::sync::OnceCell<u64>>> = Arc::new(
            (0..ASYNC_ROUNDS)
                .map(|_| tokio::sync::OnceCell::new())
                .collect(),
        );
        let contenders: Vec<(&str, Read)> = vec![
            ("larder get_with_async", {
                Box::new(move |k| {
                    let c = larder.clone();
                    Box::pin(async move { c.get_with_async(k, slow_double(0, k)).await })
                })
            }),
            ("larder AsyncLoadingCache::get", {
                Box::new(move |k| {
                    let c = loading.clone();
                    Box::pin(async move { c.get(&k).await })
                })
            }),
            ("moka future get_with", {
                Box::new(move |k| {
                    let c = moka.clone();
                    Box::pin(async move { c.get_with(k, slow_double(2, k)).await })
                })
            }),
            ("(floor) tokio OnceCell", {
                Box::new(move |k| {
                    let cells = cells.clone();
                    Box::pin(async move {
                        let cell = &cells[(k - 1_000) as usize];
                        *cell.get_or_init(|| slow_double(3, k)).await
                    })
                })
            }),
        ];
        let mut rounds: Vec<Vec<Round>> = (0..contenders.len()).map(|_| Vec::new()).collect();
        for round in 0..ASYNC_ROUNDS {
            // Each round starts with the next contender, so none always
            // follows the same one.
            for n in 0..contenders.len() {
                let i = (round + n) % contenders.len();
                let key = 1_000 + round as u64; // missing in every cache
                rounds[i].push(stampede(&rt, &contenders[i].1, key));
            }
        }
        println!(
            "   {:<29} {:>13} {:>9} {:>9} {:>9} {:>8} {:>13} {:>12}",
            "", "loader calls", "best", "median", "worst", "bar 1.2x", "before load", "after load"
        );
        for (i, (name, _)) in contenders.iter().enumerate() {
            let r = &mut rounds[i];
            let calls = CALLS[i].load(Ordering::SeqCst);
            let ratio = |d: Duration| d.as_secs_f64() / LOAD.as_secs_f64();
            let median_ms = |mut d: Vec<Duration>| {
                d.sort();
                d[d.len() / 2].as_secs_f64() * 1e3
            };
            let before = median_ms(r.iter().map(|r| r.before).collect());
            let after = median_ms(r.iter().map(|r| r.after).collect());
            r.sort_by_key(|r| r.total);
            let worst = ratio(r[ASYNC_ROUNDS - 1].total);
            let ok = calls == ASYNC_ROUNDS && worst <= 1.2;
            println!(
                "   {:<29} {:>6} / {:<4} {:>8.3}x {:>8.3}x {:>8.3}x {:>8} {:>10.1} ms {:>9.1} ms",
                name,
                calls,
                ASYNC_ROUNDS,
                ratio(r[0].total),
                ratio(r[ASYNC_ROUNDS / 2].total),
                worst,
                if ok { "met" } else { "MISSED" },
                before,
                after
            );
        }
        println!(
            "   (loader calls: total over {ASYNC_ROUNDS} rounds, one per round is single flight;"
        );
        println!("    times from the first task leaving the barrier to the last task's value;");
        println!("    before/after load: medians, first task out -> loader start, loader return -> last value)");
    }
}
