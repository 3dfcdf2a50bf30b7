//! Copy fusion, the last step of the `%gs` rewrite (before its verification and before
//! dead-copy removal): a byte load that the rewrite left in r15 form because its `gs:` form
//! is longer, right after the copy of r15 it reads and into that copy's own register, takes
//! the copy's bytes too:
//!
//! ```text
//! mov rax, r15;  movzx rax, byte [rax + 1000h]     ; 3 + 8 bytes: the read version's load
//! movzx rax, byte gs:[1000h]                       ; 11 bytes (a 32-bit address)
//! ```
//!
//! # Why
//! `[copy + disp]` with no index has no `gs:` form of its length (`gs:[disp32]` needs a SIB
//! byte), so it stayed in r15 form, and its copy stayed with it (the load reads it). The read
//! barrier's load of the read version, once per barrier region, is such a load: two
//! instructions where `--gil` runs none (richards: about 17 per scheduler step).
//!
//! # Why it is the same program
//! * r15 holds the segment base wherever JIT code touches the segment (the rewrite's
//!   invariant), so right after `mov rA, r15`, `[rA + D]` is the byte `gs:[D]`: with a 32-bit
//!   address (prefix 0x67) `D` is zero-extended, with a 64-bit one sign-extended; both give
//!   `D` for `0 <= D < 2^31`, the only displacements fused. The `gs` base is added in full
//!   either way.
//! * The copy's value dies at the load: the load writes all of `rA` (a 64-bit destination, or
//!   a 32-bit one, which zero-extends) and reads no register but its base.
//! * Nothing enters between them: the load starts no region (no block starts there, no branch
//!   goes there), so its start may disappear; the copy's start is the fused load's.
//!
//! Only byte loads: the read version is one, written only by the runtime at transaction
//! boundaries. A word the code also stores stays as it is: the poll re-reads the budget word
//! as `[copy + D]`, the address form of its store, which the core forwards from the store
//! (main 06baa22: every other form of the poll was slower).
//!
//! The fused load fills the pair's bytes with a 64-bit or a 32-bit address, whichever leaves
//! fewer NOP bytes after it (none for the read version's load). Anything else is left as it
//! was: correct, one instruction longer.
//!
//! # Verification
//! The new bytes are decoded again: the load intended (same operation, destination, width
//! and displacement, `gs:` with no base and no index), then NOPs only.

use crate::gs_rewrite::{
    intel, is_copy, nop_padding, LeftReason, Region, RewriteError, Rewritten, SegmentBase,
};
use iced_x86::{Decoder, DecoderOptions, Encoder, Instruction, Mnemonic, OpKind, Register};

/// The pair at `k` (the copy) and `k + 1` (the load) if it fuses (see the module docs): the
/// load's `gs:` form to write in the pair's bytes.
fn fusible(insts: &[Instruction], reg: &Region, k: usize) -> Option<Instruction> {
    let (copy, load) = (&insts[k], insts.get(k + 1)?);
    if k < reg.first || k + 1 > reg.last || !is_copy(copy) {
        return None;
    }
    let a = copy.op0_register();
    let loads = matches!(
        load.mnemonic(),
        Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd
    );
    let dest = load.op0_register();
    let whole = dest.is_gpr64() || dest.is_gpr32();
    if !loads
        || load.op_count() != 2
        || load.op0_kind() != OpKind::Register
        || load.op1_kind() != OpKind::Memory
        || !whole
        || dest.full_register() != a
        || load.memory_base() != a
        || load.memory_index() != Register::None
        || load.segment_prefix() != Register::None
        || load.memory_displacement64() >= 1 << 31
        || load.memory_size().size() != 1
    {
        return None;
    }
    let mut n = *load;
    n.set_memory_base(Register::None);
    n.set_segment_prefix(Register::GS);
    Some(n)
}

/// The encoding of `n` at `ip` that fits in `room` bytes with the fewest NOP bytes after it:
/// a 64-bit address (displacement size 8) or a 32-bit one (size 4: prefix 0x67).
fn encode(n: &Instruction, ip: u64, room: usize) -> Option<Vec<u8>> {
    [8, 4]
        .into_iter()
        .filter_map(|size| {
            let mut n = *n;
            n.set_memory_displ_size(size);
            let mut enc = Encoder::new(64);
            let len = enc.encode(&n, ip).ok()?;
            (len <= room).then(|| enc.take_buffer())
        })
        .max_by_key(|b| b.len())
}

/// Fuses every pair of `rw` it can (see the module docs), updating its code, accesses,
/// instruction starts and statistics. `insts` and `regions` are the decode of the code
/// before the rewrite, which moved nothing; only loads the rewrite left because their `gs:`
/// form grew are fused (the others are in `gs:` form, or not provable).
pub(crate) fn fuse_copies(
    rw: &mut Rewritten,
    insts: &[Instruction],
    regions: &[Region],
    mode: SegmentBase,
) -> Result<(), RewriteError> {
    if mode != SegmentBase::Gs {
        return Ok(());
    }
    let mut fused = false;
    for reg in regions {
        for k in reg.first..reg.last {
            let Some(n) = fusible(insts, reg, k) else {
                continue;
            };
            let load_ip = insts[k + 1].ip() as u32;
            let Ok(at) = rw.accesses.binary_search_by_key(&load_ip, |a| a.offset) else {
                continue;
            };
            if rw.accesses[at].left != Some(LeftReason::WouldGrow) {
                continue;
            }
            fused |= fuse_one(rw, insts, k, &n, at)?;
        }
    }
    if fused {
        rw.instruction_starts.sort_unstable();
    }
    Ok(())
}

/// Writes the fused load `n` over the copy at `k` and the load after it (access `at` of
/// `rw`) and records it; `false` if it does not fit.
fn fuse_one(
    rw: &mut Rewritten,
    insts: &[Instruction],
    k: usize,
    n: &Instruction,
    at: usize,
) -> Result<bool, RewriteError> {
    let (copy, load) = (&insts[k], &insts[k + 1]);
    let (s, e) = (copy.ip(), load.next_ip());
    let room = (e - s) as usize;
    let Some(bytes) = encode(n, s, room) else {
        return Ok(false);
    };
    let pad = nop_padding(room - bytes.len());
    verify(&bytes, &pad, s, load)?;
    let len = bytes.len();
    rw.code[s as usize..s as usize + len].copy_from_slice(&bytes);
    rw.code[s as usize + len..e as usize].copy_from_slice(&pad);
    rw.instruction_starts.retain(|&x| x as u64 != load.ip());
    rw.instruction_starts.extend(
        Decoder::with_ip(64, &pad, s + len as u64, DecoderOptions::NONE)
            .iter()
            .map(|i| i.ip() as u32),
    );
    let stats = &mut rw.stats;
    *stats.left.entry(LeftReason::WouldGrow).or_default() -= 1;
    stats.left.retain(|_, n| *n > 0);
    let acc = &mut rw.accesses[at];
    *stats.rewritten.entry(acc.kind).or_default() += 1;
    stats.nop_bytes += pad.len();
    stats.loads_fused += 1;
    acc.offset = s as u32;
    acc.len = room as u32;
    acc.left = None;
    acc.nop_bytes = pad.len() as u32;
    Ok(true)
}

/// The fused bytes decode to the load intended (see the module docs), then NOPs.
fn verify(bytes: &[u8], pad: &[u8], s: u64, old: &Instruction) -> Result<(), RewriteError> {
    let mut all = bytes.to_vec();
    all.extend_from_slice(pad);
    let got: Vec<Instruction> = Decoder::with_ip(64, &all, s, DecoderOptions::NONE)
        .iter()
        .collect();
    let l = &got[0];
    let ok = l.len() == bytes.len()
        && l.mnemonic() == old.mnemonic()
        && l.op0_register() == old.op0_register()
        && l.memory_size() == old.memory_size()
        && l.memory_displacement64() == old.memory_displacement64()
        && l.segment_prefix() == Register::GS
        && l.memory_base() == Register::None
        && l.memory_index() == Register::None
        && got[1..]
            .iter()
            .all(|i| i.mnemonic() == Mnemonic::Nop && !i.is_invalid());
    if !ok {
        return Err(RewriteError::VerificationFailed {
            offset: s as u32,
            what: format!("copy fusion: re-decoded `{}`", intel(l)),
        });
    }
    Ok(())
}
