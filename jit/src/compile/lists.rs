//! Inline list fast paths outside indexing: `len(xs)` and the next item of a `for` loop over
//! a list. Each falls back to its helper for any other type.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{types::I64, InstBuilder, Value};
use std::mem::offset_of;
use stmjit_lang::ast::{Builtin, Expr};
use stmjit_lang::diag::Span;
use stmjit_vm::abi::Helper;
use stmjit_vm::objects::ListObj;

impl FnCompiler<'_, '_> {
    /// `len(arg)` (the builtin, called by name): a list's length is read inline (after the
    /// list's read barrier); `stmjit_builtin` does the rest.
    pub(crate) fn len_call(&mut self, arg: &Expr, span: Span) -> Value {
        let v = self.expr(arg);
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.begin_sequence(super::LOC_LIST_FAST);
        self.expect_type(v, self.sh.types.list.0, slow);
        self.read_barrier_obj(v, span);
        let a = self.seg_addr(v);
        let n = self
            .b
            .ins()
            .load(I64, mf(), a, offset_of!(ListObj, len) as i32);
        let n = self.b.ins().ishl_imm(n, 1);
        let tagged = self.b.ins().bor_imm(n, 1);
        self.end_sequence();
        let marked = self.region_marked();
        self.b.ins().jump(done, &[tagged.into()]);
        self.b.switch_to_block(slow);
        let mark = self.temp_mark();
        self.push_temp(v);
        let p = self.slot_addr(mark);
        let one = self.b.ins().iconst(I64, 1);
        let k = Builtin::ALL
            .iter()
            .position(|x| *x == Builtin::Len)
            .unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        let r = self.call_checked(Helper::Builtin, &[self.ctx, k, p, one], span);
        self.pop_temps(mark);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[r.into()]);
        self.enter_join(done, marked);
        self.b.block_params(done)[0]
    }

    /// Item `i` (a tagged int) of the iterator `it` of a `for` loop, or `UNBOUND` past its
    /// end: inline for a list (the item's granule read-marked, as `xs[i]`), else
    /// `stmjit_iter_next` (ranges, and the end of a list).
    pub(crate) fn iter_item(&mut self, it: Value, i: Value, span: Span) -> Value {
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let addr = self.list_elem(it, i, slow, span);
        self.read_barrier(addr, span);
        let a = self.seg_addr(addr);
        let x = self.b.ins().load(I64, mf(), a, 0);
        self.b.ins().jump(done, &[x.into()]);
        self.b.switch_to_block(slow);
        let raw = self.b.ins().sshr_imm(i, 1);
        // In a program naming `__next__`, an instance's iterator runs it, which may move
        // objects (the join starts a new barrier region either way).
        let helper = if self.sh.names.id("__next__").is_some() {
            Helper::IterNextSpecial
        } else {
            Helper::IterNext
        };
        let x = self.call_checked(helper, &[self.ctx, it, raw], span);
        self.b.ins().jump(done, &[x.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }
}
