//! Every runtime helper JIT code calls, declared once: its symbol, its Rust function (so that
//! `rustc` checks the function against the declared signature), its signature as JIT code
//! sees it, and what a call of it does to the caller (see [`Effects`]). The compiler
//! declares, links and calls helpers from this table only ([`Helper::decl`]), so a helper's
//! name, arity and effects cannot disagree between the two sides.
//!
//! In the style of wasmtime's `foreach_builtin_function!` and LuaJIT's `IRCALLDEF`: one
//! macro invocation lists the helpers; the macro makes the [`Helper`] enum and its table.

use super::Ctx;
use crate::site_cache::SiteCache;
use crate::{callkw, calls, cells, error, exceptions, helpers as ops, threads, txn};
use stmjit_runtime::transaction::StmThread;
use stmjit_runtime::value::Word;

/// What a call of a helper does to the JIT code that makes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effects {
    /// It may allocate (a minor collection moves objects) or end the transaction and begin
    /// the next one, maybe in another segment: the caller writes its locals to their frame
    /// slots before the call, and reads them back, with the segment base, after it.
    MayMove,
    /// It neither moves objects nor ends the transaction (it only reads, or raises and the
    /// caller unwinds): no spill, no reload.
    NoMove,
    /// As [`Effects::NoMove`], and it keeps every register: JIT code calls it through the
    /// `preserve_all` stub named `stub`, passing the context only (the helper takes its
    /// other arguments from the context and leaves its status there). For the write
    /// barriers' slow paths, so that the fast path around them keeps its registers.
    PreserveAll {
        /// Name of the stub (as `--dump-asm` lists it).
        stub: &'static str,
    },
}

/// A parameter or result type JIT code passes in one 64-bit register (a Cranelift `i64`):
/// words, pointers, and unsigned ints of 32 bits (the callee reads the low half, as the
/// SysV ABI says).
pub trait WordSized {
    /// Registers it takes: one.
    const REGISTERS: usize = 1;
}
impl WordSized for u64 {}
impl WordSized for u32 {}
impl<T> WordSized for *mut T {}
impl<T> WordSized for *const T {}

/// What the compiler needs to declare, link and call a helper.
#[derive(Clone, Copy, Debug)]
pub struct HelperDecl {
    /// The symbol JIT code imports it by.
    pub symbol: &'static str,
    /// Its address.
    pub address: *const u8,
    /// Number of parameters, each one 64-bit register (see [`WordSized`]).
    pub params: usize,
    /// Whether it returns a word (else nothing: the targets of `preserve_all` stubs).
    pub returns_word: bool,
    /// What a call does to the caller.
    pub effects: Effects,
}

/// Declares the helpers: `Variant = "symbol", function: fn(params) -> result, effects;`.
macro_rules! helpers {
    ($(
        $(#[doc = $doc:literal])*
        $variant:ident = $symbol:literal, $func:path : fn($($param:ty),*) $(-> $ret:ty)?, $effects:expr;
    )*) => {
        /// A runtime helper JIT code calls (the table is [`Helper::decl`]).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Helper {
            $($(#[doc = $doc])* $variant,)*
        }

        impl Helper {
            /// Every helper, in declaration order.
            pub const ALL: &'static [Helper] = &[$(Helper::$variant),*];

            /// The helper's declaration.
            pub fn decl(self) -> HelperDecl {
                match self {
                    $(Helper::$variant => {
                        // The typed pointer: `rustc` checks the function against the
                        // declared signature.
                        let f: unsafe extern "C" fn($($param),*) $(-> $ret)? = $func;
                        HelperDecl {
                            symbol: $symbol,
                            address: f as *const u8,
                            params: 0 $(+ <$param as WordSized>::REGISTERS)*,
                            returns_word: false $(|| <$ret as WordSized>::REGISTERS == 1)?,
                            effects: $effects,
                        }
                    })*
                }
            }
        }
    };
}

use Effects::{MayMove, NoMove, PreserveAll};

helpers! {
    /// Appends a trace entry for a site while JIT code unwinds an error; returns `ERR`, or
    /// `RESTART` in the frame that opened an aborted transaction.
    Trace = "stmjit_trace", error::stmjit_trace: fn(*mut Ctx, u64) -> u64, NoMove;
    /// Passes an error of a part of a huge module body on to `<module>` with no trace entry
    /// (the part's frame made it): [`crate::RESTART`] where `stmjit_trace` would.
    Propagate = "stmjit_propagate", error::stmjit_propagate: fn(*mut Ctx) -> u64, NoMove;
    /// `a OP b` (operator number from `BINOPS`) beyond the inline fast paths.
    Binop = "stmjit_binop", ops::stmjit_binop: fn(*mut Ctx, u64, Word, Word) -> Word, MayMove;
    /// `a OP= b`: lists extended or repeated in place.
    Inplace = "stmjit_inplace", ops::stmjit_inplace: fn(*mut Ctx, u64, Word, Word) -> Word, MayMove;
    /// `OP a` (operator number from `UNOPS`).
    Unary = "stmjit_unary", ops::stmjit_unary: fn(*mut Ctx, u64, Word) -> Word, MayMove;
    /// `a OP b` (operator number from `CMPOPS`), a bool word.
    Compare = "stmjit_compare", ops::stmjit_compare: fn(*mut Ctx, u64, Word, Word) -> Word, MayMove;
    /// Truthiness of an object: 0 or 1 (programs that name neither `__bool__` nor `__len__`).
    Truthy = "stmjit_truthy", ops::stmjit_truthy: fn(*mut Ctx, Word) -> u64, NoMove;
    /// Truthiness of an object, an instance's by its `__bool__`/`__len__`: 0, 1 or `ERR`.
    TruthySpecial = "stmjit_truthy_special", ops::stmjit_truthy_special: fn(*mut Ctx, Word) -> u64, MayMove;
    /// `o[i]`.
    GetItem = "stmjit_getitem", ops::stmjit_getitem: fn(*mut Ctx, Word, Word) -> Word, MayMove;
    /// `o[i] = v`.
    SetItem = "stmjit_setitem", ops::stmjit_setitem: fn(*mut Ctx, Word, Word, Word) -> Word, MayMove;
    /// `del o[i]`.
    DelItem = "stmjit_delitem", ops::stmjit_delitem: fn(*mut Ctx, Word, Word) -> Word, MayMove;
    /// `o[lo:hi]` (absent bounds `UNBOUND`).
    GetSlice = "stmjit_getslice", ops::stmjit_getslice: fn(*mut Ctx, Word, Word, Word) -> Word, MayMove;
    /// `o[lo:hi] = v`, or `del o[lo:hi]` when `v` is `UNBOUND`.
    SetSlice = "stmjit_setslice", ops::stmjit_setslice: fn(*mut Ctx, Word, Word, Word, Word) -> Word, MayMove;
    /// `o.name` at an attribute site whose inline path missed (fills its cache).
    GetAttrSite = "stmjit_getattr_site", ops::stmjit_getattr_site: fn(*mut Ctx, Word, u64, *const SiteCache) -> Word, MayMove;
    /// `o.name = v` at an attribute site whose inline path missed (fills its cache).
    SetAttrSite = "stmjit_setattr_site", ops::stmjit_setattr_site: fn(*mut Ctx, Word, u64, Word, *const SiteCache) -> Word, MayMove;
    /// `o.name = v` as [`Helper::SetAttrSite`], where `v` may be `UNBOXED`: then the value is
    /// the float of the bits `f` (boxed here).
    SetAttrSiteRaw = "stmjit_setattr_site_raw", ops::stmjit_setattr_site_raw: fn(*mut Ctx, Word, u64, Word, u64, *const SiteCache) -> Word, MayMove;
    /// A list of the words in frame slots.
    NewList = "stmjit_new_list", ops::stmjit_new_list: fn(*mut Ctx, *const Word, u64) -> Word, MayMove;
    /// A tuple of the words in frame slots.
    NewTuple = "stmjit_new_tuple", ops::stmjit_new_tuple: fn(*mut Ctx, *const Word, u64) -> Word, MayMove;
    /// `t1, ..., tn = v`: the items of `v` into `n` frame slots (NONE or ERR).
    Unpack = "stmjit_unpack", ops::stmjit_unpack: fn(*mut Ctx, Word, u64, *mut Word) -> Word, MayMove;
    /// `t1, ..., *ts, ..., tn = v`: as `Unpack`, the starred target (at the given index) a list.
    UnpackStarred = "stmjit_unpack_starred", ops::stmjit_unpack_starred: fn(*mut Ctx, Word, u64, u64, *mut Word) -> Word, MayMove;
    /// A dict of the key/value words in frame slots.
    NewDict = "stmjit_new_dict", ops::stmjit_new_dict: fn(*mut Ctx, *const Word, u64) -> Word, MayMove;
    /// A new set of `n` words at a pointer (a set display).
    NewSet = "stmjit_new_set", ops::stmjit_new_set: fn(*mut Ctx, *const Word, u64) -> Word, MayMove;
    /// The iterator of a `for` loop.
    Iter = "stmjit_iter", ops::stmjit_iter: fn(*mut Ctx, Word) -> Word, MayMove;
    /// The next item of an iterator, or `UNBOUND` at its end (ERR: a dict changed size).
    IterNext = "stmjit_iter_next", ops::stmjit_iter_next: fn(*mut Ctx, Word, u64) -> Word, NoMove;
    IterNextSpecial = "stmjit_iter_next_special", ops::stmjit_iter_next_special: fn(*mut Ctx, Word, u64) -> Word, MayMove;
    /// `print(...)` of the words in frame slots.
    Print = "stmjit_print", ops::stmjit_print: fn(*mut Ctx, *const Word, u64) -> Word, MayMove;
    /// Raises the NameError of an undefined name.
    NameError = "stmjit_name_error", ops::stmjit_name_error: fn(*mut Ctx, u64) -> Word, NoMove;
    /// Raises the NameError of a local read before assignment.
    UnboundLocal = "stmjit_unbound_local", ops::stmjit_unbound_local: fn(*mut Ctx, u64) -> Word, NoMove;
    /// Raises the RecursionError of a call nested too deeply.
    RecursionError = "stmjit_recursion_error", ops::stmjit_recursion_error: fn(*mut Ctx) -> Word, NoMove;
    /// Reports the abort a barrier or allocation slow path returned: JIT code unwinds.
    Aborted = "stmjit_aborted", ops::stmjit_aborted: fn(*mut Ctx) -> Word, NoMove;
    /// Poll slow path: pauses, aborts, or makes a boundary whose restart point is the poll.
    PollSlow = "stmjit_poll_slow", txn::stmjit_poll_slow: fn(*mut Ctx, *mut u64, u64) -> Word, MayMove;
    /// The boundary before a part of a huge module body: always commits; its restart point
    /// is there.
    PartBoundary = "stmjit_part_boundary", txn::stmjit_part_boundary: fn(*mut Ctx, *mut u64, u64) -> Word, MayMove;
    /// Restart after an abort, in the opener's frame: slots restored, a new transaction.
    Restart = "stmjit_restart", txn::stmjit_restart: fn(*mut Ctx, *mut u64) -> Word, MayMove;
    /// Return from the frame that opened the transaction: a boundary.
    ReturnBoundary = "stmjit_return_boundary", txn::stmjit_return_boundary: fn(*mut Ctx, Word) -> Word, MayMove;
    /// The code address of a program function not compiled yet: compiles it (its first
    /// call). Compiling touches no heap, but an inevitable transaction outside atomic blocks
    /// is ended first, and another begun after the compilation: it may move objects.
    Compile = "stmjit_compile", calls::stmjit_compile: fn(*mut Ctx, u64) -> Word, MayMove;
    /// The code address of part `k` of a huge module body, compiled now; the code of the
    /// part before it is freed (it never runs again: `stmjit_part_boundary`).
    ModulePart = "stmjit_module_part", calls::stmjit_module_part: fn(*mut Ctx, u64) -> Word, NoMove;
    /// `f(args)` for any callable, arguments in frame slots.
    Call = "stmjit_call", calls::stmjit_call: fn(*mut Ctx, Word, *const Word, u64) -> Word, MayMove;
    /// `f(args)` from a call site with a class cache that missed (fills it).
    CallSite = "stmjit_call_site", calls::stmjit_call_site: fn(*mut Ctx, Word, *const Word, u64, *const SiteCache) -> Word, MayMove;
    /// A new instance with its inline slots: a class call site's cache hit.
    NewInstance = "stmjit_new_instance", calls::stmjit_new_instance: fn(*mut Ctx, Word, u64) -> Word, MayMove;
    /// Raises the TypeError of an `__init__` that returned something else than None.
    /// (It only raises; declared `MayMove` as its call has always been compiled, with the
    /// spill: the cold path of a class call site.)
    InitResult = "stmjit_init_result", calls::stmjit_init_result: fn(*mut Ctx, Word) -> Word, MayMove;
    /// A builtin function called by name, arguments in frame slots.
    Builtin = "stmjit_builtin", calls::stmjit_builtin: fn(*mut Ctx, u64, *const Word, u64) -> Word, MayMove;
    /// Checks that `o.name` exists before a method call's arguments are evaluated.
    CheckMethod = "stmjit_check_method", calls::stmjit_check_method: fn(*mut Ctx, Word, u64) -> Word, MayMove;
    /// `o.name(args)` from a method-call site whose cache missed (fills it).
    CallMethod = "stmjit_call_method", calls::stmjit_call_method: fn(*mut Ctx, u64, *const Word, u64, *const SiteCache) -> Word, MayMove;
    /// `x.join()` of a statement whose start is restart point `point` of the frame: of a
    /// Thread, the transaction after a join that committed restarts there; else as `CallMethod`.
    JoinAt = "stmjit_join_at", threads::stmjit_join_at: fn(*mut Ctx, *mut u64, u64, u64, *const Word, *const SiteCache) -> Word, MayMove;
    /// `f(args)` with keyword or unpacked arguments (values in frame slots, kinds by index).
    CallEx = "stmjit_call_ex", callkw::stmjit_call_ex: fn(*mut Ctx, Word, *const Word, u64, u64) -> Word, MayMove;
    /// The function object of a `def` or `lambda` with default values or free variables.
    MakeFunction = "stmjit_make_function", callkw::stmjit_make_function: fn(*mut Ctx, u64, *const Word, u64) -> Word, MayMove;
    /// A new cell holding a word (empty for `UNBOUND`): a cell variable at function entry.
    NewCell = "stmjit_new_cell", cells::stmjit_new_cell: fn(*mut Ctx, Word) -> Word, MayMove;
    /// The content of a cell (raises the NameError of an empty one).
    CellGet = "stmjit_cell_get", cells::stmjit_cell_get: fn(*mut Ctx, Word, u64) -> Word, MayMove;
    /// Stores into a cell.
    CellSet = "stmjit_cell_set", cells::stmjit_cell_set: fn(*mut Ctx, Word, Word) -> Word, MayMove;
    /// Binds globals to the function objects of a run of `def` statements.
    DefineGlobals = "stmjit_define_globals", calls::stmjit_define_globals: fn(*mut Ctx, *const u64, u64) -> Word, MayMove;
    /// Creates the class of a class statement.
    MakeClass = "stmjit_make_class", calls::stmjit_make_class: fn(*mut Ctx, u64, Word, *const Word) -> Word, MayMove;
    /// `raise v` (`UNBOUND`: a bare `raise` outside any `except` clause); returns `ERR`.
    Raise = "stmjit_raise", exceptions::stmjit_raise: fn(*mut Ctx, Word) -> Word, MayMove;
    /// A handler's first step: the pending exception as an object (`ERR`/`RESTART`: an
    /// abort goes on unwinding), its trace kept aside under a key.
    Catch = "stmjit_catch", exceptions::stmjit_catch: fn(*mut Ctx, u64, u64) -> Word, MayMove;
    /// `except cls:` matching: a bool word, or `ERR`.
    ExcMatch = "stmjit_exc_match", exceptions::stmjit_exc_match: fn(*mut Ctx, Word, Word) -> Word, NoMove;
    /// Raises a caught exception again with the trace kept under a key; returns `ERR`.
    Reraise = "stmjit_reraise", exceptions::stmjit_reraise: fn(*mut Ctx, Word, u64) -> Word, MayMove;
    /// Checks the value of `with EXPR:` (a Lock).
    WithLock = "stmjit_with_lock", calls::stmjit_with_lock: fn(*mut Ctx, Word) -> Word, MayMove;
    /// Allocation slow path of the inline nursery bump (0: the transaction aborted).
    Alloc = "stmjit_alloc", stmjit_runtime::ffi::stmjit_alloc: fn(*mut StmThread, u32, u64) -> u64, MayMove;
    /// Write-barrier slow path of an object (its site in the context).
    WriteBarrierSlow = "stmjit_wb_slow_status", txn::stmjit_wb_slow_status: fn(*mut Ctx), PreserveAll { stub: "wb_slow (preserve_all stub)" };
    /// Card write-barrier slow path of an array element (its site in the context).
    CardBarrierSlow = "stmjit_card_slow_status", txn::stmjit_card_slow_status: fn(*mut Ctx), PreserveAll { stub: "card_slow (preserve_all stub)" };
}

impl Helper {
    /// Whether a call of it may end the transaction and begin the next one with its restart
    /// point in the calling frame (a poll's slow path, the boundary before a module part,
    /// the restart itself, a join statement's join): what the caller runs after it is then
    /// in a transaction that may abort, so none of its read markers may be assumed stored.
    /// Every other call returns in the same transaction or, if it made a boundary, in an
    /// inevitable one (`txn.rs`: the return from an opener and the helpers that commit
    /// before waiting begin one without restart point), which no writer commit can overtake
    /// (`docs/COMMITLOG.md`, I5): so JIT code keeps its read markers across those calls.
    pub fn restarts_in_caller(self) -> bool {
        matches!(
            self,
            Helper::PollSlow | Helper::PartBoundary | Helper::Restart | Helper::JoinAt
        )
    }
}
