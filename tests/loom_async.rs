#![cfg(all(loom, feature = "async"))]
//! loom models of the async side of the single-flight protocol: a task's
//! waker registration racing the flight's completion, a leader cancelled
//! mid-load racing a waiter, and a thread and a task on one flight. Run
//! with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
//!     cargo test --release --features async --test loom_async
//! ```
//!
//! loom fails a model on a deadlock, so a lost wake-up (a waiter whose
//! waker was registered after the publication and never woken, or a
//! cancelled leader whose flight is never given up) fails it too.

use std::collections::hash_map::DefaultHasher;
use std::future::Future;
use std::hash::BuildHasherDefault;
use std::pin::Pin;
use std::task::{Context, Poll};

use larder::{Cache, Policy};
use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

type Fixed = BuildHasherDefault<DefaultHasher>;

fn model(bound: usize, f: impl Fn() + Sync + Send + 'static) {
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(bound);
    builder.max_branches = 50_000;
    builder.check(f);
}

fn cache() -> Cache<u32, u32, Fixed> {
    Cache::builder()
        .max_capacity(16)
        .shards(1)
        .seed(7)
        .policy(Policy::Lru)
        .hasher(Fixed::default())
        .build()
}

/// A future that is pending once (waking itself), then ready with `v`: a
/// loader that is "mid-load" across one poll.
struct YieldOnce(Option<u32>, bool);

impl Future for YieldOnce {
    type Output = u32;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
        if !self.1 {
            self.1 = true;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        Poll::Ready(self.0.take().expect("polled after ready"))
    }
}

/// Two tasks on two threads ask for one missing key; the leader's loader
/// yields once, so the other task may register its waker before or after
/// the completion. Exactly one load; both get its value.
#[test]
fn waker_registration_races_completion() {
    model(3, || {
        let cache = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let other = {
            let (cache, loads) = (cache.clone(), loads.clone());
            thread::spawn(move || {
                loom::future::block_on(cache.get_with_async(1, async move {
                    loads.fetch_add(1, SeqCst);
                    YieldOnce(Some(10), false).await
                }))
            })
        };
        let mine = loom::future::block_on(cache.get_with_async(1, async {
            loads.fetch_add(1, SeqCst);
            YieldOnce(Some(10), false).await
        }));
        assert_eq!(mine, 10);
        assert_eq!(other.join().unwrap(), 10);
        assert_eq!(loads.load(SeqCst), 1);
        assert_eq!(cache.get(&1), Some(10));
    });
}

/// A leader is polled once (its loader is mid-load) and then dropped,
/// racing a task that asks for the same key: the waiter never hangs and
/// gets the value of a load of its own.
#[test]
fn a_cancelled_leader_races_a_waiter() {
    model(3, || {
        let cache = cache();
        let waiter = {
            let cache = cache.clone();
            thread::spawn(move || loom::future::block_on(cache.get_with_async(1, async { 20 })))
        };
        {
            let leader = cache.get_with_async(1, YieldOnce(Some(10), false));
            let mut leader = Box::pin(leader);
            let waker = std::task::Waker::noop();
            let mut cx = Context::from_waker(waker);
            // One poll: leads (or joins the waiter's flight), then dropped.
            let _ = leader.as_mut().poll(&mut cx);
        }
        assert_eq!(waiter.join().unwrap(), 20);
        assert_eq!(cache.get(&1), Some(20));
    });
}

/// A thread (parked on the condition variable) and a task (a registered
/// waker) wait on one flight led by a third caller.
#[test]
fn a_thread_and_a_task_share_a_flight() {
    model(2, || {
        let cache = cache();
        let loads = Arc::new(AtomicUsize::new(0));
        let thread_waiter = {
            let (cache, loads) = (cache.clone(), loads.clone());
            thread::spawn(move || {
                cache.get_with(1, || {
                    loads.fetch_add(1, SeqCst);
                    10
                })
            })
        };
        let task = loom::future::block_on(cache.get_with_async(1, async {
            loads.fetch_add(1, SeqCst);
            YieldOnce(Some(10), false).await
        }));
        assert_eq!(task, 10);
        assert_eq!(thread_waiter.join().unwrap(), 10);
        assert_eq!(loads.load(SeqCst), 1);
    });
}
