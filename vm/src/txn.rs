//! Transactions under JIT code: boundaries (commit + begin), abort unwinding and restart,
//! buffered output written in commit order, the `--gil` hand-over, and the figures of
//! `--stats` that only the JIT knows (both sides of a conflict, time lost).
//!
//! # Boundaries and restart points
//! A *boundary* commits the running transaction and begins the next one. JIT code makes one
//! at a poll (loop back-edges and function entries) when the transaction's budget (a counter
//! in the segment-info page, decremented inline) runs out, or when the runtime asks. The
//! frame that made it becomes the transaction's *opener* (`Ctx::txn_depth`): its shadow-stack
//! slots (every local and temporary: JIT code keeps nothing else live across a poll) are
//! copied into the thread's restart roots, and the poll's number is its restart point.
//!
//! An abort is reported by a runtime call of any frame as [`Unwind::Aborted`]; JIT code
//! unwinds as for an error, without trace entries, until the opener's error path sees
//! `txn_depth == depth` and jumps to its restart block: the slots are copied back, a new
//! transaction begins, and execution resumes right after the poll. No longjmp, no Rust frame
//! skipped: every frame in between returned normally.
//!
//! The opener must stay live: returning from it is a boundary too ([`stmjit_return_boundary`]).
//! The transaction that follows has no restart point in the caller (a call site is not a
//! point where all live values are in slots), so it is made *inevitable* (it cannot abort)
//! and ends at the caller's next poll, which starts a normal one. The same holds after the
//! helpers that must commit before waiting (`join`, `TransactionQueue.run`), except a join
//! statement compiled with a restart point at its start (`threads::stmjit_join_at`): the
//! transaction after its wait restarts there. An exception
//! that leaves the opener makes the running transaction inevitable there, without restart
//! point (`Runtime::exception_leaves`); one caught before it does not change it. The thread's
//! driver (depth 0) is the opener of the first transaction: its restart re-runs the call.

#[cfg(doc)]
use super::Unwind;
use super::{rt_of, Aborted, Ctx, Mode, Runtime, ERR, RESTART};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;
use std::time::Instant;
use stmjit_runtime::transaction::Abort;
use stmjit_runtime::value::{Word, NONE};
use stmjit_runtime::{Side, NO_SITE};

/// `Ctx::txn_depth` of a transaction without restart point (inevitable).
pub const NO_OPENER: u64 = u64::MAX;

/// Transaction length (loop back-edges and calls) when none is given: long enough that
/// the minor collection of each commit does not promote short-lived objects (binary trees
/// ran 1.9x slower with 20 000), adaptive below it (halved after each abort).
pub const DEFAULT_BUDGET: i64 = 1_000_000;
/// The budget never shrinks below this after aborts.
const MIN_BUDGET: i64 = 16;

/// The global lock of `--gil` is the interpreter's: a ticket lock, so that threads take
/// turns in FIFO order (a plain mutex lets the releasing thread take it straight back).
pub use stmjit_lang::interp::gil::Gil;

/// One row of the conflict table of `--stats`: what, on which type, and each side's site
/// and what it names (the runtime's [`stmjit_runtime::ConflictInfo`] sides).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConflictKey {
    /// `write/read` or `write/write`.
    pub kind: &'static str,
    /// Type name of the object.
    pub type_name: String,
    /// The winner's side (site [`NO_SITE`] when unknown).
    pub winner: Side,
    /// The aborted transaction's side: where it read or wrote the object when the runtime
    /// knew; otherwise ([`stmjit_runtime::Access::WasAt`]) where it learnt of the abort, the innermost site
    /// of its unwinding ([`NO_SITE`] when unknown).
    pub loser: Side,
}

/// The aborts of one row of the conflict table.
#[derive(Clone, Debug, Default)]
pub struct ConflictCount {
    /// Aborts.
    pub aborts: u64,
    /// Time they lost (ns).
    pub lost_ns: u64,
    /// The objects' names (`conflict_names.rs`) with their aborts: the first
    /// [`OBJECT_NAMES`] distinct ones; the aborts on others are in `other_objects`.
    pub objects: Vec<(String, u64)>,
    /// Aborts on objects without a name or past the first [`OBJECT_NAMES`].
    pub other_objects: u64,
}

/// Distinct object names kept per row of the conflict table (a dict contended on many
/// keys would otherwise grow its row without bound).
pub const OBJECT_NAMES: usize = 8;

impl ConflictCount {
    /// Counts one abort that lost `lost_ns`, on the object named `name`.
    pub fn add(&mut self, lost_ns: u64, name: Option<String>) {
        self.aborts += 1;
        self.lost_ns += lost_ns;
        match name {
            Some(n) => {
                if let Some(e) = self.objects.iter_mut().find(|(m, _)| *m == n) {
                    e.1 += 1;
                } else if self.objects.len() < OBJECT_NAMES {
                    self.objects.push((n, 1));
                } else {
                    self.other_objects += 1;
                }
            }
            None => self.other_objects += 1,
        }
    }
}

/// The figures of `--stats` that only the object model knows: the conflicts aborted
/// transactions saw (both sides, by site), the time aborts lost, the aborts injected by the
/// debug switch, the transactions that became inevitable.
#[derive(Default)]
pub struct TxnStats {
    /// Conflicts seen by aborted transactions, by kind, type and sides.
    pub conflicts: Mutex<std::collections::HashMap<ConflictKey, ConflictCount>>,
    /// Time lost to all aborts (ns): from the transaction's start to its abort.
    pub lost_ns: AtomicU64,
    /// Time committed transactions ran (ns), from their start to their commit: with
    /// `lost_ns`, the time threads spent in transactions (the base of the lost share).
    pub committed_ns: AtomicU64,
    /// Aborts injected by the debug switch.
    pub injected: AtomicU64,
    /// Transactions that became inevitable.
    pub inevitable: AtomicU64,
}

/// Per-thread transaction state.
#[derive(Debug)]
pub struct ThreadTx {
    /// The running transaction was rolled back: JIT code is unwinding to its opener.
    pub aborting: bool,
    /// When the running transaction began (time lost when it aborts); `None` when the run
    /// reports no figures (`Runtime::reports_stats`).
    pub started: Option<Instant>,
    /// Where the aborted transaction learnt of its abort (innermost trace site).
    pub abort_site: Option<u32>,
    /// Conflict of the pending abort, the time it lost and the object's name (filled by
    /// [`Runtime::note_abort`], logged once the aborted side's site is known).
    pub pending_key: Option<(ConflictKey, u64, Option<String>)>,
    /// Budget of this thread's next transaction: halved after an abort, doubled after a
    /// commit, up to the program's.
    pub budget: i64,
    /// State of the debug switch's random numbers.
    pub rng: u64,
    /// Shadow-stack slot of the driver holding the list of threads spawned by the running
    /// transaction (started after its commit); null before the driver set it up.
    pub pending_slot: *mut u64,
    /// A thread to wait for, outside any transaction, before the next one begins: set by a
    /// `join` inside an atomic block that aborted its transaction to run after the thread.
    pub wait_for_thread: Option<usize>,
    /// The running transaction assigned a class attribute: it bypasses the method caches,
    /// and its commit forgets them (see [`super::class_table::ClassTable`]).
    pub class_changed: bool,
    /// The running transaction is the rest of an atomic block that a `join` of a thread
    /// spawned in the block split (`threads::join`): later joins in it split it again
    /// rather than wait inside it. Reset by every `begin`.
    pub split_atomic: bool,
    /// The debug switch aborted at a `refresh` since the last commit: no more of those
    /// until one commits (a transaction with many lookups would otherwise never commit).
    pub refresh_injected: bool,
    /// The depth of a JIT function that Rust code is calling now (a builtin's callback, a
    /// special method: [`from_rust`]), until that function's first poll: a poll there makes
    /// no boundary. Else, once the budget ran out, that function (a `__next__` that `sum`
    /// calls) would open a transaction at its entry and end it at its return (its caller,
    /// in Rust, has no restart point), then run inevitably to the next call's entry: two
    /// transactions, one inevitable, per call for the rest of the builtin.
    pub rust_entry: Option<u64>,
}

impl Default for ThreadTx {
    fn default() -> ThreadTx {
        ThreadTx {
            aborting: false,
            started: None,
            abort_site: None,
            pending_key: None,
            budget: DEFAULT_BUDGET,
            rng: 0x9E37_79B9_7F4A_7C15,
            pending_slot: std::ptr::null_mut(),
            wait_for_thread: None,
            class_changed: false,
            split_atomic: false,
            refresh_injected: false,
            rust_entry: None,
        }
    }
}

impl Runtime {
    pub(crate) fn th(&mut self) -> &mut stmjit_runtime::StmThread {
        // SAFETY: th is this thread's live handle, used only by this thread.
        unsafe { &mut *self.th }
    }

    /// Begins a transaction (waiting for the GIL first with `--gil`) and points the helpers
    /// and the context at its segment.
    pub(crate) fn begin(&mut self, ctx: *mut Ctx) {
        if self.info.threads.deferred_len.load(Relaxed) != 0 {
            super::threads::start_deferred(&self.info, true);
        }
        if let Some(id) = self.tx.wait_for_thread.take() {
            self.detach();
            // A cycle of joins is not waited for: the restarted block's join raises it.
            let _ = super::threads::wait_done(self, id);
        }
        if self.mode == Mode::Gil {
            self.info.gil.acquire();
        }
        self.th().begin();
        let seg = self.th().segment();
        let base = self.stm.segment_base(seg);
        self.seg_base = base;
        // SAFETY: ctx is this thread's live context (or null in tests without one).
        if let Some(c) = unsafe { ctx.as_mut() } {
            c.seg_base = base;
        }
        let max = self.info.settings.budget as i64;
        self.tx.budget = self.tx.budget.clamp(MIN_BUDGET, max.max(MIN_BUDGET));
        self.set_budget(self.tx.budget);
        // Read the clock only for a report: it was two of the five clock reads of a short
        // transaction (about 4% of microtq's time).
        self.tx.started = self.reports_stats().then(Instant::now);
        self.tx.aborting = false;
        self.tx.split_atomic = false;
        self.reset_dict_overlay();
    }

    /// Sets the running transaction's budget (0: the next poll ends it), keeping a pending
    /// safe-point request visible to JIT polls (`StmThread::set_budget`).
    pub(crate) fn set_budget(&mut self, b: i64) {
        self.th().set_budget(b);
    }

    /// The budget tick of a call from Rust into JIT code (`calls::call_function`, keyword
    /// calls): functions without loops and calls have no entry poll, so a builtin that calls
    /// one many times (a sort key, a special method reached by an operator) counts and
    /// answers requests here. Never a boundary (Rust frames are live): an exhausted budget is
    /// left at 0 for the next JIT poll. `Err` after an abort (noted).
    pub(crate) fn tick(&mut self) -> Result<(), Aborted> {
        let seg = self.th().segment();
        if seg == 0 {
            return Ok(());
        }
        {
            // As JIT code's poll: a plain decrement (only this thread writes the count).
            let budget = &self.stm.segment_info(seg).budget;
            let b = budget.load(Relaxed);
            budget.store(b - 1, Relaxed);
            if b > 0 {
                return Ok(());
            }
        }
        let left = self.th().take_budget();
        if let Err(a) = self.th().poll() {
            self.note_abort(a);
            return Err(Aborted);
        }
        if left < 0 {
            self.set_budget(0);
        }
        Ok(())
    }

    /// Commits the running transaction, appending its output to the program's at the commit
    /// point. On an abort (a conflict, or the debug switch) the transaction is rolled back
    /// and `Err` returned, with [`ThreadTx::aborting`] set.
    pub(crate) fn commit(&mut self) -> Result<(), Aborted> {
        if let Err(e) = self.apply_dict_overlay() {
            self.unwind(e);
            // Out of memory while inserting the pending keys: a final error (inevitable, or
            // aborted if it was doomed); its commit has nothing left to insert.
            if self.tx.aborting || !self.error_may_stand() {
                return Err(Aborted);
            }
            super::threads::fail(self);
        }
        if self.inject_abort() {
            return Err(Aborted);
        }
        let mut out = std::mem::take(&mut self.out);
        // The text of `print`s for the trace (only when tracing: a copy).
        let traced_out = match self.stm.tracer() {
            Some(_) if !out.is_empty() => Some(String::from_utf8_lossy(&out).into_owned()),
            _ => None,
        };
        let output = &self.info.output;
        let classes = &self.info.classes;
        // Taken at the commit only: an abort ends the class change itself (`note_abort`).
        let class_changed = self.tx.class_changed;
        let mut wrote = false;
        // SAFETY: th is this thread's live handle.
        let th = unsafe { &mut *self.th };
        // Nothing to order: a plain commit (with the commit log, a read-only one then takes
        // no global lock).
        let r = if out.is_empty() && !class_changed {
            th.commit()
        } else {
            th.commit_with(&mut || {
                if !out.is_empty() {
                    output.append(&mut out);
                    wrote = true;
                }
                if class_changed {
                    // At the serialization point: no lookup after this commit finds an entry
                    // cached from before it. (No thread waits at a safe point holding the table
                    // or its method sites.)
                    classes.end_change(true);
                }
            })
        };
        match r {
            Ok(()) => {
                self.tx.class_changed = false;
                self.tx.refresh_injected = false;
                if let Some(t) = self.tx.started.take() {
                    let ran = t.elapsed().as_nanos() as u64;
                    self.info.txn_stats.committed_ns.fetch_add(ran, Relaxed);
                }
                if self.mode == Mode::Gil {
                    self.info.gil.release();
                }
                if wrote {
                    self.info.output.flush();
                }
                if let (Some(t), Some(text)) = (self.stm.tracer(), traced_out) {
                    t.output(&text);
                }
                self.tx.budget = (self.tx.budget * 2).min(self.info.settings.budget as i64);
                Ok(())
            }
            Err(a) => {
                self.note_abort(a);
                Err(Aborted)
            }
        }
    }

    /// The debug switch `STMJIT_ABORT_PROBABILITY`: with its probability, aborts the running
    /// transaction (unless it is inevitable) and returns true. Drawn at every commit and at
    /// every [`Runtime::refresh`], so that the abort paths of the helpers that validate in
    /// the middle of their work are exercised too, not only those of boundaries.
    pub(crate) fn inject_abort(&mut self) -> bool {
        let chance = self.info.settings.abort_chance;
        if chance == 0 || self.th().is_inevitable() {
            return false;
        }
        // xorshift64*: a cheap deterministic stream per thread.
        let mut x = self.tx.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.tx.rng = x;
        if (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32) >= chance {
            return false;
        }
        self.info.txn_stats.injected.fetch_add(1, Relaxed);
        let a = self.th().abort();
        if let Some(t) = self.stm.tracer() {
            t.amend_last_transaction(|r| r.injected = true);
        }
        self.note_abort(a);
        true
    }

    /// Whether the run reports its figures (`--stats`, `--stats-json`): only then are the
    /// transactions timed (the time they ran and the time aborts lost).
    pub(crate) fn reports_stats(&self) -> bool {
        self.info.settings.stats || self.info.stats_json.is_some()
    }

    /// Records an abort the runtime has already rolled back: unwinding starts, the output
    /// of the transaction is dropped, the time it ran counts as lost.
    pub(crate) fn note_abort(&mut self, a: Abort) {
        self.tx.aborting = true;
        if std::mem::take(&mut self.tx.class_changed) {
            self.info.classes.end_change(false);
        }
        self.out.clear();
        if self.mode == Mode::Gil {
            self.info.gil.release();
        }
        let lost = self
            .tx
            .started
            .take()
            .map_or(0, |t| t.elapsed().as_nanos() as u64);
        self.info.txn_stats.lost_ns.fetch_add(lost, Relaxed);
        self.tx.budget = (self.tx.budget / 2).max(MIN_BUDGET);
        self.tx.abort_site = None;
        self.tx.pending_key = None;
        if let Some(c) = a.conflict() {
            if c.type_id == self.types.dict_array.0 || c.type_id == self.types.set_array.0 {
                self.note_dict_conflict(c.object);
            }
            let key = ConflictKey {
                kind: match c.kind {
                    stmjit_runtime::ConflictKind::WriteRead => "write/read",
                    stmjit_runtime::ConflictKind::WriteWrite => "write/write",
                },
                type_name: self.type_name_of_id(c.type_id),
                winner: c.winner,
                loser: c.loser,
            };
            // Only for a report (it reads the heap).
            let name = self
                .record_reads
                .then(|| self.conflict_object_name(&c))
                .flatten();
            self.tx.pending_key = Some((key, lost, name));
        }
    }

    /// The abort reported by a runtime call that only returned a status.
    pub(crate) fn note_ffi_abort(&mut self) {
        let a = self.th().last_abort();
        self.note_abort(a);
    }

    /// Type name of an object type id (for conflict reports).
    pub(crate) fn type_name_of_id(&self, id: u32) -> String {
        let t = self.types;
        let names = [
            (t.list.0, "list"),
            (t.dict.0, "dict"),
            (t.set.0, "set"),
            (t.instance.0, "instance"),
            (t.class.0, "class"),
            (t.carded_array.0, "list"),
            (t.dict_array.0, "dict"),
            (t.set_array.0, "set"),
            (t.globals_array.0, "globals"),
            (t.array.0, "instance slots"),
            (t.opaque.0, "object"),
        ];
        names
            .iter()
            .find(|(i, _)| *i == id)
            .map_or_else(|| format!("object of type {id}"), |(_, n)| n.to_string())
    }

    /// Records where the aborted transaction was (the innermost site of its unwinding), as
    /// its side when the runtime did not know where it read or wrote the object, and logs
    /// its conflict.
    pub(crate) fn note_abort_site(&mut self, site: u32) {
        if let Some(t) = self.stm.tracer() {
            t.amend_last_transaction(|r| r.noticed_site = site);
        }
        if let Some((mut key, lost, name)) = self.tx.pending_key.take() {
            if key.loser.site == NO_SITE {
                key.loser = Side::was_at(site);
            }
            let mut t = self.info.txn_stats.conflicts.lock().unwrap();
            t.entry(key).or_default().add(lost, name);
        }
    }

    /// Before blocking outside a transaction: hands the segment this thread keeps between
    /// its transactions over to a thread waiting for one, if any (`StmThread::detach`).
    pub fn detach(&mut self) {
        self.th().detach();
        // A thread that blocks leaves room for a put-off spawned thread.
        super::threads::start_deferred(&self.info, false);
    }

    /// Commit + begin. Threads spawned by the committed transaction start here.
    pub(crate) fn boundary(&mut self, ctx: *mut Ctx) -> Result<(), Aborted> {
        self.commit()?;
        self.begin(ctx);
        super::threads::start_pending(self);
        Ok(())
    }

    /// Aborts the running transaction so that it runs again once thread `id` has ended (the
    /// wait is in [`Runtime::begin`], outside any transaction). `false` if the transaction
    /// is inevitable and cannot run again.
    pub(crate) fn abort_until_thread_ends(&mut self, id: usize) -> bool {
        if self.th().is_inevitable() {
            return false;
        }
        self.tx.wait_for_thread = Some(id);
        let a = self.th().abort();
        self.note_abort(a);
        true
    }

    /// Makes the running transaction inevitable, counting it.
    pub(crate) fn make_inevitable(&mut self) -> Result<(), Aborted> {
        if self.th().is_inevitable() {
            return Ok(());
        }
        match self.th().become_inevitable() {
            Ok(()) => {
                self.info.txn_stats.inevitable.fetch_add(1, Relaxed);
                Ok(())
            }
            Err(a) => {
                self.note_abort(a);
                Err(Aborted)
            }
        }
    }

    /// Begins a transaction (outside one) whose restart point is `point` of the frame at
    /// `frame`: the continuation of a join that committed and waited (`threads::join_at`).
    ///
    /// # Safety
    /// As [`set_restart_point`]; no atomic block is open (a restart leaves it).
    pub(crate) unsafe fn begin_at(&mut self, ctx: *mut Ctx, frame: *mut u64, point: u64) {
        self.begin(ctx);
        // SAFETY: caller's contract.
        unsafe { set_restart_point(ctx, frame, point) };
        super::threads::start_pending(self);
    }

    /// The continuation of a boundary that has no restart point: an inevitable transaction,
    /// ended by the next poll.
    pub(crate) fn begin_without_restart_point(&mut self, ctx: *mut Ctx) {
        // A new transaction has no conflict yet, but it may be doomed while it waits for
        // another inevitable one to end: then it simply begins again.
        loop {
            self.begin(ctx);
            if self.make_inevitable().is_ok() {
                break;
            }
        }
        self.set_budget(0);
        // SAFETY: ctx is this thread's live context.
        unsafe { (*ctx).txn_depth = NO_OPENER };
        super::threads::start_pending(self);
    }
}

/// Poll slow path (the inline budget ran out, or the runtime asked): pauses or aborts as the
/// runtime requests and, outside atomic blocks, makes a boundary whose restart point is poll
/// `point` of the frame at `frame`. Returns `NONE`, or [`ERR`] on an abort.
///
/// # Safety
/// `ctx` is the live context; `frame` is the calling JIT frame, the topmost one.
pub unsafe extern "C" fn stmjit_poll_slow(ctx: *mut Ctx, frame: *mut u64, point: u64) -> Word {
    let rt = rt_of(ctx);
    // First the budget (a request's mark off), then the requests: see `take_budget`.
    let left = rt.th().take_budget();
    if let Err(a) = rt.th().poll() {
        rt.note_abort(a);
        return ERR;
    }
    // SAFETY: caller's contract.
    let c = unsafe { &mut *ctx };
    if c.atomic_depth > 0 {
        // No boundary inside an atomic block: poll again after another budget.
        if left < 0 {
            rt.set_budget(rt.tx.budget);
        }
        return NONE;
    }
    if left >= 0 && c.txn_depth != NO_OPENER {
        // Only a request: the budget word holds what was left of it again.
        return NONE;
    }
    if rt.tx.rust_entry.take_if(|d| *d == c.depth).is_some() && c.txn_depth != NO_OPENER {
        // The first poll of a function Rust calls: the running transaction's opener is
        // live below it; the budget stays spent for the next poll (see `rust_entry`).
        return NONE;
    }
    // SAFETY: caller's contract.
    unsafe { boundary_at(ctx, frame, point) }
}

/// The boundary between two parts of a huge module body (`jit/src/compile/parts.rs`):
/// whatever the budget, commits and begins a transaction whose restart point is poll
/// `point` of the frame at `frame` (`<module>`'s, before the next part), so that no restart
/// runs a part that ran before it again and its code may be freed. Serves the runtime's
/// requests first. Returns `NONE`, or [`ERR`] on an abort.
///
/// # Safety
/// As [`stmjit_poll_slow`]; no atomic block is open (a part boundary is between top-level
/// statements).
pub unsafe extern "C" fn stmjit_part_boundary(ctx: *mut Ctx, frame: *mut u64, point: u64) -> Word {
    let rt = rt_of(ctx);
    rt.th().take_budget();
    if let Err(a) = rt.th().poll() {
        rt.note_abort(a);
        return ERR;
    }
    // SAFETY: caller's contract.
    debug_assert_eq!(unsafe { (*ctx).atomic_depth }, 0);
    // SAFETY: caller's contract.
    unsafe { boundary_at(ctx, frame, point) }
}

/// Commits, begins the next transaction and makes the frame at `frame` its opener, with
/// restart point `point`: its slots are the restart roots. `NONE`, or [`ERR`] on an abort.
///
/// # Safety
/// As [`stmjit_poll_slow`].
unsafe fn boundary_at(ctx: *mut Ctx, frame: *mut u64, point: u64) -> Word {
    let rt = rt_of(ctx);
    if rt.boundary(ctx).is_err() {
        return ERR;
    }
    // SAFETY: caller's contract.
    unsafe { set_restart_point(ctx, frame, point) };
    NONE
}

/// Makes poll `point` of the frame at `frame` the running transaction's restart point: the
/// frame's slots are saved (restored by [`stmjit_restart`]) and the frame is the opener.
///
/// # Safety
/// `ctx` is the live context; `frame` is the topmost JIT frame, whose helper call this is.
unsafe fn set_restart_point(ctx: *mut Ctx, frame: *mut u64, point: u64) {
    let rt = rt_of(ctx);
    // SAFETY: caller's contract.
    let c = unsafe { &mut *ctx };
    // SAFETY: the frame is [frame, ss.top): the caller is the topmost JIT frame.
    let slots = unsafe {
        let top = (*c.ss).top;
        std::slice::from_raw_parts(frame, top.offset_from(frame) as usize)
    };
    rt.th().set_restart_roots(slots);
    rt.restart_stash.clone_from(&rt.exc_stash);
    c.txn_depth = c.depth;
    c.restart_point = point;
}

/// Runs `call`, a call from Rust into the JIT function that will run at depth
/// `ctx.depth + 1`, whose first poll makes no boundary (see [`ThreadTx::rust_entry`]).
pub(crate) fn from_rust(ctx: *mut Ctx, call: impl FnOnce() -> Word) -> Word {
    // SAFETY: ctx is this thread's live context (callers' contract).
    let depth = unsafe { (*ctx).depth } + 1;
    let prev = rt_of(ctx).tx.rust_entry.replace(depth);
    let r = call();
    rt_of(ctx).tx.rust_entry = prev;
    r
}

/// Restart after an abort, in the opener's frame at `frame`: copies the slots saved at the
/// boundary back (the shadow stack's top right after them) and begins a new transaction.
///
/// # Safety
/// As [`stmjit_poll_slow`]; `frame` is the opener's frame.
pub unsafe extern "C" fn stmjit_restart(ctx: *mut Ctx, frame: *mut u64) -> Word {
    let rt = rt_of(ctx);
    let saved = rt.th().restart_roots();
    // SAFETY: the frame had saved.len() slots when they were saved and still has them.
    unsafe {
        std::ptr::copy_nonoverlapping(saved.as_ptr(), frame, saved.len());
        (*(*ctx).ss).top = frame.add(saved.len());
        (*ctx).atomic_depth = 0;
    }
    rt.clear_error();
    rt.exc_stash.clone_from(&rt.restart_stash);
    rt.begin(ctx);
    NONE
}

/// Return from the opener (`txn_depth == depth`) with `rv`: commits, and goes on in an
/// inevitable transaction until the caller's next poll (see the module docs). Inside an
/// atomic block it only makes the transaction inevitable. Returns the (possibly moved)
/// `rv`, or [`RESTART`] when the commit aborted (the opener restarts).
///
/// # Safety
/// As [`stmjit_poll_slow`].
pub unsafe extern "C" fn stmjit_return_boundary(ctx: *mut Ctx, rv: Word) -> Word {
    let rt = rt_of(ctx);
    // SAFETY: caller's contract.
    let c = unsafe { &mut *ctx };
    if c.atomic_depth > 0 {
        if rt.make_inevitable().is_err() {
            return RESTART;
        }
        c.txn_depth = NO_OPENER;
        return rv;
    }
    let mark = rt.mark();
    let r = rt.root(rv);
    if rt.commit().is_err() {
        rt.release(mark);
        return RESTART;
    }
    rt.begin_without_restart_point(ctx);
    let rv = rt.get(r);
    rt.release(mark);
    rv
}

/// Card write-barrier slow path of JIT code, naming the write's site (`Ctx::site`).
///
/// # Safety
/// As [`stmjit_poll_slow`]; `obj` is a carded object, `off` an element offset in it.
pub unsafe extern "C" fn stmjit_card_slow_at(ctx: *mut Ctx, obj: u64, off: u64) -> u64 {
    // SAFETY: caller's contract.
    let (th, site) = unsafe { ((*ctx).th, (*ctx).site) };
    // SAFETY: th is this thread's handle, in a transaction.
    unsafe {
        (*th).set_site(site as u32);
        stmjit_runtime::ffi::stmjit_write_card_slow(th, obj, off) as u64
    }
}

/// Write-barrier slow path of JIT code, naming the write's site (`Ctx::site`).
///
/// # Safety
/// As [`stmjit_poll_slow`]; `obj` is an old object.
pub unsafe extern "C" fn stmjit_wb_slow_at(ctx: *mut Ctx, obj: u64) -> u64 {
    // SAFETY: caller's contract.
    let (th, site) = unsafe { ((*ctx).th, (*ctx).site) };
    // SAFETY: th is this thread's handle, in a transaction.
    unsafe {
        (*th).set_site(site as u32);
        stmjit_runtime::ffi::stmjit_write_barrier_slow(th, obj) as u64
    }
}

/// [`stmjit_card_slow_at`] for the `preserve_all` stub of JIT code
/// (the backend's `Jit::define_preserve_all_stub`): the object and offset come in
/// `Ctx::barrier_obj` and `Ctx::barrier_off`, the status goes to `Ctx::barrier_status`
/// (see there why).
///
/// # Safety
/// As [`stmjit_card_slow_at`], for the object and offset in the context.
pub unsafe extern "C" fn stmjit_card_slow_status(ctx: *mut Ctx) {
    // SAFETY: ctx is the caller's live context, not aliased by any Rust reference here.
    let (obj, off) = unsafe { ((*ctx).barrier_obj, (*ctx).barrier_off) };
    // SAFETY: caller's contract (same as stmjit_card_slow_at's).
    let st = unsafe { stmjit_card_slow_at(ctx, obj, off) };
    // SAFETY: as above.
    unsafe { (*ctx).barrier_status = st };
}

/// [`stmjit_wb_slow_at`] for the `preserve_all` stub of JIT code
/// (the backend's `Jit::define_preserve_all_stub`): the object comes in
/// `Ctx::barrier_obj`, the status goes to `Ctx::barrier_status` (see there why).
///
/// # Safety
/// As [`stmjit_wb_slow_at`], for the object in the context.
pub unsafe extern "C" fn stmjit_wb_slow_status(ctx: *mut Ctx) {
    // SAFETY: ctx is the caller's live context, not aliased by any Rust reference here.
    let obj = unsafe { (*ctx).barrier_obj };
    // SAFETY: caller's contract (same as stmjit_wb_slow_at's).
    let st = unsafe { stmjit_wb_slow_at(ctx, obj) };
    // SAFETY: as above.
    unsafe { (*ctx).barrier_status = st };
}
