//! `int` beyond the 63-bit tagged range: an immutable heap object holding the value's sign
//! and magnitude, 32-bit digits little-endian after the struct, without leading zero digits
//! (`num-bigint`'s own form: converting is a copy; read without read barriers, like a str). Arithmetic on them goes through the interpreter's values
//! (`stmjit_lang::bigint`, computed with `num-bigint`); a result that fits 63 bits is always
//! a tagged int again, so a big int never equals a tagged one.

use crate::{Runtime, R};
use num_bigint::{BigInt, BigUint, Sign};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A big int (immutable): `len` 32-bit digits of the magnitude follow the struct.
#[repr(C)]
pub struct BigIntObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of digits.
    pub len: u64,
    /// 1 when negative, else 0.
    pub neg: u64,
}

/// Size in bytes of a big int object of `len` digits.
pub fn bigint_size(len: u64) -> u64 {
    size_of::<BigIntObj>() as u64 + 4 * len
}

impl Runtime {
    /// A new big int object of `b` (the caller keeps small values tagged).
    pub fn new_bigint(&mut self, b: &BigInt) -> R<Word> {
        let n = b.magnitude().iter_u32_digits().len();
        let r = self.alloc(self.types.bigint, bigint_size(n as u64))?;
        self.st(r, offset_of!(BigIntObj, len) as u64, n as u64);
        self.st(
            r,
            offset_of!(BigIntObj, neg) as u64,
            (b.sign() == Sign::Minus) as u64,
        );
        let p = self.addr(r + size_of::<BigIntObj>() as u64) as *mut u32;
        // num-bigint's own 64-bit digits, written two 32-bit digits at a time (the u32 digit
        // iterator splits each one with a branch: 25% of a factorial's time was this loop).
        for (i, d) in b.magnitude().iter_u64_digits().enumerate() {
            let (lo, hi) = (2 * i, 2 * i + 1);
            // SAFETY: the object has room for `n` digits after the struct (8-aligned); the
            // high half is written only when it is one of the `n` digits (it is nonzero, or
            // not the last word).
            unsafe {
                p.add(lo).write(d as u32);
                if hi < n {
                    p.add(hi).write((d >> 32) as u32);
                }
            }
        }
        Ok(r)
    }
    /// The sign (true: negative) and the digits of a big int object (immutable: no read
    /// barrier); the slice is valid until the object is moved or freed.
    pub fn bigint_digits<'a>(&self, w: Word) -> (bool, &'a [u32]) {
        let len = self.ld(w, offset_of!(BigIntObj, len) as u64) as usize;
        let neg = self.ld(w, offset_of!(BigIntObj, neg) as u64) != 0;
        // SAFETY: big int objects hold `len` digits after the struct, which is 8-aligned.
        let digits = unsafe {
            std::slice::from_raw_parts(
                self.addr(w + size_of::<BigIntObj>() as u64) as *const u32,
                len,
            )
        };
        (neg, digits)
    }
    /// The value of a big int object.
    pub fn bigint_of(&self, w: Word) -> BigInt {
        let (neg, digits) = self.bigint_digits(w);
        let sign = if neg { Sign::Minus } else { Sign::Plus };
        BigInt::from_biguint(sign, BigUint::from_slice(digits))
    }
}
