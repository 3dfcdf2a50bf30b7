//! Slices: `x[a:b]`, `x[a:b:c]` and slice objects (`slice(a, b, c)`), with CPython's index
//! arithmetic (`PySlice_Unpack`, `PySlice_AdjustIndices`, `slice.indices`) for lists, tuples,
//! strs and ranges, reading, assigning and deleting. Shared by the interpreter and the JIT's
//! runtime (which reaches it through the interpreter's values).

use crate::diag::ErrorKind::*;
use crate::value::{lock, range_len, ListObj, OpError, TupleObj, Value};
use num_bigint::BigInt;
use num_traits::{Signed, Zero};
use std::sync::Arc;

/// A slice object, `slice(start, stop, step)`: immutable, its parts any values (`None` for a
/// missing one), as in CPython.
#[derive(Debug)]
pub struct SliceValue {
    /// `[start, stop, step]`.
    pub parts: [Value; 3],
}

impl SliceValue {
    /// A new slice value.
    pub fn new_value(start: Value, stop: Value, step: Value) -> Value {
        Value::Slice(Arc::new(SliceValue {
            parts: [start, stop, step],
        }))
    }

    /// A new slice value of `[start, stop, step]`.
    pub fn of(parts: [&Value; 3]) -> Value {
        Self::new_value(parts[0].clone(), parts[1].clone(), parts[2].clone())
    }

    /// `s.start`, `s.stop`, `s.step`; `None` for other names.
    pub fn attr(&self, name: &str) -> Option<Value> {
        let i = ["start", "stop", "step"].iter().position(|n| *n == name)?;
        Some(self.parts[i].clone())
    }
}

/// The methods of slice objects.
pub const SLICE_METHODS: &[&str] = &["indices"];

const NOT_INDEX: &str = "slice indices must be integers or None or have an __index__ method";

fn err<T>(kind: crate::diag::ErrorKind, msg: impl Into<String>) -> Result<T, OpError> {
    Err((kind, msg.into()))
}

/// A slice part as an index-sized int: a big one clamps to the ends (`_PyEval_SliceIndex`).
fn index(v: &Value) -> Result<i64, OpError> {
    match &*crate::special::index_of(v)? {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::BigInt(b) if b.is_negative() => Ok(i64::MIN),
        Value::BigInt(_) => Ok(i64::MAX),
        _ => err(TypeError, NOT_INDEX),
    }
}

/// `(start, stop, step)` of the parts, missing ones filled in (`PySlice_Unpack`: the step
/// first, then start and stop).
pub fn unpack(start: &Value, stop: &Value, step: &Value) -> Result<(i64, i64, i64), OpError> {
    let step = match step {
        Value::None => 1,
        v => index(v)?,
    };
    if step == 0 {
        return err(ValueError, "slice step cannot be zero");
    }
    // So that `-step` cannot overflow.
    let step = step.max(-i64::MAX);
    let start = match start {
        Value::None if step < 0 => i64::MAX,
        Value::None => 0,
        v => index(v)?,
    };
    let stop = match stop {
        Value::None if step < 0 => i64::MIN,
        Value::None => i64::MAX,
        v => index(v)?,
    };
    Ok((start, stop, step))
}

/// The positions a slice selects in `len` items: `count` of them, from `start` by `step`.
#[derive(Clone, Copy, Debug)]
pub struct Positions {
    /// The first position (meaningless when `count` is 0).
    pub start: i64,
    /// The end, clamped as the start (where a range's slice stops).
    pub stop: i64,
    /// The stride (never 0).
    pub step: i64,
    /// How many.
    pub count: usize,
}

impl Positions {
    /// Clamps unpacked `(start, stop, step)` to `len` items (`PySlice_AdjustIndices`).
    pub fn adjust((start, stop, step): (i64, i64, i64), len: usize) -> Positions {
        let len = len as i64;
        let clamp = |i: i64| {
            if i < 0 {
                let i = i + len;
                if i < 0 {
                    if step < 0 {
                        -1
                    } else {
                        0
                    }
                } else {
                    i
                }
            } else if i >= len {
                if step < 0 {
                    len - 1
                } else {
                    len
                }
            } else {
                i
            }
        };
        let (start, stop) = (clamp(start), clamp(stop));
        let count = if step < 0 && stop < start {
            (start - stop - 1) / -step + 1
        } else if step > 0 && start < stop {
            (stop - start - 1) / step + 1
        } else {
            0
        };
        Positions {
            start,
            stop,
            step,
            count: count as usize,
        }
    }

    /// The positions, in slice order.
    pub fn iter(self) -> impl Iterator<Item = usize> {
        (0..self.count as i64).map(move |k| (self.start + k * self.step) as usize)
    }

    /// The items of `items` at these positions.
    fn pick<T: Clone>(self, items: &[T]) -> Vec<T> {
        if self.step == 1 {
            let a = self.start as usize;
            return items[a..a + self.count].to_vec();
        }
        self.iter().map(|p| items[p].clone()).collect()
    }
}

/// `obj[start:stop:step]` for lists, tuples, strs and ranges, or an instance's
/// `__getitem__` with a slice object; `None` for other types.
pub fn get(obj: &Value, parts: [&Value; 3]) -> Option<Result<Value, OpError>> {
    let unpacked = || unpack(parts[0], parts[1], parts[2]);
    Some(match obj {
        Value::List(l) => unpacked().map(|u| {
            let items = lock(&l.items);
            ListObj::new_value(Positions::adjust(u, items.len()).pick(&items))
        }),
        Value::Tuple(t) => unpacked()
            .map(|u| TupleObj::new_value(Positions::adjust(u, t.items.len()).pick(&t.items))),
        Value::Str(s) => unpacked().map(|u| {
            if s.is_ascii() {
                let bytes = Positions::adjust(u, s.len()).pick(s.as_bytes());
                return Value::str(String::from_utf8(bytes).expect("ASCII stays UTF-8"));
            }
            let chars: Vec<char> = s.chars().collect();
            let p = Positions::adjust(u, chars.len());
            Value::str(p.pick(&chars).into_iter().collect::<String>())
        }),
        Value::Range(..) | Value::BigRange(_) => range(obj, parts),
        Value::Instance(_) => {
            return crate::special::get_item(obj, &SliceValue::of(parts));
        }
        _ => return None,
    })
}

/// `r[start:stop:step]` of a range of either form: the range of the selected numbers, at
/// any size (CPython's `compute_slice`).
fn range(r: &Value, parts: [&Value; 3]) -> Result<Value, OpError> {
    let (a, b, s) = crate::ranges::parts(r).expect("a range");
    let len = match r {
        Value::Range(a, b, s) => BigInt::from(range_len(*a, *b, *s)),
        _ => crate::ranges::BigRange {
            start: a.clone(),
            stop: b,
            step: s.clone(),
        }
        .len(),
    };
    let (start, stop, step) = long_indices(parts, &len)?;
    Ok(crate::ranges::make(
        &a + start * &s,
        &a + stop * &s,
        s * step,
    ))
}

/// The items of `v` for an assignment to a slice of a list, with CPython's error when `v`
/// is not iterable.
fn assigned_items(v: &Value, extended: bool) -> Result<Vec<Value>, OpError> {
    crate::ops::iterate(v).map_err(|e| {
        if e.0 == TypeError && e.1 == format!("'{}' object is not iterable", v.type_name()) {
            let m = if extended {
                "must assign iterable to extended slice"
            } else {
                "can only assign an iterable"
            };
            (TypeError, m.to_string())
        } else {
            e
        }
    })
}

/// `obj[start:stop:step] = v` (`v` given) or `del obj[start:stop:step]` for a list, or an
/// instance's `__setitem__`/`__delitem__` with a slice object; `None` for other types. A
/// step of 1 replaces the selected items by any number of others, another step needs as
/// many items as it selects.
pub fn set(obj: &Value, parts: [&Value; 3], v: Option<&Value>) -> Option<Result<(), OpError>> {
    match obj {
        Value::List(l) => Some(set_list(l, parts, v)),
        Value::Instance(_) => {
            let s = SliceValue::of(parts);
            match v {
                Some(v) => crate::special::set_item(obj, &s, v.clone()),
                None => crate::special::del_item(obj, &s),
            }
        }
        _ => None,
    }
}

fn set_list(l: &ListObj, parts: [&Value; 3], v: Option<&Value>) -> Result<(), OpError> {
    let u = unpack(parts[0], parts[1], parts[2])?;
    // The new items first (`v` may be the list itself), then the list is locked.
    let new = match v {
        Some(v) => Some(assigned_items(v, u.2 != 1)?),
        None => None,
    };
    let mut items = lock(&l.items);
    let p = Positions::adjust(u, items.len());
    match new {
        Some(new) if p.step == 1 => {
            let a = p.start as usize;
            items.splice(a..a + p.count, new);
        }
        None if p.step == 1 => {
            let a = p.start as usize;
            items.drain(a..a + p.count);
        }
        Some(new) => {
            if new.len() != p.count {
                return err(
                    ValueError,
                    format!(
                        "attempt to assign sequence of size {} to extended slice of size {}",
                        new.len(),
                        p.count
                    ),
                );
            }
            for (at, x) in p.iter().zip(new) {
                items[at] = x;
            }
        }
        None => {
            let mut gone = vec![false; items.len()];
            for at in p.iter() {
                gone[at] = true;
            }
            let mut k = 0;
            items.retain(|_| {
                k += 1;
                !gone[k - 1]
            });
        }
    }
    Ok(())
}

/// `slice(stop)`, `slice(start, stop[, step])`.
pub fn slice_builtin(args: &[Value]) -> Result<Value, OpError> {
    match args {
        [stop] => Ok(SliceValue::new_value(
            Value::None,
            stop.clone(),
            Value::None,
        )),
        [a, b] => Ok(SliceValue::new_value(a.clone(), b.clone(), Value::None)),
        [a, b, c] => Ok(SliceValue::new_value(a.clone(), b.clone(), c.clone())),
        [] => err(TypeError, "slice expected at least 1 argument, got 0"),
        _ => err(
            TypeError,
            format!("slice expected at most 3 arguments, got {}", args.len()),
        ),
    }
}

/// `(start, stop, step)` of slice parts clamped to `len` items, at any size
/// (`_PySlice_GetLongIndices`: the step first, then start and stop).
fn long_indices(parts: [&Value; 3], len: &BigInt) -> Result<(BigInt, BigInt, BigInt), OpError> {
    let part = |v: &Value| -> Result<Option<BigInt>, OpError> {
        match v {
            Value::None => Ok(None),
            v => crate::bigint::as_big(&*crate::special::index_of(v)?)
                .map(Some)
                .ok_or_else(|| (TypeError, NOT_INDEX.to_string())),
        }
    };
    let step = part(parts[2])?.unwrap_or_else(|| 1.into());
    if step.is_zero() {
        return err(ValueError, "slice step cannot be zero");
    }
    let back = step.is_negative();
    let (lower, upper) = if back {
        (BigInt::from(-1), len - 1)
    } else {
        (BigInt::zero(), len.clone())
    };
    let clamp = |v: Option<BigInt>, default: &BigInt| match v {
        None => default.clone(),
        Some(i) if i.is_negative() => (i + len).max(lower.clone()),
        Some(i) => i.min(upper.clone()),
    };
    let start = clamp(part(parts[0])?, if back { &upper } else { &lower });
    let stop = clamp(part(parts[1])?, if back { &lower } else { &upper });
    Ok((start, stop, step))
}

/// `s.indices(length)`: `(start, stop, step)` clamped to `length` items, at any size
/// (`_PySlice_GetLongIndices`).
pub fn indices(s: &SliceValue, args: &[Value]) -> Result<Value, OpError> {
    if args.len() != 1 {
        return err(
            TypeError,
            format!(
                "slice.indices() takes exactly one argument ({} given)",
                args.len()
            ),
        );
    }
    let Some(len) = crate::bigint::as_big(&*crate::special::index_of(&args[0])?) else {
        return err(
            TypeError,
            format!(
                "'{}' object cannot be interpreted as an integer",
                args[0].type_name()
            ),
        );
    };
    if len.is_negative() {
        return err(ValueError, "length should not be negative");
    }
    let [a, b, c] = &s.parts;
    let (start, stop, step) = long_indices([a, b, c], &len)?;
    let v = crate::bigint::big_value;
    Ok(TupleObj::new_value(vec![v(start), v(stop), v(step)]))
}
