//! `range(start, stop, step)` as a value (immutable; a `for` over `range(...)` written in
//! place needs none: it is a counted loop).

use crate::Runtime;
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// `range(start, stop, step)` as a value (a `for` over `range(...)` written in place needs
/// none: it is a counted loop).
#[repr(C)]
pub struct RangeObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Start.
    pub start: i64,
    /// Stop.
    pub stop: i64,
    /// Step (never 0).
    pub step: i64,
}

impl Runtime {
    /// `(start, stop, step)` of a range object (immutable).
    pub fn range_of(&self, w: Word) -> (i64, i64, i64) {
        (
            self.ld(w, offset_of!(RangeObj, start) as u64) as i64,
            self.ld(w, offset_of!(RangeObj, stop) as u64) as i64,
            self.ld(w, offset_of!(RangeObj, step) as u64) as i64,
        )
    }
}
