//! Timeouts and caps of `Limits`, with real clients on loopback: each limit set low so that
//! the tests stay short; every wait is bounded.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use stmjit_serve::{Limits, Request, Response, Server, ShutdownHandle};

fn start<W, F>(
    limits: Limits,
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
    let server = Server::bind(0, limits).expect("bind");
    let port = server.port();
    let handle = server.shutdown_handle();
    (
        port,
        handle,
        thread::spawn(move || server.run(workers, make)),
    )
}

fn echo(
    limits: Limits,
) -> (
    u16,
    ShutdownHandle,
    thread::JoinHandle<Result<(), stmjit_serve::RunError>>,
) {
    start(limits, 2, |_| |req: Request| Response::text(200, req.path))
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

/// Reads until the server closes (bounded by the read timeout): what came.
fn until_close(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

/// Status and body of one answer (Content-Length framing).
fn answer(r: &mut BufReader<TcpStream>) -> Option<(u16, String)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status = line.split(' ').nth(1)?.parse().ok()?;
    let mut len = 0;
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    Some((status, String::from_utf8_lossy(&body).into_owned()))
}

fn get(port: u16, path: &str) -> (u16, String) {
    let mut s = connect(port);
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    answer(&mut BufReader::new(s)).expect("an answer")
}

fn stop(h: ShutdownHandle, t: thread::JoinHandle<Result<(), stmjit_serve::RunError>>) {
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn slowloris_and_idle_connections_are_closed_within_the_header_timeout() {
    let limits = Limits {
        header_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (port, h, t) = echo(limits);
    let started = Instant::now();
    // A head sent a byte at a time, never finished.
    let mut slow = connect(port);
    let mut silent = connect(port);
    let dripping = thread::spawn(move || {
        for b in b"GET /slow HTTP/1.1\r\nHost: t\r\nX-Drip: " {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        let mut rest = Vec::new();
        let _ = slow.read_to_end(&mut rest);
        Instant::now()
    });
    // A kept-alive connection that goes quiet after one request.
    let mut idle = BufReader::new(connect(port));
    write!(idle.get_mut(), "GET /once HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    assert_eq!(answer(&mut idle), Some((200, "/once".to_string())));
    let idle_closed = until_close(idle.get_mut());
    let idle_at = started.elapsed();
    let silent_got = until_close(&mut silent);
    let silent_at = started.elapsed();
    let slow_at = dripping.join().unwrap() - started;
    eprintln!("closed after: idle {idle_at:?}, silent {silent_at:?}, dripping {slow_at:?}");
    assert!(idle_closed.is_empty() && !silent_got.starts_with("HTTP/1.1 2"));
    for at in [idle_at, silent_at, slow_at] {
        assert!(at < Duration::from_secs(5), "closed only after {at:?}");
    }
    assert_eq!(get(port, "/after"), (200, "/after".to_string()));
    stop(h, t);
}

#[test]
fn a_client_that_stops_reading_loses_its_connection_and_blocks_nobody() {
    let limits = Limits {
        write_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    // Answers of 1 MiB, asked for in a pipeline never read.
    let (port, h, t) = start(limits, 1, |_| {
        |req: Request| {
            Response::text(
                200,
                if req.path == "/big" {
                    "x".repeat(1 << 20)
                } else {
                    req.path
                },
            )
        }
    });
    let mut hog = connect(port);
    let mut reqs = Vec::new();
    for _ in 0..16 {
        reqs.extend_from_slice(b"GET /big HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    hog.write_all(&reqs).unwrap();
    thread::sleep(Duration::from_millis(200));
    // Others are served meanwhile, by the one worker.
    let started = Instant::now();
    for i in 0..5 {
        assert_eq!(get(port, &format!("/o{i}")), (200, format!("/o{i}")));
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The hog's connection is closed: reading now ends (after what was buffered).
    thread::sleep(Duration::from_millis(1500));
    hog.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut sink = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let read_started = Instant::now();
    loop {
        match hog.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => total += n,
        }
        assert!(
            read_started.elapsed() < Duration::from_secs(15),
            "still open"
        );
    }
    eprintln!("the hog got {total} bytes before the close");
    assert!(total < 16 << 20, "every answer was written: {total}");
    stop(h, t);
}

#[test]
fn a_four_megabyte_header_line_gets_431_and_a_close() {
    let (port, h, t) = echo(Limits::default());
    let mut s = connect(port);
    let _ = s.write_all(b"GET /big HTTP/1.1\r\nHost: t\r\nX-Big: ");
    let line = vec![b'a'; 64 << 10];
    let mut sent = 0;
    // The server refuses once its 16 KiB are full: sending fails before 4 MB or the
    // answer arrives.
    for _ in 0..64 {
        if s.write_all(&line).is_err() {
            break;
        }
        sent += line.len();
    }
    let got = until_close(&mut s);
    eprintln!("sent {sent} bytes of header line");
    assert!(got.starts_with("HTTP/1.1 431"), "{got:?}");
    assert_eq!(get(port, "/after"), (200, "/after".to_string()));
    stop(h, t);
}

#[test]
fn a_body_that_does_not_come_gets_408() {
    let limits = Limits {
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let (port, h, t) = echo(limits);
    let mut s = connect(port);
    s.write_all(b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let got = until_close(&mut s);
    assert!(got.starts_with("HTTP/1.1 408"), "{got:?}");
    stop(h, t);
}

/// A server whose one worker blocks on `/block` until the gate opens.
type Gate = Arc<(Mutex<bool>, Condvar)>;

fn gated(
    limits: Limits,
) -> (
    u16,
    ShutdownHandle,
    thread::JoinHandle<Result<(), stmjit_serve::RunError>>,
    Gate,
) {
    let gate: Gate = Arc::default();
    let g = gate.clone();
    let (port, h, t) = start(limits, 1, move |_| {
        let g = g.clone();
        move |req: Request| {
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
    (port, h, t, gate)
}

fn open(gate: &Gate) {
    *gate.0.lock().unwrap() = true;
    gate.1.notify_all();
}

#[test]
fn a_full_queue_answers_503_at_once() {
    let limits = Limits {
        max_queue: 2,
        ..Limits::default()
    };
    let (port, h, t, gate) = gated(limits);
    let blocked = thread::spawn(move || get(port, "/block"));
    thread::sleep(Duration::from_millis(200));
    // Two wait in the queue, the next ones are refused.
    let waiting: Vec<_> = (0..2)
        .map(|i| thread::spawn(move || get(port, &format!("/w{i}"))))
        .collect();
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    for _ in 0..3 {
        assert_eq!(get(port, "/over").0, 503);
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    open(&gate);
    assert_eq!(blocked.join().unwrap().0, 200);
    for w in waiting {
        assert_eq!(w.join().unwrap().0, 200);
    }
    assert_eq!(get(port, "/after").0, 200);
    stop(h, t);
}

#[test]
fn connections_over_the_cap_get_503_and_a_close() {
    let limits = Limits {
        max_connections: 4,
        ..Limits::default()
    };
    let (port, h, t) = echo(limits);
    let held: Vec<_> = (0..4).map(|_| connect(port)).collect();
    thread::sleep(Duration::from_millis(200));
    let mut over = connect(port);
    let got = until_close(&mut over);
    assert!(got.starts_with("HTTP/1.1 503"), "{got:?}");
    drop(held);
    // The slots come back once those close.
    let started = Instant::now();
    loop {
        let mut s = connect(port);
        write!(
            s,
            "GET /again HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let got = until_close(&mut s);
        if got.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{got:?}");
        thread::sleep(Duration::from_millis(50));
    }
    stop(h, t);
}

#[test]
fn shutdown_drains_with_a_deadline() {
    let limits = Limits {
        shutdown_timeout: Duration::from_millis(500),
        ..Limits::default()
    };
    let (port, h, t, gate) = gated(limits);
    let mut blocked = connect(port);
    write!(blocked, "GET /block HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    h.shutdown();
    // The connection is closed at the deadline, before the handler ends.
    let got = until_close(&mut blocked);
    let closed = started.elapsed();
    assert!(got.is_empty(), "{got:?}");
    assert!(closed < Duration::from_secs(5), "closed after {closed:?}");
    // run returns once the running handler ended.
    open(&gate);
    t.join().unwrap().unwrap();
}
