//! The special methods a class may define (`__eq__`, `__ne__`, `__lt__`, `__le__`, `__gt__`,
//! `__ge__`, `__str__`, `__repr__`, `__bool__`, `__len__`), honoured by the value operations
//! of [`crate::value`] wherever they meet an instance: `==` and `<` at any depth of lists and
//! dicts, `in`, `list.index`, `str()`, `repr()`, `print`, the text of containers, truth
//! ([`truth`]), `len()` ([`len_of`]) and every index-like int ([`index_of`]).
//!
//! Those operations are plain functions over values, shared by the interpreter and the JIT's
//! runtime, which run user code in entirely different ways. So the runner installs a
//! [`Special`] for the duration of an operation ([`with_special`]), and the operations reach
//! it through a thread-local when, and only when, they meet an instance. Without one
//! installed, instances keep their default behaviour (identity, `<C object>`).

use crate::value::{OpError, Value};
use std::cell::Cell;
use std::ptr::NonNull;

/// Calls the special methods of instances on behalf of the value operations.
pub trait Special {
    /// `inst.name(args...)` when the class of `inst` (an instance) defines `name`; `None`
    /// when it does not. An error of the method comes back as `Err` (the runner may keep
    /// more about it, such as its trace, on its side).
    fn call(&self, inst: &Value, name: &str, args: &[Value]) -> Option<Result<Value, OpError>>;

    /// Whether the class of the instance `inst` defines (or inherits) `name`.
    fn defines(&self, inst: &Value, name: &str) -> bool;

    /// When the last special method that failed raised an exception of built-in class
    /// `class` (an index of [`crate::exceptions::CLASSES`]) or of a class derived from it,
    /// forgets that error (the operation handles it, as `for` handles `StopIteration`) and
    /// says so; otherwise false, and the error stands.
    fn take_error(&self, class: usize) -> bool;
}

thread_local! {
    static CURRENT: Cell<Option<NonNull<dyn Special + 'static>>> = const { Cell::new(None) };
}

/// Restores the previous [`Special`] when an operation ends, even by unwinding.
struct Restore(Option<NonNull<dyn Special + 'static>>);

impl Drop for Restore {
    fn drop(&mut self) {
        CURRENT.with(|c| c.set(self.0));
    }
}

/// Runs `f` with `special` answering the special-method calls of the value operations on
/// this thread (nested installations stack: the innermost one answers).
pub fn with_special<T>(special: &dyn Special, f: impl FnOnce() -> T) -> T {
    // SAFETY: only the lifetime is erased; the pointer is read back only by `call` below,
    // while `f` runs (the `Restore` guard takes it out again before `special` goes away).
    let erased: NonNull<dyn Special + 'static> = unsafe {
        std::mem::transmute::<NonNull<dyn Special + '_>, NonNull<dyn Special + 'static>>(
            NonNull::from(special),
        )
    };
    let _restore = Restore(CURRENT.with(|c| c.replace(Some(erased))));
    f()
}

/// `inst.name(args...)` through the installed [`Special`], if any and if the class defines
/// `name`.
pub fn call(inst: &Value, name: &str, args: &[Value]) -> Option<Result<Value, OpError>> {
    let current = CURRENT.with(|c| c.get())?;
    // SAFETY: installed by `with_special`, whose caller keeps it alive until the guard
    // removes it; only shared references are made.
    let special = unsafe { current.as_ref() };
    special.call(inst, name, args)
}

/// [`Special::defines`] of the installed [`Special`] (false without one).
fn defines(inst: &Value, name: &str) -> bool {
    let Some(current) = CURRENT.with(|c| c.get()) else {
        return false;
    };
    // SAFETY: as in `call`.
    let special = unsafe { current.as_ref() };
    special.defines(inst, name)
}

/// [`Special::take_error`] of the installed [`Special`] (false without one).
pub fn take_error(class: usize) -> bool {
    let Some(current) = CURRENT.with(|c| c.get()) else {
        return false;
    };
    // SAFETY: as in `call`.
    let special = unsafe { current.as_ref() };
    special.take_error(class)
}

/// The text returned by `__str__`/`__repr__`, which must be a str.
pub fn text_of(name: &str, r: Value) -> Result<String, OpError> {
    match r {
        Value::Str(s) => Ok(s.to_string()),
        other => Err((
            crate::diag::ErrorKind::TypeError,
            format!("{name} returned non-string (type {})", other.type_name()),
        )),
    }
}

/// The comparison `a op b` by special methods: `a.op(b)`, else the reflected `b.rop(a)`
/// (`__eq__` for `__eq__`, `__gt__` for `__lt__`, ...); `None` when neither operand is an
/// instance defining them. `!=` falls back to the negation of `__eq__`, as in Python.
pub fn compare(a: &Value, b: &Value, op: &str) -> Option<Result<bool, OpError>> {
    let (a_inst, b_inst) = (
        matches!(a, Value::Instance(_)),
        matches!(b, Value::Instance(_)),
    );
    if !a_inst && !b_inst {
        return None;
    }
    let reflected = match op {
        "__lt__" => "__gt__",
        "__le__" => "__ge__",
        "__gt__" => "__lt__",
        "__ge__" => "__le__",
        other => other,
    };
    let truth = |r: Result<Value, OpError>| r.and_then(|v| truth(&v));
    if a_inst {
        if let Some(r) = decided(call(a, op, std::slice::from_ref(b))) {
            return Some(truth(r));
        }
    }
    if b_inst {
        if let Some(r) = decided(call(b, reflected, std::slice::from_ref(a))) {
            return Some(truth(r));
        }
    }
    if op == "__ne__" {
        return compare(a, b, "__eq__").map(|r| r.map(|eq| !eq));
    }
    None
}

/// `len(v)` of an instance by its `__len__`, checked as CPython does (an int, not negative);
/// `None` when `v` is no instance defining `__len__`.
pub fn len_of(v: &Value) -> Option<Result<i64, OpError>> {
    if !matches!(v, Value::Instance(_)) {
        return None;
    }
    let r = call(v, "__len__", &[])?;
    Some(r.and_then(|n| match n {
        Value::Int(n) if n >= 0 => Ok(n),
        Value::Bool(b) => Ok(b as i64),
        Value::Int(_) => Err((
            crate::diag::ErrorKind::ValueError,
            "__len__() should return >= 0".into(),
        )),
        other => Err((
            crate::diag::ErrorKind::TypeError,
            format!(
                "'{}' object cannot be interpreted as an integer",
                other.type_name()
            ),
        )),
    }))
}

/// `v` as an index-like int (`operator.index`): an instance's `__index__` result, which must
/// be an int (a bool counts as its int), else `v` itself, for the caller to accept or reject
/// with its own message. Every place that takes an index, a slice bound, a count or a
/// `range()` argument goes through here, so instances with `__index__` work in all of them.
pub fn index_of(v: &Value) -> Result<std::borrow::Cow<'_, Value>, OpError> {
    use std::borrow::Cow;
    if !matches!(v, Value::Instance(_)) {
        return Ok(Cow::Borrowed(v));
    }
    match call(v, "__index__", &[]) {
        None => Ok(Cow::Borrowed(v)),
        Some(r) => match r? {
            n @ (Value::Int(_) | Value::BigInt(_)) => Ok(Cow::Owned(n)),
            Value::Bool(b) => Ok(Cow::Owned(Value::Int(b as i64))),
            other => Err((
                crate::diag::ErrorKind::TypeError,
                format!("__index__ returned non-int (type {})", other.type_name()),
            )),
        },
    }
}

/// Python truth of `v`: an instance's `__bool__` (which must return a bool), else its
/// `__len__` (true when not 0), else true; other values as [`Value::truthy`]. Why not in
/// `truthy` itself: the method may fail, and `truthy` cannot.
pub fn truth(v: &Value) -> Result<bool, OpError> {
    if !matches!(v, Value::Instance(_)) {
        return Ok(v.truthy());
    }
    if let Some(r) = call(v, "__bool__", &[]) {
        return match r? {
            Value::Bool(b) => Ok(b),
            other => Err((
                crate::diag::ErrorKind::TypeError,
                format!(
                    "__bool__ should return bool, returned {}",
                    other.type_name()
                ),
            )),
        };
    }
    if let Some(n) = len_of(v) {
        return Ok(n? != 0);
    }
    Ok(true)
}

/// The result of a binary special method's call, unless the method is missing or returned
/// `NotImplemented` (then the reflected method, or the default, decides).
fn decided(r: Option<Result<Value, OpError>>) -> Option<Result<Value, OpError>> {
    match r {
        Some(Ok(Value::Builtin(crate::ast::Builtin::NotImplemented))) => None,
        r => r,
    }
}

/// The method of `a OP b` and its reflected form (`__add__`, `__radd__`, ...).
pub fn binop_names(op: crate::ast::BinOp) -> (&'static str, &'static str) {
    use crate::ast::BinOp::*;
    match op {
        Add => ("__add__", "__radd__"),
        Sub => ("__sub__", "__rsub__"),
        Mul => ("__mul__", "__rmul__"),
        Div => ("__truediv__", "__rtruediv__"),
        FloorDiv => ("__floordiv__", "__rfloordiv__"),
        Mod => ("__mod__", "__rmod__"),
        Pow => ("__pow__", "__rpow__"),
        Shl => ("__lshift__", "__rlshift__"),
        Shr => ("__rshift__", "__rrshift__"),
        BitAnd => ("__and__", "__rand__"),
        BitOr => ("__or__", "__ror__"),
        BitXor => ("__xor__", "__rxor__"),
    }
}

/// Every arithmetic special method name (the runner watches for them in programs).
pub const ARITH_NAMES: [&str; 27] = [
    "__add__",
    "__radd__",
    "__sub__",
    "__rsub__",
    "__mul__",
    "__rmul__",
    "__truediv__",
    "__rtruediv__",
    "__floordiv__",
    "__rfloordiv__",
    "__mod__",
    "__rmod__",
    "__pow__",
    "__rpow__",
    "__lshift__",
    "__rlshift__",
    "__rshift__",
    "__rrshift__",
    "__and__",
    "__rand__",
    "__or__",
    "__ror__",
    "__xor__",
    "__rxor__",
    "__neg__",
    "__pos__",
    "__invert__",
];

/// Whether `a` and `b` are instances of one class (then CPython tries no reflected method).
fn same_class(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Instance(x), Value::Instance(y)) => std::sync::Arc::ptr_eq(&x.class, &y.class),
        _ => false,
    }
}

/// `a OP b` by special methods: `a.__op__(b)`, else `b.__rop__(a)` (not for two instances
/// of one class, as in CPython); `None` when neither applies (a method that returns
/// `NotImplemented` counts as missing).
pub fn binary(op: crate::ast::BinOp, a: &Value, b: &Value) -> Option<Result<Value, OpError>> {
    let (a_inst, b_inst) = (
        matches!(a, Value::Instance(_)),
        matches!(b, Value::Instance(_)),
    );
    if !a_inst && !b_inst {
        return None;
    }
    let (name, reflected) = binop_names(op);
    if a_inst {
        if let Some(r) = decided(call(a, name, std::slice::from_ref(b))) {
            return Some(r);
        }
    }
    if b_inst && !same_class(a, b) {
        if let Some(r) = decided(call(b, reflected, std::slice::from_ref(a))) {
            return Some(r);
        }
    }
    None
}

/// `-v`, `+v`, `~v` of an instance by `__neg__`, `__pos__`, `__invert__`.
pub fn unary(op: crate::ast::UnaryOp, v: &Value) -> Option<Result<Value, OpError>> {
    if !matches!(v, Value::Instance(_)) {
        return None;
    }
    let name = match op {
        crate::ast::UnaryOp::Neg => "__neg__",
        crate::ast::UnaryOp::Pos => "__pos__",
        crate::ast::UnaryOp::Invert => "__invert__",
    };
    call(v, name, &[])
}

/// The container special methods (the runner watches for them in programs).
pub const CONTAINER_NAMES: [&str; 6] = [
    "__getitem__",
    "__setitem__",
    "__delitem__",
    "__contains__",
    "__iter__",
    "__next__",
];

/// `inst[index]` by `__getitem__`; `None` when `inst` is no instance defining it.
pub fn get_item(inst: &Value, index: &Value) -> Option<Result<Value, OpError>> {
    if !matches!(inst, Value::Instance(_)) {
        return None;
    }
    call(inst, "__getitem__", std::slice::from_ref(index))
}

/// `inst[index] = v` by `__setitem__`; `None` when `inst` is no instance defining it.
pub fn set_item(inst: &Value, index: &Value, v: Value) -> Option<Result<(), OpError>> {
    if !matches!(inst, Value::Instance(_)) {
        return None;
    }
    call(inst, "__setitem__", &[index.clone(), v]).map(|r| r.map(|_| ()))
}

/// `del inst[index]` by `__delitem__`; `None` when `inst` is no instance defining it.
pub fn del_item(inst: &Value, index: &Value) -> Option<Result<(), OpError>> {
    if !matches!(inst, Value::Instance(_)) {
        return None;
    }
    call(inst, "__delitem__", std::slice::from_ref(index)).map(|r| r.map(|_| ()))
}

/// `item in inst`: the truth of `__contains__`, else a search of the items of its iteration
/// ([`iter_of`]: identity, then equality, as for lists); `None` when `inst` is no instance
/// defining any of `__contains__`, `__iter__`, `__getitem__`.
pub fn contains(inst: &Value, item: &Value) -> Option<Result<bool, OpError>> {
    if !matches!(inst, Value::Instance(_)) {
        return None;
    }
    if let Some(r) = call(inst, "__contains__", std::slice::from_ref(item)) {
        return Some(r.and_then(|v| truth(&v)));
    }
    if !iterable(inst) {
        return None;
    }
    Some((|| {
        let mut it = iter_of(inst)?;
        while let Some(x) = next_of(&mut it)? {
            if crate::value::identical(&x, item) || crate::value::equal(&x, item)? {
                return Ok(true);
            }
        }
        Ok(false)
    })())
}

/// Whether the instance `inst` is iterable: its class defines `__iter__` or `__getitem__`.
pub fn iterable(inst: &Value) -> bool {
    defines(inst, "__iter__") || defines(inst, "__getitem__")
}

/// An iteration over an instance, from [`iter_of`]; [`next_of`] takes its items.
pub enum InstIter {
    /// By the `__next__` of this iterator (what `__iter__` returned).
    Next(Value),
    /// By `__getitem__(0)`, `__getitem__(1)`, ... of this instance, CPython's older
    /// protocol for a class without `__iter__`: the instance and the next index.
    Items(Value, i64),
}

/// The iteration of an instance: what its `__iter__` returns, which must be an instance
/// defining `__next__` (CPython's TypeErrors otherwise); without `__iter__`, its
/// `__getitem__` with the indices 0, 1, ...; without either, `TypeError: 'C' object is not
/// iterable`.
pub fn iter_of(inst: &Value) -> Result<InstIter, OpError> {
    match call(inst, "__iter__", &[]) {
        Some(it) => check_iterator(it?).map(InstIter::Next),
        None if defines(inst, "__getitem__") => Ok(InstIter::Items(inst.clone(), 0)),
        None => Err((
            crate::diag::ErrorKind::TypeError,
            format!("'{}' object is not iterable", inst.type_name()),
        )),
    }
}

/// `it` when it is an instance (whose `__next__` [`next_of`] calls), else the TypeError of
/// `iter()`.
fn check_iterator(it: Value) -> Result<Value, OpError> {
    if matches!(it, Value::Instance(_)) {
        return Ok(it);
    }
    Err((
        crate::diag::ErrorKind::TypeError,
        format!("iter() returned non-iterator of type '{}'", it.type_name()),
    ))
}

/// The next item of the iteration `it` (from [`iter_of`]); `None` at its end: when
/// `__next__` raised `StopIteration`, or `__getitem__` raised `IndexError` or
/// `StopIteration` (then forgotten). Any other error propagates.
pub fn next_of(it: &mut InstIter) -> Result<Option<Value>, OpError> {
    let (r, ends) = match it {
        InstIter::Next(it) => (
            call(it, "__next__", &[]),
            &[crate::exceptions::STOP_ITERATION][..],
        ),
        InstIter::Items(inst, i) => {
            let r = call(inst, "__getitem__", &[Value::Int(*i)]);
            *i += 1;
            (
                r,
                &[
                    crate::exceptions::INDEX_ERROR,
                    crate::exceptions::STOP_ITERATION,
                ][..],
            )
        }
    };
    match r {
        Some(Ok(v)) => Ok(Some(v)),
        Some(Err(e)) => {
            if ends.iter().any(|&c| take_error(c)) {
                Ok(None)
            } else {
                Err(e)
            }
        }
        None => Err((
            crate::diag::ErrorKind::TypeError,
            match it {
                InstIter::Next(v) => {
                    format!("iter() returned non-iterator of type '{}'", v.type_name())
                }
                InstIter::Items(v, _) => format!("'{}' object is not iterable", v.type_name()),
            },
        )),
    }
}

/// The items an instance's iteration gives (for the builtins that consume an iterable);
/// `None` when `v` is no instance.
pub fn iterate(v: &Value) -> Option<Result<Vec<Value>, OpError>> {
    if !matches!(v, Value::Instance(_)) {
        return None;
    }
    Some((|| {
        let mut it = iter_of(v)?;
        let mut out = Vec::new();
        while let Some(x) = next_of(&mut it)? {
            out.push(x);
        }
        Ok(out)
    })())
}

/// The items of unpacking the instance `v` into `n` targets: at most `n + 1` are taken (an
/// endless iteration is then "too many values"); `None` when `v` is no instance.
pub fn unpack(v: &Value, n: usize) -> Option<Result<Vec<Value>, OpError>> {
    if !matches!(v, Value::Instance(_)) {
        return None;
    }
    Some((|| {
        let mut it = iter_of(v)?;
        let mut out = Vec::new();
        while out.len() <= n {
            let Some(x) = next_of(&mut it)? else { break };
            out.push(x);
        }
        Ok(out)
    })())
}

/// The in-place method of `a OP= b` (`__iadd__`, ...).
pub fn inplace_name(op: crate::ast::BinOp) -> &'static str {
    use crate::ast::BinOp::*;
    match op {
        Add => "__iadd__",
        Sub => "__isub__",
        Mul => "__imul__",
        Div => "__itruediv__",
        FloorDiv => "__ifloordiv__",
        Mod => "__imod__",
        Pow => "__ipow__",
        Shl => "__ilshift__",
        Shr => "__irshift__",
        BitAnd => "__iand__",
        BitOr => "__ior__",
        BitXor => "__ixor__",
    }
}

/// Every in-place special method name (the runner watches for them in programs).
pub const INPLACE_NAMES: [&str; 12] = [
    "__iadd__",
    "__isub__",
    "__imul__",
    "__itruediv__",
    "__ifloordiv__",
    "__imod__",
    "__ipow__",
    "__ilshift__",
    "__irshift__",
    "__iand__",
    "__ior__",
    "__ixor__",
];

/// `a OP= b` of an instance `a` by its in-place method (`__iadd__`, ...), whose result is
/// the new value of the target; else `a OP b` ([`binary`]). `None` when `a` is no instance
/// defining the in-place method (or it returned `NotImplemented`).
pub fn inplace(op: crate::ast::BinOp, a: &Value, b: &Value) -> Option<Result<Value, OpError>> {
    if !matches!(a, Value::Instance(_)) {
        return None;
    }
    decided(call(a, inplace_name(op), std::slice::from_ref(b)))
}
