//! Restart points at `join` statements (issue 14).
//!
//! A join of a running thread after the transaction wrote something commits it before
//! waiting (the thread may wait for those stores), and the transaction that follows began
//! without restart point: inevitable until the next poll, so every other segment's writer
//! commit waited for it. A statement whose first effect, in Python's order of evaluation,
//! is a join `x.join()` of a name (`x.join()`, `v = x.join()`, `v += x.join()`,
//! `r[k] = f(x.join())[1]`, outside `with` blocks) gets a restart point at its start
//! instead: the call goes through `stmjit_join_at` with this frame and the point, and the
//! transaction that follows such a join restarts there. Running the statement again
//! repeats nothing the committed transaction did (only names and constants are read
//! before the join), and the join then finds the thread ended and returns at once; what
//! follows the join runs in the new transaction either way.

use super::FnCompiler;
use cranelift_codegen::ir::{types::I64, InstBuilder, Value};
use stmjit_lang::ast::{Expr, ExprKind, StmtKind, Target};
use stmjit_lang::diag::Span;
use stmjit_vm::abi::Helper;

/// What evaluating an expression does first, in Python's order of evaluation.
#[derive(PartialEq)]
enum First {
    /// Nothing observable (names and constants only).
    Nothing,
    /// A call `name.join()`.
    Join,
    /// Anything else (a call, an operator or a lookup that user code may define).
    Other,
}

/// What evaluating `e` does first: its operands from left to right, then its own operation.
fn first(e: &Expr) -> First {
    let operands: Vec<&Expr> = match &e.kind {
        ExprKind::Int(_)
        | ExprKind::Float(_)
        | ExprKind::Str(_)
        | ExprKind::Bool(_)
        | ExprKind::None
        | ExprKind::Name(_) => return First::Nothing,
        ExprKind::MethodCall { obj, name, args }
            if &**name == "join" && args.is_empty() && matches!(obj.kind, ExprKind::Name(_)) =>
        {
            return First::Join
        }
        ExprKind::Binary(_, l, r) => vec![l, r],
        ExprKind::Index { obj, index } => vec![obj, index],
        ExprKind::Call { func, args } => std::iter::once(&**func).chain(args).collect(),
        ExprKind::MethodCall { obj, args, .. } => std::iter::once(&**obj).chain(args).collect(),
        _ => return First::Other,
    };
    operands
        .into_iter()
        .map(first)
        .find(|f| *f != First::Nothing)
        .unwrap_or(First::Other)
}

/// Whether the statement's first effect is a join after which it may run again from its
/// start (see the module docs): an expression statement, an assignment (its targets are
/// evaluated after the value) or an augmented assignment of a name.
fn is_join_statement(s: &StmtKind) -> bool {
    let value = match s {
        StmtKind::Expr(e) | StmtKind::Assign { value: e, .. } => e,
        StmtKind::AugAssign {
            target: Target::Name(_),
            value,
            ..
        } => value,
        _ => return false,
    };
    first(value) == First::Join
}

impl FnCompiler<'_, '_> {
    /// Before statement `s`: a restart point at its start if it is a join statement, taken
    /// by its join's call ([`Self::join_call`]).
    pub(super) fn open_join_restart(&mut self, s: &StmtKind) {
        if !self.sh.polls || self.with_depth > 0 || !is_join_statement(s) {
            return;
        }
        let start = self.b.create_block();
        // Reached from the restart dispatch too: no value of the code before it holds there.
        self.loop_leaves.clear();
        self.join_point = Some(self.push_restart(start) as u64);
        self.b.ins().jump(start, &[]);
        self.b.switch_to_block(start);
    }

    /// The generic call of `.join()` whose receiver is in slot `mark`, if it is the call of
    /// the join statement being compiled: `stmjit_join_at` with the statement's restart
    /// point (locals boxed first, as before a poll's slow path, so that a restart finds
    /// them in their slots).
    pub(super) fn join_call(
        &mut self,
        name_id: Value,
        mark: usize,
        cache: Value,
        span: Span,
    ) -> Option<Value> {
        let point = self.join_point.take()?;
        self.box_all_unboxed();
        let frame = self.frame();
        let p = self.b.ins().iconst(I64, point as i64);
        let argv = self.slot_addr(mark);
        let args = [self.ctx, frame, p, name_id, argv, cache];
        let r = self.call_checked(Helper::JoinAt, &args, span);
        // It may have begun a transaction restarting here (`barriers.rs`).
        self.remark_held(span, false);
        Some(r)
    }
}
