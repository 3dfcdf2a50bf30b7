//! Front end of stmjit: lexer, parser, name resolution, diagnostics and the reference
//! interpreter (the oracle the JIT is tested against) for the language of `docs/LANGUAGE.md`.
//!
//! Pipeline: bytes → [`lexer::decode_source`] → [`lexer::lex`] → [`parser::parse_tokens`] →
//! [`resolve::resolve`] → [`ast::Program`] → [`interp::run_program`]. [`parse`] runs the front
//! half; [`run_file`] runs it all, as the CLI's `--interp` does.

pub mod ast;
pub mod builtins_core;
pub mod builtins_num;
pub mod comprehension;
pub mod diag;
pub mod floatfmt;
pub mod format;
pub mod interp;
pub mod lexer;
pub mod literals;
pub mod methods_extra;
pub mod ops;
pub mod parser;
pub mod resolve;
pub mod special;
pub mod stack;
pub mod token;
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

/// Ends the process with an exit status: what a thread does when the program fails in it (an
/// uncaught error in any thread ends the whole program, as under a GIL). That thread cannot
/// hand the status back to `main`, which may be running or waiting anywhere, and it must end
/// the process while it still holds the output (no other thread writes after the error).
/// The libraries never call `std::process::exit` themselves: the binary passes it.
pub type Exit = fn(i32) -> !;

/// Parses and resolves a whole program: the input of both the interpreter and the JIT.
/// Runs on a big stack (a helper thread unless the caller already has one), so nesting up to
/// [`parser::MAX_NESTING`] is accepted whatever thread calls it; beyond, a clean
/// "too deeply nested" SyntaxError.
pub fn parse(source: &str) -> Result<Program, Diagnostic> {
    stack::ensure_big_stack(|| {
        let tokens = lexer::lex(source)?;
        let parsed = parser::parse_tokens(tokens)?;
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
    match std::fs::read(path) {
        Ok(bytes) => run_source(&bytes, &name, args, exit),
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            EXIT_SYNTAX_ERROR
        }
    }
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
