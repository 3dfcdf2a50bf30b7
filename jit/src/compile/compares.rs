//! Huge chained comparisons compiled as parts (see `chains.rs`).
//!
//! `x0 < x1 < x2 ...` evaluates each operand once, in order, and stops at the first
//! comparison that is not true (its value is the result; else the last comparison's). No
//! nesting limit applies to it (its operands are a list), so 100 000 operands took 3.35 GB
//! compiled as one piece of code. By parts of about `CHAIN_PART` nodes, sharing the
//! function's frame: the last operand so far is kept in a temporary (where the GC updates
//! it); a part that meets a comparison that is not true stores it in a second temporary,
//! the result (`UNBOUND` until then), and returns; after each part, the function stops if
//! the result is set.

use super::chains::{part_ranges, CHAIN_PART};
use super::weight::expr_weight;
use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, InstBuilder, Value};
use stmjit_lang::ast::{Expr, ExprKind};
use stmjit_runtime::value::TRUE;
use stmjit_vm::UNBOUND;

impl FnCompiler<'_, '_> {
    /// Evaluates the chained comparison `e` by parts (see the module docs).
    pub(crate) fn compare_by_parts(&mut self, e: &Expr) -> Value {
        let ExprKind::Compare { first, rest } = &e.kind else {
            unreachable!("a comparison")
        };
        let span = e.span;
        let mark = self.temp_mark();
        // The last operand so far, and the result.
        let (left, result) = (mark, mark + 1);
        self.temps += 2;
        self.max_temps = self.max_temps.max(self.temps);
        let unbound = self.b.ins().iconst(I64, UNBOUND as i64);
        self.store_slot(result, unbound);
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let ranges = part_ranges(rest, expr_weight(first, CHAIN_PART), |(_, r)| {
            expr_weight(r, CHAIN_PART)
        });
        for range in ranges {
            let line = self.line;
            let temps = self.temps;
            let is_first = range.start == 0;
            let ends = range.end == rest.len();
            let ops = &rest[range];
            let part = self.borrowed_part("compare", &[], None, result + 1, temps, |c| {
                c.at_line(line);
                if is_first {
                    let v = c.expr(first);
                    c.store_slot(left, v);
                }
                let out = c.b.create_block();
                for (i, (op, r)) in ops.iter().enumerate() {
                    let y = c.expr(r);
                    let mark = c.temp_mark();
                    let right = c.push_temp(y);
                    let x = c.load_slot(left);
                    let v = c.compare_one(*op, x, y, span);
                    if ends && i + 1 == ops.len() {
                        c.store_slot(result, v);
                    } else {
                        let t = c.b.ins().icmp_imm(IntCC::Equal, v, TRUE as i64);
                        let (next, stop) = (c.b.create_block(), c.b.create_block());
                        c.b.ins().brif(t, next, &[], stop, &[]);
                        c.b.switch_to_block(stop);
                        c.store_slot(result, v);
                        c.b.ins().jump(out, &[]);
                        c.b.switch_to_block(next);
                        let y = c.load_slot(right);
                        c.store_slot(left, y);
                    }
                    c.pop_temps(mark);
                }
                c.b.ins().jump(out, &[]);
                c.b.switch_to_block(out);
            });
            let Some((id, _)) = part else {
                break;
            };
            self.call_borrowing(id);
            let v = self.load_slot(result);
            if ends {
                self.b.ins().jump(done, &[v.into()]);
            } else {
                let set = self.b.ins().icmp_imm(IntCC::NotEqual, v, UNBOUND as i64);
                let next = self.b.create_block();
                self.b.ins().brif(set, done, &[v.into()], next, &[]);
                self.b.switch_to_block(next);
            }
        }
        if !self.is_filled() {
            // A part failed to compile (recorded): nothing runs.
            let v = self.load_slot(result);
            self.b.ins().jump(done, &[v.into()]);
        }
        self.b.switch_to_block(done);
        self.pop_temps(mark);
        self.b.block_params(done)[0]
    }
}
