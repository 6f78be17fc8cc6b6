//! Invalidation epochs: how a fill of the L1 that raced with an
//! invalidation leaves the key out instead of storing a stale value.
//!
//! A fill reads the epoch of its key's stripe (and the global epoch)
//! *before* it asks Redis or the loader, stores the value, then reads the
//! epochs again and removes the key if either moved. An invalidation (a
//! message from another process, or this process's own `invalidate`)
//! bumps the stripe's epoch, then removes the key; dropping the whole L1
//! bumps the global epoch, then clears. With sequentially consistent
//! epochs and the cache's locks, every interleaving ends without the stale
//! value: if the bump comes before the fill's second read, the fill
//! removes its value; if after, the invalidation's own remove comes after
//! the fill's store. `tests/loom_tier.rs` checks this under every
//! interleaving (it includes this file; hence the loom switch here rather
//! than `crate::sync`).
//!
//! A stripe is shared by many keys, so an invalidation of one key may make
//! a concurrent fill of another leave its key out: a spurious miss, never
//! a stale value.

#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};
#[cfg(not(loom))]
use std::sync::atomic::{AtomicU64, Ordering};

/// The epochs of one cache.
pub(crate) struct Epochs {
    stripes: Box<[AtomicU64]>,
    global: AtomicU64,
}

/// What a fill read before it went to Redis or the loader.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot {
    stripe: usize,
    stripe_epoch: u64,
    global_epoch: u64,
}

impl Epochs {
    /// `stripes` stripes (at least one).
    pub(crate) fn new(stripes: usize) -> Self {
        Self {
            stripes: (0..stripes.max(1)).map(|_| AtomicU64::new(0)).collect(),
            global: AtomicU64::new(0),
        }
    }

    /// The stripe of a key hash.
    pub(crate) fn stripe(&self, hash: u64) -> usize {
        (hash % self.stripes.len() as u64) as usize
    }

    /// Read before a fill goes to Redis or the loader.
    pub(crate) fn snapshot(&self, stripe: usize) -> Snapshot {
        Snapshot {
            stripe,
            stripe_epoch: self.stripes[stripe].load(Ordering::SeqCst),
            global_epoch: self.global.load(Ordering::SeqCst),
        }
    }

    fn changed_since(&self, s: Snapshot) -> bool {
        self.stripes[s.stripe].load(Ordering::SeqCst) != s.stripe_epoch
            || self.global.load(Ordering::SeqCst) != s.global_epoch
    }

    /// An invalidation of a key in `stripe`: call before removing it.
    pub(crate) fn bump(&self, stripe: usize) {
        self.stripes[stripe].fetch_add(1, Ordering::SeqCst);
    }

    /// A write by this process of a key in `stripe`: bumps (so concurrent
    /// fills that read the old value drop theirs) and returns the
    /// snapshot the writer's own fill is guarded by.
    pub(crate) fn bump_for_write(&self, stripe: usize) -> Snapshot {
        let global_epoch = self.global.load(Ordering::SeqCst);
        let stripe_epoch = self.stripes[stripe].fetch_add(1, Ordering::SeqCst) + 1;
        Snapshot {
            stripe,
            stripe_epoch,
            global_epoch,
        }
    }

    /// The whole L1 is about to be dropped: call before clearing it.
    pub(crate) fn bump_all(&self) {
        self.global.fetch_add(1, Ordering::SeqCst);
    }

    /// Stores a value with `insert` unless an invalidation came since `s`;
    /// if one comes during the store, takes it out again with `remove`.
    /// When the value is not stored, `remove` runs too (so the cache's own
    /// flight for the key stores nothing either).
    pub(crate) fn fill(&self, s: Snapshot, insert: impl FnOnce(), remove: impl Fn()) {
        if self.changed_since(s) {
            remove();
            return;
        }
        insert();
        if self.changed_since(s) {
            remove();
        }
    }
}
