//! Methods of the builtin types on interpreter values: a copy of the reference interpreter's
//! (private) implementation, so that results and messages are identical. Thread and
//! TransactionQueue methods are handled natively in `calls.rs`.

use super::builtins::int_arg;
use super::{exc, Runtime, R};
use stmjit_lang::ast::CmpOp;
use stmjit_lang::diag::ErrorKind::*;
use stmjit_lang::ops;
use stmjit_lang::value::*;
use stmjit_runtime::value::Word;

const LIST_METHODS: &[&str] = &[
    "append", "pop", "insert", "index", "sort", "reverse", "copy",
];
const DICT_METHODS: &[&str] = &["get", "keys", "values", "items", "pop", "copy"];
const STR_METHODS: &[&str] = &[
    "split",
    "join",
    "strip",
    "startswith",
    "upper",
    "lower",
    "find",
];

/// True when `v`'s type has a builtin method `name` (for `v.name` without a call).
pub fn has_method(rt: &Runtime, v: Word, name: &str) -> bool {
    let t = rt.types;
    match rt.type_of(v) {
        Some(x) if x == t.list.0 => LIST_METHODS.contains(&name),
        Some(x) if x == t.dict.0 => DICT_METHODS.contains(&name),
        Some(x) if x == t.str.0 => STR_METHODS.contains(&name),
        Some(x) if x == t.opaque.0 => match rt.type_name(v).as_str() {
            "Thread" => name == "join",
            "TransactionQueue" => name == "add" || name == "run",
            _ => false,
        },
        _ => false,
    }
}

fn arity(type_name: &str, name: &str, args: &[Value], min: usize, max: usize) -> R<()> {
    if args.len() < min || args.len() > max {
        let want = if min == max {
            format!("exactly {min}")
        } else if args.len() < min {
            format!("at least {min}")
        } else {
            format!("at most {max}")
        };
        let n = if args.len() < min { min } else { max };
        return Err(exc(
            TypeError,
            format!(
                "{type_name}.{name}() takes {want} argument{} ({} given)",
                if n == 1 { "" } else { "s" },
                args.len()
            ),
        ));
    }
    Ok(())
}

fn str_arg(method: &str, v: &Value) -> R<std::sync::Arc<str>> {
    match v {
        Value::Str(s) => Ok(s.clone()),
        other => Err(exc(
            TypeError,
            format!("{method}() argument must be str, not {}", other.type_name()),
        )),
    }
}

/// Stable sort with Python's `<` (which may fail); Rust's `sort_by` needs a total order.
/// Small lists use binary insertion sort, as CPython's timsort does, so the first comparison
/// (and so the message of a failing one) is the same as CPython's: `xs[1] < xs[0]`.
fn sort_values(items: Vec<Value>) -> R<Vec<Value>> {
    if items.len() <= 64 {
        let mut out: Vec<Value> = Vec::with_capacity(items.len());
        for v in items {
            // Insert after every item not greater than `v` (stability).
            let (mut lo, mut hi) = (0, out.len());
            while lo < hi {
                let mid = (lo + hi) / 2;
                if order(&v, &out[mid], CmpOp::Lt)? {
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
    let (left, right) = (sort_values(left)?, sort_values(right)?);
    let mut out = Vec::with_capacity(left.len() + right.len());
    let (mut l, mut r) = (left.into_iter().peekable(), right.into_iter().peekable());
    while let (Some(a), Some(b)) = (l.peek(), r.peek()) {
        // Take from the right only when strictly smaller: keeps equal items in order.
        if order(b, a, CmpOp::Lt)? {
            out.extend(r.next());
        } else {
            out.extend(l.next());
        }
    }
    out.extend(l);
    out.extend(r);
    Ok(out)
}

/// A char index for a byte offset in `s`.
fn char_index(s: &str, byte: usize) -> i64 {
    s[..byte].chars().count() as i64
}

/// `recv.name(args)` for list, dict and str methods.
pub fn call_method_value(
    recv: &Value,
    name: &str,
    args: Vec<Value>,
    names: &dyn Fn(usize) -> String,
) -> R<Value> {
    {
        match recv {
            Value::List(l) => {
                let t = "list";
                match name {
                    "append" => {
                        arity(t, name, &args, 1, 1)?;
                        lock(&l.items).push(args[0].clone());
                        Ok(Value::None)
                    }
                    "pop" => {
                        arity(t, name, &args, 0, 1)?;
                        let mut items = lock(&l.items);
                        if items.is_empty() {
                            return Err(exc(IndexError, "pop from empty list"));
                        }
                        let n = items.len() as i64;
                        let i = match args.first() {
                            None => n - 1,
                            Some(v) => int_arg(v)?,
                        };
                        let i = if i < 0 { i + n } else { i };
                        if !(0..n).contains(&i) {
                            return Err(exc(IndexError, "pop index out of range"));
                        }
                        Ok(items.remove(i as usize))
                    }
                    "insert" => {
                        arity(t, name, &args, 2, 2)?;
                        let i = int_arg(&args[0])?;
                        let mut items = lock(&l.items);
                        let n = items.len() as i64;
                        let i = if i < 0 { (i + n).max(0) } else { i.min(n) };
                        items.insert(i as usize, args[1].clone());
                        Ok(Value::None)
                    }
                    "index" => {
                        arity(t, name, &args, 1, 1)?;
                        for (i, v) in l.snapshot().iter().enumerate() {
                            if equal(v, &args[0])? {
                                return Ok(Value::Int(i as i64));
                            }
                        }
                        Err(exc(
                            ValueError,
                            format!("{} is not in list", args[0].repr(names)?),
                        ))
                    }
                    "sort" => {
                        arity(t, name, &args, 0, 0)?;
                        let sorted = sort_values(l.snapshot())?;
                        *lock(&l.items) = sorted;
                        Ok(Value::None)
                    }
                    "reverse" => {
                        arity(t, name, &args, 0, 0)?;
                        lock(&l.items).reverse();
                        Ok(Value::None)
                    }
                    "copy" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(ListObj::new_value(l.snapshot()))
                    }
                    _ => Err(no_attr(recv, name)),
                }
            }
            Value::Dict(d) => {
                let t = "dict";
                match name {
                    "get" => {
                        arity(t, name, &args, 1, 2)?;
                        let k = Key::of(&args[0])?;
                        let found = lock(&d.map).get(&k).cloned();
                        Ok(found
                            .or_else(|| args.get(1).cloned())
                            .unwrap_or(Value::None))
                    }
                    "keys" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(ListObj::new_value(lock(&d.map).keys()))
                    }
                    "values" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(ListObj::new_value(lock(&d.map).values()))
                    }
                    "items" => {
                        arity(t, name, &args, 0, 0)?;
                        let pairs = lock(&d.map).items();
                        Ok(ListObj::new_value(
                            pairs
                                .into_iter()
                                .map(|(k, v)| ListObj::new_value(vec![k, v]))
                                .collect(),
                        ))
                    }
                    "pop" => {
                        arity(t, name, &args, 1, 2)?;
                        let k = Key::of(&args[0])?;
                        let removed = lock(&d.map).remove(&k);
                        match (removed, args.get(1)) {
                            (Some(v), _) => Ok(v),
                            (None, Some(default)) => Ok(default.clone()),
                            (None, None) => Err(exc(KeyError, args[0].repr(names)?)),
                        }
                    }
                    "copy" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(DictObj::new_value(lock(&d.map).clone()))
                    }
                    _ => Err(no_attr(recv, name)),
                }
            }
            Value::Str(s) => {
                let t = "str";
                match name {
                    "split" => {
                        arity(t, name, &args, 0, 1)?;
                        let parts: Vec<Value> = match args.first() {
                            None | Some(Value::None) => {
                                s.split_whitespace().map(Value::str).collect()
                            }
                            Some(sep) => {
                                let sep = str_arg("split", sep)?;
                                if sep.is_empty() {
                                    return Err(exc(ValueError, "empty separator"));
                                }
                                s.split(&*sep).map(Value::str).collect()
                            }
                        };
                        Ok(ListObj::new_value(parts))
                    }
                    "join" => {
                        arity(t, name, &args, 1, 1)?;
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
                    "strip" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(Value::str(s.trim()))
                    }
                    "startswith" => {
                        arity(t, name, &args, 1, 1)?;
                        let p = str_arg("startswith", &args[0])?;
                        Ok(Value::Bool(s.starts_with(&*p)))
                    }
                    "upper" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(Value::str(s.to_uppercase()))
                    }
                    "lower" => {
                        arity(t, name, &args, 0, 0)?;
                        Ok(Value::str(s.to_lowercase()))
                    }
                    "find" => {
                        arity(t, name, &args, 1, 1)?;
                        let p = str_arg("find", &args[0])?;
                        Ok(Value::Int(match s.find(&*p) {
                            Some(b) => char_index(s, b),
                            None => -1,
                        }))
                    }
                    _ => Err(no_attr(recv, name)),
                }
            }
            _ => Err(no_attr(recv, name)),
        }
    }
}

fn no_attr(v: &Value, name: &str) -> super::Exc {
    exc(
        AttributeError,
        format!("'{}' object has no attribute '{name}'", v.type_name()),
    )
}
