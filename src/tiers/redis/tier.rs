//! [`RedisTier`]: where the shared tier is, how its keys are named, and the
//! timeouts of every call.

use std::fmt;
use std::time::Duration;

use ::redis::cluster::ClusterClientBuilder;
use ::redis::Client;

use super::conn::{Pool, Target, Timeouts};
use super::Error;
use std::sync::Arc;

/// Default connect timeout: a connection to Redis that is not up by then
/// counts as a failure.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_millis(250);
/// Default timeout of every command (each read and write on the socket).
pub const DEFAULT_COMMAND_TIMEOUT: Duration = Duration::from_millis(100);
/// Default lease: how long one process may hold the right to load a key
/// before the others stop waiting for it.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(2);
/// Default shortest pause after a failed call before Redis is tried again
/// (doubled on every further failure up to [`DEFAULT_BACKOFF_MAX`]).
pub const DEFAULT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Default longest pause between tries while Redis is failing.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// Default interval at which a quiet invalidation subscription is checked
/// with a `PING`.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(1);

/// A handle on the shared Redis tier of one namespace: a pool of
/// connections (standalone or cluster), the key naming and the timeouts.
///
/// Cheap to clone. Building one connects to nothing, so a process starts
/// while Redis is down; [`TieredCache`](super::TieredCache) connects on
/// first use and after every outage by itself.
///
/// # Keys
///
/// A key `k` of namespace `ns` is stored under `ns:{<k encoded>}` and its
/// lease under `ns:{<k encoded>}:lock`: the braces make them one Redis
/// Cluster hash slot. In the encoding, `%` and `}` are written `%25` and
/// `%7D`, and an empty encoding is written `%`, so the hash tag is never
/// empty and always the whole key. Invalidations go out on the pub/sub
/// channel `ns:invalidations`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use larder::redis::RedisTier;
///
/// let tier = RedisTier::builder("redis://127.0.0.1:6379/")
///     .namespace("users")
///     .command_timeout(Duration::from_millis(50))
///     .build()?;
/// assert_eq!(tier.namespace(), "users");
/// # Ok::<(), larder::redis::Error>(())
/// ```
#[derive(Clone)]
pub struct RedisTier {
    pub(crate) inner: Arc<TierInner>,
}

pub(crate) struct TierInner {
    pub(crate) pool: Pool,
    pub(crate) namespace: String,
    pub(crate) channel: Vec<u8>,
    pub(crate) lease: Duration,
    pub(crate) lease_wait: Duration,
    pub(crate) ping_interval: Duration,
}

impl fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.inner.pool.target() {
            Target::Single(_) => "standalone",
            Target::Cluster { .. } => "cluster",
        };
        f.debug_struct("RedisTier")
            .field("namespace", &self.inner.namespace)
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl RedisTier {
    /// A builder for a tier on one Redis server, given by URL
    /// (`redis://[user:password@]host:port[/db]`, `rediss://` needs the
    /// `redis` crate's TLS features, `redis+unix:///path`).
    pub fn builder(url: impl Into<String>) -> RedisTierBuilder {
        RedisTierBuilder::new(vec![url.into()], false)
    }

    /// A builder for a tier on a Redis Cluster, given by the URLs of some of
    /// its nodes (the rest are discovered).
    pub fn cluster_builder<I>(urls: I) -> RedisTierBuilder
    where
        I: IntoIterator,
        I::Item: Into<String>,
    {
        RedisTierBuilder::new(urls.into_iter().map(Into::into).collect(), true)
    }

    /// The namespace: the prefix of every key and the channel's name.
    pub fn namespace(&self) -> &str {
        &self.inner.namespace
    }

    /// True for a tier on a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner.pool.target(), Target::Cluster { .. })
    }
}

impl TierInner {
    /// The Redis key of an encoded cache key: `ns:{X}`, where X is the
    /// encoding with `%` and `}` escaped as `%25` and `%7D` (and `%` alone
    /// for an empty encoding), so the braces always hold a non-empty hash
    /// tag that ends where the key does.
    pub(crate) fn value_key(&self, encoded: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.namespace.len() + encoded.len() + 4);
        k.extend_from_slice(self.namespace.as_bytes());
        k.extend_from_slice(b":{");
        if encoded.is_empty() {
            k.push(b'%');
        }
        for &b in encoded {
            match b {
                b'%' => k.extend_from_slice(b"%25"),
                b'}' => k.extend_from_slice(b"%7D"),
                _ => k.push(b),
            }
        }
        k.push(b'}');
        k
    }

    /// The lease key that goes with `value_key` (same hash tag, so the
    /// same cluster slot).
    pub(crate) fn lock_key(&self, value_key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(value_key.len() + 5);
        k.extend_from_slice(value_key);
        k.extend_from_slice(b":lock");
        k
    }
}

/// Builds a [`RedisTier`]; every setting has a default.
#[must_use = "a builder does nothing until .build() is called"]
#[derive(Debug, Clone)]
pub struct RedisTierBuilder {
    urls: Vec<String>,
    cluster: bool,
    namespace: String,
    timeouts: Timeouts,
    lease: Duration,
    lease_wait: Option<Duration>,
    ping_interval: Duration,
}

impl RedisTierBuilder {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        Self {
            urls,
            cluster,
            namespace: "larder".to_string(),
            timeouts: Timeouts {
                connect: DEFAULT_CONNECT_TIMEOUT,
                command: DEFAULT_COMMAND_TIMEOUT,
                backoff_min: DEFAULT_BACKOFF_MIN,
                backoff_max: DEFAULT_BACKOFF_MAX,
            },
            lease: DEFAULT_LEASE,
            lease_wait: None,
            ping_interval: DEFAULT_PING_INTERVAL,
        }
    }

    /// The prefix of every Redis key of this tier and the name of its
    /// invalidation channel (default `larder`). Processes that share a
    /// namespace share entries and invalidations, so give each cache its
    /// own. Must be non-empty, without `{`, `}` or whitespace.
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = namespace.into();
        self
    }

    /// How long opening a connection may take (default 250 ms).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.connect = timeout;
        self
    }

    /// How long any one command may wait for its socket (default 100 ms;
    /// it bounds each read and each write).
    pub fn command_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.command = timeout;
        self
    }

    /// The pause after a network failure before Redis is tried again: `min`
    /// at first, doubling on each further failure up to `max` (defaults
    /// 100 ms and 2 s). While it lasts, calls that need Redis skip it
    /// (counted in [`TierStats::l2_skipped`](super::TierStats::l2_skipped)).
    pub fn backoff(mut self, min: Duration, max: Duration) -> Self {
        self.timeouts.backoff_min = min;
        self.timeouts.backoff_max = max.max(min);
        self
    }

    /// How long one process holds the right to load a missing key before
    /// another may take it (default 2 s): set it above your loader's usual
    /// duration. A holder that crashes blocks nobody past it.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// How long a process that did not get the lease waits for the value
    /// to appear before it loads it itself (default: the lease).
    pub fn lease_wait(mut self, wait: Duration) -> Self {
        self.lease_wait = Some(wait);
        self
    }

    /// How often a quiet invalidation subscription is checked with a
    /// `PING` (default 1 s): a subscription that does not answer within the
    /// command timeout counts as lost.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval;
        self
    }

    /// Checks the settings and builds the tier. Does not connect.
    ///
    /// # Errors
    ///
    /// [`Error::Config`] for an unparsable URL, no URL, a bad namespace or a
    /// zero timeout.
    pub fn build(self) -> Result<RedisTier, Error> {
        let ns = &self.namespace;
        if ns.is_empty()
            || ns
                .chars()
                .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
        {
            return Err(Error::Config(format!(
                "namespace {ns:?}: must be non-empty, without braces or whitespace"
            )));
        }
        let t = self.timeouts;
        if t.connect.is_zero() || t.command.is_zero() || self.lease.is_zero() {
            return Err(Error::Config(
                "timeouts and the lease must be longer than zero".to_string(),
            ));
        }
        if self.ping_interval.is_zero() {
            return Err(Error::Config(
                "the ping interval must be longer than zero".into(),
            ));
        }
        if self.urls.is_empty() {
            return Err(Error::Config("no Redis URL".to_string()));
        }
        let mut clients = Vec::with_capacity(self.urls.len());
        for url in &self.urls {
            clients.push(
                Client::open(url.as_str())
                    .map_err(|e| Error::Config(format!("Redis URL {url:?}: {e}")))?,
            );
        }
        let target = if self.cluster {
            let client = ClusterClientBuilder::new(self.urls.clone())
                .connection_timeout(t.connect)
                .response_timeout(t.command)
                .retries(2)
                .min_retry_wait(5)
                .max_retry_wait(50)
                .build()
                .map_err(|e| Error::Config(format!("Redis Cluster URLs: {e}")))?;
            Target::Cluster {
                client,
                nodes: clients,
            }
        } else {
            if clients.len() != 1 {
                return Err(Error::Config("one URL for a standalone Redis".into()));
            }
            Target::Single(clients.remove(0))
        };
        let channel = format!("{ns}:invalidations").into_bytes();
        Ok(RedisTier {
            inner: Arc::new(TierInner {
                pool: Pool::new(target, t),
                namespace: self.namespace,
                channel,
                lease: self.lease,
                lease_wait: self.lease_wait.unwrap_or(self.lease),
                ping_interval: self.ping_interval,
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(ns: &str) -> RedisTier {
        RedisTier::builder("redis://127.0.0.1:1/")
            .namespace(ns)
            .build()
            .unwrap()
    }

    #[test]
    fn keys_share_a_non_empty_slot_tag() {
        let t = tier("users");
        let v = t.inner.value_key(b"7");
        assert_eq!(v, b"users:{7}");
        assert_eq!(t.inner.lock_key(&v), b"users:{7}:lock");
        assert_eq!(t.inner.value_key(b""), b"users:{%}");
        assert_eq!(t.inner.value_key(b"}"), b"users:{%7D}");
        assert_eq!(t.inner.value_key(b"%"), b"users:{%25}");
        assert_eq!(t.inner.value_key(b"a{b}c"), b"users:{a{b%7Dc}");
        // Distinct encodings, distinct keys.
        let mut seen = std::collections::HashSet::new();
        for e in [&b""[..], b"%", b"%25", b"}", b"%7D", b"%%", b"{", b"{}"] {
            assert!(seen.insert(t.inner.value_key(e)), "{e:?}");
        }
    }

    #[test]
    fn bad_settings_are_errors() {
        let b = || RedisTier::builder("redis://127.0.0.1:1/");
        assert!(b().namespace("").build().is_err());
        assert!(b().namespace("a{b").build().is_err());
        assert!(b().namespace("a b").build().is_err());
        assert!(b().command_timeout(Duration::ZERO).build().is_err());
        assert!(b().lease(Duration::ZERO).build().is_err());
        assert!(RedisTier::builder("not a url").build().is_err());
        assert!(RedisTier::cluster_builder(Vec::<String>::new())
            .build()
            .is_err());
        assert!(RedisTier::cluster_builder(["redis://127.0.0.1:1/"])
            .build()
            .unwrap()
            .is_cluster());
    }
}
