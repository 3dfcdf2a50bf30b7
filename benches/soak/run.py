#!/usr/bin/env python3
"""Soak benchmark: one stmjit process runs a server under load (wrk), a thread that spawns
and joins trees of 63 threads without end, and allocation churn in the handlers
(benches/soak/soak.lang), for --minutes. Samples the process's resident memory, thread count
and open file descriptors every --every seconds, then stops the load and the spawning
thread, samples once more when idle, and reports whether each figure stayed bounded and came
back near its start.

    python3 benches/soak/run.py [--minutes 5] [--clients 2] [--every 5] [--threads N] [--stats]

Bounded: the peak of the second half of the run is at most --slack (default 1.25) times the
peak of the first half, or for threads at most one tree (63) more (a leak keeps growing).
Samples under load stop when wrk ends (its connections close): after that the spawning
thread runs alone until /stopthreads, which is not the load being measured. Idle: 5 s
after /stopthreads (the runtime collects once the program has been idle for 1 to 2 s).
Back near the start: the idle figure is at most --slack times the first sample taken under load (RSS), or equal to it (threads, fds:
the first sample taken before the load). Exit status 1 if a check fails. Needs wrk and a
release build of stmjit (STMJIT_BIN, else $CARGO_TARGET_DIR or target/, release/stmjit).
"""

import argparse
import os
import re
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def stmjit_bin():
    if os.environ.get("STMJIT_BIN"):
        return os.environ["STMJIT_BIN"]
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    return os.path.join(target, "release", "stmjit")


def sample(pid):
    """(RSS in MiB, threads, fds) of process pid."""
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) / 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, threads, fds


def post(port, path):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=b"", method="POST")
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=5)
    ap.add_argument("--clients", type=int, default=2)
    ap.add_argument("--every", type=float, default=5)
    ap.add_argument("--threads", type=int, default=0, help="stmjit --threads (segments); 0: its default")
    ap.add_argument("--slack", type=float, default=1.25)
    ap.add_argument("--stats", action="store_true",
                    help="run stmjit with --stats and print its figures (commits, aborts, conflicts) at the end")
    a = ap.parse_args()

    argv = [stmjit_bin(), "run"]
    if a.threads:
        argv += ["--threads", str(a.threads)]
    if a.stats:
        argv.append("--stats")
    argv.append(os.path.join(HERE, "soak.lang"))
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    m = re.search(r"http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
    if not m:
        sys.exit("stmjit did not start: " + proc.stderr.read())
    port = int(m.group(1))
    time.sleep(0.5)
    before = sample(proc.pid)
    duration = a.minutes * 60
    wrk = subprocess.Popen(
        ["wrk", "-t1", f"-c{a.clients}", f"-d{int(duration)}s", "-s", os.path.join(HERE, "load.lua"),
         f"http://127.0.0.1:{port}/"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    t0 = time.time()
    samples = []  # (seconds, rss, threads, fds)
    while wrk.poll() is None and proc.poll() is None:
        time.sleep(a.every)
        # A sample taken once wrk has ended (or is closing its connections) is not one under
        # load: the spawning thread then runs alone, which the idle sample covers.
        if proc.poll() is not None or wrk.poll() is not None or sample(proc.pid)[2] < before[2] + a.clients:
            break
        samples.append((time.time() - t0, *sample(proc.pid)))
        print("%6.0f s  RSS %7.1f MiB  threads %5d  fds %4d" % samples[-1], flush=True)
    wrk_out = wrk.communicate()[0]
    if not samples:
        sys.exit("no sample under load (is --every longer than the run?)")
    if proc.poll() is not None:
        sys.exit("stmjit ended early: " + proc.stderr.read())
    post(port, "/stopthreads")
    time.sleep(5)
    idle = sample(proc.pid)
    post(port, "/shutdown")
    out, err = proc.communicate(timeout=60)

    reqs = re.search(r"(\d+) requests in", wrk_out)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors:.*", wrk_out)
    trees = re.search(r"trees (\d+)", out)
    print()
    print(f"{a.minutes:g} min, {a.clients} clients: {reqs.group(1) if reqs else '?'} requests, "
          f"{trees.group(1) if trees else '?'} trees of 63 threads "
          f"({int(trees.group(1)) * 63 if trees else '?'} threads), exit {proc.returncode}")
    if errors:
        print("wrk:", errors.group(0))
    if err.strip():
        print("stderr:", err.strip() if a.stats else err.strip()[:2000])
    ok = proc.returncode == 0
    half = len(samples) // 2
    print("%-8s %8s %8s %8s %8s %8s %6s" % ("", "before", "first", "peak 1/2", "peak 2/2", "idle", "ok"))
    for i, name in ((1, "RSS MiB"), (2, "threads"), (3, "fds")):
        first = samples[0][i]
        p1 = max(s[i] for s in samples[:max(half, 1)])
        p2 = max(s[i] for s in samples[half:])
        end = idle[i - 1]
        start = before[i - 1]
        # Threads: a tree's 63 threads come and go, so the first half's peak may miss a
        # whole tree that the second half's catches; a leak adds thousands.
        bounded = p2 <= a.slack * p1 or (i == 2 and p2 <= p1 + 63)
        back = end <= a.slack * first if i == 1 else end <= start
        good = bounded and back
        ok = ok and good
        fmt = "%8.1f" if i == 1 else "%8d"
        print(("%-8s " + " ".join([fmt] * 5) + " %6s") % (name, start, first, p1, p2, end,
                                                          "yes" if good else "NO"))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
