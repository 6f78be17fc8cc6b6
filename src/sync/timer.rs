//! Deadlines for futures without a runtime (feature `async`): one thread,
//! started on first use, that wakes tasks whose deadline has passed.
//!
//! The async verbs must give up on someone else's load after
//! `CacheBuilder::load_timeout` on any executor, and larder depends on none,
//! so it cannot borrow tokio's timer. [`within`] races a future against a
//! [`Sleep`]; a sleep registers its waker here under one mutex, keyed by an
//! id, with its deadline in a min-heap. The thread (`larder-timer`) sleeps
//! on a condvar until the earliest deadline, then wakes every task that is
//! due. A dropped sleep takes its waker back; its heap entry is skipped when
//! it comes up (it is at most one timeout old by then). The thread lives as
//! long as the process and costs nothing while no deadline is pending.
//!
//! Under loom there is no timer (a process-wide thread cannot be modelled):
//! [`within`] then never times out.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

/// Resolves to `Some(output)` if `fut` finishes first, `None` once
/// `deadline` has passed (`fut` is dropped then).
pub(crate) async fn within<F: Future>(deadline: Instant, fut: F) -> Option<F::Output> {
    Within {
        inner: std::pin::pin!(fut),
        sleep: Sleep::until(deadline),
    }
    .await
}

struct Within<'a, F> {
    inner: Pin<&'a mut F>,
    sleep: Sleep,
}

impl<F: Future> Future for Within<'_, F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(v) = self.inner.as_mut().poll(cx) {
            return Poll::Ready(Some(v));
        }
        match Pin::new(&mut self.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

pub(crate) use imp::Sleep;

#[cfg(not(loom))]
mod imp {
    use std::cmp::Reverse;
    use std::collections::{BinaryHeap, HashMap};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Once, OnceLock};
    use std::task::{Context, Poll, Waker};
    use std::time::Instant;

    use crate::sync::{Condvar, Mutex};

    /// A future that is ready once its deadline has passed.
    pub(crate) struct Sleep {
        deadline: Instant,
        /// Its registration with the timer, once it has waited.
        id: Option<u64>,
    }

    impl Sleep {
        pub(crate) fn until(deadline: Instant) -> Self {
            Self { deadline, id: None }
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if Instant::now() >= self.deadline {
                return Poll::Ready(());
            }
            let timer = timer();
            let mut state = timer.state.lock();
            let id = match self.id {
                Some(id) => id,
                None => {
                    let id = state.next_id;
                    state.next_id += 1;
                    let earliest = state.heap.peek().map_or(true, |e| self.deadline < e.0 .0);
                    state.heap.push(Reverse((self.deadline, id)));
                    if earliest {
                        timer.changed.notify_one();
                    }
                    self.id = Some(id);
                    id
                }
            };
            match state.wakers.get_mut(&id) {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => {
                    state.wakers.insert(id, cx.waker().clone());
                }
            }
            Poll::Pending
        }
    }

    impl Drop for Sleep {
        fn drop(&mut self) {
            if let Some(id) = self.id {
                timer().state.lock().wakers.remove(&id);
            }
        }
    }

    struct Timer {
        state: Mutex<State>,
        changed: Condvar,
    }

    struct State {
        next_id: u64,
        heap: BinaryHeap<Reverse<(Instant, u64)>>,
        wakers: HashMap<u64, Waker>,
    }

    fn timer() -> &'static Timer {
        static TIMER: OnceLock<Timer> = OnceLock::new();
        static START: Once = Once::new();
        let timer = TIMER.get_or_init(|| Timer {
            state: Mutex::new(State {
                next_id: 0,
                heap: BinaryHeap::new(),
                wakers: HashMap::new(),
            }),
            changed: Condvar::new(),
        });
        START.call_once(|| {
            // If the thread cannot start, sleeps still end when their task
            // is polled for another reason; nothing hangs on it.
            let _ = std::thread::Builder::new()
                .name("larder-timer".into())
                .spawn(move || timer.run());
        });
        timer
    }

    impl Timer {
        fn run(&self) {
            let mut state = self.state.lock();
            loop {
                let now = Instant::now();
                let mut due = Vec::new();
                while let Some(&Reverse((deadline, id))) = state.heap.peek() {
                    if deadline > now {
                        break;
                    }
                    state.heap.pop();
                    due.extend(state.wakers.remove(&id));
                }
                if !due.is_empty() {
                    drop(state);
                    due.into_iter().for_each(Waker::wake);
                    state = self.state.lock();
                    continue;
                }
                match state.heap.peek() {
                    Some(&Reverse((deadline, _))) => {
                        let left = deadline.saturating_duration_since(now);
                        self.changed.wait_for(&mut state, left);
                    }
                    None => self.changed.wait(&mut state),
                }
            }
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Instant;

    /// Under loom a sleep never ends (see the module docs).
    pub(crate) struct Sleep;

    impl Sleep {
        pub(crate) fn until(_deadline: Instant) -> Self {
            Sleep
        }
    }

    impl Future for Sleep {
        type Output = ();

        fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<()> {
            Poll::Pending
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::task::{Wake, Waker};
    use std::time::Duration;

    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }

    fn block_on<F: Future>(fut: F) -> F::Output {
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut fut = std::pin::pin!(fut);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::park();
        }
    }

    #[test]
    fn a_future_that_never_ends_times_out_after_its_deadline() {
        let start = Instant::now();
        let got = block_on(within(
            start + Duration::from_millis(30),
            std::future::pending::<u32>(),
        ));
        assert_eq!(got, None);
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn a_ready_future_wins_and_many_sleeps_end_in_any_order() {
        let far = Instant::now() + Duration::from_secs(3600);
        assert_eq!(block_on(within(far, async { 7 })), Some(7));
        let threads: Vec<_> = (0..8u64)
            .map(|i| {
                std::thread::spawn(move || {
                    let d = Instant::now() + Duration::from_millis(40 - 5 * i);
                    block_on(within(d, std::future::pending::<()>()))
                })
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), None);
        }
    }
}
