//! Stack-depth guard. The parser and the interpreter are recursive; deep input must end in a clean
//! error, never in a stack overflow (a signal). Work runs on threads with a large, known stack
//! ([`on_big_stack`]); recursive functions call [`near_limit`] and fail cleanly when the stack is
//! nearly used up. On threads this module did not start it assumes a small stack, conservatively.

use std::cell::Cell;

/// Stack size of the threads started by [`on_big_stack`]. Only touched pages cost memory.
pub const BIG_STACK: usize = 1 << 30;
/// Stack size of the threads a program spawns (many may exist at once).
pub const THREAD_STACK: usize = 256 << 20;
/// Stack assumed for threads not started by [`on_big_stack`] (test threads have 2 MiB).
const UNKNOWN_STACK: usize = 1 << 20;
/// Room kept free below the limit for the frames that report the error.
const MARGIN: usize = 256 << 10;

thread_local! {
    /// (approximate stack base, usable size) of the current thread; 0 when not yet known.
    static BOUNDS: Cell<(usize, usize)> = const { Cell::new((0, 0)) };
}

fn stack_pointer() -> usize {
    let marker = 0u8;
    std::hint::black_box(&marker) as *const u8 as usize
}

/// Runs `f` on a new thread with a [`BIG_STACK`]-byte stack and returns its result. Panics in
/// `f` are propagated. When the thread cannot be started (an address-space limit), the
/// process ends with a MemoryError, exit 1: there is no program position to report yet.
pub fn on_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        let handle = std::thread::Builder::new()
            .stack_size(BIG_STACK)
            .spawn_scoped(s, || {
                mark_thread(BIG_STACK);
                f()
            })
            .unwrap_or_else(|e| {
                eprintln!(
                    "error: MemoryError: cannot start a thread with a {} MiB stack: {e}",
                    BIG_STACK >> 20
                );
                std::process::exit(1)
            });
        match handle.join() {
            Ok(v) => v,
            Err(p) => std::panic::resume_unwind(p),
        }
    })
}

/// Records the current stack pointer as the base of a thread whose stack is `size` bytes. Call
/// first thing on a thread started with that stack size.
pub fn mark_thread(size: usize) {
    BOUNDS.with(|b| b.set((stack_pointer(), size)));
}

/// True when the current thread was started by [`on_big_stack`] (or marked with a big size).
pub fn has_big_stack() -> bool {
    BOUNDS.with(|b| b.get().1 >= BIG_STACK)
}

/// Runs `f` on the current thread if it has a big stack, else on a new big-stack thread.
pub fn ensure_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if has_big_stack() {
        f()
    } else {
        on_big_stack(f)
    }
}

/// True when the current thread has used almost all of its stack: the caller must stop
/// recursing and report an error.
pub fn near_limit() -> bool {
    let (used, size) = usage();
    used + MARGIN > size
}

/// The bytes of stack the current thread uses now (below its recorded base), about.
pub fn used() -> usize {
    usage().0
}

/// The stack in use and the usable size of the current thread's stack.
fn usage() -> (usize, usize) {
    BOUNDS.with(|b| {
        let (mut base, mut size) = b.get();
        if base == 0 {
            base = stack_pointer();
            size = UNKNOWN_STACK;
            b.set((base, size));
        }
        (base.saturating_sub(stack_pointer()), size)
    })
}
