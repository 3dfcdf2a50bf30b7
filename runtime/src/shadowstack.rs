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
//! # One mapping, as large as the heap
//! The region is one `MAP_NORESERVE` mapping with a slot for every object the heap can hold
//! ([`slots_for_objects`]: one per 16-byte granule of the object space), so that an
//! operation that holds all its elements at once (a sort, a dict copy, a dict's rebuild) is
//! limited by memory, not by a fixed count; the JIT and the Rust helpers check `limit`
//! before every push (a frame that does not fit is a RecursionError, a helper root a
//! MemoryError), so it needs no guard page. It is address space only: a page costs memory
//! once a push reaches it, and [`ShadowStack::release_to`] gives the pages of a large
//! release back (`MADV_DONTNEED`), so the resident size follows the depth in use. One
//! mapping per thread (no guard page, no chunks) keeps a tree of many thousand threads
//! under `vm.max_map_count`. When the address space cannot hold that much (many threads of
//! a runtime with huge segments, `ulimit -v`), the mapping is halved until it fits, down to
//! [`MIN_STACK_BYTES`].

use crate::value::{Word, NONE};

/// Bytes of the smallest shadow stack (8 MiB: a million slots), the size every stack had
/// before it was sized from the heap; what a thread gets when the address space has no room
/// for more.
pub const MIN_STACK_BYTES: usize = 8 << 20;

/// Slots at the bottom of a stack that stay resident across releases: ordinary recursion
/// (at most a thousand JIT frames of a few slots) lives there, so returning from a call
/// never costs a system call. 1 MiB.
pub const KEEP_RESIDENT_BYTES: usize = 1 << 20;

/// A release gives memory back only when it frees at least this much above
/// [`KEEP_RESIDENT_BYTES`] (1 MiB), so that small releases high on a deep stack (a key
/// function called by a sort of millions) stay plain stores.
pub const GIVE_BACK_MIN_BYTES: usize = 1 << 20;

/// Bytes of the largest shadow stack (2 GiB: 256 M slots, what a 4 GiB segment's heap
/// gives). A stack is address space of its own per thread: at a slot per granule of a
/// 16 GiB segment (8 GiB each), a spawn tree of 16 K threads used up the 128 TiB of user
/// address space and thread stacks could no longer be mapped (`cannot start a thread`).
/// 256 M references held by one operation is far beyond any sort or copy of the heap's
/// strings that fits in memory here (10 M strings take a few GB).
pub const MAX_STACK_BYTES: usize = 2 << 30;

/// Slots for a heap whose object space is `object_bytes` long: one per 16-byte granule
/// (the smallest object), so the stack can hold a reference to every object at once;
/// never fewer than [`MIN_STACK_BYTES`] worth nor more than [`MAX_STACK_BYTES`] worth.
pub fn slots_for_objects(object_bytes: u64) -> usize {
    let slots = (object_bytes / crate::layout::GRANULE) as usize;
    slots.clamp(MIN_STACK_BYTES / 8, MAX_STACK_BYTES / 8)
}

/// The three pointers the JIT reads and writes inline (`#[repr(C)]`; use `offset_of!`).
#[repr(C)]
#[derive(Debug)]
pub struct ShadowStack {
    /// First free slot: the frame being pushed starts here.
    pub top: *mut u64,
    /// First slot of the stack.
    pub base: *mut u64,
    /// One past the last usable slot (the end of the mapping). The prologue checks
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

// SAFETY: a Region only owns its mapping (no thread-local state); it moves between threads
// only through the runtime's pool of unused stacks, when no thread handle uses it.
unsafe impl Send for Region {}

/// The most unused shadow stacks a runtime keeps for the next thread handles
/// ([`Region::recyclable`]), as many as OS threads wait in the VM's thread pool.
pub const POOLED_STACKS: usize = 256;

/// Whether the process has no address-space limit (`ulimit -v`, `RLIMIT_AS`): only then are
/// unused shadow stacks kept for reuse. Under a limit, a kept stack would be address space
/// that a thread's stack or the heap could not use, and the VM counts each thread's start
/// by the address space it adds (`vm/src/thread_room.rs`). Asked each time (a system call,
/// cheap beside a thread's start): the process may set a limit at any time.
pub(crate) fn no_address_limit() -> bool {
    let mut l = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call writing into the struct we pass.
    let r = unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut l) };
    r == 0 && l.rlim_cur == libc::RLIM_INFINITY
}

impl Region {
    /// Maps `slots` slots (halving on failure, down to [`MIN_STACK_BYTES`]) and returns the
    /// region and an empty stack over it; `Err` when not even that much can be mapped (an
    /// address-space limit), for the caller to report as a MemoryError, never a panic.
    pub(crate) fn new(slots: usize) -> std::io::Result<(Region, ShadowStack)> {
        let page = crate::layout::PAGE_SIZE as usize;
        let mut len = (slots.max(MIN_STACK_BYTES / 8) * 8).next_multiple_of(page);
        let map = loop {
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
            if map != libc::MAP_FAILED {
                break map;
            }
            let err = std::io::Error::last_os_error();
            if len <= MIN_STACK_BYTES || err.raw_os_error() != Some(libc::ENOMEM) {
                return Err(std::io::Error::new(
                    err.kind(),
                    format!("cannot map a shadow stack of {len} bytes: {err}"),
                ));
            }
            len = (len / 2).max(MIN_STACK_BYTES).next_multiple_of(page);
        };
        let base = map as *mut u64;
        let ss = ShadowStack {
            top: base,
            base,
            // SAFETY: len / 8 slots lie inside the mapping.
            limit: unsafe { base.add(len / 8) },
        };
        Ok((Region { map, len }, ss))
    }
}

impl Region {
    /// An empty stack over the whole region.
    pub(crate) fn empty_stack(&self) -> ShadowStack {
        let base = self.map as *mut u64;
        ShadowStack {
            top: base,
            base,
            // SAFETY: len / 8 slots lie inside the mapping.
            limit: unsafe { base.add(self.len / 8) },
        }
    }

    /// Readies the stack of a thread handle that ended for the next one, `false` if it is
    /// not to be kept (an address-space limit, or smaller than `slots` slots, halved where
    /// the address space was short). Its pages above the bottom [`KEEP_RESIDENT_BYTES`] are
    /// given back (an operation that held many objects leaves no resident stack behind);
    /// what the bottom holds is stale and never read (`top` starts at `base`, and a frame's
    /// slots are written before `top` covers them).
    pub(crate) fn recyclable(&self, slots: usize) -> bool {
        let page = crate::layout::PAGE_SIZE as usize;
        if !no_address_limit()
            || self.len < (slots.max(MIN_STACK_BYTES / 8) * 8).next_multiple_of(page)
        {
            return false;
        }
        if self.len > KEEP_RESIDENT_BYTES {
            // SAFETY: the range is whole pages of our mapping, which no thread handle uses
            // any more (its owner is being dropped).
            unsafe {
                libc::madvise(
                    (self.map as usize + KEEP_RESIDENT_BYTES) as *mut libc::c_void,
                    self.len - KEEP_RESIDENT_BYTES,
                    libc::MADV_DONTNEED,
                );
            }
        }
        true
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

    /// Lowers `top` to `mark` (at or below it: the slots above are dropped, as a helper's
    /// roots are when it returns) and, when that frees at least [`GIVE_BACK_MIN_BYTES`]
    /// above the bottom [`KEEP_RESIDENT_BYTES`], gives those pages back to the kernel: an
    /// operation that held millions of objects leaves no resident stack behind. The pages
    /// read as zeros when pushed again.
    pub fn release_to(&mut self, mark: *mut u64) {
        let old = self.top;
        debug_assert!(mark <= old && mark >= self.base, "release above top");
        self.top = mark;
        let page = crate::layout::PAGE_SIZE as usize;
        let keep = self.base as usize + KEEP_RESIDENT_BYTES;
        let start = (mark as usize).max(keep).next_multiple_of(page);
        let end = (old as usize)
            .next_multiple_of(page)
            .min(self.limit as usize);
        if end >= start + GIVE_BACK_MIN_BYTES {
            // SAFETY: [start, end) is whole pages of our mapping, all above the new top
            // (start is at or above mark, rounded up to a page), so no slot in use is lost.
            let r = unsafe {
                libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED)
            };
            debug_assert_eq!(r, 0, "madvise(MADV_DONTNEED) of a shadow stack failed");
        }
    }

    /// Bytes of the stack's mapping resident in memory (`mincore`), for tests and reports.
    pub fn resident_bytes(&self) -> usize {
        let page = crate::layout::PAGE_SIZE as usize;
        let len = self.capacity() * 8;
        let mut vec = vec![0u8; len.div_ceil(page)];
        // SAFETY: base..limit is our mapping (page-aligned base); vec has one byte per page.
        let r = unsafe { libc::mincore(self.base as *mut libc::c_void, len, vec.as_mut_ptr()) };
        assert_eq!(r, 0, "mincore of a shadow stack failed");
        vec.iter().filter(|&&b| b & 1 != 0).count() * page
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
