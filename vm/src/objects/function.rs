//! Callables: a program function (the one object of a `def` without default values is
//! allocated with the program's constants; a `def` with defaults makes a new one each time
//! it runs), a bound method (`instance.method` not yet called), a builtin function or
//! builtin method.

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
    /// None, or a list of the values of its defaults (`Function::defaults`), evaluated
    /// when its `def` ran. (References from here on.)
    pub defaults: Word,
    /// None, or a list of the cells of its free variables (`Function::closure`).
    pub closure: Word,
    /// Its identity number, given when it is made (`hashing.rs`): its hash and its key
    /// as a dict key (objects move, so the address cannot be). Raw bits, not a reference
    /// (outside the traced range).
    pub hash: Word,
}

/// `instance.method` not yet called.
#[repr(C)]
pub struct BoundMethodObj {
    /// Object header.
    pub header: ObjectHeader,
    /// The function's index in the program.
    pub func_id: u64,
    /// The receiver. (References from here on.)
    pub receiver: Word,
    /// The function object.
    pub func: Word,
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
    /// A bound method object of function object `func`.
    pub fn new_bound_method(&mut self, func: Word, recv: Word) -> R<Word> {
        let m = self.mark();
        let rr = self.root(recv);
        let rf = self.root(func);
        let r = self.alloc(
            self.types.bound_method,
            std::mem::size_of::<BoundMethodObj>() as u64,
        )?;
        let (recv, func) = (self.get(rr), self.get(rf));
        self.release(m);
        let fid = self.ld(func, offset_of!(FunctionObj, func_id) as u64);
        self.st(r, offset_of!(BoundMethodObj, func_id) as u64, fid);
        self.st(r, offset_of!(BoundMethodObj, receiver) as u64, recv);
        self.st(r, offset_of!(BoundMethodObj, func) as u64, func);
        Ok(r)
    }

    /// Whether `w` is the constant function object of its program function (allocated with
    /// the program's constants, in the old space: it never moves), not one a `def` with
    /// default values made.
    pub fn is_const_function(&self, w: Word) -> bool {
        self.is(w, self.types.function)
            && self.info.consts.func_objs
                [self.ld(w, offset_of!(FunctionObj, func_id) as u64) as usize]
                == w
    }

    /// A function object of program function `fid` with default values `defaults` and
    /// the cells of its free variables `closure` (lists, or None).
    pub fn new_function(&mut self, fid: usize, defaults: Word, closure: Word) -> R<Word> {
        let m = self.mark();
        let rd = self.root(defaults);
        let rc = self.root(closure);
        let r = self.alloc(
            self.types.function,
            std::mem::size_of::<FunctionObj>() as u64,
        )?;
        let (defaults, closure) = (self.get(rd), self.get(rc));
        self.release(m);
        self.st(r, offset_of!(FunctionObj, func_id) as u64, fid as u64);
        self.st(r, offset_of!(FunctionObj, defaults) as u64, defaults);
        self.st(r, offset_of!(FunctionObj, closure) as u64, closure);
        let h = self.new_ident();
        self.st(r, offset_of!(FunctionObj, hash) as u64, h as u64);
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
