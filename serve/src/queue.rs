//! The queue between the I/O thread and the worker threads: a plain mutex-protected deque
//! outside the STM heap (so handing out requests is never a conflict point), bounded so
//! that saturated workers cost a quick 503 instead of unbounded memory.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};
use tokio::sync::oneshot;

use crate::{Request, Response};

/// One request waiting for a worker, with the way back to its connection.
pub(crate) struct Job {
    pub request: Request,
    /// Dropped on the I/O side when the connection went away: the worker then skips the job.
    pub reply: oneshot::Sender<Response>,
}

#[derive(Default)]
struct State {
    jobs: VecDeque<Job>,
    closed: bool,
}

/// A bounded multi-producer, multi-consumer queue of jobs.
pub(crate) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    cap: usize,
}

impl Queue {
    pub fn new(cap: usize) -> Queue {
        Queue {
            state: Mutex::default(),
            ready: Condvar::new(),
            cap: cap.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `job`; false (and `job` dropped) when the queue is full or closed.
    #[must_use]
    pub fn push(&self, job: Job) -> bool {
        let mut s = self.lock();
        if s.closed || s.jobs.len() >= self.cap {
            return false;
        }
        s.jobs.push_back(job);
        drop(s);
        self.ready.notify_one();
        true
    }

    /// The next job whose connection is still there, waiting for one; None once the
    /// queue is closed and empty.
    pub fn pop(&self) -> Option<Job> {
        let mut s = self.lock();
        loop {
            while let Some(job) = s.jobs.pop_front() {
                if !job.reply.is_closed() {
                    return Some(job);
                }
            }
            if s.closed {
                return None;
            }
            s = self.ready.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// No more jobs: the workers end once the queue is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }
}
