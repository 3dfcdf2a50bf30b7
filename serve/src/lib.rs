//! HTTP/1.1 layer of the stmjit builtin `serve(port, handler)`.
//!
//! This crate knows nothing about the JIT or the STM runtime: it reads requests
//! and writes responses (outside any transaction), and hands each request to a
//! per-worker closure. The JIT wraps that closure so that each call is one
//! transaction; because the closure is created on the worker's own thread
//! (see [`Server::run`]) it may hold a `!Send` per-thread transactional handle.
//!
//! Parsing is done by [`tiny_http`]; this crate adds the limits and the
//! robustness that tiny_http lacks (see the docs of each item).
//!
//! # Example
//!
//! ```
//! use std::io::{Read, Write};
//! use stmjit_serve::{Limits, Response, Server};
//!
//! let server = Server::bind(0, Limits::default()).unwrap();
//! let port = server.port();
//! let stop = server.shutdown_handle();
//! let t = std::thread::spawn(move || {
//!     server.run(2, |_worker| {
//!         let stop = stop.clone();
//!         move |req: stmjit_serve::Request| {
//!             if req.path == "/quit" {
//!                 stop.shutdown();
//!             }
//!             Response::text(200, format!("hello {}", req.path))
//!         }
//!     })
//! });
//! let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
//! c.write_all(b"GET /quit HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
//! let mut answer = String::new();
//! c.read_to_string(&mut answer).unwrap();
//! assert!(answer.starts_with("HTTP/1.1 200"));
//! assert!(answer.ends_with("hello /quit"));
//! t.join().unwrap().unwrap();
//! ```

mod refuse;

use std::collections::VecDeque;
use std::io::{self, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread::Scope;
use std::time::{Duration, Instant};

/// One HTTP request, fully read (body included) before the handler runs, so
/// that the handler — a transaction in stmjit — never does socket I/O.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method as sent (`GET`, `POST`, ...).
    pub method: String,
    /// The request target without the query string (not percent-decoded,
    /// like Python's `http.server`).
    pub path: String,
    /// The query string split on `&` and `=`, `+` and `%XX` decoded (invalid
    /// UTF-8 replaced by U+FFFD), in order; the language turns it into a dict.
    pub query: Vec<(String, String)>,
    /// Header names in lower case (HTTP names are case-insensitive and the
    /// language exposes a dict keyed by lower-case names), values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, which must be valid UTF-8 (the language's `str`); anything
    /// else is answered 400 before the handler runs.
    pub body: String,
}

/// What a handler answers; written to the socket by the worker after the
/// handler (transaction) has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Value of the `Content-Type` header.
    pub content_type: String,
    /// Body bytes (`Content-Length` is set from their length).
    pub body: Vec<u8>,
}

impl Response {
    /// Whether this answer can be written as it is: a final status (200..=999: a 1xx
    /// would be taken as an interim answer, shifting every later one) and a content type
    /// without control characters (a CR or LF would start a header of the handler's own:
    /// header injection). `Err` says what is wrong; [`Server::run`] answers 500 then.
    pub fn check(&self) -> Result<(), String> {
        if !(200..=999).contains(&self.status) {
            return Err(format!(
                "status {} is not a final status (200..999)",
                self.status
            ));
        }
        if let Some(c) = self
            .content_type
            .chars()
            .find(|&c| c.is_control() && c != '\t')
        {
            return Err(format!(
                "the content type contains the control character {c:?}"
            ));
        }
        Ok(())
    }

    /// A `text/plain; charset=utf-8` response: the language's default when a
    /// handler returns a plain `str`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8".to_string(),
            body: body.into().into_bytes(),
        }
    }
}

/// Limits on what a client may send, so that a hostile or broken client
/// cannot take unbounded memory or a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body in bytes (default 1 MiB); larger ones get 413 and the
    /// connection is closed without reading the body (see `refuse.rs`).
    pub max_body: usize,
    /// Largest accepted request line plus headers in bytes (default 16 KiB);
    /// larger ones get 431. tiny_http reads the whole head before this check
    /// can run, so this bounds what reaches a handler, not what tiny_http's
    /// connection thread buffers.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1 << 20,
            max_header_bytes: 16 << 10,
        }
    }
}

/// State shared between the server and its shutdown handles.
struct Shared {
    stopping: AtomicBool,
    port: u16,
    /// The tiny_http servers to wake on shutdown (see [`Gens`]).
    gens: Mutex<Gens>,
}

/// The tiny_http servers on the listening socket: one more after each failure of
/// tiny_http's accept loop (see [`restart`]). Each has one dispatcher blocked in its
/// `recv` once `run` started.
#[derive(Default)]
struct Gens {
    /// Weak, so that a handle kept after `run` returned does not keep the
    /// listener open; `shutdown` after that is a no-op.
    list: Vec<Weak<tiny_http::Server>>,
    /// `run` started: each server has a dispatcher to unblock.
    receiving: bool,
}

impl Shared {
    fn shutdown(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        let gens = self.gens.lock().unwrap_or_else(|e| e.into_inner());
        if gens.receiving {
            // Each `unblock` releases exactly one thread blocked in `recv` (the server's
            // dispatcher); requests queued before it are still taken first.
            for http in gens.list.iter().filter_map(Weak::upgrade) {
                http.unblock();
            }
        }
    }

    /// Adds a server (its dispatcher is about to call `recv`); false if stopping already
    /// (then it must not wait in `recv`: no unblock will come).
    fn register(&self, http: &Arc<tiny_http::Server>) -> bool {
        self.gens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .list
            .push(Arc::downgrade(http));
        !self.stopping.load(Ordering::SeqCst)
    }

    /// The address clients connect to (the local side of every connection).
    fn local(&self) -> SocketAddr {
        SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, self.port))
    }
}

/// Handle to stop a running server from any thread.
///
/// Cloneable and `Send + Sync` so the language's `shutdown()` can call it from
/// any handler or thread, and `server_port()` can read the port.
#[derive(Clone)]
pub struct ShutdownHandle {
    shared: Arc<Shared>,
}

impl ShutdownHandle {
    /// Stops taking new requests; requests already being handled finish and
    /// are answered, then [`Server::run`] returns. Safe to call from inside a
    /// handler, more than once, or before `run`.
    pub fn shutdown(&self) {
        self.shared.shutdown();
    }

    /// The port the server listens on (useful after `bind(0, ..)`).
    pub fn port(&self) -> u16 {
        self.shared.port
    }
}

/// A bound HTTP server, not yet serving (see [`Server::run`]).
pub struct Server {
    /// A descriptor of the listening socket of our own, so that the socket stays open
    /// when tiny_http's accept loop fails (it then drops its own): [`restart`] serves it
    /// again with a new tiny_http server.
    listener: TcpListener,
    /// The descriptor of the listening socket that tiny_http's accept thread owns.
    http_fd: RawFd,
    http: Arc<tiny_http::Server>,
    shared: Arc<Shared>,
    limits: Limits,
    stack_size: Option<usize>,
}

impl Server {
    /// Binds 127.0.0.1:port (0 = any free port).
    ///
    /// Binding happens here rather than in `run`, so that the port is known
    /// (and `server_port()` works) before the first request.
    pub fn bind(port: u16, limits: Limits) -> io::Result<Server> {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        let port = listener.local_addr()?.port();
        let own = listener.try_clone()?;
        let http_fd = listener.as_raw_fd();
        let http = Arc::new(tiny_server(listener)?);
        let shared = Arc::new(Shared {
            stopping: AtomicBool::new(false),
            port,
            gens: Mutex::new(Gens {
                list: vec![Arc::downgrade(&http)],
                receiving: false,
            }),
        });
        Ok(Server {
            listener: own,
            http_fd,
            http,
            shared,
            limits,
            stack_size: None,
        })
    }

    /// Sets the stack size of the worker threads of [`Server::run`]: stmjit
    /// runs compiled code (deep recursion) on them, which needs the big stack
    /// its other threads have.
    pub fn with_stack_size(mut self, bytes: usize) -> Server {
        self.stack_size = Some(bytes);
        self
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// A handle that stops [`Server::run`] from any thread.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle {
            shared: self.shared.clone(),
        }
    }

    /// Runs `workers` worker threads until shutdown; each worker thread calls
    /// `make_worker(i)` once ON ITS OWN THREAD (the result may be `!Send`: it will hold a
    /// per-thread transactional handle) and then calls the returned closure for each
    /// request it takes. Returns after shutdown once every request handed to a worker has
    /// been answered and all workers have exited.
    ///
    /// The calling thread dispatches: it takes requests from tiny_http, checks their
    /// heads, and queues those whose body is already in memory (tiny_http reads bodies of
    /// up to 1 KiB with the head). A longer or chunked body is read by a thread of its own,
    /// which queues the request once the whole body is there: a client that stops sending
    /// mid-body holds that thread, never a worker. The queue is a plain mutex-protected
    /// deque (outside the STM heap); workers only run handlers and write answers. A panic
    /// in the closure answers 500 and the worker goes on with the same closure. Requests
    /// not handed to a worker when the workers have exited are answered 503.
    ///
    /// A failure to accept (out of descriptors: `EMFILE`, `ENFILE`) never ends serving:
    /// tiny_http's accept loop stops then, and [`restart`] serves the same listening
    /// socket with a new tiny_http server after a back-off. Always `Ok` today; `Err` is
    /// kept for failures a future front end cannot recover from.
    pub fn run<W, F>(self, workers: usize, make_worker: F) -> io::Result<()>
    where
        F: Fn(usize) -> W + Sync,
        W: FnMut(Request) -> Response,
    {
        let workers = workers.max(1);
        // One thread blocks in each tiny_http server's `recv` (see `Shared::shutdown`).
        self.shared
            .gens
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .receiving = true;
        if self.shared.stopping.load(Ordering::SeqCst) {
            // shutdown() ran before run(): its unblocks counted 0 receivers.
            self.shared.shutdown();
        }
        let make_worker = &make_worker;
        let ready = Arc::new(Ready::default());
        let stack_size = self.stack_size;
        let ctx = Ctx {
            listener: &self.listener,
            listener_ino: socket_ino(self.listener.as_raw_fd()),
            accepting: Mutex::new(Accepting {
                gen: 0,
                fd: self.http_fd,
                started: Instant::now(),
                backoff: None,
            }),
            shared: &self.shared,
            limits: self.limits,
            ready: &ready,
            all: Mutex::new(Vec::new()),
        };
        std::thread::scope(|s| {
            for i in 0..workers {
                let mut builder = std::thread::Builder::new().name(format!("serve-worker-{i}"));
                if let Some(n) = stack_size {
                    builder = builder.stack_size(n);
                }
                let ready = &**ctx.ready;
                builder
                    .spawn_scoped(s, move || {
                        let mut handler = make_worker(i);
                        while let Some((rq, request)) = ready.pop() {
                            handle(rq, request, &mut handler);
                        }
                    })
                    .expect("spawn serve worker");
            }
            let ctx = &ctx;
            s.spawn(move || watch(s, ctx));
            dispatch(s, ctx, self.http.clone(), 0);
            ready.close();
        });
        // Answer what was never handed to a worker, so no client waits forever.
        ready.finish();
        let all = std::mem::take(&mut *ctx.all.lock().unwrap_or_else(|e| e.into_inner()));
        for http in all.iter().chain([&self.http]) {
            while let Ok(Some(rq)) = http.try_recv() {
                answer(rq, Response::text(503, "server shutting down"), true);
            }
        }
        // Closes the listener: tiny_http's Drop for each server, and our own descriptor.
        drop(all);
        drop(self.http);
        Ok(())
    }
}

/// A tiny_http server accepting on `listener`.
/// (tiny_http panics when it cannot start its accept thread: an error here.)
fn tiny_server(listener: TcpListener) -> io::Result<tiny_http::Server> {
    match catch_unwind(AssertUnwindSafe(|| {
        tiny_http::Server::from_listener(listener, None)
    })) {
        Ok(r) => r.map_err(|e| io::Error::other(e.to_string())),
        Err(_) => Err(io::Error::other("cannot start tiny_http's accept thread")),
    }
}

/// What every dispatcher shares (see [`dispatch`]).
struct Ctx<'a> {
    listener: &'a TcpListener,
    /// The inode of the listening socket, to tell whether a descriptor still names it.
    listener_ino: Option<u64>,
    accepting: Mutex<Accepting>,
    shared: &'a Shared,
    limits: Limits,
    ready: &'a Arc<Ready>,
    /// The servers started by [`restart`], kept until `run` answers what they still hold.
    all: Mutex<Vec<Arc<tiny_http::Server>>>,
}

/// Which tiny_http server accepts now, so that one failure starts one new server.
struct Accepting {
    /// Number of the server accepting now (or being started): 0, 1, ...
    gen: u64,
    /// The listener descriptor that server's accept thread owns (closed when that thread
    /// ends); -1 while a new server is being started.
    fd: RawFd,
    /// When that server started, and the wait before it (None for the first).
    started: Instant,
    backoff: Option<Duration>,
}

/// The inode of socket `fd` (None if `fd` is not an open socket).
fn socket_ino(fd: RawFd) -> Option<u64> {
    // SAFETY: an all-zero stat is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `st` is writable; on a closed descriptor fstat fails, checked below.
    let r = unsafe { libc::fstat(fd, &mut st) };
    (r == 0 && st.st_mode & libc::S_IFMT == libc::S_IFSOCK).then_some(st.st_ino)
}

/// Server `gen` stopped accepting (its accept loop reported `why`, or its thread ended):
/// unless that was already seen, starts the next server after a back-off (see [`restart`]).
fn accept_failed<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    ctx: &'env Ctx<'env>,
    gen: u64,
    why: &str,
) {
    let mut a = ctx.accepting.lock().unwrap_or_else(|e| e.into_inner());
    if a.gen != gen || ctx.shared.stopping.load(Ordering::SeqCst) {
        return;
    }
    let backoff = match a.backoff {
        Some(b) if a.started.elapsed() < BACKOFF_RESET => (b * 2).min(BACKOFF_MAX),
        _ => {
            eprintln!("warning: serve(): accepting connections failed ({why}); retrying");
            BACKOFF_MIN
        }
    };
    a.gen += 1;
    a.fd = -1;
    let next = a.gen;
    drop(a);
    s.spawn(move || restart(s, ctx, next, backoff));
}

/// First wait before serving the listening socket again after an accept failure.
const BACKOFF_MIN: Duration = Duration::from_millis(10);
/// Longest wait between two tries (the wait doubles while accepting keeps failing).
const BACKOFF_MAX: Duration = Duration::from_secs(1);
/// A server that accepted this long before failing starts a new episode of back-off.
const BACKOFF_RESET: Duration = Duration::from_secs(2);

/// A request taken from tiny_http and its parsed form, body included.
type Job = (tiny_http::Request, Request);

/// Requests ready for a worker, outside any transaction (so taking one is never a
/// conflict), and the bookkeeping of shutdown.
#[derive(Default)]
struct Ready {
    state: Mutex<ReadyState>,
    more: Condvar,
}

#[derive(Default)]
struct ReadyState {
    jobs: VecDeque<Job>,
    /// The dispatcher stopped: workers leave once `jobs` is empty.
    closed: bool,
    /// The workers have left: late body readers answer 503 themselves.
    finished: bool,
}

impl Ready {
    /// Queues a request for a worker, or answers it 503 once the workers have left.
    fn push(&self, job: Job) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if st.finished {
            drop(st);
            answer(job.0, Response::text(503, "server shutting down"), true);
            return;
        }
        st.jobs.push_back(job);
        drop(st);
        self.more.notify_one();
    }

    /// The next request, or None once the dispatcher stopped and none is left.
    fn pop(&self) -> Option<Job> {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(j) = st.jobs.pop_front() {
                return Some(j);
            }
            if st.closed {
                return None;
            }
            st = self.more.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    fn close(&self) {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).closed = true;
        self.more.notify_all();
    }

    /// After the workers left: answers 503 to anything queued since (body readers that
    /// finished meanwhile), and makes later readers answer 503 themselves.
    fn finish(&self) {
        let left: Vec<Job> = {
            let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
            st.finished = true;
            st.jobs.drain(..).collect()
        };
        for (rq, _) in left {
            answer(rq, Response::text(503, "server shutting down"), true);
        }
    }
}

/// How often [`watch`] looks.
const KICK_EVERY: std::time::Duration = std::time::Duration::from_millis(50);

/// Until shutdown, opens and closes a connection to the server every [`KICK_EVERY`].
///
/// tiny_http 0.12 reads each connection on a thread of its pool, and the pool can leave a
/// new connection queued with no thread to take it: `TaskPool::spawn` queues the task
/// when its count of idle threads is above 0, but that count falls only when a woken idle
/// thread runs, so two connections accepted before it runs get one thread. The queued one
/// then waits until some other connection of the pool ends, which with keep-alive or
/// stalled clients may be never (seen as a client that got no answer for a minute). Each
/// new connection makes the pool wake an idle thread or start one, which then takes the
/// oldest queued connection; this one carries nothing and ends at once.
///
/// It also checks that the accept thread of the current tiny_http server is alive: that
/// thread panics (no error reaches `recv`) when it cannot duplicate an accepted socket or
/// start a connection thread, e.g. out of descriptors; its listener descriptor is closed
/// then, which this sees, and a new server is started (see [`accept_failed`]).
fn watch<'scope, 'env>(s: &'scope Scope<'scope, 'env>, ctx: &'env Ctx<'env>) {
    let shared = ctx.shared;
    while !shared.stopping.load(Ordering::SeqCst) {
        std::thread::sleep(KICK_EVERY);
        if shared.stopping.load(Ordering::SeqCst) {
            break;
        }
        let _ = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, shared.port));
        let a = ctx.accepting.lock().unwrap_or_else(|e| e.into_inner());
        let (gen, fd) = (a.gen, a.fd);
        drop(a);
        if fd >= 0 && ctx.listener_ino.is_some() && socket_ino(fd) != ctx.listener_ino {
            accept_failed(s, ctx, gen, "tiny_http's accept thread ended");
        }
    }
}

/// The dispatcher loop of one tiny_http server (see [`Server::run`]), until shutdown.
///
/// When the server's accept loop fails (it stops for good on any accept error, e.g. out
/// of descriptors), a new server is started on the same socket after a back-off (see
/// [`restart`]), and this one goes on taking the requests of its open connections.
fn dispatch<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    ctx: &'env Ctx<'env>,
    http: Arc<tiny_http::Server>,
    gen: u64,
) {
    let shared = ctx.shared;
    while !shared.stopping.load(Ordering::SeqCst) {
        let rq = match http.recv() {
            Ok(rq) => rq,
            Err(e) => {
                if !shared.stopping.load(Ordering::SeqCst) {
                    // Not our unblock: tiny_http's accept loop ended.
                    accept_failed(s, ctx, gen, &e.to_string());
                }
                continue;
            }
        };
        let Some(rq) = check_head(rq, &ctx.limits, shared.local()) else {
            continue;
        };
        if body_in_memory(&rq) {
            if let Some(job) = read_request(rq, &ctx.limits, shared.local()) {
                ctx.ready.push(job);
            }
            continue;
        }
        // The body is still on the wire: read it on a thread of its own.
        let slot = Arc::new(Mutex::new(Some(rq)));
        let (taken, ready, limits, local) =
            (slot.clone(), ctx.ready.clone(), ctx.limits, shared.local());
        let spawned = std::thread::Builder::new()
            .name("serve-body".into())
            .spawn(move || {
                let rq = taken.lock().unwrap_or_else(|e| e.into_inner()).take();
                if let Some(job) = rq.and_then(|rq| read_request(rq, &limits, local)) {
                    ready.push(job);
                }
            });
        if spawned.is_err() {
            // Out of threads: refuse it here (never drop it: that would read the body).
            if let Some(rq) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
                refuse::refuse_unread(rq, 503, "server busy", local);
            }
        }
    }
}

/// Serves the listening socket again with tiny_http server number `gen`, after `backoff`
/// (doubled, up to [`BACKOFF_MAX`], while even that fails), then dispatches its requests.
fn restart<'scope, 'env>(
    s: &'scope Scope<'scope, 'env>,
    ctx: &'env Ctx<'env>,
    gen: u64,
    mut backoff: Duration,
) {
    loop {
        let until = Instant::now() + backoff;
        while Instant::now() < until {
            if ctx.shared.stopping.load(Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(BACKOFF_MIN.min(until - Instant::now()));
        }
        // Both steps need a descriptor or a thread, which may still be missing.
        let started = ctx.listener.try_clone().and_then(|l| {
            let fd = l.as_raw_fd();
            tiny_server(l).map(|h| (h, fd))
        });
        match started {
            Ok((http, fd)) => {
                let http = Arc::new(http);
                let mut a = ctx.accepting.lock().unwrap_or_else(|e| e.into_inner());
                *a = Accepting {
                    gen,
                    fd,
                    started: Instant::now(),
                    backoff: Some(backoff),
                };
                drop(a);
                ctx.all
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(http.clone());
                if ctx.shared.register(&http) {
                    dispatch(s, ctx, http, gen);
                }
                return;
            }
            Err(_) => backoff = (backoff * 2).min(BACKOFF_MAX),
        }
    }
}

/// Whether tiny_http has already read the whole body (none, or at most 1 KiB with a
/// Content-Length, no `Expect: 100-continue`, no `Connection: upgrade`).
fn body_in_memory(rq: &tiny_http::Request) -> bool {
    let has = |name: &'static str, value: Option<&str>| {
        rq.headers().iter().any(|h| {
            h.field.equiv(name)
                && value.is_none_or(|v| h.value.as_str().to_ascii_lowercase().contains(v))
        })
    };
    if has("Transfer-Encoding", None) || has("Expect", None) || has("Connection", Some("upgrade")) {
        return false;
    }
    rq.body_length().is_none_or(|n| n <= 1024)
}

/// Rejects a request whose head is over the limits (431, 413 by its Content-Length),
/// without reading its body (see [`refuse_soon`]).
fn check_head(
    rq: tiny_http::Request,
    limits: &Limits,
    local: SocketAddr,
) -> Option<tiny_http::Request> {
    // Header size: tiny_http has no limit of its own.
    let head_bytes: usize = rq.method().as_str().len()
        + rq.url().len()
        + 12
        + rq.headers()
            .iter()
            .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
            .sum::<usize>();
    if head_bytes > limits.max_header_bytes {
        refuse_soon(rq, 431, "request header fields too large", local);
        return None;
    }
    // Declared body size: tiny_http would let us read any length.
    if rq.body_length().is_some_and(|n| n > limits.max_body) {
        refuse_soon(rq, 413, "payload too large", local);
        return None;
    }
    Some(rq)
}

/// Refuses a request whose body is unread on a short-lived thread of its own: the answer
/// waits for the connection's earlier answers, which must not hold the dispatcher.
fn refuse_soon(rq: tiny_http::Request, status: u16, msg: &'static str, local: SocketAddr) {
    let slot = Arc::new(Mutex::new(Some(rq)));
    let taken = slot.clone();
    let spawned = std::thread::Builder::new()
        .name("serve-refuse".into())
        .spawn(move || {
            if let Some(rq) = taken.lock().unwrap_or_else(|e| e.into_inner()).take() {
                refuse::refuse_unread(rq, status, msg, local);
            }
        });
    if spawned.is_err() {
        // Out of threads: here then (never drop it unanswered: that reads the body).
        if let Some(rq) = slot.lock().unwrap_or_else(|e| e.into_inner()).take() {
            refuse::refuse_unread(rq, status, msg, local);
        }
    }
}

/// Reads the body and parses the request; rejects it (4xx) when the body is broken, cut,
/// too long or not UTF-8.
fn read_request(mut rq: tiny_http::Request, limits: &Limits, local: SocketAddr) -> Option<Job> {
    // Chunked bodies have no declared size: read one byte past the limit.
    let mut body = Vec::new();
    let read = rq
        .as_reader()
        .take(limits.max_body as u64 + 1)
        .read_to_end(&mut body);
    if read.is_err() {
        // Client went away or sent a broken chunked body (maybe with more to come).
        refuse::refuse_unread(rq, 400, "bad request body", local);
        return None;
    }
    if rq.body_length().is_some_and(|n| n != body.len()) {
        // tiny_http reports a client that closed mid-body as a short body.
        reject(rq, 400, "truncated request body");
        return None;
    }
    if body.len() > limits.max_body {
        // A chunked body: the rest is not read.
        refuse::refuse_unread(rq, 413, "payload too large", local);
        return None;
    }
    let body = match String::from_utf8(body) {
        Ok(b) => b,
        Err(_) => {
            reject(rq, 400, "request body is not valid UTF-8");
            return None;
        }
    };
    let (path, query) = split_target(rq.url());
    let request = Request {
        method: rq.method().as_str().to_string(),
        path,
        query,
        headers: rq
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_ascii_lowercase(),
                    h.value.as_str().to_string(),
                )
            })
            .collect(),
        body,
    };
    Some((rq, request))
}

/// Runs the handler on a request and writes its answer.
fn handle<W>(rq: tiny_http::Request, request: Request, handler: &mut W)
where
    W: FnMut(Request) -> Response,
{
    let response = match catch_unwind(AssertUnwindSafe(|| handler(request))) {
        Ok(r) => match r.check() {
            Ok(()) => r,
            Err(why) => {
                eprintln!("error: serve(): {why}; answered 500 instead");
                Response::text(500, "internal server error")
            }
        },
        Err(_) => Response::text(500, "internal server error"),
    };
    answer(rq, response, false);
}

/// Answers a request whose body was read (or cut by the client) without passing it to the
/// handler, and asks the client to close.
fn reject(rq: tiny_http::Request, status: u16, msg: &str) {
    answer(rq, Response::text(status, msg), true);
}

fn answer(rq: tiny_http::Request, r: Response, close: bool) {
    let mut resp = tiny_http::Response::from_data(r.body).with_status_code(r.status);
    if let Ok(h) = tiny_http::Header::from_bytes(&b"Content-Type"[..], r.content_type.as_bytes()) {
        resp.add_header(h);
    }
    if close {
        resp.add_header(tiny_http::Header::from_bytes(&b"Connection"[..], &b"close"[..]).unwrap());
    }
    // A client that went away is not an error worth reporting.
    let _ = rq.respond(resp);
}

/// Splits a request target into the path and its decoded query pairs.
fn split_target(target: &str) -> (String, Vec<(String, String)>) {
    let (path, q) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let query = q
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    (path.to_string(), query)
}

/// `application/x-www-form-urlencoded` decoding of one key or value.
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                match (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h * 16 + l);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_splitting() {
        let (p, q) = split_target("/a/b?x=1&y=h%C3%A9+llo&z&=v&%zz=%4");
        assert_eq!(p, "/a/b");
        assert_eq!(
            q,
            vec![
                ("x".into(), "1".into()),
                ("y".into(), "hé llo".into()),
                ("z".into(), "".into()),
                ("".into(), "v".into()),
                ("%zz".into(), "%4".into()),
            ]
        );
        assert_eq!(split_target("/"), ("/".to_string(), vec![]));
        assert_eq!(percent_decode("%ff"), "\u{fffd}");
    }
}
