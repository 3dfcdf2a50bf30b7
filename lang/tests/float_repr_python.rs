//! `float_repr` against CPython's `repr(float)` on 32 000 values: random bit patterns, powers of two, random
//! short decimals, powers of ten around the notation switch, and integers near 2^53.

use std::io::Write;
use std::process::{Command, Stdio};
use stmjit_lang::floatfmt::float_repr;

fn values() -> Vec<f64> {
    let mut state: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut v = Vec::new();
    for _ in 0..15_000 {
        let f = f64::from_bits(next());
        if f.is_finite() {
            v.push(f);
        }
    }
    for _ in 0..10_000 {
        let mantissa = (next() % 100_000) as f64;
        let exp = (next() % 50) as i32 - 25;
        v.push(mantissa * 10f64.powi(exp));
        v.push(-(mantissa / 7.0) * 10f64.powi(exp));
    }
    for e in -30..30 {
        let p = 10f64.powi(e);
        v.extend([p, p * 1.5, p * 0.999_999_9, -p, p * 9.999_999_999_999_999]);
    }
    for k in 0..100 {
        v.push(((1u64 << 53) - 50 + k) as f64);
        v.push(k as f64 * 0.1);
    }
    // Powers of two: the gap below is half the gap above (2.0**123 once printed as
    // 5.316911983139663e+36, which reads back as another double).
    for e in -1074..1024 {
        v.push(2f64.powi(e));
    }
    v.extend([0.0, -0.0, f64::MIN_POSITIVE, f64::MAX, f64::MIN, 5e-324]);
    v
}

#[test]
fn float_repr_matches_cpython() {
    let values = values();
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import sys\nfor line in sys.stdin: print(repr(float.fromhex(line.strip())))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 is needed for this test");
    let mut input = String::new();
    for v in &values {
        input.push_str(&hex(*v));
        input.push('\n');
    }
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), values.len());
    let mut bad = Vec::new();
    for (v, want) in values.iter().zip(lines) {
        let got = float_repr(*v);
        if got != want {
            bad.push(format!("{v:e}: got {got}, python {want}"));
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad[..bad.len().min(20)].join("\n")
    );
}

/// `float.hex()` form of `v`, exact.
fn hex(v: f64) -> String {
    let bits = v.to_bits();
    let sign = if bits >> 63 == 1 { "-" } else { "" };
    let exp = ((bits >> 52) & 0x7ff) as i64;
    let frac = bits & ((1 << 52) - 1);
    if exp == 0 {
        format!("{sign}0x0.{frac:013x}p-1022")
    } else {
        format!("{sign}0x1.{frac:013x}p{}", exp - 1023)
    }
}
