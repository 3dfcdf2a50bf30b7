//! The `preserve_all` stubs of the write-barrier slow paths
//! (`Jit::define_preserve_all_stub`): a call to one clobbers no register, so the stub
//! itself must save every register it, or the SystemV helper it calls, may write.

use cranelift_module::Module;
use iced_x86::{Decoder, DecoderOptions, InstructionInfoFactory, OpKind, Register};
use std::collections::BTreeSet;
use stmjit_backend::gs_rewrite::SegmentBase;
use stmjit_backend::Jit;

extern "C" fn helper(_ctx: u64) {}

#[test]
fn stub_saves_every_register_a_systemv_call_clobbers() {
    let mut jit = Jit::new(SegmentBase::Gs, &[("helper", helper as *const u8)]).unwrap();
    let sig = jit.signature(&[cranelift_codegen::ir::types::I64], &[]);
    let target = jit
        .module()
        .declare_function("helper", cranelift_module::Linkage::Import, &sig)
        .unwrap();
    let id = jit.define_preserve_all_stub("stub", target, 1).unwrap();
    jit.finalize().unwrap();
    let f = jit.function(id).unwrap();
    assert!(!f.is_trampoline);
    let code = &f.rewrite.code[..f.rewrite.code_end as usize];
    // Registers stored to the frame before the call, and loaded back after it.
    let (mut saved, mut restored) = (BTreeSet::new(), BTreeSet::new());
    let mut after_call = false;
    let mut info = InstructionInfoFactory::new();
    for i in Decoder::with_ip(64, code, 0, DecoderOptions::NONE).iter() {
        for u in info.info(&i).used_registers() {
            assert_ne!(u.register().full_register(), Register::R15, "stub uses r15");
        }
        if i.is_call_near_indirect() {
            after_call = true;
            continue;
        }
        let frame = i.op_count() == 2
            && (0..2).any(|k| i.op_kind(k) == OpKind::Memory)
            && i.memory_base() == Register::RSP;
        if !frame {
            continue;
        }
        if !after_call && i.op0_kind() == OpKind::Memory && i.op1_kind() == OpKind::Register {
            saved.insert(i.op1_register());
        }
        if after_call && i.op1_kind() == OpKind::Memory && i.op0_kind() == OpKind::Register {
            restored.insert(i.op0_register());
        }
    }
    assert!(after_call, "the stub calls its helper");
    use Register::*;
    let gprs = [RAX, RCX, RDX, RSI, RDI, R8, R9, R10, R11];
    let xmms = [
        XMM0, XMM1, XMM2, XMM3, XMM4, XMM5, XMM6, XMM7, XMM8, XMM9, XMM10, XMM11, XMM12, XMM13,
        XMM14, XMM15,
    ];
    for r in gprs.iter().chain(&xmms) {
        assert!(saved.contains(r), "{r:?} not saved: {saved:?}");
        assert!(restored.contains(r), "{r:?} not restored: {restored:?}");
    }
    // Whole XMM registers (16 bytes), not only their low halves.
    let mut xmm_save_bytes = 0;
    for i in Decoder::with_ip(64, code, 0, DecoderOptions::NONE).iter() {
        if i.op_count() == 2 && i.op0_kind() == OpKind::Memory && i.op1_register().is_xmm() {
            xmm_save_bytes += i.memory_size().size();
        }
    }
    assert_eq!(xmm_save_bytes, 16 * 16);
}
