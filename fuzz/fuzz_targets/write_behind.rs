//! The write-behind queue against a reference map, with a store that fails
//! on command: random writes, `try_write`s, deletes, gets, flushes and
//! cache invalidations over a tiny cache, then a close.
//!
//! Checked: `get` returns the last acknowledged operation of every key
//! whose operations have not failed (pending, cached, or landed and read
//! back from the store through `Store::read`); after a flush, the store
//! holds that operation; `flush` reports exactly the operations the failure
//! callback received since the previous flush; the counters add up (every
//! acknowledged operation coalesced, persisted or failed; nothing pending
//! after a close); no key twice in one batch, no store call while another
//! runs. (libFuzzer aborts on any panic, even a caught one, so the store
//! fails with errors, not panics: the soak test covers panicking stores.)
#![no_main]

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use larder::{Cache, FlushError, Op, Store, WriteBehind};
use libfuzzer_sys::fuzz_target;

#[path = "../common/input.rs"]
mod input;
use input::Input;

#[derive(Default)]
struct FailingStore {
    map: Mutex<HashMap<u8, u32>>,
    /// Fail this many calls (write or delete), then succeed.
    fail_next: AtomicU32,
    fail_reads: AtomicBool,
    busy: AtomicBool,
}

#[derive(Debug)]
struct Down;

impl FailingStore {
    fn call(
        &self,
        keys: impl Iterator<Item = u8>,
        apply: impl FnOnce(&mut HashMap<u8, u32>),
    ) -> Result<(), Down> {
        assert!(
            !self.busy.swap(true, Ordering::SeqCst),
            "two store calls at once"
        );
        let mut seen = HashSet::new();
        for k in keys {
            assert!(seen.insert(k), "key {k} twice in one batch");
        }
        assert!(!seen.is_empty(), "an empty batch");
        let failed = self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if !failed {
            apply(&mut self.map.lock().unwrap());
        }
        self.busy.store(false, Ordering::SeqCst);
        if failed {
            Err(Down)
        } else {
            Ok(())
        }
    }
}

impl Store<u8, u32> for FailingStore {
    type Error = Down;
    fn write(&self, batch: &[(u8, u32)]) -> Result<(), Down> {
        self.call(batch.iter().map(|(k, _)| *k), |m| {
            m.extend(batch.iter().copied())
        })
    }
    fn delete(&self, keys: &[u8]) -> Result<(), Down> {
        self.call(keys.iter().copied(), |m| {
            for k in keys {
                m.remove(k);
            }
        })
    }
    fn read(&self, key: &u8) -> Result<Option<u32>, Down> {
        if self.fail_reads.load(Ordering::SeqCst) {
            return Err(Down);
        }
        Ok(self.map.lock().unwrap().get(key).copied())
    }
}

type Failed = Arc<Mutex<Vec<Op<u8, u32>>>>;

fn run(data: &[u8]) {
    let mut inp = Input::new(data);
    let store = Arc::new(FailingStore::default());
    let cache: Cache<u8, u32> = Cache::new(u64::from(inp.u8() % 6));
    let failed: Failed = Arc::default();
    let sink = failed.clone();
    let wb = WriteBehind::builder(cache.clone(), store.clone())
        .batch_size(usize::from(inp.u8() % 6) + 1)
        .queue_capacity(usize::from(inp.u8() % 12) + 1)
        .max_delay(inp.pick(&[
            Duration::ZERO,
            Duration::from_micros(50),
            Duration::from_secs(3600),
        ]))
        .max_retries(u32::from(inp.u8() % 3))
        .backoff(Duration::ZERO)
        .on_failure(move |ops, _| sink.lock().unwrap().extend(ops.iter().cloned()))
        .build();

    // The last acknowledged operation per key (None: a delete).
    let mut last: HashMap<u8, Option<u32>> = HashMap::new();
    // Keys some operation of which failed: what the store holds for them
    // is no longer known.
    let mut lost: HashSet<u8> = HashSet::new();
    let mut reported = 0usize; // failure-callback ops seen by flushes
    let mut acked = 0u64;
    let mut steps = 0;
    while !inp.is_empty() && steps < 400 {
        steps += 1;
        let k = inp.u8() % 16;
        match inp.u8() % 12 {
            0..=3 => {
                let v = inp.u32();
                wb.write(k, v);
                last.insert(k, Some(v));
                acked += 1;
                check_get(&wb, &store, &failed, &mut lost, &last, k);
            }
            4 => {
                let v = inp.u32();
                if wb.try_write(k, v).is_ok() {
                    last.insert(k, Some(v));
                    acked += 1;
                }
            }
            5 | 6 => {
                wb.delete(&k);
                last.insert(k, None);
                acked += 1;
                check_get(&wb, &store, &failed, &mut lost, &last, k);
            }
            7 | 8 => check_get(&wb, &store, &failed, &mut lost, &last, k),
            9 => {
                let result = wb.flush();
                let all = failed.lock().unwrap().len();
                let new = (all - reported) as u64;
                reported = all;
                match result {
                    Ok(()) => assert_eq!(new, 0, "flush Ok but {new} ops failed"),
                    Err(FlushError::Failed { ops }) => {
                        assert_eq!(ops, new, "flush's failure count")
                    }
                    Err(e) => panic!("flush: {e}"),
                }
                absorb(&mut lost, &failed);
                let map = store.map.lock().unwrap().clone();
                for (key, op) in &last {
                    if !lost.contains(key) {
                        assert_eq!(map.get(key).copied(), *op, "store after flush, key {key}");
                    }
                }
                let st = wb.stats();
                assert_eq!(st.pending, 0, "pending after a flush");
                assert_eq!(st.writes + st.deletes, acked, "acknowledged count");
                assert_eq!(
                    st.coalesced + st.persisted + st.failures,
                    acked,
                    "every acknowledged op coalesced, persisted or failed: {st:?}"
                );
                assert_eq!(st.failures as usize, all, "failure count");
            }
            10 => {
                store
                    .fail_next
                    .store(u32::from(inp.u8() % 8), Ordering::SeqCst);
                store.fail_reads.store(inp.u8() % 8 == 0, Ordering::SeqCst);
            }
            _ => cache.invalidate_all(),
        }
    }
    store.fail_next.store(0, Ordering::SeqCst);
    let result = wb.close();
    let all = failed.lock().unwrap().len();
    match result {
        Ok(()) => assert_eq!(all, reported, "close Ok but ops failed"),
        Err(FlushError::Failed { ops }) => assert_eq!(ops as usize, all - reported),
        Err(e) => panic!("close: {e}"),
    }
    let map = store.map.lock().unwrap().clone();
    absorb(&mut lost, &failed);
    for (key, op) in &last {
        if !lost.contains(key) {
            assert_eq!(map.get(key).copied(), *op, "store after close, key {key}");
        }
    }
    assert_eq!(Arc::strong_count(&store), 1, "the flusher kept the store");
}

fn absorb(lost: &mut HashSet<u8>, failed: &Failed) {
    for op in failed.lock().unwrap().iter() {
        lost.insert(*op.key());
    }
}

/// `get(k)` must be the last acknowledged operation, unless one of the
/// key's operations failed (the failure callback runs before a failed
/// operation stops being pending, so looking after the get is enough) or
/// store reads are failing.
fn check_get(
    wb: &WriteBehind<u8, u32, Arc<FailingStore>>,
    store: &FailingStore,
    failed: &Failed,
    lost: &mut HashSet<u8>,
    last: &HashMap<u8, Option<u32>>,
    k: u8,
) {
    let got = wb.get(&k);
    absorb(lost, failed);
    if !lost.contains(&k) && !store.fail_reads.load(Ordering::SeqCst) {
        assert_eq!(got, last.get(&k).copied().flatten(), "get({k})");
    }
}

fuzz_target!(|data: &[u8]| run(data));
