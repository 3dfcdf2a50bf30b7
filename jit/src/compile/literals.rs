//! Displays (`[...]`, `(...)`, `{...}`) whose items are all constants.
//!
//! A display is compiled as its items evaluated into frame temporaries and one helper call
//! with their address. When every item is a constant word (a small int or its negation, a
//! bool, `None`, or a str, float or big int literal: an old object allocated before any code, which
//! never moves), the words are known at compile time: they are kept in a table beside the code
//! (`CodeTables::add_words`) and the helper is given its address, so the display costs a
//! handful of IR instructions whatever its size, instead of two per item (a 1.2 M-entry dict
//! literal was 4.8 M IR instructions, 75 MB of code and 2.1 GB of compile memory). The
//! helpers read the items through a pointer and never write them, and the GC has nothing to
//! update in the table (no item moves), so the table is as good as frame slots.

use super::FnCompiler;
use cranelift_codegen::ir::{types::I64, InstBuilder, Value};
use stmjit_lang::ast::{BinOp, Expr, ExprKind, UnaryOp};
use stmjit_lang::diag::Span;
use stmjit_runtime::value::{FALSE, NONE, TRUE};
use stmjit_vm::abi::{tagged_int, Helper};

/// Displays of fewer items than this are compiled item by item (a table is not worth it).
const CONST_DISPLAY_MIN: usize = 16;

impl FnCompiler<'_, '_> {
    /// The word of `e` if it is a constant known at compile time that never moves.
    pub(crate) fn const_word(&self, e: &Expr) -> Option<u64> {
        Some(match &e.kind {
            ExprKind::Int(i) => tagged_int(*i),
            // `-5`: the parser keeps ints in the tagged range, which is symmetric but for its
            // minimum (not a negated literal).
            ExprKind::Unary(UnaryOp::Neg, a) => match a.kind {
                ExprKind::Int(i) => tagged_int(-i),
                _ => self.big_const(e)?,
            },
            ExprKind::Bool(v) => {
                if *v {
                    TRUE
                } else {
                    FALSE
                }
            }
            ExprKind::None => NONE,
            ExprKind::Float(f) => *self.sh.consts.floats.get(&f.to_bits())?,
            ExprKind::Str(s) => *self.sh.consts.strs.get(&**s)?,
            ExprKind::Binary(..) => self.big_const(e)?,
            _ => return None,
        })
    }

    /// The constant object of `e` if it is an int literal beyond the tagged ints, or its
    /// negation (`stmjit_lang::parser::big_literal_value`): allocated before any code, like
    /// str literals, instead of computed where it runs (three operations and their slow
    /// paths per literal; a display of 60 000 of them was 118 MB of code).
    pub(crate) fn big_const(&self, e: &Expr) -> Option<u64> {
        if !matches!(
            e.kind,
            ExprKind::Binary(BinOp::Add, ..) | ExprKind::Unary(UnaryOp::Neg, _)
        ) {
            return None;
        }
        let v = stmjit_lang::parser::big_literal_value(e)?;
        self.sh.consts.bigs.get(&v).copied()
    }

    /// A display of `n` items (`items`: their expressions in the order `helper` reads them,
    /// two per item for a dict) made by `helper(ctx, words, n)` from a table of constant
    /// words, if the display is large enough and all of `items` are constants; `None` to
    /// compile it item by item.
    pub(crate) fn const_display<'e>(
        &mut self,
        helper: Helper,
        items: impl Iterator<Item = &'e Expr> + Clone,
        n: usize,
        span: Span,
    ) -> Option<Value> {
        if n < CONST_DISPLAY_MIN {
            return None;
        }
        let words = items
            .map(|e| self.const_word(e))
            .collect::<Option<Vec<u64>>>()?;
        let table = self.sh.code.add_words(words) as i64;
        let p = self.b.ins().iconst(I64, table);
        let n = self.b.ins().iconst(I64, n as i64);
        Some(self.call_checked(helper, &[self.ctx, p, n], span))
    }
}
