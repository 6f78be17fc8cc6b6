//! Ghost entries: fingerprints of keys that recently left, with the time
//! they left, for the policies that learn from a key coming back (S3-FIFO's
//! ghost queue, W-TinyLFU's window sizing).
//!
//! A hash table of `(fingerprint, time)` pairs, 8 bytes each, with no list:
//! the owner keeps its own clock (for example, a count of evictions) and
//! asks how long ago a fingerprint left; a pair older than the owner's
//! limit counts as absent. Stale pairs are swept out whenever the table
//! holds twice the limit, so it never holds more than about twice the
//! limit. This is the bucketed layout the S3-FIFO paper suggests for its
//! ghost queue. A fingerprint is 32 bits of the key's hash, so a key may
//! now and then be taken for a ghost it is not (about one in 2^32 /
//! limit).

use hashbrown::HashTable;

/// One remembered key: 32 bits of its hash and the time it left.
#[derive(Clone, Copy, Debug)]
struct Ghost {
    fingerprint: u32,
    time: u32,
}

/// Times wrap at 2^32, so a limit must stay well below it.
pub(crate) const MAX_LIMIT: u32 = 1 << 30;

/// The table hash of a fingerprint (spread again: the fingerprint comes
/// from bits the shard's own table also uses).
#[inline]
fn table_hash(fingerprint: u32) -> u64 {
    u64::from(fingerprint).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The fingerprint of a key hash.
#[inline]
pub(crate) fn fingerprint(hash: u64) -> u32 {
    (hash >> 32) as u32 ^ hash as u32
}

/// Fingerprints of keys that left, with the owner's time they left.
#[derive(Debug, Default)]
pub(crate) struct Ghosts {
    table: HashTable<Ghost>,
}

impl Ghosts {
    /// How long ago (in the owner's time, `now` being the present)
    /// `fingerprint` left, if it did less than `limit` ago; forgets it.
    pub(crate) fn take(&mut self, fingerprint: u32, now: u32, limit: u32) -> Option<u32> {
        match self
            .table
            .find_entry(table_hash(fingerprint), |g| g.fingerprint == fingerprint)
        {
            Ok(entry) => {
                let age = now.wrapping_sub(entry.get().time);
                entry.remove();
                (age < limit).then_some(age)
            }
            Err(_) => None,
        }
    }

    /// Remembers that `fingerprint` left at time `now`. Pairs older than
    /// `limit` may be swept out; `stale` tells a pair's age limit apart
    /// when the owner keeps several clocks (it gets the pair's fingerprint
    /// and time and says whether it is stale).
    pub(crate) fn insert(
        &mut self,
        fingerprint: u32,
        now: u32,
        limit: u32,
        stale: impl Fn(u32, u32) -> bool,
    ) {
        if self.table.len() >= 2 * limit as usize {
            self.table
                .retain(|g| !stale(g.fingerprint, g.time) && g.fingerprint != fingerprint);
        }
        match self
            .table
            .find_mut(table_hash(fingerprint), |g| g.fingerprint == fingerprint)
        {
            Some(g) => g.time = now,
            None => {
                self.table.insert_unique(
                    table_hash(fingerprint),
                    Ghost {
                        fingerprint,
                        time: now,
                    },
                    |g| table_hash(g.fingerprint),
                );
            }
        }
    }

    /// Number of pairs held (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        self.table = HashTable::new();
    }

    /// Heap bytes held.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * (std::mem::size_of::<Ghost>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_limits() {
        let mut g = Ghosts::default();
        g.insert(7, 10, 100, |_, _| false);
        assert_eq!(g.take(7, 15, 100), Some(5));
        assert_eq!(g.take(7, 15, 100), None, "taken once");
        g.insert(8, 10, 100, |_, _| false);
        assert_eq!(g.take(8, 200, 100), None, "too old");
        // Wrapping times.
        g.insert(9, u32::MAX, 100, |_, _| false);
        assert_eq!(g.take(9, 3, 100), Some(4));
    }

    #[test]
    fn sweeps_stale_pairs() {
        let mut g = Ghosts::default();
        for t in 0..10_000u32 {
            g.insert(t.wrapping_mul(2_654_435_761), t, 100, |_, time| {
                t - time >= 100
            });
            assert!(g.len() <= 201);
        }
    }
}
