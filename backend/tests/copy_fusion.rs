//! Copy fusion in the `%gs` rewrite, on hand-assembled code: a load through the copy of r15
//! just before it, into the copy's register, whose `gs:` form is longer than the load,
//! becomes one `gs:` load in the pair's bytes; nothing is fused where a register, a branch
//! target or the mode would tell the difference.

mod common;

use common::{assemble, texts};
use iced_x86::code_asm::*;
use stmjit_backend::gs_rewrite::{rewrite_with, CopyReads, Rewritten, SegmentBase};

/// The read version's offset in the segment (any displacement below 2^31 does).
const D: i32 = 0x1000;

fn rewritten(
    mode: SegmentBase,
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
) -> (Vec<u8>, Rewritten) {
    let code = assemble(body);
    let r = rewrite_with(&code, &[], mode, CopyReads::Count).unwrap();
    assert_eq!(r.code.len(), code.len());
    (code, r)
}

#[test]
fn a_load_after_its_copy_becomes_one_gs_load() {
    // The read version's load as Cranelift emits it: 3 + 8 bytes, one instruction of 11.
    let (_, r) = rewritten(SegmentBase::Gs, |a| {
        a.mov(rax, r15)?;
        a.movzx(rax, byte_ptr(rax + D))?;
        a.mov(byte_ptr(rdx), al)?;
        a.ret()
    });
    assert_eq!(
        texts(&r.code),
        ["movzx rax,byte ptr gs:[1000h]", "mov [rdx],al", "ret"]
    );
    assert_eq!(r.stats.loads_fused, 1);
    assert_eq!(r.stats.total_left(), 0);
    assert_eq!((r.accesses[0].offset, r.accesses[0].len), (0, 11));
    assert_eq!(r.instruction_starts, [0, 11, 13]);
    // Into a 32-bit register, which zero-extends: r9 goes whole.
    let (_, r) = rewritten(SegmentBase::Gs, |a| {
        a.mov(r9, r15)?;
        a.movzx(r9d, byte_ptr(r9 + 0x2000))?;
        a.ret()
    });
    assert_eq!(texts(&r.code), ["movzx r9d,byte ptr gs:[2000h]", "ret"]);
    assert_eq!(r.stats.loads_fused, 1);
}

#[test]
fn nothing_is_fused_where_the_difference_shows() {
    let cases: [(&str, common::Asm); 5] = [
        (
            "a word (the poll re-reads the budget word as it stores it)",
            |a| {
                a.mov(rax, r15)?;
                a.mov(rax, qword_ptr(rax + D))?;
                a.ret()
            },
        ),
        ("the copy stays live in another register", |a| {
            a.mov(rax, r15)?;
            a.movzx(rdx, byte_ptr(rax + D))?;
            a.ret()
        }),
        ("a byte destination keeps the copy's other bytes", |a| {
            a.mov(rax, r15)?;
            a.mov(al, byte_ptr(rax + D))?;
            a.ret()
        }),
        ("something between the copy and the load", |a| {
            a.mov(rax, r15)?;
            a.xor(ecx, ecx)?;
            a.movzx(rax, byte_ptr(rax + D))?;
            a.ret()
        }),
        ("a branch goes to the load", |a| {
            let mut load = a.create_label();
            a.test(rcx, rcx)?;
            a.mov(rax, r15)?;
            a.jz(load)?;
            a.mov(rax, r15)?;
            a.set_label(&mut load)?;
            a.movzx(rax, byte_ptr(rax + D))?;
            a.ret()
        }),
    ];
    for (what, body) in cases {
        let (code, r) = rewritten(SegmentBase::Gs, body);
        assert_eq!(r.stats.loads_fused, 0, "{what}");
        assert_eq!(r.code, code, "{what}");
    }
    // `--segment-base r15`: left as it is.
    let (code, r) = rewritten(SegmentBase::R15, |a| {
        a.mov(rax, r15)?;
        a.movzx(rax, byte_ptr(rax + D))?;
        a.ret()
    });
    assert_eq!(r.stats.loads_fused, 0);
    assert_eq!(r.code, code);
}

/// The fused load runs: it reads the byte at `gs:[D]` (its 32-bit address zero-extended, the
/// `gs` base added in full), whatever r15 holds.
#[test]
fn the_fused_load_reads_the_gs_segment() {
    let (_, r) = rewritten(SegmentBase::Gs, |a| {
        a.mov(rax, r15)?;
        a.movzx(rax, byte_ptr(rax + D))?;
        a.ret()
    });
    assert_eq!(r.stats.loads_fused, 1);
    let restore = common::GsGuard::new();
    let mut seg = vec![0u8; 2 * D as usize];
    seg[D as usize] = 0xAB;
    // SAFETY: a fresh private anonymous mapping of one page, checked below.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(page, libc::MAP_FAILED);
    // SAFETY: the page is ours, writable and larger than the code; then made executable.
    unsafe {
        std::ptr::copy_nonoverlapping(r.code.as_ptr(), page as *mut u8, r.code.len());
        assert_eq!(
            libc::mprotect(page, 4096, libc::PROT_READ | libc::PROT_EXEC),
            0
        );
    }
    common::set_gs_base(seg.as_ptr() as u64);
    // SAFETY: the code reads one byte at gs:[D], inside `seg`, and returns it (SysV: in rax).
    let f: extern "C" fn() -> u64 = unsafe { std::mem::transmute(page) };
    let got = f();
    drop(restore);
    // SAFETY: the mapping made above, no longer used.
    unsafe { libc::munmap(page, 4096) };
    assert_eq!(got, 0xAB);
}
