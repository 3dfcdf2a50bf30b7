//! Protocol hygiene with raw clients: framing the server must refuse, answers it must
//! give, headers it must not send.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use stmjit_serve::{Limits, Request, Response, Server, ShutdownHandle};

/// (port, shutdown handle, the thread running the server, the paths the handler saw).
type Started = (
    u16,
    ShutdownHandle,
    thread::JoinHandle<Result<(), stmjit_serve::RunError>>,
    Arc<Mutex<Vec<String>>>,
);

/// A server that records the paths its handler saw and answers `METHOD path body`.
fn start() -> Started {
    let server = Server::bind(0, Limits::default()).expect("bind");
    let port = server.port();
    let handle = server.shutdown_handle();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let s = seen.clone();
    let t = thread::spawn(move || {
        server.run(2, move |_| {
            let s = s.clone();
            move |req: Request| {
                s.lock().unwrap().push(req.path.clone());
                Response::text(200, format!("{} {} {}", req.method, req.path, req.body))
            }
        })
    });
    (port, handle, t, seen)
}

/// Sends `bytes`, then reads until the server closes (or 10 s): everything it answered.
fn exchange(port: u16, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.write_all(bytes);
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got);
    String::from_utf8_lossy(&got).into_owned()
}

fn status(answer: &str) -> &str {
    answer.get(9..12).unwrap_or("")
}

#[test]
fn bad_framing_is_refused_with_400_and_never_reaches_the_handler() {
    let (port, h, t, seen) = start();
    let cases: [(&str, &[u8]); 4] = [
        (
            "conflicting Content-Length",
            b"POST /cl HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        ),
        (
            "invalid UTF-8 in the path",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ),
        (
            "invalid UTF-8 in the query",
            b"GET /q?k=\xc3\x28 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        ),
        (
            "invalid UTF-8 in a header",
            b"GET /h HTTP/1.1\r\nHost: t\r\nX-A: \xff\r\nConnection: close\r\n\r\n",
        ),
    ];
    for (what, bytes) in cases {
        let a = exchange(port, bytes);
        assert_eq!(status(&a), "400", "{what}: {a:?}");
        assert!(!a.to_ascii_lowercase().contains("server:"), "{what}: {a:?}");
    }
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn upgrades_get_501_and_a_close() {
    let (port, h, t, seen) = start();
    for bytes in [
        &b"GET /ws HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"[..],
        &b"GET /h2 HTTP/1.1\r\nHost: t\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"[..],
        &b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"[..],
    ] {
        // No `Connection: close` from the client: the server closes by itself.
        let a = exchange(port, bytes);
        assert_eq!(status(&a), "501", "{a:?}");
        assert_eq!(a.matches("HTTP/1.1").count(), 1, "{a:?}");
    }
    assert!(seen.lock().unwrap().is_empty());
    h.shutdown();
    t.join().unwrap().unwrap();
}

#[test]
fn well_formed_requests_get_clean_answers() {
    let (port, h, t, _) = start();
    // Pipelined: GET, HEAD (no body, same length), chunked POST, then a close.
    let a = exchange(
        port,
        b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n\
          HEAD /b HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n\
          GET /d HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    let answers: Vec<&str> = a.split("HTTP/1.1 ").filter(|s| !s.is_empty()).collect();
    assert_eq!(answers.len(), 4, "{a:?}");
    assert!(answers[0].ends_with("GET /a "), "{a:?}");
    assert!(
        answers[1].contains("content-length: 8\r\n") && answers[1].ends_with("\r\n\r\n"),
        "{a:?}"
    );
    assert!(answers[2].ends_with("POST /c hi"), "{a:?}");
    assert!(answers[3].ends_with("GET /d "), "{a:?}");
    // Nothing names the server software.
    assert!(!a.to_ascii_lowercase().contains("server:"), "{a:?}");
    assert!(!a.to_ascii_lowercase().contains("hyper"), "{a:?}");
    // A body may hold bare LFs: only heads are framing.
    let a = exchange(
        port,
        b"POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\na\nb\n",
    );
    assert!(
        a.starts_with("HTTP/1.1 200") && a.ends_with("POST /body a\nb\n"),
        "{a:?}"
    );
    h.shutdown();
    t.join().unwrap().unwrap();
}

/// Bare LF line endings in a head (RFC 9112 2.2 lets a server refuse them; a proxy that
/// reads them otherwise is how requests are smuggled): a 400 and a close, after the answers
/// to the connection's earlier requests, and the handler never sees that request.
#[test]
fn bare_lf_heads_get_400_after_the_earlier_answers() {
    let (port, h, t, seen) = start();
    let a = exchange(port, b"GET /lf HTTP/1.1\nHost: t\nConnection: close\n\n");
    assert_eq!(status(&a), "400", "{a:?}");
    assert!(a.ends_with("bare LF line ending in the request\n"), "{a:?}");
    // Only the last line end bare, after a pipelined request and a body holding LFs.
    let a = exchange(
        port,
        b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n\
          POST /second HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n\n\n\
          GET /smuggled HTTP/1.1\r\nHost: t\r\n\n",
    );
    let answers: Vec<&str> = a.split("HTTP/1.1 ").filter(|s| !s.is_empty()).collect();
    assert_eq!(answers.len(), 3, "{a:?}");
    assert!(
        answers[0].starts_with("200") && answers[0].ends_with("GET /first "),
        "{a:?}"
    );
    assert!(
        answers[1].starts_with("200") && answers[1].ends_with("POST /second \n\n"),
        "{a:?}"
    );
    assert!(answers[2].starts_with("400"), "{a:?}");
    assert_eq!(*seen.lock().unwrap(), ["/first", "/second"]);
    h.shutdown();
    t.join().unwrap().unwrap();
}
