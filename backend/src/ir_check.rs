//! The IR half of the escape check: before a JIT function is compiled, its
//! Cranelift IR must use the segment base (`get_pinned_reg`) only to form the
//! address of loads, stores and atomics, must not keep it across a call, and
//! may set it only to the reload the compiler emits after a runtime call.
//!
//! The machine-code pass ([`crate::gs_rewrite`]) cannot see every escape: the
//! base passed to a call or returned is just `mov rdi, r15` / `mov rax, r15`
//! there. On the IR the uses of a value are explicit, so the check is exact.
//!
//! Why a base must not live across a call: a runtime call may end the
//! transaction and begin the next one in another segment (a thread's
//! transactions move between segments). `%gs` and r15 then name the new
//! segment, but a copy of r15 taken before the call still names the old one.

use crate::gs_rewrite::{Escape, RewriteError};

/// The one `set_pinned_reg` JIT code may contain: `set_pinned_reg(load.i64
/// ctx+offset)`, where `ctx` is entry-block parameter `ctx_param` and the
/// word at `offset` is the running segment's base (the new `%gs` base after a
/// runtime call that switched segments).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PinnedReload {
    /// Index of the context parameter of the function.
    pub ctx_param: usize,
    /// Offset of the segment-base word in the context.
    pub offset: i32,
}

/// Check the Cranelift IR of a JIT function before compiling it: the values
/// of `get_pinned_reg` (and addresses `iadd(base, x)` made from them, where
/// `x` is not itself derived from the base) may only be used as the
/// *address* of loads, stores and atomics, and `set_pinned_reg` is forbidden.
///
/// This catches escapes the machine code cannot show, such as the segment
/// base passed to a call or returned by a plain register move. The error
/// offset is the IR instruction number.
pub fn check_ir(func: &cranelift_codegen::ir::Function) -> Result<(), RewriteError> {
    check_ir_with(func, None)
}

/// [`check_ir`], also accepting the reload `reload` describes (the language
/// compiler's output: see [`PinnedReload`]). In both, a base value may only
/// be used in the block of its `get_pinned_reg`, with no call and no
/// `set_pinned_reg` in between.
pub fn check_ir_with(
    func: &cranelift_codegen::ir::Function,
    reload: Option<PinnedReload>,
) -> Result<(), RewriteError> {
    use cranelift_codegen::ir::{Block, Inst, InstructionData, Opcode, Value};
    let dfg = &func.dfg;
    // Where each instruction is: its block and the number of calls and reloads
    // before it in that block ("epoch"). Tables indexed by entity number, not maps:
    // the check stays linear in the function's size (it runs on every function).
    // One walk of the layout also lists the instructions, the `get_pinned_reg`s and
    // the `iadd`s (the only instructions the fixpoint below looks at again).
    let mut insts = Vec::with_capacity(dfg.num_insts());
    let mut gets = Vec::new();
    let mut iadds = Vec::new();
    let mut here: Vec<(Block, u32)> = vec![(Block::from_u32(0), 0); dfg.num_insts()];
    let here_of = |here: &[(Block, u32)], inst: Inst| here[inst.as_u32() as usize];
    for block in func.layout.blocks() {
        let mut epoch = 0u32;
        for inst in func.layout.block_insts(block) {
            insts.push(inst);
            here[inst.as_u32() as usize] = (block, epoch);
            let op = dfg.insts[inst].opcode();
            match op {
                Opcode::GetPinnedReg => gets.push(inst),
                Opcode::Iadd => iadds.push(inst),
                _ => {}
            }
            if op.is_call() || op == Opcode::SetPinnedReg {
                epoch += 1;
            }
        }
    }
    // Values that are the segment base or an address inside the segment, with the
    // place of the `get_pinned_reg` they come from. A fixpoint over the `iadd`s: the
    // layout order is not the dominance order.
    let mut origin: Vec<Option<(Block, u32)>> = vec![None; dfg.num_values()];
    let from = |origin: &[Option<(Block, u32)>], v: Value| {
        origin[dfg.resolve_aliases(v).as_u32() as usize]
    };
    for &inst in &gets {
        origin[dfg.inst_results(inst)[0].as_u32() as usize] = Some(here_of(&here, inst));
    }
    loop {
        let mut found = false;
        for &inst in &iadds {
            let a = dfg.inst_args(inst);
            let o = match (from(&origin, a[0]), from(&origin, a[1])) {
                (Some(o), None) | (None, Some(o)) => o,
                _ => continue,
            };
            let slot = &mut origin[dfg.inst_results(inst)[0].as_u32() as usize];
            if slot.is_none() {
                *slot = Some(o);
                found = true;
            }
        }
        if !found {
            break;
        }
    }
    let is_seg = |v: Value| from(&origin, v).is_some();
    let entry_params = func
        .layout
        .entry_block()
        .map(|b| dfg.block_params(b).to_vec())
        .unwrap_or_default();
    let is_reload = |v: Value| {
        let Some(r) = reload else { return false };
        let Some(def) = dfg.value_def(dfg.resolve_aliases(v)).inst() else {
            return false;
        };
        match dfg.insts[def] {
            InstructionData::Load {
                opcode: Opcode::Load,
                arg,
                offset,
                ..
            } => {
                dfg.value_type(v) == cranelift_codegen::ir::types::I64
                    && i32::from(offset) == r.offset
                    && entry_params.get(r.ctx_param) == Some(&dfg.resolve_aliases(arg))
            }
            _ => false,
        }
    };
    for &inst in &insts {
        let data = &dfg.insts[inst];
        let text = || dfg.display_inst(inst).to_string();
        if data.opcode() == Opcode::SetPinnedReg
            && !dfg.inst_args(inst).first().is_some_and(|&v| is_reload(v))
        {
            return Err(RewriteError::PinnedRegWritten {
                offset: inst.as_u32(),
                instruction: text(),
            });
        }
        // A base used in another block, or after a call or reload: it may be stale.
        let mut uses_base = false;
        for v in dfg.inst_values(inst) {
            let v = dfg.resolve_aliases(v);
            if let Some(o) = origin[v.as_u32() as usize] {
                uses_base = true;
                if o != here_of(&here, inst) {
                    return Err(RewriteError::BaseEscapes {
                        offset: inst.as_u32(),
                        instruction: text(),
                        how: Escape::AcrossCall,
                    });
                }
            }
        }
        // The rest looks only at uses of a base.
        if !uses_base {
            continue;
        }
        let address = match *data {
            InstructionData::Load { arg, .. } => Some(arg),
            InstructionData::LoadNoOffset { arg, opcode, .. } if opcode.can_load() => Some(arg),
            InstructionData::Store { args, .. } | InstructionData::StoreNoOffset { args, .. } => {
                Some(args[1])
            }
            InstructionData::AtomicRmw { args, .. } => Some(args[0]),
            InstructionData::AtomicCas { args, .. } => Some(args[0]),
            _ => None,
        };
        let combines = data.opcode() == Opcode::Iadd;
        let mut address_used = false;
        for (k, v) in dfg.inst_values(inst).enumerate() {
            if !is_seg(v) {
                continue;
            }
            let as_address = address
                .is_some_and(|a| dfg.resolve_aliases(a) == dfg.resolve_aliases(v))
                && !address_used
                && address_position(data, k);
            if as_address {
                address_used = true;
                continue;
            }
            // `iadd(base, x)` with exactly one operand from the base: an
            // address (checked where it is used). Both from the base: escape.
            let seg_args = dfg.inst_args(inst).iter().filter(|&&a| is_seg(a)).count();
            let derived = combines && seg_args == 1;
            if derived {
                continue;
            }
            return Err(RewriteError::BaseEscapes {
                offset: inst.as_u32(),
                instruction: text(),
                how: Escape::IrUse,
            });
        }
    }
    Ok(())
}

/// Whether argument number `k` of a memory instruction is its address.
fn address_position(data: &cranelift_codegen::ir::InstructionData, k: usize) -> bool {
    use cranelift_codegen::ir::InstructionData;
    match data {
        InstructionData::Load { .. } | InstructionData::LoadNoOffset { .. } => k == 0,
        InstructionData::Store { .. } | InstructionData::StoreNoOffset { .. } => k == 1,
        InstructionData::AtomicRmw { .. } | InstructionData::AtomicCas { .. } => k == 0,
        _ => false,
    }
}
