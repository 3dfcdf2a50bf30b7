//! The STM runtime of stmjit: a Rust re-do of PyPy-STM's stmgc-c7 (see `shared/DESIGN.md`).
//!
//! Threads run optimistic transactions with the semantics of a GIL. One reservation holds
//! N+1 *segments*; segment 0 holds the committed state, and a thread running a transaction
//! holds one of segments 1..=N with its `%gs` base pointing at it. A reference ([`Ref`]) is an
//! offset inside a segment, the same number in every segment, so JIT code reads fields as
//! `gs:[ref + field]`.
//!
//! # Segment layout (the JIT emits code against it)
//!
//! With `S` = [`Layout::segment_size`]:
//!
//! | offsets | what |
//! |---|---|
//! | `[0, 4096)` | no access: null references trap |
//! | `[INFO_OFFSET = 4096, 8192)` | [`SegmentInfo`] (`#[repr(C)]`; use `offset_of!`) |
//! | `[8192, S/128)` | reserved, no access |
//! | `[S/128, S/16)` | read markers: the marker of `a` is the byte at `a >> 4` |
//! | `[S/16 + S/128, S/8)` | card markers: the marker of `a` is at `(a >> 4) + card_marker_disp` (`= S/16`) |
//! | `[S/8, S/8 + nursery)` | nursery, private per segment (see [`nursery`]) |
//! | `[old_start, S)` | old objects, `MAP_SHARED` views of one memfd until privatized |
//!
//! Deviation from the first sketch (object space at `S/16`): the object space starts at `S/8`
//! so that the card markers get an area of their own with the same `>> 4` indexing as the
//! read markers (one displacement, fits a `disp32` for `S <= 32 GiB`).
//!
//! # What JIT code does inline
//! - read barrier: `mov al, gs:[INFO_OFFSET + offset_of!(SegmentInfo, read_version)]`
//!   (cacheable across code without runtime calls), `mov gs:[ref >> 4], al`;
//! - write barrier: `test byte gs:[ref + FLAGS_OFFSET], WRITE_BARRIER_FLAG; jnz slow`, slow =
//!   [`StmThread::write_barrier`]; cards: see the `barrier` module docs;
//! - safe point: `add qword [r15 + INFO_OFFSET + offset_of!(SegmentInfo, budget)], -1`, the word
//!   read again and `jl slow` at
//!   loop back-edges (and entries of functions that loop or call): one word serves as the
//!   transaction budget and as the request flag (requesters add [`BUDGET_REQUEST`] to it);
//!   the slow path calls [`StmThread::take_budget`] (removes the mark, returns the count),
//!   then [`StmThread::poll`], and ends the transaction if the count is negative;
//! - before a slow-path call it may store a site id at `offset_of!(SegmentInfo, site)`;
//! - with [`StmConfig::record_read_sites`], each read barrier also stores its site in the
//!   read-site table (`readsites` module docs), so conflicts name the aborted read;
//! - allocation (bump pointer in the segment's nursery; see [`nursery`] for the exact
//!   sequence): `r = gs:[INFO_OFFSET + offset_of!(SegmentInfo, nursery_current)]; n = r + size`
//!   (size rounded up to 16, at least 16); `if n > gs:[INFO_OFFSET + offset_of!(SegmentInfo,
//!   nursery_end)]` call `ffi::stmjit_alloc(th, type_id, size)` (0 = aborted), else store `n`
//!   back and write the header qword `gs:[r] = (type_id as u64) << 32` (flags 0: young
//!   objects have no `WRITE_BARRIER_FLAG`). Nursery memory is already zeroed: every field of
//!   a fresh object reads `NONE`; the JIT must not zero it;
//! - roots: the per-thread [`ShadowStack`] (`StmThread::shadow_stack_ptr`; `top`, `base`,
//!   `limit` at `offset_of!`): prologue `frame = top; if frame + n > limit → RecursionError;
//!   zero n slots; top = frame + n`, epilogue `top = frame`. Every word in `[base, top)` is a
//!   tagged value ([`value`]); references there are roots and are rewritten in place when
//!   their object moves. Objects move only in `stmjit_alloc` (when the nursery is full) and at
//!   commit / abort: live references must be in the shadow stack across those calls (and are
//!   reloaded after them). Barrier slow paths and polls never move objects. Restart snapshots
//!   live in the shadow stack and are therefore roots; after an abort, slots that
//!   referred to objects of the aborted transaction read `NONE`.
//!
//! # Asking a thread to enter the runtime (`nursery_end` protocol)
//! To make the thread running segment k enter the runtime soon (pause at a safe point for a
//! commit or a major collection, abort because it was doomed, or, later, "commit soon"), the
//! runtime sets a `REQUEST_*` bit in k's `safe_point_request`, marks k's `budget` with
//! [`BUDGET_REQUEST`] and then stores 0 into k's `nursery_end` (`Stm::request_safe_point`).
//! So the JIT's next inline allocation fails its limit check and calls `stmjit_alloc`, which
//! restores the real limit and polls; loops without allocation see the marked budget at
//! their next back-edge poll. The JIT never writes
//! `nursery_end` itself and must re-read it at every allocation (no caching in registers
//! across calls or back-edges).
//!
//! After every runtime call returning `Err(Abort)`, the transaction is already rolled back;
//! the caller unwinds to its restart point and calls [`StmThread::begin`].
//!
//! # Garbage collection
//! Generational, inside the STM (details in each module):
//! - [`nursery`]: per-segment bump-pointer nursery (private memory of the segment); moving
//!   minor collection when full and at every commit, in the owner thread only, concurrently
//!   with other segments. Young objects are never write-barriered, locked or conflict-checked;
//!   survivors become `New` records that commit publishes. Objects above
//!   `Stm::large_object_limit` are young outside the nursery and promoted in place.
//! - [`shadowstack`]: roots of JIT frames and Rust helpers.
//! - [`gcpage`] (size-class pages for small objects, per-segment current pages) and
//!   [`largemalloc`] (page runs for large objects and for the size-class pages): the old space.
//! - [`major`]: non-moving mark-sweep with the world stopped, triggered by allocated volume,
//!   marking from all shadow stacks, global roots (`Stm::add_root`), running transactions'
//!   nurseries (conservatively), `New` objects and both versions of modified objects; sweep
//!   clears the read markers of freed objects; then re-shares private pages and punches free
//!   page runs out of the memfd.
//! - Trace hooks ([`TypeInfo::trace`]) visit every value word; only `value::is_ref` words are
//!   followed. Header flags used by the GC: `nursery::NEW_FLAG`, `nursery::FORWARDED_FLAG`.
//!
//! # Modules
//! `append` (an append-only vector read without a lock), `layout` (offsets), `gs` (`%gs` base
//! and gs-relative accesses), `segment` (reservation, memfd), `pages` (privatization), `object`
//! (header, types), `locks` (write locks), `barrier`, `markers` (resets at read-version
//! wrap-around), `readsites` (optional read-site tables, for conflict reports), `transaction`
//! (begin/commit/abort), `contention`, `safepoint`, `stats`, `ticks` (cheap timestamps),
//! `value` (tagged words), `shadowstack`, `nursery` (allocation, minor collection), `gcpage`
//! and `largemalloc` (old space), `major` (major collection, re-sharing), `ffi`.
//!
//! # The core: one unit over `Stm` and `StmThread`
//! Seven modules import each other: `stm` (the instance, [`Stm`]), `transaction` (the
//! thread's handle, [`StmThread`]), `contention`, `safepoint`, `nursery`, `shadowstack` and
//! `major`. They are one unit split by concern, like stmgc's `core.h` with the `.c` files
//! that include it: each works on the two shared structures (a transaction's begin, commit
//! and abort reach the contention manager, the safe points, the minor collection, the
//! shadow stack and the major collection, and each of those reads the instance and the
//! thread's state back). Read them starting from `stm.rs` and `transaction.rs`; do not
//! expect to use one of them alone. The other modules depend on them, never the reverse.

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("stmjit-runtime supports Linux x86-64 only");

pub mod addr_hash;
pub mod append;
pub mod barrier;
pub mod commitlog;
pub mod contention;
pub mod ffi;
pub mod gcpage;
pub mod gs;
pub mod largemalloc;
pub mod layout;
pub mod locks;
pub mod major;
pub mod markers;
pub mod nursery;
pub mod object;
pub mod pages;
pub mod readsites;
pub mod safepoint;
pub mod segment;
pub mod shadowstack;
pub mod stats;
pub mod stm;
pub mod ticks;
pub mod trace;
pub mod transaction;
pub mod value;

pub use layout::{
    Layout, SegmentInfo, BUDGET_MARKED_BELOW, BUDGET_REQUEST, GRANULE, INFO_OFFSET, MARKER_SHIFT,
    PAGE_SIZE, REQUEST_ABORT, REQUEST_OTHER, REQUEST_SYNC, REQUEST_VALIDATE,
};
pub use object::{
    trace_none, CardTraceFn, ObjectHeader, Ref, TypeId, TypeInfo, FLAGS_OFFSET, HEADER_SIZE,
    WRITE_BARRIER_FLAG,
};
pub use shadowstack::{Frame, ShadowStack};
pub use stats::{
    AbortCause, Access, Conflict, ConflictInfo, ConflictKind, MajorPhase, Side, StatsSnapshot,
    NO_SITE,
};
pub use stm::{
    default_segment_size, futex_hash_slots, use_global_futex_hash, Stm, StmConfig, WaitPolicy,
    DEFAULT_TIME_SLICE, MAX_DEFAULT_SEGMENT, MIN_DEFAULT_SEGMENT,
};
pub use trace::Tracer;
pub use transaction::{Abort, StmThread};
