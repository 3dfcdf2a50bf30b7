//! Calls by value (functions, bound methods, classes, builtins), method calls, class
//! creation, and the dispatch of the concurrency builtins.
//!
//! `spawn`, `join` and `TransactionQueue.run` are in `threads.rs`, `serve`, `shutdown` and
//! `server_port` in `serve.rs`; a `Lock` needs no state:
//! `with lock:` is one transaction (an atomic block), as LANGUAGE.md specifies.

use super::abi::{CLASS_SITE_SHIFT, CLASS_SITE_SLOTS};
use super::callkw::{call_bound, call_value_kw};
use super::helpers::with_rt;
use super::site_cache::SiteCache;
use super::{exc, methods, rt_of, ClassInfo, Ctx, Runtime, ERR, R, UNBOUND};
use crate::objects::*;
use std::mem::offset_of;
use stmjit_lang::ast::Builtin;
use stmjit_lang::builtins_core::{self, arity_message, BuiltinEnv};
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::value::{self, Word, NONE};

/// Calls function object `fobj` (of program function `fid`) with positional arguments
/// `args`: straight into its code when its parameters are plain (arity checked here), else
/// through [`call_bound`] (defaults, keyword-only parameters, `*args`, `**kwargs`).
pub(crate) fn call_function(ctx: *mut Ctx, fobj: Word, fid: usize, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    let f = &rt.info.program.functions[fid];
    if !f.is_plain() {
        return call_bound(ctx, fobj, fid, args, &[]);
    }
    if args.len() != f.arity {
        let msg = arity_message(f, args.len());
        return rt.raise(ErrorKind::TypeError, msg);
    }
    let (entry, code) = match entry_of(rt, fid, f.entry_words()) {
        Ok(e) => e,
        Err(e) => return rt.unwind(e),
    };
    if rt.tick().is_err() {
        return ERR;
    }
    let base = rt.seg_base;
    // SAFETY: the entry is a finalized trampoline taking (segment base, ctx, argv, code)
    // that calls `code` (function fid's, which takes `arity` words) with the words at argv;
    // base is the running segment's base (its %gs base).
    crate::txn::from_rust(ctx, || unsafe { entry(base, ctx, args.as_ptr(), code) })
}

/// The array entry for a function of `words` words and the code of function `fid`,
/// compiling either if it is not yet (a failed compilation raises its [`CompileError`]).
///
/// [`CompileError`]: crate::CompileError
pub(crate) fn entry_of(rt: &mut Runtime, fid: usize, words: usize) -> R<(crate::ArrayEntry, u64)> {
    count_inevitable_compile(rt, fid);
    let code = rt.info.code_of(fid)?;
    let entry = rt.info.array_entry(words)?;
    Ok((entry, code))
}

/// The code address of program function `fid`, compiled now (JIT code calls this at a
/// call of a function whose code address is still 0: its first).
///
/// # Safety
/// `ctx` must be the live context of the calling thread.
pub unsafe extern "C" fn stmjit_compile(ctx: *mut Ctx, fid: u64) -> Word {
    let rt = rt_of(ctx);
    let fid = fid as usize;
    // SAFETY: caller's contract.
    let in_atomic = unsafe { (*ctx).atomic_depth } > 0;
    if !in_atomic && rt.info.code.compiled_code(fid).is_none() && rt.th().is_inevitable() {
        // Compiling reads no transactional state, but while this transaction is inevitable
        // no other segment may commit a write or become inevitable: a compilation inside it
        // held them for its whole length (nbody 200000 on 2 threads: the continuation of
        // `advance`'s return boundary compiled `energy`, and the other thread waited up to
        // 0.8 s). JIT code may end a transaction at a call outside atomic blocks: commit,
        // compile outside any transaction, and go on as after a return boundary.
        if rt.commit().is_err() {
            return ERR;
        }
        let code = rt.info.code_of(fid);
        rt.begin_without_restart_point(ctx);
        return match code {
            Ok(c) => c,
            Err(e) => rt.raise(e.kind, e.message),
        };
    }
    with_rt(ctx, |rt| {
        count_inevitable_compile(rt, fid);
        Ok(rt.info.code_of(fid)?)
    })
}

/// Counts a compilation about to run inside an inevitable transaction
/// ([`crate::CompileStats::inevitable`]): `--stats-json` shows whether any is left.
fn count_inevitable_compile(rt: &mut Runtime, fid: usize) {
    if rt.info.code.compiled_code(fid).is_none() && rt.th().is_inevitable() {
        rt.info
            .code
            .compiled
            .inevitable
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// The code address of part `k` of a huge module body, compiled now, the code of the part
/// before it freed (`<module>` calls this after the boundary before part `k`).
///
/// # Safety
/// `ctx` must be the live context of the calling thread; no code of the parts before `k`
/// runs again (the running transaction's restart point is after them).
pub unsafe extern "C" fn stmjit_module_part(ctx: *mut Ctx, k: u64) -> Word {
    with_rt(ctx, |rt| Ok(rt.info.module_part(k as usize)?))
}

/// `f(args)` for any callable value.
pub(crate) fn call_value(ctx: *mut Ctx, f: Word, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    let t = rt.types;
    match rt.type_of(f) {
        Some(x) if x == t.function.0 => {
            let fid = rt.ld(f, offset_of!(FunctionObj, func_id) as u64) as usize;
            call_function(ctx, f, fid, args)
        }
        Some(x) if x == t.bound_method.0 => {
            let fid = rt.ld(f, offset_of!(BoundMethodObj, func_id) as u64) as usize;
            let fobj = rt.ld(f, offset_of!(BoundMethodObj, func) as u64);
            let mut all = vec![rt.ld(f, offset_of!(BoundMethodObj, receiver) as u64)];
            all.extend_from_slice(args);
            call_function(ctx, fobj, fid, &all)
        }
        Some(x) if x == t.class.0 => instantiate(ctx, f, args, &[], None),
        Some(x) if x == t.builtin.0 => {
            let which = rt.ld(f, offset_of!(BuiltinObj, which) as u64);
            if rt.ld(f, offset_of!(BuiltinObj, is_method) as u64) == 0 {
                call_builtin(ctx, which, args)
            } else {
                let recv = rt.ld(f, offset_of!(BuiltinObj, receiver) as u64);
                builtin_method(ctx, recv, which as u32, args)
            }
        }
        _ => {
            let msg = format!("'{}' object is not callable", rt.type_name(f));
            rt.raise(ErrorKind::TypeError, msg)
        }
    }
}

/// `cls(args, **kw)`. With the cache of the calling site (`site`), fills it with the
/// class's `__init__` when that is a plain function of the site's arity (see
/// [`stmjit_call_site`]).
pub(crate) fn instantiate(
    ctx: *mut Ctx,
    cls: Word,
    args: &[Word],
    kw: &[(String, Word)],
    site: Option<&SiteCache>,
) -> Word {
    let rt = rt_of(ctx);
    // The class and the arguments are rooted across the allocation, the instance across
    // the call of `__init__`.
    // Layout in the shadow stack: class, instance, arguments: `[instance, args...]` is
    // then the argument array of `__init__` (contiguous, and updated by the GC).
    let mark = rt.mark();
    let rc = rt.root(cls);
    let ri = rt.root(NONE);
    for &a in args {
        rt.root(a);
    }
    let kw_roots: Vec<(String, super::Root)> =
        kw.iter().map(|(k, w)| (k.clone(), rt.root(*w))).collect();
    // Inline slots for every attribute the class's instances have had so far, so that
    // `__init__`'s assignments take the inline path.
    let id = rt.ld(rt.get(rc), offset_of!(ClassObj, class_id) as u64) as usize;
    let n = rt
        .class_copy
        .with(&rt.info.classes, |c| c[id].shape.len() as u64);
    let inst = match rt.new_instance_obj(rt.get(rc), inline_slots(n)) {
        Ok(r) => r,
        Err(e) => return rt.unwind(e),
    };
    rt.set(ri, inst);
    // An exception's arguments are its `args`, whatever `__init__` does (CPython's
    // `BaseException.__new__`); its class call site is not cached (a hit would skip this).
    let exc = rt.is_exc_class(rt.get(rc));
    if exc {
        // SAFETY: the args.len() slots after `ri` were pushed just above, contiguously.
        let now = unsafe { std::slice::from_raw_parts(ri.ptr().add(1), args.len()) }.to_vec();
        if let Err(e) = rt.init_exc_args(rt.get(ri), &now) {
            return rt.unwind(e);
        }
    }
    let site = if exc { None } else { site };
    let inst = rt.get(ri);
    let cls = rt.get(rc);
    // SAFETY: the 1 + args.len() slots from `ri` were pushed just above, contiguously.
    let all = unsafe { std::slice::from_raw_parts(ri.ptr(), 1 + args.len()) };
    let kw: Vec<(String, Word)> = kw_roots.into_iter().map(|(k, r)| (k, rt.get(r))).collect();
    let result = instantiate_init(
        ctx,
        cls,
        inst,
        ri,
        all,
        &kw,
        site.map(|s| (s, inline_slots(n))),
    );
    rt_of(ctx).release(mark);
    result
}

/// `all` = `[instance, args...]` (rooted), `kw` the keyword arguments; `site`: the calling
/// site's cache and the inline slot count its hits are to allocate.
fn instantiate_init(
    ctx: *mut Ctx,
    cls: Word,
    inst: Word,
    ri: super::Root,
    all: &[Word],
    kw: &[(String, Word)],
    site: Option<(&SiteCache, u64)>,
) -> Word {
    let args = &all[1..];
    let rt = rt_of(ctx);
    let _ = inst;
    let init = super::INIT_NAME;
    rt.rb(cls);
    let id = rt.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
    // Before the class dicts are read (see `ClassTable::fill_method_site`).
    let epoch = rt.info.classes.epoch();
    if let Err(e) = rt.refresh() {
        return rt.unwind(e);
    }
    let (_, cached) = rt.class_view(id, init);
    let found = match rt.class_lookup_from(cls, id, init, cached) {
        Ok(f) => f,
        Err(e) => return rt.unwind(e),
    };
    match found {
        Some(f) if rt.is(f, rt.types.function) => {
            let fid = rt.ld(f, offset_of!(FunctionObj, func_id) as u64) as usize;
            if let Some((site, n)) = site {
                // The instance's own attributes do not matter (`__init__` is looked up in
                // the class): unlike a method site, no shape condition.
                let cacheable = !rt.tx.class_changed
                    && rt.info.program.functions[fid].is_plain()
                    && rt.info.program.functions[fid].arity == all.len()
                    && fid < 1 << (32 - CLASS_SITE_SHIFT);
                if cacheable {
                    let payload = (fid as u64) << CLASS_SITE_SHIFT | n.min(CLASS_SITE_SLOTS);
                    rt.info
                        .classes
                        .fill_method_site(site, id, payload as usize, epoch);
                }
            }
            let r = if kw.is_empty() {
                call_function(ctx, f, fid, all)
            } else {
                call_bound(ctx, f, fid, all, kw)
            };
            if r == ERR {
                return ERR;
            }
            if r != NONE {
                return init_result_error(ctx, r);
            }
            rt_of(ctx).get(ri)
        }
        Some(other) => {
            let r = call_value_kw(ctx, other, args, kw);
            if r == ERR {
                return ERR;
            }
            rt_of(ctx).get(ri)
        }
        None if !kw.is_empty() && rt.is_exc_class(cls) => {
            let msg = format!("{}() takes no keyword arguments", rt.class_name(cls));
            rt.raise(ErrorKind::TypeError, msg)
        }
        None if (!args.is_empty() && !rt.is_exc_class(cls)) || !kw.is_empty() => {
            let msg = format!("{}() takes no arguments", rt.class_name(cls));
            rt.raise(ErrorKind::TypeError, msg)
        }
        None => inst,
    }
}

/// Raises the TypeError of an `__init__` that returned `r`, not None.
fn init_result_error(ctx: *mut Ctx, r: Word) -> Word {
    let rt = rt_of(ctx);
    let msg = format!("__init__() should return None, not '{}'", rt.type_name(r));
    rt.raise(ErrorKind::TypeError, msg)
}

/// A new instance of class `cls` with `nslots` inline slots: the allocation of a class
/// call site's cache hit where the JIT code's inline bump found the nursery full (the
/// heap limit is tested here), whose JIT code then calls the cached `__init__` itself.
/// Why a helper of its own: the generic call path looks the class's shape and `__init__`
/// up again at every call.
///
/// # Safety
/// `ctx` must be the live context; `cls` a class.
pub unsafe extern "C" fn stmjit_new_instance(ctx: *mut Ctx, cls: Word, nslots: u64) -> Word {
    with_rt(ctx, |rt| rt.new_instance_obj_tested(cls, nslots))
}

/// Raises the TypeError of an `__init__` called by a class call site's cache hit that
/// returned `r`, not None.
///
/// # Safety
/// `ctx` must be the live context.
pub unsafe extern "C" fn stmjit_init_result(ctx: *mut Ctx, r: Word) -> Word {
    init_result_error(ctx, r)
}

/// `q.run()` inside a transaction that cannot end: the queued calls run in order, in it.
fn run_queue_inline(ctx: *mut Ctx, recv: Word) -> Word {
    let rt = rt_of(ctx);
    let mark = rt.mark();
    let rr = rt.root(recv);
    let r = loop {
        let rt = rt_of(ctx);
        let calls = rt.ld(rt.get(rr), offset_of!(OpaqueObj, a) as u64);
        if rt.list_len(calls) == 0 {
            break NONE;
        }
        // The first call (see `threads::queue_add`): its words, then the rest of the list.
        let mut items = rt.list_items(calls);
        let end = super::threads::call_starts(&items)[1];
        let rest = items.split_off(end);
        let inner = rt.mark();
        let held = match rt.hold_all(&items) {
            Ok(h) => h,
            Err(e) => break rt.unwind(e),
        };
        if let Err(e) = rt.list_replace(calls, &rest) {
            break rt.unwind(e);
        }
        let call: Vec<Word> = held[1..].iter().map(|&h| rt.held(h)).collect();
        rt.release(inner);
        if call_value(ctx, call[0], &call[1..]) == ERR {
            break ERR;
        }
    };
    rt_of(ctx).release(mark);
    r
}

/// Calls builtin number `which` (index in `Builtin::ALL`).
pub(crate) fn call_builtin(ctx: *mut Ctx, which: u64, args: &[Word]) -> Word {
    let b = Builtin::ALL[which as usize];
    match b {
        // Through the values, whose conversion roots what a `__str__` may move (`args` is a
        // copy of the caller's slots, which the GC does not update).
        Builtin::Print | Builtin::PrintKw => with_rt(ctx, |rt| {
            let mut all = args.to_vec();
            if b == Builtin::Print {
                all.push(value::from_int(0).expect("small"));
            }
            let line = generic_builtin(rt, Builtin::PrintKw, &all)?;
            let text = rt.str_of(line).to_string();
            rt.write_out(&text);
            Ok(NONE)
        }),
        Builtin::Spawn => {
            if args.is_empty() {
                return rt_of(ctx).raise(
                    ErrorKind::TypeError,
                    "spawn() takes at least 1 argument (0 given)",
                );
            }
            with_rt(ctx, |rt| super::threads::spawn(rt, args[0], &args[1..]))
        }
        Builtin::Lock | Builtin::TransactionQueue if !args.is_empty() => with_rt(ctx, |_| {
            Err(exc(
                ErrorKind::TypeError,
                format!(
                    "{}() takes exactly 0 arguments ({} given)",
                    b.name(),
                    args.len()
                ),
            ))
        }),
        Builtin::Lock => with_rt(ctx, |rt| new_opaque(rt, OPAQUE_LOCK, NONE)),
        Builtin::TransactionQueue => with_rt(ctx, |rt| {
            let calls = rt.new_list(&[])?;
            new_opaque(rt, OPAQUE_QUEUE, calls)
        }),
        Builtin::Len if args.len() == 1 => with_rt(ctx, |rt| {
            let t = rt.types;
            let o = args[0];
            if rt.is(o, t.list) {
                Ok(value::from_int(rt.list_len(o) as i64).unwrap())
            } else if rt.is(o, t.str) {
                Ok(value::from_int(rt.str_nchars(o) as i64).unwrap())
            } else if rt.is(o, t.dict) || rt.is_set(o) {
                Ok(value::from_int(rt.dict_len(o) as i64).unwrap())
            } else if rt.is(o, t.tuple) {
                Ok(value::from_int(rt.tuple_len(o) as i64).unwrap())
            } else {
                generic_builtin(rt, b, args)
            }
        }),
        // Built natively from a list or tuple: no conversion, no limit on roots.
        Builtin::Tuple if args.len() == 1 => with_rt(ctx, |rt| {
            let (t, o) = (rt.types, args[0]);
            if rt.is(o, t.tuple) {
                Ok(o)
            } else if rt.is(o, t.list) {
                let n = rt.list_len(o);
                rt.tuple_concat(&[(o, 0, n)], 1)
            } else {
                generic_builtin(rt, b, args)
            }
        }),
        Builtin::Map | Builtin::Filter => map_filter(ctx, b, args),
        Builtin::Serve => super::serve::serve(ctx, args),
        Builtin::Shutdown => super::serve::shutdown(ctx, args),
        Builtin::Input => super::input::input(ctx, args),
        Builtin::ServerPort => super::serve::server_port(ctx, args),
        // `str(x)` only reads its argument: no identity-keeping conversion.
        Builtin::Str if args.len() == 1 => with_rt(ctx, |rt| {
            let s = rt.to_str(args[0])?;
            rt.new_str(&s)
        }),
        Builtin::Type if args.len() == 1 => {
            with_rt(ctx, |rt| super::exceptions::type_of(rt, args[0]))
        }
        Builtin::IsInstance if args.len() == 2 => with_rt(ctx, |rt| {
            super::exceptions::is_instance(rt, args[0], args[1])
        }),
        Builtin::IsSubclass if args.len() == 2 => with_rt(ctx, |rt| {
            super::exceptions::is_subclass(rt, args[0], args[1])
        }),
        // `super()` where CPython has no class or no first argument (the parser wrote the
        // end of its message).
        Builtin::SuperAttr if args.len() == 2 => with_rt(ctx, |rt| {
            let msg = format!("super(): {}", rt.str_of(args[0]));
            Err(exc(ErrorKind::RuntimeError, msg))
        }),
        Builtin::SuperAttr => with_rt(ctx, |rt| {
            super_lookup(rt, args)?.ok_or_else(|| no_super_attr(rt, args[2]))
        }),
        Builtin::SuperCall => super_call(ctx, args),
        Builtin::GetAttr | Builtin::SetAttr | Builtin::HasAttr => {
            with_rt(ctx, |rt| attr_builtin(rt, b, args))
        }
        // `x[a:b:c]` makes one each time: no conversion.
        Builtin::Slice if (1..=3).contains(&args.len()) => with_rt(ctx, |rt| {
            rt.new_slice(match *args {
                [stop] => [NONE, stop, NONE],
                [a, b] => [a, b, NONE],
                [a, b, c] => [a, b, c],
                _ => unreachable!("1 to 3 arguments"),
            })
        }),
        Builtin::Id if args.len() == 1 => with_rt(ctx, |rt| rt.object_id(args[0])),
        Builtin::Repr if args.len() == 1 => with_rt(ctx, |rt| {
            let s = rt.repr(args[0])?;
            rt.new_str(&s)
        }),
        Builtin::Ascii if args.len() == 1 => with_rt(ctx, |rt| {
            let s = stmjit_lang::builtins_core::ascii_escaped(&rt.repr(args[0])?);
            rt.new_str(&s)
        }),
        Builtin::Abs | Builtin::Int | Builtin::Min | Builtin::Max | Builtin::Float
            if args.iter().all(|&w| value::is_int(w)) =>
        {
            with_rt(ctx, |rt| match small_int_builtin(b, args) {
                Some(IntResult::Int(w)) => Ok(w),
                Some(IntResult::Float(f)) => rt.new_float(f),
                None => generic_builtin(rt, b, args),
            })
        }
        _ => with_rt(ctx, |rt| generic_builtin(rt, b, args)),
    }
}

/// What [`small_int_builtin`] computed.
enum IntResult {
    Int(Word),
    Float(f64),
}

/// `abs`, `int`, `min`, `max` and `float` of small ints, computed on the words: these are
/// common in inner loops, and the generic path converts every argument to an interpreter
/// value and back (about 1 200 instructions a call). `None`: the generic path decides (a
/// result out of the word's range, a wrong argument count and its error).
fn small_int_builtin(b: Builtin, args: &[Word]) -> Option<IntResult> {
    match (b, args) {
        (Builtin::Abs, &[w]) => value::from_int(value::to_int(w).abs()).map(IntResult::Int),
        (Builtin::Int, &[w]) => Some(IntResult::Int(w)),
        (Builtin::Float, &[w]) => Some(IntResult::Float(value::to_int(w) as f64)),
        // The first of equal values, as Python's `min`/`max` (equal small ints are one word).
        (Builtin::Min, [first, rest @ ..]) if !rest.is_empty() => {
            Some(IntResult::Int(rest.iter().fold(*first, |m, &w| {
                if value::to_int(w) < value::to_int(m) {
                    w
                } else {
                    m
                }
            })))
        }
        (Builtin::Max, [first, rest @ ..]) if !rest.is_empty() => {
            Some(IntResult::Int(rest.iter().fold(*first, |m, &w| {
                if value::to_int(w) > value::to_int(m) {
                    w
                } else {
                    m
                }
            })))
        }
        _ => None,
    }
}

/// `getattr(o, name[, default])`, `setattr(o, name, v)`, `hasattr(o, name)`: the attribute
/// operations of `o.name` with a name computed at run time (interned if new).
fn attr_builtin(rt: &mut Runtime, b: Builtin, args: &[Word]) -> R<Word> {
    let (min, max) = match b {
        Builtin::GetAttr => (2, 3),
        Builtin::SetAttr => (3, 3),
        _ => (2, 2),
    };
    let vals: Vec<stmjit_lang::value::Value> = args
        .iter()
        .map(|&w| rt.to_value(w, &mut crate::convert::Memo::peek()))
        .collect();
    let name = stmjit_lang::builtins_core::attr_name(b.name(), &vals, min, max)?;
    let id = rt.info.names.intern(&name);
    match b {
        Builtin::SetAttr => rt.setattr(args[0], id, args[2]).map(|_| NONE),
        Builtin::GetAttr => match rt.getattr(args[0], id) {
            Err(crate::Unwind::Raise(ErrorKind::AttributeError, _)) if args.len() == 3 => {
                Ok(args[2])
            }
            r => r,
        },
        _ => match rt.getattr(args[0], id) {
            Ok(_) => Ok(value::TRUE),
            Err(crate::Unwind::Raise(ErrorKind::AttributeError, _)) => Ok(value::FALSE),
            Err(e) => Err(e),
        },
    }
}

/// `super().name` as the parser writes it (`Builtin::SuperAttr`, `Builtin::SuperCall`):
/// `args` are the method's class, its first parameter and the name; the attribute of the
/// class's base (a function bound to the parameter), `None` when no base has it.
fn super_lookup(rt: &mut Runtime, args: &[Word]) -> R<Option<Word>> {
    let (c, o, n) = (args[0], args[1], args[2]);
    if !rt.is(c, rt.types.class) {
        return Err(exc(
            ErrorKind::TypeError,
            format!("super() argument 1 must be a type, not {}", rt.type_name(c)),
        ));
    }
    if !rt.is(o, rt.types.instance) || !rt.is_subclass(rt.class_of(o), c) {
        return Err(exc(
            ErrorKind::TypeError,
            "super(type, obj): obj must be an instance or subtype of type",
        ));
    }
    let id = rt.info.names.intern(rt.str_of(n));
    rt.rb(c);
    let base = rt.ld(c, offset_of!(ClassObj, base) as u64);
    if base == NONE {
        return Ok(None);
    }
    match rt.class_lookup(base, id)? {
        Some(f) if rt.is(f, rt.types.function) => rt.new_bound_method(f, o).map(Some),
        found => Ok(found),
    }
}

/// The AttributeError of `super().name` when no base has `name` (a str word).
fn no_super_attr(rt: &Runtime, n: Word) -> crate::Unwind {
    exc(
        ErrorKind::AttributeError,
        format!("'super' object has no attribute '{}'", rt.str_of(n)),
    )
}

/// `super().name(args...)` (`Builtin::SuperCall`, `args` = class, first parameter, name,
/// arguments): the call of what [`super_lookup`] finds; without one, `__init__` of a
/// built-in exception class (sets `args`) or of `object` (no arguments).
fn super_call(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    let mark = rt.mark();
    // The words are a copy the GC does not update: rooted across the lookup's allocation.
    let held: Vec<crate::Root> = args.iter().map(|&w| rt.root(w)).collect();
    let f = with_rt(ctx, |rt| Ok(super_lookup(rt, args)?.unwrap_or(UNBOUND)));
    let rt = rt_of(ctx);
    let now: Vec<Word> = held.iter().map(|&r| rt.get(r)).collect();
    let r = if f == ERR {
        ERR
    } else if f != UNBOUND {
        call_value(ctx, f, &now[3..])
    } else if rt.str_of(now[2]) != "__init__" {
        with_rt(ctx, |rt| Err(no_super_attr(rt, now[2])))
    } else if rt.is_exc_instance(now[1]) {
        with_rt(ctx, |rt| rt.init_exc_args(now[1], &now[3..]).map(|_| NONE))
    } else if now.len() > 3 {
        rt.raise(
            ErrorKind::TypeError,
            "object.__init__() takes exactly one argument (the instance to initialize)",
        )
    } else {
        NONE
    };
    rt_of(ctx).release(mark);
    r
}

/// `map(f, xs, ...)` and `filter(f, xs)`: the argument tuples of the calls are made first
/// (shared with the interpreter: `builtins_seq::map_filter_items`), then `f` runs on each,
/// as a JIT call; a list of the results (of the items kept).
fn map_filter(ctx: *mut Ctx, b: Builtin, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    let mark = rt.mark();
    let calls = with_rt(ctx, |rt| {
        let name = b.name();
        rt.via_values(args, false, false, |v| {
            let calls = stmjit_lang::builtins_seq::map_filter_items(name, v)?;
            Ok(stmjit_lang::value::ListObj::new_value(
                calls
                    .into_iter()
                    .map(stmjit_lang::value::TupleObj::new_value)
                    .collect(),
            ))
        })
    });
    if calls == ERR {
        rt_of(ctx).release(mark);
        return ERR;
    }
    let rt = rt_of(ctx);
    let (rc, rf) = (rt.root(calls), rt.root(args[0]));
    let out = with_rt(ctx, |rt| rt.new_list(&[]));
    if out == ERR {
        rt_of(ctx).release(mark);
        return ERR;
    }
    let ro = rt_of(ctx).root(out);
    let mut i = 0;
    let r = loop {
        let rt = rt_of(ctx);
        let calls = rt.get(rc);
        if i >= rt.list_len(calls) {
            break rt.get(ro);
        }
        let call = rt.list_get(calls, i);
        i += 1;
        let cargs = rt.tuple_items(call);
        let f = rt.get(rf);
        let (r, keep) = if b == Builtin::Filter && f == NONE {
            match with_rt(ctx, |rt| Ok(rt.truth(cargs[0])? as Word)) {
                ERR => break ERR,
                t => (NONE, t == 1),
            }
        } else {
            let r = call_value(ctx, f, &cargs);
            if r == ERR {
                break ERR;
            }
            if b == Builtin::Map {
                (r, true)
            } else {
                // `r` is only a truth here: its object may move while `__bool__` runs.
                match with_rt(ctx, |rt| Ok(rt.truth(r)? as Word)) {
                    ERR => break ERR,
                    t => (r, t == 1),
                }
            }
        };
        if keep {
            let rt = rt_of(ctx);
            let item = if b == Builtin::Map {
                r
            } else {
                rt.tuple_get(rt.list_get(rt.get(rc), i - 1), 0)
            };
            if with_rt(ctx, |rt| rt.list_push(rt.get(ro), item).map(|_| NONE)) == ERR {
                break ERR;
            }
        }
    };
    rt_of(ctx).release(mark);
    r
}

pub(crate) fn generic_builtin(rt: &mut Runtime, b: Builtin, args: &[Word]) -> R<Word> {
    if b == Builtin::Hash
        && args.len() == 1
        && (rt.needs_prepare(args[0]) || rt.identity_hash(args[0]).is_some())
    {
        // Instances, functions, classes and builtins hash by what they hold (`hashing.rs`),
        // not by their converted copies' addresses.
        let h = rt.hash_of(args[0])?;
        // A tuple's hash takes all 64 bits.
        return match value::from_int(h) {
            Some(w) => Ok(w),
            None => rt.new_bigint(&h.into()),
        };
    }
    let deep = matches!(
        b,
        Builtin::Str
            | Builtin::Min
            | Builtin::Max
            | Builtin::Hash
            | Builtin::Repr
            | Builtin::Sum
            | Builtin::Any
            | Builtin::All
            | Builtin::Sorted
            | Builtin::Dict
            | Builtin::Format
            | Builtin::PrintKw
            | Builtin::JsonEncode
    );
    // One reference count for the program's information, not a copy of its arguments (a
    // vector of strings, allocated at each call) and a second count.
    let info = rt.info.clone();
    rt.via_values(args, deep, false, |v| {
        let names = |id: usize| info.program.functions[id].qualname.clone();
        let env = BuiltinEnv {
            names: &names,
            start: info.start,
            args: &info.args,
        };
        builtins_core::call_builtin(b, v.to_vec(), &env)
    })
}

/// The text of interned name `id`, not borrowing the runtime. Valid until the next name is
/// interned ([`Runtime::name_id`], which only converting a value back to a word does once
/// the program runs): not to be held across such a conversion.
pub(crate) fn name_of<'a>(ctx: *mut Ctx, id: u32) -> &'a str {
    let rt: &'a Runtime = rt_of(ctx);
    rt.info.names.text(id)
}

/// A list method on list `l` run in place ([`Runtime::list_method`]), or None for the
/// generic path.
fn list_method(ctx: *mut Ctx, l: Word, name: &str, args: &[Word]) -> Option<Word> {
    let r = rt_of(ctx).list_method(l, name, args)?;
    Some(with_rt(ctx, |_| r))
}

/// `recv.name(args)` for builtin types (lists, dicts, strs, threads, queues).
pub(crate) fn builtin_method(ctx: *mut Ctx, recv: Word, name: u32, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    let t = rt.types;
    let mname = name_of(ctx, name);
    if rt.is(recv, t.list) {
        if let Some(r) = list_method(ctx, recv, mname, args) {
            return r;
        }
    } else if rt.is(recv, t.dict) {
        if let Some(r) = rt.dict_method(recv, mname, args) {
            return with_rt(ctx, |_| r);
        }
    } else if rt.is(recv, t.set) {
        if let Some(r) = rt.set_method(recv, mname, args) {
            return with_rt(ctx, |_| r);
        }
    } else if rt.is(recv, t.opaque) {
        let kind = rt.ld(recv, offset_of!(OpaqueObj, kind) as u64);
        match (kind, mname) {
            (OPAQUE_THREAD, "join") if args.is_empty() => return super::threads::join(ctx, recv),
            (OPAQUE_QUEUE, "add") => {
                if args.is_empty() {
                    return rt.raise(
                        ErrorKind::TypeError,
                        "TransactionQueue.add() takes at least 1 argument (0 given)",
                    );
                }
                return queue_add_call(ctx, recv, args);
            }
            (OPAQUE_QUEUE, "run") if args.is_empty() => {
                // SAFETY: ctx is the live context.
                if unsafe { (*ctx).atomic_depth } > 0 {
                    // Inside an atomic block (or a queued call) the calls cannot be separate
                    // transactions: they run here, one after the other, as part of this one.
                    return run_queue_inline(ctx, recv);
                }
                return super::threads::run_queue(ctx, recv);
            }
            _ => {}
        }
        let msg = format!(
            "{}.{}() takes exactly 0 arguments ({} given)",
            rt.type_name(recv),
            mname,
            args.len()
        );
        return rt.raise(ErrorKind::TypeError, msg);
    }
    // An owned name: converting the result back may intern a name (`Runtime::name_id`).
    let mname = mname.to_string();
    with_rt(ctx, |rt| {
        // Only mutating methods write the converted receiver back (a write to every item).
        let mutates = rt.is(recv, t.list)
            && matches!(
                mname.as_str(),
                "sort" | "reverse" | "insert" | "pop" | "append" | "extend" | "remove" | "clear"
            )
            || rt.is(recv, t.dict)
                && matches!(
                    mname.as_str(),
                    "pop" | "popitem" | "update" | "setdefault" | "clear"
                );
        // `d.update(pairs)` reads the items of the pairs, lists too.
        let pairs = rt.is(recv, t.dict)
            && mname == "update"
            && args.first().is_some_and(|&a| !rt.is(a, t.dict));
        let deep = pairs
            || matches!(
                mname.as_str(),
                "sort" | "index" | "join" | "format" | "remove" | "count"
            );
        let mut all = vec![recv];
        all.extend_from_slice(args);
        let program = rt.info.program.clone();
        rt.via_values(&all, deep, mutates, |v| {
            let names = |id: usize| program.functions[id].qualname.clone();
            builtins_core::call_method(&v[0], &mname, v[1..].to_vec(), &names)
        })
    })
}

/// `f(argv[0..n])` for any callable value.
///
/// # Safety
/// `ctx` must be the live context; `argv` points at `n` readable words.
pub unsafe extern "C" fn stmjit_call(ctx: *mut Ctx, f: Word, argv: *const Word, n: u64) -> Word {
    // SAFETY: caller's contract.
    // (JIT frame slots: the GC keeps them up to date during the call.)
    let args = unsafe { std::slice::from_raw_parts(argv, n as usize) };
    call_value(ctx, f, args)
}

/// `f(argv[0..n])` from a call site with a class cache (at `site`) that missed: as
/// [`stmjit_call`], and a class call fills the cache (see [`instantiate`]).
///
/// # Safety
/// As [`stmjit_call`]; `site` is the live cache of the calling site.
pub unsafe extern "C" fn stmjit_call_site(
    ctx: *mut Ctx,
    f: Word,
    argv: *const Word,
    n: u64,
    site: *const SiteCache,
) -> Word {
    // SAFETY: caller's contract (JIT frame slots, updated by the GC during the call).
    let args = unsafe { std::slice::from_raw_parts(argv, n as usize) };
    let rt = rt_of(ctx);
    if rt.is(f, rt.types.class) {
        // SAFETY: caller's contract (the site's cache is never freed).
        return instantiate(ctx, f, args, &[], Some(unsafe { &*site }));
    }
    call_value(ctx, f, args)
}

/// Builtin function `which` called directly by name.
///
/// # Safety
/// As [`stmjit_call`].
pub unsafe extern "C" fn stmjit_builtin(
    ctx: *mut Ctx,
    which: u64,
    argv: *const Word,
    n: u64,
) -> Word {
    // SAFETY: caller's contract.
    let src = unsafe { std::slice::from_raw_parts(argv, n as usize) };
    // A copy (the builtin may allocate, and the GC update the slots), on the stack when small.
    let mut small = [0; 8];
    let heap;
    let args: &[Word] = match small.get_mut(..src.len()) {
        Some(buf) => {
            buf.copy_from_slice(src);
            buf
        }
        None => {
            heap = src.to_vec();
            &heap
        }
    };
    call_builtin(ctx, which, args)
}

/// Checks that `o.name` exists, before the arguments of a method call are evaluated (Python's
/// order); returns None or raises the AttributeError.
///
/// # Safety
/// As [`stmjit_call`].
pub unsafe extern "C" fn stmjit_check_method(ctx: *mut Ctx, o: Word, name: u64) -> Word {
    with_rt(ctx, |rt| {
        let found = if rt.is(o, rt.types.instance) || rt.is(o, rt.types.class) {
            rt.has_attr(o, name as u32)?
        } else {
            methods::has_method(rt, o, rt.info.names.text(name as u32))
        };
        if found {
            Ok(NONE)
        } else {
            // The AttributeError.
            rt.getattr(o, name as u32).map(|_| NONE)
        }
    })
}

/// `argv[0].name(argv[1..n])` from a method-call site whose cache (at `site`) missed:
/// fills it when the method is a function found in the receiver's class.
///
/// # Safety
/// As [`stmjit_call`] (`argv` holds the receiver then the arguments); `site` is the live
/// cache of the calling site.
pub unsafe extern "C" fn stmjit_call_method(
    ctx: *mut Ctx,
    name: u64,
    argv: *const Word,
    n: u64,
    site: *const SiteCache,
) -> Word {
    // SAFETY: caller's contract: `n` words at argv, frame slots of the calling JIT code.
    let args = unsafe { std::slice::from_raw_parts(argv, n as usize) };
    let o = args[0];
    let name = name as u32;
    let rt = rt_of(ctx);
    let t = rt.types;
    if rt.is(o, t.list) {
        if let Some(r) = list_method(ctx, o, name_of(ctx, name), &args[1..]) {
            return r;
        }
    }
    if rt.is(o, t.instance) {
        // Fast path: a method found in the class, not shadowed by an instance attribute.
        rt.rb(o);
        let cls = rt.ld(o, offset_of!(InstanceObj, class) as u64);
        let id = rt.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        // Before the shape and the class dicts are read (see `ClassTable::fill_method_site`).
        let epoch = rt.info.classes.epoch();
        if let Err(e) = rt.refresh() {
            return rt.unwind(e);
        }
        let (slot, cached) = rt.class_view(id, name);
        let shadowed = slot.is_some_and(|s| rt.inst_slot_bound(o, s));
        if !shadowed {
            rt.rb(cls);
            // An error here (an abort when it validates, memory) unwinds: the transaction
            // may be gone, so nothing below may run.
            let found = match rt.class_lookup_from(cls, id, name, cached) {
                Ok(found) => found,
                Err(e) => return rt.unwind(e),
            };
            if let Some(f) = found {
                if rt.is(f, t.function) {
                    let fid = rt.ld(f, offset_of!(FunctionObj, func_id) as u64) as usize;
                    let cacheable = slot.is_none()
                        && !rt.tx.class_changed
                        && rt.info.program.functions[fid].is_plain()
                        && rt.info.program.functions[fid].arity == args.len();
                    if cacheable {
                        // SAFETY: caller's contract (the site's cache is never freed).
                        rt.info
                            .classes
                            .fill_method_site(unsafe { &*site }, id, fid, epoch);
                    }
                    // Straight from the caller's slots: the callee copies them at entry.
                    return call_function(ctx, f, fid, args);
                }
            }
        }
    }
    if rt.is(o, t.instance) || rt.is(o, t.class) {
        let f = with_rt(ctx, |rt| rt.getattr(o, name));
        if f == ERR {
            return ERR;
        }
        // Re-read the arguments: getattr may have allocated (argv is JIT frame slots,
        // which the GC updates in place).
        // SAFETY: caller's contract.
        let all = unsafe { std::slice::from_raw_parts(argv, n as usize) }.to_vec();
        return call_value(ctx, f, &all[1..]);
    }
    // `q.add(f, ...)`: a TransactionQueue is filled in a loop of many such calls, all on the
    // serial path before `q.run()`; the generic lookup below cost about 550 instructions.
    if args.len() >= 2
        && rt.is(o, t.opaque)
        && rt.ld(o, offset_of!(OpaqueObj, kind) as u64) == OPAQUE_QUEUE
        && name_of(ctx, name) == "add"
    {
        return queue_add_call(ctx, o, &args[1..]);
    }
    if !methods::has_method(rt, o, name_of(ctx, name)) {
        return with_rt(ctx, |rt| rt.getattr(o, name));
    }
    builtin_method(ctx, o, name, &args[1..])
}

/// `queue.add(*args)` with at least one argument (the callable).
fn queue_add_call(ctx: *mut Ctx, queue: Word, args: &[Word]) -> Word {
    with_rt(ctx, |rt| {
        super::threads::queue_add(rt, queue, args[0], &args[1..]).map(|_| NONE)
    })
}

/// Binds globals to function objects for a run of `def` statements of plain functions
/// (`CodeTables::add_def_run`): `table` holds `n` pairs (global index, function object, a
/// constant), stored in order with the card write barrier, as the JIT's own stores would.
/// Why: one call instead of one inline barrier and store per `def` (a module of many
/// functions compiles its `<module>` several times faster).
///
/// # Safety
/// As [`stmjit_call`]; `table` points at `2 * n` words that live as long as the program.
pub unsafe extern "C" fn stmjit_define_globals(ctx: *mut Ctx, table: *const u64, n: u64) -> Word {
    // SAFETY: the compiler made `table` with 2 * n words, kept in the code tables.
    let pairs = unsafe { std::slice::from_raw_parts(table, 2 * n as usize) };
    with_rt(ctx, |rt| {
        let globals = rt.info.consts.globals;
        for pair in pairs.chunks(2) {
            rt.carr_set(globals, pair[0], pair[1])?;
        }
        Ok(NONE)
    })
}

/// Creates the class of class statement `def` with base `base` (None or a class) and the
/// class attribute values at `argv`.
///
/// # Safety
/// As [`stmjit_call`] (`argv` holds one word per class attribute of the statement).
pub unsafe extern "C" fn stmjit_make_class(
    ctx: *mut Ctx,
    def: u64,
    base: Word,
    argv: *const Word,
) -> Word {
    with_rt(ctx, |rt| {
        let cd = rt.info.code.classdefs[def as usize].clone();
        if base != UNBOUND && !rt.is(base, rt.types.class) {
            return Err(exc(
                ErrorKind::TypeError,
                format!("a base class must be a class, not '{}'", rt.type_name(base)),
            ));
        }
        // Words held across allocations are rooted; the attribute values are read from
        // argv (JIT frame slots, updated by the GC) right before each use.
        let rb = rt.root(base);
        let attrs = rt.new_dict()?;
        let ra = rt.root(attrs);
        for (i, n) in cd.attrs.iter().enumerate() {
            let key = rt.info.names.str_obj(*n);
            // SAFETY: caller's contract (one word per class attribute).
            let v = unsafe { *argv.add(i) };
            rt.dict_set(rt.get(ra), key, v)?;
        }
        for (n, f) in &cd.methods {
            let key = rt.info.names.str_obj(*n);
            let fo = rt.info.consts.func_objs[*f];
            rt.dict_set(rt.get(ra), key, fo)?;
        }
        let c = rt.alloc(rt.types.class, std::mem::size_of::<ClassObj>() as u64)?;
        let (base, attrs) = (rt.get(rb), rt.get(ra));
        let exc = base != UNBOUND && rt.is_exc_class(base);
        let id = {
            let mut classes = rt.info.classes.write();
            classes.push(ClassInfo {
                name: cd.name.clone(),
                exc,
                ..ClassInfo::default()
            });
            classes.len() - 1
        };
        rt.st(c, offset_of!(ClassObj, class_id) as u64, id as u64);
        rt.st(
            c,
            offset_of!(ClassObj, base) as u64,
            if base == UNBOUND { NONE } else { base },
        );
        rt.st(c, offset_of!(ClassObj, attrs) as u64, attrs);
        Ok(c)
    })
}

/// Checks the value of `with EXPR:` (a Lock); returns None or raises.
///
/// # Safety
/// As [`stmjit_call`].
pub unsafe extern "C" fn stmjit_with_lock(ctx: *mut Ctx, v: Word) -> Word {
    with_rt(ctx, |rt| {
        if rt.is(v, rt.types.opaque) && rt.type_name(v) == "Lock" {
            Ok(NONE)
        } else {
            Err(exc(
                ErrorKind::TypeError,
                format!(
                    "'{}' object does not support the context manager protocol",
                    rt.type_name(v)
                ),
            ))
        }
    })
}
