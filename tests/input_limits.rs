//! Hostile input: a source beyond the 64 MiB limit is refused after reading the limit (exit 2,
//! bounded memory), and a syntax error on a huge line shows a bounded excerpt.

mod scratch;

use std::process::Command;

fn stmjit(args: &[&str], file: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_stmjit"))
        .args(args)
        .arg(file)
        .output()
        .unwrap()
}

fn temp(name: &str) -> std::path::PathBuf {
    let dir = scratch::dir("limits");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

#[test]
fn sources_beyond_64_mib_are_refused() {
    // A sparse file one byte over the limit, and a device that never ends.
    let big = temp("big.lang");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(stmjit_lang::MAX_SOURCE_BYTES + 1).unwrap();
    drop(f);
    for file in [big.as_path(), std::path::Path::new("/dev/zero")] {
        for args in [&["run"][..], &["run", "--interp"][..]] {
            let out = stmjit(args, file);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{err}");
            assert!(
                err.contains("the source is larger than 64 MiB"),
                "{}: {err}",
                file.display()
            );
        }
    }
    let _ = std::fs::remove_file(&big);
}

#[test]
fn a_syntax_error_on_a_huge_line_shows_a_bounded_excerpt() {
    // 5 MB on one line, the error far into it.
    let file = temp("wide.lang");
    let line = format!("x = [{}1 1]\n", "1, ".repeat(1_700_000));
    std::fs::write(&file, &line).unwrap();
    for args in [&["run"][..], &["run", "--interp"][..]] {
        let out = stmjit(args, &file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{}", &err[..err.len().min(500)]);
        assert!(
            err.starts_with("error: SyntaxError: "),
            "{}",
            &err[..err.len().min(500)]
        );
        assert!(err.len() < 1000, "{} bytes of diagnostic", err.len());
        // The caret still points at the offending token.
        let lines: Vec<&str> = err.lines().collect();
        let caret = lines[3].len() - 1;
        assert_eq!(lines[2].as_bytes()[caret], b'1', "{err}");
    }
}

/// A 1.2 M-element list literal (one expression of 3.6 MB) runs on both engines: it was a
/// RecursionError without a location (issue 20).
#[test]
fn a_million_element_list_literal_runs() {
    let file = temp("literal.lang");
    let n = 1_200_000;
    let src = format!(
        "xs = [{}]\nprint(len(xs), xs[0], xs[{}])\n",
        (0..n)
            .map(|i| (i % 10).to_string())
            .collect::<Vec<_>>()
            .join(", "),
        n - 1
    );
    std::fs::write(&file, src).unwrap();
    for args in [&["run"][..], &["run", "--interp"][..]] {
        let out = stmjit(args, &file);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {err}");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{n} 0 {}\n", (n - 1) % 10)
        );
    }
}

/// `stmjit run --threads 2 FILE` under `ulimit -v KIB` (address space, KiB), killed after
/// 60 s (exit 124: a server whose worker panicked never returned).
fn run_under_address_limit(kib: u64, file: &std::path::Path) -> std::process::Output {
    Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {kib} && exec timeout 60 \"$0\" run --threads 2 \"$1\""
        ))
        .arg(env!("CARGO_BIN_EXE_stmjit"))
        .arg(file)
        .output()
        .unwrap()
}

/// The smallest address-space limit (KiB, to within `step` KiB) under which `file` prints
/// `expect`. It must run under 64 TiB: a program that does not (a wrong `expect`, a crash)
/// fails the test instead of skipping it, which once hid a test that could never fail.
fn smallest_limit_that_runs(file: &std::path::Path, expect: &[u8], step: u64) -> u64 {
    let runs = |kib| {
        let out = run_under_address_limit(kib, file);
        out.status.success() && out.stdout == expect
    };
    let (mut lo, mut hi) = (1u64 << 20, 1u64 << 36);
    if !runs(hi) {
        let out = run_under_address_limit(hi, file);
        panic!(
            "{} does not print {:?} even under a 64 TiB address-space limit: {:?}, stdout {:?}, stderr {:?}",
            file.display(),
            String::from_utf8_lossy(expect),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    while hi - lo > step {
        let mid = (lo + hi) / 2;
        if runs(mid) {
            hi = mid
        } else {
            lo = mid
        }
    }
    hi
}

/// Asserts that `file` under `ulimit -v kib` ends with a `MemoryError` (exit 1, no panic);
/// its message.
fn assert_memory_error(kib: u64, file: &std::path::Path, runs_from: u64) -> String {
    check_memory_error(run_under_address_limit(kib, file), kib, runs_from)
}

/// Asserts that `out`, a run under `ulimit -v kib`, ended with a `MemoryError` (exit 1, no
/// panic); its message.
fn check_memory_error(out: std::process::Output, kib: u64, runs_from: u64) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.code() == Some(1)
            && err.starts_with("error: MemoryError: ")
            && !err.contains("panicked"),
        "ulimit -v {kib} (runs from {runs_from}): exit {:?}: {err}",
        out.status.code()
    );
    err
}

/// An address-space limit too small for the runtime is a clean `MemoryError` at every size,
/// never a panic: the big-stack parser thread, the segment reservation, the GC side tables
/// and the main thread's shadow stack each say what they could not map (the side tables and
/// the shadow stack panicked, exit 101, just under the smallest limit that runs; the
/// reservation's error had no kind).
#[test]
fn too_small_an_address_space_is_an_error_not_a_panic() {
    let file = temp("one.lang");
    std::fs::write(&file, "print(1)\n").unwrap();
    let hi = smallest_limit_that_runs(&file, b"1\n", 4096);
    let below = (1..=32u64).map(|k| hi - k * 4096).chain([1 << 20, 4 << 20]);
    for kib in below {
        assert_memory_error(kib, &file, hi);
    }
}

/// The idle collector's thread starts right after the runtime's GC side tables are mapped:
/// under the address-space limits where its stack just fits but not what a std thread maps
/// next in the new thread (its signal stack), std panicked in `stmjit-idle-gc` ("failed to
/// allocate an alternative stack"), or the thread's first allocation failed (`memory
/// allocation of 41 bytes failed`, glibc's `failed to register TLS destructor`), an abort,
/// once a hang (issue 20). Every limit from where the side tables fit to 384 KiB above it
/// is a clean outcome: the program's output, or a `MemoryError` and nothing else.
#[test]
fn an_idle_collector_that_cannot_start_is_no_panic() {
    let file = temp("idle.lang");
    std::fs::write(&file, "print(1)\n").unwrap();
    let hi = smallest_limit_that_runs(&file, b"1\n", 4096);
    // The smallest limit (KiB) under which the runtime is made (the side tables fit): the
    // run fails no earlier than at the main thread's driver.
    let no_runtime = |kib| {
        let out = run_under_address_limit(kib, &file);
        !out.status.success()
            && !String::from_utf8_lossy(&out.stderr).contains("cannot start the main thread")
    };
    let (mut lo, mut tables) = (1u64 << 20, hi);
    while tables - lo > 1 {
        let mid = (lo + tables) / 2;
        if no_runtime(mid) {
            lo = mid
        } else {
            tables = mid
        }
    }
    for kib in tables..(tables + 384).min(hi) {
        let out = run_under_address_limit(kib, &file);
        if out.status.success() && out.stdout == b"1\n" {
            continue;
        }
        let err = check_memory_error(out, kib, hi);
        assert!(
            !err.contains("memory allocation of") && !err.contains("Fatal glibc error"),
            "ulimit -v {kib} (side tables fit from {tables}): {err}"
        );
    }
}

/// A function whose code cannot be mapped (the address space runs out at its first call)
/// raises a `MemoryError` at the call, not a `RuntimeError` (issue 20), and a limit just
/// too small for the main thread's driver after `<module>` compiled is one too (it
/// panicked).
#[test]
fn code_that_cannot_be_mapped_is_a_memory_error() {
    let file = temp("code.lang");
    // A function of ~350 KiB of code: a window of limits where everything but its code fits.
    let mut src = String::from("def g(x):\n");
    for i in 0..1500 {
        src += &format!("    x = x * 3 + {i}\n");
    }
    src += "    return x\n\nprint(g(1) % 7)\n";
    std::fs::write(&file, &src).unwrap();
    let hi = smallest_limit_that_runs(&file, b"0\n", 16);
    let err = assert_memory_error(hi - 64, &file, hi);
    assert!(
        err.starts_with("error: MemoryError: cannot compile function 'g': ")
            && err.contains(&format!("at {}:1504:7 in <module>", file.display())),
        "ulimit -v {} (runs from {hi}): {err}",
        hi - 64
    );
    // Every 256 KiB over 12 MiB below: the code, the driver's shadow stack, the side tables.
    for kib in (1..=48u64).map(|k| hi - k * 256) {
        assert_memory_error(kib, &file, hi);
    }
}

/// Runs `file` (which prints `expect`) under 48 address-space limits from just under the
/// smallest that runs down to a quarter of it (where the runtime itself no longer fits):
/// each run prints `expect` or ends with a `MemoryError`, never a panic, and some of them
/// with one at `call` (`line:col`), where worker threads start. How much address space the
/// threads take varies from run to run (malloc arenas), so a limit in between may run or
/// fail: either is right.
fn workers_that_cannot_start_are_a_memory_error(file: &std::path::Path, expect: &[u8], call: &str) {
    let hi = smallest_limit_that_runs(file, expect, 4096);
    let mut at_the_call = 0;
    for kib in (1..=48u64).map(|k| hi - k * (hi / 64)) {
        let out = run_under_address_limit(kib, file);
        if out.status.success() && out.stdout == expect {
            continue;
        }
        let err = check_memory_error(out, kib, hi);
        if err.contains(&format!("at {}:{call} in <module>", file.display())) {
            at_the_call += 1;
        }
    }
    assert!(
        at_the_call > 0,
        "no limit reached the workers (runs from {hi} KiB)"
    );
}

/// A TransactionQueue whose worker threads cannot start (no address space left for their
/// stacks or shadow stacks) ends with a `MemoryError` at `q.run()`: the worker's thread and
/// its driver panicked (exit 101) below about twice the smallest limit that runs.
#[test]
fn queue_workers_that_cannot_start_are_a_memory_error() {
    let file = temp("queue.lang");
    std::fs::write(
        &file,
        "q = TransactionQueue()\nout = [0] * 8\ndef work(i):\n    out[i] = i * i\n\
         for i in range(8):\n    q.add(work, i)\nq.run()\nprint(sum(out))\n",
    )
    .unwrap();
    workers_that_cannot_start_are_a_memory_error(&file, b"140\n", "7:1");
}

/// The same for a server's workers: `serve()` raises a `MemoryError` (its worker thread
/// panicked, exit 101, then `serve` raised a ValueError). `shutdown()` first makes the
/// server stop as soon as its workers have started.
#[test]
fn server_workers_that_cannot_start_are_a_memory_error() {
    let file = temp("server.lang");
    std::fs::write(
        &file,
        "def h(req):\n    return [200, \"text/plain\", \"ok\\n\"]\n\
         shutdown()\nserve(0, h)\nprint(\"done\")\n",
    )
    .unwrap();
    workers_that_cannot_start_are_a_memory_error(&file, b"done\n", "4:1");
}
