//! The compiler of stmjit: a program's AST to Cranelift IR with inline `%gs` barriers
//! ([`compile`]), and a whole run: constants, compilation, entry trampolines,
//! `--dump-asm`, the program's first transaction ([`program`]).

#![warn(missing_docs)]

pub mod compile;
pub mod program;

pub use stmjit_backend::{disasm, gs_rewrite, Jit, SegmentBase};
pub use stmjit_vm as rt;
