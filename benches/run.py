#!/usr/bin/env python3
"""The benchmark runner: builds what it needs, runs the program suite (benches/programs/) on stmjit
and on its peers side by side, checks that every checksum agrees, and writes a Markdown report.

usage:
  python3 benches/run.py all              moderate sizes, 5 runs each, writes benches/REPORT.md
  python3 benches/run.py --quick          tiny sizes, 1 run: a smoke test of every checksum
                                          (exit status 1 on any mismatch or failure)
  python3 benches/run.py all --programs bank,primes --runs 3 --sizes large

options:
  --stmjit-mode MODES   comma-separated: interp (the reference interpreter, `run --interp`) and/or
                        jit (the default `run`); env STMJIT_MODE; default: interp
  --threads LIST        thread counts for the multi-threaded systems (default 1..CPUs present)
  --runs N              runs per (program, system, threads); the median is reported (default 5)
  --sizes quick|moderate|large
  --programs LIST       a subset of the programs
  --peers LIST          a subset of: cpython,pypy,c,libitm,rust-stm (default all)
  --report PATH         where to write the report (default benches/REPORT.md; with --quick,
                        benches/build/REPORT-quick.md)
  --no-build            use what is already built
  --skip-quick          with `all`, skip the quick checksum pass that runs first
environment:
  STMJIT_BIN            the stmjit binary (default target/release/stmjit, built with cargo)
  STMJIT_MODE           as --stmjit-mode
  STMJIT_FLAGS          extra flags given to every `stmjit run` (e.g. "--segment-base r15")
  PYTHON3, PYPY3        the Python interpreters (default python3, pypy3)

Systems are interleaved (every system runs once, then every system again, ...) so that the noise of
a shared machine falls on all of them alike. Times are wall-clock seconds of the whole process,
start-up included.
"""
import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import time

BENCHES = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCHES)
PROGRAMS_DIR = os.path.join(BENCHES, "programs")
BUILD = os.path.join(BENCHES, "build")
RUN_PYTHON = os.path.join(ROOT, "tests", "oracle", "run_python.py")
RUST_STM = os.path.join(BENCHES, "peers", "rust-stm")
C_PEERS = os.path.join(BENCHES, "peers", "c")

# ---------------------------------------------------------------------------------------------
# How stmjit is invoked: the one place to change when the JIT's flags land.
# ---------------------------------------------------------------------------------------------
STMJIT_MODES = {
    # mode name -> flags after `stmjit run`
    "interp": ["--interp"],
    "jit": [],
}
GIL_FLAG = ["--gil"]  # run under a global lock instead of STM (the JIT's baseline)


def threads_flag(n):
    return ["--threads", str(n)]  # the number of segments/threads the runtime may use


MODE_LABELS = {
    "interp": "stmjit numbers are from the reference interpreter (`--interp`); the JIT is not built yet",
    "jit": "stmjit numbers are from the Cranelift JIT (`stmjit run`)",
}
# When both modes run side by side, the interpreter's label must not claim that there is no JIT.
MODE_LABELS_BOTH = {
    "interp": "`stmjit interp` rows are from the reference interpreter (`--interp`, one global lock)",
    "jit": "`stmjit jit` rows are from the Cranelift JIT (`stmjit run`), which is still being written: "
           "preliminary figures",
}

# ---------------------------------------------------------------------------------------------
# The suite. size: the program's first argument. threaded: the program spawns THREADS threads
# (its second argument); otherwise it uses a TransactionQueue, whose parallelism is the runtime's.
# ---------------------------------------------------------------------------------------------
PROGRAMS = {
    #  name          quick   moderate  large    threaded  peers
    "primes":      ("20000", "500000", "2000000", True, ["c"]),
    "nqueens":     ("6", "12", "13", True, ["c"]),
    "binarytrees": ("6", "13", "15", True, []),
    "richards":    ("4", "80", "300", True, []),
    "mandelbrot":  ("40", "250", "800", True, []),
    "bank":        ("2000", "500000", "2000000", True, ["libitm", "rust-stm"]),
    "wordcount":   ("2000", "300000", "2000000", True, []),
    "isqrt":       ("2000", "200000", "1000000", False, []),
    "microtx":     ("2000", "3000000", "10000000", True, []),
    "microtq":     ("2000", "500000", "3000000", False, []),
    "server":      ("1000", "100000", "500000", False, []),
}
SIZE_INDEX = {"quick": 0, "moderate": 1, "large": 2}
LIBITM_METHODS = ["ml_wt", "gl_wt", "default"]
ALL_PEERS = ["cpython", "pypy", "c", "libitm", "rust-stm"]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def first_line(cmd):
    try:
        r = sh(cmd)
        return (r.stdout.strip().splitlines() or ["?"])[0]
    except OSError:
        return "not found"


# ---------------------------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------------------------
class Env:
    def __init__(self):
        self.notes = []  # lines for the report about what was missing or not accepted
        self.stmjit = os.environ.get("STMJIT_BIN") or os.path.join(ROOT, "target", "release", "stmjit")
        self.python3 = os.environ.get("PYTHON3", "python3")
        self.pypy3 = os.environ.get("PYPY3", "pypy3")
        self.extra = shlex.split(os.environ.get("STMJIT_FLAGS", ""))
        self.have_gil = False
        self.have_threads = False
        self.have_pypy = False
        self.bins = {}

    def build(self, no_build, peers):
        os.makedirs(BUILD, exist_ok=True)
        if not no_build and not os.environ.get("STMJIT_BIN"):
            log("building stmjit (cargo build --release) ...")
            r = subprocess.run(["cargo", "build", "--release"], cwd=ROOT)
            if r.returncode != 0:
                sys.exit("cargo build --release failed")
        if not os.access(self.stmjit, os.X_OK):
            sys.exit(f"no stmjit binary at {self.stmjit} (build it, or set STMJIT_BIN)")
        helptext = sh([self.stmjit, "run", "--help"]).stdout
        self.have_gil = GIL_FLAG[0] in helptext
        self.have_threads = threads_flag(1)[0] in helptext
        if not self.have_gil:
            self.notes.append(
                f"`stmjit run` does not accept `{GIL_FLAG[0]}` yet (checked with `stmjit run --help`): "
                "no GIL-mode figures, and no STM/GIL ratios.")
        if not self.have_threads:
            self.notes.append(
                f"`stmjit run` does not accept `{threads_flag(1)[0]}` yet: the threaded programs still "
                "spawn THREADS threads (their argument), but the runtime's own parallelism cannot be "
                "limited, so the TransactionQueue programs (isqrt, microtq, server) run once, at the runtime's default.")
        if "--stats" not in helptext:
            self.notes.append("`stmjit run` does not accept `--stats` yet: no abort counts or "
                              "sync-pause shares (the runner does not parse them yet either).")
        if "pypy" in peers:
            if shutil.which(self.pypy3) is None and not no_build:
                log("pypy3 missing: apt-get install -y pypy3 ...")
                subprocess.run(["apt-get", "install", "-y", "pypy3"], stdout=subprocess.DEVNULL)
            self.have_pypy = shutil.which(self.pypy3) is not None
            if not self.have_pypy:
                self.notes.append("pypy3 is not installed and could not be installed: no PyPy3 figures.")
        cc = os.environ.get("CC", "gcc")
        for name, flags in [("parallel_probe", []), ("primes", []), ("nqueens", []), ("bank_tm", ["-fgnu-tm"])]:
            kind = {"bank_tm": "libitm", "parallel_probe": "probe"}.get(name, "c")
            if kind not in peers and kind != "probe":
                continue
            out = os.path.join(BUILD, name)
            src = os.path.join(C_PEERS, name + ".c")
            if no_build and os.path.exists(out):
                self.bins[name] = out
                continue
            r = sh([cc, "-O2", "-pthread"] + flags + [src, "-o", out])
            if r.returncode == 0:
                self.bins[name] = out
            else:
                self.notes.append(f"`{cc} -O2 {' '.join(flags)} {name}.c` failed: {r.stdout.strip()[:300]}")
        if "rust-stm" in peers:
            out = os.path.join(RUST_STM, "target", "release", "bank-stm")
            if not no_build:
                log("building the Rust stm peer (cargo build --release) ...")
                subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=RUST_STM)
            if os.access(out, os.X_OK):
                self.bins["bank-stm"] = out
            else:
                self.notes.append("the Rust `stm` peer did not build: no rust-stm figures.")


# ---------------------------------------------------------------------------------------------
# Systems: (label, kind, threads) -> argv
# ---------------------------------------------------------------------------------------------
class System:
    def __init__(self, label, group, threads, argv, env=None):
        self.label = label  # e.g. "stmjit interp"
        self.group = group  # "stmjit" | "gil" | "peer"
        self.threads = threads  # int, or None when the system's parallelism is not ours to set
        self.argv = argv
        self.env = env


def systems_for(prog, env, modes, thread_counts, peers, size):
    path = os.path.join(PROGRAMS_DIR, prog + ".lang")
    _, _, _, threaded, prog_peers = PROGRAMS[prog]
    out = []
    tcounts = thread_counts if (threaded or env.have_threads) else [None]
    for mode in modes:
        for gil in ([False, True] if env.have_gil else [False]):
            for t in tcounts:
                flags = list(STMJIT_MODES[mode]) + env.extra
                if gil:
                    flags += GIL_FLAG
                if t is not None and env.have_threads:
                    flags += threads_flag(t)
                label = f"stmjit {mode}" + (" --gil" if gil else "")
                out.append(System(label, "gil" if gil else "stmjit", t,
                                  [env.stmjit, "run"] + flags + [path, size, str(t or 1)]))
    py_threads = thread_counts if threaded else [None]
    pys = []
    if "cpython" in peers:
        pys.append(("CPython 3", env.python3))
    if "pypy" in peers and env.have_pypy:
        pys.append(("PyPy3", env.pypy3))
    for label, exe in pys:
        for t in py_threads:
            out.append(System(label, "peer", t, [exe, RUN_PYTHON, path, size, str(t or 1)]))
    for p in prog_peers:
        if p not in peers:
            continue
        if p == "c" and prog in env.bins:
            for t in thread_counts:
                out.append(System("C pthreads -O2", "peer", t, [env.bins[prog], size, str(t)]))
        if p == "libitm" and "bank_tm" in env.bins:
            for m in LIBITM_METHODS:
                e = dict(os.environ)
                e.pop("ITM_DEFAULT_METHOD", None)
                if m != "default":
                    e["ITM_DEFAULT_METHOD"] = m
                for t in thread_counts:
                    out.append(System(f"C libitm {m}", "peer", t, [env.bins["bank_tm"], size, str(t)], e))
        if p == "rust-stm" and "bank-stm" in env.bins:
            for t in thread_counts:
                out.append(System("Rust stm crate", "peer", t, [env.bins["bank-stm"], size, str(t)]))
    return out


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------
class Result:
    def __init__(self, system):
        self.system = system
        self.times = []
        self.outputs = set()  # last lines of stdout (the checksum)
        self.error = None

    def median(self):
        return statistics.median(self.times) if self.times else None


def run_once(system, timeout):
    t0 = time.perf_counter()
    try:
        r = subprocess.run(system.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=system.env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, None, f"timed out after {timeout} s"
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or ["(no message)"])[0]
        return None, None, f"exit {r.returncode}: {msg}"
    lines = r.stdout.strip().splitlines()
    return dt, (lines[-1] if lines else ""), None


def run_program(prog, systems, runs, timeout, quiet=False):
    results = [Result(s) for s in systems]
    for rep in range(runs):
        for res in results:
            if res.error:
                continue
            dt, line, err = run_once(res.system, timeout)
            if err:
                res.error = err
                log(f"  {prog}: {res.system.label} t={res.system.threads}: FAILED {err}")
                continue
            res.times.append(dt)
            res.outputs.add(line)
        done = ", ".join(f"{r.system.label}/{r.system.threads or '-'} {r.times[-1]:.2f}"
                         for r in results if r.times and len(r.times) == rep + 1)
        if not quiet:
            log(f"  {prog} run {rep + 1}/{runs}: {done}")
    return results


def probe_parallelism(env, tmax, iterations, rounds=3):
    """Speed-up of a pure C busy loop at tmax threads over 1 thread (ideal: tmax), or None."""
    exe = env.bins.get("parallel_probe")
    if exe is None or tmax < 2:
        return None
    one, many = [], []
    for _ in range(rounds):
        for n, acc in ((1, one), (tmax, many)):
            t0 = time.perf_counter()
            subprocess.run([exe, str(n), str(iterations)], check=False)
            acc.append(time.perf_counter() - t0)
    return statistics.median(one) / statistics.median(many)


def reference_checksum(results):
    """The checksum every system must print: CPython's (the oracle), else the most common one."""
    for r in results:
        if r.system.label == "CPython 3" and len(r.outputs) == 1:
            return next(iter(r.outputs))
    counts = {}
    for r in results:
        for o in r.outputs:
            counts[o] = counts.get(o, 0) + 1
    return max(counts, key=counts.get) if counts else None


# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
def machine_details(stmjit_bin):
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
        flags = open("/proc/cpuinfo").read()
        rtm = " rtm" in flags
    except OSError:
        rtm = False
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        mem = 0
    commit = first_line(["git", "-C", ROOT, "log", "-1", "--format=%h %s"])
    try:
        built = datetime.datetime.fromtimestamp(os.path.getmtime(stmjit_bin), datetime.timezone.utc)
        built = built.strftime("%Y-%m-%d %H:%M UTC")
    except OSError:
        built = "?"
    return [
        ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
        ("CPU", f"{model} ({'with' if rtm else 'without'} RTM)"),
        ("cores", f"{len(os.sched_getaffinity(0))} usable ({os.cpu_count()} present)"),
        ("memory", f"{mem:.0f} GiB"),
        ("kernel", platform.release()),
        ("repository HEAD at report time", commit),
        ("stmjit binary built", built),
        ("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg())),
    ]


def fmt(x, digits=3):
    if x is None:
        return "—"
    return f"{x:.{digits}f}"


def ratio(a, b):
    return None if (a is None or b is None or b == 0) else a / b


def write_report(path, env, args, modes, thread_counts, all_results, versions, elapsed, probes, quick_note):
    L = []
    A = L.append
    title = "quick check" if args.quick else "results"
    A(f"# stmjit benchmarks: {title}\n")
    A("Generated by `python3 benches/run.py " + " ".join(sys.argv[1:]) + "`; do not edit by hand.\n")
    labels = MODE_LABELS_BOTH if len(modes) > 1 else MODE_LABELS
    for m in modes:
        A(f"**{labels[m]}.**\n")
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no", "--",
                "runtime", "lang", "jit", "src", "Cargo.toml"]).stdout.split("\n")
    dirty = [d[3:] for d in dirty if d.strip()]
    if dirty:
        A("*When this report was written the working tree had uncommitted changes in "
          + ", ".join(f"`{d}`" for d in dirty) + " (work in progress); a stmjit binary built from "
          "this tree includes them.*\n")
    if env.notes:
        A("## What this run could not measure\n")
        for n in env.notes:
            A(f"- {n}")
        A("")
    A("## Machine\n")
    A("| | |\n|---|---|")
    for k, v in machine_details(env.stmjit):
        A(f"| {k} | {v} |")
    for k, v in versions:
        A(f"| {k} | {v} |")
    tmax = max(thread_counts)
    for when, sp in probes:
        if sp is not None:
            A(f"| parallelism ({when}) | a pure C busy loop runs {sp:.2f}x faster on {tmax} threads "
              f"than on 1 (ideal {tmax}) |")
    A("")
    measured = [sp for _, sp in probes if sp is not None]
    if measured and min(measured) < 0.75 * tmax:
        A(f"**Warning: this machine did not give {tmax} threads {tmax} cores during this run (the C busy "
          f"loop reached {min(measured):.2f}x of an ideal {tmax}x: the cores are shared with other work). "
          "The multi-thread rows and speed-ups below measure time-slicing, not parallel scaling; "
          "read them as such and rerun on a quiet machine with more cores.**\n")
    A(f"Sizes: `{args.sizes}`; {args.runs} runs of every (program, system, threads), interleaved; "
      f"times are the **median** wall-clock seconds of the whole process (start-up included). "
      f"Threads: {', '.join(map(str, thread_counts))}. Whole run: {elapsed:.0f} s. "
      "On a small shared machine the absolute times are noisy; the ratios of systems measured side "
      "by side are the figures to read.\n")

    A("## Checksums\n")
    A("Every system must print the same last line (CPython with `tests/oracle/prelude.py` is the "
      "reference), at every thread count.\n")
    if quick_note:
        A(quick_note + "\n")
    A("| program | size | checksum | agree |\n|---|---|---|---|")
    for prog, size, results in all_results:
        ref = reference_checksum(results)
        bad = [f"{r.system.label}/{r.system.threads or '-'}: `{o}`" for r in results for o in r.outputs if o != ref]
        failed = [f"{r.system.label}/{r.system.threads or '-'} failed ({r.error})" for r in results if r.error]
        ok = "yes" if not bad and not failed else "**NO** " + "; ".join(bad + failed)
        A(f"| {prog} | {size} | `{ref}` | {ok} |")
    A("")

    base_mode = modes[0]
    A(f"## Times\n")
    A(f"Median seconds. *vs stmjit 1T*: time / time of `stmjit {base_mode}` with 1 thread (lower is "
      "faster). *vs --gil*: stmjit STM time / stmjit `--gil` time at the same thread count "
      "(the STM overhead; needs `--gil`). *speed-up*: time at 1 thread / time at this count.\n")
    for prog, size, results in all_results:
        A(f"### {prog} ({size})\n")
        A("| system | threads | median s | min s | vs stmjit 1T | vs --gil | speed-up |")
        A("|---|---|---|---|---|---|---|")
        base = None
        for r in results:
            if r.system.label == f"stmjit {base_mode}" and r.system.threads in (1, None):
                base = r.median()
                break
        by = {(r.system.label, r.system.threads): r for r in results}
        for r in results:
            s = r.system
            med = r.median()
            if r.error:
                A(f"| {s.label} | {s.threads or 'runtime'} | failed: {r.error} | | | | |")
                continue
            gil = None
            if s.group == "stmjit":
                g = by.get((s.label + " --gil", s.threads))
                gil = ratio(med, g.median() if g else None)
            one = by.get((s.label, 1))
            sp = ratio(one.median() if one else None, med) if s.threads and s.threads > 1 else None
            A(f"| {s.label} | {s.threads or 'runtime'} | {fmt(med)} | {fmt(min(r.times) if r.times else None)} "
              f"| {fmt(ratio(med, base), 2)} | {fmt(gil, 2)} | {fmt(sp, 2)} |")
        A("")

    # Summary: one line per program, the best thread count of each system family.
    A("## Summary\n")
    tmax = max(thread_counts)
    A(f"Median seconds at 1 thread and at {tmax} threads (T={tmax}), side by side.\n")
    cols = []
    for prog, size, results in all_results:
        for r in results:
            if r.system.label not in cols:
                cols.append(r.system.label)
    A("| program | " + " | ".join(cols) + " |")
    A("|---|" + "---|" * len(cols))
    for prog, size, results in all_results:
        cells = []
        for c in cols:
            rs = [r for r in results if r.system.label == c and not r.error]
            if not rs:
                cells.append("")
                continue
            one = [r for r in rs if r.system.threads in (1, None)]
            many = [r for r in rs if r.system.threads == tmax and tmax != 1]
            txt = fmt(one[0].median(), 2) if one else "—"
            if many:
                txt += f" / {fmt(many[0].median(), 2)}"
            cells.append(txt)
        A(f"| {prog} | " + " | ".join(cells) + " |")
    A("")
    A("Cells: `1 thread / T threads`; a single number where the system's parallelism is not set by "
      "the runner (TransactionQueue programs) or only one thread count was run.\n")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stmjit-mode", default=os.environ.get("STMJIT_MODE", "interp"))
    ap.add_argument("--threads", default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--sizes", default=None, choices=list(SIZE_INDEX))
    ap.add_argument("--programs", default=",".join(PROGRAMS))
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--report", default=None)
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip-quick", action="store_true", help="`all` without the quick checksum pass first")
    args = ap.parse_args()
    if args.sizes is None:
        args.sizes = "quick" if args.quick else "moderate"
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.report is None:
        args.report = os.path.join(BUILD, "REPORT-quick.md") if args.quick else os.path.join(BENCHES, "REPORT.md")
    modes = [m for m in args.stmjit_mode.split(",") if m]
    for m in modes:
        if m not in STMJIT_MODES:
            sys.exit(f"unknown --stmjit-mode {m} (known: {', '.join(STMJIT_MODES)})")
    progs = [p for p in args.programs.split(",") if p]
    for p in progs:
        if p not in PROGRAMS:
            sys.exit(f"unknown program {p} (known: {', '.join(PROGRAMS)})")
    peers = [p for p in args.peers.split(",") if p]
    ncpu = len(os.sched_getaffinity(0))
    thread_counts = [int(x) for x in args.threads.split(",")] if args.threads else list(range(1, ncpu + 1))

    t_start = time.time()
    failures = 0
    env = Env()
    env.build(args.no_build, peers)
    versions = [
        ("stmjit", f"`{env.stmjit}` " + " ".join(f"`{' '.join(STMJIT_MODES[m]) or '(jit)'}`" for m in modes)),
        ("CPython", first_line([env.python3, "--version"])),
        ("PyPy3", first_line([env.pypy3, "--version"]) if env.have_pypy else "not used"),
        ("gcc", first_line([os.environ.get("CC", "gcc"), "--version"])),
        ("rustc", first_line(["rustc", "--version"])),
    ]
    quick_note = None
    if not args.quick and not args.skip_quick:
        log("quick check of every checksum (tiny sizes, 1 run) ...")
        bad, n = [], 0
        for prog in progs:
            size = PROGRAMS[prog][SIZE_INDEX["quick"]]
            results = run_program(prog, systems_for(prog, env, modes, thread_counts, peers, size), 1,
                                  args.timeout, quiet=True)
            ref = reference_checksum(results)
            for r in results:
                n += 1
                if r.error or any(o != ref for o in r.outputs):
                    bad.append(f"{prog}: {r.system.label}/{r.system.threads or '-'} "
                               f"{r.error or sorted(r.outputs)} (expected {ref})")
        failures += len(bad)
        quick_note = (f"Quick check (sizes `quick`, every program on every system and thread count, "
                      f"{n} runs): " + ("all checksums agree." if not bad else "**FAILED**: " + "; ".join(bad)))
        log(quick_note)
    probe_iters = 300_000_000 if args.quick else 2_000_000_000
    log("measuring the machine's parallelism (C busy loop, 1 vs max threads) ...")
    probes = [("start of run", probe_parallelism(env, max(thread_counts), probe_iters))]
    all_results = []
    for prog in progs:
        size = PROGRAMS[prog][SIZE_INDEX[args.sizes]]
        systems = systems_for(prog, env, modes, thread_counts, peers, size)
        log(f"{prog} (size {size}): {len(systems)} systems x {args.runs} runs")
        results = run_program(prog, systems, args.runs, args.timeout)
        ref = reference_checksum(results)
        for r in results:
            if r.error or any(o != ref for o in r.outputs):
                failures += 1
                log(f"  MISMATCH/FAILURE {prog}: {r.system.label} t={r.system.threads}: "
                    f"{r.error or sorted(r.outputs)} (expected {ref})")
        all_results.append((prog, size, results))
    probes.append(("end of run", probe_parallelism(env, max(thread_counts), probe_iters)))
    elapsed = time.time() - t_start
    write_report(args.report, env, args, modes, thread_counts, all_results, versions, elapsed, probes,
                 quick_note)
    log(f"wrote {args.report} ({elapsed:.0f} s); {failures} failures or mismatches")
    for n in env.notes:
        log("note: " + n)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
