//! `range(start, stop, step)` as a value (immutable; a `for` over `range(...)` written in
//! place needs none: it is a counted loop). A range beyond the tagged ints is an opaque
//! object of kind [`OPAQUE_BIG_RANGE`] instead (its operations go through the values of
//! `stmjit_lang::ranges`; a `for` loop takes its items one by one).

use super::opaque::{new_opaque, OpaqueObj, OPAQUE_BIG_RANGE};
use crate::convert::Memo;
use crate::{Runtime, R};
use crate::{MOVING, UNBOUND};
use std::mem::offset_of;
use stmjit_lang::bigint::big_value;
use stmjit_lang::ranges::BigRange;
use stmjit_lang::value::{TupleObj, Value};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::{self, Word};

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

impl Runtime {
    /// Whether `w` is a range beyond the tagged ints (an opaque object of kind
    /// [`OPAQUE_BIG_RANGE`]).
    pub fn is_big_range(&self, w: Word) -> bool {
        // `kind` is written once, when the object is made: no barrier needed to read it.
        self.is(w, self.types.opaque)
            && self.ld(w, offset_of!(OpaqueObj, kind) as u64) == OPAQUE_BIG_RANGE
    }

    /// The parts of the big range `w` (immutable: its tuple and the ints in it never change).
    pub(crate) fn big_range_of(&self, w: Word) -> BigRange {
        let t = self.ld(w, offset_of!(OpaqueObj, a) as u64);
        let part = |i| {
            let v = self.to_value(self.tuple_get(t, i), &mut Memo::peek());
            stmjit_lang::bigint::as_big(&v).expect("a big range's parts are ints")
        };
        BigRange {
            start: part(0),
            stop: part(1),
            step: part(2),
        }
    }

    /// Item `i` of a `for` loop over the big range `w`: a tagged int, [`UNBOUND`] past its
    /// end, or [`MOVING`] when it is a big int (to allocate: [`Runtime::big_range_item`]).
    /// Why lazily: `for i in range(10**20): ... break` must not list the items first.
    pub(crate) fn big_range_next(&self, w: Word, i: u64) -> Word {
        match stmjit_lang::ranges::next(&self.big_range_of(w), i) {
            None => UNBOUND,
            Some(Value::Int(n)) => value::from_int(n).unwrap_or(MOVING),
            Some(_) => MOVING,
        }
    }

    /// [`Runtime::big_range_next`], a big int item allocated (which may move objects).
    pub(crate) fn big_range_item(&mut self, w: Word, i: u64) -> R<Word> {
        match stmjit_lang::ranges::next(&self.big_range_of(w), i) {
            None => Ok(UNBOUND),
            Some(x) => self.from_value(&x, &mut Memo::peek()),
        }
    }

    /// A new big range object of `r`: an opaque object holding the tuple of its parts.
    pub(crate) fn new_big_range(&mut self, r: &BigRange, memo: &mut Memo) -> R<Word> {
        let parts = [&r.start, &r.stop, &r.step].map(|b| big_value(b.clone()));
        let t = self.from_value(&TupleObj::new_value(parts.to_vec()), memo)?;
        new_opaque(self, OPAQUE_BIG_RANGE, t)
    }
}
