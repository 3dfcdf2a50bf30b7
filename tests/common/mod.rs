//! The random program generator shared by the differential tests (`differential.rs`: the
//! interpreter against CPython; `jit_differential.rs`: the JIT against the interpreter).
//! Programs are deterministic and error-free: typed expressions with guards against division
//! by zero and int overflow, functions, methods with inheritance, dict and list mutation, loops,
//! tuples (displays, unpacking, `for` targets, tuple keys, several return values) and the
//! sequence builtins, sets (operators, methods, comprehensions; printed sorted or by `len`, since
//! CPython's set order differs from ours).

#![allow(dead_code)]

pub mod spec;

/// Definitions every random program starts with.
pub const PRELUDE: &str = "\
i0 = 7
i1 = -3
i2 = 12
f0 = 1.5
s0 = 'hello'
l0 = [4, -2, 9]
b0 = True
d0 = {'a': 1, 'b': 2}
z0 = {1, 'a', (2, 'b')}

def fa(a, b):
    if a < b:
        return a * 2 - b
    elif a == b:
        return 0
    return (a - b) % 17

def fs(s, n):
    out = ''
    for c in s:
        if c < 'm':
            out = out + c
        else:
            out = c + out
    return out[:n % 7 + 1]

class Base:
    def twice(self):
        return self.v * 2

class Acc(Base):
    def __init__(self, v):
        self.v = v

    def add(self, x):
        self.v = (self.v + x) % 1000
        return self

    def total(xs):
        t = 0
        for x in xs:
            t += x
        return t

def qr(a, b):
    return a // (abs(b) + 1), a % (abs(b) + 1)

class Oops(ValueError):
    def __init__(self, code):
        self.code = code

def risky(a, b):
    if b == 0:
        raise Oops(a)
    if a < -50:
        return [][a]
    return a // b

def guarded(a, b, log):
    try:
        r = risky(a, b)
    except Oops as e:
        log.append(e.code)
        r = -1
    except LookupError as e:
        log.append(str(e))
        r = -2
    else:
        log.append(r)
    finally:
        log.append('f')
    return r
";

pub struct Gen(pub u64);

impl Gen {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    pub fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len() as u64) as usize]
    }

    /// An int expression whose value stays far inside 63 bits.
    pub fn int(&mut self, d: u32) -> String {
        if d == 0 || self.below(4) == 0 {
            return match self.below(3) {
                0 => format!("{}", self.below(101) as i64 - 50),
                1 => self.pick(&["i0", "i1", "i2"]).to_string(),
                _ => self
                    .pick(&["len(s0)", "len(l0)", "True", "False", "0x1F", "1_000"])
                    .to_string(),
            };
        }
        let (a, b) = (self.int(d - 1), self.int(d - 1));
        match self.below(19) {
            0 => format!("({a} + {b})"),
            1 => format!("({a} - {b})"),
            2 => format!("(({a}) * ({b}) % 1009)"),
            3 => format!("({a} // (abs({b}) + 1))"),
            4 => format!("({a} % (abs({b}) + 1))"),
            5 => format!("(-{a})"),
            6 => format!("({a} & {b})"),
            7 => format!("({a} | {b})"),
            8 => format!("({a} ^ {b})"),
            9 => format!("({a} << (abs({b}) % 5))"),
            10 => format!("({a} >> (abs({b}) % 5))"),
            11 => format!("min({a}, {b})"),
            12 => format!("max({a}, {b}, {})", self.int(d - 1)),
            13 => format!("({a} if {} else {b})", self.boolean(d - 1)),
            14 => format!("({a} % 7) ** (abs({b}) % 3)"),
            15 => format!("len({})", self.string(d - 1)),
            16 => format!("int({} % 1000.0)", self.float(d - 1)),
            17 => format!("(~{a})"),
            _ => format!("l0[{a} % len(l0)]"),
        }
    }

    pub fn float(&mut self, d: u32) -> String {
        if d == 0 || self.below(4) == 0 {
            return self
                .pick(&[
                    "0.5", "2.25", "-1.75", "1e-3", "3.0", "f0", ".1", "1e16", "-0.0",
                ])
                .to_string();
        }
        let (a, b) = (self.float(d - 1), self.float(d - 1));
        match self.below(11) {
            0 => format!("({a} + {b})"),
            1 => format!("({a} - {})", self.int(d - 1)),
            2 => format!("({a} * {b})"),
            3 => format!("({} / (abs({}) + 1))", self.int(d - 1), self.int(d - 1)),
            4 => format!("({a} / (abs({b}) + 0.5))"),
            5 => format!("({a} // (abs({b}) + 1.0))"),
            6 => format!("({a} % (abs({b}) + 1.0))"),
            7 => format!("sqrt(abs({a}))"),
            8 => format!("float({})", self.int(d - 1)),
            9 => format!("abs({a})"),
            _ => format!("(-{a})"),
        }
    }

    pub fn boolean(&mut self, d: u32) -> String {
        if d == 0 {
            return self.pick(&["True", "False", "b0"]).to_string();
        }
        match self.below(9) {
            0 => format!("({} < {})", self.int(d - 1), self.int(d - 1)),
            1 => format!("({} == {})", self.int(d - 1), self.float(d - 1)),
            2 => format!(
                "({} <= {} < {})",
                self.int(d - 1),
                self.int(d - 1),
                self.int(d - 1)
            ),
            3 => format!("(not {})", self.boolean(d - 1)),
            4 => format!("({} and {})", self.boolean(d - 1), self.boolean(d - 1)),
            5 => format!("({} or {})", self.boolean(d - 1), self.boolean(d - 1)),
            6 => format!("({} in l0)", self.int(d - 1)),
            7 => format!("({} in {})", self.string(d - 1), self.string(d - 1)),
            _ => format!("({} > {})", self.string(d - 1), self.string(d - 1)),
        }
    }

    pub fn string(&mut self, d: u32) -> String {
        if d == 0 || self.below(3) == 0 {
            return self
                .pick(&[
                    "'ab'", "''", "\"xyz\"", "s0", "'a b  c'", "'it''s'", "'\\t\\n'", "'é'",
                ])
                .replace("'it''s'", "\"it's\"");
        }
        let (a, b) = (self.string(d - 1), self.string(d - 1));
        match self.below(9) {
            0 => format!("({a} + {b})"),
            1 => format!("({a} * (abs({}) % 3))", self.int(d - 1)),
            2 => format!("str({})", self.int(d - 1)),
            3 => format!("str({})", self.float(d - 1)),
            4 if self.below(2) == 0 => format!("{a}[{}:{}]", self.int(0), self.int(0)),
            4 => format!("{a}[{}:{}:{}]", self.int(0), self.int(0), self.step()),
            5 => format!("{a}.upper()"),
            6 => format!("\"-\".join({})", self.list(d - 1)),
            7 => format!("str({})", self.list(d - 1)),
            _ => format!("{a}.strip()"),
        }
    }

    /// A slice step: never 0, either sign.
    pub fn step(&mut self) -> String {
        let sign = self.pick(&["", "-"]);
        format!("{sign}(abs({}) % 3 + 1)", self.int(0))
    }

    pub fn list(&mut self, d: u32) -> String {
        match self.below(4) {
            0 => format!("[{}, {}]", self.string(d.saturating_sub(1)), self.string(0)),
            1 => format!("{}.split()", self.string(d.saturating_sub(1))),
            2 => format!("{}.split('a')", self.string(d.saturating_sub(1))),
            _ => "['x', 'yy']".to_string(),
        }
    }

    pub fn program(&mut self, statements: usize) -> String {
        let mut p = String::from(PRELUDE);
        for _ in 0..statements {
            let line = match self.below(27) {
                26 => format!(
                    "l1 = list(range(abs({}) % 12))\nl1[::2] = [x * 2 for x in l1[::2]]\ndel l1[1::3]\nsl = slice({}, {}, {})\nprint(l1, l1[::-1], l1[sl], s0[sl], s0[::-1], l0[::{}], sl.indices(len(l1)), range(abs({}) % 20)[{}::{}])\nl1[{}:{}] = s0[:3]\nprint(l1)",
                    self.int(1),
                    self.int(0),
                    self.int(0),
                    self.step(),
                    self.step(),
                    self.int(1),
                    self.int(0),
                    self.step(),
                    self.int(0),
                    self.int(0)
                ),
                17 => format!(
                    "t0 = ({}, {}, {})\nprint(t0, t0[{}], t0[1:], len(t0), {} in t0, t0 + ({},), t0 * 2)",
                    self.int(2),
                    self.string(1),
                    self.float(1),
                    self.below(3),
                    self.int(1),
                    self.int(1)
                ),
                18 => format!(
                    "a0, (b9, c9) = {}, [{}, {}]\nprint(a0, b9, c9)\na0, i1 = i1, a0\nprint(a0, i1)",
                    self.int(2),
                    self.string(1),
                    self.int(1)
                ),
                19 => "for q, (k, v) in enumerate(sorted(d0.items())):\n    print(q, k, v)\nfor k, v in d0.items():\n    i2 = (i2 + v) % 1000\nprint([k for k, _ in d0.items()], i2)".to_string(),
                20 => format!(
                    "tk = {{({}, {}): 1}}\ntk[({}, {})] = 2\nprint(sorted(tk.items()), ({}, {}) < ({}, {}), hash((1, 2)) == hash((1.0, 2)))",
                    self.int(1),
                    self.string(1),
                    self.int(1),
                    self.string(1),
                    self.int(1),
                    self.string(1),
                    self.int(1),
                    self.string(1)
                ),
                21 => format!(
                    "q, r = qr({}, {})\nprint(q, r, qr({}, {}), divmod({}, abs({}) + 1))",
                    self.int(2),
                    self.int(2),
                    self.int(1),
                    self.int(1),
                    self.int(1),
                    self.int(1)
                ),
                22 => format!(
                    "print(list(zip(l0, {})), list(reversed(l0)), list(map(abs, l0)), list(filter(None, [{}, 0, {}])), tuple(l0))",
                    self.list(1),
                    self.int(1),
                    self.string(1)
                ),
                25 => format!(
                    "z0.add({})\nz0.discard({})\nz0.add({})\nz1 = {{{}, {}, {}}}\nz2 = {{x % 5 for x in l0 if x != {}}}\nz2 |= {{len({})}}\nprint(len(z0), len(z0 | z1), len(z0 & z1), len(z0 - z1), len(z0 ^ z1), z0 <= z1, z1 >= z1 - z0, {} in z0, sorted(z2), sorted(z1.union(z2)), z2.issubset(set(range(-5, 20))))\nwhile len(z0) > 6:\n    z0.remove(sorted(z0, key=repr)[0])",
                    self.int(1),
                    self.int(1),
                    self.string(1),
                    self.int(1),
                    self.int(1),
                    self.int(1),
                    self.int(0),
                    self.string(1),
                    self.string(1)
                ),
                8 => format!("print(fa({}, {}))", self.int(2), self.int(2)),
                9 => format!("print(fs({}, {}))", self.string(2), self.int(1)),
                10 => format!("acc = Acc({}).add({})\nprint(acc.v, acc.twice())", self.int(2), self.int(2)),
                11 => format!("d0[{}] = {}", self.string(1), self.int(2)),
                12 => format!(
                    "print(d0.get({}, {}), len(d0))\nk = {}\nif k in d0:\n    del d0[k]",
                    self.string(1),
                    self.int(1),
                    self.string(1)
                ),
                13 => "for k in d0:\n    print(k, d0[k])\nprint(d0)".to_string(),
                14 => format!(
                    "l0.insert({}, {})\nl0.sort()\nprint(l0, l0.index(l0[0]))\nl0.pop({})",
                    self.int(1),
                    self.int(1),
                    self.below(3)
                ),
                15 => format!(
                    "n = 0\nwhile n < abs({}) % 5:\n    n += 1\n    if n == 3:\n        continue\n    print('w', n)",
                    self.int(2)
                ),
                16 => format!("print(Acc.total([{}, {}, {}]))", self.int(1), self.int(1), self.int(1)),
                23 => format!(
                    "lg = []\nprint(guarded({}, abs({}) % 3, lg), lg)",
                    self.int(2),
                    self.int(1)
                ),
                24 => format!(
                    "t = 0\nfor q in range(abs({}) % 9):\n    try:\n        if q == 2:\n            continue\n        if q > abs({}) % 7:\n            break\n        t += risky(q - {}, q % 3)\n    except (ValueError, IndexError) as e:\n        t += 100 + type(e).__name__.count('o')\n    finally:\n        t += 1\nprint(t)",
                    self.int(1),
                    self.int(1),
                    self.below(60)
                ),
                0 => format!("i{} = {}", self.below(3), self.int(3)),
                1 => format!("print({})", self.float(3)),
                2 => format!("print({})", self.boolean(3)),
                3 => format!("print({})", self.string(3)),
                4 => format!(
                    "print([{}, {}], {{{}: {}}})",
                    self.int(2),
                    self.float(2),
                    self.string(1),
                    self.int(1)
                ),
                5 => format!("l0.append({})\nl0.pop(0)", self.int(2)),
                6 => format!("s0 = {}[:12]", self.string(2)),
                _ => format!("print({})", self.int(3)),
            };
            p.push_str(&line);
            p.push('\n');
        }
        p
    }
}
