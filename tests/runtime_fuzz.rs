//! Random, ill-typed programs through the whole `stmjit run --interp` pipeline: each must end
//! with status 0 (no error), 1 (a runtime error printed as `error: Kind: message` plus `at`
//! lines) or 2 (a syntax error) — never a panic, a signal or a hang.

mod scratch;

use std::process::Command;
use std::time::Duration;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[(self.next() % xs.len() as u64) as usize]
    }

    fn value(&mut self, depth: u32) -> String {
        if depth == 0 || self.next().is_multiple_of(3) {
            return self
                .pick(&[
                    "0",
                    "1",
                    "-1",
                    "4611686018427387903",
                    "-4611686018427387904",
                    "2.5",
                    "-0.0",
                    "1e308",
                    "'ab'",
                    "''",
                    "[1, 'x']",
                    "[]",
                    "{'k': 1}",
                    "{}",
                    "None",
                    "True",
                    "x",
                    "s",
                    "d",
                    "o",
                    "f",
                    "print",
                    "len",
                    "range(3)",
                    "Lock()",
                    "C",
                ])
                .to_string();
        }
        let (a, b) = (self.value(depth - 1), self.value(depth - 1));
        match self.next() % 8 {
            0 | 1 => {
                let op = self.pick(&[
                    "+", "-", "*", "/", "//", "%", "**", "<<", ">>", "&", "|", "^", "<", "==",
                    "in", "is", "and", "or", "not in", ">=",
                ]);
                format!("({a} {op} {b})")
            }
            2 => format!("{}{a}", self.pick(&["-", "~", "not ", "+"])),
            3 => format!("{a}[{b}]"),
            4 => format!("{a}[{b}:]"),
            5 => {
                let f = self.pick(&[
                    "len", "str", "int", "float", "bool", "abs", "min", "max", "sqrt", "ord",
                    "chr", "hash", "range", "f", "C", "print",
                ]);
                let n = self.next() % 3;
                let args: Vec<String> = (0..n).map(|_| self.value(depth - 1)).collect();
                format!("{f}({})", args.join(", "))
            }
            6 => {
                let m = self.pick(&[
                    "append",
                    "pop",
                    "insert",
                    "index",
                    "sort",
                    "reverse",
                    "copy",
                    "get",
                    "keys",
                    "values",
                    "items",
                    "split",
                    "join",
                    "strip",
                    "startswith",
                    "upper",
                    "lower",
                    "find",
                    "m",
                    "nope",
                ]);
                let n = self.next() % 3;
                let args: Vec<String> = (0..n).map(|_| self.value(depth - 1)).collect();
                format!("{a}.{m}({})", args.join(", "))
            }
            _ => format!("{a}.{}", self.pick(&["v", "m", "nope", "append"])),
        }
    }

    fn program(&mut self) -> String {
        let mut p = String::from(
            "x = 3\ns = 'str'\nd = {'a': [1, 2]}\n\
             class C:\n    def __init__(self):\n        self.v = 1\n    def m(self, a):\n        return [self.v, a]\n\
             o = C()\n\
             def f(a):\n    return f(a) if a == 'recurse' else a\n",
        );
        for _ in 0..6 {
            let v = self.value(3);
            let line = match self.next() % 6 {
                0 => format!("x = {v}"),
                1 => format!("print({v})"),
                2 => format!("d[{}] = {v}", self.value(1)),
                3 => format!("for i in {v}:\n    print(i)"),
                4 => format!("with {v}:\n    x = 1"),
                _ => format!("o.v += {v}"),
            };
            p.push_str(&line);
            p.push('\n');
        }
        p
    }
}

#[test]
fn ill_typed_programs_end_cleanly() {
    let dir = scratch::dir("rtfuzz");
    std::fs::create_dir_all(&dir).unwrap();
    let mut rng = Rng(0xdead_beef_1234_5678);
    let mut errors = 0;
    for i in 0..1500 {
        let path = dir.join(format!("p{i}.lang"));
        let program = rng.program();
        std::fs::write(&path, &program).unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_stmjit"))
            .args(["run", "--interp"])
            .arg(&path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let start = std::time::Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if start.elapsed() > Duration::from_secs(20) {
                let _ = child.kill();
                panic!("hang on:\n{program}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        match status.code() {
            Some(0) => assert!(stderr.is_empty(), "{stderr}\n{program}"),
            Some(1) => {
                errors += 1;
                let mut lines = stderr.lines();
                let first = lines.next().unwrap_or("");
                assert!(first.starts_with("error: "), "{stderr}\n{program}");
                // `at` lines, each followed by its source line and caret (4-space indent),
                // collapsed runs of identical frames, and a spawned thread's origin.
                assert!(
                    lines.all(|l| (l.starts_with("  at ") && l.contains(" in "))
                        || l.starts_with("    ")
                        || l.starts_with("  [previous frame repeated ")
                        || l.starts_with("  in the thread spawned at ")),
                    "{stderr}\n{program}"
                );
            }
            Some(2) => assert!(
                stderr.starts_with("error: SyntaxError: "),
                "{stderr}\n{program}"
            ),
            other => panic!("status {other:?}, stderr:\n{stderr}\nprogram:\n{program}"),
        }
        assert!(!stderr.contains("panicked"), "{stderr}\n{program}");
    }
    assert!(
        errors > 100,
        "the generator should provoke many runtime errors ({errors})"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
