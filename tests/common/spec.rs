//! Random programs aimed at what type specialization can get wrong (issue 16): functions whose
//! loops (for and while, nested, with break, continue and try/except inside) change the type of
//! a local at some iteration (int, float, str, instance, None, big int, bool, list), let ints
//! overflow into big ints and come back, mix ints, floats and bools in arithmetic and
//! comparisons, capture float locals in closures or pass them to calls, add attributes to
//! instances, alternate instances of two classes in one local, rebind a class attribute or
//! replace a method on the class, replace a list receiver by another type, and raise
//! ZeroDivisionError, TypeError, AttributeError, ... from the middle of it all, caught at
//! several levels (in the loop, around it, in the caller) with their messages printed. Also:
//! calls of small leaf functions (which the JIT computes inline) with operands of every type
//! while their global is rebound and restored, loops over a receiver the body grows, shrinks
//! or replaces, `min`/`max` of mixed operands, `//` and `%` by powers of two, int/float
//! comparisons beyond 2**53, attributes added under names computed at run time, int loops at
//! the edges of the JIT's int fast paths (`int_loop`: squares passing 2**62, dividends and
//! divisors around 2**31 and 2**32, `range` with big-int or variable bounds and steps), float
//! loops of the JIT's float shapes (`float_loop`: invariants tested before a `while` loop, sums
//! of inline quotients, float attribute updates) on NaN, inf, -0.0, big ints and non-floats. Parts run
//! inside `with atomic:`. Programs are deterministic; each function is called several times
//! with arguments of different types (int, float, big int, bool).

use super::Gen;

/// Definitions every generated program starts with.
pub const PRELUDE: &str = "\
class P:
    k = 10
    def __init__(self, v):
        self.v = v
    def m(self, t):
        return self.v + t
    def lt(self, t):
        return self.v < t or (self.v == t and len(self.k) > 0)
    def __repr__(self):
        return 'P(' + repr(self.v) + ')'

class Q:
    k = 'q'
    def __init__(self, v):
        self.v = v
        self.w = -1
    def m(self, t):
        return t * 2
    def __repr__(self):
        return 'Q(' + repr(self.v) + ')'

class R(P):
    def m(self, t):
        return super().m(t) * 2

class S:
    k = 's'
    def __init__(self, v):
        self.w = 0.5
        self.v = v
    def m(self, t):
        return self.w * t
    def lt(self, t):
        return len(self.v) > t and self.w < 1
    def __repr__(self):
        return 'S(' + repr(self.v) + ',' + repr(self.w) + ')'

class Stack:
    def __init__(self, xs):
        self.xs = xs
    def append(self, v):
        self.xs.append(v)
    def pop(self, i=-1):
        return self.xs.pop(i)
    def __len__(self):
        return len(self.xs)

def pm1(self, t):
    return self.v + t

def pm2(self, t):
    return [self.v, t]

def ident(v):
    return v

def fadd(a, b):
    return a + b * 0.5

def boom(v):
    if v % 3 == 2:
        raise ValueError('boom ' + str(v))
    return v

def err(e):
    return type(e).__name__ + ': ' + str(e)

def lin(a, b):
    c = a * 3 + b
    c -= a // 4
    return c % 1000003 - (b << 2)

def flo(a, b):
    t = a / 4 + b * 0.5
    return t - a % 7

def sh(a, b):
    return (a >> 2) ^ (b & 255) | (a << 1)

def lin2(a, b):
    return [a, b]

lin0 = lin

def swap():
    global lin
    lin = lin2 if lin is lin0 else lin0

class B:
    def __init__(self, x, v, m):
        self.x = x
        self.v = v
        self.m = m

def fq(i, j):
    return 1.0 / ((i + j) * (i + j + 1) / 2 + i + 1)

def fq2(i, j):
    return i - j

fq0 = fq

def swapq():
    global fq
    fq = fq2 if fq is fq0 else fq0

class M:
    def __rmul__(self, o):
        swapq()
        return 0.5
    def __radd__(self, o):
        return o
";

/// The generator: nesting of loops and blocks, the loop variables in scope.
pub struct Spec<'a> {
    pub g: &'a mut Gen,
    out: String,
    /// Loop variables in scope, innermost last.
    vars: Vec<String>,
    /// Names given to loop variables so far in the function (fresh for each loop).
    counter: usize,
    /// Inside a loop of this function (break and continue allowed).
    in_loop: bool,
    /// Statements emitted in the function (caps its size).
    budget: usize,
    /// The function may capture its locals in closures (which keeps them in cells, never
    /// unboxed: one function in three).
    closures: bool,
}

impl<'a> Spec<'a> {
    pub fn new(g: &'a mut Gen) -> Self {
        Spec {
            g,
            out: String::new(),
            vars: Vec::new(),
            counter: 0,
            in_loop: false,
            budget: 0,
            closures: false,
        }
    }

    fn line(&mut self, ind: usize, s: &str) {
        for l in s.split('\n') {
            for _ in 0..ind {
                self.out.push_str("    ");
            }
            self.out.push_str(l);
            self.out.push('\n');
        }
    }

    /// The innermost loop variable (an int, or any value for a `for` over a mixed list), or a
    /// parameter outside loops.
    fn v(&mut self) -> String {
        match self.vars.last() {
            Some(v) if self.g.below(5) != 0 => v.clone(),
            _ => self.g.pick(&["a", "b", "len(out)"]).to_string(),
        }
    }

    /// A small int loop variable (never the mixed-type `for` variable).
    fn iv(&mut self) -> String {
        let ints: Vec<&String> = self.vars.iter().filter(|v| !v.starts_with('z')).collect();
        match ints.last() {
            Some(v) => v.to_string(),
            None => "len(out)".to_string(),
        }
    }

    /// A value of a random type for `x`, built from `v`.
    fn value(&mut self, v: &str) -> String {
        match self.g.below(14) {
            0 => v.to_string(),
            1 => format!("{v} * 0.5"),
            2 => format!("str({v})"),
            3 => format!("P({v})"),
            4 => format!("Q({v})"),
            5 => "None".to_string(),
            6 => format!("4611686018427387904 + {v}"),
            7 => format!("-4611686018427387905 * {v}"),
            8 => "True".to_string(),
            9 => format!("[{v}]"),
            10 => format!("1e308 * {v}"),
            11 => format!("{v} == 1"),
            12 => "0".to_string(),
            _ => "0.0".to_string(),
        }
    }

    /// An expression that may raise for some types of `x` (or values of `n`, `f`, `o`, `r`).
    fn risky(&mut self) -> String {
        let v = self.v();
        match self.g.below(68) {
            0 => format!("x + {v}"),
            1 => "x * 2".to_string(),
            2 => format!("x < {v}"),
            3 => "x == 1.0".to_string(),
            4 => "x // 2".to_string(),
            5 => "x % 3".to_string(),
            6 => "x / 2".to_string(),
            7 => "1 / x".to_string(),
            8 => "x > f".to_string(),
            9 => "n < x".to_string(),
            10 => "n == f".to_string(),
            11 => "f + n".to_string(),
            12 => "n / 3".to_string(),
            13 => "x and n".to_string(),
            14 => "not x".to_string(),
            15 => "-x".to_string(),
            16 => "abs(x)".to_string(),
            17 => "int(x)".to_string(),
            18 => "float(x)".to_string(),
            19 => "len(x)".to_string(),
            20 => "x.v".to_string(),
            21 => format!("x.m({v})"),
            22 => "o.v".to_string(),
            23 => format!("o.m({v})"),
            24 => "o.k".to_string(),
            25 => "o.w".to_string(),
            26 => "r.pop()".to_string(),
            27 => "r[0]".to_string(),
            28 => "len(r)".to_string(),
            29 => format!("n % ({v} - 2)"),
            30 => format!("f // ({v} - 1)"),
            31 => format!("n // ({v} * 0.5 - 1)"),
            32 => "f < n <= x".to_string(),
            33 => "x + 'a'".to_string(),
            34 => format!("boom({v})"),
            35 => "x[0]".to_string(),
            36 => "n * f".to_string(),
            37 => "f ** 2".to_string(),
            38 => format!("({v} - 3) ** -1"),
            39 => format!("x is None or x != {v}"),
            // Ints at the edges of the tagged range and of 64 bits.
            40 => "n // -1".to_string(),
            41 => "n * -1".to_string(),
            42 => "abs(n)".to_string(),
            43 => "divmod(n, -1)".to_string(),
            44 => "n - 1 < n + 1".to_string(),
            45 => "(n + 1, n - 1, n << 1, n >> 1)".to_string(),
            // Bools in arithmetic.
            46 => "(x ^ True, x & 1, x | False, ~x, x << 2, x * 1.5)".to_string(),
            47 => format!("(x + True, True + n, f * True, {v} > False)"),
            48 => format!("r[{v}]"),
            49 => format!("o.m({v}) if {} % 2 else R({v}).m({v})", self.iv()),
            50 => format!("getattr(o, 'v' if {} % 2 else 'w', None)", self.iv()),
            51 => format!("f / ({v} - 2)"),
            52 => format!("(f < {v}, f == {v}, {v} >= f, f != n)"),
            53 => "round(f)".to_string(),
            // Leaf functions computed inline at their calls (while `lin` may be rebound).
            55 => format!("lin({v}, n)"),
            56 => format!("lin(x, {v})"),
            57 => format!("flo(f, {v})"),
            58 => "flo(n, x)".to_string(),
            59 => format!("sh(n, {v})"),
            // Builtins computed on the words for small ints.
            60 => format!("min(n, f, {v})"),
            61 => format!("max(x, {v})"),
            // Floor division and modulo by powers of two (a shift and a mask on small ints).
            62 => "(n // 8, n % 16, -n // 4, n % -8)".to_string(),
            63 => "(x // 4, x % 8)".to_string(),
            // Int/float comparisons exact beyond 2**53.
            64 => "(n == float(n), n + 1 > float(n), float(n) < n)".to_string(),
            // Methods computed inline at their calls (while `lt` may be rebound).
            65 => format!("o.lt({v})"),
            66 => format!("x.lt({v})"),
            _ => "int(f) + n".to_string(),
        }
    }

    /// Text of a simple statement (possibly several lines at the same level).
    fn simple(&mut self) -> String {
        let v = self.v();
        let mut roll = self.g.below(70);
        if !self.closures && matches!(roll, 26 | 27 | 50) {
            roll = 69;
        }
        match roll {
            // `x` changes type.
            0..=4 => format!("x = {}", self.value(&v)),
            5 => format!("x = x + {v}"),
            6 => "x = x - 1.5".to_string(),
            7 => "x = x * 3 // 2".to_string(),
            8 => "x = -x".to_string(),
            9 => format!("x = x + {}", self.g.pick(&["True", "'a'", "[1]", "0.25"])),
            // `n`: an int that overflows into a big int and comes back.
            10 => format!("n = n * 1000003 + {v}"),
            11 => "n = n % 1000000007".to_string(),
            12 => "n = n - 4611686018427387904".to_string(),
            13 => "n = n + 4611686018427387903".to_string(),
            14 => "n = n << 40".to_string(),
            15 => "n = n >> 30".to_string(),
            16 => "n = -n".to_string(),
            17 => format!("n += {v}"),
            18 => "n = n ^ 4611686018427387903".to_string(),
            19 => "n = n * n % 9223372036854775783".to_string(),
            // `f`: a float local, sometimes of another type.
            20 => format!("f = f * 1.5 + {v}"),
            21 => format!("f = f / ({v} + 1)"),
            22 => "f += 0.25".to_string(),
            23 => "f = -f".to_string(),
            24 => "f = f * f".to_string(),
            25 => format!(
                "f = {}",
                self.g
                    .pick(&["int(f)", "f > 1", "n * 0.5", "sqrt(abs(f))", "f % 2.5", "f // 0.7"])
            ),
            26 => format!("h = lambda t: f + t\nout.append(h({v}))"),
            27 => format!("def g(t):\n    return f * t + n\nout.append(g({v}))"),
            28 => format!(
                "out.append({})",
                self.g
                    .pick(&["ident(f)", "fadd(f, n)", "round(f, 2)", "fadd(x, f)"])
            ),
            // The instance `o`.
            29 => format!("o = P({v}) if {} % 2 else Q({v})", self.iv()),
            30 => "o.v = o.v + 1".to_string(),
            31 => format!("o.w = {v}"),
            32 => format!("setattr(o, 'v', {v} * 0.5)"),
            33 => "out.append(getattr(o, 'w', -1))".to_string(),
            34 => format!("P.k = {}", self.value(&v)),
            35 => format!(
                "P.{} = {}",
                self.g.pick(&["m", "lt"]),
                self.g.pick(&["pm1", "pm2", "lambda s, t: t"])
            ),
            36 => "out.append(hasattr(o, 'w'))".to_string(),
            37 => "o.v += f".to_string(),
            // The receiver `r`.
            38 => format!("r.append({v})\nif len(r) > 4:\n    r.pop(0)"),
            39 => format!(
                "r = {}",
                self.g.pick(&[
                    "[1, 2]",
                    "(3, 4)",
                    "Stack([5, 6])",
                    "'ab'",
                    "{0: 7}",
                    "None",
                    "[]"
                ])
            ),
            40 => format!("r[0] = {v}"),
            41 => "out.append(type(x).__name__)\nout.append(x if type(x) is not float else round(x, 3))".to_string(),
            42 => format!("print('p', {v}, type(x).__name__, n % 1000)"),
            // A type change at one iteration only.
            44 | 45 => {
                let (c, k) = (self.iv(), self.g.below(5));
                let var = self.g.pick(&["x", "f", "n", "o", "r"]);
                let val = self.value(&v);
                format!("if {c} == {k}:\n    {var} = {val}")
            }
            46 => "f, x = x, f".to_string(),
            47 => format!(
                "for f in [0.5, {v}, 2.25]:\n    out.append(f * 2.0)"
            ),
            48 => format!(
                "{} {v}",
                self.g
                    .pick(&["f -=", "f *=", "f /=", "f //=", "f %=", "n //=", "n %=", "n *=", "n -=", "x +=", "x *=", "x /="])
            ),
            49 => format!("try:\n    f = f * 2.0 + 1.0 / ({v} - 2)\nexcept ZeroDivisionError as e:\n    out.append((f, str(e)))"),
            50 => "def bump():\n    nonlocal f\n    f = f + 1.0\nbump()".to_string(),
            51 => format!(
                "n = {}",
                self.g.pick(&[
                    "4611686018427387900",
                    "-4611686018427387904",
                    "4611686018427387903",
                    "-4611686018427387903",
                    "9223372036854775807",
                    "-9223372036854775808",
                    "n + 1",
                    "n - 1",
                    "n * 2",
                    "n << 1",
                    "n + True",
                ])
            ),
            52 => format!(
                "x = {}",
                self.g.pick(&["x * 2.0 + f", "f * f - x", "x + 0.5", "(x + f) / 2.0", "x > 2"])
            ),
            53 => format!("o.k = {v}"),
            54 => format!(
                "o.{} = {}",
                self.g.pick(&["m", "lt"]),
                self.g.pick(&["lambda t: t * 3", "pm1", "5"])
            ),
            55 => format!(
                "P.m = {}",
                self.g.pick(&["5", "ident"])
            ),
            56 => self
                .g
                .pick(&["r.insert(0, 1)", "r.extend([2])", "r += [3]", "r = r + [4]", "r.pop(0)", "r.pop(-1)", "r.clear()"])
                .to_string(),
            57 => format!("o = {}({v})", self.g.pick(&["P", "Q", "R", "S"])),
            58 => "try:\n    out.append(x + 1)\nexcept TypeError:\n    raise".to_string(),
            60 => "for o in [P(1), Q(2.5), S(3), R(4), P(5)]:\n    o.v = o.v + 1\n    out.append(o.v)".to_string(),
            61 => format!("o.v = f * 2.0 + {v}\nout.append(o.v)"),
            62 => "o.v += 0.5".to_string(),
            59 => format!("if {v} == 3:\n    raise TypeError('t' + str(n % 100))"),
            // The global of an inlined leaf function rebound (and back).
            43 => "swap()".to_string(),
            // Attributes added under names computed at run time.
            63 => format!("setattr(o, 'e' + str({} % 4), {v})", self.iv()),
            64 => "out.append((getattr(o, 'e1', None), getattr(o, 'e3', 0)))".to_string(),
            65 => format!(
                "n = {} + {v}",
                self.g.pick(&["9007199254740993", "-9007199254740993", "2 ** 53"])
            ),
            _ => format!("out.append({})", self.risky()),
        }
    }

    /// Statements that may raise: wrapped in a try most of the time (else an outer level
    /// catches it).
    fn guarded(&mut self, ind: usize) {
        let s = self.simple();
        if self.g.below(3) == 0 {
            self.line(ind, &s);
            return;
        }
        self.line(ind, "try:");
        self.line(ind + 1, &s);
        match self.g.below(4) {
            0 => self.line(ind, "except ZeroDivisionError as e:\n    out.append('Z ' + str(e))\nexcept (TypeError, AttributeError) as e:\n    out.append(err(e))"),
            1 => self.line(ind, "except Exception as e:\n    out.append(err(e))\nfinally:\n    out.append('fin')"),
            2 => self.line(ind, "except TypeError:\n    out.append('T')\nexcept Exception as e:\n    out.append(err(e))\nelse:\n    out.append('ok')"),
            _ => self.line(ind, "except Exception as e:\n    out.append(err(e))"),
        }
    }

    fn cond(&mut self) -> String {
        let v = self.iv();
        let k = self.g.below(6);
        match self.g.below(5) {
            0 => format!("{v} == {k}"),
            1 => format!("{v} % 3 == {}", k % 3),
            2 => format!("{v} > {k}"),
            3 => "type(x) is int".to_string(),
            _ => format!(
                "n > {}",
                self.g.pick(&["1000", "4611686018427387903", "-5"])
            ),
        }
    }

    /// A block of statements at indentation `ind` inside loops of depth `depth`.
    fn block(&mut self, ind: usize, depth: u32) {
        let count = 1 + self.g.below(4);
        for _ in 0..count {
            self.statement(ind, depth);
        }
    }

    fn statement(&mut self, ind: usize, depth: u32) {
        self.budget += 1;
        let roll = if self.budget > 30 {
            0
        } else {
            self.g.below(12)
        };
        match roll {
            8 if depth < 3 => self.looped(ind, depth + 1),
            7 if depth < 3 => self.kernel(ind),
            6 if depth < 3 && self.g.below(2) == 0 => {
                if self.g.below(2) == 0 {
                    self.int_loop(ind)
                } else {
                    self.float_loop(ind)
                }
            }
            9 if self.in_loop => {
                let c = self.cond();
                let word = self.g.pick(&["break", "continue"]);
                self.line(ind, &format!("if {c}:\n    {word}"));
            }
            10 => {
                let c = self.cond();
                self.line(ind, &format!("if {c}:"));
                self.block(ind + 1, depth);
                if self.g.below(2) == 0 {
                    self.line(ind, "else:");
                    self.block(ind + 1, depth);
                }
            }
            11 => {
                // A block as one transaction; break/continue/raise may leave it.
                self.line(ind, "with atomic:");
                self.block(ind + 1, depth);
            }
            _ => self.guarded(ind),
        }
    }

    /// A loop whose locals keep their types (what specialization compiles for: float and int
    /// arithmetic, attribute reads and writes, list methods) until one iteration changes one of
    /// them (a type, a class, an attribute, a method, a receiver).
    fn kernel(&mut self, ind: usize) {
        self.counter += 1;
        let i = format!("i{}", self.counter);
        let hi = 3 + self.g.below(6);
        let was_in_loop = self.in_loop;
        self.in_loop = true;
        if self.g.below(2) == 0 {
            self.line(ind, &format!("for {i} in range({hi}):"));
        } else {
            self.line(
                ind,
                &format!("{i} = -1\nwhile {i} < {}:\n    {i} += 1", hi - 1),
            );
        }
        self.vars.push(i.clone());
        let count = 2 + self.g.below(4);
        let change_at = self.g.below(count);
        for k in 0..count {
            if k == change_at {
                let at = self.g.below(hi);
                let change = match self.g.below(15) {
                    0 => format!("f = {}", self.value(&i)),
                    1 => format!(
                        "n = {}",
                        self.g.pick(&[
                            "4611686018427387903",
                            "n * 4611686018427387",
                            "n * 1.5",
                            "str(n)",
                            "None",
                            "True"
                        ])
                    ),
                    2 => format!("o = {}({i})", self.g.pick(&["P", "Q", "R", "S", "Stack"])),
                    3 => format!("o.v = {}", self.value(&i)),
                    4 => format!(
                        "{}.m = {}",
                        self.g.pick(&["P", "o"]),
                        self.g.pick(&["pm2", "pm1", "lambda *a: a[-1]", "None"])
                    ),
                    5 => format!(
                        "r = {}",
                        self.g
                            .pick(&["(1, 2)", "Stack([3])", "'xy'", "{0: 1}", "None", "[0.5]"])
                    ),
                    6 => format!("P.v = {i}"),
                    7 => format!("x = {}", self.value(&i)),
                    8 => format!("setattr(o, 'v', {})", self.value(&i)),
                    9 => "o, x = x, o".to_string(),
                    10 => "f, n = n, f".to_string(),
                    12 => "swap()".to_string(),
                    13 => format!("setattr(o, 'e' + str({i} % 2), {})", self.value(&i)),
                    _ => format!("P.k = {}", self.value(&i)),
                };
                self.line(ind + 1, &format!("if {i} == {at}:"));
                self.line(ind + 2, &change);
            }
            let st = match self.g.below(21) {
                0 => format!("f = f * 0.5 + {i}"),
                1 => "f += n * 0.25".to_string(),
                2 => format!("n = n + {i} * 3"),
                3 => "n += n & 7".to_string(),
                4 => "o.v = o.v + f".to_string(),
                5 => format!("o.v = o.v * 2 + {i}"),
                6 => "out.append(o.m(1))".to_string(),
                7 => "out.append(o.k)".to_string(),
                8 => format!("r.append({i})\nout.append(r.pop(0))"),
                9 => "out.append((len(r), r[-1]))".to_string(),
                10 => "x = x + f".to_string(),
                11 => "out.append(f < n)".to_string(),
                12 => "out.append(o.v)".to_string(),
                13 => format!("f = sqrt(f * f + {i})"),
                14 => "out.append(o.v > f)".to_string(),
                16 => format!("out.append(lin({i}, n))"),
                17 => format!("f = flo(f, {i})"),
                18 => format!("n = sh(n, {i}) % 1000003"),
                19 => format!("out.append((f // 4, n % 8, min(f, n), max({i}, f)))"),
                _ => "f = f - n / 3".to_string(),
            };
            let ind2 = if self.g.below(3) == 0 {
                self.line(ind + 1, "try:");
                ind + 2
            } else {
                ind + 1
            };
            self.line(ind2, &st);
            if ind2 == ind + 2 {
                self.line(ind + 1, "except Exception as e:\n    out.append(err(e))");
            }
        }
        self.vars.pop();
        self.in_loop = was_in_loop;
    }

    /// A loop of int arithmetic at the edges the JIT specializes for (issue 16): trial
    /// division (`while i * i <= m: ... m % i ...`, the square passing 2**62 or the fast
    /// range of squares in the middle of the loop), an invariant dividend `m` around 2**31,
    /// 2**32, 2**62 or negative (its range tested once before the loop), divisors around
    /// 2**31 and 2**32 and zero, and `for` over `range` with variable, big-int or edge
    /// bounds and constant or variable steps; sometimes `m` changes value or type in the
    /// middle. At most 24 turns; what it raises is caught and printed.
    fn int_loop(&mut self, ind: usize) {
        self.counter += 1;
        let c = self.counter;
        let (i, m, k, j) = (
            format!("i{c}"),
            format!("m{c}"),
            format!("k{c}"),
            format!("j{c}"),
        );
        let base = self.g.pick(&[
            "2 ** 31 - 1",
            "2 ** 31",
            "2 ** 31 + 1",
            "2 ** 32 - 1",
            "2 ** 32",
            "2 ** 32 + 1",
            "2 ** 33 - 1",
            "2 ** 32 + 2 ** 31",
            "2 ** 33 + 1",
            "2 ** 62 - 1",
            "2 ** 62",
            "2 ** 62 + 3",
            "-(2 ** 62)",
            "-(2 ** 31)",
            "-7",
            "0",
            "1000003",
            "4294967291",
            "46341 * 46341",
            "2 ** 64 + 1",
            "7",
        ]);
        let plus = self
            .g
            .pick(&["", "", "", " + a", " - len(out)", " + n % 5"]);
        self.line(ind, "try:");
        let ind1 = ind + 1;
        self.line(ind1, &format!("{m} = {base}{plus}\n{k} = 0\n{j} = 1"));
        let was_in_loop = self.in_loop;
        self.in_loop = true;
        let mut step = None;
        match self.g.below(3) {
            0 => {
                let start = self.g.pick(&[
                    "1",
                    "2",
                    "3",
                    "-3",
                    "46339",
                    "2 ** 30 - 2",
                    "-(2 ** 30) - 1",
                    "2 ** 31 - 3",
                    "-(2 ** 31) - 1",
                    "3037000497",
                    "2 ** 32 - 2",
                ]);
                step = Some(self.g.pick(&["1", "2", "-1", "7", "65536"]));
                let cmp = self.g.pick(&["<=", "<", ">"]);
                self.line(ind1, &format!("{i} = {start}\nwhile {i} * {i} {cmp} {m}:"));
            }
            1 => {
                let start = self
                    .g
                    .pick(&["1", "-12", "2 ** 31 - 4", "2 ** 32 - 3", "-(2 ** 31)"]);
                step = Some(self.g.pick(&["1", "3", "-1"]));
                self.line(
                    ind1,
                    // `m` a leaf of the condition: tested once before the loop.
                    &format!("{i} = {start}\n{j} = {i}\nwhile {i} - {j} < {m} - {m} + 24:"),
                );
            }
            _ => {
                let bounds = [
                    ("1", "30"),
                    ("-15", "15"),
                    ("2 ** 31 - 10", "2 ** 31 + 10"),
                    ("2 ** 32 - 10", "2 ** 32 + 10"),
                    ("4611686018427387895", "4611686018427387903"),
                    ("4611686018427387900", "4611686018427387910"),
                    ("-4611686018427387904", "-4611686018427387896"),
                    ("a", "a + 12"),
                    ("n", "n + 8"),
                    ("MM - 10", "MM"),
                    ("b", "12"),
                ];
                let (lo, hi) = bounds[self.g.below(bounds.len() as u64) as usize];
                let (lo, hi) = (lo.replace("MM", &m), hi.replace("MM", &m));
                let st = self
                    .g
                    .pick(&["", "", ", 2", ", 3", ", -1", ", -3", ", JJ", ", JJ"]);
                let (lo, hi) = if st.contains('-') { (hi, lo) } else { (lo, hi) };
                if st.contains("JJ") {
                    let s = self.g.pick(&["1", "-2", "2", "2 ** 40", "0", "1.0"]);
                    self.line(ind1, &format!("{j} = {s}"));
                }
                let st = st.replace("JJ", &j);
                self.line(ind1, &format!("for {i} in range({lo}, {hi}{st}):"));
            }
        }
        let ind2 = ind1 + 1;
        self.line(ind2, &format!("{k} += 1\nif {k} > 24:\n    break"));
        let count = 1 + self.g.below(3);
        for _ in 0..count {
            let st = match self.g.below(9) {
                0 => format!("if {m} % {i} == 0:\n    out.append(({i}, {m} // {i}))"),
                1 => format!("out.append({m} % {i} + {m} // {i})"),
                2 => format!("out.append({i} * {i} - {m})"),
                3 => format!("if {m} % {i} != 1:\n    out.append(-{i})"),
                4 => format!("out.append(({m} // {i}, {i} * {i} % 1000003))"),
                5 => format!("{j} = {j} * {i} + 1"),
                6 => {
                    let at = self.g.below(4);
                    let v = self.g.pick(&[
                        "MM * 2 ** 33",
                        "MM + 2 ** 32",
                        "-MM",
                        "MM // 3",
                        "MM * 0.5",
                        "str(MM)",
                        "4611686018427387903",
                    ]);
                    format!("if {k} == {at}:\n    {m} = {}", v.replace("MM", &m))
                }
                7 => format!("out.append({m} % ({i} - 1))"),
                _ => format!("out.append({m} // {i} * {i} + {m} % {i} == {m})"),
            };
            self.line(ind2, &st);
        }
        if let Some(st) = step {
            self.line(ind2, &format!("{i} += {st}"));
        }
        self.in_loop = was_in_loop;
        self.line(ind1, &format!("out.append(({k}, {j}))"));
        self.line(ind, "except Exception as e:\n    out.append(err(e))");
    }

    /// A float loop of the shapes the JIT specializes (issue 16): a `while` loop whose
    /// unassigned float locals are tested once before it (mandelbrot's `cr`, `ci`), a sum of
    /// inline quotients (`s += fq(i, j) * u[j]`, spectral norm) whose function is rebound in
    /// the middle, and float attribute updates of instances (`b.v -= d * c.m * g`, n-body).
    /// The invariants and the items start as floats, ints, bools, big ints past 2**53 and
    /// 1e308, NaN, inf, -0.0, None or strings, and sometimes change type or class in the
    /// middle. At most 24 turns; what it raises is caught and printed.
    fn float_loop(&mut self, ind: usize) {
        self.counter += 1;
        let c = self.counter;
        let (k, s, u) = (format!("k{c}"), format!("s{c}"), format!("u{c}"));
        let fv = |g: &mut Gen| {
            // Mostly small floats (the fast versions run to the end), else an edge.
            if g.below(3) != 0 {
                return g
                    .pick(&[
                        "0.25", "-1.5", "0.125", "-0.75", "0.5", "b * 0.25", "a * 0.5",
                    ])
                    .to_string();
            }
            g.pick(&[
                "0.25",
                "-1.5",
                "0.0",
                "-0.0",
                "1e308",
                "float('inf')",
                "float('nan')",
                "3",
                "-2",
                "True",
                "9007199254740993",
                "4611686018427387904",
                "2 ** 1100",
                "None",
                "'x'",
                "a",
                "b * 0.5",
            ])
            .to_string()
        };
        self.line(ind, "try:");
        let ind1 = ind + 1;
        let was_in_loop = self.in_loop;
        self.in_loop = true;
        self.line(ind1, &format!("{k} = 0"));
        match self.g.below(3) {
            0 => {
                let (cr, ci, zr, zi) = (
                    format!("cr{c}"),
                    format!("ci{c}"),
                    format!("zr{c}"),
                    format!("zi{c}"),
                );
                let (v1, v2) = (fv(self.g), fv(self.g));
                let z0 = self.g.pick(&["0.0", "0", "-0.0", "0.5"]);
                let limit = self.g.pick(&["4.0", "4", "1e300", "float('inf')"]);
                self.line(
                    ind1,
                    &format!(
                        "{cr} = {v1}\n{ci} = {v2}\n{zr} = {z0}\n{zi} = {z0}\n\
                         while {k} < 24 and {zr} * {zr} + {zi} * {zi} < {limit}:"
                    ),
                );
                let ind2 = ind1 + 1;
                self.line(
                    ind2,
                    &format!(
                        "{k} += 1\n{zr}, {zi} = {zr} * {zr} - {zi} * {zi} + {cr}, 2.0 * {zr} * {zi} + {ci}"
                    ),
                );
                if self.g.below(3) == 0 {
                    let at = self.g.below(6);
                    let v = self.g.pick(&["1", "'z'", "2 ** 70", "None", "-0.0"]);
                    self.line(ind2, &format!("if {k} == {at}:\n    {zr} = {v}"));
                }
                if self.g.below(3) == 0 {
                    self.line(ind2, &format!("out.append(({cr} * 2, {ci} / 4))"));
                }
                self.line(ind1, &format!("out.append(({k}, {zr}, {zi}, {cr}))"));
            }
            1 => {
                // `M()`: its `__rmul__` rebinds `fq` (read again after the helper calls it).
                let items: Vec<String> = (0..2 + self.g.below(4))
                    .map(|_| match self.g.below(6) {
                        0 => "M()".to_string(),
                        _ => fv(self.g),
                    })
                    .collect();
                let init = self.g.pick(&["0.0", "0", "-0.0", "1e308"]);
                let (i, j) = (format!("i{c}"), format!("j{c}"));
                self.line(
                    ind1,
                    &format!(
                        "{u} = [{}]\n{s} = {init}\nfor {i} in range(len({u})):\n    for {j} in range(len({u})):",
                        items.join(", ")
                    ),
                );
                let ind3 = ind1 + 2;
                let lo = self.g.pick(&["", "", "-", "0.5 + "]);
                self.line(
                    ind3,
                    &format!("{k} += 1\n{s} += {lo}fq({i}, {j}) * {u}[{j}]"),
                );
                if self.g.below(3) == 0 {
                    let at = self.g.below(8);
                    let change = self.g.pick(&[
                        "swapq()",
                        "UU[0] = 'q'",
                        "UU.append(2.5)",
                        "UU[-1] = 2 ** 1100",
                    ]);
                    self.line(
                        ind3,
                        &format!("if {k} == {at}:\n    {}", change.replace("UU", &u)),
                    );
                }
                self.line(ind1, &format!("out.append(({k}, {s}))"));
                self.line(ind1, "if fq is not fq0:\n    swapq()");
            }
            _ => {
                let (bs, b1, b2, d) = (
                    format!("bs{c}"),
                    format!("p{c}"),
                    format!("q{c}"),
                    format!("d{c}"),
                );
                let n = 2 + self.g.below(3);
                let bodies: Vec<String> = (0..n)
                    .map(|t| format!("B({}, {}, {})", fv(self.g), t as f64 * 0.5, fv(self.g)))
                    .collect();
                let g = self.g.pick(&["0.01", "0.5", "2", "1e-300"]);
                self.line(
                    ind1,
                    &format!(
                        "{bs} = [{}]\nfor {b1} in {bs}:\n    for {b2} in {bs}:",
                        bodies.join(", ")
                    ),
                );
                let ind3 = ind1 + 2;
                self.line(
                    ind3,
                    &format!(
                        "{k} += 1\n{d} = {b1}.x - {b2}.x\n{b1}.v -= {d} * {b2}.m * {g}\n{b2}.v += {d} * {b1}.m * {g}"
                    ),
                );
                if self.g.below(3) == 0 {
                    let at = self.g.below(8);
                    let change = self.g.pick(&[
                        "QQ.m = 'm'",
                        "QQ.v = 1",
                        "QQ.x = 2 ** 70",
                        "BS[0] = Q(1.5)",
                        "QQ.w = 0.5",
                        "BS[-1] = B(0.5, 0.5, 0.5)",
                    ]);
                    self.line(
                        ind3,
                        &format!(
                            "if {k} == {at}:\n    {}",
                            change.replace("QQ", &b2).replace("BS", &bs)
                        ),
                    );
                }
                self.line(
                    ind1,
                    &format!("out.append([(e.x, e.v) for e in {bs} if type(e) is B])"),
                );
            }
        }
        self.in_loop = was_in_loop;
        self.line(ind, "except Exception as e:\n    out.append(err(e))");
    }

    /// A `for` or `while` loop whose body changes types.
    fn looped(&mut self, ind: usize, depth: u32) {
        self.counter += 1;
        let was_in_loop = self.in_loop;
        self.in_loop = true;
        match self.g.below(6) {
            0 => {
                // The loop variable itself changes type at each iteration.
                let z = format!("z{}", self.counter);
                self.line(
                    ind,
                    &format!(
                        "for {z} in [1, 2.5, 'a', None, 4611686018427387904, True, -3, P(2)]:"
                    ),
                );
                self.vars.push(z);
            }
            1 | 2 => {
                let w = format!("w{}", self.counter);
                let k = 2 + self.g.below(6);
                self.line(ind, &format!("{w} = 0\nwhile {w} < {k}:"));
                self.line(ind + 1, &format!("{w} += 1"));
                self.vars.push(w);
            }
            5 => {
                // A loop over the receiver `r`, which its body may grow, shrink or replace
                // (at most 6 turns).
                let (z, c) = (format!("z{}", self.counter), format!("c{}", self.counter));
                self.line(ind, &format!("{c} = 0\nfor {z} in r:"));
                self.line(ind + 1, &format!("{c} += 1\nif {c} > 6:\n    break"));
                self.vars.push(z);
            }
            _ => {
                let i = format!("i{}", self.counter);
                let lo = self.g.below(3) as i64 - 1;
                let hi = lo + 2 + self.g.below(6) as i64;
                self.line(ind, &format!("for {i} in range({lo}, {hi}):"));
                self.vars.push(i);
            }
        }
        self.block(ind + 1, depth);
        self.vars.pop();
        self.in_loop = was_in_loop;
    }

    /// A function `name` and the statements that call it (with different argument types,
    /// sometimes inside `with atomic:`), printing its result or the exception that left it.
    pub fn function(&mut self, name: &str) -> String {
        self.function_with(name, |spec| {
            let loops = 1 + spec.g.below(2);
            for _ in 0..loops {
                if spec.g.below(3) == 0 {
                    // Exceptions from the loop caught around it.
                    spec.line(1, "try:");
                    spec.looped(2, 1);
                    spec.line(
                        1,
                        "except Exception as e:\n    out.append('outer ' + err(e))",
                    );
                } else {
                    spec.looped(1, 1);
                }
            }
        })
    }

    /// A function `name` made of two to four float loops ([`Spec::float_loop`]) and the
    /// statements that call it, as [`Spec::function`].
    pub fn float_function(&mut self, name: &str) -> String {
        self.function_with(name, |spec| {
            for _ in 0..2 + spec.g.below(3) {
                spec.float_loop(1);
            }
        })
    }

    /// A function `name` whose locals are set up, whose body `body` writes, and the
    /// statements that call it.
    fn function_with(&mut self, name: &str, body: impl FnOnce(&mut Self)) -> String {
        self.out.clear();
        self.vars.clear();
        self.counter = 0;
        self.budget = 0;
        self.closures = self.g.below(3) == 0;
        self.line(0, &format!("def {name}(a, b):"));
        let x0 = self.value("a");
        self.line(
            1,
            &format!("out = []\nx = {x0}\nn = a\nf = b * 0.5\no = P(a)\nr = [a, b]"),
        );
        body(self);
        self.line(
            1,
            "out.append(x if type(x) is not float else round(x, 3))\nout.append(n)\nout.append(f)\nreturn out",
        );
        let calls = 2 + self.g.below(2);
        for _ in 0..calls {
            let a = self.g.pick(&[
                "3",
                "-2",
                "0",
                "7",
                "2.5",
                "4611686018427387903",
                "-4611686018427387904",
                "True",
                "9223372036854775807",
                "9007199254740993",
            ]);
            let b = self.g.pick(&[
                "1",
                "0",
                "-1.5",
                "5",
                "False",
                "1e300",
                "4611686018427387904",
            ]);
            let call = format!("try:\n    print('{name}', {name}({a}, {b}))\nexcept Exception as e:\n    print('{name}!', err(e))");
            if self.g.below(4) == 0 {
                self.line(0, "with atomic:");
                self.line(1, &call);
            } else {
                self.line(0, &call);
            }
        }
        std::mem::take(&mut self.out)
    }

    /// A whole program: the prelude and `functions` generated functions with their calls.
    pub fn program(&mut self, functions: usize) -> String {
        let mut p = String::from(PRELUDE);
        for k in 0..functions {
            p.push_str(&self.function(&format!("t{k}")));
        }
        p
    }

    /// A program of float loops only: the prelude and `functions` [`Spec::float_function`]s.
    pub fn float_program(&mut self, functions: usize) -> String {
        let mut p = String::from(PRELUDE);
        for k in 0..functions {
            p.push_str(&self.float_function(&format!("t{k}")));
        }
        p
    }
}
