//! Four processes in front of one SQLite database, with and without the
//! Redis tier: what a fleet gains from a shared L2, the lease, and
//! fleet-wide invalidation, and what a Redis outage costs it.
//!
//! ```text
//! cargo run --release --features redis --example fleet
//! ```
//!
//! Needs `redis-server` on PATH (`apt-get install redis-server`): the
//! example starts its own on a free loopback port, without persistence.
//! It runs each scenario with 4 child processes (this binary, started
//! with `--child`), 4 threads each, for 3 seconds, all starting cold at
//! the same moment:
//!
//! * `L1 only`: a plain [`Cache`] per process (`get_with`); writes update
//!   the writer's own cache only.
//! * `L1 + L2, no lease wait`: [`TieredCache`] with `lease_wait(0)`: a
//!   process that misses while another loads does not wait for it.
//! * `L1 + L2 + lease`: the default tier.
//! * `... + outage`: the same, with redis-server killed after 1 s and
//!   restarted after 2 s.
//!
//! The workload: 5,000 rows, reads skewed to low ids (id = 5,000 x u^3 for
//! uniform u: the hottest 1% of rows get about 22% of reads), each query
//! taking the database about 2 ms (a sleep stands for the round trip); 0.5%
//! of operations update a row in SQLite, then `insert` the new value.
//! After the run every process compares each entry of its L1 with the
//! database ("stale at end"). Then, in the tiered scenarios, process 0
//! invalidates 200 keys that all processes hold, 2 ms apart, and the
//! others time each drop from their eviction listener (wall clock, one
//! machine): the invalidation latency.

use std::cell::RefCell;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use larder::redis::{RedisTier, TieredCache};
use larder::{Cache, RemovalCause};
use rusqlite::{params, Connection, OptionalExtension};

const PROCS: usize = 4;
const THREADS: usize = 4;
const ROWS: u64 = 5_000;
const RUN: Duration = Duration::from_secs(3);
const QUERY_COST: Duration = Duration::from_millis(2);
const PROBES: u64 = 200;
const PROBE_BASE: u64 = 1_000_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn sleep_until_ms(t: u64) {
    let now = now_ms();
    if t > now {
        std::thread::sleep(Duration::from_millis(t - now));
    }
}

fn wait_file(p: &Path) {
    while !p.exists() {
        std::thread::sleep(Duration::from_millis(2));
    }
}

// ---------------------------------------------------------------- child

thread_local! {
    static DB: RefCell<Option<Connection>> = const { RefCell::new(None) };
}

fn with_db<R>(path: &Path, f: impl FnOnce(&Connection) -> R) -> R {
    DB.with(|db| {
        let mut db = db.borrow_mut();
        let conn = db.get_or_insert_with(|| {
            let c = Connection::open(path).unwrap();
            c.busy_timeout(Duration::from_secs(5)).unwrap();
            c
        });
        f(conn)
    })
}

enum Front {
    Plain(Cache<u64, String>),
    Tiered(TieredCache<u64, String>),
}

struct Child2 {
    front: Front,
    queries: Arc<AtomicU64>,
    db: PathBuf,
}

impl Child2 {
    fn get(&self, k: u64) -> String {
        match &self.front {
            Front::Plain(c) => c.get_with(k, || query(&self.db, &self.queries, k)),
            Front::Tiered(c) => c.get(&k),
        }
    }
    fn insert(&self, k: u64, v: String) {
        match &self.front {
            Front::Plain(c) => c.insert(k, v),
            Front::Tiered(c) => c.insert(k, v),
        }
    }
    fn cache(&self) -> &Cache<u64, String> {
        match &self.front {
            Front::Plain(c) => c,
            Front::Tiered(c) => c.cache(),
        }
    }
}

fn query(db: &Path, queries: &AtomicU64, k: u64) -> String {
    queries.fetch_add(1, Ordering::Relaxed);
    std::thread::sleep(QUERY_COST);
    with_db(db, |c| {
        c.query_row(
            "SELECT val FROM rows WHERE id = ?1",
            params![k as i64],
            |r| r.get::<_, String>(0),
        )
        .optional()
        .unwrap()
        .unwrap_or_else(|| "none".to_string())
    })
}

fn say(s: &str) {
    let mut o = std::io::stdout().lock();
    writeln!(o, "{s}").unwrap();
    o.flush().unwrap();
}

fn child(args: &[String]) {
    // --child <index> <scenario> <dir> <redis url>
    let index: usize = args[0].parse().unwrap();
    let scenario = args[1].as_str();
    let dir = PathBuf::from(&args[2]);
    let url = &args[3];
    let db = dir.join("db.sqlite");
    let queries = Arc::new(AtomicU64::new(0));
    let drops: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let d = drops.clone();
    let builder = Cache::builder()
        .max_capacity(2_000)
        .time_to_live(Duration::from_secs(60))
        .eviction_listener(move |k: &u64, _v: &String, cause| {
            if *k >= PROBE_BASE && cause == RemovalCause::Explicit {
                d.lock().unwrap().push((*k, now_ns()));
            }
        });
    let front = if scenario == "l1" {
        Front::Plain(builder.build())
    } else {
        let mut tier = RedisTier::builder(url.as_str()).namespace("fleet");
        if scenario == "nolease" {
            tier = tier.lease_wait(Duration::ZERO);
        }
        let (q, p) = (queries.clone(), db.clone());
        Front::Tiered(builder.build_tiered(tier.build().unwrap(), move |k: &u64| query(&p, &q, *k)))
    };
    let me = Child2 {
        front,
        queries,
        db: db.clone(),
    };
    say("READY");
    wait_file(&dir.join("start"));
    let start: u64 = std::fs::read_to_string(dir.join("start"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    sleep_until_ms(start);
    let end = Instant::now() + RUN;
    let reads = AtomicU64::new(0);
    let writes = AtomicU64::new(0);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (me, reads, writes, db) = (&me, &reads, &writes, &db);
            s.spawn(move || {
                let mut rng = 0x9e37_79b9_7f4a_7c15u64
                    ^ (((index * THREADS + t) as u64 + 1).wrapping_mul(0x1234_5678_9abc_def1));
                let mut next = move || {
                    rng = rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    let mut z = rng;
                    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                    z ^ (z >> 31)
                };
                while Instant::now() < end {
                    let u = (next() >> 11) as f64 / (1u64 << 53) as f64;
                    let k = ((ROWS as f64) * u * u * u) as u64;
                    if next() % 200 == 0 {
                        let v = format!("row {k} v{}", next() % 1_000_000);
                        with_db(db, |c| {
                            c.execute(
                                "UPDATE rows SET val = ?1 WHERE id = ?2",
                                params![v, k as i64],
                            )
                            .unwrap()
                        });
                        me.insert(k, v);
                        writes.fetch_add(1, Ordering::Relaxed);
                    } else {
                        let v = me.get(k);
                        assert!(v.starts_with("row"), "bad read {v}");
                        reads.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    // Let the last invalidations land, then compare the L1 with the db.
    sleep_until_ms(start + RUN.as_millis() as u64 + 600);
    let mut stale = 0;
    let mut held = 0;
    for (k, v) in me.cache().iter() {
        if k < ROWS {
            held += 1;
            let truth = with_db(&db, |c| {
                c.query_row(
                    "SELECT val FROM rows WHERE id = ?1",
                    params![k as i64],
                    |r| r.get::<_, String>(0),
                )
                .unwrap()
            });
            stale += usize::from(truth != v);
        }
    }
    let st = me.cache().stats();
    let (l2h, l2m, l2e) = match &me.front {
        Front::Tiered(c) => {
            let t = c.tier_stats();
            (t.l2_hits, t.l2_misses, t.l2_errors + t.l2_skipped)
        }
        Front::Plain(_) => (0, 0, 0),
    };
    let deaf = match &me.front {
        Front::Tiered(c) => u64::from(!c.is_subscribed()),
        Front::Plain(_) => 0,
    };
    say(&format!(
        "RESULT {} {} {} {} {} {} {} {} {} {} {deaf}",
        me.queries.load(Ordering::Relaxed),
        st.hits,
        st.misses,
        l2h,
        l2m,
        l2e,
        reads.load(Ordering::Relaxed),
        writes.load(Ordering::Relaxed),
        stale,
        held
    ));
    let Front::Tiered(c) = &me.front else { return };
    for p in 0..PROBES {
        c.get(&(PROBE_BASE + p));
    }
    say("PROBE-READY");
    wait_file(&dir.join("probe"));
    if index == 0 {
        for p in 0..PROBES {
            say(&format!("SENT {} {}", PROBE_BASE + p, now_ns()));
            c.invalidate(&(PROBE_BASE + p));
            std::thread::sleep(Duration::from_millis(2));
        }
        say("SENT-END");
    }
    wait_file(&dir.join("done"));
    for (k, t) in drops.lock().unwrap().iter() {
        say(&format!("DROP {k} {t}"));
    }
    say("END");
}

// ---------------------------------------------------------------- parent

struct Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl Server {
    fn start(&mut self) {
        let c = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH (apt-get install redis-server)");
        self.child = Some(c);
        let url = format!("redis://127.0.0.1:{}/", self.port);
        for _ in 0..500 {
            let ok = redis::Client::open(url.as_str())
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(100)))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
                .is_ok();
            if ok {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("redis-server did not start");
    }
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Default)]
struct Row {
    queries: u64,
    l1_hits: u64,
    l1_misses: u64,
    l2_hits: u64,
    l2_misses: u64,
    l2_errors: u64,
    reads: u64,
    writes: u64,
    stale: u64,
    held: u64,
    deaf: u64,
    lat_ns: Vec<u64>,
}

fn scenario(name: &str, dir: &Path, server: &mut Server) -> Row {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    {
        let c = Connection::open(dir.join("db.sqlite")).unwrap();
        c.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE rows (id INTEGER PRIMARY KEY, val TEXT NOT NULL);")
            .unwrap();
        let tx = c.unchecked_transaction().unwrap();
        for k in 0..ROWS {
            tx.execute(
                "INSERT INTO rows VALUES (?1, ?2)",
                params![k as i64, format!("row {k} v0")],
            )
            .unwrap();
        }
        tx.commit().unwrap();
    }
    // Every scenario starts with an empty Redis.
    server.kill();
    server.start();
    let url = format!("redis://127.0.0.1:{}/", server.port);
    let exe = std::env::current_exe().unwrap();
    let mut kids: Vec<(Child, BufReader<std::process::ChildStdout>)> = (0..PROCS)
        .map(|i| {
            let mut c = Command::new(&exe)
                .arg("--child")
                .arg(i.to_string())
                .arg(name)
                .arg(dir)
                .arg(&url)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap();
            let out = BufReader::new(c.stdout.take().unwrap());
            (c, out)
        })
        .collect();
    let expect = |out: &mut BufReader<std::process::ChildStdout>, prefix: &str| -> String {
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "child ended before {prefix}"
            );
            if let Some(r) = line.trim_end().strip_prefix(prefix) {
                return r.trim().to_string();
            }
        }
    };
    for (_, out) in &mut kids {
        expect(out, "READY");
    }
    let start = now_ms() + 300;
    std::fs::write(dir.join("start"), start.to_string()).unwrap();
    if name == "outage" {
        sleep_until_ms(start + 1000);
        server.kill();
        sleep_until_ms(start + 2000);
        server.start();
    }
    let mut row = Row::default();
    for (_, out) in &mut kids {
        let r: Vec<u64> = expect(out, "RESULT")
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        row.queries += r[0];
        row.l1_hits += r[1];
        row.l1_misses += r[2];
        row.l2_hits += r[3];
        row.l2_misses += r[4];
        row.l2_errors += r[5];
        row.reads += r[6];
        row.writes += r[7];
        row.stale += r[8];
        row.held += r[9];
        row.deaf += r[10];
    }
    if name != "l1" {
        for (_, out) in &mut kids {
            expect(out, "PROBE-READY");
        }
        std::fs::write(dir.join("probe"), b"").unwrap();
        let mut sent = std::collections::HashMap::new();
        {
            let out = &mut kids[0].1;
            let mut line = String::new();
            loop {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0);
                let l = line.trim_end();
                if l == "SENT-END" {
                    break;
                }
                if let Some(r) = l.strip_prefix("SENT ") {
                    let mut it = r.split(' ');
                    let k: u64 = it.next().unwrap().parse().unwrap();
                    let t: u64 = it.next().unwrap().parse().unwrap();
                    sent.insert(k, t);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        std::fs::write(dir.join("done"), b"").unwrap();
        for (i, (_, out)) in kids.iter_mut().enumerate() {
            let mut line = String::new();
            loop {
                line.clear();
                assert!(out.read_line(&mut line).unwrap() > 0);
                let l = line.trim_end();
                if l == "END" {
                    break;
                }
                if i == 0 {
                    continue;
                }
                if let Some(r) = l.strip_prefix("DROP ") {
                    let mut it = r.split(' ');
                    let k: u64 = it.next().unwrap().parse().unwrap();
                    let t: u64 = it.next().unwrap().parse().unwrap();
                    if let Some(&t0) = sent.get(&k) {
                        row.lat_ns.push(t.saturating_sub(t0));
                    }
                }
            }
        }
    }
    for (mut c, _) in kids {
        assert!(c.wait().unwrap().success(), "a child failed");
    }
    row
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--child") {
        child(&args[1..]);
        return;
    }
    let base = std::env::temp_dir().join(format!("larder-fleet-{}", std::process::id()));
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Server {
        child: None,
        port,
        dir: base.join("redis"),
    };
    std::fs::create_dir_all(&server.dir).unwrap();
    println!(
        "{PROCS} processes x {THREADS} threads, {ROWS} rows, {} ms per query, {} s per scenario\n",
        QUERY_COST.as_millis(),
        RUN.as_secs()
    );
    println!("| scenario | DB queries | reads | writes | L1 hit ratio | L2 hit ratio (of L1 misses) | Redis errors+skipped | stale L1 entries at end (processes deaf then) | invalidation p50 / p99 / max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for (name, label) in [
        ("l1", "L1 only"),
        ("nolease", "L1 + L2, no lease wait"),
        ("lease", "L1 + L2 + lease"),
        ("outage", "L1 + L2 + lease, Redis down 1 s-2 s"),
    ] {
        let mut r = scenario(name, &base.join(name), &mut server);
        let lat = if r.lat_ns.is_empty() {
            "—".to_string()
        } else {
            r.lat_ns.sort_unstable();
            let p = |q: f64| r.lat_ns[((r.lat_ns.len() - 1) as f64 * q) as usize] as f64 / 1e6;
            format!(
                "{:.2} / {:.2} / {:.2} ms ({} drops)",
                p(0.5),
                p(0.99),
                p(1.0),
                r.lat_ns.len()
            )
        };
        let l1 = r.l1_hits as f64 / (r.l1_hits + r.l1_misses).max(1) as f64;
        let l2 = if name == "l1" {
            "—".to_string()
        } else {
            format!(
                "{:.3}",
                r.l2_hits as f64 / (r.l2_hits + r.l2_misses).max(1) as f64
            )
        };
        println!(
            "| {label} | {} | {} | {} | {l1:.3} | {l2} | {} | {} of {} ({}) | {lat} |",
            r.queries, r.reads, r.writes, r.l2_errors, r.stale, r.held, r.deaf
        );
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&base);
}
