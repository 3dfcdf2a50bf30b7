//! `input()`: lines of stdin read by the compiled program, the interpreter and CPython (the
//! oracle, `tests/oracle/run_python.py`) give the same output for the same input: prompts
//! after the output printed before them, an `EOFError` at the end, threads printing
//! meanwhile, and a read inside `with atomic:`.

mod scratch;

use std::io::Write;
use std::process::{Command, Stdio};

/// Runs `cmd` with `stdin` as its input; its stdout, stderr and exit status.
fn run_with_input(mut cmd: Command, stdin: &str) -> (String, String, Option<i32>) {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the program");
    let mut pipe = child.stdin.take().expect("a pipe");
    pipe.write_all(stdin.as_bytes()).expect("write stdin");
    drop(pipe);
    let out = child.wait_with_output().expect("wait for the program");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (text(&out.stdout), text(&out.stderr), out.status.code())
}

/// The outputs of `src` fed `stdin`: compiled, interpreted, and under CPython.
fn three_ways(src: &str, name: &str, stdin: &str) -> [(String, String, Option<i32>); 3] {
    let dir = scratch::dir("stdin_input");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("{name}.lang"));
    std::fs::write(&path, src).unwrap();
    let stmjit = |interp: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
        cmd.arg("run");
        if interp {
            cmd.arg("--interp");
        }
        cmd.arg(&path);
        cmd
    };
    let mut python = Command::new("python3");
    python
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/oracle/run_python.py"
        ))
        .arg(&path);
    [
        run_with_input(stmjit(false), stdin),
        run_with_input(stmjit(true), stdin),
        run_with_input(python, stdin),
    ]
}

const SUM_LINES: &str = r#"
def worker(n):
    s = 0
    for i in range(20000):
        with atomic:
            s += i % n
    return s
total = 0
count = 0
t = spawn(worker, 7)
print("reading")
while True:
    try:
        line = input("> ")
    except EOFError as e:
        print("end:", e)
        break
    count += 1
    if line.strip():
        total += int(line)
print(count, total, t.join())
with atomic:
    print("in atomic")
    try:
        input("again? ")
    except EOFError:
        print("still at the end")
"#;

/// Lines summed until the end of the input, with prompts, a thread and an atomic block.
#[test]
fn input_reads_lines_as_cpython_does() {
    let [jit, interp, python] = three_ways(SUM_LINES, "sum_lines", "1\n2\r\n\n  40\n-3");
    assert_eq!(python.2, Some(0), "CPython: {}", python.1);
    // Five lines, then the end: six prompts; the thread ran meanwhile.
    let want = "reading\n> > > > > > end: EOF when reading a line\n5 40 59997\nin atomic\nagain? still at the end\n";
    assert_eq!(python.0, want);
    for (who, got) in [("jit", &jit), ("interpreter", &interp)] {
        assert_eq!(got.2, Some(0), "{who}: {}", got.1);
        assert_eq!(got.0, want, "{who}");
    }
}

/// An `EOFError` nobody catches ends the program as CPython's does (exit status 1), after the
/// prompt; `input` takes at most one argument.
#[test]
fn input_at_the_end_of_the_input_raises_eoferror() {
    let src = "print('before')\nx = input('name: ')\nprint('never')\n";
    for (who, (out, err, code)) in ["jit", "interpreter"]
        .into_iter()
        .zip(three_ways(src, "eof", ""))
    {
        assert_eq!(out, "before\nname: ", "{who}");
        assert_eq!(code, Some(1), "{who}");
        assert!(
            err.contains("EOFError: EOF when reading a line"),
            "{who}: {err}"
        );
    }
    let src = "try:\n    input(1, 2)\nexcept TypeError as e:\n    print(e)\n";
    let [jit, interp, python] = three_ways(src, "arity", "");
    assert_eq!(jit.0, python.0);
    assert_eq!(interp.0, python.0);
}

/// Environment variables of a run.
type Env = &'static [(&'static str, &'static str)];

/// Forced aborts, tiny budgets and the GIL mode read each line once: the read is never
/// undone (the transaction before it commits, the one after it is inevitable).
#[test]
fn input_reads_each_line_once_under_aborts_and_the_gil() {
    let dir = scratch::dir("stdin_input");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("once.lang");
    std::fs::write(&path, SUM_LINES).unwrap();
    let envs: &[(&[&str], Env)] = &[
        (
            &[],
            &[("STMJIT_ABORT_PROBABILITY", "0.3"), ("STMJIT_BUDGET", "3")],
        ),
        (&["--gil"], &[]),
        (&["--threads", "1"], &[("STMJIT_ABORT_PROBABILITY", "0.3")]),
    ];
    for (flags, env) in envs {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stmjit"));
        cmd.arg("run")
            .args(*flags)
            .arg(&path)
            .envs(env.iter().copied());
        let (out, err, code) = run_with_input(cmd, "5\n6\n");
        assert_eq!(code, Some(0), "{flags:?} {env:?}: {err}");
        assert_eq!(
            out,
            "reading\n> > > end: EOF when reading a line\n2 11 59997\nin atomic\nagain? still at the end\n",
            "{flags:?} {env:?}"
        );
    }
}
