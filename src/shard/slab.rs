//! The shard's slab: slots for values, addressed by index, each either
//! holding a value or vacant.
//!
//! Why not `Vec<Option<T>>`: for a `u64 -> u64` entry (16 bytes, no niche)
//! the `Option` tag costs 8 more bytes per slot. Here a slot is a
//! `MaybeUninit<T>` and whether it holds a value is one bit of an
//! occupancy word. Slots come in blocks of 64 with their block's word
//! behind them, so the slab is one `Vec` (24 bytes: it fits the cache line
//! of the shard that a read uses, see `Core`) and costs 16 bytes per 64
//! slots (0.25 bytes per slot). Blocks are 16-byte aligned and the slots
//! come first, so a 16-byte value never straddles two cache lines. (With
//! the word in front the slots started 8 bytes in, and one 16-byte value in
//! four straddled two lines: a read hit on one of those missed twice,
//! cachegrind's read of 1 Mi entries counted 0.17 extra L1 misses per
//! read.)
//!
//! The slab does not choose indices: the shard does (its free list, then
//! the next unused index), so the index an entry gets is what it was with
//! the `Vec<Option<_>>` this replaces.
//!
//! Soundness rests on one rule, kept by every method: a slot's bit is set
//! exactly while the slot holds an initialised value (set after the value is
//! written, cleared before it is moved out or dropped). The model test
//! below checks it against `Vec<Option<T>>`, counting drops.

use std::mem::MaybeUninit;

/// Slots per block (one bit each in the block's occupancy word).
const BLOCK: usize = 64;

#[repr(C, align(16))]
struct Block<T> {
    items: [MaybeUninit<T>; BLOCK],
    /// Bit `s` is set iff `items[s]` holds a value.
    live: u64,
}

impl<T> Block<T> {
    fn new() -> Self {
        Self {
            items: [const { MaybeUninit::uninit() }; BLOCK],
            live: 0,
        }
    }
}

/// Slots addressed by index, each holding a `T` or vacant.
pub(crate) struct Slab<T> {
    blocks: Vec<Block<T>>,
}

/// The block, the slot in it and the slot's bit, for index `i`.
#[inline]
fn at(i: usize) -> (usize, usize, u64) {
    (i / BLOCK, i % BLOCK, 1 << (i % BLOCK))
}

impl<T> Slab<T> {
    /// An empty slab (no allocation).
    pub(crate) const fn new() -> Self {
        Self { blocks: Vec::new() }
    }

    /// Slots the slab can address without allocating (a multiple of 64).
    pub(crate) fn capacity(&self) -> usize {
        self.blocks.capacity().saturating_mul(BLOCK)
    }

    /// Makes room for indices below `slots` (exactly, rounded up to a
    /// block).
    pub(crate) fn reserve(&mut self, slots: usize) {
        let want = slots.div_ceil(BLOCK);
        if want > self.blocks.len() {
            self.blocks.reserve_exact(want - self.blocks.len());
        }
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.blocks.capacity() * std::mem::size_of::<Block<T>>()
    }

    /// True if slot `i` holds a value.
    #[inline]
    pub(crate) fn is_live(&self, i: usize) -> bool {
        let (b, _, bit) = at(i);
        self.blocks
            .get(b)
            .is_some_and(|block| block.live & bit != 0)
    }

    /// The value in slot `i`, if any.
    #[inline]
    pub(crate) fn get(&self, i: usize) -> Option<&T> {
        let (b, s, bit) = at(i);
        let block = self.blocks.get(b)?;
        if block.live & bit == 0 {
            return None;
        }
        // SAFETY: the slot's bit is set, so it holds an initialised value
        // (the module's rule); the shared borrow of `self` keeps it there.
        Some(unsafe { block.items[s].assume_init_ref() })
    }

    /// The value in slot `i`, if any, to change in place.
    #[inline]
    pub(crate) fn get_mut(&mut self, i: usize) -> Option<&mut T> {
        let (b, s, bit) = at(i);
        let block = self.blocks.get_mut(b)?;
        if block.live & bit == 0 {
            return None;
        }
        // SAFETY: as in `get`; the unique borrow of `self` keeps the value
        // (and its bit) in place while the reference lives.
        Some(unsafe { block.items[s].assume_init_mut() })
    }

    /// The value in slot `i`, without reading its occupancy word (one cache
    /// line fewer for a lookup: see `Core::find_live`) or checking that its
    /// block exists.
    ///
    /// # Safety
    ///
    /// Slot `i` must hold a value.
    #[inline]
    pub(crate) unsafe fn get_unchecked(&self, i: usize) -> &T {
        let (b, s, _) = at(i);
        debug_assert!(self.is_live(i), "slot {i} is vacant");
        // SAFETY: the caller promises the slot holds a value, so its block
        // exists (blocks are only added, up to `put`'s index, or all
        // removed by `clear`, which leaves no slot holding a value), and
        // the value is initialised.
        unsafe { self.blocks.get_unchecked(b).items[s].assume_init_ref() }
    }

    /// Puts `value` in vacant slot `i`, adding blocks up to it if needed
    /// (within the reserved capacity, without reallocating).
    ///
    /// # Panics
    ///
    /// If slot `i` holds a value (the shard never does this: its free list
    /// and next index name vacant slots only); `value` is dropped, the slot
    /// keeps its value.
    pub(crate) fn put(&mut self, i: usize, value: T) {
        let (b, s, bit) = at(i);
        if self.blocks.len() <= b {
            self.blocks.resize_with(b + 1, Block::new);
        }
        let block = &mut self.blocks[b];
        assert!(block.live & bit == 0, "slot {i} holds a value");
        block.items[s].write(value);
        block.live |= bit;
    }

    /// Moves the value out of slot `i`, leaving it vacant.
    #[inline]
    pub(crate) fn take(&mut self, i: usize) -> Option<T> {
        let (b, s, bit) = at(i);
        let block = self.blocks.get_mut(b)?;
        if block.live & bit == 0 {
            return None;
        }
        block.live &= !bit;
        // SAFETY: the bit was set, so the slot held an initialised value;
        // the bit is clear now, so this value is never read or dropped
        // through the slab again.
        Some(unsafe { block.items[s].assume_init_read() })
    }

    /// Every value with its index, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &T)> {
        (0..self.blocks.len() * BLOCK).filter_map(move |i| self.get(i).map(|v| (i, v)))
    }

    /// Number of values held (counted: for checks).
    pub(crate) fn count(&self) -> usize {
        self.blocks
            .iter()
            .map(|b| b.live.count_ones() as usize)
            .sum()
    }

    /// Drops every value; keeps the allocation.
    pub(crate) fn clear(&mut self) {
        for block in &mut self.blocks {
            while block.live != 0 {
                let s = block.live.trailing_zeros() as usize;
                block.live &= !(1 << s);
                // SAFETY: the slot's bit was set: it holds a value. The bit
                // is cleared first, so were this drop to panic the value
                // would count as gone (leaked at worst, never dropped twice).
                unsafe { block.items[s].assume_init_drop() };
            }
        }
        self.blocks.clear();
    }

    /// Frees the allocation if the slab holds nothing (what `Vec` would
    /// free: blocks past the last one in use).
    pub(crate) fn shrink_to_fit(&mut self) {
        self.blocks.shrink_to_fit();
    }
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for Slab<T> {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A value that records its own drop in a shared tally.
    #[derive(Debug)]
    struct Counted {
        id: usize,
        drops: Rc<RefCell<Vec<u32>>>,
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            self.drops.borrow_mut()[self.id] += 1;
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Put(usize),
        Take(usize),
        Get(usize),
        Mutate(usize),
        Reserve(usize),
        Clear,
        Shrink,
    }

    fn op() -> impl Strategy<Value = Op> {
        // Indices over three blocks and a bit, so block edges are crossed.
        let i = 0usize..200;
        prop_oneof![
            6 => i.clone().prop_map(Op::Put),
            4 => i.clone().prop_map(Op::Take),
            3 => i.clone().prop_map(Op::Get),
            1 => i.prop_map(Op::Mutate),
            1 => (0usize..300).prop_map(Op::Reserve),
            1 => Just(Op::Clear),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        /// Every operation agrees with `Vec<Option<_>>`, and every value
        /// made is dropped exactly once (in the slab, or after being taken
        /// out), including those still held when the slab is dropped.
        #[test]
        fn agrees_with_a_vec_of_options_and_drops_each_value_once(
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let drops = Rc::new(RefCell::new(Vec::new()));
            let made = RefCell::new(0usize);
            let new = |tag: usize| {
                let id = *made.borrow();
                *made.borrow_mut() += 1;
                drops.borrow_mut().push(0);
                (Counted { id, drops: drops.clone() }, tag)
            };
            let mut slab: Slab<(Counted, usize)> = Slab::new();
            let mut model: Vec<Option<usize>> = Vec::new();
            for (step, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Put(i) => {
                        if model.get(i).is_some_and(Option::is_some) {
                            continue; // the shard never puts into a live slot
                        }
                        if model.len() <= i {
                            model.resize(i + 1, None);
                        }
                        slab.reserve(i + 1);
                        let cap = slab.capacity();
                        slab.put(i, new(step));
                        prop_assert_eq!(slab.capacity(), cap, "put within reserve reallocated");
                        model[i] = Some(step);
                    }
                    Op::Take(i) => {
                        let got = slab.take(i);
                        if let Some((c, _)) = &got {
                            prop_assert_eq!(drops.borrow()[c.id], 0, "taken out undropped");
                        }
                        let got = got.map(|(_, tag)| tag);
                        prop_assert_eq!(got, model.get_mut(i).and_then(Option::take));
                    }
                    Op::Get(i) => {
                        let got = slab.get(i).map(|v| v.1);
                        prop_assert_eq!(got, model.get(i).copied().flatten());
                        prop_assert_eq!(slab.is_live(i), got.is_some());
                        if got.is_some() {
                            // SAFETY: just seen live.
                            prop_assert_eq!(unsafe { slab.get_unchecked(i) }.1, got.unwrap());
                        }
                    }
                    Op::Mutate(i) => {
                        if let Some(v) = slab.get_mut(i) {
                            v.1 += 1000;
                        }
                        if let Some(Some(v)) = model.get_mut(i) {
                            *v += 1000;
                        }
                    }
                    Op::Reserve(n) => {
                        slab.reserve(n);
                        prop_assert!(slab.capacity() >= n);
                    }
                    Op::Clear => {
                        slab.clear();
                        model.clear();
                    }
                    Op::Shrink => slab.shrink_to_fit(),
                }
                let live: Vec<(usize, usize)> = slab.iter().map(|(i, v)| (i, v.1)).collect();
                let want: Vec<(usize, usize)> = model
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i, v)))
                    .collect();
                prop_assert_eq!(&live, &want);
                prop_assert_eq!(slab.count(), want.len());
                // Values in the slab are undropped; the rest dropped once.
                let held: Vec<usize> = slab.iter().map(|(_, v)| v.0.id).collect();
                for (id, &n) in drops.borrow().iter().enumerate() {
                    prop_assert_eq!(n, u32::from(!held.contains(&id)), "value {}", id);
                }
            }
            drop(slab);
            prop_assert!(drops.borrow().iter().all(|&n| n == 1), "{:?}", drops.borrow());
        }
    }

    #[test]
    fn putting_into_a_live_slot_panics_and_keeps_both_accounted() {
        let drops = Rc::new(RefCell::new(vec![0, 0]));
        let mut slab = Slab::new();
        slab.put(
            70,
            Counted {
                id: 0,
                drops: drops.clone(),
            },
        );
        let again = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            slab.put(
                70,
                Counted {
                    id: 1,
                    drops: drops.clone(),
                },
            )
        }));
        assert!(again.is_err());
        assert_eq!(*drops.borrow(), vec![0, 1], "the rejected value dropped");
        assert_eq!(slab.get(70).map(|c| c.id), Some(0));
        drop(slab);
        assert_eq!(*drops.borrow(), vec![1, 1]);
    }

    #[test]
    fn a_block_is_16_byte_aligned_and_values_of_16_bytes_fill_it() {
        assert_eq!(std::mem::align_of::<Block<[u64; 2]>>(), 16);
        assert_eq!(std::mem::size_of::<Block<[u64; 2]>>(), 16 + 64 * 16);
        assert_eq!(std::mem::size_of::<Slab<[u64; 2]>>(), 24);
        let mut slab = Slab::new();
        slab.reserve(1);
        slab.put(0, [1u64, 2]);
        assert_eq!(slab.capacity(), 64);
        assert_eq!(slab.heap_bytes(), 1040);
    }

    #[test]
    fn no_16_byte_value_straddles_two_cache_lines() {
        let mut slab = Slab::new();
        slab.reserve(3 * BLOCK);
        for i in 0..3 * BLOCK {
            slab.put(i, [i as u64, 0]);
        }
        for i in 0..3 * BLOCK {
            let at = slab.get(i).expect("live") as *const [u64; 2] as usize;
            assert_eq!(at % 16, 0, "slot {i} at {at:#x}");
            assert_eq!(at / 64, (at + 15) / 64, "slot {i} straddles");
        }
    }
}
