//! The interpreter-state-free part of the builtin functions and of the str/list/dict methods
//! of LANGUAGE.md, over [`Value`]s: one implementation shared by the reference interpreter
//! and the JIT's runtime (which converts its heap objects to `Value`s for these rare
//! operations), so that results, error kinds and messages are identical by construction.
//! What needs interpreter or runtime state (`print`, `spawn`, `Lock`, `TransactionQueue`,
//! Thread and TransactionQueue methods) stays with each caller.

#![allow(clippy::needless_question_mark)]

use crate::ast::{Builtin, CmpOp, FuncId, Function};
use crate::diag::ErrorKind::{self, *};
use crate::json::{self, Json};
use crate::ops;
use crate::value::*;
use std::sync::Arc;
use std::time::Instant;

/// Result of the shared operations; callers convert the error into their own type.
pub type R<T> = Result<T, OpError>;

fn exc(kind: ErrorKind, msg: impl Into<String>) -> OpError {
    (kind, msg.into())
}

/// The attribute name (`args[1]`, a str) of `getattr`, `setattr` or `hasattr` (`name`), after
/// checking that it got between `min` and `max` arguments.
pub fn attr_name(name: &str, args: &[Value], min: usize, max: usize) -> R<String> {
    arity(name, args, min, max)?;
    match &args[1] {
        Value::Str(s) => Ok(s.to_string()),
        other => Err(exc(
            ErrorKind::TypeError,
            format!("attribute name must be string, not '{}'", other.type_name()),
        )),
    }
}

/// Checks that `name()` got between `min` and `max` arguments; Python's `TypeError` if not.
/// Public so that callers checking the builtins they handle themselves use the same message.
pub fn arity(name: &str, args: &[Value], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        return Err(arity_error(name, args.len(), min, max));
    }
    Ok(())
}

/// Builtins and methods that CPython defines with one argument (`METH_O`): their arity
/// error reads "takes exactly one argument".
const ONE_ARGUMENT: &[&str] = &[
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "callable",
    "chr",
    "hash",
    "hex",
    "id",
    "len",
    "oct",
    "ord",
    "repr",
    "list.append",
    "list.extend",
    "list.remove",
    "list.count",
    "str.join",
    "str.partition",
    "str.rpartition",
];

/// `ascii(x)` of `repr(x)`: each non-ASCII character escaped as `\xNN`, `\uNNNN` or
/// `\UNNNNNNNN`, as CPython escapes it.
pub fn ascii_escaped(repr: &str) -> String {
    let mut out = String::with_capacity(repr.len());
    for c in repr.chars() {
        match c as u32 {
            0..=0x7f => out.push(c),
            n @ 0x80..=0xff => out.push_str(&format!("\\x{n:02x}")),
            n @ 0x100..=0xffff => out.push_str(&format!("\\u{n:04x}")),
            n => out.push_str(&format!("\\U{n:08x}")),
        }
    }
    out
}

/// `input([prompt])` once the program's output so far is out: writes `str(prompt)` to
/// stdout, then reads a line of stdin, without its line end; an `EOFError` at the end of
/// the input (as CPython's).
pub fn read_input(prompt: Option<&str>) -> R<Value> {
    use std::io::{BufRead, Write};
    if let Some(p) = prompt {
        let mut out = std::io::stdout().lock();
        // A closed pipe is ignored, as for `print`.
        let _ = out.write_all(p.as_bytes());
        let _ = out.flush();
    }
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) => Err(exc(EOFError, "EOF when reading a line")),
        Ok(_) => {
            if line.ends_with('\n') {
                line.pop();
                if line.ends_with('\r') {
                    line.pop();
                }
            }
            Ok(Value::str(line))
        }
        Err(e) => Err(exc(
            ValueError,
            format!("input(): stdin is not readable text ({e})"),
        )),
    }
}

/// Builtins whose arity error CPython words "NAME expected ... argument(s), got N" (types
/// and functions with vectorcall argument checks).
const EXPECTED_FORM: &[&str] = &[
    "float",
    "bool",
    "list",
    "tuple",
    "dict",
    "set",
    "frozenset",
    "range",
    "divmod",
    "isinstance",
    "issubclass",
    "input",
    "iter",
    "next",
    "sorted",
    "reversed",
    "min",
    "max",
    "getattr",
    "setattr",
    "hasattr",
];

/// The `TypeError` for `name()` called with `given` arguments where `min..=max` are taken,
/// worded as CPython words it for that builtin.
fn arity_error(name: &str, given: usize, min: usize, max: usize) -> OpError {
    if min == 1 && max == 1 && ONE_ARGUMENT.contains(&name) {
        return exc(
            TypeError,
            format!("{name}() takes exactly one argument ({given} given)"),
        );
    }
    let bound = if given < min { min } else { max };
    let s = if bound == 1 { "" } else { "s" };
    if EXPECTED_FORM.contains(&name) {
        let how = if min == max {
            ""
        } else if given < min {
            "at least "
        } else {
            "at most "
        };
        return exc(
            TypeError,
            format!("{name} expected {how}{bound} argument{s}, got {given}"),
        );
    }
    let want = if min == max {
        format!("exactly {min}")
    } else if given < min {
        format!("at least {min}")
    } else {
        format!("at most {max}")
    };
    exc(
        TypeError,
        format!("{name}() takes {want} argument{s} ({given} given)"),
    )
}

/// An int argument (bools count), or a `TypeError`. Public for callers' own builtins.
pub fn int_arg(v: &Value) -> R<i64> {
    match &*crate::special::index_of(v)? {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(*b as i64),
        Value::BigInt(_) => Err(exc(
            OverflowError,
            "Python int too large to convert to C ssize_t",
        )),
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
        Some(Num::Big(b)) => Ok(crate::bigint::to_f64(&b)?),
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
    crate::bigint::parse_decimal(&clean, neg).map_err(|(k, m)| exc(k, m))
}

/// `int(s, base)` as CPython parses it: `base` 0 (the prefix decides: `0x`, `0o`, `0b`, else
/// decimal without leading zeros) or 2..=36 (a prefix of its own base allowed: `int("0xff",
/// 16)`), surrounding whitespace, a sign, single underscores between digits and after a
/// prefix; CPython's digit limit for bases that are no power of two.
fn parse_int_base(s: &str, base: u32) -> R<Value> {
    let bad = || {
        exc(
            ValueError,
            format!(
                "invalid literal for int() with base {base}: {}",
                str_repr(s)
            ),
        )
    };
    let t = s.trim();
    let (neg, body) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let prefix = |p: &str| body.len() >= 2 && body[..2].eq_ignore_ascii_case(p);
    let (radix, digits, prefixed) = match base {
        0 | 16 if prefix("0x") => (16, &body[2..], true),
        0 | 8 if prefix("0o") => (8, &body[2..], true),
        0 | 2 if prefix("0b") => (2, &body[2..], true),
        0 => (10, body, false),
        b => (b, body, false),
    };
    // After a prefix, one underscore may come first (`0x_ff`); else only between digits.
    let digits = if prefixed {
        digits.strip_prefix('_').unwrap_or(digits)
    } else {
        digits
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
        || !digits.chars().all(|c| c == '_' || c.is_digit(radix))
    {
        return Err(bad());
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    // Base 0 takes no leading zero in a decimal number but zero itself (`int("00", 0)`).
    if base == 0 && !prefixed && clean.starts_with('0') && clean.chars().any(|c| c != '0') {
        return Err(bad());
    }
    if radix == 10 {
        return crate::bigint::parse_decimal(&clean, neg).map_err(|(k, m)| exc(k, m));
    }
    if !radix.is_power_of_two() && clean.len() > crate::bigint::MAX_STR_DIGITS {
        return Err(exc(
            ValueError,
            format!(
                "Exceeds the limit ({} digits) for integer string conversion: value has {} \
                 digits; use sys.set_int_max_str_digits() to increase the limit",
                crate::bigint::MAX_STR_DIGITS,
                clean.len()
            ),
        ));
    }
    let b = num_bigint::BigInt::parse_bytes(clean.as_bytes(), radix).ok_or_else(bad)?;
    Ok(crate::bigint::big_value(if neg { -b } else { b }))
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
pub fn hash_int(i: i64) -> i64 {
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
        Value::BigInt(b) => crate::bigint::hash(b),
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
        Value::Tuple(t) => {
            // Unhashable items fail with their own type, as in CPython (checked after the
            // items' hashes: an instance's `__hash__` runs once).
            let items: Vec<i64> = t.items.iter().map(hash_value).collect::<R<_>>()?;
            Key::of_stored(v)?;
            crate::builtins_seq::hash_tuple(&items)
        }
        Value::FrozenSet(_) => {
            // Order-free: the members' hashes, sorted, as a tuple's (CPython's own
            // frozenset hash differs; no program can depend on either).
            let mut items: Vec<i64> = crate::ops::iterate(v)?
                .iter()
                .map(hash_value)
                .collect::<R<_>>()?;
            items.sort_unstable();
            crate::builtins_seq::hash_tuple(&items) ^ 0x7a5e_7a5e
        }
        Value::List(_) | Value::Dict(_) | Value::Set(_) | Value::Slice(_) => {
            return Err(exc(
                TypeError,
                format!("unhashable type: '{}'", v.type_name()),
            ))
        }
        Value::Instance(i) => match i.hash_kind() {
            crate::value::HashKind::Identity => crate::value::identity_hash(i),
            crate::value::HashKind::Custom => crate::value::instance_hash(v, i, false)?,
            crate::value::HashKind::Unhashable => {
                return Err(exc(
                    TypeError,
                    format!("unhashable type: '{}'", v.type_name()),
                ))
            }
        },
        Value::Class(c) => (Arc::as_ptr(c) as usize >> 4) as i64,
        Value::Function(f) => (Arc::as_ptr(f) as usize >> 4) as i64,
        // Stable per builtin (one object each): a fixed-key hash of which one it is.
        Value::Builtin(b) => {
            use std::hash::{Hash, Hasher};
            let mut s = std::collections::hash_map::DefaultHasher::new();
            b.hash(&mut s);
            (s.finish() >> 4) as i64
        }
        // By receiver identity and function, as they compare (`Key::Method`).
        Value::BoundMethod(_) | Value::BuiltinMethod(_) => {
            use std::hash::{Hash, Hasher};
            let mut s = std::collections::hash_map::DefaultHasher::new();
            crate::value::Key::of(v)?.hash(&mut s);
            (s.finish() >> 4) as i64
        }
        // CPython's: the hash of the tuple of what equal ranges share.
        Value::Range(..) | Value::BigRange(_) => {
            let items: Vec<i64> = crate::ranges::key_parts(v)
                .into_iter()
                .flatten()
                .map(|x| hash_value(&x))
                .collect::<R<_>>()?;
            crate::builtins_seq::hash_tuple(&items)
        }
        // By identity, as they compare: the object's address, fixed for its life.
        Value::Thread(_) | Value::Lock(_) | Value::Queue(_) => {
            (crate::value::identity_number(v) >> 4) as i64
        }
    })
}

/// What the shared builtins need from their caller beyond the arguments.
pub struct BuiltinEnv<'a> {
    /// The qualified name of function `id` (for `str` of functions and bound methods).
    pub names: &'a dyn Fn(FuncId) -> String,
    /// When the program started (`time()` counts from here).
    pub start: Instant,
    /// The program's command-line arguments (`args()`).
    pub args: &'a [String],
}

/// `b(args)` for every builtin except `print`, `spawn`, `Lock` and `TransactionQueue`, which
/// need the caller's state (output, threads, its own object representation) and must be
/// handled by the caller before calling this.
pub fn call_builtin(b: Builtin, args: Vec<Value>, env: &BuiltinEnv) -> R<Value> {
    let name = b.name();
    match b {
        Builtin::Len => len(&args),
        Builtin::Range => range(&args),
        Builtin::Str => {
            arity(name, &args, 0, 1)?;
            match args.first() {
                None => Ok(Value::str("")),
                Some(v) => Ok(Value::str(v.to_str(env.names)?)),
            }
        }
        Builtin::Int => int(&args),
        Builtin::Float => float(&args),
        Builtin::Bool => {
            arity(name, &args, 0, 1)?;
            match args.first() {
                Some(v) => Ok(Value::Bool(crate::special::truth(v)?)),
                None => Ok(Value::Bool(false)),
            }
        }
        Builtin::Abs => abs(&args),
        Builtin::Round => crate::builtins_num::round(&args),
        Builtin::Hex | Builtin::Oct | Builtin::Bin => crate::builtins_num::radix(name, &args),
        Builtin::Min | Builtin::Max => min_max(b, args),
        Builtin::Sqrt => {
            arity(name, &args, 1, 1)?;
            let x = float_arg(name, &args[0])?;
            if x < 0.0 {
                return Err(exc(ValueError, "math domain error"));
            }
            Ok(Value::Float(x.sqrt()))
        }
        Builtin::Ord => ord(&args),
        Builtin::Chr => {
            arity(name, &args, 1, 1)?;
            if let Value::BigInt(_) = &args[0] {
                return Err(exc(
                    OverflowError,
                    "Python int too large to convert to C int",
                ));
            }
            let i = int_arg(&args[0])?;
            u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .map(ops::char_value)
                .ok_or_else(|| exc(ValueError, "chr() arg not in range(0x110000)"))
        }
        Builtin::Sum => {
            arity(name, &args, 1, 2)?;
            let mut total = args.get(1).cloned().unwrap_or(Value::Int(0));
            if let Value::Str(_) = total {
                return Err(exc(
                    TypeError,
                    "sum() can't sum strings [use ''.join(seq) instead]",
                ));
            }
            for v in ops::iterate(&args[0])? {
                total = ops::binary(crate::ast::BinOp::Add, &total, &v)?;
            }
            Ok(total)
        }
        Builtin::Any | Builtin::All => {
            arity(name, &args, 1, 1)?;
            let want = b == Builtin::Any;
            for v in ops::iterate(&args[0])? {
                if crate::special::truth(&v)? == want {
                    return Ok(Value::Bool(want));
                }
            }
            Ok(Value::Bool(!want))
        }
        Builtin::Sorted => {
            arity(name, &args, 1, 1)?;
            Ok(ListObj::new_value(sort_values(ops::iterate(&args[0])?)?))
        }
        Builtin::List => {
            arity(name, &args, 0, 1)?;
            match args.first() {
                None => Ok(ListObj::new_value(Vec::new())),
                Some(v) => Ok(ListObj::new_value(ops::iterate(v)?)),
            }
        }
        Builtin::Format => {
            arity(name, &args, 1, 2)?;
            let spec = match args.get(1) {
                None => "",
                Some(Value::Str(s)) => s,
                Some(other) => {
                    return Err(exc(
                        TypeError,
                        format!("format() argument 2 must be str, not {}", other.type_name()),
                    ))
                }
            };
            let text = |v: &Value| v.to_str(env.names);
            Ok(Value::str(crate::format::format_value(
                &args[0], spec, &text,
            )?))
        }
        Builtin::Repr => {
            arity(name, &args, 1, 1)?;
            Ok(Value::str(args[0].repr(env.names)?))
        }
        Builtin::Ascii => {
            arity(name, &args, 1, 1)?;
            Ok(Value::str(ascii_escaped(&args[0].repr(env.names)?)))
        }
        Builtin::JsonEncode => {
            arity(name, &args, 1, 1)?;
            Ok(Value::str(json::encode(&to_json(&args[0], 0)?)))
        }
        Builtin::JsonDecode => {
            arity(name, &args, 1, 1)?;
            let Value::Str(s) = &args[0] else {
                return Err(exc(
                    TypeError,
                    format!(
                        "json_decode() argument must be str, not '{}'",
                        args[0].type_name()
                    ),
                ));
            };
            json::decode(s).map(from_json).map_err(|m| {
                // The int digit limit is int()'s error, worded as CPython's exactly.
                if m.starts_with("Exceeds the limit") {
                    exc(ValueError, m)
                } else {
                    exc(ValueError, format!("json_decode(): {m}"))
                }
            })
        }
        Builtin::Hash => {
            arity(name, &args, 1, 1)?;
            Ok(crate::bigint::i128_value(hash_value(&args[0])? as i128))
        }
        Builtin::Time => {
            arity(name, &args, 0, 0)?;
            Ok(Value::Float(env.start.elapsed().as_secs_f64()))
        }
        Builtin::Args => {
            arity(name, &args, 0, 0)?;
            let items = env.args.iter().map(|a| Value::str(a.as_str())).collect();
            Ok(ListObj::new_value(items))
        }
        Builtin::NotImplemented => Err(exc(
            ErrorKind::TypeError,
            "'NotImplementedType' object is not callable",
        )),
        Builtin::Cores => {
            arity(name, &args, 0, 0)?;
            let n = std::thread::available_parallelism().map_or(1, |n| n.get());
            Ok(Value::Int(n as i64))
        }
        Builtin::PrintKw => print_line(&args, env.names),
        Builtin::Tuple => crate::builtins_seq::tuple(&args),
        Builtin::Dict => crate::builtins_seq::dict(&args),
        Builtin::Id => {
            arity(name, &args, 1, 1)?;
            Ok(crate::value::object_id(&args[0]))
        }
        Builtin::Enumerate => crate::builtins_seq::enumerate(&args),
        Builtin::Slice => crate::slices::slice_builtin(&args),
        Builtin::Zip => crate::builtins_seq::zip(&args),
        Builtin::Reversed => crate::builtins_seq::reversed(&args),
        Builtin::Divmod => crate::builtins_seq::divmod(&args),
        Builtin::Pow => crate::builtins_num::pow(&args),
        Builtin::Type => {
            arity(name, &args, 1, 1)?;
            type_of(&args[0])
        }
        Builtin::IsInstance => {
            arity(name, &args, 2, 2)?;
            is_instance(&args[0], &args[1])
        }
        Builtin::IsSubclass => {
            arity(name, &args, 2, 2)?;
            subclass_arg(&args[0])?;
            Ok(Value::Bool(subclass_of(&args[0], &args[1])?))
        }
        Builtin::Set => crate::sets::set_builtin(&args),
        Builtin::FrozenSet => crate::sets::frozenset_builtin(&args),
        Builtin::ExcClass(_) => unreachable!("{name} is a class, called as one"),
        Builtin::Print
        | Builtin::Input
        | Builtin::Spawn
        | Builtin::Lock
        | Builtin::TransactionQueue
        | Builtin::Map
        | Builtin::Filter
        | Builtin::GetAttr
        | Builtin::SetAttr
        | Builtin::HasAttr
        | Builtin::SuperAttr
        | Builtin::SuperCall => {
            unreachable!("{name}() is handled by the caller")
        }
        // As CPython's: `type(None)()` is None; the others make no instances here.
        Builtin::NoneType if args.is_empty() => Ok(Value::None),
        Builtin::NoneType
        | Builtin::FunctionType
        | Builtin::MethodType
        | Builtin::BuiltinFunctionType
        | Builtin::ThreadType => Err(exc(TypeError, format!("cannot create '{name}' instances"))),
        Builtin::Serve | Builtin::Shutdown | Builtin::ServerPort => Err(exc(
            TypeError,
            format!("{name}() is not supported by the reference interpreter yet"),
        )),
    }
}

/// The JSON tree of `v` for `json_encode` (what Python's `json.dumps` accepts: None, bools,
/// numbers, strs, lists, tuples, dicts whose keys are strs, numbers, bools or None).
fn to_json(v: &Value, depth: usize) -> R<Json> {
    if depth > json::MAX_DEPTH {
        return Err(exc(
            ValueError,
            format!(
                "json_encode(): nesting deeper than {} (or a circular reference)",
                json::MAX_DEPTH
            ),
        ));
    }
    Ok(match v {
        Value::None => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::Int(*i),
        Value::BigInt(b) => Json::BigInt(crate::bigint::to_text(b)?),
        Value::Float(x) => Json::Float(*x),
        Value::Str(s) => Json::Str(s.to_string()),
        Value::List(l) => {
            let items = lock(&l.items).clone();
            Json::List(
                items
                    .iter()
                    .map(|x| to_json(x, depth + 1))
                    .collect::<R<_>>()?,
            )
        }
        // A tuple is a JSON array, as in Python (it decodes back as a list).
        Value::Tuple(t) => Json::List(
            t.items
                .iter()
                .map(|x| to_json(x, depth + 1))
                .collect::<R<_>>()?,
        ),
        Value::Dict(d) => {
            let items = lock(&d.map).items();
            let mut out = Vec::with_capacity(items.len());
            for (k, x) in &items {
                let key = match k {
                    Value::Str(s) => s.to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::BigInt(b) => crate::bigint::to_text(b)?,
                    Value::Float(f) => json::float_text(*f),
                    Value::Bool(b) => b.to_string(),
                    Value::None => "null".into(),
                    other => {
                        return Err(exc(
                            TypeError,
                            format!(
                                "json_encode(): keys must be str, int, float, bool or None, not {}",
                                other.type_name()
                            ),
                        ))
                    }
                };
                out.push((key, to_json(x, depth + 1)?));
            }
            Json::Dict(out)
        }
        other => {
            return Err(exc(
                TypeError,
                format!(
                    "json_encode(): object of type {} is not JSON serializable",
                    other.type_name()
                ),
            ))
        }
    })
}

/// The value `json_decode` gives for a JSON tree.
fn from_json(j: Json) -> Value {
    match j {
        Json::Null => Value::None,
        Json::Bool(b) => Value::Bool(b),
        Json::Int(i) => Value::Int(i),
        Json::BigInt(t) => {
            let (neg, digits) = match t.strip_prefix('-') {
                Some(d) => (true, d),
                None => (false, t.as_str()),
            };
            crate::bigint::parse_decimal(digits, neg).unwrap_or(Value::None)
        }
        Json::Float(x) => Value::Float(x),
        Json::Str(s) => Value::str(s),
        Json::List(items) => ListObj::new_value(items.into_iter().map(from_json).collect()),
        Json::Dict(items) => {
            let mut d = Dict::default();
            for (k, v) in items {
                let key: Arc<str> = k.into();
                d.insert(Key::Str(key.clone()), Value::Str(key), from_json(v));
            }
            DictObj::new_value(d)
        }
    }
}

/// `type(x)`: the class of an instance; for the built-in types that have a constructor,
/// the constructor (`type(1) is int`, `type(Lock()) is Lock`); else an unnamed type
/// (`NoneType`, `Thread`, ...). Every value has one (a `Result` for the callers' sake).
pub fn type_of(v: &Value) -> R<Value> {
    Ok(match v {
        Value::Instance(i) => Value::Class(i.class.clone()),
        Value::Int(_) | Value::BigInt(_) => Value::Builtin(Builtin::Int),
        Value::Bool(_) => Value::Builtin(Builtin::Bool),
        Value::Float(_) => Value::Builtin(Builtin::Float),
        Value::Str(_) => Value::Builtin(Builtin::Str),
        Value::List(_) => Value::Builtin(Builtin::List),
        Value::Tuple(_) => Value::Builtin(Builtin::Tuple),
        Value::Dict(_) => Value::Builtin(Builtin::Dict),
        Value::Set(_) => Value::Builtin(Builtin::Set),
        Value::FrozenSet(_) => Value::Builtin(Builtin::FrozenSet),
        Value::Range(..) | Value::BigRange(_) => Value::Builtin(Builtin::Range),
        Value::Slice(_) => Value::Builtin(Builtin::Slice),
        Value::Lock(_) => Value::Builtin(Builtin::Lock),
        Value::Queue(_) => Value::Builtin(Builtin::TransactionQueue),
        Value::Thread(_) => Value::Builtin(Builtin::ThreadType),
        Value::None => Value::Builtin(Builtin::NoneType),
        Value::Function(_) => Value::Builtin(Builtin::FunctionType),
        Value::BoundMethod(_) => Value::Builtin(Builtin::MethodType),
        Value::BuiltinMethod(_) => Value::Builtin(Builtin::BuiltinFunctionType),
        Value::Builtin(b) if !b.is_type() => Value::Builtin(Builtin::BuiltinFunctionType),
        Value::Builtin(_) | Value::Class(_) => Value::Builtin(Builtin::Type),
    })
}

/// Whether `class` is `of` or derives from it.
pub fn is_subclass(class: &Arc<ClassObj>, of: &Arc<ClassObj>) -> bool {
    let mut c = Some(class);
    while let Some(k) = c {
        if Arc::ptr_eq(k, of) {
            return true;
        }
        c = k.base.as_ref();
    }
    false
}

/// `isinstance(x, cls)`: `cls` a class, a built-in type's constructor (`int`, `str`, ...)
/// or a tuple (or list) of them, nested as in CPython.
fn is_instance(v: &Value, cls: &Value) -> R<Value> {
    Ok(Value::Bool(instance_of(v, cls)?))
}

fn instance_of(v: &Value, cls: &Value) -> R<bool> {
    let items = match cls {
        Value::Tuple(t) => t.items.clone(),
        Value::List(l) => l.snapshot(),
        _ => return instance_of_one(v, cls),
    };
    for c in &items {
        if instance_of(v, c)? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn instance_of_one(v: &Value, cls: &Value) -> R<bool> {
    let one = |c: &Value| -> R<bool> {
        Ok(match (v, c) {
            (Value::Instance(i), Value::Class(k)) => is_subclass(&i.class, k),
            (_, Value::Class(_)) => false,
            // `type`, the unnamed types, `Lock`, `TransactionQueue`: exactly what `type()`
            // gives (no subclasses).
            (_, Value::Builtin(b)) if b.is_exact_type() => {
                matches!(type_of(v), Ok(Value::Builtin(t)) if t == *b)
            }
            (_, Value::Builtin(b)) => matches!(
                (v, b),
                (
                    Value::Int(_) | Value::BigInt(_) | Value::Bool(_),
                    Builtin::Int
                ) | (Value::Bool(_), Builtin::Bool)
                    | (Value::Float(_), Builtin::Float)
                    | (Value::Str(_), Builtin::Str)
                    | (Value::List(_), Builtin::List)
                    | (Value::Tuple(_), Builtin::Tuple)
                    | (Value::Dict(_), Builtin::Dict)
                    | (Value::Set(_), Builtin::Set)
                    | (Value::FrozenSet(_), Builtin::FrozenSet)
                    | (Value::Range(..) | Value::BigRange(_), Builtin::Range)
                    | (Value::Slice(_), Builtin::Slice)
            ),
            _ => {
                return Err(exc(
                    TypeError,
                    "isinstance() arg 2 must be a type, a tuple of types, or a union",
                ))
            }
        })
    };
    one(cls)
}

/// `s.format(args..., name=value...)`, `names` naming functions for `str` and `repr`.
pub fn format_method(
    s: &str,
    args: crate::format::FormatArgs,
    names: &dyn Fn(usize) -> String,
) -> R<Value> {
    let text = |v: &Value| v.to_str(names);
    let repr = |v: &Value| v.repr(names);
    Ok(Value::str(crate::format::str_format(
        s, args, &text, &repr,
    )?))
}

/// The error of `issubclass(c, ...)` when `c` is neither a class nor a built-in type.
pub fn subclass_arg(c: &Value) -> R<()> {
    match c {
        Value::Class(_) => Ok(()),
        Value::Builtin(b) if b.is_type() => Ok(()),
        _ => Err(exc(TypeError, "issubclass() arg 1 must be a class")),
    }
}

/// `issubclass(c, cls)` once `c` passed [`subclass_arg`]: `cls` a class, a built-in type or
/// a tuple of them, nested. `bool` derives from `int`; a user class only from classes.
pub fn subclass_of(c: &Value, cls: &Value) -> R<bool> {
    if let Value::Tuple(t) = cls {
        for k in &t.items {
            if subclass_of(c, k)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    Ok(match (c, cls) {
        (Value::Class(a), Value::Class(b)) => is_subclass(a, b),
        (Value::Builtin(a), Value::Builtin(b)) if b.is_type() => {
            a == b || (*a, *b) == (Builtin::Bool, Builtin::Int)
        }
        (_, Value::Class(_)) => false,
        (_, Value::Builtin(b)) if b.is_type() => false,
        _ => {
            return Err(exc(
                TypeError,
                "issubclass() arg 2 must be a class, a tuple of classes, or a union",
            ))
        }
    })
}

/// `len(x)`.
fn len(args: &[Value]) -> R<Value> {
    let name = "len";
    arity(name, args, 1, 1)?;
    let n = match &args[0] {
        Value::Str(s) => s.chars().count() as i64,
        Value::List(l) => lock(&l.items).len() as i64,
        Value::Tuple(t) => t.items.len() as i64,
        Value::Dict(d) | Value::Set(d) | Value::FrozenSet(d) => lock(&d.map).len() as i64,
        Value::Range(a, b, s) => return Ok(ops::int_result(Some(range_len(*a, *b, *s) as i128))?),
        Value::BigRange(r) => return Ok(r.len_value()?),
        other => {
            if let Some(n) = crate::special::len_of(other) {
                return Ok(Value::Int(n?));
            }
            return Err(exc(
                TypeError,
                format!("object of type '{}' has no len()", other.type_name()),
            ));
        }
    };
    Ok(Value::Int(n))
}

/// `range(stop)`, `range(start, stop[, step])`.
fn range(args: &[Value]) -> R<Value> {
    let name = "range";
    arity(name, args, 1, 3)?;
    if args
        .iter()
        .any(|a| matches!(a, Value::BigInt(_) | Value::Instance(_)))
    {
        return crate::ranges::from_args(args);
    }
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

/// `int(x)`: of a number (truncated), a str (parsed) or an instance with `__index__`.
fn int(args: &[Value]) -> R<Value> {
    let name = "int";
    arity(name, args, 0, 2)?;
    if let [x, base] = args {
        // CPython's order: the base's type, its range, then the value's type.
        let base = match base {
            Value::Int(b) => *b,
            Value::Bool(b) => *b as i64,
            Value::BigInt(_) => -1,
            other => {
                return Err(exc(
                    TypeError,
                    format!(
                        "'{}' object cannot be interpreted as an integer",
                        other.type_name()
                    ),
                ))
            }
        };
        if base != 0 && !(2..=36).contains(&base) {
            return Err(exc(ValueError, "int() base must be >= 2 and <= 36, or 0"));
        }
        let Value::Str(s) = x else {
            return Err(exc(
                TypeError,
                "int() can't convert non-string with explicit base",
            ));
        };
        return parse_int_base(s, base as u32);
    }
    match args.first() {
        None => Ok(Value::Int(0)),
        Some(Value::Int(i)) => Ok(Value::Int(*i)),
        Some(Value::BigInt(b)) => Ok(Value::BigInt(b.clone())),
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
            Ok(crate::bigint::from_f64(*f))
        }
        Some(Value::Str(s)) => parse_int(s),
        // An instance by its `__index__` (CPython's fallback after `__int__`).
        Some(other) => match crate::special::index_of(other)? {
            std::borrow::Cow::Owned(n) => Ok(n),
            std::borrow::Cow::Borrowed(_) => Err(exc(
                TypeError,
                format!(
                    "int() argument must be a string, a bytes-like object or a real number, not '{}'",
                    other.type_name()
                ),
            )),
        },
    }
}

/// `float(x)`: of a number or a str.
fn float(args: &[Value]) -> R<Value> {
    let name = "float";
    arity(name, args, 0, 1)?;
    match args.first() {
        None => Ok(Value::Float(0.0)),
        Some(Value::Str(s)) => parse_float(s),
        Some(v) => match as_num(v) {
            Some(Num::Int(i)) => Ok(Value::Float(i as f64)),
            Some(Num::Big(b)) => Ok(Value::Float(crate::bigint::to_f64(&b)?)),
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

/// `abs(x)`.
fn abs(args: &[Value]) -> R<Value> {
    let name = "abs";
    arity(name, args, 1, 1)?;
    match as_num(&args[0]) {
        Some(Num::Int(i)) => Ok(ops::int_result(Some((i as i128).abs()))?),
        Some(Num::Big(b)) => Ok(crate::bigint::big_value(num_traits::Signed::abs(&*b))),
        Some(Num::Float(f)) => Ok(Value::Float(f.abs())),
        None => Err(exc(
            TypeError,
            format!("bad operand type for abs(): '{}'", args[0].type_name()),
        )),
    }
}

/// The text `print(..., sep=, end=)` writes, from the arguments of [`Builtin::PrintKw`].
fn print_line(args: &[Value], names: &dyn Fn(FuncId) -> String) -> R<Value> {
    let n = match args.last() {
        Some(Value::Int(n)) if (*n as usize) * 2 < args.len() => *n as usize,
        _ => return Err(exc(TypeError, "print(): malformed keyword arguments")),
    };
    let positional = &args[..args.len() - 1 - 2 * n];
    let (mut sep, mut end) = (" ".to_string(), "\n".to_string());
    for pair in args[positional.len()..args.len() - 1].chunks(2) {
        let text = match &pair[1] {
            Value::None => None,
            Value::Str(s) => Some(s.to_string()),
            other => {
                let k = pair[0].to_str(names)?;
                return Err(exc(
                    TypeError,
                    format!("{k} must be None or a string, not {}", other.type_name()),
                ));
            }
        };
        match &pair[0] {
            Value::Str(k) if &**k == "sep" => sep = text.unwrap_or_else(|| " ".into()),
            _ => end = text.unwrap_or_else(|| "\n".into()),
        }
    }
    let mut line = String::new();
    for (i, v) in positional.iter().enumerate() {
        if i > 0 {
            line.push_str(&sep);
        }
        line.push_str(&v.to_str(names)?);
    }
    line.push_str(&end);
    Ok(Value::str(line))
}

/// `min(...)` or `max(...)` (`b`) of the arguments, or of the items of the one argument.
fn min_max(b: Builtin, args: Vec<Value>) -> R<Value> {
    let name = b.name();
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
        CmpOp::Lt
    } else {
        CmpOp::Gt
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

/// `ord(c)`.
fn ord(args: &[Value]) -> R<Value> {
    let name = "ord";
    arity(name, args, 1, 1)?;
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

/// The methods of lists, dicts and strs (public for the JIT's `has_method`, which looks at
/// heap objects rather than `Value`s).
pub const LIST_METHODS: &[&str] = &[
    "append", "pop", "insert", "index", "sort", "reverse", "copy", "extend", "remove", "clear",
    "count",
];
/// See [`LIST_METHODS`].
pub const DICT_METHODS: &[&str] = &[
    "get",
    "keys",
    "values",
    "items",
    "pop",
    "copy",
    "update",
    "setdefault",
    "clear",
    "popitem",
];
/// See [`LIST_METHODS`].
pub const STR_METHODS: &[&str] = &[
    "split",
    "rsplit",
    "partition",
    "rpartition",
    "splitlines",
    "strip",
    "lstrip",
    "rstrip",
    "find",
    "rfind",
    "index",
    "rindex",
    "count",
    "startswith",
    "endswith",
    "replace",
    "ljust",
    "rjust",
    "center",
    "zfill",
    "title",
    "capitalize",
    "swapcase",
    "isdigit",
    "isdecimal",
    "isnumeric",
    "isalpha",
    "isalnum",
    "isspace",
    "isupper",
    "islower",
    "isascii",
    "istitle",
    "isidentifier",
    "removeprefix",
    "removesuffix",
    "expandtabs",
    "join",
    "upper",
    "lower",
    "format",
];

/// True when `v`'s type has a builtin method `name` (for `v.name` without a call).
pub fn has_method(v: &Value, name: &str) -> bool {
    match v {
        Value::List(_) => LIST_METHODS.contains(&name),
        Value::Tuple(_) => crate::builtins_seq::TUPLE_METHODS.contains(&name),
        Value::Dict(_) => DICT_METHODS.contains(&name),
        Value::Set(_) => crate::sets::SET_METHODS.contains(&name),
        Value::FrozenSet(_) => crate::sets::FROZENSET_METHODS.contains(&name),
        Value::Str(_) => STR_METHODS.contains(&name),
        Value::Slice(_) => crate::slices::SLICE_METHODS.contains(&name),
        Value::Thread(_) => name == "join",
        Value::Queue(_) => name == "add" || name == "run",
        _ => false,
    }
}

/// Checks that method `type_name.name()` got between `min` and `max` arguments; Python's
/// `TypeError` if not. Public for the methods callers handle themselves (Thread, queue).
pub fn method_arity(type_name: &str, name: &str, args: &[Value], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        return Err(method_arity_error(type_name, name, args.len(), min, max));
    }
    Ok(())
}

/// Methods of `str` that CPython parses with keywords allowed: their arity error reads
/// "split() takes at most 2 arguments (3 given)".
const STR_KEYWORD_METHODS: &[&str] = &[
    "count",
    "encode",
    "endswith",
    "expandtabs",
    "find",
    "index",
    "rfind",
    "rindex",
    "rsplit",
    "split",
    "splitlines",
    "startswith",
];

/// The `TypeError` for method `type_name.name()` called with `given` arguments where
/// `min..=max` are taken, worded as CPython words it for the calling convention of that
/// method of a built-in type: no arguments, exactly one, keywords allowed, or positional
/// only ("get expected at least 1 argument, got 0"). Our own types (Thread, queue, slice)
/// keep the plain form.
fn method_arity_error(
    type_name: &str,
    name: &str,
    given: usize,
    min: usize,
    max: usize,
) -> OpError {
    let builtin_type = matches!(
        type_name,
        "str" | "list" | "dict" | "set" | "frozenset" | "tuple"
    );
    if !builtin_type {
        return arity_error(&format!("{type_name}.{name}"), given, min, max);
    }
    let bound = if given < min { min } else { max };
    let s = if bound == 1 { "" } else { "s" };
    // `sort` takes its two arguments by keyword only.
    let message = if (type_name, name) == ("list", "sort") && given <= 2 {
        "sort() takes no positional arguments".to_string()
    } else if (type_name, name) == ("list", "sort") {
        format!("sort() takes at most 2 arguments ({given} given)")
    } else if max == 0 {
        format!("{type_name}.{name}() takes no arguments ({given} given)")
    } else if (min, max) == (1, 1) {
        format!("{type_name}.{name}() takes exactly one argument ({given} given)")
    } else {
        let how = if min == max {
            ""
        } else if given < min {
            "at least "
        } else {
            "at most "
        };
        if type_name == "str" && STR_KEYWORD_METHODS.contains(&name) {
            format!("{name}() takes {how}{bound} argument{s} ({given} given)")
        } else {
            format!("{name} expected {how}{bound} argument{s}, got {given}")
        }
    };
    exc(TypeError, message)
}

/// Stable sort with Python's `<` (which may fail); Rust's `sort_by` needs a total order.
/// Small lists use binary insertion sort, as CPython's timsort does, so the first comparison
/// (and so the message of a failing one) is the same as CPython's: `xs[1] < xs[0]`.
fn sort_values(items: Vec<Value>) -> R<Vec<Value>> {
    sort_by_key(items, &|v| v)
}

/// The order in which `sorted(..., key=, reverse=)` puts items whose keys are `keys`: the
/// items' indices. Stable, also reversed (as CPython: the items are reversed, sorted, and
/// reversed back).
pub fn sort_order(keys: Vec<Value>, reverse: bool) -> R<Vec<usize>> {
    let mut pairs: Vec<(Value, usize)> = keys.into_iter().zip(0..).collect();
    if reverse {
        pairs.reverse();
    }
    let mut out = sort_by_key(pairs, &|p| &p.0)?;
    if reverse {
        out.reverse();
    }
    Ok(out.into_iter().map(|p| p.1).collect())
}

/// `min(..., key=)` or `max` (`b`): the index of the first item whose key (in `keys`) is
/// smallest (largest); None when there are none.
pub fn min_max_index(b: Builtin, keys: &[Value]) -> R<Option<usize>> {
    let op = if b == Builtin::Min {
        CmpOp::Lt
    } else {
        CmpOp::Gt
    };
    let mut best: Option<usize> = None;
    for i in 0..keys.len() {
        match best {
            Some(j) if !order(&keys[i], &keys[j], op)? => {}
            _ => best = Some(i),
        }
    }
    Ok(best)
}

/// The ValueError of `min`/`max` (`b`) of no items.
pub fn empty_min_max(b: Builtin) -> OpError {
    exc(
        ValueError,
        format!("{}() arg is an empty sequence", b.name()),
    )
}

/// Stable sort of `items` by `key` with Python's `<` (which may fail); Rust's `sort_by`
/// needs a total order.
fn sort_by_key<T>(items: Vec<T>, key: &dyn Fn(&T) -> &Value) -> R<Vec<T>> {
    if items.len() <= 64 {
        let mut out: Vec<T> = Vec::with_capacity(items.len());
        for v in items {
            // Insert after every item not greater than `v` (stability).
            let (mut lo, mut hi) = (0, out.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if order(key(&v), key(&out[mid]), CmpOp::Lt)? {
                    hi = mid;
                } else {
                    lo = mid + 1;
                }
            }
            out.insert(lo, v);
        }
        return Ok(out);
    }
    let mut right = items;
    let left = right.drain(..right.len() / 2).collect();
    let (left, right) = (sort_by_key(left, key)?, sort_by_key(right, key)?);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
        // Take from the right only when strictly smaller: keeps equal items in order.
        if order(key(b), key(a), CmpOp::Lt)? {
            out.extend(r.next());
        } else {
            out.extend(l.next());
        }
    }
    out.extend(l);
    out.extend(r);
    Ok(out)
}

/// `recv.name(args)` for list, dict and str methods; an `AttributeError` for any other
/// receiver or name (callers handle Thread and TransactionQueue methods first). `names` gives
/// function names for `repr` in messages.
pub fn call_method(
    recv: &Value,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(FuncId) -> String,
) -> R<Value> {
    match recv {
        Value::List(l) => list_method(recv, l, name, args, names),
        Value::Tuple(t) => crate::builtins_seq::tuple_method(t, name, &args),
        Value::Dict(d) => dict_method(recv, d, name, args, names),
        Value::Set(d) => crate::sets::set_method(d, name, args, names),
        Value::FrozenSet(d) if crate::sets::FROZENSET_METHODS.contains(&name) => {
            crate::sets::frozenset_method(d, name, args, names)
        }
        Value::Str(s) if name == "format" => format_method(s, (&args, &[]), names),
        Value::Str(s) => str_method(recv, s, name, args),
        Value::Slice(s) if name == "indices" => crate::slices::indices(s, &args),
        _ => Err(no_attr(recv, name)),
    }
}

/// `recv.name(args)` for the list `l` (`recv`).
fn list_method(
    recv: &Value,
    l: &ListObj,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(FuncId) -> String,
) -> R<Value> {
    let t = "list";
    match name {
        "append" => {
            method_arity(t, name, &args, 1, 1)?;
            lock(&l.items).push(args[0].clone());
            Ok(Value::None)
        }
        "pop" => {
            method_arity(t, name, &args, 0, 1)?;
            // The index first (its `__index__` may run), as CPython.
            let at = args.first().map(int_arg).transpose()?;
            let mut items = lock(&l.items);
            if items.is_empty() {
                return Err(exc(IndexError, "pop from empty list"));
            }
            let n = items.len() as i64;
            let i = at.unwrap_or(n - 1);
            let i = if i < 0 { i + n } else { i };
            if !(0..n).contains(&i) {
                return Err(exc(IndexError, "pop index out of range"));
            }
            Ok(items.remove(i as usize))
        }
        "insert" => {
            method_arity(t, name, &args, 2, 2)?;
            let i = int_arg(&args[0])?;
            let mut items = lock(&l.items);
            let n = items.len() as i64;
            let i = if i < 0 { (i + n).max(0) } else { i.min(n) };
            items.insert(i as usize, args[1].clone());
            Ok(Value::None)
        }
        "index" => {
            method_arity(t, name, &args, 1, 3)?;
            match crate::builtins_seq::position_in(&l.snapshot(), &args)? {
                Some(i) => Ok(Value::Int(i as i64)),
                None => Err(exc(
                    ValueError,
                    format!("{} is not in list", args[0].repr(names)?),
                )),
            }
        }
        "sort" => {
            method_arity(t, name, &args, 0, 0)?;
            let sorted = sort_values(l.snapshot())?;
            *lock(&l.items) = sorted;
            Ok(Value::None)
        }
        "reverse" => {
            method_arity(t, name, &args, 0, 0)?;
            lock(&l.items).reverse();
            Ok(Value::None)
        }
        "copy" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(ListObj::new_value(l.snapshot()))
        }
        _ => crate::methods_extra::list_method(l, name, &args)
            .unwrap_or_else(|| Err(no_attr(recv, name))),
    }
}

/// `recv.name(args)` for the dict `d` (`recv`).
fn dict_method(
    recv: &Value,
    d: &DictObj,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(FuncId) -> String,
) -> R<Value> {
    let t = "dict";
    match name {
        "get" => {
            method_arity(t, name, &args, 1, 2)?;
            let k = crate::value::key_in(&d.map, &args[0])?;
            let found = lock(&d.map).get(&k).cloned();
            Ok(found
                .or_else(|| args.get(1).cloned())
                .unwrap_or(Value::None))
        }
        "keys" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(ListObj::new_value(lock(&d.map).keys()))
        }
        "values" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(ListObj::new_value(lock(&d.map).values()))
        }
        "items" => {
            method_arity(t, name, &args, 0, 0)?;
            let pairs = lock(&d.map).items();
            Ok(ListObj::new_value(
                pairs
                    .into_iter()
                    .map(|(k, v)| TupleObj::new_value(vec![k, v]))
                    .collect(),
            ))
        }
        "pop" => {
            method_arity(t, name, &args, 1, 2)?;
            let k = crate::value::key_in(&d.map, &args[0])?;
            let removed = lock(&d.map).remove(&k);
            match (removed, args.get(1)) {
                (Some(v), _) => Ok(v),
                (None, Some(default)) => Ok(default.clone()),
                (None, None) => Err(exc(KeyError, args[0].repr(names)?)),
            }
        }
        "copy" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(DictObj::new_value(lock(&d.map).clone()))
        }
        _ => crate::methods_extra::dict_method(d, name, &args)
            .unwrap_or_else(|| Err(no_attr(recv, name))),
    }
}

/// `recv.name(args)` for the str `s` (`recv`).
fn str_method(recv: &Value, s: &str, name: &str, args: Vec<Value>) -> R<Value> {
    if let Some(r) = crate::methods_extra::str_method(s, name, &args) {
        return r;
    }
    let t = "str";
    match name {
        "join" => {
            method_arity(t, name, &args, 1, 1)?;
            let items = ops::iterate(&args[0])?;
            let mut out = String::new();
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(s);
                }
                match v {
                    Value::Str(p) => out.push_str(p),
                    other => {
                        return Err(exc(
                            TypeError,
                            format!(
                                "sequence item {i}: expected str instance, {} found",
                                other.type_name()
                            ),
                        ))
                    }
                }
            }
            Ok(Value::str(out))
        }
        "upper" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(Value::str(s.to_uppercase()))
        }
        "lower" => {
            method_arity(t, name, &args, 0, 0)?;
            Ok(Value::str(s.to_lowercase()))
        }
        _ => Err(no_attr(recv, name)),
    }
}

/// The `AttributeError` for a missing attribute `name` of `v`.
pub fn no_attr(v: &Value, name: &str) -> OpError {
    exc(
        AttributeError,
        format!("'{}' object has no attribute '{name}'", v.type_name()),
    )
}

/// Python's message for a call of function `f` with `given` arguments (wrong arity).
pub fn arity_message(f: &Function, given: usize) -> String {
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if given > f.arity {
        format!(
            "{}() takes {} positional argument{} but {} {} given",
            f.qualname,
            f.arity,
            plural(f.arity),
            given,
            if given == 1 { "was" } else { "were" }
        )
    } else {
        let missing: Vec<String> = f.locals[given..f.arity]
            .iter()
            .map(|n| format!("'{n}'"))
            .collect();
        let list = match missing.len() {
            1 => missing[0].clone(),
            2 => format!("{} and {}", missing[0], missing[1]),
            n => format!("{}, and {}", missing[..n - 1].join(", "), missing[n - 1]),
        };
        format!(
            "{}() missing {} required positional argument{}: {}",
            f.qualname,
            missing.len(),
            plural(missing.len()),
            list
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_hashes() {
        // Values from CPython 3.11 (64-bit).
        assert_eq!(hash_int(-1), -2);
        assert_eq!(hash_int((1 << 61) - 1), 0);
        assert_eq!(hash_int(1 << 61), 1);
        assert_eq!(hash_float(1.5), 1152921504606846977);
        assert_eq!(hash_float(-2.0), -2);
        assert_eq!(hash_float(0.1), 230584300921369408);
        assert_eq!(hash_float(1e300), 1224995262755759164);
        assert_eq!(hash_float(1e-300), 482449582752280463);
        assert_eq!(hash_float(5e-324), 16777216);
        assert_eq!(hash_float(2f64.powi(70)), 512);
    }

    #[test]
    fn int_and_float_parsing() {
        assert!(matches!(parse_int(" -1_000 ").unwrap(), Value::Int(-1000)));
        assert!(parse_int("1__0").is_err());
        assert!(parse_int("0x10").is_err());
        assert!(matches!(parse_float("1_0.5e1").unwrap(), Value::Float(f) if f == 105.0));
        assert!(matches!(parse_float(" -inf").unwrap(), Value::Float(f) if f == f64::NEG_INFINITY));
        assert!(parse_float("abc").is_err());
    }
}
