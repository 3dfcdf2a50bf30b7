//! The I/O side: one current-thread tokio runtime (the thread that called
//! [`Server::run`](crate::Server::run)) accepts every connection and lets hyper read
//! requests and write answers on all of them; idle and slow connections cost memory,
//! never a thread. A request whose head and body are in hands is queued for the workers
//! (see `queue.rs`); its connection waits for the answer without reading further, so a
//! connection's requests run one after the other, in order (hyper dispatches the next
//! request of a connection only once the previous answer is made).

use std::convert::Infallible;
use std::net::TcpListener as StdListener;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderName, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch};

use crate::inflight::{Busy, InFlight};
use crate::io::Conn;
use crate::queue::{Job, Queue};
use crate::target::split_target;
use crate::{Limits, Request, Response};

/// First and longest pause after a failed `accept` (out of descriptors: `EMFILE`, `ENFILE`).
const BACKOFF_MIN: Duration = Duration::from_millis(10);
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// What every connection task shares.
struct Front {
    limits: Limits,
    queue: Arc<Queue>,
    http: http1::Builder,
    /// Open connections (for `max_connections`).
    live: AtomicUsize,
    /// Called with each answered request's latency (head taken to answer made).
    on_answer: Box<dyn Fn(Duration) + Send + Sync>,
}

/// Serves `listener` until `stop` turns true, then drains: no new connection, idle ones
/// closed, requests in flight answered, for at most `limits.shutdown_timeout`. Returns
/// when every connection ended or the deadline passed (the caller then drops the
/// runtime, which closes what is left).
pub(crate) async fn serve(
    listener: StdListener,
    limits: Limits,
    queue: Arc<Queue>,
    stop: &watch::Sender<bool>,
    on_answer: Box<dyn Fn(Duration) + Send + Sync>,
) -> std::io::Result<()> {
    listener.set_nonblocking(true)?;
    let listener = TcpListener::from_std(listener)?;
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_header_size(limits.max_header_bytes)
        // A head that never ends is refused (431) once this much is buffered.
        .max_buf_size(limits.max_header_bytes.saturating_add(1024).max(8192));
    let front = Arc::new(Front {
        limits,
        queue,
        http,
        live: AtomicUsize::new(0),
        on_answer,
    });
    accept_loop(&listener, &front, stop.subscribe()).await;
    drop(listener);
    stop.send_replace(true);
    // Every connection task holds a receiver: all gone means all connections ended.
    let _ = tokio::time::timeout(limits.shutdown_timeout, stop.closed()).await;
    Ok(())
}

/// Accepts until `stop`; a failed accept (out of descriptors) is retried after a back-off,
/// never ends serving.
async fn accept_loop(listener: &TcpListener, front: &Arc<Front>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stopped(&mut stop) => return,
        };
        match accepted {
            Ok((stream, _)) => {
                backoff = BACKOFF_MIN;
                if front.live.load(Ordering::Relaxed) >= front.limits.max_connections {
                    refuse_busy(stream, front.limits.write_timeout);
                    continue;
                }
                front.live.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(connection(stream, front.clone(), stop.clone()));
            }
            Err(_) => {
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// Over `max_connections`: a 503 written without waiting, then the connection closes.
fn refuse_busy(stream: TcpStream, write_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let _ = stream.try_write(
        b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n\
          content-length: 12\r\nconnection: close\r\n\r\nserver busy\n",
    );
    drop(Conn::new(stream, write_timeout));
}

/// How long a connection with no request in flight may still take, after shutdown, to
/// send what it has (hyper closes it right after).
const CLOSE_GRACE: Duration = Duration::from_millis(200);

/// Serves one connection until it ends, or until `stop`: then it is closed once its
/// request in flight (if any) is answered; a connection waiting for (the rest of) a
/// request head is closed at once.
async fn connection(stream: TcpStream, front: Arc<Front>, mut stop: watch::Receiver<bool>) {
    let _ = stream.set_nodelay(true);
    let busy = Arc::new(Busy::default());
    let io = TokioIo::new(Conn::checking_framing(
        stream,
        front.limits.write_timeout,
        front.limits.max_header_bytes,
        busy.clone(),
    ));
    let (f, b, stop2) = (front.clone(), busy.clone(), stop.clone());
    let service = service_fn(move |req| respond(req, f.clone(), stop2.clone(), Busy::enter(&b)));
    let conn = front.http.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stopped(&mut stop) => {
            conn.as_mut().graceful_shutdown();
            loop {
                let idle = busy.idle.notified();
                if busy.in_flight() == 0 {
                    let _ = tokio::time::timeout(CLOSE_GRACE, conn.as_mut()).await;
                    break;
                }
                tokio::select! {
                    _ = conn.as_mut() => break,
                    _ = idle => {}
                }
            }
        }
    }
    front.live.fetch_sub(1, Ordering::Relaxed);
}

/// An answer's body, holding its request's [`InFlight`] until hyper is done with it.
struct Tracked {
    body: Full<Bytes>,
    _in_flight: InFlight,
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Resolves once shutdown was asked (at once if it already was).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    // Err: the server is gone, which is a stop too.
    let _ = stop.wait_for(|s| *s).await;
}

type Answer = hyper::Response<Full<Bytes>>;

/// One request: its answer, which holds `in_flight` until it is written.
async fn respond(
    req: hyper::Request<Incoming>,
    front: Arc<Front>,
    stop: watch::Receiver<bool>,
    in_flight: InFlight,
) -> Result<hyper::Response<Tracked>, Infallible> {
    let answer = answer(req, &front, stop).await?;
    Ok(answer.map(|body| Tracked {
        body,
        _in_flight: in_flight,
    }))
}

/// A plain-text answer; `close` asks hyper to close the connection after it.
fn plain(status: StatusCode, msg: &'static str, close: bool) -> Answer {
    let mut r = hyper::Response::new(Full::new(Bytes::from_static(msg.as_bytes())));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if close {
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    r
}

/// One request: checked, read, queued for a worker; its answer when the worker made it.
async fn answer(
    req: hyper::Request<Incoming>,
    front: &Front,
    mut stop: watch::Receiver<bool>,
) -> Result<Answer, Infallible> {
    let since = Instant::now();
    let limits = &front.limits;
    let (parts, body) = req.into_parts();
    if parts.method == Method::CONNECT || parts.headers.contains_key(header::UPGRADE) {
        return Ok(plain(
            StatusCode::NOT_IMPLEMENTED,
            "protocol upgrades are not supported",
            true,
        ));
    }
    // The declared length is known before any of the body is read: refuse it unread.
    if body.size_hint().lower() > limits.max_body as u64 {
        return Ok(plain(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload too large",
            true,
        ));
    }
    let read = Limited::new(body, limits.max_body).collect();
    let read = tokio::time::timeout(limits.body_timeout, read);
    let body = tokio::select! {
        r = read => r,
        _ = stopped(&mut stop) => {
            return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "server shutting down", true));
        }
    };
    let body = match body {
        Err(_) => {
            return Ok(plain(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
                true,
            ))
        }
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            return Ok(plain(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload too large",
                true,
            ));
        }
        Ok(Err(_)) => return Ok(plain(StatusCode::BAD_REQUEST, "bad request body", true)),
        Ok(Ok(c)) => c.to_bytes(),
    };
    let Ok(body) = String::from_utf8(body.to_vec()) else {
        return Ok(plain(
            StatusCode::BAD_REQUEST,
            "request body is not valid UTF-8",
            true,
        ));
    };
    let mut headers = Vec::with_capacity(parts.headers.len());
    for (name, value) in &parts.headers {
        let Ok(value) = std::str::from_utf8(value.as_bytes()) else {
            return Ok(plain(
                StatusCode::BAD_REQUEST,
                "a header value is not valid UTF-8",
                true,
            ));
        };
        headers.push((name.as_str().to_string(), value.to_string()));
    }
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let (path, query) = split_target(target);
    let request = Request {
        method: parts.method.as_str().to_string(),
        path,
        query,
        headers,
        body,
    };
    let (reply, answer) = oneshot::channel();
    let job = Job { request, reply };
    if !front.queue.push(job) {
        return Ok(plain(StatusCode::SERVICE_UNAVAILABLE, "server busy", false));
    }
    // Dropping this future (the connection closed) drops `answer`: the job is skipped.
    let Ok(r) = answer.await else {
        return Ok(plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "server shutting down",
            true,
        ));
    };
    (front.on_answer)(since.elapsed());
    Ok(to_hyper(r))
}

/// The handler's answer as hyper's (already checked by the worker: see `Response::check`;
/// a header hyper still refuses makes it a 500).
fn to_hyper(r: Response) -> Answer {
    let mut out = hyper::Response::new(Full::new(Bytes::from(r.body)));
    *out.status_mut() = StatusCode::from_u16(r.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (k, v) in r.headers {
        match (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v.as_bytes()),
        ) {
            (Ok(k), Ok(v)) => {
                out.headers_mut().append(k, v);
            }
            _ => {
                return plain(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error",
                    false,
                )
            }
        }
    }
    out
}
