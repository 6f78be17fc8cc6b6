//! A Redis second tier: many processes, one truth (feature `redis`).
//!
//! A service that runs as many processes gives each its own in-process
//! cache, so after a write most of them keep serving the old value, a cold
//! key is loaded once per process, and a restart sends every miss to the
//! database. [`TieredCache`] puts a shared Redis behind the in-process
//! [`Cache`](crate::Cache) (the L1), fans invalidations out to every
//! process over Redis pub/sub, and takes a lease in Redis so that one
//! process of the fleet loads a missing key.
//!
//! ```no_run
//! use std::time::Duration;
//! use larder::Cache;
//! use larder::redis::{RedisTier, TieredCache};
//!
//! # fn load_user(id: u64) -> String { format!("user {id}") }
//! let tier = RedisTier::builder("redis://127.0.0.1:6379/")
//!     .namespace("users") // key prefix and channel name
//!     .build()?;          // connects to nothing yet
//! let users: TieredCache<u64, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(300))
//!     .ttl_jitter(0.1)
//!     .build_tiered(tier, |id: &u64| load_user(*id));
//! assert_eq!(users.get(&7), "user 7");
//! users.insert(7, "Ada".to_string());
//! users.invalidate(&7);
//! println!("{:?} {:?}", users.cache().stats(), users.tier_stats());
//! # Ok::<(), larder::redis::Error>(())
//! ```
//!
//! # Read path
//!
//! An L1 hit is a plain [`Cache::get`](crate::Cache::get): no network, no
//! extra atomics. An L1 miss is single-flight in the process (the cache's
//! own flight table), then one script call to Redis that returns the value
//! and its remaining `PTTL`, or takes the fleet-wide lease
//! (`SET ns:{k}:lock <token> NX PX <lease>`) when there is none. A Redis
//! hit fills the L1 for the remaining Redis TTL. The lease winner runs the
//! loader and writes the value with `SET .. PX <ttl with jitter>`, only if
//! its lease still stands; the others look again after 1, 2, 4, ... 25 ms
//! until the value appears, or take the lease themselves once it has
//! expired (a crashed holder delays nobody past the lease), or, when their
//! [`lease_wait`](RedisTierBuilder::lease_wait) runs out, load without
//! storing. Details in the `lease` module.
//!
//! # Invalidation
//!
//! [`insert`](TieredCache::insert) and [`invalidate`](TieredCache::invalidate)
//! change Redis and publish on `ns:invalidations` in one script call;
//! every other process's subscriber thread drops the key from its L1.
//! A process ignores its own messages. Fills race with invalidations
//! safely: each key stripe has an epoch that every invalidation bumps,
//! and a fill that sees it changed leaves the key out. Pub/sub, not
//! `CLIENT TRACKING`, and what happens when the subscription is lost (the
//! L1 is dropped at once, and again on every resubscription): the
//! `invalidation` module.
//!
//! # Faults
//!
//! Every Redis call is bounded: connect 250 ms
//! ([`DEFAULT_CONNECT_TIMEOUT`]), each command's socket read and write
//! 100 ms ([`DEFAULT_COMMAND_TIMEOUT`]); the cluster client retries twice,
//! 5-50 ms apart. After a network error the tier stops calling Redis for
//! 100 ms, doubling up to 2 s ([`DEFAULT_BACKOFF_MIN`],
//! [`DEFAULT_BACKOFF_MAX`]), so an outage costs a read one clock check.
//! Reads then go on from the L1 and the loader; nothing panics and no
//! Redis error reaches a caller; errors and skipped calls are counted in
//! [`TierStats`]. An `insert` or `invalidate` that cannot reach Redis is
//! remembered (up to 65,536 keys) and replayed when Redis answers again,
//! and until then reads of that key skip Redis, which may still hold the
//! old value.
//!
//! # Redis Cluster
//!
//! [`RedisTier::cluster_builder`] uses the `redis` crate's cluster client.
//! A key and its lock share a hash tag (`ns:{k}`, `ns:{k}:lock`), so each
//! script touches one slot. Invalidations use classic pub/sub, which a
//! cluster forwards to every node, so the subscriber listens on any one
//! node (the next one after a failure).
//!
//! # Not here
//!
//! No async front end yet, no `invalidate_all` across the fleet (it would
//! need a scan of every master), and values are not compressed.

mod codec;
mod conn;
mod epochs;
mod invalidation;
mod lease;
mod tier;
mod tiered;

use std::fmt;

pub use codec::{Codec, DecodeError};
pub use tier::{
    RedisTier, RedisTierBuilder, DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_MIN, DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_LEASE, DEFAULT_PING_INTERVAL,
};
pub use tiered::TieredCache;

/// Why a [`RedisTier`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A setting is invalid (URL, namespace, timeout); the message says which.
    Config(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Config(m) => write!(f, "larder redis tier: {m}"),
        }
    }
}

impl std::error::Error for Error {}

/// Counters of a [`TieredCache`]'s shared tier, since it was built.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TierStats {
    /// L1 misses that Redis answered with a value at once. (A value that
    /// appears while this process waits for another's lease counts as an
    /// `l2_misses` and then a `leases_waited`.)
    pub l2_hits: u64,
    /// L1 misses that found no value in Redis.
    pub l2_misses: u64,
    /// Redis calls that failed (network, timeout, error reply) or returned
    /// a value that did not decode.
    pub l2_errors: u64,
    /// Redis calls not attempted because Redis failed moments before (see
    /// [`RedisTierBuilder::backoff`]).
    pub l2_skipped: u64,
    /// Keys dropped from the L1 because another process invalidated them.
    pub remote_invalidations: u64,
    /// Loads this process ran holding the fleet's lease.
    pub leases_won: u64,
    /// Misses that waited for another process's lease and got its value.
    pub leases_waited: u64,
    /// Misses that waited for another process's lease until
    /// [`lease_wait`](RedisTierBuilder::lease_wait) ran out, then loaded.
    pub lease_timeouts: u64,
    /// Successful subscriptions to the invalidation channel (1 after a
    /// clean start; one more after every outage).
    pub subscriptions: u64,
    /// Times the subscription was lost (counted once the L1 it left
    /// deaf has been dropped).
    pub subscriptions_lost: u64,
    /// Times the whole L1 was dropped (a lost or renewed subscription, an
    /// unreadable message).
    pub l1_drops: u64,
    /// Invalidations sent late, after Redis came back.
    pub repairs: u64,
    /// Late invalidations forgotten because more than 65,536 were waiting.
    pub repairs_forgotten: u64,
}
