//! Issue 5's scan bar: on a hot set interleaved with one-pass scans, Slru
//! keeps the hot set and beats Lru at 1% and 5% of the distinct keys (and
//! W-TinyLFU does too). Measured through the real `Cache`, one shard, so the
//! result is deterministic.

use larder::{Cache, Policy};

/// SplitMix64: a small deterministic generator for the workload.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Keys 0..HOT are the hot set (Zipf 0.8 by inverse CDF over a table);
/// scan keys start at 1 << 40 and are never repeated.
const HOT: usize = 2_000;
const ROUNDS: usize = 10;
const SCAN: u64 = 20_000;

fn workload() -> Vec<u64> {
    let weights: Vec<f64> = (1..=HOT).map(|r| 1.0 / (r as f64).powf(0.8)).collect();
    let total: f64 = weights.iter().sum();
    let mut cdf = Vec::with_capacity(HOT);
    let mut acc = 0.0;
    for w in weights {
        acc += w / total;
        cdf.push(acc);
    }
    let mut rng = Rng(7);
    let mut next_scan = 1u64 << 40;
    let mut out = Vec::new();
    for _ in 0..ROUNDS {
        for _ in 0..SCAN {
            let u = rng.unit();
            let hot = cdf.partition_point(|&c| c < u).min(HOT - 1);
            out.push(hot as u64);
            out.push(next_scan);
            next_scan += 1;
        }
    }
    out
}

fn hit_ratio(policy: Policy, capacity: u64, keys: &[u64]) -> f64 {
    let cache: Cache<u64, ()> = Cache::builder()
        .max_capacity(capacity)
        .policy(policy)
        .shards(1)
        .seed(1)
        .build();
    let mut hits = 0usize;
    for &k in keys {
        if cache.get(&k).is_some() {
            hits += 1;
        } else {
            cache.insert(k, ());
        }
    }
    hits as f64 / keys.len() as f64
}

#[test]
fn slru_beats_lru_on_scans_at_1_and_5_percent() {
    let keys = workload();
    let distinct = {
        let mut k = keys.clone();
        k.sort_unstable();
        k.dedup();
        k.len() as u64
    };
    for percent in [1, 5] {
        let capacity = (distinct * percent / 100).max(16);
        let lru = hit_ratio(Policy::Lru, capacity, &keys);
        let slru = hit_ratio(Policy::Slru, capacity, &keys);
        let tiny = hit_ratio(Policy::WTinyLfu, capacity, &keys);
        println!(
            "{percent}% (capacity {capacity}): Lru {lru:.3}, Slru {slru:.3}, WTinyLfu {tiny:.3}"
        );
        assert!(
            slru > lru,
            "{percent}%: Slru {slru:.3} does not beat Lru {lru:.3}"
        );
        assert!(
            tiny > lru,
            "{percent}%: WTinyLfu {tiny:.3} does not beat Lru {lru:.3}"
        );
    }
}

/// Issue 14's scan case: a hot set read while the cache is less than half
/// full must survive a later one-pass scan. One shard of 1,000 entries;
/// 200 hot keys read 20 times each (get-or-insert, round by round), then a
/// scan of `scan` new keys, each read once. Returns how many hot keys are
/// still stored.
fn hot_keys_kept_after_scan(policy: Policy, scan: u64) -> usize {
    let cache: Cache<u64, ()> = Cache::builder()
        .max_capacity(1_000)
        .policy(policy)
        .shards(1)
        .seed(1)
        .build();
    let access = |k: u64| {
        if cache.get(&k).is_none() {
            cache.insert(k, ());
        }
    };
    for _ in 0..20 {
        for k in 0..200 {
            access(k);
        }
    }
    for k in 0..scan {
        access(1_000_000 + k);
    }
    (0..200).filter(|k| cache.contains_key(k)).count()
}

#[test]
fn hot_set_read_early_survives_a_later_scan() {
    for scan in [2_000, 5_000, 20_000] {
        let kept: Vec<(Policy, usize)> = Policy::ALL
            .into_iter()
            .map(|p| (p, hot_keys_kept_after_scan(p, scan)))
            .collect();
        println!("scan of {scan}: {kept:?}");
        for (policy, kept) in kept {
            if matches!(policy, Policy::WTinyLfu | Policy::S3Fifo | Policy::Slru) {
                assert!(
                    kept >= 190,
                    "{policy}: {kept} of 200 hot keys kept after a scan of {scan}"
                );
            }
        }
    }
}
