//! Arithmetic, unary operators, indexing, slicing and membership on values, with the exact
//! semantics of LANGUAGE.md: ints of any size (`bigint.rs` beyond 63 bits), Python's floor division and
//! modulo, int/float mixing, str and list concatenation and repetition.

use crate::ast::{BinOp, UnaryOp};
use crate::diag::ErrorKind::{self, *};
use crate::value::*;
use std::sync::Arc;

/// Smallest int.
pub const INT_MIN: i64 = -(1 << 62);
/// Largest int.
pub const INT_MAX: i64 = (1 << 62) - 1;
/// Largest str or list a repetition or concatenation may build (elements or bytes).
pub const MAX_SEQUENCE: usize = 1 << 32;

fn err<T>(kind: ErrorKind, msg: impl Into<String>) -> Result<T, OpError> {
    Err((kind, msg.into()))
}

/// The int `v` (tagged or big); `None` (an i128 overflow) is a `MemoryError`.
pub fn int_result(v: Option<i128>) -> Result<Value, OpError> {
    match v {
        Some(v) => Ok(crate::bigint::i128_value(v)),
        None => err(MemoryError, "int too large"),
    }
}

fn unsupported(op: BinOp, a: &Value, b: &Value) -> OpError {
    (
        TypeError,
        format!(
            "unsupported operand type(s) for {}: '{}' and '{}'",
            op.text(),
            a.type_name(),
            b.type_name()
        ),
    )
}

/// `a op= b` where `a` has no in-place form of `op`: `a op b`, but an unsupported-operand
/// TypeError names `op=`, as CPython's does.
pub fn binary_inplace(op: BinOp, a: &Value, b: &Value) -> Result<Value, OpError> {
    binary(op, a, b).map_err(|e| inplace_error(op, e))
}

/// The error `a op b` raised, as `a op= b` raises it: an unsupported-operand TypeError names
/// `op=`; any other error is unchanged.
pub fn inplace_error(op: BinOp, (kind, msg): OpError) -> OpError {
    let binary = format!("unsupported operand type(s) for {}:", op.text());
    match msg.strip_prefix(&binary) {
        Some(rest) if kind == TypeError => (
            kind,
            format!("unsupported operand type(s) for {}:{rest}", op.aug_text()),
        ),
        _ => (kind, msg),
    }
}

/// `a op b`.
pub fn binary(op: BinOp, a: &Value, b: &Value) -> Result<Value, OpError> {
    if let (Value::Bool(x), Value::Bool(y)) = (a, b) {
        match op {
            BinOp::BitAnd => return Ok(Value::Bool(*x & *y)),
            BinOp::BitOr => return Ok(Value::Bool(*x | *y)),
            BinOp::BitXor => return Ok(Value::Bool(*x ^ *y)),
            _ => {}
        }
    }
    match (as_num(a), as_num(b)) {
        (Some(Num::Int(x)), Some(Num::Int(y))) => return int_op(op, x, y, a, b),
        (Some(x @ (Num::Int(_) | Num::Big(_))), Some(y @ (Num::Int(_) | Num::Big(_)))) => {
            // The big operands are borrowed, not copied.
            let small = |n: &Num| match n {
                Num::Int(i) => Some(num_bigint::BigInt::from(*i)),
                _ => None,
            };
            let (sx, sy) = (small(&x), small(&y));
            let rx = match (&x, &sx) {
                (Num::Big(b), _) => &**b,
                (_, Some(s)) => s,
                _ => unreachable!("an int"),
            };
            let ry = match (&y, &sy) {
                (Num::Big(b), _) => &**b,
                (_, Some(s)) => s,
                _ => unreachable!("an int"),
            };
            return crate::bigint::binary(op, rx, ry);
        }
        (Some(x), Some(y)) => {
            let f = |n: Num| match n {
                Num::Int(i) => Ok(i as f64),
                Num::Big(b) => crate::bigint::to_f64(&b),
                Num::Float(f) => Ok(f),
            };
            return float_op(op, f(x)?, f(y)?, a, b);
        }
        _ => {}
    }
    if let Some(r) = crate::sets::binary(op, a, b) {
        return r;
    }
    if let Some(r) = crate::special::binary(op, a, b) {
        return r;
    }
    match (op, a, b) {
        (BinOp::BitOr, Value::Dict(x), Value::Dict(y)) => crate::builtins_seq::dict_union(x, y),
        (BinOp::Mod, Value::Str(template), v) => {
            Ok(Value::str(crate::format::percent(template, v)?))
        }
        (BinOp::Add, Value::Str(x), Value::Str(y)) => {
            if x.len() + y.len() > MAX_SEQUENCE {
                return err(MemoryError, "str too large");
            }
            Ok(Value::str(format!("{x}{y}")))
        }
        (BinOp::Add, Value::Str(_), _) => err(
            TypeError,
            format!(
                "can only concatenate str (not \"{}\") to str",
                b.type_name()
            ),
        ),
        (BinOp::Add, Value::List(x), Value::List(y)) => {
            if lock(&x.items).len() + lock(&y.items).len() > MAX_SEQUENCE {
                return err(MemoryError, "list too large");
            }
            let mut items = x.snapshot();
            items.extend(y.snapshot());
            Ok(ListObj::new_value(items))
        }
        (BinOp::Add, Value::List(_), _) => err(
            TypeError,
            format!(
                "can only concatenate list (not \"{}\") to list",
                b.type_name()
            ),
        ),
        (BinOp::Add, Value::Tuple(x), Value::Tuple(y)) => {
            if x.items.len() + y.items.len() > MAX_SEQUENCE {
                return err(MemoryError, "tuple too large");
            }
            let mut items = x.items.clone();
            items.extend(y.items.iter().cloned());
            Ok(TupleObj::new_value(items))
        }
        (BinOp::Add, Value::Tuple(_), _) => err(
            TypeError,
            format!(
                "can only concatenate tuple (not \"{}\") to tuple",
                b.type_name()
            ),
        ),
        (BinOp::Mul, Value::Tuple(t), n) | (BinOp::Mul, n, Value::Tuple(t))
            if matches!(n, Value::Int(_) | Value::Bool(_) | Value::BigInt(_)) =>
        {
            let count = repeat_count(n, t.items.len())?;
            Ok(TupleObj::new_value(repeat_items(&t.items, count)?))
        }
        (BinOp::Mul, Value::Str(s), n) | (BinOp::Mul, n, Value::Str(s))
            if matches!(n, Value::Int(_) | Value::Bool(_) | Value::BigInt(_)) =>
        {
            let count = str_repeat_count(n, s.len())?;
            let mut out = String::new();
            if out
                .try_reserve_exact(s.len().saturating_mul(count))
                .is_err()
            {
                return err(MemoryError, "sequence too large");
            }
            for _ in 0..count {
                out.push_str(s);
            }
            Ok(Value::str(out))
        }
        (BinOp::Mul, Value::List(l), n) | (BinOp::Mul, n, Value::List(l))
            if matches!(n, Value::Int(_) | Value::Bool(_) | Value::BigInt(_)) =>
        {
            let items = l.snapshot();
            let count = repeat_count(n, items.len())?;
            Ok(ListObj::new_value(repeat_items(&items, count)?))
        }
        _ => repeat_by_index(op, a, b).unwrap_or_else(|| Err(unsupported(op, a, b))),
    }
}

/// `seq * n` or `n * seq` where `n` is no int (and no special method took it): the count
/// an instance's `__index__` gives (CPython's sequence repeat), else CPython's `TypeError`;
/// `None` when neither operand is a sequence.
fn repeat_by_index(op: BinOp, a: &Value, b: &Value) -> Option<Result<Value, OpError>> {
    use std::borrow::Cow;
    let seq = |v: &Value| matches!(v, Value::Str(_) | Value::List(_) | Value::Tuple(_));
    let (s, n) = match op {
        BinOp::Mul if seq(a) => (a, b),
        BinOp::Mul if seq(b) => (b, a),
        _ => return None,
    };
    Some(match crate::special::index_of(n) {
        Err(e) => Err(e),
        // CPython names the type of the operand, not of what its `__index__` gave.
        Ok(Cow::Owned(Value::BigInt(b))) if num_traits::ToPrimitive::to_i64(&*b).is_none() => {
            err(OverflowError, not_index_sized(n))
        }
        Ok(Cow::Owned(count)) => binary(op, s, &count),
        Ok(Cow::Borrowed(_)) => err(
            TypeError,
            format!(
                "can't multiply sequence by non-int of type '{}'",
                n.type_name()
            ),
        ),
    })
}

/// CPython's message for an int index `v` (or what its `__index__` gave) beyond an `i64`.
fn not_index_sized(v: &Value) -> String {
    format!("cannot fit '{}' into an index-sized integer", v.type_name())
}

/// How many times to repeat a sequence of `len` items for `seq * n`: negative counts as 0, and
/// an empty sequence needs no repeating (whatever the count).
pub fn repeat_count(n: &Value, len: usize) -> Result<usize, OpError> {
    let n = repeat_factor(n)?;
    if len == 0 {
        return Ok(0);
    }
    let n = n.max(0) as u128;
    if n * len as u128 > MAX_SEQUENCE as u128 {
        return err(MemoryError, "sequence too large");
    }
    Ok(n as usize)
}

/// The count `n` of `seq * n` as CPython's `Py_ssize_t`: a big int past 2**62 but within 64
/// bits is a count like any other, beyond them an `OverflowError`.
fn repeat_factor(n: &Value) -> Result<i64, OpError> {
    Ok(match n {
        Value::Int(i) => *i,
        Value::Bool(b) => *b as i64,
        Value::BigInt(b) => match num_traits::ToPrimitive::to_i64(&**b) {
            Some(i) => i,
            None => return err(OverflowError, not_index_sized(n)),
        },
        _ => 0,
    })
}

/// [`repeat_count`] for a str of `len` bytes, with CPython's `OverflowError` where the
/// result's length would not fit 64 bits (before any `MemoryError`).
fn str_repeat_count(n: &Value, len: usize) -> Result<usize, OpError> {
    if repeat_factor(n)?.max(0) as i128 * len as i128 > i64::MAX as i128 {
        return err(OverflowError, "repeated string is too long");
    }
    repeat_count(n, len)
}

/// `items` repeated `count` times; a `MemoryError` when the memory cannot be had (never an
/// abort of the process).
pub fn repeat_items(items: &[Value], count: usize) -> Result<Vec<Value>, OpError> {
    let total = items.len().saturating_mul(count);
    let mut out = Vec::new();
    if out.try_reserve_exact(total).is_err() {
        return err(MemoryError, "sequence too large");
    }
    for _ in 0..count {
        out.extend_from_slice(items);
    }
    Ok(out)
}

fn int_op(op: BinOp, x: i64, y: i64, a: &Value, b: &Value) -> Result<Value, OpError> {
    let (x1, y1) = (x as i128, y as i128);
    match op {
        BinOp::Add => int_result(Some(x1 + y1)),
        BinOp::Sub => int_result(Some(x1 - y1)),
        BinOp::Mul => int_result(Some(x1 * y1)),
        BinOp::Div => {
            if y == 0 {
                return err(ZeroDivisionError, "division by zero");
            }
            Ok(Value::Float(int_true_div(x, y)))
        }
        BinOp::FloorDiv => {
            if y == 0 {
                return err(ZeroDivisionError, "integer division or modulo by zero");
            }
            int_result(Some(floor_div(x1, y1)))
        }
        BinOp::Mod => {
            if y == 0 {
                return err(ZeroDivisionError, "integer modulo by zero");
            }
            int_result(Some(x1 - floor_div(x1, y1) * y1))
        }
        BinOp::Pow => {
            if y < 0 {
                if x == 0 {
                    return err(
                        ZeroDivisionError,
                        "0.0 cannot be raised to a negative power",
                    );
                }
                return float_op(BinOp::Pow, x as f64, y as f64, a, b);
            }
            let mut result: i128 = 1;
            let mut base = x1;
            let mut e = y;
            // Square-and-multiply while the values stay small; past 2^62 the big ints take
            // over.
            while e > 0 {
                if e & 1 == 1 {
                    match result.checked_mul(base).filter(|r| r.abs() <= 1 << 62) {
                        Some(r) => result = r,
                        None => return big_pow(x, y),
                    }
                }
                e >>= 1;
                if e > 0 {
                    match base.checked_mul(base).filter(|r| r.abs() <= 1 << 62) {
                        Some(r) => base = r,
                        None => return big_pow(x, y),
                    }
                }
            }
            int_result(Some(result))
        }
        BinOp::Shl => {
            if y < 0 {
                return err(ValueError, "negative shift count");
            }
            if x == 0 {
                return Ok(Value::Int(0));
            }
            if y >= 64 {
                return big_pow_shl(x, y);
            }
            let r = x1 << y as u32;
            if r >> y as u32 != x1 {
                return big_pow_shl(x, y);
            }
            int_result(Some(r))
        }
        BinOp::Shr => {
            if y < 0 {
                return err(ValueError, "negative shift count");
            }
            Ok(Value::Int(x >> y.min(63)))
        }
        BinOp::BitAnd => Ok(Value::Int(x & y)),
        BinOp::BitOr => Ok(Value::Int(x | y)),
        BinOp::BitXor => Ok(Value::Int(x ^ y)),
    }
}

fn big_pow(x: i64, y: i64) -> Result<Value, OpError> {
    crate::bigint::binary(BinOp::Pow, &x.into(), &y.into())
}

fn big_pow_shl(x: i64, y: i64) -> Result<Value, OpError> {
    crate::bigint::binary(BinOp::Shl, &x.into(), &y.into())
}

/// `x / y` for ints, correctly rounded as in Python (converting both to floats first would
/// round twice when they exceed 2^53). `y != 0`.
pub fn int_true_div(x: i64, y: i64) -> f64 {
    const EXACT: u64 = 1 << 53;
    if x.unsigned_abs() <= EXACT && y.unsigned_abs() <= EXACT {
        return x as f64 / y as f64;
    }
    let (n, d) = (x.unsigned_abs() as u128, y.unsigned_abs() as u128);
    let bits = |v: u128| 128 - v.leading_zeros() as i32;
    // Scale so the quotient has at least 55 significant bits, then fold the remainder into a
    // sticky bit: the u128-to-f64 conversion (round to nearest even) then rounds correctly.
    let shift = (56 + bits(d) - bits(n)).max(0);
    let scaled = n << shift;
    let q = (scaled / d) | u128::from(scaled % d != 0);
    let magnitude = q as f64 / 2f64.powi(shift);
    if (x < 0) != (y < 0) {
        -magnitude
    } else {
        magnitude
    }
}

/// Floor division of ints (rounds toward negative infinity). `y != 0`.
fn floor_div(x: i128, y: i128) -> i128 {
    let q = x / y;
    if (x % y != 0) && ((x < 0) != (y < 0)) {
        q - 1
    } else {
        q
    }
}

/// Python's float `divmod`: (floor quotient, modulo with the sign of the divisor).
fn float_divmod(x: f64, y: f64) -> (f64, f64) {
    let mut m = x % y;
    let mut div = (x - m) / y;
    if m != 0.0 {
        if (y < 0.0) != (m < 0.0) {
            m += y;
            div -= 1.0;
        }
    } else {
        m = 0.0f64.copysign(y);
    }
    let floordiv = if div != 0.0 {
        let f = div.floor();
        if div - f > 0.5 {
            f + 1.0
        } else {
            f
        }
    } else {
        0.0f64.copysign(x / y)
    };
    (floordiv, m)
}

fn float_op(op: BinOp, x: f64, y: f64, a: &Value, b: &Value) -> Result<Value, OpError> {
    Ok(Value::Float(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => x * y,
        BinOp::Div => {
            if y == 0.0 {
                return err(ZeroDivisionError, "float division by zero");
            }
            x / y
        }
        BinOp::FloorDiv => {
            if y == 0.0 {
                return err(ZeroDivisionError, "float floor division by zero");
            }
            float_divmod(x, y).0
        }
        BinOp::Mod => {
            if y == 0.0 {
                return err(ZeroDivisionError, "float modulo");
            }
            float_divmod(x, y).1
        }
        BinOp::Pow => {
            if x == 0.0 && y < 0.0 {
                return err(
                    ZeroDivisionError,
                    "0.0 cannot be raised to a negative power",
                );
            }
            if x < 0.0 && y.is_finite() && y.fract() != 0.0 {
                return err(
                    ValueError,
                    "negative number cannot be raised to a fractional power",
                );
            }
            let r = x.powf(y);
            if r.is_infinite() && x.is_finite() && y.is_finite() {
                return err(OverflowError, "Numerical result out of range");
            }
            r
        }
        _ => return Err(unsupported(op, a, b)),
    }))
}

/// `op v`.
pub fn unary(op: UnaryOp, v: &Value) -> Result<Value, OpError> {
    let name = match op {
        UnaryOp::Neg => "-",
        UnaryOp::Pos => "+",
        UnaryOp::Invert => "~",
    };
    match (op, as_num(v)) {
        (UnaryOp::Neg, Some(Num::Int(i))) => int_result(Some(-(i as i128))),
        (UnaryOp::Neg, Some(Num::Big(b))) => Ok(crate::bigint::big_value(-(*b).clone())),
        (UnaryOp::Pos, Some(Num::Big(b))) => Ok(Value::BigInt(b)),
        (UnaryOp::Invert, Some(Num::Big(b))) => Ok(crate::bigint::big_value(!(*b).clone())),
        (UnaryOp::Neg, Some(Num::Float(f))) => Ok(Value::Float(-f)),
        (UnaryOp::Pos, Some(Num::Int(i))) => Ok(Value::Int(i)),
        (UnaryOp::Pos, Some(Num::Float(f))) => Ok(Value::Float(f)),
        (UnaryOp::Invert, Some(Num::Int(i))) => Ok(Value::Int(!i)),
        _ => match crate::special::unary(op, v) {
            Some(r) => r,
            None => err(
                TypeError,
                format!("bad operand type for unary {name}: '{}'", v.type_name()),
            ),
        },
    }
}

/// An index or slice bound as an int (bools count), or a `TypeError` naming `what`. A big
/// int that fits 64 bits is an index as in CPython (out of range for any sequence).
fn int_index(v: &Value, what: &str) -> Result<i64, OpError> {
    match &*crate::special::index_of(v)? {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::BigInt(b) => match num_traits::ToPrimitive::to_i64(&**b) {
            Some(i) => Ok(i),
            None => err(IndexError, not_index_sized(v)),
        },
        _ => err(TypeError, format!("{what}, not {}", v.type_name())),
    }
}

/// Resolves a possibly negative index against `len`; `None` when out of range.
fn position(i: i64, len: usize) -> Option<usize> {
    let len = len as i64;
    let i = if i < 0 { i + len } else { i };
    (0..len).contains(&i).then_some(i as usize)
}

/// The slice object `index` when `obj[index]` slices `obj` (not for a dict, whose key it is,
/// nor an instance, whose `__getitem__` takes it as it is).
fn slice_index<'a>(obj: &Value, index: &'a Value) -> Option<&'a crate::slices::SliceValue> {
    match index {
        Value::Slice(s) if !matches!(obj, Value::Dict(_) | Value::Instance(_)) => Some(s),
        _ => None,
    }
}

/// `obj[index]`.
pub fn get_item(obj: &Value, index: &Value) -> Result<Value, OpError> {
    if let Some(s) = slice_index(obj, index) {
        let [a, b, c] = &s.parts;
        return get_slice_parts(obj, [a, b, c]);
    }
    match obj {
        Value::List(l) => {
            let i = int_index(index, "list indices must be integers or slices")?;
            let items = lock(&l.items);
            match position(i, items.len()) {
                Some(p) => Ok(items[p].clone()),
                None => err(IndexError, "list index out of range"),
            }
        }
        Value::Tuple(t) => {
            let i = int_index(index, "tuple indices must be integers or slices")?;
            match position(i, t.items.len()) {
                Some(p) => Ok(t.items[p].clone()),
                None => err(IndexError, "tuple index out of range"),
            }
        }
        Value::Str(s) => {
            let i = int_index(index, "string indices must be integers")?;
            let n = s.chars().count();
            match position(i, n).and_then(|p| s.chars().nth(p)) {
                Some(c) => Ok(Value::str(c.to_string())),
                None => err(IndexError, "string index out of range"),
            }
        }
        Value::Dict(d) => {
            let k = crate::value::key_in(&d.map, index)?;
            match lock(&d.map).get(&k) {
                Some(v) => Ok(v.clone()),
                None => err(KeyError, index.repr(&|_| String::new())?),
            }
        }
        Value::Range(a, b, s) => {
            let i = int_index(index, "range indices must be integers or slices")?;
            match position(i, range_len(*a, *b, *s) as usize) {
                Some(p) => Ok(Value::Int(a + p as i64 * s)),
                None => err(IndexError, "range object index out of range"),
            }
        }
        Value::BigRange(r) => r.item(index),
        Value::Instance(_) if let Some(r) = crate::special::get_item(obj, index) => r,
        _ => err(
            TypeError,
            format!("'{}' object is not subscriptable", obj.type_name()),
        ),
    }
}

/// `obj[index] = v`.
pub fn set_item(obj: &Value, index: &Value, v: Value) -> Result<(), OpError> {
    if let Some(s) = slice_index(obj, index) {
        let [a, b, c] = &s.parts;
        return set_slice_parts(obj, [a, b, c], Some(&v));
    }
    match obj {
        Value::List(l) => {
            let i = int_index(index, "list indices must be integers or slices")?;
            let mut items = lock(&l.items);
            match position(i, items.len()) {
                Some(p) => {
                    items[p] = v;
                    Ok(())
                }
                None => err(IndexError, "list assignment index out of range"),
            }
        }
        Value::Dict(d) => {
            let k = crate::value::key_in(&d.map, index)?;
            lock(&d.map).insert(k, index.clone(), v);
            Ok(())
        }
        Value::Instance(_) => match crate::special::set_item(obj, index, v) {
            Some(r) => r,
            None => err(
                TypeError,
                format!(
                    "'{}' object does not support item assignment",
                    obj.type_name()
                ),
            ),
        },
        _ => err(
            TypeError,
            format!(
                "'{}' object does not support item assignment",
                obj.type_name()
            ),
        ),
    }
}

/// `del obj[index]`.
pub fn del_item(obj: &Value, index: &Value) -> Result<(), OpError> {
    if let Some(s) = slice_index(obj, index) {
        let [a, b, c] = &s.parts;
        return set_slice_parts(obj, [a, b, c], None);
    }
    match obj {
        Value::List(l) => {
            let i = int_index(index, "list indices must be integers or slices")?;
            let mut items = lock(&l.items);
            match position(i, items.len()) {
                Some(p) => {
                    items.remove(p);
                    Ok(())
                }
                None => err(IndexError, "list assignment index out of range"),
            }
        }
        Value::Dict(d) => {
            let k = crate::value::key_in(&d.map, index)?;
            let removed = lock(&d.map).remove(&k);
            match removed {
                Some(_) => Ok(()),
                None => err(KeyError, index.repr(&|_| String::new())?),
            }
        }
        Value::Instance(_) if let Some(r) = crate::special::del_item(obj, index) => r,
        _ => err(
            TypeError,
            format!("'{}' object doesn't support item deletion", obj.type_name()),
        ),
    }
}

/// `obj[lo:hi]` (a missing bound is `None`).
pub fn get_slice(obj: &Value, lo: &Option<Value>, hi: &Option<Value>) -> Result<Value, OpError> {
    let none = Value::None;
    get_slice_parts(obj, two_parts(lo, hi, &none))
}

/// The parts of `x[lo:hi]` (`none` where a bound is missing, and as the step).
fn two_parts<'a>(lo: &'a Option<Value>, hi: &'a Option<Value>, none: &'a Value) -> [&'a Value; 3] {
    [
        lo.as_ref().unwrap_or(none),
        hi.as_ref().unwrap_or(none),
        none,
    ]
}

/// `obj[start:stop:step]`.
fn get_slice_parts(obj: &Value, parts: [&Value; 3]) -> Result<Value, OpError> {
    if let Value::Dict(_) = obj {
        // A slice object as the key (unhashable, as in CPython).
        return get_item(obj, &crate::slices::SliceValue::of(parts));
    }
    crate::slices::get(obj, parts).unwrap_or_else(|| {
        err(
            TypeError,
            format!("'{}' object is not subscriptable", obj.type_name()),
        )
    })
}

/// `obj[lo:hi] = v`, or `del obj[lo:hi]` when `v` is `None` (a missing bound is `None`).
pub fn set_slice(
    obj: &Value,
    lo: &Option<Value>,
    hi: &Option<Value>,
    v: Option<&Value>,
) -> Result<(), OpError> {
    let none = Value::None;
    set_slice_parts(obj, two_parts(lo, hi, &none), v)
}

/// `obj[start:stop:step] = v`, or `del obj[start:stop:step]` when `v` is `None`.
fn set_slice_parts(obj: &Value, parts: [&Value; 3], v: Option<&Value>) -> Result<(), OpError> {
    if let Value::Dict(_) = obj {
        let key = crate::slices::SliceValue::of(parts);
        return match v {
            Some(v) => set_item(obj, &key, v.clone()),
            None => del_item(obj, &key),
        };
    }
    crate::slices::set(obj, parts, v).unwrap_or_else(|| {
        let what = if v.is_some() {
            "does not support item assignment"
        } else {
            "does not support item deletion"
        };
        err(TypeError, format!("'{}' object {what}", obj.type_name()))
    })
}

/// `item in container`.
pub fn contains(container: &Value, item: &Value) -> Result<bool, OpError> {
    match container {
        Value::List(l) => {
            // Identity before equality, as in Python: `n in [n]` holds for a NaN `n`.
            for v in l.snapshot() {
                if identical(&v, item) || equal(&v, item)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Value::Tuple(t) => {
            for v in &t.items {
                if identical(v, item) || equal(v, item)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Value::Dict(d) | Value::Set(d) | Value::FrozenSet(d) => {
            let k = crate::value::key_in(&d.map, item)?;
            Ok(lock(&d.map).get(&k).is_some())
        }
        Value::Str(s) => match item {
            Value::Str(sub) => Ok(s.contains(&**sub)),
            _ => err(
                TypeError,
                format!(
                    "'in <string>' requires string as left operand, not {}",
                    item.type_name()
                ),
            ),
        },
        Value::Range(a, b, s) => {
            let Some(Num::Int(i)) = as_num(item) else {
                let Some(Num::Float(f)) = as_num(item) else {
                    return Ok(false);
                };
                if f.fract() != 0.0 || !f.is_finite() {
                    return Ok(false);
                }
                return contains(container, &Value::Int(f as i64));
            };
            let n = range_len(*a, *b, *s);
            Ok(n > 0 && (i - a) % s == 0 && {
                let k = (i - a) / s;
                (0..n).contains(&k)
            })
        }
        Value::BigRange(r) => Ok(r.contains(item)),
        Value::Instance(_) if let Some(r) = crate::special::contains(container, item) => r,
        _ => err(
            TypeError,
            format!(
                "argument of type '{}' is not iterable",
                container.type_name()
            ),
        ),
    }
}

/// The items `for x in v` visits, as a snapshot (used by builtins that consume an iterable).
pub fn iterate(v: &Value) -> Result<Vec<Value>, OpError> {
    match v {
        Value::List(l) => Ok(l.snapshot()),
        Value::Tuple(t) => Ok(t.items.clone()),
        Value::Str(s) => Ok(s.chars().map(|c| Value::str(c.to_string())).collect()),
        Value::Dict(d) | Value::Set(d) | Value::FrozenSet(d) => Ok(lock(&d.map).keys()),
        Value::Range(a, b, s) => {
            let n = range_len(*a, *b, *s);
            if n as u64 > MAX_SEQUENCE as u64 {
                return err(MemoryError, "range too large to materialize");
            }
            Ok((0..n).map(|k| Value::Int(a + k * s)).collect())
        }
        Value::BigRange(r) => r.items(),
        Value::Instance(_) if let Some(r) = crate::special::iterate(v) => r,
        _ => err(
            TypeError,
            format!("'{}' object is not iterable", v.type_name()),
        ),
    }
}

/// Whether `v` can be iterated at all: a container, a range, or an instance whose class
/// defines `__iter__` or `__getitem__` (asked of the installed special methods). What
/// CPython checks before it calls a failed `f(*v)` "not an iterable": an error of an
/// iteration that began stands.
pub fn is_iterable(v: &Value) -> bool {
    match v {
        Value::Instance(_) => crate::special::iterable(v),
        _ => matches!(
            v,
            Value::List(_)
                | Value::Tuple(_)
                | Value::Str(_)
                | Value::Dict(_)
                | Value::Set(_)
                | Value::FrozenSet(_)
                | Value::Range(..)
                | Value::BigRange(_)
        ),
    }
}

/// A new str value from a char.
pub fn char_value(c: char) -> Value {
    Value::Str(Arc::from(c.to_string()))
}
