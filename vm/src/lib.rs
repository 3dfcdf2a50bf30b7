//! The runtime side of JIT code: the per-thread context JIT functions receive, the heap
//! accessors helpers use (with the same barriers JIT code emits inline), allocation, errors,
//! and the `extern "C"` helpers themselves (submodules).
//!
//! # Values
//! Every value is a tagged word (`stmjit_runtime::value`): ints `n << 1 | 1`, `None` = 0,
//! `False` = 2, `True` = 6, references (segment offsets) otherwise. Two more even immediates
//! are private to JIT code and never stored in the heap as values: [`UNBOUND`] (an unassigned
//! local or global, an absent instance slot) and [`ERR`] (returned by a helper or a JIT
//! function that raised: the caller unwinds).
//!
//! # Errors
//! A helper that raises records the kind and message in [`Runtime::error`] and returns
//! [`ERR`]. JIT code tests every call result against `ERR`; on a hit it appends a trace
//! entry ([`stmjit_trace`], with the position of the failing expression or call in the
//! current function) and returns `ERR` itself. No longjmp, no panics across the FFI.

pub mod abi;
pub mod calls;
pub mod class_table;
pub mod convert;
pub mod dict_overlay;
pub mod error;
pub mod heap;
pub mod helpers;
pub mod methods;
pub mod objects;
pub mod serve;
pub mod site_cache;
pub mod stats;
pub mod threads;
pub mod txn;

use std::collections::HashMap;
use std::sync::Arc;
use stmjit_lang::ast::Program;
use stmjit_lang::diag::{ErrorKind, Span, TraceEntry};

use crate::objects::Types;
pub use abi::{ArrayEntry, Ctx, ERR, INIT_NAME, MAX_DEPTH, RESTART, TOMBSTONE, UNBOUND};
pub use error::{exc, stmjit_trace, Aborted, Unwind, R};
use stmjit_runtime::transaction::StmThread;
use stmjit_runtime::value::Word;
use stmjit_runtime::ShadowStack;

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

/// A call site or failing-expression site: where, in which function (for traces).
#[derive(Clone, Debug)]
pub struct Site {
    /// Position reported.
    pub span: Span,
    /// Index into [`Runtime::func_names`].
    pub func: u32,
}

/// Per-class data the JIT keeps outside the heap: the name and the shape (attribute name →
/// slot index of instances), shared by all instances of the class.
#[derive(Debug, Default, Clone)]
pub struct ClassInfo {
    /// Class name.
    pub name: String,
    /// Slot index → attribute name id (a short list: scanned, not hashed).
    pub shape: Vec<u32>,
    /// Class attribute lookup cache: name id → function object (old, immutable), int, None
    /// or bool, or [`UNBOUND`] for "not found". Cleared whenever any class attribute is
    /// assigned.
    pub methods: Vec<(u32, Word)>,
}

/// A class statement of the program, for [`calls::stmjit_make_class`].
#[derive(Debug, Clone)]
pub struct ClassDef {
    /// Name.
    pub name: String,
    /// `(name id, function id)` of the methods.
    pub methods: Vec<(u32, usize)>,
    /// Name ids of the class attributes, in order (their values are passed at run time).
    pub attrs: Vec<u32>,
}

/// How transactions run: in parallel on the STM, or one at a time under a global lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Mode {
    /// Parallel transactions with conflict detection (the default).
    #[default]
    Stm,
    /// `--gil`: one segment, one transaction at a time, handed over in FIFO order at
    /// boundaries; JIT code has no read barriers. The baseline STM figures are compared to.
    Gil,
}

/// What every thread of a program run shares: the program, its constants and compiled
/// entries (fixed once the program starts), and the few program-wide tables that change at
/// run time (class shapes, the output queue, threads, conflict statistics), each behind its
/// own lock.
pub struct ProgramInfo {
    /// The program.
    pub program: Arc<Program>,
    /// File name for error traces.
    pub file: String,
    /// `args()`.
    pub args: Vec<String>,
    /// Ends the process when the program fails in a thread (see [`stmjit_lang::Exit`]).
    pub exit: stmjit_lang::Exit,
    /// Registered object types.
    pub types: Types,
    /// Bytes of old space the heap may use (in use + one nursery) before a MemoryError.
    pub heap_limit: u64,
    /// The runtime instance.
    pub stm: Arc<stmjit_runtime::Stm>,
    /// Interned names (attributes, methods): id → text.
    pub names: Vec<String>,
    /// Name → id.
    pub name_ids: HashMap<String, u32>,
    /// Interned name strs (old, immutable objects), by name id.
    pub name_strs: Vec<Word>,
    /// Str literals of the program (old objects, embedded in the code).
    pub str_consts: HashMap<String, Word>,
    /// Float literals by bits (old objects, embedded in the code).
    pub float_consts: HashMap<u64, Word>,
    /// Function objects by function id.
    pub func_objs: Vec<Word>,
    /// Array entries by function id (after finalize).
    pub entries: Vec<Option<ArrayEntry>>,
    /// Function names for traces: qualnames of the program's functions, then `<module>`.
    pub func_names: Vec<String>,
    /// Trace sites.
    pub sites: Vec<Site>,
    /// Class statements.
    pub classdefs: Vec<ClassDef>,
    /// Attribute-site caches read by JIT code: entries `class id << 32 | slot` (see
    /// [`site_cache`]). Boxed: stable addresses embedded in the code.
    pub attr_caches: Vec<Box<site_cache::SiteCache>>,
    /// Code addresses of the program's JIT functions by function id (set once they are
    /// finalized, before the program runs): method-call sites call the function their
    /// cache names through it. Its address is embedded in the code.
    pub func_code: Box<[u64]>,
    /// Classes created at run time (index = `ClassObj::class_id`).
    pub classes: class_table::ClassTable,
    /// The globals array (a card-marked array object, one word per global).
    pub globals: Word,
    /// Process start, for `time()`.
    pub start: std::time::Instant,
    /// Parallel STM or `--gil`.
    pub mode: Mode,
    /// Transactions, threads and output shared by all threads (`txn.rs`, `threads.rs`).
    pub sched: crate::txn::Scheduler,
    /// `serve`'s servers and request figures (`serve.rs`).
    pub serve: crate::serve::ServeState,
}

/// State of one thread of a program run: its transaction handle, its shadow stack, the
/// pending error, and what its running transaction has buffered (output). Program-wide data
/// is reached through `Deref` to [`ProgramInfo`].
pub struct Runtime {
    /// Program-wide data (shared by all threads).
    pub info: Arc<ProgramInfo>,
    /// Linear address of the segment of the running transaction.
    pub seg_base: u64,
    /// The STM thread handle (slow paths).
    pub th: *mut StmThread,
    /// The thread's shadow stack (roots of Rust helpers too).
    pub ss: *mut ShadowStack,
    /// Allocations since the last check of the old space's footprint.
    pub allocs_unchecked: u64,
    /// Set when a helper wanted more roots than the shadow stack holds (the helper's result
    /// is then replaced by a MemoryError).
    pub root_overflow: std::cell::Cell<bool>,
    /// Where such roots go (never read back as valid).
    overflow_slot: Box<std::cell::UnsafeCell<u64>>,
    /// The pending error, if a helper raised.
    pub error: Option<(ErrorKind, String)>,
    /// Trace of the pending error, innermost first.
    pub trace: Vec<TraceEntry>,
    /// Output of the running transaction, appended to the program's output at its commit.
    pub out: Vec<u8>,
    /// Per-thread transaction state (abort unwinding, statistics): see `txn.rs`.
    pub tx: crate::txn::ThreadTx,
    /// The thread's context (null before a driver set it): its current site.
    pub ctx: *mut Ctx,
    /// This thread's copy of the class table (see [`class_table`]).
    pub class_copy: class_table::ClassCopy,
    /// New keys the running transaction inserts into shared dicts at its commit (see
    /// [`dict_overlay`]).
    pub overlay: dict_overlay::DictOverlay,
}

impl std::ops::Deref for Runtime {
    type Target = ProgramInfo;
    fn deref(&self) -> &ProgramInfo {
        &self.info
    }
}

impl Runtime {
    /// The runtime of a program about to run in the transaction of `th` (which must be
    /// running one, on the segment at `seg_base`).
    ///
    /// # Safety
    /// `th` must be a live handle that outlives the runtime and is used only by this thread.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn new(
        program: Arc<Program>,
        file: &str,
        args: Vec<String>,
        exit: stmjit_lang::Exit,
        types: Types,
        th: *mut StmThread,
        seg_base: u64,
        heap_limit: u64,
    ) -> Runtime {
        let nfuncs = program.functions.len();
        let mut func_names: Vec<String> = program
            .functions
            .iter()
            .map(|f| f.qualname.clone())
            .collect();
        func_names.push("<module>".into());
        // SAFETY: th is a live handle owned by the caller for the runtime's lifetime.
        let stm = unsafe { (*th).stm().clone() };
        let info = ProgramInfo {
            program,
            file: file.to_string(),
            args,
            exit,
            types,
            heap_limit,
            stm,
            names: Vec::new(),
            name_ids: HashMap::new(),
            name_strs: Vec::new(),
            str_consts: HashMap::new(),
            float_consts: HashMap::new(),
            func_objs: Vec::new(),
            entries: vec![None; nfuncs],
            func_names,
            sites: Vec::new(),
            classdefs: Vec::new(),
            attr_caches: Vec::new(),
            func_code: vec![0; nfuncs].into_boxed_slice(),
            classes: Default::default(),
            globals: 0,
            start: std::time::Instant::now(),
            mode: Mode::Stm,
            sched: crate::txn::Scheduler::default(),
            serve: Default::default(),
        };
        // SAFETY: as above.
        unsafe { Runtime::for_thread(Arc::new(info), th, seg_base) }
    }

    /// The runtime of another thread of the same program, on the handle `th`.
    ///
    /// # Safety
    /// As [`Runtime::new`].
    pub unsafe fn for_thread(info: Arc<ProgramInfo>, th: *mut StmThread, seg_base: u64) -> Runtime {
        // SAFETY: th is a live handle owned by the caller for the runtime's lifetime.
        let ss = unsafe { (*th).shadow_stack_ptr() };
        Runtime {
            info,
            seg_base,
            th,
            ss,
            allocs_unchecked: 0,
            root_overflow: std::cell::Cell::new(false),
            overflow_slot: Box::new(std::cell::UnsafeCell::new(0)),
            error: None,
            trace: Vec::new(),
            out: Vec::new(),
            tx: crate::txn::ThreadTx::default(),
            ctx: std::ptr::null_mut(),
            class_copy: Default::default(),
            overlay: Default::default(),
        }
    }

    /// Program-wide data, mutable while the program is being compiled (before any other
    /// thread shares it).
    pub fn info_mut(&mut self) -> &mut ProgramInfo {
        Arc::get_mut(&mut self.info).expect("program data is frozen once threads start")
    }

    /// Keeps `w` in the shadow stack until [`Runtime::release`] of an earlier mark.
    pub fn root(&self, w: Word) -> Root {
        // SAFETY: ss is this thread's shadow stack, used only by this thread; the slot
        // is inside the mapping (a frame beyond the limit hits the guard page).
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
        if stmjit_runtime::value::is_ref(w) {
            Held::Ref(self.root(w))
        } else {
            Held::Word(w)
        }
    }

    /// Holds every word of `ws`; a MemoryError when the shadow stack cannot hold them all
    /// and still leave room for JIT frames.
    pub fn hold_all(&self, ws: &[Word]) -> R<Vec<Held>> {
        let refs = ws
            .iter()
            .filter(|&&w| stmjit_runtime::value::is_ref(w))
            .count();
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

    /// The shadow-stack mark to release to.
    pub fn mark(&self) -> *mut u64 {
        // SAFETY: ss is live.
        unsafe { (*self.ss).top }
    }

    /// Pops the roots pushed since `mark`.
    pub fn release(&mut self, mark: *mut u64) {
        // SAFETY: mark was the top earlier in this helper; everything above is ours.
        unsafe { (*self.ss).top = mark }
    }

    /// The slot of attribute `name` in the shape of class `id`.
    #[inline]
    pub fn shape_slot(&self, id: usize, name: u32) -> Option<usize> {
        self.class_copy.with(&self.classes, |c| {
            c[id].shape.iter().position(|&n| n == name)
        })
    }

    /// Id of an interned name (interning it if new; only before the program runs or from
    /// helpers that need a name for a dynamic string).
    pub fn name_id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.name_ids.get(name) {
            return id;
        }
        let info = self.info_mut();
        let id = info.names.len() as u32;
        info.names.push(name.to_string());
        info.name_ids.insert(name.to_string(), id);
        info.name_strs.push(crate::UNBOUND);
        id
    }
}

/// The runtime of the thread whose context JIT code passed to a helper.
pub(crate) fn rt_of<'a>(ctx: *mut Ctx) -> &'a mut Runtime {
    // SAFETY: helpers receive the live context of their thread; callers never hold another
    // reference to the runtime across this one's use (borrows are re-taken after every call
    // into JIT code).
    unsafe { &mut *(*ctx).rt }
}
