//! Roots of Rust helpers: a helper that holds a reference across a call that may move
//! objects (an allocation: a minor collection moves young objects) keeps it in the thread's
//! shadow stack, where the GC finds and updates it, as JIT frames keep their locals.
//! `mark` / `release` pop what a helper pushed.

use crate::{exc, Runtime, R};
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::value::{is_ref, Word};

/// A word kept in the shadow stack by a Rust helper across calls that may move objects
/// (allocation): read it back with [`Runtime::get`].
#[derive(Clone, Copy, Debug)]
pub struct Root(*mut u64);

impl Root {
    /// The slot's address (consecutive roots are consecutive slots).
    pub fn ptr(self) -> *const u64 {
        self.0
    }
}

/// A word held by a helper across allocations: references are rooted, other words (ints,
/// immediates) need not be.
#[derive(Clone, Copy, Debug)]
pub enum Held {
    /// A rooted reference.
    Ref(Root),
    /// A word that is not a reference.
    Word(Word),
}

/// Shadow-stack slots kept free for JIT frames and small helper roots when a helper roots
/// many words at once.
const ROOT_RESERVE: usize = 4096;

impl Runtime {
    /// Keeps `w` in the shadow stack until [`Runtime::release`] of an earlier mark.
    pub fn root(&self, w: Word) -> Root {
        // SAFETY: ss is this thread's shadow stack, used only by this thread; a slot below
        // `limit` is inside the mapping.
        unsafe {
            let ss = &mut *self.ss;
            let p = ss.top;
            if p >= ss.limit {
                // No panic across the FFI: the helper's result becomes a MemoryError.
                self.root_overflow.set(true);
                let q = self.overflow_slot.get();
                *q = w;
                return Root(q);
            }
            *p = w;
            ss.top = p.add(1);
            Root(p)
        }
    }

    /// Holds `w` across allocations (roots it if it is a reference).
    pub fn hold(&self, w: Word) -> Held {
        if is_ref(w) {
            Held::Ref(self.root(w))
        } else {
            Held::Word(w)
        }
    }

    /// Holds every word of `ws`; a MemoryError when the shadow stack cannot hold them all
    /// and still leave room for JIT frames.
    pub fn hold_all(&self, ws: &[Word]) -> R<Vec<Held>> {
        let refs = ws.iter().filter(|&&w| is_ref(w)).count();
        // SAFETY: ss is live; top and limit point into the same mapping.
        let free = unsafe { (*self.ss).limit.offset_from((*self.ss).top) } as usize;
        if refs + ROOT_RESERVE > free {
            return Err(exc(
                ErrorKind::MemoryError,
                "too many objects held by one operation",
            ));
        }
        Ok(ws.iter().map(|&w| self.hold(w)).collect())
    }

    /// The current value of a held word.
    #[inline]
    pub fn held(&self, h: Held) -> Word {
        match h {
            Held::Ref(r) => self.get(r),
            Held::Word(w) => w,
        }
    }

    /// The current value of a rooted word (updated by the GC if the object moved).
    #[inline]
    pub fn get(&self, r: Root) -> Word {
        // SAFETY: the slot is in use (pushed by `root`, not released yet).
        unsafe { *r.0 }
    }

    /// Replaces a rooted word.
    #[inline]
    pub fn set(&self, r: Root, w: Word) {
        // SAFETY: as `get`.
        unsafe { *r.0 = w }
    }

    /// Runs `f` with `w` rooted and returns its result with `w` as it is after `f` (a
    /// collection inside `f` may move it): the mark, root, get, release of one word.
    pub fn keeping<T>(&mut self, w: Word, f: impl FnOnce(&mut Self) -> T) -> (T, Word) {
        let m = self.mark();
        let r = self.root(w);
        let out = f(self);
        let w = self.get(r);
        self.release(m);
        (out, w)
    }

    /// The shadow-stack mark to release to.
    pub fn mark(&self) -> *mut u64 {
        // SAFETY: ss is live.
        unsafe { (*self.ss).top }
    }

    /// Pops the roots pushed since `mark`; the memory of a large release goes back to the
    /// kernel ([`stmjit_runtime::ShadowStack::release_to`]).
    pub fn release(&mut self, mark: *mut u64) {
        // SAFETY: ss is live; mark was the top earlier in this helper, everything above it
        // is ours.
        unsafe { (*self.ss).release_to(mark) }
    }
}
