//! `break` and `continue` out of a part (`parts.rs`): a range of a loop's body holding a
//! `break` or `continue` of that loop (the innermost loop around the part; one of a loop
//! inside the part stays inside it) is a part like any other. In the part, such a
//! statement goes through the `finally` bodies and leaves the `with` blocks opened inside
//! the part (as it would in place, the part's start standing for the loop's), then the part returns
//! [`BREAK`] or [`CONTINUE`] (through its epilogue, a transaction boundary like any return,
//! its return slot set to `UNBOUND` as at a fall off its end). The caller, seeing that
//! word, compiles the same `break` or `continue` where it is: the `finally` bodies and
//! `with` blocks between the part and the loop, then the jump to the loop's exit or latch.
//! A part holding no such statement returns neither word, and its caller tests for none.

use super::{finally::Exit, FnCompiler};
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use stmjit_vm::abi::Word;

/// Returned by a part for a `break` of the innermost loop of its caller: an immediate
/// (even, under `IMMEDIATE_LIMIT`: never an object, so a boundary may root it), neither
/// `NONE` nor `ERR` nor any other special word, and even where escape words are odd.
pub(crate) const BREAK: Word = 24;

/// Returned by a part for a `continue` of the innermost loop of its caller (as [`BREAK`]).
pub(crate) const CONTINUE: Word = 28;

const _: () = {
    use stmjit_runtime::value::{FALSE, IMMEDIATE_LIMIT, INT_TAG, NONE, TRUE};
    use stmjit_vm::{ERR, MOVING, RESTART, UNBOUND};
    let special = [NONE, FALSE, TRUE, UNBOUND, ERR, RESTART, MOVING];
    let mut i = 0;
    while i < special.len() {
        assert!(special[i] != BREAK && special[i] != CONTINUE);
        i += 1;
    }
    assert!(BREAK != CONTINUE && BREAK & INT_TAG == 0 && CONTINUE & INT_TAG == 0);
    assert!(BREAK < IMMEDIATE_LIMIT && CONTINUE < IMMEDIATE_LIMIT);
};

impl FnCompiler<'_, '_> {
    /// `break` (`brk`) or `continue` of the innermost loop: leaving a `try` with a
    /// `finally` inside it, leaves the `with` blocks opened inside the `try` and jumps to
    /// its shared `break` or `continue` path (`finally.rs`), which runs the `finally` body
    /// and goes on from there; otherwise leaves the `with` blocks inside the loop and jumps
    /// to its exit or latch (in a part, the loop of [`Self::part_loop_exits`]: the `finally`
    /// bodies around the part are run by the code calling it).
    pub(crate) fn loop_jump(&mut self, brk: bool) {
        let n = self.loops.len();
        if let Some(f) = self.finallies.last().filter(|f| f.loops == n) {
            let (id, with_depth) = (f.exit, f.with_depth);
            self.leave_with_blocks(self.with_depth - with_depth);
            let kind = if brk { Exit::Break } else { Exit::Continue };
            let path = self.exit_block(id, kind);
            self.b.ins().jump(path, &[]);
            return;
        }
        let (latch, exit, w) = *self.loops.last().expect("break or continue inside a loop");
        self.leave_with_blocks(self.with_depth - w);
        let target = if brk { exit } else { latch };
        self.b.ins().jump(target, &[]);
    }

    /// In a part: compiles `emit` (its statements) as the body of a loop whose `break`
    /// and `continue` return [`BREAK`] and [`CONTINUE`] from the part.
    pub(crate) fn part_loop_exits(&mut self, emit: impl FnOnce(&mut Self)) {
        let brk = self.b.create_block();
        let cont = self.b.create_block();
        self.loop_signals = true;
        self.loops.push((cont, brk, self.with_depth));
        emit(self);
        self.loops.pop();
        let fall = (!self.is_filled()).then(|| {
            let next = self.b.create_block();
            self.b.ins().jump(next, &[]);
            next
        });
        for (block, word) in [(brk, BREAK), (cont, CONTINUE)] {
            self.b.set_cold_block(block);
            self.b.switch_to_block(block);
            let w = self.b.ins().iconst(I64, word as i64);
            let ret = self.ret_block;
            self.b.ins().jump(ret, &[w.into()]);
        }
        match fall {
            Some(next) => self.b.switch_to_block(next),
            None => self.dead_block(),
        }
    }

    /// In a part's epilogue, given what its code passed to the return block (`rv`: a
    /// returned value, `UNBOUND`, or a loop word when [`Self::part_loop_exits`] made it):
    /// the word to store in its return slot and the word it returns.
    pub(crate) fn split_loop_word(&mut self, rv: Value) -> (Value, Value) {
        let none = self.b.ins().iconst(I64, stmjit_runtime::value::NONE as i64);
        if !self.loop_signals {
            return (rv, none);
        }
        let is_brk = self.b.ins().icmp_imm(IntCC::Equal, rv, BREAK as i64);
        let is_cont = self.b.ins().icmp_imm(IntCC::Equal, rv, CONTINUE as i64);
        let is_word = self.b.ins().bor(is_brk, is_cont);
        let unbound = self.b.ins().iconst(I64, stmjit_vm::UNBOUND as i64);
        let stored = self.b.ins().select(is_word, unbound, rv);
        let out = self.b.ins().select(is_word, rv, none);
        (stored, out)
    }

    /// After a call of a part made by [`Self::part_loop_exits`] that returned `r`: a
    /// [`BREAK`] or [`CONTINUE`] runs the `break` or `continue` here; continues in a new
    /// block otherwise.
    pub(crate) fn take_loop_words(&mut self, r: Value) {
        for (word, brk) in [(BREAK, true), (CONTINUE, false)] {
            let hit = self.b.create_block();
            let next = self.b.create_block();
            let is = self.b.ins().icmp_imm(IntCC::Equal, r, word as i64);
            self.b.ins().brif(is, hit, &[], next, &[]);
            self.switch_and_jump(hit, brk);
            self.b.switch_to_block(next);
        }
    }

    /// Compiles the `break` (`brk`) or `continue` at `block`, keeping the locals known
    /// assigned as they were.
    fn switch_and_jump(&mut self, block: Block, brk: bool) {
        self.b.switch_to_block(block);
        let assigned = self.assigned.clone();
        self.loop_jump(brk);
        self.assigned = assigned;
    }
}
