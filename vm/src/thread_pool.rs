//! OS threads that ran a spawned thread to its end wait a little while for another one to
//! run, instead of ending (issue 20: a spawn tree of 10 000 threads in about a second).
//!
//! Starting an OS thread was most of the cost of `spawn`: `clone3`, the 1 GiB stack's
//! `mmap`, guard-page `mprotect` and `munmap` at its end (stacks that large are never in
//! glibc's cache), std's signal stack (`mmap`, `mprotect`, `sigaltstack`, `munmap`), and the
//! page faults of a fresh stack, all system time, and all under the process's address-space
//! lock that every other thread's page faults take too. A spawn tree of 8 191 threads spent
//! 1.3 s, mostly there; leaves end while other nodes spawn, so an OS thread whose Thread
//! has ended nearly always finds another to run.
//!
//! An idle OS thread holds nothing of a program (its driver, shadow stack and runtime are
//! made afresh per Thread), so the pool is one for the process. It waits at most
//! [`IDLE_WAIT`] and at most [`MAX_IDLE`] of them wait at once, so that a program's thread
//! count comes back down soon after its threads end. Threads are not pooled under an
//! address-space limit (`ulimit -v`: an idle thread's 1 GiB stack would be address space the
//! program could not use, and [`crate::thread_room`] counts a thread's start by the address
//! space it adds) nor while tracing (a trace has one track per OS thread, named after the
//! Thread it runs).

use super::ProgramInfo;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an OS thread whose Thread ended waits for another before it ends.
pub const IDLE_WAIT: Duration = Duration::from_millis(100);

/// The most OS threads waiting at once; one more ends at once.
pub const MAX_IDLE: usize = 256;

/// Work for a pooled OS thread: runs a spawned Thread and says whether the OS thread may
/// then wait for more (see [`pooled`]).
pub type Job = Box<dyn FnOnce() -> bool + Send>;

/// An idle OS thread: where a job is handed to it, and how to wake it.
struct Worker {
    job: Mutex<Option<Job>>,
    thread: std::thread::Thread,
}

/// Idle OS threads, the most recently idle last (its stack is the warmest).
pub struct Pool {
    idle: Mutex<Vec<Arc<Worker>>>,
    wait: Duration,
    max: usize,
}

/// The process's pool: an idle OS thread holds nothing of a program.
pub static POOL: Pool = Pool::new(IDLE_WAIT, MAX_IDLE);

/// Whether the threads of `info`'s program may be pooled (see the module's documentation).
pub(crate) fn pooled(info: &ProgramInfo) -> bool {
    info.stm.tracer().is_none() && super::thread_room::address_limit().is_none()
}

impl Pool {
    /// A pool whose threads wait `wait` for a job, at most `max` of them at once.
    pub const fn new(wait: Duration, max: usize) -> Pool {
        Pool {
            idle: Mutex::new(Vec::new()),
            wait,
            max,
        }
    }

    /// Hands `job` to an idle OS thread and wakes it; `Err(job)` when none is idle (the
    /// caller starts a new one, running [`Pool::worker`]).
    pub fn hand_to_idle(&self, job: Job) -> Result<(), Job> {
        let mut idle = self.idle.lock().unwrap();
        let Some(w) = idle.pop() else {
            return Err(job);
        };
        // Set under the pool's lock: a worker whose wait ran out sees either itself still
        // idle (and leaves the pool before anyone can pick it) or its job.
        *w.job.lock().unwrap() = Some(job);
        drop(idle);
        w.thread.unpark();
        Ok(())
    }

    /// The body of a pooled OS thread: runs `job`, then each job handed to it while it
    /// waits ([`Pool::wait_for_job`]), and returns when none comes or a job says so.
    pub fn worker(&self, mut job: Job) {
        let mut me: Option<Arc<Worker>> = None;
        loop {
            if !job() {
                return;
            }
            let me = me.get_or_insert_with(|| {
                Arc::new(Worker {
                    job: Mutex::new(None),
                    thread: std::thread::current(),
                })
            });
            match self.wait_for_job(me) {
                Some(j) => job = j,
                None => return,
            }
        }
    }

    /// Waits in the pool, at most its wait, for a job; `None` when none came (the worker
    /// has left the pool) or the pool is full.
    fn wait_for_job(&self, me: &Arc<Worker>) -> Option<Job> {
        {
            let mut idle = self.idle.lock().unwrap();
            if idle.len() >= self.max {
                return None;
            }
            idle.push(me.clone());
        }
        let deadline = Instant::now() + self.wait;
        loop {
            if let Some(j) = me.job.lock().unwrap().take() {
                return Some(j);
            }
            let now = Instant::now();
            if now >= deadline {
                let mut idle = self.idle.lock().unwrap();
                // A job handed over before this lock was taken is run (see `hand_to_idle`).
                if let Some(j) = me.job.lock().unwrap().take() {
                    return Some(j);
                }
                idle.retain(|w| !Arc::ptr_eq(w, me));
                return None;
            }
            // A hand-off between the check and the park makes the park return at once.
            std::thread::park_timeout(deadline - now);
        }
    }

    /// OS threads waiting in the pool now.
    pub fn idle_threads(&self) -> usize {
        self.idle.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::{Job, Pool};
    use std::sync::mpsc;
    use std::time::Duration;

    /// Runs `job` on an idle thread of `pool`, or on a new one.
    fn start(pool: &'static Pool, job: Job) {
        if let Err(job) = pool.hand_to_idle(job) {
            std::thread::spawn(move || pool.worker(job));
        }
    }

    /// A job handed over just as its worker's wait runs out is run all the same (the worker
    /// takes it, or has left the pool before it could be picked): none is lost.
    #[test]
    fn no_job_is_lost_when_a_wait_runs_out() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(Duration::from_micros(200), 4)));
        let (tx, rx) = mpsc::channel::<u64>();
        for i in 0..3000u64 {
            let tx = tx.clone();
            start(
                pool,
                Box::new(move || {
                    tx.send(i).unwrap();
                    true
                }),
            );
            rx.recv_timeout(Duration::from_secs(5))
                .unwrap_or_else(|_| panic!("job {i} was lost"));
            // Around the wait of the worker that ran it.
            std::thread::sleep(Duration::from_micros(150 + (i % 7) * 15));
        }
    }

    /// Idle threads run the next jobs (no new thread while one is idle) and leave the pool
    /// when their wait runs out; a job that says so ends its thread at once.
    #[test]
    fn idle_threads_run_jobs_then_leave() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(Duration::from_millis(300), 4)));
        let (tx, rx) = mpsc::channel();
        let mut ids = Vec::new();
        for _ in 0..20 {
            let tx = tx.clone();
            start(
                pool,
                Box::new(move || {
                    tx.send(std::thread::current().id()).unwrap();
                    true
                }),
            );
            ids.push(rx.recv_timeout(Duration::from_secs(5)).unwrap());
            while pool.idle_threads() == 0 {
                std::thread::yield_now();
            }
        }
        ids.dedup();
        assert_eq!(ids.len(), 1, "one OS thread ran every job");
        let t0 = std::time::Instant::now();
        while pool.idle_threads() > 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "an idle thread stayed"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        start(pool, Box::new(|| false));
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(pool.idle_threads(), 0, "a job that says so ends its thread");
    }
}
