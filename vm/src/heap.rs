//! Heap accessors for the object model: every access goes to the running transaction's
//! segment, with the barriers JIT code emits inline (read marker store, write-barrier flag
//! test with the runtime's slow path, card marking for card-marked arrays); allocation
//! (the nursery bump JIT code inlines, and the heap limit); and what applies to any value
//! (its type, type name, truthiness). The operations of each object kind are in `objects/`.

use super::{exc, Runtime, Unwind, R};
use crate::abi::young_header;
use crate::objects::*;
use std::mem::offset_of;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::ffi::{
    stmjit_alloc, stmjit_write_barrier_slow, stmjit_write_card_slow, STATUS_OK,
};
use stmjit_runtime::layout::{SegmentInfo, INFO_OFFSET, MARKER_SHIFT};
use stmjit_runtime::object::{FLAGS_OFFSET, TYPE_ID_OFFSET, WRITE_BARRIER_FLAG};
use stmjit_runtime::value::{is_int, is_ref, Word, FALSE, NONE, TRUE};
use stmjit_runtime::NO_SITE;

/// Small allocations between two tests of the heap limit (`Runtime::heap_check`).
pub(crate) const CHECK_EVERY: u64 = 256;

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
        if self.record_reads {
            self.record_read_site(r);
        }
    }

    /// Stores the site of the JIT operation in progress (`Ctx::site`: the helper's caller)
    /// as the read site of `r`'s granule, beside its marker (`stmjit_runtime::readsites`).
    #[cold]
    fn record_read_site(&self, r: u64) {
        // SAFETY: ctx is null or this thread's live context.
        let site = unsafe { self.ctx.as_ref() }.map_or(NO_SITE, |c| c.site as u32);
        let base_p = self.addr(INFO_OFFSET + offset_of!(SegmentInfo, read_sites) as u64);
        // SAFETY: the segment-info page is mapped; only the runtime writes `read_sites`
        // (before any transaction runs).
        let base = unsafe { *(base_p as *const u64) };
        // SAFETY: r is an object-space offset: its entry lies in our segment's site table,
        // mapped for the runtime's lifetime and written only by this segment's owner.
        unsafe { *((base + (r >> MARKER_SHIFT) * 4) as *mut u32) = site.wrapping_add(1) };
    }

    /// Brings the transaction's view up to the newest commit, after reading the class
    /// caches' epoch and before the lookup whose result may be cached under it (with the
    /// runtime's commit log a transaction reads a snapshot that may predate the epoch).
    /// Where `STMJIT_ABORT_PROBABILITY` is set, it may abort here too
    /// ([`Runtime::inject_abort`]), once between two commits of the thread.
    pub fn refresh(&mut self) -> R<()> {
        if !self.tx.refresh_injected && self.inject_abort() {
            self.tx.refresh_injected = true;
            return Err(Unwind::Aborted);
        }
        // SAFETY: th is this thread's live handle, running a transaction in this OS thread.
        match unsafe { (*self.th).refresh() } {
            Ok(()) => Ok(()),
            Err(_) => Err(Unwind::Aborted),
        }
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
        // SAFETY: as wb.
        let flagged = unsafe { *self.addr(r + FLAGS_OFFSET) } & WRITE_BARRIER_FLAG != 0;
        // SAFETY: the card marker of an object-space address lies in the mapped marker area.
        if flagged && unsafe { *self.addr(card_marker) } != self.rv() {
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
        // SAFETY: ctx is null or this thread's live context.
        if let Some(c) = unsafe { self.ctx.as_ref() } {
            // SAFETY: th is this thread's live handle.
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
    /// it is exhausted): checked for every big object and every [`CHECK_EVERY`]th small one (small
    /// ones go to the nursery first). A heap over the limit runs a major collection first,
    /// and is a MemoryError only if it is still over: the collection's own threshold
    /// (64 MiB allocated, or the live size) knows nothing of the limit, so garbage alone
    /// could fill a small heap (`STMJIT_HEAP`) and raise while most of it was dead.
    #[inline]
    pub(crate) fn heap_check(&mut self, size: u64, n: u64) -> R<()> {
        self.allocs_unchecked += n;
        if size > 4096 || self.allocs_unchecked >= CHECK_EVERY {
            self.allocs_unchecked = 0;
            if size > self.info.heap_limit {
                return Err(exc(ErrorKind::MemoryError, "out of memory"));
            }
            if self.heap_full(size) {
                self.collect_for_room()?;
                if self.heap_full(size) {
                    return Err(exc(ErrorKind::MemoryError, "out of memory"));
                }
            }
        }
        Ok(())
    }

    /// Whether the old space in use, `size` more bytes and a nursery's survivors exceed the
    /// heap limit.
    fn heap_full(&self, size: u64) -> bool {
        let l = self.stm.layout();
        let nursery = l.nursery_end - l.nursery_start;
        let used = self.stm.old_pages_in_use() * stmjit_runtime::PAGE_SIZE;
        used + size + nursery > self.info.heap_limit
    }

    /// A major collection from inside the running transaction, which pauses at a safe point
    /// meanwhile (nothing moves: the references the caller holds stay valid, and those it
    /// needs kept alive are rooted, as for any allocation, whose slow path may collect too).
    #[cold]
    fn collect_for_room(&mut self) -> R<()> {
        // SAFETY: th is this thread's live handle, running a transaction in this OS thread.
        match unsafe { (*self.th).collect_major() } {
            Ok(()) => Ok(()),
            Err(_) => Err(Unwind::Aborted),
        }
    }

    // ----- any value -----

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
        } else if ty == t.bigint.0 {
            "int"
        } else if ty == t.list.0 {
            "list"
        } else if ty == t.tuple.0 {
            "tuple"
        } else if ty == t.dict.0 {
            "dict"
        } else if ty == t.set.0 {
            "set"
        } else if ty == t.frozenset.0 {
            "frozenset"
        } else if ty == t.slice.0 {
            "slice"
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
            self.opaque_type_name(w)
        } else {
            "object"
        }
        .into()
    }

    /// The type name of opaque object `w` (a thread, lock, queue or dict iterator), without
    /// building a `String`: method lookups on a `TransactionQueue` ask it at every `q.add`.
    pub(crate) fn opaque_type_name(&self, w: Word) -> &'static str {
        // `kind` is written once, when the object is made: no barrier needed to read it.
        match self.ld(w, offset_of!(OpaqueObj, kind) as u64) {
            OPAQUE_THREAD => "Thread",
            OPAQUE_LOCK => "Lock",
            OPAQUE_DICT_ITER => "dict_keyiterator",
            OPAQUE_ITEMS_ITER => "iterator",
            OPAQUE_BIG_RANGE => "range",
            _ => "TransactionQueue",
        }
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
            Some(ty) if ty == t.tuple.0 => self.tuple_len(w) != 0,
            Some(ty) if ty == t.dict.0 || ty == t.set.0 || ty == t.frozenset.0 => {
                self.dict_len(w) != 0
            }
            Some(ty) if ty == t.range.0 => {
                let (a, b, s) = self.range_of(w);
                stmjit_lang::value::range_len(a, b, s) > 0
            }
            _ if self.is_big_range(w) => !self.big_range_of(w).is_empty(),
            _ => true,
        }
    }
}
