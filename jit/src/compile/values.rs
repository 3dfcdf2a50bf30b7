//! Tests on tagged words (`stmjit_vm::abi`: ints `n << 1 | 1`, immediates below
//! `IMMEDIATE_LIMIT`, references otherwise) and the guards of inline fast paths: a failed
//! guard branches to the slow path; a passed one goes on in a block that extends the
//! barrier region.

use super::{mf, FnCompiler};
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use stmjit_lang::diag::Span;
use stmjit_vm::abi::{Helper, TRUE};

impl FnCompiler<'_, '_> {
    /// Whether the tagged word `v` is *not* a reference (an int, or an immediate below
    /// `IMMEDIATE_LIMIT`): the test every inline fast path makes before touching an object.
    pub(crate) fn is_not_ref(&mut self, v: Value) -> Value {
        use stmjit_runtime::value::{IMMEDIATE_LIMIT, INT_TAG};
        let low = self.b.ins().band_imm(v, INT_TAG as i64);
        let small = self
            .b
            .ins()
            .icmp_imm(IntCC::UnsignedLessThan, v, IMMEDIATE_LIMIT as i64);
        let low8 = self.b.ins().icmp_imm(IntCC::NotEqual, low, 0);
        self.b.ins().bor(low8, small)
    }
    /// Goes on only if `v` is a reference; branches to `other` otherwise. Two fused branches
    /// (`test; jne; cmp; jb`) instead of [`Self::is_not_ref`]'s two materialized flags.
    pub(crate) fn unless_ref(&mut self, v: Value, other: Block) {
        use stmjit_runtime::value::{IMMEDIATE_LIMIT, INT_TAG};
        let low = self.b.ins().band_imm(v, INT_TAG as i64);
        self.unless(low, other);
        let small = self
            .b
            .ins()
            .icmp_imm(IntCC::UnsignedLessThan, v, IMMEDIATE_LIMIT as i64);
        self.unless(small, other);
    }
    /// Goes on in a new block, which extends the region ([`FnCompiler::follow`]), when
    /// `cond` is true; branches to `other` when it is false (a fast path's guard).
    pub(crate) fn only_if(&mut self, cond: Value, other: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(cond, next, &[], other, &[]);
        self.follow(next);
    }
    /// [`FnCompiler::only_if`] the other way round: goes on when `cond` is false.
    pub(crate) fn unless(&mut self, cond: Value, other: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(cond, other, &[], next, &[]);
        self.follow(next);
    }
    /// Goes on only if `v` is an object of type `type_id`; branches to `other` otherwise.
    pub(crate) fn expect_type(&mut self, v: Value, type_id: u32, other: Block) {
        let t = self.has_type(v, type_id, other);
        self.only_if(t, other);
    }
    /// Branches to `other` unless `v` is a reference, then tests its header's type id against
    /// `type_id` (no read barrier: the type of an object never changes). Returns the test.
    pub(crate) fn has_type(&mut self, v: Value, type_id: u32, other: Block) -> Value {
        self.unless_ref(v, other);
        let addr = self.seg_addr(v);
        let ty = self.b.ins().load(
            cranelift_codegen::ir::types::I32,
            mf(),
            addr,
            stmjit_vm::objects::TYPE_ID_OFFSET as i32,
        );
        self.b.ins().icmp_imm(IntCC::Equal, ty, type_id as i64)
    }
    /// Branches to `then` when `v` is true, else to `els` (no truth value is made): bools,
    /// None and ints inline; an object's truth by a helper, which may run an instance's
    /// `__bool__`/`__len__` (an error there unwinds at `span`), in cold blocks that branch
    /// to the targets themselves.
    pub(crate) fn branch_truthy(&mut self, v: Value, span: Span, then: Block, els: Block) {
        // Every edge records the region (see `Self::enter_branch_target`).
        let marked = self.region_marked();
        let is_true = self.b.ins().icmp_imm(IntCC::Equal, v, TRUE as i64);
        let not_true = self.b.create_block();
        self.record_edge(then);
        self.b.ins().brif(is_true, then, &[], not_true, &[]);
        self.follow(not_true);
        // None (0) and False (2) are the only words below 3.
        let falsy = self.b.ins().icmp_imm(IntCC::UnsignedLessThan, v, 3);
        let other = self.b.create_block();
        self.record_edge(els);
        self.b.ins().brif(falsy, els, &[], other, &[]);
        self.follow(other);
        let int = self.b.ins().band_imm(v, 1);
        let int_block = self.b.create_block();
        let obj_block = self.b.create_block();
        let (region, from) = (self.region.clone(), self.b.current_block());
        self.b.ins().brif(int, int_block, &[], obj_block, &[]);
        self.follow(int_block);
        let nz = self.b.ins().icmp_imm(IntCC::NotEqual, v, 1);
        self.brif_keeping(nz, then, els);
        self.b.set_cold_block(obj_block);
        self.b.switch_to_block(obj_block);
        self.carry_region(&region, from, obj_block);
        let first_new = self.b.func.dfg.num_blocks();
        let r = if self.truth_methods() {
            self.call_checked(Helper::TruthySpecial, &[self.ctx, v], span)
        } else {
            self.call(Helper::Truthy, &[self.ctx, v])
        };
        self.repair_all_and_keep(&marked, span);
        self.cold_brif(r, then, els);
        self.cold_from(first_new);
    }
    /// Whether the program names `__bool__` or `__len__` (interned when it was linked): only
    /// then may an instance's truth run a method, and truth tests call the helper that
    /// may move objects (its spill and reload of the locals would cost the others).
    fn truth_methods(&self) -> bool {
        self.sh.names.id("__bool__").is_some() || self.sh.names.id("__len__").is_some()
    }
    /// The truth of a value still needed afterwards (`x or y` gives `x`): returns the
    /// truth and `v` again, reloaded from a frame slot after the helper, which may move it.
    /// The inline paths keep `v` in its register.
    pub(crate) fn truthy_keep(&mut self, v: Value, span: Span) -> (Value, Value) {
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.b.append_block_param(done, I64);
        let is_true = self.b.ins().icmp_imm(IntCC::Equal, v, TRUE as i64);
        let one = self.b.ins().iconst(I64, 1);
        let zero = self.b.ins().iconst(I64, 0);
        let not_true = self.b.create_block();
        self.b
            .ins()
            .brif(is_true, done, &[one.into(), v.into()], not_true, &[]);
        self.b.switch_to_block(not_true);
        // None (0) and False (2) are the only words below 3.
        let falsy = self.b.ins().icmp_imm(IntCC::UnsignedLessThan, v, 3);
        let other = self.b.create_block();
        self.b
            .ins()
            .brif(falsy, done, &[zero.into(), v.into()], other, &[]);
        self.b.switch_to_block(other);
        let int = self.b.ins().band_imm(v, 1);
        let int_block = self.b.create_block();
        let obj_block = self.b.create_block();
        self.b.ins().brif(int, int_block, &[], obj_block, &[]);
        self.b.switch_to_block(int_block);
        let nz = self.b.ins().icmp_imm(IntCC::NotEqual, v, 1);
        let nz = self.b.ins().uextend(I64, nz);
        self.b.ins().jump(done, &[nz.into(), v.into()]);
        self.b.set_cold_block(obj_block);
        self.b.switch_to_block(obj_block);
        if !self.truth_methods() {
            let r = self.call(Helper::Truthy, &[self.ctx, v]);
            self.b.ins().jump(done, &[r.into(), v.into()]);
        } else {
            let mark = self.temp_mark();
            let t = self.push_temp(v);
            let r = self.call_checked(Helper::TruthySpecial, &[self.ctx, v], span);
            let v2 = self.load_slot(t);
            self.pop_temps(mark);
            self.b.ins().jump(done, &[r.into(), v2.into()]);
        }
        self.b.switch_to_block(done);
        let r = self.b.block_params(done)[0];
        let v = self.b.block_params(done)[1];
        (self.b.ins().icmp_imm(IntCC::NotEqual, r, 0), v)
    }
    /// Branches to `slow` unless both words are ints; continues in a fresh block.
    pub(super) fn both_ints(&mut self, x: Value, y: Value, slow: Block) {
        // A constant int operand needs no check.
        let (x, y) = match (self.known_int(x), self.known_int(y)) {
            (true, true) => return,
            (true, false) => (y, y),
            (false, true) => (x, x),
            (false, false) => (x, y),
        };
        let both = self.b.ins().band(x, y);
        let bit = self.b.ins().band_imm(both, 1);
        self.only_if_ints(bit, &[x, y], slow);
    }
    /// [`Self::only_if`] after a test that `tested` are ints: where it passed, the locals
    /// they were read from hold known ints (a copy of each word, the parameter of the block
    /// that goes on, which only code that block dominates sees: later reads of the local
    /// there, the body of a loop whose condition tested it, need no test again). Cranelift
    /// folds the copy back into the word; only the compiler's knowledge differs.
    pub(crate) fn only_if_ints(&mut self, cond: Value, tested: &[Value], other: Block) {
        let next = self.b.create_block();
        let mut locals: Vec<(Value, usize)> = Vec::new();
        if !self.locals_in_slots {
            for &v in tested {
                if let Some(&l) = self.local_of.get(&v) {
                    if self.float_var(l).is_none() && !locals.iter().any(|&(w, _)| w == v) {
                        locals.push((v, l));
                    }
                }
            }
        }
        let args: Vec<_> = locals.iter().map(|&(v, _)| v.into()).collect();
        for _ in &locals {
            self.b.append_block_param(next, I64);
        }
        self.b.ins().brif(cond, next, &args, other, &[]);
        self.follow(next);
        for (k, &(_, l)) in locals.iter().enumerate() {
            let w = self.b.block_params(next)[k];
            self.known_ints.insert(w);
            self.local_of.insert(w, l);
            self.b.def_var(self.local_vars[l], w);
        }
    }
    /// The word of `v` if it is an `iconst` of a tagged int (odd).
    pub(super) fn int_const(&self, v: Value) -> Option<i64> {
        use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
        match self.b.func.dfg.value_def(v) {
            ValueDef::Result(inst, _) => match self.b.func.dfg.insts[inst] {
                InstructionData::UnaryImm {
                    opcode: Opcode::Iconst,
                    imm,
                } if imm.bits() & 1 == 1 => Some(imm.bits()),
                _ => None,
            },
            _ => None,
        }
    }
    /// Whether `v` is an `iconst` of a tagged int, or known to be a tagged int
    /// ([`FnCompiler::known_ints`]).
    pub(super) fn known_int(&self, v: Value) -> bool {
        use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
        if self.known_ints.contains(&v) {
            return true;
        }
        match self.b.func.dfg.value_def(v) {
            ValueDef::Result(inst, _) => matches!(
                self.b.func.dfg.insts[inst],
                InstructionData::UnaryImm { opcode: Opcode::Iconst, imm } if imm.bits() & 1 == 1
            ),
            _ => false,
        }
    }
}
