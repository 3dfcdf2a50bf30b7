//! How an operation ends without its value: the program raised an exception, or the runtime
//! rolled the running transaction back. Both travel as values (no longjmp, no panic across
//! the FFI): a helper records which ([`Runtime::unwind`]) and returns [`ERR`]; JIT code tests
//! every call result against `ERR` and unwinds, frame by frame, either to the end of the
//! program (an error, with a trace entry per frame: [`stmjit_trace`]) or to the frame that
//! restarts the transaction (an abort: see `txn.rs`).

use crate::{Ctx, Runtime, ERR, RESTART};
use stmjit_lang::diag::{ErrorKind, TraceEntry};
use stmjit_runtime::value::Word;

/// Why an operation of the object model did not produce its value.
#[derive(Clone, Debug, PartialEq)]
pub enum Unwind {
    /// The program raised an exception of this kind with this message (shown to the user
    /// once its transaction commits).
    Raise(ErrorKind, String),
    /// The runtime rolled the running transaction back (a conflict, or a doomed
    /// transaction): not an error of the program, which runs the transaction again.
    Aborted,
}

/// Result of an operation of the object model.
pub type R<T> = Result<T, Unwind>;

/// The exception `kind` with `msg`.
pub fn exc(kind: ErrorKind, msg: impl Into<String>) -> Unwind {
    Unwind::Raise(kind, msg.into())
}

/// The running transaction was rolled back: what commits, boundaries and the inevitable
/// switch return instead of `Ok` (the runtime has already undone it; the caller unwinds to
/// the transaction's restart point).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Aborted;

/// The interpreter's value-level operations, which the object model reuses for the rare
/// cases (`convert.rs`), raise `(kind, message)`.
impl From<stmjit_lang::value::OpError> for Unwind {
    fn from((kind, msg): stmjit_lang::value::OpError) -> Unwind {
        Unwind::Raise(kind, msg)
    }
}

impl From<Aborted> for Unwind {
    fn from(_: Aborted) -> Unwind {
        Unwind::Aborted
    }
}

impl Runtime {
    /// Starts the unwinding of JIT code for `e` (see [`Runtime::raise`] and the module docs)
    /// and returns [`ERR`], what the helper returns to JIT code.
    pub fn unwind(&mut self, e: Unwind) -> Word {
        match e {
            Unwind::Raise(kind, msg) => self.raise(kind, msg),
            Unwind::Aborted => {
                // Reported by a runtime call that only returned a status: note the abort
                // the runtime has already rolled back, once.
                if !self.tx.aborting {
                    self.note_ffi_abort();
                }
                ERR
            }
        }
    }

    /// Records an error and returns [`ERR`] (the first one wins: later ones come from
    /// unwinding code). The transaction goes on as it was: only an exception that leaves
    /// its opener makes it inevitable ([`Runtime::exception_leaves`]).
    pub fn raise(&mut self, kind: ErrorKind, msg: impl Into<String>) -> Word {
        if self.error.is_none() && !self.tx.aborting {
            self.error = Some((kind, msg.into()));
            self.trace.clear();
            // SAFETY: exc_slot is the driver's root slot or the runtime's own cell.
            unsafe { *self.exc_slot = stmjit_runtime::value::NONE };
        }
        ERR
    }
}

/// The error path of `<module>` after a call of a part of its body (a huge body is compiled
/// as parts, see `stmjit_jit::program`): [`RESTART`] when the transaction was aborted and
/// `<module>`'s frame opened it, else [`ERR`]; no trace entry (the part, whose frame is
/// `<module>` to the user, recorded where the error was).
///
/// # Safety
/// `ctx` must be the live context of the calling thread.
pub unsafe extern "C" fn stmjit_propagate(ctx: *mut Ctx) -> u64 {
    // SAFETY: ctx and its runtime are live for the whole run (caller's contract).
    let c = unsafe { &mut *ctx };
    // SAFETY: as above.
    let rt = unsafe { &mut *c.rt };
    leave_frame(rt, c, None).unwrap_or(ERR)
}

/// The unwinding of an error or an abort is about to leave the frame of `c.depth` (`site`:
/// where it was, noted for `--stats` while an abort unwinds): an exception leaving the
/// transaction's opener makes it inevitable first ([`Runtime::exception_leaves`]), which may
/// abort it instead. While an abort unwinds, `Some`: [`RESTART`] in its opener (the frame
/// restarts), else [`ERR`]; `None` for an exception.
pub(crate) fn leave_frame(rt: &mut Runtime, c: &Ctx, site: Option<u64>) -> Option<u64> {
    if !rt.tx.aborting {
        rt.exception_leaves(c.depth);
    }
    if rt.tx.aborting {
        if let Some(s) = site {
            rt.note_abort_site(s as u32);
        }
        return Some(if c.txn_depth == c.depth { RESTART } else { ERR });
    }
    None
}

/// Appends a trace entry for `site`; JIT code calls it when unwinding. Returns [`ERR`], or
/// [`RESTART`] when the transaction was aborted and the calling frame is its opener
/// (abort unwinding records no trace, only where the abort was seen, for `--stats`).
///
/// # Safety
/// `ctx` must be the live context of the calling thread.
pub unsafe extern "C" fn stmjit_trace(ctx: *mut Ctx, site: u64) -> u64 {
    // SAFETY: ctx and its runtime are live for the whole run (caller's contract).
    let c = unsafe { &mut *ctx };
    // SAFETY: as above.
    let rt = unsafe { &mut *c.rt };
    if let Some(r) = leave_frame(rt, c, Some(site)) {
        return r;
    }
    let s = rt.info.code.sites[site as usize].clone();
    let function = rt.info.func_names[s.func as usize].clone();
    rt.trace.push(TraceEntry {
        span: s.span,
        function,
    });
    ERR
}
