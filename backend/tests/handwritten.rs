//! Exact edge cases of the rewrite on hand-assembled code (iced-x86's
//! `CodeAssembler`): every rewritten form is re-decoded and compared with the
//! expected `gs:` instruction; refusals and left-alone cases are checked.

mod common;

use common::{assemble, Asm};
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter};
use stmjit_backend::gs_rewrite::{
    rewrite, rewrite_with, AccessKind, CopyReads, Escape, LeftReason, RewriteError, Rewritten,
    SegmentBase,
};

fn decode(code: &[u8]) -> Vec<Instruction> {
    Decoder::with_ip(64, code, 0, DecoderOptions::NONE)
        .iter()
        .collect()
}

fn text(i: &Instruction) -> String {
    let mut s = String::new();
    IntelFormatter::new().format(i, &mut s);
    s
}

/// `mov COPY, r15; <access>; ret`: the access must be rewritten to `expected`
/// (Intel syntax), keep its length with NOP padding, and be of `kind`.
fn rewritten(copy: AsmRegister64, access: Asm, expected: &str, kind: AccessKind) -> Rewritten {
    let code = assemble(|a| {
        a.mov(copy, r15)?;
        access(a)?;
        a.ret()
    });
    let before = decode(&code);
    let r = rewrite(&code, &[], SegmentBase::Gs).unwrap_or_else(|e| panic!("{expected}: {e}"));
    let acc = &r.accesses;
    assert_eq!(acc.len(), 1, "{expected}: {acc:?}");
    let a = &acc[0];
    let orig = &before[1];
    assert_eq!(a.offset as u64, orig.ip());
    assert_eq!(
        a.left,
        None,
        "{expected}: left {:?} ({})",
        a.left,
        text(orig)
    );
    assert_eq!(a.kind, kind, "{expected}");
    let after = decode(&r.code);
    let new = after.iter().find(|i| i.ip() == orig.ip()).unwrap();
    assert_eq!(text(new), expected, "from `{}`", text(orig));
    assert_eq!(new.segment_prefix(), iced_x86::Register::GS);
    assert_eq!(new.len() + a.nop_bytes as usize, orig.len(), "{expected}");
    // Everything after the padding is the original `ret`.
    assert_eq!(after.last().unwrap().ip(), before.last().unwrap().ip());
    assert_eq!(r.code.len(), code.len());
    // In r15 mode nothing changes, but the access is still found.
    let kept = rewrite(&code, &[], SegmentBase::R15).unwrap();
    assert_eq!(kept.code, code);
    assert_eq!(kept.accesses[0].left, Some(LeftReason::R15Mode));
    r
}

#[test]
fn index_becomes_base_and_displacements_are_kept() {
    use AccessKind::*;
    rewritten(
        r9,
        |a| a.mov(byte_ptr(r9 + r10), 1u32),
        "mov byte ptr gs:[r10],1",
        Store,
    );
    rewritten(
        r9,
        |a| a.mov(byte_ptr(r9 + rdi + 2), 1u32),
        "mov byte ptr gs:[rdi+2],1",
        Store,
    );
    rewritten(
        r9,
        |a| a.mov(rax, qword_ptr(r9 + rdi + 0x1000)),
        "mov rax,gs:[rdi+1000h]",
        Load,
    );
    rewritten(
        r9,
        |a| a.mov(eax, dword_ptr(r9 + rdi - 8)),
        "mov eax,gs:[rdi-8]",
        Load,
    );
    rewritten(
        r9,
        |a| a.mov(eax, dword_ptr(r9 + rdi - 0x12345)),
        "mov eax,gs:[rdi-12345h]",
        Load,
    );
    // The copy as the index (scale 1): the other register stays as base.
    rewritten(
        r9,
        |a| a.mov(al, byte_ptr(rdi + r9 + 8)),
        "mov al,gs:[rdi+8]",
        Load,
    );
    // r15 itself as a base (Cranelift never does it, but it is a plain access).
    let code = assemble(|a| {
        a.mov(byte_ptr(r15 + rdi + 1), 1u32)?;
        a.ret()
    });
    let r = rewrite(&code, &[], SegmentBase::Gs).unwrap();
    assert_eq!(text(&decode(&r.code)[0]), "mov byte ptr gs:[rdi+1],1");
}

#[test]
fn rex_prefixes_and_special_bases() {
    use AccessKind::*;
    // sil needs a REX prefix even without extended registers.
    rewritten(
        r9,
        |a| a.mov(sil, byte_ptr(r9 + rdi)),
        "mov sil,gs:[rdi]",
        Load,
    );
    rewritten(
        r9,
        |a| a.mov(r11b, byte_ptr(r9 + rdi + 4)),
        "mov r11b,gs:[rdi+4]",
        Load,
    );
    rewritten(
        r9,
        |a| a.mov(rdi, qword_ptr(r9 + r14 + 16)),
        "mov rdi,gs:[r14+10h]",
        Load,
    );
    // Copy in r12 (needs a SIB byte) and r13 (needs a displacement): shrink.
    let r = rewritten(
        r12,
        |a| a.mov(byte_ptr(r12 + rdi), 1u32),
        "mov byte ptr gs:[rdi],1",
        Store,
    );
    assert_eq!(r.accesses[0].nop_bytes, 1);
    let r = rewritten(
        r13,
        |a| a.mov(byte_ptr(r13 + rdi), 1u32),
        "mov byte ptr gs:[rdi],1",
        Store,
    );
    assert_eq!(r.accesses[0].nop_bytes, 2);
    // r13 as the new base with a displacement fits; rbp likewise.
    rewritten(
        r9,
        |a| a.mov(al, byte_ptr(r9 + r13 + 8)),
        "mov al,gs:[r13+8]",
        Load,
    );
    rewritten(
        rax,
        |a| a.mov(byte_ptr(rax + rbp + 8), 1u32),
        "mov byte ptr gs:[rbp+8],1",
        Store,
    );
}

#[test]
fn barrier_shapes_and_store_widths() {
    use AccessKind::*;
    rewritten(
        r10,
        |a| a.movzx(r10, byte_ptr(r10 + rdi + 2)),
        "movzx r10,byte ptr gs:[rdi+2]",
        Load,
    );
    rewritten(
        r9,
        |a| a.test(byte_ptr(r9 + rdi + 2), 1u32),
        "test byte ptr gs:[rdi+2],1",
        Compare,
    );
    rewritten(
        r9,
        |a| a.cmp(qword_ptr(r9 + rdi + 8), rax),
        "cmp gs:[rdi+8],rax",
        Compare,
    );
    rewritten(
        r9,
        |a| a.cmp(byte_ptr(r9 + rdi + 2), 0u32),
        "cmp byte ptr gs:[rdi+2],0",
        Compare,
    );
    rewritten(
        r9,
        |a| a.mov(qword_ptr(r9 + rdi + 8), rax),
        "mov gs:[rdi+8],rax",
        Store,
    );
    rewritten(
        r9,
        |a| a.mov(dword_ptr(r9 + rdi + 8), eax),
        "mov gs:[rdi+8],eax",
        Store,
    );
    rewritten(
        r9,
        |a| a.mov(byte_ptr(r9 + rdi + 8), al),
        "mov gs:[rdi+8],al",
        Store,
    );
    rewritten(
        r9,
        |a| a.mov(qword_ptr(r9 + rdi + 8), -5),
        "mov qword ptr gs:[rdi+8],0FFFFFFFFFFFFFFFBh",
        Store,
    );
    rewritten(
        r9,
        |a| a.add(qword_ptr(r9 + rdi), 1),
        "add qword ptr gs:[rdi],1",
        ReadModifyWrite,
    );
    rewritten(
        r9,
        |a| a.lock().cmpxchg(qword_ptr(r9 + rdi), rcx),
        "lock cmpxchg gs:[rdi],rcx",
        ReadModifyWrite,
    );
    rewritten(
        r9,
        |a| a.movsd_2(xmm0, qword_ptr(r9 + rdi + 8)),
        "movsd xmm0,gs:[rdi+8]",
        Load,
    );
    rewritten(
        r9,
        |a| a.vmovdqu(ymm1, ymmword_ptr(r9 + rsi)),
        "vmovdqu ymm1,gs:[rsi]",
        Load,
    );
}

#[test]
fn scaled_index_is_rewritten_only_when_it_fits() {
    // 32-bit load with disp32: `gs:[rdi*8+disp32]` is exactly as long.
    rewritten(
        r9,
        |a| a.mov(eax, dword_ptr(r9 + rdi * 8 + 0x1000)),
        "mov eax,gs:[rdi*8+1000h]",
        AccessKind::Load,
    );
    for (body, why) in [
        (
            (|a| a.mov(rax, qword_ptr(r9 + rdi * 8))) as Asm,
            "scale 8, no disp",
        ),
        (|a| a.mov(rax, qword_ptr(r9 + 0x40)), "no index"),
        (|a| a.mov(byte_ptr(r9), 1u32), "base only"),
        (
            |a| a.mov(byte_ptr(r9 + r12 + 4), 1u32),
            "r12 as the new base needs a SIB",
        ),
        (
            |a| a.mov(al, byte_ptr(r9 + r13)),
            "r13 as the new base needs a disp8",
        ),
    ] {
        let code = assemble(|a| {
            a.mov(r9, r15)?;
            body(a)?;
            a.ret()
        });
        let r = rewrite(&code, &[], SegmentBase::Gs).unwrap();
        assert_eq!(r.code, code, "{why}: bytes unchanged");
        assert_eq!(r.accesses.len(), 1, "{why}");
        assert_eq!(r.accesses[0].left, Some(LeftReason::WouldGrow), "{why}");
        assert_eq!(r.stats.left[&LeftReason::WouldGrow], 1);
    }
}

fn refused(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> RewriteError {
    let code = assemble(|a| {
        body(a)?;
        a.ret()
    });
    rewrite(&code, &[], SegmentBase::Gs).expect_err("expected a refusal")
}

fn escape(e: RewriteError) -> Escape {
    match e {
        RewriteError::BaseEscapes { how, .. } => how,
        other => panic!("expected an escape, got {other}"),
    }
}

#[test]
fn escapes_are_refused() {
    let e = refused(|a| {
        a.mov(r9, r15)?;
        a.lea(rax, qword_ptr(r9 + rdi))
    });
    assert!(e.to_string().contains("lea rax,[r9+rdi]"), "{e}");
    assert_eq!(escape(e), Escape::NonAccessingAddress);
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.add(rax, r9)
        })),
        Escape::ValueUse
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.mov(qword_ptr(rsp + 8), r9)
        })),
        Escape::StoredToMemory
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.push(r9)
        })),
        Escape::StoredToMemory
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.cmp(r9, rdi)
        })),
        Escape::ValueUse
    );
    // A copy moved, then misused through the new register.
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.mov(rax, r9)?;
            a.shr(rax, 4)
        })),
        Escape::ValueUse
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.mov(byte_ptr(rdi + r9 * 2), 1u32)
        })),
        Escape::ScaledOrDoubled
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.mov(rax, r15)?;
            a.mov(byte_ptr(rax + r9), 1u32)
        })),
        Escape::ScaledOrDoubled
    );
    // r15 read other than by a copy.
    assert_eq!(escape(refused(|a| a.mov(eax, r15d))), Escape::ValueUse);
    assert_eq!(
        escape(refused(|a| a.lea(rax, qword_ptr(r15 + 8)))),
        Escape::NonAccessingAddress
    );
    // Implicit use: rdi of `stosb` holds the base.
    assert_eq!(
        escape(refused(|a| {
            a.mov(rdi, r15)?;
            a.stosb()
        })),
        Escape::ValueUse
    );
}

#[test]
fn other_refusals() {
    assert!(matches!(
        refused(|a| a.mov(r15, rax)),
        RewriteError::PinnedRegWritten { .. }
    ));
    assert!(matches!(
        refused(|a| a.add(r15, 8)),
        RewriteError::PinnedRegWritten { .. }
    ));
    // 32-bit addressing through a copy.
    let e = refused(|a| {
        a.mov(r9, r15)?;
        a.mov(al, byte_ptr(r9d + edi))
    });
    assert!(
        matches!(
            e,
            RewriteError::Unsupported {
                why: "32-bit address",
                ..
            }
        ),
        "{e}"
    );
    // An existing segment prefix: mov r9,r15; mov al,fs:[r9+rdi]; ret.
    let code = [0x4d, 0x89, 0xf9, 0x64, 0x41, 0x8a, 0x04, 0x39, 0xc3];
    assert!(matches!(
        rewrite(&code, &[], SegmentBase::Gs),
        Err(RewriteError::Unsupported {
            why: "segment prefix",
            ..
        })
    ));
    // Undecodable bytes (`push es` is invalid in 64-bit mode); a branch into the middle of an instruction.
    assert!(matches!(
        rewrite(&[0x06, 0xc3], &[], SegmentBase::Gs),
        Err(RewriteError::Undecodable { .. })
    ));
    let code = [0xeb, 0x01, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3];
    assert!(matches!(
        rewrite(&code, &[], SegmentBase::Gs),
        Err(RewriteError::BadBranchTarget { target: 3, .. })
    ));
}

/// Rewrite `body` (no `ret` appended) and return the result.
fn run(body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>) -> Rewritten {
    rewrite(&assemble(body), &[], SegmentBase::Gs).unwrap()
}

#[test]
fn copy_tracking_moves_kills_and_paths() {
    // A regalloc move is followed.
    let r = run(|a| {
        a.mov(r9, r15)?;
        a.mov(rax, r9)?;
        a.mov(byte_ptr(rax + rdi), 1u32)?;
        a.ret()
    });
    assert_eq!((r.stats.copy_moves, r.stats.total_rewritten()), (1, 1));
    // An overwritten copy is no longer the base: nothing to rewrite.
    let r = run(|a| {
        a.mov(r9, r15)?;
        a.mov(r9, rsi)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.ret()
    });
    assert!(r.accesses.is_empty());
    // A copy on one path only: left in r15 form.
    let r = run(|a| {
        let mut join = a.create_label();
        a.mov(r9, r15)?;
        a.test(rdi, rdi)?;
        a.je(join)?;
        a.mov(r9, rsi)?;
        a.set_label(&mut join)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.ret()
    });
    assert_eq!(r.accesses[0].left, Some(LeftReason::NotProvable));
    // The same on a loop back-edge (the use comes before the kill).
    let r = run(|a| {
        let mut top = a.create_label();
        a.mov(r9, r15)?;
        a.set_label(&mut top)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.mov(r9, rsi)?;
        a.dec(rcx)?;
        a.jne(top)?;
        a.ret()
    });
    assert_eq!(r.accesses[0].left, Some(LeftReason::NotProvable));
    // A loop that keeps the copy: rewritten.
    let r = run(|a| {
        let mut top = a.create_label();
        a.mov(r9, r15)?;
        a.set_label(&mut top)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.add(rdi, 16)?;
        a.dec(rcx)?;
        a.jne(top)?;
        a.ret()
    });
    assert_eq!(r.accesses[0].left, None);
    // Calls: a caller-saved copy dies; a callee-saved one becomes stale (the
    // call may have moved the thread to another segment) and may not be used
    // as an address; a fresh copy after the call is rewritten.
    let e = refused(|a| {
        let mut f = a.create_label();
        a.mov(rbx, r15)?;
        a.call(f)?;
        a.mov(byte_ptr(rbx + rdi), 1u32)?;
        a.ret()?;
        a.set_label(&mut f)?;
        a.ret()
    });
    assert_eq!(escape(e), Escape::AcrossCall);
    let r = run(|a| {
        let mut f = a.create_label();
        a.mov(r9, r15)?;
        a.mov(rbx, r15)?;
        a.call(f)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.mov(rbx, r15)?;
        a.mov(byte_ptr(rbx + rdi), 1u32)?;
        a.ret()?;
        a.set_label(&mut f)?;
        a.ret()
    });
    assert_eq!(r.accesses.len(), 1);
    assert_eq!(
        text(
            &decode(&r.code)
                .into_iter()
                .find(|i| i.ip() == r.accesses[0].offset as u64)
                .unwrap()
        ),
        "mov byte ptr gs:[rdi],1"
    );
    // A stale copy moved to another register is still stale.
    let e = refused(|a| {
        let mut f = a.create_label();
        a.mov(rbx, r15)?;
        a.call(f)?;
        a.mov(r12, rbx)?;
        a.mov(byte_ptr(r12 + rdi), 1u32)?;
        a.ret()?;
        a.set_label(&mut f)?;
        a.ret()
    });
    assert_eq!(escape(e), Escape::AcrossCall);
    // Multi-byte NOPs using the copy's register are not uses.
    let r = run(|a| {
        a.mov(rax, r15)?;
        a.nop_1(dword_ptr(rax + rax))?;
        a.mov(byte_ptr(rax + rdi), 1u32)?;
        a.ret()
    });
    assert_eq!(r.stats.total_rewritten(), 1);
}

#[test]
fn data_after_indirect_jumps_and_trap_stubs_is_skipped() {
    // A jump over code that is the target of an earlier branch (the shape of
    // Cranelift's float-to-int sequences): decoding goes on after the `jmp`.
    let r = run(|a| {
        let mut inner = a.create_label();
        let mut out = a.create_label();
        a.mov(r9, r15)?;
        a.test(rdi, rdi)?;
        a.jne(inner)?;
        a.jmp(out)?;
        a.set_label(&mut inner)?;
        a.mov(byte_ptr(r9 + rdi), 1u32)?;
        a.set_label(&mut out)?;
        a.ret()
    });
    assert_eq!(r.accesses.len(), 1);
    assert_eq!(r.accesses[0].left, None);
    // mov r9,r15 / jmp rax / 4 bytes of table / block: mov byte [r9+rdi],1 / ret
    let mut code = vec![0x4d, 0x89, 0xf9, 0xff, 0xe0, 0x0f, 0xff, 0xff, 0x48];
    let block = code.len() as u32;
    code.extend([0x41, 0xc6, 0x04, 0x39, 0x01, 0xc3]);
    let r = rewrite(&code, &[block], SegmentBase::Gs).unwrap();
    assert_eq!(r.code[5..9], code[5..9], "table untouched");
    assert_eq!(r.accesses[0].offset, block);
    assert_eq!(r.accesses[0].left, None);
    assert!(!r.instruction_starts.contains(&5));
    // test rdi,rdi / je stub / ret / stub: ud2 / constants that do not decode
    let code = [
        0x48, 0x85, 0xff, 0x0f, 0x84, 0x01, 0x00, 0x00, 0x00, 0xc3, 0x0f, 0x0b, 0x0f, 0xff, 0xff,
        0xff,
    ];
    let r = rewrite(&code, &[], SegmentBase::Gs).unwrap();
    assert_eq!(r.code_end, 10);
    assert_eq!(r.code, code);
}

#[test]
fn count_mode_accepts_copy_reads_and_leaves_doubtful_addresses() {
    use stmjit_backend::gs_rewrite::{rewrite_with, CopyReads};
    // Regalloc artifacts seen in real output: a dead spill of the copy and a
    // zeroing `xor` whose undefined input was given the copy's register.
    let code = assemble(|a| {
        a.mov(rdi, r15)?;
        a.mov(rax, qword_ptr(rdi + rax + 0x100))?;
        a.mov(r8, rdi)?;
        a.mov(qword_ptr(rsp + 8), rdi)?;
        a.xor(rdi, r8)?;
        a.ret()
    });
    assert!(rewrite(&code, &[], SegmentBase::Gs).is_err());
    let r = rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    assert_eq!(r.stats.copy_value_reads, 2, "{}", r.stats);
    assert_eq!(r.stats.total_rewritten(), 1);
    // Addresses the data-flow finds doubtful (`lea` of a copy, a scaled copy):
    // refused in unchecked code, left unchanged after the IR check (which
    // proved them harmless; r15 is right).
    for body in [
        (|a| {
            a.mov(r9, r15)?;
            a.lea(rax, qword_ptr(r9 + rdi))?;
            a.ret()
        }) as Asm,
        |a| {
            a.mov(r9, r15)?;
            a.mov(byte_ptr(rdi + r9 * 4), 1u32)?;
            a.ret()
        },
    ] {
        let code = assemble(body);
        assert!(matches!(
            rewrite(&code, &[], SegmentBase::Gs),
            Err(RewriteError::BaseEscapes { .. })
        ));
        let r = rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
        assert_eq!(r.code, code);
        assert_eq!(r.stats.total_rewritten(), 0);
    }
    // r15 itself read as a value stays refused.
    let code = assemble(|a| {
        a.mov(eax, r15d)?;
        a.ret()
    });
    assert!(matches!(
        rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count),
        Err(RewriteError::BaseEscapes { .. })
    ));
}

#[test]
fn trampolines_may_only_touch_their_frame() {
    use stmjit_backend::gs_rewrite::verify_trampoline;
    let ok = assemble(|a| {
        a.push(rbp)?;
        a.mov(rbp, rsp)?;
        a.mov(qword_ptr(rsp + 8), rbx)?;
        a.mov(rax, r15)?;
        a.mov(r15, rdi)?;
        a.call(rsi)?;
        a.mov(r15, rax)?;
        a.pop(rbp)?;
        a.ret()
    });
    verify_trampoline(&ok, &[]).unwrap();
    let bad = assemble(|a| {
        a.mov(r15, rdi)?;
        a.mov(rax, qword_ptr(r15 + 8))?;
        a.ret()
    });
    assert!(matches!(
        verify_trampoline(&bad, &[]),
        Err(RewriteError::Unsupported { .. })
    ));
}

#[test]
fn preserve_all_stubs_touch_only_their_frame_and_never_r15() {
    use stmjit_backend::gs_rewrite::verify_stub;
    let ok = assemble(|a| {
        a.push(rbp)?;
        a.mov(rbp, rsp)?;
        a.sub(rsp, 0x20)?;
        a.mov(qword_ptr(rsp), rax)?;
        a.movdqu(xmmword_ptr(rsp + 0x10), xmm0)?;
        a.mov(rax, 0x1234_5678_9abc_i64)?;
        a.call(rax)?;
        a.mov(rax, qword_ptr(rsp))?;
        a.movdqu(xmm0, xmmword_ptr(rsp + 0x10))?;
        a.add(rsp, 0x20)?;
        a.pop(rbp)?;
        a.ret()
    });
    verify_stub(&ok, &[]).unwrap();
    // What an entry trampoline may do, a stub may not: read or write r15.
    let reads = assemble(|a| {
        a.mov(rsi, r15)?;
        a.call(rax)?;
        a.ret()
    });
    assert!(matches!(
        verify_stub(&reads, &[]),
        Err(RewriteError::Unsupported { .. })
    ));
    let writes = assemble(|a| {
        a.mov(r15, rdi)?;
        a.call(rax)?;
        a.ret()
    });
    assert!(matches!(
        verify_stub(&writes, &[]),
        Err(RewriteError::PinnedRegWritten { .. })
    ));
    // The trampolines' refusal holds too: memory other than the frame.
    let memory = assemble(|a| {
        a.mov(qword_ptr(rdi + 0x48), rax)?;
        a.ret()
    });
    assert!(matches!(
        verify_stub(&memory, &[]),
        Err(RewriteError::Unsupported { .. })
    ));
}

#[test]
fn blocks_without_modeled_predecessors_assume_no_copies() {
    // 0: mov r9,r15 / jmp J / B: mov r9,rsi / jmp J / J: mov byte [r9+rdi],1 / ret
    // B is a block (e.g. a landing pad) that no branch reaches: it may still
    // run, so J cannot assume r9 is a copy.
    let mut code = vec![0x4d, 0x89, 0xf9, 0xeb, 0x05];
    let b = code.len() as u32;
    code.extend([0x49, 0x89, 0xf1, 0xeb, 0x00]);
    let j = code.len() as u32;
    code.extend([0x41, 0xc6, 0x04, 0x39, 0x01, 0xc3]);
    let r = rewrite(&code, &[b, j], SegmentBase::Gs).unwrap();
    assert_eq!(r.accesses[0].left, Some(LeftReason::NotProvable));
    // Without B, J is only reached with r9 = copy: rewritten.
    let code = [
        0x4d, 0x89, 0xf9, 0xeb, 0x00, 0x41, 0xc6, 0x04, 0x39, 0x01, 0xc3,
    ];
    let r = rewrite(&code, &[5], SegmentBase::Gs).unwrap();
    assert_eq!(r.accesses[0].left, None);
}

/// In code whose IR was checked (`CopyReads::Count`), a register that is a copy
/// on some paths only, next to a proven copy, is the other operand of
/// `iadd(base, x)`: rewritten with the proven one as the segment base (the
/// random programs and the barrier benchmark hit this shape). Unchecked code is
/// refused, as is a stale copy there.
#[test]
fn ir_checked_code_trusts_the_proven_copy() {
    let body = |a: &mut CodeAssembler| {
        let mut value = a.create_label();
        let mut join = a.create_label();
        a.mov(rax, r15)?;
        a.test(rdi, rdi)?;
        a.je(value)?;
        a.mov(rdx, r15)?;
        a.jmp(join)?;
        a.set_label(&mut value)?;
        a.mov(rdx, rsi)?;
        a.set_label(&mut join)?;
        a.mov(byte_ptr(rax + rdx), 1u32)?;
        a.ret()
    };
    let code = assemble(body);
    assert!(matches!(
        rewrite(&code, &[], SegmentBase::Gs),
        Err(RewriteError::BaseEscapes {
            how: Escape::ScaledOrDoubled,
            ..
        })
    ));
    let r = rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    assert_eq!(r.stats.total_rewritten(), 1, "{}", r.stats);
    let last = decode(&r.code)
        .into_iter()
        .find(|i| i.ip() == r.accesses[0].offset as u64)
        .unwrap();
    assert_eq!(text(&last), "mov byte ptr gs:[rdx],1");
    // A stale copy used as an address: refused unless the IR was checked.
    let stale = assemble(|a| {
        let mut f = a.create_label();
        a.mov(rbx, r15)?;
        a.call(f)?;
        a.mov(byte_ptr(rbx + rdi), 1u32)?;
        a.ret()?;
        a.set_label(&mut f)?;
        a.ret()
    });
    assert!(rewrite(&stale, &[], SegmentBase::Gs).is_err());
    let r = rewrite_with(&stale, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    assert_eq!(r.stats.total_rewritten(), 0, "{}", r.stats);
    // A `lea` of a copy and a scaled copy: left as they are, not refused, and
    // the bytes are unchanged.
    let doubtful = assemble(|a| {
        a.mov(rax, r15)?;
        a.lea(rcx, qword_ptr(rax + rdi))?;
        a.mov(byte_ptr(rdi + rax * 2), 1u32)?;
        a.ret()
    });
    assert!(rewrite(&doubtful, &[], SegmentBase::Gs).is_err());
    let r = rewrite_with(&doubtful, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    assert_eq!(r.code, doubtful);
    assert_eq!(r.stats.total_left(), 1, "{}", r.stats);
}

/// A copy that is the address of an access and also read as a value by the same
/// instruction (explicitly, or implicitly as `cmpxchg`'s comparand in rax) escapes: the
/// pass asks iced again about exactly these instructions (issue 16: it no longer asks
/// about every instruction with its address removed), and must still see the value read.
#[test]
fn a_copy_both_address_and_value_of_one_instruction_escapes() {
    assert_eq!(
        escape(refused(|a| {
            a.mov(rax, r15)?;
            a.lock().cmpxchg(qword_ptr(rax + rdi), rcx)
        })),
        Escape::ValueUse
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.add(r9, qword_ptr(r9 + 8))
        })),
        Escape::ValueUse
    );
    assert_eq!(
        escape(refused(|a| {
            a.mov(r9, r15)?;
            a.mov(qword_ptr(r9 + rdi), r9)
        })),
        Escape::StoredToMemory
    );
    // Where the IR was checked such reads are counted, and the access still rewritten.
    let code = assemble(|a| {
        a.mov(r9, r15)?;
        a.mov(qword_ptr(r9 + rdi), r9)?;
        a.mov(rax, qword_ptr(r9 + rdi))?;
        a.ret()
    });
    let r = rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    assert_eq!(r.stats.copy_value_reads, 1);
    assert_eq!(r.stats.total_rewritten(), 2);
}
