#!/usr/bin/env python3
"""Runs a stmjit program of the Python-compatible subset under CPython with the prelude.

usage: run_python.py PROG.lang [ARGS...]   (args() returns ARGS)
"""
import os
import sys


def main():
    if len(sys.argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    prog = sys.argv[1]
    prelude = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prelude.py")
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    with open(prelude, encoding="utf-8") as f:
        exec(compile(f.read(), prelude, "exec"), namespace)
    with open(prog, encoding="utf-8") as f:
        source = f.read()
    sys.argv = [prog] + sys.argv[2:]
    exec(compile(source, prog, "exec"), namespace)
    return 0


if __name__ == "__main__":
    sys.exit(main())
