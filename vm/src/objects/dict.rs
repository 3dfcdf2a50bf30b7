//! `dict`: entries in insertion order in a card-marked array of `(key, value)` pairs, one
//! 16-byte card per entry, and an open-addressing index in a second card-marked array (see
//! the module docs of `objects`). This file is the dict's own *table*, as committed plus
//! what the running transaction wrote into it; new keys of a dict committed before the
//! running transaction wait in the thread's overlay until commit (`dict_overlay.rs`), and
//! the `dict_*` operations there combine both.

use super::list::{LIST_ITEMS, LIST_LEN};
use super::*;
use crate::{exc, Held, Runtime, R, TOMBSTONE};
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::object::ObjectHeader;
use stmjit_runtime::value::{self, is_int, Word, FALSE, NONE, TRUE};

/// Offset of a dict's entries array reference.
pub(crate) const D_ENTRIES: u64 = offset_of!(DictObj, entries) as u64;
const D_INDEX: u64 = offset_of!(DictObj, index) as u64;

/// A dict: see the module docs.
#[repr(C)]
pub struct DictObj {
    /// Object header.
    pub header: ObjectHeader,
    /// Card-marked [`ArrayObj`] of `2 + 2 * capacity` words: the counts card ([`DICT_LEN`],
    /// [`DICT_USED`]), then key, value, key, value...
    pub entries: Word,
    /// Card-marked [`ArrayObj`] of index slots (a power of two): 0 = empty, else the tagged
    /// int `entry + 1`.
    pub index: Word,
}

/// Word index, in a dict's entries array, of its number of live entries (a tagged int).
pub const DICT_LEN: u64 = 0;

/// Word index, in a dict's entries array, of the number of entries used (live and deleted:
/// the next insertion position), a tagged int. Shares a card with [`DICT_LEN`].
pub const DICT_USED: u64 = 1;

/// Word index, in a dict's entries array, of the first entry's key.
pub const DICT_FIRST_ENTRY: u64 = 2;

/// 2^63 as a float: integral floats in [-2^63, 2^63) are keys of the equal i64.
const TWO_63: f64 = 9_223_372_036_854_775_808.0;

/// A dict key reduced to what decides equality (LANGUAGE.md: `1`, `1.0`, `True` are one key).
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum KeyRef<'a> {
    /// An int, bool or integral float.
    Int(i64),
    /// Any other float, by bits.
    Float(u64),
    /// A str's bytes.
    Str(&'a [u8]),
    /// An int outside the i64 range (or an integral float there), by its sign and 32-bit
    /// digits (no leading zeros).
    Big(bool, std::borrow::Cow<'a, [u32]>),
    /// None.
    None,
    /// A tuple, by its items' keys (a tuple is hashable when its items are).
    Tuple(Vec<KeyRef<'a>>),
    /// A frozenset, by its members' keys, sorted.
    FrozenSet(Vec<KeyRef<'a>>),
    /// An instance hashed by identity, by its identity number (`hashing.rs`).
    Ident(i64),
    /// An instance whose class defines `__hash__`: its stored hash and the instance itself,
    /// compared by identity (`hashing.rs` makes an equal key the one the table holds).
    Custom(i64, Word),
    /// A function (by its identity number, as [`KeyRef::Ident`]: the numbers of functions
    /// and instances are never the same), a class (by its class id) or a builtin function
    /// or type (by which one), from [`Runtime::identity_hash`].
    Class(i64),
    /// See [`KeyRef::Class`].
    Builtin(i64),
    /// A bound method, by its receiver's identity number (`Runtime::identity_number`:
    /// prepared keys have old receivers) and its function's identity number, as CPython
    /// compares them (`o.m == o.m`).
    Method(i128, i64),
    /// A builtin method (`xs.append`), by its receiver's identity number and its name id.
    BuiltinMethod(i128, u64),
    /// A range, by the keys of `stmjit_lang::ranges::key_parts` (equal ranges, one key).
    Range(Vec<KeyRef<'a>>),
    /// A Thread, Lock or TransactionQueue, by its identity number (prepared keys are old).
    Object(i128),
}

impl Runtime {
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
    /// A new empty dict.
    pub fn new_dict(&mut self) -> R<Word> {
        self.new_dict_of(self.types.dict)
    }
    /// A new empty dict-shaped object of type `ty` (a dict or a set).
    pub(crate) fn new_dict_of(&mut self, ty: TypeId) -> R<Word> {
        let m = self.mark();
        let d = self.alloc(ty, std::mem::size_of::<DictObj>() as u64)?;
        let rd = self.root(d);
        let arrays = self.arrays_type(ty);
        let entries = self.new_dict_entries(arrays, 4)?;
        let re = self.root(entries);
        let index = self.new_array_of(arrays, 8, 0)?;
        let (d, entries) = (self.get(rd), self.get(re));
        self.release(m);
        // Allocating the arrays may have promoted the dict.
        self.wb(d)?;
        self.st(d, D_ENTRIES, entries);
        self.st(d, D_INDEX, index);
        Ok(d)
    }
    /// The type of the arrays of a dict-shaped object of type `ty`: a set's say so in
    /// conflict reports.
    fn arrays_type(&self, ty: TypeId) -> TypeId {
        if ty.0 == self.types.set.0 || ty.0 == self.types.frozenset.0 {
            self.types.set_array
        } else {
            self.types.dict_array
        }
    }
    /// A new entries array of type `arrays` with room for `cap` entries and zero counts.
    fn new_dict_entries(&mut self, arrays: TypeId, cap: u64) -> R<Word> {
        let entries = self.new_array_of(arrays, DICT_FIRST_ENTRY + 2 * cap, 0)?;
        let zero = value::from_int(0).unwrap();
        self.st(entries, ARRAY_DATA + 8 * DICT_LEN, zero);
        self.st(entries, ARRAY_DATA + 8 * DICT_USED, zero);
        Ok(entries)
    }
    /// The equality class of a key, or a TypeError for unhashable values.
    pub fn key_of<'a>(&self, k: Word) -> R<KeyRef<'a>> {
        self.key_of_depth(k, 0)
    }
    fn key_of_depth<'a>(&self, k: Word, depth: usize) -> R<KeyRef<'a>> {
        Ok(if is_int(k) {
            KeyRef::Int(value::to_int(k))
        } else if k == TRUE || k == FALSE {
            KeyRef::Int((k == TRUE) as i64)
        } else if k == NONE {
            KeyRef::None
        } else if self.is(k, self.types.str) {
            KeyRef::Str(self.str_of(k).as_bytes())
        } else if self.is(k, self.types.instance) {
            let kind = self.hash_kind(k)?;
            if kind == crate::hashing::HashKind::Unhashable {
                return Err(exc(
                    ErrorKind::TypeError,
                    format!("unhashable type: '{}'", self.type_name(k)),
                ));
            }
            // Every key a table holds, and every key probed with, was prepared.
            let Some(h) = self.stored_hash(k) else {
                return Err(exc(
                    ErrorKind::RuntimeError,
                    "internal error: an instance key was not hashed",
                ));
            };
            if kind == crate::hashing::HashKind::Custom {
                KeyRef::Custom(h, k)
            } else {
                KeyRef::Ident(h)
            }
        } else if self.is(k, self.types.float) {
            let f = self.float_of(k);
            if f.fract() == 0.0 && (-TWO_63..TWO_63).contains(&f) {
                KeyRef::Int(f as i64)
            } else if f.fract() == 0.0 && f.is_finite() {
                match stmjit_lang::bigint::from_f64(f) {
                    stmjit_lang::value::Value::BigInt(b) => Self::big_key(&b),
                    _ => KeyRef::Float(f.to_bits()),
                }
            } else {
                KeyRef::Float(f.to_bits())
            }
        } else if self.is(k, self.types.frozenset) {
            if depth >= stmjit_lang::value::MAX_DATA_DEPTH {
                return Err(exc(
                    ErrorKind::RecursionError,
                    "maximum recursion depth exceeded while calling a Python object",
                ));
            }
            let mut keys = self
                .dict_items(k)
                .into_iter()
                .map(|(x, _)| self.key_of_depth(x, depth + 1))
                .collect::<R<Vec<_>>>()?;
            keys.sort();
            KeyRef::FrozenSet(keys)
        } else if self.is(k, self.types.bigint) {
            let (neg, digits) = self.bigint_digits(k);
            if digits.len() <= 2 {
                // Between 2^62 and 2^63: the key of the equal integral float.
                let m = digits.iter().rev().fold(0u64, |m, &d| (m << 32) | d as u64);
                match (neg, i64::try_from(m)) {
                    (false, Ok(i)) => KeyRef::Int(i),
                    (true, Ok(i)) => KeyRef::Int(-i),
                    (true, Err(_)) if m == 1 << 63 => KeyRef::Int(i64::MIN),
                    _ => KeyRef::Big(neg, std::borrow::Cow::Borrowed(digits)),
                }
            } else {
                KeyRef::Big(neg, std::borrow::Cow::Borrowed(digits))
            }
        } else if self.is(k, self.types.tuple) {
            if depth >= stmjit_lang::value::MAX_DATA_DEPTH {
                return Err(exc(
                    ErrorKind::RecursionError,
                    "maximum recursion depth exceeded while calling a Python object",
                ));
            }
            let items = self.tuple_items(k);
            KeyRef::Tuple(
                items
                    .into_iter()
                    .map(|x| self.key_of_depth(x, depth + 1))
                    .collect::<R<_>>()?,
            )
        } else if self.is(k, self.types.range) || self.is_big_range(k) {
            let v = self.to_value(k, &mut crate::convert::Memo::peek());
            let parts = stmjit_lang::ranges::key_parts(&v).expect("a range");
            KeyRef::Range(parts.iter().map(Self::key_of_number).collect())
        } else if self.is_identity_object(k) {
            let Some(n) = self.identity_number(k) else {
                return Err(exc(
                    ErrorKind::RuntimeError,
                    "internal error: an object key was not prepared",
                ));
            };
            KeyRef::Object(n)
        } else if let Some(recv) = self.method_receiver(k) {
            let Some(r) = self.identity_number(recv) else {
                return Err(exc(
                    ErrorKind::RuntimeError,
                    "internal error: a method key was not prepared",
                ));
            };
            self.rb(k);
            if self.is(k, self.types.bound_method) {
                let f = self.ld(k, offset_of!(BoundMethodObj, func) as u64);
                KeyRef::Method(r, self.identity_hash(f).unwrap_or(0))
            } else {
                KeyRef::BuiltinMethod(r, self.ld(k, offset_of!(BuiltinObj, which) as u64))
            }
        } else if let Some(h) = self.identity_hash(k) {
            let t = self.types;
            if self.is(k, t.function) {
                KeyRef::Ident(h)
            } else if self.is(k, t.class) {
                KeyRef::Class(h)
            } else {
                KeyRef::Builtin(h)
            }
        } else {
            return Err(exc(
                ErrorKind::TypeError,
                format!("unhashable type: '{}'", self.type_name(k)),
            ));
        })
    }
    /// The key of an int or `None` (a part of a range's key).
    fn key_of_number<'a>(v: &stmjit_lang::value::Value) -> KeyRef<'a> {
        use stmjit_lang::value::Value;
        match v {
            Value::Int(i) => KeyRef::Int(*i),
            Value::BigInt(b) => match i64::try_from(&**b) {
                Ok(i) => KeyRef::Int(i),
                Err(_) => Self::big_key(b),
            },
            _ => KeyRef::None,
        }
    }

    /// The key of an int outside the i64 range, by its sign and digits.
    fn big_key<'a>(b: &num_bigint::BigInt) -> KeyRef<'a> {
        KeyRef::Big(
            b.sign() == num_bigint::Sign::Minus,
            std::borrow::Cow::Owned(b.magnitude().to_u32_digits()),
        )
    }

    /// The hash of a key. Ints hash to themselves, as in CPython: consecutive keys take
    /// neighbouring index slots (a scattering hash made every lookup of `d[i]` in a loop
    /// over `i` two cache misses); the probe sequence's perturbation spreads patterned keys
    /// (`table_find`).
    pub(crate) fn key_hash(k: &KeyRef) -> u64 {
        let mix = |x: u64| (x ^ (x >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        match k {
            KeyRef::Int(i) => *i as u64,
            KeyRef::Float(b) => mix(*b ^ 0x5555),
            KeyRef::Big(neg, digits) => {
                let mut h: u64 = 0x9ae1_6a3b_2f90_404f ^ *neg as u64;
                for &d in digits.iter() {
                    h = mix(h ^ d as u64);
                }
                h
            }
            KeyRef::None => 0x1234_5678,
            KeyRef::Ident(i) => mix(*i as u64),
            KeyRef::Class(i) => mix(*i as u64 ^ 0xc1a5_5000),
            KeyRef::Builtin(i) => mix(*i as u64 ^ 0xb017_0000),
            KeyRef::Method(r, f) => mix((*r as u64 ^ (*r >> 64) as u64) ^ mix(*f as u64)),
            KeyRef::BuiltinMethod(r, w) => mix((*r as u64 ^ (*r >> 64) as u64) ^ mix(*w ^ 0x3e7d)),
            KeyRef::Object(r) => mix(*r as u64 ^ 0x0b1e_c700),
            KeyRef::Range(items) => {
                let mut h: u64 = 0x7a11_9e00 ^ items.len() as u64;
                for k in items {
                    h = mix(h.rotate_left(31) ^ Self::key_hash(k));
                }
                h
            }
            // As an int of the same hash (a probe finds the instance where `hash()` says).
            KeyRef::Custom(h, _) => *h as u64,
            KeyRef::Str(s) => {
                let mut h: u64 = 0xcbf2_9ce4_8422_2325;
                for &b in s.iter() {
                    h ^= b as u64;
                    h = h.wrapping_mul(0x0100_0000_01b3);
                }
                mix(h)
            }
            KeyRef::FrozenSet(items) => {
                // Sorted members: equal frozensets hash alike.
                let mut h: u64 = 0x6a09_e667_f3bc_c908 ^ items.len() as u64;
                for k in items {
                    h = mix(h.rotate_left(31) ^ Self::key_hash(k));
                }
                h
            }
            KeyRef::Tuple(items) => {
                let mut h: u64 = 0x2545_f491_4f6c_dd1d ^ items.len() as u64;
                for k in items {
                    h = mix(h.rotate_left(31) ^ Self::key_hash(k));
                }
                h
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
    /// The hash by which the table places key `k` (prepared).
    pub(crate) fn table_hash(&self, k: Word) -> R<u64> {
        Ok(Self::key_hash(&self.key_of(k)?))
    }
    /// The keys compared by `==` with the prepared key `k` (see `hashing.rs`): those along
    /// the probe sequence of `k`'s table hash `hash` in table `d` that have that same hash
    /// and hold an instance whose class defines `__hash__`, in order, up to `k` itself
    /// (true when met) or the end of the sequence; pushed onto `out`. Pure reads: no user
    /// code runs.
    pub(crate) fn table_custom_candidates(
        &self,
        d: Word,
        hash: u64,
        k: Word,
        out: &mut Vec<Word>,
    ) -> bool {
        self.rb(d);
        let entries = self.ld(d, D_ENTRIES);
        let index = self.ld(d, D_INDEX);
        let mask = self.arr_cap(index) - 1;
        let mut perturb = hash;
        let mut i = hash & mask;
        loop {
            let slot = self.carr_get(index, i);
            if slot == 0 {
                return false;
            }
            let e = (value::to_int(slot) - 1) as u64;
            let key = self.carr_get(entries, Self::entry_word(e));
            if key == k {
                return true;
            }
            if key != TOMBSTONE
                && self.is_custom_key(key)
                && self.table_hash(key).ok() == Some(hash)
            {
                out.push(key);
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
        let arrays = self.arrays_type(TypeId(self.type_of(d).expect("a dict is an object")));
        let m = self.mark();
        let rd = self.root(d);
        let held = self.hold_pairs(&items)?;
        let entries = self.new_dict_entries(arrays, cap)?;
        let re = self.root(entries);
        let index = self.new_array_of(arrays, 2 * cap, 0)?;
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
    /// `d.items()`: a new list of `(key, value)` tuples.
    pub(crate) fn dict_items_list(&mut self, d: Word) -> R<Word> {
        let m = self.mark();
        let held = self.hold_pairs(&self.dict_items(d))?;
        let out = self.new_list(&[])?;
        let ro = self.root(out);
        for &(k, v) in &held {
            let pair = self.new_tuple(&[self.held(k), self.held(v)])?;
            self.list_push(self.get(ro), pair)?;
        }
        let out = self.get(ro);
        self.release(m);
        Ok(out)
    }
    /// `d.copy()`: a new dict with the same items, in the same order.
    pub(crate) fn dict_copy(&mut self, d: Word) -> R<Word> {
        let m = self.mark();
        let held = self.hold_pairs(&self.dict_items(d))?;
        let copy = self.new_dict()?;
        let rc = self.root(copy);
        for &(k, v) in &held {
            self.dict_set_stored(self.get(rc), self.held(k), self.held(v))?;
        }
        let copy = self.get(rc);
        self.release(m);
        Ok(copy)
    }
}
