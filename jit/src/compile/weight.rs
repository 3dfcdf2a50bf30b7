//! How much code there is, for cutting it into parts (`parts.rs`): compile memory follows
//! the nodes of the statements and expressions compiled at once (10 to 40 KB each), not
//! their number of statements (a statement `x = 1 + 1 + ...` of 10 000 terms took 370 MB).
//! Counting stops past a limit, so that asking costs no more than the limit.

use stmjit_lang::ast::{Expr, ExprKind, Stmt, StmtKind, Target, WithKind};

/// The nodes (statements and expressions) of `body`, up to a bit more than `limit`: the
/// count is exact when it is at most `limit`.
pub fn weight(body: &[Stmt], limit: usize) -> usize {
    let mut c = Count {
        n: 0,
        limit,
        each: &mut |_| {},
    };
    c.stmts(body);
    c.n
}

/// The nodes of `e`, as [`weight`].
pub fn expr_weight(e: &Expr, limit: usize) -> usize {
    let mut c = Count {
        n: 0,
        limit,
        each: &mut |_| {},
    };
    c.expr(e);
    c.n
}

/// A node of a statement list, as [`walk`] shows it.
pub enum Node<'n> {
    Stmt(&'n Stmt),
    Target(&'n Target),
    Expr(&'n Expr),
}

/// Calls `each` on every node of `body` (outer ones first; not into lambdas' bodies, which
/// are compiled apart): one walker for the analyses that look at a block of code.
pub fn walk<'n>(body: &'n [Stmt], each: &mut dyn FnMut(Node<'n>)) {
    let mut c = Count {
        n: 0,
        limit: usize::MAX,
        each,
    };
    c.stmts(body);
}

/// Calls `each` on every node of `e`, as [`walk`].
pub fn walk_expr<'n>(e: &'n Expr, each: &mut dyn FnMut(Node<'n>)) {
    let mut c = Count {
        n: 0,
        limit: usize::MAX,
        each,
    };
    c.expr(e);
}

/// A count of nodes that stops once past `limit`, showing each to `each`.
struct Count<'e, 'n> {
    n: usize,
    limit: usize,
    each: &'e mut dyn FnMut(Node<'n>),
}

impl<'n> Count<'_, 'n> {
    fn full(&self) -> bool {
        self.n > self.limit
    }

    fn stmts(&mut self, body: &'n [Stmt]) {
        for s in body {
            if self.full() {
                return;
            }
            self.stmt(s);
        }
    }

    fn stmt(&mut self, s: &'n Stmt) {
        self.n += 1;
        (self.each)(Node::Stmt(s));
        match &s.kind {
            StmtKind::Expr(e)
            | StmtKind::Return(Some(e))
            | StmtKind::If { cond: e, .. }
            | StmtKind::While { cond: e, .. }
            | StmtKind::With {
                kind: WithKind::Lock(e),
                ..
            } => self.expr(e),
            StmtKind::For { iter, .. } => self.expr(iter),
            StmtKind::Raise { exc, .. } => self.exprs(exc),
            StmtKind::Assign { targets, value } => {
                targets.iter().for_each(|t| self.target(t));
                self.expr(value);
            }
            StmtKind::AugAssign { target, value, .. } => {
                self.target(target);
                self.expr(value);
            }
            StmtKind::Del(t) => self.target(t),
            StmtKind::Try { handlers, .. } => {
                self.exprs(handlers.iter().flat_map(|h| &h.classes));
            }
            StmtKind::ClassDef { base, attrs, .. } => {
                self.exprs(
                    base.as_deref()
                        .into_iter()
                        .chain(attrs.iter().map(|(_, e)| e)),
                );
            }
            _ => {}
        }
        for b in s.blocks() {
            self.stmts(b);
        }
    }

    fn target(&mut self, t: &'n Target) {
        self.n += 1;
        (self.each)(Node::Target(t));
        match t {
            Target::Index { obj, index } => self.exprs([&**obj, &**index]),
            Target::Slice { obj, lo, hi } => {
                self.exprs(std::iter::once(obj).chain(lo).chain(hi).map(|e| &**e))
            }
            Target::Attr { obj, .. } => self.expr(obj),
            Target::Tuple(ts, _) => ts.iter().for_each(|t| self.target(t)),
            Target::Name(_) => {}
        }
    }

    fn exprs(&mut self, es: impl IntoIterator<Item = &'n Expr>) {
        for e in es {
            if self.full() {
                return;
            }
            self.expr(e);
        }
    }

    fn expr(&mut self, e: &'n Expr) {
        if self.full() {
            return;
        }
        self.n += 1;
        (self.each)(Node::Expr(e));
        // Literals, names and lambdas (whose body is compiled apart) have no operands.
        match &e.kind {
            ExprKind::List(items) | ExprKind::Tuple(items) | ExprKind::Set(items) => {
                self.exprs(items)
            }
            ExprKind::Dict(items) => self.exprs(items.iter().flat_map(|(k, v)| [k, v])),
            ExprKind::Unary(_, a) | ExprKind::Not(a) | ExprKind::Attr { obj: a, .. } => {
                self.expr(a)
            }
            ExprKind::Binary(_, a, b)
            | ExprKind::And(a, b)
            | ExprKind::Or(a, b)
            | ExprKind::Index { obj: a, index: b } => self.exprs([&**a, &**b]),
            ExprKind::Compare { first, rest } => {
                self.expr(first);
                self.exprs(rest.iter().map(|(_, r)| r));
            }
            ExprKind::IfElse { cond, then, orelse } => self.exprs([&**cond, &**then, &**orelse]),
            ExprKind::Call { func, args }
            | ExprKind::MethodCall {
                obj: func, args, ..
            } => {
                self.expr(func);
                self.exprs(args);
            }
            ExprKind::CallEx { func, args } => {
                self.expr(func);
                self.exprs(args.iter().map(|a| &a.value));
            }
            ExprKind::Slice { obj, lo, hi } => {
                self.expr(obj);
                self.exprs(lo.iter().chain(hi.iter()).map(|e| &**e));
            }
            _ => {}
        }
    }
}

/// Whether a statement of `body` (at any depth of its blocks; loops' bodies only when
/// `loops`, their `else` blocks always) is one that `is` picks.
pub fn any_stmt(body: &[Stmt], loops: bool, is: &impl Fn(&StmtKind) -> bool) -> bool {
    body.iter().any(|s| {
        let looping = matches!(s.kind, StmtKind::While { .. } | StmtKind::For { .. });
        // A loop's blocks are its body, then its `else` block, which is outside the loop.
        let blocks = s.blocks();
        let skip = usize::from(looping && !loops);
        is(&s.kind) || blocks[skip..].iter().any(|b| any_stmt(b, loops, is))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(src: &str) -> Vec<Stmt> {
        stmjit_lang::parse(src).expect("parses").body
    }

    /// Statements, targets and expressions count one each, nested blocks included; the
    /// count stops soon after the limit.
    #[test]
    fn weight_counts_nodes_up_to_the_limit() {
        // Assign, target, Binary, Name, Int.
        assert_eq!(weight(&body("x = y + 1\n"), 100), 5);
        // If, Name; its body: Assign, target, Int; else: Pass.
        assert_eq!(weight(&body("if a:\n    x = 1\nelse:\n    pass\n"), 100), 6);
        let chain = body(&format!("x = y{}\n", " + y".repeat(5000)));
        assert_eq!(weight(&chain, 1_000_000), 2 + 2 * 5000 + 1);
        let w = weight(&chain, 100);
        assert!((101..200).contains(&w), "{w}");
        let e = match &chain[0].kind {
            StmtKind::Assign { value, .. } => value,
            _ => unreachable!(),
        };
        assert_eq!(expr_weight(e, 1_000_000), 2 * 5000 + 1);
    }

    /// `any_stmt` looks into `if`, `with` and `try` blocks, into loops only when asked.
    #[test]
    fn any_stmt_looks_into_blocks() {
        let b =
            body("for i in x:\n    if i:\n        break\ntry:\n    pass\nfinally:\n    y = 2\n");
        let is_break = |k: &StmtKind| matches!(k, StmtKind::Break);
        assert!(!any_stmt(&b, false, &is_break));
        assert!(any_stmt(&b, true, &is_break));
        // A `break` in a loop's `else` block is outside that loop.
        let w = body("while y:\n    for i in x:\n        pass\n    else:\n        break\n");
        let StmtKind::While { body: inner, .. } = &w[0].kind else {
            unreachable!()
        };
        assert!(any_stmt(inner, false, &is_break));
        let is_assign = |k: &StmtKind| matches!(k, StmtKind::Assign { .. });
        assert!(any_stmt(&b, false, &is_assign));
    }
}
