//! The peak memory (resident set, as the kernel counts it for each child: `wait4`) of
//! compiling huge expressions stays within a bound above that of a program of one statement:
//! a comparison of 20 000 operands and `f(f(...))` nested 19 000 deep (near the parser's
//! limit). Their parts are compiled as compact code (no inline float paths, no inlined leaf
//! functions, one shared error exit) with the optimizer, cut by IR instructions as well as
//! by nodes (`jit/src/compile/chains.rs`), and the parser takes 2.2 KB of stack per level
//! of nesting (`lang/src/parser.rs`). A huge module body gives back the code of its parts
//! once they ran.

use std::process::{Command, Stdio};

/// Runs `stmjit run --threads 1` on `src` (written to `name.lang`); asserts that it exits 0
/// and returns its peak resident set in KiB.
fn peak_kib(src: &str, name: &str) -> i64 {
    let dir = std::env::temp_dir().join(format!("stmjit-peak-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.lang"));
    std::fs::write(&path, src).unwrap();
    // Reaped by `wait4` below, which also gives its peak (`Child::wait` does not).
    #[allow(clippy::zombie_processes)]
    let child = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--threads", "1"])
        .arg(&path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run stmjit");
    let mut status = 0;
    // SAFETY: getrusage-style plain data, written by wait4.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: the pid of our own child, not yet waited for; pointers to live locals.
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut u) };
    assert_eq!(r, child.id() as libc::pid_t, "wait4");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{name}: status {status:#x}"
    );
    u.ru_maxrss
}

/// A comparison of 20 000 operands `a + i` takes at most 60 MiB more than `print(1)`
/// (before: about 77 MiB more, 1.7 KB of code per operand from the single-pass register
/// allocator and the inline float paths, 340 bytes now; 100 000 operands: 280 MB -> 116 MB);
/// `f(f(...))` nested 19 000 deep at most 90 MiB more (before: 188 MiB more, of which 100
/// in the parser's stack and 85 MB to compile one part of 340 levels with the function's
/// body inlined at each call).
#[test]
fn huge_expressions_compile_in_bounded_peak_memory() {
    let base = peak_kib("print(1)\n", "tiny");
    let operands: Vec<String> = (0..20_000).map(|i| format!("a + {i}")).collect();
    let cmp = format!("a = 1\nx = {}\nprint(x)\n", operands.join(" < "));
    let peak = peak_kib(&cmp, "cmp");
    assert!(
        peak - base < 60 << 10,
        "comparison: {peak} KiB, print(1): {base} KiB"
    );
    let d = 19_000;
    let calls = format!(
        "def f(x):\n    return x + 1\nprint({}0{})\n",
        "f(".repeat(d),
        ")".repeat(d)
    );
    let peak = peak_kib(&calls, "calls");
    assert!(
        peak - base < 90 << 10,
        "f(f(...)): {peak} KiB, print(1): {base} KiB"
    );
}

/// A module body of `lines` statements of three kinds (attribute loads, items and calls,
/// `if`), about 3.8 KB of code each: compiled as parts.
fn module_body(lines: usize) -> String {
    let mut src = String::from("class O:\n    pass\no = O()\no.p = o\no.v = 1\n");
    src.push_str("g = 1\nh = 0\nys = [1, 2, 3]\n");
    for i in 0..lines {
        src.push_str(&match i % 3 {
            0 => format!("g = (g + o.p.p.v * {i}) % 1009\n"),
            1 => format!("h = h + ys[{i} % 3] - len(ys)\n"),
            _ => "if g > h:\n    h = h + 1\n".to_string(),
        });
    }
    src.push_str("print(g, h)\n");
    src
}

/// The code of a module body's parts is freed once they ran, and their syntax trees with
/// it (`jit/src/program/module_parts.rs`): twice the statements take about 6 MiB more at
/// the peak (their syntax tree), not the 25 MiB more they did when the code of every part
/// stayed for the run (8 000 statements: 80 MB -> 48 MB).
#[test]
fn a_module_body_gives_back_the_code_that_ran() {
    let small = peak_kib(&module_body(4_000), "body4k");
    let large = peak_kib(&module_body(8_000), "body8k");
    assert!(
        large - small < 14 << 10,
        "4 000 statements: {small} KiB, 8 000: {large} KiB"
    );
}

/// `o.p.p...p.v`, 10 000 attribute loads nested in one expression, takes at most 60 MiB
/// more than `print(1)`: an attribute load counts for its IR instructions when a nesting is
/// cut into parts (`jit/src/compile/chains.rs`, `nest_cost`); before, parts of 1 024 loads
/// (130 000 IR instructions each) took 84 MiB more.
#[test]
fn a_deep_nesting_of_attribute_loads_compiles_in_bounded_peak_memory() {
    let base = peak_kib("print(1)\n", "tiny_attrs");
    let src = format!(
        "class O:\n    pass\no = O()\no.p = o\no.v = 5\ndef f():\n    return o{}.v\nprint(f())\n",
        ".p".repeat(10_000)
    );
    let peak = peak_kib(&src, "attrs");
    assert!(
        peak - base < 60 << 10,
        "o.p.p...: {peak} KiB, print(1): {base} KiB"
    );
}

/// `lines` statements made by `unit(i)` (each a list of lines) in the body of a function
/// that is never called: its syntax tree is made and held for the run, none of it compiled.
fn uncalled_body(lines: usize, unit: fn(usize) -> Vec<String>) -> String {
    let mut src = String::from("ys = [1, 2, 3]\ndef big(g, h):\n");
    for i in 0..lines {
        for line in unit(i) {
            src.push_str("    ");
            src.push_str(&line);
            src.push('\n');
        }
    }
    src.push_str("    return g\nprint(1)\n");
    src
}

/// Parsing a source and holding its syntax tree takes at most 22 bytes of memory per byte
/// of source (the peak at `n` statements and at `4n`, the difference over the difference
/// of the sizes), for bodies of plain statements: assignments, `if`/`elif`/`else` and
/// calls. The lexer gives the parser its tokens a line at a time: the whole list of tokens
/// (about 20 bytes per byte of source) no longer sits beside the tree while the parser
/// makes it (assign, if-elif, call: 33.5, 35.5 and 47.6 bytes per byte before, 22.7, 20.3
/// and 26.5 after), and the tree's names and attribute names share one `Arc<str>` per
/// distinct text instead of a `String` each (now 17.8, 16.5 and 18.8).
#[test]
fn parsing_takes_bounded_memory_per_byte_of_source() {
    type Unit = fn(usize) -> Vec<String>;
    let shapes: [(&str, Unit); 3] = [
        ("assign", |i| vec![format!("v{} = g + {i}", i % 64)]),
        ("if-elif", |i| {
            vec![
                format!("if g > {i}:"),
                "    g = g - 1".into(),
                format!("elif g < {i}:"),
                "    g = g + 2".into(),
                "else:".into(),
                "    h += 1".into(),
            ]
        }),
        ("call", |i| {
            vec![format!("ys.append(g % {})", i % 7 + 2), "ys.pop()".into()]
        }),
    ];
    for (name, unit) in shapes {
        let n = 15_000;
        let (small, large) = (uncalled_body(n, unit), uncalled_body(4 * n, unit));
        let small_peak = peak_kib(&small, &format!("{name}-small"));
        let large_peak = peak_kib(&large, &format!("{name}-large"));
        let per_byte =
            ((large_peak - small_peak) << 10) as f64 / (large.len() - small.len()) as f64;
        assert!(
            per_byte <= 22.0,
            "{name}: {per_byte:.1} bytes per byte of source ({small_peak} KiB for {} bytes, \
             {large_peak} KiB for {})",
            small.len(),
            large.len()
        );
    }
}

/// `units` pairs `ys.append(g % k)`, `ys.pop()` in the body of a function that is called
/// once: a huge function, compiled as parts at its call, the code of all of them kept for
/// the run (it may be called again).
fn called_body(units: usize) -> String {
    let mut src = String::from("ys = [1, 2, 3]\ndef big(g, h):\n");
    for i in 0..units {
        src.push_str(&format!("    ys.append(g % {})\n    ys.pop()\n", i % 7 + 2));
    }
    src.push_str("    return g\nprint(big(1, 0))\n");
    src
}

/// One huge function that runs takes at most 110 bytes of memory per byte of source (the
/// peak at `n` pairs of calls and at `4n`, the difference over the difference of the
/// sizes): most of it is the code of its parts, which stays for the run. Its parts without
/// loops get the compact tier (no optimizer, the backtracking register allocator), whose
/// code is less than half the quick tier's (which kept every value in a stack slot), and
/// are cut to a quarter of the size, so that its register allocator's memory (which grows
/// faster than a part) stays below the quick tier's (before: 159 bytes per byte).
#[test]
fn a_huge_function_that_runs_takes_bounded_memory_per_byte_of_source() {
    let n = 2_500;
    let (small, large) = (called_body(n), called_body(4 * n));
    let small_peak = peak_kib(&small, "called-small");
    let large_peak = peak_kib(&large, "called-large");
    let per_byte = ((large_peak - small_peak) << 10) as f64 / (large.len() - small.len()) as f64;
    assert!(
        per_byte <= 110.0,
        "{per_byte:.1} bytes per byte of source ({small_peak} KiB for {} bytes, {large_peak} \
         KiB for {})",
        small.len(),
        large.len()
    );
}
