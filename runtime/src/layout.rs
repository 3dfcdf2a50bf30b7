//! Segment layout: the fixed offsets and the `#[repr(C)]` structs that JIT code addresses
//! through `%gs`. Everything here is read by code generators with `core::mem::offset_of!`
//! or from a [`Layout`] value, never by hand-written numbers.

use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, AtomicU8};

/// Size of a virtual-memory page; all region boundaries are multiples of it.
pub const PAGE_SIZE: u64 = 4096;

/// Offset of the [`SegmentInfo`] page inside every segment (page 0 stays no-access so that
/// a null reference traps).
pub const INFO_OFFSET: u64 = PAGE_SIZE;

/// One read marker (and one card marker, and one write-lock slot) covers this many bytes of
/// the segment: the marker of address `a` is the byte at `a >> MARKER_SHIFT`.
pub const MARKER_SHIFT: u32 = 4;

/// Granule of read markers, write locks and cards, in bytes (`1 << MARKER_SHIFT`).
pub const GRANULE: u64 = 1 << MARKER_SHIFT;

/// Objects are aligned to this many bytes, so that no two objects share a marker granule.
pub const OBJECT_ALIGN: u64 = GRANULE;

/// Bits of [`SegmentInfo::safe_point_request`]: a commit in another segment asks this one to
/// pause at its next safe point.
pub const REQUEST_SYNC: u64 = 1 << 0;
/// Bit of [`SegmentInfo::safe_point_request`]: this segment's transaction was doomed by the
/// contention manager; the next runtime entry or poll aborts it.
pub const REQUEST_ABORT: u64 = 1 << 1;
/// Bit of [`SegmentInfo::safe_point_request`]: reserved for "commit soon" (transaction budget
/// exhausted) requests of later issues. (The GC's major collection uses [`REQUEST_SYNC`].)
pub const REQUEST_OTHER: u64 = 1 << 2;
/// Bit of [`SegmentInfo::safe_point_request`] (commit log only): another segment appended
/// to the commit log; validate (check the read markers against the new entries, import
/// them) at the next safe point. Handled entirely by the poll's slow path.
pub const REQUEST_VALIDATE: u64 = 1 << 3;

/// Added to [`SegmentInfo::budget`] by whoever sets a `REQUEST_*` bit (at most once: a
/// marked budget is not marked again), so that JIT code, whose poll is only `budget -= 1;
/// if budget < 0 → slow path`, sees every request at its next poll. The owner takes it off
/// again in the slow path (`StmThread::take_budget`), which recovers the count exactly.
/// Budgets are at most 2^40 (`STMJIT_BUDGET`), so a marked budget stays far below
/// [`BUDGET_MARKED_BELOW`] and far above `i64::MIN`.
pub const BUDGET_REQUEST: i64 = -(1 << 62);
/// A budget below this carries a [`BUDGET_REQUEST`] mark; one at or above it is a count
/// (negative: exhausted).
pub const BUDGET_MARKED_BELOW: i64 = -(1 << 61);

/// The per-segment control block at `%gs:INFO_OFFSET`.
///
/// JIT code reads and writes these fields with plain `gs:` loads and stores at
/// `INFO_OFFSET + offset_of!(SegmentInfo, field)`. The runtime accesses the same memory
/// through the atomics, which have the layout of the plain integers.
#[repr(C)]
pub struct SegmentInfo {
    /// The byte the read barrier stores into the read marker (`gs:[ref >> 4]`). Never 0
    /// during a transaction; bumped at each transaction start, wrap-around resets markers.
    pub read_version: AtomicU8,
    /// Padding; keeps the following words 8-byte aligned.
    pub _pad0: [u8; 3],
    /// Segment number (1..=N); 0 is the committed segment.
    pub segment_num: u32,
    /// Safe-point/abort request word: non-zero means "call `StmThread::poll`", see the
    /// `REQUEST_*` bits. Runtime entries read it; JIT code does not (it polls `budget`, which
    /// every requester marks with [`BUDGET_REQUEST`] after setting a bit here).
    pub safe_point_request: AtomicU64,
    /// Nursery bump pointer (segment offset of the next free byte): the JIT's inline
    /// allocation loads it, adds the 16-rounded size and stores it back (see `nursery.rs`).
    /// Only the segment's owner writes it.
    pub nursery_current: AtomicU64,
    /// Nursery limit (segment offset). An allocation whose end exceeds it calls
    /// `stmjit_alloc`. Other threads store 0 here (after setting a bit in
    /// `safe_point_request`) to make the owner enter the runtime; the slow path restores it.
    pub nursery_end: AtomicU64,
    /// Transaction budget counter and poll word: the JIT's poll (loop back-edges, entries of
    /// functions that loop or call) is `add qword [budget], -1`, the word read again, `jl slow`. Negative means
    /// exhausted (the slow path ends the transaction: commit + begin) or, below
    /// [`BUDGET_MARKED_BELOW`], a pending request (see [`BUDGET_REQUEST`]). Requesters add the
    /// mark with a CAS; the owner's inline decrement is a plain read-modify-write and may
    /// overwrite a mark that lands inside it: the request bit stays set, so the owner's next
    /// runtime entry still sees it, and requesters that wait for an answer mark again while
    /// they wait (`Stm::stop_the_world`).
    pub budget: AtomicI64,
    /// Caller-provided "site" id of the barrier about to enter the slow path (the JIT stores
    /// it before calling the runtime); recorded in the conflict log for `--stats`.
    pub site: AtomicU32,
    /// Padding.
    pub _pad1: u32,
    /// Linear address of this segment's base (what `%gs` base is set to), for JIT entry code
    /// that loads r15 from it (`mov r15, gs:[INFO_OFFSET + offset_of!(segment_base)]`).
    pub segment_base: AtomicU64,
    /// Base of this segment's read-site table (see `readsites.rs`): the site of the last
    /// read barrier on address `a` is the `u32` at `read_sites + (a >> 4) * 4`, plus one.
    /// 0 when the runtime does not record read sites (the default).
    pub read_sites: AtomicU64,
}

const _: () = assert!(core::mem::size_of::<SegmentInfo>() <= PAGE_SIZE as usize);

/// The numbers of one runtime instance's segment layout that depend on its configuration.
///
/// With `S` = `segment_size` (a power of two, 32 MiB ..= 32 GiB), every segment is:
///
/// | offsets | what |
/// |---|---|
/// | `[0, 4096)` | no access (null references trap) |
/// | `[4096, 8192)` | [`SegmentInfo`] |
/// | `[8192, S/128)` | no access (reserved) |
/// | `[S/128, S/16)` | read markers of the object space: marker of `a` at `a >> 4` |
/// | `[S/16 + S/128, S/8)` | card markers: marker of `a` at `(a >> 4) + card_marker_disp`, `card_marker_disp = S/16` |
/// | `[S/8, S/8 + nursery_size)` | nursery (per segment, private; see `nursery.rs`) |
/// | `[old_start, S)` | old objects, backed by the shared memfd |
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    /// Bytes per segment.
    pub segment_size: u64,
    /// Number of transaction segments N (segments 1..=N; segment 0 is committed state).
    pub num_segments: u64,
    /// Linear address of segment 0; segment k starts at `base + k * segment_size`.
    pub base: u64,
    /// First byte of the read-marker area (`object_start >> 4`).
    pub read_markers_start: u64,
    /// End of the read-marker area.
    pub read_markers_end: u64,
    /// Displacement added to `addr >> 4` to find the card marker of `addr`.
    pub card_marker_disp: u64,
    /// First byte of the object space (the nursery starts here).
    pub object_start: u64,
    /// Start of the nursery (equals `object_start`).
    pub nursery_start: u64,
    /// End of the nursery.
    pub nursery_end: u64,
    /// Start of the old-object space (memfd-backed).
    pub old_start: u64,
    /// End of the old-object space (`segment_size`).
    pub old_end: u64,
}

impl Layout {
    /// Computes the layout for a segment size and nursery size (both rounded as documented).
    pub fn new(segment_size: u64, nursery_size: u64, num_segments: u64) -> Layout {
        assert!(
            segment_size.is_power_of_two(),
            "stmjit: segment_size must be a power of two"
        );
        assert!(
            (32 << 20..=32 << 30).contains(&segment_size),
            "stmjit: segment_size must be between 32 MiB and 32 GiB"
        );
        let s = segment_size;
        let object_start = s / 8;
        let nursery_size = nursery_size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        let old_start = object_start + nursery_size;
        assert!(
            old_start + (s / 4) <= s,
            "stmjit: nursery too large for the segment"
        );
        Layout {
            segment_size: s,
            num_segments,
            base: 0,
            read_markers_start: object_start >> MARKER_SHIFT,
            read_markers_end: s >> MARKER_SHIFT,
            card_marker_disp: s / 16,
            object_start,
            nursery_start: object_start,
            nursery_end: old_start,
            old_start,
            old_end: s,
        }
    }

    /// Start of the whole marker region (read + card markers) mapped read-write per segment.
    pub fn markers_region(&self) -> (u64, u64) {
        (self.read_markers_start, self.segment_size / 8)
    }

    /// Number of pages in the old-object space.
    pub fn old_pages(&self) -> u64 {
        (self.old_end - self.old_start) / PAGE_SIZE
    }

    /// Linear address of segment `k`.
    pub fn segment_base(&self, k: usize) -> u64 {
        self.base + k as u64 * self.segment_size
    }
}
