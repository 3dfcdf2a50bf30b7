//! Tagged values: the 64-bit words that JIT code, shadow-stack slots and container fields hold.
//!
//! One word says what it is by its low bits, so that the GC can find references in any slot
//! (shadow stack, list items, instance fields) without a per-slot type map, and so that small
//! integers need no allocation:
//!
//! | word | meaning |
//! |---|---|
//! | `n << 1 \| 1` | the int `n` (63 bits: −2^62 … 2^62−1, LANGUAGE.md) |
//! | even, `< IMMEDIATE_LIMIT` | an immediate: [`NONE`], [`FALSE`], [`TRUE`] (inside the no-access null page, so never an object) |
//! | even, `>= IMMEDIATE_LIMIT` | a reference ([`crate::Ref`]): an object's segment offset, 16-byte aligned |
//!
//! `NONE` is 0 so that zero-initialised fields and slots read as `None` and are not roots.

/// A tagged value.
pub type Word = u64;

/// The tag bit of ints.
pub const INT_TAG: Word = 1;
/// `None`. Zero, so that fresh memory holds `None`.
pub const NONE: Word = 0;
/// `False`.
pub const FALSE: Word = 2;
/// `True`.
pub const TRUE: Word = 6;
/// Even words below this are immediates, never references (it is the size of the no-access
/// null page at the start of every segment).
pub const IMMEDIATE_LIMIT: Word = crate::layout::PAGE_SIZE;
/// Smallest int a word can hold (−2^62).
pub const INT_MIN: i64 = -(1 << 62);
/// Largest int a word can hold (2^62 − 1).
pub const INT_MAX: i64 = (1 << 62) - 1;

/// Whether `w` is an int.
#[inline]
pub fn is_int(w: Word) -> bool {
    w & INT_TAG != 0
}

/// Whether `w` is a reference the GC must trace (and may move).
#[inline]
pub fn is_ref(w: Word) -> bool {
    w & INT_TAG == 0 && w >= IMMEDIATE_LIMIT
}

/// The word of the int `n`, or `None` if `n` is outside the 63-bit range (an `OverflowError`).
#[inline]
pub fn from_int(n: i64) -> Option<Word> {
    (INT_MIN..=INT_MAX)
        .contains(&n)
        .then_some(((n << 1) as u64) | INT_TAG)
}

/// The int held by `w` (which must satisfy [`is_int`]).
#[inline]
pub fn to_int(w: Word) -> i64 {
    debug_assert!(is_int(w));
    (w as i64) >> 1
}

/// The word of a bool.
#[inline]
pub fn from_bool(b: bool) -> Word {
    if b {
        TRUE
    } else {
        FALSE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_round_trip_at_the_edges_and_overflow_outside() {
        for n in [0, 1, -1, 42, INT_MIN, INT_MAX] {
            let w = from_int(n).unwrap();
            assert!(is_int(w) && !is_ref(w));
            assert_eq!(to_int(w), n);
        }
        assert_eq!(from_int(INT_MAX + 1), None);
        assert_eq!(from_int(INT_MIN - 1), None);
    }

    #[test]
    fn immediates_are_neither_ints_nor_refs() {
        for w in [NONE, FALSE, TRUE] {
            assert!(!is_int(w) && !is_ref(w));
        }
        assert!(is_ref(IMMEDIATE_LIMIT) && is_ref(1 << 30));
        assert_ne!(from_bool(true), from_bool(false));
    }
}
