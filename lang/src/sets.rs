//! Sets and frozensets over [`Value`]s: `set()`, `frozenset()`, the operators `| & - ^` (and their in-place forms), and the
//! set methods, shared by the reference interpreter and the JIT's runtime (which runs the
//! non-mutating ones on converted values and the mutating ones natively on its heap sets).
//!
//! A set is a [`Dict`] whose keys are its members (values `None`), so its order is insertion
//! order, where CPython's is the order of its hash table (for small ints often ascending):
//! LANGUAGE.md says so, and programs print `sorted(s)` where order matters. Results keep
//! a stable order: `a | b` is `a`'s members then `b`'s new ones, `a & b` and `a - b` keep
//! `a`'s order, `a ^ b` is `a`'s members not in `b`, then `b`'s not in `a`.

use crate::ast::{BinOp, FuncId};
use crate::builtins_core::method_arity;
use crate::diag::ErrorKind::*;
use crate::ops;
use crate::value::*;

type R<T> = Result<T, OpError>;

/// The methods of sets.
pub const SET_METHODS: &[&str] = &[
    "add",
    "remove",
    "discard",
    "pop",
    "clear",
    "update",
    "copy",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
    "intersection_update",
    "difference_update",
    "symmetric_difference_update",
];

/// The methods of frozensets: those of sets that do not change it.
pub const FROZENSET_METHODS: &[&str] = &[
    "copy",
    "union",
    "intersection",
    "difference",
    "symmetric_difference",
    "issubset",
    "issuperset",
    "isdisjoint",
];

/// The members of any iterable, as a set's map (each hashable, or a `TypeError`).
pub fn members_of(v: &Value) -> R<Dict> {
    if let Value::Set(d) | Value::FrozenSet(d) = v {
        return Ok(lock(&d.map).clone());
    }
    let mut map = Dict::default();
    for x in ops::iterate(v)? {
        map.insert(map.key_for(&x)?, x, Value::None);
    }
    Ok(map)
}

/// A new set value whose members are the keys of `map`.
pub fn set_value(map: Dict) -> Value {
    Value::Set(std::sync::Arc::new(DictObj {
        map: std::sync::Mutex::new(map),
    }))
}

/// A new frozenset value whose members are the keys of `map`.
pub fn frozenset_value(map: Dict) -> Value {
    Value::FrozenSet(std::sync::Arc::new(DictObj {
        map: std::sync::Mutex::new(map),
    }))
}

fn key(v: &Value) -> Key {
    Key::of_stored(v).expect("a set's member is hashable")
}

/// `a OP b` for two sets' members, `OP` one of `| & - ^` (members are found in the other
/// set by `==` where they define `__hash__`: their `__eq__` may run, and fail).
pub fn combine(op: BinOp, a: &Dict, b: &Dict) -> R<Dict> {
    let mut out = Dict::default();
    match op {
        BinOp::BitOr => {
            out = a.clone();
            for k in b.keys() {
                let kk = out.key_for_stored(&k)?;
                if !out.contains(&kk) {
                    out.insert(kk, k, Value::None);
                }
            }
        }
        BinOp::BitAnd => {
            for k in a.keys() {
                if b.holds(&k)? {
                    out.insert(key(&k), k, Value::None);
                }
            }
        }
        BinOp::Sub => {
            for k in a.keys() {
                if !b.holds(&k)? {
                    out.insert(key(&k), k, Value::None);
                }
            }
        }
        _ => {
            for k in a.keys() {
                if !b.holds(&k)? {
                    out.insert(key(&k), k, Value::None);
                }
            }
            for k in b.keys() {
                if !a.holds(&k)? {
                    out.insert(key(&k), k, Value::None);
                }
            }
        }
    }
    Ok(out)
}

/// `a OP b` when both are sets or frozensets and `OP` is a set operator (the result has
/// `a`'s type, as in Python); `None` otherwise.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Option<R<Value>> {
    match (op, a, b) {
        (
            BinOp::BitOr | BinOp::BitAnd | BinOp::Sub | BinOp::BitXor,
            Value::Set(x) | Value::FrozenSet(x),
            Value::Set(y) | Value::FrozenSet(y),
        ) => {
            // Both maps are copied first: `s | s` must not lock one mutex twice.
            let xm = lock(&x.map).clone();
            let ym = lock(&y.map).clone();
            Some(combine(op, &xm, &ym).map(|r| {
                if matches!(a, Value::Set(_)) {
                    set_value(r)
                } else {
                    frozenset_value(r)
                }
            }))
        }
        _ => None,
    }
}

/// Replaces the members of set `d` by `new`: members not in `new` are removed (the others
/// keep their place), then `new`'s other members are added in its order. What the in-place
/// operators and `*_update` methods do, here and (natively) in the JIT's runtime.
pub fn assign(d: &DictObj, new: &Dict) {
    let mut map = lock(&d.map);
    for k in map.keys() {
        let kk = key(&k);
        if !new.contains(&kk) {
            map.remove(&kk);
        }
    }
    for k in new.keys() {
        let kk = key(&k);
        if !map.contains(&kk) {
            map.insert(kk, k, Value::None);
        }
    }
}

/// `s OP= rhs` for a set `s`: in place, as in Python (`rhs` must be a set too). `None` when
/// `s` is not a set or `OP` not a set operator.
pub fn inplace(op: BinOp, s: &Value, rhs: &Value) -> Option<R<Value>> {
    let Value::Set(d) = s else { return None };
    if !matches!(
        op,
        BinOp::BitOr | BinOp::BitAnd | BinOp::Sub | BinOp::BitXor
    ) {
        return None;
    }
    let (Value::Set(other) | Value::FrozenSet(other)) = rhs else {
        return Some(Err((
            TypeError,
            format!(
                "unsupported operand type(s) for {}: 'set' and '{}'",
                op.aug_text(),
                rhs.type_name()
            ),
        )));
    };
    let cur = lock(&d.map).clone();
    let ym = lock(&other.map).clone();
    Some(combine(op, &cur, &ym).map(|new| {
        assign(d, &new);
        s.clone()
    }))
}

/// `frozenset()`, `frozenset(iterable)`.
pub fn frozenset_builtin(args: &[Value]) -> R<Value> {
    if args.len() > 1 {
        return Err((
            TypeError,
            format!("frozenset expected at most 1 argument, got {}", args.len()),
        ));
    }
    Ok(frozenset_value(match args.first() {
        None => Dict::default(),
        Some(v) => members_of(v)?,
    }))
}

/// `fs.name(args)` for a frozenset whose members are `d` (`name` one of
/// [`FROZENSET_METHODS`]): the set method on a copy, its result a frozenset.
pub fn frozenset_method(
    d: &DictObj,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(FuncId) -> String,
) -> R<Value> {
    let copy = DictObj {
        map: std::sync::Mutex::new(lock(&d.map).clone()),
    };
    Ok(match set_method(&copy, name, args, names)? {
        Value::Set(r) => frozenset_value(lock(&r.map).clone()),
        other => other,
    })
}

/// `set()`, `set(iterable)`.
pub fn set_builtin(args: &[Value]) -> R<Value> {
    if args.len() > 1 {
        return Err((
            TypeError,
            format!("set expected at most 1 argument, got {}", args.len()),
        ));
    }
    Ok(set_value(match args.first() {
        None => Dict::default(),
        Some(v) => members_of(v)?,
    }))
}

/// CPython's arity check of a one-argument method (`set.add() takes exactly one argument`).
fn one_arg(name: &str, args: &[Value]) -> R<()> {
    if args.len() != 1 {
        return Err((
            TypeError,
            format!(
                "set.{name}() takes exactly one argument ({} given)",
                args.len()
            ),
        ));
    }
    Ok(())
}

/// The operator a `*_update` method or a set-returning method applies.
fn method_op(name: &str) -> Option<BinOp> {
    Some(match name {
        "union" | "update" => BinOp::BitOr,
        "intersection" | "intersection_update" => BinOp::BitAnd,
        "difference" | "difference_update" => BinOp::Sub,
        "symmetric_difference" | "symmetric_difference_update" => BinOp::BitXor,
        _ => return None,
    })
}

/// `s.name(args)` for the set `s` whose members are `d`.
pub fn set_method(
    d: &DictObj,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(FuncId) -> String,
) -> R<Value> {
    let t = "set";
    let missing = |v: &Value| -> OpError { (KeyError, v.repr(names).unwrap_or_default()) };
    match name {
        "add" => {
            one_arg(name, &args)?;
            let k = crate::value::key_in(&d.map, &args[0])?;
            let mut map = lock(&d.map);
            if !map.contains(&k) {
                map.insert(k, args[0].clone(), Value::None);
            }
            Ok(Value::None)
        }
        "remove" | "discard" => {
            one_arg(name, &args)?;
            let k = crate::value::key_in(&d.map, &args[0])?;
            let removed = lock(&d.map).remove(&k);
            if removed.is_none() && name == "remove" {
                return Err(missing(&args[0]));
            }
            Ok(Value::None)
        }
        "pop" => {
            method_arity(t, name, &args, 0, 0)?;
            let mut map = lock(&d.map);
            let Some(first) = map.keys().into_iter().next() else {
                return Err((KeyError, "'pop from an empty set'".into()));
            };
            map.remove(&key(&first));
            Ok(first)
        }
        "clear" => {
            method_arity(t, name, &args, 0, 0)?;
            *lock(&d.map) = Dict::default();
            Ok(Value::None)
        }
        "copy" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(set_value(lock(&d.map).clone()))
        }
        "issubset" | "issuperset" | "isdisjoint" => {
            one_arg(name, &args)?;
            let other = members_of(&args[0])?;
            let me = lock(&d.map).clone();
            Ok(Value::Bool(match name {
                "issubset" => set_subset(&me, &other)?,
                "issuperset" => set_subset(&other, &me)?,
                _ => combine(BinOp::BitAnd, &me, &other)?.is_empty(),
            }))
        }
        "symmetric_difference" | "symmetric_difference_update" => {
            one_arg(name, &args)?;
            apply(d, name, &args)
        }
        _ if method_op(name).is_some() => apply(d, name, &args),
        _ => Err((
            AttributeError,
            format!("'set' object has no attribute '{name}'"),
        )),
    }
}

/// The set-combining methods: `union(*its)` and friends make a new set, the `*_update` ones
/// (and `update`) change `d` in place.
fn apply(d: &DictObj, name: &str, args: &[Value]) -> R<Value> {
    let op = method_op(name).expect("a combining method");
    let mut acc = lock(&d.map).clone();
    for a in args {
        acc = combine(op, &acc, &members_of(a)?)?;
    }
    if name == "update" || name.ends_with("_update") {
        assign(d, &acc);
        return Ok(Value::None);
    }
    Ok(set_value(acc))
}
