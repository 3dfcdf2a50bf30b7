//! The compiler of stmjit: a program's AST to Cranelift IR with inline `%gs` barriers
//! ([`compile`], one function at a time, split by concern), and a whole run ([`program`]):
//! the runtime instance, the program's constants, compilation, entry trampolines,
//! `--dump-asm`, the program's data, the main thread. It sits on the object model
//! (`stmjit-vm`, whose `abi` module is the contract with compiled code) and the
//! language-free backend (`stmjit-backend`: ISA, module, `%gs` rewrite, disassembly).
//!
//! # Architecture of compiled programs
//! * **Values** are tagged words (`stmjit_vm::abi`): ints `n << 1 | 1`,
//!   `None`/`False`/`True` = 0/2/6, references (segment offsets) otherwise; floats are
//!   boxed. Objects are the `#[repr(C)]` layouts of `stmjit_vm::objects` (str, float, list +
//!   card-marked items, dict with per-entry cards, instance + shape slots, class,
//!   function, ...); compiled code takes their offsets with `offset_of!`.
//! * **Frames and roots**: every JIT function pushes a frame on the thread's shadow stack
//!   (locals, then temporaries). Locals live in registers and are written to their slots
//!   around every call that may move objects, then reloaded; intermediate values that must
//!   survive another evaluation are spilled to temporaries. Rust helpers root what they hold
//!   across allocations in the same shadow stack.
//! * **Errors and aborts** travel as values: a helper records the error (or notes that the
//!   runtime rolled the transaction back) and returns `ERR`; JIT code tests every call
//!   result, appends a trace entry for the site and returns `ERR` through every frame, or
//!   restarts the transaction in the frame that opened it. No longjmp, no unwinding across
//!   the FFI.
//! * **Barriers** inline: read-marker stores `gs:[ref >> 4] = rv` (element granule for
//!   card-marked arrays), write-barrier flag tests with the runtime's slow paths (card
//!   protocol for list items, dict entries and globals), nursery bump allocation for float
//!   results; one read marker and one flag test per object per region.
//! * **Transactions** end at polls (loop back-edges, function entries) when their budget
//!   runs out, never inside `with atomic:`/`with lock:` or a queued call; the frame that
//!   began one restarts it after an abort from values saved at the boundary.
//!
//! The invariant everything rests on: **r15 == `%gs` base on every entry into JIT code**;
//! JIT code writes r15 only to reload it from the context after a call that may have moved
//! the thread to another segment.

#![warn(missing_docs)]

pub mod compile;
pub mod listing;
pub mod program;
pub mod switches;

pub use stmjit_backend::disasm::Syntax;
pub use stmjit_backend::oom;
pub use stmjit_backend::SegmentBase;
