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
//!   global lock even inside such a block. Known difference: there the joined thread's
//!   effects appear in the middle of the block, which LANGUAGE.md's serializability rules
//!   out; the JIT instead aborts the block and runs it again once the thread has ended
//!   (`tests/concurrency/join_in_atomic.lang`), which a tree-walker cannot undo, or, in a
//!   block that raised before the join and so cannot restart, raises RuntimeError
//!   (`tests/concurrency/join_in_inevitable.lang`). Joining a
//!   thread spawned in the same block is the same in both: the block's atomicity ends at
//!   the join (`tests/concurrency/join_spawned_in_atomic.lang`).
//! - Calls nest at most [`MAX_CALL_DEPTH`] deep (Python's default limit); data nests at most
//!   [`MAX_DATA_DEPTH`] deep for `str`, `==`, `<`. Beyond: `RecursionError`.
//! - Iterating a dict walks a snapshot of its keys and raises `RuntimeError` at the next
//!   step once the dict's size changed (as Python); iterating a list walks it by index,
//!   seeing appended items (as Python).
//! - The main thread waits for unjoined threads at the end, as Python does. An uncaught
//!   exception ends its thread only: `join()` raises it again in the joiner; the first one
//!   that no `join()` raised is reported at the end of the program (status 1).
//! - `serve`, `shutdown` and `server_port` raise a `TypeError` (not supported yet).

mod builtins;
mod eval;
mod exec;
pub mod gil;
mod methods;
mod raise;
mod special;
mod threads;

use crate::ast::*;
use crate::diag::{render_runtime, render_thread_origin, ErrorKind, Span, TraceEntry};
use crate::ops;
use crate::stack;
use crate::value::*;
use std::io::{IsTerminal, Write};
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
    /// The trace holds only the frames of a special method's call (`special.rs`): the
    /// frames around the operation that called it are still to be appended.
    pub open: bool,
    /// The exception object: what `raise` raised, or made from `kind` and `msg` once a
    /// handler looked at it (`raise.rs`).
    pub obj: Option<Value>,
}

/// Result of interpreter operations.
pub type R<T> = Result<T, Box<Exc>>;

/// An unlocated error of `kind`.
pub fn exc(kind: ErrorKind, msg: impl Into<String>) -> Box<Exc> {
    Box::new(Exc {
        kind,
        msg: msg.into(),
        trace: Vec::new(),
        open: false,
        obj: None,
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
    /// Output goes straight out after each `print` (stdout is a terminal, as Python does).
    line_buffered: bool,
    pub gil: gil::Gil,
    threads: Mutex<Vec<Arc<ThreadObj>>>,
    /// The spawned threads that ended with an uncaught exception, in the order they ended.
    failed: Mutex<Vec<Arc<ThreadObj>>>,
    /// The thread each OS thread is waiting for in `join()`: a join that would close a cycle
    /// of joins raises instead of waiting forever.
    joining: Mutex<std::collections::HashMap<std::thread::ThreadId, Arc<ThreadObj>>>,
    start: Instant,
    /// Ends the process when a spawned thread panics (an interpreter bug, see
    /// [`crate::Exit`]).
    exit: crate::Exit,
    /// The built-in exception classes, by index in [`crate::exceptions::CLASSES`].
    pub exc_classes: Vec<Arc<ClassObj>>,
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
            out.len() > OUT_FLUSH || self.line_buffered
        };
        if full {
            self.flush_out();
        }
    }

    /// Prints `e`, named `name` with `msg` ([`Interp::exc_text`]), as LANGUAGE.md requires
    /// (after the program's pending output).
    pub fn report(&self, e: &Exc, (name, msg): (String, String)) {
        self.flush_out();
        let text = render_runtime(name, &msg, &e.trace, &self.file);
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }

    /// [`Shared::report`] for an error that ended a thread spawned at `spawned_at`.
    pub fn report_in_thread(&self, e: &Exc, (name, msg): (String, String), spawned_at: Span) {
        self.flush_out();
        let mut text = render_runtime(name, &msg, &e.trace, &self.file);
        text.push_str(&render_thread_origin(&self.file, spawned_at));
        let _ = std::io::stderr().lock().write_all(text.as_bytes());
    }
}

/// One active call: the function's name for traces and the position it is executing (updated
/// at each call it makes).
#[derive(Clone)]
struct Frame {
    name: String,
    pos: Span,
    /// The function running (None: the module).
    func: Option<FuncId>,
}

/// The per-thread interpreter.
pub struct Interp {
    shared: Arc<Shared>,
    frames: Vec<Frame>,
    /// Nesting of `with atomic:` / `with lock:` / queued calls: no thread switch while > 0.
    atomic: usize,
    /// The exceptions of the `except` clauses running (innermost last): a bare `raise`
    /// re-raises the last.
    handling: Vec<Exc>,
    ticks: u32,
}

/// Runs `program` to completion on the current thread (which should have a big stack, see
/// [`crate::stack::on_big_stack`]) and returns the exit status: 0, or 1 after printing a
/// runtime error. Waits for spawned threads still running at the end, as Python does. A
/// spawned thread's exception that no `join()` raised is reported then (status 1).
pub fn run_program(program: Program, file: &str, args: Vec<String>, exit: crate::Exit) -> i32 {
    let globals = vec![None; program.globals.len()];
    let shared = Arc::new(Shared {
        program: Arc::new(program),
        file: file.to_string(),
        args,
        globals: Mutex::new(globals),
        out: Mutex::new(Vec::new()),
        line_buffered: std::io::stdout().is_terminal(),
        gil: gil::Gil::default(),
        threads: Mutex::new(Vec::new()),
        failed: Mutex::new(Vec::new()),
        joining: Mutex::new(std::collections::HashMap::new()),
        start: Instant::now(),
        exit,
        exc_classes: crate::exceptions::new_classes(),
    });
    shared.gil.acquire();
    let mut it = Interp::new(shared.clone());
    it.frames.push(Frame {
        name: "<module>".to_string(),
        pos: Span::default(),
        func: None,
    });
    let program = shared.program.clone();
    let result = it.exec_block(&program.body, &mut Vec::new());
    if let Err(e) = result {
        // The global lock stays held: no other thread prints after the error.
        let text = it.exc_text(&e);
        shared.report(&e, text);
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
    if let Some(f) = it.unjoined_failure() {
        shared.report_in_thread(&f.exc, f.text, f.spawned_at);
        return 1;
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
            handling: Vec::new(),
            ticks: 0,
        }
    }

    // ----- errors -----

    /// Fills in the trace of `e` if it has none yet: `span` in the current function, then the
    /// call sites of the active callers.
    fn locate(&self, mut e: Box<Exc>, span: Span) -> Box<Exc> {
        if e.trace.is_empty() || e.open {
            e.open = false;
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
        self.with_special(|| v.to_str(&self.func_name()))
    }
}
