//! Number builtins with CPython's exact results: `round` (half to even, exact decimal
//! rounding of floats) and `hex`, `oct`, `bin`.

use crate::diag::ErrorKind::{OverflowError, TypeError, ValueError};
use crate::ops::int_result;
use crate::value::{OpError, Value};

type R<T> = Result<T, OpError>;

fn int_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        _ => None,
    }
}

/// `hex(i)`, `oct(i)` or `bin(i)` (`name`).
pub fn radix(name: &str, args: &[Value]) -> R<Value> {
    crate::builtins_core::arity(name, args, 1, 1)?;
    let x = crate::special::index_of(&args[0])?;
    if let Value::BigInt(b) = &*x {
        return Ok(Value::str(crate::bigint::radix_text(name, b)));
    }
    let Some(i) = int_of(&x) else {
        return Err((
            TypeError,
            format!(
                "'{}' object cannot be interpreted as an integer",
                args[0].type_name()
            ),
        ));
    };
    let m = i.unsigned_abs();
    let body = match name {
        "hex" => format!("0x{m:x}"),
        "oct" => format!("0o{m:o}"),
        _ => format!("0b{m:b}"),
    };
    Ok(Value::str(if i < 0 { format!("-{body}") } else { body }))
}

/// `pow(a, b)`: `a ** b` (special methods included); `pow(a, b, m)`: `a ** b % m` computed
/// modularly, ints only, a negative `b` through the inverse of `a` modulo `m` (CPython's).
pub fn pow(args: &[Value]) -> R<Value> {
    crate::builtins_core::arity("pow", args, 2, 3)?;
    if args.len() == 2 || matches!(args[2], Value::None) {
        return crate::ops::binary(crate::ast::BinOp::Pow, &args[0], &args[1]);
    }
    let ints: Option<Vec<num_bigint::BigInt>> = args.iter().map(crate::bigint::as_big).collect();
    let Some(ints) = ints else {
        return Err((
            TypeError,
            "pow() 3rd argument not allowed unless all arguments are integers".into(),
        ));
    };
    crate::bigint::pow_mod(&ints[0], &ints[1], &ints[2])
}

/// `round(x)` or `round(x, n)`.
pub fn round(args: &[Value]) -> R<Value> {
    crate::builtins_core::arity("round", args, 1, 2)?;
    let ndigits = args.get(1).map(crate::special::index_of).transpose()?;
    let digits = match ndigits.as_deref() {
        None | Some(Value::None) => None,
        // A big ndigits clamps, as CPython's index-sized conversion does.
        Some(Value::BigInt(b)) => Some(if num_traits::Signed::is_negative(&**b) {
            i64::MIN
        } else {
            i64::MAX
        }),
        Some(v) => Some(int_of(v).ok_or_else(|| {
            (
                TypeError,
                format!(
                    "'{}' object cannot be interpreted as an integer",
                    v.type_name()
                ),
            )
        })?),
    };
    match (&args[0], digits) {
        (Value::BigInt(_), None) => Ok(args[0].clone()),
        (Value::BigInt(b), Some(n)) => {
            if n >= 0 {
                return Ok(args[0].clone());
            }
            // 10^k > 2|b| when k >= bits(b): the result is 0.
            let k = n.unsigned_abs();
            if k >= b.bits() {
                return Ok(Value::Int(0));
            }
            let p = num_traits::pow(num_bigint::BigInt::from(10), k as usize);
            let (q, r) = num_integer::Integer::div_mod_floor(&**b, &p);
            let twice: num_bigint::BigInt = &r * 2;
            let q = match twice.cmp(&p) {
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal if num_integer::Integer::is_odd(&q) => q + 1,
                _ => q,
            };
            Ok(crate::bigint::big_value(q * p))
        }
        (Value::Int(_) | Value::Bool(_), None) => Ok(Value::Int(int_of(&args[0]).unwrap_or(0))),
        (Value::Int(_) | Value::Bool(_), Some(n)) => {
            let x = int_of(&args[0]).unwrap_or(0) as i128;
            if n >= 0 {
                return Ok(Value::Int(x as i64));
            }
            if n < -38 {
                return Ok(Value::Int(0));
            }
            let p = 10i128.pow((-n) as u32);
            let (q, r) = (x.div_euclid(p), x.rem_euclid(p));
            let q = match (2 * r).cmp(&p) {
                std::cmp::Ordering::Greater => q + 1,
                std::cmp::Ordering::Equal => q + (q & 1),
                std::cmp::Ordering::Less => q,
            };
            int_result(q.checked_mul(p))
        }
        (Value::Float(x), None) => {
            if x.is_nan() {
                return Err((ValueError, "cannot convert float NaN to integer".into()));
            }
            if x.is_infinite() {
                return Err((
                    OverflowError,
                    "cannot convert float infinity to integer".into(),
                ));
            }
            Ok(crate::bigint::from_f64(x.round_ties_even()))
        }
        (Value::Float(x), Some(n)) => Ok(Value::Float(round_float(*x, n))),
        (other, _) => Err((
            TypeError,
            format!("type {} doesn't define __round__ method", other.type_name()),
        )),
    }
}

/// `x` rounded to `n` decimal places (negative: tens, hundreds...), exactly, ties to even.
fn round_float(x: f64, n: i64) -> f64 {
    if !x.is_finite() || x == 0.0 || n > 330 {
        return x;
    }
    if n < -330 {
        // Beyond the float range's 10^308: zero with x's sign, as CPython.
        return 0.0 * x;
    }
    if n >= 0 {
        // Rust prints the exact binary value rounded half to even: CPython's result.
        return format!("{:.*}", n as usize, x).parse().unwrap_or(x);
    }
    let k = (-n) as usize;
    let digits = format!("{:.0}", x.abs().trunc());
    let frac = x.fract() != 0.0;
    let padded = format!(
        "{}{digits}",
        "0".repeat((k + 1).saturating_sub(digits.len()))
    );
    let (keep, rest) = padded.split_at(padded.len() - k);
    let half = format!("5{}", "0".repeat(k - 1));
    let up = match rest.cmp(half.as_str()) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Equal => frac || keep.ends_with(['1', '3', '5', '7', '9']),
        std::cmp::Ordering::Less => false,
    };
    let mut keep: Vec<u8> = keep.bytes().collect();
    if up {
        let mut i = keep.len();
        loop {
            if i == 0 {
                keep.insert(0, b'1');
                break;
            }
            i -= 1;
            if keep[i] == b'9' {
                keep[i] = b'0';
            } else {
                keep[i] += 1;
                break;
            }
        }
    }
    let text = format!("{}{}", String::from_utf8_lossy(&keep), "0".repeat(k));
    let r: f64 = text.parse().unwrap_or(0.0);
    if x < 0.0 {
        -r
    } else {
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(args: &[Value]) -> String {
        round(args).unwrap().repr(&|_| String::new()).unwrap()
    }

    #[test]
    fn python_examples() {
        assert_eq!(r(&[Value::Float(2.5)]), "2");
        assert_eq!(r(&[Value::Float(3.5)]), "4");
        assert_eq!(r(&[Value::Float(-2.5)]), "-2");
        assert_eq!(r(&[Value::Float(2.675), Value::Int(2)]), "2.67");
        assert_eq!(r(&[Value::Float(0.125), Value::Int(2)]), "0.12");
        assert_eq!(r(&[Value::Float(1234.5), Value::Int(-1)]), "1230.0");
        assert_eq!(r(&[Value::Float(1250.0), Value::Int(-2)]), "1200.0");
        assert_eq!(r(&[Value::Float(1350.0), Value::Int(-2)]), "1400.0");
        assert_eq!(r(&[Value::Float(-1251.0), Value::Int(-2)]), "-1300.0");
        assert_eq!(r(&[Value::Float(49.0), Value::Int(-2)]), "0.0");
        assert_eq!(r(&[Value::Float(950.0), Value::Int(-3)]), "1000.0");
        assert_eq!(r(&[Value::Int(1250), Value::Int(-2)]), "1200");
        assert_eq!(r(&[Value::Int(-1350), Value::Int(-2)]), "-1400");
        assert_eq!(r(&[Value::Int(7), Value::Int(3)]), "7");
        assert_eq!(r(&[Value::Float(1.5), Value::None]), "2");
        let h = |name: &str, i: i64| {
            radix(name, &[Value::Int(i)])
                .unwrap()
                .to_str(&|_| String::new())
                .unwrap()
        };
        assert_eq!(h("hex", 255), "0xff");
        assert_eq!(h("hex", -255), "-0xff");
        assert_eq!(h("oct", 8), "0o10");
        assert_eq!(h("bin", 5), "0b101");
        assert_eq!(h("bin", 0), "0b0");
    }
}
