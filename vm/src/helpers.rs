//! `extern "C"` helpers for operations JIT code does not inline: generic arithmetic,
//! comparisons, containers, attributes, iteration, printing and error raising.
//!
//! Every helper takes the thread's [`Ctx`] first and returns a word, or [`ERR`] after
//! recording the error in the runtime.

use super::convert::Memo;
use super::site_cache::SiteCache;
use super::{exc, Ctx, Runtime, Unwind, R, UNBOUND};
use crate::abi::{BINOPS, CMPOPS, UNOPS};
use crate::objects::*;
use std::mem::offset_of;
use stmjit_lang::ast::{BinOp, CmpOp};
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::ops;
use stmjit_lang::value::{equal, identical, order, OpError, Value};
use stmjit_runtime::value::{self, is_int, Word, NONE};

/// Runs `f` on the context's runtime; an error is recorded and becomes [`ERR`].
#[inline]
pub(crate) fn with_rt(ctx: *mut Ctx, f: impl FnOnce(&mut Runtime) -> R<Word>) -> Word {
    // SAFETY: JIT code passes the live context of its thread; its runtime outlives the run
    // and no other reference to it is active during a helper call.
    let rt = unsafe { &mut *(*ctx).rt };
    let r = f(rt);
    if rt.root_overflow.replace(false) {
        return rt.raise(
            ErrorKind::MemoryError,
            "too many objects held by one operation",
        );
    }
    match r {
        Ok(w) => w,
        Err(e) => rt.unwind(e),
    }
}

impl Runtime {
    /// The value of a number word (int, bool or float), converted without the general
    /// machinery of [`Runtime::via_values`] (no roots, no memo, no allocation).
    fn number_of(&self, w: Word) -> Option<Value> {
        if is_int(w) {
            Some(Value::Int(value::to_int(w)))
        } else if w == value::TRUE || w == value::FALSE {
            Some(Value::Bool(w == value::TRUE))
        } else if self.is(w, self.types.float) {
            Some(Value::Float(self.float_of(w)))
        } else {
            None
        }
    }

    /// An arithmetic operation on numbers, straight from their words: the common slow path
    /// of the JIT's inline int and float arithmetic (floats divided, int overflow, powers,
    /// bools). `None` when an operand is not a number.
    fn number_op(
        &mut self,
        args: &[Word],
        f: impl FnOnce(&[Value]) -> Result<Value, OpError>,
    ) -> Option<R<Word>> {
        let mut vals = [Value::None, Value::None];
        for (slot, &w) in vals.iter_mut().zip(args) {
            *slot = self.number_of(w)?;
        }
        // A number result converts back without touching the memo.
        Some(
            f(&vals[..args.len()])
                .map_err(Unwind::from)
                .and_then(|r| self.from_value(&r, &mut Memo::peek())),
        )
    }

    /// Runs a value-level operation of the interpreter: converts `args` (the first one may
    /// be written back when `mutates`), applies `f`, converts the result back.
    pub fn via_values(
        &mut self,
        args: &[Word],
        deep: bool,
        mutates: bool,
        f: impl FnOnce(&[Value]) -> Result<Value, OpError>,
    ) -> R<Word> {
        // Every word held across allocations is rooted (the args here, the memo's
        // containers in `to_value`), until the end of the operation.
        let m = self.mark();
        let first = self.root(args.first().copied().unwrap_or(NONE));
        let mut memo = if deep { Memo::deep() } else { Memo::shallow() };
        let vals: Vec<Value> = args.iter().map(|&w| self.to_value(w, &mut memo)).collect();
        let result = f(&vals);
        if mutates {
            self.write_back(first, &vals[0], &mut memo)?;
        }
        let result = result?;
        let w = self.from_value(&result, &mut memo)?;
        self.release(m);
        Ok(w)
    }

    /// Stores the contents of a converted list or dict back into its heap object.
    fn write_back(&mut self, w: super::Root, v: &Value, memo: &mut Memo) -> R<()> {
        match v {
            Value::List(l) => {
                let items = l.snapshot();
                let mut held = Vec::with_capacity(items.len());
                for x in &items {
                    let x = self.from_value(x, memo)?;
                    held.push(self.hold(x));
                }
                let words: Vec<Word> = held.iter().map(|&h| self.held(h)).collect();
                self.list_replace(self.get(w), &words)
            }
            Value::Dict(d) => {
                let items = d.map.lock().unwrap().items();
                for (k, _) in self.dict_items(self.get(w)) {
                    self.dict_del(self.get(w), k)?;
                }
                for (k, x) in &items {
                    let kw = self.from_value(k, memo)?;
                    let rk = self.root(kw);
                    let xw = self.from_value(x, memo)?;
                    self.dict_set(self.get(w), self.get(rk), xw)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// `a == b`.
    pub fn eq(&self, a: Word, b: Word) -> R<bool> {
        if is_int(a) && is_int(b) {
            return Ok(a == b);
        }
        let s = self.types.str;
        if self.is(a, s) && self.is(b, s) {
            return Ok(a == b || self.str_of(a) == self.str_of(b));
        }
        let mut memo = Memo::reading();
        let (x, y) = (self.to_value(a, &mut memo), self.to_value(b, &mut memo));
        Ok(equal(&x, &y)?)
    }

    /// `a op b` for `<`, `<=`, `>`, `>=`.
    pub fn order(&self, op: CmpOp, a: Word, b: Word) -> R<bool> {
        let mut memo = Memo::reading();
        let (x, y) = (self.to_value(a, &mut memo), self.to_value(b, &mut memo));
        Ok(order(&x, &y, op)?)
    }

    /// `item in container`.
    pub fn contains(&mut self, container: Word, item: Word) -> R<bool> {
        let t = self.types;
        if self.is(container, t.dict) {
            return Ok(self.dict_get(container, item)?.is_some());
        }
        if self.is(container, t.list) {
            let n = self.list_len(container);
            for i in 0..n {
                let x = self.list_get(container, i);
                if x == item && !self.is(x, t.float) || self.eq(x, item)? {
                    return Ok(true);
                }
            }
            return Ok(false);
        }
        let mut memo = Memo::reading();
        let (c, x) = (
            self.to_value(container, &mut memo),
            self.to_value(item, &mut memo),
        );
        Ok(ops::contains(&c, &x)?)
    }

    /// What this thread's copy of the class table knows of attribute `name` of class `id`,
    /// in one look: its slot in the instances' shape, and the cached class lookup (`None`:
    /// not cached, or this transaction bypasses the caches; `Some(UNBOUND)`: not found).
    pub fn class_view(&self, id: usize, name: u32) -> (Option<usize>, Option<Word>) {
        // A transaction that assigned a class attribute: the caches may predate it.
        let bypass = self.tx.class_changed;
        self.class_copy.with(&self.info.classes, |c| {
            let class = &c[id];
            let slot = class.shape.iter().position(|&n| n == name);
            let cached = class
                .methods
                .iter()
                .find(|(n, _)| *n == name && !bypass)
                .map(|&(_, w)| w);
            (slot, cached)
        })
    }

    /// The value of a name looked up in a class and its bases (the attrs dicts).
    pub fn class_lookup(&mut self, cls: Word, name: u32) -> R<Option<Word>> {
        self.rb(cls);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        let (_, cached) = self.class_view(id, name);
        self.class_lookup_from(cls, id, name, cached)
    }

    /// [`Runtime::class_lookup`] of class `cls` (id `id`) once its cache entry was read
    /// ([`Runtime::class_view`]).
    pub(crate) fn class_lookup_from(
        &mut self,
        cls: Word,
        id: usize,
        name: u32,
        cached: Option<Word>,
    ) -> R<Option<Word>> {
        if let Some(w) = cached {
            return Ok((w != UNBOUND).then_some(w));
        }
        if self.tx.class_changed {
            // Nothing it finds is cached: it may be this transaction's own assignment.
            return self.class_lookup_uncached(cls, name);
        }
        let epoch = self.info.classes.epoch();
        let found = self.class_lookup_uncached(cls, name)?;
        // Function objects are old constants (they never move), and ints, None and bools
        // are no references: safe to cache (other objects may move, or be dropped with an
        // aborted transaction).
        let entry = match found {
            Some(f) if self.is(f, self.types.function) || !value::is_ref(f) => Some(f),
            None => Some(UNBOUND),
            _ => None,
        };
        if let Some(w) = entry {
            self.info.classes.cache_method(id, name, w, epoch);
        }
        Ok(found)
    }

    fn class_lookup_uncached(&self, mut cls: Word, name: u32) -> R<Option<Word>> {
        let key = self.info.names.str_obj(name);
        loop {
            self.rb(cls);
            let attrs = self.ld(cls, offset_of!(ClassObj, attrs) as u64);
            if let Some(v) = self.dict_get(attrs, key)? {
                return Ok(Some(v));
            }
            cls = self.ld(cls, offset_of!(ClassObj, base) as u64);
            if cls == NONE {
                return Ok(None);
            }
        }
    }

    /// `o.name`.
    pub fn getattr(&mut self, o: Word, name: u32) -> R<Word> {
        let t = self.types;
        if self.is(o, t.instance) {
            return self.getattr_instance(o, name).map(|(v, _)| v);
        }
        if self.is(o, t.class) {
            return self.class_lookup(o, name)?.ok_or_else(|| {
                exc(
                    ErrorKind::AttributeError,
                    format!(
                        "type object '{}' has no attribute '{}'",
                        self.class_name(o),
                        self.info.names.text(name)
                    ),
                )
            });
        }
        if super::methods::has_method(self, o, &self.info.names.text(name)) {
            return self.new_builtin(name as u64, o, true);
        }
        Err(exc(
            ErrorKind::AttributeError,
            format!(
                "'{}' object has no attribute '{}'",
                self.type_name(o),
                self.info.names.text(name)
            ),
        ))
    }

    /// `o.name` for an instance `o`, and where its class's shape has `name`: `(class id,
    /// slot)` (for the cache of an attribute site).
    pub(crate) fn getattr_instance(
        &mut self,
        o: Word,
        name: u32,
    ) -> R<(Word, Option<(u64, usize)>)> {
        self.rb(o);
        let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        let (slot, cached) = self.class_view(id, name);
        let at = slot.map(|s| (id as u64, s));
        if let Some(s) = slot {
            let v = self.inst_slot(o, s);
            if v != UNBOUND {
                return Ok((v, at));
            }
        }
        self.rb(cls);
        let v = match self.class_lookup_from(cls, id, name, cached)? {
            Some(f) if self.is(f, self.types.function) => {
                let fid = self.ld(f, offset_of!(FunctionObj, func_id) as u64) as usize;
                self.new_bound_method(fid, o)?
            }
            Some(v) => v,
            None => {
                return Err(exc(
                    ErrorKind::AttributeError,
                    format!(
                        "'{}' object has no attribute '{}'",
                        self.info.classes.read()[id].name,
                        self.info.names.text(name)
                    ),
                ))
            }
        };
        Ok((v, at))
    }

    /// Whether instance or class `o` has attribute `name` (what `o.name` would find,
    /// without making the bound method).
    pub fn has_attr(&mut self, o: Word, name: u32) -> R<bool> {
        if !self.is(o, self.types.instance) {
            return Ok(self.class_lookup(o, name)?.is_some());
        }
        self.rb(o);
        let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        if self
            .shape_slot(id, name)
            .is_some_and(|s| self.inst_slot(o, s) != UNBOUND)
        {
            return Ok(true);
        }
        Ok(self.class_lookup(cls, name)?.is_some())
    }

    /// `o.name = v`.
    pub fn setattr(&mut self, o: Word, name: u32, v: Word) -> R<()> {
        let t = self.types;
        if self.is(o, t.instance) {
            self.rb(o);
            let cls = self.ld(o, offset_of!(InstanceObj, class) as u64);
            let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
            let slot = match self.shape_slot(id, name) {
                Some(s) => s,
                None => {
                    // Another thread may have added it meanwhile: look again under the lock.
                    let mut classes = self.info.classes.write();
                    let shape = &mut classes[id].shape;
                    match shape.iter().position(|&n| n == name) {
                        Some(s) => s,
                        None => {
                            shape.push(name);
                            let s = shape.len() - 1;
                            drop(classes);
                            self.info.classes.shape_grew();
                            s
                        }
                    }
                }
            };
            return self.set_inst_slot(o, slot, v);
        }
        if self.is(o, t.class) {
            // Method caches are rebuilt from the classes' dicts (read with barriers); forgotten
            // again when this transaction commits (`Runtime::commit`).
            if std::mem::replace(&mut self.tx.class_changed, true) {
                self.info.classes.forget_methods();
            } else {
                self.info.classes.begin_change();
            }
            self.rb(o);
            let attrs = self.ld(o, offset_of!(ClassObj, attrs) as u64);
            let key = self.info.names.str_obj(name);
            return self.dict_set(attrs, key, v);
        }
        Err(exc(
            ErrorKind::AttributeError,
            format!(
                "'{}' object has no attribute '{}'",
                self.type_name(o),
                self.info.names.text(name)
            ),
        ))
    }

    /// A list index (negative from the end), or IndexError with `what`.
    fn list_index(&self, l: Word, i: Word, what: &str) -> R<Option<u64>> {
        let i = if is_int(i) {
            value::to_int(i)
        } else if i == value::TRUE || i == value::FALSE {
            (i == value::TRUE) as i64
        } else {
            return Ok(None);
        };
        let n = self.list_len(l) as i64;
        let j = if i < 0 { i + n } else { i };
        if !(0..n).contains(&j) {
            return Err(exc(ErrorKind::IndexError, what.to_string()));
        }
        Ok(Some(j as u64))
    }

    /// `o[i]`.
    pub fn getitem(&mut self, o: Word, i: Word) -> R<Word> {
        let t = self.types;
        if self.is(o, t.list) {
            if let Some(j) = self.list_index(o, i, "list index out of range")? {
                return Ok(self.list_get(o, j));
            }
        } else if self.is(o, t.dict) {
            return match self.dict_get(o, i)? {
                Some(v) => Ok(v),
                None => Err(exc(ErrorKind::KeyError, self.repr(i)?)),
            };
        } else if self.is(o, t.str)
            && is_int(i)
            && self.str_nchars(o) == self.str_of(o).len() as u64
        {
            let n = self.str_nchars(o) as i64;
            let k = value::to_int(i);
            let k = if k < 0 { k + n } else { k };
            if !(0..n).contains(&k) {
                return Err(exc(ErrorKind::IndexError, "string index out of range"));
            }
            let s = &self.str_of(o)[k as usize..k as usize + 1];
            let s = s.to_string();
            return self.new_str(&s);
        }
        self.via_values(&[o, i], false, false, |v| ops::get_item(&v[0], &v[1]))
    }

    /// `o[i] = v`.
    pub fn setitem(&mut self, o: Word, i: Word, v: Word) -> R<()> {
        let t = self.types;
        if self.is(o, t.list) {
            if let Some(j) = self.list_index(o, i, "list assignment index out of range")? {
                return self.list_set(o, j, v);
            }
        } else if self.is(o, t.dict) {
            return self.dict_set(o, i, v);
        }
        self.via_values(&[o, i, v], false, true, |a| {
            ops::set_item(&a[0], &a[1], a[2].clone()).map(|_| Value::None)
        })?;
        Ok(())
    }

    /// `del o[i]`.
    pub fn delitem(&mut self, o: Word, i: Word) -> R<()> {
        if self.is(o, self.types.list) && is_int(i) {
            let n = self.list_len(o) as i64;
            let k = value::to_int(i);
            if (-n..n).contains(&k) {
                return self.list_pop(o, k).map(|_| ());
            }
        }
        if self.is(o, self.types.dict) {
            return match self.dict_del(o, i)? {
                Some(_) => Ok(()),
                None => Err(exc(ErrorKind::KeyError, self.repr(i)?)),
            };
        }
        self.via_values(&[o, i], false, true, |a| {
            ops::del_item(&a[0], &a[1]).map(|_| Value::None)
        })?;
        Ok(())
    }

    /// The iterator object of a `for` loop over `v`: lists and ranges iterate in place, dicts
    /// over a snapshot of their keys, strs over a list of their characters.
    pub fn iter(&mut self, v: Word) -> R<Word> {
        let t = self.types;
        if self.is(v, t.list) || self.is(v, t.range) {
            return Ok(v);
        }
        if self.is(v, t.dict) {
            return self.dict_keys_list(v);
        }
        self.via_values(&[v], false, false, |a| {
            ops::iterate(&a[0]).map(stmjit_lang::value::ListObj::new_value)
        })
    }

    /// Item `i` of an iterator from [`Runtime::iter`], or [`UNBOUND`] at the end.
    pub fn iter_next(&self, it: Word, i: u64) -> Word {
        if self.is(it, self.types.range) {
            let (a, b, s) = self.range_of(it);
            if (i as i64) < stmjit_lang::value::range_len(a, b, s) {
                return value::from_int(a + i as i64 * s).unwrap_or(UNBOUND);
            }
            return UNBOUND;
        }
        if i < self.list_len(it) {
            self.list_get(it, i)
        } else {
            UNBOUND
        }
    }

    /// Appends program output to the running transaction's (written at its commit).
    pub fn write_out(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }
}

// ----- extern "C" entry points -----

/// `a OP b` for any operands (JIT code inlines int fast paths and calls this otherwise).
///
/// # Safety
/// `ctx` must be the live context of the calling thread (as for all helpers below).
pub unsafe extern "C" fn stmjit_binop(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| {
        let op = BINOPS[op as usize];
        let t = rt.types;
        if op == BinOp::Add && rt.is(a, t.str) && rt.is(b, t.str) {
            let s = format!("{}{}", rt.str_of(a), rt.str_of(b));
            return rt.new_str(&s);
        }
        if op == BinOp::Add && rt.is(a, t.list) && rt.is(b, t.list) {
            let (la, lb) = (rt.list_len(a), rt.list_len(b));
            return rt.list_concat(&[(a, 0, la), (b, 0, lb)], 1);
        }
        if op == BinOp::Mul {
            let (l, n) = if rt.is(a, t.list) { (a, b) } else { (b, a) };
            if rt.is(l, t.list) && (is_int(n) || n == value::TRUE || n == value::FALSE) {
                let len = rt.list_len(l);
                let nv = if is_int(n) {
                    Value::Int(value::to_int(n))
                } else {
                    Value::Bool(n == value::TRUE)
                };
                let count = ops::repeat_count(&nv, len as usize)?;
                return rt.list_concat(&[(l, 0, len)], count as u64);
            }
        }
        if let Some(r) = rt.number_op(&[a, b], |v| ops::binary(op, &v[0], &v[1])) {
            return r;
        }
        rt.via_values(&[a, b], false, false, |v| ops::binary(op, &v[0], &v[1]))
    })
}

/// `a OP= b`: lists are extended (`+=`) or repeated (`*=`) in place, as in Python.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_inplace(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| {
        let bop = BINOPS[op as usize];
        if rt.is(a, rt.types.list)
            && (bop == BinOp::Add
                || bop == BinOp::Mul && (is_int(b) || b == value::TRUE || b == value::FALSE))
        {
            if bop == BinOp::Add && rt.is(b, rt.types.list) {
                let ra = rt.root(a);
                let items: Vec<super::Root> =
                    rt.list_items(b).into_iter().map(|x| rt.root(x)).collect();
                for x in items {
                    rt.list_push(rt.get(ra), rt.get(x))?;
                }
                return Ok(rt.get(ra));
            }
            return rt.via_values(&[a, b], false, true, |v| {
                let Value::List(l) = &v[0] else {
                    unreachable!()
                };
                if bop == BinOp::Add {
                    let more = ops::iterate(&v[1])?;
                    l.items.lock().unwrap().extend(more);
                } else {
                    let items = l.snapshot();
                    let count = ops::repeat_count(&v[1], items.len())?;
                    *l.items.lock().unwrap() = ops::repeat_items(&items, count);
                }
                Ok(v[0].clone())
            });
        }
        // SAFETY: forwarded contract.
        Ok(unsafe { stmjit_binop(ctx, op, a, b) })
    })
}

/// `OP a`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_unary(ctx: *mut Ctx, op: u64, a: Word) -> Word {
    with_rt(ctx, |rt| {
        let op = UNOPS[op as usize];
        if let Some(r) = rt.number_op(&[a], |v| ops::unary(op, &v[0])) {
            return r;
        }
        rt.via_values(&[a], false, false, |v| ops::unary(op, &v[0]))
    })
}

/// `a OP b` for a comparison operator; returns a bool word.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_compare(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| {
        let op = CMPOPS[op as usize];
        let r = match op {
            CmpOp::Eq => rt.eq(a, b)?,
            CmpOp::Ne => !rt.eq(a, b)?,
            CmpOp::In => rt.contains(b, a)?,
            CmpOp::NotIn => !rt.contains(b, a)?,
            CmpOp::Is | CmpOp::IsNot => {
                let same = a == b && !rt.is(a, rt.types.range) || {
                    let mut m = Memo::peek();
                    identical(&rt.to_value(a, &mut m), &rt.to_value(b, &mut m))
                };
                same == (op == CmpOp::Is)
            }
            _ => {
                let s = rt.types.str;
                if rt.is(a, s) && rt.is(b, s) {
                    let (x, y) = (rt.str_of(a), rt.str_of(b));
                    match op {
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        _ => x >= y,
                    }
                } else {
                    rt.order(op, a, b)?
                }
            }
        };
        Ok(value::from_bool(r))
    })
}

/// Truthiness: 0 or 1 (never fails).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_truthy(ctx: *mut Ctx, a: Word) -> u64 {
    // SAFETY: forwarded contract.
    let rt = unsafe { &*(*ctx).rt };
    rt.truthy(a) as u64
}

/// `o[i]`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_getitem(ctx: *mut Ctx, o: Word, i: Word) -> Word {
    with_rt(ctx, |rt| rt.getitem(o, i))
}

/// `o[i] = v`; returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_setitem(ctx: *mut Ctx, o: Word, i: Word, v: Word) -> Word {
    with_rt(ctx, |rt| rt.setitem(o, i, v).map(|_| NONE))
}

/// `del o[i]`; returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_delitem(ctx: *mut Ctx, o: Word, i: Word) -> Word {
    with_rt(ctx, |rt| rt.delitem(o, i).map(|_| NONE))
}

fn bound(w: Word) -> Option<Word> {
    (w != UNBOUND).then_some(w)
}

/// `o[lo:hi]` (missing bounds are [`UNBOUND`]).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_getslice(ctx: *mut Ctx, o: Word, lo: Word, hi: Word) -> Word {
    with_rt(ctx, |rt| {
        // Lists with int (or missing) bounds: copied natively, Python's clamping.
        let int_or_none = |w: Word| w == UNBOUND || is_int(w);
        if rt.is(o, rt.types.list) && int_or_none(lo) && int_or_none(hi) {
            let n = rt.list_len(o) as i64;
            let clamp = |w: Word, default: i64| {
                if w == UNBOUND {
                    return default;
                }
                let i = value::to_int(w);
                let i = if i < 0 { i + n } else { i };
                i.clamp(0, n)
            };
            let (a, b) = (clamp(lo, 0), clamp(hi, n));
            let b = b.max(a);
            return rt.list_concat(&[(o, a as u64, b as u64)], 1);
        }
        let args: Vec<Word> = [Some(o), bound(lo), bound(hi)]
            .into_iter()
            .flatten()
            .collect();
        let (has_lo, has_hi) = (lo != UNBOUND, hi != UNBOUND);
        rt.via_values(&args, false, false, |v| {
            let lo = has_lo.then(|| v[1].clone());
            let hi = has_hi.then(|| v[if has_lo { 2 } else { 1 }].clone());
            ops::get_slice(&v[0], &lo, &hi)
        })
    })
}

/// `o[lo:hi] = v` (`del o[lo:hi]` when `v` is [`UNBOUND`]); returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_setslice(
    ctx: *mut Ctx,
    o: Word,
    lo: Word,
    hi: Word,
    v: Word,
) -> Word {
    with_rt(ctx, |rt| {
        let args: Vec<Word> = [Some(o), bound(lo), bound(hi), bound(v)]
            .into_iter()
            .flatten()
            .collect();
        let (has_lo, has_hi, has_v) = (lo != UNBOUND, hi != UNBOUND, v != UNBOUND);
        rt.via_values(&args, false, true, |a| {
            let mut k = 1;
            let mut next = |present: bool| {
                present.then(|| {
                    k += 1;
                    a[k - 1].clone()
                })
            };
            let lo = next(has_lo);
            let hi = next(has_hi);
            let items = match next(has_v) {
                Some(v) => Some(ops::iterate(&v)?),
                None => None,
            };
            ops::set_slice(&a[0], &lo, &hi, items).map(|_| Value::None)
        })
    })
}

/// Fills an attribute-site cache when `o` is an instance whose class shape has `name`.
fn fill_cache(rt: &mut Runtime, o: Word, name: u32, cache: *const SiteCache) {
    if rt.is(o, rt.types.instance) {
        rt.rb(o);
        let cls = rt.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = rt.ld(cls, offset_of!(ClassObj, class_id) as u64);
        if let Some(slot) = rt.shape_slot(id as usize, name) {
            // SAFETY: JIT code passes the address of its site's live cache (never freed).
            unsafe { (*cache).insert(id, slot as u64) };
        }
    }
}

/// `o.name` from an attribute site with a cache (filled for the site's fast path).
///
/// # Safety
/// As [`stmjit_binop`]; `cache` is the site's cache cell.
pub unsafe extern "C" fn stmjit_getattr_site(
    ctx: *mut Ctx,
    o: Word,
    name: u64,
    cache: *const SiteCache,
) -> Word {
    with_rt(ctx, |rt| {
        if !rt.is(o, rt.types.instance) {
            return rt.getattr(o, name as u32);
        }
        let (v, at) = rt.getattr_instance(o, name as u32)?;
        if let Some((id, slot)) = at {
            // SAFETY: JIT code passes the address of its site's live cache (never freed).
            unsafe { (*cache).insert(id, slot as u64) };
        }
        Ok(v)
    })
}

/// `o.name = v` from an attribute site with a cache; returns None.
///
/// # Safety
/// As [`stmjit_getattr_site`].
pub unsafe extern "C" fn stmjit_setattr_site(
    ctx: *mut Ctx,
    o: Word,
    name: u64,
    v: Word,
    cache: *const SiteCache,
) -> Word {
    with_rt(ctx, |rt| {
        let ro = rt.root(o);
        rt.setattr(o, name as u32, v)?;
        let o = rt.get(ro);
        fill_cache(rt, o, name as u32, cache);
        Ok(NONE)
    })
}

/// A list of the `n` words at `argv`.
///
/// # Safety
/// As [`stmjit_binop`]; `argv` points at `n` readable words.
pub unsafe extern "C" fn stmjit_new_list(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    let items = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
    with_rt(ctx, |rt| rt.new_list(&items))
}

/// A dict of the `n` key/value pairs at `argv` (key, value, key, value...).
///
/// # Safety
/// As [`stmjit_new_list`] with `2n` words.
pub unsafe extern "C" fn stmjit_new_dict(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    with_rt(ctx, |rt| {
        let d = rt.new_dict()?;
        let rd = rt.root(d);
        for i in 0..n as usize {
            // Read after every allocation: argv is JIT frame slots, which the GC updates.
            // SAFETY: caller's contract (2n readable words).
            let (k, v) = unsafe { (*argv.add(2 * i), *argv.add(2 * i + 1)) };
            rt.dict_set(rt.get(rd), k, v)?;
        }
        Ok(rt.get(rd))
    })
}

/// The iterator of a `for` loop over `v`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_iter(ctx: *mut Ctx, v: Word) -> Word {
    with_rt(ctx, |rt| rt.iter(v))
}

/// The next item of an iterator, or [`UNBOUND`] at its end.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_iter_next(ctx: *mut Ctx, it: Word, i: u64) -> Word {
    // SAFETY: caller's contract.
    let rt = unsafe { &*(*ctx).rt };
    rt.iter_next(it, i)
}

/// `print(argv[0..n])`.
///
/// # Safety
/// As [`stmjit_new_list`].
pub unsafe extern "C" fn stmjit_print(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    let items = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
    with_rt(ctx, |rt| {
        let mut line = String::new();
        for (i, &w) in items.iter().enumerate() {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(&rt.to_str(w)?);
        }
        line.push('\n');
        rt.write_out(&line);
        Ok(NONE)
    })
}

/// Raises the NameError of an undefined global or builtin name (`name` = name id).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_name_error(ctx: *mut Ctx, name: u64) -> Word {
    with_rt(ctx, |rt| {
        Err(exc(
            ErrorKind::NameError,
            format!("name '{}' is not defined", rt.info.names.text(name as u32)),
        ))
    })
}

/// Raises the NameError of a local read before assignment.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_unbound_local(ctx: *mut Ctx, name: u64) -> Word {
    with_rt(ctx, |rt| {
        Err(exc(
            ErrorKind::NameError,
            format!(
                "cannot access local variable '{}' where it is not associated with a value",
                rt.info.names.text(name as u32)
            ),
        ))
    })
}

/// Raises the RecursionError of a call nested too deeply.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_recursion_error(ctx: *mut Ctx) -> Word {
    with_rt(ctx, |_| {
        Err(exc(
            ErrorKind::RecursionError,
            "maximum recursion depth exceeded",
        ))
    })
}

/// Reports the abort of a runtime call made inline by JIT code (a barrier slow path or the
/// allocation slow path returned "aborted"): JIT code then unwinds to the restart point.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_aborted(ctx: *mut Ctx) -> Word {
    with_rt(ctx, |_| Err(Unwind::Aborted))
}
