//! Read sites: which caller site read each granule, so that a conflict report can say where
//! the aborted transaction *read* the object that a commit overwrote (`--stats`, `--trace`).
//!
//! Read barriers record no site normally (one marker store each, see `barrier.rs`). With
//! [`crate::StmConfig::record_read_sites`] the runtime maps, per transaction segment, a
//! *site table* parallel to the read markers: one `u32` per 16-byte granule of the object
//! space, holding `site + 1` of the last read barrier on that granule (0: none). Read
//! barriers then store the site next to the marker:
//!
//! ```text
//! mov byte gs:[a >> 4], rv                          ; the marker, as always
//! mov rX, gs:[INFO_OFFSET + offset_of!(SegmentInfo, read_sites)]
//! mov dword [rX + (a >> 4) * 4], site + 1           ; the site (a plain store)
//! ```
//!
//! The table is *not* reset between transactions: an entry is meaningful only while the
//! granule's read marker holds the segment's current read version, i.e. when the granule
//! was read in the running transaction; since every marker store of a recording runtime is
//! paired with a site store (JIT code, the object model's helpers and [`StmThread`]'s
//! barriers all do both, with no safe point in between), the entry is then the site of a
//! read of the running transaction. The committer reads it with the world stopped, next to
//! the marker it checks ([`Stm::read_site_at`]). A detection that does not stop the world
//! (a transaction validating its own reads against a commit log, `shared/COMMITLOG.md`)
//! reads its own segment's table the same way: only the owner writes it.
//!
//! Off (the default), `SegmentInfo::read_sites` is 0, nothing is mapped, and the JIT emits
//! the plain barrier: the switch costs nothing unless asked for.
//!
//! [`StmThread`]: crate::StmThread

use crate::layout::{Layout, MARKER_SHIFT};
use crate::stats::NO_SITE;
use crate::stm::Stm;
use std::io;

/// The site tables of all transaction segments: one `MAP_NORESERVE` mapping (pages are
/// allocated as read barriers touch them), unmapped on drop.
pub(crate) struct ReadSites {
    map: u64,
    len: usize,
    /// Bytes of one segment's table.
    per_segment: u64,
    /// First object-space offset (the table covers `[object_start, segment_size)`).
    object_start: u64,
}

impl ReadSites {
    /// Maps the tables of segments `1..=layout.num_segments`.
    pub(crate) fn new(layout: &Layout) -> io::Result<ReadSites> {
        let per_segment = (layout.segment_size - layout.object_start) >> (MARKER_SHIFT - 2);
        let len = (per_segment * layout.num_segments) as usize;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing touches no
        // existing mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("stmjit: mmap read-site tables: {e}"),
            ));
        }
        Ok(ReadSites {
            map: p as u64,
            len,
            per_segment,
            object_start: layout.object_start,
        })
    }

    /// The value of `SegmentInfo::read_sites` for segment `k` (1..=N): the address such that
    /// the entry of object-space offset `a` is the `u32` at `base + (a >> 4) * 4` (below the
    /// table's start by the part the object space does not use).
    pub(crate) fn base(&self, k: usize) -> u64 {
        debug_assert!(k >= 1);
        self.map + (k as u64 - 1) * self.per_segment - (self.object_start >> (MARKER_SHIFT - 2))
    }
}

impl Drop for ReadSites {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; nothing refers to it once the runtime is dropped.
        unsafe { libc::munmap(self.map as *mut libc::c_void, self.len) };
    }
}

impl Stm {
    /// Whether read barriers record their site ([`crate::StmConfig::record_read_sites`]).
    pub fn records_read_sites(&self) -> bool {
        self.read_sites.is_some()
    }

    /// The site that segment `k`'s running transaction read the granule of `a` at, or
    /// [`NO_SITE`] (not recording, or the granule was not read in that transaction). For the
    /// committer, with the world stopped or `k`'s owner at a safe point, or for `k`'s owner.
    pub(crate) fn read_site_at(&self, k: usize, a: u64) -> u32 {
        let Some(t) = &self.read_sites else {
            return NO_SITE;
        };
        if k == 0
            || self.marker_at(k, a)
                != self
                    .mem
                    .info(k)
                    .read_version
                    .load(std::sync::atomic::Ordering::SeqCst)
        {
            return NO_SITE;
        }
        let p = (t.base(k) + (a >> MARKER_SHIFT) * 4) as *const u32;
        // SAFETY: a is an object-space offset, so its entry lies in segment k's table, which
        // is mapped for the runtime's lifetime; its owner is not running, or is the caller
        // (caller's contract).
        let v = unsafe { std::ptr::read_volatile(p) };
        v.wrapping_sub(1)
    }
}
