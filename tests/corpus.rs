//! End-to-end tests of the reference interpreter on the program corpus in `tests/corpus/`.
//!
//! Each `NAME.lang` runs as `stmjit run --interp NAME.lang ARGS...` (ARGS from `NAME.args`, one
//! per line) in the corpus directory. Its stdout must equal `NAME.out` (empty if absent). If
//! `NAME.err` exists, stderr must equal it (a final line `...` means "this prefix, then
//! anything") and the exit status must be 2 for a SyntaxError, 1 otherwise; without it the
//! status must be 0 and stderr empty.
//!
//! The expected outputs come from CPython: every program not listed in
//! `python_incompatible.txt` and not a syntax error is also run by
//! `python3 tests/oracle/run_python.py`, whose stdout must equal `NAME.out` too; for a program
//! that fails, CPython must fail with the same `Kind: message` as ours.

mod corpus_files;

use corpus_files::{corpus_dir, program_args, programs, read};
use std::path::Path;
use std::process::{Command, Output};

fn run_interp(name: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--interp", &format!("{name}.lang")])
        .args(program_args(name))
        .current_dir(corpus_dir())
        .output()
        .expect("run stmjit")
}

/// Compares actual stderr with the expected text; a last line `...` allows any continuation.
fn stderr_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix("...\n") {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

#[test]
fn corpus_programs_give_expected_output() {
    let mut failures = Vec::new();
    for name in programs() {
        let out = run_interp(&name);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want_out = read(&name, "out").unwrap_or_default();
        let want_err = read(&name, "err");
        let want_code = match &want_err {
            None => 0,
            Some(e) if e.starts_with("error: SyntaxError") => 2,
            Some(_) => 1,
        };
        let code = out.status.code();
        let mut problems = Vec::new();
        if stdout != want_out {
            problems.push(format!(
                "stdout differs\n--- expected\n{want_out}--- actual\n{stdout}"
            ));
        }
        if !stderr_matches(want_err.as_deref().unwrap_or(""), &stderr) {
            problems.push(format!(
                "stderr differs\n--- expected\n{}--- actual\n{stderr}",
                want_err.as_deref().unwrap_or("")
            ));
        }
        if code != Some(want_code) {
            problems.push(format!("exit status {code:?}, expected {want_code}"));
        }
        if !problems.is_empty() {
            failures.push(format!("== {name}.lang\n{}", problems.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn python_incompatible() -> Vec<String> {
    read("python_incompatible", "txt")
        .expect("tests/corpus/python_incompatible.txt")
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn cpython_agrees_with_expected_outputs() {
    let skip = python_incompatible();
    let oracle = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/run_python.py");
    let (mut clean, mut failing) = (0, 0);
    let mut failures = Vec::new();
    for name in programs() {
        let want_err = read(&name, "err");
        let syntax = want_err
            .as_deref()
            .is_some_and(|e| e.starts_with("error: SyntaxError"));
        if syntax || skip.contains(&name) {
            continue;
        }
        let out = Command::new("python3")
            .arg(&oracle)
            .arg(format!("{name}.lang"))
            .args(program_args(&name))
            .current_dir(corpus_dir())
            .output()
            .expect("python3 is needed for the oracle tests");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want = read(&name, "out").unwrap_or_default();
        let mut problems = Vec::new();
        if stdout != want {
            problems.push(format!(
                "stdout differs\n--- expected\n{want}--- python3\n{stdout}"
            ));
        }
        match &want_err {
            None => {
                clean += 1;
                if !out.status.success() {
                    problems.push(format!("python3 failed:\n{stderr}"));
                }
            }
            Some(e) => {
                // The same error: CPython's last line is `Kind: message`, ours `error: Kind: message`.
                failing += 1;
                let ours = e.lines().next().unwrap_or("").trim_start_matches("error: ");
                let theirs = stderr.lines().last().unwrap_or("");
                if out.status.success() || ours != theirs {
                    problems.push(format!("error differs: ours {ours:?}, python3 {theirs:?}"));
                }
            }
        }
        if !problems.is_empty() {
            failures.push(format!("== {name}.lang\n{}", problems.join("\n")));
        }
    }
    assert!(clean >= 15, "too few Python-compatible programs ({clean})");
    assert!(
        failing >= 15,
        "too few runtime-error programs checked against CPython ({failing})"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_listed_incompatible_program_exists() {
    for name in python_incompatible() {
        assert!(
            corpus_dir().join(format!("{name}.lang")).exists(),
            "{name} listed in python_incompatible.txt but missing"
        );
    }
}

/// The corpus must exercise every keyword, builtin and method of LANGUAGE.md, and every error
/// kind must be produced by some program.
#[test]
fn corpus_covers_the_language() {
    let mut text = String::new();
    let mut errors = String::new();
    for name in programs() {
        text.push_str(&read(&name, "lang").unwrap_or_default());
        errors.push_str(&read(&name, "err").unwrap_or_default());
    }
    let words = [
        "def ",
        "return",
        "if ",
        "elif ",
        "else:",
        "while ",
        "for ",
        " in ",
        "break",
        "continue",
        "pass",
        " and ",
        " or ",
        "not ",
        " is ",
        " is not ",
        "global ",
        "class ",
        "with ",
        "atomic",
        "True",
        "False",
        "None",
        "del ",
        "print(",
        "len(",
        "range(",
        "str(",
        "int(",
        "float(",
        "bool(",
        "abs(",
        "min(",
        "max(",
        "sqrt(",
        "ord(",
        "chr(",
        "hash(",
        "id(",
        "repr(",
        "sum(",
        "round(",
        "\"%5d|\" % n",
        "hex(",
        "oct(",
        "bin(",
        "f\"",
        "format(",
        ".format(",
        ".replace(",
        ".endswith(",
        ".setdefault(",
        ".extend(",
        ".remove(",
        "any(",
        "all(",
        "sorted(",
        "list(",
        "[n * n for n in",
        "for k in [",
        "__eq__",
        "__ne__",
        "__lt__",
        "__str__",
        "__repr__",
        "time(",
        "args(",
        "cores(",
        "spawn(",
        ".join()",
        "Lock()",
        "TransactionQueue()",
        ".add(",
        ".run()",
        ".append(",
        ".pop()",
        ".pop(",
        ".insert(",
        ".index(",
        ".sort()",
        ".reverse()",
        ".copy()",
        ".get(",
        ".keys()",
        ".values()",
        ".items()",
        ".split()",
        ".split(",
        ".join(",
        ".strip()",
        ".startswith(",
        ".upper()",
        ".lower()",
        ".find(",
        "0x",
        "1_0",
        ".5",
        "e-3",
        "\\x",
        "\\u{",
        "\\0",
        "\\a",
        "\\101",
        "\\U000",
        "//",
        "%",
        "**",
        "<<",
        ">>",
        "&",
        "|",
        "^",
        "~",
        "+=",
        "-=",
        "*=",
        "/=",
        "//=",
        "%=",
        "&=",
        "|=",
        "^=",
        "<<=",
        ">>=",
        "[1:",
        "[:",
        "not in",
        "serve(",
        "set(",
        "frozenset(",
        "{x for",
        ".discard(",
        ".issubset(",
        ".symmetric_difference_update(",
    ];
    for w in words {
        assert!(text.contains(w), "no corpus program uses {w:?}");
    }
    for kind in [
        "SyntaxError",
        "NameError",
        "TypeError",
        "ValueError",
        "IndexError",
        "KeyError",
        "AttributeError",
        "ZeroDivisionError",
        "OverflowError",
        "RecursionError",
        "MemoryError",
        "RuntimeError",
    ] {
        assert!(
            errors.contains(&format!("error: {kind}: ")),
            "no corpus program produces {kind}"
        );
    }
}
