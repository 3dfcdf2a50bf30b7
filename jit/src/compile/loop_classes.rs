//! Which locals' class facts (`FnCompiler::class_vars`) a loop may carry around its
//! back-edge, so that the first attribute access or method call of such a local in the loop
//! probes its site with the class variable (a phi at the loop head) instead of testing the
//! class in full at every iteration: only the first iteration (the variable still 0 from
//! before the loop) misses and tests in full, out of line.
//!
//! A heuristic only: the class variable keeps its invariant (0 or the class of the local's
//! current value) whatever this answers; a wrong answer costs a probe that misses.

use super::barriers::held_locals;
use super::FnCompiler;
use stmjit_lang::ast::{Expr, Stmt};

/// The locals below `nlocals` that `cond` or `body` access an attribute of or call a method
/// of, and that `body` does not assign (an assignment leaves the variable 0 on the
/// back-edge, unless an access follows it: then the probe would mostly miss). The same set
/// as the loop's held read markers ([`held_locals`]): that one must be exact for soundness,
/// this one only for speed, so they share the one walk.
pub(crate) fn loop_class_locals(cond: Option<&Expr>, body: &[Stmt], nlocals: usize) -> Vec<usize> {
    held_locals(cond, body, nlocals)
}

impl FnCompiler<'_, '_> {
    /// Before compiling a loop (its condition `cond`, its `body`): lets the accesses of the
    /// locals whose class facts the loop may carry ([`loop_class_locals`]) use them.
    pub(crate) fn expect_loop_classes(&mut self, cond: Option<&Expr>, body: &[Stmt]) {
        if self.class_set.is_empty() {
            return;
        }
        for l in loop_class_locals(cond, body, self.class_set.len()) {
            self.class_set[l] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stmjit_lang::ast::StmtKind;

    /// The body of the program's function `f`, and its local count.
    fn body_of_f(src: &str) -> (Vec<Stmt>, usize) {
        let p = stmjit_lang::parse(src).expect("parses");
        let f = p.functions.iter().find(|f| f.name == "f").expect("f");
        (f.body.clone(), f.locals.len())
    }

    /// The loop's receivers that it does not assign: `self` (an attribute read, a method
    /// call, an attribute store) and `o` (only in the condition); not `t`, assigned after
    /// its access, nor the loop variable `x`, nor `n`, never a receiver.
    #[test]
    fn receivers_not_assigned_in_the_loop() {
        let src = "def f(self, o, t, n):\n    while o.k:\n        self.a = self.b + n\n        self.m(t.v)\n        t = t.next\n        for x in n:\n            x.y = 1\n    return 0\n";
        let (body, nlocals) = body_of_f(src);
        let StmtKind::While { cond, body, .. } = &body[0].kind else {
            unreachable!()
        };
        assert_eq!(loop_class_locals(Some(cond), body, nlocals), vec![0, 1]);
        assert_eq!(loop_class_locals(None, body, nlocals), vec![0]);
    }
}
