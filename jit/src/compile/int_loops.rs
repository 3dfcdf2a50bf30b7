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
//! A leaf of the condition that the body assigns only in its last statement, to an int tree
//! of itself, literals and locals the body does not assign (`i += 2`, `x = x * f + 1`), is
//! carried: tested once before the loop with the invariant leaves, and not again, since the
//! fast version assigns it only the int its tree gives. Where that tree's checks fail
//! (overflow, a zero divisor), the statement runs in full and the loop goes on at the
//! generic version's back-edge.
//!
//! Only innermost loops of simple statements (no loop, `try`, `with`, `def` or `class` in
//! the body) of bounded size are versioned: the body is compiled twice.

use super::weight::{any_stmt, walk, walk_expr, weight, Node};
use super::FnCompiler;
use cranelift_codegen::ir::{Block, InstBuilder};
use stmjit_lang::ast::{BinOp, Expr, ExprKind, Slot, Stmt, StmtKind, Target};
use stmjit_lang::diag::Span;

/// The most nodes a versioned loop's body may have (it is compiled twice).
const MAX_BODY: usize = 400;

/// Whether `k` is a loop, a `try`, a `with`, a `def` or a `class`: not a simple statement
/// of an innermost loop.
pub(super) fn complex(k: &StmtKind) -> bool {
    matches!(
        k,
        StmtKind::While { .. }
            | StmtKind::For { .. }
            | StmtKind::Try { .. }
            | StmtKind::With { .. }
            | StmtKind::FunctionDef { .. }
            | StmtKind::ClassDef { .. }
    )
}

/// Whether `body` may be compiled twice as a versioned loop's (see the module docs).
pub(super) fn versionable(body: &[Stmt]) -> bool {
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

/// How many times `body` assigns local `slot`.
fn assignments(body: &[Stmt], slot: usize) -> usize {
    let mut n = 0;
    walk(body, &mut |node| {
        if let Node::Target(Target::Name(t)) = node {
            n += usize::from(t.slot == Slot::Local(slot));
        }
    });
    n
}

/// Whether local `slot` is the left operand of a `%` or `//` in `cond` or `body`: a
/// dividend whose range the fast version tests once (see [`FnCompiler::int_while`]).
fn divides(cond: &Expr, body: &[Stmt], slot: usize) -> bool {
    let mut found = false;
    let mut each = |n: Node| {
        if let Node::Expr(e) = n {
            if let ExprKind::Binary(BinOp::Mod | BinOp::FloorDiv, a, _) = &e.kind {
                found |= matches!(&a.kind, ExprKind::Name(n) if n.slot == Slot::Local(slot));
            }
        }
    };
    walk_expr(cond, &mut each);
    walk(body, &mut each);
    found
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
    /// The local `body` carries round the loop as an int (see the module docs), the tree its
    /// last statement gives it, and the other locals of that tree: `i += 2` or
    /// `i = i * k + 1`, `body`'s only assignment of `i`, a leaf of the condition, whose
    /// leaves are int literals, `i` and locals the body does not assign (`assigned`).
    fn carried(
        &self,
        body: &[Stmt],
        assigned: &[bool],
        tested: &[usize],
    ) -> Option<(usize, Expr, Vec<usize>)> {
        let last = body.last()?;
        let (n, tree) = match &last.kind {
            StmtKind::AugAssign {
                target: Target::Name(n),
                op,
                value,
            } => {
                let name = Expr {
                    kind: ExprKind::Name(n.clone()),
                    span: n.span,
                };
                let kind = ExprKind::Binary(*op, Box::new(name), Box::new(value.clone()));
                (
                    n,
                    Expr {
                        kind,
                        span: last.span,
                    },
                )
            }
            StmtKind::Assign { targets, value } => match targets.as_slice() {
                [Target::Name(n)] => (n, value.clone()),
                _ => return None,
            },
            _ => return None,
        };
        let Slot::Local(c) = n.slot else {
            return None;
        };
        if !tested.contains(&c) || !self.is_int_tree(&tree) || assignments(body, c) != 1 {
            return None;
        }
        let mut all = Vec::new();
        leaves(&tree, &mut all);
        let mut others = Vec::new();
        for e in all {
            match &e.kind {
                ExprKind::Int(_) => {}
                ExprKind::Name(m) => match m.slot {
                    Slot::Local(l) if l == c => {}
                    Slot::Local(l) if !assigned[l] => {
                        if !others.contains(&l) {
                            others.push(l);
                        }
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
        Some((c, tree, others))
    }

    /// The fast version's last statement, `c = tree` ([`Self::carried`]): the int tree's
    /// checks (overflow, divisor) leave for the block returned, where the statement is to be
    /// compiled in full, then the loop to go on in the generic version. Nothing else
    /// assigns `c` in the fast version, so it holds an int round its back-edge.
    fn carried_assign(&mut self, c: usize, tree: &Expr, stmt: &Stmt) -> Block {
        if self.is_filled() {
            self.dead_block();
        }
        self.at_line(stmt.span.line);
        self.stmt_span = stmt.span;
        let leave = self.b.create_block();
        let mut words = Vec::new();
        self.int_leaves(tree, &mut words);
        // All known ints (see `carried`): no test is emitted.
        self.expect_ints(&words, leave);
        let r = self.int_tree(tree, &mut words.into_iter(), leave);
        self.store_slot(c, r);
        self.known_ints.insert(r);
        leave
    }

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
        let carried = self.carried(body, &assigned, &tested);
        // Tested once: the invariant leaves, the carried local (an int on every way into the
        // head of the fast version: from here, round the back-edge, at a restart) and the
        // other locals of its tree (not assigned in the loop).
        let mut entry = invariant.clone();
        if let Some((c, _, others)) = &carried {
            for &l in others.iter().chain([c]) {
                if !entry.contains(&l) {
                    entry.push(l);
                }
            }
        }
        let words: Vec<_> = entry.iter().map(|&i| self.load_slot(i)).collect();
        self.expect_ints(&words, generic);
        // The invariant dividends (`n % i`), tested once to lie in `0..2**32` (the 32-bit
        // division then tests only its divisor, `expr.rs`); another int runs the loop in the
        // generic version.
        let narrow: Vec<usize> = invariant
            .iter()
            .copied()
            .filter(|&l| divides(cond, body, l))
            .collect();
        for &l in &narrow {
            let w = self.load_slot(l);
            let high = self.b.ins().ushr_imm(w, 33);
            let next = self.b.create_block();
            self.b.ins().brif(high, generic, &[], next, &[]);
            self.b.switch_to_block(next);
        }
        let outer_narrow = self.narrow_locals.clone();
        self.narrow_locals.extend(narrow.iter().copied());
        // The fast version.
        let (head, body_b, latch) = self.fast_head(cond, body);
        let outer = self.int_locals.clone();
        self.int_locals.extend(entry.iter().copied());
        self.int_tree_fast(sides, body_b, exit, generic);
        self.int_locals = outer;
        self.b.switch_to_block(body_b);
        let outer = self.int_locals.clone();
        // Each store to a local takes it out (`store_slot`): the body has no loop, so code
        // compiled before the first store of a local (in source order) runs only where no
        // store to it ran since the condition's test.
        self.int_locals.extend(tested.iter().chain(&entry).copied());
        let mut leave = None;
        match &carried {
            None => self.loop_body(body, latch, exit, |_| {}),
            Some((c, tree, _)) => {
                let (init, last) = body.split_at(body.len() - 1);
                let tail = |s: &mut Self| leave = Some(s.carried_assign(*c, tree, &last[0]));
                self.loop_body_then(init, latch, exit, |_| {}, tail);
            }
        }
        self.poll(span);
        self.b.ins().jump(head, &[]);
        self.int_locals = outer;
        self.narrow_locals = outer_narrow;
        // The generic version, out of line.
        self.break_past_else = past_else;
        let latch_g = self.b.create_block();
        if let Some(leave) = leave {
            // The last statement in full, where its int tree left; then the generic
            // version's back-edge.
            self.b.set_cold_block(leave);
            let first_new = self.b.func.dfg.num_blocks();
            self.b.switch_to_block(leave);
            self.stmt(&body[body.len() - 1]);
            self.b.ins().jump(latch_g, &[]);
            self.cold_from(first_new);
        }
        self.generic_version(cond, body, (generic, latch_g, exit), false, span);
        true
    }

    /// Enters the head of a `while` loop (a versioned loop's fast version), the loop's class
    /// facts expected ([`Self::expect_loop_classes`]); returns it, with the blocks of its
    /// body and back-edge.
    pub(super) fn fast_head(&mut self, cond: &Expr, body: &[Stmt]) -> (Block, Block, Block) {
        let head = self.b.create_block();
        let body_b = self.b.create_block();
        let latch = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.expect_loop_classes(Some(cond), body);
        self.b.switch_to_block(head);
        (head, body_b, latch)
    }

    /// The generic version of a versioned loop, out of line: its head `generic` evaluates
    /// `cond` generically (not as an int tree, nor as a float tree where `floats`), then
    /// the body with its back-edge `latch_g`; continues at `exit`.
    pub(super) fn generic_version(
        &mut self,
        cond: &Expr,
        body: &[Stmt],
        (generic, latch_g, exit): (Block, Block, Block),
        floats: bool,
        span: Span,
    ) {
        self.b.set_cold_block(generic);
        let first_new = self.b.func.dfg.num_blocks();
        let body_g = self.b.create_block();
        self.b.switch_to_block(generic);
        self.expect_loop_classes(Some(cond), body);
        let outer_floats = self.in_float_generic;
        self.in_int_generic = true;
        self.in_float_generic |= floats;
        self.branch_cond(cond, body_g, exit);
        self.in_int_generic = false;
        self.in_float_generic = outer_floats;
        self.b.switch_to_block(body_g);
        self.loop_body(body, latch_g, exit, |_| {});
        self.poll(span);
        self.b.ins().jump(generic, &[]);
        self.cold_from(first_new);
        self.b.switch_to_block(exit);
    }
}
