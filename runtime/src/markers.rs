//! Resetting a segment's read and card markers when its read version wraps around (every 255
//! transactions of the segment): afterwards every marker byte reads 0.
//!
//! Dropping the whole marker area with `MADV_DONTNEED` is simple but slow while other threads
//! run: the kernel walks the 2 GiB range and must flush the TLB of every core running the
//! process (an inter-processor interrupt, a VM exit under a hypervisor). On microtq with two
//! segments each call took about 100 us, half a transaction's cost per transaction. Short
//! transactions touch few marker pages between two resets, so the usual reset asks the kernel
//! which marker pages are in use (`/proc/self/pagemap`: present or swapped) below the highest
//! object ever allocated, and zeroes the 64-byte blocks of those pages that are not zero
//! (no write to a page that only maps the shared zero page). Pages cleared so stay resident:
//! once more than [`CLEAR_MAX_PAGES`] are in use, or when the range to look up is large, the
//! reset drops the whole area as before, which also gives their memory back.

use crate::layout::{MARKER_SHIFT, PAGE_SIZE};
use crate::stats::Stats;
use crate::stm::Stm;
use std::os::unix::fs::FileExt;
use std::sync::OnceLock;

/// Most marker pages in use that a reset clears one by one (256 KiB); above, it drops the
/// whole marker area.
const CLEAR_MAX_PAGES: usize = 64;

/// Most marker pages whose state a reset looks up (read and card markers together: 64 MiB of
/// markers, the markers of a 512 MiB heap); above, it drops the whole marker area.
const LOOKUP_MAX_PAGES: u64 = 16384;

/// `/proc/self/pagemap` entry bits: the page is present, or swapped out.
const PM_PRESENT: u64 = 1 << 63;
const PM_SWAPPED: u64 = 1 << 62;

/// This process's page map, opened once (`None`: not readable here, resets drop the area).
fn pagemap() -> Option<&'static std::fs::File> {
    static PAGEMAP: OnceLock<Option<std::fs::File>> = OnceLock::new();
    PAGEMAP
        .get_or_init(|| std::fs::File::open("/proc/self/pagemap").ok())
        .as_ref()
}

impl Stm {
    /// Resets all read and card markers of `seg` to 0 (read-version wrap-around). The owner
    /// is RUNNING (at its begin), so no committer reads them concurrently.
    pub(crate) fn reset_markers(&self, seg: usize) {
        if !self.clear_used_markers(seg) {
            self.drop_markers(seg);
        }
        Stats::add(&self.stats.marker_resets, 1);
    }

    /// Zeroes the marker pages of `seg` in use, if they are few (see the module docs).
    /// `false`: nothing was changed, drop the whole area instead.
    fn clear_used_markers(&self, seg: usize) -> bool {
        let Some(pm) = pagemap() else { return false };
        let l = self.mem.layout;
        // Objects exist only in the nursery and below the highest page run ever handed out,
        // so markers (read markers at `a >> 4`, cards at the same plus a displacement) were
        // only ever written in this range.
        let top = l.old_start + self.old.runs.high_water() * PAGE_SIZE;
        let start = (l.object_start >> MARKER_SHIFT) / PAGE_SIZE * PAGE_SIZE;
        let end = (top >> MARKER_SHIFT).div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let pages = (end - start) / PAGE_SIZE;
        if 2 * pages > LOOKUP_MAX_PAGES {
            return false;
        }
        let mut entries = vec![0u64; pages as usize];
        let mut used = Vec::new();
        for disp in [0, l.card_marker_disp] {
            let first = self.mem.addr(seg, start + disp) as u64;
            // SAFETY: a u64 slice viewed as its bytes, for the read to fill.
            let buf = unsafe {
                std::slice::from_raw_parts_mut(entries.as_mut_ptr() as *mut u8, entries.len() * 8)
            };
            if pm.read_exact_at(buf, first / PAGE_SIZE * 8).is_err() {
                return false;
            }
            for (i, &e) in entries.iter().enumerate() {
                if e & (PM_PRESENT | PM_SWAPPED) != 0 {
                    if used.len() == CLEAR_MAX_PAGES {
                        return false;
                    }
                    used.push(first + i as u64 * PAGE_SIZE);
                }
            }
        }
        for p in used {
            // SAFETY: a page of `seg`'s private marker mapping, which only its owner (the
            // caller) accesses now.
            let words =
                unsafe { std::slice::from_raw_parts_mut(p as *mut u64, (PAGE_SIZE / 8) as usize) };
            for block in words.chunks_exact_mut(8) {
                if block.iter().fold(0, |a, &w| a | w) != 0 {
                    block.fill(0);
                }
            }
        }
        true
    }

    /// Drops `seg`'s whole marker area (`MADV_DONTNEED`): it reads back as zero pages.
    fn drop_markers(&self, seg: usize) {
        let (s, e) = self.mem.layout.markers_region();
        // SAFETY: the range is our segment's private marker mapping; the owner is RUNNING so
        // no committer reads it concurrently.
        let r = unsafe {
            libc::madvise(
                self.mem.addr(seg, s) as *mut libc::c_void,
                (e - s) as usize,
                libc::MADV_DONTNEED,
            )
        };
        assert_eq!(r, 0, "stmjit: madvise(MADV_DONTNEED) on markers failed");
    }
}
