//! Contention management.
//!
//! Rules (c7's spirit, made deadlock-free by construction):
//! - Age is the transaction's start time (a clock reading, ties broken by segment number;
//!   kept across abort-retries, so a transaction that keeps losing gets older and eventually
//!   wins). An inevitable transaction counts as older than all others and is never aborted;
//!   at most one exists at a time.
//! - Write-write (found eagerly in the write barrier): if the attacker is older than the lock
//!   holder (or the holder is already doomed), it dooms the holder (abort at its next safe
//!   point) and takes the lock over. Otherwise the attacker, the younger, yields: it waits at a
//!   safe point for the lock ([`WaitPolicy::Wait`]) or aborts itself
//!   ([`WaitPolicy::AbortSelf`]). Waits go from younger to older only, so no cycle of waiters
//!   can form; cycles that other policies would meet are broken by the abort of the younger.
//!   Taking over the lock is sound because a doomed transaction can no longer commit: the
//!   commit re-checks the doom flag after stopping the world.
//! - Write-read (found at commit from the other segments' read markers): the reader is doomed,
//!   unless it is inevitable, in which case the committer aborts.
//! - Commit phase ([`StmThread::enter_commit_phase`]): a transaction doing its commit-time
//!   writes (the JIT's pending dict insertions) right before committing. At most one is in
//!   it at a time. It wins every write-write conflict whatever the ages, except against an
//!   inevitable holder, where it aborts itself: so it never waits for a lock, and the others
//!   wait for it (it is about to commit) rather than doom it. Waits still cannot form a cycle:
//!   they only go towards the inevitable transaction, the one in its commit phase, or an older
//!   transaction, and the first two never wait for a lock.

use crate::stats::{AbortCause, Conflict, ConflictInfo, ConflictKind, Side, NO_SITE};
use crate::stm::{
    lock_word, Stm, WaitPolicy, CAUSE_SHIFT, COMMITTING, DOOMED, INEVITABLE, IN_TX, SEQ_SHIFT,
};
use crate::transaction::{Abort, StmThread};
use std::sync::atomic::Ordering::SeqCst;

/// Outcome of trying to doom a transaction.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Doom {
    /// We doomed it now.
    Newly,
    /// Somebody had already doomed it.
    Already,
    /// It is inevitable or not in a transaction.
    Refused,
}

impl Stm {
    /// Marks the transaction of segment `victim` to abort at its next safe point. With
    /// `expect_seq`, only if that segment still runs the transaction with that sequence number.
    /// `info` is handed to the victim's `Abort` if this call dooms it (`Doom::Newly`): it is
    /// stored under the victim's conflict-slot mutex, held across the DOOMED transition, so
    /// the victim (which takes that mutex in `abort_now` after seeing DOOMED) always sees it.
    pub(crate) fn doom(
        &self,
        victim: usize,
        cause: AbortCause,
        expect_seq: Option<u64>,
        info: Option<ConflictInfo>,
    ) -> Doom {
        let s = &self.segs[victim];
        let mut slot = s.conflict.lock().unwrap_or_else(|e| e.into_inner());
        let mut st = s.tx_state.load(SeqCst);
        loop {
            if st & IN_TX == 0
                || st & (INEVITABLE | COMMITTING) != 0
                || expect_seq.is_some_and(|q| q != st >> SEQ_SHIFT)
            {
                return Doom::Refused;
            }
            if st & DOOMED != 0 {
                return Doom::Already;
            }
            let new = st | DOOMED | ((cause as u64) << CAUSE_SHIFT);
            match s.tx_state.compare_exchange(st, new, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(x) => st = x,
            }
        }
        *slot = info;
        drop(slot);
        self.request_safe_point(victim, crate::layout::REQUEST_ABORT);
        Doom::Newly
    }
}

/// The cause recorded in a doomed `tx_state`.
pub(crate) fn doom_cause(st: u64) -> AbortCause {
    AbortCause::from_u8((st >> CAUSE_SHIFT) as u8)
}

impl StmThread {
    /// Takes the write lock of granule `g` for the current transaction, resolving write-write
    /// conflicts as described in the module docs. Returns `Err` after aborting this
    /// transaction when it loses. `obj` is the object that `g` belongs to (the carded object
    /// for a card, else `g` itself): it is what conflict reports name.
    pub(crate) fn acquire_write_lock(&mut self, g: u64, obj: u64) -> Result<(), Abort> {
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        let me = self.seg;
        let mut spins = 0u32;
        loop {
            let ms = stm.tx_state(me);
            if ms & DOOMED != 0 {
                return Err(self.abort_now(doom_cause(ms)));
            }
            let mine = lock_word(me, ms);
            let cur = stm.locks.owner(g);
            if cur == mine {
                return Ok(());
            }
            if cur == 0 {
                if stm.locks.cas(g, 0, mine) {
                    return Ok(());
                }
                continue;
            }
            let h = (cur & 0xff) as usize;
            assert!(
                h != me,
                "stmjit: internal error: stale write lock of this segment at {g:#x}"
            );
            let hs = stm.tx_state(h);
            if hs & IN_TX == 0 || lock_word(h, hs) != cur {
                // The owner's transaction has ended and is releasing its locks; let it finish.
                spins += 1;
                if spins > 64 {
                    std::thread::yield_now();
                }
                continue;
            }
            let site = stm.mem.info(me).site.load(SeqCst);
            let finishing = stm.finishing.load(SeqCst) as usize;
            let type_id = stm.type_id_in(me, obj);
            // An inevitable holder cannot be doomed (at most one transaction is inevitable).
            let older = hs & INEVITABLE == 0
                && (ms & INEVITABLE != 0
                    || finishing == me
                    || (finishing != h
                        && (hs & DOOMED != 0
                            || (stm.segs[me].start_time.load(SeqCst), me)
                                < (stm.segs[h].start_time.load(SeqCst), h))));
            if older {
                // The holder's own barrier site is in its (private) modified list: it fills
                // its side in itself when it aborts (`StmThread::own_write_side`).
                let info = ConflictInfo {
                    kind: ConflictKind::WriteWrite,
                    object: obj,
                    addr: g,
                    type_id,
                    winner: Side::wrote(site),
                    loser: Side::was_at(NO_SITE),
                    winner_segment: me as u32,
                    winner_seq: ms >> SEQ_SHIFT,
                };
                match stm.doom(h, AbortCause::WriteWrite, Some(hs >> SEQ_SHIFT), Some(info)) {
                    Doom::Refused => {
                        // Inevitable meanwhile, or appending its entry (commit log): it
                        // releases the lock soon.
                        spins += 1;
                        if spins > 64 {
                            std::thread::yield_now();
                        }
                        continue;
                    }
                    Doom::Newly => stm.stats.log_conflict(Conflict {
                        kind: ConflictKind::WriteWrite,
                        winner_segment: me as u32,
                        loser_segment: h as u32,
                        object: g,
                        site,
                        type_id,
                    }),
                    Doom::Already => {}
                }
                // Succeeds only if the very transaction we doomed still owns the lock.
                if stm.locks.cas(g, cur, mine) {
                    return Ok(());
                }
                continue;
            }
            stm.stats.log_conflict(Conflict {
                kind: ConflictKind::WriteWrite,
                winner_segment: h as u32,
                loser_segment: me as u32,
                object: g,
                site,
                type_id,
            });
            // In the commit phase we never wait (see the module docs): we yield by aborting.
            let policy = if finishing == me {
                WaitPolicy::AbortSelf
            } else {
                stm.config.wait_policy
            };
            match policy {
                WaitPolicy::AbortSelf => {
                    // The holder's own barrier site is in its (private) modified list; its
                    // current site is the best we can read safely from here.
                    let info = ConflictInfo {
                        kind: ConflictKind::WriteWrite,
                        object: obj,
                        addr: g,
                        type_id,
                        winner: Side::was_at(stm.mem.info(h).site.load(SeqCst)),
                        loser: Side::wrote(site),
                        winner_segment: h as u32,
                        winner_seq: hs >> SEQ_SHIFT,
                    };
                    return Err(self.abort_with(AbortCause::WriteWrite, Some(info)));
                }
                WaitPolicy::Wait => {
                    crate::stats::Stats::add(&stm.stats.ww_waits, 1);
                    let t0 = std::time::Instant::now();
                    stm.enter_safe(me);
                    crate::safepoint::wait_until(|| {
                        stm.locks.owner(g) != cur || stm.tx_state(me) & DOOMED != 0
                    });
                    stm.enter_running(me);
                    if let Some(t) = stm.tracer() {
                        t.span_since(crate::trace::SpanKind::WriteLockWait, t0);
                    }
                }
            }
        }
    }
}
