//! Replaying a trace through each cache under test.
//!
//! Every replay is get-or-insert: `if cache.get(&k).is_none() {
//! cache.insert(k, ()) }`, counting a hit when `get` finds the key. The
//! hit ratio is hits over all accesses, cold misses included.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};

use larder::{Cache, Policy};

use super::opt;
use super::trace::Trace;

/// Accesses between two updates of the shared progress counter.
const PROGRESS_CHUNK: usize = 1 << 16; // 65,536

/// What replays a trace: a larder policy, a peer crate, or OPT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runner {
    /// larder's `Cache` with this policy.
    Larder(Policy),
    /// Bélády's OPT with bypass.
    Opt,
    /// `moka::sync::Cache::new(capacity)`, used as is: moka applies its
    /// policy in batches (every 64 writes or reads), so between batches
    /// new entries are served before admission and the cache may hold up
    /// to about 64 entries more than its capacity.
    Moka,
    /// moka with `run_pending_tasks()` after every insert: the policy is
    /// applied at once and the capacity is never exceeded, like every other
    /// cache here (new entries lose the grace period that batching gives
    /// them).
    MokaSync,
    /// `quick_cache::sync::Cache::new(capacity)`.
    QuickCache,
    /// The `lru` crate's `LruCache` (strict LRU).
    LruCrate,
}

impl Runner {
    /// Every runner the simulator knows, in table order.
    pub fn all() -> Vec<Runner> {
        let mut all = vec![Runner::Opt];
        all.extend(Policy::ALL.into_iter().map(Runner::Larder));
        all.extend([
            Runner::MokaSync,
            Runner::Moka,
            Runner::QuickCache,
            Runner::LruCrate,
        ]);
        all
    }

    /// Column name.
    pub fn name(self) -> &'static str {
        match self {
            Runner::Larder(p) => p.name(),
            Runner::Opt => "OPT",
            Runner::Moka => "moka",
            Runner::MokaSync => "moka-sync",
            Runner::QuickCache => "quick_cache",
            Runner::LruCrate => "lru-crate",
        }
    }

    /// Parses a runner name (larder policies ignore case and `-`/`_`).
    pub fn parse(s: &str) -> Result<Runner, String> {
        match s.to_ascii_lowercase().as_str() {
            "opt" => Ok(Runner::Opt),
            "moka" => Ok(Runner::Moka),
            "moka-sync" | "moka_sync" | "mokasync" => Ok(Runner::MokaSync),
            "quick_cache" | "quick-cache" | "quickcache" => Ok(Runner::QuickCache),
            "lru-crate" | "lru_crate" | "lrucrate" => Ok(Runner::LruCrate),
            _ => s.parse::<Policy>().map(Runner::Larder),
        }
    }

    /// A rough relative cost per access, to schedule long jobs first.
    pub fn cost(self) -> u64 {
        match self {
            Runner::Moka => 2,
            Runner::MokaSync => 16,
            Runner::Opt => 2,
            _ => 1,
        }
    }
}

/// How the larder caches are built.
#[derive(Clone, Copy, Debug)]
pub struct Setup {
    /// `.shards(1)` instead of the builder's default shard count.
    pub single_shard: bool,
    /// Seed for larder's policies and for the (fixed) hasher.
    pub seed: u64,
}

/// Hits of `runner` on `trace` at `capacity`; `progress` counts accesses.
pub fn replay(
    runner: Runner,
    trace: &Trace,
    next: Option<&[u32]>,
    capacity: u64,
    setup: Setup,
    progress: &AtomicU64,
) -> u64 {
    match runner {
        Runner::Larder(policy) => larder(policy, trace, capacity, setup, progress),
        Runner::Opt => {
            let next = next.expect("next-use positions computed for OPT");
            let hits = opt::hits(&trace.ids, next, trace.distinct, capacity as usize);
            progress.fetch_add(trace.keys.len() as u64, Ordering::Relaxed);
            hits
        }
        Runner::Moka => {
            let cache: moka::sync::Cache<u64, ()> = moka::sync::Cache::new(capacity);
            get_or_insert(&trace.keys, progress, |k| {
                if cache.get(&k).is_some() {
                    return true;
                }
                cache.insert(k, ());
                false
            })
        }
        Runner::MokaSync => {
            let cache: moka::sync::Cache<u64, ()> = moka::sync::Cache::new(capacity);
            get_or_insert(&trace.keys, progress, |k| {
                if cache.get(&k).is_some() {
                    return true;
                }
                cache.insert(k, ());
                cache.run_pending_tasks();
                false
            })
        }
        Runner::QuickCache => {
            let cache: quick_cache::sync::Cache<u64, ()> =
                quick_cache::sync::Cache::new(capacity as usize);
            get_or_insert(&trace.keys, progress, |k| {
                if cache.get(&k).is_some() {
                    return true;
                }
                cache.insert(k, ());
                false
            })
        }
        Runner::LruCrate => {
            let cap = NonZeroUsize::new(capacity as usize).unwrap_or(NonZeroUsize::MIN);
            let mut cache = lru::LruCache::new(cap);
            get_or_insert(&trace.keys, progress, |k| {
                if cache.get(&k).is_some() {
                    return true;
                }
                cache.put(k, ());
                false
            })
        }
    }
}

/// The larder cache the simulator replays through.
pub fn build(policy: Policy, capacity: u64, setup: Setup) -> Cache<u64, (), ahash::RandomState> {
    let s = setup.seed;
    let mut builder = Cache::builder()
        .max_capacity(capacity)
        .policy(policy)
        .seed(s);
    if setup.single_shard {
        builder = builder.shards(1);
    }
    builder
        .hasher(ahash::RandomState::with_seeds(s, s ^ 1, s ^ 2, s ^ 3))
        .build()
}

/// Replays `trace` through larder.
fn larder(policy: Policy, trace: &Trace, capacity: u64, setup: Setup, progress: &AtomicU64) -> u64 {
    let cache = build(policy, capacity, setup);
    get_or_insert(&trace.keys, progress, |k| {
        if cache.get(&k).is_some() {
            return true;
        }
        cache.insert(k, ());
        false
    })
}

/// Runs `access` (true on a hit) over `keys`, counting hits and progress.
fn get_or_insert(keys: &[u64], progress: &AtomicU64, mut access: impl FnMut(u64) -> bool) -> u64 {
    let mut hits = 0u64;
    for chunk in keys.chunks(PROGRESS_CHUNK) {
        for &k in chunk {
            hits += u64::from(access(k));
        }
        progress.fetch_add(chunk.len() as u64, Ordering::Relaxed);
    }
    hits
}
