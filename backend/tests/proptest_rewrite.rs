//! Property: random sequences of supported segment accesses round-trip. The
//! rewrite keeps every instruction boundary, finds every access, and each
//! rewritten instruction reads exactly like the original with the copy of
//! r15 removed from the address and a `gs:` prefix added; accesses it leaves
//! alone are exactly those whose `gs:` form would be longer.

use iced_x86::code_asm::*;
use iced_x86::{Decoder, DecoderOptions, Encoder, Formatter, Instruction, IntelFormatter};
use proptest::prelude::*;
use std::collections::BTreeSet;
use stmjit_backend::gs_rewrite::{gs_form, rewrite, LeftReason, SegmentBase};

/// Every general register except rsp (never an index) and r15 (the base).
const REGS: [AsmRegister64; 14] = [
    rax, rcx, rdx, rbx, rbp, rsi, rdi, r8, r9, r10, r11, r12, r13, r14,
];
const REGS32: [AsmRegister32; 14] = [
    eax, ecx, edx, ebx, ebp, esi, edi, r8d, r9d, r10d, r11d, r12d, r13d, r14d,
];
const REGS16: [AsmRegister16; 14] = [
    ax, cx, dx, bx, bp, si, di, r8w, r9w, r10w, r11w, r12w, r13w, r14w,
];

#[derive(Clone, Debug)]
struct Access {
    copy: usize,
    other: Option<usize>,
    copy_is_index: bool,
    scale: u32,
    disp: i32,
    op: u8,
    src: usize,
}

fn access() -> impl Strategy<Value = Access> {
    let disp = prop_oneof![Just(0i32), -128i32..128, any::<i32>().prop_map(|d| d / 4)];
    (
        0..14usize,
        proptest::option::weighted(0.85, 0..14usize),
        any::<bool>(),
        prop_oneof![Just(1u32), Just(1), Just(2), Just(4), Just(8)],
        disp,
        0..8u8,
        0..14usize,
    )
        .prop_map(|(copy, other, copy_is_index, scale, disp, op, src)| {
            let other = other.filter(|&o| o != copy);
            let src = if src == copy { (src + 1) % 14 } else { src };
            Access {
                copy,
                other,
                copy_is_index: copy_is_index && other.is_some(),
                scale,
                disp,
                op,
                src,
            }
        })
}

fn emit(a: &mut CodeAssembler, x: &Access) -> Result<(), IcedError> {
    let c = REGS[x.copy];
    a.mov(c, r15)?;
    let m = match (x.other, x.copy_is_index) {
        (Some(o), true) => REGS[o] + c + x.disp,
        (Some(o), false) => c + REGS[o] * x.scale + x.disp,
        (None, _) => c + x.disp,
    };
    let (s64, s32, s16) = (REGS[x.src], REGS32[x.src], REGS16[x.src]);
    let kill = REGS32[x.copy];
    match x.op {
        0 => a.mov(byte_ptr(m), 1u32),
        1 => a.mov(qword_ptr(m), s64),
        2 => a.mov(s32, dword_ptr(m)),
        3 => a.movzx(s64, byte_ptr(m)),
        4 => a.test(byte_ptr(m), 1u32),
        5 => a.cmp(qword_ptr(m), s64),
        6 => a.add(qword_ptr(m), 1),
        _ => a.mov(word_ptr(m), s16),
    }?;
    // Kill the copy so that later accesses may use the register freely.
    a.xor(kill, kill)
}

fn text(i: &Instruction) -> String {
    let mut s = String::new();
    IntelFormatter::new().format(i, &mut s);
    s
}

/// The original's text with the copy register removed from the address.
fn without_copy(orig: &str, copy: &str) -> String {
    let (open, close) = (orig.find('[').unwrap(), orig.find(']').unwrap());
    let inner = &orig[open + 1..close];
    let mut terms: Vec<String> = Vec::new();
    for chr in inner.chars() {
        if chr == '+' || chr == '-' || terms.is_empty() {
            terms.push(String::new());
        }
        terms.last_mut().unwrap().push(chr);
    }
    let kept: Vec<&String> = terms
        .iter()
        .filter(|t| t.trim_start_matches('+') != copy)
        .collect();
    let joined: String = kept.iter().map(|s| s.as_str()).collect();
    format!(
        "{}[{}]{}",
        &orig[..open],
        joined.trim_start_matches('+'),
        &orig[close + 1..]
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn random_accesses_round_trip(accesses in proptest::collection::vec(access(), 1..12)) {
        let mut a = CodeAssembler::new(64).unwrap();
        for x in &accesses {
            emit(&mut a, x).unwrap();
        }
        a.ret().unwrap();
        let code = a.assemble(0).unwrap();
        let before: Vec<Instruction> = Decoder::with_ip(64, &code, 0, DecoderOptions::NONE).iter().collect();
        let r = rewrite(&code, &[], SegmentBase::Gs).unwrap();
        prop_assert_eq!(r.code.len(), code.len());
        prop_assert_eq!(r.accesses.len(), accesses.len());
        let after: Vec<Instruction> = Decoder::with_ip(64, &r.code, 0, DecoderOptions::NONE).iter().collect();
        let after_starts: BTreeSet<u64> = after.iter().map(|i| i.ip()).collect();
        for i in &before {
            prop_assert!(after_starts.contains(&i.ip()), "boundary {:#x} lost", i.ip());
        }
        // Each access is the instruction after its `mov copy, r15` (then `xor`).
        for (k, (x, acc)) in accesses.iter().zip(&r.accesses).enumerate() {
            let orig = &before[3 * k + 1];
            prop_assert_eq!(acc.offset as u64, orig.ip());
            let range = orig.ip() as usize..orig.next_ip() as usize;
            match acc.left {
                None => {
                    let new = after.iter().find(|i| i.ip() == orig.ip()).unwrap();
                    prop_assert_eq!(new.segment_prefix(), iced_x86::Register::GS);
                    prop_assert_eq!(new.code(), orig.code());
                    let copy = format!("{:?}", before[3 * k].op0_register()).to_lowercase();
                    let expected = without_copy(&text(orig), &copy);
                    prop_assert_eq!(text(new).replace("gs:[", "["), expected);
                    prop_assert!(new.len() <= orig.len());
                }
                Some(why) => {
                    prop_assert_eq!(why, LeftReason::WouldGrow);
                    prop_assert_eq!(&r.code[range.clone()], &code[range]);
                    let n = gs_form(orig, x.copy_is_index);
                    let len = Encoder::new(64).encode(&n, orig.ip()).unwrap();
                    prop_assert!(len > orig.len(), "left although {} fits", text(&n));
                }
            }
        }
        let kept = rewrite(&code, &[], SegmentBase::R15).unwrap();
        prop_assert_eq!(&kept.code, &code);
        prop_assert!(kept.accesses.iter().all(|a| a.left == Some(LeftReason::R15Mode)));
    }
}
