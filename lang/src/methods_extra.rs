//! More methods of str, list and dict, with CPython's semantics and messages: the ones an
//! everyday program reaches for (`replace`, `endswith`, `split(sep, n)`, `find(s, start)`,
//! `ljust`, `zfill`, `isdigit`, ..., `extend`, `remove`, `count`, `clear`, `update`,
//! `setdefault`). Pure functions of values, shared by the interpreter and the JIT's runtime
//! (which calls them on converted values, writing mutated containers back).

use crate::diag::ErrorKind::{self, TypeError, ValueError};
use crate::value::*;

type R<T> = Result<T, OpError>;

fn err<T>(kind: ErrorKind, msg: impl Into<String>) -> R<T> {
    Err((kind, msg.into()))
}

fn arity(t: &str, name: &str, args: &[Value], min: usize, max: usize) -> R<()> {
    crate::builtins_core::method_arity(t, name, args, min, max)
}

fn text<'a>(name: &str, i: usize, v: &'a Value) -> R<&'a str> {
    match v {
        Value::Str(s) => Ok(s),
        other => err(
            TypeError,
            format!(
                "{name}() argument {i} must be str, not {}",
                other.type_name()
            ),
        ),
    }
}

fn int(v: &Value) -> R<i64> {
    crate::builtins_core::int_arg(v)
}

/// The char range `[start:end]` of a text of `n` chars, Python's slice clamping.
fn char_range(args: &[Value], n: usize) -> R<(usize, usize)> {
    let clamp = |v: Option<&Value>, default: usize| -> R<usize> {
        Ok(match v {
            None | Some(Value::None) => default,
            Some(v) => {
                let i = int(v)?;
                let i = if i < 0 { i + n as i64 } else { i };
                i.clamp(0, n as i64) as usize
            }
        })
    };
    Ok((clamp(args.first(), 0)?, clamp(args.get(1), n)?))
}

/// Char index of `sub` in `hay[lo..hi]` (first or last), as Python's `find`/`rfind`.
fn find_in(hay: &[char], sub: &[char], lo: usize, hi: usize, last: bool) -> Option<usize> {
    if lo > hi || hi - lo < sub.len() {
        return None;
    }
    let starts = lo..=hi - sub.len();
    let hit = |&i: &usize| hay[i..i + sub.len()] == *sub;
    if last {
        starts.rev().find(hit)
    } else {
        starts.into_iter().find(hit)
    }
}

fn strip_set(args: &[Value], name: &str) -> R<Option<Vec<char>>> {
    match args.first() {
        None | Some(Value::None) => Ok(None),
        Some(v) => Ok(Some(text(name, 1, v)?.chars().collect())),
    }
}

/// Python's whitespace split (runs of whitespace, no empty parts), at most `max` splits.
fn split_whitespace(s: &str, max: i64, right: bool) -> Vec<Value> {
    let words: Vec<&str> = s.split_whitespace().collect();
    if max < 0 || words.len() as i64 <= max + 1 {
        return words.into_iter().map(Value::str).collect();
    }
    let max = max as usize;
    if right {
        // The last `max` words split off; the rest keeps its leading whitespace.
        let mut out = Vec::new();
        let mut rest = s.trim_end();
        for _ in 0..max {
            let cut = rest.rfind(char::is_whitespace).map_or(0, |k| k);
            let word = rest[cut..].trim_start();
            out.push(Value::str(word));
            rest = rest[..cut].trim_end();
        }
        out.push(Value::str(rest));
        out.reverse();
        out
    } else {
        let mut out = Vec::new();
        let mut rest = s.trim_start();
        for _ in 0..max {
            let cut = rest.find(char::is_whitespace).unwrap_or(rest.len());
            out.push(Value::str(&rest[..cut]));
            rest = rest[cut..].trim_start();
        }
        out.push(Value::str(rest));
        out
    }
}

/// A str method of this module, if `name` is one.
pub fn str_method(s: &str, name: &str, args: &[Value]) -> Option<R<Value>> {
    if !crate::builtins_core::STR_METHODS.contains(&name)
        || matches!(name, "join" | "upper" | "lower" | "format")
    {
        return None;
    }
    let t = "str";
    let chars = || s.chars().collect::<Vec<char>>();
    Some((|| -> R<Value> {
        match name {
            "split" | "rsplit" => {
                arity(t, name, args, 0, 2)?;
                let max = match args.get(1) {
                    Some(v) => int(v)?,
                    None => -1,
                };
                let right = name == "rsplit";
                let parts = match args.first() {
                    None | Some(Value::None) => split_whitespace(s, max, right),
                    Some(v) => {
                        let sep = text(name, 1, v)?;
                        if sep.is_empty() {
                            return err(ValueError, "empty separator");
                        }
                        let parts: Vec<&str> = match (max < 0, right) {
                            (true, _) => s.split(sep).collect(),
                            (false, false) => s.splitn(max as usize + 1, sep).collect(),
                            (false, true) => {
                                let mut p: Vec<&str> = s.rsplitn(max as usize + 1, sep).collect();
                                p.reverse();
                                p
                            }
                        };
                        parts.into_iter().map(Value::str).collect()
                    }
                };
                Ok(ListObj::new_value(parts))
            }
            "partition" | "rpartition" => {
                // (head, sep, tail) around the first (last) `sep`; without it, `s` is the
                // head (the tail) and the other two are empty.
                arity(t, name, args, 1, 1)?;
                let Value::Str(sep) = &args[0] else {
                    let other = args[0].type_name();
                    return err(TypeError, format!("must be str, not {other}"));
                };
                if sep.is_empty() {
                    return err(ValueError, "empty separator");
                }
                let sep = &**sep;
                let right = name == "rpartition";
                let found = if right { s.rfind(sep) } else { s.find(sep) };
                let parts = match found {
                    Some(k) => [&s[..k], sep, &s[k + sep.len()..]],
                    None if right => ["", "", s],
                    None => [s, "", ""],
                };
                Ok(TupleObj::new_value(parts.map(Value::str).to_vec()))
            }
            "splitlines" => {
                // CPython's line boundaries (`\r\n` is one), each kept with `keepends`.
                arity(t, name, args, 0, 1)?;
                let keep = args.first().is_some_and(Value::truthy);
                let mut lines = Vec::new();
                let mut start = 0;
                let mut it = s.char_indices().peekable();
                while let Some((i, c)) = it.next() {
                    let is_break = matches!(
                        c,
                        '\n' | '\r'
                            | '\x0b'
                            | '\x0c'
                            | '\x1c'
                            | '\x1d'
                            | '\x1e'
                            | '\u{85}'
                            | '\u{2028}'
                            | '\u{2029}'
                    );
                    if !is_break {
                        continue;
                    }
                    let mut end = i + c.len_utf8();
                    if c == '\r' && it.peek().is_some_and(|&(_, d)| d == '\n') {
                        it.next();
                        end += 1;
                    }
                    lines.push(Value::str(if keep { &s[start..end] } else { &s[start..i] }));
                    start = end;
                }
                if start < s.len() {
                    lines.push(Value::str(&s[start..]));
                }
                Ok(ListObj::new_value(lines))
            }
            "strip" | "lstrip" | "rstrip" => {
                arity(t, name, args, 0, 1)?;
                let set = strip_set(args, name)?;
                let pred = |c: char| match &set {
                    None => c.is_whitespace(),
                    Some(set) => set.contains(&c),
                };
                Ok(Value::str(match name {
                    "strip" => s.trim_matches(pred),
                    "lstrip" => s.trim_start_matches(pred),
                    _ => s.trim_end_matches(pred),
                }))
            }
            "find" | "rfind" | "index" | "rindex" | "count" => {
                arity(t, name, args, 1, 3)?;
                let sub: Vec<char> = text(name, 1, &args[0])?.chars().collect();
                let hay = chars();
                let (lo, hi) = char_range(&args[1..], hay.len())?;
                if name == "count" {
                    if sub.is_empty() {
                        return Ok(Value::Int(if lo > hi { 0 } else { (hi - lo + 1) as i64 }));
                    }
                    let (mut n, mut i) = (0, lo);
                    while let Some(k) = find_in(&hay, &sub, i, hi, false) {
                        n += 1;
                        i = k + sub.len();
                    }
                    return Ok(Value::Int(n));
                }
                let last = name.starts_with('r');
                match find_in(&hay, &sub, lo, hi, last) {
                    Some(k) => Ok(Value::Int(k as i64)),
                    None if name.ends_with("find") => Ok(Value::Int(-1)),
                    None => err(ValueError, "substring not found"),
                }
            }
            "startswith" | "endswith" => {
                arity(t, name, args, 1, 3)?;
                // A tuple of prefixes: whether any matches (CPython's TypeError names the
                // tuple's item that is not a str).
                let prefixes: Vec<Vec<char>> = match &args[0] {
                    Value::Tuple(tp) => tp
                        .items
                        .iter()
                        .map(|v| match v {
                            Value::Str(p) => Ok(p.chars().collect()),
                            v => err(
                                TypeError,
                                format!(
                                    "tuple for {name} must only contain str, not {}",
                                    v.type_name()
                                ),
                            ),
                        })
                        .collect::<R<_>>()?,
                    Value::Str(p) => vec![p.chars().collect()],
                    v => {
                        return err(
                            TypeError,
                            format!(
                                "{name} first arg must be str or a tuple of str, not {}",
                                v.type_name()
                            ),
                        )
                    }
                };
                let hay = chars();
                let (lo, hi) = char_range(&args[1..], hay.len())?;
                let part = if lo <= hi { &hay[lo..hi] } else { &hay[0..0] };
                let hit = prefixes.iter().any(|p| {
                    if name == "startswith" {
                        part.starts_with(p)
                    } else {
                        part.ends_with(p)
                    }
                });
                Ok(Value::Bool(hit && lo <= hi))
            }
            "replace" => {
                arity(t, name, args, 2, 3)?;
                let (old, new) = (text(name, 1, &args[0])?, text(name, 2, &args[1])?);
                let count = match args.get(2) {
                    Some(v) => int(v)?,
                    None => -1,
                };
                if count < 0 {
                    return Ok(Value::str(s.replace(old, new)));
                }
                Ok(Value::str(s.replacen(old, new, count as usize)))
            }
            "ljust" | "rjust" | "center" => {
                arity(t, name, args, 1, 2)?;
                let width = int(&args[0])?.max(0) as usize;
                let fill = match args.get(1) {
                    None => ' ',
                    Some(v) => {
                        let f = text(name, 2, v)?;
                        let mut it = f.chars();
                        match (it.next(), it.next()) {
                            (Some(c), None) => c,
                            _ => {
                                return err(
                                    TypeError,
                                    "The fill character must be exactly one character long",
                                )
                            }
                        }
                    }
                };
                let n = s.chars().count();
                if width <= n {
                    return Ok(Value::str(s));
                }
                let pad = width - n;
                let fills = |k: usize| std::iter::repeat_n(fill, k).collect::<String>();
                Ok(Value::str(match name {
                    "ljust" => format!("{s}{}", fills(pad)),
                    "rjust" => format!("{}{s}", fills(pad)),
                    // CPython puts the odd fill on the left when the width is odd... and the
                    // text's length even: `left = pad / 2 + (pad & width & 1)`.
                    _ => {
                        let left = pad / 2 + (pad & width & 1);
                        format!("{}{s}{}", fills(left), fills(pad - left))
                    }
                }))
            }
            "zfill" => {
                arity(t, name, args, 1, 1)?;
                let width = int(&args[0])?.max(0) as usize;
                let n = s.chars().count();
                if width <= n {
                    return Ok(Value::str(s));
                }
                let zeros = "0".repeat(width - n);
                Ok(Value::str(match s.chars().next() {
                    Some(c @ ('+' | '-')) => format!("{c}{zeros}{}", &s[1..]),
                    _ => format!("{zeros}{s}"),
                }))
            }
            "title" | "capitalize" | "swapcase" => {
                arity(t, name, args, 0, 0)?;
                let mut out = String::new();
                let mut prev_cased = false;
                for (i, c) in s.chars().enumerate() {
                    match name {
                        "title" => {
                            if prev_cased {
                                out.extend(c.to_lowercase());
                            } else {
                                out.extend(c.to_uppercase());
                            }
                            prev_cased = c.is_alphabetic();
                        }
                        "capitalize" => {
                            if i == 0 {
                                out.extend(c.to_uppercase());
                            } else {
                                out.extend(c.to_lowercase());
                            }
                        }
                        _ => {
                            if c.is_uppercase() {
                                out.extend(c.to_lowercase());
                            } else {
                                out.extend(c.to_uppercase());
                            }
                        }
                    }
                }
                Ok(Value::str(out))
            }
            "isdigit" | "isdecimal" | "isnumeric" | "isalpha" | "isalnum" | "isspace" => {
                arity(t, name, args, 0, 0)?;
                let test = |c: char| match name {
                    "isdigit" | "isdecimal" => {
                        c.is_ascii_digit() || !c.is_ascii() && c.is_numeric()
                    }
                    "isnumeric" => c.is_numeric(),
                    "isalpha" => c.is_alphabetic(),
                    "isalnum" => c.is_alphanumeric(),
                    _ => c.is_whitespace(),
                };
                Ok(Value::Bool(!s.is_empty() && s.chars().all(test)))
            }
            "isupper" | "islower" => {
                arity(t, name, args, 0, 0)?;
                let upper = name == "isupper";
                let cased = s.chars().any(|c| c.is_uppercase() || c.is_lowercase());
                let ok = s.chars().all(|c| {
                    if upper {
                        !c.is_lowercase()
                    } else {
                        !c.is_uppercase()
                    }
                });
                Ok(Value::Bool(cased && ok))
            }
            "removeprefix" | "removesuffix" => {
                arity(t, name, args, 1, 1)?;
                let Value::Str(affix) = &args[0] else {
                    let found = args[0].type_name();
                    return err(
                        TypeError,
                        format!("{name}() argument must be str, not {found}"),
                    );
                };
                let rest = if name == "removeprefix" {
                    s.strip_prefix(&**affix)
                } else {
                    s.strip_suffix(&**affix)
                };
                Ok(Value::str(rest.unwrap_or(s)))
            }
            "expandtabs" => {
                arity(t, name, args, 0, 1)?;
                let size = match args.first() {
                    Some(v) => int(v)?,
                    None => 8,
                };
                let mut out = String::new();
                let mut column = 0i64;
                for c in s.chars() {
                    match c {
                        '\t' if size > 0 => {
                            let spaces = size - column % size;
                            out.extend(std::iter::repeat_n(' ', spaces as usize));
                            column += spaces;
                        }
                        '\t' => {}
                        '\n' | '\r' => {
                            out.push(c);
                            column = 0;
                        }
                        _ => {
                            out.push(c);
                            column += 1;
                        }
                    }
                }
                Ok(Value::str(out))
            }
            "isascii" => {
                arity(t, name, args, 0, 0)?;
                Ok(Value::Bool(s.is_ascii()))
            }
            "istitle" => {
                arity(t, name, args, 0, 0)?;
                // Upper case only after an uncased char, lower case only after a cased one.
                let (mut prev_cased, mut any_cased) = (false, false);
                for c in s.chars() {
                    if c.is_uppercase() || c.is_lowercase() {
                        if c.is_uppercase() == prev_cased {
                            return Ok(Value::Bool(false));
                        }
                        prev_cased = true;
                        any_cased = true;
                    } else {
                        prev_cased = false;
                    }
                }
                Ok(Value::Bool(any_cased))
            }
            "isidentifier" => {
                arity(t, name, args, 0, 0)?;
                // Letters stand for Unicode's XID_Start, letters and digits for XID_Continue.
                let mut cs = s.chars();
                let start = cs.next().is_some_and(|c| c == '_' || c.is_alphabetic());
                Ok(Value::Bool(
                    start && cs.all(|c| c == '_' || c.is_alphanumeric()),
                ))
            }
            _ => unreachable!("{name} is one of the methods above"),
        }
    })())
}

/// A list method of this module, if `name` is one.
pub fn list_method(l: &ListObj, name: &str, args: &[Value]) -> Option<R<Value>> {
    let t = "list";
    let r = match name {
        "extend" => arity(t, name, args, 1, 1).and_then(|()| {
            let more = crate::ops::iterate(&args[0])?;
            lock(&l.items).extend(more);
            Ok(Value::None)
        }),
        "remove" => arity(t, name, args, 1, 1).and_then(|()| {
            for (i, v) in l.snapshot().iter().enumerate() {
                if identical(v, &args[0]) || equal(v, &args[0])? {
                    lock(&l.items).remove(i);
                    return Ok(Value::None);
                }
            }
            err(ValueError, "list.remove(x): x not in list")
        }),
        "clear" => arity(t, name, args, 0, 0).map(|()| {
            lock(&l.items).clear();
            Value::None
        }),
        "count" => arity(t, name, args, 1, 1).and_then(|()| {
            let mut n = 0;
            for v in l.snapshot() {
                if identical(&v, &args[0]) || equal(&v, &args[0])? {
                    n += 1;
                }
            }
            Ok(Value::Int(n))
        }),
        _ => return None,
    };
    Some(r)
}

/// A dict method of this module, if `name` is one.
pub fn dict_method(d: &DictObj, name: &str, args: &[Value]) -> Option<R<Value>> {
    let t = "dict";
    let r = match name {
        // `d.update()` with nothing to add is a no-op, as in CPython.
        "update" => arity(t, name, args, 0, 1)
            .and_then(|()| match args.first() {
                Some(src) => crate::builtins_seq::dict_update(d, src),
                None => Ok(()),
            })
            .map(|()| Value::None),
        "setdefault" => arity(t, name, args, 1, 2).and_then(|()| {
            let k = crate::value::key_in(&d.map, &args[0])?;
            let mut map = lock(&d.map);
            if let Some(v) = map.get(&k) {
                return Ok(v.clone());
            }
            let v = args.get(1).cloned().unwrap_or(Value::None);
            map.insert(k, args[0].clone(), v.clone());
            Ok(v)
        }),
        "popitem" => arity(t, name, args, 0, 0).and_then(|()| match lock(&d.map).pop_last() {
            Some((k, v)) => Ok(TupleObj::new_value(vec![k, v])),
            None => err(ErrorKind::KeyError, "'popitem(): dictionary is empty'"),
        }),
        "clear" => arity(t, name, args, 0, 0).map(|()| {
            *lock(&d.map) = Dict::default();
            Value::None
        }),
        _ => return None,
    };
    Some(r)
}
