//! The interpreter's side of [`crate::special`]: special methods of instances met by the value
//! operations run as ordinary calls of the interpreter, on a copy of the calling thread's
//! state (its frames, for traces and the recursion limit, and its atomic nesting).

use super::{Exc, Interp, R};
use crate::special::{self, Special};
use crate::value::{OpError, Value};
use std::cell::RefCell;

/// Answers special-method calls during one operation of `it`.
struct InterpSpecial<'a> {
    it: &'a Interp,
    /// The full error of a special method that failed (the operation only carries its kind
    /// and message), with the method's own frames in its trace.
    failed: RefCell<Option<Box<Exc>>>,
}

impl Special for InterpSpecial<'_> {
    fn call(&self, inst: &Value, name: &str, args: &[Value]) -> Option<Result<Value, OpError>> {
        let Value::Instance(i) = inst else {
            return None;
        };
        let method = i.class.lookup(name)?;
        let mut sub = Interp {
            shared: self.it.shared.clone(),
            frames: self.it.frames.clone(),
            atomic: self.it.atomic,
            ticks: 0,
            handling: Vec::new(),
        };
        let outer = sub.frames.len();
        let r = match method {
            Value::Function(f) => {
                let mut all = Vec::with_capacity(args.len() + 1);
                all.push(inst.clone());
                all.extend_from_slice(args);
                sub.call_function(&f, all, Vec::new())
            }
            other => sub.call_value(other, args.to_vec(), Default::default()),
        };
        Some(r.map_err(|mut e| {
            // Keep the method's own frames; the operation's caller adds the others.
            let own = e.trace.len().saturating_sub(outer);
            e.trace.truncate(own);
            e.open = true;
            let op = (e.kind, e.msg.clone());
            *self.failed.borrow_mut() = Some(e);
            op
        }))
    }

    fn defines(&self, inst: &Value, name: &str) -> bool {
        matches!(inst, Value::Instance(i) if i.class.lookup(name).is_some())
    }

    fn take_error(&self, class: usize) -> bool {
        let mut failed = self.failed.borrow_mut();
        let Some(e) = failed.as_ref() else {
            return false;
        };
        let matches = match &e.obj {
            Some(Value::Instance(i)) => {
                crate::builtins_core::is_subclass(&i.class, &self.it.shared.exc_classes[class])
            }
            _ => crate::exceptions::derives(crate::exceptions::of_kind(e.kind), class),
        };
        if matches {
            *failed = None;
        }
        matches
    }
}

impl Interp {
    /// Runs a value operation that may meet instances with special methods.
    pub(super) fn with_special<T>(&self, f: impl FnOnce() -> Result<T, OpError>) -> R<T> {
        let host = InterpSpecial {
            it: self,
            failed: RefCell::new(None),
        };
        let r = special::with_special(&host, f);
        r.map_err(|e| host.failed.take().unwrap_or_else(|| e.into()))
    }

    /// `f()` of an item operation on `o` with index or key `i`: under
    /// [`Interp::with_special`] when `o` is an instance, or `i` an instance, a tuple (a
    /// key whose `__hash__` and `__eq__` may run) or a slice (whose bounds' `__index__` may).
    pub(super) fn on_item<T>(
        &self,
        o: &Value,
        i: &Value,
        f: impl FnOnce() -> Result<T, OpError>,
    ) -> R<T> {
        if matches!(o, Value::Instance(_))
            || matches!(
                i,
                Value::Instance(_) | Value::Tuple(_) | Value::FrozenSet(_) | Value::Slice(_)
            )
        {
            self.with_special(f)
        } else {
            Ok(f()?)
        }
    }

    /// `f()` of a slice operation on `o` with bounds `lo:hi` (assigning `v`): as
    /// [`Interp::on_item`], and under [`Interp::with_special`] when a bound is an instance
    /// (its `__index__` runs).
    pub(super) fn on_slice<T>(
        &self,
        o: &Value,
        [lo, hi]: [&Option<Value>; 2],
        v: &Value,
        f: impl FnOnce() -> Result<T, OpError>,
    ) -> R<T> {
        let inst = |b: &Option<Value>| matches!(b, Some(Value::Instance(_)));
        if inst(lo) || inst(hi) {
            self.with_special(f)
        } else {
            self.on_item(o, v, f)
        }
    }

    /// `f()` of an operation that iterates `v`: under [`Interp::with_special`] when `v` is
    /// an instance (whose `__iter__`/`__next__` or `__getitem__` run).
    pub(super) fn iterating<T>(&self, v: &Value, f: impl FnOnce() -> Result<T, OpError>) -> R<T> {
        self.on_item(v, &Value::None, f)
    }

    /// Python truth of `v`, calling an instance's `__bool__` or `__len__`.
    pub(super) fn truth(&self, v: &Value) -> R<bool> {
        if !matches!(v, Value::Instance(_)) {
            return Ok(v.truthy());
        }
        self.with_special(|| special::truth(v))
    }
}
