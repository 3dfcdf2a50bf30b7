//! Page-run allocator of the old space: hands out runs of consecutive 4 KiB pages, for
//! large objects (one run each) and for the size-class pages of `gcpage.rs` (one page each).
//!
//! Free runs are kept coalesced, indexed by start and by (length, start) for best fit with
//! the lowest address among equals, so that the heap stays compact and the memfd does not
//! grow while garbage is recycled. Above the highest run ever handed out (`frontier`) pages
//! were never used. All operations take one mutex: runs are taken per page of small objects
//! or per large object, rarely enough for that to be cheap.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

struct Inner {
    by_start: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
    frontier: u64,
    in_use: u64,
}

/// Allocator of page runs over page indices `[0, pages)`.
pub struct PageRuns {
    inner: Mutex<Inner>,
    pages: u64,
    /// Copy of `Inner::frontier` readable without the lock (the marker asks per object).
    frontier: AtomicU64,
    /// The highest frontier ever: no page at or above it was ever handed out.
    high_water: AtomicU64,
}

impl PageRuns {
    /// An allocator over `pages` pages, all free.
    pub fn new(pages: u64) -> PageRuns {
        PageRuns {
            inner: Mutex::new(Inner {
                by_start: BTreeMap::new(),
                by_size: BTreeSet::new(),
                frontier: 0,
                in_use: 0,
            }),
            pages,
            frontier: AtomicU64::new(0),
            high_water: AtomicU64::new(0),
        }
    }

    /// Takes a run of `n` pages and returns its first page index. Panics when the old space
    /// is exhausted (the segment is too small for the heap).
    pub fn alloc(&self, n: u64) -> u64 {
        let mut g = self.inner.lock().unwrap();
        g.in_use += n;
        if let Some(&(len, start)) = g.by_size.range((n, 0)..).next() {
            g.by_size.remove(&(len, start));
            g.by_start.remove(&start);
            if len > n {
                g.by_start.insert(start + n, len - n);
                g.by_size.insert((len - n, start + n));
            }
            return start;
        }
        let start = g.frontier;
        assert!(
            start + n <= self.pages,
            "stmjit: old-object space exhausted (segment too small for this heap)"
        );
        g.frontier += n;
        self.frontier.store(g.frontier, Relaxed);
        self.high_water.fetch_max(g.frontier, Relaxed);
        start
    }

    /// Returns the run `[start, start + n)`, merging it with free neighbours.
    pub fn free(&self, start: u64, n: u64) {
        let mut g = self.inner.lock().unwrap();
        g.in_use -= n;
        let (mut s, mut len) = (start, n);
        if let Some((&ps, &pl)) = g.by_start.range(..s).next_back() {
            if ps + pl == s {
                g.by_start.remove(&ps);
                g.by_size.remove(&(pl, ps));
                s = ps;
                len += pl;
            }
        }
        if let Some(&nl) = g.by_start.get(&(s + len)) {
            g.by_start.remove(&(s + len));
            g.by_size.remove(&(nl, s + len));
            len += nl;
        }
        if s + len == g.frontier {
            g.frontier = s;
            self.frontier.store(s, Relaxed);
        } else {
            g.by_start.insert(s, len);
            g.by_size.insert((len, s));
        }
    }

    /// One past the highest page ever in use since the last time the top of the heap was
    /// freed: pages at or above it are untouched.
    pub fn frontier(&self) -> u64 {
        self.frontier.load(Relaxed)
    }

    /// One past the highest page ever handed out (never lowered): every page ever in use lies
    /// below it (read-marker resets look no higher).
    pub fn high_water(&self) -> u64 {
        self.high_water.load(Relaxed)
    }

    /// Pages currently handed out.
    pub fn in_use(&self) -> u64 {
        self.inner.lock().unwrap().in_use
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_coalesce_and_best_fit_reuses_lowest() {
        let r = PageRuns::new(100);
        let a = r.alloc(3);
        let b = r.alloc(2);
        let c = r.alloc(4);
        assert_eq!((a, b, c), (0, 3, 5));
        r.free(a, 3);
        r.free(b, 2);
        assert_eq!(r.alloc(5), 0, "coalesced run of 5 reused");
        r.free(0, 5);
        r.free(c, 4);
        assert_eq!(r.frontier(), 0, "freeing the top lowers the frontier");
        assert_eq!(r.in_use(), 0);
    }
}
