//! First in, first out: one list in insertion order. Hits and updates do
//! not move an entry; the victim is the oldest insertion.

use super::list::{List, Nodes};
use super::{EvictionPolicy, HashOf, Idx};

/// Insertion order.
#[derive(Debug, Default)]
pub(crate) struct Fifo {
    nodes: Nodes,
    list: List,
}

impl Fifo {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl EvictionPolicy for Fifo {
    fn on_insert(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.nodes.init(idx, weight);
        self.list.push_back(&mut self.nodes, idx);
    }

    fn on_access(&mut self, _idx: Idx, _hash: u64) {}

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.list.set_weight(&mut self.nodes, idx, weight);
    }

    fn on_remove(&mut self, idx: Idx) {
        self.list.unlink(&mut self.nodes, idx);
    }

    fn evict(&mut self, _hash_of: HashOf<'_>) -> Option<Idx> {
        self.list.pop_front(&mut self.nodes)
    }

    fn clear(&mut self) {
        self.list.clear();
        self.nodes.clear();
    }

    fn len(&self) -> usize {
        self.list.len()
    }

    fn weight(&self) -> u64 {
        self.list.weight()
    }

    fn heap_bytes(&self) -> usize {
        self.nodes.heap_bytes()
    }

    fn reserve_slots(&mut self, slots: usize) {
        self.nodes.reserve_slots(slots);
    }

    fn validate(&self) {
        self.list.validate(&self.nodes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::no_hashes;

    #[test]
    fn hits_do_not_reorder() {
        let mut fifo = Fifo::new();
        for i in 0..3 {
            fifo.on_insert(i, 0, 1, &no_hashes);
        }
        fifo.on_access(0, 0);
        fifo.on_update(0, 0, 1, &no_hashes);
        assert_eq!(fifo.evict(&|_| 0), Some(0));
        assert_eq!(fifo.evict(&|_| 0), Some(1));
        fifo.validate();
    }
}
