//! Held-out synthetic traces of the access shapes the hit-ratio work must
//! generalise to, for the simulator: loops that need frequency to win over
//! recency, back-and-forth walks that need recency to win over frequency,
//! phase changes that need the policy to move both ways.
//!
//! ```text
//! cargo run --release --example shapes -- target/shapes
//! cargo run --release --example simulate -- --runners opt,lru,wtinylfu,moka-sync,quick_cache --plots none --out target/shapes-results target/shapes
//! ```
//!
//! The shared traces (`../shared/traces`) are what policy changes are
//! judged on; these are a second opinion that no setting was chosen on
//! (issue 14: the team keeps hidden traces with these shapes). Each shape
//! comes in two instances with different sizes and mixes, every instance
//! from its own fixed seed, so a run is reproducible. One key per line, as
//! plain text (the simulator reads plain or gzip).
//!
//! | trace | shape |
//! |---|---|
//! | `loop-noise-a`, `-b` | a loop over L keys, interleaved with Zipf noise from a separate key set |
//! | `loops-nested` | alternating phases of a short loop that fits and a long one that does not |
//! | `zigzag-a`, `-b` | a walk over a line of keys that reverses direction now and then and jumps rarely |
//! | `lru-stack-a`, `-b` | the LRU stack model: each access re-reads the key at a geometric recency depth, or a new key |
//! | `phases` | Zipf over a hot set that is replaced every 100,000 accesses |
//! | `zipf-scan` | Zipf(0.8) with a one-pass scan of new keys every 50,000 accesses |
//! | `loop-then-recency` | a loop-heavy half, then an LRU-stack half |

use std::collections::VecDeque;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

#[path = "../benches/support/workload.rs"]
mod workload;
use workload::{SplitMix64, Zipf};

/// Key ranges of the separate parts of one trace, so they never collide.
const NOISE_BASE: u64 = 1 << 40;
const SCAN_BASE: u64 = 2 << 40;
const NEW_BASE: u64 = 3 << 40;

/// `n` accesses: a loop over `len` keys, and with probability `p` instead a
/// Zipf(0.9) key out of `noise` others.
fn loop_noise(n: usize, len: u64, p: f64, noise: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let zipf = Zipf::new(noise, 0.9);
    let mut pos = 0;
    (0..n)
        .map(|_| {
            if rng.next_f64() < p {
                NOISE_BASE + zipf.sample(&mut rng) as u64
            } else {
                pos = (pos + 1) % len;
                pos
            }
        })
        .collect()
}

/// Phases of `phase` accesses, alternating a loop over `short` keys and
/// one over `long` others, each with 20% Zipf noise.
fn loops_nested(n: usize, short: u64, long: u64, phase: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let zipf = Zipf::new(20_000, 0.9);
    let (mut a, mut b) = (0, 0);
    (0..n)
        .map(|i| {
            if rng.next_f64() < 0.2 {
                NOISE_BASE + zipf.sample(&mut rng) as u64
            } else if (i / phase) % 2 == 0 {
                a = (a + 1) % short;
                a
            } else {
                b = (b + 1) % long;
                SCAN_BASE + b
            }
        })
        .collect()
}

/// A walk over a line of keys: one step per access, reversing direction
/// with probability `turn`, jumping to a random place of `span` keys with
/// probability `jump`.
fn zigzag(n: usize, turn: f64, jump: f64, span: u64, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let mut pos: u64 = span / 2;
    let mut up = true;
    (0..n)
        .map(|_| {
            let u = rng.next_f64();
            if u < jump {
                pos = rng.next_u64() % span;
            } else if u < jump + turn {
                up = !up;
            }
            pos = if up {
                (pos + 1) % span
            } else {
                (pos + span - 1) % span
            };
            pos
        })
        .collect()
}

/// The LRU stack model: with probability `fresh` a new key, otherwise the
/// key at recency depth d (geometric with mean `depth`, within the `stack`
/// most recent keys), which then becomes the most recent.
fn lru_stack(n: usize, fresh: f64, depth: f64, stack: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    // Most recent last.
    let mut recent: VecDeque<u64> = VecDeque::with_capacity(stack + 1);
    let mut next_new = NEW_BASE;
    (0..n)
        .map(|_| {
            let key = if recent.is_empty() || rng.next_f64() < fresh {
                next_new += 1;
                next_new
            } else {
                // Geometric depth by inversion: floor(ln(u) / ln(1 - 1/depth)).
                let u = rng.next_f64().max(f64::MIN_POSITIVE);
                let d = ((u.ln() / (1.0 - 1.0 / depth).ln()) as usize).min(recent.len() - 1);
                recent.remove(recent.len() - 1 - d).unwrap_or(0)
            };
            recent.push_back(key);
            if recent.len() > stack {
                recent.pop_front();
            }
            key
        })
        .collect()
}

/// Zipf(1.0) over a hot set of `hot` keys, replaced by new keys every
/// `phase` accesses.
fn phases(n: usize, hot: usize, phase: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let zipf = Zipf::new(hot, 1.0);
    (0..n)
        .map(|i| ((i / phase) as u64) << 32 | zipf.sample(&mut rng) as u64)
        .collect()
}

/// Zipf(0.8) over `keys` keys, with a scan of `scan` new keys every
/// `every` accesses.
fn zipf_scan(n: usize, keys: usize, scan: u64, every: usize, seed: u64) -> Vec<u64> {
    let mut rng = SplitMix64(seed);
    let zipf = Zipf::new(keys, 0.8);
    let mut out = Vec::with_capacity(n);
    let mut next_scan = SCAN_BASE;
    while out.len() < n {
        for _ in 0..every {
            out.push(zipf.sample(&mut rng) as u64);
        }
        for _ in 0..scan {
            next_scan += 1;
            out.push(next_scan);
        }
    }
    out.truncate(n);
    out
}

fn write(dir: &Path, name: &str, keys: &[u64]) -> std::io::Result<()> {
    let path = dir.join(format!("{name}.keys"));
    let mut out = BufWriter::new(std::fs::File::create(&path)?);
    for k in keys {
        writeln!(out, "{k}")?;
    }
    out.flush()?;
    let distinct: std::collections::HashSet<&u64> = keys.iter().collect();
    println!(
        "{}: {} accesses, {} distinct",
        path.display(),
        keys.len(),
        distinct.len()
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("target/shapes"));
    std::fs::create_dir_all(&dir)?;
    let n = 400_000;
    write(
        &dir,
        "loop-noise-a",
        &loop_noise(n, 20_000, 0.3, 40_000, 11),
    )?;
    write(&dir, "loop-noise-b", &loop_noise(n, 4_000, 0.5, 10_000, 12))?;
    write(
        &dir,
        "loops-nested",
        &loops_nested(n, 3_000, 30_000, 40_000, 13),
    )?;
    write(&dir, "zigzag-a", &zigzag(n, 0.002, 0.0002, 100_000, 14))?;
    write(&dir, "zigzag-b", &zigzag(n, 0.01, 0.001, 20_000, 15))?;
    write(&dir, "lru-stack-a", &lru_stack(n, 0.05, 300.0, 20_000, 16))?;
    write(
        &dir,
        "lru-stack-b",
        &lru_stack(n, 0.02, 2_000.0, 50_000, 17),
    )?;
    write(&dir, "phases", &phases(n, 5_000, 100_000, 18))?;
    write(&dir, "zipf-scan", &zipf_scan(n, 50_000, 20_000, 50_000, 19))?;
    let mut mixed = loop_noise(n / 2, 10_000, 0.3, 20_000, 20);
    mixed.extend(lru_stack(n / 2, 0.03, 500.0, 30_000, 21));
    write(&dir, "loop-then-recency", &mixed)?;
    Ok(())
}
