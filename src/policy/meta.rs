//! One policy byte per entry, readable and writable under the shard's
//! *read* lock: how S3-FIFO, SIEVE and W-TinyLFU note a read hit without
//! the write lock (a frequency, a visited bit, pending hits), and where
//! they keep the rest of an entry's state (its queue or segment).
//!
//! The bytes are relaxed atomics: readers may overwrite each other's note
//! (a lost hit), which the policies document; whatever the write lock
//! alone changes is only changed under it. A boxed slice rather than a
//! `Vec` (16 bytes instead of 24: W-TinyLFU keeps it in the shard's read
//! line, see `crate::shard::Core`), grown by doubling.

use super::Idx;
use crate::sync::{AtomicU8, Ordering};

/// The meta bytes of a policy's entries, by index; 0 for an index never
/// set.
#[derive(Debug, Default)]
pub(crate) struct MetaBytes(Box<[AtomicU8]>);

impl MetaBytes {
    /// The byte of `idx`, for a read hit's note (`None` beyond the entries
    /// the policy was told about).
    #[inline]
    pub(crate) fn slot(&self, idx: Idx) -> Option<&AtomicU8> {
        self.0.get(idx as usize)
    }

    /// The byte of `idx`, which the policy was told about.
    #[inline]
    pub(crate) fn get(&self, idx: Idx) -> u8 {
        self.0[idx as usize].load(Ordering::Relaxed)
    }

    /// Sets the byte of `idx`, which the policy was told about (or which
    /// [`make_room`](Self::make_room) covered).
    #[inline]
    pub(crate) fn set(&mut self, idx: Idx, meta: u8) {
        self.0[idx as usize].store(meta, Ordering::Relaxed);
    }

    /// Makes room for the byte of `idx` (a new entry), doubling the bytes
    /// (as a `Vec` would) so that growing one entry at a time costs
    /// amortised O(1).
    #[inline]
    pub(crate) fn make_room(&mut self, idx: Idx) {
        let i = idx as usize;
        if i >= self.0.len() {
            self.resize(i.saturating_add(1).max(self.0.len() * 2).max(16));
        }
    }

    /// Room for the bytes of indices below `slots` at least, exactly (see
    /// `EvictionPolicy::reserve_slots`).
    pub(crate) fn reserve_slots(&mut self, slots: usize) {
        if slots > self.0.len() {
            self.resize(slots);
        }
    }

    /// Reallocates to exactly `len` bytes (at least the current length),
    /// keeping their values; new ones are 0.
    #[cold]
    fn resize(&mut self, len: usize) {
        let old = std::mem::take(&mut self.0);
        let mut v: Vec<AtomicU8> = Vec::with_capacity(len);
        v.extend(old.iter().map(|m| AtomicU8::new(m.load(Ordering::Relaxed))));
        v.resize_with(len, || AtomicU8::new(0));
        self.0 = v.into_boxed_slice();
    }

    /// Forgets every byte and frees them.
    pub(crate) fn clear(&mut self) {
        self.0 = Box::default();
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.0.len()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn bytes_keep_their_values_as_they_grow() {
        let mut m = MetaBytes::default();
        assert!(m.slot(0).is_none());
        m.make_room(0);
        assert_eq!(m.heap_bytes(), 16);
        m.set(3, 7);
        m.make_room(40);
        assert_eq!(m.heap_bytes(), 41, "one index past the doubling");
        m.set(40, 9);
        m.make_room(41);
        assert_eq!(m.heap_bytes(), 82, "doubled");
        assert_eq!((m.get(3), m.get(40), m.get(41)), (7, 9, 0));
        m.reserve_slots(100);
        assert_eq!(m.heap_bytes(), 100);
        assert_eq!(m.get(3), 7);
        m.clear();
        assert_eq!(m.heap_bytes(), 0);
        assert!(m.slot(3).is_none());
    }
}
