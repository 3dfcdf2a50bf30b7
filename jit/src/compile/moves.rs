//! Copies `n = m` of a local that is dead after them: the copy may move an unboxed float
//! (`unboxed.rs`) instead of boxing it.
//!
//! `zr = t` where both are float locals boxed `t` at every loop iteration, since two
//! locals holding `UNBOXED` would box apart later and `zr is t` must hold. Where no path
//! from the copy reads `m` before writing it, nothing can compare the two (`m` is never
//! read again as it is), so the copy takes `m`'s word (`UNBOXED` included) and `f64`.
//!
//! The analysis is conservative: a statement after the copy that names `m` anywhere (a
//! read, or a write other than a plain `m = value` not reading `m`) counts as a read,
//! except `if` statements and loops, which are looked into (a loop may run its body no
//! time: only a read in it decides); the paths followed are the rest of each enclosing block, each enclosing loop's head and body
//! again (its back-edge) and what follows the loop (its `else` block or, by `break`, past
//! it), to the end of the function. A copy inside a `try` statement is never a move (a
//! handler or `finally` block may run from anywhere in it).

use super::weight::{any_stmt, walk, Node};
use std::collections::HashSet;
use stmjit_lang::ast::{Expr, ExprKind, Name, Slot, Stmt, StmtKind, Target};

/// What runs after a point of the body, as the analysis follows it.
enum Next<'a> {
    /// The function returns.
    End,
    /// These statements, then the rest.
    Stmts(&'a [Stmt], &'a Next<'a>),
    /// The end of a loop's body: its head again (a `while` condition, or a `for` assigning
    /// its variable), then the body; or leaving by `exit` (the `else` block and on) or by
    /// `brk` (past the `else` block).
    Loop {
        cond: Option<&'a Expr>,
        var: Option<usize>,
        body: &'a [Stmt],
        exit: &'a Next<'a>,
        brk: &'a Next<'a>,
    },
}

/// The local slot of a name, if it is one.
fn local(n: &Name) -> Option<usize> {
    match n.slot {
        Slot::Local(i) => Some(i),
        _ => None,
    }
}

/// Whether `stmts` name local `m` anywhere (read, write, loop variable, `except ... as`).
fn mentions(stmts: &[Stmt], m: usize) -> bool {
    let mut found = false;
    walk(stmts, &mut |node| {
        let n = match node {
            Node::Expr(Expr {
                kind: ExprKind::Name(n),
                ..
            })
            | Node::Target(Target::Name(n)) => Some(n),
            Node::Stmt(s) => match &s.kind {
                StmtKind::For { var, .. } => Some(var),
                StmtKind::FunctionDef { target, .. } | StmtKind::ClassDef { target, .. } => {
                    Some(target)
                }
                StmtKind::Try { handlers, .. } => {
                    found |= handlers
                        .iter()
                        .any(|h| h.name.as_ref().and_then(local) == Some(m));
                    None
                }
                _ => None,
            },
            _ => None,
        };
        found |= n.and_then(local) == Some(m);
    });
    found
}

/// Whether `e` names local `m`.
fn mentions_expr(e: &Expr, m: usize) -> bool {
    let mut found = false;
    super::weight::walk_expr(e, &mut |node| {
        if let Node::Expr(Expr {
            kind: ExprKind::Name(n),
            ..
        }) = node
        {
            found |= local(n) == Some(m);
        }
    });
    found
}

/// Following `stmts` in order: `Some(true)` if `m` is written before any read (or the
/// function returns), `Some(false)` if it may be read first, `None` if they do not
/// decide (control goes on past them, or by `break`/`continue`, which [`Next`] covers).
fn scan(stmts: &[Stmt], m: usize) -> Option<bool> {
    // A `break` or `continue` before a write skips it on some path: then the write decides
    // nothing, and [`Next`] follows where the jump goes.
    let mut jumped = false;
    for s in stmts {
        match effect(s, m) {
            Some(false) => return Some(false),
            Some(true) => return (!jumped).then_some(true),
            None => {
                jumped |= any_stmt(std::slice::from_ref(s), true, &|k| {
                    matches!(k, StmtKind::Break | StmtKind::Continue)
                })
            }
        }
    }
    None
}

/// What statement `s` decides about local `m`, as [`scan`] answers for a list: a loop
/// may run its body no time, so it decides only a read; any statement but an assignment,
/// `return`, `if` or a loop that names `m` may read it.
fn effect(s: &Stmt, m: usize) -> Option<bool> {
    let reads = |b: &[Stmt]| scan(b, m) == Some(false);
    match &s.kind {
        StmtKind::Assign { targets, value }
            if matches!(targets.as_slice(), [Target::Name(n)] if local(n) == Some(m))
                && !mentions_expr(value, m) =>
        {
            Some(true)
        }
        StmtKind::Return(e) => Some(!e.as_ref().is_some_and(|e| mentions_expr(e, m))),
        StmtKind::If { cond, body, orelse } => {
            if mentions_expr(cond, m) {
                return Some(false);
            }
            match (scan(body, m), scan(orelse, m)) {
                (Some(false), _) | (_, Some(false)) => Some(false),
                (Some(true), Some(true)) => Some(true),
                _ => None,
            }
        }
        StmtKind::While { cond, body, orelse } => {
            (mentions_expr(cond, m) || reads(body) || reads(orelse)).then_some(false)
        }
        StmtKind::For {
            var,
            iter,
            body,
            orelse,
        } => {
            // The body runs with `m` just written where it is the loop's variable.
            let body_reads = local(var) != Some(m) && reads(body);
            (mentions_expr(iter, m) || body_reads || reads(orelse)).then_some(false)
        }
        _ => mentions(std::slice::from_ref(s), m).then_some(false),
    }
}

/// Whether no path from `next` reads local `m` before writing it.
fn dead(m: usize, next: &Next<'_>) -> bool {
    match next {
        Next::End => true,
        Next::Stmts(rest, after) => scan(rest, m).unwrap_or_else(|| dead(m, after)),
        Next::Loop {
            cond,
            var,
            body,
            exit,
            brk,
        } => {
            let again = if *var == Some(m) {
                true
            } else if cond.is_some_and(|c| mentions_expr(c, m)) {
                false
            } else {
                // Through the body and round again: what the body leaves undecided comes
                // back here.
                scan(body, m) != Some(false)
            };
            again && dead(m, exit) && dead(m, brk)
        }
    }
}

/// The copy statements `n = m` of `body` (both locals, `n` and `m` marked in `floats`, `m`
/// certainly dead after it: see the module docs), by address.
pub(crate) fn moving_copies(body: &[Stmt], floats: &[bool]) -> HashSet<*const Stmt> {
    let mut out = HashSet::new();
    if floats.iter().any(|&f| f) {
        visit(body, &Next::End, floats, &mut out);
    }
    out
}

fn visit(stmts: &[Stmt], next: &Next<'_>, floats: &[bool], out: &mut HashSet<*const Stmt>) {
    for (k, s) in stmts.iter().enumerate() {
        let here = Next::Stmts(&stmts[k + 1..], next);
        match &s.kind {
            StmtKind::Assign { targets, value } => {
                if let ([Target::Name(n)], ExprKind::Name(m)) = (targets.as_slice(), &value.kind) {
                    if let (Some(i), Some(j)) = (local(n), local(m)) {
                        if i != j && floats[i] && floats[j] && dead(j, &here) {
                            out.insert(s as *const Stmt);
                        }
                    }
                }
            }
            StmtKind::If { body, orelse, .. } => {
                visit(body, &here, floats, out);
                visit(orelse, &here, floats, out);
            }
            StmtKind::While { cond, body, orelse } => {
                let exit = Next::Stmts(orelse, &here);
                let head = Next::Loop {
                    cond: Some(cond),
                    var: None,
                    body,
                    exit: &exit,
                    brk: &here,
                };
                visit(body, &head, floats, out);
                visit(orelse, &here, floats, out);
            }
            StmtKind::For {
                var, body, orelse, ..
            } => {
                let exit = Next::Stmts(orelse, &here);
                let head = Next::Loop {
                    cond: None,
                    var: local(var),
                    body,
                    exit: &exit,
                    brk: &here,
                };
                visit(body, &head, floats, out);
                visit(orelse, &here, floats, out);
            }
            StmtKind::With { body, .. } => visit(body, &here, floats, out),
            // Inside a `try`, no copy moves (see the module docs); other statements have
            // no blocks of this function.
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `(target, source)` names of the moving copies of the first function of `src`.
    fn moves(src: &str) -> Vec<(String, String)> {
        let p = stmjit_lang::parse(src).unwrap();
        let f = &p.functions[0];
        let floats = vec![true; f.locals.len()];
        let set = moving_copies(&f.body, &floats);
        let mut found = Vec::new();
        walk(&f.body, &mut |node| {
            if let Node::Stmt(s) = node {
                if set.contains(&(s as *const Stmt)) {
                    if let StmtKind::Assign { targets, value } = &s.kind {
                        if let ([Target::Name(n)], ExprKind::Name(m)) =
                            (targets.as_slice(), &value.kind)
                        {
                            found.push((n.name.to_string(), m.name.to_string()));
                        }
                    }
                }
            }
        });
        found
    }

    #[test]
    fn a_temporary_rewritten_each_iteration_moves() {
        let src = "def f(n):\n    zr = 0.0\n    i = 0\n    while i < n and zr < 4.0:\n        t = zr * zr + 0.5\n        zr = t\n        i += 1\n    return zr\n";
        assert_eq!(moves(src), [("zr".into(), "t".into())]);
    }

    #[test]
    fn an_inner_loop_that_writes_first_does_not_keep_the_source_alive() {
        // `t` is named by the inner loop of the next outer iteration, written before read.
        let src = "def f(n):\n    s = 0.0\n    for x in range(n):\n        zr = 0.0\n        i = 0\n        while i < 9 and zr < 4.0:\n            t = zr * zr + 0.5\n            zr = t\n            i += 1\n        if i == 9:\n            s = s + 1.0\n    return s\n";
        assert_eq!(moves(src), [("zr".into(), "t".into())]);
        // ... but not when the loop reads it before writing it, or `if` reads it in a branch.
        let src = "def f(n):\n    s = 0.0\n    t = 1.0\n    for x in range(n):\n        zr = t\n        while s < 4.0:\n            s = t + 1.0\n            t = s * 0.5\n    return s\n";
        assert!(moves(src).is_empty());
        let src = "def f(n):\n    t = 1.0\n    zr = t\n    if n > 1:\n        t = 2.0\n    else:\n        n = t\n    return zr\n";
        // (`n = t` moves: nothing reads `t` after it.)
        assert_eq!(moves(src), [("n".into(), "t".into())]);
        let src = "def f(n):\n    t = 1.0\n    zr = t\n    if n > 1:\n        t = 2.0\n    else:\n        return zr\n    return t + zr\n";
        assert_eq!(moves(src), [("zr".into(), "t".into())]);
    }

    #[test]
    fn a_source_read_later_does_not_move() {
        // Read after the loop, in the condition, in the next iteration before its write,
        // by a `for` loop's `else` block, past a `break`, or as the copy's own target.
        let cases = [
            "def f(n):\n    t = 0.0\n    for k in range(n):\n        t = t * 0.5 + 1.0\n        z = t\n    return t\n",
            "def f(n):\n    t = 1.0\n    z = 0.0\n    while t < 9.0:\n        z = t\n        t = t * 2.0\n    return z\n",
            "def f(n):\n    t = 1.0\n    z = 0.0\n    for k in range(n):\n        z = t\n        if k > 2:\n            t = z * 2.0\n        z = t + 1.0\n    return z\n",
            "def f(n):\n    t = 1.0\n    for k in range(n):\n        z = t\n        n = n + 1\n    else:\n        z = z + t\n    return z\n",
            "def f(n):\n    t = 1.0\n    z = 0.0\n    for k in range(n):\n        t = z * 2.0\n        z = t\n        if k > 3:\n            break\n        t = 1.0\n    return t\n",
        ];
        for src in cases {
            let m = moves(src);
            assert!(!m.iter().any(|(_, s)| s == "t"), "{src}: moved {m:?}");
        }
        // Written before any read on every path: moves.
        let src = "def f(n):\n    t = 1.0\n    z = 0.0\n    while t < 9.0:\n        z = t\n        t = z * 2.0\n    return z\n";
        assert_eq!(moves(src), [("z".into(), "t".into())]);
    }

    #[test]
    fn no_move_inside_try_or_when_returned() {
        let src = "def f(n):\n    t = 1.0\n    try:\n        z = t\n        t = 2.0 * z\n    except:\n        pass\n    return t\n";
        assert!(moves(src).is_empty());
        let src = "def f(n):\n    t = n * 1.0\n    z = t\n    return z + t\n";
        assert!(moves(src).is_empty());
        let src = "def f(n):\n    t = n * 1.0\n    z = t\n    return z\n";
        assert_eq!(moves(src), [("z".into(), "t".into())]);
    }
}
