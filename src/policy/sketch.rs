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
//! * **Counters.** 4-bit saturating counters, 16 to a `u64`, in blocks of 8
//!   words (64 bytes, one cache line). A key's hash picks one block; inside
//!   it the key's 4 counters sit in 4 *different* word pairs (counter `i`
//!   lives in word `2i` or `2i + 1`), so the 4 never alias one another and
//!   an increment or estimate touches one cache line.
//! * **Doorkeeper.** A blocked Bloom filter (2 bits in one `u64` per key) in
//!   front of the counters: the first occurrence of a key in a sample
//!   period only sets its doorkeeper bits, later occurrences count. Most
//!   keys of real traces are seen once, so they cost a bit or two instead
//!   of polluting the counters that the popular keys share.
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
//! # Size and lifetime
//!
//! The table is sized for a number of *entries* (not weight units): one
//! 64-byte block per [`ENTRIES_PER_BLOCK`] (8) entries, the block count
//! rounded up to a power of two, which is 8 to 16 bytes of counters per
//! entry, plus two doorkeeper bytes per entry. The owner (W-TinyLFU)
//! allocates it at the shard's first insert, for [`MIN_ENTRIES`], so that
//! frequency counts from the first access; until it is allocated
//! [`increment`](FrequencySketch::increment) does nothing and every
//! estimate is 0. As entries keep arriving the table doubles, up to the
//! entry capacity, by copying every block after itself: a key's new block
//! is one of the two copies of its old one, so no count is lost.
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

/// Cache entries covered by one 64-byte block of counters (8 bytes of
/// counters per entry before rounding the block count up to a power of
/// two, so 8 to 16 bytes per entry). See "Size and lifetime" above.
pub(crate) const ENTRIES_PER_BLOCK: u64 = 8;

/// Fewest entries a sketch is sized for (a sample period of at least
/// 2,560 increments).
pub(crate) const MIN_ENTRIES: u64 = 128;

/// Fewest blocks a sketch has: 4 blocks, 256 bytes, 512 counters.
const MIN_BLOCKS: usize = 4;

/// Doorkeeper bits per entry (16, two bytes per entry).
const DOOR_BITS_PER_ENTRY: u64 = 16;

/// Fewest doorkeeper words (512 bits).
const MIN_DOOR_WORDS: usize = 8;

/// A sample period is this many increments per entry the sketch is sized
/// for; then every counter is halved.
pub(crate) const SAMPLE_FACTOR: u64 = 20;

/// Most entries a sketch is ever sized for (2^29, a 4 GiB table at
/// most); bigger caches share counters more.
const MAX_ENTRIES: u64 = 1 << 29;

/// One block of counters: [`BLOCK_WORDS`] words, aligned to a cache line so
/// that a key's four counters are in one line (a `Vec<u64>` from the
/// allocator is only 16-byte aligned, which put most blocks across two).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C, align(64))]
struct Block([u64; BLOCK_WORDS]);

/// A count-min sketch of 4-bit counters with a doorkeeper, for one shard.
#[derive(Debug)]
pub(crate) struct FrequencySketch {
    /// Blocks of [`BLOCK_WORDS`] words of 16 counters each.
    table: Vec<Block>,
    /// Number of blocks minus one (the block count is a power of two).
    block_mask: u64,
    /// Doorkeeper bits, a power of two of words.
    door: Vec<u64>,
    /// Number of doorkeeper words minus one.
    door_mask: u64,
    /// Entries the table is sized for.
    entries: u64,
    /// Most entries the table may grow to.
    max_entries: u64,
    /// Increments since the last reset (halved at a reset).
    additions: u64,
    /// Keys the doorkeeper took in (first occurrences) since the last
    /// reset: how full it is, see [`door_load`](Self::door_load).
    door_sets: u64,
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

/// `words` repeated to fill `len` words (`len` is a multiple of its length).
fn repeat<T: Copy>(words: &[T], len: usize) -> Vec<T> {
    let mut out = Vec::with_capacity(len.max(words.len()));
    while out.len() < len.max(words.len()) {
        out.extend_from_slice(words);
    }
    out
}

impl FrequencySketch {
    /// An unallocated sketch that may grow to `max_entries` (clamped to
    /// [`MIN_ENTRIES`]..=2^30); [`ensure_capacity`](Self::ensure_capacity)
    /// allocates it.
    pub(crate) fn new(max_entries: u64, seed: u64) -> Self {
        Self {
            table: Vec::new(),
            block_mask: 0,
            door: Vec::new(),
            door_mask: 0,
            entries: 0,
            max_entries: max_entries.clamp(MIN_ENTRIES, MAX_ENTRIES),
            additions: 0,
            door_sets: 0,
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

    /// Allocates an empty table and doorkeeper for `entries`.
    fn allocate(&mut self, entries: u64) {
        let blocks = Self::blocks_for(entries);
        let door_words = Self::door_words_for(entries);
        self.table = vec![Block::default(); blocks];
        self.block_mask = blocks as u64 - 1;
        self.door = vec![0; door_words];
        self.door_mask = door_words as u64 - 1;
        self.entries = entries;
        self.sample_size = SAMPLE_FACTOR * entries;
    }

    /// Blocks for `entries` (a power of two, at least [`MIN_BLOCKS`]).
    fn blocks_for(entries: u64) -> usize {
        let blocks = entries.div_ceil(ENTRIES_PER_BLOCK).next_power_of_two();
        (blocks as usize).max(MIN_BLOCKS)
    }

    /// Doorkeeper words for `entries` (a power of two).
    fn door_words_for(entries: u64) -> usize {
        let words = (entries * DOOR_BITS_PER_ENTRY)
            .div_ceil(64)
            .next_power_of_two();
        (words as usize).max(MIN_DOOR_WORDS)
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
        self.table = repeat(&self.table, Self::blocks_for(target));
        self.block_mask = self.table.len() as u64 - 1;
        self.door = repeat(&self.door, Self::door_words_for(target));
        self.door_mask = self.door.len() as u64 - 1;
        self.entries = target;
        self.sample_size = SAMPLE_FACTOR * target;
    }

    /// First occurrences the doorkeeper took in since the last reset, per
    /// entry the sketch is sized for (rounded down). At 16 bits per entry
    /// and 2 bits per key, a load of 4 fills about 39% of its bits; from
    /// then on more and more keys seen once pass it as if seen before, and
    /// their counts go to the counters.
    #[inline]
    pub(crate) fn door_load(&self) -> u64 {
        self.door_sets / self.entries.max(1)
    }

    /// Sets the doorkeeper's intake since the last reset (tests).
    #[cfg(test)]
    pub(crate) fn set_door_sets(&mut self, sets: u64) {
        self.door_sets = sets;
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

    /// Clears every counter below `level` (the others keep their count);
    /// the doorkeeper and the epoch are left as they are. W-TinyLFU does
    /// this once per shard, after its fill halvings.
    pub(crate) fn clear_below(&mut self, level: u8) {
        let level = u64::from(level);
        for word in self.table.iter_mut().flat_map(|b| &mut b.0) {
            let mut kept = 0;
            for shift in (0..64).step_by(4) {
                let count = (*word >> shift) & 15;
                if count >= level {
                    kept |= count << shift;
                }
            }
            *word = kept;
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

    /// Spreads `hash` (whose shard bits are constant within a shard) over
    /// all 64 bits.
    #[inline]
    fn spread(&self, hash: u64) -> u64 {
        mix(hash ^ self.seed)
    }

    /// The doorkeeper word index and the 2-bit mask of `h` in it.
    #[inline]
    fn door_slot(&self, h: u64) -> (usize, u64) {
        let y = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let word = ((y >> 40) & self.door_mask) as usize;
        let bits = (1u64 << (y & 63)) | (1u64 << ((y >> 6) & 63));
        (word, bits)
    }

    /// The index of `h`'s block, and the 4 (word within the block,
    /// bit shift) pairs of its counters.
    #[inline]
    fn counter_slots(&self, h: u64) -> (usize, [(usize, u32); 4]) {
        let base = ((h >> 32) & self.block_mask) as usize;
        let slots = std::array::from_fn(|i| {
            let bits = (h >> (i * 8)) as u32;
            // At most 7: counter `i` is in word `2i` or `2i + 1`.
            let word = (2 * i + (bits & 1) as usize) & (BLOCK_WORDS - 1);
            let shift = ((bits >> 1) & 15) * 4;
            (word, shift)
        });
        (base, slots)
    }

    /// The words of block `base` (one bounds check for the
    /// four counters of a key, instead of one per counter).
    #[inline]
    fn block(&self, base: usize) -> &[u64; BLOCK_WORDS] {
        &self.table[base].0
    }

    /// [`block`](Self::block), to write.
    #[inline]
    fn block_mut(&mut self, base: usize) -> &mut [u64; BLOCK_WORDS] {
        &mut self.table[base].0
    }

    /// The smallest of the counters at `slots` of the block at `base`.
    #[inline]
    fn min_count(&self, (base, slots): (usize, [(usize, u32); 4])) -> u64 {
        let block = self.block(base);
        slots
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
        let h = self.spread(hash);
        let (word, bits) = self.door_slot(h);
        if self.door[word] & bits != bits {
            self.door[word] |= bits;
            self.door_sets += 1;
        } else {
            let (base, slots) = self.counter_slots(h);
            let min = self.min_count((base, slots));
            if min < u64::from(MAX_FREQUENCY) {
                let block = self.block_mut(base);
                for &(w, s) in &slots {
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
        let h = self.spread(hash);
        let (word, bits) = self.door_slot(h);
        let mut counted = n;
        if self.door[word] & bits != bits {
            self.door[word] |= bits;
            counted -= 1;
            self.door_sets += 1;
        }
        if counted > 0 {
            // Each conservative increment raises exactly the counters at
            // the minimum, so the minimum goes up by one per increment
            // (until it saturates) and the others join it as it reaches
            // them: after `counted` of them a counter holds
            // `max(itself, min(minimum + counted, 15))`. Computed at once
            // (the key's four counters are in four different words).
            // (No other of the four is in a counter's word, so each is
            // read before its own word is written.)
            let (base, slots) = self.counter_slots(h);
            let min = self.min_count((base, slots));
            let level = (min + counted).min(u64::from(MAX_FREQUENCY));
            let block = self.block_mut(base);
            for &(w, s) in &slots {
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
        let h = self.spread(hash);
        let (word, bits) = self.door_slot(h);
        let door = u64::from(self.door[word] & bits == bits);
        let count = self.min_count(self.counter_slots(h)) + door;
        count.min(u64::from(MAX_FREQUENCY)) as u8
    }

    /// Halves every counter and clears the doorkeeper.
    fn reset(&mut self) {
        for word in self.table.iter_mut().flat_map(|b| &mut b.0) {
            *word = (*word >> 1) & HALVE_MASK;
        }
        self.door.fill(0);
        self.door_sets = 0;
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
            + self.door.capacity() * std::mem::size_of::<u64>()
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
        assert_eq!(a.door, b.door);
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
            .flat_map(|b| b.0)
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
    fn clear_below_keeps_only_counts_at_the_level() {
        let mut sketch = sized(64, 64, 3);
        for (k, n) in [(1, 3), (2, 4), (3, 5), (4, 16)] {
            for _ in 0..n {
                sketch.increment(key(k));
            }
        }
        sketch.halve(); // counters 2 / 3 / 4 / 15 -> 1 / 1 / 2 / 7
        let before: Vec<u8> = (1..=4).map(|k| sketch.frequency(key(k))).collect();
        assert_eq!(before, vec![1, 1, 2, 7]);
        sketch.clear_below(2);
        let after: Vec<u8> = (1..=4).map(|k| sketch.frequency(key(k))).collect();
        assert_eq!(after, vec![0, 0, 2, 7]);
        // Every other counter is still zero.
        let lanes = sketch
            .table
            .iter()
            .flat_map(|b| b.0)
            .flat_map(|w| (0..16).map(move |lane| (w >> (lane * 4)) & 15))
            .filter(|&c| c != 0)
            .count();
        assert_eq!(lanes, 8, "the two kept keys' four counters each");
        assert_eq!(sketch.epoch(), 1, "clearing is not a reset");
    }

    #[test]
    fn door_load_counts_first_occurrences_until_a_reset() {
        let mut sketch = FrequencySketch::new(1024, 1);
        sketch.ensure_capacity(1024);
        let entries = sketch.entries();
        for k in 0..(4 * entries) {
            sketch.increment(k.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        }
        // Doorkeeper collisions let a few first occurrences through.
        let load = sketch.door_load();
        assert!((2..=4).contains(&load), "load {load}");
        // Repeats pass the doorkeeper and do not count.
        let before = sketch.door_sets;
        for _ in 0..10 {
            sketch.increment(7);
        }
        assert_eq!(sketch.door_sets, before + 1);
        sketch.halve();
        assert_eq!(sketch.door_load(), 0);
        assert_eq!(sketch.door_sets, 0);
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
            .flat_map(|b| b.0)
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
        assert_eq!(
            sketch.heap_bytes(),
            (1 << 16) / ENTRIES_PER_BLOCK as usize * 64
                + (1 << 16) * DOOR_BITS_PER_ENTRY as usize / 8
        );
    }
}
