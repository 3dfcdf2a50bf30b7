//! The JIT runtime's side of [`stmjit_lang::special`]: the value operations that work on the
//! interpreter's values (`convert.rs`) call the special methods (`__eq__`, `__repr__`, ...)
//! of the instances they meet as JIT functions, on the heap objects those values came from.
//!
//! An operation runs [`Runtime::with_special`]: its conversion roots every instance it
//! meets (when the program names a special method at all), so that a call, which may move
//! objects, still finds them. A special method that raises or whose transaction aborts has
//! already recorded that in the runtime when it returns [`ERR`]: the operation only needs to
//! fail (a later raise does not replace the first error, and does nothing while aborting).

use crate::calls::call_value;
use crate::convert::Memo;
use crate::objects::{new_opaque, InstanceObj, OpaqueObj, OPAQUE_ITEMS_ITER};
use crate::{rt_of, Ctx, Runtime, Unwind, ERR, R};
use std::cell::RefCell;
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::special::{self, Special};
use stmjit_lang::value::{OpError, Value};
use stmjit_runtime::value::{self, Word};

/// The special methods that value operations call.
pub const NAMES: [&str; 11] = [
    "__eq__",
    "__ne__",
    "__lt__",
    "__le__",
    "__gt__",
    "__ge__",
    "__str__",
    "__repr__",
    "__bool__",
    "__len__",
    "__index__",
];

/// Answers special-method calls during one operation, with the memo of its conversion.
struct VmSpecial {
    ctx: *mut Ctx,
    memo: RefCell<Memo>,
}

/// The error an operation fails with after a special method failed (already recorded).
fn already_raised() -> OpError {
    (ErrorKind::RuntimeError, "special method failed".into())
}

impl Special for VmSpecial {
    fn call(&self, inst: &Value, name: &str, args: &[Value]) -> Option<Result<Value, OpError>> {
        let Value::Instance(a) = inst else {
            return None;
        };
        let rt = rt_of(self.ctx);
        let root = self.memo.borrow().instance_root(a)?;
        let id = rt.info.names.id(name)?;
        rt.rb(rt.get(root));
        let cls = rt.ld(rt.get(root), offset_of!(InstanceObj, class) as u64);
        let f = match rt.class_lookup(cls, id) {
            Ok(Some(f)) => f,
            Ok(None) => return None,
            Err(e) => return Some(Err(fail(rt, e))),
        };
        // The method and its arguments stay rooted until the operation ends.
        let rf = rt.root(f);
        let mut roots = vec![rt.root(rt.get(root))];
        for v in args {
            let w = match rt.from_value(v, &mut self.memo.borrow_mut()) {
                Ok(w) => w,
                Err(e) => return Some(Err(fail(rt, e))),
            };
            roots.push(rt.root(w));
        }
        let words: Vec<Word> = roots.iter().map(|&r| rt.get(r)).collect();
        let r = call_value(self.ctx, rt.get(rf), &words);
        if r == ERR {
            return Some(Err(already_raised()));
        }
        let rt = rt_of(self.ctx);
        Some(Ok(rt.to_value(r, &mut self.memo.borrow_mut())))
    }

    fn defines(&self, inst: &Value, name: &str) -> bool {
        let Value::Instance(a) = inst else {
            return false;
        };
        let rt = rt_of(self.ctx);
        let (Some(root), Some(id)) = (self.memo.borrow().instance_root(a), rt.info.names.id(name))
        else {
            return false;
        };
        let inst = rt.get(root);
        // An abort is recorded (the operation then fails, whatever it does next).
        rt.defines(inst, id).unwrap_or_else(|e| {
            fail(rt, e);
            false
        })
    }

    fn take_error(&self, class: usize) -> bool {
        rt_of(self.ctx).take_pending(class)
    }
}

/// An error of the runtime itself during a special-method call, recorded like any other.
fn fail(rt: &mut Runtime, e: Unwind) -> OpError {
    match e {
        Unwind::Raise(kind, msg) => (kind, msg),
        Unwind::Aborted => {
            rt.unwind(Unwind::Aborted);
            already_raised()
        }
    }
}

impl Runtime {
    /// `inst.name(args...)` of the instance `inst` when its class defines `name` (`None`
    /// otherwise); a failure of the method is already recorded when this returns `Err`.
    /// `inst` and `args` need not be rooted by the caller.
    pub(crate) fn call_special(
        &mut self,
        inst: Word,
        name: &str,
        args: &[Word],
    ) -> R<Option<Word>> {
        let Some(id) = self.info.names.id(name) else {
            return Ok(None);
        };
        let m = self.mark();
        let mut roots = vec![self.root(inst)];
        roots.extend(args.iter().map(|&a| self.root(a)));
        self.rb(inst);
        let cls = self.ld(inst, offset_of!(InstanceObj, class) as u64);
        let f = match self.class_lookup(cls, id) {
            Ok(Some(f)) => f,
            Ok(None) => {
                self.release(m);
                return Ok(None);
            }
            Err(e) => {
                self.release(m);
                return Err(e);
            }
        };
        let rf = self.root(f);
        let words: Vec<Word> = roots.iter().map(|&r| self.get(r)).collect();
        let r = call_value(self.ctx, self.get(rf), &words);
        self.release(m);
        if r == ERR {
            let (kind, msg) = already_raised();
            return Err(Unwind::Raise(kind, msg));
        }
        Ok(Some(r))
    }

    /// Whether the class of the instance `inst` defines (or inherits) name `id`.
    pub(crate) fn defines(&mut self, inst: Word, id: u32) -> R<bool> {
        let cls = self.class_of(inst);
        Ok(self.class_lookup(cls, id)?.is_some())
    }

    /// The iterator of a `for` loop over the instance `v`: what its `__iter__` returns, which
    /// must be an instance ([`Runtime::user_next`] calls its `__next__`); without
    /// `__iter__` but with `__getitem__`, an iterator of the old protocol (see
    /// [`OPAQUE_ITEMS_ITER`]); `None` when the class defines neither.
    pub(crate) fn user_iter(&mut self, v: Word) -> R<Option<Word>> {
        let Some(it) = self.call_special(v, "__iter__", &[])? else {
            let getitem = self.info.names.id("__getitem__");
            if match getitem {
                Some(id) => self.defines(v, id)?,
                None => false,
            } {
                return new_opaque(self, OPAQUE_ITEMS_ITER, v).map(Some);
            }
            return Ok(None);
        };
        if !self.is(it, self.types.instance) {
            let mut memo = Memo::peek();
            let name = self.to_value(it, &mut memo).type_name();
            return Err(crate::exc(
                ErrorKind::TypeError,
                format!("iter() returned non-iterator of type '{name}'"),
            ));
        }
        Ok(Some(it))
    }

    /// The next item of an instance's iterator by its `__next__`, or [`crate::UNBOUND`] when
    /// it raised `StopIteration` (then no longer pending).
    pub(crate) fn user_next(&mut self, it: Word) -> R<Word> {
        let r = self.call_special(it, "__next__", &[]);
        match r {
            Ok(Some(x)) => Ok(x),
            Ok(None) => {
                let mut memo = Memo::peek();
                let name = self.to_value(it, &mut memo).type_name();
                Err(crate::exc(
                    ErrorKind::TypeError,
                    format!("iter() returned non-iterator of type '{name}'"),
                ))
            }
            Err(e) => {
                if self.take_pending(stmjit_lang::exceptions::STOP_ITERATION) {
                    Ok(crate::UNBOUND)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Item `i` of the old protocol's iterator `it` (an [`OPAQUE_ITEMS_ITER`]): its
    /// instance's `__getitem__(i)`, or [`crate::UNBOUND`] when that raised `IndexError` or
    /// `StopIteration` (then no longer pending).
    pub(crate) fn items_next(&mut self, it: Word, i: u64) -> R<Word> {
        // Written once, when the iterator was made: no barrier needed.
        let inst = self.ld(it, offset_of!(OpaqueObj, a) as u64);
        let Some(index) = value::from_int(i as i64) else {
            return Err(crate::exc(
                ErrorKind::OverflowError,
                "iter index too large".to_string(),
            ));
        };
        let r = self.call_special(inst, "__getitem__", &[index]);
        match r {
            Ok(Some(x)) => Ok(x),
            Ok(None) => {
                let inst = self.ld(it, offset_of!(OpaqueObj, a) as u64);
                let name = self.type_name(inst);
                Err(crate::exc(
                    ErrorKind::TypeError,
                    format!("'{name}' object is not iterable"),
                ))
            }
            Err(e) => {
                use stmjit_lang::exceptions::{INDEX_ERROR, STOP_ITERATION};
                if self.take_pending(INDEX_ERROR) || self.take_pending(STOP_ITERATION) {
                    Ok(crate::UNBOUND)
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Converts `words` with `memo` and runs `f` on their values, calling the special
    /// methods of the instances it meets; gives back the values, the result and the memo.
    pub(crate) fn run_special<T>(
        &mut self,
        words: &[Word],
        mut memo: Memo,
        f: impl FnOnce(&[Value]) -> Result<T, OpError>,
    ) -> (Vec<Value>, Result<T, OpError>, Memo) {
        memo.instances = self.info.special_methods && !self.ctx.is_null();
        let vals: Vec<Value> = words.iter().map(|&w| self.to_value(w, &mut memo)).collect();
        if !memo.instances {
            let r = f(&vals);
            return (vals, r, memo);
        }
        let host = VmSpecial {
            ctx: self.ctx,
            memo: RefCell::new(memo),
        };
        let r = special::with_special(&host, || f(&vals));
        (vals, r, host.memo.into_inner())
    }

    /// Python truth of `w`: an instance's `__bool__` or `__len__` runs (and may move objects,
    /// raise, or end the transaction); other words as [`Runtime::truthy`].
    pub fn truth(&mut self, w: Word) -> R<bool> {
        if !self.info.special_methods || !self.is(w, self.types.instance) {
            return Ok(self.truthy(w));
        }
        self.with_special(&[w], |v| special::truth(&v[0]))
    }

    /// Runs the read-only value operation `f` on the values of `words` (converted deeply),
    /// calling the special methods of the instances it meets.
    pub fn with_special<T>(
        &mut self,
        words: &[Word],
        f: impl FnOnce(&[Value]) -> Result<T, OpError>,
    ) -> R<T> {
        let m = self.mark();
        let (_, r, _) = self.run_special(words, Memo::reading(), f);
        self.release(m);
        Ok(r?)
    }
}
