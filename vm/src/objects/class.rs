//! Classes: an id in the class table (name, shape, method caches: `class_table.rs`), a
//! base, and the class attributes in a dict keyed by name strs.

use crate::Runtime;
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A class.
#[repr(C)]
pub struct ClassObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Index of the class in the JIT's class table (name, shape, base).
    pub class_id: u64,
    /// Base class or None.
    pub base: Word,
    /// Class attributes and methods: a [`DictObj`](super::DictObj) keyed by name strs.
    pub attrs: Word,
}

impl Runtime {
    /// The class name of an instance or class object.
    pub fn class_name(&self, cls: Word) -> String {
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        self.info.classes.read()[id].name.clone()
    }
}
