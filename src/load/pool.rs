//! A small pool of std threads for background refreshes.
//!
//! Refresh-ahead needs somewhere to run reloads that is not the reader's
//! thread. larder has no runtime dependency, so it keeps this minimal pool:
//!
//! * **Lazy.** No thread exists until the first task; a cache that never
//!   refreshes never starts one.
//! * **Small.** At most `max_workers` threads (two by default, for
//!   [`LoadingCache`](crate::LoadingCache)). A new worker starts only when
//!   queued tasks outnumber the idle workers.
//! * **Bounded.** At most `capacity` tasks wait; [`Pool::submit`] refuses
//!   more instead of blocking (a refresh can always be skipped and retried).
//! * **Joined on drop.** Dropping the pool closes the queue, drops the tasks
//!   still waiting (a dropped refresh task gives up its flight), wakes the
//!   workers and joins them, so no thread outlives its cache. A worker
//!   finishes the task it is running first.
//!
//! Tasks must not own the pool (directly or through an `Arc`): a worker
//! holding the last reference would then have to join itself. Refresh tasks
//! own only the inner `Cache` and the loader. Should the pool still be
//! dropped on one of its own workers, that worker is detached instead of
//! joined, and exits as soon as the task returns.
//!
//! Every primitive comes from `crate::sync`, so loom can model the pool.

use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::sync::thread::{self, JoinHandle};
use crate::sync::{Arc, Condvar, Mutex};

/// A unit of background work.
pub(crate) type Task = Box<dyn FnOnce() + Send + 'static>;

/// Most worker threads a [`LoadingCache`](crate::LoadingCache)'s pool starts.
pub(crate) const MAX_WORKERS: usize = 2;

/// Most refresh tasks waiting in a pool's queue; refreshes beyond it are
/// skipped (and retried later).
pub(crate) const QUEUE_CAPACITY: usize = 1024;

/// A bounded queue served by up to `max_workers` threads.
pub(crate) struct Pool {
    shared: Arc<Shared>,
    workers: Mutex<Vec<JoinHandle<()>>>,
    name: &'static str,
    max_workers: usize,
    capacity: usize,
}

struct Shared {
    state: Mutex<State>,
    ready: Condvar,
}

struct State {
    tasks: VecDeque<Task>,
    closed: bool,
    /// Workers parked on `ready`.
    idle: usize,
    /// Workers started and not failed to spawn.
    workers: usize,
}

impl Pool {
    /// An empty pool; its threads are named `name`-0, `name`-1, ...
    pub(crate) fn new(name: &'static str, max_workers: usize, capacity: usize) -> Self {
        Self {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    tasks: VecDeque::new(),
                    closed: false,
                    idle: 0,
                    workers: 0,
                }),
                ready: Condvar::new(),
            }),
            workers: Mutex::new(Vec::new()),
            name,
            max_workers: max_workers.max(1),
            capacity,
        }
    }

    /// Queues `task`, starting a worker if needed. Never blocks on the
    /// queue: when it is full (or the pool is shutting down) the task is
    /// handed back.
    pub(crate) fn submit(&self, task: Task) -> Result<(), Task> {
        let start = {
            let mut state = self.shared.state.lock();
            if state.closed || state.tasks.len() >= self.capacity {
                return Err(task);
            }
            state.tasks.push_back(task);
            let start = state.tasks.len() > state.idle && state.workers < self.max_workers;
            if start {
                state.workers += 1;
            }
            start.then_some(state.workers - 1)
        };
        match start {
            Some(n) => self.start_worker(n),
            None => self.shared.ready.notify_one(),
        }
        Ok(())
    }

    #[cold]
    fn start_worker(&self, n: usize) {
        let shared = self.shared.clone();
        let spawned = thread::Builder::new()
            .name(format!("{}-{n}", self.name))
            .spawn(move || shared.work());
        match spawned {
            Ok(handle) => self.workers.lock().push(handle),
            Err(_) => {
                // No thread: if no worker is left to serve the queue, give
                // its tasks up rather than keep them forever.
                let orphans = {
                    let mut state = self.shared.state.lock();
                    state.workers -= 1;
                    if state.workers == 0 {
                        std::mem::take(&mut state.tasks)
                    } else {
                        VecDeque::new()
                    }
                };
                drop(orphans);
            }
        }
    }
}

impl Shared {
    /// A worker: runs tasks until the pool closes.
    fn work(&self) {
        let mut state = self.state.lock();
        loop {
            if let Some(task) = state.tasks.pop_front() {
                drop(state);
                // A task handles its own failures; a panic that escapes
                // anyway must not kill the worker.
                let _ = catch_unwind(AssertUnwindSafe(task));
                state = self.state.lock();
                continue;
            }
            if state.closed {
                return;
            }
            state.idle += 1;
            self.ready.wait(&mut state);
            state.idle -= 1;
        }
    }
}

impl Drop for Pool {
    /// Closes the queue, drops the tasks still waiting and joins every
    /// worker (each finishes its current task first).
    fn drop(&mut self) {
        let waiting = {
            let mut state = self.shared.state.lock();
            state.closed = true;
            std::mem::take(&mut state.tasks)
        };
        self.shared.ready.notify_all();
        drop(waiting);
        let me = thread::current().id();
        let workers = std::mem::take(&mut *self.workers.lock());
        for handle in workers {
            if handle.thread().id() != me {
                let _ = handle.join();
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc as StdArc};

    #[test]
    fn runs_tasks_and_joins_on_drop() {
        let ran = StdArc::new(AtomicUsize::new(0));
        let pool = Pool::new("pool-test", 2, 16);
        for _ in 0..10 {
            let ran = ran.clone();
            pool.submit(Box::new(move || {
                ran.fetch_add(1, Ordering::SeqCst);
            }))
            .ok()
            .unwrap();
        }
        // Wait until all ran, then drop (joins).
        while ran.load(Ordering::SeqCst) < 10 {
            std::thread::yield_now();
        }
        assert!(pool.workers.lock().len() <= 2);
        drop(pool);
        assert_eq!(ran.load(Ordering::SeqCst), 10);
    }

    #[test]
    fn drop_waits_for_the_running_task() {
        let done = StdArc::new(AtomicUsize::new(0));
        let pool = Pool::new("pool-test", 1, 4);
        let (started_tx, started_rx) = mpsc::channel::<()>();
        let flag = done.clone();
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            std::thread::sleep(std::time::Duration::from_millis(50));
            flag.store(1, Ordering::SeqCst);
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 1, "drop joined the worker");
    }

    #[test]
    fn full_queue_refuses_without_blocking() {
        let pool = Pool::new("pool-test", 1, 2);
        let (tx, rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        // Occupy the only worker.
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            rx.recv().unwrap();
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
        assert!(pool.submit(Box::new(|| {})).is_ok());
        assert!(pool.submit(Box::new(|| {})).is_ok());
        assert!(pool.submit(Box::new(|| {})).is_err(), "queue of 2 is full");
        tx.send(()).unwrap();
        drop(pool);
    }

    #[test]
    fn drop_gives_up_waiting_tasks() {
        struct Flag(StdArc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let dropped = StdArc::new(AtomicUsize::new(0));
        let pool = Pool::new("pool-test", 1, 8);
        let (tx, rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.submit(Box::new(move || {
            started_tx.send(()).unwrap();
            rx.recv().unwrap();
        }))
        .ok()
        .unwrap();
        started_rx.recv().unwrap();
        let flag = Flag(dropped.clone());
        pool.submit(Box::new(move || drop(flag))).ok().unwrap();
        tx.send(()).unwrap();
        drop(pool);
        // Either the worker ran it before seeing the close, or drop gave it
        // up: the task itself was dropped exactly once, and nothing hangs.
        assert_eq!(dropped.load(Ordering::SeqCst), 1);
    }
}
