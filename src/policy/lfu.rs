//! PLACEHOLDER (being written): behaves as LRU for now.
use super::lru::Lru;
use super::{EvictionPolicy, Idx};

#[derive(Debug)]
pub(crate) struct Lfu(Lru);

impl Lfu {
    pub(crate) fn new(_capacity: u64) -> Self {
        Self(Lru::new())
    }
}

impl EvictionPolicy for Lfu {
    fn on_insert(&mut self, idx: Idx, hash: u64, weight: u32) {
        self.0.on_insert(idx, hash, weight)
    }
    fn on_access(&mut self, idx: Idx, hash: u64) {
        self.0.on_access(idx, hash)
    }
    fn on_update(&mut self, idx: Idx, hash: u64, weight: u32) {
        self.0.on_update(idx, hash, weight)
    }
    fn on_remove(&mut self, idx: Idx) {
        self.0.on_remove(idx)
    }
    fn evict(&mut self, hash_of: &dyn Fn(Idx) -> u64) -> Option<Idx> {
        self.0.evict(hash_of)
    }
    fn clear(&mut self) {
        self.0.clear()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn weight(&self) -> u64 {
        self.0.weight()
    }
    fn heap_bytes(&self) -> usize {
        self.0.heap_bytes()
    }
    fn validate(&self) {
        self.0.validate()
    }
}
