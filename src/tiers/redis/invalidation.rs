//! The invalidation bus: messages on the namespace's pub/sub channel, and
//! the subscriber thread that applies them and keeps the subscription up.
//!
//! # Why pub/sub and not `CLIENT TRACKING`
//!
//! Redis 6's server-assisted client-side caching would have the server
//! itself tell a client which keys it read have changed. larder publishes
//! its own invalidations instead, for three reasons: the `redis` crate's
//! blocking client (0.32) has no RESP3 push handling, so tracking would need
//! the redirect mode and a second connection per pooled connection; on
//! Redis Cluster, tracking is per node, so a client would need a tracking
//! connection to every master and follow resharding; and tracking reports
//! every write to a key, including this process's own writes and the fills
//! of other processes' loads, which would drop entries that are still
//! good. Both mechanisms are at most once and forget a client that
//! disconnects, so the reconnect rule below is needed either way.
//!
//! # Messages
//!
//! `i` + the sender's 8-byte id + the encoded key: drop that key.
//! A process ignores its own messages, so its fresh write stays in its L1.
//!
//! # Losing the subscription
//!
//! Pub/sub delivers to connected subscribers only. When the subscription
//! fails (a read error, or a `PING` on a quiet connection not answered
//! within the command timeout), the subscriber clears the L1 at once,
//! since whatever it holds may have been invalidated without it hearing
//! of it, and keeps reconnecting with back-off. Every successful
//! `SUBSCRIBE` clears the L1 again (entries filled while deaf are not
//! covered by any invalidation), then replays the invalidations this
//! process could not send while Redis was unreachable. Tries to
//! resubscribe start 50 ms apart and double up to 250 ms (or the tier's
//! back-off maximum, if lower), so a process is deaf for at most about
//! 250 ms after Redis is back; entries it loads meanwhile are dropped when
//! it resubscribes.

use std::time::{Duration, Instant};

use ::redis::{Client, RedisResult};

use super::conn::Target;
use super::tier::TierInner;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

/// Longest pause between two tries to resubscribe. A deaf process may
/// serve what others invalidated, so it tries often (a refused connection
/// costs next to nothing), whatever the tier's back-off for commands.
const MAX_RESUBSCRIBE_PAUSE: Duration = Duration::from_millis(250);

/// Tag of a key invalidation.
const KEY: u8 = b'i';

/// The message that invalidates `encoded_key`, from `sender`.
pub(crate) fn key_message(sender: u64, encoded_key: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(9 + encoded_key.len());
    m.push(KEY);
    m.extend_from_slice(&sender.to_le_bytes());
    m.extend_from_slice(encoded_key);
    m
}

/// A message read back: `Some((sender, key))`, or `None` if malformed.
pub(crate) fn parse_message(m: &[u8]) -> Option<(u64, &[u8])> {
    if m.len() < 9 || m[0] != KEY {
        return None;
    }
    let sender = u64::from_le_bytes(m[1..9].try_into().ok()?);
    Some((sender, &m[9..]))
}

/// What the subscriber thread reports to the cache it serves.
pub(crate) trait Subscriber: Send + Sync + 'static {
    /// Another process invalidated this encoded key.
    fn invalidated(&self, encoded_key: &[u8]);
    /// A message could not be understood: drop everything to be safe.
    fn malformed(&self);
    /// The subscription was lost.
    fn lost(&self);
    /// The subscription is (again) in place.
    fn subscribed(&self);
    /// Nothing arrived for a read timeout (a chance to retry repairs).
    fn idle(&self);
    /// The process's id, to skip its own messages.
    fn sender(&self) -> u64;
}

/// Starts the subscriber thread; it runs until `stop` is set (and notices
/// within one command timeout).
pub(crate) fn spawn(
    tier: Arc<TierInner>,
    sub: Arc<dyn Subscriber>,
    stop: Arc<AtomicBool>,
) -> std::io::Result<()> {
    thread::Builder::new()
        .name("larder-redis".into())
        .spawn(move || run(&tier, &*sub, &stop))
        .map(drop)
}

fn nodes(tier: &TierInner) -> Vec<Client> {
    match tier.pool.target() {
        Target::Single(c) => vec![c.clone()],
        Target::Cluster { nodes, .. } => nodes.clone(),
    }
}

fn run(tier: &TierInner, sub: &dyn Subscriber, stop: &AtomicBool) {
    let nodes = nodes(tier);
    let t = tier.pool.timeouts();
    let mut next_node = 0usize;
    let mut backoff = Duration::ZERO;
    while !stop.load(Ordering::Acquire) {
        let client = &nodes[next_node % nodes.len()];
        next_node = next_node.wrapping_add(1);
        if let Err(_e) = listen(tier, client, sub, stop) {
            if stop.load(Ordering::Acquire) {
                return;
            }
            backoff = if backoff.is_zero() {
                t.backoff_min.min(Duration::from_millis(50))
            } else {
                (backoff * 2).min(t.backoff_max.min(MAX_RESUBSCRIBE_PAUSE))
            };
            sleep_unless(stop, backoff);
        } else {
            backoff = Duration::ZERO;
        }
    }
}

/// One subscription, from connecting to losing it. `Ok` when stopped.
fn listen(
    tier: &TierInner,
    client: &Client,
    sub: &dyn Subscriber,
    stop: &AtomicBool,
) -> RedisResult<()> {
    let t = tier.pool.timeouts();
    let mut con = client.get_connection_with_timeout(t.connect)?;
    con.set_write_timeout(Some(t.command))?;
    con.set_read_timeout(Some(t.command))?;
    let mut ps = con.as_pubsub();
    ps.subscribe(&tier.channel[..])?;
    sub.subscribed();
    let me = sub.sender();
    let mut last_heard = Instant::now();
    let result = loop {
        if stop.load(Ordering::Acquire) {
            return Ok(());
        }
        match ps.get_message() {
            Ok(msg) => {
                last_heard = Instant::now();
                match parse_message(msg.get_payload_bytes()) {
                    Some((sender, _)) if sender == me => {}
                    Some((_, key)) => sub.invalidated(key),
                    None => sub.malformed(),
                }
            }
            Err(e) if e.is_timeout() => {
                if last_heard.elapsed() >= tier.ping_interval {
                    if let Err(e) = ps.ping::<::redis::Value>() {
                        break e;
                    }
                    last_heard = Instant::now();
                }
                sub.idle();
            }
            Err(e) => break e,
        }
    };
    sub.lost();
    Err(result)
}

fn sleep_unless(stop: &AtomicBool, d: Duration) {
    let end = Instant::now() + d;
    while !stop.load(Ordering::Acquire) {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        thread::sleep(left.min(Duration::from_millis(20)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let m = key_message(0x0102_0304_0506_0708, b"k{}");
        assert_eq!(
            parse_message(&m),
            Some((0x0102_0304_0506_0708, &b"k{}"[..]))
        );
        let empty = key_message(7, b"");
        assert_eq!(parse_message(&empty), Some((7, &b""[..])));
        assert_eq!(parse_message(b""), None);
        assert_eq!(parse_message(b"i1234567"), None);
        assert_eq!(parse_message(b"x12345678"), None);
    }
}
