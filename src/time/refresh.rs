//! Refresh points: when an entry is due to be reloaded in the background.
//!
//! With refresh-ahead or stale-while-revalidate configured, every write of
//! an entry records its refresh point beside it (see
//! `crate::load::refresh` for the whole mechanism); a reader claims a due
//! refresh with one compare-and-swap. This module is the time arithmetic
//! and the claim, which the shard applies under its locks.

use std::time::Duration;

use crate::policy::Idx;
use crate::sync::{AtomicU64, Ordering};
use crate::time::clock::duration_to_nanos;
use crate::time::NEVER;

/// The refresh settings a shard applies under its lock, in nanoseconds.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RefreshTimes {
    /// Keep refresh points at all.
    on: bool,
    /// `refresh_after` ([`NEVER`] if unset).
    after: u64,
    /// The stale-while-revalidate window.
    stale: Option<u64>,
    /// How far a claim moves the refresh point (see "Failures" in `crate::load::refresh`).
    retry: u64,
}

impl RefreshTimes {
    /// The times for `refresh_after` and a stale-while-revalidate window.
    pub(crate) fn new(after: Option<Duration>, stale: Option<Duration>) -> Self {
        let after = after.map(duration_to_nanos);
        let stale = stale.map(duration_to_nanos);
        Self {
            on: after.is_some() || stale.is_some(),
            after: after.unwrap_or(NEVER),
            stale,
            retry: after.or(stale.map(|w| w / 4)).unwrap_or(NEVER),
        }
    }

    /// True if entries get refresh points (then a write's deadline may be
    /// moved by the stale window).
    #[inline]
    pub(crate) fn is_on(&self) -> bool {
        self.on
    }

    /// An entry at `idx` was written at `now` and its time to live ends at
    /// `ttl_deadline`: records its refresh point in `points` and returns
    /// the deadline at which it expires (later than `ttl_deadline` by the
    /// stale window, if one is set). Called under the shard's write lock.
    #[inline]
    pub(crate) fn schedule(
        &self,
        idx: Idx,
        now: u64,
        ttl_deadline: u64,
        points: &mut Vec<AtomicU64>,
    ) -> u64 {
        if !self.on {
            return ttl_deadline;
        }
        let mut due = now.saturating_add(self.after);
        let mut expires = ttl_deadline;
        if let Some(window) = self.stale {
            if ttl_deadline != NEVER {
                due = due.min(ttl_deadline);
                expires = ttl_deadline.saturating_add(window);
            }
        }
        let i = idx as usize;
        if points.len() <= i {
            points.resize_with(i + 1, || AtomicU64::new(NEVER));
        }
        points[i].store(due, Ordering::Relaxed);
        expires
    }

    /// True if the entry at `idx` is due for a refresh at `now` and this
    /// caller won the right to start it (its refresh point moved one retry
    /// interval on). Callable under the shard's read lock.
    #[inline]
    pub(crate) fn claim(&self, points: &[AtomicU64], idx: Idx, now: u64) -> bool {
        let Some(point) = points.get(idx as usize) else {
            return false;
        };
        let due = point.load(Ordering::Relaxed);
        now >= due
            && point
                .compare_exchange(
                    due,
                    now.saturating_add(self.retry),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
    }
}
