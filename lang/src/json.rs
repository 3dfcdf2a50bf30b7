//! JSON text to and from a neutral tree, as Python's `json.dumps` / `json.loads` with their
//! defaults write and read it: `", "` and `": "` separators, non-ASCII escaped as `\uXXXX`,
//! `NaN` and `Infinity` allowed. Both the reference interpreter and the JIT's object model
//! convert their values to and from [`Json`], so `json_encode` / `json_decode` agree
//! everywhere (and with CPython).

use crate::floatfmt::float_repr;

/// A JSON value. Objects keep their key order (a repeated key keeps its first place and
/// its last value, as a Python dict built from it would).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Int(i64),
    /// An int beyond the tagged range: its decimal text (sign included), within CPython's
    /// 4300-digit conversion limit.
    BigInt(String),
    Float(f64),
    Str(String),
    List(Vec<Json>),
    Dict(Vec<(String, Json)>),
}

/// Deepest nesting read or written: a cycle in the value being encoded ends here too.
pub const MAX_DEPTH: usize = 500;

/// The tagged ints' range (beyond it, [`Json::BigInt`]).
const INT_MAX: i64 = (1 << 62) - 1;
const INT_MIN: i64 = -(1 << 62);

/// The JSON text of `j` (Python's `json.dumps(x)`).
pub fn encode(j: &Json) -> String {
    let mut out = String::new();
    write(j, &mut out);
    out
}

fn write(j: &Json, out: &mut String) {
    match j {
        Json::Null => out.push_str("null"),
        Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Json::Int(i) => out.push_str(&i.to_string()),
        Json::BigInt(t) => out.push_str(t),
        Json::Float(x) => out.push_str(&float_text(*x)),
        Json::Str(s) => write_str(s, out),
        Json::List(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write(v, out);
            }
            out.push(']');
        }
        Json::Dict(items) => {
            out.push('{');
            for (i, (k, v)) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_str(k, out);
                out.push_str(": ");
                write(v, out);
            }
            out.push('}');
        }
    }
}

/// A float as JSON writes it (Python's repr; `NaN`, `Infinity`, `-Infinity`).
pub fn float_text(x: f64) -> String {
    if x.is_nan() {
        "NaN".into()
    } else if x.is_infinite() {
        if x > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        float_repr(x)
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for u in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// Reads JSON text (Python's `json.loads(s)`); `Err` says what is wrong and where, in
/// Python's words (`Expecting value: line 1 column 1 (char 0)`).
pub fn decode(s: &str) -> Result<Json, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut p = Parser { s: &chars, i: 0 };
    p.ws();
    let v = p.value(0)?;
    p.ws();
    if p.i < chars.len() {
        return Err(p.error("Extra data", p.i));
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [char],
    i: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str, at: usize) -> String {
        let line = self.s[..at].iter().filter(|&&c| c == '\n').count() + 1;
        let col = match self.s[..at].iter().rposition(|&c| c == '\n') {
            Some(nl) => at - nl,
            None => at + 1,
        };
        format!("{what}: line {line} column {col} (char {at})")
    }

    fn peek(&self) -> Option<char> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(' ' | '\t' | '\n' | '\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, word: &str) -> bool {
        let n = word.chars().count();
        if self.s.len() >= self.i + n && self.s[self.i..self.i + n].iter().copied().eq(word.chars())
        {
            self.i += n;
            return true;
        }
        false
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > MAX_DEPTH {
            return Err(self.error("Nesting too deep", self.i));
        }
        match self.peek() {
            Some('"') => self.string().map(Json::Str),
            Some('{') => self.object(depth),
            Some('[') => self.array(depth),
            _ if self.eat("-Infinity") => Ok(Json::Float(f64::NEG_INFINITY)),
            Some('-' | '0'..='9') => self.number(),
            _ if self.eat("null") => Ok(Json::Null),
            _ if self.eat("true") => Ok(Json::Bool(true)),
            _ if self.eat("false") => Ok(Json::Bool(false)),
            _ if self.eat("NaN") => Ok(Json::Float(f64::NAN)),
            _ if self.eat("Infinity") => Ok(Json::Float(f64::INFINITY)),
            _ => Err(self.error("Expecting value", self.i)),
        }
    }

    fn object(&mut self, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut items: Vec<(String, Json)> = Vec::new();
        self.ws();
        if self.peek() == Some('}') {
            self.i += 1;
            return Ok(Json::Dict(items));
        }
        loop {
            self.ws();
            if self.peek() != Some('"') {
                return Err(self.error("Expecting property name enclosed in double quotes", self.i));
            }
            let k = self.string()?;
            self.ws();
            if self.peek() != Some(':') {
                return Err(self.error("Expecting ':' delimiter", self.i));
            }
            self.i += 1;
            self.ws();
            let v = self.value(depth + 1)?;
            match items.iter_mut().find(|(old, _)| *old == k) {
                Some(slot) => slot.1 = v,
                None => items.push((k, v)),
            }
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some('}') => {
                    self.i += 1;
                    return Ok(Json::Dict(items));
                }
                _ => return Err(self.error("Expecting ',' delimiter", self.i)),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<Json, String> {
        self.i += 1;
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(']') {
            self.i += 1;
            return Ok(Json::List(items));
        }
        loop {
            self.ws();
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.peek() {
                Some(',') => self.i += 1,
                Some(']') => {
                    self.i += 1;
                    return Ok(Json::List(items));
                }
                _ => return Err(self.error("Expecting ',' delimiter", self.i)),
            }
        }
    }

    fn number(&mut self) -> Result<Json, String> {
        let start = self.i;
        let digits = |p: &mut Parser| {
            let from = p.i;
            while matches!(p.peek(), Some('0'..='9')) {
                p.i += 1;
            }
            p.i - from
        };
        if self.peek() == Some('-') {
            self.i += 1;
        }
        if self.peek() == Some('0') {
            self.i += 1;
        } else if digits(self) == 0 {
            return Err(self.error("Expecting value", start));
        }
        let mut float = false;
        if self.peek() == Some('.') && matches!(self.s.get(self.i + 1), Some('0'..='9')) {
            self.i += 1;
            digits(self);
            float = true;
        }
        if matches!(self.peek(), Some('e' | 'E')) {
            let save = self.i;
            self.i += 1;
            if matches!(self.peek(), Some('+' | '-')) {
                self.i += 1;
            }
            if digits(self) == 0 {
                self.i = save;
            } else {
                float = true;
            }
        }
        let text: String = self.s[start..self.i].iter().collect();
        if float {
            return Ok(Json::Float(text.parse().unwrap_or(f64::NAN)));
        }
        match text.parse::<i64>() {
            Ok(n) if (INT_MIN..=INT_MAX).contains(&n) => Ok(Json::Int(n)),
            // Ints of any size, as Python's (the digit limit of its int(str) included).
            _ => {
                let digits = text.trim_start_matches('-');
                if digits.len() > crate::bigint::MAX_STR_DIGITS {
                    return Err(format!(
                        "Exceeds the limit ({} digits) for integer string conversion: value has \
                         {} digits; use sys.set_int_max_str_digits() to increase the limit",
                        crate::bigint::MAX_STR_DIGITS,
                        digits.len()
                    ));
                }
                Ok(Json::BigInt(text))
            }
        }
    }

    /// A string starting at the `"` under the cursor.
    fn string(&mut self) -> Result<String, String> {
        let start = self.i;
        self.i += 1;
        let mut out = String::new();
        loop {
            let Some(c) = self.peek() else {
                return Err(self.error("Unterminated string starting at", start));
            };
            self.i += 1;
            match c {
                '"' => return Ok(out),
                '\\' => {
                    let at = self.i - 1;
                    let e = self
                        .peek()
                        .ok_or_else(|| self.error("Unterminated string starting at", start))?;
                    self.i += 1;
                    match e {
                        '"' => out.push('"'),
                        '\\' => out.push('\\'),
                        '/' => out.push('/'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'n' => out.push('\n'),
                        'r' => out.push('\r'),
                        't' => out.push('\t'),
                        'u' => {
                            let hi = self.hex4(at)?;
                            let c = if (0xd800..0xdc00).contains(&hi) && self.eat("\\u") {
                                let lo = self.hex4(self.i - 2)?;
                                if !(0xdc00..0xe000).contains(&lo) {
                                    return Err(self.error("Invalid \\uXXXX surrogate pair", at));
                                }
                                char::from_u32(0x10000 + ((hi - 0xd800) << 10) + (lo - 0xdc00))
                            } else {
                                char::from_u32(hi)
                            };
                            // A lone surrogate: the language's strs cannot hold it.
                            out.push(c.ok_or_else(|| {
                                self.error("Lone surrogate in \\uXXXX escape", at)
                            })?);
                        }
                        _ => return Err(self.error("Invalid \\escape", at)),
                    }
                }
                c if (c as u32) < 0x20 => {
                    return Err(self.error("Invalid control character at", self.i - 1));
                }
                c => out.push(c),
            }
        }
    }

    /// The four hex digits after a `\u` (at `at`).
    fn hex4(&mut self, at: usize) -> Result<u32, String> {
        let digits: String = self
            .s
            .get(self.i..self.i + 4)
            .unwrap_or(&[])
            .iter()
            .collect();
        if digits.len() != 4 || !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(self.error("Invalid \\uXXXX escape", at));
        }
        self.i += 4;
        Ok(u32::from_str_radix(&digits, 16).expect("checked hex digits"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_as_python_does() {
        let j = Json::Dict(vec![
            (
                "a".into(),
                Json::List(vec![Json::Int(1), Json::Float(2.5), Json::Null]),
            ),
            ("é\n\"".into(), Json::Bool(true)),
            ("x".into(), Json::Str("\u{1F600}\u{7}".into())),
            (
                "f".into(),
                Json::List(vec![
                    Json::Float(1.0),
                    Json::Float(f64::NAN),
                    Json::Float(-f64::INFINITY),
                ]),
            ),
        ]);
        assert_eq!(
            encode(&j),
            r#"{"a": [1, 2.5, null], "\u00e9\n\"": true, "x": "\ud83d\ude00\u0007", "f": [1.0, NaN, -Infinity]}"#
        );
    }

    #[test]
    fn decodes_and_round_trips() {
        let text = r#" {"a": [1, -2.5e3, null, true, false], "s": "h\u00e9\ud83d\ude00\n/\/", "a": 7, "e": {}, "l": []} "#;
        let j = decode(text).unwrap();
        assert_eq!(
            j,
            Json::Dict(vec![
                ("a".into(), Json::Int(7)),
                ("s".into(), Json::Str("hé\u{1F600}\n//".into())),
                ("e".into(), Json::Dict(vec![])),
                ("l".into(), Json::List(vec![])),
            ])
        );
        assert_eq!(decode(&encode(&j)).unwrap(), j);
        assert_eq!(decode("-Infinity").unwrap(), Json::Float(f64::NEG_INFINITY));
        assert_eq!(decode("-0").unwrap(), Json::Int(0));
        assert_eq!(decode("1E2").unwrap(), Json::Float(100.0));
    }

    #[test]
    fn errors_say_what_and_where() {
        for (text, err) in [
            ("", "Expecting value: line 1 column 1 (char 0)"),
            ("[1, 2", "Expecting ',' delimiter: line 1 column 6 (char 5)"),
            (
                "{\"a\" 1}",
                "Expecting ':' delimiter: line 1 column 6 (char 5)",
            ),
            (
                "{'a': 1}",
                "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
            ),
            ("[1]\n x", "Extra data: line 2 column 2 (char 5)"),
            (
                "\"abc",
                "Unterminated string starting at: line 1 column 1 (char 0)",
            ),
            ("\"a\\qb\"", "Invalid \\escape: line 1 column 3 (char 2)"),
            (
                "\"\\ud800\"",
                "Lone surrogate in \\uXXXX escape: line 1 column 2 (char 1)",
            ),
            ("[01]", "Expecting ',' delimiter: line 1 column 3 (char 2)"),
            ("-", "Expecting value: line 1 column 1 (char 0)"),
            (
                "\"a\tb\"",
                "Invalid control character at: line 1 column 3 (char 2)",
            ),
        ] {
            assert_eq!(decode(text), Err(err.to_string()), "{text:?}");
        }
        let deep = "[".repeat(MAX_DEPTH + 2);
        assert!(decode(&deep).unwrap_err().starts_with("Nesting too deep"));
    }
}
