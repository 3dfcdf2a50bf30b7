//! Every runtime error kind raised from JIT code, with the interpreter's exact message,
//! positions and call stack (the interpreter is the oracle: its choices are documented in
//! `lang/src/interp/mod.rs`). Several programs target the inline fast paths (int arithmetic,
//! list indexing, locals and globals) whose slow paths must raise exactly like the helpers.

mod scratch;

use std::process::Command;

fn run(src: &str, interp: bool, name: &str) -> (String, Option<i32>) {
    let dir = scratch::dir("jiterr");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.lang"));
    std::fs::write(&path, src).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run");
    if interp {
        cmd.arg("--interp");
    }
    let out = cmd.arg(&path).output().expect("run stmjit");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

const CASES: &[(&str, &str)] = &[
    (
        "NameError",
        "def f():\n    return undefined_name + 1\nprint(f())\n",
    ),
    ("UnboundLocalError", "def f():\n    x = x + 1\n    return x\nf()\n"),
    ("NameError", "print(later)\nlater = 1\n"),
    ("TypeError", "def f(a, b):\n    return a\nf(1)\n"),
    ("TypeError", "def f(a):\n    return a\ng = f\ng(1, 2, 3)\n"),
    ("TypeError", "x = 1 + 'a'\n"),
    ("TypeError", "x = 5\nx()\n"),
    ("TypeError", "print(len(3))\n"),
    ("TypeError", "print([1] < ['a'])\n"),
    ("TypeError", "class A:\n    pass\nA(1)\n"),
    ("ValueError", "print(int('twelve'))\n"),
    ("ValueError", "xs = [1, 2]\nxs.index(7)\n"),
    (
        "IndexError",
        "def get(xs, i):\n    return xs[i]\nprint(get([1, 2, 3], 3))\n",
    ),
    ("IndexError", "xs = [1, 2]\nxs[-3] = 0\n"),
    ("IndexError", "s = 'abc'\nprint(s[10])\n"),
    ("IndexError", "xs = []\nxs.pop()\n"),
    ("KeyError", "d = {'a': 1}\nprint(d['b'])\n"),
    ("KeyError", "d = {1: 2}\ndel d[3]\n"),
    (
        "AttributeError",
        "class A:\n    pass\na = A()\nprint(a.y)\n",
    ),
    (
        "AttributeError",
        "class K:\n    pass\nk = K()\nk.missing(undefined_arg)\n",
    ),
    ("AttributeError", "x = [1]\nx.nope()\n"),
    (
        "ZeroDivisionError",
        "def r(a, b):\n    return a % b\nprint(r(7, 0))\n",
    ),
    ("ZeroDivisionError", "print(7 // (1 - 1))\n"),
    ("ZeroDivisionError", "x = 0\nif 7 % x == 0:\n    print(1)\n"),
    ("TypeError", "x = 'a'\nif x % 2 != 0:\n    print(1)\n"),
    ("ZeroDivisionError", "print(7 / 0)\n"),
    ("ZeroDivisionError", "print(7.5 % 0.0)\n"),
    // Ints have no limit; converting a big one to a float has.
    (
        "OverflowError",
        "x = 4611686018427387903\nprint((x + 1) ** 20 * 1.5)\n",
    ),
    ("OverflowError", "x = 2 ** 2000\nprint(x / 3)\n"),
    ("OverflowError", "print(float(3 ** 1000))\n"),
    (
        "RecursionError",
        "def down(n):\n    return down(n + 1)\ndown(0)\n",
    ),
    (
        "RecursionError",
        "class T:\n    def m(self, n):\n        return self.m(n + 1)\nT().m(0)\n",
    ),
    ("MemoryError", "s = 'abc' * 1000\nt = s * 100000000000\n"),
    // Raised by a leaf function the JIT computes inline at its calls (the call raises it,
    // with the callee's frame in the trace): the depth limit reached at a call of it, a
    // zero divisor in the middle of a loop, an operand of another type.
    (
        "RecursionError",
        "def leaf(a):\n    return a + 1\ndef down(n):\n    leaf(n)\n    return down(n + 1)\ndown(0)\n",
    ),
    (
        "ZeroDivisionError",
        "def leaf(a, b):\n    c = a + b\n    return 1.0 / c\ndef f():\n    s = 0.0\n    for i in range(5):\n        s += leaf(i, -3)\n    return s\nprint(f())\n",
    ),
    (
        "TypeError",
        "def leaf(a, b):\n    return a * b + 1\ndef f(xs):\n    t = 0\n    for x in xs:\n        t += leaf(x, 2)\n    return t\nprint(f([1, 2.5, None]))\n",
    ),
];

#[test]
fn every_error_kind_matches_the_interpreter() {
    let mut failures = Vec::new();
    for (k, (kind, src)) in CASES.iter().enumerate() {
        let name = format!("case{k}");
        let (want, want_code) = run(src, true, &name);
        let (got, code) = run(src, false, &name);
        assert!(
            want.starts_with(&format!("error: {kind}")),
            "case {k}: the oracle raised something else: {want}"
        );
        if got != want || code != want_code || code != Some(1) {
            failures.push(format!(
                "case {k} ({kind}):\n{src}--- interpreter ({want_code:?})\n{want}--- jit ({code:?})\n{got}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn output_before_an_error_is_printed() {
    let src = "print('before')\nxs = [1]\nprint(xs[5])\n";
    let dir = scratch::dir("jiterr2");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.lang");
    std::fs::write(&path, src).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .arg("run")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "before\n");
    assert_eq!(out.status.code(), Some(1));
}
