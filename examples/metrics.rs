//! A running cache's statistics as a Prometheus `/metrics` page.
//!
//! ```text
//! cargo run --release --features metrics --example metrics            # 30 s on an ephemeral port
//! cargo run --release --features metrics --example metrics -- 0 9898  # forever, on 127.0.0.1:9898
//! curl -s http://127.0.0.1:9898/metrics | grep larder_
//! cargo test --features metrics --example metrics                     # scrapes the page back
//! ```
//!
//! A `LoadingCache` of 1,000 entries in front of a 200 µs "query" is read by
//! two threads over 5,000 keys (so it keeps loading and evicting); a
//! reporter thread calls [`Cache::report_metrics`](larder::Cache::report_metrics) every 250 ms, which
//! emits the statistics and the new load times (see [`MetricsReporter`](larder::MetricsReporter) for
//! the names), labelled `cache="products"`, through the `metrics` facade into
//! `metrics-exporter-prometheus`'s recorder; a small HTTP/1.1 responder on
//! 127.0.0.1 serves the recorder's rendering at `/metrics`. The exporter's
//! own listener would bring tokio and hyper into the build, so this
//! example answers the one GET itself with `std::net`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use larder::{Cache, LoadingCache};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// The label the cache's metrics carry.
const NAME: &str = "products";

/// Everything the example runs, stopped and joined by [`Running::stop`].
struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().expect("example thread panicked");
        }
    }
}

/// Installs the Prometheus recorder, then starts the cache, its readers,
/// the reporter and the server (on `127.0.0.1:port`, 0 for any free port).
fn start(port: u16) -> std::io::Result<Running> {
    let handle = PrometheusBuilder::new()
        .set_buckets(&[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0])
        .expect("bucket list is not empty")
        .install_recorder()
        .map_err(std::io::Error::other)?;
    let cache: LoadingCache<u64, String> = Cache::builder()
        .max_capacity(1_000)
        .name(NAME)
        .build_with_loader(|id: &u64| {
            thread::sleep(Duration::from_micros(200)); // the backend query
            format!("product {id}")
        });
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for t in 0..2u64 {
        let (cache, stop) = (cache.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            let mut x = 0x9E37_79B9_7F4A_7C15u64 ^ t;
            while !stop.load(Ordering::Relaxed) {
                // xorshift; the square skews reads towards small ids.
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let u = (x >> 11) as f64 / (1u64 << 53) as f64;
                let id = (u * u * 5_000.0) as u64;
                std::hint::black_box(cache.get(&id));
            }
        }));
    }
    {
        let (cache, stop, handle) = (cache.clone(), stop.clone(), handle.clone());
        threads.push(thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                cache.cache().report_metrics();
                handle.run_upkeep();
                sleep_unless_stopped(&stop, Duration::from_millis(250));
            }
        }));
    }
    let listener = TcpListener::bind(("127.0.0.1", port))?;
    let addr = listener.local_addr()?;
    listener.set_nonblocking(true)?;
    {
        let stop = stop.clone();
        threads.push(thread::spawn(move || serve(listener, handle, &stop)));
    }
    Ok(Running {
        addr,
        stop,
        threads,
    })
}

/// Sleeps `d`, in steps short enough to notice `stop` soon.
fn sleep_unless_stopped(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Relaxed) && Instant::now() < end {
        thread::sleep(Duration::from_millis(10));
    }
}

/// Answers connections one at a time until `stop`: `GET /metrics` gets the
/// rendering, anything else a 404. A client gets 2 s to send its request.
fn serve(listener: TcpListener, handle: PrometheusHandle, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(e) = answer(stream, &handle) {
                    eprintln!("metrics: a request failed: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                eprintln!("metrics: accept failed: {e}");
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Reads one request (up to its blank line, at most 8 KiB) and answers it.
fn answer(mut stream: TcpStream, handle: &PrometheusHandle) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let request = String::from_utf8_lossy(&request);
    let mut words = request.split_whitespace();
    let (status, body) = match (words.next(), words.next()) {
        (Some("GET"), Some("/metrics")) => ("200 OK", handle.render()),
        _ => ("404 Not Found", "not found: try GET /metrics\n".to_string()),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: u64 = args.first().and_then(|s| s.parse().ok()).unwrap_or(30);
    let port: u16 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let running = start(port)?;
    println!("serving http://{}/metrics", running.addr);
    if secs == 0 {
        loop {
            thread::park();
        }
    }
    thread::sleep(Duration::from_secs(secs));
    running.stop();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `GET path` on `addr`, everything bounded by short timeouts.
    fn get(addr: SocketAddr, path: &str) -> String {
        let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).expect("response");
        out
    }

    /// The value of the first exposition line starting with `prefix`.
    fn value(page: &str, prefix: &str) -> Option<f64> {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    #[test]
    fn the_page_is_served_and_counts_go_up() {
        let running = start(0).expect("start");
        assert!(running.addr.ip().is_loopback());
        let hits = |page: &str| value(page, r#"larder_hits_total{cache="products"}"#);
        let loads = |page: &str| value(page, r#"larder_loads_total{cache="products"}"#);
        // The first report comes at once, maybe before the first load has
        // finished: wait (at most 5 s) for one that counts a load.
        let deadline = Instant::now() + Duration::from_secs(5);
        let first = loop {
            let page = get(running.addr, "/metrics");
            if loads(&page).is_some_and(|n| n > 0.0) || Instant::now() > deadline {
                break page;
            }
            thread::sleep(Duration::from_millis(50));
        };
        assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
        assert!(
            first.contains("# TYPE larder_hits_total counter"),
            "{first}"
        );
        assert!(loads(&first).is_some_and(|n| n > 0.0), "{first}");
        let ratio = value(&first, r#"larder_hit_ratio{cache="products"}"#).expect("ratio");
        assert!((0.0..=1.0).contains(&ratio));
        // The load-time histogram and percentiles come from the cache.
        let count = r#"larder_load_duration_seconds_count{cache="products"}"#;
        assert!(value(&first, count).is_some_and(|n| n > 0.0), "{first}");
        let p50 = r#"larder_load_time_seconds{cache="products",quantile="0.5"}"#;
        assert!(value(&first, p50).is_some_and(|s| s >= 0.000_2), "{first}");
        // Later scrapes see more reads (the readers never stop).
        let h1 = hits(&first).expect("hits");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut h2 = h1;
        while h2 <= h1 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(100));
            h2 = hits(&get(running.addr, "/metrics")).expect("hits");
        }
        assert!(h2 > h1, "hits stayed at {h1}");
        assert!(get(running.addr, "/other").starts_with("HTTP/1.1 404"));
        running.stop();
    }
}
