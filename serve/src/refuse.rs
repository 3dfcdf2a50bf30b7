//! Refusing a request whose body is still on the wire, without reading that body.
//!
//! tiny_http 0.12 gives no access to a request's socket, and dropping a request reads its
//! unread body to the end (the drop of its internal `EqualReader`), allocating the whole
//! remaining length at once. So a 413 for `Content-Length: 10^12` would either block until
//! the client sent 10^12 bytes or abort on the allocation. This module finds the request's
//! socket descriptors itself (by its two addresses, in `/proc/self/fd`) and shuts the
//! connection down after the answer went out: tiny_http's drain then ends at once (reads
//! give end of file), its connection thread ends and closes the descriptors.
//!
//! One case tiny_http cannot let go of: a declared length above [`MAX_DRAIN`] must not be
//! dropped at all (the drain's allocation would abort the process), so the request's
//! remains are leaked and their two descriptors closed here. The connection thread of
//! tiny_http then waits forever on a channel whose sender is in the leaked remains: one
//! parked thread per such request (no descriptor, a few KiB of memory). Only a front end
//! that owns its sockets can avoid it (issue 18).

use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;

/// Above this declared body size a refused request is not dropped: tiny_http's drain
/// would allocate the whole remaining length at once (an abort for absurd values).
pub(crate) const MAX_DRAIN: usize = 64 << 20;

/// Answers `status` with `msg`, then closes the connection without reading the rest of
/// the body. Waits for the connection's earlier answers (tiny_http writes them in order),
/// so call it off the dispatcher thread.
pub(crate) fn refuse_unread(rq: tiny_http::Request, status: u16, msg: &str, local: SocketAddr) {
    let peer = rq.remote_addr().copied();
    let unread = rq.body_length().unwrap_or(0);
    let resp = tiny_http::Response::from_string(msg).with_status_code(status);
    // `upgrade` writes the answer (after the earlier ones of this connection) and hands
    // back the body reader without draining it; `respond` would drain it first.
    let stream = rq.upgrade("close", resp);
    let fds = peer.map(|p| connection_fds(local, p)).unwrap_or_default();
    for &fd in &fds {
        // SAFETY: plain syscall on an integer; `fd` is one of this connection's descriptors,
        // kept open by `stream` (alive here), so it names that socket.
        unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
    }
    if unread <= MAX_DRAIN {
        // The drain reads what is already buffered, then end of file.
        drop(stream);
        return;
    }
    // Never dropped: see the module doc. Nothing will use or close these descriptors
    // again (the connection thread waits for the leaked reader forever, and every earlier
    // answer was written before `upgrade` returned), so close them here.
    std::mem::forget(stream);
    for fd in fds {
        discard_pending(fd);
        // SAFETY: `fd` is owned by the leaked remains only, which never close or use it.
        unsafe { libc::close(fd) };
    }
}

/// Reads (and drops) what the client already sent, without blocking, so that closing
/// does not answer it with a reset that could destroy the answer before the client reads it.
fn discard_pending(fd: RawFd) {
    let mut buf = [0u8; 16 << 10];
    for _ in 0..64 {
        // SAFETY: `buf` is valid for `buf.len()` bytes; `fd` is an open socket.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_DONTWAIT) };
        if n <= 0 {
            break;
        }
    }
}

/// The descriptors of this process for the TCP connection between `local` and `peer`.
///
/// A connection's address pair is unique among open sockets, and the request being refused
/// keeps its descriptors open, so a match names them (tiny_http has two: read and write).
pub(crate) fn connection_fds(local: SocketAddr, peer: SocketAddr) -> Vec<RawFd> {
    let (SocketAddr::V4(local), SocketAddr::V4(peer)) = (local, peer) else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return Vec::new();
    };
    dir.flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<RawFd>().ok())
        .filter(|&fd| {
            sock_addr(fd, libc::getsockname) == Some(local)
                && sock_addr(fd, libc::getpeername) == Some(peer)
        })
        .collect()
}

type NameFn =
    unsafe extern "C" fn(libc::c_int, *mut libc::sockaddr, *mut libc::socklen_t) -> libc::c_int;

/// `getsockname`/`getpeername` of `fd` if it is an IPv4 socket (None for anything else,
/// a closed descriptor included).
fn sock_addr(fd: RawFd, name: NameFn) -> Option<SocketAddrV4> {
    // SAFETY: an all-zero sockaddr_in is a valid value of this plain C struct.
    let mut sa: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
    // SAFETY: `sa` is writable for `len` bytes and `len` says so; on any other descriptor
    // the call fails or reports a different family, which is checked below.
    let r = unsafe { name(fd, (&raw mut sa).cast(), &mut len) };
    if r != 0
        || sa.sin_family != libc::AF_INET as libc::sa_family_t
        || len as usize != std::mem::size_of::<libc::sockaddr_in>()
    {
        return None;
    }
    Some(SocketAddrV4::new(
        u32::from_be(sa.sin_addr.s_addr).into(),
        u16::from_be(sa.sin_port),
    ))
}
