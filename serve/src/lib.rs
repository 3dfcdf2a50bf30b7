//! HTTP/1.1 layer of the stmjit builtin `serve(port, handler)`.
//!
//! This crate knows nothing about the JIT or the STM runtime: it reads requests
//! and writes responses (outside any transaction), and hands each request to a
//! per-worker closure. The JIT wraps that closure so that each call is one
//! transaction; because the closure is created on the worker's own thread
//! (see [`Server::run`]) it may hold a `!Send` per-thread transactional handle.
//!
//! The front is hyper on a current-thread tokio runtime (`front.rs`): one I/O thread owns
//! every connection, so idle and slow clients cost memory, not threads; the limits and
//! timeouts of [`Limits`] bound what each client can take.
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

mod framing;
mod front;
mod inflight;
mod io;
mod latency;
mod queue;
mod target;

pub use latency::Latencies;

use std::io as stdio;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use queue::Queue;

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
    /// UTF-8 replaced by U+FFFD), in order, a repeated key once per value.
    pub query: Vec<(String, String)>,
    /// Header names in lower case (HTTP names are case-insensitive and the
    /// language exposes a dict keyed by lower-case names), values as sent.
    pub headers: Vec<(String, String)>,
    /// The body, which must be valid UTF-8 (the language's `str`); anything
    /// else is answered 400 before the handler runs.
    pub body: String,
}

/// What a handler answers; written to the socket by the I/O thread after the
/// handler (transaction) has returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// HTTP status code.
    pub status: u16,
    /// Headers as (name, value) pairs, in order (a name may repeat: `Set-Cookie`).
    /// `Content-Length` is set from the body; see [`Response::check`] for what is refused.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Headers only the server sets: they frame the messages of the connection, so a handler
/// that set them could corrupt the answers that follow.
const SERVER_HEADERS: [&str; 6] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "trailer",
];

impl Response {
    /// An answer with these headers (a `Content-Type` of `text/plain; charset=utf-8` is
    /// added when they have none).
    pub fn new(status: u16, mut headers: Vec<(String, String)>, body: Vec<u8>) -> Response {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            headers.push(("Content-Type".into(), "text/plain; charset=utf-8".into()));
        }
        Response {
            status,
            headers,
            body,
        }
    }

    /// Whether this answer can be written as it is: a final status (200..=999: a 1xx
    /// would be taken as an interim answer, shifting every later one), header names that
    /// are HTTP tokens and not one of the framing headers the server sets, and values
    /// without control characters (a CR or LF would start a header of the handler's own:
    /// header injection). `Err` says what is wrong; [`Server::run`] answers 500 then.
    pub fn check(&self) -> Result<(), String> {
        if !(200..=999).contains(&self.status) {
            return Err(format!(
                "status {} is not a final status (200..999)",
                self.status
            ));
        }
        for (name, value) in &self.headers {
            let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if name.is_empty() || !name.chars().all(tchar) {
                return Err(format!("the header name {name:?} is not a token"));
            }
            if SERVER_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                return Err(format!("the header {name:?} is set by the server"));
            }
            if let Some(c) = value.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(format!(
                    "the header {name:?} contains the control character {c:?}"
                ));
            }
        }
        Ok(())
    }

    /// A `text/plain; charset=utf-8` response: the language's default when a
    /// handler returns a plain `str`.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status, Vec::new(), body.into().into_bytes())
    }
}

/// Limits on what a client may send and how long it may take, so that a hostile or
/// broken client cannot take unbounded memory, a thread or a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest accepted body in bytes (default 1 MiB); a larger declared length gets 413
    /// and the connection is closed without reading the body (a chunked body is cut at
    /// the limit, then the same).
    pub max_body: usize,
    /// Largest accepted request line plus headers in bytes (default 16 KiB); larger
    /// heads get 431 and a close, once that much is buffered (never more).
    pub max_header_bytes: usize,
    /// Time a connection has to deliver a complete request head once it is idle
    /// (accepted, or its previous answer made): this is both the keep-alive idle timeout
    /// and the slow-head (slowloris) timeout (default 20 s). The connection is closed.
    pub header_timeout: Duration,
    /// Time to receive a request's whole body once its head is in (default 30 s); then
    /// 408 and a close.
    pub body_timeout: Duration,
    /// Time a write may make no progress (a client that stops reading its answers)
    /// before the connection is closed (default 30 s). Writes are done by the I/O
    /// thread, never by a worker.
    pub write_timeout: Duration,
    /// Open connections at most (default 10 000); a connection beyond it gets a 503 and
    /// is closed at once.
    pub max_connections: usize,
    /// Requests waiting for a worker at most (default 1024); beyond it a request gets
    /// 503 instead of taking memory.
    pub max_queue: usize,
    /// How long `shutdown` waits for requests in flight before closing what is left
    /// (default 10 s). A handler already running always finishes (it is a transaction);
    /// its answer is lost if its connection was closed.
    pub shutdown_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body: 1 << 20,
            max_header_bytes: 16 << 10,
            header_timeout: Duration::from_secs(20),
            body_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            max_queue: 1024,
            shutdown_timeout: Duration::from_secs(10),
        }
    }
}

/// State shared between the server and its shutdown handles.
struct Shared {
    port: u16,
    /// True once shutdown was asked; every connection task watches it.
    stop: watch::Sender<bool>,
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
        self.shared.stop.send_replace(true);
    }

    /// The port the server listens on (useful after `bind(0, ..)`).
    pub fn port(&self) -> u16 {
        self.shared.port
    }
}

/// Called with the latency of each answered request (see [`Server::on_answer`]).
type OnAnswer = Box<dyn Fn(Duration) + Send + Sync>;

/// A bound HTTP server, not yet serving (see [`Server::run`]).
pub struct Server {
    listener: TcpListener,
    shared: Arc<Shared>,
    limits: Limits,
    stack_size: Option<usize>,
    on_answer: OnAnswer,
}

impl Server {
    /// Binds 127.0.0.1:port (0 = any free port).
    ///
    /// Binding happens here rather than in `run`, so that the port is known
    /// (and `server_port()` works) before the first request.
    pub fn bind(port: u16, limits: Limits) -> stdio::Result<Server> {
        Server::bind_addr(
            SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port)),
            limits,
        )
    }

    /// Binds `addr` (port 0 = any free port).
    pub fn bind_addr(addr: SocketAddr, limits: Limits) -> stdio::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let port = listener.local_addr()?.port();
        Ok(Server {
            listener,
            shared: Arc::new(Shared {
                port,
                stop: watch::Sender::new(false),
            }),
            limits,
            stack_size: None,
            on_answer: Box::new(|_| {}),
        })
    }

    /// Sets the stack size of the worker threads of [`Server::run`]: stmjit
    /// runs compiled code (deep recursion) on them, which needs the big stack
    /// its other threads have.
    pub fn with_stack_size(mut self, bytes: usize) -> Server {
        self.stack_size = Some(bytes);
        self
    }

    /// Sets what is called (on the I/O thread) with the latency of each request a
    /// handler answered, from its head being taken to its answer being made: the
    /// figures of stmjit's `--stats`.
    pub fn on_answer(mut self, f: impl Fn(Duration) + Send + Sync + 'static) -> Server {
        self.on_answer = Box::new(f);
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
    /// request it takes. The calling thread does all the I/O (see `front.rs`). Returns
    /// after shutdown once every request in flight has been answered (or
    /// [`Limits::shutdown_timeout`] passed) and all workers have exited.
    ///
    /// A request reaches a worker only with its whole body read and checked, through a
    /// bounded queue; a worker skips a request whose connection closed meanwhile. A panic
    /// in the closure answers 500 and the worker goes on with the same closure; so does an
    /// answer that fails [`Response::check`] (the reason is printed). A failure to accept
    /// (out of descriptors) is retried after a back-off and never ends serving. `Err`: a
    /// worker thread could not start ([`RunError::WorkerStart`]), or the I/O runtime could
    /// not start ([`RunError::Io`]).
    pub fn run<W, F>(self, workers: usize, make_worker: F) -> Result<(), RunError>
    where
        F: Fn(usize) -> W + Sync,
        W: FnMut(Request) -> Response,
    {
        let workers = workers.max(1);
        let queue = Arc::new(Queue::new(self.limits.max_queue));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(RunError::Io)?;
        let make_worker = &make_worker;
        let stack_size = self.stack_size;
        std::thread::scope(|s| {
            for i in 0..workers {
                let mut builder = std::thread::Builder::new().name(format!("serve-worker-{i}"));
                if let Some(n) = stack_size {
                    builder = builder.stack_size(n);
                }
                let queue = &*queue;
                let spawned = builder.spawn_scoped(s, move || {
                    let mut handler = make_worker(i);
                    while let Some(job) = queue.pop() {
                        let _ = job.reply.send(handle(job.request, &mut handler));
                    }
                });
                if let Err(e) = spawned {
                    // No room for one more thread: the server does not start, and the
                    // workers started so far end with the closed queue.
                    queue.close();
                    return Err(RunError::WorkerStart(e));
                }
            }
            let r = runtime.block_on(front::serve(
                self.listener,
                self.limits,
                queue.clone(),
                &self.shared.stop,
                self.on_answer,
            ));
            // Closes every connection still open (past the drain deadline).
            drop(runtime);
            queue.close();
            r.map_err(RunError::Io)
        })
    }
}

/// Why [`Server::run`] stopped with an error: typed, so that a caller can tell a server
/// that could not start its workers for want of memory (a MemoryError to the language's
/// `serve()`) from one whose I/O failed, without guessing from an [`std::io::ErrorKind`].
#[derive(Debug)]
pub enum RunError {
    /// A worker thread could not be started (no memory or address space for its stack, or
    /// the process's thread limit): the server did not start; the error is the spawn's.
    WorkerStart(stdio::Error),
    /// The I/O runtime could not start, or serving failed.
    Io(stdio::Error),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::WorkerStart(e) => write!(f, "cannot start a worker thread: {e}"),
            RunError::Io(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::WorkerStart(e) | RunError::Io(e) => Some(e),
        }
    }
}

/// Runs the handler on a request: its answer, or 500 when it panicked or its answer
/// cannot be sent.
fn handle<W>(request: Request, handler: &mut W) -> Response
where
    W: FnMut(Request) -> Response,
{
    match catch_unwind(AssertUnwindSafe(|| handler(request))) {
        Ok(r) => match r.check() {
            Ok(()) => r,
            Err(why) => {
                eprintln!("error: serve(): {why}; answered 500 instead");
                Response::text(500, "internal server error")
            }
        },
        Err(_) => Response::text(500, "internal server error"),
    }
}
