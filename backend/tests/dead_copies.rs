//! Dead-copy removal after the `%gs` rewrite, on hand-assembled code: which copies go,
//! which stay (read later, on this path or another), what moves and what does not.

mod common;

use common::{assemble, texts, Asm as Emit};
use iced_x86::code_asm::*;
use stmjit_backend::dead_copies::remove_dead_copies;
use stmjit_backend::gs_rewrite::{rewrite_with, CopyReads, Rewritten, SegmentBase};

/// Rewrite `body`, then remove its dead copies (`relocs` at those offsets).
fn removed(
    body: impl FnOnce(&mut CodeAssembler) -> Result<(), IcedError>,
    relocs: &[u32],
) -> (Vec<u8>, Rewritten) {
    let code = assemble(body);
    let mut r = rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    remove_dead_copies(&mut r, &[], relocs).unwrap();
    assert_eq!(r.code.len(), code.len());
    (code, r)
}

#[test]
fn a_copy_its_access_kills_goes_and_the_access_takes_its_bytes() {
    let (_, r) = removed(
        |a| {
            a.mov(rax, r15)?;
            a.mov(eax, dword_ptr(rax + rsi + 4))?;
            a.mov(rcx, r15)?;
            a.mov(rcx, qword_ptr(rcx + rax + 8))?;
            a.ret()
        },
        &[],
    );
    assert_eq!(
        texts(&r.code),
        ["mov eax,gs:[rsi+4]", "mov rcx,gs:[rax+8]", "ret"]
    );
    assert_eq!(r.stats.copies_removed, 2);
    // The accesses are where their instructions now start, three bytes longer.
    assert_eq!(r.accesses[0].offset, 0);
    assert_eq!(r.accesses[1].offset, r.accesses[0].len);
    assert_eq!(r.instruction_starts.len(), 3);
}

#[test]
fn code_between_moves_back_up_to_an_instruction_that_can_grow() {
    // The marker's copy is dead (rcx written before any read); the store has no
    // displacement, so the load after it takes the bytes.
    let (_, r) = removed(
        |a| {
            a.mov(rcx, r15)?;
            a.mov(rdx, rsi)?;
            a.shr(rdx, 4)?;
            a.mov(byte_ptr(rcx + rdx), al)?;
            a.mov(rcx, qword_ptr(rsi + 16))?;
            a.ret()
        },
        &[],
    );
    assert_eq!(
        texts(&r.code),
        [
            "mov rdx,rsi",
            "shr rdx,4",
            "mov gs:[rdx],al",
            "mov rcx,[rsi+10h]",
            "ret"
        ]
    );
}

#[test]
fn live_copies_and_copies_without_room_stay() {
    // Read later as an r15-form base (no gs form fits): live.
    let (code, r) = removed(
        |a| {
            a.mov(rax, r15)?;
            a.mov(rcx, qword_ptr(rsi + 8))?;
            a.movzx(rax, byte_ptr(rax + 0x1000))?;
            a.ret()
        },
        &[],
    );
    assert_eq!(r.stats.copies_removed, 0);
    assert_eq!(
        r.code,
        rewrite_with(&code, &[], SegmentBase::Gs, CopyReads::Count)
            .unwrap()
            .code
    );
    // Dead, but nothing after it in the straight line can grow: stays.
    let (_, r) = removed(
        |a| {
            a.mov(rax, r15)?;
            a.mov(byte_ptr(rax + rdx), cl)?;
            a.ret()
        },
        &[],
    );
    assert_eq!(r.stats.copies_removed, 0);
    // Around a branch (liveness follows both paths): before it, after it on the other path
    // (the first path clears rax), the expected removals.
    let cases: [(&str, Emit, Emit, usize); 3] = [
        (
            "read as a value on the other path: stays",
            |a| a.xor(edx, edx),
            |a| a.add(rcx, rax),
            0,
        ),
        (
            "written first on both paths: goes",
            |a| a.xor(edx, edx),
            |a| a.mov(eax, 1),
            1,
        ),
        (
            "written before the branch: goes",
            |a| a.mov(eax, dword_ptr(rsi)),
            |a| a.add(rcx, rax),
            1,
        ),
    ];
    for (what, before, other_path, expected) in cases {
        let (_, r) = removed(
            |a| {
                let mut other = a.create_label();
                a.mov(rax, r15)?;
                a.mov(rcx, qword_ptr(rax + rsi + 8))?;
                before(a)?;
                a.test(rcx, rcx)?;
                a.je(other)?;
                a.xor(eax, eax)?;
                a.ret()?;
                a.set_label(&mut other)?;
                other_path(a)?;
                a.ret()
            },
            &[],
        );
        assert_eq!(r.stats.copies_removed, expected, "{what}");
        if expected == 1 {
            assert_eq!(texts(&r.code)[0], "mov rcx,gs:[rsi+8]", "{what}");
        }
    }
}

#[test]
fn nothing_moves_across_calls_branch_targets_relocations_or_the_stack() {
    // A call, a branch target, an instruction with a relocation, a stack access between
    // the copy and the only instruction that could grow: the copy stays.
    let between: [Emit; 3] = [
        |a| a.call(rdi),
        |a| a.mov(qword_ptr(rsp + 8), rdx),
        |a| a.mov(rdx, 0x1234_5678_9abc_def0u64),
    ];
    for (k, b) in between.into_iter().enumerate() {
        let (_, r) = removed(
            |a| {
                a.mov(rax, r15)?;
                a.mov(ecx, dword_ptr(rax + rsi))?;
                b(a)?;
                a.mov(rax, qword_ptr(rsi + 8))?;
                a.ret()
            },
            &[],
        );
        assert_eq!(r.stats.copies_removed, 0, "case {k}");
    }
    let (_, r) = removed(
        |a| {
            let mut top = a.create_label();
            a.mov(rax, r15)?;
            a.mov(ecx, dword_ptr(rax + rsi))?;
            a.set_label(&mut top)?;
            a.mov(rax, qword_ptr(rsi + 8))?;
            a.dec(rcx)?;
            a.jne(top)?;
            a.ret()
        },
        &[],
    );
    assert_eq!(r.stats.copies_removed, 0);
    // The grown instruction holds a relocation: it stays.
    let (_, r) = removed(
        |a| {
            a.mov(rax, r15)?;
            a.mov(ecx, dword_ptr(rax + rsi))?;
            a.mov(rax, qword_ptr(rsi + 8))?;
            a.ret()
        },
        &[9],
    );
    assert_eq!(r.stats.copies_removed, 0);
}

#[test]
fn byte_immediates_take_the_bytes_too() {
    let (_, r) = removed(
        |a| {
            a.mov(rax, r15)?;
            a.mov(ecx, dword_ptr(rax + rsi))?;
            a.cmp(ecx, 11)?;
            a.mov(rax, r15)?;
            a.mov(edx, dword_ptr(rax + rsi))?;
            a.and(rdx, -2)?;
            a.mov(eax, 0)?;
            a.ret()
        },
        &[],
    );
    assert_eq!(
        texts(&r.code),
        [
            "mov ecx,gs:[rsi]",
            "cmp ecx,0Bh",
            "mov edx,gs:[rsi]",
            "and rdx,0FFFFFFFFFFFFFFFEh",
            "mov eax,0",
            "ret"
        ]
    );
    assert_eq!(r.stats.copies_removed, 2);
}

#[test]
fn a_copy_read_later_as_a_value_or_only_partly_written_stays() {
    // Between the access through the copy and a whole read of its register: nothing (the
    // read keeps it), a byte write (the rest is still read), a 32-bit write (replaces it all).
    let between: [(Emit, usize); 3] = [
        (|_| Ok(()), 0),
        (|a| a.mov(al, 1), 0),
        (|a| a.mov(eax, 1), 1),
    ];
    for (k, (b, expected)) in between.into_iter().enumerate() {
        let (_, r) = removed(
            |a| {
                a.mov(rax, r15)?;
                a.mov(rcx, qword_ptr(rax + rsi + 8))?;
                b(a)?;
                a.mov(rdx, qword_ptr(rsi + 8))?;
                a.add(rcx, rax)?;
                a.ret()
            },
            &[],
        );
        assert_eq!(r.stats.copies_removed, expected, "case {k}");
    }
}

#[test]
fn liveness_follows_the_back_edge_of_a_loop() {
    // At the loop's head, before the copy of the previous iteration could be read: a read
    // keeps it, a 32-bit write lets it go.
    let cases: [(Emit, usize); 2] = [(|a| a.add(rcx, rax), 0), (|a| a.mov(eax, 1), 1)];
    for (k, (head, expected)) in cases.into_iter().enumerate() {
        let (_, r) = removed(
            |a| {
                let mut top = a.create_label();
                a.set_label(&mut top)?;
                head(a)?;
                a.mov(rax, r15)?;
                a.mov(rdx, qword_ptr(rax + rsi + 8))?;
                a.dec(rdi)?;
                a.jne(top)?;
                a.xor(eax, eax)?;
                a.ret()
            },
            &[],
        );
        assert_eq!(r.stats.copies_removed, expected, "case {k}");
    }
}

/// The pass starts from the rewrite's decode of its output (issue 16) only while the code
/// is still that output: code replaced in between is decoded afresh, so a copy the new code
/// reads stays.
#[test]
fn code_changed_after_the_rewrite_is_decoded_again() {
    let with = |last: Emit| {
        assemble(|a| {
            a.mov(rax, r15)?;
            a.mov(rcx, qword_ptr(rax + rsi + 8))?;
            a.mov(rdx, qword_ptr(rsi + 8))?;
            last(a)?;
            a.ret()
        })
    };
    let dead = with(|a| a.mov(eax, 1));
    let live = with(|a| {
        a.add(rcx, rax)?;
        a.nop()?;
        a.nop()
    });
    assert_eq!(dead.len(), live.len());
    let rewritten =
        |code: &[u8]| rewrite_with(code, &[], SegmentBase::Gs, CopyReads::Count).unwrap();
    let mut r = rewritten(&dead);
    let other = rewritten(&live);
    r.code = other.code.clone();
    remove_dead_copies(&mut r, &[], &[]).unwrap();
    assert_eq!(r.stats.copies_removed, 0);
    assert_eq!(r.code, other.code);
    // And the code it was made from loses its dead copy.
    let mut r = rewritten(&dead);
    remove_dead_copies(&mut r, &[], &[]).unwrap();
    assert_eq!(r.stats.copies_removed, 1);
}
