//! Python's format-spec mini-language (`format(v, spec)`, f-string fields, `str.format`):
//! `[[fill]align][sign][#][0][width][,|_][.precision][type]` for ints, floats and strs, with
//! CPython's defaults (numbers right-aligned, text left-aligned, a float without type as
//! `repr` or, with a precision, as `g` keeping a `.0`).

use crate::diag::ErrorKind::{TypeError, ValueError};
use crate::floatfmt::float_repr;
use crate::value::{OpError, Value};

/// A parsed format spec.
#[derive(Default)]
struct Spec {
    fill: Option<char>,
    align: Option<char>,
    sign: Option<char>,
    alternate: bool,
    zero: bool,
    width: usize,
    grouping: Option<char>,
    precision: Option<usize>,
    ty: Option<char>,
}

fn bad(msg: impl Into<String>) -> OpError {
    (ValueError, msg.into())
}

fn parse(spec: &str) -> Result<Spec, OpError> {
    let c: Vec<char> = spec.chars().collect();
    let mut s = Spec::default();
    let mut i = 0;
    let is_align = |ch: char| matches!(ch, '<' | '>' | '=' | '^');
    if c.len() >= 2 && is_align(c[1]) {
        s.fill = Some(c[0]);
        s.align = Some(c[1]);
        i = 2;
    } else if !c.is_empty() && is_align(c[0]) {
        s.align = Some(c[0]);
        i = 1;
    }
    if i < c.len() && matches!(c[i], '+' | '-' | ' ') {
        s.sign = Some(c[i]);
        i += 1;
    }
    if i < c.len() && c[i] == '#' {
        s.alternate = true;
        i += 1;
    }
    if i < c.len() && c[i] == '0' {
        s.zero = true;
        i += 1;
    }
    let number = |i: &mut usize| -> Option<usize> {
        let start = *i;
        while *i < c.len() && c[*i].is_ascii_digit() {
            *i += 1;
        }
        (start < *i).then(|| {
            c[start..*i]
                .iter()
                .collect::<String>()
                .parse()
                .unwrap_or(usize::MAX)
        })
    };
    if let Some(w) = number(&mut i) {
        s.width = w;
    }
    if i < c.len() && matches!(c[i], ',' | '_') {
        s.grouping = Some(c[i]);
        i += 1;
    }
    if i < c.len() && c[i] == '.' {
        i += 1;
        s.precision =
            Some(number(&mut i).ok_or_else(|| bad("Format specifier missing precision"))?);
    }
    if i < c.len() {
        s.ty = Some(c[i]);
        i += 1;
    }
    if i < c.len() || s.width > 1 << 20 || s.precision.is_some_and(|p| p > 1 << 20) {
        return Err(bad("Invalid format specifier"));
    }
    Ok(s)
}

/// `format(v, spec)`; `text` gives `str(v)` for values formatted as their text.
pub fn format_value(
    v: &Value,
    spec: &str,
    text: &dyn Fn(&Value) -> Result<String, OpError>,
) -> Result<String, OpError> {
    if spec.is_empty() {
        return text(v);
    }
    let s = parse(spec)?;
    match v {
        Value::Str(t) => format_str(t, &s),
        Value::Int(i) => format_int(*i as i128, &s, "int"),
        Value::BigInt(b) => format_big(b, &s),
        Value::Bool(b) => format_int(*b as i128, &s, "bool"),
        Value::Float(f) => format_float(*f, &s),
        other => Err((
            TypeError,
            format!(
                "unsupported format string passed to {}.__format__",
                other.type_name()
            ),
        )),
    }
}

fn format_str(t: &str, s: &Spec) -> Result<String, OpError> {
    if !matches!(s.ty, None | Some('s')) {
        return Err(bad(format!(
            "Unknown format code '{}' for object of type 'str'",
            s.ty.unwrap_or(' ')
        )));
    }
    if s.sign.is_some() {
        return Err(bad("Sign not allowed in string format specifier"));
    }
    if s.align == Some('=') {
        return Err(bad("'=' alignment not allowed in string format specifier"));
    }
    if s.grouping.is_some() {
        return Err(bad("Cannot specify ',' with 's'."));
    }
    let body: String = match s.precision {
        Some(p) => t.chars().take(p).collect(),
        None => t.to_string(),
    };
    Ok(pad("", &body, s, '<'))
}

/// Pads `sign` + `body` to the width: `=` puts the fill between them.
fn pad(sign: &str, body: &str, s: &Spec, default_align: char) -> String {
    let (fill, align) = if s.zero && s.align.is_none() && s.fill.is_none() {
        ('0', '=')
    } else {
        (s.fill.unwrap_or(' '), s.align.unwrap_or(default_align))
    };
    let len = sign.chars().count() + body.chars().count();
    let n = s.width.saturating_sub(len);
    let fills = |k: usize| std::iter::repeat_n(fill, k).collect::<String>();
    match align {
        '<' => format!("{sign}{body}{}", fills(n)),
        '^' => format!("{}{sign}{body}{}", fills(n / 2), fills(n - n / 2)),
        '=' => format!("{sign}{}{body}", fills(n)),
        _ => format!("{}{sign}{body}", fills(n)),
    }
}

fn sign_of(negative: bool, s: &Spec) -> &'static str {
    match (negative, s.sign) {
        (true, _) => "-",
        (false, Some('+')) => "+",
        (false, Some(' ')) => " ",
        _ => "",
    }
}

/// Inserts `sep` every three digits of the integer digits `d`.
fn group(d: &str, sep: char, every: usize) -> String {
    let mut out = String::new();
    let n = d.len();
    for (i, ch) in d.chars().enumerate() {
        if i > 0 && (n - i).is_multiple_of(every) {
            out.push(sep);
        }
        out.push(ch);
    }
    out
}

fn format_int(i: i128, s: &Spec, type_name: &str) -> Result<String, OpError> {
    if s.precision.is_some() && !matches!(s.ty, Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%')) {
        return Err(bad("Precision not allowed in integer format specifier"));
    }
    let (prefix, digits) = match s.ty {
        None | Some('d') | Some('n') => ("", i.unsigned_abs().to_string()),
        Some('x') => ("0x", format!("{:x}", i.unsigned_abs())),
        Some('X') => ("0X", format!("{:X}", i.unsigned_abs())),
        Some('o') => ("0o", format!("{:o}", i.unsigned_abs())),
        Some('b') => ("0b", format!("{:b}", i.unsigned_abs())),
        Some('c') => {
            let ch = u32::try_from(i)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| {
                    (
                        crate::diag::ErrorKind::OverflowError,
                        "%c arg not in range(0x110000)".to_string(),
                    )
                })?;
            return Ok(pad("", &ch.to_string(), s, '>'));
        }
        Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%') => return format_float(i as f64, s),
        Some(t) => {
            return Err(bad(format!(
                "Unknown format code '{t}' for object of type '{type_name}'"
            )))
        }
    };
    let digits = match s.grouping {
        Some(sep) => {
            let every = if matches!(s.ty, Some('x' | 'X' | 'o' | 'b')) {
                4
            } else {
                3
            };
            group(&digits, sep, every)
        }
        None => digits,
    };
    let sign = sign_of(i < 0, s);
    let prefix = if s.alternate { prefix } else { "" };
    Ok(pad(&format!("{sign}{prefix}"), &digits, s, '>'))
}

/// `format(b, spec)` for a big int: its digits in the spec's base, grouped, signed, padded
/// (the float forms convert it, an `OverflowError` when out of range).
fn format_big(b: &num_bigint::BigInt, s: &Spec) -> Result<String, OpError> {
    use num_traits::Signed;
    if s.precision.is_some() && !matches!(s.ty, Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%')) {
        return Err(bad("Precision not allowed in integer format specifier"));
    }
    let m = b.magnitude();
    let (prefix, digits) = match s.ty {
        None | Some('d') | Some('n') => ("", crate::bigint::decimal(m)?),
        Some('x') => ("0x", m.to_str_radix(16)),
        Some('X') => ("0X", m.to_str_radix(16).to_uppercase()),
        Some('o') => ("0o", m.to_str_radix(8)),
        Some('b') => ("0b", m.to_str_radix(2)),
        Some('c') => {
            return Err((
                crate::diag::ErrorKind::OverflowError,
                "%c arg not in range(0x110000)".to_string(),
            ))
        }
        Some('e' | 'E' | 'f' | 'F' | 'g' | 'G' | '%') => {
            return format_float(crate::bigint::to_f64(b)?, s)
        }
        Some(t) => {
            return Err(bad(format!(
                "Unknown format code '{t}' for object of type 'int'"
            )))
        }
    };
    let digits = match s.grouping {
        Some(sep) => {
            let every = if matches!(s.ty, Some('x' | 'X' | 'o' | 'b')) {
                4
            } else {
                3
            };
            group(&digits, sep, every)
        }
        None => digits,
    };
    let sign = sign_of(b.is_negative(), s);
    let prefix = if s.alternate { prefix } else { "" };
    Ok(pad(&format!("{sign}{prefix}"), &digits, s, '>'))
}

/// `x` in scientific notation with `p` decimals, Python's exponent (`e+05`).
fn sci(x: f64, p: usize, upper: bool) -> String {
    let t = format!("{:.*e}", p, x);
    let (m, e) = t.split_once('e').unwrap_or((&t, "0"));
    let e: i32 = e.parse().unwrap_or(0);
    let es = if e < 0 { '-' } else { '+' };
    let ech = if upper { 'E' } else { 'e' };
    format!("{m}{ech}{es}{:02}", e.abs())
}

/// Removes trailing zeros (and a bare point) of the fraction of a number's text.
fn strip_zeros(t: &str) -> String {
    let (m, e) = match t.find(['e', 'E']) {
        Some(k) => (&t[..k], &t[k..]),
        None => (t, ""),
    };
    let m = if m.contains('.') {
        m.trim_end_matches('0').trim_end_matches('.')
    } else {
        m
    };
    format!("{m}{e}")
}

/// Python's `g` with precision `p` (at least 1); `keep_point`: no type given (a `.0` stays).
fn general(x: f64, p: usize, alternate: bool, upper: bool, keep_point: bool) -> String {
    let p = p.max(1);
    let probe = format!("{:.*e}", p - 1, x);
    let exp: i32 = probe
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let t = if exp >= -4 && exp < p as i32 {
        format!("{:.*}", (p as i32 - 1 - exp).max(0) as usize, x)
    } else {
        sci(x, p - 1, upper)
    };
    if alternate {
        return t;
    }
    let t = strip_zeros(&t);
    if keep_point && !t.contains(['.', 'e', 'E']) {
        return format!("{t}.0");
    }
    t
}

fn format_float(x: f64, s: &Spec) -> Result<String, OpError> {
    let upper = matches!(s.ty, Some('E' | 'F' | 'G'));
    let negative = x.is_sign_negative() && !x.is_nan();
    let a = x.abs();
    let body = if !a.is_finite() {
        let t = if a.is_nan() { "nan" } else { "inf" };
        let t = if upper {
            t.to_uppercase()
        } else {
            t.to_string()
        };
        if s.ty == Some('%') {
            format!("{t}%")
        } else {
            t
        }
    } else {
        match s.ty {
            None => match s.precision {
                None => float_repr(a),
                Some(p) => general(a, p, s.alternate, false, true),
            },
            Some('f' | 'F') => format!("{:.*}", s.precision.unwrap_or(6), a),
            Some('e' | 'E') => sci(a, s.precision.unwrap_or(6), upper),
            Some('g' | 'G' | 'n') => {
                general(a, s.precision.unwrap_or(6), s.alternate, upper, false)
            }
            Some('%') => format!("{:.*}%", s.precision.unwrap_or(6), a * 100.0),
            Some(t) => {
                return Err(bad(format!(
                    "Unknown format code '{t}' for object of type 'float'"
                )))
            }
        }
    };
    let body = match s.grouping {
        Some(sep) if a.is_finite() => {
            let end = body
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(body.len());
            format!("{}{}", group(&body[..end], sep, 3), &body[end..])
        }
        _ => body,
    };
    Ok(pad(sign_of(negative, s), &body, s, '>'))
}

/// The arguments of `template.format(...)`: positional, then keyword (name, value).
pub type FormatArgs<'a> = (&'a [Value], &'a [(String, Value)]);

/// `template.format(args..., name=value...)`: fields `{}` (automatic numbering), `{N}`,
/// `{name}` (a keyword argument), with `!r`/`!s` and a spec that may hold fields itself
/// (`{:{}}`). `text`/`repr` give `str(v)`/`repr(v)`.
pub fn str_format(
    template: &str,
    args: FormatArgs,
    text: &dyn Fn(&Value) -> Result<String, OpError>,
    repr: &dyn Fn(&Value) -> Result<String, OpError>,
) -> Result<String, OpError> {
    let mut next = 0usize;
    let mut manual = false;
    render(template, args, text, repr, &mut next, &mut manual, 0)
}

fn render(
    template: &str,
    (args, kwargs): FormatArgs,
    text: &dyn Fn(&Value) -> Result<String, OpError>,
    repr: &dyn Fn(&Value) -> Result<String, OpError>,
    next: &mut usize,
    manual: &mut bool,
    depth: usize,
) -> Result<String, OpError> {
    if depth > 1 && template.contains('{') {
        return Err(bad("Max string recursion exceeded"));
    }
    let c: Vec<char> = template.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '{' if c.get(i + 1) == Some(&'{') => {
                out.push('{');
                i += 2;
            }
            '}' if c.get(i + 1) == Some(&'}') => {
                out.push('}');
                i += 2;
            }
            '}' => return Err(bad("Single '}' encountered in format string")),
            '{' => {
                // The field, through its matching `}` (a spec may nest one level of fields).
                let start = i + 1;
                let mut level = 1;
                i += 1;
                while i < c.len() && level > 0 {
                    match c[i] {
                        '{' => level += 1,
                        '}' => level -= 1,
                        _ => {}
                    }
                    i += 1;
                }
                if level > 0 {
                    return Err(bad("expected '}' before end of string"));
                }
                let field: String = c[start..i - 1].iter().collect();
                let (head, spec) = match field.find(':') {
                    Some(k) => (&field[..k], &field[k + 1..]),
                    None => (field.as_str(), ""),
                };
                let (name, conv) = match head.find('!') {
                    Some(k) => (&head[..k], Some(&head[k + 1..])),
                    None => (head, None),
                };
                let keyword = |name: &str| {
                    let found = kwargs.iter().find(|(k, _)| k == name);
                    found
                        .map(|(_, v)| v)
                        .ok_or_else(|| (crate::diag::ErrorKind::KeyError, format!("'{name}'")))
                };
                let index = if name.is_empty() {
                    if *manual {
                        return Err(bad(
                            "cannot switch from manual field specification to automatic field numbering",
                        ));
                    }
                    *next += 1;
                    *next - 1
                } else if let Ok(k) = name.parse::<usize>() {
                    if *next > 0 {
                        return Err(bad(
                            "cannot switch from automatic field numbering to manual field specification",
                        ));
                    }
                    *manual = true;
                    k
                } else {
                    usize::MAX
                };
                let v = if index == usize::MAX {
                    keyword(name)?
                } else {
                    args.get(index).ok_or_else(|| {
                        (
                            crate::diag::ErrorKind::IndexError,
                            format!(
                                "Replacement index {index} out of range for positional args tuple"
                            ),
                        )
                    })?
                };
                let spec = render(spec, (args, kwargs), text, repr, next, manual, depth + 1)?;
                let s = match conv {
                    None => format_value(v, &spec, text)?,
                    Some("r") => format_value(&Value::str(repr(v)?), &spec, text)?,
                    Some("s") => format_value(&Value::str(text(v)?), &spec, text)?,
                    Some(_) => return Err(bad("Unknown conversion specifier")),
                };
                out.push_str(&s);
            }
            ch => {
                out.push(ch);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// `template % value`, a tuple giving one value per conversion: `%s %r %d %i %u %f %F %e %E %g
/// %G %x %X %o %c %%` with flags `- + space # 0`, a width and a precision, as Python's
/// printf-style formatting.
pub fn percent(template: &str, value: &Value) -> Result<String, OpError> {
    let c: Vec<char> = template.chars().collect();
    let mut out = String::new();
    // A tuple gives one value per conversion; anything else is the only value.
    let values: &[Value] = match value {
        Value::Tuple(t) => &t.items,
        v => std::slice::from_ref(v),
    };
    let mut used = 0;
    let mut i = 0;
    let text = |v: &Value| v.to_str(&|_| String::from("?"));
    while i < c.len() {
        if c[i] != '%' {
            out.push(c[i]);
            i += 1;
            continue;
        }
        i += 1;
        let (mut left, mut plus, mut space, mut alt, mut zero) =
            (false, false, false, false, false);
        while i < c.len() && matches!(c[i], '-' | '+' | ' ' | '#' | '0') {
            match c[i] {
                '-' => left = true,
                '+' => plus = true,
                ' ' => space = true,
                '#' => alt = true,
                _ => zero = true,
            }
            i += 1;
        }
        let mut width = String::new();
        while i < c.len() && c[i].is_ascii_digit() {
            width.push(c[i]);
            i += 1;
        }
        let mut precision = None;
        if i < c.len() && c[i] == '.' {
            i += 1;
            let mut p = String::new();
            while i < c.len() && c[i].is_ascii_digit() {
                p.push(c[i]);
                i += 1;
            }
            precision = Some(p);
        }
        let Some(&ty) = c.get(i) else {
            return Err(bad("incomplete format"));
        };
        i += 1;
        if ty == '%' {
            out.push('%');
            continue;
        }
        let Some(value) = values.get(used) else {
            return Err((TypeError, "not enough arguments for format string".into()));
        };
        used += 1;
        let align = if left { "<" } else { ">" };
        // Numbers: no explicit alignment unless `-`, so that `0` pads after the sign.
        let num_align = if left { "<" } else { "" };
        let sign = if plus {
            "+"
        } else if space {
            " "
        } else {
            ""
        };
        let z = if zero && !left { "0" } else { "" };
        let prec = precision
            .as_deref()
            .map(|p| format!(".{}", if p.is_empty() { "0" } else { p }));
        let prec = prec.unwrap_or_default();
        let piece = match ty {
            's' | 'r' => {
                let t = if ty == 's' {
                    text(value)?
                } else {
                    value.repr(&|_| String::from("?"))?
                };
                format_value(&Value::str(t), &format!("{align}{width}{prec}"), &text)?
            }
            'd' | 'i' | 'u' | 'x' | 'X' | 'o' | 'c' => {
                let n = match value {
                    Value::Int(_) | Value::Bool(_) | Value::BigInt(_) => value.clone(),
                    Value::Float(f) if matches!(ty, 'd' | 'i' | 'u') && f.is_finite() => {
                        crate::bigint::from_f64(*f)
                    }
                    other => {
                        let what = if matches!(ty, 'x' | 'X' | 'o' | 'c') {
                            format!(
                                "%{ty} format: an integer is required, not {}",
                                other.type_name()
                            )
                        } else {
                            format!(
                                "%{ty} format: a real number is required, not {}",
                                other.type_name()
                            )
                        };
                        return Err((TypeError, what));
                    }
                };
                let t = match ty {
                    'd' | 'i' | 'u' => 'd',
                    t => t,
                };
                let hash = if alt { "#" } else { "" };
                format_value(&n, &format!("{num_align}{sign}{hash}{z}{width}{t}"), &text)?
            }
            'f' | 'F' | 'e' | 'E' | 'g' | 'G' => {
                let x = match value {
                    Value::Int(i) => Value::Float(*i as f64),
                    Value::BigInt(b) => Value::Float(crate::bigint::to_f64(b)?),
                    Value::Bool(b) => Value::Float(*b as i64 as f64),
                    Value::Float(_) => value.clone(),
                    other => {
                        return Err((
                            TypeError,
                            format!("must be real number, not {}", other.type_name()),
                        ))
                    }
                };
                let hash = if alt { "#" } else { "" };
                let prec = if prec.is_empty() {
                    ".6".to_string()
                } else {
                    prec
                };
                format_value(
                    &x,
                    &format!("{num_align}{sign}{hash}{z}{width}{prec}{ty}"),
                    &text,
                )?
            }
            other => {
                return Err(bad(format!(
                    "unsupported format character '{other}' (0x{:x}) at index {}",
                    other as u32,
                    i - 1
                )))
            }
        };
        out.push_str(&piece);
    }
    if used < values.len() {
        return Err((
            TypeError,
            "not all arguments converted during string formatting".into(),
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::format_value;
    use crate::value::Value;

    fn f(v: Value, spec: &str) -> String {
        format_value(&v, spec, &|v| v.to_str(&|_| String::new())).unwrap()
    }

    #[test]
    fn python_examples() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (Value::Int(42), "5", "   42"),
            (Value::Int(42), "<5", "42   "),
            (Value::Int(42), "^6", "  42  "),
            (Value::Int(-42), "05", "-0042"),
            (Value::Int(-42), "*=7", "-****42"),
            (Value::Int(1234567), ",", "1,234,567"),
            (Value::Int(1234567), "_", "1_234_567"),
            (Value::Int(255), "x", "ff"),
            (Value::Int(255), "#X", "0XFF"),
            (Value::Int(5), "#b", "0b101"),
            (Value::Int(8), "o", "10"),
            (Value::Int(7), "+d", "+7"),
            (Value::Int(65), "c", "A"),
            (Value::Int(3), ".2f", "3.00"),
            (Value::Bool(true), ">5", "    1"),
            (Value::Float(1.23456), ".2f", "1.23"),
            (Value::Float(1.23456), "8.3f", "   1.235"),
            (Value::Float(2.5), ".0f", "2"),
            (Value::Float(1234.5), ",.2f", "1,234.50"),
            (Value::Float(0.25), ".1%", "25.0%"),
            (Value::Float(12345.678), "e", "1.234568e+04"),
            (Value::Float(0.000123), ".2E", "1.23E-04"),
            (Value::Float(1.5), "g", "1.5"),
            (Value::Float(1e-5), "g", "1e-05"),
            (Value::Float(123456789.0), "g", "1.23457e+08"),
            (Value::Float(2.0), ".3", "2.0"),
            (Value::Float(1.0 / 3.0), ".3", "0.333"),
            (Value::Float(1e20), ".3", "1e+20"),
            (Value::Float(2.5), "10", "       2.5"),
            (Value::Float(-1.5), "+.1f", "-1.5"),
            (Value::Float(f64::INFINITY), "f", "inf"),
            (Value::Float(f64::NAN), "F", "NAN"),
            (Value::str("ab"), "5", "ab   "),
            (Value::str("ab"), ">5", "   ab"),
            (Value::str("abcdef"), ".3", "abc"),
            (Value::str("x"), "-^5", "--x--"),
            (Value::None, "", "None"),
        ];
        for (v, spec, want) in cases {
            assert_eq!(f(v.clone(), spec), want, "format({v:?}, {spec:?})");
        }
    }

    #[test]
    fn str_format_examples() {
        let text = |v: &Value| v.to_str(&|_| String::new());
        let repr = |v: &Value| v.repr(&|_| String::new());
        let f = |t: &str, args: &[Value]| super::str_format(t, (args, &[]), &text, &repr).unwrap();
        assert_eq!(
            f(
                "{} + {} = {}",
                &[Value::Int(1), Value::Int(2), Value::Int(3)]
            ),
            "1 + 2 = 3"
        );
        assert_eq!(f("{1}{0}{1}", &[Value::str("a"), Value::str("b")]), "bab");
        assert_eq!(
            f("{!r:>5}|{:.2f}", &[Value::str("x"), Value::Float(2.0)]),
            "  'x'|2.00"
        );
        assert_eq!(f("{{{}}}", &[Value::Int(7)]), "{7}");
        assert_eq!(f("{:{}}", &[Value::Int(7), Value::Int(3)]), "  7");
    }

    #[test]
    fn errors_are_python_s() {
        let e = |v: Value, spec: &str| {
            format_value(&v, spec, &|_| Ok(String::new()))
                .unwrap_err()
                .1
        };
        assert_eq!(
            e(Value::str("a"), "d"),
            "Unknown format code 'd' for object of type 'str'"
        );
        assert_eq!(
            e(Value::None, "5"),
            "unsupported format string passed to NoneType.__format__"
        );
        assert_eq!(
            e(Value::Int(1), ".2d"),
            "Precision not allowed in integer format specifier"
        );
    }
}
