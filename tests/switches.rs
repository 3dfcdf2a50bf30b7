//! The `STMJIT_*` environment switches: a bad value is a usage error (exit 2) naming the
//! switch and its range, never a panic; `stmjit run --help` lists them all.

mod scratch;

use std::process::Command;

fn stmjit() -> Command {
    Command::new(env!("CARGO_BIN_EXE_stmjit"))
}

fn program() -> std::path::PathBuf {
    let dir = scratch::dir("switches");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("p.lang");
    std::fs::write(&p, "print(1 + 1)\n").unwrap();
    p
}

#[test]
fn bad_values_are_usage_errors_naming_the_switch() {
    let p = program();
    for (name, value) in [
        ("STMJIT_NURSERY", "1099511627776"),
        ("STMJIT_NURSERY", "big"),
        ("STMJIT_BUDGET", "0"),
        ("STMJIT_ABORT_PROBABILITY", "2"),
        ("STMJIT_MOVE_THREADS", "yes"),
        ("STMJIT_VERIFY", "on"),
        ("STMJIT_GS_ARCH_PRCTL", "x"),
        ("STMJIT_BENCH_OMIT", "everything"),
        ("STMJIT_EAGER", "yes"),
        ("STMJIT_QUICK", "2"),
        ("STMJIT_COMMIT_LOG", "on"),
        ("STMJIT_DEBUG_REWRITE", "true"),
        ("STMJIT_HEAP", "1000"),
        ("STMJIT_HEAP", "lots"),
        ("STMJIT_FAIL_PRIVATIZE", "-1"),
        ("STMJIT_FAIL_PRIVATIZE", "x"),
    ] {
        for interp in [false, true] {
            let mut cmd = stmjit();
            cmd.arg("run");
            if interp {
                cmd.arg("--interp");
            }
            let out = cmd.arg(&p).env(name, value).output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{name}={value}: {err}");
            assert!(
                err.starts_with(&format!("error: {name}={value}: expected")),
                "{err}"
            );
            assert!(!err.contains("panicked"), "{err}");
            assert!(out.stdout.is_empty(), "the program must not run");
        }
    }
}

#[test]
fn good_values_run_the_program() {
    let p = program();
    let out = stmjit()
        .arg("run")
        .arg(&p)
        .env("STMJIT_NURSERY", "4096")
        .env("STMJIT_BUDGET", "50")
        .env("STMJIT_ABORT_PROBABILITY", "0.5")
        .env("STMJIT_MOVE_THREADS", "1")
        .env("STMJIT_VERIFY", "0")
        .env("STMJIT_GS_ARCH_PRCTL", "1")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "2\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `STMJIT_*` name the sources read (outside tests) is listed by `stmjit run --help`
/// and checked: a bad value of each is refused (the names come from the sources, so a new
/// switch cannot be forgotten; `STMJIT_COMMIT_LOG` and `STMJIT_DEBUG_REWRITE` were).
#[test]
fn help_lists_every_switch() {
    let out = stmjit().args(["run", "--help"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut names = std::collections::BTreeSet::new();
    let mut dirs: Vec<std::path::PathBuf> = [
        "src",
        "lang/src",
        "vm/src",
        "jit/src",
        "runtime/src",
        "backend/src",
        "serve/src",
        "timeline/src",
    ]
    .iter()
    .map(|d| root.join(d))
    .collect();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let src = std::fs::read_to_string(&path).unwrap();
                for (i, _) in src.match_indices("STMJIT_") {
                    let name: String = src[i..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if name.len() > "STMJIT_".len() {
                        names.insert(name);
                    }
                }
            }
        }
    }
    assert!(names.len() >= 11, "{names:?}");
    let p = program();
    for name in &names {
        assert!(text.contains(name.as_str()), "{name} missing from:\n{text}");
        let out = stmjit().arg("run").arg(&p).env(name, "~").output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}=~ accepted: {err}");
        assert!(err.contains(name.as_str()), "{err}");
    }
}
