//! Thread, Lock and TransactionQueue objects and dict iterators: a kind word and two value
//! words (their behaviour is in `threads.rs`, `calls.rs` and `items.rs`).

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

/// [`OpaqueObj::kind`] of the iterator of a `for` loop over a dict (never a value of the
/// program): `a` is the snapshot list of its keys, `b` the dict, whose size must stay that
/// list's length (Python raises at the next step otherwise).
pub const OPAQUE_DICT_ITER: u64 = 4;

/// [`OpaqueObj::kind`] of the iterator of a `for` loop over an instance whose class has
/// `__getitem__` but no `__iter__` (never a value of the program): `a` is the instance,
/// whose `__getitem__(0)`, `(1)`, ... give the items (CPython's older protocol).
pub const OPAQUE_ITEMS_ITER: u64 = 5;

/// [`OpaqueObj::kind`] of a range with a bound or step beyond the tagged ints (a value of
/// the program: `range(2**70)`): `a` is the tuple of its start, stop and step (see
/// `range.rs`).
pub const OPAQUE_BIG_RANGE: u64 = 6;

/// A new opaque object of `kind` holding `a` (rooted across the allocation, which may move
/// it).
pub(crate) fn new_opaque(rt: &mut Runtime, kind: u64, a: Word) -> R<Word> {
    let m = rt.mark();
    let ra = rt.root(a);
    let r = rt.alloc(rt.types.opaque, std::mem::size_of::<OpaqueObj>() as u64)?;
    rt.st(r, offset_of!(OpaqueObj, kind) as u64, kind);
    rt.st(r, offset_of!(OpaqueObj, a) as u64, rt.get(ra));
    rt.release(m);
    Ok(r)
}
