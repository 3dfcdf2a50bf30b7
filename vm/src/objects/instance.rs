//! Instances: a class and a slots array (not card-marked), indexed by the class's shape
//! (attribute name → slot, kept by the class table and cached per access site).

use super::*;
use crate::{Runtime, R, UNBOUND};
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// An instance of a class.
#[repr(C)]
pub struct InstanceObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Its class ([`ClassObj`]).
    pub class: Word,
    /// The slots [`ArrayObj`] (non-carded), indexed by the class's shape.
    pub slots: Word,
    /// Its hash once hashed as a key or by `hash()`, plus 1; 0 before (`hashing.rs`). Raw
    /// bits, not a reference (outside the traced range).
    pub hash: Word,
}

impl Runtime {
    /// Slot `i` of an instance, or [`UNBOUND`].
    pub fn inst_slot(&self, o: Word, i: usize) -> Word {
        self.rb(o);
        let slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        if slots == 0 || i as u64 >= self.arr_cap(slots) {
            return UNBOUND;
        }
        self.rb(slots);
        self.ld(slots, ARRAY_DATA + 8 * i as u64)
    }
    /// Stores slot `i` of an instance (growing its slots array).
    pub fn set_inst_slot(&mut self, o: Word, i: usize, v: Word) -> R<()> {
        self.rb(o);
        let mut slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        let cap = if slots == 0 { 0 } else { self.arr_cap(slots) };
        let (mut o, mut v) = (o, v);
        if i as u64 >= cap {
            let m = self.mark();
            let (ro, rv, rs) = (self.root(o), self.root(v), self.root(slots));
            let new = self.new_array(false, (i as u64 + 1).max(cap * 2).max(4), UNBOUND)?;
            (o, v, slots) = (self.get(ro), self.get(rv), self.get(rs));
            self.release(m);
            for j in 0..cap {
                self.rb(slots);
                let w = self.ld(slots, ARRAY_DATA + 8 * j);
                self.st(new, ARRAY_DATA + 8 * j, w);
            }
            self.wb(o)?;
            self.st(o, offset_of!(InstanceObj, slots) as u64, new);
            slots = new;
        }
        self.wb(slots)?;
        self.st(slots, ARRAY_DATA + 8 * i as u64, v);
        Ok(())
    }
}
