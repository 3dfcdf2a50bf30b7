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
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

/// Shared pages a new run of private pages may be widened over, on either side, to join a
/// private neighbour when the runs are too many (`privatize`): 256 KiB of copying at most.
pub const MERGE_GAP: u64 = 64;

/// Privatizations left before one fails as if `mmap` had (`u64::MAX`: none fails): the
/// fault injection of `STMJIT_FAIL_PRIVATIZE`, for tests of [`cannot_privatize`].
static FAIL_AFTER: AtomicU64 = AtomicU64::new(u64::MAX);

/// Makes the privatization after the next `n` fail as if `mmap` had (tests only:
/// `STMJIT_FAIL_PRIVATIZE`).
pub fn fail_privatizations_after(n: u64) {
    FAIL_AFTER.store(n, Relaxed);
}

/// Whether this privatization is the one [`fail_privatizations_after`] fails.
fn injected_failure() -> bool {
    let left = FAIL_AFTER.load(Relaxed);
    if left == u64::MAX {
        return false;
    }
    if left == 0 {
        return true;
    }
    FAIL_AFTER.fetch_sub(1, Relaxed);
    false
}

/// A page could not be made private (the `mmap` over it failed: `vm.max_map_count` reached,
/// or no memory). The write cannot happen, and the failed `MAP_FIXED` may have unmapped the
/// range already, so the run ends here as a `MemoryError` (exit status 1), naming the
/// mappings in use, instead of a panic (exit status 101). The major collection's re-sharing
/// (run early when private runs grow many) and the checks before each thread start keep
/// the mappings below the limit in ordinary programs.
fn cannot_privatize(e: std::io::Error) -> ! {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map(|t| t.lines().count())
        .unwrap_or(0);
    eprintln!(
        "error: MemoryError: cannot make a page private: {e} ({maps} memory mappings in use, \
         vm.max_map_count is {})",
        crate::major::max_map_count()
    );
    std::process::exit(1)
}

/// One bit per old-space page: is it private in this segment?
pub struct PrivateBitmap {
    bits: Vec<AtomicU64>,
    /// Runs of consecutive private pages (each is a mapping of its own, and splits the
    /// shared mapping around it: about two per run count against `vm.max_map_count`), kept
    /// up to date by [`privatize`] and recounted by the re-sharing of the major collection,
    /// which runs early when the runs of all segments get too many ([`crate::Stm`]'s
    /// `major_due`): scattered writes between two collections (a huge dict's index) used to
    /// exhaust `vm.max_map_count` and abort the process.
    runs: AtomicI64,
}

impl PrivateBitmap {
    /// A bitmap for `pages` pages, all shared.
    pub fn new(pages: u64) -> PrivateBitmap {
        let n = pages.div_ceil(64) as usize;
        PrivateBitmap {
            bits: (0..n).map(|_| AtomicU64::new(0)).collect(),
            runs: AtomicI64::new(0),
        }
    }

    /// Runs of consecutive private pages (see the field).
    pub fn runs(&self) -> u64 {
        self.runs.load(Relaxed).max(0) as u64
    }

    /// Counts the runs of private pages again (world stopped, after the major collection's
    /// re-sharing) and returns it.
    pub(crate) fn recount_runs(&self) -> u64 {
        let mut runs = 0u64;
        let mut carry = 0u64;
        for w in &self.bits {
            let w = w.load(Relaxed);
            // A run starts at each set bit whose lower neighbour is clear.
            runs += (w & !((w << 1) | carry)).count_ones() as u64;
            carry = w >> 63;
        }
        self.runs.store(runs as i64, Relaxed);
        runs
    }

    /// Is old-space page index `p` private?
    #[inline]
    pub fn get(&self, p: u64) -> bool {
        self.bits[(p / 64) as usize].load(Relaxed) & (1 << (p % 64)) != 0
    }

    /// [`PrivateBitmap::get`], false beyond the bitmap's end.
    fn get_or_false(&self, p: u64) -> bool {
        ((p / 64) as usize) < self.bits.len() && self.get(p)
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
///
/// Under `pressure` (too many runs of private pages in all: see [`PrivateBitmap::runs`]), a
/// new run is widened over up to [`MERGE_GAP`] shared pages on either side to join a private
/// neighbour, so that scattered writes in one transaction (a huge dict's index) add pages
/// rather than mappings: the extra pages hold committed contents, which is what a private
/// page that the transaction did not write holds anyway (commits update it, the major
/// collection re-shares it).
pub fn privatize(
    mem: &Memory,
    seg: usize,
    bitmap: &PrivateBitmap,
    off: u64,
    len: u64,
    pressure: bool,
) -> u64 {
    let l = &mem.layout;
    debug_assert!(off >= l.old_start && off + len <= l.old_end);
    let first = (off - l.old_start) / PAGE_SIZE;
    let last = (off + len.max(1) - 1 - l.old_start) / PAGE_SIZE;
    let pages = l.old_pages();
    let mut p = first;
    let mut done = 0;
    while p <= last {
        if bitmap.get(p) {
            p += 1;
            continue;
        }
        let mut run_start = p;
        while p <= last && !bitmap.get(p) {
            p += 1;
        }
        if pressure {
            if let Some(q) = (run_start.saturating_sub(MERGE_GAP)..run_start)
                .rev()
                .find(|&q| bitmap.get(q))
            {
                run_start = q + 1;
            }
            if !bitmap.get_or_false(p) {
                if let Some(q) = (p + 1..(p + 1 + MERGE_GAP).min(pages)).find(|&q| bitmap.get(q)) {
                    p = q;
                }
            }
        }
        let n = p - run_start;
        // The new run merges with a private neighbour on either side (one run fewer for
        // each), else it is a run of its own.
        let left = run_start > 0 && bitmap.get(run_start - 1);
        let right = bitmap.get_or_false(p);
        bitmap
            .runs
            .fetch_add(1 - left as i64 - right as i64, Relaxed);
        let page_off = l.old_start + run_start * PAGE_SIZE;
        let dst = mem.addr(seg, page_off);
        let src = mem.addr(0, page_off);
        // The pages are in `seg`'s old space, which only this RUNNING thread touches
        // (committers are excluded by the safe-point protocol) and no Rust borrow covers.
        let mapped = if injected_failure() {
            Err(std::io::Error::from_raw_os_error(libc::ENOMEM))
        } else {
            // SAFETY: as above.
            unsafe { map_private_anon(dst as u64, n * PAGE_SIZE, "privatize") }
        };
        if let Err(e) = mapped {
            cannot_privatize(e);
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
