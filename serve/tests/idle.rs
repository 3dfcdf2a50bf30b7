//! Idle keep-alive connections cost memory, not threads: 2 000 of them are held by the one
//! I/O thread while a fresh client is answered at once. One test in its own binary: it
//! counts this process's threads and raises its descriptor limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::{Duration, Instant};

use stmjit_serve::{Limits, Request, Response, Server};

const IDLE: usize = 2_000;

fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

/// Raises the soft descriptor limit to what both ends of `IDLE` connections need; the
/// number of connections that fit.
fn room_for_connections() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write to.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    lim.rlim_cur = lim.rlim_max.min(2 * IDLE as u64 + 256);
    // SAFETY: `lim` is a valid rlimit to read.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    ((lim.rlim_cur as usize).saturating_sub(256) / 2).min(IDLE)
}

/// One keep-alive request on `s`: the status line and body of its answer.
fn ask(s: &mut BufReader<TcpStream>, path: &str) -> (String, String) {
    write!(s.get_mut(), "GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let mut status = String::new();
    s.read_line(&mut status).unwrap();
    let mut len = 0;
    loop {
        let mut h = String::new();
        s.read_line(&mut h).unwrap();
        let h = h.trim_end().to_ascii_lowercase();
        if h.is_empty() {
            break;
        }
        if let Some(v) = h.strip_prefix("content-length:") {
            len = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).unwrap();
    (
        status.trim_end().to_string(),
        String::from_utf8(body).unwrap(),
    )
}

fn connect(port: u16) -> BufReader<TcpStream> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.set_nodelay(true).unwrap();
    BufReader::new(s)
}

#[test]
fn two_thousand_idle_connections_hold_no_thread() {
    let n = room_for_connections();
    let server = Server::bind(0, Limits::default()).unwrap();
    let port = server.port();
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || server.run(2, |_| |req: Request| Response::text(200, req.path)));
    let mut idle = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let mut c = connect(port);
        // Every tenth one has been served once and idles in keep-alive; the others never
        // sent a byte.
        if i % 10 == 0 {
            assert_eq!(ask(&mut c, "/k").1, "/k");
        }
        idle.push(c);
        assert!(started.elapsed() < Duration::from_secs(120), "slow at {i}");
    }
    let held = threads();
    let mut fresh = connect(port);
    let asked = Instant::now();
    let (status, body) = ask(&mut fresh, "/fresh");
    let took = asked.elapsed();
    eprintln!("{n} idle connections: {held} threads in this process; fresh answer in {took:?}");
    assert_eq!(
        (status.as_str(), body.as_str()),
        ("HTTP/1.1 200 OK", "/fresh")
    );
    assert!(held <= 32, "{held} threads for {n} idle connections");
    assert!(
        took < Duration::from_secs(2),
        "fresh client waited {took:?}"
    );
    // The idle ones are still served.
    for c in idle.iter_mut().step_by(97) {
        assert_eq!(ask(c, "/again").1, "/again");
    }
    stop.shutdown();
    t.join().unwrap().unwrap();
    drop(idle);
}
