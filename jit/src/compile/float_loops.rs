//! `while` loops whose condition is an `and` of comparisons with a float-tree comparison
//! among them (mandelbrot's `while i < MAXITER and zr * zr + zi * zi <= 4.0`), compiled in
//! two versions as the int loops of `int_loops.rs` are: in the fast one, each comparison is
//! an int-tree condition (`int_trees.rs`) or a float-tree condition (`floats.rs`) whose
//! checks leave for the generic version, out of line, which evaluates the condition again
//! from its expressions (exact: no comparison's fast path has effects) and never comes back.
//!
//! The fast version's body is reached only where every check of the condition passed, so
//! there the condition's facts hold until the body stores to the local they are about: an
//! int-tree comparison's locals are known ints (`i += 1` needs no tag test), and a float
//! local the condition read has the `f64` the condition took ([`FnCompiler::loop_leaves`]):
//! the body's float trees read it with no test (`t = zr * zr - zi * zi + cr`). So does a
//! float local the loop reads and never assigns (`cr`, `ci`): tested once, in a block before
//! the loop's head that is also the restart point of its back-edge's poll (a restart finds
//! the same float boxed in its slot), so that its `f64` dominates the whole fast version.

use super::expr::{int_cc, single_compare};
use super::int_loops::versionable;
use super::weight::{walk, walk_expr, Node};
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, Block, InstBuilder, Value};
use stmjit_lang::ast::{Expr, ExprKind, Slot, Stmt, Target};
use stmjit_lang::diag::Span;

/// One comparison of the condition, as its fast path compiles it.
enum Part<'e> {
    Int(&'e Expr, &'e Expr, IntCC),
    Float(&'e Expr),
}

impl FnCompiler<'_, '_> {
    /// The comparisons of `cond`, an `and` of int-tree and float-tree comparisons with at
    /// least one float one (a lone int-tree comparison is `int_loops.rs`'s); `None` if it
    /// is not one.
    fn float_parts<'e>(&self, cond: &'e Expr) -> Option<Vec<Part<'e>>> {
        let mut parts = Vec::new();
        self.collect_parts(cond, &mut parts)?;
        parts
            .iter()
            .any(|p| matches!(p, Part::Float(_)))
            .then_some(parts)
    }

    fn collect_parts<'e>(&self, e: &'e Expr, out: &mut Vec<Part<'e>>) -> Option<()> {
        if let ExprKind::And(a, b) = &e.kind {
            self.collect_parts(a, out)?;
            return self.collect_parts(b, out);
        }
        if let Some((x, y, cc)) = self.int_cmp(e) {
            out.push(Part::Int(x, y, cc));
        } else if self.float_tree_cmp(e).is_some() {
            out.push(Part::Float(e));
        } else {
            return None;
        }
        Some(())
    }

    /// The sides and machine condition of `e` if it compares two int trees or leaves
    /// (`i < MAXITER`, `int_trees.rs`).
    fn int_cmp<'e>(&self, e: &'e Expr) -> Option<(&'e Expr, &'e Expr, IntCC)> {
        if self.in_int_generic {
            return None;
        }
        let (first, op, second) = single_compare(e)?;
        let cc = int_cc(op)?;
        let side = |s: &Expr| self.is_int_tree(s) || self.is_int_leaf(s);
        (side(first) && side(second)).then_some((first, second, cc))
    }

    /// Compiles `while cond: body` in two versions (see the module docs) where `cond` is an
    /// `and` of int- and float-tree comparisons with a float one and `body` may be compiled
    /// twice; `false` (nothing emitted) otherwise.
    pub(crate) fn float_while(&mut self, cond: &Expr, body: &[Stmt], span: Span) -> bool {
        if self.locals_in_slots || self.in_float_generic || !versionable(body) {
            return false;
        }
        let Some(parts) = self.float_parts(cond) else {
            return false;
        };
        let past_else = self.break_past_else;
        let exit = self.b.create_block();
        let generic = self.b.create_block();
        // The float locals the loop reads and does not assign, tested once: here and at
        // the restart point of its back-edge, which is this block (it dominates the loop).
        let entry = self.b.create_block();
        self.b.ins().jump(entry, &[]);
        self.b.switch_to_block(entry);
        let invariant = self.invariant_floats(cond, body, generic);
        let (head, body_b, latch) = self.fast_head(cond, body);
        // The fast version's condition: each comparison in turn, the last into the body.
        let mut ints = Vec::new();
        self.loop_leaves = invariant.clone();
        let mut floats = invariant;
        let n = parts.len();
        for (k, part) in parts.into_iter().enumerate() {
            let then = if k + 1 == n {
                body_b
            } else {
                self.b.create_block()
            };
            match part {
                Part::Int(x, y, cc) => {
                    for side in [x, y] {
                        int_locals_of(side, &mut ints);
                    }
                    self.int_tree_fast((x, y, cc), then, exit, generic);
                }
                Part::Float(e) => floats.extend(self.float_cmp_fast(e, then, exit, generic)),
            }
            self.b.switch_to_block(then);
        }
        let outer = self.int_locals.clone();
        self.int_locals.extend(ints);
        self.loop_leaves = floats;
        self.loop_body(body, latch, exit, |_| {});
        self.loop_leaves.clear();
        self.int_locals = outer;
        self.poll_restarting_at(span, head, entry);
        // The generic version, out of line.
        self.break_past_else = past_else;
        let latch_g = self.b.create_block();
        self.generic_version(cond, body, (generic, latch_g, exit), true, span);
        true
    }
}

impl FnCompiler<'_, '_> {
    /// The `f64` of each float local ([`FnCompiler::float_var`]) that `cond` or `body`
    /// reads and `body` does not assign or delete (`ci` in mandelbrot's inner loop), as
    /// leaves of the loop's float trees take them (`(slot, false, f64)`); branches to
    /// `generic` where one is not a float (an unbound one included). Tested once before
    /// the loop: its trees then read them with no test ([`FnCompiler::loop_leaves`]).
    fn invariant_floats(
        &mut self,
        cond: &Expr,
        body: &[Stmt],
        generic: Block,
    ) -> Vec<(usize, bool, Value)> {
        let mut read = Vec::new();
        let mut bound = Vec::new();
        let mut each = |n: Node| match n {
            Node::Expr(Expr {
                kind: ExprKind::Name(n),
                ..
            }) => {
                if let Slot::Local(i) = n.slot {
                    read.push(i);
                }
            }
            Node::Target(Target::Name(n)) => {
                if let Slot::Local(i) = n.slot {
                    bound.push(i);
                }
            }
            _ => {}
        };
        walk_expr(cond, &mut each);
        walk(body, &mut each);
        let mut out: Vec<(usize, bool, Value)> = Vec::new();
        for i in read {
            if bound.contains(&i) || out.iter().any(|&(l, _, _)| l == i) {
                continue;
            }
            let Some(fv) = self.float_var(i) else {
                continue;
            };
            let w = self.raw_local(i);
            let f = self.b.use_var(fv);
            let f = self.unboxed_leaf(w, f, false, generic);
            out.push((i, false, f));
        }
        out
    }
}

/// The locals among the leaves of the int tree `e` (tested ints where its fast path passed).
fn int_locals_of(e: &Expr, out: &mut Vec<usize>) {
    match &e.kind {
        ExprKind::Binary(_, a, b) => {
            int_locals_of(a, out);
            int_locals_of(b, out);
        }
        ExprKind::Name(n) => {
            if let Slot::Local(i) = n.slot {
                out.push(i);
            }
        }
        _ => {}
    }
}
