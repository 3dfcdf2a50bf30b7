//! Threads of a program run: the driver that runs a call as transactions (restarting it
//! when its first transaction aborts), `spawn`/`join` on OS threads, `TransactionQueue.run`
//! on all segments, and the end of the program on an error (in a spawned thread: only if no
//! `join()` raised it again, see [`ThreadFailure`]).
//!
//! A spawned thread starts only once the transaction that called `spawn` has committed (an
//! aborted `spawn` never happened): `spawn` records the Thread object in a list held by a
//! root slot of the driver's frame, and [`start_pending`] starts the threads of that list
//! after the commit. The thread's callable, arguments and, at its end, its result live in
//! the Thread object (a list `[f, args, result, id, site, exception]`), so that they are
//! ordinary GC-managed, transactional data; only the "finished" flags and the traces of
//! failed threads live outside the heap.

use super::thread_pool::{self, POOL};
use super::thread_room::room_for_a_thread;
use super::txn::NO_OPENER;
use super::{rt_of, Aborted, Ctx, ProgramInfo, Runtime, ERR};
use crate::objects::{OpaqueObj, OPAQUE_THREAD};
use std::mem::offset_of;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::{Arc, Condvar, Mutex};
use stmjit_lang::diag::{render_runtime, render_thread_origin, ErrorKind, Span, TraceEntry};
use stmjit_runtime::value::{self, Word, NONE};

/// Slots of a driver's base frame: the pending-spawn list, what the driver keeps, and the
/// list of the transaction's dict overlays (`dict_overlay.rs`).
const DRIVER_SLOTS: usize = 4;

/// Fields of a Thread object's data list.
const T_FUNC: u64 = 0;
const T_ARGS: u64 = 1;
const T_RESULT: u64 = 2;
const T_ID: u64 = 3;
/// The trace site of the `spawn` call: where an error of the call itself (wrong arity) is
/// reported, `in <thread>`, as the interpreter does, and the origin an uncaught error in the
/// thread names.
const T_SITE: u64 = 4;
/// The uncaught exception object that ended the thread (None if it returned).
const T_EXC: u64 = 5;

/// The threads `spawn` started: which have finished, how many still run.
#[derive(Default)]
pub struct Threads {
    /// The flags and the count.
    pub table: Mutex<ThreadTable>,
    /// Signalled when the last running thread ends (`wait_all`).
    pub ended: Condvar,
    /// Threads that may still start before the memory mappings are counted again
    /// ([`room_for_a_thread`]).
    pub map_budget: std::sync::atomic::AtomicI64,
    /// Threads started whose shadow stack is not mapped yet: address space they will take
    /// that the process's size does not show yet ([`room_for_a_thread`]).
    pub starting: std::sync::atomic::AtomicU64,
    /// Spawned threads not started yet because enough threads wait for a segment
    /// ([`launch`]), the most recent last, each with when it was put off.
    deferred: Mutex<Deferred>,
    /// The length of `deferred`, readable without its lock.
    pub(crate) deferred_len: std::sync::atomic::AtomicUsize,
    /// Threads spawned by committed transactions (`--stats`).
    pub spawned_total: AtomicU64,
    /// Spawned threads that were put off before they started (`--stats`).
    pub deferred_total: AtomicU64,
    /// OS threads started for spawned threads, not counting reused ones (`--stats`).
    pub os_threads: AtomicU64,
}

/// Spawned threads put off ([`launch`]).
struct Deferred {
    /// The threads, the most recent last, each with when it was put off.
    list: std::collections::VecDeque<(Start, std::time::Instant)>,
    /// When the last of them started (or the list became non-empty).
    last_start: std::time::Instant,
    /// When the last of them started for its age.
    last_aged: std::time::Instant,
}

impl Default for Deferred {
    fn default() -> Deferred {
        Deferred {
            list: Default::default(),
            last_start: std::time::Instant::now(),
            last_aged: std::time::Instant::now(),
        }
    }
}

/// "Finished" flags of the spawned threads, by id, and how many still run.
#[derive(Default)]
pub struct ThreadTable {
    /// Whether thread `id` has committed its last transaction.
    pub done: Vec<bool>,
    /// Threads started and not finished.
    pub live: u64,
    /// Threads parked in `join()` of thread `id`, by id, each with its STM handle's token: a
    /// thread's end wakes only them (waking every waiter at every end made a spawn tree of a
    /// thousand threads spend seconds in the kernel), and passes its segment to the first.
    pub joiners: std::collections::HashMap<usize, Vec<(std::thread::Thread, u64)>>,
    /// Segments passed by an ending thread to a joiner, by the joiner's token, for it to take
    /// when it wakes (see [`thread_main`]'s end).
    pub handed: std::collections::HashMap<u64, usize>,
    /// The threads that ended with an uncaught exception, by id.
    pub failures: std::collections::HashMap<usize, ThreadFailure>,
    /// The thread each spawned thread waits for in `join()`, by id: a join that would close
    /// a cycle of joins raises instead of waiting forever.
    pub waiting_for: std::collections::HashMap<usize, usize>,
}

impl ThreadTable {
    /// Whether thread `id` is `me` or (transitively) waiting in `join()` for `me`: a walk
    /// along the chain of joins, each thread waiting for at most one.
    fn joins(&self, me: usize, id: usize) -> bool {
        let mut cur = id;
        // Every chain is shorter than the number of waiting threads (a cycle is refused when
        // its last join begins).
        for _ in 0..=self.waiting_for.len() {
            if cur == me {
                return true;
            }
            match self.waiting_for.get(&cur) {
                Some(&next) => cur = next,
                None => return false,
            }
        }
        false
    }
}

/// What is kept of the uncaught exception that ended a spawned thread (the object itself is
/// in the Thread object, `T_EXC`): each `join()` raises it again; the first one that no
/// `join()` raised is reported at the end of the program.
pub struct ThreadFailure {
    /// Its trace, the thread's frames.
    pub trace: Vec<TraceEntry>,
    /// Its name and message (for the report at the end: `__str__` ran in the thread).
    pub text: (String, String),
    /// The `spawn` call's position.
    pub spawned_at: Option<Span>,
    /// The order the failures happened in.
    pub order: usize,
    /// Whether a `join()` raised it.
    pub joined: bool,
}

/// A thread's driver: its transaction handle, runtime and context, at stable addresses.
pub struct Driver {
    // Field order is drop order: the context and runtime refer to the handle.
    /// The context JIT code receives.
    pub ctx: Box<Ctx>,
    /// The per-thread runtime.
    pub rt: Box<Runtime>,
    /// The STM handle.
    pub th: Box<stmjit_runtime::StmThread>,
    /// The driver's base frame in the shadow stack.
    frame: *mut u64,
}

impl Driver {
    /// A driver for the calling OS thread (no transaction yet), with its base frame pushed.
    /// Panics if its shadow stack cannot be mapped ([`Driver::try_new`] says so instead).
    pub fn new(info: Arc<ProgramInfo>) -> Driver {
        Driver::try_new(info).unwrap_or_else(|e| panic!("stmjit: {e}"))
    }

    /// [`Driver::new`], or `Err` when the thread's shadow stack cannot be mapped (an
    /// address-space limit), for the caller to report as a MemoryError.
    pub fn try_new(info: Arc<ProgramInfo>) -> std::io::Result<Driver> {
        // A thread's transactions may run in any free segment: JIT code reloads r15 after
        // every runtime call that may switch (`Compiler::reload_segment_base`).
        let mut th = Box::new(info.stm.try_thread()?);
        let th_ptr: *mut stmjit_runtime::StmThread = &mut *th;
        // SAFETY: th is boxed, owned by the driver, outlives rt and ctx (drop order) and
        // stays on this thread.
        let mut rt = Box::new(unsafe { Runtime::for_thread(info, th_ptr, 0) });
        let mut ctx = Box::new(Ctx::new(th_ptr, &mut *rt, 0));
        rt.ctx = &mut *ctx;
        let ss = th.shadow_stack_ptr();
        // SAFETY: a fresh shadow stack has room for the base frame; the slots are set
        // before `top` covers them.
        let frame = unsafe {
            let f = (*ss).top;
            for i in 0..DRIVER_SLOTS {
                *f.add(i) = NONE;
            }
            (*ss).top = f.add(DRIVER_SLOTS);
            f
        };
        rt.tx.pending_slot = frame;
        // SAFETY: slot 2 of the base frame just pushed.
        rt.overlay.slot = unsafe { frame.add(2) };
        // SAFETY: slot 3 of the base frame: the pending exception object (a GC root).
        rt.exc_slot = unsafe { frame.add(3) };
        Ok(Driver { ctx, rt, th, frame })
    }

    /// The driver's own root slot (e.g. the Thread object a spawned thread runs).
    pub fn slot(&self) -> *mut u64 {
        // SAFETY: slot 1 of the base frame pushed in `new`.
        unsafe { self.frame.add(1) }
    }

    /// Runs `body` as a transaction, retrying it from the start while that first
    /// transaction aborts (the driver is its opener); `finish` runs on the result in the
    /// same transaction (it may abort too). `atomic`: the whole call is one transaction (a
    /// queued call). A user error ends the program.
    pub fn run(
        &mut self,
        atomic: bool,
        mut body: impl FnMut(*mut Ctx) -> Word,
        mut finish: impl FnMut(&mut Runtime, Word) -> Word,
    ) {
        let ctx: *mut Ctx = &mut *self.ctx;
        loop {
            self.rt.begin(ctx);
            {
                let c = &mut *self.ctx;
                c.depth = 0;
                c.txn_depth = 0;
                c.atomic_depth = atomic as u64;
            }
            self.rt.exc_stash.clear();
            let r = body(ctx);
            let r = if r == ERR { r } else { finish(&mut self.rt, r) };
            if r == ERR {
                // The error leaves the thread: final, unless the transaction was doomed.
                if self.rt.tx.aborting || !self.rt.error_may_stand() {
                    debug_assert_eq!(self.ctx.txn_depth, 0);
                    continue;
                }
                fail(&mut self.rt);
            }
            if self.rt.commit().is_err() {
                debug_assert_ne!(self.ctx.txn_depth, NO_OPENER);
                continue;
            }
            break;
        }
        // Threads spawned by the last transaction.
        self.run_pending();
    }

    /// Starts the threads spawned by the last committed transaction (in a transaction of
    /// its own, which only reads).
    pub(crate) fn run_pending(&mut self) {
        // SAFETY: the pending slot is slot 0 of the base frame.
        if unsafe { *self.frame } == NONE {
            return;
        }
        let ctx: *mut Ctx = &mut *self.ctx;
        loop {
            self.rt.begin(ctx);
            start_pending(&mut self.rt);
            if self.rt.commit().is_ok() {
                break;
            }
        }
    }
}

/// Prints the pending error of `rt` (its transaction is inevitable: committed first, with
/// its output) and ends the process with status 1 (`ProgramInfo::exit`). Only the first
/// failing thread prints.
pub(crate) fn fail(rt: &mut Runtime) -> ! {
    let info = rt.info.clone();
    let mut failed = info.output.failed.lock().unwrap();
    // The text first: the exception's `__str__` runs in its transaction.
    let (kind, msg) = rt.error_text();
    let _ = rt.commit();
    // Held until the process exits: no other thread writes a partial line meanwhile.
    let _output = rt.info.output.flush_and_hold();
    if !*failed {
        *failed = true;
        let mut text = render_runtime(kind, &msg, &rt.trace, &rt.info.file);
        let origin = rt
            .spawn_site
            .and_then(|s| rt.info.code.sites.get(s as usize));
        if let Some(site) = origin {
            text.push_str(&render_thread_origin(&rt.info.file, site.span));
        }
        use std::io::Write;
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
        crate::stats::print_stats_if_asked(rt);
        crate::trace_json::write_if_asked(rt);
        let _ = info.run_at_exit();
    }
    (info.exit)(stmjit_lang::EXIT_RUNTIME_ERROR);
}

/// Starts the OS threads of the Thread objects that the committed transaction spawned
/// (listed in the pending slot), inside the next transaction.
pub(crate) fn start_pending(rt: &mut Runtime) {
    let starts = take_pending(rt);
    launch(&rt.info, starts);
}

/// A spawned thread to start ([`take_pending`], [`launch`]): its Thread object (committed,
/// and a global root until the thread holds it) and the trace site of its `spawn`.
pub(crate) struct Start {
    obj: Word,
    site: i64,
}

/// How long the put-off threads ([`launch`]) may all stay put off: when none has started
/// for that long, the oldest starts at the next opportunity whatever the queue for
/// segments (so a program whose threads wait in loops for a thread not started yet goes
/// on, one more thread each time).
const MAX_DEFER: std::time::Duration = std::time::Duration::from_millis(10);

/// How long one put-off thread waits before it starts first (the most recent start first,
/// an old one could wait for ever while threads are spawned), one per [`MAX_DEFER`].
const MAX_AGE: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether a thread spawned now would only wait for a segment behind others: at least two
/// per segment wait, or are starting and will. It is then put off, without an OS thread
/// (issue 20): a spawn tree started every thread at once, breadth first, nearly all of them
/// parked in the queue, so that thousands of OS threads lived at once (16 K at depth 13,
/// past `vm.max_map_count`), each created and destroyed (`clone3`, `mmap`, `munmap`: most
/// of the run's CPU). Put-off threads start the most recent first, as threads end or block:
/// depth first, few OS threads, each reused.
fn queue_is_long(info: &ProgramInfo) -> bool {
    let waiting = info.stm.threads_waiting_for_segment() + info.threads.starting.load(Relaxed);
    waiting >= 2 * info.stm.num_segments() as u64
}

/// The next put-off thread to start: the oldest if it has waited [`MAX_AGE`] (one per
/// [`MAX_DEFER`]), or [`MAX_DEFER`] while none started for as long; else the most recent,
/// unless `only_aged` or the queue for segments is long.
fn next_deferred(info: &ProgramInfo, only_aged: bool) -> Option<Start> {
    let th = &info.threads;
    if th.deferred_len.load(Relaxed) == 0 {
        return None;
    }
    let mut d = th.deferred.lock().unwrap();
    // One at a time, at most one per MAX_DEFER: starting every aged one at once made a
    // spawn tree whose threads stalled for 10 ms (a loaded machine) start thousands of OS
    // threads, breadth first.
    let stuck = d.last_start.elapsed() >= MAX_DEFER;
    let aged = d.list.front().is_some_and(|(_, t)| {
        let age = t.elapsed();
        stuck && age >= MAX_DEFER || age >= MAX_AGE && d.last_aged.elapsed() >= MAX_DEFER
    });
    let s = if aged {
        d.list.pop_front()
    } else if only_aged || queue_is_long(info) {
        None
    } else {
        d.list.pop_back()
    };
    th.deferred_len.store(d.list.len(), Relaxed);
    if s.is_some() {
        let now = std::time::Instant::now();
        d.last_start = now;
        if aged {
            d.last_aged = now;
        }
    }
    s.map(|(s, _)| s)
}

/// Starts the put-off threads that may start now ([`next_deferred`]): call where a thread
/// blocks or ends (the queue for segments shortens), or, `only_aged`, at a transaction's
/// begin. Cheap when none is put off.
pub(crate) fn start_deferred(info: &Arc<ProgramInfo>, only_aged: bool) {
    while let Some(s) = next_deferred(info, only_aged) {
        start_now(info, s);
    }
}

/// The threads that the committed transaction spawned (listed in the pending slot), taken
/// out of it inside the next transaction (which only reads), counted as running and rooted,
/// for [`launch`] to start, in or out of a transaction. A transaction that waits next
/// starts them after its commit, without its segment (`commit_for_wait`): starting an OS
/// thread (`mmap`, `clone3`, under the process's address-space lock) inside it kept one of
/// the few segments idle while other threads queued for it (issue 20).
pub(crate) fn take_pending(rt: &mut Runtime) -> Vec<Start> {
    let slot = rt.tx.pending_slot;
    // SAFETY: the pending slot is the driver's base-frame slot (or null without a driver).
    if slot.is_null() || unsafe { *slot } == NONE {
        return Vec::new();
    }
    // SAFETY: as above.
    let list = unsafe { std::mem::replace(&mut *slot, NONE) };
    let items = rt.list_items(list);
    let mut starts = Vec::with_capacity(items.len());
    for obj in items {
        // Committed (the list was committed), so it may be registered as a root until the
        // new thread has it in its own shadow stack.
        rt.stm.add_root(obj);
        rt.info.threads.table.lock().unwrap().live += 1;
        rt.info.threads.spawned_total.fetch_add(1, Relaxed);
        let data = rt.ld(obj, offset_of!(OpaqueObj, a) as u64);
        let site = value::to_int(rt.list_get(data, T_SITE));
        starts.push(Start { obj, site });
    }
    starts
}

/// Starts the threads of [`take_pending`]: hands each to an idle pooled OS thread, or
/// starts a new one; or puts it off while the queue for segments is long
/// ([`queue_is_long`]).
pub(crate) fn launch(info: &Arc<ProgramInfo>, starts: Vec<Start>) {
    for s in starts {
        if queue_is_long(info) {
            let mut d = info.threads.deferred.lock().unwrap();
            if d.list.is_empty() {
                d.last_start = std::time::Instant::now();
            }
            d.list.push_back((s, std::time::Instant::now()));
            info.threads.deferred_total.fetch_add(1, Relaxed);
            info.threads.deferred_len.store(d.list.len(), Relaxed);
        } else {
            start_now(info, s);
        }
    }
}

/// OS threads started for spawned threads after which the process's futexes move to the
/// kernel's global hash table (`stmjit_runtime::use_global_futex_hash`): with many threads
/// parked, the private table's few buckets make every wake-up walk long chains; a program
/// with fewer threads does not pay the switch (~40 ms of waiting).
const MANY_OS_THREADS: u64 = 64;

/// Starts the thread of `start` on an idle pooled OS thread or a new one.
fn start_now(info: &Arc<ProgramInfo>, start: Start) {
    let Start { obj, site } = start;
    let job_info = info.clone();
    let job: thread_pool::Job = Box::new(move || {
        let keep = thread_pool::pooled(&job_info);
        thread_main(job_info.clone(), obj, site);
        // A thread that ends leaves room for a put-off one: it runs next on this OS thread
        // where OS threads are reused (see `thread_pool`), else on a new one. Every end
        // looks, so the last thread to end before the queue for segments is short starts
        // the put-off ones (a join may be waiting for one).
        if keep {
            while let Some(Start { obj, site }) = next_deferred(&job_info, false) {
                job_info.threads.starting.fetch_add(1, Relaxed);
                thread_main(job_info.clone(), obj, site);
            }
        } else {
            start_deferred(&job_info, false);
        }
        keep
    });
    // An idle pooled OS thread first: it adds no mapping (its stack and signal stack
    // exist, and the shadow stack usually comes from the runtime's pool), so the room
    // for a thread is not checked; that check reads /proc/self/maps near the limit
    // (~55 ms with 64 K mappings, 12% of the CPU of a spawn tree of 16 K threads).
    let job = if thread_pool::pooled(info) {
        info.threads.starting.fetch_add(1, Relaxed);
        match POOL.hand_to_idle(job) {
            Ok(()) => return,
            Err(job) => {
                info.threads.starting.fetch_sub(1, Relaxed);
                job
            }
        }
    } else {
        job
    };
    let shadow = info.stm.thread_reserve_bytes();
    if let Err(m) = room_for_a_thread(&info.threads, shadow) {
        spawn_failed(info, site, &std::io::Error::other(m));
    }
    info.threads.starting.fetch_add(1, Relaxed);
    let detached = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let go = detached.clone();
    let started = std::thread::Builder::new()
        .stack_size(stmjit_lang::stack::BIG_STACK)
        .spawn(move || {
            stmjit_lang::stack::mark_thread(stmjit_lang::stack::BIG_STACK);
            POOL.worker(job);
            // Not before it is detached (see `detach`).
            while !go.load(Acquire) {
                std::thread::park();
            }
        });
    match started {
        Ok(handle) => {
            let started_before = info.threads.os_threads.fetch_add(1, Relaxed);
            if started_before + 1 == MANY_OS_THREADS {
                // On a thread of its own: the switch sleeps ~40 ms in the kernel. If that
                // thread cannot start, wake-ups only walk longer bucket chains.
                let _ = std::thread::Builder::new()
                    .name("stmjit-futex-hash".into())
                    .spawn(stmjit_runtime::use_global_futex_hash);
            }
            detach(handle, &detached)
        }
        Err(e) => spawn_failed(info, site, &e),
    }
}

/// Detaches the new thread of `handle` (drops the handle), then lets it end (`detached`
/// set, the thread unparked): it waits for that after its last statement. glibc's
/// `pthread_detach` marks the thread detached and then reads its descriptor, at the top of
/// its stack, while a thread that ends sees itself detached and frees that stack: a thread
/// that ended between the two (a spawned call that returns at once, its spawner preempted)
/// made the detach read unmapped memory (1 GiB stacks are never cached: freeing unmaps
/// them), a segfault of the soak benchmark after 5 minutes (1 M threads). The wait is at
/// the thread's end, not its start: there it is nearly always over already, where at the
/// start the new thread usually parked and waited for its spawner to run again (a context
/// switch per thread, issue 20).
fn detach(handle: std::thread::JoinHandle<()>, detached: &std::sync::atomic::AtomicBool) {
    let thread = handle.thread().clone();
    drop(handle);
    detached.store(true, Release);
    thread.unpark();
}

/// The end of the program when a spawned thread cannot start (too many threads, or no
/// memory for one more stack or shadow stack): a MemoryError at the `spawn` call (trace
/// site `site`, -1 if unknown). The call's transaction has committed (a thread starts only
/// then), so it cannot be raised there: it ends the program, as an uncaught error would.
pub(crate) fn spawn_failed(info: &ProgramInfo, site: i64, e: &std::io::Error) -> ! {
    let trace: Vec<TraceEntry> = usize::try_from(site)
        .ok()
        .and_then(|s| info.code.sites.get(s))
        .map(|s| TraceEntry {
            span: s.span,
            function: info.func_names[s.func as usize].clone(),
        })
        .into_iter()
        .collect();
    let live = info.threads.table.lock().unwrap().live;
    let msg = format!("cannot start a thread ({live} running): {e}");
    let text = render_runtime("MemoryError", &msg, &trace, &info.file);
    let _output = info.output.flush_and_hold();
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    let _ = info.run_at_exit();
    (info.exit)(stmjit_lang::EXIT_RUNTIME_ERROR);
}

/// Runs the Thread `obj` (spawned at trace site `site`) to its end on the calling OS thread
/// (a new one, or one of the [`POOL`]'s).
fn thread_main(info: Arc<ProgramInfo>, obj: Word, site: i64) {
    // The OS thread exists but its shadow stack may still not fit (an address-space limit
    // reached by the threads started meanwhile): the same MemoryError, never a panic.
    let driver = Driver::try_new(info.clone());
    info.threads.starting.fetch_sub(1, Relaxed);
    let mut d = match driver {
        Ok(d) => d,
        Err(e) => spawn_failed(&info, site, &e),
    };
    // SAFETY: the driver's own slot; then the object no longer needs the global root.
    unsafe { *d.slot() = obj };
    info.stm.remove_root(obj);
    let slot = d.slot();
    let mut id = 0;
    d.run(
        false,
        |ctx| {
            let rt = rt_of(ctx);
            // SAFETY: the driver's slot holds the Thread object.
            let obj = unsafe { *slot };
            let data = rt.ld(obj, offset_of!(OpaqueObj, a) as u64);
            let f = rt.list_get(data, T_FUNC);
            let args = rt.list_items(rt.list_get(data, T_ARGS));
            id = value::to_int(rt.list_get(data, T_ID)) as usize;
            rt.thread_id = Some(id);
            if let Some(t) = rt.stm.tracer() {
                t.name_thread(&format!("thread {}", id + 1));
            }
            let site = value::to_int(rt.list_get(data, T_SITE));
            rt.spawn_site = u64::try_from(site).ok();
            let r = super::calls::call_value(ctx, f, &args);
            let rt = rt_of(ctx);
            // The error leaves the thread (for its `join`): final, unless the transaction
            // was doomed (then it restarts).
            if r == ERR && !rt.tx.aborting && !rt.error_may_stand() {
                return ERR;
            }
            if r == ERR && !rt.tx.aborting && rt.trace.is_empty() && site >= 0 {
                let span = rt.info.code.sites[site as usize].span;
                rt.trace.push(stmjit_lang::diag::TraceEntry {
                    span,
                    function: "<thread>".into(),
                });
            }
            if r == ERR && !rt.tx.aborting {
                // SAFETY: as above.
                return keep_failure(rt, unsafe { *slot }, id);
            }
            r
        },
        |rt, r| {
            // SAFETY: as above.
            let obj = unsafe { *slot };
            let data = rt.ld(obj, offset_of!(OpaqueObj, a) as u64);
            match rt.list_set(data, T_RESULT, r) {
                Ok(()) => NONE,
                Err(e) => rt.unwind(e),
            }
        },
    );
    let mut t = info.threads.table.lock().unwrap();
    t.done[id] = true;
    t.live -= 1;
    let joiners = t.joiners.remove(&id).unwrap_or_default();
    // The segment this thread keeps goes to the first joiner, which runs next anyway:
    // queueing behind every thread that waits for a segment, it would park a second time
    // (issue 20). Under the table's lock, with `done` set: the joiner takes it once it sees
    // the end (`wait_done`).
    if let Some(&(_, token)) = joiners.first() {
        if let Some(seg) = d.th.hand_kept_to(token) {
            t.handed.insert(token, seg);
        }
    }
    for (joiner, _) in joiners {
        joiner.unpark();
    }
    if t.live == 0 {
        // Only `wait_all` waits for that.
        info.threads.ended.notify_all();
    }
}

/// The end of a spawned thread whose call raised (its transaction made inevitable): the
/// exception object goes into the Thread object, the rest into [`ThreadTable::failures`],
/// and the thread ends normally. `ERR` (the error still pending: the program ends with it)
/// if the object cannot be made.
fn keep_failure(rt: &mut Runtime, thread: Word, id: usize) -> Word {
    let mark = rt.mark();
    let ht = rt.root(thread);
    let text = rt.error_text();
    let obj = match rt.exc_object() {
        Ok(o) => o,
        Err(_) => {
            rt.release(mark);
            return ERR;
        }
    };
    let data = rt.ld(rt.get(ht), offset_of!(OpaqueObj, a) as u64);
    rt.release(mark);
    if rt.list_set(data, T_EXC, obj).is_err() {
        return ERR;
    }
    let spawned_at = rt
        .spawn_site
        .and_then(|s| rt.info.code.sites.get(s as usize));
    let mut t = rt.info.threads.table.lock().unwrap();
    let order = t.failures.len();
    t.failures.insert(
        id,
        ThreadFailure {
            trace: rt.trace.clone(),
            text,
            spawned_at: spawned_at.map(|s| s.span),
            order,
            joined: false,
        },
    );
    drop(t);
    rt.clear_error();
    NONE
}

/// The first exception of a spawned thread that no `join()` raised: printed as an error
/// that ended the program (after its output); true if there was one.
pub fn report_unjoined(info: &ProgramInfo) -> bool {
    let t = info.threads.table.lock().unwrap();
    let Some(f) = t
        .failures
        .values()
        .filter(|f| !f.joined)
        .min_by_key(|f| f.order)
    else {
        return false;
    };
    info.output.flush();
    let (kind, msg) = &f.text;
    let mut text = render_runtime(kind, msg, &f.trace, &info.file);
    if let Some(span) = f.spawned_at {
        text.push_str(&render_thread_origin(&info.file, span));
    }
    use std::io::Write;
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
    true
}

/// `spawn(f, args...)`: a Thread object, started when this transaction commits.
pub(crate) fn spawn(rt: &mut Runtime, f: Word, args: &[Word]) -> super::R<Word> {
    let slot = rt.tx.pending_slot;
    if slot.is_null() {
        return Err(super::exc(
            ErrorKind::TypeError,
            "spawn() is not available here",
        ));
    }
    // The roots below live only for this call: a spawn in a loop must not pile them up.
    let mark = rt.mark();
    let r = spawn_rooted(rt, slot, f, args);
    rt.release(mark);
    r
}

/// The body of [`spawn`], free to root what it allocates (its caller releases the roots).
fn spawn_rooted(rt: &mut Runtime, slot: *mut Word, f: Word, args: &[Word]) -> super::R<Word> {
    let hf = rt.hold(f);
    let argl = rt.new_list(args)?;
    let ha = rt.root(argl);
    let id = {
        let mut t = rt.info.threads.table.lock().unwrap();
        t.done.push(false);
        t.done.len() - 1
    };
    let data = rt.new_list(&[
        rt.held(hf),
        rt.get(ha),
        NONE,
        value::from_int(id as i64).expect("thread ids are small"),
        value::from_int(current_site(rt)).expect("site ids are small"),
        NONE,
    ])?;
    let hd = rt.root(data);
    let obj = rt.alloc(rt.types.opaque, std::mem::size_of::<OpaqueObj>() as u64)?;
    rt.st(obj, offset_of!(OpaqueObj, kind) as u64, OPAQUE_THREAD);
    rt.st(obj, offset_of!(OpaqueObj, a) as u64, rt.get(hd));
    let ho = rt.root(obj);
    // SAFETY: the pending slot is the driver's base-frame slot.
    if unsafe { *slot } == NONE {
        let l = rt.new_list(&[])?;
        // SAFETY: as above.
        unsafe { *slot = l };
    }
    // SAFETY: as above (a GC root, kept up to date by the collector).
    let list = unsafe { *slot };
    rt.list_push(list, rt.get(ho))?;
    // Commit soon, so that the thread starts.
    rt.set_budget(0);
    Ok(rt.get(ho))
}

/// The trace site of the builtin call in progress (`Ctx::site`: `spawn`, `q.run()`), or -1
/// when unknown.
pub(crate) fn current_site(rt: &Runtime) -> i64 {
    if rt.ctx.is_null() {
        return -1;
    }
    // SAFETY: a non-null context of the runtime is live while one of its helpers runs.
    let site = unsafe { (*rt.ctx).site };
    if (site as usize) < rt.info.code.sites.len() {
        site as i64
    } else {
        -1
    }
}

/// Commits the running transaction (threads it spawned start) before a wait, leaving the
/// thread outside any transaction, its segment handed over if other threads wait for one.
/// `Err` if the commit aborted (the opener restarts).
pub(crate) fn commit_for_wait(rt: &mut Runtime, ctx: *mut Ctx) -> Result<(), Aborted> {
    rt.commit()?;
    rt.begin(ctx);
    let mut starts = Vec::new();
    loop {
        // Taking them is not undone by an abort of this transaction (it only reads).
        starts.append(&mut take_pending(rt));
        if rt.commit().is_ok() {
            rt.detach();
            // Started without a segment: the next thread in line runs meanwhile.
            launch(&rt.info, starts);
            return Ok(());
        }
        rt.begin(ctx);
    }
}

/// `t.join()`: waits (outside any transaction, so others go on) for the thread to finish
/// and returns its result.
pub(crate) fn join(ctx: *mut Ctx, obj: Word) -> Word {
    join_at(ctx, obj, None)
}

/// A restart point of the calling JIT frame that a join may give the transaction it begins
/// after waiting: the frame's first slot and the point's number (`txn::set_restart_point`).
#[derive(Clone, Copy)]
pub(crate) struct RestartAt {
    frame: *mut u64,
    point: u64,
}

/// `t.join()` of a statement whose start is a restart point of the calling frame, compiled
/// only where running the statement again from its start after the join repeats nothing the
/// committed transaction did (`x.join()`, `v = x.join()`, `v += x.join()`, names only: see
/// `jit/src/compile/joins.rs`): the transaction that follows a join that had to commit
/// first then restarts there instead of being inevitable. Another receiver than a Thread
/// takes the method call of `stmjit_call_method` (`name`, `argv` and `site` are its).
///
/// # Safety
/// As `stmjit_call_method` with one argument word (the receiver); `frame` is the calling
/// JIT frame, the topmost one, and `point` one of its restart points.
pub unsafe extern "C" fn stmjit_join_at(
    ctx: *mut Ctx,
    frame: *mut u64,
    point: u64,
    name: u64,
    argv: *const Word,
    site: *const crate::site_cache::SiteCache,
) -> Word {
    // SAFETY: caller's contract: the receiver is in the frame slot at argv.
    let obj = unsafe { *argv };
    let rt = rt_of(ctx);
    let thread = rt.is(obj, rt.types.opaque)
        && rt.ld(obj, offset_of!(OpaqueObj, kind) as u64) == OPAQUE_THREAD;
    if thread {
        return join_at(ctx, obj, Some(RestartAt { frame, point }));
    }
    // SAFETY: caller's contract.
    unsafe { crate::calls::stmjit_call_method(ctx, name, argv, 1, site) }
}

/// [`join`], with the restart point the transaction after a commit and a wait takes, if any.
fn join_at(ctx: *mut Ctx, obj: Word, at: Option<RestartAt>) -> Word {
    let rt = rt_of(ctx);
    let data = rt.ld(obj, offset_of!(OpaqueObj, a) as u64);
    let id = value::to_int(rt.list_get(data, T_ID)) as usize;
    if rt.thread_id == Some(id) {
        // The wait would never end (CPython raises the same).
        return rt.raise(ErrorKind::RuntimeError, "cannot join current thread");
    }
    // A cycle already closed: raise before committing (`wait_done` checks again, atomically
    // with its registration, for joins that begin at the same time).
    if let Some(me) = rt.thread_id {
        if rt.info.threads.table.lock().unwrap().joins(me, id) {
            return rt.raise(ErrorKind::RuntimeError, stmjit_lang::diag::JOIN_DEADLOCK);
        }
    }
    let mut ended = true;
    let mark = rt.mark();
    let ho = rt.root(obj);
    // SAFETY: helpers receive the live context of their thread.
    let atomic = unsafe { (*ctx).atomic_depth } > 0;
    if atomic && (is_pending(rt, obj) || rt.tx.split_atomic && !is_done(rt, id)) {
        // A thread spawned by this very block: it could only start when the block ends, so
        // the block commits here (its atomicity ends at this join, as in the interpreter and
        // as Python's threads do), the thread starts and ends, and the rest of the block runs
        // in a transaction without restart point (inevitable). A later join in that rest
        // splits it again: waiting inside it could keep the thread from a segment.
        if commit_for_wait(rt, ctx).is_err() {
            rt.release(mark);
            return ERR;
        }
        ended = wait_done(rt, id);
        rt.begin_without_restart_point(ctx);
        rt.tx.split_atomic = true;
    } else if !is_done(rt, id) && join_may_restart(rt, atomic) && rt.abort_until_thread_ends(id) {
        // A running thread: the transaction aborts, waits for it outside any transaction
        // (`Runtime::begin`) and runs again from its restart point, where this join finds
        // the thread ended. Under a GIL no other thread runs during an atomic block, so the
        // block can only have run after the thread ended.
        rt.release(mark);
        return ERR;
    } else if atomic && !is_done(rt, id) {
        // Inevitable (the block called `shutdown()`): it cannot be undone and run after
        // the thread, and waiting in it would never end (the thread's writer commits wait
        // for this transaction: they stop the world, or append to the commit log only once
        // no other transaction is inevitable; with one segment the thread never gets one).
        // Under a GIL the block would deadlock too: raise, as for a cycle of joins.
        rt.release(mark);
        return rt.raise(
            ErrorKind::RuntimeError,
            stmjit_lang::diag::JOIN_IN_INEVITABLE,
        );
    } else if !is_done(rt, id) {
        // The transaction wrote or spawned something the thread may be waiting for (or it
        // spawned this very thread), or it is inevitable: commit, wait, and go on without a
        // restart point (inevitable).
        if commit_for_wait(rt, ctx).is_err() {
            rt.release(mark);
            return ERR;
        }
        ended = wait_done(rt, id);
        match at {
            // The rest of the statement runs again from its start if this transaction
            // aborts (`stmjit_join_at`): the join then finds the thread ended.
            // SAFETY: the caller's frame and point (`stmjit_join_at`'s contract).
            Some(a) => unsafe { rt.begin_at(ctx, a.frame, a.point) },
            None => rt.begin_without_restart_point(ctx),
        }
    } else {
        // Ended: its last commit came before its end was marked, but this transaction's
        // snapshot may predate it (commit log); the view is brought up to it (or, on a
        // conflict, the transaction runs again).
        if let Err(e) = rt.refresh() {
            rt.release(mark);
            return rt.unwind(e);
        }
        if !atomic {
            // The next poll ends the transaction: a later join then begins in one that has
            // written nothing yet, and can wait as above instead of committing.
            rt.set_budget(0);
        }
    }
    let obj = rt.get(ho);
    rt.release(mark);
    if !ended {
        return rt.raise(ErrorKind::RuntimeError, stmjit_lang::diag::JOIN_DEADLOCK);
    }
    let data = rt.ld(obj, offset_of!(OpaqueObj, a) as u64);
    let exc = rt.list_get(data, T_EXC);
    if exc != NONE {
        // The thread's exception, raised again here: its frames, the `spawn` call as the
        // `<thread>` frame (once), then the joiner's as it unwinds.
        let mut trace = Vec::new();
        if let Some(f) = rt.info.threads.table.lock().unwrap().failures.get_mut(&id) {
            f.joined = true;
            trace = f.trace.clone();
            if let Some(span) = f.spawned_at {
                let origin = TraceEntry {
                    span,
                    function: "<thread>".into(),
                };
                if trace.last() != Some(&origin) {
                    trace.push(origin);
                }
            }
        }
        return rt.raise_obj(exc, trace);
    }
    rt.list_get(data, T_RESULT)
}

/// Whether a join of a running thread may abort the running transaction, wait for the
/// thread outside any transaction and run the transaction again from its restart point,
/// instead of committing it first: inside an atomic block always (the block runs after the
/// thread, as under a global lock); elsewhere only while the transaction has written and
/// spawned nothing, so that rolling it back hides nothing the thread may be waiting for (a
/// thread that waits for a value the joiner stored before the join must see it committed).
/// The caller checks that the transaction is not inevitable (`abort_until_thread_ends`).
fn join_may_restart(rt: &mut Runtime, atomic: bool) -> bool {
    let slot = rt.tx.pending_slot;
    // SAFETY: a non-null pending slot is the driver's base-frame slot (a GC root).
    let spawned = !slot.is_null() && unsafe { *slot } != NONE;
    atomic || !spawned && !rt.th().has_written()
}

/// Whether thread `id` has ended.
fn is_done(rt: &Runtime, id: usize) -> bool {
    rt.info.threads.table.lock().unwrap().done[id]
}

/// Whether the Thread `obj` was spawned by the running transaction (not started yet).
fn is_pending(rt: &Runtime, obj: Word) -> bool {
    let slot = rt.tx.pending_slot;
    if slot.is_null() {
        return false;
    }
    // SAFETY: the pending slot is the driver's base-frame slot (a GC root).
    let list = unsafe { *slot };
    list != NONE && (0..rt.list_len(list)).any(|k| rt.list_get(list, k) == obj)
}

/// Blocks until thread `id` has ended (call outside any transaction: a thread waiting in
/// one would keep the joined thread's writer commits waiting for it); false,
/// without waiting, if `id` is waiting for the calling thread (a cycle of joins).
pub(crate) fn wait_done(rt: &mut Runtime, id: usize) -> bool {
    let token = rt.th().token();
    let info = rt.info.clone();
    let threads = &info.threads.table;
    let t0 = rt.stm.tracer().map(|_| std::time::Instant::now());
    let mut t = threads.lock().unwrap();
    let waited = !t.done[id];
    // Registered under the same lock as the check: of two joins closing a cycle at once,
    // the second sees the first.
    let me = rt.thread_id.filter(|_| waited);
    if let Some(me) = me {
        if t.joins(me, id) {
            return false;
        }
        t.waiting_for.insert(me, id);
    }
    if !t.done[id] && info.threads.deferred_len.load(Relaxed) > 0 {
        // This thread blocks: a put-off thread (perhaps `id`) may start instead.
        drop(t);
        start_deferred(&info, false);
        t = threads.lock().unwrap();
    }
    while !t.done[id] {
        // Parked until thread `id` ends (its end unparks the joiners registered under its
        // id, under this mutex, so the wake-up cannot be missed); a spurious wake-up checks
        // again.
        t.joiners
            .entry(id)
            .or_default()
            .push((std::thread::current(), token));
        drop(t);
        std::thread::park();
        t = threads.lock().unwrap();
        if let Some(list) = t.joiners.get_mut(&id) {
            list.retain(|j| j.1 != token);
        }
    }
    if let Some(me) = me {
        t.waiting_for.remove(&me);
    }
    let handed = t.handed.remove(&token);
    drop(t);
    if let Some(seg) = handed {
        rt.th().adopt_kept(seg);
    }
    if let (Some(tracer), Some(t0), true) = (rt.stm.tracer(), t0, waited) {
        tracer.span_since(stmjit_runtime::trace::SpanKind::JoinWait, t0);
    }
    true
}

/// Waits until every spawned thread has ended (the end of the program, as in Python).
pub fn wait_all(info: &Arc<ProgramInfo>) {
    let mut t = info.threads.table.lock().unwrap();
    while t.live > 0 {
        drop(t);
        // Put-off threads count as running: they start as others end, or once aged.
        start_deferred(info, false);
        t = info.threads.table.lock().unwrap();
        if t.live > 0 {
            t = info.threads.ended.wait_timeout(t, MAX_DEFER).unwrap().0;
        }
    }
}

/// Hands out the indices of a queue round's calls to its workers, a run of them at a time:
/// one shared counter bumped per call moved its cache line between the cores at every
/// transaction (a TransactionQueue's calls are often transactions of a microsecond or less).
/// Runs shrink as the calls run out, so that no worker is left with a long run while the
/// others idle; the queue promises no order, so which worker runs which call is free.
struct Dispenser {
    next: std::sync::atomic::AtomicUsize,
    len: usize,
    workers: usize,
}

impl Dispenser {
    /// The longest run handed out at once.
    const MAX_RUN: usize = 32;

    fn new(len: usize, workers: usize) -> Dispenser {
        Dispenser {
            next: std::sync::atomic::AtomicUsize::new(0),
            len,
            workers,
        }
    }

    /// The next run of indices, or `None` when every call is taken: about an eighth of
    /// each worker's share of what is left, 1 to [`Self::MAX_RUN`].
    fn take(&self) -> Option<std::ops::Range<usize>> {
        let seen = self.next.load(Relaxed);
        let left = self.len.saturating_sub(seen);
        let run = (left / (8 * self.workers)).clamp(1, Self::MAX_RUN);
        let start = self.next.fetch_add(run, Relaxed);
        (start < self.len).then(|| start..(start + run).min(self.len))
    }
}

/// `q.add(f, *args)`: a TransactionQueue keeps its calls flat in one list (its opaque
/// object's `a` field): for each call, the number of its arguments (an int), the callable,
/// then the arguments. One list object per queued call was most of the time of filling a
/// queue (microtq: 145 of 165 ms of CPU for 500 000 `q.add`: allocating, promoting and
/// rooting a million small objects).
pub(crate) fn queue_add(rt: &mut Runtime, queue: Word, f: Word, args: &[Word]) -> super::R<()> {
    let calls = rt.ld(queue, offset_of!(OpaqueObj, a) as u64);
    let count = value::from_int(args.len() as i64).expect("small");
    // The usual few arguments without a heap buffer (a malloc and a free per call).
    let mut buf = [NONE; 8];
    if let Some(words) = buf.get_mut(..args.len() + 2) {
        words[0] = count;
        words[1] = f;
        words[2..].copy_from_slice(args);
        return rt.list_extend(calls, words);
    }
    rt.list_extend(calls, &[&[count, f], args].concat())
}

/// Where each call starts in a queue's flat list (see [`queue_add`]), and the list's length
/// last: call `k` is the words `starts[k] .. starts[k + 1]`, its argument count first.
pub(crate) fn call_starts(items: &[Word]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i < items.len() {
        starts.push(i);
        i += value::to_int(items[i]) as usize + 2;
    }
    debug_assert_eq!(i, items.len(), "a queue's flat list ends inside a call");
    starts.push(items.len());
    starts
}

/// How many queued calls a worker runs in one transaction: a queued call is atomic, and
/// so is a run of them (serializability allows it: docs/LANGUAGE.md). A transaction per
/// call of microtq (500 000 calls of one increment) spent most of a worker's time in
/// `begin` and `commit`, and on 2 segments each commit's locked writes moved cache lines
/// between the cores. Doubles after a transaction that committed at its first try,
/// halves after one that aborted (a conflict then loses fewer calls), 1 to
/// [`Batch::MAX`].
struct Batch {
    size: usize,
}

impl Default for Batch {
    fn default() -> Batch {
        Batch { size: 1 }
    }
}

impl Batch {
    /// The most calls in one transaction (a dispenser run is at most as long).
    const MAX: usize = Dispenser::MAX_RUN;
    /// Time-stamp ticks (about 20 to 100 us) after which a transaction takes no further
    /// call: long calls are not batched, so a conflict never loses much.
    const TICKS: u64 = 200_000;

    fn adapt(&mut self, aborted: bool) {
        self.size = if aborted {
            (self.size / 2).max(1)
        } else {
            (self.size * 2).min(Self::MAX)
        };
    }

    /// Whether the transaction that ran the last call (begun at tick `t0`) takes no
    /// further call: it is long enough, it became inevitable (it would keep the others
    /// from committing), it spawned threads (they start at its commit, and a later call
    /// joining one would split it), or it was split (a join).
    fn ends_after(rt: &mut Runtime, t0: u64) -> bool {
        stmjit_runtime::ticks::now().wrapping_sub(t0) > Self::TICKS
            || rt.th().is_inevitable()
            || rt.tx.split_atomic
            // SAFETY: the pending slot is the driver's base-frame slot (a GC root).
            || !rt.tx.pending_slot.is_null() && unsafe { *rt.tx.pending_slot } != NONE
    }
}

/// Runs queued call `call` (its words in the round's list `round`) in the running
/// transaction; an error it raises is reported as raised through `q.run()` (at
/// `run_site`), as the interpreter does.
fn run_call(
    ctx: *mut Ctx,
    round: Word,
    call: std::ops::Range<u64>,
    parts: &mut Vec<Word>,
    run_site: i64,
) -> Word {
    let rt = rt_of(ctx);
    rt.list_range_into(round, call, parts);
    let r = super::calls::call_value(ctx, parts[0], &parts[1..]);
    let rt = rt_of(ctx);
    if r == ERR && !rt.tx.aborting && run_site >= 0 {
        let s = &rt.info.code.sites[run_site as usize];
        let function = rt.info.func_names[s.func as usize].clone();
        rt.trace.push(stmjit_lang::diag::TraceEntry {
            span: s.span,
            function,
        });
    }
    r
}

/// `q.run()` of a TransactionQueue whose call list is `calls`: runs every queued call as
/// one transaction, on as many worker threads as there are segments, until no call is left
/// (calls added while running run too).
pub(crate) fn run_queue(ctx: *mut Ctx, queue: Word) -> Word {
    let rt = rt_of(ctx);
    let mark = rt.mark();
    let hq = rt.root(queue);
    let run_site = current_site(rt);
    loop {
        let rt = rt_of(ctx);
        let calls = rt.ld(rt.get(hq), offset_of!(OpaqueObj, a) as u64);
        if rt.list_len(calls) == 0 {
            break;
        }
        // Only the argument counts are read here: ints, which no collection changes.
        let starts = call_starts(&rt.list_items(calls));
        // The round's list is kept as it is (one root) and the queue gets a new one, where
        // calls added while the round runs go.
        let held = rt.root(calls);
        let fresh = match rt.new_list(&[]) {
            Ok(l) => l,
            Err(e) => {
                rt.release(mark);
                return rt.unwind(e);
            }
        };
        let q = rt.get(hq);
        if let Err(e) = rt.wb(q) {
            rt.release(mark);
            return rt.unwind(e);
        }
        rt.st(q, offset_of!(OpaqueObj, a) as u64, fresh);
        if commit_for_wait(rt, ctx).is_err() {
            rt.release(mark);
            return ERR;
        }
        // Committed, so old: it does not move, and as a global root it outlives any major
        // collection while the workers read their calls from it.
        let round = rt.get(held);
        rt.stm.add_root(round);
        let n_calls = starts.len() - 1;
        let workers = rt.stm.num_segments().min(n_calls).max(1);
        let next = Dispenser::new(n_calls, workers);
        let info = rt.info.clone();
        std::thread::scope(|s| {
            for _ in 0..workers {
                let worker_info = info.clone();
                let (next, starts) = (&next, &starts);
                std::thread::Builder::new()
                    .stack_size(stmjit_lang::stack::BIG_STACK)
                    .spawn_scoped(s, move || {
                        let info = worker_info;
                        stmjit_lang::stack::mark_thread(stmjit_lang::stack::BIG_STACK);
                        if let Some(t) = info.stm.tracer() {
                            t.name_thread("queue worker");
                        }
                        // No room for its shadow stack: the MemoryError of a thread that
                        // cannot start, at `q.run()`, never a panic.
                        let mut d = match Driver::try_new(info.clone()) {
                            Ok(d) => d,
                            Err(e) => spawn_failed(&info, run_site, &e),
                        };
                        let mut parts = Vec::new();
                        let mut batch = Batch::default();
                        while let Some(taken) = next.take() {
                            let mut k = taken.start;
                            while k < taken.end {
                                let first = k;
                                let until = (first + batch.size).min(taken.end);
                                let mut tries = 0;
                                d.run(
                                    true,
                                    |ctx| {
                                        tries += 1;
                                        k = first;
                                        let t0 = stmjit_runtime::ticks::now();
                                        while k < until {
                                            let call = starts[k] as u64 + 1..starts[k + 1] as u64;
                                            let r =
                                                run_call(ctx, round, call, &mut parts, run_site);
                                            k += 1;
                                            if r == ERR || Batch::ends_after(rt_of(ctx), t0) {
                                                return r;
                                            }
                                        }
                                        NONE
                                    },
                                    |_, r| r,
                                );
                                batch.adapt(tries > 1);
                            }
                        }
                    })
                    .unwrap_or_else(|e| spawn_failed(&info, run_site, &e));
            }
        });
        rt.stm.remove_root(round);
        rt.begin_without_restart_point(ctx);
        // The roots of this round are no longer needed (the queue is rooted below them).
        // SAFETY: hq was pushed right after `mark`; the slot after it is this round's first.
        rt.release(unsafe { hq.ptr().add(1) as *mut u64 });
    }
    rt_of(ctx).release(mark);
    NONE
}

#[cfg(test)]
mod tests {
    use super::Dispenser;

    /// Every index is handed out exactly once, in runs of 1 to `MAX_RUN`, however the
    /// workers race, and runs shrink to single calls at the end.
    #[test]
    fn the_dispenser_hands_out_each_call_once() {
        for (len, workers) in [(0, 1), (1, 2), (7, 2), (1000, 2), (100_003, 4)] {
            let d = Dispenser::new(len, workers);
            let runs: Vec<Vec<std::ops::Range<usize>>> = std::thread::scope(|s| {
                let hs: Vec<_> = (0..workers)
                    .map(|_| s.spawn(|| std::iter::from_fn(|| d.take()).collect()))
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let mut seen = vec![0u8; len];
            for r in runs.iter().flatten() {
                assert!(!r.is_empty() && r.len() <= Dispenser::MAX_RUN, "{r:?}");
                for i in r.clone() {
                    seen[i] += 1;
                }
            }
            assert!(seen.iter().all(|&n| n == 1), "len {len}");
            if len == 100_003 {
                let last = runs.iter().flatten().max_by_key(|r| r.start).unwrap();
                assert_eq!(last.len(), 1, "the last run is one call");
            }
        }
    }
}
