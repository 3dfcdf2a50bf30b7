//! The event trace of a run (`stmjit run --trace`, `--timeline`): when each transaction ran
//! and how it ended, and when threads waited or collected garbage, so that a user can *see*
//! why a program does not scale. This module only records; the JSON and SVG writers live
//! above (they need the program's source positions).
//!
//! Off by default ([`crate::StmConfig::trace`]): then [`crate::Stm::tracer`] is `None` and
//! every recording site costs one test of that field, only on runtime slow paths (begin,
//! commit, abort, collections, waits), never in JIT code's inline barriers.
//!
//! Each OS thread appends to its own [`ThreadLog`] (found through a thread-local, created on
//! first use and registered with the [`Tracer`]), under a lock flag that only the writer at
//! the end of the run ever contends; so the writer can take every thread's events at any time,
//! also when one thread ends the process on an error while the others still run. A thread
//! keeps at most [`EVENTS_PER_THREAD`] events, and all threads together [`EVENTS_IN_ALL`]
//! (a thread takes its share from the tracer [`BLOCK`] events at a time): later ones are
//! only counted ([`Dropped`]), so memory stays bounded however long and wide the run.

use crate::stats::{AbortCause, ConflictInfo};
use std::cell::{Cell, UnsafeCell};
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
    Ordering::SeqCst,
};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Most events kept per thread (64 bytes each, so at most 12.8 MB a thread, plus the text
/// of `print`s): a long run keeps its first events and counts the rest, so that memory
/// stays bounded. Written into the trace's metadata.
pub const EVENTS_PER_THREAD: usize = 200_000;

/// Most events kept by all the threads of a run together (128 MB): a run of many busy
/// threads keeps its first events, up to [`BLOCK`] later on a thread that had taken room
/// before the others ran out. Written into the trace's metadata.
pub const EVENTS_IN_ALL: usize = 2_000_000;

/// Events a thread takes from [`EVENTS_IN_ALL`] at a time: one atomic operation per block,
/// not a shared write per transaction.
pub const BLOCK: usize = 4096;

/// What a thread did between two moments, other than running a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpanKind {
    /// A minor collection (nursery full, or at commit).
    MinorCollection,
    /// A major collection (world stopped), run by this thread.
    MajorCollection,
    /// A committing writer waiting for the other segments to reach a safe point.
    CommitSync,
    /// Paused at a safe point while another segment committed or collected.
    Paused,
    /// Waiting for a free segment (more threads than segments).
    SegmentWait,
    /// Waiting for another inevitable transaction to end before becoming inevitable.
    InevitableWait,
    /// Waiting for another transaction's commit phase (new dict keys) to end.
    CommitPhaseWait,
    /// Waiting for an older transaction to release an object's write lock.
    WriteLockWait,
    /// Waiting, outside any transaction, for a thread to end (`join`).
    JoinWait,
}

impl SpanKind {
    /// Name shown by trace viewers and the timeline's legend.
    pub fn name(self) -> &'static str {
        match self {
            SpanKind::MinorCollection => "minor collection",
            SpanKind::MajorCollection => "major collection",
            SpanKind::CommitSync => "commit: waiting for the others to pause",
            SpanKind::Paused => "paused for another commit",
            SpanKind::SegmentWait => "waiting for a segment",
            SpanKind::InevitableWait => "waiting to become inevitable",
            SpanKind::CommitPhaseWait => "waiting for a commit phase",
            SpanKind::WriteLockWait => "waiting for a write lock",
            SpanKind::JoinWait => "waiting for a thread (join)",
        }
    }

    /// Whether it is garbage collection (shaded apart from waits).
    pub fn is_collection(self) -> bool {
        matches!(self, SpanKind::MinorCollection | SpanKind::MajorCollection)
    }
}

/// How a transaction ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Committed.
    Committed,
    /// Rolled back (to be run again), and why.
    Aborted(AbortCause),
}

/// One transaction, from its begin to its commit or abort.
#[derive(Clone, Debug)]
pub struct TxRecord {
    /// Begin (ns since the trace's start).
    pub start_ns: u64,
    /// Commit or abort (ns since the trace's start).
    pub end_ns: u64,
    /// Segment it ran in.
    pub segment: u32,
    /// The segment's transaction number: (segment, seq) names the transaction, as
    /// [`ConflictInfo::winner_seq`] names a winner.
    pub seq: u64,
    /// How it ended.
    pub outcome: Outcome,
    /// When it became inevitable, if it did (a reading of 0 ns is kept as 1: a non-zero
    /// field keeps the record at 64 bytes).
    pub inevitable_ns: Option<std::num::NonZeroU64>,
    /// The conflict that aborted it, if one did (the winner's segment, transaction, site);
    /// boxed: most transactions have none, and a record is copied twice per transaction.
    pub conflict: Option<Box<ConflictInfo>>,
    /// Where it learnt of its abort (a caller's site id, `u32::MAX` when unknown), set by
    /// the caller after the abort ([`Tracer::amend_last_transaction`]).
    pub noticed_site: u32,
    /// Aborted on purpose by a testing switch (set by the caller).
    pub injected: bool,
    /// Bytes of old objects and cards it wrote (published at its commit).
    pub bytes_written: u64,
    /// Old-object pages it privatized (saturated at `u32::MAX`).
    pub pages_privatized: u32,
}

/// One recorded event.
#[derive(Clone, Debug)]
pub enum Event {
    /// A transaction.
    Transaction(TxRecord),
    /// A wait or a collection.
    Span {
        /// What.
        kind: SpanKind,
        /// Start (ns since the trace's start).
        start_ns: u64,
        /// End (ns since the trace's start).
        end_ns: u64,
    },
    /// Program output, when it was written (at its transaction's commit).
    Output {
        /// When (ns since the trace's start).
        at_ns: u64,
        /// The text.
        text: Box<str>,
    },
}

/// What a thread did beyond [`EVENTS_PER_THREAD`]: counted, not kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events not kept.
    pub events: u64,
    /// Of them, committed transactions.
    pub commits: u64,
    /// Of them, aborted transactions.
    pub aborts: u64,
}

/// The events of one OS thread.
#[derive(Debug, Default)]
pub struct ThreadLog {
    /// Its name (set by the caller, e.g. "main"; "thread N" by default).
    pub name: String,
    /// Its events, in the order they ended.
    pub events: Vec<Event>,
    /// What was not kept.
    pub dropped: Dropped,
    /// Transactions kept that a conflict aborted (the writer looks for their winners only
    /// in logs that have some).
    pub conflicts: u64,
    /// Index in `events` of its last transaction, for [`Tracer::amend_last_transaction`].
    last_tx: Option<usize>,
    /// Events it may still keep before taking more from the tracer's budget.
    room: usize,
}

/// Takes up to `want` events from `budget` (what is left of [`EVENTS_IN_ALL`]); returns how
/// many.
fn take(budget: &AtomicUsize, want: usize) -> usize {
    budget
        .fetch_update(Relaxed, Relaxed, |b| (b > 0).then(|| b - b.min(want)))
        .map_or(0, |b| b.min(want))
}

impl ThreadLog {
    #[inline]
    fn push(&mut self, e: Event, budget: &AtomicUsize) {
        if self.room == 0 && !self.refill(budget) {
            self.drop(&e);
            return;
        }
        self.room -= 1;
        if let Event::Transaction(t) = &e {
            self.last_tx = Some(self.events.len());
            self.conflicts += u64::from(t.conflict.is_some());
        }
        self.events.push(e);
    }

    /// Takes room for more events from `budget` (never more than the thread's own cap lets
    /// it keep: no room is lost), and makes room for them in `events`: the first time, room
    /// for the whole cap (address space, backed only as events fill it: the log is never
    /// copied to grow, and a full log holds no unused room). False when there is none left.
    #[cold]
    fn refill(&mut self, budget: &AtomicUsize) -> bool {
        let len = self.events.len();
        if len >= EVENTS_PER_THREAD {
            return false;
        }
        self.room = take(budget, BLOCK.min(EVENTS_PER_THREAD - len));
        let spare = self.events.capacity() - len;
        if spare < self.room {
            // The first refill reserves the whole cap (address space only: pages are
            // backed as events fill them), so that the log never moves.
            self.events.reserve_exact(EVENTS_PER_THREAD - len);
            advise_huge_pages(&mut self.events);
        }
        self.room > 0
    }

    /// Counts an event not kept.
    #[cold]
    fn drop(&mut self, e: &Event) {
        self.dropped.events += 1;
        if let Event::Transaction(t) = e {
            match t.outcome {
                Outcome::Committed => self.dropped.commits += 1,
                Outcome::Aborted(_) => self.dropped.aborts += 1,
            }
            self.last_tx = None;
        }
    }
}

/// Asks the kernel to back `events`' room past its first megabyte with huge pages (2 MB,
/// where transparent huge pages are enabled on request, Debian's default): a busy thread
/// fills 12.8 MB of records, and faulting them in 4 KB at a time cost about 6 200 page
/// faults at ~1.4 µs each on microtq 500000 (2 threads). A thread that keeps fewer than
/// 16 384 events (1 MB) keeps small pages, so a wide run of quiet threads holds no huge
/// page each.
fn advise_huge_pages(events: &mut Vec<Event>) {
    const HUGE: usize = 2 << 20;
    let at = events.as_ptr() as usize;
    let end = at + events.capacity() * std::mem::size_of::<Event>();
    let (from, to) = ((at + HUGE / 2).next_multiple_of(HUGE), end / HUGE * HUGE);
    if from < to {
        advise(from, to - from);
    }
}

/// `madvise(MADV_HUGEPAGE)` on `len` bytes at `at` (a hint: its failure changes nothing).
#[cfg(target_os = "linux")]
fn advise(at: usize, len: usize) {
    // SAFETY: the range lies inside an allocation this thread owns (its log's unused
    // room); the advice changes how its pages are backed, not their contents.
    unsafe {
        libc::madvise(at as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
    }
}

#[cfg(not(target_os = "linux"))]
fn advise(_at: usize, _len: usize) {}

/// A thread's log: written by its thread for every event, read by the writer at the end of
/// the run (also while the thread still runs, on an error exit). Guarded by two flags
/// rather than a `Mutex`: only the writer ever contends, and an uncontended `Mutex` also
/// checked for a panic on lock and unlock (about 15 instructions per event under callgrind).
///
/// Where the kernel has `membarrier` ([`Tracer`]'s `fenced`), the thread enters with plain
/// stores and loads (an asymmetric Dekker lock: it sets `busy`, then looks at `writer`; the
/// writer sets `writer`, issues `membarrier`, which runs a full fence on every CPU running
/// one of our threads, then waits for `busy` to clear): the atomic swap it took before cost
/// a full fence per event, 60% of the time spent recording a transaction (perf, microtq).
/// Elsewhere both sides take `busy` by an atomic swap.
struct LogCell {
    /// The thread is in the log (without `membarrier`: whichever side holds it).
    busy: AtomicBool,
    /// A writer is taking the log, or about to: the thread keeps out until it is done.
    writer: AtomicBool,
    log: UnsafeCell<ThreadLog>,
}

// SAFETY: the log inside is only reached through `LogCell::owned` and `LogCell::taken`,
// which let one thread at a time in (see `LogCell`'s doc).
unsafe impl Sync for LogCell {}

/// Releases a [`LogCell`] when dropped (also if the caller's closure unwinds).
struct Held<'a>(&'a AtomicBool);

impl Drop for Held<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.store(false, Release);
    }
}

impl LogCell {
    fn new(log: ThreadLog) -> LogCell {
        LogCell {
            busy: AtomicBool::new(false),
            writer: AtomicBool::new(false),
            log: UnsafeCell::new(log),
        }
    }

    /// Runs `f` on the log, alone: for the thread that owns it (`fenced`: the writers issue
    /// `membarrier`).
    #[inline]
    fn owned<R>(&self, fenced: bool, f: impl FnOnce(&mut ThreadLog) -> R) -> R {
        if fenced {
            self.busy.store(true, Relaxed);
            // The store above must come before the load below in program order; a writer's
            // `membarrier` orders them on the CPU.
            std::sync::atomic::compiler_fence(SeqCst);
            if self.writer.load(Acquire) {
                self.wait_for_writer();
            }
        } else if self.busy.swap(true, Acquire) {
            self.wait();
        }
        let _held = Held(&self.busy);
        // SAFETY: this thread set `busy` and then saw no writer (a writer that came later
        // waits for `busy` to clear), or took `busy` from false: no other thread is in the
        // log until `_held` clears it.
        f(unsafe { &mut *self.log.get() })
    }

    /// Steps out while a writer takes the log, and comes back in (`fenced` only).
    #[cold]
    fn wait_for_writer(&self) {
        loop {
            self.busy.store(false, Release);
            while self.writer.load(Acquire) {
                std::thread::yield_now();
            }
            self.busy.store(true, Relaxed);
            std::sync::atomic::compiler_fence(SeqCst);
            if !self.writer.load(Acquire) {
                return;
            }
        }
    }

    /// Runs `f` on the log for a writer, which set `writer` (and, fenced, issued
    /// `membarrier` since): waits for the thread to step out.
    fn taken<R>(&self, f: impl FnOnce(&mut ThreadLog) -> R) -> R {
        self.wait();
        let r = {
            let _held = Held(&self.busy);
            // SAFETY: this thread took `busy` from false; the owner either keeps out
            // (fenced: it sees `writer` once it sets `busy`) or waits for `busy` itself.
            f(unsafe { &mut *self.log.get() })
        };
        self.writer.store(false, Release);
        r
    }

    /// Waits for the other side to leave the log, and takes `busy`.
    #[cold]
    fn wait(&self) {
        while self.busy.swap(true, Acquire) {
            std::thread::yield_now();
        }
    }
}

/// Registers the process for `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`; whether it can
/// use it ([`LogCell`]).
#[cfg(target_os = "linux")]
fn membarrier_register() -> bool {
    const MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;
    // SAFETY: the `membarrier` system call takes no pointers; an unknown command fails.
    unsafe {
        libc::syscall(
            libc::SYS_membarrier,
            MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED,
            0,
            0,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn membarrier_register() -> bool {
    false
}

/// A full memory fence on every CPU that runs a thread of this process (after
/// [`membarrier_register`] succeeded).
#[cfg(target_os = "linux")]
fn membarrier() {
    const MEMBARRIER_CMD_PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
    // SAFETY: as in `membarrier_register`; registered, it cannot fail.
    let r = unsafe { libc::syscall(libc::SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) };
    assert_eq!(
        r, 0,
        "stmjit: internal error: membarrier failed after registering"
    );
}

#[cfg(not(target_os = "linux"))]
fn membarrier() {}

/// The trace's clock: nanoseconds since the tracer started. Read twice per transaction and
/// once per span, so it is the time-stamp counter where that is invariant (constant rate,
/// running in every power state, synchronized across cores: CPUID leaf 0x8000_0007, EDX bit
/// 8), scaled by a rate measured against [`Instant`]; elsewhere `Instant` itself. Under
/// callgrind an `Instant::now` plus its conversion was about 60 instructions, `rdtsc` plus a
/// multiply is 6.
///
/// The rate is measured lazily: the clock reads `Instant` until [`Clock::CALIBRATION`] has
/// passed since it started, then the first reading after that compares both clocks over that
/// time and switches to the counter. Measuring it at the start cost every traced run a 2 ms
/// spin; now the run's own first events pay a few `Instant` readings.
struct Clock {
    epoch: Instant,
    /// Counter reading at `epoch`.
    tsc0: u64,
    /// Nanoseconds per tick, times 2^32; 0: not measured yet (`Instant` until then).
    mult: AtomicU64,
    /// Whether the counter may be used (invariant).
    tsc: bool,
}

/// The time-stamp counter.
#[cfg(target_arch = "x86_64")]
fn rdtsc() -> u64 {
    // SAFETY: `rdtsc` reads a counter; it has no memory effects and every x86-64 has it.
    unsafe { std::arch::x86_64::_rdtsc() }
}

/// Whether the time-stamp counter is invariant.
#[cfg(target_arch = "x86_64")]
fn invariant_tsc() -> bool {
    use std::arch::x86_64::__cpuid;
    // Leaf 0x8000_0000 says which extended leaves exist.
    __cpuid(0x8000_0000).eax >= 0x8000_0007 && __cpuid(0x8000_0007).edx & (1 << 8) != 0
}

/// A simultaneous (Instant, counter) pair: the tightest of a few tries, so that a pair is
/// not skewed by the thread being descheduled between its two reads.
#[cfg(target_arch = "x86_64")]
fn pair() -> (Instant, u64) {
    let mut best = (Instant::now(), rdtsc(), u64::MAX);
    for _ in 0..16 {
        let a = rdtsc();
        let i = Instant::now();
        let b = rdtsc();
        if b.wrapping_sub(a) < best.2 {
            best = (i, a / 2 + b / 2 + (a & b & 1), b.wrapping_sub(a));
        }
    }
    (best.0, best.1)
}

impl Clock {
    /// How long the rate is measured over (the counter is used after that).
    const CALIBRATION: std::time::Duration = std::time::Duration::from_millis(2);

    #[cfg(target_arch = "x86_64")]
    fn new() -> Clock {
        if !invariant_tsc() {
            return Clock::instant();
        }
        let (epoch, tsc0) = pair();
        Clock {
            epoch,
            tsc0,
            mult: AtomicU64::new(0),
            tsc: true,
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    fn new() -> Clock {
        Clock::instant()
    }

    /// The `Instant`-based clock.
    fn instant() -> Clock {
        Clock {
            epoch: Instant::now(),
            tsc0: 0,
            mult: AtomicU64::new(0),
            tsc: false,
        }
    }

    /// Nanoseconds since the clock started.
    #[inline]
    fn now(&self) -> u64 {
        #[cfg(target_arch = "x86_64")]
        {
            let mult = self.mult.load(Relaxed);
            if mult != 0 {
                let ticks = rdtsc().saturating_sub(self.tsc0);
                return ((u128::from(ticks) * u128::from(mult)) >> 32) as u64;
            }
        }
        self.slow_now()
    }

    /// [`Clock::now`] by `Instant`; measures the counter's rate once [`Clock::CALIBRATION`]
    /// has passed.
    #[cold]
    fn slow_now(&self) -> u64 {
        let ns = self.epoch.elapsed();
        #[cfg(target_arch = "x86_64")]
        if self.tsc && ns >= Self::CALIBRATION {
            let (i1, t1) = pair();
            let (ns, ticks) = (
                i1.duration_since(self.epoch).as_nanos() as f64,
                t1.wrapping_sub(self.tsc0),
            );
            if ticks != 0 && ns > 0.0 {
                let mult = ((ns / ticks as f64) * (1u64 << 32) as f64) as u64;
                // Threads measuring at once get nearly the same rate: the first one's stays.
                let _ = self.mult.compare_exchange(0, mult.max(1), Relaxed, Relaxed);
                return self.now();
            }
        }
        ns.as_nanos() as u64
    }
}

/// Identity of each tracer, so that a thread-local log is never taken for another
/// runtime's (tests create several).
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The id of the tracer this OS thread's log is registered with (0: none), and that log.
    /// The pointer is only followed by that tracer (ids are never reused), whose `logs`
    /// keep the log alive as long as the tracer itself: a plain pair, no `RefCell` or `Arc`
    /// to touch per event.
    static LOCAL: Cell<(u64, *const LogCell)> = const { Cell::new((0, std::ptr::null())) };
}

/// The trace of one runtime: its start and every thread's log.
pub struct Tracer {
    id: u64,
    clock: Clock,
    logs: Mutex<Vec<Arc<LogCell>>>,
    /// What is left of [`EVENTS_IN_ALL`] for the threads to take.
    budget: AtomicUsize,
    /// Threads enter their logs without an atomic swap: writers issue `membarrier`
    /// ([`LogCell`]).
    fenced: bool,
}

/// Every thread's events, taken at the end of a run ([`Tracer::take`]).
#[derive(Debug, Default)]
pub struct TraceData {
    /// The threads' logs, in the order the threads first recorded something.
    pub threads: Vec<ThreadLog>,
    /// Events kept per thread at most ([`EVENTS_PER_THREAD`]).
    pub events_per_thread: usize,
    /// Events kept by all threads together at most ([`EVENTS_IN_ALL`]).
    pub events_in_all: usize,
}

impl Default for Tracer {
    fn default() -> Tracer {
        Tracer::new()
    }
}

impl Tracer {
    /// A tracer whose clock starts now.
    pub fn new() -> Tracer {
        Tracer {
            id: NEXT_ID.fetch_add(1, Relaxed),
            clock: Clock::new(),
            logs: Mutex::new(Vec::new()),
            budget: AtomicUsize::new(EVENTS_IN_ALL),
            fenced: membarrier_register(),
        }
    }

    /// Nanoseconds from the trace's start to now.
    #[inline]
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Runs `f` on the calling thread's log (registering it on first use).
    #[inline]
    fn with_log<R>(&self, f: impl FnOnce(&mut ThreadLog) -> R) -> R {
        let (id, mut ptr) = LOCAL.get();
        if id != self.id {
            ptr = self.register();
        }
        // SAFETY: `ptr` is this tracer's log for this thread (its id matched, or it was just
        // registered), held by an `Arc` in `self.logs` for as long as `self` lives.
        let log = unsafe { &*ptr };
        log.owned(self.fenced, f)
    }

    /// Registers a log for the calling thread; returns it.
    #[cold]
    fn register(&self) -> *const LogCell {
        let mut logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        let log = Arc::new(LogCell::new(ThreadLog {
            name: format!("thread {}", logs.len()),
            ..ThreadLog::default()
        }));
        let ptr = Arc::as_ptr(&log);
        logs.push(log);
        LOCAL.set((self.id, ptr));
        ptr
    }

    /// Records an event of the calling thread.
    #[inline]
    pub fn push(&self, e: Event) {
        self.with_log(|l| l.push(e, &self.budget));
    }

    /// Records a span of the calling thread from `t0` to now.
    pub fn span_since(&self, kind: SpanKind, t0: Instant) {
        self.span_ending_now(kind, t0.elapsed().as_nanos() as u64);
    }

    /// Records a span of the calling thread that lasted `ns` and ends now (for callers
    /// that measured it already).
    pub fn span_ending_now(&self, kind: SpanKind, ns: u64) {
        let end_ns = self.now();
        self.push(Event::Span {
            kind,
            start_ns: end_ns.saturating_sub(ns),
            end_ns,
        });
    }

    /// Records output written now by the calling thread.
    pub fn output(&self, text: &str) {
        let at_ns = self.now();
        self.push(Event::Output {
            at_ns,
            text: text.into(),
        });
    }

    /// Names the calling thread's track.
    pub fn name_thread(&self, name: &str) {
        self.with_log(|l| l.name = name.to_string());
    }

    /// Changes the calling thread's last transaction (what only the caller knows after the
    /// runtime recorded it, e.g. where the aborted transaction noticed its abort). Nothing
    /// happens if it was not kept.
    pub fn amend_last_transaction(&self, f: impl FnOnce(&mut TxRecord)) {
        self.with_log(|l| {
            if let Some(Event::Transaction(t)) = l.last_tx.and_then(|i| l.events.get_mut(i)) {
                f(t);
            }
        });
    }

    /// Takes every thread's events so far (the logs stay registered, empty: threads still
    /// running may go on recording).
    pub fn take(&self) -> TraceData {
        // Held throughout: one writer at a time.
        let logs = self.logs.lock().unwrap_or_else(|e| e.into_inner());
        for l in logs.iter() {
            l.writer.store(true, SeqCst);
        }
        if self.fenced {
            membarrier();
        }
        let threads = logs
            .iter()
            .map(|l| {
                l.taken(|l| ThreadLog {
                    name: l.name.clone(),
                    events: std::mem::take(&mut l.events),
                    dropped: std::mem::take(&mut l.dropped),
                    conflicts: std::mem::take(&mut l.conflicts),
                    last_tx: l.last_tx.take(),
                    room: 0,
                })
            })
            .collect();
        TraceData {
            threads,
            events_per_thread: EVENTS_PER_THREAD,
            events_in_all: EVENTS_IN_ALL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(outcome: Outcome) -> Event {
        Event::Transaction(TxRecord {
            start_ns: 0,
            end_ns: 1,
            segment: 1,
            seq: 1,
            outcome,
            inevitable_ns: None,
            conflict: None,
            noticed_site: u32::MAX,
            injected: false,
            bytes_written: 0,
            pages_privatized: 0,
        })
    }

    /// Past the cap, events are counted by kind, and amending a dropped transaction does
    /// not change the last kept one.
    #[test]
    fn the_cap_counts_what_it_drops() {
        let mut l = ThreadLog::default();
        let budget = AtomicUsize::new(EVENTS_IN_ALL);
        for _ in 0..EVENTS_PER_THREAD {
            l.push(tx(Outcome::Committed), &budget);
        }
        l.push(tx(Outcome::Aborted(AbortCause::WriteRead)), &budget);
        l.push(tx(Outcome::Committed), &budget);
        l.push(
            Event::Output {
                at_ns: 3,
                text: "x".into(),
            },
            &budget,
        );
        assert_eq!(l.events.len(), EVENTS_PER_THREAD);
        assert_eq!(
            l.dropped,
            Dropped {
                events: 3,
                commits: 1,
                aborts: 1
            }
        );
        assert_eq!(l.last_tx, None);
    }

    /// The counter-based clock follows `Instant`: it starts near 0, never goes back, and
    /// measures a sleep (across its switch from `Instant` to the counter) as `Instant` does
    /// (within a generous 20%: both are wall clocks, so load on the machine does not matter).
    #[test]
    fn the_clock_follows_instant() {
        let c = Clock::new();
        let a = c.now();
        assert!(a < 1_000_000_000, "{a} ns at start");
        let (i, t) = (Instant::now(), c.now());
        std::thread::sleep(std::time::Duration::from_millis(50));
        let (di, dt) = (i.elapsed().as_nanos() as f64, (c.now() - t) as f64);
        assert!(
            (dt / di - 1.0).abs() < 0.2,
            "clock {dt} ns vs Instant {di} ns"
        );
        let mut last = c.now();
        for _ in 0..1000 {
            let n = c.now();
            assert!(n >= last);
            last = n;
        }
        #[cfg(target_arch = "x86_64")]
        if invariant_tsc() {
            assert_ne!(c.mult.load(Relaxed), 0, "an invariant counter is used");
        }
        // Measured lazily, the counter reads what `Instant` reads (within 5 ms: the thread
        // may be descheduled between the two readings).
        let skew = c.now() as i64 - c.epoch.elapsed().as_nanos() as i64;
        assert!(skew.abs() < 5_000_000, "counter {skew} ns off Instant");
    }

    /// An event is 64 bytes, and a full log has no room beyond the cap: the memory bound
    /// stated in [`EVENTS_PER_THREAD`]'s doc.
    #[test]
    fn a_full_log_is_64_bytes_an_event() {
        assert_eq!(std::mem::size_of::<Event>(), 64);
        let mut l = ThreadLog::default();
        let budget = AtomicUsize::new(EVENTS_IN_ALL);
        for _ in 0..EVENTS_PER_THREAD + 10 {
            l.push(tx(Outcome::Committed), &budget);
        }
        assert_eq!(l.events.capacity(), EVENTS_PER_THREAD);
    }

    /// All threads together keep at most `EVENTS_IN_ALL` events: the rest are counted, on
    /// the thread that dropped them.
    #[test]
    fn the_run_wide_cap_bounds_many_threads() {
        let t = Tracer::new();
        let threads = EVENTS_IN_ALL / EVENTS_PER_THREAD + 3;
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..EVENTS_PER_THREAD {
                        t.push(tx(Outcome::Committed));
                    }
                });
            }
        });
        let d = t.take();
        assert_eq!(d.threads.len(), threads);
        let kept: usize = d.threads.iter().map(|l| l.events.len()).sum();
        let dropped: u64 = d.threads.iter().map(|l| l.dropped.commits).sum();
        assert_eq!(kept, EVENTS_IN_ALL);
        assert_eq!(kept as u64 + dropped, (threads * EVENTS_PER_THREAD) as u64);
        assert_eq!(d.events_in_all, EVENTS_IN_ALL);
    }

    /// A writer taking the logs while their threads record (an error exit) gets every event
    /// once: taken now or later, none lost or seen twice, whether the threads enter their logs
    /// by plain stores (`membarrier`) or by a swap.
    #[test]
    fn taking_while_threads_record_loses_nothing() {
        for fenced in [true, false] {
            let mut t = Tracer::new();
            t.fenced &= fenced;
            let (threads, each) = (3, 60_000usize);
            let done = AtomicUsize::new(0);
            let mut seen = vec![0usize; threads];
            std::thread::scope(|s| {
                for k in 0..threads {
                    let (t, done) = (&t, &done);
                    s.spawn(move || {
                        t.name_thread(&format!("w{k}"));
                        for i in 0..each {
                            let mut e = tx(Outcome::Committed);
                            if let Event::Transaction(r) = &mut e {
                                r.seq = i as u64;
                            }
                            t.push(e);
                        }
                        done.fetch_add(1, SeqCst);
                    });
                }
                loop {
                    let finished = done.load(SeqCst) == threads;
                    // A log taken between its registration and its naming has no events.
                    for l in t.take().threads.iter().filter(|l| !l.events.is_empty()) {
                        let k: usize = l.name[1..].parse().unwrap();
                        for e in &l.events {
                            let Event::Transaction(r) = e else { panic!() };
                            assert_eq!(r.seq, seen[k] as u64, "thread {k}: in order, once");
                            seen[k] += 1;
                        }
                    }
                    if finished {
                        break;
                    }
                }
            });
            assert_eq!(seen, vec![each; threads], "fenced: {}", t.fenced);
        }
    }

    /// Each thread gets its own log, registered once; two tracers do not share logs.
    #[test]
    fn one_log_per_thread_and_tracer() {
        let a = Tracer::new();
        let b = Tracer::new();
        a.name_thread("main");
        a.output("hi");
        b.output("other");
        std::thread::scope(|s| {
            s.spawn(|| {
                a.push(tx(Outcome::Committed));
                a.amend_last_transaction(|t| t.noticed_site = 7);
            });
        });
        let d = a.take();
        assert_eq!(d.threads.len(), 2);
        assert_eq!(d.threads[0].name, "main");
        assert!(
            matches!(&d.threads[0].events[..], [Event::Output { text, .. }] if &**text == "hi")
        );
        assert!(matches!(&d.threads[1].events[..], [Event::Transaction(t)] if t.noticed_site == 7));
        assert_eq!(b.take().threads.len(), 1);
    }
}
