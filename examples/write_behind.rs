//! Write-through vs write-behind against SQLite: a page-view counter.
//!
//! 100,000 page views over 10,000 pages, Zipf-skewed (exponent 1.0, so the
//! hottest page gets about 10% of the views). Each view reads the page's
//! counter (the adapter first, SQLite on a miss) and writes it back plus
//! one. The same view sequence runs once through [`WriteThrough`] (one
//! SQLite transaction per view) and once through [`WriteBehind`] (hot
//! counters coalesce in the queue; one transaction per batch), each into
//! its own database file. The run prints the store calls each made and
//! checks that both tables end up identical, and equal to the true counts.
//!
//! ```text
//! cargo run --release --example write_behind
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use larder::{Cache, Store, WriteBehind, WriteThrough};
use rusqlite::{params, Connection, OptionalExtension};

/// Page views in the workload.
const VIEWS: usize = 100_000;
/// Distinct pages.
const PAGES: u32 = 10_000;
/// Zipf exponent: 1.0 is the classic web-popularity skew.
const ZIPF_S: f64 = 1.0;
/// Counters the cache holds: 10% of the pages.
const CACHE_CAPACITY: u64 = 1_000;
/// The bar from issue 6: write-behind makes at least this many times
/// fewer store calls than write-through.
const BAR: f64 = 20.0;

// ---------------------------------------------------------------------------
// The workload: a small PRNG and a Zipf sampler, no dependencies.

/// SplitMix64 (Steele, Lea and Flood, "Fast splittable pseudorandom number
/// generators", OOPSLA 2014): tiny, fast and good enough for a workload.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1) from the top 53 bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Samples ranks 0..n with P(rank k) proportional to 1 / (k + 1)^s, by
/// binary search over the cumulative distribution.
struct Zipf {
    cdf: Vec<f64>,
}

impl Zipf {
    fn new(n: u32, s: f64) -> Self {
        let mut total = 0.0;
        let mut cdf: Vec<f64> = (1..=n)
            .map(|k| {
                total += 1.0 / f64::from(k).powf(s);
                total
            })
            .collect();
        for c in &mut cdf {
            *c /= total;
        }
        Self { cdf }
    }
    fn sample(&self, rng: &mut SplitMix64) -> u32 {
        let u = rng.next_f64();
        let rank = self.cdf.partition_point(|&c| c <= u);
        rank.min(self.cdf.len() - 1) as u32
    }
}

// ---------------------------------------------------------------------------
// The store: one SQLite table, counting the calls made to it.

struct Sqlite {
    conn: Mutex<Connection>,
    /// `Store::write`/`delete` calls, each one transaction.
    calls: AtomicU64,
    /// Rows upserted or deleted.
    rows: AtomicU64,
    /// Counter reads on a cache miss.
    reads: AtomicU64,
}

impl Sqlite {
    fn open(path: &Path) -> rusqlite::Result<Arc<Self>> {
        let _ = std::fs::remove_file(path);
        let conn = Connection::open(path)?;
        // WAL with synchronous=NORMAL: durable across a process crash,
        // without an fsync per commit. Both adapters run with the same
        // settings.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute(
            "CREATE TABLE page_views (page INTEGER PRIMARY KEY, views INTEGER NOT NULL)",
            [],
        )?;
        Ok(Arc::new(Self {
            conn: Mutex::new(conn),
            calls: AtomicU64::new(0),
            rows: AtomicU64::new(0),
            reads: AtomicU64::new(0),
        }))
    }

    fn table(&self) -> BTreeMap<u32, u64> {
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare("SELECT page, views FROM page_views").unwrap();
        let rows = stmt
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap();
        rows.collect::<rusqlite::Result<_>>().unwrap()
    }
}

impl Store<u32, u64> for Sqlite {
    type Error = rusqlite::Error;

    fn write(&self, batch: &[(u32, u64)]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO page_views (page, views) VALUES (?1, ?2)
                 ON CONFLICT (page) DO UPDATE SET views = excluded.views",
            )?;
            for (page, views) in batch {
                upsert.execute(params![page, views])?;
            }
        }
        tx.commit()?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(batch.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn delete(&self, pages: &[u32]) -> rusqlite::Result<()> {
        let mut conn = self.conn.lock().unwrap();
        let tx = conn.transaction()?;
        {
            let mut delete = tx.prepare_cached("DELETE FROM page_views WHERE page = ?1")?;
            for page in pages {
                delete.execute([page])?;
            }
        }
        tx.commit()?;
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.rows.fetch_add(pages.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// What the adapters read on a miss (a page neither pending nor
    /// cached).
    fn read(&self, page: &u32) -> rusqlite::Result<Option<u64>> {
        self.reads.fetch_add(1, Ordering::Relaxed);
        let conn = self.conn.lock().unwrap();
        let mut stmt = conn.prepare_cached("SELECT views FROM page_views WHERE page = ?1")?;
        stmt.query_row([page], |row| row.get(0)).optional()
    }
}

// ---------------------------------------------------------------------------

struct Run {
    table: BTreeMap<u32, u64>,
    calls: u64,
    rows: u64,
    reads: u64,
    elapsed: Duration,
}

fn db_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("larder-example-{}-{name}.db", std::process::id()))
}

fn cleanup(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

fn write_through(views: &[u32]) -> Run {
    let path = db_path("through");
    let db = Sqlite::open(&path).expect("open SQLite");
    let wt = WriteThrough::new(Cache::new(CACHE_CAPACITY), db.clone());
    let start = Instant::now();
    for &page in views {
        // Cached, or read from SQLite through `Store::read` on a miss.
        let count = wt.try_get(&page).expect("SQLite read").unwrap_or(0);
        wt.write(page, count + 1).expect("SQLite write");
    }
    let elapsed = start.elapsed();
    let run = Run {
        table: db.table(),
        calls: db.calls.load(Ordering::Relaxed),
        rows: db.rows.load(Ordering::Relaxed),
        reads: db.reads.load(Ordering::Relaxed),
        elapsed,
    };
    drop(wt);
    drop(db);
    cleanup(&path);
    run
}

fn write_behind(views: &[u32]) -> (Run, larder::WriteBehindStats) {
    let path = db_path("behind");
    let db = Sqlite::open(&path).expect("open SQLite");
    let wb = WriteBehind::builder(Cache::new(CACHE_CAPACITY), db.clone())
        .batch_size(500)
        .max_delay(Duration::from_millis(50))
        .queue_capacity(100_000)
        .on_failure(|ops, err| eprintln!("{} page counters not stored: {err}", ops.len()))
        .build();
    let start = Instant::now();
    for &page in views {
        // Pending and cached counters come from the adapter; a page that
        // is neither is read from SQLite (`Store::read`), where its latest
        // count is.
        let count = wb.try_get(&page).expect("SQLite read").unwrap_or(0);
        wb.write(page, count + 1);
    }
    wb.flush().expect("every counter stored");
    let elapsed = start.elapsed();
    let stats = wb.stats();
    wb.close().expect("closed cleanly");
    let run = Run {
        table: db.table(),
        calls: db.calls.load(Ordering::Relaxed),
        rows: db.rows.load(Ordering::Relaxed),
        reads: db.reads.load(Ordering::Relaxed),
        elapsed,
    };
    drop(db);
    cleanup(&path);
    (run, stats)
}

fn main() {
    let zipf = Zipf::new(PAGES, ZIPF_S);
    let mut rng = SplitMix64(0x5EED_1A2D);
    let views: Vec<u32> = (0..VIEWS).map(|_| zipf.sample(&mut rng)).collect();
    let mut truth: BTreeMap<u32, u64> = BTreeMap::new();
    for &page in &views {
        *truth.entry(page).or_default() += 1;
    }
    let hottest = truth.values().max().copied().unwrap_or(0);
    println!(
        "workload: {VIEWS} page views over {PAGES} pages, Zipf s = {ZIPF_S:.1} \
         ({} pages viewed, hottest {hottest} views); cache {CACHE_CAPACITY} counters",
        truth.len()
    );

    let through = write_through(&views);
    let (behind, stats) = write_behind(&views);

    println!();
    println!(
        "{:<14} {:>13} {:>13} {:>13} {:>12} {:>10}",
        "", "writes issued", "store calls", "rows written", "miss reads", "time"
    );
    for (name, run) in [("write-through", &through), ("write-behind", &behind)] {
        println!(
            "{name:<14} {VIEWS:>13} {:>13} {:>13} {:>12} {:>8.0}ms",
            run.calls,
            run.rows,
            run.reads,
            run.elapsed.as_secs_f64() * 1e3
        );
    }
    println!();
    println!(
        "write-behind: {} writes, {} coalesced in the queue, {} batches executed, \
         {} store calls, {} retries, {} failures",
        stats.writes,
        stats.coalesced,
        stats.batches,
        stats.store_calls,
        stats.retries,
        stats.failures
    );
    let ratio = through.calls as f64 / behind.calls.max(1) as f64;
    println!(
        "store calls: write-through / write-behind = {} / {} = {ratio:.1}x (bar: >= {BAR}x)",
        through.calls, behind.calls
    );

    let identical = through.table == behind.table;
    println!(
        "final tables: {} rows each, identical: {identical}, equal to the true counts: {}",
        through.table.len(),
        behind.table == truth
    );
    assert!(identical, "the two tables differ");
    assert_eq!(
        behind.table, truth,
        "the tables do not hold the true counts"
    );
    assert!(
        ratio >= BAR,
        "write-behind saved only {ratio:.1}x store calls"
    );
}
