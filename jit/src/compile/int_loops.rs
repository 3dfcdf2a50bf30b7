//! `while` loops whose condition is an int-tree comparison (`while i * i <= n`,
//! `int_trees.rs`), compiled in two versions. The fast one tests the locals its condition
//! reads and its body does not assign once, before the loop, and the condition's other
//! leaves once per iteration; its body then runs with every local the condition tested known
//! to be an int until the body assigns it, so the operations on them in the body need no type
//! test (`n % i`, `i += 2`). Where a check of the condition fails (a leaf not an int, an
//! overflow, a zero divisor), the loop goes on in the generic version, which evaluates the
//! condition again from its expressions (exact: the fast path has no effects before it
//! leaves, see `int_trees.rs`) and never comes back: nothing that is not an int merges into
//! the fast version, whose facts then hold round its back-edge. The generic version is out
//! of line.
//!
//! Only innermost loops of simple statements (no loop, `try`, `with`, `def` or `class` in
//! the body) of bounded size are versioned: the body is compiled twice.

use super::weight::{any_stmt, walk, weight, Node};
use super::FnCompiler;
use cranelift_codegen::ir::InstBuilder;
use stmjit_lang::ast::{Expr, ExprKind, Slot, Stmt, StmtKind, Target};
use stmjit_lang::diag::Span;

/// The most nodes a versioned loop's body may have (it is compiled twice).
const MAX_BODY: usize = 400;

/// Whether `body` may be compiled twice as a versioned loop's (see the module docs).
fn versionable(body: &[Stmt]) -> bool {
    let complex = |k: &StmtKind| {
        matches!(
            k,
            StmtKind::While { .. }
                | StmtKind::For { .. }
                | StmtKind::Try { .. }
                | StmtKind::With { .. }
                | StmtKind::FunctionDef { .. }
                | StmtKind::ClassDef { .. }
        )
    };
    !any_stmt(body, true, &complex) && weight(body, MAX_BODY) <= MAX_BODY
}

/// The locals `body` assigns, by slot (below `nlocals`).
fn assigned_in(body: &[Stmt], nlocals: usize) -> Vec<bool> {
    let mut assigned = vec![false; nlocals];
    walk(body, &mut |n| {
        if let Node::Target(Target::Name(n)) = n {
            if let Slot::Local(i) = n.slot {
                if i < nlocals {
                    assigned[i] = true;
                }
            }
        }
    });
    assigned
}

/// The leaves of an int tree, left to right.
fn leaves<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary(_, a, b) => {
            leaves(a, out);
            leaves(b, out);
        }
        _ => out.push(e),
    }
}

impl FnCompiler<'_, '_> {
    /// Compiles `while cond: body` in two versions (see the module docs) when `cond` is an
    /// int-tree condition and `body` may be compiled twice; `false` (nothing emitted)
    /// otherwise.
    pub(crate) fn int_while(&mut self, cond: &Expr, body: &[Stmt], span: Span) -> bool {
        let Some(sides) = self.int_tree_cmp(cond) else {
            return false;
        };
        if self.locals_in_slots || !versionable(body) {
            return false;
        }
        let past_else = self.break_past_else;
        let exit = self.b.create_block();
        let generic = self.b.create_block();
        // The leaves that stay what they are while the loop runs, tested before it.
        let assigned = assigned_in(body, self.nlocals);
        let mut all = Vec::new();
        leaves(sides.0, &mut all);
        leaves(sides.1, &mut all);
        let mut invariant: Vec<usize> = Vec::new();
        // Every local leaf: tested by the condition each time round, an int in the body
        // until the body assigns it.
        let mut tested: Vec<usize> = Vec::new();
        for e in all {
            if let ExprKind::Name(n) = &e.kind {
                if let Slot::Local(i) = n.slot {
                    if !tested.contains(&i) {
                        tested.push(i);
                    }
                    if !assigned[i] && !invariant.contains(&i) {
                        invariant.push(i);
                    }
                }
            }
        }
        let words: Vec<_> = invariant.iter().map(|&i| self.load_slot(i)).collect();
        self.expect_ints(&words, generic);
        // The fast version.
        let head = self.b.create_block();
        let body_b = self.b.create_block();
        let latch = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.expect_loop_classes(Some(cond), body);
        self.b.switch_to_block(head);
        let outer = self.int_locals.clone();
        self.int_locals.extend(invariant.iter().copied());
        self.int_tree_fast(sides, body_b, exit, generic);
        self.int_locals = outer;
        self.b.switch_to_block(body_b);
        let outer = self.int_locals.clone();
        // Each store to a local takes it out (`store_slot`): the body has no loop, so code
        // compiled before the first store of a local (in source order) runs only where no
        // store to it ran since the condition's test.
        self.int_locals.extend(tested.iter().copied());
        self.loop_body(body, latch, exit, |_| {});
        self.poll(span);
        self.b.ins().jump(head, &[]);
        self.int_locals = outer;
        // The generic version, out of line.
        self.break_past_else = past_else;
        self.b.set_cold_block(generic);
        let first_new = self.b.func.dfg.num_blocks();
        let body_g = self.b.create_block();
        let latch_g = self.b.create_block();
        self.b.switch_to_block(generic);
        self.expect_loop_classes(Some(cond), body);
        self.in_int_generic = true;
        self.branch_cond(cond, body_g, exit);
        self.in_int_generic = false;
        self.b.switch_to_block(body_g);
        self.loop_body(body, latch_g, exit, |_| {});
        self.poll(span);
        self.b.ins().jump(generic, &[]);
        self.cold_from(first_new);
        self.b.switch_to_block(exit);
        true
    }
}
