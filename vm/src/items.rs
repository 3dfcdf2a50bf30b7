//! Items and iteration: `o[i]`, `o[i] = v`, `del o[i]` (lists and dicts natively, other
//! types through the interpreter's values), and the iterators of `for` loops.

use crate::objects::{new_opaque, OpaqueObj, OPAQUE_DICT_ITER, OPAQUE_ITEMS_ITER};
use crate::{exc, Runtime, R, UNBOUND};
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::ops;
use stmjit_lang::value::Value;
use stmjit_runtime::value::{self, is_int, Word};

impl Runtime {
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
        } else if self.is(o, t.tuple) && (is_int(i) || i == value::TRUE || i == value::FALSE) {
            let k = if is_int(i) {
                value::to_int(i)
            } else {
                (i == value::TRUE) as i64
            };
            let n = self.tuple_len(o) as i64;
            let k = if k < 0 { k + n } else { k };
            if !(0..n).contains(&k) {
                return Err(exc(ErrorKind::IndexError, "tuple index out of range"));
            }
            return Ok(self.tuple_get(o, k as u64));
        } else if self.is(o, t.dict) && !self.needs_prepare(i) {
            return match self.dict_get(o, i)? {
                Some(v) => Ok(v),
                None => Err(exc(ErrorKind::KeyError, self.repr(i)?)),
            };
        } else if self.is(o, t.dict) {
            // An instance key's methods may run and move `i`.
            let m = self.mark();
            let ri = self.root(i);
            let r = self.dict_lookup(o, i);
            let i = self.get(ri);
            self.release(m);
            return match r? {
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
        if self.is(i, t.slice) {
            if let Some(r) = self.slice_seq(o, i) {
                return r;
            }
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
            let m = self.mark();
            let ri = self.root(i);
            let r = self.dict_del(o, i);
            let i = self.get(ri);
            self.release(m);
            return match r? {
                Some(_) => Ok(()),
                None => Err(exc(ErrorKind::KeyError, self.repr(i)?)),
            };
        }
        self.via_values(&[o, i], false, true, |a| {
            ops::del_item(&a[0], &a[1]).map(|_| Value::None)
        })?;
        Ok(())
    }
    /// The iterator object of a `for` loop over `v`: lists, tuples and ranges (big ones
    /// too, lazily) iterate in place, dicts and sets over a snapshot of their keys, strs
    /// over a list of their characters.
    pub fn iter(&mut self, v: Word) -> R<Word> {
        let t = self.types;
        if self.is(v, t.list) || self.is(v, t.range) || self.is(v, t.tuple) || self.is_big_range(v)
        {
            return Ok(v);
        }
        if self.is(v, t.dict) || self.is_set(v) {
            let m = self.mark();
            let rd = self.root(v);
            let keys = self.dict_keys_list(v)?;
            // new_opaque roots the keys across its allocation; the dict is rooted here.
            let it = new_opaque(self, OPAQUE_DICT_ITER, keys)?;
            self.st(it, offset_of!(OpaqueObj, b) as u64, self.get(rd));
            self.release(m);
            return Ok(it);
        }
        if self.info.special_methods && self.is(v, t.instance) {
            if let Some(it) = self.user_iter(v)? {
                return Ok(it);
            }
        }
        self.via_values(&[v], false, false, |a| {
            ops::iterate(&a[0]).map(stmjit_lang::value::ListObj::new_value)
        })
    }
    /// [`Runtime::iter_next`], and the next item of an instance's iterator by its
    /// `__next__`, or of an old-protocol iterator by `__getitem__`, or a big range's item
    /// beyond the tagged ints (which may move objects: JIT code calls it in programs naming
    /// `__next__` or `__getitem__`, and after [`Runtime::iter_next`] gave `MOVING`).
    pub fn iter_next_special(&mut self, it: Word, i: u64) -> R<Word> {
        if self.is(it, self.types.instance) {
            return self.user_next(it);
        }
        if self.is(it, self.types.opaque)
            && self.ld(it, offset_of!(OpaqueObj, kind) as u64) == OPAQUE_ITEMS_ITER
        {
            return self.items_next(it, i);
        }
        if self.is_big_range(it) {
            return self.big_range_item(it, i);
        }
        self.iter_next(it, i)
    }
    /// Item `i` of an iterator from [`Runtime::iter`], or [`UNBOUND`] at the end; a
    /// RuntimeError when the dict being iterated changed size. Never allocates: a big
    /// range's item beyond the tagged ints is [`crate::MOVING`] (see
    /// [`Runtime::iter_next_special`]).
    pub fn iter_next(&self, it: Word, i: u64) -> R<Word> {
        if self.is_big_range(it) {
            return Ok(self.big_range_next(it, i));
        }
        if self.is(it, self.types.range) {
            let (a, b, s) = self.range_of(it);
            if (i as i64) < stmjit_lang::value::range_len(a, b, s) {
                return Ok(value::from_int(a + i as i64 * s).unwrap_or(UNBOUND));
            }
            return Ok(UNBOUND);
        }
        if self.is(it, self.types.tuple) {
            return Ok(if i < self.tuple_len(it) {
                self.tuple_get(it, i)
            } else {
                UNBOUND
            });
        }
        let it = if self.is(it, self.types.opaque) {
            let keys = self.ld(it, offset_of!(OpaqueObj, a) as u64);
            let d = self.ld(it, offset_of!(OpaqueObj, b) as u64);
            if self.dict_len(d) != self.list_len(keys) {
                let what = if self.is(d, self.types.set) {
                    "Set"
                } else {
                    "dictionary"
                };
                return Err(exc(
                    ErrorKind::RuntimeError,
                    format!("{what} changed size during iteration"),
                ));
            }
            keys
        } else {
            it
        };
        Ok(if i < self.list_len(it) {
            self.list_get(it, i)
        } else {
            UNBOUND
        })
    }
}

impl Runtime {
    /// `t1, ..., tn = v`: `v` itself when it is a list or tuple of `n` items, else a tuple
    /// of the `n` items of the iterable `v` (through the interpreter's values); CPython's
    /// errors otherwise.
    pub fn unpack_seq(&mut self, v: Word, n: u64) -> R<Word> {
        let t = self.types;
        let seq = if self.is(v, t.tuple) || self.is(v, t.list) {
            v
        } else {
            self.via_values(&[v], false, false, |a| {
                stmjit_lang::builtins_seq::unpack(&a[0], n as usize)
                    .map(stmjit_lang::value::TupleObj::new_value)
            })?
        };
        let len = self.seq_len(seq);
        stmjit_lang::builtins_seq::check_unpack_len(len as usize, n as usize)?;
        Ok(seq)
    }
    /// Length of a list or tuple.
    pub fn seq_len(&self, seq: Word) -> u64 {
        if self.is(seq, self.types.tuple) {
            self.tuple_len(seq)
        } else {
            self.list_len(seq)
        }
    }
    /// Item `i < len` of a list or tuple.
    pub fn seq_get(&self, seq: Word, i: u64) -> Word {
        if self.is(seq, self.types.tuple) {
            self.tuple_get(seq, i)
        } else {
            self.list_get(seq, i)
        }
    }
}
