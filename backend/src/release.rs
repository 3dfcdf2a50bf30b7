//! Giving back the memory of code that never runs again (the parts of a huge module body
//! that ran: `stmjit-jit`'s `program.rs`). cranelift-jit frees code only all at once
//! (`JITModule::free_memory`); its memory provider gives each batch of functions defined
//! between two finalizes pages of its own, so the whole pages inside the code of such a
//! batch can be given back on their own: made inaccessible (a stray jump into them faults
//! instead of running zeros) and discarded (`MADV_DONTNEED`: their memory is freed, the
//! address range stays reserved).

use std::ops::Range;

/// Two code ranges this close (alignment padding between functions defined one after the
/// other) are one range.
const MERGE_GAP: usize = 64;

/// The whole pages of `page`-byte pages inside the union of `ranges` (addresses), each
/// run of them once: the ranges sorted, those at most [`MERGE_GAP`] apart merged, then cut
/// to page boundaries (a page that a range only partly covers may hold other code).
pub fn whole_pages(mut ranges: Vec<Range<usize>>, page: usize) -> Vec<Range<usize>> {
    ranges.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::new();
    for r in ranges {
        match merged.last_mut() {
            Some(m) if r.start <= m.end + MERGE_GAP => m.end = m.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
        .into_iter()
        .filter_map(|r| {
            let start = r.start.div_ceil(page) * page;
            let end = r.end / page * page;
            (start < end).then_some(start..end)
        })
        .collect()
}

/// Gives back the whole pages inside the code `ranges` ([`whole_pages`]); the bytes given
/// back.
///
/// # Safety
/// No code in `ranges` runs again, and no other data lives in them.
pub unsafe fn release_code(ranges: Vec<Range<usize>>) -> usize {
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
    let mut freed = 0;
    for r in whole_pages(ranges, page) {
        let (ptr, len) = (r.start as *mut libc::c_void, r.end - r.start);
        // SAFETY: whole pages of code mappings (caller's contract: nothing uses them).
        let ok = unsafe {
            libc::mprotect(ptr, len, libc::PROT_NONE) == 0
                && libc::madvise(ptr, len, libc::MADV_DONTNEED) == 0
        };
        if ok {
            freed += len;
        }
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ranges a few bytes apart are one; only the pages they cover whole are given back.
    #[test]
    fn only_whole_pages_of_merged_ranges() {
        let r = whole_pages(vec![9000..13000, 100..4000, 4016..8200, 20000..20100], 4096);
        // 100..8200 (the gap of 16 bytes merged) covers page 4096..8192 whole; 9000..13000
        // and 20000..20100 cover no page whole.
        assert_eq!(r, vec![4096..8192]);
        let r = whole_pages(vec![0..4096 * 3, 4096 * 3 + 32..4096 * 5 + 1], 4096);
        assert_eq!(r, vec![0..4096 * 5]);
        assert!(whole_pages(vec![], 4096).is_empty());
    }
}
