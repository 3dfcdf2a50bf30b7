//! The runtime instance: configuration, segments, shared per-segment state.

use crate::gcpage::OldSpace;
use crate::layout::{Layout, PAGE_SIZE};
use crate::locks::WriteLocks;
use crate::major::GcGlobal;
use crate::object::{ObjectHeader, Ref, TypeId, TypeInfo, TypeRegistry};
use crate::pages::PrivateBitmap;
use crate::segment::Memory;
use crate::stats::{ConflictInfo, Stats, StatsSnapshot};
use std::sync::atomic::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicU8,
    Ordering::{Relaxed, SeqCst},
};
use std::sync::{Arc, Mutex};

/// What a transaction does when it meets a write lock held by an older transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitPolicy {
    /// Wait (at a safe point) until the older one commits or aborts. Deadlock-free because
    /// only younger transactions wait for older ones; older ones take over the lock and doom
    /// the younger holder.
    Wait,
    /// Abort at once. Needed when several segments are driven from one OS thread (waiting
    /// would never end), e.g. by the model-based test.
    AbortSelf,
}

/// Configuration of a runtime instance.
#[derive(Clone, Debug)]
pub struct StmConfig {
    /// Number of transaction segments N (1 ..= 254; 1 makes the runtime a GIL: threads take
    /// turns on the single segment, as the JIT's `--gil` mode wants).
    pub num_segments: usize,
    /// Bytes per segment (power of two, 32 MiB ..= 32 GiB); the old space, hence the heap,
    /// is most of it. Default: [`default_segment_size`].
    pub segment_size: u64,
    /// Bytes of nursery per segment (rounded up to whole pages).
    pub nursery_size: u64,
    /// Write-write contention policy for the younger transaction.
    pub wait_policy: WaitPolicy,
    /// Initial value of `SegmentInfo::budget` at each transaction start.
    pub budget: i64,
    /// Testing switch: hand the segment back at every transaction end (normally a thread
    /// keeps it across its own transactions) and begin each transaction in a free segment
    /// other than the thread's previous one whenever there is one, so that tests show
    /// nothing depends on a thread keeping its segment.
    pub move_threads: bool,
    /// Record an event trace of the run ([`crate::trace`]; `stmjit run --trace`).
    pub trace: bool,
    /// Read barriers record their site in a table beside the read markers, so that a
    /// write/read conflict names where the aborted transaction read the object (see
    /// `readsites.rs`). For reports (`--stats`, `--trace`); off by default, when it costs
    /// nothing.
    pub record_read_sites: bool,
    /// Writer commits append to a commit log and never stop the other segments (stmgc-c8's
    /// model, `commitlog.rs`); each segment validates and imports at its own safe points.
    /// Off: every writer commit stops the world (c7's model). Default: on, unless the
    /// environment variable `STMJIT_COMMIT_LOG` is `0`.
    pub commit_log: bool,
    /// How long a thread may keep its segment across its own transaction boundaries while
    /// other threads wait for one (the time slice of a GIL: CPython's is 5 ms). A thread
    /// whose slice has run out hands its segment over at its next transaction end; one that
    /// blocks hands it over at once ([`crate::StmThread::detach`]). Zero: hand over at every
    /// transaction end while someone waits.
    pub time_slice: std::time::Duration,
    /// Run a major collection when the program has been idle this long (no commit, no
    /// segment running) and garbage or private pages are left since the last one, from a
    /// thread of the runtime's own (`major.rs`, "Idle collection"). A server whose load
    /// stops, or a program that waits, then gives back what it allocated since the last
    /// collection, which can be most of the threshold (64 MiB) and, counted in every
    /// segment's view of the shared old space, a multiple of that in resident memory. None
    /// (the default): no such thread; the JIT's `stmjit run` turns it on.
    pub idle_collect: Option<std::time::Duration>,
}

/// The default [`StmConfig::time_slice`]: CPython's switch interval.
pub const DEFAULT_TIME_SLICE: std::time::Duration = std::time::Duration::from_millis(5);

/// The default segment size: the largest power of two not above the machine's physical
/// memory, from 4 GiB to 16 GiB. The heap is then as large as the machine allows (a
/// 20 M-entry dict of strings needs more than a 4 GiB segment holds), while a program that
/// exhausts it still gets a clean MemoryError before the machine runs out of memory (the
/// JIT's heap limit is about two thirds of a segment). Only address space is reserved;
/// the per-segment side tables grow with it (a bit per 4 KiB page).
pub fn default_segment_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let (pages, page) = unsafe {
        (
            libc::sysconf(libc::_SC_PHYS_PAGES),
            libc::sysconf(libc::_SC_PAGESIZE),
        )
    };
    let phys = if pages > 0 && page > 0 {
        pages as u64 * page as u64
    } else {
        0
    };
    let floor_pow2 = if phys == 0 {
        0
    } else {
        1u64 << (63 - phys.leading_zeros())
    };
    floor_pow2.clamp(MIN_DEFAULT_SEGMENT, MAX_DEFAULT_SEGMENT)
}

/// Smallest [`default_segment_size`] (the fixed size of every segment before it followed
/// the machine's memory).
pub const MIN_DEFAULT_SEGMENT: u64 = 4 << 30;
/// Largest [`default_segment_size`].
pub const MAX_DEFAULT_SEGMENT: u64 = 16 << 30;

impl Default for StmConfig {
    fn default() -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        StmConfig {
            num_segments: cpus.clamp(2, 254),
            segment_size: default_segment_size(),
            nursery_size: 16 << 20,
            wait_policy: WaitPolicy::Wait,
            budget: 1 << 20,
            move_threads: false,
            trace: false,
            record_read_sites: false,
            commit_log: std::env::var("STMJIT_COMMIT_LOG").map_or(true, |v| v.trim() != "0"),
            time_slice: DEFAULT_TIME_SLICE,
            idle_collect: None,
        }
    }
}

/// The shortest time-limited wait of the head of the segment queue (with a zero
/// [`StmConfig::time_slice`]).
const MIN_HEAD_WAIT: std::time::Duration = std::time::Duration::from_micros(100);

/// `SegShared::tx_state` bits.
pub(crate) const IN_TX: u64 = 1;
pub(crate) const INEVITABLE: u64 = 2;
pub(crate) const DOOMED: u64 = 4;
/// Commit log: the transaction is appending its entry; it can no longer be doomed (a
/// transaction that took a write lock over from it could otherwise lose to it).
pub(crate) const COMMITTING: u64 = 8;
/// The abort cause of a doomed transaction lives in bits 8..16.
pub(crate) const CAUSE_SHIFT: u32 = 8;
/// The segment's transaction sequence number (bumped at each begin) lives in bits 32..64.
/// Write-lock words carry its low 24 bits, so that a lock taken over from one transaction
/// can never be confused with a lock of a later transaction of the same segment (ABA).
pub(crate) const SEQ_SHIFT: u32 = 32;

/// The write-lock word of the transaction whose `tx_state` is `st` in segment `seg`.
#[inline]
pub(crate) fn lock_word(seg: usize, st: u64) -> u32 {
    ((((st >> SEQ_SHIFT) as u32) & 0x00FF_FFFF) << 8) | seg as u32
}

/// State of one segment that other threads read (see `safepoint.rs` and `contention.rs`).
// Aligned so that no two segments share a cache line: each segment's owner writes its
// `tx_state`, `last` and counters at every transaction, and other cores read them.
#[repr(align(128))]
pub(crate) struct SegShared {
    pub running: AtomicBool,
    pub tx_state: AtomicU64,
    /// The running transaction's age for the contention rules: when it (or the first try
    /// of it, after aborts) began, in time-stamp-counter ticks (`ticks.rs`); ties broken by
    /// segment number. A clock reading, not a shared counter: beginning writes nothing shared.
    pub start_time: AtomicU64,
    pub private: PrivateBitmap,
    /// What the doomer of this segment's transaction knew about the conflict: written under
    /// this mutex together with the DOOMED bit (see `Stm::doom`), taken by `abort_now`.
    pub conflict: Mutex<Option<ConflictInfo>>,
    /// Commit log: the newest entry this segment has validated (its snapshot's revision).
    /// Advanced by its owner, or, while the segment is idle, by `Stm::advance_log`.
    pub last: AtomicPtr<crate::commitlog::Entry>,
    /// The token ([`crate::StmThread`]'s `token`) of the thread that keeps this segment
    /// between two of its transactions, or 0: the segment is in use, or in the free list.
    /// The keeper takes it back, and anybody else takes it over, by swapping the token for
    /// 0 (see [`Stm::reclaim_segment`] and [`Stm::take_over_idle`]).
    pub kept_by: AtomicU64,
    /// The statistics bumped at every transaction, written only by the segment's holder.
    pub counters: crate::stats::SegCounters,
}

/// The free transaction segments and a ticket queue of the threads waiting for one.
///
/// Only the thread whose ticket is being served (the *head*) can take a segment, so only it
/// is woken (each waiter parks, registered under its ticket): a release wakes one thread,
/// never the whole queue (with a thousand waiting threads, waking all of them at every
/// hand-off cost most of the run in the kernel).
///
/// A thread does not come back here at every transaction: it keeps its segment across its
/// own boundaries (`SegShared::kept_by`) until its time slice has run out while others wait,
/// or until it blocks. The head also takes over a segment kept by a thread that is between
/// transactions, when it arrives and then every time slice while it waits (so a keeper that
/// blocks without handing over delays the others by at most a slice).
pub(crate) struct FreeSegments {
    pub(crate) segments: Vec<usize>,
    /// Ticket of the next thread to ask.
    next_ticket: u64,
    /// Ticket of the thread whose turn it is.
    serving: u64,
    /// Parked waiters by ticket.
    parked: std::collections::HashMap<u64, std::thread::Thread>,
}

impl FreeSegments {
    /// Wakes the head (the thread whose turn it is) if it is parked, and counts the wake-up.
    pub(crate) fn wake_served(&self, stats: &Stats) {
        if let Some(t) = self.parked.get(&self.serving) {
            t.unpark();
            Stats::add(&stats.segment_wakeups, 1);
        }
    }

    /// Threads that asked for a segment and have not got one yet.
    fn queued(&self) -> u64 {
        self.next_ticket - self.serving
    }
}

/// One runtime instance: N+1 segments, the memfd old space, write locks, types and stats.
pub struct Stm {
    pub(crate) mem: Memory,
    pub(crate) locks: WriteLocks,
    pub(crate) segs: Vec<SegShared>,
    /// The commit log (used with [`StmConfig::commit_log`]).
    pub(crate) log: crate::commitlog::CommitLog,
    pub(crate) types: TypeRegistry,
    pub(crate) stats: Stats,
    pub(crate) config: StmConfig,
    pub(crate) commit_mutex: Mutex<()>,
    pub(crate) sync_in_progress: AtomicBool,
    /// Free segments and the queue of threads waiting for one.
    pub(crate) free: Mutex<FreeSegments>,
    /// `FreeSegments::queued`, readable without the mutex: a thread ending a transaction
    /// keeps its segment without looking further while it is 0.
    pub(crate) waiting: AtomicU64,
    pub(crate) inevitable: AtomicU8,
    /// Segment whose transaction is in its commit phase
    /// ([`crate::StmThread::enter_commit_phase`]), 0 if none.
    pub(crate) finishing: AtomicU8,
    /// Converts the ticks of `SegCounters::validate_ticks` to nanoseconds.
    pub(crate) tick_rate: crate::ticks::TickRate,
    /// The old-object allocator (size-class pages and page runs).
    pub(crate) old: OldSpace,
    /// Objects above this size are allocated young outside the nursery.
    pub(crate) large_limit: u64,
    /// Thread registry, global roots and major-collection threshold.
    pub(crate) gc: GcGlobal,
    /// The event trace, when [`StmConfig::trace`] asks for one.
    pub(crate) tracer: Option<crate::trace::Tracer>,
    /// The read-site tables, when [`StmConfig::record_read_sites`] is set.
    pub(crate) read_sites: Option<crate::readsites::ReadSites>,
    /// Stops the idle collector's thread when the runtime is dropped.
    pub(crate) idle_stop: crate::major::IdleStop,
}

/// Makes this process's futexes (every parked thread: `join`, segment queue, locks) hash
/// into the kernel's global futex table instead of a private one. The object model calls it
/// once a program has started many OS threads, on a thread of its own.
///
/// Since Linux 6.16 a process gets a private futex hash sized by min(threads, CPUs): 16
/// buckets on a 2-core machine. With thousands of threads parked (a spawn tree's parents in
/// `join`), every wake-up (`futex_wake`) walks hundreds of unrelated waiters of its bucket:
/// a third of a 10 000-thread spawn tree's time went there. The global table has 256
/// buckets per CPU. Older kernels (no `PR_FUTEX_HASH`) already use it: the call fails and
/// nothing changes.
///
/// The switch waits for the kernel (about 40 ms on 6.18, asleep, not on the CPU): made in
/// [`Stm::new`], it delayed every run by that much (a `print(1)` took 30-50 ms instead of
/// under 10), so it is no longer made for programs that never start many threads.
pub fn use_global_futex_hash() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // Slots 0: the global hash.
    ONCE.call_once(|| {
        let _ = futex_hash_prctl(PR_FUTEX_HASH_SET_SLOTS, 0);
    });
}

/// The number of buckets of this process's private futex hash: 0 when it uses the kernel's
/// global table ([`use_global_futex_hash`]), `None` where the kernel has no `PR_FUTEX_HASH`
/// (before 6.16: always the global table).
pub fn futex_hash_slots() -> Option<u64> {
    u64::try_from(futex_hash_prctl(PR_FUTEX_HASH_GET_SLOTS, 0)).ok()
}

/// `prctl(PR_FUTEX_HASH, op, arg)`: its result, negative where the kernel has no such option.
fn futex_hash_prctl(op: libc::c_ulong, arg: libc::c_ulong) -> libc::c_int {
    // SAFETY: prctl with integer arguments only; an unknown option fails with EINVAL.
    unsafe {
        libc::prctl(
            PR_FUTEX_HASH,
            op,
            arg,
            0 as libc::c_ulong,
            0 as libc::c_ulong,
        )
    }
}

/// `prctl` options of Linux 6.16's private futex hash (`linux/prctl.h`).
const PR_FUTEX_HASH: libc::c_int = 78;
const PR_FUTEX_HASH_SET_SLOTS: libc::c_ulong = 1;
const PR_FUTEX_HASH_GET_SLOTS: libc::c_ulong = 2;

impl Stm {
    /// Creates a runtime instance (reserves and maps its segments).
    pub fn new(config: StmConfig) -> std::io::Result<Arc<Stm>> {
        assert!(
            (1..=254).contains(&config.num_segments),
            "stmjit: num_segments must be in 1..=254"
        );
        let layout = Layout::new(
            config.segment_size,
            config.nursery_size,
            config.num_segments as u64,
        );
        let mem = Memory::new(layout)?;
        let layout = mem.layout;
        let locks = WriteLocks::new(&layout)?;
        let read_sites = if config.record_read_sites {
            let t = crate::readsites::ReadSites::new(&layout)?;
            for k in 1..=config.num_segments {
                mem.info(k).read_sites.store(t.base(k), SeqCst);
            }
            Some(t)
        } else {
            None
        };
        let log = crate::commitlog::CommitLog::new(config.num_segments);
        let segs = (0..=config.num_segments)
            .map(|_| SegShared {
                running: AtomicBool::new(false),
                tx_state: AtomicU64::new(0),
                start_time: AtomicU64::new(0),
                private: PrivateBitmap::new(layout.old_pages()),
                conflict: Mutex::new(None),
                last: AtomicPtr::new(log.root()),
                kept_by: AtomicU64::new(0),
                counters: Default::default(),
            })
            .collect();
        let stm = Arc::new(Stm {
            old: OldSpace::new(&layout)?,
            large_limit: ((layout.nursery_end - layout.nursery_start) / 4)
                .clamp(crate::gcpage::SMALL_MAX, 64 << 10),
            gc: GcGlobal::new(),
            read_sites,
            mem,
            locks,
            segs,
            log,
            types: TypeRegistry::default(),
            stats: Stats::default(),
            free: Mutex::new(FreeSegments {
                segments: (1..=config.num_segments).rev().collect(),
                next_ticket: 0,
                serving: 0,
                parked: std::collections::HashMap::new(),
            }),
            waiting: AtomicU64::new(0),
            commit_mutex: Mutex::new(()),
            sync_in_progress: AtomicBool::new(false),
            inevitable: AtomicU8::new(0),
            finishing: AtomicU8::new(0),
            tick_rate: crate::ticks::TickRate::new(),
            tracer: config.trace.then(crate::trace::Tracer::new),
            idle_stop: crate::major::IdleStop::default(),
            config,
        });
        if let Some(period) = stm.config.idle_collect {
            crate::major::start_idle_collector(&stm, period);
        }
        Ok(stm)
    }

    /// The segment layout (offsets the JIT emits code against).
    pub fn layout(&self) -> &Layout {
        &self.mem.layout
    }

    /// The configuration.
    pub fn config(&self) -> &StmConfig {
        &self.config
    }

    /// The event trace, if this runtime records one ([`StmConfig::trace`]).
    #[inline]
    pub fn tracer(&self) -> Option<&crate::trace::Tracer> {
        self.tracer.as_ref()
    }

    /// Number of transaction segments N.
    pub fn num_segments(&self) -> usize {
        self.config.num_segments
    }

    /// Registers an object type; see [`TypeInfo`].
    pub fn register_type(&self, info: TypeInfo) -> TypeId {
        self.types.register(info)
    }

    /// Looks up a registered type.
    pub fn type_info(&self, id: TypeId) -> TypeInfo {
        self.types.get(id.0)
    }

    /// A copy of the statistics.
    pub fn stats(&self) -> StatsSnapshot {
        let mut s = self.stats.snapshot();
        let mut validate_ticks = 0;
        for seg in &self.segs {
            seg.counters.add_to(&mut s);
            validate_ticks += seg.counters.validate_ticks.load(Relaxed);
        }
        s.validate_ns = self.tick_rate.to_ns(validate_ticks);
        s.log_entries = self.log.len();
        s.log_bytes = self.log.held_bytes();
        s
    }

    /// Pages currently private in segment `seg`.
    pub fn private_pages(&self, seg: usize) -> u64 {
        self.segs[seg].private.count()
    }

    /// Bytes of old space in use: objects allocated and not freed by a major collection
    /// (small objects count their size class, large ones whole pages).
    pub fn allocated_bytes(&self) -> u64 {
        self.old.in_use_bytes()
    }

    /// Pages of the old space handed out (size-class pages and large-object runs): the
    /// old space's footprint in the memfd.
    pub fn old_pages_in_use(&self) -> u64 {
        self.old.runs.in_use()
    }

    /// Checks that `r` is a plausible object reference (nursery or old space); a clear panic
    /// otherwise.
    #[inline]
    pub fn check_ref(&self, r: Ref, len: u64) {
        let l = &self.mem.layout;
        if r < l.object_start || r.saturating_add(len) > l.old_end || !r.is_multiple_of(8) {
            panic!(
                "stmjit: reference {r:#x} (+{len}) outside the object space [{:#x}, {:#x})",
                l.object_start, l.old_end
            );
        }
    }

    /// Reads the latest committed value of the u64 at `r + off` (segment 0; with the commit
    /// log, segment 0 and the entries not yet applied to it): for tests and tools.
    pub fn committed_u64(&self, r: Ref, off: u64) -> u64 {
        if self.config.commit_log {
            self.check_ref(r + off, 8);
            return self.committed_bytes(r + off);
        }
        self.segment_u64(0, r, off)
    }

    /// Reads segment `seg`'s view of the u64 at `r + off` (without any barrier): for tests.
    pub fn segment_u64(&self, seg: usize, r: Ref, off: u64) -> u64 {
        self.check_ref(r + off, 8);
        assert!(seg <= self.num_segments());
        // SAFETY: the address is inside the mapped old space of segment `seg` (checked above);
        // a racing commit may change it, hence the volatile read of a plain integer.
        unsafe { std::ptr::read_volatile(self.mem.addr(seg, r + off) as *const u64) }
    }

    /// The header of `r` as seen in segment `seg`: for tests.
    pub fn segment_header(&self, seg: usize, r: Ref) -> ObjectHeader {
        self.check_ref(r, 8);
        // SAFETY: as in `segment_u64`.
        unsafe { std::ptr::read_volatile(self.mem.addr(seg, r) as *const ObjectHeader) }
    }

    /// The read marker of address `a` in segment `seg`: for tests.
    pub fn read_marker(&self, seg: usize, a: u64) -> u8 {
        assert!(seg >= 1 && seg <= self.num_segments());
        self.check_ref(a, 1);
        // SAFETY: markers of the object space are mapped in every transaction segment.
        unsafe { std::ptr::read_volatile(self.mem.addr(seg, a >> 4)) }
    }

    /// The card marker of address `a` in segment `seg`: for tests.
    pub fn card_marker(&self, seg: usize, a: u64) -> u8 {
        assert!(seg >= 1 && seg <= self.num_segments());
        self.check_ref(a, 1);
        let m = (a >> 4) + self.mem.layout.card_marker_disp;
        // SAFETY: card markers of the object space are mapped in every transaction segment.
        unsafe { std::ptr::read_volatile(self.mem.addr(seg, m)) }
    }

    /// Linear address of segment `seg`'s base (what `%gs` holds while it runs).
    pub fn segment_base(&self, seg: usize) -> u64 {
        self.mem.layout.segment_base(seg)
    }

    /// Which segment holds the write lock of `a`'s granule (0 = none): for tests.
    pub fn lock_owner(&self, a: u64) -> u8 {
        (self.locks.owner(a) & 0xff) as u8
    }

    /// Reads a transaction segment's `SegmentInfo` (for tests and tools).
    pub fn segment_info(&self, seg: usize) -> &crate::layout::SegmentInfo {
        self.mem.info(seg)
    }

    pub(crate) fn page_index(&self, off: u64) -> u64 {
        (off - self.mem.layout.old_start) / PAGE_SIZE
    }

    /// Takes a free segment, waiting while none is: `last` (the thread's previous one: its
    /// read markers and private pages are warm) if it is free, or with
    /// [`StmConfig::move_threads`] any other one if there is one. With no segment free, the
    /// head of the queue takes over one whose keeper is between transactions
    /// ([`Stm::take_over_idle`]).
    ///
    /// First come, first served: a thread that has handed its segment over and begins its
    /// next transaction queues behind the threads already waiting. Returns the segment and
    /// whether the thread had to wait (park) for it.
    pub(crate) fn acquire_segment(&self, last: usize) -> (usize, bool) {
        let mut f = self.free.lock().unwrap();
        let ticket = f.next_ticket;
        f.next_ticket += 1;
        // Published before looking for a kept segment to take over (SeqCst on both sides):
        // a keeper that then keeps its segment and blocks sees us waiting (`StmThread::
        // detach`), or we see its segment kept.
        self.waiting.store(f.queued(), SeqCst);
        let mut parked = false;
        loop {
            let head = f.serving == ticket;
            if head && f.segments.is_empty() {
                if let Some(k) = self.take_over_idle() {
                    f.segments.push(k);
                }
            }
            let pick = if !head {
                None
            } else if self.config.move_threads {
                let s = &f.segments;
                s.iter()
                    .position(|&s| s != last)
                    .or(s.iter().position(|&s| s == last))
            } else {
                let s = &f.segments;
                s.iter().position(|&s| s == last).or(s.len().checked_sub(1))
            };
            if let Some(i) = pick {
                f.serving += 1;
                self.waiting.store(f.queued(), SeqCst);
                let seg = f.segments.swap_remove(i);
                // The next in line becomes the head: it takes a free segment if there is
                // one, and otherwise waits with a time limit (see `FreeSegments`).
                f.wake_served(&self.stats);
                return (seg, parked);
            }
            // Park until woken as the head (`wake_served`), or, as the head, at most a time
            // slice; a spurious or early wake-up just checks again. An unpark between the
            // registration and the park is not lost: it makes the park return at once.
            f.parked.insert(ticket, std::thread::current());
            drop(f);
            if head {
                std::thread::park_timeout(self.config.time_slice.max(MIN_HEAD_WAIT));
            } else {
                std::thread::park();
            }
            parked = true;
            f = self.free.lock().unwrap();
            f.parked.remove(&ticket);
        }
    }

    /// Puts `seg` back and wakes the head of the queue, if it waits.
    pub(crate) fn release_segment(&self, seg: usize) {
        let mut f = self.free.lock().unwrap();
        f.segments.push(seg);
        f.wake_served(&self.stats);
    }

    /// Threads waiting for a segment now (queued, not served yet): for tests and tools.
    pub fn threads_waiting_for_segment(&self) -> u64 {
        self.waiting.load(SeqCst)
    }

    /// Whether any thread waits for a segment.
    pub(crate) fn anyone_waiting(&self) -> bool {
        self.waiting.load(SeqCst) != 0
    }

    /// Whether a thread that has held its segment since `since` and just ended a
    /// transaction must hand the segment over instead of keeping it: others wait and its
    /// time slice has run out (with [`StmConfig::move_threads`]: always, so that threads
    /// keep moving). Reads one shared word, written only when the queue changes.
    pub(crate) fn must_hand_over(&self, since: std::time::Instant) -> bool {
        self.config.move_threads
            || (self.waiting.load(Relaxed) != 0 && since.elapsed() >= self.config.time_slice)
    }

    /// Marks `seg` as kept, between transactions, by the thread whose token is `token`.
    /// The caller holds `seg` and has left it (SAFE, no transaction).
    pub(crate) fn keep_segment(&self, seg: usize, token: u64) {
        debug_assert!(token != 0);
        self.segs[seg].kept_by.store(token, SeqCst);
    }

    /// The keeper `token` takes its kept segment `seg` back; `false` if another thread has
    /// taken it over meanwhile.
    pub(crate) fn reclaim_segment(&self, seg: usize, token: u64) -> bool {
        self.segs[seg]
            .kept_by
            .compare_exchange(token, 0, SeqCst, SeqCst)
            .is_ok()
    }

    /// Takes over some segment whose keeper is between transactions (its keeper finds out
    /// at its next begin, and queues); the caller then holds it, as if taken from the free
    /// list.
    pub(crate) fn take_over_idle(&self) -> Option<usize> {
        (1..=self.num_segments()).find(|&k| self.take_over(k))
    }

    /// Takes over segment `k` if a keeper holds it between transactions.
    pub(crate) fn take_over(&self, k: usize) -> bool {
        let s = &self.segs[k].kept_by;
        let t = s.load(SeqCst);
        if t != 0 && s.compare_exchange(t, 0, SeqCst, SeqCst).is_ok() {
            Stats::add(&self.stats.segment_takeovers, 1);
            true
        } else {
            false
        }
    }

    /// Type id in the header of the old object `obj` as segment `seg` sees it (for conflict
    /// reports). The type id of an allocated object never changes, so any view will do.
    pub(crate) fn type_id_in(&self, seg: usize, obj: Ref) -> u32 {
        // SAFETY: obj is an old-space address (a locked granule's object or a modified
        // record's object) mapped in every segment; the type-id half of the header is written
        // once at allocation, so a racing reader can only see that value.
        unsafe { std::ptr::read_volatile((self.mem.addr(seg, obj) as *const u32).add(1)) }
    }

    pub(crate) fn tx_state(&self, seg: usize) -> u64 {
        self.segs[seg].tx_state.load(SeqCst)
    }
}
