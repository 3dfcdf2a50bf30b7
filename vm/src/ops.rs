//! Operations on values of any type: numbers straight from their words, and the rare and
//! intricate cases through the reference interpreter's values (`convert.rs`), so that they
//! keep its exact semantics; equality, ordering, membership.

use crate::convert::Memo;
use crate::{Root, Runtime, Unwind, R};
use stmjit_lang::ast::CmpOp;
use stmjit_lang::ops;
use stmjit_lang::value::{equal, not_equal, order, OpError, Value};
use stmjit_runtime::value::{self, is_int, Word, NONE};

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
        } else if self.is(w, self.types.bigint) {
            Some(Value::BigInt(std::sync::Arc::new(self.bigint_of(w))))
        } else {
            None
        }
    }
    /// An arithmetic operation on numbers, straight from their words: the common slow path
    /// of the JIT's inline int and float arithmetic (floats divided, int overflow, powers,
    /// bools). `None` when an operand is not a number.
    pub(crate) fn number_op(
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
        let memo = if deep { Memo::deep() } else { Memo::shallow() };
        let (vals, result, mut memo) = self.run_special(args, memo, f);
        if mutates {
            self.write_back(first, &vals[0], &mut memo)?;
        }
        let result = result?;
        let w = self.from_value(&result, &mut memo)?;
        self.release(m);
        Ok(w)
    }
    /// Stores the contents of a converted list or dict back into its heap object.
    fn write_back(&mut self, w: Root, v: &Value, memo: &mut Memo) -> R<()> {
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
                    self.dict_del_stored(self.get(w), k)?;
                }
                for (k, x) in &items {
                    let kw = self.from_value(k, memo)?;
                    let rk = self.root(kw);
                    let xw = self.from_value(x, memo)?;
                    self.dict_set_stored(self.get(w), self.get(rk), xw)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }
    /// `a is b` for two items of a list: the same word, or floats of the same bits (one
    /// value, as `is` says: the interpreter's rule). Membership tests it before equality,
    /// as Python does (`n in [n]` for a NaN `n`).
    pub(crate) fn same(&self, a: Word, b: Word) -> bool {
        let f = self.types.float;
        a == b
            || self.is(a, f)
                && self.is(b, f)
                && self.float_of(a).to_bits() == self.float_of(b).to_bits()
    }
    /// `a == b`.
    pub fn eq(&mut self, a: Word, b: Word) -> R<bool> {
        if is_int(a) && is_int(b) {
            return Ok(a == b);
        }
        let s = self.types.str;
        if self.is(a, s) && self.is(b, s) {
            return Ok(a == b || self.str_of(a) == self.str_of(b));
        }
        self.with_special(&[a, b], |v| equal(&v[0], &v[1]))
    }
    /// `a != b`.
    pub fn ne(&mut self, a: Word, b: Word) -> R<bool> {
        if is_int(a) && is_int(b) {
            return Ok(a != b);
        }
        let s = self.types.str;
        if self.is(a, s) && self.is(b, s) {
            return Ok(a != b && self.str_of(a) != self.str_of(b));
        }
        self.with_special(&[a, b], |v| not_equal(&v[0], &v[1]))
    }
    /// `a op b` for `<`, `<=`, `>`, `>=`.
    pub fn order(&mut self, op: CmpOp, a: Word, b: Word) -> R<bool> {
        self.with_special(&[a, b], |v| order(&v[0], &v[1], op))
    }
    /// `item in container`.
    pub fn contains(&mut self, container: Word, item: Word) -> R<bool> {
        let t = self.types;
        if self.is(container, t.dict) || self.is_set(container) {
            return Ok(self.dict_lookup(container, item)?.is_some());
        }
        if self.is(container, t.list) {
            return Ok(self.list_find(container, item)?.is_some());
        }
        if self.is(container, t.tuple) {
            // Identity first, as for lists; the tuple and the item are rooted (an
            // `__eq__` may move them).
            let m = self.mark();
            let (rt, ri) = (self.root(container), self.root(item));
            let mut found = Ok(false);
            for i in 0..self.tuple_len(container) {
                let (x, v) = (self.tuple_get(self.get(rt), i), self.get(ri));
                found = if self.same(x, v) {
                    Ok(true)
                } else {
                    self.eq(x, v)
                };
                if !matches!(found, Ok(false)) {
                    break;
                }
            }
            self.release(m);
            return found;
        }
        if self.info.special_methods && self.is(container, t.instance) {
            // Shallow, keeping identity: `__contains__` gets the very item.
            let r = self.via_values(&[container, item], false, false, |v| {
                ops::contains(&v[0], &v[1]).map(Value::Bool)
            })?;
            return Ok(r == value::TRUE);
        }
        self.with_special(&[container, item], |v| ops::contains(&v[0], &v[1]))
    }
}
