//! From a time-to-live to a deadline: saturation rules, jitter, and the small
//! random number generator jitter draws from.
//!
//! Jitter exists to stop a cache avalanche: entries written together with
//! one TTL would otherwise all expire in the same instant and send their
//! reloads to the backend at once. Drawing each entry's TTL from a range
//! spreads those expiries out. It is applied here, once, when the deadline
//! is computed; the timer wheel only ever sees deadlines.
//!
//! The generator is SplitMix64 (Steele, Lea and Flood, "Fast Splittable
//! Pseudorandom Number Generators", OOPSLA 2014): one add and two
//! multiply-xorshift rounds per draw, statistically sound for this use, and
//! seedable so tests are deterministic. Bounded draws use Lemire's
//! multiply-and-reject method ("Fast Random Integer Generation in an
//! Interval", ACM TOMACS 2019), which is exactly uniform.

use std::time::Duration;

use super::clock::duration_to_nanos;
use super::NEVER;

/// How each entry's time-to-live is spread to avoid a cache avalanche.
///
/// The distribution is uniform over a range of TTLs:
///
/// * [`Jitter::None`]: exactly the TTL (the default).
/// * [`Jitter::Fraction(f)`](Jitter::Fraction): uniform over
///   `[ttl * (1 - f), ttl * (1 + f)]`, so the mean stays `ttl`. `f` is clamped
///   to `[0, 1]`; a NaN or negative `f` means no jitter.
/// * [`Jitter::Up(d)`](Jitter::Up): uniform over `[ttl, ttl + d]`, for when an
///   entry must never live less than its TTL.
///
/// A zero TTL still means "expires at once", whatever the jitter, and a TTL
/// too large to represent (such as [`Duration::MAX`]) still means "never".
/// The range's upper end saturates: a draw beyond about 584 years from the
/// clock's origin never expires.
///
/// `From<f64>` builds a `Fraction` and `From<Duration>` an `Up`, so a builder
/// method taking `impl Into<Jitter>` accepts `0.1` or
/// `Duration::from_secs(5)` as they are.
///
/// # Examples
///
/// ```
/// use larder::Jitter;
/// use std::time::Duration;
///
/// fn spread(j: impl Into<Jitter>) -> Jitter {
///     j.into()
/// }
///
/// assert_eq!(spread(0.1), Jitter::Fraction(0.1)); // TTL x [0.9, 1.1]
/// assert_eq!(spread(Duration::from_secs(5)), Jitter::Up(Duration::from_secs(5)));
/// assert_eq!(Jitter::default(), Jitter::None);
/// assert!(Jitter::Fraction(f64::NAN).is_none());
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum Jitter {
    /// No jitter: every entry lives exactly its TTL.
    #[default]
    None,
    /// Uniform over `[ttl * (1 - f), ttl * (1 + f)]`, `f` clamped to `[0, 1]`
    /// (NaN or negative: no jitter).
    Fraction(f64),
    /// Uniform over `[ttl, ttl + d]`.
    Up(Duration),
}

impl Jitter {
    /// True if this jitter leaves TTLs unchanged: `None`, a fraction that is
    /// zero, negative or NaN, or `Up` by zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::Jitter;
    /// use std::time::Duration;
    ///
    /// assert!(Jitter::None.is_none());
    /// assert!(Jitter::Fraction(-0.5).is_none());
    /// assert!(Jitter::Up(Duration::ZERO).is_none());
    /// assert!(!Jitter::Fraction(0.1).is_none());
    /// ```
    pub fn is_none(&self) -> bool {
        match *self {
            Jitter::None => true,
            Jitter::Fraction(f) => f.is_nan() || f <= 0.0,
            Jitter::Up(d) => d.is_zero(),
        }
    }
}

impl From<f64> for Jitter {
    /// `Jitter::Fraction(f)`.
    fn from(f: f64) -> Self {
        Jitter::Fraction(f)
    }
}

impl From<Duration> for Jitter {
    /// `Jitter::Up(d)`.
    fn from(d: Duration) -> Self {
        Jitter::Up(d)
    }
}

/// The deadline of an entry written at `now` with time-to-live `ttl`: `now +
/// ttl`, with `ttl` first spread by `jitter` (see [`Jitter`]).
///
/// * A zero `ttl` gives `now` (expired at once; no jitter).
/// * A `ttl` of more than `u64::MAX` ns, such as [`Duration::MAX`], gives
///   [`NEVER`], and so does any deadline that overflows the timeline.
/// * Uses `rng` only when the jitter is not [`Jitter::is_none`].
#[inline]
pub(crate) fn deadline(now: u64, ttl: Duration, jitter: Jitter, rng: &mut Rng) -> u64 {
    if ttl.is_zero() {
        return now;
    }
    let Some(ttl) = ttl_nanos(ttl) else {
        return NEVER;
    };
    let live = if jitter.is_none() {
        ttl
    } else {
        match jitter {
            Jitter::Fraction(f) => {
                // Saturating float-to-int cast; f <= 1 keeps spread near ttl.
                let spread = (ttl as f64 * f.min(1.0)) as u64;
                let lo = ttl.saturating_sub(spread);
                let hi = ttl.saturating_add(spread);
                lo + rng.below_inclusive(hi - lo)
            }
            Jitter::Up(d) => {
                let hi = ttl.saturating_add(duration_to_nanos(d));
                ttl + rng.below_inclusive(hi - ttl)
            }
            Jitter::None => ttl,
        }
    };
    now.saturating_add(live)
}

/// `ttl` in nanoseconds, or `None` if that does not fit a `u64`. In u64
/// arithmetic: `Duration::as_nanos` is a u128 multiply, on every write.
#[inline]
pub(crate) fn ttl_nanos(ttl: Duration) -> Option<u64> {
    ttl.as_secs()
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(u64::from(ttl.subsec_nanos())))
}

/// The time-to-idle deadline of an entry read at `now`: `now + tti`, with the
/// same saturation rules as [`deadline`] and no jitter.
#[inline]
pub(crate) fn idle_deadline(now: u64, tti: Duration) -> u64 {
    match u64::try_from(tti.as_nanos()) {
        Ok(tti) => now.saturating_add(tti),
        Err(_) => NEVER,
    }
}

/// Golden-ratio increment of SplitMix64: 2^64 / phi, odd.
const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A small, fast, seedable pseudo-random generator (SplitMix64). Not for
/// anything security related; one per shard, used under its lock.
#[derive(Clone, Debug)]
pub(crate) struct Rng {
    state: u64,
}

impl Rng {
    /// A generator seeded with `seed`; equal seeds give equal sequences.
    pub(crate) fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform draw from `0..=max`.
    #[inline]
    pub(crate) fn below_inclusive(&mut self, max: u64) -> u64 {
        let Some(range) = max.checked_add(1) else {
            return self.next_u64();
        };
        // Lemire: the high word of x * range is uniform once the few low
        // words that would bias it (fewer than `range` of 2^64) are rejected.
        let mut m = u128::from(self.next_u64()) * u128::from(range);
        if (m as u64) < range {
            let threshold = range.wrapping_neg() % range;
            while (m as u64) < threshold {
                m = u128::from(self.next_u64()) * u128::from(range);
            }
        }
        (m >> 64) as u64
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    /// Draws `n` deadlines and returns them as offsets from `now`.
    fn draws(n: usize, ttl: Duration, jitter: Jitter, seed: u64) -> Vec<u64> {
        let mut rng = Rng::new(seed);
        let now = 1_000 * SEC;
        (0..n)
            .map(|_| deadline(now, ttl, jitter, &mut rng) - now)
            .collect()
    }

    /// Histogram of `xs` over `[lo, hi]` in `k` equal bins; panics if any
    /// value is outside.
    fn histogram(xs: &[u64], lo: u64, hi: u64, k: usize) -> Vec<usize> {
        let mut bins = vec![0; k];
        for &x in xs {
            assert!((lo..=hi).contains(&x), "{x} outside [{lo}, {hi}]");
            let b = ((x - lo) as u128 * k as u128 / (hi - lo + 1) as u128) as usize;
            bins[b] += 1;
        }
        bins
    }

    #[test]
    fn zero_ttl_is_now_and_huge_ttl_is_never() {
        let mut rng = Rng::new(1);
        for j in [
            Jitter::None,
            Jitter::Fraction(0.5),
            Jitter::Up(Duration::from_secs(9)),
        ] {
            assert_eq!(deadline(77, Duration::ZERO, j, &mut rng), 77);
            assert_eq!(deadline(77, Duration::MAX, j, &mut rng), NEVER);
            assert_eq!(
                deadline(
                    77,
                    Duration::from_secs(u64::MAX / 1_000_000_000 + 1),
                    j,
                    &mut rng
                ),
                NEVER
            );
        }
        assert_eq!(idle_deadline(5, Duration::ZERO), 5);
        assert_eq!(idle_deadline(5, Duration::MAX), NEVER);
        assert_eq!(idle_deadline(5, Duration::from_secs(2)), 5 + 2 * SEC);
    }

    #[test]
    fn overflowing_deadline_is_never() {
        let mut rng = Rng::new(1);
        let now = u64::MAX - 10;
        assert_eq!(
            deadline(now, Duration::from_nanos(5), Jitter::None, &mut rng),
            now + 5
        );
        assert_eq!(
            deadline(now, Duration::from_nanos(10), Jitter::None, &mut rng),
            NEVER
        );
        assert_eq!(
            deadline(now, Duration::from_secs(1), Jitter::None, &mut rng),
            NEVER
        );
        assert_eq!(idle_deadline(now, Duration::from_secs(1)), NEVER);
    }

    #[test]
    fn no_jitter_is_exact_and_leaves_the_rng_alone() {
        let mut rng = Rng::new(3);
        let ttl = Duration::from_millis(1500);
        for j in [
            Jitter::None,
            Jitter::Fraction(0.0),
            Jitter::Fraction(-1.0),
            Jitter::Fraction(f64::NAN),
            Jitter::Up(Duration::ZERO),
        ] {
            assert!(j.is_none());
            assert_eq!(deadline(10, ttl, j, &mut rng), 10 + 1_500_000_000);
        }
        assert_eq!(rng.next_u64(), Rng::new(3).next_u64());
    }

    #[test]
    fn fraction_is_uniform_over_the_range() {
        // The issue's avalanche test, on the helper: 10,000 deadlines with
        // TTL T and 10% jitter land in [0.9T, 1.1T], no bin over twice its
        // share. With 100,000 draws, also check each of 20 bins is within
        // 10% of its share and the mean is T.
        let t = 300 * SEC;
        let (lo, hi) = (270 * SEC, 330 * SEC);
        let xs = draws(10_000, Duration::from_secs(300), 0.1.into(), 42);
        for &c in &histogram(&xs, lo, hi, 20) {
            assert!(c <= 2 * 10_000 / 20, "{c}");
        }
        let xs = draws(100_000, Duration::from_secs(300), Jitter::Fraction(0.1), 7);
        for &c in &histogram(&xs, lo, hi, 20) {
            assert!((4_500..=5_500).contains(&c), "{c}");
        }
        let mean = xs.iter().map(|&x| x as f64).sum::<f64>() / xs.len() as f64;
        assert!((mean - t as f64).abs() < 0.002 * t as f64, "{mean}");
        // Both ends are reachable for a small range.
        let xs = draws(1_000, Duration::from_nanos(10), Jitter::Fraction(0.2), 9);
        assert_eq!((xs.iter().min(), xs.iter().max()), (Some(&8), Some(&12)));
    }

    #[test]
    fn fraction_is_clamped_to_one() {
        for f in [1.0, 2.5, f64::INFINITY] {
            let xs = draws(20_000, Duration::from_secs(10), Jitter::Fraction(f), 5);
            let bins = histogram(&xs, 0, 20 * SEC, 10);
            assert!(
                bins.iter().all(|&c| (1_600..=2_400).contains(&c)),
                "{bins:?}"
            );
        }
    }

    #[test]
    fn up_is_uniform_over_ttl_to_ttl_plus_d() {
        let xs = draws(
            50_000,
            Duration::from_secs(60),
            Duration::from_secs(30).into(),
            11,
        );
        let bins = histogram(&xs, 60 * SEC, 90 * SEC, 10);
        assert!(
            bins.iter().all(|&c| (4_500..=5_500).contains(&c)),
            "{bins:?}"
        );
        // A huge spread saturates instead of overflowing.
        let mut rng = Rng::new(1);
        let d = deadline(
            0,
            Duration::from_secs(1),
            Jitter::Up(Duration::MAX),
            &mut rng,
        );
        assert!(d >= SEC);
    }

    #[test]
    fn rng_is_deterministic_and_seed_dependent() {
        let a: Vec<u64> = {
            let mut r = Rng::new(99);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let b: Vec<u64> = {
            let mut r = Rng::new(99);
            (0..8).map(|_| r.next_u64()).collect()
        };
        let c: Vec<u64> = {
            let mut r = Rng::new(100);
            (0..8).map(|_| r.next_u64()).collect()
        };
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Seed zero is fine too: no stuck state.
        let mut r = Rng::new(0);
        assert_ne!(r.next_u64(), r.next_u64());
    }

    #[test]
    fn rng_bits_are_balanced() {
        let mut r = Rng::new(2024);
        let mut ones = [0u32; 64];
        for _ in 0..20_000 {
            let x = r.next_u64();
            for (b, n) in ones.iter_mut().enumerate() {
                *n += (x >> b & 1) as u32;
            }
        }
        assert!(
            ones.iter().all(|&n| (9_500..=10_500).contains(&n)),
            "{ones:?}"
        );
    }

    #[test]
    fn below_inclusive_bounds() {
        let mut r = Rng::new(8);
        for _ in 0..1000 {
            assert_eq!(r.below_inclusive(0), 0);
            assert!(r.below_inclusive(1) <= 1);
            assert!(r.below_inclusive(6) <= 6);
        }
        let _ = r.below_inclusive(u64::MAX);
        // Uniform over a range that does not divide 2^64.
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[r.below_inclusive(2) as usize] += 1;
        }
        assert!(
            counts.iter().all(|&c| (9_500..=10_500).contains(&c)),
            "{counts:?}"
        );
    }
}
