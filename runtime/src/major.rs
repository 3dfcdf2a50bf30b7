//! The major collection: non-moving mark-sweep of the old space with the world stopped,
//! followed by re-sharing of private pages.
//!
//! # Trigger
//! Every promotion or large allocation counts towards `allocated_since_major` (a young large
//! object freed before it was published, aborted or dead young, is taken off again: it never
//! became old garbage). A thread that
//! commits runs a major collection when that volume exceeds the threshold,
//! `max(min_threshold, live bytes after the previous major collection)`, so the old space
//! stays within about twice the live size. A transaction that allocates a lot without
//! committing runs one from its allocation slow path at twice the threshold. A commit also
//! runs one when the segments' runs of private pages (each a mapping, splitting a shared
//! one) have grown by an eighth of `vm.max_map_count` since the last one: the re-sharing
//! maps them back before the process runs out of mappings (`pages.rs`).
//!
//! # Marking
//! The collector takes the commit mutex and stops every segment at a safe point (the same
//! protocol as commits). Roots:
//! - the shadow stack of every thread handle, in or out of a transaction (outside one, a
//!   thread may only push zeroed frames and store already-rooted values meanwhile: the scan
//!   reads `top` once and never writes);
//! - the global roots ([`Stm::add_root`]);
//! - the restart roots of every thread handle ([`crate::StmThread::set_restart_roots`]),
//!   read under their mutex (minor collections never look at them);
//! - for each segment running a transaction: its nursery, scanned conservatively (every word
//!   that is a tagged reference to an allocated old object marks it: young objects are not
//!   parsed, so a header the JIT has not finished is harmless and nothing young moves), its
//!   young large objects and `New` objects (kept alive until the transaction ends, since commit
//!   publishes them by address), and **both versions** of its modified objects and cards: the
//!   committed one (segment 0) and the transaction's own (its segment).
//!
//! Every object is traced in segment 0's view (committed state), except objects allocated by a
//! running transaction, traced in that transaction's segment. Traces are clipped to the
//! object's allocated size and unknown type ids are not traced, so stale memory (objects of
//! aborted transactions) can never make the collector read outside the heap.
//!
//! # Re-sharing and sweep
//! With the world still stopped, in each segment, every private page that the segment's
//! running transaction (if any) has not modified or allocated on holds exactly the committed
//! contents: it is mapped back to the shared memfd with `MAP_FIXED` and its private bit
//! cleared. The sweep is only planned meanwhile: the pages holding objects are listed and
//! taken out of the allocators' hands (`gcpage.rs`).
//!
//! Then the world resumes, and the collecting thread, still holding the commit mutex (no
//! other major collection marks meanwhile), sweeps the listed pages: unmarked objects are
//! freed and their read markers cleared in every segment, so that a reused address does not
//! inherit a stale "read" from an old transaction; the page runs that became free are punched
//! out of the memfd, which releases their memory, and only then given back to the page
//! allocator. This is sound with the other segments running because (invariants, also in
//! `docs/MAJOR_GC.md`):
//! - an unmarked object is unreachable from every segment, the committed state and the log,
//!   so no transaction reads it, writes it or sets its read markers; the marks are final
//!   (nothing marks until the next collection, which waits for the commit mutex);
//! - allocators meanwhile take only pages outside the plan (fresh runs), and a planned page
//!   returns to them only after its sweep cleared its dead objects' bits and markers;
//! - a free run was re-shared in every segment with the world stopped, so punching it
//!   changes no segment's view of a live object. A segment may privatize one meanwhile only
//!   by widening a run of private pages (`pages.rs`); its copy then holds garbage, as a
//!   private page without objects may after any collection, and objects allocated there
//!   later reach that copy by the import of their `New` records.
//!
//! The stopped part is therefore the stop, the log, marking and re-sharing: `--stats`
//! times each phase (`MajorPhase`).
//!
//! # Idle collection
//! The threshold lets the old space grow by up to `min_threshold` (64 MiB) of garbage
//! between two collections, and each page of it counts in the resident memory once per
//! segment view that touched it (segment 0 and every transaction segment map the same memfd
//! page), besides the private pages written since. A program that stops allocating before
//! reaching the threshold kept all of that for good: the soak benchmark's server, idle after
//! its load, held 50 to 84 MiB where it had run in 27 (the spawning thread, alone after the
//! load, promotes 6 MiB/s of dead thread objects with no collection due). With
//! [`crate::StmConfig::idle_collect`], a thread of the runtime checks every period whether
//! the program was idle for a whole period (no commit, no segment running, now and at the
//! previous check) with something to collect (bytes allocated or private page runs made
//! since the last collection), and then runs one major collection, which stops a world
//! that has nothing running. It runs again only after new activity.

use crate::addr_hash::AddrHash;
use crate::layout::{GRANULE, MARKER_SHIFT, PAGE_SIZE};
use crate::nursery::ThreadGc;
use crate::object::Ref;
use crate::stats::{MajorPhase, Stats};
use crate::stm::Stm;
use crate::transaction::ModKind;
use crate::value::is_ref;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Default minimum major-collection threshold (bytes allocated in the old space since the
/// previous major collection).
pub const DEFAULT_MIN_THRESHOLD: u64 = 64 << 20;

/// Runtime-wide GC state.
pub(crate) struct GcGlobal {
    /// Every thread handle's GC state (`*const ThreadGc` as usize).
    pub threads: Mutex<Vec<usize>>,
    /// Old objects kept alive by the embedder.
    pub roots: Mutex<Vec<Ref>>,
    pub min_threshold: AtomicU64,
    pub threshold: AtomicU64,
    /// Runs of private pages of all segments (`PrivateBitmap::runs`) that call for a major
    /// collection (its re-sharing maps them back): an eighth of `vm.max_map_count`, each run
    /// costing about two mappings, which leaves room for threads' stacks and the rest.
    pub map_runs_budget: AtomicU64,
    /// Runs of private pages left after the last major collection (pages the running
    /// transactions wrote cannot be re-shared): the budget counts from there, so that they
    /// do not make every commit collect.
    pub runs_after_major: AtomicU64,
    /// Shadow stacks of ended thread handles, for the next ones (at most
    /// [`crate::shadowstack::POOLED_STACKS`]): mapping a stack and unmapping it at the end
    /// (with the TLB shootdown of its touched pages) was a system call pair per thread of a
    /// spawn tree (issue 20).
    pub(crate) shadow_pool: Mutex<Vec<crate::shadowstack::Region>>,
}

impl GcGlobal {
    pub(crate) fn new() -> GcGlobal {
        GcGlobal {
            threads: Mutex::new(Vec::new()),
            roots: Mutex::new(Vec::new()),
            min_threshold: AtomicU64::new(DEFAULT_MIN_THRESHOLD),
            threshold: AtomicU64::new(DEFAULT_MIN_THRESHOLD),
            map_runs_budget: AtomicU64::new(max_map_count() / 8),
            runs_after_major: AtomicU64::new(0),
            shadow_pool: Mutex::new(Vec::new()),
        }
    }
}

/// `vm.max_map_count` (the kernel's default, 65530, when it cannot be read).
pub(crate) fn max_map_count() -> u64 {
    std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(65530)
}

impl Stm {
    /// Keeps the old object `r` (and what it references) alive until [`Stm::remove_root`]:
    /// for references the embedder holds outside any shadow stack (module globals, prebuilt
    /// constants, test fixtures). Panics on a young reference (roots must be committed).
    pub fn add_root(&self, r: Ref) {
        assert!(
            self.old.object_size(r).is_some(),
            "stmjit: add_root({r:#x}): not an old object (commit it first)"
        );
        self.gc.roots.lock().unwrap().push(r);
    }

    /// Drops one registration of `r` made by [`Stm::add_root`].
    pub fn remove_root(&self, r: Ref) {
        let mut g = self.gc.roots.lock().unwrap();
        if let Some(i) = g.iter().position(|&x| x == r) {
            g.swap_remove(i);
        }
    }

    /// Registers each of `rs` as a global root, under one lock (a `TransactionQueue` round
    /// registers every queued call).
    pub fn add_roots(&self, rs: &[Ref]) {
        for &r in rs {
            assert!(
                self.old.object_size(r).is_some(),
                "stmjit: add_roots({r:#x}): not an old object (commit it first)"
            );
        }
        self.gc.roots.lock().unwrap().extend_from_slice(rs);
    }

    /// Drops one registration of each of `rs` (a multiset: one per occurrence), in time
    /// linear in the number of roots: removing many roots one by one with
    /// [`Stm::remove_root`] is quadratic (a `TransactionQueue` round registers every call).
    pub fn remove_roots(&self, rs: &[Ref]) {
        {
            // The usual case: the roots registered last, by one `add_roots` of the same slice
            // (a queue round): drop them from the end, without a hash map of 500 000 entries
            // (6% of microtq's samples on the main thread).
            let mut g = self.gc.roots.lock().unwrap();
            if let Some(keep) = g.len().checked_sub(rs.len()) {
                if g[keep..] == *rs {
                    g.truncate(keep);
                    return;
                }
            }
        }
        let mut left: HashMap<Ref, usize, AddrHash> =
            HashMap::with_capacity_and_hasher(rs.len(), AddrHash::default());
        for &r in rs {
            *left.entry(r).or_default() += 1;
        }
        let mut g = self.gc.roots.lock().unwrap();
        g.retain(|r| match left.get_mut(r) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        });
    }

    /// Sets the minimum major-collection threshold (bytes allocated in the old space since
    /// the previous major collection); the effective threshold is the larger of it and the
    /// live size after the previous major collection.
    pub fn set_major_threshold(&self, min_bytes: u64) {
        self.gc.min_threshold.store(min_bytes, Relaxed);
        self.gc.threshold.store(min_bytes, Relaxed);
    }

    /// Sets how many runs of private pages (all segments together, beyond those left by the
    /// previous major collection) make the next commit run a major collection, whose
    /// re-sharing maps them back: by default an eighth of `vm.max_map_count`. For tests.
    pub fn set_map_runs_budget(&self, runs: u64) {
        self.gc.map_runs_budget.store(runs, Relaxed);
    }

    /// Objects larger than this are allocated outside the nursery (still young).
    pub fn large_object_limit(&self) -> u64 {
        self.large_limit
    }

    pub(crate) fn major_due(&self) -> bool {
        self.old.allocated_since_major.load(Relaxed) > self.gc.threshold.load(Relaxed)
            || self.private_runs()
                > self.gc.runs_after_major.load(Relaxed) + self.gc.map_runs_budget.load(Relaxed)
    }

    /// Whether privatization should widen new runs to join their neighbours (`pages.rs`):
    /// the runs of private pages exceed the budget.
    pub(crate) fn map_pressure(&self) -> bool {
        self.private_runs() > self.gc.map_runs_budget.load(Relaxed)
    }

    /// Runs of private pages of all transaction segments (about half the mappings that
    /// privatization added; see `PrivateBitmap::runs`).
    pub fn private_runs(&self) -> u64 {
        (1..=self.num_segments())
            .map(|k| self.segs[k].private.runs())
            .sum()
    }

    /// Commits of all segments so far (what the idle collector watches for activity).
    fn commits_so_far(&self) -> u64 {
        self.segs
            .iter()
            .map(|s| s.counters.commits.load(Relaxed))
            .sum()
    }

    /// Whether a transaction segment is RUNNING now.
    fn any_running(&self) -> bool {
        (1..=self.num_segments()).any(|k| self.segs[k].running.load(SeqCst))
    }

    /// Whether a major collection would find something to do: bytes allocated in the old
    /// space, or runs of private pages made, since the last one.
    fn garbage_since_major(&self) -> bool {
        self.old.allocated_since_major.load(Relaxed) > 0
            || self.private_runs() > self.gc.runs_after_major.load(Relaxed)
    }

    /// One check of the idle collector (module docs, "Idle collection"; public so that tests
    /// can drive it without a clock): `last` is what the previous check returned (the commit
    /// count, if it found no segment running); returns the value for the next check. Runs a
    /// major collection when nothing committed or ran in between and something is left to
    /// collect. The caller must not be RUNNING in a segment.
    pub fn idle_check(&self, last: Option<u64>) -> Option<u64> {
        if self.any_running() {
            return None;
        }
        let commits = self.commits_so_far();
        if last == Some(commits) && self.garbage_since_major() {
            self.major_collection();
            Stats::add(&self.stats.major_idle, 1);
        }
        Some(commits)
    }

    pub(crate) fn major_due_in_transaction(&self) -> bool {
        self.old.allocated_since_major.load(Relaxed) > 2 * self.gc.threshold.load(Relaxed)
    }

    /// Runs a major collection. The calling thread must not be RUNNING in any segment (it
    /// may hold one in a transaction, at a safe point).
    pub(crate) fn major_collection(&self) {
        let guard = self.commit_mutex.lock().unwrap_or_else(|e| e.into_inner());
        let stop = Instant::now();
        self.stop_the_world(0);
        let world = crate::transaction::WorldStopped(self);
        let mut laps = Laps::new(stop);
        laps.end(MajorPhase::Stop);
        // Commit log: bring the idle segments (no transaction) to the oldest revision a
        // transaction still sees, apply the entries up to it to segment 0 and free them
        // (`commitlog.rs`). The entries left are roots below, and pin their pages.
        let apply = self.log.apply.lock().unwrap_or_else(|e| e.into_inner());
        if self.config.commit_log {
            let idle: Vec<usize> = (1..=self.num_segments())
                .filter(|&k| self.tx_state(k) & crate::stm::IN_TX == 0)
                .collect();
            self.advance_log_locked(&idle);
        }
        laps.end(MajorPhase::Log);
        let threads = self.gc.threads.lock().unwrap();
        // SAFETY: registered pointers stay valid while registered (unregistered under this
        // mutex before the box is dropped); every thread in a transaction is stopped at a safe
        // point and threads outside one only touch their shadow stack (see module docs).
        let tgs: Vec<&ThreadGc> = threads
            .iter()
            .map(|&p| unsafe { &*(p as *const ThreadGc) })
            .collect();
        let mut m = Marker {
            stm: self,
            types: self.types.snapshot(),
            owner: HashMap::default(),
            stack: Vec::new(),
            found: Vec::new(),
        };
        for tg in &tgs {
            let k = tg.seg.load(SeqCst);
            if k != 0 {
                for rec in tg.modified.iter().filter(|r| r.kind == ModKind::New) {
                    m.owner.insert(rec.addr, k);
                }
                for &r in tg.young_large.keys() {
                    m.owner.insert(r, k);
                }
            }
        }
        let l = self.mem.layout;
        for tg in &tgs {
            // SAFETY: p is a slot in use of a registered shadow stack (read only).
            tg.shadow.for_each_slot(|p| m.mark(unsafe { *p }));
            for &w in tg
                .restart_roots
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
            {
                m.mark(w);
            }
            let k = tg.seg.load(SeqCst);
            if k == 0 {
                continue;
            }
            let cur = self.mem.info(k).nursery_current.load(SeqCst);
            let mut a = l.nursery_start;
            while a < cur {
                // SAFETY: [nursery_start, cur) of segment k is mapped; k is stopped.
                m.mark(unsafe { *(self.mem.addr(k, a) as *const u64) });
                a += 8;
            }
            for &r in tg.young_large.keys() {
                m.mark(r);
            }
            // An object with many modified cards has a record per card: trace its segment-k
            // version once (tracing it per record made a major collection quadratic: a
            // 1.5 M-entry dict built in one transaction spent minutes here).
            let mut traced: HashSet<Ref, AddrHash> = HashSet::default();
            for rec in tg.modified.iter() {
                match rec.kind {
                    ModKind::New => m.mark(rec.addr),
                    ModKind::Object | ModKind::Card => {
                        m.mark(rec.obj);
                        if traced.insert(rec.obj) {
                            m.trace(rec.obj, k);
                        }
                    }
                }
            }
        }
        for &r in self.gc.roots.lock().unwrap().iter() {
            m.mark(r);
        }
        // Commit log: an entry not yet applied to segment 0 holds the newest contents of
        // what it wrote, which segment 0 (where objects are traced) lacks; and its objects
        // must keep their addresses until every segment has imported it. So every record's
        // object is a root, and every word of its contents is scanned as a possible one.
        self.for_each_retained(|e| {
            for r in e.recs() {
                if r.kind == ModKind::New {
                    // Objects the entry's transaction allocated, adjacent ones merged into
                    // one range (`build_entry`): segment 0 holds their contents, and marking
                    // traces them there.
                    let mut a = r.addr;
                    while a < r.addr + r.len {
                        m.mark(a);
                        a += self.old.object_size(a).unwrap_or(GRANULE);
                    }
                    continue;
                }
                m.mark(r.obj);
                for w in e.data(r).unwrap_or(&[]).chunks_exact(8) {
                    m.mark(u64::from_ne_bytes(w.try_into().unwrap()));
                }
            }
        });
        while let Some((r, v, size)) = m.stack.pop() {
            m.trace_sized(r, v, size);
        }
        // The pages to sweep, out of the allocators' hands until swept (`gcpage.rs`).
        let plan = self.old.plan_sweep();
        laps.end(MajorPhase::Mark);
        // Re-share private pages that hold only committed data.
        let n = self.num_segments();
        let frontier = self.old.runs.frontier();
        let mut reshared = 0;
        let mut runs_left = 0;
        for k in 1..=n {
            let mut busy: HashSet<u64, AddrHash> = HashSet::default();
            let mut add = |a: u64, len: u64| {
                for p in self.page_index(a)..=self.page_index(a + len.max(1) - 1) {
                    busy.insert(p);
                }
            };
            // Commit log: segment 0 lacks the entries kept; a page one of them wrote holds
            // newer contents in each segment that has validated that entry.
            // SAFETY: k's `last` is alive (world stopped, `apply` held).
            let rev = unsafe { (*self.seg_last(k)).rev };
            self.for_each_retained(|e| {
                if e.rev <= rev {
                    for r in e.recs() {
                        add(r.addr, r.len);
                    }
                }
            });
            for tg in tgs.iter().filter(|t| t.seg.load(SeqCst) == k) {
                for rec in tg.modified.iter() {
                    add(rec.addr, rec.len);
                }
                for (&r, &len) in tg.young_large.iter() {
                    add(r, len);
                }
            }
            reshared += self.reshare_segment(k, frontier, &busy);
            runs_left += self.segs[k].private.recount_runs();
        }
        self.gc.runs_after_major.store(runs_left, Relaxed);
        laps.end(MajorPhase::Reshare);
        drop(m);
        drop(threads);
        drop(apply);
        let ns = laps.stopped_ns();
        if let Some(t) = self.tracer() {
            t.span_since(crate::trace::SpanKind::MajorCollection, laps.after_stop);
        }
        // From here on the world runs again (module docs, "Sweep and re-sharing"); the
        // commit mutex stays held, so no other major collection marks meanwhile.
        drop(world);
        let res = self.old.sweep(plan, |a, len| self.clear_markers(a, len));
        laps.end(MajorPhase::Sweep);
        self.release_free_runs(res.freed_runs);
        let min = self.gc.min_threshold.load(Relaxed);
        self.gc.threshold.store(min.max(res.live_bytes), Relaxed);
        laps.end(MajorPhase::Release);
        let st = &self.stats;
        for (c, v) in st.major_phase_ns.iter().zip(laps.ns) {
            Stats::add(c, v);
        }
        Stats::add(&st.major_collections, 1);
        Stats::add(&st.major_ns, ns);
        st.major_max_ns.fetch_max(ns, Relaxed);
        Stats::add(&st.major_freed_bytes, res.freed_bytes);
        st.live_bytes.store(res.live_bytes, Relaxed);
        Stats::add(&st.pages_reshared, reshared);
        drop(guard);
    }

    /// Clears, in every transaction segment, the read markers of a freed object `[a, a +
    /// len)`, so that its address, once reused, does not inherit a stale "read". Runs with
    /// the world going: nothing can reach the object, so no transaction sets these markers,
    /// and its slot is reused only after this (the sweep's order, `gcpage.rs`).
    fn clear_markers(&self, a: u64, len: u64) {
        for k in 1..=self.num_segments() {
            let first = self.mem.addr(k, a >> MARKER_SHIFT) as *const AtomicU8;
            for i in 0..(len >> MARKER_SHIFT) as usize {
                // SAFETY: the old space's read markers are mapped in every transaction segment
                // while the runtime lives; the only other writes to these bytes now are the
                // owner's bulk resets, which store zero too.
                let m = unsafe { &*first.add(i) };
                // Reading an untouched marker page maps the zero page; writing would
                // allocate it: write only where something is set.
                if m.load(Relaxed) != 0 {
                    m.store(0, Relaxed);
                }
            }
        }
    }

    /// Punches the free page runs a sweep found out of the memfd, which releases their
    /// memory (the re-sharing, world stopped, made them shared in every segment, and no
    /// segment privatizes a free page), then gives them to the page allocator: not before,
    /// or a page could be punched under new objects.
    fn release_free_runs(&self, mut runs: Vec<(u64, u64)>) {
        let old_start = self.mem.layout.old_start;
        runs.sort_unstable();
        let mut i = 0;
        while i < runs.len() {
            let (s, mut len) = runs[i];
            i += 1;
            while i < runs.len() && runs[i].0 == s + len {
                len += runs[i].1;
                i += 1;
            }
            self.mem
                .punch_hole(old_start + s * PAGE_SIZE, len * PAGE_SIZE);
        }
        self.old.release_runs(&runs);
    }

    /// Calls `f` on every entry of the commit log not yet applied to segment 0. The caller
    /// holds the log's `apply` mutex (so none is freed) and the world is stopped.
    fn for_each_retained(&self, mut f: impl FnMut(&crate::commitlog::Entry)) {
        let mut p = self.log.root();
        loop {
            // SAFETY: entries after the root are alive while `apply` is held.
            p = unsafe { (*p).next.load(SeqCst) };
            if p.is_null() {
                return;
            }
            // SAFETY: as above.
            f(unsafe { &*p });
        }
    }

    /// Maps back to the memfd every private page of segment `k` below `frontier` that is not
    /// in `busy`; returns how many. World stopped.
    fn reshare_segment(&self, k: usize, frontier: u64, busy: &HashSet<u64, AddrHash>) -> u64 {
        let private = &self.segs[k].private;
        let l = self.mem.layout;
        let mut done = 0;
        let mut p = 0;
        while p < frontier {
            if !private.get(p) || busy.contains(&p) {
                p += 1;
                continue;
            }
            let start = p;
            while p < frontier && private.get(p) && !busy.contains(&p) {
                p += 1;
            }
            // SAFETY: the run lies in segment k's old space; the world is stopped and no Rust
            // borrow points into it.
            unsafe {
                self.mem
                    .map_shared(k, l.old_start + start * PAGE_SIZE, (p - start) * PAGE_SIZE)
                    .unwrap_or_else(|e| panic!("{e} (re-sharing pages)"));
            }
            for q in start..p {
                private.clear(q);
            }
            done += p - start;
        }
        done
    }
}

/// Tells the idle collector's thread to end (when the runtime is dropped).
#[derive(Default)]
pub(crate) struct IdleStop(Arc<(Mutex<bool>, Condvar)>);

impl Drop for IdleStop {
    fn drop(&mut self) {
        *self.0 .0.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.0 .1.notify_all();
    }
}

/// Starts the idle collector of `stm` (module docs, "Idle collection"): a thread that checks
/// every `period` and holds only a weak reference between checks, so that it never keeps the
/// runtime alive; it ends when the runtime is dropped. A thread that cannot be started
/// (thread or memory limits) leaves the runtime without idle collections: nothing else
/// depends on them.
pub(crate) fn start_idle_collector(stm: &Arc<Stm>, period: Duration) {
    let weak = Arc::downgrade(stm);
    let stop = stm.idle_stop.0.clone();
    spawn_quiet_thread(
        IDLE_STACK_BYTES,
        Box::new(move || {
            let mut last = None;
            loop {
                let (m, cv) = &*stop;
                let g = m.lock().unwrap_or_else(|e| e.into_inner());
                let (g, _) = cv
                    .wait_timeout_while(g, period, |stopped| !*stopped)
                    .unwrap_or_else(|e| e.into_inner());
                if *g {
                    return;
                }
                drop(g);
                let Some(stm) = weak.upgrade() else {
                    return;
                };
                last = stm.idle_check(last);
            }
        }),
    );
}

/// Stack of the idle collector's thread.
const IDLE_STACK_BYTES: usize = 256 << 10;

/// Starts a detached OS thread of `stack` bytes running `f`, or, when the thread cannot be
/// started, drops `f` and returns false. Not `std::thread`: a std thread maps and installs
/// its signal stack in the new thread, and panics there when that mapping fails, which a
/// thread started just as the address space runs out (`ulimit -v`) did (issue 20: "failed
/// to allocate an alternative stack", then `memory allocation failed` or glibc's "failed to
/// register TLS destructor" aborts, or a hang). Here a thread either fails to start, in the
/// caller, or starts with nothing more to map: its stack is mapped by `pthread_create`, it
/// has no signal stack (a stack overflow, which its code has no deep recursion for, would
/// end the process with a signal either way), and it touches no
/// thread-local state of std until `f` does. A panic of `f` ends the thread only.
fn spawn_quiet_thread(stack: usize, f: Box<dyn FnOnce() + Send>) -> bool {
    extern "C" fn start(arg: *mut libc::c_void) -> *mut libc::c_void {
        // SAFETY: `arg` is the box leaked below, handed to exactly this thread.
        let f = unsafe { Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>) };
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        std::ptr::null_mut()
    }
    let arg = Box::into_raw(Box::new(f)) as *mut libc::c_void;
    // SAFETY: the attribute object is initialised before use and destroyed after; the
    // thread is created detached (no `pthread_detach` afterwards, which would read a
    // descriptor the ended thread may have freed); on failure `arg` is reclaimed here, on
    // success the thread owns it.
    unsafe {
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        if libc::pthread_attr_init(&mut attr) != 0 {
            drop(Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>));
            return false;
        }
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        libc::pthread_attr_setstacksize(&mut attr, stack.max(libc::PTHREAD_STACK_MIN));
        let mut tid: libc::pthread_t = std::mem::zeroed();
        let r = libc::pthread_create(&mut tid, &attr, start, arg);
        libc::pthread_attr_destroy(&mut attr);
        if r != 0 {
            drop(Box::from_raw(arg as *mut Box<dyn FnOnce() + Send>));
            return false;
        }
    }
    true
}

/// Time of each phase of one major collection ([`MajorPhase`]).
struct Laps {
    last: Instant,
    /// When the stop ended.
    after_stop: Instant,
    ns: [u64; MajorPhase::COUNT],
}

impl Laps {
    fn new(start: Instant) -> Laps {
        Laps {
            last: start,
            after_stop: start,
            ns: [0; MajorPhase::COUNT],
        }
    }

    /// Charges the time since the previous phase ended to `phase`.
    fn end(&mut self, phase: MajorPhase) {
        let now = Instant::now();
        self.ns[phase as usize] += (now - self.last).as_nanos() as u64;
        self.last = now;
        if phase == MajorPhase::Stop {
            self.after_stop = now;
        }
    }

    /// The collection's time with the world stopped, after the stop itself (`major_ns`).
    fn stopped_ns(&self) -> u64 {
        MajorPhase::ALL
            .iter()
            .filter(|&&p| p != MajorPhase::Stop && !p.world_running())
            .map(|&p| self.ns[p as usize])
            .sum()
    }
}

struct Marker<'a> {
    stm: &'a Stm,
    types: Vec<crate::object::TypeInfo>,
    /// Objects allocated by a running transaction → its segment (their only valid view).
    owner: HashMap<Ref, usize, AddrHash>,
    /// Marked objects left to trace: the object, its view, its allocated size.
    stack: Vec<(Ref, usize, u64)>,
    /// Scratch buffer of `trace`.
    found: Vec<u64>,
}

impl Marker<'_> {
    fn mark(&mut self, w: u64) {
        if !is_ref(w) {
            return;
        }
        if let Some(size) = self.stm.old.object_size(w) {
            if !self.stm.old.test_and_mark(w) {
                let v = if self.owner.is_empty() {
                    0
                } else {
                    self.owner.get(&w).copied().unwrap_or(0)
                };
                self.stack.push((w, v, size));
            }
        }
    }

    /// Marks the children of `r` as seen in segment `v`.
    fn trace(&mut self, r: Ref, v: usize) {
        if let Some(size) = self.stm.old.object_size(r) {
            self.trace_sized(r, v, size);
        }
    }

    /// [`Marker::trace`] of an allocated object whose size is known.
    fn trace_sized(&mut self, r: Ref, v: usize, size: u64) {
        let p = self.stm.mem.addr(v, r) as u64;
        // SAFETY: r is an allocated old object, mapped in every segment.
        let ty = unsafe { *((p + 4) as *const u32) };
        let Some(ti) = self.types.get(ty as usize).copied() else {
            return;
        };
        let mut found = std::mem::take(&mut self.found);
        (ti.trace)(p as *mut u8, &mut |q: *mut u64| {
            let q = q as u64;
            if q >= p && q + 8 <= p + size {
                // SAFETY: q lies inside the object's allocated bytes (checked).
                found.push(unsafe { *(q as *const u64) });
            }
        });
        for &w in &found {
            self.mark(w);
        }
        found.clear();
        self.found = found;
    }
}
