//! larder: an embeddable in-process cache.
//!
//! A bounded, thread-safe map that keeps hot data in your own process:
//! wrap an expensive function (a database query, a remote call) in a loader
//! closure, and larder runs it once per missing key however many threads ask,
//! keeps the entries most worth keeping, expires stale ones, and tells you
//! how it is doing.
//!
//! ```
//! use std::time::Duration;
//! use larder::{Cache, Policy};
//!
//! let cache: Cache<u64, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .policy(Policy::WTinyLfu) // the default
//!     .time_to_live(Duration::from_secs(300))
//!     .build();
//!
//! // One load per missing key, however many threads ask at once.
//! let name = cache.get_with(42, || format!("user {}", 42)); // e.g. a SELECT
//! assert_eq!(name, "user 42");
//! assert_eq!(cache.get(&42).as_deref(), Some("user 42"));
//! println!("hit ratio {:.2}", cache.stats().hit_ratio());
//! ```
//!
//! # Eviction policies
//!
//! Capacity is a number of entries, or a total weight once a
//! [`weigher`](CacheBuilder::weigher) is set, and it is a hard bound after
//! every operation. When it is reached, the [`Policy`] picks the victim:
//! [`Lru`](Policy::Lru), [`Lfu`](Policy::Lfu), [`Fifo`](Policy::Fifo),
//! [`Random`](Policy::Random), [`Slru`](Policy::Slru),
//! [`S3Fifo`](Policy::S3Fifo), [`Sieve`](Policy::Sieve) or
//! [`WTinyLfu`](Policy::WTinyLfu) (the default: a small LRU window in front
//! of a segmented LRU, with a frequency sketch deciding what is admitted;
//! the best hit ratio on most real workloads). A value heavier than its
//! shard's share of the capacity is rejected (the listener is told
//! [`RemovalCause::Evicted`]); a capacity of zero stores nothing.
//!
//! # Concurrency
//!
//! The cache is split into shards, each a hash table, a slab of entries and
//! a policy under one `RwLock`. A key is hashed once; the hash picks the
//! shard. Reads take the shared lock and tell the policy about the hit
//! without writing anything other readers share (W-TinyLFU counts it in the
//! entry's own meta byte and applies it later; LRU, SLRU and LFU replay a
//! small lossy ring in order), so readers do not queue behind each other on
//! every `get`. Writes take the exclusive lock. The shard count follows the
//! core count (32 per core) but never makes a shard smaller than 512
//! entries, so a small cache is one cache, not many tiny ones. The only
//! user code that runs under a shard lock is key equality (`Eq`, during a
//! lookup, before anything changes), the `Clone` of a value being read
//! (under the shared lock) and `retain`'s predicate: hashing,
//! weighers, `expire_after`, loaders, listeners and the drops of removed
//! values run outside it, so they may call back into the cache.
//!
//! # Expiration
//!
//! [`time_to_live`](CacheBuilder::time_to_live) (with
//! [`ttl_jitter`](CacheBuilder::ttl_jitter) so entries written together do
//! not expire together), [`time_to_idle`](CacheBuilder::time_to_idle),
//! per-entry TTLs ([`Cache::insert_with_ttl`],
//! [`expire_after`](CacheBuilder::expire_after)). Deadlines live on a
//! hierarchical timer wheel per shard; expired entries are never returned and
//! are removed a bounded amount at a time by ordinary operations (no
//! background thread), or all at once by [`Cache::run_pending_tasks`].
//!
//! Time comes from a [`Clock`]. The default reads the kernel's coarse
//! monotonic clock on every operation that needs the time (about 4 ms
//! resolution, no thread). A [`TickingClock`] makes each reading one atomic
//! load, kept fresh by one shared background thread that wakes every 4 ms:
//! worth it for a large cache with expiry that serves millions of reads a
//! second, where the kernel clock's cost shows. A [`ManualClock`] lets
//! tests control time; [`PreciseClock`] gives nanosecond resolution.
//!
//! # Loading
//!
//! [`Cache::get_with`], [`Cache::try_get_with`] and
//! [`Cache::optionally_get_with`] load a missing value once per key (single
//! flight); errors are shared with every waiter and not cached; a panicking
//! loader poisons nothing; an `insert`, `remove`, `invalidate_all` or
//! `retain` during a load wins over it. [`Cache::get_all_with`] loads many
//! keys in one batch call; [`negative_ttl`](CacheBuilder::negative_ttl)
//! remembers keys that do not exist.
//!
//! [`LoadingCache`] (from [`build_with_loader`](CacheBuilder::build_with_loader))
//! is read-through: the cache owns the loader and `get` loads what is
//! missing. With [`refresh_after`](CacheBuilder::refresh_after) or
//! [`stale_while_revalidate`](CacheBuilder::stale_while_revalidate) it
//! reloads values that are getting old in the background, on up to two
//! threads started on first use (or on your
//! [`executor`](CacheBuilder::executor)), so readers do not wait for them.
//!
//! # Observability
//!
//! [`Cache::stats`] returns hits, misses, loads, evictions, expirations and
//! more; the [eviction listener](CacheBuilder::eviction_listener) is told
//! every removal and its [`RemovalCause`], on the thread that caused it,
//! before that operation returns.
//!
//! With the `async` feature, `Cache::get_with_async` and friends take a
//! future for a loader, and `AsyncLoadingCache` (from
//! `CacheBuilder::build_with_async_loader`) is the read-through cache for
//! async code. Threads and tasks share one flight per key: the protocol is
//! the same (`load::flight` in the source), only the waiting differs (a
//! parked thread, or a registered waker). No runtime is assumed.
//!
//! # Cargo features
//!
//! Every feature is off by default. The runtime dependencies are always
//! parking_lot, hashbrown, ahash and crossbeam-utils.
//!
//! | feature | adds | extra dependency | why a feature |
//! |---|---|---|---|
//! | `async` | `get_with_async`, `try_get_with_async`, `optionally_get_with_async`, `AsyncLoadingCache`, `CacheBuilder::spawner` | none | keeps the async surface out of builds that never use it; runtime-agnostic (tokio, async-std, smol) |
//! | `redis` | `larder::redis`: `TieredCache` (this cache as L1 in front of a shared Redis), fleet-wide invalidation over pub/sub, a lease so one process rebuilds a missing key | the `redis` crate | only multi-process deployments need it, and it brings a network client |
//! | `metrics` | `Cache::report_metrics`, `MetricsReporter`: statistics, load-time percentiles and the load-time histogram, labelled with `CacheBuilder::name`, through the [`metrics`](https://docs.rs/metrics) facade (any recorder: Prometheus, StatsD, ...) | `metrics` | most users have their own metrics stack; the facade is small but is a dependency |
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn, unreachable_pub, rust_2018_idioms)]

mod bloom;
mod builder;
mod cache;
mod defend;
mod histogram;
mod hot;
mod load;
#[cfg(feature = "metrics")]
mod metrics_export;
mod policy;
mod shard;
mod stats;
mod sync;
#[cfg(feature = "redis")]
mod tiers;
mod time;
mod write;

/// Hooks for the fuzz targets in `fuzz/`: not a public API (only built
/// under `cfg(fuzzing)`, which cargo-fuzz sets, and in unit tests).
#[cfg(any(test, fuzzing))]
#[doc(hidden)]
#[path = "fuzz_hook.rs"]
pub mod __fuzz;

pub use bloom::BloomFilter;
pub use builder::{CacheBuilder, DEFAULT_CAPACITY};
pub use cache::Cache;
pub use histogram::Histogram;
#[doc(hidden)]
pub use hot::{HotKeys, Sampler};
#[cfg(feature = "async")]
pub use load::AsyncLoadingCache;
pub use load::LoadingCache;
#[cfg(feature = "metrics")]
pub use metrics_export::MetricsReporter;
pub use policy::{Policy, RemovalCause};
pub use stats::Stats;
#[cfg(feature = "redis")]
pub use tiers::redis;

pub use time::{Clock, Jitter, ManualClock, PreciseClock, TickingClock};
pub use write::{
    FlushError, Full, Op, Store, StoreError, WriteBehind, WriteBehindBuilder, WriteBehindStats,
    WriteThrough,
};

/// The README's examples are compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
