//! Read and write barriers, over the same `%gs` memory the JIT uses.
//!
//! Fast paths are real `gs:`-relative instructions (see `gs.rs`):
//! - read: `mov byte gs:[ref >> 4], rv` where `rv = gs:[INFO_OFFSET + read_version]`;
//! - write: `test byte gs:[ref + FLAGS_OFFSET], WRITE_BARRIER_FLAG; jnz slow`.
//!
//! # Card marking (protocol for the JIT)
//! For a type registered with `carded: true` (big arrays):
//! - reading element bytes at `a = ref + off`: `mov byte gs:[a >> 4], rv` (the element's own
//!   granule, not the header's); reading the header/length marks `ref >> 4` as usual;
//! - writing at `a`: `test byte gs:[ref + FLAGS_OFFSET], WB; jz done` (clear only for objects
//!   allocated by this transaction), then
//!   `cmp byte gs:[(a >> 4) + card_marker_disp], rv; je done`, else call the slow path
//!   ([`StmThread::write_elem_barrier`]) with `(ref, off)`;
//! - the slow path takes the write lock of the 16-byte card `a & !15`, records the card as
//!   modified, privatizes only that card's page, and stores `rv` into the card marker. The
//!   header flag stays set. Commit publishes, conflict-checks and unlocks per card, so writing
//!   one element neither copies beyond its page nor conflicts with writes to other cards.
//!
//! # Card markers and reused memory
//! The `je done` above is safe for objects promoted by the running transaction (`NEW_FLAG`,
//! whose first write after each minor collection must reach `record_new_written`) because no
//! promotion ever lands on a card whose marker holds the segment's current read version:
//! - only the slow path stores a card marker, and only for an object committed before this
//!   transaction (a `NEW_FLAG` object is just recorded: whole-object trace at the next minor
//!   collection, which re-sets its flag, so its next card write takes the slow path again);
//!   that object has a `Card` record, a root of every major collection until the transaction
//!   ends, so its memory is not freed or reused meanwhile (young large objects, freed by
//!   minor collections, have no write-barrier flag and never get here);
//! - markers left by earlier transactions hold older read versions: the read version only
//!   grows, and its wrap-around (`begin`) resets every read and card marker of the segment.
//!
//! So the sweep (`major.rs`) need not clear the card markers of freed objects (it clears read
//! markers, which other segments' commits compare). Guarded by `tests/gc_cards.rs`.
//!
//! Every Rust barrier also polls the safe-point word (the JIT polls at back-edges instead).

use crate::gs;
use crate::layout::MARKER_SHIFT;
use crate::object::{Ref, FLAGS_OFFSET, WRITE_BARRIER_FLAG};
use crate::stats::Stats;
use crate::transaction::{Abort, ModKind, ModRec, StmThread, RV_OFF};

impl StmThread {
    /// Bounds check of the Rust API (two compares; kept in release builds too, so that a bad
    /// reference is a clear panic, never a stray access through %gs).
    #[inline]
    fn debug_check(&self, a: u64, len: u64) {
        self.stm.check_ref(a, len);
    }

    /// Read barrier for the object `r` (non-carded objects, and the header of carded ones).
    #[inline]
    pub fn read_barrier(&mut self, r: Ref) -> Result<(), Abort> {
        self.enter()?;
        self.debug_check(r, 8);
        // SAFETY: %gs points at our segment (enter); r is in the object space, so its marker
        // r >> 4 lies in the mapped marker area.
        unsafe { gs::store_u8(r >> MARKER_SHIFT, gs::load_u8(RV_OFF)) };
        if self.stm.read_sites.is_some() {
            self.record_read_site(r);
        }
        Ok(())
    }

    /// Stores the caller's current site (`SegmentInfo::site`) as the read site of `r`'s
    /// granule (see `readsites.rs`), right after its marker.
    #[cold]
    fn record_read_site(&mut self, r: Ref) {
        let info = self.stm.mem.info(self.seg);
        let base = info.read_sites.load(std::sync::atomic::Ordering::Relaxed);
        let site = info.site.load(std::sync::atomic::Ordering::Relaxed);
        // SAFETY: r is a checked object-space offset, so its entry lies in our segment's
        // table, mapped for the runtime's lifetime and written only by this segment's owner.
        unsafe { *((base + (r >> MARKER_SHIFT) * 4) as *mut u32) = site.wrapping_add(1) };
    }

    /// Read barrier for the element at `r + off` of a card-marked object.
    #[inline]
    pub fn read_elem_barrier(&mut self, r: Ref, off: u64) -> Result<(), Abort> {
        self.read_barrier(r + off)
    }

    /// Write barrier for the non-carded object `r` (for carded objects it marks the card of
    /// the header granule).
    #[inline]
    pub fn write_barrier(&mut self, r: Ref) -> Result<(), Abort> {
        self.enter()?;
        self.debug_check(r, 8);
        // SAFETY: %gs points at our segment and r is in its mapped old space.
        if unsafe { gs::test_u8(r + FLAGS_OFFSET, WRITE_BARRIER_FLAG) } {
            self.write_slow(r)?;
        }
        Ok(())
    }

    /// Write barrier for the element at `r + off` of a card-marked object.
    #[inline]
    pub fn write_elem_barrier(&mut self, r: Ref, off: u64) -> Result<(), Abort> {
        self.enter()?;
        let a = r + off;
        self.debug_check(a, 8);
        // SAFETY: %gs points at our segment; r and a are in its old space and the card marker
        // of a lies in the mapped marker area.
        unsafe {
            if gs::test_u8(r + FLAGS_OFFSET, WRITE_BARRIER_FLAG)
                && gs::load_u8((a >> MARKER_SHIFT) + self.stm.layout().card_marker_disp)
                    != gs::load_u8(RV_OFF)
            {
                self.write_card_slow(r, a)?;
            }
        }
        Ok(())
    }

    #[cold]
    fn write_slow(&mut self, r: Ref) -> Result<(), Abort> {
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        stm.check_ref(r, 8);
        let me = self.seg;
        // SAFETY: r is a checked old-space address of our segment.
        let header = unsafe { gs::load_u64(r) };
        if header as u32 & crate::nursery::NEW_FLAG != 0 {
            self.record_new_written(r);
            return Ok(());
        }
        let type_id = header >> 32;
        let ti = stm.types.get(type_id as u32);
        if ti.carded {
            return self.write_card_slow(r, r);
        }
        let size = (ti.size)(stm.mem.addr(me, r)) as u64;
        stm.check_ref(r, size);
        self.acquire_write_lock(r, r)?;
        self.refresh_after_lock(r)?;
        let site = stm
            .mem
            .info(me)
            .site
            .load(std::sync::atomic::Ordering::Relaxed);
        // A write is also a read (stmgc-c8 does the same): with the commit log, our snapshot
        // may predate the previous lock holder's commit, and the entry we append carries the
        // whole object; validation must then find the conflict instead of letting us
        // overwrite that commit with our stale copy. SAFETY: r's marker is in our mapped
        // marker area.
        unsafe { gs::store_u8(r >> MARKER_SHIFT, gs::load_u8(RV_OFF)) };
        let backup = self.backup(r, size);
        self.gc.modified.push(ModRec {
            addr: r,
            len: size,
            kind: ModKind::Object,
            obj: r,
            site,
            backup,
        });
        let n = crate::pages::privatize(
            &stm.mem,
            me,
            &stm.segs[me].private,
            r,
            size,
            stm.map_pressure(),
        );
        Stats::add(&stm.stats.pages_privatized, n);
        self.tx_pages += n;
        // SAFETY: the object's pages are now private to our segment, which %gs points at.
        unsafe {
            let f = gs::load_u8(r + FLAGS_OFFSET);
            gs::store_u8(r + FLAGS_OFFSET, f & !WRITE_BARRIER_FLAG);
        }
        Ok(())
    }

    /// First write since the last minor collection to an object promoted by this
    /// transaction: no lock (nobody else can reach it), just remember it for the next minor
    /// collection, which re-sets the flag.
    #[cold]
    fn record_new_written(&mut self, r: Ref) {
        // SAFETY: r is an object of our segment (checked by the caller); only we write it.
        unsafe {
            let f = gs::load_u8(r + FLAGS_OFFSET);
            gs::store_u8(r + FLAGS_OFFSET, f & !WRITE_BARRIER_FLAG);
        }
        self.gc.old_young.push(r);
    }

    #[cold]
    fn write_card_slow(&mut self, r: Ref, a: u64) -> Result<(), Abort> {
        // SAFETY: used only inside this method, while `self` lives.
        let stm = unsafe { self.stm_unbound() };
        // SAFETY: r was checked by the caller; header in our mapped segment.
        if unsafe { gs::load_u64(r) } as u32 & crate::nursery::NEW_FLAG != 0 {
            self.record_new_written(r);
            return Ok(());
        }
        let g = a & !(crate::layout::GRANULE - 1);
        stm.check_ref(g, crate::layout::GRANULE);
        let cm = (g >> MARKER_SHIFT) + stm.layout().card_marker_disp;
        // SAFETY: %gs points at our segment; cm is in its marker area.
        let rv = unsafe { gs::load_u8(RV_OFF) };
        // SAFETY: as above.
        if unsafe { gs::load_u8(cm) } == rv {
            return Ok(());
        }
        self.acquire_write_lock(g, r)?;
        self.refresh_after_lock(g)?;
        let me = self.seg;
        let site = stm
            .mem
            .info(me)
            .site
            .load(std::sync::atomic::Ordering::Relaxed);
        // A write is also a read (see `write_slow`). SAFETY: g's marker is in our marker area.
        unsafe { gs::store_u8(g >> MARKER_SHIFT, rv) };
        let backup = self.backup(g, crate::layout::GRANULE);
        self.gc.modified.push(ModRec {
            addr: g,
            len: crate::layout::GRANULE,
            kind: ModKind::Card,
            obj: r,
            site,
            backup,
        });
        let n = crate::pages::privatize(
            &stm.mem,
            me,
            &stm.segs[me].private,
            g,
            crate::layout::GRANULE,
            stm.map_pressure(),
        );
        Stats::add(&stm.stats.pages_privatized, n);
        self.tx_pages += n;
        // SAFETY: cm is in our mapped marker area.
        unsafe { gs::store_u8(cm, rv) };
        Ok(())
    }

    /// Commit log: validates right after taking a write lock, before its read marker is
    /// set and its backup taken. The previous holder may have committed the object after our
    /// snapshot: importing that now costs nothing, while writing over our older copy would
    /// cost an abort at the next validation. (A real conflict, with an earlier read of ours,
    /// aborts here.)
    fn refresh_after_lock(&mut self, g: u64) -> Result<(), Abort> {
        if !self.stm.config.commit_log {
            return Ok(());
        }
        if let Some(c) = self.validate() {
            // Not recorded yet, so the abort would not release it.
            let st = self.stm.tx_state(self.seg);
            self.stm
                .locks
                .cas(g, crate::stm::lock_word(self.seg, st), 0);
            return Err(self.abort_validated(c));
        }
        Ok(())
    }

    /// Commit log: saves our snapshot's contents of `[a, a+len)` for an abort and returns
    /// where (`ModRec::backup`); nothing without the log (aborts restore from segment 0).
    fn backup(&mut self, a: u64, len: u64) -> usize {
        let at = self.gc.backups.len();
        if self.stm.config.commit_log {
            // SAFETY: the range is in our segment's mapped old space (checked by the caller).
            let b =
                unsafe { std::slice::from_raw_parts(self.stm.mem.addr(self.seg, a), len as usize) };
            self.gc.backups.extend_from_slice(b);
        }
        at
    }

    /// Loads the u64 at `r + off` of this segment's view, without barrier.
    #[inline]
    pub fn load_u64(&mut self, r: Ref, off: u64) -> u64 {
        self.ensure_active();
        self.debug_check(r + off, 8);
        // SAFETY: %gs points at our segment; the address is in its old space.
        unsafe { gs::load_u64(r + off) }
    }

    /// Stores the u64 at `r + off` of this segment's view, without barrier (the caller ran
    /// the write barrier, or the object is new in this transaction).
    #[inline]
    pub fn store_u64(&mut self, r: Ref, off: u64, v: u64) {
        self.ensure_active();
        self.debug_check(r + off, 8);
        // SAFETY: %gs points at our segment; the address is in its old space.
        unsafe { gs::store_u64(r + off, v) }
    }

    /// Read barrier + load of a field of a non-carded object.
    #[inline]
    pub fn read_u64(&mut self, r: Ref, off: u64) -> Result<u64, Abort> {
        self.read_barrier(r)?;
        Ok(self.load_u64(r, off))
    }

    /// Write barrier + store into a field of a non-carded object.
    #[inline]
    pub fn write_u64(&mut self, r: Ref, off: u64, v: u64) -> Result<(), Abort> {
        self.write_barrier(r)?;
        self.store_u64(r, off, v);
        Ok(())
    }

    /// Element read barrier + load, for card-marked objects.
    #[inline]
    pub fn read_elem_u64(&mut self, r: Ref, off: u64) -> Result<u64, Abort> {
        self.read_elem_barrier(r, off)?;
        Ok(self.load_u64(r, off))
    }

    /// Element write barrier + store, for card-marked objects.
    #[inline]
    pub fn write_elem_u64(&mut self, r: Ref, off: u64, v: u64) -> Result<(), Abort> {
        self.write_elem_barrier(r, off)?;
        self.store_u64(r, off, v);
        Ok(())
    }
}
