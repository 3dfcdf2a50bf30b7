//! Safe points: how a committing segment brings the others to a stop.
//!
//! With the commit log (`commitlog.rs`) only major collections stop the world; commits
//! only set `REQUEST_VALIDATE` in the others' request words and never wait.
//!
//! Each segment is RUNNING (its thread may touch segment memory at any time) or SAFE (its
//! thread is outside a transaction, blocked in the runtime, or detached from the OS thread).
//! A committer sets `sync_in_progress`, sets `REQUEST_SYNC` in the `safe_point_request` word
//! of every RUNNING segment, and waits until none is RUNNING. A thread polls that word (the
//! JIT inline, the Rust API at every barrier) and parks when asked. A SAFE thread that wants
//! to run again first sets RUNNING, then checks `sync_in_progress` and backs off if set
//! (Dekker-style, both sides SeqCst): so no segment runs while a commit copies into it.

use crate::layout::{BUDGET_MARKED_BELOW, BUDGET_REQUEST, REQUEST_SYNC};
use crate::stats::Stats;
use crate::stm::Stm;
use crate::trace::SpanKind;
use std::sync::atomic::Ordering::SeqCst;
use std::time::Instant;

/// Waits until `cond()` holds: spins briefly, then yields, then sleeps in short steps (the
/// machine may have fewer cores than runnable threads).
pub(crate) fn wait_until(mut cond: impl FnMut() -> bool) {
    let mut i = 0u32;
    while !cond() {
        if i < 64 {
            std::hint::spin_loop();
        } else if i < 64 + 256 {
            std::thread::yield_now();
        } else {
            std::thread::sleep(std::time::Duration::from_micros(20));
        }
        i = i.saturating_add(1);
    }
}

impl Stm {
    /// Asks the thread running segment `seg` to enter the runtime soon: sets `bits` in its
    /// `safe_point_request` word (authoritative: read by every runtime entry), marks its
    /// budget (so that JIT code's next poll takes its slow path: [`Stm::mark_budget`]), then
    /// sets its `nursery_end` to 0 so that its next inline allocation also takes the slow
    /// path (which restores the real limit, then polls). The last store is only a faster path
    /// to the same poll: an owner resetting its nursery may overwrite it.
    pub(crate) fn request_safe_point(&self, seg: usize, bits: u64) {
        let info = self.mem.info(seg);
        info.safe_point_request.fetch_or(bits, SeqCst);
        self.mark_budget(seg);
        info.nursery_end.store(0, SeqCst);
    }

    /// Adds [`BUDGET_REQUEST`] to `seg`'s budget word unless it carries the mark already (so
    /// marks never pile up). Call after setting a request bit: the owner removes the mark
    /// before it reads the bits (`StmThread::take_budget`), so a bit set before the mark is
    /// seen by the slow path that the mark causes.
    pub(crate) fn mark_budget(&self, seg: usize) {
        let b = &self.mem.info(seg).budget;
        let mut cur = b.load(SeqCst);
        while cur >= BUDGET_MARKED_BELOW {
            match b.compare_exchange_weak(cur, cur + BUDGET_REQUEST, SeqCst, SeqCst) {
                Ok(_) => return,
                Err(x) => cur = x,
            }
        }
    }

    /// While waiting for `seg` to answer a request: marks its budget again if a request bit
    /// is still set and the mark is gone. The owner's inline decrement is a plain
    /// read-modify-write that can overwrite a mark landing inside it; a mark made again
    /// while the owner already handles the request only costs it one more slow path.
    fn remark(&self, seg: usize) {
        let info = self.mem.info(seg);
        if info.safe_point_request.load(SeqCst) != 0 && info.budget.load(SeqCst) >= 0 {
            self.mark_budget(seg);
        }
    }

    /// Marks `seg` RUNNING, waiting first for any commit in progress to finish.
    pub(crate) fn enter_running(&self, seg: usize) {
        let s = &self.segs[seg];
        loop {
            s.running.store(true, SeqCst);
            if !self.sync_in_progress.load(SeqCst) {
                return;
            }
            s.running.store(false, SeqCst);
            let t0 = Instant::now();
            wait_until(|| !self.sync_in_progress.load(SeqCst));
            Stats::add(&self.stats.paused_ns, t0.elapsed().as_nanos() as u64);
            if let Some(t) = self.tracer() {
                t.span_since(SpanKind::Paused, t0);
            }
        }
    }

    /// Marks `seg` SAFE: a commit may now proceed without it.
    pub(crate) fn enter_safe(&self, seg: usize) {
        self.segs[seg].running.store(false, SeqCst);
    }

    /// Brings every segment other than `me` to a safe point. The caller holds the commit
    /// mutex; call [`Stm::resume_world`] afterwards.
    pub(crate) fn stop_the_world(&self, me: usize) {
        self.sync_in_progress.store(true, SeqCst);
        let n = self.num_segments();
        let mut any = false;
        for k in 1..=n {
            if k != me && self.segs[k].running.load(SeqCst) {
                self.request_safe_point(k, REQUEST_SYNC);
                any = true;
            }
        }
        if any {
            let t0 = Instant::now();
            for k in 1..=n {
                if k != me {
                    wait_until(|| {
                        let done = !self.segs[k].running.load(SeqCst);
                        if !done {
                            self.remark(k);
                        }
                        done
                    });
                }
            }
            Stats::add(&self.stats.sync_wait_ns, t0.elapsed().as_nanos() as u64);
            Stats::add(&self.stats.syncs, 1);
            if let Some(t) = self.tracer() {
                t.span_since(SpanKind::CommitSync, t0);
            }
        }
    }

    /// Ends a [`Stm::stop_the_world`].
    pub(crate) fn resume_world(&self) {
        for k in 1..=self.num_segments() {
            self.mem
                .info(k)
                .safe_point_request
                .fetch_and(!REQUEST_SYNC, SeqCst);
        }
        self.sync_in_progress.store(false, SeqCst);
    }
}
