//! AST → Cranelift IR for one function (or the module body).
#![allow(deprecated)]
//!
//! # Frames and roots
//! Every function pushes a frame on the thread's shadow stack (`Ctx::ss_top`) in its
//! prologue: one word per local, then one per temporary. Locals live there (loads/stores),
//! and so does every intermediate value that must survive the evaluation of another
//! sub-expression (the left operand of `a + f(x)`, the arguments of a call being built): it
//! is spilled to a temporary slot and reloaded after. So every reference live across a call
//! that may allocate is in the shadow stack, where a moving GC finds and updates it.
//!
//! # Errors
//! After every call that can raise, `r == ERR` branches to a cold block that records a trace
//! entry for the site (`stmjit_trace`) and returns `ERR` through the epilogue.
//!
//! # Barriers (inline)
//! Globals live in a card-marked array object; reads store the read marker of the global's
//! granule, writes test the array's write-barrier flag and the card marker before calling
//! the card slow path. List indexing with an int (`xs[i]`, `xs[i] = v`) is inlined with the
//! list's read marker, the element's own granule marker, and the card write barrier. Loop
//! back-edges poll `SegmentInfo::safe_point_request`.
//!
//! # Attribute and method-call sites
//! Every `o.name`, `o.name = v` and `o.name(args)` has a polymorphic cache of a few
//! `class id → slot` or `class id → function` entries (`rt::site_cache`), tested inline
//! (`sites.rs`). A method-call site hit calls the cached JIT function by its address with
//! the receiver and arguments in registers, like a direct call. Method-call entries follow
//! the class table's rules (`rt::class_table`): they are emptied when a class attribute is
//! assigned or a class shape grows, and not filled while such an assignment is in flight.
//! A call `f(args)` whose callee is not a known function has such a cache too, of classes:
//! a hit allocates the instance in one helper and calls the cached `__init__` directly.
//!
//! # Barrier elision: one read marker and one write-barrier test per object per region
//! A read marker holds the transaction's read version once stored, until the next
//! transaction boundary (commit + begin bumps the read version). So within a *region*, a
//! stretch of code that cannot cross a boundary, a second read barrier on the same object
//! is redundant. Regions are defined conservatively, so that they stay correct when
//! boundaries are added at loop back-edges, polls and calls (issue 6):
//! - a region is a chain of blocks, each the only successor entered from the previous one
//!   with no call in between ([`FnCompiler::follow`]); switching to any other block (a join,
//!   a loop header, the code after a poll) starts an empty region;
//! - every call (JIT function or runtime helper) empties it ([`FnCompiler::call`]): it may
//!   end the transaction, and a minor GC may move the objects (locals are reloaded);
//! - objects are identified by the local variable holding them (SSA values do not survive
//!   the joins, and a reload after a call defines new ones); assigning the local removes it.
//!
//! The write-barrier flag test of an instance's slots array (`o.name = v`,
//! [`FnCompiler::write_barrier`]) is elided the same way, by the local holding the instance
//! (which its attribute fast path has read-marked in the region). Once tested, the flag
//! stays clear in our segment until the transaction ends or a minor collection re-sets it
//! (on the objects the transaction promoted: `NEW_FLAG`, see `runtime/src/barrier.rs`), both
//! only in calls. Unlike a call, the test's own slow path (a `preserve_all` stub) does not
//! end the region: it makes no boundary and neither allocates, collects nor moves, so on
//! success it returns in the same transaction and segment, the read version, our markers
//! and locks as they were. A safe-point pause in it may let another segment commit, but not
//! a write to an object we read-marked or locked without dooming us (the stub then returns
//! an abort, which never rejoins): the instance still has the slots array tested.
//!
//! The inline fast paths (`o.name`, `o.name = v`, `o[i]`, int arithmetic and comparisons)
//! join their slow path, a helper call, at their end. To keep the region across that join,
//! the slow path *repairs* it after the call ([`FnCompiler::repair_region`]): it stores the
//! read marker again, with the read version current after the call and at the (possibly
//! moved) object's address, for every local the fast path had marked (if it holds a
//! reference), and redoes the flag test (and slow path) of the slots array of every local
//! whose write barrier the fast path had done (if it holds an instance with one: the call
//! may have collected), so the join's region is the fast path's. The repair is cold code
//! (`--dump-asm` labels it). Only object (header) markers and slots-array flag tests are
//! kept this way: list element granules are never elided (card-marked arrays mark per
//! granule, and the index differs), the read marker of an instance's slots array only
//! within one access chain, and card write barriers (globals, list items) are not elided
//! (their join ends the region).

mod expr;
mod floats;
mod lists;
mod sites;
mod stmt;

use crate::rt::abi::{Effects, Helper};
use crate::rt::objects::Types;
use crate::rt::{CodeTables, Constants, Ctx, Names, ERR, UNBOUND};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::I64, types::I8, Block, FuncRef, InstBuilder, SourceLoc, Value,
};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::{FuncId, Module};
use std::collections::HashMap;
use std::mem::offset_of;
use stmjit_lang::ast::Program;
use stmjit_lang::diag::Span;
use stmjit_runtime::ShadowStack;

/// Source location marks for `--dump-asm` annotations.
pub const LOC_POLL: u32 = 1;
/// Marks the write-barrier sequence of card-marked stores.
pub const LOC_CARD_WB: u32 = 2;
/// Marks the inline list-indexing fast path.
pub const LOC_LIST_FAST: u32 = 3;
/// Marks the inline instance-attribute fast path.
pub const LOC_ATTR_FAST: u32 = 4;
/// Marks the inline nursery allocation.
pub const LOC_ALLOC: u32 = 5;
/// Marks the read markers a slow path stores again, and the write-barrier flag tests it
/// redoes, to keep the region across its join (see "Barrier elision" above).
pub const LOC_REGION_REPAIR: u32 = 6;

/// What the compiler of one function needs from the program-level compiler.
pub struct Shared<'a> {
    /// The Cranelift module (helpers and functions declared in it).
    pub module: &'a mut cranelift_jit::JITModule,
    /// What JIT code calls for each helper: its import, or its `preserve_all` stub.
    pub helpers: &'a HashMap<Helper, FuncId>,
    /// Function ids of the program's functions.
    pub funcs: &'a [FuncId],
    /// The program.
    pub program: &'a Program,
    /// Its object types.
    pub types: Types,
    /// Interned names (the compiler interns the names its code passes to helpers).
    pub names: &'a mut Names,
    /// The program's literal objects.
    pub consts: &'a Constants,
    /// Trace sites, class statements, site caches, code addresses: filled as the code
    /// refers to them.
    pub code: &'a mut CodeTables,
    /// Program function id bound to each global by a module-level `def` (direct calls).
    pub def_of_global: &'a HashMap<usize, usize>,
    /// The segment layout (card marker displacement).
    pub card_disp: u64,
    /// The target's frontend configuration.
    pub frontend: cranelift_codegen::isa::TargetFrontendConfig,
    /// Read barriers are emitted (off with `--gil`: one transaction at a time).
    pub read_barriers: bool,
    /// Benchmarks only (`STMJIT_BENCH_OMIT=write-barrier`, see `benches/barriers.rs`): when
    /// false, instance-attribute stores skip the write-barrier flag test, so that the
    /// barrier's fast path can be timed against the same store without it. Unsound in
    /// general (a young reference stored into an old object is missed by the GC, a write
    /// to an old object is not recorded for commit); the benchmark stores ints only. The
    /// card barrier (globals, list items) is always emitted.
    pub write_barriers: bool,
    /// Benchmarks only (`STMJIT_BENCH_OMIT=poll`): when false, no safe-point poll is
    /// emitted (loop back-edges and function entries jump straight on), so that the poll
    /// can be timed against the same loop without it. Such code never ends its
    /// transaction nor answers a safe-point request.
    pub polls: bool,
}

/// Trap code of blocks that cannot be reached (the "no error" side of the error check
/// after `stmjit_aborted`, which always returns `ERR`).
const TRAP_UNREACHABLE: u8 = 1;

/// Compiler of one function body.
pub struct FnCompiler<'a, 'b> {
    pub(crate) b: FunctionBuilder<'b>,
    pub(crate) sh: &'b mut Shared<'a>,
    refs: HashMap<Helper, FuncRef>,
    direct: HashMap<usize, FuncRef>,
    pub(crate) ctx: Value,
    pub(crate) frame_var: Variable,
    /// One SSA variable per local: locals live in registers and are written to their
    /// frame slots only around calls (where the GC may scan and update them).
    pub(crate) local_vars: Vec<Variable>,
    /// Locals definitely assigned at the current point of compilation (their reads need no
    /// unbound check): parameters, then assignments in program order; branches intersect,
    /// loop bodies do not count after the loop.
    pub(crate) assigned: Vec<bool>,
    pub(crate) nlocals: usize,
    pub(crate) temps: usize,
    pub(crate) max_temps: usize,
    /// Enclosing loops: latch (`continue`), exit (`break`), and the `with` blocks open at
    /// the loop's start (those opened inside it are left by `break`/`continue`).
    pub(crate) loops: Vec<(Block, Block, usize)>,
    pub(crate) func_idx: u32,
    pub(crate) ret_block: Block,
    /// The barrier-elision region (see the module docs).
    pub(crate) region: Region,
    /// The local each value was loaded from, while the local still holds it (cleared at
    /// its assignment and at reloads).
    pub(crate) local_of: HashMap<Value, usize>,
    /// `with` blocks open at the current point (each holds `Ctx::atomic_depth` up by one).
    pub(crate) with_depth: usize,
    /// Restart points: the block each poll resumes at, by poll number.
    pub(crate) restarts: Vec<Block>,
    /// The restart dispatch block (created with the first error path).
    pub(crate) dispatch: Option<Block>,
    /// Compiling the generic path of an unboxed float tree (`floats.rs`): its subtrees are
    /// not made trees again.
    pub(crate) in_float_generic: bool,
    /// Locals the function assigns floats to (`floats.rs`), by slot.
    pub(crate) float_locals: Vec<bool>,
}

/// The barriers already done in the current region: the block the region is valid in (it
/// extends to single-entry successors), and the locals marked.
#[derive(Default)]
pub(crate) struct Region {
    block: Option<Block>,
    marks: Marks,
}

/// What a region has established, by the local holding each object (see the module docs).
#[derive(Clone, Default, Debug)]
pub(crate) struct Marks {
    /// Locals whose object's read marker is stored.
    read: Vec<usize>,
    /// Locals holding an instance whose slots array's write-barrier flag test is done (the
    /// flag is clear in our segment, or the slow path cleared it): a subset of `read`, since
    /// only an instance read in this transaction keeps its slots array while a write-barrier
    /// slow path pauses (another segment's commit changing it would doom us).
    written: Vec<usize>,
}

impl Marks {
    /// The region ends: nothing is known any more.
    fn clear(&mut self) {
        self.read.clear();
        self.written.clear();
    }

    /// Local `l` is assigned: it may hold another object now.
    fn forget(&mut self, l: usize) {
        self.read.retain(|&m| m != l);
        self.written.retain(|&m| m != l);
    }
}

/// Memory flags of shadow-stack and context accesses.
pub(crate) fn mf() -> ir::MemFlagsData {
    ir::MemFlagsData::trusted()
}

impl<'a, 'b> FnCompiler<'a, 'b> {
    /// Compiles `body` into `func`: `arity` parameters after the context, `locals` locals.
    #[allow(clippy::too_many_arguments)]
    pub fn compile(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut Shared<'a>,
        arity: usize,
        local_names: Vec<String>,
        body: &[stmjit_lang::ast::Stmt],
        func_idx: u32,
    ) {
        let b = FunctionBuilder::new(func, fbc);
        let nlocals = local_names.len();
        let _ = local_names;
        let mut c = FnCompiler {
            b,
            sh,
            refs: HashMap::new(),
            direct: HashMap::new(),
            ctx: Value::from_u32(0),
            frame_var: Variable::from_u32(0),
            local_vars: Vec::new(),
            assigned: (0..nlocals).map(|i| i < arity).collect(),
            nlocals,
            temps: 0,
            max_temps: 0,
            loops: Vec::new(),
            func_idx,
            ret_block: Block::from_u32(0),
            region: Region::default(),
            local_of: HashMap::new(),
            with_depth: 0,
            restarts: Vec::new(),
            dispatch: None,
            in_float_generic: false,
            float_locals: floats::float_locals(body, nlocals),
        };
        let entry = c.b.create_block();
        c.b.append_block_params_for_function_params(entry);
        let body_block = c.b.create_block();
        let ret = c.b.create_block();
        c.b.append_block_param(ret, I64);
        c.ret_block = ret;
        let params = c.b.block_params(entry).to_vec();
        c.ctx = params[0];
        c.frame_var = c.b.declare_var(I64);
        c.local_vars = (0..nlocals).map(|_| c.b.declare_var(I64)).collect();
        // Body first (the frame size is known only after it).
        c.b.switch_to_block(body_block);
        c.stmts(body);
        if !c.is_filled() {
            let none = c.b.ins().iconst(I64, 0);
            c.b.ins().jump(ret, &[none.into()]);
        }
        // Epilogue: a return from the frame that opened the transaction is a boundary (see
        // `rt::txn`); then pop the frame, decrement the depth.
        c.b.switch_to_block(ret);
        let rv = c.b.block_params(ret)[0];
        let pop = c.b.create_block();
        c.b.append_block_param(pop, I64);
        let check = c.b.create_block();
        let is_err = c.b.ins().icmp_imm(IntCC::Equal, rv, ERR as i64);
        c.b.ins().brif(is_err, pop, &[rv.into()], check, &[]);
        c.b.switch_to_block(check);
        let td =
            c.b.ins()
                .load(I64, mf(), c.ctx, offset_of!(Ctx, txn_depth) as i32);
        let d =
            c.b.ins()
                .load(I64, mf(), c.ctx, offset_of!(Ctx, depth) as i32);
        let opener = c.b.ins().icmp(IntCC::Equal, td, d);
        let boundary = c.b.create_block();
        c.b.ins().brif(opener, boundary, &[], pop, &[rv.into()]);
        c.b.set_cold_block(boundary);
        c.b.switch_to_block(boundary);
        // No spill: the locals are dead, and a restart restores the slots.
        let f = c.helper(Helper::ReturnBoundary);
        let inst = c.b.ins().call(f, &[c.ctx, rv]);
        let r = c.b.inst_results(inst)[0];
        c.reload_segment_base();
        let restart =
            c.b.ins()
                .icmp_imm(IntCC::Equal, r, crate::rt::RESTART as i64);
        let dispatch = c.dispatch_block();
        c.b.ins().brif(restart, dispatch, &[], pop, &[r.into()]);
        c.b.switch_to_block(pop);
        let rv = c.b.block_params(pop)[0];
        let frame = c.frame();
        let ss = c.b.ins().load(I64, mf(), c.ctx, offset_of!(Ctx, ss) as i32);
        c.b.ins()
            .store(mf(), frame, ss, offset_of!(ShadowStack, top) as i32);
        let depth =
            c.b.ins()
                .load(I64, mf(), c.ctx, offset_of!(Ctx, depth) as i32);
        let d0 = c.b.ins().iadd_imm(depth, -1);
        c.b.ins()
            .store(mf(), d0, c.ctx, offset_of!(Ctx, depth) as i32);
        c.b.ins().return_(&[rv]);
        // Prologue: depth check, frame push (slots initialised before `top` covers them).
        c.b.switch_to_block(entry);
        let depth =
            c.b.ins()
                .load(I64, mf(), c.ctx, offset_of!(Ctx, depth) as i32);
        let too_deep = c.b.ins().icmp_imm(
            IntCC::UnsignedGreaterThanOrEqual,
            depth,
            crate::rt::MAX_DEPTH as i64,
        );
        let deep_block = c.b.create_block();
        let ok_block = c.b.create_block();
        c.b.ins().brif(too_deep, deep_block, &[], ok_block, &[]);
        c.b.set_cold_block(deep_block);
        c.b.switch_to_block(deep_block);
        let r = c.call(Helper::RecursionError, &[c.ctx]);
        c.b.ins().return_(&[r]);
        c.b.switch_to_block(ok_block);
        let ss = c.b.ins().load(I64, mf(), c.ctx, offset_of!(Ctx, ss) as i32);
        let frame =
            c.b.ins()
                .load(I64, mf(), ss, offset_of!(ShadowStack, top) as i32);
        c.b.def_var(c.frame_var, frame);
        let nslots = (nlocals + c.max_temps) as i64;
        let top = c.b.ins().iadd_imm(frame, 8 * nslots);
        let limit =
            c.b.ins()
                .load(I64, mf(), ss, offset_of!(ShadowStack, limit) as i32);
        let over = c.b.ins().icmp(IntCC::UnsignedGreaterThan, top, limit);
        let over_block = c.b.create_block();
        let push_block = c.b.create_block();
        c.b.ins().brif(over, over_block, &[], push_block, &[]);
        c.b.set_cold_block(over_block);
        c.b.switch_to_block(over_block);
        let r = c.call(Helper::RecursionError, &[c.ctx]);
        c.b.ins().return_(&[r]);
        c.b.switch_to_block(push_block);
        let d1 = c.b.ins().iadd_imm(depth, 1);
        c.b.ins()
            .store(mf(), d1, c.ctx, offset_of!(Ctx, depth) as i32);
        for i in 0..nslots as usize {
            let v = if i < arity {
                params[1 + i]
            } else if i < nlocals {
                c.b.ins().iconst(I64, UNBOUND as i64)
            } else {
                c.b.ins().iconst(I64, 0)
            };
            c.b.ins().store(mf(), v, frame, 8 * i as i32);
            if i < nlocals {
                c.b.def_var(c.local_vars[i], v);
            }
        }
        c.b.ins()
            .store(mf(), top, ss, offset_of!(ShadowStack, top) as i32);
        // Function entry: a poll (calls count against the budget too), restarting at the body.
        let span = body.first().map(|s| s.span).unwrap_or_default();
        c.poll_to(span, body_block);
        c.build_restarts();
        c.b.seal_all_blocks();
        let fc = c.sh.frontend;
        c.b.finalize(fc);
        // The prologue was emitted last; make its block the entry (first in layout).
        let first = func.layout.entry_block().expect("non-empty function");
        if first != entry {
            func.layout.remove_block(entry);
            func.layout.insert_block(entry, first);
        }
    }

    /// The frame pointer (first slot of this call's shadow-stack frame).
    pub(crate) fn frame(&mut self) -> Value {
        self.b.use_var(self.frame_var)
    }

    /// Whether the current block already ends in a terminator.
    pub(crate) fn is_filled(&self) -> bool {
        let Some(block) = self.b.current_block() else {
            return true;
        };
        match self.b.func.layout.last_inst(block) {
            Some(inst) => self.b.func.dfg.insts[inst].opcode().is_terminator(),
            None => false,
        }
    }

    /// Starts a fresh (unreachable) block after a terminator, so that code after `break`,
    /// `return`... still has a block to go into.
    pub(crate) fn dead_block(&mut self) {
        let blk = self.b.create_block();
        self.b.switch_to_block(blk);
    }

    /// A reference to `helper` in this function.
    pub(crate) fn helper(&mut self, helper: Helper) -> FuncRef {
        if let Some(&r) = self.refs.get(&helper) {
            return r;
        }
        let id = self.sh.helpers[&helper];
        let r = self.sh.module.declare_func_in_func(id, self.b.func);
        self.refs.insert(helper, r);
        r
    }

    /// A reference to program function `fid` in this function.
    pub(crate) fn direct(&mut self, fid: usize) -> FuncRef {
        if let Some(&r) = self.direct.get(&fid) {
            return r;
        }
        let id = self.sh.funcs[fid];
        let r = self.sh.module.declare_func_in_func(id, self.b.func);
        // cranelift-jit may place functions more than 2 GiB apart: call through an
        // absolute address, not a 32-bit PC-relative one.
        self.b.func.dfg.ext_funcs[r].colocated = false;
        self.direct.insert(fid, r);
        r
    }

    /// Calls `helper` and returns its result. Around a helper that may move objects or end
    /// the transaction ([`Effects::MayMove`]) the locals are written to their slots and read
    /// back, with the segment base.
    pub(crate) fn call(&mut self, helper: Helper, args: &[Value]) -> Value {
        let f = self.helper(helper);
        // Any call may end the transaction or move objects: the region ends.
        self.region.marks.clear();
        let spill = helper.decl().effects == Effects::MayMove;
        if spill {
            self.spill_locals();
        }
        let inst = self.b.ins().call(f, args);
        let r = self.b.inst_results(inst)[0];
        if spill {
            self.reload_segment_base();
            self.reload_locals();
        }
        r
    }

    /// The slow path of a write barrier, in the current (cold) block, continuing at `done`:
    /// stores `args` (the object, and the card's offset) into the context
    /// (`Ctx::barrier_obj`, `barrier_off`), calls the `preserve_all` stub `stub` (see
    /// `Jit::define_preserve_all_stub`) with the context, reads its status
    /// (`Ctx::barrier_status`), and on an abort (non-zero) unwinds to the restart point.
    ///
    /// Why it is shaped so: nothing live at `done` may be live across a call that clobbers
    /// registers, or the register allocator keeps the fast path's values on the stack. The
    /// stub clobbers no register; it neither moves objects nor switches segments (an abort
    /// unwinds through the status), so no spill of the locals and no reload of r15. The
    /// abort side makes SystemV calls, so it never rejoins `done`: `stmjit_aborted` always
    /// returns `ERR`, so the error check always leaves (restart dispatch or unwind) and its
    /// "no error" side is unreachable: a trap.
    ///
    /// The stub returns to `done` in the same transaction (it makes no boundary), with
    /// nothing moved: whether the region goes on at `done` is the caller's choice (see
    /// "Barrier elision" in the module docs), so the region is left as it was.
    fn barrier_slow_path(&mut self, stub: Helper, args: &[Value], site: i64, done: Block) {
        let f = self.helper(stub);
        // Absolute call: cranelift-jit may place the stub more than 2 GiB away.
        self.b.func.dfg.ext_funcs[f].colocated = false;
        // The abort side's calls (which never rejoin `done`) must not end the caller's region.
        let region = std::mem::take(&mut self.region);
        // The arguments go through the context: the call fixes `rdi` only.
        let fields = [offset_of!(Ctx, barrier_obj), offset_of!(Ctx, barrier_off)];
        for (&v, off) in args.iter().zip(fields) {
            self.b.ins().store(mf(), v, self.ctx, off as i32);
        }
        self.b.ins().call(f, &[self.ctx]);
        let st = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, barrier_status) as i32);
        let aborted = self.b.ins().icmp_imm(IntCC::NotEqual, st, 0);
        let raise = self.b.create_block();
        self.b.ins().brif(aborted, raise, &[], done, &[]);
        self.b.set_cold_block(raise);
        self.b.switch_to_block(raise);
        let r = self.call(Helper::Aborted, &[self.ctx]);
        self.check_site(r, site);
        self.b
            .ins()
            .trap(ir::TrapCode::unwrap_user(TRAP_UNREACHABLE));
        self.region = region;
    }

    /// After a runtime call that may end the transaction: the next one may run in another
    /// segment, whose base the runtime left in `Ctx::seg_base` (and in `%gs`); r15 follows.
    /// (Calls of JIT functions need none: the callee keeps r15 right itself.)
    pub(crate) fn reload_segment_base(&mut self) {
        let base = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, seg_base) as i32);
        self.b.ins().set_pinned_reg(base);
    }

    /// Stores `site` as the operation in progress (`Ctx::site`): a conflict found in the
    /// following runtime call names it (`--stats`). A plain store: no segment access.
    pub(crate) fn set_site(&mut self, site: i64) {
        let v = self.b.ins().iconst(I64, site);
        self.b
            .ins()
            .store(mf(), v, self.ctx, offset_of!(Ctx, site) as i32);
    }

    /// The block an opener's error path jumps to when its transaction must restart
    /// (filled by [`Self::build_restarts`] once every poll is known).
    pub(crate) fn dispatch_block(&mut self) -> Block {
        if let Some(b) = self.dispatch {
            return b;
        }
        let b = self.b.create_block();
        self.b.set_cold_block(b);
        self.dispatch = Some(b);
        b
    }

    /// The restart dispatch: `Ctx::restart_point` selects the poll to resume at; its block
    /// copies the slots saved at the boundary back (`stmjit_restart`), reloads the locals
    /// and jumps there.
    fn build_restarts(&mut self) {
        let Some(dispatch) = self.dispatch else {
            return;
        };
        self.b.switch_to_block(dispatch);
        let targets = self.restarts.clone();
        let blocks: Vec<Block> = targets.iter().map(|_| self.b.create_block()).collect();
        let id = self
            .b
            .ins()
            .load(I64, mf(), self.ctx, offset_of!(Ctx, restart_point) as i32);
        let id32 = self.b.ins().ireduce(cranelift_codegen::ir::types::I32, id);
        let pool = &mut self.b.func.dfg.value_lists;
        let calls: Vec<ir::BlockCall> = blocks
            .iter()
            .map(|&b| ir::BlockCall::new(b, std::iter::empty(), pool))
            .collect();
        let jt = self
            .b
            .create_jump_table(ir::JumpTableData::new(calls[0], &calls));
        self.b.ins().br_table(id32, jt);
        let restart = self.helper(Helper::Restart);
        for (&blk, &target) in blocks.iter().zip(&targets) {
            self.b.set_cold_block(blk);
            self.b.switch_to_block(blk);
            let frame = self.frame();
            self.b.ins().call(restart, &[self.ctx, frame]);
            self.reload_segment_base();
            self.reload_locals();
            self.b.ins().jump(target, &[]);
        }
    }

    /// Writes every local to its frame slot (before a call that may move objects).
    pub(crate) fn spill_locals(&mut self) {
        // Before a call that may move objects (or end the transaction): the region ends.
        self.region.marks.clear();
        let f = self.frame();
        for i in 0..self.nlocals {
            let v = self.b.use_var(self.local_vars[i]);
            self.b.ins().store(mf(), v, f, 8 * i as i32);
        }
    }

    /// Reads every local back from its frame slot (after such a call: the GC may have
    /// updated it).
    pub(crate) fn reload_locals(&mut self) {
        self.local_of.clear();
        let f = self.frame();
        for i in 0..self.nlocals {
            let v = self.b.ins().load(I64, mf(), f, 8 * i as i32);
            self.b.def_var(self.local_vars[i], v);
        }
    }

    /// Registers a trace site.
    pub(crate) fn site(&mut self, span: Span) -> i64 {
        let site = crate::rt::Site {
            span,
            func: self.func_idx,
        };
        self.sh.code.add_site(site) as i64
    }

    /// After a call that may raise: `r == ERR` unwinds with a trace entry at `span`.
    pub(crate) fn check(&mut self, r: Value, span: Span) {
        let site = self.site(span);
        self.check_site(r, site);
    }

    /// [`Self::check`] with the trace site already registered.
    fn check_site(&mut self, r: Value, site: i64) {
        let is_err = self.b.ins().icmp_imm(IntCC::Equal, r, ERR as i64);
        let err = self.b.create_block();
        let ok = self.b.create_block();
        self.b.ins().brif(is_err, err, &[], ok, &[]);
        self.b.set_cold_block(err);
        self.b.switch_to_block(err);
        let s = self.b.ins().iconst(I64, site);
        let e = self.call(Helper::Trace, &[self.ctx, s]);
        let restart = self
            .b
            .ins()
            .icmp_imm(IntCC::Equal, e, crate::rt::RESTART as i64);
        let dispatch = self.dispatch_block();
        let unwind = self.b.create_block();
        self.b.ins().brif(restart, dispatch, &[], unwind, &[]);
        self.b.set_cold_block(unwind);
        self.b.switch_to_block(unwind);
        let err = self.b.ins().iconst(I64, ERR as i64);
        self.b.ins().jump(self.ret_block, &[err.into()]);
        self.b.switch_to_block(ok);
    }

    /// Calls `helper`, checks for an error at `span`, returns the result.
    pub(crate) fn call_checked(&mut self, helper: Helper, args: &[Value], span: Span) -> Value {
        let site = self.site(span);
        self.set_site(site);
        let r = self.call(helper, args);
        self.check_site(r, site);
        r
    }

    /// Allocates a temporary slot.
    pub(crate) fn push_temp(&mut self, v: Value) -> usize {
        let t = self.nlocals + self.temps;
        self.temps += 1;
        self.max_temps = self.max_temps.max(self.temps);
        let f = self.frame();
        self.b.ins().store(mf(), v, f, 8 * t as i32);
        t
    }

    /// Reloads a slot (local or temporary).
    pub(crate) fn load_slot(&mut self, slot: usize) -> Value {
        if slot < self.nlocals {
            let v = self.b.use_var(self.local_vars[slot]);
            self.local_of.insert(v, slot);
            return v;
        }
        let f = self.frame();
        self.b.ins().load(I64, mf(), f, 8 * slot as i32)
    }

    /// Stores a slot.
    pub(crate) fn store_slot(&mut self, slot: usize, v: Value) {
        if slot < self.nlocals {
            self.local_of.retain(|_, l| *l != slot);
            self.region.marks.forget(slot);
            self.b.def_var(self.local_vars[slot], v);
            return;
        }
        let f = self.frame();
        self.b.ins().store(mf(), v, f, 8 * slot as i32);
    }

    /// Frees the temporaries from `mark` on.
    pub(crate) fn pop_temps(&mut self, mark: usize) {
        self.temps = mark - self.nlocals;
    }

    /// The first free temporary slot (a mark for [`Self::pop_temps`]).
    pub(crate) fn temp_mark(&self) -> usize {
        self.nlocals + self.temps
    }

    /// Address of slot `slot` (for argument arrays).
    pub(crate) fn slot_addr(&mut self, slot: usize) -> Value {
        let f = self.frame();
        self.b.ins().iadd_imm(f, 8 * slot as i64)
    }

    // ----- segment accesses -----

    /// `iadd(get_pinned_reg, off)`: the address of segment byte `off` (fresh pinned read per
    /// access, as the `%gs` rewrite requires).
    pub(crate) fn seg_addr(&mut self, off: Value) -> Value {
        let base = self.b.ins().get_pinned_reg(I64);
        self.b.ins().iadd(base, off)
    }

    /// Whether the tagged word `v` is *not* a reference (an int, or an immediate below
    /// `IMMEDIATE_LIMIT`): the test every inline fast path makes before touching an object.
    pub(crate) fn is_not_ref(&mut self, v: Value) -> Value {
        use stmjit_runtime::value::{IMMEDIATE_LIMIT, INT_TAG};
        let low = self.b.ins().band_imm(v, INT_TAG as i64);
        let small = self
            .b
            .ins()
            .icmp_imm(IntCC::UnsignedLessThan, v, IMMEDIATE_LIMIT as i64);
        let low8 = self.b.ins().icmp_imm(IntCC::NotEqual, low, 0);
        self.b.ins().bor(low8, small)
    }

    /// Goes on in a new block, which extends the region ([`FnCompiler::follow`]), when
    /// `cond` is true; branches to `other` when it is false (a fast path's guard).
    pub(crate) fn only_if(&mut self, cond: Value, other: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(cond, next, &[], other, &[]);
        self.follow(next);
    }

    /// [`FnCompiler::only_if`] the other way round: goes on when `cond` is false.
    pub(crate) fn unless(&mut self, cond: Value, other: Block) {
        let next = self.b.create_block();
        self.b.ins().brif(cond, other, &[], next, &[]);
        self.follow(next);
    }

    /// Goes on only if `v` is an object of type `type_id`; branches to `other` otherwise.
    pub(crate) fn expect_type(&mut self, v: Value, type_id: u32, other: Block) {
        let t = self.has_type(v, type_id, other);
        self.only_if(t, other);
    }

    /// Branches to `other` unless `v` is a reference, then tests its header's type id against
    /// `type_id` (no read barrier: the type of an object never changes). Returns the test.
    pub(crate) fn has_type(&mut self, v: Value, type_id: u32, other: Block) -> Value {
        let not_ref = self.is_not_ref(v);
        self.unless(not_ref, other);
        let addr = self.seg_addr(v);
        let ty = self.b.ins().load(
            cranelift_codegen::ir::types::I32,
            mf(),
            addr,
            stmjit_vm::objects::TYPE_ID_OFFSET as i32,
        );
        self.b.ins().icmp_imm(IntCC::Equal, ty, type_id as i64)
    }

    /// The segment's read version (a byte of the segment-info page).
    pub(crate) fn read_version(&mut self) -> Value {
        let off = self.b.ins().iconst(
            I64,
            (stmjit_runtime::INFO_OFFSET
                + offset_of!(stmjit_runtime::SegmentInfo, read_version) as u64) as i64,
        );
        let a = self.seg_addr(off);
        self.b.ins().load(I8, ir::MemFlagsData::trusted(), a, 0)
    }

    /// Read barrier: `mov byte gs:[addr >> 4], rv`.
    pub(crate) fn read_barrier(&mut self, addr: Value) {
        if !self.sh.read_barriers {
            return;
        }
        let rv = self.read_version();
        let m = self
            .b
            .ins()
            .ushr_imm(addr, stmjit_runtime::MARKER_SHIFT as i64);
        let a = self.seg_addr(m);
        self.b.ins().store(ir::MemFlagsData::trusted(), rv, a, 0);
    }

    /// The region at the current block, started empty if it is not valid here.
    fn region_here(&mut self) {
        let cur = self.b.current_block();
        if self.region.block != cur {
            self.region = Region {
                block: cur,
                marks: Marks::default(),
            };
        }
    }

    /// Read barrier of object `o` (its header granule), elided when the local holding `o`
    /// was already marked in the current region (see the module docs).
    pub(crate) fn read_barrier_obj(&mut self, o: Value) {
        self.region_here();
        let local = self.local_of.get(&o).copied();
        if let Some(l) = local {
            if self.region.marks.read.contains(&l) {
                return;
            }
        }
        self.read_barrier(o);
        if let Some(l) = local {
            self.region.marks.read.push(l);
        }
    }

    /// Switches to `blk`, whose only predecessor is the current block (no call in between):
    /// the region extends into it.
    pub(crate) fn follow(&mut self, blk: Block) {
        let carry = self.region.block == self.b.current_block();
        self.b.switch_to_block(blk);
        if carry {
            self.region.block = Some(blk);
        }
    }

    /// The marks of the current region (none if it is not valid here).
    pub(crate) fn region_marked(&self) -> Marks {
        if self.region.block == self.b.current_block() {
            self.region.marks.clone()
        } else {
            Marks::default()
        }
    }

    /// On a slow path, after its call and before it jumps to the join `done`: stores the
    /// read marker again for each of `marks.read` that holds a reference, then redoes the
    /// write-barrier flag test (and slow path) of the slots array of each of
    /// `marks.written` that holds an instance with one (the call ended the region, and may
    /// have run a minor collection, which re-sets the flag of the objects it promotes; this
    /// re-establishes the region on this edge). `span` names the slow path's operation.
    pub(crate) fn repair_region(&mut self, marks: &Marks, span: Span) {
        // Reached only from the slow path: out of line, like the rest of it.
        if let Some(cur) = self.b.current_block() {
            self.b.set_cold_block(cur);
        }
        for &l in &marks.read {
            self.b.set_srcloc(SourceLoc::new(LOC_REGION_REPAIR));
            let v = self.b.use_var(self.local_vars[l]);
            let not_ref = self.is_not_ref(v);
            let mark = self.b.create_block();
            let next = self.b.create_block();
            self.b.ins().brif(not_ref, next, &[], mark, &[]);
            self.b.set_cold_block(mark);
            self.b.switch_to_block(mark);
            self.read_barrier(v);
            self.b.ins().jump(next, &[]);
            self.b.set_cold_block(next);
            self.b.switch_to_block(next);
            self.b.set_srcloc(SourceLoc::default());
        }
        if marks.written.is_empty() {
            return;
        }
        let site = self.site(span);
        for &l in &marks.written {
            use stmjit_vm::objects::InstanceObj;
            self.b.set_srcloc(SourceLoc::new(LOC_REGION_REPAIR));
            let v = self.b.use_var(self.local_vars[l]);
            let first_new = self.b.func.dfg.num_blocks();
            let next = self.b.create_block();
            // Read under the marker just stored again (`written` is a subset of `read`).
            let is_inst = self.has_type(v, self.sh.types.instance.0, next);
            let inst = self.b.create_block();
            self.b.ins().brif(is_inst, inst, &[], next, &[]);
            self.b.switch_to_block(inst);
            let sa = self.seg_addr(v);
            let slots = self
                .b
                .ins()
                .load(I64, mf(), sa, offset_of!(InstanceObj, slots) as i32);
            let has_slots = self.b.create_block();
            self.b.ins().brif(slots, has_slots, &[], next, &[]);
            self.b.switch_to_block(has_slots);
            self.flag_test(slots, site, next);
            // All of it is slow-path code.
            for n in first_new..self.b.func.dfg.num_blocks() {
                self.b.set_cold_block(Block::from_u32(n as u32));
            }
            self.b.switch_to_block(next);
            self.b.set_srcloc(SourceLoc::default());
        }
    }

    /// Enters the join `done` of a fast path whose end had `marks`, every other edge having
    /// been repaired ([`Self::repair_region`]): the region goes on there.
    pub(crate) fn enter_join(&mut self, done: Block, marks: Marks) {
        self.b.switch_to_block(done);
        self.local_of.clear();
        self.region = Region {
            block: Some(done),
            marks,
        };
    }

    /// Card write barrier for the word at `obj + off` of a card-marked array:
    /// `test byte gs:[obj + flags], WB; jz done; cmp byte gs:[(obj+off) >> 4 + disp], rv;
    /// je done; call slow`.
    pub(crate) fn card_write_barrier(&mut self, obj: Value, off: Value, span: Span) {
        self.b.set_srcloc(SourceLoc::new(LOC_CARD_WB));
        let fa = self.seg_addr(obj);
        let flags = self.b.ins().load(I8, ir::MemFlagsData::trusted(), fa, 0);
        let bit = self
            .b
            .ins()
            .band_imm(flags, stmjit_runtime::WRITE_BARRIER_FLAG as i64);
        let check_card = self.b.create_block();
        let slow = self.b.create_block();
        let done = self.b.create_block();
        self.b.ins().brif(bit, check_card, &[], done, &[]);
        self.b.switch_to_block(check_card);
        let addr = self.b.ins().iadd(obj, off);
        let m = self
            .b
            .ins()
            .ushr_imm(addr, stmjit_runtime::MARKER_SHIFT as i64);
        let m = self.b.ins().iadd_imm(m, self.sh.card_disp as i64);
        let ca = self.seg_addr(m);
        let card = self.b.ins().load(I8, ir::MemFlagsData::trusted(), ca, 0);
        let rv = self.read_version();
        let same = self.b.ins().icmp(IntCC::Equal, card, rv);
        self.b.ins().brif(same, done, &[], slow, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        let site = self.site(span);
        self.set_site(site);
        self.barrier_slow_path(Helper::CardBarrierSlow, &[obj, off], site, done);
        self.b.switch_to_block(done);
        self.b.set_srcloc(SourceLoc::default());
    }

    /// Write barrier of a non-carded object: `test byte gs:[obj + flags], WB; jnz slow`.
    ///
    /// `obj` is the slots array of the instance held by `local` (if it came from a local):
    /// the test is elided when that local's write barrier is already done in the region, and
    /// otherwise recorded there. The region goes on across the slow path's join: the stub
    /// returns in the same transaction, nothing moved, the flag clear (see the module docs).
    pub(crate) fn write_barrier(&mut self, obj: Value, local: Option<usize>, span: Span) {
        if !self.sh.write_barriers {
            return;
        }
        self.region_here();
        if let Some(l) = local {
            if self.region.marks.written.contains(&l) {
                return;
            }
        }
        let done = self.b.create_block();
        let site = self.site(span);
        self.flag_test(obj, site, done);
        self.b.switch_to_block(done);
        self.region.block = Some(done);
        // Only an instance read in this transaction keeps its slots array across a pause of
        // the slow path (see `Marks::written`).
        if let Some(l) = local.filter(|l| self.region.marks.read.contains(l)) {
            self.region.marks.written.push(l);
        }
    }

    /// The flag test of a non-carded object `obj`, continuing at `done` (after the slow path,
    /// on a cold block, when the flag is set); `site` names the write.
    fn flag_test(&mut self, obj: Value, site: i64, done: Block) {
        let fa = self.seg_addr(obj);
        let flags = self.b.ins().load(I8, mf(), fa, 0);
        let bit = self
            .b
            .ins()
            .band_imm(flags, stmjit_runtime::WRITE_BARRIER_FLAG as i64);
        let slow = self.b.create_block();
        self.b.ins().brif(bit, slow, &[], done, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        self.set_site(site);
        self.barrier_slow_path(Helper::WriteBarrierSlow, &[obj], site, done);
    }

    /// Safe-point poll at a loop back-edge, continuing in a new block.
    pub(crate) fn poll(&mut self, span: Span) {
        let done = self.b.create_block();
        self.poll_to(span, done);
        self.b.switch_to_block(done);
    }

    /// Safe-point poll continuing at `resume`, which becomes a restart point (everything
    /// live there must be in frame slots or locals): `cmp qword gs:[safe_point_request], 0;
    /// jne slow; sub qword gs:[budget], 1; js slow`. The slow path may end the transaction
    /// (a boundary) or pause for another segment's commit.
    pub(crate) fn poll_to(&mut self, span: Span, resume: Block) {
        use stmjit_runtime::{SegmentInfo, INFO_OFFSET};
        self.b.set_srcloc(SourceLoc::new(LOC_POLL));
        let point = self.restarts.len() as i64;
        self.restarts.push(resume);
        if !self.sh.polls {
            self.b.set_srcloc(SourceLoc::default());
            self.b.ins().jump(resume, &[]);
            return;
        }
        let off = self.b.ins().iconst(
            I64,
            (INFO_OFFSET + offset_of!(SegmentInfo, safe_point_request) as u64) as i64,
        );
        let a = self.seg_addr(off);
        let req = self.b.ins().load(I64, ir::MemFlagsData::trusted(), a, 0);
        let slow = self.b.create_block();
        let budget = self.b.create_block();
        self.b.ins().brif(req, slow, &[], budget, &[]);
        self.b.switch_to_block(budget);
        let boff = self.b.ins().iconst(
            I64,
            (INFO_OFFSET + offset_of!(SegmentInfo, budget) as u64) as i64,
        );
        let ba = self.seg_addr(boff);
        let left = self.b.ins().load(I64, ir::MemFlagsData::trusted(), ba, 0);
        let left = self.b.ins().iadd_imm(left, -1);
        let ba2 = self.seg_addr(boff);
        self.b
            .ins()
            .store(ir::MemFlagsData::trusted(), left, ba2, 0);
        let out = self.b.ins().icmp_imm(IntCC::SignedLessThan, left, 0);
        self.b.ins().brif(out, slow, &[], resume, &[]);
        self.b.set_cold_block(slow);
        self.b.switch_to_block(slow);
        self.b.set_srcloc(SourceLoc::default());
        let frame = self.frame();
        let p = self.b.ins().iconst(I64, point);
        self.call_checked(Helper::PollSlow, &[self.ctx, frame, p], span);
        self.b.ins().jump(resume, &[]);
    }
}
