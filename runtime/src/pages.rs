//! Page privatization.
//!
//! Old-object pages are `MAP_SHARED` views of the memfd in every segment. The first write
//! barrier on an object of page p in segment k privatizes p in k: it maps private anonymous
//! memory over the page with `mmap(MAP_FIXED)` and copies the committed contents (segment 0's
//! view of the same file page) in. Runs of consecutive pages are privatized with one mmap;
//! adjacent private runs merge into one VMA, which keeps us far from `vm.max_map_count` for
//! clustered writes (the major collection re-shares pages, see `major.rs`).
//!
//! Privatization runs while the segment is RUNNING (not at a safe point), so no commit copies
//! into the segment at the same time; the bitmap is read by committers while the owner is
//! paused.

use crate::layout::PAGE_SIZE;
use crate::segment::{map_private_anon, Memory};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One bit per old-space page: is it private in this segment?
pub struct PrivateBitmap {
    bits: Vec<AtomicU64>,
}

impl PrivateBitmap {
    /// A bitmap for `pages` pages, all shared.
    pub fn new(pages: u64) -> PrivateBitmap {
        let n = pages.div_ceil(64) as usize;
        PrivateBitmap {
            bits: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Is old-space page index `p` private?
    #[inline]
    pub fn get(&self, p: u64) -> bool {
        self.bits[(p / 64) as usize].load(Relaxed) & (1 << (p % 64)) != 0
    }

    fn set(&self, p: u64) {
        self.bits[(p / 64) as usize].fetch_or(1 << (p % 64), Relaxed);
    }

    /// Marks page `p` shared again (for the GC's re-sharing, after mapping the file back).
    pub fn clear(&self, p: u64) {
        self.bits[(p / 64) as usize].fetch_and(!(1 << (p % 64)), Relaxed);
    }

    /// Number of private pages.
    pub fn count(&self) -> u64 {
        self.bits
            .iter()
            .map(|w| w.load(Relaxed).count_ones() as u64)
            .sum()
    }
}

/// Privatizes, in segment `seg`, every page touching `[off, off+len)` (segment offsets inside
/// the old space) that is still shared. Returns the number of pages privatized.
///
/// Must be called by the thread owning `seg` while it is RUNNING (no concurrent commit).
pub fn privatize(mem: &Memory, seg: usize, bitmap: &PrivateBitmap, off: u64, len: u64) -> u64 {
    let l = &mem.layout;
    debug_assert!(off >= l.old_start && off + len <= l.old_end);
    let first = (off - l.old_start) / PAGE_SIZE;
    let last = (off + len.max(1) - 1 - l.old_start) / PAGE_SIZE;
    let mut p = first;
    let mut done = 0;
    while p <= last {
        if bitmap.get(p) {
            p += 1;
            continue;
        }
        let run_start = p;
        while p <= last && !bitmap.get(p) {
            p += 1;
        }
        let n = p - run_start;
        let page_off = l.old_start + run_start * PAGE_SIZE;
        let dst = mem.addr(seg, page_off);
        let src = mem.addr(0, page_off);
        // SAFETY: the pages are in `seg`'s old space, which only this RUNNING thread touches
        // (committers are excluded by the safe-point protocol) and no Rust borrow covers.
        unsafe {
            map_private_anon(dst as u64, n * PAGE_SIZE, "privatize")
                .unwrap_or_else(|e| panic!("{e} (vm.max_map_count reached?)"));
        }
        // SAFETY: src (segment 0, shared file view) and dst (fresh private pages) are distinct
        // mapped ranges of n pages; segment 0 changes only during commits, excluded here.
        unsafe { std::ptr::copy_nonoverlapping(src, dst, (n * PAGE_SIZE) as usize) };
        for q in run_start..p {
            bitmap.set(q);
        }
        done += n;
    }
    done
}
