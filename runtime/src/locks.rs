//! The global write-lock array (c7's `write_locks`): one word per 16-byte granule of the
//! old-object space, holding the owner's lock word (0 = free): the segment number in the low
//! byte and the low 24 bits of that segment's transaction sequence number above it (c7 kept
//! only the segment in a byte; the sequence number makes lock take-over ABA-free). A non-carded object is locked through the slot of its header granule; a
//! card-marked object through the slot of each written granule (its cards).

use crate::layout::{Layout, MARKER_SHIFT};
use std::sync::atomic::{AtomicU32, Ordering};

/// The lock array, an anonymous `MAP_NORESERVE` mapping touched lazily.
pub struct WriteLocks {
    ptr: *const AtomicU32,
    len: usize,
    old_start: u64,
}

// SAFETY: the array is only accessed through atomics.
unsafe impl Send for WriteLocks {}
// SAFETY: the array is only accessed through atomics.
unsafe impl Sync for WriteLocks {}

impl WriteLocks {
    /// Allocates the lock array for a layout's old space.
    pub fn new(l: &Layout) -> std::io::Result<WriteLocks> {
        let len = ((l.old_end - l.old_start) >> MARKER_SHIFT) as usize;
        let bytes = len * 4;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(WriteLocks {
            ptr: p as *const AtomicU32,
            len,
            old_start: l.old_start,
        })
    }

    #[inline]
    fn slot(&self, addr: u64) -> &AtomicU32 {
        let i = ((addr - self.old_start) >> MARKER_SHIFT) as usize;
        assert!(
            i < self.len,
            "stmjit: write lock for address {addr:#x} outside the old space"
        );
        // SAFETY: i < len, and the mapping lives as long as self.
        unsafe { &*self.ptr.add(i) }
    }

    /// Current owner's lock word of the granule of `addr` (0 = free).
    #[inline]
    pub fn owner(&self, addr: u64) -> u32 {
        self.slot(addr).load(Ordering::SeqCst)
    }

    /// Compare-and-swap the lock word of `addr`'s granule from `from` to `to`.
    #[inline]
    pub fn cas(&self, addr: u64, from: u32, to: u32) -> bool {
        self.slot(addr)
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl Drop for WriteLocks {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no longer used.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len * 4) };
    }
}
