//! The IR half of the escape check: before a JIT function is compiled, its
//! Cranelift IR must use the segment base (`get_pinned_reg`) only to form the
//! address of loads, stores and atomics, and must never set it.
//!
//! The machine-code pass ([`crate::gs_rewrite`]) cannot see every escape: the
//! base passed to a call or returned is just `mov rdi, r15` / `mov rax, r15`
//! there. On the IR the uses of a value are explicit, so the check is exact.

use crate::gs_rewrite::{Escape, RewriteError};
use std::collections::BTreeSet;

/// Check the Cranelift IR of a JIT function before compiling it: the values
/// of `get_pinned_reg` (and addresses `iadd(base, x)` made from them, where
/// `x` is not itself derived from the base) may only be used as the
/// *address* of loads, stores and atomics, and `set_pinned_reg` is forbidden.
///
/// This catches escapes the machine code cannot show, such as the segment
/// base passed to a call or returned by a plain register move. The error
/// offset is the IR instruction number.
pub fn check_ir(func: &cranelift_codegen::ir::Function) -> Result<(), RewriteError> {
    use cranelift_codegen::ir::{InstructionData, Opcode, Value};
    let dfg = &func.dfg;
    let insts: Vec<_> = func
        .layout
        .blocks()
        .flat_map(|b| func.layout.block_insts(b))
        .collect();
    // Values that are the segment base or an address inside the segment.
    let mut seg: BTreeSet<Value> = BTreeSet::new();
    let is_seg = |seg: &BTreeSet<Value>, v: Value| seg.contains(&dfg.resolve_aliases(v));
    loop {
        let before = seg.len();
        for &inst in &insts {
            let data = &dfg.insts[inst];
            let derived = match data.opcode() {
                Opcode::GetPinnedReg => true,
                Opcode::Iadd => {
                    let a = dfg.inst_args(inst);
                    is_seg(&seg, a[0]) != is_seg(&seg, a[1])
                }
                _ => false,
            };
            if derived {
                seg.extend(dfg.inst_results(inst).iter().copied());
            }
        }
        if seg.len() == before {
            break;
        }
    }
    for &inst in &insts {
        let data = &dfg.insts[inst];
        let text = || dfg.display_inst(inst).to_string();
        if data.opcode() == Opcode::SetPinnedReg {
            return Err(RewriteError::PinnedRegWritten {
                offset: inst.as_u32(),
                instruction: text(),
            });
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
            if !is_seg(&seg, v) {
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
            let seg_args = dfg
                .inst_args(inst)
                .iter()
                .filter(|&&a| is_seg(&seg, a))
                .count();
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
