//! [`HotKeys`]: the most-read keys of a stream, estimated from a sample of
//! it, cheap enough to sit on a cache's read path.
//!
//! # Design
//!
//! * **Sampling.** [`record`](HotKeys::record) first draws from a per-thread
//!   xorshift generator and returns unless the draw falls in the sampled
//!   fraction (1 in 16 by default): a thread-local read, three shifts and
//!   xors, a compare. A random draw rather than a counter, so that a
//!   periodic access pattern cannot alias with the sampling period (with
//!   "every 16th read", a loop over 16 keys would report one of them).
//! * **Never waits.** A sampled read takes its stripe's lock with
//!   `try_lock`; if another thread holds it, the sample is dropped (and
//!   counted). Readers never queue behind one another or behind a
//!   [`top`](HotKeys::top) query, and a reader that re-enters (a key's
//!   `Eq` or `Drop` reading the cache) cannot deadlock.
//! * **Space-Saving** (Metwally, Agrawal and El Abbadi, "Efficient
//!   Computation of Frequent and Top-k Elements in Data Streams", ICDT
//!   2005) per stripe: a fixed set of counters; a sampled key already held
//!   gains one, a new key takes over the counter with the smallest count
//!   `c`, starting at `c + 1` with error `c`. Each count is then an
//!   overestimate of the key's samples by at most its error, and any key
//!   sampled more than `samples / counters` times is held. A stripe keeps
//!   its keys' hashes and counts in two small contiguous arrays, so finding
//!   a key or the minimum is a linear scan of a few cache lines (no heap, no
//!   table to maintain).
//! * **Stripes.** Keys are split over several independent stripes by hash
//!   (a key always goes to the same one), so sampled readers of different
//!   keys rarely contend for a lock; a query merges the stripes.
//! * **Aging.** Every [`HotKeys::DEFAULT_HALF_LIFE`] samples (of the whole
//!   tracker) every count and error is halved, so the estimates weigh
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
#[doc(hidden)] // reached through `Cache::hot_keys` once wired (issue 13)
pub struct HotKeys<K> {
    stripes: Box<[CachePadded<Stripe<K>>]>,
    /// Samples taken by all stripes, in steps of [`BATCH`]: the epoch is
    /// this over `half_life`.
    samples: CachePadded<AtomicU64>,
    half_life: u64,
    /// `stripes.len() - 1` (a power of two).
    stripe_mask: usize,
    /// A read is sampled when the thread's draw is at most this.
    threshold: u32,
    /// 1 in `rate` reads is sampled.
    rate: u32,
}

struct Stripe<K> {
    summary: Mutex<SpaceSaving<K>>,
    /// Samples dropped because the lock was held.
    dropped: AtomicU64,
}

impl<K: Clone + Eq> HotKeys<K> {
    /// Default sampling: 1 read in 16.
    pub const DEFAULT_SAMPLE_RATE: u32 = 16;

    /// Default total number of counters: 128.
    pub const DEFAULT_CAPACITY: usize = 128;

    /// Samples between two halvings of the counts: 262,144 (about 4
    /// million reads at the default rate).
    pub const DEFAULT_HALF_LIFE: u64 = 1 << 18;

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
        let rate = sample_rate.max(1);
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
            threshold: u32::MAX / rate,
            rate,
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
        if draw() <= self.threshold {
            self.record_sampled(hash, key);
        }
    }

    /// The sampled half of [`record`](Self::record): counts `key` now.
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
    /// first (ties: the smaller overestimate first). At most as many as
    /// there are counters; fewer if fewer keys were sampled.
    ///
    /// **Locking behaviour:** takes each stripe's lock in turn and clones
    /// its keys; readers meanwhile drop their samples of that stripe.
    pub fn top(&self, n: usize) -> Vec<(K, u64)> {
        let mut all: Vec<(K, u64, u64)> = Vec::new();
        let epoch = self.samples.load(Ordering::Relaxed) / self.half_life;
        for stripe in self.stripes.iter() {
            let mut s = stripe.summary.lock();
            s.age_to(epoch);
            all.extend(
                (0..s.keys.len())
                    .filter(|&i| s.counts[i] > 0)
                    .map(|i| (s.keys[i].clone(), s.counts[i], s.errors[i])),
            );
        }
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        all.truncate(n);
        let rate = u64::from(self.rate);
        all.into_iter()
            .map(|(k, c, _)| (k, c.saturating_mul(rate)))
            .collect()
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
            .field("sample_rate", &self.rate)
            .finish_non_exhaustive()
    }
}

/// One stripe's Space-Saving summary, in parallel arrays (slot `i` is
/// `keys[i]`, `hashes[i]`, `counts[i]`, `errors[i]`).
struct SpaceSaving<K> {
    keys: Vec<K>,
    hashes: Vec<u64>,
    counts: Vec<u64>,
    errors: Vec<u64>,
    capacity: usize,
    /// Samples this stripe took (reported to the shared count every
    /// [`BATCH`]).
    taken: u64,
    /// Halvings applied so far.
    epoch: u64,
}

/// Samples a stripe takes between two reports to the shared count.
const BATCH: u64 = 64;

impl<K: Clone + Eq> SpaceSaving<K> {
    fn new(capacity: usize) -> Self {
        Self {
            keys: Vec::with_capacity(capacity),
            hashes: Vec::with_capacity(capacity),
            counts: Vec::with_capacity(capacity),
            errors: Vec::with_capacity(capacity),
            capacity,
            taken: 0,
            epoch: 0,
        }
    }

    /// Counts one sample of `key`.
    fn offer(&mut self, hash: u64, key: &K) {
        let found = self
            .hashes
            .iter()
            .enumerate()
            .find(|&(i, &h)| h == hash && self.keys[i] == *key)
            .map(|(i, _)| i);
        if let Some(i) = found {
            self.counts[i] += 1;
        } else if self.keys.len() < self.capacity {
            self.keys.push(key.clone());
            self.hashes.push(hash);
            self.counts.push(1);
            self.errors.push(0);
        } else {
            // The counter with the smallest count goes to the new key.
            let (i, &min) = self
                .counts
                .iter()
                .enumerate()
                .min_by_key(|&(_, &c)| c)
                .expect("capacity is at least 8");
            let key = key.clone(); // before any change: a panicking clone leaves the summary whole
            self.keys[i] = key;
            self.hashes[i] = hash;
            self.counts[i] = min + 1;
            self.errors[i] = min;
        }
    }

    /// Halves every count and error once per epoch from `self.epoch` to
    /// `epoch` (an error stays at most its count).
    fn age_to(&mut self, epoch: u64) {
        if epoch <= self.epoch {
            return;
        }
        let shift = (epoch - self.epoch).min(63) as u32;
        self.epoch = epoch;
        for c in &mut self.counts {
            *c >>= shift;
        }
        for e in &mut self.errors {
            *e >>= shift;
        }
    }

    fn clear(&mut self) {
        self.keys.clear();
        self.hashes.clear();
        self.counts.clear();
        self.errors.clear();
    }
}

/// This thread's next xorshift32 draw (never 0).
#[inline]
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
    fn every_read_counted_finds_the_true_top_ten_with_space_saving_bounds() {
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
        // Hottest first; counts never under the truth (no halving here).
        assert_eq!(got[0].0, top10[0]);
        assert!(got.windows(2).all(|w| w[0].1 >= w[1].1));
        for (k, c) in &got {
            assert!(*c >= truth[k], "key {k}: estimate {c} < true {}", truth[k]);
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
        // The default tracker (its stripes halve a few times here), and one
        // that never halves, whose estimates are then comparable to counts.
        let default = HotKeys::new(HotKeys::<u64>::DEFAULT_CAPACITY, 16);
        let no_aging = HotKeys::with_stripes(128, 16, 4, u64::MAX);
        for k in &stream {
            default.record(h.hash_one(k), k);
            no_aging.record(h.hash_one(k), k);
        }
        for hot in [&default, &no_aging] {
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
    fn sampling_rate_is_about_right() {
        let hot = HotKeys::with_stripes(8, 16, 1, u64::MAX);
        // One key: its count is the number of samples.
        for _ in 0..160_000 {
            hot.record(1, &1u8);
        }
        let samples = hot.top(1)[0].1 / 16;
        assert!((9_000..11_000).contains(&samples), "{samples} samples");
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
        let stream = zipf_stream(10_000, 1.2, 400_000, 3);
        let (top3, _) = true_top(&stream, 3);
        let h = hasher();
        let hot = HotKeys::with_stripes(64, 1, 4, u64::MAX);
        std::thread::scope(|s| {
            for chunk in stream.chunks(100_000) {
                let (hot, h) = (&hot, &h);
                s.spawn(move || {
                    for k in chunk {
                        hot.record(h.hash_one(k), k);
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
        // Dropped samples are few against the counts of the top keys.
        let got: Vec<u64> = hot.top(3).into_iter().map(|p| p.0).collect();
        assert_eq!(sorted(got), sorted(top3), "dropped {}", hot.dropped());
    }
}
