//! The commit log: writer commits that never stop the other segments (stmgc-c8's model).
//!
//! Enabled by [`crate::StmConfig::commit_log`]; otherwise commits stop the world (c7's model,
//! `transaction.rs`). The design and its invariants are in `docs/COMMITLOG.md`; in short:
//!
//! - A writer commit appends an [`Entry`] holding the **new** contents of every range it
//!   modified in objects that existed before it (objects, cards), and the ranges of the
//!   objects it allocated **without their contents**, under the `append` mutex, after
//!   validating against the entries appended since its snapshot. It never waits for another
//!   segment, except while another transaction is inevitable.
//! - The contents of an object a transaction allocated (a `New` record) are in segment 0 (the
//!   memfd) before its entry is appended: the committer promoted it through its own mapping,
//!   which is the memfd where its page is shared, and it copies the parts on pages private in
//!   its segment into segment 0 when it builds the entry ([`push_new`]). Nothing else writes
//!   them there until an entry that modifies the object later is applied (entries are
//!   applied in order, and the object, a root of every major collection while the entry is
//!   kept, keeps its address), so an importer whose page is private copies them from segment
//!   0, and one whose page is shared already sees them. Until the entry is imported, the
//!   object is unreachable in every other segment's snapshot, so bytes appearing early in a
//!   shared page (or in a private copy made meanwhile) are never read.
//! - Every segment keeps a snapshot: its memory changes only when **it** validates, at its
//!   own safe points (begin, a poll that finds `REQUEST_VALIDATE`, its commit, becoming
//!   inevitable). Validation walks the entries after the segment's `last` one: if one wrote
//!   a granule whose read marker holds the segment's read version, the transaction aborts
//!   (write-read conflict); otherwise the entry's bytes are copied into the segment's pages,
//!   privatizing each page it writes first.
//! - Segment 0 (the shared memfd) holds revision `r0`, the oldest entry kept (`root`): the
//!   entries up to the smallest revision any non-idle segment has validated are applied to
//!   it and freed by [`Stm::advance_log`]. A page shared in some segment never shows an
//!   entry that segment has not validated (invariant I1 of `docs/COMMITLOG.md`): a segment
//!   makes every page an entry writes private when it imports the entry, so by the time an
//!   entry is applied to the memfd, every segment still sharing one of its pages either is
//!   idle (brought to `r0` in the same step) or is the entry's committer, whose shared page
//!   already holds those bytes. `New` records need no import where the page is shared, and
//!   applying them writes nothing: segment 0 holds their contents from the commit on.

use crate::layout::PAGE_SIZE;
use crate::stats::Stats;
use crate::stm::Stm;
use crate::transaction::ModKind;
use std::sync::atomic::{
    AtomicPtr, AtomicU64, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::Mutex;

/// Entries after which a committer tries to apply and free the log ([`Stm::log_due`]), and
/// entries appended after a try before the next one.
const LOG_DUE_ENTRIES: u64 = 16;
/// Bytes held by the log after which a committer tries to apply and free it.
const LOG_DUE_BYTES: u64 = 1 << 20;
/// Freed entries kept for reuse ([`CommitLog::new_entry`]) in all the segments' pools
/// together (each gets its share, at least `POOL_MIN_ENTRIES`), and the largest record and
/// byte capacities an entry may have to be kept. A pool must cover a burst: a segment
/// descheduled inside a transaction pins the log, and when it validates, the next committer
/// frees everything appended meanwhile at once (microtq on 2 loaded cores: bursts of about
/// 4000 entries, mostly built by one segment).
const POOL_ENTRIES: usize = 8192;
const POOL_MIN_ENTRIES: usize = 512;
const POOL_MAX_RECS: usize = 8;
const POOL_MAX_BYTES: usize = 256;

/// Small freed entries built in one segment, emptied, for that segment's next commits. An
/// entry is usually built by one thread and freed by another (whoever applies the log): with
/// `malloc` and `free` for its three allocations each time, the allocator's per-thread caches
/// never hit, and those calls were about 9% of the instructions of a run of 500 000 tiny
/// transactions on 2 segments (callgrind). Bounded by `POOL_ENTRIES` entries in all (or
/// `POOL_MIN_ENTRIES` per segment) of at most `POOL_MAX_RECS` records and `POOL_MAX_BYTES`
/// bytes (about 700 bytes each: 5.6 MiB in all, more with over 16 segments).
// Boxed: an entry lives at a fixed address once linked, and is reused as that box.
#[allow(clippy::vec_box)]
#[derive(Default)]
pub(crate) struct EntryPool(Mutex<Vec<Box<Entry>>>);

/// [`Rec::off`] of a record whose entry carries no contents (an object the committer
/// allocated: segment 0 holds them).
pub(crate) const NO_BYTES: usize = usize::MAX;

/// One modified range of an entry.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rec {
    /// Segment offset of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: u64,
    /// Offset of the new contents in [`Entry::bytes`]; [`NO_BYTES`] for a `New` record,
    /// whose contents are in segment 0 (module docs).
    pub off: usize,
    pub kind: ModKind,
    /// The object the range belongs to (the carded object for a card).
    pub obj: u64,
    /// The committer's barrier site (for conflict reports).
    pub site: u32,
}

/// One committed writer transaction: its records and their new contents. Immutable once
/// appended, except `next`.
pub(crate) struct Entry {
    pub next: AtomicPtr<Entry>,
    /// Revision: 1 + the previous entry's (the root sentinel has 0).
    pub rev: u64,
    /// Segment of the committer (0 for the sentinel).
    pub seg: usize,
    /// The committer's transaction sequence number (names it in conflict reports).
    pub seq: u64,
    pub recs: Vec<Rec>,
    pub bytes: Vec<u8>,
}

impl Entry {
    /// An entry not yet appended (revision set by [`CommitLog::append`]).
    pub(crate) fn new(seg: usize, seq: u64, recs: Vec<Rec>, bytes: Vec<u8>) -> Box<Entry> {
        Box::new(Entry {
            next: AtomicPtr::new(std::ptr::null_mut()),
            rev: 0,
            seg,
            seq,
            recs,
            bytes,
        })
    }

    /// The new contents of record `r`, or `None` for a record whose contents are in
    /// segment 0 (an object the committer allocated, see the module docs).
    pub(crate) fn data(&self, r: &Rec) -> Option<&[u8]> {
        (r.off != NO_BYTES).then(|| &self.bytes[r.off..r.off + r.len as usize])
    }

    /// Memory held by the entry (for `--stats`).
    fn footprint(&self) -> u64 {
        (std::mem::size_of::<Entry>()
            + self.recs.len() * std::mem::size_of::<Rec>()
            + self.bytes.len()) as u64
    }
}

/// The global list of entries, oldest (`root`, revision `r0`, already applied to segment 0)
/// to newest (`tail`).
///
/// Aligned so that no other field of `Stm` shares its cache lines: every writer commit
/// writes `append`, `tail`, `len` and `bytes`, and the words other cores read at every
/// transaction (`sync_in_progress`, `waiting`, `inevitable`) sat beside them (microtq on 2
/// segments: 23% of the commit's samples were the `lock cmpxchg` of `append`).
#[repr(align(128))]
pub(crate) struct CommitLog {
    /// Oldest entry kept; replaced (and the old one freed) only under `apply`.
    root: AtomicPtr<Entry>,
    /// Newest entry; replaced only under `append`.
    tail: AtomicPtr<Entry>,
    /// Serializes appends, and orders `on_commit` effects by revision.
    pub append: Mutex<()>,
    /// Serializes applying entries to segment 0 and freeing them (and readers of old entries
    /// that are not a segment's own snapshot, e.g. [`Stm::committed_u64`]).
    pub apply: Mutex<()>,
    /// Entries after `root` and the bytes they hold.
    pub len: AtomicU64,
    pub bytes: AtomicU64,
    /// Length of the log at which the next commit tries [`Stm::advance_log`]: 16 more than
    /// the length the last try left. A segment that lags behind (a thread descheduled in a
    /// transaction) pins the log; before, every commit meanwhile tried to apply it, taking
    /// the free-list mutex for nothing.
    next_due: AtomicU64,
}

// SAFETY: entries are shared read-only (except `next`, an atomic) and freed only under
// `apply` once no segment's snapshot can reach them (see `Stm::advance_log`).
unsafe impl Send for CommitLog {}
// SAFETY: as above.
unsafe impl Sync for CommitLog {}

impl CommitLog {
    pub(crate) fn new() -> CommitLog {
        let root = Box::into_raw(Entry::new(0, 0, Vec::new(), Vec::new()));
        CommitLog {
            root: AtomicPtr::new(root),
            tail: AtomicPtr::new(root),
            append: Mutex::new(()),
            apply: Mutex::new(()),
            len: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            next_due: AtomicU64::new(LOG_DUE_ENTRIES),
        }
    }

    /// An empty entry of segment `seg`'s transaction `seq`, to fill and then [`append`]:
    /// one from `pool` (the segment's freed entries) if there is one.
    ///
    /// [`append`]: CommitLog::append
    pub(crate) fn new_entry(&self, pool: &EntryPool, seg: usize, seq: u64) -> Box<Entry> {
        let reused = pool.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        match reused {
            Some(mut e) => {
                e.seg = seg;
                e.seq = seq;
                e
            }
            None => Entry::new(seg, seq, Vec::new(), Vec::new()),
        }
    }

    /// Frees entry `e`, which no segment can reach any more, or empties it and keeps it in
    /// `small` if it is small enough to reuse (see [`EntryPool`]).
    // Boxed: see `EntryPool`.
    #[allow(clippy::vec_box)]
    fn recycle(mut e: Box<Entry>, small: &mut Vec<Box<Entry>>) {
        if e.recs.capacity() <= POOL_MAX_RECS && e.bytes.capacity() <= POOL_MAX_BYTES {
            e.recs.clear();
            e.bytes.clear();
            *e.next.get_mut() = std::ptr::null_mut();
            e.rev = 0;
            small.push(e);
        }
    }

    /// The root sentinel / oldest entry kept.
    pub(crate) fn root(&self) -> *mut Entry {
        self.root.load(Acquire)
    }

    /// The newest entry.
    pub(crate) fn tail(&self) -> *mut Entry {
        self.tail.load(Acquire)
    }

    /// Appends `e` after the tail and returns it (now owned by the log). The caller holds
    /// `append` and has validated its segment to the tail.
    pub(crate) fn append(&self, mut e: Box<Entry>, stats: &Stats) -> *mut Entry {
        let t = self.tail();
        // SAFETY: the tail is never freed (the root is at most the tail, and only entries
        // before the root are freed).
        e.rev = unsafe { (*t).rev } + 1;
        let fp = e.footprint();
        let p = Box::into_raw(e);
        // SAFETY: as above; `next` of the tail is null (appends are serialized by `append`).
        unsafe { (*t).next.store(p, Release) };
        self.tail.store(p, Release);
        let len = self.len.fetch_add(1, Relaxed) + 1;
        let bytes = self.bytes.fetch_add(fp, Relaxed) + fp;
        // Written only when they grow: a read-modify-write of these shared words at every
        // commit would move their cache line between the committing cores.
        if len > stats.log_max_entries.load(Relaxed) {
            stats.log_max_entries.fetch_max(len, Relaxed);
        }
        if bytes > stats.log_max_bytes.load(Relaxed) {
            stats.log_max_bytes.fetch_max(bytes, Relaxed);
        }
        p
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        let mut p = *self.root.get_mut();
        while !p.is_null() {
            // SAFETY: every entry from the root on is owned by the log, which is being
            // dropped (no segment can reach it any more).
            let e = unsafe { Box::from_raw(p) };
            p = e.next.load(Relaxed);
        }
    }
}

impl Stm {
    /// The entry segment `k` has validated up to.
    pub(crate) fn seg_last(&self, k: usize) -> *mut Entry {
        self.segs[k].last.load(Acquire)
    }

    /// Copies record `r` of entry `e` into segment `k`'s pages, privatizing each page it
    /// touches first, except where `k` shares the page and segment 0 already holds the
    /// record's bytes there: so data built by one transaction and read by the others stays
    /// stored once. A record without contents (an object the committer allocated) is copied
    /// from segment 0 into the pages private in `k` (shared ones already show it). The caller
    /// is `k`'s owner (RUNNING).
    pub(crate) fn import_rec(&self, k: usize, e: &Entry, r: &Rec) {
        let Some(src) = e.data(r) else {
            self.import_from_segment0(k, r);
            return;
        };
        let mut a = r.addr;
        let end = r.addr + r.len;
        while a < end {
            let b = end.min((a / PAGE_SIZE + 1) * PAGE_SIZE);
            let s = &src[(a - r.addr) as usize..(b - r.addr) as usize];
            if !self.segs[k].private.get(self.page_index(a)) {
                // SAFETY: segment 0's old space is mapped; its bytes of a live object change
                // only when an entry is applied, and every entry up to ours that wrote them
                // either left them equal or made the page private here (module docs).
                let now = unsafe { std::slice::from_raw_parts(self.mem.addr(0, a), s.len()) };
                if now == s {
                    a = b;
                    continue;
                }
                let n = crate::pages::privatize(
                    &self.mem,
                    k,
                    &self.segs[k].private,
                    a,
                    b - a,
                    self.map_pressure(),
                );
                Stats::add(&self.stats.pages_privatized, n);
            }
            // SAFETY: a private page of segment k, whose owner is the caller.
            unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), self.mem.addr(k, a), s.len()) };
            a = b;
        }
    }

    /// Copies the range of record `r`, which carries no contents, from segment 0 into the
    /// pages of segment `k` that are private there. The caller owns `k` (RUNNING, or idle
    /// and held by the applier) and has not validated past `r`'s entry: segment 0 then
    /// holds exactly the contents the entry committed there (module docs).
    fn import_from_segment0(&self, k: usize, r: &Rec) {
        let mut a = r.addr;
        let end = r.addr + r.len;
        while a < end {
            let b = end.min((a / PAGE_SIZE + 1) * PAGE_SIZE);
            if self.segs[k].private.get(self.page_index(a)) {
                // SAFETY: segment 0's old space and k's private page are distinct mapped
                // ranges; k's page is written only by its owner, the caller; nobody writes
                // this range of segment 0 before k has validated the entry (module docs).
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.mem.addr(0, a),
                        self.mem.addr(k, a),
                        (b - a) as usize,
                    )
                };
            }
            a = b;
        }
    }

    /// Copies the parts of the object `[addr, addr+len)`, allocated by segment `k`'s
    /// committing transaction, that lie on pages private in `k` into segment 0, so that its
    /// entry need not carry them (module docs). The parts on shared pages are there already:
    /// `k` wrote them through the memfd. The caller is `k`'s owner, before appending.
    pub(crate) fn push_new(&self, k: usize, addr: u64, len: u64) {
        let mut a = addr;
        let end = addr + len;
        while a < end {
            let b = end.min((a / PAGE_SIZE + 1) * PAGE_SIZE);
            if self.segs[k].private.get(self.page_index(a)) {
                // SAFETY: distinct mapped ranges (k's private page, segment 0's memfd page).
                // The object is unreachable in every other segment until our entry is
                // appended, so no one reads or writes these bytes meanwhile except a
                // privatization copying the page, which is then refreshed by its import.
                unsafe {
                    std::ptr::copy_nonoverlapping(
                        self.mem.addr(k, a),
                        self.mem.addr(0, a),
                        (b - a) as usize,
                    )
                };
            }
            a = b;
        }
    }

    /// Copies record `r` of entry `e` into the pages of idle segment `k` that are private
    /// there; shared ones receive it with segment 0 (see [`Stm::advance_log`]).
    fn import_rec_idle(&self, k: usize, e: &Entry, r: &Rec) {
        let Some(src) = e.data(r) else {
            self.import_from_segment0(k, r);
            return;
        };
        let mut a = r.addr;
        let end = r.addr + r.len;
        while a < end {
            let b = end.min((a / PAGE_SIZE + 1) * PAGE_SIZE);
            if self.segs[k].private.get(self.page_index(a)) {
                let s = &src[(a - r.addr) as usize..(b - r.addr) as usize];
                // SAFETY: a private page of idle segment k, held by the caller.
                unsafe { std::ptr::copy_nonoverlapping(s.as_ptr(), self.mem.addr(k, a), s.len()) };
            }
            a = b;
        }
    }

    /// Applies record `r` of entry `e` to segment 0 (the memfd).
    fn apply_rec(&self, e: &Entry, r: &Rec) {
        // A record without contents: segment 0 holds them since the commit.
        let Some(src) = e.data(r) else {
            return;
        };
        // SAFETY: segment 0's old space maps the memfd. By invariant I1 no running segment
        // that has not validated `e` shares these pages, and those that share them and have
        // validated it see the same bytes (see the module docs).
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.mem.addr(0, r.addr), src.len()) };
    }

    /// Applies to segment 0 every entry that every non-idle segment has validated, brings
    /// the idle segments (in the free list, held meanwhile) to the same revision, and frees
    /// the entries before it. The caller is RUNNING in a segment (so no major collection
    /// runs) or runs the major collection. Does nothing if another thread is doing it.
    pub(crate) fn advance_log(&self) {
        let Ok(_apply) = self.log.apply.try_lock() else {
            return;
        };
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        // A segment kept by a thread between its transactions pins the log at its snapshot:
        // one that lags behind is taken over into the free list (its keeper queues at its
        // next begin, and usually gets it back), so that a thread blocked for long while
        // keeping its segment cannot make the log grow without bound.
        let tail = self.log.tail();
        for k in 1..=self.num_segments() {
            if self.seg_last(k) != tail && !free.segments.contains(&k) && self.take_over(k) {
                free.segments.push(k);
                free.wake_served(&self.stats);
            }
        }
        self.advance_log_locked(&free.segments);
    }

    /// [`Stm::advance_log`] with `apply` and the free-list mutex held; `idle` lists the
    /// segments nobody holds. Also sets when the next commit tries again (`next_due`).
    pub(crate) fn advance_log_locked(&self, idle: &[usize]) {
        self.apply_validated(idle);
        self.log
            .next_due
            .store(self.log.len.load(Relaxed) + LOG_DUE_ENTRIES, Relaxed);
    }

    /// Applies and frees what [`Stm::advance_log_locked`] may (same contract).
    fn apply_validated(&self, idle: &[usize]) {
        let n = self.num_segments();
        let tail = self.log.tail();
        // SAFETY: the tail and every segment's `last` are at or after the root, which only
        // we (holding `apply`) may free.
        let mut min = unsafe { (*tail).rev };
        for k in 1..=n {
            if !idle.contains(&k) {
                // SAFETY: as above.
                min = min.min(unsafe { (*self.seg_last(k)).rev });
            }
        }
        let mut root = self.log.root();
        let (mut freed, mut freed_bytes) = (0, 0);
        let mut small = Vec::new();
        // SAFETY: see above; entries between the root and `min` are alive.
        unsafe {
            if (*root).rev >= min {
                return;
            }
            loop {
                let next = (*root).next.load(Acquire);
                if next.is_null() || (*next).rev > min {
                    break;
                }
                let e = &*next;
                for &k in idle {
                    if (*self.seg_last(k)).rev < e.rev {
                        for r in &e.recs {
                            self.import_rec_idle(k, e, r);
                        }
                    }
                }
                for r in &e.recs {
                    self.apply_rec(e, r);
                }
                for &k in idle {
                    if (*self.seg_last(k)).rev < e.rev {
                        self.segs[k].last.store(next, Release);
                    }
                }
                self.log.root.store(next, Release);
                freed += 1;
                freed_bytes += e.footprint();
                CommitLog::recycle(Box::from_raw(root), &mut small);
                root = next;
            }
        }
        self.log.len.fetch_sub(freed, Relaxed);
        self.log.bytes.fetch_sub(freed_bytes, Relaxed);
        // Back to the pools of the segments that built them: one lock per segment whose
        // entries were freed (usually one or two), not one per entry.
        let limit = (POOL_ENTRIES / n.max(1)).max(POOL_MIN_ENTRIES);
        while let Some(k) = small.last().map(|e| e.seg) {
            let mut pool = (1..=n).contains(&k).then(|| {
                self.segs[k]
                    .pool
                    .0
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
            });
            let mut i = 0;
            while i < small.len() {
                if small[i].seg != k {
                    i += 1;
                    continue;
                }
                let e = small.swap_remove(i);
                if let Some(pool) = pool.as_mut().filter(|p| p.len() < limit) {
                    pool.push(e);
                }
            }
        }
    }

    /// Whether the log is long enough, or holds enough bytes, to try [`Stm::advance_log`]
    /// after a commit. The byte bound matters for a few long transactions: before it, a
    /// program whose threads committed 9 entries of 81 MB in all (a loop building lists)
    /// kept them all until a 16th entry came, long after every segment had imported them.
    pub(crate) fn log_due(&self) -> bool {
        self.log.len.load(Relaxed) >= self.log.next_due.load(Relaxed)
            || self.log.bytes.load(Relaxed) >= LOG_DUE_BYTES
    }

    /// Latest committed contents of the 8 bytes at `a` (segment 0 plus the log), for tests
    /// and tools.
    pub(crate) fn committed_bytes(&self, a: u64) -> u64 {
        let _apply = self.log.apply.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: a is checked by the caller; segment 0's old space is mapped.
        let mut v = unsafe { std::ptr::read_volatile(self.mem.addr(0, a) as *const u64) };
        let mut p = self.log.root();
        // SAFETY: entries after the root stay alive while we hold `apply`.
        unsafe {
            loop {
                p = (*p).next.load(Acquire);
                if p.is_null() {
                    break;
                }
                let e = &*p;
                for r in &e.recs {
                    if r.addr <= a && a + 8 <= r.addr + r.len {
                        // Without contents: segment 0 holds them (read above).
                        let Some(d) = e.data(r) else { continue };
                        let o = (a - r.addr) as usize;
                        v = u64::from_ne_bytes(d[o..o + 8].try_into().unwrap());
                    }
                }
            }
        }
        v
    }
}
