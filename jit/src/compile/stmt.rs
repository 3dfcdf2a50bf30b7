//! Statements.

use super::FnCompiler;
use cranelift_codegen::ir::{condcodes::IntCC, types::I64, InstBuilder, Value};
use stmjit_lang::ast::*;
use stmjit_lang::diag::Span;
use stmjit_vm::abi::Helper;
use stmjit_vm::abi::TAGGED_ZERO;
use stmjit_vm::UNBOUND;

impl FnCompiler<'_, '_> {
    /// Compiles a block of statements here, in this function (its nested blocks may be
    /// parts: [`Self::stmts`]).
    pub(crate) fn stmts_in_place(&mut self, body: &[Stmt]) {
        let mut i = 0;
        while i < body.len() {
            if self.is_filled() {
                self.dead_block();
            }
            let run = self.def_run(&body[i..]);
            if run >= 2 {
                self.define_globals(&body[i..i + run]);
                i += run;
            } else {
                self.stmt(&body[i]);
                i += 1;
            }
        }
    }

    /// How many statements at the start of `body` are `def`s binding a global to a
    /// function without defaults nor free variables (whose object is a constant).
    fn def_run(&self, body: &[Stmt]) -> usize {
        let program = self.sh.program;
        body.iter()
            .take_while(|s| match &s.kind {
                StmtKind::FunctionDef { func, target } => {
                    let f = &program.functions[*func];
                    matches!(target.slot, Slot::Global(_))
                        && f.defaults.is_empty()
                        && f.nfree == 0
                        && !program.defined_in_module_loop[*func]
                }
                _ => false,
            })
            .count()
    }

    /// A run of `def`s that [`Self::def_run`] counted: one helper call binds their globals
    /// (in order), instead of one inline card barrier and store each.
    fn define_globals(&mut self, defs: &[Stmt]) {
        let first = &defs[0];
        self.at_line(first.span.line);
        let mut pairs = Vec::with_capacity(2 * defs.len());
        for s in defs {
            if let StmtKind::FunctionDef { func, target } = &s.kind {
                if let Slot::Global(g) = target.slot {
                    pairs.push(g as u64);
                    pairs.push(self.sh.consts.func_objs[*func]);
                }
            }
        }
        let n = self.b.ins().iconst(I64, (pairs.len() / 2) as i64);
        let table = self.sh.code.add_def_run(pairs) as i64;
        let table = self.b.ins().iconst(I64, table);
        self.call_checked(Helper::DefineGlobals, &[self.ctx, table, n], first.span);
    }

    /// Compiles a loop body at the current block: `bind` first (the loop variable's
    /// assignment), then the statements, with `break`/`continue` going to `exit`/`latch`;
    /// falls through to `latch` and leaves the builder there. What the body assigns does not
    /// count as assigned after it, since the body may run zero times.
    pub(super) fn loop_body(
        &mut self,
        body: &[Stmt],
        latch: cranelift_codegen::ir::Block,
        exit: cranelift_codegen::ir::Block,
        bind: impl FnOnce(&mut Self),
    ) {
        self.loop_body_then(body, latch, exit, bind, |_| {});
    }

    /// [`Self::loop_body`], with `tail` compiling code after the statements, inside the loop
    /// (a `continue` skips it, a `break` leaves past it).
    pub(super) fn loop_body_then(
        &mut self,
        body: &[Stmt],
        latch: cranelift_codegen::ir::Block,
        exit: cranelift_codegen::ir::Block,
        bind: impl FnOnce(&mut Self),
        tail: impl FnOnce(&mut Self),
    ) {
        let before = self.assigned.clone();
        let header_line = self.line;
        bind(self);
        let brk = self.break_past_else.take().unwrap_or(exit);
        self.loops.push((latch, brk, self.with_depth));
        self.stmts(body);
        tail(self);
        self.loops.pop();
        // The back-edge (latch, poll, next iteration) is the loop header's code.
        self.at_line(header_line);
        self.assigned = before;
        if !self.is_filled() {
            self.b.ins().jump(latch, &[]);
        }
        self.b.switch_to_block(latch);
    }

    pub(super) fn store_name(&mut self, n: &Name, v: Value, span: Span) {
        match n.slot {
            Slot::Local(i) => {
                self.store_slot(i, v);
                self.assigned[i] = true;
            }
            Slot::Cell(i) => {
                let cell = self.load_slot(i);
                self.call_checked(Helper::CellSet, &[self.ctx, cell, v], span);
            }
            Slot::Global(g) => self.store_global(g, v, span),
            // The resolver rejects assignments to builtins.
            Slot::Builtin(_) | Slot::Unresolved => {}
        }
    }

    fn assign(&mut self, t: &Target, v: Value, stmt_span: Span) {
        match t {
            Target::Name(n) => self.store_name(n, v, stmt_span),
            Target::Index { obj, index } => {
                let mark = self.temp_mark();
                let vt = self.push_temp(v);
                let (o, i) = self.operands(obj, index);
                let v = self.load_slot(vt);
                self.set_index(o, i, v, obj.span);
                self.pop_temps(mark);
            }
            Target::Slice { obj, lo, hi } => {
                let mark = self.temp_mark();
                let vt = self.push_temp(v);
                let o = self.expr(obj);
                let ot = self.push_temp(o);
                let l = self.opt_expr(lo.as_deref());
                let lt = self.push_temp(l);
                let h = self.opt_expr(hi.as_deref());
                let o = self.load_slot(ot);
                let l = self.load_slot(lt);
                let v = self.load_slot(vt);
                self.call_checked(Helper::SetSlice, &[self.ctx, o, l, h, v], obj.span);
                self.pop_temps(mark);
            }
            Target::Attr { obj, name } => {
                let mark = self.temp_mark();
                let vt = self.push_temp(v);
                let o = self.expr(obj);
                let v = self.load_slot(vt);
                self.setattr(o, name, v, obj.span);
                self.pop_temps(mark);
            }
            Target::Tuple(targets, star) => {
                // The items go into fresh temporaries (GC roots), then into the targets
                // from left to right.
                let mark = self.temp_mark();
                let unbound = self.b.ins().iconst(I64, UNBOUND as i64);
                for _ in targets {
                    self.push_temp(unbound);
                }
                let out = self.slot_addr(mark);
                let n = self.b.ins().iconst(I64, targets.len() as i64);
                match star {
                    None => self.call_checked(Helper::Unpack, &[self.ctx, v, n, out], stmt_span),
                    Some(s) => {
                        let s = self.b.ins().iconst(I64, *s as i64);
                        let args = [self.ctx, v, n, s, out];
                        self.call_checked(Helper::UnpackStarred, &args, stmt_span)
                    }
                };
                self.assign_items(targets, mark, stmt_span);
                self.pop_temps(mark);
            }
        }
    }

    /// Stores the values in the temporaries from `first` on into `targets`, in order.
    fn assign_items(&mut self, targets: &[Target], first: usize, span: Span) {
        for (i, t) in targets.iter().enumerate() {
            let x = self.load_slot(first + i);
            self.assign(t, x, span);
        }
    }

    pub(super) fn stmt(&mut self, s: &Stmt) {
        self.at_line(s.span.line);
        self.stmt_span = s.span;
        self.open_join_restart(&s.kind);
        self.stmt_kind(s);
        self.join_point = None;
    }

    fn stmt_kind(&mut self, s: &Stmt) {
        match &s.kind {
            StmtKind::Expr(e) => {
                self.expr(e);
            }
            StmtKind::Assign { targets, value } => {
                if !(self.moves.contains(&(s as *const Stmt)) && self.unboxed_move(targets, value))
                {
                    self.assign_stmt(targets, value, s.span)
                }
            }
            StmtKind::AugAssign { target, op, value } => {
                self.aug_assign(target, *op, value, s.span)
            }
            StmtKind::If { cond, body, orelse } => self.if_stmt(cond, body, orelse),
            StmtKind::While { cond, body, orelse } => {
                self.enter_loop_read_version();
                let held = self.hold_loop_marks(Some(cond), None, body, s.span);
                self.loop_with_else(orelse, |c| {
                    c.with_cached_globals(&[cond], None, body, |c| c.while_loop(cond, body, s.span))
                });
                self.release_held(held);
                self.loop_depth -= 1;
            }
            StmtKind::For {
                var,
                iter,
                body,
                orelse,
            } => {
                self.enter_loop_read_version();
                let held = self.hold_loop_marks(None, Some(var), body, s.span);
                self.loop_with_else(orelse, |c| {
                    c.with_cached_globals(&[iter], Some(var), body, |c| {
                        c.for_loop(var, iter, body, s.span)
                    })
                });
                self.release_held(held);
                self.loop_depth -= 1;
            }
            StmtKind::Break => self.loop_jump(true),
            StmtKind::Continue => self.loop_jump(false),
            StmtKind::Try {
                body,
                handlers,
                orelse,
                finalbody,
                level,
            } => self.try_stmt(body, handlers, orelse, finalbody, *level),
            StmtKind::Raise { exc, handler_level } => {
                self.raise_stmt(exc.as_ref(), *handler_level, s.span)
            }
            StmtKind::Pass | StmtKind::Global(_) | StmtKind::Nonlocal(_) => {}
            StmtKind::Return(e) => self.return_stmt(e.as_ref()),
            StmtKind::Del(target) => self.del_stmt(target, s.span),
            StmtKind::FunctionDef { func, target } => {
                let v = self.function_value(*func, s.span);
                self.store_name(target, v, s.span);
            }
            StmtKind::ClassDef {
                name,
                target,
                base,
                methods,
                attrs,
            } => self.class_def(name, target, base.as_deref(), methods, attrs, s.span),
            StmtKind::With { kind, body } => self.with_block(kind, body, s.span),
        }
    }

    /// `targets = value` (each target assigned in turn, the value held in a temporary).
    fn assign_stmt(&mut self, targets: &[Target], value: &Expr, span: Span) {
        if let [Target::Name(n)] = targets {
            if self.unboxed_assign(n, value) {
                return;
            }
        }
        // `a, b = x, y`: no tuple is made (it could not be observed); the items are
        // evaluated into temporaries, then stored, as Python orders it.
        if let ([Target::Tuple(ts, None)], ExprKind::Tuple(items)) = (targets, &value.kind) {
            if ts.len() == items.len() {
                let (mark, _, _) = self.eval_into_temps(items);
                self.assign_items(ts, mark, span);
                self.pop_temps(mark);
                return;
            }
        }
        let v = self.expr(value);
        if targets.len() == 1 {
            self.assign(&targets[0], v, span);
        } else {
            let mark = self.temp_mark();
            let t = self.push_temp(v);
            for target in targets {
                let v = self.load_slot(t);
                self.assign(target, v, span);
            }
            self.pop_temps(mark);
        }
    }

    /// `if cond: body else: orelse`. A local is assigned after it when every branch that
    /// falls through assigns it.
    fn if_stmt(&mut self, cond: &Expr, body: &[Stmt], orelse: &[Stmt]) {
        let tb = self.b.create_block();
        let eb = self.b.create_block();
        let done = self.b.create_block();
        let (start, first_new) = (self.b.current_block(), self.b.func.dfg.num_blocks());
        self.branch_cond(cond, tb, eb);
        let before = self.assigned.clone();
        // The branches keep the condition's barrier region (see `enter_branch_target`).
        self.enter_branch_target(tb, start, first_new);
        self.stmts(body);
        // A branch that does not fall through does not constrain what follows.
        let after_body = (!self.is_filled()).then(|| self.assigned.clone());
        if after_body.is_some() {
            self.b.ins().jump(done, &[]);
        }
        self.assigned = before.clone();
        self.enter_branch_target(eb, start, first_new);
        self.stmts(orelse);
        let after_else = (!self.is_filled()).then(|| self.assigned.clone());
        if after_else.is_some() {
            self.b.ins().jump(done, &[]);
        }
        self.assigned = match (after_body, after_else) {
            (Some(a), Some(b)) => a.iter().zip(&b).map(|(x, y)| *x && *y).collect(),
            (Some(a), None) => a,
            (None, Some(b)) => b,
            (None, None) => before,
        };
        self.b.switch_to_block(done);
    }

    /// A loop (`emit`) and its `else` block: the block runs where the loop ends without
    /// `break` (the builder is at the loop's exit after `emit`); `break` jumps past it.
    fn loop_with_else(&mut self, orelse: &[Stmt], emit: impl FnOnce(&mut Self)) {
        if orelse.is_empty() {
            return emit(self);
        }
        let past = self.b.create_block();
        self.break_past_else = Some(past);
        emit(self);
        let untaken = self.break_past_else.take();
        debug_assert!(untaken.is_none(), "the loop's body takes it");
        let before = self.assigned.clone();
        self.stmts(orelse);
        if !self.is_filled() {
            self.b.ins().jump(past, &[]);
        }
        // A `break` skips the `else` block: what it assigns is not assigned after the loop.
        self.assigned = before;
        self.b.switch_to_block(past);
    }

    /// `while cond: body`, with a poll at the back-edge.
    fn while_loop(&mut self, cond: &Expr, body: &[Stmt], span: Span) {
        if self.int_while(cond, body, span) || self.float_while(cond, body, span) {
            return;
        }
        let exit = self.b.create_block();
        let (head, body_b, latch) = self.fast_head(cond, body);
        self.branch_cond(cond, body_b, exit);
        self.b.switch_to_block(body_b);
        self.loop_body(body, latch, exit, |_| {});
        self.poll(span);
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(exit);
    }

    /// `return e`: leaves the open `with` blocks and jumps to the epilogue.
    fn return_stmt(&mut self, e: Option<&Expr>) {
        let v = match e {
            Some(e) => self.expr(e),
            None => self.b.ins().iconst(I64, 0),
        };
        self.return_value(v);
    }

    /// `del o[i]` or `del o[lo:hi]`.
    fn del_stmt(&mut self, target: &Target, span: Span) {
        match target {
            Target::Index { obj, index } => {
                let (o, i) = self.operands(obj, index);
                self.call_checked(Helper::DelItem, &[self.ctx, o, i], span);
            }
            Target::Slice { obj, lo, hi } => {
                let mark = self.temp_mark();
                let o = self.expr(obj);
                let ot = self.push_temp(o);
                let l = self.opt_expr(lo.as_deref());
                let lt = self.push_temp(l);
                let h = self.opt_expr(hi.as_deref());
                let o = self.load_slot(ot);
                let l = self.load_slot(lt);
                let u = self.b.ins().iconst(I64, UNBOUND as i64);
                self.call_checked(Helper::SetSlice, &[self.ctx, o, l, h, u], span);
                self.pop_temps(mark);
            }
            // The parser accepts only index and slice targets.
            _ => {}
        }
    }

    /// A class statement: the base and the class attributes' values evaluated into
    /// temporaries, the statement registered (`ClassDef`), `stmjit_make_class`.
    fn class_def(
        &mut self,
        name: &str,
        target: &Name,
        base: Option<&Expr>,
        methods: &[(String, usize)],
        attrs: &[(String, Expr)],
        span: Span,
    ) {
        let mark = self.temp_mark();
        let (bv, bspan) = match base {
            Some(b) => (self.expr(b), b.span),
            None => (self.b.ins().iconst(I64, UNBOUND as i64), span),
        };
        let bt = self.push_temp(bv);
        // Many attributes are evaluated by parts, as the items of a display.
        let values: Vec<&Expr> = attrs.iter().map(|(_, e)| e).collect();
        let (first, _, _) = self.eval_refs_into_temps(&values);
        // Methods with default values are made now, and passed as attributes after the
        // others.
        let program = self.sh.program;
        let (plain, made): (Vec<_>, Vec<_>) = methods
            .iter()
            .partition(|(_, f)| program.functions[*f].defaults.is_empty());
        for (_, f) in &made {
            let v = self.function_value(*f, span);
            self.push_temp(v);
        }
        let def = {
            let names = self.sh.names;
            let methods: Vec<(u32, usize)> =
                plain.iter().map(|(n, f)| (names.intern(n), *f)).collect();
            let attrs: Vec<u32> = attrs
                .iter()
                .map(|(n, _)| n)
                .chain(made.iter().map(|(n, _)| n))
                .map(|n| names.intern(n))
                .collect();
            self.sh.code.add_classdef(stmjit_vm::ClassDef {
                name: name.to_string(),
                methods,
                attrs,
            })
        };
        let d = self.b.ins().iconst(I64, def as i64);
        let bv = self.load_slot(bt);
        let p = self.slot_addr(first);
        let c = self.call_checked(Helper::MakeClass, &[self.ctx, d, bv, p], bspan);
        self.pop_temps(mark);
        self.store_name(target, c, span);
    }

    /// The function object a `def` or `lambda` of `func` makes: in the module body, for a
    /// function without default values or free variables, the program's constant one
    /// if the `def` is outside the module's loops (it runs once: calls through its global
    /// can then be direct);
    /// else a new one each time, as CPython (`mk() is mk()` is False for a `def` inside
    /// `mk`), holding the default values (evaluated now) and the cells (this function's
    /// slots) if any.
    pub(super) fn function_value(&mut self, func: usize, span: Span) -> Value {
        let program = self.sh.program;
        let f = &program.functions[func];
        let in_module = self.func_idx as usize == program.functions.len();
        let runs_once = in_module && !program.defined_in_module_loop[func];
        if f.defaults.is_empty() && f.nfree == 0 && runs_once {
            let w = self.sh.consts.func_objs[func] as i64;
            return self.b.ins().iconst(I64, w);
        }
        let (mark, _, _) = self.eval_into_temps(&f.defaults);
        for &slot in &f.closure {
            let cell = self.load_slot(slot);
            self.push_temp(cell);
        }
        let p = self.slot_addr(mark);
        let n = self
            .b
            .ins()
            .iconst(I64, (f.defaults.len() + f.nfree) as i64);
        let fid = self.b.ins().iconst(I64, func as i64);
        let r = self.call_checked(Helper::MakeFunction, &[self.ctx, fid, p, n], span);
        self.pop_temps(mark);
        r
    }

    /// At function entry: each cell variable's slot gets a new cell holding its value (a
    /// parameter's) or empty.
    pub(super) fn make_cells(&mut self, cells: &[usize], span: Span) {
        for &c in cells {
            let v = self.load_slot(c);
            let cell = self.call_checked(Helper::NewCell, &[self.ctx, v], span);
            self.store_slot(c, cell);
            self.assigned[c] = true;
        }
    }

    /// `with atomic:` or `with lock:`: the block is (part of) one transaction.
    fn with_block(&mut self, kind: &WithKind, body: &[Stmt], span: Span) {
        if self.with_depth == 0 {
            // A possible boundary right before the block: threads spawned just
            // before it start (spawn asks for one), so a `join` in the block can
            // wait for them as under a GIL.
            self.poll(span);
        }
        if let WithKind::Lock(e) = kind {
            let v = self.expr(e);
            self.call_checked(Helper::WithLock, &[self.ctx, v], e.span);
        }
        // The block is (part of) one transaction: no boundary until it is left.
        self.add_atomic_depth(1);
        self.with_depth += 1;
        self.stmts(body);
        self.with_depth -= 1;
        if !self.is_filled() {
            self.add_atomic_depth(-1);
        }
    }

    /// The new value of `n` in `n OP= value`, computed as the generic code does.
    pub(crate) fn aug_name_value(
        &mut self,
        n: &Name,
        op: BinOp,
        value: &Expr,
        span: Span,
    ) -> Value {
        let target = Expr {
            kind: ExprKind::Name(n.clone()),
            span: n.span,
        };
        let (cur, rhs) = self.operands(&target, value);
        self.binop(op, cur, rhs, span, true)
    }

    /// The new value in `t OP= value` of a target `t` (not a name) whose current value is in
    /// temporary `ct`: a float tree where it is one ([`Self::float_aug_slot`]).
    fn aug_slot_value(&mut self, ct: usize, op: BinOp, value: &Expr, span: Span) -> Value {
        if let Some(whole) = self.float_aug_tree(op, value, span) {
            return self.float_aug(ct, None, &whole, false).0;
        }
        let rhs = self.expr(value);
        let cur = self.load_slot(ct);
        self.binop(op, cur, rhs, span, true)
    }

    fn aug_assign(&mut self, target: &Target, op: BinOp, value: &Expr, span: Span) {
        match target {
            Target::Name(n) => {
                if self.unboxed_aug(n, op, value, span) {
                    return;
                }
                let new = self.aug_name_value(n, op, value, span);
                self.store_name(n, new, span);
            }
            Target::Index { obj, index } => {
                let mark = self.temp_mark();
                let (o, i) = self.operands(obj, index);
                let ot = self.push_temp(o);
                let it = self.push_temp(i);
                let cur = self.index(o, i, obj.span);
                let ct = self.push_temp(cur);
                let new = self.aug_slot_value(ct, op, value, span);
                let o = self.load_slot(ot);
                let i = self.load_slot(it);
                self.set_index(o, i, new, span);
                self.pop_temps(mark);
            }
            Target::Slice { obj, lo, hi } => {
                let mark = self.temp_mark();
                let o = self.expr(obj);
                let ot = self.push_temp(o);
                let l = self.opt_expr(lo.as_deref());
                let lt = self.push_temp(l);
                let h = self.opt_expr(hi.as_deref());
                let ht = self.push_temp(h);
                let o = self.load_slot(ot);
                let l = self.load_slot(lt);
                let cur = self.call_checked(Helper::GetSlice, &[self.ctx, o, l, h], span);
                let ct = self.push_temp(cur);
                let new = self.aug_slot_value(ct, op, value, span);
                let o = self.load_slot(ot);
                let l = self.load_slot(lt);
                let h = self.load_slot(ht);
                self.call_checked(Helper::SetSlice, &[self.ctx, o, l, h, new], span);
                self.pop_temps(mark);
            }
            Target::Attr { obj, name } => {
                let mark = self.temp_mark();
                let o = self.expr(obj);
                let ot = self.push_temp(o);
                // A float tree reads and stores the attribute raw (`attrs.rs`), for a name
                // whose slots may hold raw floats (`raw_slots.rs`) only.
                let tree = match self.may_be_raw(name) {
                    true => self.float_aug_tree(op, value, span),
                    false => None,
                };
                let (cur, read) = match tree {
                    Some(_) => {
                        let r = self.getattr_raw(o, name, obj.span);
                        (r.word, Some(r))
                    }
                    None => (self.getattr(o, name, obj.span), None),
                };
                let ct = self.push_temp(cur);
                let new = match &tree {
                    Some(whole) => self.float_aug(ct, read.map(|r| r.f), whole, true),
                    None => {
                        let w = self.aug_slot_value(ct, op, value, span);
                        (w, w)
                    }
                };
                // A local holding the object is read again rather than the temporary (the
                // right-hand side cannot rebind it): the store then knows the local, and the
                // region's barriers of `self.n += 1` are not repeated.
                let o = match &obj.kind {
                    // (Not one kept unboxed: reading it could allocate, with `new` live.)
                    ExprKind::Name(n) if matches!(n.slot, Slot::Local(i) if self.float_var(i).is_none()) => {
                        self.load_name(n, obj.span)
                    }
                    _ => self.load_slot(ot),
                };
                match read {
                    Some(r) => self.setattr_raw(o, name, new.0, new.1, r.slot, span),
                    None => self.setattr(o, name, new.0, span),
                }
                self.pop_temps(mark);
            }
            // The parser rejects `a, b += ...`.
            Target::Tuple(..) => {}
        }
    }

    fn for_loop(&mut self, var: &Name, iter: &Expr, body: &[Stmt], span: Span) {
        let mark = self.temp_mark();
        // `for v in range(a[, b[, STEP]])` with a constant step: a counted loop.
        if let ExprKind::Call { func, args } = &iter.kind {
            let is_range = matches!(&func.kind, ExprKind::Name(n)
                if n.slot == Slot::Builtin(Builtin::Range)
                    || (n.slot == Slot::Unresolved && &*n.name == "range"));
            let step = match args.get(2).map(|e| &e.kind) {
                None => Some(1),
                Some(ExprKind::Int(s)) if *s != 0 => Some(*s),
                Some(ExprKind::Unary(UnaryOp::Neg, e)) => match e.kind {
                    ExprKind::Int(s) if s != 0 => Some(-s),
                    _ => None,
                },
                _ => None,
            };
            if let (true, true, Some(step)) = (is_range, (1..=3).contains(&args.len()), step) {
                let (start, stop) = if args.len() == 1 {
                    let int_zero = self.b.ins().iconst(I64, TAGGED_ZERO as i64);
                    (int_zero, self.expr(&args[0]))
                } else {
                    self.operands(&args[0], &args[1])
                };
                self.range_loop(var, (start, stop), args, step, body, (span, iter.span));
                self.pop_temps(mark);
                return;
            }
        }
        let v = self.expr(iter);
        let exit = self.b.create_block();
        self.iterate(var, v, body, span, iter.span, exit);
        self.b.switch_to_block(exit);
        self.pop_temps(mark);
    }

    /// `for var in range(start, stop[, step])` with a constant `step`: a counted loop over
    /// tagged ints when both bounds are ints, else (range() raises, or accepts bools or big
    /// ints) the range object made and iterated. One body for both, entered with the item:
    /// a frame slot holds the iterator in the second mode (`NONE` in the first), and the
    /// latch, after the poll, takes the next item the way the mode says. (A body per mode
    /// made 2^n copies of the innermost body of n nested loops: 8 in nbody's `advance`.)
    /// An innermost loop that computes with its variable is versioned instead
    /// (`range_loops.rs`).
    fn range_loop(
        &mut self,
        var: &Name,
        (start, stop): (Value, Value),
        args: &[Expr],
        step: i64,
        body: &[Stmt],
        (span, iter_span): (Span, Span),
    ) {
        let st = self.push_temp(start);
        let et = self.push_temp(stop);
        if self.range_versioned(var, (st, et), args, step, body, (span, iter_span)) {
            return;
        }
        let both = self.b.ins().band(start, stop);
        let bit = self.b.ins().band_imm(both, 1);
        let generic = self.b.create_block();
        let head = self.b.create_block();
        let next_item = self.b.create_block();
        let body_b = self.b.create_block();
        self.b.append_block_param(body_b, I64);
        let latch = self.b.create_block();
        let exit = self.b.create_block();
        let none = self.b.ins().iconst(I64, stmjit_vm::abi::NONE as i64);
        let mode = self.push_temp(none);
        let int_zero = self.b.ins().iconst(I64, TAGGED_ZERO as i64);
        let idx = self.push_temp(int_zero);
        self.b.ins().brif(bit, head, &[], generic, &[]);
        // Counted: the next tagged int, while below the end.
        self.b.switch_to_block(head);
        let cur = self.load_slot(st);
        let end = self.load_slot(et);
        let go = self.range_continues(step, cur, end);
        self.b.ins().brif(go, body_b, &[cur.into()], exit, &[]);
        // Generic: build the range object and iterate it.
        self.b.switch_to_block(generic);
        let r = self.range_object(args, (st, et), iter_span);
        let it = self.call_checked(Helper::Iter, &[self.ctx, r], iter_span);
        self.store_slot(mode, it);
        self.b.ins().jump(next_item, &[]);
        self.b.switch_to_block(next_item);
        let (x, done) = self.iter_next(mode, idx, iter_span);
        self.b.ins().brif(done, exit, &[], body_b, &[x.into()]);
        // The body, once.
        self.b.switch_to_block(body_b);
        self.local_of.clear();
        let x = self.b.block_params(body_b)[0];
        self.expect_loop_classes(None, body);
        self.loop_body(body, latch, exit, |c| c.store_name(var, x, span));
        // The poll first: its restart point must find everything in slots.
        self.poll(span);
        let m = self.load_slot(mode);
        let counted = self.b.create_block();
        let iterated = self.b.create_block();
        self.b.ins().brif(m, iterated, &[], counted, &[]);
        self.b.switch_to_block(counted);
        let cur = self.load_slot(st);
        let delta = self.b.ins().iconst(I64, step.wrapping_mul(2));
        let (next, of) = self.b.ins().sadd_overflow(cur, delta);
        self.store_slot(st, next);
        self.b.ins().brif(of, exit, &[], head, &[]);
        self.b.set_cold_block(iterated);
        self.b.switch_to_block(iterated);
        let i = self.load_slot(idx);
        let i = self.b.ins().iadd_imm(i, 2);
        self.store_slot(idx, i);
        self.b.ins().jump(next_item, &[]);
        self.b.switch_to_block(exit);
    }

    /// Whether a counted range loop goes on with the tagged int `cur` (below `end` for a
    /// positive `step`, above it for a negative one): tagging keeps the order of ints.
    pub(super) fn range_continues(&mut self, step: i64, cur: Value, end: Value) -> Value {
        let cc = if step > 0 {
            IntCC::SignedLessThan
        } else {
            IntCC::SignedGreaterThan
        };
        self.b.ins().icmp(cc, cur, end)
    }

    /// The range object of `range(*args)` (a constant step), its bounds' words in the
    /// temporaries `st` and `et`: made by the builtin, which raises where range() does.
    pub(super) fn range_object(
        &mut self,
        args: &[Expr],
        (st, et): (usize, usize),
        iter_span: Span,
    ) -> Value {
        let first = self.temp_mark();
        let argv = if args.len() == 1 {
            vec![et]
        } else {
            vec![st, et]
        };
        for t in argv {
            let v = self.load_slot(t);
            self.push_temp(v);
        }
        if let Some(s) = args.get(2) {
            let v = self.expr(s);
            self.push_temp(v);
        }
        let k = Builtin::ALL
            .iter()
            .position(|x| *x == Builtin::Range)
            .unwrap() as i64;
        let k = self.b.ins().iconst(I64, k);
        let p = self.slot_addr(first);
        let n = self.b.ins().iconst(I64, args.len() as i64);
        let r = self.call_checked(Helper::Builtin, &[self.ctx, k, p, n], iter_span);
        self.pop_temps(first);
        r
    }

    /// The generic `for` loop over the value `v`; ends by jumping to `exit`.
    pub(super) fn iterate(
        &mut self,
        var: &Name,
        v: Value,
        body: &[Stmt],
        span: Span,
        iter_span: Span,
        exit: cranelift_codegen::ir::Block,
    ) {
        let it = self.iter_of(v, iter_span);
        let itt = self.push_temp(it);
        // Its list is marked once, not at each item (see "Marks held around loops").
        let held = self.hold_temp(itt, iter_span);
        let int_zero = self.b.ins().iconst(I64, TAGGED_ZERO as i64);
        let idx = self.push_temp(int_zero);
        let head = self.b.create_block();
        let body_b = self.b.create_block();
        let latch = self.b.create_block();
        self.b.ins().jump(head, &[]);
        self.b.switch_to_block(head);
        let (x, end) = self.iter_next(itt, idx, iter_span);
        self.b.ins().brif(end, exit, &[], body_b, &[]);
        self.b.switch_to_block(body_b);
        self.expect_loop_classes(None, body);
        self.loop_body(body, latch, exit, |c| c.store_name(var, x, span));
        let i = self.load_slot(idx);
        let i = self.b.ins().iadd_imm(i, 2);
        self.store_slot(idx, i);
        self.poll(span);
        self.b.ins().jump(head, &[]);
        self.release_held(held);
    }

    /// The iterator of a `for` loop over `v`: a list is its own (as `stmjit_iter` answers),
    /// tested inline; anything else through the helper. Why: the helper call (and the spill
    /// and reload of the locals around it) cost more than the rest of a short loop's start.
    fn iter_of(&mut self, v: Value, iter_span: Span) -> Value {
        let done = self.b.create_block();
        self.b.append_block_param(done, I64);
        let other = self.b.create_block();
        self.expect_type(v, self.sh.types.list.0, other);
        self.b.ins().jump(done, &[v.into()]);
        self.b.switch_to_block(other);
        let it = self.call_checked(Helper::Iter, &[self.ctx, v], iter_span);
        self.b.ins().jump(done, &[it.into()]);
        self.b.switch_to_block(done);
        self.b.block_params(done)[0]
    }

    /// The item of the iterator in slot `itt` at the index in slot `idx` (`UNBOUND` past
    /// its end), and whether it is past the end.
    fn iter_next(&mut self, itt: usize, idx: usize, iter_span: Span) -> (Value, Value) {
        let it = self.load_slot(itt);
        if self.held.contains(&itt) {
            self.held_values.push(it);
        }
        let i = self.load_slot(idx);
        let x = self.iter_item(it, i, iter_span);
        let end = self.b.ins().icmp_imm(IntCC::Equal, x, UNBOUND as i64);
        (x, end)
    }

    /// `Ctx::atomic_depth += delta`, inline.
    fn add_atomic_depth(&mut self, delta: i64) {
        use stmjit_vm::Ctx;
        let off = std::mem::offset_of!(Ctx, atomic_depth) as i32;
        let d = self.b.ins().load(I64, super::mf(), self.ctx, off);
        let d = self.b.ins().iadd_imm(d, delta);
        self.b.ins().store(super::mf(), d, self.ctx, off);
    }

    /// Leaving `n` `with` blocks by `break`, `continue` or `return`.
    pub(crate) fn leave_with_blocks(&mut self, n: usize) {
        if n > 0 {
            self.add_atomic_depth(-(n as i64));
        }
    }
}
