//! An allocation failure while compiling is a `MemoryError`, not an abort.
//!
//! Cranelift, and the compiler that builds its IR, allocate with Rust's infallible
//! collections: when the allocator returns null, Rust calls `handle_alloc_error`, which
//! aborts the process (`SIGABRT`, exit status 134) with "memory allocation of N bytes
//! failed", and the alloc-error hook that could change that is unstable. So the program's
//! global allocator is [`ExitWhileCompiling`]: the system allocator, except that an
//! allocation it cannot make on a thread that is compiling ([`Compiling`]) ends the process
//! at once with `error: MemoryError: out of memory while compiling (...)` and exit status 1.
//! Elsewhere a failed allocation returns null as before, so that the fallible paths
//! (`try_reserve`: `"x" * n` raising `MemoryError`) still see it. Nothing is unwound (an
//! allocator must not unwind): the message is written with `write(2)` and the process ends
//! with `_exit`, which neither allocate.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// This thread is compiling (nesting depth).
    static COMPILING: Cell<u32> = const { Cell::new(0) };
    /// What it compiles (`FILE:LINE:COL in NAME`), for the message: its bytes and length.
    static COMPILED: Cell<([u8; LABEL], usize)> = const { Cell::new(([0; LABEL], 0)) };
}

/// The most bytes of the label of what is compiled that the message shows.
const LABEL: usize = 200;

/// While alive, the current thread is compiling: an allocation failure ends the process as
/// a `MemoryError` ([`ExitWhileCompiling`]).
pub struct Compiling(());

impl Compiling {
    /// Marks the current thread as compiling until the guard is dropped.
    pub fn enter() -> Compiling {
        COMPILING.with(|c| c.set(c.get() + 1));
        Compiling(())
    }

    /// [`Compiling::enter`], compiling what `label` says (`FILE:LINE:COL in NAME`): the
    /// message of an allocation failure shows it (its first 200 bytes) until the outermost
    /// guard is dropped, or another label is given.
    pub fn at(label: &str) -> Compiling {
        let mut end = label.len().min(LABEL);
        while !label.is_char_boundary(end) {
            end -= 1;
        }
        let mut bytes = [0; LABEL];
        bytes[..end].copy_from_slice(&label.as_bytes()[..end]);
        COMPILED.with(|c| c.set((bytes, end)));
        Compiling::enter()
    }
}

impl Drop for Compiling {
    fn drop(&mut self) {
        COMPILING.with(|c| {
            c.set(c.get() - 1);
            if c.get() == 0 {
                COMPILED.with(|l| l.set(([0; LABEL], 0)));
            }
        });
    }
}

/// Whether the current thread is compiling (false while its thread-locals are torn down).
pub fn compiling() -> bool {
    COMPILING.try_with(|c| c.get() > 0).unwrap_or(false)
}

/// The system allocator, except that an allocation failure on a compiling thread ends the
/// process as a `MemoryError` (see the module docs). Declared the global allocator by the
/// `stmjit` binary.
pub struct ExitWhileCompiling;

// SAFETY: every method forwards to `System` with the caller's arguments and returns its
// result unchanged, or does not return at all.
unsafe impl GlobalAlloc for ExitWhileCompiling {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc(layout) };
        if p.is_null() && compiling() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded.
        let p = unsafe { System.alloc_zeroed(layout) };
        if p.is_null() && compiling() {
            out_of_memory(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded (ptr came from `System`).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller's contract, forwarded (ptr came from `System`).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if p.is_null() && compiling() {
            out_of_memory(new_size);
        }
        p
    }
}

/// Writes `error: MemoryError: out of memory while compiling (an allocation of N bytes
/// failed)` to stderr, then `  at LABEL` when [`Compiling::at`] gave one, and ends the
/// process with status 1, allocating nothing.
fn out_of_memory(size: usize) -> ! {
    let mut buf = [0u8; 160 + LABEL];
    let mut n = 0;
    let mut put = |bytes: &[u8]| {
        let k = bytes.len().min(buf.len() - n);
        buf[n..n + k].copy_from_slice(&bytes[..k]);
        n += k;
    };
    put(b"error: MemoryError: out of memory while compiling (an allocation of ");
    let mut digits = [0u8; 20];
    let mut d = digits.len();
    let mut v = size;
    loop {
        d -= 1;
        digits[d] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    put(&digits[d..]);
    put(b" bytes failed)\n");
    let (label, len) = COMPILED.try_with(|c| c.get()).unwrap_or(([0; LABEL], 0));
    if len > 0 {
        put(b"  at ");
        put(&label[..len]);
        put(b"\n");
    }
    // SAFETY: write(2) of an initialized buffer, then _exit, which never returns; neither
    // allocates or unwinds.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), n);
        libc::_exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The guard marks the thread while alive, nests, and marks no other thread.
    #[test]
    fn compiling_is_per_thread_and_nests() {
        assert!(!compiling());
        let a = Compiling::enter();
        let b = Compiling::enter();
        drop(b);
        assert!(compiling());
        assert!(!std::thread::spawn(compiling).join().unwrap());
        drop(a);
        assert!(!compiling());
    }

    /// A label lasts while its thread compiles, is cut to 200 bytes at a character boundary,
    /// and is forgotten when the outermost guard is dropped.
    #[test]
    fn the_label_lasts_while_compiling() {
        let label = || COMPILED.with(|c| c.get());
        let a = Compiling::at("p.lang:3:1 in f");
        let b = Compiling::enter();
        drop(b);
        let (bytes, n) = label();
        assert_eq!(&bytes[..n], b"p.lang:3:1 in f");
        drop(a);
        assert_eq!(label().1, 0);
        let long = "\u{e9}".repeat(150);
        let c = Compiling::at(&long);
        let (bytes, n) = label();
        assert_eq!(n, 200);
        assert!(std::str::from_utf8(&bytes[..n]).is_ok());
        drop(c);
    }
}
