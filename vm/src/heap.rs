//! Heap accessors for helpers: every access goes to the running transaction's segment, with
//! the barriers JIT code emits inline (read marker store, write-barrier flag test with the
//! runtime's slow path, card marking for card-marked arrays), plus allocation and the
//! language objects' operations (str, float, list, dict, instance slots).

use super::{exc, Held, Runtime, Unwind, R, TOMBSTONE, UNBOUND};
use crate::abi::young_header;
use crate::objects::*;
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::ffi::{
    stmjit_alloc, stmjit_write_barrier_slow, stmjit_write_card_slow, STATUS_OK,
};
use stmjit_runtime::layout::{SegmentInfo, INFO_OFFSET, MARKER_SHIFT};
use stmjit_runtime::object::{FLAGS_OFFSET, TYPE_ID_OFFSET, WRITE_BARRIER_FLAG};
use stmjit_runtime::value::{self, is_int, is_ref, Word, FALSE, NONE, TRUE};

const LIST_LEN: u64 = offset_of!(ListObj, len) as u64;
const LIST_ITEMS: u64 = offset_of!(ListObj, items) as u64;
const ARR_CAP: u64 = offset_of!(ArrayObj, cap) as u64;
/// Offset of a dict's entries array reference.
pub(crate) const D_ENTRIES: u64 = offset_of!(DictObj, entries) as u64;
const D_INDEX: u64 = offset_of!(DictObj, index) as u64;

/// A dict key reduced to what decides equality (LANGUAGE.md: `1`, `1.0`, `True` are one key).
#[derive(PartialEq, Debug)]
pub enum KeyRef<'a> {
    /// An int, bool or integral float.
    Int(i64),
    /// Any other float, by bits.
    Float(u64),
    /// A str's bytes.
    Str(&'a [u8]),
    /// None.
    None,
}

impl Runtime {
    /// Address of the byte `off` of the segment.
    #[inline]
    pub fn addr(&self, off: u64) -> *mut u8 {
        (self.seg_base + off) as *mut u8
    }

    /// Loads the word at `r + off`.
    #[inline]
    pub fn ld(&self, r: u64, off: u64) -> u64 {
        // SAFETY: r is a live object of our segment and off inside it (callers' invariant).
        unsafe { *(self.addr(r + off) as *const u64) }
    }

    /// Stores the word at `r + off` (after the write barrier, or into a new object).
    #[inline]
    pub fn st(&self, r: u64, off: u64, v: u64) {
        // SAFETY: as ld.
        unsafe { *(self.addr(r + off) as *mut u64) = v }
    }

    /// The segment's read version.
    #[inline]
    pub fn rv(&self) -> u8 {
        // SAFETY: the segment-info page is mapped in every transaction segment.
        unsafe { *self.addr(INFO_OFFSET + offset_of!(SegmentInfo, read_version) as u64) }
    }

    /// Read barrier of a non-carded object (or of a carded one's header).
    #[inline]
    pub fn rb(&self, r: u64) {
        // SAFETY: the marker of an object-space address lies in the mapped marker area.
        unsafe { *self.addr(r >> MARKER_SHIFT) = self.rv() }
    }

    /// Write barrier of a non-carded object.
    #[inline]
    pub fn wb(&self, r: u64) -> R<()> {
        // SAFETY: r is a live object; its flags byte is mapped.
        if unsafe { *self.addr(r + FLAGS_OFFSET) } & WRITE_BARRIER_FLAG != 0 {
            self.note_site();
            // SAFETY: th is this thread's handle; %gs points at its segment.
            if unsafe { stmjit_write_barrier_slow(self.th, r) } != STATUS_OK {
                return Err(Unwind::Aborted);
            }
        }
        Ok(())
    }

    /// Write barrier of the element at `r + off` of a card-marked array: as JIT code does
    /// it, the slow path only if the array's flag is set and the card was not written yet
    /// in this transaction (its card marker is not the read version).
    #[inline]
    pub fn wb_elem(&self, r: u64, off: u64) -> R<()> {
        let card_marker = ((r + off) >> MARKER_SHIFT) + self.stm.layout().card_marker_disp;
        // SAFETY: as wb; the card marker of an object-space address lies in the mapped
        // marker area.
        if unsafe { *self.addr(r + FLAGS_OFFSET) } & WRITE_BARRIER_FLAG != 0
            && unsafe { *self.addr(card_marker) } != self.rv()
        {
            self.note_site();
            // SAFETY: th is this thread's handle; %gs points at its segment.
            if unsafe { stmjit_write_card_slow(self.th, r, off) } != STATUS_OK {
                return Err(Unwind::Aborted);
            }
        }
        Ok(())
    }

    /// Passes the site of the JIT operation in progress to the runtime (a write barrier slow
    /// path follows: a conflict on this write names it).
    #[cold]
    fn note_site(&self) {
        // SAFETY: ctx is null or this thread's live context; th is this thread's handle.
        if let Some(c) = unsafe { self.ctx.as_ref() } {
            unsafe { (*self.th).set_site(c.site as u32) };
        }
    }

    /// The type id of `w` if it is a reference.
    #[inline]
    pub fn type_of(&self, w: Word) -> Option<u32> {
        if is_ref(w) {
            // SAFETY: w is a live object; the header is immutable after allocation.
            Some(unsafe { *(self.addr(w + TYPE_ID_OFFSET) as *const u32) })
        } else {
            None
        }
    }

    /// Whether `w` is an object of type `t`.
    #[inline]
    pub fn is(&self, w: Word, t: stmjit_runtime::TypeId) -> bool {
        self.type_of(w) == Some(t.0)
    }

    /// Allocates a zeroed object (a MemoryError when the heap is exhausted).
    pub fn alloc(&mut self, t: stmjit_runtime::TypeId, size: u64) -> R<u64> {
        self.heap_check(size, 1)?;
        // The nursery bump of the runtime's protocol (`nursery` module docs), as JIT code
        // does it inline: small objects only; the slow path when the nursery is full (or a
        // request zeroed `nursery_end`).
        let rounded = size.max(16).div_ceil(16) * 16;
        if rounded <= 1024 {
            if let Some(r) = self.bump(rounded) {
                // SAFETY: the header word of the object just bumped, in our segment.
                unsafe { *(self.addr(r) as *mut u64) = young_header(t) };
                return Ok(r);
            }
        }
        // SAFETY: th is this thread's handle, in a transaction on its segment.
        let r = unsafe { stmjit_alloc(self.th, t.0, size) };
        if r == 0 {
            return Err(Unwind::Aborted);
        }
        Ok(r)
    }

    /// Two small zeroed objects (types and sizes `a`, `b`) in one nursery bump, the second
    /// right after the first; None when they do not fit in the nursery's rest (allocate
    /// them one by one then). Why: an instance and its slots array are allocated together
    /// at every class call, and one bump halves the cost.
    pub fn alloc_pair(
        &mut self,
        a: (stmjit_runtime::TypeId, u64),
        b: (stmjit_runtime::TypeId, u64),
    ) -> R<Option<(u64, u64)>> {
        let ra = a.1.max(16).div_ceil(16) * 16;
        let rb = b.1.max(16).div_ceil(16) * 16;
        if ra + rb > 1024 {
            return Ok(None);
        }
        self.heap_check(ra + rb, 2)?;
        let Some(r) = self.bump(ra + rb) else {
            return Ok(None);
        };
        // SAFETY: the header words of the two objects just bumped, in our segment.
        unsafe {
            *(self.addr(r) as *mut u64) = young_header(a.0);
            *(self.addr(r + ra) as *mut u64) = young_header(b.0);
        }
        Ok(Some((r, r + ra)))
    }

    /// The nursery bump of `rounded` bytes (a multiple of 16), None when the nursery is
    /// full (or a request zeroed `nursery_end`): the start of the zeroed bytes, headers
    /// not written.
    #[inline]
    fn bump(&mut self, rounded: u64) -> Option<u64> {
        let cur_p =
            self.addr(INFO_OFFSET + offset_of!(SegmentInfo, nursery_current) as u64) as *mut u64;
        let end_p =
            self.addr(INFO_OFFSET + offset_of!(SegmentInfo, nursery_end) as u64) as *mut u64;
        // SAFETY: the segment-info page of our segment; only this thread bumps
        // `nursery_current`; `nursery_end` may be zeroed by another thread (read once,
        // volatile).
        unsafe {
            let r = std::ptr::read_volatile(cur_p);
            if r + rounded <= std::ptr::read_volatile(end_p) {
                *cur_p = r + rounded;
                return Some(r);
            }
        }
        None
    }

    /// Counts `n` allocations of `size` bytes in all against the heap limit: the old space
    /// must keep room for them and for a full nursery's survivors (the runtime panics when
    /// it is exhausted): checked for every big object and every 256th small one (small
    /// ones go to the nursery first).
    #[inline]
    fn heap_check(&mut self, size: u64, n: u64) -> R<()> {
        self.allocs_unchecked += n;
        if size > 4096 || self.allocs_unchecked >= 256 {
            self.allocs_unchecked = 0;
            let l = self.stm.layout();
            let nursery = l.nursery_end - l.nursery_start;
            let used = self.stm.old_pages_in_use() * stmjit_runtime::PAGE_SIZE;
            if size > self.info.heap_limit || used + size + nursery > self.info.heap_limit {
                return Err(exc(ErrorKind::MemoryError, "out of memory"));
            }
        }
        Ok(())
    }

    // ----- str -----

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

    // ----- float -----

    /// A new float box.
    pub fn new_float(&mut self, f: f64) -> R<Word> {
        let r = self.alloc(self.types.float, std::mem::size_of::<FloatObj>() as u64)?;
        self.st(r, offset_of!(FloatObj, value) as u64, f.to_bits());
        Ok(r)
    }

    /// The value of a float box (immutable: no read barrier).
    pub fn float_of(&self, w: Word) -> f64 {
        f64::from_bits(self.ld(w, offset_of!(FloatObj, value) as u64))
    }

    // ----- arrays -----

    /// A new array of `cap` words, all `fill`.
    pub fn new_array(&mut self, carded: bool, cap: u64, fill: Word) -> R<Word> {
        let t = if carded {
            self.types.carded_array
        } else {
            self.types.array
        };
        self.new_array_of(t, cap, fill)
    }

    /// A new array of type `t` (one of the array types) of `cap` words, all `fill`.
    pub fn new_array_of(&mut self, t: stmjit_runtime::TypeId, cap: u64, fill: Word) -> R<Word> {
        let r = self.alloc(t, array_size(cap))?;
        self.init_array(r, cap, fill);
        Ok(r)
    }

    /// Sets the capacity of new (zeroed) array `r` and fills its `cap` words with `fill`.
    pub fn init_array(&self, r: Word, cap: u64, fill: Word) {
        self.st(r, ARR_CAP, cap);
        if fill != 0 {
            for i in 0..cap {
                self.st(r, ARRAY_DATA + 8 * i, fill);
            }
        }
    }

    /// Capacity of an array (immutable).
    pub fn arr_cap(&self, a: Word) -> u64 {
        self.ld(a, ARR_CAP)
    }

    /// Element `i` of a card-marked array, with the element's read barrier.
    #[inline]
    pub fn carr_get(&self, a: Word, i: u64) -> Word {
        let off = ARRAY_DATA + 8 * i;
        self.rb(a + off);
        self.ld(a, off)
    }

    /// Stores element `i` of a card-marked array, with the card write barrier.
    #[inline]
    pub fn carr_set(&self, a: Word, i: u64, v: Word) -> R<()> {
        let off = ARRAY_DATA + 8 * i;
        self.wb_elem(a, off)?;
        self.st(a, off, v);
        Ok(())
    }

    // ----- list -----

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
        let roots: Vec<(super::Root, u64, u64)> = parts
            .iter()
            .map(|&(l, lo, hi)| (self.root(l), lo, hi))
            .collect();
        let per: u64 = parts.iter().map(|&(_, lo, hi)| hi - lo).sum();
        let total = per
            .checked_mul(times)
            .filter(|&t| t <= self.info.heap_limit / 8)
            .ok_or_else(|| exc(ErrorKind::MemoryError, "sequence too large"))?;
        let arr = self.new_array(true, total.max(4), 0)?;
        let ra = self.root(arr);
        let l = self.alloc(self.types.list, std::mem::size_of::<ListObj>() as u64)?;
        let arr = self.get(ra);
        self.wb(arr)?;
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
        self.st(l, LIST_LEN, total);
        self.st(l, LIST_ITEMS, arr);
        self.release(m);
        Ok(l)
    }

    /// A new list of the keys of a dict, in order (copied after the allocations).
    pub fn dict_keys_list(&mut self, d: Word) -> R<Word> {
        let m = self.mark();
        let rd = self.root(d);
        let n = self.dict_len(d);
        let arr = self.new_array(true, n.max(4), 0)?;
        let ra = self.root(arr);
        let l = self.alloc(self.types.list, std::mem::size_of::<ListObj>() as u64)?;
        let (d, arr) = (self.get(rd), self.get(ra));
        self.wb(arr)?;
        for (k, (key, _)) in self.dict_items(d).into_iter().enumerate() {
            self.st(arr, ARRAY_DATA + 8 * k as u64, key);
        }
        self.st(l, LIST_LEN, n);
        self.st(l, LIST_ITEMS, arr);
        self.release(m);
        Ok(l)
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
        let mut arr = self.ld(l, LIST_ITEMS);
        {
            for i in 0..len {
                let w = self.carr_get(arr, i);
                self.st(new, ARRAY_DATA + 8 * i, w);
            }
            self.wb(l)?;
            self.st(l, LIST_ITEMS, new);
            arr = new;
        }
        self.carr_set(arr, len, v)?;
        self.wb(l)?;
        self.st(l, LIST_LEN, len + 1);
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

    /// All items of a list.
    pub fn list_items(&self, l: Word) -> Vec<Word> {
        let n = self.list_len(l);
        (0..n).map(|i| self.list_get(l, i)).collect()
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

    // ----- dict tables -----
    //
    // The dict's own table, as committed plus what this transaction wrote into it. New keys
    // inserted into a dict committed before the running transaction wait in the thread's
    // overlay until commit (`dict_overlay.rs`): the `dict_*` operations there combine both.

    /// A new empty dict.
    pub fn new_dict(&mut self) -> R<Word> {
        let m = self.mark();
        let d = self.alloc(self.types.dict, std::mem::size_of::<DictObj>() as u64)?;
        let rd = self.root(d);
        let entries = self.new_dict_entries(4)?;
        let re = self.root(entries);
        let index = self.new_array_of(self.types.dict_array, 8, 0)?;
        let (d, entries) = (self.get(rd), self.get(re));
        self.release(m);
        // Allocating the arrays may have promoted the dict.
        self.wb(d)?;
        self.st(d, D_ENTRIES, entries);
        self.st(d, D_INDEX, index);
        Ok(d)
    }

    /// A new entries array with room for `cap` entries and zero counts.
    fn new_dict_entries(&mut self, cap: u64) -> R<Word> {
        let entries = self.new_array_of(self.types.dict_array, DICT_FIRST_ENTRY + 2 * cap, 0)?;
        let zero = value::from_int(0).unwrap();
        self.st(entries, ARRAY_DATA + 8 * DICT_LEN, zero);
        self.st(entries, ARRAY_DATA + 8 * DICT_USED, zero);
        Ok(entries)
    }

    /// The equality class of a key, or a TypeError for unhashable values.
    pub fn key_of<'a>(&self, k: Word) -> R<KeyRef<'a>> {
        Ok(if is_int(k) {
            KeyRef::Int(value::to_int(k))
        } else if k == TRUE || k == FALSE {
            KeyRef::Int((k == TRUE) as i64)
        } else if k == NONE {
            KeyRef::None
        } else if self.is(k, self.types.str) {
            KeyRef::Str(self.str_of(k).as_bytes())
        } else if self.is(k, self.types.float) {
            let f = self.float_of(k);
            if f.fract() == 0.0 && f.abs() < 9.2e18 {
                KeyRef::Int(f as i64)
            } else {
                KeyRef::Float(f.to_bits())
            }
        } else {
            return Err(exc(
                ErrorKind::TypeError,
                format!("unhashable type: '{}'", self.type_name(k)),
            ));
        })
    }

    /// The hash of a key. Ints hash to themselves, as in CPython: consecutive keys take
    /// neighbouring index slots (a scattering hash made every lookup of `d[i]` in a loop
    /// over `i` two cache misses); the probe sequence's perturbation spreads patterned keys
    /// (`table_find`).
    fn key_hash(k: &KeyRef) -> u64 {
        let mix = |x: u64| (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        match k {
            KeyRef::Int(i) => *i as u64,
            KeyRef::Float(b) => mix(*b ^ 0x5555),
            KeyRef::None => 0x1234_5678,
            KeyRef::Str(s) => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in s.iter() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                mix(h)
            }
        }
    }

    /// Word index of entry `e`'s key in the entries array (its value follows).
    #[inline]
    fn entry_word(e: u64) -> u64 {
        DICT_FIRST_ENTRY + 2 * e
    }

    /// The counts of a dict's entries array, `(len, used)`, read with the counts card's
    /// read barrier.
    fn dict_counts(&self, entries: Word) -> (u64, u64) {
        self.rb(entries + ARRAY_DATA);
        let word = |i: u64| value::to_int(self.ld(entries, ARRAY_DATA + 8 * i)) as u64;
        (word(DICT_LEN), word(DICT_USED))
    }

    /// Sets the counts of a dict's entries array, with the counts card's write barrier.
    fn set_dict_counts(&self, entries: Word, len: u64, used: u64) -> R<()> {
        self.wb_elem(entries, ARRAY_DATA)?;
        // Counts are far below 2^62: always representable as tagged ints.
        self.st(entries, ARRAY_DATA + 8 * DICT_LEN, (len << 1) | 1);
        self.st(entries, ARRAY_DATA + 8 * DICT_USED, (used << 1) | 1);
        Ok(())
    }

    /// Finds `k` in the table: `(Some(entry), slot)` or `(None, free index slot)`.
    ///
    /// The probe sequence is CPython's: `i = 5i + 1 + perturb` with `perturb` the hash
    /// shifted right by 5 more bits each step, so keys equal in their low bits (multiples
    /// of a power of two) part after a few probes, and every slot is reached once `perturb`
    /// is 0 (`5i + 1` cycles through all slots of a power-of-two table).
    fn table_find(&self, d: Word, k: &KeyRef) -> (Option<u64>, u64) {
        self.rb(d);
        let entries = self.ld(d, D_ENTRIES);
        let index = self.ld(d, D_INDEX);
        let mask = self.arr_cap(index) - 1;
        let h = Self::key_hash(k);
        let mut perturb = h;
        let mut i = h & mask;
        loop {
            let slot = self.carr_get(index, i);
            if slot == 0 {
                return (None, i);
            }
            let e = (value::to_int(slot) - 1) as u64;
            let key = self.carr_get(entries, Self::entry_word(e));
            let same = match k {
                // An int key stored as an int: compared without building its KeyRef.
                KeyRef::Int(x) if is_int(key) => value::to_int(key) == *x,
                // A stored key is always hashable.
                _ => key != TOMBSTONE && self.key_of(key).is_ok_and(|kk| &kk == k),
            };
            if same {
                return (Some(e), i);
            }
            perturb >>= 5;
            i = (i.wrapping_mul(5).wrapping_add(1).wrapping_add(perturb)) & mask;
        }
    }

    /// The table's value of `k`, if present.
    pub(crate) fn table_get(&self, d: Word, k: &KeyRef) -> Option<Word> {
        let (e, _) = self.table_find(d, k);
        e.map(|e| {
            let entries = self.ld(d, D_ENTRIES);
            self.carr_get(entries, Self::entry_word(e) + 1)
        })
    }

    /// Number of live entries of the table.
    pub(crate) fn table_len(&self, d: Word) -> u64 {
        self.rb(d);
        self.dict_counts(self.ld(d, D_ENTRIES)).0
    }

    /// Replaces the value of `k` if the table holds it (`None`); else the free index slot
    /// where `k` would go, for [`Runtime::table_insert`].
    pub(crate) fn table_replace(&mut self, d: Word, k: &KeyRef, v: Word) -> R<Option<u64>> {
        let (e, slot) = self.table_find(d, k);
        let Some(e) = e else { return Ok(Some(slot)) };
        let entries = self.ld(d, D_ENTRIES);
        self.carr_set(entries, Self::entry_word(e) + 1, v)?;
        Ok(None)
    }

    /// `d[k] = v` in the table itself.
    ///
    /// Insertion ([`Runtime::table_insert`]): the counts card's write barrier comes first, before any count is read: two
    /// transactions inserting at once then queue on that card's lock (the younger waits for
    /// the older's commit and reads the counts it left) instead of both reading the counts
    /// and one being aborted by the other's commit.
    pub(crate) fn table_set(&mut self, d: Word, k: Word, v: Word) -> R<()> {
        let key = self.key_of(k)?;
        match self.table_replace(d, &key, v)? {
            None => Ok(()),
            Some(slot) => self.table_insert(d, k, v, Some(slot)),
        }
    }

    /// Appends the new key `k` (absent from the table) with its value `v`, into the free
    /// index `slot` if the caller's probe found it (`None`: probe again).
    ///
    /// A slot found before this transaction waited for the counts card's lock stays valid:
    /// an insertion committed meanwhile into that slot wrote an index card our probe read,
    /// and a growth wrote the dict object it read, so either dooms us (and the barrier
    /// reports the abort) before we use the slot.
    pub(crate) fn table_insert(&mut self, d: Word, k: Word, v: Word, slot: Option<u64>) -> R<()> {
        let entries = self.ld(d, D_ENTRIES);
        self.wb_elem(entries, ARRAY_DATA + 8 * DICT_LEN)?;
        let (_, used) = self.dict_counts(entries);
        let (mut d, mut k, mut v, mut slot) = (d, k, v, slot);
        if Self::entry_word(used) == self.arr_cap(entries) {
            let m = self.mark();
            let (rd, rk, rv) = (self.root(d), self.root(k), self.root(v));
            self.table_rebuild(d)?;
            (d, k, v) = (self.get(rd), self.get(rk), self.get(rv));
            self.release(m);
            slot = None;
        }
        let slot = match slot {
            Some(slot) => slot,
            None => self.table_find(d, &self.key_of(k)?).1,
        };
        let entries = self.ld(d, D_ENTRIES);
        let index = self.ld(d, D_INDEX);
        let (len, used) = self.dict_counts(entries);
        self.carr_set(entries, Self::entry_word(used), k)?;
        self.carr_set(entries, Self::entry_word(used) + 1, v)?;
        self.carr_set(index, slot, value::from_int(used as i64 + 1).unwrap())?;
        self.set_dict_counts(entries, len + 1, used + 1)
    }

    /// Compacts the live entries into fresh arrays with room to grow.
    fn table_rebuild(&mut self, d: Word) -> R<()> {
        let items = self.table_items(d);
        let mut cap = 4u64;
        while cap < 2 * items.len() as u64 + 2 {
            cap *= 2;
        }
        let m = self.mark();
        let rd = self.root(d);
        let held = self.hold_pairs(&items)?;
        let entries = self.new_dict_entries(cap)?;
        let re = self.root(entries);
        let index = self.new_array_of(self.types.dict_array, 2 * cap, 0)?;
        let (d, entries) = (self.get(rd), self.get(re));
        let items: Vec<(Word, Word)> = held
            .iter()
            .map(|&(k, v)| (self.held(k), self.held(v)))
            .collect();
        self.release(m);
        self.wb(d)?;
        self.st(d, D_ENTRIES, entries);
        self.st(d, D_INDEX, index);
        for (k, v) in items {
            self.table_insert(d, k, v, None)?;
        }
        Ok(())
    }

    /// Holds the `(key, value)` pairs of a dict across allocations (see
    /// [`Runtime::hold_all`]).
    pub(crate) fn hold_pairs(&self, pairs: &[(Word, Word)]) -> R<Vec<(Held, Held)>> {
        let flat: Vec<Word> = pairs.iter().flat_map(|&(k, v)| [k, v]).collect();
        let held = self.hold_all(&flat)?;
        Ok(held.chunks(2).map(|kv| (kv[0], kv[1])).collect())
    }

    /// Entry `e` of the table, if `e` is below its used count: its key (`None` if deleted)
    /// and value.
    pub(crate) fn table_entry(&self, d: Word, e: u64) -> Option<(Option<Word>, Word)> {
        self.rb(d);
        let entries = self.ld(d, D_ENTRIES);
        if e >= self.dict_counts(entries).1 {
            return None;
        }
        let k = self.carr_get(entries, Self::entry_word(e));
        let v = self.carr_get(entries, Self::entry_word(e) + 1);
        Some(((k != TOMBSTONE).then_some(k), v))
    }

    /// Removes `k` from the table, returning its value if it was there.
    pub(crate) fn table_del(&mut self, d: Word, k: &KeyRef) -> R<Option<Word>> {
        let (e, _) = self.table_find(d, k);
        let Some(e) = e else { return Ok(None) };
        let entries = self.ld(d, D_ENTRIES);
        let v = self.carr_get(entries, Self::entry_word(e) + 1);
        self.carr_set(entries, Self::entry_word(e), TOMBSTONE)?;
        self.carr_set(entries, Self::entry_word(e) + 1, NONE)?;
        let (len, used) = self.dict_counts(entries);
        self.set_dict_counts(entries, len - 1, used)?;
        Ok(Some(v))
    }

    /// Live `(key, value)` pairs of the table, in insertion order.
    pub(crate) fn table_items(&self, d: Word) -> Vec<(Word, Word)> {
        self.rb(d);
        let entries = self.ld(d, D_ENTRIES);
        let (_, used) = self.dict_counts(entries);
        let mut out = Vec::new();
        for e in 0..used {
            let k = self.carr_get(entries, Self::entry_word(e));
            if k != TOMBSTONE {
                out.push((k, self.carr_get(entries, Self::entry_word(e) + 1)));
            }
        }
        out
    }

    // ----- instances -----

    /// Slot `i` of an instance, or [`UNBOUND`].
    pub fn inst_slot(&self, o: Word, i: usize) -> Word {
        self.rb(o);
        let slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        if slots == 0 || i as u64 >= self.arr_cap(slots) {
            return UNBOUND;
        }
        self.rb(slots);
        self.ld(slots, ARRAY_DATA + 8 * i as u64)
    }

    /// Stores slot `i` of an instance (growing its slots array).
    pub fn set_inst_slot(&mut self, o: Word, i: usize, v: Word) -> R<()> {
        self.rb(o);
        let mut slots = self.ld(o, offset_of!(InstanceObj, slots) as u64);
        let cap = if slots == 0 { 0 } else { self.arr_cap(slots) };
        let (mut o, mut v) = (o, v);
        if i as u64 >= cap {
            let m = self.mark();
            let (ro, rv, rs) = (self.root(o), self.root(v), self.root(slots));
            let new = self.new_array(false, (i as u64 + 1).max(cap * 2).max(4), UNBOUND)?;
            (o, v, slots) = (self.get(ro), self.get(rv), self.get(rs));
            self.release(m);
            for j in 0..cap {
                self.rb(slots);
                let w = self.ld(slots, ARRAY_DATA + 8 * j);
                self.st(new, ARRAY_DATA + 8 * j, w);
            }
            self.wb(o)?;
            self.st(o, offset_of!(InstanceObj, slots) as u64, new);
            slots = new;
        }
        self.wb(slots)?;
        self.st(slots, ARRAY_DATA + 8 * i as u64, v);
        Ok(())
    }

    /// The class name of an instance or class object.
    pub fn class_name(&self, cls: Word) -> String {
        let id = self.ld(cls, offset_of!(ClassObj, class_id) as u64) as usize;
        self.info.classes.read()[id].name.clone()
    }

    /// Python's type name of a value, as used in error messages.
    pub fn type_name(&self, w: Word) -> String {
        if is_int(w) {
            return "int".into();
        }
        match w {
            NONE => return "NoneType".into(),
            TRUE | FALSE => return "bool".into(),
            _ => {}
        }
        let t = &self.types;
        let ty = self.type_of(w).unwrap_or(u32::MAX);
        if ty == t.str.0 {
            "str"
        } else if ty == t.float.0 {
            "float"
        } else if ty == t.list.0 {
            "list"
        } else if ty == t.dict.0 {
            "dict"
        } else if ty == t.instance.0 {
            self.rb(w);
            return self.class_name(self.ld(w, offset_of!(InstanceObj, class) as u64));
        } else if ty == t.class.0 {
            "type"
        } else if ty == t.function.0 {
            "function"
        } else if ty == t.bound_method.0 {
            "method"
        } else if ty == t.builtin.0 {
            "builtin_function_or_method"
        } else if ty == t.range.0 {
            "range"
        } else if ty == t.opaque.0 {
            match self.ld(w, offset_of!(OpaqueObj, kind) as u64) {
                OPAQUE_THREAD => "Thread",
                OPAQUE_LOCK => "Lock",
                _ => "TransactionQueue",
            }
        } else {
            "object"
        }
        .into()
    }

    /// Python truthiness.
    pub fn truthy(&self, w: Word) -> bool {
        if is_int(w) {
            return w != 1;
        }
        match w {
            NONE | FALSE => return false,
            TRUE => return true,
            _ => {}
        }
        let t = &self.types;
        match self.type_of(w) {
            Some(ty) if ty == t.str.0 => self.ld(w, offset_of!(StrObj, len) as u64) != 0,
            Some(ty) if ty == t.float.0 => self.float_of(w) != 0.0,
            Some(ty) if ty == t.list.0 => self.list_len(w) != 0,
            Some(ty) if ty == t.dict.0 => self.dict_len(w) != 0,
            Some(ty) if ty == t.range.0 => {
                let (a, b, s) = self.range_of(w);
                stmjit_lang::value::range_len(a, b, s) > 0
            }
            _ => true,
        }
    }

    /// `(start, stop, step)` of a range object (immutable).
    pub fn range_of(&self, w: Word) -> (i64, i64, i64) {
        (
            self.ld(w, offset_of!(RangeObj, start) as u64) as i64,
            self.ld(w, offset_of!(RangeObj, stop) as u64) as i64,
            self.ld(w, offset_of!(RangeObj, step) as u64) as i64,
        )
    }
}
