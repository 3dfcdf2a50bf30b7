//! Large generated sources run as the interpreter runs them: a module body big enough to be
//! compiled as parts (`stmjit_jit::compile::parts`: loops, `try`, `def`, `class`, `with`
//! statements and errors on both sides of part boundaries, under forced aborts), displays of
//! thousands of constants (compiled as one table, `compile/literals.rs`), huge blocks nested
//! in `if`/`else`/`for`/`while` and huge chains of operators (also compiled as parts:
//! `compile/chains.rs`), huge loop bodies whose parts `break` and `continue`
//! (`compile/loop_exits.rs`), and the compile memory of all these bounded by their parts.
//! Bigger sizes with `STMJIT_BIG=1`.

mod scratch;

use std::process::{Command, Output, Stdio};

fn dir() -> std::path::PathBuf {
    scratch::dir("big")
}

/// Runs `src` (written to `name.lang`) with `args` before the file and `env`.
fn run(src: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let path = dir().join(format!("{name}.lang"));
    std::fs::write(&path, src).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run").args(args).arg(&path).stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stmjit")
}

/// Whether the heavy variants run.
fn big() -> bool {
    std::env::var("STMJIT_BIG").is_ok_and(|v| v == "1")
}

/// Runs `src` interpreted (`--interp`, the oracle), then compiled under each of `envs`;
/// asserts the same stdout, stderr and exit status each time, and returns the
/// interpreter's output.
fn same_as_interpreter(src: &str, name: &str, envs: &[&[(&str, &str)]]) -> Output {
    let interp = run(src, name, &["--interp"], &[]);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    for env in envs {
        let jit = run(src, name, &[], env);
        assert_eq!(
            text(&jit.stdout),
            text(&interp.stdout),
            "stdout of {name} {env:?}"
        );
        assert_eq!(
            text(&jit.stderr),
            text(&interp.stderr),
            "stderr of {name} {env:?}"
        );
        assert_eq!(
            jit.status.code(),
            interp.status.code(),
            "exit status of {name} {env:?}"
        );
    }
    interp
}

/// A module body of about `lines` lines cycling through every kind of top-level statement
/// (a loop, `try`, `with atomic`, `def` and `class` used many statements later), ending with
/// `tail`: 15 statements (nested ones counted, as the split counts them) every 20 lines, so
/// 1 400 lines or more are compiled as parts.
fn module_body(lines: usize, tail: &str) -> String {
    let mut out = String::from("g = 1\nh = 0\nys = []\n");
    let mut written = 3;
    let mut k = 0;
    while written < lines {
        let group = match k % 9 {
            0 => format!("g = (g * 31 + {k}) % 1000003\n"),
            1 => format!(
                "if g % 3 == {}:\n    h = h + 1\nelse:\n    h = h - 1\n",
                k % 3
            ),
            2 => "for i in range(3):\n    g = g + i\n".to_string(),
            3 => format!("try:\n    h = h + ys[{k}]\nexcept IndexError:\n    h = h + 2\n"),
            4 => format!("def f{k}(a):\n    return (a + {k}) % 1009\n"),
            5 => format!("g = g + f{}(h)\n", k - 1),
            6 => format!("class C{k}:\n    def __init__(self):\n        self.v = {k}\n"),
            7 => format!("with atomic:\n    ys.append(C{}().v % 7)\n", k - 1),
            _ => format!("t{k} = [g, h, len(ys), 'x{k}']\n"),
        };
        written += group.lines().count();
        out.push_str(&group);
        k += 1;
    }
    out.push_str("print(g, h, len(ys), sum(ys))\n");
    out.push_str(tail);
    out
}

/// A body of 1 600 lines (1 200 statements: compiled as parts) gives the interpreter's
/// output; also under forced aborts (restarts inside parts and in `<module>` between them),
/// with every part and `<module>` through the quick tier, and eagerly compiled with the IR
/// verifier.
#[test]
fn a_huge_module_body_runs_as_the_interpreter_runs_it() {
    let n = if big() { 40_000 } else { 1_600 };
    let src = module_body(n, "print(t8[3])\n");
    let envs: &[&[(&str, &str)]] = &[
        &[],
        &[("STMJIT_ABORT_PROBABILITY", "0.2"), ("STMJIT_BUDGET", "7")],
        &[("STMJIT_QUICK", "1")],
        &[("STMJIT_EAGER", "1"), ("STMJIT_VERIFY", "1")],
    ];
    let out = same_as_interpreter(&src, "body", envs);
    assert_eq!(out.status.code(), Some(0));
}

/// A function of about `lines` lines (with parameters `a` and `b`) whose locals live across
/// many statements: a closure over `a` made at its start and called throughout (a cell
/// variable), `return` from the middle when `a` is `k` for some `k` (a different part each
/// time), loops, `try`, `with atomic`, floats, and an error when `a` is -1 (`ys[10 ** 6]`
/// near its end). 1 400 lines or more are over 1 024 statements: compiled as parts.
fn function_body(lines: usize) -> String {
    let mut out = String::from(
        "def big(a, b):\n    def add(x):\n        return x + a\n    g = 1\n    h = 0.5\n    ys = [b]\n",
    );
    let mut written = 6;
    let mut k = 0;
    while written < lines {
        let group = match k % 9 {
            0 => format!("    g = (g * 31 + add({k})) % 1000003\n"),
            1 => format!(
                "    if g % 3 == {}:\n        h = h + 1.5\n    else:\n        h = h - 1\n",
                k % 3
            ),
            2 => "    for i in range(3):\n        g = g + i\n".to_string(),
            3 => format!(
                "    try:\n        g = g + ys[{}]\n    except IndexError:\n        g = g + 2\n",
                k % 11
            ),
            4 => format!(
                "    if a == {}:\n        return [g, h, len(ys), 'at {k}']\n",
                k / 9
            ),
            5 => format!("    t{} = [g, h, len(ys), 'x{k}']\n", k % 40),
            6 => format!("    z{} = g * 2 + len(t{})\n", k % 40, (k - 1) % 40),
            7 => "    with atomic:\n        ys.append(g % 7)\n".to_string(),
            _ => "    while len(ys) > 50:\n        ys.pop()\n".to_string(),
        };
        written += group.lines().count();
        out.push_str(&group);
        k += 1;
    }
    out.push_str("    if a == -1:\n        g = ys[10 ** 6]\n    return [g, h, len(ys), sum(ys), z0, t1[3]]\n");
    out
}

/// A function of 1 600 lines (compiled as parts sharing its frame) gives the interpreter's
/// output: returned from its first, middle and last parts, called again (its frame reused),
/// from a loop, also under forced aborts (restarts inside parts and in the function), with
/// every function through the quick tier, and eagerly compiled with the IR verifier; an
/// error in its last part has the interpreter's message, position and call stack.
#[test]
fn a_huge_function_runs_as_the_interpreter_runs_it() {
    let n = if big() { 40_000 } else { 1_600 };
    let mut src = function_body(n);
    src.push_str(
        "def caller(a):\n    return big(a, 3)\n\
         for a in [0, 1, 5, 40, 10 ** 9, 7, 10 ** 9]:\n    print(caller(a))\n\
         r = 0\nfor i in range(20):\n    r = r + len(str(big(i * 3, i)[3]))\n\
         print(r)\n\
         print(big(-1, 0))\n",
    );
    let envs: &[&[(&str, &str)]] = &[
        &[],
        &[("STMJIT_ABORT_PROBABILITY", "0.2"), ("STMJIT_BUDGET", "7")],
        &[("STMJIT_QUICK", "1")],
        &[("STMJIT_EAGER", "1"), ("STMJIT_VERIFY", "1")],
        &[
            ("STMJIT_NURSERY", "4096"),
            ("STMJIT_ABORT_PROBABILITY", "0.2"),
            ("STMJIT_BUDGET", "7"),
        ],
    ];
    let out = same_as_interpreter(&src, "function", envs);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IndexError"), "{err}");
    assert!(err.contains("in big"), "{err}");
}

/// An error raised in a late part of a huge body, and one raised inside a function defined
/// in an early part and called from a late one: the interpreter's message, position and
/// call stack (`<module>` appears once: passing an error from a part to `<module>` adds no
/// entry).
#[test]
fn errors_in_a_huge_module_body_keep_their_positions() {
    let src = module_body(1_500, "print(ys[10 ** 6])\n");
    let out = same_as_interpreter(&src, "late_error", &[&[]]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IndexError"), "{err}");
    let src =
        module_body(800, "def boom(a):\n    return a // 0\n") + &module_body(800, "boom(3)\n");
    let out = same_as_interpreter(&src, "call_error", &[&[]]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ZeroDivisionError"), "{err}");
}

/// A huge module body runs by parts compiled as they are reached, the code of each freed
/// once the next is compiled (`jit/src/program/module_parts.rs`): threads spawned in early
/// parts and joined in late ones (one failing), and an exception caught in an early part
/// and raised again in the last give the interpreter's output and trace, also under forced
/// aborts (a restart at a part boundary runs the part after it, never one before) and with
/// the whole body compiled first; `--stats-json` counts most of the code as freed.
#[test]
fn a_module_body_run_by_parts_frees_them_and_keeps_its_semantics() {
    let head = "def work(k):\n    s = 0\n    for i in range(40):\n        s = s + i * k\n    \
                return s // (k - 2)\nts = []\n";
    let early = "for k in range(5):\n    ts.append(spawn(work, k))\ntry:\n    \
                 ys[10 ** 6]\nexcept IndexError as e:\n    saved = e\n";
    let late = "for t in ts[:2]:\n    print(t.join())\ntry:\n    ts[2].join()\n\
                except ZeroDivisionError:\n    print('caught')\nprint(ts[4].join())\n\
                raise saved\n";
    let src = format!(
        "{head}{}{}",
        module_body(1_600, early),
        module_body(1_600, late)
    );
    let out = same_as_interpreter(
        &src,
        "by_parts",
        &[
            &[],
            &[("STMJIT_ABORT_PROBABILITY", "0.2"), ("STMJIT_BUDGET", "7")],
            &[("STMJIT_EAGER", "1")],
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IndexError"), "{err}");
    let json = dir().join("by_parts.json");
    let path = json.display().to_string();
    run(&src, "by_parts", &["--stats-json", &path], &[]);
    let text = std::fs::read_to_string(&json).unwrap();
    let (code, freed) = (
        json_number(&text, "code_bytes"),
        json_number(&text, "code_freed_bytes"),
    );
    assert!(freed > code / 2, "{freed} of {code} bytes of code freed");
}

/// The number after `"key":` in `text`.
fn json_number(text: &str, key: &str) -> u64 {
    let at = text.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let digits: String = text[at..]
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().unwrap()
}

/// Displays of thousands of constants (ints, negative ints, floats, strs, bools, None; a
/// repeated key), each kind of display, and displays mixing constants and expressions: the
/// interpreter's values.
#[test]
fn displays_of_many_constants_hold_their_items() {
    // The source holds the items 7 times: 300 000 of them stay under the 64 MB source limit.
    let n = if big() { 200_000 } else { 5_000 };
    let items: Vec<String> = (0..n)
        .map(|i| match i % 7 {
            0 => format!("{}", i * 3),
            1 => format!("-{i}"),
            2 => format!("{i}.5"),
            3 => format!("'s{i}'"),
            4 => "True".into(),
            5 => "None".into(),
            _ => format!("{}", (1i64 << 60) - i as i64),
        })
        .collect();
    let joined = items.join(", ");
    let dict: Vec<String> = (0..n)
        .map(|i| format!("{}: {}", items[i], items[(i * 5 + 1) % n]))
        .collect();
    let src = format!(
        "xs = [{joined}]\nts = ({joined})\nss = {{{joined}}}\nd = {{{}, 'dup': 1, 'dup': 2}}\n\
         print(len(xs), xs[0], xs[1], xs[2], xs[3], xs[-1], xs[{n} // 2])\n\
         print(len(ts), ts[4], ts[5], ts[-2])\n\
         print(len(ss), 's3' in ss, -1 in ss)\n\
         print(len(d), d['dup'], d[21], d[2.5], d['s{}'])\n\
         xs[0] = 'changed'\nys = [{joined}]\nprint(ys[0], xs[0])\n\
         m = [len(xs), {joined}, len(ts)]\nprint(m[0], m[-1], len(m))\n",
        dict.join(", "),
        7 * (n / 14) + 3,
    );
    // A 4 KiB nursery (a collection every few allocations) at the CI size only: building
    // displays of 40 000 items under it already takes 1.6 GB (the runtime's, before and after
    // constant tables), 300 000 took 18 GB.
    let nursery: &[(&str, &str)] = if big() {
        &[]
    } else {
        &[("STMJIT_NURSERY", "4096")]
    };
    let out = same_as_interpreter(&src, "displays", &[nursery]);
    assert_eq!(out.status.code(), Some(0));
}

/// Displays of thousands of expressions (evaluated by parts of a few hundred items, each
/// compiled on its own: `compile::parts`), of each kind, in a function (reading its locals
/// and parameters) and in the module body, with calls and big int literals among them, one
/// inside `try` and one inside `with atomic`, and an item that raises in
/// the middle of a display: the interpreter's values, error and traceback, also with a
/// 4 KiB nursery (objects move while parts run) under forced aborts, eagerly compiled with
/// the IR verifier, and with the quick tier.
#[test]
fn displays_of_many_expressions_hold_their_items() {
    let n = if big() { 100_000 } else { 1_200 };
    let items = |k: usize| -> String {
        (0..n)
            .map(|i| match (i + k) % 5 {
                0 => format!("a + {i}"),
                1 => format!("str(b * {i})"),
                2 => format!("(a, {i})"),
                3 => format!("-{}", 123456789012345678901234567u128 + i as u128),
                _ => format!("{} + a", 9223372036854775808u64 + i as u64),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let keys: String = (0..n)
        .map(|i| format!("a * {i}: b + {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let src = format!(
        "def f(a, b):\n    xs = [{l}]\n    ts = ({t})\n    ss = {{{k}}}\n    d = {{{keys}}}\n\
         \x20   return xs, ts, len(ss), d\n\
         xs, ts, nss, d = f(7, 3)\n\
         print(len(xs), xs[0], xs[1], xs[2], xs[3], xs[4], xs[-1], ts[-3], nss, len(d), d[7 * 5])\n\
         a = 2\nb = 5\nm = [{l}]\nprint(len(m), m[{h}], sum([len(str(x)) for x in m]))\n\
         try:\n    t = ({t})\nexcept KeyError:\n    t = 0\nprint(len(t), t[9])\n\
         with atomic:\n    u = [{l}]\nprint(len(u), u[-2])\n\
         def g(a, b):\n    return [{l}, a // b, {t}]\n\
         print(len(g(1, 2)))\nprint(g(1, 0))\n",
        l = items(0),
        t = items(1),
        k = items(2),
        h = n / 2,
    );
    let envs: &[&[(&str, &str)]] = &[
        &[],
        &[
            ("STMJIT_NURSERY", "4096"),
            ("STMJIT_ABORT_PROBABILITY", "0.2"),
            ("STMJIT_BUDGET", "7"),
        ],
        &[("STMJIT_EAGER", "1"), ("STMJIT_VERIFY", "1")],
        &[("STMJIT_QUICK", "1")],
    ];
    let out = same_as_interpreter(&src, "expr_displays", envs);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ZeroDivisionError"), "{err}");
}

/// A display of 20 000 expressions compiles in memory for a few hundred of them at a time:
/// within 256 MiB more address space than a program of one statement (compiled as one
/// function, such a display took about 90 KB per item). A display of 60 000 big int
/// literals is a table of constants (it took 52.9 s and 5.3 GB): within 128 MiB more.
#[test]
fn a_huge_display_compiles_in_bounded_memory() {
    let n = if big() { 200_000 } else { 20_000 };
    let items: Vec<String> = (0..n).map(|i| format!("str(a + {i})")).collect();
    let src = format!(
        "def f(a):\n    return [{}]\nxs = f(1)\nprint(len(xs), xs[-1])\n",
        items.join(", ")
    );
    runs_in_bounded_memory(&src, "huge_display", 256);
    let bigs: Vec<String> = (0..60_000u128)
        .map(|i| format!("{}", (1 << 64) + i))
        .collect();
    let src = format!(
        "xs = [{}]\nprint(len(xs), xs[0], xs[-1])\n",
        bigs.join(", ")
    );
    runs_in_bounded_memory(&src, "huge_bigs", 128);
}

/// The smallest address-space limit (`ulimit -v`, in MiB) under which `stmjit run` of
/// `name` exits 0, between `lo` (fails) and `hi` (runs), to 16 MiB.
fn min_limit(name: &str, mut lo: u64, mut hi: u64) -> u64 {
    while hi - lo > 16 {
        let mid = (lo + hi) / 2;
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v {} && exec \"$0\" run --threads 1 {name}.lang",
                mid << 10
            ))
            .arg(env!("CARGO_BIN_EXE_stmjit"))
            .current_dir(dir())
            .stdin(Stdio::null())
            .output()
            .expect("start sh");
        if out.status.code() == Some(0) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    hi
}

/// Compiling a huge module body takes memory for one part at a time: a body of 6 000 lines
/// (4 500 statements) runs in at most 256 MiB more address space than a program of one
/// statement needs (the runtime's reservation, threads and code space set the base). Compiled
/// as one function it did not (the allocator failed and the process aborted). With
/// `STMJIT_BIG=1`, 50 000 lines in 1 GiB more: memory stays proportional to the source (its
/// code, 39 MB, and its 5 000 functions: about 210 MB of peak RSS), not to its square.
#[test]
fn a_huge_module_body_compiles_in_bounded_memory() {
    let (n, extra) = if big() { (50_000, 1024) } else { (6_000, 256) };
    runs_in_bounded_memory(&module_body(n, ""), "huge", extra);
}

/// Runs `src` (as `name.lang`) with at most `extra` MiB more address space than a program of
/// one statement needs (the runtime's reservation, threads and code space set the base);
/// asserts that it exits 0.
fn runs_in_bounded_memory(src: &str, name: &str, extra: u64) {
    std::fs::write(dir().join("tiny.lang"), "print(1)\n").unwrap();
    std::fs::write(dir().join(format!("{name}.lang")), src).unwrap();
    let ok = limited;
    // An upper bound that runs anything here (the reservation follows the machine's memory
    // unless the limit is lower; then 4 GiB segments).
    let mut hi = 16 << 10;
    while ok("tiny", hi).status.code() != Some(0) {
        hi *= 2;
        assert!(hi < 1 << 24, "print(1) does not run under any limit");
    }
    let base = min_limit("tiny", 0, hi);
    let out = ok(name, base + extra);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{name} does not run in {base} + {extra} MiB:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compiling a huge function takes memory for one part of its body at a time: a function
/// of 6 000 lines (about 5 400 statements) runs in at most 256 MiB more address space than
/// a program of one statement. Compiled as one function it did not (about 50 KB of compile
/// memory per line, and 110 KB with a Cranelift variable per `except` clause: 2.2 GB for
/// 20 000 lines). With `STMJIT_BIG=1`, 50 000 lines in 512 MiB more.
#[test]
fn a_huge_function_compiles_in_bounded_memory() {
    let (n, extra) = if big() { (50_000, 512) } else { (6_000, 256) };
    let src = function_body(n) + "print(big(10 ** 9, 1))\n";
    runs_in_bounded_memory(&src, "huge_fn", extra);
}

/// A module body of 1 500 `for` loops (a part holding a loop gets the optimizing tier, whose
/// memory per node is several times the quick tier's, so such parts are a quarter of the
/// size: `compile::parts::LOOP_WEIGHT`) runs as the interpreter runs it, in at most 32 MiB
/// more address space than a program of one statement. Before, it needed 56 MiB more
/// (peak RSS 103 MB, now 48 MB; compile CPU 3.1 s, now 2.2 s).
#[test]
fn a_module_body_of_many_loops_compiles_in_bounded_memory() {
    let mut src = String::from("g = 1\n");
    for i in 0..1_500 {
        src.push_str(&format!("for k in range(2):\n    g = g + k + {}\n", i % 7));
    }
    src.push_str("print(g)\n");
    let out = same_as_interpreter(&src, "loops", &[&[]]);
    assert_eq!(out.status.code(), Some(0));
    runs_in_bounded_memory(&src, "loops", 32);
}

/// The argument list `(f(0), f(1), ...)` of `n` arguments, `f` giving each.
fn arg_list(n: usize, f: impl Fn(usize) -> String) -> String {
    (0..n).map(f).collect::<Vec<_>>().join(", ")
}

/// Calls of 4 000 arguments (evaluated by parts into the call's temporaries, as a
/// display's items are), of a function, of a method (`str.format` and a method of a
/// class) and with a keyword argument, and one whose argument in the middle raises: the
/// interpreter's values and error; the first ones in at most 512 MiB more address space
/// than a program of one statement. Before (each argument compiled in place, in one piece),
/// they needed 2.1 GiB more (peak RSS 265 MB, now 59 MB; 10 000 arguments: 411 MB, now 44).
#[test]
fn calls_of_many_arguments_run_in_bounded_memory() {
    let n = 4_000;
    let calls = format!(
        "def va(*xs, **kw):\n    return len(xs) + sum(xs) + len(kw)\n\
         class C:\n    def m(self, *xs):\n        return len(xs)\n\
         def f(a):\n    x = va({})\n    y = '{}'.format({})\n    z = va({}, k=a)\n\
         \x20   w = C().m({})\n    return x, len(y), y[-12:], z, w\nprint(f(1))\n",
        arg_list(n, |i| format!("a + {i}")),
        "{}-".repeat(n),
        arg_list(n, |i| format!("a * {i}")),
        arg_list(n, |i| format!("a - {i}")),
        arg_list(n, |i| format!("a + {i}")),
    );
    let failing = format!(
        "{calls}def g(a):\n    return va({})\nprint(g(2))\n",
        arg_list(n, |i| if i == n / 2 {
            "a // 0".into()
        } else {
            format!("a + {i}")
        })
    );
    let out = same_as_interpreter(&failing, "args_error", &[&[]]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ZeroDivisionError"), "{err}");
    assert!(err.contains("in g"), "{err}");
    runs_in_bounded_memory(&calls, "many_args", 512);
}

/// `--dump-asm-fn '<module>'` lists `<module>` and every part of a huge body, and the program
/// still runs.
#[test]
fn the_listing_of_module_shows_its_parts() {
    let src = module_body(1_600, "");
    let listing = dir().join("parts.asm");
    let arg = format!("--dump-asm={}", listing.display());
    let out = run(&src, "parts", &[&arg, "--dump-asm-fn", "<module>"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&listing).unwrap();
    let functions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("; function "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert!(functions.len() > 2, "{functions:?}");
    assert_eq!(functions[0], "<module>", "{functions:?}");
    for (k, f) in functions[1..].iter().enumerate() {
        assert_eq!(*f, format!("<module>#{}", k + 1), "{functions:?}");
    }
}

/// `--dump-asm-fn big` lists a huge function `big` and every part of its body (named
/// `f<id>_big#k`), and the program still runs.
#[test]
fn the_listing_of_a_huge_function_shows_its_parts() {
    let src = function_body(1_600) + "print(big(10 ** 9, 1))\n";
    let listing = dir().join("fn_parts.asm");
    let arg = format!("--dump-asm={}", listing.display());
    let out = run(&src, "fn_parts", &[&arg, "--dump-asm-fn", "big"], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&listing).unwrap();
    let functions: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("; function "))
        .map(|l| l.split(':').next().unwrap())
        .collect();
    assert!(functions.len() > 2, "{functions:?}");
    let parent = functions.iter().find(|f| !f.contains('#')).expect("big");
    assert!(parent.ends_with("_big"), "{functions:?}");
    let mut parts: Vec<&str> = functions
        .iter()
        .copied()
        .filter(|f| f.contains('#'))
        .collect();
    parts.sort_by_key(|f| f.split('#').nth(1).unwrap().parse::<usize>().unwrap());
    for (k, f) in parts.iter().enumerate() {
        assert_eq!(*f, format!("{parent}#{}", k + 1), "{functions:?}");
    }
    assert_eq!(parts.len() + 1, functions.len(), "{functions:?}");
}

/// Compiling under too little memory is a `MemoryError`: a function of 700 lines in a
/// `try` (just under the size cut into parts: one piece, about 40 MB to compile) run with 4
/// to 24 MiB more address space than a program of one statement either runs or exits 1
/// with `error: MemoryError: out of memory while compiling` and what it was compiling (`at
/// FILE:LINE:COL in NAME`), never killed by `SIGABRT` (the allocator's failure in Cranelift
/// aborted the process, exit status 134), and the smallest limit is such an error.
#[test]
fn compiling_out_of_memory_is_a_memory_error() {
    std::fs::write(dir().join("tiny.lang"), "print(1)\n").unwrap();
    let body = function_body(700);
    let (def, rest) = body.split_once('\n').unwrap();
    let src = format!(
        "{def}\n    try:\n{}    except KeyError:\n        pass\nprint(big(10 ** 9, 1))\n",
        rest.lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
    );
    std::fs::write(dir().join("oom.lang"), src).unwrap();
    let mut hi = 16 << 10;
    while limited("tiny", hi).status.code() != Some(0) {
        hi *= 2;
        assert!(hi < 1 << 24, "print(1) does not run under any limit");
    }
    let base = min_limit("tiny", 0, hi);
    let mut errors = 0;
    for extra in [4, 8, 12, 16, 24] {
        let out = limited("oom", base + extra);
        let err = String::from_utf8_lossy(&out.stderr);
        match out.status.code() {
            Some(0) => {}
            Some(1) => {
                assert!(err.contains("error: MemoryError: "), "{err}");
                // Where: `<module>`, or `big` at its `def`.
                assert!(
                    err.contains("\n  at oom.lang in <module>\n")
                        || err.contains("\n  at oom.lang:1:1 in big\n"),
                    "{err}"
                );
                errors += 1;
            }
            _ => panic!("base + {extra} MiB: {:?}\n{err}", out.status),
        }
    }
    assert!(errors > 0, "no limit was too small");
}

/// `stmjit run --threads 1 NAME.lang` under `ulimit -v` of `mib` MiB.
fn limited(name: &str, mib: u64) -> Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" run --threads 1 {name}.lang",
            mib << 10
        ))
        .arg(env!("CARGO_BIN_EXE_stmjit"))
        .current_dir(dir())
        .stdin(Stdio::null())
        .output()
        .expect("start sh")
}

/// The environments the parts of huge code run under: the default, forced aborts with a
/// 4 KiB nursery (objects move while parts run, restarts inside them), the quick tier, and
/// eager compilation with the IR verifier.
const VARIANTS: &[&[(&str, &str)]] = &[
    &[],
    &[
        ("STMJIT_NURSERY", "4096"),
        ("STMJIT_ABORT_PROBABILITY", "0.2"),
        ("STMJIT_BUDGET", "7"),
    ],
    &[("STMJIT_QUICK", "1")],
    &[("STMJIT_EAGER", "1"), ("STMJIT_VERIFY", "1")],
];

/// About `lines` lines of statements at indentation `ind` (using `g`, `h` and `ys`, and
/// `a` and `q`): arithmetic, `if`/`else`, `try`, list operations, and every `every` lines
/// one of `extra` in turn (statements that leave the block: `break`, `continue`,
/// `return`).
fn block(ind: &str, lines: usize, every: usize, extra: &[&str]) -> String {
    let mut out = String::new();
    let (mut written, mut k) = (0, 0);
    while written < lines {
        let group = match k % 6 {
            0 => format!("{ind}g = (g * 31 + {k} + a) % 1000003\n"),
            1 => format!(
                "{ind}if g % 3 == {}:\n{ind}    h = h + 1\n{ind}else:\n{ind}    h = h - 1\n",
                k % 3
            ),
            2 => format!(
                "{ind}try:\n{ind}    h = h + ys[{}]\n{ind}except IndexError:\n{ind}    h = h + 2\n",
                k % 5
            ),
            3 => format!("{ind}ys.append(g % 7)\n"),
            4 => format!("{ind}t{} = [g, h, 'x{k}', q]\n", k % 9),
            _ => format!("{ind}if len(ys) > 50:\n{ind}    ys.pop()\n"),
        };
        written += group.lines().count();
        out.push_str(&group);
        if k % every == every - 1 && !extra.is_empty() {
            let e = extra[(k / every) % extra.len()];
            out.push_str(&format!("{ind}{}\n", e.replace('\n', &format!("\n{ind}"))));
        }
        k += 1;
    }
    out
}

/// A program whose huge blocks are the bodies of `if`, `else`, `for` and `while`
/// statements, in a function (huge: its blocks are cut into parts sharing its frame, some
/// returning from it) and in the module body, with `break`, `continue` and `return` among
/// their statements (leaving their parts by a loop word or the return slot) and loops
/// around them.
fn nested_blocks(lines: usize) -> String {
    let exits = [
        "if g % 7 == 3 and q == 1:\n    continue",
        "if a == 5 and q == 2 and g % 3 == 1:\n    break",
    ];
    let exits = [
        exits[0],
        exits[1],
        "if a == 9 and q == 1 and h % 4 == 1:\n    return ['early', g, h, len(ys)]",
    ];
    let returns = ["if a == 0 and q == 2 and h % 3 == 1:\n    return ['early0', g, h, len(ys)]"];
    let mut src =
        String::from("def big(a):\n    g = 1\n    h = 0\n    ys = [1, 2, 3]\n    q = 0\n");
    src.push_str("    for q in range(3):\n        if a > q:\n");
    src.push_str(&block("            ", lines, 40, &exits));
    src.push_str("        else:\n");
    src.push_str(&block("            ", lines, 50, &returns));
    src.push_str("    while h < 10 ** 6:\n");
    src.push_str(&block("        ", lines / 2, 60, &returns));
    src.push_str("        h = h + 10 ** 6\n");
    src.push_str("    return [g, h, len(ys), sum(ys), t1]\n");
    src.push_str("for a in [0, 2, 5, 9, 9]:\n    print(big(a))\n");
    src.push_str("a = 1\ng = 1\nh = 0\nys = []\nq = 0\nif len(ys) == 0:\n");
    src.push_str(&block("    ", lines, 60, &[]));
    src.push_str("for q in range(2):\n");
    src.push_str(&block("    ", lines, 40, &exits[..2]));
    src.push_str("print(g, h, len(ys), t1)\n");
    src
}

/// Huge blocks nested in `if`, `else`, `for` and `while`, in a function and in the module
/// body (cut into parts where they are: `compile::parts`), give the interpreter's output:
/// `break`, `continue` and `return` among them, returns from parts of different blocks;
/// also under forced aborts with a 4 KiB nursery, with the quick tier, and eagerly
/// compiled with the IR verifier.
#[test]
fn huge_nested_blocks_run_as_the_interpreter_runs_them() {
    let n = if big() { 20_000 } else { 2_500 };
    let text = succeeds_as_in_the_interpreter(&nested_blocks(n), "nested_blocks");
    assert!(text.contains("early"), "{text}");
}

/// Asserts that `text` contains each of `seen`.
fn assert_contains_all(text: &str, seen: &[&str]) {
    for seen in seen {
        assert!(text.contains(seen), "{seen} in {text}");
    }
}

/// Runs `src` as [`same_as_interpreter`] does under each of [`VARIANTS`]; asserts that it
/// exits 0 and returns its output.
fn succeeds_as_in_the_interpreter(src: &str, name: &str) -> String {
    let out = same_as_interpreter(src, name, VARIANTS);
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `x0 op y1 op y2 ...` of `n` terms (`+` and `-` of ints, or `+` of strs).
fn chain(first: &str, op: &str, term: impl Fn(usize) -> String, n: usize) -> String {
    let mut s = String::from(first);
    for i in 0..n {
        s.push_str(op);
        s.push_str(&term(i));
    }
    s
}

/// Chains of thousands of binary operators (evaluated by parts: `compile/chains.rs`) give
/// the interpreter's values: int arithmetic into big ints, str concatenation, several in
/// one statement, in a display, in a function (reading its locals) and in the module, one
/// in a `try`, and one whose operation fails in the middle (its error and
/// position); also under forced aborts with a 4 KiB nursery, with the quick tier and
/// eagerly compiled with the IR verifier.
#[test]
fn huge_chains_of_operators_run_as_the_interpreter_runs_them() {
    let n = if big() { 19_000 } else { 5_000 };
    let ints = chain("a", " + ", |i| format!("{}", i * 7 + 1), n);
    let mixed = chain("b", " - ", |i| format!("(a * {i})"), n);
    let strs = chain("s", " + ", |i| format!("'{}'", i % 10), n);
    let bad = chain(
        "a",
        " + ",
        |i| if i == n / 2 { "s".into() } else { "1".into() },
        n,
    );
    let src = format!(
        "def f(a, b, s):\n    x = {ints}\n    y = [{mixed}, {ints} * 2]\n    z = {strs}\n\
         \x20   return x, y, len(z), z[-20:]\n\
         print(f(1, 2, 'q'))\n\
         a = 3\nb = 4\ns = 'w'\nx = {ints}\nz = {strs}\nprint(x, len(z))\n\
         try:\n    w = {mixed}\nexcept KeyError:\n    w = 0\nprint(w)\n\
         def g(a, s):\n    return {bad}\n\
         print(g(1, 'x'))\n"
    );
    let out = same_as_interpreter(&src, "chains", VARIANTS);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TypeError"), "{err}");
    assert!(err.contains("in g"), "{err}");
}

/// Compiling huge nested blocks and huge chains of operators takes memory for one part at
/// a time: an `if` block of 6 000 lines in a function and a `for` block of 6 000 lines in
/// the module run in at most 128 MiB more address space than a program of one statement,
/// 6 statements of chains of 4 000 terms in 256 MiB more (their code is about 20 MB;
/// before: about 45 KB per line of such a block, 37 KB per term of a chain, all at once).
/// With `STMJIT_BIG=1`, 40 000 lines and 20 chains.
#[test]
fn huge_blocks_and_chains_compile_in_bounded_memory() {
    let (n, chains) = if big() { (40_000, 20) } else { (6_000, 6) };
    let mut src =
        String::from("def f(a):\n    g = 1\n    h = 0\n    ys = [1]\n    q = 0\n    if a > 0:\n");
    src.push_str(&block("        ", n, 100, &[]));
    src.push_str("    return [g, h, len(ys)]\nprint(f(1))\n");
    runs_in_bounded_memory(&src, "huge_if", 128);
    let mut src = String::from("a = 1\ng = 1\nh = 0\nys = []\nfor q in range(2):\n");
    src.push_str(&block("    ", n, 100, &[]));
    src.push_str("print(g, h)\n");
    runs_in_bounded_memory(&src, "huge_for", 128);
    let mut src = String::from("a = 1\n");
    for k in 0..chains {
        src.push_str(&format!(
            "x{k} = {}\n",
            chain("a", " + ", |i| format!("{}", i % 9), 4_000)
        ));
    }
    src.push_str("print(x0)\n");
    runs_in_bounded_memory(&src, "huge_chains", 256);
}

/// `--stats` counts the code of the parts a function is compiled as (of its displays
/// here) in its own: a display of 2 000 expressions has about four times the code of one
/// of 200 (its parts are compact code, compiled with the optimizer: about a third as much
/// per item as the display of 200 compiled in place; without the parts, it would have
/// less code than the small one).
#[test]
fn stats_count_the_code_of_parts() {
    let code = |n: usize| -> u64 {
        let items: Vec<String> = (0..n).map(|i| format!("a + {i}")).collect();
        let src = format!(
            "def f(a):\n    return [{}]\nprint(len(f(1)))\n",
            items.join(", ")
        );
        code_bytes(&src, &format!("stats{n}"))
    };
    let (small, large) = (code(200), code(2_000));
    assert!(large > 3 * small, "{small} {large}");
}

/// The bytes of machine code compiled for `src` (run as `name.lang`, which must exit 0),
/// from `--stats-json`.
fn code_bytes(src: &str, name: &str) -> u64 {
    let json = dir().join(format!("{name}.json"));
    let path = json.display().to_string();
    let out = run(src, name, &["--stats-json", &path], &[]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    json_number(&text, "code_bytes")
}

/// A function whose `try` (in a loop, around a `with atomic:` and an inner `try`) has
/// `returns` `return` statements and `finally` bodies of `fin` statements each; `a` picks
/// how it leaves: a `return` of the body, `break`, `continue`, an exception, a `return` in
/// the inner `finally` (which wins), one in the outer, an exception raised by the inner
/// `finally` on the way out of a `return`, caught around it.
fn returns_through_finally(returns: usize, fin: usize) -> String {
    let mut src = String::from("log = []\ndef f(a):\n    for k in range(3):\n        try:\n");
    src.push_str("            with atomic:\n                try:\n");
    for i in 0..returns {
        src.push_str(&format!(
            "                    if a == {i}:\n                        return {i} * 7 + k\n"
        ));
    }
    src.push_str(
        "                    if a == -1:\n                        break\n\
         \x20                   if a == -2 and k < 2:\n                        continue\n\
         \x20                   if a == -3:\n                        raise ValueError(k)\n\
         \x20                   if a < -3:\n                        return 'body'\n\
         \x20               finally:\n",
    );
    for i in 0..fin {
        src.push_str(&format!("                    log.append({i} + k)\n"));
    }
    src.push_str(
        "                    if a == -4:\n                        return 'inner'\n\
         \x20                   if a == -6:\n                        raise KeyError(a)\n\
         \x20       finally:\n            log.append('outer')\n",
    );
    for i in 0..fin {
        src.push_str(&format!("            log.append(-{i})\n"));
    }
    src.push_str(
        "            if a == -5:\n                return 'outer'\n    return 'end'\n\
         def g(a):\n    try:\n        return f(a)\n    except KeyError as e:\n        return 'caught'\n\
         \x20   except ValueError as e:\n        return 'value'\n",
    );
    src.push_str(&format!(
        "for a in [0, 1, {}, -1, -2, -3, -4, -5, -6, -7]:\n    log = []\n    print(a, g(a), len(log), log[-1])\n",
        returns - 1
    ));
    src
}

/// Every `return` leaving a `try` with a `finally` runs the same code: the `finally`
/// bodies are compiled once for all of them, not at each `return`, so the code of 60 more
/// `return`s does not grow with the `finally` bodies (43.5 KB for bodies of 2 statements,
/// 48.8 KB for 10; it grew with them: 60 returns through bodies of 10 statements took
/// 17 MB of code and 3.1 s of compile CPU; 300 returns through a `finally` of 20
/// statements 12.4 MB and 2.0 s, 78 KB and 0.03 s now). Sizes where the function stays on
/// the optimizing tier (a larger one is compiled with the quick tier, whose code is
/// several times as large). Leaving by each way runs as the interpreter runs it.
#[test]
fn returns_through_a_finally_share_its_code() {
    same_as_interpreter(&returns_through_finally(12, 3), "ret_fin", VARIANTS);
    let more = |fin: usize| {
        let code = |returns: usize| {
            let name = format!("ret_fin_{returns}_{fin}");
            code_bytes(&returns_through_finally(returns, fin), &name)
        };
        code(120) - code(60)
    };
    let (small, large) = (more(2), more(10));
    assert!(large < 2 * small, "{small} {large}");
}

/// A function with `depth` `try` statements with a `finally` nested in one another's body
/// inside a loop, each `try` with a `break` and a `continue` (taken when `a` picks its
/// level); the calls log every body and `finally`.
fn nested_finally_exits(depth: usize) -> String {
    let mut src = String::from("log = []\ndef f(a):\n    for i in range(2):\n");
    for k in 0..depth {
        let p = "    ".repeat(2 + k);
        src.push_str(&format!(
            "{p}try:\n{p}    if a == {k}:\n{p}        break\n\
             {p}    if a == {k} + 100 and i == 0:\n{p}        continue\n{p}    log.append({k})\n"
        ));
    }
    for k in (0..depth).rev() {
        let p = "    ".repeat(2 + k);
        src.push_str(&format!("{p}finally:\n{p}    log.append(-{k} - 1)\n"));
    }
    src.push_str(&format!(
        "for a in range({}):\n    f(a)\n    f(a + 100)\nprint(len(log), sum(log), log[-40:])\n",
        depth + 1
    ));
    src
}

/// `break` and `continue` through nested `finally` bodies run each of them as the
/// interpreter does, under the four variants, and share one path per `try` and kind of
/// exit (`compile/loop_exits.rs`): the code grows linearly with the nesting (36, 68 and
/// 125 KB at 4, 8 and 16 levels; with the `finally` bodies compiled at each exit, 57, 154
/// and 1 607 KB).
#[test]
fn breaks_and_continues_through_nested_finally_bodies_share_their_code() {
    same_as_interpreter(&nested_finally_exits(6), "brk_fin", VARIANTS);
    let code = |d: usize| code_bytes(&nested_finally_exits(d), &format!("brk_fin_{d}"));
    let (eight, sixteen) = (code(8), code(16));
    assert!(sixteen < 3 * eight, "{eight} {sixteen}");
}

/// `depth` `try` statements each in the `finally` body of the one before (in a loop, in a
/// function when `in_fn`, else in the module body), each left by every way: `a` picks the
/// level and the way (`break`, `continue`, a `return` in a function, an exception), the
/// `finally` bodies log their level.
fn finally_in_finally(depth: usize, in_fn: bool) -> String {
    let mut body = String::new();
    for k in 0..depth {
        let p = "    ".repeat(if in_fn { 2 } else { 3 } + k);
        body.push_str(&format!(
            "{p}try:\n{p}    log.append({k})\n\
             {p}    if a == {k}:\n{p}        break\n\
             {p}    if a == {k} + 100:\n{p}        continue\n"
        ));
        if in_fn {
            body.push_str(&format!(
                "{p}    if a == {k} + 200:\n{p}        return [{k}]\n"
            ));
        }
        body.push_str(&format!(
            "{p}    if a == {k} + 300:\n{p}        raise ValueError({k})\n\
             {p}finally:\n{p}    log.append(-{k})\n"
        ));
    }
    let p = "    ".repeat(if in_fn { 2 } else { 3 } + depth);
    body.push_str(&format!("{p}log.append({depth})\n"));
    if in_fn {
        format!(
            "log = []\ndef f(a):\n    for i in range(2):\n{body}    return -1\n\
             for a in range({depth}):\n    for b in (0, 100, 200, 300):\n        try:\n\
             \x20           print(f(a + b))\n        except ValueError as e:\n\
             \x20           print('E', e)\nprint(len(log), sum(log))\n"
        )
    } else {
        format!(
            "log = []\nfor a in range({depth}):\n  for b in (0, 100, 300):\n   try:\n\
             \x20   for i in range(2):\n{body}   except ValueError as e:\n\
             \x20   print('E', e)\nprint(len(log), sum(log))\n"
        )
    }
}

/// A `try` nested in the `finally` body of another is compiled once (each `finally` body
/// is: `compile/finally.rs`), so code grows linearly with the nesting: in a function,
/// 15, 20, 29 and 46 KB at depths 1, 2, 4 and 8 (4-5 KB per level); compiled on each way
/// out (5 in a function: the normal end, the exception, `return`, `break` and `continue`)
/// it grew 4 to 13 times per level: 22 KB, 90 KB, 1.2 MB, 6.0 MB, and 30 MB at depth 5
/// (6 s of compile CPU, 1.1 GB of peak RSS), so that a source far under the size limit
/// took any memory. The bound below (depth 4 less than twice depth 2) fails for that code
/// by a factor of 17 (module body) to 34 (function). Every way out runs as the interpreter runs
/// it, under the four variants (forced aborts included), and depth 8 compiles in 64 MiB
/// more address space than a program of one statement.
#[test]
fn finally_bodies_nested_in_finally_bodies_are_compiled_once() {
    for in_fn in [true, false] {
        let name = |d: usize| format!("fin_in_fin_{in_fn}_{d}");
        let code = |d: usize| code_bytes(&finally_in_finally(d, in_fn), &name(d));
        let (two, four) = (code(2), code(4));
        assert!(four < 2 * two, "{in_fn}: {two} {four}");
        same_as_interpreter(&finally_in_finally(6, in_fn), &name(6), VARIANTS);
        runs_in_bounded_memory(&finally_in_finally(8, in_fn), &name(8), 64);
    }
}

/// `t(i, v)` calls of `n` terms joined by `op`, `v` given by `value(i)`: each logs `i`.
fn logged(op: &str, n: usize, value: impl Fn(usize) -> String) -> String {
    let terms: Vec<String> = (0..n).map(|i| format!("t({i}, {})", value(i))).collect();
    terms.join(op)
}

/// Chained comparisons, `and`/`or` chains and deep nestings big enough to be evaluated by
/// parts (`compile/chains.rs`, `compile/compares.rs`) give the interpreter's values and
/// evaluate the same operands in the same order (each logs its position): a comparison
/// that is false in the middle of a part, at the first operand, or never; `and` and `or`
/// stopping in the middle; mixed `and`/`or`; a huge `if` condition; `a if c else (b if
/// d else ...)`, `f(f(...))` and `not not ...` thousands deep, in a function and in the
/// module; and an error in the middle of a comparison (its type and position). Also under
/// forced aborts with a 4 KiB nursery, the quick tier and eagerly with the IR verifier.
#[test]
fn huge_comparisons_conditions_and_nestings_run_as_the_interpreter_runs_them() {
    let (n, d) = if big() {
        (40_000, 19_000)
    } else {
        (3_000, 3_000)
    };
    let cmp = |stop: usize| {
        logged(" < ", n, |i| {
            if i == stop {
                "-5".into()
            } else {
                i.to_string()
            }
        })
    };
    let mut src = String::from("log = []\ndef t(i, v):\n    log.append(i)\n    return v\n");
    src.push_str(&format!(
        "def run(a):\n    r1 = {}\n    k1 = len(log)\n    r2 = {}\n    k2 = len(log)\n\
         \x20   r3 = {}\n    return r1, k1, r2, k2 - k1, r3, len(log) - k2, log[-1]\nprint(run(1))\n",
        cmp(n + 1),
        cmp(n / 2 + 321),
        cmp(1)
    ));
    let stops = [n / 3, n / 2 + 7];
    let and = logged(" and ", n, |i| {
        if stops.contains(&i) {
            "0".into()
        } else {
            (i + 1).to_string()
        }
    });
    let or = logged(" or ", n, |i| {
        if i == n / 2 {
            "'y'".into()
        } else {
            "0".into()
        }
    });
    let mixed: Vec<String> = (0..n)
        .map(|i| match i % 3 {
            0 => format!("t({i}, 1)"),
            1 => format!("t({i}, 0) or t({i}, 2)"),
            _ => format!("t({i}, [])"),
        })
        .collect();
    src.push_str(&format!(
        "log = []\nx = {and}\nprint(x, len(log), log[-1])\nlog = []\ny = {or}\nprint(y, len(log), log[-1])\n\
         log = []\nz = {}\nprint(z, len(log), log[-1])\n",
        mixed.join(" and ")
    ));
    let cond = logged(" and ", n, |i| (i + 1).to_string());
    src.push_str(&format!(
        "log = []\nif {cond}:\n    print('yes', len(log))\n"
    ));
    let ifs: String = (0..d)
        .map(|i| format!("t({i}, {i}) if a == {i} else "))
        .collect();
    let calls = |x: &str| format!("{}{x}{}", "f(".repeat(d), ")".repeat(d));
    src.push_str(&format!(
        "a = {}\nw = {ifs}-1\nprint(w, log[-1])\ndef f(x):\n    return x + 1\n\
         v = {}\nprint(v)\ndef g(a):\n    return {}\nprint(g(5), {}a)\n",
        d / 2 + 3,
        calls("0"),
        calls("a"),
        "not ".repeat(5_001)
    ));
    let bad: Vec<&str> = (0..n)
        .map(|i| if i == n / 2 { "'s'" } else { "a" })
        .collect();
    src.push_str(&format!(
        "def bad(a):\n    return {}\nprint(bad(1))\n",
        bad.join(" <= ")
    ));
    let out = same_as_interpreter(&src, "compares", VARIANTS);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let expect = format!(
        "(True, {n}, False, {}, False, 2, 1)\n0 {} {}\n",
        n / 2 + 322,
        n / 3 + 1,
        n / 3
    );
    assert!(text.starts_with(&expect), "{text}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("TypeError") && err.contains("in bad"), "{err}");
}

/// Compiling `and` chains, chained comparisons and deep nestings (conditionals, calls)
/// takes memory for one part at a time: 6 000 terms or levels each in at most 128 MiB more
/// address space than a program of one statement (before, they did not: 26 to 78 KB per
/// term, all at once; a comparison of 100 000 operands took 3.35 GB). With `STMJIT_BIG=1`,
/// 19 000 (100 000 operands) in 512 MiB more.
#[test]
fn huge_conditions_and_nestings_compile_in_bounded_memory() {
    let n = if big() { 19_000 } else { 6_000 };
    // Comparisons have no nesting limit.
    let m = if big() { 100_000 } else { n };
    let terms = |op: &str, n: usize| -> String {
        let t: Vec<String> = (0..n).map(|i| format!("a + {i}")).collect();
        t.join(op)
    };
    let sources = [
        (
            "huge_and",
            format!("a = 1\nx = {}\nprint(x)\n", terms(" and ", n)),
        ),
        (
            "huge_cmp",
            format!("a = 1\nx = {}\nprint(x)\n", terms(" < ", m)),
        ),
        (
            "huge_ifs",
            format!(
                "a = 5\nx = {}-1\nprint(x)\n",
                (0..n)
                    .map(|i| format!("{i} if a == {i} else "))
                    .collect::<String>()
            ),
        ),
        (
            "huge_calls",
            format!(
                "def f(x):\n    return x + 1\nprint({}0{})\n",
                "f(".repeat(n),
                ")".repeat(n)
            ),
        ),
    ];
    // With `STMJIT_BIG=1`, the code of 100 000 comparisons alone is 170 MB.
    let extra = if big() { 512 } else { 128 };
    for (name, src) in sources {
        runs_in_bounded_memory(&src, name, extra);
    }
}

/// Nesting deeper than the parser's limit (`MAX_NESTING`, 20 000: `f(f(...))`, `a if c else
/// (...)`, `not not ...`) is a SyntaxError naming the limit, at the position where it is
/// exceeded, exit status 2, with the JIT and the interpreter alike (never a stack
/// overflow); at the limit, both run it.
#[test]
fn nesting_past_the_limit_is_a_syntax_error() {
    let limit = stmjit_lang::parser::MAX_NESTING;
    let call = |d: usize| {
        format!(
            "def f(x):\n    return x + 1\nprint({}0{})\n",
            "f(".repeat(d),
            ")".repeat(d)
        )
    };
    let out = same_as_interpreter(&call(limit - 10), "deep_ok", &[&[]]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{}\n", limit - 10)
    );
    let too_deep = [
        call(limit + 1),
        format!("x = {}-1\n", "0 if x else ".repeat(limit + 1)),
        format!("x = {}1\n", "not ".repeat(limit + 1)),
    ];
    for (k, src) in too_deep.iter().enumerate() {
        let name = format!("too_deep{k}");
        let out = same_as_interpreter(src, &name, &[&[]]);
        assert_eq!(out.status.code(), Some(2), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        let first = err.lines().next().unwrap_or("");
        assert_eq!(
            first,
            format!("error: SyntaxError: {}", stmjit_lang::parser::too_deep()),
            "{name}"
        );
        let at = err.lines().nth(1).unwrap_or("");
        assert!(
            at.starts_with("  at ") && at.contains(&format!("{name}.lang:")),
            "{name}: {at}"
        );
    }
}

/// A function `big(a)` (huge: its blocks are cut into parts) and a module body whose huge
/// blocks are the bodies, `except` clauses, `else` and `finally` of `try` statements and the
/// bodies of `with atomic:` and `with lock:`, each `a` leaving them another way from some
/// part: an exception caught by its own `try` or by an outer one (through an inner `except`
/// that does not match, a bare `raise` in a handler, an error in a `finally`), a `return`
/// through `finally` bodies and out of `with` blocks, an exception out of `with lock:`;
/// `break` and `continue` through a `finally` in a loop; `log` records the handlers and
/// `finally` bodies that ran.
fn guarded_blocks(lines: usize) -> String {
    let half = lines / 2;
    let mut src = String::from(
        "lock = Lock()\nlog = []\n\
         def big(a):\n    g = 1\n    h = 0\n    ys = [1, 2, 3]\n    q = 0\n    try:\n",
    );
    let outer = ["if (a == 1 or a == 6) and g % 3 == 1:\n    raise KeyError('outer ' + str(g))"];
    src.push_str(&block("        ", half, 30, &outer));
    src.push_str("        try:\n");
    let inner = [
        "if a == 2 and g % 3 == 2:\n    q = ys[10 ** 6]",
        "if a == 3 and g % 3 == 0:\n    raise KeyError(g)",
        "if a == 4 and h % 3 == 1:\n    return ['from try', g, h, len(ys)]",
    ];
    src.push_str(&block("            ", lines, 30, &inner));
    src.push_str("        except KeyError as e:\n            log.append(['inner', str(e), g])\n");
    let reraise = ["if a == 3 and h % 3 == 1:\n    raise"];
    src.push_str(&block("            ", half, 30, &reraise));
    src.push_str("        finally:\n            log.append(['inner finally', g, h])\n");
    let fails = ["if a == 5 and g % 3 == 2:\n    q = 1 // (g - g)"];
    src.push_str(&block("            ", half, 30, &fails));
    src.push_str(
        "    except (IndexError, KeyError, ZeroDivisionError) as e:\n\
         \x20       log.append(['outer', type(e).__name__, g, h])\n",
    );
    let from_except = ["if a == 6 and g % 3 == 0:\n    return ['from except', g, h]"];
    src.push_str(&block("        ", half, 30, &from_except));
    src.push_str("    else:\n        log.append(['else', g])\n");
    src.push_str(&block("        ", half, 30, &[]));
    src.push_str("    finally:\n        log.append(['finally', g, h, len(ys)])\n");
    src.push_str(&block("        ", half, 30, &[]));
    src.push_str("    with atomic:\n");
    let from_atomic = ["if a == 7 and g % 3 == 1:\n    return ['from atomic', g, h]"];
    src.push_str(&block("        ", lines, 30, &from_atomic));
    src.push_str("    with lock:\n");
    let from_lock = ["if a == 8 and g % 3 == 2:\n    raise ValueError('lock ' + str(g))"];
    src.push_str(&block("        ", lines, 30, &from_lock));
    src.push_str("    return [g, h, len(ys), t1]\n");
    src.push_str(
        "for a in range(10):\n    try:\n        print(big(a))\n    except ValueError as e:\n\
         \x20       print('caught', e)\n    print(log)\n    log = []\n\
         a = 1\ng = 1\nh = 0\nys = []\nq = 0\ntry:\n",
    );
    let module = ["if q == 0 and g % 3 == 1:\n    q = ys[10 ** 6]"];
    src.push_str(&block("    ", lines, 30, &module));
    src.push_str("except IndexError as e:\n    print('module caught', e, g, h)\n");
    src.push_str(&block("    ", half, 30, &[]));
    src.push_str("finally:\n    print('module finally', g, h)\n");
    src.push_str(&block("    ", half, 30, &[]));
    src.push_str("for q in range(4):\n    try:\n");
    let exits = [
        "if q == 1 and g % 3 == 1:\n    continue",
        "if q == 3 and g % 3 == 0:\n    break",
    ];
    src.push_str(&block("        ", lines, 30, &exits));
    src.push_str("    finally:\n        log.append(['loop finally', q, g])\n");
    src.push_str("with atomic:\n");
    src.push_str(&block("    ", lines, 30, &[]));
    src.push_str("print(g, h, len(ys), t1, log)\n");
    src
}

/// Huge blocks in `try` bodies, `except` clauses, `else`, `finally`, `with atomic:` and
/// `with lock:` (cut into parts sharing the frame: `compile/escapes.rs`), in a function and
/// in the module body: the interpreter's output, every way out of each taken from inside a
/// part; also under forced aborts with a 4 KiB nursery, with the quick tier, and eagerly
/// compiled with the IR verifier.
#[test]
fn huge_blocks_in_try_and_with_run_as_the_interpreter_runs_them() {
    let n = if big() { 20_000 } else { 2_500 };
    let text = succeeds_as_in_the_interpreter(&guarded_blocks(n), "guarded_blocks");
    assert_contains_all(
        &text,
        &[
            "'outer', 'KeyError'",
            "'outer', 'IndexError'",
            "'outer', 'ZeroDivisionError'",
            "['inner', ",
            "'from try'",
            "'from except'",
            "'from atomic'",
            "caught lock",
            "['else'",
            "module caught",
            "'loop finally', 3",
        ],
    );
}

/// Errors that leave huge `try` and `with` blocks uncaught, from a part: the interpreter's
/// message, position and call stack (the `finally` bodies on the way ran, the trace has no
/// entry for the parts), in a function and in the module body.
#[test]
fn errors_out_of_huge_try_and_with_blocks_keep_their_positions() {
    let n = if big() { 20_000 } else { 2_500 };
    let fails = ["if g % 3 == 2:\n    q = ys[10 ** 6]"];
    let mut src = String::from(
        "def big(a):\n    g = 1\n    h = 0\n    ys = [1]\n    q = 0\n    try:\n        with atomic:\n",
    );
    src.push_str(&block("            ", n, 30, &fails));
    src.push_str("    finally:\n        print('finally', g, h)\n    return g\n");
    src.push_str("try:\n    big(1)\nexcept KeyError:\n    pass\n");
    let out = same_as_interpreter(&src, "try_error", &[&[], &[("STMJIT_QUICK", "1")]]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("IndexError") && err.contains("in big"),
        "{err}"
    );
    let mut src = String::from("a = 1\ng = 1\nh = 0\nys = []\nq = 0\nwith lock:\n");
    src.insert_str(0, "lock = Lock()\n");
    src.push_str(&block("    ", n, 30, &fails));
    let out = same_as_interpreter(&src, "with_error", &[&[]]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("IndexError"), "{err}");
}

/// Displays, argument lists and class bodies of thousands of items inside `try`, `with` and
/// `except` (evaluated by parts): the interpreter's values, an item raising in a late part
/// caught by the `try` around the display (the `finally` runs), in a function and in the
/// module body; a class of thousands of attributes.
#[test]
fn huge_displays_in_try_and_with_hold_their_items() {
    let n = if big() { 100_000 } else { 3_000 };
    let items = |bad: usize| -> String {
        (0..n)
            .map(|i| match (i == bad, i % 3) {
                (true, _) => "1 // (a - a)".to_string(),
                (_, 0) => format!("a + {i}"),
                (_, 1) => format!("str(a * {i})"),
                _ => format!("(a, {i})"),
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let attrs: String = (0..n).map(|i| format!("    v{i} = a * {i}\n")).collect();
    let keys: String = (0..n)
        .map(|i| format!("a * {i}: {i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let src = format!(
        "def f(a, bad):\n    try:\n        return [{ok}]\n    except ZeroDivisionError:\n\
         \x20       pass\n    try:\n        xs = [{late}]\n    except ZeroDivisionError as e:\n\
         \x20       xs = ['caught', str(e)]\n    finally:\n        print('finally')\n    return xs\n\
         a = 3\nprint(len(f(2, 0)))\n\
         try:\n    ts = ({ok})\n    d = {{{keys}}}\n    raise KeyError(len(ts))\n\
         except KeyError as e:\n    with atomic:\n        xs = [{ok}]\n    print(e, len(xs), xs[-1], len(d))\n\
         try:\n    xs = [{late}]\nexcept ZeroDivisionError:\n    print('module caught')\n\
         class K:\n{attrs}print(K.v{last}, K.v1)\n",
        ok = items(usize::MAX),
        late = items(n - 10),
        last = n - 1,
    );
    let text = succeeds_as_in_the_interpreter(&src, "guarded_displays");
    assert!(text.contains("module caught"), "{text}");
}

/// Compiling huge blocks in `try`, `except`, `finally` and `with` bodies, huge displays in
/// them and a class of thousands of attributes takes memory for one part at a time: a
/// `try` body, an `except` clause and a `with atomic:` block of 6 000 lines each, in a
/// function and in the module, in at most 128 MiB more address space than a program of one
/// statement, a display of 20 000 expressions in a `try` and a class of 20 000 attributes
/// in 256 MiB more (before: 510 to 590 MB of peak RSS for 10 000 lines, 700 to 980 MB for
/// 20 000 items, 1.8 GB for 50 000 attributes). With `STMJIT_BIG=1`, 40 000 lines, 200 000
/// items and attributes.
#[test]
fn huge_try_and_with_blocks_compile_in_bounded_memory() {
    let (n, items) = if big() {
        (40_000, 200_000)
    } else {
        (6_000, 20_000)
    };
    let mut src = String::from(
        "def f(a):\n    g = 1\n    h = 0\n    ys = [1]\n    q = 0\n    try:\n        with atomic:\n",
    );
    src.push_str(&block("            ", n, 100, &[]));
    src.push_str("    except KeyError:\n");
    src.push_str(&block("        ", n, 100, &[]));
    src.push_str("    return [g, h, len(ys)]\nprint(f(1))\n");
    runs_in_bounded_memory(&src, "huge_try_fn", 128);
    let mut src = String::from("a = 1\ng = 1\nh = 0\nys = []\nq = 0\ntry:\n    raise KeyError\n");
    src.push_str("except KeyError:\n");
    src.push_str(&block("    ", n, 100, &[]));
    src.push_str("finally:\n");
    src.push_str(&block("    ", n, 100, &[]));
    src.push_str("print(g, h)\n");
    runs_in_bounded_memory(&src, "huge_except", 128);
    let list: Vec<String> = (0..items).map(|i| format!("str(a + {i})")).collect();
    let attrs: String = (0..items)
        .map(|i| format!("    v{i} = {i} + 1\n"))
        .collect();
    let src = format!(
        "def f(a):\n    try:\n        return [{}]\n    finally:\n        pass\n\
         print(len(f(1)))\nclass K:\n{attrs}print(K.v7)\n",
        list.join(", ")
    );
    runs_in_bounded_memory(&src, "huge_try_display", 256);
}

/// A program whose huge loop bodies (`for` and `while`, in a huge function and in the
/// module body) have `break` and `continue` of their loop scattered through them, so that
/// the parts they are cut into leave the loop (`compile/loop_exits.rs`): some inside
/// `try`/`finally`, `with atomic:` and `with lock:` within the loop body (inside a part,
/// and between the part and the loop), some of loops inside a part (which stay inside it),
/// and an error after some iterations.
fn loop_exits(lines: usize) -> String {
    let exits = [
        "if g % 13 == a and q == 1:\n    log.append(['cont', q, g])\n    continue",
        "for z in range(4):\n    if z == g % 3:\n        break\n    h = h + z",
        "if g % 17 == a + 1 and q == 2:\n    log.append(['brk', q, g])\n    break",
        "try:\n    if g % 19 == a and q == 0 and a == 3:\n        continue\nfinally:\n    h = h + 1",
        "with atomic:\n    if g % 23 == a + 2 and q == 3:\n        log.append(['brk atomic', q, g])\n        break",
        "if a == 5 and q == 2:\n    q = ys[10 ** 6]",
    ];
    let mut src = String::from(
        "lock = Lock()\nlog = []\n\
         def big(a):\n    g = 1\n    h = 0\n    ys = [1, 2, 3]\n    q = 0\n\
         \x20   for q in range(4):\n",
    );
    src.push_str(&block("        ", lines, 20, &exits));
    src.push_str("        try:\n");
    src.push_str(&block("            ", lines / 2, 20, &exits));
    src.push_str("        finally:\n            log.append(['fin', q, g])\n");
    src.push_str("        with atomic:\n");
    src.push_str(&block("            ", lines / 2, 20, &exits));
    src.push_str("        with lock:\n");
    src.push_str(&block("            ", lines / 2, 20, &exits));
    src.push_str("    while q < 9:\n        q = q + 1\n");
    src.push_str(&block("        ", lines / 2, 20, &exits[..5]));
    src.push_str("    return [g, h, len(ys), q, t1]\n");
    src.push_str(
        "for a in range(7):\n    try:\n        print(big(a))\n    except IndexError as e:\n\
         \x20       print('caught', e)\n    print(log)\n    log = []\n\
         a = 2\ng = 1\nh = 0\nys = []\nq = 0\n",
    );
    src.push_str("for q in range(3):\n");
    src.push_str(&block("    ", lines, 20, &exits[..5]));
    src.push_str("    try:\n");
    src.push_str(&block("        ", lines / 2, 20, &exits[..5]));
    src.push_str("    finally:\n        log.append(['module fin', q, g])\n");
    src.push_str("while q < 6:\n    q = q + 1\n");
    src.push_str(&block("    ", lines / 2, 20, &exits[..5]));
    src.push_str("print(g, h, len(ys), q, t1, log)\n");
    src
}

/// Huge loop bodies with `break` and `continue` in their parts (returning a loop word to
/// the code around them: `compile/loop_exits.rs`), through `try`/`finally` and `with`
/// blocks inside and outside the parts, in a function and in the module body: the
/// interpreter's output; also under forced aborts with a 4 KiB nursery, with the quick
/// tier, and eagerly compiled with the IR verifier.
#[test]
fn huge_loop_bodies_break_and_continue_from_their_parts() {
    let n = if big() { 20_000 } else { 2_500 };
    let text = succeeds_as_in_the_interpreter(&loop_exits(n), "loop_exits");
    assert_contains_all(
        &text,
        &[
            "'cont'",
            "'brk'",
            "'brk atomic'",
            "'fin'",
            "caught",
            "'module fin'",
        ],
    );
}

/// A huge loop body with a `break` every 40 statements (`t = t + i * k % 7` and
/// `if t < 0: break`), 10 000 statements in a function, runs in at most 256 MiB more
/// address space than a program of one statement: its parts leave the loop by a loop word.
/// Compiled in one piece (a `break` kept its statements in the loop's code) it took
/// 1 730 MB of peak RSS and 11.9 s. With `STMJIT_BIG=1`, 50 000 statements.
#[test]
fn a_huge_loop_body_with_breaks_compiles_in_bounded_memory() {
    let n = if big() { 50_000 } else { 10_000 };
    let mut src = String::from("def f(n):\n    t = 0\n    for i in range(n):\n");
    for k in 0..n {
        src.push_str(&format!("        t = t + i * {k} % 7\n"));
        if k % 40 == 39 {
            src.push_str("        if t < 0:\n            break\n");
        }
    }
    src.push_str("    return t\nprint(f(3))\n");
    runs_in_bounded_memory(&src, "loop_breaks", 256);
}

/// A loop with an `else` block whose body and `else` block are both compiled as parts (at
/// the module level and in a function): a `break` from a part skips the `else` block, a loop
/// that runs out runs it; also under forced aborts and with the IR verifier.
#[test]
fn loops_with_else_split_into_parts_run_as_the_interpreter_runs_them() {
    let mut src = String::from("t = 0\nfor i in range(4):\n");
    for k in 0..3000 {
        src.push_str(&format!("    t += {}\n", k % 7));
        if k == 1500 {
            src.push_str("    if i == 2:\n        break\n");
        }
    }
    src.push_str("else:\n    print('else ran')\n");
    src.push_str(&"    t -= 1\n".repeat(2000));
    src.push_str("print(i, t)\ndef f(n):\n    s = 0\n    while n > 0:\n        n -= 1\n");
    for k in 0..3000 {
        src.push_str(&format!("        s += {}\n", k % 5));
    }
    src.push_str("    else:\n        s = -s\n");
    src.push_str(&"        s += 1\n".repeat(1000));
    src.push_str("    return s\nprint(f(3))\n");
    let envs: &[&[(&str, &str)]] = &[
        &[],
        &[("STMJIT_ABORT_PROBABILITY", "0.2"), ("STMJIT_BUDGET", "7")],
        &[("STMJIT_EAGER", "1"), ("STMJIT_VERIFY", "1")],
    ];
    let out = same_as_interpreter(&src, "loop_else", envs);
    // CPython's output.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2 22485\n-17000\n");
}
