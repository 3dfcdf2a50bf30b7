//! The builtin functions of LANGUAGE.md on interpreter values: a copy of the reference
//! interpreter's (private) implementation, so that results and messages are identical.
//! `print`, `len`, `spawn`, `Lock` and `TransactionQueue` are handled natively in `calls.rs`.

#![allow(clippy::needless_question_mark)]

use super::{exc, R};
use std::sync::Arc;
use stmjit_lang::ast::Builtin;
use stmjit_lang::diag::ErrorKind::*;
use stmjit_lang::ops::{self, INT_MAX, INT_MIN};
use stmjit_lang::value::*;

fn arity(name: &str, args: &[Value], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("exactly {min}")
        } else if args.len() < min {
            format!("at least {min}")
        } else {
            format!("at most {max}")
        };
        let s = if (if args.len() < min { min } else { max }) == 1 {
            ""
        } else {
            "s"
        };
        return Err(exc(
            TypeError,
            format!("{name}() takes {want} argument{s} ({} given)", args.len()),
        ));
    }
    Ok(())
}

/// An int argument (bools count), or a `TypeError`.
pub fn int_arg(v: &Value) -> R<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        other => Err(exc(
            TypeError,
            format!(
                "'{}' object cannot be interpreted as an integer",
                other.type_name()
            ),
        )),
    }
}

fn float_arg(name: &str, v: &Value) -> R<f64> {
    match as_num(v) {
        Some(Num::Int(i)) => Ok(i as f64),
        Some(Num::Float(f)) => Ok(f),
        None => Err(exc(
            TypeError,
            format!(
                "{name}() argument must be a number, not '{}'",
                v.type_name()
            ),
        )),
    }
}

/// Parses `int(s)` as Python does (base 10, surrounding whitespace, sign, `_` between digits).
fn parse_int(s: &str) -> R<Value> {
    let bad = || {
        exc(
            ValueError,
            format!("invalid literal for int() with base 10: {}", str_repr(s)),
        )
    };
    let t = s.trim();
    let (neg, digits) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return Err(bad());
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    let magnitude: i128 = clean
        .trim_start_matches('0')
        .parse::<i128>()
        .or_else(|e| {
            if clean.chars().all(|c| c == '0') {
                Ok(0)
            } else {
                Err(e)
            }
        })
        .map_err(|_| exc(OverflowError, "int too large (ints are 63-bit)"))?;
    Ok(ops::int_result(Some(if neg {
        -magnitude
    } else {
        magnitude
    }))?)
}

/// Parses `float(s)` as Python does.
fn parse_float(s: &str) -> R<Value> {
    let bad = || {
        exc(
            ValueError,
            format!("could not convert string to float: {}", str_repr(s)),
        )
    };
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let body = lower.trim_start_matches(['+', '-']);
    if matches!(body, "inf" | "infinity" | "nan") {
        return lower.parse::<f64>().map(Value::Float).map_err(|_| bad());
    }
    // Underscores only between digits; Rust's parser rejects them, so drop them after checking.
    let chars: Vec<char> = t.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == '_' {
            let ok = i > 0
                && i + 1 < chars.len()
                && chars[i - 1].is_ascii_digit()
                && chars[i + 1].is_ascii_digit();
            if !ok {
                return Err(bad());
            }
        } else if !(c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '+' | '-')) {
            return Err(bad());
        }
    }
    let clean: String = t.chars().filter(|c| *c != '_').collect();
    clean.parse::<f64>().map(Value::Float).map_err(|_| bad())
}

/// Python's `hash` of an int: modulo 2^61 − 1, sign kept, −1 becomes −2.
fn hash_int(i: i64) -> i64 {
    const M: i128 = (1 << 61) - 1;
    let h = (i as i128).abs() % M;
    let h = if i < 0 { -h } else { h } as i64;
    if h == -1 {
        -2
    } else {
        h
    }
}

/// Python's `hash` of a float (equal to the int's hash for integral values).
fn hash_float(v: f64) -> i64 {
    const BITS: i32 = 61;
    const M: u64 = (1 << 61) - 1;
    if v.is_infinite() {
        return if v > 0.0 { 314159 } else { -314159 };
    }
    if v.is_nan() {
        return 0;
    }
    // frexp: v = m * 2^e with 0.5 <= |m| < 1.
    let (mut m, mut e) = frexp(v.abs());
    let mut x: u64 = 0;
    while m != 0.0 {
        x = ((x << 28) & M) | (x >> (BITS - 28));
        m *= 268435456.0;
        e -= 28;
        let y = m as u64;
        m -= y as f64;
        x += y;
        if x >= M {
            x -= M;
        }
    }
    let e = if e >= 0 {
        e % BITS
    } else {
        BITS - 1 - ((-1 - e) % BITS)
    };
    x = ((x << e) & M) | (x >> (BITS - e));
    let h = if v < 0.0 { -(x as i64) } else { x as i64 };
    if h == -1 {
        -2
    } else {
        h
    }
}

fn frexp(v: f64) -> (f64, i32) {
    if v == 0.0 {
        return (0.0, 0);
    }
    let bits = v.to_bits();
    let exp = ((bits >> 52) & 0x7ff) as i32;
    if exp == 0 {
        // Subnormal: scale up first.
        let (m, e) = frexp(v * 2f64.powi(64));
        return (m, e - 64);
    }
    let m = f64::from_bits((bits & !(0x7ff << 52)) | (1022 << 52));
    (m, exp - 1022)
}

/// `hash(v)`: Python's values for numbers and bools; a fixed FNV-1a hash for strs (Python
/// randomizes str hashes per process, so no program can depend on them).
pub fn hash_value(v: &Value) -> R<i64> {
    Ok(match v {
        Value::Int(i) => hash_int(*i),
        Value::Bool(b) => *b as i64,
        Value::Float(f) => hash_float(*f),
        Value::None => 0x5f5f_4e6f_6e65,
        Value::Str(s) => {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325;
            for b in s.bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            let h = (h >> 3) as i64;
            if h == -1 {
                -2
            } else {
                h
            }
        }
        Value::List(_) | Value::Dict(_) => {
            return Err(exc(
                TypeError,
                format!("unhashable type: '{}'", v.type_name()),
            ))
        }
        Value::Instance(i) => (Arc::as_ptr(i) as usize >> 4) as i64,
        Value::Class(c) => (Arc::as_ptr(c) as usize >> 4) as i64,
        Value::Function(f) => *f as i64,
        other => (other as *const Value as usize >> 4) as i64,
    })
}

/// `b(args)` for the builtins not handled natively.
pub fn call_builtin(
    b: Builtin,
    args: Vec<Value>,
    names: &dyn Fn(usize) -> String,
    start: std::time::Instant,
    prog_args: &[String],
) -> R<Value> {
    {
        let name = b.name();
        match b {
            Builtin::Print => {
                let mut line = String::new();
                for (i, a) in args.iter().enumerate() {
                    if i > 0 {
                        line.push(' ');
                    }
                    line.push_str(&a.to_str(names)?);
                }
                line.push('\n');
                let _ = line;
                Ok(Value::None)
            }
            Builtin::Len => {
                arity(name, &args, 1, 1)?;
                let n = match &args[0] {
                    Value::Str(s) => s.chars().count() as i64,
                    Value::List(l) => lock(&l.items).len() as i64,
                    Value::Dict(d) => lock(&d.map).len() as i64,
                    Value::Range(a, b, s) => {
                        return Ok(ops::int_result(Some(range_len(*a, *b, *s) as i128))?)
                    }
                    other => {
                        return Err(exc(
                            TypeError,
                            format!("object of type '{}' has no len()", other.type_name()),
                        ))
                    }
                };
                Ok(Value::Int(n))
            }
            Builtin::Range => {
                arity(name, &args, 1, 3)?;
                let ints: Vec<i64> = args.iter().map(int_arg).collect::<R<_>>()?;
                let (a, b, s) = match ints[..] {
                    [n] => (0, n, 1),
                    [a, b] => (a, b, 1),
                    [a, b, s] => (a, b, s),
                    _ => unreachable!("arity checked"),
                };
                if s == 0 {
                    return Err(exc(ValueError, "range() arg 3 must not be zero"));
                }
                Ok(Value::Range(a, b, s))
            }
            Builtin::Str => {
                arity(name, &args, 0, 1)?;
                match args.first() {
                    None => Ok(Value::str("")),
                    Some(v) => Ok(Value::str(v.to_str(names)?)),
                }
            }
            Builtin::Int => {
                arity(name, &args, 0, 1)?;
                match args.first() {
                    None => Ok(Value::Int(0)),
                    Some(Value::Int(i)) => Ok(Value::Int(*i)),
                    Some(Value::Bool(b)) => Ok(Value::Int(*b as i64)),
                    Some(Value::Float(f)) => {
                        if f.is_nan() {
                            return Err(exc(ValueError, "cannot convert float NaN to integer"));
                        }
                        if f.is_infinite() {
                            return Err(exc(
                                OverflowError,
                                "cannot convert float infinity to integer",
                            ));
                        }
                        let t = f.trunc();
                        if t < INT_MIN as f64 || t > INT_MAX as f64 {
                            return Err(exc(OverflowError, "int too large (ints are 63-bit)"));
                        }
                        Ok(Value::Int(t as i64))
                    }
                    Some(Value::Str(s)) => parse_int(s),
                    Some(other) => Err(exc(
                        TypeError,
                        format!(
                            "int() argument must be a string or a number, not '{}'",
                            other.type_name()
                        ),
                    )),
                }
            }
            Builtin::Float => {
                arity(name, &args, 0, 1)?;
                match args.first() {
                    None => Ok(Value::Float(0.0)),
                    Some(Value::Str(s)) => parse_float(s),
                    Some(v) => match as_num(v) {
                        Some(Num::Int(i)) => Ok(Value::Float(i as f64)),
                        Some(Num::Float(f)) => Ok(Value::Float(f)),
                        None => Err(exc(
                            TypeError,
                            format!(
                                "float() argument must be a string or a real number, not '{}'",
                                v.type_name()
                            ),
                        )),
                    },
                }
            }
            Builtin::Bool => {
                arity(name, &args, 0, 1)?;
                Ok(Value::Bool(args.first().is_some_and(|v| v.truthy())))
            }
            Builtin::Abs => {
                arity(name, &args, 1, 1)?;
                match as_num(&args[0]) {
                    Some(Num::Int(i)) => Ok(ops::int_result(Some((i as i128).abs()))?),
                    Some(Num::Float(f)) => Ok(Value::Float(f.abs())),
                    None => Err(exc(
                        TypeError,
                        format!("bad operand type for abs(): '{}'", args[0].type_name()),
                    )),
                }
            }
            Builtin::Min | Builtin::Max => {
                let items = match args.len() {
                    0 => {
                        return Err(exc(
                            TypeError,
                            format!("{name} expected at least 1 argument, got 0"),
                        ))
                    }
                    1 => ops::iterate(&args[0])?,
                    _ => args,
                };
                let op = if b == Builtin::Min {
                    stmjit_lang::ast::CmpOp::Lt
                } else {
                    stmjit_lang::ast::CmpOp::Gt
                };
                let mut it = items.into_iter();
                let Some(mut best) = it.next() else {
                    return Err(exc(
                        ValueError,
                        format!("{name}() arg is an empty sequence"),
                    ));
                };
                for v in it {
                    if order(&v, &best, op)? {
                        best = v;
                    }
                }
                Ok(best)
            }
            Builtin::Sqrt => {
                arity(name, &args, 1, 1)?;
                let x = float_arg(name, &args[0])?;
                if x < 0.0 {
                    return Err(exc(ValueError, "math domain error"));
                }
                Ok(Value::Float(x.sqrt()))
            }
            Builtin::Ord => {
                arity(name, &args, 1, 1)?;
                match &args[0] {
                    Value::Str(s) => {
                        let mut chars = s.chars();
                        match (chars.next(), chars.next()) {
                            (Some(c), None) => Ok(Value::Int(c as i64)),
                            _ => Err(exc(
                                TypeError,
                                format!(
                                    "ord() expected a character, but string of length {} found",
                                    s.chars().count()
                                ),
                            )),
                        }
                    }
                    other => Err(exc(
                        TypeError,
                        format!(
                            "ord() expected string of length 1, but {} found",
                            other.type_name()
                        ),
                    )),
                }
            }
            Builtin::Chr => {
                arity(name, &args, 1, 1)?;
                let i = int_arg(&args[0])?;
                u32::try_from(i)
                    .ok()
                    .and_then(char::from_u32)
                    .map(ops::char_value)
                    .ok_or_else(|| exc(ValueError, "chr() arg not in range(0x110000)"))
            }
            Builtin::Hash => {
                arity(name, &args, 1, 1)?;
                Ok(Value::Int(hash_value(&args[0])?))
            }
            Builtin::Time => {
                arity(name, &args, 0, 0)?;
                Ok(Value::Float(start.elapsed().as_secs_f64()))
            }
            Builtin::Args => {
                arity(name, &args, 0, 0)?;
                let items = prog_args.iter().map(|a| Value::str(a.as_str())).collect();
                Ok(ListObj::new_value(items))
            }
            Builtin::Cores => {
                arity(name, &args, 0, 0)?;
                let n = std::thread::available_parallelism().map_or(1, |n| n.get());
                Ok(Value::Int(n as i64))
            }
            Builtin::Spawn | Builtin::Lock | Builtin::TransactionQueue => {
                unreachable!("handled natively")
            }
            Builtin::Serve | Builtin::Shutdown | Builtin::ServerPort => Err(exc(
                TypeError,
                format!("{name}() is not supported by the reference interpreter yet"),
            )),
        }
    }
}
