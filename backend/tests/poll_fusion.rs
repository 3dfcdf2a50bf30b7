//! Poll fusion in the `%gs` rewrite, on hand-assembled code: the six-instruction poll
//! Cranelift emits becomes `add` + NOP + `js`, and nothing is fused where flags, registers
//! or memory would tell the difference.

mod common;

use common::{assemble, Asm as Emit};
use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Formatter, Instruction, IntelFormatter, Mnemonic};
use stmjit_backend::gs_rewrite::{rewrite_with, AccessKind, CopyReads, Rewritten, SegmentBase};

/// The instructions of `code`, NOPs left out.
fn texts(code: &[u8]) -> Vec<String> {
    let mut f = IntelFormatter::new();
    Decoder::with_ip(64, code, 0, DecoderOptions::NONE)
        .iter()
        .filter(|i: &Instruction| i.mnemonic() != Mnemonic::Nop)
        .map(|i: Instruction| {
            let mut s = String::new();
            f.format(&i, &mut s);
            s
        })
        .collect()
}

/// The budget word's offset in the segment (any displacement does).
const D: i32 = 0x1020;

/// A back-edge poll as Cranelift emits it, with `between` after the reload, `slow` and
/// `fast` the code at either side of the branch.
fn poll(a: &mut CodeAssembler, between: Emit, fast: Emit, slow: Emit) -> Result<(), IcedError> {
    let mut out = a.create_label();
    a.mov(rax, r15)?;
    a.add(qword_ptr(rax + D), -1)?;
    a.mov(rax, r15)?;
    a.mov(rax, qword_ptr(rax + D))?;
    between(a)?;
    a.test(rax, rax)?;
    a.jl(out)?;
    fast(a)?;
    a.ret()?;
    a.set_label(&mut out)?;
    slow(a)?;
    a.ret()
}

fn fused(
    mode: SegmentBase,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> (Vec<u8>, Rewritten) {
    let code = assemble(body);
    let r = rewrite_with(&code, &[], mode, CopyReads::Count).unwrap();
    assert_eq!(r.code.len(), code.len());
    (code, r)
}

#[test]
fn the_poll_becomes_one_add_one_nop_and_a_sign_branch() {
    let (code, r) = fused(SegmentBase::Gs, |a| {
        poll(
            a,
            |a| a.lea(rcx, qword_ptr(rdx + 2)),
            |a| a.xor(eax, eax),
            |a| a.mov(eax, 1),
        )
    });
    assert_eq!(
        texts(&r.code),
        [
            "add qword ptr gs:[1020h],0FFFFFFFFFFFFFFFFh",
            "lea rcx,[rdx+2]",
            "js short 0000000000000021h",
            "xor eax,eax",
            "ret",
            "mov eax,1",
            "ret"
        ]
    );
    // One NOP: the fast path is three instructions where it was seven (lea included).
    let all = Decoder::with_ip(64, &r.code, 0, DecoderOptions::NONE)
        .iter()
        .take_while(|i| i.mnemonic() != Mnemonic::Js)
        .count();
    assert_eq!(all, 3, "add, nop, lea");
    // The branch keeps its place and target; what follows does not move.
    assert_eq!(code[0x1f..], r.code[0x1f..]);
    assert_eq!(r.stats.polls_fused, 1);
    assert_eq!(r.stats.total_left(), 0);
    assert_eq!(r.stats.rewritten[&AccessKind::ReadModifyWrite], 1);
    assert_eq!(r.accesses.len(), 1);
    assert_eq!((r.accesses[0].offset, r.accesses[0].len), (0, 24));
    // The listing's instruction starts are the new instructions'.
    let starts: Vec<u32> = Decoder::with_ip(64, &r.code, 0, DecoderOptions::NONE)
        .iter()
        .map(|i| i.ip() as u32)
        .collect();
    assert_eq!(r.instruction_starts, starts);
}

#[test]
fn jge_becomes_jns_and_r15_mode_adds_through_r15() {
    let code = assemble(|a| {
        let mut out = a.create_label();
        a.mov(rcx, r15)?;
        a.add(qword_ptr(rcx + D), -1)?;
        a.mov(rdx, r15)?;
        a.mov(rsi, qword_ptr(rdx + D))?;
        a.test(rsi, rsi)?;
        a.jge(out)?;
        a.xor(eax, eax)?;
        a.set_label(&mut out)?;
        a.mov(ecx, 0)?;
        a.mov(edx, 0)?;
        a.mov(esi, 0)?;
        a.ret()
    });
    for (mode, add) in [
        (
            SegmentBase::Gs,
            "add qword ptr gs:[1020h],0FFFFFFFFFFFFFFFFh",
        ),
        (
            SegmentBase::R15,
            "add qword ptr [r15+1020h],0FFFFFFFFFFFFFFFFh",
        ),
    ] {
        let r = rewrite_with(&code, &[], mode, CopyReads::Count).unwrap();
        let t = texts(&r.code);
        assert_eq!(t[0], add, "{mode:?}");
        assert!(t[1].starts_with("jns "), "{t:?}");
        assert_eq!(r.stats.polls_fused, 1);
    }
}

#[test]
fn nothing_is_fused_where_the_difference_shows() {
    let cases: [(&str, Emit, Emit, Emit); 6] = [
        (
            "the reloaded value is read after the branch",
            |_| Ok(()),
            |a| a.mov(qword_ptr(rsi), rax),
            |a| a.xor(eax, eax),
        ),
        (
            "the carry (the add's, not the test's) is read after the branch",
            |_| Ok(()),
            |a| {
                a.mov(eax, 0)?;
                a.adc(ecx, 0)
            },
            |a| a.xor(eax, eax),
        ),
        (
            "overflow read on the slow path",
            |_| Ok(()),
            |a| a.xor(eax, eax),
            |a| {
                a.mov(eax, 0)?;
                a.seto(cl)
            },
        ),
        (
            "code in between writes flags",
            |a| a.add(rcx, 1),
            |a| a.xor(eax, eax),
            |a| a.xor(eax, eax),
        ),
        (
            "code in between touches memory",
            |a| a.mov(qword_ptr(rsi), rcx),
            |a| a.xor(eax, eax),
            |a| a.xor(eax, eax),
        ),
        (
            "code in between reads the reloaded register",
            |a| a.mov(rcx, rax),
            |a| a.xor(eax, eax),
            |a| a.xor(eax, eax),
        ),
    ];
    for (what, between, fast, slow) in cases {
        let (code, r) = fused(SegmentBase::Gs, |a| poll(a, between, fast, slow));
        assert_eq!(r.stats.polls_fused, 0, "{what}");
        // Only the copies' accesses were looked at (both left: no gs form fits).
        assert_eq!(r.code, code, "{what}");
    }
    // A reload of another word, or an add that is not of the reloaded word.
    let (_, r) = fused(SegmentBase::Gs, |a| {
        let mut out = a.create_label();
        a.mov(rax, r15)?;
        a.add(qword_ptr(rax + D), -1)?;
        a.mov(rax, r15)?;
        a.mov(rax, qword_ptr(rax + D + 8))?;
        a.test(rax, rax)?;
        a.jl(out)?;
        a.set_label(&mut out)?;
        a.xor(eax, eax)?;
        a.ret()
    });
    assert_eq!(r.stats.polls_fused, 0);
}
