//! A 4-bit count-min frequency sketch with a doorkeeper and periodic
//! halving: the popularity estimate behind W-TinyLFU's admission test.
//!
//! The design is the one of TinyLFU (Einziger, Friedman and Manes, "TinyLFU:
//! A Highly Efficient Cache Admission Policy", ACM Transactions on Storage
//! 13(4), 2017), with the cache-line blocked layout popularised by
//! Caffeine's `FrequencySketch`; the code here is written from the paper's
//! description, not ported.
//!
//! # Layout
//!
//! Everything one key uses is in one 64-byte block (one cache line), so
//! an increment or an estimate touches one line:
//!
//! * **Counters.** Words 0 to 6 of the block hold 4-bit saturating
//!   counters, 16 to a word (112 to a block). A key's 4 counters sit in 4
//!   *different* words (counter `i` of 0, 1, 2 in word `2i` or `2i + 1`,
//!   counter 3 in word 6), so the 4 never alias one another.
//! * **Doorkeeper.** Word 7 of the block is a Bloom filter (2 bits per
//!   key) in front of the block's counters: the first occurrence of a key
//!   in a sample period only sets its doorkeeper bits, later occurrences
//!   count. Most keys of real traces are seen once, so they cost a bit or
//!   two instead of polluting the counters that the popular keys share.
//! * **Aging ("reset").** After `20 x entries` increments every counter is
//!   halved (a shift and a mask per word) and the doorkeeper is cleared, so
//!   yesterday's popularity fades and an estimate stays comparable over
//!   time.
//! * **Estimate** = the smallest of the 4 counters, plus 1 if the doorkeeper
//!   holds the key, capped at 15. Until a reset it is never below the true
//!   count of the key (up to 15): hash collisions only ever inflate it.
//! * **Increment** is *conservative* (Estan and Varghese, SIGCOMM 2002):
//!   only the counters equal to the current minimum go up. The estimate of
//!   the key rises by exactly one, as with incrementing all four, but other
//!   keys sharing the larger counters are inflated less.
//!
//! Until issue 15 (session 8) the doorkeeper was a separate array (16
//! bits per entry) and blocks held 8 words of counters: every sketch
//! operation touched two lines. In a cache that evicts on most inserts
//! (`examples/profile_get evict`, 1 thread) the one-line block takes
//! 0.5 L1 data misses per operation off W-TinyLFU's 6.8 (a failed get and
//! an insert make 3 to 4 sketch operations).
//!
//! # Size and lifetime
//!
//! The table is sized for a number of *entries* (not weight units): one
//! 64-byte block per [`ENTRIES_PER_BLOCK`] (6) entries, about 10.7 bytes
//! (18.7 counters and 10.7 doorkeeper bits) per entry. The block index is
//! the high half of the key's spread hash scaled to the block count (a
//! multiply and a shift, not a mask), so the count need not be a power of
//! two: the full table, for the entry capacity, has `b x 2^d` blocks with
//! `b` between 8 and 16, at most an eighth more than its entries need.
//! The owner (W-TinyLFU) allocates the table at the shard's first insert,
//! for [`MIN_ENTRIES`], so that frequency counts from the first access;
//! until it is allocated [`increment`](FrequencySketch::increment) does
//! nothing and every estimate is 0. As entries keep arriving the table
//! doubles (entries are rounded up to a power of two, up to the entry
//! capacity), each block copied into the `2^k` blocks that replace it: a
//! key's new block is one of the copies of its old one, so no count is
//! lost.
//!
//! The one-line block has 7/8 of the counters and half the doorkeeper
//! bits of the old layout for the same size. At 8 entries per block (8
//! bytes per entry, 2.3 fewer than before at 1 M entries) W-TinyLFU's mean
//! efficiency over the 88 cells was 0.0021 lower (seeds 1-5); at 6 per
//! block the memory is what it was (27.4 bytes per entry beyond the
//! payload at 1 M `u64 -> u64`) and the mean is within 0.001 of the old
//! layout's (figures in `benches/results/sketch-layout-s8.md`).
//!
//! Issue 14 doubled the counters and the sample period per entry (from 16
//! entries per block, one doorkeeper byte and `10 x entries`): over its 88
//! cells that was worth 0.6 points of W-TinyLFU's mean efficiency, most of
//! it on the big ARC traces (arc-P2 +2.5, arc-P3 +1.5 points) where many
//! more keys than entries compete for the counters; the same sample period
//! with the old table gave 0.863 against 0.869.
//!
//! A sketch is never sized for fewer than [`MIN_ENTRIES`] (128) entries,
//! so its sample period is at least 2,560 increments. Shorter periods age
//! the counts faster than a small cache can tell popular keys apart: on
//! the shared traces a minimum of 128 entries cost 5 points of efficiency
//! (loops over about 1,000 keys looked uniformly cold), 512 gained nothing.
//!
//! # Measured alternatives
//!
//! (Issue 5's measurements, with the old sizes.) With the simulator (`examples/simulate.rs`) over the 68 cells of the
//! shared traces (default sharding, W-TinyLFU starting from a 5% window,
//! before its aging-fair duel was added), W-TinyLFU's efficiency (hit
//! ratio / OPT's) was 0.851 with this sketch, 0.850 with 8 entries per
//! block (twice the memory), 0.851 with 4 (four times), and 0.850 without
//! doorkeeper and conservative update at 8 entries per block. Dropping
//! only the conservative update cost 1 to 1.5 points; a doorkeeper of 4,
//! 16 or 32 bits per entry cost 2, 0.2 and 0.8 points.

/// Mask keeping the low 3 bits of every 4-bit counter, used to halve a word
/// of counters after a shift: 0x7777_7777_7777_7777.
const HALVE_MASK: u64 = 0x7777_7777_7777_7777;

/// Largest value a counter (and an estimate) reaches.
pub(crate) const MAX_FREQUENCY: u8 = 15;

/// Words per block: 8 x 8 bytes = one 64-byte cache line.
const BLOCK_WORDS: usize = 8;

/// Counter words at the start of each block; the last word is the
/// block's doorkeeper.
const COUNTER_WORDS: usize = BLOCK_WORDS - 1;

/// The doorkeeper's word in a block.
const DOOR_WORD: usize = COUNTER_WORDS;

/// Cache entries covered by one 64-byte block (10.7 bytes per entry,
/// before rounding the block count up, by at most an eighth). See "Size
/// and lifetime" above.
const ENTRIES_PER_BLOCK: u64 = 6;

/// Fewest entries a sketch is sized for (a sample period of at least
/// 2,560 increments).
pub(crate) const MIN_ENTRIES: u64 = 128;

/// The smallest table a sketch may grow to has between this many and
/// twice as many blocks (so that the full table, that many doubled some
/// number of times, is at most an eighth above what its entries need).
const MIN_BLOCKS: u64 = 8;

/// A sample period is this many increments per entry the sketch is sized
/// for; then every counter is halved.
pub(crate) const SAMPLE_FACTOR: u64 = 20;

/// Most entries a sketch is ever sized for (2^29, a table of at most
/// 7.7 GiB); bigger caches share counters more.
const MAX_ENTRIES: u64 = 1 << 29;

/// One block: [`COUNTER_WORDS`] words of 16 counters, then a word of
/// doorkeeper bits, aligned to a cache line so
/// that all a key's sketch state is in one line (a `Vec<u64>` from the
/// allocator is only 16-byte aligned).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
struct Block([u64; BLOCK_WORDS]);

/// Where a key lives in its block: the block's index, the 4 (word, bit
/// shift) pairs of its counters, and its 2 bits in the block's
/// doorkeeper word.
#[derive(Clone, Copy)]
struct Slots {
    block: usize,
    counters: [(usize, u32); 4],
    door: u64,
}

/// A count-min sketch of 4-bit counters with a doorkeeper, for one shard.
#[derive(Debug)]
pub(crate) struct FrequencySketch {
    /// Blocks of counters and doorkeeper bits: `base_blocks x 2^i` of
    /// them for some `i <= max_doublings`.
    table: Vec<Block>,
    /// Blocks of the smallest table (`MIN_BLOCKS..=2 x MIN_BLOCKS`).
    base_blocks: u64,
    /// Doublings from the smallest table to the one for `max_entries`.
    max_doublings: u32,
    /// Entries the table is sized for.
    entries: u64,
    /// Most entries the table may grow to.
    max_entries: u64,
    /// Increments since the last reset (halved at a reset).
    additions: u64,
    /// Increments between resets: `SAMPLE_FACTOR x entries`.
    sample_size: u64,
    /// Mixed into every hash so that two shards (and two caches) collide on
    /// different keys.
    seed: u64,
    /// Resets so far (wrapping): the sketch's "epoch".
    resets: u32,
}

/// The finaliser of SplitMix64: a bijection of `u64` with full avalanche.
#[inline]
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl FrequencySketch {
    /// An unallocated sketch that may grow to `max_entries` (clamped to
    /// [`MIN_ENTRIES`]..=2^30); [`ensure_capacity`](Self::ensure_capacity)
    /// allocates it.
    pub(crate) fn new(max_entries: u64, seed: u64) -> Self {
        let max_entries = max_entries.clamp(MIN_ENTRIES, MAX_ENTRIES);
        // The full table: its entries' blocks rounded up to `base x 2^d`
        // with `base` in MIN_BLOCKS..=2 x MIN_BLOCKS.
        let full = max_entries.div_ceil(ENTRIES_PER_BLOCK).max(MIN_BLOCKS);
        let max_doublings = (full / MIN_BLOCKS).ilog2();
        Self {
            table: Vec::new(),
            base_blocks: full.div_ceil(1 << max_doublings),
            max_doublings,
            entries: 0,
            max_entries,
            additions: 0,
            sample_size: 0,
            seed: mix(seed ^ 0x6A09_E667_F3BC_C908),
            resets: 0,
        }
    }

    /// True once the table is allocated.
    #[cfg(test)]
    pub(crate) fn is_enabled(&self) -> bool {
        !self.table.is_empty()
    }

    /// Allocates an empty table for `entries`.
    fn allocate(&mut self, entries: u64) {
        self.table = vec![Block::default(); self.blocks_for(entries)];
        self.entries = entries;
        self.sample_size = SAMPLE_FACTOR * entries;
    }

    /// Blocks for `entries`: the smallest `base_blocks x 2^i` (with `i` at
    /// most `max_doublings`) covering them at [`ENTRIES_PER_BLOCK`].
    fn blocks_for(&self, entries: u64) -> usize {
        let need = entries.div_ceil(ENTRIES_PER_BLOCK);
        let mut blocks = self.base_blocks;
        while blocks < need && blocks < self.base_blocks << self.max_doublings {
            blocks *= 2;
        }
        blocks as usize
    }

    /// Allocates the table for `entries` (at least [`MIN_ENTRIES`]), or
    /// grows it, if it may, until it is sized for `entries`. Each doubling
    /// copies the table after itself, which keeps every estimate.
    /// W-TinyLFU calls it on every insert: inlined, the usual case (sized
    /// already) is one compare.
    #[inline]
    pub(crate) fn ensure_capacity(&mut self, entries: u64) {
        // `self.entries` is at least MIN_ENTRIES and at most the maximum
        // once allocated, so this is the `entries <= self.entries` below.
        if entries <= self.entries && !self.table.is_empty() {
            return;
        }
        self.grow_to(entries);
    }

    /// The rest of [`ensure_capacity`](Self::ensure_capacity).
    #[inline(never)]
    fn grow_to(&mut self, entries: u64) {
        let entries = entries.clamp(MIN_ENTRIES, self.max_entries);
        if self.table.is_empty() {
            self.allocate(entries);
            return;
        }
        if entries <= self.entries {
            return;
        }
        let target = entries
            .next_power_of_two()
            .clamp(self.entries, self.max_entries);
        let blocks = self.blocks_for(target);
        let copies = blocks / self.table.len();
        let mut table = Vec::with_capacity(blocks);
        for &block in &self.table {
            table.extend(std::iter::repeat(block).take(copies));
        }
        self.table = table;
        self.entries = target;
        self.sample_size = SAMPLE_FACTOR * target;
    }

    /// Increments between two halvings.
    #[inline]
    pub(crate) fn sample_size(&self) -> u64 {
        self.sample_size
    }

    /// Halves every counter and clears the doorkeeper now, as at the end
    /// of a sample period (nothing if the table is not allocated).
    pub(crate) fn halve(&mut self) {
        if !self.table.is_empty() {
            self.reset();
        }
    }

    /// Halves every counter now, as at the end of a sample period.
    #[cfg(test)]
    pub(crate) fn force_reset(&mut self) {
        self.reset();
    }

    /// Entries the sketch is currently sized for.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> u64 {
        self.entries
    }

    /// Where the key with hash `hash` lives. `hash`'s shard bits are
    /// constant within a shard, so it is first spread over all 64 bits
    /// (with the sketch's seed); then the high 32 bits, scaled to the
    /// block count, pick the block, byte `i` of the low 32 bits places
    /// counter `i` (its low bit the word, the next 4 the lane), and the
    /// top 12 bits of a second mix place the 2 doorkeeper bits.
    #[inline]
    fn slots(&self, hash: u64) -> Slots {
        let h = mix(hash ^ self.seed);
        // The high half scaled to the block count: the block of a key in a
        // table `2^d` times bigger is one of the `2^d` copies of its block
        // here (see `grow_to`).
        let block = (((h >> 32) * self.table.len() as u64) >> 32) as usize;
        let counters = std::array::from_fn(|i| {
            let bits = (h >> (i * 8)) as u32;
            // Counters 0, 1, 2 in word pairs (0, 1), (2, 3), (4, 5);
            // counter 3 in word 6: four different words, so the four
            // never alias one another.
            let word = if i < 3 {
                2 * i + (bits & 1) as usize
            } else {
                COUNTER_WORDS - 1
            };
            let shift = ((bits >> 1) & 15) * 4;
            (word, shift)
        });
        let y = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let door = (1u64 << (y >> 58)) | (1u64 << ((y >> 52) & 63));
        Slots {
            block,
            counters,
            door,
        }
    }

    /// True if `block`'s doorkeeper holds the key of `slots`.
    #[inline]
    fn door_has(block: &[u64; BLOCK_WORDS], slots: &Slots) -> bool {
        block[DOOR_WORD] & slots.door == slots.door
    }

    /// Sets the key's doorkeeper bits in `block`.
    #[inline]
    fn door_set(block: &mut [u64; BLOCK_WORDS], slots: &Slots) {
        block[DOOR_WORD] |= slots.door;
    }

    /// The smallest of the key's counters in `block`.
    #[inline]
    fn min_count(block: &[u64; BLOCK_WORDS], slots: &Slots) -> u64 {
        slots
            .counters
            .iter()
            .map(|&(w, s)| (block[w] >> s) & 15)
            .min()
            .unwrap_or(0)
    }

    /// Records one occurrence of the key with hash `hash`.
    pub(crate) fn increment(&mut self, hash: u64) {
        if self.table.is_empty() {
            return;
        }
        let slots = self.slots(hash);
        let block = &mut self.table[slots.block].0;
        if !Self::door_has(block, &slots) {
            Self::door_set(block, &slots);
        } else {
            let min = Self::min_count(block, &slots);
            if min < u64::from(MAX_FREQUENCY) {
                for &(w, s) in &slots.counters {
                    if (block[w] >> s) & 15 == min {
                        block[w] += 1 << s;
                    }
                }
            }
        }
        self.additions += 1;
        if self.additions >= self.sample_size {
            self.reset();
        }
    }

    /// Records `n` occurrences of the key with hash `hash`: exactly what
    /// `n` calls of [`increment`](Self::increment) do (the doorkeeper takes
    /// the first if it lacks the key, then each one raises the counters
    /// equal to the current minimum), with the hashing, the doorkeeper and
    /// the block's words read once instead of `n` times. W-TinyLFU applies
    /// an entry's pending read hits this way (up to 15 at once).
    pub(crate) fn increment_by(&mut self, hash: u64, n: u8) {
        let n = u64::from(n);
        if self.table.is_empty() || n == 0 {
            return;
        }
        if self.additions + n >= self.sample_size {
            // A reset falls inside the run: one at a time, so it falls
            // where it would.
            for _ in 0..n {
                self.increment(hash);
            }
            return;
        }
        let slots = self.slots(hash);
        let block = &mut self.table[slots.block].0;
        let mut counted = n;
        if !Self::door_has(block, &slots) {
            Self::door_set(block, &slots);
            counted -= 1;
        }
        if counted > 0 {
            // Each conservative increment raises exactly the counters at
            // the minimum, so the minimum goes up by one per increment
            // (until it saturates) and the others join it as it reaches
            // them: after `counted` of them a counter holds
            // `max(itself, min(minimum + counted, 15))`. Computed at once
            // (the key's four counters are in four different words, so
            // each is read before its own word is written).
            let min = Self::min_count(block, &slots);
            let level = (min + counted).min(u64::from(MAX_FREQUENCY));
            for &(w, s) in &slots.counters {
                let count = (block[w] >> s) & 15;
                block[w] += level.saturating_sub(count) << s;
            }
        }
        self.additions += n;
    }

    /// The estimated number of occurrences of the key with hash `hash`
    /// since it was last aged, at most [`MAX_FREQUENCY`].
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        if self.table.is_empty() {
            return 0;
        }
        let slots = self.slots(hash);
        let block = &self.table[slots.block].0;
        let door = u64::from(Self::door_has(block, &slots));
        let count = Self::min_count(block, &slots) + door;
        count.min(u64::from(MAX_FREQUENCY)) as u8
    }

    /// Halves every counter and clears the doorkeeper.
    fn reset(&mut self) {
        for block in &mut self.table {
            for word in &mut block.0[..COUNTER_WORDS] {
                *word = (*word >> 1) & HALVE_MASK;
            }
            block.0[DOOR_WORD] = 0;
        }
        self.additions /= 2;
        self.resets = self.resets.wrapping_add(1);
    }

    /// Number of resets so far (wrapping): two accesses made in the same
    /// epoch were aged alike.
    pub(crate) fn epoch(&self) -> u32 {
        self.resets
    }

    /// Heap bytes held by the counters and the doorkeeper.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * std::mem::size_of::<Block>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sketch allocated for `entries`, growable to `max`.
    fn sized(entries: u64, max: u64, seed: u64) -> FrequencySketch {
        let mut sketch = FrequencySketch::new(max, seed);
        sketch.ensure_capacity(entries);
        sketch
    }

    #[test]
    fn unallocated_until_asked() {
        let mut sketch = FrequencySketch::new(1000, 1);
        assert!(!sketch.is_enabled());
        sketch.increment(key(1));
        assert_eq!((sketch.frequency(key(1)), sketch.heap_bytes()), (0, 0));
        sketch.ensure_capacity(10);
        assert!(sketch.is_enabled());
        assert_eq!(sketch.entries(), MIN_ENTRIES);
        assert_eq!(sketch.sample_size(), SAMPLE_FACTOR * MIN_ENTRIES);
    }

    /// Distinct well-spread test hashes.
    fn key(i: u64) -> u64 {
        mix(i.wrapping_add(0x1234_5678))
    }

    #[test]
    fn estimates_never_under_the_true_count() {
        let mut sketch = sized(512, 512, 7);
        // Keys 0..200 incremented i % 15 times each, interleaved.
        for round in 0..15 {
            for i in 0..200u64 {
                if round < i % 15 {
                    sketch.increment(key(i));
                }
            }
        }
        assert!(sketch.additions < sketch.sample_size(), "no reset yet");
        for i in 0..200u64 {
            assert!(u64::from(sketch.frequency(key(i))) >= i % 15, "key {i}");
        }
    }

    /// The sketch's definition with one plain number per counter and a
    /// `bool` per doorkeeper bit, at the places [`FrequencySketch::slots`]
    /// gives: what the packed words must agree with.
    struct Model {
        counters: Vec<[u8; COUNTER_WORDS * 16]>,
        door: Vec<[bool; 64]>,
        additions: u64,
        sample_size: u64,
    }

    impl Model {
        fn of(sketch: &FrequencySketch) -> Self {
            Self {
                counters: vec![[0; COUNTER_WORDS * 16]; sketch.table.len()],
                door: vec![[false; 64]; sketch.table.len()],
                additions: 0,
                sample_size: sketch.sample_size(),
            }
        }

        /// The counter numbers and doorkeeper bits of `slots`.
        fn places(slots: &Slots) -> ([usize; 4], Vec<usize>) {
            let counters = slots.counters.map(|(w, s)| w * 16 + s as usize / 4);
            let door = (0..64).filter(|b| slots.door >> b & 1 == 1).collect();
            (counters, door)
        }

        fn increment(&mut self, slots: &Slots) {
            let (counters, door) = Self::places(slots);
            let b = slots.block;
            if !door.iter().all(|&d| self.door[b][d]) {
                door.iter().for_each(|&d| self.door[b][d] = true);
            } else {
                let min = counters.iter().map(|&c| self.counters[b][c]).min().unwrap();
                for &c in &counters {
                    if self.counters[b][c] == min && min < MAX_FREQUENCY {
                        self.counters[b][c] += 1;
                    }
                }
            }
            self.additions += 1;
            if self.additions >= self.sample_size {
                self.counters.iter_mut().flatten().for_each(|c| *c /= 2);
                self.door.iter_mut().flatten().for_each(|d| *d = false);
                self.additions /= 2;
            }
        }

        fn frequency(&self, slots: &Slots) -> u8 {
            let (counters, door) = Self::places(slots);
            let b = slots.block;
            let min = counters.iter().map(|&c| self.counters[b][c]).min().unwrap();
            (min + u8::from(door.iter().all(|&d| self.door[b][d]))).min(MAX_FREQUENCY)
        }

        /// The packed table this model stands for.
        fn packed(&self) -> Vec<Block> {
            (0..self.counters.len())
                .map(|b| {
                    let mut words = [0u64; BLOCK_WORDS];
                    for (i, &c) in self.counters[b].iter().enumerate() {
                        words[i / 16] |= u64::from(c) << (i % 16 * 4);
                    }
                    for (d, &set) in self.door[b].iter().enumerate() {
                        words[DOOR_WORD] |= u64::from(set) << d;
                    }
                    Block(words)
                })
                .collect()
        }
    }

    proptest::proptest! {
        #[test]
        fn packed_blocks_match_the_plain_model(
            seed in 0u64..1000,
            ops in proptest::collection::vec((0u64..400, 0u8..17), 1..1500),
        ) {
            // 128 entries: 22 blocks, a sample period of 2,560, so that
            // keys collide, counters saturate and resets happen.
            let mut sketch = sized(128, 128, seed);
            let mut model = Model::of(&sketch);
            for &(k, n) in &ops {
                let slots = sketch.slots(key(k));
                // Four different counter words, two doorkeeper bits at most.
                let mut words = slots.counters.map(|(w, _)| w);
                words.sort_unstable();
                proptest::prop_assert!(words.windows(2).all(|p| p[0] < p[1]) && words[3] < COUNTER_WORDS);
                sketch.increment_by(key(k), n);
                for _ in 0..n {
                    model.increment(&slots);
                }
                proptest::prop_assert_eq!(sketch.frequency(key(k)), model.frequency(&slots));
            }
            proptest::prop_assert_eq!(sketch.additions, model.additions);
            proptest::prop_assert_eq!(&sketch.table, &model.packed());
        }
    }

    #[test]
    fn increment_by_is_n_increments() {
        // Two sketches fed the same keys, one by `increment_by` and one by
        // single increments, stay word for word equal, resets included
        // (sized for 128: a sample period of 2,560 increments).
        let mut a = sized(128, 128, 9);
        let mut b = sized(128, 128, 9);
        let mut x = 1u64;
        for step in 0..20_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let k = key(x % 300);
            let n = (step % 17) as u8; // 0..=16: none, one, and saturating runs
            a.increment_by(k, n);
            for _ in 0..n {
                b.increment(k);
            }
            assert_eq!(a.additions, b.additions, "step {step}");
        }
        assert!(a.epoch() > 10, "resets were crossed");
        assert_eq!(a.epoch(), b.epoch());
        assert_eq!(a.table, b.table);
    }

    #[test]
    fn saturates_at_15() {
        let mut sketch = sized(64, 64, 1);
        for _ in 0..100 {
            sketch.increment(key(1));
        }
        assert_eq!(sketch.frequency(key(1)), MAX_FREQUENCY);
        // Exactly the key's 4 counters hold 15: none carried into its
        // neighbour.
        let lanes: Vec<u64> = sketch
            .table
            .iter()
            .flat_map(|b| &b.0[..COUNTER_WORDS])
            .flat_map(|w| (0..16).map(move |lane| (w >> (lane * 4)) & 15))
            .filter(|&c| c != 0)
            .collect();
        assert_eq!(lanes, vec![15; 4]);
    }

    #[test]
    fn reset_halves_counts_and_clears_the_doorkeeper() {
        let mut sketch = sized(64, 64, 3);
        for _ in 0..9 {
            sketch.increment(key(5));
        }
        // Doorkeeper bit + 8 counted.
        assert_eq!(sketch.frequency(key(5)), 9);
        sketch.reset();
        assert_eq!(sketch.frequency(key(5)), 4);
        // Reaching the sample size triggers a reset on its own.
        let mut sketch = sized(64, 64, 3);
        for _ in 0..13 {
            sketch.increment(key(9));
        }
        let sample = sketch.sample_size();
        let mut i = 1000;
        while sketch.additions + 1 < sample {
            sketch.increment(key(i));
            i += 1;
        }
        let before = sketch.frequency(key(9));
        sketch.increment(key(i)); // the reset happens here
        assert!(sketch.frequency(key(9)) <= before / 2 + 1);
        assert_eq!(sketch.additions, sample / 2);
        assert_eq!(sketch.epoch(), 1);
    }

    #[test]
    fn doorkeeper_absorbs_one_hit_wonders() {
        let mut sketch = sized(1024, 1024, 11);
        for i in 0..1000 {
            sketch.increment(key(i));
        }
        // Each key was seen once: mostly only doorkeeper bits were set
        // (a key whose 2 bits another key had set is counted instead).
        let counted: u64 = sketch
            .table
            .iter()
            .flat_map(|b| &b.0[..COUNTER_WORDS])
            .map(|w| w.count_ones() as u64)
            .sum();
        assert!(
            counted < 400,
            "{counted} counter bits set by 1000 one-hit keys"
        );
        assert!((0..1000).all(|i| sketch.frequency(key(i)) >= 1));
        let exact = (0..1000).filter(|&i| sketch.frequency(key(i)) == 1).count();
        assert!(exact > 900, "{exact}");
    }

    #[test]
    fn different_keys_are_mostly_independent() {
        let mut sketch = sized(1024, 1024, 5);
        for i in 0..100 {
            for _ in 0..10 {
                sketch.increment(key(i));
            }
        }
        let inflated = (10_000..20_000)
            .filter(|&i| sketch.frequency(key(i)) > 1)
            .count();
        assert!(
            inflated < 100,
            "{inflated} of 10000 fresh keys look popular"
        );
        let zero = (10_000..20_000)
            .filter(|&i| sketch.frequency(key(i)) == 0)
            .count();
        assert!(zero > 9_000, "only {zero} of 10000 fresh keys read as 0");
    }

    #[test]
    fn growing_keeps_estimates() {
        let mut sketch = sized(16, 1 << 16, 9);
        for i in 0..50u64 {
            for _ in 0..(i % 7) {
                sketch.increment(key(i));
            }
        }
        let before: Vec<u8> = (0..50).map(|i| sketch.frequency(key(i))).collect();
        sketch.ensure_capacity(5000);
        assert_eq!(sketch.entries(), 8192);
        assert_eq!(sketch.sample_size(), SAMPLE_FACTOR * 8192);
        let after: Vec<u8> = (0..50).map(|i| sketch.frequency(key(i))).collect();
        assert_eq!(before, after);
        // Capped at the maximum.
        sketch.ensure_capacity(1 << 20);
        assert_eq!(sketch.entries(), 1 << 16);
        // 65,536 entries need 10,923 blocks: 11 x 2^10 = 11,264 of them.
        assert_eq!(ENTRIES_PER_BLOCK, 6);
        assert_eq!(sketch.heap_bytes(), 11 * 1024 * 64);
    }

    #[test]
    fn full_table_at_most_an_eighth_above_its_entries_need() {
        for max in (0..2_000u64)
            .map(|i| i * 37 + 1)
            .chain([1 << 20, 1_000_003, 13_889])
        {
            let mut sketch = FrequencySketch::new(max, 1);
            sketch.ensure_capacity(1);
            let first = sketch.table.len();
            sketch.ensure_capacity(u64::MAX);
            let blocks = sketch.table.len() as u64;
            let need = max
                .clamp(MIN_ENTRIES, MAX_ENTRIES)
                .div_ceil(ENTRIES_PER_BLOCK);
            assert!(
                blocks >= need && blocks <= need + need / 8 + 1,
                "{max}: {blocks} for {need}"
            );
            // Reached from the first table by doublings only.
            assert!((blocks as usize / first).is_power_of_two() && blocks as usize % first == 0);
            assert_eq!(sketch.heap_bytes(), blocks as usize * 64);
        }
    }
}
