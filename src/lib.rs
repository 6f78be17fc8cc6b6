//! larder: an embeddable in-process cache.
//!
//! TODO crate docs.
#![deny(missing_docs)]
#![warn(unsafe_op_in_unsafe_fn, unreachable_pub, rust_2018_idioms)]

mod builder;
mod cache;
mod load;
mod policy;
mod shard;
mod stats;
mod sync;
mod time;
mod write;

pub use builder::{CacheBuilder, DEFAULT_CAPACITY};
pub use cache::Cache;
pub use policy::{Policy, RemovalCause};
pub use stats::Stats;
pub use time::{Clock, Jitter, ManualClock};
pub use write::{
    FlushError, Full, Op, Store, StoreError, WriteBehind, WriteBehindBuilder, WriteBehindStats,
    WriteThrough,
};
