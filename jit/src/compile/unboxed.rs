//! Float locals kept unboxed across statements.
//!
//! A float tree (`floats.rs`) is computed on `f64` values but boxed when it ends, so
//! `zr = t` or `s += x * y` in a loop allocated a box at every assignment. Here a local
//! that the function assigns floats to ([`super::floats::float_locals`]) gets a second
//! variable of type `f64`, and an assignment of a float tree to it (or `x OP= ...` with
//! `OP` one of `+ - * /`) stores the sentinel word
//! `UNBOXED` in the local and the value in that variable: no box.
//!
//! The local is boxed again (the box stored in it) where anything reads it as a word:
//! every read but a float tree's leaves ([`FnCompiler::local_value`]); before a poll's slow
//! path, so that a restart finds boxes in the frame slots; before a part that reads the
//! frame is called. A spilled `UNBOXED` (around a call) is an immediate, which the GC
//! skips. Since reading such a local may allocate, it is not a "simple" expression
//! ([`FnCompiler::is_simple`]): values computed before it are kept in temporaries. The
//! value is the one an assignment of the generic code would have boxed, so results do not
//! change; the generic paths (a leaf not a float, a zero divisor) box and run as before.

use super::floats::{float_likely, has_local, tree_ops};
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::F64, types::I64};
use cranelift_codegen::ir::{Block, InstBuilder, Value};
use cranelift_frontend::Variable;
use stmjit_lang::ast::{BinOp, Expr, ExprKind, Name, Slot};
use stmjit_lang::diag::Span;
use stmjit_vm::abi::UNBOXED;

impl FnCompiler<'_, '_> {
    /// The `f64` variable of local `slot` if it may be kept unboxed.
    pub(crate) fn float_var(&self, slot: usize) -> Option<Variable> {
        self.float_vars.get(slot).copied().flatten()
    }

    /// The word of local `i` as it is (`UNBOXED` included).
    pub(super) fn raw_local(&mut self, i: usize) -> Value {
        if self.locals_in_slots {
            let f = self.frame();
            self.b.ins().load(I64, super::mf(), f, 8 * i as i32)
        } else {
            self.b.use_var(self.local_vars[i])
        }
    }

    /// The word of local `slot`, whose unboxed variable is `fv`: its box, made and stored in
    /// the local (out of line) where it holds `UNBOXED`.
    pub(crate) fn box_unboxed(&mut self, slot: usize, fv: Variable) -> Value {
        let w = self.b.use_var(self.local_vars[slot]);
        let unboxed = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let is = self.b.ins().icmp_imm(IntCC::Equal, w, UNBOXED as i64);
        self.b.ins().brif(is, unboxed, &[], done, &[w.into()]);
        self.b.set_cold_block(unboxed);
        self.b.switch_to_block(unboxed);
        let first_new = self.b.func.dfg.num_blocks();
        let f = self.b.use_var(fv);
        let span = self.stmt_span;
        let boxed = self.box_float(f, span);
        self.b.ins().jump(done, &[boxed.into()]);
        self.cold_from(first_new);
        self.enter_join(done, Default::default());
        let v = self.b.block_params(done)[0];
        self.b.def_var(self.local_vars[slot], v);
        v
    }

    /// Boxes every local kept unboxed (see the module docs).
    pub(crate) fn box_all_unboxed(&mut self) {
        for slot in 0..self.float_vars.len() {
            if let Some(fv) = self.float_var(slot) {
                self.box_unboxed(slot, fv);
            }
        }
    }

    /// The `f64` of a tree leaf whose word is `w` and unboxed variable `fv`: the variable
    /// where `w` is `UNBOXED`, else as [`Self::word_leaf`] takes it.
    pub(super) fn unboxed_leaf(
        &mut self,
        w: Value,
        fv: Variable,
        int_ok: bool,
        generic: Block,
    ) -> Value {
        let unboxed = self.b.create_block();
        let word = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, F64);
        let is = self.b.ins().icmp_imm(IntCC::Equal, w, UNBOXED as i64);
        self.b.ins().brif(is, unboxed, &[], word, &[]);
        self.b.switch_to_block(unboxed);
        let f = self.b.use_var(fv);
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(word);
        let f = self.word_leaf(w, int_ok, generic);
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// `n = value` kept unboxed where `n` may be and `value` is a float tree of at least
    /// one operation with a local (a float likely); `false` (nothing emitted) otherwise. (Not
    /// a copy `n = m` of such a local: the two would box apart, and `n is m` must hold.)
    pub(crate) fn unboxed_assign(&mut self, n: &Name, value: &Expr) -> bool {
        let Slot::Local(i) = n.slot else {
            return false;
        };
        let Some(fv) = self.float_var(i) else {
            return false;
        };
        if self.in_float_generic || self.huge(value) {
            return false;
        }
        if !matches!(tree_ops(value), Some(1..))
            || !has_local(value)
            || !float_likely(value, &self.float_locals)
        {
            return false;
        }
        self.unboxed_store(
            i,
            fv,
            |c, generic| c.float_tree(value, false, generic),
            |c| c.expr(value),
        );
        true
    }

    /// `n OP= value` (`OP` one of `+ - * /`) kept unboxed where `n` may be: a float tree
    /// where `value` is one (the generic code evaluates the statement again: a tree has no
    /// effect), else `value` evaluated first, then the operation inline where `n` holds a
    /// float and `value` a float or an int of magnitude at most 2^53, the generic operation
    /// on the same two values otherwise. `false` (nothing emitted) where it does not apply.
    pub(crate) fn unboxed_aug(&mut self, n: &Name, op: BinOp, value: &Expr, span: Span) -> bool {
        let Slot::Local(i) = n.slot else {
            return false;
        };
        let Some(fv) = self.float_var(i) else {
            return false;
        };
        if self.in_float_generic
            || !matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div)
            || self.huge(value)
        {
            return false;
        }
        if tree_ops(value).is_some() {
            let leaf = Expr {
                kind: ExprKind::Name(n.clone()),
                span: n.span,
            };
            let whole = Expr {
                kind: ExprKind::Binary(op, Box::new(leaf), Box::new(value.clone())),
                span,
            };
            self.unboxed_store(
                i,
                fv,
                |c, generic| c.float_tree(&whole, false, generic),
                |c| c.aug_name_value(n, op, value, span),
            );
            return true;
        }
        if !self.assigned[i] {
            // The generic code raises before `value` is evaluated.
            return false;
        }
        let e = self.expr(value);
        let mark = self.temp_mark();
        let t = self.push_temp(e);
        self.unboxed_store(
            i,
            fv,
            |c, generic| {
                let w = c.raw_local(i);
                let x = c.unboxed_leaf(w, fv, false, generic);
                let y = c.number_f64(e, generic);
                c.float_op(op, x, y, generic)
            },
            |c| {
                // Boxing the local may collect: the value is read back from its slot.
                let cur = c.load_slot(i);
                let e = c.load_slot(t);
                c.binop(op, cur, e, span, true)
            },
        );
        self.pop_temps(mark);
        true
    }

    /// Stores into local `i` (unboxed variable `fv`) the `f64` that `fast` computes (given
    /// the block to branch to when it cannot), unboxed, or the word of `generic` (out of
    /// line, compiled as a float tree's generic path is).
    fn unboxed_store(
        &mut self,
        i: usize,
        fv: Variable,
        fast: impl FnOnce(&mut Self, Block) -> Value,
        generic: impl FnOnce(&mut Self) -> Value,
    ) {
        let generic_block = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.b.append_block_param(done, F64);
        let f = fast(self, generic_block);
        let u = self.b.ins().iconst(I64, UNBOXED as i64);
        self.b.ins().jump(done, &[u.into(), f.into()]);
        self.b.set_cold_block(generic_block);
        self.b.switch_to_block(generic_block);
        let first_new = self.b.func.dfg.num_blocks();
        self.in_float_generic = true;
        let w = generic(self);
        self.in_float_generic = false;
        let z = self.b.ins().f64const(0.0);
        self.b.ins().jump(done, &[w.into(), z.into()]);
        self.cold_from(first_new);
        self.enter_join(done, Default::default());
        let (w, f) = (self.b.block_params(done)[0], self.b.block_params(done)[1]);
        self.store_slot(i, w);
        self.b.def_var(fv, f);
        self.assigned[i] = true;
    }
}
