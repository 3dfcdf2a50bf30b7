//! The reference interpreter: a tree-walking evaluator of a resolved [`Program`], the oracle
//! that the JIT is tested against. It favours obvious correctness over speed.
//!
//! Threads: `spawn` starts a real OS thread; all interpreter threads share one global lock
//! ([`gil::Gil`]) and switch only between statements (every [`SWITCH_INTERVAL`] statements when
//! another thread waits, and when blocking in `join` or on a held `Lock`). Inside `with atomic:`,
//! `with lock:` and `TransactionQueue` calls a thread does not switch, so each of them runs as
//! one indivisible step: exactly the serial semantics LANGUAGE.md promises.
//!
//! Choices where LANGUAGE.md leaves room (the JIT must make the same ones):
//! - Error positions: an error is reported at the start of the innermost expression that
//!   failed (for `a + b`, the position of `a`); each caller's line is the start of its call
//!   expression. Function names in traces are `f`, `Class.method`, `<module>`; a spawned
//!   call that fails before its first statement (wrong arity) is reported `in <thread>`.
//! - `with lock:` blocks also run without switching (each is one transaction); `Lock` is
//!   reentrant. Blocking (`join`, waiting for a lock held by a blocked thread) gives up the
//!   global lock even inside such a block.
//! - Calls nest at most [`MAX_CALL_DEPTH`] deep (Python's default limit); data nests at most
//!   [`MAX_DATA_DEPTH`] deep for `str`, `==`, `<`. Beyond: `RecursionError`.
//! - Iterating a dict walks a snapshot of its keys (Python would raise on a size change);
//!   iterating a list walks it by index, seeing appended items (as Python).
//! - The main thread waits for unjoined threads at the end, as Python does; an error in any
//!   thread ends the process at once with status 1.
//! - `serve`, `shutdown` and `server_port` raise a `TypeError` (not supported yet).

mod builtins;
pub mod gil;
mod methods;

use crate::ast::*;
use crate::diag::{render_runtime, ErrorKind, Span, TraceEntry};
use crate::ops;
use crate::stack;
use crate::value::*;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Deepest call nesting before a `RecursionError` (Python's default limit).
pub const MAX_CALL_DEPTH: usize = 1000;
/// Statements a thread runs before offering the global lock to a waiting thread.
pub const SWITCH_INTERVAL: u32 = 100;
/// Buffered output is written out when it grows beyond this.
const OUT_FLUSH: usize = 1 << 16;

/// A runtime error: kind, message and the trace (innermost call first), filled in by the
/// innermost expression that knows its position.
#[derive(Debug, Clone)]
pub struct Exc {
    pub kind: ErrorKind,
    pub msg: String,
    pub trace: Vec<TraceEntry>,
}

/// Result of interpreter operations.
pub type R<T> = Result<T, Box<Exc>>;

/// An unlocated error of `kind`.
pub fn exc(kind: ErrorKind, msg: impl Into<String>) -> Box<Exc> {
    Box::new(Exc {
        kind,
        msg: msg.into(),
        trace: Vec::new(),
    })
}

impl From<OpError> for Box<Exc> {
    fn from((kind, msg): OpError) -> Self {
        exc(kind, msg)
    }
}

/// How a statement ended.
enum Flow {
    Next,
    Break,
    Continue,
    Return(Value),
}

/// State shared by all threads of one program run.
pub struct Shared {
    pub program: Arc<Program>,
    pub file: String,
    pub args: Vec<String>,
    globals: Mutex<Vec<Option<Value>>>,
    out: Mutex<Vec<u8>>,
    pub gil: gil::Gil,
    threads: Mutex<Vec<Arc<ThreadObj>>>,
    start: Instant,
}

impl Shared {
    /// Writes buffered program output to stdout.
    pub fn flush_out(&self) {
        let mut out = lock(&self.out);
        let mut stdout = std::io::stdout().lock();
        // Output errors (a closed pipe) are ignored: the program's result does not depend on them.
        let _ = stdout.write_all(&out);
        let _ = stdout.flush();
        out.clear();
    }

    fn write_out(&self, text: &str) {
        let full = {
            let mut out = lock(&self.out);
            out.extend_from_slice(text.as_bytes());
            out.len() > OUT_FLUSH
        };
        if full {
            self.flush_out();
        }
    }

    /// Prints `e` as LANGUAGE.md requires (after the program's pending output).
    pub fn report(&self, e: &Exc) {
        self.flush_out();
        let text = render_runtime(e.kind, &e.msg, &e.trace, &self.file);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// One active call: the function's name for traces and the position it is executing (updated
/// at each call it makes).
struct Frame {
    name: String,
    pos: Span,
}

/// The per-thread interpreter.
pub struct Interp {
    shared: Arc<Shared>,
    frames: Vec<Frame>,
    /// Nesting of `with atomic:` / `with lock:` / queued calls: no thread switch while > 0.
    atomic: usize,
    ticks: u32,
}

/// Runs `program` to completion on the current thread (which should have a big stack, see
/// [`crate::stack::on_big_stack`]) and returns the exit status: 0, or 1 after printing a
/// runtime error. Waits for spawned threads still running at the end, as Python does.
pub fn run_program(program: Program, file: &str, args: Vec<String>) -> i32 {
    let globals = vec![None; program.globals.len()];
    let shared = Arc::new(Shared {
        program: Arc::new(program),
        file: file.to_string(),
        args,
        globals: Mutex::new(globals),
        out: Mutex::new(Vec::new()),
        gil: gil::Gil::default(),
        threads: Mutex::new(Vec::new()),
        start: Instant::now(),
    });
    shared.gil.acquire();
    let mut it = Interp::new(shared.clone());
    it.frames.push(Frame {
        name: "<module>".to_string(),
        pos: Span::default(),
    });
    let program = shared.program.clone();
    let result = it.exec_block(&program.body, &mut Vec::new());
    if let Err(e) = result {
        // The global lock stays held: no other thread prints after the error.
        shared.report(&e);
        return 1;
    }
    loop {
        let pending: Vec<Arc<ThreadObj>> = lock(&shared.threads).drain(..).collect();
        if pending.is_empty() {
            break;
        }
        for t in pending {
            it.join(&t);
        }
    }
    shared.flush_out();
    shared.gil.release();
    0
}

impl Interp {
    fn new(shared: Arc<Shared>) -> Interp {
        Interp {
            shared,
            frames: Vec::new(),
            atomic: 0,
            ticks: 0,
        }
    }

    // ----- errors -----

    /// Fills in the trace of `e` if it has none yet: `span` in the current function, then the
    /// call sites of the active callers.
    fn locate(&self, mut e: Box<Exc>, span: Span) -> Box<Exc> {
        if e.trace.is_empty() {
            let mut frames = self.frames.iter().rev();
            let top = frames
                .next()
                .map(|f| f.name.clone())
                .unwrap_or_else(|| "<thread>".to_string());
            e.trace.push(TraceEntry {
                span,
                function: top,
            });
            for f in frames {
                e.trace.push(TraceEntry {
                    span: f.pos,
                    function: f.name.clone(),
                });
            }
        }
        e
    }

    fn func_name(&self) -> impl Fn(FuncId) -> String + '_ {
        |id| self.shared.program.functions[id].qualname.clone()
    }

    /// `str(v)`.
    pub fn to_str(&self, v: &Value) -> R<String> {
        Ok(v.to_str(&self.func_name())?)
    }

    // ----- threads -----

    /// A switch point between statements.
    fn tick(&mut self) {
        self.ticks += 1;
        if self.ticks >= SWITCH_INTERVAL {
            self.ticks = 0;
            if self.atomic == 0 && self.shared.gil.contended() {
                self.shared.gil.release();
                self.shared.gil.acquire();
            }
        }
    }

    /// Runs `f` with the global lock released (for blocking waits).
    fn without_gil<T>(&self, f: impl FnOnce() -> T) -> T {
        self.shared.gil.release();
        let r = f();
        self.shared.gil.acquire();
        r
    }

    /// `spawn(f, args...)`.
    fn spawn(&mut self, f: Value, args: Vec<Value>, span: Span) -> R<Value> {
        let thread = Arc::new(ThreadObj::default());
        let shared = self.shared.clone();
        let t = thread.clone();
        let handle = std::thread::Builder::new()
            .stack_size(stack::THREAD_STACK)
            .spawn(move || {
                stack::mark_thread(stack::THREAD_STACK);
                shared.gil.acquire();
                let mut it = Interp::new(shared.clone());
                match it.call_value(f, args, span) {
                    Ok(v) => *lock(&t.result) = Some(v),
                    Err(e) => {
                        let e = it.locate(e, span);
                        shared.report(&e);
                        std::process::exit(1);
                    }
                }
                shared.gil.release();
            })
            .map_err(|e| {
                exc(
                    ErrorKind::MemoryError,
                    format!("cannot start a thread: {e}"),
                )
            })?;
        *lock(&thread.handle) = Some(handle);
        lock(&self.shared.threads).push(thread.clone());
        Ok(Value::Thread(thread))
    }

    /// `t.join()`: waits for the thread and returns its result.
    fn join(&mut self, t: &Arc<ThreadObj>) -> Value {
        let handle = lock(&t.handle).take();
        if let Some(h) = handle {
            self.without_gil(|| {
                let _ = h.join();
            });
        }
        loop {
            if let Some(v) = lock(&t.result).clone() {
                return v;
            }
            // Another thread is joining it: wait for the result to appear.
            self.without_gil(|| std::thread::sleep(std::time::Duration::from_micros(100)));
        }
    }

    fn lock_acquire(&mut self, l: &LockObj) {
        let me = std::thread::current().id();
        loop {
            {
                let mut owner = lock(&l.owner);
                match *owner {
                    None => {
                        *owner = Some((me, 1));
                        return;
                    }
                    Some((id, n)) if id == me => {
                        *owner = Some((me, n + 1));
                        return;
                    }
                    _ => {}
                }
            }
            self.without_gil(|| std::thread::sleep(std::time::Duration::from_micros(50)));
        }
    }

    fn lock_release(&mut self, l: &LockObj) {
        let mut owner = lock(&l.owner);
        if let Some((id, n)) = *owner {
            *owner = if n > 1 { Some((id, n - 1)) } else { None };
        }
    }

    /// `q.run()`: runs queued calls (also those added meanwhile), each without switching.
    fn run_queue(&mut self, q: &QueueObj, span: Span) -> R<Value> {
        loop {
            let next = lock(&q.calls).pop_front();
            let Some((f, args)) = next else { break };
            self.atomic += 1;
            let r = self.call_value(f, args, span);
            self.atomic -= 1;
            r?;
        }
        Ok(Value::None)
    }

    // ----- statements -----

    fn exec_block(&mut self, stmts: &[Stmt], env: &mut Vec<Option<Value>>) -> R<Flow> {
        for s in stmts {
            self.tick();
            match self.exec(s, env).map_err(|e| self.locate(e, s.span))? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    fn exec(&mut self, s: &Stmt, env: &mut Vec<Option<Value>>) -> R<Flow> {
        match &s.kind {
            StmtKind::Expr(e) => {
                self.eval(e, env)?;
            }
            StmtKind::Assign { targets, value } => {
                let v = self.eval(value, env)?;
                for t in targets {
                    self.assign(t, v.clone(), env)?;
                }
            }
            StmtKind::AugAssign { target, op, value } => {
                self.aug_assign(target, *op, value, env)?
            }
            StmtKind::If { cond, body, orelse } => {
                let branch = if self.eval(cond, env)?.truthy() {
                    body
                } else {
                    orelse
                };
                return self.exec_block(branch, env);
            }
            StmtKind::While { cond, body } => {
                while self.eval(cond, env)?.truthy() {
                    match self.exec_block(body, env)? {
                        Flow::Break => break,
                        Flow::Return(v) => return Ok(Flow::Return(v)),
                        Flow::Next | Flow::Continue => {}
                    }
                    self.tick();
                }
            }
            StmtKind::For { var, iter, body } => return self.exec_for(var, iter, body, env),
            StmtKind::Break => return Ok(Flow::Break),
            StmtKind::Continue => return Ok(Flow::Continue),
            StmtKind::Pass | StmtKind::Global(_) => {}
            StmtKind::Return(e) => {
                let v = match e {
                    Some(e) => self.eval(e, env)?,
                    None => Value::None,
                };
                return Ok(Flow::Return(v));
            }
            StmtKind::Del(target) => match target {
                Target::Index { obj, index } => {
                    let o = self.eval(obj, env)?;
                    let i = self.eval(index, env)?;
                    ops::del_item(&o, &i)?;
                }
                Target::Slice { obj, lo, hi } => {
                    let o = self.eval(obj, env)?;
                    let (lo, hi) = self.eval_bounds(lo.as_ref(), hi.as_ref(), env)?;
                    ops::set_slice(&o, &lo, &hi, None)?;
                }
                _ => return Err(exc(ErrorKind::SyntaxError, "invalid del target")),
            },
            StmtKind::FunctionDef { func, target } => {
                self.store(target, Value::Function(*func), env)?;
            }
            StmtKind::ClassDef {
                name,
                target,
                base,
                methods,
                attrs,
            } => {
                let base = match base {
                    None => None,
                    Some(b) => match self.eval(b, env)? {
                        Value::Class(c) => Some(c),
                        other => {
                            return Err(self.locate(
                                exc(
                                    ErrorKind::TypeError,
                                    format!(
                                        "a base class must be a class, not '{}'",
                                        other.type_name()
                                    ),
                                ),
                                b.span,
                            ))
                        }
                    },
                };
                let mut table: Vec<(String, Value)> = Vec::new();
                for (n, e) in attrs {
                    let v = self.eval(e, env)?;
                    table.retain(|(m, _)| m != n);
                    table.push((n.clone(), v));
                }
                for (n, f) in methods {
                    table.retain(|(m, _)| m != n);
                    table.push((n.clone(), Value::Function(*f)));
                }
                let class = ClassObj {
                    name: name.clone(),
                    base,
                    attrs: Mutex::new(table),
                };
                self.store(target, Value::Class(Arc::new(class)), env)?;
            }
            StmtKind::With { kind, body } => {
                let held = match kind {
                    WithKind::Atomic => None,
                    WithKind::Lock(e) => match self.eval(e, env)? {
                        Value::Lock(l) => Some(l),
                        other => {
                            return Err(self.locate(
                                exc(
                                    ErrorKind::TypeError,
                                    format!(
                                        "'{}' object does not support the context manager protocol",
                                        other.type_name()
                                    ),
                                ),
                                e.span,
                            ))
                        }
                    },
                };
                if let Some(l) = &held {
                    self.lock_acquire(l);
                }
                self.atomic += 1;
                let r = self.exec_block(body, env);
                self.atomic -= 1;
                if let Some(l) = &held {
                    self.lock_release(l);
                }
                return r;
            }
        }
        Ok(Flow::Next)
    }

    fn exec_for(
        &mut self,
        var: &Name,
        iter: &Expr,
        body: &[Stmt],
        env: &mut Vec<Option<Value>>,
    ) -> R<Flow> {
        let it = self.eval(iter, env)?;
        // Runs the body for one item; Some(flow) ends the loop.
        macro_rules! step {
            ($item:expr) => {{
                self.store(var, $item, env)?;
                match self.exec_block(body, env)? {
                    Flow::Break => break,
                    Flow::Return(v) => return Ok(Flow::Return(v)),
                    Flow::Next | Flow::Continue => {}
                }
                self.tick();
            }};
        }
        match &it {
            Value::Range(a, b, s) => {
                let n = range_len(*a, *b, *s);
                for k in 0..n {
                    step!(Value::Int(a + k * s));
                }
            }
            // Lists are walked by index, so items appended during the loop are visited (Python).
            Value::List(l) => {
                let mut i = 0;
                loop {
                    let item = lock(&l.items).get(i).cloned();
                    let Some(item) = item else { break };
                    i += 1;
                    step!(item);
                }
            }
            other => {
                let items = ops::iterate(other).map_err(|e| self.locate(e.into(), iter.span))?;
                for item in items {
                    step!(item);
                }
            }
        }
        Ok(Flow::Next)
    }

    fn store(&mut self, n: &Name, v: Value, env: &mut [Option<Value>]) -> R<()> {
        match n.slot {
            Slot::Local(i) => env[i] = Some(v),
            Slot::Global(g) => lock(&self.shared.globals)[g] = Some(v),
            Slot::Builtin(_) | Slot::Unresolved => {
                return Err(exc(
                    ErrorKind::SyntaxError,
                    format!("cannot assign to '{}'", n.name),
                ))
            }
        }
        Ok(())
    }

    fn load(&self, n: &Name, env: &[Option<Value>]) -> R<Value> {
        let found = match n.slot {
            Slot::Local(i) => {
                return env[i].clone().ok_or_else(|| {
                    exc(
                        ErrorKind::NameError,
                        format!(
                        "cannot access local variable '{}' where it is not associated with a value",
                        n.name
                    ),
                    )
                })
            }
            Slot::Global(g) => lock(&self.shared.globals)[g].clone(),
            Slot::Builtin(b) => Some(Value::Builtin(b)),
            Slot::Unresolved => None,
        };
        found
            .or_else(|| Builtin::from_name(&n.name).map(Value::Builtin))
            .ok_or_else(|| {
                exc(
                    ErrorKind::NameError,
                    format!("name '{}' is not defined", n.name),
                )
            })
    }

    fn assign(&mut self, t: &Target, v: Value, env: &mut Vec<Option<Value>>) -> R<()> {
        match t {
            Target::Name(n) => self.store(n, v, env),
            Target::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                Ok(ops::set_item(&o, &i, v).map_err(|e| self.locate(e.into(), obj.span))?)
            }
            Target::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_ref(), hi.as_ref(), env)?;
                let items = ops::iterate(&v)?;
                Ok(ops::set_slice(&o, &lo, &hi, Some(items))
                    .map_err(|e| self.locate(e.into(), obj.span))?)
            }
            Target::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                self.set_attr(&o, name, v)
                    .map_err(|e| self.locate(e, obj.span))
            }
        }
    }

    fn aug_assign(
        &mut self,
        target: &Target,
        op: BinOp,
        value: &Expr,
        env: &mut Vec<Option<Value>>,
    ) -> R<()> {
        match target {
            Target::Name(n) => {
                let cur = self.load(n, env).map_err(|e| self.locate(e, n.span))?;
                let rhs = self.eval(value, env)?;
                let new = inplace(op, &cur, &rhs)?;
                self.store(n, new, env)
            }
            Target::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                let cur = ops::get_item(&o, &i).map_err(|e| self.locate(e.into(), obj.span))?;
                let rhs = self.eval(value, env)?;
                let new = inplace(op, &cur, &rhs)?;
                Ok(ops::set_item(&o, &i, new)?)
            }
            Target::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_ref(), hi.as_ref(), env)?;
                let cur = ops::get_slice(&o, &lo, &hi)?;
                let rhs = self.eval(value, env)?;
                let new = inplace(op, &cur, &rhs)?;
                let items = ops::iterate(&new)?;
                Ok(ops::set_slice(&o, &lo, &hi, Some(items))?)
            }
            Target::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                let cur = self
                    .get_attr(&o, name)
                    .map_err(|e| self.locate(e, obj.span))?;
                let rhs = self.eval(value, env)?;
                let new = inplace(op, &cur, &rhs)?;
                self.set_attr(&o, name, new)
            }
        }
    }

    // ----- expressions -----

    fn eval_bounds(
        &mut self,
        lo: Option<&Expr>,
        hi: Option<&Expr>,
        env: &mut Vec<Option<Value>>,
    ) -> R<(Option<Value>, Option<Value>)> {
        let lo = match lo {
            Some(e) => Some(self.eval(e, env)?),
            None => None,
        };
        let hi = match hi {
            Some(e) => Some(self.eval(e, env)?),
            None => None,
        };
        Ok((lo, hi))
    }

    fn eval_args(&mut self, args: &[Expr], env: &mut Vec<Option<Value>>) -> R<Vec<Value>> {
        args.iter().map(|a| self.eval(a, env)).collect()
    }

    /// Evaluates `e`; an error without a position gets `e`'s.
    fn eval(&mut self, e: &Expr, env: &mut Vec<Option<Value>>) -> R<Value> {
        self.eval_inner(e, env).map_err(|x| self.locate(x, e.span))
    }

    fn eval_inner(&mut self, e: &Expr, env: &mut Vec<Option<Value>>) -> R<Value> {
        Ok(match &e.kind {
            ExprKind::Int(i) => Value::Int(*i),
            ExprKind::Float(f) => Value::Float(*f),
            ExprKind::Str(s) => Value::Str(s.clone()),
            ExprKind::Bool(b) => Value::Bool(*b),
            ExprKind::None => Value::None,
            ExprKind::Name(n) => self.load(n, env)?,
            ExprKind::List(items) => ListObj::new_value(self.eval_args(items, env)?),
            ExprKind::Dict(items) => {
                let mut map = Dict::default();
                for (k, v) in items {
                    let key = self.eval(k, env)?;
                    let val = self.eval(v, env)?;
                    let hk = Key::of(&key).map_err(|x| self.locate(x.into(), k.span))?;
                    map.insert(hk, key, val);
                }
                DictObj::new_value(map)
            }
            ExprKind::Unary(op, a) => {
                let v = self.eval(a, env)?;
                ops::unary(*op, &v)?
            }
            ExprKind::Binary(op, a, b) => {
                let x = self.eval(a, env)?;
                let y = self.eval(b, env)?;
                ops::binary(*op, &x, &y)?
            }
            ExprKind::And(a, b) => {
                let x = self.eval(a, env)?;
                if x.truthy() {
                    self.eval(b, env)?
                } else {
                    x
                }
            }
            ExprKind::Or(a, b) => {
                let x = self.eval(a, env)?;
                if x.truthy() {
                    x
                } else {
                    self.eval(b, env)?
                }
            }
            ExprKind::Not(a) => Value::Bool(!self.eval(a, env)?.truthy()),
            ExprKind::Compare { first, rest } => {
                let mut left = self.eval(first, env)?;
                for (op, r) in rest {
                    let right = self.eval(r, env)?;
                    if !compare(*op, &left, &right)? {
                        return Ok(Value::Bool(false));
                    }
                    left = right;
                }
                Value::Bool(true)
            }
            ExprKind::IfElse { cond, then, orelse } => {
                if self.eval(cond, env)?.truthy() {
                    self.eval(then, env)?
                } else {
                    self.eval(orelse, env)?
                }
            }
            ExprKind::Call { func, args } => {
                let f = self.eval(func, env)?;
                let args = self.eval_args(args, env)?;
                self.call_value(f, args, e.span)?
            }
            ExprKind::MethodCall { obj, name, args } => {
                let recv = self.eval(obj, env)?;
                let args = self.eval_args(args, env)?;
                self.call_method(recv, name, args, e.span)?
            }
            ExprKind::Attr { obj, name } => {
                let o = self.eval(obj, env)?;
                self.get_attr(&o, name)?
            }
            ExprKind::Index { obj, index } => {
                let o = self.eval(obj, env)?;
                let i = self.eval(index, env)?;
                ops::get_item(&o, &i)?
            }
            ExprKind::Slice { obj, lo, hi } => {
                let o = self.eval(obj, env)?;
                let (lo, hi) = self.eval_bounds(lo.as_deref(), hi.as_deref(), env)?;
                ops::get_slice(&o, &lo, &hi)?
            }
        })
    }

    // ----- attributes and calls -----

    fn get_attr(&mut self, o: &Value, name: &str) -> R<Value> {
        match o {
            Value::Instance(inst) => {
                let own = lock(&inst.attrs)
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, v)| v.clone());
                if let Some(v) = own {
                    return Ok(v);
                }
                match inst.class.lookup(name) {
                    Some(Value::Function(f)) => Ok(Value::BoundMethod(Arc::new((o.clone(), f)))),
                    Some(v) => Ok(v),
                    None => Err(exc(
                        ErrorKind::AttributeError,
                        format!("'{}' object has no attribute '{name}'", inst.class.name),
                    )),
                }
            }
            Value::Class(c) => c.lookup(name).ok_or_else(|| {
                exc(
                    ErrorKind::AttributeError,
                    format!("type object '{}' has no attribute '{name}'", c.name),
                )
            }),
            _ if methods::has_method(o, name) => Ok(Value::BuiltinMethod(Arc::new((
                o.clone(),
                name.to_string(),
            )))),
            _ => Err(exc(
                ErrorKind::AttributeError,
                format!("'{}' object has no attribute '{name}'", o.type_name()),
            )),
        }
    }

    fn set_attr(&mut self, o: &Value, name: &str, v: Value) -> R<()> {
        let attrs = match o {
            Value::Instance(inst) => &inst.attrs,
            Value::Class(c) => &c.attrs,
            _ => {
                return Err(exc(
                    ErrorKind::AttributeError,
                    format!("'{}' object has no attribute '{name}'", o.type_name()),
                ))
            }
        };
        let mut attrs = lock(attrs);
        match attrs.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = v,
            None => attrs.push((name.to_string(), v)),
        }
        Ok(())
    }

    fn call_method(&mut self, recv: Value, name: &str, args: Vec<Value>, span: Span) -> R<Value> {
        match &recv {
            Value::Instance(_) | Value::Class(_) => {
                let f = self.get_attr(&recv, name)?;
                self.call_value(f, args, span)
            }
            _ => {
                if let Some(f) = self.frames.last_mut() {
                    f.pos = span;
                }
                self.call_builtin_method(&recv, name, args, span)
            }
        }
    }

    /// Calls any callable value with `args`; `span` is the call's position.
    pub fn call_value(&mut self, f: Value, mut args: Vec<Value>, span: Span) -> R<Value> {
        if let Some(frame) = self.frames.last_mut() {
            frame.pos = span;
        }
        match f {
            Value::Function(id) => self.call_function(id, args),
            Value::BoundMethod(m) => {
                args.insert(0, m.0.clone());
                self.call_function(m.1, args)
            }
            Value::Class(c) => {
                let inst = Value::Instance(Arc::new(InstanceObj {
                    class: c.clone(),
                    attrs: Mutex::new(Vec::new()),
                }));
                match c.lookup("__init__") {
                    Some(init) => {
                        let init = match init {
                            Value::Function(id) => Value::BoundMethod(Arc::new((inst.clone(), id))),
                            other => other,
                        };
                        let r = self.call_value(init, args, span)?;
                        if !matches!(r, Value::None) {
                            return Err(exc(
                                ErrorKind::TypeError,
                                format!("__init__() should return None, not '{}'", r.type_name()),
                            ));
                        }
                    }
                    None if !args.is_empty() => {
                        return Err(exc(
                            ErrorKind::TypeError,
                            format!("{}() takes no arguments", c.name),
                        ))
                    }
                    None => {}
                }
                Ok(inst)
            }
            Value::Builtin(b) => self.call_builtin(b, args, span),
            Value::BuiltinMethod(m) => self.call_builtin_method(&m.0, &m.1, args, span),
            other => Err(exc(
                ErrorKind::TypeError,
                format!("'{}' object is not callable", other.type_name()),
            )),
        }
    }

    fn call_function(&mut self, id: FuncId, args: Vec<Value>) -> R<Value> {
        let program = self.shared.program.clone();
        let f = &program.functions[id];
        if args.len() != f.arity {
            return Err(exc(ErrorKind::TypeError, arity_message(f, args.len())));
        }
        if self.frames.len() >= MAX_CALL_DEPTH || stack::near_limit() {
            return Err(exc(
                ErrorKind::RecursionError,
                "maximum recursion depth exceeded",
            ));
        }
        let mut env: Vec<Option<Value>> = args.into_iter().map(Some).collect();
        env.resize(f.locals.len(), None);
        self.frames.push(Frame {
            name: f.qualname.clone(),
            pos: f.span,
        });
        let r = self.exec_block(&f.body, &mut env);
        self.frames.pop();
        match r? {
            Flow::Return(v) => Ok(v),
            _ => Ok(Value::None),
        }
    }
}

/// Python's message for a call of `f` with `given` arguments.
fn arity_message(f: &Function, given: usize) -> String {
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

/// `cur op= rhs`: lists are extended (`+=`) or repeated (`*=`) in place, as in Python.
fn inplace(op: BinOp, cur: &Value, rhs: &Value) -> R<Value> {
    if let Value::List(l) = cur {
        match (op, rhs) {
            (BinOp::Add, _) => {
                let more = ops::iterate(rhs)?;
                lock(&l.items).extend(more);
                return Ok(cur.clone());
            }
            (BinOp::Mul, Value::Int(_) | Value::Bool(_)) => {
                let items = l.snapshot();
                let count = ops::repeat_count(rhs, items.len())?;
                *lock(&l.items) = ops::repeat_items(&items, count);
                return Ok(cur.clone());
            }
            _ => {}
        }
    }
    Ok(ops::binary(op, cur, rhs)?)
}

/// One comparison `left op right`.
fn compare(op: CmpOp, left: &Value, right: &Value) -> R<bool> {
    Ok(match op {
        CmpOp::Eq => equal(left, right)?,
        CmpOp::Ne => !equal(left, right)?,
        CmpOp::Lt | CmpOp::Le | CmpOp::Gt | CmpOp::Ge => order(left, right, op)?,
        CmpOp::In => ops::contains(right, left)?,
        CmpOp::NotIn => !ops::contains(right, left)?,
        CmpOp::Is => identical(left, right),
        CmpOp::IsNot => !identical(left, right),
    })
}
