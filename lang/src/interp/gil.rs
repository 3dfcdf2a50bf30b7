//! The interpreter's global lock: a FIFO ticket lock, so that a thread giving the lock up at a
//! switch point really lets a waiting thread run (a plain mutex would often be re-taken at once).

use std::sync::{Condvar, Mutex};

/// A fair global lock. Exactly one interpreter thread runs at a time.
#[derive(Default)]
pub struct Gil {
    /// (next ticket to hand out, ticket now served).
    state: Mutex<(u64, u64)>,
    turn: Condvar,
}

impl Gil {
    /// Waits for this thread's turn.
    pub fn acquire(&self) {
        let mut s = crate::value::lock(&self.state);
        let ticket = s.0;
        s.0 += 1;
        while s.1 != ticket {
            s = self.turn.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Ends this thread's turn.
    pub fn release(&self) {
        let mut s = crate::value::lock(&self.state);
        s.1 += 1;
        // Condvar::notify_all costs a system call even with no waiter: skip it then.
        if s.0 > s.1 {
            self.turn.notify_all();
        }
    }

    /// True when another thread waits for the lock.
    pub fn contended(&self) -> bool {
        let s = crate::value::lock(&self.state);
        s.0 > s.1 + 1
    }
}
