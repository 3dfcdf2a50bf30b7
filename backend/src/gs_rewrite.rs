//! The verified `%gs` rewrite: turns segment accesses that Cranelift emitted
//! through the pinned register into genuine `gs:`-prefixed accesses, in the
//! final machine code, without moving any instruction.
//!
//! # Why a rewrite of the final bytes
//! Stock Cranelift has no segment-override operand (see
//! `shared/spikes/cranelift-gs/README.md`). The JIT reserves r15 as the pinned
//! register and keeps it equal to the thread's segment base; the IR addresses a
//! segment byte as `get_pinned_reg + offset`. `get_pinned_reg` lowers to a copy
//! `mov rX, r15`, and the access becomes `[rX + idx*s + disp]`. This pass tracks
//! those copies and rewrites each such access into `gs:[idx*s + disp]`.
//!
//! # Invariant that makes every decision safe
//! **r15 == `%gs` base wherever JIT code touches the segment.** The entry
//! trampoline of [`crate::module`] establishes it on entry. A runtime call may
//! end the transaction and begin the next one in another segment (threads are
//! not tied to a segment), which changes `%gs`; the compiler then reloads r15
//! right after the call from the context (`set_pinned_reg` of the load
//! [`PinnedReload`] describes, the only write of r15 accepted, and only for
//! code whose IR passed [`check_ir_with`]). A copy of r15 taken before a call
//! or reload is *stale*: using it as an address is refused
//! ([`Escape::AcrossCall`]). Hence `[copy + idx + d]` and `gs:[idx + d]`
//! address the same linear byte, and an access the pass *leaves alone* is
//! still correct: leaving an access in r15 form costs the "genuine gs"
//! property for that one instruction, never correctness.
//!
//! # The analysis
//! The code is cut into regions at Cranelift's block starts (`bb_starts`, from
//! `machine_code_cfg_info`), at every direct branch target and after every
//! branch. Per region, a forward data-flow computes two sets of general
//! registers: `must` (holds the value of r15 on every path) and `may` (holds it
//! on some path). `mov r64, r15` adds a copy; `mov r64, copy` propagates it;
//! any other write kills; a call or a reload of r15 turns every copy into a
//! stale one (kept in callee-saved registers, until overwritten). The function entry and every
//! block no modeled edge reaches (an indirect jump may reach any block) start
//! with no copies. Only an access whose base is in `must` is rewritten.
//!
//! # What is refused (an error: the function is not compiled)
//! Code where the base register escapes is refused. Escapes are
//! caught at two levels, both errors ([`RewriteError`]):
//! * **On the IR** ([`check_ir`], always run by the compile path): the value
//!   of `get_pinned_reg`, or an address `iadd(base, x)` made from it, used
//!   other than as the address of a load, store or atomic (returned, passed
//!   to a call or a block, stored as data, compared, added to the base
//!   again...), and any `set_pinned_reg`. This is exact: the IR is where the
//!   program's values are.
//! * **On the machine code** (this pass): r15 written (the invariant would
//!   break), or read other than by the copy `mov r64, r15` or as an access
//!   base; a copy used as base or index of an instruction that does not access
//!   memory (`lea`: the address becomes a value, and a `gs:` prefix would be
//!   ignored), as an index with scale > 1, or as base and index at once; a
//!   copy-based access with a segment prefix or 32-bit addressing; bytes that
//!   do not decode, a branch into the middle of an instruction or to undecoded
//!   bytes other than a trap stub, or a failed verification.
//! * A copy register read as a plain *value* (arithmetic, compare, push,
//!   stored to memory, an implicit operand) is refused by [`rewrite`]
//!   ([`CopyReads::Refuse`], for code whose IR nobody checked) and only
//!   counted by the compile path ([`CopyReads::Count`]): after [`check_ir`]
//!   such reads are register-allocator artifacts (moves and dead spills of the
//!   copy, stale registers given to an undefined input) that real Cranelift
//!   output does contain; refusing them would reject valid programs. For the
//!   same reason the compile path leaves *doubtful addresses* (a `lea` of a
//!   copy, two copies, a scaled or stale copy: the may-sets merge paths) as
//!   they are instead of refusing them; the exact IR check already ruled them
//!   out.
//!
//! # What is merely left in r15 form (recorded, not an error)
//! * everything, in [`SegmentBase::R15`] mode (the `--segment-base r15`
//!   comparison); the analysis and all refusals still run;
//! * an access whose `gs:` encoding would be longer than the original, e.g.
//!   `[copy + disp]` with no index (`gs:[disp32]` needs a SIB byte and a
//!   4-byte displacement) or `[copy + idx*8]`;
//! * an access through a register that holds a copy on some paths only.
//!
//! # Keeping every offset
//! The replacement is never longer than the original; it is padded with
//! multi-byte NOPs *after* it, so the instruction start (a possible branch
//! target) and every following byte stay where they were: branches,
//! relocations, trap offsets and stack-map return addresses stay valid. Every
//! replacement is re-decoded and compared with the intended instruction, and
//! the whole function is re-decoded to check that every original instruction
//! boundary still exists.

use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, FlowControl, Formatter, Instruction,
    InstructionInfoFactory, IntelFormatter, Mnemonic, OpAccess, OpKind, Register,
};
use std::collections::{BTreeMap, BTreeSet};

pub use crate::ir_check::{check_ir, check_ir_with, PinnedReload};
use std::fmt;

/// How the final code reaches the thread's segment.
///
/// `Gs` is the design (genuine `%gs` prefixes); `R15` keeps the pinned-register
/// form so that both can be benchmarked (`--segment-base r15`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum SegmentBase {
    /// Rewrite every provable segment access into its `gs:` form.
    #[default]
    Gs,
    /// Leave accesses as `[copy-of-r15 + ...]`; still analyse and refuse.
    R15,
}

impl std::str::FromStr for SegmentBase {
    type Err = String;
    /// `gs` or `r15`, as in `--segment-base gs|r15`.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "gs" => Ok(SegmentBase::Gs),
            "r15" => Ok(SegmentBase::R15),
            _ => Err(format!("unknown segment base `{s}` (expected gs or r15)")),
        }
    }
}

/// What a segment access does with memory; used for statistics and for the
/// `--dump-asm` annotations (a byte store is the read marker, a byte load or
/// test is the write-barrier flag test).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AccessKind {
    /// Reads memory into a register (`mov`, `movzx`, SSE loads...).
    Load,
    /// Writes memory only (`mov [m], r/imm`).
    Store,
    /// Reads memory only to set flags (`cmp`, `test`, `bt`).
    Compare,
    /// Reads and writes memory (`add [m], r`, `lock cmpxchg`, `xchg`...).
    ReadModifyWrite,
}

/// Why a segment access was not put in `gs:` form (it still works: see the
/// module invariant).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LeftReason {
    /// [`SegmentBase::R15`] mode.
    R15Mode,
    /// The `gs:` encoding would be longer than the original instruction.
    WouldGrow,
    /// The base holds a copy of r15 on some paths only.
    NotProvable,
}

/// One memory access through the segment base, found by the pass.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentAccess {
    /// Offset of the instruction in the function's code.
    pub offset: u32,
    /// Length of the instruction (unchanged by the rewrite, NOPs included).
    pub len: u32,
    /// What the access does.
    pub kind: AccessKind,
    /// Size of the memory operand in bytes (1 for markers and flag tests).
    pub width: u32,
    /// `None` if rewritten to `gs:`, otherwise why not.
    pub left: Option<LeftReason>,
    /// Number of NOP padding bytes after the rewritten instruction.
    pub nop_bytes: u32,
}

/// Summary counts of a rewrite, for `--dump-asm` headers, logs and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RewriteStats {
    /// Copies `mov r64, r15` (one per `get_pinned_reg`).
    pub copies: usize,
    /// Register-to-register moves of a copy (regalloc moves), followed.
    pub copy_moves: usize,
    /// Accesses put in `gs:` form, by kind.
    pub rewritten: BTreeMap<AccessKind, usize>,
    /// Accesses left in r15 form, by reason.
    pub left: BTreeMap<LeftReason, usize>,
    /// NOP padding bytes inserted in total.
    pub nop_bytes: usize,
    /// Instructions that read a register possibly holding a copy as a value,
    /// accepted in [`CopyReads::Count`] mode (register-allocator artifacts).
    pub copy_value_reads: usize,
    /// Reloads of r15 after a runtime call (`mov r15, ...`, code whose IR passed
    /// [`check_ir_with`]).
    pub reloads: usize,
    /// Dead copies removed after the rewrite (`dead_copies.rs`).
    pub copies_removed: usize,
    /// Byte loads fused with the copy of r15 before them (`copy_fusion.rs`).
    pub loads_fused: usize,
}

impl RewriteStats {
    /// Total accesses put in `gs:` form.
    pub fn total_rewritten(&self) -> usize {
        self.rewritten.values().sum()
    }
    /// Total accesses left in r15 form.
    pub fn total_left(&self) -> usize {
        self.left.values().sum()
    }
}

impl fmt::Display for RewriteStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} gs accesses {:?}, {} left in r15 form {:?}, {} copies, {} copy moves, {} nop bytes, \
             {} copy value reads, {} reloads, {} dead copies removed, {} loads fused",
            self.total_rewritten(),
            self.rewritten,
            self.total_left(),
            self.left,
            self.copies,
            self.copy_moves,
            self.nop_bytes,
            self.copy_value_reads,
            self.reloads,
            self.copies_removed,
            self.loads_fused
        )
    }
}

/// Result of a successful pass.
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The final bytes (same length as the input).
    pub code: Vec<u8>,
    /// Every segment access found, in code order.
    pub accesses: Vec<SegmentAccess>,
    /// Counts derived from `accesses` plus copy counts.
    pub stats: RewriteStats,
    /// Offsets of the original instructions that were decoded as code (data
    /// such as inline jump tables, trap stubs and constants excluded).
    pub instruction_starts: Vec<u32>,
    /// End of the decoded code (start of trap stubs / constant pool).
    pub code_end: u32,
    /// The verification's decode of `code`, handed to dead-copy removal so that it
    /// neither decodes nor asks iced about the code again (issue 16); taken by it.
    pub(crate) decoded: Option<Box<Decoded>>,
}

/// What the rewrite knows about its output, for [`crate::dead_copies`]: used only while
/// `code` and `block_starts` are still the ones it was made from.
#[derive(Clone)]
pub(crate) struct Decoded {
    /// The bytes decoded, and the block starts the decode began from.
    pub(crate) code: Vec<u8>,
    pub(crate) block_starts: Vec<u32>,
    /// The output decoded ([`decode`]).
    pub(crate) insts: Vec<Instruction>,
    /// Per instruction of `insts`: the facts of the original instruction it is (same
    /// offset, same bytes), or `None` where the rewrite changed it (ask iced again).
    pub(crate) facts: Vec<Option<Facts>>,
}

impl fmt::Debug for Decoded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decoded({} instructions)", self.insts.len())
    }
}

/// How the segment base escaped (see [`RewriteError::BaseEscapes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Escape {
    /// Read as a value by an ordinary instruction (arithmetic, compare, push...).
    ValueUse,
    /// Stored to memory as data (e.g. a spill): it could not be followed.
    StoredToMemory,
    /// Base or index of an instruction that does not access memory (`lea`):
    /// the address becomes a value, and a `gs:` prefix would be ignored.
    NonAccessingAddress,
    /// Used as an index with scale > 1, or as base and index at once.
    ScaledOrDoubled,
    /// The IR uses `get_pinned_reg` (or an address made from it) other than
    /// as the address of a load or store.
    IrUse,
    /// A copy of r15 taken before a call (or before r15 was reloaded) is used
    /// after it: the call may have moved the thread to another segment, so
    /// the copy may name the old one. In the IR: a base value used in another
    /// block than its `get_pinned_reg`, or after a call in between.
    AcrossCall,
}

/// Why the pass refused a function. Every variant names the offending offset
/// and instruction, so a compiler bug can be found from the message alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RewriteError {
    /// The segment base (r15 or a copy of it) escapes: it is used otherwise
    /// than as the base register of a memory access.
    BaseEscapes {
        /// Code offset (or IR instruction number for [`Escape::IrUse`]).
        offset: u32,
        /// The instruction, Intel syntax (or IR text).
        instruction: String,
        /// How it escapes.
        how: Escape,
    },
    /// r15 is written inside a JIT function: the invariant r15 == gs base breaks.
    PinnedRegWritten {
        /// Code offset.
        offset: u32,
        /// The instruction.
        instruction: String,
    },
    /// A copy-based access with a form the pass does not handle (an existing
    /// segment prefix, 32-bit addressing).
    Unsupported {
        /// Code offset.
        offset: u32,
        /// The instruction.
        instruction: String,
        /// What is wrong.
        why: &'static str,
    },
    /// Bytes that do not decode where code is expected.
    Undecodable {
        /// Code offset.
        offset: u32,
    },
    /// A branch to the middle of an instruction or to undecoded bytes.
    BadBranchTarget {
        /// Offset of the branch.
        offset: u32,
        /// Its target.
        target: u64,
    },
    /// The re-decoded result differs from what was intended (a bug in the pass
    /// or the encoder; never ignored).
    VerificationFailed {
        /// Code offset.
        offset: u32,
        /// What differs.
        what: String,
    },
}

impl fmt::Display for RewriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RewriteError::BaseEscapes {
                offset,
                instruction,
                how: Escape::IrUse,
            } => write!(
                f,
                "segment base (get_pinned_reg) escapes in the IR at inst{offset}: `{instruction}` \
                 (it may only be the address of a load or store)"
            ),
            RewriteError::BaseEscapes {
                offset,
                instruction,
                how,
            } => write!(
                f,
                "segment base register escapes ({how:?}) at {offset:#x}: {instruction}"
            ),
            RewriteError::PinnedRegWritten {
                offset,
                instruction,
            } => write!(
                f,
                "pinned register r15 written in JIT code at {offset:#x}: {instruction}"
            ),
            RewriteError::Unsupported {
                offset,
                instruction,
                why,
            } => {
                write!(
                    f,
                    "unsupported segment access at {offset:#x} ({why}): {instruction}"
                )
            }
            RewriteError::Undecodable { offset } => write!(f, "undecodable bytes at {offset:#x}"),
            RewriteError::BadBranchTarget { offset, target } => {
                write!(
                    f,
                    "branch at {offset:#x} to {target:#x}, not an instruction start"
                )
            }
            RewriteError::VerificationFailed { offset, what } => {
                write!(f, "rewrite verification failed at {offset:#x}: {what}")
            }
        }
    }
}

impl std::error::Error for RewriteError {}

/// Intel-syntax text of one instruction, for messages and verification.
pub(crate) fn intel(i: &Instruction) -> String {
    let mut f = IntelFormatter::new();
    let mut s = String::new();
    f.format(i, &mut s);
    s
}

/// Whether two instructions read the same in Intel syntax (one formatter,
/// reused: building one per comparison is most of the pass's cost).
fn same_text(fmt: &mut IntelFormatter, a: &Instruction, b: &Instruction) -> bool {
    let (mut x, mut y) = (String::new(), String::new());
    fmt.format(a, &mut x);
    fmt.format(b, &mut y);
    x == y
}

/// Intel's recommended multi-byte NOPs (SDM vol. 2, "NOP"), longest first use.
pub fn nop_padding(n: usize) -> Vec<u8> {
    const NOPS: [&[u8]; 10] = [
        &[],
        &[0x90],
        &[0x66, 0x90],
        &[0x0F, 0x1F, 0x00],
        &[0x0F, 0x1F, 0x40, 0x00],
        &[0x0F, 0x1F, 0x44, 0x00, 0x00],
        &[0x66, 0x0F, 0x1F, 0x44, 0x00, 0x00],
        &[0x0F, 0x1F, 0x80, 0x00, 0x00, 0x00, 0x00],
        &[0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
        &[0x66, 0x0F, 0x1F, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    ];
    let mut out = Vec::with_capacity(n);
    let mut left = n;
    while left > 0 {
        let k = left.min(9);
        out.extend_from_slice(NOPS[k]);
        left -= k;
    }
    out
}

/// Set of general registers as a bit mask (bit i = i-th of rax..r15).
pub(crate) type RegSet = u16;

/// Registers a call preserves (System V: rbx, rbp, r12-r15).
const CALLEE_SAVED: RegSet = (1 << 3) | (1 << 5) | (1 << 12) | (1 << 13) | (1 << 14) | (1 << 15);

/// Bit of a register's full 64-bit GPR, if it is one.
pub(crate) fn gpr_bit(r: Register) -> Option<RegSet> {
    let full = r.full_register();
    if full.is_gpr64() {
        Some(1 << (full as u32 - Register::RAX as u32))
    } else {
        None
    }
}

/// Whether an access reads the register (possibly).
fn reads(a: OpAccess) -> bool {
    matches!(
        a,
        OpAccess::Read | OpAccess::CondRead | OpAccess::ReadWrite | OpAccess::ReadCondWrite
    )
}

/// Whether the instruction has an explicit `[base + index*scale + disp]` operand.
fn has_mem_operand(i: &Instruction) -> bool {
    (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Memory)
}

/// `mov r64, r15`: the lowering of `get_pinned_reg`.
pub(crate) fn is_copy(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Mov
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op1_kind() == OpKind::Register
        && i.op0_register().is_gpr64()
        && i.op1_register() == Register::R15
}

/// `mov r15, r64` or `mov r15, m64`: the only shapes of the reload of r15
/// after a runtime call (see [`PinnedReload`]).
fn is_reload(i: &Instruction) -> bool {
    i.mnemonic() == Mnemonic::Mov
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op0_register() == Register::R15
        && (i.op1_kind() == OpKind::Memory && i.memory_size().size() == 8
            || i.op1_kind() == OpKind::Register && i.op1_register().is_gpr64())
}

/// `mov r64, r64` whose source may be a copy (a regalloc move).
fn is_move_of(i: &Instruction, may: RegSet) -> Option<(RegSet, RegSet)> {
    if i.mnemonic() == Mnemonic::Mov
        && i.op_count() == 2
        && i.op0_kind() == OpKind::Register
        && i.op1_kind() == OpKind::Register
        && i.op0_register().is_gpr64()
        && i.op1_register().is_gpr64()
    {
        let src = gpr_bit(i.op1_register())?;
        if src & may != 0 {
            return Some((gpr_bit(i.op0_register())?, src));
        }
    }
    None
}

/// Copy-tracking state at a program point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct State {
    must: RegSet,
    may: RegSet,
    /// Registers that may hold a copy of r15 taken before a call or a reload
    /// of r15: no longer the segment base (see [`Escape::AcrossCall`]).
    stale: RegSet,
}

/// What the analysis needs to know about one instruction, asked of iced
/// once per instruction (one `InstructionInfo`: it was three, a quarter of
/// the pass, issue 16).
#[derive(Clone, Copy)]
pub(crate) struct Facts {
    /// A NOP (multi-byte NOPs name registers but use none).
    nop: bool,
    /// Registers possibly written (including conditional writes).
    may_write: RegSet,
    /// Registers surely written.
    must_write: RegSet,
    /// Registers possibly read, the explicit memory operand's base and index
    /// included (for dead-copy removal's liveness).
    pub(crate) reads: RegSet,
    /// Registers written whole (a 64- or 32-bit write), for the same liveness.
    pub(crate) whole_writes: RegSet,
    /// Every register iced names, however it is used (dead-copy removal moves no
    /// instruction touching the stack or frame pointer).
    pub(crate) touches: RegSet,
    /// Base and index of the explicit memory operand, if any.
    address: RegSet,
    /// A call (clobbers the caller-saved registers).
    call: bool,
    /// The memory access of the explicit operand, if any.
    access: Option<(AccessKind, u32)>,
}

/// Ask iced about one instruction.
pub(crate) fn facts(i: &Instruction, info: &mut InstructionInfoFactory) -> Facts {
    let (mut may_write, mut must_write, mut read, mut whole_writes) = (0, 0, 0, 0);
    let mut touches = 0;
    let inf = info.info(i);
    for u in inf.used_registers() {
        if let Some(b) = gpr_bit(u.register()) {
            touches |= b;
            if reads(u.access()) {
                read |= b;
            }
            match u.access() {
                OpAccess::Write | OpAccess::ReadWrite => {
                    may_write |= b;
                    must_write |= b;
                    if u.access() == OpAccess::Write && u.register().size() >= 4 {
                        whole_writes |= b;
                    }
                }
                OpAccess::CondWrite | OpAccess::ReadCondWrite => may_write |= b,
                _ => {}
            }
        }
    }
    let access = access_kind(i, inf);
    let address = if has_mem_operand(i) {
        gpr_bit(i.memory_base()).unwrap_or(0) | gpr_bit(i.memory_index()).unwrap_or(0)
    } else {
        0
    };
    Facts {
        nop: i.mnemonic() == Mnemonic::Nop,
        may_write,
        must_write,
        reads: read,
        whole_writes,
        touches,
        address,
        call: matches!(
            i.flow_control(),
            FlowControl::Call | FlowControl::IndirectCall
        ),
        access,
    }
}

/// The effect of one instruction on the copy sets (no checks).
fn transfer(st: State, i: &Instruction, f: &Facts) -> State {
    if f.nop {
        return st;
    }
    if is_copy(i) {
        let b = gpr_bit(i.op0_register()).unwrap();
        return State {
            must: st.must | b,
            may: st.may | b,
            stale: st.stale & !b,
        };
    }
    if let Some((dst, src)) = is_move_of(i, st.may | st.stale) {
        let must = if st.must & src != 0 {
            st.must | dst
        } else {
            st.must & !dst
        };
        let may = if st.may & src != 0 {
            st.may | dst
        } else {
            st.may & !dst
        };
        let stale = if st.stale & src != 0 {
            st.stale | dst
        } else {
            st.stale & !dst
        };
        return State { must, may, stale };
    }
    let mut s = State {
        must: st.must & !f.may_write,
        may: st.may & !f.must_write,
        stale: st.stale & !f.must_write,
    };
    let r15 = gpr_bit(Register::R15).unwrap();
    if f.call || f.may_write & r15 != 0 {
        // A call may switch the thread's segment (the callee, or the JIT code
        // after a runtime call, reloads r15), and a write of r15 is that
        // reload: every copy taken before may name the old segment. The
        // callee-saved ones survive as stale; the others are clobbered.
        let kept = if f.call { CALLEE_SAVED } else { RegSet::MAX };
        s.stale = (s.stale | s.may) & kept;
        s.must = 0;
        s.may = 0;
    }
    s
}

/// Control leaves the straight line after this instruction (no fall-through).
fn ends_straight_line(i: &Instruction) -> bool {
    matches!(
        i.flow_control(),
        FlowControl::Return | FlowControl::UnconditionalBranch | FlowControl::IndirectBranch
    ) || i.mnemonic() == Mnemonic::Ud2
}

/// Target of a direct (rel8/rel32) jump or conditional jump.
fn direct_target(i: &Instruction) -> Option<u64> {
    match i.flow_control() {
        FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch => match i.op0_kind() {
            OpKind::NearBranch64 => Some(i.near_branch64()),
            _ => None,
        },
        _ => None,
    }
}

/// Whether `t` holds a `ud2`: Cranelift's out-of-line trap stubs, emitted
/// after the code, are the only branch targets outside the decoded code.
fn is_trap_stub(code: &[u8], t: u64) -> bool {
    let t = t as usize;
    t + 2 <= code.len() && code[t] == 0x0F && code[t + 1] == 0x0B
}

/// Decode the code part of `code`: each block from its start up to the next
/// block start, stopping early after an unconditional transfer that no
/// pending forward branch of the block jumps over (what follows is data: an
/// inline jump table, or, after the last block, trap stubs and constants).
pub(crate) fn decode(code: &[u8], block_starts: &[u32]) -> Result<Vec<Instruction>, RewriteError> {
    let mut starts: BTreeSet<u32> = block_starts
        .iter()
        .copied()
        .filter(|&s| (s as usize) < code.len())
        .collect();
    if !code.is_empty() {
        starts.insert(0);
    }
    let starts: Vec<u32> = starts.into_iter().collect();
    let mut out = Vec::new();
    for (k, &s) in starts.iter().enumerate() {
        let limit = starts.get(k + 1).map_or(code.len(), |&n| n as usize);
        let mut dec =
            Decoder::with_ip(64, &code[s as usize..limit], s as u64, DecoderOptions::NONE);
        let mut pending: u64 = 0; // furthest forward in-block branch target seen
        while dec.can_decode() {
            let i = dec.decode();
            if i.is_invalid() {
                return Err(RewriteError::Undecodable {
                    offset: i.ip() as u32,
                });
            }
            if let Some(t) = direct_target(&i) {
                if t > i.ip() && (t as usize) < limit && !is_trap_stub(code, t) {
                    pending = pending.max(t);
                }
            }
            let next = i.next_ip();
            out.push(i);
            if ends_straight_line(&i) && pending < next {
                break;
            }
        }
    }
    Ok(out)
}

/// A straight-line piece of code: instructions `first..=last` of the decode,
/// entered only at `first`, with the regions control can flow to next.
pub(crate) struct Region {
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) succs: Vec<usize>,
}

/// Cut the decoded code into regions: at block starts, branch targets and
/// after every branch; check every direct target is an instruction start or a
/// trap stub.
pub(crate) fn build_regions(
    code: &[u8],
    insts: &[Instruction],
    block_starts: &[u32],
) -> Result<Vec<Region>, RewriteError> {
    // `insts` ascend by address (decoded forward from sorted block starts): binary
    // searches, not maps (a map per function was a tenth of compiling a display).
    debug_assert!(insts.windows(2).all(|w| w[0].ip() < w[1].ip()));
    let index_of = |ip: u64| insts.binary_search_by_key(&ip, |i| i.ip()).ok();
    let mut leader = vec![false; insts.len()];
    if !insts.is_empty() {
        leader[0] = true;
    }
    for &s in block_starts {
        if let Some(k) = index_of(s as u64) {
            leader[k] = true;
        }
    }
    for (k, i) in insts.iter().enumerate() {
        if let Some(t) = direct_target(i) {
            match index_of(t) {
                Some(tk) => {
                    leader[tk] = true;
                }
                None => {
                    // Allowed only: a trap stub that is not inside decoded code.
                    let before = insts.partition_point(|i| i.ip() <= t);
                    let inside = before > 0 && insts[before - 1].next_ip() > t;
                    if !is_trap_stub(code, t) || inside {
                        return Err(RewriteError::BadBranchTarget {
                            offset: i.ip() as u32,
                            target: t,
                        });
                    }
                }
            }
        }
        let breaks = !matches!(
            i.flow_control(),
            FlowControl::Next | FlowControl::Call | FlowControl::IndirectCall
        );
        let gap = insts.get(k + 1).is_some_and(|n| n.ip() != i.next_ip());
        if (breaks || gap) && k + 1 < insts.len() {
            leader[k + 1] = true;
        }
    }
    let leaders: Vec<usize> = (0..insts.len()).filter(|&k| leader[k]).collect();
    let region_at = |ip: u64| leaders.binary_search_by_key(&ip, |&k| insts[k].ip()).ok();
    let block_regions: Vec<usize> = block_starts
        .iter()
        .filter_map(|&s| region_at(s as u64))
        .collect();
    let mut regions = Vec::with_capacity(leaders.len());
    for (r, &first) in leaders.iter().enumerate() {
        let last = leaders.get(r + 1).map_or(insts.len() - 1, |&n| n - 1);
        let end = &insts[last];
        let mut succs = Vec::new();
        let falls_through = !ends_straight_line(end);
        if falls_through {
            if let Some(n) = region_at(end.next_ip()) {
                succs.push(n);
            }
        }
        if let Some(t) = direct_target(end) {
            if let Some(n) = region_at(t) {
                succs.push(n);
            }
        }
        if end.flow_control() == FlowControl::IndirectBranch {
            // Jump tables only target blocks: be conservative and take them all.
            succs.extend(block_regions.iter().copied());
        }
        regions.push(Region { first, last, succs });
    }
    Ok(regions)
}

/// Forward data-flow to a fixed point: the state at each region's entry.
fn solve(regions: &[Region], insts: &[Instruction], facts: &[Facts]) -> Vec<State> {
    const TOP: State = State {
        must: RegSet::MAX,
        may: 0,
        stale: 0,
    };
    let mut entry = vec![TOP; regions.len()];
    let mut seen = vec![false; regions.len()];
    if regions.is_empty() {
        return entry;
    }
    // The function entry, and every region no modeled edge reaches (a block
    // entered some other way, e.g. by unwinding), start with no copies; this
    // keeps `must` sound for the regions they flow into.
    let mut has_pred = vec![false; regions.len()];
    for r in regions {
        for &s in &r.succs {
            has_pred[s] = true;
        }
    }
    let mut work = Vec::new();
    for r in 0..regions.len() {
        if r == 0 || !has_pred[r] {
            entry[r] = State {
                must: 0,
                may: 0,
                stale: 0,
            };
            seen[r] = true;
            work.push(r);
        }
    }
    while let Some(r) = work.pop() {
        let mut st = entry[r];
        for k in regions[r].first..=regions[r].last {
            st = transfer(st, &insts[k], &facts[k]);
        }
        for &s in &regions[r].succs {
            let new = if seen[s] {
                State {
                    must: entry[s].must & st.must,
                    may: entry[s].may | st.may,
                    stale: entry[s].stale | st.stale,
                }
            } else {
                st
            };
            if !seen[s] || new != entry[s] {
                seen[s] = true;
                entry[s] = new;
                work.push(s);
            }
        }
    }
    for (r, e) in entry.iter_mut().enumerate() {
        if !seen[r] {
            // Only reachable from a cycle no edge enters: assume nothing.
            *e = State {
                must: 0,
                may: 0,
                stale: 0,
            };
        }
    }
    entry
}

/// Kind and width of the explicit memory access, if the instruction has one.
fn access_kind(i: &Instruction, inf: &iced_x86::InstructionInfo) -> Option<(AccessKind, u32)> {
    let m = inf.used_memory().first()?;
    let width = m.memory_size().size() as u32;
    let kind = match m.access() {
        OpAccess::Read | OpAccess::CondRead => match i.mnemonic() {
            Mnemonic::Cmp | Mnemonic::Test | Mnemonic::Bt => AccessKind::Compare,
            _ => AccessKind::Load,
        },
        OpAccess::Write | OpAccess::CondWrite => AccessKind::Store,
        OpAccess::ReadWrite | OpAccess::ReadCondWrite => AccessKind::ReadModifyWrite,
        _ => return None,
    };
    Some((kind, width))
}

/// Registers read as values, as far as `relevant` goes: every read except the
/// explicit memory operand's base and index. Outside the address registers that
/// is what [`facts`] found; a register of the address may also be read as a
/// value (`lock cmpxchg [rax], rcx` reads rax twice), so where one of them is
/// relevant iced is asked again about the instruction with its address
/// registers removed (only there: most instructions address no copy).
fn value_reads(
    i: &Instruction,
    f: &Facts,
    relevant: RegSet,
    info: &mut InstructionInfoFactory,
) -> RegSet {
    if f.address & relevant == 0 {
        return f.reads & !f.address;
    }
    let mut probe = *i;
    probe.set_memory_base(Register::None);
    probe.set_memory_index(Register::None);
    let mut set = 0;
    for u in info.info(&probe).used_registers() {
        if reads(u.access()) {
            if let Some(b) = gpr_bit(u.register()) {
                set |= b;
            }
        }
    }
    set
}

/// The `gs:` form of a copy-based access: the copy removed from the address;
/// with scale 1 the other register becomes the base (a base-less SIB would
/// force a 4-byte displacement).
pub fn gs_form(i: &Instruction, copy_is_index: bool) -> Instruction {
    let mut n = *i;
    let (other, scale) = if copy_is_index {
        (i.memory_base(), 1)
    } else {
        (i.memory_index(), i.memory_index_scale())
    };
    let d = i.memory_displacement64();
    if other != Register::None && scale == 1 {
        n.set_memory_base(other);
        n.set_memory_index(Register::None);
        n.set_memory_index_scale(1);
        n.set_memory_displ_size(if d == 0 { 0 } else { 1 });
    } else {
        n.set_memory_base(Register::None);
        n.set_memory_index(other);
        n.set_memory_index_scale(scale);
        n.set_memory_displ_size(4);
    }
    n.set_segment_prefix(Register::GS);
    n
}

/// Encode `n` at `ip`; `Some(bytes)` padded with NOPs to `old_len`, verified
/// by re-decoding, or `None` if it does not fit.
fn encode_fitting(
    n: &Instruction,
    ip: u64,
    old_len: usize,
    fmt: &mut IntelFormatter,
) -> Result<Option<(Vec<u8>, u32)>, RewriteError> {
    let mut enc = Encoder::new(64);
    let len = match enc.encode(n, ip) {
        Ok(len) => len,
        Err(e) => {
            return Err(RewriteError::VerificationFailed {
                offset: ip as u32,
                what: format!("cannot encode {}: {e}", intel(n)),
            })
        }
    };
    if len > old_len {
        return Ok(None);
    }
    let mut bytes = enc.take_buffer();
    bytes.extend(nop_padding(old_len - len));
    // Verify: the replacement decodes to `n` exactly, followed only by NOPs.
    let mut d = Decoder::with_ip(64, &bytes, ip, DecoderOptions::NONE);
    let first = d.decode();
    let same = first.code() == n.code()
        && first.len() == len
        && first.segment_prefix() == Register::GS
        // Equal fields print the same: the formatter (most of the check's cost) only
        // where they differ, e.g. in how the displacement's size is recorded.
        && (first == *n || same_text(fmt, &first, n));
    if !same {
        return Err(RewriteError::VerificationFailed {
            offset: ip as u32,
            what: format!("wanted `{}`, re-decoded `{}`", intel(n), intel(&first)),
        });
    }
    while d.can_decode() {
        let x = d.decode();
        if x.code() != Code::Nopd
            && x.code() != Code::Nopw
            && x.code() != Code::Nopq
            && x.mnemonic() != Mnemonic::Nop
        {
            return Err(RewriteError::VerificationFailed {
                offset: ip as u32,
                what: format!("padding decodes as `{}`", intel(&x)),
            });
        }
    }
    Ok(Some((bytes, (old_len - len) as u32)))
}

/// What to do when a register that may hold a copy of r15 is read as a value
/// (by arithmetic, a compare, a store of it, an implicit operand...).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CopyReads {
    /// Refuse: the base escapes. For code whose IR was not checked (hand-written
    /// code, other producers): the only proof of no escape is the machine code.
    Refuse,
    /// Accept and count ([`RewriteStats::copy_value_reads`]). Only sound for
    /// code whose IR passed [`check_ir`]: there the copy's IR value is used
    /// only as an address, so a machine-level read of its register is a
    /// register-allocator artifact (a move or dead spill of the copy, or a
    /// stale register given to an undefined input, e.g. a zeroing `xor` of
    /// `isub x, x`), and cannot carry the base anywhere. Found by the random
    /// program test; refusing those would reject valid programs. Also accepts
    /// r15 written by a plain `mov r15, r64/m64`: the only write the IR check
    /// lets through is the reload of [`PinnedReload`]. And an address the
    /// data-flow finds doubtful (a `lea` of a copy, two copies, a scaled copy,
    /// a stale copy) is left as it is instead of refused: the IR check proved
    /// it is none of these, and r15 is right wherever JIT code runs.
    Count,
}

/// Run the pass on one function's final bytes, refusing any value read of a
/// copy ([`CopyReads::Refuse`]); see [`rewrite_with`].
pub fn rewrite(
    code: &[u8],
    block_starts: &[u32],
    mode: SegmentBase,
) -> Result<Rewritten, RewriteError> {
    rewrite_with(code, block_starts, mode, CopyReads::Refuse)
}

/// Run the pass on one function's final bytes.
///
/// `block_starts` are Cranelift's `bb_starts` (offset 0 is added); without
/// them the pass still works from the branch structure, but cannot tell where
/// the last block ends if constants follow it, nor skip inline jump tables.
///
/// The steps: decode the code into instructions and straight-line regions, solve the
/// copy sets at each region's entry (a data-flow over the branches), then walk every
/// instruction with its region's state (`Pass::instruction`), rewriting the
/// accesses it proves, fuse the byte loads that would grow with their copies
/// (`copy_fusion.rs`), and re-decode the result to verify it.
pub fn rewrite_with(
    code: &[u8],
    block_starts: &[u32],
    mode: SegmentBase,
    copy_reads: CopyReads,
) -> Result<Rewritten, RewriteError> {
    let insts = decode(code, block_starts)?;
    let code_end = insts.last().map_or(0, |i| i.next_ip() as u32);
    let mut pass = Pass {
        mode,
        copy_reads,
        out: code.to_vec(),
        accesses: Vec::new(),
        stats: RewriteStats::default(),
        fmt: IntelFormatter::new(),
        info: InstructionInfoFactory::new(),
    };
    if insts.is_empty() {
        return Ok(Rewritten {
            code: pass.out,
            accesses: pass.accesses,
            stats: pass.stats,
            instruction_starts: vec![],
            code_end,
            decoded: None,
        });
    }
    let regions = build_regions(code, &insts, block_starts)?;
    let mut info = InstructionInfoFactory::new();
    let facts: Vec<Facts> = insts.iter().map(|i| facts(i, &mut info)).collect();
    let entries = solve(&regions, &insts, &facts);
    for (region, &entry) in regions.iter().zip(&entries) {
        let mut st = entry;
        for k in region.first..=region.last {
            st = pass.instruction(st, &insts[k], &facts[k])?;
        }
    }
    pass.accesses.sort_by_key(|a| a.offset);
    let instruction_starts: Vec<u32> = insts.iter().map(|i| i.ip() as u32).collect();
    let mut rw = Rewritten {
        code: pass.out,
        accesses: pass.accesses,
        stats: pass.stats,
        instruction_starts,
        code_end,
        decoded: None,
    };
    crate::copy_fusion::fuse_copies(&mut rw, &insts, &regions, mode)?;
    let after = verify_boundaries(&rw.code, block_starts, &rw.instruction_starts)?;
    // The output's instructions that are original ones, unchanged, keep their facts.
    let mut k = 0;
    let kept = after
        .iter()
        .map(|a| {
            let s = a.ip();
            while k < insts.len() && insts[k].ip() < s {
                k += 1;
            }
            let o = insts.get(k)?;
            let range = s as usize..a.next_ip() as usize;
            (o.ip() == s && o.len() == a.len() && code[range.clone()] == rw.code[range])
                .then_some(facts[k])
        })
        .collect();
    rw.decoded = Some(Box::new(Decoded {
        code: rw.code.clone(),
        block_starts: block_starts.to_vec(),
        insts: after,
        facts: kept,
    }));
    Ok(rw)
}

/// The pass over one function: its settings, the bytes it rewrites and what it found.
struct Pass {
    mode: SegmentBase,
    copy_reads: CopyReads,
    out: Vec<u8>,
    accesses: Vec<SegmentAccess>,
    stats: RewriteStats,
    fmt: IntelFormatter,
    /// For the few instructions whose value reads need a second look ([`value_reads`]).
    info: InstructionInfoFactory,
}

/// The register-set bit of r15.
fn r15_bit() -> RegSet {
    gpr_bit(Register::R15).unwrap()
}

impl Pass {
    /// Instruction `i` (facts `f`) reached with the copy sets `st`: refuses it if the
    /// segment base escapes through it, counts it if it copies or moves the base, rewrites
    /// it if it accesses the segment through a proven copy; returns the sets after it.
    fn instruction(
        &mut self,
        st: State,
        i: &Instruction,
        f: &Facts,
    ) -> Result<State, RewriteError> {
        if f.nop {
            return Ok(st);
        }
        // r15 is written only by the reload `check_ir_with` accepted: a plain
        // `mov r15, r64/m64` in code whose IR was checked.
        if f.may_write & r15_bit() != 0 {
            if self.copy_reads == CopyReads::Refuse || !is_reload(i) {
                return Err(RewriteError::PinnedRegWritten {
                    offset: i.ip() as u32,
                    instruction: intel(i),
                });
            }
            self.stats.reloads += 1;
        } else if is_copy(i) {
            self.stats.copies += 1;
        } else if is_move_of(i, st.may).is_some() {
            self.stats.copy_moves += 1;
        } else {
            self.check_value_reads(st, i, f)?;
            if has_mem_operand(i) {
                self.memory_operand(st, i, f)?;
            }
        }
        Ok(transfer(st, i, f))
    }

    /// r15 itself read as a value: an escape (Cranelift only copies it). A copy read as a
    /// value: an escape in `Refuse` mode; counted in `Count` mode (see [`CopyReads`]).
    fn check_value_reads(
        &mut self,
        st: State,
        i: &Instruction,
        f: &Facts,
    ) -> Result<(), RewriteError> {
        let r15 = r15_bit();
        let seg = st.may | r15;
        let vals = value_reads(i, f, seg, &mut self.info);
        let refused = if self.copy_reads == CopyReads::Refuse {
            seg
        } else {
            r15
        };
        if vals & refused != 0 {
            // Stored: an explicit register operand written to memory (a spill, a push);
            // anything else (an implicit address like `stos`'s rdi, arithmetic) is a value
            // use.
            let explicit = (0..i.op_count()).any(|k| {
                i.op_kind(k) == OpKind::Register
                    && gpr_bit(i.op_register(k)).is_some_and(|b| b & refused != 0)
            });
            let writes_memory = f.access.is_some_and(|(k, _)| k == AccessKind::Store);
            let how = if explicit && writes_memory {
                Escape::StoredToMemory
            } else {
                Escape::ValueUse
            };
            return Err(RewriteError::BaseEscapes {
                offset: i.ip() as u32,
                instruction: intel(i),
                how,
            });
        }
        if vals & seg != 0 {
            self.stats.copy_value_reads += 1;
        }
        Ok(())
    }

    /// The memory operand of `i`: when its base or index may be the segment base, checks
    /// that it is an access the pass can prove and rewrite (else refuses it, or, in code
    /// whose IR passed the check, leaves it in r15 form) and rewrites it into `gs:` form.
    fn memory_operand(
        &mut self,
        st: State,
        i: &Instruction,
        f: &Facts,
    ) -> Result<(), RewriteError> {
        let r15 = r15_bit();
        let seg = st.may | r15;
        let ip = i.ip() as u32;
        let escape = |how| RewriteError::BaseEscapes {
            offset: ip,
            instruction: intel(i),
            how,
        };
        let base = gpr_bit(i.memory_base()).unwrap_or(0);
        let index = gpr_bit(i.memory_index()).unwrap_or(0);
        // Code whose IR passed the check (`CopyReads::Count`) has no base living across a
        // call, and no address made of two bases: a register that is only possibly a copy,
        // or a stale one, is then not a base (the may-sets merge paths and are imprecise).
        // Other code is refused.
        let ir_checked = self.copy_reads == CopyReads::Count;
        if (base | index) & st.stale != 0 && !ir_checked {
            return Err(escape(Escape::AcrossCall));
        }
        let is_proven = |r: RegSet| r & (st.must | r15) != 0;
        let mut base_seg = base & seg != 0;
        let mut index_seg = index & seg != 0;
        if ir_checked && base_seg && index_seg && is_proven(base) != is_proven(index) {
            base_seg = is_proven(base);
            index_seg = is_proven(index);
        }
        if !base_seg && !index_seg {
            return Ok(());
        }
        let is_lea = i.mnemonic() == Mnemonic::Lea;
        let access = f.access.filter(|_| !is_lea);
        let doubtful =
            is_lea || (base_seg && index_seg) || (index_seg && i.memory_index_scale() != 1);
        if doubtful && ir_checked {
            // The IR check already proved there is no escape here; the may-sets merge paths
            // and cannot. Left as it is: correct by the r15 invariant (`lea` is no access at
            // all).
            if let Some((kind, width)) = access {
                self.record(SegmentAccess {
                    offset: ip,
                    len: i.len() as u32,
                    kind,
                    width,
                    left: Some(LeftReason::NotProvable),
                    nop_bytes: 0,
                });
            }
            return Ok(());
        }
        let Some((kind, width)) = access else {
            return Err(escape(Escape::NonAccessingAddress));
        };
        if base_seg && index_seg {
            return Err(escape(Escape::ScaledOrDoubled));
        }
        if index_seg && i.memory_index_scale() != 1 {
            return Err(escape(Escape::ScaledOrDoubled));
        }
        let unsupported = |why| RewriteError::Unsupported {
            offset: ip,
            instruction: intel(i),
            why,
        };
        if i.segment_prefix() != Register::None {
            return Err(unsupported("segment prefix"));
        }
        let seg_reg = if base_seg {
            i.memory_base()
        } else {
            i.memory_index()
        };
        if !seg_reg.is_gpr64() {
            return Err(unsupported("32-bit address"));
        }
        let proven = is_proven(if base_seg { base } else { index });
        let mut acc = SegmentAccess {
            offset: ip,
            len: i.len() as u32,
            kind,
            width,
            left: None,
            nop_bytes: 0,
        };
        if self.mode == SegmentBase::R15 {
            acc.left = Some(LeftReason::R15Mode);
        } else if !proven {
            acc.left = Some(LeftReason::NotProvable);
        } else {
            let n = gs_form(i, index_seg);
            match encode_fitting(&n, i.ip(), i.len(), &mut self.fmt)? {
                Some((bytes, pad)) => {
                    self.out[ip as usize..ip as usize + i.len()].copy_from_slice(&bytes);
                    acc.nop_bytes = pad;
                }
                None => acc.left = Some(LeftReason::WouldGrow),
            }
        }
        self.record(acc);
        Ok(())
    }

    /// Records a segment access and counts it (rewritten, or left in r15 form and why).
    fn record(&mut self, acc: SegmentAccess) {
        match acc.left {
            None => {
                *self.stats.rewritten.entry(acc.kind).or_default() += 1;
                self.stats.nop_bytes += acc.nop_bytes as usize;
            }
            Some(why) => *self.stats.left.entry(why).or_default() += 1,
        }
        self.accesses.push(acc);
    }
}

/// Re-decode the result and check that every original instruction start is
/// still an instruction start (only NOPs may have appeared in between).
/// Returns the decode of `out`.
fn verify_boundaries(
    out: &[u8],
    block_starts: &[u32],
    before: &[u32],
) -> Result<Vec<Instruction>, RewriteError> {
    let after = decode(out, block_starts)?;
    // Both ascend (decoded forward from sorted block starts): one merge walk finds the
    // first boundary lost and the first new instruction.
    debug_assert!(before.windows(2).all(|w| w[0] < w[1]));
    let (mut lost, mut extra) = (None, None);
    let mut rest = before.iter().copied().peekable();
    for i in &after {
        let ip = i.ip() as u32;
        while let Some(b) = rest.next_if(|&b| b < ip) {
            lost.get_or_insert(b);
        }
        if rest.next_if_eq(&ip).is_none() && i.mnemonic() != Mnemonic::Nop {
            extra.get_or_insert(i);
        }
    }
    if let Some(b) = lost.or(rest.next()) {
        return Err(RewriteError::VerificationFailed {
            offset: b,
            what: "instruction boundary lost".into(),
        });
    }
    if let Some(extra) = extra {
        return Err(RewriteError::VerificationFailed {
            offset: extra.ip() as u32,
            what: format!("new non-NOP instruction `{}`", intel(extra)),
        });
    }
    Ok(after)
}

/// Check an entry trampoline (the one function allowed to set r15): it must
/// not access memory other than its own stack frame, so that it cannot touch
/// the segment before r15 is right, nor anything through the caller's r15.
pub fn verify_trampoline(code: &[u8], block_starts: &[u32]) -> Result<(), RewriteError> {
    for i in decode(code, block_starts)? {
        if has_mem_operand(&i) && i.mnemonic() != Mnemonic::Nop {
            let ok = |r: Register| {
                matches!(
                    r,
                    Register::None | Register::RSP | Register::RBP | Register::RIP
                )
            };
            if !ok(i.memory_base()) || !ok(i.memory_index()) {
                return Err(RewriteError::Unsupported {
                    offset: i.ip() as u32,
                    instruction: intel(&i),
                    why: "entry trampoline accesses memory other than its frame",
                });
            }
        }
    }
    Ok(())
}

/// Check a `preserve_all` stub ([`crate::module::Jit::define_preserve_all_stub`]):
/// everything [`verify_trampoline`] asks (memory only through its own frame), and
/// moreover no use of r15 at all. Unlike an entry trampoline, a stub runs *inside* JIT
/// code, between a caller and a runtime helper that both rely on r15 == `%gs` base; it
/// forwards its arguments and must leave the segment base alone, neither reading it
/// (it could pass it on: an escape the IR check of the caller cannot see) nor writing it.
/// The stub is not rewritten ([`rewrite_none`]), so nothing else about r15 is checked
/// in it; this is what makes that safe.
pub fn verify_stub(code: &[u8], block_starts: &[u32]) -> Result<(), RewriteError> {
    verify_trampoline(code, block_starts)?;
    let mut info = InstructionInfoFactory::new();
    for i in decode(code, block_starts)? {
        if i.mnemonic() == Mnemonic::Nop {
            continue;
        }
        for u in info.info(&i).used_registers() {
            if u.register().full_register() != Register::R15 {
                continue;
            }
            return Err(match u.access() {
                OpAccess::Write
                | OpAccess::ReadWrite
                | OpAccess::CondWrite
                | OpAccess::ReadCondWrite => RewriteError::PinnedRegWritten {
                    offset: i.ip() as u32,
                    instruction: intel(&i),
                },
                _ => RewriteError::Unsupported {
                    offset: i.ip() as u32,
                    instruction: intel(&i),
                    why: "preserve_all stub reads r15 (the segment base)",
                },
            });
        }
    }
    Ok(())
}

/// The identity "rewrite" for code the pass must not touch (entry
/// trampolines): decodes, records instruction starts, changes nothing.
pub fn rewrite_none(code: &[u8], block_starts: &[u32]) -> Result<Rewritten, RewriteError> {
    let insts = decode(code, block_starts)?;
    Ok(Rewritten {
        code: code.to_vec(),
        accesses: vec![],
        stats: RewriteStats::default(),
        instruction_starts: insts.iter().map(|i| i.ip() as u32).collect(),
        code_end: insts.last().map_or(0, |i| i.next_ip() as u32),
        decoded: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check after a rewrite finds the first instruction start lost (in the middle or
    /// past the end) and a new instruction other than a NOP, and accepts NOP padding.
    #[test]
    fn boundaries_lost_or_new_are_found() {
        // mov rax, rax (3 bytes); ret.
        let code = [0x48, 0x89, 0xc0, 0xc3];
        assert!(verify_boundaries(&code, &[], &[0, 3]).is_ok());
        let offset = |r: Result<Vec<Instruction>, RewriteError>| match r {
            Err(RewriteError::VerificationFailed { offset, what }) => (offset, what),
            other => panic!("{other:?}"),
        };
        let (at, what) = offset(verify_boundaries(&code, &[], &[0, 2, 3]));
        assert_eq!((at, what.as_str()), (2, "instruction boundary lost"));
        assert_eq!(offset(verify_boundaries(&code, &[], &[0, 3, 4])).0, 4);
        let (at, what) = offset(verify_boundaries(&code, &[], &[0]));
        assert!(at == 3 && what.starts_with("new non-NOP"), "{at} {what}");
        // nop; nop; ret: the second NOP is padding.
        assert!(verify_boundaries(&[0x90, 0x90, 0xc3], &[], &[0, 2]).is_ok());
    }
}
