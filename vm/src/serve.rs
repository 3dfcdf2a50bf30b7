//! `serve(port, handler)`, `shutdown()` and `server_port()`: the HTTP server whose requests
//! run as parallel transactions (LANGUAGE.md, "Concurrency").
//!
//! The HTTP side (accepting, parsing, limits, writing answers, draining on shutdown) is the
//! `stmjit-serve` crate: it runs outside any transaction, on its own threads, and its request
//! queue is a plain Rust queue outside the STM heap, so dispatch is never a conflict point.
//! This module adds the transactional side: each worker thread has its own [`Driver`] (STM
//! handle, shadow stack, runtime) and runs each handler call as ONE transaction
//! (`atomic_depth = 1`: no boundary inside), on whatever segment is free, retried from the
//! start while it aborts. The request object is built and the handler's result read inside
//! that transaction; the answer is written after it committed.
//!
//! The thread that called `serve` commits its transaction first and waits outside any
//! transaction (as `join` does), so it holds no segment and blocks no one; when the server
//! has stopped it goes on in a new (inevitable) transaction.

use super::threads::{commit_for_wait, Driver};
use super::{rt_of, ClassInfo, Ctx, Mode, ProgramInfo, Runtime, ERR, R, UNBOUND};
use crate::objects::{ClassObj, InstanceObj};
use std::mem::offset_of;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use stmjit_lang::diag::{render_runtime, ErrorKind};
use stmjit_runtime::value::{self, Word, NONE};
use stmjit_serve::{Limits, Request, Response, Server, ShutdownHandle};

/// The request attributes, in slot order of the request class.
const FIELDS: [&str; 5] = ["method", "path", "query", "headers", "body"];

/// Program-wide state of the servers: which run (for `shutdown()`), the last port (for
/// `server_port()`), and the figures `--stats` prints. Kept outside the STM heap: these are
/// effects on the world, not program data.
#[derive(Default)]
pub struct ServeState {
    servers: Mutex<Servers>,
    /// Signalled when a server starts listening (`server_port()` may wait for it).
    started: Condvar,
    /// Whether `serve` was ever called (`--stats` prints the request lines only then).
    pub used: AtomicBool,
    /// Handler calls that committed and were answered (errors included).
    pub served: AtomicU64,
    /// Handler calls that raised or returned something that is not an answer (500).
    pub errors: AtomicU64,
    /// Handler transactions rolled back and run again (conflicts, injected aborts).
    pub retried: AtomicU64,
}

#[derive(Default)]
struct Servers {
    /// Servers now running, in start order.
    running: Vec<ShutdownHandle>,
    /// Port of the last server that started listening.
    last_port: Option<u16>,
    /// `shutdown()` ran while no server ran: the next one stops at once (a thread that
    /// calls `shutdown()` just before `serve` starts must not be lost).
    pending_shutdown: bool,
}

impl ServeState {
    /// Registers a server that listens now; applies a shutdown that came before it.
    fn start(&self, h: &ShutdownHandle) {
        let mut s = self.servers.lock().unwrap();
        s.running.push(h.clone());
        s.last_port = Some(h.port());
        if std::mem::take(&mut s.pending_shutdown) {
            h.shutdown();
        }
        self.started.notify_all();
    }

    /// Unregisters a server whose `run` returned.
    fn stop(&self, port: u16) {
        let mut s = self.servers.lock().unwrap();
        s.running.retain(|h| h.port() != port);
    }

    /// Stops every running server (or the next one to start).
    fn shutdown(&self) {
        let mut s = self.servers.lock().unwrap();
        if s.running.is_empty() {
            s.pending_shutdown = true;
        }
        for h in &s.running {
            h.shutdown();
        }
    }

    fn port(&self) -> Option<u16> {
        self.servers.lock().unwrap().last_port
    }

    fn wait_port(&self) -> u16 {
        let mut s = self.servers.lock().unwrap();
        loop {
            if let Some(p) = s.last_port {
                return p;
            }
            s = self.started.wait(s).unwrap();
        }
    }
}

/// What the worker threads of one `serve` call share (plain words: the handler and the
/// request class are committed old objects, registered as roots while the server runs).
struct Served {
    info: Arc<ProgramInfo>,
    handler: Word,
    class: Word,
    /// `(slot, field index)` of the request attributes the program can name.
    slots: Vec<(usize, usize)>,
}

fn arity(rt: &mut Runtime, name: &str, want: usize, got: usize) -> Word {
    let plural = if want == 1 { "" } else { "s" };
    let msg = format!("{name}() takes exactly {want} argument{plural} ({got} given)");
    rt.raise(ErrorKind::TypeError, msg)
}

/// `serve(port, handler)`: listens on 127.0.0.1:`port`, runs `handler(req)` for each request
/// as one transaction on all segments, returns None once `shutdown()` was called and the
/// requests in flight were answered.
pub(crate) fn serve(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    if args.len() != 2 {
        return arity(rt, "serve", 2, args.len());
    }
    let (port, handler) = (args[0], args[1]);
    if !value::is_int(port) {
        let msg = format!("serve(): port must be an int, not '{}'", rt.type_name(port));
        return rt.raise(ErrorKind::TypeError, msg);
    }
    if !(0..=65535).contains(&value::to_int(port)) {
        let msg = format!(
            "serve(): port must be 0..65535, not {}",
            value::to_int(port)
        );
        return rt.raise(ErrorKind::ValueError, msg);
    }
    let port = value::to_int(port) as u16;
    let t = rt.types;
    if ![t.function, t.bound_method, t.class, t.builtin]
        .iter()
        .any(|&ty| rt.is(handler, ty))
    {
        let msg = format!(
            "serve(): the handler must be callable, not '{}'",
            rt.type_name(handler)
        );
        return rt.raise(ErrorKind::TypeError, msg);
    }
    // SAFETY: helpers receive the live context of their thread.
    if unsafe { (*ctx).atomic_depth } > 0 || rt.tx.pending_slot.is_null() {
        // Serving takes many transactions: not inside one that cannot end.
        return rt.raise(
            ErrorKind::TypeError,
            "serve() cannot run inside an atomic block, a lock, a queued call or a handler",
        );
    }
    rt.info.serve.used.store(true, Relaxed);
    let mark = rt.mark();
    let hh = rt.root(handler);
    let class = match request_class(rt) {
        Ok(c) => c,
        Err(e) => {
            rt.release(mark);
            return rt.unwind(e);
        }
    };
    let hc = rt.root(class);
    // Commit (threads spawned so far start), then wait outside any transaction.
    if commit_for_wait(rt, ctx).is_err() {
        rt.release(mark);
        return ERR;
    }
    let (handler, class) = (rt.get(hh), rt.get(hc));
    for w in [handler, class] {
        rt.stm.add_root(w);
    }
    let result = run_server(rt, port, handler, class);
    for w in [handler, class] {
        rt.stm.remove_root(w);
    }
    rt.begin_without_restart_point(ctx);
    rt.release(mark);
    match result {
        Ok(()) => NONE,
        Err(msg) => rt.raise(ErrorKind::ValueError, msg),
    }
}

/// The class of request objects (named `Request`, one attribute slot per field), created
/// in the running transaction.
fn request_class(rt: &mut Runtime) -> R<Word> {
    let m = rt.mark();
    let attrs = rt.new_dict()?;
    let ra = rt.root(attrs);
    let c = rt.alloc(rt.types.class, std::mem::size_of::<ClassObj>() as u64)?;
    // Only attributes the program names have a name id; the others cannot be read.
    let shape: Vec<u32> = FIELDS.iter().filter_map(|f| rt.info.names.id(f)).collect();
    let id = {
        let mut classes = rt.info.classes.write();
        classes.push(ClassInfo {
            name: "Request".into(),
            shape,
            methods: Vec::new(),
        });
        classes.len() - 1
    };
    rt.st(c, offset_of!(ClassObj, class_id) as u64, id as u64);
    rt.st(c, offset_of!(ClassObj, base) as u64, NONE);
    rt.st(c, offset_of!(ClassObj, attrs) as u64, rt.get(ra));
    rt.release(m);
    Ok(c)
}

/// Binds and serves until shutdown (outside any transaction). `Err`: the message of the
/// ValueError `serve` raises.
fn run_server(rt: &mut Runtime, port: u16, handler: Word, class: Word) -> Result<(), String> {
    let server = Server::bind(port, Limits::default())
        .map_err(|e| format!("serve(): cannot listen on 127.0.0.1:{port}: {e}"))?
        .with_stack_size(stmjit_lang::stack::BIG_STACK);
    let stopper = server.shutdown_handle();
    let id = rt.ld(class, offset_of!(ClassObj, class_id) as u64) as usize;
    let slots = {
        let classes = rt.info.classes.read();
        FIELDS
            .iter()
            .enumerate()
            .filter_map(|(i, f)| {
                let name = rt.info.names.id(f)?;
                let slot = classes[id].shape.iter().position(|&n| n == name)?;
                Some((slot, i))
            })
            .collect()
    };
    let served = Served {
        info: rt.info.clone(),
        handler,
        class,
        slots,
    };
    // One worker per segment: each handler call needs one. With --gil one segment, one
    // transaction at a time: one worker, as a GIL server would run its handlers.
    let workers = match rt.mode {
        Mode::Gil => 1,
        Mode::Stm => rt.stm.num_segments(),
    };
    let state = &rt.info.serve;
    state.start(&stopper);
    let r = server.run(workers, |_| {
        stmjit_lang::stack::mark_thread(stmjit_lang::stack::BIG_STACK);
        let mut d = Driver::new(served.info.clone());
        let served = &served;
        move |req: Request| handle(&mut d, served, &req)
    });
    state.stop(stopper.port());
    r.map_err(|e| format!("serve(): the server stopped: {e}"))
}

/// What one handler transaction produced.
enum Outcome {
    /// The handler's answer.
    Answer(Response),
    /// The handler raised (the error is pending in the runtime).
    Raised,
    /// The handler returned something that is not an answer: this message.
    BadResult(String),
}

/// Runs the handler on `req` as one transaction, retried until it commits, and makes the
/// answer. An error answers 500 with its text and is printed to stderr; the effects of the
/// handler before the error stand (the transaction commits), as in a GIL server.
fn handle(d: &mut Driver, sv: &Served, req: &Request) -> Response {
    let ctx: *mut Ctx = &mut *d.ctx;
    loop {
        let rt = rt_of(ctx);
        rt.error = None;
        rt.trace.clear();
        rt.begin(ctx);
        {
            let c = &mut *d.ctx;
            c.depth = 0;
            c.txn_depth = 0;
            c.atomic_depth = 1;
        }
        let mark = rt.mark();
        let outcome = call_handler(ctx, sv, req);
        let rt = rt_of(ctx);
        rt.release(mark);
        if rt.tx.aborting {
            sv.info.serve.retried.fetch_add(1, Relaxed);
            continue;
        }
        // Read the error before the commit (the error's transaction is inevitable: its
        // commit cannot fail); report it only once committed.
        let answer = match outcome {
            Outcome::Answer(r) => Ok(r),
            Outcome::Raised => {
                let (kind, msg) = rt.error.take().unwrap_or((
                    ErrorKind::TypeError,
                    "internal error without a message".into(),
                ));
                let trace = std::mem::take(&mut rt.trace);
                Err((
                    format!("{kind}: {msg}\n"),
                    render_runtime(kind, &msg, &trace, &rt.info.file),
                ))
            }
            Outcome::BadResult(m) => Err((
                format!("TypeError: {m}\n"),
                render_runtime(ErrorKind::TypeError, &m, &[], &rt.info.file),
            )),
        };
        if rt.commit().is_err() {
            sv.info.serve.retried.fetch_add(1, Relaxed);
            continue;
        }
        // Threads the committed handler transaction spawned start now.
        d.run_pending();
        let state = &sv.info.serve;
        state.served.fetch_add(1, Relaxed);
        return answer.unwrap_or_else(|(text, report)| {
            state.errors.fetch_add(1, Relaxed);
            use std::io::Write;
            let _ = std::io::stderr().lock().write_all(report.as_bytes());
            Response::text(500, text)
        });
    }
}

/// Inside the handler transaction: builds the request object, calls the handler, reads
/// its result into an answer.
fn call_handler(ctx: *mut Ctx, sv: &Served, req: &Request) -> Outcome {
    let rt = rt_of(ctx);
    let obj = match new_request(rt, sv, req) {
        Ok(o) => o,
        Err(e) => {
            rt.unwind(e);
            return Outcome::Raised;
        }
    };
    let r = super::calls::call_value(ctx, sv.handler, &[obj]);
    if r == ERR {
        return Outcome::Raised;
    }
    match answer_of(rt_of(ctx), r) {
        Ok(resp) => Outcome::Answer(resp),
        Err(m) => Outcome::BadResult(m),
    }
}

/// A new request object: an instance of the request class with its attribute slots filled.
fn new_request(rt: &mut Runtime, sv: &Served, req: &Request) -> R<Word> {
    let m = rt.mark();
    let inst = rt.alloc(rt.types.instance, std::mem::size_of::<InstanceObj>() as u64)?;
    rt.st(inst, offset_of!(InstanceObj, class) as u64, sv.class);
    let ri = rt.root(inst);
    let n = sv.slots.iter().map(|&(s, _)| s + 1).max().unwrap_or(0) as u64;
    if n > 0 {
        let slots = rt.new_array(false, n, UNBOUND)?;
        // Allocating the slots may have promoted the instance: barrier first.
        let inst = rt.get(ri);
        rt.wb(inst)?;
        rt.st(inst, offset_of!(InstanceObj, slots) as u64, slots);
    }
    for &(slot, field) in &sv.slots {
        let v = match field {
            0 => rt.new_str(&req.method)?,
            1 => rt.new_str(&req.path)?,
            2 => str_dict(rt, req.query.iter().map(|(k, v)| (k.clone(), v.clone())))?,
            3 => str_dict(rt, joined_headers(&req.headers).into_iter())?,
            _ => rt.new_str(&req.body)?,
        };
        rt.set_inst_slot(rt.get(ri), slot, v)?;
    }
    let inst = rt.get(ri);
    rt.release(m);
    Ok(inst)
}

/// Header pairs with repeated names joined by `", "` (what HTTP says they mean), first
/// occurrence order.
fn joined_headers(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::with_capacity(headers.len());
    for (k, v) in headers {
        match out.iter_mut().find(|(n, _)| n == k) {
            Some((_, old)) => {
                old.push_str(", ");
                old.push_str(v);
            }
            None => out.push((k.clone(), v.clone())),
        }
    }
    out
}

/// A new dict of str to str (a repeated key keeps its last value).
fn str_dict(rt: &mut Runtime, pairs: impl Iterator<Item = (String, String)>) -> R<Word> {
    let m = rt.mark();
    let d = rt.new_dict()?;
    let rd = rt.root(d);
    for (k, v) in pairs {
        let kw = rt.new_str(&k)?;
        let rk = rt.root(kw);
        let vw = rt.new_str(&v)?;
        rt.dict_set(rt.get(rd), rt.get(rk), vw)?;
    }
    let d = rt.get(rd);
    rt.release(m);
    Ok(d)
}

/// The answer a handler result stands for: a str (200, text/plain), or a list
/// `[status, content_type, body]`; `Err` names what is wrong otherwise.
fn answer_of(rt: &mut Runtime, r: Word) -> Result<Response, String> {
    let t = rt.types;
    if rt.is(r, t.str) {
        return Ok(Response::text(200, rt.str_of(r)));
    }
    let expected = "a str or a list [status, content_type, body]";
    if !rt.is(r, t.list) || rt.list_len(r) != 3 {
        return Err(format!(
            "the handler returned {}, not {expected}",
            describe(rt, r)
        ));
    }
    let (status, ctype, body) = (rt.list_get(r, 0), rt.list_get(r, 1), rt.list_get(r, 2));
    let status = if value::is_int(status) {
        value::to_int(status)
    } else {
        -1
    };
    // No 1xx: an interim status sent as the answer would shift every later answer.
    if !(200..=999).contains(&status) {
        return Err(format!(
            "the handler's status must be an int in 200..999, not {}",
            rt.repr(rt.list_get(r, 0))
                .unwrap_or_else(|_| rt.type_name(rt.list_get(r, 0)))
        ));
    }
    if !rt.is(ctype, t.str) || !rt.is(body, t.str) {
        return Err(format!(
            "the handler's content type and body must be strs, not '{}' and '{}'",
            rt.type_name(ctype),
            rt.type_name(body)
        ));
    }
    let resp = Response {
        status: status as u16,
        content_type: rt.str_of(ctype).to_string(),
        body: rt.str_of(body).as_bytes().to_vec(),
    };
    // A CR or LF in the content type would write a header of the handler's own.
    resp.check()
        .map_err(|e| format!("the handler's answer cannot be sent: {e}"))?;
    Ok(resp)
}

fn describe(rt: &Runtime, w: Word) -> String {
    if rt.is(w, rt.types.list) {
        format!("a list of {} items", rt.list_len(w))
    } else {
        format!("'{}'", rt.type_name(w))
    }
}

/// `shutdown()`: every running server stops taking requests and its `serve` returns once
/// the requests in flight are answered (or the next server to start stops at once). An
/// effect on the world, so its transaction is made inevitable first: it cannot be rolled
/// back after the server was told.
pub(crate) fn shutdown(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    if !args.is_empty() {
        return arity(rt, "shutdown", 0, args.len());
    }
    if rt.make_inevitable().is_err() {
        return ERR;
    }
    rt.info.serve.shutdown();
    NONE
}

/// `server_port()`: the port of the running (or last) server. Before any server started it
/// waits for one, outside any transaction (as `join` does); inside a transaction that cannot
/// end, it raises instead.
pub(crate) fn server_port(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    if !args.is_empty() {
        return arity(rt, "server_port", 0, args.len());
    }
    let port = match rt.info.serve.port() {
        Some(p) => p,
        // SAFETY: helpers receive the live context of their thread.
        None if unsafe { (*ctx).atomic_depth } > 0 || rt.tx.pending_slot.is_null() => {
            return rt.raise(
                ErrorKind::ValueError,
                "server_port(): no server has started",
            );
        }
        None => {
            if commit_for_wait(rt, ctx).is_err() {
                return ERR;
            }
            let p = rt.info.serve.wait_port();
            rt.begin_without_restart_point(ctx);
            p
        }
    };
    value::from_int(i64::from(port)).expect("ports are small ints")
}

/// The `--stats` lines of the servers (empty when the program never called `serve`).
pub fn stats_lines(info: &ProgramInfo) -> String {
    let s = &info.serve;
    if !s.used.load(Relaxed) {
        return String::new();
    }
    format!(
        "  requests served: {} (handler errors {}, handler transactions retried {})\n",
        s.served.load(Relaxed),
        s.errors.load(Relaxed),
        s.retried.load(Relaxed)
    )
}
