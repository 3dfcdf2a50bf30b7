//! Allocation-heavy programs under a 4 KiB nursery (a minor collection every few objects),
//! against the interpreter: every object a helper or JIT code writes after another
//! allocation may have been promoted in between, so these catch missing write barriers on
//! promoted objects (a promoted object's pointers to young ones must be recorded) as well
//! as missing roots.

mod scratch;

use std::process::Command;

const PROGRAMS: &[&str] = &[
    // Found by the benchmarks' binary trees: a list literal before a deep tree of instances
    // (failed with a RecursionError — a cycle made of a stale slots pointer — when the
    // instance promoted by its slots allocation was written without a barrier).
    "class Node:
    def __init__(self, left, right):
        self.left = left
        self.right = right
def make(d):
    if d == 0:
        return Node(None, None)
    return Node(make(d - 1), make(d - 1))
def check(t):
    if t.left is None:
        return 1
    return 1 + check(t.left) + check(t.right)
A = ['12', '2']
MAXD = int(A[0])
print('stretch', MAXD + 1, check(make(MAXD + 1)))
",
    // Trees of instances: `__init__` stores into instances that the slots allocation may
    // have promoted.
    "class Node:
    def __init__(self, l, r):
        self.l = l
        self.r = r
def make(d):
    if d == 0:
        return Node(None, None)
    return Node(make(d - 1), make(d - 1))
def check(t):
    if t.l is None:
        return 1
    return 1 + check(t.l) + check(t.r)
keep = make(12)
print(check(make(13)))
for i in range(10):
    print(check(make(8)), check(keep))
",
    // Lists and dicts built, grown, concatenated, sliced, repeated while everything moves.
    "xs = []
d = {}
for i in range(3000):
    xs.append([i, str(i)])
    d[str(i % 500)] = [i] + xs[-1]
ys = xs[10:20] + xs[:3] * 2
zs = [ys[0]] * 5
print(len(xs), len(d), ys, zs[4] is ys[0], d['7'])
t = 0
for k in d:
    t += d[k][0]
print(t, xs[2999], xs[-1][1])
",
    // Floats boxed inline, strs and nested containers in globals and instance slots.
    "class Acc:
    def __init__(self):
        self.items = []
        self.total = 0.0
    def add(self, x):
        self.items.append([x, x * 0.5])
        self.total = self.total + x * 1.5
a = Acc()
for i in range(2000):
    a.add(float(i))
print(a.total, len(a.items), a.items[1999], str(a.items[:2]))
g = {}
for i in range(1000):
    g[i] = {'k': [i, i + 0.25], 's': 'v' + str(i)}
print(g[999], len(g))
",
];

fn run(path: &std::path::Path, interp: bool) -> (String, String, Option<i32>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run");
    if interp {
        cmd.arg("--interp");
    } else {
        cmd.env("STMJIT_NURSERY", "4096");
    }
    let out = cmd.arg(path).output().expect("run stmjit");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.code(),
    )
}

#[test]
fn allocation_heavy_programs_with_a_4k_nursery() {
    let dir = scratch::dir("gc");
    std::fs::create_dir_all(&dir).unwrap();
    for (k, src) in PROGRAMS.iter().enumerate() {
        let path = dir.join(format!("gc{k}.lang"));
        std::fs::write(&path, src).unwrap();
        let want = run(&path, true);
        assert_eq!(
            want.2,
            Some(0),
            "interpreter failed on program {k}: {}",
            want.1
        );
        let got = run(&path, false);
        assert_eq!(got, want, "program {k} differs under a 4 KiB nursery");
    }
}
