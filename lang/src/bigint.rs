//! Ints beyond the 63-bit tagged range: `Value::BigInt` holds them (computed with
//! `num-bigint`), with CPython's semantics for every operator. A result that fits the
//! tagged range is always a `Value::Int` ([`big_value`]), so a big int never equals a small
//! one and the two never need to hash alike.

use crate::ast::BinOp;
use crate::diag::ErrorKind::*;
use crate::ops::{INT_MAX, INT_MIN};
use crate::value::{OpError, Value};
use num_bigint::{BigInt, Sign};
use num_integer::Integer;
use num_traits::{FromPrimitive, Signed, ToPrimitive, Zero};
use std::cmp::Ordering;
use std::sync::Arc;

/// Most bits a result may have (a `MemoryError` beyond, instead of exhausting memory).
const MAX_BITS: u64 = 1 << 32;

fn err<T>(kind: crate::diag::ErrorKind, msg: impl Into<String>) -> Result<T, OpError> {
    Err((kind, msg.into()))
}

/// The value of the int `b`: tagged when it fits 63 bits, else big (the canonical form).
pub fn big_value(b: BigInt) -> Value {
    match b.to_i64() {
        Some(i) if (INT_MIN..=INT_MAX).contains(&i) => Value::Int(i),
        _ => Value::BigInt(Arc::new(b)),
    }
}

/// The value of the int `v` (any i128).
pub fn i128_value(v: i128) -> Value {
    if (INT_MIN as i128..=INT_MAX as i128).contains(&v) {
        Value::Int(v as i64)
    } else {
        Value::BigInt(Arc::new(BigInt::from(v)))
    }
}

/// `v` as an arbitrary-precision int, when it is an int or a bool.
pub fn as_big(v: &Value) -> Option<BigInt> {
    match v {
        Value::Int(i) => Some(BigInt::from(*i)),
        Value::Bool(b) => Some(BigInt::from(*b as i64)),
        Value::BigInt(b) => Some((**b).clone()),
        _ => None,
    }
}

/// `b` as a float, rounded to nearest; an `OverflowError` beyond the float range (CPython's).
pub fn to_f64(b: &BigInt) -> Result<f64, OpError> {
    match b.to_f64() {
        Some(f) if f.is_finite() => Ok(f),
        _ => err(OverflowError, "int too large to convert to float"),
    }
}

/// The int of the finite float `f`, truncated toward zero.
pub fn from_f64(f: f64) -> Value {
    if f.abs() < 4.0e18 {
        return Value::Int(f as i64);
    }
    big_value(BigInt::from_f64(f.trunc()).unwrap_or_default())
}

/// Exact ordering of an int with a float; `None` for a NaN.
pub fn cmp_float(b: &BigInt, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    if f.is_infinite() {
        return Some(if f > 0.0 {
            Ordering::Less
        } else {
            Ordering::Greater
        });
    }
    let t = f.trunc();
    let tb = BigInt::from_f64(t).unwrap_or_default();
    Some(match b.cmp(&tb) {
        Ordering::Equal => {
            if f > t {
                Ordering::Less
            } else if f < t {
                Ordering::Greater
            } else {
                Ordering::Equal
            }
        }
        o => o,
    })
}

/// `x / y` for ints of any size, correctly rounded (the quotient is computed to 57 bits with
/// a sticky bit, then scaled); `OverflowError` when it exceeds the float range.
pub fn true_div(x: &BigInt, y: &BigInt) -> Result<f64, OpError> {
    if y.is_zero() {
        return err(ZeroDivisionError, "division by zero");
    }
    if x.is_zero() {
        return Ok(if y.is_negative() { -0.0 } else { 0.0 });
    }
    let (n, d) = (x.magnitude(), y.magnitude());
    let e = n.bits() as i64 - d.bits() as i64 - 57;
    let (q, r) = if e >= 0 {
        n.div_rem(&(d << e as u64))
    } else {
        (n << (-e) as u64).div_rem(d)
    };
    let q = q.to_u64().unwrap_or(u64::MAX) | u64::from(!r.is_zero());
    let mut m = q as f64;
    // Scale in two steps, so that neither factor overflows or underflows on its own.
    let half = e / 2;
    m *= 2f64.powi(half.clamp(-2000, 2000) as i32);
    m *= 2f64.powi((e - half).clamp(-2000, 2000) as i32);
    if m.is_infinite() {
        return err(
            OverflowError,
            "integer division result too large for a float",
        );
    }
    Ok(if x.is_negative() != y.is_negative() {
        -m
    } else {
        m
    })
}

/// `x op y` for ints of any size (at least one of them big, or a small result overflowed).
pub fn binary(op: BinOp, x: &BigInt, y: &BigInt) -> Result<Value, OpError> {
    Ok(big_value(match op {
        BinOp::Add => x + y,
        BinOp::Sub => x - y,
        BinOp::Mul => {
            if x.bits() + y.bits() > MAX_BITS {
                return err(MemoryError, "int too large");
            }
            x * y
        }
        BinOp::Div => return Ok(Value::Float(true_div(x, y)?)),
        BinOp::FloorDiv => {
            if y.is_zero() {
                return err(ZeroDivisionError, "integer division or modulo by zero");
            }
            x.div_floor(y)
        }
        BinOp::Mod => {
            if y.is_zero() {
                return err(ZeroDivisionError, "integer modulo by zero");
            }
            x.mod_floor(y)
        }
        BinOp::Pow => {
            if y.is_negative() {
                if x.is_zero() {
                    return err(
                        ZeroDivisionError,
                        "0.0 cannot be raised to a negative power",
                    );
                }
                let (fx, fy) = (to_f64(x)?, y.to_f64().unwrap_or(f64::NEG_INFINITY));
                return Ok(Value::Float(fx.powf(fy)));
            }
            if x.is_zero() || x.magnitude().bits() == 1 && x.magnitude().trailing_zeros() == Some(0)
            {
                // 0, 1 and -1 to any power.
                let odd = y.is_odd();
                return Ok(if x.is_zero() {
                    Value::Int(if y.is_zero() { 1 } else { 0 })
                } else if x.is_negative() && odd {
                    Value::Int(-1)
                } else {
                    Value::Int(1)
                });
            }
            match y.to_u64() {
                Some(e) if x.bits().saturating_mul(e) <= MAX_BITS => {
                    num_traits::pow(x.clone(), e as usize)
                }
                _ => return err(MemoryError, "int too large"),
            }
        }
        BinOp::Shl => {
            if y.is_negative() {
                return err(ValueError, "negative shift count");
            }
            if x.is_zero() {
                return Ok(Value::Int(0));
            }
            match y.to_u64() {
                Some(s) if x.bits() + s <= MAX_BITS => x << s,
                _ => return err(OverflowError, "too many digits in integer"),
            }
        }
        BinOp::Shr => {
            if y.is_negative() {
                return err(ValueError, "negative shift count");
            }
            match y.to_u64() {
                Some(s) if s < x.bits() + 1 => x >> s,
                _ => BigInt::from(if x.is_negative() { -1 } else { 0 }),
            }
        }
        BinOp::BitAnd => x & y,
        BinOp::BitOr => x | y,
        BinOp::BitXor => x ^ y,
    }))
}

/// `pow(b, e, m)` for ints: the result has the sign of `m` (Python's `%`); a negative `e`
/// uses the inverse of `b` modulo `m`. CPython's `ValueError`s for `m == 0` and no inverse.
pub fn pow_mod(b: &BigInt, e: &BigInt, m: &BigInt) -> Result<Value, OpError> {
    if m.is_zero() {
        return err(ValueError, "pow() 3rd argument cannot be 0");
    }
    let am = BigInt::from(m.magnitude().clone());
    let base = b.mod_floor(&am);
    let base = if e.is_negative() {
        match base.modinv(&am) {
            Some(inv) => inv,
            None => return err(ValueError, "base is not invertible for the given modulus"),
        }
    } else {
        base
    };
    let r = base
        .modpow(&BigInt::from(e.magnitude().clone()), &am)
        .mod_floor(&am);
    // Into Python's range: [0, m) for a positive m, (m, 0] for a negative one.
    Ok(big_value(if m.is_negative() && !r.is_zero() {
        r + m
    } else {
        r
    }))
}

/// CPython's hash of an int: its value modulo the Mersenne prime 2^61 − 1, with its sign
/// (−1 becomes −2).
pub fn hash(b: &BigInt) -> i64 {
    const P: u64 = (1 << 61) - 1;
    let m = BigInt::from(P);
    let r = (b.magnitude() % m.magnitude()).to_u64().unwrap_or(0) as i64;
    let h = if b.sign() == Sign::Minus { -r } else { r };
    if h == -1 {
        -2
    } else {
        h
    }
}

/// `hex`, `oct` or `bin` of an int of any size.
pub fn radix_text(name: &str, b: &BigInt) -> String {
    let m = b.magnitude();
    let body = match name {
        "hex" => format!("0x{}", m.to_str_radix(16)),
        "oct" => format!("0o{}", m.to_str_radix(8)),
        _ => format!("0b{}", m.to_str_radix(2)),
    };
    if b.is_negative() {
        format!("-{body}")
    } else {
        body
    }
}

/// The int of the decimal digits `digits` (already checked), negated when `neg`; CPython
/// 3.11's `ValueError` beyond [`MAX_STR_DIGITS`] digits.
pub fn parse_decimal(digits: &str, neg: bool) -> Result<Value, OpError> {
    if digits.len() > MAX_STR_DIGITS {
        return err(
            ValueError,
            format!(
                "Exceeds the limit ({MAX_STR_DIGITS} digits) for integer string conversion: \
                 value has {} digits; use sys.set_int_max_str_digits() to increase the limit",
                digits.len()
            ),
        );
    }
    let b = BigInt::parse_bytes(digits.as_bytes(), 10).unwrap_or_default();
    Ok(big_value(if neg { -b } else { b }))
}

/// CPython 3.11's limit on the digits of a decimal int/str conversion (its default
/// `sys.get_int_max_str_digits()`; a DoS guard, since these conversions are quadratic).
pub const MAX_STR_DIGITS: usize = 4300;

/// The decimal digits of `m` (no sign); CPython 3.11's `ValueError` beyond
/// [`MAX_STR_DIGITS`] digits, found from the bit length before converting when it is clear.
pub fn decimal(m: &num_bigint::BigUint) -> Result<String, OpError> {
    let too_many = || {
        err(
            ValueError,
            format!(
                "Exceeds the limit ({MAX_STR_DIGITS} digits) for integer string conversion; \
                 use sys.set_int_max_str_digits() to increase the limit"
            ),
        )
    };
    // 10^4300 < 2^14285: a magnitude of more bits has more than 4300 digits.
    if m.bits() > 14285 {
        return too_many();
    }
    let s = m.to_string();
    if s.len() > MAX_STR_DIGITS {
        return too_many();
    }
    Ok(s)
}

/// `str(b)`, with the limit of [`decimal`].
pub fn to_text(b: &BigInt) -> Result<String, OpError> {
    let d = decimal(b.magnitude())?;
    Ok(if b.is_negative() { format!("-{d}") } else { d })
}
