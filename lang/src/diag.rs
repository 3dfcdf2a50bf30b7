//! Diagnostics: source positions, error kinds and the exact text printed for syntax and runtime
//! errors (LANGUAGE.md, "Errors"). Formatted by hand: the format is fixed by the contract and is a
//! few lines, which no diagnostics crate reproduces exactly.

use std::fmt;

/// A position in the source: 1-based line and 1-based column counted in characters.
/// Every token and every AST node carries one, so runtime errors can say where they happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span {
    pub line: u32,
    pub col: u32,
}

impl Span {
    /// A position from a 1-based line and column.
    pub fn new(line: u32, col: u32) -> Span {
        Span { line, col }
    }
}

/// The error kinds of LANGUAGE.md; the name is what follows `error: ` in the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    SyntaxError,
    NameError,
    TypeError,
    ValueError,
    IndexError,
    KeyError,
    AttributeError,
    ZeroDivisionError,
    OverflowError,
    RecursionError,
    MemoryError,
    RuntimeError,
}

impl ErrorKind {
    /// The kind's name as printed.
    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::SyntaxError => "SyntaxError",
            ErrorKind::NameError => "NameError",
            ErrorKind::TypeError => "TypeError",
            ErrorKind::ValueError => "ValueError",
            ErrorKind::IndexError => "IndexError",
            ErrorKind::KeyError => "KeyError",
            ErrorKind::AttributeError => "AttributeError",
            ErrorKind::ZeroDivisionError => "ZeroDivisionError",
            ErrorKind::OverflowError => "OverflowError",
            ErrorKind::RecursionError => "RecursionError",
            ErrorKind::MemoryError => "MemoryError",
            ErrorKind::RuntimeError => "RuntimeError",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A compile-time error (always a `SyntaxError`): what went wrong and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub message: String,
    pub span: Span,
}

impl Diagnostic {
    /// A syntax error at `span`.
    pub fn new(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            message: message.into(),
            span,
        }
    }

    /// The full text printed to stderr: the error line, the position, the source line and a
    /// caret under the column. `source` may be `None` when the file is not valid UTF-8.
    pub fn render(&self, file_name: &str, source: Option<&str>) -> String {
        let mut out = format!(
            "error: SyntaxError: {}\n  at {}:{}:{}\n",
            self.message, file_name, self.span.line, self.span.col
        );
        if let Some(line) = source.and_then(|s| source_line(s, self.span.line)) {
            // The caret line copies tabs from the source line so it lines up in a terminal.
            let pad: String = line
                .chars()
                .take(self.span.col.saturating_sub(1) as usize)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            out.push_str(&format!("    {line}\n    {pad}^\n"));
        }
        out
    }
}

/// Line `line` (1-based) of `source`, without its line terminator.
pub fn source_line(source: &str, line: u32) -> Option<&str> {
    let text = source.split('\n').nth(line.checked_sub(1)? as usize)?;
    Some(text.strip_suffix('\r').unwrap_or(text))
}

/// One line of a runtime error's trace: where, and in which function (`<module>` at top level).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    pub span: Span,
    pub function: String,
}

/// Renders a runtime error: `error: Kind: message` then one `  at FILE:LINE:COL in function`
/// line per active call, innermost first.
pub fn render_runtime(kind: ErrorKind, message: &str, trace: &[TraceEntry], file: &str) -> String {
    let mut out = if message.is_empty() {
        format!("error: {kind}\n")
    } else {
        format!("error: {kind}: {message}\n")
    };
    for t in trace {
        out.push_str(&format!(
            "  at {}:{}:{} in {}\n",
            file, t.span.line, t.span.col, t.function
        ));
    }
    out
}
