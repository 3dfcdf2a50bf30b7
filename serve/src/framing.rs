//! Refuses bare-LF framing. hyper's parser (httparse) accepts a lone `\n` as a line end,
//! but RFC 9112 §2.2 lets a server reject it, and a proxy in front of us that reads the
//! same bytes differently is how requests get smuggled. So the connection's reader scans
//! every request head before hyper sees it: a head with a `\n` not preceded by `\r` is
//! withheld, hyper sees the connection end there, and the client gets a 400 once the
//! answers to its earlier requests are out.
//!
//! Bodies are skipped by their `Content-Length` (their bytes are not framing). A chunked
//! body, or a head whose body length hyper will refuse anyway (conflicting lengths), ends
//! the check for the rest of that connection: following the chunk framing here would be a
//! second parser to keep in step with hyper's.

/// The answer to a refused head (the connection closes after it).
pub(crate) const BARE_LF_ANSWER: &[u8] = b"HTTP/1.1 400 Bad Request\r\n\
content-type: text/plain; charset=utf-8\r\ncontent-length: 35\r\nconnection: close\r\n\r\n\
bare LF line ending in the request\n";

/// Where the scanner is in the connection's byte stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Inside a request head (or before one).
    Head,
    /// Inside a body: this many bytes left.
    Body(u64),
    /// No more checks on this connection (see the module doc).
    Off,
}

/// The bare-LF check of one connection.
#[derive(Debug)]
pub(crate) struct Framing {
    state: State,
    /// The current head so far (kept to find its body length), at most `limit` bytes.
    head: Vec<u8>,
    /// The byte before the current one was `\r` (carried across reads).
    prev_cr: bool,
    /// A head longer than this is left to hyper (which refuses it with 431).
    limit: usize,
    /// Complete heads seen (all let through: a refused head is not complete).
    pub heads: usize,
}

impl Framing {
    /// A check for a new connection whose heads hyper refuses beyond `limit` bytes.
    pub(crate) fn new(limit: usize) -> Framing {
        Framing {
            state: State::Head,
            head: Vec::new(),
            prev_cr: false,
            limit,
            heads: 0,
        }
    }

    /// Scans the next bytes read from the client. `None`: all of them may go to hyper.
    /// `Some(cut)`: a head has a bare LF; only `bytes[..cut]` may go (the bytes before
    /// that head, or none if it began in an earlier read), and the connection must end.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Option<usize> {
        // Offset in `bytes` where the current head began (0 if it began earlier).
        let mut head_start = 0;
        let mut i = 0;
        while i < bytes.len() {
            match self.state {
                State::Off => return None,
                State::Body(left) => {
                    let n = left.min((bytes.len() - i) as u64);
                    i += n as usize;
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Body(left - n)
                    };
                    self.prev_cr = false;
                    head_start = i;
                }
                State::Head => {
                    let b = bytes[i];
                    if b == b'\n' && !self.prev_cr {
                        return Some(head_start);
                    }
                    self.prev_cr = b == b'\r';
                    i += 1;
                    if self.head.len() >= self.limit {
                        self.state = State::Off;
                        continue;
                    }
                    self.head.push(b);
                    if self.head == b"\r\n" {
                        // An empty line before a request line is allowed (RFC 9112 §2.2).
                        self.head.clear();
                        head_start = i;
                    } else if self.head.ends_with(b"\r\n\r\n") {
                        self.heads += 1;
                        self.state = match body_length(&self.head) {
                            Some(0) => State::Head,
                            Some(n) => State::Body(n),
                            None => State::Off,
                        };
                        self.head.clear();
                        head_start = i;
                    }
                }
            }
        }
        None
    }
}

/// The body length a complete head announces: 0 without `Content-Length`; `None` when
/// this check cannot follow the body (chunked, or lengths hyper refuses).
fn body_length(head: &[u8]) -> Option<u64> {
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = std::str::from_utf8(&line[colon + 1..]).ok()?.trim();
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return None;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let n: u64 = value.parse().ok()?;
            if length.is_some_and(|m| m != n) {
                return None;
            }
            length = Some(n);
        }
    }
    Some(length.unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_all(chunks: &[&[u8]]) -> Vec<Option<usize>> {
        let mut f = Framing::new(1 << 16);
        chunks.iter().map(|c| f.scan(c)).collect()
    }

    #[test]
    fn crlf_requests_pass_and_bodies_are_skipped() {
        let get = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
        let post = b"POST /b HTTP/1.1\r\nContent-Length: 6\r\n\r\nx\ny\nz\n";
        let mut all = Vec::new();
        all.extend_from_slice(b"\r\n");
        all.extend_from_slice(get);
        all.extend_from_slice(post);
        all.extend_from_slice(get);
        assert_eq!(scan_all(&[&all]), vec![None]);
        // The same bytes one at a time: state carries across reads.
        let bytes: Vec<&[u8]> = all.chunks(1).collect();
        assert!(scan_all(&bytes).iter().all(Option::is_none));
    }

    #[test]
    fn a_bare_lf_head_is_cut_where_it_begins() {
        let ok = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n";
        let bad = b"GET /b HTTP/1.1\nHost: t\n\n";
        let mut both = ok.to_vec();
        both.extend_from_slice(bad);
        assert_eq!(scan_all(&[&both]), vec![Some(ok.len())]);
        assert_eq!(scan_all(&[bad]), vec![Some(0)]);
        // A head begun in an earlier read: nothing more of it goes through.
        assert_eq!(
            scan_all(&[b"GET /c HTTP/1.1\r\nHo", b"st: t\n\n"]),
            vec![None, Some(0)]
        );
        // After a body.
        let post = b"POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\n\n\nGET / HTTP/1.1\n\n";
        assert_eq!(scan_all(&[post]), vec![Some(41)]);
        let mut f = Framing::new(1 << 16);
        assert_eq!(f.scan(&both), Some(ok.len()));
        assert_eq!(f.heads, 1);
    }

    #[test]
    fn chunked_conflicting_or_oversized_heads_end_the_check() {
        let chunked = b"POST /p HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1\nx\n0\n\n";
        assert_eq!(scan_all(&[chunked]), vec![None]);
        let conflicting =
            b"POST /p HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab\n\n";
        assert_eq!(scan_all(&[conflicting]), vec![None]);
        let mut f = Framing::new(8);
        assert_eq!(f.scan(b"GET /long-path HTTP/1.1\nHost: t\n\n"), None);
    }
}
