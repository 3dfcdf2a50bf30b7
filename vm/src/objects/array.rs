//! Arrays of words: list items, dict entries and index, instance slots, globals. A
//! card-marked array is written with the card write barrier of its element (one 16-byte
//! card each), so that two transactions writing different elements neither conflict nor
//! copy the whole array.

use crate::{Runtime, R};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

const ARR_CAP: u64 = offset_of!(ArrayObj, cap) as u64;

/// A fixed-capacity array of words (list items, dict entries and index, instance slots,
/// globals). The words follow the struct, at [`ARRAY_DATA`].
#[repr(C)]
pub struct ArrayObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of words.
    pub cap: u64,
}

/// Offset of the first word of an [`ArrayObj`] (16: every even word starts a card).
pub const ARRAY_DATA: u64 = size_of::<ArrayObj>() as u64;

/// Size in bytes of an array object of `cap` words.
pub fn array_size(cap: u64) -> u64 {
    ARRAY_DATA + 8 * cap
}

impl Runtime {
    /// A new array of `cap` words, all `fill`.
    pub fn new_array(&mut self, carded: bool, cap: u64, fill: Word) -> R<Word> {
        let t = if carded {
            self.types.carded_array
        } else {
            self.types.array
        };
        self.new_array_of(t, cap, fill)
    }
    /// A new array of type `t` (one of the array types) of `cap` words, all `fill`.
    pub fn new_array_of(&mut self, t: stmjit_runtime::TypeId, cap: u64, fill: Word) -> R<Word> {
        let r = self.alloc(t, array_size(cap))?;
        self.init_array(r, cap, fill);
        Ok(r)
    }
    /// Sets the capacity of new (zeroed) array `r` and fills its `cap` words with `fill`.
    pub fn init_array(&self, r: Word, cap: u64, fill: Word) {
        self.st(r, ARR_CAP, cap);
        if fill != 0 {
            for i in 0..cap {
                self.st(r, ARRAY_DATA + 8 * i, fill);
            }
        }
    }
    /// Capacity of an array (immutable).
    pub fn arr_cap(&self, a: Word) -> u64 {
        self.ld(a, ARR_CAP)
    }
    /// Element `i` of a card-marked array, with the element's read barrier.
    #[inline]
    pub fn carr_get(&self, a: Word, i: u64) -> Word {
        let off = ARRAY_DATA + 8 * i;
        self.rb(a + off);
        self.ld(a, off)
    }
    /// Stores element `i` of a card-marked array, with the card write barrier.
    #[inline]
    pub fn carr_set(&self, a: Word, i: u64, v: Word) -> R<()> {
        let off = ARRAY_DATA + 8 * i;
        self.wb_elem(a, off)?;
        self.st(a, off, v);
        Ok(())
    }
}
