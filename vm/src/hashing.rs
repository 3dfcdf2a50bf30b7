//! Instances as dict keys and set members (`__hash__`, `__eq__`), and `hash()`/`id()` of
//! instances.
//!
//! A dict's probe ([`Runtime::key_of`], `objects/dict.rs`) must not run user code: it reads
//! the table with plain loads, and a call may allocate, move objects, change the dict or end
//! the transaction. So an operation that takes a key first *prepares* it
//! ([`Runtime::prepare_key`]): every instance in it gets its hash stored in the instance
//! itself ([`InstanceObj::hash`]), computed by its `__hash__` or, for a class hashed by
//! identity, a number given once and never changed (objects move, so the address cannot
//! be the hash). The probe then reads stored hashes only, as CPython's tables keep their
//! keys' hashes. Then, for an instance whose class defines `__hash__` (or a tuple holding
//! one), the key is made *canonical* ([`Runtime::canonical_key`]): the keys of equal hash
//! of that sort that the table holds along the probe sequence are compared with it by `==`
//! (their `__eq__` first, as CPython does, in probe order, stopping at the first equal one
//! or at itself), and the key becomes the equal one found. The probe itself compares such
//! instances by identity. What the
//! user's methods did meanwhile (changing the dict, allocating, raising) cannot confuse the
//! probe that follows: it starts afresh from the dict's state at that point.

use crate::convert::Memo;
use crate::objects::InstanceObj;
use crate::{exc, Runtime, R};
use std::mem::offset_of;
use std::sync::atomic::{AtomicI64, Ordering};
use stmjit_lang::diag::ErrorKind;
pub use stmjit_lang::value::HashKind;
use stmjit_lang::value::Value;
use stmjit_runtime::value::{self, is_int, Word, FALSE, NONE, TRUE};

/// Offset of an instance's stored hash: 0 before it was first hashed, else the hash plus 1
/// (a hash is never −1), as raw bits: the GC does not trace the field.
pub(crate) const INST_HASH: u64 = offset_of!(InstanceObj, hash) as u64;

/// The next identity number (program-wide; first hashes of instances take one, and each
/// function object one when made, through [`Runtime::new_ident`]).
static NEXT_ID: AtomicI64 = AtomicI64::new(1);

/// How many identity numbers a thread takes from [`NEXT_ID`] at once.
const IDENT_BLOCK: i64 = 256;

impl Runtime {
    /// A new identity number, never given before in this process: from this thread's
    /// block, taking a new block when it is used up.
    pub(crate) fn new_ident(&self) -> i64 {
        let (mut next, mut end) = self.idents.get();
        if next == end {
            next = NEXT_ID.fetch_add(IDENT_BLOCK, Ordering::Relaxed);
            end = next + IDENT_BLOCK;
        }
        self.idents.set((next + 1, end));
        next
    }

    /// The hash of a value hashed by what it is, without user code or a stored word of an
    /// instance: a function (its identity number), a class (its class id) or a builtin
    /// function or type (which one); `None` for other values. Bound methods and builtin
    /// methods are not hashable here (LANGUAGE.md).
    pub(crate) fn identity_hash(&self, w: Word) -> Option<i64> {
        if !value::is_ref(w) {
            return None;
        }
        use crate::objects::{BuiltinObj, ClassObj, FunctionObj};
        let t = self.types;
        if self.is(w, t.function) {
            self.rb(w);
            Some(self.ld(w, offset_of!(FunctionObj, hash) as u64) as i64)
        } else if self.is(w, t.class) {
            self.rb(w);
            let id = self.ld(w, offset_of!(ClassObj, class_id) as u64) as i64;
            Some(id.wrapping_mul(0x9e37_79b9).wrapping_add(0x5bd1) & ((1 << 60) - 1))
        } else if self.is(w, t.builtin) {
            self.rb(w);
            if self.ld(w, offset_of!(BuiltinObj, is_method) as u64) != 0 {
                return None;
            }
            let which = self.ld(w, offset_of!(BuiltinObj, which) as u64) as i64;
            Some(which.wrapping_mul(0x7f4a_7c15).wrapping_add(0x3c6e) & ((1 << 60) - 1))
        } else {
            None
        }
    }

    /// How instances of class `cls` hash (CPython's rules, see [`HashKind`]), cached per
    /// thread by class id with the class table's epoch read before the lookup: an
    /// assignment of a class attribute (`C.__hash__ = f`, `setattr(C, "__eq__", g)`) moves
    /// the epoch when it runs and when its transaction ends (`class_table`), so no answer
    /// from before it is used after.
    pub fn class_hash_kind(&self, cls: Word) -> R<HashKind> {
        self.rb(cls);
        let id = self.ld(cls, offset_of!(crate::objects::ClassObj, class_id) as u64) as usize;
        let epoch = self.info.classes.epoch();
        if let Some(&Some((e, k))) = self.hash_kinds.borrow().get(id) {
            if e == epoch {
                return Ok(k);
            }
        }
        let names = &self.info.names;
        let hk = names.id("__hash__").map(|id| names.str_obj(id));
        let mut c = cls;
        let kind = loop {
            self.rb(c);
            let attrs = self.ld(c, offset_of!(crate::objects::ClassObj, attrs) as u64);
            if let Some(h) = hk.filter(|&k| k != crate::UNBOUND) {
                if let Some(f) = self.dict_get(attrs, h)? {
                    break if f == NONE {
                        HashKind::Unhashable
                    } else {
                        HashKind::Custom
                    };
                }
            }
            c = self.ld(c, offset_of!(crate::objects::ClassObj, base) as u64);
            if c == NONE {
                break HashKind::Identity;
            }
        };
        let mut kinds = self.hash_kinds.borrow_mut();
        if kinds.len() <= id {
            kinds.resize(id + 1, None);
        }
        kinds[id] = Some((epoch, kind));
        Ok(kind)
    }

    /// How instance `o` hashes.
    pub fn hash_kind(&self, o: Word) -> R<HashKind> {
        self.rb(o);
        self.class_hash_kind(self.ld(o, offset_of!(InstanceObj, class) as u64))
    }

    /// The hash stored in instance `o` by [`Runtime::prepare_key`], if any.
    pub fn stored_hash(&self, o: Word) -> Option<i64> {
        self.rb(o);
        let h = self.ld(o, INST_HASH);
        (h != 0).then(|| h.wrapping_sub(1) as i64)
    }

    /// Stores `h` as instance `o`'s hash (no write when it holds it already: a lookup of an
    /// old shared key does not make its transaction a writer of it).
    fn store_hash(&mut self, o: Word, h: i64) -> R<()> {
        let w = (h as u64).wrapping_add(1);
        self.rb(o);
        if self.ld(o, INST_HASH) != w {
            self.wb(o)?;
            self.st(o, INST_HASH, w);
        }
        Ok(())
    }

    /// Prepares key `k` for a table operation (see the module docs): each instance in it
    /// (itself, or items of a tuple, at any depth) gets its hash stored: a `TypeError` for
    /// an unhashable one (`unhashable type: 'C'`), or what its `__hash__` raised or returned
    /// wrongly (`__hash__ method should return an integer`). May run user code: `k` may
    /// move (the caller roots what it needs).
    pub fn prepare_key(&mut self, k: Word) -> R<()> {
        if !value::is_ref(k) {
            return Ok(());
        }
        let t = self.types;
        if self.is(k, t.instance) {
            self.instance_hash(k).map(|_| ())
        } else if self.is_identity_object(k) {
            // Keyed by its identity: its address, once old.
            self.promote(k).map(|_| ())
        } else if let Some(recv) = self.method_receiver(k) {
            // A method is keyed by its receiver's identity: its address, once old.
            if self.identity_number(recv).is_none() {
                self.promote(k)?;
            }
            Ok(())
        } else if self.is(k, t.tuple) {
            let n = self.tuple_items(k).len();
            let m = self.mark();
            let rk = self.root(k);
            for i in 0..n {
                let x = self.tuple_items(self.get(rk))[i];
                if self.needs_prepare(x) {
                    if let Err(e) = self.prepare_key(x) {
                        self.release(m);
                        return Err(e);
                    }
                }
            }
            self.release(m);
            Ok(())
        } else {
            Ok(())
        }
    }

    /// Whether `w` is a Thread, Lock or TransactionQueue: hashable by identity, as in CPython.
    pub(crate) fn is_identity_object(&self, w: Word) -> bool {
        use crate::objects::{OpaqueObj, OPAQUE_LOCK, OPAQUE_QUEUE, OPAQUE_THREAD};
        // `kind` is written once, when the object is made: no barrier needed to read it.
        value::is_ref(w)
            && self.is(w, self.types.opaque)
            && [OPAQUE_THREAD, OPAQUE_LOCK, OPAQUE_QUEUE]
                .contains(&self.ld(w, offset_of!(OpaqueObj, kind) as u64))
    }

    /// `hash(o)` of instance `o`, stored in it (see [`Runtime::prepare_key`]).
    pub fn instance_hash(&mut self, o: Word) -> R<i64> {
        match self.hash_kind(o)? {
            HashKind::Unhashable => Err(exc(
                ErrorKind::TypeError,
                format!("unhashable type: '{}'", self.type_name(o)),
            )),
            HashKind::Identity => {
                if let Some(h) = self.stored_hash(o) {
                    return Ok(h);
                }
                let h = NEXT_ID.fetch_add(1, Ordering::Relaxed);
                self.store_hash(o, h)?;
                Ok(h)
            }
            HashKind::Custom => {
                let m = self.mark();
                let ro = self.root(o);
                let r = self.call_special(o, "__hash__", &[]);
                let h = r.and_then(|r| {
                    let r = r.expect("a class of custom hash defines __hash__");
                    self.hash_result(r)
                });
                let o = self.get(ro);
                self.release(m);
                let h = h?;
                self.store_hash(o, h)?;
                Ok(h)
            }
        }
    }

    /// What `__hash__` returned, reduced as CPython reduces ints (`hash(2**64)`).
    fn hash_result(&self, r: Word) -> R<i64> {
        if is_int(r) {
            return Ok(stmjit_lang::value::user_hash(value::to_int(r)));
        }
        if r == TRUE || r == FALSE {
            return Ok((r == TRUE) as i64);
        }
        if self.is(r, self.types.bigint) {
            if let Value::BigInt(b) = self.to_value(r, &mut Memo::peek()) {
                return Ok(match i64::try_from(&*b).ok() {
                    Some(n) => stmjit_lang::value::user_hash(n),
                    None => stmjit_lang::bigint::hash(&b),
                });
            }
        }
        Err(exc(
            ErrorKind::TypeError,
            "__hash__ method should return an integer",
        ))
    }

    /// Whether `k` may need [`Runtime::prepare_key`] (or [`Runtime::canonical_key`]): an
    /// instance, a tuple, a frozenset, a bound method or a builtin (function or method);
    /// strs, the commonest keys, are told apart first.
    #[inline]
    pub(crate) fn needs_prepare(&self, k: Word) -> bool {
        let t = self.types;
        value::is_ref(k)
            && !self.is(k, t.str)
            && (self.is(k, t.instance)
                || self.is(k, t.tuple)
                || self.is(k, t.frozenset)
                || self.is(k, t.bound_method)
                || self.is(k, t.builtin)
                || self.is_identity_object(k))
    }

    /// Prepares key `k` for an operation on dict (or set) `d` and makes it canonical (see
    /// the module docs): the key to probe with (`k`, or an equal key `d` holds) and `d`,
    /// both possibly moved. `k` is the original key where `d` holds none equal to it.
    /// With `stored`, `k` comes from a table (a copy, a set's members): an instance that
    /// has its hash keeps it (`__hash__` does not run again, as in CPython).
    #[inline]
    pub(crate) fn key_for(&mut self, d: Word, k: Word, stored: bool) -> R<(Word, Word)> {
        if !self.needs_prepare(k) {
            return Ok((d, k));
        }
        self.key_for_slow(d, k, stored)
    }

    /// [`Runtime::key_for`] of an instance or a tuple.
    fn key_for_slow(&mut self, d: Word, k: Word, stored: bool) -> R<(Word, Word)> {
        let m = self.mark();
        let (rd, rk) = (self.root(d), self.root(k));
        let prepared = stored && self.is(k, self.types.instance) && self.stored_hash(k).is_some();
        let r = if prepared {
            Ok(())
        } else {
            self.prepare_key(k)
        };
        let r = r.and_then(|()| {
            let k = self.get(rk);
            if self.is_custom_key(k) {
                self.canonical_key(self.get(rd), k)
            } else {
                Ok(k)
            }
        });
        let d = self.get(rd);
        self.release(m);
        Ok((d, r?))
    }

    /// Whether key `k` is, or holds in a tuple or a frozenset, an instance whose class
    /// defines `__hash__` (its table compares it by `==`, see the module docs).
    pub(crate) fn is_custom_key(&self, k: Word) -> bool {
        if !value::is_ref(k) {
            return false;
        }
        if self.is(k, self.types.instance) {
            self.hash_kind(k).ok() == Some(HashKind::Custom)
        } else if self.is(k, self.types.tuple) {
            self.tuple_items(k)
                .into_iter()
                .any(|x| self.is_custom_key(x))
        } else if self.is(k, self.types.frozenset) {
            self.dict_items(k)
                .into_iter()
                .any(|(x, _)| self.is_custom_key(x))
        } else {
            false
        }
    }

    /// The first key `==` to the prepared key `k` (see [`Runtime::is_custom_key`]) along
    /// `k`'s probe sequence in `d` (its table, then the transaction's pending keys), or `k`
    /// itself.
    fn canonical_key(&mut self, d: Word, k: Word) -> R<Word> {
        let h = self.table_hash(k)?;
        let mut cands = Vec::new();
        if !self.table_custom_candidates(d, h, k, &mut cands) {
            if let Some(o) = self.overlay_dict(d) {
                self.table_custom_candidates(o, h, k, &mut cands);
            }
        }
        if cands.is_empty() {
            return Ok(k);
        }
        let m = self.mark();
        let rk = self.root(k);
        let roots: Vec<_> = cands.iter().map(|&c| self.root(c)).collect();
        for rc in roots {
            let (c, k) = (self.get(rc), self.get(rk));
            let eq = self.with_special(&[c, k], |v| stmjit_lang::value::equal(&v[0], &v[1]));
            match eq {
                Ok(true) => {
                    let c = self.get(rc);
                    self.release(m);
                    return Ok(c);
                }
                Ok(false) => {}
                Err(e) => {
                    self.release(m);
                    return Err(e);
                }
            }
        }
        let k = self.get(rk);
        self.release(m);
        Ok(k)
    }
}

impl Runtime {
    /// `id(w)`: its address once it is old, and the interpreter's numbers for what `is`
    /// compares by value (`stmjit_lang::value::object_id`: None 0, False 2, True 6, the
    /// empty tuple 4, int `n` `2n + 1`, floats and strs by what they hold, a builtin
    /// function by which one): `id(a) == id(b)` exactly when `a is b`. The old space never moves
    /// its objects (`stmjit_runtime::major`), so an old object's address is unique among
    /// live objects and constant for its life, as CPython's ids are; a young one is first
    /// moved there by a minor collection (one per `id()` of a young object: ids are rare,
    /// and every other object keeps its size and speed). Objects made by a transaction
    /// that aborts take their ids with them.
    pub(crate) fn object_id(&mut self, w: Word) -> R<Word> {
        let n = match self.identity_number(w) {
            Some(n) => n,
            None => {
                let w = self.promote(w)?;
                self.identity_number(w)
                    .expect("an old object has an address")
            }
        };
        match i64::try_from(n).ok().and_then(value::from_int) {
            Some(n) => Ok(n),
            None => self.new_bigint(&n.into()),
        }
    }

    /// The number `id(w)` gives (see [`Runtime::object_id`]), None for a young object
    /// (its address is not its own for good yet). Reads only: no allocation, no user code.
    pub(crate) fn identity_number(&self, w: Word) -> Option<i128> {
        if !value::is_ref(w) {
            return Some(w as i64 as i128);
        }
        let t = self.types;
        if self.is(w, t.float) {
            return Some((1i128 << 64) + self.float_of(w).to_bits() as i128);
        }
        if self.is(w, t.str) {
            return Some(stmjit_lang::value::str_id(self.str_of(w)));
        }
        if self.is(w, t.tuple) && self.tuple_len(w) == 0 {
            return Some(4);
        }
        if self.is(w, t.builtin) {
            use crate::objects::BuiltinObj;
            self.rb(w);
            if self.ld(w, offset_of!(BuiltinObj, is_method) as u64) == 0 {
                let which = self.ld(w, offset_of!(BuiltinObj, which) as u64);
                return Some((1i128 << 65) + which as i128);
            }
        }
        let l = self.stm.layout();
        (!(l.nursery_start..l.nursery_end).contains(&w)).then_some(w as i128)
    }

    /// `w` moved to the old space (where objects never move) if it is young: a minor
    /// collection; `w` itself if it is old.
    pub(crate) fn promote(&mut self, w: Word) -> R<Word> {
        let l = self.stm.layout();
        if !value::is_ref(w) || !(l.nursery_start..l.nursery_end).contains(&w) {
            return Ok(w);
        }
        let m = self.mark();
        let r = self.root(w);
        // SAFETY: `th` is this thread's handle, in a transaction on its segment; the words
        // this helper still needs are rooted (`r`, and the callers' own roots).
        let moved = unsafe { &mut *self.th }.collect_minor();
        let w = self.get(r);
        self.release(m);
        moved.map_err(|_| crate::Unwind::Aborted)?;
        Ok(w)
    }

    /// The receiver of bound method or builtin method `w`, None for other values.
    pub(crate) fn method_receiver(&self, w: Word) -> Option<Word> {
        use crate::objects::{BoundMethodObj, BuiltinObj};
        let t = self.types;
        if self.is(w, t.bound_method) {
            self.rb(w);
            Some(self.ld(w, offset_of!(BoundMethodObj, receiver) as u64))
        } else if self.is(w, t.builtin) {
            self.rb(w);
            (self.ld(w, offset_of!(BuiltinObj, is_method) as u64) != 0)
                .then(|| self.ld(w, offset_of!(BuiltinObj, receiver) as u64))
        } else {
            None
        }
    }

    /// `hash(w)` of an instance, or of a tuple that may hold instances: each instance's
    /// `__hash__` runs once (or its identity number is used), and a tuple combines its
    /// items' hashes as CPython does.
    pub(crate) fn hash_of(&mut self, w: Word) -> R<i64> {
        let m = self.mark();
        let rw = self.root(w);
        let r = self.prepare_key(w);
        let w = self.get(rw);
        self.release(m);
        r?;
        self.hash_prepared(w)
    }

    /// The hash of a prepared key (see [`Runtime::prepare_key`]): no user code runs.
    fn hash_prepared(&self, w: Word) -> R<i64> {
        if value::is_ref(w) && self.is(w, self.types.instance) {
            return Ok(self.stored_hash(w).expect("a prepared key"));
        }
        if self.is_identity_object(w) || value::is_ref(w) && self.method_receiver(w).is_some() {
            return Ok((Self::key_hash(&self.key_of(w)?) >> 4) as i64);
        }
        if let Some(h) = self.identity_hash(w) {
            return Ok(h);
        }
        if value::is_ref(w) && self.is(w, self.types.tuple) {
            let items = self
                .tuple_items(w)
                .into_iter()
                .map(|x| self.hash_prepared(x))
                .collect::<R<Vec<i64>>>()?;
            return Ok(stmjit_lang::builtins_seq::hash_tuple(&items));
        }
        let v = self.to_value(w, &mut Memo::peek());
        Ok(stmjit_lang::builtins_core::hash_value(&v)?)
    }
}
