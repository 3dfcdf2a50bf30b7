//! What every thread of a program run shares ([`ProgramInfo`]): the program and its
//! settings, what compiled code refers to (interned [`Names`], literal [`Constants`], the
//! [`CodeTables`] of sites, class statements, caches and code addresses), and the few
//! program-wide tables that change at run time, each behind its own lock or atomics: the
//! class table, the output queue, the threads, the conflict figures, the contended dicts,
//! the servers.
//!
//! It is built before any of the program's threads runs, in two steps: [`ProgramInfo::new`]
//! (enough for a runtime to allocate the program's constants), then [`ProgramInfo::link`]
//! with what compilation produced. Once shared (an `Arc` handed to the threads' drivers) it
//! never changes but through those locks.

use crate::append::AppendVec;
use crate::class_table::ClassTable;
use crate::dict_overlay::Contended;
use crate::objects::Types;
use crate::output::Output;
use crate::serve::ServeState;
use crate::site_cache::SiteCache;
use crate::threads::Threads;
use crate::txn::{Gil, TxnStats, DEFAULT_BUDGET};
use crate::ArrayEntry;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};
use stmjit_lang::ast::{ArgKind, Program};
use stmjit_lang::diag::{ErrorKind, Span};
use stmjit_runtime::value::Word;
use stmjit_runtime::Stm;

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

/// How a run's transactions behave, fixed before it starts (command line and environment).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Settings {
    /// Parallel STM or `--gil`.
    pub mode: Mode,
    /// Initial budget of a transaction (loop back-edges and calls; `STMJIT_BUDGET`).
    pub budget: u64,
    /// Debug switch (`STMJIT_ABORT_PROBABILITY`): probability, in 1/2^32, that a commit of
    /// a transaction that can abort aborts instead.
    pub abort_chance: u64,
    /// `--stats`: print the report at exit.
    pub stats: bool,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            mode: Mode::Stm,
            budget: DEFAULT_BUDGET as u64,
            abort_chance: 0,
            stats: false,
        }
    }
}

/// The interned names of a program (attributes, methods, class members, and the names of
/// its errors): compiled code passes a name by its id.
///
/// Functions are compiled at their first call, by any thread, while others read names by
/// id: interning goes through `&self` (under the lock of the map), reads by id take no lock.
#[derive(Debug, Default)]
pub struct Names {
    texts: AppendVec<String>,
    strs: AppendVec<AtomicU64>,
    ids: RwLock<HashMap<String, u32>>,
}

impl Names {
    /// The id of `name`, interning it if new (ids are embedded in the code). A new name has
    /// no str object ([`Names::str_obj`] is `UNBOUND`) until [`Names::set_str_obj`].
    pub fn intern(&self, name: &str) -> u32 {
        if let Some(id) = self.id(name) {
            return id;
        }
        let mut ids = self.ids.write().unwrap_or_else(|e| e.into_inner());
        if let Some(&id) = ids.get(name) {
            return id;
        }
        // Both pushes under the map's write lock: the two vectors keep the same indexes.
        let id = self.texts.push(name.to_string()) as u32;
        self.strs.push(AtomicU64::new(crate::UNBOUND));
        ids.insert(name.to_string(), id);
        id
    }

    /// The id of `name`, if interned.
    pub fn id(&self, name: &str) -> Option<u32> {
        let ids = self.ids.read().unwrap_or_else(|e| e.into_inner());
        ids.get(name).copied()
    }

    /// The text of name `id`.
    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// The str object of name `id` (an old, immutable object: a key of class attribute
    /// dicts), or `UNBOUND` for a name interned after the constants were allocated.
    pub fn str_obj(&self, id: u32) -> Word {
        self.strs[id as usize].load(Ordering::Relaxed)
    }

    /// Sets the str object of name `id` (before the program runs).
    pub fn set_str_obj(&self, id: u32, w: Word) {
        self.strs[id as usize].store(w, Ordering::Relaxed)
    }

    /// Every name's str object, by id (GC roots for the whole run).
    pub fn str_objs(&self) -> Vec<Word> {
        self.strs
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .collect()
    }

    /// Number of names.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Whether no name is interned.
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }
}

/// The program's literal objects, allocated and promoted to the old space before it is
/// compiled (compiled code embeds their references; they never move), GC roots for the
/// whole run.
#[derive(Debug, Default)]
pub struct Constants {
    /// The globals array (a card-marked array object, one word per global).
    pub globals: Word,
    /// Function objects by function id.
    pub func_objs: Vec<Word>,
    /// Builtin function objects by index in `Builtin::ALL`.
    pub builtin_objs: Vec<Word>,
    /// Str literals.
    pub strs: HashMap<String, Word>,
    /// Float literals by bits.
    pub floats: HashMap<u64, Word>,
    /// Int literals beyond the tagged ints, by value
    /// (`stmjit_lang::parser::big_literal_value`).
    pub bigs: HashMap<num_bigint::BigInt, Word>,
}

impl Constants {
    /// Every constant (the program's roots).
    pub fn all(&self) -> impl Iterator<Item = Word> + '_ {
        self.func_objs
            .iter()
            .chain(&self.builtin_objs)
            .chain(self.strs.values())
            .chain(self.floats.values())
            .chain(self.bigs.values())
            .chain(std::iter::once(&self.globals))
            .copied()
    }
}

/// A call site or failing-expression site: where, in which function (for traces).
#[derive(Clone, Debug)]
pub struct Site {
    /// Position reported.
    pub span: Span,
    /// Index into [`ProgramInfo::func_names`].
    pub func: u32,
    /// The attribute or global variable the site's operation accesses: conflict reports
    /// name the object by it (`conflict_names.rs`).
    pub accesses: Option<Accessed>,
}

/// What a site's operation accesses by name ([`Site::accesses`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Accessed {
    /// Attribute `o.name` (its name id), read or written.
    Attr(u32),
    /// Global variable (its index in the program's globals), read or written.
    Global(u32),
}

/// A class statement of the program, for `calls::stmjit_make_class`.
#[derive(Debug, Clone)]
pub struct ClassDef {
    /// Name.
    pub name: String,
    /// `(name id, function id)` of the methods.
    pub methods: Vec<(u32, usize)>,
    /// Name ids of the class attributes, in order (their values are passed at run time).
    pub attrs: Vec<u32>,
}

/// What compiled code refers to besides names and constants, filled as functions are
/// compiled (at their first call, by any thread, while others run): trace sites, class
/// statements and call shapes (by index), the caches of attribute sites and the table of
/// the functions' code addresses (by address: they never move), and the compiler itself.
/// Every table grows through `&self` and is read without a lock.
#[derive(Debug)]
pub struct CodeTables {
    /// Trace sites.
    pub sites: AppendVec<Site>,
    /// Class statements.
    pub classdefs: AppendVec<ClassDef>,
    /// The argument kinds of each call with keywords or unpacking (`callkw::stmjit_call_ex`).
    pub call_shapes: AppendVec<Vec<ArgKind>>,
    /// Attribute-site caches: entries `class id << 32 | slot` (see `site_cache`).
    attr_caches: AppendVec<SiteCache>,
    /// The cache of each attribute read by (name, line, column) in `attr_caches`: every
    /// compiled copy of one read (its function's own, and those inlined at calls of it)
    /// probes and fills the same cache.
    read_sites: Mutex<HashMap<(u32, u32, u32), usize>>,
    /// Word tables compiled code reads by address: the (global, function object) pairs of
    /// runs of `def` statements (`calls::stmjit_define_globals`) and the items of constant
    /// displays.
    word_tables: AppendVec<Box<[u64]>>,
    /// Code addresses of the program's JIT functions by function id: 0 until the function
    /// is compiled (JIT code that finds 0 calls the compiler, `stmjit_compile`). Set once,
    /// with a release store after the code is executable.
    pub func_code: Box<[AtomicU64]>,
    /// Entries taking their arguments from an array ([`ArrayEntry`]), by the number of
    /// words they pass: 0 until made.
    entries: Box<[AtomicU64]>,
    /// Compiles functions at their first call (set before the program runs).
    compiler: OnceLock<Box<dyn Compiler>>,
    /// Functions compiled and the time it took (`--stats`).
    pub compiled: CompileStats,
}

/// Compiles the program's functions while it runs (the JIT, `stmjit_jit::program`). Its
/// work is not transactional state: nothing of it is undone when a transaction aborts.
pub trait Compiler: Send + Sync + std::fmt::Debug {
    /// Compiles program function `fid`, unless it is (another thread may have done it
    /// meanwhile), and stores its code address in [`CodeTables::func_code`]; that address.
    /// `Err` is why it cannot be compiled.
    fn compile(&self, info: &ProgramInfo, fid: usize) -> Result<u64, CompileError>;

    /// Makes the [`ArrayEntry`] passing `words` words, unless it is made, and stores it; its
    /// address.
    fn array_entry(&self, info: &ProgramInfo, words: usize) -> Result<u64, CompileError>;

    /// Compiles part `k` of a module body run by parts, unless it is, frees the code of
    /// the part before it (which never runs again), and returns its code address.
    fn module_part(&self, info: &ProgramInfo, k: usize) -> Result<u64, CompileError>;
}

/// Why code could not be made, as the exception the call that needed it raises: a
/// `MemoryError` when memory for the code could not be had (a code space that cannot be
/// mapped under `ulimit -v`), a `RuntimeError` for anything else.
#[derive(Clone, Debug, PartialEq)]
pub struct CompileError {
    /// The exception's kind.
    pub kind: ErrorKind,
    /// Its message.
    pub message: String,
}

impl From<CompileError> for crate::error::Unwind {
    fn from(e: CompileError) -> Self {
        crate::error::exc(e.kind, e.message)
    }
}

/// How much compiling a run did (`--stats`).
#[derive(Debug, Default)]
pub struct CompileStats {
    /// Program functions compiled (`<module>` included).
    pub functions: AtomicU64,
    /// Time spent compiling them, in nanoseconds (IR, code generation, `%gs` rewrite).
    pub nanos: AtomicU64,
    /// CPU time of the compiling threads meanwhile, in nanoseconds (the part of `nanos`
    /// that other threads and processes did not take).
    pub cpu_nanos: AtomicU64,
    /// Bytes of machine code made for them.
    pub code_bytes: AtomicU64,
    /// Bytes of it given back once it had run (the parts of a huge module body).
    pub code_freed: AtomicU64,
    /// First calls that found their function not compiled yet while the calling thread's
    /// transaction was inevitable and had to stay so (an atomic block, or a call from Rust):
    /// each held the other segments' writer commits for the compilation's length.
    pub inevitable: AtomicU64,
}

impl CodeTables {
    /// Empty tables for a program of `nfuncs` functions whose entries pass at most
    /// `max_words` words.
    pub fn new(nfuncs: usize, max_words: usize) -> CodeTables {
        CodeTables {
            sites: AppendVec::new(),
            classdefs: AppendVec::new(),
            call_shapes: AppendVec::new(),
            attr_caches: AppendVec::new(),
            read_sites: Mutex::new(HashMap::new()),
            word_tables: AppendVec::new(),
            func_code: (0..nfuncs).map(|_| AtomicU64::new(0)).collect(),
            entries: (0..=max_words).map(|_| AtomicU64::new(0)).collect(),
            compiler: OnceLock::new(),
            compiled: CompileStats::default(),
        }
    }

    /// Registers a trace site; its index.
    pub fn add_site(&self, site: Site) -> usize {
        self.sites.push(site)
    }

    /// Registers the argument kinds of a call with keywords or unpacking; their index.
    pub fn add_call_shape(&self, kinds: Vec<ArgKind>) -> usize {
        self.call_shapes.push(kinds)
    }

    /// Registers a class statement; its index.
    pub fn add_classdef(&self, def: ClassDef) -> usize {
        self.classdefs.push(def)
    }

    /// A new attribute-site cache; its address (stable).
    pub fn new_attr_site(&self) -> *const SiteCache {
        let i = self.attr_caches.push(SiteCache::default());
        &self.attr_caches[i]
    }

    /// The cache of the attribute read of `name` at `at` (made at its first use); its
    /// address (stable). Why shared: a method body inlined at a call site has no slow path of
    /// its own that fills a cache (it leaves through the call), the method's code fills it.
    pub fn attr_read_site(&self, name: u32, at: Span) -> *const SiteCache {
        let mut sites = self.read_sites.lock().unwrap_or_else(|e| e.into_inner());
        let i = *sites
            .entry((name, at.line, at.col))
            .or_insert_with(|| self.attr_caches.push(SiteCache::default()));
        &self.attr_caches[i]
    }

    /// Keeps the flat (global index, function object) pairs of a run of `def` statements;
    /// their address (stable, for `calls::stmjit_define_globals`).
    pub fn add_def_run(&self, pairs: Vec<u64>) -> *const u64 {
        self.add_words(pairs)
    }

    /// Keeps `words` for the life of the program (constants: the GC never updates them);
    /// their address (stable).
    pub fn add_words(&self, words: Vec<u64>) -> *const u64 {
        let i = self.word_tables.push(words.into_boxed_slice());
        self.word_tables[i].as_ptr()
    }

    /// Sets the compiler (once, before the program runs).
    pub fn set_compiler(&self, compiler: Box<dyn Compiler>) {
        if self.compiler.set(compiler).is_err() {
            panic!("the compiler is set once");
        }
    }

    /// The compiled code of function `fid`, if it is compiled.
    pub fn compiled_code(&self, fid: usize) -> Option<u64> {
        let code = self.func_code[fid].load(Ordering::Acquire);
        (code != 0).then_some(code)
    }

    /// Publishes the code address of function `fid` (executable by now).
    pub fn publish_code(&self, fid: usize, code: u64) {
        self.func_code[fid].store(code, Ordering::Release);
    }

    /// The array entry passing `words` words, if made.
    pub fn made_entry(&self, words: usize) -> Option<u64> {
        let e = self.entries.get(words)?.load(Ordering::Acquire);
        (e != 0).then_some(e)
    }

    /// Publishes the array entry passing `words` words (executable by now).
    pub fn publish_entry(&self, words: usize, entry: u64) {
        self.entries[words].store(entry, Ordering::Release);
    }
}

/// What every thread of a program run shares (see the module docs).
pub struct ProgramInfo {
    /// The program.
    pub program: Arc<Program>,
    /// File name for error traces.
    pub file: String,
    /// `args()`.
    pub args: Vec<String>,
    /// Ends the process when the program fails in a thread (see [`stmjit_lang::Exit`]).
    pub exit: stmjit_lang::Exit,
    /// How transactions run.
    pub settings: Settings,
    /// Registered object types.
    pub types: Types,
    /// Bytes of old space the heap may use (in use + one nursery) before a MemoryError.
    pub heap_limit: u64,
    /// The runtime instance.
    pub stm: Arc<Stm>,
    /// Process start, for `time()`.
    pub start: std::time::Instant,
    /// Function names for traces: qualnames of the program's functions, then `<module>`.
    pub func_names: Vec<String>,
    /// Interned names.
    pub names: Names,
    /// Literal objects.
    pub consts: Constants,
    /// Sites, class statements, caches and code addresses of the compiled code.
    pub code: CodeTables,
    /// Classes created at run time (index = `ClassObj::class_id`).
    pub classes: ClassTable,
    /// Output of committed transactions, written in commit order.
    pub output: Output,
    /// The global lock of `--gil`.
    pub gil: Gil,
    /// Threads started by `spawn`.
    pub threads: Threads,
    /// The figures of `--stats` that only the object model knows (conflicts by site, time
    /// lost, injected aborts, inevitable transactions).
    pub txn_stats: TxnStats,
    /// Dicts whose insertions conflicted: their new keys wait for commit (`dict_overlay`).
    pub contended: Contended,
    /// `serve`'s servers and request figures (`serve.rs`).
    pub serve: ServeState,
    /// The program names a special method (`__eq__`, `__repr__`, ...): value operations
    /// then keep the instances they meet at hand, to call them (`special.rs`).
    pub special_methods: bool,
    /// `--stats-json FILE`: where to write the `--stats` figures as JSON at exit (kept
    /// out of [`Settings`], which is `Copy`).
    pub stats_json: Option<std::path::PathBuf>,
    /// `--trace FILE`: where to write the event trace at exit (`trace_json.rs`).
    pub trace_json: Option<std::path::PathBuf>,
    /// `--timeline FILE`: where to draw the event trace as SVG at exit (`trace_json.rs`).
    pub timeline_svg: Option<std::path::PathBuf>,
    /// What the embedder writes when the program ends (`--dump-asm-at exit`'s listing):
    /// the program may end in any thread, by an error ([`crate::threads`]' `fail`), so it
    /// is kept here, taken and run once by whichever thread ends the run.
    at_exit: Mutex<Option<AtExit>>,
}

/// A report written at the end of a run; `Err` is the exit status it asks for.
pub type AtExit = Box<dyn FnOnce() -> Result<(), i32> + Send>;

impl ProgramInfo {
    /// The data of `program` about to be compiled and run on `stm` (its types `types`): no
    /// names, constants or code yet ([`ProgramInfo::link`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        program: Arc<Program>,
        file: &str,
        args: Vec<String>,
        exit: stmjit_lang::Exit,
        settings: Settings,
        stm: Arc<Stm>,
        types: Types,
        heap_limit: u64,
    ) -> ProgramInfo {
        let nfuncs = program.functions.len();
        let max_words = program
            .functions
            .iter()
            .map(|f| f.entry_words())
            .max()
            .unwrap_or(0);
        let mut func_names: Vec<String> = program
            .functions
            .iter()
            .map(|f| f.qualname.clone())
            .collect();
        func_names.push("<module>".into());
        ProgramInfo {
            program,
            file: file.to_string(),
            args,
            exit,
            settings,
            types,
            heap_limit,
            stm,
            start: std::time::Instant::now(),
            func_names,
            names: Names::default(),
            consts: Constants::default(),
            code: CodeTables::new(nfuncs, max_words),
            classes: ClassTable::default(),
            output: Output::default(),
            gil: Gil::default(),
            threads: Threads::default(),
            txn_stats: TxnStats::default(),
            contended: Contended::default(),
            serve: ServeState::default(),
            special_methods: false,
            stats_json: None,
            trace_json: None,
            timeline_svg: None,
            at_exit: Mutex::new(None),
        }
    }

    /// Sets what to write when the program ends (see [`ProgramInfo::run_at_exit`]).
    pub fn set_at_exit(&self, report: AtExit) {
        *self.at_exit.lock().unwrap_or_else(|e| e.into_inner()) = Some(report);
    }

    /// Writes the end-of-run report, if one is set and not yet written; `Err` is the exit
    /// status it asks for (a listing that cannot be written).
    pub fn run_at_exit(&self) -> Result<(), i32> {
        let report = self
            .at_exit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        report.map_or(Ok(()), |report| report())
    }

    /// Adds the program's names and constants (allocated in its first transaction), before
    /// anything of it is compiled and before any of its threads runs.
    pub fn link(&mut self, names: Names, consts: Constants) {
        // Class ids 0.. are the built-in exception classes, made with the constants.
        self.classes
            .write()
            .extend(crate::exceptions::builtin_class_infos());
        self.special_methods = crate::special::NAMES
            .iter()
            .chain(stmjit_lang::special::ARITH_NAMES.iter())
            .chain(stmjit_lang::special::CONTAINER_NAMES.iter())
            .chain(stmjit_lang::special::INPLACE_NAMES.iter())
            .chain(["__hash__"].iter())
            .any(|n| names.id(n).is_some());
        self.names = names;
        self.consts = consts;
    }

    /// The code address of program function `fid`, compiling it first if it is not
    /// compiled yet (its first call). `Err` is why it cannot be compiled.
    pub fn code_of(&self, fid: usize) -> Result<u64, CompileError> {
        if let Some(code) = self.code.compiled_code(fid) {
            return Ok(code);
        }
        self.compiler()?.compile(self, fid)
    }

    /// The code of part `k` of a module body run by parts ([`Compiler::module_part`]).
    pub fn module_part(&self, k: usize) -> Result<u64, CompileError> {
        self.compiler()?.module_part(self, k)
    }

    /// The entry calling a function of `words` words from an array (made at its first use).
    pub fn array_entry(&self, words: usize) -> Result<ArrayEntry, CompileError> {
        let address = match self.code.made_entry(words) {
            Some(e) => e,
            None => self.compiler()?.array_entry(self, words)?,
        };
        // SAFETY: entries are executable trampolines with the signature of ArrayEntry,
        // made by the compiler for this number of words.
        Ok(unsafe { std::mem::transmute::<u64, ArrayEntry>(address) })
    }

    fn compiler(&self) -> Result<&dyn Compiler, CompileError> {
        self.code
            .compiler
            .get()
            .map(|c| &**c)
            .ok_or_else(|| CompileError {
                kind: ErrorKind::RuntimeError,
                message: "no compiler: the program runs without JIT".to_string(),
            })
    }
}
