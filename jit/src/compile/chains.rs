//! Huge expressions compiled as parts.
//!
//! An expression is compiled as one piece of code, whose compile memory follows its nodes
//! (a chain `1 + 1 + ...` of 19 000 terms took 700 MB, `a and b and ...` 1.2 GB, a
//! comparison `a < b < ...` of 19 000 operands 1.4 GB, `f(f(f(...)))` 19 000 deep 870 MB).
//! Where parts are allowed (as for displays, `parts.rs`) and an expression has more than
//! [`CHAIN_SPLIT_ABOVE`] nodes, it is evaluated by parts of about [`CHAIN_PART`] nodes
//! sharing the function's frame, in the order and with the errors of the expression:
//! - a chain of binary operators (`x0 op1 y1 op2 y2 ...`, left-associative: each
//!   operator's left operand is the chain before it), and a chain of `and` and `or` (also
//!   left-associative: `a and b and c` is `(a and b) and c`, whose value is tested again by
//!   the second `and`, as the interpreter does): the first part evaluates `x0` and its
//!   first operators, each next one applies its operators to the value so far, kept in a
//!   temporary of the frame (where the GC updates it);
//! - a chained comparison `x0 < x1 < ...` (`compares.rs`);
//! - any other expression is compiled in place, counting the nodes compiled so far in this
//!   code ([`FnCompiler::inline_nodes`]); past [`CHAIN_PART`] of them, or [`PART_INSTS`] IR
//!   instructions in this code, the next subexpression of more than [`CHAIN_LIGHT`] nodes is
//!   evaluated by a part of its own into a temporary ([`FnCompiler::nest_by_part`]): deep
//!   nestings (`f(f(...))`, `a if c else (b if d else ...)`, `not not ...`) are cut every
//!   [`CHAIN_PART`] nodes or [`PART_INSTS`] instructions or so, each part
//!   called where its subexpression is evaluated (in its branch for a conditional). Inside
//!   a part, such a part is only declared and called; it is compiled once the part calling
//!   it is (from a copy of its expression, `Deferred`), so that one part at a time is being
//!   compiled (the Cranelift memory of parts nested in each other was about 7 KB per level
//!   of `f(f(...))`, all at once).
//!
//! A huge condition (`if a and b and ...:`) is evaluated as a value by these, then tested
//! ([`FnCompiler::cond_by_parts`]).

use super::weight::expr_weight;
use super::FnCompiler;
use cranelift_codegen::ir::{Block, InstBuilder, Value};
use stmjit_lang::ast::{BinOp, Expr, ExprKind};
use stmjit_lang::diag::Span;

/// An expression of more nodes than this is compiled by parts where it can be.
pub const CHAIN_SPLIT_ABOVE: usize = 4096;

/// The nodes of each part of a chain, about; also the nodes of huge expressions compiled
/// in place in one piece of code before a huge subexpression is cut into a part.
pub const CHAIN_PART: usize = 1024;

/// A subexpression of at most this many nodes is compiled whole where it is (none of its
/// subexpressions is cut into a part).
pub const CHAIN_LIGHT: usize = 256;

/// The IR instructions of a piece of code past which the next huge subexpression (of more
/// than [`CHAIN_LIGHT`] nodes) is cut into a part, whatever its nodes: compile memory
/// follows the instructions (about 1.5 KB each), and some nodes make many of them (a call
/// of a function that raises where it is: about 40; 170 when its body was computed inline),
/// so that a part of `f(f(...))` cut by nodes alone (about 340 levels) took 85 MB.
pub const PART_INSTS: usize = 4096;

/// What a node compiled in place counts towards [`CHAIN_PART`]. The code of a nesting is
/// made after that of its subexpressions, so [`PART_INSTS`] cannot see the levels above
/// the one being descended into: an attribute load or an index (about 130 IR instructions
/// each, with its cache probe and barriers, against about 4 a node for the rest) counts for
/// its instructions, so that `o.p.p...` is cut into parts of about 4 000 instructions
/// rather than of 1 024 loads (130 000 instructions: 96 MB to compile).
fn nest_cost(e: &Expr) -> usize {
    match e.kind {
        ExprKind::Attr { .. } | ExprKind::Index { .. } => NEST_HEAVY,
        _ => 1,
    }
}

/// What an attribute load or an index counts for in [`nest_cost`].
const NEST_HEAVY: usize = 32;

/// An operator of a chain: a binary operator, `and` or `or`.
#[derive(Clone, Copy)]
enum Link {
    Bin(BinOp),
    And,
    Or,
}

/// The left operand of `e` if `e` is a link of a chain (see the module docs), with the
/// link.
fn link(e: &Expr) -> Option<(Link, &Expr, &Expr)> {
    match &e.kind {
        ExprKind::Binary(op, a, b) => Some((Link::Bin(*op), a, b)),
        ExprKind::And(a, b) => Some((Link::And, a, b)),
        ExprKind::Or(a, b) => Some((Link::Or, a, b)),
        _ => None,
    }
}

/// Whether `e` is a chain of two links or more of one kind (binary operators, or `and`
/// and `or`).
fn is_chain(e: &Expr) -> bool {
    let same = |x: Link, y: Link| matches!(x, Link::Bin(_)) == matches!(y, Link::Bin(_));
    match (link(e), link_of_left(e)) {
        (Some((x, _, _)), Some(y)) => same(x, y),
        _ => false,
    }
}

/// The link of the left operand of `e`, if both are links.
fn link_of_left(e: &Expr) -> Option<Link> {
    let (_, a, _) = link(e)?;
    link(a).map(|(l, _, _)| l)
}

/// Splits `ops` (each of one node plus its operand's) into consecutive ranges of about
/// [`CHAIN_PART`] nodes, the first also holding `first` nodes.
pub(crate) fn part_ranges<T>(
    ops: &[T],
    first: usize,
    weight: impl Fn(&T) -> usize,
) -> Vec<std::ops::Range<usize>> {
    let mut ranges = Vec::new();
    let (mut start, mut size) = (0, first);
    while start < ops.len() {
        let mut end = start;
        while end < ops.len() && (end == start || size < CHAIN_PART) {
            size += 1 + weight(&ops[end]);
            end += 1;
        }
        ranges.push(start..end);
        (start, size) = (end, 0);
    }
    ranges
}

/// A huge subexpression evaluated by a part of its own, compiled after the code calling it
/// ([`FnCompiler::nest_by_part`]): a copy of it (the code calling it borrows the AST only
/// while it is compiled), and where it is.
pub struct Deferred {
    expr: Expr,
    /// The temporary it is evaluated into.
    slot: usize,
    /// The temporaries in use at its call.
    temps: usize,
    line: u32,
    /// The locals definitely assigned at its call.
    assigned: Vec<bool>,
}

/// The code of the part evaluating `e` at source line `line` into temporary `slot`.
fn emit_nest(c: &mut FnCompiler<'_, '_>, e: &Expr, slot: usize, line: u32) {
    c.at_line(line);
    c.inline_nodes = 1;
    let v = c.expr_here(e);
    c.store_slot(slot, v);
}

impl FnCompiler<'_, '_> {
    /// Evaluates `e` into a word, by parts if it is huge (see the module docs).
    pub(crate) fn expr(&mut self, e: &Expr) -> Value {
        if self.light || !self.parts_allowed() {
            return self.expr_here(e);
        }
        let w = expr_weight(e, CHAIN_SPLIT_ABOVE);
        if w <= CHAIN_LIGHT {
            // Small: none of its subexpressions needs counting again.
            self.inline_nodes += w;
            self.light = true;
            let v = self.expr_here(e);
            self.light = false;
            return v;
        }
        let huge = w > CHAIN_SPLIT_ABOVE;
        match &e.kind {
            _ if huge && is_chain(e) => self.chain_by_parts(e),
            ExprKind::Compare { rest, .. } if huge && rest.len() > 1 => self.compare_by_parts(e),
            _ if self.inline_nodes >= CHAIN_PART || self.b.func.dfg.num_insts() >= PART_INSTS => {
                self.nest_by_part(e)
            }
            _ => {
                self.inline_nodes += nest_cost(e);
                self.expr_here(e)
            }
        }
    }

    /// Whether `e` is a huge expression in code that counts them (not inside a small one):
    /// such a tree is not compiled as a whole in place (as an unboxed float tree,
    /// `floats.rs`), so that its subexpressions are cut into parts.
    pub(crate) fn huge(&self, e: &Expr) -> bool {
        !self.light && expr_weight(e, CHAIN_SPLIT_ABOVE) > CHAIN_SPLIT_ABOVE
    }

    /// Whether the condition `e` is to be evaluated as a value by [`Self::expr`] (a huge
    /// chain, or a huge subexpression past the nodes compiled in place) and tested, rather
    /// than branched on in place; counts it as a node compiled in place otherwise.
    pub(crate) fn cond_by_parts(&mut self, e: &Expr) -> bool {
        if self.light
            || !self.parts_allowed()
            || expr_weight(e, CHAIN_SPLIT_ABOVE) <= CHAIN_SPLIT_ABOVE
        {
            return false;
        }
        if is_chain(e)
            || matches!(&e.kind, ExprKind::Compare { rest, .. } if rest.len() > 1)
            || self.inline_nodes >= CHAIN_PART
            || self.b.func.dfg.num_insts() >= PART_INSTS
        {
            return true;
        }
        self.inline_nodes += 1;
        false
    }

    /// Evaluates the huge expression `e` by a part of its own sharing this frame, into a
    /// temporary of the frame (see the module docs): compiled now in the code of the
    /// function, deferred in a part.
    fn nest_by_part(&mut self, e: &Expr) -> Value {
        let mark = self.temp_mark();
        let slot = mark;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        let (temps, line) = (self.temps, self.line);
        let id = if self.sh.parts_open == 0 {
            self.borrowed_part("nest", &[], None, slot + 1, temps, |c| {
                emit_nest(c, e, slot, line)
            })
            .map(|(id, _)| id)
        } else {
            let d = Deferred {
                expr: e.clone(),
                slot,
                temps,
                line,
                assigned: self.assigned.clone(),
            };
            self.declare_part("nest")
                .inspect(|&id| self.sh.deferred.push((id, d)))
        };
        if let Some(id) = id {
            self.call_borrowing(id);
        }
        let v = self.load_slot(slot);
        self.pop_temps(mark);
        v
    }

    /// Compiles the parts deferred so far ([`Self::nest_by_part`]), those they defer in turn
    /// included.
    pub(crate) fn define_deferred(&mut self) {
        while let Some((id, d)) = self.sh.deferred.pop() {
            let (start, temps, assigned) = (d.slot + 1, d.temps, d.assigned.clone());
            // The part owns its expression: freed once compiled, before those it defers.
            let emit = move |c: &mut FnCompiler<'_, '_>| emit_nest(c, &d.expr, d.slot, d.line);
            self.define_part(id, &[], None, start, temps, assigned, emit);
        }
    }

    /// Evaluates the chain `e` (binary operators, or `and` and `or`) by parts (see the
    /// module docs).
    fn chain_by_parts(&mut self, e: &Expr) -> Value {
        let bin = matches!(link(e), Some((Link::Bin(_), _, _)));
        // The links from the first: (link, right operand, the span of the operation).
        let mut ops: Vec<(Link, &Expr, Span)> = Vec::new();
        let mut x0 = e;
        while let Some((l, a, b)) = link(x0).filter(|(l, _, _)| matches!(l, Link::Bin(_)) == bin) {
            ops.push((l, b, x0.span));
            x0 = a;
        }
        ops.reverse();
        let mark = self.temp_mark();
        // The value so far.
        let acc = mark;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        let mut first = Some(x0);
        let first_weight = expr_weight(x0, CHAIN_PART);
        for range in part_ranges(&ops, first_weight, |(_, y, _)| expr_weight(y, CHAIN_PART)) {
            let line = self.line;
            let range = &ops[range];
            let temps = self.temps;
            let part = self.borrowed_part("chain", &[], None, acc + 1, temps, |c| {
                c.at_line(line);
                if let Some(x) = first {
                    let v = c.expr(x);
                    c.store_slot(acc, v);
                }
                for &(l, y, span) in range {
                    c.link(l, acc, y, span);
                }
            });
            match part {
                Some((id, _)) => self.call_borrowing(id),
                None => break,
            }
            first = None;
        }
        let v = self.load_slot(acc);
        self.pop_temps(mark);
        v
    }

    /// Applies link `l` with right operand `y` to the value so far in slot `acc`.
    fn link(&mut self, l: Link, acc: usize, y: &Expr, span: Span) {
        let Link::Bin(op) = l else {
            // `x and y`: `y` if `x` is true, else `x` (and the reverse for `or`); its truth
            // is taken where the interpreter takes it, at the left operand's position.
            let x = self.load_slot(acc);
            let other: Block = self.b.create_block();
            let done = self.b.create_block();
            if matches!(l, Link::And) {
                self.branch_truthy(x, span, other, done);
            } else {
                self.branch_truthy(x, span, done, other);
            }
            self.b.switch_to_block(other);
            let v = self.expr(y);
            self.store_slot(acc, v);
            self.b.ins().jump(done, &[]);
            self.b.switch_to_block(done);
            return;
        };
        let y = self.expr(y);
        let x = self.load_slot(acc);
        let r = self.binop(op, x, y, span, false);
        self.store_slot(acc, r);
    }
}
