//! Runtime values of the reference interpreter and their Python-exact text forms (`str`, `repr`),
//! equality, ordering and dict keys. Containers are shared between threads (`Arc` + `Mutex`); the
//! interpreter's global lock serializes all access, so the mutexes are never contended. No code
//! here holds two container locks at once (contents are cloned out first), so a list that
//! contains itself cannot deadlock.

use crate::ast::{Builtin, CmpOp, FuncId};
use crate::diag::ErrorKind;
use crate::floatfmt::float_repr;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

/// 2^63 as a float: integral floats in [-2^63, 2^63) are keys of the equal i64.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// Deepest container nesting that `str`, `==` and `<` walk before a `RecursionError`.
pub const MAX_DATA_DEPTH: usize = 1000;

/// A value of the language.
#[derive(Clone, Debug)]
pub enum Value {
    None,
    Bool(bool),
    /// Always within −2^62 … 2^62−1.
    Int(i64),
    /// An int outside the range of `Int` (never inside it: see `bigint::big_value`).
    BigInt(Arc<num_bigint::BigInt>),
    Float(f64),
    Str(Arc<str>),
    List(Arc<ListObj>),
    /// Immutable: shared without a lock.
    Tuple(Arc<TupleObj>),
    Dict(Arc<DictObj>),
    /// A set: a dict whose keys are the members (values `None`), so insertion-ordered.
    Set(Arc<DictObj>),
    /// A frozenset: a set that never changes after it is made, so it is hashable.
    FrozenSet(Arc<DictObj>),
    /// `range(start, stop, step)` of tagged ints; step is never 0.
    Range(i64, i64, i64),
    /// `range(start, stop, step)` with one of them beyond the tagged ints (see
    /// [`crate::ranges`]).
    BigRange(Arc<crate::ranges::BigRange>),
    /// A slice object, `slice(start, stop, step)` (immutable).
    Slice(Arc<crate::slices::SliceValue>),
    /// A function: what a `def` made when it ran.
    Function(Arc<FuncValue>),
    /// `instance.method` not yet called: (instance, method).
    BoundMethod(Arc<(Value, Arc<FuncValue>)>),
    Class(Arc<ClassObj>),
    Instance(Arc<InstanceObj>),
    Builtin(Builtin),
    /// `xs.append` and friends not yet called: (receiver, method name).
    BuiltinMethod(Arc<(Value, String)>),
    Thread(Arc<ThreadObj>),
    Lock(Arc<LockObj>),
    Queue(Arc<QueueObj>),
}

/// A function value: the program function and what its `def` evaluated.
#[derive(Debug)]
pub struct FuncValue {
    /// The function in [`crate::ast::Program::functions`].
    pub id: FuncId,
    /// The values of its default parameters (`Function::defaults`), evaluated when the
    /// `def` ran.
    pub defaults: Vec<Value>,
    /// The cells of its free variables (`Function::closure`): one-item lists, empty while
    /// the variable is unbound.
    pub closure: Vec<Value>,
}

/// Locks a mutex, ignoring poisoning (a panic elsewhere must not turn into another panic here).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A list.
#[derive(Debug, Default)]
pub struct ListObj {
    pub items: Mutex<Vec<Value>>,
}

impl ListObj {
    /// A new list value holding `items`.
    pub fn new_value(items: Vec<Value>) -> Value {
        Value::List(Arc::new(ListObj {
            items: Mutex::new(items),
        }))
    }

    /// A snapshot of the items.
    pub fn snapshot(&self) -> Vec<Value> {
        lock(&self.items).clone()
    }
}

/// A tuple: its items never change after it is made.
#[derive(Debug, Default)]
pub struct TupleObj {
    pub items: Vec<Value>,
}

impl TupleObj {
    /// A new tuple value holding `items`.
    pub fn new_value(items: Vec<Value>) -> Value {
        Value::Tuple(Arc::new(TupleObj { items }))
    }
}

/// A dict.
#[derive(Debug, Default)]
pub struct DictObj {
    pub map: Mutex<Dict>,
}

impl DictObj {
    /// A new dict value.
    pub fn new_value(map: Dict) -> Value {
        Value::Dict(Arc::new(DictObj {
            map: Mutex::new(map),
        }))
    }

    /// A new set value of `items` (each hashable, or a `TypeError`), in their order.
    pub fn new_set(items: Vec<Value>) -> Result<Value, OpError> {
        let mut map = Dict::default();
        for v in items {
            map.insert(map.key_for(&v)?, v, Value::None);
        }
        Ok(Value::Set(Arc::new(DictObj {
            map: Mutex::new(map),
        })))
    }
}

/// The identity of a dict key: values that are `==` and hashable have the same `Key`
/// (`1`, `1.0` and `True` are one key, as in Python).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Key {
    Int(i64),
    /// An int outside the i64 range (or an integral float there).
    Big(Arc<num_bigint::BigInt>),
    /// A non-integral float (or NaN, or beyond the int range), by bits.
    Float(u64),
    Str(Arc<str>),
    None,
    /// A tuple, by the keys of its items (all hashable).
    Tuple(Vec<Key>),
    /// A frozenset, by the keys of its members, sorted (equal frozensets, whatever their
    /// order, have one key).
    FrozenSet(Vec<Key>),
    /// An instance hashed by identity, by its address.
    Obj(usize),
    /// An instance whose class defines `__hash__`: its hash and its address. Two equal
    /// instances have different keys; [`Dict::key_for`] and [`key_in`] make a key the key of
    /// an equal one the table holds (its `__eq__` decides), so the map finds it.
    Custom(i64, usize),
    /// A builtin function or type (`len`, `int`), by which one: each is one object.
    Builtin(crate::ast::Builtin),
    /// A bound method (`o.m`), by its receiver's identity ([`identity_number`]) and its
    /// function's address, as CPython compares them (`o.m == o.m`).
    Method(i128, usize),
    /// A builtin method (`xs.append`), by its receiver's identity and its name.
    BuiltinMethod(i128, String),
    /// A range, by the keys of [`crate::ranges::key_parts`] (equal ranges, one key).
    Range(Vec<Key>),
}

impl Key {
    /// For a key that is, or holds in a tuple or a frozenset, a [`Key::Custom`] (found by
    /// `==`, see [`key_in`]): its hash, the same for equal such keys; `None` for other keys.
    pub fn custom_hash(&self) -> Option<i64> {
        let item_hash = |k: &Key| {
            k.custom_hash().unwrap_or_else(|| {
                use std::hash::{Hash, Hasher};
                let mut s = std::collections::hash_map::DefaultHasher::new();
                k.hash(&mut s);
                s.finish() as i64
            })
        };
        let mul = 0x9e37_79b9_7f4a_7c15_u64 as i64;
        match self {
            Key::Custom(h, _) => Some(*h),
            Key::Tuple(items) if items.iter().any(|k| k.custom_hash().is_some()) => {
                Some(items.iter().fold(0x2545_f491_4f6c_dd1d_i64, |h, k| {
                    (h.rotate_left(31) ^ item_hash(k)).wrapping_mul(mul)
                }))
            }
            // Independent of the members' order (equal members' keys may sort apart).
            Key::FrozenSet(items) if items.iter().any(|k| k.custom_hash().is_some()) => {
                Some(items.iter().fold(0x6a09_e667_f3bc_c908_i64, |h, k| {
                    h.wrapping_add((item_hash(k) ^ 0x5bd1_e995).wrapping_mul(mul))
                }))
            }
            _ => None,
        }
    }

    /// The key of `v`, or a `TypeError` for unhashable values (a tuple is hashable when
    /// its items are).
    pub fn of(v: &Value) -> Result<Key, (ErrorKind, String)> {
        Key::of_depth(v, 0, false)
    }

    /// The key of `v`, a value a table already holds: an instance's `__hash__` is not
    /// called again (its last hash is used).
    pub fn of_stored(v: &Value) -> Result<Key, (ErrorKind, String)> {
        Key::of_depth(v, 0, true)
    }

    fn of_depth(v: &Value, depth: usize, stored: bool) -> Result<Key, (ErrorKind, String)> {
        Ok(match v {
            Value::Instance(i) => match i.hash_kind() {
                HashKind::Identity => Key::Obj(Arc::as_ptr(i) as usize),
                HashKind::Custom => {
                    Key::Custom(instance_hash(v, i, stored)?, Arc::as_ptr(i) as usize)
                }
                HashKind::Unhashable => {
                    return Err((
                        ErrorKind::TypeError,
                        format!("unhashable type: '{}'", v.type_name()),
                    ))
                }
            },
            Value::Tuple(t) => {
                if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                    return Err(too_deep("while calling a Python object"));
                }
                Key::Tuple(
                    t.items
                        .iter()
                        .map(|x| Key::of_depth(x, depth + 1, stored))
                        .collect::<Result<_, _>>()?,
                )
            }
            Value::FrozenSet(d) => {
                let mut keys: Vec<Key> = lock(&d.map)
                    .keys()
                    .iter()
                    .map(|x| Key::of_depth(x, depth + 1, true))
                    .collect::<Result<_, _>>()?;
                keys.sort();
                Key::FrozenSet(keys)
            }
            Value::Int(i) => Key::Int(*i),
            Value::BigInt(b) => match num_traits::ToPrimitive::to_i64(&**b) {
                Some(i) => Key::Int(i),
                None => Key::Big(b.clone()),
            },
            Value::Bool(b) => Key::Int(*b as i64),
            Value::Float(f) => {
                if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(f) {
                    Key::Int(*f as i64)
                } else if f.is_finite() && f.fract() == 0.0 {
                    match crate::bigint::from_f64(*f) {
                        Value::BigInt(b) => Key::Big(b),
                        _ => Key::Float(f.to_bits()),
                    }
                } else {
                    Key::Float(f.to_bits())
                }
            }
            Value::Str(s) => Key::Str(s.clone()),
            Value::None => Key::None,
            // By identity, as in CPython: two closures of one `def` are two keys. The table
            // holds the value, so the address stays its own while the key is in it.
            Value::Function(f) => Key::Obj(Arc::as_ptr(f) as *const () as usize),
            Value::Class(c) => Key::Obj(Arc::as_ptr(c) as *const () as usize),
            Value::Builtin(b) => Key::Builtin(*b),
            // The table holds the method, so its receiver and function stay alive (their
            // addresses their own) while the key is in it.
            Value::BoundMethod(m) => Key::Method(
                identity_number(&m.0),
                Arc::as_ptr(&m.1) as *const () as usize,
            ),
            Value::BuiltinMethod(m) => Key::BuiltinMethod(identity_number(&m.0), m.1.clone()),
            Value::Range(..) | Value::BigRange(_) => Key::Range(
                crate::ranges::key_parts(v)
                    .into_iter()
                    .flatten()
                    .map(|x| Key::of_depth(&x, depth + 1, stored))
                    .collect::<Result<_, _>>()?,
            ),
            // By identity, as in CPython; the table holds the value, so the address stays
            // its own while the key is in it.
            Value::Thread(_) | Value::Lock(_) | Value::Queue(_) => {
                Key::Obj(identity_number(v) as usize)
            }
            other => {
                return Err((
                    ErrorKind::TypeError,
                    format!("unhashable type: '{}'", other.type_name()),
                ))
            }
        })
    }
}

/// An insertion-ordered hash map from [`Key`] to (original key value, value).
#[derive(Debug, Default, Clone)]
pub struct Dict {
    entries: Vec<Option<(Value, Value)>>,
    index: HashMap<Key, usize>,
    /// The entries whose keys are [`Key::Custom`], by hash, in insertion order: where
    /// [`Dict::key_for`] looks for an equal key.
    custom: HashMap<i64, Vec<usize>>,
}

/// The key of `v` in the dict or set `map`: [`Key::of`], then, for an instance with
/// `__hash__`, the key of the first key of equal hash that `map` holds and that is `==` to
/// it (the stored key's `__eq__` first, as CPython compares), so that the map finds it.
/// The user's methods run with `map` unlocked: they may read or change it.
pub fn key_in(map: &Mutex<Dict>, v: &Value) -> Result<Key, OpError> {
    let k = Key::of(v)?;
    let Some(h) = k.custom_hash() else {
        return Ok(k);
    };
    let candidates = lock(map).custom_keys(h);
    match_custom(k, v, candidates)
}

fn match_custom(k: Key, v: &Value, candidates: Vec<(Key, Value)>) -> Result<Key, OpError> {
    for (ck, cv) in candidates {
        if ck == k {
            return Ok(k);
        }
        if equal(&cv, v)? {
            return Ok(ck);
        }
    }
    Ok(k)
}

impl Dict {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// True when there are no entries.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// The value stored under `k`.
    pub fn get(&self, k: &Key) -> Option<&Value> {
        self.index
            .get(k)
            .and_then(|&i| self.entries[i].as_ref())
            .map(|(_, v)| v)
    }

    /// Whether `k` is a key.
    pub fn contains(&self, k: &Key) -> bool {
        self.index.contains_key(k)
    }

    /// Inserts or replaces; an existing entry keeps its position and its original key.
    pub fn insert(&mut self, k: Key, key_value: Value, v: Value) {
        if let Some(&i) = self.index.get(&k) {
            if let Some(e) = self.entries[i].as_mut() {
                e.1 = v;
            }
        } else {
            if let Some(h) = k.custom_hash() {
                self.custom.entry(h).or_default().push(self.entries.len());
            }
            self.index.insert(k, self.entries.len());
            self.entries.push(Some((key_value, v)));
        }
    }

    /// [`key_in`] for a dict not shared yet (being built): the user's `__eq__` runs while
    /// it is borrowed, and cannot reach it.
    pub fn key_for(&self, v: &Value) -> Result<Key, OpError> {
        let k = Key::of(v)?;
        let Some(h) = k.custom_hash() else {
            return Ok(k);
        };
        match_custom(k, v, self.custom_keys(h))
    }

    /// [`Dict::key_for`] of `v` taken from another table (a set's member): an instance's
    /// `__hash__` does not run again.
    pub fn key_for_stored(&self, v: &Value) -> Result<Key, OpError> {
        let k = Key::of_stored(v)?;
        let Some(h) = k.custom_hash() else {
            return Ok(k);
        };
        match_custom(k, v, self.custom_keys(h))
    }

    /// Whether `v`, taken from another table, is `==` to a key of this one.
    pub fn holds(&self, v: &Value) -> Result<bool, OpError> {
        Ok(self.contains(&self.key_for_stored(v)?))
    }

    /// The keys of hash `h` held for instances with `__hash__`, with their values, in
    /// insertion order.
    fn custom_keys(&self, h: i64) -> Vec<(Key, Value)> {
        let Some(es) = self.custom.get(&h) else {
            return Vec::new();
        };
        es.iter()
            .filter_map(|&i| self.entries[i].as_ref())
            .filter_map(|(kv, _)| Some((Key::of_stored(kv).ok()?, kv.clone())))
            .collect()
    }

    /// Removes the entry for `k` and returns its value (order of the others is kept).
    pub fn remove(&mut self, k: &Key) -> Option<Value> {
        let i = self.index.remove(k)?;
        if let Some(h) = k.custom_hash() {
            if let Some(es) = self.custom.get_mut(&h) {
                es.retain(|&e| e != i);
                if es.is_empty() {
                    self.custom.remove(&h);
                }
            }
        }
        let old = self.entries[i].take().map(|(_, v)| v);
        if self.entries.len() > 32 && self.index.len() * 2 < self.entries.len() {
            self.compact();
        }
        old
    }

    /// Removes the most recently inserted entry and returns its (key, value): `popitem`.
    pub fn pop_last(&mut self) -> Option<(Value, Value)> {
        let (key_value, _) = self.entries.iter().rev().flatten().next()?.clone();
        let k = Key::of_stored(&key_value).ok()?;
        let v = self.remove(&k)?;
        Some((key_value, v))
    }

    /// Drops the removed entries; the index moves with them (no key is computed again: an
    /// instance's `__hash__` is not called).
    fn compact(&mut self) {
        let mut new_pos = vec![usize::MAX; self.entries.len()];
        let mut n = 0;
        for (i, e) in self.entries.iter().enumerate() {
            if e.is_some() {
                new_pos[i] = n;
                n += 1;
            }
        }
        self.entries.retain(|e| e.is_some());
        for i in self.index.values_mut() {
            *i = new_pos[*i];
        }
        for es in self.custom.values_mut() {
            for i in es.iter_mut() {
                *i = new_pos[*i];
            }
        }
    }

    /// (key, value) pairs in insertion order.
    pub fn items(&self) -> Vec<(Value, Value)> {
        self.entries.iter().flatten().cloned().collect()
    }

    /// Keys in insertion order.
    pub fn keys(&self) -> Vec<Value> {
        self.entries
            .iter()
            .flatten()
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// Values in insertion order.
    pub fn values(&self) -> Vec<Value> {
        self.entries
            .iter()
            .flatten()
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Takes every value out, leaving the dict empty (used for iterative drops).
    fn drain_values(&mut self) -> Vec<Value> {
        self.index.clear();
        self.custom.clear();
        std::mem::take(&mut self.entries)
            .into_iter()
            .flatten()
            .flat_map(|(k, v)| [k, v])
            .collect()
    }
}

/// A class: its name, optional base and attributes (methods are `Value::Function`).
#[derive(Debug)]
pub struct ClassObj {
    pub name: String,
    pub base: Option<Arc<ClassObj>>,
    pub attrs: Mutex<Vec<(String, Value)>>,
    /// An exception class (`BaseException` or derived from it): its instances have `args`.
    pub exc: bool,
    /// A built-in class (shown `<class 'ValueError'>`, not `<class '__main__.C'>`).
    pub builtin: bool,
}

impl ClassObj {
    /// Looks `name` up in this class, then its bases.
    pub fn lookup(&self, name: &str) -> Option<Value> {
        let mut class = self;
        loop {
            let own = lock(&class.attrs)
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone());
            if own.is_some() {
                return own;
            }
            class = class.base.as_deref()?;
        }
    }
}

/// An instance: its class and its own attributes in assignment order.
#[derive(Debug)]
pub struct InstanceObj {
    pub class: Arc<ClassObj>,
    pub attrs: Mutex<Vec<(String, Value)>>,
    /// The last hash computed for it ([`HASH_UNSET`] before any): a dict or set finds the
    /// hash of a key it holds here without calling `__hash__` again, as CPython's tables
    /// keep their keys' hashes. The JIT's runtime sets it when it converts an instance.
    pub hash: std::sync::atomic::AtomicI64,
    /// How it hashes when its class does not tell (an instance converted by the JIT's
    /// runtime, whose class copy has no attributes): see [`HashKind`]; `None` asks the class.
    pub kind: Option<HashKind>,
}

/// [`InstanceObj::hash`] before any hash was computed (no hash is this value: CPython's
/// hashes lie in −2^61 … 2^61).
pub const HASH_UNSET: i64 = i64::MIN;

/// How an instance hashes, by CPython's rules for its class: a class that defines
/// `__hash__` uses it (`__hash__ = None` makes it unhashable: what a class body that
/// defines `__eq__` without `__hash__` gets, see the parser); otherwise the nearest base
/// decides, and without any an instance hashes by identity (and is equal only to itself).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKind {
    Identity,
    Custom,
    Unhashable,
}

impl ClassObj {
    /// How this class's instances hash (see [`HashKind`]).
    pub fn hash_kind(&self) -> HashKind {
        let mut class = self;
        loop {
            {
                let attrs = lock(&class.attrs);
                if let Some((_, v)) = attrs.iter().find(|(n, _)| n == "__hash__") {
                    return match v {
                        Value::None => HashKind::Unhashable,
                        _ => HashKind::Custom,
                    };
                }
            }
            match class.base.as_deref() {
                Some(b) => class = b,
                None => return HashKind::Identity,
            }
        }
    }
}

impl InstanceObj {
    /// A new instance of `class` with attributes `attrs`.
    pub fn new(class: Arc<ClassObj>, attrs: Vec<(String, Value)>) -> InstanceObj {
        InstanceObj {
            class,
            attrs: Mutex::new(attrs),
            hash: std::sync::atomic::AtomicI64::new(HASH_UNSET),
            kind: None,
        }
    }

    /// How this instance hashes (see [`HashKind`]).
    pub fn hash_kind(&self) -> HashKind {
        self.kind.unwrap_or_else(|| self.class.hash_kind())
    }

    /// The hash last computed for it, if any.
    pub fn cached_hash(&self) -> Option<i64> {
        let h = self.hash.load(std::sync::atomic::Ordering::Relaxed);
        (h != HASH_UNSET).then_some(h)
    }
}

/// The hash of instance `v` (of a class with `__hash__`): its `__hash__`, which must
/// return an int (beyond 64 bits, reduced as CPython reduces ints: `hash(2**64)`), called
/// through the
/// installed [`crate::special::Special`]; `stored` takes the hash computed last instead,
/// when there is one (a key a table holds). Without a runner (no special method in the
/// program), the identity hash.
pub fn instance_hash(v: &Value, i: &Arc<InstanceObj>, stored: bool) -> Result<i64, OpError> {
    if stored {
        if let Some(h) = i.cached_hash() {
            return Ok(h);
        }
    }
    let h = match crate::special::call(v, "__hash__", &[]) {
        Some(r) => match r? {
            Value::Int(n) => user_hash(n),
            Value::BigInt(b) => match num_traits::ToPrimitive::to_i64(&*b) {
                Some(n) => user_hash(n),
                None => crate::bigint::hash(&b),
            },
            Value::Bool(b) => b as i64,
            _ => {
                return Err((
                    ErrorKind::TypeError,
                    "__hash__ method should return an integer".into(),
                ))
            }
        },
        None => i.cached_hash().unwrap_or(identity_hash(i)),
    };
    i.hash.store(h, std::sync::atomic::Ordering::Relaxed);
    Ok(h)
}

/// What an int `n` returned by `__hash__` makes as a hash (CPython: itself, in 64 bits,
/// but −1, which means an error there, becomes −2).
pub fn user_hash(n: i64) -> i64 {
    if n == -1 {
        -2
    } else {
        n
    }
}

/// The hash of an instance hashed by identity: its address (stable: an `Arc` never moves),
/// or the number the JIT's runtime gave it.
pub fn identity_hash(i: &Arc<InstanceObj>) -> i64 {
    i.cached_hash()
        .unwrap_or((Arc::as_ptr(i) as usize >> 4) as i64)
}

/// A spawned thread: its OS thread until joined, then its result.
#[derive(Debug, Default)]
pub struct ThreadObj {
    pub handle: Mutex<Option<std::thread::JoinHandle<()>>>,
    pub result: Mutex<Option<Value>>,
    /// The OS thread running it, once started: `join()` from that thread is an error.
    pub os_thread: Mutex<Option<std::thread::ThreadId>>,
    /// The uncaught exception that ended it, if any: each `join()` raises it again.
    pub failure: Mutex<Option<ThreadFailure>>,
}

/// The uncaught exception that ended a spawned thread (interpreter): `join()` raises it in
/// the joining thread; if no `join()` did by the end of the program, it is reported then.
#[derive(Debug, Clone)]
pub struct ThreadFailure {
    /// The exception, its trace ending at the thread's function.
    pub exc: crate::interp::Exc,
    /// Its name and message, made by the thread that raised it (`__str__` ran there).
    pub text: (String, String),
    /// Where `spawn` was called.
    pub spawned_at: crate::diag::Span,
    /// Whether a `join()` raised it.
    pub joined: bool,
}

/// A reentrant lock: the owning thread and how many times it holds it.
#[derive(Debug, Default)]
pub struct LockObj {
    pub owner: Mutex<Option<(std::thread::ThreadId, usize)>>,
}

/// A TransactionQueue: calls waiting to run.
#[derive(Debug, Default)]
pub struct QueueObj {
    pub calls: Mutex<VecDeque<(Value, Vec<Value>)>>,
}

/// Dropping a long chain of containers (a linked list of 10^6 instances, a list nested 10^6
/// deep) must not recurse: children whose last reference is being dropped are moved to a work
/// list instead.
fn drop_iteratively(mut work: Vec<Value>) {
    while let Some(v) = work.pop() {
        match v {
            Value::List(a) => {
                if let Some(obj) = Arc::into_inner(a) {
                    work.append(&mut lock(&obj.items));
                }
            }
            Value::Tuple(a) => {
                if let Some(mut obj) = Arc::into_inner(a) {
                    work.append(&mut obj.items);
                }
            }
            Value::Dict(a) | Value::Set(a) | Value::FrozenSet(a) => {
                if let Some(obj) = Arc::into_inner(a) {
                    work.extend(lock(&obj.map).drain_values());
                }
            }
            Value::Instance(a) => {
                if let Some(obj) = Arc::into_inner(a) {
                    let attrs = std::mem::take(&mut *lock(&obj.attrs));
                    work.extend(attrs.into_iter().map(|(_, v)| v));
                }
            }
            Value::BoundMethod(a) => {
                if let Some((recv, _)) = Arc::into_inner(a) {
                    work.push(recv);
                }
            }
            Value::BuiltinMethod(a) => {
                if let Some((recv, _)) = Arc::into_inner(a) {
                    work.push(recv);
                }
            }
            _ => {}
        }
    }
}

impl Drop for ListObj {
    fn drop(&mut self) {
        let items = std::mem::take(self.items.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !items.is_empty() {
            drop_iteratively(items);
        }
    }
}

impl Drop for TupleObj {
    fn drop(&mut self) {
        let items = std::mem::take(&mut self.items);
        if !items.is_empty() {
            drop_iteratively(items);
        }
    }
}

impl Drop for DictObj {
    fn drop(&mut self) {
        let values = self
            .map
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain_values();
        if !values.is_empty() {
            drop_iteratively(values);
        }
    }
}

impl Drop for InstanceObj {
    fn drop(&mut self) {
        let attrs = std::mem::take(self.attrs.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !attrs.is_empty() {
            drop_iteratively(attrs.into_iter().map(|(_, v)| v).collect());
        }
    }
}

/// Error from a value operation: kind and message, without a position yet.
pub type OpError = (ErrorKind, String);

const REPR: &str = "while getting the repr of an object";
const CMP: &str = "in comparison";

/// The error for data nested too deeply; `doing` says during what, as Python does.
fn too_deep(doing: &str) -> OpError {
    (
        ErrorKind::RecursionError,
        format!("maximum recursion depth exceeded {doing}"),
    )
}

impl Value {
    /// A str value.
    pub fn str(s: impl Into<Arc<str>>) -> Value {
        Value::Str(s.into())
    }

    /// Python's type name, as used in error messages.
    pub fn type_name(&self) -> String {
        match self {
            Value::None => "NoneType".into(),
            Value::Bool(_) => "bool".into(),
            Value::Int(_) | Value::BigInt(_) => "int".into(),
            Value::Float(_) => "float".into(),
            Value::Str(_) => "str".into(),
            Value::List(_) => "list".into(),
            Value::Tuple(_) => "tuple".into(),
            Value::Dict(_) => "dict".into(),
            Value::Set(_) => "set".into(),
            Value::FrozenSet(_) => "frozenset".into(),
            Value::Range(..) | Value::BigRange(_) => "range".into(),
            Value::Slice(_) => "slice".into(),
            Value::Function(_) => "function".into(),
            Value::BoundMethod(_) => "method".into(),
            Value::Class(_) => "type".into(),
            Value::Instance(i) => i.class.name.clone(),
            Value::Builtin(crate::ast::Builtin::NotImplemented) => "NotImplementedType".into(),
            Value::Builtin(_) | Value::BuiltinMethod(_) => "builtin_function_or_method".into(),
            Value::Thread(_) => "Thread".into(),
            Value::Lock(_) => "Lock".into(),
            Value::Queue(_) => "TransactionQueue".into(),
        }
    }

    /// Python truthiness.
    pub fn truthy(&self) -> bool {
        match self {
            Value::None => false,
            Value::Bool(b) => *b,
            Value::Int(i) => *i != 0,
            Value::BigInt(_) => true,
            Value::Float(f) => *f != 0.0,
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !lock(&l.items).is_empty(),
            Value::Tuple(t) => !t.items.is_empty(),
            Value::Dict(d) | Value::Set(d) | Value::FrozenSet(d) => !lock(&d.map).is_empty(),
            Value::Range(a, b, s) => range_len(*a, *b, *s) > 0,
            Value::BigRange(r) => !r.is_empty(),
            _ => true,
        }
    }

    /// `str(v)`; `names` gives function names for `<function f>`. An instance's `__str__`,
    /// else its `__repr__`, gives its text ([`crate::special`]).
    pub fn to_str(&self, names: &dyn Fn(FuncId) -> String) -> Result<String, OpError> {
        if let Value::Instance(i) = self {
            if let Some(r) = crate::special::call(self, "__str__", &[]) {
                return crate::special::text_of("__str__", r?);
            }
            if i.class.exc {
                let args = crate::exceptions::args_of(i);
                return crate::exceptions::text(&i.class.name, &args, names);
            }
        }
        match self {
            Value::Str(s) => Ok(s.to_string()),
            _ => {
                let mut out = String::new();
                self.write_repr(&mut out, names, &mut Vec::new())?;
                Ok(out)
            }
        }
    }

    /// `repr(v)`: as `str` but strings are quoted, as inside containers.
    pub fn repr(&self, names: &dyn Fn(FuncId) -> String) -> Result<String, OpError> {
        let mut out = String::new();
        self.write_repr(&mut out, names, &mut Vec::new())?;
        Ok(out)
    }

    fn write_repr(
        &self,
        out: &mut String,
        names: &dyn Fn(FuncId) -> String,
        active: &mut Vec<usize>,
    ) -> Result<(), OpError> {
        match self {
            Value::None => out.push_str("None"),
            Value::Bool(b) => out.push_str(if *b { "True" } else { "False" }),
            Value::Int(i) => out.push_str(&i.to_string()),
            Value::BigInt(b) => out.push_str(&crate::bigint::to_text(b)?),
            Value::Float(f) => out.push_str(&float_repr(*f)),
            Value::Str(s) => out.push_str(&str_repr(s)),
            Value::List(l) => {
                let id = Arc::as_ptr(l) as usize;
                if active.contains(&id) {
                    out.push_str("[...]");
                    return Ok(());
                }
                if active.len() >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                    return Err(too_deep(REPR));
                }
                active.push(id);
                out.push('[');
                for (i, v) in l.snapshot().iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_repr(out, names, active)?;
                }
                out.push(']');
                active.pop();
            }
            Value::Tuple(t) => {
                // A tuple cannot contain itself (it is made with its items): only the depth
                // needs a limit.
                if active.len() >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                    return Err(too_deep(REPR));
                }
                active.push(Arc::as_ptr(t) as usize);
                out.push('(');
                for (i, v) in t.items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    v.write_repr(out, names, active)?;
                }
                if t.items.len() == 1 {
                    out.push(',');
                }
                out.push(')');
                active.pop();
            }
            Value::Dict(d) => {
                let id = Arc::as_ptr(d) as usize;
                if active.contains(&id) {
                    out.push_str("{...}");
                    return Ok(());
                }
                if active.len() >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                    return Err(too_deep(REPR));
                }
                active.push(id);
                out.push('{');
                let items = lock(&d.map).items();
                for (i, (k, v)) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out, names, active)?;
                    out.push_str(": ");
                    v.write_repr(out, names, active)?;
                }
                out.push('}');
                active.pop();
            }
            Value::Set(d) | Value::FrozenSet(d) => {
                // A set holds no list, dict or set: no cycle; only tuples and frozensets nest.
                if active.len() >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                    return Err(too_deep(REPR));
                }
                let frozen = matches!(self, Value::FrozenSet(_));
                let keys = lock(&d.map).keys();
                if keys.is_empty() {
                    out.push_str(if frozen { "frozenset()" } else { "set()" });
                    return Ok(());
                }
                active.push(Arc::as_ptr(d) as usize);
                if frozen {
                    out.push_str("frozenset(");
                }
                out.push('{');
                for (i, k) in keys.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    k.write_repr(out, names, active)?;
                }
                out.push('}');
                if frozen {
                    out.push(')');
                }
                active.pop();
            }
            Value::Range(a, b, s) => {
                if *s == 1 {
                    out.push_str(&format!("range({a}, {b})"));
                } else {
                    out.push_str(&format!("range({a}, {b}, {s})"));
                }
            }
            Value::BigRange(r) => out.push_str(&r.repr()),
            Value::Slice(x) => {
                out.push_str("slice(");
                for (i, p) in x.parts.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    p.write_repr(out, names, active)?;
                }
                out.push(')');
            }
            Value::Function(f) => out.push_str(&format!("<function {}>", names(f.id))),
            Value::BoundMethod(m) => out.push_str(&format!("<bound method {}>", names(m.1.id))),
            Value::Class(c) if c.builtin => out.push_str(&format!("<class '{}'>", c.name)),
            Value::Class(c) => out.push_str(&format!("<class '__main__.{}'>", c.name)),
            Value::Instance(i) => match crate::special::call(self, "__repr__", &[]) {
                Some(r) => out.push_str(&crate::special::text_of("__repr__", r?)?),
                None if i.class.exc => {
                    let args = crate::exceptions::args_of(i);
                    out.push_str(&crate::exceptions::repr(&i.class.name, &args, names)?)
                }
                None => out.push_str(&format!("<{} object>", i.class.name)),
            },
            Value::Builtin(crate::ast::Builtin::NotImplemented) => out.push_str("NotImplemented"),
            Value::Builtin(b) if b.is_type() => out.push_str(&format!("<class '{}'>", b.name())),
            Value::Builtin(b) => out.push_str(&format!("<built-in function {}>", b.name())),
            Value::BuiltinMethod(m) => out.push_str(&format!(
                "<built-in method {} of {} object>",
                m.1,
                m.0.type_name()
            )),
            Value::Thread(_) => out.push_str("<Thread>"),
            Value::Lock(_) => out.push_str("<Lock>"),
            Value::Queue(_) => out.push_str("<TransactionQueue>"),
        }
        Ok(())
    }
}

/// Number of values in `range(a, b, s)`.
pub fn range_len(a: i64, b: i64, s: i64) -> i64 {
    let (a, b, s) = (a as i128, b as i128, s as i128);
    let n = if s > 0 {
        (b - a + s - 1) / s
    } else {
        (a - b - s - 1) / -s
    };
    n.max(0) as i64
}

/// Python's `repr` of a str: single quotes unless the text has `'` and no `"`; escapes for
/// backslash, the quote, `\n \r \t` and other non-printable characters.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if (c as u32) >= 0x80 && (c.is_control() || (c.is_whitespace() && c != ' ')) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// A number, when `v` is one (bools count as ints).
pub enum Num {
    Int(i64),
    /// An int outside the tagged range.
    Big(Arc<num_bigint::BigInt>),
    Float(f64),
}

/// `v` as a number, if it is an int, bool or float.
pub fn as_num(v: &Value) -> Option<Num> {
    match v {
        Value::Int(i) => Some(Num::Int(*i)),
        Value::BigInt(b) => Some(Num::Big(b.clone())),
        Value::Bool(b) => Some(Num::Int(*b as i64)),
        Value::Float(f) => Some(Num::Float(*f)),
        _ => None,
    }
}

/// Exact comparison of an int with a float (no rounding of the int), as Python does.
fn cmp_int_float(i: i64, f: f64) -> Option<std::cmp::Ordering> {
    use std::cmp::Ordering::*;
    if f.is_nan() {
        return None;
    }
    if f >= 9.3e18 {
        return Some(Less);
    }
    if f <= -9.3e18 {
        return Some(Greater);
    }
    let t = f.trunc();
    let ti = t as i64;
    Some(match i.cmp(&ti) {
        Equal => {
            if f > t {
                Less
            } else if f < t {
                Greater
            } else {
                Equal
            }
        }
        o => o,
    })
}

/// Numeric ordering of two numbers; `None` when a NaN is involved.
pub fn num_cmp(a: &Num, b: &Num) -> Option<std::cmp::Ordering> {
    match (a, b) {
        (Num::Int(x), Num::Int(y)) => Some(x.cmp(y)),
        (Num::Float(x), Num::Float(y)) => x.partial_cmp(y),
        (Num::Int(x), Num::Float(y)) => cmp_int_float(*x, *y),
        (Num::Float(x), Num::Int(y)) => cmp_int_float(*y, *x).map(|o| o.reverse()),
        (Num::Big(x), Num::Big(y)) => Some(x.cmp(y)),
        (Num::Big(x), Num::Int(y)) => Some((**x).cmp(&num_bigint::BigInt::from(*y))),
        (Num::Int(x), Num::Big(y)) => Some(num_bigint::BigInt::from(*x).cmp(y)),
        (Num::Big(x), Num::Float(y)) => crate::bigint::cmp_float(x, *y),
        (Num::Float(x), Num::Big(y)) => crate::bigint::cmp_float(y, *x).map(|o| o.reverse()),
    }
}

/// `a == b` with Python's rules (unlike types other than numbers are unequal).
pub fn equal(a: &Value, b: &Value) -> Result<bool, OpError> {
    equal_depth(a, b, 0)
}

/// `a != b`: an instance's `__ne__`, else the negation of `==`.
pub fn not_equal(a: &Value, b: &Value) -> Result<bool, OpError> {
    if let Some(r) = crate::special::compare(a, b, "__ne__") {
        return r;
    }
    Ok(!equal(a, b)?)
}

fn equal_depth(a: &Value, b: &Value, depth: usize) -> Result<bool, OpError> {
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return Ok(num_cmp(&x, &y) == Some(std::cmp::Ordering::Equal));
    }
    if let Some(r) = crate::special::compare(a, b, "__eq__") {
        return r;
    }
    Ok(match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => {
            if Arc::ptr_eq(x, y) {
                return Ok(true);
            }
            if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                return Err(too_deep(CMP));
            }
            let (xs, ys) = (x.snapshot(), y.snapshot());
            if xs.len() != ys.len() {
                return Ok(false);
            }
            // Items compare by identity first, as in Python (`[n] == [n]` for a NaN `n`).
            for (p, q) in xs.iter().zip(ys.iter()) {
                if !identical(p, q) && !equal_depth(p, q, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Tuple(x), Value::Tuple(y)) => {
            if Arc::ptr_eq(x, y) {
                return Ok(true);
            }
            if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                return Err(too_deep(CMP));
            }
            if x.items.len() != y.items.len() {
                return Ok(false);
            }
            for (p, q) in x.items.iter().zip(y.items.iter()) {
                if !identical(p, q) && !equal_depth(p, q, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Dict(x), Value::Dict(y)) => {
            if Arc::ptr_eq(x, y) {
                return Ok(true);
            }
            if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                return Err(too_deep(CMP));
            }
            let xs = lock(&x.map).items();
            let ym = lock(&y.map).clone();
            if xs.len() != ym.len() {
                return Ok(false);
            }
            for (k, v) in xs {
                let key = Key::of(&k)?;
                match ym.get(&key) {
                    Some(w) if identical(&v, w) || equal_depth(&v, w, depth + 1)? => {}
                    _ => return Ok(false),
                }
            }
            true
        }
        (Value::Set(x) | Value::FrozenSet(x), Value::Set(y) | Value::FrozenSet(y)) => {
            Arc::ptr_eq(x, y) || {
                let xm = lock(&x.map).clone();
                let ym = lock(&y.map).clone();
                xm.len() == ym.len() && set_subset(&xm, &ym)?
            }
        }
        (Value::Range(..) | Value::BigRange(_), Value::Range(..) | Value::BigRange(_)) => {
            crate::ranges::equal(a, b).unwrap_or(false)
        }
        // As CPython: as the tuples `(start, stop, step)`.
        (Value::Slice(x), Value::Slice(y)) => {
            for (p, q) in x.parts.iter().zip(y.parts.iter()) {
                if !identical(p, q) && !equal_depth(p, q, depth + 1)? {
                    return Ok(false);
                }
            }
            true
        }
        // As CPython: the same receiver (`is`) and the same function.
        (Value::BoundMethod(x), Value::BoundMethod(y)) => {
            identical(&x.0, &y.0) && Arc::ptr_eq(&x.1, &y.1)
        }
        (Value::BuiltinMethod(x), Value::BuiltinMethod(y)) => identical(&x.0, &y.0) && x.1 == y.1,
        _ => identical(a, b),
    })
}

/// `id(v)`: consistent with [`identical`] (`id(a) == id(b)` exactly when `a is b` while
/// both live), and the same numbers as the JIT's where they do not depend on an address.
/// Objects behind an `Arc` are numbered by its address (even, and never that of another
/// live object); the values `is` compares by what they hold are numbered by it, in ranges
/// no address reaches: None, False and True 0, 2 and 6, the empty tuple 4 (all below the
/// first page), an int `n` the odd `2n + 1` (negative ones too), a float `2**64` plus its
/// bits, a builtin function `2**65` plus which one, a str `2**66` plus a 64-bit SipHash of
/// its text ([`str_id`]: two different live strs share an id with probability 2**-64).
pub fn object_id(v: &Value) -> Value {
    crate::bigint::i128_value(identity_number(v))
}

/// The number [`object_id`] gives `v`.
pub fn identity_number(v: &Value) -> i128 {
    let addr = |p: *const u8| p as usize as i128;
    match v {
        Value::None => 0,
        Value::Bool(b) => {
            if *b {
                6
            } else {
                2
            }
        }
        Value::Int(n) => 2 * *n as i128 + 1,
        Value::Float(f) => (1i128 << 64) + f.to_bits() as i128,
        Value::Builtin(b) => {
            let k = crate::ast::Builtin::ALL
                .iter()
                .position(|x| x == b)
                .unwrap_or(0);
            (1i128 << 65) + k as i128
        }
        // Ranges are values here, identical when equal in all three parts (as
        // [`identical`]; LANGUAGE.md: their identity is unspecified): a number of those.
        Value::Range(a, b, s) => {
            use std::hash::{Hash, Hasher};
            // SipHash with fixed keys, as `str_id`.
            #[allow(deprecated)]
            let mut h = std::hash::SipHasher::new();
            (a, b, s).hash(&mut h);
            (1i128 << 80) + h.finish() as i128
        }
        Value::BigInt(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::BigRange(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Str(x) => str_id(x),
        Value::List(x) => addr(Arc::as_ptr(x) as *const u8),
        // Empty tuples are all one object (as in CPython).
        Value::Tuple(x) if x.items.is_empty() => 4,
        Value::Tuple(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Dict(x) | Value::Set(x) | Value::FrozenSet(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Function(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::BoundMethod(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Class(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Instance(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Slice(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::BuiltinMethod(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Thread(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Lock(x) => addr(Arc::as_ptr(x) as *const u8),
        Value::Queue(x) => addr(Arc::as_ptr(x) as *const u8),
    }
}

/// The id of a str (see [`object_id`]): strs are `is`-identical when equal.
pub fn str_id(s: &str) -> i128 {
    use std::hash::{Hash, Hasher};
    // SipHash with fixed keys: the same number in every run and thread.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new();
    s.hash(&mut h);
    (1i128 << 66) + h.finish() as i128
}

/// `a is b`: the same object. Immutable scalars are identical when equal and of the same type.
pub fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::None, Value::None) => true,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::BigInt(x), Value::BigInt(y)) => Arc::ptr_eq(x, y),
        (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
        (Value::Str(x), Value::Str(y)) => x == y,
        (Value::List(x), Value::List(y)) => Arc::ptr_eq(x, y),
        (Value::Tuple(x), Value::Tuple(y)) => {
            Arc::ptr_eq(x, y) || x.items.is_empty() && y.items.is_empty()
        }
        (Value::Dict(x), Value::Dict(y))
        | (Value::Set(x), Value::Set(y))
        | (Value::FrozenSet(x), Value::FrozenSet(y)) => Arc::ptr_eq(x, y),
        // Values here: the same three parts (LANGUAGE.md: unspecified identity).
        (Value::Range(a1, b1, s1), Value::Range(a2, b2, s2)) => (a1, b1, s1) == (a2, b2, s2),
        (Value::BigRange(x), Value::BigRange(y)) => Arc::ptr_eq(x, y),
        (Value::Slice(x), Value::Slice(y)) => Arc::ptr_eq(x, y),
        (Value::Function(x), Value::Function(y)) => Arc::ptr_eq(x, y),
        (Value::BoundMethod(x), Value::BoundMethod(y)) => Arc::ptr_eq(x, y),
        (Value::Class(x), Value::Class(y)) => Arc::ptr_eq(x, y),
        (Value::Instance(x), Value::Instance(y)) => Arc::ptr_eq(x, y),
        (Value::Builtin(x), Value::Builtin(y)) => x == y,
        (Value::BuiltinMethod(x), Value::BuiltinMethod(y)) => Arc::ptr_eq(x, y),
        (Value::Thread(x), Value::Thread(y)) => Arc::ptr_eq(x, y),
        (Value::Lock(x), Value::Lock(y)) => Arc::ptr_eq(x, y),
        (Value::Queue(x), Value::Queue(y)) => Arc::ptr_eq(x, y),
        _ => false,
    }
}

/// `a OP b` for an ordering operator (`<`, `<=`, `>`, `>=`) with Python's rules: numbers
/// numerically (false when a NaN is involved), strs by code point, lists and tuples
/// lexicographically (the first unequal items decide); other pairs are a `TypeError`.
pub fn order(a: &Value, b: &Value, op: CmpOp) -> Result<bool, OpError> {
    order_depth(a, b, op, 0)
}

fn order_depth(a: &Value, b: &Value, op: CmpOp, depth: usize) -> Result<bool, OpError> {
    use std::cmp::Ordering;
    let holds = |o: Option<Ordering>| match (o, op) {
        (None, _) => false,
        (Some(o), CmpOp::Lt) => o == Ordering::Less,
        (Some(o), CmpOp::Le) => o != Ordering::Greater,
        (Some(o), CmpOp::Gt) => o == Ordering::Greater,
        (Some(o), _) => o != Ordering::Less,
    };
    if let (Some(x), Some(y)) = (as_num(a), as_num(b)) {
        return Ok(holds(num_cmp(&x, &y)));
    }
    let special = match op {
        CmpOp::Lt => "__lt__",
        CmpOp::Le => "__le__",
        CmpOp::Gt => "__gt__",
        _ => "__ge__",
    };
    if let Some(r) = crate::special::compare(a, b, special) {
        return r;
    }
    match (a, b) {
        (Value::Str(x), Value::Str(y)) => Ok(holds(Some(x.cmp(y)))),
        // Sets are ordered by inclusion (a partial order).
        (Value::Set(x) | Value::FrozenSet(x), Value::Set(y) | Value::FrozenSet(y)) => {
            let xm = lock(&x.map).clone();
            let ym = lock(&y.map).clone();
            Ok(match op {
                CmpOp::Lt => xm.len() < ym.len() && set_subset(&xm, &ym)?,
                CmpOp::Le => set_subset(&xm, &ym)?,
                CmpOp::Gt => ym.len() < xm.len() && set_subset(&ym, &xm)?,
                _ => set_subset(&ym, &xm)?,
            })
        }
        (Value::List(x), Value::List(y)) => {
            if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                return Err(too_deep(CMP));
            }
            let (xs, ys) = (x.snapshot(), y.snapshot());
            order_items(&xs, &ys, op, depth)
        }
        (Value::Tuple(x), Value::Tuple(y)) => {
            if depth >= MAX_DATA_DEPTH || crate::stack::near_limit() {
                return Err(too_deep(CMP));
            }
            order_items(&x.items, &y.items, op, depth)
        }
        (Value::Slice(x), Value::Slice(y)) => order_items(&x.parts, &y.parts, op, depth),
        _ => Err((
            ErrorKind::TypeError,
            format!(
                "'{}' not supported between instances of '{}' and '{}'",
                op.text(),
                a.type_name(),
                b.type_name()
            ),
        )),
    }
}

/// Whether every member of set `x` is in set `y`.
pub fn set_subset(x: &Dict, y: &Dict) -> Result<bool, OpError> {
    if x.len() > y.len() {
        return Ok(false);
    }
    for k in x.keys() {
        if !y.holds(&k)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Lexicographic `xs OP ys` of two sequences' items: the first unequal pair decides, else
/// the lengths.
fn order_items(xs: &[Value], ys: &[Value], op: CmpOp, depth: usize) -> Result<bool, OpError> {
    for (p, q) in xs.iter().zip(ys.iter()) {
        if !identical(p, q) && !equal_depth(p, q, depth + 1)? {
            return order_depth(p, q, op, depth + 1);
        }
    }
    let o = xs.len().cmp(&ys.len());
    Ok(match op {
        CmpOp::Lt => o.is_lt(),
        CmpOp::Le => o.is_le(),
        CmpOp::Gt => o.is_gt(),
        _ => o.is_ge(),
    })
}
