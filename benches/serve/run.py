#!/usr/bin/env python3
"""Requests per second of the key-value service's CPU-heavy endpoint under wrk:
examples/kvservice.lang on stmjit (1 segment, 2 segments, --gil) against the same service on
Python's http.server + ThreadingHTTPServer (benches/serve/kvservice.py) under CPython and PyPy3.

    python3 benches/serve/run.py [--runs 5] [--duration 3] [--connections 4] [--n 20000]

Every server runs for the whole benchmark on its own port; the wrk runs are interleaved
(round r runs every system once, in a rotated order) and the report gives each system's
median. stmjit runs with --stats: its transaction figures at the end go in the report.
Writes benches/SERVE.md (use --out to write elsewhere). Needs wrk, python3, pypy3 and a
release build of stmjit (STMJIT_BIN, else $CARGO_TARGET_DIR or target/, release/stmjit).
"""

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
KV_LANG = os.path.join(ROOT, "examples", "kvservice.lang")
KV_PY = os.path.join(HERE, "kvservice.py")


def stmjit_bin():
    if os.environ.get("STMJIT_BIN"):
        return os.environ["STMJIT_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "stmjit")


def systems(stmjit):
    return [
        ("stmjit, 1 segment", [stmjit, "run", "--stats", "--threads", "1", KV_LANG, "0"]),
        ("stmjit, 2 segments", [stmjit, "run", "--stats", "--threads", "2", KV_LANG, "0"]),
        ("stmjit --gil", [stmjit, "run", "--stats", "--gil", KV_LANG, "0"]),
        ("CPython", ["python3", KV_PY, "0"]),
        ("PyPy3", ["pypy3", KV_PY, "0"]),
    ]


class Server:
    def __init__(self, name, argv):
        self.name = name
        self.argv = argv
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
        if not m:
            self.proc.kill()
            sys.exit(f"{name}: no port in {line!r}: {self.proc.stderr.read()}")
        self.url = f"http://127.0.0.1:{m.group(1)}"
        self.rates = []

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read().decode()

    def stop(self):
        try:
            self.get("/shutdown")
        except OSError:
            pass
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def wrk(server, path, duration, conns):
    url = server.url + path
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", url]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        server.proc.poll()
        sys.exit(f"{server.name}: {' '.join(cmd)} failed ({r.returncode}): {r.stdout}{r.stderr}\n"
                 f"server exit status: {server.proc.returncode}")
    out = r.stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)
    if bad or errors:
        print(f"  warning: {url}: {bad.group(0) if bad else ''} {errors.group(0) if errors else ''}")
    return rate


def machine():
    cpu = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu})"


WRK_VERSION = r"wrk \S+"


def git_head():
    r = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() or "?"


def version(cmd, pattern):
    """The first match of `pattern` in what `cmd` prints (its version)."""
    try:
        r = subprocess.run(cmd, capture_output=True, text=True)
    except OSError:
        return "not found"
    m = re.search(pattern, r.stdout + r.stderr)
    return m.group(0) if m else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=4)
    ap.add_argument("--n", type=int, default=20000, help="/primes?n=N")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server first")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "SERVE.md"))
    args = ap.parse_args()
    path = f"/primes?n={args.n}"
    stm = stmjit_bin()
    if not os.path.exists(stm):
        sys.exit(f"no stmjit binary at {stm}: cargo build --release (or set STMJIT_BIN)")
    servers = []
    try:
        for name, argv in systems(stm):
            servers.append(Server(name, argv))
        measure(args, servers, path)
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()


def measure(args, servers, path):
    expected = servers[-2].get(path)  # CPython's answer is the reference
    for s in servers:
        got = s.get(path)
        if got != expected:
            sys.exit(f"{s.name}: {path} answered {got!r}, CPython {expected!r}")
        print(f"{s.name}: {s.url} ({' '.join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in s.argv)})")
        if args.warmup:
            wrk(s, path, args.warmup, args.connections)
    for r in range(args.runs):
        order = servers[r % len(servers):] + servers[: r % len(servers)]
        for s in order:
            rate = wrk(s, path, args.duration, args.connections)
            s.rates.append(rate)
            print(f"run {r + 1}: {s.name}: {rate:.1f} req/s", flush=True)
    stats = {}
    for s in servers:
        code, out, err = s.stop()
        if code != 0:
            print(f"  warning: {s.name} exited {code}: {err[-500:]}")
        keep = [l.strip() for l in err.splitlines()
                if re.match(r"\s*(stats:|commits:|aborts:|time lost|requests served:|conflicts:)", l)]
        stats[s.name] = keep
    write_report(args, servers, stats, path)


def write_report(args, servers, stats, path):
    med = {s.name: statistics.median(s.rates) for s in servers}
    one, two, gil = med["stmjit, 1 segment"], med["stmjit, 2 segments"], med["stmjit --gil"]
    lines = [
        "# serve(): requests per second under wrk",
        "",
        f"Generated by `python3 benches/serve/run.py --runs {args.runs} --duration {args.duration} "
        f"--connections {args.connections} --n {args.n}` on {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"- Machine: {machine()}; shared and noisy (other builds may run): figures vary run to run.",
        f"- stmjit: `{stmjit_bin()}` (the repository was at {git_head()} when run) "
        "(`--threads 1`, `--threads 2`, `--gil`: one segment, one transaction at a time).",
        f"- Endpoint: `GET {path}` of `examples/kvservice.lang` (counts the primes below {args.n} by "
        "trial division; touches no shared data) and of its Python peer `benches/serve/kvservice.py` "
        "(`http.server` + `ThreadingHTTPServer`, HTTP/1.1 keep-alive).",
        f"- Load: `wrk -t1 -c{args.connections} -d{args.duration}s URL` per run, after "
        f"{args.warmup} s of warm-up per server; {args.runs} runs per system, interleaved (each "
        "round runs every system once, in a rotated order); medians.",
        f"- Versions: {version(['python3', '--version'], r'Python [0-9.]+')}; "
        f"{version(['pypy3', '--version'], r'PyPy [0-9.]+')}; {version(['wrk', '--version'], WRK_VERSION)}.",
        "",
        "| system | median req/s | runs (req/s) | vs stmjit 1 segment |",
        "|---|---:|---|---:|",
    ]
    for s in servers:
        runs = ", ".join(f"{x:.0f}" for x in s.rates)
        lines.append(f"| {s.name} | {med[s.name]:.1f} | {runs} | {med[s.name] / one:.2f}x |")
    lines += [
        "",
        f"- **2 segments / 1 segment: {two / one:.2f}x** (goal: at least 1.8x).",
        f"- 2 segments / `--gil`: {two / gil:.2f}x.",
        f"- stmjit 2 segments / CPython: {two / med['CPython']:.2f}x; / PyPy3: {two / med['PyPy3']:.2f}x.",
        "",
        "`--stats` of each stmjit server at its end (all its requests, warm-up included):",
        "",
    ]
    for name, keep in stats.items():
        if keep:
            lines.append(f"- {name}: " + "; ".join(keep))
    lines.append("")
    with open(args.out, "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"wrote {os.path.relpath(args.out, ROOT)}")


if __name__ == "__main__":
    main()
