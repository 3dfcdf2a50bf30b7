//! Tuples and the builtins that build sequences from iterables: `tuple`, `enumerate`, `zip`,
//! `reversed`, `divmod`, the `tuple` methods, unpacking (`a, b = v`) and the hash of a tuple.
//! Shared by the reference interpreter and the JIT's runtime, like [`crate::builtins_core`].
//! `map` and `filter` call functions, so each runner does them itself, with
//! [`map_filter_items`] shared.
//!
//! `enumerate`, `zip`, `reversed`, `map` and `filter` give lists (CPython: one-shot
//! iterators): iterating them, `list()` of them and unpacking them give CPython's results.

use crate::ast::BinOp;
use crate::builtins_core::{arity, int_arg, method_arity, R};
use crate::diag::ErrorKind::*;
use crate::ops;
use crate::value::*;

fn exc(kind: crate::diag::ErrorKind, msg: impl Into<String>) -> OpError {
    (kind, msg.into())
}

/// The methods of tuples.
pub const TUPLE_METHODS: &[&str] = &["count", "index"];

/// The `n` items that `t1, ..., tn = v` stores, with CPython's errors.
pub fn unpack(v: &Value, n: usize) -> R<Vec<Value>> {
    let items = match v {
        Value::Tuple(t) => t.items.clone(),
        Value::Range(a, b, s) => {
            let len = range_len(*a, *b, *s);
            if len as u64 > n as u64 {
                return Err(too_many(n));
            }
            ops::iterate(v)?
        }
        Value::BigRange(r) => {
            if r.len() > num_bigint::BigInt::from(n) {
                return Err(too_many(n));
            }
            r.items()?
        }
        Value::List(_) | Value::Str(_) | Value::Dict(_) | Value::Set(_) | Value::FrozenSet(_) => {
            ops::iterate(v)?
        }
        Value::Instance(_) if crate::special::iterable(v) => {
            crate::special::unpack(v, n).expect("an instance")?
        }
        other => return Err(not_unpackable(other)),
    };
    check_unpack_len(items.len(), n)?;
    Ok(items)
}

/// The `before + 1 + after` values that `t1, ..., *ts, ..., tn = v` stores (`before`
/// targets before the starred one, `after` after it): the starred target gets a new list of
/// the items between, as in CPython, which also gives the errors.
pub fn unpack_starred(v: &Value, before: usize, after: usize) -> R<Vec<Value>> {
    if !ops::is_iterable(v) {
        return Err(not_unpackable(v));
    }
    let mut items = ops::iterate(v)?;
    let n = before + after;
    if items.len() < n {
        return Err(exc(
            ValueError,
            format!(
                "not enough values to unpack (expected at least {n}, got {})",
                items.len()
            ),
        ));
    }
    let tail = items.split_off(items.len() - after);
    let middle = items.split_off(before);
    items.push(ListObj::new_value(middle));
    items.extend(tail);
    Ok(items)
}

fn not_unpackable(v: &Value) -> OpError {
    exc(
        TypeError,
        format!("cannot unpack non-iterable {} object", v.type_name()),
    )
}

fn too_many(n: usize) -> OpError {
    exc(
        ValueError,
        format!("too many values to unpack (expected {n})"),
    )
}

/// The error of unpacking `got` items into `n` targets, if they differ.
pub fn check_unpack_len(got: usize, n: usize) -> R<()> {
    if got > n {
        return Err(too_many(n));
    }
    if got < n {
        return Err(exc(
            ValueError,
            format!("not enough values to unpack (expected {n}, got {got})"),
        ));
    }
    Ok(())
}

/// `tuple()` and `tuple(xs)`.
pub fn tuple(args: &[Value]) -> R<Value> {
    arity("tuple", args, 0, 1)?;
    Ok(match args.first() {
        None => TupleObj::new_value(Vec::new()),
        Some(Value::Tuple(t)) => Value::Tuple(t.clone()),
        Some(v) => TupleObj::new_value(ops::iterate(v)?),
    })
}

/// `dict()`, `dict(mapping)` (a copy) and `dict(pairs)` (an iterable of 2-item iterables),
/// with CPython's errors for a bad pair.
pub fn dict(args: &[Value]) -> R<Value> {
    arity("dict", args, 0, 1)?;
    let mut map = crate::value::Dict::default();
    if let Some(source) = args.first() {
        for (k, v) in update_items(source)? {
            map.insert(map.key_for(&k)?, k, v);
        }
    }
    Ok(crate::value::DictObj::new_value(map))
}

/// The key/value pairs that `dict(source)`, `d.update(source)` and `d |= source` add: a
/// dict's items, or the 2-item iterables of an iterable, with CPython's errors for a bad
/// pair. Collected before any is added, so a dict may update itself.
pub fn update_items(source: &Value) -> R<Vec<(Value, Value)>> {
    if let Value::Dict(d) = source {
        return Ok(crate::value::lock(&d.map).items());
    }
    let items = ops::iterate(source)?;
    items
        .iter()
        .enumerate()
        .map(|(i, item)| update_pair(i, item))
        .collect()
}

/// Element `i` of a sequence of pairs, as a `(key, value)` pair, or CPython's error.
fn update_pair(i: usize, item: &Value) -> R<(Value, Value)> {
    let pair = ops::iterate(item).map_err(|_| {
        exc(
            TypeError,
            format!("cannot convert dictionary update sequence element #{i} to a sequence"),
        )
    })?;
    let [k, v]: [Value; 2] = pair.try_into().map_err(|p: Vec<Value>| {
        exc(
            ValueError,
            format!(
                "dictionary update sequence element #{i} has length {}; 2 is required",
                p.len()
            ),
        )
    })?;
    Ok((k, v))
}

/// `d.update(source)` and `d |= source`: adds `source`'s pairs ([`update_items`]) to `d`,
/// one by one: the pairs before a bad one stay added, as in CPython.
pub fn dict_update(d: &crate::value::DictObj, source: &Value) -> R<()> {
    let set = |k: Value, v: Value| {
        let kk = crate::value::key_in(&d.map, &k)?;
        crate::value::lock(&d.map).insert(kk, k, v);
        Ok(())
    };
    if let Value::Dict(_) = source {
        return update_items(source)?
            .into_iter()
            .try_for_each(|(k, v)| set(k, v));
    }
    let items = ops::iterate(source)?;
    for (i, item) in items.iter().enumerate() {
        let (k, v) = update_pair(i, item)?;
        set(k, v)?;
    }
    Ok(())
}

/// `a | b` of two dicts: a new dict of `a`'s items, then `b`'s (`b` wins on a shared key).
pub fn dict_union(a: &crate::value::DictObj, b: &crate::value::DictObj) -> R<Value> {
    let mut map = crate::value::lock(&a.map).clone();
    for (k, v) in crate::value::lock(&b.map).items() {
        map.insert(map.key_for(&k)?, k, v);
    }
    Ok(crate::value::DictObj::new_value(map))
}

/// `enumerate(xs[, start])`: a list of `(index, item)` tuples.
pub fn enumerate(args: &[Value]) -> R<Value> {
    arity("enumerate", args, 1, 2)?;
    // A start of any size (`enumerate(xs, 2**64)`), as CPython's.
    let start: num_bigint::BigInt = match args.get(1) {
        None => 0.into(),
        Some(v @ Value::BigInt(_)) => crate::bigint::as_big(v).expect("a big int"),
        Some(v) => int_arg(v)?.into(),
    };
    let items = ops::iterate(&args[0])?;
    let mut out = Vec::with_capacity(items.len());
    for (k, x) in items.into_iter().enumerate() {
        let i = crate::bigint::big_value(&start + k);
        out.push(TupleObj::new_value(vec![i, x]));
    }
    Ok(ListObj::new_value(out))
}

/// `zip(a, b, ...)`: a list of tuples, as long as the shortest argument.
pub fn zip(args: &[Value]) -> R<Value> {
    // A range gives only the items the shortest other argument pairs it with, so that
    // `zip(range(10**20), xs)` does not list the whole range.
    let mut columns: Vec<Option<Vec<Value>>> = args
        .iter()
        .map(|a| match a {
            Value::Range(..) | Value::BigRange(_) => Ok(None),
            a => ops::iterate(a).map(Some),
        })
        .collect::<R<_>>()?;
    let shortest = columns.iter().flatten().map(Vec::len).min();
    for (c, a) in columns.iter_mut().zip(args) {
        if let Some(r) = crate::ranges::of(a).filter(|_| c.is_none()) {
            *c = Some(r.first_items(shortest.map_or_else(|| r.len(), |n| n.into()))?);
        }
    }
    let columns: Vec<Vec<Value>> = columns.into_iter().flatten().collect();
    let n = columns.iter().map(Vec::len).min().unwrap_or(0);
    let mut its: Vec<_> = columns.into_iter().map(Vec::into_iter).collect();
    let rows = (0..n)
        .map(|_| TupleObj::new_value(its.iter_mut().filter_map(Iterator::next).collect()))
        .collect();
    Ok(ListObj::new_value(rows))
}

/// `reversed(seq)`: a list of the items of a list, tuple, str, range or dict (its keys),
/// last first.
pub fn reversed(args: &[Value]) -> R<Value> {
    arity("reversed", args, 1, 1)?;
    match &args[0] {
        Value::List(_) | Value::Tuple(_) | Value::Str(_) | Value::Range(..) | Value::Dict(_) => {
            let mut items = ops::iterate(&args[0])?;
            items.reverse();
            Ok(ListObj::new_value(items))
        }
        Value::BigRange(r) => Ok(r.reversed()),
        other => Err(exc(
            TypeError,
            format!("'{}' object is not reversible", other.type_name()),
        )),
    }
}

/// `divmod(a, b)`: `(a // b, a % b)`.
pub fn divmod(args: &[Value]) -> R<Value> {
    arity("divmod", args, 2, 2)?;
    let (a, b) = (&args[0], &args[1]);
    match (as_num(a), as_num(b)) {
        (Some(x), Some(y)) => {
            let zero = match y {
                Num::Int(i) => i == 0,
                Num::Big(_) => false,
                Num::Float(f) => f == 0.0,
            };
            if zero {
                let msg = if matches!(x, Num::Float(_)) || matches!(y, Num::Float(_)) {
                    "float divmod()"
                } else {
                    "integer division or modulo by zero"
                };
                return Err(exc(ZeroDivisionError, msg));
            }
            let q = ops::binary(BinOp::FloorDiv, a, b)?;
            let r = ops::binary(BinOp::Mod, a, b)?;
            Ok(TupleObj::new_value(vec![q, r]))
        }
        _ => Err(exc(
            TypeError,
            format!(
                "unsupported operand type(s) for divmod(): '{}' and '{}'",
                a.type_name(),
                b.type_name()
            ),
        )),
    }
}

/// The argument lists of the calls `map(f, a, b, ...)` makes (`[a[i], b[i], ...]`, as
/// many as the shortest iterable has items), or of those `filter(f, xs)` makes (`[x]`).
pub fn map_filter_items(name: &str, args: &[Value]) -> R<Vec<Vec<Value>>> {
    if name == "filter" {
        arity(name, args, 2, 2)?;
        return Ok(ops::iterate(&args[1])?
            .into_iter()
            .map(|x| vec![x])
            .collect());
    }
    if args.len() < 2 {
        return Err(exc(TypeError, "map() must have at least two arguments."));
    }
    let columns: Vec<Vec<Value>> = args[1..].iter().map(ops::iterate).collect::<R<_>>()?;
    let n = columns.iter().map(Vec::len).min().unwrap_or(0);
    Ok((0..n)
        .map(|i| columns.iter().map(|c| c[i].clone()).collect())
        .collect())
}

/// `t.count(x)` and `t.index(x)` for the tuple `t`.
pub fn tuple_method(t: &TupleObj, name: &str, args: &[Value]) -> R<Value> {
    let ty = "tuple";
    match name {
        "count" => {
            method_arity(ty, name, args, 1, 1)?;
            let mut n = 0;
            for v in &t.items {
                if identical(v, &args[0]) || equal(v, &args[0])? {
                    n += 1;
                }
            }
            Ok(Value::Int(n))
        }
        "index" => {
            method_arity(ty, name, args, 1, 3)?;
            match position_in(&t.items, args)? {
                Some(i) => Ok(Value::Int(i as i64)),
                None => Err(exc(ValueError, "tuple.index(x): x not in tuple")),
            }
        }
        _ => Err(exc(
            AttributeError,
            format!("'tuple' object has no attribute '{name}'"),
        )),
    }
}

/// `seq.index(x[, start[, stop]])` of a list or tuple whose items are `items`: the first
/// position of `args[0]` between `start` and `stop`, which are clamped as a slice's (a
/// negative one counts from the end; big ints and `__index__` accepted), as in CPython.
pub fn position_in(items: &[Value], args: &[Value]) -> Result<Option<usize>, OpError> {
    let none = Value::None;
    let bound = |k: usize| args.get(k).unwrap_or(&none);
    let (start, stop, _) = crate::slices::unpack(bound(1), bound(2), &none)?;
    let p = crate::slices::Positions::adjust((start, stop, 1), items.len());
    for (i, v) in items
        .iter()
        .enumerate()
        .skip(p.start as usize)
        .take(p.count)
    {
        if identical(v, &args[0]) || equal(v, &args[0])? {
            return Ok(Some(i));
        }
    }
    Ok(None)
}

/// CPython's hash of a tuple whose items hash to `items` (its xxHash-based combination), so
/// that `hash((1, 2))` is CPython's value.
pub fn hash_tuple(items: &[i64]) -> i64 {
    const P1: u64 = 11_400_714_785_074_694_791;
    const P2: u64 = 14_029_467_366_897_019_727;
    const P5: u64 = 2_870_177_450_012_600_261;
    let mut acc = P5;
    for &h in items {
        acc = acc.wrapping_add((h as u64).wrapping_mul(P2));
        acc = acc.rotate_left(31);
        acc = acc.wrapping_mul(P1);
    }
    acc = acc.wrapping_add(items.len() as u64 ^ (P5 ^ 3_527_539));
    if acc == u64::MAX {
        return 1_546_275_796;
    }
    acc as i64
}
