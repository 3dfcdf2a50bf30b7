#!/usr/bin/env python3
"""Scale sweep of every statement and expression kind (issue 20: compile memory bounded for
any accepted source, compile time roughly linear). See README.md beside this file.

For each statement kind, a program of N such statements (default 10 000) in the module body
(`module`), in one function called once (`func`) and, for `class`, in one class body; for
each expression kind, N statements each holding a small one (5 terms) in the module body
and in a function, and one expression of N terms (`one`, in a function: its locals and
parameters are read). Each program runs once with `--stats` (compile time from it) while
its RSS and PSS are sampled every 5 ms (`/proc/PID/smaps_rollup`, as benches/peak_memory.py
does); a run over --max-rss MiB or --timeout seconds is killed (reported as such).

    python3 benches/compile/sweep.py [--n 10000] [--bin PATH] [--only KIND,...] [--shape S,...]
                                     [--check] [--keep DIR]

--check also runs each program with `--interp` and reports whether the outputs agree.
Prints a Markdown table: kind, shape, source KB, exit status, peak RSS MiB, peak PSS MiB,
code MiB, compile wall / CPU ms (`--stats`: the code stays for the run, the compile memory
does not), run wall s.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
from peak_memory import sample  # noqa: E402  (benches/peak_memory.py: RSS and PSS of a pid)

# Names every program defines before its statements (module globals, or a function's locals).
SETUP = [
    "g = 1",
    "h = 0",
    "s = 'ab'",
    "ys = [1, 2, 3]",
    "d = {0: 1, 1: 2, 2: 3}",
    "lk = Lock()",
    "o = O()",
    "o.p = o",
    "o.v = 5",
    "xs = [0]",
    "xs[0] = xs",
]
# Module-level definitions every program has (classes cannot be defined in a function).
PRELUDE = [
    "class O:",
    "    pass",
    "def va(*xs):",
    "    return len(xs)",
]
END = "print(g % 1000003, h % 1000003, len(ys), len(s))"


def stmt_kinds():
    """name -> (unit(i) -> list of lines, shapes it applies to). A unit is one statement
    (with its nested ones)."""
    return {
        "assign": (lambda i: [f"v{i % 64} = g + {i}", ], ("module", "func")),
        "augassign": (lambda i: [["g += 3", "g -= 1", "h ^= g", "g *= 1"][i % 4]], ("module", "func")),
        "if-elif": (lambda i: [f"if g > {i}:", "    g = g - 1", f"elif g < {i}:", "    g = g + 2",
                               "else:", "    h += 1"], ("module", "func")),
        "while": (lambda i: [f"while g < {i}:", "    g = g + 7"], ("module", "func")),
        "for": (lambda i: ["for k in range(2):", f"    g = g + k + {i % 7}"], ("module", "func")),
        "try": (lambda i: ["try:", f"    h = h + ys[{i % 5}]", "except IndexError:", "    h = h - 1",
                           "finally:", "    g = g + 1"], ("module", "func")),
        "with-lock": (lambda i: ["with lk:", f"    g = g + {i % 5}"], ("module", "func")),
        "with-atomic": (lambda i: ["with atomic:", f"    g = g + {i % 5}"], ("module", "func")),
        "def": (lambda i: [f"def f{i}(x):", f"    return x + {i}"], ("module", "func")),
        "class": (lambda i: [f"class C{i}:", f"    k = {i}", "    def m(self):",
                             "        return self.k"], ("module",)),
        "class-body": (lambda i: [f"k{i} = {i}"] if i % 2 else [f"def m{i}(self):", f"    return {i}"],
                       ("class",)),
        "return": (lambda i: [f"if g == -{i + 1}:", f"    return {i}"], ("func",)),
        "del": (lambda i: [f"d[{i + 3}] = g", f"del d[{i + 3}]"], ("module", "func")),
        "global": (lambda i: [f"global q{i}", f"q{i} = {i}"], ("module", "func")),
        "raise": (lambda i: ["try:", f"    raise ValueError('v{i}')", "except ValueError:", "    h = h + 1"],
                  ("module", "func")),
        "nested-def": (lambda i: [f"def n{i}(x):", "    def inner(y):", "        return x + y",
                                  f"    return inner({i})"], ("module", "func")),
        "lambda": (lambda i: [f"l{i % 50} = lambda x: x + {i}", f"g = g + l{i % 50}(1)"], ("module", "func")),
        "comprehension": (lambda i: [[f"ys = [k + {i} for k in range(3) if k != 1]",
                                      f"d = {{k: {i} for k in range(3)}}",
                                      f"zs = {{k * {i} for k in ys}}"][i % 3]], ("module", "func")),
        "call-stmt": (lambda i: [f"ys.append(g % {i % 7 + 2})", "ys.pop()"], ("module", "func")),
    }


def expr_kinds():
    """name -> term(i, n) -> str: the expression of n terms (first i terms of it)."""
    def join(op, f):
        return lambda n: op.join(f(i) for i in range(n))

    def nest(pre, post, inner):
        return lambda n: pre * n + inner + post * n

    return {
        "arith": join(" + ", lambda i: f"g * {i % 9}" if i % 3 == 1 else (f"{i}" if i % 3 else "h")),
        "compare": lambda n: " < ".join(str(i) for i in range(n)),
        "and": join(" and ", lambda i: f"g + {i}"),
        "or": lambda n: " or ".join(["h"] * (n - 1) + ["g"]),
        "call-args": lambda n: "va(" + ", ".join(f"g + {i}" for i in range(n)) + ")",
        "subscript-sum": join(" + ", lambda i: f"d[{i % 3}]"),
        "subscript-nest": lambda n: "xs" + "[0]" * n,
        "attribute-chain": lambda n: "o" + ".p" * n + ".v",
        "list": lambda n: "[" + ", ".join(f"g + {i}" for i in range(n)) + "]",
        "tuple": lambda n: "(" + ", ".join(f"g + {i}" for i in range(n)) + ")",
        "set": lambda n: "{" + ", ".join(f"g + {i}" for i in range(n)) + "}",
        "dict": lambda n: "{" + ", ".join(f"g + {i}: h" for i in range(n)) + "}",
        "fstring": lambda n: "f'" + "".join(f"{{g + {i}}}-" for i in range(n)) + "'",
        "format": lambda n: "'" + "{}" * n + "'.format(" + ", ".join(f"h + {i}" for i in range(n)) + ")",
        "ifexp-nest": lambda n: "".join(f"{i} if g == {i} else (" for i in range(n)) + "h" + ")" * n,
        "ifexp-sum": join(" + ", lambda i: f"({i} if g > {i} else h)"),
        "str-concat": join(" + ", lambda i: "s" if i % 2 else f"'{i % 10}'"),
        "unary": nest("-", "", "g"),
    }


def indent(lines, ind):
    return [ind + line for line in lines]


def program(kind, shape, n):
    """The source of kind at shape with n statements or terms, or None if not applicable."""
    stmts = stmt_kinds()
    body = []
    if kind in stmts:
        unit, shapes = stmts[kind]
        if shape not in shapes:
            return None
        for i in range(n):
            body += unit(i)
    else:
        expr = expr_kinds()[kind]
        if shape == "one":
            body = ["x = " + expr(n), "h = h + len(str(x)) % 7"]
        else:
            small = expr(5)
            for i in range(n):
                body += [f"x = {small}" if i % 2 else f"g = (g + {i}) % 1000"]
    out = list(PRELUDE)
    if shape == "module":
        out += SETUP + body + [END]
    elif shape == "class":
        out += SETUP + ["class Big:"] + indent(body, "    ") + ["print(Big().m0(), Big.k1)", END]
    else:  # func, one: a function called once
        out += ["def big(a):"] + indent(SETUP + body + [END], "    ") + ["big(1)"]
    return "\n".join(out) + "\n"


def measure(cmd, max_rss_mib, timeout):
    """(exit status or a word, stdout, stderr, peak RSS KiB, peak PSS KiB, wall s)."""
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        peak_rss = peak_pss = 0
        status = None
        while p.poll() is None:
            rss, pss = sample(p.pid)
            if rss is not None:
                peak_rss = max(peak_rss, rss)
                peak_pss = max(peak_pss, pss or 0)
            if peak_rss > max_rss_mib * 1024:
                p.kill()
                status = f"killed >{max_rss_mib} MiB"
            elif time.monotonic() - t0 > timeout:
                p.kill()
                status = f"killed >{timeout} s"
            time.sleep(0.005)
        wall = time.monotonic() - t0
        out.seek(0)
        err.seek(0)
        return (status or p.returncode, out.read().decode(errors="replace"),
                err.read().decode(errors="replace"), peak_rss, peak_pss, wall)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "stmjit"))
    ap.add_argument("--only", default="", help="comma-separated kinds")
    ap.add_argument("--shape", default="", help="comma-separated shapes: module, func, class, one")
    ap.add_argument("--check", action="store_true", help="compare each output with --interp's")
    ap.add_argument("--keep", default="", help="write the programs to this directory")
    ap.add_argument("--max-rss", type=int, default=3000, help="MiB")
    ap.add_argument("--timeout", type=float, default=300)
    a = ap.parse_args()
    kinds = list(stmt_kinds()) + list(expr_kinds())
    if a.only:
        kinds = [k for k in kinds if k in a.only.split(",")]
    shapes = a.shape.split(",") if a.shape else ["module", "func", "class", "one"]
    print(f"N = {a.n}; {a.bin}")
    print()
    print("| kind | shape | source KB | exit | peak RSS MiB | peak PSS MiB | code MiB | compile ms (CPU) | wall s |"
          + (" same as --interp |" if a.check else ""))
    print("|---|---|---|---|---|---|---|---|---|" + ("---|" if a.check else ""))
    tmp = a.keep or tempfile.mkdtemp(prefix="stmjit-sweep-")
    os.makedirs(tmp, exist_ok=True)
    try:
        for kind in kinds:
            for shape in shapes:
                if kind in expr_kinds() and shape == "class":
                    continue
                src = program(kind, shape, a.n)
                if src is None:
                    continue
                path = os.path.join(tmp, f"{kind}-{shape}.lang")
                with open(path, "w") as f:
                    f.write(src)
                status, out, err, rss, pss, wall = measure([a.bin, "run", "--stats", path], a.max_rss, a.timeout)
                m = re.search(r"jit: \d+ of \d+ functions compiled \(([\d.]+) ms, CPU ([\d.]+) ms, (\d+) KiB", err)
                ms = f"{float(m.group(1)):.0f} ({float(m.group(2)):.0f})" if m else "?"
                code_mib = f"{int(m.group(3)) / 1024:.1f}" if m else "?"
                code = status
                if status != 0:
                    first = next((line for line in err.splitlines() if line.startswith("error")), "")
                    status = f"{status} {first[:80]}".strip()
                row = (f"| {kind} | {shape} | {len(src) // 1024} | {status} | {rss / 1024:.0f} | {pss / 1024:.0f} "
                       f"| {code_mib} | {ms} | {wall:.2f} |")
                if a.check:
                    i_status, i_out, i_err, _, _, _ = measure([a.bin, "run", "--interp", path], a.max_rss, a.timeout)
                    jit_err = err[:err.find("stats:")] if "stats:" in err else err
                    row += " yes |" if (i_status, i_out, i_err) == (code, out, jit_err) else f" NO ({i_status}) |"
                print(row, flush=True)
    finally:
        if not a.keep:
            for name in os.listdir(tmp):
                os.remove(os.path.join(tmp, name))
            os.rmdir(tmp)


if __name__ == "__main__":
    main()
