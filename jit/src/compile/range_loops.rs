//! `for v in range(start, stop[, STEP])` loops (constant `STEP`) over an innermost body,
//! compiled in two versions as the `while` loops of `int_loops.rs` are. The fast one runs
//! where both bounds are ints: the counter is the loop variable itself, a tagged int in a
//! register (no frame temporaries, no mode test at each back-edge), and the body runs with
//! `v` known to be an int, so the int operations on it need no type test (`i + j`, `u[j]`).
//! Where a bound is not an int (`range()` raises, or accepts a bool or a big int), the loop
//! runs in the generic version instead, out of line: the range object made and iterated.
//!
//! Only a body that computes with `v` (`i + j`, `eval_a(i, j)`: [`computes_with`]) and
//! does not bind `v` (no assignment, no `del`) is versioned: `v` then holds
//! the counter's int on every way round the back-edge, a restart at the poll included (the
//! locals reloaded there are those saved at the boundary, the same int). Like the `while`
//! loops, only innermost loops of simple statements of bounded size are versioned: the body
//! is compiled twice.

use super::int_loops::versionable;
use super::weight::{walk, Node};
use super::FnCompiler;
use cranelift_codegen::ir::{types::I64, InstBuilder};
use stmjit_lang::ast::{Expr, ExprKind, Name, Slot, Stmt, Target};
use stmjit_lang::diag::Span;

/// Whether `body` binds local `slot` (assigns it or deletes it).
fn binds(body: &[Stmt], slot: usize) -> bool {
    let mut found = false;
    walk(body, &mut |n| {
        if let Node::Target(Target::Name(t)) = n {
            found |= t.slot == Slot::Local(slot);
        }
    });
    found
}

/// Whether `body` computes with local `slot` as an int: an operand of an arithmetic
/// operation or a comparison, or an argument of a call (which may be computed inline on
/// ints). Only then does knowing it an int pay for a second copy of the body (`bodies[j]`
/// alone saves one tag test).
fn computes_with(body: &[Stmt], slot: usize) -> bool {
    let is = |e: &Expr| matches!(&e.kind, ExprKind::Name(n) if n.slot == Slot::Local(slot));
    let mut found = false;
    walk(body, &mut |n| {
        if let Node::Expr(e) = n {
            found |= match &e.kind {
                ExprKind::Binary(_, a, b) => is(a) || is(b),
                ExprKind::Compare { first, rest } => is(first) || rest.iter().any(|(_, x)| is(x)),
                ExprKind::Call { args, .. } => args.iter().any(is),
                _ => false,
            };
        }
    });
    found
}

impl FnCompiler<'_, '_> {
    /// Compiles `for var in range(...)` in two versions (see the module docs), its bounds
    /// in temporaries `st` and `et` (words that range() was given, or would be), when `var`
    /// is a local that `body` does not bind and `body` may be compiled twice; `false`
    /// (nothing emitted) otherwise.
    pub(super) fn range_versioned(
        &mut self,
        var: &Name,
        (st, et): (usize, usize),
        args: &[Expr],
        step: i64,
        body: &[Stmt],
        (span, iter_span): (Span, Span),
    ) -> bool {
        let Slot::Local(v) = var.slot else {
            return false;
        };
        if self.locals_in_slots
            || self.float_var(v).is_some()
            || !versionable(body)
            || binds(body, v)
            || !computes_with(body, v)
        {
            return false;
        }
        let past_else = self.break_past_else;
        let generic = self.b.create_block();
        let body_b = self.b.create_block();
        self.b.append_block_param(body_b, I64);
        let exit = self.b.create_block();
        let start = self.load_slot(st);
        let stop = self.load_slot(et);
        let both = self.b.ins().band(start, stop);
        let bit = self.b.ins().band_imm(both, 1);
        let first = self.b.create_block();
        self.b.ins().brif(bit, first, &[], generic, &[]);
        // The fast version: the first item, if below the end.
        self.b.switch_to_block(first);
        let go = self.range_continues(step, start, stop);
        self.b.ins().brif(go, body_b, &[start.into()], exit, &[]);
        self.b.switch_to_block(body_b);
        self.local_of.clear();
        let x = self.b.block_params(body_b)[0];
        self.expect_loop_classes(None, body);
        let latch = self.b.create_block();
        let outer = self.int_locals.clone();
        self.loop_body(body, latch, exit, |c| {
            c.store_name(var, x, span);
            c.int_locals.push(v);
        });
        // The poll first: its restart point finds `var` in its slot.
        self.poll(span);
        let cur = self.load_slot(v);
        self.int_locals = outer;
        let delta = self.b.ins().iconst(I64, step.wrapping_mul(2));
        let (next, of) = self.b.ins().sadd_overflow(cur, delta);
        // Past the largest tagged int is past any int end.
        let more = self.b.create_block();
        self.b.ins().brif(of, exit, &[], more, &[]);
        self.b.switch_to_block(more);
        let end = self.load_slot(et);
        let go = self.range_continues(step, next, end);
        self.b.ins().brif(go, body_b, &[next.into()], exit, &[]);
        // The generic version, out of line: the range object iterated.
        self.break_past_else = past_else;
        self.b.set_cold_block(generic);
        let first_new = self.b.func.dfg.num_blocks();
        self.b.switch_to_block(generic);
        let r = self.range_object(args, (st, et), iter_span);
        self.iterate(var, r, body, span, iter_span, exit);
        self.cold_from(first_new);
        self.b.switch_to_block(exit);
        true
    }
}
