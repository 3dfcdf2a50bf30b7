//! Operations that hold every element of a big collection at once (sort, copy, dict and set
//! growth and rebuild, list building, `str.join`, `split`) are limited by memory, not by a
//! fixed count: each program here holds more references in one operation than the old
//! fixed 8 MiB shadow stack could (1 048 576 slots), so every one of them ended in
//! `MemoryError: too many objects held by one operation` before (issue 20).
//!
//! With `STMJIT_BIG=1` the issue's sizes run too (minutes and several GB each): a dict of
//! 20 M string keys, `sorted()` of 10 M strings, `d.copy()` of a 10 M-entry dict.

mod scratch;

use std::process::Command;

/// Elements per CI-sized operation: above the old cap of 1 048 576 slots.
const N: usize = 1_100_000;

/// One program, the operation and the size given as arguments.
const OPS: &str = r#"
op = args()[0]
n = int(args()[1])
if op == "sort":
    xs = []
    for i in range(n):
        xs.append(str((i * 7919) % n))
    ys = sorted(xs)
    print(len(ys), ys[0], ys[n - 1])
    xs.sort(reverse=True)
    print(xs[0], xs[n - 1])
elif op == "dict":
    d = {}
    for i in range(n):
        d[str(i)] = str(i)
    e = d.copy()
    print(len(d), len(e), e["0"], e[str(n - 1)])
    for i in range(0, n, 2):
        del d[str(i)]
    for i in range(n, n + n // 2):
        d[str(i)] = str(i)
    print(len(d), list(d)[0], d[str(n + n // 2 - 1)], str(n - 1) in d, "0" in d)
    print(len(list(d.items())), len(e.keys()), len({k: 1 for k in e}))
elif op == "set":
    xs = [str(i) for i in range(n)]
    s = set(xs)
    u = set()
    for x in xs:
        u.add(x)
    print(len(s), len(u), str(n - 1) in s, "x" in u)
    for i in range(0, n, 2):
        u.discard(str(i))
    for i in range(n, n + n // 2):
        u.add(str(i))
    c = u.copy()
    f = frozenset(xs)
    print(len(u), len(c), len(f), "0" in c, str(n) in c, len({x for x in xs}))
elif op == "list":
    xs = [str(i) for i in range(n)]
    t = tuple(xs)
    a = list(t)
    b = list(reversed(xs))
    print(len(t), len(a), len(b), t[n - 1], a[0], b[0])
    ys = xs + xs
    zs = xs[:]
    ws = [x for x in xs]
    print(len(ys), len(zs), len(ws), ys[n], len(list(zip(xs, xs))))
    j = ",".join(xs)
    parts = j.split(",")
    print(len(j), len(parts), parts[n - 1], len("".join(ys)))
elif op == "big_dict":
    d = {}
    for i in range(n):
        d[str(i)] = i
    print(len(d), d[str(n // 2)], d[str(n - 1)])
elif op == "big_sorted":
    xs = []
    for i in range(n):
        xs.append(str((i * 7919) % n))
    ys = sorted(xs)
    print(len(ys), ys[0], ys[n - 1])
elif op == "big_copy":
    d = {}
    for i in range(n):
        d[str(i)] = i
    e = d.copy()
    print(len(e), e["0"], e[str(n - 1)])
"#;

/// Runs `op` at size `n` on the JIT; its stdout (the test fails on any error).
fn run(op: &str, n: usize) -> String {
    let dir = scratch::dir("bigops");
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ops.lang");
    std::fs::write(&file, OPS).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .arg("run")
        .arg(&file)
        .arg(op)
        .arg(n.to_string())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{op} {n}: {err}");
    String::from_utf8(out.stdout).unwrap()
}

/// The smallest and largest of the decimal strings of `0..n`, as strs compare.
fn str_min_max(n: usize) -> (String, String) {
    let max = (0..n).map(|i| i.to_string()).max().unwrap();
    ("0".to_string(), max)
}

/// Characters of the decimal strings of `0..n`, all together.
fn digits(n: usize) -> usize {
    (0..n).map(|i| i.to_string().len()).sum()
}

/// Whether the issue's sizes are asked for.
fn big() -> bool {
    std::env::var("STMJIT_BIG").is_ok_and(|v| v == "1")
}

#[test]
fn sorting_more_strings_than_the_old_cap() {
    let n = N;
    assert_eq!(gcd(n, 7919), 1, "the program's permutation needs it");
    let (lo, hi) = str_min_max(n);
    assert_eq!(
        run("sort", n),
        format!("{n} {lo} {hi}\n{hi} {lo}\n"),
        "sorted() and list.sort(reverse=True)"
    );
}

#[test]
fn dict_growth_copy_and_rebuild_beyond_the_old_cap() {
    let n = N;
    let len = n - n.div_ceil(2) + n / 2;
    let last = n + n / 2 - 1;
    let odd = (n - 1) % 2 == 1;
    let py = |b: bool| if b { "True" } else { "False" };
    assert_eq!(
        run("dict", n),
        format!(
            "{n} {n} 0 {m}\n{len} 1 {last} {odd} False\n{len} {n} {n}\n",
            m = n - 1,
            odd = py(odd)
        )
    );
}

#[test]
fn set_growth_copy_and_rebuild_beyond_the_old_cap() {
    let n = N;
    let len = n - n.div_ceil(2) + n / 2;
    assert_eq!(
        run("set", n),
        format!("{n} {n} True False\n{len} {len} {n} False True {n}\n")
    );
}

#[test]
fn list_building_join_and_split_beyond_the_old_cap() {
    let n = N;
    let d = digits(n);
    assert_eq!(
        run("list", n),
        format!(
            "{n} {n} {n} {m} 0 {m}\n{n2} {n} {n} 0 {n}\n{j} {n} {m} {d2}\n",
            m = n - 1,
            n2 = 2 * n,
            j = d + n - 1,
            d2 = 2 * d
        )
    );
}

/// `STMJIT_BIG=1`: a dict of 20 M string keys (issue 20: it stopped growing at 1.05 M).
#[test]
fn big_dict_of_20m_string_keys() {
    if !big() {
        eprintln!("skipped: set STMJIT_BIG=1 (about a minute, 8 GB)");
        return;
    }
    let n = 20_000_000;
    assert_eq!(run("big_dict", n), format!("{n} {} {}\n", n / 2, n - 1));
}

/// `STMJIT_BIG=1`: `sorted()` of 10 M strings.
#[test]
fn big_sorted_10m_strings() {
    if !big() {
        eprintln!("skipped: set STMJIT_BIG=1");
        return;
    }
    let n = 10_000_000;
    let (lo, hi) = str_min_max(n);
    assert_eq!(run("big_sorted", n), format!("{n} {lo} {hi}\n"));
}

/// `STMJIT_BIG=1`: `d.copy()` of a 10 M-entry dict.
#[test]
fn big_copy_of_10m_entries() {
    if !big() {
        eprintln!("skipped: set STMJIT_BIG=1");
        return;
    }
    let n = 10_000_000;
    assert_eq!(run("big_copy", n), format!("{n} 0 {}\n", n - 1));
}

fn gcd(mut a: usize, mut b: usize) -> usize {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
