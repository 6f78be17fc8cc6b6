//! W-TinyLFU's unit tests.

use super::window::SIMS_LOOK_EVERY;
use super::*;
use std::collections::BTreeMap;

/// A stand-in for the shard: tracks weights and runs the eviction loop.
struct Harness {
    policy: WTinyLfu,
    /// idx -> weight of every tracked entry.
    live: BTreeMap<Idx, u32>,
    weight: u64,
    capacity: u64,
    evicted: Vec<Idx>,
    /// New entries the policy was told about.
    inserts: usize,
    /// Entries removed explicitly.
    removals: usize,
    /// Read hits, counted as the shard counts them.
    hits: u64,
}

/// The key hash of entry `idx` in these tests (well spread).
fn hash(idx: Idx) -> u64 {
    (u64::from(idx) + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

impl Harness {
    fn new(capacity: u64) -> Self {
        Self::with_mode(capacity, capacity <= EXACT_MAX)
    }

    /// A harness of `capacity` units holding keys `0..capacity`, before
    /// its first eviction.
    fn full(capacity: u64) -> Self {
        let mut h = Self::new(capacity);
        for i in 0..capacity as Idx {
            h.get_or_insert(i);
        }
        h
    }

    /// `exact`: hits replayed and applied at once (small shards), or
    /// noted in place (big ones), whatever the capacity.
    fn with_mode(capacity: u64, exact: bool) -> Self {
        let policy = WTinyLfu::new(capacity, 42, exact, None);
        Self {
            policy,
            live: BTreeMap::new(),
            weight: 0,
            capacity,
            evicted: Vec::new(),
            inserts: 0,
            removals: 0,
            hits: 0,
        }
    }

    fn evict_to_capacity(&mut self) {
        while self.weight > self.capacity {
            let victim = self.policy.evict(&hash).expect("over capacity but empty");
            let w = self.live.remove(&victim).expect("victim was tracked");
            self.weight -= u64::from(w);
            self.evicted.push(victim);
        }
    }

    /// Accesses `idx`, inserting it (weight 1) on a miss; true on a hit.
    fn get_or_insert(&mut self, idx: Idx) -> bool {
        self.get_or_insert_weighted(idx, 1)
    }

    fn get_or_insert_weighted(&mut self, idx: Idx, weight: u32) -> bool {
        if self.live.contains_key(&idx) {
            self.policy.on_access(idx, hash(idx));
            self.hits += 1;
            true
        } else {
            self.insert(idx, weight);
            false
        }
    }

    fn insert(&mut self, idx: Idx, weight: u32) {
        if u64::from(weight) > self.capacity {
            return; // the shard rejects it before the policy sees it
        }
        if let Some(old) = self.live.insert(idx, weight) {
            self.weight = self.weight - u64::from(old) + u64::from(weight);
            self.policy.on_update(idx, hash(idx), weight, &hash);
        } else {
            self.weight += u64::from(weight);
            self.inserts += 1;
            if self.policy.wants_hits() {
                self.policy.observe_hits(self.hits);
            }
            self.policy.on_insert(idx, hash(idx), weight, &hash);
        }
        self.evict_to_capacity();
    }

    fn remove(&mut self, idx: Idx) {
        if let Some(w) = self.live.remove(&idx) {
            self.weight -= u64::from(w);
            self.removals += 1;
            self.policy.on_remove(idx);
        }
    }

    fn check(&self) {
        self.policy.validate();
        assert!(self.weight <= self.capacity);
        assert_eq!(self.policy.len(), self.live.len());
        assert_eq!(self.policy.weight(), self.weight);
        assert_eq!(
            self.live.len(),
            self.inserts - self.removals - self.evicted.len()
        );
    }
}

fn fills_without_evicting_then_bounds_capacity_in(exact: bool) {
    let mut h = Harness::with_mode(100, exact);
    for i in 0..100 {
        h.get_or_insert(i);
        h.check();
    }
    assert!(h.evicted.is_empty());
    // The window starts at 5%, or at the 1% floor in a small cache whose
    // hits are replayed (see "Starting window" in `window`).
    let window = if exact { 1 } else { 5 };
    assert_eq!(h.policy.window.len(), window);
    assert_eq!(h.policy.probation.len(), 100 - window);
    assert!(
        h.policy.sketch.is_enabled(),
        "allocated at the first insert"
    );
    for i in 100..1000 {
        h.get_or_insert(i);
        h.check();
    }
    assert_eq!(h.live.len(), 100);
}

#[test]
fn fills_without_evicting_then_bounds_capacity() {
    fills_without_evicting_then_bounds_capacity_in(true);
    fills_without_evicting_then_bounds_capacity_in(false);
}

fn popular_keys_survive_a_scan_in(exact: bool) {
    let mut h = Harness::with_mode(100, exact);
    // 20 hot keys, each accessed often.
    for _ in 0..10 {
        for i in 0..20 {
            h.get_or_insert(i);
        }
    }
    // A long scan of one-time keys, with the hot keys still in use.
    for i in 1000..5000 {
        h.get_or_insert(i);
        if i % 50 == 0 {
            for k in 0..20 {
                h.get_or_insert(k);
            }
        }
        h.check();
    }
    let hot_left = (0..20).filter(|i| h.live.contains_key(i)).count();
    assert_eq!(hot_left, 20, "the scan flushed hot keys");
}

#[test]
fn popular_keys_survive_a_scan() {
    popular_keys_survive_a_scan_in(true);
    popular_keys_survive_a_scan_in(false);
}

fn capacity_one_keeps_the_newest_in(exact: bool) {
    let mut h = Harness::with_mode(1, exact);
    for i in 0..10 {
        h.get_or_insert(i);
        h.check();
        assert_eq!(h.live.keys().copied().collect::<Vec<_>>(), vec![i]);
    }
}

#[test]
fn capacity_one_keeps_the_newest() {
    capacity_one_keeps_the_newest_in(true);
    capacity_one_keeps_the_newest_in(false);
}

fn heavy_and_weightless_entries_in(exact: bool) {
    let mut h = Harness::with_mode(100, exact);
    for i in 0..50 {
        h.insert(i, 0);
        h.check();
    }
    // Heavier than the window (1) and than main's protected share.
    h.insert(100, 90);
    h.check();
    for i in 200..260 {
        h.insert(i, 3);
        h.check();
    }
    h.insert(300, 100);
    h.check();
    h.insert(301, 101); // rejected by the "shard"
    h.check();
    // Updates that grow and shrink weights.
    let keys: Vec<Idx> = h.live.keys().copied().collect();
    for (n, k) in keys.into_iter().enumerate() {
        h.insert(k, (n % 7) as u32 * 5);
        h.check();
    }
}

#[test]
fn heavy_and_weightless_entries() {
    heavy_and_weightless_entries_in(true);
    heavy_and_weightless_entries_in(false);
}

#[test]
fn flooding_defence_admits_a_frequent_loser_rarely() {
    let mut p = WTinyLfu::new(1000, 1, false, None);
    let admitted = (0..12_800).filter(|_| p.admit_frequencies(8, 15)).count();
    assert!(
        (50..200).contains(&admitted),
        "admitted {admitted} of 12800"
    );
    // Below the threshold a loser never gets in, a winner (by more than
    // the margin) always does.
    assert!((0..1000).all(|_| !p.admit_frequencies(5, 15)));
    assert!(
        (0..1000).all(|_| !p.admit_frequencies(3, 2)),
        "within the margin"
    );
    assert!((0..1000).all(|_| p.admit_frequencies(4, 2)));
}

#[test]
fn aging_fairness_discounts_an_unaged_candidate() {
    let mut h = Harness::full(100);
    let (c, v) = (1, 0);
    h.policy.sketch.force_reset();
    // The candidate is accessed after the reset, the victim is not.
    h.policy.on_access(c, hash(c)); // a small policy applies it at once
    let margin = ADMIT_MARGIN;
    while h.policy.sketch.frequency(hash(c)) <= h.policy.sketch.frequency(hash(v)) + margin {
        h.policy.sketch.increment(hash(c));
    }
    let (cf, vf) = (
        h.policy.sketch.frequency(hash(c)),
        h.policy.sketch.frequency(hash(v)),
    );
    assert_eq!(cf, vf + margin + 1);
    assert!(h.policy.admit_frequencies(cf, vf), "the plain duel admits");
    assert!(
        !h.policy.admit(c, hash(c), v, hash(v)),
        "the fair duel does not"
    );
    // Once the victim too has been touched since the reset, no discount.
    let meta = h.policy.meta(v);
    let now = h.policy.epoch_bits();
    h.policy.set_meta(v, (meta & !EPOCH) | now);
    assert!(h.policy.admit(c, hash(c), v, hash(v)));
    h.check();
}

#[test]
fn a_stale_victim_loses_one_in_a_lenient_duel() {
    let mut h = Harness::full(100);
    let (c, v) = (1, 0);
    h.policy.sketch.force_reset();
    h.policy.on_access(c, hash(c));
    while h.policy.sketch.frequency(hash(v)) < 3 {
        h.policy.sketch.increment(hash(v));
    }
    while h.policy.sketch.frequency(hash(c)) <= h.policy.sketch.frequency(hash(v)) {
        h.policy.sketch.increment(hash(c));
    }
    assert_eq!(
        h.policy.sketch.frequency(hash(c)),
        h.policy.sketch.frequency(hash(v)) + 1
    );
    let now = h.policy.epoch_bits();
    let meta = h.policy.meta(v) & !EPOCH;
    let back = |resets: u8| (now.wrapping_sub(resets << EPOCH_SHIFT)) & EPOCH;
    let duels = |h: &mut Harness, lenient: bool, resets: u8| {
        h.policy.lenient = lenient;
        h.policy.set_meta(v, meta | back(resets));
        (0..4000)
            .filter(|_| h.policy.admit(c, hash(c), v, hash(v)))
            .count()
    };
    // One more than the victim (3): the discount makes it a tie, which
    // loses, unless the victim's last access is two resets back and the
    // shard duels leniently: then the duel takes one off the victim too.
    let stale = duels(&mut h, true, 2);
    assert_eq!(stale, 4000, "admitted {stale} of 4000");
    assert_eq!(duels(&mut h, true, 3), 4000);
    assert_eq!(duels(&mut h, true, 1), 0, "last seen one reset back");
    assert_eq!(duels(&mut h, false, 2), 0, "a strict shard keeps it");
    // The floor keeps the discount: a candidate that reads 2 (1 after the
    // discount, seen once) never beats a stale victim that reads 1 or less.
    let (c, v) = (3, 2);
    while h.policy.sketch.frequency(hash(v)) < 1 {
        h.policy.sketch.increment(hash(v));
    }
    h.policy.on_access(c, hash(c));
    while h.policy.sketch.frequency(hash(c)) < 2 {
        h.policy.sketch.increment(hash(c));
    }
    assert_eq!(h.policy.sketch.frequency(hash(c)), 2);
    assert!(h.policy.sketch.frequency(hash(v)) <= 1);
    h.policy.lenient = true;
    let meta = h.policy.meta(v) & !EPOCH;
    h.policy.set_meta(v, meta | back(2));
    assert!((0..4000).all(|_| !h.policy.admit(c, hash(c), v, hash(v))));
    h.check();
}

#[test]
fn the_fill_keeps_only_the_counts_that_saturate() {
    // Keys read 20, 13, 12 and 5 times while the shard fills (a first
    // read sets the doorkeeper, the rest count), then the first eviction:
    // quartered they would read 3, 3, 2 and 1; the two under WARM_HOT are
    // cleared.
    let mut h = Harness::new(100);
    for (idx, reads) in [(0, 20), (1, 13), (2, 12), (3, 5)] {
        for _ in 0..reads {
            h.get_or_insert(idx);
        }
    }
    for i in 4..100 {
        h.get_or_insert(i);
    }
    let before: Vec<u8> = (0..4).map(|i| h.policy.sketch.frequency(hash(i))).collect();
    assert_eq!(before, vec![MAX_FREQUENCY, 13, 12, 5]);
    assert!(!h.policy.climber.active, "no eviction yet");
    h.get_or_insert(100);
    assert!(h.policy.climber.active, "the first eviction");
    let after: Vec<u8> = (0..4).map(|i| h.policy.sketch.frequency(hash(i))).collect();
    assert_eq!(after, vec![WARM_HOT, WARM_HOT, 0, 0]);
    h.check();
}

#[test]
fn warm_up_victims_are_judged_by_what_they_read() {
    let mut h = Harness::full(100);
    // The first eviction: the fill halvings, two resets with no time in
    // them.
    h.get_or_insert(100);
    assert!(h.policy.climber.active);
    let live: Vec<Idx> = h.live.keys().copied().collect();
    let (c, v) = (live[live.len() - 1], live[0]);
    h.policy.lenient = true;
    let now = h.policy.epoch_bits();
    let back = |resets: u8| (now.wrapping_sub(resets << EPOCH_SHIFT)) & EPOCH;
    let meta = h.policy.meta(v) & !EPOCH;
    // Last read before the first eviction: two resets back.
    h.policy.set_meta(v, meta | back(2));
    assert!(h.policy.warm_up(h.policy.meta(v) & EPOCH));
    let set = |h: &mut Harness, idx: Idx, freq: u8| {
        while h.policy.sketch.frequency(hash(idx)) < freq {
            h.policy.sketch.increment(hash(idx));
        }
        assert_eq!(h.policy.sketch.frequency(hash(idx)), freq);
    };
    let duel_at = |h: &mut Harness, cf: u8, vf: u8, load: u64| {
        // Four halvings clear every count and leave the epoch bits as they
        // were; the fill epoch moves along, so that the sketch has not
        // reset since the fill as far as the duel can tell.
        for _ in 0..4 {
            h.policy.sketch.halve();
        }
        h.policy.fill_epoch = h.policy.fill_epoch.wrapping_add(4);
        set(h, v, vf);
        set(h, c, cf);
        let entries = h.policy.sketch.entries();
        h.policy.sketch.set_door_sets(load * entries);
        assert_eq!(h.policy.sketch.door_load(), load);
        let m = h.policy.meta(c) & !EPOCH;
        h.policy.set_meta(c, m | h.policy.epoch_bits());
        h.policy.admit(c, hash(c), v, hash(v))
    };
    // Most duels here are with a doorkeeper as full as it gets when keys
    // seen once start to read 3 or more.
    let duel = |h: &mut Harness, cf: u8, vf: u8| duel_at(h, cf, vf, NOISY_DOOR_LOAD);
    // The zero case: a warm-up victim that reads 0 gets no discount, so a
    // candidate seen once before (2) gets in.
    assert!(duel(&mut h, 2, 0), "warm-up victim reading 0");
    // A warm-up victim that reads 3 (saturated while the shard filled) is
    // not stale once the doorkeeper is full enough for keys seen once to
    // read that much: a candidate one above it ties after the discount.
    assert!(!duel(&mut h, 4, 3), "warm-up victim reading 3");
    // Unless the doorkeeper is not yet that full: then a candidate that
    // reads 4 is not noise, and the victim is stale as any.
    assert!(
        duel_at(&mut h, 4, 3, NOISY_DOOR_LOAD - 1),
        "warm-up victim reading 3, doorkeeper below the noisy load"
    );
    // A warm-up victim that reads 1 or 2 is stale as before.
    assert!(duel(&mut h, 3, 2), "warm-up victim reading 2");
    // Strict shards: neither rule.
    h.policy.lenient = false;
    assert!(!duel(&mut h, 2, 0), "strict shard");
    h.policy.lenient = true;
    // Two resets back but not from the warm-up (the sketch has reset once
    // since the fill, so the victim was read after it): stale, no zero
    // case.
    h.policy.fill_epoch = h.policy.fill_epoch.wrapping_sub(1);
    assert!(!h.policy.warm_up(h.policy.meta(v) & EPOCH));
    assert!(!duel(&mut h, 2, 0), "not a warm-up victim, reading 0");
    assert!(duel(&mut h, 4, 3), "not a warm-up victim, reading 3");
    h.check();
}

/// A lenient 100-unit harness after its first eviction, with one entry
/// `q` hit into protected (far below its share) and the probation LRU
/// entry `p` reading one more than `q` and the margin: (harness, p, q).
fn unjudged_protected() -> (Harness, Idx, Idx) {
    let mut h = Harness::full(100);
    h.get_or_insert(100); // the first eviction: the fill halvings
    h.policy.lenient = true;
    // An entry hit in probation goes to protected (at once in a small
    // shard).
    let q = h.policy.probation.iter(&h.policy.nodes).nth(10).unwrap();
    h.get_or_insert(q);
    assert_eq!(h.policy.segment(q), PROTECTED);
    assert!(h.policy.protected.weight() < h.policy.protected_max);
    let p = h.policy.probation.front().unwrap();
    let vq = h.policy.sketch.frequency(hash(q));
    while h.policy.sketch.frequency(hash(p)) <= vq + ADMIT_MARGIN {
        h.policy.sketch.increment(hash(p));
    }
    assert_eq!(h.policy.sketch.frequency(hash(p)), vq + ADMIT_MARGIN + 1);
    (h, p, q)
}

#[test]
fn an_unjudged_protected_entry_stands_in_for_a_hotter_probation_victim() {
    let (mut h, p, q) = unjudged_protected();
    assert!(h.policy.protected_unjudged());
    assert_eq!(
        h.policy.main_victim(&hash),
        Some(q),
        "colder protected entry"
    );
    // Within the margin, the probation entry stays the victim.
    h.policy.sketch.halve();
    h.policy.fill_epoch = h.policy.fill_epoch.wrapping_add(1);
    assert!(h.policy.protected_unjudged());
    while h.policy.sketch.frequency(hash(p)) < h.policy.sketch.frequency(hash(q)) + ADMIT_MARGIN {
        h.policy.sketch.increment(hash(p));
    }
    assert_eq!(
        h.policy.sketch.frequency(hash(p)),
        h.policy.sketch.frequency(hash(q)) + ADMIT_MARGIN
    );
    assert_eq!(h.policy.main_victim(&hash), Some(p), "within the margin");
    h.check();

    // Not in a strict shard, nor once protected is at its share (it then
    // demotes, and its entries are judged in probation), nor while the
    // doorkeeper is full enough for keys seen once to read high from
    // counter noise, nor once the sketch has reset since the fill (counts
    // age again).
    let (mut h, p, q) = unjudged_protected();
    h.policy.lenient = false;
    assert_eq!(h.policy.main_victim(&hash), Some(p), "strict shard");
    h.policy.lenient = true;
    let share = h.policy.protected_max;
    h.policy.protected_max = h.policy.protected.weight();
    assert_eq!(
        h.policy.main_victim(&hash),
        Some(p),
        "protected at its share"
    );
    h.policy.protected_max = share;
    let entries = h.policy.sketch.entries();
    h.policy.sketch.set_door_sets(NOISY_DOOR_LOAD * entries);
    assert_eq!(h.policy.main_victim(&hash), Some(p), "noisy doorkeeper");
    h.policy
        .sketch
        .set_door_sets((NOISY_DOOR_LOAD - 1) * entries);
    assert_eq!(h.policy.main_victim(&hash), Some(q), "quieter doorkeeper");
    h.policy.sketch.halve();
    assert!(!h.policy.protected_unjudged());
    assert_eq!(h.policy.main_victim(&hash), Some(p), "after a reset");
    h.check();

    // Through the duel: a newcomer that beats the stand-in (but not the
    // probation entry) gets in in its place.
    let (mut h, p, q) = unjudged_protected();
    let w = h.policy.window.front().unwrap();
    while h.policy.sketch.frequency(hash(w)) < h.policy.sketch.frequency(hash(p)) {
        h.policy.sketch.increment(hash(w));
    }
    h.get_or_insert(101);
    assert_eq!(h.evicted.last(), Some(&q), "the stand-in leaves");
    assert_eq!(h.policy.segment(w), PROBATION, "the newcomer got in");
    assert!(h.live.contains_key(&p));
    h.check();
}

#[test]
fn a_lenient_duel_has_no_margin_but_a_floor() {
    let mut h = Harness::new(100);
    assert!(!h.policy.lenient, "strict without simulations");
    // Strict: more than the victim by 2; lenient: more than the victim
    // and than 1 (a key seen once never gets in on a lenient duel:
    // scans stay out).
    for (lenient, cases) in [
        (
            false,
            [(4, 2, true), (3, 2, false), (2, 0, true), (1, 0, false)],
        ),
        (
            true,
            [(4, 2, true), (3, 2, true), (2, 0, true), (1, 0, false)],
        ),
    ] {
        h.policy.lenient = lenient;
        for (cf, vf, admitted) in cases {
            assert_eq!(
                h.policy.admit_frequencies(cf, vf),
                admitted,
                "{lenient} {cf} {vf}"
            );
        }
        assert!(!h.policy.admit_frequencies(3, 3), "a tie loses");
    }
    h.check();
}

#[test]
fn a_shard_with_simulations_starts_lenient_and_follows_their_verdict() {
    let sims = MiniSims::for_cache(2048, 3).expect("sims");
    let mut p = WTinyLfu::new(2048, 42, true, Some(sims.clone()));
    assert!(p.lenient, "lenient until the simulations say otherwise");
    // As if an earlier verdict had been strict; then a workload the
    // lenient ghosts win (a Zipf-like popularity over a sliding key
    // space, as in minisim's test).
    p.lenient = false;
    let mut rng = 7u64;
    let mut i = 0u64;
    while sims.mode() != Some(true) && i < 1_000_000 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let u = ((rng >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        let rank = (4096f64.powf(u) - 1.0) as u64;
        sims.record(hash((i / 64 + rank) as Idx));
        i += 1;
    }
    assert_eq!(sims.mode(), Some(true), "after {i} accesses");
    for _ in 0..SIMS_LOOK_EVERY {
        p.follow_sims();
    }
    assert!(p.lenient, "the shard follows the verdict");
}

#[test]
fn a_young_verdict_moves_the_window_only_on_a_large_steady_lead() {
    // Strict ghosts at 1/5/20/50/80%, lenient 1/20%, in millionths: the
    // 80% ghost leads a strict shard at 5% by `lead`.
    let rates = |lead: u32| [300_000, 300_000, 300_000, 300_000, 300_000 + lead, 0, 0];
    let walks = |rates: [u32; 7], streak: u32, young: bool| {
        let sims = MiniSims::for_cache(4096, 3).expect("sims");
        let mut p = WTinyLfu::new(4096, 42, false, Some(sims.clone()));
        p.lenient = false;
        sims.publish(rates, streak, young);
        for _ in 0..SIMS_LOOK_EVERY {
            p.follow_sims();
        }
        p.applied.is_some()
    };
    // After the warm-up: 2 points after 3 periods, less after more.
    assert!(walks(rates(20_000), 3, false));
    assert!(!walks(rates(19_000), 3, false));
    // Young: 4 points, held for 4 periods.
    assert!(!walks(rates(20_000), 3, true));
    assert!(!walks(rates(39_000), 4, true));
    assert!(!walks(rates(60_000), 3, true), "too short a streak");
    assert!(walks(rates(40_000), 4, true));
    assert!(walks(rates(40_000), 9, true));
}

/// Drives `p`'s climber through periods of 4,000 requests whose hit
/// rates are `rates`, while the simulations (if any) see the workload's
/// own hit rate rise by `trend` a period; returns the window share after
/// each period.
fn climb(p: &mut WTinyLfu, rates: &[f64], trend: f64) -> Vec<u64> {
    let sims = p.sims.clone();
    // A full shard's sketch: periods of 4,000 requests.
    p.sketch.ensure_capacity(p.capacity);
    p.climber.active = true;
    p.observe_hits(0);
    let (mut total, mut ghost_hits, mut ghost_seen) = (0u64, 0u64, 0u64);
    let mut windows = Vec::new();
    for (k, rate) in rates.iter().enumerate() {
        let hits = (4000.0 * rate) as u64;
        total += hits;
        p.observe_hits(total);
        // The period's first miss, then what the ghosts see during it.
        p.record_miss();
        if let Some(sims) = &sims {
            ghost_seen += 1000;
            ghost_hits += (7000.0 * (0.2 + trend * k as f64)) as u64;
            sims.set_trend(ghost_hits, ghost_seen);
        }
        for _ in hits + 1..4000 {
            p.record_miss();
        }
        windows.push(p.window_max());
    }
    windows
}

#[test]
fn the_climber_discounts_the_workloads_own_trend() {
    // A hit rate rising by 10 points a period for a reason the window has
    // nothing to do with (a cache warming up on a loop, a phase change):
    // without the simulations the climber reads it as a gain and grows the
    // window at the third period (the first is the baseline, the second
    // is confirmed by the third).
    let rates = [0.2, 0.3, 0.4, 0.5, 0.6];
    let mut alone = WTinyLfu::new(2048, 42, false, None);
    let start = alone.window_max();
    let windows = climb(&mut alone, &rates, 0.1);
    assert!(windows[2] > start, "{windows:?} from {start}");
    // With simulations whose fixed-window ghosts see the same rise, it
    // is the workload's, and nothing moves.
    let sims = MiniSims::for_cache(2048, 3).expect("sims");
    let mut p = WTinyLfu::new(2048, 42, false, Some(sims));
    let windows = climb(&mut p, &rates, 0.1);
    assert!(
        windows.iter().all(|&w| w == start),
        "{windows:?} from {start}"
    );
    // A gain beyond the trend (10 points a period against 5) still moves
    // the window.
    let sims = MiniSims::for_cache(2048, 3).expect("sims");
    let mut p = WTinyLfu::new(2048, 42, false, Some(sims));
    let windows = climb(&mut p, &rates, 0.05);
    assert!(windows[2] > start, "{windows:?} from {start}");
}

#[test]
fn a_big_shards_period_is_at_least_its_capacity() {
    // Hit rates rising by 5 points every 4,000 requests (no simulations)
    // move a 2,048-unit shard's window at its third period of 4,000
    // requests (see the test above). A 20,000-unit shard's period is
    // five of those: the same rise moves its window only at the end of
    // its third, after 60,000 requests.
    let rates: Vec<f64> = (0..15).map(|k| 0.2 + 0.05 * f64::from(k)).collect();
    let mut small = WTinyLfu::new(2048, 42, false, None);
    let mut big = WTinyLfu::new(20_000, 42, false, None);
    let (small_start, big_start) = (small.window_max(), big.window_max());
    assert!(climb(&mut small, &rates, 0.0)[2] > small_start);
    let windows = climb(&mut big, &rates, 0.0);
    assert!(windows[..14].iter().all(|&w| w == big_start), "{windows:?}");
    assert!(windows[14] > big_start, "{windows:?}");
    assert_eq!((small.climb_period(), big.climb_period()), (4000, 20_000));
}

#[test]
fn a_longer_streak_needs_a_smaller_lead() {
    use super::window::needed_lead;
    assert_eq!(needed_lead(minisim::STREAK), 0.02);
    assert!((needed_lead(4 * minisim::STREAK) - 0.01).abs() < 1e-12);
    assert_eq!(needed_lead(0), needed_lead(1));
    assert!((1..100).all(|s| needed_lead(s + 1) < needed_lead(s)));
}

fn window_grows_on_a_recency_workload_in(exact: bool) {
    // Half the accesses are new keys, half reuse a key used between 1
    // and 900 accesses ago: pure recency, which LRU serves and a 1%
    // window cannot (every key has the same low frequency). The climber
    // must grow the window.
    let mut h = Harness::with_mode(1000, exact);
    let start = h.policy.window_max();
    let mut history: Vec<Idx> = Vec::new();
    let mut rng = 7u64;
    let (mut hits, n) = (0u32, 400_000u32);
    for i in 0..n {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let key = if rng & 1 == 0 || history.len() < 1000 {
            i
        } else {
            history[history.len() - 1 - (rng >> 8) as usize % 900]
        };
        history.push(key);
        hits += u32::from(h.get_or_insert(key));
    }
    h.check();
    assert!(
        h.policy.window_max() > 300,
        "window {} (from {start})",
        h.policy.window_max()
    );
    assert!(f64::from(hits) / f64::from(n) > 0.4, "hits {hits}");
}

#[test]
fn window_grows_on_a_recency_workload() {
    window_grows_on_a_recency_workload_in(true);
    window_grows_on_a_recency_workload_in(false);
}

fn window_stays_small_on_a_frequency_workload_in(exact: bool) {
    // A loop over 1.5x the capacity: only frequency-based admission
    // gets hits (LRU gets none).
    let mut h = Harness::with_mode(1000, exact);
    let mut hits = 0u32;
    for round in 0..200u32 {
        for i in 0..1500 {
            hits += u32::from(h.get_or_insert(i + (round / 50) * 10_000));
        }
    }
    h.check();
    assert!(
        h.policy.window_max() < 300,
        "window {}",
        h.policy.window_max()
    );
    assert!(hits > 100_000, "hits {hits} of 300000");
}

#[test]
fn window_stays_small_on_a_frequency_workload() {
    window_stays_small_on_a_frequency_workload_in(true);
    window_stays_small_on_a_frequency_workload_in(false);
}

#[test]
fn capacity_zero_constructs() {
    let mut p = WTinyLfu::new(0, 0, true, None);
    assert_eq!((p.window_max, p.protected_max), (0, 0));
    assert_eq!(p.evict(&hash), None);
    p.validate();
}

fn clear_forgets_entries_in(exact: bool) {
    let mut h = Harness::with_mode(10, exact);
    for i in 0..20 {
        h.get_or_insert(i);
    }
    h.policy.clear();
    h.removals += h.live.len();
    h.live.clear();
    h.weight = 0;
    h.check();
    assert_eq!(h.policy.evict(&hash), None);
}

#[test]
fn clear_forgets_entries() {
    clear_forgets_entries_in(true);
    clear_forgets_entries_in(false);
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Get(Idx),
        Insert(Idx, u32),
        Remove(Idx),
        Retain(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..64u32).prop_map(Op::Get),
            3 => (0..64u32, prop_oneof![Just(0u32), Just(1), 0..40u32])
                .prop_map(|(i, w)| Op::Insert(i, w)),
            1 => (0..64u32).prop_map(Op::Remove),
            1 => (2..5u32).prop_map(Op::Retain),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn invariants_hold(
            cap in 1..40u64,
            exact in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let mut h = Harness::with_mode(cap, exact);
            for op in ops {
                match op {
                    Op::Get(i) => {
                        h.get_or_insert_weighted(i, 1 + i % 3);
                    }
                    Op::Insert(i, w) => h.insert(i, w),
                    Op::Remove(i) => h.remove(i),
                    Op::Retain(m) => {
                        let gone: Vec<Idx> =
                            h.live.keys().copied().filter(|i| i % m == 0).collect();
                        for i in gone {
                            h.remove(i);
                        }
                    }
                }
                // validate, weight <= capacity, and
                // tracked = inserted - removed - evicted.
                h.check();
            }
        }
    }
}
