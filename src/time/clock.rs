//! Clocks: where the cache gets "now" from.
//!
//! Time inside larder is a `u64` count of nanoseconds since the clock's own
//! origin (about 584 years of range). A `u64` is cheaper to store, compare and
//! share through an atomic than [`std::time::Instant`], and lets the timer
//! wheel work with shifts instead of divisions. `u64::MAX` is reserved to mean
//! "never" by the rest of the time layer, so clocks saturate just below it.
//!
//! * [`Clock`] is the trait the cache reads time through.
//! * [`MonotonicClock`] is the default. On 64-bit Linux it reads
//!   `CLOCK_MONOTONIC_COARSE` (the kernel's last tick: resolution 1 to 4 ms
//!   depending on `CONFIG_HZ`, 4 ms on our machines) because it costs about
//!   8 ns where [`Instant::now`] costs about 53 ns on the same machines
//!   (measured with a 10-million-call loop): a `get` that must check a
//!   deadline reads the clock every time, and the precise clock made a TTL
//!   cache's hit about 1.8x slower than one without TTL. Expiry is therefore
//!   exact to the clock's resolution: the clock reads the time of its last
//!   tick, at the write as at the read, so in real time an entry lives its
//!   TTL give or take one tick (about 4 ms). Elsewhere, or if the coarse clock is
//!   unavailable, it falls back to [`Instant`]. [`PreciseClock`] is the
//!   `Instant`-based clock for callers who need sub-millisecond expiry.
//! * [`TickingClock`] is read with one atomic load: a shared background
//!   thread stores the time every 4 ms. Opt-in, for caches with
//!   expiry that are read so often that the kernel clock's cost shows.
//! * [`ManualClock`] is moved by hand, for tests and simulations.
//! * [`TimeFloor`] is the per-shard guard that keeps the cache's idea of time
//!   from moving backwards when a clock does (see "Clocks that go backwards"
//!   on [`Clock`]).

use std::fmt;
use std::time::{Duration, Instant};

use crossbeam_utils::CachePadded;

use crate::sync::{Arc, AtomicU64, Ordering};

/// The latest instant a clock reports: one below `u64::MAX`, which the time
/// layer reserves for "never".
pub(crate) const END_OF_TIME: u64 = u64::MAX - 1;

/// Converts a duration to nanoseconds, saturating at [`END_OF_TIME`].
#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).map_or(END_OF_TIME, |n| n.min(END_OF_TIME))
}

/// A source of time for the cache.
///
/// Time is a `u64` count of nanoseconds since an origin chosen by the clock
/// (its creation, typically). Only differences matter: the cache computes
/// deadlines as `now + ttl` on this timeline and compares them with later
/// readings.
///
/// # Clocks that go backwards
///
/// Implementations should never decrease, but the cache does not rely on it.
/// Each shard remembers the latest time it has acted on (inserted with,
/// ran maintenance at) and uses `max(that, now_nanos())` as the current time,
/// so for the cache time never goes backwards: an entry that expired stays
/// expired and is never handed out again, deadlines are never computed from
/// the past, and nothing panics. A clock that jumps back simply makes the
/// cache's time stand still until the clock catches up again. (Between two
/// writes a reader only sees the shard's last recorded time, so a reading
/// that was never acted upon is not remembered.)
///
/// # Examples
///
/// A clock that counts calls, one second each:
///
/// ```
/// use larder::Clock;
/// use std::sync::atomic::{AtomicU64, Ordering};
///
/// struct Ticker(AtomicU64);
///
/// impl Clock for Ticker {
///     fn now_nanos(&self) -> u64 {
///         self.0.fetch_add(1_000_000_000, Ordering::Relaxed)
///     }
/// }
///
/// let t = Ticker(AtomicU64::new(0));
/// assert_eq!(t.now_nanos(), 0);
/// assert_eq!(t.now_nanos(), 1_000_000_000);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time in nanoseconds since this clock's origin.
    ///
    /// Should be monotonic (never decrease); see "Clocks that go backwards"
    /// above for what happens when it is not. Values of `u64::MAX` are read
    /// as `u64::MAX - 1`.
    fn now_nanos(&self) -> u64;
}

impl<C: Clock + ?Sized> Clock for std::sync::Arc<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
}

impl<C: Clock + ?Sized> Clock for Box<C> {
    #[inline]
    fn now_nanos(&self) -> u64 {
        (**self).now_nanos()
    }
}

/// The default clock: nanoseconds since it was created, from the kernel's
/// coarse monotonic clock where available (see the module docs for the
/// resolution and why), else from [`Instant`]. Never goes backwards.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MonotonicClock {
    /// The coarse reading at creation, if the coarse clock works here.
    coarse_origin: Option<u64>,
    precise: PreciseClock,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub(crate) fn new() -> Self {
        Self {
            coarse_origin: coarse::now(),
            precise: PreciseClock::new(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        match self.coarse_origin {
            Some(origin) => match coarse::now() {
                Some(now) => now.saturating_sub(origin).min(END_OF_TIME),
                None => self.precise.now_nanos(),
            },
            None => self.precise.now_nanos(),
        }
    }
}

/// The clock a cache holds: the two clocks larder ships for production
/// are called directly (no virtual call on the read path), any other
/// through its trait object.
pub(crate) enum CacheClock {
    Default(MonotonicClock),
    Ticking(TickingClock),
    Custom(Box<dyn Clock>),
}

impl CacheClock {
    /// Wraps a user's clock, recognising a [`TickingClock`].
    pub(crate) fn from_user(clock: impl Clock) -> Self {
        let any: &dyn std::any::Any = &clock;
        match any.downcast_ref::<TickingClock>() {
            Some(ticking) => CacheClock::Ticking(ticking.clone()),
            None => CacheClock::Custom(Box::new(clock)),
        }
    }

    /// The current time on this clock. Always inlined: every operation on
    /// a cache with expiry calls it, and the two shipped clocks are a few
    /// instructions (left out of line, it was 1.5% of an update's time).
    #[inline(always)]
    pub(crate) fn now(&self) -> u64 {
        match self {
            CacheClock::Default(clock) => clock.now_nanos(),
            CacheClock::Ticking(clock) => clock.now_nanos(),
            CacheClock::Custom(clock) => clock.now_nanos(),
        }
    }
}

impl Default for CacheClock {
    fn default() -> Self {
        CacheClock::Default(MonotonicClock::new())
    }
}

/// A clock read from [`std::time::Instant`]: nanosecond resolution, about
/// 50 ns a reading on our machines (the default clock reads a coarse kernel
/// clock instead, about 8 ns, exact to a few milliseconds).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use larder::{Cache, PreciseClock};
///
/// let cache: Cache<u32, u32> = Cache::builder()
///     .time_to_live(Duration::from_millis(1))
///     .clock(PreciseClock::new())
///     .build();
/// cache.insert(1, 1);
/// std::thread::sleep(Duration::from_millis(2));
/// assert_eq!(cache.get(&1), None);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct PreciseClock {
    origin: Instant,
}

impl PreciseClock {
    /// A clock whose origin is now.
    pub fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }
}

impl Default for PreciseClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for PreciseClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        duration_to_nanos(self.origin.elapsed())
    }
}

/// How often the [`TickingClock`]'s thread stores the time.
/// 4 ms: the resolution of the default clock on our machines, at about a
/// quarter of the CPU a 1 ms tick costs (see [`TickingClock`]).
pub(crate) const TICK: Duration = Duration::from_millis(4);

/// The time the ticker thread last stored: nanoseconds since [`tick_origin`].
/// One padded line of its own, written once per [`TICK`] and read by every
/// cache operation that uses a [`TickingClock`].
static TICKED: CachePadded<std::sync::atomic::AtomicU64> =
    CachePadded::new(std::sync::atomic::AtomicU64::new(0));

/// The ticker shared by every live [`TickingClock`] in the process; the
/// thread runs while some clock holds it.
static TICKER: std::sync::Mutex<std::sync::Weak<Ticker>> =
    std::sync::Mutex::new(std::sync::Weak::new());

/// The origin of every [`TickingClock`]'s time (fixed for the process, so
/// a ticker that stops and a later one that starts share one timeline).
fn tick_origin() -> Instant {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since [`tick_origin`], read from [`Instant`].
fn tick_source() -> u64 {
    duration_to_nanos(tick_origin().elapsed())
}

/// Stores a fresh reading in [`TICKED`] (never moving it backwards).
fn tick() {
    TICKED.fetch_max(tick_source(), std::sync::atomic::Ordering::Relaxed);
}

/// Ticker threads running (tests check that they stop).
#[cfg(test)]
static TICKER_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// What a [`TickingClock`] holds to keep the ticker thread alive.
#[derive(Debug)]
struct Ticker;

/// A clock whose reading is a single atomic load: a background thread
/// stores the time every 4 ms and every read returns the last value
/// stored. Opt in with [`CacheBuilder::clock`](crate::CacheBuilder::clock)
/// when a cache with expiry is read so often that reading the OS clock
/// shows up in its profile.
///
/// # Why
///
/// A cache that keeps deadlines reads the clock on every `get`. The default
/// clock asks the kernel (`CLOCK_MONOTONIC_COARSE` through the vDSO): about
/// 8 ns in a tight loop, but about 18 ns in the middle of a large cache's
/// random memory traffic on our machines, which made a TTL cache of a
/// million entries up to 26% slower than the same cache without TTL
/// (`cargo bench --bench expiry`, side-by-side table). This clock's read is
/// a load of one cache line that every reader shares and only the ticker
/// writes, so it stays cached: in the same runs a TTL cost 2-15% on it.
///
/// # What it costs and guarantees
///
/// * **One thread per process**, named `larder-clock`, shared by every
///   `TickingClock` (and every cache using one). It is started by the first
///   [`new`](Self::new), wakes every 4 ms to store [`Instant`]-based time,
///   and exits within one tick once the last `TickingClock` (clones
///   included) is dropped; a later `new` starts it again on the same
///   timeline. No other work runs on it: expiry maintenance stays amortised
///   over cache operations. Its CPU cost is one wake-up per tick: about
///   0.8% of a core in our virtual machines, where a wake-up costs about
///   30 us (a 1 ms tick cost 3.1%), far less on bare metal.
/// * **Resolution and lag**: time moves in steps of 4 ms, the resolution
///   of the default clock. A reading is behind the real time by its lag: at
///   most one step plus however long the operating system keeps the thread
///   from running. In real time an entry lives its TTL plus the lag at the
///   read that finds it expired minus the lag at the write: its TTL give
///   or take a tick, as with the default clock. On a machine so overloaded
///   that the thread is not scheduled for a while, the cache's time stands
///   still meanwhile and entries outlive their TTL by that long.
/// * **Not across `fork`**: a child process inherits the clocks but not the
///   thread, so its `TickingClock`s stand still. Build caches that use one
///   after forking.
/// * **Never backwards**: readings from all clones only grow.
/// * If the thread cannot be started (the OS refuses to spawn it),
///   [`new`](Self::new) still succeeds and the clock reads [`Instant`] on
///   every call instead: slower, never wrong.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use larder::{Cache, TickingClock};
///
/// // A hot cache with expiry: every `get` reads the clock.
/// let cache: Cache<u32, u32> = Cache::builder()
///     .max_capacity(1_000)
///     .time_to_live(Duration::from_secs(300))
///     .clock(TickingClock::new())
///     .build();
/// cache.insert(1, 1);
/// assert_eq!(cache.get(&1), Some(1));
/// ```
#[derive(Clone, Debug)]
pub struct TickingClock {
    /// Keeps the shared ticker thread running; `None` if it could not be
    /// started (then every reading comes from [`Instant`]).
    ticker: Option<std::sync::Arc<Ticker>>,
}

impl TickingClock {
    /// A handle on the process's ticking clock, starting its thread if no
    /// other handle is alive.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::{Clock, TickingClock};
    /// use std::time::Duration;
    ///
    /// let a = TickingClock::new();
    /// let b = TickingClock::new(); // the same thread and timeline
    /// let t = a.now_nanos();
    /// std::thread::sleep(Duration::from_millis(20));
    /// assert!(b.now_nanos() >= t); // about 20 ms later, unless the ticker was kept waiting
    /// ```
    pub fn new() -> Self {
        // A poisoned lock only means another `new` panicked while holding
        // it; the `Weak` inside is still valid.
        let mut slot = TICKER
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ticker) = slot.upgrade() {
            return Self {
                ticker: Some(ticker),
            };
        }
        // No thread is running (or the last one is on its way out, holding
        // a `Weak` to a dead ticker): start one for a fresh ticker.
        tick();
        let ticker = std::sync::Arc::new(Ticker);
        let weak = std::sync::Arc::downgrade(&ticker);
        let spawned = std::thread::Builder::new()
            .name("larder-clock".into())
            .spawn(move || {
                #[cfg(test)]
                TICKER_THREADS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                loop {
                    std::thread::sleep(TICK);
                    if weak.strong_count() == 0 {
                        break;
                    }
                    tick();
                }
                #[cfg(test)]
                TICKER_THREADS.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
            });
        match spawned {
            Ok(_) => {
                *slot = std::sync::Arc::downgrade(&ticker);
                Self {
                    ticker: Some(ticker),
                }
            }
            Err(_) => Self { ticker: None },
        }
    }
}

impl Default for TickingClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TickingClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        if self.ticker.is_some() {
            TICKED.load(std::sync::atomic::Ordering::Relaxed)
        } else {
            tick_source()
        }
    }
}

/// The kernel's coarse monotonic clock, on 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64", not(loom)))]
mod coarse {
    /// `struct timespec` on 64-bit Linux: two 64-bit fields.
    #[repr(C)]
    struct Timespec {
        sec: i64,
        nsec: i64,
    }

    extern "C" {
        fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
    }

    /// `CLOCK_MONOTONIC_COARSE` in Linux's `<time.h>`.
    const CLOCK_MONOTONIC_COARSE: i32 = 6;

    /// Nanoseconds on the coarse monotonic clock, or `None` if the call fails.
    #[inline]
    pub(super) fn now() -> Option<u64> {
        let mut ts = Timespec { sec: 0, nsec: 0 };
        // SAFETY: `clock_gettime` is the C library's (always linked by std on
        // Linux); `ts` is a live, writable `timespec` with the 64-bit Linux
        // layout, and the call writes only into it.
        let rc = unsafe { clock_gettime(CLOCK_MONOTONIC_COARSE, &mut ts) };
        if rc != 0 || ts.sec < 0 || ts.nsec < 0 {
            return None;
        }
        Some(
            (ts.sec as u64)
                .saturating_mul(1_000_000_000)
                .saturating_add(ts.nsec as u64),
        )
    }
}

/// No coarse clock here: the default clock uses [`Instant`].
#[cfg(not(all(target_os = "linux", target_pointer_width = "64", not(loom))))]
mod coarse {
    #[inline]
    pub(super) fn now() -> Option<u64> {
        None
    }
}

/// A clock that only moves when told to, for tests and simulations.
///
/// Clones share one time: keep a clone, hand another to the cache, and
/// [`advance`](Self::advance) it to make entries expire without sleeping.
/// A new clock reads zero. All methods are lock-free and safe to call from
/// any thread.
///
/// # Moving it backwards
///
/// [`set`](Self::set) may move the clock back; [`now`](Self::now) then reports
/// the earlier time. The cache, however, treats its time as
/// `max(latest time it has seen, clock)`: entries that expired stay expired,
/// and time stands still for the cache until the clock passes the latest
/// time it had seen. Nothing panics.
///
/// # Examples
///
/// ```
/// use larder::ManualClock;
/// use std::time::Duration;
///
/// let clock = ManualClock::new();
/// let handle = clock.clone(); // e.g. given to a cache
/// assert_eq!(clock.now(), Duration::ZERO);
///
/// clock.advance(Duration::from_secs(6));
/// assert_eq!(handle.now(), Duration::from_secs(6));
///
/// clock.set(Duration::from_millis(1500));
/// assert_eq!(handle.now(), Duration::from_millis(1500));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at time zero.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::ManualClock;
    /// assert_eq!(ManualClock::new().now(), std::time::Duration::ZERO);
    /// ```
    pub fn new() -> Self {
        Self {
            nanos: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Moves the clock forward by `by` (saturating at about 584 years).
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// clock.advance(Duration::from_secs(3600));
    /// clock.advance(Duration::from_millis(1));
    /// assert_eq!(clock.now(), Duration::from_millis(3_600_001));
    /// ```
    pub fn advance(&self, by: Duration) {
        let by = duration_to_nanos(by);
        let mut cur = self.nanos.load(Ordering::Acquire);
        loop {
            let new = cur.saturating_add(by).min(END_OF_TIME);
            match self
                .nanos
                .compare_exchange_weak(cur, new, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Sets the time since the clock's origin. May move the clock backwards;
    /// see "Moving it backwards" above for how the cache takes that.
    ///
    /// # Examples
    ///
    /// ```
    /// use larder::ManualClock;
    /// use std::time::Duration;
    ///
    /// let clock = ManualClock::new();
    /// clock.set(Duration::from_secs(10));
    /// assert_eq!(clock.now(), Duration::from_secs(10));
    /// ```
    pub fn set(&self, since_origin: Duration) {
        self.nanos
            .store(duration_to_nanos(since_origin), Ordering::Release);
    }

    /// The time since the clock's origin.
    pub fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

impl Clock for ManualClock {
    #[inline]
    fn now_nanos(&self) -> u64 {
        self.nanos.load(Ordering::Acquire)
    }
}

/// The latest time a shard has acted on: the floor under its idea of "now".
///
/// Writers and maintenance, which hold the shard's write lock, call
/// [`observe`](Self::observe) with a fresh clock reading and use its result;
/// readers, under the read lock, call [`clamp`](Self::clamp), which only
/// loads (no shared-cache-line write on the read path). Together they make
/// the shard's time `max(recorded, clock)`, so a clock that goes backwards
/// never un-expires an entry that maintenance has judged, nor computes a
/// deadline in the past. Keep one per shard (next to its lock), not one per
/// cache, so writers on different shards do not contend on it.
#[derive(Debug, Default)]
pub(crate) struct TimeFloor {
    nanos: AtomicU64,
}

impl TimeFloor {
    /// A floor at `nanos`.
    pub(crate) fn new(nanos: u64) -> Self {
        Self {
            nanos: AtomicU64::new(nanos),
        }
    }

    /// Records `now` and returns `max(recorded, now)`: the time to act on.
    #[inline]
    pub(crate) fn observe(&self, now: u64) -> u64 {
        let floor = self.nanos.load(Ordering::Relaxed);
        if now <= floor {
            return floor;
        }
        self.nanos.fetch_max(now, Ordering::Relaxed).max(now)
    }

    /// `max(recorded, now)` without recording anything.
    #[inline]
    pub(crate) fn clamp(&self, now: u64) -> u64 {
        now.max(self.nanos.load(Ordering::Relaxed))
    }

    /// The latest time recorded.
    #[cfg(test)]
    pub(crate) fn get(&self) -> u64 {
        self.nanos.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn monotonic_clock_moves_forward() {
        // The coarse clock ticks every few milliseconds: sleep well past one.
        let c = MonotonicClock::new();
        let a = c.now_nanos();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now_nanos();
        assert!(b >= a + 10_000_000, "{a} -> {b}");
        let p = PreciseClock::new();
        let a = p.now_nanos();
        std::thread::sleep(Duration::from_millis(2));
        assert!(p.now_nanos() >= a + 2_000_000);
    }

    /// The only unit test that makes `TickingClock`s (it counts the
    /// process's ticker threads).
    #[test]
    fn ticking_clock_runs_one_thread_while_held() {
        use std::sync::atomic::Ordering::SeqCst;
        let wait_threads = |n: usize| {
            // Generous: the thread notices within one tick, but shared CI
            // machines can delay it.
            for _ in 0..5_000 {
                if TICKER_THREADS.load(SeqCst) == n {
                    return;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("ticker threads: {} (want {n})", TICKER_THREADS.load(SeqCst));
        };
        // Time moves by `by` on `clock` (polled: a busy machine may keep
        // the ticker waiting, but not for 5 s).
        let wait_advance = |clock: &TickingClock, by: u64| {
            let from = clock.now_nanos();
            for _ in 0..5_000 {
                if clock.now_nanos() >= from + by {
                    return clock.now_nanos();
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            panic!("the ticking clock did not move {by} ns from {from}");
        };
        let a = TickingClock::new();
        let b = TickingClock::new();
        let c = b.clone();
        wait_threads(1);
        let t0 = a.now_nanos();
        let t1 = wait_advance(&c, 20_000_000);
        assert!(t1 >= t0 + 20_000_000, "{t0} -> {t1}");
        assert!(b.now_nanos() >= t1, "clones share one timeline");
        drop((a, b));
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(TICKER_THREADS.load(SeqCst), 1, "a clone still holds it");
        drop(c);
        wait_threads(0);
        // A new clock starts a new thread on the same, unbroken timeline.
        let d = TickingClock::new();
        assert!(d.now_nanos() >= t1);
        wait_threads(1);
        let t2 = wait_advance(&d, 20_000_000);
        drop(d);
        wait_threads(0);
        // Without a thread (spawning failed), readings come from `Instant`.
        let fallback = TickingClock { ticker: None };
        let t3 = fallback.now_nanos();
        assert!(t3 >= t2);
        std::thread::sleep(Duration::from_millis(2));
        assert!(fallback.now_nanos() >= t3 + 2_000_000);
        assert_eq!(TICKER_THREADS.load(SeqCst), 0);
    }

    #[test]
    fn cache_clock_recognises_a_ticking_clock() {
        assert!(matches!(
            CacheClock::from_user(ManualClock::new()),
            CacheClock::Custom(_)
        ));
        assert!(matches!(CacheClock::default(), CacheClock::Default(_)));
        // Built without a thread so the ticking test's count is undisturbed.
        let ticking = TickingClock { ticker: None };
        assert!(matches!(
            CacheClock::from_user(ticking),
            CacheClock::Ticking(_)
        ));
    }

    #[test]
    fn manual_clock_shares_time_between_clones() {
        let c = ManualClock::new();
        let d = c.clone();
        c.advance(Duration::from_nanos(5));
        assert_eq!(d.now_nanos(), 5);
        d.set(Duration::from_secs(1));
        assert_eq!(c.now(), Duration::from_secs(1));
        assert_eq!(format!("{c:?}"), "ManualClock { now: 1s }");
    }

    #[test]
    fn manual_clock_saturates_below_never() {
        let c = ManualClock::new();
        c.advance(Duration::MAX);
        assert_eq!(c.now_nanos(), END_OF_TIME);
        c.advance(Duration::from_secs(1));
        assert_eq!(c.now_nanos(), END_OF_TIME);
        c.set(Duration::MAX);
        assert_eq!(c.now_nanos(), END_OF_TIME);
    }

    #[test]
    fn manual_clock_advances_from_many_threads() {
        let c = ManualClock::new();
        std::thread::scope(|s| {
            for _ in 0..2 {
                let c = c.clone();
                s.spawn(move || {
                    for _ in 0..1000 {
                        c.advance(Duration::from_nanos(1));
                    }
                });
            }
        });
        assert_eq!(c.now_nanos(), 2000);
    }

    #[test]
    fn clock_through_arc_and_box() {
        let c = ManualClock::new();
        c.set(Duration::from_nanos(42));
        let a: std::sync::Arc<dyn Clock> = std::sync::Arc::new(c.clone());
        let b: Box<dyn Clock> = Box::new(c);
        assert_eq!(a.now_nanos(), 42);
        assert_eq!(b.now_nanos(), 42);
    }

    #[test]
    fn time_floor_never_goes_backwards() {
        let clock = ManualClock::new();
        let floor = TimeFloor::new(0);
        clock.set(Duration::from_secs(10));
        assert_eq!(floor.observe(clock.now_nanos()), 10_000_000_000);
        clock.set(Duration::from_secs(3)); // backwards
        assert_eq!(floor.clamp(clock.now_nanos()), 10_000_000_000);
        assert_eq!(floor.observe(clock.now_nanos()), 10_000_000_000);
        assert_eq!(floor.get(), 10_000_000_000);
        clock.set(Duration::from_secs(11));
        assert_eq!(floor.clamp(clock.now_nanos()), 11_000_000_000);
        assert_eq!(floor.get(), 10_000_000_000, "clamp does not record");
        assert_eq!(floor.observe(clock.now_nanos()), 11_000_000_000);
        assert_eq!(floor.get(), 11_000_000_000);
    }
}

#[cfg(all(test, loom))]
mod loom_tests {
    use super::*;

    #[test]
    fn concurrent_advances_are_not_lost() {
        loom::model(|| {
            let c = ManualClock::new();
            let c2 = c.clone();
            let t = loom::thread::spawn(move || c2.advance(Duration::from_nanos(3)));
            c.advance(Duration::from_nanos(4));
            t.join().unwrap();
            assert_eq!(c.now_nanos(), 7);
        });
    }

    #[test]
    fn time_floor_keeps_the_maximum() {
        loom::model(|| {
            let f = Arc::new(TimeFloor::new(1));
            let f2 = f.clone();
            let t = loom::thread::spawn(move || f2.observe(5));
            let mine = f.observe(3);
            let theirs = t.join().unwrap();
            assert!(mine >= 3 && theirs == 5);
            assert_eq!(f.get(), 5);
            assert_eq!(f.clamp(4), 5);
        });
    }
}
