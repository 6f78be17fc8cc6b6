//! A value published once and awaited by threads or tasks alike.
//!
//! [`Rendezvous`] is what a load in flight hands its waiters: one side
//! [`publish`](Rendezvous::publish)es the outcome, any number of others
//! receive a clone of it, each either by parking its thread
//! ([`wait`](Rendezvous::wait)) or by polling from a future
//! ([`poll_wait`](Rendezvous::poll_wait), which registers the task's waker).
//! Both kinds can wait on one rendezvous at the same time.
//!
//! One mutex guards the value and the registered wakers, so a waiter that
//! finds no value and registers its waker cannot miss the publication: the
//! publisher sets the value and takes the wakers under the same lock, then
//! wakes them after releasing it. A future that is dropped before the value
//! arrives takes its waker back ([`forget`](Rendezvous::forget)), so a
//! cancelled waiter leaves nothing behind.

use std::task::{Context, Poll, Waker};

use super::{Condvar, Mutex};

/// A one-shot broadcast of a `T` to threads and tasks.
pub(crate) struct Rendezvous<T> {
    state: Mutex<State<T>>,
    /// Parked threads wait here.
    done: Condvar,
}

struct State<T> {
    value: Option<T>,
    /// Registered task wakers; a slot is `None` once its waiter left.
    wakers: Vec<Option<Waker>>,
}

/// The place a polling waiter's waker occupies (see
/// [`Rendezvous::poll_wait`]).
#[derive(Debug, Default)]
pub(crate) struct WakerSlot(Option<usize>);

impl<T> Rendezvous<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                value: None,
                wakers: Vec::new(),
            }),
            done: Condvar::new(),
        }
    }

    /// Publishes `value` and wakes every waiter. A second publication is
    /// ignored (the first value stands).
    pub(crate) fn publish(&self, value: T) {
        let wakers = {
            let mut state = self.state.lock();
            if state.value.is_some() {
                return;
            }
            state.value = Some(value);
            std::mem::take(&mut state.wakers)
        };
        self.done.notify_all();
        for waker in wakers.into_iter().flatten() {
            waker.wake();
        }
    }

    /// True once a value has been published.
    pub(crate) fn is_published(&self) -> bool {
        self.state.lock().value.is_some()
    }

    /// Parks this thread until a value is published, then returns a clone.
    pub(crate) fn wait(&self) -> T
    where
        T: Clone,
    {
        let mut state = self.state.lock();
        loop {
            if let Some(value) = state.value.as_ref() {
                return value.clone();
            }
            self.done.wait(&mut state);
        }
    }

    /// Like [`wait`](Self::wait), giving up at `deadline` (`None`: never):
    /// `None` if nothing was published by then.
    pub(crate) fn wait_until(&self, deadline: Option<std::time::Instant>) -> Option<T>
    where
        T: Clone,
    {
        let Some(deadline) = deadline else {
            return Some(self.wait());
        };
        let mut state = self.state.lock();
        loop {
            if let Some(value) = state.value.as_ref() {
                return Some(value.clone());
            }
            match deadline.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => {
                    self.done.wait_for(&mut state, left);
                }
                _ => return None,
            }
        }
    }

    /// A clone of the value if it has been published; otherwise registers
    /// (or refreshes) the task's waker in `slot` and returns `Pending`.
    pub(crate) fn poll_wait(&self, cx: &mut Context<'_>, slot: &mut WakerSlot) -> Poll<T>
    where
        T: Clone,
    {
        let mut state = self.state.lock();
        if let Some(value) = state.value.as_ref() {
            return Poll::Ready(value.clone());
        }
        match slot.0 {
            Some(i) => match &mut state.wakers[i] {
                Some(w) if w.will_wake(cx.waker()) => {}
                w => *w = Some(cx.waker().clone()),
            },
            None => {
                slot.0 = Some(state.wakers.len());
                state.wakers.push(Some(cx.waker().clone()));
            }
        }
        Poll::Pending
    }

    /// A polling waiter leaves before the value arrived: drops its waker.
    pub(crate) fn forget(&self, slot: &mut WakerSlot) {
        if let Some(i) = slot.0.take() {
            let mut state = self.state.lock();
            if let Some(w) = state.wakers.get_mut(i) {
                *w = None;
            }
        }
    }

    /// Number of registered wakers still waiting (for tests).
    #[cfg(test)]
    pub(crate) fn waiting_tasks(&self) -> usize {
        self.state.lock().wakers.iter().flatten().count()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn threads_and_tasks_receive_the_value() {
        let r: Arc<Rendezvous<u32>> = Arc::new(Rendezvous::new());
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slot = WakerSlot::default();
        assert!(r.poll_wait(&mut cx, &mut slot).is_pending());
        // Polling again with the same waker keeps one registration.
        assert!(r.poll_wait(&mut cx, &mut slot).is_pending());
        assert_eq!(r.waiting_tasks(), 1);
        let r2 = r.clone();
        let thread = std::thread::spawn(move || r2.wait());
        r.publish(7);
        r.publish(8); // ignored
        assert_eq!(thread.join().unwrap(), 7);
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the task was woken once");
        assert_eq!(r.poll_wait(&mut cx, &mut slot), Poll::Ready(7));
        assert!(r.is_published());
    }

    #[test]
    fn a_timed_wait_gives_up_or_receives() {
        use std::time::{Duration, Instant};
        let r: Arc<Rendezvous<u32>> = Arc::new(Rendezvous::new());
        let start = Instant::now();
        assert_eq!(r.wait_until(Some(start + Duration::from_millis(20))), None);
        assert!(start.elapsed() >= Duration::from_millis(20));
        let r2 = r.clone();
        let t = std::thread::spawn(move || {
            r2.wait_until(Some(Instant::now() + Duration::from_secs(30)))
        });
        r.publish(3);
        assert_eq!(t.join().unwrap(), Some(3));
        assert_eq!(
            r.wait_until(Some(start)),
            Some(3),
            "published beats a past deadline"
        );
    }

    #[test]
    fn a_waiter_that_leaves_is_not_woken() {
        let r: Rendezvous<u32> = Rendezvous::new();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let (mut a, mut b) = (WakerSlot::default(), WakerSlot::default());
        assert!(r.poll_wait(&mut cx, &mut a).is_pending());
        assert!(r.poll_wait(&mut cx, &mut b).is_pending());
        r.forget(&mut a);
        assert_eq!(r.waiting_tasks(), 1);
        r.publish(1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
