//! What a connection has in flight, shared by its request handlers (which count) and its
//! socket (which must not end the connection before the requests it let through are
//! answered, see `io.rs`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::Waker;
use tokio::sync::Notify;

/// Requests of one connection: how many hyper dispatched, and how many are in flight (from
/// the handler call until hyper dropped the answer's body: it is in hyper's write buffer
/// then).
#[derive(Default)]
pub(crate) struct Busy {
    n: AtomicUsize,
    dispatched: AtomicUsize,
    /// Notified when `n` drops to 0 (for shutdown).
    pub idle: Notify,
    /// Woken when `n` drops to 0 (for the socket's reader).
    reader: Mutex<Option<Waker>>,
}

/// One request in flight (see [`Busy`]).
pub(crate) struct InFlight(Arc<Busy>);

impl Busy {
    /// A request dispatched by hyper: in flight until the returned guard drops.
    pub fn enter(this: &Arc<Busy>) -> InFlight {
        this.dispatched.fetch_add(1, Ordering::SeqCst);
        this.n.fetch_add(1, Ordering::SeqCst);
        InFlight(this.clone())
    }

    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.n.load(Ordering::SeqCst)
    }

    /// True once `requests` requests were dispatched and none is in flight; otherwise the
    /// waker is woken when that may have changed.
    pub fn settled(&self, requests: usize, waker: &Waker) -> bool {
        *self.reader.lock().unwrap() = Some(waker.clone());
        self.dispatched.load(Ordering::SeqCst) >= requests && self.in_flight() == 0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.n.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
            if let Some(w) = self.0.reader.lock().unwrap().take() {
                w.wake();
            }
        }
    }
}
