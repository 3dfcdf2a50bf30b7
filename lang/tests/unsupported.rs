//! Python features outside the language are SyntaxErrors that name the feature (not a
//! generic "unexpected token"), at the position of the construct.

use stmjit_lang::parse;

/// `(source, words the message must contain, line, column)`.
const CASES: &[(&str, &str, u32, u32)] = &[
    (
        "try:\n    x = 1\nexcept* ValueError:\n    pass\n",
        "'except*' (exception groups)",
        3,
        7,
    ),
    (
        "x = 1\nraise ValueError(\"x\") from None\n",
        "'raise ... from'",
        2,
        23,
    ),
    ("import math\n", "'import' (modules)", 1, 1),
    ("from math import sqrt\n", "'import' (modules)", 1, 1),
    ("def g():\n    yield 1\n", "'yield' (generators)", 2, 5),
    ("def g():\n    x = yield\n", "'yield' (generators)", 2, 9),
    ("async def f():\n    pass\n", "'async'", 1, 1),
    (
        "@dec\ndef f():\n    pass\n",
        "'@' is not supported (no decorators",
        1,
        1,
    ),
    (
        "match x:\n    case 1:\n        pass\n",
        "'match' statements",
        1,
        1,
    ),
    (
        "print((x for x in range(3)))\n",
        "generator expressions",
        1,
        10,
    ),
    (
        "print(max(1, x for x in range(3)))\n",
        "generator expressions",
        1,
        16,
    ),
    (
        "d = {0: 0, k: 1 for k in range(3)}\n",
        "dict comprehensions after other items",
        1,
        17,
    ),
    ("s = {1, *xs}\n", "'*' unpacking", 1, 9),
    ("s = {*xs}\n", "'*' unpacking", 1, 6),
    ("x = *a, 1\n", "'*' unpacking in a tuple display", 1, 5),
    (
        "a, (b, *c) = 1, (2, 3)\n",
        "'*' unpacking in parentheses",
        1,
        8,
    ),
    (
        "s = {0, x for x in range(3)}\n",
        "set comprehensions after other items",
        1,
        11,
    ),
    ("print(b\"ab\")\n", "bytes literals", 1, 7),
    (
        "def f(a, /):\n    pass\n",
        "positional-only parameters",
        1,
        10,
    ),
    ("def f(a: int):\n    pass\n", "annotations", 1, 8),
    ("def f(a) -> int:\n    pass\n", "annotations", 1, 10),
    ("x: int = 3\n", "annotations", 1, 2),
    ("assert 1 == 1\n", "'assert'", 1, 1),
    (
        "with open(\"f\") as fh:\n    pass\n",
        "'with ... as'",
        1,
        16,
    ),
    ("print(\"\\N{BULLET}\")\n", "\\N{...} escapes", 1, 8),
];

#[test]
fn unsupported_features_are_named() {
    for &(src, words, line, col) in CASES {
        let d = parse(src).expect_err(src);
        assert!(
            d.message.contains(words) && d.message.contains("not supported"),
            "{src:?}: message {:?} should name {words:?}",
            d.message
        );
        assert_eq!((d.span.line, d.span.col), (line, col), "{src:?}: position");
    }
}

/// Names that are soft keywords in Python stay names here.
#[test]
fn soft_keywords_stay_names() {
    for src in [
        "match = 3\nprint(match)\n",
        "type = 1\nprint(type)\n",
        "case = [1]\nmatch = case[0]\n",
        "print(r\"a\\nb\", u\"x\", R'\\'')\n",
        "xs = [x * 2 for x in range(3) if x for y in xs if y]\n",
        "print(sum(x for x in range(3)), any(x for x in []), {k: 1 for k in []})\n",
    ] {
        parse(src).unwrap_or_else(|d| panic!("{src:?}: {}", d.message));
    }
}
