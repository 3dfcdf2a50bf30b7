//! Exceptions in the object model: the built-in exception classes (class ids `0..COUNT`,
//! made with the program's constants), exception instances and their `args`, and the
//! helpers of `raise` and `try` in JIT code (`jit/src/compile/tries.rs` says how code uses
//! them).
//!
//! The pending exception is `Runtime::error` (kind and message of an error the language
//! raised) and, once it is an object, the driver's root slot `Runtime::exc_slot` (what
//! `raise` raised, or what a handler made of the error). An exception never ends a
//! transaction and an abort is never an exception: the handler's first helper,
//! [`stmjit_catch`], lets an abort go on unwinding (`Unwind::Aborted`, `tx.aborting`),
//! exactly as `stmjit_trace` does. Raising and catching leave the running transaction as
//! it is: it may abort and restart after a handler took the exception (what the exception
//! object, the pending error and the kept-aside traces were is reset with it). Only an
//! exception that leaves the frame that opened the transaction, or the thread, makes it
//! inevitable ([`Runtime::exception_leaves`]).
//!
//! Traces: when a handler catches, the trace of the frames below its own is kept aside
//! under a key (the handler's frame address and `try` level); `raise` without an argument,
//! a handler that does not match and the end of a `finally` put it back
//! ([`stmjit_reraise`]) and unwinding goes on from there. The kept-aside traces are as they
//! were at the restart point when a transaction restarts (`Runtime::restart_stash`).

use crate::class_table::ClassInfo;
use crate::objects::{ClassObj, InstanceObj};
use crate::{exc, Ctx, Runtime, ERR, R, RESTART, UNBOUND};
use std::mem::offset_of;
use stmjit_lang::diag::{ErrorKind, TraceEntry};
use stmjit_lang::exceptions::{self, CLASSES, COUNT};
use stmjit_runtime::value::{self, Word, NONE};

/// The class-table entries of the built-in exception classes (ids `0..COUNT`).
pub fn builtin_class_infos() -> Vec<ClassInfo> {
    CLASSES
        .iter()
        .map(|(name, _)| ClassInfo {
            name: name.to_string(),
            exc: true,
            builtin: true,
            ..ClassInfo::default()
        })
        .collect()
}

/// The key of the trace a handler keeps aside: its frame's address and its `try` level
/// (nested `try` statements of one frame have higher levels, called frames higher
/// addresses, so every key above a handler's belongs to a handler that has ended).
pub const fn stash_key(frame: u64, level: u64) -> u64 {
    frame << 6 | level
}

impl Runtime {
    /// Allocates built-in exception class `i` (base `base`, NONE for the root): one of the
    /// program's constants.
    pub fn new_builtin_exc_class(&mut self, i: usize, base: Word) -> R<Word> {
        let m = self.mark();
        let rb = self.root(base);
        let attrs = self.new_dict()?;
        let ra = self.root(attrs);
        let c = self.alloc(self.types.class, std::mem::size_of::<ClassObj>() as u64)?;
        self.st(c, offset_of!(ClassObj, class_id) as u64, i as u64);
        self.st(c, offset_of!(ClassObj, base) as u64, self.get(rb));
        self.st(c, offset_of!(ClassObj, attrs) as u64, self.get(ra));
        self.release(m);
        Ok(c)
    }

    /// Whether `cls` (a class) is an exception class.
    pub fn is_exc_class(&self, cls: Word) -> bool {
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        self.class_copy.with(&self.info.classes, |c| c[id].exc)
    }

    /// Whether class `cls` is `of` or derives from it.
    pub fn is_subclass(&self, mut cls: Word, of: Word) -> bool {
        loop {
            if cls == of {
                return true;
            }
            self.rb(cls);
            cls = self.ld(cls, offset_of!(ClassObj, base) as u64);
            if cls == NONE {
                return false;
            }
        }
    }

    /// The class of an instance.
    pub(crate) fn class_of(&self, o: Word) -> Word {
        self.rb(o);
        self.ld(o, offset_of!(InstanceObj, class) as u64)
    }

    /// Whether `o` is an exception instance.
    pub fn is_exc_instance(&self, o: Word) -> bool {
        self.is(o, self.types.instance) && self.is_exc_class(self.class_of(o))
    }

    /// The pending exception object (NONE: none yet).
    fn pending_obj(&self) -> Word {
        // SAFETY: exc_slot is the driver's root slot or the runtime's own cell.
        unsafe { *self.exc_slot }
    }

    fn set_pending_obj(&mut self, w: Word) {
        // SAFETY: as pending_obj.
        unsafe { *self.exc_slot = w }
    }

    /// The pending exception leaves the thread (its driver ends it, or keeps it for
    /// `join`): it is final from now on, its transaction inevitable (see
    /// [`Runtime::exception_leaves`]). False if the transaction was aborted instead.
    pub(crate) fn error_may_stand(&mut self) -> bool {
        if self.make_inevitable().is_err() {
            return false;
        }
        // SAFETY: ctx is this thread's live context when not null.
        if let Some(c) = unsafe { self.ctx.as_mut() } {
            if c.txn_depth != crate::txn::NO_OPENER {
                // Its restart point is gone with the frame: the next poll ends it.
                c.txn_depth = crate::txn::NO_OPENER;
                self.set_budget(0);
            }
        }
        true
    }

    /// The pending exception (if any) is about to leave the frame at `depth`. Raising and
    /// catching change nothing to the running transaction: a handler in the frame that
    /// opened it (`Ctx::txn_depth`, whose poll is its restart point) or in one it called
    /// takes the exception within the transaction, which may still abort and restart (the
    /// raise runs again then: nothing of the exception was seen outside it). But once the
    /// exception leaves the opener, the restart point is gone while the transaction could
    /// still abort; and an exception that leaves the thread is the program's. So here, in
    /// the opener (or at the driver, depth 0), the transaction becomes inevitable, without
    /// restart point, if it was not already. A doomed transaction (it read a stale view,
    /// perhaps the very cause of the exception) is aborted instead, with
    /// [`crate::txn::ThreadTx::aborting`] set: its opener restarts, the exception is never
    /// seen.
    pub(crate) fn exception_leaves(&mut self, depth: u64) {
        if self.error.is_none() {
            return;
        }
        // SAFETY: ctx is this thread's live context when not null.
        let opener = unsafe { self.ctx.as_ref() }.is_none_or(|c| c.txn_depth == depth);
        if opener {
            self.error_may_stand();
        }
    }

    /// Raises the exception object `obj` (an exception instance) with the trace `trace`.
    pub fn raise_obj(&mut self, obj: Word, trace: Vec<TraceEntry>) -> Word {
        if self.tx.aborting {
            return ERR;
        }
        // The kind stands for "an object": the report and handlers use the object.
        self.error = Some((ErrorKind::RuntimeError, String::new()));
        self.set_pending_obj(obj);
        self.trace = trace;
        ERR
    }

    /// The pending exception as an object, made from its kind and message the first time.
    pub(crate) fn exc_object(&mut self) -> R<Word> {
        let o = self.pending_obj();
        if o != NONE {
            return Ok(o);
        }
        let (kind, msg) = self
            .error
            .clone()
            .unwrap_or((ErrorKind::RuntimeError, String::new()));
        let cls = self.info.consts.builtin_objs[builtin_index(exceptions::of_kind(kind))];
        let args = exceptions::args_of_error(kind, &msg);
        let m = self.mark();
        let mut held = Vec::new();
        for a in &args {
            let w = self.from_value(a, &mut crate::convert::Memo::shallow())?;
            held.push(self.root(w));
        }
        let words: Vec<Word> = held.iter().map(|&r| self.get(r)).collect();
        let tuple = self.new_tuple(&words)?;
        let rl = self.root(tuple);
        let inst = self.new_exc_instance(cls, rl)?;
        self.release(m);
        self.set_pending_obj(inst);
        Ok(inst)
    }

    /// A new instance of exception class `cls` whose `args` is the tuple in `args`.
    fn new_exc_instance(&mut self, cls: Word, args: crate::Root) -> R<Word> {
        let inst = self.new_instance_obj(cls, crate::objects::inline_slots(0))?;
        let ri = self.root(inst);
        self.setattr(inst, ARGS_NAME, self.get(args))?;
        Ok(self.get(ri))
    }

    /// Sets `args` of a new exception instance to the tuple of `args` (a class call).
    pub(crate) fn init_exc_args(&mut self, inst: Word, args: &[Word]) -> R<()> {
        let m = self.mark();
        let ri = self.root(inst);
        let tuple = self.new_tuple(args)?;
        self.setattr(self.get(ri), ARGS_NAME, tuple)?;
        self.release(m);
        Ok(())
    }

    /// The name and message an uncaught pending exception is reported with (read before
    /// its transaction commits).
    pub fn error_text(&mut self) -> (String, String) {
        let o = self.pending_obj();
        if o != NONE {
            let name = self.class_name(self.class_of(o));
            let msg = self
                .to_str(o)
                .unwrap_or_else(|_| "<exception str() failed>".into());
            return (name, msg);
        }
        match self.error.clone() {
            Some((kind, msg)) => (kind.name().to_string(), msg),
            None => (
                "TypeError".to_string(),
                "internal error without a message".into(),
            ),
        }
    }

    /// When the pending exception (not an abort) is of built-in class `class` or derives
    /// from it, forgets it and says so: the operation that called a special method handles
    /// it (`StopIteration` ending a `for` loop).
    pub(crate) fn take_pending(&mut self, class: usize) -> bool {
        if self.tx.aborting {
            return false;
        }
        let Some((kind, _)) = &self.error else {
            return false;
        };
        let o = self.pending_obj();
        let matches = if o != NONE {
            let cls = self.info.consts.builtin_objs[builtin_index(class)];
            self.is_subclass(self.class_of(o), cls)
        } else {
            exceptions::derives(exceptions::of_kind(*kind), class)
        };
        if matches {
            self.clear_error();
        }
        matches
    }

    /// Forgets the pending exception (a handler took it, or a new transaction begins).
    pub(crate) fn clear_error(&mut self) {
        self.error = None;
        self.trace.clear();
        self.set_pending_obj(NONE);
    }
}

/// Name id of `args` (interned right after `__init__`).
pub const ARGS_NAME: u32 = 1;
/// Name id of `__name__`.
pub const NAME_NAME: u32 = 2;

/// Index in `Builtin::ALL` of built-in exception class `i`.
pub fn builtin_index(i: usize) -> usize {
    use stmjit_lang::ast::Builtin;
    Builtin::ALL
        .iter()
        .position(|b| *b == Builtin::ExcClass(i as u8))
        .expect("every exception class is a builtin")
}

/// `raise v`: `v` an exception class (instantiated without arguments) or instance, or
/// `UNBOUND` for a bare `raise` outside any `except` clause. Returns `ERR`.
///
/// # Safety
/// `ctx` must be the live context of the calling thread.
pub unsafe extern "C" fn stmjit_raise(ctx: *mut Ctx, v: Word) -> Word {
    let rt = crate::runtime::rt_of(ctx);
    if v == UNBOUND {
        return rt.raise(ErrorKind::RuntimeError, "No active exception to reraise");
    }
    let obj = if rt.is(v, rt.types.class) && rt.is_exc_class(v) {
        let r = crate::calls::call_value(ctx, v, &[]);
        if r == ERR {
            return ERR;
        }
        r
    } else if rt.is_exc_instance(v) {
        v
    } else {
        return rt.raise(
            ErrorKind::TypeError,
            "exceptions must derive from BaseException",
        );
    };
    crate::runtime::rt_of(ctx).raise_obj(obj, Vec::new())
}

/// The first step of a handler (see the module docs): while an abort unwinds, `RESTART`
/// in the frame that restarts it, else `ERR` (unwinding goes on, no handler runs);
/// otherwise the pending exception as an object. Its trace is kept aside under `key`
/// and nothing is pending any more.
///
/// # Safety
/// As [`stmjit_raise`].
pub unsafe extern "C" fn stmjit_catch(ctx: *mut Ctx, site: u64, key: u64) -> Word {
    // SAFETY: caller's contract.
    let c = unsafe { &mut *ctx };
    let rt = crate::runtime::rt_of(ctx);
    if rt.tx.aborting {
        rt.note_abort_site(site as u32);
        return if c.txn_depth == c.depth { RESTART } else { ERR };
    }
    let obj = match rt.exc_object() {
        Ok(o) => o,
        Err(e) => {
            // Out of memory while making the object: that error replaces the exception
            // (it is pending now), no handler runs and the frame is left.
            rt.error = None;
            rt.unwind(e);
            return crate::error::leave_frame(rt, c, Some(site)).unwrap_or(ERR);
        }
    };
    while rt.exc_stash.last().is_some_and(|(k, _)| *k >= key) {
        rt.exc_stash.pop();
    }
    let trace = std::mem::take(&mut rt.trace);
    rt.exc_stash.push((key, trace));
    rt.clear_error();
    obj
}

/// Whether the exception `obj` is an instance of `cls` (`except cls:`): a bool word, or
/// `ERR` (a TypeError) when `cls` is not an exception class.
///
/// # Safety
/// As [`stmjit_raise`].
pub unsafe extern "C" fn stmjit_exc_match(ctx: *mut Ctx, obj: Word, cls: Word) -> Word {
    let rt = crate::runtime::rt_of(ctx);
    // A tuple's items must all be exception classes (CPython checks them all first).
    let classes = if rt.is(cls, rt.types.tuple) {
        rt.tuple_items(cls)
    } else {
        vec![cls]
    };
    if !classes
        .iter()
        .all(|&c| rt.is(c, rt.types.class) && rt.is_exc_class(c))
    {
        return rt.raise(
            ErrorKind::TypeError,
            "catching classes that do not inherit from BaseException is not allowed",
        );
    }
    let of = rt.class_of(obj);
    let m = classes.iter().any(|&c| rt.is_subclass(of, c));
    value::from_bool(m)
}

/// Raises `obj` again with the trace its handler kept aside under `key` (see the module
/// docs). Returns `ERR`.
///
/// # Safety
/// As [`stmjit_raise`].
pub unsafe extern "C" fn stmjit_reraise(ctx: *mut Ctx, obj: Word, key: u64) -> Word {
    let rt = crate::runtime::rt_of(ctx);
    let mut trace = Vec::new();
    if let Some(i) = rt.exc_stash.iter().rposition(|(k, _)| *k == key) {
        trace = std::mem::take(&mut rt.exc_stash[i].1);
        rt.exc_stash.truncate(i);
    }
    rt.raise_obj(obj, trace)
}

/// `isinstance(x, cls)` for classes of the heap (`cls` a class, a built-in type's
/// constructor or a tuple or list of them, nested).
pub(crate) fn is_instance(rt: &mut Runtime, x: Word, cls: Word) -> R<Word> {
    Ok(value::from_bool(instance_of(rt, x, cls)?))
}

fn instance_of(rt: &mut Runtime, x: Word, cls: Word) -> R<bool> {
    use stmjit_lang::ast::Builtin;
    let one = |rt: &mut Runtime, c: Word| -> R<bool> {
        if rt.is(c, rt.types.class) {
            return Ok(rt.is(x, rt.types.instance) && rt.is_subclass(rt.class_of(x), c));
        }
        if rt.is(c, rt.types.builtin) {
            let v = rt.to_value(x, &mut crate::convert::Memo::peek());
            let b = Builtin::ALL
                [rt.ld(c, offset_of!(crate::objects::BuiltinObj, which) as u64) as usize];
            let r = stmjit_lang::builtins_core::call_builtin(
                Builtin::IsInstance,
                vec![v, stmjit_lang::value::Value::Builtin(b)],
                &stmjit_lang::builtins_core::BuiltinEnv {
                    names: &|_| String::new(),
                    start: rt.info.start,
                    args: &[],
                },
            )?;
            return Ok(r.truthy());
        }
        Err(exc(
            ErrorKind::TypeError,
            "isinstance() arg 2 must be a type, a tuple of types, or a union",
        ))
    };
    let items = if rt.is(cls, rt.types.tuple) {
        rt.tuple_items(cls)
    } else if rt.is(cls, rt.types.list) {
        rt.list_items(cls)
    } else {
        return one(rt, cls);
    };
    // The items need no roots: `one` allocates nothing (it reads and converts for a peek).
    for c in items {
        if instance_of(rt, x, c)? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// `issubclass(c, cls)`: classes of the heap compared through their bases; built-in types,
/// a class against a built-in type, and the errors by the interpreter's rule
/// ([`subclass_of`](stmjit_lang::builtins_core::subclass_of)).
pub(crate) fn is_subclass(rt: &mut Runtime, c: Word, cls: Word) -> R<Word> {
    if !rt.is(c, rt.types.class) {
        let v = rt.to_value(c, &mut crate::convert::Memo::peek());
        stmjit_lang::builtins_core::subclass_arg(&v)?;
    }
    Ok(value::from_bool(subclass_of(rt, c, cls)?))
}

fn subclass_of(rt: &mut Runtime, c: Word, cls: Word) -> R<bool> {
    if rt.is(cls, rt.types.tuple) {
        // The items need no roots: nothing here allocates (it reads, and converts for a peek).
        for k in rt.tuple_items(cls) {
            if subclass_of(rt, c, k)? {
                return Ok(true);
            }
        }
        return Ok(false);
    }
    if rt.is(c, rt.types.class) && rt.is(cls, rt.types.class) {
        return Ok(rt.is_subclass(c, cls));
    }
    let a = rt.to_value(c, &mut crate::convert::Memo::peek());
    let b = rt.to_value(cls, &mut crate::convert::Memo::peek());
    Ok(stmjit_lang::builtins_core::subclass_of(&a, &b)?)
}

/// `type(x)`: the class of an instance, or the constructor of a built-in type.
pub(crate) fn type_of(rt: &mut Runtime, x: Word) -> R<Word> {
    if rt.is(x, rt.types.instance) {
        return Ok(rt.class_of(x));
    }
    let v = rt.to_value(x, &mut crate::convert::Memo::peek());
    match stmjit_lang::builtins_core::type_of(&v)? {
        stmjit_lang::value::Value::Builtin(b) => {
            let k = stmjit_lang::ast::Builtin::ALL
                .iter()
                .position(|x| *x == b)
                .expect("a builtin");
            Ok(rt.info.consts.builtin_objs[k])
        }
        _ => unreachable!("type() of a non-instance is a builtin"),
    }
}

/// The count of built-in exception classes (ids below it).
pub const BUILTIN_CLASSES: usize = COUNT;
