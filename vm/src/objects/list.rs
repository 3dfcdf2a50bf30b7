//! `list`: a header (`len`, `items`) and a card-marked items array (`array.rs`): writing
//! one item locks its card only.

use super::*;
use crate::{exc, Root, Runtime, R};
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::{Word, NONE};

pub(super) const LIST_LEN: u64 = offset_of!(ListObj, len) as u64;
pub(super) const LIST_ITEMS: u64 = offset_of!(ListObj, items) as u64;

/// A list: length plus a reference to its card-marked items array.
#[repr(C)]
pub struct ListObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Number of items.
    pub len: u64,
    /// The [`ArrayObj`] holding the items (capacity >= len).
    pub items: Word,
}

impl Runtime {
    /// A new list holding `items`.
    pub fn new_list(&mut self, items: &[Word]) -> R<Word> {
        // The items and the array are rooted across the allocations (they may move).
        let m = self.mark();
        let held = self.hold_all(items)?;
        let cap = (items.len() as u64).max(4);
        let arr = self.new_array(true, cap, 0)?;
        let ra = self.root(arr);
        let l = self.alloc(self.types.list, std::mem::size_of::<ListObj>() as u64)?;
        let arr = self.get(ra);
        // The list's allocation may have promoted the array: its stores need the barrier
        // (a no-op for a young array; for a promoted one it records it for the next minor
        // collection).
        self.wb(arr)?;
        for (i, &h) in held.iter().enumerate() {
            self.st(arr, ARRAY_DATA + 8 * i as u64, self.held(h));
        }
        self.st(l, LIST_LEN, items.len() as u64);
        self.st(l, LIST_ITEMS, arr);
        self.release(m);
        Ok(l)
    }
    /// A new list made of `times` repetitions of the concatenated slices `(list, lo, hi)`.
    /// The items are copied from the source lists after the allocations (only the sources
    /// are rooted), so any number of items can be copied.
    pub fn list_concat(&mut self, parts: &[(Word, u64, u64)], times: u64) -> R<Word> {
        let m = self.mark();
        let roots: Vec<(Root, u64, u64)> = parts
            .iter()
            .map(|&(l, lo, hi)| (self.root(l), lo, hi))
            .collect();
        let per: u64 = parts.iter().map(|&(_, lo, hi)| hi - lo).sum();
        let total = per
            .checked_mul(times)
            .filter(|&t| t <= self.info.heap_limit / 8)
            .ok_or_else(|| exc(ErrorKind::MemoryError, "sequence too large"))?;
        let (l, arr) = self.list_for(total)?;
        let mut k = 0;
        for _ in 0..times {
            for &(r, lo, hi) in &roots {
                let src = self.get(r);
                for i in lo..hi {
                    let w = self.list_get(src, i);
                    self.st(arr, ARRAY_DATA + 8 * k, w);
                    k += 1;
                }
            }
        }
        self.release(m);
        Ok(l)
    }
    /// A new list of `total` items and its array, where the caller stores the items before
    /// it allocates again (what it reads them from, it roots before the call).
    #[inline(always)]
    pub(crate) fn list_for(&mut self, total: u64) -> R<(Word, Word)> {
        let arr = self.new_array(true, total.max(4), 0)?;
        let ra = self.root(arr);
        let l = self.alloc(self.types.list, std::mem::size_of::<ListObj>() as u64)?;
        let arr = self.get(ra);
        self.wb(arr)?;
        self.st(l, LIST_LEN, total);
        self.st(l, LIST_ITEMS, arr);
        Ok((l, arr))
    }
    /// Length of a list.
    #[inline]
    pub fn list_len(&self, l: Word) -> u64 {
        self.rb(l);
        self.ld(l, LIST_LEN)
    }
    /// Item `i < len` of a list.
    #[inline]
    pub fn list_get(&self, l: Word, i: u64) -> Word {
        self.rb(l);
        let arr = self.ld(l, LIST_ITEMS);
        self.carr_get(arr, i)
    }
    /// Stores item `i < len` of a list.
    pub fn list_set(&self, l: Word, i: u64, v: Word) -> R<()> {
        self.rb(l);
        let arr = self.ld(l, LIST_ITEMS);
        self.carr_set(arr, i, v)
    }
    /// Appends to a list (growing its items array when full).
    pub fn list_push(&mut self, l: Word, v: Word) -> R<()> {
        self.rb(l);
        let len = self.ld(l, LIST_LEN);
        let arr = self.ld(l, LIST_ITEMS);
        if len == self.arr_cap(arr) {
            let m = self.mark();
            let (rl, rv) = (self.root(l), self.root(v));
            let new = self.new_array(true, (len * 2).max(4), 0)?;
            let (l2, v2) = (self.get(rl), self.get(rv));
            self.release(m);
            return self.list_push_grown(l2, v2, new, len);
        }
        self.carr_set(arr, len, v)?;
        self.wb(l)?;
        self.st(l, LIST_LEN, len + 1);
        Ok(())
    }
    /// Second half of [`Runtime::list_push`] after the new items array was allocated.
    fn list_push_grown(&mut self, l: Word, v: Word, new: Word, len: u64) -> R<()> {
        self.list_move_items(l, new, len)?;
        self.carr_set(new, len, v)?;
        self.wb(l)?;
        self.st(l, LIST_LEN, len + 1);
        Ok(())
    }
    /// Copies the first `len` items of a list into the new (young) items array `new`, which
    /// becomes the list's.
    fn list_move_items(&mut self, l: Word, new: Word, len: u64) -> R<()> {
        let arr = self.ld(l, LIST_ITEMS);
        for i in 0..len {
            let w = self.carr_get(arr, i);
            self.st(new, ARRAY_DATA + 8 * i, w);
        }
        self.wb(l)?;
        self.st(l, LIST_ITEMS, new);
        Ok(())
    }
    /// `l.pop(i)`: removes and returns item `i` (negative: from the end), moving the
    /// following items down in place.
    pub fn list_pop(&mut self, l: Word, i: i64) -> R<Word> {
        let n = self.list_len(l);
        if n == 0 {
            return Err(exc(ErrorKind::IndexError, "pop from empty list"));
        }
        let j = if i < 0 { i.wrapping_add(n as i64) } else { i };
        if !(0..n as i64).contains(&j) {
            return Err(exc(ErrorKind::IndexError, "pop index out of range"));
        }
        let j = j as u64;
        let v = self.list_get(l, j);
        let arr = self.ld(l, LIST_ITEMS);
        for k in j + 1..n {
            let w = self.carr_get(arr, k);
            self.carr_set(arr, k - 1, w)?;
        }
        self.wb(l)?;
        self.st(l, LIST_LEN, n - 1);
        Ok(v)
    }
    /// All items of a list: one read barrier on the list, and one per granule of its items
    /// (item by item it was a barrier on the list per item and on the granule per item;
    /// with read sites recorded, `--stats` and `--trace`, each barrier stores a site too).
    pub fn list_items(&self, l: Word) -> Vec<Word> {
        let mut items = Vec::new();
        self.list_items_into(l, &mut items);
        items
    }

    /// [`Self::list_items`] into `out` (cleared first), for a caller that reads many small
    /// lists one after the other (a queue worker: one queued call each) and keeps one buffer.
    pub fn list_items_into(&self, l: Word, out: &mut Vec<Word>) {
        self.rb(l);
        let n = self.ld(l, LIST_LEN);
        self.list_range_into(l, 0..n, out);
    }

    /// Items `range` of a list into `out` (cleared first), with one read barrier on the list
    /// and one per granule of those items. `range` must lie inside the list.
    pub fn list_range_into(&self, l: Word, range: std::ops::Range<u64>, out: &mut Vec<Word>) {
        out.clear();
        self.rb(l);
        debug_assert!(range.end <= self.ld(l, LIST_LEN));
        let arr = self.ld(l, LIST_ITEMS);
        let mut granule = u64::MAX;
        out.extend(range.map(|i| {
            let off = ARRAY_DATA + 8 * i;
            if (arr + off) >> stmjit_runtime::layout::MARKER_SHIFT != granule {
                granule = (arr + off) >> stmjit_runtime::layout::MARKER_SHIFT;
                self.rb(arr + off);
            }
            self.ld(arr, off)
        }));
    }
    /// Appends `items` to a list: one capacity check, and the items array grown at most
    /// once (the list and the items are rooted only then: a queue's `q.add` appends a few
    /// words each time, and item by item it cost about 700 instructions).
    pub fn list_extend(&mut self, l: Word, items: &[Word]) -> R<()> {
        self.rb(l);
        let len = self.ld(l, LIST_LEN);
        let need = len + items.len() as u64;
        if need > self.arr_cap(self.ld(l, LIST_ITEMS)) {
            let m = self.mark();
            let rl = self.root(l);
            let grown = self.hold_all(items).and_then(|held| {
                let new = self.new_array(true, need.max(len * 2).max(4), 0)?;
                let l = self.get(rl);
                self.list_move_items(l, new, len)?;
                let items: Vec<Word> = held.iter().map(|&h| self.held(h)).collect();
                Ok((l, items))
            });
            self.release(m);
            let (l, items) = grown?;
            return self.list_fill_end(l, len, &items);
        }
        self.list_fill_end(l, len, items)
    }
    /// Stores `items` after the first `len` items of a list whose items array has room for
    /// them, and makes them part of the list.
    fn list_fill_end(&mut self, l: Word, len: u64, items: &[Word]) -> R<()> {
        let arr = self.ld(l, LIST_ITEMS);
        for (i, &v) in items.iter().enumerate() {
            self.carr_set(arr, len + i as u64, v)?;
        }
        self.wb(l)?;
        self.st(l, LIST_LEN, len + items.len() as u64);
        Ok(())
    }

    /// Replaces all items of a list.
    pub fn list_replace(&mut self, l: Word, items: &[Word]) -> R<()> {
        self.rb(l);
        let mut arr = self.ld(l, LIST_ITEMS);
        let mut l = l;
        let mut items = items.to_vec();
        if items.len() as u64 > self.arr_cap(arr) {
            let m = self.mark();
            let rl = self.root(l);
            let held = self.hold_all(&items)?;
            arr = self.new_array(true, items.len() as u64, 0)?;
            l = self.get(rl);
            items = held.iter().map(|&h| self.held(h)).collect();
            self.release(m);
            self.wb(l)?;
            self.st(l, LIST_ITEMS, arr);
        }
        for (i, &v) in items.iter().enumerate() {
            self.carr_set(arr, i as u64, v)?;
        }
        self.wb(l)?;
        self.st(l, LIST_LEN, items.len() as u64);
        Ok(())
    }
    /// Inserts `v` before item `i` (clamped to the list, negative from the end).
    pub(crate) fn list_insert(&mut self, l: Word, i: i64, v: Word) -> R<Word> {
        let n = self.list_len(l);
        let i = if i < 0 {
            (i + n as i64).max(0) as u64
        } else {
            (i as u64).min(n)
        };
        if i == n {
            return self.list_push(l, v).map(|_| NONE);
        }
        // Growing may move the list and `v` (both rooted): the last item is pushed again,
        // then the items from `i` shift up by one and `v` takes place `i`.
        let m = self.mark();
        let (rl, rv) = (self.root(l), self.root(v));
        let last = self.list_get(l, n - 1);
        self.list_push(l, last)?;
        let (l, v) = (self.get(rl), self.get(rv));
        self.release(m);
        for j in (i + 1..n).rev() {
            let prev = self.list_get(l, j - 1);
            self.list_set(l, j, prev)?;
        }
        self.list_set(l, i, v)?;
        Ok(NONE)
    }
    /// The index of the first item equal to `v` (identity first, as in Python). `l` and
    /// `v` are rooted: an `__eq__` may move them.
    pub(crate) fn list_find(&mut self, l: Word, v: Word) -> R<Option<u64>> {
        let m = self.mark();
        let (rl, rv) = (self.root(l), self.root(v));
        let mut i = 0;
        let found = loop {
            let (l, v) = (self.get(rl), self.get(rv));
            if i >= self.list_len(l) {
                break None;
            }
            let x = self.list_get(l, i);
            if self.same(x, v) || self.eq(x, v)? {
                break Some(i);
            }
            i += 1;
        };
        self.release(m);
        Ok(found)
    }
    /// Reverses a list in place.
    pub(crate) fn list_reverse(&mut self, l: Word) -> R<()> {
        let n = self.list_len(l);
        for i in 0..n / 2 {
            let (a, b) = (self.list_get(l, i), self.list_get(l, n - 1 - i));
            self.list_set(l, i, b)?;
            self.list_set(l, n - 1 - i, a)?;
        }
        Ok(())
    }
}
