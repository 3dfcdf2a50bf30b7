//! `float`: a boxed `f64` (immutable: read without read barriers). JIT code computes
//! float trees unboxed and allocates the box inline (`young_header`).

use crate::{Runtime, R};
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A boxed float (immutable).
#[repr(C)]
pub struct FloatObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The value.
    pub value: f64,
}

impl Runtime {
    /// A new float box.
    pub fn new_float(&mut self, f: f64) -> R<Word> {
        let r = self.alloc(self.types.float, std::mem::size_of::<FloatObj>() as u64)?;
        self.st(r, offset_of!(FloatObj, value) as u64, f.to_bits());
        Ok(r)
    }
    /// The value of a float box (immutable: no read barrier).
    pub fn float_of(&self, w: Word) -> f64 {
        f64::from_bits(self.ld(w, offset_of!(FloatObj, value) as u64))
    }
}
