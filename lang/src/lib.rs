//! Front end of stmjit: lexer, parser, name resolution, diagnostics and the reference
//! interpreter (the oracle the JIT is tested against) for the language of `docs/LANGUAGE.md`.
//!
//! Pipeline: bytes → [`lexer::decode_source`] → [`lexer::lex`] → [`parser::parse_tokens`] →
//! [`resolve::resolve`] → [`ast::Program`] → [`interp::run_program`]. [`parse`] runs the front
//! half; [`run_file`] runs it all, as the CLI's `--interp` does.

pub mod ast;
pub mod bigint;
pub mod builtins_core;
pub mod builtins_num;
pub mod builtins_seq;
pub mod callargs;
pub mod closures;
pub mod comprehension;
pub mod diag;
pub mod exceptions;
pub mod floatfmt;
pub mod format;
pub mod interp;
pub mod json;
pub mod lexer;
pub mod literals;
pub mod methods_extra;
pub mod ops;
pub mod parser;
pub mod ranges;
pub mod resolve;
pub mod sets;
pub mod slices;
pub mod special;
pub mod stack;
pub mod token;
pub mod token_stream;
pub mod value;

use std::path::Path;

pub use ast::Program;
pub use diag::{Diagnostic, ErrorKind, Span};

/// Exit status of a program that ran to its end.
pub const EXIT_OK: i32 = 0;
/// Exit status after an uncaught runtime error.
pub const EXIT_RUNTIME_ERROR: i32 = 1;
/// Exit status after a syntax error (or an unreadable file).
pub const EXIT_SYNTAX_ERROR: i32 = 2;

/// Ends the process with an exit status: what a thread does when the program fails in it in
/// a way that no `join()` can take (an error in a worker of the JIT's `q.run()` or in a
/// server handler, an interpreter bug; a spawned thread's exception goes to its `join()`).
/// That thread cannot hand the status back to `main`, which may be running or waiting
/// anywhere, and it must end the process while it still holds the output (no other thread
/// writes after the error). The libraries never call `std::process::exit` themselves: the
/// binary passes it.
pub type Exit = fn(i32) -> !;

/// Parses and resolves a whole program: the input of both the interpreter and the JIT.
/// Runs on a big stack (a helper thread unless the caller already has one), so nesting up to
/// [`parser::MAX_NESTING`] is accepted whatever thread calls it; beyond, a clean
/// "too deeply nested" SyntaxError.
pub fn parse(source: &str) -> Result<Program, Diagnostic> {
    stack::ensure_big_stack(|| {
        let parsed = parser::parse_source(source)?;
        resolve::resolve(parsed)
    })
}

/// [`parse`] for raw file contents: invalid UTF-8 is a syntax error too.
pub fn parse_bytes(bytes: &[u8]) -> Result<Program, Diagnostic> {
    parse(lexer::decode_source(bytes)?)
}

/// Runs the program in file `path` on the reference interpreter with `args` as `args()`.
/// Prints the program's output and any diagnostic itself; returns the exit status
/// (0, 1 for a runtime error, 2 for a syntax error or unreadable file); a failing spawned
/// thread ends the process with `exit`.
pub fn run_file(path: &Path, args: Vec<String>, exit: Exit) -> i32 {
    let name = path.display().to_string();
    match read_source(path) {
        Ok(bytes) => run_source(&bytes, &name, args, exit),
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_SYNTAX_ERROR
        }
    }
}

/// The largest program source accepted (64 MiB): far beyond any real program, and small
/// enough that reading, parsing and compiling an accepted source cannot take all memory.
pub const MAX_SOURCE_BYTES: u64 = 64 << 20;

/// Reads a program file, at most [`MAX_SOURCE_BYTES`] of it (so `/dev/zero` or a huge file
/// is refused after reading the limit, not after filling memory). `Err` is the message.
pub fn read_source(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let name = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read {name}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {name}: {e}"))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(format!(
            "{name}: the source is larger than {} MiB, the most a program may be",
            MAX_SOURCE_BYTES >> 20
        ));
    }
    Ok(bytes)
}

/// Runs a program given as file contents; `file_name` is used in diagnostics. Runs on a
/// thread with a big stack so deep recursion ends in a clean `RecursionError`.
pub fn run_source(bytes: &[u8], file_name: &str, args: Vec<String>, exit: Exit) -> i32 {
    stack::on_big_stack(|| match parse_bytes(bytes) {
        Ok(program) => interp::run_program(program, file_name, args, exit),
        Err(d) => {
            // Invalid UTF-8 is shown with replacement characters; the column still matches.
            let source = String::from_utf8_lossy(bytes);
            eprint!("{}", d.render(file_name, Some(&source)));
            EXIT_SYNTAX_ERROR
        }
    })
}
