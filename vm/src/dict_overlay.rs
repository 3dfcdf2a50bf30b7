//! Dict operations, and inserting new keys into a shared dict without conflicts.
//!
//! A dict's table (`heap.rs`) lets transactions update *existing* keys without conflicts:
//! each entry is a card of its own. A new key, though, is appended at the next entry
//! position and counted in `len`: two transactions inserting different keys would both
//! write that position and the counts, and one of them would abort. Filling a shared dict
//! from several threads (`results[i] = f(i)`) is the common case DESIGN.md asks for.
//!
//! So a transaction does not write new keys into a dict committed before it began. It
//! keeps them in its *overlay*: a dict of its own per such dict, in insertion order, which
//! every operation of this module consults after the table. At commit
//! ([`Runtime::apply_dict_overlay`], called first thing by [`Runtime::commit`]) the pending
//! keys are inserted into the tables for real, as ordinary transactional writes, and the
//! commit follows at once. Serializability is kept by the read markers:
//! - a transaction that found `k` absent read the index cards of `k`'s probe, where any
//!   insertion of `k` writes; it is doomed if another commits `k` first;
//! - `len()` and iteration read the counts card, which every insertion writes;
//! - the table's growth rewrites the dict object, which every lookup reads.
//!
//! The insertions run in the runtime's *commit phase* (`StmThread::enter_commit_phase`):
//! one transaction at a time, and it wins write-write conflicts, so a transaction about to
//! commit is never doomed by another one's insertions; the other waits for its commit.
//! `table_set` takes the counts card's write lock before it reads the counts, so the waiter
//! then reads the counts the commit left, and neither aborts. What can still conflict: an
//! insertion landing in an index card that the other transaction's probe read (hash
//! neighbours), and the growth of the table.
//!
//! Deferring costs a second insertion per key, so it is done only for *contended* dicts:
//! a transaction aborted by a conflict on a dict's entries array (its counts or entry cards)
//! marks that array contended ([`Runtime::note_dict_conflict`]), and the next insertion that
//! finds it in a dict marks the dict itself (a committed dict never moves, while growth
//! replaces its arrays). The set is program-wide; each thread reads its own copy, refreshed
//! when the set's version changes (one shared load per insertion, no lock). A dict that only
//! one thread fills never conflicts, so it is never deferred.
//!
//! The overlay dicts are allocated by the transaction itself and kept in a list in a
//! driver slot of the shadow stack, so the GC sees and moves them; an abort drops them with
//! the rest of the transaction's objects. Dicts created by the running transaction take
//! new keys directly, and so does every dict under `--gil` (one transaction at a time) or
//! while the program runs a single thread.

use super::objects::D_ENTRIES;
use super::{Mode, Runtime, Unwind, R};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, SeqCst};
use std::sync::Mutex;
use stmjit_runtime::nursery::NEW_FLAG;
use stmjit_runtime::object::FLAGS_OFFSET;
use stmjit_runtime::value::{Word, NONE};

/// Dicts whose insertions conflicted (see the module docs), shared by all threads.
#[derive(Default)]
pub struct Contended {
    /// Addresses of contended dicts and entries arrays (old objects). Never shrinks but for
    /// a reset when it grows past [`MAX_CONTENDED`]: an address reused by an unrelated
    /// object after a major collection only makes that one defer its insertions.
    set: Mutex<HashSet<Word>>,
    /// Bumped at every change (0: nothing ever contended).
    version: AtomicU64,
}

/// Size past which the contended set is emptied (and learnt again from new conflicts).
const MAX_CONTENDED: usize = 4096;

impl Contended {
    fn add(&self, addrs: &[Word]) {
        let mut set = self.set.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() + addrs.len() > MAX_CONTENDED {
            set.clear();
        }
        set.extend(addrs.iter().copied());
        self.version.fetch_add(1, SeqCst);
    }
}

/// The running transaction's pending new keys, per dict committed before it.
pub struct DictOverlay {
    /// Shadow-stack slot (of the thread's driver) holding the list of overlay dicts, or
    /// `NONE`; null where no driver set one up (then every insertion is direct).
    pub slot: *mut u64,
    /// Dict (committed, so old: its address never changes) → index of its overlay dict in
    /// that list. Emptied at every begin and commit.
    index: HashMap<Word, usize>,
    /// This thread's copy of the contended set, and the version it was copied at.
    contended: HashSet<Word>,
    contended_version: u64,
}

impl Default for DictOverlay {
    fn default() -> DictOverlay {
        DictOverlay {
            slot: std::ptr::null_mut(),
            index: HashMap::new(),
            contended: HashSet::new(),
            contended_version: 0,
        }
    }
}

impl Runtime {
    /// Forgets the overlay of the previous transaction (called at every begin: after an
    /// abort, its dicts are gone).
    pub(crate) fn reset_dict_overlay(&mut self) {
        self.overlay.index.clear();
        if !self.overlay.slot.is_null() {
            // SAFETY: the slot is the driver's base-frame slot, live for the thread's life.
            unsafe { *self.overlay.slot = NONE };
        }
    }

    /// The overlay dict of `d`, if the running transaction has one.
    #[inline]
    fn overlay_of(&self, d: Word) -> Option<Word> {
        if self.overlay.index.is_empty() {
            return None;
        }
        let &i = self.overlay.index.get(&d)?;
        // SAFETY: a non-empty index implies a set slot holding the list.
        let list = unsafe { *self.overlay.slot };
        Some(self.list_get(list, i as u64))
    }

    /// A conflict on an object of a dict's arrays aborted the running transaction: the
    /// dict is contended (see the module docs).
    pub(crate) fn note_dict_conflict(&self, array: Word) {
        self.info.contended.add(&[array]);
    }

    /// Whether new keys of `d` wait in the overlay: `d` is contended, was committed before
    /// the running transaction (neither young nor promoted by it), and transactions run in
    /// parallel.
    fn defers_inserts(&mut self, d: Word) -> bool {
        let version = self.info.contended.version.load(Relaxed);
        if version == 0 || self.overlay.slot.is_null() || self.mode != Mode::Stm {
            return false;
        }
        let l = self.stm.layout();
        if (l.nursery_start..l.nursery_end).contains(&d) {
            return false;
        }
        // SAFETY: d is a live object of our segment; its flags word is mapped.
        let flags = unsafe { *(self.addr(d + FLAGS_OFFSET) as *const u32) };
        if flags & NEW_FLAG != 0 {
            return false;
        }
        if version != self.overlay.contended_version {
            let info = self.info.clone();
            let set = info.contended.set.lock();
            self.overlay.contended = set.unwrap_or_else(|e| e.into_inner()).clone();
            self.overlay.contended_version = version;
        }
        if self.overlay.contended.contains(&d) {
            return true;
        }
        let entries = self.ld(d, D_ENTRIES);
        if self.overlay.contended.contains(&entries) {
            // The dict outlives its arrays: remember it, not only this one.
            self.info.contended.add(&[d]);
            return true;
        }
        false
    }

    /// The overlay dict of `d`, made (empty) if there is none yet.
    fn overlay_for(&mut self, d: Word) -> R<Word> {
        if let Some(o) = self.overlay_of(d) {
            return Ok(o);
        }
        let m = self.mark();
        let o = self.new_dict()?;
        let ro = self.root(o);
        // SAFETY: callers checked that the slot is set (`defers_inserts`).
        let list = unsafe { *self.overlay.slot };
        let i = if list == NONE {
            let l = self.new_list(&[self.get(ro)])?;
            // SAFETY: as above.
            unsafe { *self.overlay.slot = l };
            0
        } else {
            let n = self.list_len(list);
            self.list_push(list, self.get(ro))?;
            n as usize
        };
        let o = self.get(ro);
        self.release(m);
        self.overlay.index.insert(d, i);
        Ok(o)
    }

    /// The overlay dict of `d` (see [`Runtime::overlay_of`]).
    pub(crate) fn overlay_dict(&self, d: Word) -> Option<Word> {
        self.overlay_of(d)
    }

    /// `d[k]` if present, for any key: an instance's `__hash__` and `__eq__` may run
    /// (`hashing.rs`).
    #[inline]
    pub fn dict_lookup(&mut self, d: Word, k: Word) -> R<Option<Word>> {
        if !self.needs_prepare(k) {
            return self.dict_get(d, k);
        }
        let (d, k) = self.key_for(d, k, false)?;
        self.dict_get(d, k)
    }

    /// `d[k]` if present, for a key that needs no user code: not an instance, or one
    /// prepared and made canonical by [`Runtime::key_for`].
    pub fn dict_get(&self, d: Word, k: Word) -> R<Option<Word>> {
        let key = self.key_of(k)?;
        if let Some(v) = self.table_get(d, &key) {
            return Ok(Some(v));
        }
        Ok(self.overlay_of(d).and_then(|o| self.table_get(o, &key)))
    }

    /// Number of live entries.
    pub fn dict_len(&self, d: Word) -> u64 {
        self.table_len(d) + self.overlay_of(d).map_or(0, |o| self.table_len(o))
    }

    /// `d[k] = v`; an instance key's `__hash__` and `__eq__` may run (`hashing.rs`): a key
    /// equal to one `d` holds replaces that one's value, and the held key stays.
    #[inline]
    pub fn dict_set(&mut self, d: Word, k: Word, v: Word) -> R<()> {
        if !self.needs_prepare(k) {
            return self.dict_set_prepared(d, k, k, v);
        }
        self.dict_set_as(d, k, v, false)
    }

    /// [`Runtime::dict_set`] of a key taken from a table (a copy): see
    /// [`Runtime::key_for`]'s `stored`.
    pub fn dict_set_stored(&mut self, d: Word, k: Word, v: Word) -> R<()> {
        self.dict_set_as(d, k, v, true)
    }

    fn dict_set_as(&mut self, d: Word, k: Word, v: Word, stored: bool) -> R<()> {
        if !self.needs_prepare(k) {
            return self.dict_set_prepared(d, k, k, v);
        }
        let m = self.mark();
        let (rk, rv) = (self.root(k), self.root(v));
        let r = self.key_for(d, k, stored);
        let (k, v) = (self.get(rk), self.get(rv));
        self.release(m);
        let (d, canon) = r?;
        self.dict_set_prepared(d, canon, k, v)
    }

    /// `d[k] = v` where `canon` is the prepared key to probe with ([`Runtime::key_for`])
    /// and `k` the key to insert when absent.
    pub(crate) fn dict_set_prepared(&mut self, d: Word, canon: Word, k: Word, v: Word) -> R<()> {
        let key = self.key_of(canon)?;
        let Some(slot) = self.table_replace(d, &key, v)? else {
            return Ok(());
        };
        if !self.defers_inserts(d) {
            return self.table_insert(d, k, v, Some(slot));
        }
        // d is old and does not move; k and v may, when the overlay is made.
        let m = self.mark();
        let (rc, rk, rv) = (self.root(canon), self.root(k), self.root(v));
        let o = self.overlay_for(d)?;
        let (canon, k, v) = (self.get(rc), self.get(rk), self.get(rv));
        self.release(m);
        let key = self.key_of(canon)?;
        match self.table_replace(o, &key, v)? {
            None => Ok(()),
            Some(slot) => self.table_insert(o, k, v, Some(slot)),
        }
    }

    /// Removes `k`, returning its value if it was present (an instance key's `__hash__`
    /// and `__eq__` may run).
    pub fn dict_del(&mut self, d: Word, k: Word) -> R<Option<Word>> {
        self.dict_del_as(d, k, false)
    }

    /// [`Runtime::dict_del`] of a key taken from a table (see [`Runtime::key_for`]).
    pub fn dict_del_stored(&mut self, d: Word, k: Word) -> R<Option<Word>> {
        self.dict_del_as(d, k, true)
    }

    fn dict_del_as(&mut self, d: Word, k: Word, stored: bool) -> R<Option<Word>> {
        let (d, k) = self.key_for(d, k, stored)?;
        let key = self.key_of(k)?;
        if let Some(v) = self.table_del(d, &key)? {
            return Ok(Some(v));
        }
        match self.overlay_of(d) {
            Some(o) => self.table_del(o, &key),
            None => Ok(None),
        }
    }

    /// Live `(key, value)` pairs in insertion order (the pending keys come last: they are
    /// inserted at commit, after every key committed before).
    pub fn dict_items(&self, d: Word) -> Vec<(Word, Word)> {
        let mut items = self.table_items(d);
        if let Some(o) = self.overlay_of(d) {
            items.extend(self.table_items(o));
        }
        items
    }

    /// Inserts the pending keys into their dicts' tables (at commit, before the runtime's
    /// commit proper), then forgets the overlay. An `Err` is an abort or a MemoryError.
    pub(crate) fn apply_dict_overlay(&mut self) -> R<()> {
        if self.overlay.index.is_empty() {
            return Ok(());
        }
        // SAFETY: th is this thread's live handle, in the running transaction.
        if unsafe { (*self.th).enter_commit_phase() }.is_err() {
            return Err(Unwind::Aborted);
        }
        let mut dicts: Vec<(usize, Word)> =
            self.overlay.index.drain().map(|(d, i)| (i, d)).collect();
        dicts.sort_unstable();
        for (i, d) in dicts {
            let mut e = 0;
            // The overlay list and dict are read again after every insertion: an insertion
            // may allocate (the table's growth) and move them.
            loop {
                // SAFETY: the slot holds the list while the index was non-empty.
                let list = unsafe { *self.overlay.slot };
                let o = self.list_get(list, i as u64);
                let Some((k, v)) = self.table_entry(o, e) else {
                    break;
                };
                if let Some(k) = k {
                    self.table_set(d, k, v)?;
                }
                e += 1;
            }
        }
        // SAFETY: as above.
        unsafe { *self.overlay.slot = NONE };
        Ok(())
    }
}
