//! A full heap collects before it raises: `STMJIT_HEAP` makes the heap small enough to fill
//! in CI. A program whose live set stays small while it allocates four times the limit
//! finishes (it raised MemoryError when the limit was reached before the major collection's
//! own threshold, 64 MiB allocated, ever was); one whose live set outgrows the limit ends
//! with a clean `error: MemoryError` at the allocating line, exit 1.

use std::process::{Command, Output};

fn run(file: &str, extra: &[(&str, &str)]) -> Output {
    run_with(&[], file, extra)
}

/// [`run`] with more options before the file.
fn run_with(opts: &[&str], file: &str, extra: &[(&str, &str)]) -> Output {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/heap");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.current_dir(&dir)
        .args(["run", "--stats"])
        .args(opts)
        .arg(file)
        .env("STMJIT_HEAP", (32u64 << 20).to_string())
        .env("STMJIT_NURSERY", (1u64 << 20).to_string())
        // Transactions of about 5 MB of allocation: what a collection inside a transaction
        // cannot free is what that transaction allocated.
        .env("STMJIT_BUDGET", "100000");
    for (k, v) in extra {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// The number before ` major (` in the `--stats` gc line.
fn majors(stderr: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" major ("))
        .unwrap_or_else(|| panic!("no gc line in:\n{stderr}"));
    let head = line.split(" major (").next().unwrap();
    head.rsplit(' ').next().unwrap().parse().unwrap()
}

#[test]
fn a_bounded_live_set_allocating_far_beyond_the_limit_runs_to_the_end() {
    for log in ["0", "1"] {
        let out = run("bounded.lang", &[("STMJIT_COMMIT_LOG", log)]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "2000000 2 199991999919999\n",
            "log {log}: {err}"
        );
        assert_eq!(out.status.code(), Some(0), "log {log}: {err}");
        // Below the default threshold, only the full heap made these collections.
        assert!(majors(&err) >= 2, "log {log}: {err}");
    }
}

/// `--stats` and `--stats-json` say where the major collections' time went, phase by phase
/// (the stop, the log, marking, re-sharing; then, with the world running, sweeping and
/// releasing memory).
#[test]
fn stats_break_major_collections_down_by_phase() {
    let json = std::env::temp_dir().join(format!("stmjit-phases-{}.json", std::process::id()));
    let out = run_with(
        &["--stats-json", json.to_str().unwrap()],
        "bounded.lang",
        &[],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(majors(&err) >= 2, "{err}");
    let line = err
        .lines()
        .find(|l| l.trim_start().starts_with("major collections: "))
        .unwrap_or_else(|| panic!("no phase line in:\n{err}"));
    let text = std::fs::read_to_string(&json).expect("--stats-json wrote no file");
    let _ = std::fs::remove_file(&json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let phases = &v["gc"]["major_phase_ms"];
    // The world is stopped from the stop to the re-sharing, then runs again.
    let (stopped, running) = line
        .split_once("; then with the world running: ")
        .unwrap_or_else(|| panic!("no running part in {line}"));
    let mut stopped_ms = 0.0;
    for p in ["stop", "log", "mark", "reshare", "sweep", "release"] {
        let after = ["sweep", "release"].contains(&p);
        let part = if after { running } else { stopped };
        assert!(
            part.contains(&format!("{p} ")),
            "no {p} in its part of {line}"
        );
        let ms = phases[p].as_f64().unwrap_or_else(|| panic!("no {p}: {v}"));
        if p != "stop" && !after {
            stopped_ms += ms;
        }
    }
    let major = v["gc"]["major_ms"].as_f64().unwrap();
    assert!(
        (stopped_ms - major).abs() < 0.01,
        "{stopped_ms} vs {major}: {v}"
    );
    assert!(phases["mark"].as_f64().unwrap() > 0.0, "{v}");
}

#[test]
fn a_live_set_beyond_the_limit_is_a_memory_error_at_its_line() {
    let out = run("exceed.lang", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: MemoryError: out of memory\n  at exceed.lang:5:"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(out.stdout.is_empty());
    // It collected before giving up.
    assert!(majors(&err) >= 1, "{err}");
}

/// The same with a chain of instances made at a class call site, whose JIT code allocates
/// them inline in the nursery without testing the limit: the helper it calls when the nursery
/// is full tests it (the runtime panicked when the old space ran out).
#[test]
fn a_live_set_of_instances_beyond_the_limit_is_a_memory_error_at_its_line() {
    let out = run("exceed_instances.lang", &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.starts_with("error: MemoryError: out of memory\n  at exceed_instances.lang:"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(majors(&err) >= 1, "{err}");
}

/// A page that cannot be made private (its `mmap` fails: `vm.max_map_count` reached) ends
/// the run with `error: MemoryError: cannot make a page private: ...` naming the mappings in
/// use, exit 1, after the output of the transactions that committed; it panicked (exit 101).
/// `STMJIT_FAIL_PRIVATIZE` injects the failure: without it, the same program runs (writes
/// over an old list, one transaction every few iterations, privatizing about 180 pages).
#[test]
fn a_page_that_cannot_be_made_private_is_a_memory_error() {
    let out = run("privatize.lang", &[("STMJIT_BUDGET", "5")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "start\n9784320\n");
    let out = run(
        "privatize.lang",
        &[("STMJIT_BUDGET", "5"), ("STMJIT_FAIL_PRIVATIZE", "20")],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "start\n");
    assert!(
        err.starts_with("error: MemoryError: cannot make a page private: ")
            && err.contains("memory mappings in use, vm.max_map_count is "),
        "{err}"
    );
}
