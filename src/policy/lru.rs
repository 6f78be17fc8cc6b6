//! Least recently used: one list in recency order; a hit moves the entry to
//! the newest end, the victim is the oldest entry.
//!
//! With one shard this is exactly the classic LRU (the `lru` crate's hits on
//! any sequence): the shard drains buffered hits in order before it inserts
//! or evicts, so the list order when a victim is chosen is the access order.

use super::list::{List, Nodes};
use super::{EvictionPolicy, HashOf, Idx};

/// Strict recency order.
#[derive(Debug, Default)]
pub(crate) struct Lru {
    nodes: Nodes,
    list: List,
}

impl Lru {
    pub(crate) fn new() -> Self {
        Self::default()
    }
}

impl EvictionPolicy for Lru {
    fn on_insert(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.nodes.init(idx, weight);
        self.list.push_back(&mut self.nodes, idx);
    }

    fn on_access(&mut self, idx: Idx, _hash: u64) {
        self.list.move_to_back(&mut self.nodes, idx);
    }

    fn on_update(&mut self, idx: Idx, _hash: u64, weight: u32, _hash_of: HashOf<'_>) {
        self.list.set_weight(&mut self.nodes, idx, weight);
        self.list.move_to_back(&mut self.nodes, idx);
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
    fn evicts_least_recent() {
        let mut lru = Lru::new();
        for i in 0..3 {
            lru.on_insert(i, 0, 1, &no_hashes);
        }
        lru.on_access(0, 0);
        assert_eq!(lru.evict(&|_| 0), Some(1));
        assert_eq!(lru.evict(&|_| 0), Some(2));
        assert_eq!(lru.evict(&|_| 0), Some(0));
        assert_eq!(lru.evict(&|_| 0), None);
        lru.validate();
    }
}
