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
use super::{rt_of, ClassInfo, Ctx, Mode, ProgramInfo, Runtime, ERR, R};
use crate::objects::ClassObj;
use std::mem::offset_of;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use stmjit_lang::diag::{render_runtime, ErrorKind};
use stmjit_runtime::value::{self, Word, NONE};
use stmjit_serve::{Latencies, Limits, Request, Response, RunError, Server, ShutdownHandle};

/// The request attributes, in slot order of the request class.
const FIELDS: [&str; 6] = ["method", "path", "query", "headers", "body", "query_all"];

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
    /// Latencies of the answered requests (head taken to answer made), for `--stats`.
    pub latency: Latencies,
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

/// `serve(port, handler, options=None)`: listens on 127.0.0.1:`port` (or the `host` of
/// `options`), runs `handler(req)` for each request as one transaction on all segments,
/// returns None once `shutdown()` was called and the requests in flight were answered.
pub(crate) fn serve(ctx: *mut Ctx, args: &[Word]) -> Word {
    let rt = rt_of(ctx);
    if !(2..=3).contains(&args.len()) {
        let msg = format!("serve() takes 2 or 3 arguments ({} given)", args.len());
        return rt.raise(ErrorKind::TypeError, msg);
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
    let (host, limits) = match args.get(2) {
        Some(&o) if o != NONE => match options(rt, o) {
            Ok(x) => x,
            Err((kind, msg)) => return rt.raise(kind, msg),
        },
        _ => (IpAddr::V4(Ipv4Addr::LOCALHOST), Limits::default()),
    };
    let addr = SocketAddr::new(host, port);
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
    let result = run_server(rt, addr, limits, handler, class);
    for w in [handler, class] {
        rt.stm.remove_root(w);
    }
    rt.begin_without_restart_point(ctx);
    rt.release(mark);
    match result {
        Ok(()) => NONE,
        Err((kind, msg)) => rt.raise(kind, msg),
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
            ..ClassInfo::default()
        });
        classes.len() - 1
    };
    rt.st(c, offset_of!(ClassObj, class_id) as u64, id as u64);
    rt.st(c, offset_of!(ClassObj, base) as u64, NONE);
    rt.st(c, offset_of!(ClassObj, attrs) as u64, rt.get(ra));
    rt.release(m);
    Ok(c)
}

/// The names `serve`'s options dict may use, for the error that names an unknown one.
const OPTIONS: &str = "host, max_body, max_header_bytes, max_connections, max_queue, \
                       header_timeout, body_timeout, write_timeout, shutdown_timeout";

/// `serve`'s options dict: the address to bind and the limits (LANGUAGE.md, "Concurrency").
/// Sizes and counts are ints >= 1, timeouts are seconds (int or float) > 0.
fn options(rt: &Runtime, d: Word) -> Result<(IpAddr, Limits), (ErrorKind, String)> {
    let t = rt.types;
    if !rt.is(d, t.dict) {
        let msg = format!("serve(): options must be a dict, not '{}'", rt.type_name(d));
        return Err((ErrorKind::TypeError, msg));
    }
    let mut host = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut l = Limits::default();
    for (k, v) in rt.dict_items(d) {
        if !rt.is(k, t.str) {
            let msg = format!("serve(): option names are strs, not '{}'", rt.type_name(k));
            return Err((ErrorKind::TypeError, msg));
        }
        let name = rt.str_of(k).to_string();
        let count = || -> Result<usize, (ErrorKind, String)> {
            if !value::is_int(v) {
                let msg = format!(
                    "serve(): option '{name}' must be an int, not '{}'",
                    rt.type_name(v)
                );
                return Err((ErrorKind::TypeError, msg));
            }
            match usize::try_from(value::to_int(v)) {
                Ok(n) if n >= 1 => Ok(n),
                _ => Err((
                    ErrorKind::ValueError,
                    format!(
                        "serve(): option '{name}' must be at least 1, not {}",
                        value::to_int(v)
                    ),
                )),
            }
        };
        let seconds = || -> Result<Duration, (ErrorKind, String)> {
            let s = if value::is_int(v) {
                value::to_int(v) as f64
            } else if rt.is(v, t.float) {
                rt.float_of(v)
            } else {
                let msg = format!(
                    "serve(): option '{name}' must be a number of seconds, not '{}'",
                    rt.type_name(v)
                );
                return Err((ErrorKind::TypeError, msg));
            };
            if !(s > 0.0 && s <= 1e9) {
                let msg = format!("serve(): option '{name}' must be in (0, 1e9] seconds, not {s}");
                return Err((ErrorKind::ValueError, msg));
            }
            Ok(Duration::from_secs_f64(s))
        };
        match name.as_str() {
            "host" => {
                if !rt.is(v, t.str) {
                    let msg = format!(
                        "serve(): option 'host' must be a str, not '{}'",
                        rt.type_name(v)
                    );
                    return Err((ErrorKind::TypeError, msg));
                }
                let h = rt.str_of(v);
                host = if h == "localhost" {
                    IpAddr::V4(Ipv4Addr::LOCALHOST)
                } else {
                    h.parse().map_err(|_| {
                        (
                            ErrorKind::ValueError,
                            format!("serve(): option 'host' must be an IP address, not {h:?}"),
                        )
                    })?
                };
            }
            "max_body" => l.max_body = count()?,
            "max_header_bytes" => l.max_header_bytes = count()?,
            "max_connections" => l.max_connections = count()?,
            "max_queue" => l.max_queue = count()?,
            "header_timeout" => l.header_timeout = seconds()?,
            "body_timeout" => l.body_timeout = seconds()?,
            "write_timeout" => l.write_timeout = seconds()?,
            "shutdown_timeout" => l.shutdown_timeout = seconds()?,
            _ => {
                let msg = format!("serve(): unknown option '{name}' (the options are {OPTIONS})");
                return Err((ErrorKind::ValueError, msg));
            }
        }
    }
    Ok((host, l))
}

/// Binds and serves until shutdown (outside any transaction). `Err`: the message of the
/// ValueError `serve` raises.
fn run_server(
    rt: &mut Runtime,
    addr: SocketAddr,
    limits: Limits,
    handler: Word,
    class: Word,
) -> Result<(), (ErrorKind, String)> {
    let info = rt.info.clone();
    let server = Server::bind_addr(addr, limits)
        .map_err(|e| {
            let msg = format!("serve(): cannot listen on {addr}: {e}");
            (ErrorKind::ValueError, msg)
        })?
        .with_stack_size(stmjit_lang::stack::BIG_STACK)
        .on_answer(move |d| info.serve.latency.record(d));
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
    let site = super::threads::current_site(rt);
    let r = server.run(workers, |_| {
        stmjit_lang::stack::mark_thread(stmjit_lang::stack::BIG_STACK);
        // No room for a worker's shadow stack: the MemoryError of a thread that cannot
        // start, at `serve()`, never a panic.
        let mut d = Driver::try_new(served.info.clone())
            .unwrap_or_else(|e| super::threads::spawn_failed(&served.info, site, &e));
        let served = &served;
        move |req: Request| handle(&mut d, served, &req)
    });
    state.stop(stopper.port());
    r.map_err(|e| {
        // No room for one more thread (its stack) is a MemoryError, as at `spawn`.
        let kind = match e {
            RunError::WorkerStart(_) => ErrorKind::MemoryError,
            RunError::Io(_) => ErrorKind::ValueError,
        };
        (kind, format!("serve(): the server stopped: {e}"))
    })
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
        rt.clear_error();
        rt.exc_stash.clear();
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
        // Read the error before the commit, report it only once committed (if the commit
        // aborts, the error may have come from a stale view: the handler runs again).
        let answer = match outcome {
            Outcome::Answer(r) => Ok(r),
            Outcome::Raised => {
                let (kind, msg) = rt.error_text();
                rt.error = None;
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
        // The worker goes back to waiting for a request: a thread waiting for a segment may
        // have this one meanwhile.
        d.rt.detach();
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
    let n = sv.slots.iter().map(|&(s, _)| s + 1).max().unwrap_or(0) as u64;
    let inst = rt.new_instance_obj(sv.class, n)?;
    let ri = rt.root(inst);
    for &(slot, field) in &sv.slots {
        let v = match field {
            0 => rt.new_str(&req.method)?,
            1 => rt.new_str(&req.path)?,
            2 => str_dict(rt, req.query.iter().map(|(k, v)| (k.clone(), v.clone())))?,
            3 => str_dict(rt, joined_headers(&req.headers).into_iter())?,
            4 => rt.new_str(&req.body)?,
            _ => all_values(rt, &req.query)?,
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

/// A new dict of str to the list of all its values, in order (`req.query_all`).
fn all_values(rt: &mut Runtime, pairs: &[(String, String)]) -> R<Word> {
    let m = rt.mark();
    let d = rt.new_dict()?;
    let rd = rt.root(d);
    for (k, v) in pairs {
        let kw = rt.new_str(k)?;
        let rk = rt.root(kw);
        let list = match rt.dict_get(rt.get(rd), rt.get(rk))? {
            Some(l) => l,
            None => {
                let l = rt.new_list(&[])?;
                let rl = rt.root(l);
                rt.dict_set(rt.get(rd), rt.get(rk), l)?;
                rt.get(rl)
            }
        };
        let rl = rt.root(list);
        let vw = rt.new_str(v)?;
        rt.list_push(rt.get(rl), vw)?;
    }
    let d = rt.get(rd);
    rt.release(m);
    Ok(d)
}

/// The items of a list or a tuple (the forms an answer and a header pair may take: `return
/// 200, "text/plain", body` makes a tuple); None for anything else.
fn seq_items(rt: &Runtime, w: Word) -> Option<Vec<Word>> {
    let t = rt.types;
    if rt.is(w, t.list) {
        Some((0..rt.list_len(w)).map(|i| rt.list_get(w, i)).collect())
    } else if rt.is(w, t.tuple) {
        Some(rt.tuple_items(w))
    } else {
        None
    }
}

/// The answer a handler result stands for: a str (200, text/plain), or a list or tuple
/// `[status, content_type, body]` or `[status, headers, body]` where `headers` is a list of
/// `[name, value]` pairs (lists or tuples) or a dict of name to value (strs); `Err` names
/// what is wrong.
fn answer_of(rt: &mut Runtime, r: Word) -> Result<Response, String> {
    let t = rt.types;
    if rt.is(r, t.str) {
        return Ok(Response::text(200, rt.str_of(r)));
    }
    let expected = "a str or a list [status, content_type or headers, body]";
    let Some([status, second, body]) = seq_items(rt, r).and_then(|v| <[Word; 3]>::try_from(v).ok())
    else {
        return Err(format!(
            "the handler returned {}, not {expected}",
            describe(rt, r)
        ));
    };
    let code = if value::is_int(status) {
        value::to_int(status)
    } else {
        -1
    };
    // No 1xx: an interim status sent as the answer would shift every later answer.
    if !(200..=999).contains(&code) {
        // Named without running user code (a `__repr__` could fail or abort here).
        let what = if value::is_int(status) {
            code.to_string()
        } else {
            describe(rt, status)
        };
        return Err(format!(
            "the handler's status must be an int in 200..999, not {what}"
        ));
    }
    if !rt.is(body, t.str) {
        return Err(format!(
            "the handler's body must be a str, not '{}'",
            rt.type_name(body)
        ));
    }
    let headers = if rt.is(second, t.str) {
        vec![("Content-Type".to_string(), rt.str_of(second).to_string())]
    } else {
        header_pairs(rt, second)?
    };
    let resp = Response::new(code as u16, headers, rt.str_of(body).as_bytes().to_vec());
    // A CR or LF in a header would write a header of the handler's own.
    resp.check()
        .map_err(|e| format!("the handler's answer cannot be sent: {e}"))?;
    Ok(resp)
}

/// The headers of an answer: a list or tuple of `[name, value]` pairs (lists or tuples),
/// or a dict (strs both).
fn header_pairs(rt: &Runtime, h: Word) -> Result<Vec<(String, String)>, String> {
    let t = rt.types;
    let pairs: Vec<(Word, Word)> = if rt.is(h, t.dict) {
        rt.dict_items(h)
    } else if let Some(items) = seq_items(rt, h) {
        let mut v = Vec::new();
        for p in items {
            let Some([name, value]) = seq_items(rt, p).and_then(|v| <[Word; 2]>::try_from(v).ok())
            else {
                return Err(format!(
                    "the handler's headers must be [name, value] pairs, not {}",
                    describe(rt, p)
                ));
            };
            v.push((name, value));
        }
        v
    } else {
        return Err(format!(
            "the handler's second item must be a content type (str) or headers (a list of \
             [name, value] pairs or a dict), not '{}'",
            rt.type_name(h)
        ));
    };
    pairs
        .into_iter()
        .map(|(k, v)| {
            if rt.is(k, t.str) && rt.is(v, t.str) {
                Ok((rt.str_of(k).to_string(), rt.str_of(v).to_string()))
            } else {
                Err(format!(
                    "the handler's header names and values must be strs, not '{}' and '{}'",
                    rt.type_name(k),
                    rt.type_name(v)
                ))
            }
        })
        .collect()
}

fn describe(rt: &Runtime, w: Word) -> String {
    if rt.is(w, rt.types.list) {
        format!("a list of {} items", rt.list_len(w))
    } else if rt.is(w, rt.types.tuple) {
        format!("a tuple of {} items", rt.tuple_len(w))
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
    let mut out = format!(
        "  requests served: {} (handler errors {}, handler transactions retried {})\n",
        s.served.load(Relaxed),
        s.errors.load(Relaxed),
        s.retried.load(Relaxed)
    );
    if let (Some(p50), Some(p99)) = (s.latency.percentile(50.0), s.latency.percentile(99.0)) {
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        out.push_str(&format!(
            "  request latency: p50 {:.3} ms, p99 {:.3} ms ({} answered by handlers)\n",
            ms(p50),
            ms(p99),
            s.latency.count()
        ));
    }
    out
}
