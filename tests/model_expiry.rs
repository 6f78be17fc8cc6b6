//! Expiration against a reference model, under a [`ManualClock`].
//!
//! A random program of inserts (with the cache's TTL or an entry's own),
//! gets, peeks, removes, clock advances (tiny, exactly onto a deadline, and
//! huge) and `run_pending_tasks` runs on a cache large enough never to
//! evict, and on a model: a `HashMap` of key -> (value, deadline, hard
//! deadline). After every step `get`/`peek`/`contains_key` must agree with
//! the model exactly, `check_invariants` must hold, and after
//! `run_pending_tasks` the cache must hold exactly the live entries and have
//! counted every expiry once (in the stats and through the listener).
//!
//! Variants: time to live; time to live alone, with per-entry writes made
//! plain writes (every deadline is write time + one TTL: the shard's
//! shortcut that moves rewritten deadlines without reading them);
//! time to live + time to idle; time to idle only;
//! no cache-wide expiry (only `insert_with_ttl`); `expire_after`. A "bulk"
//! step writes 1,500 keys with one TTL, more than one maintenance budget
//! (1,024), so budgeted maintenance and crowded wheel buckets are covered.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use larder::{Cache, ManualClock, RemovalCause};
use proptest::prelude::*;

/// "Never expires" in the model, as in the cache.
const NEVER: u64 = u64::MAX;
/// The latest time a clock reports.
const END_OF_TIME: u64 = u64::MAX - 1;
const MS: u64 = 1_000_000;
const SEC: u64 = 1_000 * MS;
const HOUR: u64 = 3_600 * SEC;
const YEAR: u64 = 365 * 24 * HOUR;

/// Keys checked after every step.
const SMALL_KEYS: u64 = 24;
/// Keys written by a bulk step.
const BULK: std::ops::Range<u64> = 1_000..2_500;

/// A cache configuration under test.
#[derive(Clone, Copy, Debug)]
enum Config {
    Ttl,
    OneTtl,
    TtlTti,
    Tti,
    PerEntryOnly,
    ExpireAfter,
}

impl Config {
    fn ttl(self) -> Option<Duration> {
        match self {
            Config::Ttl | Config::OneTtl | Config::ExpireAfter => Some(Duration::from_secs(2)),
            Config::TtlTti => Some(Duration::from_secs(3)),
            Config::Tti | Config::PerEntryOnly => None,
        }
    }
    fn tti(self) -> Option<Duration> {
        match self {
            Config::TtlTti => Some(Duration::from_secs(1)),
            Config::Tti => Some(Duration::from_millis(1500)),
            _ => None,
        }
    }
    /// `expire_after` of the `ExpireAfter` variant: values divisible by 3
    /// live `value` ms, others use the cache TTL.
    fn expire_after(self, v: u64) -> Option<Duration> {
        match self {
            Config::ExpireAfter => (v % 3 == 0).then(|| Duration::from_millis(v)),
            _ => None,
        }
    }
}

#[derive(Clone, Debug)]
enum Op {
    Insert(u64, u64),
    InsertTtl(u64, u64, Duration),
    Get(u64),
    Peek(u64),
    Remove(u64),
    /// Advance the clock by this many nanoseconds.
    Advance(u64),
    /// Advance the clock onto key's deadline, plus -1, 0 or +1 ns (a no-op
    /// if the key has none in the future).
    ToDeadline(u64, i8),
    RunPendingTasks,
    /// Write every key of `BULK` with this TTL.
    Bulk(Duration),
}

fn ttl() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        1 => Just(Duration::from_nanos(1)),
        4 => (0..3 * SEC).prop_map(Duration::from_nanos),
        2 => (0..2 * HOUR).prop_map(Duration::from_nanos),
        1 => (0..3 * YEAR).prop_map(Duration::from_nanos),
        1 => Just(Duration::MAX),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0..SMALL_KEYS;
    let value = 0..3_000u64;
    prop_oneof![
        6 => (key.clone(), value.clone()).prop_map(|(k, v)| Op::Insert(k, v)),
        3 => (key.clone(), value, ttl()).prop_map(|(k, v, t)| Op::InsertTtl(k, v, t)),
        6 => key.clone().prop_map(Op::Get),
        2 => key.clone().prop_map(Op::Peek),
        2 => key.clone().prop_map(Op::Remove),
        5 => prop_oneof![
            4 => 0..2 * SEC,
            2 => 0..10 * MS,
            1 => 0..3 * HOUR,
            1 => 0..5 * YEAR,
            1 => Just(u64::MAX / 4),
        ]
        .prop_map(Op::Advance),
        4 => (key, -1i8..=1).prop_map(|(k, d)| Op::ToDeadline(k, d)),
        2 => Just(Op::RunPendingTasks),
        1 => prop_oneof![
            (0..3 * SEC).prop_map(Duration::from_nanos),
            (0..2 * HOUR).prop_map(Duration::from_nanos),
        ]
        .prop_map(Op::Bulk),
    ]
}

/// A model entry: value, current deadline, time-to-live deadline.
#[derive(Clone, Copy, Debug)]
struct Slot {
    value: u64,
    deadline: u64,
    hard: u64,
}

/// `now + d` on the cache's timeline: zero is now, anything that does not
/// fit is never.
fn after(now: u64, d: Duration) -> u64 {
    match u64::try_from(d.as_nanos()) {
        Ok(n) => now.saturating_add(n),
        Err(_) => NEVER,
    }
}

struct Model {
    config: Config,
    now: u64,
    map: HashMap<u64, Slot>,
    /// Expirations the cache must have counted once maintenance finishes.
    expired: u64,
}

impl Model {
    fn live(&self, k: u64) -> Option<Slot> {
        self.map.get(&k).copied().filter(|s| s.deadline > self.now)
    }

    /// Drops `k` if it has expired, counting it.
    fn reap(&mut self, k: u64) {
        if self.map.contains_key(&k) && self.live(k).is_none() {
            self.map.remove(&k);
            self.expired += 1;
        }
    }

    fn insert(&mut self, k: u64, v: u64, ttl: Option<Duration>) {
        self.reap(k);
        let hard = ttl.map_or(NEVER, |t| after(self.now, t));
        let idle = self.config.tti().map_or(NEVER, |t| after(self.now, t));
        self.map.insert(
            k,
            Slot {
                value: v,
                deadline: idle.min(hard),
                hard,
            },
        );
    }

    fn get(&mut self, k: u64) -> Option<u64> {
        let now = self.now;
        let tti = self.config.tti();
        let slot = self.map.get_mut(&k).filter(|s| s.deadline > now)?;
        if let Some(tti) = tti {
            slot.deadline = slot.deadline.max(after(now, tti).min(slot.hard));
        }
        Some(slot.value)
    }

    fn run_pending_tasks(&mut self) {
        let keys: Vec<u64> = self.map.keys().copied().collect();
        for k in keys {
            self.reap(k);
        }
    }
}

/// Runs `ops` on a cache built for `config` and on the model.
fn check(config: Config, shards: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let clock = ManualClock::new();
    let expired_seen = Arc::new(AtomicU64::new(0));
    let sink = expired_seen.clone();
    let mut b = Cache::builder()
        .max_capacity(1 << 20)
        .shards(shards)
        .clock(clock.clone())
        .seed(5)
        .eviction_listener(move |_k: &u64, _v: &u64, cause| {
            if cause == RemovalCause::Expired {
                sink.fetch_add(1, Ordering::Relaxed);
            }
        });
    if let Some(t) = config.ttl() {
        b = b.time_to_live(t);
    }
    if let Some(t) = config.tti() {
        b = b.time_to_idle(t);
    }
    if let Config::ExpireAfter = config {
        b = b.expire_after(move |_k, v| config.expire_after(*v));
    }
    let cache: Cache<u64, u64> = b.build();
    let mut m = Model {
        config,
        now: 0,
        map: HashMap::new(),
        expired: 0,
    };

    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Insert(k, v) => {
                cache.insert(k, v);
                m.insert(k, v, config.expire_after(v).or(config.ttl()));
            }
            Op::InsertTtl(k, v, _) if matches!(config, Config::OneTtl) => {
                cache.insert(k, v);
                m.insert(k, v, config.ttl());
            }
            Op::Bulk(_) if matches!(config, Config::OneTtl) => {
                for k in BULK {
                    cache.insert(k, k);
                    m.insert(k, k, config.ttl());
                }
            }
            Op::InsertTtl(k, v, t) => {
                cache.insert_with_ttl(k, v, t);
                m.insert(k, v, Some(t));
            }
            Op::Get(k) => {
                let want = m.get(k);
                prop_assert_eq!(cache.get(&k), want, "step {}: get {}", step, k);
            }
            Op::Peek(k) => {
                prop_assert_eq!(cache.peek(&k), m.live(k).map(|s| s.value));
            }
            Op::Remove(k) => {
                let want = m.live(k).map(|s| s.value);
                m.reap(k);
                m.map.remove(&k);
                prop_assert_eq!(cache.remove(&k), want, "step {}: remove {}", step, k);
            }
            Op::Advance(by) => {
                clock.advance(Duration::from_nanos(by));
                m.now = m.now.saturating_add(by).min(END_OF_TIME);
            }
            Op::ToDeadline(k, delta) => {
                if let Some(s) = m.live(k) {
                    let target = s.deadline.saturating_add_signed(delta.into());
                    if s.deadline != NEVER && target > m.now && target <= END_OF_TIME {
                        clock.set(Duration::from_nanos(target));
                        m.now = target;
                    }
                }
            }
            Op::RunPendingTasks => {
                cache.run_pending_tasks();
                m.run_pending_tasks();
                prop_assert_eq!(cache.len(), m.map.len(), "step {}: len", step);
                let stats = cache.stats();
                prop_assert_eq!(stats.expirations, m.expired, "step {}", step);
                prop_assert_eq!(expired_seen.load(Ordering::Relaxed), m.expired);
                prop_assert_eq!(stats.evictions, 0);
            }
            Op::Bulk(t) => {
                for k in BULK {
                    cache.insert_with_ttl(k, k, t);
                    m.insert(k, k, Some(t));
                }
            }
        }
        prop_assert_eq!(clock.now(), Duration::from_nanos(m.now));

        // Every read path agrees with the model (none of these extends a
        // time to idle).
        for k in 0..SMALL_KEYS {
            let want = m.live(k).map(|s| s.value);
            prop_assert_eq!(cache.peek(&k), want, "step {} ({:?}): peek {}", step, op, k);
            prop_assert_eq!(
                cache.contains_key(&k),
                want.is_some(),
                "step {}: {}",
                step,
                k
            );
        }
        for k in BULK.step_by(97) {
            let want = m.live(k).map(|s| s.value);
            prop_assert_eq!(cache.peek(&k), want, "step {}: bulk peek {}", step, k);
        }
        let live = m.map.keys().filter(|&&k| m.live(k).is_some()).count();
        prop_assert!(cache.len() >= live);
        if m.map.len() <= 64 || matches!(op, Op::RunPendingTasks) {
            let mut got: Vec<(u64, u64)> = cache.iter().collect();
            got.sort_unstable();
            let mut want: Vec<(u64, u64)> = m
                .map
                .iter()
                .filter(|(_, s)| s.deadline > m.now)
                .map(|(&k, s)| (k, s.value))
                .collect();
            want.sort_unstable();
            prop_assert_eq!(got, want, "step {}: iter", step);
            cache.check_invariants();
        }
    }
    // Finally, everything due is removed and counted once.
    cache.run_pending_tasks();
    m.run_pending_tasks();
    prop_assert_eq!(cache.len(), m.map.len());
    prop_assert_eq!(cache.stats().expirations, m.expired);
    prop_assert_eq!(expired_seen.load(Ordering::Relaxed), m.expired);
    cache.check_invariants();
    Ok(())
}

fn program() -> impl Strategy<Value = Vec<Op>> {
    prop::collection::vec(op(), 1..150)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn ttl_matches_model(ops in program(), shards in prop_oneof![Just(1usize), Just(4)]) {
        check(Config::Ttl, shards, &ops)?;
    }

    #[test]
    fn one_ttl_matches_model(ops in program(), shards in prop_oneof![Just(1usize), Just(4)]) {
        check(Config::OneTtl, shards, &ops)?;
    }

    #[test]
    fn ttl_and_tti_match_model(ops in program(), shards in prop_oneof![Just(1usize), Just(4)]) {
        check(Config::TtlTti, shards, &ops)?;
    }

    #[test]
    fn tti_matches_model(ops in program()) {
        check(Config::Tti, 1, &ops)?;
    }

    #[test]
    fn per_entry_ttl_matches_model(ops in program()) {
        check(Config::PerEntryOnly, 1, &ops)?;
    }

    #[test]
    fn expire_after_matches_model(ops in program()) {
        check(Config::ExpireAfter, 2, &ops)?;
    }
}
