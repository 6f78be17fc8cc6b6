//! [`HotKeys`]: the most-read keys of a stream, estimated from a sample of
//! it, cheap enough to sit on a cache's read path.
//!
//! # Design
//!
//! * **Sampling.** For a rate of 1 in `r` with `r >= 64` (64 by default),
//!   [`record`](HotKeys::record) counts down a per-thread counter and
//!   returns unless it reached zero: a thread-local load, a decrement, a
//!   store and a branch (about 5 instructions). On zero the counter
//!   restarts from a random gap, uniform on `1..=127` (mean 64), and the
//!   read is sampled with probability `64 / r` (a xorshift draw). Random
//!   gaps rather than a fixed period, so that a periodic access pattern
//!   cannot alias with the sampling (with "every 64th read", a loop over
//!   64 keys would report one of them); a countdown rather than a draw per
//!   read because it costs less. The countdown is the thread's, shared by
//!   every tracker it feeds, which is why its gaps do not depend on a
//!   tracker's rate: every read a thread makes, of any tracker, has the
//!   same 1 in 64 chance of ending a gap. Rates from 2 to 63 draw per read
//!   instead (about 10 instructions); rate 1 samples all.
//! * **Never waits.** A sampled read takes its stripe's lock with
//!   `try_lock`; if another thread holds it, the sample is dropped (and
//!   counted). Readers never queue behind one another or behind a
//!   [`top`](HotKeys::top) query, and a reader that re-enters (a key's
//!   `Eq` or `Drop` reading the cache) cannot deadlock. The price: under
//!   contention the stripes holding the hottest keys are the busiest and
//!   drop the most samples, so a key sharing a stripe with a hotter one is
//!   understated. At 1 in 64 a stripe is busy for a small fraction of the
//!   time (about 40 ns per sample); [`dropped`](HotKeys::dropped) tells how
//!   many samples were lost.
//! * **Space-Saving with randomised admission** per stripe: a fixed set
//!   of counters; a sampled key already held gains one. In Space-Saving
//!   (Metwally, Agrawal and El Abbadi, "Efficient Computation of Frequent
//!   and Top-k Elements in Data Streams", ICDT 2005) a new key always takes
//!   over the smallest counter `c`, at `c + 1`; here, as in RAP (Ben Basat,
//!   Chen, Einziger, Friedman and Kassner, "Randomized Admission Policy for
//!   Efficient Top-k and Frequency Estimation", INFOCOM 2017), it does so
//!   only with probability `1 / (c + 1)`. The long tail of cold keys then
//!   rarely displaces anything (fewer hot keys lost to churn with few
//!   counters), and the usual sample costs a look-up and a draw, not a
//!   replacement and a scan for the new minimum. A stripe keeps 32 bits of
//!   each key's hash in blocks of 8 and its counts in a small array:
//!   whether a key is held at all is a SIMD OR-reduction over a few cache
//!   lines, and the smallest count is kept and rescanned only when the
//!   slot holding it changes. A sampled read costs about 160 instructions
//!   (callgrind, 32 counters per stripe), a good part of its time the
//!   lock's two atomic operations.
//! * **Stripes.** Keys are split over several independent stripes by hash
//!   (a key always goes to the same one), so sampled readers of different
//!   keys rarely contend for a lock; a query merges the stripes.
//! * **Aging.** Every [`HotKeys::DEFAULT_HALF_LIFE`] samples (of the whole
//!   tracker) every count is halved, so the estimates weigh
//!   recent reads most and a key that stops being read falls out. The
//!   stripes age together, or their counts could not be compared: a
//!   stripe adds its samples to one shared counter 64 at a time (a shared
//!   write every 64 samples, about every 1,000 reads), which gives the
//!   current epoch; a stripe halves itself once per epoch it is behind,
//!   when it next takes a sample or when a query reads it.
//!
//! The estimated count of a key is its decayed sample count times the
//! sampling rate: an estimate of its reads since a few half-lives ago.

use std::cell::Cell;
use std::fmt;

use crossbeam_utils::CachePadded;

use crate::sync::{AtomicU64, Mutex, Ordering};

/// Tracks the most frequent keys of a stream of reads, from a sample.
///
/// Fed with [`record`](Self::record) on every read (the key and its hash,
/// which a cache has already computed); [`top`](Self::top) returns the
/// hottest keys with estimated read counts.
///
/// # Examples
///
/// ```
/// use std::hash::BuildHasher;
/// use larder::HotKeys;
///
/// let hasher = ahash::RandomState::new();
/// let hot = HotKeys::new(64, 1); // 64 counters, every read sampled
/// for i in 0..1000u64 {
///     let key = if i % 2 == 0 { 7 } else { i };
///     hot.record(hasher.hash_one(key), &key);
/// }
/// assert_eq!(hot.top(1)[0].0, 7);
/// ```
#[doc(hidden)] // the public way in is `CacheBuilder::track_hot_keys` / `Cache::hot_keys`
pub struct HotKeys<K> {
    stripes: Box<[CachePadded<Stripe<K>>]>,
    /// Samples taken by all stripes, in steps of [`BATCH`]: the epoch is
    /// this over `half_life`.
    samples: CachePadded<AtomicU64>,
    half_life: u64,
    /// `stripes.len() - 1` (a power of two).
    stripe_mask: usize,
    /// Which reads are sampled.
    sampler: Sampler,
}

/// The sampling decision alone: not generic, `Copy`, so an owner (a cache)
/// can keep it inline and make the decision before reaching a tracker it
/// holds behind a pointer or a trait object.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub struct Sampler {
    /// 1 in `rate` reads is sampled.
    rate: u32,
    /// Rates 2..64: a read is sampled when its draw is at most this. Rates
    /// of 64 and more: a read that ends a countdown gap is sampled when its
    /// draw is at most this (probability 64 / rate).
    threshold: u32,
}

impl Sampler {
    /// Samples 1 read in `rate` (0 is taken as 1: every read).
    pub fn new(rate: u32) -> Self {
        let rate = rate.max(1);
        Sampler {
            rate,
            threshold: if rate < GAP_MEAN {
                (u64::from(u32::MAX) / u64::from(rate)) as u32
            } else {
                ((u64::from(GAP_MEAN) << 32) / u64::from(rate)).saturating_sub(1) as u32
            },
        }
    }

    /// The rate: 1 in this many reads.
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// Whether this read of this thread is sampled. For rates of 64 and
    /// more: a thread-local countdown, decremented (see the module docs).
    #[inline]
    pub fn due(&self) -> bool {
        if self.rate >= GAP_MEAN {
            let ended = COUNTDOWN.with(|c| {
                let n = c.get();
                c.set(n.wrapping_sub(1));
                n <= 1
            });
            ended && self.end_gap()
        } else {
            self.rate == 1 || draw() <= self.threshold
        }
    }

    /// Starts this thread's next gap; the read that ended the last one is
    /// sampled with probability `64 / rate`.
    #[cold]
    #[inline(never)]
    fn end_gap(&self) -> bool {
        let x = draw();
        // Uniform on 1..=127 from the top 32 bits of x * 127 (mean 64).
        let gap = 1 + ((u64::from(x) * u64::from(2 * GAP_MEAN - 1)) >> 32) as u32;
        COUNTDOWN.with(|c| c.set(gap));
        self.rate == GAP_MEAN || draw() <= self.threshold
    }
}

struct Stripe<K> {
    summary: Mutex<SpaceSaving<K>>,
    /// Samples dropped because the lock was held.
    dropped: AtomicU64,
}

impl<K: Clone + Eq> HotKeys<K> {
    /// Default sampling: 1 read in 64.
    pub const DEFAULT_SAMPLE_RATE: u32 = 64;

    /// Default total number of counters: 128.
    pub const DEFAULT_CAPACITY: usize = 128;

    /// Samples between two halvings of the counts: 65,536 (about 4
    /// million reads at the default rate).
    pub const DEFAULT_HALF_LIFE: u64 = 1 << 16;

    /// A tracker with about `capacity` counters in total, sampling 1 read
    /// in `sample_rate`, striped for the machine's parallelism.
    ///
    /// Odd inputs: a `sample_rate` of 0 is taken as 1 (every read); the
    /// counters are at least 8 per stripe, so a `capacity` of 0 still
    /// tracks keys. `top(n)` returns at most the number of counters.
    pub fn new(capacity: usize, sample_rate: u32) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stripes = (cores * 2).next_power_of_two().min(64);
        Self::with_stripes(capacity, sample_rate, stripes, Self::DEFAULT_HALF_LIFE)
    }

    /// As [`new`](Self::new), with `stripes` stripes (rounded up to a power
    /// of two, at most 1,024) and counts halved every `half_life` samples
    /// (`u64::MAX` never halves; values under 64 are taken as 64, the
    /// granularity at which stripes report their samples).
    pub fn with_stripes(capacity: usize, sample_rate: u32, stripes: usize, half_life: u64) -> Self {
        let stripes = stripes.clamp(1, 1024).next_power_of_two();
        let per_stripe = capacity.div_ceil(stripes).max(8);
        Self {
            stripes: (0..stripes)
                .map(|_| {
                    CachePadded::new(Stripe {
                        summary: Mutex::new(SpaceSaving::new(per_stripe)),
                        dropped: AtomicU64::new(0),
                    })
                })
                .collect(),
            samples: CachePadded::new(AtomicU64::new(0)),
            half_life: half_life.max(BATCH),
            stripe_mask: stripes - 1,
            sampler: Sampler::new(sample_rate),
        }
    }

    /// Notes a read of `key`, whose hash is `hash` (any well-mixed hash;
    /// the same key must always come with the same hash). Samples 1 read
    /// in the sampling rate; a sampled read that finds its stripe busy is
    /// dropped. Never blocks.
    ///
    /// **Locking behaviour:** a sampled read compares `key` with the keys
    /// of its stripe (`Eq`) and may clone it, under the stripe's lock; a
    /// re-entrant call from there is dropped as a busy stripe.
    #[inline]
    pub fn record(&self, hash: u64, key: &K) {
        if self.sampler.due() {
            self.record_sampled(hash, key);
        }
    }

    /// This tracker's sampling decision, for an owner that makes it itself
    /// and then calls [`record_sampled`](Self::record_sampled).
    pub fn sampler(&self) -> Sampler {
        self.sampler
    }

    /// The sampled half of [`record`](Self::record): counts `key` now,
    /// unless its stripe is busy.
    #[cold]
    #[inline(never)]
    pub fn record_sampled(&self, hash: u64, key: &K) {
        // Bits well away from the ones a table or a shard index uses first.
        let stripe = &self.stripes[(hash >> 23) as usize & self.stripe_mask];
        match stripe.summary.try_lock() {
            Some(mut s) => {
                s.taken += 1;
                if s.taken % BATCH == 0 {
                    let all = self.samples.fetch_add(BATCH, Ordering::Relaxed) + BATCH;
                    s.age_to(all / self.half_life);
                }
                s.offer(hash, key);
            }
            None => {
                stripe.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The `n` hottest keys with their estimated read counts, hottest
    /// first. At most as many as
    /// there are counters; fewer if fewer keys were sampled.
    ///
    /// **Locking behaviour:** takes each stripe's lock in turn and clones
    /// its keys; readers meanwhile drop their samples of that stripe.
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut all: Vec<(K, u64)> = Vec::new();
        let epoch = self.samples.load(Ordering::Relaxed) / self.half_life;
        for stripe in self.stripes.iter() {
            let mut s = stripe.summary.lock();
            s.age_to(epoch);
            all.extend(
                (0..s.keys.len())
                    .filter(|&i| s.counts[i] > 0)
                    .map(|i| (s.keys[i].clone(), s.counts[i])),
            );
        }
        all.sort_unstable_by_key(|p| std::cmp::Reverse(p.1));
        all.truncate(n);
        let rate = u64::from(self.sampler.rate);
        for (_, c) in &mut all {
            *c = c.saturating_mul(rate);
        }
        all
    }

    /// Forgets every key.
    pub fn clear(&self) {
        for stripe in self.stripes.iter() {
            stripe.summary.lock().clear();
        }
    }

    /// Samples dropped so far because their stripe was busy.
    pub fn dropped(&self) -> u64 {
        self.stripes
            .iter()
            .map(|s| s.dropped.load(Ordering::Relaxed))
            .sum()
    }

    /// Total number of counters.
    pub fn capacity(&self) -> usize {
        self.stripes.len() * self.stripes[0].summary.lock().capacity
    }
}

impl<K> fmt::Debug for HotKeys<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HotKeys")
            .field("stripes", &self.stripes.len())
            .field("sample_rate", &self.sampler.rate)
            .finish_non_exhaustive()
    }
}

/// One stripe's summary, in parallel arrays (slot `i` is `keys[i]`,
/// `prints[i / 8][i % 8]`, `counts[i]`).
struct SpaceSaving<K> {
    keys: Vec<K>,
    /// 32 bits of each key's hash, in blocks of 8 (fixed-size arrays, so
    /// that a block is compared in a few SIMD instructions; slots past
    /// `keys.len()` are masked off).
    prints: Vec<[u32; 8]>,
    counts: Vec<u64>,
    capacity: usize,
    /// The smallest count once every slot is taken.
    min: u64,
    /// Samples this stripe took (reported to the shared count every
    /// [`BATCH`]).
    taken: u64,
    /// Halvings applied so far.
    epoch: u64,
}

/// Samples a stripe takes between two reports to the shared count.
const BATCH: u64 = 64;

/// The 32 bits of a hash a stripe compares (not the ones that chose it).
#[inline]
fn print(hash: u64) -> u32 {
    (hash >> 32) as u32
}

impl<K: Clone + Eq> SpaceSaving<K> {
    fn new(capacity: usize) -> Self {
        Self {
            keys: Vec::with_capacity(capacity),
            prints: Vec::with_capacity(capacity.div_ceil(8)),
            counts: Vec::with_capacity(capacity),
            capacity,
            min: 0,
            taken: 0,
            epoch: 0,
        }
    }

    /// Counts one sample of `key`.
    fn offer(&mut self, hash: u64, key: &K) {
        let fp = print(hash);
        if let Some(i) = self.find(fp, key) {
            let c = self.counts[i];
            self.counts[i] = c + 1;
            if c == self.min && self.is_full() {
                self.min = self.smallest();
            }
        } else if !self.is_full() {
            let i = self.keys.len();
            self.keys.push(key.clone());
            if i % 8 == 0 {
                self.prints.push([0; 8]);
            }
            self.prints[i / 8][i % 8] = fp;
            self.counts.push(1);
            if self.is_full() {
                self.min = self.smallest();
            }
        } else {
            // Randomised admission: the key takes the smallest counter
            // (at `min + 1`) with probability 1 / (min + 1).
            let m = self.min;
            if (u128::from(draw()) * u128::from(m + 1)) >> 32 != 0 {
                return;
            }
            let key = key.clone(); // before any change: a panicking clone leaves the summary whole
            let i = self.counts.iter().position(|&c| c == m).unwrap_or(0);
            self.keys[i] = key;
            self.prints[i / 8][i % 8] = fp;
            self.counts[i] = m + 1;
            self.min = self.smallest();
        }
    }

    fn is_full(&self) -> bool {
        self.keys.len() >= self.capacity
    }

    /// The smallest count (a plain loop over a few cache lines).
    fn smallest(&self) -> u64 {
        self.counts.iter().copied().min().unwrap_or(0)
    }

    /// The slot holding `key`. First whether any print matches at all: an
    /// OR-reduction over whole blocks, which the compiler turns into SIMD
    /// compares (most samples are of keys not held, and stop here); then
    /// the matching slots in order, each confirmed by the key itself.
    /// Slots past `keys.len()` hold stale or zero prints, so the second
    /// pass stops at `keys.len()`.
    #[inline]
    fn find(&self, fp: u32, key: &K) -> Option<usize> {
        let any = self.prints.iter().fold(false, |acc, block| {
            acc | block.iter().fold(false, |a, &h| a | (h == fp))
        });
        if !any {
            return None;
        }
        (0..self.keys.len()).find(|&i| self.prints[i / 8][i % 8] == fp && self.keys[i] == *key)
    }

    /// Halves every count once per epoch from `self.epoch` to `epoch`
    /// (halving keeps the order, so the smallest count stays smallest).
    fn age_to(&mut self, epoch: u64) {
        if epoch <= self.epoch {
            return;
        }
        let shift = (epoch - self.epoch).min(63) as u32;
        self.epoch = epoch;
        for c in &mut self.counts {
            *c >>= shift;
        }
        self.min >>= shift;
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.prints.clear();
        self.counts.clear();
        self.min = 0;
    }
}

/// Mean of a countdown gap, in reads: 64.
const GAP_MEAN: u32 = 64;

thread_local! {
    /// Reads of this thread until its gap ends (0 or 1: the next read).
    static COUNTDOWN: Cell<u32> = const { Cell::new(0) };
}

/// This thread's next xorshift32 draw (never 0).
fn draw() -> u32 {
    thread_local! {
        static STATE: Cell<u32> = const { Cell::new(0) };
    }
    STATE.with(|s| {
        let mut x = s.get();
        if x == 0 {
            x = seed();
        }
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        s.set(x);
        x
    })
}

/// A distinct non-zero seed for each thread.
#[cold]
fn seed() -> u32 {
    use std::sync::atomic::AtomicU32;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    (n.wrapping_add(1).wrapping_mul(0x9E37_79B9) | 1).rotate_left(7)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Rng(u64);
    impl Rng {
        fn unit(&mut self) -> f64 {
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    /// `len` Zipf(`s`) draws over `n` keys; rank r's key is scattered.
    fn zipf_stream(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
        let mut cdf: Vec<f64> = Vec::with_capacity(n);
        let mut sum = 0.0;
        for r in 1..=n {
            sum += 1.0 / (r as f64).powf(s);
            cdf.push(sum);
        }
        let mut rng = Rng(seed);
        (0..len)
            .map(|_| {
                let u = rng.unit() * sum;
                let r = cdf.partition_point(|&c| c <= u).min(n - 1) as u64;
                r.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 40
            })
            .collect()
    }

    /// The `n` most frequent keys of `stream`, and every key's count.
    fn true_top(stream: &[u64], n: usize) -> (Vec<u64>, HashMap<u64, u64>) {
        let mut counts = HashMap::new();
        for &k in stream {
            *counts.entry(k).or_insert(0u64) += 1;
        }
        let mut v: Vec<_> = counts.iter().map(|(&k, &c)| (k, c)).collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        (v.iter().take(n).map(|p| p.0).collect(), counts)
    }

    fn hasher() -> ahash::RandomState {
        ahash::RandomState::with_seeds(9, 8, 7, 6)
    }

    fn sorted(mut v: Vec<u64>) -> Vec<u64> {
        v.sort_unstable();
        v
    }

    #[test]
    fn every_read_counted_finds_the_true_top_ten_with_close_counts() {
        let stream = zipf_stream(100_000, 1.0, 1_000_000, 1);
        let (top10, truth) = true_top(&stream, 10);
        let h = hasher();
        let hot = HotKeys::with_stripes(128, 1, 4, u64::MAX);
        for k in &stream {
            hot.record(h.hash_one(k), k);
        }
        let got = hot.top(10);
        assert_eq!(
            sorted(got.iter().map(|p| p.0).collect()),
            sorted(top10.clone())
        );
        // Hottest first, each estimate close to the true count (no
        // halving here).
        assert_eq!(got[0].0, top10[0]);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
        for (k, c) in &got {
            let t = truth[k] as f64;
            assert!(
                (*c as f64 - t).abs() <= 0.01 * t,
                "key {k}: estimate {c}, true {t}"
            );
        }
        assert_eq!(hot.dropped(), 0);
    }

    #[test]
    fn sampled_reads_find_the_true_top_ten() {
        // 8 million Zipf(1.0) reads over 100,000 keys, 1 in 16 sampled:
        // about 500,000 samples. The 10th and 11th keys are then sampled
        // about 4,140 and 3,760 times (sd about 64 each), so swapping them
        // is a 4-sigma event.
        let stream = zipf_stream(100_000, 1.0, 8_000_000, 2);
        let (top10, truth) = true_top(&stream, 10);
        let h = hasher();
        // At 1 in 16: a tracker with the default aging (it halves a few
        // times here), and one that never halves, whose estimates are then
        // comparable to counts. And the default tracker (1 in 64, so about
        // 125,000 samples): its top ten holds the true top five, each
        // sampled about 2,000 times or more against under 1,000 for any key
        // outside the true top ten (a gap of some 20 standard deviations).
        let aging = HotKeys::with_stripes(128, 16, 4, 1 << 18);
        let no_aging = HotKeys::with_stripes(128, 16, 4, u64::MAX);
        let default = HotKeys::new(
            HotKeys::<u64>::DEFAULT_CAPACITY,
            HotKeys::<u64>::DEFAULT_SAMPLE_RATE,
        );
        for k in &stream {
            let hash = h.hash_one(k);
            aging.record(hash, k);
            no_aging.record(hash, k);
            default.record(hash, k);
        }
        let got: Vec<u64> = default.top(10).into_iter().map(|p| p.0).collect();
        assert_eq!(got[0], top10[0]);
        assert!(
            top10[..5].iter().all(|k| got.contains(k)),
            "returned {got:?}"
        );
        for hot in [&aging, &no_aging] {
            let got = hot.top(10);
            assert_eq!(
                sorted(got.iter().map(|p| p.0).collect()),
                sorted(top10.clone()),
                "returned {got:?}"
            );
            assert_eq!(got[0].0, top10[0]);
        }
        // The estimate of the hottest key (an eighth of the reads) is
        // within 5% of its true count.
        let (k, c) = no_aging.top(1)[0];
        let t = truth[&k] as f64;
        assert!((c as f64 - t).abs() < 0.05 * t, "{c} vs {t}");
    }

    #[test]
    fn sampling_rates_are_about_right_even_when_trackers_share_a_thread() {
        // Two trackers of different rates fed alternately from one thread
        // (they share its countdown); one key each, so its count is the
        // number of samples.
        for (r1, r2) in [
            (16, u32::MAX),
            (64, 4),
            (3, 16),
            (1000, 16),
            (64, 128),
            (65, 63),
        ] {
            let a = HotKeys::with_stripes(8, r1, 1, u64::MAX);
            let b = HotKeys::with_stripes(8, r2, 1, u64::MAX);
            let reads = 1_600_000u64;
            for _ in 0..reads {
                a.record(1, &1u8);
                b.record(1, &1u8);
            }
            for (hot, r) in [(&a, r1), (&b, r2)] {
                let samples = hot.top(1).first().map_or(0, |p| p.1) / u64::from(r);
                let want = reads as f64 / f64::from(r);
                let tolerance = 5.0 * want.sqrt() + 1.0;
                assert!(
                    (samples as f64 - want).abs() <= tolerance,
                    "rate {r}: {samples} samples, expected {want}"
                );
            }
        }
    }

    #[test]
    fn halving_lets_new_hot_keys_take_over() {
        let hot = HotKeys::with_stripes(16, 1, 1, 1024);
        for _ in 0..100_000 {
            hot.record(1, &1u64);
        }
        for i in 0..20_000u64 {
            let k = 2 + i % 2;
            hot.record(k, &k);
        }
        let top: Vec<u64> = hot.top(2).into_iter().map(|p| p.0).collect();
        assert_eq!(sorted(top), vec![2, 3], "key 1 went cold");
    }

    #[test]
    fn odd_inputs() {
        let hot: HotKeys<String> = HotKeys::with_stripes(0, 0, 0, u64::MAX);
        assert_eq!(hot.capacity(), 8);
        assert!(hot.top(5).is_empty());
        hot.record(5, &"a".to_string());
        hot.record(5, &"a".to_string());
        // Equal hashes, different keys: both kept apart.
        hot.record(5, &"b".to_string());
        assert_eq!(hot.top(0), vec![]);
        let top = hot.top(10);
        assert_eq!(top.len(), 2);
        assert_eq!(top[0].0, "a");
        hot.clear();
        assert!(hot.top(10).is_empty());
        let big = HotKeys::<u8>::with_stripes(1, 1, usize::MAX, 0);
        assert_eq!(big.stripes.len(), 1024);
        assert_eq!(big.half_life, BATCH);
        for i in 0..10_000u64 {
            big.record(i, &1);
        }
        assert_eq!(big.top(1)[0].0, 1);
    }

    #[test]
    fn a_busy_stripe_drops_the_sample() {
        let hot = HotKeys::with_stripes(8, 1, 1, u64::MAX);
        let guard = hot.stripes[0].summary.lock();
        hot.record(1, &1u32);
        drop(guard);
        assert_eq!(hot.dropped(), 1);
        assert!(hot.top(1).is_empty());
    }

    #[test]
    fn concurrent_readers_and_queries() {
        // Four threads feed (at 1 in 16) while a fifth queries.
        let stream = zipf_stream(10_000, 1.2, 1_600_000, 3);
        let (top3, _) = true_top(&stream, 3);
        let h = hasher();
        let hot = HotKeys::with_stripes(64, 16, 4, u64::MAX);
        let every = HotKeys::with_stripes(64, 1, 4, u64::MAX);
        std::thread::scope(|s| {
            for chunk in stream.chunks(400_000) {
                let (hot, every, h) = (&hot, &every, &h);
                s.spawn(move || {
                    for k in chunk {
                        hot.record(h.hash_one(k), k);
                        every.record(h.hash_one(k), k);
                    }
                });
            }
            let hot = &hot;
            s.spawn(move || {
                for _ in 0..100 {
                    assert!(hot.top(10).len() <= 10);
                }
            });
        });
        let got: Vec<u64> = hot.top(3).into_iter().map(|p| p.0).collect();
        assert_eq!(
            sorted(got),
            sorted(top3.clone()),
            "dropped {}",
            hot.dropped()
        );
        // Feeding every read from four threads, many samples are dropped
        // on busy stripes, and more of them on the stripes of hot keys
        // (which understates keys sharing a stripe with hotter ones); the
        // hottest key still comes first.
        assert_eq!(every.top(1)[0].0, top3[0], "dropped {}", every.dropped());
    }
}
