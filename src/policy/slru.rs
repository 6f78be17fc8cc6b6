//! Segmented LRU (SLRU), after Karedla, Love and Wherry, "Caching
//! Strategies to Improve Disk System Performance", IEEE Computer 27(3),
//! 1994.
//!
//! Two LRU lists share one [`Nodes`] arena: **probation** holds entries seen
//! once since they last entered it, **protected** holds entries that were
//! hit while in the cache. A scan of one-time keys only churns probation, so
//! the protected segment keeps the working set.
//!
//! # Rules
//!
//! * The protected segment may hold at most `protected_max` weight, 80% of
//!   the shard capacity given to [`Slru::new`], rounded down
//!   (`capacity / 5 * 4 + capacity % 5 * 4 / 5`, which cannot overflow). A
//!   capacity of 0 to 1 gives a protected maximum of 0: only weight-0
//!   entries then stay protected, every other promoted entry is demoted
//!   straight back (see below), and the policy degenerates to plain LRU
//!   over probation, which is the sane behaviour for so small a shard.
//! * **Insert**: the new entry goes to the probation MRU end.
//! * **Access** (a hit): a probation entry moves to the protected MRU end; a
//!   protected entry moves to the protected MRU end.
//! * **Update** (the value was replaced): the weight changes first, then
//!   the entry is accessed exactly as above.
//! * **Demotion**: after every access or update, while the protected weight
//!   exceeds `protected_max`, the protected LRU entry moves to the probation
//!   MRU end. Several entries may be demoted by one access (a heavy promoted
//!   entry), and a promoted entry heavier than `protected_max` ends up
//!   demoted itself once it is the only one left in protected.
//! * **Victim**: the probation LRU entry; if probation is empty, the
//!   protected LRU entry.
//! * **Remove**: the entry leaves whichever segment holds it; nothing moves.
//!
//! The segment of an entry is kept in the arena's tag ([`Nodes::tag`](super::list::Nodes::tag))
//! ([`PROBATION`] or [`PROTECTED`]). Every operation is O(1) except that
//! one access may demote several entries, each in O(1).

use super::list::{List, Nodes};
use super::{EvictionPolicy, HashOf, Idx};

/// The tag of an entry in the probation segment.
const PROBATION: u32 = 0;
/// The tag of an entry in the protected segment.
const PROTECTED: u32 = 1;

/// Segmented LRU: a probation and a protected list over one arena.
#[derive(Debug)]
pub(crate) struct Slru {
    /// Links, weights and segment tags of every tracked entry.
    nodes: Nodes,
    /// New and demoted entries; the victim comes from its LRU end.
    probation: List,
    /// Entries hit while cached; at most `protected_max` weight.
    protected: List,
    /// 80% of the capacity, rounded down.
    protected_max: u64,
}

impl Slru {
    /// An empty SLRU for a shard holding at most `capacity` weight.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            nodes: Nodes::default(),
            probation: List::default(),
            protected: List::default(),
            protected_max: capacity / 5 * 4 + capacity % 5 * 4 / 5,
        }
    }

    /// Moves `idx` (tracked) to the protected MRU end, then demotes the
    /// protected LRU entries until protected fits its maximum.
    fn touch(&mut self, idx: Idx) {
        if self.nodes.tag(idx) == PROBATION {
            self.nodes.set_tag(idx, PROTECTED);
            self.probation.unlink(&mut self.nodes, idx);
            self.protected.push_back(&mut self.nodes, idx);
        } else {
            self.protected.move_to_back(&mut self.nodes, idx);
        }
        while self.protected.weight() > self.protected_max {
            let Some(demoted) = self.protected.pop_front(&mut self.nodes) else {
                break;
            };
            self.nodes.set_tag(demoted, PROBATION);
            self.probation.push_back(&mut self.nodes, demoted);
        }
    }

    /// The list holding `idx` (tracked), with the arena, borrowed apart.
    fn segment_of(&mut self, idx: Idx) -> (&mut List, &mut Nodes) {
        let list = if self.nodes.tag(idx) == PROTECTED {
            &mut self.protected
        } else {
            &mut self.probation
        };
        (list, &mut self.nodes)
    }
}

impl EvictionPolicy for Slru {
    fn on_insert(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.nodes.init(idx, weight);
        self.nodes.set_tag(idx, PROBATION);
        self.probation.push_back(&mut self.nodes, idx);
    }

    fn on_access(&mut self, idx: Idx, _hash: u64) {
        self.touch(idx);
    }

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        let (list, nodes) = self.segment_of(idx);
        list.set_weight(nodes, idx, weight);
        self.touch(idx);
    }

    fn on_remove(&mut self, idx: Idx) {
        let (list, nodes) = self.segment_of(idx);
        list.unlink(nodes, idx);
    }

    fn evict(&mut self, _hash_of: HashOf<'_>) -> Option<Idx> {
        self.probation
            .pop_front(&mut self.nodes)
            .or_else(|| self.protected.pop_front(&mut self.nodes))
    }

    fn clear(&mut self) {
        self.probation.clear();
        self.protected.clear();
        self.nodes.clear();
    }

    fn len(&self) -> usize {
        self.probation.len() + self.protected.len()
    }

    fn weight(&self) -> u64 {
        self.probation.weight() + self.protected.weight()
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes()
    }

    fn reserve_slots(&mut self, slots: usize) {
        self.nodes.reserve_slots(slots);
    }

    fn validate(&self) {
        self.probation.validate(&self.nodes);
        self.protected.validate(&self.nodes);
        for idx in self.probation.iter(&self.nodes) {
            assert_eq!(self.nodes.tag(idx), PROBATION, "{idx} mis-tagged");
        }
        for idx in self.protected.iter(&self.nodes) {
            assert_eq!(self.nodes.tag(idx), PROTECTED, "{idx} mis-tagged");
        }
        assert!(
            self.protected.weight() <= self.protected_max,
            "protected weight {} over its maximum {}",
            self.protected.weight(),
            self.protected_max
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::no_hashes;
    use proptest::prelude::*;

    fn order(slru: &Slru) -> (Vec<Idx>, Vec<Idx>) {
        (
            slru.probation.iter(&slru.nodes).collect(),
            slru.protected.iter(&slru.nodes).collect(),
        )
    }

    #[test]
    fn protected_max_is_80_percent_rounded_down() {
        for (cap, max) in [(0, 0), (1, 0), (2, 1), (5, 4), (9, 7), (10, 8), (100, 80)] {
            assert_eq!(Slru::new(cap).protected_max, max, "capacity {cap}");
        }
        assert_eq!(Slru::new(u64::MAX).protected_max, u64::MAX / 5 * 4);
    }

    #[test]
    fn new_entries_are_evicted_before_hit_ones() {
        let mut slru = Slru::new(10);
        for i in 0..4 {
            slru.on_insert(i, 0, 1, &no_hashes);
        }
        slru.on_access(0, 0);
        slru.on_access(2, 0);
        slru.validate();
        assert_eq!(order(&slru), (vec![1, 3], vec![0, 2]));
        slru.on_access(0, 0);
        assert_eq!(order(&slru), (vec![1, 3], vec![2, 0]));
        let victims: Vec<_> = std::iter::from_fn(|| slru.evict(&|_| 0)).collect();
        assert_eq!(victims, vec![1, 3, 2, 0]);
        slru.validate();
        assert_eq!((slru.len(), slru.weight()), (0, 0));
    }

    #[test]
    fn protected_overflow_demotes_to_probation_mru() {
        // Capacity 5: protected holds at most 4 weight.
        let mut slru = Slru::new(5);
        for i in 0..4 {
            slru.on_insert(i, 0, 2, &no_hashes);
        }
        slru.on_access(0, 0);
        slru.on_access(1, 0);
        assert_eq!(order(&slru), (vec![2, 3], vec![0, 1]));
        slru.on_access(2, 0);
        assert_eq!(order(&slru), (vec![3, 0], vec![1, 2]));
        // A heavy update demotes both older protected entries, then itself.
        slru.on_update(3, 0, 5, &no_hashes);
        slru.validate();
        assert_eq!(order(&slru), (vec![0, 1, 2, 3], vec![]));
        assert_eq!(slru.weight(), 2 * 3 + 5);
    }

    #[test]
    fn tiny_capacity_degenerates_to_lru() {
        let mut slru = Slru::new(1);
        for i in 0..3 {
            slru.on_insert(i, 0, 1, &no_hashes);
        }
        slru.on_access(0, 0);
        slru.validate();
        assert_eq!(order(&slru), (vec![1, 2, 0], vec![]));
        // Weight-0 entries fit even a zero-weight protected segment.
        slru.on_update(1, 0, 0, &no_hashes);
        assert_eq!(order(&slru), (vec![2, 0], vec![1]));
        assert_eq!(slru.evict(&|_| 0), Some(2));
        assert_eq!(slru.evict(&|_| 0), Some(0));
        assert_eq!(slru.evict(&|_| 0), Some(1));
        assert_eq!(slru.evict(&|_| 0), None);
        slru.validate();
    }

    #[test]
    fn remove_and_clear() {
        let mut slru = Slru::new(10);
        for i in 0..4 {
            slru.on_insert(i, 0, u32::MAX, &no_hashes);
        }
        assert_eq!(slru.weight(), 4 * u64::from(u32::MAX));
        slru.on_remove(1);
        slru.on_update(2, 0, 3, &no_hashes);
        slru.on_remove(2);
        slru.validate();
        assert_eq!(order(&slru), (vec![0, 3], vec![]));
        assert_eq!(slru.weight(), 2 * u64::from(u32::MAX));
        assert!(slru.heap_bytes() > 0);
        slru.clear();
        slru.validate();
        assert_eq!((slru.len(), slru.weight(), slru.heap_bytes()), (0, 0, 0));
        assert_eq!(slru.evict(&|_| 0), None);
    }

    /// The SLRU rules over two `Vec`s (front = LRU end), written directly
    /// from the module docs.
    #[derive(Debug, Default)]
    struct Model {
        probation: Vec<(Idx, u32)>,
        protected: Vec<(Idx, u32)>,
        protected_max: u64,
    }

    impl Model {
        fn protected_weight(&self) -> u64 {
            self.protected.iter().map(|&(_, w)| u64::from(w)).sum()
        }

        fn take(&mut self, idx: Idx) -> (Idx, u32) {
            if let Some(p) = self.probation.iter().position(|e| e.0 == idx) {
                self.probation.remove(p)
            } else {
                let p = self.protected.iter().position(|e| e.0 == idx).unwrap();
                self.protected.remove(p)
            }
        }

        fn access(&mut self, idx: Idx, new_weight: Option<u32>) {
            let (idx, mut weight) = self.take(idx);
            if let Some(w) = new_weight {
                weight = w;
            }
            self.protected.push((idx, weight));
            while self.protected_weight() > self.protected_max {
                let demoted = self.protected.remove(0);
                self.probation.push(demoted);
            }
        }

        fn evict(&mut self) -> Option<Idx> {
            if !self.probation.is_empty() {
                Some(self.probation.remove(0).0)
            } else if !self.protected.is_empty() {
                Some(self.protected.remove(0).0)
            } else {
                None
            }
        }

        fn tracked(&self) -> Vec<Idx> {
            let mut all: Vec<_> = self
                .probation
                .iter()
                .chain(&self.protected)
                .map(|e| e.0)
                .collect();
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
            4 => any::<usize>().prop_map(Op::Access),
            1 => (any::<usize>(), weight()).prop_map(|(s, w)| Op::Update(s, w)),
            1 => any::<usize>().prop_map(Op::Remove),
            1 => Just(Op::Evict),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Random operations on `Slru` and the `Vec` model give the same
        /// segments (in order), weights and victims after every step.
        #[test]
        fn matches_vec_model(capacity in 0..40u64, ops in proptest::collection::vec(op(), 1..300)) {
            let mut slru = Slru::new(capacity);
            let mut model = Model { protected_max: slru.protected_max, ..Model::default() };
            for op in ops {
                let tracked = model.tracked();
                match op {
                    Op::Insert(idx, w) if !tracked.contains(&idx) => {
                        slru.on_insert(idx, 0, w, &no_hashes);
                        model.probation.push((idx, w));
                    }
                    Op::Access(s) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        slru.on_access(idx, 0);
                        model.access(idx, None);
                    }
                    Op::Update(s, w) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        slru.on_update(idx, 0, w, &no_hashes);
                        model.access(idx, Some(w));
                    }
                    Op::Remove(s) if !tracked.is_empty() => {
                        let idx = tracked[s % tracked.len()];
                        slru.on_remove(idx);
                        model.take(idx);
                    }
                    Op::Evict => prop_assert_eq!(slru.evict(&|_| 0), model.evict()),
                    _ => {}
                }
                slru.validate();
                let ids = |v: &[(Idx, u32)]| v.iter().map(|e| e.0).collect::<Vec<_>>();
                prop_assert_eq!(order(&slru), (ids(&model.probation), ids(&model.protected)));
                let total: u64 = model.probation.iter().chain(&model.protected).map(|e| u64::from(e.1)).sum();
                prop_assert_eq!(slru.weight(), total);
                prop_assert_eq!(slru.protected.weight(), model.protected_weight());
                prop_assert_eq!(slru.len(), model.tracked().len());
            }
            // Draining gives the model's victim order.
            loop {
                let victim = slru.evict(&|_| 0);
                prop_assert_eq!(victim, model.evict());
                if victim.is_none() {
                    break;
                }
            }
            slru.validate();
        }
    }
}
