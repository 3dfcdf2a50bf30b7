//! Conversion between heap words and the reference interpreter's `Value`s, so that the rare
//! and intricate operations (text forms, comparisons of containers, sorting, slicing, str
//! methods...) reuse the front end's exact semantics instead of a second implementation.
//!
//! Identity is kept: every container met is converted once per operation ([`Memo`]), and
//! converting back maps a container that came from the heap to its original reference, so an
//! operation that returns or stores existing objects (`xs + ys`, `d.values()`, `xs.pop()`)
//! returns the very same objects. A *shallow* conversion turns nested containers into empty
//! stand-ins with the right type and identity: enough for operations that only move items
//! around; a *deep* one copies contents, for those that look inside them.

use super::{Root, Runtime, R};
use crate::objects::*;
use std::collections::HashMap;
use std::mem::offset_of;
use std::sync::{Arc, Mutex};
use stmjit_lang::ast::Builtin;
use stmjit_lang::slices::SliceValue;
use stmjit_lang::value::{
    ClassObj as VClass, Dict, DictObj as VDict, FuncValue, InstanceObj as VInst, Key,
    ListObj as VList, LockObj, QueueObj, ThreadObj, TupleObj as VTuple, Value,
};
use stmjit_runtime::value::{self, is_int, Word, FALSE, NONE, TRUE};

/// Nesting beyond which conversion stops copying (the interpreter's data depth limit is
/// 1000: operations raise RecursionError before they would see the cut).
const MAX_CONVERT_DEPTH: usize = stmjit_lang::value::MAX_DATA_DEPTH + 50;

/// Containers converted during one operation, both ways.
#[derive(Default)]
pub struct Memo {
    fwd: HashMap<Word, Value>,
    back: HashMap<usize, Root>,
    /// Copy the contents of nested containers (else: empty stand-ins).
    pub deep: bool,
    /// Remember (and root) the heap object of every container, to map results back;
    /// read-only conversions (text forms, comparisons) need not.
    pub keep: bool,
    /// Remember (and root) the heap object of every instance, so that their special
    /// methods can be called (`special.rs`); the caller releases the roots.
    pub instances: bool,
}

impl Memo {
    /// A memo for deep conversion.
    pub fn deep() -> Memo {
        Memo {
            deep: true,
            keep: true,
            ..Memo::default()
        }
    }

    /// A memo for shallow conversion.
    pub fn shallow() -> Memo {
        Memo {
            keep: true,
            ..Memo::default()
        }
    }

    /// A memo for a shallow conversion whose result is only read.
    pub fn peek() -> Memo {
        Memo::default()
    }

    /// A memo for a deep conversion whose result is only read (never converted back).
    pub fn reading() -> Memo {
        Memo {
            deep: true,
            ..Memo::default()
        }
    }

    /// The rooted heap object of a converted instance (with `keep` or `instances`).
    pub(crate) fn instance_root(&self, inst: &Arc<VInst>) -> Option<Root> {
        self.back.get(&arc_id(inst)).copied()
    }
}

fn arc_id<T>(a: &Arc<T>) -> usize {
    Arc::as_ptr(a) as *const u8 as usize
}

impl Runtime {
    /// The `Value` of `w` (top level always with contents; nested ones per `memo.deep`).
    pub fn to_value(&self, w: Word, memo: &mut Memo) -> Value {
        self.to_value_at(w, memo, 0)
    }

    fn to_value_at(&self, w: Word, memo: &mut Memo, depth: usize) -> Value {
        if is_int(w) {
            return Value::Int(value::to_int(w));
        }
        match w {
            NONE => return Value::None,
            TRUE => return Value::Bool(true),
            FALSE => return Value::Bool(false),
            _ => {}
        }
        if let Some(v) = memo.fwd.get(&w) {
            return v.clone();
        }
        let t = self.types;
        let ty = self.type_of(w).unwrap_or(u32::MAX);
        let contents = depth == 0 || (memo.deep && depth < MAX_CONVERT_DEPTH);
        if ty == t.str.0 {
            Value::str(self.str_of(w))
        } else if ty == t.float.0 {
            Value::Float(self.float_of(w))
        } else if ty == t.bigint.0 {
            Value::BigInt(Arc::new(self.bigint_of(w)))
        } else if ty == t.list.0 {
            let arc = Arc::new(VList::default());
            let v = Value::List(arc.clone());
            memo.fwd.insert(w, v.clone());
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            if contents {
                let items: Vec<Value> = self
                    .list_items(w)
                    .into_iter()
                    .map(|x| self.to_value_at(x, memo, depth + 1))
                    .collect();
                *arc.items.lock().unwrap() = items;
            }
            v
        } else if ty == t.tuple.0 {
            // Always with its items (it cannot be filled later): nested containers follow
            // the memo's rule. A tuple cannot contain itself, so this ends; its nesting
            // depth is bounded like the data's.
            if depth >= MAX_CONVERT_DEPTH {
                return Value::Tuple(Arc::new(VTuple::default()));
            }
            let items: Vec<Value> = self
                .tuple_items(w)
                .into_iter()
                .map(|x| self.to_value_at(x, memo, depth + 1))
                .collect();
            let arc = Arc::new(VTuple { items });
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            let v = Value::Tuple(arc);
            memo.fwd.insert(w, v.clone());
            v
        } else if ty == t.dict.0 {
            let arc = Arc::new(VDict::default());
            let v = Value::Dict(arc.clone());
            memo.fwd.insert(w, v.clone());
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            if contents {
                let mut map = Dict::default();
                for (k, x) in self.dict_items(w) {
                    let kv = self.to_value_at(k, memo, depth + 1);
                    let xv = self.to_value_at(x, memo, depth + 1);
                    if let Ok(key) = Key::of(&kv) {
                        map.insert(key, kv, xv);
                    }
                }
                *arc.map.lock().unwrap() = map;
            }
            v
        } else if ty == t.set.0 || ty == t.frozenset.0 {
            // Members are hashable (ints, floats, strs, None, tuples, frozensets): no cycle.
            // A frozenset's contents are always converted (it is a dict key: its members
            // decide its identity), as a tuple's are.
            let arc = Arc::new(VDict::default());
            let frozen = ty == t.frozenset.0;
            let v = if frozen {
                Value::FrozenSet(arc.clone())
            } else {
                Value::Set(arc.clone())
            };
            let contents = contents || frozen && depth < MAX_CONVERT_DEPTH;
            memo.fwd.insert(w, v.clone());
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            if contents {
                let mut map = Dict::default();
                for (k, _) in self.dict_items(w) {
                    let kv = self.to_value_at(k, memo, depth + 1);
                    if let Ok(key) = Key::of(&kv) {
                        map.insert(key, kv, Value::None);
                    }
                }
                *arc.map.lock().unwrap() = map;
            }
            v
        } else if ty == t.instance.0 {
            self.rb(w);
            let cls = self.ld(w, offset_of!(InstanceObj, class) as u64);
            let class = match self.to_value_at(cls, memo, depth + 1) {
                Value::Class(c) => c,
                _ => unreachable!("an instance's class is a class"),
            };
            // An exception's `args` are needed for its text.
            let mut attrs = Vec::new();
            if class.exc {
                let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
                if let Some(s) = self.shape_slot(id, crate::exceptions::ARGS_NAME) {
                    let a = match self.inst_slot_value(w, s) {
                        SlotValue::Word(crate::UNBOUND) => None,
                        SlotValue::Word(a) => Some(self.to_value_at(a, memo, depth + 1)),
                        SlotValue::Float(f) => Some(Value::Float(f)),
                    };
                    if let Some(a) = a {
                        attrs.push(("args".to_string(), a));
                    }
                }
            }
            // How it hashes, and its hash if it has one: the class copy has no attributes
            // to tell, and the key of an instance is its stored hash (`hashing.rs`).
            let mut inst = VInst::new(class, attrs);
            inst.kind = self.class_hash_kind(cls).ok();
            if let Some(h) = self.stored_hash(w) {
                inst.hash.store(h, std::sync::atomic::Ordering::Relaxed);
            }
            let arc = Arc::new(inst);
            if memo.keep || memo.instances {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            let v = Value::Instance(arc);
            memo.fwd.insert(w, v.clone());
            v
        } else if ty == t.class.0 {
            let id = self.ld(w, offset_of!(ClassObj, class_id) as u64) as usize;
            let (exc, builtin) = self
                .class_copy
                .with(&self.info.classes, |c| (c[id].exc, c[id].builtin));
            let arc = Arc::new(VClass {
                name: self.class_name(w),
                base: None,
                attrs: Mutex::new(Vec::new()),
                exc,
                builtin,
            });
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            let v = Value::Class(arc);
            memo.fwd.insert(w, v.clone());
            v
        } else if ty == t.function.0 {
            // Identity kept, the default values left out (no operation reads them).
            let arc = Arc::new(FuncValue {
                id: self.ld(w, offset_of!(FunctionObj, func_id) as u64) as usize,
                defaults: Vec::new(),
                closure: Vec::new(),
            });
            if memo.keep {
                memo.back.insert(arc_id(&arc), self.root(w));
            }
            let v = Value::Function(arc);
            memo.fwd.insert(w, v.clone());
            v
        } else if ty == t.bound_method.0 {
            let f = self.ld(w, offset_of!(BoundMethodObj, func) as u64);
            let recv = self.ld(w, offset_of!(BoundMethodObj, receiver) as u64);
            let r = self.to_value_at(recv, memo, depth + 1);
            let Value::Function(f) = self.to_value_at(f, memo, depth + 1) else {
                unreachable!("a bound method's function is a function")
            };
            Value::BoundMethod(Arc::new((r, f)))
        } else if ty == t.builtin.0 {
            let which = self.ld(w, offset_of!(BuiltinObj, which) as u64) as usize;
            if self.ld(w, offset_of!(BuiltinObj, is_method) as u64) == 0 {
                Value::Builtin(Builtin::ALL[which])
            } else {
                let recv = self.ld(w, offset_of!(BuiltinObj, receiver) as u64);
                let r = self.to_value_at(recv, memo, depth + 1);
                Value::BuiltinMethod(Arc::new((
                    r,
                    self.info.names.text(which as u32).to_string(),
                )))
            }
        } else if ty == t.range.0 {
            let (a, b, s) = self.range_of(w);
            Value::Range(a, b, s)
        } else if ty == t.slice.0 {
            // Always with its parts, as a tuple.
            let [a, b, c] = self
                .slice_parts(w)
                .map(|x| self.to_value_at(x, memo, depth + 1));
            SliceValue::new_value(a, b, c)
        } else {
            let v = match self.ld(w, offset_of!(OpaqueObj, kind) as u64) {
                OPAQUE_THREAD => {
                    let a = Arc::new(ThreadObj::default());
                    if memo.keep {
                        memo.back.insert(arc_id(&a), self.root(w));
                    }
                    Value::Thread(a)
                }
                OPAQUE_LOCK => {
                    let a = Arc::new(LockObj::default());
                    if memo.keep {
                        memo.back.insert(arc_id(&a), self.root(w));
                    }
                    Value::Lock(a)
                }
                OPAQUE_BIG_RANGE => {
                    // Converted back to this very object (ranges are identical to themselves).
                    let a = Arc::new(self.big_range_of(w));
                    if memo.keep {
                        memo.back.insert(arc_id(&a), self.root(w));
                    }
                    Value::BigRange(a)
                }
                _ => {
                    let a = Arc::new(QueueObj::default());
                    if memo.keep {
                        memo.back.insert(arc_id(&a), self.root(w));
                    }
                    Value::Queue(a)
                }
            };
            memo.fwd.insert(w, v.clone());
            v
        }
    }

    /// The word of `v`: existing containers map back to their references, new ones are
    /// allocated.
    pub fn from_value(&mut self, v: &Value, memo: &mut Memo) -> R<Word> {
        Ok(match v {
            Value::None => NONE,
            Value::Bool(b) => value::from_bool(*b),
            Value::Int(i) => match value::from_int(*i) {
                Some(w) => w,
                // The interpreter keeps its ints canonical; this is for any i64 all the same.
                None => self.new_bigint(&(*i).into())?,
            },
            Value::BigInt(b) => self.new_bigint(b)?,
            Value::Float(f) => self.new_float(*f)?,
            Value::Str(s) => self.new_str(s)?,
            Value::List(l) => {
                if let Some(&r) = memo.back.get(&arc_id(l)) {
                    return Ok(self.get(r));
                }
                // Every converted item stays rooted until the operation ends (via_values).
                let items = l.snapshot();
                let mut held = Vec::with_capacity(items.len());
                for x in &items {
                    let w = self.from_value(x, memo)?;
                    held.push(self.hold(w));
                }
                let words: Vec<Word> = held.iter().map(|&h| self.held(h)).collect();
                let w = self.new_list(&words)?;
                memo.back.insert(arc_id(l), self.root(w));
                w
            }
            Value::Tuple(t) => {
                if let Some(&r) = memo.back.get(&arc_id(t)) {
                    return Ok(self.get(r));
                }
                // As for lists: the converted items stay rooted until the operation ends.
                let mut held = Vec::with_capacity(t.items.len());
                for x in &t.items {
                    let w = self.from_value(x, memo)?;
                    held.push(self.hold(w));
                }
                let words: Vec<Word> = held.iter().map(|&h| self.held(h)).collect();
                let w = self.new_tuple(&words)?;
                memo.back.insert(arc_id(t), self.root(w));
                w
            }
            Value::Dict(d) => {
                if let Some(&r) = memo.back.get(&arc_id(d)) {
                    return Ok(self.get(r));
                }
                let items = d.map.lock().unwrap().items();
                let w = self.new_dict()?;
                let rw = self.root(w);
                memo.back.insert(arc_id(d), rw);
                for (k, x) in &items {
                    let kw = self.from_value(k, memo)?;
                    let rk = self.root(kw);
                    let xw = self.from_value(x, memo)?;
                    self.dict_set_stored(self.get(rw), self.get(rk), xw)?;
                }
                self.get(rw)
            }
            Value::Set(d) | Value::FrozenSet(d) => {
                if let Some(&r) = memo.back.get(&arc_id(d)) {
                    return Ok(self.get(r));
                }
                let members = d.map.lock().unwrap().keys();
                let w = if matches!(v, Value::FrozenSet(_)) {
                    self.new_dict_of(self.types.frozenset)?
                } else {
                    self.new_set()?
                };
                let rw = self.root(w);
                memo.back.insert(arc_id(d), rw);
                for k in &members {
                    let kw = self.from_value(k, memo)?;
                    self.dict_set_stored(self.get(rw), kw, NONE)?;
                }
                self.get(rw)
            }
            Value::Range(a, b, s) => {
                let r = self.alloc(self.types.range, std::mem::size_of::<RangeObj>() as u64)?;
                self.st(r, offset_of!(RangeObj, start) as u64, *a as u64);
                self.st(r, offset_of!(RangeObj, stop) as u64, *b as u64);
                self.st(r, offset_of!(RangeObj, step) as u64, *s as u64);
                r
            }
            Value::Slice(s) => {
                // As for tuples: the converted parts stay rooted until the operation ends.
                let mut held = Vec::with_capacity(3);
                for x in &s.parts {
                    let w = self.from_value(x, memo)?;
                    held.push(self.hold(w));
                }
                self.new_slice([0, 1, 2].map(|i| self.held(held[i])))?
            }
            Value::Function(f) => match memo.back.get(&arc_id(f)) {
                Some(&r) => self.get(r),
                None => self.info.consts.func_objs[f.id],
            },
            Value::BoundMethod(m) => {
                let recv = self.from_value(&m.0, memo)?;
                let rr = self.root(recv);
                let f = self.from_value(&Value::Function(m.1.clone()), memo)?;
                let recv = self.get(rr);
                self.new_bound_method(f, recv)?
            }
            Value::Builtin(b) => {
                let which = Builtin::ALL.iter().position(|x| x == b).unwrap() as u64;
                self.new_builtin(which, NONE, false)?
            }
            Value::BuiltinMethod(m) => {
                let recv = self.from_value(&m.0, memo)?;
                // Every builtin method name is interned before the program runs.
                let id = self
                    .info
                    .names
                    .id(&m.1)
                    .expect("builtin method names are interned") as u64;
                self.new_builtin(id, recv, true)?
            }
            Value::Instance(a) => self.get(*memo.back.get(&arc_id(a)).expect("known instance")),
            Value::Class(a) => self.get(*memo.back.get(&arc_id(a)).expect("known class")),
            Value::BigRange(r) => match memo.back.get(&arc_id(r)) {
                Some(&w) => self.get(w),
                None => self.new_big_range(r, memo)?,
            },
            Value::Thread(a) => self.get(*memo.back.get(&arc_id(a)).expect("known thread")),
            Value::Lock(a) => self.get(*memo.back.get(&arc_id(a)).expect("known lock")),
            Value::Queue(a) => self.get(*memo.back.get(&arc_id(a)).expect("known queue")),
        })
    }

    /// `str(w)` (an instance's `__str__` or `__repr__` runs).
    pub fn to_str(&mut self, w: Word) -> R<String> {
        if self.is(w, self.types.str) {
            return Ok(self.str_of(w).to_string());
        }
        if is_int(w) {
            return Ok(value::to_int(w).to_string());
        }
        let program = self.info.program.clone();
        let names = |id: usize| program.functions[id].qualname.clone();
        self.with_special(&[w], |v| v[0].to_str(&names))
    }

    /// `repr(w)` (an instance's `__repr__` runs).
    pub fn repr(&mut self, w: Word) -> R<String> {
        let program = self.info.program.clone();
        let names = |id: usize| program.functions[id].qualname.clone();
        self.with_special(&[w], |v| v[0].repr(&names))
    }
}
