//! `serve(port, handler)` end to end: the built `stmjit` runs `tests/serve/app.lang`, which
//! serves on a free port and prints it; the tests drive it over loopback with plain
//! `TcpStream` clients (keep-alive, raw bytes, abrupt disconnects) and check every answer,
//! the program's output, its exit status and its `--stats` lines.
//!
//! Each program run is killed after [`TIMEOUT`] and the test fails: a hang is a failure.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

/// A running `stmjit run app.lang`, killed when dropped (a failing test leaves no process).
struct App {
    child: Child,
    port: u16,
    /// Lines of stdout after the `port N` line.
    stdout: mpsc::Receiver<String>,
    stderr: thread::JoinHandle<String>,
    started: Instant,
}

/// How the program ended.
struct Exit {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

impl App {
    /// Starts the test service with `flags` (before the file) and extra environment.
    fn start(flags: &[&str], env: &[(&str, &str)]) -> App {
        App::start_file("tests/serve", "app.lang", flags, env)
    }

    /// Runs `stmjit run FLAGS FILE` in `dir` (relative to the repository) and reads the
    /// port from its first line of output (`port N`, or a `http://127.0.0.1:N` address).
    fn start_file(dir: &str, file: &str, flags: &[&str], env: &[(&str, &str)]) -> App {
        App::start_args(dir, file, flags, env, &[])
    }

    /// As [`App::start_file`], with arguments for the program (after the file).
    fn start_args(
        dir: &str,
        file: &str,
        flags: &[&str],
        env: &[(&str, &str)],
        args: &[&str],
    ) -> App {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
        cmd.arg("run").args(flags).arg(file).args(args);
        App::start_cmd(dir, cmd, env)
    }

    /// Starts `cmd` (a run of stmjit, maybe through a shell) in `dir`.
    fn start_cmd(dir: &str, mut cmd: Command, env: &[(&str, &str)]) -> App {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        cmd.current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("cannot run stmjit");
        let out = child.stdout.take().unwrap();
        let mut err = child.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let started = Instant::now();
        let first = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the program printed no port");
        let port = first
            .strip_prefix("port ")
            .or_else(|| first.split("http://127.0.0.1:").nth(1))
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("expected `port N`, got {first:?}"));
        assert_ne!(port, 0, "server_port() gave 0 after serve(0, h)");
        App {
            child,
            port,
            stdout: rx,
            stderr,
            started,
        }
    }

    /// Waits for the program to end (after `/stop`); fails after [`TIMEOUT`].
    fn wait(mut self) -> Exit {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stdout = Vec::new();
                while let Ok(l) = self.stdout.recv_timeout(Duration::from_secs(5)) {
                    stdout.push(l);
                }
                let stderr = std::mem::replace(&mut self.stderr, thread::spawn(String::new));
                return Exit {
                    code: status.code(),
                    stdout,
                    stderr: stderr.join().unwrap(),
                };
            }
            assert!(
                self.started.elapsed() < TIMEOUT,
                "the program did not end within {TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn connect(&self) -> Conn {
        Conn::new(self.port)
    }

    /// One request on a fresh connection.
    fn get(&self, path: &str) -> (u16, String) {
        let mut c = self.connect();
        let (st, _, body) = c.request("GET", path, &[], b"");
        (st, body)
    }
}

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive client connection.
struct Conn {
    w: TcpStream,
    r: BufReader<TcpStream>,
}

impl Conn {
    fn new(port: u16) -> Conn {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        s.set_nodelay(true).unwrap();
        Conn {
            w: s.try_clone().unwrap(),
            r: BufReader::new(s),
        }
    }

    /// Sends one request (one write) and reads its answer: (status, content type, body).
    fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let mut msg = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            msg.push_str(&format!("{k}: {v}\r\n"));
        }
        msg.push_str("\r\n");
        let mut bytes = msg.into_bytes();
        bytes.extend_from_slice(body);
        self.w.write_all(&bytes).expect("send request");
        let (st, h, b) = read_response(&mut self.r).expect("no response");
        let ct = h.get("content-type").cloned().unwrap_or_default();
        (st, ct, String::from_utf8(b).expect("utf-8 body"))
    }
}

/// Reads one response: (status, lower-case headers, body); None on EOF or a broken answer.
fn read_response(r: &mut impl BufRead) -> Option<(u16, HashMap<String, String>, Vec<u8>)> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let status: u16 = line.split(' ').nth(1)?.parse().ok()?;
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
    }
    let n: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; n];
    r.read_exact(&mut body).ok()?;
    Some((status, headers, body))
}

/// Runs `conns` concurrent keep-alive connections of `per_conn` `/inc/kN` requests each
/// (8 keys), checks that every answer is 200 and that, per key, the answers are exactly
/// 1..=n (each increment seen once, none lost), then that `/counts` agrees. Returns the
/// number of requests made.
fn hammer_counters(app: &App, conns: usize, per_conn: usize) -> usize {
    const KEYS: usize = 8;
    let port = app.port;
    let clients: Vec<_> = (0..conns)
        .map(|c| {
            thread::spawn(move || {
                let mut conn = Conn::new(port);
                let mut seen = Vec::with_capacity(per_conn);
                for i in 0..per_conn {
                    let k = (c + i) % KEYS;
                    let (st, ct, body) = conn.request("GET", &format!("/inc/k{k}"), &[], b"");
                    assert_eq!(st, 200, "/inc/k{k}: {body}");
                    assert_eq!(ct, "text/plain; charset=utf-8");
                    let n: usize = body.parse().unwrap_or_else(|_| panic!("body {body:?}"));
                    seen.push((k, n));
                }
                seen
            })
        })
        .collect();
    let mut per_key: Vec<Vec<usize>> = vec![Vec::new(); KEYS];
    for c in clients {
        for (k, n) in c.join().expect("client failed") {
            per_key[k].push(n);
        }
    }
    let mut expected = Vec::new();
    for (k, mut ns) in per_key.into_iter().enumerate() {
        ns.sort_unstable();
        let want: Vec<usize> = (1..=ns.len()).collect();
        assert!(ns == want, "key k{k}: the answers are not 1..={}", ns.len());
        expected.push(format!("k{k}={}", ns.len()));
    }
    let (st, counts) = app.get("/counts");
    assert_eq!(st, 200);
    let mut got: Vec<&str> = counts.split(' ').collect();
    got.sort_unstable();
    assert_eq!(got, expected, "final counts");
    conns * per_conn
}

/// `/stop`, then the program must end with status 0 having served `requests` handler calls.
fn stop_and_check(app: App, requests: usize) -> Exit {
    let (st, body) = app.get("/stop");
    assert_eq!((st, body.as_str()), (200, "stopping"));
    let exit = app.wait();
    assert_eq!(exit.code, Some(0), "exit status; stderr:\n{}", exit.stderr);
    assert_eq!(
        exit.stdout.last().map(String::as_str),
        Some(format!("served {requests}").as_str()),
        "the program's last line (handler calls seen by the program)"
    );
    assert!(!exit.stderr.contains("panicked"), "{}", exit.stderr);
    exit
}

/// The `requests served: N (handler errors E, handler transactions retried R)` line.
fn served_line(stderr: &str) -> (usize, usize, usize) {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("requests served:"))
        .unwrap_or_else(|| panic!("no `requests served` line in:\n{stderr}"));
    let nums: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    (nums[0], nums[1], nums[2])
}

#[test]
fn twenty_thousand_requests_from_concurrent_connections_count_exactly() {
    let app = App::start(&["--stats"], &[]);
    let n = hammer_counters(&app, 4, 5000);
    assert_eq!(n, 20_000);
    // + /counts and /stop.
    let exit = stop_and_check(app, n + 2);
    let (served, errors, _) = served_line(&exit.stderr);
    assert_eq!((served, errors), (n + 2, 0), "{}", exit.stderr);
}

#[test]
fn handler_retries_are_invisible_and_print_once() {
    // Every commit of a handler aborts with probability 0.3: each call is retried until it
    // commits, its effects and its output appear once.
    let app = App::start(&["--stats"], &[("STMJIT_ABORT_PROBABILITY", "0.3")]);
    let n = hammer_counters(&app, 2, 500);
    let mut c = app.connect();
    for i in 0..50 {
        let (st, _, body) = c.request("GET", &format!("/print?n={i}"), &[], b"");
        assert_eq!((st, body.as_str()), (200, "printed"));
    }
    let exit = stop_and_check(app, n + 2 + 50);
    let printed: Vec<&String> = exit
        .stdout
        .iter()
        .filter(|l| l.starts_with("handler printed"))
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("handler printed {i}")).collect();
    assert_eq!(
        printed.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        want.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "output of handlers: once each, in commit order"
    );
    let (served, errors, retried) = served_line(&exit.stderr);
    assert_eq!((served, errors), (n + 52, 0));
    assert!(
        retried > 0,
        "no handler transaction was retried:\n{}",
        exit.stderr
    );
}

/// Sends `requests` on one connection in one write (pipelined), then reads their answers.
fn pipelined(port: u16, requests: &[String]) -> Vec<(u16, String)> {
    let mut c = Conn::new(port);
    let mut bytes = Vec::new();
    for path in requests {
        bytes.extend(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
    }
    c.w.write_all(&bytes).expect("send pipelined requests");
    (0..requests.len())
        .map(|i| {
            let (st, _, b) = read_response(&mut c.r)
                .unwrap_or_else(|| panic!("no answer to pipelined request {i}"));
            (st, String::from_utf8(b).unwrap())
        })
        .collect()
}

#[test]
fn pipelined_requests_of_one_connection_run_in_order() {
    // Set-then-get pairs and increments pipelined on one connection: each request starts
    // only after the previous one committed, so no get is stale and the increments answer
    // 1, 2, 3... in order; connections run in parallel (2 segments, forced aborts).
    const PAIRS: usize = 300;
    let app = App::start(
        &["--threads", "2", "--stats"],
        &[("STMJIT_ABORT_PROBABILITY", "0.2")],
    );
    let port = app.port;
    let clients: Vec<_> = (0..4)
        .map(|c| {
            thread::spawn(move || {
                let mut reqs = Vec::new();
                for i in 0..PAIRS {
                    reqs.push(format!("/put/c{c}?v={i}"));
                    reqs.push(format!("/val/c{c}"));
                    reqs.push(format!("/inc/p{c}"));
                }
                let answers = pipelined(port, &reqs);
                let mut stale = 0;
                for i in 0..PAIRS {
                    assert_eq!(answers[3 * i], (200, "ok".to_string()));
                    if answers[3 * i + 1] != (200, i.to_string()) {
                        stale += 1;
                    }
                    assert_eq!(
                        answers[3 * i + 2],
                        (200, (i + 1).to_string()),
                        "increment {i}"
                    );
                }
                stale
            })
        })
        .collect();
    let stale: usize = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(stale, 0, "stale reads of pipelined set-then-get pairs");
    stop_and_check(app, 4 * 3 * PAIRS + 1);
}

#[test]
fn options_headers_and_repeated_query_keys() {
    // app.lang passes its first argument, decoded from JSON, as serve's options.
    let app = App::start_args(
        "tests/serve",
        "app.lang",
        &["--stats"],
        &[],
        &[r#"{"max_body": 10, "header_timeout": 0.5, "host": "127.0.0.1"}"#],
    );
    let mut c = app.connect();
    let (st, ct, body) = c.request("GET", "/headers?a=1&b=2&a=3&a=", &[], b"");
    assert_eq!((st, ct.as_str()), (201, "application/json"));
    assert_eq!(body, r#"{"a": ["1", "3", ""], "b": ["2"]}"#);
    // Both Set-Cookie headers, in order, and no header naming the server.
    let mut raw = app.connect();
    raw.w
        .write_all(b"GET /headers HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = String::new();
    loop {
        let mut line = String::new();
        raw.r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(
        head.contains("set-cookie: a=1\r\nset-cookie: b=2\r\n"),
        "{head}"
    );
    assert!(head.contains("x-answer: 42\r\n"), "{head}");
    assert!(!head.contains("server:"), "{head}");
    // A framing header from the handler is refused (500, printed).
    let (st, _, body) = c.request("GET", "/badheader", &[], b"");
    assert_eq!(st, 500, "{body}");
    // max_body: 10.
    let (st, _, body) = c.request("POST", "/echo", &[], b"0123456789");
    assert_eq!((st, body.as_str()), (201, "POST|/echo||-|0123456789"));
    let mut big = app.connect();
    big.w
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n01234567890")
        .unwrap();
    assert_eq!(read_response(&mut big.r).map(|r| r.0), Some(413));
    // header_timeout: 0.5 s; an idle connection is closed well within 10 s.
    let started = Instant::now();
    let mut idle = app.connect();
    let mut rest = Vec::new();
    let _ = idle.r.read_to_end(&mut rest);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "idle kept {:?}",
        started.elapsed()
    );
    drop(c);
    let exit = stop_and_check(app, 5);
    assert!(
        exit.stderr.contains("is set by the server"),
        "{}",
        exit.stderr
    );
    // --stats: request latency percentiles next to the request count.
    let latency = exit
        .stderr
        .lines()
        .find(|l| l.trim_start().starts_with("request latency: p50 "))
        .unwrap_or_else(|| panic!("no latency line in:\n{}", exit.stderr));
    assert!(
        latency.contains(" ms, p99 ") && latency.ends_with("(5 answered by handlers)"),
        "{latency}"
    );
}

#[test]
fn out_of_descriptors_then_serving_again_at_once() {
    // The server runs with at most 256 descriptors; 400 clients connect (most cannot be
    // accepted: EMFILE), then close. The server backs off and serves again at once.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 256 && exec \"$0\" run app.lang",
        env!("CARGO_BIN_EXE_stmjit"),
    ]);
    let app = App::start_cmd("tests/serve", cmd, &[]);
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], app.port));
    // (Beyond the accept backlog a connect waits for SYN retries: not for long here.)
    let conns: Vec<TcpStream> = (0..400)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    assert!(conns.len() > 256, "only {} connected", conns.len());
    thread::sleep(Duration::from_millis(300));
    drop(conns);
    let started = Instant::now();
    let mut served = 0;
    for i in 0..20 {
        assert_eq!(app.get(&format!("/inc/after{i}")), (200, "1".to_string()));
        served += 1;
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(10),
        "serving again took {took:?}"
    );
    stop_and_check(app, served + 1);
}

/// `STMJIT_HEAVY=1`: the issue's 100 000 requests over keep-alive connections with 30%
/// forced aborts, counts exact (a few minutes; not in the default run).
#[test]
fn heavy_hundred_thousand_requests_with_forced_aborts() {
    if std::env::var_os("STMJIT_HEAVY").is_none() {
        eprintln!("skipped: set STMJIT_HEAVY=1 to run");
        return;
    }
    let app = App::start(&["--stats"], &[("STMJIT_ABORT_PROBABILITY", "0.3")]);
    let n = hammer_counters(&app, 4, 25_000);
    let exit = stop_and_check(app, n + 2);
    let (served, errors, retried) = served_line(&exit.stderr);
    assert_eq!((served, errors), (n + 2, 0), "{}", exit.stderr);
    assert!(retried > 0);
}

#[test]
fn gil_and_one_segment_serve_the_same() {
    for flags in [&["--gil"][..], &["--threads", "1"][..]] {
        let app = App::start(flags, &[]);
        let n = hammer_counters(&app, 3, 300);
        stop_and_check(app, n + 2);
    }
}

#[test]
fn request_fields_and_answer_forms() {
    let app = App::start(&[], &[]);
    let mut c = app.connect();
    let (st, ct, body) = c.request(
        "POST",
        "/echo?a=1&b=x+y&c=%C3%A9",
        &[("X-Test", "Hello There")],
        "payload é".as_bytes(),
    );
    assert_eq!(st, 201);
    assert_eq!(ct, "application/x-echo");
    assert_eq!(body, "POST|/echo|a=1,b=x y,c=é|Hello There|payload é");
    let (st, _, body) = c.request("GET", "/echo", &[], b"");
    assert_eq!((st, body.as_str()), (201, "GET|/echo||-|"));
    let (st, ct, body) = c.request("GET", "/nowhere", &[], b"");
    assert_eq!(
        (st, ct.as_str(), body.as_str()),
        (404, "text/plain; charset=utf-8", "no route /nowhere")
    );
    let (st, _, body) = c.request("GET", "/port", &[], b"");
    assert_eq!((st, body), (200, app.port.to_string()));
    // A tuple answer with tuple header pairs; the tuple in the JSON is an array.
    let (st, ct, body) = c.request("GET", "/tuple", &[], b"");
    assert_eq!(
        (st, ct.as_str(), body.as_str()),
        (302, "application/json", r#"{"pair": [1, 2]}"#)
    );
    let (st, _, body) = c.request("GET", "/badtuple", &[], b"");
    assert_eq!(st, 500, "{body}");
    assert!(
        body.starts_with("TypeError: the handler returned a tuple of 2 items"),
        "{body:?}"
    );
    stop_and_check(app, 6 + 1);
}

#[test]
fn a_handler_error_answers_500_and_the_next_request_is_served() {
    let app = App::start(&["--stats"], &[]);
    let mut c = app.connect();
    let cases = [
        (
            "/boom",
            "ZeroDivisionError: integer division or modulo by zero",
        ),
        ("/missing", "KeyError: 'no such key'"),
        ("/bad", "TypeError: the handler returned 'int'"),
        (
            "/badlist",
            "TypeError: the handler returned a list of 2 items",
        ),
        // Header injection and a 1xx (which would shift every later answer) are refused.
        (
            "/inject",
            "TypeError: the handler's answer cannot be sent: the header \"Content-Type\" contains the control character '\\r'",
        ),
        (
            "/interim",
            "TypeError: the handler's status must be an int in 200..999, not 103",
        ),
        (
            "/objstatus",
            "TypeError: the handler's status must be an int in 200..999, not 'Status'",
        ),
    ];
    for (i, (path, text)) in cases.iter().enumerate() {
        // Same keep-alive connection: the error answer, then a normal one.
        let (st, _, body) = c.request("GET", path, &[], b"");
        assert_eq!(st, 500, "{path}: {body}");
        assert!(body.starts_with(text), "{path}: {body:?}");
        let (st, _, body) = c.request("GET", "/inc/after", &[], b"");
        assert_eq!((st, body), (200, (i + 1).to_string()), "after {path}");
    }
    // The effects before the error stand (as with a GIL): /boom counted before dividing.
    let (_, _, counts) = c.request("GET", "/counts", &[], b"");
    assert_eq!(counts, "boom=1 after=7");
    let exit = stop_and_check(app, 14 + 1 + 1);
    for needle in [
        "error: ZeroDivisionError: integer division or modulo by zero\n  at app.lang:",
        "in handle\n",
        "error: KeyError: 'no such key'\n",
        "error: TypeError: the handler returned 'int'",
        "error: TypeError: the handler's answer cannot be sent",
    ] {
        assert!(
            exit.stderr.contains(needle),
            "{needle:?} in:\n{}",
            exit.stderr
        );
    }
    let (served, errors, _) = served_line(&exit.stderr);
    assert_eq!((served, errors), (16, 7));
}

/// Sends raw bytes (optionally half-closing), returns the first answer's status or None if
/// the server dropped the connection without one.
fn raw(port: u16, bytes: &[u8], half_close: bool) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    // The server may answer and close before reading everything.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(std::net::Shutdown::Write);
    }
    // The status line only: a refused request's answer may have no Content-Length.
    let mut line = String::new();
    BufReader::new(s).read_line(&mut line).ok()?;
    line.split(' ').nth(1)?.parse().ok()
}

#[test]
fn malformed_and_abusive_requests_are_refused_and_serving_goes_on() {
    let app = App::start(&[], &[]);
    let port = app.port;
    let probes = std::cell::Cell::new(0);
    let refused = |what: &str, st: Option<u16>, want: Option<u16>| {
        if let Some(st) = st {
            assert!((400..500).contains(&st), "{what}: answered {st}");
        }
        if want.is_some() {
            assert_eq!(st, want, "{what}");
        }
        // And the server still answers.
        probes.set(probes.get() + 1);
        let (st, body) = app.get("/hits");
        assert_eq!(st, 200, "after {what}: {body}");
    };
    refused(
        "garbage request line",
        raw(port, b"\x01\x02 garbage\r\n\r\n", true),
        Some(400),
    );
    refused("no request line", raw(port, b"\r\n\r\n", true), None);
    let huge = format!(
        "GET /inc/huge HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(64 << 10)
    );
    refused(
        "64 KiB header",
        raw(port, huge.as_bytes(), false),
        Some(431),
    );
    let big = b"POST /inc/big HTTP/1.1\r\nHost: t\r\nContent-Length: 2097152\r\n\r\nxxxx";
    refused("body over the limit", raw(port, big, false), Some(413));
    let absurd = b"POST /inc/absurd HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999\r\n\r\n";
    refused("absurd content length", raw(port, absurd, false), Some(413));
    refused(
        "disconnect in the head",
        raw(port, b"GET /inc/cut HTTP/1.1\r\nHost: t\r\nX-A", true),
        None,
    );
    refused(
        "disconnect in the body",
        raw(
            port,
            b"POST /inc/cut HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nonly this",
            true,
        ),
        None,
    );
    let bad_utf8 = b"POST /inc/utf HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n\xff\xfe";
    // Not half-closed: a client that closes its side before its answer is made is taken
    // as gone (its work is dropped), so whether it still got the 400 would be a race.
    refused("non-UTF-8 body", raw(port, bad_utf8, false), Some(400));
    refused(
        "bad chunked body",
        raw(
            port,
            b"POST /inc/chunk HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            true,
        ),
        None,
    );
    refused("connect and close", raw(port, b"", true), None);
    // Clients that stop sending mid-body and stay connected, more of them than workers:
    // their bodies are read off the workers, which go on serving.
    let stalled: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
            let head = b"POST /inc/stalled HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n";
            s.write_all(head).unwrap();
            s.write_all(&[b'x'; 100]).unwrap();
            s
        })
        .collect();
    // Several at once while normal clients run.
    let noisy: Vec<_> = (0..4)
        .map(|i| {
            thread::spawn(move || {
                for _ in 0..10 {
                    let _ = raw(port, &b"GET / HTTP/1.1\r\nHost"[..], true);
                    let _ = raw(port, format!("NOT HTTP {i}\r\n\r\n").as_bytes(), true);
                }
            })
        })
        .collect();
    let n = hammer_counters(&app, 2, 200);
    for t in noisy {
        t.join().unwrap();
    }
    drop(stalled);
    // None of the refused requests reached the handler: only the probes (/hits), the
    // counter requests, /counts and this /hits did (`/hits` answers the handler calls).
    let (st, hits) = app.get("/hits");
    let calls = probes.get() + n + 1 + 1;
    assert_eq!((st, hits), (200, calls.to_string()));
    stop_and_check(app, calls + 1);
}

#[test]
fn shutdown_answers_the_requests_in_flight_then_the_program_ends() {
    let app = App::start(&[], &[]);
    let port = app.port;
    // A slow request (tens of ms at least), in flight when /stop arrives.
    let slow = thread::spawn(move || {
        let mut c = Conn::new(port);
        c.request("GET", "/slow?n=150000", &[], b"")
    });
    thread::sleep(Duration::from_millis(30));
    let t0 = Instant::now();
    let (st, body) = app.get("/stop");
    assert_eq!((st, body.as_str()), (200, "stopping"));
    let (st, _, body) = slow.join().unwrap();
    assert_eq!(
        (st, body.as_str()),
        (200, "primes 13848"),
        "the slow request"
    );
    let exit = app.wait();
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert_eq!(exit.stdout.last().map(String::as_str), Some("served 2"));
    assert!(t0.elapsed() < Duration::from_secs(60));
    // The port is closed now.
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "still listening after the program ended"
    );
}

#[test]
fn the_kvservice_example_answers_its_routes() {
    let app = App::start_file("examples", "kvservice.lang", &[], &[]);
    let mut c = app.connect();
    let mut ask = |method: &str, path: &str, headers: &[(&str, &str)], body: &str| {
        let (st, ct, text) = c.request(method, path, headers, body.as_bytes());
        (st, ct, text)
    };
    let json = "application/json".to_string();
    let text = "text/plain; charset=utf-8".to_string();
    let ok = |s: &str| (200, json.clone(), format!("{s}\n"));
    assert_eq!(
        ask("PUT", "/kv/a", &[], "1"),
        ok(r#"{"key": "a", "value": "1"}"#)
    );
    assert_eq!(
        ask(
            "PUT",
            "/kv/b",
            &[("Content-Type", "application/json")],
            r#"{"n": [1, 2.5, null]}"#
        ),
        ok(r#"{"key": "b", "value": {"n": [1, 2.5, null]}}"#)
    );
    assert_eq!(
        ask("PUT", "/kv/ab", &[], "x y"),
        ok(r#"{"key": "ab", "value": "x y"}"#)
    );
    assert_eq!(
        ask("GET", "/kv/b", &[], ""),
        ok(r#"{"key": "b", "value": {"n": [1, 2.5, null]}}"#)
    );
    assert_eq!(
        ask("GET", "/kv/zz", &[], ""),
        (
            404,
            json.clone(),
            "{\"error\": \"no key zz\"}\n".to_string()
        )
    );
    assert_eq!(
        ask("GET", "/kv", &[], ""),
        ok(r#"{"keys": ["a", "b", "ab"]}"#)
    );
    assert_eq!(
        ask("GET", "/kv?prefix=a&prefix=zz", &[], ""),
        ok(r#"{"keys": ["a", "ab"]}"#)
    );
    assert_eq!(
        ask("POST", "/incr/n", &[], ""),
        ok(r#"{"name": "n", "value": 1}"#)
    );
    assert_eq!(
        ask("POST", "/incr/n", &[], ""),
        ok(r#"{"name": "n", "value": 2}"#)
    );
    assert_eq!(ask("DELETE", "/kv/a", &[], ""), ok(r#"{"deleted": "a"}"#));
    assert_eq!(
        ask("GET", "/primes?n=20000", &[], ""),
        (200, text.clone(), "2262\n".into())
    );
    assert_eq!(
        ask("GET", "/ping", &[], ""),
        (200, text.clone(), "pong\n".into())
    );
    assert_eq!(
        ask("GET", "/stats", &[], ""),
        ok(r#"{"keys": 2, "counters": 1}"#)
    );
    // Routing by method: a known path with another method is refused, saying what it takes.
    let mut raw = app.connect();
    raw.w
        .write_all(b"GET /kv/a/../x HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut raw.r).unwrap().0, 404);
    raw.w
        .write_all(b"DELETE /incr/n HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .unwrap();
    let (st, headers, body) = read_response(&mut raw.r).unwrap();
    assert_eq!((st, headers["allow"].as_str()), (405, "POST"));
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "{\"error\": \"DELETE not allowed\"}\n"
    );
    assert_eq!(ask("GET", "/shutdown", &[], "").0, 405);
    assert_eq!(
        ask("POST", "/shutdown", &[], ""),
        (200, text, "bye\n".into())
    );
    let exit = app.wait();
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    assert_eq!(exit.stdout, vec!["stopped".to_string()]);
}

fn misuse(case: &str) -> (Option<i32>, String, String) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/serve");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "misuse.lang", case])
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("cannot run stmjit");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            panic!("{case}: the program did not end within {TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn misuses_are_errors_with_their_position() {
    let cases = [
        (
            "port-type",
            "TypeError: serve(): port must be an int, not 'str'",
            15,
        ),
        (
            "port-range",
            "ValueError: serve(): port must be 0..65535, not 70000",
            17,
        ),
        (
            "handler",
            "TypeError: serve(): the handler must be callable, not 'int'",
            19,
        ),
        (
            "arity",
            "TypeError: serve() takes 2 or 3 arguments (1 given)",
            21,
        ),
        (
            "atomic",
            "TypeError: serve() cannot run inside an atomic block",
            24,
        ),
        (
            "in-use",
            "ValueError: serve(): cannot listen on 127.0.0.1:",
            27,
        ),
        (
            "shutdown-arity",
            "TypeError: shutdown() takes exactly 0 arguments (1 given)",
            29,
        ),
        (
            "port-in-atomic",
            "ValueError: server_port(): no server has started",
            32,
        ),
        (
            "options-type",
            "TypeError: serve(): options must be a dict, not 'int'",
            38,
        ),
        (
            "options-unknown",
            "ValueError: serve(): unknown option 'max_bodies' (the options are host, max_body,",
            40,
        ),
        (
            "options-value",
            "ValueError: serve(): option 'max_body' must be at least 1, not 0",
            42,
        ),
        (
            "options-host",
            "ValueError: serve(): option 'host' must be an IP address, not \"example.com\"",
            44,
        ),
        (
            "options-timeout",
            "TypeError: serve(): option 'header_timeout' must be a number of seconds, not 'str'",
            46,
        ),
    ];
    for (case, text, line) in cases {
        let (code, _, stderr) = misuse(case);
        assert_eq!(code, Some(1), "{case}: {stderr}");
        assert!(
            stderr.starts_with(&format!("error: {text}")),
            "{case}: {stderr}"
        );
        assert!(
            stderr.contains(&format!("\n  at misuse.lang:{line}:")),
            "{case}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{case}: {stderr}");
    }
}

#[test]
fn shutdown_from_another_thread_ends_serve() {
    // The thread may call shutdown() before or after serve() listens: both end it.
    for _ in 0..3 {
        let (code, stdout, stderr) = misuse("stop-from-thread");
        assert_eq!(code, Some(0), "{stderr}");
        assert_eq!(stdout, "serve returned\n");
    }
}

/// Resident memory of process `pid` (KiB).
fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Waits up to `limit` for `cond` on the RSS of `pid`; returns the last value read.
fn wait_rss(pid: u32, limit: Duration, cond: impl Fn(u64) -> bool) -> u64 {
    let t0 = Instant::now();
    loop {
        let r = rss_kib(pid);
        if cond(r) || t0.elapsed() > limit {
            return r;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_idle_server_gives_back_the_garbage_its_threads_left() {
    // The soak benchmark's program (benches/soak): its spawning thread, alone, leaves dead
    // thread objects in the old space far below the major-collection threshold. Once it has
    // stopped, the server is idle: the runtime collects, and the resident memory goes back
    // down (before the idle collection it stayed up for good: the soak benchmark's idle RSS
    // was 50 to 84 MiB after running in 27).
    let app = App::start_file("benches/soak", "soak.lang", &["--stats"], &[]);
    let pid = app.child.id();
    let start = rss_kib(pid);
    let grown = wait_rss(pid, Duration::from_secs(60), |r| r > start + 16 * 1024);
    assert!(
        grown > start + 16 * 1024,
        "the spawning thread's garbage did not grow RSS: {start} -> {grown} KiB"
    );
    let (st, _, body) = app.connect().request("POST", "/stopthreads", &[], b"");
    assert_eq!((st, body.as_str()), (200, "ok\n"));
    let stopped = rss_kib(pid);
    // At least half of what the threads' garbage added must be given back. A fixed drop
    // (12 MiB) failed by 0.1 MiB under the full suite's load, where less had grown.
    let given_back = |r: u64| r < start + (stopped - start) / 2;
    let idle = wait_rss(pid, Duration::from_secs(20), given_back);
    assert!(
        given_back(idle),
        "RSS of the idle server: {start} KiB at the start, {stopped} when its threads \
         stopped, still {idle} 20 s later (less than half of the growth given back)"
    );
    let (st, _, _) = app.connect().request("POST", "/shutdown", &[], b"");
    assert_eq!(st, 200);
    let exit = app.wait();
    assert_eq!(exit.code, Some(0), "{}", exit.stderr);
    let line = exit
        .stderr
        .lines()
        .find(|l| l.contains(" major ("))
        .unwrap_or_else(|| panic!("no gc line in:\n{}", exit.stderr));
    assert!(!line.contains("(0 when idle"), "{line}");
}
