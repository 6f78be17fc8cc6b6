//! Index-linked doubly linked lists over one node arena.
//!
//! Every list-based policy (LRU, FIFO, SLRU, the W-TinyLFU window and main
//! space, LFU's frequency buckets) keeps its order here. Nodes are addressed
//! by the shard's slab index ([`Idx`]), so a "pointer" is a `u32` and there
//! is no `unsafe` (the layout of quick_cache's `linked_slab.rs`, written
//! anew). Several [`List`]s may share one [`Nodes`] arena: a node sits on at
//! most one list at a time.

use super::Idx;

/// The "no node" link.
pub(crate) const NIL: Idx = u32::MAX;

/// The two links of an entry's node (8 bytes).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Node {
    pub(crate) prev: Idx,
    pub(crate) next: Idx,
}

const UNLINKED: Node = Node {
    prev: NIL,
    next: NIL,
};

/// The arena of nodes, indexed like the shard's slab, with two optional
/// side arrays:
///
/// * **weights**, allocated only once some entry weighs other than 1: a
///   cache without a weigher (every entry weighs 1) keeps 8 bytes of links
///   per entry and no weights (the shard keeps its own copy the same way;
///   the policy keeps its own copy so list surgery never reads the slab).
/// * **tags**, one `u32` per entry whose meaning belongs to the policy
///   (segment, frequency bucket), allocated by the first non-zero
///   [`set_tag`](Nodes::set_tag): FIFO, LRU and W-TinyLFU never use it.
#[derive(Debug, Default)]
pub(crate) struct Nodes {
    links: Vec<Node>,
    weights: Weights,
    tags: Sparse<0>,
}

/// A `u32` per [`Idx`] that reads `D` until set otherwise and costs no
/// memory while every index holds `D` (then 4 bytes per index up to the
/// highest one set to something else).
#[derive(Debug, Default)]
pub(crate) struct Sparse<const D: u32> {
    v: Vec<u32>,
}

/// Per-entry weights: 1 unless set otherwise, no memory until some entry
/// weighs other than 1. Used by the policies' [`Nodes`] and by the shard
/// itself.
pub(crate) type Weights = Sparse<1>;

impl<const D: u32> Sparse<D> {
    /// The value of `idx` (`D` unless set otherwise).
    #[inline]
    pub(crate) fn get(&self, idx: Idx) -> u32 {
        self.v.get(idx as usize).copied().unwrap_or(D)
    }

    /// Sets the value of `idx`.
    #[inline]
    pub(crate) fn set(&mut self, idx: Idx, value: u32) {
        let i = idx as usize;
        if i >= self.v.len() {
            if value == D {
                return;
            }
            self.v.resize(i + 1, D);
        }
        self.v[i] = value;
    }

    /// Forgets every value and frees the memory.
    pub(crate) fn clear(&mut self) {
        self.v = Vec::new();
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.v.capacity() * std::mem::size_of::<u32>()
    }
}

/// Grows `v`'s capacity to exactly `slots` if it is below (see
/// `EvictionPolicy::reserve_slots`).
pub(crate) fn reserve_exact_to<T>(v: &mut Vec<T>, slots: usize) {
    if slots > v.capacity() {
        v.reserve_exact(slots - v.len());
    }
}

impl Nodes {
    /// Room for nodes `0..slots` (see `EvictionPolicy::reserve_slots`).
    pub(crate) fn reserve_slots(&mut self, slots: usize) {
        reserve_exact_to(&mut self.links, slots);
    }

    /// Resets the node at `idx` (growing the arena if needed) to unlinked
    /// with `weight`. Its tag, if the policy uses tags, is left as it was.
    #[inline]
    pub(crate) fn init(&mut self, idx: Idx, weight: u32) {
        let i = idx as usize;
        if i >= self.links.len() {
            self.links.resize(i + 1, UNLINKED);
        }
        self.links[i] = UNLINKED;
        self.weights.set(idx, weight);
    }

    /// The weight of `idx`.
    #[inline]
    pub(crate) fn weight(&self, idx: Idx) -> u32 {
        self.weights.get(idx)
    }

    #[inline]
    pub(crate) fn get(&self, idx: Idx) -> &Node {
        &self.links[idx as usize]
    }

    #[inline]
    pub(crate) fn get_mut(&mut self, idx: Idx) -> &mut Node {
        &mut self.links[idx as usize]
    }

    /// The policy's tag of `idx` (0 if never set).
    #[inline]
    pub(crate) fn tag(&self, idx: Idx) -> u32 {
        self.tags.get(idx)
    }

    /// Sets the policy's tag of `idx`.
    #[inline]
    pub(crate) fn set_tag(&mut self, idx: Idx, tag: u32) {
        self.tags.set(idx, tag);
    }

    /// Drops every node (the lists using this arena must be cleared too).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Heap bytes held by the arena.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.links.capacity() * std::mem::size_of::<Node>()
            + self.weights.heap_bytes()
            + self.tags.heap_bytes()
    }
}

/// One list: `head` is the oldest end (LRU / next to leave), `tail` the
/// newest (MRU). Tracks its length and total weight.
#[derive(Debug, Clone, Copy)]
pub(crate) struct List {
    head: Idx,
    tail: Idx,
    len: usize,
    weight: u64,
}

impl Default for List {
    fn default() -> Self {
        Self {
            head: NIL,
            tail: NIL,
            len: 0,
            weight: 0,
        }
    }
}

impl List {
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Total weight of the nodes on this list.
    #[inline]
    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// The oldest node, if any.
    #[inline]
    pub(crate) fn front(&self) -> Option<Idx> {
        (self.head != NIL).then_some(self.head)
    }

    /// Appends `idx` (not on any list) at the newest end.
    #[inline]
    pub(crate) fn push_back(&mut self, nodes: &mut Nodes, idx: Idx) {
        let old_tail = self.tail;
        {
            self.weight += u64::from(nodes.weight(idx));
            let node = nodes.get_mut(idx);
            debug_assert!(node.prev == NIL && node.next == NIL && self.head != idx);
            node.prev = old_tail;
            node.next = NIL;
        }
        if old_tail == NIL {
            self.head = idx;
        } else {
            nodes.get_mut(old_tail).next = idx;
        }
        self.tail = idx;
        self.len += 1;
    }

    /// Removes `idx`, which must be on this list.
    #[inline]
    pub(crate) fn unlink(&mut self, nodes: &mut Nodes, idx: Idx) {
        let Node { prev, next } = *nodes.get(idx);
        let weight = nodes.weight(idx);
        if prev == NIL {
            self.head = next;
        } else {
            nodes.get_mut(prev).next = next;
        }
        if next == NIL {
            self.tail = prev;
        } else {
            nodes.get_mut(next).prev = prev;
        }
        let node = nodes.get_mut(idx);
        node.prev = NIL;
        node.next = NIL;
        self.len -= 1;
        self.weight -= u64::from(weight);
    }

    /// Moves `idx`, which must be on this list, to the newest end.
    #[inline]
    pub(crate) fn move_to_back(&mut self, nodes: &mut Nodes, idx: Idx) {
        if self.tail != idx {
            self.unlink(nodes, idx);
            self.push_back(nodes, idx);
        }
    }

    /// Removes and returns the oldest node.
    #[inline]
    pub(crate) fn pop_front(&mut self, nodes: &mut Nodes) -> Option<Idx> {
        let idx = self.front()?;
        self.unlink(nodes, idx);
        Some(idx)
    }

    /// Changes the weight of `idx`, which must be on this list.
    #[inline]
    pub(crate) fn set_weight(&mut self, nodes: &mut Nodes, idx: Idx, weight: u32) {
        self.weight = self.weight - u64::from(nodes.weight(idx)) + u64::from(weight);
        nodes.weights.set(idx, weight);
    }

    /// Forgets every node (the arena is not touched).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    /// Walks the list from oldest to newest.
    pub(crate) fn iter<'a>(&self, nodes: &'a Nodes) -> impl Iterator<Item = Idx> + 'a {
        let mut cur = self.head;
        std::iter::from_fn(move || {
            if cur == NIL {
                return None;
            }
            let idx = cur;
            cur = nodes.get(idx).next;
            Some(idx)
        })
    }

    /// Checks the links, length and weight; panics on the first inconsistency.
    pub(crate) fn validate(&self, nodes: &Nodes) {
        let mut prev = NIL;
        let mut len = 0;
        let mut weight = 0u64;
        let mut cur = self.head;
        while cur != NIL {
            let node = nodes.get(cur);
            assert_eq!(node.prev, prev, "broken prev link at {cur}");
            weight += u64::from(nodes.weight(cur));
            len += 1;
            assert!(len <= self.len, "list longer than its length");
            prev = cur;
            cur = node.next;
        }
        assert_eq!(self.tail, prev, "tail mismatch");
        assert_eq!(self.len, len, "length mismatch");
        assert_eq!(self.weight, weight, "weight mismatch");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_unlink_move_pop() {
        let mut nodes = Nodes::default();
        let mut list = List::default();
        for i in 0..5 {
            nodes.init(i, i + 1);
            list.push_back(&mut nodes, i);
        }
        list.validate(&nodes);
        assert_eq!(list.weight(), 15);
        list.unlink(&mut nodes, 2);
        list.move_to_back(&mut nodes, 0);
        list.validate(&nodes);
        assert_eq!(list.iter(&nodes).collect::<Vec<_>>(), vec![1, 3, 4, 0]);
        assert_eq!(list.pop_front(&mut nodes), Some(1));
        list.set_weight(&mut nodes, 4, 10);
        list.validate(&nodes);
        assert_eq!(list.weight(), 4 + 10 + 1);
        assert_eq!((list.front(), list.len()), (Some(3), 3));
    }
}
