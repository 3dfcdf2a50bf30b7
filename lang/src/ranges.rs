//! `range()` with a bound or step beyond the 63-bit tagged ints (`range(2**70, 2**70 + 3)`,
//! `range(2**64)`): a [`BigRange`] value, with CPython's semantics for iteration, `len`
//! (an `OverflowError` when the length does not fit a C `ssize_t`), indexing, `in`,
//! `reversed`, `repr`, `==` and truth. Ranges of tagged ints stay `Value::Range` (three
//! words, which both runners' fast paths read); [`make`] gives the canonical form, so a
//! big range always has a bound or step beyond the tagged ints.

use crate::bigint::big_value;
use crate::diag::ErrorKind::*;
use crate::ops::{INT_MAX, INT_MIN};
use crate::value::{range_len, OpError, Value};
use num_bigint::BigInt;
use num_integer::Integer;
use num_traits::{One, Signed, ToPrimitive, Zero};
use std::sync::Arc;

/// `range(start, stop, step)` with a bound or step beyond the tagged ints (immutable).
#[derive(Debug)]
pub struct BigRange {
    /// First item.
    pub start: BigInt,
    /// End (excluded).
    pub stop: BigInt,
    /// Step (never 0).
    pub step: BigInt,
}

fn err<T>(kind: crate::diag::ErrorKind, msg: impl Into<String>) -> Result<T, OpError> {
    Err((kind, msg.into()))
}

/// `range(start, stop, step)` in its canonical form: a `Value::Range` when all three are
/// tagged ints, else a `Value::BigRange`; `step` must not be 0.
pub fn make(start: BigInt, stop: BigInt, step: BigInt) -> Value {
    let small = |b: &BigInt| b.to_i64().filter(|i| (INT_MIN..=INT_MAX).contains(i));
    match (small(&start), small(&stop), small(&step)) {
        (Some(a), Some(b), Some(s)) => Value::Range(a, b, s),
        _ => Value::BigRange(Arc::new(BigRange { start, stop, step })),
    }
}

/// `range(args...)` when one of them is a big int or an instance (its `__index__`; else
/// `Value::Range` is made directly).
pub fn from_args(args: &[Value]) -> Result<Value, OpError> {
    let ints = args
        .iter()
        .map(|a| {
            crate::bigint::as_big(&*crate::special::index_of(a)?).ok_or_else(|| {
                (
                    TypeError,
                    format!(
                        "'{}' object cannot be interpreted as an integer",
                        a.type_name()
                    ),
                )
            })
        })
        .collect::<Result<Vec<BigInt>, OpError>>()?;
    let (start, stop, step) = match <[BigInt; 3]>::try_from(ints) {
        Ok([a, b, s]) => (a, b, s),
        Err(ints) => match <[BigInt; 2]>::try_from(ints) {
            Ok([a, b]) => (a, b, BigInt::one()),
            Err(mut ints) => (BigInt::zero(), ints.remove(0), BigInt::one()),
        },
    };
    if step.is_zero() {
        return err(ValueError, "range() arg 3 must not be zero");
    }
    Ok(make(start, stop, step))
}

/// `(start, stop, step)` of a range value of either form.
pub fn parts(v: &Value) -> Option<(BigInt, BigInt, BigInt)> {
    match v {
        Value::Range(a, b, s) => Some((BigInt::from(*a), BigInt::from(*b), BigInt::from(*s))),
        Value::BigRange(r) => Some((r.start.clone(), r.stop.clone(), r.step.clone())),
        _ => None,
    }
}

/// A range value of either form as a [`BigRange`].
pub fn of(v: &Value) -> Option<BigRange> {
    let (start, stop, step) = parts(v)?;
    Some(BigRange { start, stop, step })
}

/// What a range is hashed and keyed by, as CPython's `range_hash`: `(len, start, step)`,
/// with `start` and `step` `None` when they make no difference (an empty range: both; a
/// one-item range: the step), so that equal ranges (`range(0) == range(5, 5)`) are one key.
pub fn key_parts(v: &Value) -> Option<[Value; 3]> {
    let (start, stop, step) = parts(v)?;
    let r = BigRange { start, stop, step };
    let n = r.len();
    Some(if n.is_zero() {
        [Value::Int(0), Value::None, Value::None]
    } else if n.is_one() {
        [Value::Int(1), big_value(r.start), Value::None]
    } else {
        [big_value(n), big_value(r.start), big_value(r.step)]
    })
}

impl BigRange {
    /// The number of items.
    pub fn len(&self) -> BigInt {
        let (a, b, s) = (&self.start, &self.stop, &self.step);
        let n = if s.is_positive() {
            (b - a + s - 1u32).div_floor(s)
        } else {
            (a - b - s - 1u32).div_floor(&-s)
        };
        n.max(BigInt::zero())
    }

    /// Whether it has no items.
    pub fn is_empty(&self) -> bool {
        if self.step.is_positive() {
            self.start >= self.stop
        } else {
            self.start <= self.stop
        }
    }

    /// Item `k` (0 <= k < len).
    pub fn nth(&self, k: &BigInt) -> Value {
        big_value(&self.start + k * &self.step)
    }

    /// `len(r)`: an `OverflowError` when the length does not fit a C `ssize_t`, as CPython.
    pub fn len_value(&self) -> Result<Value, OpError> {
        match self.len().to_i64() {
            Some(n) => Ok(crate::bigint::i128_value(n as i128)),
            None => err(
                OverflowError,
                "Python int too large to convert to C ssize_t",
            ),
        }
    }

    /// `r[index]`: an int index of any size, negative from the end.
    pub fn item(&self, index: &Value) -> Result<Value, OpError> {
        let Some(i) = crate::bigint::as_big(&*crate::special::index_of(index)?) else {
            return err(
                TypeError,
                format!(
                    "range indices must be integers or slices, not {}",
                    index.type_name()
                ),
            );
        };
        let n = self.len();
        let k = if i.is_negative() { i + &n } else { i };
        if k.is_negative() || k >= n {
            return err(IndexError, "range object index out of range");
        }
        Ok(self.nth(&k))
    }

    /// `x in r`: an int (or bool, or integral float) that is one of the items; other
    /// values are in no range (as for the ranges of tagged ints).
    pub fn contains(&self, x: &Value) -> bool {
        let x = match x {
            Value::Float(f) if f.is_finite() && f.fract() == 0.0 => {
                crate::bigint::as_big(&crate::bigint::from_f64(*f))
            }
            other => crate::bigint::as_big(other),
        };
        let Some(x) = x else {
            return false;
        };
        let (a, b, s) = (&self.start, &self.stop, &self.step);
        let inside = if s.is_positive() {
            a <= &x && &x < b
        } else {
            b < &x && &x <= a
        };
        inside && (x - a).mod_floor(s).is_zero()
    }

    /// `reversed(r)`: the range of the same items, last first (lazy, so that a range too
    /// long to list reverses too).
    pub fn reversed(&self) -> Value {
        let n = self.len();
        if n.is_zero() {
            return Value::Range(0, 0, 1);
        }
        let last = &self.start + (n - 1u32) * &self.step;
        let stop = &self.start - &self.step;
        make(last, stop, -&self.step)
    }

    /// The items, as a list would hold them; a `MemoryError` when there are too many.
    pub fn items(&self) -> Result<Vec<Value>, OpError> {
        self.first_items(self.len())
    }

    /// The first `n` items (all when it has fewer); a `MemoryError` when they are too many.
    pub fn first_items(&self, n: BigInt) -> Result<Vec<Value>, OpError> {
        let n = n.min(self.len());
        match n.to_u64() {
            Some(n) if n <= crate::ops::MAX_SEQUENCE as u64 => {
                let mut out = Vec::with_capacity(n as usize);
                let mut x = self.start.clone();
                for _ in 0..n {
                    out.push(big_value(x.clone()));
                    x += &self.step;
                }
                Ok(out)
            }
            _ => err(MemoryError, "range too large to materialize"),
        }
    }

    /// `repr(r)`: `range(start, stop)`, with `, step` unless it is 1.
    pub fn repr(&self) -> String {
        if self.step.is_one() {
            format!("range({}, {})", self.start, self.stop)
        } else {
            format!("range({}, {}, {})", self.start, self.stop, self.step)
        }
    }
}

/// `a == b` for two ranges of either form, as CPython: the same items (the same length,
/// and unless empty the same first item, and unless of one item the same step).
pub fn equal(a: &Value, b: &Value) -> Option<bool> {
    if let (Value::Range(a1, b1, s1), Value::Range(a2, b2, s2)) = (a, b) {
        let (n1, n2) = (range_len(*a1, *b1, *s1), range_len(*a2, *b2, *s2));
        return Some(n1 == n2 && (n1 == 0 || (a1 == a2 && (n1 == 1 || s1 == s2))));
    }
    let ((a1, b1, s1), (a2, b2, s2)) = (parts(a)?, parts(b)?);
    let x = BigRange {
        start: a1,
        stop: b1,
        step: s1,
    };
    let y = BigRange {
        start: a2,
        stop: b2,
        step: s2,
    };
    let (n1, n2) = (x.len(), y.len());
    Some(n1 == n2 && (n1.is_zero() || (x.start == y.start && (n1.is_one() || x.step == y.step))))
}

/// The next item of a `for` loop over the big range `r` at step `k` (counted from 0), or
/// `None` past its end.
pub fn next(r: &BigRange, k: u64) -> Option<Value> {
    let k = BigInt::from(k);
    (k < r.len()).then(|| r.nth(&k))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(e: u32) -> BigInt {
        BigInt::one() << e
    }

    #[test]
    fn canonical_forms() {
        assert!(matches!(
            make(1.into(), 5.into(), 1.into()),
            Value::Range(1, 5, 1)
        ));
        assert!(matches!(
            make(0.into(), big(64), 1.into()),
            Value::BigRange(_)
        ));
        assert!(matches!(
            make(0.into(), 5.into(), big(70)),
            Value::BigRange(_)
        ));
    }

    #[test]
    fn length_items_and_membership() {
        let r = BigRange {
            start: big(70),
            stop: big(70) + 10,
            step: 3.into(),
        };
        assert_eq!(r.len(), 4.into());
        assert!(r.contains(&big_value(big(70) + 9)));
        assert!(!r.contains(&big_value(big(70) + 10)));
        assert!(!r.contains(&big_value(big(70) + 1)));
        let down = BigRange {
            start: big(70),
            stop: -big(70),
            step: -big(69),
        };
        assert_eq!(down.len(), 4.into());
        assert!(down.contains(&Value::Int(0)));
        assert!(!down.contains(&big_value(-big(70))));
        let empty = BigRange {
            start: big(70),
            stop: 0.into(),
            step: 1.into(),
        };
        assert!(empty.is_empty() && empty.len().is_zero());
        assert!(matches!(empty.reversed(), Value::Range(0, 0, 1)));
        let huge = BigRange {
            start: 0.into(),
            stop: big(64),
            step: 1.into(),
        };
        assert!(huge.len_value().is_err());
        assert!(huge.items().is_err());
    }
}
