//! The program corpus (`tests/corpus/`) through the JIT: every program's stdout, stderr and
//! exit status must be those expected (the same files `corpus.rs` checks the interpreter
//! against, themselves checked against CPython), with the default nursery and with a 4 KiB
//! nursery (a minor collection every few allocations: every reference JIT code or a helper
//! holds across an allocation must be in the shadow stack), and with `--segment-base r15`
//! (and the IR verifier).

mod corpus_files;

use corpus_files::{corpus_dir, program_args, programs, read};
use std::process::{Command, Output};

/// Runs one corpus program through the JIT with `flags` and extra environment variables.
fn run_jit(name: &str, flags: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
    cmd.arg("run")
        .args(flags)
        .arg(format!("{name}.lang"))
        .args(program_args(name))
        .current_dir(corpus_dir());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run stmjit")
}

fn stderr_matches(expected: &str, actual: &str) -> bool {
    match expected.strip_suffix("...\n") {
        Some(prefix) => actual.starts_with(prefix),
        None => expected == actual,
    }
}

fn check_corpus(flags: &[&str], env: &[(&str, &str)]) {
    let mut failures = Vec::new();
    for name in programs() {
        let out = run_jit(&name, flags, env);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let want_out = read(&name, "out").unwrap_or_default();
        let want_err = read(&name, "err");
        let want_code = match &want_err {
            None => 0,
            Some(e) if e.starts_with("error: SyntaxError") => 2,
            Some(_) => 1,
        };
        let mut problems = Vec::new();
        if stdout != want_out {
            problems.push(format!(
                "stdout differs\n--- expected\n{want_out}--- actual\n{stdout}"
            ));
        }
        match &want_err {
            Some(e) if !stderr_matches(e, &stderr) => problems.push(format!(
                "stderr differs\n--- expected\n{e}--- actual\n{stderr}"
            )),
            None if !stderr.is_empty() => problems.push(format!("unexpected stderr:\n{stderr}")),
            _ => {}
        }
        if out.status.code() != Some(want_code) {
            problems.push(format!(
                "exit {:?}, expected {want_code}",
                out.status.code()
            ));
        }
        if !problems.is_empty() {
            failures.push(format!("== {name}.lang {env:?}\n{}", problems.join("\n")));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn corpus_runs_through_the_jit() {
    check_corpus(&[], &[]);
}

#[test]
fn corpus_runs_with_a_4k_nursery() {
    check_corpus(&[], &[("STMJIT_NURSERY", "4096")]);
}

/// With Cranelift's IR verifier on every function (`STMJIT_VERIFY=1`: release builds do not
/// run it otherwise); a verifier error is printed, so the stderr check catches it.
#[test]
fn corpus_runs_with_the_r15_segment_base() {
    check_corpus(&["--segment-base", "r15"], &[("STMJIT_VERIFY", "1")]);
}

/// Every function compiled as huge ones are (`STMJIT_QUICK=1`: locals in frame slots, the
/// quick code-generation tier), with the IR verifier, under aborts and short transactions
/// (restarts reload no locals then: they are in the slots the restart restores).
#[test]
fn corpus_runs_in_the_quick_tier() {
    check_corpus(
        &[],
        &[
            ("STMJIT_QUICK", "1"),
            ("STMJIT_VERIFY", "1"),
            ("STMJIT_ABORT_PROBABILITY", "0.2"),
            ("STMJIT_BUDGET", "100"),
        ],
    );
}

/// With every commit of a non-inevitable transaction aborting at probability 0.3 and short
/// transactions (many boundaries, so many restarts), every program prints exactly the same.
#[test]
fn corpus_with_aborts() {
    check_corpus(
        &[],
        &[
            ("STMJIT_ABORT_PROBABILITY", "0.3"),
            ("STMJIT_BUDGET", "100"),
        ],
    );
}

/// The polymorphic attribute and method-call sites of `polymorphic_sites.lang` with short
/// transactions: each class or instance attribute change there commits soon, and the sites
/// fill their caches again between the changes (in one long transaction they stay empty
/// from the first class attribute assignment on), so a cache entry that a change should
/// have removed gives a wrong sum. Likewise the methods computed inline at their call sites
/// (`inline_methods.lang`), which run only where the site's cache gives their function.
#[test]
fn polymorphic_sites_with_short_transactions() {
    for name in [
        "polymorphic_sites",
        "inline_methods",
        "inline_method_branches",
        "inline_method_guessed",
    ] {
        sites_with_short_transactions(name);
    }
}

/// Runs corpus program `name` with transaction budgets of 5, 20 and 100: its expected output
/// each time.
fn sites_with_short_transactions(name: &str) {
    let want = read(name, "out").expect("expected output");
    for budget in ["5", "20", "100"] {
        let out = run_jit(name, &[], &[("STMJIT_BUDGET", budget)]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout == want,
            "budget {budget}: exit {:?}\n--- stdout\n{stdout}--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
