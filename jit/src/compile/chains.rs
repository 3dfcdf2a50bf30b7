//! Huge expressions compiled as parts.
//!
//! An expression is compiled as one piece of code, whose compile memory follows its nodes
//! (a chain `1 + 1 + ...` of 19 000 terms took 700 MB). Where parts are allowed (as for
//! displays, `parts.rs`) and an expression has more than [`CHAIN_SPLIT_ABOVE`] nodes, a
//! chain of binary operators (`x0 op1 y1 op2 y2 ...`, left-associative: each operator's
//! left operand is the chain before it) is evaluated by parts of about [`CHAIN_PART`]
//! nodes sharing the function's frame: the first evaluates `x0` and its first operators,
//! each next one applies its operators to the value so far, kept in a temporary of the
//! frame (where the GC updates it), in the order and with the errors of the expression.
//! Other expressions are compiled in place (their subexpressions may be such chains, or
//! displays evaluated by parts).

use super::weight::expr_weight;
use super::FnCompiler;
use cranelift_codegen::ir::Value;
use stmjit_lang::ast::{BinOp, Expr, ExprKind};
use stmjit_lang::diag::Span;

/// An expression of more nodes than this is compiled by parts where it can be.
pub const CHAIN_SPLIT_ABOVE: usize = 4096;

/// The nodes of each part of a chain, about.
pub const CHAIN_PART: usize = 1024;

impl FnCompiler<'_, '_> {
    /// Evaluates `e` into a word, by parts if it is a huge chain (see the module docs).
    pub(crate) fn expr(&mut self, e: &Expr) -> Value {
        if self.light || !self.parts_allowed() {
            return self.expr_here(e);
        }
        if expr_weight(e, CHAIN_SPLIT_ABOVE) <= CHAIN_SPLIT_ABOVE {
            // Small: none of its subexpressions needs counting again.
            self.light = true;
            let v = self.expr_here(e);
            self.light = false;
            return v;
        }
        match &e.kind {
            ExprKind::Binary(_, a, _) if matches!(a.kind, ExprKind::Binary(..)) => {
                self.chain_by_parts(e)
            }
            _ => self.expr_here(e),
        }
    }

    /// Evaluates the chain of binary operators `e` by parts (see the module docs).
    fn chain_by_parts(&mut self, e: &Expr) -> Value {
        // The operators from the first: (op, right operand, the span of the operation).
        let mut ops: Vec<(BinOp, &Expr, Span)> = Vec::new();
        let mut x0 = e;
        while let ExprKind::Binary(op, a, b) = &x0.kind {
            ops.push((*op, b, x0.span));
            x0 = a;
        }
        ops.reverse();
        let mark = self.temp_mark();
        // The value so far.
        let acc = mark;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        let mut first = Some(x0);
        let mut start = 0;
        while start < ops.len() {
            let mut size = first.map_or(0, |x| expr_weight(x, CHAIN_PART));
            let mut end = start;
            while end < ops.len() && (end == start || size < CHAIN_PART) {
                size += 1 + expr_weight(ops[end].1, CHAIN_PART);
                end += 1;
            }
            let line = self.line;
            let range = &ops[start..end];
            let temps = self.temps;
            let part = self.borrowed_part("chain", &[], None, acc + 1, temps, |c| {
                c.at_line(line);
                if let Some(x) = first {
                    let v = c.expr(x);
                    c.store_slot(acc, v);
                }
                for &(op, y, span) in range {
                    let y = c.expr(y);
                    let x = c.load_slot(acc);
                    let r = c.binop(op, x, y, span, false);
                    c.store_slot(acc, r);
                }
            });
            match part {
                Some((id, _)) => self.call_borrowing(id),
                None => break,
            }
            first = None;
            start = end;
        }
        let v = self.load_slot(acc);
        self.pop_temps(mark);
        v
    }
}
