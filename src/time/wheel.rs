//! A hierarchical timing wheel over the shard's entry indices.
//!
//! The algorithm is the hierarchical timing wheel of Varghese and Lauck
//! ("Hashed and Hierarchical Timing Wheels", SOSP 1987), in the shape
//! Caffeine's `TimerWheel` gave it for caches: a few wheels of power-of-two
//! buckets whose spans grow by the size of the wheel below, indexed by
//! absolute time so a bucket is found with a shift and a mask. This file is
//! written from those descriptions; the choices below are its own.
//!
//! # Layout
//!
//! | level | bucket span          | buckets | reaches about |
//! |-------|----------------------|---------|---------------|
//! | 0     | 2^30 ns = 1.07 s     | 64      | 68.7 s        |
//! | 1     | 2^36 ns = 1.15 min   | 64      | 73.3 min      |
//! | 2     | 2^42 ns = 1.22 h     | 32      | 39.1 h        |
//! | 3     | 2^47 ns = 1.63 d     | 4       | 6.5 d         |
//! | 4     | 2^49 ns = 6.5 d      | 64      | 417 d (1.14 y)|
//! | overflow | one bucket        | 1       | the rest of `u64` time (584 y) |
//!
//! plus a *due* bucket for entries whose deadline had already passed when
//! they were scheduled: it is emptied by every [`TimerWheel::advance`], so
//! "deadline <= now" expires at the next advance, not a tick later.
//!
//! An entry goes to the lowest level whose *tick distance* to it is below
//! that level's bucket count: `(deadline >> shift) - (time >> shift) <
//! buckets`. Measuring in ticks (rather than `deadline - time < reach`) means
//! an entry never shares a bucket index with the tick the wheel is in, except
//! on level 0, where the current tick's bucket holds what is due within it.
//!
//! # Advancing
//!
//! Each level remembers the last tick it visited (its *cursor*). When the
//! wheel's time enters a later tick of a level, the buckets from the cursor
//! through the new tick are visited, at most one lap (a jump of more than a
//! lap visits every bucket once). Visiting a bucket detaches its list and
//! looks at each entry's current deadline: due (`deadline <= now`) entries are
//! handed to the caller and leave the wheel; the rest are placed again
//! relative to the new time, which moves them down the levels (cascading) or,
//! if time-to-idle moved their deadline later, to wherever it now belongs.
//! Levels are visited lowest first so entries cascading down are not
//! looked at twice. On level 0 the bucket being left is visited together
//! with the one being entered, so an entry fires at the first advance whose
//! level-0 tick is past its deadline's: **never early, and at most one level-0
//! span (1.07 s) late** whatever level it started on, when every advance
//! completes its work. (The shard checks deadlines on every read, so that
//! lateness only delays reclaiming memory.) [`TimerWheel::fire_current_tick`]
//! removes that lateness on demand, for an explicit "expire everything due
//! now": it also visits the bucket of the tick the wheel is in.
//!
//! # Work budget
//!
//! `advance(now, budget, ..)` touches (fires or re-links) at most `budget`
//! entries and visits at most [`MAX_BUCKET_VISITS`] (231) bucket heads, so a
//! call is O(budget + 231) however far the clock jumped. If the budget runs
//! out, the entries of the bucket in hand that were not looked at yet move to
//! a *resume* list and the level's cursor stays on that bucket;
//! [`Advance::pending`] says so, and the next call (with any `now`) finishes
//! the resume list before looking at anything new, then carries on with the
//! level's next bucket. A clock jump of hours over a million entries is
//! therefore paid in slices of `budget` entries.
//!
//! The resume list is what makes every call progress. Visiting a bucket can
//! put entries straight back into it: on level 0, entries of the current
//! tick that are not due yet; on any level, entries whose time-to-idle
//! deadline moved a whole lap later. Were the untouched rest spliced back
//! into the bucket and the bucket walked again, those re-placed entries
//! would be met first and use up the budget again; with more of them than
//! one budget (thousands of entries written together with one TTL), no call
//! would ever get past them and expiry would stall until their deadline.
//!
//! # Nodes, split deadlines and time to idle
//!
//! The wheel owns one 12-byte [`TimerNode`] per slab index (`prev`, `next`,
//! and the **low 32 bits** of the deadline), in a `Vec` indexed like the
//! slab, grown on demand. The high 32 bits live in the shard's side array
//! of them (`Timers::hi`, 4 bytes per slot; they sat in the slab entry's
//! padding until the entry shrank to its key and value): a reader learns
//! from them alone that a deadline is more than `2^32` ns (4.3 s) away,
//! without touching the wheel's 12-byte node. The wheel asks for the high half
//! through [`Deadlines::hi`] when it needs a whole deadline (visiting a
//! bucket), and whoever reschedules stores it.
//!
//! Lists are circular and doubly linked through `u32` indices; the bucket
//! heads are sentinels addressed by the top [`NUM_BUCKETS`] `u32` values, so
//! unlinking needs no bucket lookup and there is no `unsafe`.
//!
//! Time to idle does not move wheel nodes from readers: the shard keeps each
//! entry's idle deadline apart (readers push it later under the read lock),
//! the wheel holds the earliest deadline the entry could have, and when that
//! comes [`Deadlines::due`] may hand back a later one: the entry is then
//! placed again instead of firing. So the wheel is only ever written under
//! the shard's write lock, and its nodes need no atomics.

use std::mem::size_of;

use super::clock::END_OF_TIME;
use super::NEVER;
use crate::policy::Idx;

/// Level 0 bucket span as a shift: 2^30 ns = 1.07 s.
const LEVEL0_SHIFT: u32 = 30;
/// Level 1 bucket span as a shift: 2^36 ns = 68.7 s (1.15 min).
const LEVEL1_SHIFT: u32 = 36;
/// Level 2 bucket span as a shift: 2^42 ns = 73.3 min (1.22 h).
const LEVEL2_SHIFT: u32 = 42;
/// Level 3 bucket span as a shift: 2^47 ns = 39.1 h (1.63 d).
const LEVEL3_SHIFT: u32 = 47;
/// Level 4 bucket span as a shift: 2^49 ns = 6.52 d.
const LEVEL4_SHIFT: u32 = 49;

/// Buckets on level 0: 64, so it reaches 2^36 ns = 68.7 s.
const LEVEL0_BUCKETS: usize = 64;
/// Buckets on level 1: 64, so it reaches 2^42 ns = 73.3 min.
const LEVEL1_BUCKETS: usize = 64;
/// Buckets on level 2: 32, so it reaches 2^47 ns = 39.1 h.
const LEVEL2_BUCKETS: usize = 32;
/// Buckets on level 3: 4, so it reaches 2^49 ns = 6.52 d.
const LEVEL3_BUCKETS: usize = 4;
/// Buckets on level 4: 64, so it reaches 2^55 ns = 417 d (1.14 years);
/// anything further waits in the overflow bucket.
const LEVEL4_BUCKETS: usize = 64;

/// Number of levels of real buckets (the overflow bucket is not one).
const LEVELS: usize = 5;
/// Levels plus the overflow bucket, which is visited like a one-bucket level
/// on level 4's ticks (every 6.52 d of wheel time).
const RINGS: usize = LEVELS + 1;

/// Per ring: the bucket span as a shift.
const SHIFT: [u32; RINGS] = [
    LEVEL0_SHIFT,
    LEVEL1_SHIFT,
    LEVEL2_SHIFT,
    LEVEL3_SHIFT,
    LEVEL4_SHIFT,
    LEVEL4_SHIFT,
];
/// Per ring: the number of buckets (a power of two).
const BUCKETS: [usize; RINGS] = [
    LEVEL0_BUCKETS,
    LEVEL1_BUCKETS,
    LEVEL2_BUCKETS,
    LEVEL3_BUCKETS,
    LEVEL4_BUCKETS,
    1,
];
/// Index of the bucket for entries that were already due when scheduled.
const DUE: usize = 0;
/// Per ring: index of its first bucket in the bucket array (after `DUE`).
const OFFSET: [usize; RINGS] = {
    let mut out = [0; RINGS];
    let mut next = DUE + 1;
    let mut r = 0;
    while r < RINGS {
        out[r] = next;
        next += BUCKETS[r];
        r += 1;
    }
    out
};
/// Index of the overflow bucket.
const OVERFLOW: usize = OFFSET[LEVELS];
/// Index of the resume list: the entries of a bucket whose visit ran out of
/// budget and that were not looked at yet (see "Work budget").
const RESUME: usize = OVERFLOW + 1;
/// Total bucket heads: 1 due + 64 + 64 + 32 + 4 + 64 + 1 overflow + 1
/// resume = 231.
pub(crate) const NUM_BUCKETS: usize = RESUME + 1;
/// Most bucket heads one [`TimerWheel::advance`] looks at: each one once
/// (the resume list, the due bucket, at most one lap of every level, the
/// overflow bucket).
#[cfg(test)]
pub(crate) const MAX_BUCKET_VISITS: usize = NUM_BUCKETS;

/// A suggested `budget` for [`TimerWheel::advance`] in routine maintenance:
/// 1024 entries, a few tens of microseconds of wheel work (plus whatever the
/// caller does per expired entry).
pub(crate) const DEFAULT_BUDGET: usize = 1024;

/// "Not linked": the `prev`/`next` of a node that is in no bucket.
const NIL: u32 = u32::MAX;
/// Link values from here up to `u32::MAX - 1` name bucket sentinels.
const SENTINEL_BASE: u32 = u32::MAX - NUM_BUCKETS as u32;
/// The largest entry index the wheel accepts: `u32::MAX - 232`.
pub(crate) const MAX_IDX: Idx = SENTINEL_BASE - 1;

// Each level's span is the previous level's reach, so visiting a level-i
// bucket as its tick begins can always move its entries at least one level
// down; and the bucket counts are powers of two, so a mask finds the bucket.
const _: () = {
    let mut r = 0;
    while r + 1 < LEVELS {
        assert!(1u64 << SHIFT[r + 1] == (1u64 << SHIFT[r]) * BUCKETS[r] as u64);
        r += 1;
    }
    let mut r = 0;
    while r < RINGS {
        assert!(BUCKETS[r].is_power_of_two());
        r += 1;
    }
    assert!(NUM_BUCKETS == 231);
};

#[inline]
const fn sentinel(bucket: usize) -> u32 {
    SENTINEL_BASE + bucket as u32
}

/// Per-entry timer state: list links and the low half of the deadline.
/// 12 bytes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimerNode {
    /// Previous node or sentinel in the bucket's list; `NIL` if unlinked.
    prev: u32,
    /// Next node or sentinel in the bucket's list; `NIL` if unlinked.
    next: u32,
    /// The low 32 bits of the deadline (see [`split`]).
    lo: u32,
}

const _: () = assert!(size_of::<TimerNode>() == 12);

const UNLINKED: TimerNode = TimerNode {
    prev: NIL,
    next: NIL,
    lo: u32::MAX,
};

/// A deadline's high and low 32 bits. [`NEVER`] is `(u32::MAX, u32::MAX)`.
#[inline]
pub(crate) const fn split(deadline: u64) -> (u32, u32) {
    ((deadline >> 32) as u32, deadline as u32)
}

/// The deadline whose halves are `hi` and `lo`.
#[inline]
pub(crate) const fn join(hi: u32, lo: u32) -> u64 {
    ((hi as u64) << 32) | lo as u64
}

/// What the wheel needs from the shard while it visits buckets.
pub(crate) trait Deadlines {
    /// The high 32 bits of the deadline of scheduled entry `idx`, as the last
    /// [`TimerWheel::reschedule`] set it.
    fn hi(&self, idx: Idx) -> u32;
    /// The deadline of `idx` (`<= now`) has come and it has left the wheel.
    /// Returns `None` to let it fire, or a later deadline (`> now`, or
    /// [`NEVER`]) to keep it, having stored that deadline's high half
    /// where [`hi`](Self::hi) reads it: the wheel places it again.
    fn due(&mut self, idx: Idx, now: u64) -> Option<u64>;
}

/// The two links of a bucket head (a sentinel of its circular list).
#[derive(Clone, Copy, Debug)]
struct Head {
    prev: u32,
    next: u32,
}

/// What one [`TimerWheel::advance`] call did.
#[must_use = "check `pending` to know whether expiry work was left for later"]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Advance {
    /// Entries fired or re-linked (at most the budget).
    pub(crate) touched: usize,
    /// The budget ran out: call `advance` again to finish (the wheel also
    /// reports it through [`TimerWheel::is_pending`]).
    pub(crate) pending: bool,
}

/// A hierarchical timing wheel over entry indices; see the module docs.
///
/// Times are `u64` nanoseconds on the cache's timeline; [`NEVER`] (`u64::MAX`)
/// means "does not expire" and keeps an entry out of the buckets.
#[derive(Debug)]
pub(crate) struct TimerWheel {
    /// One node per slab index (grown on demand).
    nodes: Vec<TimerNode>,
    /// The bucket heads: `DUE`, the levels' buckets, `OVERFLOW`, `RESUME`.
    heads: Box<[Head; NUM_BUCKETS]>,
    /// The time of the latest advance: placements are relative to it.
    time: u64,
    /// Per ring: the last tick visited; if behind, the tick whose visit ran
    /// out of budget.
    cursor: [u64; RINGS],
    /// Per ring: the visit of the cursor's bucket ran out of budget (its
    /// unvisited rest went to `RESUME`); the ring's visit is unfinished.
    behind: [bool; RINGS],
    /// Per ring, when behind: the cursor's tick was the current one when its
    /// visit was cut short, so its bucket is visited again once time leaves
    /// that tick (as an uninterrupted visit of the current tick would be).
    cut_current: [bool; RINGS],
    /// Linked entries.
    len: usize,
    /// Before this time [`advance`](Self::advance) has nothing to do: set
    /// when an advance finishes, to the start of the next level-0 tick
    /// (no ring's tick changes before it); 0 whenever work may be waiting
    /// (an entry placed in `DUE`, a visit cut short, a `clear`). Lets the
    /// advance every write makes cost one compare.
    quiet_until: u64,
}

impl TimerWheel {
    /// An empty wheel whose time starts at `now`.
    pub(crate) fn new(now: u64) -> Self {
        let now = now.min(END_OF_TIME);
        let mut heads = Box::new(
            [Head {
                prev: NIL,
                next: NIL,
            }; NUM_BUCKETS],
        );
        for (b, h) in heads.iter_mut().enumerate() {
            *h = Head {
                prev: sentinel(b),
                next: sentinel(b),
            };
        }
        Self {
            nodes: Vec::new(),
            heads,
            time: now,
            cursor: std::array::from_fn(|r| now >> SHIFT[r]),
            behind: [false; RINGS],
            cut_current: [false; RINGS],
            quiet_until: 0,
            len: 0,
        }
    }

    /// The wheel's time: the latest `now` given to [`advance`](Self::advance)
    /// (or to [`new`](Self::new)).
    #[inline]
    #[cfg(any(test, fuzzing))]
    pub(crate) fn time(&self) -> u64 {
        self.time
    }

    /// Number of scheduled entries.
    #[inline]
    #[cfg(any(test, fuzzing))]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// True if nothing is scheduled.
    #[inline]
    #[cfg(any(test, fuzzing))]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True if an earlier [`advance`](Self::advance) ran out of budget and
    /// left work to do.
    pub(crate) fn is_pending(&self) -> bool {
        self.behind.iter().any(|&b| b)
            || !self.bucket_is_empty(RESUME)
            || !self.bucket_is_empty(DUE)
            || (0..RINGS).any(|r| self.time >> SHIFT[r] > self.cursor[r])
    }

    /// Heap bytes: 12 per node slot (by capacity) plus the 231 bucket heads
    /// (1,848 bytes).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.nodes.capacity() * size_of::<TimerNode>() + size_of::<[Head; NUM_BUCKETS]>()
    }

    /// Makes room for nodes up to index `slots - 1` without reallocating,
    /// reserving exactly (to keep the node array in step with the slab).
    pub(crate) fn reserve_slots(&mut self, slots: usize) {
        if slots > self.nodes.capacity() {
            self.nodes.reserve_exact(slots - self.nodes.len());
        }
    }

    /// The deadline of `idx` given the high half its owner keeps; [`NEVER`]
    /// if it has none (or no node yet). Callable from readers holding a
    /// shared reference.
    #[inline]
    pub(crate) fn deadline(&self, idx: Idx, hi: u32) -> u64 {
        self.nodes
            .get(idx as usize)
            .map_or(NEVER, |n| join(hi, n.lo))
    }

    /// True if `idx` sits in a bucket (it will fire or be looked at again).
    #[inline]
    pub(crate) fn is_scheduled(&self, idx: Idx) -> bool {
        self.nodes.get(idx as usize).is_some_and(|n| n.prev != NIL)
    }

    /// Schedules an entry that is not scheduled: it fires at the first
    /// advance after `deadline` (at the next advance if it has passed);
    /// [`NEVER`] records the deadline but keeps it out of the buckets. O(1).
    ///
    /// # Panics
    ///
    /// If `idx > MAX_IDX`.
    #[inline]
    #[cfg(test)]
    pub(crate) fn schedule(&mut self, idx: Idx, deadline: u64) {
        debug_assert!(!self.is_scheduled(idx), "entry {idx} already scheduled");
        self.reschedule(idx, deadline);
    }

    /// Gives `idx` a new deadline, moving it if it was scheduled and
    /// scheduling it if not. O(1). The caller keeps the deadline's high half
    /// (see [`split`]) for [`Deadlines::hi`].
    ///
    /// # Panics
    ///
    /// If `idx > MAX_IDX`.
    pub(crate) fn reschedule(&mut self, idx: Idx, deadline: u64) {
        self.node_slot(idx);
        if self.nodes[idx as usize].prev != NIL {
            self.unlink(idx);
        }
        self.nodes[idx as usize].lo = split(deadline).1;
        if deadline != NEVER {
            self.place(idx, deadline);
        }
    }

    /// Moves the deadline of a scheduled entry from `old` (its current one)
    /// to `deadline >= old` without moving its node: it stays in the bucket
    /// `old` called for, and when that bucket is visited (no later than
    /// `old`'s tick) it is placed for `deadline` like any entry not yet due.
    /// So an update that pushes a deadline later costs one store instead of
    /// an unlink and a link (three nodes in other cache lines), and an entry
    /// written many times between visits is moved at most once per visit.
    /// Falls back to [`reschedule`](Self::reschedule) when the entry is not
    /// scheduled or `deadline` is earlier or [`NEVER`]. The caller keeps the
    /// high half, as for `reschedule`.
    pub(crate) fn postpone(&mut self, idx: Idx, old: u64, deadline: u64) {
        match self.nodes.get_mut(idx as usize) {
            Some(node) if node.prev != NIL && deadline >= old && deadline != NEVER => {
                node.lo = split(deadline).1;
            }
            _ => self.reschedule(idx, deadline),
        }
    }

    /// [`postpone`](Self::postpone) for a caller that knows `idx` is
    /// scheduled and `deadline` is finite and no earlier than its current
    /// one: a store of the new low half, with no read of the node.
    #[inline]
    pub(crate) fn postpone_unchecked(&mut self, idx: Idx, deadline: u64) {
        debug_assert!(self.is_scheduled(idx) && deadline != NEVER);
        self.nodes[idx as usize].lo = split(deadline).1;
    }

    /// Takes `idx` out of the wheel (if it was in) and clears the low half of
    /// its deadline (the caller clears the high half). O(1).
    pub(crate) fn deschedule(&mut self, idx: Idx) {
        let Some(node) = self.nodes.get(idx as usize) else {
            return;
        };
        if node.prev != NIL {
            self.unlink(idx);
        }
        self.nodes[idx as usize].lo = u32::MAX;
    }

    /// Drops every node and empties the buckets (the node array keeps its
    /// capacity). The wheel's time is kept.
    pub(crate) fn clear(&mut self) {
        self.nodes.clear();
        for (b, h) in self.heads.iter_mut().enumerate() {
            *h = Head {
                prev: sentinel(b),
                next: sentinel(b),
            };
        }
        self.cursor = std::array::from_fn(|r| self.time >> SHIFT[r]);
        self.behind = [false; RINGS];
        self.cut_current = [false; RINGS];
        self.len = 0;
        self.quiet_until = 0;
    }

    /// Moves the wheel's time to `now` (an earlier `now` is read as the
    /// wheel's current time) and expires what is due: `d.due(idx, now)` is
    /// called once for each entry whose deadline is `<= now`, after the entry
    /// has left the wheel (its node keeps the deadline); it fires unless that
    /// returns a later deadline, for which it is placed again. Entries not
    /// yet due are cascaded to lower levels.
    ///
    /// Touches at most `budget` entries and visits at most
    /// [`MAX_BUCKET_VISITS`] bucket heads. Work left over is reported in
    /// [`Advance::pending`] and resumed first by the next call. With a budget
    /// big enough to finish, every entry with `deadline <= now` that was due
    /// when scheduled, or whose deadline's level-0 tick (2^30 ns) is before
    /// `now`'s, has fired.
    ///
    /// **Locking behaviour:** `d` runs while the wheel is mutably borrowed
    /// (under the shard's write lock); it cannot reach the wheel. It should
    /// not panic: if it does, the rest of the bucket in hand is lost to the
    /// wheel (those entries never fire and `validate` fails).
    pub(crate) fn advance(&mut self, now: u64, budget: usize, d: &mut impl Deadlines) -> Advance {
        if self.is_quiet(now) {
            return Advance {
                touched: 0,
                pending: false,
            };
        }
        let now = now.min(END_OF_TIME);
        if now > self.time {
            self.time = now;
        }
        let mut left = budget;
        let mut done = self.visit(RESUME, &mut left, d) && self.visit(DUE, &mut left, d);
        let mut r = 0;
        while done && r < RINGS {
            done = self.visit_ring(r, &mut left, d);
            r += 1;
        }
        self.quiet_until = if done {
            // Wraps to 0 (never quiet) in the last tick before the end of time.
            ((self.time >> SHIFT[0]).wrapping_add(1)).wrapping_shl(SHIFT[0])
        } else {
            0
        };
        Advance {
            touched: budget - left,
            pending: !done,
        }
    }

    /// True if [`advance`](Self::advance) at `now` would find nothing to do
    /// (the last advance finished and `now` is in the same level-0 tick, and
    /// nothing has been placed in `DUE` since); then moves the wheel's time
    /// to `now` as `advance` would. One compare: every write calls it.
    #[inline]
    pub(crate) fn is_quiet(&mut self, now: u64) -> bool {
        if now >= self.quiet_until {
            return false;
        }
        if now > self.time {
            self.time = now;
        }
        debug_assert!(!self.is_pending(), "quiet wheel with work pending");
        true
    }

    /// Fires what is due in the bucket of the wheel's current level-0 tick,
    /// which [`advance`](Self::advance) leaves until time moves past that
    /// tick (up to 1.07 s): after a completed `advance(now)`, this makes
    /// every entry with `deadline <= now` fire. Entries of the tick that are
    /// not due stay where they are, so this costs a walk of the bucket; it
    /// is meant for explicit maintenance, not for every operation.
    ///
    /// Does nothing while an earlier call is pending (finish that with
    /// `advance` first). Touches at most `budget` entries; if that is not
    /// enough the rest is left for the next `advance`, as `pending` says.
    pub(crate) fn fire_current_tick(&mut self, budget: usize, d: &mut impl Deadlines) -> Advance {
        if self.is_pending() {
            return Advance {
                touched: 0,
                pending: true,
            };
        }
        let tick = self.time >> SHIFT[0];
        let bucket = OFFSET[0] + (tick as usize & (BUCKETS[0] - 1));
        let mut left = budget;
        let done = self.visit(bucket, &mut left, d);
        self.quiet_until = 0; // conservative: the next advance looks again
        if !done {
            // The rest is in RESUME; the ring is behind on its current tick.
            self.cursor[0] = tick;
            self.behind[0] = true;
            self.cut_current[0] = true;
        }
        Advance {
            touched: budget - left,
            pending: !done,
        }
    }

    /// Recounts every list and checks every link.
    ///
    /// # Panics
    ///
    /// On any inconsistency: a broken link, an entry in two buckets or
    /// reached twice, a count that does not match, an unlinked node with a
    /// stray link, a cursor ahead of the wheel's time.
    pub(crate) fn validate(&self) {
        let mut seen = vec![false; self.nodes.len()];
        let mut count = 0usize;
        for (b, head) in self.heads.iter().enumerate() {
            let s = sentinel(b);
            let mut prev = s;
            let mut cur = head.next;
            while cur != s {
                assert!(
                    (cur as usize) < self.nodes.len(),
                    "bucket {b}: link {cur} is neither a node nor its sentinel"
                );
                assert!(!seen[cur as usize], "bucket {b}: node {cur} reached twice");
                seen[cur as usize] = true;
                let node = &self.nodes[cur as usize];
                assert_eq!(node.prev, prev, "bucket {b}: node {cur} has a bad prev");
                count += 1;
                prev = cur;
                cur = node.next;
            }
            assert_eq!(head.prev, prev, "bucket {b}: head.prev is not the tail");
        }
        assert_eq!(count, self.len, "linked nodes vs len");
        for (i, node) in self.nodes.iter().enumerate() {
            if !seen[i] {
                assert!(
                    node.prev == NIL && node.next == NIL,
                    "node {i} is in no bucket but has links"
                );
            }
        }
        for (r, (&cursor, shift)) in self.cursor.iter().zip(SHIFT).enumerate() {
            assert!(
                cursor <= self.time >> shift,
                "ring {r}: cursor ahead of time"
            );
            assert!(
                self.behind[r] || !self.cut_current[r],
                "ring {r}: stale cut"
            );
        }
    }

    // ---- internals ----

    /// Makes sure `idx` has a node.
    #[inline]
    fn node_slot(&mut self, idx: Idx) {
        assert!(
            idx <= MAX_IDX,
            "entry index {idx} above the timer wheel's limit"
        );
        let i = idx as usize;
        if i >= self.nodes.len() {
            self.nodes.resize(i + 1, UNLINKED);
        }
    }

    #[inline]
    fn bucket_is_empty(&self, bucket: usize) -> bool {
        self.heads[bucket].next == sentinel(bucket)
    }

    /// The bucket for `deadline` (not `NEVER`) at the current time.
    #[inline]
    fn bucket_for(&self, deadline: u64) -> usize {
        if deadline <= self.time {
            return DUE;
        }
        let mut r = 0;
        while r < LEVELS {
            let tick = deadline >> SHIFT[r];
            if tick - (self.time >> SHIFT[r]) < BUCKETS[r] as u64 {
                return OFFSET[r] + (tick as usize & (BUCKETS[r] - 1));
            }
            r += 1;
        }
        OVERFLOW
    }

    /// Links unlinked `idx` into the bucket its deadline calls for.
    #[inline]
    fn place(&mut self, idx: Idx, deadline: u64) {
        let bucket = self.bucket_for(deadline);
        self.push_back(bucket, idx);
    }

    #[inline]
    fn set_next(&mut self, link: u32, to: u32) {
        if link >= SENTINEL_BASE {
            self.heads[(link - SENTINEL_BASE) as usize].next = to;
        } else {
            self.nodes[link as usize].next = to;
        }
    }

    #[inline]
    fn set_prev(&mut self, link: u32, to: u32) {
        if link >= SENTINEL_BASE {
            self.heads[(link - SENTINEL_BASE) as usize].prev = to;
        } else {
            self.nodes[link as usize].prev = to;
        }
    }

    #[inline]
    fn push_back(&mut self, bucket: usize, idx: Idx) {
        if bucket == DUE {
            self.quiet_until = 0;
        }
        let s = sentinel(bucket);
        let tail = self.heads[bucket].prev;
        let node = &mut self.nodes[idx as usize];
        node.prev = tail;
        node.next = s;
        self.set_next(tail, idx);
        self.heads[bucket].prev = idx;
        self.len += 1;
    }

    #[inline]
    fn unlink(&mut self, idx: Idx) {
        let node = &mut self.nodes[idx as usize];
        let (prev, next) = (node.prev, node.next);
        node.prev = NIL;
        node.next = NIL;
        self.set_next(prev, next);
        self.set_prev(next, prev);
        self.len -= 1;
    }

    /// Visits ring `r`'s buckets from its cursor through the current tick
    /// (at most one lap). Returns false if the budget ran out. Call only with
    /// `RESUME` empty: a cut-short visit resumes from there.
    fn visit_ring(&mut self, r: usize, left: &mut usize, d: &mut impl Deadlines) -> bool {
        let hi = self.time >> SHIFT[r];
        let mut tick = self.cursor[r];
        if self.behind[r] {
            // The cursor's bucket was visited up to the budget and the rest
            // finished from RESUME: it is done, unless it was the current
            // tick then and time has left it since.
            self.behind[r] = false;
            let revisit = std::mem::take(&mut self.cut_current[r]);
            if tick == hi {
                return true;
            }
            if !revisit {
                tick += 1;
            }
        } else if hi <= tick {
            return true;
        }
        let lap = BUCKETS[r] as u64;
        if hi - tick >= lap {
            // More than a lap: the last `lap` ticks name every bucket once.
            tick = hi - (lap - 1);
        }
        while tick <= hi {
            let bucket = OFFSET[r] + (tick & (lap - 1)) as usize;
            if !self.visit(bucket, left, d) {
                self.cursor[r] = tick;
                self.behind[r] = true;
                self.cut_current[r] = tick == hi;
                return false;
            }
            tick += 1;
        }
        self.cursor[r] = hi;
        true
    }

    /// Empties `bucket`: fires what is due, places the rest again. Returns
    /// false, with the untouched rest moved to `RESUME`, if the budget ran
    /// out. `RESUME` must be empty unless it is the bucket visited.
    fn visit(&mut self, bucket: usize, left: &mut usize, d: &mut impl Deadlines) -> bool {
        let s = sentinel(bucket);
        let Head {
            next: first,
            prev: last,
        } = self.heads[bucket];
        if first == s {
            return true;
        }
        // Detach the chain first..=last: entries placed back into this bucket
        // while we walk it land on the fresh list and are not seen again.
        self.heads[bucket] = Head { prev: s, next: s };
        let mut cur = first;
        loop {
            if *left == 0 {
                // Move cur..=last to RESUME (empty: nothing is ever placed
                // there), not back into this bucket, where entries placed
                // again by this visit may already sit.
                debug_assert!(self.bucket_is_empty(RESUME));
                let r = sentinel(RESUME);
                self.nodes[cur as usize].prev = r;
                self.nodes[last as usize].next = r;
                self.heads[RESUME] = Head {
                    prev: last,
                    next: cur,
                };
                return false;
            }
            *left -= 1;
            let node = &mut self.nodes[cur as usize];
            let next = node.next;
            let deadline = join(d.hi(cur), node.lo);
            node.prev = NIL;
            node.next = NIL;
            self.len -= 1;
            if deadline <= self.time {
                if let Some(later) = d.due(cur, self.time) {
                    debug_assert!(later > self.time, "due() kept {cur} with a past deadline");
                    self.nodes[cur as usize].lo = split(later).1;
                    if later != NEVER {
                        self.place(cur, later);
                    }
                }
            } else if deadline != NEVER {
                self.place(cur, deadline);
            }
            if cur == last {
                return true;
            }
            cur = next;
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;
    use std::ops::{Deref, DerefMut};

    /// The shard's side of the wheel, for tests: the high halves of the
    /// deadlines, time-to-idle deadlines set apart (as the shard keeps them),
    /// and what fired.
    #[derive(Default)]
    struct Halves {
        hi: Vec<u32>,
        later: BTreeMap<Idx, u64>,
        fired: Vec<Idx>,
    }

    impl Halves {
        fn set_hi(&mut self, idx: Idx, deadline: u64) {
            let i = idx as usize;
            if i >= self.hi.len() {
                self.hi.resize(i + 1, u32::MAX);
            }
            self.hi[i] = split(deadline).0;
        }
    }

    impl Deadlines for Halves {
        fn hi(&self, idx: Idx) -> u32 {
            self.hi[idx as usize]
        }
        fn due(&mut self, idx: Idx, now: u64) -> Option<u64> {
            if let Some(later) = self.later.remove(&idx) {
                if later > now {
                    self.set_hi(idx, later);
                    return Some(later);
                }
            }
            self.fired.push(idx);
            None
        }
    }

    /// A wheel with the old whole-deadline API over [`Halves`].
    struct TestWheel {
        wheel: TimerWheel,
        halves: Halves,
    }

    impl Deref for TestWheel {
        type Target = TimerWheel;
        fn deref(&self) -> &TimerWheel {
            &self.wheel
        }
    }

    impl DerefMut for TestWheel {
        fn deref_mut(&mut self) -> &mut TimerWheel {
            &mut self.wheel
        }
    }

    impl TestWheel {
        fn new(now: u64) -> Self {
            Self {
                wheel: TimerWheel::new(now),
                halves: Halves::default(),
            }
        }
        fn schedule(&mut self, idx: Idx, deadline: u64) {
            self.wheel.schedule(idx, deadline);
            self.halves.later.remove(&idx);
            self.halves.set_hi(idx, deadline);
        }
        fn reschedule(&mut self, idx: Idx, deadline: u64) {
            self.wheel.reschedule(idx, deadline);
            self.halves.later.remove(&idx);
            self.halves.set_hi(idx, deadline);
        }
        fn deschedule(&mut self, idx: Idx) {
            self.wheel.deschedule(idx);
            self.halves.later.remove(&idx);
            if (idx as usize) < self.halves.hi.len() {
                self.halves.set_hi(idx, NEVER);
            }
        }
        fn postpone(&mut self, idx: Idx, deadline: u64) {
            let old = self.deadline(idx);
            self.wheel.postpone(idx, old, deadline);
            self.halves.later.remove(&idx);
            self.halves.set_hi(idx, deadline);
        }
        /// Time to idle, the shard's way: the wheel keeps the old deadline
        /// and learns of this one when that comes.
        fn set_deadline_relaxed(&mut self, idx: Idx, deadline: u64) {
            self.halves.later.insert(idx, deadline);
        }
        fn deadline(&self, idx: Idx) -> u64 {
            if let Some(&later) = self.halves.later.get(&idx) {
                return later;
            }
            let hi = self
                .halves
                .hi
                .get(idx as usize)
                .copied()
                .unwrap_or(u32::MAX);
            self.wheel.deadline(idx, hi)
        }
        fn clear(&mut self) {
            self.wheel.clear();
            self.halves = Halves::default();
        }
        fn advance(&mut self, now: u64, budget: usize, f: impl FnMut(Idx)) -> Advance {
            let a = self.wheel.advance(now, budget, &mut self.halves);
            self.halves.fired.drain(..).for_each(f);
            a
        }
        fn fire_current_tick(&mut self, budget: usize, f: impl FnMut(Idx)) -> Advance {
            let a = self.wheel.fire_current_tick(budget, &mut self.halves);
            self.halves.fired.drain(..).for_each(f);
            a
        }
    }

    const SEC: u64 = 1_000_000_000;
    const MIN: u64 = 60 * SEC;
    const HOUR: u64 = 60 * MIN;
    const DAY: u64 = 24 * HOUR;
    const YEAR: u64 = 365 * DAY;
    /// The lateness bound: one level-0 span.
    const TICK0: u64 = 1 << LEVEL0_SHIFT;

    /// Advances with an unlimited budget and returns what fired, sorted.
    fn run(w: &mut TestWheel, now: u64) -> Vec<Idx> {
        let mut fired = Vec::new();
        let a = w.advance(now, usize::MAX, |i| fired.push(i));
        assert!(!a.pending);
        assert!(!w.is_pending());
        w.validate();
        fired.sort_unstable();
        fired
    }

    #[test]
    fn layout_constants() {
        assert_eq!(size_of::<TimerNode>(), 12);
        assert_eq!(OFFSET, [1, 65, 129, 161, 165, 229]);
        assert_eq!(OVERFLOW, 229);
        assert_eq!(MAX_IDX, u32::MAX - 232);
        assert_eq!(MAX_BUCKET_VISITS, 231);
        let w = TestWheel::new(0);
        assert_eq!(w.heap_bytes(), 231 * 8);
    }

    #[test]
    fn fires_not_before_deadline_and_within_a_tick() {
        let start = 123_456_789;
        let mut w = TestWheel::new(start);
        let d = start + 5 * SEC + 17;
        w.schedule(7, d);
        assert_eq!((w.len(), w.deadline(7)), (1, d));
        assert!(w.is_scheduled(7));
        let mut t = start;
        while t < d {
            assert!(run(&mut w, t).is_empty(), "fired early at {t}");
            t += 10_000_000;
        }
        let mut fired_at = None;
        while fired_at.is_none() {
            if run(&mut w, t) == [7] {
                fired_at = Some(t);
            }
            t += 10_000_000;
        }
        let at = fired_at.unwrap();
        assert!(at >= d && at < d + TICK0, "fired at {at}, deadline {d}");
        assert!(!w.is_scheduled(7));
        assert_eq!(w.deadline(7), d, "a fired node keeps its deadline");
        assert!(w.is_empty());
    }

    #[test]
    fn passed_deadline_fires_at_next_advance_without_a_tick() {
        let mut w = TestWheel::new(10 * SEC);
        w.schedule(1, 10 * SEC); // deadline == now
        w.schedule(2, 3 * SEC); // in the past
        w.schedule(3, 10 * SEC + 1);
        assert_eq!(run(&mut w, 10 * SEC), [1, 2]);
        assert_eq!(run(&mut w, 10 * SEC + 1), Vec::<Idx>::new());
        assert!(w.is_scheduled(3));
    }

    #[test]
    fn never_is_not_scheduled_and_deschedule_cancels() {
        let mut w = TestWheel::new(0);
        w.schedule(0, NEVER);
        assert!(!w.is_scheduled(0));
        assert_eq!((w.len(), w.deadline(0)), (0, NEVER));
        w.schedule(1, SEC);
        w.schedule(2, 2 * SEC);
        w.deschedule(1);
        w.deschedule(99); // no node: nothing happens
        assert_eq!((w.len(), w.deadline(1)), (1, NEVER));
        w.validate();
        assert_eq!(run(&mut w, YEAR), [2]);
    }

    #[test]
    fn reschedule_moves_both_ways() {
        let mut w = TestWheel::new(0);
        w.schedule(1, HOUR);
        w.schedule(2, SEC);
        w.reschedule(1, 2 * SEC);
        w.reschedule(2, DAY);
        w.reschedule(3, 3 * SEC); // unscheduled: schedules
        w.validate();
        assert_eq!(run(&mut w, 5 * SEC), [1, 3]);
        assert_eq!(run(&mut w, DAY - 1), Vec::<Idx>::new());
        assert_eq!(run(&mut w, DAY + TICK0), [2]);
    }

    #[test]
    fn relaxed_extension_reschedules_instead_of_firing() {
        let mut w = TestWheel::new(0);
        w.schedule(4, 2 * SEC);
        w.schedule(5, 2 * SEC);
        w.set_deadline_relaxed(4, 90 * MIN); // time-to-idle pushed it out
        assert_eq!(w.deadline(4), 90 * MIN);
        assert_eq!(run(&mut w, 4 * SEC), [5]);
        assert!(w.is_scheduled(4));
        assert_eq!(run(&mut w, 90 * MIN - 1), Vec::<Idx>::new());
        assert_eq!(run(&mut w, 90 * MIN + TICK0), [4]);
        // A due entry whose deadline moves later leaves the due bucket.
        w.schedule(6, w.time());
        w.set_deadline_relaxed(6, w.time() + MIN);
        let t = w.time();
        assert_eq!(run(&mut w, t), Vec::<Idx>::new());
        // NEVER drops it out at the next visit, without firing.
        w.set_deadline_relaxed(6, NEVER);
        assert_eq!(run(&mut w, t + 2 * MIN), Vec::<Idx>::new());
        assert!(w.is_empty());
    }

    #[test]
    fn postpone_leaves_the_node_and_still_fires_on_time() {
        let mut w = TestWheel::new(0);
        w.schedule(3, 5 * SEC);
        w.schedule(4, 5 * SEC);
        // Later: the node stays in the 5 s bucket, which re-places it.
        w.postpone(3, 2 * MIN + 7);
        assert_eq!(w.deadline(3), 2 * MIN + 7);
        // Earlier than before: moved at once.
        w.postpone(4, 2 * SEC);
        assert_eq!(run(&mut w, 3 * SEC), [4]);
        assert_eq!(run(&mut w, 6 * SEC), Vec::<Idx>::new());
        assert!(w.is_scheduled(3));
        assert_eq!(run(&mut w, 2 * MIN), Vec::<Idx>::new());
        assert_eq!(run(&mut w, 2 * MIN + TICK0 + SEC), [3]);
        // Unscheduled or to NEVER: a plain reschedule.
        w.postpone(5, MIN);
        assert!(w.is_scheduled(5));
        w.postpone(5, NEVER);
        assert!(!w.is_scheduled(5));
        assert_eq!(run(&mut w, YEAR), Vec::<Idx>::new());
    }

    #[test]
    fn quiet_until_the_next_tick_unless_something_is_due() {
        let mut w = TestWheel::new(0);
        assert!(!w.is_quiet(1), "no advance has finished yet");
        w.schedule(1, 5 * SEC);
        assert_eq!(run(&mut w, 1), Vec::<Idx>::new());
        assert!(w.is_quiet(TICK0 - 1));
        assert!(!w.is_quiet(TICK0), "a new level-0 tick");
        assert_eq!(run(&mut w, TICK0 + 1), Vec::<Idx>::new());
        assert!(w.is_quiet(TICK0 + 2));
        // A deadline already past goes to DUE: the next advance must run.
        w.schedule(2, TICK0);
        assert!(!w.is_quiet(TICK0 + 3));
        assert_eq!(run(&mut w, TICK0 + 3), [2]);
        assert!(w.is_quiet(TICK0 + 4));
        // Explicit maintenance and `clear` make the next advance look again.
        let mut fired = Vec::new();
        assert!(!w.fire_current_tick(usize::MAX, |i| fired.push(i)).pending);
        assert!(fired.is_empty());
        assert!(!w.is_quiet(TICK0 + 5));
        assert_eq!(run(&mut w, TICK0 + 5), Vec::<Idx>::new());
        w.clear();
        assert!(!w.is_quiet(TICK0 + 6));
        // Within a tick the wheel stays quiet even past a deadline in that
        // tick's bucket (already visited, as `advance` would leave it:
        // readers see the entry as expired, `fire_current_tick` removes it);
        // it fires once the tick turns.
        w.schedule(3, 2 * TICK0 + 7);
        assert_eq!(run(&mut w, 2 * TICK0 + 1), Vec::<Idx>::new());
        assert!(w.is_quiet(2 * TICK0 + 8));
        assert!(w.is_quiet(3 * TICK0 - 1));
        assert_eq!(run(&mut w, 3 * TICK0), [3]);
    }

    #[test]
    fn cascades_through_every_level_and_overflow() {
        let start = 987_654_321_987;
        let mut w = TestWheel::new(start);
        let offsets = [
            SEC / 2,
            40 * SEC,
            30 * MIN,
            20 * HOUR,
            4 * DAY,
            200 * DAY,
            3 * YEAR,
            100 * YEAR,
        ];
        for (i, off) in offsets.iter().enumerate() {
            w.schedule(i as Idx, start + off);
        }
        // Walk time in uneven steps; each entry must fire within a tick.
        let mut t = start;
        let mut fired_at = BTreeMap::new();
        let mut step = SEC / 3;
        while fired_at.len() < offsets.len() {
            t += step;
            step = (step * 5 / 4).min(17 * HOUR);
            for i in run(&mut w, t) {
                fired_at.insert(i, t);
            }
            // Near a deadline, step finely to measure lateness.
            if let Some(next) = offsets.iter().map(|o| start + o).filter(|&d| d > t).min() {
                if next - t < step {
                    step = (next - t).max(SEC / 3);
                }
            }
        }
        for (i, off) in offsets.iter().enumerate() {
            let d = start + off;
            let at = fired_at[&(i as Idx)];
            assert!(at >= d, "entry {i} fired early");
            assert!(
                at < d + TICK0 + SEC / 3 + 1,
                "entry {i} late: {} ns",
                at - d
            );
        }
    }

    #[test]
    fn far_future_in_one_jump() {
        let mut w = TestWheel::new(0);
        w.schedule(1, 500 * YEAR);
        w.schedule(2, END_OF_TIME);
        assert_eq!(run(&mut w, 499 * YEAR), Vec::<Idx>::new());
        assert_eq!(run(&mut w, 500 * YEAR), [1]);
        assert_eq!(
            run(&mut w, u64::MAX),
            [2],
            "NEVER as now reads as END_OF_TIME"
        );
        assert_eq!(w.time(), END_OF_TIME);
    }

    #[test]
    fn time_does_not_go_backwards() {
        let mut w = TestWheel::new(HOUR);
        w.schedule(1, HOUR + SEC);
        assert_eq!(run(&mut w, 0), Vec::<Idx>::new());
        assert_eq!(w.time(), HOUR);
        w.schedule(2, HOUR / 2); // in the past relative to the wheel
        assert_eq!(run(&mut w, 0), [2]);
        assert_eq!(run(&mut w, HOUR + 2 * SEC + TICK0), [1]);
    }

    #[test]
    fn budget_spreads_an_hours_long_jump() {
        const N: u32 = 100_000;
        const BUDGET: usize = DEFAULT_BUDGET;
        let mut w = TestWheel::new(0);
        for i in 0..N {
            // Spread over 5 hours, in every level up to 2.
            w.schedule(i, 1 + (i as u64 * 7919 % N as u64) * (5 * HOUR / N as u64));
        }
        w.validate();
        let mut fired = vec![0u8; N as usize];
        let mut calls = 0;
        let now = 6 * HOUR;
        loop {
            calls += 1;
            let a = w.advance(now, BUDGET, |i| fired[i as usize] += 1);
            assert!(a.touched <= BUDGET);
            w.validate();
            assert_eq!(a.pending, w.is_pending());
            if !a.pending {
                break;
            }
            assert_eq!(a.touched, BUDGET, "a pending call used its whole budget");
        }
        assert!(fired.iter().all(|&f| f == 1));
        assert!(w.is_empty());
        // Each entry is touched at most once per level it passes through.
        assert!(calls <= 3 * N as usize / BUDGET + 2, "{calls} calls");
    }

    #[test]
    fn zero_budget_only_moves_time() {
        let mut w = TestWheel::new(0);
        w.schedule(1, SEC);
        let a = w.advance(10 * SEC, 0, |_| panic!("nothing may fire"));
        assert_eq!(
            a,
            Advance {
                touched: 0,
                pending: true
            }
        );
        assert!(w.is_pending());
        // New schedules are relative to the new time and still work.
        w.schedule(2, 11 * SEC);
        assert_eq!(run(&mut w, 10 * SEC), [1]);
        assert_eq!(run(&mut w, 12 * SEC + TICK0), [2]);
        // With nothing scheduled, no call is pending.
        let a = w.advance(DAY, 0, |_| unreachable!());
        assert!(!a.pending);
    }

    #[test]
    fn clear_and_heap_bytes() {
        let mut w = TestWheel::new(0);
        w.reserve_slots(100);
        assert_eq!(w.heap_bytes(), 100 * 12 + 231 * 8);
        for i in 0..100 {
            w.schedule(i, (i as u64 + 1) * MIN);
        }
        assert_eq!(w.heap_bytes(), 100 * 12 + 231 * 8);
        w.clear();
        w.validate();
        assert_eq!((w.len(), w.deadline(5)), (0, NEVER));
        assert_eq!(run(&mut w, YEAR), Vec::<Idx>::new());
        w.schedule(5, YEAR + SEC);
        assert_eq!(run(&mut w, YEAR + SEC), [5]);
    }

    #[test]
    #[should_panic(expected = "above the timer wheel's limit")]
    fn rejects_sentinel_indices() {
        TestWheel::new(0).schedule(MAX_IDX + 1, SEC);
    }

    #[test]
    #[should_panic(expected = "reached twice")]
    fn validate_catches_a_corrupt_list() {
        let mut w = TestWheel::new(0);
        w.schedule(0, SEC);
        w.schedule(1, SEC);
        w.nodes[1].next = 0; // a cycle
        w.validate();
    }

    #[test]
    fn a_crowded_current_tick_does_not_stall_a_small_budget() {
        // 5,000 entries due mid-tick; the wheel enters the tick first. Each
        // budgeted call must make progress past the entries it put back.
        const N: u32 = 5_000;
        let mut w = TestWheel::new(0);
        let d = 10 * SEC + SEC / 2; // tick 9 (9.78)
        for i in 0..N {
            w.schedule(i, d);
        }
        let mut calls = 0;
        while w.advance(10 * SEC, 100, |_| panic!("not due yet")).pending {
            calls += 1;
            w.validate();
            assert!(calls <= N as usize / 100 + 2, "stalled after {calls} calls");
        }
        assert_eq!(w.len(), N as usize);
        // fire_current_tick, budgeted: nothing is due, and it finishes.
        let mut calls = 0;
        let mut a = w.fire_current_tick(100, |_| panic!("not due yet"));
        while a.pending {
            calls += 1;
            assert!(calls <= N as usize / 100 + 2, "stalled after {calls} calls");
            a = w.advance(10 * SEC, 100, |_| panic!("not due yet"));
        }
        // Now due, still inside the same tick: advance alone waits for the
        // tick to end; fire_current_tick fires them, in budgeted slices.
        assert!(run(&mut w, d).is_empty());
        let mut fired = vec![0u8; N as usize];
        let mut a = w.fire_current_tick(1000, |i| fired[i as usize] += 1);
        while a.pending {
            a = w.advance(d, 1000, |i| fired[i as usize] += 1);
        }
        w.validate();
        assert!(fired.iter().all(|&f| f == 1));
        assert!(w.is_empty());
    }

    #[test]
    fn an_interrupted_current_tick_is_revisited_when_time_leaves_it() {
        let mut w = TestWheel::new(0);
        for i in 0..10 {
            w.schedule(i, SEC / 2 + u64::from(i)); // tick 0, not due at 0.1 s
        }
        let a = w.advance(SEC / 10, 4, |_| panic!("not due"));
        assert!(!a.pending, "the current tick is not visited on entry");
        // Cut the current tick's visit short, then leave the tick.
        assert!(w.fire_current_tick(4, |_| panic!("not due")).pending);
        assert_eq!(run(&mut w, 2 * TICK0).len(), 10);
    }

    // ---- model test ----

    /// How far from the wheel's time an operation reaches.
    #[derive(Clone, Copy, Debug)]
    enum Reach {
        /// Already passed, by up to this much.
        Past(u64),
        /// This far ahead (0 = now).
        Ahead(u64),
        /// [`NEVER`].
        Never,
    }

    fn reach() -> impl Strategy<Value = Reach> {
        prop_oneof![
            1 => (0..2 * MIN).prop_map(Reach::Past),
            1 => Just(Reach::Ahead(0)),
            4 => (0..4 * SEC).prop_map(Reach::Ahead),
            3 => (0..2 * HOUR).prop_map(Reach::Ahead),
            2 => (0..10 * DAY).prop_map(Reach::Ahead),
            1 => (0..3 * YEAR).prop_map(Reach::Ahead),
            1 => (0..u64::MAX / 2).prop_map(Reach::Ahead),
            1 => Just(Reach::Never),
        ]
    }

    #[derive(Clone, Copy, Debug)]
    enum Op {
        Schedule(Idx, Reach),
        Reschedule(Idx, Reach),
        Deschedule(Idx),
        /// Time-to-idle: move a scheduled entry's deadline later by this much.
        Extend(Idx, u64),
        /// Move time forward (0 allowed) with this budget (None = unlimited).
        Advance(u64, Option<usize>),
        /// `fire_current_tick` with this budget (None = unlimited).
        FireCurrent(Option<usize>),
    }

    fn op() -> impl Strategy<Value = Op> {
        let idx = 0..40u32;
        prop_oneof![
            4 => (idx.clone(), reach()).prop_map(|(i, r)| Op::Schedule(i, r)),
            2 => (idx.clone(), reach()).prop_map(|(i, r)| Op::Reschedule(i, r)),
            1 => idx.clone().prop_map(Op::Deschedule),
            2 => (idx, prop_oneof![0..10 * SEC, 0..3 * DAY]).prop_map(|(i, by)| Op::Extend(i, by)),
            4 => (
                prop_oneof![
                    2 => 0..3 * SEC,
                    2 => 0..5 * MIN,
                    1 => 0..30 * HOUR,
                    1 => 0..400 * DAY,
                    1 => Just(0u64),
                ],
                prop_oneof![2 => Just(None), 1 => (0..6usize).prop_map(Some)],
            )
                .prop_map(|(by, b)| Op::Advance(by, b)),
            1 => prop_oneof![2 => Just(None), 1 => (0..6usize).prop_map(Some)]
                .prop_map(Op::FireCurrent),
        ]
    }

    /// The reference: scheduled entries and their current deadlines, plus
    /// which ones were already due when put in (they must go at the next
    /// completed advance).
    #[derive(Default)]
    struct Model {
        deadline: BTreeMap<Idx, u64>,
        due: BTreeMap<Idx, ()>,
    }

    fn deadline_for(time: u64, r: Reach) -> u64 {
        match r {
            Reach::Past(by) => time.saturating_sub(by),
            Reach::Ahead(by) => time.saturating_add(by).min(END_OF_TIME),
            Reach::Never => NEVER,
        }
    }

    impl Model {
        fn set(&mut self, idx: Idx, d: u64, time: u64) {
            self.due.remove(&idx);
            if d == NEVER {
                self.deadline.remove(&idx);
            } else {
                self.deadline.insert(idx, d);
                if d <= time {
                    self.due.insert(idx, ());
                }
            }
        }
    }

    /// Advances the wheel by `by` and checks what fired against the model;
    /// fired entries are then descheduled, as the shard's removal would.
    fn advance_and_check(
        w: &mut TestWheel,
        m: &mut Model,
        by: u64,
        budget: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let now = w.time().saturating_add(by);
        let mut fired = Vec::new();
        let a = w.advance(now, budget.unwrap_or(usize::MAX), |i| fired.push(i));
        let time = w.time();
        prop_assert!(a.touched <= budget.unwrap_or(usize::MAX));
        prop_assert_eq!(a.pending, w.is_pending());
        check_fired(w, m, fired)?;
        if !a.pending {
            // Nothing left that was due when scheduled, nor any entry whose
            // level-0 tick is behind time's: at most one level-0 span late.
            prop_assert!(m.due.is_empty(), "due entries left: {:?}", m.due);
            for (&i, &d) in &m.deadline {
                prop_assert!(
                    d >> LEVEL0_SHIFT >= time >> LEVEL0_SHIFT,
                    "{} (deadline {}) still waiting at {}",
                    i,
                    d,
                    time
                );
            }
        }
        Ok(())
    }

    /// Checks that `fired` fired exactly once and never early, then
    /// deschedules them, as the shard's removal would.
    fn check_fired(w: &mut TestWheel, m: &mut Model, fired: Vec<Idx>) -> Result<(), TestCaseError> {
        for i in fired {
            let d = m.deadline.remove(&i);
            prop_assert!(d.is_some(), "{} fired but was not scheduled", i);
            prop_assert!(d.unwrap() <= w.time(), "{} fired early", i);
            prop_assert!(!w.is_scheduled(i));
            m.due.remove(&i);
            w.deschedule(i);
        }
        Ok(())
    }

    /// `fire_current_tick`: after a completed call that found nothing
    /// pending, nothing due is left at all (no level-0 lateness).
    fn fire_current_and_check(
        w: &mut TestWheel,
        m: &mut Model,
        budget: Option<usize>,
    ) -> Result<(), TestCaseError> {
        let was_pending = w.is_pending();
        let mut fired = Vec::new();
        let a = w.fire_current_tick(budget.unwrap_or(usize::MAX), |i| fired.push(i));
        prop_assert!(a.touched <= budget.unwrap_or(usize::MAX));
        prop_assert_eq!(a.pending, w.is_pending());
        if was_pending {
            prop_assert_eq!(a.touched, 0);
        }
        check_fired(w, m, fired)?;
        if !was_pending && !a.pending {
            let time = w.time();
            for (&i, &d) in &m.deadline {
                prop_assert!(d > time, "{} (deadline {}) still waiting at {}", i, d, time);
            }
        }
        Ok(())
    }

    /// Applies `ops` to a wheel and the model and checks them against each
    /// other after every step.
    fn check(start: u64, ops: &[Op]) -> Result<(), TestCaseError> {
        let mut w = TestWheel::new(start);
        let mut m = Model::default();
        for &op in ops {
            let time = w.time();
            match op {
                Op::Schedule(i, r) => {
                    let d = deadline_for(time, r);
                    if m.deadline.contains_key(&i) {
                        w.reschedule(i, d);
                    } else {
                        w.schedule(i, d);
                    }
                    m.set(i, d, time);
                }
                Op::Reschedule(i, r) => {
                    let d = deadline_for(time, r);
                    if i % 2 == 0 {
                        w.reschedule(i, d);
                    } else {
                        w.postpone(i, d);
                    }
                    m.set(i, d, time);
                }
                Op::Deschedule(i) => {
                    w.deschedule(i);
                    m.set(i, NEVER, time);
                }
                Op::Extend(i, by) => {
                    if let Some(&d) = m.deadline.get(&i) {
                        let d2 = d.saturating_add(by).min(END_OF_TIME);
                        w.set_deadline_relaxed(i, d2);
                        m.deadline.insert(i, d2);
                        if d2 > time {
                            m.due.remove(&i);
                        }
                    }
                }
                Op::Advance(by, budget) => advance_and_check(&mut w, &mut m, by, budget)?,
                Op::FireCurrent(budget) => fire_current_and_check(&mut w, &mut m, budget)?,
            }
            w.validate();
            prop_assert_eq!(w.len(), m.deadline.len());
            for i in 0..40 {
                prop_assert_eq!(w.deadline(i) == NEVER, !m.deadline.contains_key(&i));
                if let Some(&d) = m.deadline.get(&i) {
                    prop_assert_eq!(w.deadline(i), d);
                    prop_assert!(w.is_scheduled(i));
                }
            }
        }
        // Drain: everything finite fires exactly once.
        advance_and_check(&mut w, &mut m, u64::MAX, None)?;
        prop_assert!(m.deadline.is_empty());
        prop_assert!(w.is_empty());
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn wheel_matches_model(
            start in prop_oneof![Just(0u64), 0..u64::MAX / 4, Just(END_OF_TIME - 5 * YEAR)],
            ops in prop::collection::vec(op(), 1..200),
        ) {
            check(start, &ops)?;
        }
    }
}
