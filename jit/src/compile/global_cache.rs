//! Module globals read in a loop, read once (issue 16): `while i < MAXITER and ...` read
//! `MAXITER` through a read barrier at every iteration.
//!
//! A loop that calls no JIT code (no call but of a builtin by name, or of a function computed
//! inline, whose out-of-line call reads the globals again after it), stores to none of the
//! globals it reads, and has no nested loop, `try`, `with`, `def`, `class` or `del` gets a
//! variable per global it reads, filled before the loop (read barrier included) and read in
//! the loop instead of the global. The value stays right while nothing can rebind the
//! global:
//! - this thread rebinds a global only by a store (there is none) or by running code that
//!   does: JIT code is reached from the loop only through runtime helpers that may move
//!   objects ([`Effects::MayMove`]: operators' special methods, a builtin's callback), after
//!   each of which the variables are read again ([`FnCompiler::reload_cached_globals`], from
//!   [`FnCompiler::call`]); a helper that may not move objects runs no Python code;
//! - another thread's rebinding is seen by this one only at a transaction boundary: the read
//!   marker set by the first read makes a commit of a write to that global conflict with
//!   this transaction until it ends (DESIGN.md, barriers), and a boundary happens only in a
//!   helper (the poll's slow path, the reads following it) or at a restart, where each
//!   restart point inside the loop reads them again ([`FnCompiler::push_restart`]);
//! - a minor collection moves a global's object only inside a helper, after which it is
//!   read again.
//!
//! The cached word may be `UNBOUND`: its use tests that as the read of the global does, so
//! errors and their positions do not change.

use super::int_loops::complex;
use super::weight::{walk, walk_expr, Node};
use super::FnCompiler;
use cranelift_codegen::ir::{types::I64, Block};
use cranelift_frontend::Variable;
use stmjit_lang::ast::{Expr, ExprKind, Name, Slot, Stmt, StmtKind, Target};
use stmjit_lang::diag::Span;
#[cfg(doc)]
use stmjit_vm::abi::Effects;

/// A global read through a variable in the loop being compiled: its index, the variable,
/// and the span of its first read (the site its read barrier reports).
#[derive(Clone, Copy)]
pub(crate) struct CachedGlobal {
    g: usize,
    var: Variable,
    span: Span,
}

/// The globals read in `exprs` and `body` (a loop's head expressions and body) that may be
/// cached while it runs, with the span of a read of each (see the module docs); empty where
/// the loop does not qualify.
fn cacheable(
    exprs: &[&Expr],
    extra_target: Option<&Name>,
    body: &[Stmt],
    inlined: &dyn Fn(&Expr, usize) -> bool,
) -> Vec<(usize, Span)> {
    let mut reads: Vec<(usize, Span)> = Vec::new();
    let mut stored: Vec<usize> = Vec::new();
    let mut ok = true;
    if let Some(Slot::Global(g)) = extra_target.map(|n| n.slot) {
        stored.push(g);
    }
    let mut each = |node: Node| match node {
        Node::Stmt(s) => ok &= !complex(&s.kind) && !matches!(s.kind, StmtKind::Del(_)),
        Node::Target(Target::Name(n)) => {
            if let Slot::Global(g) = n.slot {
                stored.push(g);
            }
        }
        Node::Target(_) => {}
        Node::Expr(e) => match &e.kind {
            ExprKind::Name(n) => {
                if let Slot::Global(g) = n.slot {
                    if !reads.iter().any(|&(r, _)| r == g) {
                        reads.push((g, e.span));
                    }
                }
            }
            ExprKind::Call { func, args } => {
                ok &= matches!(&func.kind, ExprKind::Name(n)
                    if matches!(n.slot, Slot::Builtin(_) | Slot::Unresolved))
                    || inlined(func, args.len());
            }
            ExprKind::CallEx { .. } | ExprKind::MethodCall { .. } | ExprKind::Lambda(_) => {
                ok = false
            }
            _ => {}
        },
    };
    for e in exprs {
        walk_expr(e, &mut each);
    }
    walk(body, &mut each);
    if !ok {
        return Vec::new();
    }
    reads.retain(|(g, _)| !stored.contains(g));
    reads
}

impl FnCompiler<'_, '_> {
    /// Compiles a loop (`compile`) with the globals its head expressions `exprs` and `body`
    /// read cached in variables where it qualifies (see the module docs); `target` is a
    /// `for` loop's variable.
    pub(crate) fn with_cached_globals(
        &mut self,
        exprs: &[&Expr],
        target: Option<&Name>,
        body: &[Stmt],
        compile: impl FnOnce(&mut Self),
    ) {
        let reads = if self.compact || self.locals_in_slots {
            Vec::new()
        } else {
            let inlined = |func: &Expr, nargs: usize| self.inlined_callee(func, nargs);
            cacheable(exprs, target, body, &inlined)
        };
        let outer = self.global_cache.len();
        for (g, span) in reads {
            if self.cached_global(g).is_some() {
                continue;
            }
            let var = match self.global_vars.iter().find(|&&(x, _)| x == g) {
                Some(&(_, v)) => v,
                None => {
                    let v = self.b.declare_var(I64);
                    self.global_vars.push((g, v));
                    v
                }
            };
            let c = CachedGlobal { g, var, span };
            self.reload_one(c);
            self.global_cache.push(c);
        }
        compile(self);
        self.global_cache.truncate(outer);
    }

    /// Whether a call of `func` with `nargs` arguments is a direct call of a function computed
    /// inline (`inline.rs`): the inline code calls nothing, and the call it leaves for, out
    /// of line, reads the cached globals again after it returns.
    fn inlined_callee(&self, func: &Expr, nargs: usize) -> bool {
        let ExprKind::Name(Name {
            slot: Slot::Global(g),
            ..
        }) = &func.kind
        else {
            return false;
        };
        self.sh.def_of_global.get(g).is_some_and(|&fid| {
            let f = &self.sh.program.functions[fid];
            f.is_plain() && f.arity == nargs && super::inline::inlinable(f).is_some()
        })
    }

    /// The variable holding global `g` in the loop being compiled, if it is cached.
    pub(crate) fn cached_global(&self, g: usize) -> Option<Variable> {
        self.global_cache.iter().find(|c| c.g == g).map(|c| c.var)
    }

    /// Reads every cached global again (after a helper that may have run Python code or
    /// ended the transaction, and at a restart point).
    pub(crate) fn reload_cached_globals(&mut self) {
        for c in self.global_cache.clone() {
            self.reload_one(c);
        }
    }

    fn reload_one(&mut self, c: CachedGlobal) {
        let v = self.load_global(c.g, c.span);
        self.b.def_var(c.var, v);
    }

    /// Makes `resume` restart point number `restarts.len()` and returns that number; the
    /// restart dispatch reads the globals cached here again before it jumps there.
    pub(crate) fn push_restart(&mut self, resume: Block) -> usize {
        let point = self.restarts.len();
        self.restarts.push(resume);
        if !self.held.is_empty() {
            self.restart_held.push((point, self.held.clone()));
        }
        if !self.global_cache.is_empty() {
            self.restart_globals
                .push((point, self.global_cache.clone()));
        }
        point
    }

    /// At restart point `point`'s block of the dispatch: reads the globals cached there.
    pub(crate) fn reload_restart_globals(&mut self, point: usize) {
        let Some(k) = self.restart_globals.iter().position(|(p, _)| *p == point) else {
            return;
        };
        for c in self.restart_globals[k].1.clone() {
            self.reload_one(c);
        }
    }
}
