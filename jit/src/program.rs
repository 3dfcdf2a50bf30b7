//! Linking and running a whole program ([`run`]): the runtime instance, the constants
//! (allocated and promoted to the old space before any code embeds them), the program's
//! data, compilation, entry trampolines, `--dump-asm`, and the main thread's driver.
//!
//! # Compiling less, later
//! `<module>` is compiled before the program runs; every other function at its first call
//! (JIT code finds 0 in the table of code addresses and calls `stmjit_compile`; Rust callers
//! ask `ProgramInfo::code_of`), so a program pays only for the functions it runs. `--dump-asm`
//! (and `STMJIT_EAGER=1`) compiles every function before the program runs instead, so that
//! the listing shows them all, in order. A huge function keeps its locals in frame slots
//! (`compile::locals_in_slots`) and gets the quick code-generation tier
//! ([`QUICK_TIER_ABOVE`]): compile time and memory linear in its size. A huge module or
//! function body is compiled as parts of about a thousand nodes (a function's: 256, those
//! without loops with the compact tier, whose code is small), one after the other
//! (`compile::parts`; a function's parts share its frame), so that its compile memory is
//! that of one part (a module body's parts are compiled as they are reached, and their code
//! and syntax tree freed once they ran: `program/module_parts.rs`); so are huge blocks nested in `if`, `else`, `while` and `for`, displays
//! of thousands of expressions, by parts of a few hundred items, and chains of thousands of
//! binary operators (`compile/chains.rs`); and a display of constants (big int literals included: objects made before the
//! code, like str literals) is one table whatever its size (`compile/literals.rs`). `--stats` reports the functions compiled and
//! the time it took.
//!
//! The environment switches (for tests, benchmarks and debugging) are read and checked once,
//! here: see [`crate::switches`].

mod module_parts;

use crate::compile::{self, FnCompiler, Shared};
use crate::switches::Switches;
use cranelift_codegen::ir::{types::I64, InstBuilder, Signature, Type};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::{HashMap, HashSet};
use std::mem::offset_of;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use stmjit_backend::disasm::Syntax;
use stmjit_backend::JitError;
use stmjit_backend::SegmentBase;
use stmjit_lang::ast::*;
use stmjit_lang::diag::ErrorKind;
use stmjit_runtime::transaction::StmThread;
use stmjit_runtime::value::NONE;
use stmjit_runtime::{Stm, StmConfig};
use stmjit_vm::abi::{Effects, Helper};
use stmjit_vm::threads::Driver;
use stmjit_vm::{
    CompileError, Compiler, Constants, Ctx, Mode, Names, ProgramInfo, Runtime, Settings, UNBOUND,
};

/// How to run a program.
#[derive(Clone, Debug)]
pub struct Options {
    /// `--segment-base`.
    pub segment_base: Option<SegmentBase>,
    /// `--dump-asm`: `Some(None)` = stderr, `Some(Some(path))` = that file.
    pub dump_asm: Option<Option<std::path::PathBuf>>,
    /// `--asm-syntax`.
    pub syntax: Syntax,
    /// `--dump-asm-fn NAME`: list only that function (see [`crate::listing::function_matches`]).
    pub dump_asm_only: Option<String>,
    /// `--dump-asm-at exit`: compile at first call, as a run without a listing does, and
    /// list the code compiled when the program ends. The code a function gets at its first
    /// call uses what the run has made by then (classes' shapes: guessed attribute slots),
    /// which the listing made before the program runs cannot show.
    pub dump_asm_at_exit: bool,
    /// `--perf-map`: write `/tmp/perf-PID.map` for `perf report` (a line per function of
    /// JIT code, as it is compiled).
    pub perf_map: bool,
    /// Nursery size in bytes (default: the runtime's; `STMJIT_NURSERY` overrides).
    pub nursery: Option<u64>,
    /// `--threads N`: segments, i.e. transactions that may run in parallel (default: the
    /// CPUs present).
    pub threads: Option<usize>,
    /// `--gil`: one transaction at a time, no read barriers (the baseline).
    pub gil: bool,
    /// `--stats`: print the transaction and GC figures to stderr at exit.
    pub stats: bool,
    /// `--stats-json FILE`: write the same figures as JSON to FILE at exit.
    pub stats_json: Option<std::path::PathBuf>,
    /// `--trace FILE`: record the run's events and write them as Chrome trace-event JSON to
    /// FILE at exit (`stmjit_vm::trace_json`).
    pub trace: Option<std::path::PathBuf>,
    /// `--timeline FILE`: record the same events and draw them as an SVG timeline to FILE
    /// at exit (`stmjit-timeline`).
    pub timeline: Option<std::path::PathBuf>,
    /// Ends the process when the program fails in a spawned thread (see
    /// [`stmjit_lang::Exit`]): the binary passes `std::process::exit`.
    pub exit: stmjit_lang::Exit,
}

impl Options {
    /// Whether a report names the sides of conflicts (`--stats`, `--stats-json`, `--trace`):
    /// then the runtime records read sites, and read barriers cost one more load and store
    /// (see `stmjit_runtime::readsites`).
    pub fn reports_conflicts(&self) -> bool {
        self.stats || self.stats_json.is_some() || self.trace.is_some()
    }

    /// The defaults (`gs:` segment base, no listing, the CPUs' number of segments, no
    /// `--gil`, no `--stats`), ending the process with `exit`.
    pub fn new(exit: stmjit_lang::Exit) -> Options {
        Options {
            segment_base: None,
            dump_asm: None,
            syntax: Syntax::default(),
            dump_asm_only: None,
            dump_asm_at_exit: false,
            perf_map: false,
            nursery: None,
            threads: None,
            gil: false,
            stats: false,
            stats_json: None,
            trace: None,
            timeline: None,
            exit,
        }
    }
}

/// Declares every helper JIT code calls ([`Helper`]) in `jit`, and defines the
/// `preserve_all` stubs of those called through one: what JIT code calls for each helper.
fn declare_helpers(jit: &mut stmjit_backend::Jit) -> HashMap<Helper, FuncId> {
    let mut ids = HashMap::new();
    for &helper in Helper::ALL {
        let d = helper.decl();
        let returns: &[Type] = if d.returns_word { &[I64] } else { &[] };
        let sig = jit.signature(&vec![I64; d.params], returns);
        let import = jit
            .module()
            .declare_function(d.symbol, Linkage::Import, &sig)
            .expect("declare helper");
        let id = match d.effects {
            Effects::PreserveAll { stub } => jit
                .define_preserve_all_stub(stub, import, d.params)
                .expect("preserve_all stub"),
            Effects::MayMove | Effects::NoMove => import,
        };
        ids.insert(helper, id);
    }
    ids
}

/// Runs `program` (already parsed) as JIT code; returns the exit status (0, or 1 after
/// printing a runtime error). Must run on a thread with a big stack.
///
/// The steps: start the runtime; allocate the program's constants in its first
/// transaction and commit them (compiled code embeds them); link the program's data; compile
/// `<module>` (and every function, with `--dump-asm` or `STMJIT_EAGER=1`); run `<module>`
/// on the main thread's driver. The other functions are compiled at their first call
/// ([`Jit`]).
pub fn run(program: Program, file: &str, args: Vec<String>, opts: &Options) -> i32 {
    let switches = match Switches::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return stmjit_lang::EXIT_SYNTAX_ERROR;
        }
    };
    let program = Arc::new(program);
    let stm = match start_runtime(opts, &switches) {
        Ok(stm) => stm,
        Err(e) => {
            // Its memory could not be mapped (an address-space limit), or its file made.
            let kind = if e.kind() == std::io::ErrorKind::OutOfMemory {
                ErrorKind::MemoryError
            } else {
                ErrorKind::RuntimeError
            };
            eprintln!("error: {}: cannot create the runtime: {e}", kind.name());
            return 1;
        }
    };
    let types = stmjit_vm::objects::register(&stm);
    let layout = *stm.layout();
    // STMJIT_HEAP may lower the limit (tests of a full heap), never raise it: the old space
    // must keep room beyond it for the survivors of the nurseries.
    let heap_limit =
        ((layout.old_end - layout.old_start) / 4 * 3).min(switches.heap.unwrap_or(u64::MAX));
    if let Some(n) = switches.fail_privatize {
        stmjit_runtime::pages::fail_privatizations_after(n);
    }
    let settings = settings(&switches, opts);
    let mut info = Arc::new(ProgramInfo::new(
        program,
        file,
        args,
        opts.exit,
        settings,
        stm.clone(),
        types,
        heap_limit,
    ));
    let mut th = match stm.try_thread() {
        Ok(th) => Box::new(th),
        Err(e) => {
            eprintln!("error: MemoryError: cannot start the main thread: {e}");
            return 1;
        }
    };
    th.begin();
    let (names, consts) = match allocate_constants(&info, &mut th) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    // The constants are embedded in the code: committed before any is compiled, then roots
    // for the whole run.
    if th.commit().is_err() {
        eprintln!("error: the initial transaction was aborted");
        return 1;
    }
    for w in consts.all().chain(names.str_objs()) {
        if stmjit_runtime::value::is_ref(w) {
            stm.add_root(w);
        }
    }
    drop(th);
    // Converting a builtin method back to a word names it by id: intern them all now.
    for name in stmjit_vm::methods::builtin_method_names() {
        names.intern(name);
    }
    let data =
        Arc::get_mut(&mut info).expect("only this thread holds the program's data before it runs");
    data.link(names, consts);
    data.stats_json = opts.stats_json.clone();
    data.trace_json = opts.trace.clone();
    data.timeline_svg = opts.timeline.clone();
    let listing = crate::listing::ListingOptions {
        target: opts.dump_asm.clone(),
        syntax: opts.syntax,
        only: opts.dump_asm_only.clone(),
    };
    let listed_at_exit = listing.target.is_some() && opts.dump_asm_at_exit;
    let eager = (listing.target.is_some() && !listed_at_exit) || switches.eager;
    let jit = match Jit::new(&info, opts, &switches, &layout, listing.target.is_some()) {
        Ok(jit) => jit,
        Err(e) => {
            eprintln!("error: {}", start_error(&e));
            return 1;
        }
    };
    // A module body run by parts: its statements go to the compiler, which drops each
    // part's once it ran.
    let body = if eager {
        None
    } else {
        module_parts::take_parted_body(&mut info)
    };
    let main = match jit.compile_start(&info, eager, body) {
        Ok(main) => main,
        Err(e) => {
            eprintln!("error: {}", start_error(&e));
            return 1;
        }
    };
    if listing.target.is_some() && !listed_at_exit {
        if let Err(status) = write_listing_of(&jit.state, &listing, file) {
            return status;
        }
    }
    if listed_at_exit {
        let state = jit.state.clone();
        let file = file.to_string();
        info.set_at_exit(Box::new(move || write_listing_of(&state, &listing, &file)));
    }
    info.code.set_compiler(Box::new(jit));
    run_main(info, main)
}

/// Writes the listing `listing` asks for of the code compiled so far; `Err` is the exit
/// status (see [`crate::listing::write_listing`]).
fn write_listing_of(
    state: &Mutex<JitState>,
    listing: &crate::listing::ListingOptions,
    file: &str,
) -> Result<(), i32> {
    // The source lines of the listing: from the file itself (a program given as a string
    // has line numbers only).
    let source = std::fs::read_to_string(file).ok();
    let state = state.lock().unwrap_or_else(|e| e.into_inner());
    crate::listing::write_listing(&state.jit, listing, source.as_deref())
}

/// How the run's transactions behave, from the options and the switches.
fn settings(switches: &Switches, opts: &Options) -> Settings {
    let mut settings = Settings {
        mode: if opts.gil { Mode::Gil } else { Mode::Stm },
        stats: opts.stats,
        ..Settings::default()
    };
    // Both are in range: `Switches::from_env` checked them.
    if let Some(b) = switches.budget {
        settings.budget = b as u64;
    }
    if let Some(p) = switches.abort_probability {
        settings.abort_chance = (p * (1u64 << 32) as f64) as u64;
    }
    settings
}

/// How long a program must be idle (no commit, no transaction running) before the runtime
/// collects the garbage it left: long enough that a program between two bursts of work
/// never pays for it, short enough that a server whose load stopped shrinks within seconds.
const IDLE_COLLECT: std::time::Duration = std::time::Duration::from_secs(1);

/// The runtime instance: as many segments as `--threads` says (the CPUs by default; one
/// with `--gil`).
fn start_runtime(opts: &Options, switches: &Switches) -> std::io::Result<Arc<Stm>> {
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 254);
    let mut config = StmConfig {
        num_segments: if opts.gil { 1 } else { threads },
        move_threads: switches.move_threads,
        commit_log: switches.commit_log,
        trace: opts.trace.is_some() || opts.timeline.is_some(),
        record_read_sites: opts.reports_conflicts(),
        // A server whose load stopped, or a program that waits, gives back the garbage it
        // left below the major-collection threshold (runtime `major.rs`, "Idle collection").
        idle_collect: Some(IDLE_COLLECT),
        ..StmConfig::default()
    };
    if let Some(n) = opts.nursery.or(switches.nursery) {
        config.nursery_size = n;
    }
    // The default segment follows the machine's memory; where the address space cannot
    // hold that many (`ulimit -v`), smaller ones down to the old fixed 4 GiB.
    loop {
        match Stm::new(config.clone()) {
            Err(_) if config.segment_size > stmjit_runtime::MIN_DEFAULT_SEGMENT => {
                config.segment_size /= 2;
            }
            r => return r,
        }
    }
}

/// Allocates the program's constants in the running transaction of `th` (the first one):
/// the globals array, the function and builtin objects, the strs of the names the program
/// uses and its literals, and promotes them to the old space, where they never move.
/// Returns the interned names and the constants, or the message of the error.
fn allocate_constants(
    info: &Arc<ProgramInfo>,
    th: &mut StmThread,
) -> Result<(Names, Constants), String> {
    let program = &info.program;
    let types = info.types;
    let literals = stmjit_lang::literals::literals(program);
    let names = Names::default();
    assert_eq!(names.intern("__init__"), stmjit_vm::INIT_NAME);
    assert_eq!(names.intern("args"), stmjit_vm::exceptions::ARGS_NAME);
    assert_eq!(names.intern("__name__"), stmjit_vm::exceptions::NAME_NAME);
    let seg_base = info.stm.segment_base(th.segment());
    // SAFETY: th is the caller's live handle, used by this thread only, and outlives rt
    // (dropped at the end of this function).
    let mut rt = unsafe { Runtime::for_thread(info.clone(), th, seg_base) };
    let roots = (|| -> stmjit_vm::R<_> {
        let globals =
            rt.new_array_of(types.globals_array, program.globals.len() as u64, UNBOUND)?;
        let g = rt.root(globals);
        let mut fr = Vec::new();
        for fid in 0..program.functions.len() {
            let o = rt.new_function(fid, NONE, NONE)?;
            fr.push(rt.root(o));
        }
        // The built-in exception classes are classes (ids 0.., bases first), the other
        // builtins builtin function objects.
        let mut br = Vec::new();
        let mut exc_classes = Vec::new();
        for (k, b) in Builtin::ALL.iter().enumerate() {
            let o = match *b {
                Builtin::ExcClass(i) => {
                    let (_, base) = stmjit_lang::exceptions::CLASSES[i as usize];
                    let base = if i == 0 {
                        NONE
                    } else {
                        rt.get(exc_classes[base])
                    };
                    let c = rt.new_builtin_exc_class(i as usize, base)?;
                    let r = rt.root(c);
                    exc_classes.push(r);
                    rt.get(r)
                }
                _ => rt.new_builtin(k as u64, NONE, false)?,
            };
            br.push(rt.root(o));
        }
        let mut nr = Vec::new();
        let fixed = ["__init__", "args", "__name__"];
        for n in fixed
            .into_iter()
            .chain(literals.names.iter().map(|n| n.as_str()))
        {
            let id = names.intern(n);
            if nr.len() <= id as usize {
                let o = rt.new_str(n)?;
                nr.push((id, rt.root(o)));
            }
        }
        let mut sr = Vec::new();
        for s in &literals.strs {
            let o = rt.new_str(s)?;
            sr.push((s.clone(), rt.root(o)));
        }
        let mut flr = Vec::new();
        for f in &literals.floats {
            let o = rt.new_float(*f)?;
            flr.push((f.to_bits(), rt.root(o)));
        }
        let mut bir = Vec::new();
        for b in &literals.bigs {
            let o = rt.new_bigint(b)?;
            bir.push((b.clone(), rt.root(o)));
        }
        Ok((g, fr, br, nr, sr, flr, bir))
    })();
    let Ok((g, fr, br, nr, sr, flr, bir)) = roots else {
        return Err("MemoryError: cannot allocate the program's constants".into());
    };
    if th.collect_minor().is_err() {
        return Err("the initial transaction was aborted".into());
    }
    for (id, r) in nr {
        names.set_str_obj(id, rt.get(r));
    }
    let consts = Constants {
        globals: rt.get(g),
        func_objs: fr.iter().map(|&r| rt.get(r)).collect(),
        builtin_objs: br.iter().map(|&r| rt.get(r)).collect(),
        strs: sr.into_iter().map(|(s, r)| (s, rt.get(r))).collect(),
        floats: flr.into_iter().map(|(b, r)| (b, rt.get(r))).collect(),
        bigs: bir.into_iter().map(|(b, r)| (b, rt.get(r))).collect(),
    };
    Ok((names, consts))
}

/// Functions of more Cranelift IR instructions than this get their code from the quick tier
/// (`stmjit_backend::isa::Tier::Quick`: no optimization, single-pass register allocation):
/// the optimizing tier's time and memory grow faster than the function (a 1 000-line
/// function: 325 000 instructions, 1.5 s and 280 MB; quick, with its locals in slots: 0.35 s
/// and 110 MB). About 300 lines of ordinary code.
const QUICK_TIER_ABOVE: usize = 100_000;

/// The entry trampoline of `<module>`: `(segment base, ctx) -> word`.
type MainEntry = unsafe extern "C" fn(u64, *mut Ctx) -> u64;

/// The JIT of a run: compiles `<module>` before the program runs and every other function
/// at its first call, on the thread that makes it, while the other threads run.
///
/// # Compiling while transactions run
/// Compiling is not transactional state: it reads the program and its constants (old
/// objects allocated and committed before any code, never moved), and writes only tables
/// outside the STM heap (code, sites, names, caches), so no abort undoes it and it makes no
/// transaction inevitable. One lock serializes compilations; a function is compiled once
/// (the thread that takes the lock after another compiled it finds its address), and its
/// code address is published in `CodeTables::func_code` with a release store after the code
/// is executable, where every thread's code and helpers read it. A thread waiting for the
/// lock, or compiling, holds its segment meanwhile: a thread that asks for a safe point
/// waits until that compilation ends (compiling never waits for another thread, so that
/// ends).
#[derive(Debug)]
struct Jit {
    /// Shared with `run`, which lists the code at exit (`--dump-asm-at exit`) once the
    /// compiler has been handed to the program.
    state: Arc<Mutex<JitState>>,
}

/// What compiling a function needs, behind [`Jit`]'s lock.
struct JitState {
    /// The code space.
    jit: stmjit_backend::Jit,
    /// What JIT code calls for each helper.
    helpers: HashMap<Helper, FuncId>,
    /// The declarations of the program's functions.
    funcs: Functions,
    /// Program function bound to each global by a module-level `def` (direct calls).
    def_of_global: HashMap<usize, usize>,
    /// The attribute names whose slots may hold a raw float (`compile::raw_attrs`).
    raw_attrs: HashSet<String>,
    /// The segment layout's card marker displacement.
    card_disp: u64,
    /// Read barriers (not with `--gil`).
    read_barriers: bool,
    /// Read barriers record their site (`--stats`).
    read_sites: bool,
    /// `STMJIT_BENCH_OMIT`.
    write_barriers: bool,
    /// `STMJIT_BENCH_OMIT`.
    polls: bool,
    /// `STMJIT_VERIFY`.
    verify: bool,
    /// `STMJIT_QUICK`: every function as a huge one.
    quick: bool,
    /// Every program function is being defined before the next finalize (`compile_all`):
    /// direct calls may name their callee's code by relocation.
    all_defined: bool,
    /// The parts of a huge module body compiled as they are reached
    /// (`program/module_parts.rs`).
    module_parts: Option<module_parts::LazyParts>,
}

impl std::fmt::Debug for JitState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JitState").finish_non_exhaustive()
    }
}

impl Jit {
    /// A code space with the helpers and the program's functions declared (none defined);
    /// `listing`: keep what `--dump-asm` shows of each function.
    fn new(
        info: &ProgramInfo,
        opts: &Options,
        switches: &Switches,
        layout: &stmjit_runtime::Layout,
        listing: bool,
    ) -> Result<Jit, JitError> {
        let mode = opts.segment_base.unwrap_or(SegmentBase::Gs);
        let symbols: Vec<(&str, *const u8)> = Helper::ALL
            .iter()
            .map(|h| (h.decl().symbol, h.decl().address))
            .collect();
        let mut jit = stmjit_backend::Jit::new(mode, &symbols)?;
        if opts.perf_map {
            if let Err(e) = jit.write_perf_map() {
                eprintln!("warning: --perf-map: cannot create /tmp/perf-PID.map: {e}");
            }
        }
        jit.keep_side_tables(listing);
        jit.quick_tier_above(if switches.quick { 0 } else { QUICK_TIER_ABOVE });
        // A runtime call may move the thread to another segment: JIT code reloads r15 after
        // it.
        jit.allow_reload(stmjit_backend::gs_rewrite::PinnedReload {
            ctx_param: 0,
            offset: offset_of!(Ctx, seg_base) as i32,
        });
        let helpers = declare_helpers(&mut jit);
        let funcs = declare_functions(&mut jit, &info.program);
        Ok(Jit {
            state: Arc::new(Mutex::new(JitState {
                jit,
                helpers,
                funcs,
                def_of_global: direct_call_targets(&info.program),
                raw_attrs: compile::raw_attrs(&info.program),
                card_disp: layout.card_marker_disp,
                read_barriers: !opts.gil,
                // As the runtime was configured (`start_runtime`).
                read_sites: opts.reports_conflicts(),
                write_barriers: !switches.omits("write-barrier"),
                polls: !switches.omits("poll"),
                verify: switches.verify,
                quick: switches.quick,
                all_defined: false,
                module_parts: None,
            })),
        })
    }

    /// Compiles `<module>` (and, if `eager`, every function of the program first, and the
    /// array entries they need) and its entry trampoline.
    fn compile_start(
        &self,
        info: &ProgramInfo,
        eager: bool,
        body: Option<Vec<Stmt>>,
    ) -> Result<MainEntry, JitError> {
        let label = if eager {
            format!("{} (every function)", info.file)
        } else {
            format!("{} in <module>", info.file)
        };
        let _compiling = stmjit_backend::oom::Compiling::at(&label);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if eager {
            st.compile_all(info)?;
        }
        match body {
            Some(body) => st.compile_lazy_module(info, body)?,
            None => st.compile_module(info)?,
        }
        let (main, sig) = (st.funcs.main, st.funcs.main_sig.clone());
        let tramp = st
            .jit
            .define_entry_trampoline("enter <module>", main, &sig)?;
        st.jit.finalize()?;
        // SAFETY: a finalized trampoline with the signature (base, ctx) -> word.
        Ok(unsafe { std::mem::transmute::<*const u8, MainEntry>(st.jit.code_ptr(tramp)) })
    }
}

impl Compiler for Jit {
    fn compile(&self, info: &ProgramInfo, fid: usize) -> Result<u64, CompileError> {
        let span = info.program.functions[fid].span;
        let label = format!(
            "{}:{}:{} in {}",
            info.file, span.line, span.col, info.func_names[fid]
        );
        let _compiling = stmjit_backend::oom::Compiling::at(&label);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Another thread may have compiled it while this one waited for the lock.
        if let Some(code) = info.code.compiled_code(fid) {
            return Ok(code);
        }
        let name = &info.func_names[fid];
        let what = format!("function '{name}'");
        st.compile_function(info, fid)
            .map_err(|e| compile_error(&what, e))?;
        st.jit.finalize().map_err(|e| compile_error(&what, e))?;
        let code = st.jit.code_ptr(st.funcs.ids[fid]) as u64;
        info.code.publish_code(fid, code);
        Ok(code)
    }

    fn array_entry(&self, info: &ProgramInfo, words: usize) -> Result<u64, CompileError> {
        let label = format!("{} (the entry of {words} words)", info.file);
        let _compiling = stmjit_backend::oom::Compiling::at(&label);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = info.code.made_entry(words) {
            return Ok(entry);
        }
        let entry = st
            .define_array_entry(words)
            .and_then(|t| st.jit.finalize().map(|_| t))
            .map_err(|e| compile_error(&format!("the entry of {words} words"), e))?;
        let address = st.jit.code_ptr(entry) as u64;
        info.code.publish_entry(words, address);
        Ok(address)
    }

    fn module_part(&self, info: &ProgramInfo, k: usize) -> Result<u64, CompileError> {
        let label = format!("{} in <module>", info.file);
        let _compiling = stmjit_backend::oom::Compiling::at(&label);
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.module_part(info, k)
            .map_err(|e| compile_error("<module>", e))
    }
}

/// The message of a compilation before the program runs that failed: a `MemoryError` where
/// the memory for the code could not be mapped.
fn start_error(e: &JitError) -> String {
    if e.is_out_of_memory() {
        format!("MemoryError: cannot compile <module>: JIT: {e}")
    } else {
        format!("JIT: {e}")
    }
}

/// The exception of a call whose code (`what`) could not be made: a `MemoryError` where the
/// memory for it could not be mapped, else a `RuntimeError`.
fn compile_error(what: &str, e: JitError) -> CompileError {
    CompileError {
        kind: if e.is_out_of_memory() {
            ErrorKind::MemoryError
        } else {
            ErrorKind::RuntimeError
        },
        message: format!("cannot compile {what}: JIT: {e}"),
    }
}

impl JitState {
    /// Builds the IR of program function `fid` (`<module>` for the number of functions)
    /// and defines its code (executable after the next finalize). Counts it in
    /// [`stmjit_vm::CompileStats`].
    fn compile_function(&mut self, info: &ProgramInfo, fid: usize) -> Result<(), JitError> {
        if let Some(f) = info.program.functions.get(fid) {
            if compile::is_huge(&f.body) {
                let ranges = compile::split_fn_body(&f.body);
                return self.compile_split_function(info, fid, ranges);
            }
        }
        let started = Started::now();
        let (func, parts) = self.build_ir(info, fid)?;
        if self.verify {
            verify(&self.jit, &func);
        }
        let id = self.id_of(fid);
        let size = self.jit.compile_code(id, func)?;
        started.count(info, 1, size + parts);
        Ok(())
    }

    /// The FuncId of program function `fid` (`<module>` for the number of functions).
    fn id_of(&self, fid: usize) -> FuncId {
        self.funcs.ids.get(fid).copied().unwrap_or(self.funcs.main)
    }

    /// The Cranelift IR of program function `fid` (`<module>` for the number of functions),
    /// and the bytes of code of the parts compiled meanwhile.
    fn build_ir(
        &mut self,
        info: &ProgramInfo,
        fid: usize,
    ) -> Result<(cranelift_codegen::ir::Function, usize), JitError> {
        let program = &*info.program;
        let (arity, nlocals, body, cells, sig) = match program.functions.get(fid) {
            Some(f) => (
                f.entry_words(),
                f.locals.len(),
                &f.body[..],
                &f.cells[..],
                self.funcs.sigs[fid].clone(),
            ),
            None => (
                0,
                0,
                &program.body[..],
                &[][..],
                self.funcs.main_sig.clone(),
            ),
        };
        self.build_ir_with(info, self.id_of(fid), sig, |func, fbc, sh| {
            FnCompiler::compile(func, fbc, sh, arity, nlocals, body, cells, fid as u32)
        })
    }

    /// The Cranelift IR of `id` of signature `sig`, made by `build` with the [`Shared`] state
    /// of this program, and the bytes of code of the parts compiled meanwhile (of its
    /// displays and blocks: `compile::parts`).
    fn build_ir_with(
        &mut self,
        info: &ProgramInfo,
        id: FuncId,
        sig: Signature,
        build: impl for<'s> FnOnce(
            &mut cranelift_codegen::ir::Function,
            &mut FunctionBuilderContext,
            &mut Shared<'s>,
        ),
    ) -> Result<(cranelift_codegen::ir::Function, usize), JitError> {
        let program = &*info.program;
        let mut func = self.jit.new_function(id, sig);
        let frontend = self.jit.isa().frontend_config();
        let mut sh = Shared {
            jit: &mut self.jit,
            helpers: &self.helpers,
            program,
            types: info.types,
            names: &info.names,
            consts: &info.consts,
            code: &info.code,
            classes: &info.classes,
            def_of_global: &self.def_of_global,
            raw_attrs: &self.raw_attrs,
            card_disp: self.card_disp,
            frontend,
            read_barriers: self.read_barriers,
            read_sites: self.read_sites,
            write_barriers: self.write_barriers,
            polls: self.polls,
            quick: self.quick,
            func_ids: &self.funcs.ids,
            all_defined: self.all_defined,
            verify: self.verify,
            failed: None,
            parts_code: 0,
            parts_open: 0,
            deferred: Vec::new(),
        };
        // A builder context per function: its memory is freed with it.
        let mut fbc = FunctionBuilderContext::new();
        build(&mut func, &mut fbc, &mut sh);
        match sh.failed {
            Some(e) => Err(e),
            None => Ok((func, sh.parts_code)),
        }
    }

    /// Compiles program function `fid`, whose body is cut into the statement ranges `ranges`,
    /// as parts sharing its frame (`compile::parts`), one after the other, so that compile
    /// memory is that of one part, and the function that calls them. Parts without loops
    /// get the compact tier (they run once per call, and their code stays for the run).
    fn compile_split_function(
        &mut self,
        info: &ProgramInfo,
        fid: usize,
        ranges: Vec<std::ops::Range<usize>>,
    ) -> Result<(), JitError> {
        let started = Started::now();
        let program = &*info.program;
        let f = &program.functions[fid];
        let nlocals = compile::fn_part_locals(f.locals.len());
        let arity = f.entry_words();
        let name = format!("f{fid}_{}", f.qualname);
        let part_sig = self.jit.signature(&[I64, I64], &[I64]);
        // Made once: each part would otherwise walk the whole body again.
        let facts = compile::BodyFacts::of(&f.body, nlocals, self.quick);
        let mut assigned: Vec<bool> = (0..nlocals)
            .map(|i| i < arity || f.cells.contains(&i))
            .collect();
        let mut parts = Vec::with_capacity(ranges.len());
        let mut size = 0;
        for (k, range) in ranges.into_iter().enumerate() {
            let stmts = &f.body[range];
            let id = self.jit.declare(&format!("{name}#{}", k + 1), &part_sig)?;
            let entry = std::mem::take(&mut assigned);
            let (func, inner) =
                self.build_ir_with(info, id, part_sig.clone(), |func, fbc, sh| {
                    assigned = FnCompiler::compile_fn_part(
                        func,
                        fbc,
                        sh,
                        nlocals,
                        (&f.body, &facts),
                        stmts,
                        entry,
                        fid as u32,
                    );
                })?;
            if self.verify {
                verify(&self.jit, &func);
            }
            size += inner;
            size += if compile::has_loop(stmts) {
                self.jit.compile_code(id, func)?
            } else {
                self.jit.compile_code_compact(id, func)?
            };
            parts.push(id);
        }
        let id = self.id_of(fid);
        let sig = self.funcs.sigs[fid].clone();
        let (func, _) = self.build_ir_with(info, id, sig, |func, fbc, sh| {
            FnCompiler::compile_fn_parts(
                func,
                fbc,
                sh,
                arity,
                nlocals,
                (&f.body, &facts),
                &f.cells,
                &parts,
                fid as u32,
            )
        })?;
        if self.verify {
            verify(&self.jit, &func);
        }
        size += self.jit.compile_code(id, func)?;
        started.count(info, 1, size);
        Ok(())
    }

    /// Compiles `<module>` (executable after the next finalize): as one function, or, for a
    /// huge body, as parts ([`compile::split_body`]) compiled one after the other (so that
    /// the compile memory of one part is freed before the next), the parts without loops with
    /// the quick tier (they run once), and a `<module>` that calls them in order. (Unless
    /// every function is compiled before the run, such a body is run by parts compiled as
    /// they are reached instead: `program/module_parts.rs`.)
    fn compile_module(&mut self, info: &ProgramInfo) -> Result<(), JitError> {
        let nfuncs = info.program.functions.len();
        let body = &info.program.body;
        let ranges = compile::split_body(body, compile::MODULE_SPLIT_ABOVE, compile::MODULE_PART);
        if ranges.len() <= 1 {
            return self.compile_function(info, nfuncs);
        }
        let started = Started::now();
        let sig = self.funcs.main_sig.clone();
        let mut parts = Vec::with_capacity(ranges.len());
        let mut size = 0;
        for (k, range) in ranges.into_iter().enumerate() {
            let stmts = &body[range];
            let id = self.jit.declare(&format!("<module>#{}", k + 1), &sig)?;
            let (func, inner) = self.build_ir_with(info, id, sig.clone(), |func, fbc, sh| {
                FnCompiler::compile(func, fbc, sh, 0, 0, stmts, &[], nfuncs as u32)
            })?;
            if self.verify {
                verify(&self.jit, &func);
            }
            size += inner;
            size += if compile::has_loop(stmts) {
                self.jit.compile_code(id, func)?
            } else {
                self.jit.compile_code_quick(id, func)?
            };
            parts.push(id);
        }
        let main = self.funcs.main;
        let (func, _) = self.build_ir_with(info, main, sig, |func, fbc, sh| {
            FnCompiler::compile_parts(func, fbc, sh, &parts, nfuncs as u32)
        })?;
        if self.verify {
            verify(&self.jit, &func);
        }
        size += self.jit.compile_code(main, func)?;
        started.count(info, 1, size);
        Ok(())
    }

    /// Compiles every function of the program (for `--dump-asm`, `STMJIT_EAGER=1`): their
    /// IR here, their code on several threads, and the array entries they take; publishes
    /// their code addresses.
    fn compile_all(&mut self, info: &ProgramInfo) -> Result<(), JitError> {
        let started = Started::now();
        let n = info.program.functions.len();
        self.all_defined = true;
        let mut funcs = Vec::with_capacity(n);
        let mut parts_code = 0;
        for fid in 0..n {
            // Functions compiled as parts here, one part at a time; the others on threads.
            let f = &info.program.functions[fid];
            if compile::is_huge(&f.body) {
                let ranges = compile::split_fn_body(&f.body);
                let split = self.compile_split_function(info, fid, ranges);
                if split.is_err() {
                    self.all_defined = false;
                }
                split?;
                continue;
            }
            let (func, inner) = self.build_ir(info, fid)?;
            if self.verify {
                verify(&self.jit, &func);
            }
            parts_code += inner;
            funcs.push((self.funcs.ids[fid], func));
        }
        self.all_defined = false;
        let batch = funcs.len();
        let sizes = self.jit.compile_all(funcs)?;
        let mut words: Vec<usize> = info
            .program
            .functions
            .iter()
            .map(|f| f.entry_words())
            .collect();
        words.sort_unstable();
        words.dedup();
        let entries = words
            .iter()
            .map(|&w| self.define_array_entry(w))
            .collect::<Result<Vec<_>, _>>()?;
        self.jit.finalize()?;
        for fid in 0..n {
            info.code
                .publish_code(fid, self.jit.code_ptr(self.funcs.ids[fid]) as u64);
        }
        for (w, e) in words.into_iter().zip(entries) {
            info.code.publish_entry(w, self.jit.code_ptr(e) as u64);
        }
        started.count(info, batch, parts_code + sizes.iter().sum::<usize>());
        Ok(())
    }

    /// The entry of functions taking `words` words from an array,
    /// `a{words}(ctx, argv, code) -> word`, which calls `code` with the context and the
    /// words, and its trampoline `t{words}` (what Rust calls: spawned threads, queued
    /// calls, calls of values from helpers); the trampoline's id.
    fn define_array_entry(&mut self, words: usize) -> Result<FuncId, JitError> {
        let jit = &mut self.jit;
        let frontend = jit.isa().frontend_config();
        let array_sig = jit.signature(&[I64, I64, I64], &[I64]);
        let callee_sig = jit.signature(&vec![I64; 1 + words], &[I64]);
        let id = jit.declare(&format!("a{words}"), &array_sig)?;
        let mut func = jit.new_function(id, array_sig.clone());
        {
            let mut fbc = FunctionBuilderContext::new();
            let mut b = FunctionBuilder::new(&mut func, &mut fbc);
            let sig = b.import_signature(callee_sig);
            let blk = b.create_block();
            b.append_block_params_for_function_params(blk);
            b.switch_to_block(blk);
            let p = b.block_params(blk).to_vec();
            let mut vals = vec![p[0]];
            for k in 0..words {
                vals.push(b.ins().load(I64, crate::compile::mf(), p[1], 8 * k as i32));
            }
            let call = b.ins().call_indirect(sig, p[2], &vals);
            let r = b.inst_results(call)[0];
            b.ins().return_(&[r]);
            b.seal_all_blocks();
            b.finalize(frontend);
        }
        jit.compile_code(id, func)?;
        jit.define_entry_trampoline(&format!("t{words}"), id, &array_sig)
    }
}

/// When a compilation began, in wall-clock and thread CPU time.
struct Started {
    at: std::time::Instant,
    cpu_ns: u64,
}

impl Started {
    fn now() -> Started {
        Started {
            at: std::time::Instant::now(),
            cpu_ns: stmjit_backend::thread_cpu_ns(),
        }
    }

    /// Counts `functions` compiled since into `size` bytes of code
    /// ([`stmjit_vm::CompileStats`]). (Of functions compiled on other threads, as
    /// `compile_all` does, the CPU time is not counted.)
    fn count(&self, info: &ProgramInfo, functions: usize, size: usize) {
        let c = &info.code.compiled;
        c.functions.fetch_add(functions as u64, Ordering::Relaxed);
        c.code_bytes.fetch_add(size as u64, Ordering::Relaxed);
        c.nanos
            .fetch_add(self.at.elapsed().as_nanos() as u64, Ordering::Relaxed);
        let cpu = stmjit_backend::thread_cpu_ns().saturating_sub(self.cpu_ns);
        c.cpu_nanos.fetch_add(cpu, Ordering::Relaxed);
    }
}

/// The declarations of the program's functions: `f{i}_{qualname}(ctx, args...) -> word`,
/// and `<module>(ctx) -> word`.
struct Functions {
    ids: Vec<FuncId>,
    sigs: Vec<Signature>,
    main: FuncId,
    main_sig: Signature,
}

fn declare_functions(jit: &mut stmjit_backend::Jit, program: &Program) -> Functions {
    let mut ids = Vec::new();
    let mut sigs = Vec::new();
    for (i, f) in program.functions.iter().enumerate() {
        let sig = jit.signature(&vec![I64; 1 + f.entry_words()], &[I64]);
        ids.push(
            jit.declare(&format!("f{i}_{}", f.qualname), &sig)
                .expect("declare"),
        );
        sigs.push(sig);
    }
    let main_sig = jit.signature(&[I64], &[I64]);
    let main = jit.declare("<module>", &main_sig).expect("declare");
    Functions {
        ids,
        sigs,
        main,
        main_sig,
    }
}

/// The program function bound to each global by a module-level `def`, for direct calls
/// (none for a name with two defs).
fn direct_call_targets(program: &Program) -> HashMap<usize, usize> {
    let mut def_of_global = HashMap::new();
    for s in &program.body {
        if let StmtKind::FunctionDef { func, target } = &s.kind {
            if let Slot::Global(g) = target.slot {
                // Two defs of one name: no direct calls for it.
                if def_of_global.insert(g, *func).is_some() {
                    def_of_global.insert(g, usize::MAX);
                }
            }
        }
    }
    def_of_global.retain(|_, f| *f != usize::MAX);
    def_of_global
}

/// `STMJIT_VERIFY`: Cranelift's verifier on a function; prints its errors.
pub(crate) fn verify(jit: &stmjit_backend::Jit, func: &cranelift_codegen::ir::Function) {
    if let Err(e) = cranelift_codegen::verify_function(func, jit.isa().as_ref()) {
        eprintln!(
            "{}",
            cranelift_codegen::print_errors::pretty_verifier_error(func, None, e)
        );
    }
}

/// Runs `<module>` on the main thread's driver, waits for the threads it spawned, writes
/// the output, a spawned thread's exception that no `join()` raised, and the `--stats`
/// report; the exit status (an error of the main thread ends the process itself).
fn run_main(info: Arc<ProgramInfo>, main: MainEntry) -> i32 {
    if let Some(t) = info.stm.tracer() {
        t.name_thread("main");
    }
    let mut driver = match Driver::try_new(info.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: MemoryError: cannot start the main thread: {e}");
            return 1;
        }
    };
    driver.run(
        false,
        // SAFETY: ctx is the driver's live context; seg_base its transaction's segment.
        |ctx| unsafe { main((*ctx).seg_base, ctx) },
        |_, r| r,
    );
    // Waiting for the other threads: they may need the segment the main thread keeps.
    driver.rt.detach();
    stmjit_vm::threads::wait_all(&info);
    let failed = stmjit_vm::threads::report_unjoined(&info);
    info.output.flush();
    stmjit_vm::stats::print_stats_if_asked(&driver.rt);
    stmjit_vm::trace_json::write_if_asked(&driver.rt);
    let listed = info.run_at_exit();
    if failed {
        stmjit_lang::EXIT_RUNTIME_ERROR
    } else {
        listed.err().unwrap_or(stmjit_lang::EXIT_OK)
    }
}

/// Runs the program in `path` (prints diagnostics itself; returns the exit status).
pub fn run_file(path: &std::path::Path, args: Vec<String>, opts: &Options) -> i32 {
    let name = path.display().to_string();
    let bytes = match stmjit_lang::read_source(path) {
        Ok(b) => b,
        Err(message) => {
            eprintln!("error: {message}");
            return stmjit_lang::EXIT_SYNTAX_ERROR;
        }
    };
    let opts = opts.clone();
    stmjit_lang::stack::on_big_stack(move || match stmjit_lang::parse_bytes(&bytes) {
        Ok(program) => run(program, &name, args, &opts),
        Err(d) => {
            let source = String::from_utf8_lossy(&bytes);
            eprint!("{}", d.render(&name, Some(&source)));
            stmjit_lang::EXIT_SYNTAX_ERROR
        }
    })
}
