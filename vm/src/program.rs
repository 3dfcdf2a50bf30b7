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
use std::sync::Arc;
use stmjit_lang::ast::{ArgKind, Program};
use stmjit_lang::diag::Span;
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
#[derive(Debug, Default)]
pub struct Names {
    texts: Vec<String>,
    ids: HashMap<String, u32>,
    strs: Vec<Word>,
}

impl Names {
    /// The id of `name`, interning it if new (while the program is linked: ids are embedded
    /// in the code). A new name has no str object ([`Names::str_obj`] is `UNBOUND`) until
    /// [`Names::set_str_obj`].
    pub fn intern(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.texts.len() as u32;
        self.texts.push(name.to_string());
        self.ids.insert(name.to_string(), id);
        self.strs.push(crate::UNBOUND);
        id
    }

    /// The id of `name`, if interned.
    pub fn id(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// The text of name `id`.
    pub fn text(&self, id: u32) -> &str {
        &self.texts[id as usize]
    }

    /// The str object of name `id` (an old, immutable object: a key of class attribute
    /// dicts), or `UNBOUND` for a name interned after the constants were allocated.
    pub fn str_obj(&self, id: u32) -> Word {
        self.strs[id as usize]
    }

    /// Sets the str object of name `id`.
    pub fn set_str_obj(&mut self, id: u32, w: Word) {
        self.strs[id as usize] = w;
    }

    /// Every name's str object, by id (GC roots for the whole run).
    pub fn str_objs(&self) -> &[Word] {
        &self.strs
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
}

impl Constants {
    /// Every constant (the program's roots).
    pub fn all(&self) -> impl Iterator<Item = Word> + '_ {
        self.func_objs
            .iter()
            .chain(&self.builtin_objs)
            .chain(self.strs.values())
            .chain(self.floats.values())
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

/// What compiled code refers to besides names and constants, filled while the program is
/// compiled: trace sites and class statements (by index), the caches of its attribute and
/// method-call sites and the table of its functions' code addresses (by address: boxed,
/// so that they never move).
#[derive(Debug)]
pub struct CodeTables {
    /// Trace sites.
    pub sites: Vec<Site>,
    /// Class statements.
    pub classdefs: Vec<ClassDef>,
    /// The argument kinds of each call with keywords or unpacking (`callkw::stmjit_call_ex`).
    pub call_shapes: Vec<Vec<ArgKind>>,
    /// Attribute-site caches: entries `class id << 32 | slot` (see `site_cache`).
    #[allow(clippy::vec_box)]
    pub attr_caches: Vec<Box<SiteCache>>,
    /// Method-call and class-call site caches, until [`ProgramInfo::link`] hands them to
    /// the class table (which empties them on class changes: see `class_table`).
    #[allow(clippy::vec_box)]
    pub method_sites: Vec<Box<SiteCache>>,
    /// Code addresses of the program's JIT functions by function id (filled once they are
    /// finalized): method-call sites call the function their cache names through it.
    pub func_code: Box<[u64]>,
    /// Entries taking their arguments from an array, by function id (after finalize).
    pub entries: Vec<Option<ArrayEntry>>,
}

impl CodeTables {
    /// Empty tables for a program of `nfuncs` functions.
    pub fn new(nfuncs: usize) -> CodeTables {
        CodeTables {
            sites: Vec::new(),
            classdefs: Vec::new(),
            call_shapes: Vec::new(),
            attr_caches: Vec::new(),
            method_sites: Vec::new(),
            func_code: vec![0; nfuncs].into_boxed_slice(),
            entries: vec![None; nfuncs],
        }
    }

    /// Registers a trace site; its index.
    pub fn add_site(&mut self, site: Site) -> usize {
        self.sites.push(site);
        self.sites.len() - 1
    }

    /// Registers the argument kinds of a call with keywords or unpacking; their index.
    pub fn add_call_shape(&mut self, kinds: Vec<ArgKind>) -> usize {
        self.call_shapes.push(kinds);
        self.call_shapes.len() - 1
    }

    /// A new attribute-site cache; its address (stable).
    pub fn new_attr_site(&mut self) -> *const SiteCache {
        self.attr_caches.push(Box::default());
        &**self.attr_caches.last().unwrap()
    }

    /// A new method-call (or class-call) site cache; its address (stable).
    pub fn new_method_site(&mut self) -> *const SiteCache {
        self.method_sites.push(Box::default());
        &**self.method_sites.last().unwrap()
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
}

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
            code: CodeTables::new(nfuncs),
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
        }
    }

    /// Adds what compiling the program produced, before any of its threads runs.
    pub fn link(&mut self, names: Names, consts: Constants, mut code: CodeTables) {
        self.classes = ClassTable::with_method_sites(std::mem::take(&mut code.method_sites));
        self.special_methods = crate::special::NAMES.iter().any(|n| names.id(n).is_some());
        self.names = names;
        self.consts = consts;
        self.code = code;
    }
}
