//! Requests declaring a body over the limit are refused without reading it, and leave
//! no thread or descriptor behind. One test in its own binary: it counts this process's
//! threads and descriptors, which other tests running alongside would disturb.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use stmjit_serve::{Limits, Request, Response, Server};

fn count(dir: &str) -> usize {
    std::fs::read_dir(dir).unwrap().count()
}

fn threads() -> usize {
    count("/proc/self/task")
}

fn fds() -> usize {
    count("/proc/self/fd")
}

/// Sends a head declaring `len` body bytes and only 3 of them, keeps the connection open
/// (no half close), and reads what comes back until the server closes: the answer must
/// arrive and the connection must end without the client sending the body.
fn refused(port: u16, len: u64) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "POST /up HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\nabc"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer)
        .expect("the server closes the connection (no read timeout)");
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(port: u16) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    answer
}

/// Waits (bounded) until `f() <= limit`; returns the last value.
fn settles(limit: usize, f: fn() -> usize) -> usize {
    let start = Instant::now();
    loop {
        let n = f();
        if n <= limit || start.elapsed() > Duration::from_secs(20) {
            return n;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Absurd-length requests per run: 20 000 (the figure) with STMJIT_HEAVY set,
/// fewer in the default run (CI).
fn rounds() -> usize {
    if std::env::var_os("STMJIT_HEAVY").is_some() {
        20_000
    } else {
        1_000
    }
}

#[test]
fn oversized_bodies_get_413_unread_and_leak_nothing() {
    let server = Server::bind(0, Limits::default()).unwrap();
    let port = server.port();
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || server.run(2, |_| |req: Request| Response::text(200, req.path)));
    assert!(get(port).starts_with("HTTP/1.1 200"));
    thread::sleep(Duration::from_millis(200));
    let (t0, f0) = (threads(), fds());

    // Over max_body (1 MiB), and absurd: each gets its 413 and a close without the
    // client sending the body, and a client holding such a connection open blocks nobody.
    let started = Instant::now();
    let n = rounds();
    for i in 0..n {
        let len = if i % 2 == 0 {
            32 << 20
        } else {
            1_000_000_000_000
        };
        let a = refused(port, len);
        assert!(a.starts_with("HTTP/1.1 413"), "request {i}: {a:?}");
        if i % 500 == 0 {
            assert!(get(port).starts_with("HTTP/1.1 200"));
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "too slow at {i}"
        );
    }
    // Nothing leaks: no thread, no descriptor.
    let (t1, f1) = (settles(t0, threads), settles(f0, fds));
    eprintln!("{n} refused: threads {t0} -> {t1}, fds {f0} -> {f1}");
    assert!(t1 <= t0, "threads {t0} -> {t1}");
    assert!(f1 <= f0, "fds {f0} -> {f1}");
    assert!(get(port).starts_with("HTTP/1.1 200"));

    stop.shutdown();
    t.join().unwrap().unwrap();
}
