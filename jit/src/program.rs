//! Linking and running a whole program ([`run`]): the runtime instance, the constants
//! (allocated and promoted to the old space before any code embeds them), compilation of
//! every function, entry trampolines, `--dump-asm`, the program's data, and the main
//! thread's driver.
//!
//! The environment switches (for tests, benchmarks and debugging) are read and checked once,
//! here: see [`crate::switches`].

use crate::compile::{FnCompiler, Shared};
use crate::switches::Switches;
use cranelift_codegen::ir::{types::I64, InstBuilder, Signature, Type};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};
use cranelift_module::{FuncId, Linkage, Module};
use std::collections::HashMap;
use std::mem::offset_of;
use std::sync::Arc;
use stmjit_backend::disasm::Syntax;
use stmjit_backend::JitError;
use stmjit_backend::{Jit, SegmentBase};
use stmjit_lang::ast::*;
use stmjit_runtime::transaction::StmThread;
use stmjit_runtime::value::NONE;
use stmjit_runtime::{Stm, StmConfig};
use stmjit_vm::abi::{Effects, Helper};
use stmjit_vm::objects::Types;
use stmjit_vm::threads::Driver;
use stmjit_vm::{
    ArrayEntry, CodeTables, Constants, Ctx, Mode, Names, ProgramInfo, Runtime, Settings, UNBOUND,
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
            nursery: None,
            threads: None,
            gil: false,
            stats: false,
            stats_json: None,
            trace: None,
            exit,
        }
    }
}

/// Declares every helper JIT code calls ([`Helper`]) in `jit`, and defines the
/// `preserve_all` stubs of those called through one: what JIT code calls for each helper.
fn declare_helpers(jit: &mut Jit) -> HashMap<Helper, FuncId> {
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
/// transaction; compile every function against them; link the program's data; commit the
/// constants (compiled code embeds them) and run `<module>` on the main thread's driver.
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
            eprintln!("error: cannot create the runtime: {e}");
            return 1;
        }
    };
    let types = stmjit_vm::objects::register(&stm);
    let layout = *stm.layout();
    let heap_limit = (layout.old_end - layout.old_start) / 4 * 3;
    let settings = settings(&switches, opts);
    let mut info = Arc::new(ProgramInfo::new(
        program.clone(),
        file,
        args,
        opts.exit,
        settings,
        stm.clone(),
        types,
        heap_limit,
    ));
    let mut th = Box::new(stm.thread());
    th.begin();
    let (mut names, consts) = match allocate_constants(&info, &mut th) {
        Ok(c) => c,
        Err(message) => {
            eprintln!("error: {message}");
            return 1;
        }
    };
    let mut code = CodeTables::new(program.functions.len());
    let tables = Tables {
        names: &mut names,
        consts: &consts,
        code: &mut code,
    };
    let linked = match compile_program(&program, types, tables, opts, &switches, &layout) {
        Ok(linked) => linked,
        Err(e) => {
            eprintln!("error: JIT: {e}");
            return 1;
        }
    };
    let listing = crate::listing::ListingOptions {
        target: opts.dump_asm.clone(),
        syntax: opts.syntax,
        only: opts.dump_asm_only.clone(),
    };
    if listing.target.is_some() {
        // The source lines of the listing: from the file itself (a program given as a string
        // has line numbers only).
        let source = std::fs::read_to_string(file).ok();
        if let Err(status) = crate::listing::write_listing(&linked.jit, &listing, source.as_deref())
        {
            return status;
        }
    }
    // The constants are embedded in the code: committed, then roots for the whole run.
    if th.commit().is_err() {
        eprintln!("error: the initial transaction was aborted");
        return 1;
    }
    for w in consts.all().chain(names.str_objs().iter().copied()) {
        if stmjit_runtime::value::is_ref(w) {
            stm.add_root(w);
        }
    }
    drop(th);
    // Converting a builtin method back to a word names it by id: intern them all now, as
    // the data of the program never changes once its threads run.
    for name in stmjit_vm::methods::builtin_method_names() {
        names.intern(name);
    }
    let data =
        Arc::get_mut(&mut info).expect("only this thread holds the program's data before it runs");
    data.link(names, consts, code);
    data.stats_json = opts.stats_json.clone();
    data.trace_json = opts.trace.clone();
    run_main(info, linked.main)
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

/// The runtime instance: as many segments as `--threads` says (the CPUs by default; one
/// with `--gil`).
fn start_runtime(opts: &Options, switches: &Switches) -> Result<Arc<Stm>, String> {
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .clamp(1, 254);
    let mut config = StmConfig {
        num_segments: if opts.gil { 1 } else { threads },
        move_threads: switches.move_threads,
        trace: opts.trace.is_some(),
        record_read_sites: opts.reports_conflicts(),
        ..StmConfig::default()
    };
    if let Some(n) = opts.nursery.or(switches.nursery) {
        config.nursery_size = n;
    }
    Stm::new(config).map_err(|e| e.to_string())
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
    let mut names = Names::default();
    assert_eq!(names.intern("__init__"), stmjit_vm::INIT_NAME);
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
        let mut br = Vec::new();
        for k in 0..Builtin::ALL.len() {
            let o = rt.new_builtin(k as u64, NONE, false)?;
            br.push(rt.root(o));
        }
        let mut nr = Vec::new();
        for n in std::iter::once("__init__").chain(literals.names.iter().map(|n| n.as_str())) {
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
        Ok((g, fr, br, nr, sr, flr))
    })();
    let Ok((g, fr, br, nr, sr, flr)) = roots else {
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
    };
    Ok((names, consts))
}

/// What the compiler fills and reads beside the code: the program's names, constants and
/// code tables.
struct Tables<'a> {
    names: &'a mut Names,
    consts: &'a Constants,
    code: &'a mut CodeTables,
}

/// A compiled and finalized program.
struct Linked {
    /// The code space (kept for `--dump-asm`; code stays mapped for the process's life).
    jit: Jit,
    /// The entry of `<module>`.
    main: MainEntry,
}

/// The entry trampoline of `<module>`: `(segment base, ctx) -> word`.
type MainEntry = unsafe extern "C" fn(u64, *mut Ctx) -> u64;

/// Compiles every function of `program` and `<module>`, with their entry trampolines, and
/// finalizes the code; fills `tables.code` with the code addresses and entries.
fn compile_program(
    program: &Program,
    types: Types,
    tables: Tables,
    opts: &Options,
    switches: &Switches,
    layout: &stmjit_runtime::Layout,
) -> Result<Linked, JitError> {
    let mode = opts.segment_base.unwrap_or(SegmentBase::Gs);
    let symbols: Vec<(&str, *const u8)> = Helper::ALL
        .iter()
        .map(|h| (h.decl().symbol, h.decl().address))
        .collect();
    let mut jit = Jit::new(mode, &symbols)?;
    // A runtime call may move the thread to another segment: JIT code reloads r15 after it.
    jit.allow_reload(stmjit_backend::gs_rewrite::PinnedReload {
        ctx_param: 0,
        offset: offset_of!(Ctx, seg_base) as i32,
    });
    let helper_ids = declare_helpers(&mut jit);
    let funcs = declare_functions(&mut jit, program);
    let def_of_global = direct_call_targets(program);
    let frontend = jit.isa().frontend_config();
    let mut fbc = FunctionBuilderContext::new();
    let mut compiled = Vec::new();
    let Tables {
        names,
        consts,
        code,
    } = tables;
    let nfuncs = program.functions.len();
    for idx in 0..=nfuncs {
        let (id, sig, arity, nlocals, body, cells) = if idx < nfuncs {
            let f = &program.functions[idx];
            (
                funcs.ids[idx],
                funcs.sigs[idx].clone(),
                f.entry_words(),
                f.locals.len(),
                &f.body,
                &f.cells[..],
            )
        } else {
            (
                funcs.main,
                funcs.main_sig.clone(),
                0,
                0,
                &program.body,
                &[][..],
            )
        };
        let mut func = jit.new_function(id, sig);
        let mut sh = Shared {
            module: jit.module(),
            helpers: &helper_ids,
            funcs: &funcs.ids,
            program,
            types,
            names: &mut *names,
            consts,
            code: &mut *code,
            def_of_global: &def_of_global,
            card_disp: layout.card_marker_disp,
            frontend,
            read_barriers: !opts.gil,
            // As the runtime was configured (`start_runtime`).
            read_sites: opts.reports_conflicts(),
            write_barriers: !switches.omits("write-barrier"),
            polls: !switches.omits("poll"),
        };
        FnCompiler::compile(
            &mut func, &mut fbc, &mut sh, arity, nlocals, body, cells, idx as u32,
        );
        compiled.push((id, func));
    }
    if switches.verify {
        verify(&jit, &compiled);
    }
    jit.compile_all(compiled)?;
    let tramps = define_array_entries(&mut jit, program, &funcs.ids, &mut fbc)?;
    let main_tramp = jit.define_entry_trampoline("enter <module>", funcs.main, &funcs.main_sig)?;
    jit.finalize()?;
    for (i, &id) in funcs.ids.iter().enumerate() {
        code.func_code[i] = jit.code_ptr(id) as u64;
    }
    for (i, t) in tramps.iter().enumerate() {
        // SAFETY: a finalized trampoline with the signature (base, ctx, argv) -> word.
        code.entries[i] =
            Some(unsafe { std::mem::transmute::<*const u8, ArrayEntry>(jit.code_ptr(*t)) });
    }
    // SAFETY: a finalized trampoline with the signature (base, ctx) -> word.
    let main = unsafe { std::mem::transmute::<*const u8, MainEntry>(jit.code_ptr(main_tramp)) };
    Ok(Linked { jit, main })
}

/// The declarations of the program's functions: `f{i}_{qualname}(ctx, args...) -> word`,
/// and `<module>(ctx) -> word`.
struct Functions {
    ids: Vec<FuncId>,
    sigs: Vec<Signature>,
    main: FuncId,
    main_sig: Signature,
}

fn declare_functions(jit: &mut Jit, program: &Program) -> Functions {
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

/// `STMJIT_VERIFY`: Cranelift's verifier on every function; prints its errors.
fn verify(jit: &Jit, compiled: &[(FuncId, cranelift_codegen::ir::Function)]) {
    for (_, func) in compiled {
        if let Err(e) = cranelift_codegen::verify_function(func, jit.isa().as_ref()) {
            eprintln!(
                "{}",
                cranelift_codegen::print_errors::pretty_verifier_error(func, None, e)
            );
        }
    }
}

/// For each program function, an entry taking its arguments from an array,
/// `a{i}_{qualname}(ctx, argv) -> word`, and its trampoline `t{i}_{qualname}` (what Rust
/// calls: spawned threads, queued calls, calls of values from helpers).
fn define_array_entries(
    jit: &mut Jit,
    program: &Program,
    funcs: &[FuncId],
    fbc: &mut FunctionBuilderContext,
) -> Result<Vec<FuncId>, JitError> {
    let frontend = jit.isa().frontend_config();
    let array_sig = jit.signature(&[I64, I64], &[I64]);
    let mut tramps = Vec::new();
    for (i, f) in program.functions.iter().enumerate() {
        let id = jit
            .declare(&format!("a{i}_{}", f.qualname), &array_sig)
            .expect("declare");
        let mut func = jit.new_function(id, array_sig.clone());
        {
            let callee = jit.module().declare_func_in_func(funcs[i], &mut func);
            // Absolute call: cranelift-jit may place functions far apart.
            func.dfg.ext_funcs[callee].colocated = false;
            let mut b = FunctionBuilder::new(&mut func, fbc);
            let blk = b.create_block();
            b.append_block_params_for_function_params(blk);
            b.switch_to_block(blk);
            let p = b.block_params(blk).to_vec();
            let mut vals = vec![p[0]];
            for k in 0..f.entry_words() {
                vals.push(b.ins().load(I64, crate::compile::mf(), p[1], 8 * k as i32));
            }
            let call = b.ins().call(callee, &vals);
            let r = b.inst_results(call)[0];
            b.ins().return_(&[r]);
            b.seal_all_blocks();
            b.finalize(frontend);
        }
        jit.compile(id, func)?;
        tramps.push(jit.define_entry_trampoline(
            &format!("t{i}_{}", f.qualname),
            id,
            &array_sig,
        )?);
    }
    Ok(tramps)
}

/// Runs `<module>` on the main thread's driver, waits for the threads it spawned, writes
/// the output and the `--stats` report; the exit status (a failing thread ends the process
/// itself).
fn run_main(info: Arc<ProgramInfo>, main: MainEntry) -> i32 {
    if let Some(t) = info.stm.tracer() {
        t.name_thread("main");
    }
    let mut driver = Driver::new(info.clone());
    driver.run(
        false,
        // SAFETY: ctx is the driver's live context; seg_base its transaction's segment.
        |ctx| unsafe { main((*ctx).seg_base, ctx) },
        |_, r| r,
    );
    stmjit_vm::threads::wait_all(&info);
    info.output.flush();
    stmjit_vm::stats::print_stats_if_asked(&driver.rt);
    stmjit_vm::trace_json::write_if_asked(&driver.rt);
    stmjit_lang::EXIT_OK
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
