//! Differential test of the JIT against the reference interpreter: random deterministic
//! programs (the generator of `differential.rs`, plus recursion, nested containers,
//! instances and loops added here) must print exactly the same under `stmjit run` and
//! `stmjit run --interp`. 500 programs by default; `STMJIT_DIFF_PROGRAMS=N` for more.
//! Every tenth program also runs with a 4 KiB nursery.

mod scratch;

mod common;

use common::{spec, Gen};
use std::process::Command;

/// Definitions added after the shared prelude.
const JIT_PRELUDE: &str = "
def fib(n):
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)

def walk(xs, depth):
    if depth == 0:
        return len(xs)
    return walk([xs, depth], depth - 1) + len(xs)

class Pt:
    def __init__(self, x, y):
        self.x = x
        self.y = y
    def norm1(self):
        return abs(self.x) + abs(self.y)

grid = []
for r in range(4):
    grid.append([0] * 4)

def list_sum(m):
    t = 0
    for k in m:
        t += m[k][0]
    return t

class Stack:
    def __init__(self, xs):
        self.xs = xs
    def append(self, v):
        self.xs.append(v + 1)
    def pop(self, i=-1):
        return self.xs.pop(i) * 2

def lfast(ys, n, k):
    out = []
    for q in range(n):
        ys.append(q * k)
        out.append(len(ys))
    for q in ys:
        if q % 3 == 0 and len(ys) < 40:
            ys.append(q + 1)
        elif len(ys) > 5 and q % 4 == 1:
            out.append(ys.pop())
    for j in [-1, 0, len(ys) - 1, -len(ys), len(ys), -len(ys) - 1, k, True]:
        try:
            out.append(ys[j])
            ys[j] = ys[j] + 1
        except IndexError as e:
            out.append(str(e))
    for j in [-1, 0, len(ys) - 1, len(ys), -len(ys) - 1, k, 1, False]:
        try:
            out.append(ys.pop(j))
        except IndexError as e:
            out.append(str(e))
    while len(ys) > 2:
        out.append(ys.pop())
    return out, ys

def lrecv(r, v):
    out = []
    try:
        out.append(r.pop(0))
        r.append(v)
        out.append(len(r))
        out.append(r.pop())
        out.append(r.pop(-1))
        out.append(r.pop())
    except AttributeError:
        out.append('attr')
    except KeyError:
        out.append('key')
    except IndexError:
        out.append('index')
    except TypeError:
        out.append('type')
    return out

def iloop(a, b, k, step):
    # A while loop on an int tree: its fast version for ints, left for the generic one where
    # a local stops being an int (a float step) or an operation overflows (b grows past 63
    # bits, a * a of a big a).
    out = []
    c = 0
    while a * a - b <= k:
        if a % 5 == step % 5:
            b = b * 3 + step
        elif (a - b) // 7 > k:
            out.append(a // 3)
        a += step
        c += 1
        if c > 25:
            break
    return [a, b, c, out]

def cloop(x, f, d, limit):
    # x carried round the loop as an int (assigned by the last statement only), which
    # leaves for the generic version where x * f + d overflows or is not an int.
    c = 0
    while x * 1 < limit:
        c += 1
        if c > 30:
            break
        x = x * f + d
    return [x, c]

def idivs(n, d):
    # `%` and `//` of operands that fit 32 bits and of ones that do not, of every sign.
    out = []
    for m in [n, -n, n * 4294967296, n + 4294967295]:
        for e in [d, -d, d + 4294967296, 4294967295 - d]:
            if e != 0:
                out.append([m % e, m // e])
                if m % e == 0:
                    out.append(e)
                if m % e != 0:
                    out.append(m)
    return out

def receiver(c, v):
    if c == 0:
        return [v, 2, 3]
    if c == 1:
        return []
    if c == 2:
        return [v]
    if c == 3:
        return Stack([v, v + 1])
    if c == 4:
        return {0: v, 1: 2}
    if c == 5:
        return 'str' * (v % 3)
    return (v, 1)
";

/// An operand for the conditions of [`extra`]: mostly small ints, sometimes a float, a
/// bool or a big int (past the tagged range): the float and generic paths of a comparison.
/// (Programs must run without errors: none of these raises in a comparison with an int.)
fn operand(g: &mut Gen) -> String {
    match g.below(10) {
        0 => g.float(1),
        1 => "True".to_string(),
        2 => "4611686018427387904".to_string(),
        3 => "-4611686018427387905".to_string(),
        _ => g.int(1),
    }
}

fn extra(g: &mut Gen) -> String {
    match g.below(13) {
        // Int loops and divisions (`int_loops.rs`, `int_div`) on ints that overflow, floats,
        // bools and big ints.
        12 => format!(
            "print(iloop({}, {}, {}, {}), idivs({}, {}), cloop({}, {}, {}, {}))",
            operand(g),
            operand(g),
            g.int(1),
            operand(g),
            operand(g),
            operand(g),
            operand(g),
            operand(g),
            operand(g),
            g.int(1)
        ),
        // The inline list methods and indexing: growth past the capacity, lists mutated while
        // a loop runs over them, negative and out-of-range indices, `pop(i)` of every kind,
        // and receivers of other types with the same method names.
        10 => format!(
            "print(lfast(list(range(abs({}) % 7)), abs({}) % 20, {}))",
            g.int(1),
            g.int(1),
            g.int(1)
        ),
        11 => format!(
            "print(lrecv(receiver(abs({}) % 7, {}), {}), len(receiver([0, 1, 2, 4, 5][abs({}) % 5], 4)))",
            g.int(1),
            g.int(1),
            g.int(1),
            g.int(1)
        ),
        8 => format!(
            "c = 0\nv = {}\nw = {}\nfor q in range(6):\n    if (q % {} == 0 and v < q) or not (w >= q):\n        c += 1\n    elif q != v and not q > w:\n        c -= 1\n    c += 1 if q <= v or w == q else 10\n    while c > 3 and c % 2 != 0:\n        c -= 3\nprint('cond', c, not v < w, v > q and w)",
            operand(g),
            operand(g),
            g.below(7) + 1,
        ),
        9 => format!(
            "n = max({}, -3)\nm = 0\nwhile n < {} and (n % 3 != 1 or m < {}):\n    n = n + 1\n    m += 2\n    if not n:\n        break\nprint('while', n, m)",
            operand(g),
            g.int(0),
            operand(g),
        ),
        0 => format!("print(fib(abs({}) % 15))", g.int(1)),
        1 => format!("print(walk([{}], abs({}) % 20))", g.int(1), g.int(1)),
        2 => format!(
            "p = Pt({}, {})\np.x += {}\nprint(p.norm1(), p.x, p.y)",
            g.int(1),
            g.int(1),
            g.int(1)
        ),
        3 => format!(
            "grid[abs({}) % 4][abs({}) % 4] += {}\nprint(grid)",
            g.int(1),
            g.int(1),
            g.int(1)
        ),
        4 => format!(
            "t = 0\nfor q in range({}, {}):\n    if q % 3 == 0:\n        continue\n    t += q * q\n    if t > 5000:\n        break\nprint(t)",
            g.int(1),
            g.int(1)
        ),
        5 => format!(
            "m = {{}}\nfor q in range(abs({}) % 9):\n    m[str(q)] = [q, {}]\nprint(m, len(m), list_sum(m))",
            g.int(1),
            g.float(1)
        ),
        6 => format!("print(l0[1:], l0[:2], s0[1:3], {} in l0)", g.int(1)),
        _ => format!("i0 = i0 * 3 % 1000 + {}\nprint(i0, i0 / 7, i0 // 7, -i0 % 7)", g.int(1)),
    }
}

fn program(g: &mut Gen, statements: usize) -> String {
    let base = g.program(statements);
    let (prelude, body) = base.split_at(common::PRELUDE.len());
    let mut p = String::from(prelude);
    p.push_str(JIT_PRELUDE);
    for line in body.split_inclusive('\n') {
        p.push_str(line);
        // Generated statements may span lines (blocks): add extras only before a
        // top-level line that starts a statement.
        if g.below(4) == 0 && !line.starts_with(' ') && !line.trim_end().ends_with(':') {
            p.push_str(&extra(g));
            p.push('\n');
        }
    }
    p
}

/// Runs `path` (on the interpreter with `interp`) with extra environment variables:
/// stdout, stderr, exit status.
fn run(
    path: &std::path::Path,
    interp: bool,
    env: &[(&str, &str)],
) -> (String, String, Option<i32>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run");
    if interp {
        cmd.arg("--interp");
    }
    cmd.arg(path);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run stmjit");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

/// Generates `n` programs with `make` from `seed` and runs each on the interpreter and on the
/// JIT with the environment `env(k)`: the outputs must be identical, and together at least
/// `min_lines` lines per program. With `STMJIT_DIFF_KEEP_GOING=1` every mismatch is reported
/// (its program kept) before the test fails, not only the first.
fn compare_programs(
    n: usize,
    seed: u64,
    tag: &str,
    make: impl Fn(&mut Gen) -> String,
    min_lines: usize,
    env: impl Fn(usize) -> Vec<(&'static str, &'static str)>,
) {
    let dir = scratch::dir(tag);
    std::fs::create_dir_all(&dir).unwrap();
    let keep_going = std::env::var("STMJIT_DIFF_KEEP_GOING").is_ok_and(|v| v == "1");
    let mut g = Gen(seed);
    let mut compared_lines = 0;
    let mut failures = Vec::new();
    for k in 0..n {
        let src = make(&mut g);
        let path = dir.join(format!("p{k}.lang"));
        std::fs::write(&path, &src).unwrap();
        let want = run(&path, true, &[]);
        assert_eq!(
            want.2,
            Some(0),
            "interpreter failed on {}: {}",
            path.display(),
            want.1
        );
        let env = env(k);
        let got = run(&path, false, &env);
        if got != want {
            let first = got
                .0
                .lines()
                .zip(want.0.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            let report = format!(
                "{} ({env:?}) differs at line {}: jit {:?}, interp {:?}\njit exit {:?}, stderr: {}",
                path.display(),
                first + 1,
                got.0.lines().nth(first),
                want.0.lines().nth(first),
                got.2,
                got.1
            );
            assert!(keep_going, "{report}");
            eprintln!("{report}");
            failures.push(report);
        }
        compared_lines += want.0.lines().count();
    }
    assert!(
        failures.is_empty(),
        "{} of {n} programs differ",
        failures.len()
    );
    assert!(compared_lines > min_lines * n, "too little output compared");
    if !std::env::var("STMJIT_KEEP_TEST_FILES").is_ok_and(|v| v == "1") {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// [`compare_programs`] with the programs of [`program`] (40 statements each).
fn compare_random_programs(
    n: usize,
    seed: u64,
    tag: &str,
    env: impl Fn(usize) -> Vec<(&'static str, &'static str)>,
) {
    compare_programs(n, seed, tag, |g| program(g, 40), 20, env);
}

/// A program of [`spec::Spec`]: four functions whose loops change the types of their locals.
fn spec_program(g: &mut Gen) -> String {
    spec::Spec::new(g).program(4)
}

/// The value of the environment variable `var` (a program count, a seed), else `default`.
fn from_env<T: std::str::FromStr>(var: &str, default: T) -> T {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_programs_agree_with_the_interpreter() {
    // Every tenth program with a 4 KiB nursery (a minor collection every few allocations),
    // every tenth compiled as huge functions are (`STMJIT_QUICK=1`).
    compare_random_programs(
        from_env("STMJIT_DIFF_PROGRAMS", 500),
        0x0123_4567_89ab_cdef,
        "jitdiff",
        |k| match k % 10 {
            0 => vec![("STMJIT_NURSERY", "4096")],
            // As huge functions are compiled: locals in frame slots, the quick tier.
            5 => vec![("STMJIT_QUICK", "1")],
            _ => Vec::new(),
        },
    );
}

/// With commits aborting at probability 0.3 and short transactions (`STMJIT_BUDGET=50`), the
/// JIT still prints exactly what the interpreter prints: every restart re-executes exactly
/// from its boundary. 100 programs by default; `STMJIT_DIFF_ABORT_PROGRAMS=N` for more.
#[test]
fn random_programs_agree_with_the_interpreter_under_aborts() {
    compare_random_programs(
        from_env("STMJIT_DIFF_ABORT_PROGRAMS", 100),
        0x0bad_cafe_5eed_1234,
        "jitdiff-aborts",
        |k| {
            let mut env = vec![("STMJIT_ABORT_PROBABILITY", "0.3"), ("STMJIT_BUDGET", "50")];
            // Restarts with the locals in frame slots (huge functions).
            if k % 4 == 1 {
                env.push(("STMJIT_QUICK", "1"));
            }
            env
        },
    );
}

/// What type specialization can get wrong (issue 16): locals that change type at some
/// iteration of nested loops, ints overflowing into big ints and back, int/float/bool mixing,
/// float locals captured or passed to calls, attributes added and classes changed while a loop
/// runs, list receivers replaced, inlined leaf functions rebound, exceptions from specialized
/// code caught at several levels, parts inside `with atomic:` (see `common/spec.rs`). Every
/// third program with a 4 KiB nursery, every fifth as huge functions are compiled. 40
/// programs by default; `STMJIT_DIFF_SPEC_PROGRAMS=N` for more, `STMJIT_DIFF_SEED=S` for
/// other programs, `STMJIT_DIFF_KEEP_GOING=1` to see every mismatch.
#[test]
fn type_changing_loops_agree_with_the_interpreter() {
    compare_programs(
        from_env("STMJIT_DIFF_SPEC_PROGRAMS", 40),
        from_env("STMJIT_DIFF_SEED", 0x5bec_1a11_2e0f_0016),
        "jitdiff-spec",
        spec_program,
        8,
        |k| {
            let mut env = Vec::new();
            if k % 3 == 0 {
                env.push(("STMJIT_NURSERY", "4096"));
            }
            if k % 5 == 4 {
                env.push(("STMJIT_QUICK", "1"));
            }
            env
        },
    );
}

/// Float loops of the shapes the JIT specializes (issue 16: invariant floats tested before a
/// `while` loop, sums of inline quotients, float attribute updates), their operands starting
/// as or turning into ints, big ints, bools, NaN, inf, -0.0, None and strings (see
/// `common/spec.rs`, `float_loop`). Every third program with a 4 KiB nursery, every fourth
/// under forced aborts with short transactions. 30 programs by default;
/// `STMJIT_DIFF_FLOAT_PROGRAMS=N` for more, `STMJIT_DIFF_SEED=S` for other programs.
#[test]
fn float_loops_agree_with_the_interpreter() {
    compare_programs(
        from_env("STMJIT_DIFF_FLOAT_PROGRAMS", 30),
        from_env("STMJIT_DIFF_SEED", 0xf10a_7100_b5ec_0016),
        "jitdiff-float",
        |g| spec::Spec::new(g).float_program(3),
        5,
        |k| {
            let mut env = Vec::new();
            if k % 3 == 0 {
                env.push(("STMJIT_NURSERY", "4096"));
            }
            if k % 4 == 1 {
                env.extend([("STMJIT_ABORT_PROBABILITY", "0.3"), ("STMJIT_BUDGET", "50")]);
            }
            env
        },
    );
}

/// The same programs' guards failing under forced aborts: commits abort at probability 0.3 with
/// short transactions, some with a 4 KiB nursery. 20 programs by default;
/// `STMJIT_DIFF_SPEC_ABORT_PROGRAMS=N` for more.
#[test]
fn type_changing_loops_agree_with_the_interpreter_under_aborts() {
    compare_programs(
        from_env("STMJIT_DIFF_SPEC_ABORT_PROGRAMS", 20),
        from_env("STMJIT_DIFF_SEED", 0x0ab0_27ed_5bec_0016),
        "jitdiff-spec-aborts",
        spec_program,
        8,
        |k| {
            let mut env = vec![("STMJIT_ABORT_PROBABILITY", "0.3"), ("STMJIT_BUDGET", "50")];
            if k % 2 == 1 {
                env.push(("STMJIT_NURSERY", "4096"));
            }
            env
        },
    );
}
