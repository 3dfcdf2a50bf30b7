//! Slice objects, `slice(start, stop, step)` (what `x[a:b:c]` indexes with): three words,
//! written once when made, so read without read barriers and never write-barriered (as a
//! tuple). The slicing itself runs on the interpreter's values (`stmjit_lang::slices`).

use super::{tuple_size, ARRAY_DATA, TUPLE_DATA};
use crate::{Runtime, R};
use std::mem::{offset_of, size_of};
use stmjit_lang::slices::{self, Positions};
use stmjit_lang::value::Value;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::{self, is_int, Word, FALSE, NONE, TRUE};

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

impl Runtime {
    /// `o[s]` for a list or tuple `o` and a slice object `s` whose parts are ints, bools or
    /// None, copied natively (any number of items, no conversion); `None` for others.
    pub fn slice_seq(&mut self, o: Word, s: Word) -> Option<R<Word>> {
        let t = self.types;
        let is_list = self.is(o, t.list);
        if !is_list && !self.is(o, t.tuple) {
            return None;
        }
        let mut parts = [Value::None, Value::None, Value::None];
        for (v, w) in parts.iter_mut().zip(self.slice_parts(s)) {
            *v = match w {
                NONE => Value::None,
                TRUE | FALSE => Value::Bool(w == TRUE),
                w if is_int(w) => Value::Int(value::to_int(w)),
                _ => return None,
            };
        }
        let [a, b, c] = &parts;
        let u = match slices::unpack(a, b, c) {
            Ok(u) => u,
            Err(e) => return Some(Err(e.into())),
        };
        let m = self.mark();
        let ro = self.root(o);
        let r = if is_list {
            let p = Positions::adjust(u, self.list_len(o) as usize);
            self.list_for(p.count as u64).map(|(l, arr)| {
                let src = self.get(ro);
                for (k, i) in p.iter().enumerate() {
                    let w = self.list_get(src, i as u64);
                    self.st(arr, ARRAY_DATA + 8 * k as u64, w);
                }
                l
            })
        } else {
            // No more items than `o` has: within the heap limit.
            let p = Positions::adjust(u, self.tuple_len(o) as usize);
            let n = p.count as u64;
            self.alloc(t.tuple, tuple_size(n)).inspect(|&tup| {
                self.st(tup, offset_of!(super::TupleObj, len) as u64, n);
                let src = self.get(ro);
                for (k, i) in p.iter().enumerate() {
                    self.st(
                        tup,
                        TUPLE_DATA + 8 * k as u64,
                        self.tuple_get(src, i as u64),
                    );
                }
            })
        };
        self.release(m);
        Some(r)
    }
}
