#!/usr/bin/env python3
"""Peak memory of a command: RSS as the kernel counts it, and PSS (physical memory).

usage: peak_memory.py COMMAND [ARGS...]   prints "rss_kib pss_kib seconds" on stderr's last line

Why both: stmjit maps one memfd old space once per segment (plus the committed view). The
kernel counts a page in RSS once per mapping that touched it, so a structure read by two
segments counts two or three times in RSS though it is in memory once. PSS divides each page
among its mappings and so gives the memory really used. Sampled every 5 ms from
/proc/PID/smaps_rollup (the peak between samples can be missed: allocation here is gradual).
"""
import subprocess
import sys
import time


def sample(pid):
    rss = pss = None
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return rss, pss


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    t0 = time.monotonic()
    p = subprocess.Popen(sys.argv[1:])
    peak_rss = peak_pss = 0
    while p.poll() is None:
        rss, pss = sample(p.pid)
        if rss is not None:
            peak_rss = max(peak_rss, rss)
            peak_pss = max(peak_pss, pss or 0)
        time.sleep(0.005)
    print(f"{peak_rss} {peak_pss} {time.monotonic() - t0:.3f}", file=sys.stderr)
    return p.returncode


if __name__ == "__main__":
    sys.exit(main())
