//! The language-free backend of stmjit: Cranelift code generation into executable memory,
//! with the segment accesses of the generated code rewritten into `gs:` form and verified.
//! It knows the segment layout of `stmjit-runtime` (a segment base in `%gs`, r15 pinned to
//! it) and nothing of the language: a compiler (`stmjit-jit`) builds Cranelift IR and hands
//! it over.
//!
//! One file per stage (like the cranelift-jit toy demo):
//! * [`isa`]: the Cranelift target and its settings (pinned r15, cfg info);
//! * [`ir_check`]: the refusal of IR where the segment base escapes;
//! * [`module`]: compile one function (or many, in parallel), rewrite it, define it,
//!   finalize; entry trampolines and `preserve_all` stubs; the side tables (stack maps,
//!   source locations);
//! * [`gs_rewrite`]: the verified rewrite of segment accesses into `gs:` form, and the
//!   machine-level refusals;
//! * [`disasm`]: `--dump-asm` listings with barrier annotations;
//! * [`release`]: giving back the memory of code that never runs again.
//!
//! The invariant everything rests on: **r15 == `%gs` base on every entry into
//! JIT code**, and JIT code never writes r15.
//!
//! # How the language compiler uses it
//! 1. [`Jit::new`] with the segment-base mode (`--segment-base gs|r15`) and the
//!    runtime helpers JIT code calls (name, address).
//! 2. Per function: [`Jit::declare`] (signature from [`Jit::signature`]),
//!    [`Jit::new_function`], fill it with a `FunctionBuilder`, then
//!    [`Jit::compile`]. Errors are [`JitError`]; a refusal of the `%gs`
//!    rewrite is [`JitError::Rewrite`] and names the function and instruction.
//! 3. Per entry point called from Rust: [`Jit::define_entry_trampoline`];
//!    call it as `extern "C" fn(gs_base, args...) -> ret` with `gs_base` the
//!    thread's current `%gs` base.
//! 4. [`Jit::finalize`], then [`Jit::code_ptr`]. `--dump-asm`:
//!    [`disasm::dump_asm`]. GC stack maps and source locations:
//!    [`CompiledFunction::stack_maps`] and [`CompiledFunction::srclocs`].
//!
//! # IR conventions for segment accesses
//! * Address a segment byte as `iadd(get_pinned_reg.i64, offset)` with a
//!   **fresh `get_pinned_reg` for every access**, and use the address only as
//!   the address of loads/stores/atomics (the IR check refuses anything else).
//!   The barriers: `store.i8 version, iadd(base, ushr(ref, 4))` (read marker),
//!   `load.i8 iadd(base, ref) + FLAGS` then `band` and `brif` to the slow path
//!   (write barrier).
//! * The offset must be a *register* value for the access to take the `gs:`
//!   form in place (`[copy + reg + disp]` becomes `gs:[reg + disp]`). A
//!   constant offset (`[copy + 0x40]`, e.g. the nursery pointer in the
//!   segment's thread-local area) or a scaled index with a small displacement
//!   stays in r15 form: correct by the invariant, and shown as `(r15)` in
//!   `--dump-asm`.
//! * Only barriers should be *byte-wide* segment accesses: `--dump-asm` marks
//!   every byte store as the read barrier and every byte load or test (with
//!   its test and branch) as the write barrier. Mark other sequences
//!   (allocation, poll) with `FunctionBuilder::set_srcloc` and
//!   [`disasm::srcloc_annotations`].
//! * A runtime call may end the transaction and begin the next one in another
//!   segment (new `%gs` base). After every such call the compiler reloads r15
//!   from the context (`set_pinned_reg(load ctx+seg_base)`, allowed by
//!   [`Jit::allow_reload`]); a base value must not live across a call (the IR
//!   check and the machine pass both refuse it). Rust calls a trampoline with
//!   the current base.

#![warn(missing_docs)]

pub mod copy_fusion;
pub mod dead_copies;
pub mod disasm;
pub mod gs_rewrite;
pub mod ir_check;
pub mod isa;
pub mod module;
pub mod oom;
mod perf_map;
pub mod release;

pub use gs_rewrite::{RewriteError, SegmentBase};

/// CPU time of the calling thread, in nanoseconds: what compiling a function costs, apart
/// from the time other threads and processes take the CPU meanwhile.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if r != 0 {
        return 0;
    }
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
pub use module::{CompiledFunction, Jit, JitError, StackMapEntry};
