//! `stmjit run --trace FILE.json`: the file is Chrome trace-event JSON whose transaction
//! slices are exactly the commits and aborts `--stats-json` counts (also under forced
//! aborts), one track per thread with slices that never overlap, conflict arrows that join
//! a winner to the transaction it aborted, `print` output as instants, and it is written
//! also when a thread ends the program on an error.

mod scratch;

use serde_json::Value;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

fn program(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/trace")
        .join(name)
}

/// A temporary file name unique to this test process and `tag`.
fn temp(tag: &str, ext: &str) -> PathBuf {
    scratch::dir("trace").join(format!("{tag}.{ext}"))
}

struct Traced {
    status: i32,
    stdout: String,
    stderr: String,
    trace: Value,
    stats: Value,
}

/// Runs `prog ARGS` with `--trace` and `--stats-json` (2 segments) and the environment
/// `env`; parses both files.
fn run(tag: &str, prog: &str, args: &[&str], env: &[(&str, &str)]) -> Traced {
    let (trace, stats) = (temp(tag, "json"), temp(&format!("{tag}-stats"), "json"));
    let out = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--threads", "2", "--trace"])
        .arg(&trace)
        .arg("--stats-json")
        .arg(&stats)
        .arg(program(prog))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run stmjit");
    let read = |p: &PathBuf| {
        let text = std::fs::read_to_string(p)
            .unwrap_or_else(|e| panic!("{} not written: {e}", p.display()));
        let _ = std::fs::remove_file(p);
        serde_json::from_str::<Value>(&text)
            .unwrap_or_else(|e| panic!("{} is not JSON ({e})", p.display()))
    };
    Traced {
        status: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        trace: read(&trace),
        stats: read(&stats),
    }
}

fn events(t: &Value) -> &Vec<Value> {
    t["traceEvents"]
        .as_array()
        .expect("traceEvents is an array")
}

fn transactions(t: &Value) -> Vec<&Value> {
    events(t)
        .iter()
        .filter(|e| e["cat"] == "transaction")
        .collect()
}

/// A transaction's arg `key`, or its default, which the file's metadata states
/// (`otherData.arg_defaults`: the writer leaves out args that have their default value).
fn arg<'a>(t: &'a Value, e: &'a Value, key: &str) -> &'a Value {
    e["args"].get(key).unwrap_or_else(|| {
        t["otherData"]["arg_defaults"]
            .get(key)
            .unwrap_or_else(|| panic!("no {key} and no default for it: {e}"))
    })
}

/// Every transaction slice is a complete event with an outcome (named by it too); on each
/// track they follow one another without overlapping; every aborted one says why and has
/// an id; a committed one is inevitable exactly when its name says so.
fn check_tracks(t: &Value) {
    let mut by_tid: HashMap<u64, Vec<(f64, f64)>> = HashMap::new();
    for e in transactions(t) {
        assert_eq!(e["ph"], "X", "{e}");
        let a = &e["args"];
        let name = e["name"].as_str().unwrap();
        match arg(t, e, "outcome").as_str() {
            Some("committed") => {
                assert!(a.get("abort_cause").is_none(), "{e}");
                assert!(name.starts_with("committed"), "{e}");
                let inevitable = name == "committed (inevitable)";
                assert_eq!(arg(t, e, "inevitable").as_bool(), Some(inevitable), "{e}");
            }
            Some("aborted") => {
                assert!(a["abort_cause"].is_string(), "{e}");
                assert!(name.starts_with("aborted"), "{e}");
                assert!(a["id"].is_string(), "{e}");
            }
            _ => panic!("no outcome: {e}"),
        }
        for k in ["bytes_written", "pages_privatized"] {
            assert!(arg(t, e, k).is_u64(), "{k}: {e}");
        }
        assert!(a["segment"].as_u64().is_some_and(|s| s >= 1), "{e}");
        let (ts, dur) = (e["ts"].as_f64().unwrap(), e["dur"].as_f64().unwrap());
        assert!(dur >= 0.0, "{e}");
        by_tid
            .entry(e["tid"].as_u64().unwrap())
            .or_default()
            .push((ts, ts + dur));
    }
    for (tid, mut spans) in by_tid {
        spans.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for w in spans.windows(2) {
            // Rounding to the nanosecond: one may end in the ns the next begins.
            assert!(
                w[1].0 >= w[0].1 - 0.002,
                "track {tid}: transactions overlap: {w:?}"
            );
        }
    }
    let named: Vec<&Value> = events(t)
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .collect();
    assert!(
        named.iter().any(|e| e["args"]["name"] == "main"),
        "no main track: {named:?}"
    );
}

#[test]
fn transactions_in_the_trace_are_the_commits_and_aborts_counted() {
    let r = run(
        "counter",
        "counter.lang",
        &["3000"],
        &[("STMJIT_BUDGET", "20")],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    let txs = transactions(&r.trace);
    let counted = r.stats["commits"].as_u64().unwrap() + r.stats["aborts"].as_u64().unwrap();
    assert_eq!(txs.len() as u64, counted, "{}", r.stats);
    let committed = txs
        .iter()
        .filter(|e| arg(&r.trace, e, "outcome") == "committed")
        .count();
    assert_eq!(Some(committed as u64), r.stats["commits"].as_u64());
    check_tracks(&r.trace);
    // Both spawned threads have a track of their own.
    for k in 1..=2 {
        let name = format!("thread {k}");
        assert!(
            events(&r.trace)
                .iter()
                .any(|e| e["name"] == "thread_name" && e["args"]["name"] == name.as_str()),
            "no track named {name}"
        );
    }
    // The output instants are the program's output, in order.
    let printed: String = events(&r.trace)
        .iter()
        .filter(|e| e["cat"] == "output")
        .map(|e| e["args"]["text"].as_str().unwrap())
        .collect();
    let mut want: Vec<&str> = r.stdout.lines().collect();
    let mut got: Vec<&str> = printed.lines().collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want);
    let meta = &r.trace["otherData"];
    let (per_thread, in_all) = (
        meta["events_per_thread_cap"].as_u64().unwrap(),
        meta["events_cap"].as_u64().unwrap(),
    );
    assert!(0 < per_thread && per_thread <= in_all, "{meta}");
    assert!(meta["cap_note"].is_string(), "{meta}");
    assert_eq!(meta["segments"], 2);
}

#[test]
fn forced_aborts_are_traced_one_slice_each() {
    let r = run(
        "forced",
        "counter.lang",
        &["2000"],
        &[("STMJIT_BUDGET", "50"), ("STMJIT_ABORT_PROBABILITY", "0.3")],
    );
    assert_eq!(r.status, 0, "{}", r.stderr);
    let txs = transactions(&r.trace);
    let (commits, aborts) = (
        r.stats["commits"].as_u64().unwrap(),
        r.stats["aborts"].as_u64().unwrap(),
    );
    assert!(aborts > 10, "{}", r.stats);
    assert_eq!(txs.len() as u64, commits + aborts);
    let injected = txs
        .iter()
        .filter(|e| e["name"] == "aborted (injected)")
        .count() as u64;
    assert_eq!(Some(injected), r.stats["injected_aborts"].as_u64());
    check_tracks(&r.trace);
}

/// Conflict arrows come in pairs (`s` on the winner's track, `f` on the loser's), and each
/// conflict-aborted slice names both sides: the counter's write is where the winner wrote.
#[test]
fn conflicts_have_arrows_and_both_sides() {
    // A reader and a writer of one counter conflict unless the machine runs them one after
    // the other: try a few times.
    for _ in 0..8 {
        let r = run(
            "conflict",
            "conflict.lang",
            &["300000"],
            &[("STMJIT_BUDGET", "20")],
        );
        assert_eq!(r.status, 0, "{}", r.stderr);
        let conflicted: Vec<&Value> = transactions(&r.trace)
            .into_iter()
            .filter(|e| e["args"]["conflict"].is_object())
            .collect();
        if conflicted.is_empty() {
            continue;
        }
        for e in &conflicted {
            let c = &e["args"]["conflict"];
            let w = c["written_at"]["at"].as_str().unwrap_or("");
            if c["kind"] == "write/read" {
                assert!(w.ends_with("conflict.lang:12:9"), "{e}");
                assert_eq!(c["written_at"]["text"], "box.n += 1", "{e}");
                // Only the reading thread is aborted by (or, inevitable, wins over) the
                // writer: where it read the counter (recorded read sites, as `--stats`).
                let rd = c["read_at"]["at"].as_str().unwrap_or("");
                assert!(rd.ends_with("conflict.lang:18:14"), "{e}");
                assert_eq!(c["read_at"]["text"], "s += box.n", "{e}");
            }
            assert!(c["winner"].is_string() && c["object"].is_string(), "{e}");
        }
        // Each winner is found by its id: a transaction of the trace (kept: this run is
        // far below the caps) has it.
        let ids: Vec<&Value> = transactions(&r.trace)
            .into_iter()
            .filter_map(|e| e["args"].get("id"))
            .collect();
        for e in &conflicted {
            let w = &e["args"]["conflict"]["winner"];
            assert!(ids.contains(&w), "winner {w} of {e} has no slice");
        }
        let mut flows: HashMap<u64, (Option<u64>, Option<u64>)> = HashMap::new();
        for e in events(&r.trace).iter().filter(|e| e["cat"] == "conflict") {
            let f = flows.entry(e["id"].as_u64().unwrap()).or_default();
            match e["ph"].as_str() {
                Some("s") => f.0 = e["tid"].as_u64(),
                Some("f") => f.1 = e["tid"].as_u64(),
                _ => panic!("{e}"),
            }
        }
        assert!(!flows.is_empty(), "conflicts but no arrows");
        for (id, (s, f)) in flows {
            assert!(s.is_some() && f.is_some(), "arrow {id} is not a pair");
            assert_ne!(s, f, "arrow {id} joins a track to itself");
        }
        return;
    }
    panic!("conflict.lang: no conflict in 8 runs of a reader and a writer of one counter");
}

/// A thread that fails ends the program with status 1; the trace of what ran is written.
#[test]
fn an_error_exit_still_writes_the_trace() {
    let r = run("fails", "fails.lang", &[], &[]);
    assert_eq!(r.status, 1, "{}", r.stderr);
    assert!(r.stderr.contains("ZeroDivisionError"), "{}", r.stderr);
    assert!(!transactions(&r.trace).is_empty());
    check_tracks(&r.trace);
}
