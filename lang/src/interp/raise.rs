//! Exceptions: `try` statements, `raise`, the built-in exception classes as values, and the
//! text of an uncaught exception (LANGUAGE.md, "Exceptions").
//!
//! An error of the language ([`Exc`] with a kind and a message) becomes an instance of the
//! built-in class of its kind only when a handler looks at it; a raised instance travels as
//! `Exc::obj`. A handler's exception is kept (`Interp::handling`) for the bare `raise` of
//! its `except` clause. A re-raised exception keeps the frames it had below the frame that
//! re-raises it; from that frame up, the trace is the re-raise's (the JIT does the same).

use super::*;
use crate::builtins_core::is_subclass;
use crate::exceptions;

impl Interp {
    /// The value of builtin `b` as a name: built-in exception classes are classes.
    pub(super) fn builtin_value(&self, b: Builtin) -> Value {
        match b {
            Builtin::ExcClass(i) => Value::Class(self.shared.exc_classes[i as usize].clone()),
            b => Value::Builtin(b),
        }
    }

    /// The exception object of `e`, made from its kind and message the first time.
    fn exc_object(&self, e: &mut Exc) -> Value {
        if let Some(o) = &e.obj {
            return o.clone();
        }
        let class = self.shared.exc_classes[exceptions::of_kind(e.kind)].clone();
        let args = exceptions::args_of_error(e.kind, &e.msg);
        let obj = Value::Instance(Arc::new(InstanceObj::new(
            class,
            vec![("args".into(), TupleObj::new_value(args))],
        )));
        e.obj = Some(obj.clone());
        obj
    }

    /// The name and message an uncaught `e` is reported with.
    pub(super) fn exc_text(&self, e: &Exc) -> (String, String) {
        match &e.obj {
            Some(o @ Value::Instance(i)) => {
                let msg = self
                    .to_str(o)
                    .unwrap_or_else(|_| "<exception str() failed>".into());
                (i.class.name.clone(), msg)
            }
            _ => (e.kind.name().to_string(), e.msg.clone()),
        }
    }

    /// `try:` ... (see the module docs): the body; on an exception the first matching
    /// `except` clause, else `else:` when the body ended normally; then `finally:`, whose
    /// own exception or `return`/`break`/`continue` replaces how the rest ended.
    pub(super) fn exec_try(
        &mut self,
        body: &[Stmt],
        handlers: &[Handler],
        orelse: &[Stmt],
        finalbody: &[Stmt],
        env: &mut Vec<Option<Value>>,
    ) -> R<Flow> {
        let r = match self.exec_block(body, env) {
            Err(e) if !handlers.is_empty() => self.handle(e, handlers, env),
            Ok(Flow::Next) => self.exec_block(orelse, env),
            r => r,
        };
        if finalbody.is_empty() {
            return r;
        }
        match self.exec_block(finalbody, env)? {
            Flow::Next => r,
            flow => Ok(flow),
        }
    }

    /// Runs the first `except` clause of `handlers` that matches `e`; `e` again if none.
    fn handle(
        &mut self,
        mut e: Box<Exc>,
        handlers: &[Handler],
        env: &mut Vec<Option<Value>>,
    ) -> R<Flow> {
        let obj = self.exc_object(&mut e);
        for h in handlers {
            // `except (A, B)` checks every class, as CPython checks all the items of the
            // tuple before it matches.
            let mut matched = h.classes.is_empty();
            for c in &h.classes {
                let cv = self.eval(c, env)?;
                matched |= exc_matches(&obj, &cv).map_err(|x| self.locate(x, c.span))?;
            }
            if !matched {
                continue;
            }
            if let Some(n) = &h.name {
                self.store(n, obj.clone(), env)?;
            }
            self.handling.push(*e);
            let r = self.exec_block(&h.body, env);
            self.handling.pop();
            // As in Python, the name is unbound when the clause ends (normally: a clause
            // left by `break`, `continue` or `return` keeps it, as the JIT does).
            if let (Some(n), Ok(Flow::Next)) = (&h.name, &r) {
                self.unbind(n, env);
            }
            return r;
        }
        Err(e)
    }

    /// Unbinds `n` (the end of `except ... as n`).
    fn unbind(&mut self, n: &Name, env: &mut [Option<Value>]) {
        match n.slot {
            Slot::Local(i) => env[i] = None,
            Slot::Cell(i) => {
                let Some(Value::List(cell)) = &env[i] else {
                    unreachable!("a cell slot holds its cell")
                };
                lock(&cell.items).clear();
            }
            Slot::Global(g) => lock(&self.shared.globals)[g] = None,
            Slot::Builtin(_) | Slot::Unresolved => {}
        }
    }

    /// `raise e` (`exc`), or the bare `raise` of an `except` clause (`handler` is its
    /// level, `None` outside any clause).
    pub(super) fn raise_stmt(
        &mut self,
        exc_expr: Option<&Expr>,
        handler: Option<usize>,
        env: &mut Vec<Option<Value>>,
    ) -> Box<Exc> {
        let Some(x) = exc_expr else {
            return match (handler, self.handling.last()) {
                (Some(_), Some(e)) => {
                    let mut e = Box::new(e.clone());
                    // Keep the frames below this one; this frame and its callers are
                    // located at the `raise`.
                    let keep = e.trace.len().saturating_sub(self.frames.len());
                    e.trace.truncate(keep);
                    e.open = true;
                    e
                }
                _ => exc(ErrorKind::RuntimeError, "No active exception to reraise"),
            };
        };
        let v = match self.eval(x, env) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let obj = match &v {
            Value::Class(c) if c.exc => match self.call_value(v.clone(), Vec::new(), x.span) {
                Ok(o) => o,
                Err(e) => return e,
            },
            Value::Instance(i) if i.class.exc => v.clone(),
            _ => {
                return self.locate(
                    exc(
                        ErrorKind::TypeError,
                        "exceptions must derive from BaseException",
                    ),
                    x.span,
                )
            }
        };
        Box::new(Exc {
            kind: ErrorKind::RuntimeError,
            msg: String::new(),
            trace: Vec::new(),
            open: false,
            obj: Some(obj),
        })
    }
}

/// Whether the exception `obj` is an instance of `cls` (`except cls:`), or of one of the
/// classes of a tuple `cls` (all of which must be exception classes, as in CPython).
fn exc_matches(obj: &Value, cls: &Value) -> R<bool> {
    let not_exc = || {
        exc(
            ErrorKind::TypeError,
            "catching classes that do not inherit from BaseException is not allowed",
        )
    };
    let Value::Instance(i) = obj else {
        unreachable!("a raised exception is an instance")
    };
    match cls {
        Value::Class(c) if c.exc => Ok(is_subclass(&i.class, c)),
        Value::Tuple(t) => {
            let mut found = false;
            for c in &t.items {
                match c {
                    Value::Class(c) if c.exc => found = found || is_subclass(&i.class, c),
                    _ => return Err(not_exc()),
                }
            }
            Ok(found)
        }
        _ => Err(not_exc()),
    }
}
