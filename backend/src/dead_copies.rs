//! Dead-copy removal, after the `%gs` rewrite: a copy `mov r64, r15` whose register no
//! instruction reads any more (its accesses are now `gs:` accesses that do not read it) is
//! dropped, and the straight-line code after it moves back three bytes up to an instruction
//! that takes the three bytes by a longer encoding of itself (a one-byte displacement
//! written as four bytes). Nothing else moves: block starts, branch targets, branches,
//! calls (return addresses), instructions with relocations, RIP-relative operands or
//! 64-bit immediates, and everything touching the stack or frame pointer stay where they
//! were, and the function keeps its length.
//!
//! # Why
//! `get_pinned_reg` lowers to one copy per segment access; after the rewrite most copies
//! are dead, yet they were executed, and object-heavy code is bound by how many
//! instructions the front end issues. Richards (callgrind, `richards.lang 60 1` minus
//! `30 1`): 194.0 M -> 182.3 M instructions at steady state (-6.0%) with liveness inside
//! straight lines, -1.0% more across branches; its start-up (compiling, mostly) +7.4% in
//! all (the pass decodes each function twice and reads every instruction's registers).
//!
//! # When a copy is dead
//! A backward liveness of the general registers over the rewrite's straight-line regions
//! (cut at block starts, branch targets and after branches) and their successors, every
//! register live where control leaves for somewhere no region names (returns, indirect
//! branches, traps, branches to trap stubs): an instruction reads the registers iced says
//! it reads (an address's base and index included), kills those it writes whole (64- or
//! 32-bit writes; a byte or word write kills nothing), and a call reads every register. A
//! copy whose register no path reads before writing it is dead.
//!
//! # Verification
//! The new code is decoded again from the block starts: it must give exactly the kept
//! instructions, each at its new offset and printing the same as before.
//!
//! # Cost
//! The pass starts from the rewrite's own decode of its output and from the registers the
//! rewrite found each unchanged instruction to use ([`crate::gs_rewrite::Decoded`], while
//! the code is still the one it decoded), so that it decodes only its result, and asks
//! iced only about the instructions the rewrite changed (issue 16: it decoded the code
//! twice and asked iced about every instruction twice, 9% of compiling richards).

use crate::gs_rewrite::{
    build_regions, decode, facts, gpr_bit, intel, is_copy, Facts, RegSet, Region, RewriteError,
    Rewritten,
};
use iced_x86::{
    Code, Encoder, FlowControl, Formatter, Instruction, InstructionInfoFactory, IntelFormatter,
    Mnemonic, OpKind, Register,
};

/// Offsets of the code after the removal: `map(old)` of an instruction start.
#[derive(Clone, Debug, Default)]
pub struct OffsetMap {
    /// (old start, new start) of every decoded instruction, ascending.
    starts: Vec<(u32, u32)>,
}

impl OffsetMap {
    /// The new offset of the byte at `old`: an instruction start maps to where that
    /// instruction now starts (a removed copy's to where the code after it now starts);
    /// a byte inside an instruction keeps its distance from the start; bytes outside the
    /// decoded code (trap stubs, constants) do not move.
    pub fn map(&self, old: u32) -> u32 {
        let k = self.starts.partition_point(|&(o, _)| o <= old);
        self.at(k, old)
    }

    /// [`OffsetMap::map`] for offsets given in ascending order: `cursor` (0 at first)
    /// walks the table once instead of a search per offset.
    fn map_ascending(&self, cursor: &mut usize, old: u32) -> u32 {
        while *cursor < self.starts.len() && self.starts[*cursor].0 <= old {
            *cursor += 1;
        }
        self.at(*cursor, old)
    }

    /// The new offset of `old`, `k` being the number of starts at or before it.
    fn at(&self, k: usize, old: u32) -> u32 {
        if k == 0 {
            return old;
        }
        let (o, n) = self.starts[k - 1];
        n + (old - o)
    }
}

/// What one instruction does to liveness: registers read, registers killed.
fn use_kill(i: &Instruction, f: &Facts) -> (RegSet, RegSet) {
    if i.mnemonic() == Mnemonic::Nop {
        return (0, 0);
    }
    if !matches!(
        i.flow_control(),
        FlowControl::Next | FlowControl::ConditionalBranch | FlowControl::UnconditionalBranch
    ) {
        // Calls, returns, indirect branches, traps: everything may be read.
        return (RegSet::MAX, 0);
    }
    (f.reads, f.whole_writes & !f.reads)
}

/// Whether control may leave `end`, the last instruction of a region with `succs`
/// successors, for somewhere no region names (a return, an indirect branch, a trap, a
/// branch to a trap stub, a fall into data): everything is live there.
fn leaves_unnamed(end: &Instruction, succs: usize) -> bool {
    match end.flow_control() {
        FlowControl::Next
        | FlowControl::Call
        | FlowControl::IndirectCall
        | FlowControl::UnconditionalBranch => succs < 1,
        FlowControl::ConditionalBranch => succs < 2,
        _ => true,
    }
}

/// The registers live at the end of each region: a backward data-flow over the regions'
/// successors (least fixpoint from nothing live), everything where control may leave
/// for somewhere unnamed.
fn live_out(
    insts: &[Instruction],
    regions: &[Region],
    effects: &[(RegSet, RegSet)],
) -> Vec<RegSet> {
    // Each region as a transfer `live_in = gen | (live_out & !kill)`.
    let transfer: Vec<(RegSet, RegSet)> = regions
        .iter()
        .map(|r| {
            (r.first..=r.last).rev().fold((0, 0), |(gen, kill), k| {
                let (uses, kills) = effects[k];
                (uses | (gen & !kills), kill | kills)
            })
        })
        .collect();
    let open: Vec<bool> = regions
        .iter()
        .map(|r| leaves_unnamed(&insts[r.last], r.succs.len()))
        .collect();
    let mut out: Vec<RegSet> = open
        .iter()
        .map(|&o| if o { RegSet::MAX } else { 0 })
        .collect();
    let mut changed = true;
    while changed {
        changed = false;
        for r in (0..regions.len()).rev() {
            if open[r] {
                continue;
            }
            let o = regions[r].succs.iter().fold(0, |acc, &s| {
                let (gen, kill) = transfer[s];
                acc | gen | (out[s] & !kill)
            });
            if o != out[r] {
                out[r] = o;
                changed = true;
            }
        }
    }
    out
}

/// Whether `i` (facts `f`) may be moved to another offset: straight-line code that does
/// not depend on where it sits and that nothing outside the code names by offset.
fn movable(i: &Instruction, f: &Facts, relocs: &[u32]) -> bool {
    if i.flow_control() != FlowControl::Next
        || i.is_ip_rel_memory_operand()
        || matches!(i.mnemonic(), Mnemonic::Div | Mnemonic::Idiv | Mnemonic::Ud2)
        || (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Immediate64)
    {
        return false;
    }
    let (s, e) = (i.ip() as u32, i.next_ip() as u32);
    let k = relocs.partition_point(|&r| r < s);
    if relocs.get(k).is_some_and(|&r| r < e) {
        return false;
    }
    // The stack and frame pointers: prologue and epilogue code that unwind information
    // may describe by offset.
    let stack = gpr_bit(Register::RSP).unwrap() | gpr_bit(Register::RBP).unwrap();
    f.touches & stack == 0
}

/// The ALU operation with a 32-bit immediate of one with a sign-extended byte immediate
/// (`83 /n ib` -> `81 /n id`: three bytes longer), and the kind of its immediate operand.
fn wide_immediate(c: Code) -> Option<(Code, OpKind)> {
    use Code::*;
    let (w32, w64) = (OpKind::Immediate32, OpKind::Immediate32to64);
    Some(match c {
        Add_rm32_imm8 => (Add_rm32_imm32, w32),
        Or_rm32_imm8 => (Or_rm32_imm32, w32),
        Adc_rm32_imm8 => (Adc_rm32_imm32, w32),
        Sbb_rm32_imm8 => (Sbb_rm32_imm32, w32),
        And_rm32_imm8 => (And_rm32_imm32, w32),
        Sub_rm32_imm8 => (Sub_rm32_imm32, w32),
        Xor_rm32_imm8 => (Xor_rm32_imm32, w32),
        Cmp_rm32_imm8 => (Cmp_rm32_imm32, w32),
        Add_rm64_imm8 => (Add_rm64_imm32, w64),
        Or_rm64_imm8 => (Or_rm64_imm32, w64),
        Adc_rm64_imm8 => (Adc_rm64_imm32, w64),
        Sbb_rm64_imm8 => (Sbb_rm64_imm32, w64),
        And_rm64_imm8 => (And_rm64_imm32, w64),
        Sub_rm64_imm8 => (Sub_rm64_imm32, w64),
        Xor_rm64_imm8 => (Xor_rm64_imm32, w64),
        Cmp_rm64_imm8 => (Cmp_rm64_imm32, w64),
        _ => return None,
    })
}

/// `i` encoded three bytes longer at `ip`, if it has such a form: a one-byte
/// displacement written as four bytes, or a sign-extended byte immediate as four.
fn grown(i: &Instruction, ip: u64) -> Option<Vec<u8>> {
    let mut n = *i;
    if let Some((code, kind)) = wide_immediate(i.code()) {
        let imm = i.immediate(1);
        n.set_code(code);
        n.set_op1_kind(kind);
        n.set_immediate32(imm as u32);
    } else if (0..i.op_count()).any(|k| i.op_kind(k) == OpKind::Memory)
        && i.memory_base() != Register::None
        && i.memory_displ_size() == 1
    {
        n.set_memory_displ_size(8);
    } else {
        return None;
    }
    let mut enc = Encoder::new(64);
    let len = enc.encode(&n, ip).ok()?;
    (len == i.len() + 3).then(|| enc.take_buffer())
}

/// Whether two instructions print the same (a moved or grown one against its original).
fn same(fmt: &mut IntelFormatter, a: &Instruction, b: &Instruction) -> bool {
    let (mut x, mut y) = (String::new(), String::new());
    fmt.format(a, &mut x);
    fmt.format(b, &mut y);
    x == y
}

/// Removes the dead copies of `rw` (see the module documentation), updating its code,
/// accesses, instruction starts and statistics; `relocs` are the offsets of the function's
/// relocations, ascending (no instruction holding one moves). Returns how offsets moved.
pub fn remove_dead_copies(
    rw: &mut Rewritten,
    block_starts: &[u32],
    relocs: &[u32],
) -> Result<OffsetMap, RewriteError> {
    // The rewrite's decode of this code, if it still is this code.
    let known = rw
        .decoded
        .take()
        .filter(|d| d.code == rw.code && d.block_starts == block_starts);
    let code = &rw.code;
    let (insts, known) = match known {
        Some(d) => (d.insts, d.facts),
        None => (decode(code, block_starts)?, vec![]),
    };
    if insts.is_empty() {
        return Ok(OffsetMap::default());
    }
    let regions = build_regions(code, &insts, block_starts)?;
    let mut info = InstructionInfoFactory::new();
    let facts: Vec<Facts> = insts
        .iter()
        .enumerate()
        .map(|(k, i)| match known.get(k) {
            Some(Some(f)) => *f,
            _ => facts(i, &mut info),
        })
        .collect();
    let effects: Vec<(RegSet, RegSet)> = insts
        .iter()
        .zip(&facts)
        .map(|(i, f)| use_kill(i, f))
        .collect();
    let live_out = live_out(&insts, &regions, &effects);
    // Per region holding a copy, from its first copy on: dead copies (a backward liveness
    // from what is live at the region's end), movable runs, and the greedy match of each
    // removed copy with a later instruction of its run that can grow.
    let mut removed = vec![false; insts.len()];
    let mut absorbs = vec![false; insts.len()];
    for (r, reg) in regions.iter().enumerate() {
        let Some(first) = (reg.first..=reg.last).find(|&k| is_copy(&insts[k])) else {
            continue;
        };
        let n = reg.last + 1 - first;
        let mut dead = vec![false; n];
        let mut live = live_out[r];
        for k in (first..=reg.last).rev() {
            let i = &insts[k];
            if is_copy(i) && live & gpr_bit(i.op0_register()).unwrap() == 0 {
                dead[k - first] = true;
            }
            let (uses, kills) = effects[k];
            live = (live & !kills) | uses;
        }
        if !dead.iter().any(|&d| d) {
            continue;
        }
        // Backward: `free` absorbers to the right in the current run.
        let mut free = 0usize;
        let mut can_grow = vec![false; n];
        for k in (first..=reg.last).rev() {
            let i = &insts[k];
            if dead[k - first] {
                if free > 0 {
                    free -= 1;
                    removed[k] = true;
                }
            } else if !movable(i, &facts[k], relocs) {
                free = 0;
            } else if grown(i, i.ip()).is_some() {
                can_grow[k - first] = true;
                free += 1;
            }
        }
        // Forward: each absorber takes one pending removal.
        let mut pending = 0usize;
        for k in first..=reg.last {
            if removed[k] {
                pending += 1;
            } else if can_grow[k - first] && pending > 0 {
                absorbs[k] = true;
                pending -= 1;
            }
        }
        debug_assert_eq!(pending, 0);
    }
    if !removed.iter().any(|&x| x) {
        return Ok(OffsetMap::default());
    }
    // Emit: instructions after a removal move back until an absorber takes the bytes.
    let mut out = code.clone();
    let mut map = OffsetMap::default();
    let mut shift = 0u32;
    for (k, i) in insts.iter().enumerate() {
        let (s, e) = (i.ip() as u32, i.next_ip() as u32);
        let at = s - shift;
        map.starts.push((s, at));
        if removed[k] {
            shift += 3;
            continue;
        }
        if absorbs[k] {
            let bytes = grown(i, at as u64).expect("checked above");
            out[at as usize..at as usize + bytes.len()].copy_from_slice(&bytes);
            shift -= 3;
        } else if shift > 0 {
            out.copy_within(s as usize..e as usize, at as usize);
        }
    }
    if shift != 0 {
        return Err(RewriteError::VerificationFailed {
            offset: code.len() as u32,
            what: "dead-copy removal left bytes unfilled".into(),
        });
    }
    // Verify: the kept instructions, each where the map says, the same instruction (a grown
    // one printing the same).
    let after = decode(&out, block_starts)?;
    let mut fmt = IntelFormatter::new();
    let kept = (0..insts.len()).filter(|&k| !removed[k]);
    let mut n = 0;
    for (k, new) in kept.zip(&after) {
        n += 1;
        let old = &insts[k];
        let equal = if absorbs[k] {
            same(&mut fmt, old, new)
        } else {
            old == new && old.len() == new.len()
        };
        if new.ip() as u32 != map.map(old.ip() as u32) || !equal {
            return Err(RewriteError::VerificationFailed {
                offset: new.ip() as u32,
                what: format!(
                    "dead-copy removal: `{}` became `{}`",
                    intel(old),
                    intel(new)
                ),
            });
        }
    }
    if n != after.len() || n != removed.iter().filter(|&&r| !r).count() {
        return Err(RewriteError::VerificationFailed {
            offset: 0,
            what: "dead-copy removal changed the instruction count".into(),
        });
    }
    rw.code = out;
    // Accesses and instruction starts ascend, as `insts` and the map do: merge walks.
    debug_assert!(rw.accesses.windows(2).all(|w| w[0].offset <= w[1].offset));
    debug_assert!(rw.instruction_starts.windows(2).all(|w| w[0] < w[1]));
    let (mut k, mut cursor) = (0, 0);
    for a in &mut rw.accesses {
        while k < insts.len() && (insts[k].ip() as u32) < a.offset {
            k += 1;
        }
        if insts.get(k).is_some_and(|i| i.ip() as u32 == a.offset) && absorbs[k] {
            a.len += 3;
        }
        a.offset = map.map_ascending(&mut cursor, a.offset);
    }
    let mut gone = insts
        .iter()
        .zip(&removed)
        .filter(|(_, &r)| r)
        .map(|(i, _)| i.ip() as u32)
        .peekable();
    rw.instruction_starts.retain(|&s| {
        while gone.next_if(|&g| g < s).is_some() {}
        gone.next_if_eq(&s).is_none()
    });
    let mut cursor = 0;
    for s in &mut rw.instruction_starts {
        *s = map.map_ascending(&mut cursor, *s);
    }
    rw.stats.copies_removed = removed.iter().filter(|&&r| r).count();
    Ok(map)
}
