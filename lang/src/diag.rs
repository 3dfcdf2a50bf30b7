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
    /// A local variable read before it is assigned (a `NameError`, as in Python).
    UnboundLocalError,
    /// `input()` at the end of its input.
    EOFError,
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
            ErrorKind::UnboundLocalError => "UnboundLocalError",
            ErrorKind::EOFError => "EOFError",
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
            // A very long line is shown as a window around the column.
            let chars: Vec<char> = line.chars().collect();
            let col = self.span.col.saturating_sub(1) as usize;
            let (start, end) = if chars.len() > EXCERPT_MAX {
                let start = col.saturating_sub(EXCERPT_MAX / 2).min(chars.len());
                (start, chars.len().min(start + EXCERPT_MAX))
            } else {
                (0, chars.len())
            };
            let text: String = chars[start..end].iter().collect();
            // The caret line copies tabs from the source line so it lines up in a terminal.
            let pad: String = chars[start..col.clamp(start, end)]
                .iter()
                .map(|&c| if c == '\t' { '\t' } else { ' ' })
                .chain(std::iter::repeat_n(' ', col.saturating_sub(end)))
                .collect();
            out.push_str(&format!("    {text}\n    {pad}^\n"));
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
/// line per active call, innermost first, each followed by its source line and a caret under
/// the column when `file` can be read (as CPython reads its sources for a traceback).
pub fn render_runtime(
    kind: impl fmt::Display,
    message: &str,
    trace: &[TraceEntry],
    file: &str,
) -> String {
    let source = if trace.is_empty() {
        None
    } else {
        cached_source(file)
    };
    render_runtime_with_source(kind, message, trace, file, source.as_deref())
}

/// The text of `file`, read once per process (a server whose handler fails on every request
/// must not re-read its program each time; `--stats` quotes several sites); `None` if it
/// cannot be read.
pub fn cached_source(file: &str) -> Option<std::sync::Arc<str>> {
    use std::sync::{Arc, Mutex};
    static CACHE: Mutex<Option<(String, Option<Arc<str>>)>> = Mutex::new(None);
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((name, text)) = cache.as_ref() {
        if name == file {
            return text.clone();
        }
    }
    let text: Option<Arc<str>> = std::fs::read(file)
        .ok()
        .map(|b| String::from_utf8_lossy(&b).into());
    *cache = Some((file.to_string(), text.clone()));
    text
}

/// The line after a runtime error's trace when the error happened in a spawned thread: where
/// the thread was spawned (a thread's trace ends at its function, so without this line an
/// error in a worker does not say how the worker came to run).
pub fn render_thread_origin(file: &str, spawned_at: Span) -> String {
    format!(
        "  in the thread spawned at {}:{}:{}\n",
        file, spawned_at.line, spawned_at.col
    )
}

/// Consecutive identical frames shown before the rest are counted (CPython shows 3).
const REPEATS_SHOWN: usize = 3;

/// [`render_runtime`] with the program's `source` given (`None`: no source lines). A run of
/// more than three identical frames (deep recursion) shows three, then
/// `  [previous frame repeated N more times]`.
pub fn render_runtime_with_source(
    kind: impl fmt::Display,
    message: &str,
    trace: &[TraceEntry],
    file: &str,
    source: Option<&str>,
) -> String {
    let mut out = if message.is_empty() {
        format!("error: {kind}\n")
    } else {
        format!("error: {kind}: {message}\n")
    };
    let mut i = 0;
    while i < trace.len() {
        let t = &trace[i];
        let run = trace[i..].iter().take_while(|u| *u == t).count();
        for _ in 0..run.min(REPEATS_SHOWN) {
            out.push_str(&format!(
                "  at {}:{}:{} in {}\n",
                file, t.span.line, t.span.col, t.function
            ));
            out.push_str(&source_excerpt(source, t.span));
        }
        if run > REPEATS_SHOWN {
            out.push_str(&format!(
                "  [previous frame repeated {} more times]\n",
                run - REPEATS_SHOWN
            ));
        }
        i += run;
    }
    out
}

/// Longest source line shown under a frame (a longer one is cut around the column).
const EXCERPT_MAX: usize = 160;

/// The source line of `span` and a caret under its column, indented under an `at` line;
/// empty without source. Leading indentation is dropped; a very long line is cut around the
/// column.
fn source_excerpt(source: Option<&str>, span: Span) -> String {
    let Some(line) = source.and_then(|s| source_line(s, span.line)) else {
        return String::new();
    };
    let chars: Vec<char> = line.chars().collect();
    let indent = chars.iter().take_while(|c| c.is_whitespace()).count();
    let col = (span.col.saturating_sub(1) as usize).max(indent);
    let start = indent.max(col.saturating_sub(EXCERPT_MAX / 2));
    let end = chars.len().min(start + EXCERPT_MAX);
    if start >= end {
        return String::new();
    }
    // Tabs as one space each: the caret counts characters.
    let text: String = chars[start..end]
        .iter()
        .map(|&c| if c == '\t' { ' ' } else { c })
        .collect();
    let caret = " ".repeat(col.min(end) - start);
    format!("    {}\n    {caret}^\n", text.trim_end())
}

/// The RuntimeError message of a `join()` that would close a cycle of joins (each thread
/// waiting for the next, so the wait would never end); the interpreter and the JIT runtime
/// raise the same.
pub const JOIN_DEADLOCK: &str = "cannot join a thread that is waiting for this one (deadlock)";

/// The RuntimeError message of a `join()`, inside an atomic block that can no longer be
/// restarted (its transaction is inevitable: it called `shutdown()`), of a thread still
/// running: the block cannot be run again after the thread ends, and the thread cannot
/// commit while the block waits, so the wait would never end (under a GIL it would deadlock
/// too). The JIT runtime raises it; the interpreter gives up its lock instead (a known
/// difference).
pub const JOIN_IN_INEVITABLE: &str =
    "cannot join a running thread in an atomic block that can no longer restart (deadlock)";

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(line: u32, col: u32, function: &str) -> TraceEntry {
        TraceEntry {
            span: Span::new(line, col),
            function: function.into(),
        }
    }

    #[test]
    fn frames_show_their_source_line_and_a_caret() {
        let source = "def f(d):\n\treturn d['x']\nf({})\n";
        let trace = [entry(2, 9, "f"), entry(3, 1, "<module>")];
        let text =
            render_runtime_with_source(ErrorKind::KeyError, "'x'", &trace, "p.lang", Some(source));
        assert_eq!(
            text,
            "error: KeyError: 'x'\n  at p.lang:2:9 in f\n    return d['x']\n           ^\n  \
             at p.lang:3:1 in <module>\n    f({})\n    ^\n"
        );
        // Without the source: the `at` lines only, as LANGUAGE.md's base format.
        let bare = render_runtime_with_source(ErrorKind::KeyError, "'x'", &trace, "p.lang", None);
        assert_eq!(
            bare,
            "error: KeyError: 'x'\n  at p.lang:2:9 in f\n  at p.lang:3:1 in <module>\n"
        );
    }

    #[test]
    fn repeated_frames_are_collapsed_after_three() {
        let mut trace = vec![entry(2, 12, "down"); 10];
        trace.push(entry(3, 1, "<module>"));
        let text = render_runtime_with_source(ErrorKind::RecursionError, "", &trace, "p", None);
        assert_eq!(text.matches("in down").count(), 3, "{text}");
        assert!(
            text.contains("  [previous frame repeated 7 more times]\n  at p:3:1"),
            "{text}"
        );
        // Exactly three repeats are shown as they are.
        let three = vec![entry(2, 12, "down"); 3];
        let text = render_runtime_with_source(ErrorKind::RecursionError, "", &three, "p", None);
        assert!(!text.contains("repeated"), "{text}");
    }

    #[test]
    fn a_huge_line_is_cut_around_the_column() {
        let line = format!("x = {}", "1 + ".repeat(100_000));
        let trace = [entry(1, 200_000, "<module>")];
        let text = render_runtime_with_source(ErrorKind::TypeError, "m", &trace, "p", Some(&line));
        assert!(text.len() < 600, "{} bytes", text.len());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[3].trim(), "^");
        // The caret sits under the column's character.
        let caret_at = lines[3].len() - 1;
        let excerpt_start = 200_000 - 1 - EXCERPT_MAX / 2;
        assert_eq!(
            lines[2].chars().nth(caret_at),
            line.chars().nth(excerpt_start + caret_at - 4)
        );
    }
}
