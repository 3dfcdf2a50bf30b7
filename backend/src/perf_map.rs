//! The perf map: `/tmp/perf-PID.map`, one line `START SIZE NAME` (hexadecimal address and
//! size) per function of JIT code, the format Linux `perf report` reads to name the code
//! of a JIT that has no symbols (the same file V8, the JVM's agents and CPython 3.12 write).
//! Lines are written when the code is finalized, so functions compiled at their first call
//! appear as the program runs. Code given back ([`crate::Jit::release`]: the parts of a
//! huge module body) keeps its lines: the format cannot remove one, and a later function
//! at the same address gets a later line.

use cranelift_module::FuncId;
use std::fs::File;
use std::io::{BufWriter, Write};

/// An open perf map and the functions defined since it was last written.
pub(crate) struct PerfMap {
    out: BufWriter<File>,
    /// Defined, not yet finalized: their addresses are known only then.
    pending: Vec<(FuncId, String, usize)>,
}

impl PerfMap {
    /// Creates (or empties) `/tmp/perf-PID.map` of this process.
    pub(crate) fn create() -> std::io::Result<PerfMap> {
        let path = format!("/tmp/perf-{}.map", std::process::id());
        Ok(PerfMap {
            out: BufWriter::new(File::create(path)?),
            pending: Vec::new(),
        })
    }

    /// Notes a function whose code was just defined, to be written once finalized.
    pub(crate) fn defined(&mut self, id: FuncId, name: &str, size: usize) {
        self.pending.push((id, name.to_string(), size));
    }

    /// Writes the lines of the functions defined since the last call, now finalized at the
    /// addresses `address` gives; flushed, so `perf` sees them even if the process is
    /// killed later.
    pub(crate) fn write_finalized(
        &mut self,
        address: impl Fn(FuncId) -> *const u8,
    ) -> std::io::Result<()> {
        for (id, name, size) in self.pending.drain(..) {
            // Names come from the program (class and function names): one line each.
            let name = name.replace(['\n', '\r'], " ");
            writeln!(self.out, "{:x} {size:x} {name}", address(id) as usize)?;
        }
        self.out.flush()
    }
}
