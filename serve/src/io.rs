//! A connection's socket with a write timeout: a client that stops reading its answers
//! loses its connection once a write has made no progress for the limit (hyper has no
//! write timeout of its own). Only the I/O thread ever waits on it, never a worker.
//! Its reads go through the bare-LF check ([`crate::framing`]).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Sleep;

use crate::framing::{Framing, BARE_LF_ANSWER};
use crate::inflight::Busy;

/// A `TcpStream` whose writes fail with `TimedOut` after `limit` without progress.
pub(crate) struct Conn {
    io: TcpStream,
    limit: Duration,
    /// Armed when a write is first refused (the socket buffer is full), reset on progress.
    stalled: Option<Pin<Box<Sleep>>>,
    /// The bare-LF check of the bytes read, and the connection's requests (none on a
    /// connection refused at once).
    framing: Option<(Framing, Arc<Busy>)>,
    /// A head was refused: reads end there, and this much of [`BARE_LF_ANSWER`] is still
    /// to be written before the connection closes.
    refused: Option<usize>,
}

impl Conn {
    pub fn new(io: TcpStream, limit: Duration) -> Conn {
        Conn {
            io,
            limit,
            stalled: None,
            framing: None,
            refused: None,
        }
    }

    /// The same, checking the framing of request heads of up to `max_head` bytes.
    pub fn checking_framing(
        io: TcpStream,
        limit: Duration,
        max_head: usize,
        busy: Arc<Busy>,
    ) -> Conn {
        let mut conn = Conn::new(io, limit);
        conn.framing = Some((Framing::new(max_head), busy));
        conn
    }

    /// Writes what is left of the answer to a refused head (before the connection closes,
    /// after hyper's own answers).
    fn poll_refusal(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some(left) = self.refused.filter(|&n| n > 0) {
            let from = BARE_LF_ANSWER.len() - left;
            let r = Pin::new(&mut self.io).poll_write(cx, &BARE_LF_ANSWER[from..]);
            match self.progress(r, cx) {
                Poll::Ready(Ok(n)) if n > 0 => self.refused = Some(left - n),
                Poll::Ready(Ok(_)) => break,
                Poll::Ready(Err(e)) => {
                    self.refused = Some(0);
                    return Poll::Ready(Err(e));
                }
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Called when a write would block: Pending until the limit, then the error.
    fn stall<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let limit = self.limit;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client stopped reading",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn progress<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => self.stall(cx),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.refused.is_some() {
            // The connection ends before the refused head, as far as hyper knows, once
            // the requests let through are answered: an end seen earlier would make hyper
            // close without serving requests it has buffered.
            let (f, busy) = self
                .framing
                .as_ref()
                .expect("only a checked head is refused");
            return if busy.settled(f.heads, cx.waker()) {
                Poll::Ready(Ok(()))
            } else {
                Poll::Pending
            };
        }
        let before = buf.filled().len();
        let r = Pin::new(&mut self.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some((f, _))) = (&r, self.framing.as_mut()) {
            if let Some(cut) = f.scan(&buf.filled()[before..]) {
                buf.set_filled(before + cut);
                self.refused = Some(BARE_LF_ANSWER.len());
            }
        }
        r
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.progress(r, cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.progress(r, cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.progress(r, cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.poll_refusal(cx).is_pending() {
            return Poll::Pending;
        }
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.progress(r, cx)
    }
}

impl Drop for Conn {
    /// Reads (and drops) what the client already sent, without blocking, so that closing
    /// does not answer it with a reset that could destroy the last answer before the
    /// client read it (a refused body is still on the wire). Bounded: a client that keeps
    /// sending gets its reset.
    fn drop(&mut self) {
        if let Some(left) = self.refused.filter(|&n| n > 0) {
            // hyper ended on the cut head without shutting down: answer it now.
            let _ = self
                .io
                .try_write(&BARE_LF_ANSWER[BARE_LF_ANSWER.len() - left..]);
        }
        let mut buf = [0u8; 16 << 10];
        for _ in 0..8 {
            match self.io.try_read(&mut buf) {
                Ok(n) if n > 0 => continue,
                _ => break,
            }
        }
    }
}
