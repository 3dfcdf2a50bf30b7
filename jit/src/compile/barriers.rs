//! The inline barriers and their elision.
//!
//! Globals live in a card-marked array object; reads store the read marker of the global's
//! granule, writes test the array's write-barrier flag and the card marker before calling
//! the card slow path. List indexing with an int (`xs[i]`, `xs[i] = v`) is inlined with the
//! list's read marker, the element's own granule marker, and the card write barrier. Loop
//! back-edges poll `SegmentInfo::budget` (which requests mark: see `txn.rs`).
//!
//!
//! # Barrier elision: one read marker and one write-barrier test per object per region
//! A read marker holds the transaction's read version once stored, until the next
//! transaction boundary (commit + begin bumps the read version). So within a *region*, a
//! stretch of code that cannot cross a boundary, a second read barrier on the same object
//! is redundant. Regions are defined conservatively, so that they stay correct when
//! boundaries are made at loop back-edges, polls and calls:
//! - a region is a chain of blocks, each the only successor entered from the previous one
//!   with no call in between ([`FnCompiler::follow`]); switching to any other block (a join,
//!   a loop header, the code after a poll) starts an empty region;
//! - the branches of an `if` go on with what every edge of its condition into them had
//!   ([`FnCompiler::enter_branch_target`]): the condition's fast paths make no call, and its
//!   slow paths keep the read marks their calls keep and redo their flag tests
//!   ([`FnCompiler::repair_all_and_keep`]);
//! - a call (JIT function or runtime helper) keeps its read markers and nothing else
//!   (see "Marks across calls" below); a call whose boundary restarts in this frame (a
//!   poll's slow path, a join statement's join) empties it;
//! - objects are identified by the local variable holding them (SSA values do not survive
//!   the joins, and a reload after a call defines new ones); assigning the local removes it.
//!
//! # Marks across calls
//! A call either makes no transaction boundary, or makes one. Without one, the caller goes
//! on in the same transaction: the read version and its markers hold, and a minor
//! collection moved only objects this transaction allocated (the nursery is emptied at each
//! commit), which no other transaction can write before it commits; locals are reloaded
//! after the call and the marks are by local, so they name the moved objects. With one,
//! the caller goes on in an *inevitable* transaction (`vm/src/txn.rs`: the return from the
//! opener and the helpers that commit before waiting begin one without restart point),
//! until its next poll; no writer commits while another transaction is inevitable, in
//! either commit mode (`docs/COMMITLOG.md`, I5, and `StmThread::commit` without the log),
//! so nothing it reads can be overwritten before it ends and it needs no read marker. So
//! the read marks of a region survive every call except those whose boundary begins a
//! transaction with its restart point in this frame
//! ([`stmjit_vm::abi::Helper::restarts_in_caller`]: polls, the module's part boundaries, the
//! restart, a join statement's join), which may abort and must mark again, and the calls of
//! a module body's parts, which may assign the locals. The read version is loaded again
//! after a call (a boundary bumps it), and the write-barrier tests are done again (a minor
//! collection re-sets the flags of the objects it promotes). A call's error check and the
//! join of a call's paths (a method call's cached and generic calls, an inline list
//! method) keep the region ([`FnCompiler::jump_keeping`], [`FnCompiler::enter_kept`]).
//!
//! # Marks held around loops
//! A loop's region ends at its header (a join with the back-edge) and at every poll, so
//! each iteration marked the objects it reads again, though a poll that does not end the
//! transaction changes nothing. Instead, before a loop ([`FnCompiler::hold_loop_marks`]),
//! the locals that the loop reads an attribute of (or calls a method of) and never assigns
//! ([`held_locals`]) are marked once, and *held*: for as long as the loop's code is being
//! compiled, each of them is marked in the running transaction wherever that code runs,
//! so [`FnCompiler::read_barrier_obj`] elides their markers anywhere in it, across its
//! joins, back-edges and polls. The same for the list a `for` loop iterates (held in its
//! frame slot: [`FnCompiler::hold_temp`]). Why this holds (the invariant "the local's
//! current object is marked in the running transaction, or that transaction is
//! inevitable, or the object was allocated by it"):
//! - it is established before the loop's first instruction (a marker too many is never
//!   wrong: it can only make a conflict that was not needed);
//! - the local keeps its object: nothing in the loop assigns it (and should the analysis
//!   miss an assignment, [`FnCompiler::store_slot`] marks the new value: the invariant is
//!   kept, not assumed);
//! - a call keeps it, as it keeps a region's read marks (see "Marks across calls": the
//!   caller goes on in the same transaction, or in an inevitable one that nothing can
//!   overtake until its next poll; a minor collection moved only the transaction's own new
//!   objects, the local is reloaded and names the moved one);
//! - every way a transaction can begin with its restart point in this frame stores the held
//!   markers again before the code after it runs: a poll's slow path after its call, the
//!   restart dispatch before it jumps to the restart point (each point records the marks
//!   held there, [`FnCompiler::push_restart`]), a join statement's join and a part's call
//!   after they return ([`FnCompiler::remark_held`]); an abort anywhere else unwinds to
//!   such a restart point (or leaves the frame, whose next run marks them before the loop
//!   again);
//! - the held marks are only those of the loops around the code being compiled, so no code
//!   after a loop relies on them; code compiled apart (a part, an inlined function, a
//!   lambda) holds none of its own.
//!
//! Only read markers are held: a write-barrier flag test is redone after every call (a
//! minor collection re-sets flags), as before. Nothing is held in compact code, where locals
//! live in slots, or without read barriers (`--gil`).
//!
//! The write-barrier flag test of an instance (`o.name = v` of an inline slot,
//! [`FnCompiler::write_barrier`]) is elided the same way, by the local holding the instance
//! (which its attribute fast path has read-marked in the region). Once tested, the flag
//! stays clear in our segment until the transaction ends or a minor collection re-sets it
//! (on the objects the transaction promoted: `NEW_FLAG`, see `runtime/src/barrier.rs`), both
//! only in calls. Unlike a call, the test's own slow path (a `preserve_all` stub) does not
//! end the region: it makes no boundary and neither allocates, collects nor moves, so on
//! success it returns in the same transaction and segment, the read version, our markers
//! and locks as they were.
//!
//! The inline fast paths (`o.name`, `o.name = v`, `o[i]`, int arithmetic and comparisons)
//! join their slow path, a helper call, at their end. To keep the region across that join,
//! the slow path *repairs* it after the call ([`FnCompiler::repair_region`]): it stores the
//! read marker again, with the read version current after the call and at the (possibly
//! moved) object's address, for every local the fast path had marked (if it holds a
//! reference), and redoes the flag test (and slow path) of every local holding an instance
//! whose write barrier the fast path had done (the call may have collected), so the join's
//! region is the fast path's. It loads the read version after the call also where the fast
//! path had only loaded it: the join takes the version from a variable (a block parameter,
//! the fast path's value or the repair's) instead of loading it again for its next marker.
//! The repair is cold code (`--dump-asm` labels it). Only object (header) markers and
//! instance flag tests are kept this way: list element granules are never elided
//! (card-marked arrays mark per granule, and the index differs), and card write barriers
//! (globals, list items) are not elided (their join ends the region).
//!
//! # The read version in a variable
//! The read version (the byte every read marker stores) changes only at a transaction
//! boundary, and a boundary happens only inside a call: a helper that may end the
//! transaction ([`stmjit_vm::abi::Effects::MayMove`]: a poll's slow path, the restart, the
//! return boundary, the generic operations) or a JIT function (its polls and return
//! boundaries). A loop's region ends at its header, its joins and its polls, and each
//! region loaded the version again for its first marker (richards' scheduler loop: two
//! loads per task scanned). So in `while` and `for` loops the read barriers take it from
//! [`FnCompiler::rv_var`] instead: the variable is defined before the loop
//! ([`FnCompiler::enter_loop_read_version`]), right after each call in the loop that may
//! end the transaction (in the call's block, before anything can branch:
//! [`FnCompiler::reload_read_version`]), and after the restart dispatch's call (a restart
//! point may be in a loop); Cranelift makes it a block parameter where paths meet (the loop
//! header, a fast path's join, a poll's resume), and the iterations load it no more. Why it
//! is right: every way into a loop's code passes one of those definitions after its last
//! call (the loop's entry, its own calls, the restart dispatch; a handler or a back-edge
//! inside the loop comes from the loop's code), so the variable holds the version of the
//! running transaction, in the running segment. [`FnCompiler::check_read_version_reloads`]
//! checks in every function built that each call but those recorded as made outside loops
//! or unable to end the transaction is followed by the load. Outside loops the version is
//! loaded where needed, once per region, as without read barriers (`--gil`, where only the
//! card write barriers compare with it): a load after every call would run on the fast path
//! for the sake of a slow path's marker (binary trees' recursion: 1.2% more instructions
//! that way), and Cranelift keeps an unused load.
//!
//! An object's header marker is at `o >> 4`; references are 16-byte aligned, so that is `o`
//! rotated right by 4, one `rorx` (BMI2) that leaves `o` in its register, where a shift
//! needs a copy first ([`FnCompiler::read_barrier_ref`]).

use super::weight::{walk, walk_expr, Node};
use super::{mf, FnCompiler};
use cranelift_codegen::ir::{
    self, condcodes::IntCC, types::I64, types::I8, Block, InstBuilder, Value,
};
use std::collections::HashMap;
use std::mem::offset_of;
use stmjit_lang::ast::{Expr, ExprKind, Name, Slot, Stmt, StmtKind, Target};
use stmjit_lang::diag::Span;
use stmjit_vm::abi::Helper;
use stmjit_vm::Ctx;

/// Trap code of blocks that cannot be reached (the "no error" side of the error check
/// after `stmjit_aborted`, which always returns `ERR`; the restart dispatch of a function
/// without polls).
pub(crate) const TRAP_UNREACHABLE: u8 = 1;

/// The locals below `nlocals` whose markers a loop of condition `cond` and body `body` can
/// hold (see "Marks held around loops" in the module docs): those it reads an attribute of,
/// calls a method of or stores an attribute of (so marking them before it costs nothing
/// that an iteration would not mark anyway), and that nothing in it assigns, deletes,
/// binds as a loop variable, a function, a class or an exception.
pub(crate) fn held_locals(cond: Option<&Expr>, body: &[Stmt], nlocals: usize) -> Vec<usize> {
    let mut accessed = vec![false; nlocals];
    let mut assigned = vec![false; nlocals];
    let local = |e: &Expr| match &e.kind {
        ExprKind::Name(n) => match n.slot {
            Slot::Local(i) if i < nlocals => Some(i),
            _ => None,
        },
        _ => None,
    };
    let set = |v: &mut Vec<bool>, n: &Name| {
        if let Slot::Local(i) | Slot::Cell(i) = n.slot {
            if i < nlocals {
                v[i] = true;
            }
        }
    };
    let mut each = |n: Node<'_>| match n {
        Node::Expr(e) => match &e.kind {
            ExprKind::Attr { obj, .. } | ExprKind::MethodCall { obj, .. } => {
                if let Some(i) = local(obj) {
                    accessed[i] = true;
                }
            }
            _ => {}
        },
        Node::Target(Target::Attr { obj, .. }) => {
            if let Some(i) = local(obj) {
                accessed[i] = true;
            }
        }
        Node::Target(Target::Name(n)) => set(&mut assigned, n),
        Node::Stmt(s) => match &s.kind {
            StmtKind::For { var: n, .. }
            | StmtKind::FunctionDef { target: n, .. }
            | StmtKind::ClassDef { target: n, .. } => set(&mut assigned, n),
            StmtKind::Try { handlers, .. } => {
                for n in handlers.iter().filter_map(|h| h.name.as_ref()) {
                    set(&mut assigned, n);
                }
            }
            _ => {}
        },
        _ => {}
    };
    if let Some(c) = cond {
        walk_expr(c, &mut each);
    }
    walk(body, &mut each);
    (0..nlocals)
        .filter(|&i| accessed[i] && !assigned[i])
        .collect()
}

/// The barriers already done in the current region: the block the region is valid in (it
/// extends to single-entry successors), and the locals marked.
#[derive(Clone, Default)]
pub(crate) struct Region {
    pub(super) block: Option<Block>,
    pub(super) marks: Marks,
}

/// What a region has established, by the local holding each object (see the module docs).
#[derive(Clone, Default, Debug)]
pub(crate) struct Marks {
    /// Locals whose object's read marker is stored.
    pub(super) read: Vec<usize>,
    /// Locals holding an instance whose write-barrier flag test is done (the flag is clear in
    /// our segment, or the slow path cleared it): a subset of `read` (the instance fast path
    /// read-marks it first).
    pub(super) written: Vec<usize>,
    /// The segment's read version, if read earlier in the region (from
    /// [`FnCompiler::rv_var`], or loaded without read barriers): a later barrier of the
    /// region reuses the value (the version changes only at a transaction boundary, which
    /// only a call makes, and a call clears it).
    pub(super) read_version: ReadVersion,
}

/// Where a region has the segment's read version (see [`Marks::read_version`]).
#[derive(Clone, Copy, Default, Debug)]
pub(crate) enum ReadVersion {
    /// Not loaded in the region.
    #[default]
    Unknown,
    /// Loaded in the region: this value (it dominates the region's blocks).
    Loaded(Value),
    /// In [`FnCompiler::rv_var`]: at a join whose every edge loaded it after its last call
    /// (the fast path in the region, each slow path after its call, in
    /// [`FnCompiler::repair_region`]); the variable's reaching definitions there are those
    /// loads, so reading it gives a block parameter instead of a load.
    InVar,
}

impl ReadVersion {
    /// Loaded or in the variable.
    pub(super) fn known(self) -> bool {
        !matches!(self, ReadVersion::Unknown)
    }
}

impl Marks {
    /// The region ends: nothing is known any more.
    pub(super) fn clear(&mut self) {
        self.read.clear();
        self.written.clear();
        self.read_version = ReadVersion::Unknown;
    }

    /// A call returns (one that does not restart in this frame: see
    /// [`stmjit_vm::abi::Helper::restarts_in_caller`]): the read markers stay, the rest goes
    /// (see "Marks across calls" in the module docs).
    pub(super) fn after_call(&mut self) {
        self.written.clear();
        self.read_version = ReadVersion::Unknown;
    }

    /// What both `self` and `other` have established (for a join of their two paths).
    pub(super) fn both(&self, other: &Marks) -> Marks {
        Marks {
            read: self
                .read
                .iter()
                .copied()
                .filter(|l| other.read.contains(l))
                .collect(),
            written: (self.written.iter().copied())
                .filter(|l| other.written.contains(l))
                .collect(),
            read_version: ReadVersion::Unknown,
        }
    }

    /// Local `l` is assigned: it may hold another object now.
    pub(super) fn forget(&mut self, l: usize) {
        self.read.retain(|&m| m != l);
        self.written.retain(|&m| m != l);
    }
}

/// The joins that keep the barrier region: for each join not entered yet, what its edges
/// have established ([`Marks::both`] of them) and their number; for each entered one, the
/// number of edges it was entered with (see [`FnCompiler::check_kept_joins`]).
#[derive(Default)]
pub(crate) struct KeptJoins {
    open: HashMap<Block, (Marks, usize)>,
    entered: Vec<(Block, usize)>,
}

impl FnCompiler<'_, '_> {
    /// Jumps to the join `done` with `args`, recording what the region has established here
    /// (nothing if it is not valid here): the join keeps what all its edges have
    /// ([`Self::enter_kept`]). Every edge of such a join must come through here.
    pub(crate) fn jump_keeping(&mut self, done: Block, args: &[ir::BlockArg]) {
        self.record_edge(done);
        self.b.ins().jump(done, args);
    }
    /// Records what the region has established here (nothing if it is not valid here) for
    /// the edge about to be made from the current block to `target` (see
    /// [`Self::jump_keeping`]).
    pub(crate) fn record_edge(&mut self, target: Block) {
        let mut here = self.region_marked();
        // The value does not dominate the join.
        here.read_version = ReadVersion::Unknown;
        let e = self.kept.open.entry(target).or_insert((here.clone(), 0));
        e.0 = e.0.both(&here);
        e.1 += 1;
    }
    /// `brif c, then, els`, recording both edges ([`Self::record_edge`]): a condition's
    /// branch to the targets of an `if` ([`Self::enter_branch_target`]).
    pub(crate) fn brif_keeping(&mut self, c: Value, then: Block, els: Block) {
        self.record_edge(then);
        self.record_edge(els);
        self.b.ins().brif(c, then, &[], els, &[]);
    }
    /// Switches to `target`, a target of the condition just compiled, whose code began in
    /// block `start` and in the blocks numbered from `first_new` (the only code that can
    /// branch to it yet). If every one of its edges recorded its region (they came through
    /// [`Self::brif_keeping`] or [`Self::jump_keeping`]), the region goes on there with what
    /// all of them established ([`Self::enter_kept`]); else it starts empty.
    ///
    /// Why it is sound: each edge recorded the marks valid at its end, and a mark valid at
    /// the end of every predecessor is valid at the start of the block. The condition's
    /// slow paths call helpers that may end the transaction; an edge after such a call
    /// records only what the call keeps (see "Marks across calls": read marks, unless the
    /// helper restarts in this frame, which clears them) and what its repair redid after it.
    pub(crate) fn enter_branch_target(
        &mut self,
        target: Block,
        start: Option<Block>,
        first_new: usize,
    ) {
        let recorded = self.kept.open.get(&target).map_or(0, |e| e.1);
        let f = &self.b.func;
        let blocks = (first_new..f.dfg.num_blocks()).map(|n| Block::from_u32(n as u32));
        let mut edges = 0;
        for blk in start.into_iter().chain(blocks) {
            if !f.layout.is_block_inserted(blk) {
                continue;
            }
            for inst in f.layout.block_insts(blk) {
                let dests = f.dfg.insts[inst]
                    .branch_destination(&f.dfg.jump_tables, &f.dfg.exception_tables);
                edges += dests
                    .iter()
                    .filter(|d| d.block(&f.dfg.value_lists) == target)
                    .count();
            }
        }
        if edges > 0 && edges == recorded {
            self.enter_kept(target);
        } else {
            self.kept.open.remove(&target);
            self.b.switch_to_block(target);
        }
    }
    /// Switches to the join `done`, all of whose edges came through [`Self::jump_keeping`]:
    /// the region goes on there with what every edge established.
    pub(crate) fn enter_kept(&mut self, done: Block) {
        let (marks, edges) = self.kept.open.remove(&done).unwrap_or_default();
        self.kept.entered.push((done, edges));
        self.b.switch_to_block(done);
        // Values of one edge do not dominate the join: locals are read again.
        self.local_of.clear();
        self.region = Region {
            block: Some(done),
            marks,
        };
    }
    /// Checks, once the function is built, that every join entered with
    /// [`Self::enter_kept`] has no other edge than those recorded by
    /// [`Self::jump_keeping`] (another edge would bring a region it knows nothing of).
    pub(super) fn check_kept_joins(&mut self) {
        if self.kept.entered.is_empty() {
            return;
        }
        let mut edges: HashMap<Block, usize> =
            self.kept.entered.iter().map(|&(b, _)| (b, 0)).collect();
        let f = &self.b.func;
        for blk in f.layout.blocks() {
            for inst in f.layout.block_insts(blk) {
                let dests = f.dfg.insts[inst]
                    .branch_destination(&f.dfg.jump_tables, &f.dfg.exception_tables);
                for d in dests {
                    if let Some(n) = edges.get_mut(&d.block(&f.dfg.value_lists)) {
                        *n += 1;
                    }
                }
            }
        }
        for &(b, n) in &self.kept.entered {
            assert_eq!(
                edges[&b], n,
                "stmjit: internal error: a join keeping the barrier region has an edge that \
                 did not record its region"
            );
        }
    }
    /// `iadd(get_pinned_reg, off)`: the address of segment byte `off` (fresh pinned read per
    /// access, as the `%gs` rewrite requires).
    pub(crate) fn seg_addr(&mut self, off: Value) -> Value {
        let base = self.b.ins().get_pinned_reg(I64);
        self.b.ins().iadd(base, off)
    }
    /// The segment's read version (a byte of the segment-info page), from
    /// [`FnCompiler::rv_var`] (see "The read version in a variable" in the module docs).
    /// Once per region (see [`Marks::read_version`]): a use of the variable costs the code
    /// generator a block parameter in each block it is read in first.
    pub(crate) fn read_version(&mut self) -> Value {
        let in_region = self.region.block.is_some() && self.region.block == self.b.current_block();
        if in_region {
            match self.region.marks.read_version {
                ReadVersion::Loaded(rv) => return rv,
                ReadVersion::InVar => {
                    let rv = self.b.use_var(self.rv_var);
                    self.region.marks.read_version = ReadVersion::Loaded(rv);
                    return rv;
                }
                ReadVersion::Unknown => {}
            }
        }
        // In a loop, from the variable (see "The read version in a variable"); elsewhere,
        // and without read barriers (`--gil`: only the card write barriers read it), loaded
        // where needed.
        let rv = if self.sh.read_barriers && self.loop_depth > 0 {
            self.b.use_var(self.rv_var)
        } else {
            self.load_read_version()
        };
        if in_region {
            self.region.marks.read_version = ReadVersion::Loaded(rv);
        }
        rv
    }
    /// Before a `while` or `for` loop: defines [`FnCompiler::rv_var`] with the read version
    /// (the region's, or loaded), from which the loop's read barriers take it, and enters
    /// the loop (the caller leaves it after the loop: `loop_depth`).
    pub(crate) fn enter_loop_read_version(&mut self) {
        if self.sh.read_barriers {
            let rv = self.read_version();
            self.b.def_var(self.rv_var, rv);
        }
        self.loop_depth += 1;
    }
    /// After `call`, which may end the transaction: in a loop, defines
    /// [`FnCompiler::rv_var`] with the running transaction's read version (see "The read
    /// version in a variable"); elsewhere, and without read barriers, nothing (no barrier
    /// reads the variable there), `call` recorded as such.
    pub(crate) fn reload_read_version(&mut self, call: ir::Inst) {
        if !self.sh.read_barriers || self.loop_depth == 0 {
            self.unreloaded_calls.insert(call);
        } else {
            self.reload_read_version_anywhere();
        }
    }
    /// [`Self::reload_read_version`] in or out of a loop (the restart dispatch, whose
    /// restart points may be in loops).
    pub(crate) fn reload_read_version_anywhere(&mut self) {
        if self.sh.read_barriers {
            // Labelled in `--dump-asm`, inside whatever sequence the call was part of.
            let outer = self.b.srcloc();
            self.begin_sequence(super::LOC_RV_RELOAD);
            self.load_read_version();
            self.b.set_srcloc(outer);
        }
    }
    /// Loads the read version, and defines [`FnCompiler::rv_var`] with it.
    pub(crate) fn load_read_version(&mut self) -> Value {
        let off = self.b.ins().iconst(
            I64,
            (stmjit_runtime::INFO_OFFSET
                + offset_of!(stmjit_runtime::SegmentInfo, read_version) as u64) as i64,
        );
        let a = self.seg_addr(off);
        let rv = self.b.ins().load(I8, ir::MemFlagsData::trusted(), a, 0);
        if let Some(inst) = self.b.func.dfg.value_def(rv).inst() {
            self.rv_loads.insert(inst);
        }
        self.b.def_var(self.rv_var, rv);
        rv
    }
    /// Checks, once the function is built, that every call but those recorded in
    /// [`FnCompiler::unreloaded_calls`] is followed in its block, before any other call or
    /// branch, by a load of the read version (see "The read version in a variable"): a
    /// call without it would leave the variable with the version of a transaction that
    /// may have ended, and the markers stored with it would mark nothing.
    pub(super) fn check_read_version_reloads(&self) {
        if !self.sh.read_barriers {
            return;
        }
        let f = &self.b.func;
        for blk in f.layout.blocks() {
            let mut pending = None;
            for inst in f.layout.block_insts(blk) {
                if self.rv_loads.contains(&inst) {
                    pending = None;
                    continue;
                }
                let op = f.dfg.insts[inst].opcode();
                let ends = op.is_call() || op.is_branch() || op.is_terminator();
                assert!(
                    pending.is_none() || !ends,
                    "stmjit: internal error: a call without a load of the read version after it"
                );
                if op.is_call() && !self.unreloaded_calls.contains(&inst) {
                    pending = Some(inst);
                }
            }
            assert!(
                pending.is_none(),
                "stmjit: internal error: a call without a load of the read version after it"
            );
        }
    }
    /// Read barrier: `mov byte gs:[addr >> 4], rv`; when the runtime records read sites
    /// (`--stats`), also the site of `span` in the read-site table (see
    /// [`Self::record_read_site`]).
    pub(crate) fn read_barrier(&mut self, addr: Value, span: Span) {
        if !self.sh.read_barriers {
            return;
        }
        let m = self
            .b
            .ins()
            .ushr_imm(addr, stmjit_runtime::MARKER_SHIFT as i64);
        self.marker_store(m, span);
    }
    /// Read barrier of the header granule of object `o` (a reference: 16-byte aligned, so its
    /// low [`stmjit_runtime::MARKER_SHIFT`] bits are 0): the marker offset is `o` rotated
    /// right, which is `o >> 4` for such a value and lowers to one three-operand `rorx`
    /// where the CPU has BMI2 (a shift overwrites its operand, so a `mov` copies `o` first
    /// wherever `o` stays live, as it does for the field loads after its barrier).
    fn read_barrier_ref(&mut self, o: Value, span: Span) {
        if self.sh.read_barriers {
            let rv = self.read_version();
            self.read_barrier_ref_rv(o, rv, span);
        }
    }
    /// [`Self::read_barrier_ref`] storing the read version `rv`.
    fn read_barrier_ref_rv(&mut self, o: Value, rv: Value, span: Span) {
        let m = self
            .b
            .ins()
            .rotr_imm(o, stmjit_runtime::MARKER_SHIFT as i64);
        self.marker_store_rv(m, rv, span);
    }
    /// `mov byte gs:[m], rv`: stores the read version into marker `m` (and its read site).
    fn marker_store(&mut self, m: Value, span: Span) {
        let rv = self.read_version();
        self.marker_store_rv(m, rv, span);
    }
    /// [`Self::marker_store`] of the read version `rv`.
    fn marker_store_rv(&mut self, m: Value, rv: Value, span: Span) {
        let a = self.seg_addr(m);
        self.b.ins().store(ir::MemFlagsData::trusted(), rv, a, 0);
        if self.sh.read_sites {
            self.record_read_site(m, span);
        }
    }
    /// `mov dword [gs:[read_sites] + (addr >> 4) * 4], site + 1`, with `m = addr >> 4`: the
    /// read-site table entry of the marker just stored (`stmjit_runtime::readsites`), so a
    /// write/read conflict on this granule names this read. Emitted only when the runtime
    /// records read sites, so code compiled without `--stats` is unchanged.
    fn record_read_site(&mut self, m: Value, span: Span) {
        let site = self.site(span);
        let off = self.b.ins().iconst(
            I64,
            (stmjit_runtime::INFO_OFFSET
                + offset_of!(stmjit_runtime::SegmentInfo, read_sites) as u64) as i64,
        );
        let a = self.seg_addr(off);
        let base = self.b.ins().load(I64, mf(), a, 0);
        let idx = self.b.ins().ishl_imm(m, 2);
        let entry = self.b.ins().iadd(base, idx);
        let v = self
            .b
            .ins()
            .iconst(ir::types::I32, i64::from((site as u32).wrapping_add(1)));
        self.b.ins().store(mf(), v, entry, 0);
    }
    /// Carries `region`, as it stood at the end of block `from`, into `block`, a successor
    /// whose only predecessor is `from` (a region extends to single-entry successors); no
    /// change where the region was not valid in `from`.
    pub(super) fn carry_region(&mut self, region: &Region, from: Option<Block>, block: Block) {
        if region.block.is_some() && region.block == from {
            self.region = Region {
                block: Some(block),
                ..region.clone()
            };
        }
    }
    /// The region at the current block, started empty if it is not valid here.
    pub(super) fn region_here(&mut self) {
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
    pub(crate) fn read_barrier_obj(&mut self, o: Value, span: Span) {
        self.region_here();
        let local = self.local_of.get(&o).copied();
        if let Some(l) = local {
            if self.held.contains(&l) && !self.region.marks.read.contains(&l) {
                // Held by the loops around (see "Marks held around loops"): marked in the
                // region too, so that its write-barrier test can be elided as there.
                self.region.marks.read.push(l);
            }
            if self.region.marks.read.contains(&l) {
                return;
            }
        }
        if self.held_values.contains(&o) {
            return;
        }
        self.read_barrier_ref(o, span);
        if let Some(l) = local {
            self.region.marks.read.push(l);
        }
    }
    /// Before a loop of condition `cond` (`None` for a `for` loop), loop variable `var`
    /// (`for` loops) and body `body`: marks the locals whose markers it can hold
    /// ([`held_locals`], but its variable, and those not held already) and
    /// holds them while it is compiled (see "Marks held around loops" in the module docs).
    /// Returns what [`Self::release_held`] takes after the loop.
    pub(crate) fn hold_loop_marks(
        &mut self,
        cond: Option<&Expr>,
        var: Option<&Name>,
        body: &[Stmt],
        span: Span,
    ) -> usize {
        let before = self.held.len();
        if !self.sh.read_barriers || self.compact || self.locals_in_slots {
            return before;
        }
        let new: Vec<usize> = held_locals(cond, body, self.nlocals)
            .into_iter()
            .filter(|l| !self.held.contains(l))
            .filter(|&l| var.is_none_or(|v| v.slot != Slot::Local(l) && v.slot != Slot::Cell(l)))
            // A float local's word may be unboxed: boxing it for a marker would allocate.
            .filter(|&l| {
                self.float_var(l).is_none() && !self.float_locals.get(l).copied().unwrap_or(false)
            })
            .collect();
        // Those the region has marked already need no marker again (same transaction).
        let marked = self.region_marked().read;
        let unmarked: Vec<usize> = (new.iter().copied())
            .filter(|l| !marked.contains(l))
            .collect();
        self.mark_held(&unmarked, false, span);
        self.held.extend(new);
        before
    }
    /// Holds the marker of the object in frame slot `slot` (a loop temporary no code of
    /// the loop stores to: the list a `for` loop iterates) while the loop is compiled,
    /// marking it first; its loads are to be added to [`FnCompiler::held_values`]. Returns
    /// what [`Self::release_held`] takes after the loop.
    pub(crate) fn hold_temp(&mut self, slot: usize, span: Span) -> usize {
        let before = self.held.len();
        if self.sh.read_barriers && !self.compact {
            self.mark_held(&[slot], false, span);
            self.held.push(slot);
        }
        before
    }
    /// After the loop whose [`Self::hold_loop_marks`] or [`Self::hold_temp`] returned
    /// `before`: its marks are no longer held (the code after it does not rely on them).
    pub(crate) fn release_held(&mut self, before: usize) {
        self.held.truncate(before);
        if before == 0 {
            self.held_values.clear();
        }
    }
    /// After a call that may have begun a transaction whose restart point is in this frame
    /// (a poll's slow path, a join, a part): stores the held markers again, out of line (see
    /// "Marks held around loops" in the module docs).
    /// `cold`: the code after it is a slow path's.
    pub(crate) fn remark_held(&mut self, span: Span, cold: bool) {
        let held = self.held.clone();
        self.mark_held(&held, cold, span);
    }
    /// The current word of the held local or loop temporary `l`.
    fn held_value(&mut self, l: usize) -> Value {
        if l < self.nlocals {
            self.local_value(l)
        } else {
            self.load_slot(l)
        }
    }
    /// Stores the read marker of the objects in `held` (locals or loop temporaries; those
    /// holding no reference are passed over), in blocks laid out as cold code where `cold`.
    /// The region goes on after it where it was valid (nothing here calls).
    pub(crate) fn mark_held(&mut self, held: &[usize], cold: bool, span: Span) {
        if held.is_empty() || !self.sh.read_barriers {
            return;
        }
        let carry = self.region.block.is_some() && self.region.block == self.b.current_block();
        // Stored again after a boundary: slow-path code, labelled as the repairs are.
        if cold {
            self.begin_sequence(super::LOC_REGION_REPAIR);
        }
        let rv = self.read_version();
        for &l in held {
            let v = self.held_value(l);
            let not_ref = self.is_not_ref(v);
            let mark = self.b.create_block();
            let next = self.b.create_block();
            self.b.ins().brif(not_ref, next, &[], mark, &[]);
            if cold {
                self.b.set_cold_block(mark);
                self.b.set_cold_block(next);
            }
            self.b.switch_to_block(mark);
            self.read_barrier_ref_rv(v, rv, span);
            self.b.ins().jump(next, &[]);
            self.b.switch_to_block(next);
        }
        if cold {
            self.end_sequence();
        }
        if carry {
            self.region.block = self.b.current_block();
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
    /// write-barrier flag test (and slow path) of each of `marks.written` that holds an
    /// instance (the call ended the region, and may
    /// have run a minor collection, which re-sets the flag of the objects it promotes; this
    /// re-establishes the region on this edge). `span` names the slow path's operation.
    pub(crate) fn repair_region(&mut self, marks: &Marks, span: Span) {
        // Reached only from the slow path: out of line, like the rest of it.
        if let Some(cur) = self.b.current_block() {
            self.b.set_cold_block(cur);
        }
        // The version after the call, for the markers and for the join (which reads it from
        // the variable where the fast path had it: see `ReadVersion::InVar`).
        let marking = self.sh.read_barriers && !marks.read.is_empty();
        // In a loop, the call's reload defined the variable with the version after it;
        // elsewhere the join reads it from the variable where the fast path had it (see
        // `ReadVersion::InVar`): loaded here.
        let rv = if self.sh.read_barriers && self.loop_depth > 0 {
            marking.then(|| self.read_version())
        } else {
            marks.read_version.known().then(|| {
                self.begin_sequence(super::LOC_REGION_REPAIR);
                let rv = self.load_read_version();
                self.end_sequence();
                rv
            })
        };
        for &l in marks.read.iter().filter(|_| marking) {
            self.begin_sequence(super::LOC_REGION_REPAIR);
            let v = self.local_value(l);
            let not_ref = self.is_not_ref(v);
            let mark = self.b.create_block();
            let next = self.b.create_block();
            self.b.ins().brif(not_ref, next, &[], mark, &[]);
            self.b.set_cold_block(mark);
            self.b.switch_to_block(mark);
            if let Some(rv) = rv.filter(|_| marking) {
                self.read_barrier_ref_rv(v, rv, span);
            }
            self.b.ins().jump(next, &[]);
            self.b.set_cold_block(next);
            self.b.switch_to_block(next);
            self.end_sequence();
        }
        if marks.written.is_empty() {
            return;
        }
        let site = self.site(span);
        for &l in &marks.written {
            self.begin_sequence(super::LOC_REGION_REPAIR);
            let v = self.local_value(l);
            let first_new = self.b.func.dfg.num_blocks();
            let next = self.b.create_block();
            // Read under the marker just stored again (`written` is a subset of `read`).
            let is_inst = self.has_type(v, self.sh.types.instance.0, next);
            let inst = self.b.create_block();
            self.b.ins().brif(is_inst, inst, &[], next, &[]);
            self.b.switch_to_block(inst);
            self.flag_test(v, site, next);
            // All of it is slow-path code.
            self.cold_from(first_new);
            self.b.switch_to_block(next);
            self.end_sequence();
        }
    }
    /// On a slow path after its call, before [`Self::jump_keeping`] to a join: marks again
    /// the objects of `marks.read` ([`Self::repair_region`]; after a call, whatever it did,
    /// the markers of the transaction running now), and goes on with them as its region.
    pub(crate) fn repair_and_keep(&mut self, marks: &Marks, span: Span) {
        let mut marks = marks.clone();
        marks.after_call();
        // Without read barriers (`--gil`) there is nothing to store again.
        if self.sh.read_barriers {
            self.repair_region(&marks, span);
        }
        self.region = Region {
            block: self.b.current_block(),
            marks,
        };
    }
    /// On a slow path after its calls, `marks` being the fast path's: goes on with the read
    /// marks of `marks` that the calls kept (the region's here: see "Marks across calls"),
    /// and redoes the write-barrier flag test of those of `marks.written` among them
    /// ([`Self::repair_region`]), so that its edges to a kept target ([`Self::record_edge`])
    /// bring the fast path's marks.
    pub(crate) fn repair_all_and_keep(&mut self, marks: &Marks, span: Span) {
        let kept = self.region_marked();
        let read: Vec<usize> = (marks.read.iter().copied())
            .filter(|l| kept.read.contains(l))
            .collect();
        let written: Vec<usize> = (marks.written.iter().copied())
            .filter(|l| read.contains(l))
            .collect();
        let redo = Marks {
            read: Vec::new(),
            written,
            read_version: ReadVersion::Unknown,
        };
        self.repair_region(&redo, span);
        self.region = Region {
            block: self.b.current_block(),
            marks: Marks { read, ..redo },
        };
    }
    /// Goes on in the current block with `marks` as its region: the caller knows they hold
    /// at its start (every path into it from where they were established makes no call).
    pub(crate) fn region_with(&mut self, marks: &Marks) {
        let mut marks = marks.clone();
        marks.read_version = ReadVersion::Unknown;
        self.region = Region {
            block: self.b.current_block(),
            marks,
        };
    }
    /// Enters the join `done` of a fast path whose end had `marks`, every other edge having
    /// been repaired ([`Self::repair_region`]) or having made no call since the region's
    /// barriers: the region goes on there, its read version in [`FnCompiler::rv_var`] (which
    /// every load of it defines, the repairs' after their calls included).
    pub(crate) fn enter_join(&mut self, done: Block, mut marks: Marks) {
        // Loaded on the fast path, and again on each other edge by its repair: the value does
        // not dominate the join, the variable has it.
        if marks.read_version.known() {
            marks.read_version = ReadVersion::InVar;
        }
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
        self.begin_sequence(super::LOC_CARD_WB);
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
        self.end_sequence();
    }
    /// Write barrier of a non-carded object: `test byte gs:[obj + flags], WB; jnz slow`.
    ///
    /// `obj` is the instance held by `local` (if it came from a local):
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
        // A subset of `read` (see `Marks::written`).
        if let Some(l) = local.filter(|l| self.region.marks.read.contains(l)) {
            self.region.marks.written.push(l);
        }
    }
    /// The flag test of a non-carded object `obj`, continuing at `done` (after the slow path,
    /// on a cold block, when the flag is set); `site` names the write.
    pub(super) fn flag_test(&mut self, obj: Value, site: i64, done: Block) {
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
    pub(super) fn barrier_slow_path(
        &mut self,
        stub: Helper,
        args: &[Value],
        site: i64,
        done: Block,
    ) {
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
        let call = self.b.ins().call(f, &[self.ctx]);
        // On success, the same transaction: the read version stays.
        self.unreloaded_calls.insert(call);
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
}
