//! The global write-lock array (c7's `write_locks`): one byte per 16-byte granule of the
//! old-object space, holding the number of the segment that owns the granule's write lock
//! (0 = free). A non-carded object is locked through the slot of its header granule; a
//! card-marked object through the slot of each written granule (its cards).

use crate::layout::{Layout, MARKER_SHIFT};
use std::sync::atomic::{AtomicU8, Ordering};

/// The lock array, an anonymous `MAP_NORESERVE` mapping touched lazily.
pub struct WriteLocks {
    ptr: *const AtomicU8,
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
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
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
            return Err(std::io::Error::last_os_error());
        }
        Ok(WriteLocks {
            ptr: p as *const AtomicU8,
            len,
            old_start: l.old_start,
        })
    }

    #[inline]
    fn slot(&self, addr: u64) -> &AtomicU8 {
        let i = ((addr - self.old_start) >> MARKER_SHIFT) as usize;
        assert!(
            i < self.len,
            "stmjit: write lock for address {addr:#x} outside the old space"
        );
        // SAFETY: i < len, and the mapping lives as long as self.
        unsafe { &*self.ptr.add(i) }
    }

    /// Current owner of the lock of the granule of `addr` (0 = free).
    #[inline]
    pub fn owner(&self, addr: u64) -> u8 {
        self.slot(addr).load(Ordering::SeqCst)
    }

    /// Compare-and-swap the owner of `addr`'s granule from `from` to `to`.
    #[inline]
    pub fn cas(&self, addr: u64, from: u8, to: u8) -> bool {
        self.slot(addr)
            .compare_exchange(from, to, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }
}

impl Drop for WriteLocks {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours and no longer used.
        unsafe { libc::munmap(self.ptr as *mut libc::c_void, self.len) };
    }
}
