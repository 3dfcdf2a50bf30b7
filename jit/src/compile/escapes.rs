//! Parts (`parts.rs`) compiled inside `try`, `with` and `except`: the part's code runs in
//! the context of the statements around it, as if it were compiled in place.
//!
//! A part is compiled with its caller's context ([`Outer`]): the `with` blocks open (a
//! `return` in the part leaves them, and `Ctx::atomic_depth` is known relative to them),
//! the running `except` clauses (a bare `raise` finds its exception in the shared
//! frame) and the slot of the entry depth of the `try` handlers. Not the `finally` bodies
//! around it: a `return` leaves the part with its value, a `break` or `continue` with a
//! loop word (`loop_exits.rs`), and the code calling it goes on from there through them
//! (`finally.rs`). For each `try` region open
//! around it, the part has an *escape region*: an error there leaves the part returning an
//! escape word, an odd word (never `NONE` nor `ERR`) that names the failing site and the
//! region, and the caller jumps to that region's handler with that site, as its own error
//! check would have. So an exception is caught, and its trace kept, exactly as in place
//! (no trace entry for the part). Before leaving, the escape answers a transaction abort
//! as any handler does (`stmjit_propagate`): the part restarts if it opened the aborted
//! transaction; else the caller's handler does the same check for its own frame.

use super::tries::Region;
use super::FnCompiler;
use cranelift_codegen::ir::{self, condcodes::IntCC, types::I64, Block, InstBuilder};
use cranelift_codegen::ir::{types::I32, Value};
use stmjit_runtime::value::NONE;
use stmjit_vm::ERR;

/// Bits of the escape word that name the region (below them: the tag bit; above: the
/// site).
const REGION_BITS: u32 = 16;

/// The most `try` regions open around a part (deeper, code is compiled in place).
pub(crate) const MAX_REGIONS: usize = 1 << REGION_BITS;

/// The context of a part's caller at the call (see the module docs).
pub(crate) struct Outer {
    /// `try` regions open.
    pub regions: usize,
    /// `with` blocks open.
    pub with_depth: usize,
    /// Running `except` clauses: their `try` level and the slot of their exception.
    pub handling: Vec<(usize, usize)>,
    /// The slot of `Ctx::atomic_depth` at the function's entry, if the caller has one.
    pub entry_atomic: Option<usize>,
}

impl FnCompiler<'_, '_> {
    /// The context a part called here runs in.
    pub(crate) fn outer(&self) -> Outer {
        Outer {
            regions: self.tries.len(),
            with_depth: self.with_depth,
            handling: self.handling.clone(),
            entry_atomic: self.entry_atomic,
        }
    }

    /// At the start of a part: takes its caller's context `o`, with an escape region for
    /// each of the caller's regions (filled by [`Self::build_escapes`]).
    pub(crate) fn enter_outer(&mut self, o: Outer) {
        self.with_depth = o.with_depth;
        self.outer_with = o.with_depth;
        self.handling = o.handling;
        self.entry_atomic = o.entry_atomic;
        for _ in 0..o.regions {
            let target = self.b.create_block();
            self.b.append_block_param(target, I64);
            self.b.set_cold_block(target);
            self.escapes.push(target);
            self.tries.push(Region { target });
        }
    }

    /// The code of the escape regions (see the module docs): each leaves through `exit`
    /// (which returns its parameter from the part) with its escape word, or restarts.
    pub(crate) fn build_escapes(&mut self, exit: Block) {
        for (i, target) in std::mem::take(&mut self.escapes).into_iter().enumerate() {
            self.b.switch_to_block(target);
            let site = self.b.block_params(target)[0];
            // As a handler: the top back to this frame's first (a failed helper may have
            // left roots pushed above it, stale by now).
            self.reset_top();
            self.restart_if_opener();
            let w = self.b.ins().ishl_imm(site, i64::from(REGION_BITS) + 1);
            let w = self.b.ins().bor_imm(w, ((i as i64) << 1) | 1);
            self.b.ins().jump(exit, &[w.into()]);
        }
    }

    /// After a call of a part that returned `r`: an escape word goes on to the handler of
    /// its region with its site (with no region open, no part returns one). Continues
    /// where `r` is `ERR` (in `err`) or `NONE` (in `ok`).
    pub(crate) fn take_escapes(&mut self, r: Value, err: Block, ok: Block) {
        if self.tries.is_empty() {
            let is_err = self.b.ins().icmp_imm(IntCC::Equal, r, ERR as i64);
            self.b.ins().brif(is_err, err, &[], ok, &[]);
            return;
        }
        let failed = self.b.create_block();
        let escaped = self.b.create_block();
        let is_ok = self.b.ins().icmp_imm(IntCC::Equal, r, NONE as i64);
        self.b.ins().brif(is_ok, ok, &[], failed, &[]);
        self.b.set_cold_block(failed);
        self.b.switch_to_block(failed);
        let is_err = self.b.ins().icmp_imm(IntCC::Equal, r, ERR as i64);
        self.b.ins().brif(is_err, err, &[], escaped, &[]);
        self.b.set_cold_block(escaped);
        self.b.switch_to_block(escaped);
        let site = self.b.ins().ushr_imm(r, i64::from(REGION_BITS) + 1);
        let region = self.b.ins().ushr_imm(r, 1);
        let region = self.b.ins().ireduce(I32, region);
        let region = self.b.ins().band_imm(region, (MAX_REGIONS - 1) as i64);
        // A block per region, passing the site (jump tables take no block arguments).
        let targets: Vec<Block> = self.tries.iter().map(|t| t.target).collect();
        let blocks: Vec<Block> = targets.iter().map(|_| self.b.create_block()).collect();
        let pool = &mut self.b.func.dfg.value_lists;
        let calls: Vec<ir::BlockCall> = blocks
            .iter()
            .map(|&b| ir::BlockCall::new(b, std::iter::empty(), pool))
            .collect();
        let last = *calls.last().expect("a region is open");
        let jt = self
            .b
            .create_jump_table(ir::JumpTableData::new(last, &calls));
        self.b.ins().br_table(region, jt);
        for (b, t) in blocks.into_iter().zip(targets) {
            self.b.set_cold_block(b);
            self.b.switch_to_block(b);
            self.b.ins().jump(t, &[site.into()]);
        }
    }
}
