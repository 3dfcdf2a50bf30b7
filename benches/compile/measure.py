#!/usr/bin/env python3
"""Compile time and memory of stmjit on generated programs (see README.md beside this file).

Usage: python3 benches/compile/measure.py [--bin PATH] [--python] [CASE ...]

A CASE is `SHAPE:ARG,ARG...` as gen.py takes it (`funcs:200,10,5`, `onefunc:1000`,
`body:2000`); the default is the table of README.md. Each program runs once (under
`timeout 120`) with `--stats`; the row gives the source lines, user+sys CPU seconds and wall
seconds of the whole run, its peak RSS (`/usr/bin/time`), and from `--stats` the functions
compiled and the compile time (wall and CPU). `--python` adds CPython's run of each program.
"""
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT = [
    "funcs:200,10,5",
    "funcs:2000,50,5",
    "onefunc:250",
    "onefunc:1000",
    "onefunc:2000",
    "body:1000",
    "body:2000",
    "body:4000",
]


def timed(cmd):
    """(stdout+stderr, user+sys s, wall s, max RSS KB) of `cmd` under timeout 120."""
    fmt = "@@ %U %S %e %M"
    p = subprocess.run(
        ["timeout", "120", "/usr/bin/time", "-f", fmt] + cmd,
        capture_output=True,
        text=True,
    )
    err = p.stderr
    m = re.search(r"@@ ([\d.]+) ([\d.]+) ([\d.]+) (\d+)", err)
    if not m:
        return err, None, None, None
    u, s, e, rss = m.groups()
    return p.stdout + err, float(u) + float(s), float(e), int(rss)


def main(argv):
    binary = os.path.join(ROOT, "target", "release", "stmjit")
    python = False
    cases = []
    args = list(argv[1:])
    while args:
        a = args.pop(0)
        if a == "--bin":
            binary = args.pop(0)
        elif a == "--python":
            python = True
        else:
            cases.append(a)
    cases = cases or DEFAULT
    print("| program | lines | compiled | compile ms (CPU) | run CPU s | run wall s | max RSS MB |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            shape, _, rest = case.partition(":")
            gen_args = rest.split(",") if rest else []
            src = subprocess.run(
                [sys.executable, os.path.join(HERE, "gen.py"), shape] + gen_args,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
            path = os.path.join(tmp, case.replace(":", "-").replace(",", "_") + ".lang")
            with open(path, "w") as f:
                f.write(src)
            lines = src.count("\n")
            out, cpu, wall, rss = timed([binary, "run", "--stats", path])
            m = re.search(r"jit: (\d+) of (\d+) functions compiled \(([\d.]+) ms, CPU ([\d.]+) ms", out)
            compiled = f"{m.group(1)} of {m.group(2)}" if m else "?"
            ms = f"{float(m.group(3)):.0f} ({float(m.group(4)):.0f})" if m else "?"
            if cpu is None:
                print(f"| {case} | {lines} | failed or timed out | | | | |")
            else:
                print(f"| {case} | {lines} | {compiled} | {ms} | {cpu:.2f} | {wall:.2f} | {rss / 1024:.0f} |")
            if python:
                _, cpu, wall, rss = timed(["python3", path])
                if cpu is not None:
                    print(f"| {case} (python3) | {lines} | | | {cpu:.2f} | {wall:.2f} | {rss / 1024:.0f} |")
            sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv)
