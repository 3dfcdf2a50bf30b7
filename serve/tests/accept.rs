//! Running out of descriptors while accepting does not end the server. One test in its
//! own binary: it lowers this process's descriptor limit.

use std::fs::File;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread;
use std::time::Duration;

use stmjit_serve::{Limits, Request, Response, Server};

fn get_on(mut s: TcpStream) -> String {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer
}

fn get(port: u16) -> String {
    get_on(TcpStream::connect(("127.0.0.1", port)).unwrap())
}

#[test]
fn out_of_descriptors_at_accept_then_serving_again() {
    let server = Server::bind(0, Limits::default()).unwrap();
    let port = server.port();
    let stop = server.shutdown_handle();
    let t = thread::spawn(move || server.run(2, |_| |req: Request| Response::text(200, req.path)));
    assert!(get(port).starts_with("HTTP/1.1 200"));

    // Lower the limit near what is open, then take every free descriptor but one.
    let open = std::fs::read_dir("/proc/self/fd").unwrap().count() as u64;
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid rlimit to write to.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    let old = lim.rlim_cur;
    lim.rlim_cur = (open + 64).min(lim.rlim_max);
    // SAFETY: `lim` is a valid rlimit to read.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    let mut filler = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        filler.push(f);
        assert!(filler.len() < 1000, "the lowered limit does not hold");
    }
    filler.pop();
    // This client takes the last descriptor: the server cannot accept it (EMFILE) and
    // backs off.
    let pending = TcpStream::connect(("127.0.0.1", port)).unwrap();
    thread::sleep(Duration::from_millis(500));

    // Descriptors come back: the server serves again.
    drop(filler);
    lim.rlim_cur = old;
    // SAFETY: `lim` is a valid rlimit to read.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    // The waiting client is served once descriptors are back.
    let a = get_on(pending);
    assert!(a.starts_with("HTTP/1.1 200"), "{a:?}");
    for _ in 0..5 {
        let a = get(port);
        assert!(a.starts_with("HTTP/1.1 200"), "{a:?}");
    }
    stop.shutdown();
    t.join().unwrap().unwrap();
}
