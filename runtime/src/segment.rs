//! The reservation of N+1 segments and their mappings.
//!
//! One `mmap(PROT_NONE, MAP_NORESERVE)` reserves all segments; then each region of each
//! segment is mapped over it with `MAP_FIXED`: the info page and the marker area as private
//! anonymous memory, the nursery likewise, and the old-object space as one `MAP_SHARED`
//! mapping of the memfd (the same file offset in every segment, so that a page is stored once
//! until a segment privatizes it, see `pages.rs`).

use crate::layout::{Layout, SegmentInfo, INFO_OFFSET, PAGE_SIZE};
use std::io;

/// The mapped memory of one runtime instance. Unmapped on drop.
pub struct Memory {
    /// The layout, with `base` filled in.
    pub layout: Layout,
    reservation_len: usize,
    memfd: libc::c_int,
}

fn check(p: *mut libc::c_void, what: &str) -> io::Result<()> {
    if p == libc::MAP_FAILED {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(
            e.kind(),
            format!("stmjit: mmap {what}: {e}"),
        ));
    }
    Ok(())
}

/// Maps private anonymous read-write memory at `addr` (which lies in our reservation).
///
/// # Safety
/// `[addr, addr+len)` must be inside the reservation and not referenced by live Rust borrows.
pub(crate) unsafe fn map_private_anon(addr: u64, len: u64, what: &str) -> io::Result<()> {
    // SAFETY: the caller's contract: the range is ours and no Rust borrow points into it.
    let p = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    check(p, what)
}

/// Size of a transparent huge page (x86-64: 2 MiB).
const HUGE_PAGE: u64 = 2 << 20;

/// Asks the kernel to back a segment's nursery `[start, end)` past its first huge page with
/// huge pages (where transparent huge pages are enabled on request, Debian's default). A
/// nursery is used from its start and zeroed after every minor collection, so once a thread
/// allocated more than a few MiB all of it stays resident anyway; what costs is faulting it
/// in 4 KiB at a time (~1.4 us a fault here), once per segment a thread runs on:
/// binarytrees 15 on one thread spawns a worker per depth, which runs on the second segment
/// (the main thread keeps the first while it joins), and its 16 MiB nursery was ~4 100 page
/// faults that `--gil` (one segment) does not take (15 500 faults against 10 700; with huge
/// pages 8 200 against 7 100). The first huge page stays in small pages, so a thread that
/// allocates little holds no 2 MiB page. A hint: its failure changes nothing.
fn advise_huge_nursery(start: u64, end: u64) {
    let (from, to) = (
        (start + 1).next_multiple_of(HUGE_PAGE),
        end / HUGE_PAGE * HUGE_PAGE,
    );
    if from < to {
        // SAFETY: the range lies in a private anonymous mapping of our reservation just
        // made; the advice changes how its pages are backed, not their contents.
        unsafe {
            libc::madvise(
                from as *mut libc::c_void,
                (to - from) as usize,
                libc::MADV_HUGEPAGE,
            );
        }
    }
}

impl Memory {
    /// Reserves and maps `layout.num_segments + 1` segments.
    pub fn new(mut layout: Layout) -> io::Result<Memory> {
        let nseg = layout.num_segments + 1;
        let total = nseg
            .checked_mul(layout.segment_size)
            .expect("stmjit: reservation size overflows");
        // SAFETY: a fresh PROT_NONE reservation at an address of the kernel's choosing
        // touches no existing mapping.
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                (total + HUGE_PAGE) as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        check(raw, "reservation")?;
        // The base on a huge-page boundary, so that the nursery's huge pages line up (every
        // region of a segment starts at a multiple of S/128, S >= 32 MiB); the room around
        // it is given back.
        let raw = raw as u64;
        let base = raw.next_multiple_of(HUGE_PAGE);
        // SAFETY: both ranges are the unused ends of the reservation just made, which no
        // Rust reference points into.
        unsafe {
            if base > raw {
                libc::munmap(raw as *mut libc::c_void, (base - raw) as usize);
            }
            let tail = raw + total + HUGE_PAGE - (base + total);
            if tail > 0 {
                libc::munmap((base + total) as *mut libc::c_void, tail as usize);
            }
        }
        layout.base = base;
        // SAFETY: the name is a valid NUL-terminated string.
        let memfd = unsafe { libc::memfd_create(c"stmjit-old-space".as_ptr(), libc::MFD_CLOEXEC) };
        let mut mem = Memory {
            layout,
            reservation_len: total as usize,
            memfd: -1,
        };
        if memfd < 0 {
            return Err(io::Error::last_os_error());
        }
        mem.memfd = memfd;
        let old_len = layout.old_end - layout.old_start;
        // SAFETY: memfd is our open file descriptor.
        if unsafe { libc::ftruncate(memfd, old_len as libc::off_t) } != 0 {
            return Err(io::Error::last_os_error());
        }
        for k in 0..nseg as usize {
            let b = layout.segment_base(k);
            // SAFETY: (all three) the target ranges lie in our fresh reservation, which no
            // Rust reference points into yet.
            unsafe {
                map_private_anon(b + INFO_OFFSET, PAGE_SIZE, "info page")?;
                if k > 0 {
                    let (ms, me) = layout.markers_region();
                    map_private_anon(b + ms, me - ms, "marker area")?;
                    if layout.nursery_end > layout.nursery_start {
                        map_private_anon(
                            b + layout.nursery_start,
                            layout.nursery_end - layout.nursery_start,
                            "nursery",
                        )?;
                        advise_huge_nursery(b + layout.nursery_start, b + layout.nursery_end);
                    }
                }
                mem.map_shared(k, layout.old_start, old_len)?;
            }
            let info = (b + INFO_OFFSET) as *mut SegmentInfo;
            // SAFETY: the info page was just mapped read-write and nobody else sees it yet.
            unsafe {
                (*info).segment_num = k as u32;
                (*info)
                    .segment_base
                    .store(b, std::sync::atomic::Ordering::Relaxed);
                // An empty, zeroed nursery (segment 0 has none: its limit stays at the start).
                let ns = layout.nursery_start;
                let ne = if k > 0 { layout.nursery_end } else { ns };
                (*info)
                    .nursery_current
                    .store(ns, std::sync::atomic::Ordering::Relaxed);
                (*info)
                    .nursery_end
                    .store(ne, std::sync::atomic::Ordering::Relaxed);
            }
        }
        Ok(mem)
    }

    /// Maps `[off, off+len)` of segment `k` (inside the old space) to the same range of the
    /// memfd, shared.
    ///
    /// # Safety
    /// The range must be inside the old space; no Rust borrow may point into it.
    pub(crate) unsafe fn map_shared(&self, k: usize, off: u64, len: u64) -> io::Result<()> {
        let b = self.layout.segment_base(k);
        // SAFETY: the caller's contract: the range is in the old space and no Rust borrow
        // points into it.
        let p = unsafe {
            libc::mmap(
                (b + off) as *mut libc::c_void,
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.memfd,
                (off - self.layout.old_start) as libc::off_t,
            )
        };
        check(p, "old space (shared)")
    }

    /// Releases the memory of `[off, off+len)` of the old space (page aligned) by punching
    /// a hole in the memfd: every segment that shares those pages then reads zeros. Called by
    /// the major collection on free page runs, which are shared in every segment by then.
    pub(crate) fn punch_hole(&self, off: u64, len: u64) {
        // SAFETY: plain system call on our memfd; the range is inside the file.
        let r = unsafe {
            libc::fallocate(
                self.memfd,
                libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                (off - self.layout.old_start) as libc::off_t,
                len as libc::off_t,
            )
        };
        assert_eq!(
            r,
            0,
            "stmjit: fallocate(PUNCH_HOLE) failed: {}",
            std::io::Error::last_os_error()
        );
    }

    /// The info block of segment `k`.
    #[inline]
    pub fn info(&self, k: usize) -> &SegmentInfo {
        debug_assert!(k as u64 <= self.layout.num_segments);
        // SAFETY: the info page of every segment is mapped read-write for the lifetime of
        // `self`; fields written after construction are atomics.
        unsafe { &*((self.layout.segment_base(k) + INFO_OFFSET) as *const SegmentInfo) }
    }

    /// Linear address of byte `off` of segment `k`.
    #[inline]
    pub fn addr(&self, k: usize, off: u64) -> *mut u8 {
        (self.layout.segment_base(k) + off) as *mut u8
    }
}

impl Drop for Memory {
    fn drop(&mut self) {
        // SAFETY: the reservation is ours and nothing refers to it once the runtime is dropped
        // (every handle holds an Arc to the runtime).
        unsafe {
            libc::munmap(self.layout.base as *mut libc::c_void, self.reservation_len);
            if self.memfd >= 0 {
                libc::close(self.memfd);
            }
        }
    }
}
