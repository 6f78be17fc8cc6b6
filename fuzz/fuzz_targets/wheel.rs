//! The timer wheel alone (through `larder::__fuzz::Wheel`) against a
//! `BTreeMap` of deadlines: every entry fires exactly once, never early,
//! and, once an advance completes, at most one level-0 span (2^30 ns)
//! late; entries already due when scheduled go at the next completed
//! advance; `fire_current_tick` leaves nothing due. The wheel's own
//! `validate` (every list, link and count) runs after every step.
#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use larder::__fuzz::{Wheel, END_OF_TIME, LEVEL0_SHIFT, NEVER};
use libfuzzer_sys::fuzz_target;

#[path = "../common/input.rs"]
mod input;
use input::Input;

/// Indices the fuzzer uses: a few, so that they collide.
const SLOTS: u32 = 48;

#[derive(Default)]
struct Model {
    /// Scheduled entries and the deadline they fire at (extensions in).
    deadline: BTreeMap<u32, u64>,
    /// Entries that were due when (re)scheduled: the next completed
    /// advance must fire them.
    due: BTreeSet<u32>,
}

impl Model {
    fn set(&mut self, idx: u32, d: u64, time: u64) {
        self.due.remove(&idx);
        if d == NEVER {
            self.deadline.remove(&idx);
        } else {
            self.deadline.insert(idx, d);
            if d <= time {
                self.due.insert(idx);
            }
        }
    }
}

/// A deadline relative to the wheel's time: past, near, far, or never.
fn deadline(inp: &mut Input<'_>, time: u64) -> u64 {
    let raw = inp.u64();
    let by = raw >> inp.pick(&[0u32, 8, 20, 26, 30, 34, 40, 46, 54, 60]);
    match inp.u8() % 8 {
        0 => time.saturating_sub(by),
        1 => NEVER,
        2 => time,
        3 => END_OF_TIME,
        _ => time.saturating_add(by).min(END_OF_TIME),
    }
}

fn budget(inp: &mut Input<'_>) -> usize {
    inp.pick(&[usize::MAX, usize::MAX, 1, 2, 5, 64])
}

fn check_fired(w: &mut Wheel, m: &mut Model, fired: Vec<u32>) {
    let time = w.time();
    for i in fired {
        let d = m
            .deadline
            .remove(&i)
            .unwrap_or_else(|| panic!("{i} fired but was not scheduled"));
        assert!(d <= time, "{i} fired early: deadline {d}, time {time}");
        assert!(!w.is_scheduled(i), "{i} fired but is still in a bucket");
        m.due.remove(&i);
        w.deschedule(i); // as the shard's removal does
    }
}

fn advance(w: &mut Wheel, m: &mut Model, now: u64, budget: usize) {
    let (fired, pending) = w.advance(now, budget);
    assert_eq!(pending, w.is_pending());
    check_fired(w, m, fired);
    if !pending {
        let time = w.time();
        assert!(
            m.due.is_empty(),
            "due entries left after a completed advance: {:?}",
            m.due
        );
        for (&i, &d) in &m.deadline {
            assert!(
                d >> LEVEL0_SHIFT >= time >> LEVEL0_SHIFT,
                "{i} (deadline {d}) still waiting at {time}: more than a level-0 span late"
            );
        }
    }
}

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let start = match inp.u8() % 4 {
        0 => 0,
        1 => u64::from(inp.u32()),
        2 => inp.u64() >> 2,
        _ => END_OF_TIME - (inp.u64() >> 8),
    };
    let mut w = Wheel::new(start);
    let mut m = Model::default();
    let trace = std::env::var_os("LARDER_FUZZ_TRACE").is_some();
    if trace {
        eprintln!("start {start}");
    }
    let mut steps = 0;
    while !inp.is_empty() && steps < 3_000 {
        steps += 1;
        let time = w.time();
        let i = u32::from(inp.u8()) % SLOTS;
        let op = inp.u8() % 10;
        if trace {
            eprintln!(
                "time {time} idx {i} op {op} model {:?} due {:?}",
                m.deadline, m.due
            );
        }
        match op {
            0..=2 => {
                let d = deadline(&mut inp, time);
                w.reschedule(i, d);
                m.set(i, d, time);
            }
            3 => {
                let d = deadline(&mut inp, time);
                // The wheel's own deadline (an extension is not in it).
                let old = w.is_scheduled(i).then(|| w.deadline(i));
                w.postpone(i, d);
                match old {
                    // The node stays in the bucket `old` called for: the
                    // entry keeps its place, so a deadline already passed
                    // fires with that bucket (within the level-0 lateness),
                    // not at the next advance as a fresh schedule would.
                    Some(old) if d >= old && d != NEVER => {
                        m.deadline.insert(i, d);
                        if d > time {
                            m.due.remove(&i);
                        }
                    }
                    _ => m.set(i, d, time),
                }
            }
            4 => {
                // A time-to-idle read: later, without telling the wheel.
                if let Some(&d) = m.deadline.get(&i) {
                    let by = inp.u64() >> inp.pick(&[10u32, 30, 40, 60]);
                    let later = d.saturating_add(by.max(1)).min(END_OF_TIME);
                    w.extend(i, later);
                    if later > d {
                        m.deadline.insert(i, later);
                        if later > time {
                            m.due.remove(&i);
                        }
                    }
                }
            }
            5 => {
                w.deschedule(i);
                m.set(i, NEVER, time);
            }
            6 | 7 => {
                let by = inp.u64() >> inp.pick(&[0u32, 20, 28, 30, 31, 36, 42, 50, 60]);
                let now = if inp.u8() % 8 == 0 {
                    time.saturating_sub(by) // earlier: read as the wheel's time
                } else {
                    time.saturating_add(by)
                };
                let b = budget(&mut inp);
                advance(&mut w, &mut m, now, b);
            }
            8 => {
                let was_pending = w.is_pending();
                let b = budget(&mut inp);
                let (fired, pending) = w.fire_current_tick(b);
                assert_eq!(pending, w.is_pending());
                if was_pending {
                    assert!(fired.is_empty(), "fire_current_tick worked while pending");
                }
                check_fired(&mut w, &mut m, fired);
                if !was_pending && !pending {
                    let time = w.time();
                    for (&i, &d) in &m.deadline {
                        assert!(
                            d > time,
                            "{i} (deadline {d}) still waiting at {time} after fire_current_tick"
                        );
                    }
                }
            }
            _ => {
                if inp.u8() % 16 == 0 {
                    w.clear();
                    m = Model::default();
                }
            }
        }
        w.validate();
        assert_eq!(w.len(), m.deadline.len(), "scheduled count");
        for i in 0..SLOTS {
            match m.deadline.get(&i) {
                Some(&d) => {
                    assert!(w.is_scheduled(i), "{i} dropped from the wheel");
                    assert_eq!(w.effective_deadline(i), d, "{i}'s deadline");
                }
                None => assert!(!w.is_scheduled(i), "{i} scheduled but not in the model"),
            }
        }
    }
    // Drain: everything finite fires exactly once. At the end of time the
    // wheel never leaves its last level-0 tick, so what is due in that
    // tick needs `fire_current_tick` (the documented one-span lateness).
    advance(&mut w, &mut m, u64::MAX, usize::MAX);
    let (fired, pending) = w.fire_current_tick(usize::MAX);
    assert!(!pending);
    check_fired(&mut w, &mut m, fired);
    assert!(
        m.deadline.is_empty(),
        "left after the end of time: {:?}",
        m.deadline
    );
    assert!(w.is_empty());
}

fuzz_target!(|data: &[u8]| run(data));
