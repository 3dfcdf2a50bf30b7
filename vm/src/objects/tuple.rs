//! `tuple`: a length and the item words right after it, in one object. A tuple is complete
//! when its allocation returns (the items are stored into the young object before anything
//! else can allocate) and never written again, so, like `str`, it needs no write barrier
//! after construction and is read without read barriers: no transaction can ever conflict
//! on it. The GC traces its items (`register` in `objects/mod.rs`).

use crate::{exc, Runtime, R};
use std::mem::{offset_of, size_of};
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::Word;

const TUPLE_LEN: u64 = offset_of!(TupleObj, len) as u64;

/// An immutable tuple: `len` item words follow the struct, at [`TUPLE_DATA`].
#[repr(C)]
pub struct TupleObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of items.
    pub len: u64,
}

/// Offset of a tuple's first item.
pub const TUPLE_DATA: u64 = size_of::<TupleObj>() as u64;

/// Size in bytes of a tuple of `len` items.
pub fn tuple_size(len: u64) -> u64 {
    TUPLE_DATA + 8 * len
}

impl Runtime {
    /// A new tuple of `items`.
    pub fn new_tuple(&mut self, items: &[Word]) -> R<Word> {
        let n = items.len() as u64;
        if n > self.info.heap_limit / 8 {
            return Err(exc(ErrorKind::MemoryError, "tuple too large"));
        }
        // The items are rooted across the allocation (it may move them); the new object
        // is young (no write barrier) and nothing allocates between it and the stores.
        let m = self.mark();
        let held = self.hold_all(items)?;
        let t = self.alloc(self.types.tuple, tuple_size(n))?;
        self.st(t, TUPLE_LEN, n);
        for (i, &h) in held.iter().enumerate() {
            self.st(t, TUPLE_DATA + 8 * i as u64, self.held(h));
        }
        self.release(m);
        Ok(t)
    }
    /// A new tuple of `times` repetitions of the concatenated slices `(seq, lo, hi)` of
    /// lists or tuples. The items are copied after the allocation (only the sources are
    /// rooted), so any number of items can be copied.
    pub fn tuple_concat(&mut self, parts: &[(Word, u64, u64)], times: u64) -> R<Word> {
        let per: u64 = parts.iter().map(|&(_, lo, hi)| hi - lo).sum();
        let n = per
            .checked_mul(times)
            .filter(|&n| n <= self.info.heap_limit / 8)
            .ok_or_else(|| exc(ErrorKind::MemoryError, "tuple too large"))?;
        let m = self.mark();
        let roots: Vec<_> = parts.iter().map(|&(w, _, _)| self.root(w)).collect();
        let t = self.alloc(self.types.tuple, tuple_size(n))?;
        self.st(t, TUPLE_LEN, n);
        let mut k = 0;
        for _ in 0..times {
            for (&(_, lo, hi), &r) in parts.iter().zip(&roots) {
                let seq = self.get(r);
                let is_list = self.is(seq, self.types.list);
                for i in lo..hi {
                    let w = if is_list {
                        self.list_get(seq, i)
                    } else {
                        self.tuple_get(seq, i)
                    };
                    self.st(t, TUPLE_DATA + 8 * k, w);
                    k += 1;
                }
            }
        }
        self.release(m);
        Ok(t)
    }
    /// Number of items of a tuple (immutable: no read barrier).
    #[inline]
    pub fn tuple_len(&self, t: Word) -> u64 {
        self.ld(t, TUPLE_LEN)
    }
    /// Item `i < len` of a tuple (immutable: no read barrier).
    #[inline]
    pub fn tuple_get(&self, t: Word, i: u64) -> Word {
        self.ld(t, TUPLE_DATA + 8 * i)
    }
    /// All items of a tuple.
    pub fn tuple_items(&self, t: Word) -> Vec<Word> {
        (0..self.tuple_len(t))
            .map(|i| self.tuple_get(t, i))
            .collect()
    }
}
