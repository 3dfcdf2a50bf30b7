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

use super::floats::{float_likely, has_local, local_leaves, mixed_ops, sqrt_arg};
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::F64, types::I64};
use cranelift_codegen::ir::{Block, InstBuilder, Value};
use cranelift_frontend::Variable;
use stmjit_lang::ast::{BinOp, Builtin, Expr, ExprKind, Name, Slot, Target};
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
        let f = self.b.use_var(fv);
        let v = self.box_if_unboxed(w, f);
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

    /// The `f64` of a tree leaf whose word is `w` and unboxed value `f` (of its local's
    /// variable, or read raw from an instance slot): `f` where `w` is `UNBOXED`, else as
    /// [`Self::word_leaf`] takes `w`.
    pub(super) fn unboxed_leaf(
        &mut self,
        w: Value,
        f: Value,
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
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(word);
        let f = self.word_leaf(w, int_ok, generic);
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// `n = value` kept unboxed where `n` may be and `value` is a float tree of at least
    /// one operation (opaque leaves allowed: [`Self::unboxed_mixed`]) where a float is
    /// likely; `false` (nothing emitted) otherwise. (Not
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
        let mut opaque = Vec::new();
        // The local itself says a float is likely (`dx = b.x - c.x`, `dx` flowing into
        // float trees).
        if !matches!(mixed_ops(value, &mut opaque), Some(1..))
            || !(float_likely(value, &self.float_locals) || self.float_locals[i])
        {
            return false;
        }
        if opaque.is_empty() {
            if !has_local(value) {
                return false;
            }
            self.unboxed_store(
                i,
                fv,
                |c, generic| c.float_tree(value, false, generic),
                |c| c.expr(value),
            );
            return true;
        }
        self.unboxed_mixed(i, fv, value, &opaque, false)
    }

    /// `n = m` of two float locals kept unboxed, `m` dead after it (`moves.rs`): `m`'s word
    /// (`UNBOXED` included) and `f64` copied, no box; `false` (nothing emitted) where it
    /// does not apply.
    pub(crate) fn unboxed_move(&mut self, targets: &[Target], value: &Expr) -> bool {
        let ([Target::Name(n)], ExprKind::Name(m)) = (targets, &value.kind) else {
            return false;
        };
        let (Slot::Local(i), Slot::Local(j)) = (n.slot, m.slot) else {
            return false;
        };
        let (Some(fi), Some(fj)) = (self.float_var(i), self.float_var(j)) else {
            return false;
        };
        // An unbound `m` raises: the generic code says so.
        if self.in_float_generic || !self.assigned[j] {
            return false;
        }
        let w = self.raw_local(j);
        let f = self.b.use_var(fj);
        self.store_slot(i, w);
        self.b.def_var(fi, f);
        self.assigned[i] = true;
        true
    }

    /// `n OP= value` (`OP` one of `+ - * /`) kept unboxed where `n` may be, as the float
    /// tree `n OP value`: with no opaque leaf, the generic code evaluates the statement
    /// again (a tree has no effect); else as [`Self::unboxed_mixed`] does. `false` (nothing
    /// emitted) where it does not apply.
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
        let leaf = Expr {
            kind: ExprKind::Name(n.clone()),
            span: n.span,
        };
        let whole = Expr {
            kind: ExprKind::Binary(op, Box::new(leaf), Box::new(value.clone())),
            span,
        };
        let mut opaque = Vec::new();
        if mixed_ops(&whole, &mut opaque).is_none() {
            return false;
        }
        if opaque.is_empty() {
            self.unboxed_store(
                i,
                fv,
                |c, generic| c.float_tree(&whole, false, generic),
                |c| c.aug_name_value(n, op, value, span),
            );
            return true;
        }
        self.unboxed_mixed(i, fv, &whole, &opaque, true)
    }

    /// `local i = e` (or, `aug`, `i OP= ...` as `e`, its root, computes it) for a float tree
    /// `e` with opaque leaves (`floats::mixed_ops`): the leaves evaluated into temporaries
    /// first, in order, as Python evaluates them before any operation of the tree
    /// ([`Self::enter_mixed`]; `false`, nothing emitted, where it cannot); then the tree on
    /// `f64` values kept unboxed, or the generic operations on the same values.
    fn unboxed_mixed(
        &mut self,
        i: usize,
        fv: Variable,
        e: &Expr,
        opaque: &[&Expr],
        aug: bool,
    ) -> bool {
        let Some(mark) = self.enter_mixed(e, opaque, None) else {
            return false;
        };
        self.unboxed_store(
            i,
            fv,
            |c, generic| c.float_tree(e, false, generic),
            |c| c.generic_mixed(e, aug),
        );
        self.opaque_leaves.clear();
        self.pop_temps(mark);
        true
    }

    /// Evaluates the opaque leaves `opaque` of the float tree `e` into temporaries, in
    /// order (the first one is in temporary `first` already where given, with its raw
    /// `f64` if it was read so), and records them for [`FnCompiler::float_tree`]: the
    /// temporaries' mark, or `None` (nothing emitted) where a local leaf may be unbound (it
    /// would raise before the leaves after it are evaluated). An attribute leaf is read
    /// raw ([`FnCompiler::getattr_raw`]): a float slot gives its `f64`, no box; so is a call
    /// computed inline that returns a quotient ([`FnCompiler::call_expr_in`]).
    fn enter_mixed(
        &mut self,
        e: &Expr,
        opaque: &[&Expr],
        first: Option<(usize, Option<Value>)>,
    ) -> Option<usize> {
        if !self.locals_assigned(e) {
            return None;
        }
        let mark = self.temp_mark();
        let mut slots = Vec::new();
        for (k, &leaf) in opaque.iter().enumerate() {
            let (t, raw) = match (first, &leaf.kind) {
                (Some(first), _) if k == 0 => first,
                (_, ExprKind::Attr { obj, name }) => {
                    let o = self.expr(obj);
                    let r = self.getattr_raw(o, name, leaf.span);
                    (self.push_temp(r.word), Some(r.f))
                }
                // A call computed inline gives its quotient unboxed (`eval_a(i, j)`).
                (_, ExprKind::Call { func, args }) if self.raw_callee(func, args.len()) => {
                    self.has_calls = true;
                    let (w, f) = self.call_expr_in(func, args, leaf.span, true);
                    (self.push_temp(w), Some(f))
                }
                _ => {
                    let w = self.expr(leaf);
                    (self.push_temp(w), None)
                }
            };
            slots.push((leaf as *const Expr, t, raw));
        }
        self.opaque_leaves = slots;
        Some(mark)
    }

    /// Whether every local leaf of the tree `e` is certainly assigned here.
    fn locals_assigned(&self, e: &Expr) -> bool {
        let mut locals = Vec::new();
        local_leaves(e, &mut locals);
        locals.iter().all(|&l| self.assigned[l])
    }

    /// The tree `t OP value` of `t OP= value` (`OP` one of `+ - * /`) for a target `t` that
    /// is not a name, with its current value as a placeholder first leaf, if the statement
    /// is computed as a float tree ([`Self::float_aug`]); `None` where it is not.
    pub(crate) fn float_aug_tree(&self, op: BinOp, value: &Expr, span: Span) -> Option<Expr> {
        if self.in_float_generic
            || !matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div)
            || self.huge(value)
            || !(float_likely(value, &self.float_locals) || self.float_attr_leaf(value))
        {
            return None;
        }
        // The current value: a placeholder leaf (`None` is no leaf of a tree: opaque).
        let cur = Expr {
            kind: ExprKind::None,
            span,
        };
        let whole = Expr {
            kind: ExprKind::Binary(op, Box::new(cur), Box::new(value.clone())),
            span,
        };
        mixed_ops(&whole, &mut Vec::new())?;
        self.locals_assigned(&whole).then_some(whole)
    }

    /// Whether the tree `e` has an attribute leaf of a name that the function stores float
    /// trees to ([`super::floats::float_attrs`]): `x += dt * o.vx`.
    fn float_attr_leaf(&self, e: &Expr) -> bool {
        super::raw_slots::attr_leaf_in(e, &self.float_attrs)
    }

    /// `t OP= value` for a target `t` whose current value is in temporary `ct` (`o.x`,
    /// `o[i]`; with its raw `f64` `cur` where read so), as the float tree `whole` that
    /// [`Self::float_aug_tree`] gave: its opaque leaves evaluated after `t`; gives `(word,
    /// f64)`: where `raw`, `(UNBOXED, f)` on the fast path (for [`Self::setattr_raw`]), else
    /// the result boxed once.
    pub(crate) fn float_aug(
        &mut self,
        ct: usize,
        cur: Option<Value>,
        whole: &Expr,
        raw: bool,
    ) -> (Value, Value) {
        let span = whole.span;
        let mut opaque = Vec::new();
        mixed_ops(whole, &mut opaque);
        // The placeholder comes first in Python's order.
        let mark = self
            .enter_mixed(whole, &opaque, Some((ct, cur)))
            .expect("float_aug_tree checked the locals");
        // Raw, the fast path makes no call (no box): the region goes on to the store.
        let v = self.with_generic_n(
            &[I64, F64],
            raw,
            |c, generic| {
                let f = c.float_tree(whole, false, generic);
                if raw {
                    let u = c.b.ins().iconst(I64, UNBOXED as i64);
                    vec![u, f]
                } else {
                    vec![c.box_float(f, span), f]
                }
            },
            |c| {
                let w = c.generic_mixed(whole, true);
                vec![w, c.b.ins().f64const(0.0)]
            },
        );
        self.opaque_leaves.clear();
        self.pop_temps(mark);
        (v[0], v[1])
    }

    /// The temporary holding the value of `e` if it is an opaque leaf of the float tree
    /// being compiled, and its raw `f64` where it may hold `UNBOXED`.
    pub(super) fn opaque_slot(&self, e: &Expr) -> Option<(usize, Option<Value>)> {
        let p: *const Expr = e;
        self.opaque_leaves
            .iter()
            .find(|(q, _, _)| *q == p)
            .map(|&(_, t, raw)| (t, raw))
    }

    /// The generic code of a float tree with opaque leaves (already evaluated): operation
    /// by operation, as [`FnCompiler::expr`] computes them (`inplace`: the root is `OP=`).
    fn generic_mixed(&mut self, e: &Expr, inplace: bool) -> Value {
        if let Some((t, raw)) = self.opaque_slot(e) {
            let w = self.load_slot(t);
            return match raw {
                Some(f) => self.box_if_unboxed(w, f),
                None => w,
            };
        }
        match &e.kind {
            ExprKind::Binary(op, a, b) => {
                let mark = self.temp_mark();
                let x = self.generic_mixed(a, false);
                let t = self.push_temp(x);
                let y = self.generic_mixed(b, false);
                let x = self.load_slot(t);
                self.pop_temps(mark);
                self.binop(*op, x, y, e.span, inplace)
            }
            ExprKind::Call { .. } if sqrt_arg(e).is_some() => {
                let a = sqrt_arg(e).expect("checked");
                let x = self.generic_mixed(a, false);
                self.builtin_on(Builtin::Sqrt, x, e.span)
            }
            _ => self.expr(e),
        }
    }

    /// `w`, or where it is `UNBOXED`, a box of `f` (out of line).
    pub(crate) fn box_if_unboxed(&mut self, w: Value, f: Value) -> Value {
        let unboxed = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let is = self.b.ins().icmp_imm(IntCC::Equal, w, UNBOXED as i64);
        self.b.ins().brif(is, unboxed, &[], done, &[w.into()]);
        self.b.set_cold_block(unboxed);
        self.b.switch_to_block(unboxed);
        let first_new = self.b.func.dfg.num_blocks();
        let span = self.stmt_span;
        let boxed = self.box_float(f, span);
        self.b.ins().jump(done, &[boxed.into()]);
        self.cold_from(first_new);
        self.enter_join(done, Default::default());
        self.b.block_params(done)[0]
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
        // The barrier region goes on after the join (issue 16: `dx = b.x - b2.x` had ended
        // it, so every statement of a float loop marked its objects and tested their
        // write-barrier flags again). Sound as `with_generic_n`'s `keep`: the marks held
        // before the tree hold at the end of its fast path, which makes no call (float
        // operations, `sqrt`, leaf tests and unboxing loads; every failure branches to
        // the generic block); the generic path's calls (binop helpers, `sqrt`) restart in
        // no frame (no poll, no join statement), so after them the same transaction runs,
        // or an inevitable one, and `repair_region` stores each marker again with the
        // current read version and redoes each write-barrier flag test before the join.
        let marked = self.region_marked();
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
        let span = self.stmt_span;
        self.repair_region(&marked, span);
        let z = self.b.ins().f64const(0.0);
        self.b.ins().jump(done, &[w.into(), z.into()]);
        self.cold_from(first_new);
        self.enter_join(done, marked);
        let (w, f) = (self.b.block_params(done)[0], self.b.block_params(done)[1]);
        self.store_slot(i, w);
        self.b.def_var(fv, f);
        self.assigned[i] = true;
    }
}
