//! Calls beyond plain positional ones: keyword arguments, `*iterable` and `**dict` at call
//! sites ([`stmjit_call_ex`]), functions with default values, keyword-only parameters,
//! `*args` and `**kwargs` ([`call_bound`], binding with `stmjit_lang::callargs`), and the
//! keyword arguments of builtins (`print(sep=, end=)`, `sorted(key=, reverse=)`,
//! `list.sort(key=, reverse=)`, `min`/`max(key=, default=)`).
//!
//! Plain positional calls of functions without defaults never come here: JIT code calls
//! them directly, and `calls::call_function` enters them straight from the argument array.

use super::calls::{call_builtin, call_value, generic_builtin, instantiate, name_of};
use super::helpers::with_rt;
use super::{exc, rt_of, Ctx, Root, Runtime, Unwind, ERR, R};
use crate::objects::*;
use std::mem::offset_of;
use stmjit_lang::ast::{ArgKind, Builtin};
use stmjit_lang::builtins_core;
use stmjit_lang::callargs::{self, Source};
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::ops;
use stmjit_lang::value::{ListObj as VList, Value};
use stmjit_runtime::value::{self, Word, NONE};

/// Calls function object `f` (program function `fid`) with positional arguments `pos` and
/// keyword arguments `kw` (names distinct), bound to its parameters by
/// `stmjit_lang::callargs::bind`: defaults come from `f`, `*args` gets a new tuple and
/// `**kwargs` a new dict.
pub(crate) fn call_bound(
    ctx: *mut Ctx,
    f: Word,
    fid: usize,
    pos: &[Word],
    kw: &[(String, Word)],
) -> Word {
    let rt = rt_of(ctx);
    let program = rt.info.program.clone();
    let func = &program.functions[fid];
    let mark = rt.mark();
    // Everything held across the allocations below is rooted.
    let argv = (|| -> R<Root> {
        let rf = rt.root(f);
        let words: Vec<Word> = pos
            .iter()
            .chain(kw.iter().map(|(_, w)| w))
            .copied()
            .collect();
        let held = rt.hold_all(&words)?;
        let (hp, hk) = held.split_at(pos.len());
        let kw_held = kw
            .iter()
            .zip(hk)
            .map(|((k, _), &h)| (k.clone(), h))
            .collect();
        let bound =
            callargs::bind(func, hp.to_vec(), kw_held).map_err(|m| exc(ErrorKind::TypeError, m))?;
        let mut rest = Vec::new();
        if func.params.varargs {
            let items: Vec<Word> = bound.extra_pos.iter().map(|&h| rt.held(h)).collect();
            let l = rt.new_tuple(&items)?;
            rest.push(rt.root(l));
        }
        if func.params.varkw {
            let d = rt.new_dict()?;
            let rd = rt.root(d);
            for (k, h) in &bound.extra_kw {
                let key = rt.new_str(k)?;
                rt.dict_set(rt.get(rd), key, rt.held(*h))?;
            }
            rest.push(rd);
        }
        // The argument array: one contiguous root per parameter slot, then the cells of
        // the free variables.
        let defaults = rt.ld(rt.get(rf), offset_of!(FunctionObj, defaults) as u64);
        let closure = rt.ld(rt.get(rf), offset_of!(FunctionObj, closure) as u64);
        let cells = if closure == NONE {
            Vec::new()
        } else {
            rt.list_items(closure)
        };
        let words: Vec<Word> = bound
            .slots
            .iter()
            .map(|s| match *s {
                Source::Given(h) => rt.held(h),
                Source::Default(i) => rt.list_get(defaults, i as u64),
            })
            .chain(rest.iter().map(|&r| rt.get(r)))
            .chain(cells)
            .collect();
        rt.hold_all(&words)?;
        let first = words.iter().map(|&w| rt.root(w)).next();
        for &w in words.iter().skip(1) {
            rt.root(w);
        }
        if rt.root_overflow.replace(false) {
            return Err(exc(
                ErrorKind::MemoryError,
                "too many objects held by one operation",
            ));
        }
        // A function that is not plain has a parameter or a free variable.
        Ok(first.expect("a function that is not plain takes a word"))
    })();
    let argv = match argv {
        Ok(a) => a,
        Err(e) => {
            rt.release(mark);
            return rt.unwind(e);
        }
    };
    let (entry, code) = match crate::calls::entry_of(rt, fid, func.entry_words()) {
        Ok(e) => e,
        Err(e) => {
            rt.release(mark);
            return rt.unwind(e);
        }
    };
    if rt.tick().is_err() {
        rt.release(mark);
        return crate::ERR;
    }
    let base = rt.seg_base;
    // SAFETY: the entry is a finalized trampoline taking (segment base, ctx, argv, code)
    // that calls `code` (function fid's) with its words at argv (the contiguous roots just
    // pushed, one per parameter slot); base is the running segment's base (its %gs base).
    let r = crate::txn::from_rust(ctx, || unsafe { entry(base, ctx, argv.ptr(), code) });
    rt_of(ctx).release(mark);
    r
}

/// The function object a `def` or `lambda` of program function `fid` makes when it runs:
/// `argv[0..n]` are the values of its defaults (in the order of `Function::defaults`), then
/// the cells of its free variables.
///
/// # Safety
/// `ctx` must be the live context; `argv` points at `n` words (JIT frame slots, updated by
/// the GC).
pub unsafe extern "C" fn stmjit_make_function(
    ctx: *mut Ctx,
    fid: u64,
    argv: *const Word,
    n: u64,
) -> Word {
    with_rt(ctx, |rt| {
        let program = rt.info.program.clone();
        let f = &program.functions[fid as usize];
        let nd = f.defaults.len();
        debug_assert_eq!(nd + f.nfree, n as usize);
        // Each list is made from the slots read right before (`new_list` holds its items
        // across its allocations), the first one rooted across the second.
        // SAFETY: caller's contract (`n` words at argv).
        let words =
            |from: usize, len: usize| unsafe { std::slice::from_raw_parts(argv.add(from), len) };
        let d = if nd > 0 {
            rt.new_list(words(0, nd))?
        } else {
            NONE
        };
        let rd = rt.root(d);
        let c = if f.nfree > 0 {
            rt.new_list(words(nd, f.nfree))?
        } else {
            NONE
        };
        rt.new_function(fid as usize, rt.get(rd), c)
    })
}

/// `f(*pos, **kw)` for any callable value (keyword names distinct).
pub(crate) fn call_value_kw(ctx: *mut Ctx, f: Word, pos: &[Word], kw: &[(String, Word)]) -> Word {
    if kw.is_empty() {
        return call_value(ctx, f, pos);
    }
    let rt = rt_of(ctx);
    let t = rt.types;
    match rt.type_of(f) {
        Some(x) if x == t.function.0 => {
            let fid = rt.ld(f, offset_of!(FunctionObj, func_id) as u64) as usize;
            call_bound(ctx, f, fid, pos, kw)
        }
        Some(x) if x == t.bound_method.0 => {
            let fid = rt.ld(f, offset_of!(BoundMethodObj, func_id) as u64) as usize;
            let fobj = rt.ld(f, offset_of!(BoundMethodObj, func) as u64);
            let mut all = vec![rt.ld(f, offset_of!(BoundMethodObj, receiver) as u64)];
            all.extend_from_slice(pos);
            call_bound(ctx, fobj, fid, &all, kw)
        }
        Some(x) if x == t.class.0 => instantiate(ctx, f, pos, kw, None),
        Some(x) if x == t.builtin.0 => {
            let which = rt.ld(f, offset_of!(BuiltinObj, which) as u64);
            if rt.ld(f, offset_of!(BuiltinObj, is_method) as u64) == 0 {
                builtin_kw(ctx, Builtin::ALL[which as usize], pos, kw)
            } else {
                let recv = rt.ld(f, offset_of!(BuiltinObj, receiver) as u64);
                method_kw(ctx, recv, which as u32, pos, kw)
            }
        }
        _ => {
            let msg = format!("'{}' object is not callable", rt.type_name(f));
            rt.raise(ErrorKind::TypeError, msg)
        }
    }
}

/// How errors about the unpacked arguments of a call name callee `f`.
fn callee_name(rt: &Runtime, f: Word) -> String {
    let t = rt.types;
    let fid = if rt.is(f, t.function) {
        Some(rt.ld(f, offset_of!(FunctionObj, func_id) as u64))
    } else if rt.is(f, t.bound_method) {
        Some(rt.ld(f, offset_of!(BoundMethodObj, func_id) as u64))
    } else {
        None
    };
    if let Some(fid) = fid {
        return callargs::function_name(&rt.info.program.functions[fid as usize]);
    }
    if rt.is(f, t.builtin) && rt.ld(f, offset_of!(BuiltinObj, is_method) as u64) == 0 {
        let which = rt.ld(f, offset_of!(BuiltinObj, which) as u64) as usize;
        return Builtin::ALL[which].name().to_string();
    }
    rt.type_name(f)
}

/// Keyword arguments held across allocations: (name, rooted value).
type RootedKeywords = Vec<(String, Root)>;

/// `f(args)` where some arguments are keywords, `*iterable` or `**dict`: `argv[0..n]` are
/// the argument values in source order, `shape` indexes their kinds
/// (`CodeTables::call_shapes`).
///
/// # Safety
/// `ctx` must be the live context; `argv` points at `n` words (JIT frame slots, updated by
/// the GC); `shape` was registered by the compiler for this call, with `n` kinds.
pub unsafe extern "C" fn stmjit_call_ex(
    ctx: *mut Ctx,
    f: Word,
    argv: *const Word,
    n: u64,
    shape: u64,
) -> Word {
    let rt = rt_of(ctx);
    let info = rt.info.clone();
    let kinds = &info.code.call_shapes[shape as usize];
    debug_assert_eq!(kinds.len(), n as usize);
    let mark = rt.mark();
    let rf = rt.root(f);
    let collected = (|| -> R<(Vec<Root>, RootedKeywords)> {
        let mut pos: Vec<Root> = Vec::new();
        let mut kw: Vec<(String, Root)> = Vec::new();
        for (i, kind) in kinds.iter().enumerate() {
            // SAFETY: caller's contract; read now, as the GC may have moved it meanwhile.
            let w = unsafe { *argv.add(i) };
            match kind {
                ArgKind::Pos => pos.push(rt.root(w)),
                ArgKind::Kw(k) => {
                    // Only a `**` before can have given it already (the parser refuses
                    // repeated keywords).
                    if kw.iter().any(|(n, _)| n == k) {
                        let msg = callargs::repeated_message(&callee_name(rt, rt.get(rf)), k);
                        return Err(exc(ErrorKind::TypeError, msg));
                    }
                    kw.push((k.clone(), rt.root(w)))
                }
                ArgKind::Star => {
                    let items = if rt.is(w, rt.types.list) {
                        rt.list_items(w)
                    } else {
                        match generic_builtin(rt, Builtin::List, &[w]) {
                            Ok(l) => rt.list_items(l),
                            // Not iterable at all: CPython's message. An error of an
                            // iteration that began (`__iter__` returning a non-iterator)
                            // stands, as anything else (an abort: the transaction is gone;
                            // memory) goes on unwinding as it is.
                            Err(Unwind::Raise(ErrorKind::TypeError, m)) => {
                                // SAFETY: as above; read again, as the iteration may have
                                // moved it.
                                let w = unsafe { *argv.add(i) };
                                if rt.tx.aborting
                                    || rt.with_special(&[w], |v| Ok(ops::is_iterable(&v[0])))?
                                {
                                    return Err(Unwind::Raise(ErrorKind::TypeError, m));
                                }
                                let msg = callargs::star_message(
                                    &callee_name(rt, rt.get(rf)),
                                    "*",
                                    rt.type_name(w),
                                );
                                return Err(exc(ErrorKind::TypeError, msg));
                            }
                            Err(e) => return Err(e),
                        }
                    };
                    rt.hold_all(&items)?;
                    pos.extend(items.iter().map(|&x| rt.root(x)));
                }
                ArgKind::DoubleStar => {
                    if !rt.is(w, rt.types.dict) {
                        let msg = callargs::star_message(
                            &callee_name(rt, rt.get(rf)),
                            "**",
                            rt.type_name(w),
                        );
                        return Err(exc(ErrorKind::TypeError, msg));
                    }
                    let items = rt.dict_items(w);
                    for (k, v) in items {
                        if !rt.is(k, rt.types.str) {
                            return Err(exc(ErrorKind::TypeError, "keywords must be strings"));
                        }
                        let k = rt.str_of(k).to_string();
                        if kw.iter().any(|(n, _)| *n == k) {
                            let msg = callargs::repeated_message(&callee_name(rt, rt.get(rf)), &k);
                            return Err(exc(ErrorKind::TypeError, msg));
                        }
                        kw.push((k, rt.root(v)));
                    }
                }
            }
        }
        if rt.root_overflow.replace(false) {
            return Err(exc(
                ErrorKind::MemoryError,
                "too many objects held by one operation",
            ));
        }
        Ok((pos, kw))
    })();
    let (pos, kw) = match collected {
        Ok(c) => c,
        Err(e) => {
            rt.release(mark);
            return rt.unwind(e);
        }
    };
    // No allocation from here to the callee, which roots what it keeps.
    let pos: Vec<Word> = pos.iter().map(|&r| rt.get(r)).collect();
    let kw: Vec<(String, Word)> = kw.into_iter().map(|(k, r)| (k, rt.get(r))).collect();
    let r = call_value_kw(ctx, rt.get(rf), &pos, &kw);
    rt_of(ctx).release(mark);
    r
}

/// The keyword arguments builtin `b` accepts.
fn builtin_keywords(b: Builtin) -> &'static [&'static str] {
    match b {
        Builtin::Print => &["sep", "end", "flush"],
        Builtin::Sorted => &["key", "reverse"],
        Builtin::Min | Builtin::Max => &["key", "default"],
        _ => &[],
    }
}

/// Builtin `b` called with keyword arguments.
fn builtin_kw(ctx: *mut Ctx, b: Builtin, pos: &[Word], kw: &[(String, Word)]) -> Word {
    let rt = rt_of(ctx);
    if let Some(params) = callargs::positional_keywords(b.name()) {
        return match callargs::keywords_to_positional(
            b.name(),
            params,
            pos.to_vec(),
            kw.to_vec(),
            NONE,
        ) {
            Ok(args) => {
                let which = Builtin::ALL.iter().position(|x| *x == b).unwrap();
                call_builtin(ctx, which as u64, &args)
            }
            Err(m) => rt.raise(ErrorKind::TypeError, m),
        };
    }
    if b == Builtin::Dict {
        return dict_kw(ctx, pos, kw);
    }
    let allowed = builtin_keywords(b);
    let kw = kw.to_vec();
    let kws = match callargs::builtin_keywords(b.name(), allowed, kw) {
        Ok(k) => k,
        Err(m) => return rt.raise(ErrorKind::TypeError, m),
    };
    match b {
        Builtin::Print => {
            // The keyword names are interned strs (the program's literals), never moved.
            let mut all = pos.to_vec();
            let mut n = 0;
            // `flush=` changes nothing: output is written at each commit.
            for (k, v) in allowed.iter().zip(kws) {
                if let (Some(v), false) = (v, *k == "flush") {
                    let id = rt.info.names.id(k).expect("keyword names are interned");
                    all.push(rt.info.names.str_obj(id));
                    all.push(v);
                    n += 1;
                }
            }
            all.push(value::from_int(n).expect("small"));
            let which = Builtin::ALL
                .iter()
                .position(|x| *x == Builtin::PrintKw)
                .unwrap();
            call_builtin(ctx, which as u64, &all)
        }
        Builtin::Sorted => {
            if pos.len() != 1 {
                let msg = format!("sorted expected 1 argument, got {}", pos.len());
                return rt.raise(ErrorKind::TypeError, msg);
            }
            let (key, reverse) = (kws[0].unwrap_or(NONE), kws[1].unwrap_or(NONE));
            let mark = rt.mark();
            let (rk, rr) = (rt.root(key), rt.root(reverse));
            let items = match to_new_list(rt, pos[0]) {
                Ok(l) => rt.root(l),
                Err(e) => {
                    rt.release(mark);
                    return rt.unwind(e);
                }
            };
            let r = keyed_sort(ctx, items, rk, rr, false);
            rt_of(ctx).release(mark);
            r
        }
        Builtin::Min | Builtin::Max => {
            let (key, default) = (kws[0].unwrap_or(NONE), kws[1]);
            if pos.is_empty() {
                let msg = format!("{} expected at least 1 argument, got 0", b.name());
                return rt.raise(ErrorKind::TypeError, msg);
            }
            if pos.len() > 1 && default.is_some() {
                let msg = format!(
                    "Cannot specify a default for {}() with multiple positional arguments",
                    b.name()
                );
                return rt.raise(ErrorKind::TypeError, msg);
            }
            let mark = rt.mark();
            let rk = rt.root(key);
            let rd = rt.root(default.unwrap_or(NONE));
            let items = if pos.len() == 1 {
                to_new_list(rt, pos[0])
            } else {
                rt.new_list(pos)
            };
            let items = match items {
                Ok(l) => rt.root(l),
                Err(e) => {
                    rt.release(mark);
                    return rt.unwind(e);
                }
            };
            let r = keyed_min_max(ctx, b, items, rk, default.map(|_| rd));
            rt_of(ctx).release(mark);
            r
        }
        _ => unreachable!("builtin_keywords refuses keywords of other builtins"),
    }
}

/// `recv.name(*pos, **kw)` for a builtin receiver: only `list.sort(key=, reverse=)` and
/// `str.format` take keywords.
fn method_kw(ctx: *mut Ctx, recv: Word, name: u32, pos: &[Word], kw: &[(String, Word)]) -> Word {
    let rt = rt_of(ctx);
    let mname = name_of(ctx, name);
    let full = format!("{}.{mname}", rt.type_name(recv));
    if let Some(params) = callargs::positional_keywords(&full) {
        return match callargs::keywords_to_positional(
            &full,
            params,
            pos.to_vec(),
            kw.to_vec(),
            NONE,
        ) {
            Ok(args) => super::calls::builtin_method(ctx, recv, name, &args),
            Err(m) => rt.raise(ErrorKind::TypeError, m),
        };
    }
    if rt.is(recv, rt.types.str) && mname == "format" {
        return str_format_kw(ctx, recv, pos, kw);
    }
    if !rt.is(recv, rt.types.list) || mname != "sort" {
        let msg = format!(
            "{}.{mname}() takes no keyword arguments",
            rt.type_name(recv)
        );
        return rt.raise(ErrorKind::TypeError, msg);
    }
    let kws = match callargs::builtin_keywords("list.sort", &["key", "reverse"], kw.to_vec()) {
        Ok(k) => k,
        Err(m) => return rt.raise(ErrorKind::TypeError, m),
    };
    if !pos.is_empty() {
        return rt.raise(ErrorKind::TypeError, "sort() takes no positional arguments");
    }
    let mark = rt.mark();
    let (rk, rr) = (
        rt.root(kws[0].unwrap_or(NONE)),
        rt.root(kws[1].unwrap_or(NONE)),
    );
    let items = rt.root(recv);
    let r = keyed_sort(ctx, items, rk, rr, true);
    rt_of(ctx).release(mark);
    r
}

/// `s.format(*pos, **kw)`: the interpreter's `format_method`, on a deep conversion (fields
/// show what is inside the values).
fn str_format_kw(ctx: *mut Ctx, s: Word, pos: &[Word], kw: &[(String, Word)]) -> Word {
    let mut all = vec![s];
    all.extend_from_slice(pos);
    all.extend(kw.iter().map(|(_, w)| *w));
    with_rt(ctx, |rt| {
        let program = rt.info.program.clone();
        rt.via_values(&all, true, false, |v| {
            let names = |id: usize| program.functions[id].qualname.clone();
            let Value::Str(s) = &v[0] else {
                unreachable!("the receiver is a str")
            };
            let (args, values) = v[1..].split_at(pos.len());
            let kwargs: Vec<(String, Value)> = kw
                .iter()
                .map(|(k, _)| k.clone())
                .zip(values.iter().cloned())
                .collect();
            builtins_core::format_method(s, (args, &kwargs), &names)
        })
    })
}

/// `dict(..., k=v)`: the keywords are str keys added after the positional argument's
/// items, as CPython's.
fn dict_kw(ctx: *mut Ctx, pos: &[Word], kw: &[(String, Word)]) -> Word {
    with_rt(ctx, |rt| {
        let mark = rt.mark();
        let vals: Vec<Root> = kw.iter().map(|(_, v)| rt.root(*v)).collect();
        let r = (|| -> R<Word> {
            let d = generic_builtin(rt, Builtin::Dict, pos)?;
            let d = rt.root(d);
            for ((k, _), v) in kw.iter().zip(&vals) {
                let k = rt.new_str(k)?;
                rt.dict_set(rt.get(d), k, rt.get(*v))?;
            }
            Ok(rt.get(d))
        })();
        rt.release(mark);
        r
    })
}

/// A new list of the items of iterable `w`.
fn to_new_list(rt: &mut Runtime, w: Word) -> R<Word> {
    if rt.is(w, rt.types.list) {
        let items = rt.list_items(w);
        rt.new_list(&items)
    } else {
        generic_builtin(rt, Builtin::List, &[w])
    }
}

/// The keys of the items of list `items` (rooted): a new list of what `key` returns for
/// each, or the list itself when `key` is None. ERR when a call of `key` failed.
fn keys_of(ctx: *mut Ctx, items: Root, key: Root) -> Result<Root, Word> {
    let rt = rt_of(ctx);
    if rt.get(key) == NONE {
        return Ok(items);
    }
    let keys = match rt.new_list(&[]) {
        Ok(l) => rt.root(l),
        Err(e) => return Err(rt.unwind(e)),
    };
    let mut i = 0;
    loop {
        let rt = rt_of(ctx);
        // The key function may change the list: its length is read at each step.
        if i >= rt.list_len(rt.get(items)) {
            return Ok(keys);
        }
        let item = rt.list_get(rt.get(items), i);
        let k = call_value(ctx, rt.get(key), &[item]);
        if k == ERR {
            return Err(ERR);
        }
        let rt = rt_of(ctx);
        if let Err(e) = rt.list_push(rt.get(keys), k) {
            return Err(rt.unwind(e));
        }
        i += 1;
    }
}

/// `sorted(items, key=, reverse=)` of list `items` (all rooted): a new list, or, with
/// `in_place` (`list.sort`), `items` sorted and None.
fn keyed_sort(ctx: *mut Ctx, items: Root, key: Root, reverse: Root, in_place: bool) -> Word {
    let keys = match keys_of(ctx, items, key) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let rt = rt_of(ctx);
    let r = (|| -> R<Word> {
        // The order as a list of indices, computed on the keys' values.
        let order = rt.via_values(&[rt.get(keys), rt.get(reverse)], true, false, |v| {
            let keys = stmjit_lang::ops::iterate(&v[0])?;
            let order = builtins_core::sort_order(keys, v[1].truthy())?;
            Ok(VList::new_value(
                order.into_iter().map(|i| Value::Int(i as i64)).collect(),
            ))
        })?;
        let src = rt.list_items(rt.get(items));
        let sorted: Vec<Word> = rt
            .list_items(order)
            .into_iter()
            .map(|i| src[value::to_int(i) as usize])
            .collect();
        if in_place {
            rt.list_replace(rt.get(items), &sorted)?;
            Ok(NONE)
        } else {
            rt.new_list(&sorted)
        }
    })();
    match r {
        Ok(w) => w,
        Err(e) => rt.unwind(e),
    }
}

/// `min`/`max` (`b`) of list `items` with `key=` and `default=` (all rooted).
fn keyed_min_max(ctx: *mut Ctx, b: Builtin, items: Root, key: Root, default: Option<Root>) -> Word {
    let keys = match keys_of(ctx, items, key) {
        Ok(k) => k,
        Err(e) => return e,
    };
    let rt = rt_of(ctx);
    let r = (|| -> R<Word> {
        let best = rt.via_values(&[rt.get(keys)], true, false, |v| {
            let keys = stmjit_lang::ops::iterate(&v[0])?;
            Ok(match builtins_core::min_max_index(b, &keys)? {
                Some(i) => Value::Int(i as i64),
                None => Value::None,
            })
        })?;
        if best != NONE {
            return Ok(rt.list_get(rt.get(items), value::to_int(best) as u64));
        }
        match default {
            Some(d) => Ok(rt.get(d)),
            None => Err(builtins_core::empty_min_max(b).into()),
        }
    })();
    match r {
        Ok(w) => w,
        Err(e) => rt.unwind(e),
    }
}
