//! Connections to Redis: a small pool of blocking connections (standalone
//! or cluster), every call bounded by the tier's timeouts, and a back-off
//! that stops calling a Redis that just failed.
//!
//! The `redis` crate's blocking connections are not `Sync`, so a call takes
//! one from the idle list (or opens one, within the connect timeout), runs,
//! and puts it back only if the call succeeded: a connection that saw an
//! error is dropped, never reused half-read. After a network error (refused,
//! reset, timed out) the pool refuses calls for a back-off period (100 ms,
//! doubling on every further failure up to 2 s by default) so that an
//! outage costs callers nothing but a check of the clock; the first call
//! after the period probes Redis again, and a success resets the back-off.

use std::time::{Duration, Instant};

use ::redis::cluster::{ClusterClient, ClusterConnection};
use ::redis::{Client, Connection, ConnectionLike, ErrorKind, RedisError, RedisResult};
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

/// Timeouts and back-off of one tier (see `RedisTierBuilder`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) connect: Duration,
    pub(crate) command: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
}

/// Where the tier's Redis is.
pub(crate) enum Target {
    Single(Client),
    Cluster {
        client: ClusterClient,
        /// One client per node given, for the invalidation subscription
        /// (classic pub/sub reaches every node of a cluster).
        nodes: Vec<Client>,
    },
}

enum Conn {
    Single(Connection),
    Cluster(Box<ClusterConnection>),
}

impl Conn {
    fn like(&mut self) -> &mut dyn ConnectionLike {
        match self {
            Conn::Single(c) => c,
            Conn::Cluster(c) => &mut **c,
        }
    }
}

/// Why a call to Redis did not give an answer.
#[derive(Debug)]
pub(crate) enum CallError {
    /// Redis failed recently; the call was not attempted.
    Skipped,
    /// The call failed (network, timeout or an error reply).
    Failed(#[allow(dead_code)] RedisError),
}

/// Most idle connections kept.
const MAX_IDLE: usize = 32;

pub(crate) struct Pool {
    target: Target,
    timeouts: Timeouts,
    idle: Mutex<Vec<Conn>>,
    /// Time origin of `down_until`.
    origin: Instant,
    /// Nanoseconds since `origin` before which calls are skipped.
    down_until: AtomicU64,
    /// The current back-off, in nanoseconds (0: Redis healthy).
    backoff: AtomicU64,
}

impl Pool {
    pub(crate) fn new(target: Target, timeouts: Timeouts) -> Self {
        Self {
            target,
            timeouts,
            idle: Mutex::new(Vec::new()),
            origin: Instant::now(),
            down_until: AtomicU64::new(0),
            backoff: AtomicU64::new(0),
        }
    }

    pub(crate) fn target(&self) -> &Target {
        &self.target
    }

    pub(crate) fn timeouts(&self) -> Timeouts {
        self.timeouts
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// True while calls are being skipped after a failure.
    pub(crate) fn is_backing_off(&self) -> bool {
        self.now_nanos() < self.down_until.load(Ordering::Relaxed)
    }

    /// Redis was just reached another way (the subscriber connected): end
    /// the back-off so calls resume at once.
    pub(crate) fn reached(&self) {
        self.down_until.store(0, Ordering::Relaxed);
        self.backoff.store(0, Ordering::Relaxed);
    }

    /// Runs `f` on a pooled connection.
    pub(crate) fn call<T>(
        &self,
        f: impl FnOnce(&mut dyn ConnectionLike) -> RedisResult<T>,
    ) -> Result<T, CallError> {
        if self.is_backing_off() {
            return Err(CallError::Skipped);
        }
        let pooled = self.idle.lock().pop();
        let mut conn = match pooled {
            Some(c) => c,
            None => match self.open() {
                Ok(c) => c,
                Err(e) => {
                    self.failed(&e);
                    return Err(CallError::Failed(e));
                }
            },
        };
        match f(conn.like()) {
            Ok(v) => {
                self.succeeded();
                let mut idle = self.idle.lock();
                if idle.len() < MAX_IDLE {
                    idle.push(conn);
                }
                Ok(v)
            }
            Err(e) => {
                self.failed(&e);
                Err(CallError::Failed(e))
            }
        }
    }

    fn open(&self) -> RedisResult<Conn> {
        let t = self.timeouts;
        match &self.target {
            Target::Single(client) => {
                let c = client.get_connection_with_timeout(t.connect)?;
                c.set_read_timeout(Some(t.command))?;
                c.set_write_timeout(Some(t.command))?;
                Ok(Conn::Single(c))
            }
            Target::Cluster { client, .. } => {
                let c = client.get_connection()?;
                c.set_read_timeout(Some(t.command))?;
                c.set_write_timeout(Some(t.command))?;
                Ok(Conn::Cluster(Box::new(c)))
            }
        }
    }

    fn succeeded(&self) {
        if self.backoff.load(Ordering::Relaxed) != 0 {
            self.backoff.store(0, Ordering::Relaxed);
        }
    }

    fn failed(&self, e: &RedisError) {
        if !is_network(e) {
            return; // an error reply: Redis is up
        }
        let min = duration_nanos(self.timeouts.backoff_min);
        let max = duration_nanos(self.timeouts.backoff_max).max(min);
        let prev = self.backoff.load(Ordering::Relaxed);
        let next = if prev == 0 {
            min
        } else {
            prev.saturating_mul(2).min(max)
        };
        self.backoff.store(next, Ordering::Relaxed);
        self.down_until
            .store(self.now_nanos().saturating_add(next), Ordering::Relaxed);
        // The idle connections are likely dead too.
        self.idle.lock().clear();
    }
}

/// True for errors that say Redis cannot be reached (rather than an error
/// reply from a Redis that is up).
pub(crate) fn is_network(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_refusal()
        || e.is_connection_dropped()
        || matches!(
            e.kind(),
            ErrorKind::IoError
                | ErrorKind::ClusterDown
                | ErrorKind::MasterDown
                | ErrorKind::TryAgain
                | ErrorKind::BusyLoadingError
                | ErrorKind::ClusterConnectionNotFound
        )
}

pub(crate) fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
