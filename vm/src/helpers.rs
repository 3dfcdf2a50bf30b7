//! `extern "C"` helpers for operations JIT code does not inline: generic arithmetic,
//! comparisons, containers, attributes, iteration, printing and error raising. Each is a
//! thin entry point over the object model's operations (`ops.rs`, `items.rs`, `attrs.rs`,
//! `objects/`); calls and classes are in `calls.rs`, transactions in `txn.rs`.
//!
//! Every helper takes the thread's [`Ctx`] first and returns a word, or [`ERR`](crate::ERR) after
//! recording the error in the runtime.

use super::attrs::fill_cache;
use super::convert::Memo;
use super::site_cache::SiteCache;
use super::{exc, Ctx, Runtime, Unwind, R, UNBOUND};
use crate::abi::{BINOPS, CMPOPS, UNOPS};
use stmjit_lang::ast::{BinOp, CmpOp};
use stmjit_lang::diag::ErrorKind;
use stmjit_lang::ops;
use stmjit_lang::value::{identical, Value};
use stmjit_runtime::value::{self, is_int, Word, NONE};

/// Runs `f` on the context's runtime; an error is recorded and becomes [`ERR`].
#[inline]
pub(crate) fn with_rt(ctx: *mut Ctx, f: impl FnOnce(&mut Runtime) -> R<Word>) -> Word {
    // SAFETY: JIT code passes the live context of its thread; its runtime outlives the run
    // and no other reference to it is active during a helper call.
    let rt = unsafe { &mut *(*ctx).rt };
    // Whatever the helper rooted lives only for the call: a helper called in a loop must not
    // pile roots up on the shadow stack (its result is read before anything can move).
    let mark = rt.mark();
    let r = f(rt);
    rt.release(mark);
    if rt.root_overflow.replace(false) {
        return rt.raise(
            ErrorKind::MemoryError,
            "too many objects held by one operation",
        );
    }
    match r {
        Ok(w) => w,
        Err(e) => rt.unwind(e),
    }
}

// ----- extern "C" entry points -----

/// `a OP b` for any operands (JIT code inlines int fast paths and calls this otherwise).
///
/// # Safety
/// `ctx` must be the live context of the calling thread (as for all helpers below).
pub unsafe extern "C" fn stmjit_binop(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| binop(rt, BINOPS[op as usize], a, b))
}

/// `a OP b` (see [`stmjit_binop`]).
fn binop(rt: &mut Runtime, op: BinOp, a: Word, b: Word) -> R<Word> {
    let t = rt.types;
    if op == BinOp::Add && rt.is(a, t.str) && rt.is(b, t.str) {
        let s = format!("{}{}", rt.str_of(a), rt.str_of(b));
        return rt.new_str(&s);
    }
    if op == BinOp::Add && rt.is(a, t.list) && rt.is(b, t.list) {
        let (la, lb) = (rt.list_len(a), rt.list_len(b));
        return rt.list_concat(&[(a, 0, la), (b, 0, lb)], 1);
    }
    if op == BinOp::Mul {
        let (l, n) = if rt.is(a, t.list) { (a, b) } else { (b, a) };
        if rt.is(l, t.list) && (is_int(n) || n == value::TRUE || n == value::FALSE) {
            let len = rt.list_len(l);
            let nv = if is_int(n) {
                Value::Int(value::to_int(n))
            } else {
                Value::Bool(n == value::TRUE)
            };
            let count = ops::repeat_count(&nv, len as usize)?;
            return rt.list_concat(&[(l, 0, len)], count as u64);
        }
    }
    if op == BinOp::Add && rt.is(a, t.tuple) && rt.is(b, t.tuple) {
        let (la, lb) = (rt.tuple_len(a), rt.tuple_len(b));
        return rt.tuple_concat(&[(a, 0, la), (b, 0, lb)], 1);
    }
    if op == BinOp::Mul {
        let (s, n) = if rt.is(a, t.tuple) { (a, b) } else { (b, a) };
        if rt.is(s, t.tuple) && is_int(n) {
            let len = rt.tuple_len(s);
            let count = ops::repeat_count(&Value::Int(value::to_int(n)), len as usize)?;
            return rt.tuple_concat(&[(s, 0, len)], count as u64);
        }
    }
    if let Some(r) = rt.number_op(&[a, b], |v| ops::binary(op, &v[0], &v[1])) {
        return r;
    }
    // `str % values` looks inside the values (their text): a deep conversion.
    let deep = op == BinOp::Mod && rt.is(a, t.str);
    rt.via_values(&[a, b], deep, false, |v| ops::binary(op, &v[0], &v[1]))
}

/// `a OP= b`: lists are extended (`+=`) or repeated (`*=`) in place, as in Python.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_inplace(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| {
        let bop = BINOPS[op as usize];
        if let Some(r) = rt.set_inplace(bop, a, b) {
            return r;
        }
        if rt.is(a, rt.types.list)
            && (bop == BinOp::Add
                || bop == BinOp::Mul
                    && (is_int(b)
                        || b == value::TRUE
                        || b == value::FALSE
                        || rt.is(b, rt.types.bigint)))
        {
            if bop == BinOp::Add {
                // A list or tuple's items appended in place.
                let ra = rt.root(a);
                if let Some(r) = rt.list_extend_from(a, b) {
                    r?;
                    return Ok(rt.get(ra));
                }
            }
            return rt.via_values(&[a, b], false, true, |v| {
                let Value::List(l) = &v[0] else {
                    unreachable!()
                };
                if bop == BinOp::Add {
                    let more = ops::iterate(&v[1])?;
                    l.items.lock().unwrap().extend(more);
                } else {
                    let items = l.snapshot();
                    let count = ops::repeat_count(&v[1], items.len())?;
                    *l.items.lock().unwrap() = ops::repeat_items(&items, count)?;
                }
                Ok(v[0].clone())
            });
        }
        if bop == BinOp::BitOr && rt.is(a, rt.types.dict) {
            // A dict's items or pairs set in place: `a` is neither converted nor rebuilt.
            let ra = rt.root(a);
            if let Some(r) = rt.dict_update_from(a, b) {
                r?;
                return Ok(rt.get(ra));
            }
            // Other iterables of pairs are read through: a deep conversion.
            return rt.via_values(&[a, b], true, true, |v| {
                let Value::Dict(d) = &v[0] else {
                    unreachable!()
                };
                stmjit_lang::builtins_seq::dict_update(d, &v[1])?;
                Ok(v[0].clone())
            });
        }
        if rt.info.special_methods && rt.is(a, rt.types.instance) {
            // `__iadd__` ..., else the binary methods (identity kept: shallow).
            return rt.via_values(&[a, b], false, false, |v| {
                stmjit_lang::special::inplace(bop, &v[0], &v[1])
                    .unwrap_or_else(|| ops::binary_inplace(bop, &v[0], &v[1]))
            });
        }
        binop(rt, bop, a, b).map_err(|e| match e {
            Unwind::Raise(kind, msg) => {
                let (kind, msg) = ops::inplace_error(bop, (kind, msg));
                Unwind::Raise(kind, msg)
            }
            aborted => aborted,
        })
    })
}

/// `OP a`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_unary(ctx: *mut Ctx, op: u64, a: Word) -> Word {
    with_rt(ctx, |rt| {
        let op = UNOPS[op as usize];
        if let Some(r) = rt.number_op(&[a], |v| ops::unary(op, &v[0])) {
            return r;
        }
        rt.via_values(&[a], false, false, |v| ops::unary(op, &v[0]))
    })
}

/// `a OP b` for a comparison operator; returns a bool word.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_compare(ctx: *mut Ctx, op: u64, a: Word, b: Word) -> Word {
    with_rt(ctx, |rt| {
        let op = CMPOPS[op as usize];
        let r = match op {
            CmpOp::Eq => rt.eq(a, b)?,
            CmpOp::Ne => rt.ne(a, b)?,
            CmpOp::In => rt.contains(b, a)?,
            CmpOp::NotIn => !rt.contains(b, a)?,
            CmpOp::Is | CmpOp::IsNot => {
                // Two range objects are two objects here (as `id` says), unlike the
                // interpreter's range values (LANGUAGE.md: unspecified).
                let same = a == b
                    || !rt.is(a, rt.types.range) && {
                        let mut m = Memo::peek();
                        identical(&rt.to_value(a, &mut m), &rt.to_value(b, &mut m))
                    };
                same == (op == CmpOp::Is)
            }
            _ => {
                let s = rt.types.str;
                if rt.is(a, s) && rt.is(b, s) {
                    let (x, y) = (rt.str_of(a), rt.str_of(b));
                    match op {
                        CmpOp::Lt => x < y,
                        CmpOp::Le => x <= y,
                        CmpOp::Gt => x > y,
                        _ => x >= y,
                    }
                } else {
                    rt.order(op, a, b)?
                }
            }
        };
        Ok(value::from_bool(r))
    })
}

/// Truthiness: 0 or 1 (never fails, never moves: for programs whose instances cannot have
/// `__bool__` or `__len__`, which would need [`stmjit_truthy_special`]).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_truthy(ctx: *mut Ctx, a: Word) -> u64 {
    // SAFETY: forwarded contract.
    let rt = unsafe { &*(*ctx).rt };
    rt.truthy(a) as u64
}

/// Truthiness: 0 or 1, or `ERR` when an instance's `__bool__`/`__len__` failed (they may
/// move objects or end the transaction, so JIT code spills its locals around the call; a
/// separate helper so that programs without those methods keep the cheaper call).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_truthy_special(ctx: *mut Ctx, a: Word) -> u64 {
    with_rt(ctx, |rt| Ok(rt.truth(a)? as Word))
}

/// `o[i]`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_getitem(ctx: *mut Ctx, o: Word, i: Word) -> Word {
    with_rt(ctx, |rt| rt.getitem(o, i))
}

/// `o[i] = v`; returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_setitem(ctx: *mut Ctx, o: Word, i: Word, v: Word) -> Word {
    with_rt(ctx, |rt| rt.setitem(o, i, v).map(|_| NONE))
}

/// `del o[i]`; returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_delitem(ctx: *mut Ctx, o: Word, i: Word) -> Word {
    with_rt(ctx, |rt| rt.delitem(o, i).map(|_| NONE))
}

fn bound(w: Word) -> Option<Word> {
    (w != UNBOUND).then_some(w)
}

/// `o[lo:hi]` (missing bounds are [`UNBOUND`]).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_getslice(ctx: *mut Ctx, o: Word, lo: Word, hi: Word) -> Word {
    with_rt(ctx, |rt| {
        // Lists and tuples with int (or missing) bounds: copied natively, Python's clamping.
        let int_or_none = |w: Word| w == UNBOUND || is_int(w);
        let is_tuple = rt.is(o, rt.types.tuple);
        if (is_tuple || rt.is(o, rt.types.list)) && int_or_none(lo) && int_or_none(hi) {
            let n = if is_tuple {
                rt.tuple_len(o)
            } else {
                rt.list_len(o)
            } as i64;
            let clamp = |w: Word, default: i64| {
                if w == UNBOUND {
                    return default;
                }
                let i = value::to_int(w);
                let i = if i < 0 { i + n } else { i };
                i.clamp(0, n)
            };
            let (a, b) = (clamp(lo, 0), clamp(hi, n));
            let b = b.max(a);
            if is_tuple {
                return rt.tuple_concat(&[(o, a as u64, b as u64)], 1);
            }
            return rt.list_concat(&[(o, a as u64, b as u64)], 1);
        }
        let args: Vec<Word> = [Some(o), bound(lo), bound(hi)]
            .into_iter()
            .flatten()
            .collect();
        let (has_lo, has_hi) = (lo != UNBOUND, hi != UNBOUND);
        rt.via_values(&args, false, false, |v| {
            let lo = has_lo.then(|| v[1].clone());
            let hi = has_hi.then(|| v[if has_lo { 2 } else { 1 }].clone());
            ops::get_slice(&v[0], &lo, &hi)
        })
    })
}

/// `o[lo:hi] = v` (`del o[lo:hi]` when `v` is [`UNBOUND`]); returns None.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_setslice(
    ctx: *mut Ctx,
    o: Word,
    lo: Word,
    hi: Word,
    v: Word,
) -> Word {
    with_rt(ctx, |rt| {
        let args: Vec<Word> = [Some(o), bound(lo), bound(hi), bound(v)]
            .into_iter()
            .flatten()
            .collect();
        let (has_lo, has_hi, has_v) = (lo != UNBOUND, hi != UNBOUND, v != UNBOUND);
        rt.via_values(&args, false, true, |a| {
            let mut k = 1;
            let mut next = |present: bool| {
                present.then(|| {
                    k += 1;
                    a[k - 1].clone()
                })
            };
            let lo = next(has_lo);
            let hi = next(has_hi);
            let v = next(has_v);
            ops::set_slice(&a[0], &lo, &hi, v.as_ref()).map(|_| Value::None)
        })
    })
}

/// `o.name` from an attribute site with a cache (filled for the site's fast path).
///
/// # Safety
/// As [`stmjit_binop`]; `cache` is the site's cache cell.
pub unsafe extern "C" fn stmjit_getattr_site(
    ctx: *mut Ctx,
    o: Word,
    name: u64,
    cache: *const SiteCache,
) -> Word {
    with_rt(ctx, |rt| {
        if !rt.is(o, rt.types.instance) {
            return rt.getattr(o, name as u32);
        }
        let (v, at) = rt.getattr_instance(o, name as u32)?;
        if let Some((id, slot)) = at {
            // SAFETY: JIT code passes the address of its site's live cache (never freed).
            unsafe { (*cache).insert(id, slot as u64) };
        }
        Ok(v)
    })
}

/// `o.name = v` from an attribute site with a cache; returns None.
///
/// # Safety
/// As [`stmjit_getattr_site`].
pub unsafe extern "C" fn stmjit_setattr_site(
    ctx: *mut Ctx,
    o: Word,
    name: u64,
    v: Word,
    cache: *const SiteCache,
) -> Word {
    with_rt(ctx, |rt| setattr_site(rt, o, name as u32, v, cache))
}

/// `o.name = v` where `v` may be `UNBOXED` (the float of the bits `f`, boxed here): the slow
/// path of a float tree's store to an attribute; returns None.
///
/// # Safety
/// As [`stmjit_getattr_site`].
pub unsafe extern "C" fn stmjit_setattr_site_raw(
    ctx: *mut Ctx,
    o: Word,
    name: u64,
    v: Word,
    f: u64,
    cache: *const SiteCache,
) -> Word {
    with_rt(ctx, |rt| {
        let (o, v) = if v == crate::abi::UNBOXED {
            let ro = rt.root(o);
            let b = rt.new_float(f64::from_bits(f))?;
            (rt.get(ro), b)
        } else {
            (o, v)
        };
        setattr_site(rt, o, name as u32, v, cache)
    })
}

/// `o.name = v`, then the site's cache filled.
fn setattr_site(rt: &mut Runtime, o: Word, name: u32, v: Word, cache: *const SiteCache) -> R<Word> {
    let ro = rt.root(o);
    rt.setattr(o, name, v)?;
    let o = rt.get(ro);
    fill_cache(rt, o, name, cache);
    Ok(NONE)
}

/// A list of the `n` words at `argv`.
///
/// # Safety
/// As [`stmjit_binop`]; `argv` points at `n` readable words.
pub unsafe extern "C" fn stmjit_new_list(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    let items = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
    with_rt(ctx, |rt| rt.new_list(&items))
}

/// A tuple of the `n` words at `argv`.
///
/// # Safety
/// As [`stmjit_new_list`].
pub unsafe extern "C" fn stmjit_new_tuple(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    let items = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
    with_rt(ctx, |rt| rt.new_tuple(&items))
}

/// `t1, ..., tn = v`: the items of `v` into the `n` words at `out`; NONE, or ERR (not
/// iterable, or not `n` items).
///
/// # Safety
/// As [`stmjit_binop`]; `out` points at `n` writable words (JIT frame slots).
pub unsafe extern "C" fn stmjit_unpack(ctx: *mut Ctx, v: Word, n: u64, out: *mut Word) -> Word {
    with_rt(ctx, |rt| {
        let seq = rt.unpack_seq(v, n)?;
        // No allocation from here on: `seq` stays where it is.
        for i in 0..n {
            // SAFETY: caller's contract (`n` writable words at `out`).
            unsafe { *out.add(i as usize) = rt.seq_get(seq, i) };
        }
        Ok(NONE)
    })
}

/// `t1, ..., *ts, ..., tn = v`, the starred target at index `star < n`: the words to store
/// into the `n` words at `out`, the starred target's a new list of the items between (the
/// interpreter's [`unpack_starred`](stmjit_lang::builtins_seq::unpack_starred), for its
/// errors and its way of iterating); NONE, or ERR.
///
/// # Safety
/// As [`stmjit_unpack`].
pub unsafe extern "C" fn stmjit_unpack_starred(
    ctx: *mut Ctx,
    v: Word,
    n: u64,
    star: u64,
    out: *mut Word,
) -> Word {
    with_rt(ctx, |rt| {
        let (before, after) = (star as usize, (n - 1 - star) as usize);
        let seq = rt.via_values(&[v], false, false, |a| {
            stmjit_lang::builtins_seq::unpack_starred(&a[0], before, after)
                .map(stmjit_lang::value::TupleObj::new_value)
        })?;
        // No allocation from here on: `seq` stays where it is.
        for i in 0..n {
            // SAFETY: caller's contract (`n` writable words at `out`).
            unsafe { *out.add(i as usize) = rt.seq_get(seq, i) };
        }
        Ok(NONE)
    })
}

/// A dict of the `n` key/value pairs at `argv` (key, value, key, value...).
///
/// # Safety
/// As [`stmjit_new_list`] with `2n` words.
pub unsafe extern "C" fn stmjit_new_dict(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    with_rt(ctx, |rt| {
        let d = rt.new_dict()?;
        let rd = rt.root(d);
        for i in 0..n as usize {
            // Read after every allocation: argv is JIT frame slots, which the GC updates.
            // SAFETY: caller's contract (2n readable words).
            let (k, v) = unsafe { (*argv.add(2 * i), *argv.add(2 * i + 1)) };
            rt.dict_set(rt.get(rd), k, v)?;
        }
        Ok(rt.get(rd))
    })
}

/// A new set of the `n` words at `argv` (a set display).
///
/// # Safety
/// As [`stmjit_binop`]; `argv` points at `n` readable words (JIT frame slots).
pub unsafe extern "C" fn stmjit_new_set(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    let items = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
    with_rt(ctx, |rt| {
        let held = rt.hold_all(&items)?;
        rt.set_of(&held)
    })
}

/// The iterator of a `for` loop over `v`.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_iter(ctx: *mut Ctx, v: Word) -> Word {
    with_rt(ctx, |rt| rt.iter(v))
}

/// The next item of an iterator, or [`UNBOUND`] at its end.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_iter_next(ctx: *mut Ctx, it: Word, i: u64) -> Word {
    with_rt(ctx, |rt| rt.iter_next(it, i))
}

/// [`stmjit_iter_next`] in programs naming `__next__`: an instance's iterator runs its
/// `__next__` (which may move objects).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_iter_next_special(ctx: *mut Ctx, it: Word, i: u64) -> Word {
    with_rt(ctx, |rt| rt.iter_next_special(it, i))
}

/// `print(argv[0..n])`.
///
/// # Safety
/// As [`stmjit_new_list`].
pub unsafe extern "C" fn stmjit_print(ctx: *mut Ctx, argv: *const Word, n: u64) -> Word {
    with_rt(ctx, |rt| {
        let mut line = String::new();
        for i in 0..n as usize {
            if i > 0 {
                line.push(' ');
            }
            // Read at each step: argv is JIT frame slots, which the GC updates when a
            // `__str__` runs and moves objects.
            // SAFETY: caller's contract (n readable words).
            let w = unsafe { *argv.add(i) };
            line.push_str(&rt.to_str(w)?);
        }
        line.push('\n');
        rt.write_out(&line);
        Ok(NONE)
    })
}

/// Raises the NameError of an undefined global or builtin name (`name` = name id).
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_name_error(ctx: *mut Ctx, name: u64) -> Word {
    with_rt(ctx, |rt| {
        Err(exc(
            ErrorKind::NameError,
            format!("name '{}' is not defined", rt.info.names.text(name as u32)),
        ))
    })
}

/// Raises the UnboundLocalError (a NameError) of a local read before assignment.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_unbound_local(ctx: *mut Ctx, name: u64) -> Word {
    with_rt(ctx, |rt| {
        Err(exc(
            ErrorKind::UnboundLocalError,
            format!(
                "cannot access local variable '{}' where it is not associated with a value",
                rt.info.names.text(name as u32)
            ),
        ))
    })
}

/// Raises the RecursionError of a call nested too deeply.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_recursion_error(ctx: *mut Ctx) -> Word {
    with_rt(ctx, |_| {
        Err(exc(
            ErrorKind::RecursionError,
            "maximum recursion depth exceeded",
        ))
    })
}

/// Reports the abort of a runtime call made inline by JIT code (a barrier slow path or the
/// allocation slow path returned "aborted"): JIT code then unwinds to the restart point.
///
/// # Safety
/// As [`stmjit_binop`].
pub unsafe extern "C" fn stmjit_aborted(ctx: *mut Ctx) -> Word {
    with_rt(ctx, |_| Err(Unwind::Aborted))
}
