//! Binding a call's arguments to a function's parameters ([`crate::ast::Params`]), with
//! CPython's rules and messages. Shared by the interpreter and the JIT's runtime: each
//! passes its own values (`V`) and builds the `*args` and `**kwargs` objects itself.

use crate::ast::Function;

/// Where the value of one parameter slot comes from.
#[derive(Debug, PartialEq)]
pub enum Source<V> {
    /// An argument of the call.
    Given(V),
    /// Default value number `i` of the function (its `defaults` list: the positional
    /// parameters' defaults, then the keyword-only ones').
    Default(usize),
}

/// The arguments of a call, bound.
#[derive(Debug, PartialEq)]
pub struct Bound<V> {
    /// The positional, then keyword-only parameter slots.
    pub slots: Vec<Source<V>>,
    /// The positional arguments left for `*args` (empty without it).
    pub extra_pos: Vec<V>,
    /// The keyword arguments left for `**kwargs`, in call order (empty without it).
    pub extra_kw: Vec<(String, V)>,
}

/// Binds `pos` and `kw` (keyword arguments, names distinct) to the parameters of `f`, in
/// CPython's order of checks: keywords, then the number of positional arguments, then the
/// missing ones. The error is the message of the TypeError.
pub fn bind<V>(f: &Function, pos: Vec<V>, kw: Vec<(String, V)>) -> Result<Bound<V>, String> {
    let p = &f.params;
    let named = p.npos + p.kwonly.len();
    let given = pos.len();
    let mut slots: Vec<Option<V>> = Vec::with_capacity(named);
    let mut extra_pos = Vec::new();
    for (i, v) in pos.into_iter().enumerate() {
        if i < p.npos {
            slots.push(Some(v));
        } else {
            extra_pos.push(v);
        }
    }
    slots.resize_with(named, || None);
    let mut extra_kw = Vec::new();
    for (k, v) in kw {
        match f.locals[..named].iter().position(|n| *n == k) {
            Some(i) if slots[i].is_some() => {
                return Err(format!(
                    "{}() got multiple values for argument '{k}'",
                    f.qualname
                ))
            }
            Some(i) => slots[i] = Some(v),
            None if p.varkw => extra_kw.push((k, v)),
            None => {
                return Err(format!(
                    "{}() got an unexpected keyword argument '{k}'",
                    f.qualname
                ))
            }
        }
    }
    if given > p.npos && !p.varargs {
        return Err(too_many_positional(f, given, &slots));
    }
    let required = p.npos - p.ndefaults;
    let missing: Vec<&str> = (0..required)
        .filter(|&i| slots[i].is_none())
        .map(|i| f.locals[i].as_str())
        .collect();
    if !missing.is_empty() {
        return Err(missing_message(f, "positional", &missing));
    }
    let missing: Vec<&str> = (0..p.kwonly.len())
        .filter(|&j| !p.kwonly[j] && slots[p.npos + j].is_none())
        .map(|j| f.locals[p.npos + j].as_str())
        .collect();
    if !missing.is_empty() {
        return Err(missing_message(f, "keyword-only", &missing));
    }
    // The defaults: positional ones for the last `ndefaults` positional parameters, then one
    // per keyword-only parameter that has one.
    let mut kw_default = p.ndefaults;
    let slots = slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            // None for a positional parameter without default (then given: checked above).
            let d = if i < p.npos {
                (i + p.ndefaults).checked_sub(p.npos)
            } else {
                let d = kw_default;
                kw_default += p.kwonly[i - p.npos] as usize;
                Some(d)
            };
            match (v, d) {
                (Some(v), _) => Source::Given(v),
                (None, Some(d)) => Source::Default(d),
                (None, None) => unreachable!("a missing argument is reported above"),
            }
        })
        .collect();
    Ok(Bound {
        slots,
        extra_pos,
        extra_kw,
    })
}

/// How CPython names a program function in errors about a call's unpacked arguments.
pub fn function_name(f: &Function) -> String {
    format!("__main__.{}", f.qualname)
}

/// The TypeError message of `f(*x)` (`star` = "*") or `f(**x)` ("**") with an `x` of type
/// `type_name` that cannot be unpacked; `callee` names `f`.
pub fn star_message(callee: &str, star: &str, type_name: String) -> String {
    let what = if star == "*" {
        "an iterable"
    } else {
        "a mapping"
    };
    format!("{callee}() argument after {star} must be {what}, not {type_name}")
}

/// The TypeError message of a keyword given twice through `**` (`callee` names the callee).
pub fn repeated_message(callee: &str, k: &str) -> String {
    format!("{callee}() got multiple values for keyword argument '{k}'")
}

/// The keyword arguments of builtin `name` that accepts those in `allowed`: their values,
/// in the order of `allowed`, or the TypeError message.
pub fn builtin_keywords<V>(
    name: &str,
    allowed: &[&str],
    kw: Vec<(String, V)>,
) -> Result<Vec<Option<V>>, String> {
    let mut out: Vec<Option<V>> = allowed.iter().map(|_| None).collect();
    for (k, v) in kw {
        match allowed.iter().position(|a| *a == k) {
            Some(i) => out[i] = Some(v),
            None if allowed.is_empty() => {
                return Err(format!("{name}() takes no keyword arguments"))
            }
            None => {
                // CPython names `sorted` and `list.sort` after the method they share.
                let shown = if name == "sorted" || name == "list.sort" {
                    "sort"
                } else {
                    name
                };
                return Err(format!(
                    "'{k}' is an invalid keyword argument for {shown}()"
                ));
            }
        }
    }
    Ok(out)
}

/// The parameters of the builtins (and builtin methods, as `str.split`) whose keyword
/// arguments name positional parameters, as CPython's do: the names, and how many come
/// first that only a position can give (`int(x, base=16)`, `sum(xs, start=10)`), and how
/// many are required (a gap left before a keyword among the others is None, as `sep` in
/// `s.split(maxsplit=1)`).
pub fn positional_keywords(name: &str) -> Option<(&'static [&'static str], usize, usize)> {
    Some(match name {
        "int" => (&["x", "base"], 1, 1),
        "enumerate" => (&["iterable", "start"], 0, 1),
        "round" => (&["number", "ndigits"], 0, 1),
        "sum" => (&["iterable", "start"], 1, 1),
        "pow" => (&["base", "exp", "mod"], 0, 2),
        "str.split" | "str.rsplit" => (&["sep", "maxsplit"], 0, 0),
        "str.splitlines" => (&["keepends"], 0, 0),
        _ => return None,
    })
}

/// The arguments of a call of builtin `name` (see [`positional_keywords`]) with keyword
/// arguments `kw`, all as positional ones, or CPython's TypeError message: too many,
/// too few before the keywords, an unknown keyword, one given twice, a required one left
/// out before one (an optional one left out is `none`).
pub fn keywords_to_positional<V: Clone>(
    name: &str,
    (params, first_kw, nreq): (&[&str], usize, usize),
    pos: Vec<V>,
    kw: Vec<(String, V)>,
    none: V,
) -> Result<Vec<V>, String> {
    let short = name.rsplit('.').next().unwrap_or(name);
    let given = pos.len() + kw.len();
    if given > params.len() {
        return Err(format!(
            "{short}() takes at most {} argument{} ({given} given)",
            params.len(),
            plural(params.len())
        ));
    }
    if pos.len() < first_kw {
        if name == "int" {
            return Err("int() missing string argument".into());
        }
        return Err(format!(
            "{short}() takes at least {first_kw} positional argument{} ({} given)",
            plural(first_kw),
            pos.len()
        ));
    }
    let mut slots: Vec<Option<V>> = pos.into_iter().map(Some).collect();
    let npos = slots.len();
    slots.resize_with(params.len(), || None);
    for (k, v) in kw {
        match params.iter().position(|p| *p == k) {
            Some(i) if i >= first_kw && i < npos => {
                return Err(format!(
                    "argument for {short}() given by name ('{k}') and position ({})",
                    i + 1
                ))
            }
            Some(i) if i >= first_kw => slots[i] = Some(v),
            _ => {
                return Err(format!(
                    "'{k}' is an invalid keyword argument for {short}()"
                ))
            }
        }
    }
    let last = slots.iter().rposition(Option::is_some).map_or(0, |i| i + 1);
    if let Some(i) = slots[..last.min(nreq)].iter().position(Option::is_none) {
        return Err(format!(
            "{short}() missing required argument '{}' (pos {})",
            params[i],
            i + 1
        ));
    }
    Ok(slots
        .into_iter()
        .take(last)
        .map(|v| v.unwrap_or_else(|| none.clone()))
        .collect())
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// CPython's message for more positional arguments than parameters.
fn too_many_positional<V>(f: &Function, given: usize, slots: &[Option<V>]) -> String {
    let p = &f.params;
    let (sig, plural_sig) = if p.ndefaults > 0 {
        (format!("from {} to {}", p.npos - p.ndefaults, p.npos), true)
    } else {
        (p.npos.to_string(), p.npos != 1)
    };
    let kwonly_given = slots[p.npos..].iter().filter(|s| s.is_some()).count();
    let kwonly_sig = if kwonly_given > 0 {
        format!(
            " positional argument{} (and {kwonly_given} keyword-only argument{})",
            plural(given),
            plural(kwonly_given)
        )
    } else {
        String::new()
    };
    format!(
        "{}() takes {sig} positional argument{} but {given}{kwonly_sig} {} given",
        f.qualname,
        if plural_sig { "s" } else { "" },
        if given == 1 && kwonly_given == 0 {
            "was"
        } else {
            "were"
        }
    )
}

/// CPython's message for missing arguments of `kind` ("positional" or "keyword-only").
fn missing_message(f: &Function, kind: &str, names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("'{n}'")).collect();
    let list = match quoted.len() {
        1 => quoted[0].clone(),
        2 => format!("{} and {}", quoted[0], quoted[1]),
        n => format!("{}, and {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    };
    format!(
        "{}() missing {} required {kind} argument{}: {list}",
        f.qualname,
        names.len(),
        plural(names.len())
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ast::Params;
    use crate::diag::Span;

    fn func(params: Params, names: &[&str]) -> Function {
        Function {
            name: "f".into(),
            qualname: "f".into(),
            arity: params.slots(),
            params,
            defaults: Vec::new(),
            nfree: 0,
            closure: Vec::new(),
            cells: Vec::new(),
            locals: names.iter().map(|s| s.to_string()).collect(),
            body: Vec::new(),
            span: Span::new(1, 1),
        }
    }

    fn kw(pairs: &[(&str, i32)]) -> Vec<(String, i32)> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn defaults_keywords_and_rest() {
        // def f(a, b=1, *rest, k, m=2, **kw)
        let p = Params {
            npos: 2,
            ndefaults: 1,
            kwonly: vec![false, true],
            varargs: true,
            varkw: true,
        };
        let f = func(p, &["a", "b", "k", "m", "rest", "kw"]);
        let b = bind(&f, vec![10, 20, 30], kw(&[("k", 5), ("z", 6)])).unwrap();
        assert_eq!(
            b.slots,
            vec![
                Source::Given(10),
                Source::Given(20),
                Source::Given(5),
                Source::Default(1)
            ]
        );
        assert_eq!(b.extra_pos, vec![30]);
        assert_eq!(b.extra_kw, kw(&[("z", 6)]));
        let b = bind(&f, vec![10], kw(&[("k", 5)])).unwrap();
        assert_eq!(b.slots[1], Source::Default(0));
        assert_eq!(
            bind(&f, vec![], kw(&[("k", 5)])).unwrap_err(),
            "f() missing 1 required positional argument: 'a'"
        );
        assert_eq!(
            bind(&f, vec![1], vec![]).unwrap_err(),
            "f() missing 1 required keyword-only argument: 'k'"
        );
        assert_eq!(
            bind(&f, vec![1], kw(&[("a", 2)])).unwrap_err(),
            "f() got multiple values for argument 'a'"
        );
    }

    #[test]
    fn cpython_messages() {
        let f = func(Params::positional(3), &["a", "b", "c"]);
        assert_eq!(
            bind(&f, vec![1], vec![]).unwrap_err(),
            "f() missing 2 required positional arguments: 'b' and 'c'"
        );
        assert_eq!(
            bind::<i32>(&f, vec![], vec![]).unwrap_err(),
            "f() missing 3 required positional arguments: 'a', 'b', and 'c'"
        );
        assert_eq!(
            bind(&f, vec![1, 2, 3, 4], vec![]).unwrap_err(),
            "f() takes 3 positional arguments but 4 were given"
        );
        assert_eq!(
            bind(&f, vec![1, 2, 3], kw(&[("x", 1)])).unwrap_err(),
            "f() got an unexpected keyword argument 'x'"
        );
        let g = func(Params::positional(0), &[]);
        assert_eq!(
            bind(&g, vec![1], vec![]).unwrap_err(),
            "f() takes 0 positional arguments but 1 was given"
        );
        let h = func(
            Params {
                npos: 2,
                ndefaults: 1,
                kwonly: vec![true],
                ..Params::default()
            },
            &["a", "b", "k"],
        );
        assert_eq!(
            bind(&h, vec![1, 2, 3], vec![]).unwrap_err(),
            "f() takes from 1 to 2 positional arguments but 3 were given"
        );
        assert_eq!(
            bind(&h, vec![1, 2, 3], kw(&[("k", 1)])).unwrap_err(),
            "f() takes from 1 to 2 positional arguments but 3 positional arguments \
             (and 1 keyword-only argument) were given"
        );
    }
}
