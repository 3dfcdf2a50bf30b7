//! Conditions comparing int trees (`while i * i <= n`, `if a + b > c`): the leaves are
//! tested once, the operations run on the words with their overflow and divisor checks, and
//! the comparison branches on the machine compare. Every failed check (a leaf not an int, an
//! overflow, a zero divisor, a shift count out of range) leaves for one cold generic path
//! that evaluates the whole condition again from its expressions: nothing merges back into
//! the int path, so no result is tested again.
//!
//! Re-evaluating is exact because the fast path has no effects before it leaves: its
//! leaves are int literals and assigned locals (reading them can neither fail nor allocate,
//! and nothing the operations do can change a local), and operations on ints have no
//! effects. The generic path then raises (or calls `__add__`) in Python's order, at the
//! same positions.

use super::expr::{has_int_fast_path, int_cc, single_compare};
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, Block, InstBuilder, Value};
use stmjit_lang::ast::{BinOp, Expr, ExprKind, Slot};

impl FnCompiler<'_, '_> {
    /// The sides and machine condition of `e` if it is an int-tree condition: one
    /// comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`) of which one side is an int tree and
    /// the other a tree or a leaf (see the module docs).
    pub(crate) fn int_tree_cmp<'e>(&self, e: &'e Expr) -> Option<(&'e Expr, &'e Expr, IntCC)> {
        if self.in_int_generic || self.compact {
            return None;
        }
        let (first, op, second) = single_compare(e)?;
        let cc = int_cc(op)?;
        let side = |s: &Expr| self.is_int_tree(s) || self.is_int_leaf(s);
        ((self.is_int_tree(first) || self.is_int_tree(second)) && side(first) && side(second))
            .then_some((first, second, cc))
    }

    /// Branches to `then` or `els` on the int-tree condition `e` ([`Self::int_tree_cmp`]);
    /// `false` (nothing emitted) if it is not one. The generic path is cold and compiles
    /// `e` again, branching to the targets itself.
    pub(crate) fn int_tree_branch(&mut self, e: &Expr, then: Block, els: Block) -> bool {
        let Some(sides) = self.int_tree_cmp(e) else {
            return false;
        };
        let generic = self.b.create_block();
        self.int_tree_fast(sides, then, els, generic);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
        // Through cold blocks of its own (see `cold_brif`).
        let first_new = self.b.func.dfg.num_blocks();
        let (t, f) = (self.b.create_block(), self.b.create_block());
        self.in_int_generic = true;
        self.branch_cond(e, t, f);
        self.in_int_generic = false;
        self.cold_from(first_new);
        self.b.switch_to_block(t);
        self.b.ins().jump(then, &[]);
        self.b.switch_to_block(f);
        self.b.ins().jump(els, &[]);
        true
    }

    /// The int path of an int-tree condition: branches to `then` or `els`, or to `generic`
    /// (a block without parameters) where a check fails. Where the leaves' test passed,
    /// the locals among them are known ints ([`Self::only_if_ints`]).
    pub(crate) fn int_tree_fast(
        &mut self,
        (first, second, cc): (&Expr, &Expr, IntCC),
        then: Block,
        els: Block,
        generic: Block,
    ) {
        let mut leaves = Vec::new();
        self.int_leaves(first, &mut leaves);
        self.int_leaves(second, &mut leaves);
        self.expect_ints(&leaves, generic);
        let mut next = leaves.into_iter();
        let x = self.int_tree(first, &mut next, generic);
        let y = self.int_tree(second, &mut next, generic);
        let c = self.b.ins().icmp(cc, x, y);
        self.b.ins().brif(c, then, &[], els, &[]);
    }

    /// Goes on only if every word of `vs` is an int (one test of their `and`), else
    /// branches to `other`; the locals they were read from are known ints where it goes on.
    pub(crate) fn expect_ints(&mut self, vs: &[Value], other: Block) {
        let unknown: Vec<Value> = vs.iter().copied().filter(|&v| !self.known_int(v)).collect();
        if let Some((&v0, more)) = unknown.split_first() {
            let all = more.iter().fold(v0, |acc, &v| self.b.ins().band(acc, v));
            let bit = self.b.ins().band_imm(all, 1);
            self.only_if_ints(bit, &unknown, other);
        }
    }

    /// A leaf of an int tree: an int literal, a local assigned here whose word is read
    /// as it is (not a float kept unboxed, which reading boxes), or a global the loop
    /// being compiled caches (`global_cache.rs`: reading it has no effect; `UNBOUND` is
    /// not an int, so the generic path raises the NameError).
    pub(crate) fn is_int_leaf(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Int(_) => true,
            ExprKind::Name(n) => match n.slot {
                Slot::Local(i) => self.assigned[i] && self.float_var(i).is_none(),
                Slot::Global(g) => self.cached_global(g).is_some(),
                _ => false,
            },
            _ => false,
        }
    }

    /// An operation with an int fast path (true division has none) on trees or leaves.
    pub(crate) fn is_int_tree(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Binary(op, a, b) => {
                has_int_fast_path(*op)
                    && *op != BinOp::Div
                    && [a, b]
                        .iter()
                        .all(|s| self.is_int_leaf(s) || self.is_int_tree(s))
            }
            _ => false,
        }
    }

    /// The words of the leaves of `e`, left to right.
    pub(crate) fn int_leaves(&mut self, e: &Expr, out: &mut Vec<Value>) {
        match &e.kind {
            ExprKind::Binary(_, a, b) => {
                self.int_leaves(a, out);
                self.int_leaves(b, out);
            }
            // A cached global as it is: `UNBOUND` is not an int, so the generic path raises.
            ExprKind::Name(n) => {
                let cached = match n.slot {
                    Slot::Global(g) => self.cached_global(g),
                    _ => None,
                };
                let w = match cached {
                    Some(var) => self.b.use_var(var),
                    None => self.expr(e),
                };
                out.push(w);
            }
            _ => out.push(self.expr(e)),
        }
    }

    /// The tagged int `e` gives on int leaves (taken from `leaves` in order), every failed
    /// check branching to `generic`.
    pub(crate) fn int_tree(
        &mut self,
        e: &Expr,
        leaves: &mut impl Iterator<Item = Value>,
        generic: Block,
    ) -> Value {
        let ExprKind::Binary(op, a, b) = &e.kind else {
            return leaves.next().expect("one word per leaf");
        };
        let x = self.int_tree(a, leaves, generic);
        let y = self.int_tree(b, leaves, generic);
        if *op == BinOp::Mul && x == y {
            // `i * i`: a square out of the fast range leaves (no cold join in the loop).
            return self.int_square(x, generic, true);
        }
        let (r, overflow) = self.int_binop(*op, x, y, generic);
        if let Some(of) = overflow {
            self.unless(of, generic);
        }
        r
    }
}
