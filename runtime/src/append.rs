//! [`AppendVec`]: a vector that grows while other threads read it, without a lock on reads.
//!
//! Why: tables that grow while the program runs are read by every thread by index. The
//! type registry (`object.rs`) is looked up at every write barrier's slow path and minor
//! collection, where a lock's reader count would be a cache line all segments write. The
//! object model's tables (trace sites, class statements, call shapes, names) grow as
//! functions are compiled at their first call, by any thread; their reads must neither
//! block behind a compilation nor see an element move. Elements live in chunks that are never moved nor freed before the vector
//! is dropped, so a reference to one stays valid; pushes are serialized by a mutex.

use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Elements of the first chunk; chunk `k` holds `FIRST << k`.
const FIRST: usize = 16;
/// Chunks: enough for any index a `usize` can hold.
const CHUNKS: usize = usize::BITS as usize - FIRST.trailing_zeros() as usize;

/// An append-only vector: [`AppendVec::push`] through `&self` (serialized), reads by index
/// with no lock, elements that never move.
pub struct AppendVec<T> {
    /// Chunk `k` (null until first needed): `FIRST << k` slots.
    chunks: [AtomicPtr<MaybeUninit<T>>; CHUNKS],
    /// Elements pushed and initialized; a reader sees no slot at or past it.
    len: AtomicUsize,
    /// Serializes pushes (and the allocation of chunks).
    push_lock: Mutex<()>,
}

/// The chunk of index `i` and the offset in it.
fn place(i: usize) -> (usize, usize) {
    let k = (i / FIRST + 1).ilog2() as usize;
    (k, i - FIRST * ((1 << k) - 1))
}

impl<T> AppendVec<T> {
    /// An empty vector (allocates nothing).
    pub fn new() -> AppendVec<T> {
        AppendVec {
            chunks: std::array::from_fn(|_| AtomicPtr::new(std::ptr::null_mut())),
            len: AtomicUsize::new(0),
            push_lock: Mutex::new(()),
        }
    }

    /// Appends `value`; its index.
    pub fn push(&self, value: T) -> usize {
        let _guard = self.push_lock.lock().unwrap_or_else(|e| e.into_inner());
        let i = self.len.load(Ordering::Relaxed);
        let (k, off) = place(i);
        let mut chunk = self.chunks[k].load(Ordering::Relaxed);
        if chunk.is_null() {
            let slots: Box<[MaybeUninit<T>]> =
                (0..FIRST << k).map(|_| MaybeUninit::uninit()).collect();
            chunk = Box::into_raw(slots).cast::<MaybeUninit<T>>();
            self.chunks[k].store(chunk, Ordering::Release);
        }
        // SAFETY: chunk k has FIRST << k slots and off < FIRST << k (`place`); slot i is
        // past `len`, so no reader looks at it, and pushes hold the lock: nobody else
        // writes it.
        unsafe { (*chunk.add(off)).write(value) };
        // Publishes the element (and its chunk) to the readers that load `len`.
        self.len.store(i + 1, Ordering::Release);
        i
    }

    /// The element at `i`, if pushed.
    pub fn get(&self, i: usize) -> Option<&T> {
        if i >= self.len.load(Ordering::Acquire) {
            return None;
        }
        let (k, off) = place(i);
        let chunk = self.chunks[k].load(Ordering::Acquire);
        // SAFETY: i < len, loaded with Acquire after the push that stored chunk k and
        // initialized slot i (both before its Release store of len): the slot is
        // initialized, is never written again, and lives as long as `self`.
        Some(unsafe { (*chunk.add(off)).assume_init_ref() })
    }

    /// Elements pushed.
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    /// Whether nothing was pushed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The elements pushed by now, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> + '_ {
        (0..self.len()).map(|i| self.get(i).expect("below len"))
    }
}

impl<T> Default for AppendVec<T> {
    fn default() -> AppendVec<T> {
        AppendVec::new()
    }
}

impl<T> std::ops::Index<usize> for AppendVec<T> {
    type Output = T;
    fn index(&self, i: usize) -> &T {
        match self.get(i) {
            Some(v) => v,
            None => panic!("index {i} out of range ({} elements)", self.len()),
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for AppendVec<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<T> FromIterator<T> for AppendVec<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> AppendVec<T> {
        let v = AppendVec::new();
        for x in iter {
            v.push(x);
        }
        v
    }
}

impl<T> Drop for AppendVec<T> {
    fn drop(&mut self) {
        let len = *self.len.get_mut();
        for (k, chunk) in self.chunks.iter_mut().enumerate() {
            let chunk = *chunk.get_mut();
            if chunk.is_null() {
                break;
            }
            let size = FIRST << k;
            let start = FIRST * ((1 << k) - 1);
            let live = len.saturating_sub(start).min(size);
            // SAFETY: chunk k was made by `push` from a boxed slice of `size` slots, of
            // which the first `live` are initialized (indexes below len); `&mut self` means
            // no reader holds a reference, and each chunk is freed once.
            unsafe {
                for off in 0..live {
                    (*chunk.add(off)).assume_init_drop();
                }
                drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(
                    chunk, size,
                )));
            }
        }
    }
}

// SAFETY: an AppendVec owns its elements (like a Vec): sending it sends them.
unsafe impl<T: Send> Send for AppendVec<T> {}
// SAFETY: `&AppendVec` hands out `&T` to any thread (T: Sync) and moves values pushed by
// one thread into the vector that another drops (T: Send); its own state is atomics and a
// mutex.
unsafe impl<T: Send + Sync> Sync for AppendVec<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn places_cover_every_index_once() {
        let mut expected = (0, 0);
        for i in 0..10_000 {
            assert_eq!(place(i), expected, "index {i}");
            expected.1 += 1;
            if expected.1 == FIRST << expected.0 {
                expected = (expected.0 + 1, 0);
            }
        }
    }

    #[test]
    fn elements_stay_put_and_are_dropped() {
        let v = AppendVec::new();
        let first = {
            v.push(String::from("zero"));
            v.get(0).unwrap() as *const String
        };
        for i in 1..1000 {
            assert_eq!(v.push(i.to_string()), i);
        }
        assert_eq!(v.get(0).unwrap() as *const String, first, "never moved");
        assert_eq!(v[999], "999");
        assert!(v.get(1000).is_none());
        assert_eq!(v.iter().count(), 1000);
        let counted = Arc::new(());
        let w: AppendVec<Arc<()>> = (0..100).map(|_| counted.clone()).collect();
        assert_eq!(Arc::strong_count(&counted), 101);
        drop(w);
        assert_eq!(Arc::strong_count(&counted), 1);
    }

    #[test]
    fn readers_see_every_pushed_element_while_another_thread_pushes() {
        let v = Arc::new(AppendVec::new());
        let writer = {
            let v = v.clone();
            std::thread::spawn(move || {
                for i in 0..20_000u64 {
                    v.push(i * 3);
                }
            })
        };
        let mut seen = 0;
        while seen < 20_000 {
            let n = v.len();
            for i in seen..n {
                assert_eq!(v[i], i as u64 * 3);
            }
            seen = n;
        }
        writer.join().unwrap();
    }
}
