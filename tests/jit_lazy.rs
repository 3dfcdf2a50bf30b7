//! Compilation at a function's first call: functions that are never called are never
//! compiled (`--stats` counts what was), every way of calling a function compiles it first
//! (direct calls, calls by value, method-call sites, spawned threads, queued calls, keyword
//! calls, closures, lambdas, nested functions), many threads calling one function for the
//! first time at once compile it once, and errors inside lazily compiled functions keep the
//! interpreter's positions and call stacks.

mod scratch;

use std::process::Command;

/// Runs `src` with `args` (before the file) and `env`; (stdout, stderr, exit status).
fn run(src: &str, name: &str, args: &[&str], env: &[(&str, &str)]) -> (String, String, i32) {
    let dir = scratch::dir("lazy");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.lang"));
    std::fs::write(&path, src).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run").args(args).arg(&path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run stmjit");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code().unwrap_or(-1),
    )
}

/// `(compiled, functions)` of the `--stats` line `jit: C of F functions compiled`.
fn compiled(stats: &str) -> (usize, usize) {
    let line = stats
        .lines()
        .find(|l| l.trim_start().starts_with("jit: "))
        .unwrap_or_else(|| panic!("no jit line in:\n{stats}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

/// Twenty functions, of which the program calls two: three functions compiled (with
/// `<module>`), of 21; all of them with `STMJIT_EAGER=1`.
#[test]
fn uncalled_functions_are_not_compiled() {
    let mut src = String::new();
    for i in 0..20 {
        src.push_str(&format!(
            "def f{i}(n):\n    t = 0\n    for k in range(n):\n        t += k * {i}\n    return t\n"
        ));
    }
    src.push_str("print(f3(10), f7(4))\nprint(f3(5))\n");
    let (out, err, code) = run(&src, "uncalled", &["--stats"], &[]);
    assert_eq!((out.as_str(), code), ("135 42\n30\n", 0), "{err}");
    assert_eq!(compiled(&err), (3, 21), "{err}");
    let (out, err, code) = run(&src, "uncalled", &["--stats"], &[("STMJIT_EAGER", "1")]);
    assert_eq!((out.as_str(), code), ("135 42\n30\n", 0), "{err}");
    assert_eq!(compiled(&err), (21, 21), "{err}");
}

/// Every kind of call reaches a function not compiled yet, and compiles what it calls
/// only: the output is the interpreter's, and the count is that of the functions called.
#[test]
fn every_kind_of_call_compiles_its_callee() {
    let src = "\
def direct(a, b):
    return abs(a * 10 + b)
def leaf(x):
    return x * 2 + 1
def by_value(x):
    return x + 1
def keywords(a, b=5, *rest, c, **kw):
    return [a, b, list(rest), c, sorted(kw)]
def outer(n):
    def inner(k):
        return n * k
    lam = lambda z: inner(z) + 1
    return lam(3)
class Shape:
    def __init__(self, w):
        self.w = w
    def area(self):
        return self.w * self.w
def key(s):
    return -len(s)
def worker(a, b, c, d, e, f, g):
    return a + b + c + d + e + f + g
def queued(xs, v):
    xs.append(v)
def never(x):
    return x
f = by_value
print(direct(1, 2), f(41), keywords(1, 2, 3, c=4, z=0), outer(7), leaf(20))
print(Shape(3).area(), sorted(['a', 'ccc', 'bb'], key=key))
t = spawn(worker, 1, 2, 3, 4, 5, 6, 7)
print(t.join())
q = TransactionQueue()
xs = []
q.add(queued, xs, 9)
q.run()
print(xs)
";
    let (out, err, code) = run(src, "kinds", &["--stats"], &[]);
    let (expected, _, interp_code) = run(src, "kinds", &["--interp"], &[]);
    assert_eq!((code, interp_code), (0, 0), "{err}");
    assert_eq!(out, expected);
    // All but `never` and `leaf` (a small leaf function, computed inline at its only call,
    // a direct one: `compile/inline.rs`): 11 functions (the lambda, inner, Shape's two
    // methods included) and `<module>`, of 14. (`direct` calls a builtin: not inlined.)
    assert_eq!(compiled(&err), (12, 14), "{err}");
}

/// Eight threads call the same functions for the first time at once, under forced aborts:
/// each function is compiled once (the count), and the totals are right. (`step` calls a
/// builtin, so that it is compiled, not computed inline at its call.)
#[test]
fn threads_calling_a_new_function_at_once_compile_it_once() {
    let src = "\
def step(x):
    return abs(x * 7 + 3) % 1000
def work(n):
    t = 0
    for i in range(n):
        t = t + step(i)
    return t
ts = []
for k in range(8):
    ts.append(spawn(work, 2000 + k))
total = 0
for t in ts:
    total += t.join()
print(total)
";
    let (expected, _, _) = run(src, "threads", &["--interp"], &[]);
    for env in [
        &[][..],
        &[
            ("STMJIT_ABORT_PROBABILITY", "0.3"),
            ("STMJIT_MOVE_THREADS", "1"),
        ][..],
    ] {
        let (out, err, code) = run(src, "threads", &["--stats", "--threads", "4"], env);
        assert_eq!((out.as_str(), code), (expected.as_str(), 0), "{err}");
        assert_eq!(compiled(&err), (3, 3), "{err}");
    }
}

/// An error inside a function compiled at its first call, deep in a call stack of lazily
/// compiled functions (a method, a closure, a lambda, a call by value, a spawned thread):
/// the same message, positions and stack as the interpreter's.
#[test]
fn errors_in_lazily_compiled_functions_keep_their_positions() {
    let cases = [
        "def f(x):\n    return g(x) + 1\ndef g(y):\n    return [1, 2][y]\nprint(f(0))\nprint(f(5))\n",
        "class A:\n    def m(self, d):\n        return self.n(d)\n    def n(self, d):\n        return d['missing']\nA().m({})\n",
        "def mk(k):\n    def div(v):\n        return v // k\n    return lambda w: div(w) + 1\nh = mk(0)\nprint(h(4))\n",
        "def bad(s):\n    return s + 1\ndef run(f):\n    return f('x')\nprint(run(bad))\n",
        "def boom(n):\n    return n.nope\nt = spawn(boom, 3)\nt.join()\n",
    ];
    for (i, src) in cases.iter().enumerate() {
        let name = format!("err{i}");
        let (jit_out, jit_err, jit_code) = run(src, &name, &[], &[]);
        let (out, err, code) = run(src, &name, &["--interp"], &[]);
        assert_eq!(
            (jit_out, jit_err.as_str(), jit_code),
            (out, err.as_str(), code),
            "case {i}:\n{src}"
        );
        assert!(err.contains(&format!("{name}.lang:")), "case {i}: {err}");
    }
}

/// Runs of `def` statements bind their globals in one helper call: in order (a later `def`
/// of a name wins), only when reached (a name read before its `def` is a NameError at the
/// right place), mixed with `def`s that cannot be batched (defaults, closures) and inside a
/// function with `global` declarations; the same output and error as the interpreter.
#[test]
fn runs_of_defs_bind_their_globals_in_order() {
    let src = "\
def a():
    return 1
def b():
    return a() + 10
def a():
    return 2
def c(x=5):
    return x
def d():
    return b() * 100
print(a(), b(), c(), d())
def setup():
    global e, f
    def e():
        return 'e'
    def f():
        return 'f' + e()
    return 0
setup()
print(f())
print(g())
def g():
    return 3
";
    let (jit_out, jit_err, jit_code) = run(src, "defs", &[], &[]);
    let (out, err, code) = run(src, "defs", &["--interp"], &[]);
    assert_eq!(
        (jit_out.as_str(), jit_err.as_str(), jit_code),
        (out.as_str(), err.as_str(), code)
    );
    assert!(out.starts_with("2 12 5 1200\nfe\n"), "{out}");
    assert!(
        err.contains("NameError") && err.contains("defs.lang:21:"),
        "{err}"
    );
}

/// `compiled_inevitable` of the `--stats-json` file `path` (compilations that ran inside
/// an inevitable transaction).
fn compiled_inevitable(path: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(path).expect("--stats-json wrote no file");
    let v: serde_json::Value = serde_json::from_str(&text).expect("--stats-json wrote JSON");
    v["jit"]["compiled_inevitable"]
        .as_u64()
        .unwrap_or_else(|| panic!("no jit.compiled_inevitable in {text}"))
}

/// A function first called in the continuation of a return boundary (inevitable until the
/// caller's next poll), while another thread commits writes: its compilation runs outside
/// any transaction, so it holds no other segment's commits (nbody 200000 on 2 threads: the
/// first call of `energy` after `advance` returned compiled inside the inevitable
/// continuation, and the other thread waited up to 0.8 s). A function first called from
/// Rust (a sort key) in such a continuation is still compiled inside it, and counted: the
/// count is a real one.
#[test]
fn a_first_call_in_an_inevitable_continuation_compiles_outside_the_transaction() {
    let src = "\
def work(n):
    t = 0
    for k in range(n):
        t += k
    return t
def later(x):
    t = 0
    for k in range(3):
        t += x
    return t + 1
def keyfn(x):
    return -x
def writer(cells, stop):
    while stop[0] == 0:
        cells[0] += 1
    return 0
cells = [0]
stop = [0]
w = spawn(writer, cells, stop)
while cells[0] == 0:
    pass
# work's loop makes boundaries (budget 1): it opens the transaction that its return ends,
# and the rest of this line runs in an inevitable continuation, which calls later first.
b = later(work(50))
SORT
stop[0] = 1
w.join()
print(b, cells[0] > 0)
";
    let dir = scratch::dir("lazy");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, sort, want, expected) in [
        ("continuation", "", "3676 True\n", 0),
        (
            "continuation_sort",
            "print(sorted([3, 1, 2], key=keyfn), work(50) + keyfn(0))",
            "[3, 2, 1] 1225\n3676 True\n",
            1,
        ),
    ] {
        let json = dir.join(format!("{name}.json"));
        let args = ["--threads", "2", "--stats-json", json.to_str().unwrap()];
        let (out, err, code) = run(
            &src.replace("SORT", sort),
            name,
            &args,
            &[("STMJIT_BUDGET", "1")],
        );
        assert_eq!((out.as_str(), code), (want, 0), "{err}");
        assert_eq!(compiled_inevitable(&json), expected, "{name}: {err}");
    }
}
