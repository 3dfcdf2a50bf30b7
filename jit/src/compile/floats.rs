//! Float arithmetic trees computed unboxed.
//!
//! Every float is a boxed object, so `zr * zr - zi * zi + cr` computed operation by
//! operation allocates a box per intermediate result. Here a tree of `+ - * /` whose
//! leaves are float literals and local variables is computed on `f64` values and boxed
//! once, or, as the operand of a comparison in a condition, not at all.
//!
//! The fast path loads the locals without their "unbound" check and tests that each holds
//! a float, or an int where the other operand of its operator is surely a float (Python
//! converts it then); otherwise (an unbound local, any other type), and for a zero divisor,
//! it branches to the generic code of the same expression, which reads the locals again
//! (reading a local has no effect) and computes operation by operation, raising where the
//! program would. So the fast path is taken only when its result is the generic one: the
//! same IEEE operations in the same order, on the same values.

use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::FloatCC, types::F64, types::I64, types::I8};
use cranelift_codegen::ir::{Block, InstBuilder, Value};
use stmjit_lang::ast::{BinOp, CmpOp, Expr, ExprKind, Slot};

/// Whether `e` is a leaf of a float tree: a float literal or a local variable.
fn is_leaf(e: &Expr) -> bool {
    matches!(e.kind, ExprKind::Float(_))
        || matches!(&e.kind, ExprKind::Name(n) if matches!(n.slot, Slot::Local(_)))
}

/// The number of operations of `e` as a float tree (0 for a leaf), or `None` if it is not
/// one.
fn tree_ops(e: &Expr) -> Option<usize> {
    match &e.kind {
        ExprKind::Binary(BinOp::Add | BinOp::Sub | BinOp::Mul | BinOp::Div, a, b) => {
            Some(tree_ops(a)? + tree_ops(b)? + 1)
        }
        _ if is_leaf(e) => Some(0),
        _ => None,
    }
}

/// Whether the tree `e` gives a float whatever ints or floats its locals hold: it has a
/// float literal operand somewhere along an operator chain (`+ - * /` with a float operand
/// give a float, and convert an int operand to float exactly as `fcvt` does: ints are 63-bit,
/// and Python converts with round-to-nearest too).
fn surely_float(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Float(_) => true,
        ExprKind::Binary(_, a, b) => surely_float(a) || surely_float(b),
        _ => false,
    }
}

/// A tree with at least one local among its leaves (a tree of literals alone is left to the
/// generic code, which gives it its exact types).
fn has_local(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary(_, a, b) => has_local(a) || has_local(b),
        ExprKind::Name(_) => true,
        _ => false,
    }
}

impl FnCompiler<'_, '_> {
    /// `e` as an unboxed float tree of at least two operations (a single one is no better
    /// than the generic inline path), boxed once; `None` if it is not such a tree.
    pub(crate) fn float_tree_expr(&mut self, e: &Expr) -> Option<Value> {
        if self.in_float_generic || tree_ops(e)? < 2 || !has_local(e) {
            return None;
        }
        let generic = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let f = self.float_tree(e, false, generic);
        let boxed = self.box_float(f, e.span);
        self.b.ins().jump(done, &[boxed.into()]);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
        self.in_float_generic = true;
        let w = self.expr(e);
        self.in_float_generic = false;
        self.b.ins().jump(done, &[w.into()]);
        self.b.switch_to_block(done);
        Some(self.b.block_params(done)[0])
    }

    /// The condition `a OP b` (one comparison: `<`, `<=`, `>`, `>=`, `==`, `!=`) of two
    /// float trees, with at least one operation between them, compared unboxed; `None` if
    /// `e` is not one.
    pub(crate) fn float_tree_cond(&mut self, e: &Expr) -> Option<Value> {
        if self.in_float_generic {
            return None;
        }
        let ExprKind::Compare { first, rest } = &e.kind else {
            return None;
        };
        let [(op, second)] = rest.as_slice() else {
            return None;
        };
        let cc = match op {
            CmpOp::Lt => FloatCC::LessThan,
            CmpOp::Le => FloatCC::LessThanOrEqual,
            CmpOp::Gt => FloatCC::GreaterThan,
            CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            CmpOp::Eq => FloatCC::Equal,
            CmpOp::Ne => FloatCC::NotEqual,
            _ => return None,
        };
        if tree_ops(first)? + tree_ops(second)? < 1 || !(has_local(first) || has_local(second)) {
            return None;
        }
        let generic = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I8);
        let x = self.float_tree(first, false, generic);
        let y = self.float_tree(second, false, generic);
        let c = self.b.ins().fcmp(cc, x, y);
        self.b.ins().jump(done, &[c.into()]);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
        self.in_float_generic = true;
        let c = self.cond(e);
        self.in_float_generic = false;
        self.b.ins().jump(done, &[c.into()]);
        self.b.switch_to_block(done);
        Some(self.b.block_params(done)[0])
    }

    /// The `f64` of the float tree `e` (leaves in source order); branches to `generic` when
    /// a local holds neither a float nor, where `int_ok` (the other operand of its operator
    /// is surely a float), an int, or when a divisor is zero.
    fn float_tree(&mut self, e: &Expr, int_ok: bool, generic: Block) -> Value {
        match &e.kind {
            ExprKind::Float(f) => self.b.ins().f64const(*f),
            ExprKind::Name(n) => {
                let Slot::Local(i) = n.slot else {
                    unreachable!("float tree leaves are locals")
                };
                // No unbound check: UNBOUND is neither a float nor an int.
                let w = self.load_slot(i);
                if !int_ok {
                    return self.float_value(w, generic);
                }
                let done = self.b.create_block();
                self.b.append_block_param(done, F64);
                let int = self.b.create_block();
                let other = self.b.create_block();
                let bit = self.b.ins().band_imm(w, 1);
                self.b.ins().brif(bit, int, &[], other, &[]);
                self.b.switch_to_block(int);
                let a = self.b.ins().sshr_imm(w, 1);
                let f = self.b.ins().fcvt_from_sint(F64, a);
                self.b.ins().jump(done, &[f.into()]);
                self.b.switch_to_block(other);
                let f = self.float_value(w, generic);
                self.b.ins().jump(done, &[f.into()]);
                self.b.switch_to_block(done);
                self.b.block_params(done)[0]
            }
            ExprKind::Binary(op, a, b) => {
                let x = self.float_tree(a, surely_float(b), generic);
                let y = self.float_tree(b, surely_float(a), generic);
                match op {
                    BinOp::Add => self.b.ins().fadd(x, y),
                    BinOp::Sub => self.b.ins().fsub(x, y),
                    BinOp::Mul => self.b.ins().fmul(x, y),
                    BinOp::Div => {
                        let zero = self.b.ins().f64const(0.0);
                        let is_zero = self.b.ins().fcmp(FloatCC::Equal, y, zero);
                        let ok = self.b.create_block();
                        self.b.ins().brif(is_zero, generic, &[], ok, &[]);
                        self.follow(ok);
                        self.b.ins().fdiv(x, y)
                    }
                    _ => unreachable!("float tree operators are + - * /"),
                }
            }
            _ => unreachable!("not a float tree"),
        }
    }
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
        // Int literals, calls, attributes, other operators: not trees.
        assert_eq!(tree_ops(&parse_expr("a * 2")), None);
        assert_eq!(tree_ops(&parse_expr("a * f(b)")), None);
        assert_eq!(tree_ops(&parse_expr("a % b + a")), None);
        assert!(!has_local(&parse_expr("1.5 * 2.5 + 1.0")));
        // Where an int operand is converted: next to a surely-float operand only.
        assert!(surely_float(&parse_expr("2.0 * a / b")));
        assert!(!surely_float(&parse_expr("a * b")));
    }
}
