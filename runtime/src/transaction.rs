//! Transactions: begin, commit, abort, inevitability, and the per-thread handle.
//!
//! Two commit protocols: c7's (every writer commit stops the world and publishes into the
//! other segments) and, with `StmConfig::commit_log`, c8's (a writer commit validates and
//! appends to the commit log; every segment validates and imports at its own safe points:
//! `validate`, `commit_logged`, and `commitlog.rs`).
//!
//! Aborts are reported as `Err(Abort)` from every runtime entry (barriers, allocation,
//! commit, `poll`), after the runtime has already rolled the transaction back: the caller
//! only has to unwind to its restart point and call [`StmThread::begin`] again. There is no
//! longjmp.

use crate::contention::doom_cause;
use crate::gs;
use crate::layout::{
    SegmentInfo, INFO_OFFSET, PAGE_SIZE, REQUEST_ABORT, REQUEST_SYNC, REQUEST_VALIDATE,
};
use crate::object::WRITE_BARRIER_FLAG;
use crate::stats::{
    AbortCause, Conflict, ConflictInfo, ConflictKind, SegCounters, Side, Stats, NO_SITE,
};
use crate::stm::{lock_word, Stm, COMMITTING, DOOMED, INEVITABLE, IN_TX, SEQ_SHIFT};
use crate::trace::{Event, Outcome, SpanKind, TxRecord};
use std::cell::Cell;
use std::marker::PhantomData;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release, SeqCst};
use std::sync::Arc;
use std::time::Instant;

/// The transaction was aborted (and already rolled back); retry from the start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Abort {
    cause: AbortCause,
    conflict: Option<ConflictInfo>,
}

impl Abort {
    /// Why it aborted.
    pub fn cause(&self) -> AbortCause {
        self.cause
    }

    /// The conflict that caused this abort (object, its type, and the winner's segment and
    /// site), so that `--stats` can name both sides; `None` for explicit aborts.
    pub fn conflict(&self) -> Option<ConflictInfo> {
        self.conflict
    }
}

impl std::fmt::Display for Abort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "transaction aborted ({:?})", self.cause)
    }
}

impl std::error::Error for Abort {}

/// What a modified record covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ModKind {
    /// A whole non-carded old object (its header granule holds the lock).
    Object,
    /// One 16-byte card of a card-marked object.
    Card,
    /// An object allocated by this transaction (no lock; published at commit).
    New,
}

/// One entry of the per-segment modified list.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ModRec {
    pub addr: u64,
    pub len: u64,
    pub kind: ModKind,
    /// The object the record belongs to (for cards: the carded object, whose trace hook the
    /// GC uses to find the card's value words; otherwise `addr`).
    pub obj: u64,
    pub site: u32,
    /// Commit log: offset in `ThreadGc::backups` of the range's contents before this
    /// transaction wrote it (restored by an abort; `Object` and `Card` records only).
    pub backup: usize,
}

pub(crate) const RV_OFF: u64 =
    INFO_OFFSET + core::mem::offset_of!(SegmentInfo, read_version) as u64;
pub(crate) const SPR_OFF: u64 =
    INFO_OFFSET + core::mem::offset_of!(SegmentInfo, safe_point_request) as u64;

thread_local! {
    /// (runtime address, segment) that this OS thread currently runs, (0, 0) if none. Set only
    /// while a handle of that runtime holds that segment in a transaction.
    static ACTIVE: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

/// A thread's handle on a runtime: runs one transaction at a time in some segment.
///
/// Not `Send`: while a transaction runs, the OS thread's `%gs` points at its segment. Several
/// handles may live on one OS thread (each operation switches `%gs` and the RUNNING state to
/// its own segment; the others count as being at a safe point).
pub struct StmThread {
    pub(crate) stm: Arc<Stm>,
    pub(crate) seg: usize,
    last_seg: usize,
    /// The segment this thread keeps between its transactions (0: none), unless another
    /// thread has taken it over since (`SegShared::kept_by` says).
    kept: usize,
    /// Names this handle in `SegShared::kept_by` (unique, never 0).
    token: u64,
    /// When this thread took its segment from the queue (its time slice started).
    slice_start: Instant,
    retained_start: Option<u64>,
    /// The most recent abort (for callers that only got a status code through the C ABI).
    last_abort: Option<Abort>,
    /// GC state (modified records, shadow stack, young objects), boxed at a stable address
    /// registered with the runtime for the major collector.
    pub(crate) gc: Box<crate::nursery::ThreadGc>,
    /// Old-object pages the running transaction privatized (for its trace record).
    pub(crate) tx_pages: u64,
    /// The running transaction's trace record so far, when the runtime records a trace.
    trace_tx: Option<OpenTx>,
    _not_send: PhantomData<*const ()>,
}

/// What the trace record of a running transaction knows before it ends.
#[derive(Clone, Copy, Debug)]
struct OpenTx {
    start_ns: u64,
    inevitable_ns: Option<std::num::NonZeroU64>,
}

impl Stm {
    /// Address space each thread handle maps (its shadow stack), so that a caller can tell
    /// whether one more fits under an address-space limit before starting a thread.
    pub fn thread_reserve_bytes(&self) -> usize {
        let l = self.layout();
        crate::shadowstack::slots_for_objects(l.old_end - l.object_start) * 8
    }

    /// A new thread handle (no transaction yet). Panics if its shadow stack cannot be
    /// mapped; [`Stm::try_thread`] says so instead.
    pub fn thread(self: &Arc<Self>) -> StmThread {
        self.try_thread().unwrap_or_else(|e| panic!("stmjit: {e}"))
    }

    /// A new thread handle (no transaction yet), or `Err` when its shadow stack cannot be
    /// mapped (an address-space limit: the program reports a MemoryError).
    pub fn try_thread(self: &Arc<Self>) -> std::io::Result<StmThread> {
        let slots = self.thread_reserve_bytes() / 8;
        // An ended thread's stack, only where there is no address-space limit: under one,
        // each thread's start is counted by the address space it maps (see
        // `Region::recyclable`).
        let reuse = if crate::shadowstack::no_address_limit() {
            self.gc.shadow_pool.lock().unwrap().pop()
        } else {
            None
        };
        let gc = Box::new(crate::nursery::ThreadGc::new(slots, reuse)?);
        self.gc
            .threads
            .lock()
            .unwrap()
            .push(&*gc as *const crate::nursery::ThreadGc as usize);
        static NEXT_TOKEN: AtomicU64 = AtomicU64::new(1);
        Ok(StmThread {
            stm: self.clone(),
            seg: 0,
            last_seg: 0,
            kept: 0,
            token: NEXT_TOKEN.fetch_add(1, Relaxed),
            slice_start: Instant::now(),
            retained_start: None,
            last_abort: None,
            gc,
            tx_pages: 0,
            trace_tx: None,
            _not_send: PhantomData,
        })
    }
}

impl StmThread {
    /// The runtime, borrowed apart from `self`, so that a method may keep it across calls of
    /// `&mut self` methods: what `self.stm.clone()` gave, without two atomic operations on
    /// the reference count, a cache line every thread writes (on 2 segments the increments
    /// and decrements of begin, barriers and commit were a quarter of the commit's samples).
    ///
    /// # Safety
    /// The reference must not be used after `self` is dropped (`self.stm` is never replaced:
    /// until then it keeps the runtime alive).
    #[inline(always)]
    pub(crate) unsafe fn stm_unbound<'a>(&self) -> &'a Stm {
        // SAFETY: the caller's contract; `self.stm` keeps the runtime alive meanwhile.
        unsafe { &*Arc::as_ptr(&self.stm) }
    }

    /// The runtime.
    pub fn stm(&self) -> &Arc<Stm> {
        &self.stm
    }

    /// Segment of the running transaction, or 0 outside a transaction.
    pub fn segment(&self) -> usize {
        self.seg
    }

    /// Whether a transaction is running.
    pub fn in_transaction(&self) -> bool {
        self.seg != 0
    }

    /// The most recent abort of this handle: what the C-ABI entry points (`ffi`), which
    /// return only a status, could not return.
    pub fn last_abort(&self) -> Abort {
        self.last_abort.unwrap_or(Abort {
            cause: AbortCause::Explicit,
            conflict: None,
        })
    }

    /// The running transaction's number in its segment (bumped at each begin): with
    /// [`StmThread::segment`], it names the transaction, as [`ConflictInfo::winner_seq`]
    /// names a conflict's winner.
    pub fn transaction_seq(&self) -> u64 {
        self.stm.tx_state(self.seg) >> SEQ_SHIFT
    }

    /// Whether the running transaction is inevitable.
    pub fn is_inevitable(&self) -> bool {
        self.seg != 0 && self.stm.tx_state(self.seg) & INEVITABLE != 0
    }

    /// Whether the running transaction wrote an object others can reach or promoted one it
    /// allocated (it has modified records): a caller that would roll it back to wait for
    /// another thread (a join) learns whether that would hide anything the thread may be
    /// waiting for.
    pub fn has_written(&self) -> bool {
        !self.gc.modified.is_empty()
    }

    fn key(&self) -> (usize, usize) {
        (Arc::as_ptr(&self.stm) as usize, self.seg)
    }

    /// Makes this handle's segment the running one of this OS thread (switching `%gs`).
    #[inline]
    pub(crate) fn ensure_active(&mut self) {
        if self.seg == 0 {
            panic!("stmjit: transactional operation outside a transaction (call begin() first)");
        }
        if ACTIVE.with(|a| a.get()) != self.key() {
            self.activate();
        }
    }

    #[cold]
    fn activate(&mut self) {
        let (p, s) = ACTIVE.with(|a| a.get());
        if p != 0 {
            // SAFETY: ACTIVE names a runtime only while a handle holding an Arc to it runs a
            // transaction in segment s (cleared when that transaction ends or the handle drops).
            unsafe { (*(p as *const Stm)).enter_safe(s) };
        }
        gs::set_gs_base(self.stm.segment_base(self.seg));
        self.stm.enter_running(self.seg);
        ACTIVE.with(|a| a.set(self.key()));
    }

    /// Leaves the segment at the end of a transaction: SAFE, and kept for this thread's next
    /// transaction, or handed over when others wait and this thread's time slice has run out.
    fn release(&mut self) {
        let seg = self.seg;
        self.gc.seg.store(0, Relaxed); // published by enter_safe (SeqCst) below
        self.stm.enter_safe(seg);
        if ACTIVE.with(|a| a.get()) == self.key() {
            ACTIVE.with(|a| a.set((0, 0)));
        }
        self.seg = 0;
        self.last_seg = seg;
        if self.stm.must_hand_over(self.slice_start) {
            self.stm.release_segment(seg);
        } else {
            self.kept = seg;
            self.stm.keep_segment(seg, self.token);
        }
    }

    /// Call outside a transaction before blocking (a join, a wait for other threads, I/O):
    /// if threads wait for a segment, hands over the one this thread keeps between its
    /// transactions, so that one of them runs at once rather than after a time slice.
    /// Otherwise the segment stays kept (cheap: no global lock), and a thread that comes to
    /// wait later takes it over from this idle keeper. Does nothing inside a transaction.
    pub fn detach(&mut self) {
        if self.kept != 0 && self.stm.anyone_waiting() {
            self.give_back();
        }
    }

    /// Puts the segment this thread keeps (if it still has it) back into the free list.
    fn give_back(&mut self) {
        let k = std::mem::take(&mut self.kept);
        if k != 0 && self.stm.reclaim_segment(k, self.token) {
            self.stm.release_segment(k);
        }
    }

    /// Names this handle in hand-offs ([`StmThread::hand_kept_to`]): unique, never 0.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// Call outside a transaction: passes the segment this thread keeps between its
    /// transactions (if it still has it) to the thread whose [`StmThread::token`] is `to`,
    /// which takes it with [`StmThread::adopt_kept`] at its next begin, without queueing.
    /// Returns the segment, `None` if there was none to pass.
    ///
    /// For a thread that ends and wakes the one joining it (issue 20): the joiner would
    /// otherwise queue behind every thread waiting for a segment, parking a second time,
    /// while this thread's segment went to the head of the queue. The hand-off passes only
    /// the keeper's role: until the receiver takes it, the segment stays SAFE and the head of
    /// the queue may still take it over ([`Stm::take_over_idle`]), as from any keeper.
    pub fn hand_kept_to(&mut self, to: u64) -> Option<usize> {
        debug_assert!(self.seg == 0, "hand_kept_to() inside a transaction");
        let k = std::mem::take(&mut self.kept);
        if k == 0 || to == 0 {
            self.kept = k;
            return None;
        }
        self.stm.segs[k]
            .kept_by
            .compare_exchange(self.token, to, SeqCst, SeqCst)
            .is_ok()
            .then_some(k)
    }

    /// Takes the segment `seg` another thread passed to this one ([`StmThread::hand_kept_to`])
    /// as the one it keeps: its next begin reclaims it, unless someone has taken it over
    /// meanwhile (then it queues as usual). Its time slice starts now. Call outside a
    /// transaction; another segment this thread kept before is handed back first (not the
    /// same one: the ender may have taken it over from this thread, and passes it back).
    pub fn adopt_kept(&mut self, seg: usize) {
        debug_assert!(self.seg == 0, "adopt_kept() inside a transaction");
        if self.kept != seg {
            self.give_back();
        }
        self.kept = seg;
        self.slice_start = Instant::now();
    }

    /// The segment this thread keeps between its transactions (0: none): for tests. Another
    /// thread may have taken it over since; the next begin finds out.
    pub fn kept_segment(&self) -> usize {
        self.kept
    }

    /// Enters the runtime: checks for a transaction, activates the segment, and polls the
    /// safe-point request word (pausing or aborting as requested).
    #[inline]
    pub(crate) fn enter(&mut self) -> Result<(), Abort> {
        self.ensure_active();
        // SAFETY: %gs points at our segment (ensure_active), whose info page is mapped.
        if unsafe { gs::load_u64(SPR_OFF) } != 0 {
            return self.poll_slow();
        }
        Ok(())
    }

    /// Safe point: the Rust equivalent of the JIT's inline poll of
    /// `SegmentInfo::safe_point_request`. Pauses while another segment commits; returns
    /// `Err` (after rolling back) if this transaction was doomed.
    pub fn poll(&mut self) -> Result<(), Abort> {
        self.enter()
    }

    /// The poll slow path's first step (JIT code polls `SegmentInfo::budget` only): removes
    /// a requester's [`crate::BUDGET_REQUEST`] mark from the budget word and returns what is
    /// left of the budget (negative: exhausted). Call [`StmThread::poll`] next: every request
    /// whose mark this removed has its bit set already. A mark made after this one stays
    /// and sends the next poll here again.
    pub fn take_budget(&mut self) -> i64 {
        self.ensure_active();
        let b = &self.stm.mem.info(self.seg).budget;
        loop {
            let cur = b.load(SeqCst);
            if cur >= crate::BUDGET_MARKED_BELOW {
                return cur;
            }
            // Atomic: a requester's CAS may race with it (the owner's JIT code does not run).
            b.fetch_sub(crate::BUDGET_REQUEST, SeqCst);
        }
    }

    /// Sets the running transaction's budget (what JIT polls count down; 0: the next poll
    /// ends the transaction), keeping any pending request visible: if a request bit is set
    /// after the store, the budget is marked again (the store may have erased its mark).
    pub fn set_budget(&mut self, b: i64) {
        self.ensure_active();
        let me = self.seg;
        let info = self.stm.mem.info(me);
        info.budget.store(b, SeqCst);
        if info.safe_point_request.load(SeqCst) != 0 {
            self.stm.mark_budget(me);
        }
    }

    #[cold]
    fn poll_slow(&mut self) -> Result<(), Abort> {
        let me = self.seg;
        let req = self.stm.mem.info(me).safe_point_request.load(SeqCst);
        if req & REQUEST_SYNC != 0 {
            self.stm.enter_safe(me);
            self.stm.enter_running(me);
        }
        let st = self.stm.tx_state(me);
        if st & DOOMED != 0 {
            return Err(self.abort_now(doom_cause(st)));
        }
        if req & REQUEST_VALIDATE != 0 {
            self.validate_or_abort()?;
        }
        Ok(())
    }

    /// Commit log: validates this segment's snapshot against the entries appended since
    /// (see `commitlog.rs`) and imports them. Returns the conflict, without importing that
    /// entry or any later one, if one of them wrote a granule this transaction has read
    /// (its read marker holds the read version; write slow paths set it too).
    #[inline]
    pub(crate) fn validate(&mut self) -> Option<(Conflict, ConflictInfo)> {
        let stm = &*self.stm;
        let me = self.seg;
        // Inline fast path, for the usual case of nothing new (begin, commit and each write
        // lock validate; a call to the full path cost 33 instructions under callgrind).
        let asked = stm.mem.info(me).safe_point_request.load(Relaxed) & REQUEST_VALIDATE;
        // SAFETY: our `last` is alive (see `validate_slow`).
        if asked == 0 && unsafe { (*stm.seg_last(me)).next.load(Acquire) }.is_null() {
            return None;
        }
        self.validate_slow()
    }

    /// [`StmThread::validate`] when asked to, or when there is something to import.
    #[inline(never)]
    fn validate_slow(&mut self) -> Option<(Conflict, ConflictInfo)> {
        let stm = &*self.stm;
        let me = self.seg;
        let info = stm.mem.info(me);
        // Cleared before looking: a request for an entry we are about to import is harmless,
        // but one left set would send every later poll to this slow path.
        if info.safe_point_request.load(Relaxed) & REQUEST_VALIDATE != 0 {
            info.safe_point_request.fetch_and(!REQUEST_VALIDATE, SeqCst);
        }
        let mut cur = stm.seg_last(me);
        // SAFETY: entries from a held segment's `last` on are alive: the log frees only
        // entries before the smallest `last` of the segments not in the free list.
        let mut next = unsafe { (*cur).next.load(Acquire) };
        if next.is_null() {
            return None;
        }
        let t0 = crate::ticks::now();
        let rv = info.read_version.load(Relaxed);
        let check = stm.tx_state(me) & IN_TX != 0;
        let (mut entries, mut bytes) = (0, 0);
        let mut found = None;
        while !next.is_null() {
            // SAFETY: as above.
            let e = unsafe { &*next };
            if e.seg != me {
                if check {
                    if let Some(r) = e
                        .recs()
                        .iter()
                        .find(|r| r.kind != ModKind::New && stm.marker_at(me, r.addr) == rv)
                    {
                        let type_id = stm.type_id_in(me, r.obj);
                        found = Some((
                            Conflict {
                                kind: ConflictKind::WriteRead,
                                winner_segment: e.seg as u32,
                                loser_segment: me as u32,
                                object: r.addr,
                                site: r.site,
                                type_id,
                            },
                            ConflictInfo {
                                kind: ConflictKind::WriteRead,
                                object: r.obj,
                                addr: r.addr,
                                type_id,
                                winner: Side::wrote(r.site),
                                loser: Side::read(stm.read_site_at(me, r.addr)),
                                winner_segment: e.seg as u32,
                                winner_seq: e.seq,
                            },
                        ));
                        break;
                    }
                }
                for r in e.recs() {
                    stm.import_rec(me, e, r);
                }
                entries += 1;
                bytes += e.bytes().len() as u64;
            }
            cur = next;
            stm.segs[me].last.store(cur, Release);
            // SAFETY: as above.
            next = unsafe { (*cur).next.load(Acquire) };
        }
        let c = &stm.segs[me].counters;
        SegCounters::bump(&c.validations, 1);
        SegCounters::bump(&c.imported_entries, entries);
        SegCounters::bump(&c.imported_bytes, bytes);
        SegCounters::bump(&c.validate_ticks, crate::ticks::now().wrapping_sub(t0));
        found
    }

    /// [`StmThread::validate`], aborting on a conflict.
    pub(crate) fn validate_or_abort(&mut self) -> Result<(), Abort> {
        match self.validate() {
            None => Ok(()),
            Some(c) => Err(self.abort_validated(c)),
        }
    }

    /// Aborts for a conflict found by [`StmThread::validate`].
    pub(crate) fn abort_validated(&mut self, (c, info): (Conflict, ConflictInfo)) -> Abort {
        self.stm.stats.log_conflict(c);
        self.abort_with(AbortCause::WriteRead, Some(info))
    }

    /// Brings the running transaction's view up to the newest commit (commit log: validates
    /// now, aborting on a conflict; without the log every running transaction already sees
    /// every commit). For callers that keep what a transaction reads outside the STM heap
    /// under a version they read first (the JIT's class caches): after this call, the
    /// transaction's view includes every commit whose effects happened before that read.
    pub fn refresh(&mut self) -> Result<(), Abort> {
        self.enter()?;
        if self.stm.config.commit_log {
            self.validate_or_abort()?;
        }
        Ok(())
    }

    /// Replaces this thread's restart roots: tagged words (see [`crate::value`]) that major
    /// collections mark as roots, so the JIT can keep the frame it snapshots right after a
    /// commit alive across later transactions. Minor collections neither scan nor update
    /// them: store only committed old-space references (other words are ignored by the
    /// collector, but a young reference would not be kept alive). Callable in or out of a
    /// transaction; safe against a major collection run by another thread at any time.
    pub fn set_restart_roots(&mut self, words: &[u64]) {
        let mut r = self
            .gc
            .restart_roots
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        r.clear();
        r.extend_from_slice(words);
    }

    /// A copy of this thread's restart roots (see [`StmThread::set_restart_roots`]).
    pub fn restart_roots(&self) -> Vec<u64> {
        self.gc
            .restart_roots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Sets the caller's "site" id (`SegmentInfo::site`) that the next conflict logged by
    /// this segment's barriers will carry.
    pub fn set_site(&mut self, site: u32) {
        self.ensure_active();
        self.stm.mem.info(self.seg).site.store(site, Relaxed);
    }

    /// Starts a transaction: takes the segment this thread kept since its last transaction,
    /// or a free one (waiting while none is), points `%gs` at it, and bumps the read version
    /// (resetting all markers on wrap-around).
    pub fn begin(&mut self) {
        if self.seg != 0 {
            panic!("stmjit: begin() called inside a transaction");
        }
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        let kept = std::mem::take(&mut self.kept);
        let seg = if kept != 0 && stm.reclaim_segment(kept, self.token) {
            kept
        } else {
            let t0 = stm.tracer().map(|_| std::time::Instant::now());
            let (seg, waited) = stm.acquire_segment(self.last_seg);
            if let (Some(t), Some(t0), true) = (stm.tracer(), t0, waited) {
                t.span_since(crate::trace::SpanKind::SegmentWait, t0);
            }
            self.slice_start = Instant::now();
            seg
        };
        self.seg = seg;
        self.activate();
        let info = stm.mem.info(seg);
        let mut rv = info.read_version.load(Relaxed);
        if rv == u8::MAX {
            stm.reset_markers(seg);
            rv = 0;
        }
        info.read_version.store(rv + 1, SeqCst);
        let start = self.retained_start.take().unwrap_or_else(crate::ticks::now);
        stm.segs[seg].start_time.store(start, SeqCst);
        // A read first: the atomic write would take the line from the cores that signal us.
        if info.safe_point_request.load(SeqCst) & REQUEST_ABORT != 0 {
            info.safe_point_request.fetch_and(!REQUEST_ABORT, SeqCst);
        }
        self.set_budget(stm.config.budget);
        debug_assert!(self.gc.modified.is_empty());
        self.gc.seg.store(seg, Relaxed); // seen by a collector only after our next safe point (SeqCst)
        let seq = (stm.tx_state(seg) >> SEQ_SHIFT) + 1;
        stm.segs[seg]
            .tx_state
            .store((seq << SEQ_SHIFT) | IN_TX, SeqCst);
        self.tx_pages = 0;
        if let Some(t) = stm.tracer() {
            self.trace_tx = Some(OpenTx {
                start_ns: t.now(),
                inevitable_ns: None,
            });
        }
        if stm.config.commit_log {
            // Markers from earlier transactions hold older read versions: no conflict.
            let c = self.validate();
            debug_assert!(c.is_none());
        }
    }

    /// Records the end of the running transaction in the trace (before its segment is
    /// released: its number is read from there). Inline, so that with tracing off a commit
    /// pays one test, not a call with its prologue (18 instructions under callgrind).
    #[inline(always)]
    fn trace_end(&mut self, outcome: Outcome, conflict: Option<ConflictInfo>, bytes: u64) {
        if self.trace_tx.is_some() {
            self.trace_end_record(outcome, conflict, bytes);
        }
    }

    /// [`StmThread::trace_end`] when a record is open.
    #[inline(never)]
    fn trace_end_record(&mut self, outcome: Outcome, conflict: Option<ConflictInfo>, bytes: u64) {
        let Some(t) = self.stm.tracer() else { return };
        let Some(open) = self.trace_tx.take() else {
            return;
        };
        t.push(Event::Transaction(TxRecord {
            start_ns: open.start_ns,
            end_ns: t.now(),
            segment: self.seg as u32,
            seq: self.transaction_seq(),
            outcome,
            inevitable_ns: open.inevitable_ns,
            conflict: conflict.map(Box::new),
            noticed_site: u32::MAX,
            injected: false,
            bytes_written: bytes,
            pages_privatized: u32::try_from(self.tx_pages).unwrap_or(u32::MAX),
        }));
    }

    /// Commits: brings the other segments to a safe point, detects write-read conflicts,
    /// publishes the modified objects and cards into segment 0 and into the other segments'
    /// private copies of their pages, releases the write locks and re-sets the write-barrier
    /// flags. `Err` if the transaction had been doomed (or must yield to an inevitable reader).
    pub fn commit(&mut self) -> Result<(), Abort> {
        self.commit_inner(None)
    }

    /// Like [`StmThread::commit`], and runs `on_commit` exactly once iff the commit succeeds,
    /// at the transaction's serialization point, while no other transaction can be committing
    /// (writers: world stopped, commit mutex held; read-only: after the doom check, still
    /// RUNNING). So effects appended there (e.g. buffered `print` output to a global queue)
    /// appear in commit order. `on_commit` must be short, must not call into this runtime,
    /// and must not wait for other transactions.
    ///
    /// With the commit log, writers run `on_commit` right after appending their entry,
    /// still holding the log's append mutex, so effects appear in log order; a read-only
    /// transaction first validates to the newest entry under that mutex (so it serializes
    /// after every commit whose effects are already out). Use [`StmThread::commit`] when
    /// there is nothing to do: a read-only commit then takes no global lock.
    pub fn commit_with(&mut self, on_commit: &mut dyn FnMut()) -> Result<(), Abort> {
        self.commit_inner(Some(on_commit))
    }

    fn commit_inner(&mut self, on_commit: Option<&mut dyn FnMut()>) -> Result<(), Abort> {
        if self.seg == 0 {
            panic!("stmjit: commit() called outside a transaction");
        }
        self.enter()?;
        // Promote the survivors first: they become `New` records published below.
        self.minor_collection();
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        let me = self.seg;
        if stm.config.commit_log {
            return self.commit_logged(on_commit);
        }
        if self.gc.modified.is_empty() {
            // Read-only fast path: nothing to publish or unlock. While we are RUNNING no commit
            // runs (so no write-read doom can arrive) and, holding no lock, nobody dooms us
            // for write-write: not being doomed now means our reads were consistent.
            let st = stm.tx_state(me);
            if st & DOOMED != 0 {
                return Err(self.abort_now(doom_cause(st)));
            }
            self.finish_commit(st);
            // Still RUNNING: no writer commit is in its world-stopped phase.
            if let Some(f) = on_commit {
                f();
            }
            self.trace_end(Outcome::Committed, None, 0);
            self.release();
            self.maybe_major();
            return Ok(());
        }
        // No commit while another transaction is inevitable (I5 of `docs/COMMITLOG.md`, as
        // with the log): it must never abort, and it reads without markers where JIT code
        // kept them from before a boundary (`jit/src/compile/barriers.rs`, "Marks across
        // calls"), so nothing may be published over its snapshot. Checked with the world
        // stopped: no segment becomes inevitable meanwhile (only a RUNNING one can).
        let (world, guard, st) = loop {
            stm.enter_safe(me);
            let guard = stm.commit_mutex.lock().unwrap_or_else(|e| e.into_inner());
            stm.stop_the_world(me);
            let world = WorldStopped(stm);
            // From here until resume_world no other segment runs: we have exclusive access
            // to every segment's memory and the doom flags are stable.
            let st = stm.tx_state(me);
            if st & DOOMED != 0 {
                let a = self.abort_now(doom_cause(st));
                drop(world);
                drop(guard);
                return Err(a);
            }
            let inev = stm.inevitable.load(SeqCst) as usize;
            if inev == 0 || inev == me {
                break (world, guard, st);
            }
            drop(world);
            drop(guard);
            stm.enter_running(me);
            self.wait_for_inevitable(inev)?;
        };
        let n = stm.num_segments();
        // Write-read conflicts: doom the readers.
        for k in 1..=n {
            if k == me || stm.tx_state(k) & (IN_TX | DOOMED) != IN_TX {
                continue;
            }
            let rv = stm.mem.info(k).read_version.load(SeqCst);
            for rec in &self.gc.modified {
                if rec.kind == ModKind::New || stm.marker_at(k, rec.addr) != rv {
                    continue;
                }
                let type_id = stm.type_id_in(0, rec.obj);
                let info = ConflictInfo {
                    kind: ConflictKind::WriteRead,
                    object: rec.obj,
                    addr: rec.addr,
                    type_id,
                    winner: Side::wrote(rec.site),
                    loser: Side::read(stm.read_site_at(k, rec.addr)),
                    winner_segment: me as u32,
                    winner_seq: st >> SEQ_SHIFT,
                };
                if stm.doom(k, AbortCause::WriteRead, None, Some(info))
                    == crate::contention::Doom::Newly
                {
                    stm.stats.log_conflict(Conflict {
                        kind: ConflictKind::WriteRead,
                        winner_segment: me as u32,
                        loser_segment: k as u32,
                        object: rec.addr,
                        site: rec.site,
                        type_id,
                    });
                }
                break;
            }
        }
        // Re-set the write-barrier flags in our copy, then publish.
        for rec in &self.gc.modified {
            if rec.kind != ModKind::Card {
                // SAFETY: the object lies in our segment's mapped old space and no other
                // thread runs (world stopped).
                unsafe {
                    crate::nursery::update_flags(
                        stm.mem.addr(me, rec.addr) as u64,
                        WRITE_BARRIER_FLAG as u32,
                        crate::nursery::NEW_FLAG,
                    )
                };
            }
        }
        for rec in &self.gc.modified {
            stm.publish(me, rec.addr, rec.len);
        }
        // Bytes of old objects and cards written, for the trace: summed in the loop that
        // visits them anyway (a second pass cost the trace 60 instructions per commit).
        let mut bytes = 0;
        for rec in &self.gc.modified {
            if rec.kind != ModKind::New {
                let ok = stm.locks.cas(rec.addr, lock_word(me, st), 0);
                assert!(
                    ok,
                    "stmjit: internal error: lost a write lock while not doomed"
                );
                bytes += rec.len;
            }
        }
        self.gc.modified.clear();
        // Leave IN_TX before resuming the world, so no later committer checks our markers.
        self.finish_commit(st);
        if let Some(f) = on_commit {
            f();
        }
        drop(world);
        drop(guard);
        self.trace_end(Outcome::Committed, None, bytes);
        self.release();
        self.maybe_major();
        Ok(())
    }

    /// Commit with the commit log (after the minor collection): see `commitlog.rs`. Never
    /// waits for another segment, except while another transaction is inevitable.
    fn commit_logged(&mut self, mut on_commit: Option<&mut dyn FnMut()>) -> Result<(), Abort> {
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        let me = self.seg;
        if self.gc.modified.is_empty() {
            // Read-only: every read came from one snapshot, validated whenever it moved:
            // nothing to check. With an effect to order, serialize after the newest entry.
            let guard = match on_commit {
                Some(_) => {
                    let g = stm.log.append.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(c) = self.validate() {
                        drop(g);
                        return Err(self.abort_validated(c));
                    }
                    Some(g)
                }
                None => None,
            };
            let st = stm.tx_state(me);
            if st & DOOMED != 0 {
                drop(guard);
                return Err(self.abort_now(doom_cause(st)));
            }
            self.finish_commit(st);
            if let Some(f) = on_commit.as_mut() {
                f();
            }
            drop(guard);
            self.trace_end(Outcome::Committed, None, 0);
            self.release();
            self.maybe_major();
            return Ok(());
        }
        // Re-set the write-barrier flags in our copy (the entry carries them), then copy the
        // new contents: our records are locked (or new), so no import changes them.
        for rec in &self.gc.modified {
            if rec.kind != ModKind::Card {
                // SAFETY: the object lies in our segment's mapped old space, written only by
                // this thread (we hold its lock, or allocated it).
                unsafe {
                    crate::nursery::update_flags(
                        stm.mem.addr(me, rec.addr) as u64,
                        WRITE_BARRIER_FLAG as u32,
                        crate::nursery::NEW_FLAG,
                    )
                };
            }
        }
        let entry = crate::commitlog::Unappended::new(&stm.log, self.build_entry());
        let bytes = if stm.tracer().is_some() {
            self.gc
                .modified
                .iter()
                .filter(|r| r.kind != ModKind::New)
                .map(|r| r.len)
                .sum()
        } else {
            0
        };
        loop {
            let guard = stm.log.append.lock().unwrap_or_else(|e| e.into_inner());
            let inev = stm.inevitable.load(SeqCst) as usize;
            if inev != 0 && inev != me {
                // It must never abort: nothing may be appended over what it read, or will.
                drop(guard);
                self.wait_for_inevitable(inev)?;
                continue;
            }
            if let Some(c) = self.validate() {
                drop(guard);
                return Err(self.abort_validated(c));
            }
            let s = &stm.segs[me].tx_state;
            let st = s.load(SeqCst);
            if st & DOOMED != 0
                || s.compare_exchange(st, st | COMMITTING, SeqCst, SeqCst)
                    .is_err()
            {
                // Only a doom changes our state meanwhile.
                drop(guard);
                let st = stm.tx_state(me);
                return Err(self.abort_now(doom_cause(st)));
            }
            let e = entry.append(&stm.stats);
            stm.segs[me].last.store(e, Release);
            for rec in &self.gc.modified {
                if rec.kind != ModKind::New {
                    let ok = stm.locks.cas(rec.addr, lock_word(me, st), 0);
                    assert!(
                        ok,
                        "stmjit: internal error: lost a write lock while committing"
                    );
                }
            }
            self.gc.modified.clear();
            self.gc.backups.clear();
            self.finish_commit(st);
            if let Some(f) = on_commit.as_mut() {
                f();
            }
            drop(guard);
            break;
        }
        // Ask the others to validate at their next safe point (no waiting). The request bit
        // of a segment asked already (it has not validated since) is not set again, and
        // `mark_budget` writes only a budget not marked yet (a mark the owner's decrement
        // lost is made again): the owner writes these words at its polls, so each needless
        // atomic write here would move their cache lines between cores.
        for k in 1..=stm.num_segments() {
            if k != me && stm.tx_state(k) & IN_TX != 0 {
                let req = &stm.mem.info(k).safe_point_request;
                if req.load(SeqCst) & REQUEST_VALIDATE == 0 {
                    req.fetch_or(REQUEST_VALIDATE, SeqCst);
                }
                stm.mark_budget(k);
            }
        }
        if stm.log_due() {
            stm.advance_log();
        }
        self.trace_end(Outcome::Committed, None, bytes);
        self.release();
        self.maybe_major();
        Ok(())
    }

    /// The log entry of this transaction: every modified record of an object committed
    /// before it (objects, cards) with its current contents in our segment, and every object
    /// it allocated without them: those are put in segment 0 instead (`Stm::push_new`), so
    /// that a transaction building a large structure does not copy it a second time into
    /// the log, nor keep that copy until every segment has imported it.
    ///
    /// Small objects allocated one after the other in one size class's page are adjacent:
    /// their `New` records are merged into one range (a [`crate::commitlog::Rec`] whose `obj`
    /// is the first object; the major collection walks the objects of the range). A loop of
    /// 500 000 `q.add` committed one entry of 833 000 records (39 MiB) before; importing,
    /// applying and scanning it now visits a few thousand ranges.
    fn build_entry(&mut self) -> *mut crate::commitlog::Entry {
        use crate::commitlog::{Rec, NO_BYTES};
        use crate::gcpage::{NUM_CLASSES, SMALL_MAX};
        use crate::layout::GRANULE;
        let stm = &*self.stm;
        let me = self.seg;
        // Records first, in a buffer kept across commits: the entry is then allocated at its
        // final size, records and contents in one block.
        let mut recs = std::mem::take(&mut self.gc.entry_recs);
        recs.clear();
        let mut nbytes = 0;
        // The last `New` range of each small size class (index in `recs`), which the next
        // object of that class extends if it starts where the range ends. Large objects and
        // objects of different sizes are never merged (the major collection steps through a
        // range by the size of each object, which is its size class's).
        // Filled at the first `New` record: a commit that allocated nothing pays nothing.
        let mut open: Option<[usize; NUM_CLASSES + 1]> = None;
        for r in &self.gc.modified {
            let off = if r.kind == ModKind::New {
                if r.len <= SMALL_MAX {
                    let open = open.get_or_insert([usize::MAX; NUM_CLASSES + 1]);
                    let c = (r.len / GRANULE) as usize;
                    if let Some(o) = recs.get_mut(open[c]) {
                        if o.addr + o.len == r.addr {
                            o.len += r.len;
                            continue;
                        }
                    }
                    open[c] = recs.len();
                }
                NO_BYTES
            } else {
                nbytes += r.len as usize;
                nbytes - r.len as usize
            };
            recs.push(Rec {
                addr: r.addr,
                len: r.len,
                off,
                kind: r.kind,
                obj: r.obj,
                site: r.site,
            });
        }
        for r in recs.iter().filter(|r| r.kind == ModKind::New) {
            stm.push_new(me, r.addr, r.len);
        }
        let e = stm
            .log
            .new_entry(me, stm.tx_state(me) >> SEQ_SHIFT, &recs, nbytes, |bytes| {
                for r in recs.iter().filter(|r| r.off != NO_BYTES) {
                    // SAFETY: the range is in our segment's mapped old space; only we write it.
                    let src = unsafe {
                        std::slice::from_raw_parts(stm.mem.addr(me, r.addr), r.len as usize)
                    };
                    bytes[r.off..r.off + r.len as usize].copy_from_slice(src);
                }
            });
        self.gc.entry_recs = recs;
        e
    }

    /// A writer commit (either mode): waits at a safe point until segment `inev` is no longer inevitable (with
    /// [`crate::WaitPolicy::AbortSelf`]: aborts instead). `Err` if aborted meanwhile.
    fn wait_for_inevitable(&mut self, inev: usize) -> Result<(), Abort> {
        let stm = self.stm.clone();
        Stats::add(&stm.stats.inevitable_waits, 1);
        match stm.config.wait_policy {
            crate::stm::WaitPolicy::AbortSelf => {
                let first = self.gc.modified.first();
                let obj = first.map_or(0, |r| r.obj);
                let info = ConflictInfo {
                    kind: ConflictKind::WriteRead,
                    object: obj,
                    addr: first.map_or(0, |r| r.addr),
                    loser: Side::wrote(first.map_or(NO_SITE, |r| r.site)),
                    type_id: if obj != 0 {
                        stm.type_id_in(self.seg, obj)
                    } else {
                        0
                    },
                    winner: Side::was_at(stm.mem.info(inev).site.load(SeqCst)),
                    winner_segment: inev as u32,
                    winner_seq: stm.tx_state(inev) >> SEQ_SHIFT,
                };
                Err(self.abort_with(AbortCause::WriteRead, Some(info)))
            }
            crate::stm::WaitPolicy::Wait => {
                let t0 = Instant::now();
                let r = self.pause_until(|| stm.inevitable.load(SeqCst) as usize != inev);
                Stats::add(&stm.stats.paused_ns, t0.elapsed().as_nanos() as u64);
                if let Some(t) = stm.tracer() {
                    t.span_since(SpanKind::InevitableWait, t0);
                }
                r
            }
        }
    }

    /// Runs a major collection if the allocated volume calls for one (after a commit).
    fn maybe_major(&mut self) {
        if self.stm.major_due() {
            self.collect_major_outside();
        }
    }

    /// Major collection from a thread that is not RUNNING its own segment: any segment this
    /// OS thread has active (another handle's) is set SAFE meanwhile.
    fn collect_major_outside(&mut self) {
        let (p, s) = ACTIVE.with(|a| a.get());
        let other = p == Arc::as_ptr(&self.stm) as usize && s != 0;
        if other {
            self.stm.enter_safe(s);
        }
        self.stm.major_collection();
        if other {
            self.stm.enter_running(s);
        }
    }

    /// Runs a major collection now (also done automatically when the allocated volume
    /// exceeds the threshold). Inside a transaction the transaction pauses at a safe point
    /// meanwhile; `Err` if it was doomed during the pause. Nothing moves.
    pub fn collect_major(&mut self) -> Result<(), Abort> {
        if self.seg == 0 {
            self.collect_major_outside();
            return Ok(());
        }
        self.major_from_transaction()
    }

    /// Major collection from inside a transaction (allocation slow path or explicit).
    pub(crate) fn major_from_transaction(&mut self) -> Result<(), Abort> {
        self.ensure_active();
        self.stm.enter_safe(self.seg);
        self.stm.major_collection();
        self.stm.enter_running(self.seg);
        self.enter()
    }

    fn finish_commit(&mut self, st: u64) {
        let stm = &self.stm;
        let me = self.seg;
        if st & INEVITABLE != 0 {
            stm.inevitable.store(0, SeqCst);
        }
        self.leave_commit_phase();
        stm.segs[me]
            .tx_state
            .store(st & !((1 << SEQ_SHIFT) - 1), SeqCst);
        // Only if set (usually not): see `begin`.
        let spr = &stm.mem.info(me).safe_point_request;
        if spr.load(SeqCst) & REQUEST_ABORT != 0 {
            spr.fetch_and(!REQUEST_ABORT, SeqCst);
        }
        SegCounters::bump(&stm.segs[me].counters.commits, 1);
        self.retained_start = None;
    }

    /// Aborts the running transaction on request of the caller and returns the status to
    /// propagate. Panics on an inevitable transaction (it cannot be undone).
    pub fn abort(&mut self) -> Abort {
        self.ensure_active();
        self.abort_now(AbortCause::Explicit)
    }

    /// Rolls back: restores every modified object and card from segment 0 (the committed
    /// version), releases the write locks we still own, and leaves the segment. The caller
    /// must have exclusive access to the segment (RUNNING, or world stopped by us). The
    /// conflict information is what the doomer left in our slot (none for explicit aborts).
    pub(crate) fn abort_now(&mut self, cause: AbortCause) -> Abort {
        let left = self.stm.segs[self.seg]
            .conflict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let info = if cause == AbortCause::Explicit {
            None
        } else {
            left
        };
        self.abort_with(cause, info)
    }

    /// [`StmThread::abort_now`] with the conflict information given by the caller (when we
    /// abort ourselves on finding the conflict).
    pub(crate) fn abort_with(
        &mut self,
        cause: AbortCause,
        mut conflict: Option<ConflictInfo>,
    ) -> Abort {
        let stm = self.stm.clone();
        let me = self.seg;
        let st = stm.tx_state(me);
        if st & INEVITABLE != 0 {
            panic!("stmjit: an inevitable transaction cannot be aborted");
        }
        if let Some(c) = conflict.as_mut() {
            self.own_write_side(c);
        }
        for rec in self.gc.modified.iter().rev() {
            if rec.kind != ModKind::New && stm.config.commit_log {
                // Segment 0 may lag behind our snapshot: restore the backup, which holds
                // our snapshot's contents (validation never moves the snapshot past an entry
                // that wrote a range we modified: we set its read marker).
                let b = &self.gc.backups[rec.backup..rec.backup + rec.len as usize];
                // SAFETY: the range is in our segment's mapped old space, private (we wrote
                // it), and only this thread writes it.
                unsafe {
                    std::ptr::copy_nonoverlapping(b.as_ptr(), stm.mem.addr(me, rec.addr), b.len())
                };
            } else if rec.kind != ModKind::New {
                // SAFETY: both ranges are mapped (old space of segments 0 and me), distinct,
                // and no commit runs concurrently (we are RUNNING or hold the world).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        stm.mem.addr(0, rec.addr),
                        stm.mem.addr(me, rec.addr),
                        rec.len as usize,
                    )
                };
            }
        }
        for rec in &self.gc.modified {
            if rec.kind != ModKind::New {
                // Fails harmlessly if an older transaction took the lock over.
                stm.locks.cas(rec.addr, lock_word(me, st), 0);
            }
        }
        self.gc_abort();
        self.gc.modified.clear();
        self.gc.backups.clear();
        self.leave_commit_phase();
        self.trace_end(Outcome::Aborted(cause), conflict, 0);
        stm.segs[me]
            .tx_state
            .store(st & !((1 << SEQ_SHIFT) - 1), SeqCst);
        stm.mem
            .info(me)
            .safe_point_request
            .fetch_and(!REQUEST_ABORT, SeqCst);
        stm.stats.count_abort(cause);
        self.retained_start = Some(stm.segs[me].start_time.load(SeqCst));
        // A doom that raced with this self-abort must not leak into a later transaction.
        *stm.segs[me]
            .conflict
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        self.release();
        let a = Abort { cause, conflict };
        self.last_abort = Some(a);
        a
    }

    /// Fills in the aborted side of a write/write conflict that its winner could not name
    /// (it dooms a lock holder, whose write records are private to the holder): where this
    /// transaction wrote the object, from its own records, before they are dropped.
    fn own_write_side(&self, c: &mut ConflictInfo) {
        if c.kind != ConflictKind::WriteWrite || c.loser.site != NO_SITE {
            return;
        }
        if let Some(rec) = self.gc.modified.iter().find(|r| r.addr == c.addr) {
            c.loser = Side::wrote(rec.site);
        }
    }

    /// Makes the running transaction inevitable: it will not be aborted by conflicts (others
    /// yield to it). At most one at a time; waits (or, with `WaitPolicy::AbortSelf`, aborts)
    /// while another one is inevitable.
    pub fn become_inevitable(&mut self) -> Result<(), Abort> {
        self.enter()?;
        let stm = self.stm.clone();
        let me = self.seg;
        if stm.tx_state(me) & INEVITABLE != 0 {
            return Ok(());
        }
        if stm.config.commit_log {
            return self.become_inevitable_logged();
        }
        while stm
            .inevitable
            .compare_exchange(0, me as u8, SeqCst, SeqCst)
            .is_err()
        {
            match stm.config.wait_policy {
                crate::stm::WaitPolicy::AbortSelf => {
                    return Err(self.abort_now(AbortCause::WriteWrite))
                }
                crate::stm::WaitPolicy::Wait => {
                    let t0 = std::time::Instant::now();
                    self.pause_until(|| stm.inevitable.load(SeqCst) == 0)?;
                    if let Some(t) = stm.tracer() {
                        t.span_since(SpanKind::InevitableWait, t0);
                    }
                }
            }
        }
        let s = &stm.segs[me].tx_state;
        let mut st = s.load(SeqCst);
        loop {
            if st & DOOMED != 0 {
                stm.inevitable.store(0, SeqCst);
                return Err(self.abort_now(doom_cause(st)));
            }
            match s.compare_exchange(st, st | INEVITABLE, SeqCst, SeqCst) {
                Ok(_) => {
                    if let (Some(t), Some(open)) = (stm.tracer(), self.trace_tx.as_mut()) {
                        open.inevitable_ns = std::num::NonZeroU64::new(t.now().max(1));
                    }
                    return Ok(());
                }
                Err(x) => st = x,
            }
        }
    }

    /// [`StmThread::become_inevitable`] with the commit log: validates to the newest entry
    /// and takes the inevitable slot under the append mutex, so that no entry is ever
    /// appended after its snapshot by another transaction while it is inevitable.
    fn become_inevitable_logged(&mut self) -> Result<(), Abort> {
        let stm = self.stm.clone();
        let me = self.seg;
        loop {
            let guard = stm.log.append.lock().unwrap_or_else(|e| e.into_inner());
            if stm.inevitable.load(SeqCst) != 0 {
                drop(guard);
                match stm.config.wait_policy {
                    crate::stm::WaitPolicy::AbortSelf => {
                        return Err(self.abort_now(AbortCause::WriteWrite))
                    }
                    crate::stm::WaitPolicy::Wait => {
                        Stats::add(&stm.stats.inevitable_waits, 1);
                        let t0 = Instant::now();
                        let r = self.pause_until(|| stm.inevitable.load(SeqCst) == 0);
                        Stats::add(&stm.stats.paused_ns, t0.elapsed().as_nanos() as u64);
                        if let Some(t) = stm.tracer() {
                            t.span_since(SpanKind::InevitableWait, t0);
                        }
                        r?;
                        continue;
                    }
                }
            }
            if let Some(c) = self.validate() {
                drop(guard);
                return Err(self.abort_validated(c));
            }
            let s = &stm.segs[me].tx_state;
            let mut st = s.load(SeqCst);
            loop {
                if st & DOOMED != 0 {
                    drop(guard);
                    return Err(self.abort_now(doom_cause(st)));
                }
                match s.compare_exchange(st, st | INEVITABLE, SeqCst, SeqCst) {
                    Ok(_) => break,
                    Err(x) => st = x,
                }
            }
            stm.inevitable.store(me as u8, SeqCst);
            if let (Some(t), Some(open)) = (stm.tracer(), self.trace_tx.as_mut()) {
                open.inevitable_ns = std::num::NonZeroU64::new(t.now().max(1));
            }
            return Ok(());
        }
    }

    /// Enters the running transaction's *commit phase*, for writes that must be done last,
    /// right before [`StmThread::commit`] (the JIT inserts a transaction's new dict keys
    /// there, so that inserting different keys does not conflict). Waits, at a safe point,
    /// while another transaction is in its commit phase or inevitable (an inevitable waiter
    /// dooms each transaction it finds in the phase); the phase ends with the commit or the
    /// abort. Meanwhile the transaction wins write-write conflicts against older ones
    /// too (contention rules in `contention.rs`): others wait for it instead of dooming a
    /// transaction that is about to commit. `Err` if the transaction was doomed.
    pub fn enter_commit_phase(&mut self) -> Result<(), Abort> {
        self.enter()?;
        let stm = self.stm.clone();
        let me = self.seg;
        loop {
            if stm.finishing.load(SeqCst) as usize == me {
                return Ok(());
            }
            let inev = stm.inevitable.load(SeqCst) as usize;
            if inev != 0 && inev != me {
                // Our commit would wait for the inevitable transaction anyway; holding the
                // phase meanwhile would keep it from that transaction if it wants the phase:
                // it would doom us, and we would take the phase again before it looked
                // (it starved, 3 threads in a tight loop of commit phases beside it).
                self.wait_for_inevitable(inev)?;
                continue;
            }
            if stm
                .finishing
                .compare_exchange(0, me as u8, SeqCst, SeqCst)
                .is_ok()
            {
                return Ok(());
            }
            let f = stm.finishing.load(SeqCst) as usize;
            if f == 0 {
                continue;
            }
            // The holder's transaction: its segment's next one may take the phase again
            // before this thread sees it free.
            let held = stm.tx_state(f) >> SEQ_SHIFT;
            if stm.tx_state(me) & INEVITABLE != 0 {
                // Its commit would wait for us (in either mode): it yields instead (with the
                // commit log, refused only while it appends, which ends soon). We run here,
                // so no commit has stopped the world meanwhile.
                stm.doom(f, AbortCause::WriteWrite, None, None);
            }
            let t0 = std::time::Instant::now();
            // Until the holder changes, not only until the phase is free: another transaction
            // (of another segment, or the next one of the same segment, whose number is the
            // same) may take it between our compare-and-swap and this wait, or during one
            // sleep of it; if we are inevitable, its commit then waits for us while we wait
            // for it (dictfill 1000000 on 2 threads hung so, about one run in five under
            // load): it must be doomed too.
            self.pause_until(|| {
                stm.finishing.load(SeqCst) as usize != f || stm.tx_state(f) >> SEQ_SHIFT != held
            })?;
            if let Some(t) = stm.tracer() {
                t.span_since(SpanKind::CommitPhaseWait, t0);
            }
        }
    }

    /// Waits at a safe point (so that commits can proceed meanwhile) until `cond` holds or
    /// this transaction is doomed; `Err` (after rolling back) if it was doomed.
    fn pause_until(&mut self, cond: impl Fn() -> bool) -> Result<(), Abort> {
        let stm = self.stm.clone();
        let me = self.seg;
        stm.enter_safe(me);
        crate::safepoint::wait_until(|| cond() || stm.tx_state(me) & DOOMED != 0);
        stm.enter_running(me);
        let st = stm.tx_state(me);
        if st & DOOMED != 0 {
            return Err(self.abort_now(doom_cause(st)));
        }
        Ok(())
    }

    /// Ends the commit phase if this transaction is in it (at commit and abort).
    fn leave_commit_phase(&self) {
        // A read first: a compare-and-swap at every commit would take the shared word's
        // cache line from the other cores even when it fails (it usually does).
        let f = &self.stm.finishing;
        if f.load(SeqCst) == self.seg as u8 {
            let _ = f.compare_exchange(self.seg as u8, 0, SeqCst, SeqCst);
        }
    }

    /// Runs `f` as one transaction, retrying after every abort, and returns its result.
    /// `f` must propagate the `Err(Abort)` of runtime calls (with `?`).
    pub fn run<T>(&mut self, mut f: impl FnMut(&mut StmThread) -> Result<T, Abort>) -> T {
        loop {
            self.begin();
            match f(self) {
                Ok(v) => {
                    if self.commit().is_ok() {
                        return v;
                    }
                }
                Err(_) => {
                    if self.seg != 0 {
                        // f returned an Abort obtained earlier without the runtime rolling
                        // this transaction back; do it now.
                        self.abort();
                    }
                }
            }
        }
    }
}

/// Resumes the world when dropped, also on unwinding (a panic inside a commit must not leave
/// every other thread parked forever).
pub(crate) struct WorldStopped<'a>(pub(crate) &'a Stm);

impl Drop for WorldStopped<'_> {
    fn drop(&mut self) {
        self.0.resume_world();
    }
}

impl Drop for StmThread {
    fn drop(&mut self) {
        if self.seg != 0 {
            self.ensure_active();
            if self.is_inevitable() {
                let _ = self.commit();
            } else {
                self.abort_now(AbortCause::Explicit);
            }
        }
        self.give_back();
        let me = &*self.gc as *const crate::nursery::ThreadGc as usize;
        let mut t = self.stm.gc.threads.lock().unwrap();
        if let Some(i) = t.iter().position(|&p| p == me) {
            t.swap_remove(i);
        }
        drop(t);
        // No collector sees this thread's stack any more: it may serve the next thread.
        if let Some(r) = self.gc.region.take() {
            if r.recyclable(self.stm.thread_reserve_bytes() / 8) {
                let mut pool = self.stm.gc.shadow_pool.lock().unwrap();
                if pool.len() < crate::shadowstack::POOLED_STACKS {
                    pool.push(r);
                }
            }
        }
    }
}

impl Stm {
    /// The read marker in segment `k` of the granule of `a`.
    #[inline]
    pub(crate) fn marker_at(&self, k: usize, a: u64) -> u8 {
        // SAFETY: markers of the old space are mapped in every transaction segment.
        unsafe { std::ptr::read_volatile(self.mem.addr(k, a >> crate::layout::MARKER_SHIFT)) }
    }

    /// Copies `[addr, addr+len)` from segment `me` into segment 0 (if our page is private;
    /// otherwise our writes already went to the shared file) and into every other segment
    /// whose copy of the page is private. World stopped.
    pub(crate) fn publish(&self, me: usize, addr: u64, len: u64) {
        let end = addr + len;
        let mut a = addr;
        while a < end {
            let page_end = (a / PAGE_SIZE + 1) * PAGE_SIZE;
            let b = end.min(page_end);
            let p = self.page_index(a);
            let src = self.mem.addr(me, a);
            for k in 0..=self.num_segments() {
                if k == me || (k == 0 && !self.segs[me].private.get(p)) {
                    continue;
                }
                if k == 0 || self.segs[k].private.get(p) {
                    // SAFETY: distinct mapped ranges of the same old-space bytes in two
                    // segments; the world is stopped so nobody else touches them.
                    unsafe {
                        std::ptr::copy_nonoverlapping(src, self.mem.addr(k, a), (b - a) as usize)
                    };
                }
            }
            a = b;
        }
    }
}
