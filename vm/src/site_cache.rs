//! Polymorphic inline caches of attribute and method-call sites.
//!
//! Why: one call site often sees several classes (`t.runnable()` over a list of tasks of
//! different subclasses). A cache of one entry misses on every change of class there, and
//! each miss runs a helper that looks the class up again. [`WAYS`] entries per site keep
//! such sites on the inline path.
//!
//! Each entry is one word, `payload << 32 | class id` (the payload an attribute slot index,
//! or the function id of a method), so a thread filling an entry while another reads it
//! never leaves a torn pair: JIT code reads each entry with one aligned load. JIT code
//! compares the entries in order, the first one inline right after the class id load; the
//! others on out-of-line blocks (see `compile::sites`). The class id in the low half lets
//! that compare be a 32-bit `cmp` of the loaded word's low half (no shift), and the payload
//! is one shift.

/// The class id of entry word `w`.
fn class_of(w: u64) -> u64 {
    w & 0xffff_ffff
}

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Entries per site.
pub const WAYS: usize = 4;

/// An unused entry: its class id (`u32::MAX`, the low half) matches no class.
pub const EMPTY: u64 = u64::MAX;

/// A class id that no entry holds, not even an empty one: JIT code probes with it for a
/// local whose class it does not know (see `compile::sites` in the JIT).
pub const NO_CLASS: u32 = u32::MAX - 1;

/// The entries of one site. Boxed by its owner: JIT code embeds its address.
#[repr(C, align(32))]
#[derive(Debug)]
pub struct SiteCache(pub [AtomicU64; WAYS]);

impl Default for SiteCache {
    fn default() -> SiteCache {
        SiteCache(std::array::from_fn(|_| AtomicU64::new(EMPTY)))
    }
}

impl SiteCache {
    /// The payload cached for class `class_id`, if any.
    pub fn get(&self, class_id: u64) -> Option<u64> {
        self.0.iter().find_map(|e| {
            let w = e.load(Relaxed);
            (class_of(w) == class_id).then_some(w >> 32)
        })
    }

    /// Whether [`SiteCache::insert`] would store anything: an entry is empty or has
    /// `class_id`.
    pub fn has_room(&self, class_id: u64) -> bool {
        self.0.iter().any(|e| {
            let w = e.load(Relaxed);
            w == EMPTY || class_of(w) == class_id
        })
    }

    /// Caches `payload` for `class_id`: in its existing entry, else in the first empty one.
    /// A full site keeps its entries: replacing one would make the threads that run a site
    /// of more classes than [`WAYS`] write its cache line in turn at every call, and it
    /// would miss as often.
    pub fn insert(&self, class_id: u64, payload: u64) {
        // A class id or payload past 32 bits is never cached: JIT code compares 32 bits;
        // nor is `NO_CLASS`.
        if class_id >= u64::from(NO_CLASS) || payload > u64::from(u32::MAX) {
            return;
        }
        let word = payload << 32 | class_id;
        for e in &self.0 {
            let w = e.load(Relaxed);
            if class_of(w) == class_id {
                if w != word {
                    e.store(word, Relaxed);
                }
                return;
            }
            // Another thread may fill this entry at the same time: the loser tries the next.
            if w == EMPTY && e.compare_exchange(EMPTY, word, Relaxed, Relaxed).is_ok() {
                return;
            }
        }
    }

    /// Empties every entry.
    pub fn clear(&self) {
        for e in &self.0 {
            e.store(EMPTY, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_fill_in_order_and_a_full_site_keeps_them() {
        let c = SiteCache::default();
        assert_eq!(c.get(3), None);
        for id in 0..WAYS as u64 {
            assert!(c.has_room(id));
            c.insert(id, 10 + id);
        }
        assert_eq!(c.get(0), Some(10));
        assert_eq!(c.get(WAYS as u64 - 1), Some(10 + WAYS as u64 - 1));
        assert!(!c.has_room(99));
        c.insert(99, 7);
        assert_eq!(c.get(99), None);
        assert_eq!(c.get(WAYS as u64 - 1), Some(10 + WAYS as u64 - 1));
        assert!(c.has_room(0));
        c.insert(0, 11);
        assert_eq!(c.get(0), Some(11));
        c.clear();
        assert_eq!(c.get(0), None);
        // Ids past 32 bits are not cached (JIT code compares the low halves).
        c.insert(1 << 32 | 5, 1);
        assert_eq!(c.get(5), None);
        assert_eq!(c.get(1 << 32 | 5), None);
        assert!(c.has_room(99));
    }
}
