#![cfg(loom)]
//! loom models of the write-behind hand-offs: enqueue to the flusher,
//! flush waiting for exactly its writes, back-pressure wake-ups, close and
//! drop, and a miss read through the store racing a write. Run with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --test loom_write
//! ```
//!
//! Under loom there is no clock, so batches leave only when full, flushed
//! or closed: every model ends with a flush, `close` or a drop, and loom
//! then checks that no interleaving loses a write or a wake-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use larder::{Cache, FlushError, Store, WriteBehind};
use loom::sync::Mutex;
use loom::thread;

/// A store that records what it holds, and can fail every call.
struct TestStore {
    map: Mutex<BTreeMap<u32, u32>>,
    fail: bool,
}

impl TestStore {
    fn new(fail: bool) -> Arc<Self> {
        Arc::new(Self {
            map: Mutex::new(BTreeMap::new()),
            fail,
        })
    }
    fn get(&self, key: u32) -> Option<u32> {
        self.map.lock().unwrap().get(&key).copied()
    }
}

impl Store<u32, u32> for TestStore {
    type Error = ();
    fn write(&self, batch: &[(u32, u32)]) -> Result<(), ()> {
        if self.fail {
            return Err(());
        }
        self.map.lock().unwrap().extend(batch.iter().copied());
        Ok(())
    }
    fn delete(&self, keys: &[u32]) -> Result<(), ()> {
        if self.fail {
            return Err(());
        }
        let mut map = self.map.lock().unwrap();
        for k in keys {
            map.remove(k);
        }
        Ok(())
    }
    fn read(&self, key: &u32) -> Result<Option<u32>, ()> {
        Ok(self.get(*key))
    }
}

type Wb = WriteBehind<u32, u32, Arc<TestStore>>;

fn adapter(store: &Arc<TestStore>, batch_size: usize, capacity: usize) -> Wb {
    WriteBehind::builder(Cache::new(16), store.clone())
        .batch_size(batch_size)
        .queue_capacity(capacity)
        .max_retries(0)
        .backoff(Duration::ZERO)
        .build()
}

/// Preemptions explored in the three-thread model.
const PREEMPTIONS: usize = 4;

/// Explores every interleaving (`bound: None`), or those with at most
/// `bound` preemptions, for models too big to explore in full in well
/// under a minute.
fn model(bound: Option<usize>, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = bound;
    builder.check(f);
}

/// A write followed at once by drop reaches the store: drop wakes the
/// flusher, which sends before it exits.
#[test]
fn drop_sends_the_last_write() {
    model(None, || {
        let store = TestStore::new(false);
        let wb = adapter(&store, 100, 100);
        wb.write(1, 1);
        wb.write(1, 2);
        drop(wb);
        assert_eq!(store.get(1), Some(2));
    });
}

/// A flush returns only when every write acknowledged before it is
/// stored, while another thread keeps writing; what was written after the
/// last flush still reaches the store on drop.
#[test]
fn flush_waits_for_earlier_writes_and_drop_for_the_rest() {
    // Three threads (two writers and the flusher): bounded.
    model(Some(PREEMPTIONS), || {
        let store = TestStore::new(false);
        let wb = Arc::new(adapter(&store, 100, 100));
        let other = {
            let (wb, store) = (wb.clone(), store.clone());
            thread::spawn(move || {
                wb.write(2, 2);
                wb.flush().unwrap();
                assert_eq!(store.get(2), Some(2));
            })
        };
        wb.write(1, 1);
        wb.flush().unwrap();
        assert_eq!(store.get(1), Some(1));
        other.join().unwrap();
        wb.write(3, 3);
        drop(Arc::try_unwrap(wb).expect("the other handle is gone"));
        assert_eq!(store.get(1), Some(1));
        assert_eq!(store.get(2), Some(2));
        assert_eq!(store.get(3), Some(3));
    });
}

/// With room for one key, a second writer blocks until the flusher lands
/// the first; neither the writer nor the flusher misses its wake-up.
#[test]
fn a_blocked_writer_is_woken_when_room_appears() {
    model(None, || {
        let store = TestStore::new(false);
        let wb = Arc::new(adapter(&store, 100, 1));
        let other = {
            let wb = wb.clone();
            thread::spawn(move || wb.write(2, 2))
        };
        wb.write(1, 1);
        other.join().unwrap();
        let wb = Arc::try_unwrap(wb).expect("the other handle is gone");
        assert_eq!(wb.close(), Ok(()));
        assert_eq!(store.get(1), Some(1));
        assert_eq!(store.get(2), Some(2));
    });
}

/// Two writers racing on one key: whichever is acknowledged last is what
/// the store, the adapter and the cache all end up holding.
#[test]
fn racing_writers_of_one_key_agree_everywhere() {
    model(None, || {
        let store = TestStore::new(false);
        let wb = Arc::new(adapter(&store, 1, 100));
        let other = {
            let wb = wb.clone();
            thread::spawn(move || wb.write(1, 20))
        };
        wb.write(1, 10);
        other.join().unwrap();
        let last = wb.get(&1).expect("a pending or cached write");
        wb.flush().unwrap();
        assert_eq!(store.get(1), Some(last));
        assert_eq!(wb.cache().get(&1), Some(last));
    });
}

/// A failing store: flush reports the failure once, and the flusher still
/// exits on drop.
#[test]
fn a_failed_batch_is_reported_to_the_flush_waiting_for_it() {
    model(None, || {
        let store = TestStore::new(true);
        let wb = adapter(&store, 100, 100);
        wb.write(1, 1);
        assert_eq!(wb.flush(), Err(FlushError::Failed { ops: 1 }));
        assert_eq!(wb.stats().failures, 1);
        assert_eq!(
            wb.get(&1),
            None,
            "a failed write leaves neither map nor cache"
        );
        assert_eq!(wb.flush(), Ok(()), "reported once");
        drop(wb);
        assert_eq!(store.get(1), None);
    });
}

/// A miss read through the store (single flight) racing a write of the
/// key that then lands and is evicted: the writer reads its own write
/// (it must not join the reader's older, stale load), the reader gets the
/// old or the new value, and the cache never keeps the old one.
#[test]
fn a_read_through_racing_a_write_never_serves_or_keeps_the_older_value() {
    model(Some(PREEMPTIONS), || {
        let store = TestStore::new(false);
        store.map.lock().unwrap().insert(1, 10); // landed earlier, not cached
        let wb = Arc::new(adapter(&store, 100, 100));
        let reader = {
            let wb = wb.clone();
            thread::spawn(move || wb.get(&1))
        };
        wb.write(1, 20);
        wb.flush().unwrap();
        wb.cache().invalidate_all(); // the cache dropped it
        assert_eq!(wb.get(&1), Some(20), "read-your-writes after landing");
        let got = reader.join().unwrap();
        assert!(got == Some(10) || got == Some(20), "{got:?}");
        assert_ne!(wb.cache().get(&1), Some(10), "the older value was kept");
        drop(Arc::try_unwrap(wb).expect("the reader's handle is gone"));
    });
}
