//! Thread, Lock and TransactionQueue objects: a kind word and two value words (their
//! behaviour is in `threads.rs` and `calls.rs`).

use crate::{Runtime, R};
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A `Thread`, `Lock` or `TransactionQueue` object: a kind word and two value words (its
/// behaviour is in `threads.rs` and `calls.rs`).
#[repr(C)]
pub struct OpaqueObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Which kind of object ([`OPAQUE_THREAD`], ...).
    pub kind: u64,
    /// First value (thread: result; queue: list of calls).
    pub a: Word,
    /// Second value (lock: hold count).
    pub b: Word,
}

/// [`OpaqueObj::kind`] of a Thread.
pub const OPAQUE_THREAD: u64 = 1;

/// [`OpaqueObj::kind`] of a Lock.
pub const OPAQUE_LOCK: u64 = 2;

/// [`OpaqueObj::kind`] of a TransactionQueue.
pub const OPAQUE_QUEUE: u64 = 3;

pub(crate) fn new_opaque(rt: &mut Runtime, kind: u64, a: Word) -> R<Word> {
    let r = rt.alloc(rt.types.opaque, std::mem::size_of::<OpaqueObj>() as u64)?;
    rt.st(r, offset_of!(OpaqueObj, kind) as u64, kind);
    rt.st(r, offset_of!(OpaqueObj, a) as u64, a);
    Ok(r)
}
