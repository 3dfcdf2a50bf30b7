//! Barrier microbenchmarks: the cost of the inline sequences the JIT emits, each
//! timed in a loop compiled by stmjit itself against the same loop without the sequence.
//!
//! `CARGO_TARGET_DIR=/work/target-bench cargo bench --bench barriers`
//!
//! # How
//! Every form is a small program (text below) whose function `bench(n, o)` runs a loop of
//! `n` iterations with a fixed number of operations in each. The `stmjit` binary of this
//! package (the real compiler and runtime, with its real switches) runs it; the program
//! warms the loop up (attribute caches filled), commits once so that its objects are old
//! (promoted by the commit's minor collection), then times `bench(n, o)` with `time()` and
//! prints the seconds. Criterion's `iter_custom` passes its iteration count as `n` and gets
//! that time back, so process start-up and compilation are outside every figure.
//!
//! | id | loop body (per iteration) | how the form is made |
//! |---|---|---|
//! | `read_plain` | 8 loads `x = o.fK` of one old instance | `--gil`: no read barriers |
//! | `read_gs` | the same | default: read-marker stores `mov byte gs:[ref>>4], rv` |
//! | `read_r15` | the same | `--segment-base r15`: the markers through the pinned base |
//! | `write_plain` | 8 stores `a.x = i` into 8 old instances | `STMJIT_BENCH_OMIT=write-barrier` |
//! | `write_gs` | the same | default: flag test `gs:[slots+flags]` (flag clear: fast path) |
//! | `write_slow` | 8 loads from a pool, 8 stores `a.x = i` | `STMJIT_BUDGET=1` (see below) |
//! | `alloc` | 8 `x = f + 0.5` (float unbox, add, inline nursery box) | default |
//! | `poll` | nothing (`i += 1` only) | default: back-edge poll |
//! | `poll_plain` | nothing | `STMJIT_BENCH_OMIT=poll`: no polls |
//!
//! `STMJIT_BENCH_OMIT` is a switch of `stmjit-jit` (`compile::Shared::write_barriers` and
//! `polls`) that exists for this benchmark only: no mode of the language runs without write
//! barriers or polls, so the plain forms of `write_*` and `poll` are the same compiled loop
//! with that one sequence left out. The stores write ints only, so leaving the write barrier
//! out cannot hide a young reference from the GC.
//!
//! `write_slow`: every store is the first write to its (old) object in its transaction. The
//! runtime's smallest transaction budget is 16 polls (`STMJIT_BUDGET=1` is raised to it), so
//! a transaction spans at most 17 iterations; the loop walks a pool of 32 groups of 8
//! instances, so no object is written twice in one transaction. Its figure therefore
//! includes the 8 pool loads per iteration and one commit (with its minor collection) per
//! 17 iterations; its stores are the same sequence as `write_gs`'s (attribute fast path,
//! flag test, store), into a new group of 8 instances each time instead of the same 8.
//!
//! The write loops store into 8 instances, not 8 attributes of one: the compiler tests the
//! write-barrier flag of an instance once per region (one per loop iteration here), so 8
//! stores into one instance would time one flag test, not 8.
//!
//! # The emitted code was checked
//! Before timing anything, [`check_code`] compiles every program with `--dump-asm` and
//! counts, in the listing of `bench`, the sequences `--dump-asm` labels: read-marker stores
//! (in `gs:` or `r15` form), write-barrier flag tests, nursery allocations, safe-point polls.
//! It fails the benchmark unless each form has what it claims (e.g. `read_gs` at least 8
//! `gs:` marker stores, `read_plain` none; `write_gs` at least 8 flag tests, `write_plain`
//! none and the same number of read markers as `write_gs`; `poll_plain` no poll). Checked by
//! hand too: in `read_gs` each `o.fK` is the attribute fast path (type test, class id against
//! the site cache, inline slot count check), the `gs:` marker store of the instance, then the
//! `gs:` load; `read_plain` is the same instruction for instruction without the read-version
//! load and marker store.
//!
//! # The table
//! After criterion (only under `cargo bench`, not in `cargo test` mode), every form is run
//! again, interleaved (A B C … A B C …), and the medians are printed as a table of ns per
//! operation and ratios to the plain form; the definitions are printed under it.

use criterion::{Criterion, Throughput};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// What every program shares: a function for `spawn` (its `join` commits the transaction,
/// which promotes the objects made so far to the old space), the warm-up, the timed call.
const HARNESS: &str = r#"
def nothing():
    return 0

n = int(args()[0])
o = setup()
bench(1000, o)
spawn(nothing).join()
t0 = time()
bench(n, o)
t1 = time()
print(t1 - t0)
"#;

/// An instance with 8 int attributes (read loops).
const READ: &str = r#"
class P:
    def __init__(self):
        self.f0 = 1
        self.f1 = 2
        self.f2 = 3
        self.f3 = 4
        self.f4 = 5
        self.f5 = 6
        self.f6 = 7
        self.f7 = 8

def setup():
    return P()

def bench(n, o):
    x = 0
    i = 0
    while i < n:
        x = o.f0
        x = o.f1
        x = o.f2
        x = o.f3
        x = o.f4
        x = o.f5
        x = o.f6
        x = o.f7
        i += 1
    return x
"#;

/// 8 old instances, one int attribute stored into each per iteration (fast-path write
/// loops: the flag is clear after the first store of the transaction). One store per
/// instance, each held by its own local: the compiler tests the flag of an instance once per
/// region (see `jit/src/compile/mod.rs`), so 8 stores into one instance would test it once.
const WRITE: &str = r#"
class P:
    def __init__(self):
        self.x = 0

def setup():
    return [P(), P(), P(), P(), P(), P(), P(), P()]

def bench(n, o):
    a = o[0]
    b = o[1]
    c = o[2]
    d = o[3]
    e = o[4]
    f = o[5]
    g = o[6]
    h = o[7]
    i = 0
    while i < n:
        a.x = i
        b.x = i
        c.x = i
        d.x = i
        e.x = i
        f.x = i
        g.x = i
        h.x = i
        i += 1
    return i
"#;

/// A pool of 32 groups of 8 instances; each iteration stores into the next group.
const WRITE_SLOW: &str = r#"
class P:
    def __init__(self):
        self.x = 0

def setup():
    pool = []
    for j in range(256):
        pool.append(P())
    return pool

def bench(n, pool):
    i = 0
    k = 0
    while i < n:
        a = pool[k]
        b = pool[k + 1]
        c = pool[k + 2]
        d = pool[k + 3]
        e = pool[k + 4]
        f = pool[k + 5]
        g = pool[k + 6]
        h = pool[k + 7]
        a.x = i
        b.x = i
        c.x = i
        d.x = i
        e.x = i
        f.x = i
        g.x = i
        h.x = i
        k += 8
        if k == 256:
            k = 0
        i += 1
    return i
"#;

/// 8 float additions, each boxed by the inline nursery allocation.
const ALLOC: &str = r#"
def setup():
    return 1.5

def bench(n, f):
    x = 0.0
    i = 0
    while i < n:
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        x = f + 0.5
        i += 1
    return x
"#;

/// The empty loop: its increment, compare and back-edge poll.
const EMPTY: &str = r#"
def setup():
    return 0

def bench(n, o):
    i = 0
    while i < n:
        i += 1
    return i
"#;

/// A sequence `--dump-asm` labels, and how many times the listing of `bench` must have it.
struct Expect {
    label: &'static str,
    min: usize,
    max: usize,
}

const fn at_least(label: &'static str, min: usize) -> Expect {
    Expect {
        label,
        min,
        max: usize::MAX,
    }
}

const fn none(label: &'static str) -> Expect {
    Expect {
        label,
        min: 0,
        max: 0,
    }
}

const GS_MARKER: &str = "read barrier: read-marker store (gs)";
const R15_MARKER: &str = "read barrier: read-marker store (r15)";
const WB_TEST: &str = "write barrier: flag test";
const ALLOC_SEQ: &str = "nursery allocation";
const POLL_SEQ: &str = "safe-point poll";

/// One benchmarked form.
struct Case {
    id: &'static str,
    /// Operations per loop iteration (the unit of ns/op).
    ops: u64,
    /// The operation, for the table.
    what: &'static str,
    program: &'static str,
    flags: &'static [&'static str],
    env: &'static [(&'static str, &'static str)],
    /// The form this one is compared with.
    plain: Option<&'static str>,
    expect: &'static [Expect],
}

const CASES: &[Case] = &[
    Case {
        id: "read_plain",
        ops: 8,
        what: "attribute load, no barrier (--gil)",
        program: READ,
        flags: &["--gil"],
        env: &[],
        plain: None,
        expect: &[none(GS_MARKER), none(R15_MARKER), none(WB_TEST)],
    },
    Case {
        id: "read_gs",
        ops: 8,
        what: "attribute load + gs: read marker",
        program: READ,
        flags: &[],
        env: &[],
        plain: Some("read_plain"),
        expect: &[at_least(GS_MARKER, 9), none(R15_MARKER), none(WB_TEST)],
    },
    Case {
        id: "read_r15",
        ops: 8,
        what: "attribute load + r15 read marker",
        program: READ,
        flags: &["--segment-base", "r15"],
        env: &[],
        plain: Some("read_plain"),
        expect: &[at_least(R15_MARKER, 9), none(GS_MARKER), none(WB_TEST)],
    },
    Case {
        id: "write_plain",
        ops: 8,
        what: "attribute store, write barrier omitted",
        program: WRITE,
        flags: &[],
        env: &[("STMJIT_BENCH_OMIT", "write-barrier")],
        plain: None,
        expect: &[none(WB_TEST), at_least(GS_MARKER, 8)],
    },
    Case {
        id: "write_gs",
        ops: 8,
        what: "attribute store + write-barrier fast path",
        program: WRITE,
        flags: &[],
        env: &[],
        plain: Some("write_plain"),
        expect: &[at_least(WB_TEST, 8), at_least(GS_MARKER, 8)],
    },
    Case {
        id: "write_slow",
        ops: 8,
        what: "first write per transaction (+ pool load, commit share)",
        program: WRITE_SLOW,
        flags: &[],
        env: &[("STMJIT_BUDGET", "1")],
        plain: Some("write_plain"),
        expect: &[at_least(WB_TEST, 8)],
    },
    Case {
        id: "alloc",
        ops: 8,
        what: "float add + inline nursery allocation",
        program: ALLOC,
        flags: &[],
        env: &[],
        plain: None,
        expect: &[at_least(ALLOC_SEQ, 8)],
    },
    Case {
        id: "poll",
        ops: 1,
        what: "empty loop iteration with its back-edge poll",
        program: EMPTY,
        flags: &[],
        env: &[],
        plain: Some("poll_plain"),
        expect: &[at_least(POLL_SEQ, 1)],
    },
    Case {
        id: "poll_plain",
        ops: 1,
        what: "empty loop iteration, polls omitted",
        program: EMPTY,
        flags: &[],
        env: &[("STMJIT_BENCH_OMIT", "poll")],
        plain: None,
        expect: &[none(POLL_SEQ)],
    },
];

/// The id of the empty loop (with its poll) whose time per iteration the "net" columns
/// subtract.
const EMPTY_ID: &str = "poll";

/// The `stmjit` binary cargo built for this benchmark.
fn stmjit() -> &'static str {
    env!("CARGO_BIN_EXE_stmjit")
}

/// Where the programs and listings are written.
fn work_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("barriers");
    std::fs::create_dir_all(&dir).expect("create the benchmark's work dir");
    dir
}

/// Writes the program of `case` (its loop and the harness) and returns its path.
fn program_file(case: &Case) -> PathBuf {
    let path = work_dir().join(format!("{}.lang", case.id));
    std::fs::write(&path, format!("{}{}", case.program, HARNESS)).expect("write program");
    path
}

/// Runs `case` with `extra` flags and `n` iterations; returns its stdout, or panics with
/// its stderr.
fn run(case: &Case, extra: &[String], n: u64) -> String {
    let path = program_file(case);
    let out = Command::new(stmjit())
        .arg("run")
        .args(case.flags)
        .args(extra)
        .arg(&path)
        .arg(n.to_string())
        .envs(case.env.iter().copied())
        .output()
        .expect("run stmjit");
    assert!(
        out.status.success(),
        "{}: stmjit failed ({}):\n{}",
        case.id,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

/// The loop time of `n` iterations, as measured inside the program.
fn time(case: &Case, n: u64) -> Duration {
    let out = run(case, &[], n);
    let secs: f64 = out
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}: unexpected output {out:?}", case.id));
    Duration::from_secs_f64(secs.max(0.0))
}

/// Compiles `case` with `--dump-asm` and checks the listing of `bench` against its
/// expectations (see the module docs); panics with the counts otherwise.
fn check_code(case: &Case) {
    let listing = work_dir().join(format!("{}.asm", case.id));
    run(case, &[format!("--dump-asm={}", listing.display())], 10);
    let text = std::fs::read_to_string(&listing).expect("read listing");
    let mut in_bench = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with("; function") {
            in_bench = line.contains("_bench:");
        } else if in_bench {
            lines.push(line);
        }
    }
    assert!(!lines.is_empty(), "{}: no `bench` in the listing", case.id);
    for e in case.expect {
        let n = lines.iter().filter(|l| l.contains(e.label)).count();
        assert!(
            (e.min..=e.max).contains(&n),
            "{}: `bench` has {n} lines labelled {:?} (expected {}..={}); see {}",
            case.id,
            e.label,
            e.min,
            e.max,
            listing.display()
        );
    }
}

/// Read markers in `bench` of `a` and `b` must be as many (the write forms differ only by
/// the write barrier). Both forms count: the rewrite may leave a marker in `r15` form where
/// the `gs:` one would grow the code, which depends on the registers around it.
fn same_markers(a: &str, b: &str) {
    let count = |id: &str| {
        let listing = work_dir().join(format!("{id}.asm"));
        let text = std::fs::read_to_string(listing).expect("read listing");
        let mut in_bench = false;
        text.lines()
            .filter(|l| {
                if l.starts_with("; function") {
                    in_bench = l.contains("_bench:");
                }
                in_bench && (l.contains(GS_MARKER) || l.contains(R15_MARKER))
            })
            .count()
    };
    assert_eq!(count(a), count(b), "{a} and {b}: read markers differ");
}

fn case(id: &str) -> &'static Case {
    CASES.iter().find(|c| c.id == id).expect("known case")
}

fn median(xs: &mut [f64]) -> f64 {
    xs.sort_by(f64::total_cmp);
    let m = xs.len() / 2;
    if xs.len() % 2 == 1 {
        xs[m]
    } else {
        (xs[m - 1] + xs[m]) / 2.0
    }
}

/// Interleaved runs of every form after criterion: medians of ns per iteration.
fn measure_interleaved(rounds: usize, target: Duration) -> Vec<f64> {
    // Iterations per run: calibrated so that each run's loop takes about `target`.
    let iters: Vec<u64> = CASES
        .iter()
        .map(|c| {
            let probe = 100_000;
            let t = time(c, probe).as_secs_f64().max(1e-6);
            ((target.as_secs_f64() / t * probe as f64) as u64).max(probe)
        })
        .collect();
    let mut samples = vec![Vec::new(); CASES.len()];
    for r in 0..rounds {
        eprint!("\rbarriers table: round {}/{rounds}", r + 1);
        for (k, c) in CASES.iter().enumerate() {
            let t = time(c, iters[k]);
            samples[k].push(t.as_secs_f64() * 1e9 / iters[k] as f64);
        }
    }
    eprintln!();
    samples.iter_mut().map(|s| median(s)).collect()
}

/// Prints the table (see the module docs) from the medians `ns_iter` (by case).
fn print_table(ns_iter: &[f64], rounds: usize) {
    let idx = |id: &str| CASES.iter().position(|c| c.id == id).expect("known case");
    let empty = ns_iter[idx(EMPTY_ID)];
    let per_op = |k: usize| ns_iter[k] / CASES[k].ops as f64;
    let net = |k: usize| {
        let c = &CASES[k];
        (c.program != EMPTY).then(|| (ns_iter[k] - empty) / c.ops as f64)
    };
    let fmt = |x: Option<f64>, prec: usize| x.map_or("—".to_string(), |v| format!("{v:.prec$}"));
    println!();
    println!(
        "barriers: median of {rounds} interleaved runs per form, each loop timed inside the program"
    );
    println!(
        "{:<11} {:>3}  {:>8} {:>7} {:>7}  {:<11} {:>6} {:>7}  what",
        "id", "ops", "ns/iter", "ns/op", "net", "plain", "ratio", "net r."
    );
    for (k, c) in CASES.iter().enumerate() {
        let p = c.plain.map(idx);
        let ratio = p.map(|p| per_op(k) / per_op(p));
        let net_ratio = p.and_then(|p| Some(net(k)? / net(p)?));
        println!(
            "{:<11} {:>3}  {:>8.2} {:>7.3} {:>7}  {:<11} {:>6} {:>7}  {}",
            c.id,
            c.ops,
            ns_iter[k],
            per_op(k),
            fmt(net(k), 3),
            c.plain.unwrap_or("—"),
            fmt(ratio, 2),
            fmt(net_ratio, 2),
            c.what
        );
    }
    println!(
        "ns/op = ns/iter ÷ ops: the whole loop per operation (its increment, compare and poll \
         included, nothing subtracted); ratio = ns/op ÷ the plain form's ns/op."
    );
    println!(
        "net = (ns/iter − ns/iter of `{EMPTY_ID}`, the empty loop) ÷ ops; net r. = net ÷ the \
         plain form's net."
    );
    let poll_cost = ns_iter[idx("poll")] - ns_iter[idx("poll_plain")];
    println!("poll − poll_plain = {poll_cost:.3} ns per back-edge poll.");
    println!(
        "write_slow includes 8 pool loads per iteration and one commit per ≤ 17 iterations \
         (the smallest budget)."
    );
    for (id, goal) in [("read_gs", 1.25), ("read_r15", 1.25), ("write_gs", 1.10)] {
        let (k, p) = (idx(id), idx(case(id).plain.expect("has a plain form")));
        let ratio = per_op(k) / per_op(p);
        let net_ratio = net(k).zip(net(p)).map(|(a, b)| a / b);
        let met = |r: f64| if r <= goal { "met" } else { "NOT met" };
        println!(
            "goal {id} ≤ {goal:.2}× plain: ratio {ratio:.2} ({}), net ratio {} ({})",
            met(ratio),
            fmt(net_ratio, 2),
            net_ratio.map_or("n/a", met)
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; without it (`cargo test --benches`) criterion runs each
    // routine once as a test, and the table is skipped.
    let bench_mode = std::env::args().any(|a| a == "--bench");
    for c in CASES {
        check_code(c);
    }
    same_markers("write_plain", "write_gs");

    let mut crit = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let mut group = crit.benchmark_group("barriers");
        for c in CASES {
            group.throughput(Throughput::Elements(c.ops));
            group.bench_function(c.id, |b| b.iter_custom(|iters| time(c, iters)));
        }
        group.finish();
    }
    crit.final_summary();

    if bench_mode {
        let rounds = 7;
        let ns_iter = measure_interleaved(rounds, Duration::from_millis(150));
        print_table(&ns_iter, rounds);
    }
}
