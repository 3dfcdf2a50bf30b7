//! The program's output: what a transaction prints is buffered in its thread's runtime and
//! appended here at its commit, so output appears in commit order and an aborted
//! transaction prints nothing; then it is written to stdout.

use std::io::Write;
use std::sync::{Mutex, MutexGuard};

/// Output of committed transactions, in commit order, not yet written.
#[derive(Default)]
pub struct Output {
    committed: Mutex<Vec<u8>>,
    /// Set once an error ended the program (only the first failing thread prints it).
    pub failed: Mutex<bool>,
}

impl Output {
    /// Appends (empties) a committing transaction's output; call it at the commit point.
    pub fn append(&self, out: &mut Vec<u8>) {
        self.committed.lock().unwrap().append(out);
    }

    /// Writes the committed output (in commit order).
    pub fn flush(&self) {
        drop(self.flush_and_hold());
    }

    /// Writes the committed output and keeps the output queue locked, so that no other
    /// thread starts writing more: held by a thread that ends the process, which could
    /// otherwise cut another thread's write in the middle of a line.
    pub fn flush_and_hold(&self) -> MutexGuard<'_, Vec<u8>> {
        let mut out = self.committed.lock().unwrap_or_else(|e| e.into_inner());
        if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            // A closed pipe is ignored: the program's result does not depend on it.
            let _ = stdout.write_all(&out);
            let _ = stdout.flush();
            out.clear();
        }
        out
    }
}
