//! One shard: a hash table, a slab of entries and an eviction policy under
//! one lock, plus what readers write under the read lock.
//!
//! # Design
//!
//! The [`Cache`](crate::Cache) hashes a key once, picks a shard from the
//! hash and calls into that shard. A shard is the single-threaded core of
//! larder ([`Core`]) behind a `RwLock`, and two things outside the lock:
//!
//! * **Storage.** `table` is a `hashbrown::HashTable<u32>` of slab indices;
//!   `slots` is a [`Slab`] of entries (key and value, nothing else) with a
//!   free list. Weights live apart in [`Weights`], which costs nothing
//!   while every entry weighs 1, and deadlines in the timers, which exist
//!   only once some entry has one. An entry's hash is not stored: where
//!   the table (growing), the policy (its frequency sketch) or a removal
//!   needs it, it is computed again from the key with the cache's hasher
//!   (see [`Core::key_hash`]). An index
//!   ([`Idx`]) names an entry for its whole life; the policy and the timer
//!   wheel key their metadata by it, so they never see `K` or `V` and never
//!   allocate per entry.
//! * **Reads scale.** A `get` takes the *read* lock, finds the entry, clones
//!   the value, counts the hit (in the lock's cache line: see [`Core`]) and
//!   tells the policy in the way it asks for ([`AnyPolicy::record_hit`]):
//!   - W-TinyLFU notes it in the entry's own meta byte and applies it when
//!     the entry next matters (see `crate::policy::wtinylfu`, "Hits");
//!   - FIFO and Random ignore hits;
//!   - LRU, SLRU and LFU, whose order must be exact, get it through a small
//!     ring of atomic slots ([`ReadBuffer`], after BP-Wrapper and
//!     Caffeine's read buffers), drained into the policy under the write
//!     lock by the reader that fills the ring (if `try_write` succeeds,
//!     otherwise the record is simply overwritten later) and by every writer
//!     before it changes anything. A lost record costs a little policy
//!     precision, never correctness: the drain ignores indices whose slot is
//!     now empty. Single-threaded, nothing is lost and hits reach the policy
//!     in order, so with one shard the LRU policy is exactly the classic
//!     LRU.
//!
//!   Besides the lock's cache line (its word, which taking the read lock
//!   writes, and the hit count kept beside it), nothing a reader writes is
//!   shared by every reader of the shard, so two threads reading different
//!   keys bounce no other line between them (the ring's head is, for the
//!   three exact policies). With the default shard count (see
//!   `CacheBuilder::shards`) two threads rarely meet on one lock word.
//! * **Writes** (`insert`, `remove`, `retain`, eviction) take the write
//!   lock, drain the read buffer, then change the table, the slab and the
//!   policy together. Capacity is one cache-wide budget (see [`budget`]):
//!   a write takes the weight it adds from it, or evicts from its own
//!   shard once it is spent, before the lock is released, so the bound
//!   holds after every operation.
//!
//! # Files
//!
//! This file holds the shard, its core and the write and read paths;
//! [`leave`] is the one path by which an entry leaves (eviction, expiry,
//! removal, retain, clear) and where invalidations of keys are applied;
//! [`flights`] is the shard's table of loads in progress (the protocol that
//! uses it is `crate::load::flight`); [`negative`] remembers keys that do
//! not exist; [`slab`] is the entries' storage (the shard's one `unsafe`
//! type, with its model test; `Core::find_live` reads it unchecked).
//! Nothing here knows about loaders: the layers above (`cache`, `load`,
//! `write`) call in, never the other way.
//!
//! # What each lock guards, and lock order
//!
//! The shard's `RwLock` guards everything in [`Core`]. No code holds two
//! shard locks at once, and no user code (clone, weigher, listener, drop of
//! a removed value) runs under the write lock except key equality inside a
//! lookup, which happens before anything is modified, and the key's `Hash`
//! (see [`Core::key_hash`]). Removed entries are collected in [`Removed`]
//! and handed to the listener and dropped by the caller after the lock is
//! released.
//!
//! A stored key's hash is computed under the lock from the key (see
//! [`Core::key_hash`]), so it must be what it was when the key was stored,
//! as `Hash` and `Eq` require of any map key. If it changes while the key
//! is stored, lookups may miss the entry, and the entry still leaves the
//! shard normally: a removal that does not find its index under the key's
//! hash looks for it through the whole table. A `Hash` that panics under
//! the lock (it did not when the key was first hashed, outside it) is
//! caught there ([`stored_hash`]): the hash counts as 0 (for the table and
//! the policy's estimates) and the operation completes, so no user panic
//! leaves a change half done. Memory safety never depends on user code.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU32;

use hashbrown::HashTable;

use std::time::Duration;

mod budget;
mod flights;
mod leave;
mod negative;
mod slab;

use slab::Slab;

pub(crate) use budget::Budget;

pub(crate) use flights::{AnyError, Flight, Outcome};
pub(crate) use leave::Removed;

use flights::FlightTable;
use negative::NegativeTable;

use crate::policy::list::Weights;
use crate::policy::minisim::MiniSims;
use crate::policy::{AnyPolicy, EvictionPolicy, Idx, Policy, RemovalCause};
use crate::stats::Lookups;
use crate::sync::{Arc, AtomicU32, AtomicU64, Ordering, RwLock, RwLockReadGuard, RwLockWriteGuard};
use crate::time::clock::TimeFloor;
use crate::time::expiry::{self, Jitter, Rng};
use crate::time::refresh::RefreshTimes;
use crate::time::wheel::{join, split, Advance, Deadlines, TimerWheel, DEFAULT_BUDGET};
use crate::time::NEVER;

/// The key's hash as the cache uses it: the hasher's output, mixed so that
/// a weak hasher (an identity hash of integers, one that sets only low or
/// only high bits) still spreads keys over the shards (chosen from high
/// bits) and over each shard's table (the low 32 bits).
#[inline]
pub(crate) fn cache_hash<S: BuildHasher, Q: Hash + ?Sized>(hasher: &S, key: &Q) -> u64 {
    mix(hasher.hash_one(key))
}

/// The folded 128-bit product of `hash` and an odd constant.
#[inline]
fn mix(hash: u64) -> u64 {
    let wide = u128::from(hash) * 0x9E37_79B9_7F4A_7C15_u128;
    (wide as u64) ^ ((wide >> 64) as u64)
}

/// Multiplier (odd, from the golden ratio) that spreads an entry's 32 hash
/// bits ([`short_hash`]) over the 64 bits the table files it under.
const SPREAD: u64 = 0x9E37_79B9_7F4A_7C15;

/// The 32 hash bits the table and the policy use: the low half of the
/// cache's hash (the shard was chosen from high bits, so these are
/// independent of it), with the lowest bit forced on. (These bits were once
/// stored in the entry, where the forced bit gave `Option<Entry>` its
/// niche; they are kept exactly so that decisions stay as they were.)
#[inline]
fn short_hash(hash: u64) -> NonZeroU32 {
    NonZeroU32::MIN | (hash as u32)
}

/// The 64-bit hash the table files an entry under (and the policy's hash of
/// it), derived from its 32 bits. The multiply mixes every one of them into
/// hashbrown's 7-bit tag (the top bits) and its bucket index (the low bits).
#[inline]
fn table_hash(short: NonZeroU32) -> u64 {
    u64::from(short.get()).wrapping_mul(SPREAD)
}

/// The weight a shard's policy is sized for, beyond its `share` of a cache
/// split into `shards`: the usual spread of keys over shards (three
/// standard deviations of a binomial count, and a few units), so that a
/// shard of a full cache is rarely beyond what its policy expects (about 3%
/// more than the share at 16 Ki per shard). None with one shard.
pub(crate) fn spread(share: u64, shards: usize) -> u64 {
    if shards == 1 {
        0
    } else {
        3 * (share as f64).sqrt() as u64 + 8
    }
}

/// The default shard count for a cache of `capacity` whose layout asks for
/// `n` shards (a power of two): the count from `n` to `n + n/4`, at most
/// `max`, whose shards' hash tables are the fullest once the cache is
/// (shards at most a fifth smaller than the layout's).
///
/// A shard's table (hashbrown) has a power of two of buckets, at most 7/8
/// of them used, so with a power of two of shards a capacity just above
/// 7/8 of a power of two per shard gets twice the buckets it needs: a cache
/// of 1,000,000 in 64 shards of 15,625 has 32,768 buckets per shard (5
/// bytes each: 10.5 bytes per entry), in 72 shards of 13,889 (up to 14,250
/// with the spread) 16,384 (5.9 bytes per entry). Shard counts need not be
/// powers of two: the shard index is a multiply-shift of the hash (see
/// `Cache::shard_index`).
pub(crate) fn fit_tables(n: usize, capacity: u64, max: usize) -> usize {
    // Entries per bucket of a shard's table once the cache is full.
    let fill = |m: usize| {
        let share = capacity / m as u64;
        let most = capacity.div_ceil(m as u64);
        let need = most + spread(most, m);
        let buckets = (need.saturating_mul(8).div_ceil(7))
            .next_power_of_two()
            .max(16);
        share as f64 / buckets as f64
    };
    if n <= 1 {
        return n;
    }
    let mut best = (n, fill(n));
    for m in n + 1..=(n + n / 4).min(max) {
        let f = fill(m);
        if f > best.1 {
            best = (m, f);
        }
    }
    best.0
}

/// Number of slots in a shard's read buffer (a power of two).
pub(crate) const READ_BUFFER_SLOTS: usize = 64;

/// A stored entry: 16 bytes for `u64 -> u64`. Its weight is kept apart (in
/// `Core::weights`), its deadline in the timers (`Timers::hi` and the
/// wheel), its hash nowhere (see [`Core::key_hash`]).
pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
}

/// The hash the table files `key` under and the policy knows it by, from
/// the cache's hasher: `table_hash(short_hash(cache_hash(..)))`, the value
/// the entry kept before its hash bits left it.
#[inline]
fn key_hash<K: Hash, S: BuildHasher>(hasher: &S, key: &K) -> u64 {
    table_hash(short_hash(cache_hash(hasher, key)))
}

/// [`key_hash`] under the shard's lock: `None` if the key's `Hash`
/// panicked (caught here: see the module docs).
#[inline]
fn stored_hash<K: Hash, S: BuildHasher>(hasher: &S, key: &K) -> Option<u64> {
    // Unwind safety: the closure changes nothing of the shard's, and the
    // hasher state it builds is its own.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| key_hash(hasher, key))).ok()
}

/// The key hash of any slab entry, for the policy (0 for an empty slot,
/// which a policy never asks about, or a key whose `Hash` panicked).
fn hashes<'a, K: Hash, V, S: BuildHasher>(
    slots: &'a Slab<Entry<K, V>>,
    hasher: &'a S,
) -> impl Fn(Idx) -> u64 + 'a {
    move |i| {
        slots
            .get(i as usize)
            .and_then(|e| stored_hash(hasher, &e.key))
            .unwrap_or(0)
    }
}

/// A lossy ring of recent read hits, written under the shard's read lock.
pub(crate) struct ReadBuffer {
    /// Total hits recorded; also the next write position.
    head: AtomicU64,
    slots: [AtomicU32; READ_BUFFER_SLOTS],
}

/// What a read-buffer slot holds before its first record (no entry).
const EMPTY: u32 = u32::MAX;

impl ReadBuffer {
    fn new() -> Self {
        Self {
            head: AtomicU64::new(0),
            slots: std::array::from_fn(|_| AtomicU32::new(EMPTY)),
        }
    }

    /// Records a hit on `idx`; returns true when the ring just filled and
    /// should be drained.
    #[inline]
    fn record(&self, idx: Idx) -> bool {
        let pos = self.head.fetch_add(1, Ordering::Relaxed) as usize;
        self.slots[pos % READ_BUFFER_SLOTS].store(idx, Ordering::Relaxed);
        pos % READ_BUFFER_SLOTS == READ_BUFFER_SLOTS - 1
    }
}

/// Counters kept under the shard lock. `repr(C)`: the three an insert that
/// evicts adds to come first, in one line of `Core` (see its layout).
#[derive(Default, Clone, Copy, Debug)]
#[repr(C)]
pub(crate) struct CoreCounters {
    pub(crate) inserts: u64,
    pub(crate) evictions: u64,
    pub(crate) evicted_weight: u64,
    pub(crate) updates: u64,
    pub(crate) removals: u64,
    pub(crate) rejections: u64,
    pub(crate) expirations: u64,
    pub(crate) loads: u64,
    pub(crate) load_failures: u64,
    pub(crate) load_nanos: u64,
    pub(crate) negative_hits: u64,
    pub(crate) refreshes: u64,
    pub(crate) refresh_failures: u64,
}

/// The single-threaded part of a shard: table, slab and policy.
///
/// `repr(C)`, and what a read uses first: behind the lock's word (see
/// [`Shard`]) the table, the hit count and the timers fill the lock's cache
/// line, and the slab and the policy's read side (its kind, and for
/// W-TinyLFU its meta bytes and mode) the next one, so a read hit touches
/// two lines of the shard besides the entry's own. (Laid out by the
/// compiler, with the counters' padding first, a read touched eight.)
///
/// One rule makes the lookup's unchecked slab read sound (see
/// [`find_live`](Self::find_live)): **every index in `table` names a live
/// slot of `slots`.** A new entry is put in its slot before its index is
/// filed in the table, and [`take_out`](Self::take_out) (the only way out)
/// removes the index from the table before it empties the slot; a panic
/// between the two steps leaves at worst a live slot the table does not
/// reach, never the reverse.
#[repr(C)]
pub(crate) struct Core<K, V, S> {
    table: HashTable<Idx>,
    /// Lookups that found a live entry, counted by readers under the read
    /// lock.
    pub(crate) hits: Lookups,
    /// Expiry state; `None` until some entry has a deadline.
    timers: Option<Box<Timers>>,
    slots: Slab<Entry<K, V>>,
    policy: AnyPolicy,
    /// Lookups that found nothing live.
    pub(crate) misses: Lookups,
    // From here to `counters`: what every insert uses besides the table,
    // the slab and the policy, packed into the four lines after the
    // policy's (`misses` to `budget`; `flights` to `weight`; the table of
    // `negatives`, whose other fields follow it; `hasher` and the first
    // three counters), the fields an insert does not use (from `used` on)
    // last. (Interleaved with those, an insert that evicts touched six
    // lines of this part of the core.)
    /// Each entry's weight; no memory until some entry weighs other than 1.
    weights: Weights,
    /// The shard's expected share of the cache's capacity (what its policy
    /// is sized for); the shard may hold more or less (see [`budget`]).
    share: u64,
    /// The cache-wide budget this shard's weight is committed in.
    budget: Arc<Budget>,
    /// Loads in progress (see [`flights`] and `crate::load::flight`).
    pub(crate) flights: FlightTable<K, V>,
    free: Vec<Idx>,
    weight: u64,
    /// Keys known not to exist (see [`negative`]).
    pub(crate) negatives: NegativeTable<K>,
    /// The cache's hasher (a clone), for [`key_hash`](Self::key_hash).
    hasher: S,
    pub(crate) counters: CoreCounters,
    /// Slots used since the slab was last emptied: the index the next entry
    /// gets when the free list is empty.
    used: usize,
    /// The weight the policy was sized for: the share plus the spread of
    /// keys over shards (see `Cache::from_builder`).
    sized_for: u64,
    /// Read-buffer position up to which hits have been replayed.
    drained: u64,
    /// The shard's seed, for the jitter generator when the wheel is created
    /// lazily (so `CacheBuilder::seed` also covers `insert_with_ttl`).
    seed: u64,
    /// Time settings shared by every entry of the shard.
    time: TimeSettings,
    /// Reused buffer of indices the wheel fired.
    fired: Vec<Idx>,
}

impl Timers {
    /// The high 32 bits of the deadline of the entry at `idx` (`u32::MAX`
    /// when it has none).
    #[inline]
    fn hi(&self, idx: Idx) -> u32 {
        self.hi.get(idx as usize).copied().unwrap_or(u32::MAX)
    }

    /// True if the entry at `idx` has expired at `now`. A deadline more
    /// than 2^32 ns past `now` is seen from its high half alone; otherwise
    /// the wheel's low half decides, and with time to idle the idle
    /// deadline may be later still.
    #[inline]
    fn is_expired(&self, idx: Idx, now: u64) -> bool {
        let hi = self.hi(idx);
        if now < join(hi, 0) || self.wheel.deadline(idx, hi) > now {
            return false;
        }
        match self.idle.get(idx as usize) {
            Some(idle) => idle.load(Ordering::Relaxed) <= now,
            None => true,
        }
    }
}

/// The shard's side of a wheel visit (see `crate::time::wheel::Deadlines`):
/// the high halves of deadlines are in `Timers::hi`, idle deadlines in
/// `Timers::idle`, and what fires is collected for removal.
pub(crate) struct Due<'a> {
    hi: &'a mut [u32],
    idle: &'a [AtomicU64],
    fired: &'a mut Vec<Idx>,
}

impl Deadlines for Due<'_> {
    #[inline]
    fn hi(&self, idx: Idx) -> u32 {
        self.hi.get(idx as usize).copied().unwrap_or(u32::MAX)
    }

    fn due(&mut self, idx: Idx, now: u64) -> Option<u64> {
        if let Some(idle) = self.idle.get(idx as usize) {
            let later = idle.load(Ordering::Relaxed);
            if later > now {
                if let Some(hi) = self.hi.get_mut(idx as usize) {
                    *hi = split(later).0;
                }
                return Some(later);
            }
        }
        self.fired.push(idx);
        None
    }
}

/// The cache-wide time settings a shard needs under its lock.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct TimeSettings {
    /// Time to idle, if any.
    pub(crate) tti: Option<Duration>,
    /// Spread applied to every time to live.
    pub(crate) jitter: Jitter,
    /// Create the wheel up front (some expiry is configured cache-wide).
    pub(crate) eager: bool,
    /// Refresh-ahead and stale-while-revalidate (`crate::time::refresh`).
    pub(crate) refresh: RefreshTimes,
}

/// A shard's expiry machinery (see `crate::time`).
struct Timers {
    wheel: TimerWheel,
    /// The high 32 bits of each entry's deadline, by index (`u32::MAX`, or
    /// beyond the end: none); the low half is in the wheel (see
    /// `crate::time::wheel`). From this alone a read learns that a deadline
    /// is far without touching the wheel. Reserved with the slab; a vacant
    /// slot's is `u32::MAX`.
    hi: Vec<u32>,
    rng: Rng,
    /// Each entry's time-to-live deadline, kept only when time to idle is
    /// also on (an access may push the idle deadline no later than this).
    hard: Vec<u64>,
    /// Each entry's idle deadline, kept only when time to idle is on:
    /// readers push it later under the read lock. The wheel holds the
    /// deadline the entry had when written (never later than this); when
    /// that comes, the entry is placed again for this one unless it passed.
    idle: Vec<AtomicU64>,
    /// Each entry's refresh point, kept only when refresh is configured
    /// (written under the write lock, claimed by readers with a CAS under
    /// the read lock; see `crate::load::refresh`).
    refresh_at: Vec<AtomicU64>,
    /// Whether every deadline set in this shard so far was its write time
    /// plus one same span (see [`Spans`]).
    spans: Spans,
}

/// Tracks whether all the deadlines a shard has set are `write time + D`
/// for one constant `D` (a fixed time to live, without jitter, per-entry
/// durations or time to idle: the common case). While they are, and since
/// the shard's time never goes backwards, a rewrite's deadline is never
/// earlier than the one it replaces, so `schedule` need not read the old
/// one (a cache miss on the wheel node) to know that it may leave the
/// node in its bucket.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Spans {
    /// No deadline set yet.
    None,
    /// Every deadline so far was its write time plus this.
    One(u64),
    /// Not so (sticky).
    Many,
}

impl Spans {
    /// Records a deadline set `span` after its write time (`None`: not of
    /// that form).
    #[inline]
    fn note(&mut self, span: Option<u64>) {
        *self = match (*self, span) {
            (Spans::None, Some(d)) => Spans::One(d),
            (Spans::One(d), Some(e)) if d == e => return,
            _ => Spans::Many,
        };
    }
}

/// When an entry being written should expire.
#[derive(Clone, Copy, Debug)]
pub(crate) struct WriteTime {
    /// The shard's current time (nanoseconds on the cache clock).
    pub(crate) now: u64,
    /// Its time to live, if it has one.
    pub(crate) ttl: Option<Duration>,
}

/// What [`Core::insert_with`] did.
pub(crate) enum Insert<K, V> {
    /// The value is stored.
    Stored,
    /// The value was heavier than the cache's capacity: not stored.
    Rejected,
    /// Nothing stored: the shard needs `need` more weight that only other
    /// shards can give. The key and value come back for the retry.
    Short { key: K, value: V, need: u64 },
}

/// Whether weight that leaves goes back to the cache's budget at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Release {
    Yes,
    No,
}

impl<K, V, S> Core<K, V, S> {
    fn new(
        policy: Policy,
        (share, sized_for): (u64, u64),
        budget: Arc<Budget>,
        seed: u64,
        (exact_hits, sims): (bool, Option<Arc<MiniSims>>),
        time: TimeSettings,
        hasher: S,
    ) -> Self {
        let mut core = Self {
            table: HashTable::new(),
            slots: Slab::new(),
            weights: Weights::default(),
            free: Vec::new(),
            used: 0,
            policy: AnyPolicy::new(policy, sized_for, seed, exact_hits, sims),
            share,
            sized_for,
            weight: 0,
            budget,
            timers: None,
            time,
            fired: Vec::new(),
            drained: 0,
            seed,
            flights: FlightTable::default(),
            negatives: NegativeTable::default(),
            counters: CoreCounters::default(),
            hits: Lookups::new(),
            misses: Lookups::new(),
            hasher,
        };
        if time.eager {
            core.timers(0);
        }
        core
    }

    /// The hash the table files `key` under and the policy knows it by:
    /// the 32 bits of the cache's hash that the shard keeps
    /// ([`short_hash`]), spread by [`table_hash`]. Computed from the key
    /// where needed (a table rehash, a removal, the policy's estimates),
    /// with the cache's hasher: the same value the cache computed for the
    /// key outside the lock, as long as `Hash` is a function of the key.
    #[inline]
    pub(crate) fn key_hash(&self, key: &K) -> u64
    where
        K: Hash,
        S: BuildHasher,
    {
        key_hash(&self.hasher, key)
    }

    /// The expiry machinery, created on first use.
    fn timers(&mut self, now: u64) -> &mut Timers {
        let seed = self.seed;
        let slots = self.slots.capacity();
        self.timers.get_or_insert_with(|| {
            Box::new(Timers {
                wheel: TimerWheel::new(now),
                hi: Vec::with_capacity(slots),
                rng: Rng::new(seed),
                hard: Vec::new(),
                idle: Vec::new(),
                refresh_at: Vec::new(),
                spans: Spans::None,
            })
        })
    }

    /// True if some entry may have a deadline (readers must then read the
    /// clock to judge it).
    #[inline]
    pub(crate) fn has_timers(&self) -> bool {
        self.timers.is_some()
    }

    /// True if the entry at `idx` has expired at `now`.
    #[inline]
    pub(crate) fn is_expired(&self, idx: Idx, now: u64) -> bool {
        match &self.timers {
            Some(t) => t.is_expired(idx, now),
            None => false,
        }
    }

    /// The entry's time-to-live deadline (a stale window included), or
    /// `NEVER`; not the idle deadline. For early refresh and
    /// stale-if-error (`crate::load::early`). Callable under the read lock.
    #[inline]
    pub(crate) fn ttl_deadline(&self, idx: Idx) -> u64 {
        match &self.timers {
            None => NEVER,
            Some(t) if self.time.tti.is_some() => {
                t.hard.get(idx as usize).copied().unwrap_or(NEVER)
            }
            Some(t) => t.wheel.deadline(idx, t.hi(idx)),
        }
    }

    /// Refresh-ahead: true if the entry at `idx` is due for a refresh at
    /// `now` and this caller claimed it (see `crate::load::refresh`).
    /// Callable under the read lock.
    #[inline]
    pub(crate) fn claim_refresh(&self, idx: Idx, now: u64) -> bool {
        let refresh = &self.time.refresh;
        self.timers
            .as_ref()
            .is_some_and(|t| refresh.claim(&t.refresh_at, idx, now))
    }

    /// Time to idle: an access at `now` pushes the entry's idle deadline
    /// to `now + tti` (never past its time-to-live deadline). Callable under
    /// the read lock: a relaxed load and store, so two readers racing may
    /// leave the earlier of their two extensions (both within a few
    /// nanoseconds of each other), never less than the deadline before.
    #[inline]
    pub(crate) fn touch(&self, idx: Idx, now: u64) {
        // The timers first: they are in the line the read has touched, the
        // time settings are not (a cache without expiry never reads them).
        let Some(t) = &self.timers else {
            return;
        };
        if let Some(tti) = self.time.tti {
            if let Some(idle) = t.idle.get(idx as usize) {
                let hard = t.hard.get(idx as usize).copied().unwrap_or(NEVER);
                let new = expiry::idle_deadline(now, tti).min(hard);
                if new > idle.load(Ordering::Relaxed) {
                    idle.store(new, Ordering::Relaxed);
                }
            }
        }
    }

    /// Gives the entry at `idx` its deadline for a write at `write`.
    ///
    /// Inlined, it handles the two commonest writes itself: one in a cache
    /// without expiry (nothing to do) and a rewrite in a shard where every
    /// deadline is the write time plus one same TTL (see [`Spans`]: store
    /// both halves of the new deadline; the node stays where it is). The
    /// rest goes to [`schedule_any`](Self::schedule_any). Always inlined
    /// (left out of line by the compiler, its call cost 5% of an update).
    #[inline(always)]
    fn schedule(&mut self, idx: Idx, write: WriteTime) {
        let Some(t) = self.timers.as_deref_mut() else {
            if write.ttl.is_some() {
                self.schedule_any(idx, write);
            }
            return;
        };
        if let (Spans::One(span), Some(ttl)) = (t.spans, write.ttl) {
            let plain =
                self.time.tti.is_none() && self.time.jitter.is_none() && !self.time.refresh.is_on();
            // `ttl == span` and `deadline` below are what `schedule_any`
            // would compute for this write, and it would note the same span.
            if plain && expiry::ttl_nanos(ttl) == Some(span) {
                if let (Some(hi), Some(deadline)) = (
                    t.hi.get_mut(idx as usize),
                    write.now.checked_add(span).filter(|&d| d != NEVER),
                ) {
                    if *hi != u32::MAX {
                        debug_assert!(t.wheel.is_scheduled(idx));
                        debug_assert!(deadline >= t.wheel.deadline(idx, *hi));
                        t.wheel.postpone_unchecked(idx, deadline);
                        *hi = split(deadline).0;
                        return;
                    }
                }
            }
        }
        self.schedule_any(idx, write);
    }

    /// [`schedule`](Self::schedule) for any write.
    #[inline(never)]
    fn schedule_any(&mut self, idx: Idx, write: WriteTime) {
        let tti = self.time.tti;
        let jitter = self.time.jitter;
        let refresh = self.time.refresh;
        self.timers(write.now);
        let Some(t) = self.timers.as_deref_mut() else {
            return;
        };
        let hard = match write.ttl {
            Some(ttl) => expiry::deadline(write.now, ttl, jitter, &mut t.rng),
            None => NEVER,
        };
        // Records the refresh point; a stale window extends the deadline.
        let hard = refresh.schedule(idx, write.now, hard, &mut t.refresh_at);
        let deadline = match tti {
            Some(tti) => {
                let i = idx as usize;
                if t.hard.len() <= i {
                    t.hard.resize(i + 1, NEVER);
                    t.idle.resize_with(i + 1, || AtomicU64::new(NEVER));
                }
                t.hard[i] = hard;
                let idle = expiry::idle_deadline(write.now, tti).min(hard);
                t.idle[i].store(idle, Ordering::Relaxed);
                idle
            }
            None => hard,
        };
        // Time to idle moves wheel deadlines later behind the writes' back
        // (see `Due`), so it never takes the shortcut.
        let span = match tti {
            None if deadline != NEVER => deadline.checked_sub(write.now),
            _ => None,
        };
        // One-span rewrites take the shortcut in `schedule`; this only
        // keeps the record it relies on.
        t.spans.note(span);
        let i = idx as usize;
        if t.hi.len() <= i {
            t.hi.resize(i + 1, u32::MAX);
        }
        let old = t.wheel.deadline(idx, t.hi[i]);
        t.wheel.postpone(idx, old, deadline);
        t.hi[i] = split(deadline).0;
    }

    /// Removes entries whose deadline has passed at `now`, touching at most
    /// `budget` wheel entries. Returns true if more work is left. Every
    /// write calls it: inlined, it is one compare until the wheel's tick
    /// turns.
    #[inline]
    pub(crate) fn expire(&mut self, now: u64, budget: usize, removed: &mut Removed<K, V>) -> bool
    where
        K: Hash,
        S: BuildHasher,
    {
        self.expire_in(now, budget, removed, Release::Yes)
    }

    /// [`expire`](Self::expire); with [`Release::No`] the weight that
    /// expired stays committed (an insert counts it as room it made).
    #[inline]
    fn expire_in(
        &mut self,
        now: u64,
        budget: usize,
        removed: &mut Removed<K, V>,
        release: Release,
    ) -> bool
    where
        K: Hash,
        S: BuildHasher,
    {
        let quiet = match self.timers.as_mut() {
            Some(t) => t.wheel.is_quiet(now),
            None => true,
        };
        if quiet {
            return false;
        }
        self.advance_wheel(now, budget, removed, release)
    }

    /// The rest of [`expire`](Self::expire), when the wheel has work.
    #[inline(never)]
    fn advance_wheel(
        &mut self,
        now: u64,
        budget: usize,
        removed: &mut Removed<K, V>,
        release: Release,
    ) -> bool
    where
        K: Hash,
        S: BuildHasher,
    {
        let before = self.weight;
        let more = self.expire_with(removed, |wheel, fire| wheel.advance(now, budget, fire));
        if release == Release::Yes {
            self.budget.release(before - self.weight);
        }
        more
    }

    /// Like [`expire`](Self::expire) at the time it last ran, but also
    /// removes what is due in the wheel's current 1.07 s tick, which
    /// `expire` leaves until the tick ends. Costs a walk of that tick's
    /// entries, so it is for explicit maintenance (`run_pending_tasks`),
    /// once `expire` has nothing pending. Returns true if more work is left
    /// (for `expire`).
    pub(crate) fn expire_current_tick(&mut self, budget: usize, removed: &mut Removed<K, V>) -> bool
    where
        K: Hash,
        S: BuildHasher,
    {
        let before = self.weight;
        let more = self.expire_with(removed, |wheel, fire| wheel.fire_current_tick(budget, fire));
        self.budget.release(before - self.weight);
        more
    }

    /// Runs `step` on the wheel and removes the entries it fires.
    fn expire_with(
        &mut self,
        removed: &mut Removed<K, V>,
        step: impl FnOnce(&mut TimerWheel, &mut Due<'_>) -> Advance,
    ) -> bool
    where
        K: Hash,
        S: BuildHasher,
    {
        let Some(t) = self.timers.as_mut() else {
            return false;
        };
        let mut fired = std::mem::take(&mut self.fired);
        let mut due = Due {
            hi: &mut t.hi,
            idle: &t.idle,
            fired: &mut fired,
        };
        let pending = step(&mut t.wheel, &mut due).pending;
        for &idx in &fired {
            // The wheel may fire a slot emptied since it was scheduled.
            if self.slots.is_live(idx as usize) {
                self.detach(idx, RemovalCause::Expired, removed);
            }
        }
        fired.clear();
        self.fired = fired;
        pending
    }

    /// Number of entries stored.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Total weight stored.
    #[inline]
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// The shard's expected share of the cache's capacity (its policy's
    /// size; the shard itself may hold up to the whole capacity).
    #[inline]
    pub(crate) fn capacity(&self) -> u64 {
        self.share
    }

    /// The live entry at `idx` (panics on a vacant slot).
    #[inline]
    fn entry(&self, idx: Idx) -> &Entry<K, V> {
        match self.slots.get(idx as usize) {
            Some(entry) => entry,
            None => unreachable!("slot {idx} is vacant"),
        }
    }

    /// Looks up `key`; `hash` must be the cache's hash of it.
    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Idx>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find_live(hash, key).map(|(idx, _)| idx)
    }

    /// Looks up `key` and returns its index and entry; `hash` must be the
    /// cache's hash of it. Reads no slab occupancy word (the read path's
    /// lines are the table's and the entry's only).
    #[inline]
    pub(crate) fn find_live<Q>(&self, hash: u64, key: &Q) -> Option<(Idx, &Entry<K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        let mut entry = None;
        let &idx = self.table.find(table_hash(short_hash(hash)), |&idx| {
            // SAFETY: every index in the table names a live slot (the rule
            // in `Core`'s docs), and the table is borrowed along with the
            // slab, so no slot is emptied meanwhile.
            let e = unsafe { slots.get_unchecked(idx as usize) };
            let hit = e.key.borrow() == key;
            if hit {
                entry = Some(e);
            }
            hit
        })?;
        entry.map(|e| (idx, e))
    }

    /// Replays buffered read hits into the policy, oldest first.
    ///
    /// Only the positions recorded since the last drain are read (at most
    /// the ring's size: older ones were overwritten, which is the lossy
    /// part). Every recorder stored its slot before releasing the read lock
    /// this write lock waited for, so every position below `head` is written.
    #[inline]
    fn drain(&mut self, buffer: &ReadBuffer)
    where
        K: Hash,
        S: BuildHasher,
    {
        if !self.policy.replays_hits() {
            // Nothing is ever recorded (see `AnyPolicy::record_hit`): the
            // ring's line stays untouched by writes too (and the check is
            // inlined into every write, the replay is not).
            return;
        }
        self.replay(buffer);
    }

    /// The replay of [`drain`](Self::drain).
    #[inline(never)]
    fn replay(&mut self, buffer: &ReadBuffer)
    where
        K: Hash,
        S: BuildHasher,
    {
        let head = buffer.head.load(Ordering::Relaxed);
        let start = self
            .drained
            .max(head.saturating_sub(READ_BUFFER_SLOTS as u64));
        self.drained = head;
        for pos in start..head {
            let idx = buffer.slots[pos as usize % READ_BUFFER_SLOTS].load(Ordering::Relaxed);
            if let Some(entry) = self.slots.get(idx as usize) {
                let hash = stored_hash(&self.hasher, &entry.key).unwrap_or(0);
                self.policy.on_access(idx, hash);
            }
        }
    }

    /// Inserts or replaces `key`, making room in this shard if the cache's
    /// budget is spent. Returns true if the value was stored (false when it
    /// was heavier than the cache's capacity).
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        write: WriteTime,
        removed: &mut Removed<K, V>,
    ) -> bool
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let mut credit = 0;
        match self.insert_with(hash, key, value, weight, write, &mut credit, false, removed) {
            Insert::Stored => true,
            Insert::Rejected => false,
            Insert::Short { .. } => unreachable!("an insert that may not defer never does"),
        }
    }

    /// Inserts or replaces `key`. The weight it adds comes from `credit`
    /// (room the caller took from other shards; consumed), then from the
    /// cache's budget, then from evicting this shard's own entries. With
    /// `may_defer`, a shard that would have to evict itself (nearly) empty
    /// instead stores nothing and returns [`Insert::Short`], leaving the
    /// room it did get in `credit`: the caller takes the rest from other
    /// shards after releasing this lock, and tries again. See [`budget`].
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert_with(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        write: WriteTime,
        credit: &mut u64,
        may_defer: bool,
        removed: &mut Removed<K, V>,
    ) -> Insert<K, V>
    where
        K: Hash + Eq,
        S: BuildHasher,
    {
        let start = self.weight;
        let mut existing = self.find(hash, &key);
        if let Some(idx) = existing {
            if self.is_expired(idx, write.now) {
                // An expired value is gone, whatever replaces it.
                self.detach(idx, RemovalCause::Expired, removed);
                existing = None;
            }
        }
        // The weight committed for this shard in this write: what it held
        // plus the caller's credit (taken only now: key equality, user
        // code, has run). What it does not hold at the end goes back.
        let mut allowed = start + std::mem::take(credit);
        if u64::from(weight) > self.budget.capacity() {
            // Never stored (a capacity of 0 stores nothing: every weight is
            // at least 1). A value it replaces must not be served either.
            if let Some(idx) = existing {
                self.detach(idx, RemovalCause::Replaced, removed);
            }
            self.counters.rejections += 1;
            self.counters.evictions += 1;
            self.counters.evicted_weight += u64::from(weight);
            removed.push(key, value, RemovalCause::Evicted);
            self.budget.release(allowed - self.weight);
            return Insert::Rejected;
        }
        let old = existing.map_or(0, |idx| u64::from(self.weights.get(idx)));
        let want = self.weight - old + u64::from(weight);
        if want > allowed {
            allowed += self.budget.reserve_up_to(want - allowed);
            if want > allowed && may_defer {
                // The budget is spent. A shard with little of its own
                // would evict itself empty, or evict the new entry
                // itself: take the room from the others instead.
                let others = self.weight - old;
                let need = want - allowed;
                if others < need || others < self.share / 2 {
                    *credit = allowed - self.weight;
                    return Insert::Short { key, value, need };
                }
            }
        }
        match existing {
            Some(idx) => {
                let slot = self.slots.get_mut(idx as usize).expect("live slot");
                let old_value = std::mem::replace(&mut slot.value, value);
                let old_weight = self.weights.get(idx);
                self.weights.set(idx, weight);
                self.weight = self.weight - u64::from(old_weight) + u64::from(weight);
                // Deadline first: its store to the wheel node (a line of its
                // own) is then under way while the policy works, instead of
                // left for the lock's release to wait for (100% rewrites of
                // 2^16 keys with a TTL: about 9% faster this way).
                self.schedule(idx, write);
                self.policy.on_update(
                    idx,
                    table_hash(short_hash(hash)),
                    weight,
                    &hashes(&self.slots, &self.hasher),
                );
                self.counters.updates += 1;
                removed.push(key, old_value, RemovalCause::Replaced);
            }
            None => {
                let hash = table_hash(short_hash(hash));
                let entry = Entry { key, value };
                let idx = match self.free.pop() {
                    Some(idx) => idx,
                    None => {
                        self.grow_slab();
                        self.used += 1;
                        (self.used - 1) as Idx
                    }
                };
                // The slot first, then the table (the rule in `Core`'s docs).
                self.slots.put(idx as usize, entry);
                let (slots, hasher) = (&self.slots, &self.hasher);
                // A rehash hashes every key again (the `Hash` of a stored
                // key, under the lock: see the module docs).
                self.table.insert_unique(hash, idx, |&i| {
                    slots
                        .get(i as usize)
                        .and_then(|e| stored_hash(hasher, &e.key))
                        .unwrap_or(0)
                });
                self.weights.set(idx, weight);
                self.weight += u64::from(weight);
                if self.policy.wants_hits() {
                    self.policy.observe_hits(self.hits.get());
                }
                self.schedule(idx, write); // first, as for an update
                self.policy
                    .on_insert(idx, hash, weight, &hashes(&self.slots, &self.hasher));
                self.counters.inserts += 1;
            }
        }
        if self.timers.is_some() {
            // Expired entries leave before the policy picks victims (their
            // weight is room this write made).
            self.expire_in(write.now, DEFAULT_BUDGET, removed, Release::No);
        }
        self.evict_to(allowed, removed);
        self.budget.release(allowed - self.weight);
        Insert::Stored
    }

    /// Makes room for one more slab slot. The slab doubles as usual, but
    /// never past the shard's share of the capacity while it is below it,
    /// and by a 64th at a time beyond it (a shard holds about its share,
    /// give or take the spread of the keys: little slack either way), and
    /// the timer wheel's node array is grown to the same size so the two
    /// stay in step.
    fn grow_slab(&mut self) {
        let (len, cap) = (self.used, self.slots.capacity());
        if len < cap {
            return;
        }
        // One over the share: an insert takes its slot before eviction
        // frees one, and from then on the free list recycles the victims'
        // slots.
        let limit = usize::try_from(self.share.saturating_add(1)).unwrap_or(usize::MAX);
        let target = if len < limit {
            cap.saturating_mul(2).max(4).min(limit)
        } else {
            cap.saturating_add(cap / 64).max(4)
        };
        self.slots.reserve(target);
        let slots = self.slots.capacity();
        self.policy.reserve_slots(slots);
        if let Some(t) = self.timers.as_mut() {
            t.wheel.reserve_slots(slots);
            t.hi.reserve_exact(slots.saturating_sub(t.hi.len()));
        }
    }

    /// Every entry not expired at `now`, in slab order.
    pub(crate) fn live_entries(&self, now: u64) -> impl Iterator<Item = &Entry<K, V>> {
        self.slots
            .iter()
            .filter(move |&(i, _)| !self.is_expired(i as Idx, now))
            .map(|(_, e)| e)
    }

    /// Heap bytes held by this core (table, slab, free list, policy).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.allocation_size()
            + self.slots.heap_bytes()
            + self.free.capacity() * std::mem::size_of::<Idx>()
            + self.weights.heap_bytes()
            + self.policy.heap_bytes()
            + self.timers.as_ref().map_or(0, |t| {
                std::mem::size_of::<Timers>()
                    + t.wheel.heap_bytes()
                    + t.hi.capacity() * std::mem::size_of::<u32>()
                    + t.hard.capacity() * std::mem::size_of::<u64>()
                    + t.idle.capacity() * std::mem::size_of::<AtomicU64>()
                    + t.refresh_at.capacity() * std::mem::size_of::<AtomicU64>()
            })
    }

    /// Recomputes every count, weight and link; panics on a mismatch.
    pub(crate) fn validate(&self)
    where
        K: Hash,
        S: BuildHasher,
    {
        let live = self.slots.count();
        assert_eq!(live, self.table.len(), "slab and table disagree on len");
        assert_eq!(live, self.policy.len(), "policy tracks a different count");
        assert!(
            self.slots.iter().all(|(i, _)| i < self.used),
            "live slot past the used ones"
        );
        let weight: u64 = self
            .slots
            .iter()
            .map(|(i, _)| u64::from(self.weights.get(i as Idx)))
            .sum();
        assert_eq!(weight, self.weight, "stored weight is off");
        assert_eq!(weight, self.policy.weight(), "policy weight is off");
        assert!(self.weight <= self.budget.capacity(), "over capacity");
        for &idx in self.table.iter() {
            let entry = self.entry(idx);
            let found = self.table.find(self.key_hash(&entry.key), |&i| i == idx);
            assert!(found.is_some(), "entry {idx} not reachable by its hash");
        }
        for &idx in &self.free {
            assert!(!self.slots.is_live(idx as usize), "free slot {idx} is live");
            assert!((idx as usize) < self.used, "free slot {idx} never used");
        }
        assert_eq!(
            self.free.len() + live,
            self.used,
            "a used slot neither live nor free"
        );
        // A shard holding more than its policy was sized for (a heavy entry
        // took room from other shards, or keys crowd it beyond their usual
        // spread) is a legitimate state that W-TinyLFU's own checks do not
        // yet allow for: it keeps its admission cursor armed and may leave
        // protected over its share until the next write. Its lists are
        // checked whenever the shard is within that size.
        if self.weight <= self.sized_for {
            self.policy.validate();
        }
        if let Some(t) = &self.timers {
            t.wheel.validate();
            for i in 0..self.used.max(t.hi.len()) {
                if !self.slots.is_live(i) {
                    assert!(
                        !t.wheel.is_scheduled(i as Idx),
                        "free slot {i} is scheduled"
                    );
                    assert_eq!(t.hi(i as Idx), u32::MAX, "free slot {i} has a deadline");
                }
            }
        }
    }
}

/// A shard: the core under its lock, plus the lock-free read side.
///
/// `repr(C)` keeps the time floor beside the lock's word, in the cache line
/// every operation on the shard has just touched: a reader of a cache with
/// expiry loads it right after taking the lock.
#[repr(C)]
pub(crate) struct Shard<K, V, S> {
    /// The shard's time never goes backwards (see `TimeFloor`).
    pub(crate) floor: TimeFloor,
    core: RwLock<Core<K, V, S>>,
    reads: ReadBuffer,
}

/// What a lookup found.
pub(crate) enum Lookup<R> {
    /// A live entry; `drain` asks the caller to run maintenance.
    Hit(R, bool),
    /// Nothing live; `expired_at` is the time an expired entry that is
    /// still stored was judged at.
    Miss { expired_at: Option<u64> },
}

impl<K, V, S> Shard<K, V, S> {
    /// A shard expected to hold `share` of the capacity, whose policy is
    /// sized for `sized_for` (at least the share), drawing on the
    /// cache-wide `budget`; `hasher` is the cache's.
    pub(crate) fn new(
        policy: Policy,
        share: (u64, u64),
        budget: Arc<Budget>,
        seed: u64,
        hits: (bool, Option<Arc<MiniSims>>),
        time: TimeSettings,
        hasher: S,
    ) -> Self {
        Self {
            core: RwLock::new(Core::new(policy, share, budget, seed, hits, time, hasher)),
            reads: ReadBuffer::new(),
            floor: TimeFloor::new(0),
        }
    }

    /// Takes the write lock if nobody holds the shard (for opportunistic
    /// maintenance), replaying buffered hits first.
    pub(crate) fn try_write(&self) -> Option<RwLockWriteGuard<'_, Core<K, V, S>>>
    where
        K: Hash,
        S: BuildHasher,
    {
        let mut core = self.core.try_write()?;
        core.drain(&self.reads);
        Some(core)
    }

    /// Takes the read lock (lookups that do not touch the policy).
    #[inline]
    pub(crate) fn read(&self) -> RwLockReadGuard<'_, Core<K, V, S>> {
        self.core.read()
    }

    /// Takes the write lock and replays buffered hits first.
    #[inline]
    pub(crate) fn write(&self) -> RwLockWriteGuard<'_, Core<K, V, S>>
    where
        K: Hash,
        S: BuildHasher,
    {
        let mut core = self.core.write();
        core.drain(&self.reads);
        core
    }

    /// Looks `key` up and, on a live hit, records the access and returns
    /// `f(core, idx, entry, now)` (run under the read lock, for the entry
    /// and any per-entry state kept beside it). `now` (the shard's time, or anything
    /// when the cache has no expiry) decides what has expired.
    #[inline]
    pub(crate) fn lookup_with<Q, R>(
        &self,
        hash: u64,
        key: &Q,
        now: impl FnOnce() -> u64,
        f: impl FnOnce(&Core<K, V, S>, Idx, &Entry<K, V>, u64) -> R,
    ) -> Lookup<R>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let core = self.core.read();
        // The clock is read only when the shard keeps deadlines, under the
        // lock (so a wheel created by a concurrent first `insert_with_ttl`
        // is always seen together with its deadlines), and before the
        // lookup, so its latency overlaps the table's instead of adding to it
        // (the lock's atomic fences off anything read before it).
        let now = if core.has_timers() { now() } else { 0 };
        let Some((idx, entry)) = core.find_live(hash, key) else {
            core.misses.add();
            drop(core);
            return Lookup::Miss { expired_at: None };
        };
        if core.is_expired(idx, now) {
            core.misses.add();
            drop(core);
            return Lookup::Miss {
                expired_at: Some(now),
            };
        }
        core.touch(idx, now);
        let result = f(&core, idx, entry, now);
        core.hits.add();
        // The policy's hash of the entry (what `on_insert` was given): the
        // simulations must see a key's hits and misses under one hash.
        let drain =
            core.policy.record_hit(idx, table_hash(short_hash(hash))) && self.reads.record(idx);
        Lookup::Hit(result, drain)
    }
}

#[cfg(all(test, not(loom)))]
mod fit {
    use super::fit_tables;

    #[test]
    fn a_million_entries_take_72_shards_of_fuller_tables() {
        // 64 shards of 15,625 (up to 16,008 with the spread) need 32,768
        // buckets each; 72 of 13,889 (up to 14,250) need 16,384.
        assert_eq!(fit_tables(64, 1_000_000, 1_953), 72);
    }

    #[test]
    fn keeps_a_power_of_two_that_fits_and_stays_in_bounds() {
        // 12,000 per shard plus the spread fits in 16,384 buckets; fewer
        // buckets would take more than a fifth more shards: 64 stays.
        assert_eq!(fit_tables(64, 64 * 12_000, 2_048), 64);
        assert_eq!(fit_tables(1, 1_000, 1), 1);
        assert_eq!(fit_tables(2, 1_024, 2), 2, "at most `max`");
        for capacity in [1_024u64, 5_000, 65_536, 100_000, 1 << 20, 3_000_000] {
            for n in [2usize, 8, 64] {
                let max = (capacity / 512) as usize;
                if n > max {
                    continue;
                }
                let m = fit_tables(n, capacity, max);
                assert!(
                    (n..=n + n / 4).contains(&m) && m <= max,
                    "{capacity} {n}: {m}"
                );
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod sims_hook {
    use super::*;

    /// W-TinyLFU's simulations key on the hash the policy is given: a key's
    /// read hit must reach them under the hash its insert did (see
    /// `lookup_with`), or every hit would look like a new key to them.
    /// (Passing the cache's hash there instead of the policy's fails this:
    /// 0 ghost hits.)
    #[test]
    fn a_read_hit_reaches_the_simulations_under_the_hash_of_its_insert() {
        type H = ahash::RandomState;
        let sims = MiniSims::for_cache(4096, 1).expect("simulations");
        let hasher = H::with_seeds(1, 2, 3, 4);
        let shard: Shard<u64, u64, H> = Shard::new(
            Policy::WTinyLfu,
            (4096, 4096),
            Arc::new(Budget::new(4096)),
            1,
            (false, Some(sims.clone())),
            TimeSettings::default(),
            hasher.clone(),
        );
        let hash = |k: u64| cache_hash(&hasher, &k);
        let mut removed = Removed::new();
        for k in 0..1024u64 {
            let write = WriteTime { now: 0, ttl: None };
            shard.write().insert(hash(k), k, k, 1, write, &mut removed);
        }
        for k in 0..1024u64 {
            let hit = shard.lookup_with(hash(k), &k, || 0, |_, _, _, _| ());
            assert!(matches!(hit, Lookup::Hit(..)), "key {k}");
        }
        // About 128 sampled keys (one in 8), each inserted once and read
        // once (fewer accesses than a period), in ghosts of 512 entries:
        // every read a hit in every ghost.
        let ghosts = crate::policy::minisim::FRACTIONS.len() as u32;
        let (accesses, hits) = sims.period_counts();
        assert!((160..=360).contains(&accesses), "{accesses} sampled");
        assert_eq!(hits, ghosts * accesses / 2, "{accesses} sampled accesses");
    }
}

#[cfg(all(test, not(loom)))]
mod layout {
    use super::*;
    use std::mem::offset_of;

    /// The cache lines of a shard that a W-TinyLFU read hit uses (see
    /// [`Core`]): the lock's word, the table, the hit count and the timers
    /// in the shard's first line; the slab, the policy's kind and its read
    /// side in the second.
    #[test]
    fn a_read_hit_uses_two_lines_of_the_shard() {
        type H = ahash::RandomState;
        type C = Core<u64, u64, H>;
        let shard: Shard<u64, u64, H> = Shard::new(
            Policy::WTinyLfu,
            (1000, 1000),
            Arc::new(Budget::new(1000)),
            1,
            (false, None),
            TimeSettings::default(),
            H::new(),
        );
        let base = &shard as *const Shard<u64, u64, H> as usize;
        let core = shard.core.read();
        let at = &*core as *const C as usize - base;
        let line = |offset: usize, len: usize| {
            assert_eq!(offset / 64, (offset + len - 1) / 64, "straddles a line");
            offset / 64
        };
        assert_eq!(line(offset_of!(Shard<u64, u64, H>, floor), 8), 0);
        assert_eq!(line(at - 8, 8), 0, "the lock's word");
        assert_eq!(line(at + offset_of!(C, table), 32), 0);
        assert_eq!(line(at + offset_of!(C, hits), 8), 0);
        assert_eq!(line(at + offset_of!(C, timers), 8), 0);
        assert_eq!(line(at + offset_of!(C, slots), 24), 1);
        let policy = at + offset_of!(C, policy);
        assert_eq!(line(policy, 1), 1, "the policy's kind");
        let AnyPolicy::WTinyLfu(p) = &core.policy else {
            unreachable!()
        };
        let (meta, exact, sample_mask) = p.read_side();
        assert_eq!(line(meta - base, 16), 1);
        assert_eq!(line(exact - base, 1), 1);
        assert_eq!(line(sample_mask - base, 8), 1, "the simulations' mask");
    }
}
