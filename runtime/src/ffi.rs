//! C-ABI entry points for JIT code.
//!
//! JIT code holds a `*mut StmThread` (the handle of the thread running it) and calls these
//! on barrier slow paths and polls. Each returns a status: [`STATUS_OK`] or
//! [`STATUS_ABORTED`]; after `STATUS_ABORTED` the transaction has already been rolled back and
//! the JIT code must unwind to its restart point (no longjmp). `%gs` must point at the
//! handle's segment on entry (it does while JIT code runs a transaction), and the handle
//! must be used from its own OS thread only.

use crate::object::{Ref, TypeId};
use crate::transaction::StmThread;

/// The runtime call succeeded.
pub const STATUS_OK: u32 = 0;
/// The transaction was aborted and rolled back; restart it.
pub const STATUS_ABORTED: u32 = 1;

fn status(r: Result<(), crate::transaction::Abort>) -> u32 {
    match r {
        Ok(()) => STATUS_OK,
        Err(_) => STATUS_ABORTED,
    }
}

/// Write barrier slow path for a non-carded object (call when the flag test says set).
///
/// # Safety
/// `th` must be a valid, exclusively used handle of the calling thread.
pub unsafe extern "C" fn stmjit_write_barrier_slow(th: *mut StmThread, obj: Ref) -> u32 {
    // SAFETY: guaranteed by the caller.
    status(unsafe { &mut *th }.write_barrier(obj))
}

/// Card write barrier slow path for the element at `obj + off` of a card-marked object.
///
/// # Safety
/// As [`stmjit_write_barrier_slow`].
pub unsafe extern "C" fn stmjit_write_card_slow(th: *mut StmThread, obj: Ref, off: u64) -> u32 {
    // SAFETY: guaranteed by the caller.
    status(unsafe { &mut *th }.write_elem_barrier(obj, off))
}

/// Safe point (call when `SegmentInfo::safe_point_request` is non-zero; JIT code learns
/// that from its budget word, which requests mark).
///
/// # Safety
/// As [`stmjit_write_barrier_slow`].
pub unsafe extern "C" fn stmjit_poll(th: *mut StmThread) -> u32 {
    // SAFETY: guaranteed by the caller.
    status(unsafe { &mut *th }.poll())
}

/// Allocation slow path (call when the inline nursery check fails, or directly for any
/// allocation): allocates a young, zeroed object with its header written (see
/// [`crate::nursery`]); may run a minor collection (objects move: live references must be in
/// the shadow stack) and honours safe-point requests. Returns the reference, or 0 if the
/// transaction was aborted (rolled back; unwind to the restart point).
///
/// # Safety
/// As [`stmjit_write_barrier_slow`].
pub unsafe extern "C" fn stmjit_alloc(th: *mut StmThread, type_id: u32, size: u64) -> Ref {
    // SAFETY: guaranteed by the caller.
    unsafe { &mut *th }
        .alloc(TypeId(type_id), size)
        .unwrap_or(0)
}

/// Makes the transaction inevitable.
///
/// # Safety
/// As [`stmjit_write_barrier_slow`].
pub unsafe extern "C" fn stmjit_become_inevitable(th: *mut StmThread) -> u32 {
    // SAFETY: guaranteed by the caller.
    status(unsafe { &mut *th }.become_inevitable())
}
