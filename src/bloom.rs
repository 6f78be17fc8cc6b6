//! [`BloomFilter`]: a shared, lock-free set membership filter that answers
//! "certainly absent" or "possibly present", the defence against cache
//! penetration (reads of keys that exist nowhere, each of which would
//! otherwise reach the backend).
//!
//! # Design
//!
//! The classic filter of Bloom ("Space/Time Trade-offs in Hash Coding with
//! Allowable Errors", CACM 1970): `m` bits, `k` bit positions per key. For
//! `n` expected keys and a false-positive rate `p` the optimal sizes are
//! `m = -n ln p / (ln 2)^2` and `k = (m / n) ln 2`, which give a rate of
//! about `(1 - e^(-kn/m))^k ≈ p` once `n` keys are in.
//!
//! The `k` positions come from one 64-bit hash by double hashing (Kirsch
//! and Mitzenmacher, "Less Hashing, Same Performance", ESA 2006): `h1` is
//! the hash, `h2` is a mix of it (forced odd), and position `i` is
//! `h1 + i * h2` mapped onto `0..m` by a multiply-shift (Lemire's fast
//! range), so `m` need not be a power of two and the filter is not rounded
//! up to one.
//!
//! The bits live in `u64` words behind an `Arc`: [`insert`](BloomFilter::insert)
//! sets bits with `fetch_or` (no lock, never waits), and a clone is a
//! second handle on the same bits, so one thread can fill a filter while
//! others query it. A concurrent `contains` sees each bit either before or
//! after a racing insert set it: a key whose `insert` has returned is always
//! found (no false negatives), a key being inserted may or may not be yet.
//!
//! A blocked layout (all of a key's bits in one cache line) would cost one
//! cache miss per query instead of `k`, at a higher false-positive rate
//! for the same memory; the filter sits in front of the loader, on the
//! miss path, where the rate matters more than a few cache misses.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::marker::PhantomData;

use crate::sync::{Arc, AtomicU64, Ordering};

/// Smallest false-positive rate a filter is sized for (smaller requests
/// are raised to it): `1e-10`, which needs 48 bits and 33 hashes per key.
const MIN_FP_RATE: f64 = 1e-10;

/// Largest false-positive rate a filter is sized for (larger requests,
/// including 1 and above, are lowered to it): one hash, 0.72 bits per key.
const MAX_FP_RATE: f64 = 0.5;

/// Largest bit array a filter allocates: 2^36 bits (8 GiB). A request for
/// more (a huge `expected_items`) gets this many bits and a false-positive
/// rate above the one asked for.
const MAX_BITS: u64 = 1 << 36;

/// Largest number of hashes per key (what [`MIN_FP_RATE`] needs).
const MAX_HASHES: u32 = 33;

/// A Bloom filter over keys of type `K`: [`contains`](Self::contains) is
/// `false` for every key never inserted except a fraction (the
/// false-positive rate), and always `true` for an inserted key.
///
/// `Clone` shares the bits: insert through one handle, query through
/// another, from any threads, without locks.
///
/// # Examples
///
/// ```
/// let known_ids = larder::BloomFilter::<u64>::new(1_000_000, 0.01); // expected keys, false-positive rate
/// let reader = known_ids.clone(); // the same bits
/// known_ids.insert(&42);
/// assert!(reader.contains(&42));
/// assert!(known_ids.bits() >= 9_585_058); // -1e6 ln 0.01 / (ln 2)^2 bits
/// assert_eq!(known_ids.hashes(), 7);
/// ```
///
/// Keys are found through [`Borrow`] as in `HashMap`: a
/// `BloomFilter<String>` is queried with a `&str`.
///
/// ```
/// let names = larder::BloomFilter::<String>::new(100, 0.01);
/// names.insert("ada");
/// assert!(names.contains("ada"));
/// ```
pub struct BloomFilter<K: ?Sized, S = ahash::RandomState> {
    inner: Arc<Inner<S>>,
    _key: PhantomData<fn(&K)>,
}

struct Inner<S> {
    words: Box<[AtomicU64]>,
    /// `m`: bit positions in use (at most `64 * words.len()`).
    bits: u64,
    /// `k`.
    hashes: u32,
    hasher: S,
}

impl<K: ?Sized> BloomFilter<K> {
    /// A filter sized for `expected_items` keys at a false-positive rate of
    /// `fp_rate`, with a randomly keyed ahash.
    ///
    /// Odd inputs are clamped, never a panic: `expected_items` of 0 is
    /// taken as 1; a `fp_rate` that is NaN, zero, negative or below
    /// `1e-10` is raised to `1e-10` (33 hashes, 48 bits per key), one above
    /// 0.5 (1 or more included) is lowered to 0.5 (one hash); the bit array never exceeds 2^36 bits
    /// (8 GiB), so a huge `expected_items` gets a higher rate than asked.
    /// Inserting more keys than expected raises the rate gradually (about
    /// 0.05 at twice the keys for an asked 0.01); nothing fails.
    pub fn new(expected_items: u64, fp_rate: f64) -> Self {
        Self::with_hasher(expected_items, fp_rate, ahash::RandomState::new())
    }
}

impl<K: ?Sized, S: BuildHasher> BloomFilter<K, S> {
    /// A filter as [`new`](BloomFilter::new) with the given hasher (for
    /// example a fixed-key one, so that two processes build identical bits).
    pub fn with_hasher(expected_items: u64, fp_rate: f64, hasher: S) -> Self {
        let (bits, hashes) = dimensions(expected_items, fp_rate);
        let words = bits.div_ceil(64) as usize;
        Self {
            inner: Arc::new(Inner {
                words: (0..words).map(|_| AtomicU64::new(0)).collect(),
                bits,
                hashes,
                hasher,
            }),
            _key: PhantomData,
        }
    }

    /// Adds `key`. Lock-free (one `fetch_or` per hash whose bit is not
    /// already set); visible to every clone of the filter.
    pub fn insert<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        let inner = &*self.inner;
        for (word, mask) in inner.positions(inner.hasher.hash_one(key)) {
            let w = &inner.words[word];
            // A load first: a set bit (common once the filter fills) costs
            // no write to a line other threads are reading.
            if w.load(Ordering::Relaxed) & mask == 0 {
                w.fetch_or(mask, Ordering::Relaxed);
            }
        }
    }

    /// `false` if `key` was certainly never inserted; `true` if it was, or
    /// (at the false-positive rate) if it was not.
    pub fn contains<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + ?Sized,
    {
        let inner = &*self.inner;
        inner
            .positions(inner.hasher.hash_one(key))
            .all(|(word, mask)| inner.words[word].load(Ordering::Relaxed) & mask != 0)
    }

    /// Clears every bit (through every clone). Not atomic against
    /// concurrent inserts: a key inserted during the clear may be lost.
    pub fn clear(&self) {
        for w in self.inner.words.iter() {
            w.store(0, Ordering::Relaxed);
        }
    }
}

impl<K: ?Sized, S> BloomFilter<K, S> {
    /// `m`, the number of bits.
    pub fn bits(&self) -> u64 {
        self.inner.bits
    }

    /// `k`, the number of bit positions per key.
    pub fn hashes(&self) -> u32 {
        self.inner.hashes
    }

    /// Heap bytes of the bit array.
    pub fn heap_bytes(&self) -> usize {
        self.inner.words.len() * 8
    }

    /// The fraction of bits set now (0 to 1). With `k` hashes the
    /// false-positive rate is about this to the power `k`.
    pub fn fill_ratio(&self) -> f64 {
        let ones: u64 = self
            .inner
            .words
            .iter()
            .map(|w| u64::from(w.load(Ordering::Relaxed).count_ones()))
            .sum();
        ones as f64 / self.inner.bits as f64
    }

    /// The false-positive rate to expect now, `fill_ratio ^ k`.
    pub fn estimated_fp_rate(&self) -> f64 {
        self.fill_ratio().powi(self.inner.hashes as i32)
    }
}

impl<S> Inner<S> {
    /// The `(word, mask)` of each of the key's `k` bits.
    #[inline]
    fn positions(&self, hash: u64) -> impl Iterator<Item = (usize, u64)> + '_ {
        let h2 = mix(hash) | 1;
        (0..u64::from(self.hashes)).map(move |i| {
            let g = hash.wrapping_add(i.wrapping_mul(h2));
            // Fast range: the high half of g * m is uniform on 0..m.
            let bit = ((u128::from(g) * u128::from(self.bits)) >> 64) as u64;
            ((bit / 64) as usize, 1u64 << (bit % 64))
        })
    }
}

/// `(m, k)` for `n` keys at rate `p`, after clamping (see
/// [`BloomFilter::new`]).
fn dimensions(n: u64, p: f64) -> (u64, u32) {
    let n = n.max(1) as f64;
    let p = if p.is_nan() {
        MIN_FP_RATE
    } else {
        p.clamp(MIN_FP_RATE, MAX_FP_RATE)
    };
    let ln2 = std::f64::consts::LN_2;
    let m = (-n * p.ln() / (ln2 * ln2)).ceil();
    // `as` saturates; at least one word's worth keeps tiny filters sane.
    let bits = (m as u64).clamp(64, MAX_BITS);
    // k from the unclamped m: a capped array keeps the k of the asked rate
    // rather than piling more hashes into too few bits.
    let k = (m / n * ln2).round();
    let hashes = (k as u32).clamp(1, MAX_HASHES);
    (bits, hashes)
}

/// The SplitMix64 finaliser: derives the second hash of double hashing.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl<K: ?Sized, S> Clone for BloomFilter<K, S> {
    /// A second handle on the same bits.
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            _key: PhantomData,
        }
    }
}

impl<K: ?Sized, S> fmt::Debug for BloomFilter<K, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BloomFilter")
            .field("bits", &self.inner.bits)
            .field("hashes", &self.inner.hashes)
            .finish_non_exhaustive()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// Fixed-key hasher: the measured rates below are the same every run.
    fn fixed() -> ahash::RandomState {
        ahash::RandomState::with_seeds(1, 2, 3, 4)
    }

    /// Inserts `n` keys, checks every one is found, and returns the
    /// fraction of `probes` absent keys that are reported present.
    fn measured_rate(n: u64, p: f64, probes: u64) -> f64 {
        let f = BloomFilter::<u64, _>::with_hasher(n, p, fixed());
        for i in 0..n {
            f.insert(&(i * 2));
        }
        for i in 0..n {
            assert!(f.contains(&(i * 2)), "false negative for {}", i * 2);
        }
        let false_positives = (0..probes).filter(|i| f.contains(&(i * 2 + 1))).count();
        false_positives as f64 / probes as f64
    }

    #[test]
    fn false_positive_rate_is_within_one_and_a_half_times_the_asked_rate() {
        for (n, p) in [
            (1_000_000, 0.01),
            (100_000, 0.1),
            (100_000, 0.01),
            (100_000, 0.001),
            (10_000, 0.05),
        ] {
            let rate = measured_rate(n, p, 1_000_000);
            eprintln!("n {n}, asked {p}: measured {rate} ({:.3}x)", rate / p);
            assert!(
                (p / 1.5..=1.5 * p).contains(&rate),
                "asked {p}, measured {rate} over 10^6 absent keys"
            );
        }
    }

    #[test]
    fn random_keyed_filters_hold_the_rate_too() {
        let f = BloomFilter::<u64>::new(50_000, 0.02);
        for i in 0..50_000u64 {
            f.insert(&i);
        }
        let fp = (50_000..1_050_000u64).filter(|i| f.contains(i)).count();
        let rate = fp as f64 / 1e6;
        assert!((0.02 / 1.5..=0.03).contains(&rate), "measured {rate}");
        assert!((f.estimated_fp_rate() - 0.02).abs() < 0.005);
    }

    #[test]
    fn sizes_follow_the_standard_formulas() {
        let f = BloomFilter::<u64>::new(1_000_000, 0.01);
        // m = 1e6 * 4.60517 / 0.480453 = 9_585_058.4, k = 9.585 * 0.693 = 6.64
        assert_eq!(f.bits(), 9_585_059);
        assert_eq!(f.hashes(), 7);
        assert_eq!(f.heap_bytes(), 9_585_059usize.div_ceil(64) * 8);
    }

    #[test]
    fn odd_inputs_are_clamped() {
        // No expected items: sized for one.
        let f = BloomFilter::<u64>::new(0, 0.01);
        assert_eq!((f.bits(), f.hashes()), (64, 7));
        f.insert(&7);
        assert!(f.contains(&7));
        // Rates outside (0, 1) and NaN.
        let lo = dimensions(1000, MIN_FP_RATE);
        assert_eq!(dimensions(1000, 0.0), lo);
        assert_eq!(dimensions(1000, -3.0), lo);
        assert_eq!(dimensions(1000, f64::NAN), lo);
        assert_eq!(dimensions(1000, f64::NEG_INFINITY), lo);
        assert_eq!(lo.1, MAX_HASHES);
        let hi = dimensions(1000, MAX_FP_RATE);
        assert_eq!(dimensions(1000, 1.0), hi);
        assert_eq!(dimensions(1000, 7.5), hi);
        assert_eq!(dimensions(1000, f64::INFINITY), hi);
        assert_eq!(hi.1, 1);
        // A huge key count is capped, not an allocation failure.
        assert_eq!(dimensions(u64::MAX, 0.01), (MAX_BITS, 7));
        // Every clamped filter still has no false negatives.
        for p in [0.0, 1.0, f64::NAN, 2.0] {
            let f = BloomFilter::<u32>::new(10, p);
            for i in 0..100 {
                f.insert(&i);
            }
            assert!((0..100).all(|i| f.contains(&i)));
        }
    }

    #[test]
    fn an_empty_filter_contains_nothing_and_clear_empties() {
        let f = BloomFilter::<u64>::new(1000, 0.01);
        assert!((0..10_000u64).all(|i| !f.contains(&i)));
        f.insert(&5);
        assert!(f.contains(&5));
        f.clear();
        assert!(!f.contains(&5));
        assert_eq!(f.fill_ratio(), 0.0);
    }

    #[test]
    fn clones_share_the_bits() {
        let a = BloomFilter::<str>::new(100, 0.01);
        let b = a.clone();
        a.insert("x");
        assert!(b.contains("x"));
        b.clear();
        assert!(!a.contains("x"));
    }

    #[test]
    fn concurrent_inserts_are_all_found() {
        let f = BloomFilter::<u64>::new(400_000, 0.01);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let f = f.clone();
                s.spawn(move || {
                    for i in 0..100_000u64 {
                        f.insert(&(i * 4 + t));
                    }
                });
            }
            // A reader racing the writers: never panics, any answer is fine.
            let f = f.clone();
            s.spawn(move || (0..100_000u64).filter(|i| f.contains(i)).count());
        });
        for i in 0..400_000u64 {
            assert!(f.contains(&i), "lost insert of {i}");
        }
        // A sequential fill of the same keys sets the same bits.
        let g = BloomFilter::<u64, _>::with_hasher(400_000, 0.01, f.inner.hasher.clone());
        for i in 0..400_000u64 {
            g.insert(&i);
        }
        assert_eq!(f.fill_ratio(), g.fill_ratio());
    }
}
