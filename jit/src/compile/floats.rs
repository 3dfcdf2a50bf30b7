//! Float arithmetic trees computed unboxed.
//!
//! Every float is a boxed object, so `zr * zr - zi * zi + cr` computed operation by
//! operation allocates a box per intermediate result. Here a tree of `+ - * /` whose
//! leaves are float literals and local variables is computed on `f64` values and boxed
//! once, or, as the operand of a comparison in a condition, not at all.
//!
//! A tree is compiled so only where floats are likely: it has a float literal, or a local
//! that the function assigns a float-like expression to (a float literal, `sqrt(...)`, or a
//! tree with one of those or such a local, other expressions allowed among its leaves:
//! [`float_locals`]). Int code (`i * i <= n`) keeps its
//! inline int paths without a float test in front of them.
//!
//! The fast path loads the locals without their "unbound" check and tests that each holds
//! a float, or an int where the other operand of its operator gives a float (a float
//! literal or an operation: Python converts the int then); otherwise (an unbound local, any other type), and for a zero divisor,
//! it branches to the generic code of the same expression, which reads the locals again
//! (reading a local has no effect) and computes operation by operation, raising where the
//! program would. So the fast path is taken only when its result is the generic one: the
//! same IEEE operations in the same order, on the same values.

use super::expr::single_compare;
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::FloatCC, condcodes::IntCC, types::F64, types::I64};
use cranelift_codegen::ir::{Block, InstBuilder, Value};
use stmjit_lang::ast::{BinOp, Builtin, CmpOp, Expr, ExprKind, Slot, Stmt, StmtKind, Target};
use stmjit_lang::diag::Span;

/// Ints exactly representable as `f64`: int literals up to this size may be leaves.
const EXACT_INT: i64 = 1 << 53;

/// The argument of `e` if it is `sqrt(x)` of the builtin (no global of the program is named
/// so): an operation of float trees, and [`FnCompiler::sqrt_expr`].
pub(super) fn sqrt_arg(e: &Expr) -> Option<&Expr> {
    let ExprKind::Call { func, args } = &e.kind else {
        return None;
    };
    let ExprKind::Name(n) = &func.kind else {
        return None;
    };
    match (n.slot, args.as_slice()) {
        (Slot::Builtin(Builtin::Sqrt), [x]) => Some(x),
        _ => None,
    }
}

/// Whether `e` is a leaf of a float tree: a float literal, a small int literal, or a local
/// variable.
fn is_leaf(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Float(_) => true,
        ExprKind::Int(i) => i.abs() < EXACT_INT,
        ExprKind::Name(n) => matches!(n.slot, Slot::Local(_)),
        _ => false,
    }
}

/// Whether `e` gives a float on the fast path whatever its locals hold: a float literal,
/// or an operation (the fast path computes operations on floats only). An int next to it
/// is converted, as Python converts the int operand of a float operation (round to
/// nearest, as `fcvt` does; 63-bit ints never overflow an `f64`).
fn gives_float(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Float(_) | ExprKind::Binary(..)) || sqrt_arg(e).is_some()
}

/// Whether `x` and `other` are both int literals: an operation on them stays an int. Next
/// to anything else an int literal is converted on the fast path, where its operand is a
/// float (a float literal, an operation, or a local that the fast path checked holds a
/// float).
fn int_alone(x: &Expr, other: &Expr) -> bool {
    matches!(x.kind, ExprKind::Int(_)) && matches!(other.kind, ExprKind::Int(_))
}

/// The number of operations of `e` as a float tree (0 for a leaf), or `None` if it is not
/// one. Two int literals are not an operation of a tree.
fn tree_ops(e: &Expr) -> Option<usize> {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            if int_alone(a, b) || int_alone(b, a) {
                return None;
            }
            Some(tree_ops(a)? + tree_ops(b)? + 1)
        }
        ExprKind::Call { .. } => Some(tree_ops(sqrt_arg(e)?)? + 1),
        _ if is_leaf(e) => Some(0),
        _ => None,
    }
}

/// The number of operations of `e` as a float tree whose leaves may also be other
/// expressions ("opaque" leaves, pushed onto `opaque` in Python's order of evaluation, which
/// evaluates them all before any operation), or `None` if it is not one: an operation would
/// come before an opaque leaf (evaluating the leaves first would move it), or two int
/// literals meet.
pub(super) fn mixed_ops<'e>(e: &'e Expr, opaque: &mut Vec<&'e Expr>) -> Option<usize> {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            if int_alone(a, b) || int_alone(b, a) {
                return None;
            }
            let left = mixed_ops(a, opaque)?;
            let before = opaque.len();
            let right = mixed_ops(b, opaque)?;
            if left > 0 && opaque.len() > before {
                return None;
            }
            Some(left + right + 1)
        }
        ExprKind::Call { .. } if sqrt_arg(e).is_some() => {
            Some(mixed_ops(sqrt_arg(e)?, opaque)? + 1)
        }
        _ if is_leaf(e) => Some(0),
        _ => {
            opaque.push(e);
            Some(0)
        }
    }
}

/// The local leaves of the (mixed) float tree `e`, by slot.
pub(super) fn local_leaves(e: &Expr, out: &mut Vec<usize>) {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            local_leaves(a, out);
            local_leaves(b, out);
        }
        ExprKind::Call { .. } => {
            if let Some(a) = sqrt_arg(e) {
                local_leaves(a, out);
            }
        }
        ExprKind::Name(n) => {
            if let Slot::Local(i) = n.slot {
                out.push(i);
            }
        }
        _ => {}
    }
}

/// Whether `e` is a tree where floats are likely (see the module docs): a float literal,
/// or a local marked in `float_locals`, among its leaves.
pub(super) fn float_likely(e: &Expr, float_locals: &[bool]) -> bool {
    match &e.kind {
        ExprKind::Float(_) => true,
        ExprKind::Name(n) => matches!(n.slot, Slot::Local(i) if float_locals[i]),
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            float_likely(a, float_locals) || float_likely(b, float_locals)
        }
        // `sqrt` gives a float whatever its argument.
        ExprKind::Call { .. } => sqrt_arg(e).is_some(),
        _ => false,
    }
}

/// The locals of a function body that it assigns float-likely values to, by slot: to a
/// fixpoint, since `t = zr * zr + c` makes `t` one if `zr` is (and `m = o.mass * t`, a
/// tree with opaque leaves: [`mixed_ops`]).
pub(crate) fn float_locals(body: &[Stmt], nlocals: usize) -> Vec<bool> {
    fn mark(target: &Target, marks: &mut [bool], changed: &mut bool) {
        if let Target::Name(n) = target {
            if let Slot::Local(i) = n.slot {
                *changed |= !marks[i];
                marks[i] = true;
            }
        }
    }
    fn visit(stmts: &[Stmt], marks: &mut Vec<bool>, trees: &[bool], changed: &mut bool) {
        let floaty = |value: &Expr, marks: &[bool]| {
            mixed_ops(value, &mut Vec::new()).is_some() && float_likely(value, marks)
        };
        for s in stmts {
            match &s.kind {
                StmtKind::Assign { targets, value } => {
                    if floaty(value, marks) {
                        for t in targets {
                            mark(t, marks, changed);
                        }
                    }
                    // What a float likely flows from: the `+ - *` leaves of a tree assigned to
                    // a float local, and the arguments of `sqrt`.
                    let into_float = matches!(targets.as_slice(),
                        [Target::Name(n)] if matches!(n.slot, Slot::Local(i) if marks[i]));
                    hint(value, into_float, marks, trees, changed);
                }
                StmtKind::AugAssign { target, value, .. } => {
                    if floaty(value, marks) {
                        mark(target, marks, changed);
                    }
                    let into_float = matches!(target, Target::Name(n) if matches!(n.slot, Slot::Local(i) if marks[i]));
                    hint(value, into_float, marks, trees, changed);
                }
                _ => {
                    for b in s.blocks() {
                        visit(b, marks, trees, changed);
                    }
                }
            }
        }
    }
    /// Marks the locals of `trees` (those assigned a tree somewhere) that a float likely
    /// flows from in the tree `e`: where `flows`, its leaves through `+ - *`; under `sqrt`,
    /// its argument's.
    fn hint(e: &Expr, flows: bool, marks: &mut [bool], trees: &[bool], changed: &mut bool) {
        match &e.kind {
            ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul, a, b) => {
                hint(a, flows, marks, trees, changed);
                hint(b, flows, marks, trees, changed);
            }
            ExprKind::Binary(BinOp::Div, a, b) => {
                hint(a, false, marks, trees, changed);
                hint(b, false, marks, trees, changed);
            }
            ExprKind::Call { .. } => {
                if let Some(a) = sqrt_arg(e) {
                    hint(a, true, marks, trees, changed);
                }
            }
            ExprKind::Name(n) => {
                if let Slot::Local(i) = n.slot {
                    if flows && trees[i] && !marks[i] {
                        marks[i] = true;
                        *changed = true;
                    }
                }
            }
            _ => {}
        }
    }
    /// The locals assigned a tree of at least one operation somewhere (`x = a.m * b`,
    /// `x OP= ...`): those a hint may mark (a float local assigned no tree would only be
    /// boxed at its reads).
    fn trees_of(stmts: &[Stmt], trees: &mut [bool]) {
        for s in stmts {
            match &s.kind {
                StmtKind::Assign { targets, value }
                    if matches!(mixed_ops(value, &mut Vec::new()), Some(1..)) =>
                {
                    for t in targets {
                        mark(t, trees, &mut false);
                    }
                }
                StmtKind::AugAssign { target, .. } => mark(target, trees, &mut false),
                _ => {
                    for b in s.blocks() {
                        trees_of(b, trees);
                    }
                }
            }
        }
    }
    let mut trees = vec![false; nlocals];
    trees_of(body, &mut trees);
    let mut marks = vec![false; nlocals];
    loop {
        let mut changed = false;
        visit(body, &mut marks, &trees, &mut changed);
        if !changed {
            return marks;
        }
    }
}

/// The attribute names that a function body stores trees where a float is likely to (`o.x
/// OP= tree` or `o.x = tree`), to a fixpoint: `x += dt * o.vx` makes `x` one if `vx` is.
pub(crate) fn float_attrs(body: &[Stmt], float_locals: &[bool]) -> Vec<String> {
    fn floaty(e: &Expr, float_locals: &[bool], names: &[String]) -> bool {
        match &e.kind {
            ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
                floaty(a, float_locals, names) || floaty(b, float_locals, names)
            }
            ExprKind::Attr { name, .. } => names.iter().any(|n| *n == **name),
            _ => float_likely(e, float_locals),
        }
    }
    fn visit(stmts: &[Stmt], float_locals: &[bool], names: &mut Vec<String>, changed: &mut bool) {
        for s in stmts {
            let (targets, value) = match &s.kind {
                StmtKind::Assign { targets, value } => (targets.as_slice(), value),
                StmtKind::AugAssign { target, value, .. } => (std::slice::from_ref(target), value),
                _ => {
                    for b in s.blocks() {
                        visit(b, float_locals, names, changed);
                    }
                    continue;
                }
            };
            if mixed_ops(value, &mut Vec::new()).is_none() || !floaty(value, float_locals, names) {
                continue;
            }
            for t in targets {
                if let Target::Attr { name, .. } = t {
                    if !names.iter().any(|n| *n == **name) {
                        names.push(name.to_string());
                        *changed = true;
                    }
                }
            }
        }
    }
    let mut names = Vec::new();
    loop {
        let mut changed = false;
        visit(body, float_locals, &mut names, &mut changed);
        if !changed {
            return names;
        }
    }
}

/// A tree with at least one local among its leaves (a tree of literals alone is left to the
/// generic code, which gives it its exact types).
pub(super) fn has_local(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary(_, a, b) => has_local(a) || has_local(b),
        ExprKind::Call { .. } => sqrt_arg(e).is_some_and(has_local),
        ExprKind::Name(_) => true,
        _ => false,
    }
}

impl FnCompiler<'_, '_> {
    /// `x / y` (`x /= y` where `inplace`): inline when each operand is a float or an int of
    /// magnitude at most 2^53 and the divisor is not zero, boxed once; else (other types, a
    /// zero divisor, bigger ints) the helper, out of line. Such an int converts exactly, so
    /// the one IEEE division is correctly rounded as Python's true division of two ints
    /// is, and gives what Python gives for a float and an int (the int converted, then
    /// divided). The join starts an empty barrier region.
    pub(crate) fn true_div(&mut self, x: Value, y: Value, span: Span, inplace: bool) -> Value {
        let generic = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let r = self.unboxed_div(x, y, generic);
        let boxed = self.box_float(r, span);
        self.b.ins().jump(done, &[boxed.into()]);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
        let first_new = self.b.func.dfg.num_blocks();
        let r = self.binop_helper(BinOp::Div, x, y, span, inplace);
        self.b.ins().jump(done, &[r.into()]);
        self.cold_from(first_new);
        self.enter_join(done, Default::default());
        self.b.block_params(done)[0]
    }

    /// `x / y` as [`Self::true_div`] computes it inline, or a branch to `other` where that
    /// cannot go on (a full nursery included): for code that has a way out of its own
    /// (`inline.rs`).
    pub(super) fn float_div_or(&mut self, x: Value, y: Value, span: Span, other: Block) -> Value {
        let r = self.unboxed_div(x, y, other);
        self.box_float_or(r, span, Some(other))
    }

    /// The `f64` quotient of the words `x` and `y` (see [`Self::true_div`]); branches to
    /// `other` for other operands and a zero divisor.
    pub(super) fn unboxed_div(&mut self, x: Value, y: Value, other: Block) -> Value {
        let fx = self.number_f64(x, other);
        let fy = self.number_f64(y, other);
        let zero = self.b.ins().f64const(0.0);
        let is_zero = self.b.ins().fcmp(FloatCC::Equal, fy, zero);
        self.unless(is_zero, other);
        self.b.ins().fdiv(fx, fy)
    }

    /// The `f64` of the word `v` when it is a float, or an int of magnitude at most 2^53
    /// (converted exactly); branches to `other` otherwise. A literal is converted here.
    pub(super) fn number_f64(&mut self, v: Value, other: Block) -> Value {
        if let Some(f) = self.known_number(v) {
            return self.b.ins().f64const(f);
        }
        self.int_or_float(v, true, other)
    }

    /// The `f64` of the word `v`, a float or an int (converted; where `exact`, only of
    /// magnitude at most 2^53); branches to `other` otherwise.
    fn int_or_float(&mut self, v: Value, exact: bool, other: Block) -> Value {
        let int = self.b.create_block();
        let float = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, F64);
        if self.known_int(v) {
            self.b.ins().jump(int, &[]);
        } else {
            let bit = self.b.ins().band_imm(v, 1);
            self.b.ins().brif(bit, int, &[], float, &[]);
        }
        self.b.switch_to_block(int);
        let a = self.b.ins().sshr_imm(v, 1);
        if exact {
            // |a| <= 2^53: a + 2^53 in 0..=2^54, compared unsigned.
            let off = self.b.ins().iadd_imm(a, EXACT_INT);
            let big = self
                .b
                .ins()
                .icmp_imm(IntCC::UnsignedGreaterThan, off, 2 * EXACT_INT);
            self.unless(big, other);
        }
        let f = self.b.ins().fcvt_from_sint(F64, a);
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(float);
        let f = self.float_value(v, other);
        self.b.ins().jump(done, &[f.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// The number a constant word `v` holds: a float literal's, or a tagged int's of
    /// magnitude at most 2^53.
    fn known_number(&self, v: Value) -> Option<f64> {
        use cranelift_codegen::ir::{InstructionData, Opcode, ValueDef};
        let ValueDef::Result(inst, _) = self.b.func.dfg.value_def(v) else {
            return None;
        };
        let InstructionData::UnaryImm {
            opcode: Opcode::Iconst,
            imm,
        } = self.b.func.dfg.insts[inst]
        else {
            return None;
        };
        let w = imm.bits();
        if w & 1 == 1 {
            let a = w >> 1;
            return (a.abs() <= EXACT_INT).then_some(a as f64);
        }
        self.sh
            .consts
            .floats
            .iter()
            .find(|(_, &word)| word as i64 == w)
            .map(|(&bits, _)| f64::from_bits(bits))
    }

    /// `sqrt(x)` of an unboxed float: a branch to `other` for a negative `x` (whose
    /// `ValueError` the generic code raises); NaN and -0.0 give themselves, as in Python.
    fn float_sqrt(&mut self, x: Value, other: Block) -> Value {
        let zero = self.b.ins().f64const(0.0);
        let neg = self.b.ins().fcmp(FloatCC::LessThan, x, zero);
        self.unless(neg, other);
        self.b.ins().sqrt(x)
    }

    /// `sqrt(x)` of the builtin with one argument, `None` for other expressions: a float
    /// tree where `x` is one (a local among its leaves), else `x` computed as a word, and
    /// the root of a float or an int of magnitude at most 2^53 ([`Self::number_f64`])
    /// taken inline, boxed once; the builtin's helper, out of line, for other arguments
    /// (which it converts or rejects) and negative ones.
    pub(crate) fn sqrt_expr(&mut self, e: &Expr, span: Span) -> Option<Value> {
        let arg = sqrt_arg(e)?;
        if let Some(v) = self.float_tree_expr(e) {
            return Some(v);
        }
        let v = self.expr(arg);
        let generic = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let f = self.number_f64(v, generic);
        let r = self.float_sqrt(f, generic);
        let boxed = self.box_float(r, span);
        self.b.ins().jump(done, &[boxed.into()]);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
        let first_new = self.b.func.dfg.num_blocks();
        let r = self.builtin_on(Builtin::Sqrt, v, span);
        self.b.ins().jump(done, &[r.into()]);
        self.cold_from(first_new);
        self.enter_join(done, Default::default());
        Some(self.b.block_params(done)[0])
    }

    /// `x OP y` on unboxed floats for `OP` one of `+ - *` (which never raise): one place for
    /// the float trees, the float path of a binary operation and inlined leaf functions.
    pub(crate) fn float_arith(&mut self, op: BinOp, x: Value, y: Value) -> Value {
        match op {
            BinOp::Add => self.b.ins().fadd(x, y),
            BinOp::Sub => self.b.ins().fsub(x, y),
            BinOp::Mul => self.b.ins().fmul(x, y),
            _ => unreachable!("float_arith takes + - *"),
        }
    }

    /// `e` as an unboxed float tree of at least two operations (a single one is no better
    /// than the generic inline path), boxed once; `None` if it is not such a tree.
    pub(crate) fn float_tree_expr(&mut self, e: &Expr) -> Option<Value> {
        if self.in_float_generic
            || self.huge(e)
            || tree_ops(e)? < if sqrt_arg(e).is_some() { 1 } else { 2 }
            || !has_local(e)
            || !float_likely(e, &self.float_locals)
        {
            return None;
        }
        Some(self.with_generic(
            I64,
            |c, generic| {
                let f = c.float_tree(e, false, generic);
                c.box_float(f, e.span)
            },
            |c| c.expr(e),
        ))
    }

    /// The join of a float tree's fast path (`fast`, given the block to branch to when it
    /// cannot go on) and its generic code (`generic`, out of line, compiled with
    /// [`FnCompiler::in_float_generic`] set so that it makes no tree again): the value of
    /// type `ty` of whichever ran.
    pub(super) fn with_generic(
        &mut self,
        ty: cranelift_codegen::ir::Type,
        fast: impl FnOnce(&mut Self, Block) -> Value,
        generic: impl FnOnce(&mut Self) -> Value,
    ) -> Value {
        self.with_generic_n(&[ty], false, |c, g| vec![fast(c, g)], |c| vec![generic(c)])[0]
    }

    /// [`Self::with_generic`] of several values, of the types `tys`. Where `keep` (the fast
    /// path makes no call), the barrier region goes on after the join: the generic path
    /// repairs it ([`Self::repair_region`]).
    pub(super) fn with_generic_n(
        &mut self,
        tys: &[cranelift_codegen::ir::Type],
        keep: bool,
        fast: impl FnOnce(&mut Self, Block) -> Vec<Value>,
        generic: impl FnOnce(&mut Self) -> Vec<Value>,
    ) -> Vec<Value> {
        let marked = if keep {
            self.region_marked()
        } else {
            Default::default()
        };
        let generic_block = self.b.create_block();
        let done = self.b.create_block();
        for &ty in tys {
            self.b.append_block_param(done, ty);
        }
        let args = |vs: Vec<Value>| -> Vec<cranelift_codegen::ir::BlockArg> {
            vs.into_iter().map(Into::into).collect()
        };
        let v = fast(self, generic_block);
        self.b.ins().jump(done, &args(v));
        self.b.set_cold_block(generic_block);
        self.b.switch_to_block(generic_block);
        self.in_float_generic = true;
        let w = generic(self);
        self.in_float_generic = false;
        if keep {
            let span = self.stmt_span;
            self.repair_region(&marked, span);
        }
        self.b.ins().jump(done, &args(w));
        if keep {
            self.enter_join(done, marked);
        } else {
            self.b.switch_to_block(done);
        }
        self.b.block_params(done).to_vec()
    }

    /// Branches to `then` or `els` on the condition `a OP b` (one comparison: `<`, `<=`, `>`,
    /// `>=`, `==`, `!=`) of two float trees, with at least one operation between them,
    /// compared unboxed; the generic path (any leaf not a float) is cold and branches to the
    /// targets itself. `false` (nothing emitted) if `e` is not one.
    pub(crate) fn float_tree_branch(&mut self, e: &Expr, then: Block, els: Block) -> bool {
        self.float_tree_cmp(e)
            .map(|_| {
                let generic = self.b.create_block();
                self.float_cmp_fast(e, then, els, generic);
                self.b.set_cold_block(generic);
                self.b.switch_to_block(generic);
                // Through cold blocks of its own (see `cold_brif`).
                let first_new = self.b.func.dfg.num_blocks();
                let (t, f) = (self.b.create_block(), self.b.create_block());
                self.in_float_generic = true;
                self.branch_cond(e, t, f);
                self.in_float_generic = false;
                self.cold_from(first_new);
                self.b.switch_to_block(t);
                self.b.ins().jump(then, &[]);
                self.b.switch_to_block(f);
                self.b.ins().jump(els, &[]);
            })
            .is_some()
    }

    /// The fast path of the float-tree condition `e` ([`Self::float_tree_cmp`]): branches
    /// to `then` or `els`, or to `generic` where a leaf is not a float; returns the `f64`
    /// each local leaf gave, as `(slot, int_ok, f64)` (see [`LeafMemo`]).
    pub(super) fn float_cmp_fast(
        &mut self,
        e: &Expr,
        then: Block,
        els: Block,
        generic: Block,
    ) -> Vec<(usize, bool, Value)> {
        let (first, second, cc) = self.float_tree_cmp(e).expect("a float-tree condition");
        // A bare int local is not converted here: Python compares a float and an int
        // exactly, which converting a big int would not. An int literal next to a float
        // operand is exact (`EXACT_INT`).
        let mut memo = LeafMemo::default();
        let x = self.float_tree_in(first, false, generic, &mut memo);
        let y = self.float_tree_in(second, false, generic, &mut memo);
        let c = self.b.ins().fcmp(cc, x, y);
        self.b.ins().brif(c, then, &[], els, &[]);
        memo.0
    }

    /// The operands and condition of a float-tree condition (see
    /// [`Self::float_tree_branch`]), `None` if `e` is not one.
    pub(super) fn float_tree_cmp<'e>(&self, e: &'e Expr) -> Option<(&'e Expr, &'e Expr, FloatCC)> {
        if self.in_float_generic || self.huge(e) {
            return None;
        }
        let (first, op, second) = single_compare(e)?;
        let cc = match op {
            CmpOp::Lt => FloatCC::LessThan,
            CmpOp::Le => FloatCC::LessThanOrEqual,
            CmpOp::Gt => FloatCC::GreaterThan,
            CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            CmpOp::Eq => FloatCC::Equal,
            CmpOp::Ne => FloatCC::NotEqual,
            _ => return None,
        };
        // (Two int literals make no operation: `tree_ops` sums to 0.)
        if tree_ops(first)? + tree_ops(second)? < 1
            || !(has_local(first) || has_local(second))
            || !(float_likely(first, &self.float_locals)
                || float_likely(second, &self.float_locals))
        {
            return None;
        }
        Some((first, second, cc))
    }

    /// The `f64` of the float tree `e` (leaves in source order); branches to `generic` when
    /// a local holds neither a float nor, where `int_ok` (the other operand of its operator
    /// gives a float: [`gives_float`]), an int, or when a divisor is zero.
    pub(super) fn float_tree(&mut self, e: &Expr, int_ok: bool, generic: Block) -> Value {
        self.float_tree_in(e, int_ok, generic, &mut LeafMemo::default())
    }

    /// [`Self::float_tree`], the local leaves already tested on this straight-line path in
    /// `memo`: a local read again (`zr * zr`) is not tested again.
    fn float_tree_in(
        &mut self,
        e: &Expr,
        int_ok: bool,
        generic: Block,
        memo: &mut LeafMemo,
    ) -> Value {
        // An opaque leaf (any expression, `% 2` included), evaluated into its temporary first
        // (`unboxed.rs`).
        if let Some((t, raw)) = self.opaque_slot(e) {
            let w = self.load_slot(t);
            return match raw {
                Some(f) => self.unboxed_leaf(w, f, int_ok, generic),
                None => self.word_leaf(w, int_ok, generic),
            };
        }
        match &e.kind {
            ExprKind::Float(f) => self.b.ins().f64const(*f),
            // Next to an operand that is a float on the fast path (`int_alone`), and exact.
            ExprKind::Int(i) => self.b.ins().f64const(*i as f64),
            ExprKind::Name(n) => {
                let Slot::Local(i) = n.slot else {
                    unreachable!("float tree leaves are locals")
                };
                if let Some(f) =
                    leaf_of(&memo.0, i, int_ok).or(leaf_of(&self.loop_leaves, i, int_ok))
                {
                    return f;
                }
                // No unbound check: UNBOUND is neither a float nor an int.
                let w = self.raw_local(i);
                let f = match self.float_var(i) {
                    Some(fv) => {
                        let f = self.b.use_var(fv);
                        self.unboxed_leaf(w, f, int_ok, generic)
                    }
                    None => self.word_leaf(w, int_ok, generic),
                };
                memo.0.push((i, int_ok, f));
                f
            }
            ExprKind::Binary(op, a, b) => {
                let x = self.float_tree_in(a, gives_float(b), generic, memo);
                let y = self.float_tree_in(b, gives_float(a), generic, memo);
                self.float_op(*op, x, y, generic)
            }
            ExprKind::Call { .. } => {
                let a = sqrt_arg(e).expect("a tree's calls are sqrt");
                // An int converts as `float(x)` does (`gives_float`).
                let x = self.float_tree_in(a, true, generic, memo);
                self.float_sqrt(x, generic)
            }
            _ => unreachable!("not a float tree"),
        }
    }

    /// `x OP y` of unboxed floats, `OP` one of `+ - * /`; a branch to `generic` for a zero
    /// divisor.
    pub(super) fn float_op(&mut self, op: BinOp, x: Value, y: Value, generic: Block) -> Value {
        match op {
            BinOp::Add | BinOp::Sub | BinOp::Mul => self.float_arith(op, x, y),
            BinOp::Div => {
                let zero = self.b.ins().f64const(0.0);
                let is_zero = self.b.ins().fcmp(FloatCC::Equal, y, zero);
                self.unless(is_zero, generic);
                self.b.ins().fdiv(x, y)
            }
            _ => unreachable!("float tree operators are + - * /"),
        }
    }

    /// The `f64` of the word `w` of a leaf: a float, or where `int_ok`, an int (converted);
    /// a branch to `generic` otherwise.
    pub(super) fn word_leaf(&mut self, w: Value, int_ok: bool, generic: Block) -> Value {
        if int_ok {
            self.int_or_float(w, false, generic)
        } else {
            self.float_value(w, generic)
        }
    }
}

/// The `f64` of each local leaf of the float trees being compiled, as tested on the fast
/// path so far: `(slot, int_ok, f64)`. Valid on one straight-line path only (a tree's
/// fast path, which has no effect between its leaves: opaque leaves were evaluated
/// before): the test of a later read of the same local would pass the same way.
#[derive(Default)]
struct LeafMemo(Vec<(usize, bool, Value)>);

/// The `f64` of local `slot` among `leaves` (a [`LeafMemo`]'s) as a leaf that accepts an
/// int where `int_ok`: a test that accepted only a float answers both.
fn leaf_of(leaves: &[(usize, bool, Value)], slot: usize, int_ok: bool) -> Option<Value> {
    leaves
        .iter()
        .find(|&&(s, ok, _)| s == slot && (!ok || int_ok))
        .map(|&(_, _, f)| f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_expr(src: &str) -> Expr {
        let p = stmjit_lang::parse(&format!("def f(a, b):\n    return {src}\n")).unwrap();
        let body = &p.functions[0].body;
        match &body[0].kind {
            stmjit_lang::ast::StmtKind::Return(Some(e)) => e.clone(),
            k => panic!("unexpected statement {k:?}"),
        }
    }

    #[test]
    fn trees_are_arithmetic_on_literals_and_locals() {
        assert_eq!(tree_ops(&parse_expr("a * a - b * b + 1.5")), Some(4));
        assert_eq!(tree_ops(&parse_expr("a / 2.0")), Some(1));
        assert_eq!(tree_ops(&parse_expr("a")), Some(0));
        // Calls, attributes, other operators: not trees.
        assert_eq!(tree_ops(&parse_expr("a * f(b)")), None);
        assert_eq!(tree_ops(&parse_expr("a % b + a")), None);
        assert!(!has_local(&parse_expr("1.5 * 2.5 + 1.0")));
        // Int literals: not next to another one.
        assert_eq!(tree_ops(&parse_expr("a * a + 1")), Some(2));
        assert_eq!(tree_ops(&parse_expr("2 * a")), Some(1));
        assert_eq!(tree_ops(&parse_expr("a + 1 * 2")), None);
    }

    /// Whether [`float_locals`] marks each of `names`, locals of the first function of `src`.
    fn marked(src: &str, names: &[&str]) -> Vec<bool> {
        let p = stmjit_lang::parse(src).unwrap();
        let f = &p.functions[0];
        let marks = float_locals(&f.body, f.locals.len());
        let slot = |name: &str| f.locals.iter().position(|l| l == name).unwrap();
        names.iter().map(|n| marks[slot(n)]).collect()
    }

    #[test]
    fn floats_flow_back_from_sqrt_and_float_locals() {
        let src = "def f(a, b, n):\n    i = 0\n    dx = a.x - b.x\n    d2 = dx * dx + 1\n    m = 1.0 / sqrt(d2)\n    k = n * 2\n    q = 2.0 * k / n\n    i += 1\n    return m + q + i\n";
        // d2 is under sqrt, dx a `+ - *` leaf of d2's tree; m and q have float literals.
        assert_eq!(marked(src, &["d2", "dx", "m", "q"]), [true; 4]);
        // Under `/` nothing flows back; a parameter is assigned no tree.
        assert_eq!(marked(src, &["k", "n", "i"]), [false; 3]);
    }

    #[test]
    fn float_locals_reach_a_fixpoint() {
        let src = "def f(n):\n    i = 3\n    t = 0\n    z = 0.0\n    while i < n:\n        t = z * z + 1\n        z = t\n        i += 2\n    return t\n";
        assert_eq!(
            marked(src, &["z", "t", "i", "n"]),
            [true, true, false, false]
        );
    }

    #[test]
    fn float_attrs_follow_float_trees_to_a_fixpoint() {
        let src = "def f(bs, dt):\n    for b in bs:\n        b.x += dt * b.vx\n        b.vx -= dt * 0.5\n        b.n += 1\n        b.s = b.n * 2\n    return 0\n";
        let p = stmjit_lang::parse(src).unwrap();
        let f = &p.functions[0];
        let names = float_attrs(&f.body, &float_locals(&f.body, f.locals.len()));
        // `vx` takes a float literal's tree, `x` a tree with `vx` among its leaves (a later
        // statement: the fixpoint); ints stay out.
        assert_eq!(names, ["vx", "x"]);
    }
}
