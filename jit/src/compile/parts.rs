//! A huge module body compiled as parts.
//!
//! Code generation needs memory in proportion to the function it compiles (10 to 40 KB of
//! Cranelift memory per node of its statements and expressions, [`super::weight`]), all of
//! it at once: a module body of 100 000 statements would need about 10 GB. So a module body
//! of more than [`MODULE_SPLIT_ABOVE`] nodes is cut between top-level statements into parts
//! of about [`MODULE_PART`] nodes, each compiled (and its compile memory freed) on its own
//! as a function of the context alone, like `<module>`; `<module>` then calls them in order.
//! The module body has no locals (its names are globals), its `try`, `with`, loop and `def`
//! statements are whole inside one part, and a part's sites name `<module>`, so a part
//! behaves as the statements it holds did: an error or an abort unwinds out of it as out of
//! any call, and `<module>` passes it on with no trace entry of its own
//! (`stmjit_propagate`), so that tracebacks are unchanged.
//!
//! A huge function body (more than [`FN_SPLIT_ABOVE`] nodes) is cut the same way, but
//! its parts share its locals: each part is a function `(ctx, frame) -> NONE | ERR` of the
//! function's frame. The function keeps its locals in frame slots (never in SSA variables),
//! so a part reads and writes them where the function would; its own temporaries go above
//! them, the shadow stack's top set past them by the part's prologue (the function has no
//! temporary live across the call, and sets its own top back after it). A part is a frame
//! to transactions (its prologue and epilogue move `Ctx::depth`): a poll in it makes it the
//! opener, whose restart copies back the whole frame, the function's locals included, and a
//! return from it is a boundary. `return v` in a part stores `v` in a slot after the locals
//! ([`fn_part_locals`]; a part that reaches its end stores `UNBOUND`), where the GC updates
//! it, and the function returns it. The locals definitely assigned at the end of a part are
//! those at the start of the next.
//!
//! A display (or argument list) of more than [`ITEMS_SPLIT_ABOVE`] items (or
//! [`ITEMS_SPLIT_WEIGHT`] nodes) is evaluated by parts of at most [`ITEMS_PART`] items the
//! same way ([`FnCompiler::items_part`]), compiled while the function is (each freed before
//! the next): a part writes its items into temporaries of the function's frame that the
//! function reserved (the slots below them stay live, and covered by the part's top), then
//! the function makes the display from them as usual (the attribute values of a class
//! statement too).
//!
//! A block of more than [`BLOCK_SPLIT_ABOVE`] nodes (the body of an `if`, `else`, `while`,
//! `for`, `try`, `with`, `except` or `finally`, or a part's statements) is cut the same way
//! where it is ([`FnCompiler::stmts`]), its parts sharing the frame and its return slot; a
//! `break` or `continue` of the loop around a part returns a loop word from it, on which
//! its caller breaks or continues (`loop_exits.rs`); a `return` where the function has
//! no return slot stays in the code around it (the statement holding it is compiled in
//! place, its own blocks cut again). So is a chain of binary operators
//! (`chains.rs`). Their code counts in their function's in `--stats`. Inside `try`, `with`
//! and `except`, a part runs in the context of the code around it: its errors reach the
//! handlers around it, its `return` runs the `finally` bodies and leaves the `with` blocks
//! (`escapes.rs`).

use super::weight::{any_stmt, expr_weight, weight};
use super::{BodyFacts, FnCompiler, FrameKind, Shape};
use cranelift_codegen::ir::{self, condcodes::IntCC, types::I64, InstBuilder, Value};
use cranelift_module::{FuncId, Module};

use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use stmjit_lang::ast::{Expr, Stmt, StmtKind};
use stmjit_lang::diag::Span;

use stmjit_vm::abi::Helper;
use stmjit_vm::{ERR, RESTART, UNBOUND};

/// A module body of more nodes than this ([`super::weight`]: statements and expressions,
/// those in nested blocks included) is compiled as parts.
pub const MODULE_SPLIT_ABOVE: usize = 4096;

/// The nodes of a part, about (a top-level statement is never cut, so one larger than this
/// is a part of its own).
pub const MODULE_PART: usize = 1024;

/// How many times its nodes a statement holding a loop counts towards a part's size: a part
/// with a loop gets the optimizing tier ([`has_loop`]), whose memory per node is several
/// times the quick tier's (a part of 1 024 nodes of `for` loops took about 100 MB: 2 500
/// such loops in a module body peaked at 121 MB of RSS), so such parts are smaller.
pub const LOOP_WEIGHT: usize = 4;

/// The ranges of top-level statements of `body` to compile as parts: one (all of it) unless
/// it has more than `split_above` nodes, else consecutive ranges of `part` nodes or more
/// (the last one may be smaller), a statement of `part` nodes or more alone in its range
/// (the nodes of a statement holding a loop count [`LOOP_WEIGHT`] times).
pub fn split_body(body: &[Stmt], split_above: usize, part: usize) -> Vec<Range<usize>> {
    split_weighted(body, split_above, part, LOOP_WEIGHT)
}

/// The ranges of top-level statements of a huge function's body ([`is_huge`]) to compile
/// as parts: as [`split_body`], of [`FN_PART`] nodes, a statement holding a loop counting
/// [`FN_LOOP_WEIGHT`] times its nodes.
pub fn split_fn_body(body: &[Stmt]) -> Vec<Range<usize>> {
    split_weighted(body, FN_SPLIT_ABOVE, FN_PART, FN_LOOP_WEIGHT)
}

/// [`split_body`], a statement holding a loop counting `loop_weight` times its nodes.
fn split_weighted(
    body: &[Stmt],
    split_above: usize,
    part: usize,
    loop_weight: usize,
) -> Vec<Range<usize>> {
    if weight(body, split_above) <= split_above {
        let whole = 0..body.len();
        return vec![whole];
    }
    let mut parts = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, s) in body.iter().enumerate() {
        let one = std::slice::from_ref(s);
        let w = weight(one, part) * if has_loop(one) { loop_weight } else { 1 };
        if w >= part && start < i {
            parts.push(start..i);
            (start, size) = (i, 0);
        }
        size += w;
        if size >= part {
            parts.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    if start < body.len() {
        parts.push(start..body.len());
    }
    parts
}

/// Whether a function body is compiled as parts: more than [`FN_SPLIT_ABOVE`] nodes.
pub fn is_huge(body: &[Stmt]) -> bool {
    weight(body, FN_SPLIT_ABOVE) > FN_SPLIT_ABOVE
}

/// A function body of more nodes than this is compiled as parts.
pub const FN_SPLIT_ABOVE: usize = 4096;

/// The nodes of a part of a function body (or of a block in one), about (as
/// [`MODULE_PART`]). A function's parts stay for the run, so those without loops get the
/// compact tier (`Jit::compile_code_compact`), whose register allocator's time and memory
/// grow faster than a part (its liveness sets are blocks times values): at 1 024 nodes, a
/// part of calls took about 60 MB to compile, at 256 about 20 MB.
pub const FN_PART: usize = 256;

/// As [`LOOP_WEIGHT`], for the parts of a function body: a part with a loop gets the
/// optimizing tier, whose memory per node is about the compact tier's.
pub const FN_LOOP_WEIGHT: usize = 1;

/// A block (the body of an `if`, `else`, `while`, `for`, `try`, `with`, `except` or
/// `finally`) of more nodes than this is compiled as parts where it is
/// ([`FnCompiler::stmts`]); never less than [`FN_SPLIT_ABOVE`], so that only huge functions,
/// which have a return slot, have such parts.
pub const BLOCK_SPLIT_ABOVE: usize = 4096;

/// The nodes of a part of a block, about.
pub const BLOCK_PART: usize = 1024;

/// Items (of a display, or arguments) evaluated by parts when more than this, or more
/// than [`ITEMS_SPLIT_WEIGHT`] nodes ([`split_items`]).
pub const ITEMS_SPLIT_ABOVE: usize = 512;

/// The items each such part evaluates, at most.
pub const ITEMS_PART: usize = 256;

/// Items of more nodes than this are evaluated by parts.
pub const ITEMS_SPLIT_WEIGHT: usize = 4096;

/// The nodes of the items of such a part, about (an item larger than this is a part of
/// its own).
pub const ITEMS_PART_WEIGHT: usize = 1024;

/// Parts of displays and blocks made so far in this process (their names must differ).
static ITEM_PARTS: AtomicUsize = AtomicUsize::new(0);

/// The locals of the code of a function of `nlocals` locals compiled as parts: its own,
/// then the slot a part stores a returned value in.
pub fn fn_part_locals(nlocals: usize) -> usize {
    nlocals + 1
}

/// Whether `body` holds a loop (at any depth, not in the functions and classes it defines):
/// a part without one runs once (per call), and is compiled with the quick tier (the compact
/// one in a function, whose parts' code stays for the run).
pub fn has_loop(body: &[Stmt]) -> bool {
    any_stmt(body, false, &|k| {
        matches!(k, StmtKind::While { .. } | StmtKind::For { .. })
    })
}

/// Whether `body` has a `break` or `continue` of a loop around it: as a part, it returns
/// a loop word for them (`loop_exits.rs`).
fn breaks_out(body: &[Stmt]) -> bool {
    any_stmt(body, false, &|k| {
        matches!(k, StmtKind::Break | StmtKind::Continue)
    })
}

/// Whether `body` has a `return` (at any depth).
fn returns(body: &[Stmt]) -> bool {
    any_stmt(body, true, &|k| matches!(k, StmtKind::Return(_)))
}

/// The ranges of `items` (more than [`ITEMS_SPLIT_ABOVE`], or of more than
/// [`ITEMS_SPLIT_WEIGHT`] nodes) to evaluate by parts: at most [`ITEMS_PART`] items and
/// about [`ITEMS_PART_WEIGHT`] nodes each; `None` for items evaluated in place.
pub(crate) fn split_items(items: &[&Expr]) -> Option<Vec<Range<usize>>> {
    let many = items.len() > ITEMS_SPLIT_ABOVE;
    if !many
        && items
            .iter()
            .map(|e| expr_weight(e, ITEMS_SPLIT_WEIGHT))
            .sum::<usize>()
            <= ITEMS_SPLIT_WEIGHT
    {
        return None;
    }
    let mut parts = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (i, e) in items.iter().enumerate() {
        size += expr_weight(e, ITEMS_PART_WEIGHT);
        if size >= ITEMS_PART_WEIGHT || i + 1 - start == ITEMS_PART {
            parts.push(start..i + 1);
            (start, size) = (i + 1, 0);
        }
    }
    if start < items.len() {
        parts.push(start..items.len());
    }
    Some(parts)
}

/// The shape of a `<module>` whose body is in parts: no parameters, locals or statements of
/// its own (it calls the parts).
fn module_shape(func_idx: u32) -> Shape<'static> {
    Shape {
        arity: 0,
        nlocals: 0,
        body: &[],
        emitted: &[],
        cells: &[],
        func_idx,
        frame: FrameKind::Own,
        assigned: None,
        temps: 0,
        outer: None,
        facts: None,
    }
}

impl<'a, 'b> FnCompiler<'a, 'b> {
    /// Compiles into `func` the `<module>` of a body compiled as `parts` (functions of the
    /// context, in order): it calls each in turn.
    pub fn compile_parts(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut super::Shared<'a>,
        parts: &[FuncId],
        func_idx: u32,
    ) {
        let shape = module_shape(func_idx);
        Self::compile_with(func, fbc, sh, shape, |c| {
            for &part in parts {
                c.call_part(part);
            }
        });
    }

    /// Compiles into `func` the `<module>` of a body run by parts compiled as they are
    /// reached (`spans`: where each part begins): before each part but the first, a
    /// boundary whose restart point is there ([`Self::part_boundary`]), then the part's
    /// code from the compiler (`stmjit_module_part`, which frees the code of the part
    /// before), and a call of it.
    pub fn compile_lazy_parts(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut super::Shared<'a>,
        spans: &[Span],
        func_idx: u32,
    ) {
        let shape = module_shape(func_idx);
        Self::compile_with(func, fbc, sh, shape, |c| {
            for (k, &span) in spans.iter().enumerate() {
                if k > 0 {
                    c.part_boundary(span);
                }
                let kv = c.b.ins().iconst(I64, k as i64);
                let code = c.call_checked(Helper::ModulePart, &[c.ctx, kv], span);
                let sig = c.jit_signature(1);
                // As any call of a JIT function: the callee keeps r15 right.
                // A part may make boundaries restarting in `<module>`: the region ends.
                c.region.marks.clear();
                c.spill_locals();
                let inst = c.b.ins().call_indirect(sig, code, &[c.ctx]);
                let r = c.b.inst_results(inst)[0];
                c.reload_read_version(inst);
                c.reload_locals();
                c.propagate(r);
            }
        });
    }

    /// Compiles into `func` part `stmts` of the body `whole` of function `func_idx` (of
    /// `nlocals` locals, its return slot last: [`fn_part_locals`]; `facts` those of
    /// `whole`), a function `(ctx, frame) -> NONE | ERR` of the function's frame (see the
    /// module docs), given the locals definitely assigned at its start; returns those
    /// assigned at its end.
    #[allow(clippy::too_many_arguments)]
    pub fn compile_fn_part(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut super::Shared<'a>,
        nlocals: usize,
        (whole, facts): (&[Stmt], &BodyFacts),
        stmts: &[Stmt],
        assigned: Vec<bool>,
        func_idx: u32,
    ) -> Vec<bool> {
        let shape = Shape {
            arity: 0,
            nlocals,
            body: whole,
            emitted: stmts,
            cells: &[],
            func_idx,
            frame: FrameKind::Borrowed {
                ret: Some(nlocals - 1),
                zero_from: nlocals,
            },
            assigned: Some(assigned),
            temps: 0,
            outer: None,
            facts: Some(facts.clone()),
        };
        Self::compile_with(func, fbc, sh, shape, |c| c.stmts(stmts))
    }

    /// Compiles into `func` function `func_idx` (`arity` entry words, `nlocals` locals with
    /// its return slot last, body `whole` of facts `facts`, cell variables `cells`) whose
    /// body is compiled as `parts` ([`FnCompiler::compile_fn_part`]): it makes its frame and
    /// cells, calls each part with its frame, and returns what a part returned, or `None`
    /// after the last.
    #[allow(clippy::too_many_arguments)]
    pub fn compile_fn_parts(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut super::Shared<'a>,
        arity: usize,
        nlocals: usize,
        (whole, facts): (&[Stmt], &BodyFacts),
        cells: &[usize],
        parts: &[FuncId],
        func_idx: u32,
    ) {
        let shape = Shape {
            arity,
            nlocals,
            body: whole,
            emitted: &[],
            cells,
            func_idx,
            frame: FrameKind::Own,
            assigned: None,
            temps: 0,
            outer: None,
            facts: Some(facts.clone()),
        };
        Self::compile_with(func, fbc, sh, shape, |c| {
            for &part in parts {
                c.call_fn_part(part, nlocals - 1, false);
            }
        });
    }

    /// Calls the part `id` of the function's body with the frame ([`Self::call_borrowing`];
    /// its `break` and `continue` taken when `exits`); a value it returned (slot `ret` not
    /// `UNBOUND`) is returned from here ([`Self::return_value`]: through the `finally`
    /// bodies and `with` blocks around the call).
    pub(crate) fn call_fn_part(&mut self, id: FuncId, ret: usize, exits: bool) {
        self.call_borrowing_exits(id, exits);
        let v = self.load_slot(ret);
        let returned = self.b.ins().icmp_imm(IntCC::NotEqual, v, UNBOUND as i64);
        let (next, ret_here) = (self.b.create_block(), self.b.create_block());
        self.b.ins().brif(returned, ret_here, &[], next, &[]);
        self.b.switch_to_block(ret_here);
        self.return_value(v);
        self.b.switch_to_block(next);
    }

    /// Whether this is (a part of) the module body, not of a function.
    fn in_module(&self) -> bool {
        self.sh
            .program
            .functions
            .get(self.func_idx as usize)
            .is_none()
    }

    /// Whether code here may be compiled as parts ([`Self::items_part`],
    /// [`Self::stmts_part`]): not in the generic path of a float tree, nor under more
    /// `try` regions than an escape word names (`escapes.rs`).
    pub(crate) fn parts_allowed(&self) -> bool {
        self.tries.len() < super::escapes::MAX_REGIONS && !self.in_float_generic
    }

    /// Evaluates `items` into the temporaries from `start` on (reserved by the caller, who
    /// keeps the ones below live) by a part sharing this frame, compiled now into the code
    /// space (the quick tier: it runs once per evaluation of the display), its compile
    /// memory freed before this function goes on.
    pub(crate) fn items_part(&mut self, items: &[&Expr], start: usize) {
        let line = self.line;
        let temps = start + items.len() - self.nlocals;
        let part = self.borrowed_part("items", &[], None, start, temps, |c| {
            c.at_line(line);
            for (i, e) in items.iter().enumerate() {
                let v = c.expr(e);
                c.store_slot(start + i, v);
            }
        });
        if let Some((id, _)) = part {
            self.call_borrowing(id);
        }
    }

    /// Compiles a block of statements here: as parts of about [`BLOCK_PART`] nodes
    /// ([`FN_PART`] in a function; [`Self::stmts_part`]) when it has more than [`BLOCK_SPLIT_ABOVE`] and parts are
    /// allowed here, except the statements that cannot be one (a `return` where the
    /// function has no return slot) and a huge
    /// `if`, `while`, `for`, `try` or `with` alone in its range, compiled in place with its
    /// own blocks cut the same way.
    pub(crate) fn stmts(&mut self, body: &[Stmt]) {
        if !self.parts_allowed() {
            return self.stmts_in_place(body);
        }
        let ranges = if self.in_module() {
            split_body(body, BLOCK_SPLIT_ABOVE, BLOCK_PART)
        } else {
            split_weighted(body, BLOCK_SPLIT_ABOVE, FN_PART, FN_LOOP_WEIGHT)
        };
        if ranges.len() <= 1 {
            return self.stmts_in_place(body);
        }
        for r in ranges {
            let stmts = &body[r];
            let block = matches!(
                stmts,
                [Stmt {
                    kind: StmtKind::If { .. }
                        | StmtKind::While { .. }
                        | StmtKind::For { .. }
                        | StmtKind::Try { .. }
                        | StmtKind::With { .. },
                    ..
                }]
            );
            if block || (self.ret_slot.is_none() && returns(stmts)) {
                self.stmts_in_place(stmts);
            } else {
                if self.is_filled() {
                    self.dead_block();
                }
                self.stmts_part(stmts);
            }
        }
    }

    /// Compiles `stmts` as a part sharing this frame, compiled now (unless it loops, the
    /// quick tier in the module body, the compact one in a function), and calls it; a `return` in it returns from here.
    fn stmts_part(&mut self, stmts: &[Stmt]) {
        let ret = self.ret_slot;
        let start = self.temp_mark();
        let temps = self.temps;
        let exits = breaks_out(stmts);
        let part = self.borrowed_part("block", stmts, ret, start, temps, |c| {
            if exits {
                c.part_loop_exits(|c| c.stmts_in_place(stmts));
            } else {
                c.stmts_in_place(stmts);
            }
        });
        let Some((id, assigned)) = part else {
            return;
        };
        match ret {
            Some(ret) if returns(stmts) => self.call_fn_part(id, ret, exits),
            _ => self.call_borrowing_exits(id, exits),
        }
        self.assigned = assigned;
    }

    /// Compiles a part of this function (`what` in its name) sharing its frame, made by
    /// `emit` from `body` (for the analyses of its code: `try` regions, float locals), its
    /// `return` storing into slot `ret`, its temporaries from `start` on zeroed, `temps`
    /// in use at its entry. Its code is defined now, its compile memory freed; returns it
    /// and the locals definitely assigned at its end, or `None` after recording a failure.
    /// Its code size counts in the function's (`Shared::parts_code`).
    pub(crate) fn borrowed_part(
        &mut self,
        what: &str,
        body: &[Stmt],
        ret: Option<usize>,
        start: usize,
        temps: usize,
        emit: impl for<'x> FnOnce(&mut FnCompiler<'a, 'x>),
    ) -> Option<(FuncId, Vec<bool>)> {
        let id = self.declare_part(what)?;
        let assigned = self.assigned.clone();
        let assigned = self.define_part(id, body, ret, start, temps, assigned, emit)?;
        Some((id, assigned))
    }

    /// Declares a part of this function (`what` in its name; names must differ), or
    /// `None` after recording a failure.
    pub(crate) fn declare_part(&mut self, what: &str) -> Option<FuncId> {
        let sig = self.sh.jit.signature(&[I64, I64], &[I64]);
        let n = ITEM_PARTS.fetch_add(1, Ordering::Relaxed);
        let name = match self.sh.program.functions.get(self.func_idx as usize) {
            Some(f) => format!("f{}_{}#{what}{n}", self.func_idx, f.qualname),
            None => format!("<module>#{what}{n}"),
        };
        match self.sh.jit.declare(&name, &sig) {
            Ok(id) => Some(id),
            Err(e) => {
                self.sh.failed.get_or_insert(e);
                None
            }
        }
    }

    /// Defines `id` as [`Self::borrowed_part`] does, the locals `assigned` definitely
    /// assigned at its start; then, unless it is compiled inside another part, the parts
    /// deferred meanwhile (`chains.rs`), each compiled after the code calling it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn define_part(
        &mut self,
        id: FuncId,
        body: &[Stmt],
        ret: Option<usize>,
        start: usize,
        temps: usize,
        assigned: Vec<bool>,
        emit: impl for<'x> FnOnce(&mut FnCompiler<'a, 'x>),
    ) -> Option<Vec<bool>> {
        let sig = self.sh.jit.signature(&[I64, I64], &[I64]);
        let mut func = self.sh.jit.new_function(id, sig);
        self.sh.parts_open += 1;
        let assigned = {
            let mut fbc = cranelift_frontend::FunctionBuilderContext::new();
            let shape = Shape {
                arity: 0,
                nlocals: self.nlocals,
                body,
                emitted: body,
                cells: &[],
                func_idx: self.func_idx,
                frame: FrameKind::Borrowed {
                    ret,
                    zero_from: start,
                },
                assigned: Some(assigned),
                temps,
                outer: Some(self.outer()),
                facts: None,
            };
            Self::compile_with(&mut func, &mut fbc, &mut *self.sh, shape, emit)
        };
        self.sh.parts_open -= 1;
        if self.sh.verify {
            crate::program::verify(self.sh.jit, &func);
        }
        // A part of an expression is compiled with the optimizer: the parts of huge
        // expressions are most of the code of sources made of them, and the single-pass
        // register allocator's code was about 2.4 times as large (it keeps every value in a
        // stack slot), so that their code, not their compile memory, bounded the memory of
        // such sources (a comparison of 100 000 operands: 75 MB of code, 33 MB optimized).
        // A block's part in a function gets the compact tier: its code stays for the run.
        // In the module body it runs once, and goes with its part of the body.
        let code = if has_loop(body) || body.is_empty() {
            self.sh.jit.compile_code(id, func)
        } else if self.in_module() {
            self.sh.jit.compile_code_quick(id, func)
        } else {
            self.sh.jit.compile_code_compact(id, func)
        };
        match code {
            Ok(size) => self.sh.parts_code += size,
            Err(e) => {
                self.sh.failed.get_or_insert(e);
                return None;
            }
        }
        if self.sh.parts_open == 0 {
            self.define_deferred();
        }
        Some(assigned)
    }

    /// Calls `id`, a part of this function sharing its frame, with the frame; sets the shadow
    /// stack's top back to this frame's; its error unwinds on (or restarts, in the opener).
    pub(crate) fn call_borrowing(&mut self, id: FuncId) {
        self.call_borrowing_exits(id, false);
    }

    /// As [`Self::call_borrowing`], then, when `exits`, the part's `break` and `continue`
    /// run here (`loop_exits.rs`).
    fn call_borrowing_exits(&mut self, id: FuncId, exits: bool) {
        let f = self.sh.jit.module().declare_func_in_func(id, self.b.func);
        // As `call_part`.
        self.b.func.dfg.ext_funcs[f].colocated = false;
        // The part reads the locals in their slots: none unboxed.
        self.box_all_unboxed();
        // The part assigns this frame's locals and may restart in it: the region ends.
        self.region.marks.clear();
        self.spill_locals();
        let frame = self.frame();
        let inst = self.b.ins().call(f, &[self.ctx, frame]);
        let r = self.b.inst_results(inst)[0];
        self.reload_read_version(inst);
        // The part set the top past its own temporaries: this frame's again.
        self.reset_top();
        self.reload_locals();
        // It may have begun a transaction restarting here (`barriers.rs`).
        self.remark_held(self.stmt_span, false);
        if exits {
            self.take_loop_words(r);
        }
        self.propagate(r);
    }

    /// On an error path with no handler in this frame (`stmjit_propagate`): to the restart
    /// dispatch when this frame opened the aborted transaction, else on in a new block.
    pub(crate) fn restart_if_opener(&mut self) {
        let e = self.call(Helper::Propagate, &[self.ctx]);
        let restart = self.b.ins().icmp_imm(IntCC::Equal, e, RESTART as i64);
        let dispatch = self.dispatch_block();
        let go = self.b.create_block();
        self.b.ins().brif(restart, dispatch, &[], go, &[]);
        self.b.switch_to_block(go);
    }

    /// Calls the part `id` of the module body; its error unwinds on.
    fn call_part(&mut self, id: FuncId) {
        let f = self.sh.jit.module().declare_func_in_func(id, self.b.func);
        // cranelift-jit may place functions more than 2 GiB apart: call through an absolute
        // address.
        self.b.func.dfg.ext_funcs[f].colocated = false;
        // As any call of a JIT function: the callee keeps r15 right. A part may make
        // boundaries restarting in `<module>`: the region ends.
        self.region.marks.clear();
        self.spill_locals();
        let inst = self.b.ins().call(f, &[self.ctx]);
        let r = self.b.inst_results(inst)[0];
        self.reload_read_version(inst);
        self.reload_locals();
        self.propagate(r);
    }

    /// After a call of a part: an escape word goes to its `try` handler (`escapes.rs`);
    /// `r == ERR` unwinds (or restarts, in the frame that opened an
    /// aborted transaction) with no trace entry.
    fn propagate(&mut self, r: Value) {
        let err = self.b.create_block();
        let ok = self.b.create_block();
        self.take_escapes(r, err, ok);
        self.b.set_cold_block(err);
        self.b.switch_to_block(err);
        self.restart_if_opener();
        let errv = self.b.ins().iconst(I64, ERR as i64);
        self.b.ins().jump(self.ret_block, &[errv.into()]);
        self.b.switch_to_block(ok);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use stmjit_lang::ast::ExprKind;

    fn body(src: &str) -> Vec<Stmt> {
        stmjit_lang::parse(src).expect("parses").body
    }

    /// A body at or under the limit is one part; above it, the parts cover every top-level
    /// statement once, in order, each of at least `part` nodes but the last and those before
    /// a statement of `part` nodes or more, which is never cut and is alone in its part.
    #[test]
    fn parts_cover_the_body_in_order() {
        // `x = 1`: 3 nodes.
        let small = body(&"x = 1\n".repeat(40));
        assert_eq!(split_body(&small, 120, 24), vec![0..40]);
        let mut src = "x = 1\n".repeat(50);
        // One statement of 154 nodes (a loop of 30 statements).
        src.push_str("for i in range(3):\n");
        src.push_str(&"    x = x + i\n".repeat(30));
        src.push_str(&"y = 2\n".repeat(25));
        let big = body(&src);
        assert_eq!(big.len(), 76);
        let parts = split_body(&big, 120, 24);
        let mut next = 0;
        for (k, r) in parts.iter().enumerate() {
            assert_eq!(r.start, next, "{parts:?}");
            assert!(r.end > r.start, "{parts:?}");
            let n = weight(&big[r.clone()], usize::MAX);
            // Smaller: the last, or one that a statement of a part or more ends.
            let ended = parts
                .get(k + 1)
                .is_some_and(|p| p.len() == 1 && weight(&big[p.clone()], usize::MAX) >= 24);
            assert!(n >= 24 || k + 1 == parts.len() || ended, "{parts:?}");
            next = r.end;
        }
        assert_eq!(next, big.len());
        // The loop is a part of its own (it is larger than a part).
        assert!(parts.contains(&(50..51)), "{parts:?}");
        assert!(has_loop(&big[50..51]) && !has_loop(&big[..50]));
        assert!(is_huge(&body(&"x = 1\n".repeat(1400))));
        assert!(!is_huge(&body(&"x = 1\n".repeat(1300))));
    }

    /// A statement holding a loop counts `LOOP_WEIGHT` times its nodes: a body of `while`
    /// loops is cut into parts several times smaller than one of `if` statements of the
    /// same nodes.
    #[test]
    fn parts_of_loops_are_smaller() {
        let loops = body(&"while x < 3:\n    x = x + 1\n".repeat(40));
        let plain = body(&"if x < 3:\n    x = x + 1\n".repeat(40));
        assert_eq!(weight(&loops, usize::MAX), weight(&plain, usize::MAX));
        let (l, p) = (split_body(&loops, 120, 48), split_body(&plain, 120, 48));
        assert!(l.len() > 2 * p.len(), "{l:?} {p:?}");
        assert_eq!(l.last().map(|r| r.end), Some(40));
    }

    /// Many items, or items of many nodes, are evaluated by parts of at most `ITEMS_PART`
    /// items and about `ITEMS_PART_WEIGHT` nodes, covering them in order.
    #[test]
    fn items_are_cut_by_count_and_by_nodes() {
        let parse = |src: &str| match body(src).remove(0).kind {
            StmtKind::Expr(Expr {
                kind: ExprKind::List(items),
                ..
            }) => items,
            _ => unreachable!(),
        };
        let few = parse("[a, b + 1, c]\n");
        assert!(split_items(&few.iter().collect::<Vec<_>>()).is_none());
        let many = parse(&format!("[{}]\n", vec!["a"; 1000].join(", ")));
        let refs: Vec<&Expr> = many.iter().collect();
        let parts = split_items(&refs).expect("by parts");
        assert_eq!(parts, vec![0..256, 256..512, 512..768, 768..1000]);
        // Three items of 2 001 nodes each: one part each.
        let chain = format!("a{}", " + a".repeat(1000));
        let heavy = parse(&format!("[{chain}, {chain}, {chain}]\n"));
        let refs: Vec<&Expr> = heavy.iter().collect();
        assert_eq!(
            split_items(&refs).expect("by parts"),
            vec![0..1, 1..2, 2..3]
        );
    }
}
