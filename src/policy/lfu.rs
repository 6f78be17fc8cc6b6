//! Least frequently used with O(1) frequency buckets, after Shah, Mitra and
//! Matani, "An O(1) algorithm for implementing the LFU cache eviction
//! scheme", 2010, plus periodic halving of every count (aging) so that old
//! popularity fades.
//!
//! Entries with the same count share a *bucket*, an LRU list over the
//! shared [`Nodes`] arena; the buckets form a doubly linked chain ordered by
//! strictly increasing count, and an empty bucket is freed at once. An entry
//! keeps its bucket id in the arena's tag ([`Nodes::tag`](super::list::Nodes::tag)), so a hit moves it
//! to the neighbouring bucket (created if needed) in O(1), with no map from
//! count to bucket.
//!
//! # Rules
//!
//! * Every entry has a **count** and a **last touch**, the value of an
//!   operation clock that ticks once per insert, access or update.
//! * **Insert**: count 1. **Access**: count + 1, saturating at
//!   [`MAX_COUNT`] (65,535). **Update**: the weight changes, then the entry
//!   is accessed. Each of the three sets the entry's last touch.
//! * **Victim**: the entry with the lowest count; among those, the one
//!   touched longest ago (LRU tie-break). Structurally: the LRU end of the
//!   lowest bucket. A touched entry enters its new bucket at the MRU end
//!   (or, saturated, moves to its own bucket's MRU end), so every bucket is
//!   kept in last-touch order.
//! * **Aging**: the operation that brings the number of touches since the
//!   last aging (or since creation or [`clear`](EvictionPolicy::clear)) to
//!   `period = 10 * max(capacity, 16)` weight units (saturating) is applied
//!   first, then every count becomes `max(1, count / 2)` and the counter
//!   restarts. Old buckets that map to the same new count (1, 2 and 3 to 1;
//!   then 2k and 2k + 1 to k) are **merged by last touch**, oldest first:
//!   each new bucket lists its entries exactly in the order they were last
//!   touched, as if it had been built by touching them again in that order.
//!   The victim rule above therefore holds at all times, across agings.
//!   Aging is O(n) once every `period` touches: amortised O(1).
//! * **Remove** and eviction do not touch the clock.
//!
//! Why a last-touch stamp (8 bytes per entry, in a side `Vec`) rather than
//! concatenating the merged buckets: without it a merge can only keep the
//! order inside each old bucket, and entries last hit a moment ago would be
//! evicted before entries idle for a whole period just because they had one
//! hit fewer before the halving. With it the tie-break is exact recency, and
//! the rule needs no footnote.

use super::list::{List, Nodes, NIL};
use super::{EvictionPolicy, HashOf, Idx};

/// Counts saturate here (`u16::MAX`): a count this high already marks one of
/// the hottest entries, and the bound caps how many agings (16) it takes to
/// fade.
const MAX_COUNT: u32 = u16::MAX as u32;

/// Aging happens every `AGING_FACTOR * max(capacity, MIN_AGING_CAPACITY)`
/// touches, like the TinyLFU sketch's reset (10 x capacity).
const AGING_FACTOR: u64 = 10;

/// The capacity floor in the aging period, so that a tiny shard still
/// gathers some frequency before it halves (160 touches).
const MIN_AGING_CAPACITY: u64 = 16;

/// The entries sharing one count, a link in the chain of buckets.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// The count of every entry here; 0 marks a free bucket.
    count: u32,
    /// Lower-count neighbour in the chain, or [`NIL`].
    prev: u32,
    /// Higher-count neighbour in the chain, or [`NIL`].
    next: u32,
    /// The entries, least recently touched first.
    list: List,
}

/// LFU over a chain of frequency buckets, with LRU tie-break and aging.
#[derive(Debug)]
pub(crate) struct Lfu {
    /// Links and weights of every entry; `tag` is its bucket id.
    nodes: Nodes,
    /// Last touch of every entry, indexed like `nodes`.
    stamps: Vec<u64>,
    /// Bucket storage: live buckets are chained, free ones listed in `free`.
    buckets: Vec<Bucket>,
    /// Ids of free slots in `buckets`.
    free: Vec<u32>,
    /// The lowest-count bucket (victims come from here), or [`NIL`].
    head: u32,
    /// The highest-count bucket, or [`NIL`].
    tail: u32,
    /// Number of entries.
    len: usize,
    /// Total weight of the entries.
    weight: u64,
    /// The operation clock: touches since creation or `clear`.
    clock: u64,
    /// Touches since the last aging.
    since_aging: u64,
    /// Touches between agings.
    period: u64,
    /// Saturation point of counts.
    max_count: u32,
}

impl Lfu {
    /// An empty LFU for a shard holding at most `capacity` weight.
    pub(crate) fn new(capacity: u64) -> Self {
        let period = capacity
            .max(MIN_AGING_CAPACITY)
            .saturating_mul(AGING_FACTOR);
        Self::with_limits(period, MAX_COUNT)
    }

    /// An empty LFU aging every `period` touches, counts saturating at
    /// `max_count` (tests shrink both to exercise them).
    fn with_limits(period: u64, max_count: u32) -> Self {
        assert!(period > 0 && max_count > 0);
        Self {
            nodes: Nodes::default(),
            stamps: Vec::new(),
            buckets: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            len: 0,
            weight: 0,
            clock: 0,
            since_aging: 0,
            period,
            max_count,
        }
    }

    /// Makes a bucket with `count` and links it in after `prev` (or first,
    /// when `prev` is [`NIL`]); returns its id.
    fn new_bucket(&mut self, count: u32, prev: u32) -> u32 {
        let next = if prev == NIL {
            self.head
        } else {
            self.buckets[prev as usize].next
        };
        let bucket = Bucket {
            count,
            prev,
            next,
            list: List::default(),
        };
        let id = match self.free.pop() {
            Some(id) => {
                self.buckets[id as usize] = bucket;
                id
            }
            None => {
                let id = u32::try_from(self.buckets.len()).expect("more buckets than entries");
                self.buckets.push(bucket);
                id
            }
        };
        if prev == NIL {
            self.head = id;
        } else {
            self.buckets[prev as usize].next = id;
        }
        if next == NIL {
            self.tail = id;
        } else {
            self.buckets[next as usize].prev = id;
        }
        id
    }

    /// Unchains and frees bucket `id` if it holds no entry.
    fn free_if_empty(&mut self, id: u32) {
        let Bucket {
            prev, next, list, ..
        } = self.buckets[id as usize];
        if !list.is_empty() {
            return;
        }
        if prev == NIL {
            self.head = next;
        } else {
            self.buckets[prev as usize].next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            self.buckets[next as usize].prev = prev;
        }
        self.buckets[id as usize] = Bucket::default();
        self.free.push(id);
    }

    /// Records a touch of `idx` at the current clock and ages if the period
    /// is complete.
    fn stamp(&mut self, idx: Idx) {
        self.stamps[idx as usize] = self.clock;
        self.clock += 1;
        self.since_aging += 1;
        if self.since_aging >= self.period {
            self.since_aging = 0;
            self.age();
        }
    }

    /// Moves `idx` (tracked) to the MRU end of the bucket for its count + 1
    /// (its own, when saturated) and stamps it.
    fn increment(&mut self, idx: Idx) {
        let from = self.nodes.tag(idx);
        let Bucket { count, next, .. } = self.buckets[from as usize];
        if count >= self.max_count {
            self.buckets[from as usize]
                .list
                .move_to_back(&mut self.nodes, idx);
        } else {
            let to = if next != NIL && self.buckets[next as usize].count == count + 1 {
                next
            } else {
                self.new_bucket(count + 1, from)
            };
            self.buckets[from as usize]
                .list
                .unlink(&mut self.nodes, idx);
            self.nodes.set_tag(idx, to);
            self.buckets[to as usize]
                .list
                .push_back(&mut self.nodes, idx);
            self.free_if_empty(from);
        }
        self.stamp(idx);
    }

    /// Halves every count (`max(1, count / 2)`), merging the buckets that
    /// meet by last touch; O(n).
    fn age(&mut self) {
        let mut cur = self.head;
        while cur != NIL {
            // The run of buckets [cur, end) that lands on one new count.
            let new_count = (self.buckets[cur as usize].count / 2).max(1);
            let mut run = [NIL; 3];
            let mut run_len = 0;
            let mut end = cur;
            while end != NIL && (self.buckets[end as usize].count / 2).max(1) == new_count {
                run[run_len] = end;
                run_len += 1;
                end = self.buckets[end as usize].next;
            }
            // Merge the run's lists into the first bucket, oldest touch first.
            let mut sources: [List; 3] = [List::default(); 3];
            for (source, &id) in sources.iter_mut().zip(&run[..run_len]) {
                *source = std::mem::take(&mut self.buckets[id as usize].list);
            }
            let mut merged = List::default();
            loop {
                let oldest = sources[..run_len]
                    .iter_mut()
                    .filter_map(|s| s.front().map(|idx| (self.stamps[idx as usize], s)))
                    .min_by_key(|(stamp, _)| *stamp);
                let Some((_, source)) = oldest else { break };
                let idx = source.pop_front(&mut self.nodes).expect("non-empty source");
                self.nodes.set_tag(idx, cur);
                merged.push_back(&mut self.nodes, idx);
            }
            let first = &mut self.buckets[cur as usize];
            first.list = merged;
            first.count = new_count;
            first.next = end;
            if end == NIL {
                self.tail = cur;
            } else {
                self.buckets[end as usize].prev = cur;
            }
            for &id in &run[1..run_len] {
                self.buckets[id as usize] = Bucket::default();
                self.free.push(id);
            }
            cur = end;
        }
    }

    /// The count of tracked entry `idx`.
    #[cfg(test)]
    fn count_of(&self, idx: Idx) -> u32 {
        self.buckets[self.nodes.tag(idx) as usize].count
    }
}

impl EvictionPolicy for Lfu {
    fn on_insert(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        let bucket = if self.head != NIL && self.buckets[self.head as usize].count == 1 {
            self.head
        } else {
            self.new_bucket(1, NIL)
        };
        self.nodes.init(idx, weight);
        self.nodes.set_tag(idx, bucket);
        self.buckets[bucket as usize]
            .list
            .push_back(&mut self.nodes, idx);
        if idx as usize >= self.stamps.len() {
            self.stamps.resize(idx as usize + 1, 0);
        }
        self.len += 1;
        self.weight += u64::from(weight);
        self.stamp(idx);
    }

    fn on_access(&mut self, idx: Idx, _hash: u64) {
        self.increment(idx);
    }

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        let bucket = self.nodes.tag(idx);
        self.weight = self.weight - u64::from(self.nodes.weight(idx)) + u64::from(weight);
        self.buckets[bucket as usize]
            .list
            .set_weight(&mut self.nodes, idx, weight);
        self.increment(idx);
    }

    fn on_remove(&mut self, idx: Idx) {
        let bucket = self.nodes.tag(idx);
        self.buckets[bucket as usize]
            .list
            .unlink(&mut self.nodes, idx);
        self.len -= 1;
        self.weight -= u64::from(self.nodes.weight(idx));
        self.free_if_empty(bucket);
    }

    fn evict(&mut self, _hash_of: HashOf<'_>) -> Option<Idx> {
        if self.head == NIL {
            return None;
        }
        let idx = self.buckets[self.head as usize].list.front()?;
        self.on_remove(idx);
        Some(idx)
    }

    fn clear(&mut self) {
        *self = Self::with_limits(self.period, self.max_count);
    }

    fn len(&self) -> usize {
        self.len
    }

    fn weight(&self) -> u64 {
        self.weight
    }

    fn reserve_slots(&mut self, slots: usize) {
        self.nodes.reserve_slots(slots);
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes()
            + self.stamps.capacity() * std::mem::size_of::<u64>()
            + self.buckets.capacity() * std::mem::size_of::<Bucket>()
            + self.free.capacity() * std::mem::size_of::<u32>()
    }

    fn validate(&self) {
        let (mut len, mut weight, mut live) = (0, 0u64, 0);
        let (mut prev, mut prev_count) = (NIL, 0);
        let mut cur = self.head;
        while cur != NIL {
            let bucket = &self.buckets[cur as usize];
            live += 1;
            assert!(live <= self.buckets.len(), "bucket chain has a cycle");
            assert_eq!(bucket.prev, prev, "broken bucket prev link at {cur}");
            assert!(
                bucket.count > prev_count && bucket.count <= self.max_count,
                "bucket counts out of order: {prev_count} then {}",
                bucket.count
            );
            assert!(!bucket.list.is_empty(), "empty bucket {cur} left chained");
            bucket.list.validate(&self.nodes);
            let mut last_stamp = None;
            for idx in bucket.list.iter(&self.nodes) {
                assert_eq!(self.nodes.tag(idx), cur, "{idx} in the wrong bucket");
                let stamp = self.stamps[idx as usize];
                assert!(stamp < self.clock, "{idx} stamped in the future");
                assert!(
                    last_stamp < Some(stamp),
                    "bucket {cur} not in last-touch order at {idx}"
                );
                last_stamp = Some(stamp);
            }
            len += bucket.list.len();
            weight += bucket.list.weight();
            (prev, prev_count) = (cur, bucket.count);
            cur = bucket.next;
        }
        assert_eq!(self.tail, prev, "bucket tail mismatch");
        assert_eq!(self.len, len, "length mismatch");
        assert_eq!(self.weight, weight, "weight mismatch");
        assert_eq!(live + self.free.len(), self.buckets.len(), "bucket leak");
        for &id in &self.free {
            assert_eq!(
                self.buckets[id as usize].count, 0,
                "free bucket {id} in use"
            );
        }
        assert!(self.since_aging < self.period, "aging overdue");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::no_hashes;
    use proptest::prelude::*;

    fn drain(lfu: &mut Lfu) -> Vec<Idx> {
        std::iter::from_fn(|| lfu.evict(&|_| 0)).collect()
    }

    #[test]
    fn aging_period_is_ten_times_capacity_at_least_160() {
        assert_eq!(Lfu::new(0).period, 160);
        assert_eq!(Lfu::new(16).period, 160);
        assert_eq!(Lfu::new(100).period, 1000);
        assert_eq!(Lfu::new(u64::MAX).period, u64::MAX);
    }

    #[test]
    fn evicts_least_frequent_then_least_recent() {
        let mut lfu = Lfu::new(100);
        for i in 0..5 {
            lfu.on_insert(i, 0, 1, &no_hashes);
        }
        lfu.on_access(3, 0);
        lfu.on_access(1, 0);
        lfu.on_access(3, 0);
        lfu.on_update(4, 0, 7, &no_hashes);
        lfu.validate();
        assert_eq!(
            (lfu.count_of(3), lfu.count_of(1), lfu.count_of(0)),
            (3, 2, 1)
        );
        assert_eq!(lfu.weight(), 4 + 7);
        assert_eq!(drain(&mut lfu), vec![0, 2, 1, 4, 3]);
        lfu.validate();
        assert_eq!((lfu.len(), lfu.weight()), (0, 0));
    }

    #[test]
    fn empty_buckets_are_freed_and_reused() {
        let mut lfu = Lfu::new(100);
        lfu.on_insert(0, 0, 1, &no_hashes);
        for _ in 0..10 {
            lfu.on_access(0, 0);
        }
        lfu.validate();
        assert_eq!(lfu.count_of(0), 11);
        assert_eq!((lfu.head, lfu.tail), (lfu.nodes.tag(0), lfu.nodes.tag(0)));
        assert!(lfu.buckets.len() <= 2, "at most two buckets live at once");
        lfu.on_remove(0);
        lfu.validate();
        assert_eq!((lfu.head, lfu.tail, lfu.len()), (NIL, NIL, 0));
    }

    #[test]
    fn counts_saturate() {
        let mut lfu = Lfu::with_limits(1_000, 3);
        lfu.on_insert(0, 0, 1, &no_hashes);
        lfu.on_insert(1, 0, 1, &no_hashes);
        for _ in 0..5 {
            lfu.on_access(0, 0);
            lfu.on_access(1, 0);
        }
        lfu.on_access(0, 0);
        lfu.validate();
        assert_eq!((lfu.count_of(0), lfu.count_of(1)), (3, 3));
        // Saturated, a touch still refreshes recency.
        assert_eq!(drain(&mut lfu), vec![1, 0]);
    }

    #[test]
    fn aging_halves_and_merges_by_last_touch() {
        // Period 12: the 12th touch triggers aging.
        let mut lfu = Lfu::with_limits(12, MAX_COUNT);
        for i in 0..4 {
            lfu.on_insert(i, 0, 1, &no_hashes); // touches 1..=4
        }
        // Counts: 0 -> 3, 1 -> 2, 2 -> 4, 3 -> 1; the last touches are, by
        // age: 3 (its insert), 2, 0, 1.
        for idx in [2, 2, 0, 2, 0, 1] {
            lfu.on_access(idx, 0); // touches 5..=10
        }
        lfu.validate();
        assert_eq!(lfu.count_of(2), 4);
        lfu.on_insert(4, 0, 1, &no_hashes); // touch 11
        lfu.on_access(4, 0); // touch 12: count 2, then aging
        lfu.validate();
        assert_eq!(lfu.since_aging, 0);
        // Counts 1, 2, 3 merge to 1 by last touch: 3, 0, 1, 4; 2 has count 2.
        let counts: Vec<_> = (0..5).map(|i| lfu.count_of(i)).collect();
        assert_eq!(counts, vec![1, 1, 2, 1, 1]);
        assert_eq!(drain(&mut lfu), vec![3, 0, 1, 4, 2]);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut lfu = Lfu::new(4);
        for i in 0..50 {
            lfu.on_insert(i, 0, u32::MAX, &no_hashes);
            lfu.on_access(i / 2, 0);
        }
        assert_eq!(lfu.weight(), 50 * u64::from(u32::MAX));
        assert!(lfu.heap_bytes() > 0);
        lfu.clear();
        lfu.validate();
        assert_eq!(
            (lfu.len(), lfu.weight(), lfu.heap_bytes(), lfu.clock),
            (0, 0, 0, 0)
        );
        assert_eq!(lfu.evict(&|_| 0), None);
    }

    /// The LFU rules over a `Vec`, written directly from the module docs:
    /// each entry is `(idx, weight, count, last touch)`.
    #[derive(Debug)]
    struct Model {
        entries: Vec<(Idx, u32, u32, u64)>,
        clock: u64,
        since_aging: u64,
        period: u64,
        max_count: u32,
    }

    impl Model {
        fn tick(&mut self) {
            self.clock += 1;
            self.since_aging += 1;
            if self.since_aging == self.period {
                self.since_aging = 0;
                for e in &mut self.entries {
                    e.2 = (e.2 / 2).max(1);
                }
            }
        }

        fn insert(&mut self, idx: Idx, weight: u32) {
            self.entries.push((idx, weight, 1, self.clock));
            self.tick();
        }

        fn access(&mut self, idx: Idx, new_weight: Option<u32>) {
            let clock = self.clock;
            let max = self.max_count;
            let e = self.entries.iter_mut().find(|e| e.0 == idx).unwrap();
            if let Some(w) = new_weight {
                e.1 = w;
            }
            e.2 = (e.2 + 1).min(max);
            e.3 = clock;
            self.tick();
        }

        fn remove(&mut self, idx: Idx) {
            self.entries.retain(|e| e.0 != idx);
        }

        fn evict(&mut self) -> Option<Idx> {
            let victim = self.entries.iter().min_by_key(|e| (e.2, e.3))?.0;
            self.remove(victim);
            Some(victim)
        }

        fn tracked(&self) -> Vec<Idx> {
            let mut all: Vec<_> = self.entries.iter().map(|e| e.0).collect();
            all.sort_unstable();
            all
        }
    }

    /// One step of a model test; `usize` fields pick among tracked entries.
    #[derive(Debug, Clone)]
    enum Op {
        Insert(Idx, u32),
        Access(usize),
        Update(usize, u32),
        Remove(usize),
        Evict,
    }

    fn weight() -> impl Strategy<Value = u32> {
        prop_oneof![8 => 0..6u32, 1 => Just(u32::MAX)]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0..24u32, weight()).prop_map(|(i, w)| Op::Insert(i, w)),
            // Skewed picks, so some entries grow hot.
            3 => (0..4usize).prop_map(Op::Access),
            3 => any::<usize>().prop_map(Op::Access),
            1 => (any::<usize>(), weight()).prop_map(|(s, w)| Op::Update(s, w)),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => Just(Op::Evict),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random operations on `Lfu` and the `Vec` model (victim = lowest
        /// `(count, last touch)`) agree on every victim, count and weight
        /// after every step, through agings and saturation.
        #[test]
        fn matches_vec_model(
            period in 1..40u64,
            max_count in prop_oneof![1..6u32, Just(MAX_COUNT)],
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut lfu = Lfu::with_limits(period, max_count);
            let mut model = Model { entries: Vec::new(), clock: 0, since_aging: 0, period, max_count };
            for op in ops {
                let tracked = model.tracked();
                match op {
                    Op::Insert(idx, w) if !tracked.contains(&idx) => {
                        lfu.on_insert(idx, 0, w, &no_hashes);
                        model.insert(idx, w);
                    }
                    Op::Access(s) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        lfu.on_access(idx, 0);
                        model.access(idx, None);
                    }
                    Op::Update(s, w) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        lfu.on_update(idx, 0, w, &no_hashes);
                        model.access(idx, Some(w));
                    }
                    Op::Remove(s) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        lfu.on_remove(idx);
                        model.remove(idx);
                    }
                    Op::Evict => prop_assert_eq!(lfu.evict(&|_| 0), model.evict()),
                    _ => {}
                }
                lfu.validate();
                prop_assert_eq!(lfu.len(), model.entries.len());
                let total: u64 = model.entries.iter().map(|e| u64::from(e.1)).sum();
                prop_assert_eq!(lfu.weight(), total);
                for e in &model.entries {
                    prop_assert_eq!(lfu.count_of(e.0), e.2, "count of {}", e.0);
                }
            }
            loop {
                let victim = lfu.evict(&|_| 0);
                prop_assert_eq!(victim, model.evict());
                if victim.is_none() {
                    break;
                }
            }
            lfu.validate();
        }
    }
}
