//! Load-time histogram: fixed log-linear buckets of atomic counters, so
//! recording a duration is two or three relaxed atomic operations and no
//! allocation, and a [`Histogram`] snapshot answers percentile queries with
//! a bounded relative error.
//!
//! # Buckets
//!
//! The layout is the log-linear one of HdrHistogram (Gil Tene): a value
//! `v` in nanoseconds below 128 has a bucket of its own; above, the power
//! of two `[2^e, 2^(e+1))` holding `v` is cut into [`SUB_BUCKETS`] (64)
//! equal buckets of width `2^(e-6)`, indexed by the 6 bits after `v`'s
//! leading one. A bucket is therefore never wider than 1/64 of its lower
//! bound, and a quantile reported as the middle of its bucket is within
//! [`Histogram::RELATIVE_ERROR`] (1/128, under 0.8%, "two significant
//! digits") of the exact sample value at that rank. Buckets run up to
//! 2^42 ns (73 minutes); longer values are counted in the last bucket, and
//! the maximum is kept exactly beside the buckets. That is 2,368 buckets,
//! 18.5 KiB of counters per recorder.
//!
//! # Concurrency
//!
//! Recording is lock-free: a relaxed `fetch_add` on the value's bucket and
//! on the running sum, and a `fetch_max` on the maximum only when the value
//! exceeds the maximum read a moment before. A snapshot reads the counters
//! one by one while others may record, so it may miss a value recorded
//! during the snapshot (never count one twice); its count is the sum of
//! the buckets it read.

// The recorder is not yet wired into the load path (issue 13, second
// phase; see notes/issue-13.md): until then only the tests construct it.
#![allow(dead_code)]

use std::time::Duration;

// std atomics even under loom: independent relaxed counters, no protocol to
// model, and 2,368 of them per cache would swamp a loom model.
use std::sync::atomic::{AtomicU64, Ordering};

/// Bits of a value kept after its leading one: 6.
const SUB_BITS: u32 = 6;

/// Buckets per power of two: 64.
pub(crate) const SUB_BUCKETS: usize = 1 << SUB_BITS;

/// Values from 2^`TOP_EXP` ns (2^42 ns = 73.3 minutes) on share the last
/// bucket.
const TOP_EXP: u32 = 42;

/// Bucket count: 128 exact values below 2^7, then 64 per power of two from
/// 2^7 to 2^41: (42 - 6 + 1) * 64 = 2,368.
const BUCKETS: usize = ((TOP_EXP - SUB_BITS + 1) as usize) << SUB_BITS;

/// The bucket of a value in nanoseconds.
#[inline]
fn index(v: u64) -> usize {
    let v = v.min((1 << TOP_EXP) - 1);
    if v < (1 << SUB_BITS) {
        return v as usize;
    }
    let e = 63 - v.leading_zeros(); // >= SUB_BITS
    let sub = (v >> (e - SUB_BITS)) as usize & (SUB_BUCKETS - 1);
    (((e - SUB_BITS + 1) as usize) << SUB_BITS) + sub
}

/// The smallest value of bucket `i`, and its width.
fn bounds(i: usize) -> (u64, u64) {
    if i < 2 * SUB_BUCKETS {
        return (i as u64, 1);
    }
    let e = (i >> SUB_BITS) as u32 + SUB_BITS - 1;
    let sub = (i & (SUB_BUCKETS - 1)) as u64;
    let width = 1u64 << (e - SUB_BITS);
    (((SUB_BUCKETS as u64) + sub) * width, width)
}

/// The value a bucket reports: its middle (its only value for a width-1
/// bucket).
fn middle(i: usize) -> u64 {
    let (low, width) = bounds(i);
    low + width / 2
}

/// The recorder: one atomic counter per bucket, the sum and the maximum.
/// Shared by every thread that records (`&self`).
pub(crate) struct AtomicHistogram {
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    max: AtomicU64,
}

impl AtomicHistogram {
    /// An empty recorder (allocates its 2,368 counters once).
    pub(crate) fn new() -> Self {
        Self {
            buckets: (0..BUCKETS).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            max: AtomicU64::new(0),
        }
    }

    /// Records one value in nanoseconds. No allocation, no lock.
    #[inline]
    pub(crate) fn record_nanos(&self, nanos: u64) {
        self.buckets[index(nanos)].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(nanos, Ordering::Relaxed);
        if nanos > self.max.load(Ordering::Relaxed) {
            self.max.fetch_max(nanos, Ordering::Relaxed);
        }
    }

    /// Records one duration (saturating at `u64::MAX` nanoseconds, 584
    /// years).
    #[inline]
    pub(crate) fn record(&self, d: Duration) {
        self.record_nanos(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    }

    /// The counts so far.
    pub(crate) fn snapshot(&self) -> Histogram {
        let mut buckets = Vec::new();
        let mut count = 0u64;
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            if n != 0 {
                buckets.push((i as u16, n));
                count = count.wrapping_add(n);
            }
        }
        Histogram {
            buckets,
            count,
            sum: self.sum.load(Ordering::Relaxed),
            max: self.max.load(Ordering::Relaxed),
        }
    }
}

impl std::fmt::Debug for AtomicHistogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.snapshot().fmt(f)
    }
}

/// A snapshot of a duration histogram (the cache's load times): counts in
/// fixed log-linear buckets, the sum and the maximum.
///
/// Quantiles are reported to within [`Histogram::RELATIVE_ERROR`] of the
/// exact sample value at that rank; [`since`](Histogram::since) gives the
/// histogram of the values recorded between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Non-empty buckets `(index, count)`, in increasing index order.
    buckets: Vec<(u16, u64)>,
    count: u64,
    /// Nanoseconds, wrapping.
    sum: u64,
    /// Nanoseconds: exact for a snapshot, a bucket's upper bound for some
    /// differences (see `since`).
    max: u64,
}

impl Histogram {
    /// The largest relative error of a reported quantile against the exact
    /// sample value at the same rank: 1/128 (0.78%). Durations under 128 ns
    /// are exact.
    pub const RELATIVE_ERROR: f64 = 1.0 / 128.0;

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `true` when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Sum of the recorded durations (exact, not bucketed).
    pub fn sum(&self) -> Duration {
        Duration::from_nanos(self.sum)
    }

    /// Mean of the recorded durations, or `None` if there are none.
    pub fn mean(&self) -> Option<Duration> {
        (self.count != 0).then(|| Duration::from_nanos(self.sum / self.count))
    }

    /// The largest recorded duration, or `None` if there are none. Exact in
    /// a snapshot; in a [`since`](Histogram::since) difference see there.
    pub fn max(&self) -> Option<Duration> {
        (self.count != 0).then(|| Duration::from_nanos(self.max))
    }

    /// The `q`-quantile (`0.5` for the median) by nearest rank: the
    /// recorded value with rank `ceil(q * count)` (at least 1), to within
    /// [`RELATIVE_ERROR`](Self::RELATIVE_ERROR), never above
    /// [`max`](Self::max), and the max itself for the top rank. `None` if nothing was recorded. `q` is clamped
    /// to `[0, 1]`; NaN is taken as 0 (the smallest value).
    ///
    /// # Examples
    ///
    /// ```
    /// # fn histogram() -> larder::Histogram { larder::Histogram::default() }
    /// let h = histogram(); // e.g. `stats` of a cache's load times
    /// if let Some(p99) = h.quantile(0.99) {
    ///     println!("p99 load {p99:?}");
    /// }
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        let rank = ((q * self.count as f64).ceil() as u64).clamp(1, self.count);
        if rank == self.count {
            return self.max();
        }
        let mut seen = 0u64;
        for &(i, n) in &self.buckets {
            seen += n;
            if seen >= rank {
                return Some(Duration::from_nanos(middle(usize::from(i)).min(self.max)));
            }
        }
        // Only reachable if the counts do not add up (they always do).
        Some(Duration::from_nanos(self.max))
    }

    /// The median, [`quantile(0.5)`](Self::quantile).
    pub fn p50(&self) -> Option<Duration> {
        self.quantile(0.5)
    }

    /// [`quantile(0.9)`](Self::quantile).
    pub fn p90(&self) -> Option<Duration> {
        self.quantile(0.9)
    }

    /// [`quantile(0.99)`](Self::quantile).
    pub fn p99(&self) -> Option<Duration> {
        self.quantile(0.99)
    }

    /// The values recorded after `earlier` up to `self` (two snapshots of
    /// the same recorder, `earlier` taken first): counts and sum
    /// subtracted, bucket by bucket (saturating, so swapped arguments give
    /// an empty histogram rather than a panic). The maximum is exact when
    /// the interval raised it (`self`'s max is above `earlier`'s);
    /// otherwise it is the upper bound of the highest bucket that gained
    /// values, capped at `self`'s max.
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut buckets = Vec::with_capacity(self.buckets.len());
        let mut old = earlier.buckets.iter().peekable();
        let mut count = 0u64;
        for &(i, n) in &self.buckets {
            while old.peek().is_some_and(|&&(j, _)| j < i) {
                old.next();
            }
            let before = match old.peek() {
                Some(&&(j, m)) if j == i => m,
                _ => 0,
            };
            let d = n.saturating_sub(before);
            if d != 0 {
                buckets.push((i, d));
                count += d;
            }
        }
        let max = if count == 0 {
            0
        } else if self.max > earlier.max {
            self.max
        } else {
            let &(top, _) = buckets.last().expect("count > 0");
            let (low, width) = bounds(usize::from(top));
            (low + width - 1).min(self.max)
        };
        Histogram {
            buckets,
            count,
            sum: if count == 0 {
                0
            } else {
                self.sum.saturating_sub(earlier.sum)
            },
            max,
        }
    }

    /// The non-empty buckets in increasing order, each as (its smallest
    /// duration, the duration it reports, its count): for exporters that
    /// re-bucket (a Prometheus histogram) or replay (`record_many`).
    pub fn buckets(&self) -> impl Iterator<Item = (Duration, Duration, u64)> + '_ {
        self.buckets.iter().map(|&(i, n)| {
            let i = usize::from(i);
            (
                Duration::from_nanos(bounds(i).0),
                Duration::from_nanos(middle(i).min(self.max)),
                n,
            )
        })
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// SplitMix64 for test samples.
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

    #[test]
    fn buckets_tile_the_range_and_are_narrow() {
        assert_eq!(BUCKETS, 2368);
        let mut next = 0u64;
        for i in 0..BUCKETS {
            let (low, width) = bounds(i);
            assert_eq!(low, next, "bucket {i} starts where {} ended", i - 1);
            assert_eq!(index(low), i);
            assert_eq!(index(low + width - 1), i);
            if low >= 128 {
                assert!(width * 64 <= low, "bucket {i} too wide");
            } else {
                assert_eq!(width, 1);
            }
            next = low + width;
        }
        assert_eq!(next, 1 << TOP_EXP);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
    }

    /// Nearest-rank quantile of sorted samples, as `quantile` defines it.
    fn exact(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
        sorted[rank - 1]
    }

    fn check_against_exact(samples: &mut [u64]) {
        let h = AtomicHistogram::new();
        for &s in samples.iter() {
            h.record_nanos(s);
        }
        let snap = h.snapshot();
        samples.sort_unstable();
        assert_eq!(snap.count(), samples.len() as u64);
        assert_eq!(
            snap.sum().as_nanos(),
            samples.iter().map(|&s| s as u128).sum()
        );
        assert_eq!(
            snap.max(),
            Some(Duration::from_nanos(*samples.last().unwrap()))
        );
        for q in [
            0.0, 0.001, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0,
        ] {
            let want = exact(samples, q) as f64;
            let got = snap.quantile(q).unwrap().as_nanos() as f64;
            let err = (got - want).abs() / want.max(1.0);
            assert!(
                err <= Histogram::RELATIVE_ERROR,
                "q {q}: exact {want}, reported {got}, error {err}"
            );
        }
    }

    #[test]
    fn quantiles_are_within_the_stated_error_of_exact_percentiles() {
        let mut rng = Rng(7);
        // Log-uniform from 1 ns to about 20 minutes.
        let mut s: Vec<u64> = (0..200_000)
            .map(|_| (2f64.powf(rng.unit() * 40.0)) as u64)
            .collect();
        check_against_exact(&mut s);
        // A load-time-like shape: most around 1 ms, a tail to 1 s.
        let mut s: Vec<u64> = (0..200_000)
            .map(|_| {
                let base = 800_000.0 + 400_000.0 * rng.unit();
                if rng.unit() < 0.02 {
                    (base * 1000.0 * rng.unit()) as u64
                } else {
                    base as u64
                }
            })
            .collect();
        check_against_exact(&mut s);
        // Few samples, tiny values (exact buckets), and one value.
        check_against_exact(&mut [3, 1, 4, 1, 5, 9, 2, 6]);
        check_against_exact(&mut [12_345_678]);
        // Beyond the top bucket (73 minutes): counted in the last bucket,
        // the maximum still exact.
        let h = AtomicHistogram::new();
        for v in [1 << 50, 1 << 45, 10] {
            h.record_nanos(v);
        }
        let s = h.snapshot();
        assert_eq!(s.max(), Some(Duration::from_nanos(1 << 50)));
        assert_eq!(s.quantile(1.0), s.max());
        let (low, width) = bounds(BUCKETS - 1);
        assert_eq!(s.p50(), Some(Duration::from_nanos(low + width / 2)));
    }

    #[test]
    fn empty_and_odd_quantiles() {
        let h = AtomicHistogram::new();
        let s = h.snapshot();
        assert!(s.is_empty());
        assert_eq!((s.p50(), s.max(), s.mean()), (None, None, None));
        h.record(Duration::from_micros(10));
        h.record(Duration::from_micros(30));
        let s = h.snapshot();
        assert_eq!(s.quantile(f64::NAN), s.quantile(0.0));
        assert_eq!(s.quantile(-1.0), s.quantile(0.0));
        assert_eq!(s.quantile(7.0), s.max());
        assert_eq!(s.mean(), Some(Duration::from_micros(20)));
        h.record(Duration::MAX);
        assert_eq!(h.snapshot().max(), Some(Duration::from_nanos(u64::MAX)));
    }

    #[test]
    fn since_gives_the_interval() {
        let h = AtomicHistogram::new();
        for v in [100, 5_000, 5_000, 1_000_000] {
            h.record_nanos(v);
        }
        let a = h.snapshot();
        for v in [5_000, 7_000, 2_000_000] {
            h.record_nanos(v);
        }
        let b = h.snapshot();
        let d = b.since(&a);
        let only = AtomicHistogram::new();
        for v in [5_000, 7_000, 2_000_000] {
            only.record_nanos(v);
        }
        assert_eq!(d, only.snapshot(), "the interval's own histogram");
        // An interval that did not raise the max: bounded by its top bucket.
        h.record_nanos(6_000);
        let c = h.snapshot();
        let d = c.since(&b);
        assert_eq!(d.count(), 1);
        let max = d.max().unwrap().as_nanos() as u64;
        assert!((6_000..6_000 + 6_000 / 64).contains(&max), "{max}");
        assert!(d.p50() <= d.max());
        // Nothing in between, and swapped arguments: empty.
        assert!(c.since(&c).is_empty());
        assert!(a.since(&c).is_empty());
        assert_eq!(a.since(&c).sum(), Duration::ZERO);
    }

    #[test]
    fn bucket_listing_adds_up() {
        let h = AtomicHistogram::new();
        for v in [1, 1, 200, 70_000, 70_001] {
            h.record_nanos(v);
        }
        let s = h.snapshot();
        let listed: Vec<_> = s.buckets().collect();
        assert_eq!(listed.iter().map(|b| b.2).sum::<u64>(), 5);
        assert_eq!(
            listed[0],
            (Duration::from_nanos(1), Duration::from_nanos(1), 2)
        );
        assert!(listed.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn concurrent_recording_loses_nothing() {
        let h = AtomicHistogram::new();
        let per_thread = 50_000u64;
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let h = &h;
                s.spawn(move || {
                    let mut rng = Rng(t);
                    for _ in 0..per_thread {
                        h.record_nanos(rng.next() >> 30);
                    }
                });
            }
            // A snapshot taker racing the recorders: counts never go down.
            let h = &h;
            s.spawn(move || {
                let mut last = 0;
                for _ in 0..200 {
                    let c = h.snapshot().count();
                    assert!(c >= last);
                    last = c;
                }
            });
        });
        let all = h.snapshot();
        let sequential = AtomicHistogram::new();
        for t in 0..4u64 {
            let mut rng = Rng(t);
            for _ in 0..per_thread {
                sequential.record_nanos(rng.next() >> 30);
            }
        }
        assert_eq!(all, sequential.snapshot());
    }
}
