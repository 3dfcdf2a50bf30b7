//! The per-thread shadow stack: where JIT frames (and Rust helpers) keep the references the
//! GC must see and may update.
//!
//! Chosen over Cranelift stack maps + frame walking because it needs no unwinder, works the
//! same from Rust helpers and from JIT code, and lets the moving minor collection update
//! every root in place with one linear scan.
//!
//! # Protocol for the JIT
//! Each [`crate::StmThread`] owns one [`ShadowStack`] at a stable address
//! ([`crate::StmThread::shadow_stack_ptr`], valid for the handle's lifetime). JIT code keeps
//! the pointer in its context struct and, per frame of `n` slots:
//! - prologue: `frame = ss.top; if frame + n > ss.limit → raise RecursionError;`
//!   zero the `n` slots (`NONE`), then `ss.top = frame + n` (zeroing first keeps the frame
//!   readable by a collector at any moment);
//! - body: every live reference is stored in a slot before any call that may collect
//!   (allocation slow path `stmjit_alloc`, commit / transaction break) and reloaded after it:
//!   **those are the only runtime calls that move objects**; barrier slow paths and polls
//!   never move anything (a major collection does not move objects, and it only scans, never
//!   rewrites, other threads' nurseries);
//! - epilogue: `ss.top = frame`.
//!
//! Every word in `[base, top)` is a tagged value ([`crate::value`]): ints and immediates are
//! ignored, references (`value::is_ref`) are roots, and the minor collection rewrites a slot
//! in place when it moves the object. Restart snapshots (values saved at a transaction
//! boundary) live in the shadow stack too, so they are roots automatically. After an
//! abort, every slot that referred to an object allocated by the aborted transaction reads
//! `NONE` (the object no longer exists); references to committed objects are untouched.
//!
//! The region is `STACK_BYTES` of `MAP_NORESERVE` memory followed by a no-access guard page
//! right after `limit`, so a frame that skipped the limit check traps instead of corrupting
//! memory.

use crate::value::{Word, NONE};

/// Bytes of slots per shadow stack (8 MiB: a million slots).
pub const STACK_BYTES: usize = 8 << 20;

/// The three pointers the JIT reads and writes inline (`#[repr(C)]`; use `offset_of!`).
#[repr(C)]
#[derive(Debug)]
pub struct ShadowStack {
    /// First free slot: the frame being pushed starts here.
    pub top: *mut u64,
    /// First slot of the stack.
    pub base: *mut u64,
    /// One past the last usable slot; a guard page follows. The prologue checks
    /// `top + n <= limit`.
    pub limit: *mut u64,
}

/// A frame pushed with [`ShadowStack::push`]: slots `start .. start + len` (indices from
/// `base`). Indices stay valid while the frame is pushed: the stack never moves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Frame {
    /// Index of the first slot.
    pub start: usize,
    /// Number of slots.
    pub len: usize,
}

/// Owner of a shadow stack's mapping; unmaps it on drop.
pub(crate) struct Region {
    map: *mut libc::c_void,
    len: usize,
}

impl Region {
    /// Maps the slots plus a guard page and returns the region and an empty stack over it.
    pub(crate) fn new() -> (Region, ShadowStack) {
        let len = STACK_BYTES + crate::layout::PAGE_SIZE as usize;
        // SAFETY: a fresh anonymous mapping at an address of the kernel's choosing.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(
            map != libc::MAP_FAILED,
            "stmjit: cannot map a shadow stack: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: the guard page is the last page of our fresh mapping.
        let r = unsafe {
            libc::mprotect(
                (map as *mut u8).add(STACK_BYTES) as *mut libc::c_void,
                crate::layout::PAGE_SIZE as usize,
                libc::PROT_NONE,
            )
        };
        assert_eq!(
            r, 0,
            "stmjit: mprotect of the shadow-stack guard page failed"
        );
        let base = map as *mut u64;
        let ss = ShadowStack {
            top: base,
            base,
            // SAFETY: STACK_BYTES / 8 slots lie inside the mapping.
            limit: unsafe { base.add(STACK_BYTES / 8) },
        };
        (Region { map, len }, ss)
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: the mapping is ours; the owning thread handle is being dropped.
        unsafe { libc::munmap(self.map, self.len) };
    }
}

impl ShadowStack {
    /// Number of slots in use.
    pub fn depth(&self) -> usize {
        // SAFETY: top and base point into the same mapping, top >= base.
        unsafe { self.top.offset_from(self.base) as usize }
    }

    /// Pushes a frame of `n` slots, all `NONE`. Panics on overflow (the JIT raises
    /// RecursionError instead, see the module docs).
    pub fn push(&mut self, n: usize) -> Frame {
        let start = self.depth();
        let cap = self.capacity();
        assert!(
            start + n <= cap,
            "stmjit: shadow stack overflow ({start} + {n} > {cap} slots)"
        );
        // SAFETY: start + n <= capacity, so the n slots lie inside the mapping.
        unsafe {
            std::ptr::write_bytes(self.top, 0, n);
            self.top = self.top.add(n);
        }
        Frame { start, len: n }
    }

    /// Pops `f`, which must be the topmost frame.
    pub fn pop(&mut self, f: Frame) {
        assert_eq!(
            f.start + f.len,
            self.depth(),
            "stmjit: shadow-stack frames popped out of order"
        );
        // SAFETY: f.start <= depth, so the pointer stays inside the mapping.
        self.top = unsafe { self.base.add(f.start) };
    }

    /// Total number of slots.
    pub fn capacity(&self) -> usize {
        // SAFETY: limit and base point into the same mapping.
        unsafe { self.limit.offset_from(self.base) as usize }
    }

    /// Reads slot `i` of frame `f`.
    pub fn get(&self, f: Frame, i: usize) -> Word {
        assert!(
            i < f.len && f.start + i < self.depth(),
            "stmjit: slot out of frame"
        );
        // SAFETY: the slot is below top, inside the mapping.
        unsafe { *self.base.add(f.start + i) }
    }

    /// Writes slot `i` of frame `f`.
    pub fn set(&mut self, f: Frame, i: usize, v: Word) {
        assert!(
            i < f.len && f.start + i < self.depth(),
            "stmjit: slot out of frame"
        );
        // SAFETY: the slot is below top, inside the mapping.
        unsafe { *self.base.add(f.start + i) = v };
    }

    /// Pushes a one-slot frame holding `v` (handy for Rust helpers keeping one reference
    /// alive across an allocation).
    pub fn push_value(&mut self, v: Word) -> Frame {
        let f = self.push(1);
        self.set(f, 0, v);
        f
    }

    /// Calls `f` with the address of every slot in use, bottom to top (the GC's root scan).
    pub(crate) fn for_each_slot(&self, mut f: impl FnMut(*mut u64)) {
        // Read top once: a collector scanning another thread's stack sees a consistent
        // prefix (frames are zeroed before top is raised).
        // SAFETY: top is a plain pointer field; the volatile read tolerates a concurrent
        // store by the owner (outside a transaction, see `major.rs`).
        let top = unsafe { std::ptr::read_volatile(&self.top) };
        let mut p = self.base;
        while p < top {
            f(p);
            // SAFETY: p < top <= limit, inside the mapping.
            p = unsafe { p.add(1) };
        }
    }

    /// Replaces by `NONE` every reference slot for which `dead(w)` holds (after an abort).
    pub(crate) fn clear_refs(&mut self, mut dead: impl FnMut(Word) -> bool) {
        self.for_each_slot(|p| {
            // SAFETY: p is a slot in use of our own stack.
            unsafe {
                if crate::value::is_ref(*p) && dead(*p) {
                    *p = NONE;
                }
            }
        });
    }
}

impl crate::transaction::StmThread {
    /// This thread's shadow stack, at an address stable for the handle's lifetime (what the
    /// JIT keeps in its context struct and updates inline, see the module docs).
    pub fn shadow_stack_ptr(&mut self) -> *mut ShadowStack {
        &mut self.gc.shadow
    }

    /// This thread's shadow stack, for Rust code (tests, runtime helpers holding references
    /// across an allocation or a commit).
    pub fn shadow_stack(&mut self) -> &mut ShadowStack {
        &mut self.gc.shadow
    }
}
