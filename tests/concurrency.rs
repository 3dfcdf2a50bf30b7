//! Threads in compiled code (`tests/concurrency/`): spawn/join, `with atomic:`, locks,
//! `TransactionQueue`, printing inside transactions, errors in threads, `--gil`, `--threads N`,
//! `--stats` and the abort debug switch (`STMJIT_ABORT_PROBABILITY`, `STMJIT_BUDGET`).
//!
//! Every program here was checked under CPython with the oracle prelude
//! (`tests/oracle/run_python.py`) and under the reference interpreter (`stmjit run --interp`);
//! the `.out` files are CPython's output. Programs whose output depends on the schedule
//! (`printing.lang`, `thread_error.lang`) are checked structurally instead.
//!
//! Each run is killed after 120 s and the test fails: a deadlock or livelock is a failure,
//! not a hang.

mod scratch;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(120);

/// Environment of the abort tests: every commit of a non-inevitable transaction aborts with
/// probability 0.3, and transactions are short.
const ABORTS: &[(&str, &str)] = &[("STMJIT_ABORT_PROBABILITY", "0.3"), ("STMJIT_BUDGET", "50")];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/concurrency")
}

struct Run {
    stdout: String,
    stderr: String,
    code: Option<i32>,
}

impl Run {
    fn describe(&self) -> String {
        format!(
            "exit {:?}\n--- stdout (last 2000 bytes)\n{}\n--- stderr\n{}",
            self.code,
            tail(&self.stdout, 2000),
            tail(&self.stderr, 4000)
        )
    }
}

fn tail(s: &str, n: usize) -> &str {
    if s.len() <= n {
        return s;
    }
    let mut start = s.len() - n;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// Runs `stmjit run FLAGS NAME.lang ARGS` in `tests/concurrency/` with extra environment
/// variables; kills it and fails after [`TIMEOUT`].
fn run(name: &str, flags: &[&str], env: &[(&str, &str)], args: &[&str]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run")
        .args(flags)
        .arg(format!("{name}.lang"))
        .args(args)
        .current_dir(dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start stmjit");
    let mut out_pipe = child.stdout.take().unwrap();
    let mut err_pipe = child.stderr.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for stmjit") {
            break status;
        }
        if start.elapsed() > TIMEOUT {
            timed_out = true;
            let _ = child.kill();
            break child.wait().expect("wait for killed stmjit");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let r = Run {
        stdout: String::from_utf8_lossy(&out_reader.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&err_reader.join().unwrap()).into_owned(),
        code: status.code(),
    };
    assert!(
        !timed_out,
        "{name}.lang {flags:?} {env:?} did not finish within {TIMEOUT:?} (deadlock or livelock?)\n{}",
        r.describe()
    );
    r
}

fn expected(name: &str) -> String {
    std::fs::read_to_string(dir().join(format!("{name}.out"))).expect("expected output file")
}

/// Runs a program and checks its stdout against `NAME.out`, exit status 0 and (without
/// `--stats`) an empty stderr.
fn check(name: &str, flags: &[&str], env: &[(&str, &str)], args: &[&str]) -> Run {
    let r = run(name, flags, env, args);
    let want = expected(name);
    assert!(
        r.stdout == want && r.code == Some(0),
        "{name}.lang {flags:?} {env:?}: wrong result\n--- expected stdout\n{want}{}",
        r.describe()
    );
    if !flags.contains(&"--stats") {
        assert!(
            r.stderr.is_empty(),
            "{name}.lang {flags:?} {env:?}: unexpected stderr\n{}",
            r.describe()
        );
    }
    r
}

/// The numbers of a `--stats` report.
#[derive(Debug)]
struct Stats {
    commits: u64,
    aborts: u64,
    conflicts: u64,
    /// Transactions made inevitable.
    inevitable: u64,
    /// The per-site lines (`    <kind> conflict on <type> at ...`).
    sites: Vec<String>,
}

fn leading_number(line: &str, prefix: &str) -> Option<u64> {
    let rest = line.strip_prefix(prefix)?;
    let digits: String = rest.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn stats(r: &Run) -> Stats {
    let mut commits = None;
    let mut aborts = None;
    let mut conflicts = None;
    let mut inevitable = None;
    let mut sites = Vec::new();
    for line in r.stderr.lines() {
        if let Some(n) = leading_number(line, "  commits: ") {
            commits = Some(n);
        } else if let Some(n) = leading_number(line, "  aborts: ") {
            aborts = Some(n);
        } else if let Some(n) = leading_number(line, "  conflicts: ") {
            conflicts = Some(n);
        } else if let Some(n) = leading_number(line, "  inevitable transactions: ") {
            inevitable = Some(n);
        } else if line.starts_with("    ") && line.contains(" conflict on ") {
            sites.push(line.to_string());
        }
    }
    let missing =
        |what: &str| -> ! { panic!("no `{what}` line in the --stats report\n{}", r.describe()) };
    Stats {
        commits: commits.unwrap_or_else(|| missing("commits:")),
        aborts: aborts.unwrap_or_else(|| missing("aborts:")),
        conflicts: conflicts.unwrap_or_else(|| missing("conflicts:")),
        inevitable: inevitable.unwrap_or_else(|| missing("inevitable transactions:")),
        sites,
    }
}

// ---- 0. iteration ----

/// A `StopIteration` that ends an iteration (a user `__next__` under `for` and `sum`), the
/// `IndexError` that ends one by `__getitem__` (a list's, and a raised one), and a `raise`
/// caught in the frame that raised it do not make their transaction inevitable; the
/// exception that leaves the function whose loop began the transaction does, once per call
/// (the control: the counter of the report sees those). Short transactions, so that each
/// would be one more. Before, every raise but the first two kinds was inevitable (`raise`:
/// 31 of 32 transactions).
#[test]
fn exceptions_are_inevitable_only_when_they_leave_the_opener() {
    let env = &[("STMJIT_BUDGET", "100")];
    for mode in ["stop", "items", "raise"] {
        let s = stats(&check("stop_iteration", &["--stats"], env, &[mode]));
        assert!(s.commits >= 30, "{mode}: too few transactions: {s:?}");
        assert!(
            s.inevitable <= 2,
            "{mode}: a caught exception made transactions inevitable: {s:?}"
        );
    }
    let leave = stats(&check("stop_iteration", &["--stats"], env, &["leave"]));
    assert!(
        leave.inevitable >= 3000,
        "an exception leaving its transaction's opener is inevitable, but the report shows \
         {leave:?}"
    );
}

/// A builtin calling a JIT function with an entry poll many times (`sum` of an iterator
/// whose `__next__` calls a function, `sorted` with such a key) does not make two
/// transactions per call, one inevitable, once the budget runs out inside: the function's
/// entry poll makes no boundary when Rust calls it. Before: 46101 commits, 23048 inevitable
/// (24000 calls).
#[test]
fn a_builtin_calling_back_makes_no_transaction_per_call() {
    let env = &[("STMJIT_BUDGET", "100")];
    let s = stats(&check("callback_entry", &["--stats"], env, &[]));
    assert!(s.commits <= 2000, "transactions per call: {s:?}");
    assert!(
        s.inevitable <= 10,
        "inevitable transactions per call: {s:?}"
    );
}

/// A thread spinning in a loop with no call and no allocation answers requests at its
/// back-edge poll (one decrement of the budget word and a branch on its sign): with a budget of
/// 2^40 back-edges, only another thread's commit asking it to validate (commit log) or to
/// stop (without it) ends its transaction, and then it sees the write. A request lost or
/// unread at the poll hangs the run (it does with `STMJIT_BENCH_OMIT=poll`).
#[test]
fn a_tight_loop_answers_requests_at_its_poll() {
    for log in ["0", "1"] {
        let env = &[
            ("STMJIT_BUDGET", "1099511627776"),
            ("STMJIT_COMMIT_LOG", log),
        ];
        for threads in ["2", "4"] {
            check("spin_until_set", &["--threads", threads], env, &[]);
        }
    }
}

// ---- 1. a shared counter ----

#[test]
fn counter_stm_4_segments() {
    check("counter", &["--threads", "4"], &[], &[]);
}

#[test]
fn counter_stm_2_segments() {
    check("counter", &["--threads", "2"], &[], &[]);
}

#[test]
fn counter_gil() {
    check("counter", &["--gil"], &[], &[]);
}

#[test]
fn counter_with_aborts() {
    let r = check("counter", &["--threads", "4", "--stats"], ABORTS, &[]);
    let s = stats(&r);
    assert!(s.commits > 0, "no commits counted: {s:?}\n{}", r.describe());
    assert!(
        s.aborts > 0,
        "STMJIT_ABORT_PROBABILITY=0.3 caused no abort: {s:?}\n{}",
        r.describe()
    );
}

/// A shared big int (beyond 63 bits: a heap object replaced on every add) incremented by 4
/// threads: every add is kept, also when commits abort and retry.
#[test]
fn big_int_counter_keeps_every_add() {
    check("big_counter", &["--threads", "4"], &[], &[]);
    check("big_counter", &["--threads", "4"], ABORTS, &[]);
    check("big_counter", &["--gil"], &[], &[]);
}

// ---- 1b. counters shared by closures (cells) ----

#[test]
fn closure_counter_stm_4_segments() {
    check("closure_counter", &["--threads", "4"], &[], &[]);
}

#[test]
fn closure_counter_gil() {
    check("closure_counter", &["--gil"], &[], &[]);
}

#[test]
fn closure_counter_with_aborts() {
    let r = check(
        "closure_counter",
        &["--threads", "4", "--stats"],
        ABORTS,
        &[],
    );
    let s = stats(&r);
    assert!(
        s.aborts > 0,
        "STMJIT_ABORT_PROBABILITY=0.3 caused no abort: {s:?}\n{}",
        r.describe()
    );
}

// ---- 2. bank transfers ----

#[test]
fn bank_keeps_the_total() {
    check("bank", &["--threads", "4"], &[], &[]);
}

#[test]
fn bank_keeps_the_total_with_aborts() {
    check("bank", &["--threads", "4"], ABORTS, &[]);
}

#[test]
fn bank_keeps_the_total_gil() {
    check("bank", &["--gil"], &[], &[]);
}

// ---- 3. printing inside contended transactions ----

/// Every line of `printing.lang` appears exactly once and whole, each thread's lines in
/// increasing order, and in commit order (the counter value each line carries is its position).
fn check_printing(flags: &[&str], env: &[(&str, &str)]) {
    const THREADS: usize = 4;
    const LINES: usize = 200;
    let r = run("printing", flags, env, &[]);
    let ctx = || format!("printing.lang {flags:?} {env:?}\n{}", r.describe());
    assert_eq!(r.code, Some(0), "{}", ctx());
    assert!(
        r.stdout.ends_with('\n'),
        "output does not end with a newline\n{}",
        ctx()
    );
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(
        lines.len(),
        THREADS * LINES + 1,
        "wrong number of lines\n{}",
        ctx()
    );
    let pad = "x".repeat(50);
    let mut next = [0usize; THREADS];
    for (pos, line) in lines[..THREADS * LINES].iter().enumerate() {
        let bad = || format!("line {} is wrong: {line:?}\n{}", pos + 1, ctx());
        let (head, count) = line
            .rsplit_once(" #")
            .unwrap_or_else(|| panic!("{}", bad()));
        let mut words = head.split(' ');
        let (t, word, i, x) = (words.next(), words.next(), words.next(), words.next());
        assert!(
            words.next().is_none() && word == Some("line") && x == Some(&pad[..]),
            "{}",
            bad()
        );
        let k: usize = t
            .and_then(|t| t.strip_prefix('t'))
            .and_then(|k| k.parse().ok())
            .filter(|&k| k < THREADS)
            .unwrap_or_else(|| panic!("{}", bad()));
        let i: usize = i
            .and_then(|i| i.parse().ok())
            .unwrap_or_else(|| panic!("{}", bad()));
        assert_eq!(
            i,
            next[k],
            "thread {k}'s lines out of order or repeated: {}",
            bad()
        );
        next[k] += 1;
        let c: usize = count.parse().unwrap_or_else(|_| panic!("{}", bad()));
        assert_eq!(
            c,
            pos + 1,
            "lines not in commit order (counter values): {}",
            bad()
        );
    }
    assert_eq!(next, [LINES; THREADS], "{}", ctx());
    assert_eq!(lines[THREADS * LINES], "counter 800 800", "{}", ctx());
    if !flags.contains(&"--stats") {
        assert!(r.stderr.is_empty(), "unexpected stderr\n{}", ctx());
    }
}

#[test]
fn printing_is_whole_once_and_in_order() {
    check_printing(&["--threads", "4"], &[]);
}

#[test]
fn printing_is_whole_once_and_in_order_with_aborts() {
    check_printing(&["--threads", "4"], ABORTS);
}

#[test]
fn printing_gil() {
    check_printing(&["--gil"], &[]);
}

// ---- 4. TransactionQueue ----

#[test]
fn transaction_queue_runs_every_call_once() {
    check("txqueue", &["--threads", "4"], &[], &[]);
}

#[test]
fn transaction_queue_runs_every_call_once_on_2_segments() {
    check("txqueue", &["--threads", "2"], &[], &[]);
}

#[test]
fn transaction_queue_runs_every_call_once_with_aborts() {
    check("txqueue", &["--threads", "4"], ABORTS, &[]);
}

/// Queued calls of 0 to 3 and 7 arguments (kept flat in one list per queue round), arguments made
/// in the queuing transaction and moved by collections before the round (tiny nursery),
/// calls queued while others run, and a round inside `with atomic:`.
#[test]
fn transaction_queue_calls_of_every_arity() {
    check("txqueue_arity", &["--threads", "2"], &[], &[]);
    check("txqueue_arity", &["--threads", "1"], &[SMALL_NURSERY], &[]);
    check(
        "txqueue_arity",
        &["--threads", "4"],
        &[ABORTS, &[SMALL_NURSERY]].concat(),
        &[],
    );
}

/// A worker runs consecutive short queued calls in one transaction (up to 32), each call
/// still atomic, also when transactions abort and restart their calls; long calls commit
/// one by one. Before, each call was a transaction of its own: 2000 calls, 2000 commits.
#[test]
fn short_queued_calls_share_transactions() {
    for threads in ["1", "2"] {
        let s = stats(&check(
            "queue_batches",
            &["--threads", threads, "--stats"],
            &[],
            &["2000", "0"],
        ));
        assert!(s.commits < 500, "{threads} segments: {s:?}");
    }
    // Each long call (a loop of 200 000 iterations: well over the batch's time bound).
    let s = stats(&check(
        "queue_batches",
        &["--threads", "2", "--stats"],
        &[],
        &["0", "12", "200000"],
    ));
    assert!(s.commits >= 12, "long calls were batched: {s:?}");
    check(
        "queue_batches",
        &["--threads", "2"],
        ABORTS,
        &["2000", "12", "2000"],
    );
    check("queue_batches", &["--threads", "4"], ABORTS, &["2000", "0"]);
}

// ---- 5. disjoint writes commit without conflicts ----

#[test]
fn disjoint_list_indexes_do_not_conflict() {
    let r = check("disjoint_list", &["--threads", "2", "--stats"], &[], &[]);
    let s = stats(&r);
    assert_eq!(
        s.conflicts,
        0,
        "writes to disjoint halves of one list conflicted: {s:?}\n{}",
        r.describe()
    );
}

#[test]
fn disjoint_dict_keys_do_not_conflict() {
    let r = check("disjoint_dict", &["--threads", "2", "--stats"], &[], &[]);
    let s = stats(&r);
    assert_eq!(
        s.conflicts,
        0,
        "updates of disjoint existing keys of one dict conflicted: {s:?}\n{}",
        r.describe()
    );
}

/// Inserting *new* keys into one shared dict from two threads: the keys wait in each
/// transaction's overlay and are inserted at its commit (`vm/src/dict_overlay.rs`), so
/// the threads do not abort each other. Before, nearly every transaction conflicted on the
/// dict's counts (4568 aborts for 6161 commits); only growth and hash neighbours may now.
#[test]
fn new_dict_keys_from_two_threads_do_not_conflict() {
    let r = check(
        "disjoint_new_keys",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert!(
        s.commits >= 1000,
        "expected many short transactions: {s:?}\n{}",
        r.describe()
    );
    assert!(
        s.aborts * 20 <= s.commits,
        "inserting different new keys into one dict conflicted: {s:?}\n{}",
        r.describe()
    );
}

/// Two threads add 20 000 different members each to one shared set (ints and tuples), add
/// them again (a read only) and discard some: a set is a dict of its members, so the
/// threads do not abort each other (measured: 59 to 80 aborts for about 4 800 commits, on
/// the set's growth and hash neighbours), and the members come out right, also with forced
/// aborts and under `--gil`.
#[test]
fn new_set_members_from_two_threads_do_not_conflict() {
    let r = check(
        "disjoint_set",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert!(
        s.commits >= 1000,
        "expected many short transactions: {s:?}\n{}",
        r.describe()
    );
    assert!(
        s.aborts * 20 <= s.commits,
        "adding different members to one set conflicted: {s:?}\n{}",
        r.describe()
    );
    assert!(
        s.sites.iter().all(|l| l.contains(" on set")),
        "a conflict not on the set: {s:?}\n{}",
        r.describe()
    );
    check("disjoint_set", &["--threads", "2"], ABORTS, &[]);
    check("disjoint_set", &["--gil", "--threads", "2"], &[], &[]);
}

/// Every dict operation sees the keys its transaction inserted into a dict committed before
/// it (pending in the overlay until commit) where a serial run would: in one atomic block,
/// across short transactions, with forced aborts, with threads moving between segments and
/// under `--gil` (where inserts are direct).
#[test]
fn pending_dict_keys_behave_like_inserted_ones() {
    check("dict_overlay_ops", &["--threads", "2"], &[], &[]);
    check("dict_overlay_ops", &["--threads", "2"], ABORTS, &[]);
    check(
        "dict_overlay_ops",
        &["--threads", "3"],
        &[("STMJIT_MOVE_THREADS", "1"), ("STMJIT_BUDGET", "5")],
        &[],
    );
    check("dict_overlay_ops", &["--gil", "--threads", "2"], &[], &[]);
}

/// Every set operation sees the members its transaction added to a contended set (pending
/// until commit) where a serial run would: in atomic blocks, across short transactions, with
/// forced aborts, with threads moving between segments and under `--gil`.
#[test]
fn pending_set_members_behave_like_added_ones() {
    check(
        "set_overlay_ops",
        &["--threads", "2"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    check("set_overlay_ops", &["--threads", "2"], ABORTS, &[]);
    check(
        "set_overlay_ops",
        &["--threads", "3"],
        &[("STMJIT_MOVE_THREADS", "1"), ("STMJIT_BUDGET", "5")],
        &[],
    );
    check("set_overlay_ops", &["--gil", "--threads", "2"], &[], &[]);
}

/// Read-only list and dict methods (`keys`, `items`, `copy`, `index`...) on shared
/// containers do not conflict. They used to run on converted values and write the whole
/// container back: 109 aborts for 69 commits in this program, now none.
#[test]
fn read_only_container_methods_do_not_conflict() {
    let r = check(
        "readonly_methods",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert_eq!(
        s.conflicts,
        0,
        "read-only methods on shared containers conflicted: {s:?}\n{}",
        r.describe()
    );
}

/// `setdefault`, `update` and `extend` on one shared dict, each thread on its own existing
/// keys, do not conflict. They ran on converted values and wrote the whole dict back (699
/// conflicts for 284 commits in this program, and quadratic time); now they work in place.
#[test]
fn dict_update_methods_on_disjoint_keys_do_not_conflict() {
    let r = check(
        "disjoint_dict_methods",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert_eq!(
        s.conflicts,
        0,
        "setdefault/update/extend of disjoint keys conflicted: {s:?}\n{}",
        r.describe()
    );
}

// ---- 6. the same key: conflicts, and still the serial result ----

#[test]
fn same_dict_key_gives_the_serial_result() {
    let r = check(
        "same_key",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    // The machine may run the two threads one after the other: no lower bound on conflicts.
    eprintln!(
        "same_key: {} commits, {} aborts, {} conflicts",
        s.commits, s.aborts, s.conflicts
    );
    for site in &s.sites {
        assert!(
            site.contains("conflict on dict"),
            "a conflict site that is not the dict: {site}\n{}",
            r.describe()
        );
    }
}

// ---- 6b. the conflict sites of `--stats` and `--stats-json` ----

/// Runs `stats_conflict.lang` (two threads incrementing one counter) with `--stats` and
/// `--stats-json` until its threads overlapped and conflicted (a loaded machine may run them
/// one after the other): the run, and the JSON it wrote.
fn conflicting_stats_run(tag: &str) -> (Run, serde_json::Value) {
    stats_run_until("stats_conflict", tag, &[("STMJIT_BUDGET", "20")], |r, v| {
        stats(r).aborts > 0 && !v["conflict_sites"].as_array().unwrap().is_empty()
    })
}

/// Runs program `name` on two threads with `--stats` and `--stats-json` and `env` until
/// `done` holds of the run and its JSON (at most 5 times: a loaded machine may run the
/// threads one after the other).
fn stats_run_until(
    name: &str,
    tag: &str,
    env: &[(&str, &str)],
    done: impl Fn(&Run, &serde_json::Value) -> bool,
) -> (Run, serde_json::Value) {
    let json = scratch::dir("stats").join(format!("{tag}.json"));
    let json_arg = json.to_str().expect("temp path is UTF-8").to_string();
    for _ in 0..5 {
        let r = check(
            name,
            &["--threads", "2", "--stats", "--stats-json", &json_arg],
            env,
            &[],
        );
        let text = std::fs::read_to_string(&json).expect("--stats-json wrote no file");
        let _ = std::fs::remove_file(&json);
        let v: serde_json::Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("--stats-json wrote bad JSON ({e}):\n{text}"));
        if done(&r, &v) {
            return (r, v);
        }
    }
    panic!("{name}.lang: not the conflicts wanted in 5 runs of two threads");
}

/// A side line of a conflict row (`      read at F:L:C by the aborted one`): its verb, its
/// position and who; None for other lines.
fn side_of(l: &str) -> Option<(&str, &str, &str)> {
    let rest = l.strip_prefix("      ")?;
    let (verb, rest) = rest.split_once(" at ")?;
    let (pos, who) = rest.split_once(" by ")?;
    Some((verb, pos, who))
}

/// Whether a side line's verb and actor go together: the winner `written` (or `read`, an
/// inevitable reader; `running`, where only its position is known) by a `... transaction`;
/// the loser `read`, `written` or `noticed` (where it learnt of its abort) by `the aborted
/// one`.
fn labelled(verb: &str, who: &str) -> bool {
    match who {
        "the aborted one" => ["read", "written", "noticed"].contains(&verb),
        "the committing transaction" | "the winning transaction" => {
            ["written", "running"].contains(&verb)
        }
        "the inevitable transaction" => verb == "read",
        _ => false,
    }
}

/// Line number (1-based) of the line of `stats_conflict.lang` that is `text` once trimmed.
fn line_of(text: &str) -> u64 {
    let src = std::fs::read_to_string(dir().join("stats_conflict.lang")).unwrap();
    let i = src
        .lines()
        .position(|l| l.trim() == text)
        .expect("line in program");
    i as u64 + 1
}

/// Each conflict row names its two sides in words and quotes their source lines: the
/// counter's one write is the winner's site, and the loser's read or write is there too
/// (never only where it noticed the abort); the two definitions are printed.
#[test]
fn stats_label_and_quote_both_sides_of_a_conflict() {
    let (r, _) = conflicting_stats_run("text");
    let write = line_of("box.n += 1");
    let src = std::fs::read_to_string(dir().join("stats_conflict.lang")).unwrap();
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert!(
        r.stderr.contains("    (a conflict: ") && r.stderr.contains("an abort: "),
        "no definitions of conflicts and aborts\n{}",
        r.describe()
    );
    let row = lines
        .iter()
        .position(|l| l.starts_with("    ") && l.contains(" conflict on "))
        .unwrap_or_else(|| panic!("no conflict row\n{}", r.describe()));
    let mut saw_write = false;
    for (i, l) in lines.iter().enumerate().skip(row) {
        let Some((verb, pos, who)) = side_of(l) else {
            continue;
        };
        assert!(
            labelled(verb, who),
            "unlabelled side: {l}\n{}",
            r.describe()
        );
        // The aborted side of a write/write conflict names its own write too.
        assert_ne!(verb, "noticed", "{l}\n{}", r.describe());
        let mut parts = pos.split(':');
        assert_eq!(parts.next(), Some("stats_conflict.lang"), "{l}");
        let line: u64 = parts.next().unwrap().parse().unwrap();
        let quoted = lines.get(i + 1).map(|q| q.trim()).unwrap_or("");
        let want = src.lines().nth(line as usize - 1).unwrap().trim();
        assert_eq!(
            quoted,
            want,
            "the {verb} side quotes the wrong line\n{}",
            r.describe()
        );
        if verb == "written" || verb == "read" {
            assert_eq!(
                line,
                write,
                "the counter is read and written at `box.n += 1` only: {l}\n{}",
                r.describe()
            );
            saw_write = true;
        }
    }
    assert!(
        saw_write,
        "no `written at` or `read at` side\n{}",
        r.describe()
    );
    let lost = lines
        .iter()
        .find(|l| l.starts_with("  time lost to aborts: "))
        .unwrap();
    assert!(
        lost.contains("% of the ") && lost.contains(" threads spent in transactions)"),
        "no share of the time lost: {lost}"
    );
}

/// `--stats-json` writes the figures of `--stats`: the same counts, the share of time lost,
/// the definitions, and each conflict site with both sides and their source text.
#[test]
fn stats_json_has_the_figures_and_sites() {
    let (r, v) = conflicting_stats_run("json");
    let s = stats(&r);
    assert_eq!(v["commits"].as_u64(), Some(s.commits), "{v}");
    assert_eq!(v["aborts"].as_u64(), Some(s.aborts), "{v}");
    assert_eq!(v["conflicts"].as_u64(), Some(s.conflicts), "{v}");
    assert_eq!(v["segments"].as_u64(), Some(2), "{v}");
    assert_eq!(v["mode"], "stm", "{v}");
    for k in ["write_write", "write_read", "other"] {
        assert!(
            v["aborts_by_cause"][k].is_u64(),
            "no aborts_by_cause.{k}: {v}"
        );
    }
    for k in ["abort_lost_ms", "transaction_ms", "sync_pause_ms"] {
        assert!(v[k].as_f64().is_some_and(|x| x >= 0.0), "no {k}: {v}");
    }
    let share = v["abort_lost_percent"].as_f64().unwrap();
    assert!(share > 0.0 && share <= 100.0, "lost share {share}: {v}");
    assert!(v["definitions"]["conflicts"].is_string() && v["definitions"]["aborts"].is_string());
    let sites = v["conflict_sites"].as_array().unwrap();
    let mut aborts = 0;
    for site in sites {
        aborts += site["aborts"].as_u64().unwrap();
        assert!(
            site["kind"] == "write/write" || site["kind"] == "write/read",
            "{site}"
        );
        assert!(
            site["type"].is_string() && site["lost_ms"].is_f64(),
            "{site}"
        );
        for side in ["winner", "loser"] {
            let p = &site[side]["at"];
            assert!(site[side]["by"].is_string(), "{site}");
            assert_eq!(p["file"], "stats_conflict.lang", "{site}");
            let line = p["line"].as_u64().unwrap();
            assert!(p["col"].as_u64().is_some_and(|c| c >= 1), "{site}");
            let src = std::fs::read_to_string(dir().join("stats_conflict.lang")).unwrap();
            let want = src.lines().nth(line as usize - 1).unwrap().trim();
            assert_eq!(p["text"], want, "{site}");
        }
    }
    assert!(
        aborts <= s.aborts,
        "sites count {aborts} aborts of {}: {v}",
        s.aborts
    );
    assert!(
        sites.iter().any(
            |s| s["winner"]["at"]["line"].as_u64() == Some(line_of("box.n += 1"))
                && s["winner"]["access"] == "written"
        ),
        "no site written at the counter's line: {v}"
    );
}

/// The sides of every conflict site of `read_sites.lang` (text and JSON): one thread writes
/// at `# WRITE X` lines, the other reads at `# READ X` lines, so each row must be a
/// write/read conflict written at a WRITE line by the committing transaction and read at
/// the READ line of the same X by the aborted one, on the object X names
/// (`Account.balance`, `dict['sum']`, `list[4 or 5]`: the list's item 4 shares its 16-byte
/// card with item 3 or with item 5). Returns the X of the rows.
fn check_read_sites(r: &Run, v: &serde_json::Value) -> Vec<String> {
    let src = std::fs::read_to_string(dir().join("read_sites.lang")).unwrap();
    let tag = |line: u64, what: &str| -> Option<String> {
        let l = src.lines().nth(line as usize - 1)?;
        let (_, x) = l.split_once(&format!("# {what} "))?;
        Some(x.trim().to_string())
    };
    let lines: Vec<&str> = r.stderr.lines().collect();
    let mut text_rows = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some((verb, pos, who)) = side_of(l) else {
            continue;
        };
        let line: u64 = pos.split(':').nth(1).unwrap().parse().unwrap();
        let want = if who == "the aborted one" {
            ("read", "READ")
        } else {
            ("written", "WRITE")
        };
        assert_eq!(verb, want.0, "{l}\n{}", r.describe());
        let x = tag(line, want.1)
            .unwrap_or_else(|| panic!("not a {} line: {l}\n{}", want.1, r.describe()));
        let quoted = lines.get(i + 1).map(|q| q.trim()).unwrap_or("");
        assert_eq!(quoted, src.lines().nth(line as usize - 1).unwrap().trim());
        text_rows.push(x);
    }
    assert!(
        text_rows.chunks(2).all(|p| p.len() == 2 && p[0] == p[1]),
        "a row whose read and write are of different objects: {text_rows:?}\n{}",
        r.describe()
    );
    let mut names = Vec::new();
    for site in v["conflict_sites"].as_array().unwrap() {
        assert_eq!(site["kind"], "write/read", "{site}");
        assert_eq!(site["winner"]["access"], "written", "{site}");
        assert_eq!(site["winner"]["by"], "the committing transaction", "{site}");
        assert_eq!(site["loser"]["access"], "read", "{site}");
        assert_eq!(site["loser"]["by"], "the aborted one", "{site}");
        let w = tag(site["winner"]["at"]["line"].as_u64().unwrap(), "WRITE");
        let rd = tag(site["loser"]["at"]["line"].as_u64().unwrap(), "READ");
        assert!(w.is_some() && w == rd, "sides of different objects: {site}");
        let w = w.unwrap();
        let objects = site["objects"].as_array().unwrap();
        assert_eq!(objects.len(), 1, "{site}");
        let name = objects[0]["name"].as_str().unwrap_or("");
        let (object, type_name) = match w.as_str() {
            "balance" => ("Account.balance", "instance"),
            "sum" => ("dict['sum']", "dict"),
            "cell" if ["list[3 or 4]", "list[4 or 5]"].contains(&name) => (name, "list"),
            _ => panic!("unknown tag {w}, or the list item is not named: {site}"),
        };
        assert_eq!(site["type"], type_name, "{site}");
        assert_eq!(name, object, "the object is not named {object}: {site}");
        let text_row = format!(" conflict on {object} ({type_name}): ");
        assert!(
            r.stderr.contains(&text_row),
            "no row `{text_row}`\n{}",
            r.describe()
        );
        names.push(w);
    }
    names.sort();
    names.dedup();
    names
}

/// `--stats` names where the aborted transaction *read* the conflicting object, not where
/// it learnt of the abort: for an attribute (`acct.balance`), a dict item (`totals["sum"]`)
/// and a list item (`cells[4]`), each read and written at lines of its own.
/// Every run is checked; the objects may conflict in different runs (on a loaded
/// machine one phase's threads often run one after the other; with the commit log, a reader
/// of the attribute aborts only when it validates in the middle of a transaction, so
/// `balance` conflicts are rarer: 15 to 70 a run against hundreds without it, and none in 4
/// runs during a full suite).
#[test]
fn stats_name_where_the_aborted_transaction_read() {
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..12 {
        // Compiled before the run (`STMJIT_EAGER`): compiled at its first call, the reader
        // of a phase may still be compiling when the writer's loop ends, and no conflict
        // happens.
        let env = [("STMJIT_BUDGET", "20"), ("STMJIT_EAGER", "1")];
        let (r, v) = stats_run_until("read_sites", "reads", &env, |_, v| {
            !v["conflict_sites"].as_array().unwrap().is_empty()
        });
        seen.extend(check_read_sites(&r, &v));
        if seen.len() == 3 {
            break;
        }
    }
    assert_eq!(Vec::from_iter(seen), ["balance", "cell", "sum"]);
}

/// Forced aborts (`STMJIT_ABORT_PROBABILITY`) are not conflicts: they add no rows, and the
/// rows of real conflicts still name the right read (a transaction retried after a forced
/// abort reads again; the read-site table is only trusted for the running transaction).
#[test]
fn forced_aborts_do_not_make_bogus_read_sites() {
    // Compiled before the run, as in the test above.
    let env = [ABORTS, &[("STMJIT_EAGER", "1")]].concat();
    let (r, v) = stats_run_until("read_sites", "forced", &env, |r, v| {
        stats(r).aborts > 0 && !v["conflict_sites"].as_array().unwrap().is_empty()
    });
    assert!(v["injected_aborts"].as_u64().unwrap() > 0, "{v}");
    check_read_sites(&r, &v);
}

// ---- 7. deadlock-prone patterns finish ----

#[test]
fn locks_in_opposite_orders_finish() {
    check("deadlock_locks", &["--threads", "4"], &[], &[]);
}

#[test]
fn locks_in_opposite_orders_finish_with_aborts() {
    check("deadlock_locks", &["--threads", "2"], ABORTS, &[]);
}

#[test]
fn locks_in_opposite_orders_finish_gil() {
    check("deadlock_locks", &["--gil"], &[], &[]);
}

#[test]
fn atomic_read_then_write_in_opposite_orders_finish() {
    check("deadlock_atomic", &["--threads", "4"], &[], &[]);
}

#[test]
fn atomic_read_then_write_in_opposite_orders_finish_with_aborts() {
    check("deadlock_atomic", &["--threads", "2"], ABORTS, &[]);
}

// ---- 8. an error in a thread ----

fn check_thread_error(flags: &[&str]) {
    let r = run("thread_error", flags, &[], &[]);
    let ctx = || format!("thread_error.lang {flags:?}\n{}", r.describe());
    assert_eq!(r.code, Some(1), "{}", ctx());
    let err: Vec<&str> = r.stderr.lines().collect();
    assert!(
        err.first()
            .is_some_and(|l| l.starts_with("error: ZeroDivisionError:")),
        "stderr does not start with the thread's error\n{}",
        ctx()
    );
    assert_eq!(
        err.get(1).copied(),
        Some("  at thread_error.lang:8:12 in f"),
        "the thread's call stack\n{}",
        ctx()
    );
    // The error ends the thread only: `join()` raises it after all the main thread's lines,
    // whole, in order, and nothing after the failed join.
    assert_eq!(
        r.stdout.lines().count(),
        2000,
        "the main thread's lines before the join\n{}",
        ctx()
    );
    assert!(
        err.iter()
            .any(|l| l.starts_with("  at thread_error.lang:15:1 in <module>")),
        "the join's frame\n{}",
        ctx()
    );
    let pad = "y".repeat(40);
    for (i, line) in r.stdout.lines().enumerate() {
        assert_eq!(
            line,
            format!("main line {i} {pad}"),
            "main thread output garbled at line {}\n{}",
            i + 1,
            ctx()
        );
    }
}

#[test]
fn error_in_a_thread_is_raised_by_join() {
    check_thread_error(&["--threads", "4"]);
}

#[test]
fn error_in_a_thread_is_raised_by_join_gil() {
    check_thread_error(&["--gil"]);
}

// ---- 9. join values; more threads than segments ----

#[test]
fn join_returns_values_with_more_threads_than_segments() {
    check("join_values", &["--threads", "2"], &[], &[]);
}

#[test]
fn join_returns_values_with_one_segment() {
    check("join_values", &["--threads", "1"], &[], &[]);
}

#[test]
fn join_returns_values_with_aborts() {
    check("join_values", &["--threads", "2"], ABORTS, &[]);
}

/// A thread's transactions may run in any free segment. `STMJIT_MOVE_THREADS=1` makes every
/// transaction begin in another segment than the previous one when one is free: JIT code
/// must follow with its segment base (before the fix, r15 kept the old segment's base after
/// a boundary inside a function, and every run here lost updates or failed).
#[test]
fn threads_move_between_segments() {
    const MOVE: &[(&str, &str)] = &[("STMJIT_MOVE_THREADS", "1"), ("STMJIT_BUDGET", "20")];
    check("segment_moves", &["--threads", "3"], MOVE, &[]);
    check("segment_moves", &["--threads", "12"], MOVE, &[]);
    check(
        "segment_moves",
        &["--threads", "3", "--segment-base", "r15"],
        MOVE,
        &[],
    );
    check("join_values", &["--threads", "4"], MOVE, &[]);
}

/// The same with aborts: a restart may begin in another segment too.
#[test]
fn threads_move_between_segments_with_aborts() {
    check(
        "segment_moves",
        &["--threads", "3"],
        &[
            ("STMJIT_MOVE_THREADS", "1"),
            ("STMJIT_ABORT_PROBABILITY", "0.3"),
            ("STMJIT_BUDGET", "20"),
        ],
        &[],
    );
}

/// More threads than segments, without the switch: segments change hands as they free up.
#[test]
fn more_threads_than_segments_with_short_transactions() {
    check(
        "segment_moves",
        &["--threads", "2"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
}

/// `join` inside `with atomic:`/`with lock:` gives the GIL result (the block runs after the
/// thread ended: it restarts once the thread is done) instead of hanging (before: the block
/// waited for a thread that could start only when the block's transaction committed) or
/// letting the thread's writes in between the block's reads.
#[test]
fn join_inside_atomic_blocks() {
    check("join_in_atomic", &["--threads", "2"], &[], &[]);
    check("join_in_atomic", &["--threads", "1"], &[], &[]);
    check("join_in_atomic", &["--gil"], &[], &[]);
    check("join_in_atomic", &["--threads", "2"], ABORTS, &[]);
}

/// Joining, inside an atomic block, threads spawned in that same block gives Python's answer
/// (they start at the first such join, which ends the block's atomicity there; the rest of
/// the block runs after them): not an error, not a hang, also with one segment and aborts.
#[test]
fn join_of_threads_spawned_in_the_same_atomic_block() {
    check("join_spawned_in_atomic", &["--threads", "2"], &[], &[]);
    check("join_spawned_in_atomic", &["--threads", "1"], &[], &[]);
    check("join_spawned_in_atomic", &["--gil"], &[], &[]);
    check("join_spawned_in_atomic", &["--threads", "2"], ABORTS, &[]);
}

/// A join of a thread started earlier keeps the joiner's transaction restartable while it
/// has written and spawned nothing: of a running thread, the transaction aborts, waits
/// outside and runs again (the join then finds the thread ended); of an ended one, it brings
/// its view up to the thread's last commit. Exact results (slots read right after each
/// join) in both commit modes, with forced aborts and a tiny nursery, under `--gil`, with
/// rounds in a function and at module level (where the loop's global variables are written
/// before the joins: those commit first). Before, every join committed and left the rest of
/// the transaction without restart point, inevitable: 161 inevitable transactions for the
/// 160 joins in a function.
#[test]
fn joins_of_started_threads_keep_a_restart_point() {
    for threads in ["1", "2"] {
        let s = stats(&check(
            "join_running",
            &["--threads", threads, "--stats"],
            &[],
            &["20", "20000", "function"],
        ));
        assert!(s.inevitable <= 3, "{threads} segments: {s:?}");
    }
    check("join_running", &["--threads", "2"], ABORTS, &[]);
    check(
        "join_running",
        &["--threads", "4"],
        &[ABORTS, &[SMALL_NURSERY]].concat(),
        &["20", "20000", "function"],
    );
    check(
        "join_running",
        &["--threads", "2"],
        &[("STMJIT_COMMIT_LOG", "0")],
        &[],
    );
    check("join_running", &["--gil"], &[], &[]);
}

/// The main thread's transactions that a `--trace` run of `name` on 2 segments made
/// inevitable.
fn main_thread_inevitable(name: &str, args: &[&str]) -> usize {
    let trace = std::env::temp_dir().join(format!(
        "stmjit-{name}-{}-{}.json",
        std::process::id(),
        args.len()
    ));
    let file = trace.to_str().expect("a UTF-8 temporary path");
    check(name, &["--threads", "2", "--trace", file], &[], args);
    let text = std::fs::read_to_string(&trace).expect("the trace file");
    let _ = std::fs::remove_file(&trace);
    let v: serde_json::Value = serde_json::from_str(&text).expect("trace JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    let main = events
        .iter()
        .find(|e| e["name"] == "thread_name" && e["args"]["name"] == "main")
        .map(|e| e["tid"].clone())
        .expect("the main thread's track");
    events
        .iter()
        .filter(|e| e["tid"] == main && e["cat"] == "transaction")
        .filter(|e| e["args"]["inevitable"] == true)
        .count()
}

/// A join of a running thread right after a write commits first (the thread waits for that
/// write: each one here spins until the joiner sets its flag), and the transaction after it
/// restarts at the join's statement if it aborts, instead of being inevitable, when the
/// statement's first effect is the join of a name (`t.join()`, `v = t.join()`,
/// `v += t.join()`, `v = v + f(t.join())[1]`: running it again repeats nothing committed).
/// The main thread's inevitable transactions are then the joins of `ts[4]` (one per round,
/// a receiver that is not a name) and at most 2 others, not one per join: before, 31 and 32
/// of 6 rounds. Exact results (no statement counted twice after a restart) with forced
/// aborts, a tiny nursery, on 1, 2, 4 and 16 segments, in both commit modes and under
/// `--gil`, with the joins' variables locals in a function (a float local kept unboxed
/// among them) and globals at module level.
#[test]
fn joins_after_a_write_restart_at_their_statement() {
    let name = "join_after_write";
    for args in [&["6", "function"][..], &["6"]] {
        let n = main_thread_inevitable(name, args);
        assert!(
            n <= 6 + 2,
            "{args:?}: {n} inevitable transactions in the main thread"
        );
        check(name, &["--threads", "2"], ABORTS, args);
        check(
            name,
            &["--threads", "4"],
            &[ABORTS, &[SMALL_NURSERY]].concat(),
            args,
        );
        check(name, &["--threads", "1"], &[], args);
        check(name, &["--threads", "16"], ABORTS, args);
        check(
            name,
            &["--threads", "2"],
            &[("STMJIT_COMMIT_LOG", "0")],
            args,
        );
        check(name, &["--gil"], &[], args);
    }
}

/// A join of a running thread right after a write, in a `finally` body with a `try` of its
/// own (compiled once for every way out, `compile/finally.rs`), is a restart point: a
/// restart there finds why the body runs (its normal end, a pending `return` value,
/// exception, `break` or `continue`) in its frame slot, and goes on that way at the body's
/// end. Exact results with forced aborts (also with a tiny nursery and under the IR
/// verifier), on 1, 2 and 16 segments and under `--gil`.
#[test]
fn joins_in_finally_bodies_restart_with_their_pending_exit() {
    let name = "finally_join";
    check(name, &["--threads", "2"], ABORTS, &[]);
    check(
        name,
        &["--threads", "4"],
        &[ABORTS, &[SMALL_NURSERY, ("STMJIT_VERIFY", "1")]].concat(),
        &[],
    );
    check(name, &["--threads", "1"], &[], &[]);
    check(name, &["--threads", "16"], ABORTS, &[]);
    check(name, &["--gil"], &[], &[]);
}

/// Joining a running writer thread inside an atomic block that can no longer restart (it
/// called `shutdown()`: its transaction is inevitable) raises RuntimeError, in both commit
/// modes, on 1, 2 and 16 segments, under `--gil` and with aborts; joining an ended thread or
/// one spawned in the block still works there, and so does joining in a block that raised
/// and caught an exception (it runs again after the thread: no longer inevitable). Before,
/// the join waited inside the inevitable transaction while the thread's writer commit waited
/// for it (it stops the world, or appends only once no transaction is inevitable): a hang.
#[test]
fn join_of_a_running_thread_in_an_inevitable_block_raises() {
    let name = "join_in_inevitable";
    for log in ["0", "1"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        check(name, &["--threads", "2"], &[log], &[]);
        check(name, &["--threads", "1"], &[log], &[]);
        check(name, &["--threads", "16"], &[log], &[]);
        check(name, &["--gil"], &[log], &[]);
        check(name, &["--threads", "2"], &[log, ABORTS[0], ABORTS[1]], &[]);
    }
}

/// A class attribute assigned by one thread reaches the method calls of another that had
/// the old method cached (before: the cache was refilled with the old method between the
/// assignment and its commit, and the watcher never saw the change). With one segment the
/// spinning main thread must also let the watcher have the segment (first come, first served).
#[test]
fn class_attribute_changes_reach_other_threads() {
    check("class_change", &["--threads", "2"], &[], &[]);
    check("class_change", &["--threads", "1"], &[], &[]);
    check("class_change", &["--gil"], &[], &[]);
    check("class_change", &["--threads", "2"], ABORTS, &[]);
}

/// Method-call sites cache `class → function` (several classes per site) and call it with
/// no lookup: a base-class method replaced by one thread, and then shadowed by an instance
/// attribute, reaches the other threads' calls at such a site once committed, and the
/// assigning transaction sees its own assignment at every call even while the others fill
/// the site from before it (`method_change.lang` checks both: a wrong entry spins forever
/// or prints another sum).
#[test]
fn method_changes_reach_polymorphic_call_sites() {
    for _ in 0..3 {
        check("method_change", &["--threads", "2"], &[], &[]);
    }
    check("method_change", &["--threads", "4"], &[], &[]);
    check("method_change", &["--threads", "1"], &[], &[]);
    check("method_change", &["--gil"], &[], &[]);
    check("method_change", &["--threads", "2"], ABORTS, &[]);
}

/// Instantiations at a class call site in other threads see a replaced `__init__` once its
/// assignment commits, and the assigning transaction sees it at once (`init_change.lang`:
/// a stale site entry spins forever or prints another sum).
#[test]
fn init_changes_reach_class_call_sites() {
    for _ in 0..3 {
        check("init_change", &["--threads", "2"], &[], &[]);
    }
    check("init_change", &["--threads", "4"], &[], &[]);
    check("init_change", &["--gil"], &[], &[]);
    check("init_change", &["--threads", "2"], ABORTS, &[]);
}

// ---- 10. elided write-barrier flag tests ----

/// A small nursery: minor collections in the middle of methods (see `elided_stores.lang`).
const SMALL_NURSERY: (&str, &str) = ("STMJIT_NURSERY", "4096");

/// Stores into `self` after the first of a region skip the flag test (`jit/src/compile`):
/// shared committed records stay consistent, and fresh records written across a minor
/// collection in a helper keep their strings (without the slow path's repair of the flag
/// test, some came back dangling with this nursery).
#[test]
fn elided_write_barriers_keep_every_store() {
    check("elided_stores", &["--threads", "4"], &[SMALL_NURSERY], &[]);
    check("elided_stores", &["--threads", "1"], &[SMALL_NURSERY], &[]);
    check("elided_stores", &["--threads", "4"], &[], &[]);
    check("elided_stores", &["--gil"], &[SMALL_NURSERY], &[]);
}

#[test]
fn elided_write_barriers_keep_every_store_with_aborts() {
    let env = [ABORTS[0], ABORTS[1], SMALL_NURSERY];
    check("elided_stores", &["--threads", "4"], &env, &[]);
}

// ---- 11. read markers kept across calls ----

/// After a call, JIT code keeps the read markers of its region (`jit/src/compile/barriers.rs`,
/// "Marks across calls"): the call made no boundary, or the caller goes on in an inevitable
/// transaction, which no writer commit may overtake in either commit mode; a join
/// statement's join restarts in the caller, so the markers are stored again after it. Readers
/// of a pair that writers keep equal read it again across safe points after such a call and
/// count torn reads (`marks_across_calls.lang`): budgets that make a boundary in the called
/// loop, forced aborts, both commit modes, 1, 2 and 16 segments. Without the rule in the
/// stop-the-world mode (writers committed over an inevitable reader's unmarked reads), the
/// readers saw torn pairs in 3 runs of 8 (`readers`, `STMJIT_COMMIT_LOG=0`,
/// `STMJIT_BUDGET=50`, 2 and 4 segments); `runtime/tests/commitlog.rs` checks the rule
/// itself, deterministically. (The generic call of a join statement's join stores the
/// markers again after it anyway, as every generic method call does.)
#[test]
fn read_markers_kept_across_calls_see_no_torn_pair() {
    check("marks_across_calls", &["--threads", "2"], &[ABORTS[1]], &[]);
    for log in ["1", "0"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        // The readers three times: a torn pair shows in some runs only.
        for who in ["readers", "readers", "readers", "joiner"] {
            no_torn_pair(&["--threads", "2"], &[log, ABORTS[1]], &["3000", who]);
        }
        no_torn_pair(&["--threads", "4"], &[log, ABORTS[0], ABORTS[1]], &["1000"]);
        no_torn_pair(&["--threads", "16"], &[log, ABORTS[1]], &["1000"]);
        no_torn_pair(&["--threads", "1"], &[log, ABORTS[1]], &["1000"]);
        no_torn_pair(&["--threads", "2"], &[log], &["1000"]);
    }
}

/// Runs `marks_across_calls.lang` (its size and readers in `args`): no torn pair, and the
/// pair equal at the end.
fn no_torn_pair(flags: &[&str], env: &[(&str, &str)], args: &[&str]) {
    program_sees_no_torn_pair("marks_across_calls", flags, env, args);
}

/// Runs the torn-pair reader program `name` (`marks_across_calls.lang`,
/// `marks_into_branches.lang` or `marks_held_in_loops.lang`): no torn pair, and the pair equal at the end.
fn program_sees_no_torn_pair(name: &str, flags: &[&str], env: &[(&str, &str)], args: &[&str]) {
    let r = run(name, flags, env, args);
    assert!(
        r.code == Some(0) && r.stdout == "torn 0\npair True\n",
        "{name}.lang {flags:?} {env:?} {args:?}\n{}",
        r.describe()
    );
}

/// The branches of an `if` keep the read marks of its condition
/// (`jit/src/compile/barriers.rs`, `enter_branch_target`), also where the condition's generic
/// path ran user code that ended the transaction (`__lt__` and `__bool__` that spin through
/// polls): readers mark a pair in (or before) the condition, read it again in the branch
/// without marking across a safe point, and count torn reads (`marks_into_branches.lang`):
/// budgets that make a boundary in the spin, forced aborts, both commit modes, 1, 2, 4 and
/// 16 segments.
#[test]
fn read_marks_carried_into_branches_see_no_torn_pair() {
    check(
        "marks_into_branches",
        &["--threads", "2"],
        &[ABORTS[1]],
        &[],
    );
    for log in ["1", "0"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        for threads in ["2", "2", "4", "16", "1"] {
            program_sees_no_torn_pair(
                "marks_into_branches",
                &["--threads", threads],
                &[log, ABORTS[0], ABORTS[1]],
                &["1000", "3"],
            );
        }
    }
}

/// Loops hold the read markers of the locals they never assign (`jit/src/compile/barriers.rs`,
/// "Marks held around loops"): marked before the loop and again after each boundary that
/// restarts in the frame (the loop's poll, an inner loop's poll, the restart after an abort),
/// not in the body. Readers read a pair that writers keep equal in each iteration, with a
/// validation between the two reads (`marks_held_in_loops.lang`): tiny budgets, so that the
/// polls end the transaction often, forced aborts, both commit modes, 1, 2, 4 and 16
/// segments. With the poll's slow path not marking the held locals again, the readers saw
/// torn pairs (57 and 712 in 2 of 4 runs with the commit log, budgets 50 and 2).
#[test]
fn read_marks_held_around_loops_see_no_torn_pair() {
    check(
        "marks_held_in_loops",
        &["--threads", "2"],
        &[ABORTS[1]],
        &[],
    );
    for log in ["1", "0"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        for budget in ["2", "50"] {
            let budget = ("STMJIT_BUDGET", budget);
            program_sees_no_torn_pair(
                "marks_held_in_loops",
                &["--threads", "2"],
                &[log, budget],
                &["3000", "3"],
            );
        }
        for threads in ["2", "4", "16", "1"] {
            program_sees_no_torn_pair(
                "marks_held_in_loops",
                &["--threads", threads],
                &[log, ABORTS[0], ABORTS[1]],
                &["1000", "3"],
            );
        }
    }
}

// ---- the programs' expected outputs agree with the reference interpreter ----

/// The `.out` files come from CPython; the interpreter (threads run one after the other)
/// must give the same, so that a failure above is the JIT's.
#[test]
fn expected_outputs_agree_with_the_interpreter() {
    for name in [
        "spin_until_set",
        "stop_iteration",
        "callback_entry",
        "counter",
        "closure_counter",
        "bank",
        "txqueue",
        "disjoint_list",
        "disjoint_dict",
        "disjoint_new_keys",
        "disjoint_set",
        "set_overlay_ops",
        "dict_overlay_ops",
        "readonly_methods",
        "init_change",
        "same_key",
        "deadlock_locks",
        "deadlock_atomic",
        "join_values",
        "segment_moves",
        "class_change",
        "method_change",
        "elided_stores",
        "many_threads_few_segments",
        "exceptions",
        "keyerror_loop",
        "txqueue_keyerror",
        "doomed_raise",
    ] {
        check(name, &["--interp"], &[], &[]);
    }
    check_printing(&["--interp"], &[]);
    check_thread_error(&["--interp"]);
}

/// Leaving `with atomic:`/`with lock:` by `return`, `break` and `continue` ends the block:
/// with short transactions the runtime goes on committing at polls after it (a block left
/// open would keep the whole rest of the program in one transaction: a handful of commits).
#[test]
fn leaving_atomic_blocks_early_ends_them() {
    let r = check(
        "leave_atomic",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert!(
        s.commits >= 100,
        "only {} commits: an atomic block left early stayed open\n{}",
        s.commits,
        r.describe()
    );
}

// ---- exceptions ----

/// Exceptions raised and caught in `with atomic:` / `with lock:` blocks on 4 threads: no
/// effect lost or doubled, with and without forced aborts (a handler never sees an abort:
/// it counts exactly), under `--gil` too.
#[test]
fn exceptions_keep_every_effect() {
    check("exceptions", &["--threads", "4"], &[], &[]);
    check("exceptions", &["--gil"], &[], &[]);
}

#[test]
fn exceptions_keep_every_effect_with_aborts() {
    let r = check("exceptions", &["--threads", "4", "--stats"], ABORTS, &[]);
    let s = stats(&r);
    assert!(
        s.aborts > 0,
        "no abort was injected: {s:?}\n{}",
        r.describe()
    );
}

/// An exception that leaves `with atomic:` ends the block: the runtime goes on committing
/// at polls after it (a block left open would make the rest one transaction).
#[test]
fn an_exception_leaving_an_atomic_block_ends_it() {
    let r = check(
        "exceptions",
        &["--threads", "2", "--stats"],
        &[("STMJIT_BUDGET", "20")],
        &[],
    );
    let s = stats(&r);
    assert!(
        s.commits >= 1000,
        "only {} commits: an atomic block left by an exception stayed open\n{}",
        s.commits,
        r.describe()
    );
}

/// A loop catching 1000 KeyErrors in one function, on 2 threads with short transactions:
/// the caught exceptions make no transaction inevitable (as many as the same loop raising
/// nothing: those of the joins and of the threads' ends, give or take one: whether the
/// first join commits first or waits outside depends on whether the joiner's transaction
/// wrote before it), so the threads run in parallel. Before (every raise made its
/// transaction inevitable): 24 of 28 transactions inevitable, against 4 of 28 without
/// raising. Same output under forced aborts, `--gil`, 1 segment.
#[test]
fn caught_exceptions_make_no_transaction_inevitable() {
    let env = &[("STMJIT_BUDGET", "100")];
    let flags = &["--threads", "2", "--stats"];
    let raising = stats(&check("keyerror_loop", flags, env, &[]));
    let baseline = stats(&check("keyerror_loop", flags, env, &["get"]));
    assert!(raising.commits >= 20, "too few transactions: {raising:?}");
    assert!(
        raising.inevitable <= baseline.inevitable + 1,
        "caught KeyErrors made transactions inevitable: {raising:?}, without them {baseline:?}"
    );
    check("keyerror_loop", &["--threads", "2"], ABORTS, &[]);
    check("keyerror_loop", &["--threads", "1"], ABORTS, &[]);
    check("keyerror_loop", &["--gil"], &[], &[]);
}

/// TransactionQueue calls that each catch a KeyError (and some an exception raised in an
/// atomic block): exact results on 2 segments, with forced aborts, under `--gil`; and the
/// caught exceptions make none of the 2000 calls' transactions inevitable (before: 2001 of
/// 2004 transactions were). A worker runs up to 32 short calls in one transaction, and a
/// call that makes it inevitable ends it: inevitable calls would still count one each.
#[test]
fn queued_calls_catching_exceptions_stay_parallel() {
    let name = "txqueue_keyerror";
    let s = stats(&check(name, &["--threads", "2", "--stats"], &[], &[]));
    assert!(s.commits >= 2000 / 32, "too few transactions: {s:?}");
    assert!(
        s.inevitable <= 2,
        "caught exceptions made queued calls inevitable: {s:?}"
    );
    check(name, &["--threads", "2"], ABORTS, &[]);
    check(name, &["--gil"], &[], &[]);
}

/// Readers that divide by a sum writers keep at 1: only a torn view (a doomed transaction)
/// would raise. Whether a handler catches the ZeroDivisionError and prints, or it leaves the
/// thread, nothing of it shows (the transaction aborts at its commit, or when the exception
/// leaves its opener and it would become inevitable), in both commit modes, with short
/// transactions and forced aborts.
#[test]
fn a_doomed_transaction_never_shows_its_exception() {
    let short = ("STMJIT_BUDGET", "50");
    for log in ["0", "1"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        check("doomed_raise", &["--threads", "4"], &[log, short], &[]);
        check(
            "doomed_raise",
            &["--threads", "2"],
            &[log, ABORTS[0], ABORTS[1]],
            &[],
        );
    }
}

/// A spawn tree of 1023 threads on 2 segments (each join parks, each segment hand-off
/// queues) finishes with the exact count, also when threads move between segments. How
/// fast is a benchmark figure, not asserted here: waking one waiter instead of all took it
/// from 5.3 s to 1.5 s on a 2-core machine.
#[test]
fn a_spawn_tree_of_a_thousand_threads_finishes() {
    check("spawn_tree", &["--threads", "2"], &[], &["9"]);
    check(
        "spawn_tree",
        &["--threads", "2"],
        &[("STMJIT_MOVE_THREADS", "1")],
        &["9"],
    );
}

/// A parent reads its children's writes right after joining them (issue 20): a thread's end
/// passes its segment to its joiner, and threads start outside any transaction when their
/// spawner waits next; the joiner still sees the joined thread's last commit, on one and two
/// segments, with forced aborts and small budgets, with threads moving between segments,
/// and under the GIL.
#[test]
fn a_join_sees_the_joined_threads_writes() {
    for threads in ["1", "2", "3"] {
        check("join_sees_writes", &["--threads", threads], &[], &["7"]);
        check("join_sees_writes", &["--threads", threads], ABORTS, &["7"]);
    }
    check(
        "join_sees_writes",
        &["--threads", "2"],
        &[("STMJIT_MOVE_THREADS", "1"), ("STMJIT_BUDGET", "20")],
        &["7"],
    );
    check("join_sees_writes", &["--gil"], &[], &["7"]);
}

/// Threads joining each other in a cycle (of two, then three): exactly one join per cycle
/// raises the deadlock RuntimeError and the others return, under every mode, with forced
/// aborts and moving threads, and in the interpreter (before, they all waited forever and
/// this test timed out).
#[test]
fn a_cycle_of_joins_raises_instead_of_hanging() {
    check("join_cycle", &["--threads", "2"], &[], &[]);
    check("join_cycle", &["--threads", "1"], &[], &[]);
    check("join_cycle", &["--gil"], &[], &[]);
    check("join_cycle", &["--interp"], &[], &[]);
    check(
        "join_cycle",
        &["--threads", "4"],
        &[ABORTS[0], ABORTS[1], ("STMJIT_MOVE_THREADS", "1")],
        &[],
    );
}

/// `STMJIT_BIG=1` (issue 20's size; about 50 K mappings, near the kernel's default
/// `vm.max_map_count` of 65530): a tree of 10 001 threads (10 000 spawned, each join parks,
/// each segment hand-off queues) on 2 segments gives the exact count. Its time is a
/// benchmark figure (issue 20 asks for about a second), not asserted.
#[test]
fn a_spawn_tree_of_ten_thousand_threads_finishes() {
    if std::env::var("STMJIT_BIG").is_ok_and(|v| v == "1") {
        let r = run("spawn_count", &["--threads", "2"], &[], &["10001"]);
        assert_eq!(
            (r.stdout.as_str(), r.code),
            ("10001\n", Some(0)),
            "{}",
            r.describe()
        );
    } else {
        eprintln!("skipped: set STMJIT_BIG=1");
    }
    // At CI size, the same program (a tree of 300 threads, not a power of two).
    let r = run("spawn_count", &["--threads", "2"], &[], &["300"]);
    assert_eq!(
        (r.stdout.as_str(), r.code),
        ("300\n", Some(0)),
        "{}",
        r.describe()
    );
}

/// `STMJIT_BIG=1`: a tree of 30 001 threads on 2 segments holds about 14 K threads at once,
/// five mappings each, beyond the kernel's default `vm.max_map_count` (65530): it either
/// finishes (a machine with a higher limit) or ends with `MemoryError: cannot start a
/// thread` at the `spawn` call, exit 1, never a panic. Before, std panicked in the new thread
/// setting up its signal stack ('failed to set up alternative stack guard page: Cannot
/// allocate memory'), 1 of 1 runs.
#[test]
fn a_spawn_tree_beyond_the_mapping_limit_is_a_memory_error() {
    if !std::env::var("STMJIT_BIG").is_ok_and(|v| v == "1") {
        eprintln!("skipped: set STMJIT_BIG=1");
        return;
    }
    let r = run("spawn_count", &["--threads", "2"], &[], &["30001"]);
    assert!(!r.stderr.contains("panicked"), "{}", r.describe());
    if r.code != Some(0) {
        assert_eq!(r.code, Some(1), "{}", r.describe());
        assert!(
            r.stderr
                .starts_with("error: MemoryError: cannot start a thread (")
                && r.stderr.contains("at spawn_count.lang:"),
            "{}",
            r.describe()
        );
    } else {
        assert_eq!(r.stdout, "30001\n");
    }
}

/// The same tree under `--gil`: the global lock hands itself to its first waiter and wakes
/// that thread alone (before, each release woke every thread waiting for it).
#[test]
fn a_spawn_tree_of_a_thousand_threads_finishes_gil() {
    check("spawn_tree", &["--gil"], &[], &["9"]);
}

/// 24 threads with short transactions on 1 and 2 segments: threads keep their segment across
/// their own transactions and hand it over on a time slice or at a join, so every thread
/// gets its turns; exact totals. Also with moving threads, aborts, the commit log, `--gil`.
#[test]
fn many_threads_on_few_segments_all_finish() {
    const SHORT: (&str, &str) = ("STMJIT_BUDGET", "20");
    let name = "many_threads_few_segments";
    check(name, &["--threads", "2"], &[SHORT], &[]);
    check(name, &["--threads", "1"], &[SHORT], &[]);
    check(
        name,
        &["--threads", "2"],
        &[SHORT, ("STMJIT_MOVE_THREADS", "1")],
        &[],
    );
    check(name, &["--threads", "2"], ABORTS, &[]);
    check(
        name,
        &["--threads", "2"],
        &[SHORT, ("STMJIT_COMMIT_LOG", "0")],
        &[],
    );
    check(name, &["--gil"], &[SHORT], &[]);
}

/// A Lock handed among 64 threads on 2 segments, under `--gil` and with aborts: exact totals.
#[test]
fn lock_handed_among_64_threads() {
    check("lock_handoff", &["--threads", "2"], &[], &[]);
    check("lock_handoff", &["--gil"], &[], &[]);
    check("lock_handoff", &["--threads", "2"], ABORTS, &[]);
}

// ---- tuples: immutable, so never a conflict; unpacked and rebuilt inside transactions ----

/// Two threads reading one shared tuple table (and unpacking its items) while writing
/// disjoint halves of a list: tuples take no barriers, so no conflicts.
#[test]
fn shared_tuples_are_read_without_conflicts() {
    let r = check("shared_tuples", &["--threads", "2", "--stats"], &[], &[]);
    let s = stats(&r);
    assert_eq!(
        s.conflicts,
        0,
        "reading a shared tuple conflicted: {s:?}\n{}",
        r.describe()
    );
}

/// Tuples unpacked and rebuilt in atomic blocks, tuple keys in a shared dict: the serial
/// result with forced aborts, short transactions, threads moving between segments, `--gil`.
#[test]
fn tuple_updates_in_atomic_blocks_keep_the_totals() {
    check("tuple_pairs", &["--threads", "3"], &[], &[]);
    check("tuple_pairs", &["--threads", "3"], ABORTS, &[]);
    check(
        "tuple_pairs",
        &["--threads", "2"],
        &[
            ("STMJIT_MOVE_THREADS", "1"),
            ("STMJIT_BUDGET", "5"),
            ("STMJIT_NURSERY", "4096"),
        ],
        &[],
    );
    check("tuple_pairs", &["--gil"], &[], &[]);
}

// ---- the commit log (the default; `STMJIT_COMMIT_LOG=0` stops the world, docs/COMMITLOG.md) ----

/// Objects built by one thread and published in a shared list are read whole by the other
/// (`new_objects_published.lang` counts every wrong field), in both commit modes: with the
/// log, an entry carries no bytes of the objects its transaction allocated, and a reader
/// whose copy of their page is private copies them from segment 0. Also with a 4 KiB
/// nursery and 5-step transactions (objects promoted, committed half-built and modified
/// again), with forced aborts and threads moving between segments.
#[test]
fn published_new_objects_are_whole_in_other_segments() {
    let name = "new_objects_published";
    for log in ["0", "1"] {
        let log = ("STMJIT_COMMIT_LOG", log);
        check(name, &["--threads", "2"], &[log], &[]);
        check(
            name,
            &["--threads", "2"],
            &[log, ("STMJIT_NURSERY", "4096"), ("STMJIT_BUDGET", "5")],
            &[],
        );
        check(
            name,
            &["--threads", "4"],
            &[
                log,
                ABORTS[0],
                ABORTS[1],
                ("STMJIT_MOVE_THREADS", "1"),
                ("STMJIT_NURSERY", "4096"),
            ],
            &[],
        );
    }
}

/// Every program above, which run with the commit log by default (writer commits never stop
/// the other threads: each reads its own snapshot until it validates at a safe point), also
/// with `STMJIT_COMMIT_LOG=0`, where every writer commit stops the world. (`init_change`
/// hung with the log before the class caches refreshed the snapshot after reading their
/// epoch.)
#[test]
fn the_programs_run_with_stop_the_world_commits() {
    const LOG: (&str, &str) = ("STMJIT_COMMIT_LOG", "0");
    for name in [
        "bank",
        "class_change",
        "counter",
        "deadlock_atomic",
        "deadlock_locks",
        "dict_overlay_ops",
        "disjoint_dict",
        "disjoint_list",
        "disjoint_new_keys",
        "elided_stores",
        "init_change",
        "join_in_atomic",
        "join_spawned_in_atomic",
        "join_values",
        "leave_atomic",
        "lock_handoff",
        "many_threads_few_segments",
        "method_change",
        "readonly_methods",
        "same_key",
        "segment_moves",
        "spawn_tree",
        "txqueue",
    ] {
        let args: &[&str] = if name == "spawn_tree" { &["9"] } else { &[] };
        check(name, &["--threads", "2"], &[LOG], args);
        let moving = ("STMJIT_MOVE_THREADS", "1");
        check(
            name,
            &["--threads", "4"],
            &[LOG, ABORTS[0], ABORTS[1], moving],
            args,
        );
    }
}

// ---- roots of spawn and q.add ----

/// The deepest shadow stack a `--stats` report saw.
fn shadow_max_slots(r: &Run) -> u64 {
    r.stderr
        .lines()
        .find_map(|l| leading_number(l, "  shadow stack: up to "))
        .unwrap_or_else(|| panic!("no `shadow stack:` line\n{}", r.describe()))
}

/// A loop of 2000 spawns (or 20 000 `q.add`) must not leave each call's temporary roots on
/// the shadow stack: they were once never released, so a server or a long loop grew it
/// until MemoryError (and kept every object they referred to alive).
#[test]
fn spawning_or_queueing_in_a_loop_does_not_pile_up_roots() {
    for (name, threads) in [
        ("spawn_loop", "2"),
        ("queue_add_loop", "2"),
        ("spawn_loop", "1"),
    ] {
        let r = check(
            name,
            &["--threads", threads, "--stats"],
            &[("STMJIT_NURSERY", "65536")],
            &[],
        );
        let depth = shadow_max_slots(&r);
        assert!(
            depth < 1000,
            "{name}: the shadow stack reached {depth} slots\n{}",
            r.describe()
        );
    }
}

/// `stmjit run --threads 1 spawn_fails.lang` under an address-space limit of `gib` GiB:
/// (stderr, exit status). Asserts that it runs, cannot even create its runtime (a limit
/// below its reservation), or ends with the clean MemoryError at the `spawn` call's line,
/// exit 1: never a panic nor an abort (`memory allocation of 41 bytes failed`, glibc's
/// `failed to register TLS destructor`, std's `failed to allocate an alternative stack`:
/// exit 134). The status is 1 only for the MemoryError.
fn spawn_under_limit(gib: u64) -> (String, Option<i32>) {
    let kib = gib << 20;
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec \"$0\" run --threads 1 spawn_fails.lang"
        ))
        .arg(env!("CARGO_BIN_EXE_stmjit"))
        .current_dir(dir())
        .stdin(Stdio::null())
        .output()
        .expect("start sh");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let code = out.status.code();
    if code == Some(1) && err.starts_with("error: MemoryError: cannot create the runtime: ") {
        return (err, None);
    }
    if code != Some(0) {
        assert_eq!(code, Some(1), "under {gib} GiB: {:?}\n{err}", out.status);
        assert!(
            err.starts_with("error: MemoryError: cannot start a thread ("),
            "under {gib} GiB:\n{err}"
        );
        assert!(
            err.contains("at spawn_fails.lang:15:19 in main"),
            "no location under {gib} GiB:\n{err}"
        );
    }
    (err, code)
}

/// A thread that cannot be created (here: an address-space limit, `ulimit -v`, leaves room
/// for the runtime's reservation but not for 50 thread stacks of 1 GiB) ends the program with
/// `MemoryError` at the `spawn` call's line, exit 1, never a panic. The limit that does it
/// depends on the machine, so a ladder of limits is tried; at least one must give the error
/// (before, every one either ran or printed a bare line without location). The first such
/// limit is then run 24 more times, 4 at once: every run must be clean (before the address
/// space was checked ahead of each thread, 34 of 240 such runs aborted: the last thread's
/// stack fitted and the next small allocation of some thread did not).
#[test]
fn a_thread_that_cannot_start_is_a_memory_error_at_the_spawn() {
    let failing: Vec<u64> = [4u64, 8, 12, 16, 20, 24, 32, 48, 64, 96, 128]
        .into_iter()
        .filter(|&gib| spawn_under_limit(gib).1 == Some(1))
        .collect();
    let gib = *failing
        .first()
        .expect("no address-space limit made a spawn fail");
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                for _ in 0..6 {
                    spawn_under_limit(gib);
                }
            });
        }
    });
}

/// `(spawned, OS threads started)` of the `--stats` line `threads: S spawned, O OS threads
/// started for them, ...`.
fn thread_counts(stderr: &str) -> (u64, u64) {
    let line = stderr
        .lines()
        .find(|l| l.trim_start().starts_with("threads: "))
        .unwrap_or_else(|| panic!("no threads line in {stderr}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    (words[1].parse().unwrap(), words[3].parse().unwrap())
}

/// A spawn tree of 2 047 threads on 2 segments starts few OS threads (issue 20): a thread
/// spawned while others wait for a segment is put off, and put-off threads start the most
/// recent first, on the OS threads of threads that ended (depth first). Before, every
/// thread was started at once, breadth first, nearly all parked in the queue: about three
/// OS threads for four threads, each created and destroyed, and past `vm.max_map_count`
/// at depth 13.
#[test]
fn a_spawn_tree_starts_few_os_threads() {
    for env in [&[][..], &[("STMJIT_MOVE_THREADS", "1")][..], ABORTS] {
        let r = run("spawn_tree", &["--threads", "2", "--stats"], env, &["10"]);
        assert_eq!(
            (r.stdout.as_str(), r.code),
            ("2047\n", Some(0)),
            "{}",
            r.describe()
        );
        let (spawned, os) = thread_counts(&r.stderr);
        assert_eq!(spawned, 2046, "{}", r.describe());
        assert!(
            os <= spawned / 4,
            "{os} OS threads for {spawned} threads ({env:?})"
        );
    }
}

/// Threads that wait in loops for each other (a barrier of 40 on 1 and 2 segments, and under
/// `--gil`) all start, though spawned while others waited for a segment and put off: while
/// none starts otherwise, the oldest starts every 10 ms.
#[test]
fn put_off_threads_start_while_others_spin() {
    check("spawn_barrier", &["--threads", "2"], &[], &[]);
    check("spawn_barrier", &["--threads", "1"], &[], &[]);
    check("spawn_barrier", &["--gil"], &[], &[]);
    check("spawn_barrier", &["--threads", "2"], ABORTS, &[]);
}
