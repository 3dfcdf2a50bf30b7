//! The per-segment nursery: bump allocation of young objects and the moving minor collection.
//!
//! # Allocation (what the JIT inlines)
//! With `INFO = INFO_OFFSET` and sizes rounded up to a multiple of 16 (at least 16):
//! ```text
//! r = gs:[INFO + offset_of!(SegmentInfo, nursery_current)]
//! n = r + size
//! if n > gs:[INFO + offset_of!(SegmentInfo, nursery_end)] → slow: r = stmjit_alloc(th, type_id, size)
//!                                                          (0 = aborted, unwind)
//! gs:[INFO + offset_of!(SegmentInfo, nursery_current)] = n
//! gs:[r] = (type_id as u64) << 32          // ObjectHeader { flags: 0, type_id }
//! ```
//! The header of a young object is exactly `type_id << 32`: flags 0, in particular **no
//! `WRITE_BARRIER_FLAG`** (young objects are never write-barriered, never locked, never
//! conflict). **Nursery memory is zeroed** before it is handed out (at start and after every
//! minor collection or abort), so every other field reads `NONE` and the JIT must not zero.
//! Fields that size the object (e.g. an array's length) must be stored before the next call
//! that may collect.
//!
//! Objects larger than [`Stm::large_object_limit`] never fit the nursery: the slow path
//! allocates them zeroed in the old space and tracks them as *young* (no write-barrier flag;
//! they die or are promoted in place at the next minor collection). The JIT simply calls the
//! slow path for them (or lets the inline check fail).
//!
//! # Minor collection
//! Runs in the owner thread, in its own segment, while other segments keep running: when the
//! nursery is full (slow path) and at every commit (before publishing). Roots: the thread's
//! shadow stack, the old objects this transaction modified (records `Object`, and the objects
//! of `Card` records), and the objects promoted earlier in this transaction that were written
//! since (`old_young`: their write-barrier flag is re-set after each minor collection, so the
//! barrier slow path records them without taking a lock). Survivors are copied into the old
//! space (Cheney-style queue), the nursery copy gets `FORWARDED_FLAG` and the new address at
//! offset 8, and every root and field is rewritten in place. Promoted objects carry
//! `WRITE_BARRIER_FLAG | NEW_FLAG` and a `New` record, so commit publishes them like any
//! object allocated by the transaction.

use crate::addr_hash::AddrHash;
use crate::layout::{Layout, GRANULE};
use crate::object::{Ref, TypeId, FIRST_GC_FLAG, HEADER_SIZE, WRITE_BARRIER_FLAG};
use crate::shadowstack::{Region, ShadowStack};
use crate::stm::Stm;
use crate::transaction::{Abort, ModKind, ModRec, StmThread};
use crate::value::is_ref;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::time::Instant;

/// Header flag: the object was allocated (promoted) by a transaction that has not committed
/// yet; its write-barrier slow path only records it for the next minor collection.
pub const NEW_FLAG: u32 = FIRST_GC_FLAG;
/// Header flag of a nursery object already copied out; the new address is at offset 8.
pub const FORWARDED_FLAG: u32 = FIRST_GC_FLAG << 1;

/// Rounds an allocation size up to the object alignment (at least 16 bytes: room for the
/// forwarding address).
#[inline]
pub fn round_size(size: u64) -> u64 {
    size.max(2 * HEADER_SIZE).div_ceil(GRANULE) * GRANULE
}

/// The GC state of one thread handle, boxed so that its address is stable: the major
/// collector reads it from another thread while this one is stopped at a safe point (or
/// outside a transaction, where only the shadow stack may change, see `major.rs`).
pub(crate) struct ThreadGc {
    /// Segment of the running transaction, 0 outside one.
    pub seg: AtomicUsize,
    /// The shadow stack (JIT frames, Rust helpers, restart snapshots).
    pub shadow: ShadowStack,
    /// The mapping of `shadow`; taken out when the thread handle is dropped, for the next
    /// one to reuse ([`crate::Stm::try_thread`]).
    pub(crate) region: Option<Region>,
    /// The transaction's modified records (objects, cards, and `New` objects).
    pub modified: Vec<ModRec>,
    /// Commit log: the contents before this transaction of the ranges of the `Object` and
    /// `Card` records (`ModRec::backup`), restored by an abort.
    pub backups: Vec<u8>,
    /// Commit log: the records of the entry being built (`StmThread::build_entry`), kept
    /// for the next commit's so that building one allocates nothing.
    pub entry_recs: Vec<crate::commitlog::Rec>,
    /// Young objects outside the nursery: address → allocated size. Keyed with the cheap
    /// address hash: a minor collection looks up every reference it traces while the map
    /// is not empty (the arrays a growing list left behind stay there until it ends).
    pub young_large: HashMap<Ref, u64, AddrHash>,
    /// Objects promoted in this transaction that were written since the last minor
    /// collection (their write-barrier flag is clear until the next one).
    pub old_young: Vec<Ref>,
    /// Restart roots (`StmThread::set_restart_roots`): tagged words marked by the major
    /// collector, never scanned by minor collections. A mutex because a major collection
    /// started by another thread may read them at any time, even outside a transaction.
    pub restart_roots: std::sync::Mutex<Vec<u64>>,
}

impl ThreadGc {
    /// A thread's GC state; its shadow stack has `slots` slots (see
    /// [`crate::shadowstack::slots_for_objects`]); `Err` if it cannot be mapped.
    /// A stack of `reuse` (an ended thread's, see [`Region::recyclable`]) serves as well.
    pub(crate) fn new(slots: usize, reuse: Option<Region>) -> std::io::Result<ThreadGc> {
        let (region, shadow) = match reuse {
            Some(r) => {
                let s = r.empty_stack();
                (r, s)
            }
            None => Region::new(slots)?,
        };
        Ok(ThreadGc {
            seg: AtomicUsize::new(0),
            shadow,
            region: Some(region),
            modified: Vec::new(),
            backups: Vec::new(),
            entry_recs: Vec::new(),
            young_large: HashMap::default(),
            old_young: Vec::new(),
            restart_roots: std::sync::Mutex::new(Vec::new()),
        })
    }
}

/// Reads the flags word of the object at linear address `p`.
///
/// # Safety
/// `p` must point at a mapped object header.
#[inline]
pub(crate) unsafe fn flags_at(p: u64) -> u32 {
    // SAFETY: the caller's contract: `p` is a mapped object header.
    unsafe { *(p as *const u32) }
}

/// Sets and clears flag bits of the object at linear address `p`.
///
/// # Safety
/// `p` must point at a mapped object header nobody else writes concurrently.
#[inline]
pub(crate) unsafe fn update_flags(p: u64, set: u32, clear: u32) {
    let f = p as *mut u32;
    // SAFETY: the caller's contract: `p` is a mapped object header only we write.
    unsafe { *f = (*f | set) & !clear };
}

struct Minor<'a> {
    stm: &'a Stm,
    types: &'a crate::object::TypeRegistry,
    alloc: crate::gcpage::SegmentAllocator<'a>,
    base: u64,
    l: Layout,
    young_large: &'a mut HashMap<Ref, u64, AddrHash>,
    /// The addresses of the young large objects lie in this range: a reference outside it
    /// (most of them) needs no lookup.
    large_range: std::ops::Range<u64>,
    queue: Vec<Ref>,
    new_recs: Vec<ModRec>,
    promoted: u64,
}

impl Minor<'_> {
    /// Returns the new location of the young object `w` (copying it on first visit), or `w`
    /// itself for old objects.
    fn evacuate(&mut self, w: u64) -> u64 {
        if (self.l.nursery_start..self.l.nursery_end).contains(&w) {
            let p = self.base + w;
            // SAFETY: w is a reference into our own nursery, which is mapped and only touched
            // by this thread; its header was written at allocation.
            unsafe {
                if flags_at(p) & FORWARDED_FLAG != 0 {
                    return *((p + 8) as *const u64);
                }
                let ty = *((p + 4) as *const u32);
                let ti = self.types.try_get(ty).unwrap_or_else(|| {
                    panic!("stmjit: young object {w:#x} has unknown type id {ty}")
                });
                let size = round_size((ti.size)(p as *const u8) as u64);
                let new = if size <= crate::gcpage::SMALL_MAX {
                    self.alloc.alloc_small(size)
                } else {
                    self.stm.old.alloc_large(size)
                };
                // Old space of our segment: fresh slot, disjoint from the nursery.
                std::ptr::copy_nonoverlapping(
                    p as *const u8,
                    (self.base + new) as *mut u8,
                    size as usize,
                );
                update_flags(self.base + new, WRITE_BARRIER_FLAG as u32 | NEW_FLAG, 0);
                update_flags(p, FORWARDED_FLAG, 0);
                *((p + 8) as *mut u64) = new;
                self.queue.push(new);
                self.new_recs.push(ModRec {
                    addr: new,
                    len: size,
                    kind: ModKind::New,
                    obj: new,
                    site: 0,
                    backup: 0,
                });
                self.promoted += size;
                new
            }
        } else if self.large_range.contains(&w) {
            if let Some(size) = self.young_large.remove(&w) {
                // SAFETY: a young large object of this transaction, in our old space.
                unsafe { update_flags(self.base + w, WRITE_BARRIER_FLAG as u32 | NEW_FLAG, 0) };
                self.queue.push(w);
                self.new_recs.push(ModRec {
                    addr: w,
                    len: size,
                    kind: ModKind::New,
                    obj: w,
                    site: 0,
                    backup: 0,
                });
                self.promoted += size;
            }
            w
        } else {
            w
        }
    }

    /// Rewrites the reference fields of the card at `card` of the carded object at `r`, if
    /// its type traces cards ([`crate::object::TypeInfo::trace_card`]); `false` if not.
    /// A committed carded object is written only through its cards' barriers, each of which
    /// records its card: the cards are the only places that can refer to young objects.
    fn trace_card(&mut self, r: Ref, card: u64) -> bool {
        let p = self.base + r;
        // SAFETY: r is an old object of our segment (a card record's): header mapped.
        let ty = unsafe { *((p + 4) as *const u32) };
        let Some(tc) = self.types.get(ty).trace_card else {
            return false;
        };
        tc(p as *mut u8, card - r, &mut |q: *mut u64| {
            // SAFETY: the hook gives addresses of value words inside the object.
            unsafe {
                let w = *q;
                if is_ref(w) {
                    *q = self.evacuate(w);
                }
            }
        });
        true
    }

    /// Rewrites every reference field of the object at `r` (our segment's view).
    fn trace(&mut self, r: Ref) {
        let p = self.base + r;
        // SAFETY: r is an object of our segment (old or just promoted): header mapped.
        let ty = unsafe { *((p + 4) as *const u32) };
        let ti = self.types.get(ty);
        (ti.trace)(p as *mut u8, &mut |q: *mut u64| {
            // SAFETY: the trace hook gives addresses of value words inside the object.
            unsafe {
                let w = *q;
                if is_ref(w) {
                    *q = self.evacuate(w);
                }
            }
        });
    }
}

impl StmThread {
    /// Allocates a zero-initialised young object of type `ty` and `size` bytes (header
    /// included; rounded up to 16) in the nursery, or outside it (still young) when it is
    /// larger than [`Stm::large_object_limit`]. The object moves at the next minor
    /// collection (a later `alloc` that finds the nursery full, or the commit): keep the
    /// reference in the shadow stack across those. It needs no write barrier in this
    /// transaction and becomes visible to others when the transaction commits.
    pub fn alloc(&mut self, ty: TypeId, size: u64) -> Result<Ref, Abort> {
        self.enter()?;
        let size = round_size(size);
        if size > self.stm.large_limit {
            return Ok(self.alloc_young_large(ty, size));
        }
        let info = self.stm.mem.info(self.seg);
        let cur = info.nursery_current.load(Relaxed);
        if cur + size <= info.nursery_end.load(Relaxed) {
            info.nursery_current.store(cur + size, Relaxed);
            // SAFETY: [cur, cur+size) is free zeroed nursery of our segment (%gs).
            unsafe { crate::gs::store_u64(cur, (ty.0 as u64) << 32) };
            return Ok(cur);
        }
        self.alloc_slow(ty, size)
    }

    #[cold]
    fn alloc_slow(&mut self, ty: TypeId, size: u64) -> Result<Ref, Abort> {
        let stm = self.stm.clone();
        let l = stm.mem.layout;
        let info = stm.mem.info(self.seg);
        // Restore the real limit first (another thread may have set it to 0 to make us
        // enter the runtime), then honour any request.
        info.nursery_end.store(l.nursery_end, SeqCst);
        self.enter()?;
        if info.nursery_current.load(Relaxed) + size > l.nursery_end {
            self.minor_collection();
            if stm.major_due_in_transaction() {
                self.major_from_transaction()?;
            }
        }
        let cur = info.nursery_current.load(Relaxed);
        if cur + size > l.nursery_end {
            // Only with a nursery smaller than the object (e.g. `nursery_size` 0).
            return Ok(self.alloc_young_large(ty, size));
        }
        info.nursery_current.store(cur + size, Relaxed);
        // SAFETY: as in `alloc`.
        unsafe { crate::gs::store_u64(cur, (ty.0 as u64) << 32) };
        Ok(cur)
    }

    fn alloc_young_large(&mut self, ty: TypeId, size: u64) -> Ref {
        let stm = &self.stm;
        let r = stm.old.alloc_large(size);
        let p = stm.mem.addr(self.seg, r);
        // SAFETY: a fresh page run of the old space, mapped in our segment, unreachable by
        // anyone else until published.
        unsafe {
            std::ptr::write_bytes(p, 0, size as usize);
            *(p as *mut u64) = (ty.0 as u64) << 32;
        }
        self.gc.young_large.insert(r, size);
        r
    }

    /// Runs a minor collection now (also done automatically when the nursery is full and
    /// at commit). Moves every surviving young object to the old space and rewrites the
    /// roots in place.
    pub fn collect_minor(&mut self) -> Result<(), Abort> {
        self.enter()?;
        self.minor_collection();
        Ok(())
    }

    /// The minor collection proper. The thread is RUNNING in its segment (or the world is
    /// stopped by it).
    pub(crate) fn minor_collection(&mut self) {
        let me = self.seg;
        let l = self.stm.mem.layout;
        let cur = self.stm.mem.info(me).nursery_current.load(Relaxed);
        if cur == l.nursery_start && self.gc.young_large.is_empty() {
            return; // nothing young: the common case of small transactions, no Arc clone
        }
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        let gc = &mut *self.gc;
        let t0 = Instant::now();
        let base = l.segment_base(me);
        let lo = gc.young_large.keys().copied().min().unwrap_or(0);
        let hi = gc.young_large.keys().copied().max().map_or(0, |r| r + 1);
        let mut m = Minor {
            stm,
            types: &stm.types,
            alloc: stm.old.segment_allocator(me),
            base,
            l,
            young_large: &mut gc.young_large,
            large_range: lo..hi,
            queue: Vec::new(),
            new_recs: Vec::new(),
            promoted: 0,
        };
        gc.shadow.for_each_slot(|q| {
            // SAFETY: q is a slot in use of our own shadow stack.
            unsafe {
                if is_ref(*q) {
                    *q = m.evacuate(*q);
                }
            }
        });
        let mut carded: HashSet<Ref, AddrHash> = HashSet::default();
        for rec in &gc.modified {
            match rec.kind {
                ModKind::Object => m.trace(rec.addr),
                ModKind::Card => {
                    if !carded.contains(&rec.obj) && !m.trace_card(rec.obj, rec.addr) {
                        carded.insert(rec.obj);
                        m.trace(rec.obj)
                    }
                }
                ModKind::New => {}
            }
        }
        for &r in &gc.old_young {
            m.trace(r);
        }
        while let Some(r) = m.queue.pop() {
            m.trace(r);
        }
        for &r in &gc.old_young {
            // SAFETY: r is an object promoted by this transaction, in our segment.
            unsafe { update_flags(base + r, WRITE_BARRIER_FLAG as u32, 0) };
        }
        gc.old_young.clear();
        let promoted = m.promoted;
        gc.modified.append(&mut m.new_recs);
        drop(m);
        for (r, _) in gc.young_large.drain() {
            stm.old.free_large(r);
        }
        reset_nursery(stm, me, cur);
        let ns = t0.elapsed().as_nanos() as u64;
        let c = &stm.segs[me].counters;
        crate::stats::SegCounters::bump(&c.minor_collections, 1);
        crate::stats::SegCounters::bump(&c.bytes_promoted, promoted);
        crate::stats::SegCounters::bump(&c.minor_ns, ns);
        if ns > c.minor_max_ns.load(Relaxed) {
            c.minor_max_ns.store(ns, Relaxed);
        }
        let depth = gc.shadow.depth() as u64;
        if depth > c.shadow_max_slots.load(Relaxed) {
            c.shadow_max_slots.store(depth, Relaxed);
        }
        if let Some(t) = stm.tracer() {
            t.span_ending_now(crate::trace::SpanKind::MinorCollection, ns);
        }
    }

    /// Forgets everything young after an abort: empties the nursery, frees the young large
    /// objects, and sets to `NONE` every shadow-stack slot that referred to an object
    /// allocated by the aborted transaction. Called before the modified list is cleared.
    pub(crate) fn gc_abort(&mut self) {
        let stm = self.stm.clone();
        let me = self.seg;
        let l = stm.mem.layout;
        let cur = stm.mem.info(me).nursery_current.load(Relaxed);
        let gc = &mut *self.gc;
        if gc.shadow.depth() > 0 {
            let mut news: Vec<Ref> = gc
                .modified
                .iter()
                .filter(|r| r.kind == ModKind::New)
                .map(|r| r.addr)
                .collect();
            news.sort_unstable();
            let young_large = &gc.young_large;
            gc.shadow.clear_refs(|w| {
                (l.nursery_start..l.nursery_end).contains(&w)
                    || young_large.contains_key(&w)
                    || news.binary_search(&w).is_ok()
            });
        }
        for (r, _) in gc.young_large.drain() {
            stm.old.free_large(r);
        }
        gc.old_young.clear();
        reset_nursery(&stm, me, cur);
    }
}

/// Zeroes the used part `[nursery_start, cur)` of segment `seg`'s nursery and makes it
/// empty again (real limit restored).
fn reset_nursery(stm: &Stm, seg: usize, cur: u64) {
    let l = stm.mem.layout;
    let info = stm.mem.info(seg);
    if cur > l.nursery_start {
        // SAFETY: the nursery of `seg` is mapped private; its owner is this thread (RUNNING,
        // or world stopped by it), so nobody else touches it.
        unsafe {
            std::ptr::write_bytes(
                stm.mem.addr(seg, l.nursery_start),
                0,
                (cur - l.nursery_start) as usize,
            )
        };
    }
    info.nursery_current.store(l.nursery_start, Relaxed);
    info.nursery_end.store(l.nursery_end, SeqCst);
}
