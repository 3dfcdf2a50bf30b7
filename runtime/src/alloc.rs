//! The old-object allocator of this issue: bump allocation in the memfd-backed old space.
//!
//! Kept behind this module so that the GC issue can replace it with size-class pages, a
//! nursery and major collection. Objects are zero-initialised (fresh file space, never
//! reused) and become visible to other transactions when the allocating one commits.

use crate::layout::{Layout, OBJECT_ALIGN};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Bump allocator over `[old_start, old_end)`.
pub struct BumpAllocator {
    next: AtomicU64,
    end: u64,
}

impl BumpAllocator {
    /// An allocator for the layout's old space.
    pub fn new(l: &Layout) -> BumpAllocator {
        BumpAllocator {
            next: AtomicU64::new(l.old_start),
            end: l.old_end,
        }
    }

    /// Reserves `size` bytes (rounded up to [`OBJECT_ALIGN`]) and returns their offset.
    /// Panics when the old space is exhausted.
    pub fn alloc(&self, size: u64) -> u64 {
        let size = size.max(OBJECT_ALIGN).div_ceil(OBJECT_ALIGN) * OBJECT_ALIGN;
        let r = self.next.fetch_add(size, Relaxed);
        assert!(
            r + size <= self.end,
            "stmjit: old-object space exhausted (segment too small for this heap)"
        );
        r
    }

    /// Bytes handed out so far.
    pub fn used(&self, l: &Layout) -> u64 {
        self.next.load(Relaxed) - l.old_start
    }
}
