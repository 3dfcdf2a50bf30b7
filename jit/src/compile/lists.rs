//! Inline list fast paths outside indexing: `len(xs)` (and `len(s)` of a str), the next
//! item of a `for` loop over a list, `xs.append(v)` and `xs.pop()` / `xs.pop(i)`. Each falls
//! back to its helper for any other type or case.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{
    condcodes::IntCC,
    types::{I64, I8},
    Block, InstBuilder, Value,
};
use std::mem::offset_of;
use stmjit_lang::ast::{Builtin, Expr};
use stmjit_lang::diag::Span;
use stmjit_runtime::value::NONE;
use stmjit_vm::abi::Helper;
use stmjit_vm::objects::{ArrayObj, ListObj, StrObj, ARRAY_DATA};

/// A list method call with an inline fast path ([`FnCompiler::list_method_inline`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum ListMethod {
    /// `xs.append(v)`.
    Append,
    /// `xs.pop()`.
    Pop,
    /// `xs.pop(i)`.
    PopAt,
}

impl ListMethod {
    /// The fast path for a call of method `name` with `nargs` arguments, if there is one.
    pub(crate) fn of(name: &str, nargs: usize) -> Option<ListMethod> {
        match (name, nargs) {
            ("append", 1) => Some(ListMethod::Append),
            ("pop", 0) => Some(ListMethod::Pop),
            ("pop", 1) => Some(ListMethod::PopAt),
            _ => None,
        }
    }
}

impl FnCompiler<'_, '_> {
    /// `len(arg)` (the builtin, called by name): a list's length is read inline (after the
    /// list's read barrier); `stmjit_builtin` does the rest.
    pub(crate) fn len_call(&mut self, arg: &Expr, span: Span) -> Value {
        let v = self.expr(arg);
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let not_list = self.b.create_block();
        let tagged = self.list_len_or(v, span, not_list);
        let marked = self.region_marked();
        self.b.ins().jump(done, &[tagged.into()]);
        // A str: its length in characters, immutable (no read barrier, as for its type).
        self.b.set_cold_block(not_list);
        self.b.switch_to_block(not_list);
        self.expect_type(v, self.sh.types.str.0, slow);
        let a = self.seg_addr(v);
        let n = self
            .b
            .ins()
            .load(I64, mf(), a, offset_of!(StrObj, nchars) as i32);
        let n = self.b.ins().ishl_imm(n, 1);
        let tagged = self.b.ins().bor_imm(n, 1);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[tagged.into()]);
        self.b.set_cold_block(slow);
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

    /// The length of list `v` (a tagged int, known as one), read inline after the list's
    /// read barrier; branches to `other` when `v` is no list.
    pub(crate) fn list_len_or(&mut self, v: Value, span: Span, other: Block) -> Value {
        self.begin_sequence(super::LOC_LIST_FAST);
        let n = self.list_len_raw(v, span, other);
        let n = self.b.ins().ishl_imm(n, 1);
        let tagged = self.b.ins().bor_imm(n, 1);
        self.end_sequence();
        self.known_ints.insert(tagged);
        tagged
    }

    /// The length of list `v` (untagged), read after its type test (branching to `other`
    /// when `v` is no list) and its read barrier.
    pub(crate) fn list_len_raw(&mut self, v: Value, span: Span, other: Block) -> Value {
        self.expect_type(v, self.sh.types.list.0, other);
        self.read_barrier_obj(v, span);
        let a = self.seg_addr(v);
        self.b
            .ins()
            .load(I64, mf(), a, offset_of!(ListObj, len) as i32)
    }

    /// Item `i` (a tagged int, from 0 up) of the iterator `it` of a `for` loop, or `UNBOUND` past its
    /// end: inline for a list (the item's granule read-marked, as `xs[i]`), else
    /// `stmjit_iter_next` (ranges, and the end of a list).
    pub(crate) fn iter_item(&mut self, it: Value, i: Value, span: Span) -> Value {
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let addr = self.list_elem(it, i, true, slow, span);
        self.read_barrier(addr, span);
        let a = self.seg_addr(addr);
        let x = self.b.ins().load(I64, mf(), a, 0);
        self.b.ins().jump(done, &[x.into()]);
        self.b.switch_to_block(slow);
        let raw = self.b.ins().sshr_imm(i, 1);
        // In a program naming `__next__` or `__getitem__`, an instance's iterator runs it,
        // which may move objects (the join starts a new barrier region either way).
        let names = &self.sh.names;
        let helper = if names.id("__next__").is_some() || names.id("__getitem__").is_some() {
            Helper::IterNextSpecial
        } else {
            Helper::IterNext
        };
        let x = self.call_checked(helper, &[self.ctx, it, raw], span);
        if helper == Helper::IterNext {
            // A big range's item beyond the tagged ints needs an allocation, which
            // IterNext may not make: it says so and the moving variant makes it.
            let moving = self.b.create_block();
            let is_moving = self
                .b
                .ins()
                .icmp_imm(IntCC::Equal, x, stmjit_vm::MOVING as i64);
            self.b.ins().brif(is_moving, moving, &[], done, &[x.into()]);
            self.b.set_cold_block(moving);
            self.b.switch_to_block(moving);
            let x = self.call_checked(Helper::IterNextSpecial, &[self.ctx, it, raw], span);
            self.b.ins().jump(done, &[x.into()]);
        } else {
            self.b.ins().jump(done, &[x.into()]);
        }
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// The inline fast path of a list method call `recv.append(v)`, `recv.pop()` or
    /// `recv.pop(i)` (the receiver in frame slot `first`, the argument after it), with the
    /// barriers `stmjit_vm`'s `list_push` / `list_pop` do: the list's read marker, the card
    /// write barrier of the appended item's granule or the read marker of the popped one,
    /// and the list's write-barrier flag test before its length is stored. Jumps to `done`
    /// with the result; to `generic` (the method-call helper) for a list whose items array
    /// is full, an empty list, or an index other than the last item's; to `other` when the
    /// receiver is no list (an instance's method of the same name).
    ///
    /// Why: the helper call costs a frame spill, the argument array and the method lookup
    /// by name, for what is a few loads and stores (richards, list-building loops).
    pub(crate) fn list_method_inline(
        &mut self,
        m: ListMethod,
        first: usize,
        done: Block,
        generic: Block,
        other: Block,
        span: Span,
    ) {
        let recv = self.load_slot(first);
        self.begin_sequence(super::LOC_LIST_FAST);
        let len = self.list_len_raw(recv, span, other);
        let ia = self.seg_addr(recv);
        let items = self
            .b
            .ins()
            .load(I64, mf(), ia, offset_of!(ListObj, items) as i32);
        let (slot, new_len) = match m {
            ListMethod::Append => {
                // An array's capacity never changes (growing makes a new array): no marker.
                let ca = self.seg_addr(items);
                let cap = self
                    .b
                    .ins()
                    .load(I64, mf(), ca, offset_of!(ArrayObj, cap) as i32);
                let full = self.b.ins().icmp(IntCC::Equal, len, cap);
                self.unless(full, generic);
                (len, self.b.ins().iadd_imm(len, 1))
            }
            ListMethod::Pop | ListMethod::PopAt => {
                self.unless_zero(len, generic);
                let last = self.b.ins().iadd_imm(len, -1);
                if m == ListMethod::PopAt {
                    // An int index naming the last item (`-1`, or `len - 1`, `0` of a
                    // one-item list); any other takes the helper, which shifts or raises.
                    let i = self.load_slot(first + 1);
                    let bit = self.b.ins().band_imm(i, 1);
                    self.only_if(bit, generic);
                    let idx = self.b.ins().sshr_imm(i, 1);
                    let neg = self.b.ins().icmp_imm(IntCC::SignedLessThan, idx, 0);
                    let wrapped = self.b.ins().iadd(idx, len);
                    let idx = self.b.ins().select(neg, wrapped, idx);
                    let is_last = self.b.ins().icmp(IntCC::Equal, idx, last);
                    self.only_if(is_last, generic);
                }
                (last, last)
            }
        };
        let off = self.b.ins().ishl_imm(slot, 3);
        let off = self.b.ins().iadd_imm(off, ARRAY_DATA as i64);
        let addr = self.b.ins().iadd(items, off);
        // The list's write barrier: its flag must be clear (young, or already tested in this
        // transaction), else the helper does the barrier. No slow-path stub here: the code
        // stays small (compile time), and a set flag is rare (once per transaction and list).
        self.flag_clear_or(recv, generic);
        let result = if m == ListMethod::Append {
            self.card_clear_or(items, off, generic);
            let v = self.load_slot(first + 1);
            let a = self.seg_addr(addr);
            self.b.ins().store(mf(), v, a, 0);
            self.b.ins().iconst(I64, NONE as i64)
        } else {
            // The item's own granule (card-marked items array), as `xs[i]`.
            self.read_barrier(addr, span);
            let a = self.seg_addr(addr);
            self.b.ins().load(I64, mf(), a, 0)
        };
        let la = self.seg_addr(recv);
        self.b
            .ins()
            .store(mf(), new_len, la, offset_of!(ListObj, len) as i32);
        self.end_sequence();
        self.jump_keeping(done, &[result.into()]);
    }

    /// Goes on when the write-barrier flag of `obj` is clear (a store to it needs no
    /// barrier); branches to `other` when it is set.
    fn flag_clear_or(&mut self, obj: Value, other: Block) {
        let fa = self.seg_addr(obj);
        let flags = self.b.ins().load(I8, mf(), fa, 0);
        let bit = self
            .b
            .ins()
            .band_imm(flags, stmjit_runtime::WRITE_BARRIER_FLAG as i64);
        self.unless(bit, other);
    }

    /// Goes on when a store to the word at `arr + off` of a card-marked array needs no
    /// barrier: the array's flag is clear, or the word's card is already marked with our
    /// read version (locked by this transaction); branches to `other` otherwise (the fast
    /// half of [`Self::card_write_barrier`]).
    fn card_clear_or(&mut self, arr: Value, off: Value, other: Block) {
        let fa = self.seg_addr(arr);
        let flags = self.b.ins().load(I8, mf(), fa, 0);
        let bit = self
            .b
            .ins()
            .band_imm(flags, stmjit_runtime::WRITE_BARRIER_FLAG as i64);
        let check_card = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(bit, check_card, &[], ok, &[]);
        self.follow(check_card);
        let addr = self.b.ins().iadd(arr, off);
        let m = self
            .b
            .ins()
            .ushr_imm(addr, stmjit_runtime::MARKER_SHIFT as i64);
        let m = self.b.ins().iadd_imm(m, self.sh.card_disp as i64);
        let ca = self.seg_addr(m);
        let card = self.b.ins().load(I8, mf(), ca, 0);
        let rv = self.read_version();
        let same = self.b.ins().icmp(IntCC::Equal, card, rv);
        self.b.ins().brif(same, ok, &[], other, &[]);
        self.b.switch_to_block(ok);
    }

    /// Goes on when `v` is not zero; branches to `other` when it is.
    fn unless_zero(&mut self, v: Value, other: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(v, next, &[], other, &[]);
        self.follow(next);
    }
}
