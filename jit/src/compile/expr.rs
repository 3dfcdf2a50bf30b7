//! Expressions.

use super::barriers::Marks;
use super::{mf, FnCompiler};
use cranelift_codegen::ir::{
    condcodes::FloatCC, condcodes::IntCC, types::F64, types::I32, types::I64, types::I8, Block,
    InstBuilder, Value,
};
use std::mem::offset_of;
use stmjit_lang::ast::*;
use stmjit_lang::diag::Span;
use stmjit_runtime::value::{FALSE, NONE, TRUE};
use stmjit_vm::abi::Helper;
use stmjit_vm::abi::{tagged_int, young_header, BINOPS, CMPOPS, TAGGED_ZERO, UNBOXED, UNOPS};
use stmjit_vm::objects::{ListObj, ARRAY_DATA};
use stmjit_vm::{Accessed, Ctx, UNBOUND};

/// Whether `op` has an inline path for two ints ([`FnCompiler::int_binop`]).
pub(crate) fn has_int_fast_path(op: BinOp) -> bool {
    matches!(
        op,
        BinOp::Add
            | BinOp::Sub
            | BinOp::Mul
            | BinOp::FloorDiv
            | BinOp::Mod
            | BinOp::BitAnd
            | BinOp::BitOr
            | BinOp::BitXor
            | BinOp::Shl
            | BinOp::Shr
    )
}

impl FnCompiler<'_, '_> {
    /// Whether evaluating `e` can neither call anything nor allocate (so values computed
    /// before it need not be spilled): a literal, or a local that is never kept unboxed
    /// (reading one boxes it: `floats.rs`).
    pub(crate) fn is_simple(&self, e: &Expr) -> bool {
        matches!(
            e.kind,
            ExprKind::Int(_) | ExprKind::Bool(_) | ExprKind::None
        ) || matches!(&e.kind, ExprKind::Name(n)
            if matches!(n.slot, Slot::Local(i) if self.float_var(i).is_none()))
    }

    /// Evaluates `e` into a word, here (its subexpressions through [`Self::expr`]).
    pub(crate) fn expr_here(&mut self, e: &Expr) -> Value {
        match &e.kind {
            ExprKind::Int(i) => self.b.ins().iconst(I64, tagged_int(*i) as i64),
            ExprKind::Bool(v) => self
                .b
                .ins()
                .iconst(I64, if *v { TRUE } else { FALSE } as i64),
            ExprKind::None => self.b.ins().iconst(I64, NONE as i64),
            ExprKind::Float(f) => {
                let w = self.sh.consts.floats[&f.to_bits()];
                self.b.ins().iconst(I64, w as i64)
            }
            ExprKind::Str(s) => {
                let w = self.sh.consts.strs[&**s];
                self.b.ins().iconst(I64, w as i64)
            }
            ExprKind::Name(n) => self.load_name(n, e.span),
            ExprKind::List(items) => self.list_literal(items, e.span),
            ExprKind::Tuple(items) => {
                if let Some(r) =
                    self.const_display(Helper::NewTuple, items.iter(), items.len(), e.span)
                {
                    return r;
                }
                let (mark, p, n) = self.eval_into_temps(items);
                let r = self.call_checked(Helper::NewTuple, &[self.ctx, p, n], e.span);
                self.pop_temps(mark);
                r
            }
            ExprKind::Set(items) => {
                if let Some(r) =
                    self.const_display(Helper::NewSet, items.iter(), items.len(), e.span)
                {
                    return r;
                }
                let (mark, p, n) = self.eval_into_temps(items);
                let r = self.call_checked(Helper::NewSet, &[self.ctx, p, n], e.span);
                self.pop_temps(mark);
                r
            }
            ExprKind::Dict(items) => {
                let kvs = items.iter().flat_map(|(k, v)| [k, v]);
                if let Some(r) = self.const_display(Helper::NewDict, kvs, items.len(), e.span) {
                    return r;
                }
                let kvs: Vec<&Expr> = items.iter().flat_map(|(k, v)| [k, v]).collect();
                let (mark, p, _) = self.eval_refs_into_temps(&kvs);
                let n = self.b.ins().iconst(I64, items.len() as i64);
                let r = self.call_checked(Helper::NewDict, &[self.ctx, p, n], e.span);
                self.pop_temps(mark);
                r
            }
            ExprKind::Unary(..) | ExprKind::Binary(BinOp::Add, ..)
                if self.big_const(e).is_some() =>
            {
                let w = self.big_const(e).expect("checked");
                self.b.ins().iconst(I64, w as i64)
            }
            ExprKind::Unary(op, a) => {
                let v = self.expr(a);
                self.unary(*op, v, e.span)
            }
            ExprKind::Binary(op, a, b) => {
                if let Some(v) = self.float_tree_expr(e) {
                    return v;
                }
                let (x, y) = self.operands(a, b);
                self.binop(*op, x, y, e.span, false)
            }
            ExprKind::And(a, b) | ExprKind::Or(a, b) => {
                let is_and = matches!(e.kind, ExprKind::And(..));
                let x = self.expr(a);
                let (t, x) = self.truthy_keep(x, a.span);
                let other = self.b.create_block();
                let done = self.b.create_block();
                self.b.append_block_param(done, I64);
                if is_and {
                    self.b.ins().brif(t, other, &[], done, &[x.into()]);
                } else {
                    self.b.ins().brif(t, done, &[x.into()], other, &[]);
                }
                self.b.switch_to_block(other);
                let y = self.expr(b);
                self.b.ins().jump(done, &[y.into()]);
                self.b.switch_to_block(done);
                self.b.block_params(done)[0]
            }
            ExprKind::Not(a) => {
                let t = self.cond(a);
                let f = self.b.ins().iconst(I64, FALSE as i64);
                let tr = self.b.ins().iconst(I64, TRUE as i64);
                self.b.ins().select(t, f, tr)
            }
            ExprKind::Compare { first, rest } => self.compare(first, rest, e.span),
            ExprKind::IfElse { cond, then, orelse } => {
                let tb = self.b.create_block();
                let eb = self.b.create_block();
                let done = self.b.create_block();
                self.b.append_block_param(done, I64);
                self.branch_cond(cond, tb, eb);
                self.b.switch_to_block(tb);
                let x = self.expr(then);
                self.b.ins().jump(done, &[x.into()]);
                self.b.switch_to_block(eb);
                let y = self.expr(orelse);
                self.b.ins().jump(done, &[y.into()]);
                self.b.switch_to_block(done);
                self.b.block_params(done)[0]
            }
            ExprKind::Call { func, args } => {
                if builtin_by_name(func).is_none() {
                    self.has_calls = true;
                }
                if let Some(v) = self.sqrt_expr(e, e.span) {
                    return v;
                }
                self.call_expr(func, args, e.span)
            }
            ExprKind::CallEx { func, args } => {
                self.has_calls = true;
                self.call_ex(func, args, e.span)
            }
            ExprKind::Lambda(f) => self.function_value(*f, e.span),
            ExprKind::MethodCall { obj, name, args } => {
                self.has_calls = true;
                self.method_call(obj, name, args, e.span)
            }
            ExprKind::Attr { obj, name } => {
                let o = self.expr(obj);
                self.getattr(o, name, e.span)
            }
            ExprKind::Index { obj, index } => {
                let (o, i) = self.operands(obj, index);
                self.index(o, i, e.span)
            }
            ExprKind::Slice { obj, lo, hi } => {
                let mark = self.temp_mark();
                let o = self.expr(obj);
                let t0 = self.push_temp(o);
                let l = self.opt_expr(lo.as_deref());
                let t1 = self.push_temp(l);
                let h = self.opt_expr(hi.as_deref());
                let o = self.load_slot(t0);
                let l = self.load_slot(t1);
                let r = self.call_checked(Helper::GetSlice, &[self.ctx, o, l, h], e.span);
                self.pop_temps(mark);
                r
            }
        }
    }

    /// An optional expression, [`UNBOUND`] when absent.
    pub(crate) fn opt_expr(&mut self, e: Option<&Expr>) -> Value {
        match e {
            Some(e) => self.expr(e),
            None => self.b.ins().iconst(I64, UNBOUND as i64),
        }
    }

    /// Evaluates two operands, spilling the first across the second when needed: not when
    /// the second can neither call nor allocate, nor when the first is a literal (a constant
    /// word: an immediate, or a literal object, which never moves), which also leaves the
    /// fast paths a constant to fold (`1.0 / n`).
    pub(crate) fn operands(&mut self, a: &Expr, b: &Expr) -> (Value, Value) {
        let x = self.expr(a);
        let literal = matches!(
            a.kind,
            ExprKind::Int(_)
                | ExprKind::Float(_)
                | ExprKind::Str(_)
                | ExprKind::Bool(_)
                | ExprKind::None
        );
        if literal || self.is_simple(b) {
            let y = self.expr(b);
            return (x, y);
        }
        let mark = self.temp_mark();
        let t = self.push_temp(x);
        let y = self.expr(b);
        let x = self.load_slot(t);
        self.pop_temps(mark);
        (x, y)
    }

    /// A name's value.
    pub(crate) fn load_name(&mut self, n: &Name, span: Span) -> Value {
        match n.slot {
            Slot::Cell(i) => {
                let cell = self.load_slot(i);
                let f = &self.sh.program.functions[self.func_idx as usize];
                let free = (f.arity..f.arity + f.nfree).contains(&i);
                let nid = self.sh.names.intern(&n.name) as u64 | (free as u64) << 32;
                let info = self.b.ins().iconst(I64, nid as i64);
                self.call_checked(Helper::CellGet, &[self.ctx, cell, info], span)
            }
            Slot::Local(i) if self.assigned[i] => self.load_slot(i),
            Slot::Local(i) => {
                let v = self.load_slot(i);
                let unbound = self.b.ins().icmp_imm(IntCC::Equal, v, UNBOUND as i64);
                let bad = self.b.create_block();
                let ok = self.b.create_block();
                self.b.ins().brif(unbound, bad, &[], ok, &[]);
                self.b.set_cold_block(bad);
                self.b.switch_to_block(bad);
                let nid = self.sh.names.intern(&n.name) as i64;
                let nid = self.b.ins().iconst(I64, nid);
                let r = self.call(Helper::UnboundLocal, &[self.ctx, nid]);
                self.check(r, span);
                self.b.ins().jump(ok, &[]);
                self.b.switch_to_block(ok);
                v
            }
            Slot::Global(g) => {
                let v = match self.cached_global(g) {
                    Some(var) => self.b.use_var(var),
                    None => self.load_global(g, span),
                };
                let unbound = self.b.ins().icmp_imm(IntCC::Equal, v, UNBOUND as i64);
                let bad = self.b.create_block();
                let ok = self.b.create_block();
                self.b.append_block_param(ok, I64);
                self.b.ins().brif(unbound, bad, &[], ok, &[v.into()]);
                self.b.set_cold_block(bad);
                self.b.switch_to_block(bad);
                if let Some(b) = Builtin::from_name(&n.name) {
                    let w = self.builtin_obj(b);
                    self.b.ins().jump(ok, &[w.into()]);
                } else {
                    let nid = self.sh.names.intern(&n.name) as i64;
                    let nid = self.b.ins().iconst(I64, nid);
                    let r = self.call(Helper::NameError, &[self.ctx, nid]);
                    self.check(r, span);
                    self.b.ins().jump(ok, &[r.into()]);
                }
                self.b.switch_to_block(ok);
                self.b.block_params(ok)[0]
            }
            Slot::Builtin(b) => self.builtin_obj(b),
            Slot::Unresolved => match Builtin::from_name(&n.name) {
                Some(b) => self.builtin_obj(b),
                None => {
                    let nid = self.sh.names.intern(&n.name) as i64;
                    let nid = self.b.ins().iconst(I64, nid);
                    self.call_checked(Helper::NameError, &[self.ctx, nid], span)
                }
            },
        }
    }

    fn builtin_obj(&mut self, b: Builtin) -> Value {
        let k = Builtin::ALL.iter().position(|x| *x == b).unwrap();
        let w = self.sh.consts.builtin_objs[k];
        self.b.ins().iconst(I64, w as i64)
    }

    /// Segment offset of global `g`'s word.
    fn global_off(&self, g: usize) -> i64 {
        (self.sh.consts.globals + ARRAY_DATA + 8 * g as u64) as i64
    }

    /// Loads global `g` with its read barrier (the granule of its word in the globals array).
    pub(crate) fn load_global(&mut self, g: usize, span: Span) -> Value {
        let go = self.global_off(g);
        let off = self.b.ins().iconst(I64, go);
        let outer = self.accesses.replace(Accessed::Global(g as u32));
        self.read_barrier(off, span);
        self.accesses = outer;
        let a = self.seg_addr(off);
        self.b.ins().load(I64, mf(), a, 0)
    }

    /// Stores global `g` with the card write barrier.
    pub(crate) fn store_global(&mut self, g: usize, v: Value, span: Span) {
        let arr = self.b.ins().iconst(I64, self.sh.consts.globals as i64);
        let off = self.b.ins().iconst(I64, (ARRAY_DATA + 8 * g as u64) as i64);
        let outer = self.accesses.replace(Accessed::Global(g as u32));
        self.card_write_barrier(arr, off, span);
        self.accesses = outer;
        let go = self.global_off(g);
        let o = self.b.ins().iconst(I64, go);
        let a = self.seg_addr(o);
        self.b.ins().store(mf(), v, a, 0);
    }

    /// The truth of a condition as an i8 (for `not x` as a value and the generic side of a
    /// float tree): [`Self::branch_cond`] into two blocks that join.
    pub(crate) fn cond(&mut self, e: &Expr) -> Value {
        let t = self.b.create_block();
        let f = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I8);
        self.branch_cond(e, t, f);
        self.b.switch_to_block(t);
        let one = self.b.ins().iconst(I8, 1);
        self.b.ins().jump(done, &[one.into()]);
        self.b.switch_to_block(f);
        let zero = self.b.ins().iconst(I8, 0);
        self.b.ins().jump(done, &[zero.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// Evaluates the condition `e` and branches to `then` when it is true, else to `els`
    /// (blocks without parameters, entered with an empty barrier region). Comparisons of
    /// two ints branch on the machine compare (no bool is made and tested again); their
    /// float and generic paths are cold blocks that branch to `then`/`els` themselves, so
    /// nothing merges back into the int path. `not`, `and`, `or` only route the targets.
    pub(crate) fn branch_cond(&mut self, e: &Expr, then: Block, els: Block) {
        if self.cond_by_parts(e) {
            let v = self.expr(e);
            return self.branch_truthy(v, e.span, then, els);
        }
        if self.float_tree_branch(e, then, els) {
            return;
        }
        match &e.kind {
            // `a % b == 0` (or `!= 0`) on ints: the sign of a non-zero remainder does not
            // matter, so the floor adjustment and retagging are skipped.
            ExprKind::Compare { first, rest }
                if rest.len() == 1
                    && matches!(rest[0].0, CmpOp::Eq | CmpOp::Ne)
                    && matches!(rest[0].1.kind, ExprKind::Int(0))
                    && matches!(first.kind, ExprKind::Binary(BinOp::Mod, ..)) =>
            {
                let ExprKind::Binary(_, a, b) = &first.kind else {
                    unreachable!()
                };
                let (x, y) = self.operands(a, b);
                let slow = self.b.create_block();
                // No call from here to `slow`: its region is this one.
                let marked = self.region_marked();
                self.both_ints(x, y, slow);
                let marked = marked.both(&self.region_marked());
                let xa = self.b.ins().sshr_imm(x, 1);
                let yd = self.b.ins().sshr_imm(y, 1);
                let cc = if rest[0].0 == CmpOp::Eq {
                    IntCC::Equal
                } else {
                    IntCC::NotEqual
                };
                // Two divisions (see `narrow_or_wide`), each branching itself.
                let (narrow, wide) = self.narrow_or_wide(x, xa, yd);
                self.b.switch_to_block(wide);
                let wide = self.unless_zero_divisor(y, slow);
                for (blk, is_narrow) in [(narrow, true), (wide, false)] {
                    self.b.switch_to_block(blk);
                    // The 32-bit remainder compared as it is (`test edx, edx`).
                    let r = if is_narrow {
                        self.narrow_div32(BinOp::Mod, x, xa, yd)
                    } else {
                        self.b.ins().srem(xa, yd)
                    };
                    let c = self.b.ins().icmp_imm(cc, r, 0);
                    // No call since `marked` (the narrow division is inline).
                    self.region_with(&marked);
                    self.brif_keeping(c, then, els);
                }
                self.b.set_cold_block(slow);
                self.b.switch_to_block(slow);
                self.region_with(&marked);
                let first_new = self.b.func.dfg.num_blocks();
                // The generic path: `%` (raises on a zero divisor), then the comparison.
                let m = self.binop(BinOp::Mod, x, y, first.span, false);
                let int_zero = self.b.ins().iconst(I64, TAGGED_ZERO as i64);
                let k = CMPOPS.iter().position(|o| *o == rest[0].0).unwrap() as i64;
                let k = self.b.ins().iconst(I64, k);
                let r = self.call_checked(Helper::Compare, &[self.ctx, k, m, int_zero], e.span);
                self.repair_all_and_keep(&marked, e.span);
                let t = self.b.ins().icmp_imm(IntCC::Equal, r, TRUE as i64);
                self.cold_brif(t, then, els);
                self.cold_from(first_new);
            }
            ExprKind::Compare { first, rest } if rest.len() == 1 => {
                let op = rest[0].0;
                let Some(cc) = int_cc(op) else {
                    let v = self.expr(e);
                    self.branch_truthy(v, e.span, then, els);
                    return;
                };
                if self.int_tree_branch(e, then, els) {
                    return;
                }
                let (x, y) = self.operands(first, &rest[0].1);
                let slow = self.b.create_block();
                // No call from here to `slow`, nor on its float path: their region is this one.
                let marked = self.region_marked();
                self.both_ints(x, y, slow);
                let c = self.b.ins().icmp(cc, x, y);
                self.brif_keeping(c, then, els);
                self.b.set_cold_block(slow);
                self.b.switch_to_block(slow);
                self.region_with(&marked);
                let first_new = self.b.func.dfg.num_blocks();
                if let Some(c) = self.float_order(op) {
                    let (c, generic) = c;
                    let fx = self.float_value(x, generic);
                    let fy = self.float_value(y, generic);
                    let c = self.b.ins().fcmp(c, fx, fy);
                    self.region_with(&marked);
                    self.cold_brif(c, then, els);
                    self.b.switch_to_block(generic);
                    self.region_with(&marked);
                }
                let k = CMPOPS.iter().position(|o| *o == op).unwrap() as i64;
                let k = self.b.ins().iconst(I64, k);
                let r = self.call_checked(Helper::Compare, &[self.ctx, k, x, y], e.span);
                self.repair_all_and_keep(&marked, e.span);
                let t = self.b.ins().icmp_imm(IntCC::Equal, r, TRUE as i64);
                self.cold_brif(t, then, els);
                self.cold_from(first_new);
            }
            // `if t.runnable():` where the method is computed inline and gives a bool: its
            // comparison branches here (`inline_methods.rs`); a call's result is tested.
            ExprKind::MethodCall { obj, name, args }
                if self.is_simple(obj) && args.iter().all(|a| self.is_simple(a)) && {
                    let methods = self.inline_methods_for(name, args.len());
                    self.bool_methods(&methods)
                } =>
            {
                // As `expr` compiles a small expression: counted, here.
                let light = self.light;
                if !light && self.parts_allowed() {
                    self.inline_nodes += super::weight::expr_weight(e, super::chains::CHAIN_LIGHT);
                    self.light = true;
                }
                self.has_calls = true;
                let v = self.method_call_to(obj, name, args, e.span, Some((then, els)));
                self.light = light;
                self.branch_truthy(v, e.span, then, els);
            }
            ExprKind::Not(a) => self.branch_cond(a, els, then),
            ExprKind::And(a, b) => {
                let other = self.b.create_block();
                self.branch_cond(a, other, els);
                self.b.switch_to_block(other);
                self.branch_cond(b, then, els);
            }
            ExprKind::Or(a, b) => {
                let other = self.b.create_block();
                self.branch_cond(a, then, other);
                self.b.switch_to_block(other);
                self.branch_cond(b, then, els);
            }
            _ => {
                let v = self.expr(e);
                self.branch_truthy(v, e.span, then, els);
            }
        }
    }

    /// `brif c, then, els` from a slow path, through two cold blocks of its own: `then` and
    /// `els` have other predecessors, and Cranelift would otherwise split these critical
    /// edges into blocks that land in the hot code's layout (a taken jump around them).
    /// Both edges record the region ([`Self::jump_keeping`]).
    pub(crate) fn cold_brif(&mut self, c: Value, then: Block, els: Block) {
        let t = self.b.create_block();
        let f = self.b.create_block();
        self.b.set_cold_block(t);
        self.b.set_cold_block(f);
        let (region, from) = (self.region.clone(), self.b.current_block());
        self.b.ins().brif(c, t, &[], f, &[]);
        self.b.switch_to_block(t);
        self.carry_region(&region, from, t);
        self.jump_keeping(then, &[]);
        self.b.switch_to_block(f);
        self.carry_region(&region, from, f);
        self.jump_keeping(els, &[]);
    }

    /// Marks every block created since the block count was `first_new` as cold: the
    /// blocks of a slow path, reached only from it.
    pub(crate) fn cold_from(&mut self, first_new: usize) {
        for n in first_new..self.b.func.dfg.num_blocks() {
            self.b.set_cold_block(Block::from_u32(n as u32));
        }
    }

    /// `x OP y`: an inline int fast path where there is one ([`Self::int_binop`]), inline
    /// floats for `+ - *` ([`Self::float_binop`]), else the helper; `inplace` selects `OP=`
    /// semantics for the helper. The slow paths are out of line and repair the barrier
    /// region before they join the fast path.
    pub(crate) fn binop(
        &mut self,
        op: BinOp,
        x: Value,
        y: Value,
        span: Span,
        inplace: bool,
    ) -> Value {
        // (The generic path of a float tree: its fast path failed already.)
        if op == BinOp::Div && !self.in_float_generic {
            return self.true_div(x, y, span, inplace);
        }
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        if has_int_fast_path(op) {
            self.both_ints(x, y, slow);
            let (r, overflow) = self.int_binop(op, x, y, slow);
            match overflow {
                Some(of) => {
                    self.b.ins().brif(of, slow, &[], done, &[r.into()]);
                }
                None => {
                    self.b.ins().jump(done, &[r.into()]);
                }
            }
        } else {
            self.b.ins().jump(slow, &[]);
        }
        let marked = self.region_marked();
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let first_new = self.b.func.dfg.num_blocks();
        if matches!(op, BinOp::Add | BinOp::Sub | BinOp::Mul) && !self.compact {
            self.float_binop(op, x, y, span, &marked, done);
        }
        // Everything reached only from the slow path goes out of line.
        self.cold_from(first_new);
        let r = self.binop_helper(op, x, y, span, inplace);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[r.into()]);
        self.enter_join(done, marked);
        self.b.block_params(done)[0]
    }

    /// `x OP y` by the helper (`inplace`: `OP=` semantics), which raises where it must.
    pub(crate) fn binop_helper(
        &mut self,
        op: BinOp,
        x: Value,
        y: Value,
        span: Span,
        inplace: bool,
    ) -> Value {
        let k = BINOPS.iter().position(|o| *o == op).unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        let helper = if inplace {
            Helper::Inplace
        } else {
            Helper::Binop
        };
        self.call_checked(helper, &[self.ctx, k, x, y], span)
    }

    /// `x OP y` on two ints (tagged words `2a+1`, `2b+1`), for an operator with
    /// [`has_int_fast_path`]: the tagged result and, where the result may not fit 63 bits,
    /// the overflow flag (the caller branches to `slow` on it). Branches to `slow` itself
    /// where the operation raises or needs the general case.
    pub(super) fn int_binop(
        &mut self,
        op: BinOp,
        x: Value,
        y: Value,
        slow: Block,
    ) -> (Value, Option<Value>) {
        let yc = self.int_const(y);
        let ins = self.b.ins();
        match op {
            // A constant operand (`i += 2`): overflow is the wrapped sum on the wrong side of
            // `x`, a compare the branch fuses with (`add; cmp; jl`), instead of `seto` + test.
            BinOp::Add if yc.is_some() => {
                let y1 = yc.unwrap_or(1) - 1;
                let r = self.b.ins().iadd_imm(x, y1);
                let cc = if y1 >= 0 {
                    IntCC::SignedLessThan
                } else {
                    IntCC::SignedGreaterThan
                };
                (r, Some(self.b.ins().icmp(cc, r, x)))
            }
            BinOp::Sub if yc.is_some() => {
                // y is odd, never 0.
                let c = yc.unwrap_or(1);
                let r = self.b.ins().iadd_imm(x, c.wrapping_neg());
                let cc = if c > 0 {
                    IntCC::SignedGreaterThan
                } else {
                    IntCC::SignedLessThan
                };
                let of = self.b.ins().icmp(cc, r, x);
                (self.b.ins().bor_imm(r, 1), Some(of))
            }
            BinOp::Add => {
                let y1 = ins.iadd_imm(y, -1);
                let (r, of) = self.b.ins().sadd_overflow(x, y1);
                (r, Some(of))
            }
            BinOp::Sub => {
                let (r, of) = ins.ssub_overflow(x, y);
                let r = self.b.ins().bor_imm(r, 1);
                (r, Some(of))
            }
            BinOp::Mul if yc.is_some() => self.int_mul_const(x, yc.unwrap_or(1) >> 1),
            BinOp::Mul if x == y => (self.int_square(x, slow, false), None),
            BinOp::Mul => {
                let xs = ins.sshr_imm(x, 1);
                let y1 = self.b.ins().iadd_imm(y, -1);
                let (r, of) = self.b.ins().smul_overflow(xs, y1);
                let r = self.b.ins().bor_imm(r, 1);
                (r, Some(of))
            }
            BinOp::BitAnd => (ins.band(x, y), None),
            BinOp::BitOr => (ins.bor(x, y), None),
            BinOp::BitXor => {
                let r = ins.bxor(x, y);
                (self.b.ins().bor_imm(r, 1), None)
            }
            BinOp::Shl => self.int_shl(x, y, slow),
            BinOp::Shr => self.int_shr(x, y, slow),
            BinOp::FloorDiv | BinOp::Mod => self.int_div(op, x, y, slow),
            _ => unreachable!("no int fast path for {op:?}"),
        }
    }

    /// `x * c` on an int `x` (tagged `2a+1`) and the constant int `c`: the overflow test is a
    /// range check of `x` the branch fuses with (`lea; cmp; ja`: `a` times `c` fits 63 bits
    /// iff `a` lies in a range computed here), and the product one three-operand multiply,
    /// `x*c - (c-1) = 2ac + 1`, instead of `sar`, a one-operand `imul` (rdx:rax), `seto`,
    /// `or` and `test`. No flag at all when every `a` fits (`c` is 0 or 1).
    fn int_mul_const(&mut self, x: Value, c: i64) -> (Value, Option<Value>) {
        let (lo, hi) = mul_const_range(c);
        let r = self.b.ins().imul_imm(x, c);
        let r = self.b.ins().iadd_imm(r, 1 - c);
        if lo == INT_MIN && hi == INT_MAX {
            return (r, None);
        }
        // Tagged bounds: 2*lo+1 and 2*hi+1 fit an i64 (lo, hi are 63-bit ints).
        let (xlo, xhi) = (2 * lo + 1, 2 * hi + 1);
        let off = self.b.ins().iadd_imm(x, xlo.wrapping_neg());
        let span = xhi.wrapping_sub(xlo);
        let of = self.b.ins().icmp_imm(IntCC::UnsignedGreaterThan, off, span);
        (r, Some(of))
    }

    /// `x * x` on an int `x` (tagged `2a+1`, `i * i` of a loop condition): where
    /// `-2**30 <= a < 2**30` (`lea; cmp; ja` on `a`) the square fits 63 bits and is one
    /// two-operand `imul` of `a` and `2a`, with no overflow flag (`seto; test; jne` after a
    /// widening `imul`). Other `a` branch to `slow` where `leave` (an int tree's generic
    /// path, which computes the square again in full), else take a cold path with the flag
    /// that joins the fast one (and branches to `slow` on overflow).
    pub(super) fn int_square(&mut self, x: Value, slow: Block, leave: bool) -> Value {
        let a = self.b.ins().sshr_imm(x, 1);
        let a2 = self.b.ins().iadd_imm(x, -1);
        let off = self.b.ins().iadd_imm(a, SQUARE_HALF);
        let out = self
            .b
            .ins()
            .icmp_imm(IntCC::UnsignedGreaterThan, off, 2 * SQUARE_HALF - 1);
        let fast = self.b.create_block();
        if leave {
            self.b.ins().brif(out, slow, &[], fast, &[]);
            self.b.switch_to_block(fast);
            let r = self.b.ins().imul(a, a2);
            return self.b.ins().bor_imm(r, 1);
        }
        let (cold, join) = (self.b.create_block(), self.b.create_block());
        self.b.append_block_param(join, I64);
        self.b.ins().brif(out, cold, &[], fast, &[]);
        self.b.switch_to_block(fast);
        let r = self.b.ins().imul(a, a2);
        let r = self.b.ins().bor_imm(r, 1);
        self.b.ins().jump(join, &[r.into()]);
        self.b.set_cold_block(cold);
        self.b.switch_to_block(cold);
        let (r, of) = self.b.ins().smul_overflow(a, a2);
        let r = self.b.ins().bor_imm(r, 1);
        self.b.ins().brif(of, slow, &[], join, &[r.into()]);
        self.b.switch_to_block(join);
        self.b.block_params(join)[0]
    }

    /// `x << y` on ints. On the even form 2a of x: (2a << s) >> s == 2a iff a << s kept every
    /// bit and fits 63 bits. Counts outside 0..=62 (negative ones included, compared
    /// unsigned) take the slow path, which raises or gives 0 << s.
    fn int_shl(&mut self, x: Value, y: Value, slow: Block) -> (Value, Option<Value>) {
        let s = self.b.ins().sshr_imm(y, 1);
        let big = self.b.ins().icmp_imm(IntCC::UnsignedGreaterThan, s, 62);
        self.unless(big, slow);
        let even = self.b.ins().iadd_imm(x, -1);
        let r = self.b.ins().ishl(even, s);
        let back = self.b.ins().sshr(r, s);
        let lost = self.b.ins().icmp(IntCC::NotEqual, back, even);
        (self.b.ins().bor_imm(r, 1), Some(lost))
    }

    /// `x >> y` on ints. Negative counts take the slow path (ValueError); counts past 62
    /// shift everything out, as 62 does on 63-bit ints.
    fn int_shr(&mut self, x: Value, y: Value, slow: Block) -> (Value, Option<Value>) {
        let s = self.b.ins().sshr_imm(y, 1);
        let neg = self.b.ins().icmp_imm(IntCC::SignedLessThan, s, 0);
        self.unless(neg, slow);
        let max = self.b.ins().iconst(I64, 62);
        let s = self.b.ins().umin(s, max);
        let a = self.b.ins().sshr_imm(x, 1);
        let r = self.b.ins().sshr(a, s);
        let r = self.b.ins().ishl_imm(r, 1);
        (self.b.ins().bor_imm(r, 1), None)
    }

    /// `x // y` or `x % y` on ints, floored as in Python. A zero divisor and the one
    /// overflowing quotient take the slow path, which raises. Non-negative operands below
    /// 2**31 (`n % i` of most loops; see `narrow_or_wide`) divide in 32 bits unsigned,
    /// where floor and truncation agree and no sign fix-up is needed: a 64-bit `idiv` takes
    /// up to twice as long (trial division by `%`: 0.55 s in C with `idiv`, 0.48 s with the
    /// 32-bit `div`).
    fn int_div(&mut self, op: BinOp, x: Value, y: Value, slow: Block) -> (Value, Option<Value>) {
        if let Some(k) = self.int_const(y).and_then(power_of_two) {
            return (self.int_div_pow2(op, x, k), None);
        }
        let a = self.b.ins().sshr_imm(x, 1);
        let d = self.b.ins().sshr_imm(y, 1);
        let (narrow, wide) = self.narrow_or_wide(x, a, d);
        let join = self.b.create_block();
        self.b.append_block_param(join, I64);
        self.b.switch_to_block(narrow);
        let r = self.narrow_div32(op, x, a, d);
        let r = self.b.ins().uextend(I64, r);
        self.b.ins().jump(join, &[r.into()]);
        self.b.switch_to_block(wide);
        let wide = self.unless_zero_divisor(y, slow);
        self.b.switch_to_block(wide);
        let r = self.int_div_wide(op, a, d);
        self.b.ins().jump(join, &[r.into()]);
        self.b.switch_to_block(join);
        let r = self.b.block_params(join)[0];
        if op == BinOp::Mod {
            let m2 = self.b.ins().ishl_imm(r, 1);
            (self.b.ins().bor_imm(m2, 1), None)
        } else {
            let (q2, of) = self.b.ins().sadd_overflow(r, r);
            let q2 = self.b.ins().bor_imm(q2, 1);
            (q2, Some(of))
        }
    }

    /// Branches to the first block returned where the untagged ints `a` (of the tagged `x`)
    /// and `d` allow one 32-bit unsigned division (`0 <= a < 2**32`, `1 <= d <= 2**31`),
    /// to the second (cold) otherwise, a zero divisor included. One test on `a | (d - 1)`
    /// (`lea; or; cmp; ja`: the zero divisor is `d - 1` negative, so no test of its own),
    /// or on `d - 1` alone where `a` is known to fit ([`FnCompiler::narrow_locals`]). The
    /// bound is 2**31 rather than 2**32 so that it is an `x64` immediate: a divisor or
    /// dividend in between takes the (exact) 64-bit path.
    fn narrow_or_wide(&mut self, x: Value, a: Value, d: Value) -> (Block, Block) {
        let (narrow, wide) = (self.b.create_block(), self.b.create_block());
        let dm1 = self.b.ins().iadd_imm(d, -1);
        let both = if self.known_narrow.contains(&x) {
            dm1
        } else {
            self.b.ins().bor(a, dm1)
        };
        let out = self
            .b
            .ins()
            .icmp_imm(IntCC::UnsignedGreaterThan, both, NARROW_MAX);
        self.b.ins().brif(out, wide, &[], narrow, &[]);
        self.b.set_cold_block(wide);
        (narrow, wide)
    }

    /// In the (cold) wide path of a division by the int `y`: branches to `slow` (which
    /// raises ZeroDivisionError) where `y` is 0; returns the cold block where it is not.
    fn unless_zero_divisor(&mut self, y: Value, slow: Block) -> Block {
        let zero_divisor = self.b.ins().icmp_imm(IntCC::Equal, y, TAGGED_ZERO as i64);
        let divb = self.b.create_block();
        self.b.ins().brif(zero_divisor, slow, &[], divb, &[]);
        self.b.set_cold_block(divb);
        divb
    }

    /// The 32-bit quotient (`//`) or remainder (`%`) of `a` (of the tagged `x`) and `d`
    /// where `narrow_or_wide` took its first block: one 32-bit unsigned division, where
    /// floored and truncated agree. A dividend known to fit ([`FnCompiler::known_narrow`])
    /// is shifted from its tagged word unsigned (`mov rax, rbx; shr rax, 1`; the tagged
    /// word has 33 bits, so the shift is in 64 bits).
    fn narrow_div32(&mut self, op: BinOp, x: Value, a: Value, d: Value) -> Value {
        let a = if self.known_narrow.contains(&x) {
            self.b.ins().ushr_imm(x, 1)
        } else {
            a
        };
        let a32 = self.b.ins().ireduce(I32, a);
        let d32 = self.b.ins().ireduce(I32, d);
        if op == BinOp::Mod {
            self.b.ins().urem(a32, d32)
        } else {
            self.b.ins().udiv(a32, d32)
        }
    }

    /// The floored quotient (`//`) or remainder (`%`) of the untagged `a` and `d` (not 0)
    /// in 64 bits.
    fn int_div_wide(&mut self, op: BinOp, a: Value, d: Value) -> Value {
        // One division: the quotient for `//`, the remainder for `%` (the other one derived
        // with a multiply).
        let (q, r) = if op == BinOp::Mod {
            let r = self.b.ins().srem(a, d);
            (None, r)
        } else {
            let q = self.b.ins().sdiv(a, d);
            let qd = self.b.ins().imul(q, d);
            (Some(q), self.b.ins().isub(a, qd))
        };
        // Floor: when the remainder is non-zero and its sign differs from d's.
        let rnz = self.b.ins().icmp_imm(IntCC::NotEqual, r, 0);
        let sx = self.b.ins().bxor(r, d);
        let neg = self.b.ins().icmp_imm(IntCC::SignedLessThan, sx, 0);
        let adj = self.b.ins().band(rnz, neg);
        match q {
            None => {
                let rd = self.b.ins().iadd(r, d);
                self.b.ins().select(adj, rd, r)
            }
            Some(q) => {
                let adj = self.b.ins().uextend(I64, adj);
                self.b.ins().isub(q, adj)
            }
        }
    }

    /// `x // 2^k` or `x % 2^k` on an int `x` (tagged `2a+1`): floored as Python floors, by
    /// shifts and masks, never overflowing. `(2a+1) >> (k+1)` is `a >> k` (the tag bit is
    /// below the bits shifted out), and `(2a+1) & (2^(k+1) - 1)` is `2(a mod 2^k) + 1`, the
    /// non-negative remainder a positive divisor gives, tagged.
    fn int_div_pow2(&mut self, op: BinOp, x: Value, k: u32) -> Value {
        if op == BinOp::Mod {
            return self.b.ins().band_imm(x, (2i64 << k) - 1);
        }
        let q = self.b.ins().sshr_imm(x, i64::from(k) + 1);
        let q2 = self.b.ins().ishl_imm(q, 1);
        self.b.ins().bor_imm(q2, 1)
    }

    /// On the slow path of `x OP y` for `+ - *`: two floats computed inline, the result
    /// boxed by inline nursery allocation, the region repaired, then the join `done`;
    /// leaves the builder in a fresh cold block for operands that are not two floats.
    fn float_binop(
        &mut self,
        op: BinOp,
        x: Value,
        y: Value,
        span: Span,
        marked: &Marks,
        done: Block,
    ) {
        let generic = self.b.create_block();
        let fx = self.float_value(x, generic);
        let fy = self.float_value(y, generic);
        let r = self.float_arith(op, fx, fy);
        // No call on the way unless the nursery is full: only that path repairs the region.
        let boxed = self.box_float_with(r, span, None, marked);
        self.b.ins().jump(done, &[boxed.into()]);
        self.b.set_cold_block(generic);
        self.b.switch_to_block(generic);
    }

    /// `-x`, `+x`, `~x`: inline for an int (`-x` with an overflow check), else the helper.
    /// On tagged words `2a+1`: `-a` is `2 - x`, `~a` is `-x`.
    fn unary(&mut self, op: UnaryOp, x: Value, span: Span) -> Value {
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let bit = self.b.ins().band_imm(x, 1);
        self.only_if(bit, slow);
        match op {
            UnaryOp::Neg => {
                let two = self.b.ins().iconst(I64, 2);
                let (r, of) = self.b.ins().ssub_overflow(two, x);
                self.b.ins().brif(of, slow, &[], done, &[r.into()]);
            }
            UnaryOp::Pos => {
                self.b.ins().jump(done, &[x.into()]);
            }
            UnaryOp::Invert => {
                let r = self.b.ins().ineg(x);
                self.b.ins().jump(done, &[r.into()]);
            }
        }
        let marked = self.region_marked();
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let k = UNOPS.iter().position(|o| *o == op).unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        let r = self.call_checked(Helper::Unary, &[self.ctx, k, x], span);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[r.into()]);
        self.enter_join(done, marked);
        self.b.block_params(done)[0]
    }

    /// For `<`, `<=`, `>`, `>=`: the float condition (ordered, so false when either side
    /// is NaN, as `order` gives) and a fresh cold block for operands that are not two
    /// floats.
    fn float_order(&mut self, op: CmpOp) -> Option<(FloatCC, Block)> {
        let cc = match op {
            CmpOp::Lt => FloatCC::LessThan,
            CmpOp::Le => FloatCC::LessThanOrEqual,
            CmpOp::Gt => FloatCC::GreaterThan,
            CmpOp::Ge => FloatCC::GreaterThanOrEqual,
            _ => return None,
        };
        let generic = self.b.create_block();
        self.b.set_cold_block(generic);
        Some((cc, generic))
    }

    /// The f64 of a float box (immutable: no read barrier); branches to `other` when `v` is
    /// not a float.
    pub(crate) fn float_value(&mut self, v: Value, other: Block) -> Value {
        let is_float = self.has_type(v, self.sh.types.float.0, other);
        let b2 = self.b.create_block();
        self.b.ins().brif(is_float, b2, &[], other, &[]);
        self.b.switch_to_block(b2);
        let va = self.seg_addr(v);
        self.b.ins().load(
            cranelift_codegen::ir::types::F64,
            mf(),
            va,
            offset_of!(stmjit_vm::objects::FloatObj, value) as i32,
        )
    }

    /// A new float box holding `f`, allocated inline in the nursery:
    /// `r = nursery_current; n = r + 16; if n > nursery_end → stmjit_alloc; else
    /// nursery_current = n; header = type << 32`, then the value.
    pub(crate) fn box_float(&mut self, f: Value, span: Span) -> Value {
        self.box_float_with(f, span, None, &Marks::default())
    }

    /// [`Self::box_float`], or where `full` is given, a branch there when the nursery is
    /// full (for code whose way out is its own: `inline.rs`), no helper called.
    pub(crate) fn box_float_or(&mut self, f: Value, span: Span, full_to: Option<Block>) -> Value {
        self.box_float_with(f, span, full_to, &Marks::default())
    }

    /// [`Self::box_float_or`]; where the helper allocates, the barrier region `repair` is
    /// repaired after it ([`Self::repair_region`]), so that the join keeps it.
    pub(super) fn box_float_with(
        &mut self,
        f: Value,
        span: Span,
        full_to: Option<Block>,
        repair: &Marks,
    ) -> Value {
        let size = std::mem::size_of::<stmjit_vm::objects::FloatObj>() as i64;
        self.begin_sequence(super::LOC_ALLOC);
        let slow = full_to.unwrap_or_else(|| self.b.create_block());
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let size = self.b.ins().iconst(I64, size);
        let r = self.nursery_bump(size, young_header(self.sh.types.float), slow);
        self.b.ins().jump(done, &[r.into()]);
        self.end_sequence();
        if full_to.is_none() {
            self.alloc_float_slow(slow, done, span, repair);
        }
        self.b.switch_to_block(done);
        let obj = self.b.block_params(done)[0];
        let va = self.seg_addr(obj);
        self.b.ins().store(
            mf(),
            f,
            va,
            offset_of!(stmjit_vm::objects::FloatObj, value) as i32,
        );
        obj
    }

    /// A young object of `size` bytes (a multiple of 16, under the nursery's small-object
    /// limit) bumped from the segment's nursery by the runtime's protocol
    /// (`stmjit_runtime::nursery`: the current pointer moves past it, its memory is zeroed
    /// already): branches to `full` where it does not fit; else goes on in a new block with
    /// the new current pointer and the object's `header` stored, and gives its offset. The
    /// caller stores the rest before any call that may collect.
    pub(crate) fn nursery_bump(&mut self, size: Value, header: u64, full: Block) -> Value {
        use stmjit_runtime::{SegmentInfo, INFO_OFFSET};
        let cur_off = (INFO_OFFSET + offset_of!(SegmentInfo, nursery_current) as u64) as i64;
        let end_off = (INFO_OFFSET + offset_of!(SegmentInfo, nursery_end) as u64) as i64;
        let c = self.b.ins().iconst(I64, cur_off);
        let ca = self.seg_addr(c);
        let r = self.b.ins().load(I64, mf(), ca, 0);
        let next = self.b.ins().iadd(r, size);
        let e = self.b.ins().iconst(I64, end_off);
        let ea = self.seg_addr(e);
        let end = self.b.ins().load(I64, mf(), ea, 0);
        let over = self.b.ins().icmp(IntCC::UnsignedGreaterThan, next, end);
        let fast = self.b.create_block();
        self.b.ins().brif(over, full, &[], fast, &[]);
        self.b.switch_to_block(fast);
        let c2 = self.b.ins().iconst(I64, cur_off);
        let ca2 = self.seg_addr(c2);
        self.b.ins().store(mf(), next, ca2, 0);
        let header = self.b.ins().iconst(I64, header as i64);
        let ha = self.seg_addr(r);
        self.b.ins().store(mf(), header, ha, 0);
        r
    }

    /// The slow path of [`Self::box_float`] at `slow`: a float allocated by the helper (which
    /// collects; an abort unwinds at `span`), the region `repair` repaired, then the join
    /// `done`.
    fn alloc_float_slow(&mut self, slow: Block, done: Block, span: Span, repair: &Marks) {
        let ty = self.sh.types.float.0 as i64;
        let size = std::mem::size_of::<stmjit_vm::objects::FloatObj>() as i64;
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let th = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, th) as i32);
        let t = self.b.ins().iconst(I64, ty);
        let sz = self.b.ins().iconst(I64, size);
        let r2 = self.call(Helper::Alloc, &[th, t, sz]);
        let zero = self.b.ins().icmp_imm(IntCC::Equal, r2, 0);
        let ok = self.b.create_block();
        let raise = self.b.create_block();
        self.b.ins().brif(zero, raise, &[], ok, &[]);
        self.b.set_cold_block(raise);
        self.b.switch_to_block(raise);
        let e = self.call(Helper::Aborted, &[self.ctx]);
        self.check(e, span);
        self.b.ins().jump(ok, &[]);
        self.b.switch_to_block(ok);
        self.repair_region(repair, span);
        self.b.ins().jump(done, &[r2.into()]);
    }

    /// One comparison `x OP y` as a bool word.
    pub(crate) fn compare_one(&mut self, op: CmpOp, x: Value, y: Value, span: Span) -> Value {
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let slow = self.b.create_block();
        let cc = int_cc(op);
        if matches!(op, CmpOp::Is | CmpOp::IsNot) {
            // Same word: identical; different words are identical only for equal strs or
            // floats (two references: the helper decides).
            let (t, f) = if op == CmpOp::Is {
                (TRUE, FALSE)
            } else {
                (FALSE, TRUE)
            };
            let same = self.b.ins().icmp(IntCC::Equal, x, y);
            let tv = self.b.ins().iconst(I64, t as i64);
            let fv = self.b.ins().iconst(I64, f as i64);
            let diff = self.b.create_block();
            self.b.ins().brif(same, done, &[tv.into()], diff, &[]);
            self.b.switch_to_block(diff);
            let both = self.b.ins().bor(x, y);
            let any_imm_x = self.b.ins().icmp_imm(IntCC::UnsignedLessThan, x, 4096);
            let any_imm_y = self.b.ins().icmp_imm(IntCC::UnsignedLessThan, y, 4096);
            let odd = self.b.ins().band_imm(both, 1);
            let odd = self.b.ins().icmp_imm(IntCC::NotEqual, odd, 0);
            let a = self.b.ins().bor(any_imm_x, any_imm_y);
            let not_two_refs = self.b.ins().bor(a, odd);
            self.b
                .ins()
                .brif(not_two_refs, done, &[fv.into()], slow, &[]);
        } else if let Some(cc) = cc {
            self.both_ints(x, y, slow);
            let c = self.b.ins().icmp(cc, x, y);
            let t = self.b.ins().iconst(I64, TRUE as i64);
            let f = self.b.ins().iconst(I64, FALSE as i64);
            let r = self.b.ins().select(c, t, f);
            self.b.ins().jump(done, &[r.into()]);
        } else {
            self.b.ins().jump(slow, &[]);
        }
        let marked = self.region_marked();
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let floats = if self.compact {
            None
        } else {
            self.float_order(op)
        };
        if let Some((c, generic)) = floats {
            // Two floats: compared inline (no call, so the read region holds).
            let fx = self.float_value(x, generic);
            let fy = self.float_value(y, generic);
            let c = self.b.ins().fcmp(c, fx, fy);
            let t = self.b.ins().iconst(I64, TRUE as i64);
            let f = self.b.ins().iconst(I64, FALSE as i64);
            let r = self.b.ins().select(c, t, f);
            self.b.ins().jump(done, &[r.into()]);
            self.b.switch_to_block(generic);
        }
        let k = CMPOPS.iter().position(|o| *o == op).unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        let r = self.call_checked(Helper::Compare, &[self.ctx, k, x, y], span);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[r.into()]);
        self.enter_join(done, marked);
        self.b.block_params(done)[0]
    }

    fn compare(&mut self, first: &Expr, rest: &[(CmpOp, Expr)], span: Span) -> Value {
        if rest.len() == 1 {
            let (x, y) = self.operands(first, &rest[0].1);
            return self.compare_one(rest[0].0, x, y, span);
        }
        let mark = self.temp_mark();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let x = self.expr(first);
        let left = self.push_temp(x);
        for (i, (op, r)) in rest.iter().enumerate() {
            let y = self.expr(r);
            let right = self.push_temp(y);
            let x = self.load_slot(left);
            let c = self.compare_one(*op, x, y, span);
            if i + 1 == rest.len() {
                self.b.ins().jump(done, &[c.into()]);
            } else {
                let t = self.b.ins().icmp_imm(IntCC::Equal, c, TRUE as i64);
                let next = self.b.create_block();
                self.b.ins().brif(t, next, &[], done, &[c.into()]);
                self.b.switch_to_block(next);
                let y = self.load_slot(right);
                self.store_slot(left, y);
            }
        }
        self.b.switch_to_block(done);
        self.pop_temps(mark);
        self.b.block_params(done)[0]
    }

    /// Inline test that `o` is a list and `i` an in-range int; on success returns the
    /// segment offset of the element word (after the list's read barrier), else branches to
    /// `slow`. A `position` (a `for` loop's, over its iterator) is a tagged int from 0 up:
    /// neither its tag nor its sign needs a test.
    pub(crate) fn list_elem(
        &mut self,
        o: Value,
        i: Value,
        position: bool,
        slow: Block,
        span: Span,
    ) -> Value {
        self.begin_sequence(super::LOC_LIST_FAST);
        // Fused branches: an int index, a list.
        if !position {
            let int = self.b.ins().band_imm(i, 1);
            self.only_if(int, slow);
        }
        let len = self.list_len_raw(o, span, slow);
        let ia = self.seg_addr(o);
        let items = self
            .b
            .ins()
            .load(I64, mf(), ia, offset_of!(ListObj, items) as i32);
        let mut idx = self.b.ins().sshr_imm(i, 1);
        if !position {
            let neg = self.b.ins().icmp_imm(IntCC::SignedLessThan, idx, 0);
            let wrapped = self.b.ins().iadd(idx, len);
            idx = self.b.ins().select(neg, wrapped, idx);
        }
        let inb = self.b.ins().icmp(IntCC::UnsignedLessThan, idx, len);
        let b3 = self.b.create_block();
        self.b.ins().brif(inb, b3, &[], slow, &[]);
        self.follow(b3);
        let off = self.b.ins().ishl_imm(idx, 3);
        let off = self.b.ins().iadd_imm(off, ARRAY_DATA as i64);
        let addr = self.b.ins().iadd(items, off);
        self.end_sequence();
        let _ = mf();
        addr
    }

    /// `o[i]`, inline for lists.
    pub(crate) fn index(&mut self, o: Value, i: Value, span: Span) -> Value {
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let addr = self.list_elem(o, i, false, slow, span);
        // The element's own granule (card-marked items array).
        self.read_barrier(addr, span);
        let a = self.seg_addr(addr);
        let v = self.b.ins().load(I64, mf(), a, 0);
        let marked = self.region_marked();
        self.b.ins().jump(done, &[v.into()]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let r = self.call_checked(Helper::GetItem, &[self.ctx, o, i], span);
        self.repair_region(&marked, span);
        self.b.ins().jump(done, &[r.into()]);
        self.enter_join(done, marked);
        self.b.block_params(done)[0]
    }

    /// `o[i] = v`, inline for lists.
    pub(crate) fn set_index(&mut self, o: Value, i: Value, v: Value, span: Span) {
        let slow = self.b.create_block();
        let done = self.b.create_block();
        let addr = self.list_elem(o, i, false, slow, span);
        let ia = self.seg_addr(o);
        let items = self
            .b
            .ins()
            .load(I64, mf(), ia, offset_of!(ListObj, items) as i32);
        let off = self.b.ins().isub(addr, items);
        self.card_write_barrier(items, off, span);
        let a = self.seg_addr(addr);
        self.b.ins().store(mf(), v, a, 0);
        self.b.ins().jump(done, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        self.call_checked(Helper::SetItem, &[self.ctx, o, i, v], span);
        self.b.ins().jump(done, &[]);
        self.b.switch_to_block(done);
    }

    /// Builtin `b` called on the `n` words at `p` (temporaries), by its helper.
    fn builtin_at(&mut self, b: Builtin, p: Value, n: Value, span: Span) -> Value {
        if b == Builtin::Print {
            return self.call_checked(Helper::Print, &[self.ctx, p, n], span);
        }
        let k = Builtin::ALL.iter().position(|x| *x == b).unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        self.call_checked(Helper::Builtin, &[self.ctx, k, p, n], span)
    }

    /// Builtin `b` called on the one word `v`, by its helper (the slow path of a builtin
    /// computed inline).
    pub(crate) fn builtin_on(&mut self, b: Builtin, v: Value, span: Span) -> Value {
        let mark = self.temp_mark();
        let t = self.push_temp(v);
        let p = self.slot_addr(t);
        let n = self.b.ins().iconst(I64, 1);
        let r = self.builtin_at(b, p, n, span);
        self.pop_temps(mark);
        r
    }

    fn call_expr(&mut self, func: &Expr, args: &[Expr], span: Span) -> Value {
        self.call_expr_in(func, args, span, false).0
    }

    /// `func(args)` as a word, and where `raw`, with an `f64`: the call's result is then
    /// `UNBOXED` and that `f64` where the call is computed inline
    /// ([`FnCompiler::inline_call`]; `raw` only for a callee whose `def` returns a true
    /// division: [`Self::raw_callee`]), else its word and 0.0 (not `raw`: the word twice).
    pub(super) fn call_expr_in(
        &mut self,
        func: &Expr,
        args: &[Expr],
        span: Span,
        raw: bool,
    ) -> (Value, Value) {
        if let Some(b) = builtin_by_name(func) {
            if b == Builtin::Len && args.len() == 1 {
                let r = self.len_call(&args[0], span);
                return (r, r);
            }
            // (Not `raw`: a builtin is no `raw_callee`.)
            let (mark, p, n) = self.eval_into_temps(args);
            let r = self.builtin_at(b, p, n, span);
            self.pop_temps(mark);
            return (r, r);
        }
        let mark = self.temp_mark();
        let f = self.expr(func);
        let ft = self.push_temp(f);
        let refs: Vec<&Expr> = args.iter().collect();
        self.args_into_temps(&refs);
        let f = self.load_slot(ft);
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        if raw {
            self.b.append_block_param(done, F64);
        }
        // What the paths that do not compute inline give `done`: their word, and 0.0.
        let to_done = |c: &mut Self, r: Value| -> Vec<cranelift_codegen::ir::BlockArg> {
            if raw {
                let z = c.b.ins().f64const(0.0);
                vec![r.into(), z.into()]
            } else {
                vec![r.into()]
            }
        };
        let generic = self.b.create_block();
        // Direct call when the callee is the function a module-level `def` bound to this
        // global (and the arity matches); the generic path handles everything else.
        let direct_fid = match &func.kind {
            ExprKind::Name(Name {
                slot: Slot::Global(g),
                ..
            }) => self.sh.def_of_global.get(g).copied(),
            _ => None,
        };
        if let Some(fid) = direct_fid.filter(|&fid| {
            let f = &self.sh.program.functions[fid];
            f.is_plain() && f.arity == args.len()
        }) {
            let expect = self.sh.consts.func_objs[fid] as i64;
            let same = self.b.ins().icmp_imm(IntCC::Equal, f, expect);
            let direct = self.b.create_block();
            self.b.ins().brif(same, direct, &[], generic, &[]);
            self.b.switch_to_block(direct);
            let program = self.sh.program;
            // (Compact code is small rather than fast: the call alone.)
            let inline = (!self.compact)
                .then(|| super::inline::inlinable(&program.functions[fid]))
                .flatten();
            if let Some(nodes) = inline {
                // Computed here; the call below is the way out (`inline.rs`).
                let call = self.b.create_block();
                let vals: Vec<Value> = (0..args.len())
                    .map(|k| self.load_slot(ft + 1 + k))
                    .collect();
                let r = self.inline_call(fid, nodes, &vals, call, raw);
                if raw {
                    let u = self.b.ins().iconst(I64, UNBOXED as i64);
                    self.b.ins().jump(done, &[u.into(), r.into()]);
                } else {
                    self.b.ins().jump(done, &[r.into()]);
                }
                self.b.set_cold_block(call);
                self.b.switch_to_block(call);
            }
            let code = self.direct_code(fid, span);
            let mut vals = vec![self.ctx];
            for k in 0..args.len() {
                vals.push(self.load_slot(ft + 1 + k));
            }
            let sig = self.jit_signature(vals.len());
            // The read markers stay (see "Marks across calls" in `barriers.rs`).
            self.region.marks.after_call();
            self.spill_locals();
            // As any call of a JIT function: no r15 reload (the callee keeps it right).
            let inst = self.b.ins().call_indirect(sig, code, &vals);
            let r = self.b.inst_results(inst)[0];
            self.reload_read_version(inst);
            self.reload_locals();
            // It may have run code that rebinds a global (`global_cache.rs`).
            self.reload_cached_globals();
            self.check(r, span);
            let a = to_done(self, r);
            self.b.ins().jump(done, &a);
        } else {
            self.b.ins().jump(generic, &[]);
        }
        self.b.switch_to_block(generic);
        // A callee not known to be a function may be a class: `C(args)` through the site's
        // class cache (`sites.rs`), the generic helper filling it.
        let class_site = if direct_fid.is_none() {
            debug_assert!(!raw, "raw_callee: a def-bound callee");
            let cache = self.sh.classes.new_method_site() as i64;
            let slow = self.b.create_block();
            self.class_call(ft, args.len(), cache, done, slow, span);
            self.b.switch_to_block(slow);
            Some(cache)
        } else {
            None
        };
        let p = self.slot_addr(ft + 1);
        let n = self.b.ins().iconst(I64, args.len() as i64);
        let r = match class_site {
            Some(cache) => {
                let cp = self.b.ins().iconst(I64, cache);
                self.call_checked(Helper::CallSite, &[self.ctx, f, p, n, cp], span)
            }
            None => self.call_checked(Helper::Call, &[self.ctx, f, p, n], span),
        };
        let a = to_done(self, r);
        self.b.ins().jump(done, &a);
        self.b.switch_to_block(done);
        self.pop_temps(mark);
        let ps = self.b.block_params(done);
        (ps[0], if raw { ps[1] } else { ps[0] })
    }

    /// Whether a call of `func` with `nargs` arguments may give a raw `f64`
    /// ([`Self::call_expr_in`]): a direct call of a function computed inline whose body
    /// returns a true division.
    pub(super) fn raw_callee(&self, func: &Expr, nargs: usize) -> bool {
        let ExprKind::Name(Name {
            slot: Slot::Global(g),
            ..
        }) = &func.kind
        else {
            return false;
        };
        !self.compact
            && self.sh.def_of_global.get(g).is_some_and(|&fid| {
                let f = &self.sh.program.functions[fid];
                f.is_plain()
                    && f.arity == nargs
                    && super::inline::inlinable(f).is_some()
                    && super::inline::returns_quotient(f)
            })
    }
}

/// Elements of a list literal evaluated into frame temporaries at a time: a longer literal is
/// built chunk by chunk (each chunk a list, appended to the first with `+=`), so that its
/// frame stays small however long the literal is (a 1.2 M-element literal needed 1.2 M frame
/// slots and failed with a RecursionError).
const LIST_LITERAL_CHUNK: usize = 1024;

impl FnCompiler<'_, '_> {
    /// `[a, b, ...]`, left to right.
    fn list_literal(&mut self, items: &[Expr], span: Span) -> Value {
        if let Some(r) = self.const_display(Helper::NewList, items.iter(), items.len(), span) {
            return r;
        }
        let mut chunks = items.chunks(LIST_LITERAL_CHUNK);
        let first = chunks.next().unwrap_or(&[]);
        let list = self.list_of(first, span);
        if items.len() <= LIST_LITERAL_CHUNK {
            return list;
        }
        let mark = self.temp_mark();
        self.push_temp(list);
        let add = BINOPS.iter().position(|o| *o == BinOp::Add).unwrap() as i64;
        for chunk in chunks {
            let part = self.list_of(chunk, span);
            let acc = self.load_slot(mark);
            let k = self.b.ins().iconst(I64, add);
            self.call_checked(Helper::Inplace, &[self.ctx, k, acc, part], span);
        }
        let r = self.load_slot(mark);
        self.pop_temps(mark);
        r
    }

    /// A new list of `items` (evaluated into temporaries, then one helper call).
    fn list_of(&mut self, items: &[Expr], span: Span) -> Value {
        let (mark, p, n) = self.eval_into_temps(items);
        let r = self.call_checked(Helper::NewList, &[self.ctx, p, n], span);
        self.pop_temps(mark);
        r
    }

    /// `func(args)` with keyword or unpacked arguments: the callee and the argument values
    /// in source order into temporaries, their kinds registered, `stmjit_call_ex`.
    fn call_ex(&mut self, func: &Expr, args: &[Arg], span: Span) -> Value {
        let mark = self.temp_mark();
        let f = self.expr(func);
        let ft = self.push_temp(f);
        let values: Vec<&Expr> = args.iter().map(|a| &a.value).collect();
        self.args_into_temps(&values);
        let kinds = args.iter().map(|a| a.kind.clone()).collect();
        let shape = self.sh.code.add_call_shape(kinds) as i64;
        let f = self.load_slot(ft);
        let p = self.slot_addr(ft + 1);
        let n = self.b.ins().iconst(I64, args.len() as i64);
        let shape = self.b.ins().iconst(I64, shape);
        let r = self.call_checked(Helper::CallEx, &[self.ctx, f, p, n, shape], span);
        self.pop_temps(mark);
        r
    }

    /// Evaluates `items` left to right into fresh temporaries: the argument array of a
    /// helper taking `(argv, n)`. Returns the mark to pop them with, `argv` and `n`.
    pub(crate) fn eval_into_temps(&mut self, items: &[Expr]) -> (usize, Value, Value) {
        let refs: Vec<&Expr> = items.iter().collect();
        self.eval_refs_into_temps(&refs)
    }

    /// The arguments of a call into fresh temporaries (after the callee's): by parts when
    /// there are more than [`super::parts::ITEMS_SPLIT_ABOVE`] (a call of 10 000 arguments
    /// compiled in one piece took 400 MB), else each in place, where a huge one is cut as
    /// any huge expression is (`chains.rs`: a part per argument of `f(f(...))` would nest
    /// parts in parts).
    pub(crate) fn args_into_temps(&mut self, args: &[&Expr]) {
        if args.len() > super::parts::ITEMS_SPLIT_ABOVE {
            self.eval_refs_into_temps(args);
            return;
        }
        for a in args {
            let v = self.expr(a);
            self.push_temp(v);
        }
    }

    /// [`Self::eval_into_temps`] of expressions by reference. Many items (or items of many
    /// nodes) are evaluated by parts of a few hundred items or a few thousand nodes, each
    /// compiled on its own (`parts.rs`), so that compile memory does not grow with the
    /// display (a display of 60 000 big ints took 5.3 GB).
    pub(crate) fn eval_refs_into_temps(&mut self, items: &[&Expr]) -> (usize, Value, Value) {
        let mark = self.temp_mark();
        let parts = self
            .parts_allowed()
            .then(|| super::parts::split_items(items))
            .flatten();
        if let Some(parts) = parts {
            for r in parts {
                let chunk = &items[r];
                let start = self.temp_mark();
                self.temps += chunk.len();
                self.max_temps = self.max_temps.max(self.temps);
                self.items_part(chunk, start);
            }
        } else {
            for it in items {
                let v = self.expr(it);
                self.push_temp(v);
            }
        }
        let p = self.slot_addr(mark);
        let n = self.b.ins().iconst(I64, items.len() as i64);
        (mark, p, n)
    }
}

/// The largest `a | (d - 1)` (untagged dividend, divisor less one) divided in 32 bits
/// unsigned (`narrow_or_wide`): `2**31 - 1`, the largest such `x64` immediate.
const NARROW_MAX: i64 = 0x7fff_ffff;

/// Squares `a * a` of `-SQUARE_HALF <= a < SQUARE_HALF` are computed without the overflow
/// flag (`int_square`): `2**30`, so that the range test is one `cmp` with an immediate.
const SQUARE_HALF: i64 = 1 << 30;

/// The smallest and largest 63-bit int.
const INT_MIN: i64 = -(1 << 62);
/// See [`INT_MIN`].
const INT_MAX: i64 = (1 << 62) - 1;

/// `k` where the tagged int constant `tagged` is `2^k` (a divisor `//` and `%` shift and mask
/// by), `None` for other ints.
fn power_of_two(tagged: i64) -> Option<u32> {
    let d = tagged >> 1;
    (d > 0 && d & (d - 1) == 0).then(|| d.trailing_zeros())
}

/// The 63-bit ints `a` whose product with the int `c` is a 63-bit int: `(lo, hi)`, both
/// 63-bit ints (the whole range when `c` is 0 or 1).
pub(crate) fn mul_const_range(c: i64) -> (i64, i64) {
    let (min, max) = (i128::from(INT_MIN), i128::from(INT_MAX));
    let c = i128::from(c);
    let (lo, hi) = match c {
        0 => (min, max),
        c if c > 0 => (-(-min).div_euclid(c), max.div_euclid(c)),
        // a*c = -(a*d) in [min, max] iff a*d in [-max, -min].
        c => {
            let d = -c;
            (-max.div_euclid(d), (-min).div_euclid(d))
        }
    };
    (lo.max(min) as i64, hi.min(max) as i64)
}

/// The builtin a call of `func` runs by its helper, if `func` names one (the built-in
/// exception classes are classes: called as values).
pub(crate) fn builtin_by_name(func: &Expr) -> Option<Builtin> {
    let ExprKind::Name(n) = &func.kind else {
        return None;
    };
    let b = match n.slot {
        Slot::Builtin(b) => Some(b),
        Slot::Unresolved => Builtin::from_name(&n.name),
        _ => None,
    };
    b.filter(|b| !matches!(b, Builtin::ExcClass(_)))
}

/// The machine condition of the int comparison `op` (signed words); `None` for `in`, `is`
/// and their negations, which are no order of ints.
pub(crate) fn int_cc(op: CmpOp) -> Option<IntCC> {
    Some(match op {
        CmpOp::Eq => IntCC::Equal,
        CmpOp::Ne => IntCC::NotEqual,
        CmpOp::Lt => IntCC::SignedLessThan,
        CmpOp::Le => IntCC::SignedLessThanOrEqual,
        CmpOp::Gt => IntCC::SignedGreaterThan,
        CmpOp::Ge => IntCC::SignedGreaterThanOrEqual,
        _ => return None,
    })
}

/// The sides and operator of `e` if it is one comparison (`a < b`, not a chain `a < b < c`):
/// the shape that the int- and float-tree conditions branch on directly.
pub(crate) fn single_compare(e: &Expr) -> Option<(&Expr, CmpOp, &Expr)> {
    let ExprKind::Compare { first, rest } = &e.kind else {
        return None;
    };
    let [(op, second)] = rest.as_slice() else {
        return None;
    };
    Some((first, *op, second))
}

#[cfg(test)]
mod tests {
    use super::{mul_const_range, power_of_two, INT_MAX, INT_MIN};

    #[test]
    fn powers_of_two_are_the_positive_ones() {
        let tag = |n: i64| n << 1 | 1;
        assert_eq!(power_of_two(tag(1)), Some(0));
        assert_eq!(power_of_two(tag(2)), Some(1));
        assert_eq!(power_of_two(tag(1 << 61)), Some(61));
        for n in [0, 3, 6, -2, -1, INT_MIN, INT_MAX] {
            assert_eq!(power_of_two(tag(n)), None, "{n}");
        }
    }

    /// Whether `a * c` is a 63-bit int, computed wide.
    fn fits(a: i64, c: i64) -> bool {
        let p = i128::from(a) * i128::from(c);
        (i128::from(INT_MIN)..=i128::from(INT_MAX)).contains(&p)
    }

    #[test]
    fn mul_const_range_is_exactly_the_products_that_fit() {
        let cs = [
            0,
            1,
            -1,
            2,
            -2,
            3,
            -3,
            7,
            31,
            1103515245,
            -1103515245,
            1 << 31,
            (1 << 40) + 7,
            INT_MAX,
            INT_MIN,
            INT_MIN + 1,
        ];
        for c in cs {
            let (lo, hi) = mul_const_range(c);
            assert!((INT_MIN..=hi).contains(&lo) && hi <= INT_MAX, "c={c}");
            for a in [lo, hi] {
                assert!(fits(a, c), "c={c} a={a} inside");
            }
            if lo > INT_MIN {
                assert!(!fits(lo - 1, c), "c={c} below {lo}");
            }
            if hi < INT_MAX {
                assert!(!fits(hi + 1, c), "c={c} above {hi}");
            }
            for a in [0, 1, -1, INT_MIN, INT_MAX, 1 << 31, -(1 << 31)] {
                assert_eq!(fits(a, c), (lo..=hi).contains(&a), "c={c} a={a}");
            }
        }
    }
}
