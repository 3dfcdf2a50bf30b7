//! AST → Cranelift IR for one function (or the module body), split by concern:
//! - `frames.rs`: frames and roots (prologue, epilogue, slots, spills);
//! - `barriers.rs`: the inline barriers and their elision regions;
//! - `txn.rs`: transaction boundaries (polls, restart points, the return boundary);
//!   `joins.rs`: restart points at join statements;
//! - `calls.rs`: helper and direct calls, error checks and trace sites;
//! - `values.rs`: tests on tagged words, the guards of fast paths;
//! - `expr.rs`, `stmt.rs`: expressions and statements; `literals.rs`: displays of constants;
//!   `floats.rs`: unboxed float trees; `inline.rs`: small leaf functions computed at their
//!   calls; `lists.rs`: list fast paths; `sites.rs`: attribute,
//!   method-call and class-call sites;
//! - `parts.rs`, `chains.rs`, `compares.rs`, `weight.rs`: huge bodies, blocks, displays,
//!   chains of operators and comparisons, and deep expressions compiled as parts, cut by
//!   their nodes.
//!
//! What compiled code and the object model agree on (the context, tagged words, headers,
//! the helper table) is `stmjit_vm::abi`.
//!
//! # Attribute and method-call sites
//! Every `o.name`, `o.name = v` and `o.name(args)` has a polymorphic cache of a few
//! `class id → slot` or `class id → function` entries (`stmjit_vm::site_cache`), tested inline
//! (`sites.rs`). A method-call site hit calls the cached JIT function by its address with
//! the receiver and arguments in registers, like a direct call. Method-call entries follow
//! the class table's rules (`stmjit_vm::class_table`): they are emptied when a class attribute is
//! assigned or a class shape grows, and not filled while such an assignment is in flight.
//! A call `f(args)` whose callee is not a known function has such a cache too, of classes:
//! a hit allocates the instance in one helper and calls the cached `__init__` directly.
//!
#![allow(deprecated)]

mod attrs;
mod barriers;
mod calls;
mod chains;
mod compares;
mod escapes;
mod expr;
mod facts;
mod finally;
mod float_loops;
mod floats;
mod frames;
mod global_cache;
mod inline;
mod inline_methods;
mod int_loops;
mod int_trees;
mod joins;
mod lists;
mod literals;
mod loop_classes;
mod loop_exits;
mod moves;
mod parts;
mod range_loops;
mod raw_slots;
mod sites;
mod stmt;
mod tries;
mod txn;
mod unboxed;
mod values;
mod weight;

pub(crate) use barriers::Region;
pub use facts::BodyFacts;
pub use parts::{
    fn_part_locals, has_loop, is_huge, split_body, split_fn_body, MODULE_PART, MODULE_SPLIT_ABOVE,
};
pub(crate) use raw_slots::raw_attrs;

use cranelift_codegen::ir::{self, types::I64, Block, FuncRef, InstBuilder, SourceLoc, Value};
use cranelift_frontend::{FunctionBuilder, Variable};
use cranelift_module::FuncId;
use std::collections::{HashMap, HashSet};
use stmjit_lang::ast::Program;
use stmjit_lang::diag::Span;
use stmjit_runtime::value::NONE;
use stmjit_vm::abi::Helper;
use stmjit_vm::class_table::ClassTable;
use stmjit_vm::objects::Types;
use stmjit_vm::{CodeTables, Constants, Names};

/// Bits of a Cranelift `SourceLoc` that name the sequence (a `LOC_*` below, or 0 for the
/// ordinary code of a line); the bits above them hold the source line. `--dump-asm` maps the
/// code ranges Cranelift reports back to both (see [`loc_line`], [`loc_kind`]).
pub const LOC_KIND_BITS: u32 = 4;

/// The source location of code of sequence `kind` (0: none) on source line `line`.
pub fn source_loc(line: u32, kind: u32) -> SourceLoc {
    SourceLoc::new(line << LOC_KIND_BITS | kind)
}

/// The source line of a location (`None` for code the compiler placed on no line).
pub fn loc_line(loc: SourceLoc) -> Option<u32> {
    let line = loc.bits() >> LOC_KIND_BITS;
    (!loc.is_default() && line != 0).then_some(line)
}

/// The sequence (a `LOC_*`, or 0) of a location.
pub fn loc_kind(loc: SourceLoc) -> u32 {
    if loc.is_default() {
        0
    } else {
        loc.bits() & ((1 << LOC_KIND_BITS) - 1)
    }
}

/// Marks the safe-point poll, for `--dump-asm` annotations.
pub const LOC_POLL: u32 = 1;
/// Marks the write-barrier sequence of card-marked stores.
pub const LOC_CARD_WB: u32 = 2;
/// Marks the inline list fast paths (indexing, `len`, `append`, `pop`).
pub const LOC_LIST_FAST: u32 = 3;
/// Marks the inline instance-attribute fast path.
pub const LOC_ATTR_FAST: u32 = 4;
/// Marks the inline nursery allocation.
pub const LOC_ALLOC: u32 = 5;
/// Marks the read markers a slow path stores again, and the write-barrier flag tests it
/// redoes, to keep the region across its join (see "Barrier elision" above).
pub const LOC_REGION_REPAIR: u32 = 6;
/// Marks the test and update of an instance slot's float bit (`attrs.rs`): only for the
/// attribute names that some float tree stores raw (`raw_slots.rs`).
pub const LOC_FLOAT_BITS: u32 = 7;
/// Marks the load of the read version right after a call that may end the transaction
/// (see "The read version in a variable" in `barriers.rs`).
pub const LOC_RV_RELOAD: u32 = 8;

/// What the compiler of one function needs from the program-level compiler.
pub struct Shared<'a> {
    /// The code space (helpers and functions declared in its module); parts of the function
    /// being compiled are compiled into it meanwhile (`parts.rs`).
    pub jit: &'a mut stmjit_backend::Jit,
    /// What JIT code calls for each helper: its import, or its `preserve_all` stub.
    pub helpers: &'a HashMap<Helper, FuncId>,
    /// The program.
    pub program: &'a Program,
    /// Its object types.
    pub types: Types,
    /// Interned names (the compiler interns the names its code passes to helpers).
    pub names: &'a Names,
    /// The program's literal objects.
    pub consts: &'a Constants,
    /// Trace sites, class statements, site caches, code addresses: filled as the code
    /// refers to them.
    pub code: &'a CodeTables,
    /// The class table, which owns the method-call and class-call site caches.
    pub classes: &'a ClassTable,
    /// Program function id bound to each global by a module-level `def` (direct calls).
    pub def_of_global: &'a HashMap<usize, usize>,
    /// The attribute names whose slots may hold a raw float ([`raw_slots::raw_attrs`]).
    pub raw_attrs: &'a HashSet<String>,
    /// The segment layout (card marker displacement).
    pub card_disp: u64,
    /// The target's frontend configuration.
    pub frontend: cranelift_codegen::isa::TargetFrontendConfig,
    /// Read barriers are emitted (off with `--gil`: one transaction at a time).
    pub read_barriers: bool,
    /// Read barriers also store their site in the runtime's read-site table
    /// (`Stm::records_read_sites`: `--stats`), so that conflicts name the aborted read.
    pub read_sites: bool,
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
    /// `STMJIT_QUICK=1` (tests): every function keeps its locals in frame slots, as huge
    /// ones do (see [`locals_in_slots`]).
    pub quick: bool,
    /// The declaration of each program function in the module, by function id.
    pub func_ids: &'a [FuncId],
    /// Every program function is defined before the code compiled now is finalized
    /// (`STMJIT_EAGER=1`, `--dump-asm`): a direct call names its callee by relocation.
    pub all_defined: bool,
    /// `STMJIT_VERIFY=1`: the IR verifier runs on the parts compiled meanwhile too.
    pub verify: bool,
    /// The first error of compiling such a part: the function fails with it.
    pub failed: Option<stmjit_backend::JitError>,
    /// The bytes of code of such parts, counted in the function's (`--stats`).
    pub parts_code: usize,
    /// Parts being compiled (one inside another): inside one, a deep expression's part
    /// is deferred (`chains.rs`).
    pub parts_open: usize,
    /// Parts declared and called, to compile once the code calling them is (`chains.rs`).
    pub deferred: Vec<(FuncId, chains::Deferred)>,
}

/// Above this many statements times locals, a function keeps its locals in frame slots
/// ([`FnCompiler::locals_in_slots`]). Locals in SSA variables are written to their slots
/// and read back around every call that may move objects: IR and code generation in the
/// function's calls times its locals, which grows as the square of a function's size
/// (a 1 000-line function of 13 locals: 325 000 IR instructions, 245 000 with its locals in
/// slots, and code generation twice as fast). Below it, a function's locals stay in
/// registers between calls (hot loops).
const LOCALS_IN_SLOTS_ABOVE: usize = 4096;

/// Whether a function of `nlocals` locals and body `body` keeps its locals in frame slots
/// (always when it is compiled as parts: they share its frame).
pub fn locals_in_slots(body: &[stmjit_lang::ast::Stmt], nlocals: usize, forced: bool) -> bool {
    let n = statements(body);
    forced || n.saturating_mul(nlocals) > LOCALS_IN_SLOTS_ABOVE || parts::is_huge(body)
}

/// The statements of `body`, those in nested blocks included (not those of the functions
/// and classes it defines: compiled apart).
pub(crate) fn statements(body: &[stmjit_lang::ast::Stmt]) -> usize {
    body.iter()
        .map(|s| 1 + s.blocks().into_iter().map(statements).sum::<usize>())
        .sum()
}

/// How a compiled function gets its shadow-stack frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FrameKind {
    /// Its own: pushed by its prologue, popped by its epilogue.
    Own,
    /// Its caller's (a part of a huge function's body or display, `parts.rs`): its prologue
    /// takes the frame as its second parameter, zeroes the slots from `zero_from` on, and
    /// sets the shadow stack's top past its own temporaries; a `return v` stores `v` in
    /// local slot `ret` if any (a fall off the end stores `UNBOUND`) and the part returns
    /// `NONE` (or `ERR`).
    Borrowed {
        ret: Option<usize>,
        zero_from: usize,
    },
}

/// What [`FnCompiler::compile_with`] compiles besides the code of the body.
pub(crate) struct Shape<'s> {
    /// Parameters after the context (with the cells of the free variables).
    pub arity: usize,
    /// Locals (the parameters first).
    pub nlocals: usize,
    /// The whole body of the function, for the analyses of its locals.
    pub body: &'s [stmjit_lang::ast::Stmt],
    /// The statements compiled here (`try` regions, the entry poll's position).
    pub emitted: &'s [stmjit_lang::ast::Stmt],
    /// The slots of the cell variables, made cells at entry.
    pub cells: &'s [usize],
    /// The function's index for traces.
    pub func_idx: u32,
    /// Whose frame it uses.
    pub frame: FrameKind,
    /// The locals definitely assigned at entry, when not just the parameters (a part).
    pub assigned: Option<Vec<bool>>,
    /// Temporaries in use at entry (a part of a display: its caller's, and its items).
    pub temps: usize,
    /// The context of a part's caller (`escapes.rs`).
    pub outer: Option<escapes::Outer>,
    /// The facts of `body`, when the caller made them already (a huge function's parts
    /// share its own); else made from `body`.
    pub facts: Option<BodyFacts>,
}

/// Compiler of one function body.
pub struct FnCompiler<'a, 'b> {
    pub(crate) b: FunctionBuilder<'b>,
    pub(crate) sh: &'b mut Shared<'a>,
    refs: HashMap<Helper, FuncRef>,
    pub(crate) ctx: Value,
    pub(crate) frame_var: Variable,
    /// The segment's read version, defined before each loop and again right after every
    /// call in it that may end the transaction: the read barriers of loops read it from
    /// here (see "The read version in a variable" in `barriers.rs`).
    pub(crate) rv_var: Variable,
    /// The calls not followed by a load of the read version into [`Self::rv_var`]: those
    /// that cannot end the transaction (helpers without
    /// [`stmjit_vm::abi::Effects::MayMove`], barrier stubs) and those outside loops, where
    /// no barrier reads the variable; [`Self::check_read_version_reloads`] checks every
    /// other call.
    pub(crate) unreloaded_calls: HashSet<ir::Inst>,
    /// The loads of the read version ([`Self::load_read_version`]).
    pub(crate) rv_loads: HashSet<ir::Inst>,
    /// The `while` and `for` statements around the code being compiled, in which the read
    /// barriers take the read version from [`Self::rv_var`] (see "The read version in a
    /// variable" in `barriers.rs`).
    pub(crate) loop_depth: usize,
    /// One SSA variable per local: locals live in registers and are written to their
    /// frame slots only around calls (where the GC may scan and update them).
    pub(crate) local_vars: Vec<Variable>,
    /// One `i32` SSA variable per local (locals in SSA variables only): `class id ^
    /// `[`sites::FACT_KEY`] when the local is known to hold an instance of that class, 0
    /// (unknown) otherwise. Invariant on every path: 0 or the class of the local's current
    /// value. Set to 0 at entry, at each assignment and at each restart; set to the class
    /// when an attribute access or a method call of the local has tested it. Why: an
    /// access of a known local probes its site with it, no type test or class loads.
    pub(crate) class_vars: Vec<Variable>,
    /// Locals whose class variable was set to a class somewhere earlier in compile order,
    /// or that an enclosing loop may carry round its back-edge (`loop_classes.rs`): only
    /// those can be known (elsewhere the variable is 0 on every path compiled so far, and
    /// an access tests the class in full, as it would on a miss).
    pub(crate) class_set: Vec<bool>,
    /// Locals live in their frame slots (a load at each read, a store at each assignment),
    /// not in SSA variables written to their slots and read back around every call: for
    /// huge functions, where that costs a function's calls times its locals in IR and in
    /// code generation (see [`locals_in_slots`]).
    pub(crate) locals_in_slots: bool,
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
    /// Where the `break`s of the loop about to be compiled go instead of its exit: past its
    /// `else` block ([`FnCompiler::loop_with_else`]); taken by the loop's body.
    pub(crate) break_past_else: Option<Block>,
    /// A part whose `break` and `continue` leave it (`loop_exits.rs`).
    pub(crate) loop_signals: bool,
    pub(crate) func_idx: u32,
    pub(crate) ret_block: Block,
    /// The frame slot a `return` stores its value in (a part of a huge function's body,
    /// `parts.rs`), where a block part of this code may return.
    pub(crate) ret_slot: Option<usize>,
    /// The expression being compiled is small: its subexpressions need no counting
    /// (`chains.rs`).
    pub(crate) light: bool,
    /// Code that runs once each time it is entered, compiled with the quick tier (a part
    /// without loops, `parts.rs`): the smallest code rather than the fastest, since huge
    /// sources are made of such parts. No inline float paths (the helpers compute them),
    /// and one shared exit for the errors of its checks outside `try` ([`Self::leave`]).
    pub(crate) compact: bool,
    /// The shared exit of [`Self::compact`] code's error checks, once one needs it: records
    /// a trace entry at the site it takes and leaves the frame (built after the body; the
    /// checks of the code made after it, the entry poll's, have their own exits).
    pub(crate) leave: Option<Block>,
    /// [`Self::leave`] is built: no more checks take it.
    pub(crate) leave_built: bool,
    /// Nodes of huge expressions compiled in place in this code so far: past
    /// `chains::CHAIN_PART`, a huge subexpression is cut into a part (`chains.rs`).
    pub(crate) inline_nodes: usize,
    /// The barrier-elision region (see the module docs).
    pub(crate) region: Region,
    /// Loop-held read marks: the locals (and loop temporaries) whose object's read marker
    /// is stored in the running transaction wherever the code being compiled runs, for the
    /// loops around it (`barriers.rs`, "Marks held around loops").
    pub(crate) held: Vec<usize>,
    /// The values loaded from the held loop temporaries of [`Self::held`] (a list a `for`
    /// loop iterates), whose read barrier is elided as a held local's.
    pub(crate) held_values: Vec<Value>,
    /// The held marks at each restart point made while some were held, by point number: the
    /// restart dispatch stores them again before it resumes there.
    pub(crate) restart_held: Vec<(usize, Vec<usize>)>,
    /// The joins that keep the region ([`FnCompiler::jump_keeping`]): what their edges so far
    /// have established, and how many edges; checked against the finished code
    /// ([`FnCompiler::check_kept_joins`]).
    pub(crate) kept: barriers::KeptJoins,
    /// The local each value was loaded from, while the local still holds it (cleared at
    /// its assignment and at reloads).
    pub(crate) local_of: HashMap<Value, usize>,
    /// Values known to be tagged ints where the code being emitted runs (besides int
    /// constants): an inlined body's arguments and results in its all-ints version
    /// (`inline.rs`), whose type tests are then left out.
    pub(crate) known_ints: HashSet<Value>,
    /// `with` blocks open at the current point (each holds `Ctx::atomic_depth` up by one).
    pub(crate) with_depth: usize,
    /// Restart points: the block each poll resumes at, by poll number.
    pub(crate) restarts: Vec<Block>,
    /// The globals read through variables in the loops being compiled, innermost last
    /// (`global_cache.rs`).
    pub(crate) global_cache: Vec<global_cache::CachedGlobal>,
    /// The variable of each global cached somewhere in this code (one per global: a
    /// variable costs memory by the function's blocks, see [`Self::match_var`]).
    pub(crate) global_vars: Vec<(usize, Variable)>,
    /// The globals cached at each restart point made inside such a loop, by point number.
    pub(crate) restart_globals: Vec<(usize, Vec<global_cache::CachedGlobal>)>,
    /// The restart dispatch block (created with the first error path).
    pub(crate) dispatch: Option<Block>,
    /// The restart point at the start of the join statement being compiled, until its
    /// join's call takes it (`joins.rs`).
    pub(crate) join_point: Option<u64>,
    /// The body has a call expression (`f(x)`, `f(k=v)`, `o.m(x)`) other than a call of a
    /// builtin by name: with no loop either, the function gets no entry poll (see
    /// [`FnCompiler::compile`]).
    pub(crate) has_calls: bool,
    /// Compiling the generic path of an unboxed float tree (`floats.rs`): its subtrees are
    /// not made trees again.
    pub(crate) in_float_generic: bool,
    /// Compiling the generic path of an int-tree condition (`int_trees.rs`): it is not made
    /// a tree again.
    pub(crate) in_int_generic: bool,
    /// Locals that hold ints wherever the code being compiled runs: in the fast version of a
    /// loop, those its condition tests, until the body stores to them (`int_loops.rs`).
    /// Their reads are known ints.
    pub(crate) int_locals: Vec<usize>,
    /// Locals among [`Self::int_locals`] whose int is also known to lie in `0..2**32`
    /// wherever the code being compiled runs: in the fast version of a `while` loop, the
    /// dividends of its divisions that it does not assign, tested once before it
    /// (`int_loops.rs`). Their reads go into [`Self::known_narrow`].
    pub(crate) narrow_locals: Vec<usize>,
    /// Tagged ints known to lie in `0..2**32`: a division of one needs no test of it for
    /// the 32-bit path (`expr.rs`, `narrow_or_wide`).
    pub(crate) known_narrow: HashSet<Value>,
    /// The `f64` of each float local the condition of the fast version of a float loop
    /// read, in its body until the body stores to the local (`float_loops.rs`):
    /// `(slot, int_ok, f64)` as a float tree's leaves memo has them (`floats.rs`).
    pub(crate) loop_leaves: Vec<(usize, bool, Value)>,
    /// Locals the function assigns floats to (`floats.rs`), by slot.
    pub(crate) float_locals: Vec<bool>,
    /// Attribute names the function stores float trees to (`floats.rs`): a tree with such
    /// an attribute among its leaves is one where a float is likely.
    pub(crate) float_attrs: std::rc::Rc<[String]>,
    /// The unboxed value of each float local kept unboxed (`floats.rs`), by slot: what the
    /// local holds while its word is `UNBOXED`. None where locals live in frame slots.
    pub(crate) float_vars: Vec<Option<Variable>>,
    /// The copies `n = m` of float locals that may move `m`'s unboxed value (`moves.rs`),
    /// by statement address.
    pub(crate) moves: std::rc::Rc<HashSet<*const stmjit_lang::ast::Stmt>>,
    /// The opaque leaves of the float tree being compiled (`unboxed.rs`), the temporaries
    /// holding their values, and for a leaf read from an instance slot, the `f64` it holds
    /// where its temporary holds `UNBOXED` (`attrs.rs`).
    pub(crate) opaque_leaves: Vec<(*const stmjit_lang::ast::Expr, usize, Option<Value>)>,
    /// The statement being compiled (where boxing an unboxed local reports an error).
    pub(crate) stmt_span: Span,
    /// The source line of the statement being compiled (0 before the first), recorded in
    /// the source location of the code emitted for it (see [`source_loc`]).
    pub(crate) line: u32,
    /// The attribute or global of the `o.name`, `o.name = v` or global access being
    /// compiled: the sites registered meanwhile carry it ([`stmjit_vm::Site::accesses`]).
    pub(crate) accesses: Option<stmjit_vm::Accessed>,
    /// Active `try` regions, innermost last (`tries.rs`).
    pub(crate) tries: Vec<tries::Region>,
    /// The `try` statements with a `finally` around the code being compiled (in this code,
    /// not around a part), innermost last: `break`, `continue` and `return` go through them.
    pub(crate) finallies: Vec<finally::Finally>,
    /// The shared paths out (`return`, `break`, `continue`: [`finally::Exit`]) of each `try`
    /// with a `finally` of this code, each once a way out needs it
    /// ([`finally::Finally::exit`]).
    pub(crate) fin_exits: Vec<[Option<Block>; 3]>,
    /// The `with` blocks open around a part at its call (0 in a function): a `return` in
    /// the part leaves only those above, the code calling it the others.
    pub(crate) outer_with: usize,
    /// Running `except` clauses: their `try` level and the slot of their exception.
    pub(crate) handling: Vec<(usize, usize)>,
    /// The slot of `Ctx::atomic_depth` at entry (bodies with `try` statements).
    pub(crate) entry_atomic: Option<usize>,
    /// The handlers' shadow-stack tops, patched with the frame size at the end.
    pub(crate) top_fixups: Vec<ir::Inst>,
    /// The variable of `except (A, B)` clauses (whether a class matched so far): one for the
    /// whole function, declared at its first use. A Cranelift variable's definitions are a
    /// map by block as large as the function's blocks when it is first defined, so a
    /// variable per clause cost the function's clauses times its blocks (690 MB of the
    /// 850 MB peak compiling a 10 000-line function).
    pub(crate) match_var: Option<Variable>,
    /// The escape regions of a part (`escapes.rs`), filled by its epilogue.
    pub(crate) escapes: Vec<Block>,
    /// A part's shadow-stack top, at least its caller's (`FnCompiler::part_prologue`).
    pub(crate) top_var: Option<Variable>,
    /// Whether a call from this frame would raise a RecursionError (a byte, 1 if so),
    /// computed once by the prologue for the inline calls and methods of the body
    /// (`inline.rs`, `FnCompiler::inline_room`): made at the first of them, in a function
    /// with a frame of its own (not a part). A stack slot, not a variable: Cranelift would
    /// compute a variable's pure comparisons again at each use.
    pub(crate) room_slot: Option<ir::StackSlot>,
    /// The most shadow-stack bytes the frame of a callee inlined in this body may take:
    /// what the prologue's [`Self::room_slot`] test asks room for.
    pub(crate) room_need: i64,
}

/// Memory flags of shadow-stack and context accesses.
pub(crate) fn mf() -> ir::MemFlagsData {
    ir::MemFlagsData::trusted()
}

impl<'a, 'b> FnCompiler<'a, 'b> {
    /// Compiles `body` into `func`: `arity` parameters after the context (with the cells
    /// of the free variables), `nlocals` locals (the parameters first), `cells` the slots of
    /// the cell variables. `func_idx` is the function's index for traces.
    #[allow(clippy::too_many_arguments)]
    pub fn compile(
        func: &'b mut ir::Function,
        fbc: &'b mut cranelift_frontend::FunctionBuilderContext,
        sh: &'b mut Shared<'a>,
        arity: usize,
        nlocals: usize,
        body: &[stmjit_lang::ast::Stmt],
        cells: &[usize],
        func_idx: u32,
    ) {
        let shape = Shape {
            arity,
            nlocals,
            body,
            emitted: body,
            cells,
            func_idx,
            frame: FrameKind::Own,
            assigned: None,
            temps: 0,
            outer: None,
            facts: None,
        };
        Self::compile_with(func, fbc, sh, shape, |c| c.stmts(body));
    }

    /// Compiles into `func` the function `shape` describes, with the code of its body made
    /// by `emit` (`shape.emitted` describes it to the analyses that precede it: `try`
    /// regions, the entry poll's position). Returns the locals definitely assigned at the
    /// end of the body.
    fn compile_with(
        func: &mut ir::Function,
        fbc: &mut cranelift_frontend::FunctionBuilderContext,
        sh: &mut Shared<'a>,
        shape: Shape<'_>,
        emit: impl for<'x> FnOnce(&mut FnCompiler<'a, 'x>),
    ) -> Vec<bool> {
        let Shape {
            arity,
            nlocals,
            body,
            emitted,
            cells,
            func_idx,
            frame,
            assigned,
            temps,
            outer,
            facts,
        } = shape;
        let facts = facts.unwrap_or_else(|| BodyFacts::of(body, nlocals, sh.quick));
        let b = FunctionBuilder::new(func, fbc);
        let mut c = FnCompiler::new(b, sh, arity, nlocals, facts, func_idx);
        if let Some(a) = assigned {
            c.assigned = a;
        }
        if let FrameKind::Borrowed { ret, .. } = frame {
            // A part reads and writes the locals where its caller keeps them.
            c.locals_in_slots = true;
            c.compact = !parts::has_loop(emitted);
            c.ret_slot = ret;
            c.top_var = Some(c.b.declare_var(I64));
        }
        c.temps = temps;
        c.max_temps = temps;
        let entry = c.b.create_block();
        // First in the layout, though its code (the prologue) is emitted last: the builder
        // appends a block to the layout at its first instruction unless it is there already.
        c.b.func.layout.append_block(entry);
        c.b.append_block_params_for_function_params(entry);
        let body_block = c.b.create_block();
        let ret = c.b.create_block();
        c.b.append_block_param(ret, I64);
        c.ret_block = ret;
        let params = c.b.block_params(entry).to_vec();
        c.ctx = params[0];
        c.frame_var = c.b.declare_var(I64);
        c.rv_var = c.b.declare_var(ir::types::I8);
        if !c.locals_in_slots {
            c.local_vars = (0..nlocals).map(|_| c.b.declare_var(I64)).collect();
            let floats = c.float_locals.clone();
            c.float_vars = floats
                .into_iter()
                .map(|f| f.then(|| c.b.declare_var(ir::types::F64)))
                .collect();
            c.class_vars = (0..nlocals)
                .map(|_| c.b.declare_var(ir::types::I32))
                .collect();
            c.class_set = vec![false; nlocals];
        }
        // Body first (the frame size is known only after it).
        c.b.switch_to_block(body_block);
        let span = emitted.first().map(|s| s.span).unwrap_or_default();
        c.make_cells(cells, span);
        if let Some(o) = outer {
            c.enter_outer(o);
        }
        if tries::has_try(emitted) && c.entry_atomic.is_none() {
            c.setup_tries();
        }
        emit(&mut c);
        if !c.is_filled() {
            // A part falling off its end returns no value (`parts.rs`).
            let end = match frame {
                FrameKind::Own => NONE,
                FrameKind::Borrowed { .. } => stmjit_vm::UNBOUND,
            };
            let none = c.b.ins().iconst(I64, end as i64);
            c.b.ins().jump(ret, &[none.into()]);
        }
        c.build_leave();
        let assigned = c.assigned.clone();
        // No local is unboxed before the body (the entry poll boxes none).
        c.float_vars.clear();
        // What follows is the function's own machinery, of no source line.
        c.at_line(0);
        // Known before the prologue's poll is made: whether the function polls at all.
        let polls = !c.restarts.is_empty() || c.has_calls;
        match frame {
            FrameKind::Own => {
                c.epilogue(polls);
                c.prologue(entry, &params[1..], arity);
            }
            FrameKind::Borrowed { ret, zero_from } => {
                c.part_epilogue(ret);
                c.part_prologue(entry, params[1], zero_from);
            }
        }
        // Function entry: a poll (calls count against the budget too), restarting at the body;
        // none in a function without loops (no back-edge polls) and without calls. Such a
        // function runs a bounded number of operations between its caller's polls: whatever
        // runs long around it is a loop or a recursion, and a recursion needs a call
        // expression in some function of the cycle (which polls), or goes through Rust (an
        // operator's special method, a builtin's callback), where `calls::call_function`
        // ticks the budget and answers requests. It cannot open a transaction either, so it
        // never restarts (see `build_restarts`). A builtin called by name counts as no call:
        // it runs Rust code, whose calls back into JIT code tick the budget themselves.
        if !polls {
            c.b.ins().jump(body_block, &[]);
        } else {
            c.poll_to(span, body_block);
        }
        c.build_restarts();
        c.patch_tops();
        c.check_kept_joins();
        c.check_read_version_reloads();
        c.b.seal_all_blocks();
        let fc = c.sh.frontend;
        c.b.finalize(fc);
        debug_assert_eq!(func.layout.entry_block(), Some(entry));
        assigned
    }

    /// The compiler of a function of `arity` parameters and `nlocals` locals, before its
    /// blocks and variables are made.
    fn new(
        b: FunctionBuilder<'b>,
        sh: &'b mut Shared<'a>,
        arity: usize,
        nlocals: usize,
        facts: BodyFacts,
        func_idx: u32,
    ) -> Self {
        let BodyFacts {
            in_slots: locals_in_slots,
            float_locals,
            float_attrs,
            moves,
        } = facts;
        FnCompiler {
            b,
            sh,
            refs: HashMap::new(),
            ctx: Value::from_u32(0),
            frame_var: Variable::from_u32(0),
            rv_var: Variable::from_u32(0),
            unreloaded_calls: HashSet::new(),
            rv_loads: HashSet::new(),
            loop_depth: 0,
            local_vars: Vec::new(),
            class_vars: Vec::new(),
            class_set: Vec::new(),
            locals_in_slots,
            assigned: (0..nlocals).map(|i| i < arity).collect(),
            nlocals,
            temps: 0,
            max_temps: 0,
            loops: Vec::new(),
            break_past_else: None,
            loop_signals: false,
            func_idx,
            ret_block: Block::from_u32(0),
            ret_slot: None,
            light: false,
            compact: false,
            leave: None,
            leave_built: false,
            inline_nodes: 0,
            region: Region::default(),
            held: Vec::new(),
            held_values: Vec::new(),
            restart_held: Vec::new(),
            kept: Default::default(),
            local_of: HashMap::new(),
            known_ints: HashSet::new(),
            with_depth: 0,
            restarts: Vec::new(),
            global_cache: Vec::new(),
            global_vars: Vec::new(),
            restart_globals: Vec::new(),
            dispatch: None,
            join_point: None,
            has_calls: false,
            in_float_generic: false,
            in_int_generic: false,
            int_locals: Vec::new(),
            narrow_locals: Vec::new(),
            known_narrow: HashSet::new(),
            loop_leaves: Vec::new(),
            float_locals,
            float_attrs,
            float_vars: Vec::new(),
            moves,
            stmt_span: Span::default(),
            opaque_leaves: Vec::new(),
            line: 0,
            accesses: None,
            tries: Vec::new(),
            finallies: Vec::new(),
            fin_exits: Vec::new(),
            outer_with: 0,
            handling: Vec::new(),
            entry_atomic: None,
            top_fixups: Vec::new(),
            match_var: None,
            escapes: Vec::new(),
            top_var: None,
            room_slot: None,
            room_need: 0,
        }
    }

    /// Code emitted from now on belongs to source line `line`.
    pub(crate) fn at_line(&mut self, line: u32) {
        self.line = line;
        self.end_sequence();
    }

    /// Code emitted from now on is the sequence `kind` (a `LOC_*`) of the current line.
    pub(crate) fn begin_sequence(&mut self, kind: u32) {
        self.b.set_srcloc(source_loc(self.line, kind));
    }

    /// Ends a sequence: code emitted from now on is ordinary code of the current line.
    pub(crate) fn end_sequence(&mut self) {
        self.b.set_srcloc(source_loc(self.line, 0));
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

    // ----- segment accesses -----
}
