//! larder in an async service: an [`AsyncLoadingCache`] in front of a slow
//! database, on tokio.
//!
//! ```text
//! cargo run --release --example async_service --features async
//! ```
//!
//! The backend is SQLite (a table of 100,000 users in a temporary file),
//! reached the way an async service reaches a blocking driver: through a
//! pool of 8 connections (a semaphore) and `tokio::task::spawn_blocking`.
//! Each query also sleeps 2 ms on its blocking thread, standing in for the
//! network round trip and server time of a remote database, so the
//! backend serves at most about 4,000 queries a second.
//!
//! 200 client tasks on a multi-thread runtime ask for user ids drawn from a
//! Zipf(1.2) distribution (user 1 is the most popular), each one request
//! every 10 ms, waiting for its answer first (20,000 requests a second
//! offered): for 1 s straight to the database, then for 4 s through the
//! cache, which starts empty, holds 10% of the users, reloads an entry in
//! the background when it is read at 2 s old or more (on `tokio::spawn`,
//! through `.spawner(..)`) and drops it at 10 s. It prints requests,
//! throughput, backend queries and latency percentiles for the run
//! without the cache, the cache's first second and the rest, then the
//! cache's statistics. The whole run takes about 6 s.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

#[path = "support/workload.rs"]
mod workload;
use workload::{remove_database, Rng};

use larder::{AsyncLoadingCache, Cache};
use rusqlite::{params, Connection};
use tokio::sync::Semaphore;

/// Rows in the users table.
const USERS: u64 = 100_000;
/// Concurrent connections to the database.
const CONNECTIONS: usize = 8;
/// The deliberate extra time of every query.
const QUERY_DELAY: Duration = Duration::from_millis(2);
/// Client tasks, and how often each sends a request (if its previous
/// one is answered: never more than one outstanding): 20,000 requests a
/// second offered, five times what the backend can serve.
const CLIENTS: usize = 200;
const PACE: Duration = Duration::from_millis(10);
/// Popularity skew of the requested ids.
const ZIPF_S: f64 = 1.2;
/// How long each phase runs, and the cached phase's first part (the
/// cache starts empty), reported apart.
const UNCACHED_RUN: Duration = Duration::from_secs(1);
const CACHED_RUN: Duration = Duration::from_secs(4);
const WARM_UP: Duration = Duration::from_secs(1);
/// Users the cache holds: 10% of the table.
const CAPACITY: u64 = 10_000;
/// Age at which a read starts a background reload of an entry.
const REFRESH_AFTER: Duration = Duration::from_secs(2);
/// Age at which an entry is dropped.
const TIME_TO_LIVE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The backend.

/// A row of the users table.
#[derive(Debug)]
struct User {
    id: u64,
    name: String,
    karma: i64,
}

/// The database file, created at start and deleted at the end.
static DB_PATH: OnceLock<PathBuf> = OnceLock::new();

thread_local! {
    /// Each blocking thread's own connection, opened on first use.
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// The database as an async service sees it: a bounded pool of
/// connections, each query run on tokio's blocking threads.
struct Backend {
    pool: Semaphore,
    queries: AtomicU64,
}

impl Backend {
    fn new() -> Self {
        Self {
            pool: Semaphore::new(CONNECTIONS),
            queries: AtomicU64::new(0),
        }
    }

    /// `SELECT`s user `id`: waits for a connection, then runs the query
    /// (and the deliberate delay) on a blocking thread.
    async fn user(&self, id: u64) -> Arc<User> {
        let _connection = self.pool.acquire().await.expect("the pool is never closed");
        self.queries.fetch_add(1, Ordering::Relaxed);
        tokio::task::spawn_blocking(move || {
            std::thread::sleep(QUERY_DELAY);
            query_user(id)
        })
        .await
        .expect("the query does not panic")
    }
}

/// Runs the query on this thread's connection.
fn query_user(id: u64) -> Arc<User> {
    CONN.with(|cell| {
        let mut cell = cell.borrow_mut();
        let conn = cell.get_or_insert_with(|| {
            Connection::open(DB_PATH.get().expect("database created")).expect("open the database")
        });
        let mut stmt = conn
            .prepare_cached("SELECT name, karma FROM users WHERE id = ?1")
            .expect("prepare");
        let user = stmt
            .query_row(params![id], |row| {
                Ok(User {
                    id,
                    name: row.get(0)?,
                    karma: row.get(1)?,
                })
            })
            .expect("every user exists");
        Arc::new(user)
    })
}

/// Creates the users table in a temporary file.
fn create_database() -> PathBuf {
    let path = std::env::temp_dir().join(format!("larder-async-service-{}.db", std::process::id()));
    remove_database(&path);
    let mut conn = Connection::open(&path).expect("create the database");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, karma INTEGER NOT NULL);",
    )
    .expect("create the table");
    let mut rng = Rng(7);
    let tx = conn.transaction().expect("begin");
    {
        let mut insert = tx
            .prepare("INSERT INTO users VALUES (?1, ?2, ?3)")
            .expect("prepare");
        for id in 1..=USERS {
            let karma = (rng.next() % 10_000) as i64 - 5_000;
            insert
                .execute(params![id, format!("user {id}"), karma])
                .expect("insert");
        }
    }
    tx.commit().expect("commit");
    path
}

// ---------------------------------------------------------------------------
// The workload.

/// Ids 1..=n with P(id = k) proportional to 1 / k^s, by inverting the
/// cumulative distribution with a binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u64, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += (k as f64).powf(-s);
                total
            })
            .collect();
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u64 {
        let u = rng.unit();
        (self.cdf.partition_point(|&c| c < u) as u64 + 1).min(self.cdf.len() as u64)
    }
}

/// What one window of a phase measured.
struct Window {
    requests: usize,
    elapsed: Duration,
    /// Request latencies in nanoseconds, sorted.
    latencies: Vec<u64>,
}

impl Window {
    fn new(mut latencies: Vec<u64>, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        Self {
            requests: latencies.len(),
            elapsed,
            latencies,
        }
    }

    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }

    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.latencies.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_nanos(self.latencies.get(i).copied().unwrap_or(0))
    }
}

/// `CLIENTS` tasks send requests through `serve` until `run` has passed,
/// each one every `PACE` once its previous request is answered. Requests sent before
/// `split` go to the first window, the rest to the second.
async fn drive<F, Fut>(zipf: &Arc<Zipf>, run: Duration, split: Duration, serve: F) -> [Window; 2]
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Arc<User>> + Send,
{
    let start = Instant::now();
    let (boundary, deadline) = (start + split, start + run);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let (zipf, serve) = (zipf.clone(), serve.clone());
            tokio::spawn(async move {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1));
                let (mut early, mut late) = (Vec::new(), Vec::new());
                let mut ticks = tokio::time::interval(PACE);
                ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticks.tick().await;
                    let t = Instant::now();
                    if t >= deadline {
                        break;
                    }
                    let id = zipf.sample(&mut rng);
                    let user = serve(id).await;
                    let nanos = t.elapsed().as_nanos() as u64;
                    if t < boundary { &mut early } else { &mut late }.push(nanos);
                    assert_eq!(user.id, id, "the right row");
                }
                (early, late)
            })
        })
        .collect();
    let (mut early, mut late) = (Vec::new(), Vec::new());
    for c in clients {
        let (e, l) = c.await.expect("a client does not panic");
        early.extend(e);
        late.extend(l);
    }
    let elapsed = start.elapsed();
    [
        Window::new(early, split.min(elapsed)),
        Window::new(late, elapsed.saturating_sub(split)),
    ]
}

fn print_row(name: &str, w: &Window, queries: u64) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "{name:<27} {:>9} {:>9.0} {:>9} {:>8.1} {:>8.0} {:>9.0} {:>8.0}",
        w.requests,
        w.rate(),
        queries,
        us(w.quantile(0.5)),
        us(w.quantile(0.99)),
        us(w.quantile(0.999)),
        us(w.latencies
            .last()
            .map_or(Duration::ZERO, |&n| Duration::from_nanos(n))),
    );
}

#[tokio::main]
async fn main() {
    let total = Instant::now();
    let path = create_database();
    DB_PATH.set(path.clone()).expect("set once");
    let zipf = Arc::new(Zipf::new(USERS, ZIPF_S));
    let backend = Arc::new(Backend::new());
    println!(
        "{USERS} users in SQLite behind spawn_blocking: {CONNECTIONS} connections, every query \
         {} ms slower than it need be;\n{CLIENTS} client tasks, each sending a request every {} ms \
         (one outstanding at most), Zipf({ZIPF_S}) ids, {} tokio workers",
        QUERY_DELAY.as_millis(),
        PACE.as_millis(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "cache: {CAPACITY} entries, refresh_after {} s, time_to_live {} s, refreshes on tokio::spawn",
        REFRESH_AFTER.as_secs(),
        TIME_TO_LIVE.as_secs()
    );
    println!(
        "\n{:<27} {:>9} {:>9} {:>9} {:>8} {:>8} {:>9} {:>8}",
        "", "requests", "req/s", "queries", "p50 µs", "p99 µs", "p99.9 µs", "max µs"
    );

    // Phase 1: every request is a query.
    let [uncached, _] = drive(&zipf, UNCACHED_RUN, UNCACHED_RUN, {
        let backend = backend.clone();
        move |id| {
            let backend = backend.clone();
            async move { backend.user(id).await }
        }
    })
    .await;
    let uncached_queries = backend.queries.swap(0, Ordering::Relaxed);
    print_row(
        &format!("no cache, {} s", UNCACHED_RUN.as_secs()),
        &uncached,
        uncached_queries,
    );

    // Phase 2: the same clients through an AsyncLoadingCache.
    let users: AsyncLoadingCache<u64, Arc<User>> = Cache::builder()
        .max_capacity(CAPACITY)
        .refresh_after(REFRESH_AFTER)
        .time_to_live(TIME_TO_LIVE)
        .spawner(|task| {
            tokio::spawn(task);
        })
        .build_with_async_loader({
            let backend = backend.clone();
            move |id: &u64| {
                let (backend, id) = (backend.clone(), *id);
                async move { backend.user(id).await }
            }
        });
    // The counters at the end of the warm-up, taken while the clients run.
    let at_warm = tokio::spawn({
        let (users, backend) = (users.clone(), backend.clone());
        async move {
            tokio::time::sleep(WARM_UP).await;
            (users.stats(), backend.queries.load(Ordering::Relaxed))
        }
    });
    let [cold, warm] = drive(&zipf, CACHED_RUN, WARM_UP, {
        let users = users.clone();
        move |id| {
            let users = users.clone();
            async move { users.get(&id).await }
        }
    })
    .await;
    let (s1, q1) = at_warm.await.expect("the snapshot task does not panic");
    // Let refreshes still running finish before reading the counters.
    tokio::time::sleep(QUERY_DELAY * 10).await;
    let (s2, q2) = (users.stats(), backend.queries.load(Ordering::Relaxed));
    print_row(
        &format!("cache, first {} s (cold)", WARM_UP.as_secs()),
        &cold,
        q1,
    );
    print_row(
        &format!("cache, next {} s", (CACHED_RUN - WARM_UP).as_secs()),
        &warm,
        q2 - q1,
    );

    let ratio = |hits: u64, misses: u64| hits as f64 / (hits + misses).max(1) as f64;
    println!(
        "\ncache statistics, whole run (after the first {} s):",
        WARM_UP.as_secs()
    );
    println!(
        "  hit ratio {:.3} ({:.3}); {} hits, {} misses",
        s2.hit_ratio(),
        ratio(s2.hits - s1.hits, s2.misses - s1.misses),
        s2.hits,
        s2.misses
    );
    println!(
        "  {} loads ({}), {} of them background refreshes ({}), {} failed; mean load {:.2} ms",
        s2.loads,
        s2.loads - s1.loads,
        s2.refreshes,
        s2.refreshes - s1.refreshes,
        s2.refresh_failures,
        s2.total_load_time.as_secs_f64() * 1e3 / s2.loads.max(1) as f64
    );
    println!(
        "  {} backend queries ({}) for {} requests ({}): {:.4} per request ({:.4})",
        q2,
        q2 - q1,
        cold.requests + warm.requests,
        warm.requests,
        q2 as f64 / (cold.requests + warm.requests).max(1) as f64,
        (q2 - q1) as f64 / warm.requests.max(1) as f64
    );
    let hot = users
        .get_if_present(&1)
        .expect("the hottest user is cached");
    println!(
        "  {} entries now, {} evicted, {} expired; the hottest user: {} ({} karma)",
        users.cache().len(),
        s2.evictions,
        s2.expirations,
        hot.name,
        hot.karma
    );
    println!(
        "\nafter the warm-up, against no cache: {:.1}x the requests per second, a {:.0}x lower \
         p99, {:.0}x fewer queries per request; total run {:.1} s",
        warm.rate() / uncached.rate(),
        uncached.quantile(0.99).as_secs_f64() / warm.quantile(0.99).as_secs_f64().max(1e-9),
        warm.requests as f64 / (q2 - q1).max(1) as f64,
        total.elapsed().as_secs_f64()
    );
    remove_database(&path);
}
