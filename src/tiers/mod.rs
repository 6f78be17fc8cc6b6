//! Tiers behind the in-process cache: stores that several processes share.
//!
//! This layer sits above `cache` and `load` and uses only the public
//! [`Cache`](crate::Cache) API (`get`, `insert_with_ttl`, `remove`,
//! `try_get_with`, `invalidate_all`); nothing below imports it.

#[cfg(feature = "redis")]
pub mod redis;
