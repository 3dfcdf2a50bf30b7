#!/usr/bin/env python3
"""Generates programs to measure compile time and memory (see benches/compile/README.md).

Shapes (each prints one checksum line, the same under CPython):
  funcs N L K   N functions of about L lines each; the module body calls K of them
  onefunc L     one function of about L lines, called once
  body M        a straight-line module body of about M statements (no function)

Usage: python3 benches/compile/gen.py SHAPE ARGS... > prog.lang
"""
import sys

# Statement groups of a function body, cycled; `a`, `b`, `s`, `xs`, `d`, `o`, `t`, `n`
# are locals; `P` and `helper` are defined by the program's prelude.
FUNC_GROUPS = [
    ["a = n + {i}"],
    ["b = a * 2 - {i} + xs[0] * xs[-1]"],
    ["if b > {i} and a < 1000 or s == {i}:", "    a = a - b", "else:", "    a = a + 1"],
    ["xs = [a, b, n, s % 13]"],
    ["for x in xs:", "    s = s + x % 7"],
    ["while a > 10:", "    a = a // 2"],
    ["d = {{'k': a, 'j': b}}"],
    ["s = s + d['k'] + len(xs) + abs(a - b)"],
    ["o.v = o.v + a % 5"],
    ["t = str(a) + 'x' + t[:3]"],
    ["f = a * 1.5 + b / 2.0 - f * 0.25"],
    ["xs.append(s % 3)", "s = s + xs.pop() + helper(a, b)"],
]

PRELUDE = [
    "class P:",
    "    def __init__(self):",
    "        self.v = 0",
    "def helper(x, y):",
    "    return (x ^ y) % 17",
]

# Statement groups of a module body, cycled; `g`, `h`, `t`, `ys` are globals.
BODY_GROUPS = [
    ["g = g + {i}"],
    ["h = g * 3 - {i}"],
    ["if h > {i}:", "    g = g - h // 2"],
    ["ys.append(g % 11)"],
    ["t = t + ys[-1] + len(ys)"],
]


def func(name, lines, i):
    """`def name(n)` of about `lines` lines; function `i` starts at its own group."""
    out = [
        f"def {name}(n):",
        "    s = 0",
        "    a = n",
        "    b = 1",
        "    xs = [n]",
        "    d = {'k': 0}",
        "    o = P()",
        "    t = 'abc'",
        "    f = 0.5",
    ]
    k = i
    while len(out) < lines - 1:
        for t in FUNC_GROUPS[k % len(FUNC_GROUPS)]:
            out.append("    " + t.format(i=(i + k) % 50))
        k += 1
    out.append("    return (s + a + b + o.v + len(t) + int(f)) % 1000003")
    return out


def funcs(n, lines, called):
    out = list(PRELUDE)
    for i in range(n):
        out += func(f"f{i}", lines, i)
    out.append("total = 0")
    step = max(1, n // max(1, called))
    for i in range(0, n, step)[:called]:
        out.append(f"total = total + f{i}({i})")
    out.append("print(total)")
    return out


def onefunc(lines):
    return PRELUDE + func("big", lines, 1) + ["print(big(5))"]


def body(stmts):
    out = ["g = 1", "h = 0", "t = 0", "ys = []"]
    k = 0
    while len(out) < stmts:
        for t in BODY_GROUPS[k % len(BODY_GROUPS)]:
            out.append(t.format(i=k % 97))
        k += 1
    out.append("print(t % 1000003, len(ys))")
    return out


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    shape, args = argv[1], [int(a) for a in argv[2:]]
    lines = {"funcs": funcs, "onefunc": onefunc, "body": body}[shape](*args)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main(sys.argv)
