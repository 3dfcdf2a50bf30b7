//! `try` statements and `raise` (LANGUAGE.md, "Exceptions"; the object model's side is
//! `stmjit_vm::exceptions`).
//!
//! Inside a `try` body every error check (`check_site`) jumps to the statement's handler
//! block, passing the failing site, instead of returning `ERR`: the path that raises
//! nothing is the same code as without `try` (no setup at entry, no test). The handler
//! block puts the shadow stack's top and `Ctx::atomic_depth` back to what they are in this
//! frame at the `try` (a helper deep in the runtime may have left roots pushed; the `with`
//! blocks the exception left are left), then `stmjit_catch`: while an abort unwinds, it
//! says so and the frame returns `ERR` (or restarts, if it opened the transaction) with no
//! handler run. Otherwise the exception object goes into a temporary, the `except`
//! clauses test it in order, and one that does not match raises it again
//! (`stmjit_reraise`) from the same site. A `finally` body is compiled once, entered by
//! every way out of the statement with a word saying why (`finally.rs`).

use super::finally::{in_place, Entries, Exit, Finally};
use super::{mf, FnCompiler};
use cranelift_codegen::ir::{self, condcodes::IntCC, types::I64, Block, InstBuilder, Value};
use cranelift_frontend::Variable;
use std::mem::offset_of;
use stmjit_lang::ast::{Expr, Handler, Slot, Stmt, StmtKind};
use stmjit_lang::diag::Span;
use stmjit_runtime::value::TRUE;

use stmjit_vm::abi::Helper;
use stmjit_vm::{Ctx, ERR, RESTART, UNBOUND};

/// An active `try` region: where an exception raised in it goes.
#[derive(Clone, Copy)]
pub(crate) struct Region {
    /// A block taking the failing site.
    pub target: Block,
}

/// Whether `stmts` hold a `try` statement (at any depth).
pub(crate) fn has_try(stmts: &[Stmt]) -> bool {
    stmts.iter().any(|s| match &s.kind {
        StmtKind::Try { .. } => true,
        StmtKind::If { body, orelse, .. } => has_try(body) || has_try(orelse),
        StmtKind::While { body, orelse, .. } | StmtKind::For { body, orelse, .. } => {
            has_try(body) || has_try(orelse)
        }
        StmtKind::With { body, .. } => has_try(body),
        _ => false,
    })
}

impl FnCompiler<'_, '_> {
    /// At the start of a body with `try` statements: `Ctx::atomic_depth` at entry, kept in
    /// a temporary (tagged) for the handlers; less the `with` blocks open around a part
    /// (`escapes.rs`), so that it is the depth at its function's entry.
    pub(crate) fn setup_tries(&mut self) {
        let d = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, atomic_depth) as i32);
        let d = self.b.ins().iadd_imm(d, -(self.with_depth as i64));
        let t = self.b.ins().ishl_imm(d, 1);
        let t = self.b.ins().bor_imm(t, 1);
        self.entry_atomic = Some(self.push_temp(t));
    }

    /// Goes on unwinding from `site` (a value): into the innermost region, or out of the
    /// frame with a trace entry.
    fn unwind_to(&mut self, site: Value) {
        if let Some(r) = self.tries.last().copied() {
            self.b.ins().jump(r.target, &[site.into()]);
            return;
        }
        self.trace_and_leave(site);
    }

    /// Out of the frame: records a trace entry at `site` (a value), then goes back to the
    /// restart dispatch when the runtime says the transaction restarts, else returns `ERR`.
    pub(super) fn trace_and_leave(&mut self, site: Value) {
        let e = self.call(Helper::Trace, &[self.ctx, site]);
        let restart = self.b.ins().icmp_imm(IntCC::Equal, e, RESTART as i64);
        let dispatch = self.dispatch_block();
        let unwind = self.b.create_block();
        self.b.ins().brif(restart, dispatch, &[], unwind, &[]);
        self.b.set_cold_block(unwind);
        self.b.switch_to_block(unwind);
        let err = self.b.ins().iconst(I64, ERR as i64);
        self.b.ins().jump(self.ret_block, &[err.into()]);
    }

    /// The error path of a check inside a region: to its handler with `site`. False
    /// outside any region.
    pub(crate) fn error_to_region(&mut self, site: i64) -> bool {
        let Some(r) = self.tries.last().copied() else {
            return false;
        };
        let s = self.b.ins().iconst(I64, site);
        self.b.ins().jump(r.target, &[s.into()]);
        true
    }

    /// The key of the trace kept aside by the handler of the `try` at `level`.
    fn stash_key(&mut self, level: usize) -> Value {
        let f = self.frame();
        let k = self.b.ins().ishl_imm(f, 6);
        self.b.ins().bor_imm(k, level.min(63) as i64)
    }

    /// A handler's entry (see the module docs) in the current block: returns the slot of
    /// the exception object.
    fn catch(&mut self, site: Value, level: usize, with_depth: usize) -> usize {
        let obj = self.catch_value(site, level, with_depth, false);
        self.push_temp(obj)
    }

    /// A handler's entry in the current block: returns the exception object, in a new
    /// block (`cold`: laid out with the cold code, as the blocks on its way).
    pub(super) fn catch_value(
        &mut self,
        site: Value,
        level: usize,
        with_depth: usize,
        cold: bool,
    ) -> Value {
        self.region.marks.clear();
        self.local_of.clear();
        self.reset_top();
        let slot = self
            .entry_atomic
            .expect("a body with try has its entry depth");
        let d = self.load_slot(slot);
        let d = self.b.ins().sshr_imm(d, 1);
        let d = self.b.ins().iadd_imm(d, with_depth as i64);
        self.b
            .ins()
            .store(mf(), d, self.ctx, offset_of!(Ctx, atomic_depth) as i32);
        let key = self.stash_key(level);
        let r = self.call(Helper::Catch, &[self.ctx, site, key]);
        let restart = self.b.ins().icmp_imm(IntCC::Equal, r, RESTART as i64);
        let dispatch = self.dispatch_block();
        let not_restart = self.b.create_block();
        let go = self.b.create_block();
        if cold {
            self.b.set_cold_block(not_restart);
            self.b.set_cold_block(go);
        }
        self.b.ins().brif(restart, dispatch, &[], not_restart, &[]);
        self.b.switch_to_block(not_restart);
        let is_err = self.b.ins().icmp_imm(IntCC::Equal, r, ERR as i64);
        let err = self.b.ins().iconst(I64, ERR as i64);
        if cold {
            // Its own block: an edge block that Cranelift would split there is not cold.
            let out = self.b.create_block();
            self.b.set_cold_block(out);
            self.b.ins().brif(is_err, out, &[], go, &[]);
            self.b.switch_to_block(out);
            self.b.ins().jump(self.ret_block, &[err.into()]);
        } else {
            self.b
                .ins()
                .brif(is_err, self.ret_block, &[err.into()], go, &[]);
        }
        self.b.switch_to_block(go);
        r
    }

    /// Raises the exception in `obj_slot` again with the trace kept by the handler of
    /// `level`, and unwinds from `site`.
    pub(super) fn reraise(&mut self, obj_slot: usize, level: usize, site: Value) {
        let obj = self.load_slot(obj_slot);
        let key = self.stash_key(level);
        self.call(Helper::Reraise, &[self.ctx, obj, key]);
        self.unwind_to(site);
    }

    /// `try:` ... (see the module docs).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn try_stmt(
        &mut self,
        body: &[Stmt],
        handlers: &[Handler],
        orelse: &[Stmt],
        finalbody: &[Stmt],
        level: usize,
    ) {
        let before = self.assigned.clone();
        let with_depth = self.with_depth;
        let has_fin = !finalbody.is_empty();
        // With a `finally` not copied in place: its shared body's block, taking why it runs
        // (`finally.rs`).
        let word = has_fin && !in_place(finalbody);
        let normal_end = self.b.create_block();
        if word {
            self.b.append_block_param(normal_end, I64);
        }
        let site_block = |c: &mut Self| {
            let b = c.b.create_block();
            c.b.append_block_param(b, I64);
            c.b.set_cold_block(b);
            b
        };
        let fin_exc = has_fin.then(|| site_block(self));
        let dispatch = (!handlers.is_empty()).then(|| site_block(self));
        let fin_index = self.finallies.len();
        let exit = self.fin_exits.len();
        if has_fin {
            self.fin_exits.push([None; 3]);
            self.finallies.push(Finally {
                loops: self.loops.len(),
                with_depth,
                exit,
            });
        }
        let fin_region = fin_exc.map(|target| Region { target });
        // The body.
        let target = dispatch
            .or(fin_exc)
            .expect("a try has a handler or a finally");
        self.tries.push(Region { target });
        self.stmts(body);
        self.tries.pop();
        // `else`, inside `finally`'s region only.
        if !self.is_filled() {
            self.tries.extend(fin_region);
            self.stmts(orelse);
            if fin_region.is_some() {
                self.tries.pop();
            }
            if !self.is_filled() {
                self.jump_normal_end(normal_end, word);
            }
        }
        // The handlers.
        if let Some(d) = dispatch {
            self.b.switch_to_block(d);
            let site = self.b.block_params(d)[0];
            self.assigned = before.clone();
            let mark = self.temp_mark();
            let obj = self.catch(site, level, with_depth);
            self.tries.extend(fin_region);
            for h in handlers {
                self.handler(h, obj, level, normal_end, word);
            }
            // None matched: the same exception, from the same site.
            self.reraise(obj, level, site);
            if fin_region.is_some() {
                self.tries.pop();
            }
            self.pop_temps(mark);
        }
        match fin_exc {
            Some(exception) => {
                self.finallies.truncate(fin_index);
                let (body, normal) = if word {
                    (normal_end, None)
                } else {
                    let body = self.b.create_block();
                    self.b.append_block_param(body, I64);
                    (body, Some(normal_end))
                };
                let entries = Entries {
                    body,
                    normal,
                    exception,
                    exit,
                    level,
                    with_depth,
                };
                self.finally(entries, finalbody, &before);
            }
            None => {
                self.b.switch_to_block(normal_end);
                self.assigned = before;
            }
        }
    }

    /// The variable of the `except` clauses' class tests ([`FnCompiler::match_var`]): each
    /// clause defines it before its uses, so that one serves them all.
    fn match_var(&mut self) -> Variable {
        match self.match_var {
            Some(v) => v,
            None => {
                let v = self.b.declare_var(I64);
                self.match_var = Some(v);
                v
            }
        }
    }

    /// One `except` clause: tests the exception in `obj` against its classes, runs its body
    /// when one matches (jumping to `done` at its end, [`Self::jump_normal_end`]: with the
    /// normal word when `word`), and leaves the builder where the next clause's test goes.
    fn handler(&mut self, h: &Handler, obj: usize, level: usize, done: Block, word: bool) {
        let next = self.b.create_block();
        if !h.classes.is_empty() {
            // Every class is checked (`except (A, 5)` is a TypeError even for an `A`), as
            // CPython checks all the items of the tuple before it matches.
            let any = self.match_var();
            let zero = self.b.ins().iconst(I64, 0);
            self.b.def_var(any, zero);
            for c in &h.classes {
                let m = self.exc_match(c, obj);
                let is_true = self.b.ins().icmp_imm(IntCC::Equal, m, TRUE as i64);
                let is_true = self.b.ins().uextend(I64, is_true);
                let so_far = self.b.use_var(any);
                let so_far = self.b.ins().bor(so_far, is_true);
                self.b.def_var(any, so_far);
            }
            let matched = self.b.create_block();
            let m = self.b.use_var(any);
            self.b.ins().brif(m, matched, &[], next, &[]);
            self.b.switch_to_block(matched);
        }
        let before = self.assigned.clone();
        if let Some(n) = &h.name {
            let v = self.load_slot(obj);
            self.store_name(n, v, h.span);
        }
        self.handling.push((level, obj));
        self.stmts(&h.body);
        self.handling.pop();
        if !self.is_filled() {
            if let Some(n) = &h.name {
                // Unbound when the clause ends, as in Python (`UNBOUND` empties a cell).
                let u = self.b.ins().iconst(I64, UNBOUND as i64);
                self.store_name(n, u, h.span);
                if let Slot::Local(i) = n.slot {
                    self.assigned[i] = false;
                }
            }
            self.jump_normal_end(done, word);
        }
        self.assigned = before;
        self.b.switch_to_block(next);
    }

    /// `except c:`: whether the exception in `obj` is an instance of `c`'s value.
    fn exc_match(&mut self, c: &Expr, obj: usize) -> Value {
        let v = self.expr(c);
        let o = self.load_slot(obj);
        self.call_checked(Helper::ExcMatch, &[self.ctx, o, v], c.span)
    }

    /// `raise e`, or a bare `raise` (of the `except` clause at `handler`, if any).
    pub(crate) fn raise_stmt(&mut self, e: Option<&Expr>, handler: Option<usize>, span: Span) {
        match (e, handler) {
            (Some(e), _) => {
                let v = self.expr(e);
                self.call_checked(Helper::Raise, &[self.ctx, v], span);
            }
            (None, Some(level)) => {
                let obj = self
                    .handling
                    .iter()
                    .rev()
                    .find(|(l, _)| *l == level)
                    .map(|&(_, o)| o)
                    .expect("a bare raise inside its except clause");
                let site = self.site(span);
                let s = self.b.ins().iconst(I64, site);
                self.reraise(obj, level, s);
            }
            (None, None) => {
                let u = self.b.ins().iconst(I64, UNBOUND as i64);
                self.call_checked(Helper::Raise, &[self.ctx, u], span);
            }
        }
        if !self.is_filled() {
            // Raising never returns normally: what follows is dead.
            let err = self.b.ins().iconst(I64, ERR as i64);
            self.b.ins().jump(self.ret_block, &[err.into()]);
        }
    }

    /// Returns `v` from here: through the shared return path of the innermost `try` with a
    /// `finally` of this code around (see the module docs) after leaving the `with` blocks
    /// opened inside it, or out of this code after leaving its own `with` blocks. Out of a
    /// part, the code calling it returns the value from there in turn, through its own
    /// `finally` bodies and `with` blocks ([`Self::call_fn_part`]), those of the code around
    /// the part (its `Outer`).
    pub(crate) fn return_value(&mut self, v: Value) {
        if let Some(f) = self.finallies.last() {
            let (with_depth, id) = (f.with_depth, f.exit);
            self.leave_with_blocks(self.with_depth - with_depth);
            let exit = self.exit_block(id, Exit::Return);
            self.b.ins().jump(exit, &[v.into()]);
            return;
        }
        self.leave_with_blocks(self.with_depth - self.outer_with);
        let ret = self.ret_block;
        self.b.ins().jump(ret, &[v.into()]);
    }

    /// The block of the shared path `kind` out of the `try` with a `finally` `id`, made the
    /// first time a way out needs it (a [`Exit::Return`] one takes the value).
    pub(crate) fn exit_block(&mut self, id: usize, kind: Exit) -> Block {
        if let Some(b) = self.fin_exits[id][kind as usize] {
            return b;
        }
        let b = self.b.create_block();
        if let Exit::Return = kind {
            self.b.append_block_param(b, I64);
        }
        self.fin_exits[id][kind as usize] = Some(b);
        b
    }

    /// Patches the handlers' shadow-stack tops once the frame size is known.
    pub(crate) fn patch_tops(&mut self) {
        let size = 8 * (self.nlocals + self.max_temps) as i64;
        for &inst in &self.top_fixups {
            self.b.func.dfg.insts[inst] = ir::InstructionData::UnaryImm {
                opcode: ir::Opcode::Iconst,
                imm: ir::immediates::Imm64::new(size),
            };
        }
    }
}
