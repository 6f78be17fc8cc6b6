//! Several OS processes on one Redis: this test binary starts copies of
//! itself (the `fleet_child` test, told its role by environment variables)
//! and checks what they report. Needs REDIS_URL (and redis-server on PATH
//! for the outage test).
//!
//! * an invalidation in one process reaches the L1s of the others;
//! * 4 processes x 16 threads on one cold key run the loader once in all;
//! * redis-server killed mid-run and restarted: the children's reads never
//!   fail, and nothing invalidated during the outage is served after.
#![cfg(feature = "redis")]

mod redis_support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use larder::redis::{RedisTier, TieredCache};
use larder::{Cache, RemovalCause};
use redis::Commands;
use redis_support as support;

const ROLE: &str = "LARDER_FLEET_ROLE";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn tier(url: &str, ns: &str) -> RedisTier {
    RedisTier::builder(url)
        .namespace(ns)
        .command_timeout(Duration::from_millis(500))
        .backoff(Duration::from_millis(20), Duration::from_millis(200))
        .ping_interval(Duration::from_millis(200))
        .build()
        .unwrap()
}

/// A child process running `fleet_child` with a role.
struct Proc {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Proc {
    fn spawn(role: &str, vars: &[(&str, String)]) -> Proc {
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["fleet_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .stdout(Stdio::piped());
        for (k, v) in vars {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        Proc { child, out }
    }

    /// The next line the child printed that starts with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        let mut line = String::new();
        let mut seen = String::new();
        loop {
            line.clear();
            let n = self.out.read_line(&mut line).unwrap();
            assert!(
                n > 0,
                "child ended before printing {prefix:?}; it printed:\n{seen}"
            );
            seen.push_str(&line);
            // libtest may have printed "test fleet_child ... " before it.
            if let Some(at) = line.find(prefix) {
                return line[at + prefix.len()..].trim().to_string();
            }
        }
    }

    fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child failed: {status}");
    }
}

/// Each child reports on one line, prefixed, so the test harness's own
/// output does not get in the way.
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    writeln!(out, "\n{line}").unwrap();
    out.flush().unwrap();
}

/// The entry point of every child process (a no-op in the parent run).
#[test]
fn fleet_child() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    match role.as_str() {
        "listen" => child_listen(),
        "cold" => child_cold(),
        "outage" => child_outage(),
        other => panic!("unknown role {other}"),
    }
}

fn wait_for_file(path: &Path, limit: Duration) {
    assert!(
        support::eventually(limit, || path.exists()),
        "{path:?} never appeared"
    );
}

// ---- an invalidation in one process reaches the others ----

const KEYS: u64 = 50;

fn child_listen() {
    let (url, ns, dir) = (
        env("LARDER_FLEET_URL"),
        env("LARDER_FLEET_NS"),
        env("LARDER_FLEET_DIR"),
    );
    let seen: Arc<Mutex<Vec<(u64, u64)>>> = Arc::default();
    let s = seen.clone();
    let c: TieredCache<u64, String> = Cache::builder()
        .eviction_listener(move |k: &u64, _v: &String, cause| {
            if cause == RemovalCause::Explicit {
                s.lock().unwrap().push((*k, now_nanos()));
            }
        })
        .build_tiered(tier(&url, &ns), |k: &u64| format!("v0-{k}"));
    for k in 0..KEYS {
        assert_eq!(c.get(&k), format!("v0-{k}"));
    }
    say("READY");
    wait_for_file(&Path::new(&dir).join("done"), Duration::from_secs(60));
    for &(k, t) in seen.lock().unwrap().iter() {
        say(&format!("DROPPED {k} {t}"));
    }
    for k in 0..KEYS {
        say(&format!("VALUE {k} {}", c.get(&k)));
    }
    say("END");
}

#[test]
fn an_invalidation_reaches_every_other_process() {
    let Some(url) = support::url("fleet_invalidation") else {
        return;
    };
    let ns = support::namespace("fleet-inv");
    let dir = tempdir("inv");
    let vars = [
        ("LARDER_FLEET_URL", url.clone()),
        ("LARDER_FLEET_NS", ns.clone()),
        ("LARDER_FLEET_DIR", dir.display().to_string()),
    ];
    let mut kids: Vec<Proc> = (0..3).map(|_| Proc::spawn("listen", &vars)).collect();
    for k in &mut kids {
        k.expect("READY");
    }
    let writer: TieredCache<u64, String> =
        Cache::builder().build_tiered(tier(&url, &ns), |k: &u64| format!("v0-{k}"));
    let mut sent = Vec::new();
    for k in 0..KEYS {
        sent.push(now_nanos());
        if k % 2 == 0 {
            writer.insert(k, format!("v1-{k}"));
        } else {
            writer.invalidate(&k);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(500));
    std::fs::write(dir.join("done"), b"").unwrap();
    let mut lat = Vec::new();
    for mut kid in kids {
        let mut dropped = vec![None; KEYS as usize];
        loop {
            let mut line = String::new();
            assert!(kid.out.read_line(&mut line).unwrap() > 0);
            let line = line.trim_end();
            let line = ["DROPPED", "VALUE", "END"]
                .iter()
                .find_map(|m| line.find(m).map(|at| &line[at..]))
                .unwrap_or("");
            if line == "END" {
                break;
            }
            let parts: Vec<&str> = line.split(' ').collect();
            match parts[0] {
                "DROPPED" => {
                    let k: usize = parts[1].parse().unwrap();
                    let t: u64 = parts[2].parse().unwrap();
                    dropped[k].get_or_insert(t);
                }
                "VALUE" => {
                    let k: u64 = parts[1].parse().unwrap();
                    let want = if k % 2 == 0 {
                        format!("v1-{k}")
                    } else {
                        format!("v0-{k}")
                    };
                    assert_eq!(parts[2], want, "child read {k} after the invalidation");
                }
                _ => {}
            }
        }
        for (k, t) in dropped.iter().enumerate() {
            let t = t.unwrap_or_else(|| panic!("key {k} was never dropped in a child"));
            lat.push(t.saturating_sub(sent[k]));
        }
        kid.finish();
    }
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1e6;
    println!(
        "invalidation latency across processes: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} drops)",
        pct(0.5),
        pct(0.99),
        pct(1.0),
        lat.len()
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- 4 processes x 16 threads, one cold key, one load ----

const PROCS: usize = 4;
const THREADS: usize = 16;

fn child_cold() {
    let (url, ns) = (env("LARDER_FLEET_URL"), env("LARDER_FLEET_NS"));
    let loads_key = format!("{ns}-loads");
    let l_url = url.clone();
    let c: TieredCache<u64, String> =
        Cache::builder().build_tiered(tier(&url, &ns), move |k: &u64| {
            let mut raw = support::raw(&l_url);
            let _: i64 = raw.incr(&loads_key, 1).unwrap();
            std::thread::sleep(Duration::from_millis(300)); // a slow query
            format!("v{k}")
        });
    // Start together: a barrier in Redis.
    let mut raw = support::raw(&url);
    let ready_key = format!("{ns}-ready");
    let _: i64 = raw.incr(&ready_key, 1).unwrap();
    assert!(support::eventually(Duration::from_secs(30), || {
        raw.get::<_, usize>(&ready_key).unwrap() >= PROCS
    }));
    let barrier = std::sync::Barrier::new(THREADS);
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| {
                barrier.wait();
                assert_eq!(c.get(&1), "v1");
            });
        }
    });
    let st = c.tier_stats();
    say(&format!(
        "STATS {} {} {} {}",
        st.leases_won, st.leases_waited, st.lease_timeouts, st.l2_errors
    ));
}

#[test]
fn one_cold_key_is_loaded_once_by_the_whole_fleet() {
    let Some(url) = support::url("fleet_cold") else {
        return;
    };
    let ns = support::namespace("fleet-cold");
    let vars = [
        ("LARDER_FLEET_URL", url.clone()),
        ("LARDER_FLEET_NS", ns.clone()),
    ];
    let kids: Vec<Proc> = (0..PROCS).map(|_| Proc::spawn("cold", &vars)).collect();
    let (mut won, mut waited) = (0, 0);
    for mut k in kids {
        let stats: Vec<u64> = k
            .expect("STATS")
            .split(' ')
            .map(|x| x.parse().unwrap())
            .collect();
        won += stats[0];
        waited += stats[1];
        assert_eq!((stats[2], stats[3]), (0, 0), "no timeouts, no errors");
        k.finish();
    }
    let mut raw = support::raw(&url);
    let loads: u64 = raw.get(format!("{ns}-loads")).unwrap();
    println!(
        "{PROCS} processes x {THREADS} threads on one cold key: {loads} load(s), {won} lease won, {waited} waited"
    );
    assert_eq!(loads, 1);
    assert_eq!((won, waited), (1, PROCS as u64 - 1));
}

// ---- redis-server killed and restarted mid-run ----

const OUTAGE_KEYS: u64 = 20;

fn db_read(dir: &Path, k: u64) -> String {
    // The "database": one file per key, written atomically by rename.
    std::fs::read_to_string(dir.join(format!("db-{k}"))).unwrap()
}

fn db_write(dir: &Path, k: u64, v: &str) {
    let tmp = dir.join(format!("db-{k}.tmp"));
    std::fs::write(&tmp, v).unwrap();
    std::fs::rename(tmp, dir.join(format!("db-{k}"))).unwrap();
}

fn child_outage() {
    let (url, ns, dir) = (
        env("LARDER_FLEET_URL"),
        env("LARDER_FLEET_NS"),
        env("LARDER_FLEET_DIR"),
    );
    let dir = PathBuf::from(dir);
    let d = dir.clone();
    let c: TieredCache<u64, String> = Cache::builder()
        .time_to_live(Duration::from_secs(600))
        .build_tiered(tier(&url, &ns), move |k: &u64| db_read(&d, *k));
    for k in 0..OUTAGE_KEYS {
        c.get(&k);
    }
    say("READY");
    let mut reads = 0u64;
    let mut reported_lost = false;
    let mut reported_back = false;
    let check = dir.join("check");
    while !check.exists() {
        for k in 0..OUTAGE_KEYS {
            let v = c.get(&k);
            assert!(v.starts_with("old") || v.starts_with("new"), "read {v:?}");
            reads += 1;
        }
        let s = c.tier_stats();
        if !reported_lost && s.subscriptions_lost > 0 {
            reported_lost = true;
            say("LOST");
        }
        if reported_lost && !reported_back && c.is_subscribed() {
            reported_back = true;
            say("BACK");
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let stale: Vec<String> = (0..OUTAGE_KEYS)
        .filter_map(|k| {
            let v = c.get(&k);
            (v != db_read(&dir, k)).then(|| format!("{k}={v}"))
        })
        .collect();
    let s = c.tier_stats();
    say(&format!(
        "RESULT reads={reads} stale=[{}] errors={} skipped={} drops={}",
        stale.join(","),
        s.l2_errors,
        s.l2_skipped,
        s.l1_drops
    ));
}

#[test]
fn redis_killed_and_restarted_under_a_fleet() {
    let Some(mut server) = support::Server::start("fleet_outage") else {
        return;
    };
    let url = server.url();
    let ns = support::namespace("fleet-out");
    let dir = tempdir("outage");
    for k in 0..OUTAGE_KEYS {
        db_write(&dir, k, &format!("old{k}"));
    }
    let vars = [
        ("LARDER_FLEET_URL", url.clone()),
        ("LARDER_FLEET_NS", ns.clone()),
        ("LARDER_FLEET_DIR", dir.display().to_string()),
    ];
    let mut kids: Vec<Proc> = (0..3).map(|_| Proc::spawn("outage", &vars)).collect();
    for k in &mut kids {
        k.expect("READY");
    }
    let d = dir.clone();
    let writer: TieredCache<u64, String> =
        Cache::builder().build_tiered(tier(&url, &ns), move |k: &u64| db_read(&d, *k));
    std::thread::sleep(Duration::from_millis(200));

    server.kill();
    for k in &mut kids {
        k.expect("LOST");
    }
    // During the outage the database changes and the writer invalidates
    // (Redis is down: nobody hears it).
    for k in 0..OUTAGE_KEYS / 2 {
        db_write(&dir, k, &format!("new{k}"));
        writer.invalidate(&k);
    }
    std::thread::sleep(Duration::from_millis(300));
    let restarted = Instant::now();
    server.restart();
    for k in &mut kids {
        k.expect("BACK");
    }
    let back_after = restarted.elapsed();
    std::fs::write(dir.join("check"), b"").unwrap();
    for mut k in kids {
        let result = k.expect("RESULT");
        println!("child: {result}");
        assert!(result.contains("stale=[]"), "{result}");
        k.finish();
    }
    println!("all children resubscribed {back_after:?} after the restart");
    let _ = std::fs::remove_dir_all(dir);
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "larder-fleet-{tag}-{}-{}",
        std::process::id(),
        now_nanos()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}
