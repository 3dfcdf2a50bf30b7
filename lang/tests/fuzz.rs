//! Random inputs through lexer, parser and resolver: every input must end in `Ok` or a clean
//! `Diagnostic` with a position inside the input, never a panic. 120 000 inputs: random bytes,
//! random token soups, and random programs from the grammar (which must parse).

use std::panic::{catch_unwind, AssertUnwindSafe};
use stmjit_lang::{parse_bytes, stack::on_big_stack};

/// xorshift64*: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "def",
    "return",
    "if",
    "elif",
    "else",
    "while",
    "for",
    "in",
    "break",
    "continue",
    "pass",
    "and",
    "or",
    "not",
    "is",
    "global",
    "class",
    "with",
    "atomic",
    "True",
    "False",
    "None",
    "del",
    "x",
    "y",
    "f",
    "self",
    "print",
    "_a1",
    "0",
    "42",
    "0x2A",
    "1_000",
    "1.5",
    ".5",
    "2e-3",
    "9999999999999999999999",
    "'s'",
    "\"t\\n\"",
    "'\\u{41}'",
    "'unterminated",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ":",
    ".",
    ";",
    "=",
    "+=",
    "-=",
    "**=",
    "//=",
    ">>=",
    "+",
    "-",
    "*",
    "/",
    "//",
    "%",
    "**",
    "<<",
    ">>",
    "&",
    "|",
    "^",
    "~",
    "<",
    ">",
    "<=",
    ">=",
    "==",
    "!=",
    "\n",
    "\n    ",
    "\n        ",
    "\n  ",
    "\t",
    "#c\n",
    "\\\n",
    "$",
    "é",
];

/// Bytes biased toward the language's characters, with some arbitrary (often invalid UTF-8).
fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefxyz_0123456789 \n\n\n    ()[]{}:,.;=+-*/%<>!&|^~#'\"\\\t\r";
    let len = rng.below(80);
    (0..len)
        .map(|_| {
            if rng.below(10) == 0 {
                rng.next() as u8
            } else {
                ALPHABET[rng.below(ALPHABET.len())]
            }
        })
        .collect()
}

fn token_soup(rng: &mut Rng) -> Vec<u8> {
    let len = rng.below(40);
    let mut s = String::new();
    for _ in 0..len {
        s.push_str(rng.pick(TOKENS));
        if rng.below(3) > 0 {
            s.push(' ');
        }
    }
    s.into_bytes()
}

/// A random well-formed expression of depth at most `depth`.
fn expr(rng: &mut Rng, depth: usize, out: &mut String) {
    if depth == 0 || rng.below(3) == 0 {
        let atom = rng.pick(&[
            "x", "y", "1", "0x1F", "2.5", "'s'", "True", "None", "[]", "{}", "f(1)",
        ]);
        out.push_str(atom);
        return;
    }
    match rng.below(9) {
        0 => {
            out.push('(');
            expr(rng, depth - 1, out);
            out.push(')');
        }
        1 => {
            let op = rng.pick(&["-", "(not ", "~", "+"]);
            out.push_str(op);
            expr(rng, depth - 1, out);
            if op == "(not " {
                out.push(')');
            }
        }
        2 => {
            out.push('[');
            expr(rng, depth - 1, out);
            out.push_str(", ");
            expr(rng, depth - 1, out);
            out.push(']');
        }
        3 => {
            out.push('{');
            expr(rng, depth - 1, out);
            out.push_str(": ");
            expr(rng, depth - 1, out);
            out.push('}');
        }
        4 => {
            out.push('(');
            expr(rng, depth - 1, out);
            out.push_str(" if ");
            expr(rng, depth - 1, out);
            out.push_str(" else ");
            expr(rng, depth - 1, out);
            out.push(')');
        }
        5 => {
            out.push_str("g(");
            expr(rng, depth - 1, out);
            out.push_str(").m(");
            expr(rng, depth - 1, out);
            out.push_str(")[0]");
        }
        6 => {
            out.push_str("x[");
            expr(rng, depth - 1, out);
            out.push_str(":]");
        }
        _ => {
            expr(rng, depth - 1, out);
            out.push_str(rng.pick(&[
                " + ", " - ", " * ", " / ", " // ", " % ", " ** ", " << ", " >> ", " & ", " | ",
                " ^ ", " and ", " or ", " < ", " == ", " != ", " in ", " not in ", " is ",
                " is not ", " <= ",
            ]));
            expr(rng, depth - 1, out);
        }
    }
}

/// A random well-formed block at indentation `indent`.
fn block(rng: &mut Rng, indent: usize, depth: usize, in_loop: bool, out: &mut String) {
    let pad = " ".repeat(indent);
    for _ in 0..1 + rng.below(3) {
        out.push_str(&pad);
        match if depth == 0 {
            rng.below(4)
        } else {
            rng.below(9)
        } {
            0 => {
                out.push_str("x = ");
                expr(rng, 4, out);
            }
            1 => {
                out.push_str("y[1] += ");
                expr(rng, 3, out);
            }
            2 => expr(rng, 4, out),
            3 => out.push_str(if in_loop { "break" } else { "pass" }),
            4 | 5 => {
                let head = rng.pick(&["if ", "while ", "if not "]);
                out.push_str(head);
                expr(rng, 3, out);
                out.push_str(":\n");
                block(rng, indent + 4, depth - 1, in_loop, out);
                if head != "while " && rng.below(2) == 0 {
                    out.push_str(&pad);
                    out.push_str("else:\n");
                    block(rng, indent + 4, depth - 1, in_loop, out);
                }
                continue;
            }
            6 => {
                out.push_str("for i in ");
                expr(rng, 3, out);
                out.push_str(":\n");
                block(rng, indent + 4, depth - 1, true, out);
                continue;
            }
            7 => {
                out.push_str(rng.pick(&["with atomic:\n", "with lock:\n"]));
                block(rng, indent + 4, depth - 1, in_loop, out);
                continue;
            }
            _ => {
                out.push_str("del x[");
                expr(rng, 2, out);
                out.push(']');
            }
        }
        out.push('\n');
    }
}

fn grammar_program(rng: &mut Rng) -> Vec<u8> {
    let mut s = String::new();
    block(rng, 0, 3, false, &mut s);
    if rng.below(2) == 0 {
        s.push_str("def f(a, b):\n    global x\n");
        block(rng, 4, 2, false, &mut s);
        s.push_str("    return a\n");
    }
    if rng.below(3) == 0 {
        s.push_str("class C(B):\n    k = 1\n    def m(self):\n");
        block(rng, 8, 2, false, &mut s);
    }
    s.into_bytes()
}

/// Parses `input`, failing the test on a panic or an out-of-range error position.
fn check(input: &[u8], must_parse: bool) {
    let result = catch_unwind(AssertUnwindSafe(|| parse_bytes(input)));
    let shown = String::from_utf8_lossy(input);
    match result {
        Err(_) => panic!("parser panicked on {shown:?}"),
        Ok(Ok(_)) => {}
        Ok(Err(d)) => {
            assert!(!must_parse, "valid program rejected: {d:?}\n{shown}");
            let lines = input.split(|b| *b == b'\n').count() as u32;
            assert!(
                d.span.line >= 1 && d.span.line <= lines + 1 && d.span.col >= 1,
                "bad error position {:?} for {shown:?}",
                d.span
            );
            assert!(!d.message.is_empty());
        }
    }
}

#[test]
fn random_inputs_never_panic() {
    on_big_stack(|| {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let start = std::time::Instant::now();
        let mut count = 0;
        for _ in 0..50_000 {
            check(&random_bytes(&mut rng), false);
            count += 1;
        }
        for _ in 0..50_000 {
            check(&token_soup(&mut rng), false);
            count += 1;
        }
        for _ in 0..20_000 {
            check(&grammar_program(&mut rng), true);
            count += 1;
        }
        assert_eq!(count, 120_000);
        eprintln!("{count} inputs in {:?}", start.elapsed());
    });
}
