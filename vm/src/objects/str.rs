//! `str`: immutable UTF-8 text; the bytes follow the struct. Immutable objects are read
//! without read barriers.

use super::*;
use crate::{Runtime, R};
use std::mem::{offset_of, size_of};
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

/// An immutable string: UTF-8 bytes follow the struct.
#[repr(C)]
pub struct StrObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Length in bytes.
    pub len: u64,
    /// Length in characters (equal to `len` for ASCII text: O(1) indexing).
    pub nchars: u64,
}

/// Size in bytes of a str object holding `len` bytes.
pub fn str_size(len: u64) -> u64 {
    size_of::<StrObj>() as u64 + len
}

impl Runtime {
    /// A new str.
    pub fn new_str(&mut self, s: &str) -> R<Word> {
        let r = self.alloc(self.types.str, str_size(s.len() as u64))?;
        self.st(r, offset_of!(StrObj, len) as u64, s.len() as u64);
        self.st(
            r,
            offset_of!(StrObj, nchars) as u64,
            s.chars().count() as u64,
        );
        // SAFETY: the object has room for the bytes after the struct.
        unsafe {
            std::ptr::copy_nonoverlapping(
                s.as_ptr(),
                self.addr(r + std::mem::size_of::<StrObj>() as u64),
                s.len(),
            )
        };
        Ok(r)
    }
    /// The text of a str object (immutable: no read barrier). The slice stays valid until
    /// the object is moved or freed; copy it before allocating when the GC may move it.
    pub fn str_of<'a>(&self, w: Word) -> &'a str {
        let len = self.ld(w, offset_of!(StrObj, len) as u64) as usize;
        // SAFETY: str objects hold valid UTF-8 of `len` bytes after the struct.
        unsafe {
            std::str::from_utf8_unchecked(std::slice::from_raw_parts(
                self.addr(w + std::mem::size_of::<StrObj>() as u64),
                len,
            ))
        }
    }
    /// Number of characters of a str object.
    pub fn str_nchars(&self, w: Word) -> u64 {
        self.ld(w, offset_of!(StrObj, nchars) as u64)
    }
}
