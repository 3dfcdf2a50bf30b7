//! `stmjit run --dump-asm`: the final machine code shows the inline barriers in `gs:` form
//! (read-marker byte stores, write-barrier flag tests), the polls, and the program still runs;
//! `--asm-syntax att` and `--segment-base r15` change the listing, not the result.

mod scratch;

use std::process::{Command, Output};

const PROGRAM: &str = "\
def fill(xs, n):
    for i in range(n):
        xs[i] = xs[i] + i
    return xs[n - 1]

xs = [0] * 10
print(fill(xs, 10), xs[3])
";

fn run(extra: &[&str], name: &str) -> (Output, String) {
    run_source(PROGRAM, extra, name)
}

/// Runs `source` with `--dump-asm` (and `extra`); its output and the listing.
fn run_source(source: &str, extra: &[&str], name: &str) -> (Output, String) {
    let dir = scratch::dir(&format!("dump-{name}"));
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(&prog, source).unwrap();
    let asm = dir.join("p.asm");
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .arg("run")
        .arg(format!("--dump-asm={}", asm.display()))
        .args(extra)
        .arg(&prog)
        .output()
        .expect("run stmjit");
    let text = std::fs::read_to_string(&asm).expect("listing written");
    (out, text)
}

#[test]
fn dump_shows_gs_barriers_and_the_program_runs() {
    let (out, text) = run(&[], "gs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    assert!(out.status.success());
    assert!(text.contains("; function f0_fill"), "{text}");
    // Read-marker stores: `mov byte gs:[reg], reg8`.
    let marker = text
        .lines()
        .find(|l| l.contains("read barrier: read-marker store (gs)"))
        .unwrap_or_else(|| panic!("no gs read barrier in:\n{text}"));
    assert!(
        marker.contains("mov gs:[") || marker.contains("mov byte ptr gs:["),
        "{marker}"
    );
    // Write-barrier flag tests on the items array, in gs form.
    assert!(
        text.lines()
            .any(|l| l.contains("write barrier: flag test (gs)") && l.contains("gs:[")),
        "no gs flag test in:\n{text}"
    );
    assert!(text.contains("card write barrier"), "{text}");
    assert!(text.contains("safe-point poll"), "{text}");
    assert!(text.contains("list index fast path"), "{text}");
}

#[test]
fn att_syntax_and_r15_mode() {
    let (out, text) = run(&["--asm-syntax", "att"], "att");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    assert!(text.contains("%gs:"), "{text}");
    let (out, text) = run(&["--segment-base", "r15"], "r15");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    let code = &text[text.find("\n; function ").expect("a function")..];
    assert!(!code.contains("gs:"), "r15 mode must not use gs:\n{text}");
    assert!(
        text.contains("read barrier: read-marker store (r15)"),
        "{text}"
    );
}

#[test]
fn dump_to_stderr() {
    let dir = scratch::dir("dump-stderr");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(&prog, PROGRAM).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--dump-asm"])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("; function <module>"));
}

#[test]
fn float_arithmetic_allocates_inline() {
    let dir = scratch::dir("dump-alloc");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(
        &prog,
        "def f(x):\n    return x * 2.0 + 0.5\nprint(f(1.25))\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--dump-asm"])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3.0\n");
    let text = String::from_utf8_lossy(&out.stderr);
    let f = text
        .split("; function ")
        .find(|s| s.starts_with("f0_f"))
        .expect("listing of f");
    assert!(f.contains("nursery allocation"), "{f}");
}

#[test]
fn float_comparisons_are_inline() {
    let dir = scratch::dir("dump-fcmp");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(
        &prog,
        "def f(x, y):\n    if x <= y:\n        return 1\n    return 2\n\
         def g(x, y):\n    return x > y\n\
         n = 1e308 * 10.0\nn = n - n\n\
         print(f(1.5, 2.5), f(2.5, 2.5), f(3.0, 2.5), g(1.5, 0.5), g(0.5, 1.5))\n\
         print(f(1, 2.5), g(3, 2.5), f(n, 1.0), g(n, n), g(1.0, n), f(-0.0, 0.0), g(\"b\", \"a\"))\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--dump-asm"])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "1 1 2 True False\n1 True 2 False False 1 True\n"
    );
    let text = String::from_utf8_lossy(&out.stderr);
    // Both the branch form (`if x <= y`) and the value form (`x > y`) compare two floats
    // with a float instruction instead of only calling the comparison helper.
    for name in ["f0_f", "f1_g"] {
        let f = text
            .split("; function ")
            .find(|s| s.starts_with(name))
            .expect("listing of the function");
        assert!(f.contains("ucomisd"), "{f}");
    }
}

/// The write barriers' slow paths call `preserve_all` stubs: the listing shows
/// each stub saving every SystemV caller-saved register, XMM0-15 included, around its call
/// of the runtime helper, and never touching r15.
#[test]
fn dump_shows_the_preserve_all_barrier_stubs() {
    let (out, text) = run(&[], "stubs");
    assert!(out.status.success());
    for stub in ["wb_slow", "card_slow"] {
        let body = text
            .split("; function ")
            .find(|f| f.starts_with(&format!("{stub} (preserve_all stub)")))
            .unwrap_or_else(|| panic!("no {stub} stub in:\n{text}"));
        let calls = body.lines().filter(|l| l.contains("call ")).count();
        assert_eq!(calls, 1, "{body}");
        for r in ["rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"] {
            assert!(
                body.lines()
                    .any(|l| l.contains("mov [rsp") && l.ends_with(&format!("],{r}"))),
                "{stub}: {r} not saved:\n{body}"
            );
        }
        for k in 0..16 {
            assert!(
                body.lines()
                    .any(|l| l.contains("movdqu [rsp") && l.ends_with(&format!(",xmm{k}"))),
                "{stub}: xmm{k} not saved:\n{body}"
            );
        }
        // (The header line's statistics say "r15 form": skip it.)
        let code = body.split_once('\n').map_or("", |(_, c)| c);
        assert!(!code.contains("r15"), "{stub} touches r15:\n{body}");
    }
}

/// The listing is for study: the legend explains the header terms, each region is headed by
/// its source line, jumps go to labels and helpers are named, so that two runs of the same
/// program give the same text (no absolute address anywhere).
#[test]
fn listing_has_source_lines_labels_and_names_and_diffs_cleanly() {
    let (out, first) = run(&[], "study1");
    assert!(out.status.success());
    let (_, second) = run(&[], "study2");
    assert_eq!(first, second, "two runs must list the same text");
    assert!(first.starts_with("; How to read this listing"), "{first}");
    assert!(
        first.contains("WouldGrow ="),
        "legend explains the header terms"
    );
    assert!(
        first.contains("copies: `mov reg, r15`"),
        "legend explains the copies"
    );
    let fill = first
        .split("; function ")
        .find(|s| s.starts_with("f0_fill"))
        .expect("listing of fill");
    assert!(
        fill.contains("\n; 3:         xs[i] = xs[i] + i\n"),
        "{fill}"
    );
    assert!(fill.contains("\n; 2:     for i in range(n):\n"), "{fill}");
    assert!(fill.contains("\n; (frame setup, entry poll, return, restart dispatch)\n"));
    // Jumps to labels, and the labels are defined.
    let jump = fill
        .lines()
        .find(|l| l.contains(" jne .L") || l.contains(" je .L"))
        .unwrap_or_else(|| panic!("no jump to a label in:\n{fill}"));
    let label = jump
        .split_whitespace()
        .find(|w| w.starts_with(".L"))
        .unwrap()
        .to_string();
    assert!(
        fill.contains(&format!("\n{label}:\n")),
        "{label} defined:\n{fill}"
    );
    // Helper calls are named: the loaded address, and the call through the register.
    assert!(
        fill.contains(",stmjit_iter\n") || fill.contains(",stmjit_iter "),
        "{fill}"
    );
    assert!(fill.contains("; calls stmjit_iter_next"), "{fill}");
    // No absolute code address: every line starts with an offset, a label or a comment.
    for line in first.lines().filter(|l| !l.is_empty()) {
        let t = line.trim_start();
        assert!(
            t.starts_with(';')
                || t.starts_with(".L")
                || t.as_bytes()[4] == b':'
                || t.contains(": "),
            "unexpected line: {line}"
        );
        assert!(
            !line.contains("00007F") && !line.contains("0x7f"),
            "absolute address: {line}"
        );
    }
}

/// `--dump-asm-fn NAME` lists one function (its program name or full name), and an unknown
/// name is a usage error listing the compiled functions; the program does not run then.
#[test]
fn dump_asm_fn_filters_one_function() {
    let (out, text) = run(&["--dump-asm-fn", "fill"], "only");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    assert_eq!(text.matches("\n; function ").count(), 1, "{text}");
    assert!(text.contains("; function f0_fill:"), "{text}");
    let (_, text) = run(&["--dump-asm-fn", "<module>"], "only-module");
    assert_eq!(text.matches("\n; function ").count(), 1, "{text}");
    assert!(text.contains("; function <module>:"), "{text}");

    let dir = scratch::dir("dump-nofn");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(&prog, PROGRAM).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--dump-asm", "--dump-asm-fn", "nope"])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "",
        "the program must not run"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("error: --dump-asm-fn nope: no such function") && err.contains("f0_fill"),
        "{err}"
    );
}

/// `--dump-asm=fill`, where `fill` is a function of the program, writes the listing to a
/// file named `fill` (as documented) and says so on stderr, naming `--dump-asm-fn`.
#[test]
fn dump_asm_with_a_function_name_says_where_the_listing_went() {
    let dir = scratch::dir("dump-fname");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("p.lang"), PROGRAM).unwrap();
    let run_in_dir = |flag: &str| {
        Command::new(env!("CARGO_BIN_EXE_stmjit"))
            .current_dir(&dir)
            .args(["run", flag, "p.lang"])
            .output()
            .unwrap()
    };
    let out = run_in_dir("--dump-asm=fill");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "9 3\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "note: --dump-asm=fill wrote the listing of every function to the file `fill`"
        ) && err.contains("--dump-asm-fn fill"),
        "{err}"
    );
    let text = std::fs::read_to_string(dir.join("fill")).expect("listing written");
    assert!(text.contains("; function f0_fill:"), "{text}");
    // A name that is no function, or a path with an extension, gets no note.
    for flag in ["--dump-asm=listing", "--dump-asm=fill.asm"] {
        let out = run_in_dir(flag);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("note:"), "{flag}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

const LEAF_PROGRAM: &str = "\
def leaf(x):
    return x + 1

def looping(n):
    s = 0
    i = 0
    while i < n:
        s = leaf(s)
        i += 1
    return s

print(looping(5))
";

/// The listing of `f0_NAME`-style function `name` in `text`.
fn function<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("; function ")
        .find(|s| {
            s.split(':')
                .next()
                .is_some_and(|n| n.ends_with(&format!("_{name}")))
        })
        .unwrap_or_else(|| panic!("no function {name} in:\n{text}"))
}

/// The safe-point polls are one read-modify-write of the budget word, the word read again
/// and a branch on its sign (no separate request word); a function without loops and calls
/// has no entry poll. Fused into the `add` and a `js` on its flags (NOP padding where the
/// re-read was) it ran trial-division primes 7-13% slower (issue 16).
#[test]
fn polls_use_one_word_and_leaf_functions_have_none() {
    let (out, text) = run_source(LEAF_PROGRAM, &[], "leaf");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5\n");
    let leaf = function(&text, "leaf");
    assert!(!leaf.contains("safe-point poll"), "{leaf}");
    assert!(!leaf.contains("stmjit_poll_slow"), "{leaf}");
    let looping = function(&text, "looping");
    let lines: Vec<&str> = looping.lines().collect();
    let polls: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].contains("; safe-point poll"))
        .collect();
    assert_eq!(polls.len(), 2, "entry and back-edge polls:\n{looping}");
    for &start in &polls {
        let seq: Vec<&str> = std::iter::once(lines[start])
            .chain(
                lines[start + 1..]
                    .iter()
                    .copied()
                    .take_while(|l| l.ends_with("; |")),
            )
            .collect();
        let count = |what: &str| seq.iter().filter(|l| l.contains(what)).count();
        // The decrement, the re-read of the same word, its sign tested and branched on;
        // no NOP padding, no `js` on the decrement's own flags.
        let budget_rmw: Vec<&&str> = seq
            .iter()
            .filter(|l| l.contains("segment readmodifywrite of 8 bytes"))
            .collect();
        assert_eq!(budget_rmw.len(), 1, "{seq:#?}");
        assert!(budget_rmw[0].contains(" add "), "{seq:#?}");
        assert!(budget_rmw[0].contains(",0FFFFFFFFFFFFFFFFh"), "{seq:#?}");
        assert_eq!(count("segment load of 8 bytes"), 1, "{seq:#?}");
        assert_eq!(count(" test "), 1, "{seq:#?}");
        assert_eq!(count("segment store"), 0, "{seq:#?}");
        assert_eq!(count(" nop "), 0, "{seq:#?}");
        assert!(seq.last().unwrap().contains(" jl "), "{seq:#?}");
    }
}

/// Conditions on int comparisons branch on the compare itself: no `sete`/`setl`/`setle`/
/// `setg`/`setge` makes a bool that is tested again. (Type tests of the cold float paths
/// still combine flags with `setne`/`setb`; `+=` tests `seto`.)
#[test]
fn int_conditions_branch_on_the_compare() {
    let (out, text) = run_source(
        "def f(n):\n    i = 0\n    k = 0\n    while i < n and not i % 7 == 3:\n        if i >= 2 or k != 0:\n            k += 1\n        i += 1\n    return k if k < n else i\n\nprint(f(10), f(2.5))\n",
        &[],
        "cond",
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 1\n");
    let f = function(&text, "f");
    let setcc: Vec<&str> = f
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|m| ["sete", "setl", "setle", "setg", "setge"].contains(&m))
        })
        .collect();
    assert!(setcc.is_empty(), "{setcc:#?}\n{f}");
}

const LIST_PROGRAM: &str = "\
def grow(xs, v):
    xs.append(v)
    return xs.pop() + xs.pop(0)

def triple(x):
    return x * 3

print(grow([1], 2), triple(5))
";

/// `xs.append(v)` and `xs.pop()` / `xs.pop(i)` of a list run inline, the method-call helper
/// after them (out of line); a multiplication by a constant has no `seto` (its overflow
/// test is a range check that the branch fuses with).
#[test]
fn list_methods_are_inline_and_constant_multiplies_fuse() {
    let (out, text) = run_source(LIST_PROGRAM, &[], "listmethods");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3 15\n");
    let grow = function(&text, "grow");
    let fast = grow
        .find("list index fast path")
        .unwrap_or_else(|| panic!("no inline list path:\n{grow}"));
    let helper = grow
        .find("calls stmjit_call_method")
        .unwrap_or_else(|| panic!("no helper fallback:\n{grow}"));
    assert!(fast < helper, "the inline path comes first:\n{grow}");
    let triple = function(&text, "triple");
    assert!(triple.contains("imul"), "{triple}");
    assert!(!triple.contains("seto"), "{triple}");
}

const INDEX_PROGRAM: &str = "\
def g(p):
    return p[1]

print(g([1, 3]))
";

/// The barriers of one region share one load of the read version: `p[1]` stores the read
/// markers of the list `p` and then of its element's granule with one load of the version
/// before both.
#[test]
fn barriers_of_a_region_share_the_read_version() {
    let (out, text) = run_source(INDEX_PROGRAM, &[], "readversion");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "3\n");
    let g = function(&text, "g");
    let events: Vec<&str> = g
        .lines()
        .filter_map(|l| {
            if l.contains("; read version") {
                Some("load")
            } else if l.contains("read barrier: read-marker store") {
                Some("store")
            } else {
                None
            }
        })
        .collect();
    assert_eq!(events[..3], ["load", "store", "store"], "{g}");
}

const LAZY_PROGRAM: &str = "\
class P:
    def __init__(self, x):
        self.x = x

def get(p):
    return p.x

def never(p):
    return p.x + 1

def worker(p, out):
    out.append(get(p) * 2)

p = P(5)
out = []
t = spawn(worker, p, out)
t.join()
print(get(p), out[0])
";

/// `--dump-asm-at exit` compiles each function at its first call, as a run without a listing
/// does, and lists at the end the code that was compiled: functions first called on another
/// thread are listed, one never called is not; `start` (the default) lists every function.
#[test]
fn dump_asm_at_exit_lists_the_code_compiled_during_the_run() {
    let (out, text) = run_source(LAZY_PROGRAM, &["--dump-asm-at", "exit"], "at-exit");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5 10\n");
    assert!(out.status.success(), "{out:?}");
    for name in ["f0_P.__init__", "f1_get", "f3_worker", "<module>"] {
        assert!(
            text.contains(&format!("; function {name}:")),
            "{name}:\n{text}"
        );
    }
    assert!(
        !text.contains("f2_never"),
        "a function never called is listed:\n{text}"
    );
    let (out, text) = run_source(LAZY_PROGRAM, &[], "at-start");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5 10\n");
    assert!(text.contains("; function f2_never:"), "{text}");
}

/// With `--dump-asm-at exit` a failing program still gets its listing, and keeps its exit
/// status; `--dump-asm-fn` naming a function that never ran is reported after the run.
#[test]
fn dump_asm_at_exit_keeps_the_exit_status() {
    let failing = format!("{LAZY_PROGRAM}print(never(None))\n");
    let (out, text) = run_source(&failing, &["--dump-asm-at", "exit"], "at-exit-fail");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("AttributeError"),
        "{out:?}"
    );
    assert!(text.contains("; function f2_never:"), "{text}");

    let dir = scratch::dir("dump-at-exit-nofn");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(&prog, LAZY_PROGRAM).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args([
            "run",
            "--dump-asm",
            "--dump-asm-at",
            "exit",
            "--dump-asm-fn",
            "never",
        ])
        .arg(&prog)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5 10\n");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--dump-asm-fn never: no such function"),
        "{err}"
    );
}

/// `--perf-map` writes `/tmp/perf-PID.map`: a line `START SIZE NAME` (hexadecimal) for each
/// function compiled, those compiled at their first call on another thread included, none
/// for a function never called; the ranges do not overlap.
#[test]
fn perf_map_names_the_code_of_every_compiled_function() {
    let dir = scratch::dir("perf-map");
    std::fs::create_dir_all(&dir).unwrap();
    let prog = dir.join("p.lang");
    std::fs::write(&prog, LAZY_PROGRAM).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--perf-map"])
        .arg(&prog)
        .env_remove("PERF_BUILDID_DIR")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let map = format!("/tmp/perf-{}.map", child.id());
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "5 10\n");
    let text = std::fs::read_to_string(&map).expect("perf map written");
    let _ = std::fs::remove_file(&map);
    let mut ranges = Vec::new();
    let mut names = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        let start = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
        let size = u64::from_str_radix(parts.next().unwrap(), 16).unwrap();
        assert!(size > 0, "{line}");
        ranges.push(start..start + size);
        names.push(parts.next().unwrap().to_string());
    }
    for name in ["f0_P.__init__", "f1_get", "f3_worker", "<module>"] {
        assert!(names.iter().any(|n| n == name), "{name}:\n{text}");
    }
    assert!(!names.iter().any(|n| n == "f2_never"), "{text}");
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        assert!(w[0].end <= w[1].start, "overlapping ranges:\n{text}");
    }
}
