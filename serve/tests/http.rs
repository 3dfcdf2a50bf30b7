//! Real TCP clients over loopback against `stmjit_serve::Server`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;

use stmjit_serve::{Limits, Request, Response, Server, ShutdownHandle};

/// Starts a server with `workers` workers and the per-worker handler `make`,
/// returns (port, handle, join handle of `run`).
fn start<W, F>(
    workers: usize,
    make: F,
) -> (
    u16,
    ShutdownHandle,
    thread::JoinHandle<Result<(), stmjit_serve::RunError>>,
)
where
    F: Fn(usize) -> W + Sync + Send + 'static,
    W: FnMut(Request) -> Response,
{
    let server = Server::bind(0, Limits::default()).expect("bind");
    let port = server.port();
    let handle = server.shutdown_handle();
    assert_eq!(handle.port(), port);
    let t = thread::spawn(move || server.run(workers, make));
    (port, handle, t)
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads one response: (status, headers lower-case, body). None on EOF.
fn read_response(r: &mut BufReader<TcpStream>) -> Option<(u16, HashMap<String, String>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    assert!(
        !headers.contains_key("transfer-encoding"),
        "test client expects Content-Length"
    );
    let n: usize = headers
        .get("content-length")
        .map(|v| v.parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((status, headers, body))
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = connect(port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (st, _, b) = read_response(&mut r).expect("response");
    (st, String::from_utf8(b).unwrap())
}

type Counters = Arc<Mutex<HashMap<String, u64>>>;

fn counter_server(
    workers: usize,
) -> (
    u16,
    ShutdownHandle,
    thread::JoinHandle<Result<(), stmjit_serve::RunError>>,
    Counters,
) {
    let counts: Counters = Arc::default();
    let c = counts.clone();
    let (port, h, t) = start(workers, move |_| {
        let c = c.clone();
        move |req: Request| {
            let mut m = c.lock().unwrap();
            let n = m.entry(req.path.clone()).or_insert(0);
            *n += 1;
            Response::text(200, n.to_string())
        }
    });
    (port, h, t, counts)
}

#[test]
fn bind_zero_gives_usable_port() {
    let (port, h, t) = start(1, |i| {
        move |req: Request| Response::text(200, format!("worker {i} {} {}", req.method, req.path))
    });
    assert_ne!(port, 0);
    let (st, body) = get(port, "/x?a=1");
    assert_eq!(st, 200);
    assert_eq!(body, "worker 0 GET /x");
    h.shutdown();
    t.join().unwrap().unwrap();
    // The listener is closed once run returned.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn request_fields() {
    let (port, h, t) = start(2, |_| {
        move |req: Request| {
            let hv = req
                .headers
                .iter()
                .find(|(k, _)| k == "x-thing")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            Response::new(
                201,
                vec![
                    ("Content-Type".into(), "application/x-test".into()),
                    ("Set-Cookie".into(), "a=1".into()),
                    ("Set-Cookie".into(), "b=2".into()),
                ],
                format!(
                    "{}|{}|{:?}|{}|{}",
                    req.method, req.path, req.query, hv, req.body
                )
                .into_bytes(),
            )
        }
    });
    let mut s = connect(port);
    s.write_all(
        b"POST /p/q?k=a%20b&x=1+2 HTTP/1.1\r\nHost: t\r\nX-Thing: V\r\nContent-Length: 5\r\n\r\nh\xc3\xa9!!",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let (st, hd, b) = read_response(&mut r).unwrap();
    assert_eq!(st, 201);
    assert_eq!(hd["content-type"], "application/x-test");
    assert_eq!(
        String::from_utf8(b).unwrap(),
        "POST|/p/q|[(\"k\", \"a b\"), (\"x\", \"1 2\")]|V|hé!!"
    );
    // Chunked body.
    let s = r.get_mut();
    s.write_all(b"PUT /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        .unwrap();
    let (st, _, b) = read_response(&mut r).unwrap();
    assert_eq!(st, 201);
    assert_eq!(String::from_utf8(b).unwrap(), "PUT|/c|[]||abcde");
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn twenty_thousand_keepalive_requests_exact_counts() {
    const CONNS: usize = 8;
    const PER_CONN: usize = 2500;
    const PATHS: usize = 10;
    let (port, h, t, counts) = counter_server(4);
    let seen: Arc<Mutex<HashMap<String, Vec<u64>>>> = Arc::default();
    let clients: Vec<_> = (0..CONNS)
        .map(|c| {
            let seen = seen.clone();
            thread::spawn(move || {
                let s = connect(port);
                let mut w = s.try_clone().unwrap();
                let mut r = BufReader::new(s);
                let mut mine: HashMap<String, Vec<u64>> = HashMap::new();
                for j in 0..PER_CONN {
                    let path = format!("/c{}", (c * 7 + j) % PATHS);
                    // One write per request (no Nagle/delayed-ACK stalls).
                    w.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
                        .unwrap();
                    let (st, hd, b) = read_response(&mut r).expect("keep-alive response");
                    assert_eq!(st, 200);
                    assert_eq!(hd["content-type"], "text/plain; charset=utf-8");
                    let n: u64 = String::from_utf8(b).unwrap().parse().unwrap();
                    mine.entry(path).or_default().push(n);
                }
                let mut all = seen.lock().unwrap();
                for (k, v) in mine {
                    all.entry(k).or_default().extend(v);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    h.shutdown();
    t.join().unwrap().unwrap();
    let counts = counts.lock().unwrap();
    let seen = seen.lock().unwrap();
    let total: u64 = counts.values().sum();
    assert_eq!(total, (CONNS * PER_CONN) as u64);
    assert_eq!(counts.len(), PATHS);
    for (path, n) in counts.iter() {
        // Every response carried a distinct count 1..=n for its path.
        let mut v = seen[path].clone();
        v.sort_unstable();
        assert_eq!(v, (1..=*n).collect::<Vec<_>>(), "path {path}");
    }
}

/// Sends raw bytes, half-closes, and returns the status of the first
/// response, or None if the server dropped the connection without one.
fn raw(port: u16, bytes: &[u8], half_close: bool) -> Option<u16> {
    let mut s = connect(port);
    // The server may answer and close before reading everything we send.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    let mut r = BufReader::new(s);
    read_response(&mut r).map(|(st, _, _)| st)
}

#[test]
fn abusive_requests_are_rejected_and_server_keeps_serving() {
    let (port, h, t, counts) = counter_server(2);
    let ok_or_4xx = |what: &str, st: Option<u16>| {
        if let Some(st) = st {
            assert!((400..500).contains(&st), "{what}: got {st}");
        }
        eprintln!("{what}: {st:?}");
        st
    };

    // Garbage request line.
    ok_or_4xx(
        "garbage",
        raw(port, b"\x01\x02garbage garbage\r\n\r\n", true),
    );
    ok_or_4xx("no version", raw(port, b"GET /\r\n\r\n", true));
    ok_or_4xx("binary", raw(port, &[0xffu8; 300], true));
    // A 100 KiB header.
    let mut big = b"GET /big HTTP/1.1\r\nHost: t\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100 << 10));
    big.extend(b"\r\n\r\n");
    assert_eq!(
        ok_or_4xx("100 KiB header", raw(port, &big, false)),
        Some(431)
    );
    // Declared body over max_body (10 MiB), only part of it sent.
    let mut over = b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 10485760\r\n\r\n".to_vec();
    over.extend(std::iter::repeat_n(b'x', 4096));
    assert_eq!(
        ok_or_4xx("oversized body", raw(port, &over, false)),
        Some(413)
    );
    // Absurd Content-Length.
    assert_eq!(
        ok_or_4xx(
            "absurd length",
            raw(
                port,
                b"POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000000000\r\n\r\nabc",
                false
            )
        ),
        Some(413)
    );
    // Chunked body over max_body.
    let mut chunked =
        b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for _ in 0..20 {
        chunked.extend(b"10000\r\n");
        chunked.extend(std::iter::repeat_n(b'y', 0x10000));
        chunked.extend(b"\r\n");
    }
    chunked.extend(b"0\r\n\r\n");
    assert_eq!(
        ok_or_4xx("chunked oversized", raw(port, &chunked, false)),
        Some(413)
    );
    // Half a request, then close: head only, and head plus part of a body.
    ok_or_4xx(
        "half head",
        raw(port, b"GET /half HTTP/1.1\r\nHost: t\r\nX-", true),
    );
    ok_or_4xx(
        "half small body",
        raw(
            port,
            b"POST /half HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc",
            true,
        ),
    );
    ok_or_4xx(
        "half big body",
        raw(
            port,
            b"POST /half HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\nabc",
            true,
        ),
    );
    // Connect and close without sending anything.
    drop(connect(port));
    // Non-UTF-8 body.
    assert_eq!(
        ok_or_4xx(
            "non-utf8",
            raw(
                port,
                b"POST /bin HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\n\xff\xfe\xfd\xfc",
                false
            )
        ),
        Some(400)
    );
    // Bad chunked encoding.
    ok_or_4xx(
        "bad chunk",
        raw(
            port,
            b"POST /bc HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
            true,
        ),
    );
    // Non-ASCII header.
    ok_or_4xx(
        "non-ascii header",
        raw(port, b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n", true),
    );

    // None of them reached the handler, and both workers still serve.
    for i in 1..=10 {
        assert_eq!(get(port, "/after"), (200, i.to_string()));
    }
    let c = counts.lock().unwrap().clone();
    assert_eq!(c.len(), 1, "{c:?}");
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn panicking_handler_gives_500_and_server_goes_on() {
    let (port, h, t) = start(1, |_| {
        move |req: Request| {
            if req.path == "/boom" {
                panic!("handler failure (expected by the test)");
            }
            Response::text(200, "fine")
        }
    });
    // Same keep-alive connection: 500, then the next request succeeds.
    let s = connect(port);
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /boom HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut r).unwrap().0, 500);
    w.write_all(b"GET /ok HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let (st, _, b) = read_response(&mut r).unwrap();
    assert_eq!((st, b.as_slice()), (200, &b"fine"[..]));
    assert_eq!(get(port, "/boom").0, 500);
    assert_eq!(get(port, "/ok"), (200, "fine".to_string()));
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn shutdown_from_inside_a_handler_drains_in_flight() {
    // /slow blocks until /stop has called shutdown(); both must be answered
    // and run() must return.
    let gate = Arc::new((Mutex::new((false, false)), Condvar::new())); // (slow started, stop done)
    let server = Server::bind(0, Limits::default()).unwrap();
    let port = server.port();
    let handle = server.shutdown_handle();
    let g = gate.clone();
    let returned = Arc::new(AtomicBool::new(false));
    let ret = returned.clone();
    let t = thread::spawn(move || {
        let r = server.run(4, move |_| {
            let g = g.clone();
            let handle = handle.clone();
            move |req: Request| {
                let (m, cv) = &*g;
                match req.path.as_str() {
                    "/slow" => {
                        let mut st = m.lock().unwrap();
                        st.0 = true;
                        cv.notify_all();
                        while !st.1 {
                            st = cv.wait(st).unwrap();
                        }
                        Response::text(200, "slow done")
                    }
                    "/stop" => {
                        handle.shutdown();
                        let mut st = m.lock().unwrap();
                        st.1 = true;
                        cv.notify_all();
                        Response::text(200, "stopping")
                    }
                    _ => Response::text(200, "other"),
                }
            }
        });
        ret.store(true, Ordering::SeqCst);
        r
    });
    let slow = thread::spawn(move || get(port, "/slow"));
    {
        let (m, cv) = &*gate;
        let mut st = m.lock().unwrap();
        while !st.0 {
            st = cv.wait(st).unwrap();
        }
    }
    assert!(!returned.load(Ordering::SeqCst));
    assert_eq!(get(port, "/stop"), (200, "stopping".to_string()));
    assert_eq!(slow.join().unwrap(), (200, "slow done".to_string()));
    t.join().unwrap().unwrap();
    assert!(returned.load(Ordering::SeqCst));
}

#[test]
fn shutdown_before_run_returns_at_once() {
    let server = Server::bind(0, Limits::default()).unwrap();
    server.shutdown_handle().shutdown();
    server
        .run(3, |_| |_req: Request| Response::text(200, ""))
        .unwrap();
}

#[test]
fn worker_state_is_built_on_its_own_thread_and_may_be_not_send() {
    use std::rc::Rc;
    let (port, h, t) = start(3, |i| {
        let name = thread::current().name().unwrap_or("").to_string();
        let local = Rc::new(std::cell::Cell::new(0u32)); // !Send
        move |_req: Request| {
            local.set(local.get() + 1);
            assert_eq!(thread::current().name().unwrap_or(""), name);
            Response::text(200, format!("{i}"))
        }
    });
    for _ in 0..20 {
        assert_eq!(get(port, "/").0, 200);
    }
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn silent_clients_do_not_hold_the_worker_or_the_shutdown() {
    // One worker. Clients that stop sending mid-body (a long body or a short one) or
    // mid-head must not keep the worker
    // from serving others, nor shutdown from returning.
    let (port, h, t) = start(1, |_| move |req: Request| Response::text(200, req.body));
    let mut long = connect(port);
    long.write_all(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n")
        .unwrap();
    long.write_all(&[b'a'; 100]).unwrap();
    let mut short = connect(port);
    short
        .write_all(b"POST /y HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let mut head = connect(port);
    head.write_all(b"GET /z HTTP/1.1\r\nHost").unwrap();
    thread::sleep(std::time::Duration::from_millis(100));
    for i in 0..3 {
        let mut s = connect(port);
        let body = format!("ok {i}");
        write!(
            s,
            "POST /z HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut r = BufReader::new(s);
        let (st, _, got) = read_response(&mut r).expect("response beside silent clients");
        assert_eq!((st, got), (200, body.into_bytes()));
    }
    let started = std::time::Instant::now();
    h.shutdown();
    t.join().unwrap().unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "shutdown waited for silent clients"
    );
    drop((long, short, head));
}

#[test]
fn many_keepalive_connections_opened_at_once_are_all_served() {
    // Connections opened together, each kept open after its answer: all are served.
    let (port, h, t, _) = counter_server(2);
    for round in 0..5 {
        let conns: Vec<_> = (0..24).map(|_| connect(port)).collect();
        let readers: Vec<_> = conns
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                thread::spawn(move || {
                    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
                        .unwrap();
                    write!(s, "GET /r{round}c{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
                    let mut r = BufReader::new(s);
                    let answer = read_response(&mut r).map(|(st, _, b)| (st, b));
                    (answer, r) // keep the connection open until all are answered
                })
            })
            .collect();
        let results: Vec<_> = readers.into_iter().map(|t| t.join().unwrap()).collect();
        for (i, (answer, _)) in results.iter().enumerate() {
            assert_eq!(
                answer.as_ref().map(|(st, b)| (*st, b.as_slice())),
                Some((200, &b"1"[..])),
                "round {round}, connection {i}"
            );
        }
    }
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn header_injection_and_interim_statuses_from_a_handler_answer_500() {
    let (port, h, t) = start(1, |_| {
        |req: Request| match req.path.as_str() {
            "/inject" => Response::new(
                200,
                vec![(
                    "Content-Type".into(),
                    "text/plain\r\nSet-Cookie: evil=1".into(),
                )],
                b"x".to_vec(),
            ),
            "/lf" => Response::new(
                200,
                vec![("X-A".into(), "1\nX-Evil: 1".into())],
                b"x".to_vec(),
            ),
            "/name" => Response::new(
                200,
                vec![("X-Evil: 1\r\nX".into(), "1".into())],
                b"x".to_vec(),
            ),
            "/framing" => Response::new(
                200,
                vec![("Content-Length".into(), "0".into())],
                b"evil".to_vec(),
            ),
            "/interim" => Response::text(101, "switching"),
            _ => Response::text(200, "fine"),
        }
    });
    for path in ["/inject", "/lf", "/name", "/framing", "/interim"] {
        let mut s = connect(port);
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 500"), "{path}: {answer:?}");
        assert!(!answer.to_ascii_lowercase().contains("evil"), "{answer:?}");
        assert_eq!(answer.matches("HTTP/1.1").count(), 1, "{answer:?}");
    }
    assert_eq!(get(port, "/ok"), (200, "fine".to_string()));
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn work_for_a_closed_connection_is_dropped_before_its_handler_starts() {
    // One worker, held by /block until released. Requests whose clients close meanwhile
    // wait in the queue; they never reach the handler.
    let gate = Arc::new((Mutex::new(false), Condvar::new()));
    let ran: Arc<Mutex<Vec<String>>> = Arc::default();
    let (g, r) = (gate.clone(), ran.clone());
    let (port, h, t) = start(1, move |_| {
        let (g, r) = (g.clone(), r.clone());
        move |req: Request| {
            r.lock().unwrap().push(req.path.clone());
            if req.path == "/block" {
                let (m, cv) = &*g;
                let mut open = m.lock().unwrap();
                while !*open {
                    open = cv.wait(open).unwrap();
                }
            }
            Response::text(200, req.path)
        }
    });
    let blocker = thread::spawn(move || get(port, "/block"));
    let started = std::time::Instant::now();
    while ran.lock().unwrap().is_empty() {
        assert!(started.elapsed() < std::time::Duration::from_secs(20));
        thread::sleep(std::time::Duration::from_millis(10));
    }
    for i in 0..20 {
        let mut s = connect(port);
        write!(s, "GET /abandoned{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
        drop(s);
    }
    // The I/O thread sees the closes while the requests wait for the worker.
    thread::sleep(std::time::Duration::from_millis(300));
    {
        let (m, cv) = &*gate;
        *m.lock().unwrap() = true;
        cv.notify_all();
    }
    assert_eq!(blocker.join().unwrap(), (200, "/block".to_string()));
    assert_eq!(get(port, "/after"), (200, "/after".to_string()));
    assert_eq!(*ran.lock().unwrap(), ["/block", "/after"]);
    h.shutdown();
    t.join().unwrap().unwrap();
}

/// A worker thread that cannot start (here: a stack larger than the address space) stops
/// `run` with the typed [`stmjit_serve::RunError::WorkerStart`], which the language's
/// `serve()` raises as a MemoryError (issue 20: it was told from the io::ErrorKind).
#[test]
fn a_worker_that_cannot_start_is_a_worker_start_error() {
    let server = Server::bind(0, Limits::default())
        .unwrap()
        .with_stack_size(1 << 46);
    match server.run(2, |_| |_req: Request| Response::text(200, "")) {
        Err(e @ stmjit_serve::RunError::WorkerStart(_)) => {
            assert!(
                e.to_string().starts_with("cannot start a worker thread: "),
                "{e}"
            );
        }
        other => panic!("expected WorkerStart, got {other:?}"),
    }
}
