#!/usr/bin/env python3
"""Requests per second and p99 latency of the key-value service under wrk, on its CPU-heavy
endpoint (/primes) and its smallest one (/ping, per-request overhead):
examples/kvservice.lang on stmjit (1 segment, 2 segments, --gil) against the same service on
Python's http.server + ThreadingHTTPServer (benches/serve/kvservice.py) under CPython and PyPy3.
Then each server's thread count and resident memory while it holds --idle idle keep-alive
connections (and whether a fresh client is still answered).

    python3 benches/serve/run.py [--runs 5] [--duration 3] [--connections 4] [--n 20000] [--idle 2000]

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
import resource
import socket
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
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"
        self.rates = {}  # path -> [req/s per run]
        self.p99 = {}  # path -> [p99 ms per run]

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=60) as r:
            return r.read().decode()

    def stop(self):
        try:
            req = urllib.request.Request(self.url + "/shutdown", data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=60) as r:
                r.read()
        except OSError:
            pass
        try:
            out, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, out, err


def wrk(server, path, duration, conns):
    """(requests/s, p99 latency in ms) of one wrk run."""
    url = server.url + path
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{duration}s", "--latency", url]
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
    m = re.search(r"^\s*99%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    p99 = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)] if m else float("nan")
    return rate, p99


def proc_status(pid):
    """(threads, resident MiB) of process `pid`."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return int(fields["Threads"]), int(fields["VmRSS"].split()[0]) / 1024


def idle_connections(server, n):
    """Opens `n` keep-alive connections (every tenth served once, the others silent), then
    the server's (threads, RSS MiB), a fresh client's answer time in ms (None if it got
    no answer within 10 s) and how many connections were held. Opening stops at the first
    connection the server does not take or answer within 10 s (a thread-per-connection
    server may stall long before `n`), so that one peer cannot hang the benchmark."""
    conns = []
    try:
        for i in range(n):
            try:
                c = socket.create_connection(("127.0.0.1", server.port), timeout=10)
                if i % 10 == 0:
                    c.sendall(b"GET /ping HTTP/1.1\r\nHost: b\r\n\r\n")
                    got = b""
                    while not got.endswith(b"pong\n"):
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        got += chunk
            except OSError:
                break
            conns.append(c)
        time.sleep(1)
        threads, rss = proc_status(server.proc.pid)
        t = time.perf_counter()
        try:
            with urllib.request.urlopen(server.url + "/ping", timeout=10) as r:
                r.read()
            fresh = (time.perf_counter() - t) * 1000
        except OSError:
            fresh = None
        return threads, rss, fresh, len(conns)
    finally:
        for c in conns:
            c.close()


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
    ap.add_argument("--idle", type=int, default=2000, help="idle connections to hold")
    ap.add_argument("--warmup", type=int, default=2, help="seconds of wrk per server first")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "SERVE.md"))
    args = ap.parse_args()
    path = f"/primes?n={args.n}"
    # Both ends of the idle connections need descriptors (the servers inherit the limit).
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.idle + 512)), hard))
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
    paths = [path, "/ping"]
    expected = servers[-2].get(path)  # CPython's answer is the reference
    for s in servers:
        got = s.get(path)
        if got != expected:
            sys.exit(f"{s.name}: {path} answered {got!r}, CPython {expected!r}")
        print(f"{s.name}: {s.url} ({' '.join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a for a in s.argv)})")
        if args.warmup:
            for p in paths:
                wrk(s, p, args.warmup, args.connections)
    for r in range(args.runs):
        order = servers[r % len(servers):] + servers[: r % len(servers)]
        for p in paths:
            for s in order:
                rate, p99 = wrk(s, p, args.duration, args.connections)
                s.rates.setdefault(p, []).append(rate)
                s.p99.setdefault(p, []).append(p99)
                print(f"run {r + 1}: {s.name}: {p}: {rate:.1f} req/s, p99 {p99:.2f} ms", flush=True)
    idle = {}
    if args.idle:
        for s in servers:
            idle[s.name] = idle_connections(s, args.idle)
            print(f"{s.name}: {args.idle} idle connections: {idle[s.name]}", flush=True)
    stats = {}
    for s in servers:
        code, out, err = s.stop()
        if code != 0:
            print(f"  warning: {s.name} exited {code}: {err[-500:]}")
        keep = [l.strip() for l in err.splitlines()
                if re.match(r"\s*(stats:|commits:|aborts:|time lost|requests served:|request latency|conflicts:)", l)]
        stats[s.name] = keep
    write_report(args, servers, stats, idle, paths)


def write_report(args, servers, stats, idle, paths):
    lines = [
        "# serve(): requests per second under wrk",
        "",
        f"Generated by `python3 benches/serve/run.py --runs {args.runs} --duration {args.duration} "
        f"--connections {args.connections} --n {args.n} --idle {args.idle}` on {time.strftime('%Y-%m-%d %H:%M')}.",
        "",
        f"- Machine: {machine()}; shared and noisy (other builds may run): figures vary run to run.",
        f"- stmjit: `{stmjit_bin()}` (the repository was at {git_head()} when run) "
        "(`--threads 1`, `--threads 2`, `--gil`: one segment, one transaction at a time).",
        f"- Endpoints: `GET {paths[0]}` of `examples/kvservice.lang` (counts the primes below {args.n} by "
        "trial division; touches no shared data) and `GET /ping` (answers `pong`: per-request "
        "overhead), and the same of its Python peer `benches/serve/kvservice.py` "
        "(`http.server` + `ThreadingHTTPServer`, HTTP/1.1 keep-alive).",
        f"- Load: `wrk -t1 -c{args.connections} -d{args.duration}s --latency URL` per run, after "
        f"{args.warmup} s of warm-up per server and endpoint; {args.runs} runs per system, interleaved (each "
        "round runs every system once, in a rotated order); medians (p99: median of the runs' p99).",
        f"- Versions: {version(['python3', '--version'], r'Python [0-9.]+')}; "
        f"{version(['pypy3', '--version'], r'PyPy [0-9.]+')}; {version(['wrk', '--version'], WRK_VERSION)}.",
        "",
    ]
    ratios = []
    for p in paths:
        med = {s.name: statistics.median(s.rates[p]) for s in servers}
        p99 = {s.name: statistics.median(s.p99[p]) for s in servers}
        one, two, gil = med["stmjit, 1 segment"], med["stmjit, 2 segments"], med["stmjit --gil"]
        lines += [
            f"## `GET {p}`",
            "",
            "| system | median req/s | runs (req/s) | vs stmjit 1 segment | p99 ms |",
            "|---|---:|---|---:|---:|",
        ]
        for s in servers:
            runs = ", ".join(f"{x:.0f}" for x in s.rates[p])
            lines.append(f"| {s.name} | {med[s.name]:.1f} | {runs} | {med[s.name] / one:.2f}x | {p99[s.name]:.2f} |")
        lines += [
            "",
            f"- **2 segments / 1 segment: {two / one:.2f}x**" + (" (goal: at least 1.8x)." if p != "/ping" else "."),
            f"- 2 segments / `--gil`: {two / gil:.2f}x.",
            f"- stmjit 2 segments / CPython: {two / med['CPython']:.2f}x; / PyPy3: {two / med['PyPy3']:.2f}x.",
            "",
        ]
    if idle:
        lines += [
            f"## {args.idle} idle keep-alive connections",
            "",
            "Every tenth connection was served once, the others never sent a byte; then the server's",
            "thread count and resident memory (`/proc/PID/status`), and how long a fresh client waited",
            "for `/ping`.",
            "",
            "| system | connections held | threads | RSS MiB | fresh client ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for s in servers:
            threads, rss, fresh, held = idle[s.name]
            fresh = f"{fresh:.1f}" if fresh is not None else "no answer"
            lines.append(f"| {s.name} | {held} | {threads} | {rss:.0f} | {fresh} |")
        lines.append("")
    lines += [
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
