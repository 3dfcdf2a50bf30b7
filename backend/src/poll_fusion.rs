//! Poll fusion, the last step of the `%gs` rewrite (on its decode, before its verification
//! and before dead-copy removal): a compiler's
//! one-word poll, a read-modify-write of a segment word that branches on the sign of the
//! result, becomes one `add` and one branch on its flags.
//!
//! # Why
//! Cranelift has no flags output for a memory read-modify-write, so a poll built as
//! `store(load(w) - 1, w)` then `brif(load(w) < 0)` comes out as six instructions:
//!
//! ```text
//! mov rax, r15;  add qword [rax + D], -1     ; the decrement (r15 form: gs: would grow)
//! mov rax, r15;  mov rax, [rax + D]          ; the word read again
//! test rax, rax; jl slow                     ; its sign
//! ```
//!
//! Here they become `add qword gs:[D], -1` (32-bit immediate), one multi-byte NOP, `js slow`:
//! three, and only the `add` touches memory. At every loop back-edge that was 6 of the
//! ~40 instructions of a specialized trial-division iteration.
//!
//! # Why it is the same program
//! * `test R, R` sets SF and ZF and PF from R and clears CF and OF, so `jl` after it is
//!   `js` (and `jge` is `jns`); the `add` sets SF, ZF and PF from the value it stores,
//!   which is what the reload read, unless another thread wrote the word in between. Such a
//!   write (a safe-point request of the runtime, which only ever makes the word negative)
//!   is then seen by the next poll instead of this one: a poll is a point where requests are
//!   *eventually* answered, and requesters re-mark while they wait (see the runtime's
//!   `safepoint.rs`). The `add` itself is the same instruction as before, so the race of a
//!   request with the owner's non-atomic decrement is unchanged.
//! * CF, OF and AF differ: every path from the branch must write them before reading them,
//!   or reach a call or a return first (they preserve no flags); checked over the regions
//!   (Cranelift never keeps flags live across blocks).
//! * The registers the copies and the reload wrote must be dead where the branch leaves
//!   (written before read on every path from it: a search from the branch).
//! * Instructions the scheduler put between the pattern's (`lea` of the next counter, say)
//!   move after the `add` and its NOP: they must not touch flags, memory, the stack, or the
//!   pattern's registers, so they commute with it.
//!
//! Anything else is left as it was: correct, only longer.
//!
//! # Verification
//! The replaced bytes are decoded again: the `add` intended, NOPs, the moved instructions
//! unchanged, then the branch in its place (same length, same target); then the rewrite's
//! own check of the whole function runs on the new instruction starts.

use crate::dead_copies::{leaves_unnamed, movable, use_kill};
use crate::gs_rewrite::{
    gpr_bit, intel, is_copy, nop_padding, AccessKind, LeftReason, RegSet, Region, RewriteError,
    Rewritten, SegmentAccess, SegmentBase,
};
use iced_x86::{
    Code, Decoder, DecoderOptions, Encoder, FlowControl, Instruction, InstructionInfoFactory,
    Mnemonic, OpAccess, OpKind, Register, RflagsBits,
};
use std::collections::BTreeMap;

/// The flags a fused poll's `add` leaves other than `test` did.
const DIFFERING_FLAGS: u32 = RflagsBits::CF | RflagsBits::OF | RflagsBits::AF;

/// One poll found: instruction indexes into the decode.
struct Poll {
    /// The first instruction replaced (the earlier copy).
    start: usize,
    /// The `add` of the word.
    add: usize,
    /// The reload of the word.
    reload: usize,
    /// The sign branch (kept in place, as `js`/`jns`).
    branch: usize,
    /// Instructions between `start` and `branch` that are not the pattern's, in order.
    movers: Vec<usize>,
}

/// Whether `i` writes (part of) the general register whose bit is `r`.
fn writes(i: &Instruction, r: RegSet, info: &mut InstructionInfoFactory) -> bool {
    let only_registers = iced_x86::InstructionInfoOptions::NO_MEMORY_USAGE;
    info.info_options(i, only_registers)
        .used_registers()
        .iter()
        .any(|u| {
            gpr_bit(u.register()) == Some(r)
                && !matches!(u.access(), OpAccess::Read | OpAccess::CondRead)
        })
}

/// `op R, [C + disp]` with no index nor segment prefix: `(C, disp)`.
fn simple_address(i: &Instruction) -> Option<(Register, u64)> {
    (i.memory_index() == Register::None
        && i.segment_prefix() == Register::None
        && i.memory_base().is_gpr64()
        && i.memory_base() != Register::R15)
        .then(|| (i.memory_base(), i.memory_displacement64()))
}

/// The nearest instruction before `k` (from `first`) writing `r`, if it is a copy of r15.
fn copy_before(
    insts: &[Instruction],
    first: usize,
    k: usize,
    r: RegSet,
    info: &mut InstructionInfoFactory,
) -> Option<usize> {
    let w = (first..k).rev().find(|&c| writes(&insts[c], r, info))?;
    is_copy(&insts[w]).then_some(w)
}

/// The poll ending region `reg`, if its last instruction branches on the sign of a word the
/// region just decremented (see the module documentation for the shape).
fn find_poll(
    insts: &[Instruction],
    reg: &Region,
    info: &mut InstructionInfoFactory,
) -> Option<Poll> {
    let branch = reg.last;
    if !matches!(
        insts[branch].code(),
        Code::Jl_rel32_64 | Code::Jl_rel8_64 | Code::Jge_rel32_64 | Code::Jge_rel8_64
    ) {
        return None;
    }
    let flags = |i: &Instruction| i.rflags_read() | i.rflags_modified() != 0;
    // The test: the last instruction before the branch that touches flags.
    let test = (reg.first..branch).rev().find(|&k| flags(&insts[k]))?;
    let t = &insts[test];
    if t.code() != Code::Test_rm64_r64
        || t.op0_kind() != OpKind::Register
        || t.op0_register() != t.op1_register()
    {
        return None;
    }
    let value = gpr_bit(t.op0_register())?;
    // The reload: the last write of the tested register.
    let reload = (reg.first..test)
        .rev()
        .find(|&k| writes(&insts[k], value, info))?;
    let l = &insts[reload];
    if l.code() != Code::Mov_r64_rm64 || l.op1_kind() != OpKind::Memory {
        return None;
    }
    let (base2, disp) = simple_address(l)?;
    let copy2 = copy_before(insts, reg.first, reload, gpr_bit(base2)?, info)?;
    // The add: the last instruction before the reload touching flags, on the same word.
    let add = (reg.first..reload).rev().find(|&k| flags(&insts[k]))?;
    let a = &insts[add];
    if !matches!(a.code(), Code::Add_rm64_imm8 | Code::Add_rm64_imm32)
        || a.op0_kind() != OpKind::Memory
    {
        return None;
    }
    let (base1, disp1) = simple_address(a)?;
    if disp1 != disp {
        return None;
    }
    let copy1 = copy_before(insts, reg.first, add, gpr_bit(base1)?, info)?;
    let start = copy1.min(copy2);
    let pattern = [copy1, add, copy2, reload, test];
    let regs = value | gpr_bit(base1)? | gpr_bit(base2)?;
    let movers: Vec<usize> = (start..branch).filter(|k| !pattern.contains(k)).collect();
    for &k in &movers {
        let i = &insts[k];
        let used = info.info(i);
        let touches = used
            .used_registers()
            .iter()
            .any(|u| gpr_bit(u.register()).is_some_and(|b| b & regs != 0));
        let memory = used
            .used_memory()
            .iter()
            .any(|m| m.access() != OpAccess::NoMemAccess);
        if touches || memory || flags(i) {
            return None;
        }
    }
    Some(Poll {
        start,
        add,
        reload,
        branch,
        movers,
    })
}

/// Whether no path from `reg`'s end reads a register of `regs` or a flag of `flags` before
/// writing it. A call or a return ends a path for flags (they preserve none) and reads
/// every register, as does leaving for somewhere no region names. A search from the branch,
/// not a liveness of the whole function: most paths write both within a few instructions.
fn dead_after(
    insts: &[Instruction],
    regions: &[Region],
    reg: usize,
    regs: RegSet,
    flags: u32,
    info: &mut InstructionInfoFactory,
) -> bool {
    // Per region, the union of what was searched for from its start (a region is searched
    // again only for something new).
    let mut seen: BTreeMap<usize, (RegSet, u32)> = BTreeMap::new();
    let mut todo = vec![(reg, regs, flags, true)];
    while let Some((r, mut regs, mut flags, from_end)) = todo.pop() {
        let region = &regions[r];
        if !from_end {
            let (sr, sf) = seen.get(&r).copied().unwrap_or((0, 0));
            if regs & !sr == 0 && flags & !sf == 0 {
                continue;
            }
            seen.insert(r, (sr | regs, sf | flags));
            for i in &insts[region.first..=region.last] {
                if i.rflags_read() & flags != 0 {
                    return false;
                }
                flags &= !i.rflags_modified();
                let (uses, kills) = use_kill(i, info);
                if uses & regs != 0 {
                    return false;
                }
                regs &= !kills;
                if matches!(
                    i.flow_control(),
                    FlowControl::Call | FlowControl::IndirectCall | FlowControl::Return
                ) {
                    flags = 0;
                }
                if regs == 0 && flags == 0 {
                    break;
                }
            }
            if regs == 0 && flags == 0 {
                continue;
            }
        }
        if leaves_unnamed(&insts[region.last], region.succs.len()) {
            return false;
        }
        todo.extend(region.succs.iter().map(|&n| (n, regs, flags, false)));
    }
    true
}

/// The fused `add`: the segment word through `gs:` (or r15 itself in [`SegmentBase::R15`]
/// mode), in the immediate form (byte or 32-bit) that leaves the fewest NOPs in `room`.
fn fused_add(a: &Instruction, mode: SegmentBase, ip: u64, room: usize) -> Option<Vec<u8>> {
    let mut forms = vec![(Code::Add_rm64_imm32, OpKind::Immediate32to64)];
    if a.code() == Code::Add_rm64_imm8 {
        forms.push((Code::Add_rm64_imm8, OpKind::Immediate8to64));
    }
    forms
        .into_iter()
        .filter_map(|(code, kind)| {
            let mut n = *a;
            n.set_code(code);
            n.set_op1_kind(kind);
            if kind == OpKind::Immediate32to64 {
                n.set_immediate32(a.immediate(1) as u32);
            }
            // A 32-bit displacement of a 64-bit address (4 would make it a 32-bit address,
            // with a 0x67 prefix).
            n.set_memory_index(Register::None);
            n.set_memory_displ_size(8);
            if mode == SegmentBase::Gs {
                n.set_memory_base(Register::None);
                n.set_segment_prefix(Register::GS);
            } else {
                n.set_memory_base(Register::R15);
            }
            let mut enc = Encoder::new(64);
            let len = enc.encode(&n, ip).ok()?;
            (len <= room).then(|| enc.take_buffer())
        })
        .min_by_key(|b| nop_count(room - b.len()))
}

/// How many NOP instructions pad `n` bytes.
fn nop_count(n: usize) -> usize {
    Decoder::with_ip(64, &nop_padding(n), 0, DecoderOptions::NONE)
        .iter()
        .count()
}

/// Fuses every poll of `rw` it can prove (see the module documentation), updating its
/// code, accesses, instruction starts and statistics. `insts` and `regions` are the decode
/// of the code before the `%gs` rewrite, which moved nothing: each poll's bytes are written
/// anew from these instructions. (No instruction that moves can hold a relocation: it has
/// no memory operand, no 64-bit immediate, and is no call.)
pub(crate) fn fuse_polls(
    rw: &mut Rewritten,
    insts: &[Instruction],
    regions: &[Region],
    mode: SegmentBase,
) -> Result<(), RewriteError> {
    let mut info = InstructionInfoFactory::new();
    let mut fused = false;
    for (r, reg) in regions.iter().enumerate() {
        let Some(p) = find_poll(insts, reg, &mut info) else {
            continue;
        };
        let written: RegSet = (p.start..p.branch)
            .filter(|k| !p.movers.contains(k))
            .map(|k| use_kill(&insts[k], &mut info).1)
            .fold(0, |a, b| a | b);
        if p.movers.iter().all(|&k| movable(&insts[k], &[], &mut info))
            && dead_after(insts, regions, r, written, DIFFERING_FLAGS, &mut info)
        {
            fused |= fuse_one(rw, insts, &p, mode)?;
        }
    }
    if fused {
        rw.instruction_starts.sort_unstable();
    }
    Ok(())
}

/// Rewrites one poll in place and records it; `false` if the fused `add` does not fit.
fn fuse_one(
    rw: &mut Rewritten,
    insts: &[Instruction],
    p: &Poll,
    mode: SegmentBase,
) -> Result<bool, RewriteError> {
    let (s, e) = (insts[p.start].ip(), insts[p.branch].ip());
    let moved: usize = p.movers.iter().map(|&k| insts[k].len()).sum();
    let room = (e - s) as usize - moved;
    let Some(add) = fused_add(&insts[p.add], mode, s, room) else {
        return Ok(false);
    };
    let pad = nop_padding(room - add.len());
    let mut bytes = add.clone();
    bytes.extend_from_slice(&pad);
    let mut starts = vec![s as u32];
    let mut at = s as usize + add.len();
    starts.extend(
        Decoder::with_ip(64, &pad, at as u64, DecoderOptions::NONE)
            .iter()
            .map(|piece| piece.ip() as u32),
    );
    at += pad.len();
    for &k in &p.movers {
        let i = &insts[k];
        let mut enc = Encoder::new(64);
        let len = enc
            .encode(i, at as u64)
            .map_err(|x| fail(at as u64, format!("cannot move `{}`: {x}", intel(i))))?;
        if len != i.len() {
            return Err(fail(at as u64, format!("`{}` changed length", intel(i))));
        }
        bytes.extend(enc.take_buffer());
        starts.push(at as u32);
        at += len;
    }
    let br = &insts[p.branch];
    let mut js = *br;
    js.set_code(match br.code() {
        Code::Jl_rel32_64 => Code::Js_rel32_64,
        Code::Jl_rel8_64 => Code::Js_rel8_64,
        Code::Jge_rel32_64 => Code::Jns_rel32_64,
        _ => Code::Jns_rel8_64,
    });
    let mut enc = Encoder::new(64);
    let len = enc
        .encode(&js, e)
        .map_err(|x| fail(e, format!("cannot encode `{}`: {x}", intel(&js))))?;
    if len != br.len() {
        return Err(fail(e, "the branch changed length".into()));
    }
    bytes.extend(enc.take_buffer());
    verify(&bytes, s, insts, p, &js, add.len())?;
    rw.code[s as usize..br.next_ip() as usize].copy_from_slice(&bytes);
    rw.instruction_starts
        .retain(|&x| (x as u64) < s || (x as u64) >= e);
    rw.instruction_starts.extend(starts);
    record(rw, insts, p, mode, add.len(), pad.len());
    Ok(true)
}

/// A failed check of the fused bytes (a bug here: the function is not compiled).
fn fail(ip: u64, what: String) -> RewriteError {
    RewriteError::VerificationFailed {
        offset: ip as u32,
        what: format!("poll fusion: {what}"),
    }
}

/// The new bytes decode to the fused `add` (the old one's operation on the same word), NOPs,
/// the moved instructions unchanged, and the new branch to the same target.
fn verify(
    bytes: &[u8],
    s: u64,
    insts: &[Instruction],
    p: &Poll,
    js: &Instruction,
    add_len: usize,
) -> Result<(), RewriteError> {
    let got: Vec<Instruction> = Decoder::with_ip(64, bytes, s, DecoderOptions::NONE)
        .iter()
        .collect();
    let old = &insts[p.add];
    let a = &got[0];
    let add_ok = a.mnemonic() == Mnemonic::Add
        && a.len() == add_len
        && a.memory_size() == old.memory_size()
        && a.memory_displacement64() == old.memory_displacement64()
        && a.memory_index() == Register::None
        && a.memory_displ_size() == 8
        && a.immediate(1) == old.immediate(1)
        && (a.segment_prefix() == Register::GS && a.memory_base() == Register::None
            || a.segment_prefix() == Register::None && a.memory_base() == Register::R15);
    if !add_ok {
        return Err(fail(s, format!("re-decoded `{}`", intel(a))));
    }
    let rest: Vec<&Instruction> = got[1..]
        .iter()
        .filter(|i| i.mnemonic() != Mnemonic::Nop)
        .collect();
    let want: Vec<&Instruction> = p.movers.iter().map(|&k| &insts[k]).chain([js]).collect();
    let same = rest.len() == want.len()
        && rest.iter().zip(&want).all(|(x, y)| {
            x.code() == y.code()
                && x.len() == y.len()
                && intel(x) == intel(y)
                && (x.near_branch_target() == y.near_branch_target())
        });
    let last = got.last().expect("the branch");
    if !same || last.ip() != js.ip() || got.iter().any(|i| i.is_invalid()) {
        return Err(fail(s, "the fused poll does not re-decode as built".into()));
    }
    Ok(())
}

/// The access list and counts after fusing `p`: the reload is gone, the `add` is the fused
/// one (in `gs:` form unless [`SegmentBase::R15`]).
fn record(
    rw: &mut Rewritten,
    insts: &[Instruction],
    p: &Poll,
    mode: SegmentBase,
    add_len: usize,
    pad: usize,
) {
    let (add_ip, reload_ip) = (insts[p.add].ip() as u32, insts[p.reload].ip() as u32);
    let stats = &mut rw.stats;
    rw.accesses.retain(|a| {
        if a.offset != add_ip && a.offset != reload_ip {
            return true;
        }
        match a.left {
            None => {
                *stats.rewritten.entry(a.kind).or_default() -= 1;
                stats.nop_bytes -= a.nop_bytes as usize;
            }
            Some(why) => *stats.left.entry(why).or_default() -= 1,
        }
        false
    });
    stats.rewritten.retain(|_, n| *n > 0);
    stats.left.retain(|_, n| *n > 0);
    let left = (mode == SegmentBase::R15).then_some(LeftReason::R15Mode);
    match left {
        None => {
            *stats
                .rewritten
                .entry(AccessKind::ReadModifyWrite)
                .or_default() += 1
        }
        Some(why) => *stats.left.entry(why).or_default() += 1,
    }
    stats.nop_bytes += pad;
    stats.polls_fused += 1;
    let at = rw
        .accesses
        .partition_point(|a| a.offset < insts[p.start].ip() as u32);
    rw.accesses.insert(
        at,
        SegmentAccess {
            offset: insts[p.start].ip() as u32,
            len: (add_len + pad) as u32,
            kind: AccessKind::ReadModifyWrite,
            width: 8,
            left,
            nop_bytes: pad as u32,
        },
    );
}
