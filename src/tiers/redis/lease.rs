//! The fleet-wide lease and the scripts that read and write entries.
//!
//! A process that misses in Redis runs [`GET_OR_LEASE`]: one round trip
//! that returns the value if there is one, or else tries
//! `SET ns:{k}:lock <token> NX PX <lease>`. The winner loads and stores
//! with [`STORE`], which writes the value (`SET .. PX ttl`) and deletes the
//! lock only if the lock still holds its token. The others run
//! `GET_OR_LEASE` again with a growing pause until the value appears, the
//! lock is gone (the holder crashed or failed, and the lease expired: the
//! next try wins it) or their wait runs out (then they load without
//! storing).
//!
//! Writes ([`WRITE`]) and invalidations ([`INVALIDATE`]) delete the lock as
//! well: a load that began before them may have read old data, and since
//! its token is gone, its `STORE` writes nothing (the lease of Facebook's
//! memcache paper, Nishtala et al., NSDI 2013, does the same). Each script
//! touches one key and its lock, which share a hash slot, so they run on
//! Redis Cluster unchanged; the two that change an entry also publish the
//! invalidation, in the same round trip.

use std::time::Duration;

use ::redis::{ConnectionLike, RedisResult, Script, Value};

/// Returns `{1, value, pttl}`, `{2}` (lease won) or `{3}` (lease held by
/// someone else).
const GET_OR_LEASE_LUA: &str = r"
local v = redis.call('GET', KEYS[1])
if v then return {1, v, redis.call('PTTL', KEYS[1])} end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return {2} end
return {3}
";

/// Stores ARGV[2] with TTL ARGV[3] ms (0: none) if the lock still holds
/// token ARGV[1]; returns 1 if stored.
const STORE_LUA: &str = r"
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2])
else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
redis.call('DEL', KEYS[2])
return 1
";

/// Writes ARGV[1] with TTL ARGV[2] ms (0: none), cancels any lease and
/// publishes ARGV[4] on channel ARGV[3].
const WRITE_LUA: &str = r"
if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1])
else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
redis.call('DEL', KEYS[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return 1
";

/// Deletes the value and any lease, and publishes ARGV[2] on channel
/// ARGV[1].
const INVALIDATE_LUA: &str = r"
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', ARGV[1], ARGV[2])
return 1
";

/// The scripts, hashed once per tier.
pub(crate) struct Scripts {
    get_or_lease: Script,
    store: Script,
    write: Script,
    invalidate: Script,
}

impl Scripts {
    pub(crate) fn new() -> Self {
        Self {
            get_or_lease: Script::new(GET_OR_LEASE_LUA),
            store: Script::new(STORE_LUA),
            write: Script::new(WRITE_LUA),
            invalidate: Script::new(INVALIDATE_LUA),
        }
    }
}

/// What [`Scripts::get_or_lease`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// The value, and its remaining time to live (`None`: no expiry).
    Value(Vec<u8>, Option<Duration>),
    /// No value; this caller now holds the lease.
    Won,
    /// No value; another process holds the lease.
    Held,
}

/// A TTL in whole milliseconds for `PX` (at least 1; 0 means none).
pub(crate) fn ttl_millis(ttl: Option<Duration>) -> u64 {
    match ttl {
        None => 0,
        Some(d) => {
            let ms = d.as_nanos().div_ceil(1_000_000).max(1);
            // Past about 292 million years Redis would refuse it: no expiry.
            u64::try_from(ms).ok().filter(|&m| m < 1 << 62).unwrap_or(0)
        }
    }
}

impl Scripts {
    pub(crate) fn get_or_lease(
        &self,
        con: &mut dyn ConnectionLike,
        value_key: &[u8],
        lock_key: &[u8],
        token: &[u8],
        lease: Duration,
    ) -> RedisResult<Found> {
        let lease_ms = ttl_millis(Some(lease)).max(1);
        let reply: Value = self
            .get_or_lease
            .key(value_key)
            .key(lock_key)
            .arg(token)
            .arg(lease_ms)
            .invoke(con)?;
        parse_found(reply)
    }

    pub(crate) fn store(
        &self,
        con: &mut dyn ConnectionLike,
        value_key: &[u8],
        lock_key: &[u8],
        token: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> RedisResult<bool> {
        let stored: i64 = self
            .store
            .key(value_key)
            .key(lock_key)
            .arg(token)
            .arg(value)
            .arg(ttl_millis(ttl))
            .invoke(con)?;
        Ok(stored == 1)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write(
        &self,
        con: &mut dyn ConnectionLike,
        value_key: &[u8],
        lock_key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        channel: &[u8],
        message: &[u8],
    ) -> RedisResult<()> {
        let _: i64 = self
            .write
            .key(value_key)
            .key(lock_key)
            .arg(value)
            .arg(ttl_millis(ttl))
            .arg(channel)
            .arg(message)
            .invoke(con)?;
        Ok(())
    }

    pub(crate) fn invalidate(
        &self,
        con: &mut dyn ConnectionLike,
        value_key: &[u8],
        lock_key: &[u8],
        channel: &[u8],
        message: &[u8],
    ) -> RedisResult<()> {
        let _: i64 = self
            .invalidate
            .key(value_key)
            .key(lock_key)
            .arg(channel)
            .arg(message)
            .invoke(con)?;
        Ok(())
    }
}

fn parse_found(reply: Value) -> RedisResult<Found> {
    let bad = || {
        ::redis::RedisError::from((
            ::redis::ErrorKind::TypeError,
            "unexpected reply from the lease script",
        ))
    };
    let Value::Array(items) = reply else {
        return Err(bad());
    };
    let mut items = items.into_iter();
    match items.next() {
        Some(Value::Int(1)) => {
            let bytes = match items.next() {
                Some(Value::BulkString(b)) => b,
                _ => return Err(bad()),
            };
            let ttl = match items.next() {
                // -1: no expiry. -2 cannot happen inside the script.
                Some(Value::Int(ms)) if ms >= 0 => {
                    Some(Duration::from_millis(u64::try_from(ms).unwrap_or(0)))
                }
                Some(Value::Int(_)) => None,
                _ => return Err(bad()),
            };
            Ok(Found::Value(bytes, ttl))
        }
        Some(Value::Int(2)) => Ok(Found::Won),
        Some(Value::Int(3)) => Ok(Found::Held),
        _ => Err(bad()),
    }
}

/// The pause before the `n`th (from 0) look for a value whose lease
/// another process holds: 1, 2, 4, ... ms, at most 25 ms.
pub(crate) fn poll_pause(n: u32) -> Duration {
    Duration::from_millis((1u64 << n.min(5)).min(25))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_in_millis() {
        assert_eq!(ttl_millis(None), 0);
        assert_eq!(ttl_millis(Some(Duration::ZERO)), 1);
        assert_eq!(ttl_millis(Some(Duration::from_nanos(1))), 1);
        assert_eq!(ttl_millis(Some(Duration::from_micros(1500))), 2);
        assert_eq!(ttl_millis(Some(Duration::from_secs(300))), 300_000);
        assert_eq!(ttl_millis(Some(Duration::MAX)), 0);
    }

    #[test]
    fn replies_parse() {
        let hit = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(b"v".to_vec()),
            Value::Int(1500),
        ]);
        assert_eq!(
            parse_found(hit).unwrap(),
            Found::Value(b"v".to_vec(), Some(Duration::from_millis(1500)))
        );
        let forever = Value::Array(vec![
            Value::Int(1),
            Value::BulkString(vec![]),
            Value::Int(-1),
        ]);
        assert_eq!(parse_found(forever).unwrap(), Found::Value(vec![], None));
        assert_eq!(
            parse_found(Value::Array(vec![Value::Int(2)])).unwrap(),
            Found::Won
        );
        assert_eq!(
            parse_found(Value::Array(vec![Value::Int(3)])).unwrap(),
            Found::Held
        );
        assert!(parse_found(Value::Nil).is_err());
        assert!(parse_found(Value::Array(vec![Value::Int(1)])).is_err());
        assert!(parse_found(Value::Array(vec![Value::Int(9)])).is_err());
    }

    #[test]
    fn pauses_grow_and_stop() {
        assert_eq!(poll_pause(0), Duration::from_millis(1));
        assert_eq!(poll_pause(3), Duration::from_millis(8));
        assert_eq!(poll_pause(100), Duration::from_millis(25));
    }
}
