//! The old-space allocator: size-class pages for small objects, page runs for large ones,
//! and the side tables of the major collection (page kinds, allocation bits, mark bits).
//!
//! stmgc-c7 allocated small old objects with a bump pointer and measured 3x on a simple
//! benchmark when trying size classes; here every small object (up to [`SMALL_MAX`] bytes)
//! lives in a 4 KiB page devoted to one size class (multiples of 16 bytes), so that sweeping
//! frees slots in place and the next promotions reuse them.
//!
//! Concurrency: each segment owns, per size class, at most one *current* page it allocates
//! from (promotions by its minor collections); the page's allocation bits are only set by that
//! owner and only cleared by the sweep. Pages come from the partly-free lists (refilled by
//! each sweep) or fresh from [`PageRuns`]; both behind mutexes taken once per page. Nothing
//! here touches object memory: the caller copies or zeroes the object in its own segment's
//! view, and commit publishes it (`New` records).
//!
//! The sweep runs in two steps so that only the first stops the world:
//! [`OldSpace::plan_sweep`], world stopped, takes every page with objects out of the
//! allocators' hands (current pages dropped, partly-free lists emptied) and lists them with
//! their kind; [`OldSpace::sweep`], with the world running, visits only the listed pages.
//! Meanwhile allocators take fresh pages from [`PageRuns`], which the sweep never looks at,
//! and a listed page returns to them only once swept (refilled partly-free lists; empty runs
//! through [`OldSpace::release_runs`], after the caller has punched them out of the memfd).
//! So the sweep and the allocators never touch the same page's bits. A listed large object
//! that is live may be freed meanwhile by its owner (a young large object dying at a minor
//! collection) and its pages reused: the sweep acts on a large object only when it is
//! unmarked, which a young large object never is (the marker roots them), and uses the kind
//! recorded in the plan, never the page's kind now.
//!
//! Side tables are `MAP_NORESERVE` anonymous memory touched lazily, sized for the whole old
//! space (72 bytes of address space per page).

use crate::largemalloc::PageRuns;
use crate::layout::{Layout, GRANULE, PAGE_SIZE};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

/// Largest object size allocated in size-class pages; larger ones get their own page run.
pub const SMALL_MAX: u64 = 1024;
/// Number of size classes: class `c` holds objects of `16 * (c + 1)` bytes.
pub const NUM_CLASSES: usize = (SMALL_MAX / GRANULE) as usize;
const BITS_WORDS: usize = (PAGE_SIZE / GRANULE / 64) as usize; // 4: up to 256 slots
const KIND_SMALL: u64 = 1;
const KIND_LARGE: u64 = 2;

/// Zero-initialised `MAP_NORESERVE` array of atomics.
struct SideTable {
    ptr: *const AtomicU64,
    len: usize,
}

// SAFETY: only accessed through atomics.
unsafe impl Send for SideTable {}
// SAFETY: only accessed through atomics.
unsafe impl Sync for SideTable {}

impl SideTable {
    /// Maps `len` zeroed words, or says why it could not (an address-space limit: the
    /// program reports it instead of panicking).
    fn new(len: usize) -> std::io::Result<SideTable> {
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len * 8,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(std::io::Error::new(
                e.kind(),
                format!("cannot map a GC side table ({} bytes): {e}", len * 8),
            ));
        }
        Ok(SideTable {
            ptr: p as *const AtomicU64,
            len,
        })
    }

    #[inline]
    fn at(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len, "stmjit: GC side-table index out of range");
        // SAFETY: i < len and the mapping lives as long as self.
        unsafe { &*self.ptr.add(i) }
    }

    /// Zeroes words `[0, n)` (all atomics; called with the world stopped).
    fn clear(&self, n: usize) {
        for i in 0..n.min(self.len) {
            self.at(i).store(0, Relaxed);
        }
    }
}

impl Drop for SideTable {
    fn drop(&mut self) {
        // SAFETY: our mapping, no longer used.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len * 8) };
    }
}

/// A segment's current page of one size class and the next slot to try.
#[derive(Clone, Copy, Default)]
pub struct Current {
    page: Option<u64>,
    next: u64,
}

/// What the sweep found.
#[derive(Debug, Default)]
pub struct SweepResult {
    /// Bytes of the listed objects still allocated (objects allocated since the plan are not
    /// counted).
    pub live_bytes: u64,
    /// Objects freed.
    pub freed_objects: u64,
    /// Bytes freed.
    pub freed_bytes: u64,
    /// Whole page runs that became free `(first page index, pages)`: no allocator can have
    /// them until they are given to [`OldSpace::release_runs`].
    pub freed_runs: Vec<(u64, u64)>,
}

/// The pages a sweep visits, listed with the world stopped ([`OldSpace::plan_sweep`]).
#[must_use = "a planned sweep must run, or the listed pages never return to the allocators"]
pub struct SweepPlan {
    /// `(page index, page kind word)` of every page holding objects at the plan, a large
    /// object's first page only.
    pages: Vec<(u64, u64)>,
    /// The frontier at the plan: no mark bit is set at or above it.
    frontier: u64,
}

/// A segment's small-object allocator, locked for a batch of allocations (a minor
/// collection); the byte counters are updated once, on drop.
pub struct SegmentAllocator<'a> {
    space: &'a OldSpace,
    cur: std::sync::MutexGuard<'a, [Current; NUM_CLASSES]>,
    bytes: u64,
}

impl SegmentAllocator<'_> {
    /// As [`OldSpace::alloc_small`].
    #[inline]
    pub fn alloc_small(&mut self, size: u64) -> u64 {
        self.bytes += size;
        self.space.alloc_in(&mut self.cur, size)
    }
}

impl Drop for SegmentAllocator<'_> {
    fn drop(&mut self) {
        self.space.in_use_bytes.fetch_add(self.bytes, Relaxed);
        self.space
            .allocated_since_major
            .fetch_add(self.bytes, Relaxed);
    }
}

/// The old-object space allocator of one runtime instance.
pub struct OldSpace {
    pub(crate) runs: PageRuns,
    old_start: u64,
    meta: SideTable,
    alloc_bits: SideTable,
    mark_bits: SideTable,
    partial: Mutex<Vec<Vec<u64>>>,
    current: Vec<Mutex<[Current; NUM_CLASSES]>>,
    in_use_bytes: AtomicU64,
    /// Bytes allocated since the last major collection (its trigger).
    pub(crate) allocated_since_major: AtomicU64,
}

/// Size class of a (16-rounded) small size.
#[inline]
fn class_of(size: u64) -> usize {
    debug_assert!(size.is_multiple_of(GRANULE) && (GRANULE..=SMALL_MAX).contains(&size));
    (size / GRANULE - 1) as usize
}

#[inline]
fn class_size(c: usize) -> u64 {
    (c as u64 + 1) * GRANULE
}

impl OldSpace {
    /// The allocator for a layout with `num_segments` transaction segments, or `Err` when
    /// its side tables cannot be mapped.
    pub fn new(l: &Layout) -> std::io::Result<OldSpace> {
        let pages = l.old_pages();
        Ok(OldSpace {
            runs: PageRuns::new(pages),
            old_start: l.old_start,
            meta: SideTable::new(pages as usize)?,
            alloc_bits: SideTable::new(pages as usize * BITS_WORDS)?,
            mark_bits: SideTable::new(pages as usize * BITS_WORDS)?,
            partial: Mutex::new(vec![Vec::new(); NUM_CLASSES]),
            current: (0..=l.num_segments)
                .map(|_| Mutex::new([Current::default(); NUM_CLASSES]))
                .collect(),
            in_use_bytes: AtomicU64::new(0),
            allocated_since_major: AtomicU64::new(0),
        })
    }

    #[inline]
    fn page_addr(&self, p: u64) -> u64 {
        self.old_start + p * PAGE_SIZE
    }

    /// Allocates `size` bytes (a multiple of 16, at most [`SMALL_MAX`]) for segment `seg`
    /// and returns the segment offset. The memory holds garbage: the caller overwrites it.
    /// (Minor collections use [`OldSpace::segment_allocator`] instead: one lock for all.)
    pub fn alloc_small(&self, seg: usize, size: u64) -> u64 {
        self.segment_allocator(seg).alloc_small(size)
    }

    /// The allocator of segment `seg`'s current pages, locked until dropped (uncontended:
    /// only the segment's owner and the major collection use it).
    pub fn segment_allocator(&self, seg: usize) -> SegmentAllocator<'_> {
        SegmentAllocator {
            space: self,
            cur: self.current[seg].lock().unwrap(),
            bytes: 0,
        }
    }

    fn alloc_in(&self, cur: &mut [Current; NUM_CLASSES], size: u64) -> u64 {
        let c = class_of(size);
        let cc = &mut cur[c];
        loop {
            if let Some(p) = cc.page {
                if let Some(i) = self.take_slot(p, size, &mut cc.next) {
                    return self.page_addr(p) + i * size;
                }
            }
            let p = self.partial.lock().unwrap()[c].pop();
            let p = p.unwrap_or_else(|| {
                let p = self.runs.alloc(1);
                self.meta
                    .at(p as usize)
                    .store(KIND_SMALL | (c as u64) << 8, Relaxed);
                p
            });
            *cc = Current {
                page: Some(p),
                next: 0,
            };
        }
    }

    /// Finds and takes the first free slot at or after `*next` in page `p`.
    fn take_slot(&self, p: u64, size: u64, next: &mut u64) -> Option<u64> {
        let nslots = PAGE_SIZE / size;
        let mut i = *next;
        while i < nslots {
            let w = (i / 64) as usize;
            let word = self.alloc_bits.at(p as usize * BITS_WORDS + w);
            let free = !word.load(Relaxed) & (!0u64 << (i % 64));
            if free == 0 {
                i = (w as u64 + 1) * 64;
                continue;
            }
            let j = w as u64 * 64 + free.trailing_zeros() as u64;
            if j >= nslots {
                break;
            }
            // Only this page's owning segment sets bits (the sweep clears them with the
            // world stopped): a plain read-modify-write is enough, no locked instruction.
            word.store(word.load(Relaxed) | 1 << (j % 64), Relaxed);
            *next = j + 1;
            return Some(j);
        }
        *next = nslots;
        None
    }

    /// Allocates a run of whole pages for a large object of `size` bytes and returns its
    /// offset. The memory may hold garbage: the caller zeroes it.
    pub fn alloc_large(&self, size: u64) -> u64 {
        let n = size.div_ceil(PAGE_SIZE);
        let p = self.runs.alloc(n);
        self.meta.at(p as usize).store(KIND_LARGE | n << 8, Relaxed);
        self.in_use_bytes.fetch_add(n * PAGE_SIZE, Relaxed);
        self.allocated_since_major.fetch_add(n * PAGE_SIZE, Relaxed);
        self.page_addr(p)
    }

    /// Frees a large object that was never published (young large object of an aborted
    /// transaction or one that died young). Its pages are also taken off
    /// `allocated_since_major`: they never became old garbage that only a major collection
    /// could free (a shared dict whose growth conflicted allocated its new table again at
    /// each retry, and those freed tables alone made dictfill run two major collections).
    pub fn free_large(&self, addr: u64) {
        let p = (addr - self.old_start) / PAGE_SIZE;
        let m = self.meta.at(p as usize).swap(0, Relaxed);
        assert_eq!(
            m & 0xff,
            KIND_LARGE,
            "stmjit: free_large of a non-large object"
        );
        let n = m >> 8;
        self.in_use_bytes.fetch_sub(n * PAGE_SIZE, Relaxed);
        // Saturating: a major collection since its allocation reset the count.
        let _ = self
            .allocated_since_major
            .fetch_update(Relaxed, Relaxed, |a| Some(a.saturating_sub(n * PAGE_SIZE)));
        self.runs.free(p, n);
    }

    /// If `addr` is the start of an allocated old object, its allocated size.
    pub fn object_size(&self, addr: u64) -> Option<u64> {
        if addr < self.old_start || !addr.is_multiple_of(GRANULE) {
            return None;
        }
        let p = (addr - self.old_start) / PAGE_SIZE;
        if p >= self.runs.frontier() {
            return None;
        }
        let m = self.meta.at(p as usize).load(Relaxed);
        let off = addr - self.page_addr(p);
        match m & 0xff {
            KIND_SMALL => {
                let size = class_size((m >> 8) as usize);
                let i = off / size;
                let bits = self
                    .alloc_bits
                    .at(p as usize * BITS_WORDS + (i / 64) as usize)
                    .load(Relaxed);
                (off.is_multiple_of(size) && i < PAGE_SIZE / size && bits & (1 << (i % 64)) != 0)
                    .then_some(size)
            }
            KIND_LARGE if off == 0 => Some((m >> 8) * PAGE_SIZE),
            _ => None,
        }
    }

    /// Sets the mark bit of the object at `addr`; returns whether it was already set. Only
    /// one thread marks (the major collection's, world stopped), so a plain load and store
    /// do: no locked instruction per object.
    pub fn test_and_mark(&self, addr: u64) -> bool {
        let g = (addr - self.old_start) / GRANULE;
        let bit = 1u64 << (g % 64);
        let word = self.mark_bits.at((g / 64) as usize);
        let w = word.load(Relaxed);
        word.store(w | bit, Relaxed);
        w & bit != 0
    }

    fn is_marked(&self, addr: u64) -> bool {
        let g = (addr - self.old_start) / GRANULE;
        self.mark_bits.at((g / 64) as usize).load(Relaxed) & (1 << (g % 64)) != 0
    }

    /// Bytes of old objects allocated and not freed.
    pub fn in_use_bytes(&self) -> u64 {
        self.in_use_bytes.load(Relaxed)
    }

    /// First step of the sweep, after marking, world stopped: drops every segment's current
    /// pages, empties the partly-free lists and lists the pages holding objects, so that no
    /// allocator touches them until [`OldSpace::sweep`] has visited them; counts the bytes
    /// allocated since the major collection from zero again.
    pub fn plan_sweep(&self) -> SweepPlan {
        for c in &self.current {
            *c.lock().unwrap() = [Current::default(); NUM_CLASSES];
        }
        for l in self.partial.lock().unwrap().iter_mut() {
            l.clear();
        }
        let frontier = self.runs.frontier();
        let mut pages = Vec::new();
        let mut p = 0;
        while p < frontier {
            let m = self.meta.at(p as usize).load(Relaxed);
            match m & 0xff {
                KIND_SMALL => pages.push((p, m)),
                KIND_LARGE => {
                    pages.push((p, m));
                    p += (m >> 8) - 1;
                }
                _ => {}
            }
            p += 1;
        }
        self.allocated_since_major.store(0, Relaxed);
        SweepPlan { pages, frontier }
    }

    /// Second step, world running or not: frees every unmarked object of the plan's pages,
    /// calls `freed` with each freed object's `(offset, size)` before its slot can be
    /// reused, refills the partly-free lists and clears the mark bits. Whole free runs are
    /// returned, not freed: see [`OldSpace::release_runs`]. Not concurrent with marking (the
    /// caller holds the commit mutex throughout).
    pub fn sweep(&self, plan: SweepPlan, mut freed: impl FnMut(u64, u64)) -> SweepResult {
        let mut res = SweepResult::default();
        let mut partial: Vec<Vec<u64>> = vec![Vec::new(); NUM_CLASSES];
        for &(p, m) in &plan.pages {
            match m & 0xff {
                KIND_SMALL => {
                    let c = (m >> 8) as usize;
                    let size = class_size(c);
                    let nslots = PAGE_SIZE / size;
                    let (mut live, mut free_slots) = (0u64, 0u64);
                    for i in 0..nslots {
                        let word = self
                            .alloc_bits
                            .at(p as usize * BITS_WORDS + (i / 64) as usize);
                        let bit = 1u64 << (i % 64);
                        let a = self.page_addr(p) + i * size;
                        if word.load(Relaxed) & bit == 0 {
                            free_slots += 1;
                        } else if self.is_marked(a) {
                            live += 1;
                        } else {
                            word.fetch_and(!bit, Relaxed);
                            freed(a, size);
                            res.freed_objects += 1;
                            res.freed_bytes += size;
                            free_slots += 1;
                        }
                    }
                    res.live_bytes += live * size;
                    if live == 0 {
                        self.meta.at(p as usize).store(0, Relaxed);
                        res.freed_runs.push((p, 1));
                    } else if free_slots > 0 {
                        partial[c].push(p);
                    }
                }
                _ => {
                    let n = m >> 8;
                    let a = self.page_addr(p);
                    if self.is_marked(a) {
                        res.live_bytes += n * PAGE_SIZE;
                    } else {
                        self.meta.at(p as usize).store(0, Relaxed);
                        freed(a, n * PAGE_SIZE);
                        res.freed_objects += 1;
                        res.freed_bytes += n * PAGE_SIZE;
                        res.freed_runs.push((p, n));
                    }
                }
            }
        }
        self.mark_bits.clear(plan.frontier as usize * BITS_WORDS);
        self.in_use_bytes.fetch_sub(res.freed_bytes, Relaxed);
        let mut lists = self.partial.lock().unwrap();
        for (l, mut swept) in lists.iter_mut().zip(partial) {
            // Lowest addresses last, popped first: promotions then fill the bottom of the
            // heap. (The lists were emptied by the plan and only the sweep fills them.)
            swept.sort_unstable_by(|a, b| b.cmp(a));
            *l = swept;
        }
        res
    }

    /// Gives the page runs a sweep found free back to the page allocator (after the caller
    /// has released their memory: they are shared in every segment and nothing refers to
    /// them).
    pub fn release_runs(&self, runs: &[(u64, u64)]) {
        for &(p, n) in runs {
            self.runs.free(p, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space() -> OldSpace {
        OldSpace::new(&Layout::new(64 << 20, 4096, 2)).unwrap()
    }

    fn page_of(s: &OldSpace, a: u64) -> u64 {
        (a - s.old_start) / PAGE_SIZE
    }

    /// Objects allocated after the plan, while the world runs again, are not in it: the sweep
    /// never frees them, and the planned pages return to the allocators only once swept.
    #[test]
    fn objects_allocated_between_plan_and_sweep_survive_it() {
        let s = space();
        let old: Vec<u64> = (0..10).map(|_| s.alloc_small(1, 32)).collect();
        assert!(!s.test_and_mark(old[0]));
        let plan = s.plan_sweep();
        let young = s.alloc_small(1, 32);
        assert_ne!(
            page_of(&s, young),
            page_of(&s, old[0]),
            "a planned page stays out of the allocators' hands"
        );
        let large = s.alloc_large(3 * PAGE_SIZE);
        let mut freed = Vec::new();
        let res = s.sweep(plan, |a, len| freed.push((a, len)));
        assert_eq!(res.freed_objects, 9);
        assert_eq!(freed, old[1..].iter().map(|&a| (a, 32)).collect::<Vec<_>>());
        assert_eq!(s.object_size(old[0]), Some(32));
        assert_eq!(s.object_size(old[1]), None);
        assert_eq!(s.object_size(young), Some(32), "allocated after the plan");
        assert_eq!(s.object_size(large), Some(3 * PAGE_SIZE));
        assert_eq!(s.in_use_bytes(), 32 + 32 + 3 * PAGE_SIZE);
        // Swept, the partly-free page is handed out again (to a segment without a current
        // page of that class).
        assert_eq!(page_of(&s, s.alloc_small(2, 32)), page_of(&s, old[0]));
    }

    /// A page that the sweep found empty goes back to the page allocator only through
    /// `release_runs` (after the caller punched it out of the memfd), never before.
    #[test]
    fn free_runs_are_handed_out_only_once_released() {
        let s = space();
        let dead = s.alloc_small(1, 32);
        let plan = s.plan_sweep();
        let res = s.sweep(plan, |_, _| {});
        let p = page_of(&s, dead);
        assert_eq!(res.freed_runs, vec![(p, 1)]);
        assert_eq!(s.object_size(dead), None);
        let meanwhile = s.alloc_small(1, 48);
        assert_ne!(page_of(&s, meanwhile), p, "not yet released");
        s.release_runs(&res.freed_runs);
        assert_eq!(page_of(&s, s.alloc_small(1, 64)), p);
    }

    /// A live young large object of the plan may be freed by its owner while the world runs
    /// and its pages reused for small objects: the sweep goes by the plan's kind of the page
    /// (a marked large object: nothing to do), never by its kind now, so the new small
    /// objects survive.
    #[test]
    fn a_large_object_freed_and_reused_during_the_sweep_is_not_swept() {
        let s = space();
        let large = s.alloc_large(PAGE_SIZE);
        assert!(!s.test_and_mark(large));
        let plan = s.plan_sweep();
        s.free_large(large);
        let small = s.alloc_small(1, 32);
        assert_eq!(
            page_of(&s, small),
            page_of(&s, large),
            "its page was reused"
        );
        let res = s.sweep(plan, |_, _| {});
        assert_eq!(res.freed_objects, 0);
        assert_eq!(s.object_size(small), Some(32));
    }
}
