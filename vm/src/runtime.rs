//! The state of one thread of a program run ([`Runtime`]): its view of the heap (the segment
//! of its running transaction, its STM handle, its shadow stack), its transaction's state,
//! the pending error, and what the transaction has buffered. Helpers reach it through the
//! context JIT code passes them (`rt_of`).
//!
//! Its methods live with their concern, one file each: heap access and allocation
//! (`heap.rs`), roots (`roots.rs`), errors (`error.rs`), transactions (`txn.rs`), the
//! objects' operations (`objects/`, `dict_overlay.rs`, `convert.rs`, `methods.rs`,
//! `helpers.rs`). Program-wide data is [`Runtime::info`]; the few program-wide values every
//! object operation reads (types, the runtime instance, the mode) are copied here.

use crate::class_table::ClassCopy;
use crate::dict_overlay::DictOverlay;
use crate::objects::Types;
use crate::program::{Mode, ProgramInfo};
use crate::txn::ThreadTx;
use crate::Ctx;
use std::cell::{Cell, UnsafeCell};
use std::sync::Arc;
use stmjit_lang::diag::{ErrorKind, TraceEntry};
use stmjit_runtime::transaction::StmThread;
use stmjit_runtime::{ShadowStack, Stm};

/// State of one thread of a program run (see the module docs).
pub struct Runtime {
    /// Program-wide data (shared by all threads).
    pub info: Arc<ProgramInfo>,
    /// The program's object types (a copy of `info.types`).
    pub types: Types,
    /// The runtime instance (`info.stm`).
    pub stm: Arc<Stm>,
    /// Parallel STM or `--gil` (`info.settings.mode`).
    pub mode: Mode,
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
    pub root_overflow: Cell<bool>,
    /// Where such roots go (never read back as valid).
    pub(crate) overflow_slot: Box<UnsafeCell<u64>>,
    /// The pending error, if a helper raised.
    pub error: Option<(ErrorKind, String)>,
    /// Trace of the pending error, innermost first.
    pub trace: Vec<TraceEntry>,
    /// Where the pending exception object is kept (NONE: none, or not made yet): a root
    /// slot of the driver's base frame, or `exc_cell` without a driver (`exceptions.rs`).
    pub exc_slot: *mut u64,
    pub(crate) exc_cell: Box<UnsafeCell<u64>>,
    /// Traces kept aside by running handlers, by key (`exceptions.rs`).
    pub exc_stash: Vec<(u64, Vec<TraceEntry>)>,
    /// `exc_stash` as it was at the running transaction's restart point (its boundary): a
    /// restart puts it back, since the aborted run may have taken traces that the handlers
    /// running at the restart point still need for a bare `raise`.
    pub restart_stash: Vec<(u64, Vec<TraceEntry>)>,
    /// The trace site of the `spawn()` call that started this thread (`None` on the main
    /// thread): an uncaught error here says where its thread came from.
    pub spawn_site: Option<u64>,
    /// The id of the spawned thread this runtime runs (`None` on the main thread), so that
    /// `join()` of the thread itself is an error instead of a wait that never ends.
    pub thread_id: Option<usize>,
    /// Output of the running transaction, appended to the program's output at its commit.
    pub out: Vec<u8>,
    /// Per-thread transaction state (abort unwinding, statistics): see `txn.rs`.
    pub tx: ThreadTx,
    /// The thread's context (null before a driver set it): its current site.
    pub ctx: *mut Ctx,
    /// This thread's copy of the class table (see `class_table`).
    pub class_copy: ClassCopy,
    /// New keys the running transaction inserts into shared dicts at its commit (see
    /// `dict_overlay`).
    pub overlay: DictOverlay,
    /// The runtime records read sites (`--stats`, see `stmjit_runtime::readsites`): [`Runtime::rb`]
    /// stores the operation's site beside each read marker.
    pub record_reads: bool,
    /// How the instances of each class hash, by class id, once asked, with the class
    /// table epoch of the answer (`hashing.rs`).
    pub hash_kinds: std::cell::RefCell<Vec<Option<(u64, crate::hashing::HashKind)>>>,
    /// The identity numbers this thread may give next, `[next, end)` (`hashing.rs`: taken
    /// from the program-wide counter in blocks, so making closures does not contend).
    pub idents: Cell<(i64, i64)>,
}

impl Runtime {
    /// The runtime of a thread of the program `info` on the STM handle `th`, whose running
    /// transaction (if any) is on the segment at `seg_base`.
    ///
    /// # Safety
    /// `th` must be a live handle that outlives the runtime and is used only by this thread.
    pub unsafe fn for_thread(info: Arc<ProgramInfo>, th: *mut StmThread, seg_base: u64) -> Runtime {
        // SAFETY: th is a live handle owned by the caller for the runtime's lifetime.
        let ss = unsafe { (*th).shadow_stack_ptr() };
        let info_records_reads = info.stm.records_read_sites();
        let mut rt = Runtime {
            types: info.types,
            stm: info.stm.clone(),
            mode: info.settings.mode,
            info,
            seg_base,
            th,
            ss,
            allocs_unchecked: 0,
            root_overflow: Cell::new(false),
            overflow_slot: Box::new(UnsafeCell::new(0)),
            error: None,
            trace: Vec::new(),
            exc_slot: std::ptr::null_mut(),
            exc_cell: Box::new(UnsafeCell::new(stmjit_runtime::value::NONE)),
            exc_stash: Vec::new(),
            restart_stash: Vec::new(),
            spawn_site: None,
            thread_id: None,
            out: Vec::new(),
            tx: ThreadTx::default(),
            ctx: std::ptr::null_mut(),
            class_copy: Default::default(),
            overlay: Default::default(),
            record_reads: info_records_reads,
            hash_kinds: Default::default(),
            idents: Cell::new((0, 0)),
        };
        rt.exc_slot = rt.exc_cell.get();
        rt
    }

    /// Appends program output to the running transaction's (written at its commit).
    pub fn write_out(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
    }

    /// The slot of attribute `name` in the shape of class `id`.
    #[inline]
    pub fn shape_slot(&self, id: usize, name: u32) -> Option<usize> {
        self.class_copy.with(&self.info.classes, |c| {
            c[id].shape.iter().position(|&n| n == name)
        })
    }
}

/// The runtime of the thread whose context JIT code passed to a helper.
pub(crate) fn rt_of<'a>(ctx: *mut Ctx) -> &'a mut Runtime {
    // SAFETY: helpers receive the live context of their thread; callers never hold another
    // reference to the runtime across this one's use (borrows are re-taken after every call
    // into JIT code).
    unsafe { &mut *(*ctx).rt }
}
