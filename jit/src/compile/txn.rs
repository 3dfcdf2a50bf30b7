//! Transaction boundaries in compiled code: safe-point polls at loop back-edges and function
//! entries (a poll's slow path may end the transaction: its resume block is a *restart
//! point*), the restart dispatch of the frame that opened an aborted transaction, the
//! boundary at the return from that frame, and the reload of the segment base after a call
//! that may have moved the thread to another segment. The runtime side is `txn.rs` of the
//! object model.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{self, condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use std::mem::offset_of;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::Helper;
use stmjit_vm::{Ctx, ERR, RESTART};

impl FnCompiler<'_, '_> {
    /// At the return of `rv` (the current block, the epilogue's), a return from the frame
    /// that opened the running transaction is a boundary (see `txn.rs` of the object
    /// model): `stmjit_return_boundary` commits and goes on in an inevitable transaction;
    /// its `RESTART` (the commit aborted) goes to the restart dispatch. Continues at `pop`
    /// with the value to return (an error returns at once: tested only in the opener, out of
    /// line).
    pub(super) fn return_boundary(&mut self, rv: Value, pop: Block) {
        let td = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, txn_depth) as i32);
        let d = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let opener = self.b.ins().icmp(IntCC::Equal, td, d);
        let check = self.b.create_block();
        self.b.ins().brif(opener, check, &[], pop, &[rv.into()]);
        self.b.set_cold_block(check);
        self.b.switch_to_block(check);
        let is_err = self.b.ins().icmp_imm(IntCC::Equal, rv, ERR as i64);
        let boundary = self.b.create_block();
        self.b.ins().brif(is_err, pop, &[rv.into()], boundary, &[]);
        self.b.set_cold_block(boundary);
        self.b.switch_to_block(boundary);
        // No spill: the locals are dead, and a restart restores the slots.
        let f = self.helper(Helper::ReturnBoundary);
        let inst = self.b.ins().call(f, &[self.ctx, rv]);
        let r = self.b.inst_results(inst)[0];
        self.reload_segment_base();
        self.reload_read_version(inst);
        let restart = self.b.ins().icmp_imm(IntCC::Equal, r, RESTART as i64);
        let dispatch = self.dispatch_block();
        self.b.ins().brif(restart, dispatch, &[], pop, &[r.into()]);
    }
    /// Safe-point poll at a loop back-edge, continuing in a new block.
    pub(crate) fn poll(&mut self, span: Span) {
        let done = self.b.create_block();
        self.poll_to(span, done);
        self.b.switch_to_block(done);
    }
    /// Safe-point poll continuing at `resume`, which becomes a restart point (everything
    /// live there must be in frame slots or locals): `add qword [budget], -1; mov rax,
    /// [budget]; test rax, rax; jl slow` (Cranelift has no flags output for a memory
    /// read-modify-write, so the branch reads the word again; both accesses stay r15-based,
    /// their `gs:` forms would be longer). Shorter shapes in the same bytes (the `add` and a
    /// `js` on its flags with NOP padding; a load, `add`, store) measured 7-13% slower or no
    /// faster on trial-division primes (AMD EPYC, issue 16). One word is both the transaction budget
    /// and the request flag: a requester marks it very negative (`BUDGET_REQUEST` of the
    /// runtime). The slow path tells the two apart, may end the transaction (a boundary) or
    /// pause for another segment's commit.
    pub(crate) fn poll_to(&mut self, span: Span, resume: Block) {
        self.poll_restarting_at(span, resume, resume);
    }
    /// [`Self::poll_to`] whose restart point is `restart` instead of `resume`: a loop head
    /// reached through a block that computes what the loop's fast version keeps in SSA
    /// values (`float_loops.rs`).
    pub(crate) fn poll_restarting_at(&mut self, span: Span, resume: Block, restart: Block) {
        use stmjit_runtime::{SegmentInfo, INFO_OFFSET};
        self.begin_sequence(super::LOC_POLL);
        let point = self.push_restart(restart) as i64;
        if !self.sh.polls {
            self.end_sequence();
            self.b.ins().jump(resume, &[]);
            return;
        }
        let boff = self.b.ins().iconst(
            I64,
            (INFO_OFFSET + offset_of!(SegmentInfo, budget) as u64) as i64,
        );
        // One address for the load and the store, and the new value used by the store only:
        // Cranelift lowers that to a memory-operand `add`.
        let ba = self.seg_addr(boff);
        let left = self.b.ins().load(I64, ir::MemFlagsData::trusted(), ba, 0);
        let left = self.b.ins().iadd_imm(left, -1);
        self.b.ins().store(ir::MemFlagsData::trusted(), left, ba, 0);
        // A second address value, so that the load is not forwarded from the store.
        let ba2 = self.seg_addr(boff);
        let now = self.b.ins().load(I64, ir::MemFlagsData::trusted(), ba2, 0);
        // (Cranelift's x64 `cmp` takes memory only as its second operand: `mov` + `test`.)
        let out = self.b.ins().icmp_imm(IntCC::SignedLessThan, now, 0);
        let slow = self.b.create_block();
        self.b.ins().brif(out, slow, &[], resume, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        self.end_sequence();
        // A restart finds every local in its slot: none unboxed.
        self.box_all_unboxed();
        let frame = self.frame();
        let p = self.b.ins().iconst(I64, point);
        self.call_checked(Helper::PollSlow, &[self.ctx, frame, p], span);
        // It may have begun a transaction: the loops' held marks again (`barriers.rs`).
        self.remark_held(span, true);
        self.b.ins().jump(resume, &[]);
    }
    /// The boundary before a part of a module body run by parts (`stmjit_part_boundary`):
    /// it always commits, and its restart point is here, so that no restart runs the part
    /// before it again (that part's code is freed when the next one is compiled). `<module>`
    /// keeps nothing live across it.
    pub(crate) fn part_boundary(&mut self, span: Span) {
        let resume = self.b.create_block();
        let point = self.push_restart(resume) as i64;
        let frame = self.frame();
        let p = self.b.ins().iconst(I64, point);
        self.call_checked(Helper::PartBoundary, &[self.ctx, frame, p], span);
        self.remark_held(span, false);
        self.b.ins().jump(resume, &[]);
        self.b.switch_to_block(resume);
    }
    /// After a runtime call that may end the transaction: the next one may run in another
    /// segment, whose base the runtime left in `Ctx::seg_base` (and in `%gs`); r15 follows.
    /// (Calls of JIT functions need none: the callee keeps r15 right itself.)
    pub(crate) fn reload_segment_base(&mut self) {
        let base = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, seg_base) as i32);
        self.b.ins().set_pinned_reg(base);
    }
    /// The block an opener's error path jumps to when its transaction must restart
    /// (filled by [`Self::build_restarts`] once every poll is known).
    pub(crate) fn dispatch_block(&mut self) -> Block {
        if let Some(b) = self.dispatch {
            return b;
        }
        let b = self.b.create_block();
        self.b.set_cold_block(b);
        self.dispatch = Some(b);
        b
    }
    /// The restart dispatch: `Ctx::restart_point` selects the poll to resume at; its block
    /// copies the slots saved at the boundary back (`stmjit_restart`), reloads the locals
    /// and jumps there.
    pub(super) fn build_restarts(&mut self) {
        let Some(dispatch) = self.dispatch else {
            return;
        };
        self.b.switch_to_block(dispatch);
        let targets = self.restarts.clone();
        if targets.is_empty() {
            // No poll, so this frame never opens a transaction: the runtime never answers it
            // `RESTART` (no stale `txn_depth` is left equal to its depth: the opener's return
            // and an exception leaving the opener both set it to `NO_OPENER`).
            self.b
                .ins()
                .trap(ir::TrapCode::unwrap_user(super::barriers::TRAP_UNREACHABLE));
            return;
        }
        let blocks: Vec<Block> = targets.iter().map(|_| self.b.create_block()).collect();
        let id = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, restart_point) as i32);
        let id32 = self.b.ins().ireduce(cranelift_codegen::ir::types::I32, id);
        let pool = &mut self.b.func.dfg.value_lists;
        let calls: Vec<ir::BlockCall> = blocks
            .iter()
            .map(|&b| ir::BlockCall::new(b, std::iter::empty(), pool))
            .collect();
        let jt = self
            .b
            .create_jump_table(ir::JumpTableData::new(calls[0], &calls));
        self.b.ins().br_table(id32, jt);
        let restart = self.helper(Helper::Restart);
        for (k, (&blk, &target)) in blocks.iter().zip(&targets).enumerate() {
            self.b.set_cold_block(blk);
            self.b.switch_to_block(blk);
            let frame = self.frame();
            self.b.ins().call(restart, &[self.ctx, frame]);
            self.reload_segment_base();
            // The restart point may be in a loop (see "The read version in a variable").
            self.reload_read_version_anywhere();
            self.reload_locals();
            // The locals are those saved at the boundary: their classes are unknown.
            self.forget_classes();
            self.reload_restart_globals(k);
            // A new transaction: the marks held at the restart point again (`barriers.rs`).
            if let Some(held) = (self.restart_held.iter())
                .find(|(p, _)| *p == k)
                .map(|(_, h)| h.clone())
            {
                self.mark_held(&held, true, Span::default());
            }
            self.b.ins().jump(target, &[]);
        }
    }
}
