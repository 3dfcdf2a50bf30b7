//! `int` beyond the 63-bit tagged range: an immutable heap object holding the value's
//! minimal two's-complement bytes, little-endian, after the struct (read without read
//! barriers, like a str). Arithmetic on them goes through the interpreter's values
//! (`stmjit_lang::bigint`, computed with `num-bigint`); a result that fits 63 bits is always
//! a tagged int again, so a big int never equals a tagged one.

use crate::{Runtime, R};
use num_bigint::BigInt;
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// A big int (immutable): `len` bytes of two's complement follow the struct.
#[repr(C)]
pub struct BigIntObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of bytes.
    pub len: u64,
}

/// Size in bytes of a big int object of `len` bytes.
pub fn bigint_size(len: u64) -> u64 {
    size_of::<BigIntObj>() as u64 + len
}

impl Runtime {
    /// A new big int object of `b` (the caller keeps small values tagged).
    pub fn new_bigint(&mut self, b: &BigInt) -> R<Word> {
        let bytes = b.to_signed_bytes_le();
        let r = self.alloc(self.types.bigint, bigint_size(bytes.len() as u64))?;
        self.st(r, offset_of!(BigIntObj, len) as u64, bytes.len() as u64);
        // SAFETY: the object has room for the bytes after the struct.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.addr(r + size_of::<BigIntObj>() as u64),
                bytes.len(),
            )
        };
        Ok(r)
    }
    /// The bytes of a big int object (immutable: no read barrier); valid until the object
    /// is moved or freed.
    pub fn bigint_bytes<'a>(&self, w: Word) -> &'a [u8] {
        let len = self.ld(w, offset_of!(BigIntObj, len) as u64) as usize;
        // SAFETY: big int objects hold `len` bytes after the struct.
        unsafe { std::slice::from_raw_parts(self.addr(w + size_of::<BigIntObj>() as u64), len) }
    }
    /// The value of a big int object.
    pub fn bigint_of(&self, w: Word) -> BigInt {
        BigInt::from_signed_bytes_le(self.bigint_bytes(w))
    }
}
