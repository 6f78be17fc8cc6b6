//! A fair counting semaphore: at most `n` holders at once, the others
//! served in arrival order, each waiting with an optional deadline.
//!
//! Used to bound the loader calls running at once across a cache
//! (`CacheBuilder::max_concurrent_loads`). One mutex guards the count and
//! the queue of waiting tickets; a waiter is admitted only when it is at the
//! front of the queue and a slot is free, so a late arrival never overtakes
//! an earlier one. A waiter whose deadline passes leaves the queue and wakes
//! the others, so the next in line is not stuck behind it.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Condvar, Mutex};

/// The semaphore (see the module docs).
pub(crate) struct Slots {
    limit: usize,
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    in_use: usize,
    /// Highest `in_use` ever reached (for tests and the docs' claim).
    high_water: usize,
    next_ticket: u64,
    /// Tickets in line, oldest first, each with its task's waker (`None`
    /// for a thread, which waits on the condvar).
    queue: VecDeque<(u64, Option<std::task::Waker>)>,
}

impl State {
    fn is_front(&self, ticket: u64) -> bool {
        self.queue.front().is_some_and(|&(t, _)| t == ticket)
    }

    fn leave(&mut self, ticket: u64) {
        self.queue.retain(|&(t, _)| t != ticket);
    }
}

impl Slots {
    /// At most `limit` holders (0 is treated as 1: a limit of no loads at
    /// all would make every load wait forever).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(1),
            state: Mutex::new(State {
                in_use: 0,
                high_water: 0,
                next_ticket: 0,
                queue: VecDeque::new(),
            }),
            changed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting in line for it until `deadline` (forever with
    /// `None`). `None` if the deadline passed first.
    pub(crate) fn acquire(&self, deadline: Option<Instant>) -> Option<SlotGuard<'_>> {
        let mut state = self.state.lock();
        if state.queue.is_empty() && state.in_use < self.limit {
            return Some(self.admit(&mut state));
        }
        let ticket = state.next_ticket;
        state.next_ticket += 1;
        state.queue.push_back((ticket, None));
        loop {
            if state.is_front(ticket) && state.in_use < self.limit {
                state.queue.pop_front();
                let guard = self.admit(&mut state);
                // The next in line may fit too.
                self.wake_all(state);
                return Some(guard);
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => {
                        // Out of time: leave the line, and let the next in
                        // line see that it may be at the front now.
                        state.leave(ticket);
                        self.wake_all(state);
                        return None;
                    }
                },
            };
            match remaining {
                None => self.changed.wait(&mut state),
                Some(left) => {
                    self.changed.wait_for(&mut state, left);
                }
            }
        }
    }

    /// Takes a slot as a future: in the same line as the threads, waking
    /// when the line moves. Dropping the future before it is ready leaves
    /// the line.
    #[cfg(feature = "async")]
    pub(crate) fn acquire_async(&self) -> AcquireFuture<'_> {
        AcquireFuture {
            slots: self,
            ticket: None,
        }
    }

    /// Wakes every thread and task in line (after a slot was freed or the
    /// line moved), then releases the lock.
    fn wake_all(&self, state: crate::sync::MutexGuard<'_, State>) {
        let wakers: Vec<_> = state.queue.iter().filter_map(|(_, w)| w.clone()).collect();
        drop(state);
        self.changed.notify_all();
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    fn admit(&self, state: &mut State) -> SlotGuard<'_> {
        state.in_use += 1;
        state.high_water = state.high_water.max(state.in_use);
        SlotGuard { slots: self }
    }

    /// The most slots ever held at once.
    pub(crate) fn high_water(&self) -> usize {
        self.state.lock().high_water
    }

    /// Slots held now.
    pub(crate) fn in_use(&self) -> usize {
        self.state.lock().in_use
    }
}

/// A held slot; dropping it frees the slot and wakes the queue.
pub(crate) struct SlotGuard<'a> {
    slots: &'a Slots,
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.slots.state.lock();
        state.in_use -= 1;
        self.slots.wake_all(state);
    }
}

/// [`Slots::acquire_async`]'s future.
#[cfg(feature = "async")]
pub(crate) struct AcquireFuture<'a> {
    slots: &'a Slots,
    /// Its place in line, once it has had to wait.
    ticket: Option<u64>,
}

#[cfg(feature = "async")]
impl<'a> std::future::Future for AcquireFuture<'a> {
    type Output = SlotGuard<'a>;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<SlotGuard<'a>> {
        let slots = self.slots;
        let mut state = slots.state.lock();
        let ticket = match self.ticket {
            None if state.queue.is_empty() && state.in_use < slots.limit => {
                return std::task::Poll::Ready(slots.admit(&mut state));
            }
            None => {
                let ticket = state.next_ticket;
                state.next_ticket += 1;
                state.queue.push_back((ticket, Some(cx.waker().clone())));
                self.ticket = Some(ticket);
                return std::task::Poll::Pending;
            }
            Some(ticket) => ticket,
        };
        if state.is_front(ticket) && state.in_use < slots.limit {
            state.queue.pop_front();
            self.ticket = None;
            let guard = slots.admit(&mut state);
            slots.wake_all(state); // the next in line may fit too
            return std::task::Poll::Ready(guard);
        }
        if let Some((_, waker)) = state.queue.iter_mut().find(|(t, _)| *t == ticket) {
            *waker = Some(cx.waker().clone());
        }
        std::task::Poll::Pending
    }
}

#[cfg(feature = "async")]
impl Drop for AcquireFuture<'_> {
    /// Leaves the line (a task dropped while waiting), letting the next in
    /// line see that it may be at the front now.
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket {
            let mut state = self.slots.state.lock();
            state.leave(ticket);
            self.slots.wake_all(state);
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn never_more_than_the_limit() {
        let slots = Arc::new(Slots::new(3));
        let running = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (slots, running, peak) = (slots.clone(), running.clone(), peak.clone());
                std::thread::spawn(move || {
                    for _ in 0..50 {
                        let _g = slots.acquire(None).unwrap();
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        peak.fetch_max(now, Ordering::SeqCst);
                        std::thread::yield_now();
                        running.fetch_sub(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert!(peak.load(Ordering::SeqCst) <= 3);
        assert!(slots.high_water() <= 3);
        assert_eq!(slots.in_use(), 0);
    }

    #[test]
    fn a_deadline_gives_up_and_leaves_the_queue() {
        let slots = Slots::new(1);
        let held = slots.acquire(None).unwrap();
        let start = Instant::now();
        let got = slots.acquire(Some(start + Duration::from_millis(30)));
        assert!(got.is_none());
        assert!(start.elapsed() >= Duration::from_millis(30));
        drop(held);
        // The one that gave up is not in line any more.
        assert!(slots.acquire(Some(Instant::now())).is_some());
        assert_eq!(Slots::new(0).limit, 1);
    }

    #[test]
    fn waiters_are_served_in_arrival_order() {
        let slots = Arc::new(Slots::new(1));
        let order = Arc::new(crate::sync::Mutex::new(Vec::new()));
        let held = slots.acquire(None).unwrap();
        let mut threads = Vec::new();
        for i in 0..4 {
            let (mine, order) = (slots.clone(), order.clone());
            threads.push(std::thread::spawn(move || {
                let _g = mine.acquire(None).unwrap();
                order.lock().push(i);
            }));
            // Let thread i queue before thread i + 1 arrives.
            while slots.state.lock().queue.len() < i + 1 {
                std::thread::yield_now();
            }
        }
        drop(held);
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*order.lock(), vec![0, 1, 2, 3]);
    }
}
