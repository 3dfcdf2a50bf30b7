//! Threads of the interpreted program: switch points, `spawn`/`join`, `Lock` and
//! `TransactionQueue`.

use super::*;
use std::time::Duration;

impl Interp {
    // ----- threads -----

    /// A switch point between statements.
    pub(super) fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= SWITCH_INTERVAL {
            self.ticks = 0;
            if self.atomic == 0 && self.shared.gil.contended() {
                self.shared.gil.release();
                self.shared.gil.acquire();
            }
        }
    }

    /// Runs `f` with the global lock released (for blocking waits).
    pub(super) fn without_gil<T>(&self, f: impl FnOnce() -> T) -> T {
        self.shared.gil.release();
        let r = f();
        self.shared.gil.acquire();
        r
    }

    /// `spawn(f, args...)`.
    pub(super) fn spawn(&mut self, f: Value, args: Vec<Value>, span: Span) -> R<Value> {
        let thread = Arc::new(ThreadObj::default());
        let shared = self.shared.clone();
        let t = thread.clone();
        let handle = std::thread::Builder::new()
            .stack_size(stack::THREAD_STACK)
            .spawn(move || {
                stack::mark_thread(stack::THREAD_STACK);
                *lock(&t.os_thread) = Some(std::thread::current().id());
                shared.gil.acquire();
                let run = std::panic::AssertUnwindSafe(|| {
                    let mut it = Interp::new(shared.clone());
                    it.call_value(f, args, span).map_err(|e| it.locate(e, span))
                });
                let it_text =
                    |shared: &Arc<Shared>, e: &Exc| Interp::new(shared.clone()).exc_text(e);
                match std::panic::catch_unwind(run) {
                    Ok(Ok(v)) => *lock(&t.result) = Some(v),
                    Ok(Err(e)) => {
                        // Kept for `join()` (or the report at the end of the program).
                        let text = it_text(&shared, &e);
                        *lock(&t.failure) = Some(ThreadFailure {
                            exc: *e,
                            text,
                            spawned_at: span,
                            joined: false,
                        });
                        lock(&shared.failed).push(t.clone());
                        *lock(&t.result) = Some(Value::None);
                    }
                    // An interpreter bug: end the process rather than leave the others
                    // waiting forever for the global lock this thread holds.
                    Err(_) => {
                        shared.flush_out();
                        (shared.exit)(101);
                    }
                }
                shared.gil.release();
            })
            .map_err(|e| {
                exc(
                    ErrorKind::MemoryError,
                    format!("cannot start a thread: {e}"),
                )
            })?;
        *lock(&thread.handle) = Some(handle);
        lock(&self.shared.threads).push(thread.clone());
        Ok(Value::Thread(thread))
    }

    /// `t.join()` from the program: [`Interp::join`], or a RuntimeError when `t` is the
    /// calling thread itself (the wait would never end; CPython raises the same). A thread
    /// that ended with an uncaught exception raises it again here, at every `join()`: its
    /// trace is the thread's, then `<thread>` at the `spawn` call, then the joiner's frames.
    pub(super) fn join_checked(&mut self, t: &Arc<ThreadObj>) -> R<Value> {
        let me = std::thread::current().id();
        if *lock(&t.os_thread) == Some(me) {
            return Err(exc(ErrorKind::RuntimeError, "cannot join current thread"));
        }
        // Under the global lock: no other join can start or end meanwhile.
        if self.joins_me(t, me) {
            return Err(exc(ErrorKind::RuntimeError, crate::diag::JOIN_DEADLOCK));
        }
        lock(&self.shared.joining).insert(me, t.clone());
        let v = self.join(t);
        lock(&self.shared.joining).remove(&me);
        match lock(&t.failure).as_mut() {
            Some(f) => {
                f.joined = true;
                Err(rejoined(f))
            }
            None => Ok(v),
        }
    }

    /// Whether thread `t` is (transitively) waiting in `join()` for the OS thread `me`: a
    /// walk along the chain of joins, each thread waiting for at most one.
    fn joins_me(&self, t: &Arc<ThreadObj>, me: std::thread::ThreadId) -> bool {
        let joining = lock(&self.shared.joining);
        let mut cur = t.clone();
        // Every chain is shorter than the number of waiting threads (a cycle would have been
        // refused when its last join began).
        for _ in 0..=joining.len() {
            let Some(os) = *lock(&cur.os_thread) else {
                return false;
            };
            if os == me {
                return true;
            }
            match joining.get(&os) {
                Some(next) => cur = next.clone(),
                None => return false,
            }
        }
        false
    }

    /// `t.join()`: waits for the thread and returns its result.
    pub(super) fn join(&mut self, t: &Arc<ThreadObj>) -> Value {
        let handle = lock(&t.handle).take();
        if let Some(h) = handle {
            self.without_gil(|| {
                let _ = h.join();
            });
        }
        loop {
            if let Some(v) = lock(&t.result).clone() {
                return v;
            }
            // Another thread is joining it: wait for the result to appear.
            self.without_gil(|| std::thread::sleep(Duration::from_micros(100)));
        }
    }

    pub(super) fn lock_acquire(&mut self, l: &LockObj) {
        let me = std::thread::current().id();
        loop {
            {
                let mut owner = lock(&l.owner);
                match *owner {
                    None => {
                        *owner = Some((me, 1));
                        return;
                    }
                    Some((id, n)) if id == me => {
                        *owner = Some((me, n + 1));
                        return;
                    }
                    _ => {}
                }
            }
            self.without_gil(|| std::thread::sleep(Duration::from_micros(50)));
        }
    }

    pub(super) fn lock_release(&mut self, l: &LockObj) {
        let mut owner = lock(&l.owner);
        if let Some((id, n)) = *owner {
            *owner = if n > 1 { Some((id, n - 1)) } else { None };
        }
    }

    /// The first exception of a spawned thread that no `join()` raised, if any.
    pub(super) fn unjoined_failure(&self) -> Option<ThreadFailure> {
        lock(&self.shared.failed)
            .iter()
            .find_map(|t| lock(&t.failure).clone().filter(|f| !f.joined))
    }

    /// `q.run()`: runs queued calls (also those added meanwhile), each without switching.
    pub(super) fn run_queue(&mut self, q: &QueueObj, span: Span) -> R<Value> {
        loop {
            let next = lock(&q.calls).pop_front();
            let Some((f, args)) = next else { break };
            self.atomic += 1;
            let r = self.call_value(f, args, span);
            self.atomic -= 1;
            r?;
        }
        Ok(Value::None)
    }
}

/// The exception of failure `f` as `join()` raises it: the thread's frames, then the
/// `spawn` call as the `<thread>` frame (once: a call that failed before its first
/// statement has it already), then the frames of the joiner (`open`).
fn rejoined(f: &ThreadFailure) -> Box<Exc> {
    let mut e = Box::new(f.exc.clone());
    let origin = TraceEntry {
        span: f.spawned_at,
        function: "<thread>".into(),
    };
    if e.trace.last() != Some(&origin) {
        e.trace.push(origin);
    }
    e.open = true;
    e
}
