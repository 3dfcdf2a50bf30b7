//! Cranelift code generation for stmjit, with inline `%gs` barriers.
//!
//! This crate is built in stages, one file per stage (like the cranelift-jit
//! toy demo):
//! * [`isa`]: the Cranelift target and its settings (pinned r15, cfg info);
//! * [`module`]: compile one function, rewrite it, define it, finalize; entry
//!   trampolines; the side tables (stack maps, source locations);
//! * [`gs_rewrite`]: the verified rewrite of segment accesses into `gs:` form,
//!   and the refusal of code where the segment base escapes;
//! * [`disasm`]: `--dump-asm` listings with barrier annotations.
//!
//! The invariant everything rests on: **r15 == `%gs` base on every entry into
//! JIT code**, and JIT code never writes r15.

#![warn(missing_docs)]

pub mod disasm;
pub mod gs_rewrite;
pub mod isa;
pub mod module;

pub use gs_rewrite::{RewriteError, SegmentBase};
pub use module::{CompiledFunction, Jit, JitError, StackMapEntry};
