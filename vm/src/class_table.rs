//! The program's class table, shared by all threads, with a per-thread copy for the hot
//! lookups.
//!
//! Why: every method call and uncached attribute access looks up its class's shape or method
//! cache. Behind one `RwLock`, each lookup writes the lock's reader count, a cache line that
//! bounces between the cores of all threads doing method calls. The table changes rarely (a
//! class statement, a method-cache fill, a class attribute assignment), so each thread reads
//! its own copy, refreshed when the table's version has moved.
//!
//! The method-call sites of JIT code cache `class id → function id` themselves
//! ([`super::site_cache`]), with no lookup at all on a hit. Those caches follow the method
//! caches' rules, and one more: they are empty, and nobody fills them, while a transaction
//! that assigned a class attribute runs (JIT code cannot tell which transaction it runs in).
//! See [`ClassTable::fill_method_site`]. The call sites `f(args)` whose callee may be a
//! class cache `class id → (__init__ function id, slot count)` the same way, in the same
//! table of sites (`calls::stmjit_call_site`).

use super::site_cache::SiteCache;
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering::Acquire, Ordering::Release};
use std::sync::{Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use stmjit_runtime::value::Word;

/// Per-class data the JIT keeps outside the heap: the name and the shape (attribute name →
/// slot index of instances), shared by all instances of the class.
#[derive(Debug, Default, Clone)]
pub struct ClassInfo {
    /// Class name.
    pub name: String,
    /// An exception class (derives from `BaseException`): its instances have `args`.
    pub exc: bool,
    /// A built-in class (the exception classes, ids `0..exceptions::BUILTIN_CLASSES`).
    pub builtin: bool,
    /// Slot index → attribute name id (a short list: scanned, not hashed).
    pub shape: Vec<u32>,
    /// Class attribute lookup cache: name id → function object (old, immutable), int, None
    /// or bool, or `UNBOUND` for "not found". Cleared whenever any class attribute is
    /// assigned.
    pub methods: Vec<(u32, Word)>,
}

/// The shared table: the classes by id, and a version bumped by every change.
///
/// The method caches (`ClassInfo::methods`) hold what class lookups found in the classes'
/// attribute dicts, outside the STM heap. Assigning a class attribute forgets them all, at
/// the assignment and again when its transaction commits, and bumps `epoch`: an entry found
/// under an older epoch is not cached (its lookup may have read a value that a commit since
/// replaced). The assigning transaction itself bypasses the caches until it ends.
#[derive(Debug, Default)]
pub struct ClassTable {
    classes: RwLock<Vec<ClassInfo>>,
    version: AtomicU64,
    epoch: AtomicU64,
    sites: Mutex<MethodSites>,
}

/// The method-call site caches of the program's code, and the transactions in flight that
/// assigned a class attribute. Fills and clears of the caches hold the mutex around them.
#[derive(Debug, Default)]
struct MethodSites {
    /// Boxed: JIT code embeds their addresses.
    #[allow(clippy::vec_box)]
    caches: Vec<Box<SiteCache>>,
    /// Running transactions that assigned a class attribute: no fill while non-zero.
    changing: u64,
}

/// A write access to the table; the version moves when it ends, so that the copies refresh.
pub struct ClassTableWrite<'a> {
    guard: RwLockWriteGuard<'a, Vec<ClassInfo>>,
    version: &'a AtomicU64,
}

impl std::ops::Deref for ClassTableWrite<'_> {
    type Target = Vec<ClassInfo>;
    fn deref(&self) -> &Vec<ClassInfo> {
        &self.guard
    }
}

impl std::ops::DerefMut for ClassTableWrite<'_> {
    fn deref_mut(&mut self) -> &mut Vec<ClassInfo> {
        &mut self.guard
    }
}

impl Drop for ClassTableWrite<'_> {
    fn drop(&mut self) {
        // Still under the write lock: a reader that sees the new version copies the new table.
        self.version.fetch_add(1, Release);
    }
}

impl ClassTable {
    /// Reads the shared table (for rare uses; hot paths use a [`ClassCopy`]).
    pub fn read(&self) -> RwLockReadGuard<'_, Vec<ClassInfo>> {
        self.classes.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The method caches' epoch: read it before a lookup whose result is to be cached.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Acquire)
    }

    /// Forgets every method cache (a class attribute was assigned, or that assignment
    /// committed) and moves the epoch.
    pub fn forget_methods(&self) {
        let mut w = self.write();
        for c in w.iter_mut() {
            c.methods.clear();
        }
        self.epoch.fetch_add(1, Release);
    }

    /// A transaction assigns its first class attribute: the method caches are forgotten and
    /// the method-call sites stay empty until [`ClassTable::end_change`].
    pub fn begin_change(&self) {
        self.forget_methods();
        self.forget_sites(|s| s.changing += 1);
    }

    /// The transaction of a [`ClassTable::begin_change`] ends. At a commit (at its
    /// serialization point) the caches are forgotten again: entries filled meanwhile may
    /// hold what the assignment replaced.
    pub fn end_change(&self, committed: bool) {
        if committed {
            self.forget_methods();
        }
        self.forget_sites(|s| s.changing -= 1);
    }

    /// A class shape gained a name (call it after the table write that added it): a
    /// method-call site entry is only valid while the instances of its class have no
    /// attribute of the method's name (which would shadow the method).
    pub fn shape_grew(&self) {
        self.forget_sites(|_| {});
    }

    /// Empties every method-call site (after `f`), and moves the epoch so that no fill that
    /// began before lands after it.
    fn forget_sites(&self, f: impl FnOnce(&mut MethodSites)) {
        let mut s = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s);
        self.epoch.fetch_add(1, Release);
        for c in &s.caches {
            c.clear();
        }
    }

    /// A new method-call (or class-call) site cache, for code being compiled; its address
    /// (stable). It starts empty, and is emptied with the others from now on.
    pub fn new_method_site(&self) -> *const SiteCache {
        let mut s = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        s.caches.push(Box::default());
        &**s.caches.last().expect("just pushed")
    }

    /// Caches function `fid` (or a class call site's payload) for class `id` in a
    /// method-call site, unless the caches were
    /// forgotten since `epoch` was read or a class attribute assignment is in flight.
    ///
    /// The caller read `epoch` before it looked the method up in the class dicts, and
    /// then saw no attribute of the method's name in the class shape (through its copy of
    /// the table, refreshed after reading `epoch`): a shape growth or an assignment since
    /// has moved the epoch, and one after this fill empties the site.
    pub fn fill_method_site(&self, site: &SiteCache, id: usize, fid: usize, epoch: u64) {
        if !site.has_room(id as u64) {
            // A site of more classes than it caches: no lock at each of its misses.
            return;
        }
        let s = self.sites.lock().unwrap_or_else(|e| e.into_inner());
        if s.changing == 0 && self.epoch.load(Acquire) == epoch {
            site.insert(id as u64, fid as u64);
        }
    }

    /// Caches `value` for `name` in class `id`, unless the caches were forgotten since
    /// `epoch` was read (the lookup may have seen a replaced value) or it is there already.
    pub fn cache_method(&self, id: usize, name: u32, value: u64, epoch: u64) {
        let mut w = self.write();
        if self.epoch.load(Acquire) == epoch && !w[id].methods.iter().any(|(n, _)| *n == name) {
            w[id].methods.push((name, value));
        }
    }

    /// Changes the table; every thread's copy refreshes at its next lookup.
    pub fn write(&self) -> ClassTableWrite<'_> {
        ClassTableWrite {
            guard: self.classes.write().unwrap_or_else(|e| e.into_inner()),
            version: &self.version,
        }
    }
}

/// One thread's copy of the table and the version it was copied at.
#[derive(Debug, Default)]
pub struct ClassCopy(RefCell<(u64, Vec<ClassInfo>)>);

impl ClassCopy {
    /// Runs `f` on an up-to-date copy of `table` (as new as any change this thread can have
    /// heard of: the version is read before the copy is taken). `f` must not look up
    /// classes itself.
    pub fn with<T>(&self, table: &ClassTable, f: impl FnOnce(&[ClassInfo]) -> T) -> T {
        let v = table.version.load(Acquire);
        let mut c = self.0.borrow_mut();
        if c.0 != v {
            let fresh = table.read().clone();
            *c = (v, fresh);
        }
        f(&c.1)
    }
}
