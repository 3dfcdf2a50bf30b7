//! Callables: a program function (immutable, allocated with the program's constants), a
//! bound method (`instance.method` not yet called), a builtin function or builtin method.

use crate::{Runtime, R};
use std::mem::offset_of;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A function of the program (immutable).
#[repr(C)]
pub struct FunctionObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The function's index in the program.
    pub func_id: u64,
}

/// `instance.method` not yet called.
#[repr(C)]
pub struct BoundMethodObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The function's index in the program.
    pub func_id: u64,
    /// The receiver.
    pub receiver: Word,
}

/// A builtin function (`receiver` = None) or a builtin method of `receiver`, not yet called.
#[repr(C)]
pub struct BuiltinObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Builtin function number, or method-name id for methods.
    pub which: u64,
    /// The receiver of a builtin method; None for builtin functions.
    pub receiver: Word,
    /// 1 for a builtin method, 0 for a builtin function.
    pub is_method: u64,
}

impl Runtime {
    /// A bound method object.
    pub fn new_bound_method(&mut self, func: usize, recv: Word) -> R<Word> {
        let m = self.mark();
        let rr = self.root(recv);
        let r = self.alloc(
            self.types.bound_method,
            std::mem::size_of::<BoundMethodObj>() as u64,
        )?;
        let recv = self.get(rr);
        self.release(m);
        self.st(r, offset_of!(BoundMethodObj, func_id) as u64, func as u64);
        self.st(r, offset_of!(BoundMethodObj, receiver) as u64, recv);
        Ok(r)
    }
    /// A builtin function (`which` = index in `Builtin::ALL`) or builtin method (`which` =
    /// name id) object.
    pub fn new_builtin(&mut self, which: u64, recv: Word, method: bool) -> R<Word> {
        let m = self.mark();
        let rr = self.root(recv);
        let r = self.alloc(self.types.builtin, std::mem::size_of::<BuiltinObj>() as u64)?;
        let recv = self.get(rr);
        self.release(m);
        self.st(r, offset_of!(BuiltinObj, which) as u64, which);
        self.st(r, offset_of!(BuiltinObj, receiver) as u64, recv);
        self.st(r, offset_of!(BuiltinObj, is_method) as u64, method as u64);
        Ok(r)
    }
}
