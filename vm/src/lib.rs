//! The object model of stmjit and the runtime side of JIT code: the language's heap objects
//! and their operations (with the same barriers JIT code emits inline), the `extern "C"`
//! helpers JIT code calls, threads, transactions under JIT code, `serve`, and the `--stats`
//! report. It generates no code: the compiler (`stmjit-jit`) compiles against [`abi`], the
//! one contract between the two.
//!
//! # Values
//! Every value is a tagged word (`stmjit_runtime::value`): ints `n << 1 | 1`, `None` = 0,
//! `False` = 2, `True` = 6, references (segment offsets) otherwise. The words private to
//! JIT code ([`UNBOUND`], [`ERR`], [`RESTART`]) are listed with them in [`abi`].
//!
//! # Errors and aborts
//! A helper that raises records the kind and message in [`Runtime::error`] and returns
//! [`ERR`]; one whose transaction was rolled back returns [`ERR`] too, with the abort noted
//! ([`error`]). JIT code tests every call result against `ERR`; on a hit it appends a
//! trace entry ([`stmjit_trace`], with the position of the failing expression or call in
//! the current function) and returns `ERR` itself, or restarts the transaction in the
//! frame that opened it. No longjmp, no panics across the FFI.
//!
//! # Modules
//! - the contract and the thread's state: [`abi`] (context, words, header, helper table),
//!   [`program`] (what all threads share), [`runtime`] (one thread), [`roots`], [`error`];
//! - objects: [`heap`] (accessors with barriers, allocation), [`objects`] (layouts and the
//!   operations of each kind), [`dict_overlay`] (new keys of shared dicts inserted at
//!   commit), [`class_table`], [`site_cache`], [`convert`] (to and from the interpreter's
//!   values), [`methods`];
//! - operations: [`ops`] (values of any type), [`items`], [`attrs`];
//! - what JIT code calls: [`helpers`] (operators, items, attributes, iteration, printing),
//!   [`calls`]; [`special`] (special methods of instances met by value operations);
//! - transactions and threads: [`txn`], [`threads`], [`output`], [`serve`];
//! - [`stats`]: the `--stats` report; [`trace_json`]: the `--trace` file and the
//!   `--timeline` picture.
//!
//! `calls`, `threads`, `txn`, `serve` and `stats` import each other, as the language does:
//! calling a value may call a builtin that spawns, joins, runs a queue or serves, and those
//! call values again, in transactions whose commits start threads or end the program. They
//! are one unit over [`Runtime`] and its thread's `Driver`, as the runtime's core is over
//! `Stm` and `StmThread`; the rest of the crate depends on them, never the reverse.

pub mod abi;
/// The append-only vector lives in the runtime, which uses it for its type registry.
pub use stmjit_runtime::append;
pub mod attrs;
pub mod callkw;
pub mod calls;
pub mod cells;
pub mod class_table;
pub mod conflict_names;
pub mod convert;
pub mod dict_overlay;
pub mod error;
pub mod exceptions;
pub mod hashing;
pub mod heap;
pub mod helpers;
pub mod input;
pub mod items;
pub mod methods;
pub mod objects;
pub mod ops;
pub mod output;
pub mod program;
pub mod roots;
pub mod runtime;
pub mod serve;
pub mod sets;
pub mod site_cache;
pub mod special;
pub mod stats;
pub mod thread_pool;
pub mod thread_room;
pub mod threads;
pub mod trace_json;
pub mod txn;

pub use abi::{ArrayEntry, Ctx, ERR, INIT_NAME, MAX_DEPTH, MOVING, RESTART, TOMBSTONE, UNBOUND};
pub use class_table::ClassInfo;
pub use error::{exc, stmjit_trace, Aborted, Unwind, R};
pub use program::{
    Accessed, ClassDef, CodeTables, CompileError, CompileStats, Compiler, Constants, Mode, Names,
    ProgramInfo, Settings, Site,
};
pub use roots::{Held, Root};
pub(crate) use runtime::rt_of;
pub use runtime::Runtime;
