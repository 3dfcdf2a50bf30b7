//! The contract between compiled code and the object model, in one place: what JIT code
//! receives ([`Ctx`]), the words it tests and produces ([`UNBOUND`], [`ERR`], [`RESTART`]
//! beside the values of `stmjit_runtime::value`), the object header it writes when it
//! allocates ([`young_header`]), the numbering of the operators it passes, the payloads of
//! its call-site caches, and every runtime helper it calls ([`Helper`], declared once in
//! `helpers` with its signature and effects).
//!
//! Object layouts are the `#[repr(C)]` structs of [`crate::objects`] and of the runtime
//! (`SegmentInfo`, `ObjectHeader`, `ShadowStack`): compiled code takes every offset with
//! `offset_of!` on them, never a hand-written number, so the two sides cannot drift apart.
//!
//! # Words
//! | word | meaning |
//! |---|---|
//! | `n << 1 \| 1` | the int `n` ([`tagged_int`]) |
//! | 0, 2, 6 | `None`, `False`, `True` ([`NONE`], [`FALSE`], [`TRUE`]) |
//! | 8 | [`UNBOUND`]: an unassigned local or global, an absent instance slot, a missing slice bound |
//! | 12 | [`ERR`]: the call raised or its transaction aborted: the caller unwinds |
//! | 16 | [`RESTART`]: returned to the frame that opened an aborted transaction: restart it |
//! | 16 | [`TOMBSTONE`]: the key of a deleted dict entry (inside dict tables only) |
//! | 20 | [`MOVING`]: a helper that may not move objects needs to: call its moving variant |
//! | even, `>= IMMEDIATE_LIMIT` | a reference: an object's segment offset |
//!
//! `UNBOUND`, `ERR`, `RESTART` and `MOVING` are never stored in the heap as values; `TOMBSTONE` never
//! leaves a dict's entries array.

mod helpers;

pub use helpers::{Effects, Helper, HelperDecl, WordSized};

use crate::Runtime;
use stmjit_lang::ast::{BinOp, CmpOp, UnaryOp};
use stmjit_runtime::object::TYPE_ID_OFFSET;
use stmjit_runtime::transaction::StmThread;
pub use stmjit_runtime::value::{Word, FALSE, IMMEDIATE_LIMIT, INT_TAG, NONE, TRUE};
use stmjit_runtime::{ShadowStack, TypeId};

/// An unassigned variable, an absent attribute slot, a missing slice bound (never a value).
pub const UNBOUND: Word = 8;
/// "This call raised, or its transaction was rolled back: unwind" (never a value).
pub const ERR: Word = 12;
/// Returned by `stmjit_trace` to the error path of the frame that opened an aborted
/// transaction: restart it there, do not unwind further (never a value).
pub const RESTART: Word = 16;
/// Marks a deleted dict entry's key (never a value; only inside a dict's entries array).
pub const TOMBSTONE: Word = 16;
/// The word of a float local whose value JIT code keeps unboxed in a register (never a
/// value: only in a JIT function's local variables and, spilled, its frame slots, where the
/// GC skips it as an immediate; boxed before anything else reads it).
pub const UNBOXED: Word = 24;
/// Returned by [`Helper::IterNext`], which may not move objects, when the next item needs
/// an allocation (a big range's item beyond the tagged ints): JIT code then calls
/// [`Helper::IterNextSpecial`], which may (never a value).
pub const MOVING: Word = 20;

/// The word of the int `n`, for ints known to fit 63 bits (literals of the program, loop
/// counters); `stmjit_runtime::value::from_int` checks the range.
pub const fn tagged_int(n: i64) -> Word {
    ((n << 1) as Word) | INT_TAG
}

/// The int 0 as a word (1): what a zero divisor or a loop index starting at 0 compares with.
pub const TAGGED_ZERO: Word = tagged_int(0);

/// The header word of a young object of type `ty` (flags 0: young objects have no
/// write-barrier flag), as the runtime's nursery writes it: the type id in the half at
/// `TYPE_ID_OFFSET`. JIT code and the helpers' inline allocation write it after their
/// nursery bump.
pub const fn young_header(ty: TypeId) -> u64 {
    (ty.0 as u64) << (8 * TYPE_ID_OFFSET)
}

/// Name id of `__init__` (interned first, before the program is compiled).
pub const INIT_NAME: u32 = 0;

/// Deepest call nesting (the interpreter's limit, counting `<module>`).
pub const MAX_DEPTH: u64 = stmjit_lang::interp::MAX_CALL_DEPTH as u64;

/// Binary operators by the number JIT code passes to `stmjit_binop` and `stmjit_inplace`.
pub const BINOPS: [BinOp; 12] = [
    BinOp::Add,
    BinOp::Sub,
    BinOp::Mul,
    BinOp::Div,
    BinOp::FloorDiv,
    BinOp::Mod,
    BinOp::Pow,
    BinOp::Shl,
    BinOp::Shr,
    BinOp::BitAnd,
    BinOp::BitOr,
    BinOp::BitXor,
];
/// Comparison operators by the number JIT code passes to `stmjit_compare`.
pub const CMPOPS: [CmpOp; 10] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
    CmpOp::In,
    CmpOp::NotIn,
    CmpOp::Is,
    CmpOp::IsNot,
];
/// Unary operators by the number JIT code passes to `stmjit_unary`.
pub const UNOPS: [UnaryOp; 3] = [UnaryOp::Neg, UnaryOp::Pos, UnaryOp::Invert];

/// Payload of a class call site's cache entry (`site_cache`): `function id <<
/// CLASS_SITE_SHIFT | slot count` of the class's `__init__` and instances (the count capped
/// at [`CLASS_SITE_SLOTS`]).
pub const CLASS_SITE_SHIFT: u32 = 8;
/// The largest slot count a class call site caches (more: that many, the rest grow later).
pub const CLASS_SITE_SLOTS: u64 = (1 << CLASS_SITE_SHIFT) - 1;

/// What every JIT function receives as its first argument. JIT code reads and writes the
/// first fields inline (offsets via `offset_of!`).
#[repr(C)]
pub struct Ctx {
    /// Current call depth (`<module>` = 1 once its prologue ran; the thread's driver is 0).
    pub depth: u64,
    /// The thread's shadow stack (`stmjit_runtime::ShadowStack`): JIT prologues push their
    /// frames on it inline; every word in it is a GC root.
    pub ss: *mut ShadowStack,
    /// The STM thread handle (slow paths of barriers, allocation, polls).
    pub th: *mut StmThread,
    /// Everything else the helpers need.
    pub rt: *mut Runtime,
    /// Depth of the frame whose boundary began the running transaction: the frame that
    /// restarts it after an abort (`txn::NO_OPENER` when it cannot abort: inevitable).
    /// Returning from that frame is itself a boundary, so the frame is always live.
    pub txn_depth: u64,
    /// Which restart point of that frame (its boundary's number in the function).
    pub restart_point: u64,
    /// Nesting of `with atomic:` / `with lock:` blocks and queued calls: no boundary while
    /// it is non-zero.
    pub atomic_depth: u64,
    /// Base of the running transaction's segment (the entry trampolines' r15).
    pub seg_base: u64,
    /// Trace site of the operation JIT code is doing (set before helper calls and barrier
    /// slow paths): a conflict found meanwhile names it in `--stats`.
    pub site: u64,
    /// Arguments and result of a write-barrier slow path (`txn::stmjit_wb_slow_status`,
    /// `txn::stmjit_card_slow_status`): JIT code reaches them through `preserve_all` stubs
    /// taking only the context, so that the call fixes one register (`rdi`) rather than
    /// one per argument, and a `preserve_all` function returns nothing. JIT code stores
    /// the object (and the card's offset) here with plain stores before the call and
    /// reads the status back after it.
    pub barrier_obj: u64,
    /// See [`Ctx::barrier_obj`]: the element offset of a card write.
    pub barrier_off: u64,
    /// See [`Ctx::barrier_obj`]: the slow path's status (non-zero: aborted).
    pub barrier_status: u64,
}

impl Ctx {
    /// The context of a thread's driver (depth 0, which opens the first transaction).
    pub(crate) fn new(th: *mut StmThread, rt: *mut Runtime, seg_base: u64) -> Ctx {
        // SAFETY: th is the live handle of the calling thread (caller's contract).
        let ss = unsafe { (*th).shadow_stack_ptr() };
        Ctx {
            depth: 0,
            ss,
            th,
            rt,
            txn_depth: 0,
            restart_point: 0,
            atomic_depth: 0,
            seg_base,
            site: u64::from(u32::MAX),
            barrier_obj: 0,
            barrier_off: 0,
            barrier_status: 0,
        }
    }
}

/// The JIT entry of functions taking their arguments from an array:
/// `(segment base, ctx, argv, code) -> word`, a trampoline that sets r15 and calls the
/// function whose code address is `code` with the words at `argv` (one entry per number of
/// words, shared by every function taking that many: see `ProgramInfo::array_entry`).
pub type ArrayEntry = unsafe extern "C" fn(u64, *mut Ctx, *const u64, u64) -> u64;
