#!/usr/bin/env python3
"""The benchmark runner: builds what it needs, runs the program suite (benches/programs/) on stmjit
and on its peers side by side, checks that every checksum agrees, and writes a Markdown report.

usage:
  python3 benches/run.py all              moderate sizes, 5 runs each, writes benches/RESULTS.md
  python3 benches/run.py --quick          tiny sizes, 1 run: a smoke test of every checksum
                                          (exit status 1 on any mismatch or failure)
  python3 benches/run.py all --programs bank,primes --runs 3 --sizes large

options:
  --stmjit-mode MODES   comma-separated: jit (the default `run`) and/or interp (the reference
                        interpreter, `run --interp`); env STMJIT_MODE; default: jit
  --threads LIST        thread counts for the multi-threaded systems (default 1..CPUs present)
  --runs N              runs per (program, system, threads); the median is reported (default 5)
  --sizes quick|moderate|large|steady
                        steady: PyPy3 runs 1.0-1.5 s on one thread (per-core comparisons)
  --programs LIST       a subset of the programs
  --peers LIST          a subset of: cpython,pypy,c,libitm,rust-stm (default all)
  --report PATH         where to write the report (default benches/RESULTS.md; with --quick,
                        benches/build/RESULTS-quick.md); the SVG charts go to charts/ beside it
  --label NAME          name this run's outputs (e.g. a 16-core device run): RESULTS-NAME.md,
                        charts/*-NAME.svg, results-NAME.json, so that it sits beside the default one
  --no-build            use what is already built
  --skip-quick          with `all`, skip the quick checksum pass that runs first
environment:
  STMJIT_BIN            the stmjit binary (default target/release/stmjit, built with cargo)
  STMJIT_MODE           as --stmjit-mode
  STMJIT_FLAGS          extra flags given to every `stmjit run` (e.g. "--segment-base r15")
  PYTHON3, PYPY3        the Python interpreters (default python3, pypy3)

With `--gil` in `stmjit run --help`, every thread count is also run in `--gil` mode (the baseline
of every STM figure); with `--threads`, `--threads T` is passed along with the program's THREADS
argument; with `--stats-json`, one extra `--stats-json FILE` run per (program, thread count) in STM mode gives
commits, aborts and the shares of wall time lost to aborts and sync pauses. Missing flags only
leave their columns empty ("n/a").

Systems are interleaved (every system runs once, then every system again, ...) so that the noise of
a shared machine falls on all of them alike. Times are wall-clock seconds of the whole process,
start-up included.
"""
import argparse
import datetime
import html
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
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
STATS_FLAG = ["--stats-json"]  # --stats-json FILE: commits, aborts, time lost ... as JSON at exit
# Modes that get `--gil` rows: the reference interpreter already runs under one global lock.
GIL_MODES = {"jit"}


def threads_flag(n):
    return ["--threads", str(n)]  # the number of segments/threads the runtime may use


MODE_LABELS = {
    "interp": "stmjit numbers are from the reference interpreter (`--interp`, one global lock), not the JIT",
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
    #  name          quick   moderate  large      steady      threaded  peers
    "primes":      ("20000", "500000", "2000000", "8000000", True, ["c"]),
    "primes_every": ("20000", "300000", "1000000", "5000000", True, []),
    "nqueens":     ("6", "12", "13", "14", True, ["c"]),
    "binarytrees": ("6", "13", "15", "16", True, []),
    "richards":    ("4", "80", "300", "4500", True, []),
    "mandelbrot":  ("40", "250", "800", "2000", True, []),
    "spectralnorm": ("20", "200", "1000", "2000", True, []),
    "nbody":       ("100", "20000", "200000", "600000", True, []),
    "bank":        ("2000", "500000", "2000000", "20000000", True, ["libitm", "rust-stm"]),
    "wordcount":   ("2000", "300000", "2000000", "7000000", True, []),
    "dictfill":    ("2000", "300000", "1000000", "4000000", True, []),
    "isqrt":       ("2000", "200000", "1000000", "10000000", False, []),
    "microtx":     ("2000", "3000000", "10000000", "40000000", True, []),
    "microtq":     ("2000", "500000", "3000000", "4000000", False, []),
    "server":      ("1000", "100000", "500000", "1500000", False, []),
    # start-up: 200 functions of which 5 run (generated: benches/compile/gen.py startup)
    "startup":     ("1", "1", "1", "1", False, []),
}
# `steady`: sizes at which PyPy3 needs 1.0-1.5 s of CPU on one thread (2-core AMD EPYC,
# 2026-12-07), so that neither side's start-up or warm-up decides the ratio (issue 16).
SIZE_INDEX = {"quick": 0, "moderate": 1, "large": 2, "steady": 3}
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
        self.have_stats = False
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
        self.have_stats = STATS_FLAG[0] in helptext
        if not self.have_gil:
            self.notes.append(
                f"`stmjit run` does not accept `{GIL_FLAG[0]}` yet (checked with `stmjit run --help`): "
                "no GIL-mode figures, and no STM/GIL ratios.")
        if not self.have_threads:
            self.notes.append(
                f"`stmjit run` does not accept `{threads_flag(1)[0]}` yet: the threaded programs still "
                "spawn THREADS threads (their argument), but the runtime's own parallelism cannot be "
                "limited, so the TransactionQueue programs (isqrt, microtq, server) run once, at the runtime's default.")
        if not self.have_stats:
            self.notes.append(f"`stmjit run` does not accept `{STATS_FLAG[0]}` yet: no commit or abort "
                              "counts, no abort or sync-pause shares (n/a in the tables).")
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
    threaded, prog_peers = PROGRAMS[prog][len(SIZE_INDEX):]
    out = []
    tcounts = thread_counts if (threaded or env.have_threads) else [None]
    for mode in modes:
        for gil in ([False, True] if env.have_gil and mode in GIL_MODES else [False]):
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
        self.cpu_times = []  # user + system seconds of the process (its threads together)
        self.outputs = set()  # last lines of stdout (the checksum)
        self.error = None
        self.stats = None  # from the extra `--stats-json` run (STM rows only): stats_from_json()

    def median(self):
        return statistics.median(self.times) if self.times else None

    def median_cpu(self):
        return statistics.median(self.cpu_times) if self.cpu_times else None


def children_cpu():
    """User + system seconds of every child reaped so far: runs are one at a time, so the
    difference around one run is that run's CPU time."""
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_once(system, timeout):
    """(wall seconds, CPU seconds, last line of stdout, error)."""
    c0 = children_cpu()
    t0 = time.perf_counter()
    try:
        r = subprocess.run(system.argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           timeout=timeout, env=system.env, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return None, None, None, f"timed out after {timeout} s"
    dt = time.perf_counter() - t0
    cpu = children_cpu() - c0
    if r.returncode != 0:
        msg = (r.stderr.strip().splitlines() or ["(no message)"])[0]
        return None, None, None, f"exit {r.returncode}: {msg}"
    lines = r.stdout.strip().splitlines()
    return dt, cpu, (lines[-1] if lines else ""), None


def run_program(prog, systems, runs, timeout, quiet=False):
    results = [Result(s) for s in systems]
    for rep in range(runs):
        for res in results:
            if res.error:
                continue
            dt, cpu, line, err = run_once(res.system, timeout)
            if err:
                res.error = err
                log(f"  {prog}: {res.system.label} t={res.system.threads}: FAILED {err}")
                continue
            res.times.append(dt)
            res.cpu_times.append(cpu)
            res.outputs.add(line)
        done = ", ".join(f"{r.system.label}/{r.system.threads or '-'} {r.times[-1]:.2f}"
                         for r in results if r.times and len(r.times) == rep + 1)
        if not quiet:
            log(f"  {prog} run {rep + 1}/{runs}: {done}")
    return results


def stats_from_json(d):
    """The figures of `stmjit run --stats-json FILE` (the parsed FILE) under the keys the tables use."""
    st = {"segments": d["segments"], "mode": d["mode"], "commits": d["commits"], "aborts": d["aborts"],
          "abort_ms": d["abort_lost_ms"], "sync_ms": d["sync_pause_ms"], "conflicts": d["conflicts"],
          "abort_percent_of_tx": d["abort_lost_percent"]}
    by_cause = d["aborts_by_cause"]
    st["write-write"], st["write-read"], st["other"] = (by_cause[k] for k in ("write_write", "write_read", "other"))
    return st


def collect_stats(prog, results, env, timeout, quiet=False):
    """One extra `--stats-json` run of every stmjit STM row (not timed with the others): fills r.stats
    (with "wall_s", the wall time of that run) and adds its checksum to r.outputs."""
    if not env.have_stats:
        return
    for r in results:
        if r.system.group != "stmjit" or r.error:
            continue
        argv = list(r.system.argv)
        with tempfile.TemporaryDirectory(prefix="stmjit-stats-") as tmp:
            json_path = os.path.join(tmp, "stats.json")
            argv[2:2] = STATS_FLAG + [json_path]  # [stmjit, run, --stats-json, FILE, ...]
            t0 = time.perf_counter()
            try:
                p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   timeout=timeout, env=r.system.env, cwd=ROOT)
            except subprocess.TimeoutExpired:
                log(f"  {prog}: {r.system.label} t={r.system.threads} --stats-json: timed out after {timeout} s")
                continue
            dt = time.perf_counter() - t0
            if p.returncode != 0:
                msg = (p.stderr.strip().splitlines() or ["(no message)"])[0]
                r.error = f"--stats-json run: exit {p.returncode}: {msg}"
                log(f"  {prog}: {r.system.label} t={r.system.threads} --stats-json: FAILED {r.error}")
                continue
            lines = p.stdout.strip().splitlines()
            r.outputs.add(lines[-1] if lines else "")
            try:
                with open(json_path) as f:
                    r.stats = stats_from_json(json.load(f))
            except (OSError, ValueError, KeyError) as e:
                r.error = f"--stats-json run: unreadable figures: {e}"
                log(f"  {prog}: {r.system.label} t={r.system.threads} --stats-json: FAILED {r.error}")
                continue
        r.stats["wall_s"] = dt
        if not quiet:
            st = r.stats
            log(f"  {prog} --stats-json {r.system.label}/{r.system.threads or '-'}: "
                f"commits {st.get('commits', 'n/a')}, aborts {st.get('aborts', 'n/a')}, "
                f"lost to aborts {st.get('abort_ms', 'n/a')} ms, sync pause {st.get('sync_ms', 'n/a')} ms")


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


def pct(x):
    return "n/a" if x is None else f"{100 * x:.1f}%"


def stat_cells(st):
    """commits | aborts (by cause) | share of wall time lost to aborts | to sync pauses."""
    if not st:
        return ["n/a"] * 4
    aborts = st.get("aborts")
    a = "n/a" if aborts is None else str(aborts)
    if aborts is not None and "write-write" in st:
        a += f" (ww {st['write-write']}, wr {st['write-read']}, other {st['other']})"
    wall_ms = 1000 * st["wall_s"]
    share = lambda k: st[k] / wall_ms if k in st and wall_ms > 0 else None
    return [str(st.get("commits", "n/a")), a, pct(share("abort_ms")), pct(share("sync_ms"))]


def stmjit_table(A, env, mode, results):
    """One row per thread count for `stmjit MODE`: time, speed-up, the --gil baseline, the ratio to
    every peer at the same thread count, and the `--stats` figures."""
    stm = f"stmjit {mode}"
    gil = stm + " --gil"
    by = {(r.system.label, r.system.threads): r for r in results}
    rows = [r for r in results if r.system.label == stm]
    if not rows:
        return
    peers = []
    for r in results:
        if r.system.group == "peer" and r.system.label not in peers:
            peers.append(r.system.label)
    show_gil = env.have_gil and mode in GIL_MODES
    med = lambda label, t: (by[(label, t)].median() if (label, t) in by and not by[(label, t)].error else None)
    cpu = lambda label, t: (by[(label, t)].median_cpu() if (label, t) in by and not by[(label, t)].error
                            else None)
    head = ["threads", "STM s", "STM CPU s", "speed-up"]
    if show_gil:
        head += ["--gil s", "--gil speed-up", "STM/GIL"]
    head += [c for p in peers for c in (f"÷ {p}", f"÷ {p} CPU")]
    if env.have_stats:
        head += ["commits", "aborts", "aborts % wall", "sync pause % wall"]
    A("| " + " | ".join(head) + " |")
    A("|" + "---|" * len(head))
    for r in rows:
        t = r.system.threads
        if r.error:
            A(f"| {t or 'runtime'} | failed: {r.error} |" + " |" * (len(head) - 2))
            continue
        m = r.median()
        cells = [str(t or "runtime"), fmt(m), fmt(r.median_cpu()),
                 fmt(ratio(med(stm, 1), m), 2) if t and t > 1 else "—"]
        if show_gil:
            g = med(gil, t)
            cells += [fmt(g), fmt(ratio(med(gil, 1), g), 2) if t and t > 1 else "—", fmt(ratio(m, g), 2)]
        for p in peers:
            pt = t if (p, t) in by else None
            cells += [fmt(ratio(m, med(p, pt)), 2), fmt(ratio(r.median_cpu(), cpu(p, pt)), 2)]
        if env.have_stats:
            cells += stat_cells(r.stats)
        A("| " + " | ".join(cells) + " |")
    A("")


# ---------------------------------------------------------------------------------------------
# SVG charts: plain SVG text, no plotting library.
# ---------------------------------------------------------------------------------------------
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]


def nice_step(span, ticks=6):
    raw = span / ticks
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for k in (1, 2, 2.5, 5, 10):
        if k * mag >= raw:
            return k * mag
    return 10 * mag


def svg_text(x, y, text, anchor="start", size=12, extra=""):
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {extra}>'
            f"{html.escape(str(text))}</text>")


def svg_speedup(path, title, xs, series):
    """Speed-up (y) against threads (x), one polyline per system, and the ideal y = x dashed."""
    W, H, L, R, T, B = 680, 400, 55, 200, 40, 45
    pw, ph = W - L - R, H - T - B
    ymax = max([max(xs)] + [y for _, pts in series for _, y in pts])
    step = nice_step(ymax)
    ymax = step * math.ceil(ymax / step)
    x0, x1 = min(xs), max(xs)
    X = lambda x: L + (pw * (x - x0) / (x1 - x0) if x1 > x0 else pw / 2)
    Y = lambda y: T + ph - ph * y / ymax
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif">', f'<rect width="{W}" height="{H}" fill="white"/>',
         svg_text(W / 2, 22, title, "middle", 15, 'font-weight="bold"')]
    y = 0.0
    while y <= ymax + 1e-9:
        o.append(f'<line x1="{L}" y1="{Y(y):.1f}" x2="{L + pw}" y2="{Y(y):.1f}" stroke="#ddd"/>')
        o.append(svg_text(L - 6, Y(y) + 4, f"{y:g}", "end", 11))
        y += step
    for x in xs:
        o.append(f'<line x1="{X(x):.1f}" y1="{T + ph}" x2="{X(x):.1f}" y2="{T + ph + 4}" stroke="black"/>')
        o.append(svg_text(X(x), T + ph + 17, x, "middle", 11))
    o.append(f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="none" stroke="black"/>')
    o.append(svg_text(L + pw / 2, H - 8, "threads", "middle"))
    o.append(svg_text(14, T + ph / 2, "speed-up vs 1 thread", "middle", 12,
                      f'transform="rotate(-90 14 {T + ph / 2:.1f})"'))
    o.append(f'<line x1="{X(x0):.1f}" y1="{Y(x0):.1f}" x2="{X(x1):.1f}" y2="{Y(x1):.1f}" '
             'stroke="#999" stroke-dasharray="5,4"/>')
    legend = [("ideal", "#999", True)]
    for i, (name, pts) in enumerate(series):
        c = COLORS[i % len(COLORS)]
        legend.append((name, c, False))
        pts = sorted(pts)
        o.append('<polyline fill="none" stroke="{}" stroke-width="{}" points="{}"/>'.format(
            c, 3 if name.startswith("stmjit") else 1.5, " ".join(f"{X(px):.1f},{Y(py):.1f}" for px, py in pts)))
        for px, py in pts:
            o.append(f'<circle cx="{X(px):.1f}" cy="{Y(py):.1f}" r="3" fill="{c}"><title>'
                     f'{html.escape(name)}: {px} threads, {py:.2f}x</title></circle>')
    for i, (name, c, dashed) in enumerate(legend):
        ly = T + 10 + 18 * i
        dash = ' stroke-dasharray="5,4"' if dashed else ""
        o.append(f'<line x1="{L + pw + 12}" y1="{ly}" x2="{L + pw + 36}" y2="{ly}" stroke="{c}" '
                 f'stroke-width="2"{dash}/>')
        o.append(svg_text(L + pw + 42, ly + 4, name, "start", 11))
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def svg_bars(path, title, groups, keys):
    """Horizontal bars of median seconds: one group per system, one bar per key (thread count)."""
    bar, gap = 14, 10
    L, R, T = 170, 90, 60
    W = 720
    n = sum(1 for _, vals in groups for k in keys if vals.get(k) is not None)
    H = T + n * bar + len(groups) * gap + 20
    vmax = max([v for _, vals in groups for v in vals.values() if v is not None] + [1e-9])
    pw = W - L - R
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" '
         'font-family="sans-serif">', f'<rect width="{W}" height="{H}" fill="white"/>',
         svg_text(W / 2, 22, title, "middle", 15, 'font-weight="bold"')]
    for i, k in enumerate(keys):
        lx = L + 160 * i
        o.append(f'<rect x="{lx}" y="34" width="14" height="12" fill="{COLORS[i % len(COLORS)]}"/>')
        o.append(svg_text(lx + 20, 45, k, "start", 12))
    y = T
    for name, vals in groups:
        present = [(i, k) for i, k in enumerate(keys) if vals.get(k) is not None]
        if not present:
            continue
        o.append(svg_text(L - 8, y + bar * len(present) / 2 + 4, name, "end", 12))
        for i, k in present:
            v = vals[k]
            w = max(1.0, pw * v / vmax)
            o.append(f'<rect x="{L}" y="{y}" width="{w:.1f}" height="{bar - 2}" '
                     f'fill="{COLORS[i % len(COLORS)]}"><title>{html.escape(name)}, {html.escape(k)}: '
                     f'{v:.3f} s</title></rect>')
            o.append(svg_text(L + w + 4, y + bar - 4, f"{v:.3f} s", "start", 11))
            y += bar
        y += gap
    o.append(f'<line x1="{L}" y1="{T - 4}" x2="{L}" y2="{y}" stroke="black"/>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def write_charts(chart_dir, suffix, modes, thread_counts, all_results):
    """Per program: speedup-PROG.svg (threaded systems) and bars-PROG.svg (every system at 1 and at
    the most threads). Returns {prog: [(caption, path), ...]}."""
    os.makedirs(chart_dir, exist_ok=True)
    tmax = max(thread_counts)
    charts = {}
    for prog, size, results in all_results:
        charts[prog] = []
        labels = []
        for r in results:
            if r.system.label not in labels:
                labels.append(r.system.label)
        meds = {(r.system.label, r.system.threads): r.median() for r in results if not r.error and r.times}
        series = []
        for lab in labels:
            one = meds.get((lab, 1))
            pts = [(t, one / m) for (l, t), m in meds.items() if l == lab and t and one and m]
            if len(pts) >= 2:
                series.append((lab, pts))
        if series and tmax > 1:
            p = os.path.join(chart_dir, f"speedup-{prog}{suffix}.svg")
            svg_speedup(p, f"{prog} ({size}): speed-up vs threads", sorted(t for t in thread_counts), series)
            charts[prog].append(("speed-up vs threads", p))
        keys = ["1 thread"] + ([f"{tmax} threads"] if tmax > 1 else [])
        groups = []
        for lab in labels:
            vals = {"1 thread": meds.get((lab, 1), meds.get((lab, None)))}
            if tmax > 1:
                vals[f"{tmax} threads"] = meds.get((lab, tmax))
            groups.append((lab, vals))
        if any(v is not None for _, vals in groups for v in vals.values()):
            p = os.path.join(chart_dir, f"bars-{prog}{suffix}.svg")
            svg_bars(p, f"{prog} ({size}): median seconds, stmjit vs peers (shorter is faster)", groups, keys)
            charts[prog].append(("stmjit vs peers", p))
    return charts


def write_json(path, env, modes, thread_counts, all_results):
    """The medians and stats of this run, machine-readable (to put a 16-core run beside a 2-core one)."""
    out = {"machine": dict(machine_details(env.stmjit)), "modes": modes, "threads": thread_counts,
           "programs": {}}
    for prog, size, results in all_results:
        out["programs"][prog] = {"size": size, "rows": [
            {"system": r.system.label, "threads": r.system.threads, "median_s": r.median(),
             "times_s": r.times, "median_cpu_s": r.median_cpu(), "cpu_times_s": r.cpu_times, "checksums": sorted(r.outputs), "error": r.error, "stats": r.stats}
            for r in results]}
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")


def write_report(path, env, args, modes, thread_counts, all_results, versions, elapsed, probes, quick_note,
                 charts):
    L = []
    A = L.append
    title = "quick check" if args.quick else "results"
    if args.label:
        title += f" ({args.label})"
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
      f"times are the **median** wall-clock seconds of the whole process (start-up included); "
      f"*CPU s* is the median of its user + system seconds (all its threads). "
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
    A("## stmjit per program\n")
    A("One row per thread count (`--threads T` with the program's THREADS argument T). *STM s*: median "
      "seconds in STM mode; *speed-up*: time at 1 thread / time at T; *--gil s*, *--gil speed-up*: the "
      "same in `--gil` mode (one global lock, the baseline); *STM/GIL*: STM time / `--gil` time at the "
      "same T (the cost of STM; lower is better); *÷ PEER*: stmjit STM time / the peer's time at the "
      "same T (below 1: stmjit is faster); *÷ PEER CPU*: the same for CPU seconds. From one extra `--stats-json` run per thread count (STM mode): "
      "*commits*, *aborts* (by cause: write-write, write-read, other), and the time lost to aborts and "
      "to sync (safe-point) pauses as a share of that run's wall time (summed over the threads, so it "
      "can pass 100% with several threads); n/a where `--stats-json` gave no such figure. Columns whose "
      "flag `stmjit run --help` does not list are left out.\n")
    rel = os.path.dirname(os.path.abspath(path))
    for prog, size, results in all_results:
        A(f"### {prog} ({size})\n")
        for mode in modes:
            if len(modes) > 1:
                A(f"`stmjit {mode}`:\n")
            stmjit_table(A, env, mode, results)
        for caption, cp in charts.get(prog, []):
            A(f"![{prog}: {caption}]({os.path.relpath(cp, rel)})\n")
    A(f"## Times\n")
    A(f"Median seconds. *vs stmjit 1T*: time / time of `stmjit {base_mode}` with 1 thread (lower is "
      "faster). *vs --gil*: stmjit STM time / stmjit `--gil` time at the same thread count "
      "(the STM overhead; needs `--gil`). *speed-up*: time at 1 thread / time at this count.\n")
    for prog, size, results in all_results:
        A(f"### {prog} ({size})\n")
        A("| system | threads | median s | min s | median CPU s | vs stmjit 1T | vs --gil | speed-up |")
        A("|---|---|---|---|---|---|---|---|")
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
                A(f"| {s.label} | {s.threads or 'runtime'} | failed: {r.error} | | | | | |")
                continue
            gil = None
            if s.group == "stmjit":
                g = by.get((s.label + " --gil", s.threads))
                gil = ratio(med, g.median() if g else None)
            one = by.get((s.label, 1))
            sp = ratio(one.median() if one else None, med) if s.threads and s.threads > 1 else None
            A(f"| {s.label} | {s.threads or 'runtime'} | {fmt(med)} | {fmt(min(r.times) if r.times else None)} "
              f"| {fmt(r.median_cpu())} | {fmt(ratio(med, base), 2)} | {fmt(gil, 2)} | {fmt(sp, 2)} |")
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
    if not args.quick:
        append_other_figures(A)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")


# Figures measured by their own tools, folded into the report when present: (title, file in
# benches/, the command that makes it).
OTHER_FIGURES = [
    ("HTTP server: `serve()` under wrk", "SERVE.md", "python3 benches/serve/run.py"),
    ("Barrier microbenchmarks", "BARRIERS.md",
     "cargo bench --bench barriers (its table, saved by hand with the date and commit)"),
]


def append_other_figures(A):
    """Appends each file of OTHER_FIGURES that exists, its headings moved two levels down."""
    for title, name, command in OTHER_FIGURES:
        path = os.path.join(BENCHES, name)
        if not os.path.exists(path):
            continue
        A(f"## {title}\n")
        A(f"From `benches/{name}` (made by `{command}`; not re-measured by this run).\n")
        with open(path) as f:
            lines = f.read().splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]
        for line in lines:
            A("##" + line if line.startswith("#") else line)
        A("")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", nargs="?", default="all", choices=["all"])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--stmjit-mode", default=os.environ.get("STMJIT_MODE", "jit"))
    ap.add_argument("--threads", default=None)
    ap.add_argument("--runs", type=int, default=None)
    ap.add_argument("--sizes", default=None, choices=list(SIZE_INDEX))
    ap.add_argument("--programs", default=",".join(PROGRAMS))
    ap.add_argument("--peers", default=",".join(ALL_PEERS))
    ap.add_argument("--report", default=None)
    ap.add_argument("--label", default=None,
                    help="name the outputs RESULTS-LABEL.md, charts/*-LABEL.svg, results-LABEL.json")
    ap.add_argument("--timeout", type=int, default=300)
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--skip-quick", action="store_true", help="`all` without the quick checksum pass first")
    args = ap.parse_args()
    if args.sizes is None:
        args.sizes = "quick" if args.quick else "moderate"
    if args.runs is None:
        args.runs = 1 if args.quick else 5
    if args.label is not None and not all(c.isalnum() or c in "-_." for c in args.label):
        sys.exit("--label: letters, digits, '-', '_' and '.' only")
    suffix = f"-{args.label}" if args.label else ""
    if args.report is None:
        args.report = (os.path.join(BUILD, f"RESULTS-quick{suffix}.md") if args.quick
                       else os.path.join(BENCHES, f"RESULTS{suffix}.md"))
    report_dir = os.path.dirname(os.path.abspath(args.report))
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
        collect_stats(prog, results, env, args.timeout)
        ref = reference_checksum(results)
        for r in results:
            if r.error or any(o != ref for o in r.outputs):
                failures += 1
                log(f"  MISMATCH/FAILURE {prog}: {r.system.label} t={r.system.threads}: "
                    f"{r.error or sorted(r.outputs)} (expected {ref})")
        all_results.append((prog, size, results))
    probes.append(("end of run", probe_parallelism(env, max(thread_counts), probe_iters)))
    elapsed = time.time() - t_start
    charts = write_charts(os.path.join(report_dir, "charts"), suffix, modes, thread_counts, all_results)
    json_path = os.path.join(report_dir, f"results{'-quick' if args.quick else ''}{suffix}.json")
    write_json(json_path, env, modes, thread_counts, all_results)
    write_report(args.report, env, args, modes, thread_counts, all_results, versions, elapsed, probes,
                 quick_note, charts)
    log(f"wrote {args.report}, {json_path} and {sum(len(c) for c in charts.values())} SVG charts in "
        f"{os.path.join(report_dir, 'charts')} ({elapsed:.0f} s); {failures} failures or mismatches")
    for n in env.notes:
        log("note: " + n)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
