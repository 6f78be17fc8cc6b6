//! The time layer: clocks, deadlines and the timer wheel.
//!
//! Everything here works on one timeline: `u64` nanoseconds since the
//! clock's origin, with [`NEVER`] (`u64::MAX`) meaning "does not expire".
//!
//! * [`clock`]: the [`Clock`] trait, the default monotonic clock,
//!   [`TickingClock`] (an atomic load per reading), [`ManualClock`] for tests, and the per-shard floor that keeps the
//!   cache's time from going backwards.
//! * [`expiry`]: a time-to-live plus [`Jitter`] -> a deadline, and the seeded
//!   generator jitter draws from.
//! * [`refresh`]: refresh points (refresh-ahead, stale-while-revalidate)
//!   and the claim a reader makes on a due one.
//! * [`wheel`]: the hierarchical timer wheel that finds expired entries
//!   without scanning, with a work budget per call.
//!
//! # How the shard is meant to use it
//!
//! * Expiry is not a policy: the shard owns a `TimerWheel` (only when some
//!   expiry is configured, so caches without one pay nothing) indexed by the
//!   slab's `Idx`, next to its table and policy, under the same lock.
//! * Write path (write lock): `now = floor.observe(clock.now_nanos())`;
//!   compute the deadline with [`expiry::deadline`] (TTL, jitter, the
//!   per-entry duration) and the TTI deadline with `expiry::idle_deadline`,
//!   keep the earliest, and `reschedule` it (or `postpone` it, when the new
//!   deadline is later: the node stays where it is; in a shard where every
//!   deadline is write time + one span, a rewrite is known to be later and
//!   `postpone_unchecked` stores it without reading the node); `deschedule`
//!   on removal.
//! * Read path (read lock): `now = floor.clamp(clock.now_nanos())`; an
//!   entry is expired iff its deadline is `<= now`. The deadline is split
//!   (see [`wheel`]): the high 32 bits in a side array of the shard's
//!   timers, the low 32 in the wheel node, so a deadline more than 4.3 s
//!   away is seen from the side array alone. Time to idle keeps a separate idle deadline per entry that
//!   readers push later; the wheel holds the earlier written deadline and,
//!   when that comes, places the entry again for the idle one.
//! * Maintenance (write lock): `wheel.advance(now, budget, &mut due)`
//!   removes each fired entry with `RemovalCause::Expired`; when the result is
//!   `pending`, more is left for the next maintenance. Every write calls it;
//!   until the wheel's level-0 tick (1.07 s) turns it is one compare
//!   (`is_quiet`).

// The shard integrates this layer separately; until it does, parts of the
// crate-private API are only exercised by the unit tests here (which loom
// builds leave out).

pub(crate) mod clock;
pub(crate) mod expiry;
pub(crate) mod refresh;
pub(crate) mod wheel;

pub use clock::{Clock, ManualClock, PreciseClock, TickingClock};
pub use expiry::Jitter;

/// The deadline that never comes: an entry with it does not expire.
pub(crate) const NEVER: u64 = u64::MAX;
