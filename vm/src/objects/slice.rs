//! Slice objects, `slice(start, stop, step)` (what `x[a:b:c]` indexes with): three words,
//! written once when made, so read without read barriers and never write-barriered (as a
//! tuple). The slicing itself runs on the interpreter's values (`stmjit_lang::slices`).

use crate::{Runtime, R};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// `slice(start, stop, step)`: any values (None for a missing part).
#[repr(C)]
pub struct SliceObj {
    /// Object header.
    pub header: ObjectHeader,
    /// `start`.
    pub start: Word,
    /// `stop`.
    pub stop: Word,
    /// `step`.
    pub step: Word,
}

/// The offsets of `start`, `stop` and `step`, in that order.
const PARTS: [usize; 3] = [
    offset_of!(SliceObj, start),
    offset_of!(SliceObj, stop),
    offset_of!(SliceObj, step),
];

impl Runtime {
    /// `[start, stop, step]` of slice object `w` (immutable).
    pub fn slice_parts(&self, w: Word) -> [Word; 3] {
        PARTS.map(|off| self.ld(w, off as u64))
    }

    /// A new slice object of `parts` (`[start, stop, step]`).
    pub fn new_slice(&mut self, parts: [Word; 3]) -> R<Word> {
        // The parts are rooted across the allocation (it may move them); the new object is
        // young (no write barrier) and nothing allocates between it and the stores.
        let m = self.mark();
        let held = self.hold_all(&parts)?;
        let s = self.alloc(self.types.slice, size_of::<SliceObj>() as u64)?;
        for (off, &h) in PARTS.iter().zip(&held) {
            self.st(s, *off as u64, self.held(h));
        }
        self.release(m);
        Ok(s)
    }

    /// `s.start`, `s.stop` or `s.step` of slice object `s`; `None` for other names.
    pub fn slice_attr(&self, s: Word, name: &str) -> Option<Word> {
        let i = ["start", "stop", "step"].iter().position(|n| *n == name)?;
        Some(self.slice_parts(s)[i])
    }
}
