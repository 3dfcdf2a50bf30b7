//! Differential test of the reference interpreter against CPython: random, error-free programs
//! (typed expression generator with guards against division by zero and int overflow; also
//! functions, methods with inheritance, dict and list mutation, loops) are run
//! by `stmjit run --interp` and by `python3 tests/oracle/run_python.py`; stdout must be equal.

mod scratch;

use std::path::Path;
use std::process::Command;

mod common;

use common::Gen;

#[test]
fn random_programs_agree_with_cpython() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = scratch::dir("diff");
    std::fs::create_dir_all(&dir).unwrap();
    let mut gen = Gen(0x5eed_1234_abcd_ef01);
    for round in 0..10 {
        let program = gen.program(1000);
        let path = dir.join(format!("random{round}.lang"));
        std::fs::write(&path, &program).unwrap();
        let ours = Command::new(env!("CARGO_BIN_EXE_stmjit"))
            .args(["run", "--interp"])
            .arg(&path)
            .output()
            .unwrap();
        let python = Command::new("python3")
            .arg(root.join("tests/oracle/run_python.py"))
            .arg(&path)
            .output()
            .expect("python3 is needed for the oracle tests");
        assert!(
            python.status.success(),
            "python3 failed on {}:\n{}",
            path.display(),
            String::from_utf8_lossy(&python.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stderr),
            "",
            "interpreter failed on {}",
            path.display()
        );
        let (a, b) = (
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&python.stdout),
        );
        assert!(a.lines().count() > 200, "too little output to compare");
        if a != b {
            let first = a
                .lines()
                .zip(b.lines())
                .position(|(x, y)| x != y)
                .unwrap_or(0);
            panic!(
                "{} differs from CPython at output line {}: ours {:?}, python {:?}",
                path.display(),
                first + 1,
                a.lines().nth(first),
                b.lines().nth(first)
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
