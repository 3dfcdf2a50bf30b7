//! `stmjit run --timeline` draws from the run's records, not from its JSON held in memory:
//! its peak memory stays near that of `--trace` (which streams the JSON to the file). Drawn
//! from the JSON, 150 000 queued transactions peaked 57 MB above `--trace` (the text, and
//! the model read from it); from the records, about the same as `--trace`.
//!
//! Alone in its test binary: it reads the peak of its children (`getrusage`), which other
//! tests' children would mix in.

use std::path::PathBuf;
use std::process::Command;

/// The largest peak resident set (KiB) of the children waited for so far.
fn children_peak_kib() -> i64 {
    // SAFETY: getrusage writes the struct it is given, which is plain data.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and a pointer to a live `rusage`.
    let r = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut u) };
    assert_eq!(r, 0, "getrusage");
    u.ru_maxrss
}

fn run(flag: &str, out: &PathBuf) {
    let prog = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/programs/microtq.lang");
    let st = Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(["run", "--threads", "1", flag])
        .arg(out)
        .arg(prog)
        .arg("150000")
        .output()
        .expect("run stmjit");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    assert!(std::fs::metadata(out).is_ok_and(|m| m.len() > 0));
    let _ = std::fs::remove_file(out);
}

#[test]
fn the_timeline_does_not_hold_the_json() {
    let dir = std::env::temp_dir();
    let pid = std::process::id();
    run("--trace", &dir.join(format!("stmjit-tlmem-{pid}.json")));
    let trace = children_peak_kib();
    run("--timeline", &dir.join(format!("stmjit-tlmem-{pid}.svg")));
    // The peak of both runs: above the first only if the timeline run peaked higher.
    let both = children_peak_kib();
    assert!(
        both - trace < 20 * 1024,
        "--timeline peaked at {both} KiB, --trace at {trace} KiB"
    );
}
