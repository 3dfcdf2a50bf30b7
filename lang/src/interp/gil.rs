//! The interpreter's global lock: a FIFO hand-off lock, so that a thread giving the lock up at
//! a switch point really lets a waiting thread run (a plain mutex would often be re-taken at
//! once). A release hands the lock to the first waiter and wakes that thread alone.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::thread::Thread;

/// A fair global lock. Exactly one interpreter thread runs at a time.
#[derive(Default)]
pub struct Gil {
    state: Mutex<State>,
}

/// Whether the lock is held, and the threads waiting for it, first first.
#[derive(Default)]
struct State {
    held: bool,
    waiters: VecDeque<Arc<Waiter>>,
}

/// A parked thread; `granted` is set by the releaser that hands it the lock.
struct Waiter {
    granted: AtomicBool,
    thread: Thread,
}

impl Gil {
    /// Waits for this thread's turn.
    pub fn acquire(&self) {
        let w = {
            let mut s = crate::value::lock(&self.state);
            if !s.held && s.waiters.is_empty() {
                s.held = true;
                return;
            }
            let w = Arc::new(Waiter {
                granted: AtomicBool::new(false),
                thread: std::thread::current(),
            });
            s.waiters.push_back(w.clone());
            w
        };
        // Park may return spuriously: only `granted` says the lock was handed over.
        while !w.granted.load(SeqCst) {
            std::thread::park();
        }
    }

    /// Ends this thread's turn: the first waiter, if any, now holds the lock.
    pub fn release(&self) {
        let mut s = crate::value::lock(&self.state);
        match s.waiters.pop_front() {
            Some(w) => {
                drop(s);
                w.granted.store(true, SeqCst);
                w.thread.unpark();
            }
            None => s.held = false,
        }
    }

    /// True when another thread waits for the lock.
    pub fn contended(&self) -> bool {
        !crate::value::lock(&self.state).waiters.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::Gil;
    use std::sync::atomic::{AtomicU64, Ordering::SeqCst};

    /// Many threads taking turns: each turn is exclusive and every acquire gets its turn.
    #[test]
    fn turns_are_exclusive_and_all_served() {
        let gil = Gil::default();
        let inside = AtomicU64::new(0);
        let total = AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..16 {
                s.spawn(|| {
                    for _ in 0..500 {
                        gil.acquire();
                        assert_eq!(inside.fetch_add(1, SeqCst), 0);
                        total.fetch_add(1, SeqCst);
                        inside.fetch_sub(1, SeqCst);
                        gil.release();
                    }
                });
            }
        });
        assert_eq!(total.load(SeqCst), 16 * 500);
        assert!(!gil.contended());
    }
}
