//! Model tests of whole caches, one per eviction policy: random sequences of
//! `insert`, `get`, `remove`, `retain` and `invalidate_all` on a one-shard
//! [`Cache`], checked after every step against a small reference model.
//!
//! The model is a `BTreeMap` of the stored values plus a `Vec`-based model
//! of the policy, written from the policy's documented rules (not from its
//! code). It predicts, exactly:
//!
//! * the contents and values (through `peek` and `contains_key`, which do
//!   not touch the policy), `len` and `weighted_size`;
//! * every removal the eviction listener reports, with its cause, in order
//!   (`retain` and `invalidate_all` visit the slab in an order the model
//!   does not know, so their reports are compared as sets);
//! * every counter of [`Cache::stats`].
//!
//! What the shard guarantees and the model relies on: with one thread,
//! every `get` hit reaches the policy, in order, before the next write; an
//! `insert` of a present key is an update (an access, with the new weight);
//! after an insert the shard evicts until the weight fits the capacity; a
//! value heavier than the capacity is not stored and takes any old value for
//! its key with it (reported `Replaced`, then the new value `Evicted`).
//!
//! LRU, FIFO, SLRU, LFU, SIEVE and S3-FIFO must pick exactly the model's
//! victims. Random's
//! victims are by design unpredictable, so its model takes each victim from
//! the listener and checks everything around it: the victim was stored, the
//! cache evicted exactly as much as needed (no more), `len <= capacity`,
//! `len` equals the number of keys `contains_key` finds, a key just inserted
//! is found unless it was itself the reported victim, and the statistics add
//! up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use larder::{Cache, Policy, RemovalCause, Stats};
use proptest::prelude::*;

/// Keys are drawn from `0..KEYS`.
const KEYS: u32 = 16;

/// A stored value: `(weight, version)`; the weigher reads the weight and
/// the version tells two values for one key apart.
type Value = (u32, u32);

/// One removal, as the eviction listener saw it.
type Event = (u32, Value, RemovalCause);

/// A policy's rules over keys, as the cache model drives it.
trait PolicyModel {
    /// A new key was stored with `weight`.
    fn insert(&mut self, key: u32, weight: u32);
    /// A `get` hit on `key`.
    fn access(&mut self, key: u32);
    /// The value of stored `key` was replaced; its weight is now `weight`.
    fn update(&mut self, key: u32, weight: u32);
    /// Stored `key` left for a reason other than eviction.
    fn remove(&mut self, key: u32);
    /// Chooses and forgets a victim. `reported` is the victim the cache's
    /// listener reported at this point, if any: only a model that cannot
    /// predict victims (Random) may use it.
    fn evict(&mut self, reported: Option<u32>) -> u32;
    /// Forgets everything (`invalidate_all`).
    fn clear(&mut self);
}

/// LRU: a hit or an update moves the key to the MRU end; the victim is the
/// LRU end.
#[derive(Default)]
struct LruModel(Vec<u32>);

impl PolicyModel for LruModel {
    fn insert(&mut self, key: u32, _weight: u32) {
        self.0.push(key);
    }
    fn access(&mut self, key: u32) {
        self.remove(key);
        self.0.push(key);
    }
    fn update(&mut self, key: u32, _weight: u32) {
        self.access(key);
    }
    fn remove(&mut self, key: u32) {
        self.0.retain(|&k| k != key);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        self.0.remove(0)
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// FIFO: insertion order; hits and updates change nothing.
#[derive(Default)]
struct FifoModel(Vec<u32>);

impl PolicyModel for FifoModel {
    fn insert(&mut self, key: u32, _weight: u32) {
        self.0.push(key);
    }
    fn access(&mut self, _key: u32) {}
    fn update(&mut self, _key: u32, _weight: u32) {}
    fn remove(&mut self, key: u32) {
        self.0.retain(|&k| k != key);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        self.0.remove(0)
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// SLRU: new keys enter probation (MRU end); a hit or update moves a key
/// to the protected MRU end, then the protected LRU keys are demoted to the
/// probation MRU end while protected weighs more than 80% of the capacity
/// (rounded down). The victim is the probation LRU key, else the protected
/// LRU key.
struct SlruModel {
    /// `(key, weight)`, LRU first.
    probation: Vec<(u32, u32)>,
    /// `(key, weight)`, LRU first.
    protected: Vec<(u32, u32)>,
    /// The protected segment's weight limit.
    protected_max: u64,
}

impl SlruModel {
    /// An empty model for a shard of `capacity`.
    fn new(capacity: u64) -> Self {
        Self {
            probation: Vec::new(),
            protected: Vec::new(),
            protected_max: u64::try_from(u128::from(capacity) * 4 / 5).unwrap(),
        }
    }

    /// Removes stored `key` from its segment and returns it.
    fn take(&mut self, key: u32) -> (u32, u32) {
        if let Some(p) = self.probation.iter().position(|e| e.0 == key) {
            self.probation.remove(p)
        } else {
            let p = self.protected.iter().position(|e| e.0 == key).unwrap();
            self.protected.remove(p)
        }
    }

    /// Puts `entry` at the protected MRU end, then demotes as needed.
    fn promote(&mut self, entry: (u32, u32)) {
        self.protected.push(entry);
        while self.protected.iter().map(|e| u64::from(e.1)).sum::<u64>() > self.protected_max {
            let demoted = self.protected.remove(0);
            self.probation.push(demoted);
        }
    }
}

impl PolicyModel for SlruModel {
    fn insert(&mut self, key: u32, weight: u32) {
        self.probation.push((key, weight));
    }
    fn access(&mut self, key: u32) {
        let entry = self.take(key);
        self.promote(entry);
    }
    fn update(&mut self, key: u32, weight: u32) {
        let (key, _) = self.take(key);
        self.promote((key, weight));
    }
    fn remove(&mut self, key: u32) {
        self.take(key);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        if self.probation.is_empty() {
            self.protected.remove(0).0
        } else {
            self.probation.remove(0).0
        }
    }
    fn clear(&mut self) {
        self.probation.clear();
        self.protected.clear();
    }
}

/// LFU: an insert gives count 1, a hit or update adds 1 (saturating at
/// 65,535); each of the three stamps the key with a touch clock. The victim
/// has the lowest count, then the oldest stamp. After every
/// `10 * max(capacity, 16)` touches every count becomes `max(1, count / 2)`.
struct LfuModel {
    /// `(key, count, last touch)`.
    entries: Vec<(u32, u32, u64)>,
    /// Touches so far.
    clock: u64,
    /// Touches since the last halving.
    since_aging: u64,
    /// Touches between halvings.
    period: u64,
}

impl LfuModel {
    /// An empty model for a shard of `capacity`.
    fn new(capacity: u64) -> Self {
        Self {
            entries: Vec::new(),
            clock: 0,
            since_aging: 0,
            period: capacity.max(16).saturating_mul(10),
        }
    }

    /// Advances the touch clock, halving every count when a period ends.
    fn tick(&mut self) {
        self.clock += 1;
        self.since_aging += 1;
        if self.since_aging == self.period {
            self.since_aging = 0;
            for e in &mut self.entries {
                e.1 = (e.1 / 2).max(1);
            }
        }
    }
}

impl PolicyModel for LfuModel {
    fn insert(&mut self, key: u32, _weight: u32) {
        self.entries.push((key, 1, self.clock));
        self.tick();
    }
    fn access(&mut self, key: u32) {
        let clock = self.clock;
        let e = self.entries.iter_mut().find(|e| e.0 == key).unwrap();
        e.1 = (e.1 + 1).min(u32::from(u16::MAX));
        e.2 = clock;
        self.tick();
    }
    fn update(&mut self, key: u32, _weight: u32) {
        self.access(key);
    }
    fn remove(&mut self, key: u32) {
        self.entries.retain(|e| e.0 != key);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        let victim = self.entries.iter().min_by_key(|e| (e.1, e.2)).unwrap().0;
        self.remove(victim);
        victim
    }
    fn clear(&mut self) {
        *self = Self::new(self.period / 10);
    }
}

/// Random: any stored key may be the victim, so take the one the cache
/// reported, after checking that it is stored.
#[derive(Default)]
struct RandomModel(Vec<u32>);

impl PolicyModel for RandomModel {
    fn insert(&mut self, key: u32, _weight: u32) {
        self.0.push(key);
    }
    fn access(&mut self, _key: u32) {}
    fn update(&mut self, _key: u32, _weight: u32) {}
    fn remove(&mut self, key: u32) {
        self.0.retain(|&k| k != key);
    }
    fn evict(&mut self, reported: Option<u32>) -> u32 {
        let victim = reported.expect("the cache evicted less than needed");
        assert!(self.0.contains(&victim), "victim {victim} was not stored");
        self.remove(victim);
        victim
    }
    fn clear(&mut self) {
        self.0.clear();
    }
}

/// SIEVE: one queue in insertion order with a visited bit per key; a hit
/// or update sets the bit. Eviction starts at the hand (the key after the
/// last victim; the oldest key if there is none), clears set bits while
/// walking towards newer keys (wrapping to the oldest), and evicts the
/// first key whose bit is clear; the hand moves to the key after it.
#[derive(Default)]
struct SieveModel {
    /// `(key, visited)`, oldest first.
    queue: Vec<(u32, bool)>,
    /// The key the next eviction starts at, if any.
    hand: Option<u32>,
}

impl SieveModel {
    fn position(&self, key: u32) -> usize {
        self.queue.iter().position(|e| e.0 == key).unwrap()
    }
}

impl PolicyModel for SieveModel {
    fn insert(&mut self, key: u32, _weight: u32) {
        self.queue.push((key, false));
    }
    fn access(&mut self, key: u32) {
        let p = self.position(key);
        self.queue[p].1 = true;
    }
    fn update(&mut self, key: u32, _weight: u32) {
        self.access(key);
    }
    fn remove(&mut self, key: u32) {
        let p = self.position(key);
        if self.hand == Some(key) {
            self.hand = self.queue.get(p + 1).map(|e| e.0);
        }
        self.queue.remove(p);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        let mut i = self.hand.map_or(0, |h| self.position(h));
        while self.queue[i].1 {
            self.queue[i].1 = false;
            i = (i + 1) % self.queue.len();
        }
        let victim = self.queue.remove(i).0;
        self.hand = self.queue.get(i).map(|e| e.0);
        victim
    }
    fn clear(&mut self) {
        *self = Self::default();
    }
}

/// S3-FIFO: a new key enters `small` (frequency 0) unless the ghost queue
/// remembers it, then it enters `main`; a hit or update adds one to its
/// frequency, up to 3. To evict: while small weighs more than its share
/// (10% of the capacity, rounded up) or main is empty, small's oldest key
/// leaves if its frequency is 0 (and joins the ghost queue), else moves to
/// main's newest end with frequency 0; otherwise main's oldest key leaves
/// if its frequency is 0, else goes to main's newest end with one less.
/// The ghost queue remembers the last 16 keys that joined it (at these
/// capacities, 90% of the entries is always below its minimum of 16); a
/// key found there is forgotten by it.
struct S3FifoModel {
    /// `(key, weight)`, oldest first.
    small: Vec<(u32, u32)>,
    /// `(key, weight)`, oldest first.
    main: Vec<(u32, u32)>,
    /// Frequency of every stored key.
    freq: BTreeMap<u32, u8>,
    /// `(key, time it joined)`.
    ghost: Vec<(u32, u32)>,
    /// Keys that joined the ghost queue so far.
    ghost_time: u32,
    /// Small's share of the capacity.
    small_max: u64,
}

impl S3FifoModel {
    /// Ghost queue length at the capacities tested here.
    const GHOST_LEN: u32 = 16;

    fn new(capacity: u64) -> Self {
        Self {
            small: Vec::new(),
            main: Vec::new(),
            freq: BTreeMap::new(),
            ghost: Vec::new(),
            ghost_time: 0,
            small_max: (capacity * 10).div_ceil(100).min(capacity),
        }
    }

    fn queue_of(&mut self, key: u32) -> (&mut Vec<(u32, u32)>, usize) {
        if let Some(p) = self.small.iter().position(|e| e.0 == key) {
            (&mut self.small, p)
        } else {
            let p = self.main.iter().position(|e| e.0 == key).unwrap();
            (&mut self.main, p)
        }
    }
}

impl PolicyModel for S3FifoModel {
    fn insert(&mut self, key: u32, weight: u32) {
        self.freq.insert(key, 0);
        let remembered = match self.ghost.iter().position(|g| g.0 == key) {
            Some(p) => {
                let (_, t) = self.ghost.remove(p);
                self.ghost_time - t < Self::GHOST_LEN
            }
            None => false,
        };
        if remembered {
            self.main.push((key, weight));
        } else {
            self.small.push((key, weight));
        }
    }
    fn access(&mut self, key: u32) {
        let f = self.freq.get_mut(&key).unwrap();
        *f = (*f + 1).min(3);
    }
    fn update(&mut self, key: u32, weight: u32) {
        let (queue, p) = self.queue_of(key);
        queue[p].1 = weight;
        self.access(key);
    }
    fn remove(&mut self, key: u32) {
        let (queue, p) = self.queue_of(key);
        queue.remove(p);
        self.freq.remove(&key);
    }
    fn evict(&mut self, _reported: Option<u32>) -> u32 {
        loop {
            let small_weight: u64 = self.small.iter().map(|e| u64::from(e.1)).sum();
            if small_weight > self.small_max || self.main.is_empty() {
                let entry = self.small.remove(0);
                if self.freq[&entry.0] == 0 {
                    self.freq.remove(&entry.0);
                    let now = self.ghost_time;
                    self.ghost_time += 1;
                    self.ghost.retain(|g| g.0 != entry.0);
                    self.ghost.push((entry.0, now));
                    return entry.0;
                }
                self.freq.insert(entry.0, 0);
                self.main.push(entry);
            } else {
                let entry = self.main.remove(0);
                let f = self.freq.get_mut(&entry.0).unwrap();
                if *f == 0 {
                    self.freq.remove(&entry.0);
                    return entry.0;
                }
                *f -= 1;
                self.main.push(entry);
            }
        }
    }
    fn clear(&mut self) {
        self.small.clear();
        self.main.clear();
        self.freq.clear();
        self.ghost.clear();
    }
}

/// The model policy for `policy` in a one-shard cache of `capacity`.
fn policy_model(policy: Policy, capacity: u64) -> Box<dyn PolicyModel> {
    match policy {
        Policy::Lru => Box::new(LruModel::default()),
        Policy::Fifo => Box::new(FifoModel::default()),
        Policy::Slru => Box::new(SlruModel::new(capacity)),
        Policy::Lfu => Box::new(LfuModel::new(capacity)),
        Policy::Random => Box::new(RandomModel::default()),
        Policy::Sieve => Box::new(SieveModel::default()),
        Policy::S3Fifo => Box::new(S3FifoModel::new(capacity)),
        Policy::WTinyLfu => unreachable!("W-TinyLFU has its own invariant tests"),
    }
}

/// The whole cache: stored values, the policy model and the counters.
struct CacheModel {
    /// The shard's capacity (the cache's, with one shard).
    capacity: u64,
    /// What should be stored.
    map: BTreeMap<u32, Value>,
    /// Total weight of `map`.
    weight: u64,
    /// The policy's order.
    policy: Box<dyn PolicyModel>,
    /// What `Cache::stats` should report.
    stats: Stats,
}

impl CacheModel {
    /// Inserts like the shard does and returns the listener reports it
    /// expects. `actual` are the reports the cache made for this insert
    /// (only the Random model reads victims from it).
    fn insert(&mut self, key: u32, value: Value, actual: &[Event]) -> Vec<Event> {
        let mut events = Vec::new();
        let weight = value.0.max(1); // a weight of 0 counts as 1
        if self.capacity == 0 || u64::from(weight) > self.capacity {
            if let Some(old) = self.map.remove(&key) {
                self.weight -= u64::from(old.0.max(1));
                self.policy.remove(key);
                self.stats.removals += 1;
                events.push((key, old, RemovalCause::Replaced));
            }
            self.stats.rejections += 1;
            self.stats.evictions += 1;
            self.stats.evicted_weight += u64::from(weight);
            events.push((key, value, RemovalCause::Evicted));
            return events;
        }
        match self.map.insert(key, value) {
            Some(old) => {
                self.weight = self.weight - u64::from(old.0.max(1)) + u64::from(weight);
                self.policy.update(key, weight);
                self.stats.updates += 1;
                events.push((key, old, RemovalCause::Replaced));
            }
            None => {
                self.weight += u64::from(weight);
                self.policy.insert(key, weight);
                self.stats.inserts += 1;
            }
        }
        while self.weight > self.capacity {
            let reported = actual
                .get(events.len())
                .filter(|e| e.2 == RemovalCause::Evicted)
                .map(|e| e.0);
            let victim = self.policy.evict(reported);
            let old = self.map.remove(&victim).expect("victim is stored");
            self.weight -= u64::from(old.0.max(1));
            self.stats.evictions += 1;
            self.stats.evicted_weight += u64::from(old.0.max(1));
            events.push((victim, old, RemovalCause::Evicted));
        }
        events
    }

    /// A `get`: the value, with the hit or miss recorded.
    fn get(&mut self, key: u32) -> Option<Value> {
        let found = self.map.get(&key).copied();
        if found.is_some() {
            self.stats.hits += 1;
            self.policy.access(key);
        } else {
            self.stats.misses += 1;
        }
        found
    }

    /// Removes `key` if present, returning its value and the reports.
    fn remove(&mut self, key: u32) -> (Option<Value>, Vec<Event>) {
        match self.map.remove(&key) {
            Some(old) => {
                self.weight -= u64::from(old.0.max(1));
                self.policy.remove(key);
                self.stats.removals += 1;
                (Some(old), vec![(key, old, RemovalCause::Explicit)])
            }
            None => (None, Vec::new()),
        }
    }

    /// Removes every stored key for which `drop_it` holds.
    fn remove_where(&mut self, drop_it: impl Fn(u32) -> bool) -> Vec<Event> {
        let keys: Vec<u32> = self.map.keys().copied().filter(|&k| drop_it(k)).collect();
        keys.into_iter().flat_map(|k| self.remove(k).1).collect()
    }
}

/// One step of a model test.
#[derive(Debug, Clone)]
enum Op {
    /// `insert(key, (weight, version))`; the weight is 1 without a weigher.
    Insert(u32, u32),
    /// `get(key)`.
    Get(u32),
    /// Cache-aside: `get(key)`, and on a miss `insert(key, (1, version))`.
    GetOrInsert(u32),
    /// `remove(key)`.
    Remove(u32),
    /// `retain(|k, _| (k + offset) % modulus != 0)`.
    Retain(u32, u32),
    /// `invalidate_all()`.
    InvalidateAll,
}

/// Weights: mostly small, sometimes zero, sometimes more than any capacity
/// used here (a rejected value).
fn weight() -> impl Strategy<Value = u32> {
    prop_oneof![12 => 0..4u32, 1 => Just(100)]
}

/// Operations, with gets skewed towards a few keys.
fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..KEYS, weight()).prop_map(|(k, w)| Op::Insert(k, w)),
        // Gets skewed to a few keys, so frequencies differ.
        4 => (0..KEYS / 4).prop_map(Op::Get),
        6 => (0..KEYS).prop_map(Op::Get),
        4 => (0..KEYS).prop_map(Op::GetOrInsert),
        2 => (0..KEYS).prop_map(Op::Remove),
        1 => (2..5u32, 0..4u32).prop_map(|(m, o)| Op::Retain(m, o)),
        1 => Just(Op::InvalidateAll),
    ]
}

/// Runs `ops` on a one-shard cache and its model, comparing after every
/// step. Without `weighted`, no weigher is set and every value weighs 1.
fn run(policy: Policy, capacity: u64, weighted: bool, seed: u64, ops: &[Op]) {
    let events = Arc::new(Mutex::new(Vec::<Event>::new()));
    let sink = Arc::clone(&events);
    let mut builder = Cache::<u32, Value>::builder()
        .max_capacity(capacity)
        .policy(policy)
        .shards(1)
        .seed(seed)
        .eviction_listener(move |k, v, cause| sink.lock().unwrap().push((*k, *v, cause)));
    if weighted {
        builder = builder.weigher(|_, v| v.0);
    }
    let cache = builder.build();
    assert_eq!(cache.shard_count(), 1);
    let mut model = CacheModel {
        capacity,
        map: BTreeMap::new(),
        weight: 0,
        policy: policy_model(policy, capacity),
        stats: Stats::default(),
    };
    let take_events = || std::mem::take(&mut *events.lock().unwrap());

    for (version, op) in (0u32..).zip(ops) {
        let context = format!("{policy} step {version}: {op:?}");
        match *op {
            Op::Insert(key, weight) => {
                let value = (if weighted { weight } else { 1 }, version);
                cache.insert(key, value);
                let actual = take_events();
                let expected = model.insert(key, value, &actual);
                assert_eq!(actual, expected, "{context}");
                // The key just inserted is there unless it was rejected or
                // itself chosen as a victim (possible under Random, or
                // when it is heavy).
                let gone = actual
                    .iter()
                    .any(|e| e.0 == key && e.1 == value && e.2 == RemovalCause::Evicted);
                assert_eq!(cache.peek(&key), (!gone).then_some(value), "{context}");
            }
            Op::Get(key) => {
                assert_eq!(cache.get(&key), model.get(key), "{context}");
                assert!(
                    take_events().is_empty(),
                    "{context}: a get removed something"
                );
            }
            Op::GetOrInsert(key) => {
                let found = cache.get(&key);
                assert_eq!(found, model.get(key), "{context}");
                if found.is_none() {
                    let value = (1, version);
                    cache.insert(key, value);
                    let actual = take_events();
                    let expected = model.insert(key, value, &actual);
                    assert_eq!(actual, expected, "{context}");
                }
                assert!(take_events().is_empty(), "{context}");
            }
            Op::Remove(key) => {
                let (value, expected) = model.remove(key);
                assert_eq!(cache.remove(&key), value, "{context}");
                assert_eq!(take_events(), expected, "{context}");
            }
            Op::Retain(modulus, offset) => {
                cache.retain(|k, _| (k + offset) % modulus != 0);
                let mut expected = model.remove_where(|k| (k + offset) % modulus == 0);
                let mut actual = take_events();
                actual.sort_by_key(|e| e.0);
                expected.sort_by_key(|e| e.0);
                assert_eq!(actual, expected, "{context}");
            }
            Op::InvalidateAll => {
                cache.invalidate_all();
                let mut expected = model.remove_where(|_| true);
                model.policy.clear();
                let mut actual = take_events();
                actual.sort_by_key(|e| e.0);
                expected.sort_by_key(|e| e.0);
                assert_eq!(actual, expected, "{context}");
            }
        }

        cache.check_invariants();
        for key in 0..KEYS {
            let stored = model.map.get(&key).copied();
            assert_eq!(cache.peek(&key), stored, "{context}: key {key}");
            assert_eq!(cache.contains_key(&key), stored.is_some(), "{context}");
        }
        let found = (0..KEYS).filter(|k| cache.contains_key(k)).count();
        assert_eq!(cache.len(), found, "{context}");
        assert_eq!(cache.len(), model.map.len(), "{context}");
        assert_eq!(cache.weighted_size(), model.weight, "{context}");
        assert!(
            cache.weighted_size() <= capacity,
            "{context}: over capacity"
        );
        let stats = cache.stats();
        assert_eq!(stats, model.stats, "{context}");
        assert_eq!(
            stats.inserts + stats.rejections - stats.evictions - stats.removals,
            cache.len() as u64,
            "{context}: counters do not add up to len"
        );
    }
}

/// Strategy for the arguments of [`run`].
fn cases() -> impl Strategy<Value = (u64, bool, u64, Vec<Op>)> {
    (
        prop_oneof![1 => Just(0u64), 10 => 1..12u64],
        any::<bool>(),
        any::<u64>(),
        proptest::collection::vec(op(), 1..400),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// LRU picks exactly the model's victims.
    #[test]
    fn lru_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Lru, capacity, weighted, seed, &ops);
    }

    /// FIFO picks exactly the model's victims.
    #[test]
    fn fifo_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Fifo, capacity, weighted, seed, &ops);
    }

    /// SLRU picks exactly the model's victims.
    #[test]
    fn slru_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Slru, capacity, weighted, seed, &ops);
    }

    /// LFU picks exactly the model's victims, across agings (every 160
    /// touches at these capacities).
    #[test]
    fn lfu_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Lfu, capacity, weighted, seed, &ops);
    }

    /// SIEVE picks exactly the model's victims.
    #[test]
    fn sieve_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Sieve, capacity, weighted, seed, &ops);
    }

    /// S3-FIFO picks exactly the model's victims, ghost queue included.
    #[test]
    fn s3fifo_matches_model((capacity, weighted, seed, ops) in cases()) {
        run(Policy::S3Fifo, capacity, weighted, seed, &ops);
    }

    /// Random evicts only stored keys, only as much as needed, and keeps
    /// every other invariant.
    #[test]
    fn random_keeps_invariants((capacity, weighted, seed, ops) in cases()) {
        run(Policy::Random, capacity, weighted, seed, &ops);
    }
}

/// A long deterministic cache-aside run whose hot set moves every 500
/// operations, through many LFU agings (every 160 touches here): without
/// the halving, or with it at the wrong time, old hot keys would stay and
/// the victims would differ from the model's.
#[test]
fn lfu_long_run_with_shifting_hot_set() {
    let mut ops = Vec::new();
    let mut x = 0x2545_f491_4f6c_dd1d_u64;
    for i in 0..6_000u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let hot = (i / 500 * 3 + (x % 4) as u32) % KEYS;
        ops.push(match x % 10 {
            0..=6 => Op::GetOrInsert(hot),
            _ => Op::GetOrInsert((x >> 8) as u32 % KEYS),
        });
    }
    for capacity in [4, 6] {
        run(Policy::Lfu, capacity, false, 1, &ops);
    }
}
