//! The `Cache` through its public API, every policy, against a reference
//! of what it may hold: random operation sequences with weights from 0 to
//! `u32::MAX`, time to live and time to idle on a `ManualClock` moved (and
//! jumped back) by the fuzzer, `retain`, `invalidate_all` and loads, the
//! hidden `check_invariants` (every count, weight, list link and wheel slot
//! recomputed) after every step.
//!
//! The cache is lossy, so the reference says what it *may* return: a `get`
//! that returns a value must return the last one written for the key, and
//! must return nothing for a key removed since, or whose deadline (from
//! the latest time the fuzzer set before the write or last access) has
//! passed on the clock. Every listener call must name a value once stored
//! for its key.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::{Cache, ManualClock, Policy, RemovalCause};
use libfuzzer_sys::fuzz_target;

#[path = "../common/input.rs"]
mod input;
use input::Input;

const POLICIES: [Policy; 6] = [
    Policy::Lru,
    Policy::Lfu,
    Policy::Fifo,
    Policy::Random,
    Policy::Slru,
    Policy::WTinyLfu,
];

/// A value's weight: its low three bits pick 0, small, large or `u32::MAX`.
fn weight(v: u32) -> u32 {
    match v & 7 {
        0 => 0,
        1 | 2 => 1,
        3 => 3,
        4 => 17,
        5 => 1_000,
        6 => u32::MAX,
        _ => (v >> 8) % 64,
    }
}

/// Clock moves, in nanoseconds: around the wheel's spans and far beyond.
const STEPS: [u64; 12] = [
    0,
    1,
    1_000_000,          // 1 ms
    999_999_999,        // just under 1 s
    1 << 30,            // the level-0 span, 1.07 s
    60_000_000_000,     // 1 min
    1 << 36,            // the level-1 span
    3_600_000_000_000,  // 1 h
    86_400_000_000_000, // 1 day
    1 << 49,            // 6.5 days
    400 * 86_400_000_000_000,
    u64::MAX / 2,
];

/// Durations for TTL / TTI / per-entry TTL.
const LIFETIMES: [Duration; 8] = [
    Duration::ZERO,
    Duration::from_nanos(1),
    Duration::from_millis(500),
    Duration::from_secs(2),
    Duration::from_secs(90),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(30 * 86_400),
    Duration::MAX,
];

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[derive(Clone, Copy, Debug)]
struct Known {
    value: u32,
    /// Latest fuzzer time at the write / last access, plus the lifetime:
    /// after this on the clock the entry must not be returned.
    ttl_deadline: u64,
    /// For time to idle: the last access's bound.
    tti_deadline: u64,
}

impl Known {
    fn deadline(&self) -> u64 {
        self.ttl_deadline.min(self.tti_deadline)
    }
}

struct Model {
    known: HashMap<u16, Known>,
    /// Every value ever written per key (what a listener may report).
    ever: HashMap<u16, HashSet<u32>>,
    /// The latest time the clock was set to (the shards' time floors never
    /// go beyond it, and are never behind the clock).
    max_time: u64,
    ttl: Option<u64>,
    tti: Option<u64>,
}

impl Model {
    fn write(&mut self, k: u16, v: u32, ttl: Option<u64>) {
        let ttl = ttl.or(self.ttl);
        let known = Known {
            value: v,
            ttl_deadline: ttl.map_or(u64::MAX, |t| self.max_time.saturating_add(t)),
            tti_deadline: self
                .tti
                .map_or(u64::MAX, |t| self.max_time.saturating_add(t)),
        };
        self.known.insert(k, known);
        self.ever.entry(k).or_default().insert(v);
    }

    fn touch(&mut self, k: u16) {
        let (tti, max_time) = (self.tti, self.max_time);
        if let (Some(t), Some(known)) = (tti, self.known.get_mut(&k)) {
            known.tti_deadline = max_time.saturating_add(t);
        }
    }

    /// Checks what the cache returned for `k` at clock time `now`.
    fn check(&self, k: u16, got: Option<u32>, now: u64, what: &str) {
        let Some(v) = got else { return };
        let known = self.known.get(&k).unwrap_or_else(|| {
            panic!("{what}({k}) = {v}: the key was never written or was removed")
        });
        assert_eq!(v, known.value, "{what}({k}): not the last value written");
        assert!(
            known.deadline() > now,
            "{what}({k}) = {v} at {now}: expired at {} at the latest",
            known.deadline()
        );
    }
}

type Log = Arc<Mutex<Vec<(u16, u32, RemovalCause)>>>;

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let policy = inp.pick(&POLICIES);
    let weighted = inp.bool();
    let capacity = match inp.u8() % 4 {
        0 => u64::from(inp.u8() % 4),
        1 => u64::from(inp.u8()),
        2 => u64::from(inp.u16() % 2_048),
        _ => u64::from(inp.u32()),
    };
    let shards = 1usize << (inp.u8() % 3);
    let ttl = inp.bool().then(|| inp.pick(&LIFETIMES));
    let tti = inp.bool().then(|| inp.pick(&LIFETIMES));
    let per_entry = inp.bool(); // expire_after from the value
    let clock = ManualClock::new();
    clock.set(Duration::from_nanos(
        inp.u64()
            .checked_shr(inp.pick(&[64u32, 40, 20, 1]))
            .unwrap_or(0),
    ));
    let log: Log = Arc::default();
    let sink = log.clone();
    let mut b = Cache::builder()
        .max_capacity(capacity)
        .policy(policy)
        .shards(shards)
        .seed(u64::from(inp.u8()))
        .clock(clock.clone())
        .eviction_listener(move |k: &u16, v: &u32, cause| {
            sink.lock().unwrap().push((*k, *v, cause))
        });
    if weighted {
        b = b.weigher(|_: &u16, v: &u32| weight(*v));
    }
    if let Some(d) = ttl {
        b = b.time_to_live(d);
    }
    if let Some(d) = tti {
        b = b.time_to_idle(d);
    }
    if per_entry {
        b = b.expire_after(|_, v: &u32| (v & 8 != 0).then(|| LIFETIMES[(*v >> 4) as usize % 8]));
    }
    let cache: Cache<u16, u32> = b.build();
    let now0 = nanos(clock.now());
    let mut m = Model {
        known: HashMap::new(),
        ever: HashMap::new(),
        max_time: now0,
        ttl: ttl.map(nanos),
        tti: tti.map(nanos),
    };
    let entry_ttl = |v: u32| -> Option<u64> {
        (per_entry && v & 8 != 0).then(|| nanos(LIFETIMES[(v >> 4) as usize % 8]))
    };
    let key_space = inp.pick(&[4u16, 64, 1024]);

    let mut steps = 0;
    while !inp.is_empty() && steps < 2_000 {
        steps += 1;
        let now = nanos(clock.now());
        let k = inp.u16() % key_space;
        match inp.u8() % 16 {
            0..=3 => {
                let v = inp.u32();
                cache.insert(k, v);
                m.write(k, v, entry_ttl(v));
            }
            4 => {
                let v = inp.u32();
                let d = inp.pick(&LIFETIMES);
                cache.insert_with_ttl(k, v, d);
                m.write(k, v, Some(nanos(d)));
            }
            5..=7 => {
                let got = cache.get(&k);
                m.check(k, got, now, "get");
                if got.is_some() {
                    m.touch(k);
                }
            }
            8 => {
                let got = cache.peek(&k);
                m.check(k, got, now, "peek");
                let has = cache.contains_key(&k);
                if has {
                    let known = m.known.get(&k).expect("contains a key never written");
                    assert!(
                        known.deadline() > now,
                        "contains_key({k}) of an expired entry"
                    );
                }
            }
            9 => {
                let got = cache.remove(&k);
                m.check(k, got, now, "remove");
                m.known.remove(&k);
                assert_eq!(cache.get(&k), None, "get after remove");
            }
            10 => {
                let v = inp.u32();
                let mut ran = false;
                let got = cache.get_with(k, || {
                    ran = true;
                    v
                });
                if ran {
                    assert_eq!(got, v);
                    m.write(k, v, entry_ttl(v));
                } else {
                    m.check(k, Some(got), now, "get_with");
                    m.touch(k);
                }
            }
            11 => {
                let by = inp.pick(&STEPS);
                clock.advance(Duration::from_nanos(by));
                m.max_time = m.max_time.max(nanos(clock.now()));
            }
            12 => {
                // A jump back (the cache's time never goes backwards).
                let back = inp.pick(&STEPS);
                clock.set(Duration::from_nanos(now.saturating_sub(back)));
            }
            13 => {
                let modulus = u32::from(inp.u8() % 5) + 2;
                let model = &m;
                cache.retain(|k, v| {
                    model.check(*k, Some(*v), now, "retain");
                    v % modulus != 0
                });
                m.known.retain(|_, kn| kn.value % modulus != 0);
            }
            14 => {
                if inp.u8() % 8 == 0 {
                    cache.invalidate_all();
                    m.known.clear();
                    assert!(cache.is_empty(), "entries left after invalidate_all");
                } else {
                    cache.run_pending_tasks();
                }
            }
            _ => {
                for (k, v) in cache.iter() {
                    m.check(k, Some(v), now, "iter");
                }
            }
        }
        cache.check_invariants();
        if !weighted {
            assert!(cache.len() as u64 <= capacity, "over capacity");
        }
        assert!(cache.weighted_size() <= capacity, "over weight capacity");
        for (k, v, cause) in log.lock().unwrap().drain(..) {
            let ever = m.ever.get(&k);
            assert!(
                ever.is_some_and(|e| e.contains(&v)),
                "listener: {k} -> {v} ({cause:?}) was never stored"
            );
        }
    }
    // Accounting: every entry that went in and is not there now left
    // through the listener with a cause the stats count.
    let s = cache.stats();
    assert!(s.hits + s.misses >= s.loads, "loads without lookups: {s:?}");
}

fuzz_target!(|data: &[u8]| run(data));
