//! larder in front of a real database: SQLite, an expensive query, many
//! threads.
//!
//! ```text
//! cargo run --release --example demo
//! ```
//!
//! The demo builds an SQLite database of 50,000 products and 250,000
//! reviews, with a deliberately expensive "product summary" query: the
//! product's own review count and stars, plus the average stars of its
//! whole category (a join over the category's products and all their
//! reviews, about a millisecond on a laptop core). It then shows, with
//! numbers measured on this machine:
//!
//! 1. **Read-through.** A Zipf-skewed stream of requests from 8 threads,
//!    first straight to the database, then through a [`LoadingCache`]:
//!    backend queries, throughput and latency with and without the cache.
//! 2. **A stampede.** 32 threads keep asking for the hottest product and
//!    it is invalidated once. Naive cache-aside (`get`, query on a miss,
//!    `insert`) sends every request that arrives during the reload to the
//!    database; `LoadingCache::get` sends one query.
//! 3. **Refresh-ahead.** Hot products with a short time to live: without
//!    refresh, the readers that arrive when an entry has expired wait for
//!    the query; with `refresh_after`, a background reload replaces the
//!    value before it expires and read latency stays flat.
//! 4. **Final statistics** of the cache from part 1.
//!
//! The whole run takes well under a minute in release mode.

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

#[path = "support/workload.rs"]
mod workload;
use workload::{remove_database, Rng};

use larder::{Cache, LoadingCache};
use rusqlite::{params, Connection};

/// Products in the catalogue.
const PRODUCTS: u32 = 50_000;
/// Reviews, spread over the products (5 each on average).
const REVIEWS: u32 = 250_000;
/// Product categories: the summary query aggregates the reviews of every
/// product in the category (125 products, about 625 reviews), which is
/// what makes it expensive.
const CATEGORIES: u32 = 400;
/// Reader threads.
const THREADS: usize = 8;
/// Requests per thread through the cache (part 1).
const CACHED_REQUESTS: usize = 10_000;
/// Requests per thread straight to the database (part 1's baseline; fewer,
/// since each one is a query).
const UNCACHED_REQUESTS: usize = 500;
/// Products the cache holds: 10% of the catalogue.
const CACHE_CAPACITY: u64 = 5_000;
/// Popularity skew of the requests: Zipf with this exponent over the
/// products (product 1 is the most popular).
const ZIPF_S: f64 = 1.2;
/// Part 3: the time to live of the hot entries, the refresh point, the
/// number of hot products and how long each variant runs.
const HOT_TTL: Duration = Duration::from_millis(100);
const HOT_REFRESH: Duration = Duration::from_millis(60);
const HOT_PRODUCTS: u32 = 16;
const HOT_RUN: Duration = Duration::from_secs(2);
/// Part 2: threads asking for the hot product at once.
const STAMPEDERS: usize = 32;
/// Part 3: a read slower than this waited for the database.
const WAITED: Duration = Duration::from_micros(250);

// ---------------------------------------------------------------------------
// The database.

/// What the expensive query returns: a product and its review summary.
#[derive(Debug)]
#[allow(dead_code)] // the fields are the payload; the demo only counts them
struct Summary {
    id: u32,
    name: String,
    price: f64,
    reviews: u32,
    stars: f64,
    category_stars: f64,
}

/// The product summary. The first two subqueries are index lookups; the
/// third joins every product of the category with all of its reviews and
/// averages their stars: the expensive part.
const SUMMARY_SQL: &str = "
    SELECT p.name, p.price,
        (SELECT COUNT(*) FROM reviews r WHERE r.product_id = p.id),
        (SELECT COALESCE(AVG(r.stars), 0) FROM reviews r WHERE r.product_id = p.id),
        (SELECT COALESCE(AVG(r.stars), 0)
            FROM products q JOIN reviews r ON r.product_id = q.id
            WHERE q.category = p.category)
    FROM products p WHERE p.id = ?1";

/// Path of the demo's database file.
static DB_PATH: OnceLock<PathBuf> = OnceLock::new();
/// Every query the database has run.
static QUERIES: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Each thread's own connection (SQLite connections are not shared
    /// between threads here), opened on first use.
    static CONN: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

/// Runs the expensive query for product `id` on this thread's connection.
fn query_summary(id: u32) -> Arc<Summary> {
    QUERIES.fetch_add(1, Ordering::Relaxed);
    CONN.with(|cell| {
        let mut cell = cell.borrow_mut();
        let conn = cell.get_or_insert_with(|| {
            let conn = Connection::open(DB_PATH.get().expect("database created"))
                .expect("open the database");
            conn
        });
        let mut stmt = conn.prepare_cached(SUMMARY_SQL).expect("prepare");
        let summary = stmt
            .query_row(params![id], |row| {
                Ok(Summary {
                    id,
                    name: row.get(0)?,
                    price: row.get(1)?,
                    reviews: row.get(2)?,
                    stars: row.get(3)?,
                    category_stars: row.get(4)?,
                })
            })
            .expect("every product exists");
        Arc::new(summary)
    })
}

/// Creates the database: products, reviews, and the indexes a real schema
/// would have.
fn create_database() -> PathBuf {
    let path = std::env::temp_dir().join(format!("larder-demo-{}.db", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let mut conn = Connection::open(&path).expect("create the database");
    conn.execute_batch(
        "PRAGMA journal_mode = WAL;
         CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, category INTEGER, price REAL);
         CREATE TABLE reviews (id INTEGER PRIMARY KEY, product_id INTEGER, stars INTEGER, body TEXT);",
    )
    .unwrap();
    let mut rng = Rng(42);
    let tx = conn.transaction().unwrap();
    {
        let mut insert = tx
            .prepare("INSERT INTO products VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for id in 1..=PRODUCTS {
            let price = 1.0 + (rng.next() % 50_000) as f64 / 100.0;
            insert
                .execute(params![id, format!("product {id}"), id % CATEGORIES, price])
                .unwrap();
        }
        let mut insert = tx
            .prepare("INSERT INTO reviews VALUES (?1, ?2, ?3, ?4)")
            .unwrap();
        for id in 1..=REVIEWS {
            let product = 1 + (rng.next() % u64::from(PRODUCTS)) as u32;
            let stars = 1 + rng.next() % 5;
            insert
                .execute(params![id, product, stars, "solid, would buy again"])
                .unwrap();
        }
    }
    tx.commit().unwrap();
    conn.execute_batch(
        "CREATE INDEX reviews_by_product ON reviews (product_id);
         CREATE INDEX products_by_category ON products (category);
         ANALYZE;",
    )
    .unwrap();
    path
}

// ---------------------------------------------------------------------------
// The workload: a small random number generator and a Zipf sampler.

/// Product ids with P(id = k) proportional to 1 / k^s: a table of the
/// cumulative distribution, inverted by binary search.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut cdf = Vec::with_capacity(n as usize);
        let mut total = 0.0;
        for k in 1..=n {
            total += 1.0 / f64::from(k).powf(s);
            cdf.push(total);
        }
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { cdf }
    }

    fn sample(&self, rng: &mut Rng) -> u32 {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u) as u32 + 1
    }
}

// ---------------------------------------------------------------------------
// Measuring.

/// Latencies of many requests, in nanoseconds.
#[derive(Default)]
struct Latencies(Vec<u64>);

impl Latencies {
    fn merge(parts: impl IntoIterator<Item = Latencies>) -> Self {
        let mut all: Vec<u64> = parts.into_iter().flat_map(|l| l.0).collect();
        all.sort_unstable();
        Self(all)
    }

    /// The `q` quantile (the latencies must be sorted).
    fn quantile(&self, q: f64) -> Duration {
        let i = ((self.0.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_nanos(self.0.get(i).copied().unwrap_or(0))
    }

    fn max(&self) -> Duration {
        Duration::from_nanos(self.0.last().copied().unwrap_or(0))
    }

    fn count_over(&self, limit: Duration) -> usize {
        let limit = limit.as_nanos() as u64;
        self.0.len() - self.0.partition_point(|&n| n <= limit)
    }
}

/// Formats a duration for a table: µs below a millisecond, else ms.
fn fmt(d: Duration) -> String {
    if d < Duration::from_millis(1) {
        format!("{:.1} µs", d.as_secs_f64() * 1e6)
    } else {
        format!("{:.2} ms", d.as_secs_f64() * 1e3)
    }
}

/// Thousands separators.
fn n(v: impl Into<u64>) -> String {
    let s = v.into().to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Runs `requests` requests on each of `THREADS` threads, each request
/// `serve(product id)`, ids drawn from `zipf`. Returns the latencies and
/// the wall time.
fn run_stream(
    zipf: &Arc<Zipf>,
    requests: usize,
    serve: impl Fn(u32) + Send + Sync + Clone + 'static,
) -> (Latencies, Duration) {
    let start = Arc::new(Barrier::new(THREADS + 1));
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (zipf, start, serve) = (zipf.clone(), start.clone(), serve.clone());
            thread::spawn(move || {
                let mut rng = Rng(0x5EED + t as u64 * 7919);
                let mut lat = Latencies(Vec::with_capacity(requests));
                start.wait();
                for _ in 0..requests {
                    let id = zipf.sample(&mut rng);
                    let t0 = Instant::now();
                    serve(id);
                    lat.0.push(t0.elapsed().as_nanos() as u64);
                }
                lat
            })
        })
        .collect();
    start.wait();
    let t0 = Instant::now();
    let parts: Vec<Latencies> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    (Latencies::merge(parts), t0.elapsed())
}

// ---------------------------------------------------------------------------

fn main() {
    let total = Instant::now();
    println!("larder demo: a LoadingCache in front of SQLite\n");

    // --- Setup -------------------------------------------------------------
    let t0 = Instant::now();
    let path = create_database();
    DB_PATH.set(path.clone()).unwrap();
    println!(
        "Created {} ({} products in {} categories, {} reviews) in {:.1} s.",
        path.display(),
        n(PRODUCTS),
        CATEGORIES,
        n(REVIEWS),
        t0.elapsed().as_secs_f64()
    );
    let mut rng = Rng(7);
    let t0 = Instant::now();
    for _ in 0..50 {
        query_summary(1 + (rng.next() % u64::from(PRODUCTS)) as u32);
    }
    let per_query = t0.elapsed() / 50;
    println!(
        "The product-summary query (it averages the stars of every review in the product's\n\
         category: a join over ~{} products and ~{} reviews) takes {} on one thread.\n",
        PRODUCTS / CATEGORIES,
        n(REVIEWS / CATEGORIES),
        fmt(per_query)
    );
    QUERIES.store(0, Ordering::Relaxed);

    let zipf = Arc::new(Zipf::new(PRODUCTS, ZIPF_S));

    // --- 1. With and without the cache --------------------------------------
    println!(
        "1. Read-through: {THREADS} threads, Zipf({ZIPF_S}) over {} products",
        n(PRODUCTS)
    );
    println!("   ----------------------------------------------------------------");
    let (direct, direct_wall) = run_stream(&zipf, UNCACHED_REQUESTS, |id| {
        std::hint::black_box(query_summary(id));
    });
    let direct_requests = (THREADS * UNCACHED_REQUESTS) as u64;
    let direct_queries = QUERIES.swap(0, Ordering::Relaxed);

    let products: LoadingCache<u32, Arc<Summary>> = Cache::builder()
        .max_capacity(CACHE_CAPACITY)
        .build_with_loader(|id: &u32| query_summary(*id));
    let cached_products = products.clone();
    let (cached, cached_wall) = run_stream(&zipf, CACHED_REQUESTS, move |id| {
        std::hint::black_box(cached_products.get(&id));
    });
    let cached_requests = (THREADS * CACHED_REQUESTS) as u64;
    let cached_queries = QUERIES.swap(0, Ordering::Relaxed);

    let rate = |req: u64, wall: Duration| req as f64 / wall.as_secs_f64();
    println!(
        "                        {:>14} {:>14}",
        "no cache", "LoadingCache"
    );
    println!(
        "   requests             {:>14} {:>14}",
        n(direct_requests),
        n(cached_requests)
    );
    println!(
        "   backend queries      {:>14} {:>14}",
        n(direct_queries),
        n(cached_queries)
    );
    println!(
        "   queries / 1,000 req  {:>14.0} {:>14.0}",
        direct_queries as f64 * 1000.0 / direct_requests as f64,
        cached_queries as f64 * 1000.0 / cached_requests as f64
    );
    println!(
        "   throughput           {:>10.0} /s {:>12.0} /s",
        rate(direct_requests, direct_wall),
        rate(cached_requests, cached_wall)
    );
    println!(
        "   p50 latency          {:>14} {:>14}",
        fmt(direct.quantile(0.5)),
        fmt(cached.quantile(0.5))
    );
    println!(
        "   p99 latency          {:>14} {:>14}",
        fmt(direct.quantile(0.99)),
        fmt(cached.quantile(0.99))
    );
    println!(
        "   Without the cache, the {} requests would have cost {} queries and about {:.0} s.\n",
        n(cached_requests),
        n(cached_requests),
        cached_requests as f64 / rate(direct_requests, direct_wall)
    );

    // --- 2. A stampede -----------------------------------------------------
    println!(
        "2. A stampede: {STAMPEDERS} threads keep asking for product 1 (the hottest); it is invalidated once"
    );
    println!("   ----------------------------------------------------------------");
    // Naive cache-aside: get, query on a miss, insert.
    let naive: Cache<u32, Arc<Summary>> = Cache::new(CACHE_CAPACITY);
    naive.insert(1, query_summary(1));
    let (naive_requests, naive_queries) = stampede(
        || {
            naive.remove(&1);
        },
        {
            let naive = naive.clone();
            move || match naive.get(&1) {
                Some(v) => v,
                None => {
                    let v = query_summary(1);
                    naive.insert(1, v.clone());
                    v
                }
            }
        },
    );
    products.get(&1);
    let (loading_requests, loading_queries) = stampede(
        || {
            products.remove(&1);
        },
        {
            let products = products.clone();
            move || products.get(&1)
        },
    );
    println!(
        "   naive cache-aside (get / query / insert): {:>3} queries ({} requests)",
        naive_queries,
        n(naive_requests)
    );
    println!(
        "   LoadingCache::get (single flight):        {:>3} query   ({} requests; the others waited for it)",
        loading_queries,
        n(loading_requests)
    );
    println!(
        "   (naive: one query per request that misses while the reload runs; on this {}-core\n\
         \x20   machine only a few can run at once, more cores make it worse)\n",
        thread::available_parallelism().map_or(1, |n| n.get())
    );

    // --- 3. Refresh-ahead -------------------------------------------------
    println!(
        "3. Refresh-ahead: {HOT_PRODUCTS} hot products, time to live {} ms, {THREADS} readers, {} s each",
        HOT_TTL.as_millis(),
        HOT_RUN.as_secs()
    );
    println!("   ----------------------------------------------------------------");
    let expiring: LoadingCache<u32, Arc<Summary>> = Cache::builder()
        .max_capacity(1_000)
        .time_to_live(HOT_TTL)
        .build_with_loader(|id: &u32| query_summary(*id));
    let (plain, plain_queries) = hot_reads(&expiring);
    let refreshing: LoadingCache<u32, Arc<Summary>> = Cache::builder()
        .max_capacity(1_000)
        .time_to_live(HOT_TTL)
        .refresh_after(HOT_REFRESH)
        .build_with_loader(|id: &u32| query_summary(*id));
    let (ahead, ahead_queries) = hot_reads(&refreshing);
    println!(
        "                          {:>16} {:>22}",
        "TTL only",
        format!("+ refresh_after {} ms", HOT_REFRESH.as_millis())
    );
    println!(
        "   reads                  {:>16} {:>22}",
        n(plain.0.len() as u64),
        n(ahead.0.len() as u64)
    );
    println!(
        "   p50                    {:>16} {:>22}",
        fmt(plain.quantile(0.5)),
        fmt(ahead.quantile(0.5))
    );
    println!(
        "   p99                    {:>16} {:>22}",
        fmt(plain.quantile(0.99)),
        fmt(ahead.quantile(0.99))
    );
    println!(
        "   p99.9                  {:>16} {:>22}",
        fmt(plain.quantile(0.999)),
        fmt(ahead.quantile(0.999))
    );
    println!(
        "   max                    {:>16} {:>22}",
        fmt(plain.max()),
        fmt(ahead.max())
    );
    println!(
        "   reads over {:<4}        {:>16} {:>22}",
        fmt(WAITED),
        n(plain.count_over(WAITED) as u64),
        n(ahead.count_over(WAITED) as u64)
    );
    println!(
        "   backend queries        {:>16} {:>22}",
        n(plain_queries),
        n(ahead_queries)
    );
    let rs = refreshing.stats();
    println!(
        "   With refresh-ahead the {} reloads ran in the background ({} refreshes, {} failed);",
        n(ahead_queries),
        n(rs.refreshes),
        n(rs.refresh_failures)
    );
    println!("   readers got the current value at once instead of waiting for the query.\n");
    drop(refreshing); // stops and joins its two refresh threads

    // --- 4. Final statistics ------------------------------------------------
    let s = products.stats();
    println!("4. Final statistics of the cache of parts 1 and 2");
    println!("   ----------------------------------------------------------------");
    println!(
        "   requests {}, hits {}, misses {}, hit ratio {:.1}%",
        n(s.requests()),
        n(s.hits),
        n(s.misses),
        s.hit_ratio() * 100.0
    );
    println!(
        "   loads {} (mean {} each), load failures {}, entries {} of {}",
        n(s.loads),
        fmt(s.total_load_time / s.loads.max(1) as u32),
        n(s.load_failures),
        n(products.cache().len() as u64),
        n(CACHE_CAPACITY)
    );
    println!(
        "   read latency in part 1 (hits and misses): p50 {}, p99 {}, p99.9 {}",
        fmt(cached.quantile(0.5)),
        fmt(cached.quantile(0.99)),
        fmt(cached.quantile(0.999))
    );

    remove_database(&path);
    println!("\nDone in {:.1} s.", total.elapsed().as_secs_f64());
}

/// `STAMPEDERS` threads call `want` in a loop (one call about every
/// 200 µs each) for 60 ms; `invalidate` runs 20 ms in. Returns the
/// requests made and the queries the database ran meanwhile.
fn stampede<T>(
    invalidate: impl FnOnce(),
    want: impl Fn() -> T + Send + Sync + Clone + 'static,
) -> (u64, u64) {
    let gate = Arc::new(Barrier::new(STAMPEDERS + 1));
    let before = QUERIES.load(Ordering::SeqCst);
    let handles: Vec<_> = (0..STAMPEDERS)
        .map(|_| {
            let (gate, want) = (gate.clone(), want.clone());
            thread::spawn(move || {
                gate.wait();
                let end = Instant::now() + Duration::from_millis(60);
                let mut requests = 0;
                while Instant::now() < end {
                    drop(want());
                    requests += 1;
                    thread::sleep(Duration::from_micros(200));
                }
                requests
            })
        })
        .collect();
    gate.wait();
    thread::sleep(Duration::from_millis(20));
    invalidate();
    let requests = handles.into_iter().map(|h| h.join().unwrap()).sum();
    (requests, QUERIES.load(Ordering::SeqCst) - before)
}

/// `THREADS` readers read the hot products round-robin for `HOT_RUN`, one
/// read about every 100 µs each. Returns the latencies and the queries run.
fn hot_reads(cache: &LoadingCache<u32, Arc<Summary>>) -> (Latencies, u64) {
    for id in 1..=HOT_PRODUCTS {
        cache.get(&id);
    }
    let before = QUERIES.load(Ordering::SeqCst);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let cache = cache.clone();
            thread::spawn(move || {
                let mut lat = Latencies::default();
                let end = Instant::now() + HOT_RUN;
                let mut i = t as u32;
                while Instant::now() < end {
                    let id = 1 + i % HOT_PRODUCTS;
                    i = i.wrapping_add(1);
                    let t0 = Instant::now();
                    std::hint::black_box(cache.get(&id));
                    lat.0.push(t0.elapsed().as_nanos() as u64);
                    thread::sleep(Duration::from_micros(100));
                }
                lat
            })
        })
        .collect();
    let lat = Latencies::merge(handles.into_iter().map(|h| h.join().unwrap()));
    (lat, QUERIES.load(Ordering::SeqCst) - before)
}
