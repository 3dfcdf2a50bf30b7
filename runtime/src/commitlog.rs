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
use std::cell::UnsafeCell;
use std::sync::atomic::{
    AtomicI64, AtomicPtr, AtomicU64, Ordering::AcqRel, Ordering::Acquire, Ordering::Relaxed,
    Ordering::Release,
};
use std::sync::Mutex;

/// Entries after which a committer tries to apply and free the log ([`Stm::log_due`]), and
/// entries appended after a try before the next one.
const LOG_DUE_ENTRIES: u64 = 16;
/// Bytes held by the log after which a committer tries to apply and free it.
const LOG_DUE_BYTES: u64 = 1 << 20;

/// Size of an arena chunk ([`Chunk`]): entries are carved out of a segment's current chunk
/// one after the other, so the entries a validating segment walks lie mostly in a few
/// chunks, in order.
const CHUNK_SIZE: usize = 64 << 10;
/// Entries are aligned on cache lines: the committer writing its next entry does not share
/// a line with an entry the other segments read.
const ENTRY_ALIGN: usize = 64;
/// Entries larger than this get an allocation of their own instead of a chunk's space.
const BIG_ENTRY: usize = CHUNK_SIZE / 4;
/// Free chunks kept for reuse ([`CommitLog::put_chunk`]): 4 MiB, room for a log of about
/// 30 000 small entries (microtq on 2 loaded cores: bursts of about 10 000).
const POOL_CHUNKS: usize = 64;

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

/// One committed writer transaction. Its records ([`Entry::recs`]) and their new contents
/// ([`Entry::bytes`]) follow the header in the same allocation, which is usually a slice of
/// the committing segment's arena chunk: building an entry allocates nothing from the
/// system, and a validating segment reads header, records and bytes from adjacent lines
/// (they were three allocations: three dependent cache misses per entry, and `malloc` and
/// `free` on different threads). Immutable once appended, except `next`.
#[repr(C, align(64))]
pub(crate) struct Entry {
    pub next: AtomicPtr<Entry>,
    /// Revision: 1 + the previous entry's (the root sentinel has 0).
    pub rev: u64,
    /// The committer's transaction sequence number (names it in conflict reports).
    pub seq: u64,
    /// Segment of the committer (0 for the sentinel).
    pub seg: usize,
    nrecs: usize,
    nbytes: usize,
    /// Bytes of the whole allocation (header, records, contents).
    size: usize,
    /// The arena chunk holding the entry, or null for an allocation of its own.
    chunk: *mut Chunk,
}

const _: () = assert!(std::mem::size_of::<Entry>() == ENTRY_ALIGN);
const _: () = assert!(std::mem::align_of::<Rec>() <= ENTRY_ALIGN);

impl Entry {
    /// The records.
    pub(crate) fn recs(&self) -> &[Rec] {
        // SAFETY: `nrecs` records follow the header in the entry's allocation, written
        // before the entry was published (`CommitLog::new_entry`).
        unsafe {
            std::slice::from_raw_parts((self as *const Entry).add(1) as *const Rec, self.nrecs)
        }
    }

    /// The new contents of the records that carry some, at their [`Rec::off`].
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `nbytes` bytes follow the records in the entry's allocation (as above).
        unsafe {
            std::slice::from_raw_parts(
                ((self as *const Entry).add(1) as *const Rec).add(self.nrecs) as *const u8,
                self.nbytes,
            )
        }
    }

    /// The new contents of record `r`, or `None` for a record whose contents are in
    /// segment 0 (an object the committer allocated, see the module docs).
    pub(crate) fn data(&self, r: &Rec) -> Option<&[u8]> {
        (r.off != NO_BYTES).then(|| &self.bytes()[r.off..r.off + r.len as usize])
    }

    /// Memory held by the entry (for `--stats`).
    fn footprint(&self) -> u64 {
        self.size as u64
    }

    /// Bytes an entry of `nrecs` records and `nbytes` bytes of contents takes.
    fn size_for(nrecs: usize, nbytes: usize) -> usize {
        (std::mem::size_of::<Entry>() + nrecs * std::mem::size_of::<Rec>() + nbytes)
            .next_multiple_of(ENTRY_ALIGN)
    }
}

/// A block of [`CHUNK_SIZE`] bytes from which one segment's entries are carved; this header
/// is its first line. It goes back to the pool when every entry carved from it is freed
/// and its segment has moved on to another chunk: `balance` is decremented by each entry
/// freed (by whoever applies the log) and incremented once, by the number of entries
/// carved, when the segment leaves it (`seal`); the step that brings it to 0 recycles it.
/// (Before the seal it is never positive, so no free can reach 0 from above early.)
#[repr(C, align(64))]
pub(crate) struct Chunk {
    balance: AtomicI64,
}

/// A segment's current chunk: written only by the thread holding the segment, when it
/// builds its commit's entry (a segment changes hands through SeqCst operations, which
/// order one holder's accesses before the next one's).
#[derive(Default)]
#[repr(align(128))]
struct Arena(UnsafeCell<ArenaState>);

struct ArenaState {
    chunk: *mut Chunk,
    /// Offset of the free space in `chunk`.
    off: usize,
    /// Entries carved from `chunk` so far.
    count: i64,
}

impl Default for ArenaState {
    fn default() -> Self {
        ArenaState {
            chunk: std::ptr::null_mut(),
            off: CHUNK_SIZE,
            count: 0,
        }
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
    /// Entries appended and their bytes (written under `append`), and entries freed and
    /// their bytes (under `apply`): the log holds the difference ([`CommitLog::len`],
    /// [`CommitLog::held_bytes`]). Plain stores, not a shared counter that both sides
    /// update with atomic read-modify-writes at every commit.
    appended: AtomicU64,
    appended_bytes: AtomicU64,
    freed: AtomicU64,
    freed_bytes: AtomicU64,
    /// Length of the log at which the next commit tries [`Stm::advance_log`]: 16 more than
    /// the length the last try left. A segment that lags behind (a thread descheduled in a
    /// transaction) pins the log; before, every commit meanwhile tried to apply it, taking
    /// the free-list mutex for nothing.
    next_due: AtomicU64,
    /// Each segment's current chunk (index: segment).
    arenas: Box<[Arena]>,
    /// Free chunks, at most [`POOL_CHUNKS`].
    pool: Mutex<Vec<ChunkPtr>>,
}

/// A free chunk in the pool.
struct ChunkPtr(*mut Chunk);

// SAFETY: a pooled chunk is owned by the pool alone (no entry in it is alive).
unsafe impl Send for ChunkPtr {}

// SAFETY: entries are shared read-only (except `next`, an atomic) and freed only under
// `apply` once no segment's snapshot can reach them (see `Stm::advance_log`); an arena is
// used only by the holder of its segment (see `Arena`).
unsafe impl Send for CommitLog {}
// SAFETY: as above.
unsafe impl Sync for CommitLog {}

/// The memory layout of a chunk, or of an entry of `size` bytes with an allocation of its own.
fn block_layout(size: usize) -> std::alloc::Layout {
    std::alloc::Layout::from_size_align(size, ENTRY_ALIGN).expect("stmjit: entry too large")
}

/// Allocates a block of `size` bytes aligned for an entry (or a chunk).
fn alloc_block(size: usize) -> *mut u8 {
    let l = block_layout(size);
    // SAFETY: `l` has a non-zero size (at least one entry header).
    let p = unsafe { std::alloc::alloc(l) };
    if p.is_null() {
        std::alloc::handle_alloc_error(l);
    }
    p
}

impl CommitLog {
    pub(crate) fn new(num_segments: usize) -> CommitLog {
        let root = alloc_block(Entry::size_for(0, 0)) as *mut Entry;
        // SAFETY: a fresh block of the header's size and alignment.
        unsafe {
            root.write(Self::header(
                0,
                0,
                0,
                0,
                Entry::size_for(0, 0),
                std::ptr::null_mut(),
            ))
        };
        CommitLog {
            root: AtomicPtr::new(root),
            tail: AtomicPtr::new(root),
            append: Mutex::new(()),
            apply: Mutex::new(()),
            appended: AtomicU64::new(0),
            appended_bytes: AtomicU64::new(0),
            freed: AtomicU64::new(0),
            freed_bytes: AtomicU64::new(0),
            next_due: AtomicU64::new(LOG_DUE_ENTRIES),
            arenas: (0..=num_segments).map(|_| Arena::default()).collect(),
            pool: Mutex::new(Vec::new()),
        }
    }

    fn header(
        seg: usize,
        seq: u64,
        nrecs: usize,
        nbytes: usize,
        size: usize,
        chunk: *mut Chunk,
    ) -> Entry {
        Entry {
            next: AtomicPtr::new(std::ptr::null_mut()),
            rev: 0,
            seq,
            seg,
            nrecs,
            nbytes,
            size,
            chunk,
        }
    }

    /// A new entry of segment `seg`'s transaction `seq` holding `recs`, whose contents
    /// (`nbytes` bytes in all, at each record's `off`) `fill` writes into the slice it is
    /// given; to [`append`] next. Carved from the segment's arena chunk unless it is large.
    /// The caller holds segment `seg`.
    ///
    /// [`append`]: CommitLog::append
    pub(crate) fn new_entry(
        &self,
        seg: usize,
        seq: u64,
        recs: &[Rec],
        nbytes: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> *mut Entry {
        let size = Entry::size_for(recs.len(), nbytes);
        let (p, chunk) = if size > BIG_ENTRY {
            (alloc_block(size), std::ptr::null_mut())
        } else {
            // SAFETY: the caller holds segment `seg`, the only user of its arena.
            let a = unsafe { &mut *self.arenas[seg].0.get() };
            if a.off + size > CHUNK_SIZE {
                if !a.chunk.is_null() {
                    self.seal(a.chunk, a.count);
                }
                a.chunk = self.take_chunk();
                a.off = std::mem::size_of::<Chunk>();
                a.count = 0;
            }
            // SAFETY: `off + size` is within the chunk.
            let p = unsafe { (a.chunk as *mut u8).add(a.off) };
            a.off += size;
            a.count += 1;
            (p, a.chunk)
        };
        let e = p as *mut Entry;
        // SAFETY: `p` is a block of `size` bytes, aligned for an entry, owned by us until the
        // entry is appended: the header, then the records, then the bytes fit in it.
        unsafe {
            e.write(Self::header(seg, seq, recs.len(), nbytes, size, chunk));
            let r = e.add(1) as *mut Rec;
            std::ptr::copy_nonoverlapping(recs.as_ptr(), r, recs.len());
            fill(std::slice::from_raw_parts_mut(
                r.add(recs.len()) as *mut u8,
                nbytes,
            ));
        }
        e
    }

    /// A chunk from the pool, or a new one.
    fn take_chunk(&self) -> *mut Chunk {
        let pooled = self.pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let c = pooled.map_or_else(|| alloc_block(CHUNK_SIZE) as *mut Chunk, |c| c.0);
        // SAFETY: the chunk is ours alone (fresh, or taken from the pool).
        unsafe {
            c.write(Chunk {
                balance: AtomicI64::new(0),
            })
        };
        c
    }

    /// Puts a chunk none of whose entries is alive any more back into the pool (or frees it).
    fn put_chunk(&self, c: *mut Chunk) {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < POOL_CHUNKS {
            pool.push(ChunkPtr(c));
        } else {
            drop(pool);
            // SAFETY: allocated by `alloc_block(CHUNK_SIZE)`; no entry in it is alive.
            unsafe { std::alloc::dealloc(c as *mut u8, block_layout(CHUNK_SIZE)) };
        }
    }

    /// A segment leaves chunk `c`, from which it carved `count` entries (see [`Chunk`]).
    fn seal(&self, c: *mut Chunk, count: i64) {
        // SAFETY: the chunk stays allocated until its balance reaches 0.
        if unsafe { (*c).balance.fetch_add(count, AcqRel) } + count == 0 {
            self.put_chunk(c);
        }
    }

    /// Frees entry `e`, which no segment can reach any more.
    fn free_entry(&self, e: *mut Entry) {
        let mut f = Frees::default();
        f.free(self, e);
        f.flush(self);
    }

    /// Counts `n` entries of chunk `c` freed (see [`Chunk`]).
    fn release(&self, c: *mut Chunk, n: i64) {
        // SAFETY: the chunk stays allocated while one of its entries is alive: these.
        if unsafe { (*c).balance.fetch_sub(n, AcqRel) } == n {
            self.put_chunk(c);
        }
    }

    /// Entries after the root.
    pub(crate) fn len(&self) -> u64 {
        // Freed first: whatever was freed had been appended.
        let freed = self.freed.load(Acquire);
        self.appended.load(Acquire).saturating_sub(freed)
    }

    /// Bytes held by the entries after the root.
    pub(crate) fn held_bytes(&self) -> u64 {
        let freed = self.freed_bytes.load(Acquire);
        self.appended_bytes.load(Acquire).saturating_sub(freed)
    }

    /// The root sentinel / oldest entry kept.
    pub(crate) fn root(&self) -> *mut Entry {
        self.root.load(Acquire)
    }

    /// The newest entry.
    pub(crate) fn tail(&self) -> *mut Entry {
        self.tail.load(Acquire)
    }

    /// Appends `e` (from [`CommitLog::new_entry`]) after the tail; the log owns it from now
    /// on. The caller holds `append` and has validated its segment to the tail.
    pub(crate) fn append(&self, e: *mut Entry, stats: &Stats) {
        let t = self.tail();
        // SAFETY: the tail is never freed (the root is at most the tail, and only entries
        // before the root are freed); `e` is ours until the store below publishes it.
        let fp = unsafe {
            (*e).rev = (*t).rev + 1;
            (*e).footprint()
        };
        // SAFETY: as above; `next` of the tail is null (appends are serialized by `append`).
        unsafe { (*t).next.store(e, Release) };
        self.tail.store(e, Release);
        // Written under `append` only.
        self.appended
            .store(self.appended.load(Relaxed) + 1, Relaxed);
        self.appended_bytes
            .store(self.appended_bytes.load(Relaxed) + fp, Relaxed);
        let (len, bytes) = (self.len(), self.held_bytes());
        // Written only when they grow: a read-modify-write of these shared words at every
        // commit would move their cache line between the committing cores.
        if len > stats.log_max_entries.load(Relaxed) {
            stats.log_max_entries.fetch_max(len, Relaxed);
        }
        if bytes > stats.log_max_bytes.load(Relaxed) {
            stats.log_max_bytes.fetch_max(bytes, Relaxed);
        }
    }
}

/// Entries being freed, counted per chunk before their chunks' balances are decremented:
/// one atomic operation per chunk and batch instead of one per entry (a locked decrement
/// per entry was half of the time spent applying the log on 2 segments).
#[derive(Default)]
struct Frees {
    /// Chunks (null: unused) and entries freed in each; a few, because the entries applied
    /// together come from the chunks of the few segments that committed them.
    pending: [(usize, i64); 4],
}

impl Frees {
    /// Frees entry `e` (no segment can reach it any more); its chunk's count waits for
    /// [`Frees::flush`].
    fn free(&mut self, log: &CommitLog, e: *mut Entry) {
        // SAFETY: `e` is alive until now and ours alone.
        let (chunk, size) = unsafe { ((*e).chunk, (*e).size) };
        if chunk.is_null() {
            // SAFETY: allocated by `alloc_block(size)`.
            unsafe { std::alloc::dealloc(e as *mut u8, block_layout(size)) };
            return;
        }
        let c = chunk as usize;
        if let Some(p) = self.pending.iter_mut().find(|p| p.0 == c || p.0 == 0) {
            p.0 = c;
            p.1 += 1;
            return;
        }
        let (old, n) = std::mem::replace(&mut self.pending[0], (c, 1));
        log.release(old as *mut Chunk, n);
    }

    /// Decrements the pending chunks' balances.
    fn flush(&mut self, log: &CommitLog) {
        for p in &mut self.pending {
            if p.0 != 0 {
                log.release(p.0 as *mut Chunk, p.1);
                *p = (0, 0);
            }
        }
    }
}

/// An entry built by a committer and not appended yet: freed if the commit gives up.
pub(crate) struct Unappended<'a> {
    log: &'a CommitLog,
    e: *mut Entry,
}

impl<'a> Unappended<'a> {
    pub(crate) fn new(log: &'a CommitLog, e: *mut Entry) -> Unappended<'a> {
        Unappended { log, e }
    }

    /// [`CommitLog::append`]s the entry (same contract) and returns it, now the log's.
    pub(crate) fn append(self, stats: &Stats) -> *mut Entry {
        let (log, e) = (self.log, self.e);
        std::mem::forget(self);
        log.append(e, stats);
        e
    }
}

impl Drop for Unappended<'_> {
    fn drop(&mut self) {
        self.log.free_entry(self.e);
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        let mut p = *self.root.get_mut();
        while !p.is_null() {
            // SAFETY: every entry from the root on is owned by the log, which is being
            // dropped (no segment can reach it any more).
            let next = unsafe { (*p).next.load(Relaxed) };
            self.free_entry(p);
            p = next;
        }
        let current: Vec<(*mut Chunk, i64)> = self
            .arenas
            .iter_mut()
            .map(|a| (a.0.get_mut().chunk, a.0.get_mut().count))
            .filter(|(c, _)| !c.is_null())
            .collect();
        for (c, count) in current {
            self.seal(c, count);
        }
        for c in self
            .pool
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: allocated by `alloc_block(CHUNK_SIZE)`; no entry in it is alive.
            unsafe { std::alloc::dealloc(c.0 as *mut u8, block_layout(CHUNK_SIZE)) };
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
            .store(self.log.len() + LOG_DUE_ENTRIES, Relaxed);
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
        let mut frees = Frees::default();
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
                        for r in e.recs() {
                            self.import_rec_idle(k, e, r);
                        }
                    }
                }
                for r in e.recs() {
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
                frees.free(&self.log, root);
                root = next;
            }
        }
        frees.flush(&self.log);
        // Written under `apply` only.
        let l = &self.log;
        l.freed_bytes
            .store(l.freed_bytes.load(Relaxed) + freed_bytes, Release);
        l.freed.store(l.freed.load(Relaxed) + freed, Release);
    }

    /// Whether the log is long enough, or holds enough bytes, to try [`Stm::advance_log`]
    /// after a commit. The byte bound matters for a few long transactions: before it, a
    /// program whose threads committed 9 entries of 81 MB in all (a loop building lists)
    /// kept them all until a 16th entry came, long after every segment had imported them.
    pub(crate) fn log_due(&self) -> bool {
        self.log.len() >= self.log.next_due.load(Relaxed) || self.log.held_bytes() >= LOG_DUE_BYTES
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
                for r in e.recs() {
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
