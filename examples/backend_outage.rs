//! What callers see when the backend behind a cache fails: a simulated
//! backend that is healthy, then errors for 5 s, then hangs for 2 s, then
//! recovers, under a steady load from several threads; one table row per
//! phase and cache configuration.
//!
//! ```text
//! cargo run --release --example backend_outage             # about 39 s
//! cargo run --release --example backend_outage -- 0.3      # every duration scaled by 0.3
//! cargo run --release --example backend_outage -- 1 8      # 8 reader threads
//! ```
//!
//! The backend: a healthy query takes 2 ms; while it "errors" a query
//! fails after 0.1 ms (connection refused); while it "hangs" a query blocks
//! until the hang is over (at most 2 s), then succeeds. Phases: 3 s
//! healthy, 5 s errors, 2 s hang, 3 s recovered. The load: each reader
//! thread asks for a Zipf(0.9) key among 2,000 every 0.5 ms (a closed
//! loop: a slow answer delays that thread's next request), through
//! `LoadingCache::try_get`. Entries live 2 s.
//!
//! Per phase (a request belongs to the phase it started in): requests,
//! errors the callers got, backend calls, and p99 and maximum caller
//! latency (exact, from every request's duration).
//!
//! Configurations:
//! * `ttl`: time to live only (no defences);
//! * `ttl+swr`: refresh-ahead, `refresh_after(1 s)` and
//!   `stale_while_revalidate(2 s)`;
//! * `defended`: `ttl+swr` plus the backend defences: `early_refresh(1.0)`,
//!   `stale_if_error(60 s)` (retrying a failed key after 1 s, the
//!   default), `load_timeout(250 ms)` with `load_timeout_error` and
//!   `max_concurrent_loads(4)`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use larder::{Cache, LoadingCache};

/// The backend's state over time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Healthy,
    Errors,
    Hang,
    Recovered,
}

const PHASES: [Phase; 4] = [Phase::Healthy, Phase::Errors, Phase::Hang, Phase::Recovered];

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Healthy => "healthy",
            Phase::Errors => "errors",
            Phase::Hang => "hang",
            Phase::Recovered => "recovered",
        }
    }

    fn index(self) -> usize {
        PHASES.iter().position(|&p| p == self).expect("listed")
    }
}

/// Phase lengths, scaled.
#[derive(Clone, Copy)]
struct Plan {
    healthy: Duration,
    errors: Duration,
    hang: Duration,
    recovered: Duration,
    scale: f64,
}

impl Plan {
    fn new(scale: f64) -> Self {
        let s = |secs: f64| Duration::from_secs_f64(secs * scale);
        Plan {
            healthy: s(3.0),
            errors: s(5.0),
            hang: s(2.0),
            recovered: s(3.0),
            scale,
        }
    }

    fn scaled(&self, secs: f64) -> Duration {
        Duration::from_secs_f64(secs * self.scale)
    }

    fn total(&self) -> Duration {
        self.healthy + self.errors + self.hang + self.recovered
    }

    /// The phase at `elapsed`, and when the phase ends.
    fn at(&self, elapsed: Duration) -> (Phase, Duration) {
        let mut end = self.healthy;
        if elapsed < end {
            return (Phase::Healthy, end);
        }
        end += self.errors;
        if elapsed < end {
            return (Phase::Errors, end);
        }
        end += self.hang;
        if elapsed < end {
            return (Phase::Hang, end);
        }
        (Phase::Recovered, self.total())
    }
}

/// A backend failure, as the loader reports it (or, `TimedOut`, as a
/// caller that gave up on a hung load gets it: `load_timeout_error`).
#[derive(Debug)]
enum BackendError {
    Refused,
    TimedOut,
}

impl std::fmt::Display for BackendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendError::Refused => "connection refused",
            BackendError::TimedOut => "timed out waiting for another caller's load",
        })
    }
}

impl std::error::Error for BackendError {}

/// The simulated backend: its answers follow the plan from `start`.
struct Backend {
    plan: Plan,
    start: Instant,
    /// Calls, by the phase they started in.
    calls: [AtomicU64; 4],
}

impl Backend {
    fn query(&self, id: u64) -> Result<u64, BackendError> {
        let (phase, end) = self.plan.at(self.start.elapsed());
        self.calls[phase.index()].fetch_add(1, Ordering::Relaxed);
        match phase {
            Phase::Healthy | Phase::Recovered => {
                thread::sleep(Duration::from_millis(2));
                Ok(id * 10)
            }
            Phase::Errors => {
                thread::sleep(Duration::from_micros(100));
                Err(BackendError::Refused)
            }
            Phase::Hang => {
                // Blocked until the backend comes back.
                let until = self.start + end;
                thread::sleep(until.saturating_duration_since(Instant::now()));
                Ok(id * 10)
            }
        }
    }
}

/// A cache configuration under test.
#[derive(Clone, Copy, Debug)]
enum Config {
    /// Time to live only.
    Ttl,
    /// Time to live with today's refresh-ahead and stale-while-revalidate.
    TtlSwr,
    /// `TtlSwr` with early refresh, stale-if-error, a load timeout and a
    /// limit on concurrent loads.
    Defended,
}

impl Config {
    fn name(self) -> &'static str {
        match self {
            Config::Ttl => "ttl",
            Config::TtlSwr => "ttl+swr",
            Config::Defended => "defended",
        }
    }

    fn build(self, plan: &Plan, backend: Arc<Backend>) -> LoadingCache<u64, u64, BackendError> {
        let builder = Cache::builder()
            .max_capacity(10_000)
            .time_to_live(plan.scaled(2.0));
        let builder = match self {
            Config::Ttl => builder,
            Config::TtlSwr => builder
                .refresh_after(plan.scaled(1.0))
                .stale_while_revalidate(plan.scaled(2.0)),
            Config::Defended => builder
                .refresh_after(plan.scaled(1.0))
                .stale_while_revalidate(plan.scaled(2.0))
                .early_refresh(1.0)
                .stale_if_error(plan.scaled(60.0))
                .load_timeout(Duration::from_millis(250))
                .load_timeout_error(|| BackendError::TimedOut)
                .max_concurrent_loads(4),
        };
        builder.build_with_try_loader(move |id: &u64| backend.query(*id))
    }
}

/// One request as a caller saw it.
struct Sample {
    phase: Phase,
    nanos: u64,
    failed: bool,
}

/// Zipf(s) over `n` ranks by inverting the cumulative distribution.
struct Zipf(Vec<f64>);

impl Zipf {
    fn new(n: usize, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n);
        let mut sum = 0.0;
        for r in 1..=n {
            sum += 1.0 / (r as f64).powf(s);
            cdf.push(sum);
        }
        cdf.iter_mut().for_each(|c| *c /= sum);
        Zipf(cdf)
    }

    fn sample(&self, u: f64) -> u64 {
        self.0.partition_point(|&c| c <= u).min(self.0.len() - 1) as u64
    }
}

/// Runs the plan against `config` with `threads` readers; returns the
/// callers' samples and the backend's calls per phase.
fn run(config: Config, plan: Plan, threads: usize) -> (Vec<Sample>, [u64; 4]) {
    let backend = Arc::new(Backend {
        plan,
        start: Instant::now(),
        calls: Default::default(),
    });
    let cache = config.build(&plan, backend.clone());
    let zipf = Arc::new(Zipf::new(2_000, 0.9));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (cache, zipf, stop, backend) =
                (cache.clone(), zipf.clone(), stop.clone(), backend.clone());
            thread::spawn(move || {
                let mut samples = Vec::new();
                let mut x = 0x2545_F491_4F6C_DD1Du64.wrapping_mul(t as u64 + 1);
                while !stop.load(Ordering::Relaxed) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let id = zipf.sample((x >> 11) as f64 / (1u64 << 53) as f64);
                    let began = Instant::now();
                    let (phase, _) = backend.plan.at(began - backend.start);
                    let failed = cache.try_get(&id).is_err();
                    samples.push(Sample {
                        phase,
                        nanos: began.elapsed().as_nanos() as u64,
                        failed,
                    });
                    thread::sleep(Duration::from_micros(500));
                }
                samples
            })
        })
        .collect();
    thread::sleep(plan.total());
    stop.store(true, Ordering::Relaxed);
    let samples = handles
        .into_iter()
        .flat_map(|h| h.join().expect("reader panicked"))
        .collect();
    let calls = std::array::from_fn(|i| backend.calls[i].load(Ordering::Relaxed));
    (samples, calls)
}

fn fmt_ms(nanos: u64) -> String {
    format!("{:.1} ms", nanos as f64 / 1e6)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let scale: f64 = args
        .first()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0)
        .unwrap_or(1.0);
    let threads: usize = args
        .get(1)
        .and_then(|s| s.parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(4);
    let plan = Plan::new(scale);
    println!(
        "{threads} reader threads, phases {:?} / {:?} / {:?} / {:?}",
        plan.healthy, plan.errors, plan.hang, plan.recovered
    );
    println!();
    println!("| phase | config | requests | errors seen by callers | backend calls | p99 latency | max latency |");
    println!("|---|---|---:|---:|---:|---:|---:|");
    let configs = [Config::Ttl, Config::TtlSwr, Config::Defended];
    let results: Vec<_> = configs
        .iter()
        .map(|&c| (c, run(c, plan, threads)))
        .collect();
    for phase in PHASES {
        for (config, (samples, calls)) in &results {
            let mut lat: Vec<u64> = samples
                .iter()
                .filter(|s| s.phase == phase)
                .map(|s| s.nanos)
                .collect();
            lat.sort_unstable();
            let errors = samples
                .iter()
                .filter(|s| s.phase == phase && s.failed)
                .count();
            let (p99, max) = if lat.is_empty() {
                (0, 0)
            } else {
                let rank = ((lat.len() as f64 * 0.99).ceil() as usize).clamp(1, lat.len());
                (lat[rank - 1], lat[lat.len() - 1])
            };
            println!(
                "| {} | {} | {} | {} | {} | {} | {} |",
                phase.name(),
                config.name(),
                lat.len(),
                errors,
                calls[phase.index()],
                fmt_ms(p99),
                fmt_ms(max)
            );
        }
    }
}
