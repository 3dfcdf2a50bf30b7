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
//! | `[S/8, S/8 + nursery)` | nursery, private per segment (reserved for the GC issue) |
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
//! - safe point: `cmp qword gs:[INFO_OFFSET + offset_of!(SegmentInfo, safe_point_request)], 0;
//!   jne poll` at loop back-edges, poll = [`StmThread::poll`];
//! - before a slow-path call it may store a site id at `offset_of!(SegmentInfo, site)`.
//!
//! After every runtime call returning `Err(Abort)`, the transaction is already rolled back;
//! the caller unwinds to its restart point and calls [`StmThread::begin`].
//!
//! # For the GC issue
//! - Types: [`Stm::register_type`] with a [`TypeInfo`] (size function, trace hook giving the
//!   address of every reference field, `carded`). Header: [`ObjectHeader`]; flag bits from
//!   [`object::FIRST_GC_FLAG`] up are free.
//! - Allocation lives in `alloc` (a bump allocator in the memfd old space; objects are
//!   published by the allocating transaction's commit as `New` records); replace it there.
//! - `SegmentInfo::nursery_current`/`nursery_end` are reserved and initialised to an empty
//!   nursery at `Layout::nursery_start`; the nursery area is mapped private per segment.
//! - Roots the GC must also visit: the per-transaction modified lists (objects and cards).
//! - Page re-sharing (after a major collection) is `segment::Memory::map_shared` over the
//!   private run, plus clearing the segment's bit in its `PrivateBitmap`.
//!
//! # Modules
//! `layout` (offsets), `gs` (`%gs` base and gs-relative accesses), `segment` (reservation,
//! memfd), `pages` (privatization), `object` (header, types), `locks` (write locks),
//! `barrier`, `transaction` (begin/commit/abort), `contention`, `safepoint`, `stats`,
//! `alloc` (the bump allocator the GC issue replaces).

#[cfg(not(all(target_os = "linux", target_arch = "x86_64")))]
compile_error!("stmjit-runtime supports Linux x86-64 only");

pub mod barrier;
pub mod contention;
pub mod ffi;
pub mod gcpage;
pub mod gs;
pub mod largemalloc;
pub mod layout;
pub mod locks;
pub mod major;
pub mod nursery;
pub mod object;
pub mod pages;
pub mod safepoint;
pub mod segment;
pub mod shadowstack;
pub mod stats;
pub mod stm;
pub mod transaction;
pub mod value;

pub use layout::{
    Layout, SegmentInfo, GRANULE, INFO_OFFSET, MARKER_SHIFT, PAGE_SIZE, REQUEST_ABORT,
    REQUEST_OTHER, REQUEST_SYNC,
};
pub use object::{
    trace_none, ObjectHeader, Ref, TypeId, TypeInfo, FLAGS_OFFSET, HEADER_SIZE, WRITE_BARRIER_FLAG,
};
pub use stats::{AbortCause, Conflict, ConflictKind, StatsSnapshot};
pub use stm::{Stm, StmConfig, WaitPolicy};
pub use shadowstack::{Frame, ShadowStack};
pub use transaction::{Abort, StmThread};
