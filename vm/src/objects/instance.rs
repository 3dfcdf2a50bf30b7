//! Instances: a class, the first slots inline (their count fixed when the instance is
//! made), and an overflow array (not card-marked) for the slots past them, indexed by the
//! class's shape (attribute name → slot, kept by the class table and cached per access
//! site).
//!
//! Why inline: an attribute read of a slots array beside the instance cost a second load,
//! a null test, a bound test and a second read barrier per access, and every instance a
//! second object. The inline count is the class's shape length when the instance is made
//! ([`inline_slots`]), so that instances made once the class's `__init__` has run hold
//! all their attributes inline; the overflow array takes attributes added to the shape
//! after the instance was made.
//!
//! Why raw floats: `b.vx -= dx * m` in a loop allocated a float box per store, and every
//! read of the attribute went through the box. An inline slot whose bit is set in
//! [`InstanceObj::floats`] holds the raw `f64` bits of its float instead of a word (JIT float
//! trees store and read it so); the box is made where the value is read as a word (a generic
//! `o.name`, [`Runtime::inst_slot`]). Floats have no identity (`is` compares their values),
//! so a new box per read gives the same results. The GC skips those slots.

use super::*;
use crate::{Runtime, R, UNBOUND};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// An instance of a class, followed by its [`InstanceObj::inline`] inline slot words.
#[repr(C)]
pub struct InstanceObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Its class ([`ClassObj`]).
    pub class: Word,
    /// The overflow [`ArrayObj`] (non-carded) of slots `inline..`, or 0 before any.
    pub slots: Word,
    /// Its hash once hashed as a key or by `hash()`, plus 1; 0 before (`hashing.rs`). Raw
    /// bits, not a reference (outside the traced range).
    pub hash: Word,
    /// The number of inline slots after [`InstanceObj::floats`] (raw, fixed at allocation).
    pub inline: u64,
    /// Bit `i` set: inline slot `i` holds the raw bits of an `f64` (a float), not a word.
    /// Raw, untraced; changed under the instance's write barrier with the slot.
    pub floats: u64,
}

/// What an instance slot holds: a word, or a float kept raw in the slot.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SlotValue {
    /// A tagged word ([`UNBOUND`] if the slot is not set).
    Word(Word),
    /// A float stored raw ([`InstanceObj::floats`]).
    Float(f64),
}

/// Offset of inline slot 0.
pub const INSTANCE_DATA: u64 = size_of::<InstanceObj>() as u64;

/// Most inline slots of an instance (the rest overflow), so that an instance stays a small
/// (nursery-bumped) object.
pub const MAX_INLINE: u64 = 64;

/// Inline slots of the first instances of a class whose shape is still empty (its
/// `__init__` has not run yet): room for a typical `__init__`'s attributes.
const FIRST_INLINE: u64 = 8;

/// Bytes of an instance of `n` inline slots.
pub fn instance_size(n: u64) -> u64 {
    INSTANCE_DATA + 8 * n
}

/// The inline slot count of a new instance of a class whose shape has `shape_len` names.
pub fn inline_slots(shape_len: u64) -> u64 {
    if shape_len == 0 {
        FIRST_INLINE
    } else {
        shape_len.min(MAX_INLINE)
    }
}

impl Runtime {
    /// A new instance of class `cls` with `n` inline slots, all unbound.
    pub fn new_instance_obj(&mut self, cls: Word, n: u64) -> R<Word> {
        let n = n.min(MAX_INLINE);
        let m = self.mark();
        let rc = self.root(cls);
        let inst = self.alloc(self.types.instance, instance_size(n))?;
        let cls = self.get(rc);
        self.release(m);
        self.init_instance(inst, cls, n);
        Ok(inst)
    }
    /// [`Self::new_instance_obj`] after a test of the heap limit made now (not after so
    /// many allocations): the allocation of a class call site of JIT code whose inline bump
    /// found the nursery full (it allocates the others itself, never testing the limit), so
    /// that the limit is tested at every nursery of instances.
    pub fn new_instance_obj_tested(&mut self, cls: Word, n: u64) -> R<Word> {
        let n = n.min(MAX_INLINE);
        let m = self.mark();
        let rc = self.root(cls);
        // As many as make the count due.
        self.heap_check(instance_size(n), crate::heap::CHECK_EVERY)?;
        let cls = self.get(rc);
        self.release(m);
        self.new_instance_obj(cls, n)
    }
    /// Initializes new (zeroed, young) instance `inst` of `n` inline slots: class `cls`,
    /// slots unbound.
    pub fn init_instance(&self, inst: Word, cls: Word, n: u64) {
        self.st(inst, offset_of!(InstanceObj, class) as u64, cls);
        self.st(inst, offset_of!(InstanceObj, inline) as u64, n);
        self.st(inst, offset_of!(InstanceObj, floats) as u64, 0);
        for i in 0..n {
            self.st(inst, INSTANCE_DATA + 8 * i, UNBOUND);
        }
    }
    /// The inline slot count of instance `o` (immutable: no barrier needed).
    fn inst_inline(&self, o: Word) -> u64 {
        self.ld(o, offset_of!(InstanceObj, inline) as u64)
    }
    /// Slot `i` of an instance as it is held: a word ([`UNBOUND`] if not set) or a raw float.
    pub fn inst_slot_value(&self, o: Word, i: usize) -> SlotValue {
        self.rb(o);
        let n = self.inst_inline(o);
        let i = i as u64;
        if i < n {
            let w = self.ld(o, INSTANCE_DATA + 8 * i);
            if self.ld(o, offset_of!(InstanceObj, floats) as u64) >> i & 1 == 1 {
                return SlotValue::Float(f64::from_bits(w));
            }
            return SlotValue::Word(w);
        }
        let slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        if slots == 0 || i - n >= self.arr_cap(slots) {
            return SlotValue::Word(UNBOUND);
        }
        self.rb(slots);
        SlotValue::Word(self.ld(slots, ARRAY_DATA + 8 * (i - n)))
    }
    /// Whether slot `i` of an instance is set.
    pub fn inst_slot_bound(&self, o: Word, i: usize) -> bool {
        self.inst_slot_value(o, i) != SlotValue::Word(UNBOUND)
    }
    /// Slot `i` of an instance as a word (a raw float boxed: this may allocate), or
    /// [`UNBOUND`].
    pub fn inst_slot(&mut self, o: Word, i: usize) -> R<Word> {
        match self.inst_slot_value(o, i) {
            SlotValue::Word(w) => Ok(w),
            SlotValue::Float(f) => self.new_float(f),
        }
    }
    /// Stores slot `i` of an instance (growing its overflow array).
    pub fn set_inst_slot(&mut self, o: Word, i: usize, v: Word) -> R<()> {
        self.rb(o);
        let n = self.inst_inline(o);
        let i = i as u64;
        if i < n {
            self.wb(o)?;
            self.st(o, INSTANCE_DATA + 8 * i, v);
            let fo = offset_of!(InstanceObj, floats) as u64;
            let floats = self.ld(o, fo);
            if floats >> i & 1 == 1 {
                self.st(o, fo, floats & !(1 << i));
            }
            return Ok(());
        }
        let i = i - n;
        let mut slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        let cap = if slots == 0 { 0 } else { self.arr_cap(slots) };
        let (mut o, mut v) = (o, v);
        if i >= cap {
            let m = self.mark();
            let (ro, rv, rs) = (self.root(o), self.root(v), self.root(slots));
            let new = self.new_array(false, (i + 1).max(cap * 2).max(4), UNBOUND)?;
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
        self.st(slots, ARRAY_DATA + 8 * i, v);
        Ok(())
    }
}
