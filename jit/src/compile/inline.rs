//! Small leaf functions computed inline at their direct calls, with the call as the way out.
//!
//! A module-level function whose body is assignments to its locals and then `return e`,
//! over literals, its locals and the operators with inline paths (`+ - * / // % & | ^ << >>`),
//! is a pure computation on its arguments when those paths apply: `def eval_a(i, j)` of the
//! spectral norm. At a direct call of such a function (the callee checked to be the function
//! its `def` bound, as every direct call is), the body is computed here on the argument
//! words, in SSA values: no frame is pushed, no local spilled around a call, no result
//! checked for an error. The body is emitted twice: for int arguments (all tested at once),
//! where the int operations need no type tests and have no float paths, and for any others.
//!
//! Every place where the inline code cannot go on jumps to the call itself, out of line,
//! which runs the function from its start: an operand of another type, an int overflow, a
//! zero divisor, a big int, a full nursery, and the call depth or shadow-stack room where the
//! call would raise a RecursionError. Before such an exit the inline code has only computed
//! values of its own (and maybe boxed a float nobody sees, garbage at the next collection): it
//! calls nothing, reads no object that can change (float boxes are immutable; no read
//! barrier is needed) and writes none, so the call does everything as if it had not been
//! tried: the same result, the same error with the same trace, the same effects.

use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::F64, types::I64, Block, InstBuilder, Value};
use std::mem::offset_of;
use stmjit_lang::ast::{BinOp, Expr, ExprKind, Function, Slot, StmtKind, Target};
use stmjit_lang::diag::Span;
use stmjit_runtime::ShadowStack;
use stmjit_vm::abi::tagged_int;
use stmjit_vm::{Ctx, MAX_DEPTH};

/// Expression nodes an inlined body may have at most: small functions only (the inline code
/// is emitted at every direct call).
const MAX_NODES: usize = 40;

/// The operators an inlined body may use: those with an inline int path (`expr.rs`), and
/// true division (`floats.rs`).
fn inline_op(op: BinOp) -> bool {
    use BinOp::*;
    matches!(
        op,
        Add | Sub | Mul | Div | FloorDiv | Mod | BitAnd | BitOr | BitXor | Shl | Shr
    )
}

/// The expression nodes of `e` if an inlined body may compute it with the locals marked in
/// `assigned` bound, `None` if not.
fn expr_nodes(e: &Expr, assigned: &[bool]) -> Option<usize> {
    match &e.kind {
        // Ints of the tagged range (bigger literals are made otherwise).
        ExprKind::Int(i) => (i >> 62 == 0 || i >> 62 == -1).then_some(1),
        ExprKind::Float(_) => Some(1),
        ExprKind::Name(n) => match n.slot {
            Slot::Local(l) if assigned[l] => Some(1),
            _ => None,
        },
        ExprKind::Binary(op, a, b) if inline_op(*op) => {
            Some(expr_nodes(a, assigned)? + expr_nodes(b, assigned)? + 1)
        }
        _ => None,
    }
}

/// The local a statement assigns, if it is `local = e` or `local op= e`.
fn local_target(t: &Target) -> Option<usize> {
    match t {
        Target::Name(n) => match n.slot {
            Slot::Local(l) => Some(l),
            _ => None,
        },
        _ => None,
    }
}

/// The expression nodes of `f`'s body if a direct call of `f` can be computed inline (see
/// the module docs), `None` if not.
pub(crate) fn inlinable(f: &Function) -> Option<usize> {
    if !f.is_plain() || !f.cells.is_empty() {
        return None;
    }
    let (last, rest) = f.body.split_last()?;
    let mut assigned: Vec<bool> = (0..f.locals.len()).map(|l| l < f.arity).collect();
    let mut nodes = 0;
    for s in rest {
        match &s.kind {
            StmtKind::Assign { targets, value } if targets.len() == 1 => {
                let l = local_target(&targets[0])?;
                nodes += expr_nodes(value, &assigned)?;
                assigned[l] = true;
            }
            StmtKind::AugAssign { target, op, value } if inline_op(*op) => {
                let l = local_target(target)?;
                if !assigned[l] {
                    return None;
                }
                nodes += expr_nodes(value, &assigned)? + 1;
            }
            StmtKind::Pass => {}
            _ => return None,
        }
    }
    let StmtKind::Return(Some(e)) = &last.kind else {
        return None;
    };
    nodes += expr_nodes(e, &assigned)?;
    (nodes <= MAX_NODES).then_some(nodes)
}

/// Whether the inlinable `f` returns a true division `a / b`: its inline result can be an
/// unboxed `f64` ([`FnCompiler::inline_call`]).
pub(crate) fn returns_quotient(f: &Function) -> bool {
    matches!(
        f.body.last().map(|s| &s.kind),
        Some(StmtKind::Return(Some(Expr {
            kind: ExprKind::Binary(BinOp::Div, _, _),
            ..
        })))
    )
}

impl FnCompiler<'_, '_> {
    /// Branches to `call` where a call of `f` (whose frame has at most `nodes` temporaries)
    /// would raise a RecursionError: at the depth limit, or without shadow-stack room for
    /// its frame. An inlined body runs only where the call would have run it.
    ///
    /// In a function with a frame of its own the test is the prologue's, made once for all
    /// such calls of the body with the largest frame among them (`FnCompiler::room_slot`): a
    /// frame's depth and shadow-stack top do not change while its body runs. A part (whose
    /// caller's top it may move) tests at each call.
    pub(crate) fn inline_room(&mut self, f: &Function, nodes: usize, call: Block) {
        let need = 8 * (f.locals.len() + nodes) as i64;
        if self.top_var.is_none() {
            let slot = match self.room_slot {
                Some(s) => s,
                None => {
                    let data = cranelift_codegen::ir::StackSlotData::new(
                        cranelift_codegen::ir::StackSlotKind::ExplicitSlot,
                        1,
                        0,
                    );
                    let s = self.b.create_sized_stack_slot(data);
                    self.room_slot = Some(s);
                    s
                }
            };
            self.room_need = self.room_need.max(need);
            let no_room = self
                .b
                .ins()
                .stack_load(I64, cranelift_codegen::ir::types::I8, slot, 0);
            self.unless(no_room, call);
            return;
        }
        let depth = self
            .b
            .ins()
            .load(I64, super::mf(), self.ctx, offset_of!(Ctx, depth) as i32);
        let deep =
            self.b
                .ins()
                .icmp_imm(IntCC::UnsignedGreaterThanOrEqual, depth, MAX_DEPTH as i64);
        self.unless(deep, call);
        let ss = self
            .b
            .ins()
            .load(I64, super::mf(), self.ctx, offset_of!(Ctx, ss) as i32);
        let top = self
            .b
            .ins()
            .load(I64, super::mf(), ss, offset_of!(ShadowStack, top) as i32);
        let limit = self
            .b
            .ins()
            .load(I64, super::mf(), ss, offset_of!(ShadowStack, limit) as i32);
        let need = self.b.ins().iadd_imm(top, need);
        let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, need, limit);
        self.unless(over, call);
    }

    /// The result of a direct call of program function `fid` (which [`inlinable`] accepted,
    /// counting `nodes`) on the words `args`, computed inline; branches to `call` (the call
    /// itself) wherever the inline code cannot go on, or the call would raise a
    /// RecursionError (the depth, or the room of the callee's frame, which has at most
    /// `nodes` temporaries). Where `raw` (the body returns a true division:
    /// [`returns_quotient`]), the result is the quotient's `f64`, not boxed: for a float
    /// tree that has the call among its leaves (`s += eval_a(i, j) * u[j]`, `unboxed.rs`).
    pub(crate) fn inline_call(
        &mut self,
        fid: usize,
        nodes: usize,
        args: &[Value],
        call: Block,
        raw: bool,
    ) -> Value {
        let program = self.sh.program;
        let f = &program.functions[fid];
        self.inline_room(f, nodes, call);
        if args.is_empty() {
            return self.inline_body(f, args, call, raw);
        }
        if args.iter().all(|&a| self.known_int(a)) {
            // Only the version for int arguments (a counted loop's variable, `eval_a(i, j)`).
            return self.inline_on_ints(f, args, call, raw);
        }
        // Two versions: one for int arguments, where the operations on ints need no type
        // tests and no float paths (their results are ints too), and one for any others.
        let ints = self.b.create_block();
        let other = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, if raw { F64 } else { I64 });
        let all = args[1..]
            .iter()
            .fold(args[0], |acc, &a| self.b.ins().band(acc, a));
        let bit = self.b.ins().band_imm(all, 1);
        self.b.ins().brif(bit, ints, &[], other, &[]);
        self.b.switch_to_block(ints);
        let r = self.inline_on_ints(f, args, call, raw);
        self.b.ins().jump(done, &[r.into()]);
        self.b.switch_to_block(other);
        let r = self.inline_body(f, args, call, raw);
        self.b.ins().jump(done, &[r.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// [`Self::inline_body`] on `args` known to be ints: the operations on them need no
    /// type tests and no float paths.
    fn inline_on_ints(&mut self, f: &Function, args: &[Value], call: Block, raw: bool) -> Value {
        let outer = self.known_ints.clone();
        self.known_ints.extend(args.iter().copied());
        let r = self.inline_body(f, args, call, raw);
        self.known_ints = outer;
        r
    }

    /// The body of `f` computed inline on the words `args` (see [`Self::inline_call`]; the
    /// quotient's `f64` where `raw`).
    fn inline_body(&mut self, f: &Function, args: &[Value], call: Block, raw: bool) -> Value {
        let mut env: Vec<Option<Value>> = vec![None; f.locals.len()];
        for (slot, &a) in env.iter_mut().zip(args) {
            *slot = Some(a);
        }
        let (last, rest) = f.body.split_last().expect("inlinable: a return");
        for s in rest {
            match &s.kind {
                StmtKind::Assign { targets, value } => {
                    let v = self.inline_expr(value, &env, call);
                    env[local_target(&targets[0]).expect("inlinable")] = Some(v);
                }
                StmtKind::AugAssign { target, op, value } => {
                    let l = local_target(target).expect("inlinable");
                    let y = self.inline_expr(value, &env, call);
                    let x = env[l].expect("inlinable: assigned");
                    env[l] = Some(self.inline_binop(*op, x, y, s.span, call));
                }
                _ => {}
            }
        }
        let StmtKind::Return(Some(e)) = &last.kind else {
            unreachable!("inlinable: a return")
        };
        match &e.kind {
            ExprKind::Binary(BinOp::Div, a, b) if raw => {
                let x = self.inline_expr(a, &env, call);
                let y = self.inline_expr(b, &env, call);
                self.unboxed_div(x, y, call)
            }
            _ => self.inline_expr(e, &env, call),
        }
    }

    /// The word of `e` in an inlined body whose locals hold `env`.
    fn inline_expr(&mut self, e: &Expr, env: &[Option<Value>], call: Block) -> Value {
        match &e.kind {
            ExprKind::Int(i) => self.b.ins().iconst(I64, tagged_int(*i) as i64),
            ExprKind::Float(f) => {
                let w = self.sh.consts.floats[&f.to_bits()];
                self.b.ins().iconst(I64, w as i64)
            }
            ExprKind::Name(n) => match n.slot {
                Slot::Local(l) => env[l].expect("inlinable: assigned"),
                _ => unreachable!("inlinable: locals only"),
            },
            ExprKind::Binary(op, a, b) => {
                let x = self.inline_expr(a, env, call);
                let y = self.inline_expr(b, env, call);
                self.inline_binop(*op, x, y, e.span, call)
            }
            _ => unreachable!("inlinable: no other expression"),
        }
    }

    /// `x OP y` by its inline paths only: two ints (an overflow, a zero divisor, a shift
    /// count out of range go to `call`), two floats for `+ - *` (boxed, a full nursery going
    /// to `call`), true division (`floats.rs`); any other operands go to `call`.
    fn inline_binop(&mut self, op: BinOp, x: Value, y: Value, span: Span, call: Block) -> Value {
        if op == BinOp::Div {
            return self.float_div_or(x, y, span, call);
        }
        // Known ints have no float path: they give an int (or go to `call`).
        let float = matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul)
            && !(self.known_int(x) && self.known_int(y));
        let not_ints = if float { self.b.create_block() } else { call };
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        self.both_ints(x, y, not_ints);
        let (r, overflow) = self.int_binop(op, x, y, call);
        if let Some(of) = overflow {
            self.unless(of, call);
        }
        self.b.ins().jump(done, &[r.into()]);
        if float {
            self.b.switch_to_block(not_ints);
            let fx = self.float_value(x, call);
            let fy = self.float_value(y, call);
            let r = self.float_arith(op, fx, fy);
            let boxed = self.box_float_or(r, span, Some(call));
            self.b.ins().jump(done, &[boxed.into()]);
        }
        self.b.switch_to_block(done);
        let r = self.b.block_params(done)[0];
        if !float {
            // Only the int path reaches `done`.
            self.known_ints.insert(r);
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn first(src: &str) -> Option<usize> {
        let p = stmjit_lang::parse(src).unwrap();
        inlinable(&p.functions[0])
    }

    #[test]
    fn straight_arithmetic_on_locals_is_inlined() {
        assert_eq!(
            first("def f(i, j):\n    ij = i + j\n    return 1.0 / (ij * (ij + 1) // 2 + i + 1)\n"),
            Some(16)
        );
        assert_eq!(
            first("def f(a):\n    a += 1\n    pass\n    return a\n"),
            Some(3)
        );
    }

    #[test]
    fn anything_else_is_called() {
        // Calls, globals, attributes, comparisons, control flow, unbound locals, defaults,
        // closures, no return value, other operators.
        for src in [
            "def f(a):\n    return g(a)\n",
            "def f(a):\n    return a + G\nG = 1\n",
            "def f(a):\n    return a.x\n",
            "def f(a):\n    return a < 1\n",
            "def f(a):\n    if a:\n        return 1\n    return 2\n",
            "def f(a):\n    b += 1\n    return b\n",
            "def f(a):\n    return b\n    b = 1\n",
            "def f(a=1):\n    return a\n",
            "def f(a):\n    def g():\n        return a\n    return a\n",
            "def f(a):\n    a = 1\n",
            "def f(a):\n    return a ** 2\n",
        ] {
            assert_eq!(first(src), None, "{src}");
        }
    }
}
